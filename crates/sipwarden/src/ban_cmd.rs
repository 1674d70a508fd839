//! `sipwarden ban list|remove`: the bans that failed authentications caused (sources banned
//! and users locked out), as stored in the embedded store of the data directory.
//!
//! The store is opened by one process at a time: these commands work while `sipwarden run` is
//! stopped (a running SBC holds the store and they say so). A ban removed here is gone at the
//! next start; the running process keeps the bans it holds in memory until then.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use clap::{Args, Subcommand};
use store::{Ban, BanSource, BanStore};

use crate::cli::{EXIT_INVALID, EXIT_OK, EXIT_USAGE};

#[derive(Debug, Args)]
pub struct BanArgs {
    /// The configuration file (for general.data_dir). Without it, the embedded defaults
    /// ($SIPWARDEN_DATA_DIR applies either way).
    #[arg(short, long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: BanCommand,
}

#[derive(Debug, Subcommand)]
pub enum BanCommand {
    /// List the stored bans: source, state, ban count, reason.
    List {
        /// Also list lapsed bans (kept as offence history, which makes the next ban longer).
        #[arg(long)]
        all: bool,
    },
    /// Remove the ban on an address (`192.0.2.7`) or a user lockout (`user:alice`); the
    /// offence history goes with it.
    Remove { source: String },
}

/// Runs the command against the store in `data_dir`; returns the exit code.
pub fn run(args: &BanArgs, data_dir: &Path) -> u8 {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let Some(store) = crate::user_cmd::open_store("ban", data_dir, &mut err) else {
        return EXIT_INVALID;
    };
    execute(args, &store, SystemTime::now(), &mut out, &mut err)
}

/// The command on any ban store, at `now`.
pub fn execute(
    args: &BanArgs,
    store: &dyn BanStore,
    now: SystemTime,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    match &args.command {
        BanCommand::List { all } => match store.list_bans() {
            Ok(bans) => {
                let shown: Vec<&Ban> = bans.iter().filter(|b| *all || !b.is_expired(now)).collect();
                for b in &shown {
                    let _ = writeln!(out, "{}", line(b, now));
                }
                if shown.is_empty() {
                    let _ = writeln!(out, "no bans in force");
                }
                EXIT_OK
            }
            Err(e) => {
                let _ = writeln!(err, "sipwarden ban list: cannot read the store: {e}");
                EXIT_INVALID
            }
        },
        BanCommand::Remove { source } => {
            let key = parse_source(source);
            match store.remove_ban(&key) {
                Ok(Some(_)) => {
                    let _ = writeln!(out, "removed the ban on {}", show(&key));
                    EXIT_OK
                }
                Ok(None) => {
                    let _ = writeln!(err, "sipwarden ban remove: no ban on {}", show(&key));
                    EXIT_USAGE
                }
                Err(e) => {
                    let _ = writeln!(err, "sipwarden ban remove: {e}");
                    EXIT_INVALID
                }
            }
        }
    }
}

fn parse_source(s: &str) -> BanSource {
    match s.trim().parse::<IpAddr>() {
        Ok(ip) => BanSource::ip(ip),
        Err(_) => BanSource::Key(s.trim().to_owned()),
    }
}

fn show(s: &BanSource) -> String {
    match s {
        BanSource::Ip(ip) => ip.to_string(),
        BanSource::Key(k) => k.clone(),
    }
}

/// `203.0.113.9  banned 297 s more  (ban #2)  too many failed authentications`.
fn line(b: &Ban, now: SystemTime) -> String {
    let state = match b.until.duration_since(now) {
        Ok(left) if !left.is_zero() => format!("banned {} s more", left.as_secs().max(1)),
        _ => "lapsed".to_owned(),
    };
    format!(
        "{:<39}  {state:<22}  (ban #{})  {}",
        show(&b.source),
        b.count,
        b.reason
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::Duration;
    use store::RedbStore;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: BanArgs,
    }

    fn exec(store: &RedbStore, argv: &[&str], now: SystemTime) -> (u8, String, String) {
        let t = T::try_parse_from(std::iter::once("t").chain(argv.iter().copied())).unwrap();
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let code = execute(&t.a, store, now, &mut o, &mut e);
        (
            code,
            String::from_utf8(o).unwrap(),
            String::from_utf8(e).unwrap(),
        )
    }

    #[test]
    fn list_and_remove_through_the_real_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let now = SystemTime::now();
        for (src, secs) in [
            (BanSource::ip("203.0.113.9".parse().unwrap()), 300),
            (BanSource::Key("user:alice".into()), 60),
        ] {
            store
                .put_ban(&Ban {
                    source: src,
                    until: now + Duration::from_secs(secs),
                    reason: "too many failed authentications".into(),
                    count: 1,
                })
                .unwrap();
        }
        store
            .put_ban(&Ban {
                source: BanSource::ip("198.51.100.1".parse().unwrap()),
                until: now - Duration::from_secs(5),
                reason: "old".into(),
                count: 3,
            })
            .unwrap();
        let (code, out, _) = exec(&store, &["list"], now);
        assert_eq!(code, EXIT_OK);
        assert!(
            out.contains("203.0.113.9") && out.contains("user:alice"),
            "{out}"
        );
        assert!(
            !out.contains("198.51.100.1"),
            "lapsed shown without --all: {out}"
        );
        let (_, out, _) = exec(&store, &["list", "--all"], now);
        assert!(
            out.contains("198.51.100.1") && out.contains("lapsed"),
            "{out}"
        );

        let (code, out, _) = exec(&store, &["remove", "203.0.113.9"], now);
        assert_eq!(code, EXIT_OK, "{out}");
        let (code, _, err) = exec(&store, &["remove", "203.0.113.9"], now);
        assert_eq!(code, EXIT_USAGE, "{err}");
        let (_, out, _) = exec(&store, &["list"], now);
        assert!(!out.contains("203.0.113.9"), "{out}");
        assert!(out.contains("user:alice"));
    }
}
