//! Commands that are not the dashboard: the line-mode shell and the config check.

pub mod check;
pub mod shell;
