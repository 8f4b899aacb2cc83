//! The SIP driver: moves datagrams, stream bytes, instants and commands in and out of the
//! sans-IO `UserAgent`. Nothing else happens here — no protocol decisions.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::config::AudioConfig;
use crate::media::session::{MediaEvent, MediaParams, MediaStats};
use crate::media::tones::Tone;
use crate::net::rtp::{
    open_device, spawn_call_media, tone_region, MediaCommand, MediaReport, MediaTask,
};
use crate::sip::msg::{Framed, StreamFramer};
use crate::sip::transaction::{Target, Transport};
use crate::sip::ua::{CallId, CallInfo, Command, CommandError, UaConfig, UaEvent, UserAgent};

/// What the front end (shell, dashboard) sends to the driver.
#[derive(Debug)]
pub enum DriverCommand {
    Ua(Command),
    /// Ask for a snapshot of calls and registration.
    Snapshot,
    /// Mute or unmute a call's microphone (RTP keeps flowing with silence).
    Mute {
        call: CallId,
        muted: bool,
    },
    /// Start or stop recording a call.
    Record {
        call: CallId,
    },
    /// Unregister (when registered), end calls, and stop within `grace`.
    Shutdown {
        grace: Duration,
    },
}

/// What the driver reports back.
#[derive(Debug)]
pub enum DriverOutput {
    Event(UaEvent),
    CommandFailed(CommandError),
    Snapshot {
        calls: Vec<CallInfo>,
        registered: bool,
        /// Per call: the media counters and the MOS estimate, when media runs.
        media: Vec<(CallId, MediaStats, f64)>,
    },
    /// Media sockets or the SIP socket failed in a way the user should know about.
    Warning(String),
    /// A call's recording started, into this file (the history keeps the path).
    Recording {
        call: CallId,
        path: PathBuf,
    },
    Stopped,
}

pub struct DriverHandle {
    pub commands: mpsc::UnboundedSender<DriverCommand>,
    pub outputs: mpsc::UnboundedReceiver<DriverOutput>,
    pub local: SocketAddr,
}

enum StreamInput {
    Data(SocketAddr, Vec<u8>),
    Closed(SocketAddr),
    Accepted(SocketAddr, TcpStream),
}

/// Bind the SIP sockets and start the driver task on the current runtime.
pub async fn spawn(
    config: UaConfig,
    audio: AudioConfig,
    socket: UdpSocket,
    seed: u64,
) -> io::Result<DriverHandle> {
    let local = socket.local_addr()?;
    // A TCP listener on the same port lets peers open connections to our Contact.
    let listener = TcpListener::bind(local).await.ok();
    let (command_tx, command_rx) = mpsc::unbounded_channel();
    let (output_tx, output_rx) = mpsc::unbounded_channel();
    let ua = UserAgent::new(config, seed);
    tokio::spawn(run(
        ua, audio, socket, listener, command_rx, output_tx, seed,
    ));
    Ok(DriverHandle {
        commands: command_tx,
        outputs: output_rx,
        local,
    })
}

struct Driver {
    ua: UserAgent,
    udp: Arc<UdpSocket>,
    streams: HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>,
    stream_tx: mpsc::UnboundedSender<StreamInput>,
    outputs: mpsc::UnboundedSender<DriverOutput>,
    audio: AudioConfig,
    media: HashMap<CallId, MediaTask>,
    media_stats: HashMap<CallId, (MediaStats, f64)>,
    reports: mpsc::UnboundedSender<MediaReport>,
    seed: u64,
    /// Calls that were answered and are still up (for call-waiting beeps).
    answered: std::collections::BTreeSet<CallId>,
    recordings: HashMap<CallId, PathBuf>,
    /// The "no sound card" notice is said once, not per call.
    warned_device: bool,
}

async fn run(
    ua: UserAgent,
    audio: AudioConfig,
    udp: UdpSocket,
    listener: Option<TcpListener>,
    mut commands: mpsc::UnboundedReceiver<DriverCommand>,
    outputs: mpsc::UnboundedSender<DriverOutput>,
    seed: u64,
) {
    let (stream_tx, mut stream_rx) = mpsc::unbounded_channel();
    if let Some(listener) = listener {
        let tx = stream_tx.clone();
        tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                if tx.send(StreamInput::Accepted(peer, stream)).is_err() {
                    break;
                }
            }
        });
    }
    let (reports, mut report_rx) = mpsc::unbounded_channel();
    let mut driver = Driver {
        ua,
        udp: Arc::new(udp),
        streams: HashMap::new(),
        stream_tx,
        outputs,
        audio,
        media: HashMap::new(),
        media_stats: HashMap::new(),
        reports,
        seed,
        answered: std::collections::BTreeSet::new(),
        recordings: HashMap::new(),
        warned_device: false,
    };
    let mut buf = vec![0u8; 65_536];
    let mut shutdown_deadline: Option<Instant> = None;
    loop {
        driver.flush().await;
        if let Some(deadline) = shutdown_deadline {
            if driver.ua.is_idle() || Instant::now() >= deadline {
                break;
            }
        }
        let wake = [driver.ua.poll_timeout(), shutdown_deadline]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(wake));
        tokio::select! {
            received = driver.udp.recv_from(&mut buf) => match received {
                Ok((n, from)) => {
                    log_message("received from", from, &buf[..n]);
                    let target = Target { transport: Transport::Udp, addr: from };
                    driver.ua.handle_datagram(Instant::now(), target, &buf[..n]);
                }
                Err(error) => tracing::debug!(%error, "UDP receive error"),
            },
            Some(input) = stream_rx.recv() => driver.on_stream_input(input),
            Some(report) = report_rx.recv() => driver.on_media_report(report),
            command = commands.recv() => match command {
                Some(DriverCommand::Ua(command)) => {
                    if let Err(error) = driver.ua.command(Instant::now(), command) {
                        let _ = driver.outputs.send(DriverOutput::CommandFailed(error));
                    }
                }
                Some(DriverCommand::Snapshot) => {
                    let now = Instant::now();
                    let media = driver
                        .media_stats
                        .iter()
                        .map(|(call, (stats, mos))| (*call, *stats, *mos))
                        .collect();
                    let _ = driver.outputs.send(DriverOutput::Snapshot {
                        calls: driver.ua.calls(now),
                        registered: driver.ua.is_registered(),
                        media,
                    });
                }
                Some(DriverCommand::Record { call }) => driver.toggle_recording(call),
                Some(DriverCommand::Mute { call, muted }) => match driver.media.get(&call) {
                    Some(task) => {
                        let _ = task.commands.send(MediaCommand::Mute(muted));
                        let word = if muted { "muted" } else { "unmuted" };
                        let _ = driver.outputs.send(DriverOutput::Event(UaEvent::Notice {
                            message: format!("call {call}: {word}"),
                        }));
                    }
                    None => {
                        let _ = driver.outputs.send(DriverOutput::Warning(format!(
                            "call {call} has no media to mute"
                        )));
                    }
                },
                shutdown @ (Some(DriverCommand::Shutdown { .. }) | None) => {
                    let grace = match shutdown {
                        Some(DriverCommand::Shutdown { grace }) => grace,
                        _ => Duration::from_secs(2),
                    };
                    if shutdown_deadline.is_none() {
                        let now = Instant::now();
                        shutdown_deadline = Some(now + grace);
                        for call in driver.ua.calls(now) {
                            let _ = driver.ua.command(now, Command::Hangup { call: call.id });
                        }
                        if driver.ua.is_registered() {
                            let _ = driver.ua.command(now, Command::Unregister);
                        }
                    }
                }
            },
            () = sleep => driver.ua.handle_timeout(Instant::now()),
        }
    }
    for (_, task) in driver.media.drain() {
        let _ = task.commands.send(MediaCommand::Stop {
            after: Duration::ZERO,
        });
    }
    let _ = driver.outputs.send(DriverOutput::Stopped);
}

impl Driver {
    /// Drain every output of the core: datagrams, stream writes, events.
    async fn flush(&mut self) {
        while let Some(transmit) = self.ua.poll_transmit() {
            log_message("sent to", transmit.target.addr, &transmit.bytes);
            match transmit.target.transport {
                Transport::Udp => {
                    if let Err(error) = self
                        .udp
                        .send_to(&transmit.bytes, transmit.target.addr)
                        .await
                    {
                        tracing::debug!(%error, to = %transmit.target.addr, "UDP send failed");
                        self.ua
                            .handle_transport_error(Instant::now(), transmit.target);
                    }
                }
                Transport::Tcp => self.send_stream(transmit.target, transmit.bytes),
            }
        }
        while let Some(event) = self.ua.poll_event() {
            match &event {
                UaEvent::Media {
                    call,
                    local_port,
                    remote,
                    codec,
                    payload_type,
                    telephone_event,
                    telephone_event_clock,
                    sending,
                    receiving,
                    ptime_ms,
                } => {
                    if let (Some(remote), Some(codec), Some(pt)) = (remote, codec, payload_type) {
                        let params = MediaParams {
                            remote: *remote,
                            codec: codec.clone(),
                            payload_type: *pt,
                            telephone_event: *telephone_event,
                            telephone_event_clock: *telephone_event_clock,
                            sending: *sending,
                            receiving: *receiving,
                            ptime_ms: *ptime_ms,
                        };
                        let local = SocketAddr::new(self.ua.config().media_ip, *local_port);
                        self.media_command(*call, MediaCommand::Media { local, params });
                    }
                }
                UaEvent::Dialing { call, .. } => self.start_media(*call),
                UaEvent::IncomingCall { call, .. } => {
                    self.start_media(*call);
                    // With a call already up, the new one beeps in it instead of ringing.
                    let active: Vec<CallId> = self.answered.iter().copied().collect();
                    if active.is_empty() {
                        self.media_command(*call, MediaCommand::Tone(Some(Tone::Ring)));
                    } else {
                        for other in active {
                            self.media_command(other, MediaCommand::Tone(Some(Tone::CallWaiting)));
                        }
                    }
                }
                UaEvent::Ringing { call, early_media } => {
                    // Without early media the far end's ringing is ours to play (RFC 3960).
                    let tone = (!*early_media).then_some(Tone::Ringback);
                    self.media_command(*call, MediaCommand::Tone(tone));
                }
                UaEvent::Answered { call, .. } => {
                    self.answered.insert(*call);
                    for other in self.answered.clone() {
                        self.media_command(other, MediaCommand::Tone(None));
                    }
                    if self.audio.record {
                        let path = self.recording_path(*call);
                        self.media_command(*call, MediaCommand::Record(Some(path)));
                    }
                }
                UaEvent::SendDtmfRtp { call, digits } => {
                    if let Some(task) = self.media.get(call) {
                        let _ = task.commands.send(MediaCommand::Dtmf(digits.clone()));
                    }
                }
                UaEvent::CallEnded { call, code, .. } => {
                    // A failed outgoing call tells why in sound, as a phone does.
                    let tone = match code {
                        Some(486 | 600) => Some(Tone::Busy),
                        Some(404 | 408 | 480 | 484 | 488 | 500..=599) => Some(Tone::Congestion),
                        _ => None,
                    };
                    let after = if tone.is_some() {
                        self.media_command(*call, MediaCommand::Tone(tone));
                        Duration::from_secs(3)
                    } else {
                        Duration::ZERO
                    };
                    self.stop_media(*call, after);
                }
                _ => {}
            }
            let _ = self.outputs.send(DriverOutput::Event(event));
        }
    }

    fn send_stream(&mut self, target: Target, bytes: Vec<u8>) {
        if let Some(writer) = self.streams.get(&target.addr) {
            if writer.send(bytes.clone()).is_ok() {
                return;
            }
        }
        let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let _ = tx.send(bytes);
        self.streams.insert(target.addr, tx);
        let inputs = self.stream_tx.clone();
        let addr = target.addr;
        tokio::spawn(async move {
            match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => serve_stream(addr, stream, rx, inputs).await,
                _ => {
                    tracing::info!(%addr, "TCP connection failed");
                    let _ = inputs.send(StreamInput::Closed(addr));
                }
            }
        });
    }

    fn on_stream_input(&mut self, input: StreamInput) {
        match input {
            StreamInput::Accepted(peer, stream) => {
                let (tx, rx) = mpsc::unbounded_channel();
                self.streams.insert(peer, tx);
                let inputs = self.stream_tx.clone();
                tokio::spawn(serve_stream(peer, stream, rx, inputs));
            }
            StreamInput::Data(peer, bytes) => {
                let target = Target {
                    transport: Transport::Tcp,
                    addr: peer,
                };
                self.ua.handle_datagram(Instant::now(), target, &bytes);
            }
            StreamInput::Closed(peer) => {
                self.streams.remove(&peer);
                let target = Target {
                    transport: Transport::Tcp,
                    addr: peer,
                };
                self.ua.handle_transport_error(Instant::now(), target);
            }
        }
    }

    fn start_media(&mut self, call: CallId) {
        if self.media.contains_key(&call) {
            return;
        }
        let (device, notice) = open_device(&self.audio, call);
        if let Some(message) = notice {
            if !self.warned_device {
                self.warned_device = true;
                let _ = self.outputs.send(DriverOutput::Warning(message));
            }
        }
        self.seed = self
            .seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(u64::from(call.0));
        let task = spawn_call_media(
            call,
            device,
            tone_region(&self.audio),
            self.reports.clone(),
            self.seed,
        );
        self.media.insert(call, task);
    }

    fn media_command(&mut self, call: CallId, command: MediaCommand) {
        if !self.media.contains_key(&call) {
            self.start_media(call);
        }
        if let Some(task) = self.media.get(&call) {
            let _ = task.commands.send(command);
        }
    }

    /// `[audio] record_dir`/YYYYmmdd-HHMMSS-call<N>.wav (UTC), or the data dir's recordings/.
    fn recording_path(&self, call: CallId) -> PathBuf {
        let dir = self.audio.record_dir.clone().unwrap_or_else(|| {
            directories::ProjectDirs::from("", "", "ringside")
                .map(|d| d.data_local_dir().join("recordings"))
                .unwrap_or_else(|| PathBuf::from("recordings"))
        });
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        dir.join(format!("{}-call{}.wav", utc_stamp(secs), call.0))
    }

    /// Start or stop recording a call (the shell's `record`).
    fn toggle_recording(&mut self, call: CallId) {
        if !self.media.contains_key(&call) {
            let _ = self.outputs.send(DriverOutput::Warning(format!(
                "call {call} has no media to record"
            )));
            return;
        }
        if self.recordings.contains_key(&call) {
            self.media_command(call, MediaCommand::Record(None));
        } else {
            let path = self.recording_path(call);
            self.media_command(call, MediaCommand::Record(Some(path)));
        }
    }

    fn on_media_report(&mut self, report: MediaReport) {
        match report {
            MediaReport::Event(call, MediaEvent::Dtmf { digit, duration_ms }) => {
                let _ = self
                    .outputs
                    .send(DriverOutput::Event(UaEvent::DtmfReceived {
                        call,
                        digit,
                        duration_ms,
                    }));
            }
            MediaReport::Event(_, MediaEvent::RemoteBye) => {}
            MediaReport::Stats(call, stats, mos) => {
                self.media_stats.insert(call, (stats, mos));
            }
            MediaReport::Recording(call, path) => {
                let message = match &path {
                    Some(p) if !self.recordings.contains_key(&call) => {
                        self.recordings.insert(call, p.clone());
                        let _ = self.outputs.send(DriverOutput::Recording {
                            call,
                            path: p.clone(),
                        });
                        format!("call {call}: recording to {}", p.display())
                    }
                    Some(p) => {
                        self.recordings.remove(&call);
                        format!("call {call}: recording saved to {}", p.display())
                    }
                    None => {
                        self.recordings.remove(&call);
                        format!("call {call}: recording could not be finished")
                    }
                };
                let _ = self
                    .outputs
                    .send(DriverOutput::Event(UaEvent::Notice { message }));
            }
            MediaReport::Failed(call, message) => {
                let _ = self
                    .outputs
                    .send(DriverOutput::Warning(format!("call {call}: {message}")));
            }
        }
    }

    fn stop_media(&mut self, call: CallId, after: Duration) {
        self.media_stats.remove(&call);
        self.answered.remove(&call);
        if let Some(task) = self.media.remove(&call) {
            let _ = task.commands.send(MediaCommand::Stop { after });
        }
    }
}

/// One TCP connection: frames incoming bytes into messages and writes outgoing ones.
async fn serve_stream(
    peer: SocketAddr,
    stream: TcpStream,
    mut outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
    inputs: mpsc::UnboundedSender<StreamInput>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let mut framer = StreamFramer::default();
    let mut buf = vec![0u8; 16_384];
    loop {
        tokio::select! {
            read = reader.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    framer.push(&buf[..n]);
                    loop {
                        match framer.next_item() {
                            Ok(Some(Framed::Message(message))) => {
                                let _ = inputs.send(StreamInput::Data(peer, message.to_bytes()));
                            }
                            Ok(Some(Framed::Ping)) => {
                                // RFC 5626 keepalive: answer a double-CRLF ping with one CRLF.
                                if writer.write_all(b"\r\n").await.is_err() {
                                    break;
                                }
                            }
                            Ok(Some(Framed::Invalid(rejected))) => {
                                tracing::debug!(error = %rejected.error, %peer, "bad message on TCP");
                            }
                            Ok(None) => break,
                            Err(error) => {
                                tracing::info!(%error, %peer, "closing TCP connection");
                                let _ = inputs.send(StreamInput::Closed(peer));
                                return;
                            }
                        }
                    }
                }
            },
            bytes = outgoing.recv() => match bytes {
                Some(bytes) => {
                    if writer.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
        }
    }
    let _ = inputs.send(StreamInput::Closed(peer));
}

/// SIP traffic at trace level, with credentials cut out: digest responses are derived from
/// the password and must never reach a log file.
fn log_message(direction: &str, peer: SocketAddr, bytes: &[u8]) {
    if !tracing::enabled!(tracing::Level::TRACE) {
        return;
    }
    let text = String::from_utf8_lossy(bytes);
    let redacted: Vec<String> = text
        .split("\r\n")
        .map(|line| {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("authorization:") || lower.starts_with("proxy-authorization:") {
                let name = line.split(':').next().unwrap_or_default();
                format!("{name}: <redacted>")
            } else {
                line.to_string()
            }
        })
        .collect();
    tracing::trace!(%peer, "{direction} {peer}:\n{}", redacted.join("\n"));
}

/// `YYYYmmdd-HHMMSS` in UTC from Unix seconds (civil-from-days, no calendar crate needed).
fn utc_stamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_stamps_are_civil_dates() {
        assert_eq!(super::utc_stamp(0), "19700101-000000");
        assert_eq!(super::utc_stamp(1_795_259_540), "20261121-111220");
        assert_eq!(super::utc_stamp(951_782_400), "20000229-000000");
    }
}
