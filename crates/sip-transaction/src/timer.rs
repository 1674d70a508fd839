//! Timers as data: one binary heap of `(deadline, transaction, timer, generation)` for every
//! transaction. Arming a timer pushes one entry; cancelling it bumps the generation of its slot so
//! that the entry is skipped when it surfaces. No task, no callback, no allocation beyond the
//! heap entry.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::types::TxId;

/// The timers of RFC 3261 table 4 (A to K) and RFC 6026 (L, M), plus two of this layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// INVITE request retransmission (client, unreliable only), doubling from T1.
    A,
    /// INVITE transaction timeout (client), 64*T1.
    B,
    /// Wait for response retransmissions (client INVITE Completed), >= 32 s, 0 when reliable.
    D,
    /// Non-INVITE request retransmission (client, unreliable only), doubling from T1 up to T2.
    E,
    /// Non-INVITE transaction timeout (client), 64*T1.
    F,
    /// INVITE final response retransmission (server, unreliable only), doubling up to T2.
    G,
    /// Wait for ACK (server INVITE Completed), 64*T1.
    H,
    /// Wait for ACK retransmissions (server INVITE Confirmed), T4, 0 when reliable.
    I,
    /// Wait for request retransmissions (server non-INVITE Completed), 64*T1, 0 when reliable.
    J,
    /// Wait for response retransmissions (client non-INVITE Completed), T4, 0 when reliable.
    K,
    /// Wait for INVITE retransmissions and ACKs after a 2xx (server Accepted, RFC 6026), 64*T1.
    L,
    /// Wait for 2xx retransmissions (client Accepted, RFC 6026), 64*T1.
    M,
    /// Send `100 Trying` if the TU has not answered an INVITE (RFC 3261 17.2.1, 200 ms).
    Trying,
    /// Not in the RFC: a server transaction whose TU never answers would live for ever (there
    /// is no timer in the Proceeding/Trying states). The guard answers 500 on the TU's behalf
    /// so that a lost or wedged TU cannot pin memory.
    TuGuard,
}

impl Timer {
    /// Timers that never run at the same time share a slot, so a transaction holds three
    /// generations: retransmission (A, E, G, Trying), timeout (B, F, H, TuGuard) and wait
    /// (D, I, J, K, L, M).
    pub(crate) fn slot(self) -> usize {
        match self {
            Timer::A | Timer::E | Timer::G | Timer::Trying => 0,
            Timer::B | Timer::F | Timer::H | Timer::TuGuard => 1,
            Timer::D | Timer::I | Timer::J | Timer::K | Timer::L | Timer::M => 2,
        }
    }
}

pub(crate) const SLOTS: usize = 3;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub at: Instant,
    /// Insertion order: ties on `at` fire in arming order, so traces are reproducible.
    pub seq: u64,
    pub tx: TxId,
    pub timer: Timer,
    pub gen: u32,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.at == o.at && self.seq == o.seq
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    // Reversed: `BinaryHeap` is a max-heap and we want the earliest deadline on top.
    fn cmp(&self, o: &Self) -> Ordering {
        o.at.cmp(&self.at).then(o.seq.cmp(&self.seq))
    }
}

#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Entry>,
    seq: u64,
}

impl TimerQueue {
    pub fn push(&mut self, at: Instant, tx: TxId, timer: Timer, gen: u32) {
        self.seq += 1;
        self.heap.push(Entry {
            at,
            seq: self.seq,
            tx,
            timer,
            gen,
        });
    }

    pub fn peek(&self) -> Option<&Entry> {
        self.heap.peek()
    }

    pub fn pop(&mut self) -> Option<Entry> {
        self.heap.pop()
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Drops every entry `live` rejects. Cancelled timers of transactions that terminated stay
    /// in the heap until their deadline; under a flood of short transactions over TCP (Timer
    /// H armed for 32 s, then I = 0) that would grow the heap with the request rate, so the
    /// layer compacts when stale entries outnumber live ones.
    pub fn retain(&mut self, mut live: impl FnMut(&Entry) -> bool) {
        let v = std::mem::take(&mut self.heap).into_vec();
        self.heap = v.into_iter().filter(|e| live(e)).collect();
    }
}
