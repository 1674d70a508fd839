//! Command-line interface: argument parsing and dispatch to one module per subcommand.
//!
//! Exit codes are shared by every subcommand:
//! - 0: success (for `parse`: every message is valid);
//! - 1: the input was read but is not acceptable (for `parse`: at least one invalid message);
//! - 2: usage error (clap's own code) or an input that could not be read.
//!
//! For `check` and `run`: 1 is a configuration with errors (and, for `run`, a start-up failure
//! such as a data directory that cannot be created or a port that cannot be bound, or the data
//! plane failing), 2 a configuration file that cannot be read; `run` exits with 0 after a clean
//! shutdown on SIGTERM or SIGINT.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::ban_cmd::{self, BanArgs};
use crate::check_cmd::{self, CheckArgs};
use crate::explain_cmd::{self, ExplainArgs};
use crate::parse_cmd::{self, ParseArgs};
use crate::run_cmd::{self, RunArgs};
use crate::user_cmd::{self, UserArgs};

/// Exit code for a successful run.
pub const EXIT_OK: u8 = 0;
/// Exit code when the input was read but rejected.
pub const EXIT_INVALID: u8 = 1;
/// Exit code for usage errors and unreadable inputs (clap also exits with 2 on usage errors).
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "sipwarden",
    version,
    about = "sipwarden: a SIP Session Border Controller",
    long_about = "sipwarden: a SIP Session Border Controller.\n\n\
                  Exit codes: 0 success, 1 invalid input (a message that does not parse, a \
                  configuration with errors) or, for run, a failure to start, \
                  2 usage error or unreadable file."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse SIP messages (one per file) and print a summary of each, or why it is invalid.
    Parse(ParseArgs),
    /// Run the SBC: listen, register and proxy, until SIGTERM or SIGINT (SIGHUP reloads the
    /// configuration file).
    Run(RunArgs),
    /// Check a configuration file: print every error, or `FILE: ok` and a summary.
    Check(CheckArgs),
    /// Manage the local users that digest authentication accepts (in the embedded store; works
    /// while `run` is stopped).
    User(UserArgs),
    /// Judge one SIP request with the configuration's policy and print every entry consulted.
    Explain(ExplainArgs),
    /// List or lift the bans that failed authentications caused (in the embedded store; works
    /// while `run` is stopped).
    Ban(BanArgs),
}

/// Parses the command line (clap prints usage errors and exits with 2 by itself) and runs the
/// subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Parse(args) => parse_cmd::run(&args),
        Command::Run(args) => run_cmd::run(&args),
        Command::Check(args) => check_cmd::run(&args),
        Command::Explain(args) => explain_cmd::run(&args),
        Command::User(args) => match config_or_default(args.config.as_deref()) {
            Ok(c) => user_cmd::run(&args, &c.general.data_dir, Some(&c.auth.realm)),
            Err(code) => code,
        },
        Command::Ban(args) => match config_or_default(args.config.as_deref()) {
            Ok(c) => ban_cmd::run(&args, &c.general.data_dir),
            Err(code) => code,
        },
    };
    ExitCode::from(code)
}

/// The configuration file, as `run` loads it, or the embedded defaults without one.
fn config_or_default(path: Option<&std::path::Path>) -> Result<config::Config, u8> {
    match path {
        Some(p) => check_cmd::load(p),
        None => Ok(config::Config::embedded_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parse_takes_json_and_files() {
        let cli = Cli::try_parse_from(["sipwarden", "parse", "--json", "a.sip", "-"]).unwrap();
        let Command::Parse(args) = cli.command else {
            panic!("not parse");
        };
        assert!(args.json);
        assert_eq!(args.files.len(), 2);
    }

    #[test]
    fn usage_errors_exit_with_2() {
        let err = Cli::try_parse_from(["sipwarden", "parse", "--nope"]).unwrap_err();
        assert_eq!(err.exit_code(), i32::from(EXIT_USAGE));
        let err = Cli::try_parse_from(["sipwarden"]).unwrap_err();
        assert_eq!(err.exit_code(), i32::from(EXIT_USAGE));
        let err = Cli::try_parse_from(["sipwarden", "check"]).unwrap_err();
        assert_eq!(err.exit_code(), i32::from(EXIT_USAGE));
        let err = Cli::try_parse_from(["sipwarden", "run", "extra"]).unwrap_err();
        assert_eq!(err.exit_code(), i32::from(EXIT_USAGE));
    }

    #[test]
    fn run_takes_an_optional_config() {
        let cli = Cli::try_parse_from(["sipwarden", "run"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run");
        };
        assert_eq!(args.config, None);
        let cli = Cli::try_parse_from(["sipwarden", "run", "-c", "a.toml"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run");
        };
        assert_eq!(args.config.as_deref(), Some(std::path::Path::new("a.toml")));
        let cli = Cli::try_parse_from(["sipwarden", "check", "--config", "b.toml"]).unwrap();
        let Command::Check(args) = cli.command else {
            panic!("not check");
        };
        assert_eq!(args.config, std::path::Path::new("b.toml"));
    }
}
