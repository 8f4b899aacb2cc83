//! The only place with tokio, sockets and the wall clock: thin drivers around the sans-IO core.

pub mod ami;
pub mod dashboard;
pub mod follow_up;
pub mod lab;
pub mod mail;
pub mod rtp;
pub mod setup;
pub mod sip;
