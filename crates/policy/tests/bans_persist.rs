//! Bans decided by the brute-force table survive a restart through the real embedded store:
//! persisted with `put_ban`, loaded with `list_bans`, still in force, and a repeat offence after
//! the restart gets the doubled ban.

use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use policy::{BruteForce, BruteForceConfig};
use store::{BanSource, BanStore, RedbStore};

#[test]
fn bans_survive_a_restart_and_keep_escalating() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = BruteForceConfig {
        max_failures: 3,
        window_s: 60,
        ban_s: 100,
        max_ban_s: 10_000,
        ..BruteForceConfig::default()
    };
    let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let attacker: IpAddr = "203.0.113.66".parse().unwrap();

    {
        let store = RedbStore::open(dir.path()).unwrap();
        let mut bf = BruteForce::with_config(cfg.clone(), Vec::new());
        for k in 0..3 {
            let f = bf.record_failure(attacker, Some("alice"), t0 + Duration::from_secs(k));
            if let Some(ban) = f.source_ban {
                store.put_ban(&ban).unwrap();
            }
        }
    }

    // Restart: a new table, loaded from what the store kept.
    let store = RedbStore::open(dir.path()).unwrap();
    let mut bf = BruteForce::with_config(cfg, Vec::new());
    let now = t0 + Duration::from_secs(50);
    bf.load_bans(store.list_bans().unwrap(), now);
    assert_eq!(
        bf.banned_until(attacker, now),
        Some(t0 + Duration::from_secs(102))
    );

    // After the ban, three more failures: the second ban is twice as long.
    let later = t0 + Duration::from_secs(500);
    assert_eq!(bf.banned_until(attacker, later), None);
    let mut second = None;
    for k in 0..3 {
        second = bf
            .record_failure(attacker, None, later + Duration::from_secs(k))
            .source_ban;
    }
    let second = second.unwrap();
    assert_eq!(second.count, 2);
    assert_eq!(second.until, later + Duration::from_secs(2 + 200));
    let replaced = store.put_ban(&second).unwrap().unwrap();
    assert_eq!(replaced.count, 1);
    assert_eq!(
        store
            .get_ban(&BanSource::ip(attacker))
            .unwrap()
            .unwrap()
            .count,
        2
    );
}
