//! Where things are in the source text: byte offsets to lines, spans to dotted field paths and
//! back.
//!
//! The parsed document (`toml::de::DeTable`, every key and value with its byte span) is
//! flattened into a list of nodes, one per key or array element, each with its dotted path. A
//! span from a parse or deserialization error is turned into the path of the most specific node
//! containing it; a path from semantic validation is turned into the line of its node (or of the
//! nearest ancestor written in the file, when the field itself is a default).

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

struct Node {
    path: String,
    key: Option<Range<usize>>,
    value: Range<usize>,
    /// A `[table]` or `[[array]]` element: its value span is only the header line, and the keys
    /// written under the header belong to it without being inside that span.
    header: bool,
}

pub(crate) struct Locator<'s> {
    src: &'s str,
    line_starts: Vec<usize>,
    nodes: Vec<Node>,
}

impl<'s> Locator<'s> {
    pub(crate) fn new(src: &'s str, root: &DeTable<'_>) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(
            src.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        let mut loc = Locator {
            src,
            line_starts,
            nodes: Vec::new(),
        };
        loc.add_table("", root);
        loc
    }

    fn add_table(&mut self, prefix: &str, table: &DeTable<'_>) {
        for (key, value) in table.iter() {
            let path = join_key(prefix, key.get_ref());
            self.add_value(path, Some(key.span()), value);
        }
    }

    fn add_value(&mut self, path: String, key: Option<Range<usize>>, value: &Spanned<DeValue<'_>>) {
        let span = value.span();
        let header = matches!(value.get_ref(), DeValue::Table(_))
            && self.src.as_bytes().get(span.start) == Some(&b'[');
        self.nodes.push(Node {
            path: path.clone(),
            key,
            value: span,
            header,
        });
        match value.get_ref() {
            DeValue::Table(t) => self.add_table(&path, t),
            DeValue::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    self.add_value(format!("{path}[{i}]"), None, v);
                }
            }
            _ => {}
        }
    }

    /// The 1-based line of a byte offset.
    pub(crate) fn line(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    /// The dotted path of the most specific key or value containing `offset`; failing that, the
    /// `[table]` whose section `offset` lies in; failing that, the empty path (the document).
    pub(crate) fn path_at(&self, offset: usize) -> String {
        let mut best: Option<(usize, &Node)> = None;
        for node in &self.nodes {
            for range in node.key.iter().chain(std::iter::once(&node.value)) {
                if contains(range, offset) {
                    let len = range.end - range.start;
                    // On a tie the later node wins: children come after their parents.
                    if best.is_none_or(|(l, _)| len <= l) {
                        best = Some((len, node));
                    }
                }
            }
        }
        if let Some((_, node)) = best {
            return node.path.clone();
        }
        self.nodes
            .iter()
            .filter(|n| n.header && n.value.start <= offset)
            .max_by_key(|n| n.value.start)
            .map(|n| n.path.clone())
            .unwrap_or_default()
    }

    /// Whether this exact path is written in the file.
    pub(crate) fn has(&self, path: &str) -> bool {
        self.nodes.iter().any(|n| n.path == path)
    }

    /// The line of `path`'s key (or value, for array elements and table headers); for a path
    /// not in the file, the line of its nearest ancestor that is; line 1 if none is.
    pub(crate) fn line_of_path(&self, path: &str) -> usize {
        let mut p = path;
        loop {
            if let Some(node) = self.nodes.iter().find(|n| n.path == p) {
                let start = node.key.as_ref().map_or(node.value.start, |k| k.start);
                // A `[[listen]]` element's path names the header, whose span starts at `[`.
                let start = if node.header {
                    node.value.start.min(start)
                } else {
                    start
                };
                return self.line(start);
            }
            match parent(p) {
                Some(up) => p = up,
                None => return 1,
            }
        }
    }
}

fn contains(range: &Range<usize>, offset: usize) -> bool {
    if range.is_empty() {
        range.start == offset
    } else {
        range.start <= offset && offset < range.end
    }
}

/// `prefix.key`, with the key quoted when it is not a bare TOML key.
pub(crate) fn join_key(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

/// The path one level up: `a.b[2]` -> `a.b`, `a.b` -> `a`, `a` -> none.
pub(crate) fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    // Quoted keys may hold `.` and `[`; scan from the end outside quotes.
    let bytes = path.as_bytes();
    let mut in_quotes = false;
    for i in (0..bytes.len()).rev() {
        match bytes[i] {
            b'"' if i == 0 || bytes[i - 1] != b'\\' => in_quotes = !in_quotes,
            b'.' | b'[' if !in_quotes => return Some(&path[..i]),
            _ => {}
        }
    }
    Some("")
}

/// Whether `path` is `table` or lies under it.
pub(crate) fn is_under(path: &str, table: &str) -> bool {
    match path.strip_prefix(table) {
        Some(rest) => rest.is_empty() || rest.starts_with('.') || rest.starts_with('['),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents() {
        assert_eq!(parent("listen[1].address"), Some("listen[1]"));
        assert_eq!(parent("listen[1]"), Some("listen"));
        assert_eq!(parent("listen"), Some(""));
        assert_eq!(parent(""), None);
        assert_eq!(parent(r#"a."b.c""#), Some("a"));
    }

    #[test]
    fn under() {
        assert!(is_under("listen[1].zone", "listen[1]"));
        assert!(is_under("listen[1]", "listen"));
        assert!(!is_under("listen[10]", "listen[1]"));
        assert!(!is_under("registrar2", "registrar"));
    }

    #[test]
    fn keys() {
        assert_eq!(join_key("", "a"), "a");
        assert_eq!(join_key("a", "b-c_1"), "a.b-c_1");
        assert_eq!(join_key("a", "b.c"), r#"a."b.c""#);
    }

    #[test]
    fn lines_and_paths() {
        let src = "[general]\nlog_level = \"info\"\n\n[[listen]]\naddress = \"1.2.3.4:5\"\n\n[[listen]]\nzone = \"x\"\n";
        let (root, errors) = DeTable::parse_recoverable(src);
        assert!(errors.is_empty());
        let loc = Locator::new(src, root.get_ref());
        assert_eq!(loc.line(0), 1);
        assert_eq!(loc.line(9), 1);
        assert_eq!(loc.line(10), 2);
        assert_eq!(loc.line_of_path("general.log_level"), 2);
        assert_eq!(loc.line_of_path("listen[0].address"), 5);
        assert_eq!(loc.line_of_path("listen[1]"), 7);
        assert_eq!(loc.line_of_path("listen[1].address"), 7);
        assert_eq!(loc.line_of_path("listen[1].zone"), 8);
        assert_eq!(loc.line_of_path("registrar.min_expires"), 1);
        assert_eq!(loc.path_at(src.find("zone").unwrap()), "listen[1].zone");
        assert_eq!(loc.path_at(src.find("1.2.3").unwrap()), "listen[0].address");
    }
}
