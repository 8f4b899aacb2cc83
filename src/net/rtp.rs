//! The media driver: one task per call, from the first ring to the last tone. It owns the audio
//! device for the call's whole life (so ringback, ring and busy tones and the conversation share
//! it), binds the RTP/RTCP sockets once media is negotiated, paces the 20 ms frames, and moves
//! samples between the device and the sans-IO `MediaSession`. It can record the call.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::config::{AudioConfig, AudioDeviceChoice, ToneRegionChoice};
use crate::media::device::{AudioDevice, FileDevice, NoDevice};
use crate::media::resample::{ResampleError, StreamResampler};
use crate::media::session::{Channel, MediaEvent, MediaParams, MediaSession, MediaStats};
use crate::media::tones::{Tone, ToneGenerator, ToneRegion};
use crate::sip::ua::CallId;

/// The device rate: wideband, so G.722 needs no resampling and G.711 is a clean 2:1.
const DEVICE_RATE: u32 = 16_000;
const FRAME: Duration = Duration::from_millis(20);

/// What the SIP driver asks of a call's media task.
#[derive(Debug)]
pub enum MediaCommand {
    /// Media was negotiated or renegotiated: bind `local` on first use, then send to `params`.
    Media {
        local: SocketAddr,
        params: MediaParams,
    },
    /// Play a local tone (ringback, ring, call waiting), or stop with `None`.
    Tone(Option<Tone>),
    Dtmf(String),
    Mute(bool),
    /// Start (`Some(path)`) or stop recording the call as two-channel WAV (agent, remote).
    Record(Option<PathBuf>),
    /// End the call's media; `after` lets a busy or congestion tone play out first.
    Stop {
        after: Duration,
    },
}

/// What a media task reports.
#[derive(Debug)]
pub enum MediaReport {
    Event(CallId, MediaEvent),
    Stats(CallId, MediaStats, f64),
    Recording(CallId, Option<PathBuf>),
    Failed(CallId, String),
}

pub struct MediaTask {
    pub commands: mpsc::UnboundedSender<MediaCommand>,
}

/// The device a call uses, from `[audio]`. A sound card that cannot be opened falls back to
/// no device, and the caller is told why (the call itself goes on).
pub fn open_device(audio: &AudioConfig, call: CallId) -> (Box<dyn AudioDevice>, Option<String>) {
    match &audio.device {
        AudioDeviceChoice::None => (Box::new(NoDevice::new(DEVICE_RATE)), None),
        AudioDeviceChoice::File => {
            let output = audio.file_out.as_ref().map(|p| per_call_path(p, call));
            match FileDevice::open(audio.file_in.as_deref(), output.as_deref(), DEVICE_RATE) {
                Ok(device) => (Box::new(device), None),
                Err(error) => (
                    Box::new(NoDevice::new(DEVICE_RATE)),
                    Some(format!(
                        "[audio] file device: {error}; the call goes on without audio"
                    )),
                ),
            }
        }
        AudioDeviceChoice::Default | AudioDeviceChoice::Named(_) => open_sound_card(audio),
    }
}

/// The cards `[audio]` names for each direction: `input`/`output` first, then `device`.
#[cfg(feature = "sound-card")]
pub fn sound_card_choice(audio: &AudioConfig) -> crate::media::sound_card::SoundCardChoice {
    let named = match &audio.device {
        AudioDeviceChoice::Named(name) => Some(name.clone()),
        _ => None,
    };
    crate::media::sound_card::SoundCardChoice {
        input: audio.input.clone().or_else(|| named.clone()),
        output: audio.output.clone().or(named),
    }
}

#[cfg(feature = "sound-card")]
fn open_sound_card(audio: &AudioConfig) -> (Box<dyn AudioDevice>, Option<String>) {
    match crate::media::sound_card::SoundCard::open(&sound_card_choice(audio)) {
        Ok(card) => (Box::new(card), None),
        Err(error) => (
            Box::new(NoDevice::new(DEVICE_RATE)),
            Some(format!("{error}; the call goes on without audio")),
        ),
    }
}

#[cfg(not(feature = "sound-card"))]
fn open_sound_card(_audio: &AudioConfig) -> (Box<dyn AudioDevice>, Option<String>) {
    (
        Box::new(NoDevice::new(DEVICE_RATE)),
        Some("this ringside was built without sound-card support (cargo feature `sound-card`, which needs libasound2-dev): the call runs with no audio device; set [audio] device = \"none\" to silence this notice".into()),
    )
}

pub fn tone_region(audio: &AudioConfig) -> ToneRegion {
    match audio.tone_region {
        ToneRegionChoice::Us => ToneRegion::Us,
        ToneRegionChoice::Eu => ToneRegion::Eu,
    }
}

/// The first call writes `file_out` itself; later ones add their call number.
fn per_call_path(path: &Path, call: CallId) -> PathBuf {
    if call.0 <= 1 {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    path.with_file_name(format!("{stem}-{}{ext}", call.0))
}

/// Between the device's 20 ms frames and the session's packets: rubato resampling both ways,
/// and the queues that let a 40 ms ptime (or Opus at 48 kHz) run on the 20 ms device clock.
struct CodecPath {
    codec_rate: u32,
    /// Device rate → codec rate (the microphone).
    up: StreamResampler,
    /// Codec rate → device rate (the far end's voice).
    down: StreamResampler,
    packet: Vec<i16>,
    speaker: Vec<i16>,
}

impl CodecPath {
    fn new(device_rate: u32, codec_rate: u32) -> Result<CodecPath, ResampleError> {
        let frame_ms = FRAME.as_millis() as u32;
        Ok(CodecPath {
            codec_rate,
            up: StreamResampler::new(device_rate, codec_rate, frame_ms)?,
            down: StreamResampler::new(codec_rate, device_rate, frame_ms)?,
            packet: Vec::new(),
            speaker: Vec::new(),
        })
    }

    /// One device frame: the microphone goes toward the session, which runs once per whole
    /// packet it has; `heard` gets one device frame of the far end (silence until there is
    /// some).
    fn run(
        &mut self,
        now: Instant,
        session: &mut MediaSession,
        mic: &[i16],
        heard: &mut Vec<i16>,
        device_frame: usize,
    ) {
        self.up.push(mic);
        let packet_samples = session.frame_samples().max(1);
        // A 10 ms ptime runs two packets per device frame: each gets its own instant, a packet
        // time apart and ending now, so the jitter buffer sees an even clock.
        let packets = self.up.available() / packet_samples;
        for index in 0..packets {
            let behind = u32::try_from(packets - 1 - index).unwrap_or(0);
            let at = now
                .checked_sub(session.packet_time() * behind)
                .unwrap_or(now);
            self.packet.clear();
            self.up.pull(packet_samples, &mut self.packet);
            session.tick(at, &self.packet, &mut self.speaker);
            self.down.push(&self.speaker);
        }
        heard.clear();
        self.down.pull(device_frame, heard);
    }
}

/// A call recording: left channel the agent's microphone, right channel the far end.
struct Recorder {
    writer: hound::WavWriter<io::BufWriter<std::fs::File>>,
    path: PathBuf,
}

impl Recorder {
    fn open(path: &Path, rate: u32) -> Result<Recorder, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(path, spec)
            .map_err(|e| format!("cannot record to {}: {e}", path.display()))?;
        Ok(Recorder {
            writer,
            path: path.to_path_buf(),
        })
    }

    fn write(&mut self, agent: &[i16], remote: &[i16]) -> bool {
        agent.iter().zip(remote).all(|(a, r)| {
            self.writer.write_sample(*a).is_ok() && self.writer.write_sample(*r).is_ok()
        })
    }

    fn finish(self) -> Option<PathBuf> {
        self.writer.finalize().ok().map(|()| self.path)
    }
}

struct Sockets {
    rtp: UdpSocket,
    rtcp: Option<UdpSocket>,
}

/// Start the media task of a call: tones at once, RTP when `MediaCommand::Media` arrives.
pub fn spawn_call_media(
    call: CallId,
    mut device: Box<dyn AudioDevice>,
    region: ToneRegion,
    reports: mpsc::UnboundedSender<MediaReport>,
    seed: u64,
) -> MediaTask {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut session: Option<MediaSession> = None;
        let mut codec_path: Option<CodecPath> = None;
        let mut sockets: Option<Sockets> = None;
        let mut tone: Option<ToneGenerator> = None;
        let mut recorder: Option<Recorder> = None;
        let mut muted = false;
        let mut stop_at: Option<tokio::time::Instant> = None;
        // The driver drops its end once it sent Stop; a closing tone still plays to its end.
        let mut commands_open = true;
        let mut ticker = tokio::time::interval(FRAME);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut stats_at = Instant::now() + Duration::from_secs(2);
        let device_frame =
            (u64::from(device.sample_rate()) * FRAME.as_millis() as u64 / 1000) as usize;
        let mut mic = vec![0i16; device_frame];
        let mut speaker = Vec::with_capacity(device_frame);
        let mut tone_buf = Vec::with_capacity(device_frame);
        let mut rtp_buf = vec![0u8; 2048];
        let mut rtcp_buf = vec![0u8; 2048];
        loop {
            let stop_sleep = async {
                match stop_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = ticker.tick() => {
                    let now = Instant::now();
                    device.read_frame(&mut mic);
                    let mut heard = vec![0; device_frame];
                    if let Some(s) = session.as_mut() {
                        if codec_path.as_ref().map(|p| p.codec_rate) != Some(s.sample_rate()) {
                            // First media, or a re-INVITE moved to a codec of another rate.
                            codec_path = match CodecPath::new(device.sample_rate(), s.sample_rate()) {
                                Ok(path) => Some(path),
                                Err(error) => {
                                    let _ = reports.send(MediaReport::Failed(call, format!("{error}; the call has no audio")));
                                    None
                                }
                            };
                        }
                        if let Some(path) = codec_path.as_mut() {
                            path.run(now, s, &mic, &mut speaker, device_frame);
                            std::mem::swap(&mut heard, &mut speaker);
                        }
                    }
                    if let Some(generator) = tone.as_mut() {
                        tone_buf.clear();
                        generator.generate(device_frame, &mut tone_buf);
                        for (h, t) in heard.iter_mut().zip(&tone_buf) {
                            *h = h.saturating_add(*t);
                        }
                    }
                    device.write_frame(&heard);
                    if let Some(r) = recorder.as_mut() {
                        let agent: Vec<i16> = if muted { vec![0; mic.len()] } else { mic.clone() };
                        if !r.write(&agent, &heard) {
                            let _ = reports.send(MediaReport::Failed(call, "recording stopped: cannot write the file".into()));
                            recorder = None;
                        }
                    }
                    if now >= stats_at {
                        stats_at = now + Duration::from_secs(2);
                        if let Some(s) = session.as_ref() {
                            let _ = reports.send(MediaReport::Stats(call, s.stats(), s.quality().mos));
                        }
                    }
                }
                received = async {
                    match sockets.as_ref() {
                        Some(s) => s.rtp.recv_from(&mut rtp_buf).await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let (Ok((n, from)), Some(s)) = (received, session.as_mut()) {
                        s.handle_datagram(Instant::now(), from, &rtp_buf[..n]);
                    }
                }
                received = async {
                    match sockets.as_ref().and_then(|s| s.rtcp.as_ref()) {
                        Some(s) => s.recv_from(&mut rtcp_buf).await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let (Ok((n, _)), Some(s)) = (received, session.as_mut()) {
                        s.handle_rtcp(Instant::now(), &rtcp_buf[..n]);
                    }
                }
                () = stop_sleep => break,
                command = rx.recv(), if commands_open => match command {
                    Some(MediaCommand::Media { local, params }) => {
                        match session.as_mut() {
                            Some(s) => s.update(params),
                            None => match start_rtp(local, params, seed).await {
                                Ok((s, socks)) => {
                                    let mut s = s;
                                    s.set_muted(muted);
                                    session = Some(s);
                                    sockets = Some(socks);
                                }
                                Err(error) => {
                                    let _ = reports.send(MediaReport::Failed(call, format!("cannot open RTP port {local}: {error}; the call has no audio")));
                                }
                            },
                        }
                    }
                    Some(MediaCommand::Tone(t)) => {
                        tone = t.and_then(|t| ToneGenerator::new(t, region, device.sample_rate()).ok());
                    }
                    Some(MediaCommand::Dtmf(digits)) => {
                        if let Some(s) = session.as_mut() {
                            s.send_dtmf(&digits);
                        }
                    }
                    Some(MediaCommand::Mute(m)) => {
                        muted = m;
                        if let Some(s) = session.as_mut() {
                            s.set_muted(m);
                        }
                    }
                    Some(MediaCommand::Record(Some(path))) => {
                        if recorder.is_none() {
                            match Recorder::open(&path, device.sample_rate()) {
                                Ok(r) => {
                                    recorder = Some(r);
                                    let _ = reports.send(MediaReport::Recording(call, Some(path)));
                                }
                                Err(e) => { let _ = reports.send(MediaReport::Failed(call, e)); }
                            }
                        }
                    }
                    Some(MediaCommand::Record(None)) => {
                        if let Some(r) = recorder.take() {
                            let _ = reports.send(MediaReport::Recording(call, r.finish()));
                        }
                    }
                    Some(MediaCommand::Stop { after }) => {
                        if let Some(s) = session.as_mut() {
                            s.bye();
                        }
                        flush(session.as_mut(), sockets.as_ref()).await;
                        session = None;
                        codec_path = None;
                        sockets = None;
                        stop_at = Some(tokio::time::Instant::now() + after);
                    }
                    None => {
                        commands_open = false;
                        if stop_at.is_none() {
                            break;
                        }
                    }
                },
            }
            flush(session.as_mut(), sockets.as_ref()).await;
            if let Some(s) = session.as_mut() {
                while let Some(event) = s.poll_event() {
                    let _ = reports.send(MediaReport::Event(call, event));
                }
            }
        }
        if let Some(r) = recorder.take() {
            let _ = reports.send(MediaReport::Recording(call, r.finish()));
        }
        if let Err(error) = device.finish() {
            let _ = reports.send(MediaReport::Failed(call, error.to_string()));
        }
    });
    MediaTask { commands: tx }
}

async fn start_rtp(
    local: SocketAddr,
    params: MediaParams,
    seed: u64,
) -> io::Result<(MediaSession, Sockets)> {
    let rtp = UdpSocket::bind(local).await?;
    let rtcp = UdpSocket::bind(SocketAddr::new(local.ip(), local.port().saturating_add(1)))
        .await
        .ok();
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let session = MediaSession::new(params, seed, Instant::now(), unix_now)
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok((session, Sockets { rtp, rtcp }))
}

async fn flush(session: Option<&mut MediaSession>, sockets: Option<&Sockets>) {
    let (Some(session), Some(sockets)) = (session, sockets) else {
        return;
    };
    while let Some((channel, to, bytes)) = session.poll_transmit() {
        let socket = match channel {
            Channel::Rtp => Some(&sockets.rtp),
            Channel::Rtcp => sockets.rtcp.as_ref(),
        };
        if let Some(socket) = socket {
            if let Err(error) = socket.send_to(&bytes, to).await {
                tracing::debug!(%error, %to, "RTP send failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(codec: &str, pt: u8, ptime_ms: u32) -> MediaSession {
        let params = MediaParams {
            remote: SocketAddr::from(([127, 0, 0, 1], 40_000)),
            codec: codec.into(),
            payload_type: pt,
            telephone_event: None,
            telephone_event_clock: 8000,
            sending: true,
            receiving: true,
            ptime_ms,
        };
        MediaSession::new(params, 9, Instant::now(), Duration::ZERO).expect("session")
    }

    /// Device frames are 20 ms; packets follow the ptime: one every other frame at 40 ms, two
    /// a frame at 10 ms, and the speaker always gets exactly one device frame.
    #[test]
    fn the_codec_path_honours_ptime_on_a_20_ms_device_clock() {
        for (ptime, packets_in_10_frames) in [(20u32, 10usize), (40, 5), (10, 20)] {
            let mut s = session("PCMU", 0, ptime);
            let mut path = CodecPath::new(16_000, s.sample_rate()).expect("path");
            let start = Instant::now();
            let mut heard = Vec::new();
            let mut sent = 0;
            for frame in 0..10u32 {
                let mic = vec![0i16; 320];
                path.run(start + FRAME * frame, &mut s, &mic, &mut heard, 320);
                assert_eq!(heard.len(), 320);
                sent += std::iter::from_fn(|| s.poll_transmit())
                    .filter(|(c, _, _)| *c == Channel::Rtp)
                    .count();
            }
            // At 40 ms the tenth frame's packet is still being filled.
            assert!(
                sent == packets_in_10_frames || sent + 1 == packets_in_10_frames,
                "ptime {ptime}: {sent} packets"
            );
        }
    }

    #[test]
    fn later_calls_get_their_own_recording() {
        let p = Path::new("/tmp/rec/call.wav");
        assert_eq!(per_call_path(p, CallId(1)), p);
        assert_eq!(
            per_call_path(p, CallId(3)),
            Path::new("/tmp/rec/call-3.wav")
        );
    }
}
