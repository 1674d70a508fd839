//! No input makes the loader panic: mutated versions of the examples must load or fail with
//! located errors.

use std::path::Path;

use config::{Config, Overrides};

/// A small deterministic generator (no dependency needed for this).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % below.max(1)
    }
}

#[test]
fn mutated_examples_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let pieces = [
        "[",
        "]",
        "[[",
        "]]",
        "\"",
        "'",
        "=",
        "\n",
        ",",
        "{",
        "}",
        "#",
        ".",
        "-1",
        "99999999999",
        "0.0.0.0:0",
        "::",
        "/33",
        "zone",
        "listen",
        "lan",
        "x = 1\n",
        "[[zone]]\n",
        "\\",
        "\u{e9}",
        "\r\n",
        "\t",
        "networks = [\"a\"]\n",
        "1e9",
        "true",
        "[listen]\n",
    ];
    let mut rng = Lcg(0x5eed);
    for name in ["minimal.toml", "proxy.toml"] {
        let original = std::fs::read_to_string(dir.join(name)).unwrap();
        for _ in 0..1500 {
            let mut text = original.clone();
            for _ in 0..1 + rng.next(4) {
                let mut at = rng.next(text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                if rng.next(2) == 0 {
                    text.insert_str(at, pieces[rng.next(pieces.len())]);
                } else {
                    let mut end = (at + 1 + rng.next(12)).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(at..end, "");
                }
            }
            if let Err(errors) = Config::from_str_with(&text, name, &Overrides::none()) {
                let lines = text.lines().count().max(1);
                for e in errors.errors() {
                    let line = e.line.expect("a line");
                    assert!(line >= 1 && line <= lines + 1, "{e} in:\n{text}");
                    assert!(!e.field.is_empty() && !e.problem.is_empty(), "{e}");
                }
            }
        }
    }
}
