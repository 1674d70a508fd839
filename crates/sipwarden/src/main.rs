//! `sipwarden`: the SIP Session Border Controller binary. Commands: `run` (the SBC itself),
//! `check` (configuration validation) and `parse` (checks SIP messages with the same parser
//! the edge uses).

mod check_cmd;
mod cli;
mod dataplane;
mod logging;
mod media;
mod parse_cmd;
mod reload;
mod report;
mod run_cmd;
mod service;
mod settings;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
