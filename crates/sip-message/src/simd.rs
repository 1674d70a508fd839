//! Byte searches over 16-byte blocks for the hot paths: SSE2 on x86_64 (part of the baseline,
//! so no run-time detection), a scalar loop elsewhere and for the last bytes of a slice.
//!
//! Header lines and URIs are short (mostly under 64 bytes), where `memchr`'s set-up costs
//! more than the search; one 16-byte compare per block keeps the cost to a few instructions
//! per block without any set-up. Long runs are handed to `memchr` by the callers that expect
//! them.

/// A bit per byte of the 16 bytes at `s[at..]` that equals `a` or `b` (bit `k` for byte
/// `at + k`), or `None` when fewer than 16 bytes remain.
#[inline(always)]
pub(crate) fn mask2(s: &[u8], at: usize, a: u8, b: u8) -> Option<u32> {
    mask3(s, at, a, b, b)
}

/// Like [`mask2`] for three byte values.
#[inline(always)]
pub(crate) fn mask3(s: &[u8], at: usize, a: u8, b: u8, c: u8) -> Option<u32> {
    let block = s.get(at..)?.first_chunk::<16>()?;
    Some(imp::mask3(block, a, b, c))
}

/// Like [`mask2`] for one byte value.
#[inline(always)]
pub(crate) fn mask1(s: &[u8], at: usize, a: u8) -> Option<u32> {
    mask3(s, at, a, a, a)
}

/// The index of the first `a` or `b` in `s`. Slices of 16 bytes or more are searched block by
/// block, the last block overlapping the one before it (so no byte-by-byte tail); shorter
/// ones of 8 bytes or more as two overlapping words.
#[inline]
pub(crate) fn find2(s: &[u8], a: u8, b: u8) -> Option<usize> {
    find3(s, a, b, b)
}

/// [`find2`] for three byte values.
#[inline]
pub(crate) fn find3(s: &[u8], a: u8, b: u8, c: u8) -> Option<usize> {
    let n = s.len();
    if n >= 16 {
        let mut i = 0;
        while let Some(m) = mask3(s, i, a, b, c) {
            if m != 0 {
                return Some(i + m.trailing_zeros() as usize);
            }
            i += 16;
        }
        if i >= n {
            return None;
        }
        let last = n - 16;
        return match mask3(s, last, a, b, c) {
            Some(m) if m != 0 => Some(last + m.trailing_zeros() as usize),
            _ => None,
        };
    }
    if n >= 8 {
        let word = |at: usize| -> Option<usize> {
            let w = u64::from_le_bytes(*s.get(at..)?.first_chunk::<8>()?);
            swar_first(w, a, b, c).map(|k| at + k)
        };
        return word(0).or_else(|| word(n - 8));
    }
    s.iter().position(|&x| x == a || x == b || x == c)
}

/// The first byte of the little-endian word `w` that equals `a`, `b` or `c`. A zero byte of
/// `w ^ splat(x)` marks a match; the borrow of the subtraction can only flag bytes above a
/// real match, so the lowest flag is exact.
#[inline(always)]
fn swar_first(w: u64, a: u8, b: u8, c: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x;
    let (xa, xb, xc) = (
        w ^ (ONES * u64::from(a)),
        w ^ (ONES * u64::from(b)),
        w ^ (ONES * u64::from(c)),
    );
    let hit = (zero(xa) | zero(xb) | zero(xc)) & HIGH;
    (hit != 0).then(|| (hit.trailing_zeros() / 8) as usize)
}

/// Masks of the 16 bytes at `b[p..]` (bit `k` for byte `p + k`): bytes that are not letters,
/// digits, `.` or `-` (the bytes past the end of `b` count as such), `.`, and `-`. `None` when
/// `b` is shorter than 16 bytes. Near the end of `b` the last 16 bytes are loaded and the
/// masks shifted, so that any position of a slice of 16 bytes or more is covered.
#[inline(always)]
fn host_block(b: &[u8], p: usize) -> Option<(u32, u32, u32)> {
    if let Some(block) = b.get(p..).and_then(|r| r.first_chunk::<16>()) {
        return Some(imp::host_masks(block));
    }
    let n = b.len();
    let q = n.checked_sub(16)?;
    if p >= n {
        return Some((u32::MAX, 0, 0));
    }
    let block = b.get(q..).and_then(|r| r.first_chunk::<16>())?;
    let (bad, dot, dash) = imp::host_masks(block);
    let shift = (p - q) as u32; // 1..=15
    Some((
        (bad >> shift) | (u32::MAX << (16 - shift)),
        dot >> shift,
        dash >> shift,
    ))
}

/// The end of the run of letters, digits, `.` and `-` at `b[p..]` (a host name or address),
/// and where its `.` and `-` are (bit `k` for byte `p + k`). `None` when `b` is shorter than
/// 16 bytes or the run is 64 bytes or longer: the caller scans byte by byte then.
#[inline]
pub(crate) fn host_run(b: &[u8], p: usize) -> Option<(usize, u64, u64)> {
    let (mut dots, mut dashes) = (0u64, 0u64);
    let mut k = 0usize;
    while k < 64 {
        let (bad, dot, dash) = host_block(b, p + k)?;
        let end = (bad | 0x1_0000).trailing_zeros();
        let keep = (1u32 << end) - 1;
        dots |= u64::from(dot & keep) << k;
        dashes |= u64::from(dash & keep) << k;
        if end < 16 {
            return Some((p + k + end as usize, dots, dashes));
        }
        k += 16;
    }
    None
}

/// True when every byte of `s` is below 0x80.
#[inline]
pub(crate) fn is_ascii(s: &[u8]) -> bool {
    let n = s.len();
    if n < 16 {
        return s.is_ascii();
    }
    let mut high = 0u32;
    // 64 bytes per step (four vectors OR-ed, one mask), then 16 at a time.
    let mut quads = s.chunks_exact(64);
    for quad in quads.by_ref() {
        if let Some(q) = quad.first_chunk::<64>() {
            high |= imp::high_mask64(q);
        }
    }
    let rest = quads.remainder();
    let mut i = 0;
    while let Some(block) = rest.get(i..).and_then(|r| r.first_chunk::<16>()) {
        high |= imp::high_mask(block);
        i += 16;
    }
    // The last bytes, in one block overlapping the one before.
    if let Some(block) = s.get(n - 16..).and_then(|r| r.first_chunk::<16>()) {
        high |= imp::high_mask(block);
    }
    high == 0
}

/// The index of the first `a` in `s`.
#[inline]
pub(crate) fn find1(s: &[u8], a: u8) -> Option<usize> {
    find2(s, a, a)
}

/// The index of the first byte of `s` below 0x20 (a control character, HT included) or equal
/// to 0x7f, or `s.len()`.
#[inline]
pub(crate) fn find_ctl(s: &[u8]) -> usize {
    let n = s.len();
    let mut i = 0;
    while let Some(block) = s.get(i..).and_then(|r| r.first_chunk::<16>()) {
        let m = imp::ctl_mask(block);
        if m != 0 {
            return i + m.trailing_zeros() as usize;
        }
        i += 16;
    }
    if i >= n {
        return n;
    }
    // The last bytes: one block overlapping the one before when there is room for it.
    if let Some(last) = n.checked_sub(16) {
        if let Some(block) = s.get(last..).and_then(|r| r.first_chunk::<16>()) {
            let m = imp::ctl_mask(block);
            return if m != 0 {
                last + m.trailing_zeros() as usize
            } else {
                n
            };
        }
    }
    s.iter().position(|&c| c < 0x20 || c == 0x7f).unwrap_or(n)
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod imp {
    use core::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_set_epi64x, _mm_sub_epi8,
    };

    /// The block as a vector. Built from two integers so that no pointer is involved (the
    /// compiler turns it into one unaligned load).
    #[inline]
    #[target_feature(enable = "sse2")]
    fn load(block: &[u8; 16]) -> __m128i {
        let v = u128::from_le_bytes(*block);
        _mm_set_epi64x((v >> 64) as u64 as i64, v as u64 as i64)
    }

    // SAFETY (both wrappers): this module is compiled only when SSE2 is enabled for the whole
    // target (`cfg(target_feature = "sse2")`, the x86_64 baseline), so every CPU that runs this
    // code has it; the functions called touch no memory but their by-value arguments.
    #[inline(always)]
    pub(super) fn mask3(block: &[u8; 16], a: u8, b: u8, c: u8) -> u32 {
        unsafe { mask3_sse2(block, a, b, c) }
    }

    #[inline(always)]
    pub(super) fn ctl_mask(block: &[u8; 16]) -> u32 {
        unsafe { ctl_mask_sse2(block) }
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn mask3_sse2(block: &[u8; 16], a: u8, b: u8, c: u8) -> u32 {
        let v = load(block);
        let ea = _mm_cmpeq_epi8(v, _mm_set1_epi8(a as i8));
        let eb = _mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8));
        let ec = _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(ea, eb), ec)) as u32
    }

    #[inline(always)]
    pub(super) fn host_masks(block: &[u8; 16]) -> (u32, u32, u32) {
        unsafe { host_masks_sse2(block) }
    }

    /// The top bit of every byte.
    #[inline(always)]
    pub(super) fn high_mask(block: &[u8; 16]) -> u32 {
        unsafe { high_mask_sse2(block) }
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn high_mask_sse2(block: &[u8; 16]) -> u32 {
        _mm_movemask_epi8(load(block)) as u32
    }

    /// The top bits of 64 bytes OR-ed together (bit `k` set when byte `k`, `16 + k`, `32 + k`
    /// or `48 + k` has it).
    #[inline(always)]
    pub(super) fn high_mask64(q: &[u8; 64]) -> u32 {
        unsafe { high_mask64_sse2(q) }
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn high_mask64_sse2(q: &[u8; 64]) -> u32 {
        let part = |k: usize| {
            let block = q.get(k * 16..).and_then(|r| r.first_chunk::<16>());
            load(block.unwrap_or(&[0; 16]))
        };
        let v = _mm_or_si128(
            _mm_or_si128(part(0), part(1)),
            _mm_or_si128(part(2), part(3)),
        );
        _mm_movemask_epi8(v) as u32
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn host_masks_sse2(block: &[u8; 16]) -> (u32, u32, u32) {
        let v = load(block);
        // x in lo..=lo+span exactly when min(x - lo, span) == x - lo (bytes wrap around).
        let in_range = |x: __m128i, lo: u8, span: u8| {
            let d = _mm_sub_epi8(x, _mm_set1_epi8(lo as i8));
            _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(span as i8)), d)
        };
        // `| 0x20` maps exactly the upper-case letters onto the lower-case ones.
        let alpha = in_range(_mm_or_si128(v, _mm_set1_epi8(0x20)), b'a', 25);
        let digit = in_range(v, b'0', 9);
        let dot = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'.' as i8));
        let dash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'-' as i8));
        let ok = _mm_or_si128(_mm_or_si128(alpha, digit), _mm_or_si128(dot, dash));
        (
            !(_mm_movemask_epi8(ok) as u32) & 0xffff,
            _mm_movemask_epi8(dot) as u32,
            _mm_movemask_epi8(dash) as u32,
        )
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn ctl_mask_sse2(block: &[u8; 16]) -> u32 {
        let v = load(block);
        // min(v, 0x1f) == v exactly for the bytes 0x00..=0x1f.
        let low = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        let del = _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f));
        _mm_movemask_epi8(_mm_or_si128(low, del)) as u32
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
mod imp {
    #[inline]
    pub(super) fn mask3(block: &[u8; 16], a: u8, b: u8, c: u8) -> u32 {
        block.iter().enumerate().fold(0, |m, (k, &x)| {
            m | (u32::from(x == a || x == b || x == c) << k)
        })
    }

    #[inline]
    pub(super) fn high_mask(block: &[u8; 16]) -> u32 {
        block
            .iter()
            .enumerate()
            .fold(0, |m, (k, &c)| m | (u32::from(c >> 7) << k))
    }

    #[inline]
    pub(super) fn high_mask64(q: &[u8; 64]) -> u32 {
        q.iter()
            .enumerate()
            .fold(0, |m, (k, &c)| m | (u32::from(c >> 7) << (k % 16)))
    }

    #[inline]
    pub(super) fn host_masks(block: &[u8; 16]) -> (u32, u32, u32) {
        let mut m = (0, 0, 0);
        for (k, &c) in block.iter().enumerate() {
            m.0 |= u32::from(!(c.is_ascii_alphanumeric() || c == b'.' || c == b'-')) << k;
            m.1 |= u32::from(c == b'.') << k;
            m.2 |= u32::from(c == b'-') << k;
        }
        m
    }

    #[inline]
    pub(super) fn ctl_mask(block: &[u8; 16]) -> u32 {
        block
            .iter()
            .enumerate()
            .fold(0, |m, (k, &c)| m | (u32::from(c < 0x20 || c == 0x7f) << k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_runs_match_the_plain_loops() {
        let hostish = |c: u8| c.is_ascii_alphanumeric() || c == b'.' || c == b'-';
        let alphabet = b"aZ09.-_:;@[ \xff\x7f/`{";
        let mut seed = 12345u32;
        for len in 0..90usize {
            for _ in 0..40 {
                let s: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        // mostly host characters, so that runs are long
                        let r = (seed >> 16) as usize;
                        if r.is_multiple_of(5) {
                            alphabet[r % alphabet.len()]
                        } else {
                            alphabet[r % 6]
                        }
                    })
                    .collect();
                for p in 0..=len {
                    let want = p + s[p..].iter().position(|&c| !hostish(c)).unwrap_or(len - p);
                    if let Some((e, dots, dashes)) = host_run(&s, p) {
                        assert_eq!(e, want);
                        for k in 0..(e - p) {
                            assert_eq!(dots >> k & 1 == 1, s[p + k] == b'.');
                            assert_eq!(dashes >> k & 1 == 1, s[p + k] == b'-');
                        }
                        assert_eq!(dots >> (e - p), 0);
                        assert_eq!(dashes >> (e - p), 0);
                    } else {
                        assert!(len < 16 || want - p >= 64);
                    }
                }
            }
        }
    }

    #[test]
    fn ascii_check_matches_std() {
        for len in 0..200usize {
            let mut s = vec![b'a'; len];
            assert!(is_ascii(&s));
            for k in 0..len {
                s[k] = 0x80 | (k as u8);
                assert!(!is_ascii(&s), "{len} {k}");
                s[k] = 0x7f;
                assert!(is_ascii(&s));
            }
        }
    }

    #[test]
    fn searches_match_the_plain_loops() {
        let mut s = Vec::new();
        for len in 0..80usize {
            for hit in 0..=len {
                s.clear();
                s.extend((0..len).map(|k| b'a' + (k % 26) as u8));
                if hit < len {
                    s[hit] = b'\n';
                }
                let want = s.iter().position(|&c| c == b'\r' || c == b'\n');
                assert_eq!(find2(&s, b'\r', b'\n'), want, "{len} {hit}");
                // a second match after the first does not change the answer
                if hit + 3 < len {
                    s[hit + 3] = b'\r';
                    assert_eq!(find2(&s, b'\r', b'\n'), want, "{len} {hit}");
                    s[hit + 3] = b'x';
                }
                assert_eq!(find1(&s, b'\n'), want);
                let ctl = s.iter().position(|&c| c < 0x20 || c == 0x7f);
                assert_eq!(find_ctl(&s), ctl.unwrap_or(len));
            }
        }
        // Every byte value against the scalar definition.
        let all: Vec<u8> = (0..=255u8).collect();
        for (k, &c) in all.iter().enumerate() {
            assert_eq!(find1(&all, c), Some(k));
            let single = [c; 17];
            assert_eq!(find_ctl(&single) == 0, c < 0x20 || c == 0x7f, "{c:#x}");
        }
    }
}
