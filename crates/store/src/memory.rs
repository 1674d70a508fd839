//! An in-memory backend with the same semantics as [`crate::RedbStore`], for tests and for
//! deployments that accept losing state on restart. One mutex serialises every operation.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use crate::error::Result;
use crate::logic::plan_update;
use crate::traits::{BanStore, CdrStore, RegistrationStore};
use crate::types::{Ban, BanSource, Binding, BindingUpdate, Cdr, CdrEntry, RegistrationCount};
use crate::users::{UserCredentials, UserStore};

/// In-memory store. Nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    regs: BTreeMap<String, Vec<Binding>>,
    bans: BTreeMap<String, Ban>,
    cdrs: BTreeMap<u64, Cdr>,
    last_cdr_id: u64,
    users: BTreeMap<(String, String), UserCredentials>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave `Inner` half-updated: every method computes
        // its result first and then assigns, so the data is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RegistrationStore for MemoryStore {
    fn bindings(&self, aor: &str) -> Result<Vec<Binding>> {
        Ok(self.lock().regs.get(aor).cloned().unwrap_or_default())
    }

    fn apply(&self, aor: &str, update: BindingUpdate) -> Result<Vec<Binding>> {
        let mut inner = self.lock();
        let existing = inner.regs.get(aor).map_or(&[][..], Vec::as_slice);
        let result = plan_update(aor, existing, update)?;
        if result.is_empty() {
            inner.regs.remove(aor);
        } else {
            inner.regs.insert(aor.to_owned(), result.clone());
        }
        Ok(result)
    }

    fn remove_aor(&self, aor: &str) -> Result<Vec<Binding>> {
        Ok(self.lock().regs.remove(aor).unwrap_or_default())
    }

    fn expire(&self, now: SystemTime) -> Result<usize> {
        let mut removed = 0;
        self.lock().regs.retain(|_, set| {
            let before = set.len();
            set.retain(|b| !b.is_expired(now));
            removed += before - set.len();
            !set.is_empty()
        });
        Ok(removed)
    }

    fn count(&self) -> Result<RegistrationCount> {
        let inner = self.lock();
        Ok(RegistrationCount {
            aors: inner.regs.len() as u64,
            bindings: inner.regs.values().map(|s| s.len() as u64).sum(),
        })
    }

    fn all_aors(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let inner = self.lock();
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(inner
            .regs
            .range::<str, _>((lower, Bound::Unbounded))
            .take(limit)
            .map(|(k, _)| k.clone())
            .collect())
    }
}

impl BanStore for MemoryStore {
    fn put_ban(&self, ban: &Ban) -> Result<Option<Ban>> {
        let ban = ban.normalized();
        Ok(self.lock().bans.insert(ban.source.storage_key(), ban))
    }

    fn get_ban(&self, source: &BanSource) -> Result<Option<Ban>> {
        Ok(self.lock().bans.get(&source.storage_key()).cloned())
    }

    fn list_bans(&self) -> Result<Vec<Ban>> {
        Ok(self.lock().bans.values().cloned().collect())
    }

    fn remove_ban(&self, source: &BanSource) -> Result<Option<Ban>> {
        Ok(self.lock().bans.remove(&source.storage_key()))
    }

    fn expire_bans(&self, now: SystemTime) -> Result<usize> {
        let mut inner = self.lock();
        let before = inner.bans.len();
        inner.bans.retain(|_, b| !b.is_expired(now));
        Ok(before - inner.bans.len())
    }
}

impl CdrStore for MemoryStore {
    fn append_cdrs(&self, cdrs: &[Cdr]) -> Result<Vec<u64>> {
        let mut inner = self.lock();
        let mut ids = Vec::with_capacity(cdrs.len());
        for cdr in cdrs {
            inner.last_cdr_id += 1;
            let id = inner.last_cdr_id;
            inner.cdrs.insert(id, cdr.normalized());
            ids.push(id);
        }
        Ok(ids)
    }

    fn recent_cdrs(&self, limit: usize) -> Result<Vec<CdrEntry>> {
        Ok(self
            .lock()
            .cdrs
            .iter()
            .rev()
            .take(limit)
            .map(|(&id, cdr)| CdrEntry {
                id,
                cdr: cdr.clone(),
            })
            .collect())
    }

    fn cdrs_by_call_id(&self, call_id: &str) -> Result<Vec<CdrEntry>> {
        Ok(self
            .lock()
            .cdrs
            .iter()
            .filter(|(_, c)| c.call_id == call_id)
            .map(|(&id, cdr)| CdrEntry {
                id,
                cdr: cdr.clone(),
            })
            .collect())
    }

    fn prune_cdrs(&self, cutoff: SystemTime) -> Result<usize> {
        let mut inner = self.lock();
        let doomed: Vec<u64> = inner
            .cdrs
            .iter()
            .take_while(|(_, c)| c.end < cutoff)
            .map(|(&id, _)| id)
            .collect();
        for id in &doomed {
            inner.cdrs.remove(id);
        }
        Ok(doomed.len())
    }
}

impl UserStore for MemoryStore {
    fn put_user(&self, user: &UserCredentials) -> Result<Option<UserCredentials>> {
        user.check()?;
        Ok(self
            .lock()
            .users
            .insert((user.realm.clone(), user.username.clone()), user.clone()))
    }

    fn get_user(&self, realm: &str, username: &str) -> Result<Option<UserCredentials>> {
        Ok(self
            .lock()
            .users
            .get(&(realm.to_owned(), username.to_owned()))
            .cloned())
    }

    fn remove_user(&self, realm: &str, username: &str) -> Result<Option<UserCredentials>> {
        Ok(self
            .lock()
            .users
            .remove(&(realm.to_owned(), username.to_owned())))
    }

    fn list_users(
        &self,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<UserCredentials>> {
        let inner = self.lock();
        let lower = after.map_or(Bound::Unbounded, |(r, u)| {
            Bound::Excluded((r.to_owned(), u.to_owned()))
        });
        Ok(inner
            .users
            .range((lower, Bound::Unbounded))
            .take(limit)
            .map(|(_, v)| v.clone())
            .collect())
    }
}
