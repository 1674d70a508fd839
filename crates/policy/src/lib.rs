//! Pure policy of sipwarden: what the firewall administrator writes as tables, and the state that
//! protects the edge. No I/O and no clock: time is an argument.
//!
//! - [`PolicyConfig`] is the `[policy]` section of the configuration file (serde);
//!   [`Policy::compile`] checks it (errors name the field, [`FieldError`]) and builds a
//!   [`Policy`]; [`load`] reads it from TOML text with lines, for tools.
//! - [`Policy::evaluate`] judges one parsed request from a zone: a [`Verdict`] and a [`Trace`]
//!   of the table entries consulted, the last of which decided.
//! - [`BruteForce`] counts failed authentications per source and per user in a sliding window
//!   and bans; the bans it decides are [`store::Ban`]s for the caller to persist.
//! - [`FloodGuard`] is the per-source token-bucket check run on every packet before parsing;
//!   [`Overload`] says when new requests get 503 with `Retry-After`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bruteforce;
mod compile;
pub mod config;
mod eval;
mod flood;
pub mod load;
mod pattern;

pub use bruteforce::{BanEvent, BruteForce, Failure};
pub use compile::{FieldError, Policy};
pub use config::{
    Action, AuthConfig, AuthRequirement, BruteForceConfig, ContentTypesConfig, Destination,
    FloodConfig, LimitsConfig, MethodsConfig, OverloadConfig, PolicyConfig, RuleConfig, UserConfig,
    WhitelistConfig, ZonePolicyConfig, STANDARD_METHODS,
};
pub use eval::{
    reason_phrase, CallCounts, Decision, FixedCounts, Outcome, Request, Step, Target, Trace,
    Verdict,
};
pub use flood::{FloodGuard, FloodVerdict, Overload, ZoneId};
pub use pattern::{address_key, Pattern};
