//! While the dashboard owns the terminal, anything written to stderr (fd 2) would scribble
//! over it: C libraries print there directly (ALSA's "cannot find card", from any thread).
//! [`StderrToLog`] points fd 2 at the log file for as long as it lives, then puts the
//! terminal back. Safe Rust: `rustix`'s dup/dup2 wrappers.

use std::fs::File;
use std::io;
use std::path::Path;

/// The terminal's stderr while it is redirected, for the crash message (see
/// [`restore_for_crash`]).
#[cfg(unix)]
static TERMINAL_STDERR: std::sync::Mutex<Option<rustix::fd::OwnedFd>> = std::sync::Mutex::new(None);

/// Points fd 2 back at the terminal, so a panic's "ringside crashed" reaches the user rather
/// than the log. For the panic hook: it never blocks.
pub fn restore_for_crash() {
    #[cfg(unix)]
    if let Ok(guard) = TERMINAL_STDERR.try_lock() {
        if let Some(fd) = guard.as_ref() {
            let _ = rustix::stdio::dup2_stderr(fd);
        }
    }
}

/// Redirects fd 2 to a file until dropped.
pub struct StderrToLog {
    #[cfg(unix)]
    saved: rustix::fd::OwnedFd,
}

impl StderrToLog {
    /// Appends fd 2's output to `log` from now on.
    #[cfg(unix)]
    pub fn start(log: &Path) -> io::Result<StderrToLog> {
        use std::os::fd::AsFd;
        let file = File::options().create(true).append(true).open(log)?;
        let saved = rustix::io::dup(io::stderr().as_fd())?;
        if let Ok(mut slot) = TERMINAL_STDERR.lock() {
            *slot = rustix::io::dup(&saved).ok();
        }
        rustix::stdio::dup2_stderr(file.as_fd())?;
        Ok(StderrToLog { saved })
    }

    /// Elsewhere stderr stays where it is.
    #[cfg(not(unix))]
    pub fn start(log: &Path) -> io::Result<StderrToLog> {
        let _ = File::options().create(true).append(true).open(log)?;
        Ok(StderrToLog {})
    }
}

impl Drop for StderrToLog {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            if let Err(error) = rustix::stdio::dup2_stderr(&self.saved) {
                tracing::warn!(%error, "cannot give stderr back to the terminal");
            }
            if let Ok(mut slot) = TERMINAL_STDERR.lock() {
                *slot = None;
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn fd_2_goes_to_the_log_and_comes_back() {
        let path = std::env::temp_dir().join(format!("ringside-stderr-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        {
            let _guard = StderrToLog::start(&path).expect("redirect");
            // Straight to fd 2, as a C library would (eprintln! is captured by the harness).
            let _ = io::stderr().write_all(b"ALSA lib pcm.c: Unknown PCM default\n");
        }
        let _ = io::stderr().write_all(b"");
        let logged = std::fs::read_to_string(&path).expect("log");
        assert!(logged.contains("Unknown PCM default"), "{logged:?}");
        let _ = std::fs::remove_file(&path);
    }
}
