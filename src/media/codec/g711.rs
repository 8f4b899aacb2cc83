//! ITU-T G.711 μ-law (PCMU) and A-law (PCMA): 8 kHz, one byte per sample.
//!
//! Negative inputs follow the ITU-T G.191 reference (one's complement: `-1` codes like `0`), so
//! μ-law is symmetric: `encode(-x - 1) == encode(x) & 0x7F`. Sun's `g711.c`, and with it Python's
//! `audioop`, rounds the other way on negative μ-law inputs (for 508 of them, `-1` → `0x7E`);
//! A-law agrees everywhere. Decoding matches both.

use super::{Decoder, Encoder, FadeConcealer};

/// The two companding laws of G.711.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// μ-law, North America and Japan (RTP payload type 0, `PCMU`).
    Mu,
    /// A-law, the rest of the world (RTP payload type 8, `PCMA`).
    A,
}

/// μ-law adds this bias (in 14-bit units) so every segment starts at a power of two.
const MU_BIAS: i32 = 33;
/// Largest biased 14-bit μ-law magnitude (8159 + 33): louder input clips here.
const MU_MAX_BIASED: i32 = 0x1FFF;

/// Encodes one 16-bit linear sample as μ-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    // The top 14 bits carry the signal; G.711 works on their magnitude.
    let (magnitude, sign) = if sample < 0 {
        (i32::from(!sample) >> 2, 0x80)
    } else {
        (i32::from(sample) >> 2, 0x00)
    };
    let biased = (magnitude + MU_BIAS).min(MU_MAX_BIASED);
    // Segment 0 holds biased values 33..=63; each next segment doubles the span.
    let segment = 32 - (biased >> 6).leading_zeros() as i32;
    let step = (biased >> (segment + 1)) & 0x0F;
    let code = sign | (segment << 4) as u8 | step as u8;
    // Transmitted inverted, so that silence is not a run of zero bytes.
    !code
}

/// Decodes one μ-law byte to a 16-bit linear sample (±32124 at most).
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_TABLE[usize::from(code)]
}

/// Encodes one 16-bit linear sample as A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    // The top 12 bits carry the signal (13-bit A-law with the sign split off).
    let (magnitude, sign) = if sample < 0 {
        (i32::from(!sample) >> 4, 0x00)
    } else {
        (i32::from(sample) >> 4, 0x80)
    };
    // Segment 0 is linear (0..16); segment s >= 1 spans 16 << (s - 1) ..< 16 << s.
    let code = if magnitude < 16 {
        magnitude
    } else {
        let segment = 28 - magnitude.leading_zeros() as i32;
        (segment << 4) | ((magnitude >> (segment - 1)) & 0x0F)
    };
    // Even bits inverted, as G.711 transmits A-law.
    (sign | code as u8) ^ 0x55
}

/// Decodes one A-law byte to a 16-bit linear sample (±32256 at most).
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_TABLE[usize::from(code)]
}

const fn ulaw_expand(code: u8) -> i16 {
    let code = !code;
    let segment = ((code >> 4) & 0x07) as i32;
    let step = (code & 0x0F) as i32;
    // Middle of the quantization interval, with the bias (33 << 2 in 16-bit units) removed.
    let magnitude = (((step << 3) + 0x84) << segment) - 0x84;
    if code & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn alaw_expand(code: u8) -> i16 {
    let code = code ^ 0x55;
    let segment = ((code >> 4) & 0x07) as i32;
    let step = (code & 0x0F) as i32;
    let magnitude = if segment == 0 {
        (step << 4) + 8
    } else {
        ((step << 4) + 0x108) << (segment - 1)
    };
    if code & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn expand_table(law: Law) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = match law {
            Law::Mu => ulaw_expand(code as u8),
            Law::A => alaw_expand(code as u8),
        };
        code += 1;
    }
    table
}

static ULAW_TABLE: [i16; 256] = expand_table(Law::Mu);
static ALAW_TABLE: [i16; 256] = expand_table(Law::A);

/// G.711 encoder: stateless apart from the law.
#[derive(Debug, Clone)]
pub struct G711Encoder {
    law: Law,
}

impl G711Encoder {
    pub fn new(law: Law) -> G711Encoder {
        G711Encoder { law }
    }
}

impl Encoder for G711Encoder {
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        let compress = match self.law {
            Law::Mu => linear_to_ulaw,
            Law::A => linear_to_alaw,
        };
        out.extend(pcm.iter().map(|&sample| compress(sample)));
    }

    fn clock_rate(&self) -> u32 {
        8000
    }

    fn sample_rate(&self) -> u32 {
        8000
    }
}

/// G.711 decoder with fade-out concealment of lost packets.
#[derive(Debug, Clone)]
pub struct G711Decoder {
    table: &'static [i16; 256],
    concealer: FadeConcealer,
}

impl G711Decoder {
    pub fn new(law: Law) -> G711Decoder {
        let table = match law {
            Law::Mu => &ULAW_TABLE,
            Law::A => &ALAW_TABLE,
        };
        G711Decoder {
            table,
            concealer: FadeConcealer::new(8000),
        }
    }
}

impl Decoder for G711Decoder {
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        let start = out.len();
        out.extend(payload.iter().map(|&code| self.table[usize::from(code)]));
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

    /// (linear, μ-law, A-law). Generated with CPython 3.11's `audioop.lin2ulaw`/`lin2alaw`; the
    /// negative μ-law codes are the G.191 ones, `audioop(-x - 1) & 0x7F` (see the module doc).
    const VECTORS: &[(i16, u8, u8)] = &[
        (0, 0xFF, 0xD5),
        (1, 0xFF, 0xD5),
        (-1, 0x7F, 0x55),
        (2, 0xFF, 0xD5),
        (-2, 0x7F, 0x55),
        (3, 0xFF, 0xD5),
        (4, 0xFE, 0xD5),
        (-4, 0x7F, 0x55),
        (-5, 0x7E, 0x55),
        (7, 0xFE, 0xD5),
        (8, 0xFE, 0xD5),
        (-8, 0x7E, 0x55),
        (-9, 0x7E, 0x55),
        (15, 0xFD, 0xD5),
        (16, 0xFD, 0xD4),
        (31, 0xFB, 0xD4),
        (32, 0xFB, 0xD7),
        (-32, 0x7B, 0x54),
        (-33, 0x7B, 0x57),
        (100, 0xF2, 0xD3),
        (-100, 0x73, 0x53),
        (255, 0xE7, 0xDA),
        (256, 0xE7, 0xC5),
        (1000, 0xCE, 0xFA),
        (-1000, 0x4E, 0x7A),
        (4095, 0xAF, 0x9A),
        (4096, 0xAF, 0x85),
        (8031, 0xA0, 0x8A),
        (8032, 0xA0, 0x8A),
        (-8032, 0x20, 0x0A),
        (-8033, 0x20, 0x0A),
        (12345, 0x97, 0xBD),
        (-12345, 0x17, 0x3D),
        (30000, 0x82, 0xA8),
        (-30000, 0x02, 0x28),
        (32123, 0x80, 0xAA),
        (32124, 0x80, 0xAA),
        (32767, 0x80, 0xAA),
        (-32767, 0x00, 0x2A),
        (-32768, 0x00, 0x2A),
    ];

    /// 64-bit FNV-1a: a compact fingerprint of a whole table computed by the reference.
    fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
        bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    fn all_samples() -> impl Iterator<Item = i16> {
        i16::MIN..=i16::MAX
    }

    #[test]
    fn encoding_matches_reference_vectors() {
        for &(linear, ulaw, alaw) in VECTORS {
            assert_eq!(linear_to_ulaw(linear), ulaw, "μ-law of {linear}");
            assert_eq!(linear_to_alaw(linear), alaw, "A-law of {linear}");
        }
    }

    #[test]
    fn encoding_every_sample_matches_the_reference_fingerprint() {
        // FNV-1a over the codes of -32768..=32767, computed from audioop as described above.
        assert_eq!(
            fnv1a(all_samples().map(linear_to_ulaw)),
            0x04ec_1f08_3fd7_8c2d
        );
        assert_eq!(
            fnv1a(all_samples().map(linear_to_alaw)),
            0xf030_666e_b780_cf25
        );
    }

    #[test]
    fn decoding_matches_reference() {
        for (code, linear) in [
            (0x00, -32124),
            (0x01, -31100),
            (0x0F, -16764),
            (0x10, -15996),
            (0x7E, -8),
            (0x7F, 0),
            (0x80, 32124),
            (0x8F, 16764),
            (0xFE, 8),
            (0xFF, 0),
        ] {
            assert_eq!(ulaw_to_linear(code), linear, "μ-law {code:#04x}");
        }
        for (code, linear) in [
            (0x00, -5504),
            (0x2A, -32256),
            (0x55, -8),
            (0x54, -24),
            (0x80, 5504),
            (0xAA, 32256),
            (0xD5, 8),
            (0xD4, 24),
            (0xFF, 848),
        ] {
            assert_eq!(alaw_to_linear(code), linear, "A-law {code:#04x}");
        }
        // Fingerprints of the 256 decoded samples, little-endian, from audioop.ulaw2lin/alaw2lin.
        let bytes = |decode: fn(u8) -> i16| (0..=255u8).flat_map(move |c| decode(c).to_le_bytes());
        assert_eq!(fnv1a(bytes(ulaw_to_linear)), 0xb91e_65d6_8481_a1a8);
        assert_eq!(fnv1a(bytes(alaw_to_linear)), 0x693a_40ca_62a3_d2a5);
    }

    /// The width of the quantization interval a code stands for, in 16-bit units.
    fn step(law: Law, code: u8) -> i32 {
        match law {
            Law::Mu => 8 << ((!code >> 4) & 0x07),
            Law::A => 16 << (((code ^ 0x55) >> 4) & 0x07).saturating_sub(1),
        }
    }

    #[test]
    fn round_trip_stays_within_one_quantization_step_for_every_sample() {
        for (law, largest) in [(Law::Mu, 32124), (Law::A, 32256)] {
            let encode: fn(i16) -> u8 = match law {
                Law::Mu => linear_to_ulaw,
                Law::A => linear_to_alaw,
            };
            let decode: fn(u8) -> i16 = match law {
                Law::Mu => ulaw_to_linear,
                Law::A => alaw_to_linear,
            };
            let mut previous = i16::MIN;
            for sample in all_samples() {
                let code = encode(sample);
                let decoded = decode(code);
                let error = (i32::from(decoded) - i32::from(sample)).abs();
                let clipped = i32::from(sample).abs() > largest;
                let allowed = if clipped {
                    i32::from(sample).abs() - largest + step(law, code)
                } else {
                    step(law, code)
                };
                assert!(
                    error <= allowed,
                    "{law:?}: {sample} -> {code:#04x} -> {decoded}, error {error} > {allowed}"
                );
                // Companding never reorders samples.
                assert!(decoded >= previous, "{law:?}: not monotonic at {sample}");
                previous = decoded;
            }
        }
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for code in 0..=255u8 {
            assert_eq!(
                linear_to_alaw(alaw_to_linear(code)),
                code,
                "A-law {code:#04x}"
            );
            // μ-law has two zeros; the negative one (0x7F) comes back as the positive one.
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(
                linear_to_ulaw(ulaw_to_linear(code)),
                expected,
                "μ-law {code:#04x}"
            );
        }
    }

    #[test]
    fn negative_inputs_mirror_positive_ones() {
        for sample in 0..=i16::MAX {
            let mirror = -sample - 1;
            assert_eq!(
                linear_to_ulaw(mirror),
                linear_to_ulaw(sample) & 0x7F,
                "μ {sample}"
            );
            assert_eq!(
                linear_to_alaw(mirror),
                linear_to_alaw(sample) & 0x7F,
                "A {sample}"
            );
        }
    }

    #[test]
    fn codec_objects_append_and_conceal() {
        let mut encoder = G711Encoder::new(Law::A);
        let mut payload = vec![0xEE];
        encoder.encode(&[0, 1000, -1000], &mut payload);
        assert_eq!(payload, [0xEE, 0xD5, 0xFA, 0x7A]);

        let mut decoder = G711Decoder::new(Law::Mu);
        let mut pcm = vec![42];
        decoder.decode(&[0xFF, 0x80, 0x00], &mut pcm);
        assert_eq!(pcm, [42, 0, 32124, -32124]);
        // Concealment replays what was decoded (not what was already in `out`), fading.
        let mut concealed = Vec::new();
        decoder.conceal(4, &mut concealed);
        assert_eq!(concealed[0], 0);
        assert_eq!(concealed[1], (32124 * 479 / 480) as i16);
        assert_eq!(
            concealed[3], 0,
            "replay wrapped to the first decoded sample"
        );
        // Garbage and empty payloads decode without panicking.
        decoder.decode(&[], &mut pcm);
        let mut decoded = Vec::new();
        decoder.decode(&(0..=255).collect::<Vec<u8>>(), &mut decoded);
        assert_eq!(decoded.len(), 256);
    }

    #[test]
    #[ignore = "throughput figure; run with --release --ignored --nocapture"]
    fn throughput() {
        let frame: Vec<i16> = (0..160).map(|i| (i * 397 % 65536 - 32768) as i16).collect();
        let rounds = 200_000;
        for law in [Law::Mu, Law::A] {
            let mut encoder = G711Encoder::new(law);
            let mut decoder = G711Decoder::new(law);
            let mut payload = Vec::with_capacity(160);
            let mut pcm = Vec::with_capacity(160);
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                payload.clear();
                encoder.encode(std::hint::black_box(&frame), &mut payload);
            }
            let encode = f64::from(rounds) / start.elapsed().as_secs_f64();
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                pcm.clear();
                decoder.decode(std::hint::black_box(&payload), &mut pcm);
            }
            let decode = f64::from(rounds) / start.elapsed().as_secs_f64();
            println!("G.711 {law:?} 20 ms frames/s: encode {encode:.0}, decode {decode:.0}");
        }
    }
}
