//! Two media sessions over a simulated network with seeded loss, jitter and reordering, on a
//! virtual clock: the jitter buffer, codecs and concealment together, measured.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringside::media::session::{Channel, MediaEvent, MediaParams, MediaSession};
use ringside::media::tones::goertzel;

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

fn params(codec: &str, pt: u8, remote_port: u16) -> MediaParams {
    MediaParams {
        remote: SocketAddr::from(([127, 0, 0, 1], remote_port)),
        codec: codec.into(),
        payload_type: pt,
        telephone_event: Some(101),
        telephone_event_clock: ringside::media::codec::by_name(codec)
            .map_or(8000, |(encoder, _)| encoder.clock_rate()),
        sending: true,
        receiving: true,
        ptime_ms: 20,
    }
}

struct Outcome {
    heard: Vec<i16>,
    sent: u64,
    delivered: u64,
    digits: String,
    max_silent_run_frames: usize,
}

/// A sends a 1 kHz tone (and DTMF) to B for `seconds`; each packet is lost with `loss_percent`
/// and delayed 20 ms + uniform(0, jitter_ms).
fn run(
    codec: &str,
    pt: u8,
    seconds: u64,
    loss_percent: u64,
    jitter_ms: u64,
    seed: u64,
    dtmf: &str,
) -> Outcome {
    let start = Instant::now();
    let mut a = MediaSession::new(params(codec, pt, 5000), seed, start, Duration::ZERO).expect("a");
    let mut b =
        MediaSession::new(params(codec, pt, 4000), seed + 1, start, Duration::ZERO).expect("b");
    a.send_dtmf(dtmf);
    let rate = a.sample_rate();
    let n = a.frame_samples();
    let from_a = SocketAddr::from(([127, 0, 0, 1], 4000));
    let mut rng = XorShift(seed | 1);
    let mut wire: Vec<(Instant, Vec<u8>)> = Vec::new();
    let mut heard = Vec::new();
    let mut speaker = Vec::new();
    let (mut sent, mut delivered) = (0u64, 0u64);
    let frames = (seconds * 50) as usize;
    let mut silent_run = 0;
    let mut max_silent_run = 0;
    let mut digits = String::new();
    for f in 0..frames {
        let now = start + Duration::from_millis(20 * f as u64);
        let mic: Vec<i16> = (f * n..(f + 1) * n)
            .map(|i| {
                (10_000.0
                    * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect();
        a.tick(now, &mic, &mut speaker);
        while let Some((channel, _, bytes)) = a.poll_transmit() {
            if channel != Channel::Rtp {
                continue;
            }
            sent += 1;
            if rng.next() % 100 < loss_percent {
                continue;
            }
            let delay = 20
                + if jitter_ms > 0 {
                    rng.next() % jitter_ms
                } else {
                    0
                };
            wire.push((now + Duration::from_millis(delay), bytes));
        }
        // Deliver what is due, in arrival order (jitter reorders packets).
        wire.sort_by_key(|(at, _)| *at);
        while wire.first().is_some_and(|(at, _)| *at <= now) {
            let (_, bytes) = wire.remove(0);
            delivered += 1;
            b.handle_datagram(now, from_a, &bytes);
        }
        b.tick(now, &vec![0; n], &mut speaker);
        while b.poll_transmit().is_some() {}
        while let Some(e) = b.poll_event() {
            if let MediaEvent::Dtmf { digit, .. } = e {
                digits.push(digit);
            }
        }
        // After the first second, count runs of silent frames (gaps the listener would hear).
        if f > 50 {
            let energy: i64 = speaker.iter().map(|s| i64::from(*s).abs()).sum();
            if energy < (n as i64) * 100 {
                silent_run += 1;
                max_silent_run = max_silent_run.max(silent_run);
            } else {
                silent_run = 0;
            }
        }
        heard.extend_from_slice(&speaker);
    }
    Outcome {
        heard,
        sent,
        delivered,
        digits,
        max_silent_run_frames: max_silent_run,
    }
}

#[test]
fn clean_network_plays_every_frame() {
    let o = run("PCMU", 0, 10, 0, 0, 7, "");
    assert!(
        o.sent - o.delivered <= 1,
        "only the packet still in flight is missing"
    );
    assert_eq!(o.max_silent_run_frames, 0, "no gap on a clean network");
    let tail = &o.heard[8000..];
    assert!(goertzel(tail, 8000, 1000.0) > 100.0 * goertzel(tail, 8000, 1500.0));
}

#[test]
fn five_percent_loss_and_thirty_ms_jitter_stay_intelligible() {
    let mut codecs = vec![("PCMU", 0u8, 8000u32), ("G722", 9, 16000)];
    if cfg!(feature = "opus") {
        codecs.push(("opus", 111, 48000));
    }
    for (codec, pt, rate) in codecs {
        for seed in [3u64, 11, 29] {
            let o = run(codec, pt, 20, 5, 30, seed, "");
            let lost = 1.0 - o.delivered as f64 / o.sent as f64;
            assert!(
                (0.02..0.09).contains(&lost),
                "{codec} seed {seed}: loss {lost:.3}"
            );
            // Concealment fills single losses: no gap longer than two frames after warm-up.
            assert!(
                o.max_silent_run_frames <= 2,
                "{codec} seed {seed}: gap of {} frames",
                o.max_silent_run_frames
            );
            let tail = &o.heard[rate as usize..];
            let tone = goertzel(tail, rate, 1000.0);
            let other = goertzel(tail, rate, 1500.0);
            assert!(
                tone > 20.0 * other,
                "{codec} seed {seed}: {tone:.0} vs {other:.0}"
            );
        }
    }
}

#[test]
fn dtmf_survives_jitter_and_moderate_loss() {
    // Each RFC 4733 event repeats its end packet three times, so a lost packet or two does
    // not lose the digit.
    for seed in [5u64, 17, 41, 73] {
        let o = run("PCMU", 0, 6, 3, 30, seed, "0123456789*#");
        assert_eq!(o.digits, "0123456789*#", "seed {seed}");
    }
}
