//! The policy tables as the administrator writes them (the `[policy]` section of the
//! configuration file), with their defaults.
//!
//! Every table refuses fields it does not know, as the rest of the configuration does. These
//! types only check the shape of the file; [`crate::Policy::compile`] checks the values and
//! builds the form that evaluation uses.

use serde::{Deserialize, Serialize};

/// The methods a zone allows when its entry names none: every method of RFC 3261 and of the
/// extensions a PBX and phones use (RFC 3262, 3265, 3311, 3428, 3515, 3903, 6086).
pub const STANDARD_METHODS: &[&str] = &[
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "PRACK",
    "UPDATE",
    "INFO",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "PUBLISH",
];

/// `[policy]`: everything the firewall administrator decides.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Networks that are never banned nor rate-limited (the PBX, the ITSP's servers), in CIDR
    /// notation or as bare addresses.
    pub trusted: Vec<String>,
    /// `[[policy.zone]]`: per-zone tables. A zone without an entry gets the defaults.
    pub zone: Vec<ZonePolicyConfig>,
    /// `[[policy.rule]]`: ordered match rules; the first that matches decides.
    pub rule: Vec<RuleConfig>,
    /// `[[policy.user]]`: per-user settings (caller whitelist, call limit).
    pub user: Vec<UserConfig>,
    /// `[policy.bruteforce]`: banning sources that fail authentication.
    pub bruteforce: BruteForceConfig,
    /// `[policy.overload]`: when new requests are answered 503.
    pub overload: OverloadConfig,
    /// `[policy.calls]`: how calls in progress are counted for the limits.
    pub calls: CallsConfig,
}

/// One `[[policy.zone]]`: what a zone lets in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZonePolicyConfig {
    /// The zone (a `[[zone]]` of the configuration).
    pub name: String,
    /// `methods.*`
    #[serde(default)]
    pub methods: MethodsConfig,
    /// `auth.*`
    #[serde(default)]
    pub auth: AuthConfig,
    /// `content_types.*`
    #[serde(default)]
    pub content_types: ContentTypesConfig,
    /// `limits.*`
    #[serde(default)]
    pub limits: LimitsConfig,
    /// `flood.*`
    #[serde(default)]
    pub flood: FloodConfig,
}

impl ZonePolicyConfig {
    /// The entry a zone gets when `[policy]` has none for it.
    pub fn defaults(name: &str) -> Self {
        ZonePolicyConfig {
            name: name.to_owned(),
            methods: MethodsConfig::default(),
            auth: AuthConfig::default(),
            content_types: ContentTypesConfig::default(),
            limits: LimitsConfig::default(),
            flood: FloodConfig::default(),
        }
    }
}

/// `methods.*` of a zone. Method names are case-sensitive (RFC 3261 section 7.1).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MethodsConfig {
    /// Methods passed on; any other method is refused with 405 (`Allow` lists these). Not
    /// set: [`STANDARD_METHODS`] less those in `refuse`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// Methods sipwarden answers itself and never forwards (e.g. OPTIONS keep-alives); they
    /// need not be in `allow`.
    pub local_only: Vec<String>,
    /// Methods refused with 403 (rather than 405): explicitly forbidden from this zone.
    pub refuse: Vec<String>,
}

/// `auth.*` of a zone.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Which requests must be authenticated (digest) before anything else happens to them.
    pub require: Vec<AuthRequirement>,
}

/// One entry of `auth.require`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthRequirement {
    /// The methods (ACK and CANCEL cannot be challenged, RFC 3261 section 22.1).
    pub methods: Vec<String>,
    /// Where the request goes: to sipwarden's own users and registrar (`local`), beyond it
    /// (`onward`), or either (`any`).
    #[serde(default)]
    pub destination: Destination,
}

/// Which requests an `auth.require` entry covers, by where they go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Destination {
    /// To a domain or address that sipwarden serves itself.
    Local,
    /// Anywhere else (a trunk, another domain).
    Onward,
    /// Either.
    #[default]
    Any,
}

/// `content_types.*` of a zone.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContentTypesConfig {
    /// The body types let in (`type/subtype`, `type/*`, `*/*`); a request with a body of another
    /// type is refused with 415. Not set: any type. An empty list: no body at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
}

/// `limits.*` of a zone. Not set: no limit.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// The most calls at once in this zone (new ones get 503).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<u32>,
    /// The most calls at once one user makes (403) or receives (486); `[[policy.user]]`
    /// `max_calls` overrides it for one user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_calls_per_user: Option<u32>,
    /// The most media streams (`m=` lines) one session description may offer (488).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_media_streams: Option<u32>,
}

/// `flood.*` of a zone: a token bucket per source address. Off unless `rate` is set: a
/// default limit would cut a PBX or a load test off without warning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FloodConfig {
    /// Packets per second one source may send on average; 0 (the default) turns the limit off.
    pub rate: u32,
    /// Packets one source may send at once after being quiet; 0 (the default): twice `rate`.
    pub burst: u32,
}

impl FloodConfig {
    /// The burst in force: `burst`, or twice `rate` when `burst` is 0.
    pub fn effective_burst(&self) -> u32 {
        if self.burst == 0 {
            self.rate.saturating_mul(2).max(1)
        } else {
            self.burst
        }
    }
}

/// One `[[policy.rule]]`. Every condition given must hold for the rule to match; a rule with
/// no condition matches every request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The zones the rule applies to; empty: every zone.
    #[serde(default)]
    pub zones: Vec<String>,
    /// The methods the rule applies to; empty: every method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Source networks; empty: any source.
    #[serde(default)]
    pub source: Vec<String>,
    /// Glob (`*`, `?`) over the From address, `user@host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Regular expression over the From address, `user@host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_regex: Option<String>,
    /// Glob over the To address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Regular expression over the To address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_regex: Option<String>,
    /// Glob over the Request-URI address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_uri: Option<String>,
    /// Regular expression over the Request-URI address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_uri_regex: Option<String>,
    /// Glob over the User-Agent header (empty when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Regular expression over the User-Agent header (empty when absent); e.g. the common
    /// scanners, `(?i)friendly-scanner|sipvicious|sipcli`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent_regex: Option<String>,
    /// What happens to a matching request.
    pub action: Action,
    /// For `refuse`: the status (400 to 699; default 403).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// For `refuse`: the reason phrase (default: the status's usual phrase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Stop reading the rules; the checks after them (authentication, whitelists, limits)
    /// still apply.
    Allow,
    /// Answer with an error status (403 unless `status` says otherwise).
    Refuse,
    /// Discard without an answer.
    Drop,
}

/// One `[[policy.user]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// `alice` (any domain) or `alice@corp.example`.
    pub user: String,
    /// `whitelist.*`
    #[serde(default)]
    pub whitelist: WhitelistConfig,
    /// The most calls at once this user makes or receives (overrides the zone's
    /// `limits.max_calls_per_user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<u32>,
}

/// `whitelist.*` of a user: who may call them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhitelistConfig {
    /// Whether the whitelist is in force; off, anyone may call.
    pub enabled: bool,
    /// Globs over the caller's From address, `user@host`.
    pub callers: Vec<String>,
}

/// `[policy.bruteforce]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BruteForceConfig {
    /// Failed authentications from one source address, within `window_s`, that ban it; 0
    /// turns banning off.
    pub max_failures: u32,
    /// The sliding window, in seconds.
    pub window_s: u32,
    /// The first ban's length, in seconds; each further ban of the same source doubles it.
    pub ban_s: u32,
    /// The longest ban, in seconds.
    pub max_ban_s: u32,
    /// Failed authentications for one user, from any source, within `window_s`, that lock the
    /// user out for `ban_s` (escalating like bans); 0 turns lockouts off.
    pub user_max_failures: u32,
    /// How long a source's or user's past offences count towards escalation, in seconds.
    pub forget_s: u32,
    /// The most sources and users whose failures are counted at once (the oldest is forgotten).
    pub capacity: u32,
    /// The most bans in force at once (the one ending first is lifted early).
    pub max_bans: u32,
}

impl Default for BruteForceConfig {
    fn default() -> Self {
        BruteForceConfig {
            max_failures: 5,
            window_s: 60,
            ban_s: 300,
            max_ban_s: 86_400,
            user_max_failures: 20,
            forget_s: 604_800,
            capacity: 65_536,
            max_bans: 65_536,
        }
    }
}

/// `[policy.overload]`: hysteresis on the engine's load (its transactions in use, as a share
/// of `transaction.max_transactions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OverloadConfig {
    /// Load, in percent, at which new requests start being answered 503.
    pub enter_percent: u8,
    /// Load, in percent, below which they stop.
    pub leave_percent: u8,
    /// The `Retry-After` of those 503 answers, in seconds.
    pub retry_after_s: u32,
}

impl Default for OverloadConfig {
    fn default() -> Self {
        OverloadConfig {
            enter_percent: 90,
            leave_percent: 75,
            retry_after_s: 5,
        }
    }
}

/// `[policy.calls]`: the counting of calls in progress that the zones' and users' call limits
/// compare with. A call counts from its initial INVITE being let through until it ends (BYE,
/// CANCEL, a final failure), or at the latest `max_duration_s` after it started (or, with a
/// session timer, when its session interval runs out unrefreshed): a lost BYE cannot hold a
/// slot for ever. The call itself is not cut off then; it only stops counting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallsConfig {
    /// The longest a call counts, in seconds.
    pub max_duration_s: u32,
    /// The most calls counted at once; beyond it the one that would stop counting first is
    /// forgotten.
    pub max_tracked: u32,
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            max_duration_s: 14_400,
            max_tracked: 65_536,
        }
    }
}
