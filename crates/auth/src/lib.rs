//! # auth: who may use sipwarden
//!
//! - [`digest`]: SIP digest authentication (RFC 3261 section 22, RFC 7616, RFC 8760) as a
//!   sans-IO [`DigestAuthenticator`]: stateless HMAC-bound nonces, a bounded nonce-count table
//!   against replays, identical answers (and work) for unknown users and wrong passwords.
//! - [`credential`]: where HA1 values come from ([`CredentialSource`]; the embedded
//!   [`store::UserStore`]).
//! - [`radius`]: a RADIUS client (RFC 2865, RFC 5090 digest attributes, Message-Authenticator
//!   of RFC 3579): a sans-IO core with retransmission and failover, and a small tokio UDP shell.

//!
//! ## How the call engine uses it
//!
//! The engine task owns one [`DigestAuthenticator`] per realm (its only state: the bounded
//! nonce-count table) and, for RADIUS, a [`radius::RadiusHandle`] (or the sans-IO
//! [`radius::RadiusClient`] fed by the transport). For a request its policy says must be
//! authenticated (never ACK or CANCEL, RFC 3261 section 22.1):
//!
//! 1. `auth.check(&msg, kind, source_ip, now)` with [`ChallengeKind::Www`] as registrar or UAS
//!    (reads Authorization, answers 401) or [`ChallengeKind::Proxy`] as proxy (reads
//!    Proxy-Authorization, answers 407).
//! 2. [`Check::Challenge`]: send `challenge.status()`/`reason()` with one
//!    `challenge.header_name(): value` line per `challenge.values` (plus the usual Via, From,
//!    To with tag, Call-ID, CSeq). `failure` is for the log and, when `failure.is_guess()`, for
//!    the ban counter of the source.
//! 3. [`Check::Lookup`]: ask the credential source for `(username, realm, algorithm)`:
//!    the embedded store synchronously ([`CredentialSource::ha1`], a redb read of a few
//!    microseconds) then `auth.finish(pending, Lookup::Ha1(ha1), now)`; or RADIUS
//!    asynchronously (`radius.verify(DigestRequest::from(&*pending))`), parking the server
//!    transaction until the verdict arrives, then `auth.finish(pending, Lookup::Verified(ok),
//!    now)`. A RADIUS timeout is not a rejection: answer 503 (or 500) and do not count a guess.
//! 4. [`Outcome::Authenticated`]: go on with the request as `identity.username`; a proxy
//!    removes its own Proxy-Authorization before forwarding. [`Outcome::Rejected`]: send its
//!    challenge (step 2).
//!
//! Call `auth.purge(now)` from a housekeeping timer (once per nonce lifetime), and
//! `auth.reconfigure(config, now)` on reload.

#![forbid(unsafe_code)]

pub mod credential;
pub mod digest;
pub mod radius;

pub use credential::{user_credentials, CredentialError, CredentialSource, Ha1, StoreCredentials};
pub use digest::{
    Algorithm, Challenge, ChallengeKind, Check, DigestAuthenticator, DigestConfig, Failure,
    Identity, Lookup, Outcome, Pending, ServerSecret,
};
