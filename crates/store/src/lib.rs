//! # store: the state of sipwarden that must survive a restart
//!
//! Registrations (registrar bindings), bans, call detail records and local users' digest
//! credentials (HA1 only), behind four backend-neutral traits ([`RegistrationStore`],
//! [`BanStore`], [`CdrStore`], [`UserStore`]) so that a Redis
//! backend can be added for clusters whose nodes share state. Two backends today:
//!
//! - [`RedbStore`]: embedded, one redb file in the data directory, every write committed with
//!   `fsync` before it returns (what was acknowledged survives `kill -9` and power loss);
//! - [`MemoryStore`]: the same semantics in memory, for tests.
//!
//! The API is synchronous: the callers run it on a blocking thread pool. The crate parses no SIP:
//! the registrar computes a [`BindingUpdate`] from the REGISTER and the store applies it
//! atomically, checking CSeq order and the binding limit inside the transaction so that
//! concurrent REGISTERs for one AOR cannot interleave badly.
//!
//! The on-disk encoding is written here (see `src/codec.rs`): versioned,
//! compact, and checked on decode.
//!
//! MSRV: redb 4.x requires Rust 1.90, so this crate declares 1.90 although the workspace says
//! 1.85.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod codec;
mod error;
mod logic;
mod memory;
mod redb_store;
mod traits;
mod types;
mod users;

#[cfg(test)]
mod testsuite;

pub use error::{Result, StoreError};
pub use memory::MemoryStore;
pub use redb_store::{RedbStore, DB_FILE_NAME};
pub use traits::{BanStore, CdrStore, RegistrationStore};
pub use types::{
    Ban, BanSource, Binding, BindingKey, BindingUpdate, Cdr, CdrEntry, Disposition,
    RegistrationCount,
};
pub use users::{Ha1Algorithm, Ha1Entry, UserCredentials, UserStore};

/// Everything a caller needs, for `use store::prelude::*`.
pub mod prelude {
    pub use crate::{
        Ban, BanSource, BanStore, Binding, BindingKey, BindingUpdate, Cdr, CdrEntry, CdrStore,
        Disposition, Ha1Algorithm, Ha1Entry, MemoryStore, RedbStore, RegistrationCount,
        RegistrationStore, StoreError, UserCredentials, UserStore,
    };
}
