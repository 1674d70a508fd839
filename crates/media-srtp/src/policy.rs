//! Per-zone SRTP policy as data, and the decision it implies for one
//! offer/answer: which `a=crypto` lines each side's SDP gets and which
//! transform the relay applies per direction.
//!
//! The decision, by the offerer's zone (rows) and the answerer's (columns);
//! "srtp" means the relay terminates SRTP on that side with its own keys:
//!
//! | offerer \ answerer | plain | terminate | rekey | passthrough |
//! |---|---|---|---|---|
//! | plain | srtp if offered / plain | srtp if offered / srtp | srtp / srtp | untouched |
//! | terminate | srtp / plain | srtp / srtp | srtp / srtp | srtp / srtp |
//! | rekey | srtp / srtp | srtp / srtp | srtp / srtp | srtp / srtp |
//! | passthrough | untouched | srtp / srtp | srtp / srtp | untouched |
//!
//! Two rules give that table: a side is never downgraded from SRTP because
//! of the other zone's policy (so `passthrough` facing `terminate` becomes
//! relay-terminated SRTP rather than plain), and a `plain` zone that offers
//! SRTP gets it (answering RTP/AVP to an RTP/SAVP offer would fail the
//! call). A zone whose policy demands SRTP and whose offer carries no usable
//! `a=crypto` line is refused ([`PolicyError::SrtpRequired`]).

use sdp_message::Crypto;
use thiserror::Error;

use crate::sdes::{self, SdesAnswer, SdesCrypto, SdesError};
use crate::{SrtpProfile, SrtpTransform};

/// How the relay treats SRTP facing one zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZoneSrtpMode {
    /// Plain RTP in this zone, unless its own offer asks for SRTP or the
    /// other zone is `Rekey`.
    #[default]
    Plain,
    /// SRTP on this zone's side, terminated by the relay; plain RTP on the
    /// other side (unless that zone's policy wants SRTP).
    Terminate,
    /// SRTP on both sides, with the relay's own keys on each.
    Rekey,
    /// Keys and packets untouched: end-to-end SRTP the relay cannot read.
    Passthrough,
}

/// A configuration value that is not a mode name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown SRTP mode {0:?} (plain, terminate, rekey, passthrough)")]
pub struct UnknownMode(pub String);

impl std::str::FromStr for ZoneSrtpMode {
    type Err = UnknownMode;

    /// The configuration spelling: `plain`, `terminate`, `rekey`,
    /// `passthrough`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "plain" => Ok(Self::Plain),
            "terminate" => Ok(Self::Terminate),
            "rekey" => Ok(Self::Rekey),
            "passthrough" => Ok(Self::Passthrough),
            other => Err(UnknownMode(other.to_owned())),
        }
    }
}

impl ZoneSrtpMode {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Terminate => "terminate",
            Self::Rekey => "rekey",
            Self::Passthrough => "passthrough",
        }
    }

    fn demands_srtp(self) -> bool {
        matches!(self, Self::Terminate | Self::Rekey)
    }
}

/// A zone's SRTP policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSrtpPolicy {
    /// What the relay does facing this zone.
    pub mode: ZoneSrtpMode,
    /// Suites we accept from and offer to this zone, preferred first.
    pub suites: Vec<SrtpProfile>,
}

impl Default for ZoneSrtpPolicy {
    fn default() -> Self {
        Self {
            mode: ZoneSrtpMode::Plain,
            suites: SrtpProfile::ALL.to_vec(),
        }
    }
}

impl ZoneSrtpPolicy {
    /// A policy with the default suite list.
    pub fn new(mode: ZoneSrtpMode) -> Self {
        Self {
            mode,
            ..Self::default()
        }
    }
}

/// Which rule decided a side, for logs and the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Neither zone demands SRTP and one passes it through.
    Passthrough,
    /// This side's zone is `terminate` or `rekey`.
    ZoneDemandsSrtp,
    /// The other zone is `rekey`.
    OtherZoneRekeys,
    /// This zone is `passthrough`, but the other zone terminates SRTP, so
    /// end-to-end keys are impossible and plain would be a downgrade.
    PassthroughFacingTermination,
    /// This `plain` zone's offer asked for SRTP.
    OfferedSrtp,
    /// Nothing asks for SRTP on this side.
    Plain,
}

/// What one side's media is, as decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Plain RTP (`RTP/AVP`).
    Plain,
    /// SRTP keyed by SDES, terminated by the relay (`RTP/SAVP`).
    Srtp,
    /// Whatever the endpoints agree; the relay neither reads nor changes it.
    Untouched,
}

/// What to do with the `a=crypto` lines of one SDP body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoLines {
    /// Leave them as they are.
    Untouched,
    /// Remove every `a=crypto` line (and use `RTP/AVP`).
    Remove,
    /// Replace them with these lines (and use `RTP/SAVP`).
    Replace(Vec<SdesCrypto>),
}

/// Why the policy refuses the offer or the answer (a 488 for the caller).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    /// The offerer's zone requires SRTP, and the offer has no usable line.
    #[error("policy requires SRTP from the offerer: {0}")]
    SrtpRequired(SdesError),
    /// We offered SRTP to the answerer, which did not accept any line.
    #[error("answerer did not accept our SRTP offer: {0}")]
    AnswerRefusedSrtp(SdesError),
    /// Key generation failed.
    #[error("SDES: {0}")]
    Sdes(SdesError),
}

/// The decision after the offer: the forwarded offer's crypto lines, and
/// what is needed to finish once the answer arrives.
#[derive(Debug)]
pub struct OfferPlan {
    /// The offerer's side.
    pub offerer_side: Side,
    /// The answerer's side.
    pub answerer_side: Side,
    /// Why the offerer's side is what it is.
    pub offerer_reason: Reason,
    /// Why the answerer's side is what it is.
    pub answerer_reason: Reason,
    /// `a=crypto` lines of the offer forwarded to the answerer's zone.
    pub forward_offer: CryptoLines,
    /// Offerer's accepted line and our answer line to it.
    offerer_keys: Option<SdesAnswer>,
    /// Lines we offered to the answerer.
    offered: Vec<SdesCrypto>,
}

/// The full decision once the answer is known.
#[derive(Debug)]
pub struct CryptoPlan {
    /// The offerer's side.
    pub offerer_side: Side,
    /// The answerer's side.
    pub answerer_side: Side,
    /// Why the offerer's side is what it is.
    pub offerer_reason: Reason,
    /// Why the answerer's side is what it is.
    pub answerer_reason: Reason,
    /// `a=crypto` lines of the answer returned to the offerer.
    pub answer_lines: CryptoLines,
    /// Applied to packets from the offerer towards the answerer.
    pub offerer_to_answerer: SrtpTransform,
    /// Applied to packets from the answerer towards the offerer.
    pub answerer_to_offerer: SrtpTransform,
}

/// Decides an offer that arrived from `offerer_zone` and goes to
/// `answerer_zone`, given the offer's `a=crypto` lines (of one m= section).
pub fn plan_offer(
    offer: &[Crypto<'_>],
    offerer_zone: &ZoneSrtpPolicy,
    answerer_zone: &ZoneSrtpPolicy,
) -> Result<OfferPlan, PolicyError> {
    let (s, r) = (offerer_zone.mode, answerer_zone.mode);
    let any_demand = s.demands_srtp() || r.demands_srtp();
    if !any_demand && (s == ZoneSrtpMode::Passthrough || r == ZoneSrtpMode::Passthrough) {
        return Ok(OfferPlan {
            offerer_side: Side::Untouched,
            answerer_side: Side::Untouched,
            offerer_reason: Reason::Passthrough,
            answerer_reason: Reason::Passthrough,
            forward_offer: CryptoLines::Untouched,
            offerer_keys: None,
            offered: Vec::new(),
        });
    }

    let offered_answer = sdes::answer(offer, &offerer_zone.suites);
    let offerer_reason = side_reason(s, r, offered_answer.is_ok());
    let offerer_srtp = offerer_reason != Reason::Plain;
    let offerer_keys = if offerer_srtp {
        Some(offered_answer.map_err(|e| match e {
            SdesError::Random(_) => PolicyError::Sdes(e),
            other => PolicyError::SrtpRequired(other),
        })?)
    } else {
        None
    };

    // We never relay an offer "from" the answerer, so its own offer cannot
    // ask for SRTP.
    let answerer_reason = side_reason(r, s, false);
    let answerer_srtp = answerer_reason != Reason::Plain;
    let (forward_offer, offered) = if answerer_srtp {
        let lines = sdes::offer(&answerer_zone.suites).map_err(PolicyError::Sdes)?;
        (CryptoLines::Replace(lines.clone()), lines)
    } else {
        (CryptoLines::Remove, Vec::new())
    };
    Ok(OfferPlan {
        offerer_side: side(offerer_srtp),
        answerer_side: side(answerer_srtp),
        offerer_reason,
        answerer_reason,
        forward_offer,
        offerer_keys,
        offered,
    })
}

/// The rule for one side, given its zone's mode, the other zone's, and
/// whether this side offered a usable line. Only called when the plan is
/// not a passthrough, so a `passthrough` zone here faces a demanding one.
fn side_reason(own: ZoneSrtpMode, other: ZoneSrtpMode, offered: bool) -> Reason {
    if own.demands_srtp() {
        Reason::ZoneDemandsSrtp
    } else if other == ZoneSrtpMode::Rekey {
        Reason::OtherZoneRekeys
    } else if own == ZoneSrtpMode::Passthrough {
        Reason::PassthroughFacingTermination
    } else if offered {
        Reason::OfferedSrtp
    } else {
        Reason::Plain
    }
}

fn side(srtp: bool) -> Side {
    if srtp {
        Side::Srtp
    } else {
        Side::Plain
    }
}

impl OfferPlan {
    /// Completes the decision with the answer's `a=crypto` lines (of the
    /// same m= section).
    pub fn on_answer(self, answer: &[Crypto<'_>]) -> Result<CryptoPlan, PolicyError> {
        if self.offerer_side == Side::Untouched {
            return Ok(CryptoPlan {
                offerer_side: Side::Untouched,
                answerer_side: Side::Untouched,
                offerer_reason: Reason::Passthrough,
                answerer_reason: Reason::Passthrough,
                answer_lines: CryptoLines::Untouched,
                offerer_to_answerer: SrtpTransform::Passthrough,
                answerer_to_offerer: SrtpTransform::Passthrough,
            });
        }
        // Towards the answerer: our offered line it accepted, and its key.
        let answerer_keys = if self.answerer_side == Side::Srtp {
            Some(
                sdes::accept_answer(&self.offered, answer)
                    .map_err(PolicyError::AnswerRefusedSrtp)?,
            )
        } else {
            None
        };
        let (answer_lines, o2a, a2o) = match (self.offerer_keys, answerer_keys) {
            (Some(off), Some((ours_to_a, theirs_a))) => (
                CryptoLines::Replace(vec![off.local.clone()]),
                SrtpTransform::Reencrypt {
                    inbound: Box::new(off.remote.context()),
                    outbound: Box::new(ours_to_a.context()),
                },
                SrtpTransform::Reencrypt {
                    inbound: Box::new(theirs_a.context()),
                    outbound: Box::new(off.local.context()),
                },
            ),
            (Some(off), None) => (
                CryptoLines::Replace(vec![off.local.clone()]),
                SrtpTransform::Decrypt(Box::new(off.remote.context())),
                SrtpTransform::Encrypt(Box::new(off.local.context())),
            ),
            (None, Some((ours_to_a, theirs_a))) => (
                CryptoLines::Remove,
                SrtpTransform::Encrypt(Box::new(ours_to_a.context())),
                SrtpTransform::Decrypt(Box::new(theirs_a.context())),
            ),
            (None, None) => (
                CryptoLines::Remove,
                SrtpTransform::Passthrough,
                SrtpTransform::Passthrough,
            ),
        };
        Ok(CryptoPlan {
            offerer_side: self.offerer_side,
            answerer_side: self.answerer_side,
            offerer_reason: self.offerer_reason,
            answerer_reason: self.answerer_reason,
            answer_lines,
            offerer_to_answerer: o2a,
            answerer_to_offerer: a2o,
        })
    }
}

#[cfg(test)]
mod tests;
