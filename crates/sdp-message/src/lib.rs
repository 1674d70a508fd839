//! SDP (RFC 8866) parsing and byte-preserving rewriting for the sipwarden
//! media relay.
//!
//! * [`parse`] / [`parse_with_limits`] turn a body into a
//!   [`SessionDescription`] that borrows from the input (zero-copy), under
//!   explicit [`SdpLimits`]. Input from the network can produce errors but
//!   never a panic, and work and memory are linear in its size.
//! * [`Attribute::typed`] decodes well-known attributes on demand
//!   (rtpmap, fmtp, ptime, direction, rtcp, crypto, ICE, mid, ssrc, group).
//! * [`Rewriter`] changes addresses, ports and attributes while copying every
//!   other byte of the original unchanged.
//! * [`summary`] gives an owned [`SdpSummary`] for tooling.
//!
//! ```
//! use sdp_message::{parse, Rewriter};
//! let offer = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
//! m=audio 49170 RTP/AVP 0\r\n";
//! let sdp = parse(offer)?;
//! let mut rw = Rewriter::new(&sdp);
//! rw.set_session_connection("203.0.113.5".parse().unwrap())
//!     .set_media_port(0, 30000)?;
//! let out = rw.finish();
//! let again = parse(&out)?;
//! assert_eq!(again.connection.unwrap().address, "203.0.113.5");
//! assert_eq!(again.media[0].port, 30000);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod attr;
mod error;
mod lex;
mod model;
mod parser;
mod rewrite;
mod summary;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use attr::{
    Candidate, CandidateType, Crypto, Direction, Fmtp, Group, KeyParam, Lifetime, Mki, Rtcp,
    Rtpmap, Ssrc, TypedAttr,
};
pub use error::{SdpError, SdpErrorKind, SdpLimits};
pub use model::{
    Attribute, Bandwidth, Connection, LineEnding, Media, Origin, RawLine, SessionDescription,
    Timing,
};
pub use parser::{parse, parse_with_limits};
pub use rewrite::{RewriteError, Rewriter};
pub use summary::{summary, MediaSummary, SdpSummary};
