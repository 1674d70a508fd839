//! `sipwarden explain --config FILE [--zone Z] [--source IP] MESSAGE_FILE`: judges one SIP
//! request with the configuration's policy, the way the edge would, and prints the verdict and
//! every policy entry consulted on the way.
//!
//! Exit codes: 0 the request would be let through (allowed or answered by sipwarden itself),
//! 1 it would be refused, dropped or challenged, 2 an error (unreadable or invalid
//! configuration or message, unknown zone).
//!
//! The `[policy]` section is read by the policy crate's own loader (`policy::load`), from the
//! same file; the rest of the file by the configuration crate, with `[policy]` cut out while
//! that crate does not know the section.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use config::Config;
use policy::{FixedCounts, Policy, Request, Target, Verdict};
use sip_message::Message;

use crate::cli::{EXIT_INVALID, EXIT_OK, EXIT_USAGE};

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The configuration file (its `[[zone]]`s, `[registrar]` and `[policy]`).
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,

    /// The zone the request arrives in. Default: the zone whose networks hold --source.
    #[arg(long, value_name = "ZONE")]
    pub zone: Option<String>,

    /// The request's source address. Default: unspecified (0.0.0.0), which no rule's `source`
    /// matches.
    #[arg(long, value_name = "IP")]
    pub source: Option<IpAddr>,

    /// The user the request authenticated as. Default: not authenticated.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Where the request goes. Default: local when the Request-URI's host is one of
    /// `registrar.domains` or a listener's address, onward otherwise.
    #[arg(long, value_enum)]
    pub target: Option<TargetArg>,

    /// Calls in progress in the zone, for `limits.max_calls`.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub zone_calls: u32,

    /// Calls in progress of one user, for the per-user limits (repeatable): `alice=2`,
    /// `bob@corp.example=1`.
    #[arg(long = "user-calls", value_name = "USER=N")]
    pub user_calls: Vec<String>,

    /// A file holding one SIP request.
    #[arg(value_name = "MESSAGE_FILE")]
    pub message: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetArg {
    /// To sipwarden's own users or registrar.
    Local,
    /// Beyond sipwarden.
    Onward,
}

/// Runs the command; returns the process exit code.
pub fn run(args: &ExplainArgs) -> u8 {
    let stdout = io::stdout();
    let stderr = io::stderr();
    explain(args, &mut stdout.lock(), &mut stderr.lock())
}

/// [`run`] with the output streams given (tests read them).
pub fn explain(args: &ExplainArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match explain_inner(args, out) {
        Ok(code) => code,
        Err(lines) => {
            for line in lines {
                let _ = writeln!(err, "{line}");
            }
            EXIT_USAGE
        }
    }
}

fn explain_inner(args: &ExplainArgs, out: &mut dyn Write) -> Result<u8, Vec<String>> {
    let name = args.config.display().to_string();
    let text = std::fs::read_to_string(&args.config)
        .map_err(|e| vec![format!("{name}: cannot read the file: {e}")])?;
    let config = load_config(&text, &name)?;
    let zones: Vec<&str> = config.zone.iter().map(|z| z.name.as_str()).collect();
    let policy = policy::load::from_toml(&text, &name, Some(&zones))
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;

    let (zone, zone_note) = pick_zone(&config, args)?;
    let source = args.source.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));

    let message = read_message(&args.message)?;
    if !message.is_request() {
        return Err(vec![format!(
            "{}: a response, not a request: the policy judges requests",
            args.message.display()
        )]);
    }
    let (target, target_note) = pick_target(&config, &message, args.target);
    let counts = parse_counts(args)?;

    let req = Request {
        zone: &zone,
        source,
        message: &message,
        authenticated_user: args.user.as_deref(),
        target,
    };
    let decision = policy.evaluate(&req, &counts);

    let w = |out: &mut dyn Write, line: String| {
        let _ = writeln!(out, "{line}");
    };
    w(
        out,
        format!(
            "request:    {} {}",
            message.method_str().unwrap_or("?"),
            message.request_uri_str().unwrap_or("?")
        ),
    );
    w(out, format!("zone:       {zone} ({zone_note})"));
    w(
        out,
        format!("source:     {}", describe_source(&policy, args.source)),
    );
    w(
        out,
        format!(
            "user:       {}",
            args.user
                .as_deref()
                .map_or("not authenticated".to_owned(), |u| format!(
                    "authenticated as `{u}`"
                ))
        ),
    );
    w(
        out,
        format!(
            "target:     {} ({target_note})",
            match target {
                Target::Local => "local",
                Target::Onward => "onward",
            }
        ),
    );
    w(out, "path through the policy:".to_owned());
    for line in decision.trace.to_string().lines() {
        w(out, format!("  {line}"));
    }
    w(out, format!("verdict:    {}", decision.verdict));
    if let Some(by) = decision.trace.decided_by() {
        w(out, format!("decided by: {by}"));
    }
    match &decision.verdict {
        Verdict::Refuse { status: 405, .. } => {
            w(
                out,
                format!("  (answered with Allow: {})", policy.allow_header(&zone)),
            );
        }
        Verdict::Refuse { status: 415, .. } => {
            if let Some(accept) = policy.accept_header(&zone) {
                w(out, format!("  (answered with Accept: {accept})"));
            }
        }
        _ => {}
    }
    Ok(if decision.verdict.is_accepted() {
        EXIT_OK
    } else {
        EXIT_INVALID
    })
}

/// The configuration without `[policy]`: loaded as is when the configuration crate knows the
/// section, otherwise with the section cut out (after checking that the section is the only
/// thing the loader objected to, so that line numbers of real errors stay right).
fn load_config(text: &str, name: &str) -> Result<Config, Vec<String>> {
    let errors = match Config::from_str(text, name) {
        Ok(config) => return Ok(config),
        Err(errors) => errors,
    };
    let is_policy = |field: &str| field == "policy" || field.starts_with("policy.");
    let others: Vec<String> = errors
        .errors()
        .iter()
        .filter(|e| !is_policy(&e.field))
        .map(ToString::to_string)
        .collect();
    if !others.is_empty() {
        return Err(others);
    }
    let rest = policy::load::without_policy(text)
        .ok_or_else(|| vec![format!("{name}: not a TOML document")])?;
    Config::from_str(&rest, name).map_err(|e| e.to_lines())
}

fn pick_zone(config: &Config, args: &ExplainArgs) -> Result<(String, String), Vec<String>> {
    let names = || {
        config
            .zone
            .iter()
            .map(|z| format!("`{}`", z.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (&args.zone, args.source) {
        (Some(z), source) => {
            let Some(zone) = config.zone(z) else {
                return Err(vec![format!(
                    "--zone: unknown zone `{z}`; the zones are {}",
                    names()
                )]);
            };
            let note = match source {
                Some(ip) if !zone.contains(ip.to_canonical()) => {
                    format!("from --zone; note: {ip} is not in its networks")
                }
                _ => "from --zone".to_owned(),
            };
            Ok((zone.name.clone(), note))
        }
        (None, Some(ip)) => match config.zone_of(ip.to_canonical()) {
            Some(zone) => Ok((zone.name.clone(), format!("its networks hold {ip}"))),
            None => Err(vec![format!(
                "--source: {ip} is in no zone's networks (the edge drops it unanswered); \
                 give --zone to judge it anyway. The zones are {}",
                names()
            )]),
        },
        (None, None) => Err(vec!["give --zone, --source or both".to_owned()]),
    }
}

fn read_message(path: &Path) -> Result<Message, Vec<String>> {
    let label = path.display();
    let mut data = std::fs::read(path).map_err(|e| vec![format!("{label}: cannot read: {e}")])?;
    // A message typed in an editor has bare LF line ends; SIP needs CRLF. Convert only the
    // head (the body's length is what Content-Length says).
    if !data.windows(2).any(|w| w == b"\r\n") {
        data = lf_to_crlf_head(&data);
    }
    Message::parse(data).map_err(|e| {
        vec![format!(
            "{label}: error at byte {}: {}",
            e.offset,
            e.reason()
        )]
    })
}

fn lf_to_crlf_head(data: &[u8]) -> Vec<u8> {
    let head_end = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or(data.len(), |p| p + 2);
    let (head, body) = data.split_at(head_end);
    let mut out = Vec::with_capacity(data.len() + 64);
    for &b in head {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out.extend_from_slice(body);
    out
}

fn pick_target(config: &Config, msg: &Message, given: Option<TargetArg>) -> (Target, String) {
    match given {
        Some(TargetArg::Local) => return (Target::Local, "from --target".to_owned()),
        Some(TargetArg::Onward) => return (Target::Onward, "from --target".to_owned()),
        None => {}
    }
    let Some(sip) = msg.request_uri().and_then(|u| u.sip().copied()) else {
        return (
            Target::Onward,
            "the Request-URI is not a SIP URI; use --target to say otherwise".to_owned(),
        );
    };
    let host = sip.host_str.trim_start_matches('[').trim_end_matches(']');
    if config.registrar.domains.iter().any(|d| {
        d.trim_start_matches('[')
            .trim_end_matches(']')
            .eq_ignore_ascii_case(host)
    }) {
        return (Target::Local, format!("`{host}` is in registrar.domains"));
    }
    if let Some(ip) = sip.host.ip() {
        if config.listen.iter().any(|l| l.address.ip() == ip) {
            return (Target::Local, format!("`{host}` is a listener's address"));
        }
    }
    (
        Target::Onward,
        format!("`{host}` is neither in registrar.domains nor a listener's address; use --target to say otherwise"),
    )
}

fn parse_counts(args: &ExplainArgs) -> Result<FixedCounts, Vec<String>> {
    let mut users = Vec::with_capacity(args.user_calls.len());
    for item in &args.user_calls {
        let parsed = item
            .rsplit_once('=')
            .and_then(|(u, n)| Some((u.to_owned(), n.parse::<u32>().ok()?)))
            .filter(|(u, _)| !u.is_empty());
        match parsed {
            Some(v) => users.push(v),
            None => {
                return Err(vec![format!(
                    "--user-calls: `{item}` is not USER=N (e.g. alice=2)"
                )])
            }
        }
    }
    Ok(FixedCounts {
        zone: args.zone_calls,
        users,
    })
}

fn describe_source(policy: &Policy, source: Option<IpAddr>) -> String {
    match source {
        None => "unspecified (0.0.0.0; rules with `source` do not match)".to_owned(),
        Some(ip) if policy.is_trusted(ip) => {
            format!("{ip} (trusted: never banned nor rate-limited)")
        }
        Some(ip) => ip.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const CONFIG: &str = r#"
[registrar]
domains = ["corp.example"]

[[zone]]
name = "lan"
networks = ["192.168.10.0/24"]

[[zone]]
name = "wan"
networks = ["0.0.0.0/1", "128.0.0.0/2", "198.51.100.0/24", "203.0.113.0/24"]

[[listen]]
zone = "lan"
address = "192.168.10.1:5060"

[policy]
trusted = ["198.51.100.10"]

[[policy.zone]]
name = "wan"
methods.allow = ["INVITE", "ACK", "BYE", "CANCEL", "REGISTER"]
methods.local_only = ["OPTIONS"]
auth.require = [{ methods = ["REGISTER"], destination = "local" }]

[[policy.rule]]
from = "*@evil.example"
action = "refuse"
"#;

    fn invite(from: &str) -> String {
        format!(
            "INVITE sip:alice@corp.example SIP/2.0\nVia: SIP/2.0/UDP 203.0.113.9;branch=z9hG4bK1\n\
             Max-Forwards: 70\nFrom: <sip:{from}>;tag=1\nTo: <sip:alice@corp.example>\n\
             Call-ID: c@x\nCSeq: 1 INVITE\nContent-Length: 0\n\n"
        )
    }

    struct Run {
        code: u8,
        out: String,
        err: String,
    }

    fn explain_with(config: &str, message: &str, extra: impl FnOnce(&mut ExplainArgs)) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let cpath = dir.path().join("sbc.toml");
        let mpath = dir.path().join("msg.sip");
        fs::write(&cpath, config).unwrap();
        fs::write(&mpath, message).unwrap();
        let mut args = ExplainArgs {
            config: cpath,
            zone: None,
            source: Some("203.0.113.9".parse().unwrap()),
            user: None,
            target: None,
            zone_calls: 0,
            user_calls: Vec::new(),
            message: mpath,
        };
        extra(&mut args);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = explain(&args, &mut out, &mut err);
        Run {
            code,
            out: String::from_utf8(out).unwrap(),
            err: String::from_utf8(err).unwrap(),
        }
    }

    #[test]
    fn allowed_request_exits_0() {
        let r = explain_with(CONFIG, &invite("bob@partner.example"), |_| {});
        assert_eq!(r.code, EXIT_OK, "{}{}", r.out, r.err);
        assert!(
            r.out
                .contains("zone:       wan (its networks hold 203.0.113.9)"),
            "{}",
            r.out
        );
        assert!(
            r.out
                .contains("target:     local (`corp.example` is in registrar.domains)"),
            "{}",
            r.out
        );
        assert!(r.out.contains("verdict:    allow"), "{}", r.out);
    }

    #[test]
    fn refused_request_names_the_rule_and_exits_1() {
        let r = explain_with(CONFIG, &invite("mallory@evil.example"), |_| {});
        assert_eq!(r.code, EXIT_INVALID, "{}{}", r.out, r.err);
        assert!(
            r.out.contains("verdict:    refuse 403 Forbidden"),
            "{}",
            r.out
        );
        assert!(
            r.out
                .contains("decided by: policy.rule[0] (from = \"*@evil.example\")"),
            "{}",
            r.out
        );
    }

    #[test]
    fn zone_without_policy_entry_and_challenge() {
        let msg = invite("bob@partner.example").replace("INVITE", "REGISTER");
        let r = explain_with(CONFIG, &msg, |a| {
            a.source = Some("192.168.10.20".parse().unwrap());
        });
        assert_eq!(r.code, EXIT_OK, "{}{}", r.out, r.err);
        assert!(r.out.contains("no [[policy.zone]] entry"), "{}", r.out);

        let r = explain_with(CONFIG, &msg, |_| {});
        assert_eq!(r.code, EXIT_INVALID);
        assert!(r.out.contains("verdict:    challenge"), "{}", r.out);
        let r = explain_with(CONFIG, &msg, |a| a.user = Some("bob".into()));
        assert_eq!(r.code, EXIT_OK, "{}", r.out);
    }

    #[test]
    fn errors_exit_2() {
        // An invalid policy: located like every configuration error.
        let bad = CONFIG.replace("from = \"*@evil.example\"", "from_regex = \"(\"");
        let r = explain_with(&bad, &invite("a@b"), |_| {});
        assert_eq!(r.code, EXIT_USAGE);
        assert!(
            r.err
                .contains("sbc.toml:27: policy.rule[0].from_regex: invalid regex"),
            "{}",
            r.err
        );
        // An error elsewhere in the configuration is reported, not hidden by [policy].
        let bad = CONFIG.replace("domains = [\"corp.example\"]", "domain = []");
        let r = explain_with(&bad, &invite("a@b"), |_| {});
        assert_eq!(r.code, EXIT_USAGE);
        assert!(r.err.contains("sbc.toml:3: registrar.domain"), "{}", r.err);
        // An unknown zone, a source in no zone, a message that does not parse.
        let r = explain_with(CONFIG, &invite("a@b"), |a| a.zone = Some("dmz".into()));
        assert_eq!(r.code, EXIT_USAGE);
        assert!(r.err.contains("unknown zone `dmz`"), "{}", r.err);
        let r = explain_with(CONFIG, &invite("a@b"), |a| {
            a.source = Some("192.168.99.1".parse().unwrap())
        });
        assert_eq!(r.code, EXIT_USAGE);
        let r = explain_with(CONFIG, "garbage\n\n", |_| {});
        assert_eq!(r.code, EXIT_USAGE);
        assert!(r.err.contains("error at byte"), "{}", r.err);
        let r = explain_with(CONFIG, &invite("a@b"), |a| {
            a.user_calls = vec!["alice".into()]
        });
        assert_eq!(r.code, EXIT_USAGE);
    }

    #[test]
    fn trusted_source_is_shown() {
        let r = explain_with(CONFIG, &invite("bob@partner.example"), |a| {
            a.source = Some("198.51.100.10".parse().unwrap());
            a.target = Some(TargetArg::Onward);
        });
        assert!(r.out.contains("198.51.100.10 (trusted"), "{}", r.out);
        assert!(
            r.out.contains("target:     onward (from --target)"),
            "{}",
            r.out
        );
    }
}
