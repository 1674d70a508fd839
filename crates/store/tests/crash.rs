//! Crash test: a child process (this test executable, re-run with an environment switch) writes
//! bindings through `RedbStore` and prints `committed K` after each `apply` returns; the parent
//! kills it with SIGKILL at a random moment, reopens the database and checks that every write
//! the child reported is there, with consistent counters and a working expiry index.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use store::{Binding, BindingUpdate, RedbStore, RegistrationStore};

const DIR_VAR: &str = "STORE_CRASH_CHILD_DIR";
const START_VAR: &str = "STORE_CRASH_CHILD_START";
const SHARED: &str = "sip:shared@crash.test";

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn aor(i: u64) -> String {
    format!("sip:user{i}@crash.test")
}

/// Write number `i`: a new AOR with one binding, and a refresh of one shared AOR to CSeq `i`.
fn write(store: &RedbStore, i: u64) {
    let cseq = u32::try_from(i).unwrap();
    let a = aor(i);
    let b = Binding::new(
        &a,
        format!("sip:u{i}@192.0.2.1"),
        t(3600),
        "call",
        cseq,
        t(0),
    );
    store
        .apply(&a, BindingUpdate::new(t(0), "call", cseq).upsert(b))
        .unwrap();
    let b = Binding::new(
        SHARED,
        "sip:shared@192.0.2.2",
        t(3600),
        "shared",
        cseq,
        t(0),
    );
    store
        .apply(SHARED, BindingUpdate::new(t(0), "shared", cseq).upsert(b))
        .unwrap();
}

/// The child side: inert unless the parent set the environment switch.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let start: u64 = std::env::var(START_VAR).unwrap().parse().unwrap();
    let store = RedbStore::open(&dir).unwrap();
    for i in start..start + 1_000_000 {
        write(&store, i);
        // One write(2) of a whole line, after the commit returned.
        println!("committed {i}");
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let random = RandomState::new();
    let mut next_start = 1u64;
    for round in 0..6u64 {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(DIR_VAR, dir.path())
            .env(START_VAR, next_start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let committed = Arc::new(Mutex::new(Vec::<u64>::new()));
        let reader = {
            let committed = Arc::clone(&committed);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    // libtest may have written "test crash_child ... " before the first line.
                    if let Some(at) = line.find("committed ") {
                        let k = line[at + "committed ".len()..].trim();
                        committed.lock().unwrap().push(k.parse().unwrap());
                    }
                }
            })
        };
        // Let it commit at least once (so that every round tests something), then kill it at a
        // random moment, most likely in the middle of a transaction.
        let started = std::time::Instant::now();
        while committed.lock().unwrap().is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "child never committed"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let delay = random.hash_one(round) % 250;
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        reader.join().unwrap();
        let committed = committed.lock().unwrap().clone();
        let last = *committed.last().unwrap();
        assert_eq!(committed, (next_start..=last).collect::<Vec<_>>());

        let store = RedbStore::open(dir.path()).unwrap();
        for &i in &committed {
            let set = store.bindings(&aor(i)).unwrap();
            assert_eq!(set.len(), 1, "round {round}: binding {i} lost");
            assert_eq!(set[0].cseq, u32::try_from(i).unwrap());
        }
        // The write in flight at the kill may or may not have landed, nothing later did.
        let landed_extra = !store.bindings(&aor(last + 1)).unwrap().is_empty();
        assert!(store.bindings(&aor(last + 2)).unwrap().is_empty());
        let shared = store.bindings(SHARED).unwrap();
        assert!(u64::from(shared[0].cseq) >= last);
        assert!(u64::from(shared[0].cseq) <= last + 1);

        let total = last + u64::from(landed_extra);
        let count = store.count().unwrap();
        assert_eq!(count.aors, total + 1, "round {round}");
        assert_eq!(count.bindings, total + 1, "round {round}");
        eprintln!(
            "round {round}: killed after {delay} ms ({status}), {} writes acknowledged, all present",
            committed.len()
        );
        // Continue after whatever landed, so the CSeq of the shared AOR keeps rising.
        next_start = total + 1;
        drop(store);
    }
    // The expiry index survived the crashes intact: everything lapses at t(3600).
    let store = RedbStore::open(dir.path()).unwrap();
    let n = store.count().unwrap().bindings;
    assert_eq!(store.expire(t(3600)).unwrap() as u64, n);
    assert_eq!(store.count().unwrap().aors, 0);
}
