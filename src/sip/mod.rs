//! The SIP stack, sans-IO: messages, transactions, dialogs, registration, calls.
//!
//! Layers, bottom up (pjsip's naming): `msg` (parse/print) → `transaction` (RFC 3261 §17) →
//! `dialog` → `register` / `call` / `transfer` (the transaction user) → `ua::UserAgent`, which owns
//! them all. None of them touches a socket or a clock: time comes in as `now`, datagrams go out
//! through `poll_transmit`.

pub mod auth;
pub mod call;
pub mod dialog;
pub mod msg;
pub mod mwi;
pub mod register;
pub mod sdp;
pub mod transaction;
pub mod transfer;
pub mod ua;
pub mod validate;
