//! The SIP stack, sans-IO: messages, transactions, dialogs, registration, calls.
//!
//! Layers, bottom up (the pjsip naming): `msg` (parse/print) → `transaction` (RFC 3261 §17) →
//! `dialog` → `register` / `invite` (sessions) → the `Endpoint` that owns them all. None of them
//! touches a socket or a clock: time comes in as `now`, datagrams go out through `poll_transmit`.

pub mod msg;
