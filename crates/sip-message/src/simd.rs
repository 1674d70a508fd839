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
        _mm_set_epi64x,
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
