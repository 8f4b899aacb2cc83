//! One call's media, sans-IO: RTP in and out, the jitter buffer, the codec, RFC 4733 DTMF both
//! ways, RTCP reports, and the numbers the quality estimate needs.
//!
//! The driver calls `tick` once per packet time with the microphone frame and gets the speaker
//! frame back; datagrams go in through `handle_rtp` / `handle_rtcp` and come out of
//! `poll_transmit`. Time is a `Duration` since an arbitrary epoch, injected like everywhere else.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use core::net::SocketAddr;

use super::codec::{self, Decoder, Encoder};
use super::dtmf::{DtmfReceiver, DtmfSender};
use super::jitter::{JitterBuffer, JitterConfig, Playout};
use super::quality::{self, CodecImpairment, Quality, QualityInputs};
use super::rtcp::{RtcpEvent, RtcpScheduler, RtcpSession, SenderInfo};
use super::rtp::{is_rtcp, RtpPacket, RtpReceiver, RtpSender};

/// What was negotiated for a call (from the SIP layer's SDP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaParams {
    pub remote: SocketAddr,
    pub codec: String,
    pub payload_type: u8,
    pub telephone_event: Option<u8>,
    /// The telephone-event payload's RTP clock from its `a=rtpmap` (48000 beside Opus when the
    /// peer has it, else usually 8000): event durations count in it (RFC 4733 §2.5.1.2).
    pub telephone_event_clock: u32,
    pub sending: bool,
    pub receiving: bool,
    pub ptime_ms: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("codec {0} is not implemented in this build: offer only {supported} ([audio].codecs)", supported = codec::supported_names().join(", "))]
    UnknownCodec(String),
    #[error("cannot set up RTCP: {0}")]
    Rtcp(String),
}

/// Which socket a datagram belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Rtp,
    Rtcp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    Dtmf {
        digit: char,
        duration_ms: u32,
    },
    /// The far end said goodbye in RTCP.
    RemoteBye,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MediaStats {
    pub packets_sent: u64,
    pub packets_received: u64,
    pub packets_lost: i64,
    pub concealed: u64,
    pub jitter_ms: f64,
    pub round_trip: Option<Duration>,
    pub playout_delay: Duration,
}

const DTMF_DIGIT_MS: u32 = 160;
/// Silence between queued digits, in packet times, so the far end sees distinct events.
const DTMF_GAP_FRAMES: u32 = 3;

/// How a codec frames time at a given ptime.
#[derive(Debug, Clone, Copy)]
struct Framing {
    clock_rate: u32,
    ptime_ms: u32,
    /// PCM samples per packet at the codec's audio rate.
    frame_samples: usize,
    /// RTP timestamp units per packet.
    frame_units: u32,
}

impl Framing {
    fn new(encoder: &dyn Encoder, requested_ptime_ms: u32) -> Framing {
        let ptime_ms = encoder.packet_ms(requested_ptime_ms.clamp(10, 120));
        let clock_rate = encoder.clock_rate();
        Framing {
            clock_rate,
            ptime_ms,
            frame_samples: (encoder.sample_rate() * ptime_ms / 1000) as usize,
            frame_units: clock_rate * ptime_ms / 1000,
        }
    }

    fn jitter_buffer(&self) -> JitterBuffer {
        JitterBuffer::new(JitterConfig {
            clock_rate: self.clock_rate,
            frame_samples: self.frame_units,
            ..JitterConfig::default()
        })
    }
}

pub struct MediaSession {
    params: MediaParams,
    encoder: Box<dyn Encoder + Send>,
    decoder: Box<dyn Decoder + Send>,
    /// PCM samples per packet time at the codec's audio rate.
    frame_samples: usize,
    /// RTP timestamp units per packet time (differs from PCM samples for G.722).
    frame_units: u32,
    clock_rate: u32,
    /// The packet time in use: the SDP's ptime as the codec can frame it.
    ptime_ms: u32,
    sender: RtpSender,
    receiver: RtpReceiver,
    jitter: JitterBuffer,
    rtcp: RtcpSession,
    scheduler: RtcpScheduler,
    next_rtcp: Option<Duration>,
    last_rtcp: Option<Duration>,
    /// Symmetric RTP (RFC 4961): send to where the peer's packets come from, for NAT.
    remote: SocketAddr,
    remote_rtcp: SocketAddr,
    latched: bool,
    muted: bool,
    dtmf_queue: VecDeque<char>,
    dtmf_out: Option<DtmfSender>,
    /// The stream's RTP timestamp at the start of the digit being sent.
    dtmf_start: u32,
    dtmf_gap: u32,
    dtmf_in: Option<DtmfReceiver>,
    transmits: VecDeque<(Channel, SocketAddr, Vec<u8>)>,
    events: VecDeque<MediaEvent>,
    random: u64,
    /// The session's start: RTP statistics and the jitter buffer count time from here.
    epoch: Instant,
    /// Wall-clock time since 1970 at `epoch`, for RTCP sender reports.
    ntp_epoch: Duration,
}

fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// `units` of a `from` Hz clock in a `to` Hz clock (the same when the clocks agree).
fn rtcp_address(rtp: SocketAddr) -> SocketAddr {
    SocketAddr::new(rtp.ip(), rtp.port().saturating_add(1))
}

impl MediaSession {
    /// `seed` gives the SSRC, first sequence number and timestamp (RFC 3550 wants them random);
    /// `unix_now` is the wall-clock time since 1970 at `now`, for RTCP's NTP timestamps.
    pub fn new(
        params: MediaParams,
        seed: u64,
        now: Instant,
        unix_now: Duration,
    ) -> Result<MediaSession, MediaError> {
        let (encoder, decoder) = codec::by_name(&params.codec)
            .ok_or_else(|| MediaError::UnknownCodec(params.codec.clone()))?;
        let mut random = seed | 1;
        let ssrc = xorshift(&mut random) as u32;
        let sequence = xorshift(&mut random) as u16;
        let timestamp = xorshift(&mut random) as u32;
        let framing = Framing::new(encoder.as_ref(), params.ptime_ms);
        let Framing {
            clock_rate,
            ptime_ms: ptime,
            frame_samples,
            frame_units,
        } = framing;
        let jitter = framing.jitter_buffer();
        let rtcp = RtcpSession::new(ssrc, format!("ringside-{ssrc:08x}"))
            .map_err(|e| MediaError::Rtcp(e.to_string()))?;
        // Event durations count on the stream's clock whatever clock the telephone-event
        // rtpmap names: what baresip (and WebRTC stacks) do, and the safe side with a peer that
        // answers telephone-event/8000 beside Opus — a digit may then read longer, never 6× too
        // short to be heard.
        let dtmf_out = DtmfSender::new(clock_rate, ptime).ok();
        let dtmf_in = DtmfReceiver::new(clock_rate).ok();
        Ok(MediaSession {
            remote: params.remote,
            remote_rtcp: rtcp_address(params.remote),
            params,
            encoder,
            decoder,
            frame_samples,
            frame_units,
            clock_rate,
            ptime_ms: ptime,
            sender: RtpSender::new(ssrc, sequence, timestamp),
            receiver: RtpReceiver::new(),
            jitter,
            rtcp,
            scheduler: RtcpScheduler::default(),
            next_rtcp: None,
            last_rtcp: None,
            latched: false,
            muted: false,
            dtmf_queue: VecDeque::new(),
            dtmf_out,
            dtmf_start: 0,
            dtmf_gap: 0,
            dtmf_in,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            random,
            epoch: now,
            ntp_epoch: unix_now,
        })
    }

    /// PCM samples the microphone frame must have (and the speaker frame will have).
    pub fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    /// The PCM sample rate of the codec (8000, or 16000 for G.722).
    pub fn sample_rate(&self) -> u32 {
        self.encoder.sample_rate()
    }

    pub fn packet_time(&self) -> Duration {
        Duration::from_millis(u64::from(self.ptime_ms))
    }

    /// A re-INVITE changed direction, address (hold, resume, a new media server), codec or
    /// packet time.
    pub fn update(&mut self, params: MediaParams) {
        if params.remote != self.params.remote {
            self.remote = params.remote;
            self.remote_rtcp = rtcp_address(params.remote);
            self.latched = false;
        }
        let codec_changed = !params.codec.eq_ignore_ascii_case(&self.params.codec);
        if codec_changed {
            if let Some((encoder, decoder)) = codec::by_name(&params.codec) {
                let framing = Framing::new(encoder.as_ref(), params.ptime_ms);
                if framing.clock_rate != self.clock_rate || framing.frame_units != self.frame_units
                {
                    // Another clock or frame size: old timestamps mean nothing to the new codec.
                    self.jitter = framing.jitter_buffer();
                }
                self.clock_rate = framing.clock_rate;
                self.ptime_ms = framing.ptime_ms;
                self.frame_samples = framing.frame_samples;
                self.frame_units = framing.frame_units;
                self.encoder = encoder;
                self.decoder = decoder;
            }
        }
        let ptime_changed = !codec_changed && params.ptime_ms != self.params.ptime_ms;
        if ptime_changed {
            let framing = Framing::new(self.encoder.as_ref(), params.ptime_ms);
            if framing.frame_units != self.frame_units {
                // The buffer counts in packets of the old size.
                self.jitter = framing.jitter_buffer();
            }
            self.ptime_ms = framing.ptime_ms;
            self.frame_samples = framing.frame_samples;
            self.frame_units = framing.frame_units;
        }
        if codec_changed || ptime_changed {
            self.dtmf_out = DtmfSender::new(self.clock_rate, self.ptime_ms).ok();
            self.dtmf_in = DtmfReceiver::new(self.clock_rate).ok();
        }
        self.params = params;
    }

    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    pub fn is_muted(&self) -> bool {
        self.muted
    }

    /// Queue digits to send as RFC 4733 events. Returns false when the peer did not
    /// negotiate telephone-event (the SIP layer then uses INFO).
    pub fn send_dtmf(&mut self, digits: &str) -> bool {
        if self.params.telephone_event.is_none() {
            return false;
        }
        self.dtmf_queue.extend(digits.chars());
        true
    }

    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if is_rtcp(bytes) {
            self.handle_rtcp(now, bytes);
        } else {
            self.handle_rtp(now, from, bytes);
        }
    }

    pub fn handle_rtp(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Ok(packet) = RtpPacket::parse(bytes) else {
            return;
        };
        if !self.params.receiving {
            return;
        }
        let header = &packet.header;
        if Some(header.payload_type) == self.params.telephone_event {
            if let Some(receiver) = self.dtmf_in.as_mut() {
                receiver.handle_packet(now, header.timestamp, packet.payload);
            }
            self.drain_dtmf();
            return;
        }
        let elapsed = now.saturating_duration_since(self.epoch);
        if header.payload_type != self.params.payload_type {
            // Comfort noise or a codec we did not agree on: ignore rather than decode noise.
            return;
        }
        let outcome = self.receiver.receive(elapsed, header, self.clock_rate);
        if !outcome.is_accepted() {
            return;
        }
        if let Some(super::rtp::ReceiveEvent::NewSource { .. }) = outcome.event {
            self.jitter.reset();
        }
        if !self.latched {
            // First packet from the peer: from now on answer to where it really comes from.
            self.remote = from;
            self.remote_rtcp = rtcp_address(from);
            self.latched = true;
        }
        self.jitter
            .put(elapsed, header.sequence, header.timestamp, packet.payload);
    }

    fn drain_dtmf(&mut self) {
        if let Some(receiver) = self.dtmf_in.as_mut() {
            while let Some(d) = receiver.poll_digit() {
                self.events.push_back(MediaEvent::Dtmf {
                    digit: d.key,
                    duration_ms: d.duration_ms,
                });
            }
        }
    }

    pub fn handle_rtcp(&mut self, now: Instant, bytes: &[u8]) {
        let ntp = self.ntp(now);
        if self.rtcp.handle_compound(ntp, bytes).is_err() {
            return;
        }
        while let Some(event) = self.rtcp.poll_event() {
            if let RtcpEvent::Bye { .. } = event {
                self.events.push_back(MediaEvent::RemoteBye);
            }
        }
        if let Some(report) = self.rtcp.report_on_us() {
            // Fraction lost is in 1/256ths; round up so any loss counts.
            let percent = (u32::from(report.fraction_lost) * 100).div_ceil(256);
            self.encoder
                .set_expected_loss(u8::try_from(percent).unwrap_or(100));
        }
    }

    /// One packet time: send the microphone frame (or DTMF, or nothing on hold), and return
    /// the far end's audio for the speaker in `speaker` (cleared first).
    pub fn tick(&mut self, now: Instant, mic: &[i16], speaker: &mut Vec<i16>) {
        if let Some(receiver) = self.dtmf_in.as_mut() {
            // An event whose end packets were lost is reported after the receiver's timeout.
            receiver.handle_timeout(now);
        }
        self.drain_dtmf();
        self.send_frame(mic);
        speaker.clear();
        if self.params.receiving {
            let elapsed = now.saturating_duration_since(self.epoch);
            match self.jitter.pop(elapsed) {
                Playout::Frame { payload, .. } => self.decoder.decode(&payload, speaker),
                Playout::Missing {
                    next_payload: Some(next),
                    ..
                } => self
                    .decoder
                    .conceal_from_next(self.frame_samples, &next, speaker),
                Playout::Missing { .. } | Playout::Insert => {
                    self.decoder.conceal(self.frame_samples, speaker)
                }
                Playout::Silence => {}
            }
        }
        speaker.resize(self.frame_samples, 0);
        self.maybe_send_rtcp(now);
    }

    fn ntp(&self, now: Instant) -> u64 {
        super::rtcp::ntp_from_unix(self.ntp_epoch + now.saturating_duration_since(self.epoch))
    }

    fn send_frame(&mut self, mic: &[i16]) {
        if !self.params.sending {
            // On hold (sendonly from them / inactive): keep the clock running, send nothing.
            self.sender.skip(self.frame_units);
            return;
        }
        if let Some(packet) = self.next_dtmf_packet() {
            self.transmits
                .push_back((Channel::Rtp, self.remote, packet));
            return;
        }
        let mut pcm: Vec<i16> = mic.to_vec();
        pcm.resize(self.frame_samples, 0);
        if self.muted {
            // Muted: RTP keeps flowing (silence), so the far end and the PBX see a live call.
            pcm.fill(0);
        }
        let mut payload = Vec::with_capacity(self.frame_samples);
        self.encoder.encode(&pcm, &mut payload);
        let mut out = Vec::with_capacity(12 + payload.len());
        if self
            .sender
            .write_next(
                self.params.payload_type,
                self.frame_units,
                false,
                &payload,
                &mut out,
            )
            .is_ok()
        {
            self.transmits.push_back((Channel::Rtp, self.remote, out));
        }
    }

    /// The next RFC 4733 packet, if a digit is being sent (audio is replaced meanwhile).
    fn next_dtmf_packet(&mut self) -> Option<Vec<u8>> {
        let pt = self.params.telephone_event?;
        let rtp_now = self.sender.next_timestamp();
        let sender = self.dtmf_out.as_mut()?;
        if sender.is_idle() {
            if self.dtmf_gap > 0 {
                self.dtmf_gap -= 1;
                return None;
            }
            let digit = self.dtmf_queue.pop_front()?;
            // The sender counts event time from 0; the packets carry the stream's timestamp of
            // the first one (RFC 4733 §2.3.1).
            if sender.start(digit, DTMF_DIGIT_MS, 0).is_err() {
                return None;
            }
            self.dtmf_start = rtp_now;
        }
        let event_now = rtp_now.wrapping_sub(self.dtmf_start);
        let packet = sender.poll(event_now)?;
        if sender.is_idle() {
            self.dtmf_gap = DTMF_GAP_FRAMES;
        }
        let mut header = self.sender.next(pt, self.frame_units, packet.marker);
        header.timestamp = self.dtmf_start;
        let mut out = Vec::with_capacity(16);
        super::rtp::write_rtp(&header, &packet.payload, &mut out).ok()?;
        Some(out)
    }

    fn maybe_send_rtcp(&mut self, now: Instant) {
        let factor = (xorshift(&mut self.random) % 1000) as f64 / 1000.0;
        let elapsed = now.saturating_duration_since(self.epoch);
        let due = *self
            .next_rtcp
            .get_or_insert_with(|| self.scheduler.next_report_at(elapsed, None, factor));
        if elapsed < due {
            return;
        }
        let ntp = self.ntp(now);
        let sender_info = (self.sender.packets_sent() > 0)
            .then(|| SenderInfo::from_sender(&self.sender, ntp, self.sender.next_timestamp()));
        let report = self.receiver.reception_report();
        let mut out = Vec::with_capacity(128);
        if self
            .rtcp
            .write_report(ntp, sender_info, report, &mut out)
            .is_ok()
        {
            self.transmits
                .push_back((Channel::Rtcp, self.remote_rtcp, out));
        }
        self.last_rtcp = Some(elapsed);
        self.next_rtcp = Some(
            self.scheduler
                .next_report_at(elapsed, self.last_rtcp, factor),
        );
    }

    /// RTCP BYE for the end of the call.
    pub fn bye(&mut self) {
        let mut out = Vec::with_capacity(64);
        if self.rtcp.write_bye(Some("call ended"), &mut out).is_ok() {
            self.transmits
                .push_back((Channel::Rtcp, self.remote_rtcp, out));
        }
    }

    pub fn poll_transmit(&mut self) -> Option<(Channel, SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    pub fn stats(&self) -> MediaStats {
        let received = self.receiver.stats();
        let jitter = self.jitter.stats();
        MediaStats {
            packets_sent: u64::from(self.sender.packets_sent()),
            packets_received: received.map(|s| s.packets_received).unwrap_or(0),
            packets_lost: received.map(|s| s.packets_lost).unwrap_or(0),
            concealed: jitter.concealed,
            jitter_ms: received
                .map(|s| s.jitter * 1000.0 / f64::from(self.clock_rate.max(1)))
                .unwrap_or(0.0),
            round_trip: self.rtcp.round_trip_time(),
            playout_delay: jitter.current_delay,
        }
    }

    /// The E-model estimate for this call so far.
    pub fn quality(&self) -> Quality {
        let stats = self.stats();
        let expected = (stats.packets_received as i64 + stats.packets_lost.max(0)).max(1);
        let loss =
            (stats.packets_lost.max(0) as f64 + stats.concealed as f64 * 0.0) / expected as f64;
        let one_way = stats.round_trip.map(|r| r / 2).unwrap_or_default()
            + stats.playout_delay
            + self.packet_time();
        quality::estimate(QualityInputs {
            one_way_delay: one_way,
            loss_ratio: loss,
            codec: CodecImpairment::for_codec(&self.params.codec),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::tones::goertzel;

    fn params(codec: &str, pt: u8, remote_port: u16) -> MediaParams {
        MediaParams {
            remote: SocketAddr::from(([127, 0, 0, 1], remote_port)),
            codec: codec.into(),
            payload_type: pt,
            telephone_event: Some(101),
            telephone_event_clock: codec_clock(codec),
            sending: true,
            receiving: true,
            ptime_ms: 20,
        }
    }

    fn codec_clock(codec: &str) -> u32 {
        codec::by_name(codec).map_or(8000, |(encoder, _)| encoder.clock_rate())
    }

    fn sine(rate: u32, freq: f64, start: usize, n: usize) -> Vec<i16> {
        (start..start + n)
            .map(|i| {
                (8000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    /// Run `frames` packet times with A sending a tone to B; returns B's speaker audio.
    fn run(
        a: &mut MediaSession,
        b: &mut MediaSession,
        start: Instant,
        frames: usize,
        tone: f64,
    ) -> Vec<i16> {
        let rate = a.sample_rate();
        let n = a.frame_samples();
        let from_a = SocketAddr::from(([127, 0, 0, 1], 4000));
        let mut heard = Vec::new();
        let mut speaker = Vec::new();
        for f in 0..frames {
            let now = start + Duration::from_millis(20 * f as u64);
            a.tick(now, &sine(rate, tone, f * n, n), &mut speaker);
            while let Some((channel, _, bytes)) = a.poll_transmit() {
                if channel == Channel::Rtp {
                    b.handle_datagram(now, from_a, &bytes);
                }
            }
            b.tick(now, &vec![0; n], &mut speaker);
            while b.poll_transmit().is_some() {}
            heard.extend_from_slice(&speaker);
        }
        heard
    }

    fn pair(codec: &str, pt: u8) -> (MediaSession, MediaSession, Instant) {
        let start = Instant::now();
        let a = MediaSession::new(params(codec, pt, 5000), 1, start, Duration::ZERO).expect("a");
        let b = MediaSession::new(params(codec, pt, 4000), 2, start, Duration::ZERO).expect("b");
        (a, b, start)
    }

    #[test]
    fn a_tone_crosses_pcmu_and_g722() {
        for (codec, pt, rate) in [("PCMU", 0, 8000), ("PCMA", 8, 8000), ("G722", 9, 16000)] {
            let (mut a, mut b, start) = pair(codec, pt);
            let heard = run(&mut a, &mut b, start, 100, 1000.0);
            let tail = &heard[heard.len() / 2..];
            let at_tone = goertzel(tail, rate, 1000.0);
            let off_tone = goertzel(tail, rate, 1700.0);
            assert!(
                at_tone > 1.0e6 && at_tone > 100.0 * off_tone,
                "{codec}: {at_tone} vs {off_tone}"
            );
            // RFC 3550 probation holds back the first packet of a new source.
            assert_eq!(b.stats().packets_received, 99, "{codec}");
        }
    }

    #[cfg(feature = "opus")]
    #[test]
    fn opus_carries_a_tone_at_48_khz_and_honours_a_40_ms_ptime() {
        let (mut a, mut b, start) = pair("opus", 111);
        assert_eq!((a.sample_rate(), a.frame_samples()), (48_000, 960));
        let heard = run(&mut a, &mut b, start, 100, 1000.0);
        let tail = &heard[heard.len() / 2..];
        let at_tone = goertzel(tail, 48_000, 1000.0);
        let off_tone = goertzel(tail, 48_000, 1700.0);
        assert!(
            at_tone > 1.0e6 && at_tone > 100.0 * off_tone,
            "{at_tone} vs {off_tone}"
        );
        assert_eq!(b.stats().packets_received, 99);

        // ptime 40: 1920 samples and 1920 timestamp units a packet; 30 rounds down to 20.
        let mut forty = params("opus", 111, 5000);
        forty.ptime_ms = 40;
        let session = MediaSession::new(forty, 3, start, Duration::ZERO).expect("40 ms");
        assert_eq!(session.frame_samples(), 1920);
        assert_eq!(session.packet_time(), Duration::from_millis(40));
        let mut thirty = params("opus", 111, 5000);
        thirty.ptime_ms = 30;
        let session = MediaSession::new(thirty, 3, start, Duration::ZERO).expect("30 ms");
        assert_eq!(session.packet_time(), Duration::from_millis(20));
        let mut pcmu = params("PCMU", 0, 5000);
        pcmu.ptime_ms = 30;
        let session = MediaSession::new(pcmu, 3, start, Duration::ZERO).expect("PCMU 30 ms");
        assert_eq!(session.frame_samples(), 240);
    }

    #[test]
    fn a_reinvite_that_changes_only_the_ptime_reframes_the_stream() {
        let (mut a, _, start) = pair("PCMU", 0);
        assert_eq!(a.frame_samples(), 160);
        let mut forty = params("PCMU", 0, 5000);
        forty.ptime_ms = 40;
        a.update(forty);
        assert_eq!(a.frame_samples(), 320);
        assert_eq!(a.packet_time(), Duration::from_millis(40));
        let mut speaker = Vec::new();
        a.tick(start, &vec![0; 320], &mut speaker);
        assert_eq!(speaker.len(), 320);
        let first = std::iter::from_fn(|| a.poll_transmit())
            .find(|(c, _, _)| *c == Channel::Rtp)
            .and_then(|(_, _, b)| {
                RtpPacket::parse(&b)
                    .ok()
                    .map(|p| (p.payload.len(), p.header.timestamp))
            })
            .expect("an RTP packet");
        a.tick(
            start + Duration::from_millis(40),
            &vec![0; 320],
            &mut speaker,
        );
        let second = std::iter::from_fn(|| a.poll_transmit())
            .find(|(c, _, _)| *c == Channel::Rtp)
            .and_then(|(_, _, b)| RtpPacket::parse(&b).ok().map(|p| p.header.timestamp))
            .expect("a second RTP packet");
        assert_eq!(first.0, 320, "40 ms of PCMU");
        assert_eq!(second.wrapping_sub(first.1), 320);
    }

    #[cfg(feature = "opus")]
    #[test]
    fn a_reinvite_to_opus_switches_rate_and_framing() {
        let (mut a, _, start) = pair("PCMU", 0);
        assert_eq!(a.sample_rate(), 8000);
        a.update(params("opus", 111, 5000));
        assert_eq!((a.sample_rate(), a.frame_samples()), (48_000, 960));
        let mut speaker = Vec::new();
        a.tick(start, &vec![0; 960], &mut speaker);
        assert_eq!(speaker.len(), 960);
        let (_, bytes) = std::iter::from_fn(|| a.poll_transmit())
            .find(|(c, _, _)| *c == Channel::Rtp)
            .map(|(c, _, b)| (c, b))
            .expect("an RTP packet");
        let packet = RtpPacket::parse(&bytes).expect("rtp");
        assert_eq!(packet.header.payload_type, 111);
    }

    #[test]
    fn rfc4733_digits_arrive_in_order() {
        let (mut a, mut b, start) = pair("PCMU", 0);
        assert!(a.send_dtmf("5#1"));
        run(&mut a, &mut b, start, 60, 440.0);
        let digits: String = std::iter::from_fn(|| b.poll_event())
            .filter_map(|e| match e {
                MediaEvent::Dtmf { digit, .. } => Some(digit),
                _ => None,
            })
            .collect();
        assert_eq!(digits, "5#1");
    }

    /// The telephone-event packets `session` sends in `frames` packet times of silence:
    /// (marker, timestamp, payload) each, and the stream's first timestamp.
    #[cfg(feature = "opus")]
    fn dtmf_packets(
        session: &mut MediaSession,
        start: Instant,
        frames: u64,
    ) -> Vec<(bool, u32, Vec<u8>)> {
        let mut speaker = Vec::new();
        let silence = vec![0; session.frame_samples()];
        let mut out = Vec::new();
        for f in 0..frames {
            session.tick(
                start + Duration::from_millis(20 * f),
                &silence,
                &mut speaker,
            );
            while let Some((channel, _, bytes)) = session.poll_transmit() {
                let Ok(packet) = RtpPacket::parse(&bytes) else {
                    continue;
                };
                if channel == Channel::Rtp && packet.header.payload_type == 101 {
                    out.push((
                        packet.header.marker,
                        packet.header.timestamp,
                        packet.payload.to_vec(),
                    ));
                }
            }
        }
        out
    }

    #[cfg(feature = "opus")]
    #[test]
    fn dtmf_beside_opus_counts_in_the_48_khz_clock() {
        let start = Instant::now();
        let mut a =
            MediaSession::new(params("opus", 111, 5000), 1, start, Duration::ZERO).expect("opus");
        assert_eq!(a.params.telephone_event_clock, 48_000);
        assert!(a.send_dtmf("5"));
        let packets = dtmf_packets(&mut a, start, 20);
        // 160 ms at 20 ms: durations 960..6720 (7 updates), then 7680 with E, three times.
        let mut expected: Vec<[u8; 4]> = (1..=7u16)
            .map(|i| {
                let [high, low] = (960 * i).to_be_bytes();
                [5, 10, high, low]
            })
            .collect();
        expected.extend([[5, 0x80 | 10, 0x1e, 0x00]; 3]);
        let payloads: Vec<Vec<u8>> = packets.iter().map(|(_, _, p)| p.clone()).collect();
        assert_eq!(
            payloads,
            expected.iter().map(|p| p.to_vec()).collect::<Vec<_>>()
        );
        let markers: Vec<bool> = packets.iter().map(|(m, _, _)| *m).collect();
        assert_eq!(
            markers,
            [true, false, false, false, false, false, false, false, false, false]
        );
        assert!(
            packets.iter().all(|(_, ts, _)| *ts == packets[0].1),
            "one event, one timestamp"
        );

        // Audio goes on on the same 48 kHz timeline: the 21st packet time is 20 × 960 later.
        let mut speaker = Vec::new();
        a.tick(start + Duration::from_millis(400), &[0; 960], &mut speaker);
        let audio = std::iter::from_fn(|| a.poll_transmit())
            .filter_map(|(c, _, b)| (c == Channel::Rtp).then_some(b))
            .find_map(|b| RtpPacket::parse(&b).ok().map(|p| p.header.timestamp))
            .expect("audio after the digit");
        assert_eq!(audio.wrapping_sub(packets[0].1), 20 * 960);
    }

    #[cfg(feature = "opus")]
    #[test]
    fn an_8_khz_event_clock_beside_opus_still_counts_on_the_stream_clock() {
        let start = Instant::now();
        let mut eight = params("opus", 111, 5000);
        eight.telephone_event_clock = 8000;
        let mut a = MediaSession::new(eight, 1, start, Duration::ZERO).expect("opus");
        assert!(a.send_dtmf("1"));
        let packets = dtmf_packets(&mut a, start, 20);
        let durations: Vec<u16> = packets
            .iter()
            .map(|(_, _, p)| u16::from_be_bytes([p[2], p[3]]))
            .collect();
        // As baresip counts them: a peer reading them on 8 kHz hears a long digit, not a
        // 27 ms blip.
        assert_eq!(
            durations,
            [960, 1920, 2880, 3840, 4800, 5760, 6720, 7680, 7680, 7680]
        );
        assert!(packets.iter().all(|(_, ts, _)| *ts == packets[0].1));

        // A receiver on the same clocks reads the 160 ms back.
        let mut b = MediaSession::new(
            MediaParams {
                telephone_event_clock: 8000,
                ..params("opus", 111, 4000)
            },
            2,
            start,
            Duration::ZERO,
        )
        .expect("b");
        let mut rtp = RtpSender::new(7, 0, packets[0].1);
        for (marker, timestamp, payload) in &packets {
            let mut header = rtp.next(101, 960, *marker);
            header.timestamp = *timestamp;
            let mut bytes = Vec::new();
            super::super::rtp::write_rtp(&header, payload, &mut bytes).expect("write");
            b.handle_rtp(start, SocketAddr::from(([127, 0, 0, 1], 4000)), &bytes);
        }
        let digits: Vec<(char, u32)> = std::iter::from_fn(|| b.poll_event())
            .filter_map(|e| match e {
                MediaEvent::Dtmf { digit, duration_ms } => Some((digit, duration_ms)),
                _ => None,
            })
            .collect();
        assert_eq!(digits, [('1', 160)]);
    }

    #[test]
    fn hold_sends_nothing_and_mute_sends_silence() {
        let (mut a, mut b, start) = pair("PCMU", 0);
        let mut held = params("PCMU", 0, 5000);
        held.sending = false;
        a.update(held);
        run(&mut a, &mut b, start, 20, 1000.0);
        assert_eq!(a.stats().packets_sent, 0);
        a.update(params("PCMU", 0, 5000));
        a.set_muted(true);
        let later = start + Duration::from_secs(1);
        let heard = run(&mut a, &mut b, later, 50, 1000.0);
        assert_eq!(a.stats().packets_sent, 50, "RTP keeps flowing while muted");
        assert!(goertzel(&heard, 8000, 1000.0) < 10.0, "but carries silence");
    }

    #[test]
    fn an_unknown_codec_is_a_clear_error() {
        let err = MediaSession::new(params("G729", 18, 1), 1, Instant::now(), Duration::ZERO).err();
        assert_eq!(err, Some(MediaError::UnknownCodec("G729".into())));
    }
}
