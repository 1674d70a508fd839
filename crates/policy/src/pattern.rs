//! Address patterns: globs and regular expressions over `user@host`.

use std::borrow::Cow;
use std::fmt;

use sip_message::{Host, Uri};

/// The most bytes a regular expression may compile to: enough for any sane address pattern,
/// small enough that a pasted monster cannot take the process's memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Longest glob or regex source accepted.
pub(crate) const MAX_PATTERN_LEN: usize = 1024;

/// A compiled address pattern.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// `*` any run of characters, `?` one character, anything else itself (ASCII case ignored).
    Glob(String),
    /// A regular expression (the `regex` crate's syntax, linear time), searched anywhere in the
    /// subject unless anchored.
    Regex(regex::Regex),
}

impl Pattern {
    /// A glob; errors name what is wrong with it.
    pub fn glob(src: &str) -> Result<Pattern, String> {
        if src.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if src.len() > MAX_PATTERN_LEN {
            return Err(format!("longer than {MAX_PATTERN_LEN} bytes"));
        }
        if let Some(c) = src.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "{c:?} is not allowed in a glob (addresses have no white space)"
            ));
        }
        Ok(Pattern::Glob(src.to_owned()))
    }

    /// A regular expression; errors carry the regex crate's explanation.
    pub fn regex(src: &str) -> Result<Pattern, String> {
        if src.len() > MAX_PATTERN_LEN {
            return Err(format!("longer than {MAX_PATTERN_LEN} bytes"));
        }
        regex::RegexBuilder::new(src)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map(Pattern::Regex)
            .map_err(|e| {
                // The regex crate's message spans several lines (source, caret, error); one
                // line keeps `FILE:LINE: field: problem` greppable.
                let text = e.to_string();
                let last = text
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim();
                let last = last.strip_prefix("error: ").unwrap_or(last);
                format!("invalid regex: {last}")
            })
    }

    /// Whether `subject` matches.
    pub fn matches(&self, subject: &str) -> bool {
        match self {
            Pattern::Glob(g) => glob_match(g.as_bytes(), subject.as_bytes()),
            Pattern::Regex(r) => r.is_match(subject),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Glob(g) => f.write_str(g),
            Pattern::Regex(r) => f.write_str(r.as_str()),
        }
    }
}

/// Glob matching in O(pattern × subject) at worst, without recursion: on a mismatch, go back
/// to the last `*` and let it swallow one more byte.
fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&b) = s.get(i) {
        match pat.get(p) {
            Some(b'*') => {
                star = Some((p, i));
                p += 1;
            }
            Some(&c) if c == b'?' || c.eq_ignore_ascii_case(&b) => {
                // `?` matches one character: skip a whole UTF-8 sequence, not one byte.
                if c == b'?' {
                    i += utf8_len(b);
                } else {
                    i += 1;
                }
                p += 1;
            }
            _ => match star {
                Some((sp, si)) => {
                    p = sp + 1;
                    i = si + 1;
                    star = Some((sp, si + 1));
                }
                None => return false,
            },
        }
    }
    pat.get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// The address form patterns match: `user@host` for SIP URIs (host in lower case, no port, no
/// parameters), `host` when there is no user, the number for `tel:` URIs, the whole text for
/// other schemes.
pub fn address_key<'a>(uri: &Uri<'a>) -> Cow<'a, str> {
    match uri {
        Uri::Sip(u) => {
            let host: Cow<'a, str> = match u.host {
                Host::Name(n) if n.bytes().any(|b| b.is_ascii_uppercase()) => {
                    Cow::Owned(n.to_ascii_lowercase())
                }
                _ => Cow::Borrowed(u.host_str),
            };
            match u.user {
                Some(user) => Cow::Owned(format!("{user}@{host}")),
                None => host,
            }
        }
        Uri::Tel(t) => Cow::Borrowed(t.number),
        Uri::Other(o) => Cow::Borrowed(o.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let cases: &[(&str, &str, bool)] = &[
            ("*@evil.example", "bob@evil.example", true),
            ("*@evil.example", "bob@EVIL.example", true),
            ("*@evil.example", "bob@evil.example.org", false),
            ("*@evil.example", "evil.example", false),
            ("bob@*", "bob@x", true),
            ("bob@*", "bob@", true),
            ("b?b@x", "bob@x", true),
            ("b?b@x", "bb@x", false),
            ("+1900*", "+19005551234", true),
            ("+1900*", "+1800", false),
            ("*", "", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("**a", "a", true),
            ("?", "é", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ];
        for &(pat, subject, want) in cases {
            let p = Pattern::glob(pat).unwrap();
            assert_eq!(p.matches(subject), want, "{pat} vs {subject}");
        }
    }

    #[test]
    fn bad_patterns() {
        assert!(Pattern::glob("").is_err());
        assert!(Pattern::glob("a b").is_err());
        let e = Pattern::regex("(unclosed").unwrap_err();
        assert!(e.starts_with("invalid regex: "), "{e}");
        assert!(!e.contains('\n'), "{e}");
        assert!(Pattern::regex(&"a".repeat(MAX_PATTERN_LEN + 1)).is_err());
    }

    #[test]
    fn regex_searches_unless_anchored() {
        let p = Pattern::regex(r"^\+1900\d+@").unwrap();
        assert!(p.matches("+19005551234@trunk.example"));
        assert!(!p.matches("x+19005551234@trunk.example"));
        assert!(Pattern::regex("evil").unwrap().matches("bob@evil.example"));
    }

    #[test]
    fn address_keys() {
        let cases = [
            ("sip:Bob@Example.COM:5060;transport=tcp", "Bob@example.com"),
            ("sips:example.com", "example.com"),
            ("sip:alice@[2001:db8::1]", "alice@[2001:db8::1]"),
            ("tel:+1-212-555-0101;phone-context=x", "+1-212-555-0101"),
            ("mailto:a@b", "mailto:a@b"),
        ];
        for (uri, key) in cases {
            let u = Uri::parse(uri).unwrap();
            assert_eq!(address_key(&u), key, "{uri}");
        }
    }
}
