//! Small lexical helpers shared by the line parser and attribute decoders.
//!
//! Nothing here indexes into slices: every split goes through `split`,
//! `split_once` or `get`, so malformed input can only ever produce `None` or
//! an error, never a panic.

/// Space-separated tokens of `s`, each with its absolute byte offset
/// (`base` is the offset of `s` in the original input).
///
/// Runs of spaces are treated as one separator and leading/trailing spaces
/// are ignored: RFC 8866 mandates single spaces, but real stacks emit
/// trailing blanks, and being liberal here costs nothing in safety.
pub(crate) fn tokens(s: &str, base: usize) -> impl Iterator<Item = (usize, &str)> {
    let mut off = base;
    s.split(' ').filter_map(move |piece| {
        let at = off;
        off += piece.len() + 1;
        if piece.is_empty() {
            None
        } else {
            Some((at, piece))
        }
    })
}

/// Same as [`tokens`] without offsets, for attribute decoders.
pub(crate) fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(' ').filter(|w| !w.is_empty())
}

/// Parses a non-empty string of ASCII digits into `T`.
///
/// `str::parse` alone would accept a leading `+`, which SDP grammar does not
/// allow; checking the digits first also keeps overflow the only failure left
/// to `parse`.
pub(crate) fn digits<T: core::str::FromStr>(s: &str) -> Option<T> {
    if is_digits(s) {
        s.parse().ok()
    } else {
        None
    }
}

/// True for a non-empty run of ASCII digits.
pub(crate) fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parses an RTP/UDP port (0..=65535).
pub(crate) fn port(s: &str) -> Option<u16> {
    digits(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_report_offsets_and_skip_blank_runs() {
        let t: Vec<_> = tokens("a  bc d ", 10).collect();
        assert_eq!(t, vec![(10, "a"), (13, "bc"), (16, "d")]);
        assert_eq!(tokens("", 0).count(), 0);
        assert_eq!(tokens("   ", 0).count(), 0);
    }

    #[test]
    fn digits_rejects_signs_and_overflow() {
        assert_eq!(digits::<u16>("65535"), Some(65535));
        assert_eq!(digits::<u16>("65536"), None);
        assert_eq!(digits::<u16>("+1"), None);
        assert_eq!(digits::<u16>(""), None);
        assert_eq!(digits::<u16>("1a"), None);
        assert_eq!(digits::<u64>("00018446744073709551615"), Some(u64::MAX));
        assert_eq!(port("8000"), Some(8000));
        assert_eq!(port("-1"), None);
    }

    #[test]
    fn words_split() {
        assert_eq!(words(" a b  c").collect::<Vec<_>>(), vec!["a", "b", "c"]);
    }
}
