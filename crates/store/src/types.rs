//! Plain data types the store keeps. No SIP parsing here: the call engine and the policy layer
//! fill these in from what they parsed.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Result, StoreError};

/// One registered contact of an address of record (RFC 3261 section 10, RFC 5626).
///
/// Times are kept to the whole second (unix seconds): both stores truncate `expires_at` and
/// `updated_at` on write, so what is read back equals what a restart would read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// Canonical AOR key, for example `sip:alice@example.com`.
    pub aor: String,
    /// The Contact URI as received, URI parameters kept.
    pub contact: String,
    /// The Contact header parameters (`;expires=...;+sip.instance=...`), as received.
    pub contact_params: String,
    /// `q` in permille (`q=0.5` is 500), if given.
    pub q: Option<u16>,
    /// When the binding lapses.
    pub expires_at: SystemTime,
    /// Call-ID of the REGISTER that last wrote this binding.
    pub call_id: String,
    /// CSeq number of that REGISTER.
    pub cseq: u32,
    /// Path header values (RFC 3327), in order.
    pub path: Vec<String>,
    /// Source `ip:port` the REGISTER came from.
    pub received: Option<String>,
    /// Transport flow token, to reach the contact over the connection it registered on.
    pub flow: Option<String>,
    /// `+sip.instance` (RFC 5626), without the angle brackets or quotes, if given.
    pub instance_id: Option<String>,
    /// `reg-id` (RFC 5626), if given.
    pub reg_id: Option<u32>,
    /// User-Agent header of the REGISTER.
    pub user_agent: Option<String>,
    /// When the binding was last written.
    pub updated_at: SystemTime,
}

impl Binding {
    /// A binding with the required fields set and every optional field empty.
    pub fn new(
        aor: impl Into<String>,
        contact: impl Into<String>,
        expires_at: SystemTime,
        call_id: impl Into<String>,
        cseq: u32,
        updated_at: SystemTime,
    ) -> Binding {
        Binding {
            aor: aor.into(),
            contact: contact.into(),
            contact_params: String::new(),
            q: None,
            expires_at,
            call_id: call_id.into(),
            cseq,
            path: Vec::new(),
            received: None,
            flow: None,
            instance_id: None,
            reg_id: None,
            user_agent: None,
            updated_at,
        }
    }

    /// What identifies this binding within its AOR: `(instance-id, reg-id)` when both are present
    /// (RFC 5626 section 6), the Contact URI string otherwise.
    ///
    /// The store compares contacts byte for byte; RFC 3261 URI equivalence is the registrar's job
    /// (it removes the old key and upserts the new binding when they are equivalent but spelled
    /// differently).
    pub fn key(&self) -> BindingKey {
        match (&self.instance_id, self.reg_id) {
            (Some(instance_id), Some(reg_id)) => BindingKey::Outbound {
                instance_id: instance_id.clone(),
                reg_id,
            },
            _ => BindingKey::Contact(self.contact.clone()),
        }
    }

    /// Whether the binding has lapsed at `now` (`expires_at <= now`).
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at <= now
    }

    /// Seconds left at `now`, for the `expires` parameter of a 200 OK (0 when lapsed).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.expires_at
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
    }

    pub(crate) fn normalize(&mut self) {
        self.expires_at = trunc_secs(self.expires_at);
        self.updated_at = trunc_secs(self.updated_at);
    }
}

/// Identity of a binding within an AOR. See [`Binding::key`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BindingKey {
    /// An RFC 5626 flow: instance-id and reg-id.
    Outbound {
        /// `+sip.instance` value.
        instance_id: String,
        /// `reg-id` value.
        reg_id: u32,
    },
    /// A plain RFC 3261 binding, keyed by the Contact URI string.
    Contact(String),
}

/// What a REGISTER does to the bindings of one AOR, as computed by the registrar. The store
/// applies it in one transaction, durably, and returns the resulting binding set.
///
/// Order of application: `remove_all`, then `remove`, then `upsert` (in order; a later binding
/// with the same key wins). An upserted binding that is already expired at `now` removes its key
/// (that is `Expires: 0`). Bindings expired at `now` are dropped from the result.
///
/// Two checks make concurrent REGISTERs for the same AOR safe, and abort the whole update if
/// they fail (nothing is written):
/// - order (RFC 3261 section 10.3 steps 6 and 7): every existing, unexpired binding the update
///   touches (all of them for `remove_all`, otherwise those whose key is removed or upserted)
///   must not carry the update's `call_id` with a CSeq `>= cseq`, else
///   [`StoreError::OutOfOrder`];
/// - `max_bindings`: if the result has more bindings than the limit and more than the AOR had
///   before, [`StoreError::TooManyBindings`] (a refresh of an AOR that is already over a lowered
///   limit still succeeds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindingUpdate {
    /// The registrar's clock for this request.
    pub now: SystemTime,
    /// Call-ID of the REGISTER.
    pub call_id: String,
    /// CSeq number of the REGISTER.
    pub cseq: u32,
    /// `Contact: *` with `Expires: 0`: remove every binding first.
    pub remove_all: bool,
    /// Bindings to remove, by key.
    pub remove: Vec<BindingKey>,
    /// Bindings to insert, or to replace the binding with the same key.
    pub upsert: Vec<Binding>,
    /// Maximum number of bindings the AOR may have after the update.
    pub max_bindings: Option<usize>,
}

impl BindingUpdate {
    /// An empty update for the request `(call_id, cseq)` handled at `now`.
    pub fn new(now: SystemTime, call_id: impl Into<String>, cseq: u32) -> BindingUpdate {
        BindingUpdate {
            now,
            call_id: call_id.into(),
            cseq,
            remove_all: false,
            remove: Vec::new(),
            upsert: Vec::new(),
            max_bindings: None,
        }
    }

    /// Remove every existing binding first (`Contact: *`).
    pub fn remove_all(mut self) -> Self {
        self.remove_all = true;
        self
    }

    /// Remove the binding with this key, if present.
    pub fn remove(mut self, key: BindingKey) -> Self {
        self.remove.push(key);
        self
    }

    /// Insert this binding, or replace the one with the same key.
    pub fn upsert(mut self, binding: Binding) -> Self {
        self.upsert.push(binding);
        self
    }

    /// Refuse the update if it grows the AOR beyond `max` bindings.
    pub fn max_bindings(mut self, max: usize) -> Self {
        self.max_bindings = Some(max);
        self
    }
}

/// Numbers the admin shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistrationCount {
    /// AORs with at least one stored binding.
    pub aors: u64,
    /// Stored bindings (including lapsed ones not yet purged by `expire`).
    pub bindings: u64,
}

/// What a ban applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BanSource {
    /// A source address. IPv4-mapped IPv6 addresses are stored as IPv4, so that
    /// `::ffff:192.0.2.1` and `192.0.2.1` are one ban.
    Ip(IpAddr),
    /// Any other key the policy layer bans by (a user, a realm, a User-Agent...).
    Key(String),
}

impl BanSource {
    /// A ban source for an address, canonicalised.
    pub fn ip(ip: IpAddr) -> BanSource {
        BanSource::Ip(ip.to_canonical())
    }

    /// The string the backends key bans by: `ip:<address>` or `key:<key>`.
    pub fn storage_key(&self) -> String {
        match self {
            BanSource::Ip(ip) => format!("ip:{}", ip.to_canonical()),
            BanSource::Key(k) => format!("key:{k}"),
        }
    }

    /// Inverse of [`BanSource::storage_key`].
    pub fn from_storage_key(s: &str) -> Result<BanSource> {
        if let Some(ip) = s.strip_prefix("ip:") {
            ip.parse()
                .map(BanSource::Ip)
                .map_err(|_| StoreError::Corrupt(format!("bad ban key {s:?}")))
        } else if let Some(k) = s.strip_prefix("key:") {
            Ok(BanSource::Key(k.to_owned()))
        } else {
            Err(StoreError::Corrupt(format!("bad ban key {s:?}")))
        }
    }

    pub(crate) fn normalized(&self) -> BanSource {
        match self {
            BanSource::Ip(ip) => BanSource::Ip(ip.to_canonical()),
            BanSource::Key(k) => BanSource::Key(k.clone()),
        }
    }
}

impl fmt::Display for BanSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BanSource::Ip(ip) => write!(f, "{ip}"),
            BanSource::Key(k) => f.write_str(k),
        }
    }
}

/// A ban decided by the policy layer. Times are whole unix seconds, like bindings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    /// What is banned.
    pub source: BanSource,
    /// When the ban lapses.
    pub until: SystemTime,
    /// Why (shown by the admin, logged).
    pub reason: String,
    /// How many times this source has been banned (or offended), for escalation.
    pub count: u32,
}

impl Ban {
    /// Whether the ban has lapsed at `now` (`until <= now`).
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.until <= now
    }

    pub(crate) fn normalized(&self) -> Ban {
        Ban {
            source: self.source.normalized(),
            until: trunc_secs(self.until),
            reason: self.reason.clone(),
            count: self.count,
        }
    }
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// Answered (2xx), then ended by BYE or a timeout.
    Answered,
    /// 486/600 Busy.
    Busy,
    /// No answer (408, 480, 487 after a no-answer timer).
    NoAnswer,
    /// CANCELled by the caller before an answer.
    Cancelled,
    /// Failed with this final status.
    Failed(u16),
}

/// A call detail record. Times are kept to the millisecond.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cdr {
    /// Call-ID of the inbound leg.
    pub call_id: String,
    /// From URI of the inbound leg.
    pub from: String,
    /// To URI (or request URI) of the inbound leg.
    pub to: String,
    /// When the INVITE arrived.
    pub start: SystemTime,
    /// When the call was answered, if it was.
    pub answer: Option<SystemTime>,
    /// When the call ended.
    pub end: SystemTime,
    /// How it ended.
    pub disposition: Disposition,
    /// Zone the call came in from.
    pub zone_in: String,
    /// Zone the call went out to.
    pub zone_out: String,
    /// Media bytes relayed from the caller's side.
    pub bytes_in: u64,
    /// Media bytes relayed towards the caller's side.
    pub bytes_out: u64,
}

impl Cdr {
    pub(crate) fn normalized(&self) -> Cdr {
        Cdr {
            start: trunc_millis(self.start),
            answer: self.answer.map(trunc_millis),
            end: trunc_millis(self.end),
            ..self.clone()
        }
    }
}

/// A CDR as stored, with the id the store gave it (increasing in append order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CdrEntry {
    /// Store-assigned id, starting at 1, increasing in append order.
    pub id: u64,
    /// The record.
    pub cdr: Cdr,
}

/// Unix seconds of `t`, 0 for times before the epoch.
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Unix milliseconds of `t`, 0 for times before the epoch, saturating.
pub(crate) fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn from_unix_secs(s: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_secs(s))
}

pub(crate) fn from_unix_millis(ms: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

fn trunc_secs(t: SystemTime) -> SystemTime {
    from_unix_secs(unix_secs(t)).unwrap_or(t)
}

fn trunc_millis(t: SystemTime) -> SystemTime {
    from_unix_millis(unix_millis(t)).unwrap_or(t)
}
