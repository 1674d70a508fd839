//! The built-in defaults, and what an empty or partial file gives.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, LogLevel, Overrides, Protocol};

fn parse(text: &str) -> Config {
    Config::from_str_with(text, "t.toml", &Overrides::none()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn empty_file_is_the_defaults() {
    assert_eq!(parse(""), Config::default());
    assert_eq!(parse("# nothing but a comment\n"), Config::default());
}

#[test]
fn default_values() {
    let c = Config::default();
    assert_eq!(c.general.data_dir, Path::new("/var/lib/sipwarden"));
    assert_eq!(c.general.log_level, LogLevel::Info);
    assert_eq!(c.general.node_name, "sipwarden");
    assert_eq!(c.general.server_header, None);

    let any: SocketAddr = "0.0.0.0:5060".parse().unwrap();
    let listeners: Vec<_> = c
        .listen
        .iter()
        .map(|l| (l.zone.as_str(), l.transport, l.address))
        .collect();
    assert_eq!(
        listeners,
        [("lan", Protocol::Udp, any), ("lan", Protocol::Tcp, any)]
    );

    assert_eq!(c.transaction.t1(), Duration::from_millis(500));
    assert_eq!(c.transaction.t2(), Duration::from_secs(4));
    assert_eq!(c.transaction.t4(), Duration::from_secs(5));
    assert_eq!(c.transaction.max_transactions, 640_000);
    assert_eq!(c.transaction.trying_after(), Duration::from_millis(200));

    assert_eq!(c.transport.udp_mtu, 1300);
    assert_eq!(
        c.transport.crlf_keepalive_interval(),
        Some(Duration::from_secs(120))
    );
    assert_eq!(c.transport.socket_recv_buffer_bytes, None);

    assert!(c.registrar.enabled);
    assert!(c.registrar.domains.is_empty());
    assert_eq!(
        (
            c.registrar.min_expires,
            c.registrar.max_expires,
            c.registrar.default_expires
        ),
        (60, 3600, 3600)
    );

    assert!(c.proxy.record_route);
    assert_eq!(c.proxy.invite_timeout(), Duration::from_secs(180));

    assert_eq!(c.zone.len(), 1);
    assert!(c.problems().is_empty(), "{:?}", c.problems());
}

#[test]
fn default_zone_is_the_local_networks() {
    let c = Config::default();
    for local in [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.10.21",
        "::1",
        "fd12:3456::1",
    ] {
        assert_eq!(
            c.zone_of(local.parse().unwrap()).map(|z| z.name.as_str()),
            Some("lan"),
            "{local}"
        );
    }
    for public in [
        "198.51.100.1",
        "172.32.0.1",
        "8.8.8.8",
        "2001:db8::1",
        "fe80::1",
    ] {
        assert!(c.zone_of(public.parse().unwrap()).is_none(), "{public}");
    }
}

#[test]
fn a_partial_section_keeps_the_other_defaults() {
    let c = parse("[transaction]\nt1_ms = 250\n");
    assert_eq!(c.transaction.t1_ms, 250);
    assert_eq!(c.transaction.t2_ms, 4000);
    assert_eq!(c.registrar, Config::default().registrar);
}

#[test]
fn listeners_replace_the_defaults_and_default_to_lan_udp() {
    let c = parse("[[listen]]\naddress = \"192.168.10.1:5060\"\n");
    assert_eq!(c.listen.len(), 1);
    assert_eq!(c.listen[0].zone, "lan");
    assert_eq!(c.listen[0].transport, Protocol::Udp);
    assert_eq!(c.zone, Config::default().zone, "zones keep their default");
}

#[test]
fn a_bare_address_is_a_one_address_network() {
    let c = parse("[[zone]]\nname = \"lan\"\nnetworks = [\"192.168.10.10\", \"2001:db8::5\"]\n");
    assert_eq!(c.zone[0].networks[0].to_string(), "192.168.10.10/32");
    assert_eq!(c.zone[0].networks[1].to_string(), "2001:db8::5/128");
}

#[test]
fn ipv6_listeners_and_zones() {
    let c = parse(
        "[[listen]]\naddress = \"[::]:5060\"\n[[listen]]\naddress = \"0.0.0.0:5060\"\n\
         [[zone]]\nname = \"lan\"\nnetworks = [\"fd00::/8\", \"192.168.0.0/16\"]\n",
    );
    assert_eq!(c.listen[0].address, "[::]:5060".parse().unwrap());
}

#[test]
fn overrides_replace_data_dir() {
    let o = Overrides {
        data_dir: Some(PathBuf::from("/tmp/sw-test")),
    };
    let c =
        Config::from_str_with("[general]\ndata_dir = \"/srv/sipwarden\"\n", "t.toml", &o).unwrap();
    assert_eq!(c.general.data_dir, Path::new("/tmp/sw-test"));
    let c = Config::from_str_with("", "t.toml", &o).unwrap();
    assert_eq!(c.general.data_dir, Path::new("/tmp/sw-test"));
}

#[test]
fn to_toml_round_trips() {
    for c in [
        Config::default(),
        parse("[general]\nserver_header = \"x\"\n[transport]\nsocket_recv_buffer_bytes = 65536\n"),
    ] {
        let text = c.to_toml();
        assert_eq!(parse(&text), c, "{text}");
    }
}
