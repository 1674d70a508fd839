//! The per-packet flood check, and one full policy evaluation for comparison.
//!
//! `cargo bench -p policy --bench flood`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use policy::{load::from_toml, FixedCounts, FloodGuard, Request, Target, ZoneId};

const SOURCES: u32 = 1 << 20;
const TABLE: usize = 1 << 16;

fn guard(now: Instant) -> FloodGuard {
    let p = from_toml(
        "[[policy.zone]]\nname = \"wan\"\nflood.rate = 50\nflood.burst = 100\n",
        "bench.toml",
        None,
    )
    .expect("bench policy");
    FloodGuard::new(&p, &["lan", "wan"], TABLE, 0x5eed_1234_abcd_ef01, now)
}

fn flood(c: &mut Criterion) {
    let mut g = c.benchmark_group("flood");
    g.throughput(Throughput::Elements(1));
    let wan = ZoneId(1);

    // 1M distinct sources cycling through a 64k-bucket table: nearly every packet misses and
    // evicts (the worst case for the table).
    g.bench_function("check/1M_sources_64k_table_v4", |b| {
        let t0 = Instant::now();
        let mut fg = guard(t0);
        let mut i: u32 = 0;
        b.iter(|| {
            i = i.wrapping_add(1);
            let ip = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 | (i & (SOURCES - 1))));
            let now = t0 + Duration::from_nanos(u64::from(i) * 1000);
            black_box(fg.check(wan, black_box(ip), now))
        });
    });

    g.bench_function("check/1M_sources_64k_table_v6", |b| {
        let t0 = Instant::now();
        let mut fg = guard(t0);
        let mut i: u32 = 0;
        b.iter(|| {
            i = i.wrapping_add(1);
            let ip = IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                0,
                0,
                0,
                0,
                (i >> 16) as u16 & 0xf,
                i as u16,
            ));
            let now = t0 + Duration::from_nanos(u64::from(i) * 1000);
            black_box(fg.check(wan, black_box(ip), now))
        });
    });

    // 32k sources that all fit: every packet hits its bucket.
    g.bench_function("check/32k_sources_64k_table_hits", |b| {
        let t0 = Instant::now();
        let mut fg = guard(t0);
        let mut i: u32 = 0;
        b.iter(|| {
            i = i.wrapping_add(1);
            let ip = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 | (i & 0x7fff)));
            let now = t0 + Duration::from_nanos(u64::from(i) * 1000);
            black_box(fg.check(wan, black_box(ip), now))
        });
    });
    g.finish();
}

const POLICY: &str = r#"
[[policy.zone]]
name = "wan"
methods.allow = ["INVITE", "ACK", "BYE", "CANCEL", "REGISTER"]
methods.local_only = ["OPTIONS"]
auth.require = [{ methods = ["REGISTER", "INVITE"] }]
content_types.allow = ["application/sdp"]
limits.max_calls = 100
limits.max_calls_per_user = 4
limits.max_media_streams = 4
[[policy.rule]]
from = "*@evil.example"
action = "refuse"
[[policy.rule]]
request_uri_regex = '^\+1900'
action = "refuse"
[[policy.user]]
user = "carol"
whitelist.enabled = true
whitelist.callers = ["*@corp.example"]
"#;

fn evaluate(c: &mut Criterion) {
    let p = from_toml(POLICY, "bench.toml", None).expect("bench policy");
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let text = format!(
        "INVITE sip:carol@corp.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:dave@corp.example>;tag=1\r\nTo: <sip:carol@corp.example>\r\n\
         Call-ID: x\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    let msg = sip_message::Message::parse(bytes::Bytes::from(text)).expect("bench message");
    let counts = FixedCounts::default();
    c.bench_function("policy/evaluate_invite_all_checks", |b| {
        b.iter(|| {
            let req = Request {
                zone: "wan",
                source: IpAddr::from([192, 0, 2, 1]),
                message: black_box(&msg),
                authenticated_user: Some("dave"),
                target: Target::Local,
            };
            black_box(p.evaluate(&req, &counts))
        });
    });
}

/// The ban lookup every packet goes through, with a full ban table (65536 banned sources).
fn bans(c: &mut Criterion) {
    use std::time::UNIX_EPOCH;
    let cfg = policy::BruteForceConfig {
        max_failures: 1,
        ..policy::BruteForceConfig::default()
    };
    let mut bf = policy::BruteForce::with_config(cfg, Vec::new());
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    for n in 0..65_536u32 {
        bf.record_failure(IpAddr::V4(Ipv4Addr::from(0x0c00_0000 + n)), None, now);
    }
    assert_eq!(bf.held_bans(), 65_536);
    let mut i: u32 = 0;
    c.bench_function("bans/banned_until_64k_bans", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            // Half banned, half not.
            let ip = IpAddr::V4(Ipv4Addr::from(0x0c00_0000 + (i & 0x1_ffff)));
            black_box(bf.banned_until(black_box(ip), now))
        });
    });
}

/// The receive path's whole check (`Gatekeeper::check`: ban snapshot, zone, sharded bucket),
/// as the transport runs it per datagram: one flooding source (limited), 64k banned sources
/// in the snapshot, and the same from four threads at once (contention on the shards).
fn gate(c: &mut Criterion) {
    use policy::{Admit, Gatekeeper};
    use std::sync::Arc;
    use std::time::UNIX_EPOCH;
    let p = from_toml(
        "[[policy.zone]]\nname = \"wan\"\nflood.rate = 100\n",
        "bench.toml",
        None,
    )
    .expect("bench policy");
    let zones = vec![
        ("lan".to_owned(), vec!["10.0.0.0/8".parse().expect("net")]),
        ("wan".to_owned(), vec!["0.0.0.0/0".parse().expect("net")]),
    ];
    let t0 = Instant::now();
    let wall = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let g = Arc::new(Gatekeeper::new(&p, &zones, TABLE, 0x5eed, t0));
    g.publish_bans(
        (0..65_536u32).map(|n| {
            (
                IpAddr::V4(Ipv4Addr::from(0x0c00_0000 + n)),
                wall + Duration::from_secs(3600),
            )
        }),
        t0,
        wall,
    );
    let mut grp = c.benchmark_group("gate");
    grp.throughput(Throughput::Elements(1));
    let flooder = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
    grp.bench_function("check/one_flooding_source_64k_bans", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let now = t0 + Duration::from_nanos(i * 100);
            black_box(g.check(black_box(flooder), now))
        });
    });
    // The usual case: nobody banned (the snapshot's map is empty and not probed).
    let unbanned = Gatekeeper::new(&p, &zones, TABLE, 0x5eed, t0);
    grp.bench_function("check/one_flooding_source_no_bans", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let now = t0 + Duration::from_nanos(i * 100);
            black_box(unbanned.check(black_box(flooder), now))
        });
    });
    grp.bench_function("check/banned_source", |b| {
        let banned = IpAddr::V4(Ipv4Addr::from(0x0c00_0100));
        b.iter(|| black_box(g.check(black_box(banned), t0)));
    });
    grp.bench_function("check/unlimited_zone", |b| {
        let lan = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
        b.iter(|| black_box(g.check(black_box(lan), t0)));
    });
    grp.bench_function("check/1M_sources", |b| {
        let mut i = 0u32;
        b.iter(|| {
            i = i.wrapping_add(1);
            let ip = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 | (i & (SOURCES - 1))));
            black_box(g.check(ip, t0 + Duration::from_nanos(u64::from(i))))
        });
    });
    // Four threads (the bench thread and three others) checking flooding sources at once.
    grp.bench_function("check/4_threads_contending", |b| {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let others: Vec<_> = (0..3u8)
            .map(|t| {
                let g = g.clone();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut i = 0u32;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        i = i.wrapping_add(1);
                        let ip = IpAddr::V4(Ipv4Addr::new(198, 51, t, (i & 0xff) as u8));
                        black_box(g.check(ip, Instant::now()) == Admit::Pass);
                    }
                })
            })
            .collect();
        b.iter(|| black_box(g.check(black_box(flooder), Instant::now())));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in others {
            let _ = t.join();
        }
    });
    grp.finish();
}

criterion_group!(benches, flood, evaluate, bans, gate);
criterion_main!(benches);
