//! docs/CONFIG.md stays true: it documents every field in its table's section, and its error
//! example prints what it says.

use std::path::Path;

use config::{Config, Overrides};

fn config_md() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/CONFIG.md");
    std::fs::read_to_string(path).expect("docs/CONFIG.md exists")
}

/// The section of the page under the heading that names `table` (`[general]` or `[[listen]]`).
fn section<'d>(doc: &'d str, table: &str) -> &'d str {
    let start = ["## `[", "## `[["]
        .iter()
        .find_map(|open| doc.find(&format!("{open}{table}]")))
        .unwrap_or_else(|| panic!("no section for {table}"));
    let rest = &doc[start + 3..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

#[test]
fn every_field_is_documented_in_its_section() {
    let mut c = Config::default();
    // Optional fields appear only when set.
    c.general.server_header = Some("x".into());
    c.transport.socket_recv_buffer_bytes = Some(65536);
    c.transport.socket_send_buffer_bytes = Some(65536);
    c.zone[0].next_hop = Some("sip:192.168.10.10".into());
    c.trunk.push(config::TrunkConfig {
        name: "itsp".into(),
        zone: "lan".into(),
        address: "192.168.1.1".into(),
        transport: Default::default(),
        from_zone: "lan".into(),
        matches: vec!["+49".into()],
        refer: Default::default(),
        sources: vec!["192.168.1.1".into()],
    });
    let value: toml::Table = toml::from_str(&c.to_toml()).unwrap();
    let doc = config_md();
    let mut count = 0;
    for (table, v) in &value {
        let fields = match v {
            toml::Value::Table(t) => t.clone(),
            toml::Value::Array(a) => a[0].as_table().unwrap().clone(),
            other => panic!("{table} is {other:?}"),
        };
        let text = section(&doc, table);
        for field in fields.keys() {
            assert!(
                text.contains(&format!("\n| `{field}` |")),
                "docs/CONFIG.md does not document {table}.{field} in its section"
            );
            count += 1;
        }
    }
    assert!(count >= 30, "only {count} fields found");
}

#[test]
fn the_error_example_is_real() {
    let doc = config_md();
    let errors = &doc[doc.find("## Errors").unwrap()..];
    let toml_start = errors.find("```toml\n").unwrap() + "```toml\n".len();
    let toml_len = errors[toml_start..].find("```").unwrap();
    let input = &errors[toml_start..toml_start + toml_len];
    let after = &errors[toml_start + toml_len + 3..];
    let out_start = after.find("```\n").unwrap() + 4;
    let out_len = after[out_start..].find("```").unwrap();
    let expected = after[out_start..out_start + out_len].trim_end();

    let got = Config::from_str_with(input, "sbc.toml", &Overrides::none()).unwrap_err();
    assert_eq!(got.to_string(), expected);
}
