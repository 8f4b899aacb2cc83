//! Receive-path latency, measured on the real media task over loopback: from an RTP packet
//! reaching ringside's socket to its samples being handed to the audio device. A peer thread
//! sends 20 ms PCMU packets (silence, then 100 ms tone bursts); a probe device notes when
//! each burst's first loud frame is written. The figure includes the jitter buffer's playout
//! delay, the 20 ms tick's phase and resampling. A sound card adds its playback ring on top
//! (`AudioDevice::output_delay`: 30 ms of priming, then whatever the card's period leaves).

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringside::media::codec::g711::linear_to_ulaw;
use ringside::media::device::AudioDevice;
use ringside::media::rtp::RtpSender;
use ringside::media::session::MediaParams;
use ringside::media::tones::ToneRegion;
use ringside::net::rtp::{spawn_call_media, MediaCommand};
use ringside::sip::ua::CallId;

/// Instants at which the device got a frame with the tone in it.
type Loud = Arc<Mutex<Vec<Instant>>>;

struct ProbeDevice {
    loud: Loud,
}

impl AudioDevice for ProbeDevice {
    fn sample_rate(&self) -> u32 {
        16_000
    }

    fn read_frame(&mut self, frame: &mut [i16]) {
        frame.fill(0);
    }

    fn write_frame(&mut self, frame: &[i16]) {
        if frame.iter().any(|s| s.unsigned_abs() > 2000) {
            if let Ok(mut loud) = self.loud.lock() {
                loud.push(Instant::now());
            }
        }
    }
}

const BURSTS: usize = 12;

/// Sends 1 s of silence, then BURSTS × (100 ms of 1 kHz, 300 ms of silence) in real time, and
/// returns when each burst's first packet left.
fn send_bursts(socket: &UdpSocket, to: SocketAddr) -> Vec<Instant> {
    let mut sender = RtpSender::new(0x5eed_0001, 100, 1000);
    let silence = [linear_to_ulaw(0); 160];
    let mut burst_starts = Vec::new();
    let start = Instant::now();
    let mut frame_index = 0u64;
    let mut send = |payload: &[u8], frame_index: &mut u64| {
        let due = start + Duration::from_millis(20 * *frame_index);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let mut datagram = Vec::new();
        sender
            .write_next(0, 160, false, payload, &mut datagram)
            .expect("rtp");
        socket.send_to(&datagram, to).expect("send");
        *frame_index += 1;
    };
    for _ in 0..50 {
        send(&silence, &mut frame_index);
    }
    let mut phase = 0usize;
    for _ in 0..BURSTS {
        for packet in 0..5 {
            let tone: Vec<u8> = (0..160)
                .map(|_| {
                    let value = 12_000.0
                        * (2.0 * std::f64::consts::PI * 1000.0 * phase as f64 / 8000.0).sin();
                    phase += 1;
                    linear_to_ulaw(value as i16)
                })
                .collect();
            if packet == 0 {
                // Taken just before the send: the packet reaches the socket within microseconds.
                burst_starts
                    .push(Instant::now().max(start + Duration::from_millis(20 * frame_index)));
            }
            send(&tone, &mut frame_index);
        }
        for _ in 0..15 {
            send(&silence, &mut frame_index);
        }
    }
    burst_starts
}

#[test]
fn receive_path_latency_from_socket_to_device() {
    let peer = UdpSocket::bind("127.0.0.1:0").expect("peer socket");
    let peer_addr = peer.local_addr().expect("addr");
    // An even port for RTP, the odd one above for RTCP; pick one that is free now.
    let local = {
        let probe = UdpSocket::bind("127.0.0.1:0").expect("probe");
        let port = probe.local_addr().expect("addr").port() & !1;
        SocketAddr::from(([127, 0, 0, 1], port.max(20_000)))
    };
    let loud: Loud = Arc::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (reports, _reports_rx) = tokio::sync::mpsc::unbounded_channel();
    let starts = runtime.block_on(async {
        let task = spawn_call_media(
            CallId(1),
            Box::new(ProbeDevice {
                loud: Arc::clone(&loud),
            }),
            ToneRegion::Us,
            reports,
            42,
        );
        task.commands
            .send(MediaCommand::Media {
                local,
                params: MediaParams {
                    remote: peer_addr,
                    codec: "PCMU".into(),
                    payload_type: 0,
                    telephone_event: None,
                    telephone_event_clock: 8000,
                    sending: true,
                    receiving: true,
                    ptime_ms: 20,
                },
            })
            .expect("command");
        // Let the task bind its socket before the peer starts.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sender = std::thread::spawn(move || send_bursts(&peer, local));
        while !sender.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = task.commands.send(MediaCommand::Stop {
            after: Duration::ZERO,
        });
        sender.join().expect("sender")
    });
    let loud = loud.lock().expect("loud").clone();
    assert_eq!(starts.len(), BURSTS);
    let mut latencies: Vec<f64> = starts
        .iter()
        .map(|&sent| {
            let heard = loud
                .iter()
                .find(|&&at| at >= sent)
                .unwrap_or_else(|| panic!("a burst sent at {sent:?} never reached the device"));
            heard.duration_since(sent).as_secs_f64() * 1000.0
        })
        .collect();
    // Every burst is heard before the next one starts (400 ms apart), so none was matched to a
    // later burst's frames.
    assert!(latencies.iter().all(|&ms| ms < 300.0), "{latencies:?}");
    // The first bursts still carry the jitter buffer's initial 60 ms; judge the settled ones.
    let settled = latencies.split_off(BURSTS / 2);
    let mean = settled.iter().sum::<f64>() / settled.len() as f64;
    let max = settled.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "receive path, socket to device, PCMU 20 ms: mean {mean:.1} ms, max {max:.1} ms (settled bursts {settled:.1?}; first ones {latencies:.1?})"
    );
    // Playout delay (≥ 20 ms) + up to one 20 ms tick + resampling: well under 100 ms on a
    // clean loopback.
    assert!(
        mean > 15.0 && max < 100.0,
        "mean {mean:.1} ms, max {max:.1} ms"
    );
}
