//! `sipwarden check --config FILE`: loads and validates a configuration file the way `run` does,
//! prints every error (`FILE:LINE: field: problem`, one per line, on standard error) or
//! `FILE: ok` and a one-line summary (on standard output).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::Args;
use config::Config;
use sip_transport::tls::{self, Expiry};

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
            let certs = certificate_report(&config, SystemTime::now(), true);
            for line in &certs {
                match line.level {
                    Level::Info => println!("  {}", line.text),
                    Level::Warn => eprintln!("{}: warning: {}", args.config.display(), line.text),
                    Level::Error => eprintln!("{}: error: {}", args.config.display(), line.text),
                }
            }
            if certs.iter().any(|l| l.level == Level::Error) {
                return EXIT_INVALID;
            }
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

/// How serious a line of the certificate report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// A line of the certificate report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportLine {
    pub level: Level,
    pub text: String,
}

/// Every certificate the configuration names: its subject and end date, a warning when it ends
/// within `tls.expiry_warning_days` of `now`, an error when it has ended or a file does not
/// load. With `load`, also loads everything the listeners and outgoing connections would (key
/// matching the certificate, CA, CRL).
pub fn certificate_report(config: &Config, now: SystemTime, load: bool) -> Vec<ReportLine> {
    let mut out = Vec::new();
    let line = |level, text| ReportLine { level, text };
    let window = Duration::from_secs(u64::from(config.tls.expiry_warning_days) * 86_400);
    for (field, path) in config.tls.certificate_files() {
        let certs = match tls::file_summaries(&path) {
            Ok(c) => c,
            Err(e) => {
                out.push(line(Level::Error, format!("{field}: {e}")));
                continue;
            }
        };
        for (i, c) in certs.iter().enumerate() {
            let which = if certs.len() > 1 {
                format!("{field} #{i}")
            } else {
                field.clone()
            };
            let end = tls::format_utc(c.not_after);
            out.push(line(
                Level::Info,
                format!(
                    "{which}: {} ({}): subject {}, notAfter {end}",
                    path.display(),
                    if i == 0 && !field.ends_with("client_ca") {
                        "leaf"
                    } else {
                        "chain"
                    },
                    c.subject
                ),
            ));
            match tls::expiry(c.not_after, now, window) {
                Expiry::Valid { .. } => {}
                Expiry::Soon { days_left } => out.push(line(
                    Level::Warn,
                    format!(
                        "{which} ({}) expires in {days_left} day(s), on {end}",
                        c.subject
                    ),
                )),
                Expiry::Expired { days_ago } => out.push(line(
                    Level::Error,
                    format!(
                        "{which} ({}) expired {days_ago} day(s) ago, on {end}",
                        c.subject
                    ),
                )),
            }
        }
    }
    if !load {
        return out;
    }
    // Load what the listeners and outgoing connections would load, to catch a key that does
    // not match, an unusable CA or CRL.
    let mut t = sip_transport::TransportConfig::default();
    match crate::settings::add_tls(config, &mut t) {
        Ok(warnings) => out.extend(warnings.into_iter().map(|w| line(Level::Warn, w))),
        Err(e) => out.push(line(Level::Error, e.to_string())),
    }
    out
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
    fn no_tls_no_certificate_lines() {
        let config = Config::default();
        let r = certificate_report(&config, SystemTime::now(), true);
        assert!(r.is_empty(), "{r:?}");
    }

    #[test]
    fn a_missing_certificate_file_is_an_error() {
        let config = Config::from_str(
            "[[listen]]\ntransport = \"tls\"\naddress = \"127.0.0.1:5061\"\n\
             [tls]\ncertificate = \"/nonexistent/c.pem\"\nprivate_key = \"/nonexistent/k.pem\"\n\
             ca_bundle = \"/nonexistent/ca.pem\"\n",
            "t.toml",
        )
        .unwrap();
        let r = certificate_report(&config, SystemTime::now(), true);
        assert!(r
            .iter()
            .any(|l| l.level == Level::Error && l.text.starts_with("tls.certificate: ")));
        assert!(r
            .iter()
            .any(|l| l.level == Level::Error && l.text.starts_with("listen[0]")));
    }

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
