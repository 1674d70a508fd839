//! `sipwarden`: the SIP Session Border Controller binary. For now it carries the `parse`
//! command, which checks SIP messages with the same parser the edge will use; `run` (the SBC
//! itself) and `check` (configuration validation) come later as further subcommands.

mod cli;
mod parse_cmd;
mod report;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
