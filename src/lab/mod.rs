//! The embedded lab PBX, sans-IO on the same SIP core: the queue engine (strategies, ring and
//! wait timers, static and dynamic members, pause, wrap-up), the registrar (digest auth, location)
//! and the queue_log writer. The B2BUA, simulated callers and the AMI server build on them.

pub mod queue;
pub mod queue_log_writer;
pub mod registrar;
