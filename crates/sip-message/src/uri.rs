//! URIs: `sip:` and `sips:` (RFC 3261 section 19.1), `tel:` (RFC 3966), any other absolute URI kept
//! opaque (`unkscm.dat`, `novelsc.dat`: the scheme is exposed so that a proxy can answer 416).

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::chars::{self, all_escaped, hex_val, is_hex};
use crate::error::{ErrorKind, ParseError, Result};
use crate::lex::{ParamIter, Params};

/// Where a URI stands decides what it may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriContext {
    /// The Request-URI: no `?headers` (RFC 3261 19.1.1 table; `escruri.dat`).
    RequestUri,
    /// Inside `<...>` of a name-addr: everything allowed.
    Bracketed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Sip,
    Sips,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
        }
    }
}

/// A host as written: a name, an IPv4 address, or an IPv6 reference (`[...]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Host<'a> {
    Name(&'a str),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl<'a> Host<'a> {
    /// Parses a host: `[v6]`, a dotted IPv4 address, or a host name.
    pub fn parse(s: &'a str) -> Result<Host<'a>, ErrorKind> {
        match scan_host(s, 0)? {
            (host, end) if end == s.len() => Ok(host),
            _ => Err(ErrorKind::BadHost),
        }
    }

    pub fn ip(&self) -> Option<IpAddr> {
        match *self {
            Host::V4(a) => Some(IpAddr::V4(a)),
            Host::V6(a) => Some(IpAddr::V6(a)),
            Host::Name(_) => None,
        }
    }

    /// Host comparison: names case-insensitively, addresses by value.
    pub fn equivalent(&self, other: &Host<'_>) -> bool {
        match (self, other) {
            (Host::Name(a), Host::Name(b)) => a
                .trim_end_matches('.')
                .eq_ignore_ascii_case(b.trim_end_matches('.')),
            (Host::V4(a), Host::V4(b)) => a == b,
            (Host::V6(a), Host::V6(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A `sip:` or `sips:` URI. Text fields borrow from the message and are still escaped; use
/// [`unescape`] (or the comparison methods, which unescape as they go) to read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipUri<'a> {
    pub scheme: Scheme,
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    pub host: Host<'a>,
    /// The host exactly as written (for IPv6, with brackets).
    pub host_str: &'a str,
    pub port: Option<u16>,
    pub params: Params<'a>,
    /// The raw `hname=hvalue&...` text after `?`, if any.
    pub headers: Option<&'a str>,
    raw: &'a str,
}

impl<'a> SipUri<'a> {
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    pub fn transport(&self) -> Option<&'a str> {
        self.params.value("transport")
    }
    pub fn user_param(&self) -> Option<&'a str> {
        self.params.value("user")
    }
    pub fn method(&self) -> Option<&'a str> {
        self.params.value("method")
    }
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.value("maddr")
    }
    pub fn ttl(&self) -> Option<u8> {
        self.params.value("ttl").and_then(|v| v.parse().ok())
    }
    /// The loose-routing flag (`;lr`, RFC 3261 16.12.1).
    pub fn lr(&self) -> bool {
        self.params.contains("lr")
    }

    /// The `hname=hvalue` pairs of the headers component, still escaped.
    pub fn header_pairs(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.headers
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
    }

    /// URI equivalence, RFC 3261 section 19.1.4.
    pub fn equivalent(&self, other: &SipUri<'_>) -> bool {
        if self.scheme != other.scheme
            || !opt_eq(self.user, other.user, escaped_eq)
            || !opt_eq(self.password, other.password, escaped_eq)
            || !self.host.equivalent(&other.host)
            || self.port != other.port
        {
            return false;
        }
        // user, ttl, method, maddr and transport must be in both or in neither (a default value
        // written out does not match an omitted one); any parameter present in both must match;
        // other parameters present in only one are ignored.
        for special in ["user", "ttl", "method", "maddr", "transport"] {
            let a = self.params.get(special);
            let b = other.params.get(special);
            match (a, b) {
                (None, None) => {}
                (Some(x), Some(y)) => {
                    if !opt_eq(x, y, escaped_eq_ci) {
                        return false;
                    }
                }
                _ => return false,
            }
        }
        // A name written twice (`;a;a=b`) is compared by its first occurrence on each side, so
        // that the comparison stays reflexive and symmetric.
        for (n, _) in self.params.iter() {
            if let Some(w) = first_param(&other.params, n) {
                if !first_param(&self.params, n).is_some_and(|v| opt_eq(v, w, escaped_eq_ci)) {
                    return false;
                }
            }
        }
        // Headers: the same set on both sides, compared case-insensitively after unescaping.
        let count = |u: &SipUri<'_>| u.header_pairs().count();
        if count(self) != count(other) {
            return false;
        }
        self.header_pairs().all(|(n, v)| {
            other
                .header_pairs()
                .any(|(m, w)| escaped_eq_ci(n, m) && escaped_eq_ci(v, w))
        })
    }
}

/// The value of the first parameter whose name equals `name` after unescaping (case-insensitive).
fn first_param<'a>(p: &Params<'a>, name: &str) -> Option<Option<&'a str>> {
    p.iter()
        .find(|(m, _)| escaped_eq_ci(name, m))
        .map(|(_, v)| v)
}

fn opt_eq<T: Copy>(a: Option<T>, b: Option<T>, f: impl Fn(T, T) -> bool) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => f(x, y),
        _ => false,
    }
}

/// Iterates the bytes of a possibly escaped string with `%HH` decoded.
fn unescaped_bytes(s: &str) -> impl Iterator<Item = u8> + '_ {
    let b = s.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        let c = *b.get(i)?;
        if c == b'%' {
            if let (Some(&h), Some(&l)) = (b.get(i + 1), b.get(i + 2)) {
                if is_hex(h) && is_hex(l) {
                    i += 3;
                    return Some(hex_val(h) << 4 | hex_val(l));
                }
            }
        }
        i += 1;
        Some(c)
    })
}

fn escaped_eq(a: &str, b: &str) -> bool {
    unescaped_bytes(a).eq(unescaped_bytes(b))
}

fn escaped_eq_ci(a: &str, b: &str) -> bool {
    unescaped_bytes(a)
        .map(|c| c.to_ascii_lowercase())
        .eq(unescaped_bytes(b).map(|c| c.to_ascii_lowercase()))
}

/// Decodes `%HH` escapes. The result is bytes: an escape may produce NUL or invalid UTF-8
/// (`escnull.dat`), which must not be truncated or rejected.
pub fn unescape(s: &str) -> Cow<'_, [u8]> {
    if !s.contains('%') {
        return Cow::Borrowed(s.as_bytes());
    }
    Cow::Owned(unescaped_bytes(s).collect())
}

/// A `tel:` URI (RFC 3966).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelUri<'a> {
    /// The number as written, visual separators included.
    pub number: &'a str,
    pub params: Params<'a>,
    raw: &'a str,
}

impl<'a> TelUri<'a> {
    pub fn as_str(&self) -> &'a str {
        self.raw
    }
    /// A global number starts with `+`.
    pub fn is_global(&self) -> bool {
        self.number.starts_with('+')
    }
    /// The digits (and `*#` and hex digits of local numbers) without visual separators.
    pub fn digits(&self) -> impl Iterator<Item = char> + 'a {
        self.number
            .chars()
            .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
    }
}

/// Any other absolute URI, kept opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbsoluteUri<'a> {
    pub scheme: &'a str,
    pub rest: &'a str,
    raw: &'a str,
}

impl<'a> AbsoluteUri<'a> {
    pub fn as_str(&self) -> &'a str {
        self.raw
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uri<'a> {
    Sip(SipUri<'a>),
    Tel(TelUri<'a>),
    Other(AbsoluteUri<'a>),
}

impl<'a> Uri<'a> {
    /// Parses a whole string as a URI. Offsets in errors are relative to `s` plus `base`.
    pub fn parse(s: &'a str) -> Result<Uri<'a>> {
        parse_uri(s, 0, UriContext::Bracketed, usize::MAX)
    }

    pub fn as_str(&self) -> &'a str {
        match self {
            Uri::Sip(u) => u.raw,
            Uri::Tel(u) => u.raw,
            Uri::Other(u) => u.raw,
        }
    }

    pub fn scheme(&self) -> &'a str {
        match self {
            Uri::Sip(u) => self.as_str().get(..u.scheme.as_str().len()).unwrap_or(""),
            Uri::Tel(_) => self.as_str().get(..3).unwrap_or("tel"),
            Uri::Other(u) => u.scheme,
        }
    }

    pub fn sip(&self) -> Option<&SipUri<'a>> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// RFC 3261 19.1.4 for SIP URIs; tel URIs compare their digits and parameters; other
    /// schemes compare as case-insensitive text.
    pub fn equivalent(&self, other: &Uri<'_>) -> bool {
        match (self, other) {
            (Uri::Sip(a), Uri::Sip(b)) => a.equivalent(b),
            (Uri::Tel(a), Uri::Tel(b)) => {
                a.digits()
                    .map(|c| c.to_ascii_lowercase())
                    .eq(b.digits().map(|c| c.to_ascii_lowercase()))
                    && a.params.len() == b.params.len()
                    && tel_params_in(a, b)
                    && tel_params_in(b, a)
            }
            (Uri::Other(a), Uri::Other(b)) => a.raw.eq_ignore_ascii_case(b.raw),
            _ => false,
        }
    }
}

/// Every parameter name of `a` is in `b` with the same value (first occurrences compared, so
/// that a name written twice keeps the comparison reflexive).
fn tel_params_in(a: &TelUri<'_>, b: &TelUri<'_>) -> bool {
    a.params
        .iter()
        .all(|(n, _)| match (a.params.get(n), b.params.get(n)) {
            (Some(v), Some(w)) => opt_eq(v, w, escaped_eq_ci),
            _ => false,
        })
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses `s` (exactly the URI text) as a URI. `base` is the offset of `s` in the message.
pub(crate) fn parse_uri<'a>(
    s: &'a str,
    base: usize,
    ctx: UriContext,
    max_params: usize,
) -> Result<Uri<'a>> {
    let b = s.as_bytes();
    // `sip:` in any case, the scheme of nearly every URI a proxy reads: one word compare (the
    // colon exactly, the letters with their case bit set).
    if let Some(head) = b.first_chunk::<4>() {
        if u32::from_le_bytes(*head) | 0x0020_2020 == u32::from_le_bytes(*b"sip:") {
            return parse_sip(s, 4, Scheme::Sip, base, ctx, max_params).map(Uri::Sip);
        }
    }
    let err = |k: ErrorKind, at: usize| ParseError::new(k, base + at);
    let colon = match find_byte(b':', b) {
        Some(i) if i > 0 => i,
        _ => return Err(err(ErrorKind::BadUri, 0)),
    };
    let scheme = &b[..colon];
    if !scheme[0].is_ascii_alphabetic() || !scheme.iter().all(|c| chars::SCHEME[*c as usize]) {
        return Err(err(ErrorKind::BadUri, 0));
    }
    let rest_at = colon + 1;
    let rest = s.get(rest_at..).unwrap_or("");
    if scheme.eq_ignore_ascii_case(b"sip") {
        parse_sip(s, rest_at, Scheme::Sip, base, ctx, max_params).map(Uri::Sip)
    } else if scheme.eq_ignore_ascii_case(b"sips") {
        parse_sip(s, rest_at, Scheme::Sips, base, ctx, max_params).map(Uri::Sip)
    } else if scheme.eq_ignore_ascii_case(b"tel") {
        parse_tel(s, rest_at, base, max_params).map(Uri::Tel)
    } else {
        // Opaque: anything printable without white space or angle brackets.
        if rest.is_empty()
            || rest
                .bytes()
                .any(|c| c <= b' ' || c == 0x7f || c == b'<' || c == b'>' || c == b'"')
        {
            return Err(err(ErrorKind::BadUri, rest_at));
        }
        Ok(Uri::Other(AbsoluteUri {
            scheme: s.get(..colon).unwrap_or(""),
            rest,
            raw: s,
        }))
    }
}

#[inline(always)]
fn parse_sip<'a>(
    s: &'a str,
    at: usize,
    scheme: Scheme,
    base: usize,
    ctx: UriContext,
    max_params: usize,
) -> Result<SipUri<'a>> {
    let b = s.as_bytes();
    let err = |k: ErrorKind, pos: usize| ParseError::new(k, base + pos);
    let slice = |from: usize, to: usize| s.get(from..to).unwrap_or("");
    let rest = b.get(at..).unwrap_or(&[]);
    // userinfo ends at the '@'. '@' cannot appear unescaped in the host, parameters or headers,
    // but ';' '?' '/' can appear in the user part (`semiuri.dat`), so look for '@' first.
    let (user, password, host_at) = match find_byte(b'@', rest) {
        Some(i) => {
            let ui = &rest[..i];
            let (u, p) = match find_byte(b':', ui) {
                Some(c) => (&ui[..c], Some(&ui[c + 1..])),
                None => (ui, None),
            };
            if u.is_empty() || !all_escaped(u, &chars::USER) {
                return Err(err(ErrorKind::BadUri, at));
            }
            if let Some(p) = p {
                if !all_escaped(p, &chars::PASSWORD) {
                    return Err(err(ErrorKind::BadUri, at + u.len() + 1));
                }
            }
            let user = slice(at, at + u.len());
            let password = p.map(|p| slice(at + u.len() + 1, at + u.len() + 1 + p.len()));
            (Some(user), password, at + i + 1)
        }
        None => (None, None, at),
    };
    // host: scanned and checked in one pass
    let (host, mut i) = scan_host(s, host_at).map_err(|k| err(k, host_at))?;
    let host_str = slice(host_at, i);
    // port
    let mut port = None;
    if b.get(i) == Some(&b':') {
        i += 1;
        let p0 = i;
        let (end, p) = port_at(b, i);
        i = end;
        port = Some(p.ok_or(err(ErrorKind::BadPort, p0))?);
    }
    // uri-parameters
    let params_at = i;
    let mut count = 0;
    while b.get(i) == Some(&b';') {
        i += 1;
        count += 1;
        if count > max_params {
            return Err(err(ErrorKind::TooManyParams, i));
        }
        // name and value are checked as they are scanned: `paramchar` or a valid escape, up
        // to `=`, `;`, `?` or the end; anything else is an error at the start of the part.
        let n0 = i;
        i = scan_escaped(b, i, &chars::PARAMCHAR);
        if i == n0 || !matches!(b.get(i), None | Some(b'=' | b';' | b'?')) {
            return Err(err(ErrorKind::BadUri, n0));
        }
        if b.get(i) == Some(&b'=') {
            i += 1;
            let v0 = i;
            i = scan_escaped(b, i, &chars::PARAMCHAR);
            if !matches!(b.get(i), None | Some(b';' | b'?')) {
                return Err(err(ErrorKind::BadUri, v0));
            }
        }
    }
    let params = Params::new(slice(params_at, i));
    // headers
    let mut headers = None;
    if b.get(i) == Some(&b'?') {
        if ctx == UriContext::RequestUri {
            return Err(err(ErrorKind::BadRequestUri, i));
        }
        let h0 = i + 1;
        let h = b.get(h0..).unwrap_or(&[]);
        let ok = !h.is_empty()
            && h.split(|c| *c == b'&').all(|pair| {
                let mut it = pair.splitn(2, |c| *c == b'=');
                let n = it.next().unwrap_or(&[]);
                let v = it.next().unwrap_or(&[]);
                !n.is_empty() && all_escaped(n, &chars::HCHAR) && all_escaped(v, &chars::HCHAR)
            });
        if !ok {
            return Err(err(ErrorKind::BadUri, h0));
        }
        headers = Some(slice(h0, s.len()));
        i = s.len();
    }
    if i != s.len() {
        return Err(err(
            if ctx == UriContext::RequestUri {
                ErrorKind::BadRequestUri
            } else {
                ErrorKind::BadUri
            },
            i,
        ));
    }
    Ok(SipUri {
        scheme,
        user,
        password,
        host,
        host_str,
        port,
        params,
        headers,
        raw: s,
    })
}

fn parse_tel<'a>(s: &'a str, at: usize, base: usize, max_params: usize) -> Result<TelUri<'a>> {
    let b = s.as_bytes();
    let err = |k: ErrorKind, pos: usize| ParseError::new(k, base + pos);
    let mut i = at;
    let global = b.get(i) == Some(&b'+');
    if global {
        i += 1;
    }
    let d0 = i;
    while let Some(&c) = b.get(i) {
        let ok = if global {
            c.is_ascii_digit() || matches!(c, b'-' | b'.' | b'(' | b')')
        } else {
            c.is_ascii_hexdigit() || matches!(c, b'*' | b'#' | b'-' | b'.' | b'(' | b')')
        };
        if !ok {
            break;
        }
        i += 1;
    }
    if i == d0 {
        return Err(err(ErrorKind::BadUri, d0));
    }
    let number = s.get(at..i).unwrap_or("");
    let p0 = i;
    let mut count = 0;
    while b.get(i) == Some(&b';') {
        i += 1;
        count += 1;
        if count > max_params {
            return Err(err(ErrorKind::TooManyParams, i));
        }
        let n0 = i;
        while b
            .get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'-')
        {
            i += 1;
        }
        if i == n0 {
            return Err(err(ErrorKind::BadUri, n0));
        }
        if b.get(i) == Some(&b'=') {
            i += 1;
            let v0 = i;
            while b.get(i).is_some_and(|c| *c != b';') {
                i += 1;
            }
            if !all_escaped(b.get(v0..i).unwrap_or(&[]), &chars::PARAMCHAR) {
                return Err(err(ErrorKind::BadUri, v0));
            }
        }
    }
    if i != s.len() {
        return Err(err(ErrorKind::BadUri, i));
    }
    Ok(TelUri {
        number,
        params: Params::new(s.get(p0..i).unwrap_or("")),
        raw: s,
    })
}

/// A dotted-quad IPv4 address with the rules of `Ipv4Addr::from_str` (four parts of one to
/// three digits, each at most 255, no leading zero), without its generic parser's cost.
fn parse_ipv4(b: &[u8]) -> Option<Ipv4Addr> {
    let mut out = [0u8; 4];
    let mut i = 0;
    for (k, octet) in out.iter_mut().enumerate() {
        if k > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let first = b.get(i)?.wrapping_sub(b'0');
        if first > 9 {
            return None;
        }
        let mut v = u16::from(first);
        i += 1;
        // Up to two more digits; none after a leading zero.
        for _ in 0..2 {
            match b.get(i) {
                Some(&c) if c.is_ascii_digit() => {
                    if v == 0 {
                        return None;
                    }
                    v = v * 10 + u16::from(c - b'0');
                    i += 1;
                }
                _ => break,
            }
        }
        *octet = u8::try_from(v).ok()?;
    }
    (i == b.len()).then(|| Ipv4Addr::from(out))
}

/// `memchr` for the short strings URIs usually are: a plain loop costs less than the vectorised
/// search's set-up below 64 bytes.
#[inline]
fn find_byte(needle: u8, s: &[u8]) -> Option<usize> {
    if s.len() < 64 {
        crate::simd::find1(s, needle)
    } else {
        memchr::memchr(needle, s)
    }
}

/// Scans and checks the host that starts at `s[start..]` in one pass, stopping at the first
/// byte that cannot belong to it. Returns the host and the index after it. This runs for
/// every URI and Via of every message, so the host is looked at once: names are checked as
/// they are scanned (`hostname = *( domainlabel "." ) toplabel [ "." ]`, labels of letters,
/// digits and inner `-`), and a host of digits and dots only is an IPv4 address.
#[inline(always)]
pub(crate) fn scan_host(s: &str, start: usize) -> Result<(Host<'_>, usize), ErrorKind> {
    let b = s.as_bytes();
    if b.get(start) == Some(&b'[') {
        let close =
            memchr::memchr(b']', b.get(start..).unwrap_or(&[])).ok_or(ErrorKind::BadHost)?;
        let end = start + close + 1;
        let inner = s.get(start + 1..end - 1).ok_or(ErrorKind::BadHost)?;
        let ip = inner.parse::<Ipv6Addr>().map_err(|_| ErrorKind::BadHost)?;
        return Ok((Host::V6(ip), end));
    }
    if let Some(r) = host_fast(s, start) {
        return r;
    }
    const ALNUM: u8 = chars::HC_DIGIT | chars::HC_ALPHA;
    let class = |i: usize| {
        b.get(i)
            .map_or(chars::HC_OTHER, |&c| chars::HOST_CLASS[c as usize])
    };
    let mut i = start;
    // Label by label: a letter or digit, then letters, digits and `-`, not ending with `-`;
    // a `.` before each further label. A `.` or `-` where a label should start (leading, `..`,
    // `.-`) is an error; anything else there ends the host (after a final `.`, or at once).
    loop {
        let k = class(i);
        if k & ALNUM == 0 {
            if k & (chars::HC_DOT | chars::HC_DASH) != 0 {
                return Err(ErrorKind::BadHost);
            }
            break;
        }
        let rest = b.get(i + 1..).unwrap_or(&[]);
        i += 1 + rest
            .iter()
            .position(|&c| chars::HOST_CLASS[c as usize] & (ALNUM | chars::HC_DASH) == 0)
            .unwrap_or(rest.len());
        if b.get(i - 1) == Some(&b'-') {
            return Err(ErrorKind::BadHost);
        }
        if b.get(i) != Some(&b'.') {
            break;
        }
        i += 1;
    }
    let text = s.get(start..i).unwrap_or("");
    if text.is_empty() || text.len() > 255 {
        return Err(ErrorKind::BadHost);
    }
    // A name has a letter or `-` somewhere; digits and dots alone must be an IPv4 address.
    // Names start with a letter far more often than not, which settles it at once.
    if b.get(start).is_some_and(u8::is_ascii_digit) {
        if let Some(a) = parse_ipv4(text.as_bytes()) {
            return Ok((Host::V4(a), i));
        }
        if text.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
            return Err(ErrorKind::BadHost);
        }
    }
    // A single trailing dot (a fully qualified name) is allowed; two were refused above.
    Ok((Host::Name(text), i))
}

/// [`scan_host`] for a name or IPv4 address under 64 bytes in a string of 16 bytes or more:
/// the run of letters, digits, `.` and `-` is found 16 bytes at a time, and the label rules
/// are checked on the masks of its dots and dashes instead of byte by byte. `None` when it does
/// not apply (the byte-by-byte scan then decides).
#[inline]
fn host_fast(s: &str, start: usize) -> Option<Result<(Host<'_>, usize), ErrorKind>> {
    let b = s.as_bytes();
    let (end, dots, dashes) = crate::simd::host_run(b, start)?;
    let len = end - start;
    if len == 0 {
        return None;
    }
    let edge = dots | dashes;
    // A `.` or `-` first, `..`, `-.` or `.-` anywhere, or a `-` last: no host.
    if edge & 1 != 0
        || (dots & (dots >> 1)) != 0
        || (dashes & (dots >> 1)) != 0
        || (dots & (dashes >> 1)) != 0
        || (dashes >> (len - 1)) & 1 != 0
    {
        return Some(Err(ErrorKind::BadHost));
    }
    let text = s.get(start..end)?;
    if b.get(start).is_some_and(u8::is_ascii_digit) {
        if let Some(a) = parse_ipv4(text.as_bytes()) {
            return Some(Ok((Host::V4(a), end)));
        }
        if dashes == 0 && text.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
            return Some(Err(ErrorKind::BadHost));
        }
    }
    Some(Ok((Host::Name(text), end)))
}

/// The end of the run from `i` of bytes in `class` and valid `%HH` escapes.
#[inline]
fn scan_escaped(b: &[u8], mut i: usize, class: &[bool; 256]) -> usize {
    loop {
        i = chars::run_end(b, i, class);
        match b.get(i) {
            Some(b'%') => match (b.get(i + 1), b.get(i + 2)) {
                (Some(&h), Some(&l)) if is_hex(h) && is_hex(l) => i += 3,
                _ => return i,
            },
            _ => return i,
        }
    }
}

/// 1 to 5 digits, at most 65535.
pub(crate) fn parse_port(d: &[u8]) -> Option<u16> {
    if d.is_empty() || d.len() > 5 {
        return None;
    }
    let mut v = 0u32;
    for &c in d {
        let x = c.wrapping_sub(b'0');
        if x > 9 {
            return None;
        }
        v = v * 10 + u32::from(x);
    }
    u16::try_from(v).ok()
}

/// The digits at `b[i..]` (maybe none) read as a port in the same pass: returns the index
/// after them and the port, `None` when there are none, more than five, or the value is above
/// 65535 (what [`parse_port`] says of the same digits).
#[inline]
pub(crate) fn port_at(b: &[u8], i: usize) -> (usize, Option<u16>) {
    let mut j = i;
    let mut v = 0u32;
    while let Some(&c) = b.get(j) {
        let x = c.wrapping_sub(b'0');
        if x > 9 {
            break;
        }
        // Stops growing past 65535 so that a long run of digits cannot overflow.
        if v <= 65_535 {
            v = v * 10 + u32::from(x);
        }
        j += 1;
    }
    let ok = j > i && j - i <= 5;
    (j, ok.then(|| u16::try_from(v).ok()).flatten())
}

/// Where an unbracketed addr-spec (`From: sip:a@b;tag=x`) ends: its parameters belong to the
/// header (RFC 3261 20.10), so the URI stops at the first `;` after the host, or at white space
/// or a comma. Returns the length of the URI text at the start of `s`.
pub(crate) fn addr_spec_len(s: &[u8]) -> usize {
    let stop = |c: &u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b',');
    let end = s.iter().position(stop).unwrap_or(s.len());
    let v = &s[..end];
    // the host starts after the last '@' in that span (or after the scheme's ':').
    let host_start = match memchr::memchr(b'@', v) {
        Some(i) => i + 1,
        None => memchr::memchr(b':', v).map_or(0, |i| i + 1),
    };
    match memchr::memchr(b';', &v[host_start..]) {
        Some(i) => host_start + i,
        None => end,
    }
}

impl<'a> IntoIterator for Params<'a> {
    type Item = (&'a str, Option<&'a str>);
    type IntoIter = ParamIter<'a>;
    fn into_iter(self) -> ParamIter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri<'_> {
        match Uri::parse(s).unwrap() {
            Uri::Sip(u) => u,
            other => panic!("not sip: {other:?}"),
        }
    }

    #[test]
    fn full_sip_uri() {
        let u = sip(
            "sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr;maddr=239.1.1.1?subject=hi&x=y",
        );
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("secret"));
        assert_eq!(u.host, Host::V6("2001:db8::1".parse().unwrap()));
        assert_eq!(u.host_str, "[2001:db8::1]");
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport(), Some("tcp"));
        assert!(u.lr());
        assert_eq!(u.maddr(), Some("239.1.1.1"));
        assert_eq!(
            u.header_pairs().collect::<Vec<_>>(),
            vec![("subject", "hi"), ("x", "y")]
        );
    }

    #[test]
    fn user_part_may_hold_semicolons() {
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(u.host, Host::Name("example.com"));
        assert!(u.params.is_empty());
    }

    #[test]
    fn escaped_nul_is_kept() {
        let u = sip("sip:%00@example.com");
        assert_eq!(unescape(u.user.unwrap()).as_ref(), b"\0");
    }

    #[test]
    fn rfc3261_equivalence_examples() {
        let eq = [
            (
                "sip:%61lice@atlanta.com;transport=TCP",
                "sip:alice@AtLanTa.CoM;Transport=tcp",
            ),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
            (
                "sip:carol@chicago.com;security=on",
                "sip:carol@chicago.com;newparam=5",
            ),
            (
                "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
                "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
            ),
            (
                "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
                "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
            ),
        ];
        for (a, b) in eq {
            assert!(sip(a).equivalent(&sip(b)), "{a} == {b}");
            assert!(sip(b).equivalent(&sip(a)), "{b} == {a}");
        }
        let ne = [
            (
                "SIP:ALICE@AtLanTa.CoM;Transport=udp",
                "sip:alice@AtLanTa.CoM;Transport=UDP",
            ),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
            (
                "sip:bob@biloxi.com",
                "sip:bob@biloxi.com:6000;transport=tcp",
            ),
            (
                "sip:carol@chicago.com",
                "sip:carol@chicago.com?Subject=next%20meeting",
            ),
            ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
            (
                "sip:carol@chicago.com;security=on",
                "sip:carol@chicago.com;security=off",
            ),
        ];
        for (a, b) in ne {
            assert!(!sip(a).equivalent(&sip(b)), "{a} != {b}");
        }
    }

    #[test]
    fn ipv4_parse_matches_std() {
        let mut cases: Vec<String> = [
            "1.2.3.4",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            ".1.2.3",
            "1.2.3.",
            "1.2.3.4.",
            "1234.1.1.1",
            "00.1.1.1",
            "0.0.0.00",
            "",
            "1.2.3.04",
            "192.168.001.1",
            "9.99.199.255",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for i in 0..2000u32 {
            let p = |k: u32| (i.wrapping_mul(2654435761).rotate_left(k * 7) % 300).to_string();
            cases.push(format!("{}.{}.{}.{}", p(0), p(1), p(2), p(3)));
        }
        for c in cases {
            assert_eq!(
                parse_ipv4(c.as_bytes()),
                c.parse::<Ipv4Addr>().ok(),
                "{c:?}"
            );
        }
    }

    #[test]
    fn host_names() {
        for ok in ["a", "a.b", "a-b.c", "a.b.", "1a.com", "x--y.z"] {
            assert!(matches!(Host::parse(ok), Ok(Host::Name(_))), "{ok}");
        }
        for v4 in ["1.2.3.4", "0.0.0.0", "255.255.255.255"] {
            assert!(matches!(Host::parse(v4), Ok(Host::V4(_))), "{v4}");
        }
        for bad in [
            "-a",
            "a-",
            "a.-b",
            "a-.b",
            "a..b",
            ".a",
            "a_b",
            "a..",
            ".",
            "a b",
            "1.2.3.4.",
            "1..2.3",
            "1.2.3",
            "256.1.1.1",
            "01.1.1.1",
            "1.2.3.4.5",
        ] {
            assert!(Host::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn repeated_params_compare_reflexively() {
        for s in [
            "tel:1;a;a=b",
            "sip:h;a;a=b",
            "sip:h;%61=1;a=2",
            "tEL:E;0E;0=:E;0E;0=E;E0LLL",
        ] {
            let u = Uri::parse(s).unwrap();
            assert!(u.equivalent(&u), "{s}");
        }
        let (a, b) = (
            Uri::parse("tel:1;x;x").unwrap(),
            Uri::parse("tel:1;x;y").unwrap(),
        );
        assert!(!a.equivalent(&b) && !b.equivalent(&a));
    }

    #[test]
    fn tel_and_other_schemes() {
        match Uri::parse("tel:+1-201-555-0123;ext=1234").unwrap() {
            Uri::Tel(t) => {
                assert!(t.is_global());
                assert_eq!(t.digits().collect::<String>(), "+12015550123");
                assert_eq!(t.params.value("ext"), Some("1234"));
            }
            other => panic!("{other:?}"),
        }
        let u = Uri::parse("isbn:2983792873").unwrap();
        assert_eq!(u.scheme(), "isbn");
        assert!(matches!(u, Uri::Other(_)));
    }

    #[test]
    fn bad_uris() {
        for s in [
            "sip:",
            "sip:@host",
            "sip:user@",
            "sip:user@host:99999",
            "sip:user@host:",
            "sip:user@ho st",
            "sip:user@[::1",
            "sip:user@256.1.1.1",
            "sip:us%2ger@host",
            "sip:host;=x",
            "1sip:host",
            ":x",
        ] {
            assert!(Uri::parse(s).is_err(), "{s}");
        }
        assert_eq!(
            parse_uri(
                "sip:user@example.com?Route=%3Csip:x%3E",
                0,
                UriContext::RequestUri,
                64
            )
            .unwrap_err()
            .kind,
            ErrorKind::BadRequestUri
        );
    }

    #[test]
    fn addr_spec_stops_at_header_params() {
        assert_eq!(addr_spec_len(b"sip:a@b.com;tag=1"), 11);
        assert_eq!(addr_spec_len(b"sip:a;x@b.com;tag=1"), 13);
        assert_eq!(addr_spec_len(b"sip:b.com ;tag=1"), 9);
        assert_eq!(addr_spec_len(b"sip:b.com,sip:c"), 9);
    }
}
