//! Wall-clock benchmarks of the SIP parser (criterion), against rsip 0.4 on the same messages.
//!
//! Groups:
//! - `index`: `Message::parse` only (start line, header index, Content-Length, body span).
//! - `full`: parse + `decode_all_headers()` (every typed header decoded); `full_sdp` adds
//!   `sdp_message::parse` of the body.
//! - `rsip`: `rsip::SipMessage::try_from` (untyped), then every header converted to its typed
//!   form where rsip has one (typed).
//! - `adversarial`: 64 KiB hostile inputs, parse + `decode_all_headers()` (or the rejection).
//!
//! After the groups, a side-by-side timing loop in this process prints the rsip/ours ratios
//! for the INVITE (criterion does not hand its results to code). Run with
//! `cargo bench -p sip-message --bench parse`, or `bench/parse-vs-rsip` for a quick run.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use sip_message::{Limits, Message};

#[path = "common/inputs.rs"]
mod inputs;

use inputs::{adversarial, INVITE, MESSAGES};

/// Index-only parse.
#[inline(never)]
fn ours_index(b: &Bytes) -> usize {
    match Message::parse_with(b.clone(), &Limits::DEFAULT) {
        Ok(m) => m.header_count(),
        Err(e) => e.offset,
    }
}

/// Parse and decode every typed header.
#[inline(never)]
fn ours_full(b: &Bytes) -> usize {
    match Message::parse_with(b.clone(), &Limits::DEFAULT) {
        Ok(m) => match m.decode_all_headers() {
            Ok(n) => n,
            Err(e) => e.offset,
        },
        Err(e) => e.offset,
    }
}

/// Full parse plus the SDP body.
#[inline(never)]
fn ours_full_sdp(b: &Bytes) -> usize {
    match Message::parse_with(b.clone(), &Limits::DEFAULT) {
        Ok(m) => {
            let n = m.decode_all_headers().unwrap_or(0);
            let s = sdp_message::parse(m.body())
                .map(|s| s.media.len())
                .unwrap_or(0);
            n + s
        }
        Err(e) => e.offset,
    }
}

#[inline(never)]
fn rsip_untyped(b: &[u8]) -> usize {
    match rsip::SipMessage::try_from(b) {
        Ok(m) => {
            use rsip::prelude::*;
            m.headers().iter().count()
        }
        Err(_) => 0,
    }
}

/// Converts every header rsip has a typed form (or a typed accessor) for.
fn rsip_type_headers(m: &rsip::SipMessage) -> usize {
    use rsip::prelude::*;
    use rsip::Header as H;
    let mut ok = 0;
    for h in m.headers().iter() {
        let typed = match h {
            H::Via(v) => v.typed().is_ok(),
            H::From(v) => v.typed().is_ok(),
            H::To(v) => v.typed().is_ok(),
            H::Contact(v) => v.typed().is_ok(),
            H::RecordRoute(v) => v.typed().is_ok(),
            H::Route(v) => v.typed().is_ok(),
            H::CSeq(v) => v.typed().is_ok(),
            H::Allow(v) => v.typed().is_ok(),
            H::ContentType(v) => v.typed().is_ok(),
            H::Authorization(v) => v.typed().is_ok(),
            H::ProxyAuthorization(v) => v.typed().is_ok(),
            H::WwwAuthenticate(v) => v.typed().is_ok(),
            H::ProxyAuthenticate(v) => v.typed().is_ok(),
            H::Accept(v) => v.typed().is_ok(),
            H::ReplyTo(v) => v.typed().is_ok(),
            H::MaxForwards(v) => v.num().is_ok(),
            H::ContentLength(v) => v.length().is_ok(),
            H::Expires(v) => v.seconds().is_ok(),
            // Call-ID, Supported, User-Agent, Server, Require and extension headers
            // (P-Asserted-Identity, Session-Expires) have no typed form in rsip 0.4.
            _ => true,
        };
        ok += usize::from(typed);
    }
    ok
}

#[inline(never)]
fn rsip_typed(b: &[u8]) -> usize {
    match rsip::SipMessage::try_from(b) {
        Ok(m) => rsip_type_headers(&m),
        Err(_) => 0,
    }
}

fn bench_messages(c: &mut Criterion) {
    for (name, raw) in MESSAGES {
        let b = Bytes::from_static(raw);
        let m = Message::parse(b.clone()).expect("bench message parses");
        let n = m.decode_all_headers().expect("bench message decodes");
        let r = rsip::SipMessage::try_from(raw).expect("rsip parses the bench message");
        let typed = rsip_type_headers(&r);
        {
            use rsip::prelude::*;
            let all = r.headers().iter().count();
            if typed != all {
                let bad: Vec<String> = r
                    .headers()
                    .iter()
                    .filter(|h| {
                        let one = rsip::SipMessage::Response(rsip::Response {
                            status_code: 200.into(),
                            version: rsip::Version::V2,
                            headers: vec![(*h).clone()].into(),
                            body: Vec::new(),
                        });
                        rsip_type_headers(&one) == 0
                    })
                    .map(|h| h.to_string())
                    .collect();
                panic!(
                    "rsip failed to type {} header(s) of {name}: {bad:?}",
                    all - typed
                );
            }
        }
        assert!(
            n >= m.header_count() - 2,
            "{name}: decode_all_headers decoded {n}"
        );
    }

    let mut g = c.benchmark_group("index");
    for (name, raw) in MESSAGES {
        let b = Bytes::from_static(raw);
        g.throughput(Throughput::Bytes(raw.len() as u64));
        g.bench_with_input(BenchmarkId::new("ours", name), &b, |bn, b| {
            bn.iter(|| ours_index(black_box(b)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("full");
    for (name, raw) in MESSAGES {
        let b = Bytes::from_static(raw);
        g.throughput(Throughput::Bytes(raw.len() as u64));
        g.bench_with_input(BenchmarkId::new("ours", name), &b, |bn, b| {
            bn.iter(|| ours_full(black_box(b)))
        });
        if name != "register" {
            g.bench_with_input(BenchmarkId::new("ours_sdp", name), &b, |bn, b| {
                bn.iter(|| ours_full_sdp(black_box(b)))
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("rsip");
    for (name, raw) in MESSAGES {
        g.throughput(Throughput::Bytes(raw.len() as u64));
        g.bench_with_input(BenchmarkId::new("untyped", name), raw, |bn, b| {
            bn.iter(|| rsip_untyped(black_box(b)))
        });
        g.bench_with_input(BenchmarkId::new("typed", name), raw, |bn, b| {
            bn.iter(|| rsip_typed(black_box(b)))
        });
    }
    g.finish();
}

fn bench_adversarial(c: &mut Criterion) {
    let mut g = c.benchmark_group("adversarial");
    g.sample_size(20);
    for (name, raw) in adversarial() {
        let b = Bytes::from(raw);
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_with_input(BenchmarkId::new("full", name), &b, |bn, b| {
            bn.iter(|| ours_full(black_box(b)))
        });
    }
    g.finish();
}

/// Nanoseconds per call of `f`, median of `runs` batches of `iters` calls.
fn median_ns(runs: usize, iters: u32, mut f: impl FnMut() -> usize) -> Vec<f64> {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                black_box(f());
            }
            t.elapsed().as_nanos() as f64 / f64::from(iters)
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Side-by-side timing of ours and rsip on the INVITE: batches interleaved so that noise from
/// other processes hits both sides alike; the median batch of each is compared.
fn print_ratios() {
    let b = Bytes::from_static(INVITE);
    let (mut oi, mut of, mut ru, mut rt) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Warm up, then interleave 15 rounds of short batches.
    median_ns(1, 20_000, || ours_full(&b));
    median_ns(1, 2_000, || rsip_typed(INVITE));
    for _ in 0..15 {
        oi.extend(median_ns(1, 20_000, || ours_index(&b)));
        of.extend(median_ns(1, 10_000, || ours_full(&b)));
        ru.extend(median_ns(1, 1_000, || rsip_untyped(INVITE)));
        rt.extend(median_ns(1, 1_000, || rsip_typed(INVITE)));
    }
    let (oi, of, ru, rt) = (median(oi), median(of), median(ru), median(rt));
    eprintln!();
    eprintln!(
        "== parse-vs-rsip: INVITE ({} bytes), median of 15 interleaved batches ==",
        INVITE.len()
    );
    eprintln!("ours index-only parse        : {:9.1} ns", oi);
    eprintln!("ours full parse (decode_all) : {:9.1} ns", of);
    eprintln!("rsip untyped                 : {:9.1} ns", ru);
    eprintln!("rsip typed                   : {:9.1} ns", rt);
    eprintln!("RATIO rsip_typed/ours_full   = {:.1}x", rt / of);
    eprintln!("RATIO rsip_untyped/ours_index = {:.1}x", ru / oi);
    // Adversarial inputs, timed the same way, with what the parser made of them.
    let mut worst = ("", 0.0f64);
    for (name, raw) in adversarial() {
        let ab = Bytes::from(raw);
        let t = median(median_ns(7, 20, || ours_full(&ab)));
        let outcome = match Message::parse_with(ab.clone(), &Limits::DEFAULT) {
            Err(e) => format!("rejected by parse: {:?} at {}", e.kind, e.offset),
            Ok(m) => match m.decode_all_headers() {
                Ok(n) => format!("{} headers, {n} values decoded", m.header_count()),
                Err(e) => format!(
                    "{} headers, decode: {:?} at {}",
                    m.header_count(),
                    e.kind,
                    e.offset
                ),
            },
        };
        eprintln!(
            "adversarial {name:<22} {:6} bytes {:9.1} us  {outcome}",
            ab.len(),
            t / 1000.0
        );
        if t > worst.1 {
            worst = (name, t);
        }
    }
    eprintln!(
        "WORST adversarial (parse+decode_all): {} {:.1} us",
        worst.0,
        worst.1 / 1000.0
    );
}

/// `SIPWARDEN_PROFILE=index|full|rsip [SIPWARDEN_INPUT=<adversarial name>]`: runs one function
/// in a loop instead of the benchmarks, for `valgrind --tool=callgrind` (see bench/README.md).
fn profile(what: &str) {
    let input = std::env::var("SIPWARDEN_INPUT").ok();
    let raw: Vec<u8> = match input.as_deref() {
        None | Some("invite") => INVITE.to_vec(),
        Some(name) => adversarial()
            .into_iter()
            .chain(MESSAGES.iter().map(|(n, r)| (*n, r.to_vec())))
            .find(|(n, _)| *n == name)
            .map(|(_, m)| m)
            .expect("SIPWARDEN_INPUT names a message or an adversarial input"),
    };
    let b = Bytes::from(raw);
    let n = if b.len() > 4096 { 100 } else { 10_000 };
    let mut acc = 0;
    for _ in 0..n {
        acc += match what {
            "index" => ours_index(black_box(&b)),
            "full" => ours_full(black_box(&b)),
            "rsip" => rsip_typed(black_box(&b)),
            _ => panic!("SIPWARDEN_PROFILE is index, full or rsip"),
        };
    }
    eprintln!("{what}: {n} iterations ({acc})");
}

fn main() {
    if let Ok(what) = std::env::var("SIPWARDEN_PROFILE") {
        return profile(&what);
    }
    let mut c = Criterion::default().configure_from_args();
    bench_messages(&mut c);
    bench_adversarial(&mut c);
    c.final_summary();
    // Skip the ratio loop when criterion runs the bench as a test (`cargo test --benches`) or
    // lists it.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--list") {
        print_ratios();
    }
}
