//! A line-oriented control front-end for benchmarking the relay (e.g. side by
//! side with rtpengine).
//!
//! ```text
//! cargo run --release -p media-relay --example relay-bench -- \
//!     --addr 127.0.0.1 --port-min 30000 --port-max 39999 [--workers N] \
//!     [--quarantine SECS] [--timeout SECS]
//! ```
//!
//! Prints `ready`, then reads one command per line on stdin and answers one
//! line on stdout:
//!
//! * `create ID A_IP:A_PORT B_IP:B_PORT` -> `ok ID PORT_A PORT_B`: A sends RTP
//!   to `addr:PORT_A`, the relay forwards it from `PORT_B` to `B_IP:B_PORT`,
//!   and back. Both sides use rtcp-mux (one port per side); latching is that
//!   of a NAT zone (source IP from the "SDP", port learned).
//! * `delete ID` -> `ok ID`
//! * `stats` -> one JSON object: `packets_in`, `packets_out`, `bytes` (octets
//!   forwarded), `bytes_in`, `drops` (`{reason: count}`), over all sessions
//!   since start.
//! * anything that fails -> `err [ID] reason`.
//!
//! End of input stops the relay and exits with status 0.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use media_relay::{LatchMode, LatchPolicy, MediaRelay, RelayConfig, SessionId, Side, ZoneConfig};

struct Args {
    addr: IpAddr,
    port_min: u16,
    port_max: u16,
    workers: usize,
    quarantine: u64,
    timeout: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        addr: IpAddr::from([127, 0, 0, 1]),
        port_min: 30000,
        port_max: 39999,
        workers: 0,
        quarantine: 30,
        timeout: 3600,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => a.addr = value()?.parse().map_err(|e| format!("--addr: {e}"))?,
            "--port-min" => {
                a.port_min = value()?.parse().map_err(|e| format!("--port-min: {e}"))?
            }
            "--port-max" => {
                a.port_max = value()?.parse().map_err(|e| format!("--port-max: {e}"))?
            }
            "--workers" => a.workers = value()?.parse().map_err(|e| format!("--workers: {e}"))?,
            "--quarantine" => {
                a.quarantine = value()?.parse().map_err(|e| format!("--quarantine: {e}"))?
            }
            "--timeout" => a.timeout = value()?.parse().map_err(|e| format!("--timeout: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// The SDP a phone at `addr` would send, with rtcp-mux.
fn sdp(addr: SocketAddr) -> Vec<u8> {
    let ty = if addr.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\no=- 1 1 IN {ty} {ip}\r\ns=-\r\nc=IN {ty} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtcp-mux\r\n",
        ip = addr.ip(),
        port = addr.port()
    )
    .into_bytes()
}

fn create(
    relay: &MediaRelay,
    ids: &mut HashMap<String, SessionId>,
    name: &str,
    a: &str,
    b: &str,
) -> Result<(u16, u16), String> {
    if ids.contains_key(name) {
        return Err("exists".into());
    }
    let a: SocketAddr = a.parse().map_err(|e| format!("A address: {e}"))?;
    let b: SocketAddr = b.parse().map_err(|e| format!("B address: {e}"))?;
    let id = relay
        .create_session("bench", "bench")
        .map_err(|e| e.to_string())?;
    let setup = relay
        .offer(id, Side::A, &sdp(a))
        .and_then(|_| relay.answer(id, Side::B, &sdp(b)))
        .and_then(|_| relay.ports(id));
    match setup {
        Ok(ports) => {
            let p = ports.first().ok_or("no stream")?;
            ids.insert(name.to_owned(), id);
            Ok((p.a, p.b))
        }
        Err(e) => {
            let _ = relay.release(id);
            Err(e.to_string())
        }
    }
}

fn stats_json(relay: &MediaRelay) -> Result<String, String> {
    let t = relay.totals().map_err(|e| e.to_string())?;
    let drops: Vec<String> = t
        .drops
        .iter()
        .map(|(r, n)| format!("\"{}\":{n}", r.as_str()))
        .collect();
    Ok(format!(
        "{{\"packets_in\":{},\"packets_out\":{},\"bytes\":{},\"bytes_in\":{},\"drops\":{{{}}}}}",
        t.rtp_in + t.rtcp_in,
        t.rtp_out + t.rtcp_out,
        t.bytes_out,
        t.bytes_in,
        drops.join(",")
    ))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("relay-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = RelayConfig {
        zones: vec![ZoneConfig {
            name: "bench".into(),
            bind: args.addr,
            advertise: None,
            port_min: args.port_min,
            port_max: args.port_max,
            latch: LatchPolicy {
                mode: LatchMode::Nat,
                relatch_after_silence: None,
            },
        }],
        quarantine: Duration::from_secs(args.quarantine),
        media_timeout: Duration::from_secs(args.timeout),
        workers: args.workers,
        ..RelayConfig::default()
    };
    let (relay, _events) = match MediaRelay::start(&cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("relay-bench: {e}");
            return ExitCode::from(1);
        }
    };
    let mut ids: HashMap<String, SessionId> = HashMap::new();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let say = |out: &mut std::io::StdoutLock<'_>, line: &str| {
        // A closed stdout means the driver went away: nothing to answer.
        let _ = writeln!(out, "{line}").and_then(|_| out.flush());
    };
    say(&mut out, "ready");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            [] => continue,
            ["create", name, a, b] => match create(&relay, &mut ids, name, a, b) {
                Ok((pa, pb)) => format!("ok {name} {pa} {pb}"),
                Err(e) => format!("err {name} {e}"),
            },
            ["delete", name] => match ids.remove(*name) {
                Some(id) => match relay.release(id) {
                    Ok(()) => format!("ok {name}"),
                    Err(e) => format!("err {name} {e}"),
                },
                None => format!("err {name} unknown"),
            },
            ["stats"] => stats_json(&relay).unwrap_or_else(|e| format!("err {e}")),
            _ => format!("err bad command: {line}"),
        };
        say(&mut out, &reply);
    }
    relay.shutdown();
    ExitCode::SUCCESS
}
