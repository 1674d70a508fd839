//! `sipwarden run` as a child process on 127.0.0.1, with a configuration file and a data
//! directory in a temporary directory: start-up, signals, reload, refusal of bad input.
//!
//! Every wait is bounded; the only process signalled or killed is the child each test started,
//! by its PID.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_sipwarden");

/// Longest wait for a log line or an exit.
const WAIT: Duration = Duration::from_secs(10);

/// A UDP port on 127.0.0.1 that was free a moment ago.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Setup {
    dir: tempfile::TempDir,
    port: u16,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            dir: tempfile::tempdir().unwrap(),
            port: free_udp_port(),
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("sipwarden.toml")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A valid configuration: one UDP listener on the free port, data in the temp directory.
    fn valid(&self, log_level: &str) -> String {
        format!(
            "[general]\nlog_level = \"{log_level}\"\ndata_dir = \"{}\"\n\n\
             [[listen]]\naddress = \"127.0.0.1:{}\"\n",
            self.data_dir().display(),
            self.port
        )
    }

    fn write(&self, text: &str) {
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// Starts `sipwarden run --config FILE` and waits until it says it is running.
    fn start(&self) -> Sbc {
        let sbc = self.spawn(&["run", "--config", self.config_path().to_str().unwrap()]);
        sbc.wait_for("sipwarden is running");
        sbc
    }

    fn spawn(&self, args: &[&str]) -> Sbc {
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("SIPWARDEN_DATA_DIR")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let all = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                all.lock().unwrap().push(line.clone());
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Sbc {
            child,
            lines: rx,
            log,
        }
    }
}

/// The child process; killed (by its PID) if a test leaves it running.
struct Sbc {
    child: Child,
    lines: Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Sbc {
    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    fn signal(&self, s: Signal) {
        kill(self.pid(), s).unwrap();
    }

    /// Waits for a log line containing `needle`; returns it.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    panic!("no line with {needle:?} in:\n{}", self.log_text())
                }
            }
        }
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits at most `limit` for the process to exit.
    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {limit:?}:\n{}",
                self.log_text()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGTERM, then a clean exit with code 0 within two seconds.
    fn stop(&mut self) {
        self.signal(Signal::SIGTERM);
        let started = Instant::now();
        let status = self.wait_exit(WAIT);
        assert_eq!(status.code(), Some(0), "{}", self.log_text());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?} to stop",
            started.elapsed()
        );
    }
}

impl Drop for Sbc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn starts_logs_what_it_runs_and_stops_on_sigterm() {
    let s = Setup::new();
    s.write(&s.valid("info"));
    let mut sbc = s.start();
    let log = sbc.log_text();
    assert!(
        log.contains(&format!("sipwarden {} starting", env!("CARGO_PKG_VERSION"))),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "data dir {}: store {} with 0 AORs, 0 bindings, 0 bans",
            s.data_dir().display(),
            s.data_dir().join("sipwarden-store.redb").display()
        )),
        "{log}"
    );
    assert!(log.contains(&format!("udp 127.0.0.1:{}", s.port)), "{log}");
    assert!(s.data_dir().join("sipwarden-store.redb").is_file());
    sbc.stop();
    sbc.wait_for("sipwarden stopped");
}

#[test]
fn sigint_stops_it_too() {
    let s = Setup::new();
    s.write(&s.valid("info"));
    let mut sbc = s.start();
    sbc.signal(Signal::SIGINT);
    assert_eq!(sbc.wait_exit(WAIT).code(), Some(0));
}

#[test]
fn sighup_with_a_broken_file_keeps_the_running_configuration() {
    let s = Setup::new();
    s.write(&s.valid("info"));
    let mut sbc = s.start();
    s.write("[registrar]\nmin_expires = 7200\n");
    sbc.signal(Signal::SIGHUP);
    sbc.wait_for("the running configuration stays as it was");
    let line = sbc.wait_for("registrar.min_expires");
    assert!(
        line.ends_with(&format!(
            "{}:2: registrar.min_expires: must not be greater than max_expires (3600), got 7200",
            s.config_path().display()
        )),
        "{line}"
    );
    thread::sleep(Duration::from_millis(100));
    assert!(sbc.is_running(), "{}", sbc.log_text());
    sbc.stop();
}

#[test]
fn sighup_applies_reloadable_changes_and_names_the_others() {
    let s = Setup::new();
    s.write(&s.valid("info"));
    let mut sbc = s.start();
    let changed = s
        .valid("debug")
        .replace("[general]\n", "[general]\nnode_name = \"edge-2\"\n")
        + "\n[transaction]\nt1_ms = 250\n";
    s.write(&changed);
    sbc.signal(Signal::SIGHUP);
    // t1_ms applies to new transactions; the node name waits for a restart.
    sbc.wait_for("applied: general.log_level, transaction.t1_ms");
    sbc.wait_for("only applied after a restart: general.node_name");
    assert!(sbc.is_running());
    sbc.stop();
}

#[test]
fn a_broken_configuration_is_refused_with_exit_1() {
    let s = Setup::new();
    s.write("[general]\nlog_level = \"verbose\"\n");
    let mut sbc = s.spawn(&["run", "--config", "sipwarden.toml"]);
    let status = sbc.wait_exit(WAIT);
    assert_eq!(status.code(), Some(1));
    sbc.wait_for("sipwarden: not started, the configuration was refused");
    let log = sbc.log_text();
    assert!(
        log.starts_with(
            "sipwarden.toml:2: general.log_level: unknown variant `verbose`, expected one of \
             `trace`, `debug`, `info`, `warn`, `error`\n"
        ),
        "{log}"
    );
    assert!(!s.data_dir().exists());
}

#[test]
fn a_data_dir_that_cannot_be_created_is_a_clear_error() {
    let s = Setup::new();
    // A directory below a regular file cannot be created, even by root.
    let file = s.dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let blocked: &Path = &file.join("data");
    s.write(&s.valid("info").replace(
        &s.data_dir().display().to_string(),
        &blocked.display().to_string(),
    ));
    let mut sbc = s.spawn(&["run", "--config", "sipwarden.toml"]);
    assert_eq!(sbc.wait_exit(WAIT).code(), Some(1));
    let line = sbc.wait_for("cannot create the data directory");
    assert!(line.contains(&blocked.display().to_string()), "{line}");
    assert!(line.contains("SIPWARDEN_DATA_DIR"), "{line}");
}

/// A SIP client on 127.0.0.1: sends one request, waits (bounded) for one answer.
struct Client {
    sock: UdpSocket,
    server: SocketAddr,
}

impl Client {
    fn new(port: u16) -> Client {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        Client {
            sock,
            server: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn local(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// Sends `request` up to `tries` times, 500 ms apart, until something comes back.
    fn ask(&self, request: &str, tries: u32) -> Option<String> {
        let mut buf = [0u8; 65536];
        for _ in 0..tries {
            self.sock.send_to(request.as_bytes(), self.server).unwrap();
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        None
    }

    fn options(&self, branch: &str) -> String {
        format!(
            "OPTIONS sip:{server} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\n\
             To: <sip:{server}>\r\n\
             From: <sip:tester@{me}>;tag=t{branch}\r\n\
             Call-ID: {branch}@test\r\n\
             CSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            server = self.server,
            me = self.local()
        )
    }

    fn register(&self, user: &str) -> String {
        format!(
            "REGISTER sip:127.0.0.1:{port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bKreg{user};rport\r\n\
             Max-Forwards: 70\r\n\
             To: <sip:{user}@127.0.0.1>\r\n\
             From: <sip:{user}@127.0.0.1>;tag=r{user}\r\n\
             Call-ID: reg-{user}@test\r\n\
             CSeq: 1 REGISTER\r\n\
             Contact: <sip:{user}@{me}>\r\n\
             Expires: 600\r\n\
             Content-Length: 0\r\n\r\n",
            port = self.server.port(),
            me = self.local()
        )
    }
}

#[test]
fn answers_options_over_udp_with_200() {
    let s = Setup::new();
    s.write(&s.valid("info"));
    let mut sbc = s.start();
    let client = Client::new(s.port);
    let answer = client
        .ask(&client.options("opt1"), 10)
        .unwrap_or_else(|| panic!("no answer:\n{}", sbc.log_text()));
    assert!(answer.starts_with("SIP/2.0 200 OK\r\n"), "{answer}");
    assert!(answer.contains("CSeq: 1 OPTIONS\r\n"), "{answer}");
    sbc.stop();
}

#[test]
fn a_registration_is_stored_before_the_200_and_survives_a_restart() {
    let s = Setup::new();
    s.write(&s.valid("info"));
    let mut sbc = s.start();
    let client = Client::new(s.port);
    let answer = client.ask(&client.register("alice"), 10).unwrap();
    assert!(answer.starts_with("SIP/2.0 200 OK\r\n"), "{answer}");
    assert!(answer.contains(";expires=600"), "{answer}");
    sbc.stop();
    drop(sbc);

    let sbc = s.start();
    let log = sbc.log_text();
    assert!(log.contains("with 1 AORs, 1 bindings, 0 bans"), "{log}");
}

#[test]
fn sources_outside_every_zone_get_no_answer_until_a_reload_adds_them() {
    let s = Setup::new();
    let config = |networks: &str| {
        format!(
            "{}\n[[zone]]\nname = \"lan\"\nnetworks = [{networks}]\n",
            s.valid("info")
        )
    };
    s.write(&config("\"10.0.0.0/8\""));
    let mut sbc = s.start();
    let client = Client::new(s.port);
    assert_eq!(client.ask(&client.options("z1"), 2), None);

    s.write(&config("\"10.0.0.0/8\", \"127.0.0.0/8\""));
    sbc.signal(Signal::SIGHUP);
    sbc.wait_for("applied: zone.lan.networks");
    let answer = client.ask(&client.options("z2"), 10).unwrap();
    assert!(answer.starts_with("SIP/2.0 200 OK\r\n"), "{answer}");
    sbc.stop();
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let s = Setup::new();
    let _taken = UdpSocket::bind(("127.0.0.1", s.port)).unwrap();
    s.write(&s.valid("info"));
    let mut sbc = s.spawn(&["run", "--config", "sipwarden.toml"]);
    assert_eq!(sbc.wait_exit(WAIT).code(), Some(1));
    let line = sbc.wait_for("cannot listen on");
    assert!(
        line.contains(&format!("udp 127.0.0.1:{}", s.port)),
        "{line}"
    );
}
