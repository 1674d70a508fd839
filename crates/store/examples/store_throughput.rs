//! How many `apply` calls per second `RedbStore` sustains with `Durability::Immediate` (one
//! fsync per commit) on the disk holding the data directory.
//!
//! ```text
//! cargo run --release -p store --example store_throughput -- [DATA_DIR] [SECONDS_PER_CASE]
//! ```
//! DATA_DIR defaults to a temporary directory under the current directory (so, on the disk the
//! project lives on, not a tmpfs); it is deleted afterwards.

use std::time::{Duration, Instant, SystemTime};

use store::{Binding, BindingUpdate, Cdr, CdrStore, Disposition, RedbStore, RegistrationStore};

fn binding(aor: &str, contact: &str, now: SystemTime, cseq: u32) -> Binding {
    let mut b = Binding::new(
        aor,
        contact,
        now + Duration::from_secs(3600),
        "bench",
        cseq,
        now,
    );
    b.contact_params =
        ";expires=3600;+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-000000000000>\"".into();
    b.received = Some("198.51.100.20:40312".into());
    b.user_agent = Some("Yealink SIP-T46U 108.86.0.20".into());
    b
}

/// Runs `op(i)` for about `secs` seconds on `threads` threads; returns calls per second.
fn measure(threads: u32, secs: f64, op: impl Fn(u32, u64) + Sync) -> (u64, f64) {
    let deadline = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let total: u64 = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|th| {
                let op = &op;
                sc.spawn(move || {
                    let mut n = 0u64;
                    while start.elapsed() < deadline {
                        op(th, n);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    (total, total as f64 / start.elapsed().as_secs_f64())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let tmp;
    let dir = match args.next() {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir_in(".").expect("temporary directory");
            tmp.path().to_path_buf()
        }
    };
    let secs: f64 = args.next().map_or(3.0, |s| s.parse().expect("seconds"));
    let store = RedbStore::open(&dir).expect("open store");
    println!("database: {}", store.path().display());
    let now = SystemTime::now();

    for threads in [1, 4] {
        let (n, rate) = measure(threads, secs, |th, i| {
            let aor = format!("sip:new-{threads}-{th}-{i}@example.com");
            let b = binding(&aor, &format!("sip:{i}@198.51.100.20:40312"), now, 1);
            store
                .apply(&aor, BindingUpdate::new(now, "bench", 1).upsert(b))
                .unwrap();
        });
        println!("apply, new AOR,        {threads} thread(s): {rate:8.0}/s ({n} calls)");
    }

    // Refreshes of a population of existing AORs (the steady state of a registrar).
    let population = 2_000u64;
    for threads in [1, 4] {
        let (n, rate) = measure(threads, secs, |th, i| {
            let k = (u64::from(th) * 7919 + i) % population;
            let aor = format!("sip:pop{k}@example.com");
            let cseq = u32::try_from(1 + i * 8 + u64::from(th)).unwrap();
            let call = format!("pop-{threads}-{th}");
            let b = binding(&aor, "sip:phone@198.51.100.20:40312", now, cseq);
            let b = Binding {
                call_id: call.clone(),
                ..b
            };
            store
                .apply(&aor, BindingUpdate::new(now, call, cseq).upsert(b))
                .unwrap();
        });
        println!("apply, refresh,        {threads} thread(s): {rate:8.0}/s ({n} calls)");
    }

    let cdr = |i: u64| Cdr {
        call_id: format!("cdr-{i}@example.com"),
        from: "sip:alice@example.com".into(),
        to: "sip:+15555550100@trunk.example.net".into(),
        start: now,
        answer: Some(now),
        end: now,
        disposition: Disposition::Answered,
        zone_in: "lan".into(),
        zone_out: "wan".into(),
        bytes_in: 1_234_567,
        bytes_out: 1_234_567,
    };
    let (n, rate) = measure(1, secs, |_, i| {
        store.append_cdr(&cdr(i)).unwrap();
    });
    println!("append_cdr, one per commit:      {rate:8.0}/s ({n} CDRs)");
    let batch: Vec<Cdr> = (0..100).map(cdr).collect();
    let (n, rate) = measure(1, secs, |_, _| {
        store.append_cdrs(&batch).unwrap();
    });
    println!(
        "append_cdrs, 100 per commit:     {:8.0}/s ({} CDRs)",
        rate * 100.0,
        n * 100
    );
    let count = store.count().unwrap();
    println!(
        "stored: {} AORs, {} bindings; file {} bytes",
        count.aors,
        count.bindings,
        std::fs::metadata(store.path()).map_or(0, |m| m.len())
    );
}
