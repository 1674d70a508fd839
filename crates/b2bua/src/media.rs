//! The narrow interface between the B2BUA and the media relay (DESIGN.md: "allocate, update,
//! release a session"), so that tests run a fake and the relay could live in another process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A media session as the port names it (one per call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaSessionId(pub u64);

/// Which call leg an SDP comes from. Leg A (the caller's) is side A of the relay session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MediaSide {
    A,
    B,
}

/// Why the media port refused. The B2BUA turns it into 488 (an SDP it cannot relay) or 500.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaPortError {
    /// The SDP cannot be relayed (does not parse, too many streams, ...): 488.
    #[error("SDP not acceptable: {0}")]
    NotAcceptable(String),
    /// The relay cannot serve (no ports, unknown zone, worker gone): 500/503.
    #[error("media relay: {0}")]
    Unavailable(String),
}

/// What the B2BUA needs from a media relay. Every SDP that crosses the B2BUA goes through
/// `offer` or `answer` and comes back rewritten for the other side (addresses of our zone,
/// our ports), which is half of topology hiding.
pub trait MediaPort {
    /// A session bridging `zone_a` (leg A) and `zone_b` (leg B).
    fn create_session(
        &mut self,
        zone_a: &str,
        zone_b: &str,
    ) -> Result<MediaSessionId, MediaPortError>;
    /// An offer from `from`; returns the offer for the other side.
    fn offer(
        &mut self,
        id: MediaSessionId,
        from: MediaSide,
        sdp: &[u8],
    ) -> Result<Vec<u8>, MediaPortError>;
    /// An answer from `from`; returns the answer for the other side.
    fn answer(
        &mut self,
        id: MediaSessionId,
        from: MediaSide,
        sdp: &[u8],
    ) -> Result<Vec<u8>, MediaPortError>;
    /// The call is over: free the ports.
    fn release(&mut self, id: MediaSessionId);
}

/// A media port without sockets, for tests and dry runs: it rewrites `c=` and `o=` addresses
/// to a per-zone address and `m=` ports to a counter, drops ICE candidates and `a=rtcp:`, and
/// records every call. Clones share their state, so a test keeps one to look inside.
#[derive(Debug, Clone, Default)]
pub struct FakeMediaPort {
    inner: Arc<Mutex<FakeInner>>,
}

#[derive(Debug, Default)]
struct FakeInner {
    zone_addr: HashMap<String, String>,
    sessions: HashMap<u64, (String, String)>,
    next: u64,
    next_port: u16,
    log: Vec<(&'static str, u64)>,
    fail_next: Option<MediaPortError>,
}

impl FakeMediaPort {
    /// `zones`: `(zone, address written into SDP sent into it)`.
    pub fn new(zones: &[(&str, &str)]) -> FakeMediaPort {
        let inner = FakeInner {
            zone_addr: zones
                .iter()
                .map(|(z, a)| ((*z).to_owned(), (*a).to_owned()))
                .collect(),
            next_port: 30000,
            ..FakeInner::default()
        };
        FakeMediaPort {
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut FakeInner) -> R) -> R {
        // A poisoned lock only means another test thread panicked while holding it.
        let mut g = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut g)
    }

    /// Sessions not yet released.
    pub fn live(&self) -> usize {
        self.with(|i| i.sessions.len())
    }

    /// Every operation so far: `("create" | "offer" | "answer" | "release", session)`.
    pub fn log(&self) -> Vec<(&'static str, u64)> {
        self.with(|i| i.log.clone())
    }

    /// Makes the next offer or answer fail with `e`.
    pub fn fail_next(&self, e: MediaPortError) {
        self.with(|i| i.fail_next = Some(e));
    }

    fn rewrite(
        &mut self,
        id: MediaSessionId,
        from: MediaSide,
        sdp: &[u8],
        op: &'static str,
    ) -> Result<Vec<u8>, MediaPortError> {
        self.with(|inner| inner.rewrite(id, from, sdp, op))
    }
}

impl FakeInner {
    fn rewrite(
        &mut self,
        id: MediaSessionId,
        from: MediaSide,
        sdp: &[u8],
        op: &'static str,
    ) -> Result<Vec<u8>, MediaPortError> {
        if let Some(e) = self.fail_next.take() {
            return Err(e);
        }
        let (za, zb) = self
            .sessions
            .get(&id.0)
            .ok_or_else(|| MediaPortError::Unavailable(format!("no session {}", id.0)))?;
        let to_zone = match from {
            MediaSide::A => zb,
            MediaSide::B => za,
        };
        let addr = self
            .zone_addr
            .get(to_zone)
            .cloned()
            .ok_or_else(|| MediaPortError::Unavailable(format!("no zone {to_zone}")))?;
        let text = std::str::from_utf8(sdp)
            .map_err(|_| MediaPortError::NotAcceptable("SDP is not UTF-8".into()))?;
        if !text.starts_with("v=0") {
            return Err(MediaPortError::NotAcceptable("not an SDP".into()));
        }
        self.log.push((op, id.0));
        let mut out = String::new();
        for line in text.lines() {
            let l = if line.starts_with("c=") {
                format!("c=IN IP4 {addr}")
            } else if let Some(rest) = line.strip_prefix("o=") {
                let f: Vec<&str> = rest.split(' ').collect();
                let sess = f.get(1).copied().unwrap_or("1");
                let ver = f.get(2).copied().unwrap_or("1");
                format!("o=- {sess} {ver} IN IP4 {addr}")
            } else if let Some(rest) = line.strip_prefix("m=") {
                let mut f = rest.splitn(3, ' ');
                let media = f.next().unwrap_or("audio");
                let _peer_port = f.next();
                let tail = f.next().unwrap_or("RTP/AVP 0");
                self.next_port = self.next_port.wrapping_add(2);
                format!("m={media} {} {tail}", self.next_port)
            } else if line.starts_with("a=candidate") || line.starts_with("a=rtcp:") {
                continue;
            } else {
                line.to_owned()
            };
            out.push_str(&l);
            out.push_str("\r\n");
        }
        Ok(out.into_bytes())
    }
}

impl MediaPort for FakeMediaPort {
    fn create_session(
        &mut self,
        zone_a: &str,
        zone_b: &str,
    ) -> Result<MediaSessionId, MediaPortError> {
        self.with(|i| {
            i.next += 1;
            let n = i.next;
            i.sessions.insert(n, (zone_a.to_owned(), zone_b.to_owned()));
            i.log.push(("create", n));
            Ok(MediaSessionId(n))
        })
    }

    fn offer(
        &mut self,
        id: MediaSessionId,
        from: MediaSide,
        sdp: &[u8],
    ) -> Result<Vec<u8>, MediaPortError> {
        self.rewrite(id, from, sdp, "offer")
    }

    fn answer(
        &mut self,
        id: MediaSessionId,
        from: MediaSide,
        sdp: &[u8],
    ) -> Result<Vec<u8>, MediaPortError> {
        self.rewrite(id, from, sdp, "answer")
    }

    fn release(&mut self, id: MediaSessionId) {
        self.with(|i| {
            if i.sessions.remove(&id.0).is_some() {
                i.log.push(("release", id.0));
            }
        })
    }
}

/// The real relay. `MediaRelay`'s control methods take `&self`, so an `Arc` of it is shared
/// with the shell that reads its events.
#[cfg(feature = "media-relay")]
mod relay {
    use super::*;
    use media_relay::{MediaError, MediaRelay, SessionId, Side};

    fn side(s: MediaSide) -> Side {
        match s {
            MediaSide::A => Side::A,
            MediaSide::B => Side::B,
        }
    }

    fn err(e: MediaError) -> MediaPortError {
        match e {
            MediaError::Sdp(_)
            | MediaError::Rewrite(_)
            | MediaError::TooManyStreams { .. }
            | MediaError::BadCrypto => MediaPortError::NotAcceptable(e.to_string()),
            other => MediaPortError::Unavailable(other.to_string()),
        }
    }

    impl MediaPort for Arc<MediaRelay> {
        fn create_session(
            &mut self,
            zone_a: &str,
            zone_b: &str,
        ) -> Result<MediaSessionId, MediaPortError> {
            MediaRelay::create_session(self, zone_a, zone_b)
                .map(|SessionId(n)| MediaSessionId(n))
                .map_err(err)
        }

        fn offer(
            &mut self,
            id: MediaSessionId,
            from: MediaSide,
            sdp: &[u8],
        ) -> Result<Vec<u8>, MediaPortError> {
            MediaRelay::offer(self, SessionId(id.0), side(from), sdp).map_err(err)
        }

        fn answer(
            &mut self,
            id: MediaSessionId,
            from: MediaSide,
            sdp: &[u8],
        ) -> Result<Vec<u8>, MediaPortError> {
            MediaRelay::answer(self, SessionId(id.0), side(from), sdp).map_err(err)
        }

        fn release(&mut self, id: MediaSessionId) {
            // An unknown session was released already: nothing to free.
            let _ = MediaRelay::release(self, SessionId(id.0));
        }
    }
}
