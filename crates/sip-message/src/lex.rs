//! A cursor over one header value for the typed decoders.
//!
//! Header values keep their folded continuation lines (CRLF followed by SP/HT) so that the
//! message can be forwarded byte-identical; the cursor treats a fold as linear white space.

use crate::chars;
use crate::error::{ErrorKind, ParseError, Result};

/// Reads a header value left to right. `base` is the value's offset in the message so that
/// errors point into the message, not into the slice.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    s: &'a str,
    pos: usize,
    base: usize,
    max_params: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(s: &'a str, base: usize, max_params: usize) -> Self {
        Cursor {
            s,
            pos: 0,
            base,
            max_params,
        }
    }

    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.s.as_bytes()
    }

    #[inline]
    pub fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    pub fn set_pos(&mut self, pos: usize) {
        self.pos = pos.min(self.s.len());
    }

    pub fn max_params(&self) -> usize {
        self.max_params
    }

    /// Offset of the cursor in the whole message.
    #[inline]
    pub fn abs(&self) -> usize {
        self.base + self.pos
    }

    pub fn base(&self) -> usize {
        self.base
    }

    #[inline]
    pub fn err(&self, kind: ErrorKind) -> ParseError {
        ParseError::new(kind, self.abs())
    }

    #[inline]
    pub fn err_at(&self, kind: ErrorKind, pos: usize) -> ParseError {
        ParseError::new(kind, self.base + pos)
    }

    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    #[inline]
    pub fn peek_at(&self, n: usize) -> Option<u8> {
        self.bytes().get(self.pos + n).copied()
    }

    #[inline]
    pub fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    #[inline]
    pub fn bump(&mut self) {
        if self.pos < self.s.len() {
            self.pos += 1;
        }
    }

    /// Consumes `b` if it is next (no white space skipped).
    #[inline]
    pub fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Skips white space, then consumes `b` if it is next.
    #[inline]
    pub fn eat_ws(&mut self, b: u8) -> bool {
        let save = self.pos;
        self.skip_ws();
        if self.eat(b) {
            true
        } else {
            self.pos = save;
            false
        }
    }

    /// Skips white space and `b`, failing with `kind` if `b` is not there.
    pub fn expect_ws(&mut self, b: u8, kind: ErrorKind) -> Result<()> {
        self.skip_ws();
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.err(kind))
        }
    }

    /// Skips SP, HT and folds (CRLF or LF followed by SP/HT). Returns true if anything was skipped.
    #[inline]
    pub fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        let b = self.bytes();
        // Fast path: the next byte is not SP, HT, CR or LF (all below 0x21), the common case
        // between tokens.
        if b.get(start).is_none_or(|&c| c > b' ') {
            return false;
        }
        loop {
            match b.get(self.pos) {
                Some(b' ') | Some(b'\t') => self.pos += 1,
                Some(b'\r')
                    if b.get(self.pos + 1) == Some(&b'\n') && is_wsp(b.get(self.pos + 2)) =>
                {
                    self.pos += 3
                }
                Some(b'\n') if is_wsp(b.get(self.pos + 1)) => self.pos += 2,
                _ => break,
            }
        }
        self.pos != start
    }

    /// The slice between two positions (both at ASCII bytes or at the ends, so always on char
    /// boundaries; `get` keeps that from ever panicking).
    #[inline]
    pub fn slice(&self, from: usize, to: usize) -> &'a str {
        self.s.get(from..to).unwrap_or("")
    }

    /// The text from `from` to the end.
    pub fn rest_from(&self, from: usize) -> &'a str {
        self.slice(from, self.s.len())
    }

    pub fn rest(&self) -> &'a str {
        self.slice(self.pos, self.s.len())
    }

    /// Consumes bytes while `class` holds; returns them (maybe empty).
    #[inline]
    pub fn take_class(&mut self, class: &[bool; 256]) -> &'a str {
        let start = self.pos;
        self.pos = chars::run_end(self.bytes(), start, class);
        self.slice(start, self.pos)
    }

    /// Consumes bytes while `f` holds.
    #[inline]
    pub fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        let rest = self.bytes().get(start..).unwrap_or(&[]);
        let n = rest.iter().position(|&c| !f(c)).unwrap_or(rest.len());
        self.pos = start + n;
        self.slice(start, self.pos)
    }

    /// A non-empty token, or `kind` at the cursor.
    #[inline]
    pub fn token(&mut self, kind: ErrorKind) -> Result<&'a str> {
        let t = self.take_class(&chars::TOKEN);
        if t.is_empty() {
            Err(self.err(kind))
        } else {
            Ok(t)
        }
    }

    /// A quoted string starting at the cursor (which must be on the opening quote). Returns the
    /// content between the quotes, escapes kept (see [`unquote`]).
    pub fn quoted(&mut self) -> Result<&'a str> {
        let open = self.pos;
        if !self.eat(b'"') {
            return Err(self.err(ErrorKind::BadToken));
        }
        let start = self.pos;
        let b = self.bytes();
        let mut i = start;
        loop {
            // The next `"` or `\`. After an escape another one may follow at once, so the
            // next 32 bytes are searched with a plain loop (a vectorised search per escape costs
            // ~90 instructions per two bytes on `"\"\"\"..."`); the first search, and long
            // runs, use memchr2.
            let rest = b.get(i..).unwrap_or(&[]);
            let near = if i == start {
                &[][..]
            } else {
                rest.get(..32).unwrap_or(rest)
            };
            let at = match near.iter().position(|&c| c == b'"' || c == b'\\') {
                Some(k) => i + k,
                None => match crate::simd::find2(&rest[near.len()..], b'"', b'\\') {
                    Some(k) => i + near.len() + k,
                    None => return Err(self.err_at(ErrorKind::UnterminatedQuote, open)),
                },
            };
            if b[at] == b'\\' {
                // quoted-pair: the escaped byte may be anything but CR and LF
                match b.get(at + 1) {
                    Some(b'\r') | Some(b'\n') | None => {
                        return Err(self.err_at(ErrorKind::UnterminatedQuote, open))
                    }
                    Some(_) => i = at + 2,
                }
            } else {
                self.pos = at + 1;
                return Ok(self.slice(start, at));
            }
        }
    }

    /// Generic parameters `*( SEMI generic-param )` from the cursor. Returns the raw text from the
    /// first `;` (white space before it skipped) to the end of the last parameter, and calls `each`
    /// with every name and value so that callers can pick out the ones they know in this one pass.
    #[inline(always)]
    pub fn header_params(
        &mut self,
        mut each: impl FnMut(&'a str, Option<&'a str>) -> Result<()>,
    ) -> Result<Params<'a>> {
        let mut count = 0usize;
        let mut start = None;
        let mut end = self.pos;
        loop {
            let save = self.pos;
            self.skip_ws();
            if !self.eat(b';') {
                self.pos = save;
                break;
            }
            if start.is_none() {
                start = Some(self.pos - 1);
            }
            count += 1;
            if count > self.max_params {
                return Err(self.err(ErrorKind::TooManyParams));
            }
            self.skip_ws();
            let name = self.token(ErrorKind::BadParam)?;
            let mut value = None;
            if self.eat_ws(b'=') {
                self.skip_ws();
                if self.peek() == Some(b'"') {
                    let q0 = self.pos;
                    self.quoted()?;
                    value = Some(self.slice(q0, self.pos));
                } else {
                    let v = self.take_class(&chars::GENVALUE);
                    if v.is_empty() {
                        return Err(self.err(ErrorKind::BadParam));
                    }
                    value = Some(v);
                }
            }
            each(name, value)?;
            end = self.pos;
        }
        Ok(match start {
            Some(s) => Params::new(self.slice(s, end)),
            None => Params::EMPTY,
        })
    }

    /// After a value in a comma-separated list: skips white space and expects a `,` or the end.
    /// Returns true if a comma was consumed (another value follows).
    pub fn list_sep(&mut self, kind: ErrorKind) -> Result<bool> {
        self.skip_ws();
        if self.at_end() {
            Ok(false)
        } else if self.eat(b',') {
            Ok(true)
        } else {
            Err(self.err(kind))
        }
    }
}

#[inline]
fn is_wsp(b: Option<&u8>) -> bool {
    matches!(b, Some(b' ') | Some(b'\t'))
}

/// Removes the backslash of each quoted-pair. Borrows when there is nothing to remove.
pub fn unquote(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('\\') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut esc = false;
    for ch in s.chars() {
        if esc {
            out.push(ch);
            esc = false;
        } else if ch == '\\' {
            esc = true;
        } else {
            out.push(ch);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Parameters (`;name=value;flag`) kept as their raw text and read on demand; the decoder that
/// produced them has already checked their syntax and count. Works for header parameters
/// (with white space, folds and quoted values) and URI parameters alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a> {
    raw: &'a str,
}

impl<'a> Params<'a> {
    pub const EMPTY: Params<'static> = Params { raw: "" };

    pub(crate) fn new(raw: &'a str) -> Self {
        Params { raw }
    }

    /// The raw text, from the first `;` on (empty when there are no parameters).
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter {
            c: Cursor::new(self.raw, 0, usize::MAX),
        }
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// The parameter named `name` (case-insensitive): `Some(None)` for a flag without value.
    /// Quoted values keep their quotes; see [`unquote`].
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The value of `name`, with surrounding quotes removed (escapes kept).
    pub fn value(&self, name: &str) -> Option<&'a str> {
        self.get(name).flatten().map(strip_quotes)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Strips one pair of surrounding double quotes, if present.
pub fn strip_quotes(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(v)
}

pub struct ParamIter<'a> {
    c: Cursor<'a>,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a str, Option<&'a str>);

    fn next(&mut self) -> Option<Self::Item> {
        let c = &mut self.c;
        c.skip_ws();
        if !c.eat(b';') {
            return None;
        }
        c.skip_ws();
        // URI parameters may hold escapes and a few more characters than tokens; the decoder has
        // validated them already, so here anything up to the next separator is the name.
        let n0 = c.pos();
        c.take_while(|b| !matches!(b, b'=' | b';' | b' ' | b'\t' | b'\r' | b'\n'));
        let name = c.slice(n0, c.pos());
        if !c.eat_ws(b'=') {
            return Some((name, None));
        }
        c.skip_ws();
        let v0 = c.pos();
        if c.peek() == Some(b'"') {
            if c.quoted().is_err() {
                c.set_pos(usize::MAX);
            }
        } else {
            c.take_while(|b| !matches!(b, b';' | b' ' | b'\t' | b'\r' | b'\n'));
        }
        Some((name, Some(c.slice(v0, c.pos()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_folds_as_whitespace() {
        let mut c = Cursor::new(" \r\n\tabc", 0, 8);
        assert!(c.skip_ws());
        assert_eq!(c.token(ErrorKind::BadToken).unwrap(), "abc");
    }

    #[test]
    fn crlf_without_continuation_is_not_whitespace() {
        let mut c = Cursor::new("\r\nabc", 0, 8);
        assert!(!c.skip_ws());
        assert_eq!(c.pos(), 0);
    }

    #[test]
    fn quoted_strings_with_escapes() {
        let mut c = Cursor::new(r#""J Rosenberg \\\"" rest"#, 0, 8);
        let q = c.quoted().unwrap();
        assert_eq!(q, r#"J Rosenberg \\\""#);
        assert_eq!(unquote(q), r#"J Rosenberg \""#);
        let mut c = Cursor::new(r#""open"#, 10, 8);
        assert_eq!(
            c.quoted().unwrap_err(),
            ParseError::new(ErrorKind::UnterminatedQuote, 10)
        );
    }

    #[test]
    fn quoted_strings_long_and_short() {
        for (body, ok) in [
            ("a".repeat(100), true),
            ("\\\"".repeat(40), true),
            (format!("{}\\\\", "x".repeat(31)), true),
            (format!("{}\\", "x".repeat(31)), false),
            (format!("{}\\", "x".repeat(32)), false),
            (format!("{}\\", "x".repeat(70)), false),
            ("\u{e9}\\\u{e9}".to_string(), true),
        ] {
            let text = format!("\"{body}\" rest");
            let mut c = Cursor::new(&text, 0, 8);
            match c.quoted() {
                Ok(q) => {
                    assert!(ok, "{text:?}");
                    assert_eq!(q, body);
                    assert_eq!(c.rest(), " rest");
                }
                Err(e) => {
                    assert!(!ok, "{text:?}: {e}");
                    assert_eq!(e.kind, ErrorKind::UnterminatedQuote);
                }
            }
        }
        let long_open = format!("\"{}", "y".repeat(100));
        assert!(Cursor::new(&long_open, 0, 8).quoted().is_err());
    }

    #[test]
    fn header_params_are_counted_and_iterated() {
        let mut c = Cursor::new(" ; tag = 1918 ;lr; q=\"a;b\" ,next", 0, 8);
        let mut seen = Vec::new();
        let p = c
            .header_params(|n, v| {
                seen.push((n, v));
                Ok(())
            })
            .unwrap();
        assert_eq!(
            seen,
            vec![("tag", Some("1918")), ("lr", None), ("q", Some("\"a;b\""))]
        );
        assert_eq!(p.iter().collect::<Vec<_>>(), seen);
        assert_eq!(p.value("TAG"), Some("1918"));
        assert_eq!(p.value("q"), Some("a;b"));
        assert!(p.contains("lr"));
        assert!(c.list_sep(ErrorKind::BadParam).unwrap());

        let mut c = Cursor::new(";a;b;c", 0, 2);
        assert_eq!(
            c.header_params(|_, _| Ok(())).unwrap_err().kind,
            ErrorKind::TooManyParams
        );
    }
}
