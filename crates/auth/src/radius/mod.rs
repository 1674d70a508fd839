//! RADIUS client for digest authentication (RFC 2865, RFC 5090; Message-Authenticator of
//! RFC 3579 in every request and checked in every response).

pub mod client;
pub mod codec;
pub mod udp;

pub use client::{
    DigestDialect, DigestRequest, Event, RadiusClient, RadiusConfig, RadiusError, Stats, Transmit,
    Verdict,
};
pub use udp::RadiusHandle;
