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
//! - [`Gatekeeper`] shares the flood buckets (sharded) and the bans (an atomically swapped
//!   snapshot) with the transport's receive tasks, which check every datagram and connection
//!   with it before parsing.
//!
//! ```
//! use policy::{load::from_toml, FixedCounts, Request, Target, Verdict};
//!
//! let text = r#"
//! [[policy.zone]]
//! name = "wan"
//! methods.refuse = ["MESSAGE"]
//!
//! [[policy.rule]]
//! from = "*@evil.example"
//! action = "drop"
//! "#;
//! let policy = from_toml(text, "sbc.toml", Some(&["lan", "wan"])).unwrap();
//! let msg = sip_message::Message::parse(
//!     &b"INVITE sip:alice@corp.example SIP/2.0\r\n\
//!        Via: SIP/2.0/UDP 203.0.113.9;branch=z9hG4bK1\r\n\
//!        From: <sip:x@evil.example>;tag=1\r\nTo: <sip:alice@corp.example>\r\n\
//!        Call-ID: 1@x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"[..],
//! )
//! .unwrap();
//! let request = Request {
//!     zone: "wan",
//!     source: "203.0.113.9".parse().unwrap(),
//!     message: &msg,
//!     authenticated_user: None,
//!     target: Target::Local,
//! };
//! let decision = policy.evaluate(&request, &FixedCounts::default());
//! assert_eq!(decision.verdict, Verdict::Drop);
//! assert_eq!(
//!     decision.trace.decided_by(),
//!     Some(r#"policy.rule[0] (from = "*@evil.example")"#)
//! );
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bruteforce;
mod compile;
pub mod config;
mod eval;
mod flood;
mod gatekeeper;
pub mod load;
mod pattern;

pub use bruteforce::{BanEvent, BruteForce, Failure};
pub use compile::{FieldError, Policy};
pub use config::{
    Action, AuthConfig, AuthRequirement, BruteForceConfig, CallsConfig, ContentTypesConfig,
    Destination, FloodConfig, LimitsConfig, MethodsConfig, OverloadConfig, PolicyConfig,
    RuleConfig, UserConfig, WhitelistConfig, ZonePolicyConfig, STANDARD_METHODS,
};
pub use eval::{
    reason_phrase, CallCounts, CallKeys, Decision, FixedCounts, Outcome, Request, Step, Target,
    Trace, Verdict,
};
pub use flood::{FloodGuard, FloodVerdict, Overload, ZoneId};
pub use gatekeeper::{Admit, Gatekeeper, SHARDS};
pub use pattern::{address_key, Pattern};
