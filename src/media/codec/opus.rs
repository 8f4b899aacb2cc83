//! Opus (RFC 6716, RTP payload RFC 7587) over the system libopus: 48 kHz mono, tuned for voice,
//! with in-band FEC so a lost packet can be rebuilt from the one after it.
//!
//! SDP always names it `opus/48000/2` (RFC 7587 §7: the rtpmap says two channels whatever is
//! sent); we send mono and the decoder folds a stereo stream to mono.

use super::{Decoder, Encoder};

/// Opus's RTP clock and the PCM rate we run it at.
pub const OPUS_RATE: u32 = 48_000;
/// Voice at 24 kbit/s is wideband SILK/hybrid: clearly better than G.722 at a third of its rate.
const BITRATE: i32 = 24_000;
/// The loss libopus plans FEC for until RTCP reports more (and never less: at 0 % FEC is off).
pub const DEFAULT_EXPECTED_LOSS_PERCENT: u8 = 5;
/// The largest Opus packet (RFC 6716 §3.4, R5: 1275 bytes per frame, at most a few frames).
const MAX_PACKET: usize = 1500;
/// 120 ms at 48 kHz: the longest audio one Opus packet can hold.
const MAX_FRAME_SAMPLES: usize = 5760;
/// Opus frames are multiples of 2.5 ms: 120 samples at 48 kHz.
const SAMPLES_PER_2_5_MS: usize = 120;
/// The frame lengths libopus encodes at 48 kHz: 2.5, 5, 10, 20, 40 and 60 ms.
const FRAME_SIZES: [usize; 6] = [120, 240, 480, 960, 1920, 2880];

/// What failed when setting up libopus.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot set up the Opus {what}: {reason}. The Opus codec is unusable; offer PCMU, PCMA or G722 instead ([audio].codecs)")]
pub struct OpusSetupError {
    what: &'static str,
    reason: String,
}

fn setup_error(what: &'static str) -> impl Fn(opus::Error) -> OpusSetupError {
    move |error| OpusSetupError {
        what,
        reason: error.to_string(),
    }
}

/// The packet time we actually use for a requested `ptime`: Opus frames are 10, 20, 40 or
/// 60 ms for voice, so anything else rounds down to the nearest of those (at least 10).
pub fn packet_ms(requested: u32) -> u32 {
    match requested {
        0..=19 => 10,
        20..=39 => 20,
        40..=59 => 40,
        _ => 60,
    }
}

pub struct OpusEncoder {
    inner: opus::Encoder,
    packet: Vec<u8>,
}

impl OpusEncoder {
    pub fn new() -> Result<OpusEncoder, OpusSetupError> {
        let fail = setup_error("encoder");
        let mut inner =
            opus::Encoder::new(OPUS_RATE, opus::Channels::Mono, opus::Application::Voip)
                .map_err(&fail)?;
        inner
            .set_bitrate(opus::Bitrate::Bits(BITRATE))
            .map_err(&fail)?;
        // Voice needs no more than wideband (our fmtp says so too); it keeps libopus in SILK,
        // the mode that carries in-band FEC.
        inner
            .set_max_bandwidth(opus::Bandwidth::Wideband)
            .map_err(&fail)?;
        inner.set_signal(opus::Signal::Voice).map_err(&fail)?;
        inner.set_inband_fec(true).map_err(&fail)?;
        inner
            .set_packet_loss_perc(i32::from(DEFAULT_EXPECTED_LOSS_PERCENT))
            .map_err(&fail)?;
        Ok(OpusEncoder {
            inner,
            packet: vec![0; MAX_PACKET],
        })
    }
}

impl Encoder for OpusEncoder {
    /// `pcm` must be 10, 20, 40 or 60 ms at 48 kHz (see [`packet_ms`]); other lengths are cut
    /// to the longest frame libopus accepts (or padded to 2.5 ms), so a caller's mistake costs
    /// a click, never a panic.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        let wanted = FRAME_SIZES
            .iter()
            .rev()
            .copied()
            .find(|&size| size <= pcm.len())
            .unwrap_or(SAMPLES_PER_2_5_MS);
        let result = if pcm.len() == wanted {
            self.inner.encode(pcm, &mut self.packet)
        } else {
            let mut frame = pcm
                .get(..wanted.min(pcm.len()))
                .unwrap_or_default()
                .to_vec();
            frame.resize(wanted, 0);
            self.inner.encode(&frame, &mut self.packet)
        };
        match result {
            Ok(length) => out.extend_from_slice(self.packet.get(..length).unwrap_or_default()),
            Err(error) => tracing::warn!(%error, "Opus encode failed; the frame is not sent"),
        }
    }

    fn clock_rate(&self) -> u32 {
        OPUS_RATE
    }

    fn sample_rate(&self) -> u32 {
        OPUS_RATE
    }

    fn packet_ms(&self, requested: u32) -> u32 {
        packet_ms(requested)
    }

    fn set_expected_loss(&mut self, percent: u8) {
        // libopus adds FEC only when it expects loss. A clean report still keeps the default:
        // the first loss after a quiet spell is exactly the one FEC should save.
        let percent = i32::from(percent.clamp(DEFAULT_EXPECTED_LOSS_PERCENT, 100));
        if let Err(error) = self.inner.set_packet_loss_perc(percent) {
            tracing::debug!(%error, "Opus: cannot set the expected loss");
        }
    }
}

pub struct OpusDecoder {
    inner: opus::Decoder,
    pcm: Vec<i16>,
}

impl OpusDecoder {
    pub fn new() -> Result<OpusDecoder, OpusSetupError> {
        let inner =
            opus::Decoder::new(OPUS_RATE, opus::Channels::Mono).map_err(setup_error("decoder"))?;
        Ok(OpusDecoder {
            inner,
            pcm: vec![0; MAX_FRAME_SAMPLES],
        })
    }

    /// Runs libopus's loss concealment (`fec = false`, no data) or FEC recovery from the next
    /// packet (`fec = true`) for `samples` samples, in 2.5 ms multiples; the rest is silence.
    fn recover(&mut self, samples: usize, next: &[u8], fec: bool, out: &mut Vec<i16>) {
        let start = out.len();
        let mut remaining = samples;
        while remaining >= SAMPLES_PER_2_5_MS {
            let chunk =
                (remaining / SAMPLES_PER_2_5_MS * SAMPLES_PER_2_5_MS).min(MAX_FRAME_SAMPLES);
            let Some(buffer) = self.pcm.get_mut(..chunk) else {
                break;
            };
            // FEC holds exactly one frame: only the first chunk can come from it.
            let use_fec = fec && out.len() == start;
            let data: &[u8] = if use_fec { next } else { &[] };
            match self.inner.decode(data, buffer, use_fec) {
                Ok(decoded) => {
                    out.extend_from_slice(buffer.get(..decoded.min(chunk)).unwrap_or_default());
                    if decoded == 0 {
                        break;
                    }
                    remaining = remaining.saturating_sub(decoded.min(chunk));
                }
                Err(_) => break,
            }
        }
        out.resize(start + samples, 0);
    }
}

impl Decoder for OpusDecoder {
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        match self.inner.decode(payload, &mut self.pcm, false) {
            Ok(decoded) => {
                out.extend_from_slice(self.pcm.get(..decoded).unwrap_or_default());
            }
            Err(error) => {
                // A corrupt packet from the network: conceal one 20 ms frame in its place.
                tracing::debug!(%error, bytes = payload.len(), "Opus: undecodable packet concealed");
                self.recover(OPUS_RATE as usize / 50, &[], false, out);
            }
        }
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        self.recover(samples, &[], false, out);
    }

    fn conceal_from_next(&mut self, samples: usize, next: &[u8], out: &mut Vec<i16>) {
        if next.is_empty() {
            self.recover(samples, next, false, out);
        } else {
            self.recover(samples, next, true, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::tones::goertzel;

    /// Speech-like test audio: glottal pulses at a wandering pitch through two moving formant
    /// resonators, in 2.5 syllables a second. libopus's voice activity detector takes it for
    /// speech, which matters: SILK adds FEC to active frames only.
    fn voice(samples: usize) -> Vec<i16> {
        let rate = f64::from(OPUS_RATE);
        let tau = 2.0 * std::f64::consts::PI;
        let resonator = |frequency: f64, bandwidth: f64| {
            let radius = (-std::f64::consts::PI * bandwidth / rate).exp();
            (
                2.0 * radius * (tau * frequency / rate).cos(),
                -radius * radius,
            )
        };
        let (mut a1, mut a2, mut b1, mut b2) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        let mut phase = 0.0f64;
        (0..samples)
            .map(|i| {
                let t = i as f64 / rate;
                phase += (120.0 + 30.0 * (tau * 0.7 * t).sin()) / rate;
                let pulse = if phase >= 1.0 {
                    phase -= 1.0;
                    1.0
                } else {
                    0.0
                };
                let (c1, c2) = resonator(600.0 + 200.0 * (tau * 2.0 * t).sin(), 80.0);
                let (d1, d2) = resonator(1500.0 + 500.0 * (tau * 1.3 * t).cos(), 120.0);
                let first = pulse + c1 * a1 + c2 * a2;
                (a2, a1) = (a1, first);
                let second = first + d1 * b1 + d2 * b2;
                (b2, b1) = (b1, second);
                let syllable = (tau * 2.5 * t).sin().max(0.0);
                (second * 60.0 * syllable).clamp(-30000.0, 30000.0) as i16
            })
            .collect()
    }

    fn encode_all(encoder: &mut OpusEncoder, pcm: &[i16]) -> Vec<Vec<u8>> {
        pcm.chunks_exact(960)
            .map(|frame| {
                let mut packet = Vec::new();
                encoder.encode(frame, &mut packet);
                packet
            })
            .collect()
    }

    /// Signal-to-noise ratio in dB of `decoded` against `reference`, at the codec delay that
    /// fits best (libopus delays by its look-ahead, 6.5 ms here).
    fn snr_db(reference: &[i16], decoded: &[i16], skip: usize) -> (f64, usize) {
        let mut best = (f64::MIN, 0);
        for delay in 0..600 {
            let mut signal = 0.0;
            let mut noise = 0.0;
            for (i, &r) in reference.iter().enumerate().skip(skip) {
                let Some(&d) = decoded.get(i + delay) else {
                    break;
                };
                signal += f64::from(r).powi(2);
                noise += (f64::from(r) - f64::from(d)).powi(2);
            }
            let snr = 10.0 * (signal / noise.max(1.0)).log10();
            if snr > best.0 {
                best = (snr, delay);
            }
        }
        best
    }

    #[test]
    fn encode_decode_keeps_the_signal_within_snr_bounds() {
        let pcm = voice(OPUS_RATE as usize * 2);
        let mut encoder = OpusEncoder::new().expect("encoder");
        let mut decoder = OpusDecoder::new().expect("decoder");
        let packets = encode_all(&mut encoder, &pcm);
        assert_eq!(packets.len(), 100);
        let bytes: usize = packets.iter().map(Vec::len).sum();
        // At most 24 kbit/s over 2 s is 6000 bytes; the gaps between syllables cost almost none.
        assert!((2000..=9000).contains(&bytes), "{bytes} bytes");
        let mut decoded = Vec::new();
        for packet in &packets {
            decoder.decode(packet, &mut decoded);
        }
        assert_eq!(decoded.len(), pcm.len());
        let (snr, delay) = snr_db(&pcm, &decoded, 4800);
        eprintln!("Opus 24 kbit/s: SNR {snr:.1} dB at a delay of {delay} samples, {bytes} bytes");
        // Measured 2026-11 with Debian's libopus 1.3.1: see the report; the bound leaves margin
        // but fails for a broken pipeline (wrong rate, channels or alignment give < 3 dB).
        assert!(snr > 10.0, "SNR {snr:.1} dB at delay {delay}");
        assert!((200..=500).contains(&delay), "codec delay {delay} samples");
    }

    #[test]
    fn a_tone_survives_and_nothing_else_appears() {
        let tone: Vec<i16> = (0..OPUS_RATE as usize)
            .map(|i| {
                (8000.0
                    * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / f64::from(OPUS_RATE)).sin())
                    as i16
            })
            .collect();
        let mut encoder = OpusEncoder::new().expect("encoder");
        let mut decoder = OpusDecoder::new().expect("decoder");
        let mut decoded = Vec::new();
        for packet in encode_all(&mut encoder, &tone) {
            decoder.decode(&packet, &mut decoded);
        }
        let tail = &decoded[decoded.len() / 2..];
        let at = goertzel(tail, OPUS_RATE, 1000.0);
        let off = goertzel(tail, OPUS_RATE, 1700.0);
        assert!(at > 100.0 * off, "{at} vs {off}");
    }

    #[test]
    fn fec_rebuilds_a_lost_packet_better_than_plc() {
        let pcm = voice(OPUS_RATE as usize * 2);
        let mut encoder = OpusEncoder::new().expect("encoder");
        encoder.set_expected_loss(20);
        let packets = encode_all(&mut encoder, &pcm);
        // One loss in the middle of each of four syllables (they peak every 0.4 s from 0.1 s).
        let lost = [5usize, 25, 45, 65];
        let run = |use_fec: bool| {
            let mut decoder = OpusDecoder::new().expect("decoder");
            let mut decoded = Vec::new();
            for (i, packet) in packets.iter().enumerate() {
                if lost.contains(&i) {
                    if use_fec {
                        decoder.conceal_from_next(960, &packets[i + 1], &mut decoded);
                    } else {
                        decoder.conceal(960, &mut decoded);
                    }
                } else {
                    decoder.decode(packet, &mut decoded);
                }
            }
            decoded
        };
        let with_fec = run(true);
        let with_plc = run(false);
        assert_eq!(with_fec.len(), pcm.len());
        assert_eq!(with_plc.len(), pcm.len());
        let (_, delay) = snr_db(&pcm, &with_fec, 4800);
        // Compare only the lost frames, at the codec's delay.
        let lost_samples = || {
            lost.iter()
                .flat_map(|&frame| frame * 960..(frame + 1) * 960)
        };
        let error = |decoded: &[i16]| -> f64 {
            lost_samples()
                .map(|i| (f64::from(pcm[i]) - f64::from(decoded[i + delay])).powi(2))
                .sum()
        };
        let signal: f64 = lost_samples().map(|i| f64::from(pcm[i]).powi(2)).sum();
        let fec_snr = 10.0 * (signal / error(&with_fec)).log10();
        let plc_snr = 10.0 * (signal / error(&with_plc)).log10();
        eprintln!("lost frames: FEC {fec_snr:.1} dB, PLC {plc_snr:.1} dB");
        assert!(
            fec_snr > plc_snr + 3.0 && fec_snr > 3.0,
            "FEC {fec_snr:.1} dB vs PLC {plc_snr:.1} dB"
        );
    }

    #[test]
    fn plc_continues_the_signal_then_garbage_never_panics() {
        let pcm = voice(OPUS_RATE as usize / 2);
        let mut encoder = OpusEncoder::new().expect("encoder");
        let mut decoder = OpusDecoder::new().expect("decoder");
        let mut decoded = Vec::new();
        for packet in encode_all(&mut encoder, &pcm) {
            decoder.decode(&packet, &mut decoded);
        }
        let mut concealed = Vec::new();
        decoder.conceal(960, &mut concealed);
        assert_eq!(concealed.len(), 960);
        let energy = concealed.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 960.0;
        assert!(
            energy.sqrt() > 500.0,
            "PLC should carry the voice on, RMS {}",
            energy.sqrt()
        );
        // Odd lengths are padded with silence rather than refused.
        concealed.clear();
        decoder.conceal(1000, &mut concealed);
        assert_eq!(concealed.len(), 1000);
        for garbage in [
            &[][..],
            &[0xff; 3][..],
            &[0x0b; 1400][..],
            &[0xfc, 0xff, 0xff][..],
        ] {
            let mut out = Vec::new();
            decoder.decode(garbage, &mut out);
            assert!(out.len() <= MAX_FRAME_SAMPLES, "{}", out.len());
            let mut out = Vec::new();
            decoder.conceal_from_next(960, garbage, &mut out);
            assert_eq!(out.len(), 960);
        }
    }

    #[test]
    fn packet_times_round_to_opus_frames() {
        assert_eq!(packet_ms(20), 20);
        assert_eq!(packet_ms(30), 20);
        assert_eq!(packet_ms(5), 10);
        assert_eq!(packet_ms(60), 60);
        assert_eq!(packet_ms(200), 60);
        let mut encoder = OpusEncoder::new().expect("encoder");
        for ms in [10usize, 20, 40, 60] {
            let mut packet = Vec::new();
            encoder.encode(&vec![100; 48 * ms], &mut packet);
            assert!(!packet.is_empty(), "{ms} ms");
            assert_eq!(
                opus::packet::get_nb_samples(&packet, OPUS_RATE).expect("parse"),
                48 * ms
            );
        }
        // A wrong length is cut to a frame libopus takes, not refused.
        let mut packet = Vec::new();
        encoder.encode(&[100; 1000], &mut packet);
        assert_eq!(
            opus::packet::get_nb_samples(&packet, OPUS_RATE).expect("parse"),
            960
        );
    }
}
