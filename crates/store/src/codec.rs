//! The on-disk encoding of stored values: a version byte, then fields in a fixed order;
//! integers as LEB128 varints, strings as a varint length and UTF-8 bytes, optional fields
//! announced by a flags byte. Decoding checks every length against the bytes left, so a damaged
//! value is a [`StoreError::Corrupt`], never a panic or a huge allocation.
//!
//! Binding sets (value of the registrations table, keyed by AOR):
//! ```text
//! u8 version=1, varint count, count x {
//!   str contact, str contact_params, u8 flags (bit 0 q, 1 received, 2 flow, 3 instance_id,
//!   4 reg_id, 5 user_agent), [varint q], varint expires_at (unix s), str call_id, varint cseq,
//!   varint path count, path strs, [str received], [str flow], [str instance_id], [varint reg_id],
//!   [str user_agent], varint updated_at (unix s) }
//! ```
//! The AOR is the key and is not repeated in each binding.
//!
//! Bans (keyed by [`crate::BanSource::storage_key`]): `u8 version=1, varint until (unix s),
//! str reason, varint count`.
//!
//! CDRs (keyed by id): `u8 version=1, str call_id, str from, str to, varint start (unix ms),
//! u8 flags (bit 0 answer), [varint answer], varint end, u8 disposition (0 answered, 1 busy,
//! 2 no answer, 3 cancelled, 4 failed + varint status), str zone_in, str zone_out,
//! varint bytes_in, varint bytes_out`.

use crate::error::{Result, StoreError};
use crate::types::{
    from_unix_millis, from_unix_secs, unix_millis, unix_secs, Ban, BanSource, Binding, Cdr,
    Disposition,
};

const BINDINGS_V1: u8 = 1;
const BAN_V1: u8 = 1;
const CDR_V1: u8 = 1;

#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn str(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
}

struct Dec<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Dec<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Self {
        Dec { buf, what }
    }

    fn bad(&self, why: &str) -> StoreError {
        StoreError::Corrupt(format!("{}: {why}", self.what))
    }

    fn u8(&mut self) -> Result<u8> {
        let (&b, rest) = self
            .buf
            .split_first()
            .ok_or_else(|| self.bad("truncated"))?;
        self.buf = rest;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            let part = u64::from(b & 0x7f);
            if shift == 63 && part > 1 {
                return Err(self.bad("varint overflow"));
            }
            v |= part << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.bad("varint too long"))
    }

    fn u32(&mut self) -> Result<u32> {
        let v = self.varint()?;
        u32::try_from(v).map_err(|_| self.bad("u32 out of range"))
    }

    fn u16(&mut self) -> Result<u16> {
        let v = self.varint()?;
        u16::try_from(v).map_err(|_| self.bad("u16 out of range"))
    }

    /// A count of items that each take at least one byte: bounded by the bytes left.
    fn count(&mut self) -> Result<usize> {
        let n = self.varint()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.buf.len() => Ok(n),
            _ => Err(self.bad("count exceeds the value")),
        }
    }

    fn str(&mut self) -> Result<String> {
        let n = self.count()?;
        let (s, rest) = self.buf.split_at(n);
        self.buf = rest;
        String::from_utf8(s.to_vec()).map_err(|_| self.bad("invalid UTF-8"))
    }

    fn secs(&mut self) -> Result<std::time::SystemTime> {
        let v = self.varint()?;
        from_unix_secs(v).ok_or_else(|| self.bad("time out of range"))
    }

    fn millis(&mut self) -> Result<std::time::SystemTime> {
        let v = self.varint()?;
        from_unix_millis(v).ok_or_else(|| self.bad("time out of range"))
    }

    fn version(&mut self, expected: u8) -> Result<()> {
        let v = self.u8()?;
        if v == expected {
            Ok(())
        } else {
            Err(StoreError::UnsupportedFormat(format!(
                "{}: encoding version {v}, this build reads {expected}",
                self.what
            )))
        }
    }

    fn finish(self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.bad("trailing bytes"))
        }
    }
}

const F_Q: u8 = 1;
const F_RECEIVED: u8 = 1 << 1;
const F_FLOW: u8 = 1 << 2;
const F_INSTANCE: u8 = 1 << 3;
const F_REG_ID: u8 = 1 << 4;
const F_USER_AGENT: u8 = 1 << 5;
const F_ALL: u8 = F_Q | F_RECEIVED | F_FLOW | F_INSTANCE | F_REG_ID | F_USER_AGENT;

pub(crate) fn encode_bindings(bindings: &[Binding]) -> Vec<u8> {
    let mut e = Enc::default();
    e.u8(BINDINGS_V1);
    e.varint(bindings.len() as u64);
    for b in bindings {
        e.str(&b.contact);
        e.str(&b.contact_params);
        let mut flags = 0;
        for (present, bit) in [
            (b.q.is_some(), F_Q),
            (b.received.is_some(), F_RECEIVED),
            (b.flow.is_some(), F_FLOW),
            (b.instance_id.is_some(), F_INSTANCE),
            (b.reg_id.is_some(), F_REG_ID),
            (b.user_agent.is_some(), F_USER_AGENT),
        ] {
            if present {
                flags |= bit;
            }
        }
        e.u8(flags);
        if let Some(q) = b.q {
            e.varint(q.into());
        }
        e.varint(unix_secs(b.expires_at));
        e.str(&b.call_id);
        e.varint(b.cseq.into());
        e.varint(b.path.len() as u64);
        for p in &b.path {
            e.str(p);
        }
        for s in [&b.received, &b.flow, &b.instance_id].into_iter().flatten() {
            e.str(s);
        }
        if let Some(r) = b.reg_id {
            e.varint(r.into());
        }
        if let Some(ua) = &b.user_agent {
            e.str(ua);
        }
        e.varint(unix_secs(b.updated_at));
    }
    e.0
}

pub(crate) fn decode_bindings(aor: &str, buf: &[u8]) -> Result<Vec<Binding>> {
    let mut d = Dec::new(buf, "binding set");
    d.version(BINDINGS_V1)?;
    let n = d.count()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let contact = d.str()?;
        let contact_params = d.str()?;
        let flags = d.u8()?;
        if flags & !F_ALL != 0 {
            return Err(d.bad("unknown flags"));
        }
        let opt_str = |d: &mut Dec<'_>, bit: u8| -> Result<Option<String>> {
            if flags & bit != 0 {
                d.str().map(Some)
            } else {
                Ok(None)
            }
        };
        let q = if flags & F_Q != 0 {
            Some(d.u16()?)
        } else {
            None
        };
        let expires_at = d.secs()?;
        let call_id = d.str()?;
        let cseq = d.u32()?;
        let path_len = d.count()?;
        let mut path = Vec::with_capacity(path_len);
        for _ in 0..path_len {
            path.push(d.str()?);
        }
        let received = opt_str(&mut d, F_RECEIVED)?;
        let flow = opt_str(&mut d, F_FLOW)?;
        let instance_id = opt_str(&mut d, F_INSTANCE)?;
        let reg_id = if flags & F_REG_ID != 0 {
            Some(d.u32()?)
        } else {
            None
        };
        let user_agent = opt_str(&mut d, F_USER_AGENT)?;
        let updated_at = d.secs()?;
        out.push(Binding {
            aor: aor.to_owned(),
            contact,
            contact_params,
            q,
            expires_at,
            call_id,
            cseq,
            path,
            received,
            flow,
            instance_id,
            reg_id,
            user_agent,
            updated_at,
        });
    }
    d.finish()?;
    Ok(out)
}

pub(crate) fn encode_ban(ban: &Ban) -> Vec<u8> {
    let mut e = Enc::default();
    e.u8(BAN_V1);
    e.varint(unix_secs(ban.until));
    e.str(&ban.reason);
    e.varint(ban.count.into());
    e.0
}

pub(crate) fn decode_ban(key: &str, buf: &[u8]) -> Result<Ban> {
    let source = BanSource::from_storage_key(key)?;
    let mut d = Dec::new(buf, "ban");
    d.version(BAN_V1)?;
    let until = d.secs()?;
    let reason = d.str()?;
    let count = d.u32()?;
    d.finish()?;
    Ok(Ban {
        source,
        until,
        reason,
        count,
    })
}

pub(crate) fn encode_cdr(cdr: &Cdr) -> Vec<u8> {
    let mut e = Enc::default();
    e.u8(CDR_V1);
    e.str(&cdr.call_id);
    e.str(&cdr.from);
    e.str(&cdr.to);
    e.varint(unix_millis(cdr.start));
    e.u8(u8::from(cdr.answer.is_some()));
    if let Some(a) = cdr.answer {
        e.varint(unix_millis(a));
    }
    e.varint(unix_millis(cdr.end));
    match cdr.disposition {
        Disposition::Answered => e.u8(0),
        Disposition::Busy => e.u8(1),
        Disposition::NoAnswer => e.u8(2),
        Disposition::Cancelled => e.u8(3),
        Disposition::Failed(status) => {
            e.u8(4);
            e.varint(status.into());
        }
    }
    e.str(&cdr.zone_in);
    e.str(&cdr.zone_out);
    e.varint(cdr.bytes_in);
    e.varint(cdr.bytes_out);
    e.0
}

pub(crate) fn decode_cdr(buf: &[u8]) -> Result<Cdr> {
    let mut d = Dec::new(buf, "cdr");
    d.version(CDR_V1)?;
    let call_id = d.str()?;
    let from = d.str()?;
    let to = d.str()?;
    let start = d.millis()?;
    let answer = match d.u8()? {
        0 => None,
        1 => Some(d.millis()?),
        _ => return Err(d.bad("unknown flags")),
    };
    let end = d.millis()?;
    let disposition = match d.u8()? {
        0 => Disposition::Answered,
        1 => Disposition::Busy,
        2 => Disposition::NoAnswer,
        3 => Disposition::Cancelled,
        4 => Disposition::Failed(d.u16()?),
        _ => return Err(d.bad("unknown disposition")),
    };
    let zone_in = d.str()?;
    let zone_out = d.str()?;
    let bytes_in = d.varint()?;
    let bytes_out = d.varint()?;
    d.finish()?;
    Ok(Cdr {
        call_id,
        from,
        to,
        start,
        answer,
        end,
        disposition,
        zone_in,
        zone_out,
        bytes_in,
        bytes_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn sample() -> Binding {
        let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut b = Binding::new(
            "sip:alice@example.com",
            "<sip:alice@192.0.2.10:5060;transport=tcp>",
            t,
            "c1@host",
            7,
            t,
        );
        b.contact_params = ";expires=3600;+sip.instance=\"<urn:uuid:1>\"".into();
        b.q = Some(500);
        b.path = vec!["<sip:edge1;lr>".into(), "<sip:edge2;lr>".into()];
        b.received = Some("192.0.2.10:40000".into());
        b.flow = Some("tcp-17".into());
        b.instance_id = Some("urn:uuid:1".into());
        b.reg_id = Some(u32::MAX);
        b.user_agent = Some("Phone/1.0".into());
        b
    }

    #[test]
    fn varint_roundtrip_edges() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut e = Enc::default();
            e.varint(v);
            let mut d = Dec::new(&e.0, "t");
            assert_eq!(d.varint().unwrap(), v);
            d.finish().unwrap();
        }
        // 10 bytes whose last carries more than bit 63: overflow, not wrap.
        let mut d = Dec::new(&[0xff; 9], "t");
        assert!(d.varint().is_err());
        let bytes = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Dec::new(&bytes, "t").varint().is_err());
    }

    #[test]
    fn bindings_roundtrip_full_and_empty_fields() {
        let full = sample();
        let bare = Binding::new("sip:alice@example.com", "", UNIX_EPOCH, "", 0, UNIX_EPOCH);
        let set = vec![full, bare];
        let bytes = encode_bindings(&set);
        assert_eq!(
            decode_bindings("sip:alice@example.com", &bytes).unwrap(),
            set
        );
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let bytes = encode_bindings(&[sample(), sample()]);
        for n in 0..bytes.len() {
            assert!(decode_bindings("a", &bytes[..n]).is_err(), "prefix {n}");
        }
        for i in 0..bytes.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= flip;
                let _ = decode_bindings("a", &b);
            }
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode_bindings("a", &trailing).is_err());
        let mut future = bytes;
        future[0] = 99;
        assert!(matches!(
            decode_bindings("a", &future),
            Err(StoreError::UnsupportedFormat(_))
        ));
    }

    #[test]
    fn ban_and_cdr_roundtrip() {
        let ban = Ban {
            source: BanSource::Key("user:mallory".into()),
            until: UNIX_EPOCH + Duration::from_secs(1_900_000_000),
            reason: "digest failures".into(),
            count: 3,
        };
        let key = ban.source.storage_key();
        assert_eq!(decode_ban(&key, &encode_ban(&ban)).unwrap(), ban);

        let cdr = Cdr {
            call_id: "x@y".into(),
            from: "sip:a@b".into(),
            to: "sip:c@d".into(),
            start: UNIX_EPOCH + Duration::from_millis(1_800_000_000_123),
            answer: Some(UNIX_EPOCH + Duration::from_millis(1_800_000_004_000)),
            end: UNIX_EPOCH + Duration::from_millis(1_800_000_064_999),
            disposition: Disposition::Failed(503),
            zone_in: "lan".into(),
            zone_out: "wan".into(),
            bytes_in: 1 << 40,
            bytes_out: 0,
        };
        let bytes = encode_cdr(&cdr);
        assert_eq!(decode_cdr(&bytes).unwrap(), cdr);
        for n in 0..bytes.len() {
            assert!(decode_cdr(&bytes[..n]).is_err());
        }
    }
}
