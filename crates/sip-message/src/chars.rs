//! Character classes of RFC 3261 section 25 as 256-entry tables: one load per byte on hot paths.

const fn build(extra: &[u8], alnum: bool) -> [bool; 256] {
    let mut t = [false; 256];
    if alnum {
        let mut c = b'0';
        while c <= b'9' {
            t[c as usize] = true;
            c += 1;
        }
        c = b'a';
        while c <= b'z' {
            t[c as usize] = true;
            t[(c - 32) as usize] = true;
            c += 1;
        }
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}

/// `token` (section 25.1).
pub(crate) static TOKEN: [bool; 256] = build(b"-.!%*_+`'~", true);
/// `word` (Call-ID): token plus separators that are allowed there.
pub(crate) static WORD: [bool; 256] = build(b"-.!%*_+`'~()<>:\\\"/[]?{}", true);
/// URI `user` characters other than escapes: unreserved / user-unreserved.
pub(crate) static USER: [bool; 256] = build(b"-_.!~*'()&=+$,;?/", true);
/// URI `password` characters other than escapes.
pub(crate) static PASSWORD: [bool; 256] = build(b"-_.!~*'()&=+$,", true);
/// URI `paramchar` other than escapes: param-unreserved / unreserved.
pub(crate) static PARAMCHAR: [bool; 256] = build(b"[]/:&+$-_.!~*'()", true);
/// URI header `hname`/`hvalue` characters other than escapes.
pub(crate) static HCHAR: [bool; 256] = build(b"[]/?:+$-_.!~*'()", true);
/// Characters of a generic-param value that is not quoted: token plus what hosts and IPv6
/// references need (`gen-value = token / host / quoted-string`).
pub(crate) static GENVALUE: [bool; 256] = build(b"-.!%*_+`'~:[]", true);
/// Scheme characters after the first letter.
pub(crate) static SCHEME: [bool; 256] = build(b"+-.", true);

#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    TOKEN[b as usize]
}

#[inline]
pub(crate) fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

#[inline]
pub(crate) fn hex_val(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// The end of the run of `class` bytes at `b[i..]`. (A plain indexed loop: it compiles to
/// fewer instructions per byte than an iterator's `position` here.)
#[inline]
pub(crate) fn run_end(b: &[u8], mut i: usize, class: &[bool; 256]) -> usize {
    loop {
        match b.get(i) {
            Some(&c) if class[c as usize] => i += 1,
            _ => return i,
        }
    }
}

/// True when every byte of `s` is in `class` or is part of a valid `%HH` escape.
pub(crate) fn all_escaped(s: &[u8], class: &[bool; 256]) -> bool {
    let mut i = 0;
    loop {
        i = run_end(s, i, class);
        match s.get(i) {
            None => return true,
            Some(b'%') => match (s.get(i + 1), s.get(i + 2)) {
                (Some(&h), Some(&l)) if is_hex(h) && is_hex(l) => i += 3,
                _ => return false,
            },
            Some(_) => return false,
        }
    }
}

/// True when `s` is a non-empty token.
pub fn is_token_str(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token)
}

/// Host character classes for `uri::scan_host`: one table load tells what a byte is. The
/// classes are bits so that the scan can OR together what it has seen.
pub(crate) const HC_OTHER: u8 = 0;
pub(crate) const HC_DIGIT: u8 = 1;
pub(crate) const HC_ALPHA: u8 = 2;
pub(crate) const HC_DOT: u8 = 4;
pub(crate) const HC_DASH: u8 = 8;
pub(crate) static HOST_CLASS: [u8; 256] = {
    let mut t = [HC_OTHER; 256];
    let mut c = 0usize;
    while c < 256 {
        let b = c as u8;
        t[c] = if b.is_ascii_digit() {
            HC_DIGIT
        } else if b.is_ascii_alphabetic() {
            HC_ALPHA
        } else if b == b'.' {
            HC_DOT
        } else if b == b'-' {
            HC_DASH
        } else {
            HC_OTHER
        };
        c += 1;
    }
    t
};
