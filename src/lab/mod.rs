//! The embedded lab PBX, sans-IO on the same SIP core: so far the queue engine (strategies,
//! ring and wait timers, static and dynamic members, pause, wrap-up). The registrar, B2BUA,
//! simulated callers and the AMI/queue_log outputs build on it.

pub mod queue;
