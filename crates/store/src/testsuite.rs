//! One test suite, run against every backend (`suite!` below instantiates it), plus tests that
//! only make sense for the durable backend and a differential test of the two.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::prelude::*;

/// What every backend under test implements.
pub(crate) trait AnyStore: RegistrationStore + BanStore + CdrStore {}
impl<T: RegistrationStore + BanStore + CdrStore> AnyStore for T {}

const AOR: &str = "sip:alice@example.com";

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn binding(aor: &str, contact: &str, expires: u64, call_id: &str, cseq: u32) -> Binding {
    let mut b = Binding::new(aor, contact, t(expires), call_id, cseq, t(0));
    b.contact_params = format!(";expires={expires}");
    b.received = Some("192.0.2.1:5060".into());
    b
}

fn upd(now: u64, call_id: &str, cseq: u32) -> BindingUpdate {
    BindingUpdate::new(t(now), call_id, cseq)
}

fn contacts(set: &[Binding]) -> Vec<&str> {
    set.iter().map(|b| b.contact.as_str()).collect()
}

fn cdr(call_id: &str, end: u64) -> Cdr {
    Cdr {
        call_id: call_id.into(),
        from: "sip:a@lan".into(),
        to: "sip:b@wan".into(),
        start: t(end.saturating_sub(60)),
        answer: Some(t(end.saturating_sub(55))),
        end: t(end),
        disposition: Disposition::Answered,
        zone_in: "lan".into(),
        zone_out: "wan".into(),
        bytes_in: 1000,
        bytes_out: 2000,
    }
}

/// The shared suite: each function is one test, run against each backend.
pub(crate) mod cases {
    use super::*;

    pub fn empty(s: &dyn AnyStore) {
        assert!(s.bindings(AOR).unwrap().is_empty());
        assert_eq!(s.count().unwrap(), RegistrationCount::default());
        assert!(s.all_aors(None, 10).unwrap().is_empty());
        assert_eq!(s.expire(t(10_000)).unwrap(), 0);
        assert!(s.remove_aor(AOR).unwrap().is_empty());
        assert!(s.list_bans().unwrap().is_empty());
        assert!(s.recent_cdrs(10).unwrap().is_empty());
    }

    pub fn insert_refresh_remove(s: &dyn AnyStore) {
        let b1 = binding(AOR, "sip:alice@192.0.2.1", 3600, "c1", 1);
        let set = s.apply(AOR, upd(0, "c1", 1).upsert(b1.clone())).unwrap();
        assert_eq!(set, vec![b1.clone()]);

        let b2 = binding(AOR, "sip:alice@192.0.2.2", 600, "c2", 1);
        let set = s.apply(AOR, upd(1, "c2", 1).upsert(b2.clone())).unwrap();
        assert_eq!(
            contacts(&set),
            ["sip:alice@192.0.2.1", "sip:alice@192.0.2.2"]
        );

        // Refresh keeps the binding's place.
        let b1r = binding(AOR, "sip:alice@192.0.2.1", 7200, "c1", 2);
        let set = s.apply(AOR, upd(2, "c1", 2).upsert(b1r.clone())).unwrap();
        assert_eq!(set, vec![b1r.clone(), b2.clone()]);
        assert_eq!(s.bindings(AOR).unwrap(), set);
        assert_eq!(
            s.count().unwrap(),
            RegistrationCount {
                aors: 1,
                bindings: 2
            }
        );

        // Remove by key; removing an absent key is a no-op.
        let set = s
            .apply(
                AOR,
                upd(3, "c2", 2)
                    .remove(b2.key())
                    .remove(BindingKey::Contact("sip:nobody@x".into())),
            )
            .unwrap();
        assert_eq!(set, vec![b1r.clone()]);

        // An upsert already expired at `now` is Expires: 0.
        let mut gone = b1r.clone();
        gone.expires_at = t(4);
        gone.cseq = 3;
        let set = s.apply(AOR, upd(4, "c1", 3).upsert(gone)).unwrap();
        assert!(set.is_empty());
        assert!(s.bindings(AOR).unwrap().is_empty());
        assert!(s.all_aors(None, 10).unwrap().is_empty());
        assert_eq!(s.count().unwrap(), RegistrationCount::default());
    }

    pub fn all_fields_roundtrip_and_times_truncate(s: &dyn AnyStore) {
        let mut b = binding(
            AOR,
            "<sip:alice@198.51.100.7:5061;transport=tls;ob>",
            3600,
            "c",
            1,
        );
        b.expires_at += Duration::from_millis(999);
        b.updated_at += Duration::from_nanos(1);
        b.q = Some(700);
        b.path = vec!["<sip:p1.example.net;lr>".into(), "<sip:p2;lr>".into()];
        b.flow = Some("tls:198.51.100.7:5061#9".into());
        b.instance_id = Some("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6".into());
        b.reg_id = Some(1);
        b.user_agent = Some("Ünïcode/2.0".into());
        let set = s.apply(AOR, upd(0, "c", 1).upsert(b.clone())).unwrap();
        let mut expect = b;
        expect.expires_at = t(3600);
        expect.updated_at = t(0);
        assert_eq!(set, vec![expect.clone()]);
        assert_eq!(s.bindings(AOR).unwrap(), vec![expect]);
    }

    pub fn out_of_order_is_refused(s: &dyn AnyStore) {
        let b = binding(AOR, "sip:a@1", 3600, "c1", 5);
        s.apply(AOR, upd(0, "c1", 5).upsert(b.clone())).unwrap();
        for cseq in [5, 4] {
            let mut stale = b.clone();
            stale.cseq = cseq;
            let err = s.apply(AOR, upd(1, "c1", cseq).upsert(stale)).unwrap_err();
            assert!(
                matches!(err, StoreError::OutOfOrder { stored_cseq: 5, cseq: c, .. } if c == cseq),
                "{err:?}"
            );
            let err = s.apply(AOR, upd(1, "c1", cseq).remove_all()).unwrap_err();
            assert!(matches!(err, StoreError::OutOfOrder { .. }), "{err:?}");
        }
        assert_eq!(s.bindings(AOR).unwrap(), vec![b.clone()]);

        // Another Call-ID may update whatever its CSeq; an untouched binding is not checked.
        let other = binding(AOR, "sip:a@2", 3600, "c1", 1);
        s.apply(AOR, upd(2, "c1", 1).upsert(other)).unwrap();
        let other = binding(AOR, "sip:a@2", 3600, "c9", 1);
        s.apply(AOR, upd(2, "c9", 1).upsert(other)).unwrap();
        let mut moved = b.clone();
        moved.call_id = "c2".into();
        moved.cseq = 1;
        s.apply(AOR, upd(2, "c2", 1).upsert(moved)).unwrap();

        // A higher CSeq on the same Call-ID removes everything.
        let set = s.apply(AOR, upd(3, "c2", 2).remove_all()).unwrap();
        assert!(set.is_empty());

        // An expired binding does not block.
        let short = binding(AOR, "sip:a@3", 10, "c3", 9);
        s.apply(AOR, upd(3, "c3", 9).upsert(short)).unwrap();
        let again = binding(AOR, "sip:a@3", 100, "c3", 1);
        let set = s
            .apply(AOR, upd(20, "c3", 1).upsert(again.clone()))
            .unwrap();
        assert_eq!(set, vec![again]);
    }

    pub fn outbound_keys(s: &dyn AnyStore) {
        let mk = |contact: &str, reg_id: Option<u32>, cseq| {
            let mut b = binding(AOR, contact, 3600, "c", cseq);
            b.instance_id = Some("urn:uuid:1".into());
            b.reg_id = reg_id;
            b
        };
        s.apply(AOR, upd(0, "c", 1).upsert(mk("sip:a@1;ob", Some(1), 1)))
            .unwrap();
        s.apply(AOR, upd(0, "c", 2).upsert(mk("sip:a@2;ob", Some(2), 2)))
            .unwrap();
        // Same instance and reg-id from a new address: the flow is replaced.
        let set = s
            .apply(AOR, upd(0, "c", 3).upsert(mk("sip:a@9;ob", Some(1), 3)))
            .unwrap();
        assert_eq!(contacts(&set), ["sip:a@9;ob", "sip:a@2;ob"]);
        // Instance without reg-id: keyed by contact.
        let set = s
            .apply(AOR, upd(0, "c", 4).upsert(mk("sip:a@2;ob", None, 4)))
            .unwrap();
        assert_eq!(set.len(), 3);
        let set = s
            .apply(
                AOR,
                upd(0, "c", 5).remove(BindingKey::Outbound {
                    instance_id: "urn:uuid:1".into(),
                    reg_id: 2,
                }),
            )
            .unwrap();
        assert_eq!(contacts(&set), ["sip:a@9;ob", "sip:a@2;ob"]);
        assert_eq!(set[1].reg_id, None);
    }

    pub fn max_bindings(s: &dyn AnyStore) {
        for i in 0..2u32 {
            let b = binding(AOR, &format!("sip:a@{i}"), 3600, &format!("c{i}"), 1);
            s.apply(AOR, upd(0, &format!("c{i}"), 1).upsert(b).max_bindings(2))
                .unwrap();
        }
        let b = binding(AOR, "sip:a@9", 3600, "c9", 1);
        let err = s
            .apply(AOR, upd(0, "c9", 1).upsert(b).max_bindings(2))
            .unwrap_err();
        assert!(
            matches!(err, StoreError::TooManyBindings { limit: 2 }),
            "{err:?}"
        );
        assert_eq!(s.bindings(AOR).unwrap().len(), 2);
        // Refresh of an AOR already above a lowered limit still works.
        let b = binding(AOR, "sip:a@0", 7200, "c0", 2);
        let set = s
            .apply(AOR, upd(1, "c0", 2).upsert(b).max_bindings(1))
            .unwrap();
        assert_eq!(set.len(), 2);
        // Swapping one binding for another at the limit works.
        let b = binding(AOR, "sip:a@5", 3600, "c0", 3);
        let set = s
            .apply(
                AOR,
                upd(2, "c0", 3)
                    .remove(BindingKey::Contact("sip:a@0".into()))
                    .upsert(b)
                    .max_bindings(2),
            )
            .unwrap();
        assert_eq!(contacts(&set), ["sip:a@1", "sip:a@5"]);
    }

    pub fn invalid_input(s: &dyn AnyStore) {
        let b = binding("sip:bob@example.com", "sip:b@1", 3600, "c", 1);
        let err = s.apply(AOR, upd(0, "c", 1).upsert(b.clone())).unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
        let err = s.apply("", upd(0, "c", 1)).unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
        assert_eq!(s.count().unwrap(), RegistrationCount::default());
    }

    pub fn expire_purges_exactly_the_lapsed(s: &dyn AnyStore) {
        for (i, exp) in [10u64, 20, 30, 20, 40].into_iter().enumerate() {
            let aor = format!("sip:u{}@example.com", i % 3);
            let b = binding(&aor, &format!("sip:c{i}@h"), exp, &format!("c{i}"), 1);
            s.apply(&aor, upd(0, &format!("c{i}"), 1).upsert(b))
                .unwrap();
        }
        assert_eq!(
            s.count().unwrap(),
            RegistrationCount {
                aors: 3,
                bindings: 5
            }
        );
        assert_eq!(s.expire(t(9)).unwrap(), 0);
        // expires_at <= now is lapsed: both bindings at t(20) go, the one at t(10) too.
        assert_eq!(s.expire(t(20)).unwrap(), 3);
        assert_eq!(
            s.count().unwrap(),
            RegistrationCount {
                aors: 2,
                bindings: 2
            }
        );
        let u1 = "sip:u1@example.com";
        assert_eq!(s.all_aors(None, 10).unwrap(), [u1, "sip:u2@example.com"]);
        assert_eq!(s.expire(t(20)).unwrap(), 0);
        assert!(s.live_bindings(u1, t(40)).unwrap().is_empty());
        assert_eq!(s.bindings(u1).unwrap().len(), 1);
        // apply drops lapsed bindings of the AOR it touches.
        let b = binding(u1, "sip:new@h", 100, "n", 1);
        let set = s.apply(u1, upd(45, "n", 1).upsert(b)).unwrap();
        assert_eq!(contacts(&set), ["sip:new@h"]);
        assert_eq!(
            s.count().unwrap(),
            RegistrationCount {
                aors: 2,
                bindings: 2
            }
        );
        assert_eq!(s.expire(t(1000)).unwrap(), 2);
        assert_eq!(s.count().unwrap(), RegistrationCount::default());
        assert!(s.all_aors(None, 10).unwrap().is_empty());
    }

    pub fn paging_and_remove_aor(s: &dyn AnyStore) {
        let aors: Vec<String> = (0..25)
            .map(|i| format!("sip:user{i:02}@example.com"))
            .collect();
        for aor in aors.iter().rev() {
            let b = binding(aor, "sip:x@y", 3600, "c", 1);
            s.apply(aor, upd(0, "c", 1).upsert(b)).unwrap();
        }
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = s.all_aors(after.as_deref(), 10).unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 10);
            after = page.last().cloned();
            seen.extend(page);
        }
        assert_eq!(seen, aors);
        assert!(s.all_aors(None, 0).unwrap().is_empty());

        let removed = s.remove_aor(&aors[3]).unwrap();
        assert_eq!(contacts(&removed), ["sip:x@y"]);
        assert_eq!(
            s.count().unwrap(),
            RegistrationCount {
                aors: 24,
                bindings: 24
            }
        );
        assert!(!s.all_aors(None, 100).unwrap().contains(&aors[3]));
        // Nothing left in the expiry index for it either.
        assert_eq!(s.expire(t(10_000)).unwrap(), 24);
    }

    pub fn bans(s: &dyn AnyStore) {
        let v4 = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
        let mapped = IpAddr::V6(Ipv4Addr::new(203, 0, 113, 9).to_ipv6_mapped());
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        let ban = |source: BanSource, until: u64, count| Ban {
            source,
            until: t(until) + Duration::from_millis(250),
            reason: "scanner".into(),
            count,
        };
        assert_eq!(
            s.put_ban(&ban(BanSource::Ip(mapped), 100, 1)).unwrap(),
            None
        );
        // The mapped form and the plain one are the same ban.
        let got = s.get_ban(&BanSource::ip(v4)).unwrap().unwrap();
        assert_eq!(got.source, BanSource::Ip(v4));
        assert_eq!(got.until, t(100));
        let old = s.put_ban(&ban(BanSource::Ip(v4), 200, 2)).unwrap().unwrap();
        assert_eq!(old.count, 1);
        s.put_ban(&ban(BanSource::Ip(v6), 50, 1)).unwrap();
        s.put_ban(&ban(BanSource::Key("user:mallory".into()), 300, 4))
            .unwrap();
        let list = s.list_bans().unwrap();
        assert_eq!(list.len(), 3);
        assert!(list.iter().any(|b| b.source == BanSource::Ip(v6)));
        assert_eq!(s.expire_bans(t(50)).unwrap(), 1);
        assert_eq!(s.get_ban(&BanSource::Ip(v6)).unwrap(), None);
        let removed = s
            .remove_ban(&BanSource::Key("user:mallory".into()))
            .unwrap()
            .unwrap();
        assert_eq!(removed.count, 4);
        assert_eq!(
            s.remove_ban(&BanSource::Key("user:mallory".into()))
                .unwrap(),
            None
        );
        assert_eq!(s.list_bans().unwrap().len(), 1);
        assert_eq!(s.expire_bans(t(200)).unwrap(), 1);
        assert!(s.list_bans().unwrap().is_empty());
    }

    pub fn cdrs(s: &dyn AnyStore) {
        let mut first = cdr("call-1", 100);
        first.end += Duration::from_micros(1500);
        first.disposition = Disposition::Failed(503);
        first.answer = None;
        let id1 = s.append_cdr(&first).unwrap();
        let ids = s
            .append_cdrs(&[cdr("call-2", 110), cdr("call-1", 120), cdr("call-3", 130)])
            .unwrap();
        assert_eq!(ids, [id1 + 1, id1 + 2, id1 + 3]);
        assert!(s.append_cdrs(&[]).unwrap().is_empty());

        let recent = s.recent_cdrs(2).unwrap();
        assert_eq!(
            recent.iter().map(|e| e.id).collect::<Vec<_>>(),
            [id1 + 3, id1 + 2]
        );
        let by = s.cdrs_by_call_id("call-1").unwrap();
        assert_eq!(by.iter().map(|e| e.id).collect::<Vec<_>>(), [id1, id1 + 2]);
        assert_eq!(by[0].cdr.end, t(100) + Duration::from_millis(1));
        assert_eq!(by[0].cdr.disposition, Disposition::Failed(503));
        assert!(s.cdrs_by_call_id("call-").unwrap().is_empty());

        assert_eq!(s.prune_cdrs(t(115)).unwrap(), 2);
        assert_eq!(s.cdrs_by_call_id("call-1").unwrap().len(), 1);
        assert_eq!(s.recent_cdrs(10).unwrap().len(), 2);
        assert_eq!(s.prune_cdrs(t(1000)).unwrap(), 2);
        // Ids are never reused.
        assert_eq!(s.append_cdr(&cdr("call-4", 140)).unwrap(), id1 + 4);
    }

    pub fn concurrent_writers_serialise(s: &dyn AnyStore) {
        const THREADS: u32 = 6;
        const ROUNDS: u32 = 25;
        std::thread::scope(|sc| {
            for th in 0..THREADS {
                sc.spawn(move || {
                    let call = format!("thread-{th}");
                    let own_aor = format!("sip:own{th}@example.com");
                    for cseq in 1..=ROUNDS {
                        let b = binding(AOR, &format!("sip:t{th}@h"), 3600, &call, cseq);
                        let set = s.apply(AOR, upd(0, &call, cseq).upsert(b)).unwrap();
                        assert!(set.iter().any(|b| b.call_id == call && b.cseq == cseq));
                        let b = binding(&own_aor, &format!("sip:r{cseq}@h"), 3600, &call, cseq);
                        s.apply(&own_aor, upd(0, &call, cseq).upsert(b)).unwrap();
                    }
                });
            }
        });
        let set = s.bindings(AOR).unwrap();
        assert_eq!(set.len(), THREADS as usize);
        assert!(set.iter().all(|b| b.cseq == ROUNDS));
        let count = s.count().unwrap();
        let total = THREADS + THREADS * ROUNDS;
        assert_eq!(
            count,
            RegistrationCount {
                aors: u64::from(THREADS) + 1,
                bindings: u64::from(total)
            }
        );
        assert_eq!(s.expire(t(3600)).unwrap(), total as usize);
    }

    pub fn concurrent_cseq_race_keeps_the_highest(s: &dyn AnyStore) {
        const THREADS: u32 = 4;
        const PER: u32 = 30;
        let ok = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|sc| {
            for th in 0..THREADS {
                let ok = &ok;
                sc.spawn(move || {
                    for i in 0..PER {
                        let cseq = 1 + th + i * THREADS;
                        let b = binding(AOR, "sip:shared@h", 3600, "same-call", cseq);
                        match s.apply(AOR, upd(0, "same-call", cseq).upsert(b)) {
                            Ok(set) => {
                                assert_eq!(set[0].cseq, cseq);
                                ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Err(StoreError::OutOfOrder { stored_cseq, .. }) => {
                                assert!(stored_cseq >= cseq)
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                });
            }
        });
        let set = s.bindings(AOR).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set[0].cseq, THREADS * PER);
        assert!(ok.into_inner() >= 1);
    }

    pub fn concurrent_limit_is_never_exceeded(s: &dyn AnyStore) {
        let ok = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|sc| {
            for th in 0..8 {
                let ok = &ok;
                sc.spawn(move || {
                    let call = format!("c{th}");
                    let b = binding(AOR, &format!("sip:{th}@h"), 3600, &call, 1);
                    match s.apply(AOR, upd(0, &call, 1).upsert(b).max_bindings(3)) {
                        Ok(_) => {
                            ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(StoreError::TooManyBindings { limit: 3 }) => {}
                        Err(e) => panic!("{e}"),
                    }
                });
            }
        });
        assert_eq!(ok.into_inner(), 3);
        assert_eq!(s.bindings(AOR).unwrap().len(), 3);
    }

    pub fn concurrent_cdr_ids_are_unique_and_dense(s: &dyn AnyStore) {
        let all = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|sc| {
            for th in 0..4 {
                let all = &all;
                sc.spawn(move || {
                    for i in 0..20 {
                        let id = s.append_cdr(&cdr(&format!("c{th}-{i}"), 10)).unwrap();
                        all.lock().unwrap().push(id);
                    }
                });
            }
        });
        let ids: BTreeSet<u64> = all.into_inner().unwrap().into_iter().collect();
        assert_eq!(ids, (1..=80).collect());
    }
}

macro_rules! suite {
    ($backend:ident, $make:expr) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            suite!(@cases $make;
                empty, insert_refresh_remove, all_fields_roundtrip_and_times_truncate,
                out_of_order_is_refused, outbound_keys, max_bindings, invalid_input,
                expire_purges_exactly_the_lapsed, paging_and_remove_aor, bans, cdrs,
                concurrent_writers_serialise, concurrent_cseq_race_keeps_the_highest,
                concurrent_limit_is_never_exceeded, concurrent_cdr_ids_are_unique_and_dense);
        }
    };
    (@cases $make:expr; $($case:ident),*) => {$(
        #[test]
        fn $case() {
            let fixture = $make;
            super::cases::$case(&fixture.0);
        }
    )*};
}

suite!(memory, (MemoryStore::new(), ()));
suite!(redb, {
    let dir = tempfile::tempdir().unwrap();
    (RedbStore::open(dir.path()).unwrap(), dir)
});

/// Tests of the durable backend alone.
mod redb_only {
    use super::*;
    use crate::redb_store::DB_FILE_NAME;

    #[test]
    fn reopen_after_drop_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let b = binding(AOR, "sip:a@1", 100, "c", 1);
        let ban = Ban {
            source: BanSource::Key("k".into()),
            until: t(100),
            reason: "r".into(),
            count: 1,
        };
        {
            let s = RedbStore::open(dir.path()).unwrap();
            s.apply(AOR, upd(0, "c", 1).upsert(b.clone())).unwrap();
            s.put_ban(&ban).unwrap();
            s.append_cdr(&cdr("x", 5)).unwrap();
            assert!(s.path().ends_with(DB_FILE_NAME));
        }
        let s = RedbStore::open(dir.path()).unwrap();
        assert_eq!(s.bindings(AOR).unwrap(), vec![b.clone()]);
        assert_eq!(
            s.count().unwrap(),
            RegistrationCount {
                aors: 1,
                bindings: 1
            }
        );
        assert_eq!(s.list_bans().unwrap(), vec![ban]);
        assert_eq!(s.recent_cdrs(5).unwrap()[0].cdr, cdr("x", 5));
        assert_eq!(s.append_cdr(&cdr("y", 6)).unwrap(), 2);
        // The order check and the expiry index work on reopened data.
        assert!(s.apply(AOR, upd(1, "c", 1).upsert(b)).is_err());
        assert_eq!(s.expire(t(100)).unwrap(), 1);
    }

    #[test]
    fn open_creates_missing_directories() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        let s = RedbStore::open(&deep).unwrap();
        assert!(deep.join(DB_FILE_NAME).is_file());
        drop(s);
    }

    #[test]
    fn second_open_is_refused_while_open() {
        let dir = tempfile::tempdir().unwrap();
        let _s = RedbStore::open(dir.path()).unwrap();
        let err = RedbStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Locked), "{err:?}");
    }

    #[test]
    fn corrupt_value_is_reported_not_panicked() {
        let dir = tempfile::tempdir().unwrap();
        let s = RedbStore::open(dir.path()).unwrap();
        let tx = s.db.begin_write().unwrap();
        {
            let mut regs = tx
                .open_table(::redb::TableDefinition::<&str, &[u8]>::new(
                    "registrations_v1",
                ))
                .unwrap();
            regs.insert(AOR, &[1u8, 5, 0xff][..]).unwrap();
        }
        tx.commit().unwrap();
        let err = s.bindings(AOR).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        let err = s.apply(AOR, upd(0, "c", 1)).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RedbStore::open(dir.path()).unwrap();
            let tx = s.db.begin_write().unwrap();
            {
                let mut meta = tx
                    .open_table(::redb::TableDefinition::<&str, u64>::new("meta"))
                    .unwrap();
                meta.insert("schema_version", 2).unwrap();
            }
            tx.commit().unwrap();
        }
        let err = RedbStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::UnsupportedFormat(_)), "{err:?}");
    }
}

/// The same pseudo-random operations on both backends must give the same answers.
#[test]
fn memory_and_redb_agree_on_random_ops() {
    enum Op {
        Apply(String, BindingUpdate),
        Expire(u64),
        RemoveAor(String),
        Read(String),
    }
    let dir = tempfile::tempdir().unwrap();
    let redb = RedbStore::open(dir.path()).unwrap();
    let mem = MemoryStore::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut now = 0u64;
    let mut seen = [0u32; 3];
    for step in 0..800 {
        now += next(5);
        let aor = format!("sip:u{}@x", next(6));
        let call = format!("c{}", next(3));
        let cseq = next(8) as u32;
        let op = match next(10) {
            0..=5 => {
                let mut u = upd(now, &call, cseq);
                for _ in 0..next(3) {
                    let contact = format!("sip:{}@h", next(4));
                    let mut b = binding(&aor, &contact, now + next(60), &call, cseq);
                    if next(3) == 0 {
                        b.instance_id = Some("urn:uuid:i".into());
                        b.reg_id = Some(next(2) as u32);
                    }
                    u = u.upsert(b);
                }
                if next(4) == 0 {
                    u = u.remove(BindingKey::Contact(format!("sip:{}@h", next(4))));
                }
                if next(10) == 0 {
                    u = u.remove_all();
                }
                if next(3) == 0 {
                    u = u.max_bindings(next(4) as usize);
                }
                Op::Apply(aor, u)
            }
            6 => Op::Expire(now),
            7 => Op::RemoveAor(aor),
            _ => Op::Read(aor),
        };
        let run = |s: &dyn AnyStore| match &op {
            Op::Apply(aor, u) => format!("{:?}", s.apply(aor, u.clone())),
            Op::Expire(now) => format!("{:?}", s.expire(t(*now))),
            Op::RemoveAor(aor) => format!("{:?}", s.remove_aor(aor)),
            Op::Read(aor) => format!("{:?} {:?}", s.bindings(aor), s.all_aors(None, 100)),
        };
        let (a, b) = (run(&mem), run(&redb));
        assert_eq!(a, b, "step {step}");
        if matches!(op, Op::Apply(..)) {
            for (i, prefix) in ["Ok([B", "Err(OutOfOrder", "Err(TooMany"]
                .iter()
                .enumerate()
            {
                if a.starts_with(prefix) {
                    seen[i] += 1;
                }
            }
        }
        assert_eq!(mem.count().unwrap(), redb.count().unwrap(), "step {step}");
    }
    // The run exercised every outcome, not only one.
    assert!(seen.iter().all(|&n| n >= 10), "{seen:?}");
}
