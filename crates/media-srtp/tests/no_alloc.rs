//! Proves the per-packet paths never touch the heap: a counting global
//! allocator (per thread, so the test harness's other threads do not count)
//! sees no allocation across thousands of protect/unprotect calls, including
//! the refusal paths.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use media_srtp::{MasterKey, SrtpContext, SrtpError, SrtpProfile, SrtpTransform};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn bump() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn key(p: SrtpProfile, fill: u8) -> MasterKey {
    MasterKey::new(p, &[fill; 16], &vec![fill ^ 0x5a; p.salt_len()]).unwrap()
}

fn write_rtp(buf: &mut [u8; 256], seq: u16, ssrc: u32) -> usize {
    buf[..12].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    buf[12..172].fill(0xd5);
    172
}

fn write_rtcp(buf: &mut [u8; 256], ssrc: u32) -> usize {
    buf[..8].copy_from_slice(&[0x81, 201, 0, 7, 0, 0, 0, 0]);
    buf[4..8].copy_from_slice(&ssrc.to_be_bytes());
    buf[8..32].fill(0x11);
    32
}

#[test]
fn protect_and_unprotect_do_not_allocate() {
    for profile in SrtpProfile::ALL {
        // Setup may allocate (contexts, boxes); the packet loop may not.
        let a = key(profile, 1);
        let b = key(profile, 2);
        let mut tx = SrtpContext::new(&a);
        let mut rx = SrtpContext::new(&a);
        let mut relay = SrtpTransform::Reencrypt {
            inbound: Box::new(SrtpContext::new(&a)),
            outbound: Box::new(SrtpContext::new(&b)),
        };
        let mut sender = SrtpContext::new(&a);
        let mut buf = [0u8; 256];

        let before = allocations();
        // Two SSRCs and a sequence wrap in the loop.
        for i in 0..3000u32 {
            let seq = (65000 + i) as u16;
            let ssrc = 0x1000 + (i % 2);
            let n = write_rtp(&mut buf, seq, ssrc);
            let n = tx.protect_rtp(&mut buf, n).unwrap();
            let saved = buf;
            assert_eq!(rx.unprotect_rtp(&mut buf, n), Ok(172));
            // Refusals: replay and forgery.
            let mut again = saved;
            assert_eq!(rx.unprotect_rtp(&mut again, n), Err(SrtpError::Replayed));
            let mut forged = saved;
            forged[20] ^= 1;
            let seq2 = seq.wrapping_add(1);
            forged[2..4].copy_from_slice(&seq2.to_be_bytes());
            assert_eq!(rx.unprotect_rtp(&mut forged, n), Err(SrtpError::AuthFailed));

            let n = write_rtcp(&mut buf, ssrc);
            let n = tx.protect_rtcp(&mut buf, n).unwrap();
            assert_eq!(rx.unprotect_rtcp(&mut buf, n), Ok(32));

            let n = write_rtp(&mut buf, seq, 0x2000);
            let n = sender.protect_rtp(&mut buf, n).unwrap();
            assert!(relay.rtp(&mut buf, n).is_ok());
        }
        let after = allocations();
        assert_eq!(
            after - before,
            0,
            "{profile}: allocations in the packet loop"
        );
    }
    // The counter is live: a real allocation is seen.
    let before = allocations();
    let v = std::hint::black_box(vec![1u8; 10]);
    assert!(allocations() > before);
    drop(v);
}
