//! What the B2BUA needs to know about itself and its policy.

use std::time::Duration;

use crate::transport::SipTransport;

/// Who sipwarden is in one zone: what it writes into Via, Contact and From on legs there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneIdentity {
    /// The zone's name (as the routing and the media relay name it).
    pub name: String,
    /// `host[:port]` of our Via and Contact in this zone for each transport it listens on
    /// (one each, the listener's advertised address). A leg takes the address of its own
    /// transport (module `transport`); the first is the default, whose host is also the
    /// caller domain when `domain` is not set.
    pub addresses: Vec<(SipTransport, String)>,
    /// Host part of the From URI of calls that leave into this zone; `None`: `address`'s host.
    pub domain: Option<String>,
    /// Peers in this zone are trusted (the LAN): redirects may reach them.
    pub trusted: bool,
    /// What sipwarden does with a REFER whose call has its other leg in this zone, i.e.
    /// whether the peers of this zone get to see transfers. `None`: [`ReferMode::Local`] for
    /// an untrusted zone (an ITSP trunk that may refuse REFER, and whose REFER handling would
    /// see the LAN's Refer-To), [`ReferMode::Passthrough`] for a trusted one. A trunk's own
    /// setting overrides it per call ([`crate::B2bua::set_refer_mode`]).
    pub refer: Option<ReferMode>,
}

/// How a REFER (call transfer, RFC 3515) crosses the B2BUA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReferMode {
    /// sipwarden carries the transfer out itself: 202 and NOTIFYs to the referrer, a new leg
    /// to the Refer-To target in the referrer's zone, the other leg re-bridged to it. The
    /// other leg's peer sees no REFER, no NOTIFY and (unless it was put on hold) nothing at
    /// all.
    Local,
    /// The REFER is sent on the other leg with its Refer-To (and Replaces, Referred-By)
    /// rewritten to identities of that leg's zone; the NOTIFYs come back mapped.
    Passthrough,
}

impl ReferMode {
    /// `"local"` or `"passthrough"` (the config file's spelling).
    pub fn parse(s: &str) -> Option<ReferMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "local" => Some(ReferMode::Local),
            "passthrough" | "pass-through" | "pass" => Some(ReferMode::Passthrough),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReferMode::Local => "local",
            ReferMode::Passthrough => "passthrough",
        }
    }
}

impl ZoneIdentity {
    /// A zone with one UDP address (add others with [`ZoneIdentity::with_address`]).
    pub fn new(name: &str, address: &str) -> ZoneIdentity {
        ZoneIdentity {
            name: name.to_owned(),
            addresses: vec![(SipTransport::Udp, address.to_owned())],
            domain: None,
            trusted: false,
            refer: None,
        }
    }

    /// Sets our address for `t` (replacing the one it had).
    pub fn with_address(mut self, t: SipTransport, address: &str) -> ZoneIdentity {
        match self.addresses.iter_mut().find(|(x, _)| *x == t) {
            Some(slot) => slot.1 = address.to_owned(),
            None => self.addresses.push((t, address.to_owned())),
        }
        self
    }

    /// Our address for `t`, when the zone listens on it.
    pub fn address(&self, t: SipTransport) -> Option<&str> {
        self.addresses
            .iter()
            .find(|(x, _)| *x == t)
            .map(|(_, a)| a.as_str())
    }

    /// The REFER handling for calls whose other leg is in this zone (the default applied).
    pub fn refer_mode(&self) -> ReferMode {
        match (self.refer, self.trusted) {
            (Some(m), _) => m,
            (None, true) => ReferMode::Passthrough,
            (None, false) => ReferMode::Local,
        }
    }

    pub(crate) fn host(&self) -> &str {
        let a = self.addresses.first().map_or("", |(_, a)| a.as_str());
        if a.starts_with('[') {
            return a.find(']').map_or(a, |e| &a[..=e]);
        }
        a.rsplit_once(':').map_or(a, |(h, _)| h)
    }

    pub(crate) fn caller_domain(&self) -> &str {
        self.domain.as_deref().unwrap_or_else(|| self.host())
    }
}

/// Configuration of the B2BUA. The header lists name what may cross from one leg to the other;
/// everything else is dropped (a whitelist: new headers stay on their side until allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct B2buaConfig {
    pub zones: Vec<ZoneIdentity>,
    /// Headers copied from leg to leg (requests and responses), case-insensitive. The B2BUA's
    /// own headers (Via, From, To, Call-ID, CSeq, Contact, Route, Record-Route, Max-Forwards,
    /// Content-*, Require, Supported, RSeq, RAck, Session-Expires, Min-SE) are never taken
    /// from this list: they are written per leg.
    pub pass_headers: Vec<String>,
    /// Copy P-Asserted-Identity (host part mapped like From) and Privacy.
    pub pass_asserted_identity: bool,
    /// Copy User-Agent and Server (they name PBX models and versions).
    pub pass_user_agent: bool,
    /// Pass 3xx to an untrusted zone (their Contact names the redirect target as it is).
    /// Otherwise a 3xx becomes `480 Temporarily Unavailable` there.
    pub pass_redirects_to_untrusted: bool,
    /// Body types copied as they are (lower case `type/subtype`). SDP always goes through the
    /// media port; other types are dropped.
    pub pass_body_types: Vec<String>,
    /// Session interval (RFC 4028) sipwarden asks for on leg B when the caller asks for none;
    /// `None`: no session timer unless a peer asks.
    pub session_expires: Option<Duration>,
    /// Our Min-SE (RFC 4028: at least 90 s).
    pub min_se: Duration,
    /// Messages kept per call for the ladder diagram.
    pub history_limit: usize,
    /// Fixed key for our Call-IDs and tags (reproducible traces, tests). `None` (the
    /// default): a random key per process, so they cannot be predicted.
    pub id_seed: Option<u64>,
}

impl Default for B2buaConfig {
    fn default() -> Self {
        B2buaConfig {
            zones: Vec::new(),
            pass_headers: [
                "Allow",
                "Accept",
                "Accept-Language",
                "Subject",
                "Priority",
                "Reason",
                "Retry-After",
                "Content-Disposition",
                "Info-Package",
                "Recv-Info",
                "Event",
                "Unsupported",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
            pass_asserted_identity: false,
            pass_user_agent: false,
            pass_redirects_to_untrusted: false,
            pass_body_types: vec![
                "application/dtmf-relay".into(),
                "application/dtmf".into(),
                "text/plain".into(),
            ],
            session_expires: Some(Duration::from_secs(1800)),
            min_se: Duration::from_secs(90),
            history_limit: 64,
            id_seed: None,
        }
    }
}

impl B2buaConfig {
    pub(crate) fn zone(&self, name: &str) -> Option<usize> {
        self.zones.iter().position(|z| z.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_per_transport() {
        let z = ZoneIdentity::new("wan", "198.51.100.1:5060")
            .with_address(SipTransport::Tls, "198.51.100.1:5061")
            .with_address(SipTransport::Tls, "[2001:db8::1]:5061");
        assert_eq!(z.address(SipTransport::Udp), Some("198.51.100.1:5060"));
        assert_eq!(z.address(SipTransport::Tls), Some("[2001:db8::1]:5061"));
        assert_eq!(z.address(SipTransport::Tcp), None);
        assert_eq!(z.addresses.len(), 2);
        // The default (first) address names the caller domain.
        assert_eq!(z.caller_domain(), "198.51.100.1");
    }
}
