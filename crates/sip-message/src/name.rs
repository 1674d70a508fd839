//! Header names: the ones an SBC reads get an enum value (compact forms folded in), the rest
//! keep their text.

use std::fmt;

/// The compact form of a header, or NUL for none.
macro_rules! compact_or_nul {
    () => {
        '\0'
    };
    ($c:literal) => {
        $c
    };
}

macro_rules! header_names {
    ($( $variant:ident => $canon:literal $(, $compact:literal)? ;)*) => {
        /// A known header name. `Other` covers every extension header; compare its text
        /// case-insensitively.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderName {
            $( $variant, )*
            Other,
        }

        impl HeaderName {
            /// The canonical (long) spelling; `None` for `Other`.
            pub fn canonical(self) -> Option<&'static str> {
                match self {
                    $( HeaderName::$variant => Some($canon), )*
                    HeaderName::Other => None,
                }
            }

            /// The compact form (RFC 3261 7.3.3 and the registry), if the header has one.
            pub fn compact(self) -> Option<char> {
                match self {
                    $( $( HeaderName::$variant => Some($compact), )? )*
                    _ => None,
                }
            }

            /// Looks a name up case-insensitively, compact forms included. Runs for every
            /// header line: one hash-table probe and one comparison, no copy.
            #[inline]
            pub fn from_bytes(name: &[u8]) -> HeaderName {
                let slot = match name.len() {
                    0 => return HeaderName::Other,
                    1 => COMPACT[usize::from(name[0])],
                    _ => TABLE[name_hash(name)],
                };
                if slot == 0 {
                    return HeaderName::Other;
                }
                let (h, canon) = ALL[usize::from(slot - 1)];
                let canon = canon.as_bytes();
                if name.len() == 1 || name == canon || name.eq_ignore_ascii_case(canon) {
                    h
                } else {
                    HeaderName::Other
                }
            }
        }

        /// Every known name of two or more bytes as little-endian words, zero-padded, with its
        /// length (0 for none); indexed like `ALL`.
        static WORDS: [([u64; 3], u8, HeaderName); ALL.len()] = {
            let mut t = [([0u64; 3], 0u8, HeaderName::Other); ALL.len()];
            let mut i = 0;
            while i < ALL.len() {
                let n = ALL[i].1.as_bytes();
                if n.len() <= 24 {
                    let mut k = 0;
                    while k < n.len() {
                        t[i].0[k / 8] |= (n[k] as u64) << (8 * (k % 8));
                        k += 1;
                    }
                    t[i].1 = n.len() as u8;
                    t[i].2 = ALL[i].0;
                }
                i += 1;
            }
            t
        };

        impl HeaderName {
            /// A known name in its canonical spelling at `b[at..]`, directly followed by `:`;
            /// returns it and its length. `None` when the name is spelled otherwise, unknown,
            /// followed by anything but the colon, or too close to the end of `b` to look at 32
            /// bytes at once: the caller then takes the general path.
            #[inline]
            pub(crate) fn canonical_at(b: &[u8], at: usize) -> Option<(HeaderName, usize)> {
                let w: &[u8; 32] = b.get(at..)?.first_chunk::<32>()?;
                let m = crate::simd::mask1(w, 0, b':')? | crate::simd::mask1(w, 16, b':')? << 16;
                let len = m.trailing_zeros() as usize;
                if !(2..=24).contains(&len) {
                    return None;
                }
                let slot = TABLE[name_hash(w.get(..len)?)];
                let (words, n, h) = WORDS.get(usize::from(slot).checked_sub(1)?)?;
                if usize::from(*n) != len {
                    return None;
                }
                let word = |k: usize| -> u64 {
                    let chunk = w.get(k * 8..).and_then(|r| r.first_chunk::<8>());
                    u64::from_le_bytes(chunk.copied().unwrap_or_default())
                };
                let mask = LEN_MASKS.get(len)?;
                let diff = ((word(0) ^ words[0]) & mask[0])
                    | ((word(1) ^ words[1]) & mask[1])
                    | ((word(2) ^ words[2]) & mask[2]);
                if diff != 0 {
                    return None;
                }
                Some((*h, len))
            }
        }

        /// Every known name with its canonical spelling.
        const ALL: &[(HeaderName, &str)] = &[ $( (HeaderName::$variant, $canon), )* ];
        /// Compact form (either case) to index + 1 in `ALL`, 0 for none.
        static COMPACT: [u8; 256] = {
            const C: &[char] = &[ $( compact_or_nul!($($compact)?), )* ];
            let mut t = [0u8; 256];
            let mut i = 0;
            while i < C.len() {
                if C[i] != '\0' {
                    assert!(C[i].is_ascii_lowercase(), "compact forms are lower-case letters");
                    t[C[i] as usize] = i as u8 + 1;
                    t[C[i].to_ascii_uppercase() as usize] = i as u8 + 1;
                }
                i += 1;
            }
            t
        };
        /// `name_hash` of a long name to index + 1 in `ALL`, 0 for none. Collision-free for the
        /// known names (checked when this table is built, at compile time).
        static TABLE: [u8; 256] = {
            let mut t = [0u8; 256];
            let mut i = 0;
            while i < ALL.len() {
                let h = name_hash(ALL[i].1.as_bytes());
                assert!(t[h] == 0, "header name hash collision: change name_hash");
                t[h] = i as u8 + 1;
                i += 1;
            }
            t
        };
    };
}

/// For a name of `len` bytes (index), the masks that keep its bytes in three little-endian
/// words.
static LEN_MASKS: [[u64; 3]; 25] = {
    let mut t = [[0u64; 3]; 25];
    let mut len = 0;
    while len <= 24 {
        let mut k = 0;
        while k < len {
            t[len][k / 8] |= 0xff << (8 * (k % 8));
            k += 1;
        }
        len += 1;
    }
    t
};

/// A hash of a name of two or more bytes that ignores ASCII case (`| 0x20` lower-cases letters
/// and keeps `-`; any other byte only selects a candidate that the comparison then rejects).
#[inline]
const fn name_hash(n: &[u8]) -> usize {
    let l = n.len();
    let (first, last, mid) = (
        (n[0] | 0x20) as usize,
        (n[l - 1] | 0x20) as usize,
        (n[l / 2] | 0x20) as usize,
    );
    (l + first * 18 + last * 20 + mid * 7) & 255
}

header_names! {
    Accept => "Accept";
    AcceptContact => "Accept-Contact", 'a';
    AcceptEncoding => "Accept-Encoding";
    AcceptLanguage => "Accept-Language";
    AlertInfo => "Alert-Info";
    Allow => "Allow";
    AllowEvents => "Allow-Events", 'u';
    AuthenticationInfo => "Authentication-Info";
    Authorization => "Authorization";
    CallId => "Call-ID", 'i';
    CallInfo => "Call-Info";
    Contact => "Contact", 'm';
    ContentDisposition => "Content-Disposition";
    ContentEncoding => "Content-Encoding", 'e';
    ContentLanguage => "Content-Language";
    ContentLength => "Content-Length", 'l';
    ContentType => "Content-Type", 'c';
    CSeq => "CSeq";
    Date => "Date";
    ErrorInfo => "Error-Info";
    Event => "Event", 'o';
    Expires => "Expires";
    From => "From", 'f';
    Identity => "Identity", 'y';
    InReplyTo => "In-Reply-To";
    MaxForwards => "Max-Forwards";
    MimeVersion => "MIME-Version";
    MinExpires => "Min-Expires";
    MinSe => "Min-SE";
    Organization => "Organization";
    PAssertedIdentity => "P-Asserted-Identity";
    PPreferredIdentity => "P-Preferred-Identity";
    Path => "Path";
    Priority => "Priority";
    Privacy => "Privacy";
    ProxyAuthenticate => "Proxy-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    ProxyRequire => "Proxy-Require";
    RAck => "RAck";
    Reason => "Reason";
    RecordRoute => "Record-Route";
    ReferTo => "Refer-To", 'r';
    ReferredBy => "Referred-By", 'b';
    RejectContact => "Reject-Contact", 'j';
    Replaces => "Replaces";
    ReplyTo => "Reply-To";
    RequestDisposition => "Request-Disposition", 'd';
    Require => "Require";
    RetryAfter => "Retry-After";
    Route => "Route";
    RSeq => "RSeq";
    Server => "Server";
    ServiceRoute => "Service-Route";
    SessionExpires => "Session-Expires", 'x';
    Subject => "Subject", 's';
    SubscriptionState => "Subscription-State";
    Supported => "Supported", 'k';
    Timestamp => "Timestamp";
    To => "To", 't';
    Unsupported => "Unsupported";
    UserAgent => "User-Agent";
    Via => "Via", 'v';
    Warning => "Warning";
    WwwAuthenticate => "WWW-Authenticate";
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.canonical().unwrap_or("(extension)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_canonical_and_compact_name_round_trips() {
        for name in [
            HeaderName::Via,
            HeaderName::CallId,
            HeaderName::WwwAuthenticate,
            HeaderName::PAssertedIdentity,
            HeaderName::SessionExpires,
            HeaderName::RequestDisposition,
        ] {
            let canon = name.canonical().unwrap();
            assert_eq!(HeaderName::from_bytes(canon.as_bytes()), name);
            assert_eq!(
                HeaderName::from_bytes(canon.to_uppercase().as_bytes()),
                name
            );
            if let Some(c) = name.compact() {
                assert_eq!(HeaderName::from_bytes(c.to_string().as_bytes()), name);
                assert_eq!(
                    HeaderName::from_bytes(c.to_ascii_uppercase().to_string().as_bytes()),
                    name
                );
            }
        }
        assert_eq!(
            HeaderName::from_bytes(b"MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(HeaderName::from_bytes(b"X-Custom"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b"q"), HeaderName::Other);
        assert_eq!(
            HeaderName::from_bytes(b"a-very-long-extension-header-name"),
            HeaderName::Other
        );
    }
    #[test]
    fn hash_lookup_finds_every_name_and_only_those() {
        for &(h, canon) in ALL {
            let flipped: Vec<u8> = canon
                .bytes()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect();
            assert_eq!(HeaderName::from_bytes(canon.as_bytes()), h, "{canon}");
            assert_eq!(HeaderName::from_bytes(&flipped), h, "{canon}");
            // Same hash inputs (length, first, middle, last byte), different text.
            let mut other = canon.as_bytes().to_vec();
            if other.len() > 3 {
                other[1] = b'_';
                assert_eq!(HeaderName::from_bytes(&other), HeaderName::Other, "{canon}");
            }
        }
        for bad in [
            &b"Via\0"[..],
            b"To\0",
            b"Via\x00\x00\x00\x00\x00\x00",
            b"Max-Forward\xd3",
            b"P-Asserted-Identit\xd9",
            b"Contac\x14",
            b"FROM ",
            b"Fro\x0d",
            b"",
            b"Call\rID",
            b"CALL\x0dID",
            b"\xff",
            b"V\x00a",
            b"_",
            b"@",
        ] {
            assert_eq!(HeaderName::from_bytes(bad), HeaderName::Other, "{bad:?}");
        }
        assert_eq!(HeaderName::from_bytes(b"V"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"x"), HeaderName::SessionExpires);
    }
}
