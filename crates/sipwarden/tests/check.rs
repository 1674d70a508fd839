//! `sipwarden check`: the example configurations pass, a broken one gives every error as
//! `FILE:LINE: field: problem` and exit code 1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_sipwarden");

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the binary in the workspace root, without `SIPWARDEN_DATA_DIR`.
fn check(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("check")
        .args(args)
        .current_dir(workspace())
        .env_remove("SIPWARDEN_DATA_DIR")
        .output()
        .expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn every_example_configuration_is_ok() {
    let mut checked = 0;
    for entry in std::fs::read_dir(workspace().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let name = format!("examples/{}", path.file_name().unwrap().to_str().unwrap());
        let out = check(&["--config", &name]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let mut lines = stdout.lines();
        assert_eq!(lines.next(), Some(format!("{name}: ok").as_str()));
        let summary = lines.next().unwrap();
        assert!(summary.contains("listeners: "), "{summary}");
        assert!(summary.contains("zones: "), "{summary}");
        assert!(summary.contains("data dir: "), "{summary}");
        assert!(text(&out.stderr).is_empty());
        checked += 1;
    }
    assert!(checked >= 2, "examples/*.toml not found");
}

#[test]
fn summary_of_the_proxy_example() {
    let out = check(&["--config", "examples/proxy.toml"]);
    assert_eq!(
        text(&out.stdout),
        "examples/proxy.toml: ok\n  listeners: udp 192.168.10.1:5060 (lan), \
         tcp 192.168.10.1:5060 (lan), udp 127.0.0.1:5060 (lan); zones: lan (2 networks); \
         data dir: /var/lib/sipwarden\n"
    );
}

/// The example of docs/CONFIG.md, "Errors".
const BROKEN: &str = r#"[general]
log_level = "verbose"

[[listen]]
address = "192.168.10.1:5060"

[[listen]]
transport = "tcp"
adress = "192.168.10.1:5060"

[registrar]
min_expires = 7200

[[zone]]
name = "lan"
networks = ["192.168.10.0/24", "10.0.0.1/8", "192.168.10.128/25"]
"#;

#[test]
fn a_broken_configuration_gives_every_error_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sbc.toml"), BROKEN).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config", "sbc.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        "sbc.toml:2: general.log_level: unknown variant `verbose`, expected one of `trace`, `debug`, `info`, `warn`, `error`
sbc.toml:7: listen[1].address: missing; this field is required
sbc.toml:9: listen[1].adress: unknown field, did you mean `address`?
sbc.toml:12: registrar.min_expires: must not be greater than max_expires (3600), got 7200
sbc.toml:16: zone[0].networks[1]: `10.0.0.1/8` has host bits set; the network is `10.0.0.0/8`
sbc.toml:16: zone[0].networks[2]: `192.168.10.128/25` overlaps `192.168.10.0/24` (zone[0].networks[0]); a network may belong to one zone only, once
"
    );
}

#[test]
fn an_unreadable_file_exits_2() {
    let out = check(&["--config", "no/such/file.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("no/such/file.toml: cannot read the file: "),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(check(&[]).status.code(), Some(2));
    assert_eq!(check(&["--nope", "x"]).status.code(), Some(2));
}

#[test]
fn the_data_dir_variable_shows_in_the_summary() {
    let out = Command::new(BIN)
        .args(["check", "--config", "examples/minimal.toml"])
        .current_dir(workspace())
        .env("SIPWARDEN_DATA_DIR", "/tmp/sipwarden-check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).ends_with("; data dir: /tmp/sipwarden-check\n"));
}
