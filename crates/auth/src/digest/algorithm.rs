//! The digest hash functions (RFC 7616 section 3.4.1, RFC 8760) and the response computation.

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

/// A digest algorithm. Only the non-session forms: the `-sess` variants need the password-derived
/// HA1 mixed with the client's nonce, which gives an SBC nothing in return for the extra state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// `MD5`, the RFC 3261 default (and the meaning of an absent `algorithm` parameter).
    Md5,
    /// `SHA-256` (RFC 7616, RFC 8760).
    Sha256,
    /// `SHA-512-256`: SHA-512/256 of FIPS 180-4 (RFC 7616 section 3.9.2).
    Sha512_256,
}

impl Algorithm {
    /// Every algorithm, strongest first (the order RFC 8760 section 2.4 asks challenges to use).
    pub const ALL: [Algorithm; 3] = [Algorithm::Sha512_256, Algorithm::Sha256, Algorithm::Md5];

    /// The token used in the `algorithm` parameter.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha512_256 => "SHA-512-256",
        }
    }

    /// Reads an `algorithm` token (case-insensitive, RFC 7616 section 3.3).
    pub fn from_name(s: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
    }

    /// Length of the binary hash output.
    pub fn output_len(self) -> usize {
        match self {
            Algorithm::Md5 => 16,
            Algorithm::Sha256 | Algorithm::Sha512_256 => 32,
        }
    }

    /// `H(p1 ":" p2 ":" ...)` as bytes.
    pub fn hash_parts(self, parts: &[&[u8]]) -> Vec<u8> {
        count_hash();
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            Algorithm::Md5 => run::<Md5>(parts),
            Algorithm::Sha256 => run::<Sha256>(parts),
            Algorithm::Sha512_256 => run::<Sha512_256>(parts),
        }
    }

    /// `H(...)` as lowercase hex, the form every digest value takes on the wire.
    pub fn hash_hex(self, parts: &[&[u8]]) -> String {
        hex(&self.hash_parts(parts))
    }

    /// `HA1 = H(username ":" realm ":" password)`, lowercase hex (RFC 7616 section 3.4.2).
    pub fn ha1(self, username: &str, realm: &str, password: &str) -> String {
        self.hash_hex(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()])
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The inputs of a response other than HA1.
#[derive(Debug, Clone, Copy)]
pub struct ResponseInput<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    pub nonce: &'a str,
    /// `(qop, nc, cnonce)` with nc as sent (8 hex digits); `None` is the RFC 2069 form.
    pub qop: Option<(&'a str, &'a str, &'a str)>,
}

/// The expected `response` (RFC 7616 section 3.4.1, `qop=auth`; RFC 2069 form without qop), as
/// raw hash bytes. `ha1_hex` is the lowercase hex HA1.
pub fn response(alg: Algorithm, ha1_hex: &str, input: &ResponseInput<'_>) -> Vec<u8> {
    let ha2 = alg.hash_hex(&[input.method.as_bytes(), input.uri.as_bytes()]);
    match input.qop {
        Some((qop, nc, cnonce)) => alg.hash_parts(&[
            ha1_hex.as_bytes(),
            input.nonce.as_bytes(),
            nc.as_bytes(),
            cnonce.as_bytes(),
            qop.as_bytes(),
            ha2.as_bytes(),
        ]),
        None => alg.hash_parts(&[ha1_hex.as_bytes(), input.nonce.as_bytes(), ha2.as_bytes()]),
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Hex (either case) to bytes; `None` for odd length or a non-hex digit.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    fn nib(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks_exact(2)
        .map(|p| match p {
            [h, l] => Some(nib(*h)? << 4 | nib(*l)?),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
thread_local! {
    static HASHES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts hash computations in tests, so a test can show that an unknown user costs the same
/// work as a known one.
#[inline]
fn count_hash() {
    #[cfg(test)]
    HASHES.with(|h| h.set(h.get() + 1));
}

#[cfg(test)]
pub(crate) fn hashes_done() -> u64 {
    HASHES.with(|h| h.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(alg: Algorithm, ha1: &str, i: &ResponseInput<'_>) -> String {
        hex(&response(alg, ha1, i))
    }

    /// RFC 7616 section 3.9.1: the same request answered with SHA-256 and with MD5.
    #[test]
    fn rfc7616_example() {
        let input = ResponseInput {
            method: "GET",
            uri: "/dir/index.html",
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            qop: Some((
                "auth",
                "00000001",
                "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            )),
        };
        let realm = "http-auth@example.org";
        let md5 = Algorithm::Md5.ha1("Mufasa", realm, "Circle of Life");
        assert_eq!(
            resp(Algorithm::Md5, &md5, &input),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
        let sha = Algorithm::Sha256.ha1("Mufasa", realm, "Circle of Life");
        assert_eq!(
            resp(Algorithm::Sha256, &sha, &input),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    /// RFC 2617 section 3.5 (qop=auth, MD5).
    #[test]
    fn rfc2617_example() {
        let ha1 = Algorithm::Md5.ha1("Mufasa", "testrealm@host.com", "Circle Of Life");
        let input = ResponseInput {
            method: "GET",
            uri: "/dir/index.html",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop: Some(("auth", "00000001", "0a4f113b")),
        };
        assert_eq!(
            resp(Algorithm::Md5, &ha1, &input),
            "6629fae49393a05397450978507c4ef1"
        );
    }

    /// SHA-512-256 is FIPS 180-4 SHA-512/256 (its own initial values, not a truncated SHA-512):
    /// the FIPS test vector for "abc".
    #[test]
    fn sha512_256_is_fips_sha512_256() {
        assert_eq!(
            Algorithm::Sha512_256.hash_hex(&[b"abc"]),
            "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23"
        );
    }

    #[test]
    fn names_and_hex() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(&a.name().to_lowercase()), Some(a));
            assert_eq!(a.hash_parts(&[b"x"]).len(), a.output_len());
        }
        assert_eq!(Algorithm::from_name("MD5-sess"), None);
        assert_eq!(unhex("00ffAB"), Some(vec![0, 0xff, 0xab]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(hex(&[0, 0xff, 0x1a]), "00ff1a");
    }
}
