//! The media driver: one task per call that owns the RTP/RTCP sockets, paces the 20 ms frames,
//! and moves samples between the audio device and the sans-IO `MediaSession`.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::config::{AudioConfig, AudioDeviceChoice};
use crate::media::device::{AudioDevice, FileDevice, NoDevice};
use crate::media::session::{Channel, MediaEvent, MediaParams, MediaSession, MediaStats};
use crate::sip::ua::CallId;

/// What the SIP driver asks of a call's media task.
#[derive(Debug)]
pub enum MediaCommand {
    Update(MediaParams),
    Dtmf(String),
    Mute(bool),
    Stop,
}

/// What a media task reports.
#[derive(Debug)]
pub enum MediaReport {
    Event(CallId, MediaEvent),
    Stats(CallId, MediaStats, f64),
    Failed(CallId, String),
}

pub struct MediaTask {
    pub commands: mpsc::UnboundedSender<MediaCommand>,
}

/// The device a call uses, from `[audio]`. Sound cards (cpal) are not wired yet: `default`
/// and named devices fall back to no device, and the caller is told so.
pub fn open_device(
    audio: &AudioConfig,
    call: CallId,
    rate: u32,
) -> (Box<dyn AudioDevice>, Option<String>) {
    match &audio.device {
        AudioDeviceChoice::None => (Box::new(NoDevice::new(rate)), None),
        AudioDeviceChoice::File => {
            let output = audio.file_out.as_ref().map(|p| per_call_path(p, call));
            match FileDevice::open(audio.file_in.as_deref(), output.as_deref(), rate) {
                Ok(device) => (Box::new(device), None),
                Err(error) => (
                    Box::new(NoDevice::new(rate)),
                    Some(format!("[audio] file device: {error}; the call goes on without audio")),
                ),
            }
        }
        AudioDeviceChoice::Default | AudioDeviceChoice::Named(_) => (
            Box::new(NoDevice::new(rate)),
            Some("sound cards are not supported yet: the call runs with no audio device (set [audio] device = \"none\" to silence this notice)".into()),
        ),
    }
}

/// The first call writes `file_out` itself; later ones add their call number.
fn per_call_path(path: &std::path::Path, call: CallId) -> PathBuf {
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

/// Resample one frame by linear interpolation (device rate ↔ codec rate, e.g. 8 ↔ 16 kHz).
fn resample(input: &[i16], out_len: usize) -> Vec<i16> {
    if input.len() == out_len || input.is_empty() {
        let mut v = input.to_vec();
        v.resize(out_len, 0);
        return v;
    }
    let ratio = input.len() as f64 / out_len as f64;
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * ratio;
            let index = pos as usize;
            let frac = pos - index as f64;
            let a = f64::from(input[index.min(input.len() - 1)]);
            let b = f64::from(input[(index + 1).min(input.len() - 1)]);
            (a + (b - a) * frac) as i16
        })
        .collect()
}

/// Bind the call's RTP port (and RTCP on the next one) and start its task.
pub async fn spawn_media(
    call: CallId,
    local: SocketAddr,
    params: MediaParams,
    mut device: Box<dyn AudioDevice>,
    reports: mpsc::UnboundedSender<MediaReport>,
    seed: u64,
) -> io::Result<MediaTask> {
    let rtp = UdpSocket::bind(local).await?;
    let rtcp = UdpSocket::bind(SocketAddr::new(local.ip(), local.port().saturating_add(1)))
        .await
        .ok();
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut session = MediaSession::new(params, seed, Instant::now(), unix_now)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(session.packet_time());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut stats_at = Instant::now() + Duration::from_secs(2);
        let device_frame = (device.sample_rate() as u64 * session.packet_time().as_millis() as u64
            / 1000) as usize;
        let mut mic = vec![0i16; device_frame];
        let mut speaker = Vec::with_capacity(session.frame_samples());
        let mut rtp_buf = vec![0u8; 2048];
        let mut rtcp_buf = vec![0u8; 2048];
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let now = Instant::now();
                    device.read_frame(&mut mic);
                    let frame = resample(&mic, session.frame_samples());
                    session.tick(now, &frame, &mut speaker);
                    device.write_frame(&resample(&speaker, device_frame));
                    if now >= stats_at {
                        stats_at = now + Duration::from_secs(2);
                        let _ = reports.send(MediaReport::Stats(call, session.stats(), session.quality().mos));
                    }
                }
                received = rtp.recv_from(&mut rtp_buf) => {
                    if let Ok((n, from)) = received {
                        session.handle_datagram(Instant::now(), from, &rtp_buf[..n]);
                    }
                }
                received = async {
                    match &rtcp {
                        Some(s) => s.recv_from(&mut rtcp_buf).await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Ok((n, _)) = received {
                        session.handle_rtcp(Instant::now(), &rtcp_buf[..n]);
                    }
                }
                command = rx.recv() => match command {
                    Some(MediaCommand::Update(p)) => session.update(p),
                    Some(MediaCommand::Dtmf(digits)) => { session.send_dtmf(&digits); }
                    Some(MediaCommand::Mute(m)) => session.set_muted(m),
                    Some(MediaCommand::Stop) | None => {
                        session.bye();
                        flush(&mut session, &rtp, rtcp.as_ref()).await;
                        if let Err(error) = device.finish() {
                            let _ = reports.send(MediaReport::Failed(call, error.to_string()));
                        }
                        break;
                    }
                },
            }
            flush(&mut session, &rtp, rtcp.as_ref()).await;
            while let Some(event) = session.poll_event() {
                let _ = reports.send(MediaReport::Event(call, event));
            }
        }
    });
    Ok(MediaTask { commands: tx })
}

async fn flush(session: &mut MediaSession, rtp: &UdpSocket, rtcp: Option<&UdpSocket>) {
    while let Some((channel, to, bytes)) = session.poll_transmit() {
        let socket = match channel {
            Channel::Rtp => Some(rtp),
            Channel::Rtcp => rtcp,
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

    #[test]
    fn resampling_keeps_length_and_shape() {
        let up = resample(&[0, 100, 200, 300], 8);
        assert_eq!(up, vec![0, 50, 100, 150, 200, 250, 300, 300]);
        let down = resample(&up, 4);
        assert_eq!(down, vec![0, 100, 200, 300]);
    }

    #[test]
    fn later_calls_get_their_own_recording() {
        let p = std::path::Path::new("/tmp/rec/call.wav");
        assert_eq!(per_call_path(p, CallId(1)), p);
        assert_eq!(
            per_call_path(p, CallId(3)),
            std::path::Path::new("/tmp/rec/call-3.wav")
        );
    }
}
