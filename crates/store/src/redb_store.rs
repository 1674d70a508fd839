//! The embedded backend: one redb database file in the data directory.
//!
//! Tables (names carry a version so that a later layout can live next to this one during a
//! migration):
//!
//! | table | key | value |
//! |---|---|---|
//! | `registrations_v1` | AOR (`&str`) | encoded binding set ([`crate::codec`]) |
//! | `registration_expiry_v1` | (expires_at unix s, AOR) | `()`: which AORs hold a binding lapsing at that second |
//! | `bans_v1` | [`BanSource::storage_key`] | encoded ban |
//! | `cdrs_v1` | id (`u64`) | encoded CDR |
//! | `cdr_by_call_id_v1` | (Call-ID, id) | `()` |
//! | `users_v1` | (realm, username) | encoded HA1 set ([`crate::users`]) |
//! | `meta` | name | `u64`: `schema_version`, `binding_count`, `last_cdr_id` |
//!
//! One value per AOR makes `apply` a single read and a single write; the expiry index makes
//! `expire` touch only the AORs that have something to purge; the counters make `count` O(1).
//! All of them change in the same transaction as the data, so they cannot disagree after a crash.
//!
//! Durability: every write transaction commits with [`Durability::Immediate`] (redb writes the
//! pages, flips the commit slot and `fsync`s before `commit` returns), registrations and bans
//! because a 200 OK or a ban must survive `kill -9` and power loss. CDRs too: they are billing
//! data, written once per call at its end, off the signalling path; the cost of one `fsync` per
//! CDR is avoided by [`CdrStore::append_cdrs`], which commits a whole batch with one sync (a CDR
//! writer thread drains its queue into it).

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table,
    TableDefinition, WriteTransaction,
};

use crate::codec::{
    decode_ban, decode_bindings, decode_cdr, encode_ban, encode_bindings, encode_cdr,
};
use crate::error::{Result, StoreError};
use crate::logic::plan_update;
use crate::traits::{BanStore, CdrStore, RegistrationStore};
use crate::types::{
    unix_secs, Ban, BanSource, Binding, BindingUpdate, Cdr, CdrEntry, RegistrationCount,
};
use crate::users::{decode_user, encode_user, UserCredentials, UserStore};

const REGS: TableDefinition<&str, &[u8]> = TableDefinition::new("registrations_v1");
const REG_EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("registration_expiry_v1");
const BANS: TableDefinition<&str, &[u8]> = TableDefinition::new("bans_v1");
const CDRS: TableDefinition<u64, &[u8]> = TableDefinition::new("cdrs_v1");
const CDR_BY_CALL: TableDefinition<(&str, u64), ()> = TableDefinition::new("cdr_by_call_id_v1");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
// A new table, not a new schema: builds without it ignore it.
const USERS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("users_v1");

const META_SCHEMA: &str = "schema_version";
const META_BINDINGS: &str = "binding_count";
const META_LAST_CDR: &str = "last_cdr_id";
const SCHEMA_VERSION: u64 = 1;

/// File name of the database inside the data directory.
pub const DB_FILE_NAME: &str = "sipwarden-store.redb";

/// The redb-backed store. Cheap to share behind an `Arc`; redb runs one write transaction at a
/// time (others wait in `begin_write`) and readers see consistent snapshots without blocking.
pub struct RedbStore {
    pub(crate) db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish()
    }
}

impl RedbStore {
    /// Opens the database in `dir` (created with its parents if missing), creating the database
    /// file on first use. After an unclean shutdown redb repairs the file here (it falls back to
    /// the last committed state), which can take a moment on a large file.
    ///
    /// Fails with [`StoreError::Locked`] if another process has it open.
    pub fn open(dir: impl AsRef<Path>) -> Result<RedbStore> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir)?;
        let path = dir.join(DB_FILE_NAME);
        let db = Database::create(&path)?;
        // Make the new file's directory entry durable too (power loss right after creation).
        File::open(dir)?.sync_all()?;
        let store = RedbStore { db, path };
        store.init()?;
        Ok(store)
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn init(&self) -> Result<()> {
        let tx = self.write_tx()?;
        {
            tx.open_table(REGS)?;
            tx.open_table(REG_EXPIRY)?;
            tx.open_table(BANS)?;
            tx.open_table(CDRS)?;
            tx.open_table(CDR_BY_CALL)?;
            tx.open_table(USERS)?;
            let mut meta = tx.open_table(META)?;
            let found = meta.get(META_SCHEMA)?.map(|v| v.value());
            match found {
                None => {
                    meta.insert(META_SCHEMA, SCHEMA_VERSION)?;
                }
                Some(SCHEMA_VERSION) => {}
                Some(v) => {
                    return Err(StoreError::UnsupportedFormat(format!(
                        "store schema {v}, this build knows {SCHEMA_VERSION}"
                    )))
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn write_tx(&self) -> Result<WriteTransaction> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::Immediate)?;
        Ok(tx)
    }

    /// Runs `f` in a write transaction and commits (durably) if it succeeds; aborts otherwise.
    fn write<T>(&self, f: impl FnOnce(&WriteTransaction) -> Result<T>) -> Result<T> {
        let tx = self.write_tx()?;
        match f(&tx) {
            Ok(v) => {
                tx.commit()?;
                Ok(v)
            }
            Err(e) => {
                // The abort's own failure adds nothing: the transaction is discarded either way.
                let _ = tx.abort();
                Err(e)
            }
        }
    }
}

/// The registration tables of one write transaction.
struct RegTables<'t> {
    regs: Table<'t, &'static str, &'static [u8]>,
    expiry: Table<'t, (u64, &'static str), ()>,
    meta: Table<'t, &'static str, u64>,
}

impl<'t> RegTables<'t> {
    fn open(tx: &'t WriteTransaction) -> Result<Self> {
        Ok(RegTables {
            regs: tx.open_table(REGS)?,
            expiry: tx.open_table(REG_EXPIRY)?,
            meta: tx.open_table(META)?,
        })
    }

    fn load(&self, aor: &str) -> Result<Vec<Binding>> {
        match self.regs.get(aor)? {
            Some(v) => decode_bindings(aor, v.value()),
            None => Ok(Vec::new()),
        }
    }

    /// Replaces the set of `aor` (`old`, as loaded) by `new`, keeping the expiry index and the
    /// binding counter in step.
    fn store(&mut self, aor: &str, old: &[Binding], new: &[Binding]) -> Result<()> {
        let old_exp: BTreeSet<u64> = old.iter().map(|b| unix_secs(b.expires_at)).collect();
        let new_exp: BTreeSet<u64> = new.iter().map(|b| unix_secs(b.expires_at)).collect();
        for &e in old_exp.difference(&new_exp) {
            self.expiry.remove((e, aor))?;
        }
        for &e in new_exp.difference(&old_exp) {
            self.expiry.insert((e, aor), ())?;
        }
        if new.is_empty() {
            self.regs.remove(aor)?;
        } else {
            self.regs.insert(aor, encode_bindings(new).as_slice())?;
        }
        if old.len() != new.len() {
            let count = self.meta.get(META_BINDINGS)?.map_or(0, |v| v.value());
            let count = (count + new.len() as u64).saturating_sub(old.len() as u64);
            self.meta.insert(META_BINDINGS, count)?;
        }
        Ok(())
    }
}

impl RegistrationStore for RedbStore {
    fn bindings(&self, aor: &str) -> Result<Vec<Binding>> {
        let tx = self.db.begin_read()?;
        let regs = tx.open_table(REGS)?;
        let v = regs.get(aor)?;
        v.map_or(Ok(Vec::new()), |v| decode_bindings(aor, v.value()))
    }

    fn apply(&self, aor: &str, update: BindingUpdate) -> Result<Vec<Binding>> {
        self.write(|tx| {
            let mut t = RegTables::open(tx)?;
            let old = t.load(aor)?;
            let new = plan_update(aor, &old, update)?;
            t.store(aor, &old, &new)?;
            Ok(new)
        })
    }

    fn remove_aor(&self, aor: &str) -> Result<Vec<Binding>> {
        self.write(|tx| {
            let mut t = RegTables::open(tx)?;
            let old = t.load(aor)?;
            if !old.is_empty() {
                t.store(aor, &old, &[])?;
            }
            Ok(old)
        })
    }

    fn expire(&self, now: SystemTime) -> Result<usize> {
        if now < UNIX_EPOCH {
            return Ok(0);
        }
        let now_s = unix_secs(now);
        self.write(|tx| {
            let mut t = RegTables::open(tx)?;
            let due: Vec<(u64, String)> = {
                let upper = (now_s.saturating_add(1), "");
                let mut due = Vec::new();
                for entry in t.expiry.range::<(u64, &str)>(..upper)? {
                    let (k, _) = entry?;
                    let (e, aor) = k.value();
                    due.push((e, aor.to_owned()));
                }
                due
            };
            let mut removed = 0;
            let mut aors = BTreeSet::new();
            for (e, aor) in &due {
                t.expiry.remove((*e, aor.as_str()))?;
                aors.insert(aor.as_str());
            }
            for aor in aors {
                let old = t.load(aor)?;
                let new: Vec<Binding> =
                    old.iter().filter(|b| !b.is_expired(now)).cloned().collect();
                removed += old.len() - new.len();
                t.store(aor, &old, &new)?;
            }
            Ok(removed)
        })
    }

    fn count(&self) -> Result<RegistrationCount> {
        let tx = self.db.begin_read()?;
        let aors = tx.open_table(REGS)?.len()?;
        let bindings = tx
            .open_table(META)?
            .get(META_BINDINGS)?
            .map_or(0, |v| v.value());
        Ok(RegistrationCount { aors, bindings })
    }

    fn all_aors(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let tx = self.db.begin_read()?;
        let regs = tx.open_table(REGS)?;
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut out = Vec::new();
        for entry in regs.range::<&str>((lower, Bound::Unbounded))?.take(limit) {
            out.push(entry?.0.value().to_owned());
        }
        Ok(out)
    }
}

impl BanStore for RedbStore {
    fn put_ban(&self, ban: &Ban) -> Result<Option<Ban>> {
        let ban = ban.normalized();
        let key = ban.source.storage_key();
        self.write(|tx| {
            let mut bans = tx.open_table(BANS)?;
            let old = bans.insert(key.as_str(), encode_ban(&ban).as_slice())?;
            old.map(|v| decode_ban(&key, v.value())).transpose()
        })
    }

    fn get_ban(&self, source: &BanSource) -> Result<Option<Ban>> {
        let key = source.storage_key();
        let tx = self.db.begin_read()?;
        let bans = tx.open_table(BANS)?;
        let v = bans.get(key.as_str())?;
        v.map(|v| decode_ban(&key, v.value())).transpose()
    }

    fn list_bans(&self) -> Result<Vec<Ban>> {
        let tx = self.db.begin_read()?;
        let bans = tx.open_table(BANS)?;
        let mut out = Vec::new();
        for entry in bans.iter()? {
            let (k, v) = entry?;
            out.push(decode_ban(k.value(), v.value())?);
        }
        Ok(out)
    }

    fn remove_ban(&self, source: &BanSource) -> Result<Option<Ban>> {
        let key = source.storage_key();
        self.write(|tx| {
            let mut bans = tx.open_table(BANS)?;
            let old = bans.remove(key.as_str())?;
            old.map(|v| decode_ban(&key, v.value())).transpose()
        })
    }

    fn expire_bans(&self, now: SystemTime) -> Result<usize> {
        self.write(|tx| {
            let mut bans = tx.open_table(BANS)?;
            let mut doomed = Vec::new();
            for entry in bans.iter()? {
                let (k, v) = entry?;
                if decode_ban(k.value(), v.value())?.is_expired(now) {
                    doomed.push(k.value().to_owned());
                }
            }
            for k in &doomed {
                bans.remove(k.as_str())?;
            }
            Ok(doomed.len())
        })
    }
}

impl CdrStore for RedbStore {
    fn append_cdrs(&self, cdrs: &[Cdr]) -> Result<Vec<u64>> {
        if cdrs.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|tx| {
            let mut table = tx.open_table(CDRS)?;
            let mut by_call = tx.open_table(CDR_BY_CALL)?;
            let mut meta = tx.open_table(META)?;
            let mut last = meta.get(META_LAST_CDR)?.map_or(0, |v| v.value());
            let mut ids = Vec::with_capacity(cdrs.len());
            for cdr in cdrs {
                last += 1;
                table.insert(last, encode_cdr(cdr).as_slice())?;
                by_call.insert((cdr.call_id.as_str(), last), ())?;
                ids.push(last);
            }
            meta.insert(META_LAST_CDR, last)?;
            Ok(ids)
        })
    }

    fn recent_cdrs(&self, limit: usize) -> Result<Vec<CdrEntry>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(CDRS)?;
        let mut out = Vec::new();
        for entry in table.iter()?.rev().take(limit) {
            let (k, v) = entry?;
            out.push(CdrEntry {
                id: k.value(),
                cdr: decode_cdr(v.value())?,
            });
        }
        Ok(out)
    }

    fn cdrs_by_call_id(&self, call_id: &str) -> Result<Vec<CdrEntry>> {
        let tx = self.db.begin_read()?;
        let by_call = tx.open_table(CDR_BY_CALL)?;
        let table = tx.open_table(CDRS)?;
        let mut out = Vec::new();
        for entry in by_call.range((call_id, 0)..=(call_id, u64::MAX))? {
            let id = entry?.0.value().1;
            let v = table.get(id)?.ok_or_else(|| {
                StoreError::Corrupt(format!("cdr index names missing record {id}"))
            })?;
            out.push(CdrEntry {
                id,
                cdr: decode_cdr(v.value())?,
            });
        }
        Ok(out)
    }

    fn prune_cdrs(&self, cutoff: SystemTime) -> Result<usize> {
        self.write(|tx| {
            let mut table = tx.open_table(CDRS)?;
            let mut by_call = tx.open_table(CDR_BY_CALL)?;
            let mut doomed = Vec::new();
            for entry in table.iter()? {
                let (k, v) = entry?;
                let cdr = decode_cdr(v.value())?;
                if cdr.end >= cutoff {
                    break;
                }
                doomed.push((k.value(), cdr.call_id));
            }
            for (id, call_id) in &doomed {
                table.remove(*id)?;
                by_call.remove((call_id.as_str(), *id))?;
            }
            Ok(doomed.len())
        })
    }
}

impl UserStore for RedbStore {
    fn put_user(&self, user: &UserCredentials) -> Result<Option<UserCredentials>> {
        user.check()?;
        let (r, u) = (user.realm.as_str(), user.username.as_str());
        self.write(|tx| {
            let mut t = tx.open_table(USERS)?;
            let old = t.insert((r, u), encode_user(user).as_slice())?;
            old.map(|v| decode_user(r, u, v.value())).transpose()
        })
    }

    fn get_user(&self, realm: &str, username: &str) -> Result<Option<UserCredentials>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(USERS)?;
        let v = t.get((realm, username))?;
        v.map(|v| decode_user(realm, username, v.value()))
            .transpose()
    }

    fn remove_user(&self, realm: &str, username: &str) -> Result<Option<UserCredentials>> {
        self.write(|tx| {
            let mut t = tx.open_table(USERS)?;
            let old = t.remove((realm, username))?;
            old.map(|v| decode_user(realm, username, v.value()))
                .transpose()
        })
    }

    fn list_users(
        &self,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<UserCredentials>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(USERS)?;
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut out = Vec::new();
        for entry in t
            .range::<(&str, &str)>((lower, Bound::Unbounded))?
            .take(limit)
        {
            let (k, v) = entry?;
            let (realm, username) = k.value();
            out.push(decode_user(realm, username, v.value())?);
        }
        Ok(out)
    }
}
