//! Logging for `sipwarden run`: `tracing` events written to standard error by
//! `tracing-subscriber`, at the level of `general.log_level`, unless the environment variable
//! `RUST_LOG` is set (then its directives win, and a reload does not touch them).

use std::io::IsTerminal;

use config::LogLevel;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Changes the level of the installed subscriber.
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    /// `RUST_LOG` as given, when it overrides the configuration.
    env: Option<String>,
}

impl LogControl {
    /// The `RUST_LOG` directives in force instead of the configured level, if any.
    pub fn env_override(&self) -> Option<&str> {
        self.env.as_deref()
    }

    /// Applies a new configured level (after a reload). Without effect while `RUST_LOG` rules.
    pub fn set_level(&self, level: LogLevel) {
        if self.env.is_some() {
            return;
        }
        if let Err(e) = self.handle.reload(level_filter(level)) {
            tracing::warn!("cannot change the log level: {e}");
        }
    }
}

fn level_filter(level: LogLevel) -> EnvFilter {
    EnvFilter::new(level.as_str())
}

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(level: LogLevel) -> LogControl {
    let env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let mut bad_env = None;
    let filter = match &env {
        Some(directives) => match EnvFilter::try_new(directives) {
            Ok(f) => f,
            Err(e) => {
                bad_env = Some(e);
                level_filter(level)
            }
        },
        None => level_filter(level),
    };
    let (filter, handle) = reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    tracing_subscriber::registry().with(filter).with(fmt).init();
    let env = match bad_env {
        Some(e) => {
            tracing::warn!("ignoring RUST_LOG, which does not parse ({e}); log level {level}");
            None
        }
        None => env,
    };
    LogControl { handle, env }
}
