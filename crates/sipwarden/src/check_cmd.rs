//! `sipwarden check --config FILE`: loads and validates a configuration file the way `run` does,
//! prints every error (`FILE:LINE: field: problem`, one per line, on standard error) or
//! `FILE: ok` and a one-line summary (on standard output).

use std::path::{Path, PathBuf};

use clap::Args;
use config::Config;

use crate::cli::{EXIT_INVALID, EXIT_OK, EXIT_USAGE};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The configuration file to check.
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
}

/// Runs the command; returns the process exit code.
pub fn run(args: &CheckArgs) -> u8 {
    match load(&args.config) {
        Ok(config) => {
            println!("{}: ok", args.config.display());
            println!("  {}", summary(&config));
            EXIT_OK
        }
        Err(code) => code,
    }
}

/// Loads `path` (with the environment's overrides). On failure, prints every error to standard
/// error, one per line, and returns the exit code: [`EXIT_USAGE`] when the file cannot be read
/// at all (as for `parse`), [`EXIT_INVALID`] when it was read and has errors.
pub fn load(path: &Path) -> Result<Config, u8> {
    Config::from_file(path).map_err(|errors| {
        for line in errors.to_lines() {
            eprintln!("{line}");
        }
        if errors.errors().iter().all(|e| e.line.is_none()) {
            EXIT_USAGE
        } else {
            EXIT_INVALID
        }
    })
}

/// One line saying what a configuration runs: its listeners, zones and data directory.
pub fn summary(config: &Config) -> String {
    format!(
        "listeners: {}; zones: {}; data dir: {}",
        listeners(config),
        zones(config),
        config.general.data_dir.display()
    )
}

/// The listeners, `udp 192.168.10.1:5060 (lan), ...`.
pub fn listeners(config: &Config) -> String {
    config
        .listen
        .iter()
        .map(|l| format!("{} {} ({})", l.transport, l.address, l.zone))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The zones, `lan (2 networks), ...`.
fn zones(config: &Config) -> String {
    config
        .zone
        .iter()
        .map(|z| {
            let n = z.networks.len();
            format!("{} ({n} network{})", z.name, if n == 1 { "" } else { "s" })
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_the_defaults() {
        let mut config = Config::default();
        config.general.data_dir = PathBuf::from("/srv/sw");
        assert_eq!(
            summary(&config),
            "listeners: udp 0.0.0.0:5060 (lan), tcp 0.0.0.0:5060 (lan); \
             zones: lan (6 networks); data dir: /srv/sw"
        );
    }
}
