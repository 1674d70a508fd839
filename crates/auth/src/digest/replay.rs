//! Nonce-count tracking (RFC 7616 section 3.4: "the server ... can detect a replay by noticing
//! the same nc value"). Nonces are stateless, but accepting a response records the highest
//! `nc` seen for that nonce, and a later response must carry a higher one.
//!
//! The table is bounded: at most `capacity` nonces, each entry about 60 bytes plus map
//! overhead (the default 65,536 entries take a few MiB). Entries leave when their nonce can no
//! longer be fresh (older than the lifetime) or, when the table is full of live nonces, oldest
//! first. Evicting a live nonce must not reopen it to replays, so the table remembers the
//! creation time of the newest nonce it evicted (the *watermark*): a nonce that is not in the
//! table and was created at or before the watermark is refused as stale, and the client simply
//! answers a new challenge. A flood of fresh nonces therefore costs honest clients at most one
//! extra round trip, never a replay window.

use std::collections::{BTreeSet, HashMap};

use super::nonce::NonceInfo;

/// What [`NcTable::accept`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NcVerdict {
    /// First use of this nc for this nonce: recorded.
    Accepted,
    /// `nc` is not above the highest accepted for this nonce.
    Replay,
    /// The nonce may have been evicted: its history is unknown, so it is refused as stale.
    Forgotten,
}

/// Highest accepted nonce-count per nonce, bounded in size.
#[derive(Debug)]
pub struct NcTable {
    capacity: usize,
    entries: HashMap<[u8; 16], Entry>,
    /// (issued_ms, id): eviction order.
    by_age: BTreeSet<(u64, [u8; 16])>,
    watermark: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    issued_ms: u64,
    nc: u32,
}

impl NcTable {
    /// An empty table holding at most `capacity` nonces (at least 1).
    pub fn new(capacity: usize) -> Self {
        NcTable {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            by_age: BTreeSet::new(),
            watermark: None,
        }
    }

    /// An empty table that treats every nonce created at or before `watermark_ms` as
    /// forgotten: what replaces a table whose contents are lost (a resize on reload), so
    /// that nothing accepted before can be replayed.
    pub fn with_watermark(capacity: usize, watermark_ms: u64) -> Self {
        let mut t = NcTable::new(capacity);
        t.watermark = Some(watermark_ms);
        t
    }

    /// Number of nonces tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records `nc` for `nonce` if it is above every nc accepted for it. `oldest_live_ms` is the
    /// creation time below which a nonce is stale anyway (now minus the lifetime): such entries
    /// are purged first when room is needed.
    pub fn accept(&mut self, nonce: &NonceInfo, nc: u32, oldest_live_ms: u64) -> NcVerdict {
        if let Some(e) = self.entries.get_mut(&nonce.id) {
            if nc > e.nc {
                e.nc = nc;
                return NcVerdict::Accepted;
            }
            return NcVerdict::Replay;
        }
        if self.watermark.is_some_and(|w| nonce.issued_ms <= w) {
            return NcVerdict::Forgotten;
        }
        while self.entries.len() >= self.capacity {
            let Some(&(issued, id)) = self.by_age.first() else {
                break;
            };
            self.by_age.remove(&(issued, id));
            self.entries.remove(&id);
            if issued >= oldest_live_ms {
                // A live nonce is forgotten: everything up to it is now of unknown history.
                self.watermark = Some(self.watermark.map_or(issued, |w| w.max(issued)));
            }
        }
        if self.watermark.is_some_and(|w| nonce.issued_ms <= w) {
            return NcVerdict::Forgotten;
        }
        self.entries.insert(
            nonce.id,
            Entry {
                issued_ms: nonce.issued_ms,
                nc,
            },
        );
        self.by_age.insert((nonce.issued_ms, nonce.id));
        NcVerdict::Accepted
    }

    /// Drops entries of nonces created before `oldest_live_ms` (they are stale whatever their
    /// count). Call now and then (for example from the engine's housekeeping timer); `accept`
    /// also purges when full.
    pub fn purge(&mut self, oldest_live_ms: u64) -> usize {
        let mut n = 0;
        while let Some(&(issued, id)) = self.by_age.first() {
            if issued >= oldest_live_ms {
                break;
            }
            self.by_age.remove(&(issued, id));
            if let Some(e) = self.entries.remove(&id) {
                debug_assert_eq!(e.issued_ms, issued);
            }
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(issued_ms: u64, id: u8) -> NonceInfo {
        NonceInfo {
            issued_ms,
            id: [id; 16],
        }
    }

    #[test]
    fn nc_must_increase() {
        let mut t = NcTable::new(10);
        let n = info(100, 1);
        assert_eq!(t.accept(&n, 1, 0), NcVerdict::Accepted);
        assert_eq!(t.accept(&n, 1, 0), NcVerdict::Replay);
        assert_eq!(t.accept(&n, 3, 0), NcVerdict::Accepted);
        assert_eq!(t.accept(&n, 2, 0), NcVerdict::Replay);
        assert_eq!(t.accept(&n, 3, 0), NcVerdict::Replay);
        assert_eq!(t.accept(&info(100, 2), 1, 0), NcVerdict::Accepted);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn bounded_and_evicted_nonces_are_not_replayable() {
        let mut t = NcTable::new(3);
        for i in 0..3u8 {
            assert_eq!(
                t.accept(&info(100 + u64::from(i), i), 1, 0),
                NcVerdict::Accepted
            );
        }
        // A fourth live nonce evicts the oldest (issued 100).
        assert_eq!(t.accept(&info(200, 9), 1, 0), NcVerdict::Accepted);
        assert_eq!(t.len(), 3);
        // The evicted nonce cannot be replayed with nc=1 again.
        assert_eq!(t.accept(&info(100, 0), 1, 0), NcVerdict::Forgotten);
        // Nor can an unseen nonce older than the watermark be used.
        assert_eq!(t.accept(&info(99, 7), 1, 0), NcVerdict::Forgotten);
        // Newer ones still work.
        assert_eq!(t.accept(&info(101, 1), 2, 0), NcVerdict::Accepted);
        assert_eq!(t.accept(&info(300, 8), 1, 0), NcVerdict::Accepted);
        assert!(t.len() <= 3);
        for i in 0..1000u64 {
            t.accept(&info(1000 + i, (i % 250) as u8), 1, 0);
            assert!(t.len() <= 3);
        }
    }

    #[test]
    fn a_new_table_with_a_watermark_forgets_safely() {
        let mut t = NcTable::with_watermark(4, 500);
        assert_eq!(t.accept(&info(500, 1), 1, 0), NcVerdict::Forgotten);
        assert_eq!(t.accept(&info(501, 2), 1, 0), NcVerdict::Accepted);
    }

    #[test]
    fn expired_entries_leave_without_raising_the_watermark() {
        let mut t = NcTable::new(2);
        t.accept(&info(100, 1), 1, 0);
        t.accept(&info(101, 2), 1, 0);
        // Everything before 150 is stale by time: evicting it forgets nothing live.
        assert_eq!(t.accept(&info(160, 3), 1, 150), NcVerdict::Accepted);
        assert_eq!(t.accept(&info(155, 4), 1, 150), NcVerdict::Accepted);
        assert_eq!(t.purge(158), 1);
        assert_eq!(t.len(), 1);
        assert_eq!(t.purge(1000), 1);
        assert!(t.is_empty());
    }
}
