//! Instruction counts (gungraun, under Callgrind) for the index parse and the full parse
//! (parse + `decode_all_headers()`) of the three benchmark messages and one adversarial input.
//! Deterministic, so usable as a regression gate on a noisy machine.
//!
//! Needs `gungraun-runner` 0.20 on PATH (`cargo install gungraun-runner --version 0.20.0
//! --locked`) and valgrind; run with `cargo bench -p sip-message --bench instructions`.

use std::hint::black_box;

use bytes::Bytes;
use gungraun::prelude::*;
use sip_message::{Limits, Message};

#[path = "common/inputs.rs"]
mod inputs;

fn message(name: &str) -> Bytes {
    let raw = inputs::MESSAGES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| *r)
        .expect("known message");
    Bytes::from_static(raw)
}

/// The adversarial input with the most work behind the index: 250 valid typed headers.
fn adversarial(name: &str) -> Bytes {
    inputs::adversarial()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, m)| Bytes::from(m))
        .expect("known adversarial input")
}

#[library_benchmark]
#[bench::invite(message("invite"))]
#[bench::ok200(message("ok200"))]
#[bench::register(message("register"))]
#[bench::adv_headers_250(adversarial("headers_250"))]
fn index(b: Bytes) -> usize {
    match Message::parse_with(black_box(b), &Limits::DEFAULT) {
        Ok(m) => black_box(m.header_count()),
        Err(e) => e.offset,
    }
}

#[library_benchmark]
#[bench::invite(message("invite"))]
#[bench::ok200(message("ok200"))]
#[bench::register(message("register"))]
#[bench::adv_headers_250(adversarial("headers_250"))]
#[bench::adv_quoted_escapes(adversarial("quoted_escapes"))]
fn full(b: Bytes) -> usize {
    match Message::parse_with(black_box(b), &Limits::DEFAULT) {
        Ok(m) => match m.decode_all_headers() {
            Ok(n) => black_box(n),
            Err(e) => e.offset,
        },
        Err(e) => e.offset,
    }
}

library_benchmark_group!(name = parse, benchmarks = [index, full]);

main!(library_benchmark_groups = parse);
