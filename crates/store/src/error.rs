//! The error type shared by every backend.

/// What a store operation can fail with. Backend-neutral: no redb (or, later, Redis) type leaks
/// through it, so callers match on the same variants whichever backend is configured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The operating system refused a read, a write or an `fsync`.
    #[error("store I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Stored bytes do not decode, or the backend found its own structures damaged.
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
    /// A value cannot be encoded or is too large for the backend.
    #[error("cannot encode value: {0}")]
    Encode(String),
    /// The database was written by an incompatible version (file format or schema).
    #[error("unsupported store format: {0}")]
    UnsupportedFormat(String),
    /// Another process holds the database open.
    #[error("store is locked by another process")]
    Locked,
    /// The caller passed something the store cannot accept (for example a binding whose AOR is
    /// not the AOR being updated).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// RFC 3261 section 10.3 steps 6 and 7: a binding touched by the update was written by a
    /// request with the same Call-ID and a CSeq at least as high. Nothing was changed.
    #[error("out-of-order update: stored CSeq {stored_cseq} >= request CSeq {cseq} for Call-ID {call_id}")]
    OutOfOrder {
        /// The Call-ID shared by the stored binding and the update.
        call_id: String,
        /// CSeq of the stored binding.
        stored_cseq: u32,
        /// CSeq of the rejected update.
        cseq: u32,
    },
    /// The update would leave the AOR with more bindings than `BindingUpdate::max_bindings`.
    /// Nothing was changed.
    #[error("too many bindings for this AOR (limit {limit})")]
    TooManyBindings {
        /// The limit the update carried.
        limit: usize,
    },
    /// Any other backend failure (message from the backend).
    #[error("store backend error: {0}")]
    Backend(String),
}

/// Result alias for store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        match e {
            redb::Error::Io(io) => StoreError::Io(io),
            redb::Error::Corrupted(msg) => StoreError::Corrupt(msg),
            redb::Error::ValueTooLarge(n) => {
                StoreError::Encode(format!("value of {n} bytes exceeds the backend limit"))
            }
            redb::Error::UpgradeRequired(v) => {
                StoreError::UnsupportedFormat(format!("redb file format {v} needs an upgrade"))
            }
            redb::Error::DatabaseAlreadyOpen => StoreError::Locked,
            other => StoreError::Backend(other.to_string()),
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::from(redb::Error::from(e))
            }
        }
    )*};
}

from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);
