//! CRC-32 as ISO 3309 / ITU-T V.42 define it (the one of zlib and Ethernet: reflected polynomial
//! 0xEDB88320, initial value and final XOR 0xFFFFFFFF), which FINGERPRINT uses.

use crate::FINGERPRINT_XOR;

const fn make_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static TABLE: [u32; 256] = make_table();

/// CRC-32 of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c = TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    c ^ 0xFFFF_FFFF
}

/// The FINGERPRINT value for a message whose bytes before the FINGERPRINT attribute are `data`
/// (with the header length already counting the FINGERPRINT attribute).
pub fn fingerprint(data: &[u8]) -> u32 {
    crc32(data) ^ FINGERPRINT_XOR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_check_values() {
        // The "check" value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    /// A bitwise implementation, independent of the table, as a cross-check.
    fn crc32_bitwise(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                let mask = (c & 1).wrapping_neg();
                c = (c >> 1) ^ (0xEDB8_8320 & mask);
            }
        }
        !c
    }

    #[test]
    fn table_matches_bitwise() {
        let data: Vec<u8> = (0..2048u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for n in [0, 1, 3, 4, 5, 63, 64, 1000, 2048] {
            assert_eq!(crc32(&data[..n]), crc32_bitwise(&data[..n]));
        }
    }
}
