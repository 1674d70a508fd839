//! From text to a validated [`Config`], collecting every error.
//!
//! 1. The text is parsed into a spanned tree (`toml::de::DeTable`). Syntax errors end the load
//!    here: a tree rebuilt around broken syntax would produce misleading follow-up errors.
//! 2. Each top-level table, and each element of an array of tables, is deserialized on its own,
//!    so an error in one does not hide errors in the others. When one fails, the offending key or
//!    array element is removed and the table is tried again, until it deserializes or nothing
//!    more can be removed: that finds every unknown field and wrong value in the table, not only
//!    the first.
//! 3. The result is validated as a whole (addresses, ranges, cross-references). Semantic errors
//!    inside a table that already had a deserialization error are not reported, since that table
//!    was checked with defaults standing in for its broken fields.

use serde::de::{DeserializeOwned, IntoDeserializer};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::{ConfigError, ConfigErrors};
use crate::locate::{is_under, join_key, Locator};
use crate::types::{
    default_listeners, default_zones, Config, GeneralConfig, ProxyConfig, RegistrarConfig,
    TransactionConfig, TransportConfig,
};
use crate::validate::{self, Input};
use crate::Overrides;

/// The top-level tables, in the order the documentation lists them.
pub(crate) const SECTIONS: &[&str] = &[
    "general",
    "listen",
    "transaction",
    "transport",
    "registrar",
    "proxy",
    "zone",
    "auth",
    "policy",
    "media",
    "b2bua",
    "tls",
    "trunk",
];

/// The most keys and array elements removed from one table while looking for further errors.
const MAX_RETRIES: usize = 256;

struct Ctx<'a> {
    file: &'a str,
    loc: Locator<'a>,
    errors: Vec<ConfigError>,
    /// Tables (paths) in which a deserialization error was found.
    broken: Vec<String>,
}

impl Ctx<'_> {
    fn push(&mut self, line: usize, field: String, problem: String) {
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line: Some(line),
            field,
            problem,
        });
    }
}

pub(crate) fn load(text: &str, file: &str, overrides: &Overrides) -> Result<Config, ConfigErrors> {
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    let mut ctx = Ctx {
        file,
        loc: Locator::new(text, root.get_ref()),
        errors: Vec::new(),
        broken: Vec::new(),
    };
    if !syntax_errors.is_empty() {
        for e in &syntax_errors {
            let span = e.span().unwrap_or(0..0);
            let (mut field, problem) = describe(ctx.loc.path_at(span.start), e.message());
            // A repeated key is not in the tree (the first one is): name it from the text.
            let key = text.get(span.clone()).unwrap_or_default();
            if problem == "duplicate key"
                && !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                && !field.ends_with(key)
            {
                field = join_key(&field, key);
            }
            let field = if field.is_empty() {
                "(syntax)".to_owned()
            } else {
                field
            };
            let line = ctx.loc.line(span.start);
            ctx.push(line, field, format!("invalid TOML: {problem}"));
        }
        return Err(ConfigErrors::new(ctx.errors));
    }

    let mut input = Input {
        config: Config {
            listen: Vec::new(),
            zone: Vec::new(),
            ..Config::default()
        },
        listen_index: Vec::new(),
        zone_index: Vec::new(),
        trunk_index: Vec::new(),
        listen_given: false,
        zone_given: false,
        listen_complete: true,
        zone_complete: true,
    };
    for (key, value) in root.get_ref().iter() {
        let name = key.get_ref().as_ref();
        match name {
            "general" => {
                if let Some(v) = table::<GeneralConfig>(&mut ctx, name, value) {
                    input.config.general = v;
                }
            }
            "transaction" => {
                if let Some(v) = table::<TransactionConfig>(&mut ctx, name, value) {
                    input.config.transaction = v;
                }
            }
            "transport" => {
                if let Some(v) = table::<TransportConfig>(&mut ctx, name, value) {
                    input.config.transport = v;
                }
            }
            "registrar" => {
                if let Some(v) = table::<RegistrarConfig>(&mut ctx, name, value) {
                    input.config.registrar = v;
                }
            }
            "proxy" => {
                if let Some(v) = table::<ProxyConfig>(&mut ctx, name, value) {
                    input.config.proxy = v;
                }
            }
            "auth" => {
                if let Some(v) = table(&mut ctx, name, value) {
                    input.config.auth = v;
                }
            }
            "policy" => {
                if let Some(v) = table(&mut ctx, name, value) {
                    input.config.policy = v;
                }
            }
            "media" => {
                if let Some(v) = table::<crate::media::MediaConfig>(&mut ctx, name, value) {
                    input.config.media = v;
                }
            }
            "b2bua" => {
                if let Some(v) = table::<crate::media::B2buaConfig>(&mut ctx, name, value) {
                    input.config.b2bua = v;
                }
            }
            "tls" => {
                if let Some(v) = table::<crate::tls::TlsConfig>(&mut ctx, name, value) {
                    input.config.tls = v;
                }
            }
            "listen" => {
                input.listen_given = true;
                match array_of_tables(&mut ctx, name, value) {
                    Some((items, complete)) => {
                        input.listen_complete = complete;
                        (input.listen_index, input.config.listen) = items.into_iter().unzip();
                    }
                    None => input.listen_complete = false,
                }
            }
            "trunk" => {
                if let Some((items, _)) = array_of_tables(&mut ctx, name, value) {
                    (input.trunk_index, input.config.trunk) = items.into_iter().unzip();
                }
            }
            "zone" => {
                input.zone_given = true;
                match array_of_tables(&mut ctx, name, value) {
                    Some((items, complete)) => {
                        input.zone_complete = complete;
                        (input.zone_index, input.config.zone) = items.into_iter().unzip();
                    }
                    None => input.zone_complete = false,
                }
            }
            _ => {
                let line = ctx.loc.line(key.span().start);
                let problem = unknown("table", name, SECTIONS);
                ctx.push(line, join_key("", name), problem);
            }
        }
    }
    if !input.listen_given {
        input.config.listen = default_listeners();
        input.listen_index = (0..input.config.listen.len()).collect();
    }
    if !input.zone_given {
        input.config.zone = default_zones();
        input.zone_index = (0..input.config.zone.len()).collect();
    }

    let has = |path: &str| ctx.loc.has(path);
    let semantic = validate::validate(&input, &has);
    for (field, problem) in semantic {
        if ctx.broken.iter().any(|t| is_under(&field, t)) {
            continue;
        }
        let line = ctx.loc.line_of_path(&field);
        ctx.push(line, field, problem);
    }
    if !ctx.errors.is_empty() {
        return Err(ConfigErrors::new(ctx.errors));
    }
    let mut config = input.config;
    overrides.apply(&mut config);
    Ok(config)
}

/// Deserializes one `[table]`, reporting every error in it.
fn table<T: DeserializeOwned>(
    ctx: &mut Ctx<'_>,
    path: &str,
    value: &Spanned<DeValue<'_>>,
) -> Option<T> {
    if !matches!(value.get_ref(), DeValue::Table(_)) {
        let line = ctx.loc.line(value.span().start);
        let problem = format!(
            "expected a table, written [{path}], found {}",
            value.get_ref().type_str()
        );
        ctx.push(line, path.to_owned(), problem);
        ctx.broken.push(path.to_owned());
        return None;
    }
    let mut value = value.clone();
    // Fields removed after an error: their "missing field" on the next try is not news.
    let mut removed: Vec<String> = Vec::new();
    for _ in 0..MAX_RETRIES {
        match T::deserialize(value.clone().into_deserializer()) {
            Ok(v) => return Some(v),
            Err(e) => {
                if !ctx.broken.iter().any(|b| b == path) {
                    ctx.broken.push(path.to_owned());
                }
                let span = e.span().unwrap_or_else(|| value.span());
                let (field, problem) = describe(ctx.loc.path_at(span.start), e.message());
                if !removed.contains(&field) {
                    let line = ctx.loc.line(span.start);
                    ctx.push(line, field.clone(), problem);
                }
                if !remove_at(value.get_mut(), span.start) {
                    return None;
                }
                removed.push(field);
            }
        }
    }
    None
}

/// Deserializes a `[[table]]` array element by element. Returns each element that could be
/// deserialized with its index, and whether all could.
fn array_of_tables<T: DeserializeOwned>(
    ctx: &mut Ctx<'_>,
    path: &str,
    value: &Spanned<DeValue<'_>>,
) -> Option<(Vec<(usize, T)>, bool)> {
    let DeValue::Array(items) = value.get_ref() else {
        let line = ctx.loc.line(value.span().start);
        let problem = format!(
            "expected an array of tables, written [[{path}]], found {}",
            value.get_ref().type_str()
        );
        ctx.push(line, path.to_owned(), problem);
        ctx.broken.push(path.to_owned());
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    let mut complete = true;
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        match table::<T>(ctx, &item_path, item) {
            Some(v) => out.push((i, v)),
            None => complete = false,
        }
    }
    Some((out, complete))
}

/// Removes the key or array element at `offset` (the innermost one that can go), so that the
/// table can be deserialized again to look for further errors. False if nothing is there.
fn remove_at(value: &mut DeValue<'_>, offset: usize) -> bool {
    let within = |r: std::ops::Range<usize>| {
        if r.is_empty() {
            r.start == offset
        } else {
            r.contains(&offset)
        }
    };
    match value {
        DeValue::Table(t) => {
            let mut hit = None;
            for (k, v) in t.iter_mut() {
                if within(k.span()) {
                    hit = Some(k.clone());
                    break;
                }
                let holds = within(v.span());
                if (holds || matches!(v.get_ref(), DeValue::Table(_) | DeValue::Array(_)))
                    && remove_at(v.get_mut(), offset)
                {
                    return true;
                }
                if holds {
                    hit = Some(k.clone());
                    break;
                }
            }
            match hit {
                Some(k) => t.remove(&k).is_some(),
                None => false,
            }
        }
        DeValue::Array(a) => {
            let mut hit = None;
            for (i, v) in a.iter_mut().enumerate() {
                let holds = within(v.span());
                if (holds || matches!(v.get_ref(), DeValue::Table(_) | DeValue::Array(_)))
                    && remove_at(v.get_mut(), offset)
                {
                    return true;
                }
                if holds {
                    hit = Some(i);
                    break;
                }
            }
            match hit {
                Some(i) => {
                    let kept = std::mem::replace(a, toml::de::DeArray::new())
                        .into_iter()
                        .enumerate()
                        .filter(|&(j, _)| j != i)
                        .map(|(_, v)| v)
                        .collect();
                    *a = kept;
                    true
                }
                None => false,
            }
        }
        _ => false,
    }
}

/// Turns a parser or serde message about the value at `path` into the reported field and
/// problem, in our words.
fn describe(path: String, message: &str) -> (String, String) {
    let message = message.trim();
    if let Some(name) = between(message, "missing field `", "`") {
        return (
            join_key(&path, name),
            "missing; this field is required".to_owned(),
        );
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or_default();
        let expected = backticked(rest.get(name.len() + 1..).unwrap_or_default());
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        return (path, unknown("field", name, &expected));
    }
    let mut problem = message.to_owned();
    for (prefix, sep) in [
        ("invalid type: ", ", expected "),
        ("invalid value: ", ", expected "),
    ] {
        if let Some(rest) = problem.strip_prefix(prefix) {
            if let Some((found, expected)) = rest.split_once(sep) {
                problem = format!("expected {expected}, found {found}");
            }
            break;
        }
    }
    let problem = problem
        .replace("expected u32", "expected an integer from 0 to 4294967295")
        .replace(
            "expected u64",
            "expected an integer from 0 to 18446744073709551615",
        )
        .replace("expected a sequence", "expected an array");
    (path, problem)
}

/// The text between `open` and the next `close`.
fn between<'m>(message: &'m str, open: &str, close: &str) -> Option<&'m str> {
    let start = message.find(open)? + open.len();
    let len = message[start..].find(close)?;
    Some(&message[start..start + len])
}

/// Every `` `word` `` in the text.
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// "unknown field, did you mean `x`?" or "unknown field, expected one of `a`, `b`".
pub(crate) fn unknown(what: &str, name: &str, expected: &[&str]) -> String {
    if let Some(best) = closest(name, expected) {
        return format!("unknown {what}, did you mean `{best}`?");
    }
    match expected {
        [] => format!("unknown {what}, none is allowed here"),
        [one] => format!("unknown {what}, expected `{one}`"),
        _ => {
            let list: Vec<String> = expected.iter().map(|e| format!("`{e}`")).collect();
            format!("unknown {what}, expected one of {}", list.join(", "))
        }
    }
}

/// The candidate nearest to `name`, if it is near enough to be a likely typo.
fn closest<'c>(name: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let name = name.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&name, c), *c))
        .filter(|&(d, c)| d <= (c.len() / 3).max(1))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("t1_ms", "t1_ms"), 0);
        assert_eq!(edit_distance("t1ms", "t1_ms"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(
            closest("min_expire", &["min_expires", "max_expires"]),
            Some("min_expires")
        );
        assert_eq!(closest("bogus", &["zone", "transport", "address"]), None);
    }

    #[test]
    fn messages() {
        assert_eq!(
            describe("a".into(), "invalid type: string \"x\", expected u32").1,
            "expected an integer from 0 to 4294967295, found string \"x\""
        );
        assert_eq!(
            describe("listen[0]".into(), "missing field `address`"),
            (
                "listen[0].address".to_owned(),
                "missing; this field is required".to_owned()
            )
        );
    }
}
