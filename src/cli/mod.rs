//! Commands that are not the dashboard: the line-mode shell, the config check, and the queue
//! report and event stream.

pub mod check;
pub mod contacts;
pub mod devices;
pub mod report;
pub mod shell;
pub mod stderr;
