//! Broken configurations and the exact `FILE:LINE: field: problem` lines they produce.

use config::{Config, Overrides};

/// Every error line for `text`, loaded as `t.toml`.
fn errors(text: &str) -> Vec<String> {
    match Config::from_str_with(text, "t.toml", &Overrides::none()) {
        Ok(_) => panic!("expected errors, the configuration loaded:\n{text}"),
        Err(e) => e.to_lines(),
    }
}

#[track_caller]
fn check(text: &str, expected: &[&str]) {
    assert_eq!(errors(text), expected, "for:\n{text}");
}

#[test]
fn syntax_error() {
    check(
        "[general]\nlog_level = debug\n",
        &["t.toml:2: general.log_level: invalid TOML: string values must be quoted, expected literal string"],
    );
    // Where the parser cannot tell which field it was reading, the field is the table the line
    // is in, or `(syntax)` before any table.
    check(
        "[proxy]\nmax_forks = 2\n\nx = [1,\n",
        &["t.toml:4: proxy: invalid TOML: unclosed array, expected `]`"],
    );
    check(
        "x = [1,\n",
        &["t.toml:1: (syntax): invalid TOML: unclosed array, expected `]`"],
    );
}

#[test]
fn duplicate_key_is_a_syntax_error() {
    check(
        "[proxy]\nmax_forks = 2\nmax_forks = 3\n",
        &["t.toml:3: proxy.max_forks: invalid TOML: duplicate key"],
    );
}

#[test]
fn unknown_field_with_suggestion() {
    check(
        "[transaction]\nt1_ms = 400\nt2ms = 4000\n",
        &["t.toml:3: transaction.t2ms: unknown field, did you mean `t2_ms`?"],
    );
}

#[test]
fn unknown_field_without_suggestion() {
    check(
        "[proxy]\ncolour = \"blue\"\n",
        &["t.toml:2: proxy.colour: unknown field, expected one of `record_route`, `max_forks`, `invite_timeout_s`"],
    );
}

#[test]
fn unknown_table() {
    check(
        "[registar]\nenabled = false\n",
        &["t.toml:1: registar: unknown table, did you mean `registrar`?"],
    );
}

#[test]
fn wrong_types() {
    check(
        "[proxy]\nrecord_route = \"yes\"\nmax_forks = -1\n\n[general]\nlog_level = \"loud\"\n",
        &[
            "t.toml:2: proxy.record_route: expected a boolean, found string \"yes\"",
            "t.toml:3: proxy.max_forks: expected an integer from 0 to 4294967295, found integer `-1`",
            "t.toml:6: general.log_level: unknown variant `loud`, expected one of `trace`, `debug`, `info`, `warn`, `error`",
        ],
    );
}

#[test]
fn table_of_the_wrong_kind() {
    check(
        "general = 5\n[listen]\naddress = \"0.0.0.0:5060\"\n",
        &[
            "t.toml:1: general: expected a table, written [general], found integer",
            "t.toml:2: listen: expected an array of tables, written [[listen]], found table",
        ],
    );
}

#[test]
fn bad_socket_addresses_in_an_array_of_tables() {
    let text = "\
[[listen]]
address = \"192.168.10.1:5060\"

[[listen]]
transport = \"tcp\"
address = \"192.168.10.1\"

[[listen]]
# a comment, so that the line numbers are not the obvious ones
transport = \"udp\"
address = \"[2001:db8::1]:0\"

[[listen]]
zone = \"lan\"
";
    check(
        text,
        &[
            "t.toml:6: listen[1].address: `192.168.10.1` is not an IP:PORT socket address (e.g. 192.168.10.1:5060 or [2001:db8::1]:5060)",
            "t.toml:11: listen[2].address: port 0 is not allowed; give the port to listen on (5060 is SIP's), got `[2001:db8::1]:0`",
            "t.toml:13: listen[3].address: missing; this field is required",
        ],
    );
}

#[test]
fn duplicate_and_overlapping_listeners() {
    let text = "\
[[listen]]
address = \"0.0.0.0:5060\"
[[listen]]
transport = \"tcp\"
address = \"0.0.0.0:5060\"
[[listen]]
transport = \"udp\"
address = \"0.0.0.0:5060\"
[[listen]]
address = \"127.0.0.1:5060\"
[[listen]]
address = \"127.0.0.1:5070\"
";
    check(
        text,
        &[
            "t.toml:8: listen[2].address: duplicate listener: listen[0] is also udp 0.0.0.0:5060",
            "t.toml:10: listen[3].address: udp 127.0.0.1:5060 overlaps listen[0] (udp 0.0.0.0:5060): a wildcard address already receives on every IPv4 address at port 5060; list each address instead",
        ],
    );
}

#[test]
fn listener_in_an_unknown_zone() {
    let text = "\
[[zone]]
name = \"lan\"
networks = [\"192.168.10.0/24\"]

[[listen]]
address = \"192.168.10.1:5060\"

[[listen]]
zone = \"wan\"
address = \"198.51.100.1:5060\"
";
    check(
        text,
        &["t.toml:9: listen[1].zone: zone `wan` is not defined; defined zones: lan"],
    );
    // A listener that names no zone is in `lan`; if that zone does not exist either, the error
    // points at the listener's header line.
    check(
        "[[zone]]\nname = \"wan\"\nnetworks = [\"0.0.0.0/1\"]\n[[listen]]\naddress = \"198.51.100.1:5060\"\n",
        &["t.toml:4: listen[0].zone: zone `lan` (the default) is not defined; defined zones: wan"],
    );
    check(
        "[[zone]]\nname = \"wan\"\nnetworks = [\"198.51.100.0/24\"]\n",
        &["t.toml:1: zone: no zone is named `lan`, which the default listeners (used because the file has no [[listen]]) belong to; add [[listen]] entries or a zone `lan`"],
    );
}

#[test]
fn expires_out_of_order() {
    check(
        "[registrar]\nmin_expires = 4000\n",
        &["t.toml:2: registrar.min_expires: must not be greater than max_expires (3600), got 4000"],
    );
    check(
        "[registrar]\nmin_expires = 120\nmax_expires = 600\n# default_expires stays 3600\n",
        &["t.toml:1: registrar.default_expires: must be from min_expires (120) to max_expires (600), got 3600 (the default)"],
    );
}

#[test]
fn timers_out_of_range() {
    let text = "\
[transaction]
t1_ms = 5
t4_ms = 100000
trying_after_ms = 60000
[proxy]
invite_timeout_s = 0
";
    check(
        text,
        &[
            "t.toml:2: transaction.t1_ms: must be from 10 to 10000, got 5",
            "t.toml:3: transaction.t4_ms: must be from 100 to 60000, got 100000",
            "t.toml:4: transaction.trying_after_ms: must be from 0 to 5000, got 60000",
            "t.toml:6: proxy.invite_timeout_s: must be from 1 to 3600, got 0",
        ],
    );
    check(
        "[transaction]\nt1_ms = 2000\nt2_ms = 1000\n",
        &["t.toml:3: transaction.t2_ms: must not be less than t1_ms (2000), got 1000"],
    );
}

#[test]
fn invalid_and_overlapping_networks() {
    let text = "\
[[zone]]
name = \"lan\"
networks = [
    \"192.168.10.0/24\",
    \"10.0.0.1/8\",
    \"192.168.10.128/25\",
]

[[zone]]
name = \"dmz\"
networks = [\"172.16.0.0/12\", \"10.20.0.0/16\"]

[[zone]]
name = \"lan\"
networks = []
";
    check(
        text,
        &[
            "t.toml:5: zone[0].networks[1]: `10.0.0.1/8` has host bits set; the network is `10.0.0.0/8`",
            "t.toml:6: zone[0].networks[2]: `192.168.10.128/25` overlaps `192.168.10.0/24` (zone[0].networks[0]); a network may belong to one zone only, once",
            "t.toml:14: zone[2].name: duplicate zone name `lan`, also zone[0]",
            "t.toml:15: zone[2].networks: a zone needs at least one network",
        ],
    );
    check(
        "[[zone]]\nname = \"lan\"\nnetworks = [\"10.0.0.0/8\", \"10.0.0.0/33\", 7]\n[[zone]]\nname = \"wan\"\nnetworks = [\"10.0.0.0/8\", \"10.9.0.0/16\"]\n",
        &[
            "t.toml:3: zone[0].networks[1]: `10.0.0.0/33` is not a network in CIDR notation (e.g. 192.168.10.0/24 or fd00::/8)",
            "t.toml:3: zone[0].networks[2]: expected a network in CIDR notation, found integer `7`",
            "t.toml:6: zone[1].networks[0]: `10.0.0.0/8` overlaps `10.0.0.0/8` (zone[0].networks[0]); a network may belong to one zone only (a more specific one may sit inside another zone's)",
            "t.toml:6: zone[1].networks[1]: `10.9.0.0/16` overlaps `10.0.0.0/8` (zone[1].networks[0]); a network may belong to one zone only, once",
        ],
    );
}

#[test]
fn several_errors_at_once_in_line_order() {
    let text = "\
[general]
data_dir = \"state\"
log_level = \"verbose\"
node_name = \"my node\"

[[listen]]
transport = \"sctp\"
address = \"0.0.0.0:5060\"

[[listen]]
address = \"0.0.0.0:99999\"
zone = \"lan\"
colour = \"red\"

[transaction]
t1_ms = \"fast\"
t2_ms = 4000

[transport]
max_connections = 10
max_connections_per_source = 100

[registrar]
domains = [\"corp.example\", \"CORP.example\", \"2001:db8::1\", \"bad_host\"]
min_expires = 7200
";
    check(
        text,
        &[
            "t.toml:3: general.log_level: unknown variant `verbose`, expected one of `trace`, `debug`, `info`, `warn`, `error`",
            "t.toml:7: listen[0].transport: unknown variant `sctp`, expected one of `udp`, `tcp`, `tls`",
            "t.toml:11: listen[1].address: `0.0.0.0:99999` is not an IP:PORT socket address (e.g. 192.168.10.1:5060 or [2001:db8::1]:5060)",
            "t.toml:13: listen[1].colour: unknown field, expected one of `zone`, `transport`, `address`",
            "t.toml:16: transaction.t1_ms: expected an integer from 0 to 4294967295, found string \"fast\"",
            "t.toml:21: transport.max_connections_per_source: must not be more than max_connections (10), got 100",
            "t.toml:24: registrar.domains[1]: duplicate domain `CORP.example`, also registrar.domains[0]",
            "t.toml:24: registrar.domains[2]: write IPv6 addresses in brackets: `[2001:db8::1]`",
            "t.toml:24: registrar.domains[3]: `bad_host` is not a host name or IP address (e.g. example.com or 192.168.10.1)",
            "t.toml:25: registrar.min_expires: must not be greater than max_expires (3600), got 7200",
        ],
    );
}

#[test]
fn general_fields() {
    check(
        "[general]\ndata_dir = \"relative/dir\"\nnode_name = \"\"\nserver_header = \"a\\r\\nInjected: 1\"\n",
        &[
            "t.toml:2: general.data_dir: must be an absolute path, got `relative/dir`",
            "t.toml:3: general.node_name: must not be empty",
            "t.toml:4: general.server_header: must not contain control characters (such as line breaks or tabs)",
        ],
    );
}

#[test]
fn transport_fields() {
    check(
        "[transport]\nudp_mtu = 100\ncrlf_keepalive_interval_s = 30\ncrlf_keepalive_timeout_s = 30\nsocket_recv_buffer_bytes = 10\n",
        &[
            "t.toml:2: transport.udp_mtu: must be from 576 to 65507, got 100",
            "t.toml:4: transport.crlf_keepalive_timeout_s: must be less than crlf_keepalive_interval_s (30), got 30",
            "t.toml:5: transport.socket_recv_buffer_bytes: must be from 4096 to 268435456, got 10",
        ],
    );
}

#[test]
fn empty_listener_list() {
    check(
        "listen = []\n",
        &["t.toml:1: listen: at least one listener is required"],
    );
}

#[test]
fn unreadable_file() {
    let e = Config::from_file_with("/nonexistent/sipwarden.toml", &Overrides::none()).unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(e.errors()[0].line, None);
    assert_eq!(
        e.to_string(),
        "/nonexistent/sipwarden.toml: cannot read the file: No such file or directory (os error 2)"
    );
}

#[test]
fn error_fields_are_structured() {
    let e = Config::from_str_with(
        "[proxy]\n\nmax_forks = 0\n",
        "dir/sbc.toml",
        &Overrides::none(),
    )
    .unwrap_err();
    let first = &e.errors()[0];
    assert_eq!(first.file, "dir/sbc.toml");
    assert_eq!(first.line, Some(3));
    assert_eq!(first.field, "proxy.max_forks");
    assert_eq!(first.problem, "must be from 1 to 64, got 0");
    assert_eq!(
        first.to_string(),
        "dir/sbc.toml:3: proxy.max_forks: must be from 1 to 64, got 0"
    );
}

#[test]
fn contact_routing_values() {
    check(
        "[registrar]\ncontact_routing = \"nat\"\n",
        &["t.toml:2: registrar.contact_routing: unknown variant `nat`, expected one of `auto`, `contact`, `source`"],
    );
    for (v, want) in [
        ("auto", config::ContactRouting::Auto),
        ("contact", config::ContactRouting::Contact),
        ("source", config::ContactRouting::Source),
    ] {
        let c = Config::from_str_with(
            &format!("[registrar]\ncontact_routing = \"{v}\"\n"),
            "t.toml",
            &Overrides::none(),
        )
        .unwrap();
        assert_eq!(c.registrar.contact_routing, want);
        assert_eq!(want.as_str(), v);
    }
}

#[test]
fn nested_zones_most_specific_wins() {
    let text = "\
[[zone]]
name = \"wan\"
networks = [\"0.0.0.0/0\", \"::/0\"]

[[zone]]
name = \"lan\"
networks = [\"192.168.10.0/24\"]
next_hop = \"sip:192.168.10.10:5060\"
";
    let c = config::Config::from_str_with(text, "t.toml", &config::Overrides::none()).unwrap();
    let zone = |ip: &str| c.zone_of(ip.parse().unwrap()).map(|z| z.name.as_str());
    assert_eq!(zone("192.168.10.10"), Some("lan"));
    assert_eq!(zone("::ffff:192.168.10.10"), Some("lan"));
    assert_eq!(zone("192.168.11.1"), Some("wan"));
    assert_eq!(zone("203.0.113.10"), Some("wan"));
    assert_eq!(zone("2001:db8::1"), Some("wan"));
}

#[test]
fn trunk_and_next_hop_errors() {
    let text = "\
[[zone]]
name = \"lan\"
networks = [\"192.168.10.0/24\"]
next_hop = \"sip:198.51.100.9\"

[[zone]]
name = \"wan\"
networks = [\"0.0.0.0/0\"]
next_hop = \"192.168.10.10:5060\"

[[trunk]]
name = \"itsp\"
zone = \"wan\"
address = \"itsp.example.net:5060\"
from_zone = \"lna\"
match = [\"+49\", \"bad domain\"]
sources = [\"203.0.113.1/24\"]

[[trunk]]
name = \"itsp\"
zone = \"wan\"
address = \"192.168.10.77\"
from_zone = \"wan\"
transport = \"sctp\"
refer = \"maybe\"
";
    check(
        text,
        &[
            "t.toml:4: zone[0].next_hop: `198.51.100.9` belongs to zone `wan`, not to zone `lan`: a zone's next hop must be reached in it",
            "t.toml:9: zone[1].next_hop: `192.168.10.10` belongs to zone `lan`, not to zone `wan`: a zone's next hop must be reached in it",
            "t.toml:14: trunk[0].address: `itsp.example.net:5060` is not an IP address with an optional port; host names are not resolved here (e.g. `203.0.113.10:5060` or `sip:203.0.113.10:5060;transport=tcp`)",
            "t.toml:15: trunk[0].from_zone: unknown zone `lna`; the zones are `lan`, `wan`",
            "t.toml:16: trunk[0].match[1]: `bad domain` is neither a number prefix (digits, `+`, `*`, `#`: `+49`, `00`) nor a domain (`example.com`, `*.example.com`)",
            "t.toml:17: trunk[0].sources[0]: `203.0.113.1/24` has host bits set; the network is `203.0.113.0/24`",
            "t.toml:24: trunk[1].transport: unknown variant `sctp`, expected one of `udp`, `tcp`, `tls`",
            "t.toml:25: trunk[1].refer: unknown variant `maybe`, expected `local` or `passthrough`",
        ],
    );
    // Once the types are right, the rules between fields.
    let text = text
        .replace("transport = \"sctp\"\n", "")
        .replace("refer = \"maybe\"\n", "");
    check(
        &text,
        &[
            "t.toml:4: zone[0].next_hop: `198.51.100.9` belongs to zone `wan`, not to zone `lan`: a zone's next hop must be reached in it",
            "t.toml:9: zone[1].next_hop: `192.168.10.10` belongs to zone `lan`, not to zone `wan`: a zone's next hop must be reached in it",
            "t.toml:14: trunk[0].address: `itsp.example.net:5060` is not an IP address with an optional port; host names are not resolved here (e.g. `203.0.113.10:5060` or `sip:203.0.113.10:5060;transport=tcp`)",
            "t.toml:15: trunk[0].from_zone: unknown zone `lna`; the zones are `lan`, `wan`",
            "t.toml:16: trunk[0].match[1]: `bad domain` is neither a number prefix (digits, `+`, `*`, `#`: `+49`, `00`) nor a domain (`example.com`, `*.example.com`)",
            "t.toml:17: trunk[0].sources[0]: `203.0.113.1/24` has host bits set; the network is `203.0.113.0/24`",
            "t.toml:20: trunk[1].name: duplicate trunk name `itsp`",
            "t.toml:22: trunk[1].address: `192.168.10.77` is not in zone `wan`'s networks (it is in zone `lan`)",
            "t.toml:23: trunk[1].from_zone: must differ from `zone` (`wan`): calls to a trunk cross from one zone to another",
        ],
    );
}

#[test]
fn registrar_relay_fields() {
    check(
        "[registrar]\nmode = \"relay\"\n",
        &["t.toml:2: registrar.mode: \"relay\" needs registrar.upstream (the upstream registrar, e.g. \"sip:192.168.10.10:5060\")"],
    );
    check(
        "[registrar]\nmode = \"relay\"\nupstream = \"sip:pbx.example\"\n",
        &["t.toml:3: registrar.upstream: `sip:pbx.example` must be sip:IP or sip:IP:PORT (an IP address: the upstream is not looked up in DNS)"],
    );
    check(
        "[registrar]\nupstream = \"sip:192.168.10.10;foo\"\nupstream_expires = 30\nnat_expires = 5\nnat_keepalive_s = 1\nnat_keepalive_failures = 0\n",
        &[
            "t.toml:2: registrar.upstream: unknown URI parameter `foo` in `sip:192.168.10.10;foo`",
            "t.toml:3: registrar.upstream_expires: must be from 60 to 86400, got 30",
            "t.toml:4: registrar.nat_expires: must be from 10 to 3600, got 5",
            "t.toml:5: registrar.nat_keepalive_s: must be from 5 to 3600, got 1",
            "t.toml:6: registrar.nat_keepalive_failures: must be from 1 to 100, got 0",
        ],
    );
    check(
        "[registrar]\nmode = \"proxy\"\n",
        &["t.toml:2: registrar.mode: unknown variant `proxy`, expected `local` or `relay`"],
    );
    check(
        "[registrar]\nnat_keepalive_method = \"stun\"\n",
        &["t.toml:2: registrar.nat_keepalive_method: unknown variant `stun`, expected `options` or `crlf`"],
    );
}

#[test]
fn registrar_relay_loads() {
    let c = Config::from_str_with(
        "[registrar]\nmode = \"relay\"\nupstream = \"sip:192.168.10.10:5060;transport=tcp\"\nnat_expires = 25\nnat_keepalive_s = 20\nnat_keepalive_method = \"crlf\"\n",
        "t.toml",
        &Overrides::none(),
    )
    .unwrap();
    assert_eq!(c.registrar.mode, config::RegistrarMode::Relay);
    assert_eq!(
        c.registrar.nat_keepalive_method,
        config::KeepaliveMethod::Crlf
    );
    assert_eq!(c.registrar.nat_expires, 25);
    assert_eq!(c.registrar.upstream_expires, 600);
}
