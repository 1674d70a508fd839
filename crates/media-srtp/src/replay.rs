//! Packet index estimation (RFC 3711 3.3.1) and the replay window (3.3.2).

use crate::SrtpError;

/// Packets the replay window remembers behind the highest index. RFC 3711
/// asks for at least 64; libsrtp's default is 128 and reordering on long
/// Internet paths makes the larger window worth its 16 bytes.
pub const REPLAY_WINDOW: u64 = 128;

/// Highest index accepted so far and which of the indexes behind it were.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReplayWindow {
    highest: u64,
    /// Bit `n` set: index `highest - n` was accepted.
    seen: u128,
}

impl ReplayWindow {
    pub(crate) fn starting_at(index: u64) -> Self {
        Self {
            highest: index,
            seen: 1,
        }
    }

    pub(crate) fn highest(&self) -> u64 {
        self.highest
    }

    pub(crate) fn check(&self, index: u64) -> Result<(), SrtpError> {
        if index > self.highest {
            return Ok(());
        }
        let behind = self.highest - index;
        if behind >= REPLAY_WINDOW {
            return Err(SrtpError::TooOld);
        }
        if self.seen & (1u128 << behind) != 0 {
            return Err(SrtpError::Replayed);
        }
        Ok(())
    }

    /// Records an index; only after the packet authenticated, so a forged
    /// packet cannot move the window.
    pub(crate) fn accept(&mut self, index: u64) {
        if index > self.highest {
            let shift = index - self.highest;
            self.seen = if shift >= REPLAY_WINDOW {
                1
            } else {
                (self.seen << shift) | 1
            };
            self.highest = index;
        } else {
            let behind = self.highest - index;
            if behind < REPLAY_WINDOW {
                self.seen |= 1u128 << behind;
            }
        }
    }
}

/// The 48-bit SRTP index a sequence number most likely belongs to, given the
/// highest index seen (RFC 3711 3.3.1). Before the first wrap there is no
/// earlier roll-over to guess, as in libsrtp.
pub(crate) fn estimate_index(highest: u64, seq: u16) -> u64 {
    let roc = highest >> 16;
    let s_l = (highest & 0xffff) as u16;
    let v = if s_l < 0x8000 {
        if u32::from(seq) > u32::from(s_l) + 0x8000 {
            roc.saturating_sub(1)
        } else {
            roc
        }
    } else if u32::from(s_l) - 0x8000 > u32::from(seq) {
        roc + 1
    } else {
        roc
    };
    (v << 16) | u64::from(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_follows_rfc3711_3_3_1() {
        // Same roll-over.
        assert_eq!(estimate_index(0x1_0010, 0x0011), 0x1_0011);
        // Wrap forward: high s_l, small seq.
        assert_eq!(estimate_index(0x1_fff0, 0x0002), 0x2_0002);
        // Late packet from before the wrap.
        assert_eq!(estimate_index(0x2_0002, 0xfff0), 0x1_fff0);
        // No roll-over below zero at the start of a stream.
        assert_eq!(estimate_index(0x0_0010, 0xfff0), 0x0_fff0);
        // Boundary: exactly half a cycle ahead stays in the same roll-over.
        assert_eq!(estimate_index(0x1_0000, 0x8000), 0x1_8000);
        assert_eq!(estimate_index(0x1_0000, 0x8001), 0x0_8001);
    }

    #[test]
    fn window_accepts_reordered_refuses_replay_and_old() {
        let mut w = ReplayWindow::starting_at(1000);
        assert_eq!(w.check(1000), Err(SrtpError::Replayed));
        assert_eq!(w.check(1001), Ok(()));
        w.accept(1001);
        w.accept(1005);
        assert_eq!(w.check(1003), Ok(()));
        w.accept(1003);
        assert_eq!(w.check(1003), Err(SrtpError::Replayed));
        assert_eq!(w.check(1005 - 127), Ok(()));
        assert_eq!(w.check(1005 - 128), Err(SrtpError::TooOld));
        // A jump larger than the window forgets everything behind it.
        w.accept(1005 + 500);
        assert_eq!(w.check(1005), Err(SrtpError::TooOld));
        assert_eq!(w.check(1005 + 499), Ok(()));
        assert_eq!(w.highest(), 1505);
    }
}
