//! In-process load check on loopback: N sessions, each fed paced RTP (one
//! packet per session every `--ptime` ms, as a call would), for a bounded
//! time. Reports packets forwarded, loss, and the CPU time the relay's
//! worker threads spent per forwarded packet (from /proc/self/task).
//!
//! ```text
//! cargo run --release -p media-relay --example relay-load -- \
//!     [--sessions 200] [--seconds 5] [--ptime 20] [--burst 1] [--workers 1] [--kernel 0|1]
//! ```
//!
//! `--burst N` sends N packets per session per tick (a stress pattern that
//! lets `recvmmsg`/`sendmmsg` batch; real calls send one).
//!
//! `--kernel 1` turns on [`RelayConfig::kernel_forward`] on `lo` (root
//! only). The receiving side then sends one packet per session first, so
//! that both sides latch and the kernel takes over; `process_cpu` (all
//! threads, the sender's included) then shows the whole cost, since on
//! loopback the kernel forwards in the sender's context, not a worker's.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use media_relay::{LatchMode, LatchPolicy, MediaRelay, RelayConfig, Side, ZoneConfig};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn sdp(addr: SocketAddr) -> Vec<u8> {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtcp-mux\r\n",
        ip = addr.ip(),
        port = addr.port()
    )
    .into_bytes()
}

/// CPU time (user + system) of this process's threads named `media-*`,
/// or of all of them.
fn cpu(only_workers: bool) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let mut ticks = 0u64;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for t in dir.flatten() {
            let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
                continue;
            };
            // comm is in parentheses and may contain spaces: split after ')'.
            let Some((head, rest)) = stat.rsplit_once(") ") else {
                continue;
            };
            if only_workers && !head.contains("(media-") {
                continue;
            }
            let f: Vec<&str> = rest.split_whitespace().collect();
            // After the comm: state(0) ... utime(11) stime(12).
            let u: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
            let s: u64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
            ticks += u + s;
        }
    }
    Duration::from_micros(ticks * 1_000_000 / hz)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sessions = arg("--sessions", 200) as usize;
    let seconds = arg("--seconds", 5).min(60);
    let ptime = Duration::from_millis(arg("--ptime", 20).max(1));
    let workers = arg("--workers", 1) as usize;
    let burst = arg("--burst", 1).clamp(1, 1000);
    let kernel = arg("--kernel", 0) == 1;
    let cfg = RelayConfig {
        zones: vec![ZoneConfig {
            name: "lo".into(),
            bind: "127.0.0.1".parse()?,
            advertise: None,
            port_min: 23000,
            port_max: 29999,
            latch: LatchPolicy {
                mode: LatchMode::Nat,
                relatch_after_silence: None,
            },
        }],
        workers,
        kernel_forward: kernel,
        kernel_forward_interfaces: kernel.then(|| vec!["lo".to_owned()]),
        ..RelayConfig::default()
    };
    let (relay, _events) = MediaRelay::start(&cfg)?;
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    let rx = UdpSocket::bind("127.0.0.1:0")?;
    rx.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut targets = Vec::with_capacity(sessions);
    let mut back = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        let id = relay.create_session("lo", "lo")?;
        relay.offer(id, Side::A, &sdp(tx.local_addr()?))?;
        relay.answer(id, Side::B, &sdp(rx.local_addr()?))?;
        let p = relay.ports(id)?.first().copied().ok_or("no stream")?;
        targets.push(SocketAddr::from(([127, 0, 0, 1], p.a)));
        back.push(SocketAddr::from(([127, 0, 0, 1], p.b)));
    }
    let mut pkt = [0xd5u8; 172];
    pkt[..2].copy_from_slice(&[0x80, 0]);
    if kernel {
        // Both sides must have latched before the kernel forwards.
        for (a, b) in targets.iter().zip(&back) {
            tx.send_to(&pkt, a)?;
            rx.send_to(&pkt, b)?;
        }
        std::thread::sleep(Duration::from_millis(300));
        let mut buf = [0u8; 2048];
        while rx.recv_from(&mut buf).is_ok() {}
    }
    let kernel0 = relay.totals()?.rtp_kernel;
    let received = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let rx_thread = {
        let (received, done) = (received.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !done.load(Ordering::Relaxed) {
                if rx.recv_from(&mut buf).is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let (cpu0, all0) = (cpu(true), cpu(false));
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut sent = 0u64;
    let mut next = start;
    let mut seq = 0u16;
    while Instant::now() < end {
        pkt[2..4].copy_from_slice(&seq.to_be_bytes());
        for t in &targets {
            for _ in 0..burst {
                if tx.send_to(&pkt, t).is_ok() {
                    sent += 1;
                }
            }
        }
        seq = seq.wrapping_add(1);
        next += ptime;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::Relaxed);
    let _ = rx_thread.join();
    let cpu_w = cpu(true).saturating_sub(cpu0);
    let cpu_all = cpu(false).saturating_sub(all0);
    let elapsed = start.elapsed().as_secs_f64();
    let got = received.load(Ordering::Relaxed);
    let t = relay.totals()?;
    println!(
        "sessions={sessions} burst={burst} workers={workers} kernel={} seconds={seconds} ptime_ms={} sent={sent} received={got} loss={:.3}% \
         rate={:.0} pkt/s forwarded={} in_kernel={} worker_cpu_ms={} cpu_per_packet_us={:.2} process_cpu_ms={} process_cpu_per_packet_us={:.2} drops={:?}",
        u8::from(kernel),
        ptime.as_millis(),
        100.0 * (sent.saturating_sub(got)) as f64 / sent.max(1) as f64,
        got as f64 / elapsed,
        t.rtp_out,
        t.rtp_kernel.saturating_sub(kernel0),
        cpu_w.as_millis(),
        cpu_w.as_secs_f64() * 1e6 / t.rtp_out.max(1) as f64,
        cpu_all.as_millis(),
        cpu_all.as_secs_f64() * 1e6 / sent.max(1) as f64,
        t.drops.iter().map(|(r, n)| (r.as_str(), n)).collect::<Vec<_>>()
    );
    relay.shutdown();
    Ok(())
}
