//! The firewall against the real kernel, in two network namespaces this test
//! creates: `fwt<pid>s` runs the relay and the firewall (zone wan on
//! 10.77.0.1, zone lan on fd77::1), `fwt<pid>p` holds the peers (A at
//! 10.77.0.2, B at fd77::2) and the strangers (10.77.0.3, fd77::3), linked
//! by a veth pair. Runs only as root; prints SKIPPED otherwise. The
//! namespaces are deleted by name when the test ends, also on failure.

use std::fs::File;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use media_firewall::{Firewall, FirewallConfig};
use media_relay::{LatchMode, LatchPolicy, MediaRelay, RelayConfig, Side, ZoneConfig};
use serde_json::Value;

const TABLE: &str = "sipwarden_media";

/// Deletes the namespaces it names when dropped.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `f` on a thread inside namespace `ns`. Threads and processes it
/// starts stay in `ns`; sockets it creates belong to `ns` wherever used.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(path).unwrap();
        // SAFETY: setns on a valid namespace fd; it only changes this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

fn udp(ns: &str, ip: &str) -> UdpSocket {
    let ip: IpAddr = ip.parse().unwrap();
    in_ns(ns, move || {
        let s = UdpSocket::bind((ip, 0)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s
    })
}

fn sdp(addr: SocketAddr) -> Vec<u8> {
    let fam = if addr.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\no=- 1 1 IN {fam} {ip}\r\ns=-\r\nc=IN {fam} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtcp-mux\r\n",
        ip = addr.ip(),
        port = addr.port()
    )
    .into_bytes()
}

fn rtp(seq: u16) -> [u8; 172] {
    let mut p = [0u8; 172];
    p[0] = 0x80;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[8..12].copy_from_slice(&0x1234u32.to_be_bytes());
    p
}

fn nft_json(args: &str) -> Value {
    let mut a = vec!["nft", "-j"];
    a.extend(args.split(' '));
    serde_json::from_str(&run(&a)).unwrap()
}

/// The elements of a set, as "a . b . c" strings, sorted.
fn elements(set: &str) -> Vec<String> {
    let v = nft_json(&format!("list set inet {TABLE} {set}"));
    let mut out = Vec::new();
    for obj in v["nftables"].as_array().unwrap() {
        for e in obj["set"]["elem"].as_array().into_iter().flatten() {
            let val = &e["elem"]["val"];
            let parts: Vec<String> = val["concat"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| match p {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            out.push(parts.join(" . "));
        }
    }
    out.sort();
    out
}

/// (timeout, expires) of each element of a set, in seconds.
fn timeouts(set: &str) -> Vec<(u64, u64)> {
    let v = nft_json(&format!("list set inet {TABLE} {set}"));
    let mut out = Vec::new();
    for obj in v["nftables"].as_array().unwrap() {
        for e in obj["set"]["elem"].as_array().into_iter().flatten() {
            out.push((
                e["elem"]["timeout"].as_u64().unwrap(),
                e["elem"]["expires"].as_u64().unwrap(),
            ));
        }
    }
    out
}

/// Packets counted by the input chain's rule whose JSON contains `needle`.
fn counter(needle: &str) -> u64 {
    let v = nft_json(&format!("list chain inet {TABLE} input"));
    let rules: Vec<&Value> = v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("rule"))
        .filter(|r| r.to_string().contains(needle))
        .collect();
    assert_eq!(rules.len(), 1, "one rule with {needle}");
    rules[0]["expr"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e.get("counter"))
        .unwrap()["packets"]
        .as_u64()
        .unwrap()
}

/// Media ports bound in this thread's namespace, as "addr . port" open-set
/// elements, split by family.
fn bound_elements() -> (Vec<String>, Vec<String>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for (table, out, addr) in [
        ("/proc/thread-self/net/udp", &mut v4, "10.77.0.1"),
        ("/proc/thread-self/net/udp6", &mut v6, "fd77::1"),
    ] {
        for line in std::fs::read_to_string(table).unwrap().lines().skip(1) {
            let local = line.split_whitespace().nth(1).unwrap();
            let port = u16::from_str_radix(local.rsplit_once(':').unwrap().1, 16).unwrap();
            if (31000..=31199).contains(&port) {
                out.push(format!("{addr} . {port}"));
            }
        }
    }
    v4.sort();
    v6.sort();
    (v4, v6)
}

/// Polls `cond` every 5 ms for up to `limit`; returns the time it took.
fn within(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

fn recv_count(s: &UdpSocket, from: SocketAddr) -> usize {
    let mut n = 0;
    let mut buf = [0u8; 2048];
    while let Ok((_, src)) = s.recv_from(&mut buf) {
        assert_eq!(src, from);
        n += 1;
    }
    n
}

/// Creates the two namespaces (`fwt<pid><tag>s`, `fwt<pid><tag>p`) and
/// their link; `None` (after printing SKIPPED) when not root or a tool is
/// missing. The guard deletes them.
fn testbed(test: &str, tag: &str) -> Option<(Namespaces, String, String)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIPPED {test}: needs root (network namespaces, nftables)");
        return None;
    }
    for tool in ["ip", "nft"] {
        if Command::new(tool).arg("-V").output().is_err() {
            println!("SKIPPED {test}: no {tool} binary");
            return None;
        }
    }
    let pid = std::process::id();
    let (srv, peers) = (format!("fwt{pid}{tag}s"), format!("fwt{pid}{tag}p"));
    let guard = Namespaces(vec![srv.clone(), peers.clone()]);
    for ns in [&srv, &peers] {
        let _ = Command::new("ip")
            .args(["netns", "del", ns])
            .stderr(std::process::Stdio::null())
            .status();
        run(&["ip", "netns", "add", ns]);
    }
    run(&[
        "ip", "-n", &srv, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns",
        &peers,
    ]);
    for (ns, addrs) in [
        (&srv, vec!["10.77.0.1/24", "fd77::1/64"]),
        (
            &peers,
            vec!["10.77.0.2/24", "10.77.0.3/24", "fd77::2/64", "fd77::3/64"],
        ),
    ] {
        for a in addrs {
            let mut args = vec!["ip", "-n", ns, "addr", "add", a, "dev", "veth0"];
            if a.contains(':') {
                args.push("nodad");
            }
            run(&args);
        }
        run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        run(&["ip", "-n", ns, "link", "set", "veth0", "up"]);
    }
    Some((guard, srv, peers))
}

fn relay_config() -> RelayConfig {
    let zone = |name: &str, bind: &str, min: u16| ZoneConfig {
        name: name.into(),
        bind: bind.parse().unwrap(),
        advertise: None,
        port_min: min,
        port_max: min + 99,
        latch: LatchPolicy {
            mode: LatchMode::SdpAddress,
            relatch_after_silence: None,
        },
    };
    RelayConfig {
        zones: vec![
            zone("wan", "10.77.0.1", 31000),
            zone("lan", "fd77::1", 31100),
        ],
        workers: 1,
        ..RelayConfig::default()
    }
}

#[test]
fn kernel_admits_only_allocated_ports_and_latched_peers() {
    let Some((_cleanup, srv, peers)) =
        testbed("kernel_admits_only_allocated_ports_and_latched_peers", "a")
    else {
        return;
    };
    let a = udp(&peers, "10.77.0.2");
    let a_other_port = udp(&peers, "10.77.0.2");
    let stranger4 = udp(&peers, "10.77.0.3");
    let b = udp(&peers, "fd77::2");
    let stranger6 = udp(&peers, "fd77::3");
    let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());

    in_ns(&srv, move || {
        let cfg = relay_config();
        let fw = Firewall::start(FirewallConfig::for_relay(&cfg)).unwrap();
        let (relay, _events) = MediaRelay::start_with_hook(&cfg, Some(fw.hook())).unwrap();

        // Before a call: the table with both drop rules, no element.
        let listing = run(&["nft", "list", "table", "inet", TABLE]);
        assert!(
            listing.contains("ip daddr 10.77.0.1 udp dport 31000-31099 counter packets 0 bytes 0 drop comment \"sipwarden zone wan\""),
            "{listing}"
        );
        assert!(
            listing.contains("ip6 daddr fd77::1 udp dport 31100-31199 counter packets 0 bytes 0 drop comment \"sipwarden zone lan\""),
            "{listing}"
        );
        for set in ["open4", "open6", "peer4", "peer6"] {
            assert_eq!(elements(set), Vec::<String>::new(), "{set} before a call");
        }

        // Offer and answer: exactly the bound ports are open.
        let id = relay.create_session("wan", "lan").unwrap();
        let t = Instant::now();
        relay.offer(id, Side::A, &sdp(a_addr)).unwrap();
        assert!(fw.sync(Duration::from_secs(1)));
        println!("allocation -> elements in the kernel: {:?}", t.elapsed());
        relay.answer(id, Side::B, &sdp(b_addr)).unwrap();
        assert!(fw.sync(Duration::from_secs(1)));
        let p = relay.ports(id).unwrap()[0];
        let (want4, want6) = bound_elements();
        assert!(want4.contains(&format!("10.77.0.1 . {}", p.a)), "{want4:?}");
        assert!(want6.contains(&format!("fd77::1 . {}", p.b)), "{want6:?}");
        assert_eq!(elements("open4"), want4);
        assert_eq!(elements("open6"), want6);
        assert_eq!(elements("peer4"), Vec::<String>::new());
        for (timeout, _) in timeouts("open4").into_iter().chain(timeouts("open6")) {
            assert_eq!(timeout, 15 * 60, "default element timeout");
        }

        // Media both ways latches both legs: only the peers remain.
        let (relay_a, relay_b): (SocketAddr, SocketAddr) = (
            format!("10.77.0.1:{}", p.a).parse().unwrap(),
            format!("[fd77::1]:{}", p.b).parse().unwrap(),
        );
        for seq in 0..3 {
            a.send_to(&rtp(seq), relay_a).unwrap();
            b.send_to(&rtp(seq), relay_b).unwrap();
        }
        assert_eq!(recv_count(&b, relay_b), 3);
        assert_eq!(recv_count(&a, relay_a), 3);
        assert!(fw.sync(Duration::from_secs(1)));
        let peer4 = format!("10.77.0.2 . {} . 10.77.0.1 . {}", a_addr.port(), p.a);
        let peer6 = format!("fd77::2 . {} . fd77::1 . {}", b_addr.port(), p.b);
        assert_eq!(elements("peer4"), vec![peer4]);
        assert_eq!(elements("peer6"), vec![peer6]);
        let (mut rest4, mut rest6) = bound_elements();
        rest4.retain(|e| *e != format!("10.77.0.1 . {}", p.a));
        rest6.retain(|e| *e != format!("fd77::1 . {}", p.b));
        assert_eq!(elements("open4"), rest4);
        assert_eq!(elements("open6"), rest6);

        // Strangers (another host, or the peer's host from another port)
        // are dropped by the kernel: the drop rules count them and the
        // relay never sees them. The latched peers pass.
        let drop4 = counter("sipwarden zone wan");
        let drop6 = counter("sipwarden zone lan");
        let pass4 = counter("\"@peer4\"");
        let pass6 = counter("\"@peer6\"");
        let before = relay.stats(id).unwrap().streams[0];
        for seq in 10..20 {
            stranger4.send_to(&rtp(seq), relay_a).unwrap();
            a_other_port.send_to(&rtp(seq), relay_a).unwrap();
            stranger6.send_to(&rtp(seq), relay_b).unwrap();
        }
        for seq in 20..30 {
            a.send_to(&rtp(seq), relay_a).unwrap();
            b.send_to(&rtp(seq), relay_b).unwrap();
        }
        assert_eq!(recv_count(&b, relay_b), 10, "only A's packets reach B");
        assert_eq!(recv_count(&a, relay_a), 10, "only B's packets reach A");
        assert_eq!(counter("sipwarden zone wan") - drop4, 20);
        assert_eq!(counter("sipwarden zone lan") - drop6, 10);
        assert_eq!(counter("\"@peer4\"") - pass4, 10);
        assert_eq!(counter("\"@peer6\"") - pass6, 10);
        let after = relay.stats(id).unwrap().streams[0];
        assert_eq!(after.a_to_b.rtp_in - before.a_to_b.rtp_in, 10);
        assert_eq!(after.b_to_a.rtp_in - before.b_to_a.rtp_in, 10);
        assert_eq!(after.a_to_b.drops.total() + after.b_to_a.drops.total(), 0);

        // Release: every element is gone within a second, and the port is
        // closed at the filter even for the former peer.
        relay.release(id).unwrap();
        let gone = within(Duration::from_secs(1), || {
            ["open4", "open6", "peer4", "peer6"]
                .iter()
                .all(|s| elements(s).is_empty())
        });
        println!("release -> elements gone (as nft lists them): {gone:?}");
        assert!(gone.is_some(), "elements still there 1 s after release");
        let drop4 = counter("sipwarden zone wan");
        a.send_to(&rtp(99), relay_a).unwrap();
        assert_eq!(recv_count(&b, relay_b), 0);
        assert_eq!(counter("sipwarden zone wan") - drop4, 1);

        let st = fw.stats();
        println!("firewall stats: {st:?}");
        assert_eq!(st.failures, 0, "{st:?}");
        relay.shutdown();
        fw.stop().unwrap();
        let tables = run(&["nft", "list", "tables"]);
        assert!(!tables.contains(TABLE), "{tables}");
    });
}

#[test]
fn elements_are_refreshed_and_a_table_edited_by_hand_is_rebuilt() {
    let Some((_cleanup, srv, peers)) = testbed(
        "elements_are_refreshed_and_a_table_edited_by_hand_is_rebuilt",
        "b",
    ) else {
        return;
    };
    let a = udp(&peers, "10.77.0.2");
    let b = udp(&peers, "fd77::2");
    let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    in_ns(&srv, move || {
        let cfg = relay_config();
        let fw = Firewall::start(FirewallConfig {
            element_timeout: Duration::from_secs(10),
            ..FirewallConfig::for_relay(&cfg)
        })
        .unwrap();
        let (relay, _events) = MediaRelay::start_with_hook(&cfg, Some(fw.hook())).unwrap();
        let id = relay.create_session("wan", "lan").unwrap();
        relay.offer(id, Side::A, &sdp(a_addr)).unwrap();
        relay.answer(id, Side::B, &sdp(b_addr)).unwrap();
        assert!(fw.sync(Duration::from_secs(1)));
        let t0 = Instant::now();
        let all = || {
            let mut t = timeouts("open4");
            t.extend(timeouts("open6"));
            t
        };
        assert!(!all().is_empty());
        assert!(all().iter().all(|&(t, e)| t == 10 && e >= 9), "{:?}", all());

        // Past half the timeout the elements were added again: without the
        // refresh they would expire in about 4 s.
        std::thread::sleep(Duration::from_millis(5600).saturating_sub(t0.elapsed()));
        assert!(all().iter().all(|&(_, e)| e >= 8), "{:?}", all());
        assert!(fw.stats().batches >= 2, "{:?}", fw.stats());

        // Someone removes elements by hand: the next delete fails, and the
        // table is rebuilt from the relay's state.
        run(&["nft", "flush", "set", "inet", TABLE, "open6"]);
        relay.release(id).unwrap();
        let settled = within(Duration::from_secs(2), || fw.stats().resyncs == 1);
        assert!(settled.is_some(), "{:?}", fw.stats());
        let st = fw.stats();
        assert_eq!(st.failures, 1, "{st:?}");
        assert!(
            st.last_error
                .as_deref()
                .unwrap_or("")
                .contains("No such file"),
            "{st:?}"
        );
        for set in ["open4", "open6", "peer4", "peer6"] {
            assert_eq!(elements(set), Vec::<String>::new(), "{set} after resync");
        }
        assert_eq!(counter("sipwarden zone wan"), 0, "drop rules are back");

        // And the next call is handled normally.
        let id = relay.create_session("wan", "lan").unwrap();
        relay.offer(id, Side::A, &sdp(a_addr)).unwrap();
        assert!(fw.sync(Duration::from_secs(1)));
        let p = relay.ports(id).unwrap()[0];
        assert!(elements("open4").contains(&format!("10.77.0.1 . {}", p.a)));
        relay.release(id).unwrap();
        assert!(fw.sync(Duration::from_secs(1)));
        assert_eq!(elements("open4"), Vec::<String>::new());
        assert_eq!(fw.stats().failures, 1);

        // A burst of calls (all the wan pairs but a few): one script per
        // nft run at most, so far fewer runs than calls.
        let before = fw.stats().batches;
        let t = Instant::now();
        let ids: Vec<_> = (0..45)
            .map(|_| {
                let id = relay.create_session("wan", "lan").unwrap();
                relay.offer(id, Side::A, &sdp(a_addr)).unwrap();
                id
            })
            .collect();
        assert!(fw.sync(Duration::from_secs(2)));
        let up = t.elapsed();
        assert_eq!(elements("open4").len(), 45);
        assert_eq!(elements("open6").len(), 45);
        let t = Instant::now();
        for id in ids {
            relay.release(id).unwrap();
        }
        assert!(fw.sync(Duration::from_secs(2)));
        let down = t.elapsed();
        assert_eq!(elements("open4"), Vec::<String>::new());
        let runs = fw.stats().batches - before;
        println!(
            "45 calls: offers to elements in the kernel {up:?}, releases to elements gone {down:?}, {runs} nft runs"
        );
        assert!(runs < 45, "{runs} nft runs for 45 calls and 45 releases");
        relay.shutdown();
        fw.stop().unwrap();
    });
}
