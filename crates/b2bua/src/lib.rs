//! # b2bua: the back-to-back user agent of sipwarden, sans-IO
//!
//! (Full documentation below is written with the design.)

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod config;
mod core;
mod media;
mod msg;

pub use crate::config::{B2buaConfig, ZoneIdentity};
pub use crate::core::{
    B2bua, B2buaEvent, CallHandle, Direction, EndCause, HistoryEntry, LegSide, RouteDecision,
    StartError,
};
pub use crate::media::{FakeMediaPort, MediaPort, MediaPortError, MediaSessionId, MediaSide};

#[cfg(test)]
mod tests;
