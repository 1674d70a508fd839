//! SDES key exchange (RFC 4568): `a=crypto` lines in and out.
//!
//! Parsing of the line's syntax is `sdp-message`'s ([`Crypto`]); this module
//! gives it meaning: a supported suite, an `inline:` key of the right length,
//! an optional lifetime, and no MKI, no session parameters it cannot honour.

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use sdp_message::Crypto;
use thiserror::Error;

use crate::profile::{MasterKey, SrtpProfile, KEY_LEN, MAX_SALT_LEN};
use crate::SrtpContext;

/// Standard alphabet; padding written, and accepted with or without on input
/// (some endpoints strip the `=`).
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why an `a=crypto` line cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdesError {
    /// A suite we do not implement (e.g. `F8_128_HMAC_SHA1_80`).
    #[error("unsupported crypto suite {0}")]
    UnsupportedSuite(String),
    /// A key method other than `inline`.
    #[error("unsupported key method {0} (only inline)")]
    UnsupportedKeyMethod(String),
    /// More than one key parameter: only meaningful with MKIs.
    #[error("several keys in one crypto line are not supported")]
    MultipleKeys,
    /// A Master Key Identifier: we do not support MKIs (no SRTP packet of
    /// ours carries one).
    #[error("MKI is not supported")]
    MkiUnsupported,
    /// The inline key is not valid base64.
    #[error("inline key is not valid base64")]
    BadBase64,
    /// The decoded key||salt has the wrong length for the suite.
    #[error("inline key of {got} bytes, {suite} needs {expected}")]
    BadKeyLength {
        /// The suite.
        suite: SrtpProfile,
        /// Bytes decoded.
        got: usize,
        /// Bytes the suite needs.
        expected: usize,
    },
    /// A session parameter we cannot honour (UNENCRYPTED_SRTP, KDR, FEC...).
    #[error("unsupported session parameter {0}")]
    UnsupportedSessionParam(String),
    /// A lifetime of zero packets.
    #[error("key lifetime of zero packets")]
    ZeroLifetime,
    /// No line of the offer (or answer) was usable.
    #[error("no acceptable a=crypto line ({offered} offered)")]
    NoAcceptableCrypto {
        /// Lines that were looked at.
        offered: usize,
    },
    /// The answer picked a tag we did not offer, or changed its suite.
    #[error("answer's crypto tag {0} does not match an offered line")]
    AnswerTagMismatch(u32),
    /// The operating system's random source failed.
    #[error("random source failed: {0}")]
    Random(String),
}

/// One usable `a=crypto` line: tag, suite and master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesCrypto {
    /// The line's tag, echoed by the answer.
    pub tag: u32,
    /// Suite and master key (with salt).
    pub key: MasterKey,
    /// Master key lifetime in packets, if the line gave one.
    pub lifetime: Option<u64>,
}

impl SdesCrypto {
    /// Gives meaning to a syntactically parsed `a=crypto` attribute.
    pub fn from_sdp(c: &Crypto<'_>) -> Result<Self, SdesError> {
        let profile = SrtpProfile::from_name(c.suite)
            .ok_or_else(|| SdesError::UnsupportedSuite(c.suite.to_owned()))?;
        // WSH (window size hint, RFC 4568 6.3.7) is advisory; our window is
        // always at least as large as any sensible hint.
        if let Some(p) = c.session_params.iter().find(|p| !p.starts_with("WSH=")) {
            return Err(SdesError::UnsupportedSessionParam((*p).to_owned()));
        }
        let kp = match c.key_params.as_slice() {
            [kp] => kp,
            [] => return Err(SdesError::NoAcceptableCrypto { offered: 0 }),
            _ => return Err(SdesError::MultipleKeys),
        };
        if kp.method != "inline" {
            return Err(SdesError::UnsupportedKeyMethod(kp.method.to_owned()));
        }
        if kp.mki.is_some() {
            return Err(SdesError::MkiUnsupported);
        }
        let lifetime = kp.lifetime.map(|l| l.packets());
        if lifetime == Some(0) {
            return Err(SdesError::ZeroLifetime);
        }
        let expected = KEY_LEN + profile.salt_len();
        let mut raw = [0u8; 64];
        let got = B64
            .decode_slice(kp.key_salt, &mut raw)
            .map_err(|e| match e {
                base64::DecodeSliceError::OutputSliceTooSmall => SdesError::BadKeyLength {
                    suite: profile,
                    got: raw.len() + 1,
                    expected,
                },
                base64::DecodeSliceError::DecodeError(_) => SdesError::BadBase64,
            })?;
        let key = raw
            .get(..got)
            .and_then(|k| MasterKey::from_concatenated(profile, k))
            .ok_or(SdesError::BadKeyLength {
                suite: profile,
                got,
                expected,
            })?;
        Ok(Self {
            tag: c.tag,
            key,
            lifetime,
        })
    }

    /// A new line with a fresh key from the OS CSPRNG.
    pub fn generate(tag: u32, profile: SrtpProfile) -> Result<Self, SdesError> {
        let key = MasterKey::generate(profile).map_err(|e| SdesError::Random(e.to_string()))?;
        Ok(Self {
            tag,
            key,
            lifetime: None,
        })
    }

    /// The suite.
    pub fn profile(&self) -> SrtpProfile {
        self.key.profile()
    }

    /// A crypto context for this key (honouring its lifetime).
    pub fn context(&self) -> SrtpContext {
        match self.lifetime {
            Some(n) => SrtpContext::with_lifetime(&self.key, n),
            None => SrtpContext::new(&self.key),
        }
    }

    /// The whole SDP line, `a=crypto:...` without the line ending.
    pub fn attribute_line(&self) -> String {
        format!("a=crypto:{self}")
    }
}

/// The attribute value: `<tag> <suite> inline:<base64 key||salt>[|lifetime]`.
impl fmt::Display for SdesCrypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = [0u8; KEY_LEN + MAX_SALT_LEN];
        let n = self.key.concatenated(&mut raw);
        let mut text = [0u8; 64];
        let written = B64
            .encode_slice(raw.get(..n).unwrap_or_default(), &mut text)
            .map_err(|_| fmt::Error)?;
        let b64 =
            std::str::from_utf8(text.get(..written).unwrap_or_default()).map_err(|_| fmt::Error)?;
        write!(f, "{} {} inline:{}", self.tag, self.profile(), b64)?;
        if let Some(l) = self.lifetime {
            if l.is_power_of_two() {
                write!(f, "|2^{}", l.trailing_zeros())?;
            } else {
                write!(f, "|{l}")?;
            }
        }
        Ok(())
    }
}

/// Picks the line to accept from an offer: the first suite of `prefs` (our
/// order of preference) that some usable offered line carries, the
/// offerer's first such line winning among equals.
pub fn select(offer: &[Crypto<'_>], prefs: &[SrtpProfile]) -> Result<SdesCrypto, SdesError> {
    let usable: Vec<SdesCrypto> = offer
        .iter()
        .filter_map(|c| SdesCrypto::from_sdp(c).ok())
        .collect();
    prefs
        .iter()
        .find_map(|p| usable.iter().find(|c| c.profile() == *p))
        .cloned()
        .ok_or(SdesError::NoAcceptableCrypto {
            offered: offer.len(),
        })
}

/// The outcome of answering an SDES offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesAnswer {
    /// The offerer's line we accepted: its key decrypts what it sends.
    pub remote: SdesCrypto,
    /// Our line for the answer (same tag and suite, fresh key): it encrypts
    /// what we send to the offerer.
    pub local: SdesCrypto,
}

/// Answers an offer: selects a line and makes our own fresh key for it.
pub fn answer(offer: &[Crypto<'_>], prefs: &[SrtpProfile]) -> Result<SdesAnswer, SdesError> {
    let remote = select(offer, prefs)?;
    let local = SdesCrypto::generate(remote.tag, remote.profile())?;
    Ok(SdesAnswer { remote, local })
}

/// Lines for an offer of ours: one per suite in `prefs`, tags from 1, each
/// with its own fresh key.
pub fn offer(prefs: &[SrtpProfile]) -> Result<Vec<SdesCrypto>, SdesError> {
    prefs
        .iter()
        .zip(1u32..)
        .map(|(p, tag)| SdesCrypto::generate(tag, *p))
        .collect()
}

/// Reads the answer to an offer of ours: exactly one usable line whose tag
/// and suite match one we offered. Returns (our offered line, their line).
pub fn accept_answer(
    offered: &[SdesCrypto],
    answer: &[Crypto<'_>],
) -> Result<(SdesCrypto, SdesCrypto), SdesError> {
    let theirs = match answer {
        [one] => SdesCrypto::from_sdp(one)?,
        _ => {
            return Err(SdesError::NoAcceptableCrypto {
                offered: answer.len(),
            })
        }
    };
    let ours = offered
        .iter()
        .find(|o| o.tag == theirs.tag && o.profile() == theirs.profile())
        .ok_or(SdesError::AnswerTagMismatch(theirs.tag))?;
    Ok((ours.clone(), theirs))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `a=crypto` values through sdp-message, as the call engine will.
    fn lines(values: &[&str]) -> String {
        let mut sdp = String::from(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\n",
        );
        for v in values {
            sdp.push_str("a=crypto:");
            sdp.push_str(v);
            sdp.push_str("\r\n");
        }
        sdp
    }

    fn with_cryptos<T>(values: &[&str], f: impl FnOnce(&[Crypto<'_>]) -> T) -> T {
        let text = lines(values);
        let sdp = sdp_message::parse(text.as_bytes()).unwrap();
        let c: Vec<Crypto<'_>> = sdp.media[0].crypto().map(|c| c.unwrap()).collect();
        f(&c)
    }

    const RFC4568_KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

    #[test]
    fn parses_rfc4568_example_with_lifetime() {
        let v = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC4568_KEY}|2^20");
        let c = with_cryptos(&[&v], |c| SdesCrypto::from_sdp(&c[0])).unwrap();
        assert_eq!(c.tag, 1);
        assert_eq!(c.profile(), SrtpProfile::AesCm128HmacSha1_80);
        assert_eq!(c.lifetime, Some(1 << 20));
        assert_eq!(&c.key.key()[..4], b"YS__");
        // Generation writes back exactly what was read.
        assert_eq!(c.to_string(), v);
        assert_eq!(c.attribute_line(), format!("a=crypto:{v}"));
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let cases: &[(&str, SdesError)] = &[
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4",
                SdesError::MkiUnsupported,
            ),
            (
                "1 F8_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
                SdesError::UnsupportedSuite("F8_128_HMAC_SHA1_80".into()),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz UNENCRYPTED_SRTP",
                SdesError::UnsupportedSessionParam("UNENCRYPTED_SRTP".into()),
            ),
            (
                "1 AEAD_AES_128_GCM inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
                SdesError::BadKeyLength {
                    suite: SrtpProfile::AeadAes128Gcm,
                    got: 30,
                    expected: 28,
                },
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:WVNf",
                SdesError::BadKeyLength {
                    suite: SrtpProfile::AesCm128HmacSha1_80,
                    got: 3,
                    expected: 30,
                },
            ),
        ];
        for (v, want) in cases {
            let got = with_cryptos(&[v], |c| SdesCrypto::from_sdp(&c[0]));
            assert_eq!(got.as_ref(), Err(want), "{v}");
        }
        // WSH is advisory and accepted.
        let v = format!("1 AES_CM_128_HMAC_SHA1_32 inline:{RFC4568_KEY} WSH=64");
        assert!(with_cryptos(&[&v], |c| SdesCrypto::from_sdp(&c[0])).is_ok());
    }

    #[test]
    fn generated_lines_round_trip_through_the_parser() {
        for p in SrtpProfile::ALL {
            let a = SdesCrypto::generate(7, p).unwrap();
            let b = SdesCrypto::generate(7, p).unwrap();
            assert_ne!(a.key, b.key, "fresh keys differ");
            let v = a.to_string();
            let back = with_cryptos(&[&v], |c| SdesCrypto::from_sdp(&c[0])).unwrap();
            assert_eq!(back, a);
        }
    }

    #[test]
    fn answer_follows_our_preference_and_skips_unusable_lines() {
        let key28 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw==";
        let offer = [
            format!("1 AES_CM_128_HMAC_SHA1_32 inline:{RFC4568_KEY}"),
            format!("2 AES_CM_128_HMAC_SHA1_80 inline:{RFC4568_KEY}|1:1"),
            format!("3 AEAD_AES_128_GCM inline:{key28}"),
            format!("4 AES_CM_128_HMAC_SHA1_80 inline:{RFC4568_KEY}"),
        ];
        let refs: Vec<&str> = offer.iter().map(String::as_str).collect();
        let a = with_cryptos(&refs, |c| answer(c, &SrtpProfile::ALL)).unwrap();
        // Tag 2 carries an MKI: skipped; tag 4 is the first usable _80.
        assert_eq!(a.remote.tag, 4);
        assert_eq!(a.local.tag, 4);
        assert_eq!(a.local.profile(), SrtpProfile::AesCm128HmacSha1_80);
        assert_ne!(a.local.key, a.remote.key);

        let only_gcm = with_cryptos(&refs, |c| {
            select(c, &[SrtpProfile::AeadAes128Gcm]).map(|s| s.tag)
        });
        assert_eq!(only_gcm, Ok(3));
        let none = with_cryptos(&refs[..1], |c| select(c, &[SrtpProfile::AeadAes128Gcm]));
        assert_eq!(none, Err(SdesError::NoAcceptableCrypto { offered: 1 }));
    }

    #[test]
    fn answer_to_our_offer_must_echo_an_offered_tag() {
        let ours = offer(&SrtpProfile::ALL).unwrap();
        assert_eq!(ours.iter().map(|c| c.tag).collect::<Vec<_>>(), [1, 2, 3]);
        let gcm_reply = SdesCrypto::generate(2, SrtpProfile::AeadAes128Gcm)
            .unwrap()
            .to_string();
        let (mine, theirs) = with_cryptos(&[&gcm_reply], |c| accept_answer(&ours, c)).unwrap();
        assert_eq!(mine, ours[1]);
        assert_eq!(theirs.tag, 2);
        let wrong = SdesCrypto::generate(2, SrtpProfile::AesCm128HmacSha1_32)
            .unwrap()
            .to_string();
        assert_eq!(
            with_cryptos(&[&wrong], |c| accept_answer(&ours, c)),
            Err(SdesError::AnswerTagMismatch(2))
        );
    }
}
