//! # auth: who may use sipwarden
//!
//! - [`digest`]: SIP digest authentication (RFC 3261 section 22, RFC 7616, RFC 8760) as a
//!   sans-IO [`DigestAuthenticator`]: stateless HMAC-bound nonces, a bounded nonce-count table
//!   against replays, identical answers (and work) for unknown users and wrong passwords.
//! - [`credential`]: where HA1 values come from ([`CredentialSource`]; the embedded
//!   [`store::UserStore`]).
//! - [`radius`]: a RADIUS client (RFC 2865, RFC 5090 digest attributes, Message-Authenticator
//!   of RFC 3579): a sans-IO core with retransmission and failover, and a small tokio UDP shell.

#![forbid(unsafe_code)]

pub mod credential;
pub mod digest;
pub mod radius;

pub use credential::{user_credentials, CredentialError, CredentialSource, Ha1, StoreCredentials};
pub use digest::{
    Algorithm, Challenge, ChallengeKind, Check, DigestAuthenticator, DigestConfig, Failure,
    Identity, Lookup, Outcome, Pending, ServerSecret,
};
