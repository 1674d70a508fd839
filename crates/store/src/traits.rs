//! The backend-neutral interfaces. All methods are synchronous and may block on disk (or, for
//! a future Redis backend, on the network): async callers run them on a blocking thread pool
//! (`tokio::task::spawn_blocking`). Every implementation is `Send + Sync` and serialises
//! concurrent writers itself; a method that returns `Ok` after a write has made it durable
//! as documented by the backend.

use std::time::SystemTime;

use crate::error::Result;
use crate::types::{Ban, BanSource, Binding, BindingUpdate, Cdr, CdrEntry, RegistrationCount};

/// Registrar bindings, keyed by AOR.
pub trait RegistrationStore: Send + Sync {
    /// The stored bindings of `aor`, in stored order (insertion order; a replaced binding keeps
    /// its place). May include bindings that lapsed but were not yet purged by
    /// [`RegistrationStore::expire`]; see [`RegistrationStore::live_bindings`].
    fn bindings(&self, aor: &str) -> Result<Vec<Binding>>;

    /// Applies `update` to `aor` in one transaction and returns the resulting set (see
    /// [`BindingUpdate`] for the rules). When it returns `Ok`, the new set is durable: the
    /// registrar may send its 200 OK. On `Err`, nothing was written.
    fn apply(&self, aor: &str, update: BindingUpdate) -> Result<Vec<Binding>>;

    /// Removes every binding of `aor` (admin action) and returns what was removed.
    fn remove_aor(&self, aor: &str) -> Result<Vec<Binding>>;

    /// Purges every binding that has lapsed at `now`; returns how many were removed.
    fn expire(&self, now: SystemTime) -> Result<usize>;

    /// How many AORs and bindings are stored.
    fn count(&self) -> Result<RegistrationCount>;

    /// A page of AORs in byte order, strictly after `after` (from the first when `None`), at
    /// most `limit` of them. Pass the last AOR of a page to get the next one.
    fn all_aors(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>>;

    /// The bindings of `aor` that are live at `now`.
    fn live_bindings(&self, aor: &str, now: SystemTime) -> Result<Vec<Binding>> {
        let mut v = self.bindings(aor)?;
        v.retain(|b| !b.is_expired(now));
        Ok(v)
    }
}

/// Bans decided by the policy layer, so that they survive a restart.
pub trait BanStore: Send + Sync {
    /// Inserts or replaces the ban on `ban.source`; returns the ban it replaced.
    fn put_ban(&self, ban: &Ban) -> Result<Option<Ban>>;

    /// The stored ban on `source` (possibly lapsed, until purged by
    /// [`BanStore::expire_bans`]).
    fn get_ban(&self, source: &BanSource) -> Result<Option<Ban>>;

    /// Every stored ban, ordered by storage key. Bans are few enough (thousands) to load at once;
    /// the policy layer loads them at start.
    fn list_bans(&self) -> Result<Vec<Ban>>;

    /// Removes the ban on `source`; returns it if there was one.
    fn remove_ban(&self, source: &BanSource) -> Result<Option<Ban>>;

    /// Purges bans that have lapsed at `now`; returns how many were removed.
    fn expire_bans(&self, now: SystemTime) -> Result<usize>;
}

/// Call detail records, append-only.
pub trait CdrStore: Send + Sync {
    /// Appends one record; returns its id.
    fn append_cdr(&self, cdr: &Cdr) -> Result<u64> {
        let ids = self.append_cdrs(std::slice::from_ref(cdr))?;
        ids.first()
            .copied()
            .ok_or_else(|| crate::StoreError::Backend("append returned no id".into()))
    }

    /// Appends records in one transaction (one disk sync for the whole batch); returns their ids
    /// in order. A CDR writer that drains a queue should use this.
    fn append_cdrs(&self, cdrs: &[Cdr]) -> Result<Vec<u64>>;

    /// The `limit` most recently appended records, newest first.
    fn recent_cdrs(&self, limit: usize) -> Result<Vec<CdrEntry>>;

    /// Every record with this Call-ID, oldest first.
    fn cdrs_by_call_id(&self, call_id: &str) -> Result<Vec<CdrEntry>>;

    /// Retention: removes records from the oldest on while their `end` is before `cutoff`,
    /// stopping at the first that is not (records are appended when calls end, so ids follow
    /// end times closely). Returns how many were removed.
    fn prune_cdrs(&self, cutoff: SystemTime) -> Result<usize>;
}
