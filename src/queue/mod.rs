//! Queue intelligence, sans-IO: the Asterisk Manager Interface framing and typed queue events,
//! and the queue_log format. The queue model, the 13 report events and statistics build on
//! these (and the lab PBX speaks the same AMI and writes the same queue_log).

pub mod ami;
pub mod ami_client;
pub mod model;
pub mod queue_log;
pub mod report;
pub mod report_csv;
pub mod stats;
