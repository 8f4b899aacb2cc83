//! ringside: a terminal call-center console.
//!
//! Layering rule: everything under `sip` (and later `media`, `queue`, `lab`) is sans-IO — plain
//! state machines fed with bytes, events and an explicit `now`, drained for outputs. Only `net`
//! owns sockets, timers and tasks; `cli` and `main` wire them together. A test
//! (`tests/layering.rs`) fails if the core reaches for tokio, `std::net` or the system clock.

pub mod cli;
pub mod config;
pub mod lab;
pub mod mail;
pub mod media;
pub mod net;
pub mod queue;
pub mod sip;
pub mod store;
mod toml_check;
pub mod tui;
