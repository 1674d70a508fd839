//! ns per 172-byte G.711 packet (12-byte header + 160 bytes of payload),
//! protect and unprotect, per profile.
//!
//! Measured in the thread's CPU time, not wall time: the build machines are
//! shared and heavily loaded, and wall time there mostly measures the
//! scheduler. CPU time still includes cache and frequency effects.

use std::hint::black_box;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use media_srtp::{MasterKey, SrtpContext, SrtpProfile};

#[cfg(libsrtp2)]
#[path = "../tests/support/libsrtp.rs"]
mod libsrtp;

const G711: usize = 172;

fn packet(buf: &mut [u8; 256], seq: u16) {
    buf[..12].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78]);
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[12..G711].fill(0xd5);
}

fn key(p: SrtpProfile) -> MasterKey {
    MasterKey::new(p, &[3; 16], &vec![4; p.salt_len()]).unwrap()
}

/// Thread CPU time in nanoseconds.
struct ThreadCpu;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer for clock_gettime.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

struct Nanos;

impl ValueFormatter for Nanos {
    fn scale_values(&self, _typical: f64, _values: &mut [f64]) -> &'static str {
        "ns (cpu)"
    }
    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let per = match throughput {
            Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
                *n as f64
            }
            _ => 1.0,
        };
        for v in values {
            *v = per * 1e9 / *v;
        }
        "elem/s (cpu)"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, i: u64) -> u64 {
        thread_cpu_ns().saturating_sub(i)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanos
    }
}

fn bench(c: &mut Criterion<ThreadCpu>) {
    let mut g = c.benchmark_group("srtp_g711");
    g.throughput(Throughput::Elements(1));
    for p in SrtpProfile::ALL {
        // Protect: each iteration is a new sequence number, as on the wire
        // (the context refuses to encrypt an index twice).
        let mut tx = SrtpContext::new(&key(p));
        let mut seq = 0u16;
        let mut buf = [0u8; 256];
        g.bench_function(format!("protect/{p}"), |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                packet(&mut buf, seq);
                black_box(tx.protect_rtp(black_box(&mut buf), G711).unwrap())
            })
        });

        // Unprotect: a fresh protected packet per iteration is made in the
        // (untimed) setup, in order, so the replay window accepts each.
        let mut sender = SrtpContext::new(&key(p));
        let mut rx = SrtpContext::new(&key(p));
        let mut seq = 0u16;
        g.bench_function(format!("unprotect/{p}"), |b| {
            b.iter_batched_ref(
                || {
                    seq = seq.wrapping_add(1);
                    let mut buf = [0u8; 256];
                    packet(&mut buf, seq);
                    let n = sender.protect_rtp(&mut buf, G711).unwrap();
                    (buf, n)
                },
                |(buf, n)| black_box(rx.unprotect_rtp(buf, *n).unwrap()),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// The same loops through libsrtp 2 (system library), for comparison.
#[cfg(libsrtp2)]
fn bench_libsrtp(c: &mut Criterion<ThreadCpu>) {
    use libsrtp::{srtp_protect, srtp_unprotect, Lib};
    let mut g = c.benchmark_group("libsrtp_g711");
    g.throughput(Throughput::Elements(1));
    for p in SrtpProfile::ALL {
        let mut key_salt = vec![3u8; 16];
        key_salt.extend(std::iter::repeat_n(4u8, p.salt_len()));
        let mut tx = Lib::new(p, &key_salt, true);
        let mut seq = 0u16;
        let mut buf = [0u8; 256];
        g.bench_function(format!("protect/{p}"), |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                packet(&mut buf, seq);
                black_box(
                    tx.in_place(srtp_protect, black_box(&mut buf), G711)
                        .unwrap(),
                )
            })
        });
        let mut sender = Lib::new(p, &key_salt, true);
        let mut rx = Lib::new(p, &key_salt, false);
        let mut seq = 0u16;
        g.bench_function(format!("unprotect/{p}"), |b| {
            b.iter_batched_ref(
                || {
                    seq = seq.wrapping_add(1);
                    let mut buf = [0u8; 256];
                    packet(&mut buf, seq);
                    let n = sender.in_place(srtp_protect, &mut buf, G711).unwrap();
                    (buf, n)
                },
                |(buf, n)| black_box(rx.in_place(srtp_unprotect, buf, *n).unwrap()),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

#[cfg(not(libsrtp2))]
fn bench_libsrtp(_: &mut Criterion<ThreadCpu>) {}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = bench, bench_libsrtp
}
criterion_main!(benches);
