//! What a SIGHUP can apply.

use config::{Config, Overrides, ReloadDiff};

fn parse(text: &str) -> Config {
    Config::from_str_with(text, "t.toml", &Overrides::none()).unwrap_or_else(|e| panic!("{e}"))
}

const BASE: &str = "\
[general]
log_level = \"info\"

[[listen]]
address = \"192.168.10.1:5060\"

[[zone]]
name = \"lan\"
networks = [\"192.168.10.0/24\"]

[[zone]]
name = \"wan\"
networks = [\"198.51.100.0/24\"]
";

#[test]
fn nothing_changed() {
    let d = Config::diff_reloadable(&parse(BASE), &parse(BASE));
    assert!(d.is_empty());
    assert_eq!(d, ReloadDiff::default());
}

#[test]
fn reloadable_changes() {
    let new = format!(
        "{}\n[transaction]\nt1_ms = 250\n[registrar]\nmin_expires = 120\n[transport]\nudp_mtu = 1400\n[proxy]\nmax_forks = 2\n",
        BASE.replace("\"info\"", "\"debug\"").replace("198.51.100.0/24", "198.51.100.0/25")
    );
    let d = Config::diff_reloadable(&parse(BASE), &parse(&new));
    assert_eq!(
        d.reloadable,
        [
            "general.log_level",
            "transaction.t1_ms",
            "registrar.min_expires",
            "proxy.max_forks",
            "zone.wan.networks",
        ]
    );
    // The transport's settings are taken when its sockets and connections start.
    assert_eq!(d.restart_required, ["transport.udp_mtu"]);
}

#[test]
fn restart_changes() {
    let new = format!(
        "{}\n[[zone]]\nname = \"dmz\"\nnetworks = [\"172.16.0.0/12\"]\n[transport]\nsocket_recv_buffer_bytes = 1048576\n",
        BASE.replace("192.168.10.1:5060", "192.168.10.1:5070")
            .replace("[general]\n", "[general]\ndata_dir = \"/srv/sw\"\nnode_name = \"b\"\n")
    );
    let d = Config::diff_reloadable(&parse(BASE), &parse(&new));
    assert!(d.reloadable.is_empty(), "{:?}", d.reloadable);
    assert_eq!(
        d.restart_required,
        [
            "general.data_dir",
            "general.node_name",
            "listen",
            "transport.socket_recv_buffer_bytes",
            "zone.dmz"
        ]
    );
    // Removing a zone is a restart too; reordering zones is no change.
    let reordered = "[[listen]]\naddress = \"192.168.10.1:5060\"\n[[zone]]\nname = \"wan\"\nnetworks = [\"198.51.100.0/24\"]\n[[zone]]\nname = \"lan\"\nnetworks = [\"192.168.10.0/24\"]\n";
    assert!(Config::diff_reloadable(&parse(BASE), &parse(reordered)).is_empty());
    let without_wan = "[[listen]]\naddress = \"192.168.10.1:5060\"\n[[zone]]\nname = \"lan\"\nnetworks = [\"192.168.10.0/24\"]\n";
    assert_eq!(
        Config::diff_reloadable(&parse(BASE), &parse(without_wan)).restart_required,
        ["zone.wan"]
    );
}

#[test]
fn merge_takes_reloadable_fields_only() {
    let old = parse(BASE);
    let new = parse(&format!(
        "{}\n[transaction]\nt1_ms = 250\n",
        BASE.replace("192.168.10.1:5060", "192.168.10.1:5070")
            .replace("198.51.100.0/24", "198.51.100.0/25")
    ));
    let merged = old.with_reloadable_from(&new);
    assert_eq!(merged.transaction.t1_ms, 250);
    assert_eq!(merged.listen, old.listen, "listeners wait for a restart");
    assert_eq!(
        merged.zone("wan").unwrap().networks,
        new.zone("wan").unwrap().networks
    );
    let d = Config::diff_reloadable(&merged, &new);
    assert!(d.reloadable.is_empty());
    assert_eq!(d.restart_required, ["listen"]);
    assert!(merged.problems().is_empty());
}
