//! Checking the tables and building the form evaluation uses.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::{
    Action, BruteForceConfig, CallsConfig, Destination, FloodConfig, LimitsConfig, OverloadConfig,
    PolicyConfig, ZonePolicyConfig, STANDARD_METHODS,
};
use crate::pattern::Pattern;

/// One problem in the policy tables: the dotted path of the value (`policy.rule[3].from`,
/// arrays indexed from 0 as in the rest of the configuration) and what is wrong with it. The
/// configuration loader prefixes `FILE:LINE: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    /// Dotted path, starting with `policy`.
    pub field: String,
    /// What is wrong, and where useful what would be right.
    pub problem: String,
}

/// The policy, checked and ready to evaluate requests.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) trusted: Vec<IpNet>,
    pub(crate) zones: Vec<ZonePolicy>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) users: Vec<UserPolicy>,
    pub(crate) bruteforce: BruteForceConfig,
    pub(crate) overload: OverloadConfig,
    pub(crate) calls: CallsConfig,
    /// What a zone without an entry gets.
    pub(crate) defaults: ZonePolicy,
}

#[derive(Debug, Clone)]
pub(crate) struct ZonePolicy {
    pub(crate) name: String,
    /// False for a zone that has no `[[policy.zone]]` (built-in defaults).
    pub(crate) configured: bool,
    pub(crate) allow: Vec<String>,
    pub(crate) local_only: Vec<String>,
    pub(crate) refuse: Vec<String>,
    pub(crate) auth: Vec<(Vec<String>, Destination)>,
    /// Lower-cased `(type, subtype)`, `*` for a wildcard.
    pub(crate) content_types: Option<Vec<(String, String)>>,
    pub(crate) limits: LimitsConfig,
    pub(crate) flood: FloodConfig,
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    /// `policy.rule[2] (from = "*@evil.example")`
    pub(crate) name: String,
    pub(crate) zones: Vec<String>,
    pub(crate) methods: Vec<String>,
    pub(crate) source: Vec<IpNet>,
    pub(crate) from: Option<Pattern>,
    pub(crate) to: Option<Pattern>,
    pub(crate) request_uri: Option<Pattern>,
    pub(crate) user_agent: Option<Pattern>,
    pub(crate) action: Action,
    pub(crate) status: u16,
    pub(crate) reason: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct UserPolicy {
    /// As written: `alice` or `alice@corp.example`.
    pub(crate) name: String,
    pub(crate) user: String,
    /// Lower case.
    pub(crate) domain: Option<String>,
    pub(crate) whitelist: bool,
    pub(crate) callers: Vec<(String, Pattern)>,
    pub(crate) max_calls: Option<u32>,
}

impl UserPolicy {
    /// Whether this entry is about the address `user@host` (`host` may be empty).
    pub(crate) fn is(&self, user: &str, host: &str) -> bool {
        self.user == user
            && self
                .domain
                .as_deref()
                .is_none_or(|d| d.eq_ignore_ascii_case(host))
    }
}

impl Policy {
    /// Checks `config` and builds the policy. `zones`, when given, are the zones of the
    /// configuration: a policy naming any other zone is an error. On failure, every problem
    /// found, in the order of the file's tables.
    pub fn compile(
        config: &PolicyConfig,
        zones: Option<&[&str]>,
    ) -> Result<Policy, Vec<FieldError>> {
        let mut c = Checker { errors: Vec::new() };
        let trusted = c.networks("policy.trusted", &config.trusted);

        let mut zone_names = HashSet::new();
        let mut compiled_zones = Vec::with_capacity(config.zone.len());
        for (i, z) in config.zone.iter().enumerate() {
            let path = format!("policy.zone[{i}]");
            c.zone_name(&format!("{path}.name"), &z.name, zones);
            if !zone_names.insert(z.name.as_str()) {
                c.err(
                    format!("{path}.name"),
                    format!("zone `{}` has two entries; merge them", z.name),
                );
            }
            compiled_zones.push(c.zone(&path, z, true));
        }

        let mut rules = Vec::with_capacity(config.rule.len());
        for (i, r) in config.rule.iter().enumerate() {
            let path = format!("policy.rule[{i}]");
            for (j, z) in r.zones.iter().enumerate() {
                c.zone_name(&format!("{path}.zones[{j}]"), z, zones);
            }
            let methods = c.methods(&format!("{path}.methods"), &r.methods);
            let source = c.networks(&format!("{path}.source"), &r.source);
            let from = c.pattern(&path, "from", &r.from, &r.from_regex);
            let to = c.pattern(&path, "to", &r.to, &r.to_regex);
            let request_uri = c.pattern(&path, "request_uri", &r.request_uri, &r.request_uri_regex);
            let user_agent = c.pattern(&path, "user_agent", &r.user_agent, &r.user_agent_regex);
            if r.action != Action::Refuse {
                if r.status.is_some() {
                    c.err(
                        format!("{path}.status"),
                        "only for action = \"refuse\"".into(),
                    );
                }
                if r.reason.is_some() {
                    c.err(
                        format!("{path}.reason"),
                        "only for action = \"refuse\"".into(),
                    );
                }
            }
            if let Some(s) = r.status {
                if !(400..=699).contains(&s) {
                    c.err(
                        format!("{path}.status"),
                        format!("must be an error status from 400 to 699, got {s}"),
                    );
                }
            }
            if let Some(reason) = &r.reason {
                c.reason(&format!("{path}.reason"), reason);
            }
            let mut conditions = Vec::new();
            if !r.zones.is_empty() {
                conditions.push(format!("zones = {:?}", r.zones));
            }
            if !r.methods.is_empty() {
                conditions.push(format!("methods = {:?}", r.methods));
            }
            if !r.source.is_empty() {
                conditions.push(format!("source = {:?}", r.source));
            }
            for (key, value) in [
                ("from", &r.from),
                ("from_regex", &r.from_regex),
                ("to", &r.to),
                ("to_regex", &r.to_regex),
                ("request_uri", &r.request_uri),
                ("request_uri_regex", &r.request_uri_regex),
                ("user_agent", &r.user_agent),
                ("user_agent_regex", &r.user_agent_regex),
            ] {
                if let Some(v) = value {
                    conditions.push(format!("{key} = {v:?}"));
                }
            }
            let name = if conditions.is_empty() {
                format!("{path} (every request)")
            } else {
                format!("{path} ({})", conditions.join(", "))
            };
            rules.push(Rule {
                name,
                zones: r.zones.clone(),
                methods,
                source,
                from,
                to,
                request_uri,
                user_agent,
                action: r.action,
                status: r.status.unwrap_or(403),
                reason: r.reason.clone(),
            });
        }

        let mut users: Vec<UserPolicy> = Vec::with_capacity(config.user.len());
        for (i, u) in config.user.iter().enumerate() {
            let path = format!("policy.user[{i}]");
            let (user, domain) = match u.user.split_once('@') {
                Some((user, domain)) => (user, Some(domain.to_ascii_lowercase())),
                None => (u.user.as_str(), None),
            };
            if user.is_empty()
                || domain
                    .as_deref()
                    .is_some_and(|d| d.is_empty() || d.contains('@'))
                || u.user
                    .chars()
                    .any(|ch| ch.is_whitespace() || ch.is_control())
            {
                c.err(
                    format!("{path}.user"),
                    format!(
                        "`{}` is not a user name; write `alice` or `alice@corp.example`",
                        u.user
                    ),
                );
            }
            if users.iter().any(|o| o.user == user && o.domain == domain) {
                c.err(
                    format!("{path}.user"),
                    format!("user `{}` has two entries; merge them", u.user),
                );
            }
            let mut callers = Vec::with_capacity(u.whitelist.callers.len());
            for (j, g) in u.whitelist.callers.iter().enumerate() {
                match Pattern::glob(g) {
                    Ok(p) => callers.push((g.clone(), p)),
                    Err(e) => c.err(format!("{path}.whitelist.callers[{j}]"), e),
                }
            }
            if u.max_calls == Some(0) {
                c.err(
                    format!("{path}.max_calls"),
                    "must be at least 1 (to refuse every call, use a whitelist with no callers)"
                        .into(),
                );
            }
            users.push(UserPolicy {
                name: u.user.clone(),
                user: user.to_owned(),
                domain,
                whitelist: u.whitelist.enabled,
                callers,
                max_calls: u.max_calls,
            });
        }

        c.bruteforce(&config.bruteforce);
        c.overload(&config.overload);
        c.calls(&config.calls);

        if !c.errors.is_empty() {
            return Err(c.errors);
        }
        Ok(Policy {
            trusted,
            zones: compiled_zones,
            rules,
            users,
            bruteforce: config.bruteforce.clone(),
            overload: config.overload.clone(),
            calls: config.calls.clone(),
            defaults: default_zone(),
        })
    }

    /// The policy with every table at its default: standard methods, no authentication, any
    /// body, no rules, no limits.
    pub fn permissive() -> Policy {
        match Policy::compile(&PolicyConfig::default(), None) {
            Ok(p) => p,
            // The defaults are checked by a test; this arm cannot be reached.
            Err(_) => Policy {
                trusted: Vec::new(),
                zones: Vec::new(),
                rules: Vec::new(),
                users: Vec::new(),
                bruteforce: BruteForceConfig::default(),
                overload: OverloadConfig::default(),
                calls: CallsConfig::default(),
                defaults: default_zone(),
            },
        }
    }

    /// The brute-force settings.
    pub fn bruteforce_config(&self) -> &BruteForceConfig {
        &self.bruteforce
    }

    /// The overload settings.
    pub fn overload_config(&self) -> &OverloadConfig {
        &self.overload
    }

    /// How calls are counted for the limits.
    pub fn calls_config(&self) -> &CallsConfig {
        &self.calls
    }

    /// Whether any call limit is configured (a zone's or a user's): without one, calls need
    /// not be counted.
    pub fn has_call_limits(&self) -> bool {
        self.users.iter().any(|u| u.max_calls.is_some())
            || self
                .zones
                .iter()
                .any(|z| z.limits.max_calls.is_some() || z.limits.max_calls_per_user.is_some())
    }

    /// The trusted networks (never banned, never rate-limited).
    pub fn trusted(&self) -> &[IpNet] {
        &self.trusted
    }

    /// Whether `addr` is in a trusted network.
    pub fn is_trusted(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.trusted.iter().any(|n| n.contains(&addr))
    }

    /// The flood budget of a zone (its entry's, or the default).
    pub fn flood_config(&self, zone: &str) -> FloodConfig {
        self.zone(zone).flood.clone()
    }

    /// The value of the `Allow` header of a 405 from `zone`: the allowed and locally answered
    /// methods.
    pub fn allow_header(&self, zone: &str) -> String {
        let z = self.zone(zone);
        let mut out: Vec<&str> = z.allow.iter().map(String::as_str).collect();
        for m in &z.local_only {
            if !out.contains(&m.as_str()) {
                out.push(m);
            }
        }
        out.join(", ")
    }

    /// The value of the `Accept` header of a 415 from `zone`, or none when any type is let in.
    pub fn accept_header(&self, zone: &str) -> Option<String> {
        self.zone(zone).content_types.as_ref().map(|list| {
            list.iter()
                .map(|(t, s)| format!("{t}/{s}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
    }

    /// The compiled entry of `zone`, or the built-in defaults (named `""`).
    pub(crate) fn zone(&self, zone: &str) -> &ZonePolicy {
        self.zones
            .iter()
            .find(|z| z.name == zone)
            .unwrap_or(&self.defaults)
    }
}

fn default_zone() -> ZonePolicy {
    let d = ZonePolicyConfig::defaults("");
    ZonePolicy {
        name: String::new(),
        configured: false,
        allow: STANDARD_METHODS.iter().map(|m| (*m).to_owned()).collect(),
        local_only: d.methods.local_only,
        refuse: d.methods.refuse,
        auth: Vec::new(),
        content_types: None,
        limits: d.limits,
        flood: d.flood,
    }
}

struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn err(&mut self, field: String, problem: String) {
        self.errors.push(FieldError { field, problem });
    }

    fn zone_name(&mut self, field: &str, name: &str, zones: Option<&[&str]>) {
        if name.is_empty() {
            self.err(field.to_owned(), "must not be empty".into());
            return;
        }
        if let Some(known) = zones {
            if !known.contains(&name) {
                let list: Vec<String> = known.iter().map(|z| format!("`{z}`")).collect();
                self.err(
                    field.to_owned(),
                    format!(
                        "unknown zone `{name}`; the zones are {}",
                        if list.is_empty() {
                            "none".to_owned()
                        } else {
                            list.join(", ")
                        }
                    ),
                );
            }
        }
    }

    fn method(&mut self, field: String, m: &str) -> bool {
        if m.is_empty() || !sip_message::is_token_str(m) {
            self.err(field, format!("`{m}` is not a SIP method name"));
            return false;
        }
        let upper = m.to_ascii_uppercase();
        if upper != m && STANDARD_METHODS.contains(&upper.as_str()) {
            self.err(
                field,
                format!("method names are case-sensitive; did you mean `{upper}`?"),
            );
            return false;
        }
        true
    }

    fn methods(&mut self, path: &str, list: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(list.len());
        for (j, m) in list.iter().enumerate() {
            let field = format!("{path}[{j}]");
            if !self.method(field.clone(), m) {
                continue;
            }
            if out.contains(m) {
                self.err(field, format!("`{m}` is listed twice"));
                continue;
            }
            out.push(m.clone());
        }
        out
    }

    fn networks(&mut self, path: &str, list: &[String]) -> Vec<IpNet> {
        let mut out = Vec::with_capacity(list.len());
        for (j, text) in list.iter().enumerate() {
            match parse_network(text) {
                Ok(n) => out.push(n),
                Err(e) => self.err(format!("{path}[{j}]"), e),
            }
        }
        out
    }

    fn pattern(
        &mut self,
        path: &str,
        key: &str,
        glob: &Option<String>,
        regex: &Option<String>,
    ) -> Option<Pattern> {
        match (glob, regex) {
            (Some(_), Some(_)) => {
                self.err(
                    format!("{path}.{key}_regex"),
                    format!("give either `{key}` (a glob) or `{key}_regex`, not both"),
                );
                None
            }
            (Some(g), None) => Pattern::glob(g)
                .map_err(|e| self.err(format!("{path}.{key}"), e))
                .ok(),
            (None, Some(r)) => Pattern::regex(r)
                .map_err(|e| self.err(format!("{path}.{key}_regex"), e))
                .ok(),
            (None, None) => None,
        }
    }

    fn reason(&mut self, field: &str, reason: &str) {
        if reason.is_empty() || reason.len() > 128 {
            self.err(field.to_owned(), "must be 1 to 128 bytes".into());
        } else if reason.chars().any(char::is_control) {
            self.err(
                field.to_owned(),
                "must not hold control characters (it becomes a reason phrase)".into(),
            );
        }
    }

    fn zone(&mut self, path: &str, z: &ZonePolicyConfig, configured: bool) -> ZonePolicy {
        let allow = match &z.methods.allow {
            Some(list) => self.methods(&format!("{path}.methods.allow"), list),
            None => STANDARD_METHODS
                .iter()
                .filter(|m| !z.methods.refuse.iter().any(|r| r == *m))
                .map(|m| (*m).to_owned())
                .collect(),
        };
        let local_only = self.methods(&format!("{path}.methods.local_only"), &z.methods.local_only);
        let refuse = self.methods(&format!("{path}.methods.refuse"), &z.methods.refuse);
        for (j, m) in z.methods.local_only.iter().enumerate() {
            if m == "ACK" || m == "CANCEL" {
                self.err(
                    format!("{path}.methods.local_only[{j}]"),
                    format!("{m} belongs to another request's transaction and cannot be answered on its own"),
                );
            }
        }
        for (j, m) in z.methods.refuse.iter().enumerate() {
            let explicit_allow = z.methods.allow.as_deref().unwrap_or(&[]);
            for (other, list) in [("allow", explicit_allow), ("local_only", &local_only[..])] {
                if list.contains(m) {
                    self.err(
                        format!("{path}.methods.refuse[{j}]"),
                        format!("`{m}` is also in methods.{other}"),
                    );
                }
            }
        }
        let mut auth = Vec::with_capacity(z.auth.require.len());
        for (k, req) in z.auth.require.iter().enumerate() {
            let rpath = format!("{path}.auth.require[{k}].methods");
            if req.methods.is_empty() {
                self.err(rpath.clone(), "must name at least one method".into());
            }
            let methods = self.methods(&rpath, &req.methods);
            for (j, m) in req.methods.iter().enumerate() {
                if m == "ACK" || m == "CANCEL" {
                    self.err(
                        format!("{rpath}[{j}]"),
                        format!("{m} cannot be challenged (RFC 3261 section 22.1)"),
                    );
                }
            }
            auth.push((methods, req.destination));
        }
        let content_types = z.content_types.allow.as_ref().map(|list| {
            let mut out = Vec::with_capacity(list.len());
            for (j, ct) in list.iter().enumerate() {
                match parse_media_range(ct) {
                    Ok(v) => out.push(v),
                    Err(e) => self.err(format!("{path}.content_types.allow[{j}]"), e),
                }
            }
            out
        });
        for (key, v) in [
            ("max_calls", z.limits.max_calls),
            ("max_calls_per_user", z.limits.max_calls_per_user),
            ("max_media_streams", z.limits.max_media_streams),
        ] {
            if v == Some(0) {
                self.err(
                    format!("{path}.limits.{key}"),
                    "must be at least 1 (leave it out for no limit)".into(),
                );
            }
        }
        let f = &z.flood;
        if f.rate > 1_000_000 {
            self.err(
                format!("{path}.flood.rate"),
                format!("must be 0 (off) to 1000000, got {}", f.rate),
            );
        }
        if f.burst > 1_000_000 {
            self.err(
                format!("{path}.flood.burst"),
                format!("must be 0 (twice the rate) to 1000000, got {}", f.burst),
            );
        }
        ZonePolicy {
            name: z.name.clone(),
            configured,
            allow,
            local_only,
            refuse,
            auth,
            content_types,
            limits: z.limits.clone(),
            flood: z.flood.clone(),
        }
    }

    fn bruteforce(&mut self, b: &BruteForceConfig) {
        let p = "policy.bruteforce";
        let mut range = |key: &str, v: u32, lo: u32, hi: u32| {
            if !(lo..=hi).contains(&v) {
                self.err(
                    format!("{p}.{key}"),
                    format!("must be {lo} to {hi}, got {v}"),
                );
            }
        };
        range("max_failures", b.max_failures, 0, 100);
        range("user_max_failures", b.user_max_failures, 0, 100);
        range("window_s", b.window_s, 1, 86_400);
        range("ban_s", b.ban_s, 1, 31_536_000);
        range("max_ban_s", b.max_ban_s, 1, 31_536_000);
        range("forget_s", b.forget_s, 1, 31_536_000);
        range("capacity", b.capacity, 16, 16_777_216);
        range("max_bans", b.max_bans, 16, 16_777_216);
        if b.ban_s > b.max_ban_s {
            self.err(
                format!("{p}.ban_s"),
                format!(
                    "must not be greater than max_ban_s ({}), got {}",
                    b.max_ban_s, b.ban_s
                ),
            );
        }
        if b.forget_s < b.window_s {
            self.err(
                format!("{p}.forget_s"),
                format!(
                    "must not be less than window_s ({}), got {}",
                    b.window_s, b.forget_s
                ),
            );
        }
    }

    fn calls(&mut self, c: &CallsConfig) {
        if !(60..=604_800).contains(&c.max_duration_s) {
            self.err(
                "policy.calls.max_duration_s".to_owned(),
                format!("must be 60 to 604800, got {}", c.max_duration_s),
            );
        }
        if !(16..=16_777_216).contains(&c.max_tracked) {
            self.err(
                "policy.calls.max_tracked".to_owned(),
                format!("must be 16 to 16777216, got {}", c.max_tracked),
            );
        }
    }

    fn overload(&mut self, o: &OverloadConfig) {
        let p = "policy.overload";
        if !(1..=100).contains(&o.enter_percent) {
            self.err(
                format!("{p}.enter_percent"),
                format!("must be 1 to 100, got {}", o.enter_percent),
            );
        }
        if o.leave_percent >= o.enter_percent {
            self.err(
                format!("{p}.leave_percent"),
                format!(
                    "must be less than enter_percent ({}), got {}",
                    o.enter_percent, o.leave_percent
                ),
            );
        }
        if !(1..=3600).contains(&o.retry_after_s) {
            self.err(
                format!("{p}.retry_after_s"),
                format!("must be 1 to 3600, got {}", o.retry_after_s),
            );
        }
    }
}

/// A network in CIDR notation, or a bare address (a network of one).
pub(crate) fn parse_network(text: &str) -> Result<IpNet, String> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(ip.to_canonical()));
    }
    let net: IpNet = text.parse().map_err(|_| {
        format!("`{text}` is not a network in CIDR notation (e.g. 192.0.2.0/24) nor an address")
    })?;
    if net.trunc() != net {
        return Err(format!(
            "`{text}` has host bits set; the network is `{}`",
            net.trunc()
        ));
    }
    Ok(net)
}

/// `type/subtype`, `type/*` or `*/*`, lower-cased.
fn parse_media_range(text: &str) -> Result<(String, String), String> {
    let bad = || format!("`{text}` is not a media type; write `type/subtype`, `type/*` or `*/*`");
    let (t, s) = text.split_once('/').ok_or_else(bad)?;
    let ok =
        |p: &str| p == "*" || (!p.is_empty() && sip_message::is_token_str(p) && !p.contains('*'));
    if !ok(t) || !ok(s) || (t == "*" && s != "*") {
        return Err(bad());
    }
    Ok((t.to_ascii_lowercase(), s.to_ascii_lowercase()))
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Destination::Local => "local",
            Destination::Onward => "onward",
            Destination::Any => "any",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str, zones: Option<&[&str]>) -> Vec<String> {
        let cfg: PolicyConfig = toml::from_str(text).unwrap();
        match Policy::compile(&cfg, zones) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn defaults_compile() {
        assert!(Policy::compile(&PolicyConfig::default(), Some(&[])).is_ok());
        let p = Policy::permissive();
        assert_eq!(p.allow_header("any"), STANDARD_METHODS.join(", "));
    }

    #[test]
    fn validation_errors_name_the_field() {
        let cases: &[(&str, &str)] = &[
            ("trusted = [\"10.0.0.1/8\"]",
             "policy.trusted[0]: `10.0.0.1/8` has host bits set; the network is `10.0.0.0/8`"),
            ("trusted = [\"nonsense\"]",
             "policy.trusted[0]: `nonsense` is not a network in CIDR notation (e.g. 192.0.2.0/24) nor an address"),
            ("[[zone]]\nname = \"\"", "policy.zone[0].name: must not be empty"),
            ("[[zone]]\nname = \"wan\"\n[[zone]]\nname = \"wan\"",
             "policy.zone[1].name: zone `wan` has two entries; merge them"),
            ("[[zone]]\nname = \"wan\"\nmethods.allow = [\"invite\"]",
             "policy.zone[0].methods.allow[0]: method names are case-sensitive; did you mean `INVITE`?"),
            ("[[zone]]\nname = \"wan\"\nmethods.allow = [\"IN VITE\"]",
             "policy.zone[0].methods.allow[0]: `IN VITE` is not a SIP method name"),
            ("[[zone]]\nname = \"wan\"\nmethods.allow = [\"BYE\", \"BYE\"]",
             "policy.zone[0].methods.allow[1]: `BYE` is listed twice"),
            ("[[zone]]\nname = \"wan\"\nmethods.allow = [\"BYE\"]\nmethods.refuse = [\"BYE\"]",
             "policy.zone[0].methods.refuse[0]: `BYE` is also in methods.allow"),
            ("[[zone]]\nname = \"wan\"\nmethods.local_only = [\"ACK\"]",
             "policy.zone[0].methods.local_only[0]: ACK belongs to another request's transaction and cannot be answered on its own"),
            ("[[zone]]\nname = \"wan\"\nauth.require = [{ methods = [\"CANCEL\"] }]",
             "policy.zone[0].auth.require[0].methods[0]: CANCEL cannot be challenged (RFC 3261 section 22.1)"),
            ("[[zone]]\nname = \"wan\"\nauth.require = [{ methods = [] }]",
             "policy.zone[0].auth.require[0].methods: must name at least one method"),
            ("[[zone]]\nname = \"wan\"\ncontent_types.allow = [\"*/sdp\"]",
             "policy.zone[0].content_types.allow[0]: `*/sdp` is not a media type; write `type/subtype`, `type/*` or `*/*`"),
            ("[[zone]]\nname = \"wan\"\nlimits.max_calls = 0",
             "policy.zone[0].limits.max_calls: must be at least 1 (leave it out for no limit)"),
            ("[[zone]]\nname = \"wan\"\nflood.rate = 5\nflood.burst = 1000001",
             "policy.zone[0].flood.burst: must be 0 (twice the rate) to 1000000, got 1000001"),
            ("[[rule]]\nfrom = \"*@x\"\nfrom_regex = \"x\"\naction = \"drop\"",
             "policy.rule[0].from_regex: give either `from` (a glob) or `from_regex`, not both"),
            ("[[rule]]\nto = \"a b\"\naction = \"drop\"",
             "policy.rule[0].to: ' ' is not allowed in a glob (addresses have no white space)"),
            ("[[rule]]\nrequest_uri_regex = \"[z-a]\"\naction = \"drop\"",
             "policy.rule[0].request_uri_regex: invalid regex: invalid character class range, the start must be <= the end"),
            ("[[rule]]\naction = \"refuse\"\nstatus = 200",
             "policy.rule[0].status: must be an error status from 400 to 699, got 200"),
            ("[[rule]]\naction = \"drop\"\nstatus = 403",
             "policy.rule[0].status: only for action = \"refuse\""),
            ("[[rule]]\naction = \"refuse\"\nreason = \"a\\r\\nX-Injected: 1\"",
             "policy.rule[0].reason: must not hold control characters (it becomes a reason phrase)"),
            ("[[rule]]\nsource = [\"192.0.2.0/33\"]\naction = \"drop\"",
             "policy.rule[0].source[0]: `192.0.2.0/33` is not a network in CIDR notation (e.g. 192.0.2.0/24) nor an address"),
            ("[[rule]]\nmethods = [\"bye\"]\naction = \"drop\"",
             "policy.rule[0].methods[0]: method names are case-sensitive; did you mean `BYE`?"),
            ("[[user]]\nuser = \"a@\"", "policy.user[0].user: `a@` is not a user name; write `alice` or `alice@corp.example`"),
            ("[[user]]\nuser = \"a\"\n[[user]]\nuser = \"a\"", "policy.user[1].user: user `a` has two entries; merge them"),
            ("[[user]]\nuser = \"a\"\nwhitelist.callers = [\"\"]", "policy.user[0].whitelist.callers[0]: must not be empty"),
            ("[[user]]\nuser = \"a\"\nmax_calls = 0",
             "policy.user[0].max_calls: must be at least 1 (to refuse every call, use a whitelist with no callers)"),
            ("[bruteforce]\nban_s = 1000\nmax_ban_s = 10",
             "policy.bruteforce.ban_s: must not be greater than max_ban_s (10), got 1000"),
            ("[bruteforce]\nmax_failures = 101", "policy.bruteforce.max_failures: must be 0 to 100, got 101"),
            ("[bruteforce]\nwindow_s = 100\nforget_s = 50",
             "policy.bruteforce.forget_s: must not be less than window_s (100), got 50"),
            ("[overload]\nenter_percent = 50\nleave_percent = 50",
             "policy.overload.leave_percent: must be less than enter_percent (50), got 50"),
            ("[overload]\nretry_after_s = 0", "policy.overload.retry_after_s: must be 1 to 3600, got 0"),
        ];
        for (text, want) in cases {
            let got = errors(text, None);
            assert_eq!(got, vec![(*want).to_owned()], "for:\n{text}");
        }
    }

    #[test]
    fn refuse_alone_trims_the_default_allow_list() {
        let cfg: PolicyConfig =
            toml::from_str("[[zone]]\nname = \"wan\"\nmethods.refuse = [\"MESSAGE\"]").unwrap();
        let p = Policy::compile(&cfg, None).unwrap();
        assert!(!p.allow_header("wan").contains("MESSAGE"));
        assert!(p.allow_header("wan").contains("INVITE"));
    }

    #[test]
    fn zones_are_checked_against_the_configuration() {
        let text = "[[zone]]\nname = \"wan\"\n[[rule]]\nzones = [\"dmz\"]\naction = \"drop\"";
        assert_eq!(
            errors(text, Some(&["lan", "wan"])),
            vec!["policy.rule[0].zones[0]: unknown zone `dmz`; the zones are `lan`, `wan`"]
        );
        assert!(errors(text, None).is_empty());
    }

    #[test]
    fn every_error_is_reported() {
        let text = "trusted = [\"x\"]\n[[rule]]\nfrom_regex = \"(\"\naction = \"drop\"\n\
                    [overload]\nretry_after_s = 0";
        let got = errors(text, None);
        assert_eq!(got.len(), 3, "{got:#?}");
    }

    #[test]
    fn networks() {
        assert_eq!(
            parse_network("192.0.2.1").unwrap().to_string(),
            "192.0.2.1/32"
        );
        assert_eq!(
            parse_network("::ffff:192.0.2.1").unwrap().to_string(),
            "192.0.2.1/32"
        );
        assert_eq!(
            parse_network("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
    }
}
