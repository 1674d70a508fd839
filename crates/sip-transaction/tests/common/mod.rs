//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use sip_message::Message;
use sip_transaction::testkit::{LinkConfig, Node, Pair, RequestBuilder};
use sip_transaction::{ClientTxId, Config, ServerTxId, TerminationReason, Timer, TuEvent, TxId};

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Durations in milliseconds, for readable assertions.
pub fn in_ms(v: &[Duration]) -> Vec<u128> {
    v.iter().map(|d| d.as_millis()).collect()
}

pub fn invite(branch: &str) -> RequestBuilder {
    RequestBuilder::new("INVITE", Some(branch))
}

pub fn options(branch: &str) -> RequestBuilder {
    RequestBuilder::new("OPTIONS", Some(branch))
}

/// A perfect 10 ms link, default configs.
pub fn pair(reliable: bool) -> Pair {
    Pair::with_link(LinkConfig::perfect(), reliable)
}

/// A pair whose B side has the given config.
pub fn pair_b(cfg: Config, link: LinkConfig, reliable: bool) -> Pair {
    Pair::new(Config::default(), cfg, link, reliable)
}

/// The new server transactions B was told about, in order.
pub fn requests(node: &mut Node) -> Vec<(ServerTxId, Message)> {
    node.take_events()
        .into_iter()
        .filter_map(|e| match e {
            TuEvent::Request { id, msg, .. } => Some((id, msg)),
            _ => None,
        })
        .collect()
}

/// Statuses of the responses the TU got on client transaction `id` (whole log).
pub fn responses(node: &Node, id: ClientTxId) -> Vec<u16> {
    node.log
        .iter()
        .filter_map(|(_, e)| match e {
            TuEvent::Response { id: i, msg, .. } if *i == id => msg.status(),
            _ => None,
        })
        .collect()
}

/// When (since `start`) and why `tx` terminated, from the log.
pub fn terminated(start: Instant, node: &Node, tx: TxId) -> Option<(Duration, TerminationReason)> {
    node.log.iter().find_map(|(at, e)| match e {
        TuEvent::Terminated { tx: t, reason } if *t == tx => Some((*at - start, *reason)),
        _ => None,
    })
}

/// Timeout events for `tx`.
pub fn timeouts(node: &Node, tx: TxId) -> Vec<Timer> {
    node.log
        .iter()
        .filter_map(|(_, e)| match e {
            TuEvent::Timeout { tx: t, timer } if *t == tx => Some(*timer),
            _ => None,
        })
        .collect()
}
