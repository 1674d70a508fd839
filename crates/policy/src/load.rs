//! Reading the `[policy]` section from TOML text, with every error located as
//! `FILE:LINE: field: problem`, for tools that load a policy without the configuration crate
//! (`sipwarden explain` until `[policy]` is part of the main configuration).

use std::fmt;
use std::ops::Range;

use serde::de::{Deserialize, IntoDeserializer};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::compile::{FieldError, Policy};
use crate::config::PolicyConfig;

/// One located problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file name as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// Dotted path (`policy.rule[3].from`), `(syntax)` for a TOML syntax error outside any
    /// table.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file, self.line, self.field, self.problem
        )
    }
}

impl std::error::Error for LoadError {}

/// Reads `[policy]` from a whole configuration file's text (other tables are ignored; a file
/// without `[policy]` gives the defaults), checks it against `zones` when given, and compiles
/// it.
pub fn from_toml(text: &str, file: &str, zones: Option<&[&str]>) -> Result<Policy, Vec<LoadError>> {
    let (config, loc) = parse(text, file)?;
    Policy::compile(&config, zones).map_err(|errors| {
        errors
            .into_iter()
            .map(|FieldError { field, problem }| LoadError {
                file: file.to_owned(),
                line: loc.line_of_path(&field),
                field,
                problem,
            })
            .collect()
    })
}

/// The `[policy]` tables of a file, checked for shape only.
pub fn config_from_toml(text: &str, file: &str) -> Result<PolicyConfig, Vec<LoadError>> {
    parse(text, file).map(|(c, _)| c)
}

/// The same TOML document without its `[policy]` section (comments and layout are lost), for a
/// configuration loader that does not know that section yet. `None` when the text is not TOML
/// (the loader reports that itself).
pub fn without_policy(text: &str) -> Option<String> {
    let mut table: toml::Table = text.parse().ok()?;
    table.remove("policy");
    toml::to_string(&table).ok()
}

fn parse<'t>(text: &'t str, file: &str) -> Result<(PolicyConfig, Locator<'t>), Vec<LoadError>> {
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            let start = e.span().map_or(0, |s| s.start);
            return Err(vec![LoadError {
                file: file.to_owned(),
                line: line_at(text, start),
                field: "(syntax)".to_owned(),
                problem: format!("invalid TOML: {}", e.message().trim()),
            }]);
        }
    };
    let loc = Locator::new(text, root.get_ref());
    let Some(value) = root
        .get_ref()
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == "policy")
        .map(|(_, v)| v)
    else {
        return Ok((PolicyConfig::default(), loc));
    };
    let value: &Spanned<DeValue<'_>> = value;
    match PolicyConfig::deserialize(value.clone().into_deserializer()) {
        Ok(c) => Ok((c, loc)),
        Err(e) => {
            let start = e.span().map_or(value.span().start, |s| s.start);
            let mut field = loc.path_at(start);
            let message = e.message().trim().to_owned();
            if let Some(name) = message
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next())
            {
                field = format!("{field}.{name}");
            }
            Err(vec![LoadError {
                file: file.to_owned(),
                line: line_at(text, start),
                field: if field.is_empty() {
                    "policy".to_owned()
                } else {
                    field
                },
                problem: message,
            }])
        }
    }
}

fn line_at(text: &str, offset: usize) -> usize {
    1 + text
        .as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
}

struct Node {
    path: String,
    key: Option<Range<usize>>,
    value: Range<usize>,
}

/// Dotted paths to spans and back, over the parsed document.
struct Locator<'s> {
    src: &'s str,
    nodes: Vec<Node>,
}

impl<'s> Locator<'s> {
    fn new(src: &'s str, root: &DeTable<'_>) -> Self {
        let mut loc = Locator {
            src,
            nodes: Vec::new(),
        };
        loc.table("", root);
        loc
    }

    fn table(&mut self, prefix: &str, t: &DeTable<'_>) {
        for (k, v) in t.iter() {
            let path = if prefix.is_empty() {
                k.get_ref().to_string()
            } else {
                format!("{prefix}.{}", k.get_ref())
            };
            self.value(path, Some(k.span()), v);
        }
    }

    fn value(&mut self, path: String, key: Option<Range<usize>>, v: &Spanned<DeValue<'_>>) {
        self.nodes.push(Node {
            path: path.clone(),
            key,
            value: v.span(),
        });
        match v.get_ref() {
            DeValue::Table(t) => self.table(&path, t),
            DeValue::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    self.value(format!("{path}[{i}]"), None, item);
                }
            }
            _ => {}
        }
    }

    /// The most specific path whose key or value holds `offset`.
    fn path_at(&self, offset: usize) -> String {
        let mut best: Option<(usize, &str)> = None;
        for n in &self.nodes {
            for r in n.key.iter().chain(std::iter::once(&n.value)) {
                let inside = if r.is_empty() {
                    r.start == offset
                } else {
                    r.contains(&offset)
                };
                if inside && best.is_none_or(|(len, _)| r.len() <= len) {
                    best = Some((r.len(), &n.path));
                }
            }
        }
        best.map(|(_, p)| p.to_owned()).unwrap_or_default()
    }

    /// The line of `path`, or of its nearest ancestor written in the file.
    fn line_of_path(&self, path: &str) -> usize {
        let mut p = path;
        loop {
            if let Some(n) = self.nodes.iter().find(|n| n.path == p) {
                let at = n.key.as_ref().map_or(n.value.start, |k| k.start);
                return line_at(self.src, at);
            }
            let cut = match (p.rfind('.'), p.rfind('[')) {
                (Some(a), Some(b)) => a.max(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => return 1,
            };
            p = p.get(..cut).unwrap_or("");
            if p.is_empty() {
                return 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_located() {
        let text = "\
[general]
log_level = \"info\"

[[policy.zone]]
name = \"wan\"
methods.allow = [\"INVITE\", \"invite\"]

[[policy.rule]]
from_regex = \"(unclosed\"
action = \"refuse\"
";
        let errors = from_toml(text, "sbc.toml", None).unwrap_err();
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert_eq!(
            lines[0],
            "sbc.toml:6: policy.zone[0].methods.allow[1]: method names are case-sensitive; did you mean `INVITE`?"
        );
        assert!(
            lines[1].starts_with("sbc.toml:9: policy.rule[0].from_regex: invalid regex: "),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn shape_errors_are_located() {
        let text =
            "[policy]\ntrusted = []\n\n[[policy.rule]]\nfrom = \"*@x\"\naction = \"reject\"\n";
        let errors = from_toml(text, "f.toml", None).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 6);
        assert_eq!(errors[0].field, "policy.rule[0].action");
        assert!(
            errors[0].problem.contains("unknown variant"),
            "{}",
            errors[0]
        );

        let text = "[[policy.rule]]\nfrom = \"*@x\"\n";
        let errors = from_toml(text, "f.toml", None).unwrap_err();
        assert_eq!(errors[0].field, "policy.rule[0].action", "{}", errors[0]);

        let errors = from_toml("[policy\n", "f.toml", None).unwrap_err();
        assert_eq!(errors[0].field, "(syntax)");
        assert_eq!(errors[0].line, 1);
    }

    #[test]
    fn policy_can_be_cut_out() {
        let text = "[general]\nnode_name = \"a\"\n[[policy.zone]]\nname = \"wan\"\n";
        let rest = without_policy(text).unwrap();
        assert!(!rest.contains("policy"), "{rest}");
        assert!(rest.contains("node_name = \"a\""), "{rest}");
        assert_eq!(without_policy("[x"), None);
    }

    #[test]
    fn no_policy_section_gives_defaults() {
        let p = from_toml("[general]\nnode_name = \"a\"\n", "f.toml", Some(&["lan"])).unwrap();
        assert!(p.trusted().is_empty());
    }

    #[test]
    fn unknown_zones_are_reported_on_their_line() {
        let text = "[[policy.zone]]\nname = \"wan\"\n";
        let errors = from_toml(text, "f.toml", Some(&["lan"])).unwrap_err();
        assert_eq!(
            errors[0].to_string(),
            "f.toml:2: policy.zone[0].name: unknown zone `wan`; the zones are `lan`"
        );
    }
}
