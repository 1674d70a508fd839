//! SRTP/SRTCP (RFC 3711, RFC 7714) contexts keyed by SDES (RFC 4568):
//! in-place protect and unprotect with clear drop reasons.
//!
//! - [`SrtpContext`]: one master key's SRTP and SRTCP transforms, in place on
//!   the caller's buffer, no allocation per packet.
//! - [`SrtpTransform`]: what the relay applies to one direction
//!   (decrypt, encrypt, re-encrypt or pass through).
//! - [`sdes`]: `a=crypto` lines in and out, suite choice, fresh keys.
//! - [`policy`]: per-zone `terminate` / `rekey` / `passthrough` decisions.

mod context;
mod error;
pub mod policy;
mod profile;
mod replay;
pub mod sdes;
mod transform;

pub use context::{SrtpContext, MAX_SSRCS};
pub use error::SrtpError;
pub use profile::{MasterKey, SrtpProfile, KEY_LEN, MAX_OVERHEAD, MAX_SALT_LEN};
pub use replay::REPLAY_WINDOW;
pub use transform::SrtpTransform;
