//! The `relay-bench` line protocol, driven through the same function the
//! example runs, with real RTP on loopback in between.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use media_relay::bench::{serve, Args};

#[test]
fn create_relay_stats_delete_over_the_line_protocol() {
    let args = Args::parse(
        [
            "--addr",
            "127.0.0.1",
            "--port-min",
            "21700",
            "--port-max",
            "21799",
            "--workers",
            "1",
        ]
        .map(String::from),
    )
    .unwrap();
    // stdin and stdout of the "process" as two socket pairs.
    let (mut cmd_w, cmd_r) = UnixStream::pair().unwrap();
    let (out_w, out_r) = UnixStream::pair().unwrap();
    let server = std::thread::spawn(move || serve(&args, BufReader::new(cmd_r), out_w));
    let mut out = BufReader::new(out_r);
    let mut line = || {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        l.trim_end().to_owned()
    };
    assert_eq!(line(), "ready");

    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    b.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    writeln!(
        cmd_w,
        "create call-1 {} {}",
        a.local_addr().unwrap(),
        b.local_addr().unwrap()
    )
    .unwrap();
    let reply = line();
    let w: Vec<&str> = reply.split(' ').collect();
    assert_eq!(&w[..2], ["ok", "call-1"], "{reply}");
    let port_a: u16 = w[2].parse().unwrap();
    let port_b: u16 = w[3].parse().unwrap();
    assert!((21700..=21799).contains(&port_a) && (21700..=21799).contains(&port_b));

    let mut pkt = [0u8; 172];
    pkt[0] = 0x80;
    for _ in 0..10 {
        a.send_to(&pkt, ("127.0.0.1", port_a)).unwrap();
        let mut buf = [0u8; 2048];
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!((n, from), (172, SocketAddr::from(([127, 0, 0, 1], port_b))));
    }
    // A stranger on another loopback address is dropped.
    let stranger = UdpSocket::bind("127.0.0.2:0").unwrap();
    stranger.send_to(&pkt, ("127.0.0.1", port_a)).unwrap();
    std::thread::sleep(Duration::from_millis(100));

    writeln!(cmd_w, "stats").unwrap();
    // One worker, on io_uring or (where the kernel refuses it) on epoll.
    let stats = line();
    let counters = r#"{"packets_in":11,"packets_out":10,"packets_kernel":0,"bytes":1720,"bytes_in":1892,"drops":{"source_locked":1},"#;
    assert!(
        [0, 1]
            .iter()
            .any(|n| stats == format!(r#"{counters}"io_uring_workers":{n}}}"#)),
        "{stats}"
    );
    writeln!(cmd_w, "create call-1 127.0.0.1:1 127.0.0.1:2").unwrap();
    assert_eq!(line(), "err call-1 exists");
    writeln!(cmd_w, "create call-2 nonsense 127.0.0.1:2").unwrap();
    assert!(line().starts_with("err call-2 A address"));
    writeln!(cmd_w, "delete call-1").unwrap();
    assert_eq!(line(), "ok call-1");
    writeln!(cmd_w, "delete call-1").unwrap();
    assert_eq!(line(), "err call-1 unknown");
    writeln!(cmd_w, "frobnicate").unwrap();
    assert_eq!(line(), "err bad command: frobnicate");
    // The port is closed once deleted.
    UdpSocket::bind(("127.0.0.1", port_a)).expect("port released");
    drop(cmd_w);
    server.join().unwrap().unwrap();
    assert!(Args::parse(["--bogus".to_string()]).is_err());
    let k = |v: &str| Args::parse(["--kernel", v].map(String::from));
    assert!(k("1").unwrap().relay_config().kernel_forward);
    assert!(!k("0").unwrap().relay_config().kernel_forward);
    assert!(!Args::default().relay_config().kernel_forward);
    assert!(k("yes").is_err());
}
