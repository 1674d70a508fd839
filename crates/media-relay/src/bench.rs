//! The line protocol of the `relay-bench` example: a control front-end used
//! by benchmarks (e.g. side by side with rtpengine). It lives in the library
//! so that tests drive exactly the code the example runs.
//!
//! Commands, one per line, each answered by one line:
//!
//! * `create ID A_IP:A_PORT B_IP:B_PORT` -> `ok ID PORT_A PORT_B`: A sends RTP
//!   to `addr:PORT_A`, the relay forwards it from `PORT_B` to `B_IP:B_PORT`,
//!   and back. Both sides use rtcp-mux (one port per side); latching is that
//!   of a NAT zone (source IP from the "SDP", port learned).
//! * `create ID A_IP:A_PORT B_IP:B_PORT srtp=BASE64KEY` -> the same, but A
//!   sends SRTP (`AES_CM_128_HMAC_SHA1_80`; the key is the 30 octets of
//!   master key and salt, base64, as in an SDES `inline:`): the relay
//!   authenticates and decrypts what A sends and forwards plain RTP to B;
//!   B to A stays plain. Needs the `srtp` feature (default).
//! * `delete ID` -> `ok ID`
//! * `stats` -> one JSON object: `packets_in`, `packets_out`, `packets_kernel`
//!   (of `packets_out`, those the kernel fast path forwarded: `--kernel 1`),
//!   `bytes` (octets forwarded), `bytes_in`, `drops` (`{reason: count}`),
//!   over all sessions since start, and `io_uring_workers` (workers on the
//!   io_uring path).
//! * anything that fails -> `err [ID] reason`.
//!
//! `ready` is printed first; end of input ends [`serve`].

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::{
    LatchMode, LatchPolicy, MediaError, MediaRelay, RelayConfig, SessionId, Side, ZoneConfig,
};

/// Command-line options of the example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// Bind (and announced) address.
    pub addr: IpAddr,
    /// Port range start.
    pub port_min: u16,
    /// Port range end.
    pub port_max: u16,
    /// Worker threads (0: one per core).
    pub workers: usize,
    /// Quarantine in seconds.
    pub quarantine: u64,
    /// Media timeout in seconds.
    pub timeout: u64,
    /// `--io epoll`: force the epoll packet path (default: io_uring where
    /// the kernel allows it).
    pub io_uring: bool,
    /// `--batch-wait-us`: [`RelayConfig::io_batch_wait`].
    pub batch_wait_us: u64,
    /// `--connect 0|1`: [`RelayConfig::connect_latched`].
    pub connect: bool,
    /// `--kernel 0|1`: [`RelayConfig::kernel_forward`] (on every Ethernet
    /// and loopback interface).
    pub kernel: bool,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            addr: IpAddr::from([127, 0, 0, 1]),
            port_min: 30000,
            port_max: 39999,
            workers: 0,
            quarantine: 30,
            timeout: 3600,
            io_uring: true,
            batch_wait_us: 200,
            connect: true,
            kernel: false,
        }
    }
}

impl Args {
    /// Parses `--addr --port-min --port-max --workers --quarantine --timeout
    /// --io --batch-wait-us --connect --kernel`.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut a = Args::default();
        let mut it = args.into_iter();
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
                "--workers" => {
                    a.workers = value()?.parse().map_err(|e| format!("--workers: {e}"))?
                }
                "--quarantine" => {
                    a.quarantine = value()?.parse().map_err(|e| format!("--quarantine: {e}"))?
                }
                "--timeout" => {
                    a.timeout = value()?.parse().map_err(|e| format!("--timeout: {e}"))?
                }
                "--batch-wait-us" => {
                    a.batch_wait_us = value()?
                        .parse()
                        .map_err(|e| format!("--batch-wait-us: {e}"))?
                }
                "--connect" => {
                    a.connect = match value()?.as_str() {
                        "1" => true,
                        "0" => false,
                        other => return Err(format!("--connect: {other}: 0 or 1")),
                    }
                }
                "--kernel" => {
                    a.kernel = match value()?.as_str() {
                        "1" => true,
                        "0" => false,
                        other => return Err(format!("--kernel: {other}: 0 or 1")),
                    }
                }
                "--io" => {
                    a.io_uring = match value()?.as_str() {
                        "io_uring" => true,
                        "epoll" => false,
                        other => return Err(format!("--io: {other}: io_uring or epoll")),
                    }
                }
                other => return Err(format!("unknown argument {other}")),
            }
        }
        Ok(a)
    }

    /// The relay configuration: one zone `bench` with NAT latching.
    pub fn relay_config(&self) -> RelayConfig {
        RelayConfig {
            zones: vec![ZoneConfig {
                name: "bench".into(),
                bind: self.addr,
                advertise: None,
                port_min: self.port_min,
                port_max: self.port_max,
                latch: LatchPolicy {
                    mode: LatchMode::Nat,
                    relatch_after_silence: None,
                },
            }],
            quarantine: Duration::from_secs(self.quarantine),
            media_timeout: Duration::from_secs(self.timeout),
            workers: self.workers,
            io_uring: self.io_uring,
            io_batch_wait: Duration::from_micros(self.batch_wait_us),
            connect_latched: self.connect,
            kernel_forward: self.kernel,
            ..RelayConfig::default()
        }
    }
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
    options: &[&str],
) -> Result<(u16, u16), String> {
    if ids.contains_key(name) {
        return Err("exists".into());
    }
    let a: SocketAddr = a.parse().map_err(|e| format!("A address: {e}"))?;
    let b: SocketAddr = b.parse().map_err(|e| format!("B address: {e}"))?;
    let mut srtp_key = None;
    for opt in options {
        match opt.split_once('=') {
            Some(("srtp", key)) => srtp_key = Some(key),
            _ => return Err(format!("unknown option {opt}")),
        }
    }
    // Checked before anything is bound, so a bad key leaves no session.
    let inbound = srtp_key.map(srtp_inbound).transpose()?;
    let id = relay
        .create_session("bench", "bench")
        .map_err(|e| e.to_string())?;
    let setup = relay
        .offer(id, Side::A, &sdp(a))
        .and_then(|_| relay.answer(id, Side::B, &sdp(b)))
        .and_then(|_| relay.ports(id))
        .and_then(|ports| match inbound {
            Some(t) => relay.set_transform(id, 0, Side::A, Some(t)).map(|()| ports),
            None => Ok(ports),
        });
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

/// The transform of side A's direction for `srtp=KEY`.
#[cfg(feature = "srtp")]
fn srtp_inbound(key: &str) -> Result<Box<dyn crate::PacketTransform>, String> {
    use base64::Engine as _;
    use media_srtp::{MasterKey, SrtpContext, SrtpProfile, SrtpTransform};
    let raw = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|e| format!("srtp key: {e}"))?;
    let master = MasterKey::from_concatenated(SrtpProfile::AesCm128HmacSha1_80, &raw)
        .ok_or_else(|| format!("srtp key: {} octets, want 30", raw.len()))?;
    Ok(Box::new(SrtpTransform::Decrypt(Box::new(
        SrtpContext::new(&master),
    ))))
}

#[cfg(not(feature = "srtp"))]
fn srtp_inbound(_key: &str) -> Result<Box<dyn crate::PacketTransform>, String> {
    Err("built without the srtp feature".into())
}

fn stats_json(relay: &MediaRelay) -> Result<String, String> {
    let t = relay.totals().map_err(|e| e.to_string())?;
    let drops: Vec<String> = t
        .drops
        .iter()
        .map(|(r, n)| format!("\"{}\":{n}", r.as_str()))
        .collect();
    Ok(format!(
        "{{\"packets_in\":{},\"packets_out\":{},\"packets_kernel\":{},\"bytes\":{},\"bytes_in\":{},\"drops\":{{{}}},\"io_uring_workers\":{}}}",
        t.rtp_in + t.rtcp_in,
        t.rtp_out + t.rtcp_out,
        t.rtp_kernel,
        t.bytes_out,
        t.bytes_in,
        drops.join(","),
        relay.io_uring_workers()
    ))
}

/// Starts a relay for `args`, prints `ready`, and answers commands from
/// `input` on `output` until end of input; then stops the relay (every
/// socket closed).
pub fn serve(args: &Args, input: impl BufRead, mut output: impl Write) -> Result<(), MediaError> {
    let (relay, _events) = MediaRelay::start(&args.relay_config())?;
    let mut ids: HashMap<String, SessionId> = HashMap::new();
    writeln!(output, "ready")?;
    output.flush()?;
    for line in input.lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            [] => continue,
            ["create", name, a, b, options @ ..] => {
                match create(&relay, &mut ids, name, a, b, options) {
                    Ok((pa, pb)) => format!("ok {name} {pa} {pb}"),
                    Err(e) => format!("err {name} {e}"),
                }
            }
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
        writeln!(output, "{reply}")?;
        output.flush()?;
    }
    relay.shutdown();
    Ok(())
}
