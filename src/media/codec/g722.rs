//! ITU-T G.722 at 64 kbit/s (mode 1): 16 kHz wideband audio as sub-band ADPCM.
//!
//! A 24-tap quadrature mirror filter splits each pair of input samples into a lower band
//! (0–4 kHz, 6-bit ADPCM) and a higher band (4–8 kHz, 2-bit ADPCM); each octet carries both codes
//! (`high << 6 | low`). The arithmetic follows the fixed-point blocks of the Recommendation
//! (SUBTRA, QUANTL, INVQAL, LOGSCL, SCALEL, the predictor's UPPOL/UPZERO/FILTEP/FILTEZ, …). It is
//! bit-exact with libspandsp (checked against Debian's 0.0.6, see the tests), except that our
//! receive QMF saturates its output where that version truncates it to 16 bits.
//!
//! Payloads are unpacked one octet per 16 kHz sample pair; the RTP clock is 8000 (see `super`).

use super::{Decoder, Encoder, FadeConcealer};

/// QMF coefficients h(2i) for i = 0..12; the odd taps are the same values in reverse order.
const QMF: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];

/// Lower band quantizer decision levels (QUANTL), in units of the scale factor / 4096.
const DECISION_LEVELS: [i32; 30] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919,
];

/// Lower band 6-bit reconstruction levels for quantizer interval 1..=30 (INVQBL).
const LEVELS_6BIT: [i32; 30] = [
    136, 432, 728, 1040, 1360, 1688, 2032, 2400, 2776, 3168, 3576, 4008, 4464, 4944, 5456, 6000,
    6576, 7192, 7856, 8576, 9360, 10232, 11192, 12280, 13512, 14984, 16704, 19008, 21904, 24808,
];

/// Lower band 4-bit reconstruction levels (INVQAL), indexed by the code's top four bits.
const LEVELS_4BIT: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];

/// Higher band 2-bit reconstruction levels (INVQAH), indexed by the code.
const LEVELS_2BIT: [i32; 4] = [-7408, -1616, 7408, 1616];

/// Lower band log scale factor multipliers (LOGSCL), indexed through [`LOW_MULTIPLIER_INDEX`].
const LOW_MULTIPLIERS: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
const LOW_MULTIPLIER_INDEX: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];

/// Higher band log scale factor multipliers (LOGSCH), indexed by the 2-bit code.
const HIGH_MULTIPLIERS: [i32; 4] = [798, -214, 798, -214];

/// Antilog table of the scale factor adaptation (SCALEL/SCALEH).
const ANTILOG: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];

/// The 6-bit lower band code for quantizer interval `interval` (1..=30) and sign. The codes
/// 0..=3 are never sent.
fn low_code(interval: usize, negative: bool) -> usize {
    match (negative, interval) {
        (false, _) => 62 - interval,
        (true, 1 | 2) => 64 - interval,
        (true, _) => 34 - interval,
    }
}

/// Decoder side of [`low_code`]: the 6-bit reconstruction level of every code. Unused codes
/// decode like the smallest negative step, as libspandsp does.
const fn six_bit_levels() -> [i32; 64] {
    let mut table = [-LEVELS_6BIT[0]; 64];
    let mut interval = 1;
    while interval <= 30 {
        let level = LEVELS_6BIT[interval - 1];
        table[62 - interval] = level;
        let negative = if interval <= 2 {
            64 - interval
        } else {
            34 - interval
        };
        table[negative] = -level;
        interval += 1;
    }
    table
}

static LEVELS_6BIT_BY_CODE: [i32; 64] = six_bit_levels();

fn saturate(value: i32) -> i32 {
    value.clamp(i32::from(i16::MIN), i32::from(i16::MAX))
}

/// Sign as the Recommendation takes it: bit 15 of a 16-bit word (-1 for negative, 0 otherwise).
fn sign(value: i32) -> i32 {
    value >> 15
}

/// One sub-band's ADPCM state: the adaptive quantizer scale and the pole-zero predictor.
#[derive(Debug, Clone)]
struct SubBand {
    /// Log scale factor (NBL / NBH).
    log_scale: i32,
    /// Quantizer scale factor (DETL / DETH).
    scale: i32,
    /// Signal estimate (SL / SH) and its zero-section part (SZL / SZH).
    estimate: i32,
    zero_estimate: i32,
    /// Pole coefficients a1, a2 and zero coefficients b1..b6.
    poles: [i32; 2],
    zeros: [i32; 6],
    /// Quantized differences d(n-1)..d(n-6), reconstructed signal r(n-1), r(n-2), partially
    /// reconstructed signal p(n-1), p(n-2).
    past_differences: [i32; 6],
    past_signal: [i32; 2],
    past_partial: [i32; 2],
}

impl SubBand {
    fn new(initial_scale: i32) -> SubBand {
        SubBand {
            log_scale: 0,
            scale: initial_scale,
            estimate: 0,
            zero_estimate: 0,
            poles: [0; 2],
            zeros: [0; 6],
            past_differences: [0; 6],
            past_signal: [0; 2],
            past_partial: [0; 2],
        }
    }

    /// LOGSCL/LOGSCH then SCALEL/SCALEH: leak the log scale, add the code's multiplier, bound it
    /// and turn it back into a linear scale factor.
    fn adapt_scale(&mut self, multiplier: i32, ceiling: i32, exponent_offset: i32) {
        self.log_scale = (((self.log_scale * 127) >> 7) + multiplier).clamp(0, ceiling);
        let mantissa = ANTILOG[((self.log_scale >> 6) & 31) as usize];
        let shift = exponent_offset - (self.log_scale >> 11);
        let linear = if shift < 0 {
            mantissa << -shift
        } else {
            mantissa >> shift
        };
        self.scale = linear << 2;
    }

    /// The predictor update of block 4, fed with the quantized difference `difference`.
    fn adapt_predictor(&mut self, difference: i32) {
        let signal = saturate(self.estimate + difference);
        let partial = saturate(self.zero_estimate + difference);
        let [a1, a2] = self.poles;
        let [p1, p2] = self.past_partial;
        let (s0, s1, s2) = (sign(partial), sign(p1), sign(p2));

        // UPPOL2
        let pulled = saturate(a1 << 2);
        let pulled = if s0 == s1 { -pulled } else { pulled }.min(i32::from(i16::MAX));
        let nudge = if s0 == s2 { 128 } else { -128 };
        let new_a2 = ((pulled >> 7) + nudge + ((a2 * 32512) >> 15)).clamp(-12288, 12288);

        // UPPOL1
        let nudge = if s0 == s1 { 192 } else { -192 };
        let limit = saturate(15360 - new_a2);
        let new_a1 = saturate(nudge + ((a1 * 32640) >> 15)).clamp(-limit, limit);

        // UPZERO
        let step = if difference == 0 { 0 } else { 128 };
        let difference_sign = sign(difference);
        for (zero, &past) in self.zeros.iter_mut().zip(&self.past_differences) {
            let nudge = if sign(past) == difference_sign {
                step
            } else {
                -step
            };
            *zero = saturate(nudge + ((*zero * 32640) >> 15));
        }

        // DELAYA
        self.past_differences.rotate_right(1);
        self.past_differences[0] = difference;
        self.past_signal = [signal, self.past_signal[0]];
        self.past_partial = [partial, p1];
        self.poles = [new_a1, new_a2];

        // FILTEP, FILTEZ, PREDIC
        let pole_estimate = self
            .poles
            .iter()
            .zip(&self.past_signal)
            .map(|(&a, &r)| (a * saturate(r << 1)) >> 15)
            .sum::<i32>();
        let zero_estimate = self
            .zeros
            .iter()
            .zip(&self.past_differences)
            .map(|(&b, &d)| (b * saturate(d << 1)) >> 15)
            .sum::<i32>();
        self.zero_estimate = saturate(zero_estimate);
        self.estimate = saturate(saturate(pole_estimate) + self.zero_estimate);
    }
}

/// Lower band scale factor bounds: NBL ≤ 18432, DETL = antilog(NBL) with exponent offset 8.
const LOW_LOG_CEILING: i32 = 18432;
const LOW_EXPONENT_OFFSET: i32 = 8;
/// Higher band: NBH ≤ 22528, offset 10.
const HIGH_LOG_CEILING: i32 = 22528;
const HIGH_EXPONENT_OFFSET: i32 = 10;
/// Reset values of DETL and DETH.
const LOW_INITIAL_SCALE: i32 = 32;
const HIGH_INITIAL_SCALE: i32 = 8;

/// The 24-sample delay line both QMF directions keep, oldest first.
type QmfHistory = [i32; 24];

fn push_pair(history: &mut QmfHistory, first: i32, second: i32) {
    history.copy_within(2.., 0);
    history[22] = first;
    history[23] = second;
}

/// The two polyphase sums of the QMF over the delay line: (older-phase taps, newer-phase taps).
fn qmf_sums(history: &QmfHistory) -> (i32, i32) {
    history
        .chunks_exact(2)
        .zip(QMF.iter().zip(QMF.iter().rev()))
        .fold((0, 0), |(older, newer), (pair, (&forward, &backward))| {
            (older + pair[0] * forward, newer + pair[1] * backward)
        })
}

/// G.722 encoder, 64 kbit/s, 16 kHz PCM in.
#[derive(Debug, Clone)]
pub struct G722Encoder {
    history: QmfHistory,
    low: SubBand,
    high: SubBand,
    /// An odd sample left from the previous call, waiting for its partner.
    pending: Option<i16>,
}

impl Default for G722Encoder {
    fn default() -> Self {
        G722Encoder::new()
    }
}

impl G722Encoder {
    pub fn new() -> G722Encoder {
        G722Encoder {
            history: [0; 24],
            low: SubBand::new(LOW_INITIAL_SCALE),
            high: SubBand::new(HIGH_INITIAL_SCALE),
            pending: None,
        }
    }

    fn encode_pair(&mut self, first: i16, second: i16) -> u8 {
        push_pair(&mut self.history, i32::from(first), i32::from(second));
        let (older, newer) = qmf_sums(&self.history);
        let low_code = self.encode_low((newer + older) >> 14);
        let high_code = self.encode_high((newer - older) >> 14);
        ((high_code << 6) | low_code) as u8
    }

    fn encode_low(&mut self, input: i32) -> usize {
        let band = &mut self.low;
        // SUBTRA, then QUANTL on the magnitude (one's complement for negatives).
        let error = saturate(input - band.estimate);
        let magnitude = if error >= 0 { error } else { -(error + 1) };
        let interval = (1..30)
            .find(|&i| magnitude < (DECISION_LEVELS[i] * band.scale) >> 12)
            .unwrap_or(30);
        let code = low_code(interval, error < 0);
        // INVQAL: the predictor only sees the 4-bit core of the code, so the decoder can drop the
        // low bits (the embedded 56 and 48 kbit/s modes) and stay in step.
        let core = code >> 2;
        let difference = (band.scale * LEVELS_4BIT[core]) >> 15;
        band.adapt_scale(
            LOW_MULTIPLIERS[LOW_MULTIPLIER_INDEX[core]],
            LOW_LOG_CEILING,
            LOW_EXPONENT_OFFSET,
        );
        band.adapt_predictor(difference);
        code
    }

    fn encode_high(&mut self, input: i32) -> usize {
        let band = &mut self.high;
        let error = saturate(input - band.estimate);
        let magnitude = if error >= 0 { error } else { -(error + 1) };
        let outer = magnitude >= (564 * band.scale) >> 12;
        let code = match (error < 0, outer) {
            (true, true) => 0,
            (true, false) => 1,
            (false, true) => 2,
            (false, false) => 3,
        };
        let difference = (band.scale * LEVELS_2BIT[code]) >> 15;
        band.adapt_scale(
            HIGH_MULTIPLIERS[code],
            HIGH_LOG_CEILING,
            HIGH_EXPONENT_OFFSET,
        );
        band.adapt_predictor(difference);
        code
    }
}

impl Encoder for G722Encoder {
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        let mut rest = pcm;
        if let Some(first) = self.pending.take() {
            match rest.split_first() {
                Some((&second, tail)) => {
                    let code = self.encode_pair(first, second);
                    out.push(code);
                    rest = tail;
                }
                None => {
                    self.pending = Some(first);
                    return;
                }
            }
        }
        let pairs = rest.chunks_exact(2);
        self.pending = pairs.remainder().first().copied();
        out.reserve(rest.len() / 2);
        for pair in pairs {
            let code = self.encode_pair(pair[0], pair[1]);
            out.push(code);
        }
    }

    fn clock_rate(&self) -> u32 {
        8000
    }

    fn sample_rate(&self) -> u32 {
        16000
    }
}

/// G.722 decoder, 64 kbit/s, 16 kHz PCM out, with fade-out concealment of lost packets.
#[derive(Debug, Clone)]
pub struct G722Decoder {
    history: QmfHistory,
    low: SubBand,
    high: SubBand,
    concealer: FadeConcealer,
}

impl Default for G722Decoder {
    fn default() -> Self {
        G722Decoder::new()
    }
}

impl G722Decoder {
    pub fn new() -> G722Decoder {
        G722Decoder {
            history: [0; 24],
            low: SubBand::new(LOW_INITIAL_SCALE),
            high: SubBand::new(HIGH_INITIAL_SCALE),
            concealer: FadeConcealer::new(16000),
        }
    }

    fn decode_octet(&mut self, octet: u8) -> [i16; 2] {
        self.synthesize(octet).map(|sample| saturate(sample) as i16)
    }

    /// Decodes both bands and recombines them: two 16 kHz samples, before the final limiting
    /// (an overloaded stream can overshoot the 16-bit range by a few dB).
    fn synthesize(&mut self, octet: u8) -> [i32; 2] {
        let low = self.decode_low(usize::from(octet & 0x3F));
        let high = self.decode_high(usize::from(octet >> 6));
        push_pair(&mut self.history, low + high, low - high);
        let (older, newer) = qmf_sums(&self.history);
        [newer >> 11, older >> 11]
    }

    fn decode_low(&mut self, code: usize) -> i32 {
        let band = &mut self.low;
        // INVQBL + RECONS + LIMIT: the output uses all six bits...
        let output_difference = (band.scale * LEVELS_6BIT_BY_CODE[code]) >> 15;
        let output = (band.estimate + output_difference).clamp(-16384, 16383);
        // ...while the predictor, as in the encoder, only sees the 4-bit core.
        let core = code >> 2;
        let difference = (band.scale * LEVELS_4BIT[core]) >> 15;
        band.adapt_scale(
            LOW_MULTIPLIERS[LOW_MULTIPLIER_INDEX[core]],
            LOW_LOG_CEILING,
            LOW_EXPONENT_OFFSET,
        );
        band.adapt_predictor(difference);
        output
    }

    fn decode_high(&mut self, code: usize) -> i32 {
        let band = &mut self.high;
        let difference = (band.scale * LEVELS_2BIT[code]) >> 15;
        let output = (band.estimate + difference).clamp(-16384, 16383);
        band.adapt_scale(
            HIGH_MULTIPLIERS[code],
            HIGH_LOG_CEILING,
            HIGH_EXPONENT_OFFSET,
        );
        band.adapt_predictor(difference);
        output
    }
}

impl Decoder for G722Decoder {
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        let start = out.len();
        out.reserve(payload.len() * 2);
        for &octet in payload {
            out.extend(self.decode_octet(octet));
        }
        self.concealer
            .remember(out.get(start..).unwrap_or_default());
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        self.concealer.conceal(samples, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic, integer-only 1 s test signal at 16 kHz (so every machine computes the same
    /// samples): a 400 Hz triangle plus noise, a 2.67 kHz square in the second half (exercising
    /// the higher band) and a clipping burst.
    fn test_signal() -> Vec<i16> {
        let mut seed: u32 = 12345;
        (0..16000u32)
            .map(|n| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let noise = ((seed >> 16) % 2001) as i32 - 1000;
                let phase = (n % 40) as i32;
                let triangle = if phase < 20 {
                    phase * 800 - 8000
                } else {
                    (40 - phase) * 800 - 8000
                };
                let square = match (n >= 8000, (n / 3) % 2 == 0) {
                    (false, _) => 0,
                    (true, true) => 3000,
                    (true, false) => -3000,
                };
                let mut value = triangle + noise + square;
                if (12000..13000).contains(&n) {
                    value *= 5;
                }
                value.clamp(-32768, 32767) as i16
            })
            .collect()
    }

    fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
        bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    fn encode_all(pcm: &[i16]) -> Vec<u8> {
        let mut encoder = G722Encoder::new();
        let mut out = Vec::new();
        encoder.encode(pcm, &mut out);
        out
    }

    fn decode_all(payload: &[u8]) -> Vec<i16> {
        let mut decoder = G722Decoder::new();
        let mut out = Vec::new();
        decoder.decode(payload, &mut out);
        out
    }

    // Reference values below come from Debian's libspandsp 0.0.6 (g722_encode/g722_decode at
    // 64000 bit/s, no options) run on the same signal.

    #[test]
    fn encoder_is_bit_exact_with_the_reference() {
        let encoded = encode_all(&test_signal());
        assert_eq!(encoded.len(), 8000);
        assert_eq!(encoded[..16], REFERENCE_FIRST_OCTETS, "first octets");
        assert_eq!(fnv1a(encoded.iter().copied()), REFERENCE_ENCODED_FNV);
    }

    /// Decodes like libspandsp 0.0.6, which truncates the synthesis output to 16 bits where we
    /// saturate: everything before that last step is compared bit for bit.
    fn decode_wrapping_like_the_reference(payload: &[u8]) -> Vec<i16> {
        let mut decoder = G722Decoder::new();
        payload
            .iter()
            .flat_map(|&octet| decoder.synthesize(octet))
            .map(|sample| sample as i16)
            .collect()
    }

    #[test]
    fn decoder_is_bit_exact_with_the_reference() {
        let encoded = encode_all(&test_signal());
        let decoded = decode_wrapping_like_the_reference(&encoded);
        assert_eq!(decoded.len(), 16000);
        assert_eq!(decoded[..12], REFERENCE_FIRST_DECODED, "first samples");
        assert_eq!(
            fnv1a(decoded.iter().flat_map(|s| s.to_le_bytes())),
            REFERENCE_DECODED_FNV
        );
    }

    #[test]
    fn decoder_handles_every_octet_like_the_reference() {
        // 4096 octets cycling through all 256 values with a stride that mixes high and low
        // codes, including the never-sent low codes 0..=3.
        let payload: Vec<u8> = (0..4096u32).map(|i| (i * 37 % 256) as u8).collect();
        let decoded = decode_wrapping_like_the_reference(&payload);
        assert_eq!(decoded.len(), 8192);
        assert_eq!(
            fnv1a(decoded.iter().flat_map(|s| s.to_le_bytes())),
            REFERENCE_GARBAGE_FNV
        );
        // Our decoder proper never panics on such input and clips instead of wrapping.
        assert_eq!(decode_all(&payload).len(), 8192);
    }

    #[test]
    fn overload_clips_instead_of_wrapping() {
        // The clipping burst of the test signal overshoots after decoding: with a 16-bit
        // truncation, full-scale peaks would flip sign; saturation keeps the sign.
        let signal = test_signal();
        let encoded = encode_all(&signal);
        let decoded = decode_all(&encoded);
        let wrapped = decode_wrapping_like_the_reference(&encoded);
        let overloaded: Vec<usize> = (0..decoded.len())
            .filter(|&i| decoded[i] != wrapped[i])
            .collect();
        assert!(
            !overloaded.is_empty(),
            "the burst should overload the decoder"
        );
        for i in overloaded {
            assert!(
                decoded[i] == i16::MAX || decoded[i] == i16::MIN,
                "sample {i}: {} vs wrapped {}",
                decoded[i],
                wrapped[i]
            );
            assert_ne!(decoded[i].signum(), wrapped[i].signum(), "sample {i}");
        }
    }

    const REFERENCE_FIRST_OCTETS: [u8; 16] = [
        0x30, 0x85, 0x21, 0x86, 0x22, 0x84, 0x04, 0xD3, 0x15, 0x9B, 0x3F, 0x38, 0x32, 0x30, 0xAC,
        0x2B,
    ];
    const REFERENCE_ENCODED_FNV: u64 = 0xfaf0_8e88_fd3f_d72f;
    const REFERENCE_FIRST_DECODED: [i16; 12] = [0, -1, -1, 0, 0, -1, -1, 4, 0, -15, 0, 52];
    const REFERENCE_DECODED_FNV: u64 = 0xd7d1_e234_cfaf_d764;
    const REFERENCE_GARBAGE_FNV: u64 = 0x3cb7_1d89_4f73_c9b8;

    #[test]
    fn streaming_in_odd_chunks_equals_one_shot() {
        let signal = test_signal();
        let one_shot = encode_all(&signal);
        let mut encoder = G722Encoder::new();
        let mut streamed = Vec::new();
        let mut rest = &signal[..];
        for size in [1, 1, 3, 0, 7, 160, 319, 1, 2].iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at((*size).min(rest.len()));
            encoder.encode(chunk, &mut streamed);
            rest = tail;
        }
        assert_eq!(streamed, one_shot);
    }

    /// Samples the QMF analysis and synthesis filters delay the signal by, together.
    const CODEC_DELAY: usize = 22;
    /// Samples skipped before measuring, while the adaptation settles (50 ms).
    const SETTLE: usize = 800;

    fn correlation(input: &[i16], output: &[i16], lag: usize) -> f64 {
        input[SETTLE..input.len() - 64]
            .iter()
            .zip(&output[SETTLE + lag..])
            .map(|(&x, &y)| f64::from(x) * f64::from(y))
            .sum()
    }

    /// SNR in dB of `output` against `input`, after removing the codec delay.
    fn aligned_snr(input: &[i16], output: &[i16]) -> f64 {
        let (signal, noise) = input[SETTLE..input.len() - 64]
            .iter()
            .zip(&output[SETTLE + CODEC_DELAY..])
            .fold((0.0, 0.0), |(signal, noise), (&x, &y)| {
                let error = f64::from(y) - f64::from(x);
                (signal + f64::from(x).powi(2), noise + error * error)
            });
        10.0 * (signal / noise).log10()
    }

    #[test]
    fn codec_delay_is_22_samples() {
        // A broadband signal has one clear correlation peak (a sine would have one per period).
        let input = test_signal();
        let output = decode_all(&encode_all(&input));
        let delay = (0..64)
            .max_by(|&a, &b| {
                correlation(&input, &output, a).total_cmp(&correlation(&input, &output, b))
            })
            .unwrap_or(0);
        assert_eq!(delay, CODEC_DELAY);
    }

    fn sine(frequency: f64, amplitude: f64, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|n| {
                let t = n as f64 / 16000.0;
                (amplitude * (2.0 * std::f64::consts::PI * frequency * t).sin()).round() as i16
            })
            .collect()
    }

    #[test]
    fn sine_1khz_survives_with_snr_above_40_db() {
        let input = sine(1000.0, 10000.0, 16000);
        let output = decode_all(&encode_all(&input));
        let snr = aligned_snr(&input, &output);
        println!("1 kHz SNR {snr:.1} dB");
        assert!(snr >= 40.0, "SNR {snr:.1} dB");
    }

    #[test]
    fn wideband_content_survives_too() {
        // 6 kHz only fits in the higher band: a narrowband codec would lose it entirely.
        let input = sine(6000.0, 8000.0, 16000);
        let output = decode_all(&encode_all(&input));
        let snr = aligned_snr(&input, &output);
        println!("6 kHz SNR {snr:.1} dB");
        assert!(snr >= 20.0, "SNR {snr:.1} dB");
    }

    #[test]
    fn silence_stays_quiet() {
        let output = decode_all(&encode_all(&[0; 16000]));
        let loudest = output.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        println!("silence peak {loudest}");
        assert!(loudest <= 4, "silence decoded to peaks of {loudest}");
    }

    #[test]
    fn concealment_fills_the_gap_at_16_khz() {
        let mut decoder = G722Decoder::new();
        let mut out = Vec::new();
        decoder.decode(&encode_all(&sine(1000.0, 10000.0, 320)), &mut out);
        let mut concealed = Vec::new();
        decoder.conceal(2000, &mut concealed);
        assert_eq!(concealed.len(), 2000);
        assert!(concealed[..100].iter().any(|s| s.unsigned_abs() > 1000));
        // 60 ms at 16 kHz is 960 samples: silence after that.
        assert!(concealed[960..].iter().all(|&s| s == 0));
    }

    #[test]
    #[ignore = "throughput figure; run with --release --ignored --nocapture"]
    fn throughput() {
        let signal = test_signal();
        let frames = signal.len() / 320;
        let rounds = 200;
        let start = std::time::Instant::now();
        let mut encoder = G722Encoder::new();
        let mut payload = Vec::new();
        for _ in 0..rounds {
            for frame in signal.chunks_exact(320) {
                payload.clear();
                encoder.encode(frame, &mut payload);
            }
        }
        let encode = (rounds * frames) as f64 / start.elapsed().as_secs_f64();
        let encoded = encode_all(&signal);
        let start = std::time::Instant::now();
        let mut decoder = G722Decoder::new();
        let mut pcm = Vec::new();
        for _ in 0..rounds {
            for frame in encoded.chunks_exact(160) {
                pcm.clear();
                decoder.decode(frame, &mut pcm);
            }
        }
        let decode = (rounds * frames) as f64 / start.elapsed().as_secs_f64();
        println!("G.722 20 ms frames/s: encode {encode:.0}, decode {decode:.0}");
    }
}
