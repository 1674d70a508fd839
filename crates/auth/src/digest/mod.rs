//! SIP digest authentication: RFC 3261 section 22 with the algorithms of RFC 7616 as RFC 8760
//! brings them to SIP (MD5, SHA-256, SHA-512-256; `qop=auth`).

pub mod algorithm;
mod authenticator;
mod challenge;
mod credentials;
pub mod nonce;
mod replay;

pub use algorithm::Algorithm;
pub use authenticator::{
    Check, DigestAuthenticator, DigestConfig, Failure, Identity, Lookup, Outcome, Pending,
    MAX_CREDENTIALS_PER_REQUEST,
};
pub use challenge::{Challenge, ChallengeKind};
pub use credentials::{CredentialsError, DigestCredentials, MAX_PARAM_LEN};
pub use nonce::ServerSecret;
pub use replay::{NcTable, NcVerdict};

#[cfg(test)]
mod tests;
