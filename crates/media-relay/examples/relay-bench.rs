//! A line-oriented control front-end for benchmarking the relay (e.g. side by
//! side with rtpengine); the protocol is documented in `media_relay::bench`.
//!
//! ```text
//! cargo run --release -p media-relay --example relay-bench -- \
//!     --addr 127.0.0.1 --port-min 30000 --port-max 39999 [--workers N] \
//!     [--quarantine SECS] [--timeout SECS] [--io io_uring|epoll] [--batch-wait-us N] \
//!     [--connect 0|1] [--kernel 0|1]
//! ```
//!
//! Prints `ready`, then answers one line per command line on stdin
//! (`create ID A_IP:A_PORT B_IP:B_PORT [srtp=KEY]`, `delete ID`, `stats`); exits with
//! status 0 at end of input.

use std::process::ExitCode;

use media_relay::bench::{serve, Args};

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("relay-bench: {e}");
            return ExitCode::from(2);
        }
    };
    match serve(&args, std::io::stdin().lock(), std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relay-bench: {e}");
            ExitCode::from(1)
        }
    }
}
