//! Small pieces shared by the registrar and the proxy: responses, AOR canonicalisation, the
//! loop-detection hash, the Date header.

use std::time::{SystemTime, UNIX_EPOCH};

use sip_message::headers::{Contact, NameAddr};
#[cfg(test)]
use sip_message::Uri;
use sip_message::{unescape, Editor, Message, SipUri, TypedHeader};

/// A response to `req` (RFC 3261 8.2.6) with `extra` header fields appended, in order. `tag` is
/// added to To when the request has none. `None` when `req` is not a request (cannot happen for
/// what the transaction layer hands up) or an extra value is not a valid field value.
pub(crate) fn response(
    req: &Message,
    status: u16,
    reason: &str,
    tag: Option<&str>,
    extra: &[(&str, String)],
) -> Option<Message> {
    let base = sip_transaction::response_for(req, status, reason, tag)?;
    if extra.is_empty() {
        return Some(base);
    }
    let mut ed = Editor::new(&base);
    for (name, value) in extra {
        ed.add_header(*name, value).ok()?;
    }
    Message::parse(ed.finish()).ok()
}

/// The canonical AOR of a SIP URI (RFC 3261 10.3 step 5): scheme `sip` (a `sips` AOR is the
/// same user), the user part unescaped, the host lower-cased, no port, no password, no
/// parameters, no headers. Errors on a user part that unescapes to control characters or
/// invalid UTF-8 (which no AOR of ours holds).
pub(crate) fn canonical_aor(u: &SipUri<'_>) -> Result<String, &'static str> {
    let host = u.host_str.trim_end_matches('.').to_ascii_lowercase();
    match u.user {
        None => Ok(format!("sip:{host}")),
        Some(user) => {
            let raw = unescape(user);
            let user = std::str::from_utf8(&raw).map_err(|_| "user part is not UTF-8")?;
            if user.is_empty() || user.chars().any(|c| c.is_control()) {
                return Err("bad user part");
            }
            Ok(format!("sip:{user}@{host}"))
        }
    }
}

/// The canonical AOR of any URI: SIP and SIPS URIs as [`canonical_aor`], others refused.
#[cfg(test)]
pub(crate) fn canonical_aor_of(u: &Uri<'_>) -> Result<String, &'static str> {
    match u {
        Uri::Sip(s) => canonical_aor(s),
        _ => Err("not a SIP URI"),
    }
}

/// FNV-1a, 64 bits, seeded: stable across Rust releases and processes with the same seed (the
/// loop-detection part of a branch must be recomputed identically, RFC 3261 16.3 item 4).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new(seed: u64) -> Fnv {
        let mut h = Fnv(0xcbf2_9ce4_8422_2325);
        h.write(&seed.to_le_bytes());
        h
    }

    pub(crate) fn write(&mut self, b: &[u8]) {
        for &c in b {
            self.0 ^= u64::from(c);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// A field followed by a separator that no field holds, so that ("ab","c") != ("a","bc").
    pub(crate) fn field(&mut self, b: &[u8]) {
        self.write(b);
        self.write(&[0xff]);
    }

    pub(crate) fn finish(self) -> u64 {
        // A final avalanche (splitmix64's) so that similar inputs give unrelated outputs.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// An HTTP-date (RFC 3261 20.17, RFC 1123 form): `Sat, 13 Nov 2010 23:29:00 GMT`.
pub(crate) fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // 1970-01-01 was a Thursday.
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let wd = WD[(days % 7) as usize];
    // Civil date from days since the epoch (the well-known era-based conversion).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!(
        "{wd}, {d:02} {} {y:04} {h:02}:{m:02}:{s:02} GMT",
        MON[(mo - 1) as usize]
    )
}

/// Whole seconds since the epoch as a `SystemTime` (the store keeps whole seconds).
pub(crate) fn trunc_secs(t: SystemTime) -> SystemTime {
    let s = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + std::time::Duration::from_secs(s)
}

/// Header parameters as text (`;a=b;c`), without those named in `drop` (case-insensitive).
pub(crate) fn params_without(na: &NameAddr<'_>, drop: &[&str]) -> String {
    let mut out = String::new();
    for (n, v) in na.params.iter() {
        if drop.iter().any(|d| d.eq_ignore_ascii_case(n)) {
            continue;
        }
        out.push(';');
        out.push_str(n);
        if let Some(v) = v {
            out.push('=');
            out.push_str(v);
        }
    }
    out
}

/// `<uri>params` of a stored binding with `expires` replaced, for the Contact list of a 200 to
/// REGISTER (RFC 3261 10.3 step 8).
pub(crate) fn contact_with_expires(contact: &str, params: &str, expires: u64) -> String {
    let text = format!("<{contact}>{params}");
    let kept = match Contact::parse_value(&text) {
        Ok(Contact::Addr(na)) => params_without(&na, &["expires"]),
        _ => String::new(),
    };
    format!("<{contact}>{kept};expires={expires}")
}

/// The text of a name-addr value as it can be written back (`<uri>;params`; a display name is
/// dropped, Route and Path values do not need one).
pub(crate) fn name_addr_text(na: &NameAddr<'_>) -> String {
    format!("<{}>{}", na.uri.as_str(), na.params.as_str())
}

/// Lower-case, trailing-dot-free host name for comparisons.
pub(crate) fn norm_host(h: &str) -> String {
    h.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        let t = UNIX_EPOCH + Duration::from_secs(1_289_690_940);
        assert_eq!(http_date(t), "Sat, 13 Nov 2010 23:29:00 GMT");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(http_date(t), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    fn aor(s: &str) -> Result<String, &'static str> {
        canonical_aor_of(&Uri::parse(s).unwrap())
    }

    #[test]
    fn aors_are_canonical() {
        assert_eq!(
            aor("sip:%61lice:pw@Example.COM:5070;transport=tcp?x=y").unwrap(),
            "sip:alice@example.com"
        );
        assert_eq!(aor("sips:bob@example.com").unwrap(), "sip:bob@example.com");
        assert_eq!(aor("sip:example.com").unwrap(), "sip:example.com");
        assert!(aor("sip:%00@example.com").is_err());
        assert!(aor("tel:+123").is_err());
    }

    #[test]
    fn contact_expires_is_replaced() {
        assert_eq!(
            contact_with_expires("sip:a@1.2.3.4", ";q=0.5;Expires=30;x=\"y\"", 12),
            "<sip:a@1.2.3.4>;q=0.5;x=\"y\";expires=12"
        );
        assert_eq!(
            contact_with_expires("sip:a@1.2.3.4", "", 0),
            "<sip:a@1.2.3.4>;expires=0"
        );
    }

    #[test]
    fn fnv_separates_fields() {
        let h = |a: &[&[u8]]| {
            let mut f = Fnv::new(1);
            for x in a {
                f.field(x);
            }
            f.finish()
        };
        assert_ne!(h(&[b"ab", b"c"]), h(&[b"a", b"bc"]));
        assert_eq!(h(&[b"ab", b"c"]), h(&[b"ab", b"c"]));
    }
}
