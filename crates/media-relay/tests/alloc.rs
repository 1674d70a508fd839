//! Zero allocation per packet, measured: a counting global allocator sees
//! every allocation of every thread in this process (the relay's workers
//! included) while RTP and RTCP flow both ways through the relay in steady
//! state. This file holds a single test so that nothing else runs in the
//! process meanwhile.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use media_relay::{LatchMode, Side};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: defers to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_packet_path_allocates_nothing() {
    // Both packet paths, one after the other: the counter is process-wide.
    check(relay_with_io(21600, 21649, LatchMode::Nat, Duration::from_secs(60), true).0);
    check(relay_with_io(21650, 21699, LatchMode::Nat, Duration::from_secs(60), false).0);
}

fn check(relay: media_relay::MediaRelay) {
    let (a, a_rtcp) = endpoint_pair();
    let (b, b_rtcp) = endpoint_pair();
    let id = relay.create_session("lo", "lo").unwrap();
    relay
        .offer(id, Side::A, &sdp(a.local_addr().unwrap(), false))
        .unwrap();
    relay
        .answer(id, Side::B, &sdp(b.local_addr().unwrap(), false))
        .unwrap();
    let p = relay.ports(id).unwrap()[0];
    let to = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let (ra, rb, rca, rcb) = (to(p.a), to(p.b), to(p.a + 1), to(p.b + 1));
    let rr = rtcp_rr(1, 2, 3, 4);
    let mut buf = [0u8; 2048];

    // One round: RTP A->B, RTP B->A, RTCP both ways; each hop is awaited so
    // the worker has certainly processed it inside the measured window.
    let mut round = |seq: u16| {
        a.send_to(&rtp(0, seq, 1, 1), ra).unwrap();
        assert_eq!(b.recv_from(&mut buf).unwrap().0, 172);
        b.send_to(&rtp(0, seq, 2, 2), rb).unwrap();
        assert_eq!(a.recv_from(&mut buf).unwrap().0, 172);
        if seq.is_multiple_of(10) {
            a_rtcp.send_to(&rr, rca).unwrap();
            assert_eq!(b_rtcp.recv_from(&mut buf).unwrap().0, rr.len());
            b_rtcp.send_to(&rr, rcb).unwrap();
            assert_eq!(a_rtcp.recv_from(&mut buf).unwrap().0, rr.len());
        }
    };
    // Warm-up: latching, first use of every code path and buffer.
    for seq in 0..200 {
        round(seq);
    }
    let packets = 2000u64;
    let before = ALLOCS.load(Ordering::Relaxed);
    for seq in 0..packets as u16 {
        round(seq);
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    let stats = relay.stats(id).unwrap().streams[0];
    let forwarded =
        stats.a_to_b.rtp_out + stats.b_to_a.rtp_out + stats.a_to_b.rtcp_out + stats.b_to_a.rtcp_out;
    eprintln!(
        "allocations during {} forwarded packets ({} io_uring workers): {allocs}",
        forwarded - 2 * 200 - 40,
        relay.io_uring_workers()
    );
    assert_eq!(forwarded, 2 * (200 + packets) + 2 * (20 + packets / 10));
    assert_eq!(allocs, 0, "the packet path allocated");
}
