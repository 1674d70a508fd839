//! The relay's hook with real sockets on loopback: every socket's bind,
//! latch, re-arm, re-latch and close is reported once, in order.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use media_relay::{
    HookEvent, LatchMode, LatchPolicy, MediaHook, MediaRelay, RelayConfig, Side, SocketKind,
    ZoneConfig,
};

#[derive(Default)]
struct Recorder(Mutex<Vec<HookEvent>>);

impl MediaHook for Recorder {
    fn on_event(&self, event: &HookEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    fn take(&self) -> Vec<HookEvent> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// Waits (bounded) until `n` events are recorded: latches are reported
    /// by the worker, after the packet was forwarded.
    fn wait_for(&self, n: usize) -> Vec<HookEvent> {
        let end = Instant::now() + Duration::from_secs(2);
        while self.0.lock().unwrap().len() < n && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.take()
    }
}

fn relay_with(rec: Arc<Recorder>, min: u16, relatch: Option<Duration>) -> MediaRelay {
    let zone = |name: &str, min: u16| ZoneConfig {
        name: name.into(),
        bind: "127.0.0.1".parse().unwrap(),
        advertise: None,
        port_min: min,
        port_max: min + 49,
        latch: LatchPolicy {
            mode: LatchMode::Nat,
            relatch_after_silence: relatch,
        },
    };
    let cfg = RelayConfig {
        zones: vec![zone("wan", min), zone("lan", min + 50)],
        workers: 1,
        ..RelayConfig::default()
    };
    MediaRelay::start_with_hook(&cfg, Some(rec)).unwrap().0
}

fn lo(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn hook_follows_bind_latch_rearm_and_close() {
    let rec = Arc::new(Recorder::default());
    let relay = relay_with(rec.clone(), 21900, None);
    let a = endpoint("127.0.0.1");
    let a2 = endpoint("127.0.0.1");
    let b = endpoint("127.0.0.1");
    let id = relay.create_session("wan", "lan").unwrap();
    relay
        .offer(id, Side::A, &sdp(a.local_addr().unwrap(), true))
        .unwrap();
    let p = relay.ports(id).unwrap()[0];
    // Both legs are bound at the offer. Which RTCP ports exist depends on
    // the mux negotiation, so compare the reports with what the kernel has.
    let bound = rec.take();
    let mut locals: Vec<(String, Side, SocketKind, SocketAddr)> = bound
        .iter()
        .map(|e| match e {
            HookEvent::Bound {
                id: eid,
                zone,
                media_index: 0,
                side,
                kind,
                local,
            } if *eid == id => (zone.clone(), *side, *kind, *local),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    locals.sort_by_key(|l| l.3);
    let mut reported: Vec<u16> = locals.iter().map(|l| l.3.port()).collect();
    reported.sort_unstable();
    let mut in_kernel = bound_udp_ports(21900, 21999);
    in_kernel.sort_unstable();
    assert_eq!(reported, in_kernel, "every bound socket reported once");
    assert!(locals.contains(&("wan".into(), Side::A, SocketKind::Rtp, lo(p.a))));
    assert!(locals.contains(&("lan".into(), Side::B, SocketKind::Rtp, lo(p.b))));

    relay
        .answer(id, Side::B, &sdp(b.local_addr().unwrap(), true))
        .unwrap();
    // The first answer from B arms nothing: nothing was latched.
    assert_eq!(rec.take(), vec![]);

    // A's first packet latches A's leg; the second from A reports nothing.
    a.send_to(&rtp(0, 1, 0xa, 1), lo(p.a)).unwrap();
    assert!(b.recv_from(&mut [0; 2048]).is_ok());
    a.send_to(&rtp(0, 2, 0xa, 1), lo(p.a)).unwrap();
    assert!(b.recv_from(&mut [0; 2048]).is_ok());
    assert_eq!(
        rec.wait_for(1),
        vec![HookEvent::Latched {
            id,
            local: lo(p.a),
            peer: a.local_addr().unwrap(),
            previous: None,
            exclusive: true,
        }]
    );

    // A re-offers from elsewhere: A's latched socket is armed, then the new
    // source re-latches it.
    relay
        .offer(id, Side::A, &sdp(a2.local_addr().unwrap(), true))
        .unwrap();
    // Reported by the worker when it applies the offer, after offer() returns.
    assert_eq!(
        rec.wait_for(1),
        vec![HookEvent::Armed { id, local: lo(p.a) }]
    );
    a2.send_to(&rtp(0, 3, 0xa, 1), lo(p.a)).unwrap();
    assert!(b.recv_from(&mut [0; 2048]).is_ok());
    assert_eq!(
        rec.wait_for(1),
        vec![HookEvent::Latched {
            id,
            local: lo(p.a),
            peer: a2.local_addr().unwrap(),
            previous: Some(a.local_addr().unwrap()),
            exclusive: true,
        }]
    );

    // Release: every bound socket is reported closed before release returns.
    relay.release(id).unwrap();
    let mut closed: Vec<SocketAddr> = rec
        .take()
        .into_iter()
        .map(|e| match e {
            HookEvent::Closed { id: eid, local } if eid == id => local,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    closed.sort();
    let bound: Vec<SocketAddr> = locals.iter().map(|l| l.3).collect();
    assert_eq!(closed, bound);
    relay.shutdown();
}

#[test]
fn relatch_after_silence_makes_latches_non_exclusive() {
    let rec = Arc::new(Recorder::default());
    let relay = relay_with(rec.clone(), 22000, Some(Duration::from_secs(5)));
    let a = endpoint("127.0.0.1");
    let b = endpoint("127.0.0.1");
    let id = relay.create_session("wan", "lan").unwrap();
    relay
        .offer(id, Side::A, &sdp(a.local_addr().unwrap(), true))
        .unwrap();
    relay
        .answer(id, Side::B, &sdp(b.local_addr().unwrap(), true))
        .unwrap();
    let p = relay.ports(id).unwrap()[0];
    rec.take();
    b.send_to(&rtp(0, 1, 0xb, 1), lo(p.b)).unwrap();
    assert!(a.recv_from(&mut [0; 2048]).is_ok());
    assert_eq!(
        rec.wait_for(1),
        vec![HookEvent::Latched {
            id,
            local: lo(p.b),
            peer: b.local_addr().unwrap(),
            previous: None,
            exclusive: false,
        }]
    );
    relay.release(id).unwrap();
}
