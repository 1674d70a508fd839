//! The running process: signal handling, reloads and shutdown around the data plane (transport
//! and engine task, see [`crate::dataplane`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use config::Config;
use store::RedbStore;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::{error, info, warn};

use crate::cli::{EXIT_INVALID, EXIT_OK};
use crate::dataplane::{self, Dataplane};
use crate::logging::LogControl;
use crate::reload::{self, Reload};

/// Everything `run` prepared before the runtime started.
pub struct Service {
    pub config: Config,
    pub config_path: Option<PathBuf>,
    pub store: Arc<RedbStore>,
    pub log: LogControl,
}

/// How long a clean shutdown may take before the remaining tasks are abandoned.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

fn handler(kind: SignalKind, name: &str) -> Result<Signal, String> {
    signal(kind).map_err(|e| format!("cannot install the {name} handler: {e}"))
}

/// Runs until SIGTERM or SIGINT (exit code 0) or a failure of the data plane (1).
pub async fn serve(mut s: Service) -> u8 {
    // The handlers come first: from here on SIGHUP no longer kills the process.
    let handlers = (|| {
        Ok::<_, String>((
            handler(SignalKind::terminate(), "SIGTERM")?,
            handler(SignalKind::interrupt(), "SIGINT")?,
            handler(SignalKind::hangup(), "SIGHUP")?,
        ))
    })();
    let (mut term, mut int, mut hup) = match handlers {
        Ok(h) => h,
        Err(e) => {
            error!("{e}");
            return EXIT_INVALID;
        }
    };

    let mut dataplane = match Dataplane::start(&s.config, s.store.clone()).await {
        Ok(d) => d,
        Err(e) => {
            error!("{e}");
            return EXIT_INVALID;
        }
    };
    info!("sipwarden is running (pid {})", std::process::id());

    let code = loop {
        tokio::select! {
            _ = term.recv() => {
                info!("SIGTERM: shutting down");
                break EXIT_OK;
            }
            _ = int.recv() => {
                info!("SIGINT: shutting down");
                break EXIT_OK;
            }
            _ = hup.recv() => on_hangup(&mut s, &dataplane),
            failure = dataplane.failed() => {
                error!("{failure}; shutting down");
                break EXIT_INVALID;
            }
        }
    };
    dataplane.shutdown(SHUTDOWN_GRACE).await;
    code
}

fn on_hangup(s: &mut Service, dataplane: &Dataplane) {
    match reload::reload(&s.config, s.config_path.as_deref()) {
        Reload::NoFile => {
            info!("SIGHUP: running on the embedded defaults, there is no file to reload")
        }
        Reload::Refused(lines) => {
            error!(
                "SIGHUP: the configuration file has errors; the running configuration stays as it was"
            );
            for line in lines {
                error!("{line}");
            }
        }
        Reload::Read {
            config,
            applied,
            restart_required,
        } => {
            let (live, later): (Vec<String>, Vec<String>) = applied
                .into_iter()
                .partition(|f| dataplane::applies_live(f));
            if live.is_empty() && later.is_empty() && restart_required.is_empty() {
                info!("SIGHUP: configuration file read, nothing changed");
            } else if live.is_empty() {
                info!("SIGHUP: configuration file read, no change applied");
            } else {
                info!(
                    "SIGHUP: configuration reloaded; applied: {}",
                    live.join(", ")
                );
            }
            let mut restart = later;
            restart.extend(restart_required);
            if !restart.is_empty() {
                warn!(
                    "changed in the file but only applied after a restart: {}",
                    restart.join(", ")
                );
            }
            // Only what was applied becomes the running configuration, so that a later reload
            // still reports the rest as waiting for a restart.
            let running = dataplane::live_part(&s.config, &config);
            if running.general.log_level != s.config.general.log_level {
                if let Some(env) = s.log.env_override() {
                    info!("RUST_LOG ({env}) is set: it still decides what is logged");
                }
            }
            s.log.set_level(running.general.log_level);
            if dataplane.reconfigure(&running) {
                s.config = running;
            }
        }
    }
}
