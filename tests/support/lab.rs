//! The lab PBX on its own thread, ringside's own phones on real sockets, and what the lab
//! tests measure in recordings: shared by tests/lab_sip.rs and tests/lab_peers.rs.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ringside::config::{AudioConfig, Secret};
use ringside::lab::config::LabConfig;
use ringside::media::session::MediaStats;
use ringside::media::tones::goertzel;
use ringside::net::lab::{start, LabOptions};
use ringside::net::sip::{DriverCommand, DriverHandle, DriverOutput};
use ringside::sip::ua::{CallId, Command, UaConfig, UaEvent};

/// What the lab printed, shared with the test thread.
#[derive(Clone, Default)]
pub struct Printed(Arc<Mutex<Vec<u8>>>);

impl Write for Printed {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Printed {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// The lab on its own thread and runtime; stopped and joined on drop.
pub struct RunningLab {
    pub sip: SocketAddr,
    pub printed: Printed,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl RunningLab {
    /// A failure message with what the lab printed last and the queue_log so far.
    pub fn diagnose(&self, queue_log: &Path, what: &str) -> String {
        format!(
            "{what}\n--- lab printed:\n{}\n--- queue_log:\n{}",
            super::tail(&self.printed.text(), 40),
            super::read_text(queue_log)
        )
    }

    pub fn start(config: LabConfig, queue_log: PathBuf) -> RunningLab {
        let printed = Printed::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let mut out = printed.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let options = LabOptions {
                    config,
                    queue_log,
                    // A bound on the test, far above what it needs.
                    duration: Some(Duration::from_secs(120)),
                    status_every: Duration::from_secs(3600),
                    seed: 5,
                    ami: None,
                };
                let mut lab = start(options).await.expect("the lab starts");
                let sip = lab
                    .serve_sip("127.0.0.1:0".parse().expect("address"))
                    .await
                    .expect("SIP bound");
                bound_tx.send(sip).expect("test waits");
                tokio::select! {
                    result = lab.run(&mut out) => result.expect("the lab runs"),
                    _ = stopped => {}
                }
            });
        });
        let sip = bound_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the lab binds its SIP socket");
        assert_ne!(sip.port(), 0, "the real port is exposed");
        RunningLab {
            sip,
            printed,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for RunningLab {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// baresip's recordings of what it received (`-dec`), oldest first. baresip may cut the
/// ".wav" off long paths; the files are complete WAVs once their call closed.
pub fn received_recordings(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().contains("-dec"))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

pub fn read_wav(path: &Path) -> (u32, Vec<i16>) {
    let mut reader =
        hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = reader.spec();
    let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap_or(0)).collect();
    let channels = usize::from(spec.channels.max(1));
    let mono = samples
        .chunks(channels)
        .map(|c| (c.iter().map(|s| i32::from(*s)).sum::<i32>() / c.len() as i32) as i16)
        .collect();
    (spec.sample_rate, mono)
}

/// The strongest power of `frequency` in any 200 ms window.
pub fn peak_power(samples: &[i16], rate: u32, frequency: f64) -> f64 {
    let window = (rate / 5) as usize;
    samples
        .windows(window.max(1))
        .step_by((window / 4).max(1))
        .map(|w| goertzel(w, rate, frequency))
        .fold(0.0, f64::max)
}

pub fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

/// A registered baresip `agent` dials support's connection code *600 on `registrar`: the lab
/// answers, beeps and hangs up, and queue_log gets its ADDMEMBER.
pub fn baresip_joins_support(
    ctl: &mut super::BaresipCtl,
    lab: &RunningLab,
    queue_log: &Path,
    agent: &str,
    registrar: &str,
) {
    ctl.command_wait(
        "dial",
        &format!("sip:*600@{registrar}"),
        "CALL_ESTABLISHED",
        Duration::from_secs(10),
    );
    ctl.wait_event("CALL_CLOSED", Duration::from_secs(10));
    let added = format!("|support|{agent}|ADDMEMBER|");
    assert!(
        super::wait_until(Duration::from_secs(5), || !lines_with(
            &super::read_text(queue_log),
            &added
        )
        .is_empty()),
        "{}",
        lab.diagnose(queue_log, &format!("no ADDMEMBER for {agent}"))
    );
}

/// One of ringside's own phones: the sans-IO UA behind the `net::sip` driver, on real sockets.
pub struct RingsidePhone {
    pub driver: DriverHandle,
    /// Every event so far, oldest first.
    pub events: Vec<UaEvent>,
}

impl RingsidePhone {
    pub async fn start(user: &str, lab: SocketAddr, audio: AudioConfig, rtp: (u16, u16)) -> Self {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("a UDP socket on loopback");
        let local = socket.local_addr().expect("bound");
        let mut config = UaConfig::simple(user, local, lab);
        // The lab is not on 5060: dialled numbers must carry its port.
        config.domain = lab.to_string();
        config.password = Secret::new(format!("lab{user}"));
        config.auto_answer = Some(Duration::from_millis(300));
        config.rtp_ports = rtp;
        let seed = u64::from(local.port());
        let driver = ringside::net::sip::spawn(config, audio, socket, seed)
            .await
            .expect("the SIP driver starts");
        RingsidePhone {
            driver,
            events: Vec::new(),
        }
    }

    pub fn command(&self, command: Command) {
        self.driver
            .commands
            .send(DriverCommand::Ua(command))
            .expect("the driver runs");
    }

    pub fn note(&mut self, output: DriverOutput) -> Option<DriverOutput> {
        match output {
            DriverOutput::Event(event) => {
                self.events.push(event);
                None
            }
            DriverOutput::CommandFailed(error) => panic!("a command failed: {error}"),
            other => Some(other),
        }
    }

    /// The first event (already seen or still to come) that `wanted` accepts.
    pub async fn wait_for(&mut self, wait: Duration, wanted: impl Fn(&UaEvent) -> bool) -> UaEvent {
        let deadline = tokio::time::Instant::now() + wait;
        let mut seen = 0;
        loop {
            if let Some(event) = self.events[seen..].iter().find(|e| wanted(e)) {
                return event.clone();
            }
            seen = self.events.len();
            let output = tokio::time::timeout_at(deadline, self.driver.outputs.recv())
                .await
                .unwrap_or_else(|_| panic!("not seen within {wait:?}; events: {:#?}", self.events))
                .expect("the driver runs");
            self.note(output);
        }
    }

    /// The media counters of `call` now.
    pub async fn media_stats(&mut self, call: CallId) -> MediaStats {
        self.driver
            .commands
            .send(DriverCommand::Snapshot)
            .expect("the driver runs");
        loop {
            let output = tokio::time::timeout(Duration::from_secs(5), self.driver.outputs.recv())
                .await
                .expect("a snapshot")
                .expect("the driver runs");
            if let Some(DriverOutput::Snapshot { media, .. }) = self.note(output) {
                return media
                    .into_iter()
                    .find(|(c, _, _)| *c == call)
                    .map(|(_, stats, _)| stats)
                    .unwrap_or_else(|| panic!("no media for {call:?}"));
            }
        }
    }
}

pub fn incoming_call(event: &UaEvent) -> Option<CallId> {
    match event {
        UaEvent::IncomingCall { call, .. } => Some(*call),
        _ => None,
    }
}

/// Polls `done` every 50 ms on the async clock (the phones' drivers keep running meanwhile).
pub async fn wait_async(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
