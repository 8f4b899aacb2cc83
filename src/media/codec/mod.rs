//! Audio codecs behind one pair of traits, so the media pipeline never cares which one the SDP
//! answer picked. All of them are ours, pure Rust and sans-IO: bytes and samples in, bytes and
//! samples out. Opus is the exception: libopus through the `opus` crate (cargo feature `opus`).
//!
//! | name   | RTP clock | PCM rate | payload            |
//! | ------ | --------- | -------- | ------------------ |
//! | `PCMU` | 8000      | 8000     | G.711 μ-law, 1 byte/sample |
//! | `PCMA` | 8000      | 8000     | G.711 A-law, 1 byte/sample |
//! | `G722` | 8000      | 16000    | G.722 64 kbit/s, 1 byte per 2 samples |
//! | `opus` | 48000     | 48000    | Opus (libopus), variable, with in-band FEC; feature `opus` |
//!
//! G.722 advertises an 8000 Hz RTP clock although it samples at 16 kHz: RFC 3551 §4.5.2 keeps the
//! erroneous value of RFC 1890 for compatibility, so timestamps advance by half the PCM samples.

pub mod g711;
pub mod g722;
#[cfg(feature = "opus")]
pub mod opus;

/// Turns PCM frames into RTP payloads.
pub trait Encoder {
    /// Encodes `pcm` (mono, at [`Encoder::sample_rate`]) and appends the payload bytes to `out`.
    /// Streaming: state carries over between calls, so consecutive frames form one signal.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>);
    /// The RTP timestamp rate (what SDP's `a=rtpmap` names).
    fn clock_rate(&self) -> u32;
    /// The PCM sample rate the encoder expects.
    fn sample_rate(&self) -> u32;
    /// The packet time this codec really uses when the SDP asks for `requested` ms (Opus only
    /// has 10, 20, 40 and 60 ms frames; sample codecs take any).
    fn packet_ms(&self, requested: u32) -> u32 {
        requested
    }
    /// The loss the far end reports (RTCP fraction lost, in percent): codecs with FEC spend
    /// bits on it accordingly.
    fn set_expected_loss(&mut self, _percent: u8) {}
}

/// Turns RTP payloads back into PCM, and invents audio for packets that never came.
pub trait Decoder {
    /// Decodes one payload and appends the PCM samples to `out`. Any byte string is accepted: a
    /// payload is network input, so nothing here can panic on it.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>);
    /// Packet-loss concealment: appends `samples` PCM samples standing in for lost audio.
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>);
    /// A packet was lost but the one after it is here (`next`): codecs with in-band FEC rebuild
    /// the lost audio from it; the others conceal. `next` is decoded again normally later.
    fn conceal_from_next(&mut self, samples: usize, _next: &[u8], out: &mut Vec<i16>) {
        self.conceal(samples, out);
    }
}

/// The RTP clock rate an encoding name always has in SDP (`opus` is 48000, the rest 8000), or
/// `None` for a name we do not implement (or Opus when built without the `opus` feature).
pub fn clock_rate_for(name: &str) -> Option<u32> {
    if is_opus(name) {
        cfg!(feature = "opus").then_some(48_000)
    } else if ["PCMU", "PCMA", "G722"]
        .iter()
        .any(|known| known.eq_ignore_ascii_case(name))
    {
        Some(8000)
    } else {
        None
    }
}

fn is_opus(name: &str) -> bool {
    name.eq_ignore_ascii_case("opus")
}

/// The codecs this build implements, in the default preference order of the table above.
pub fn supported_names() -> &'static [&'static str] {
    if cfg!(feature = "opus") {
        &["PCMU", "PCMA", "G722", "opus"]
    } else {
        &["PCMU", "PCMA", "G722"]
    }
}

/// [`for_name`] at the encoding's own clock rate (see [`clock_rate_for`]).
pub fn by_name(name: &str) -> Option<(Box<dyn Encoder + Send>, Box<dyn Decoder + Send>)> {
    for_name(name, clock_rate_for(name)?)
}

/// The encoder and decoder for an SDP encoding name (case-insensitive, as RFC 4855 says) at an
/// RTP clock rate, or `None` when we do not implement that pair.
pub fn for_name(
    name: &str,
    clock: u32,
) -> Option<(Box<dyn Encoder + Send>, Box<dyn Decoder + Send>)> {
    if is_opus(name) {
        return opus_pair(clock);
    }
    if clock != 8000 {
        return None;
    }
    if name.eq_ignore_ascii_case("PCMU") {
        Some((
            Box::new(g711::G711Encoder::new(g711::Law::Mu)),
            Box::new(g711::G711Decoder::new(g711::Law::Mu)),
        ))
    } else if name.eq_ignore_ascii_case("PCMA") {
        Some((
            Box::new(g711::G711Encoder::new(g711::Law::A)),
            Box::new(g711::G711Decoder::new(g711::Law::A)),
        ))
    } else if name.eq_ignore_ascii_case("G722") {
        Some((
            Box::new(g722::G722Encoder::new()),
            Box::new(g722::G722Decoder::new()),
        ))
    } else {
        None
    }
}

#[cfg(feature = "opus")]
fn opus_pair(clock: u32) -> Option<(Box<dyn Encoder + Send>, Box<dyn Decoder + Send>)> {
    if clock != opus::OPUS_RATE {
        return None;
    }
    let setup = opus::OpusEncoder::new().and_then(|e| Ok((e, opus::OpusDecoder::new()?)));
    match setup {
        Ok((encoder, decoder)) => Some((Box::new(encoder), Box::new(decoder))),
        Err(error) => {
            tracing::warn!(%error, "Opus is unavailable");
            None
        }
    }
}

#[cfg(not(feature = "opus"))]
fn opus_pair(_clock: u32) -> Option<(Box<dyn Encoder + Send>, Box<dyn Decoder + Send>)> {
    None
}

/// How much recent audio the concealer replays: long enough to hold a pitch period of any voice,
/// short enough that the replay still sounds like the talker.
const CONCEAL_HISTORY_MS: u32 = 20;
/// Replayed audio fades linearly to silence over this span, after which loss is plain silence
/// (a buzzing loop is worse than a gap).
const CONCEAL_FADE_MS: u32 = 60;

/// Simple packet-loss concealment shared by our codecs: replay the last 20 ms that was decoded,
/// fading to silence over 60 ms of loss.
#[derive(Debug, Clone)]
pub(crate) struct FadeConcealer {
    history: Vec<i16>,
    history_capacity: usize,
    replay_position: usize,
    concealed: usize,
    fade_length: usize,
}

impl FadeConcealer {
    pub(crate) fn new(sample_rate: u32) -> FadeConcealer {
        let per_ms = (sample_rate / 1000).max(1) as usize;
        FadeConcealer {
            history: Vec::new(),
            history_capacity: per_ms * CONCEAL_HISTORY_MS as usize,
            replay_position: 0,
            concealed: 0,
            fade_length: per_ms * CONCEAL_FADE_MS as usize,
        }
    }

    /// Records freshly decoded audio; a good frame ends any loss in progress.
    pub(crate) fn remember(&mut self, decoded: &[i16]) {
        self.concealed = 0;
        self.replay_position = 0;
        if decoded.is_empty() {
            return;
        }
        let keep_from = decoded.len().saturating_sub(self.history_capacity);
        let fresh = decoded.get(keep_from..).unwrap_or_default();
        let overflow = (self.history.len() + fresh.len()).saturating_sub(self.history_capacity);
        self.history.drain(..overflow.min(self.history.len()));
        self.history.extend_from_slice(fresh);
    }

    pub(crate) fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        out.reserve(samples);
        for _ in 0..samples {
            let remaining = self.fade_length.saturating_sub(self.concealed);
            let sample = match self.history.get(self.replay_position) {
                Some(&sample) if remaining > 0 => {
                    // remaining / fade_length, in integers: exact and the same on every machine.
                    let scaled = i64::from(sample) * remaining as i64 / self.fade_length as i64;
                    i16::try_from(scaled).unwrap_or(0)
                }
                _ => 0,
            };
            out.push(sample);
            self.concealed = self.concealed.saturating_add(1);
            self.replay_position += 1;
            if self.replay_position >= self.history.len() {
                self.replay_position = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_clock_must_match() {
        for name in ["PCMU", "pcmu", "PCMA", "pcma", "G722", "g722"] {
            let (encoder, _) = for_name(name, 8000).expect(name);
            assert_eq!(encoder.clock_rate(), 8000, "{name}");
        }
        assert!(for_name("PCMU", 16000).is_none());
        assert!(
            for_name("G722", 16000).is_none(),
            "G.722 is G722/8000 in SDP"
        );
        assert_eq!(for_name("opus", 48000).is_some(), cfg!(feature = "opus"));
        assert!(for_name("opus", 8000).is_none());
        assert!(for_name("", 8000).is_none());
        assert_eq!(
            clock_rate_for("OPUS"),
            cfg!(feature = "opus").then_some(48000)
        );
        assert_eq!(clock_rate_for("g722"), Some(8000));
        assert_eq!(clock_rate_for("G729"), None);
        assert!(by_name("G729").is_none());
    }

    #[test]
    fn pcm_rates_and_payload_sizes_per_codec() {
        // 20 ms of PCM at each codec's own rate; payload sizes are fixed by the standards.
        for (name, rate, bytes) in [
            ("PCMU", 8000, 160),
            ("PCMA", 8000, 160),
            ("G722", 16000, 160),
        ] {
            let (mut encoder, mut decoder) = by_name(name).expect(name);
            assert_eq!(encoder.sample_rate(), rate, "{name}");
            let pcm = vec![1000i16; rate as usize / 50];
            let mut payload = Vec::new();
            encoder.encode(&pcm, &mut payload);
            assert_eq!(payload.len(), bytes, "{name}");
            let mut decoded = Vec::new();
            decoder.decode(&payload, &mut decoded);
            assert_eq!(decoded.len(), pcm.len(), "{name}");
            decoder.conceal(pcm.len(), &mut decoded);
            assert_eq!(decoded.len(), 2 * pcm.len(), "{name}");
        }
    }

    #[test]
    fn concealment_replays_the_last_20_ms_then_fades_to_silence() {
        let mut concealer = FadeConcealer::new(8000);
        let older: Vec<i16> = vec![7; 100];
        let recent: Vec<i16> = (0..160).map(|i| 1000 + i).collect();
        concealer.remember(&older);
        concealer.remember(&recent);
        let mut out = Vec::new();
        concealer.conceal(600, &mut out);
        assert_eq!(out.len(), 600);
        // Full gain at the first concealed sample, replaying the most recent 160 samples.
        assert_eq!(out[0], 1000);
        // Sample 160 wraps to the start of the history: 1000 at gain (480 - 160) / 480.
        assert_eq!(out[160], (1000 * 320 / 480) as i16);
        assert!(out[1..480].iter().all(|&s| s > 0 && s < 1160));
        assert!(out[480..].iter().all(|&s| s == 0), "silence after 60 ms");
        // A good frame ends the loss: concealment restarts at full gain.
        concealer.remember(&[500; 160]);
        let mut again = Vec::new();
        concealer.conceal(1, &mut again);
        assert_eq!(again, [500]);
    }

    #[test]
    fn concealment_without_history_is_silence() {
        let mut concealer = FadeConcealer::new(16000);
        let mut out = Vec::new();
        concealer.conceal(320, &mut out);
        assert_eq!(out, vec![0; 320]);
    }
}
