//! `sipwarden`: the SIP Session Border Controller binary. Commands: `run` (the SBC itself),
//! `check` (configuration validation), `parse` (checks SIP messages with the same parser
//! the edge uses), `user` (local digest users), `ban` (stored bans) and `explain` (a policy
//! decision, step by step).

mod ban_cmd;
mod check_cmd;
mod cli;
mod dataplane;
mod explain_cmd;
mod logging;
mod media;
mod parse_cmd;
mod protection;
mod reload;
mod report;
mod run_cmd;
mod service;
mod settings;
mod user_cmd;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
