//! `sipwarden parse`: reads SIP messages (one per file, or one from standard input), checks each
//! the way the edge will (parse, validate, decode every typed header, parse an SDP body) and
//! prints a summary of each valid message or the reason an invalid one was rejected.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use clap::Args;
use sip_message::{Limits, Message, ParseError};

use crate::cli::{EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use crate::report::MessageReport;

#[derive(Debug, Args)]
pub struct ParseArgs {
    /// Print one JSON object per message, one per line, instead of the readable summary.
    #[arg(long)]
    pub json: bool,

    /// Files holding one SIP message each (a datagram's payload). Without FILE, or with `-`,
    /// the message is read from standard input.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Why a message is invalid. Displays as `error at byte N: REASON`, N counting from the first
/// byte of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub offset: usize,
    pub reason: String,
}

impl From<ParseError> for Invalid {
    fn from(e: ParseError) -> Self {
        Invalid {
            offset: e.offset,
            reason: e.reason().to_owned(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error at byte {}: {}", self.offset, self.reason)
    }
}

/// Runs the command; returns the process exit code.
pub fn run(args: &ParseArgs) -> u8 {
    let stdin_only = [PathBuf::from("-")];
    let inputs: &[PathBuf] = if args.files.is_empty() {
        &stdin_only
    } else {
        &args.files
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut code = EXIT_OK;
    for path in inputs {
        let (label, data) = match read_input(path) {
            Ok(v) => v,
            Err((label, e)) => {
                eprintln!("{label}: cannot read: {e}");
                code = code.max(EXIT_USAGE);
                continue;
            }
        };
        match check(data) {
            Ok(msg) => {
                let report = MessageReport::new(&label, &msg.message, msg.sdp);
                let written = if args.json {
                    serde_json::to_writer(&mut out, &report)
                        .map_err(io::Error::other)
                        .and_then(|()| writeln!(out))
                } else {
                    report.write_text(&mut out)
                };
                if let Err(e) = written.and_then(|()| out.flush()) {
                    // A closed pipe (`| head`) ends the run quietly.
                    if e.kind() == io::ErrorKind::BrokenPipe {
                        return code;
                    }
                    eprintln!("sipwarden: cannot write output: {e}");
                    return EXIT_USAGE;
                }
            }
            Err(e) => {
                eprintln!("{label}: {e}");
                code = code.max(EXIT_INVALID);
            }
        }
    }
    code
}

/// Reads one input, at most one byte more than the parser accepts: a larger input is rejected
/// by the parser as too large without being held in memory whole.
fn read_input(path: &PathBuf) -> Result<(String, Vec<u8>), (String, io::Error)> {
    let cap = (Limits::DEFAULT.max_message_size as u64).saturating_add(1);
    let mut data = Vec::new();
    if path.as_os_str() == "-" {
        let label = "<stdin>".to_owned();
        match io::stdin().lock().take(cap).read_to_end(&mut data) {
            Ok(_) => Ok((label, data)),
            Err(e) => Err((label, e)),
        }
    } else {
        let label = path.display().to_string();
        match File::open(path).and_then(|f| f.take(cap).read_to_end(&mut data)) {
            Ok(_) => Ok((label, data)),
            Err(e) => Err((label, e)),
        }
    }
}

/// A message that passed every check, with its SDP body decoded when it has one.
pub struct Checked {
    pub message: Message,
    pub sdp: Option<sdp_message::SdpSummary>,
}

/// The checks the edge applies to a message before it handles it: parse, mandatory and
/// single-value headers, every typed header value, and the SDP body when Content-Type says
/// `application/sdp`. An empty body is no SDP at all (some agents label an empty ACK or
/// re-INVITE `application/sdp`), not an invalid one.
pub fn check(data: Vec<u8>) -> Result<Checked, Invalid> {
    let message = Message::parse(data)?;
    message.validate()?;
    message.decode_all_headers()?;
    let sdp = if is_sdp(&message) && !message.body().is_empty() {
        let body = message.body();
        let sd = sdp_message::parse(body).map_err(|e| Invalid {
            offset: message.body_span().start as usize + e.offset,
            reason: format!("invalid SDP body: {}", e.reason()),
        })?;
        Some(sdp_message::summary(&sd))
    } else {
        None
    };
    Ok(Checked { message, sdp })
}

/// True when Content-Type is `application/sdp` (parameters and case ignored).
fn is_sdp(m: &Message) -> bool {
    matches!(m.content_type(), Some(Ok(ct)) if ct.is("application", "sdp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_content_type_is_recognised() {
        let m = |ct: &str| {
            let text = format!(
                "OPTIONS sip:a@example.com SIP/2.0\r\nContent-Type: {ct}\r\nContent-Length: 0\r\n\r\n"
            );
            Message::parse(text.into_bytes()).unwrap()
        };
        assert!(is_sdp(&m("application/sdp")));
        assert!(is_sdp(&m("Application/SDP ;charset=utf-8")));
        assert!(!is_sdp(&m("application/sdpx")));
        assert!(!is_sdp(&m("multipart/mixed;boundary=x")));
    }

    const HEAD: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
To: <sip:bob@example.com>\r\n\
From: <sip:alice@example.com>;tag=1\r\n\
Call-ID: 1@192.0.2.1\r\n\
CSeq: 1 INVITE\r\n\
Content-Type: application/sdp\r\n";

    #[test]
    fn empty_sdp_body_is_no_sdp() {
        let text = format!("{HEAD}Content-Length: 0\r\n\r\n");
        let c = check(text.into_bytes()).map_err(|e| e.to_string()).unwrap();
        assert!(c.sdp.is_none());
    }

    #[test]
    fn sdp_error_offsets_count_from_the_start_of_the_input() {
        let text = format!("\r\n{HEAD}Content-Length: 4\r\n\r\nv=1\n");
        let body_at = text.len() - 4;
        let e = match check(text.into_bytes()) {
            Err(e) => e,
            Ok(_) => panic!("bad SDP accepted"),
        };
        assert!(e.offset >= body_at, "{e}");
        assert!(e.reason.starts_with("invalid SDP body: "), "{e}");
    }

    #[test]
    fn errors_display_offset_and_reason() {
        let e = Invalid {
            offset: 7,
            reason: "malformed Request-URI".into(),
        };
        assert_eq!(e.to_string(), "error at byte 7: malformed Request-URI");
    }
}
