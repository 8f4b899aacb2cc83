//! The embedded lab PBX, sans-IO on the same SIP core: its config (with built-in defaults), the
//! queue engine (strategies, ring and wait timers, static and dynamic members, pause, wrap-up),
//! the registrar (digest auth, location), the queue_log writer, and the simulated call center
//! (Poisson callers, bot agents). The SIP B2BUA and the AMI server build on them.

pub mod ami_server;
pub mod config;
pub mod pbx;
pub mod queue;
pub mod queue_log_writer;
pub mod registrar;
pub mod sim;
