//! The examples in CONFIG-policy.md are real: the error example gives exactly the errors shown,
//! and the example configuration loads.

use policy::load::from_toml;

const DOC: &str = include_str!("../CONFIG-policy.md");

/// The fenced blocks that follow `marker` (the first one opening with `fence`).
fn block_after(marker: &str, fence: &str) -> String {
    let at = DOC.find(marker).expect("marker in the doc");
    let rest = &DOC[at..];
    let open = rest.find(fence).expect("block") + fence.len();
    let rest = &rest[open..];
    let rest = rest.strip_prefix('\n').unwrap_or(rest);
    let close = rest.find("```").expect("closing fence");
    rest[..close].to_owned()
}

#[test]
fn error_example_matches() {
    let file = block_after("### Errors", "```toml");
    let expected = block_after("gives:", "```");
    let errors = from_toml(&file, "sbc.toml", Some(&["lan", "wan"])).unwrap_err();
    let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let got = got.join("\n") + "\n";
    assert_eq!(got, expected);
}

#[test]
fn example_configuration_loads() {
    let text = include_str!("../examples/edge.toml");
    from_toml(text, "edge.toml", Some(&["lan", "wan"])).unwrap();
}
