//! Every file in examples/ must load, and minimal.toml must be exactly the built-in defaults.

use std::path::{Path, PathBuf};

use config::{Config, Overrides, Protocol};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn load(name: &str) -> Config {
    let path = examples_dir().join(name);
    Config::from_file_with(&path, &Overrides::none())
        .unwrap_or_else(|e| panic!("{} does not load:\n{e}", path.display()))
}

#[test]
fn every_example_loads() {
    let mut seen = 0;
    for entry in std::fs::read_dir(examples_dir()).expect("examples/ exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(e) = Config::from_file_with(&path, &Overrides::none()) {
                panic!("{} does not load:\n{e}", path.display());
            }
            seen += 1;
        }
    }
    assert!(
        seen >= 2,
        "expected at least minimal.toml and proxy.toml, found {seen}"
    );
}

#[test]
fn minimal_is_the_defaults_written_out() {
    assert_eq!(load("minimal.toml"), Config::default());
}

#[test]
fn embedded_default_is_minimal_toml() {
    // Both read SIPWARDEN_DATA_DIR, so they agree whether or not it is set.
    let from_file = Config::from_file(examples_dir().join("minimal.toml")).unwrap();
    assert_eq!(Config::embedded_default(), from_file);
}

#[test]
fn proxy_example() {
    let c = load("proxy.toml");
    assert_eq!(c.listen.len(), 3);
    assert_eq!(c.listen[1].transport, Protocol::Tcp);
    assert_eq!(c.listen[1].address, "192.168.10.1:5060".parse().unwrap());
    assert_eq!(c.transaction.t1_ms, 250);
    assert_eq!(c.transaction.max_transactions, 640_000, "default kept");
    assert_eq!(c.registrar.domains, ["corp.example", "192.168.10.1"]);
    assert_eq!(c.proxy.invite_timeout_s, 120);
    assert_eq!(c.general.server_header.as_deref(), Some("sipwarden"));
    assert_eq!(c.general.data_dir, Path::new("/var/lib/sipwarden"));
    let lan = c.zone_of("192.168.10.21".parse().unwrap()).unwrap();
    assert_eq!(lan.name, "lan");
    assert!(c.zone_of("10.0.0.1".parse().unwrap()).is_none());
    assert!(c.problems().is_empty());
}
