//! Evaluating one request against the tables: a verdict and the path that led to it.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use sip_message::headers::{ContentType, From, To};
use sip_message::Message;

use crate::compile::{Policy, Rule, UserPolicy, ZonePolicy};
use crate::config::{Action, Destination};
use crate::pattern::address_key;

/// Where a request goes, as the call engine (which knows sipwarden's own domains) sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// To a domain or address that sipwarden serves itself (its registrar, its users).
    Local,
    /// Anywhere else.
    Onward,
}

/// One request to judge.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The zone the request came from.
    pub zone: &'a str,
    /// Its source address.
    pub source: IpAddr,
    /// The parsed request (a response is always allowed: the policy is about requests).
    pub message: &'a Message,
    /// The user its credentials proved, if it carried valid ones.
    pub authenticated_user: Option<&'a str>,
    /// Where it goes.
    pub target: Target,
}

/// The current call counts that limits compare with, asked for only when a limit applies.
pub trait CallCounts {
    /// Calls in progress in `zone`.
    fn zone_calls(&self, zone: &str) -> u32;
    /// Calls in progress that `user` makes or receives. `user` is the authenticated name for
    /// the caller when there is one, otherwise an address key (`user@host`).
    fn user_calls(&self, user: &str) -> u32;
}

/// Under which user keys a call is counted ([`CallCounts::user_calls`]): what the limits of
/// [`Policy::evaluate`] ask about for an initial INVITE, for the call counter to count it
/// under the same names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallKeys {
    /// The caller: the authenticated user name when the request carried valid credentials,
    /// else the From address (`user@host`).
    pub caller: String,
    /// The callee, for a call to one of our users (target local): the Request-URI's
    /// `user@host`.
    pub callee: Option<String>,
}

impl CallKeys {
    /// The keys of `req`.
    pub fn of(req: &Request<'_>) -> CallKeys {
        let mut addrs = Addresses {
            msg: req.message,
            from: None,
            to: None,
            ruri: None,
        };
        CallKeys {
            caller: match req.authenticated_user {
                Some(u) => u.to_owned(),
                None => addrs.from().to_owned(),
            },
            callee: (req.target == Target::Local).then(|| addrs.ruri().to_owned()),
        }
    }
}

/// Fixed counts: the same number for every zone, and per user from a list (0 for others).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FixedCounts {
    /// What [`CallCounts::zone_calls`] answers.
    pub zone: u32,
    /// What [`CallCounts::user_calls`] answers, per user key.
    pub users: Vec<(String, u32)>,
}

impl CallCounts for FixedCounts {
    fn zone_calls(&self, _zone: &str) -> u32 {
        self.zone
    }
    fn user_calls(&self, user: &str) -> u32 {
        self.users
            .iter()
            .find(|(u, _)| u == user)
            .map_or(0, |(_, n)| *n)
    }
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Pass it on to the call engine.
    Allow,
    /// Answer it here (e.g. OPTIONS with 200 and `Allow`); never forward it.
    AnswerLocally,
    /// Answer with this error.
    Refuse {
        /// 4xx to 6xx.
        status: u16,
        /// The reason phrase.
        reason: String,
        /// For 503: the `Retry-After` in seconds, when there should be one (the overload
        /// answer, [`crate::Overload::refusal`]; the zone's call limit gives none).
        retry_after: Option<u32>,
    },
    /// Discard without an answer.
    Drop,
    /// Answer 401 (407 onward) with a digest challenge.
    Challenge,
}

impl Verdict {
    fn refuse(status: u16, reason: &str) -> Verdict {
        Verdict::Refuse {
            status,
            reason: reason.to_owned(),
            retry_after: None,
        }
    }

    /// Whether the request goes on (allowed or answered here).
    pub fn is_accepted(&self) -> bool {
        matches!(self, Verdict::Allow | Verdict::AnswerLocally)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Allow => f.write_str("allow"),
            Verdict::AnswerLocally => f.write_str("answer locally"),
            Verdict::Refuse {
                status,
                reason,
                retry_after,
            } => {
                write!(f, "refuse {status} {reason}")?;
                if let Some(s) = retry_after {
                    write!(f, " (Retry-After: {s})")?;
                }
                Ok(())
            }
            Verdict::Drop => f.write_str("drop"),
            Verdict::Challenge => f.write_str("challenge (authentication required)"),
        }
    }
}

/// What a consulted table entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It let the request through to the next check.
    Passed,
    /// It did not apply to this request.
    NotApplicable,
    /// It decided the verdict.
    Decided,
}

/// One consulted table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// A stable name: `policy.zone[wan].methods.refuse`,
    /// `policy.rule[2] (from = "*@evil.example")`.
    pub rule: String,
    /// What it did.
    pub outcome: Outcome,
    /// Why, in words.
    pub detail: String,
}

/// The entries consulted, in order; the last one decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// Every step.
    pub steps: Vec<Step>,
}

impl Trace {
    fn push(&mut self, rule: impl Into<String>, outcome: Outcome, detail: impl Into<String>) {
        self.steps.push(Step {
            rule: rule.into(),
            outcome,
            detail: detail.into(),
        });
    }

    /// The name of the entry that decided.
    pub fn decided_by(&self) -> Option<&str> {
        self.steps
            .iter()
            .rev()
            .find(|s| s.outcome == Outcome::Decided)
            .map(|s| s.rule.as_str())
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            let mark = match s.outcome {
                Outcome::Passed => "pass",
                Outcome::NotApplicable => "skip",
                Outcome::Decided => "DECIDE",
            };
            write!(f, "{mark:>6} {}: {}", s.rule, s.detail)?;
        }
        Ok(())
    }
}

/// A verdict and how it was reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub verdict: Verdict,
    /// Why.
    pub trace: Trace,
}

/// The addresses of a request, decoded once, on demand.
struct Addresses<'m> {
    msg: &'m Message,
    from: Option<Cow<'m, str>>,
    to: Option<Cow<'m, str>>,
    ruri: Option<Cow<'m, str>>,
}

impl<'m> Addresses<'m> {
    /// A header that does not decode is matched by its raw text, so that a malformed From
    /// cannot slip past a rule that would have refused it.
    fn from(&mut self) -> &str {
        let msg = self.msg;
        self.from.get_or_insert_with(|| match msg.typed::<From>() {
            Some(Ok(f)) => address_key(&f.uri),
            _ => raw(msg.header(sip_message::HeaderName::From)),
        })
    }
    fn to(&mut self) -> &str {
        let msg = self.msg;
        self.to.get_or_insert_with(|| match msg.typed::<To>() {
            Some(Ok(t)) => address_key(&t.uri),
            _ => raw(msg.header(sip_message::HeaderName::To)),
        })
    }
    fn ruri(&mut self) -> &str {
        let msg = self.msg;
        self.ruri.get_or_insert_with(|| match msg.request_uri() {
            Some(u) => address_key(&u),
            None => Cow::Borrowed(msg.request_uri_str().unwrap_or("")),
        })
    }
}

fn raw(v: Option<&[u8]>) -> Cow<'_, str> {
    match v {
        Some(b) => match String::from_utf8_lossy(b) {
            Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
            Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
        },
        None => Cow::Borrowed(""),
    }
}

/// `(user, host)` of an address key (`host` alone has no user).
fn split_key(key: &str) -> (&str, &str) {
    match key.rsplit_once('@') {
        Some((u, h)) => (u, h),
        None => ("", key),
    }
}

impl Policy {
    /// Judges one request. Pure: the same request, policy and counts give the same decision.
    ///
    /// The order of the checks, each recorded in the trace: the zone's `methods.refuse` (403)
    /// and `methods.allow` (405); `content_types.allow` (415); the rules, first match wins;
    /// `auth.require` (challenge); `methods.local_only` (answer locally); the callee's
    /// whitelist (403); the limits (503 zone, 403 caller, 486 callee, 488 media streams).
    /// An ACK is never answered, so a verdict other than allow becomes drop for it.
    pub fn evaluate(&self, req: &Request<'_>, counts: &dyn CallCounts) -> Decision {
        let mut trace = Trace::default();
        let verdict = self.judge(req, counts, &mut trace);
        let verdict = match (req.message.method_str(), verdict) {
            (
                Some("ACK"),
                v @ (Verdict::Refuse { .. } | Verdict::Challenge | Verdict::AnswerLocally),
            ) => {
                trace.push(
                    "sip.ack",
                    Outcome::Decided,
                    format!("an ACK gets no answer: drop instead of {v}"),
                );
                Verdict::Drop
            }
            (_, v) => v,
        };
        Decision { verdict, trace }
    }

    fn judge(&self, req: &Request<'_>, counts: &dyn CallCounts, t: &mut Trace) -> Verdict {
        let msg = req.message;
        let Some(method) = msg.method_str() else {
            t.push(
                "policy",
                Outcome::Decided,
                "a response: the request policy does not apply",
            );
            return Verdict::Allow;
        };
        let zp = self.zone(req.zone);
        let zname = format!("policy.zone[{}]", req.zone);
        if !zp.configured {
            t.push(
                zname.clone(),
                Outcome::Passed,
                "no [[policy.zone]] entry: the defaults apply",
            );
        }

        // Methods.
        if zp.refuse.iter().any(|m| m == method) {
            t.push(
                format!("{zname}.methods.refuse"),
                Outcome::Decided,
                format!("{method} is refused from this zone"),
            );
            return Verdict::refuse(403, "Forbidden");
        }
        let local = zp.local_only.iter().any(|m| m == method);
        if local {
            t.push(
                format!("{zname}.methods.local_only"),
                Outcome::Passed,
                format!("{method} is answered here"),
            );
        } else if zp.allow.iter().any(|m| m == method) {
            t.push(
                format!("{zname}.methods.allow"),
                Outcome::Passed,
                format!("{method} is allowed"),
            );
        } else {
            t.push(
                format!("{zname}.methods.allow"),
                Outcome::Decided,
                format!("{method} is not in the list"),
            );
            return Verdict::refuse(405, "Method Not Allowed");
        }

        // Body type.
        if let Some(v) = self.check_content_type(zp, &zname, msg, t) {
            return v;
        }

        // Rules.
        let mut addrs = Addresses {
            msg,
            from: None,
            to: None,
            ruri: None,
        };
        let mut allowed_by: Option<&str> = None;
        for rule in &self.rules {
            if !rule.zones.is_empty() && !rule.zones.iter().any(|z| z == req.zone) {
                continue;
            }
            match rule_mismatch(rule, req, method, &mut addrs) {
                Some(why) => t.push(rule.name.clone(), Outcome::NotApplicable, why),
                None => match rule.action {
                    Action::Allow => {
                        t.push(
                            rule.name.clone(),
                            Outcome::Passed,
                            "matched: allow (no further rule is read)",
                        );
                        allowed_by = Some(&rule.name);
                        break;
                    }
                    Action::Drop => {
                        t.push(rule.name.clone(), Outcome::Decided, "matched: drop");
                        return Verdict::Drop;
                    }
                    Action::Refuse => {
                        let reason = rule
                            .reason
                            .clone()
                            .unwrap_or_else(|| reason_phrase(rule.status).to_owned());
                        t.push(
                            rule.name.clone(),
                            Outcome::Decided,
                            format!("matched: refuse {} {reason}", rule.status),
                        );
                        return Verdict::Refuse {
                            status: rule.status,
                            reason,
                            retry_after: None,
                        };
                    }
                },
            }
        }

        // Authentication.
        for (k, (methods, dest)) in zp.auth.iter().enumerate() {
            let applies = methods.iter().any(|m| m == method)
                && match dest {
                    Destination::Any => true,
                    Destination::Local => req.target == Target::Local,
                    Destination::Onward => req.target == Target::Onward,
                };
            if !applies {
                continue;
            }
            let name = format!("{zname}.auth.require[{k}]");
            match req.authenticated_user {
                Some(u) => {
                    t.push(name, Outcome::Passed, format!("authenticated as `{u}`"));
                    break;
                }
                None => {
                    let whither = match dest {
                        Destination::Any => String::new(),
                        d => format!(" to a {d} destination"),
                    };
                    t.push(
                        name,
                        Outcome::Decided,
                        format!("{method}{whither} needs authentication"),
                    );
                    return Verdict::Challenge;
                }
            }
        }

        if local {
            t.push(
                format!("{zname}.methods.local_only"),
                Outcome::Decided,
                format!("{method} is answered by sipwarden itself"),
            );
            return Verdict::AnswerLocally;
        }

        let initial = match msg.typed::<To>() {
            Some(Ok(to)) => to.tag().is_none(),
            // No readable To: the message parser lets that through only for odd requests;
            // treat it as dialog-creating so that whitelists and limits still apply.
            _ => true,
        };

        // The callee's whitelist.
        let callee = if req.target == Target::Local {
            let (u, h) = split_key(addrs.ruri());
            self.user_entry(u, h)
        } else {
            None
        };
        if initial && (method == "INVITE" || method == "MESSAGE") {
            if let Some(cu) = callee.filter(|c| c.whitelist) {
                let from = addrs.from().to_owned();
                let name = format!("policy.user[{}].whitelist", cu.name);
                match cu.callers.iter().find(|(_, p)| p.matches(&from)) {
                    Some((src, _)) => {
                        t.push(
                            name,
                            Outcome::Passed,
                            format!("caller `{from}` matches `{src}`"),
                        );
                    }
                    None => {
                        t.push(
                            name,
                            Outcome::Decided,
                            format!("caller `{from}` is not on the whitelist"),
                        );
                        return Verdict::refuse(403, "Forbidden");
                    }
                }
            }
        }

        // Limits.
        if initial && method == "INVITE" {
            if let Some(max) = zp.limits.max_calls {
                let n = counts.zone_calls(req.zone);
                let name = format!("{zname}.limits.max_calls");
                if n >= max {
                    t.push(
                        name,
                        Outcome::Decided,
                        format!("{n} calls in progress, the most is {max}"),
                    );
                    return Verdict::refuse(503, "Service Unavailable");
                }
                t.push(name, Outcome::Passed, format!("{n} of {max} calls"));
            }
            let caller_key: String = match req.authenticated_user {
                Some(u) => u.to_owned(),
                None => addrs.from().to_owned(),
            };
            let (cu, ch) = split_key(&caller_key);
            let (cu, ch) = if req.authenticated_user.is_some() && cu.is_empty() {
                (ch, "")
            } else {
                (cu, ch)
            };
            let caller_entry = self.user_entry(cu, ch);
            if let Some((max, name)) = self.user_limit(zp, &zname, caller_entry) {
                let n = counts.user_calls(&caller_key);
                if n >= max {
                    t.push(
                        name,
                        Outcome::Decided,
                        format!("caller `{caller_key}` has {n} calls, the most is {max}"),
                    );
                    return Verdict::refuse(403, "Call Limit Reached");
                }
                t.push(
                    name,
                    Outcome::Passed,
                    format!("caller `{caller_key}`: {n} of {max} calls"),
                );
            }
            if req.target == Target::Local {
                let callee_key = addrs.ruri().to_owned();
                if let Some((max, name)) = self.user_limit(zp, &zname, callee) {
                    let n = counts.user_calls(&callee_key);
                    if n >= max {
                        t.push(
                            name,
                            Outcome::Decided,
                            format!("callee `{callee_key}` has {n} calls, the most is {max}"),
                        );
                        return Verdict::refuse(486, "Busy Here");
                    }
                    t.push(
                        name,
                        Outcome::Passed,
                        format!("callee `{callee_key}`: {n} of {max} calls"),
                    );
                }
            }
        }
        if let Some(max) = zp.limits.max_media_streams {
            if let Some(n) = media_streams(msg) {
                let name = format!("{zname}.limits.max_media_streams");
                if n > max as usize {
                    t.push(
                        name,
                        Outcome::Decided,
                        format!(
                            "the session description offers {n} media streams, the most is {max}"
                        ),
                    );
                    return Verdict::refuse(488, "Not Acceptable Here");
                }
                t.push(name, Outcome::Passed, format!("{n} of {max} media streams"));
            }
        }

        let by = allowed_by.map_or_else(|| format!("{zname} (end of checks)"), str::to_owned);
        t.push(by, Outcome::Decided, "allow: every check passed");
        Verdict::Allow
    }

    fn check_content_type(
        &self,
        zp: &ZonePolicy,
        zname: &str,
        msg: &Message,
        t: &mut Trace,
    ) -> Option<Verdict> {
        let allowed = zp.content_types.as_ref()?;
        let name = format!("{zname}.content_types.allow");
        if msg.body().is_empty() {
            t.push(name, Outcome::NotApplicable, "no body");
            return None;
        }
        let problem = match msg.typed::<ContentType>() {
            None => "a body without Content-Type".to_owned(),
            Some(Err(_)) => "an unreadable Content-Type".to_owned(),
            Some(Ok(ct)) => {
                let hit = allowed.iter().any(|(ty, sub)| {
                    (ty == "*" || ct.mtype.eq_ignore_ascii_case(ty))
                        && (sub == "*" || ct.subtype.eq_ignore_ascii_case(sub))
                });
                let shown = format!("{}/{}", ct.mtype, ct.subtype).to_ascii_lowercase();
                if hit {
                    t.push(name, Outcome::Passed, format!("{shown} is allowed"));
                    return None;
                }
                format!("{shown} is not in the list")
            }
        };
        t.push(name, Outcome::Decided, problem);
        Some(Verdict::refuse(415, "Unsupported Media Type"))
    }

    /// The `[[policy.user]]` entry for `user@host`.
    fn user_entry(&self, user: &str, host: &str) -> Option<&UserPolicy> {
        if user.is_empty() {
            return None;
        }
        // An entry with a domain is more specific than one without: prefer it.
        self.users
            .iter()
            .find(|u| u.domain.is_some() && u.is(user, host))
            .or_else(|| {
                self.users
                    .iter()
                    .find(|u| u.domain.is_none() && u.is(user, host))
            })
    }

    fn user_limit(
        &self,
        zp: &ZonePolicy,
        zname: &str,
        entry: Option<&UserPolicy>,
    ) -> Option<(u32, String)> {
        if let Some(u) = entry {
            if let Some(max) = u.max_calls {
                return Some((max, format!("policy.user[{}].max_calls", u.name)));
            }
        }
        zp.limits
            .max_calls_per_user
            .map(|max| (max, format!("{zname}.limits.max_calls_per_user")))
    }
}

/// Why `rule` does not match, or `None` when it does.
fn rule_mismatch(
    rule: &Rule,
    req: &Request<'_>,
    method: &str,
    addrs: &mut Addresses<'_>,
) -> Option<String> {
    if !rule.methods.is_empty() && !rule.methods.iter().any(|m| m == method) {
        return Some(format!("no match: method {method}"));
    }
    if !rule.source.is_empty() {
        let src = req.source.to_canonical();
        if !rule.source.iter().any(|n| n.contains(&src)) {
            return Some(format!("no match: source {src}"));
        }
    }
    if let Some(p) = &rule.from {
        let v = addrs.from();
        if !p.matches(v) {
            return Some(format!("no match: From `{v}`"));
        }
    }
    if let Some(p) = &rule.to {
        let v = addrs.to();
        if !p.matches(v) {
            return Some(format!("no match: To `{v}`"));
        }
    }
    if let Some(p) = &rule.request_uri {
        let v = addrs.ruri();
        if !p.matches(v) {
            return Some(format!("no match: Request-URI `{v}`"));
        }
    }
    if let Some(p) = &rule.user_agent {
        let v = raw(req.message.header(sip_message::HeaderName::UserAgent));
        if !p.matches(&v) {
            return Some(format!("no match: User-Agent `{v}`"));
        }
    }
    None
}

/// The number of media streams (`m=` lines) a session description in the body offers, or none
/// when the body is not SDP (nor multipart, which may carry SDP).
fn media_streams(msg: &Message) -> Option<usize> {
    let body = msg.body();
    if body.is_empty() {
        return None;
    }
    let sdp = match msg.typed::<ContentType>() {
        Some(Ok(ct)) => ct.is("application", "sdp") || ct.mtype.eq_ignore_ascii_case("multipart"),
        // No or unreadable Content-Type: look anyway, a missing header must not lift the limit.
        _ => true,
    };
    if !sdp {
        return None;
    }
    Some(
        body.split(|&b| b == b'\n')
            .filter(|line| line.starts_with(b"m="))
            .count(),
    )
}

/// The usual reason phrase of a status.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        415 => "Unsupported Media Type",
        480 => "Temporarily Unavailable",
        484 => "Address Incomplete",
        486 => "Busy Here",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match status / 100 {
            4 => "Request Failure",
            5 => "Server Failure",
            _ => "Global Failure",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::from_toml;

    const POLICY: &str = r#"
[policy]
trusted = ["198.51.100.10"]

[[policy.zone]]
name = "wan"
methods.allow = ["INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "PRACK", "UPDATE", "MESSAGE"]
methods.local_only = ["OPTIONS"]
methods.refuse = ["PUBLISH"]
auth.require = [
    { methods = ["REGISTER"], destination = "local" },
    { methods = ["INVITE"], destination = "onward" },
]
content_types.allow = ["application/sdp", "multipart/*"]
limits.max_calls = 10
limits.max_calls_per_user = 2
limits.max_media_streams = 2

[[policy.rule]]
from = "*@evil.example"
action = "refuse"

[[policy.rule]]
source = ["203.0.113.0/24"]
methods = ["INVITE"]
action = "drop"

[[policy.rule]]
request_uri_regex = '^\+1900'
action = "refuse"
status = 603
reason = "Premium Numbers Barred"

[[policy.rule]]
zones = ["wan"]
from = "*@partner.example"
action = "allow"

[[policy.rule]]
to = "ceo@corp.example"
action = "refuse"
status = 480

[[policy.user]]
user = "alice"
whitelist.enabled = true
whitelist.callers = ["*@partner.example", "boss@corp.example"]

[[policy.user]]
user = "bob@corp.example"
max_calls = 1
"#;

    struct Msg<'a> {
        method: &'a str,
        ruri: &'a str,
        from: &'a str,
        to: &'a str,
        to_tag: bool,
        content_type: Option<&'a str>,
        body: &'a str,
    }

    const INVITE: Msg<'static> = Msg {
        method: "INVITE",
        ruri: "sip:carol@trunk.example",
        from: "sip:dave@corp.example",
        to: "sip:carol@trunk.example",
        to_tag: false,
        content_type: None,
        body: "",
    };

    fn build(m: &Msg<'_>) -> Message {
        let mut s = format!(
            "{} {} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
             Max-Forwards: 70\r\nFrom: <{}>;tag=f1\r\nTo: <{}>{}\r\nCall-ID: c1@x\r\n\
             CSeq: 1 {}\r\n",
            m.method,
            m.ruri,
            m.from,
            m.to,
            if m.to_tag { ";tag=t1" } else { "" },
            m.method
        );
        if let Some(ct) = m.content_type {
            s.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        s.push_str(&format!(
            "Content-Length: {}\r\n\r\n{}",
            m.body.len(),
            m.body
        ));
        Message::parse(bytes::Bytes::from(s)).unwrap()
    }

    const SDP3: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                        m=audio 4000 RTP/AVP 0\r\nm=video 4002 RTP/AVP 96\r\nm=text 4004 RTP/AVP 98\r\n";
    const SDP1: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                        m=audio 4000 RTP/AVP 0\r\n";

    struct Case<'a> {
        name: &'a str,
        zone: &'a str,
        source: &'a str,
        msg: Msg<'a>,
        user: Option<&'a str>,
        target: Target,
        counts: FixedCounts,
        verdict: Verdict,
        decided_by: &'a str,
    }

    fn refuse(status: u16, reason: &str) -> Verdict {
        Verdict::refuse(status, reason)
    }

    fn counts(zone: u32, users: &[(&str, u32)]) -> FixedCounts {
        FixedCounts {
            zone,
            users: users.iter().map(|(u, n)| ((*u).to_owned(), *n)).collect(),
        }
    }

    fn run(policy: &Policy, c: &Case<'_>) -> Decision {
        let msg = build(&c.msg);
        let req = Request {
            zone: c.zone,
            source: c.source.parse().unwrap(),
            message: &msg,
            authenticated_user: c.user,
            target: c.target,
        };
        policy.evaluate(&req, &c.counts)
    }

    #[test]
    fn table() {
        let policy = from_toml(POLICY, "t.toml", None).unwrap();
        let wan = "wan";
        let src = "192.0.2.50";
        let cases = [
            Case {
                name: "a zone without an entry gets the defaults",
                zone: "lan",
                source: "10.0.0.5",
                msg: INVITE,
                user: None,
                target: Target::Onward,
                counts: FixedCounts::default(),
                verdict: Verdict::Allow,
                decided_by: "policy.zone[lan] (end of checks)",
            },
            Case {
                name: "methods.refuse",
                zone: wan,
                source: src,
                msg: Msg {
                    method: "PUBLISH",
                    ..INVITE
                },
                user: None,
                target: Target::Local,
                counts: FixedCounts::default(),
                verdict: refuse(403, "Forbidden"),
                decided_by: "policy.zone[wan].methods.refuse",
            },
            Case {
                name: "a method not allowed",
                zone: wan,
                source: src,
                msg: Msg {
                    method: "SUBSCRIBE",
                    ..INVITE
                },
                user: None,
                target: Target::Local,
                counts: FixedCounts::default(),
                verdict: refuse(405, "Method Not Allowed"),
                decided_by: "policy.zone[wan].methods.allow",
            },
            Case {
                name: "methods.local_only",
                zone: wan,
                source: src,
                msg: Msg {
                    method: "OPTIONS",
                    ..INVITE
                },
                user: None,
                target: Target::Local,
                counts: FixedCounts::default(),
                verdict: Verdict::AnswerLocally,
                decided_by: "policy.zone[wan].methods.local_only",
            },
            Case {
                name: "content type not allowed",
                zone: wan,
                source: src,
                msg: Msg {
                    method: "MESSAGE",
                    content_type: Some("text/plain"),
                    body: "hi",
                    ..INVITE
                },
                user: Some("dave"),
                target: Target::Onward,
                counts: FixedCounts::default(),
                verdict: refuse(415, "Unsupported Media Type"),
                decided_by: "policy.zone[wan].content_types.allow",
            },
            Case {
                name: "a body without Content-Type",
                zone: wan,
                source: src,
                msg: Msg {
                    method: "MESSAGE",
                    body: "hi",
                    ..INVITE
                },
                user: Some("dave"),
                target: Target::Onward,
                counts: FixedCounts::default(),
                verdict: refuse(415, "Unsupported Media Type"),
                decided_by: "policy.zone[wan].content_types.allow",
            },
            Case {
                name: "content type wildcard",
                zone: wan,
                source: src,
                msg: Msg {
                    method: "MESSAGE",
                    content_type: Some("multipart/mixed;boundary=x"),
                    body: "--x--",
                    ..INVITE
                },
                user: Some("dave"),
                target: Target::Onward,
                counts: FixedCounts::default(),
                verdict: Verdict::Allow,
                decided_by: "policy.zone[wan] (end of checks)",
            },
            Case {
                name: "rule: from glob refuses",
                zone: wan,
                source: src,
                msg: Msg {
                    from: "sip:mallory@EVIL.example",
                    ..INVITE
                },
                user: Some("mallory"),
                target: Target::Onward,
                counts: FixedCounts::default(),
                verdict: refuse(403, "Forbidden"),
                decided_by: "policy.rule[0] (from = \"*@evil.example\")",
            },
            Case {
                name: "rule: source network drops",
                zone: wan,
                source: "203.0.113.5",
                msg: INVITE,
                user: Some("dave"),
                target: Target::Onward,
                counts: FixedCounts::default(),
                verdict: Verdict::Drop,
                decided_by:
                    "policy.rule[1] (methods = [\"INVITE\"], source = [\"203.0.113.0/24\"])",
            },
            Case {
                name: "rule: method condition not met, then auth",
                zone: wan,
                source: "203.0.113.5",
                msg: Msg {
                    method: "REGISTER",
                    ruri: "sip:corp.example",
                    to: "sip:dave@corp.example",
                    ..INVITE
                },
                user: None,
                target: Target::Local,
                counts: FixedCounts::default(),
                verdict: Verdict::Challenge,
                decided_by: "policy.zone[wan].auth.require[0]",
            },
            Case {
                name: "rule: request-URI regex with status and reason",
                zone: wan,
                source: src,
                msg: Msg {
                    ruri: "sip:+19005551234@trunk.example",
                    ..INVITE
                },
                user: Some("dave"),
                target: Target::Onward,
                counts: FixedCounts::default(),
                verdict: refuse(603, "Premium Numbers Barred"),
                decided_by: "policy.rule[2] (request_uri_regex = \"^\\\\+1900\")",
            },
            Case {
                name: "first match wins: allow before a refusing rule",
                zone: wan,
                source: src,
                msg: Msg {
                    from: "sip:carol@partner.example",
                    to: "sip:ceo@corp.example",
                    ruri: "sip:ceo@corp.example",
                    ..INVITE
                },
                user: None,
                target: Target::Local,
                counts: FixedCounts::default(),
                verdict: Verdict::Allow,
                decided_by: "policy.rule[3] (zones = [\"wan\"], from = \"*@partner.example\")",
            },
            Case {
                name: "first match wins: two refusing rules match, the earlier decides",
                zone: wan,
                source: src,
                msg: Msg {
                    from: "sip:x@evil.example",
                    ruri: "sip:+19005551234@trunk.example",
                    ..INVITE
                },
                user: Some("dave"),
                target: Target::Onward,
                counts: FixedCounts::default(),
                verdict: refuse(403, "Forbidden"),
                decided_by: "policy.rule[0] (from = \"*@evil.example\")",
            },
            Case {
                name: "the refusing rule when no earlier rule matched",
                zone: wan,
                source: src,
                msg: Msg {
                    to: "sip:ceo@corp.example",
                    ruri: "sip:ceo@corp.example",
                    ..INVITE
                },
                user: None,
                target: Target::Local,
                counts: FixedCounts::default(),
                verdict: refuse(480, "Temporarily Unavailable"),
                decided_by: "policy.rule[4] (to = \"ceo@corp.example\")",
            },
            Case {
                name: "a rule's zones: rule[3] does not apply in lan",
                zone: "lan",
                source: "10.0.0.5",
                msg: Msg {
                    from: "sip:carol@partner.example",
                    to: "sip:ceo@corp.example",
                    ruri: "sip:ceo@corp.example",
                    ..INVITE
                },
                user: None,
                target: Target::Local,
                counts: FixedCounts::default(),
                verdict: refuse(480, "Temporarily Unavailable"),
                decided_by: "policy.rule[4] (to = \"ceo@corp.example\")",
            },
            Case {
                name: "auth required onward",
                zone: wan,
                source: src,
                msg: INVITE,
                user: None,
                target: Target::Onward,
                counts: FixedCounts::default(),
                verdict: Verdict::Challenge,
                decided_by: "policy.zone[wan].auth.require[1]",
            },
            Case {
                name: "auth given",
                zone: wan,
                source: src,
                msg: INVITE,
                user: Some("dave"),
                target: Target::Onward,
                counts: FixedCounts::default(),
                verdict: Verdict::Allow,
                decided_by: "policy.zone[wan] (end of checks)",
            },
            Case {
                name: "whitelist on: caller listed",
                zone: wan,
                source: src,
                msg: Msg {
                    from: "sip:boss@corp.example",
                    to: "sip:alice@corp.example",
                    ruri: "sip:alice@corp.example",
                    ..INVITE
                },
                user: None,
                target: Target::Local,
                counts: FixedCounts::default(),
                verdict: Verdict::Allow,
                decided_by: "policy.zone[wan] (end of checks)",
            },
            Case {
                name: "whitelist on: caller not listed",
                zone: wan,
                source: src,
                msg: Msg {
                    from: "sip:eve@corp.example",
                    to: "sip:alice@corp.example",
                    ruri: "sip:alice@corp.example",
                    ..INVITE
                },
                user: None,
                target: Target::Local,
                counts: FixedCounts::default(),
                verdict: refuse(403, "Forbidden"),
                decided_by: "policy.user[alice].whitelist",
            },
            Case {
                name: "whitelist: requests inside a dialog are not checked",
                zone: wan,
                source: src,
                msg: Msg {
                    from: "sip:eve@corp.example",
                    to: "sip:alice@corp.example",
                    ruri: "sip:alice@corp.example",
                    to_tag: true,
                    ..INVITE
                },
                user: None,
                target: Target::Local,
                counts: FixedCounts::default(),
                verdict: Verdict::Allow,
                decided_by: "policy.zone[wan] (end of checks)",
            },
            Case {
                name: "whitelist: only for calls to local users",
                zone: wan,
                source: src,
                msg: Msg {
                    from: "sip:eve@corp.example",
                    to: "sip:alice@else.example",
                    ruri: "sip:alice@else.example",
                    ..INVITE
                },
                user: Some("eve"),
                target: Target::Onward,
                counts: FixedCounts::default(),
                verdict: Verdict::Allow,
                decided_by: "policy.zone[wan] (end of checks)",
            },
            Case {
                name: "limit: zone calls",
                zone: wan,
                source: src,
                msg: INVITE,
                user: Some("dave"),
                target: Target::Onward,
                counts: counts(10, &[]),
                verdict: refuse(503, "Service Unavailable"),
                decided_by: "policy.zone[wan].limits.max_calls",
            },
            Case {
                name: "limit: zone calls below the limit",
                zone: wan,
                source: src,
                msg: INVITE,
                user: Some("dave"),
                target: Target::Onward,
                counts: counts(9, &[("dave", 1)]),
                verdict: Verdict::Allow,
                decided_by: "policy.zone[wan] (end of checks)",
            },
            Case {
                name: "limit: caller calls",
                zone: wan,
                source: src,
                msg: INVITE,
                user: Some("dave"),
                target: Target::Onward,
                counts: counts(0, &[("dave", 2)]),
                verdict: refuse(403, "Call Limit Reached"),
                decided_by: "policy.zone[wan].limits.max_calls_per_user",
            },
            Case {
                name: "limit: unauthenticated caller counted by From address",
                zone: wan,
                source: src,
                msg: Msg {
                    to: "sip:ed@corp.example",
                    ruri: "sip:ed@corp.example",
                    ..INVITE
                },
                user: None,
                target: Target::Local,
                counts: counts(0, &[("dave@corp.example", 2)]),
                verdict: refuse(403, "Call Limit Reached"),
                decided_by: "policy.zone[wan].limits.max_calls_per_user",
            },
            Case {
                name: "limit: callee's own max_calls",
                zone: wan,
                source: src,
                msg: Msg {
                    to: "sip:bob@corp.example",
                    ruri: "sip:bob@corp.example",
                    ..INVITE
                },
                user: None,
                target: Target::Local,
                counts: counts(0, &[("bob@corp.example", 1)]),
                verdict: refuse(486, "Busy Here"),
                decided_by: "policy.user[bob@corp.example].max_calls",
            },
            Case {
                name: "limit: re-INVITE is not a new call",
                zone: wan,
                source: src,
                msg: Msg {
                    to_tag: true,
                    ..INVITE
                },
                user: Some("dave"),
                target: Target::Onward,
                counts: counts(10, &[("dave", 5)]),
                verdict: Verdict::Allow,
                decided_by: "policy.zone[wan] (end of checks)",
            },
            Case {
                name: "limit: media streams",
                zone: wan,
                source: src,
                msg: Msg {
                    content_type: Some("application/sdp"),
                    body: SDP3,
                    ..INVITE
                },
                user: Some("dave"),
                target: Target::Onward,
                counts: FixedCounts::default(),
                verdict: refuse(488, "Not Acceptable Here"),
                decided_by: "policy.zone[wan].limits.max_media_streams",
            },
            Case {
                name: "limit: media streams within the limit",
                zone: wan,
                source: src,
                msg: Msg {
                    content_type: Some("application/sdp"),
                    body: SDP1,
                    ..INVITE
                },
                user: Some("dave"),
                target: Target::Onward,
                counts: FixedCounts::default(),
                verdict: Verdict::Allow,
                decided_by: "policy.zone[wan] (end of checks)",
            },
            Case {
                name: "an ACK is dropped, never answered",
                zone: wan,
                source: src,
                msg: Msg {
                    method: "ACK",
                    from: "sip:x@evil.example",
                    to_tag: true,
                    ..INVITE
                },
                user: None,
                target: Target::Onward,
                counts: FixedCounts::default(),
                verdict: Verdict::Drop,
                decided_by: "sip.ack",
            },
        ];
        for c in &cases {
            let d = run(&policy, c);
            assert_eq!(d.verdict, c.verdict, "{}:\n{}", c.name, d.trace);
            assert_eq!(
                d.trace.decided_by(),
                Some(c.decided_by),
                "{}:\n{}",
                c.name,
                d.trace
            );
            // The deciding step is the last one.
            assert_eq!(
                d.trace.steps.last().map(|s| s.outcome),
                Some(Outcome::Decided),
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn whitelist_switch() {
        let call = Case {
            name: "eve calls alice",
            zone: "wan",
            source: "192.0.2.50",
            msg: Msg {
                from: "sip:eve@corp.example",
                to: "sip:alice@corp.example",
                ruri: "sip:alice@corp.example",
                ..INVITE
            },
            user: None,
            target: Target::Local,
            counts: FixedCounts::default(),
            verdict: Verdict::Allow,
            decided_by: "",
        };
        for (enabled, want) in [(true, refuse(403, "Forbidden")), (false, Verdict::Allow)] {
            let text = format!(
                "[[policy.user]]\nuser = \"alice\"\nwhitelist.enabled = {enabled}\n\
                 whitelist.callers = [\"boss@corp.example\"]\n"
            );
            let policy = from_toml(&text, "t.toml", None).unwrap();
            assert_eq!(run(&policy, &call).verdict, want, "enabled = {enabled}");
        }
        // A user entry with a domain wins over one without.
        let text = "[[policy.user]]\nuser = \"alice\"\nwhitelist.enabled = true\n\
                    [[policy.user]]\nuser = \"alice@corp.example\"\nwhitelist.enabled = false\n";
        let policy = from_toml(text, "t.toml", None).unwrap();
        assert_eq!(run(&policy, &call).verdict, Verdict::Allow);
    }

    #[test]
    fn scanner_user_agents_are_dropped() {
        let text =
            "[[policy.rule]]\nuser_agent_regex = \"(?i)friendly-scanner|sipvicious|sipcli\"\n\
                    action = \"drop\"\n";
        let policy = from_toml(text, "t.toml", None).unwrap();
        let judge = |ua: Option<&str>| {
            let mut m = String::from(
                "OPTIONS sip:100@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK1\r\n\
                 From: <sip:100@192.0.2.9>;tag=1\r\nTo: <sip:100@192.0.2.1>\r\nCall-ID: 1@x\r\n\
                 CSeq: 1 OPTIONS\r\n",
            );
            if let Some(ua) = ua {
                m.push_str(&format!("User-Agent: {ua}\r\n"));
            }
            m.push_str("Content-Length: 0\r\n\r\n");
            let msg = Message::parse(bytes::Bytes::from(m)).unwrap();
            let req = Request {
                zone: "lan",
                source: "192.0.2.9".parse().unwrap(),
                message: &msg,
                authenticated_user: None,
                target: Target::Local,
            };
            policy.evaluate(&req, &FixedCounts::default())
        };
        assert_eq!(judge(Some("friendly-scanner")).verdict, Verdict::Drop);
        assert_eq!(judge(Some("SIPVicious 0.3.4")).verdict, Verdict::Drop);
        let d = judge(Some("Yealink SIP-T46S 66.86.0.15"));
        assert_eq!(d.verdict, Verdict::Allow);
        assert!(d
            .trace
            .to_string()
            .contains("no match: User-Agent `Yealink"));
        assert_eq!(judge(None).verdict, Verdict::Allow);
    }

    #[test]
    fn responses_pass() {
        let policy = from_toml(POLICY, "t.toml", None).unwrap();
        let msg = Message::parse(bytes::Bytes::from_static(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n\
              To: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        ))
        .unwrap();
        let req = Request {
            zone: "wan",
            source: "192.0.2.1".parse().unwrap(),
            message: &msg,
            authenticated_user: None,
            target: Target::Onward,
        };
        let d = policy.evaluate(&req, &FixedCounts::default());
        assert_eq!(d.verdict, Verdict::Allow);
        assert_eq!(d.trace.decided_by(), Some("policy"));
    }

    #[test]
    fn trace_reads_well() {
        let policy = from_toml(POLICY, "t.toml", None).unwrap();
        let c = Case {
            name: "",
            zone: "wan",
            source: "192.0.2.50",
            msg: Msg {
                to: "sip:ceo@corp.example",
                ruri: "sip:ceo@corp.example",
                ..INVITE
            },
            user: None,
            target: Target::Local,
            counts: FixedCounts::default(),
            verdict: Verdict::Allow,
            decided_by: "",
        };
        let text = run(&policy, &c).trace.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.first(),
            Some(&"  pass policy.zone[wan].methods.allow: INVITE is allowed")
        );
        assert!(lines.contains(&"  skip policy.rule[0] (from = \"*@evil.example\"): no match: From `dave@corp.example`"), "{text}");
        assert_eq!(
            lines.last(),
            Some(&"DECIDE policy.rule[4] (to = \"ceo@corp.example\"): matched: refuse 480 Temporarily Unavailable")
        );
    }

    #[test]
    fn helpers_for_answers() {
        let policy = from_toml(POLICY, "t.toml", None).unwrap();
        assert_eq!(
            policy.allow_header("wan"),
            "INVITE, ACK, BYE, CANCEL, REGISTER, PRACK, UPDATE, MESSAGE, OPTIONS"
        );
        assert_eq!(
            policy.accept_header("wan").as_deref(),
            Some("application/sdp, multipart/*")
        );
        assert_eq!(policy.accept_header("lan"), None);
        assert!(policy.is_trusted("198.51.100.10".parse().unwrap()));
        assert!(policy.is_trusted("::ffff:198.51.100.10".parse().unwrap()));
        assert!(!policy.is_trusted("198.51.100.11".parse().unwrap()));
    }
}
