//! The lab driver: runs the sans-IO simulated call center on the wall clock and appends its
//! queue_log to a file. The SIP side (registrar, B2BUA) and the AMI server join it later; for now
//! real phones cannot log in, and the lab says so.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::lab::config::LabConfig;
use crate::lab::sim::Simulation;

pub struct LabOptions {
    pub config: LabConfig,
    pub queue_log: PathBuf,
    /// Stop after this long (tests, demos); `None` runs until interrupted.
    pub duration: Option<Duration>,
    /// Print a one-line status per queue this often.
    pub status_every: Duration,
    pub seed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "cannot write the queue_log {path}: {error}. Pass --queue-log FILE in a writable place"
    )]
    QueueLog {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Run until `duration` elapses (or forever). Status lines go to `out`.
pub async fn run(options: LabOptions, out: &mut impl Write) -> Result<(), LabError> {
    let path = options.queue_log.clone();
    let fail = |error| LabError::QueueLog {
        path: path.clone(),
        error,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(fail)?;
    let _ = writeln!(out, "{}", options.config.describe());
    let _ = writeln!(out, "queue_log: {}", path.display());
    let _ = writeln!(
        out,
        "(simulated callers and bots only: SIP agents and the AMI server are not part of the lab yet)"
    );
    let _ = out.flush();

    let mut sim = Simulation::new(options.config, options.seed);
    let start = Instant::now();
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    sim.set_wall_clock(start, unix);
    sim.start(start);
    let end = options.duration.map(|d| start + d);
    let mut next_status = start + options.status_every;
    loop {
        let text = sim.poll_queue_log();
        if !text.is_empty() {
            log.write_all(text.as_bytes()).map_err(fail)?;
            log.flush().map_err(fail)?;
        }
        // Nothing real to carry out yet: real agents cannot log in, so no action targets them.
        while sim.poll_action().is_some() {}
        while sim.poll_event().is_some() {}
        let now = Instant::now();
        if now >= next_status {
            next_status = now + options.status_every;
            let snapshot = sim.snapshot();
            for q in &snapshot.queues {
                let busy = q
                    .members
                    .iter()
                    .filter(|m| m.current_call.is_some())
                    .count();
                let _ = writeln!(
                    out,
                    "{:<8} waiting {:>2}  agents {}/{} busy  completed {:>4}  abandoned {:>4}",
                    q.name,
                    q.callers.len(),
                    busy,
                    q.members.len(),
                    q.stats.completed,
                    q.stats.abandoned
                );
            }
            let _ = out.flush();
        }
        if end.is_some_and(|e| now >= e) {
            break;
        }
        let wake = [sim.poll_timeout(), Some(next_status), end]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + Duration::from_secs(1));
        tokio::time::sleep_until(tokio::time::Instant::from_std(wake)).await;
        sim.handle_timeout(Instant::now());
    }
    let text = sim.poll_queue_log();
    log.write_all(text.as_bytes()).map_err(fail)?;
    log.flush().map_err(fail)?;
    Ok(())
}
