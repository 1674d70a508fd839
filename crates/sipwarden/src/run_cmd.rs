//! `sipwarden run [--config FILE]`: the SBC itself.
//!
//! Start-up, in order: the configuration (the file, or the embedded defaults without
//! `--config`; a file with errors is refused with the same lines as `check`), logging, the data
//! directory and the embedded store in it, the signal handlers, the transport's listeners and
//! the engine task (see [`crate::service`]). Then it runs until SIGTERM or SIGINT; SIGHUP
//! reloads the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use config::Config;
use store::{BanStore, RedbStore, RegistrationStore};
use tracing::{error, info};

use crate::check_cmd;
use crate::cli::{EXIT_INVALID, EXIT_OK};
use crate::logging;
use crate::service::{self, Service};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file. Without it, the embedded defaults (those of
    /// examples/minimal.toml): UDP and TCP on 0.0.0.0:5060, data in /var/lib/sipwarden or
    /// $SIPWARDEN_DATA_DIR.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// How long the runtime waits for tasks that did not stop by themselves at shutdown.
const RUNTIME_SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// The runtime's worker threads unless TOKIO_WORKER_THREADS says otherwise (see `run`).
const SIP_RUNTIME_THREADS: usize = 1;

/// Runs the command; returns the process exit code.
pub fn run(args: &RunArgs) -> u8 {
    let config = match &args.config {
        Some(path) => match check_cmd::load(path) {
            Ok(c) => c,
            Err(code) => {
                eprintln!("sipwarden: not started, the configuration was refused");
                return code;
            }
        },
        None => Config::embedded_default(),
    };
    let log = logging::init(config.general.log_level);
    info!(
        "sipwarden {} starting: node {}, configuration {}",
        env!("CARGO_PKG_VERSION"),
        config.general.node_name,
        match &args.config {
            Some(p) => p.display().to_string(),
            None => "embedded defaults".to_owned(),
        }
    );
    if let Some(env) = log.env_override() {
        info!("log filter from RUST_LOG ({env}) instead of log_level");
    }

    let store = match open_store(&config.general.data_dir) {
        Ok(s) => Arc::new(s),
        Err(msg) => {
            error!("{msg}");
            return EXIT_INVALID;
        }
    };

    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // All SIP goes through one engine task, so more runtime threads than one only hand each
    // message from thread to thread (receive task, engine task, send task), and every hand-off
    // to a parked thread is a wake-up: at 500 calls/s, 21.6 context switches and 84 system
    // calls per B2BUA call with one thread per core against 13.5 and 74 with one thread
    // (bench/b2bua-vs-kamailio/profile). The media relay has threads of its own. Tokio's
    // TOKIO_WORKER_THREADS still sets another number (e.g. for many TLS handshakes).
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(SIP_RUNTIME_THREADS);
    }
    let runtime = match builder.enable_all().thread_name("sipwarden").build() {
        Ok(r) => r,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return EXIT_INVALID;
        }
    };
    let setup = Service {
        config,
        config_path: args.config.clone(),
        store,
        log,
    };
    let code = runtime.block_on(service::serve(setup));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_GRACE);
    if code == EXIT_OK {
        info!("sipwarden stopped");
    }
    code
}

/// Creates the data directory if needed, opens the store in it and logs what it holds.
fn open_store(dir: &Path) -> Result<RedbStore, String> {
    let hint = format!(
        "set general.data_dir, or the environment variable {}, to a directory sipwarden can write",
        config::DATA_DIR_ENV
    );
    std::fs::create_dir_all(dir).map_err(|e| {
        format!(
            "cannot create the data directory {}: {e}; {hint}",
            dir.display()
        )
    })?;
    let store = RedbStore::open(dir).map_err(|e| {
        format!(
            "cannot open the store in the data directory {}: {e}; {hint}",
            dir.display()
        )
    })?;
    let regs = store
        .count()
        .map_err(|e| format!("cannot read the store: {e}"))?;
    let bans = store
        .list_bans()
        .map_err(|e| format!("cannot read the store: {e}"))?
        .len();
    info!(
        "data dir {}: store {} with {} AORs, {} bindings, {} bans",
        dir.display(),
        store.path().display(),
        regs.aors,
        regs.bindings,
        bans
    );
    Ok(store)
}
