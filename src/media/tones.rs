//! Call-progress and DTMF tones as PCM, sans-IO: the caller asks for samples, at any rate.
//!
//! | tone         | US (Precise Tone Plan)        | EU (common European 425 Hz plan)      |
//! | ------------ | ----------------------------- | ------------------------------------- |
//! | ringback     | 440+480 Hz, 2 s on, 4 s off   | 425 Hz, 1 s on, 4 s off               |
//! | ring (alert) | 440+480 Hz, 2 s on, 4 s off   | 425 Hz, 1 s on, 4 s off               |
//! | busy         | 480+620 Hz, 0.5 s on/0.5 s off| 425 Hz, 0.5 s on/0.5 s off            |
//! | congestion   | 480+620 Hz, 0.25 s/0.25 s     | 425 Hz, 0.2 s on/0.2 s off            |
//! | call waiting | 440 Hz, 0.3 s every 10 s      | 425 Hz, 0.2 on 0.2 off 0.2 on 4.4 off |
//! | DTMF         | row + column of the keypad, continuous (the caller times the key)     |
//!
//! The local alert uses the region's ringing cadence, as a wired phone's ringer follows it.
//! Bursts rise and fall over 1 ms inside their on-time, so cadence edges are exact in samples yet
//! do not click. [`goertzel`] measures the power of one frequency, for tests and tone detection.

use std::f64::consts::TAU;

/// Which national tone plan to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToneRegion {
    Us,
    Eu,
}

/// The tones a softphone plays locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// The far end is ringing.
    Ringback,
    /// An incoming call (local alert).
    Ring,
    Busy,
    /// Network congestion ("fast busy", reorder).
    Congestion,
    /// Another call arrived during this one.
    CallWaiting,
    /// Feedback for a pressed key: 0-9, *, #, A-D.
    Dtmf(char),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToneError {
    #[error("{0:?} is not a DTMF key: use 0-9, *, #, or A-D")]
    InvalidKey(char),
    #[error("a sample rate of {0} Hz is out of range: use 8000 to 192000 Hz")]
    InvalidSampleRate(u32),
}

/// What a tone is made of: its frequencies and its on/off cadence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TonePattern {
    /// One or two frequencies in Hz, each at its own amplitude (peak, 16-bit scale).
    pub components: &'static [(u32, i16)],
    /// (on ms, off ms) pairs repeated forever; empty means continuous.
    pub cadence: &'static [(u32, u32)],
}

/// Each component of a call-progress tone, about -13 dBm0 in μ-law terms (-16 dBFS).
const PROGRESS_LEVEL: i16 = 5200;
/// DTMF: the column (high) tone 2 dB above the row tone, as keypads transmit them ("twist").
const DTMF_ROW_LEVEL: i16 = 6000;
const DTMF_COLUMN_LEVEL: i16 = 7500;

pub const DTMF_ROWS: [u32; 4] = [697, 770, 852, 941];
pub const DTMF_COLUMNS: [u32; 4] = [1209, 1336, 1477, 1633];
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// The (row, column) frequencies of a DTMF key.
pub fn dtmf_frequencies(key: char) -> Option<(u32, u32)> {
    let key = key.to_ascii_uppercase();
    KEYPAD.iter().enumerate().find_map(|(row, keys)| {
        let column = keys.iter().position(|&k| k == key)?;
        Some((DTMF_ROWS[row], DTMF_COLUMNS[column]))
    })
}

const US_RINGING: TonePattern = TonePattern {
    components: &[(440, PROGRESS_LEVEL), (480, PROGRESS_LEVEL)],
    cadence: &[(2000, 4000)],
};
const EU_RINGING: TonePattern = TonePattern {
    components: &[(425, PROGRESS_LEVEL)],
    cadence: &[(1000, 4000)],
};

/// The frequencies and cadence of `tone` in `region`.
pub fn pattern(tone: Tone, region: ToneRegion) -> Result<TonePattern, ToneError> {
    use {Tone::*, ToneRegion::*};
    let pattern = match (tone, region) {
        (Ringback | Ring, Us) => US_RINGING,
        (Ringback | Ring, Eu) => EU_RINGING,
        (Busy, Us) => TonePattern {
            components: &[(480, PROGRESS_LEVEL), (620, PROGRESS_LEVEL)],
            cadence: &[(500, 500)],
        },
        (Busy, Eu) => TonePattern {
            components: &[(425, PROGRESS_LEVEL)],
            cadence: &[(500, 500)],
        },
        (Congestion, Us) => TonePattern {
            components: &[(480, PROGRESS_LEVEL), (620, PROGRESS_LEVEL)],
            cadence: &[(250, 250)],
        },
        (Congestion, Eu) => TonePattern {
            components: &[(425, PROGRESS_LEVEL)],
            cadence: &[(200, 200)],
        },
        (CallWaiting, Us) => TonePattern {
            components: &[(440, PROGRESS_LEVEL)],
            cadence: &[(300, 9700)],
        },
        (CallWaiting, Eu) => TonePattern {
            components: &[(425, PROGRESS_LEVEL)],
            cadence: &[(200, 200), (200, 4400)],
        },
        (Dtmf(key), _) => dtmf_pattern(key)?,
    };
    Ok(pattern)
}

fn dtmf_pattern(key: char) -> Result<TonePattern, ToneError> {
    // One static table per key keeps TonePattern free of allocation.
    const fn pair(row: u32, column: u32) -> [(u32, i16); 2] {
        [(row, DTMF_ROW_LEVEL), (column, DTMF_COLUMN_LEVEL)]
    }
    static PAIRS: [[[(u32, i16); 2]; 4]; 4] = {
        let mut table = [[[(0, 0); 2]; 4]; 4];
        let mut row = 0;
        while row < 4 {
            let mut column = 0;
            while column < 4 {
                table[row][column] = pair(DTMF_ROWS[row], DTMF_COLUMNS[column]);
                column += 1;
            }
            row += 1;
        }
        table
    };
    let upper = key.to_ascii_uppercase();
    let (row, column) = KEYPAD
        .iter()
        .enumerate()
        .find_map(|(row, keys)| Some((row, keys.iter().position(|&k| k == upper)?)))
        .ok_or(ToneError::InvalidKey(key))?;
    Ok(TonePattern {
        components: &PAIRS[row][column],
        cadence: &[],
    })
}

/// Generates a tone sample by sample, sans-IO: ask for as many samples as the next frame needs.
#[derive(Debug, Clone)]
pub struct ToneGenerator {
    pattern: TonePattern,
    sample_rate: u32,
    /// Cumulative segment ends of one cadence cycle, in samples: on-end, off-end, on-end, …
    edges: Vec<u64>,
    /// Samples generated so far.
    position: u64,
    ramp: u64,
}

impl ToneGenerator {
    pub fn new(
        tone: Tone,
        region: ToneRegion,
        sample_rate: u32,
    ) -> Result<ToneGenerator, ToneError> {
        if !(8000..=192_000).contains(&sample_rate) {
            return Err(ToneError::InvalidSampleRate(sample_rate));
        }
        let pattern = pattern(tone, region)?;
        // Edges come from cumulative milliseconds, so rounding never drifts across segments.
        let mut elapsed_ms = 0u64;
        let mut edges = Vec::with_capacity(pattern.cadence.len() * 2);
        for &(on, off) in pattern.cadence {
            for length in [on, off] {
                elapsed_ms += u64::from(length);
                edges.push(elapsed_ms * u64::from(sample_rate) / 1000);
            }
        }
        Ok(ToneGenerator {
            pattern,
            sample_rate,
            edges,
            position: 0,
            ramp: u64::from(sample_rate / 1000),
        })
    }

    pub fn pattern(&self) -> TonePattern {
        self.pattern
    }

    /// Appends the next `samples` samples to `out`.
    pub fn generate(&mut self, samples: usize, out: &mut Vec<i16>) {
        out.reserve(samples);
        for _ in 0..samples {
            out.push(self.next_sample());
        }
    }

    /// Overwrites `out` with the next `out.len()` samples.
    pub fn fill(&mut self, out: &mut [i16]) {
        for sample in out {
            *sample = self.next_sample();
        }
    }

    /// Restarts the cadence from the beginning of an on-burst.
    pub fn restart(&mut self) {
        self.position = 0;
    }

    fn next_sample(&mut self) -> i16 {
        let position = self.position;
        self.position += 1;
        let gain = self.gain_at(position);
        if gain == 0.0 {
            return 0;
        }
        // The phase is taken from the position within one second: exact for integer
        // frequencies, so long tones never drift or lose precision.
        let rate = u64::from(self.sample_rate);
        let t = (position % rate) as f64 / rate as f64;
        let value: f64 = self
            .pattern
            .components
            .iter()
            .map(|&(frequency, amplitude)| {
                f64::from(amplitude) * (TAU * f64::from(frequency) * t).cos()
            })
            .sum();
        (value * gain)
            .round()
            .clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
    }

    /// 0 in the off-time; 1 in the on-time except for the 1 ms rise and fall at its edges.
    fn gain_at(&self, position: u64) -> f64 {
        let Some(&cycle) = self.edges.last() else {
            return 1.0;
        };
        if cycle == 0 {
            return 0.0;
        }
        let offset = position % cycle;
        let mut start = 0;
        for pair in self.edges.chunks_exact(2) {
            let (on_end, off_end) = (pair[0], pair[1]);
            if offset < on_end {
                let from_edge = (offset - start + 1).min(on_end - offset);
                let steps = self.ramp + 1;
                return from_edge.min(steps) as f64 / steps as f64;
            }
            if offset < off_end {
                return 0.0;
            }
            start = off_end;
        }
        0.0
    }
}

/// The power of `frequency` in `samples`, by the Goertzel algorithm: for a sine of amplitude A
/// at that frequency it is A²/2 (the sine's mean square), so it compares directly with the mean
/// square of the whole block. Resolution is about `sample_rate / samples.len()` Hz.
pub fn goertzel(samples: &[i16], sample_rate: u32, frequency: f64) -> f64 {
    if samples.is_empty() || sample_rate == 0 {
        return 0.0;
    }
    let omega = TAU * frequency / f64::from(sample_rate);
    let coefficient = 2.0 * omega.cos();
    let (previous, before_previous) = samples.iter().fold((0.0, 0.0), |(s1, s2), &x| {
        (f64::from(x) + coefficient * s1 - s2, s1)
    });
    let magnitude_squared = previous * previous + before_previous * before_previous
        - coefficient * previous * before_previous;
    let n = samples.len() as f64;
    2.0 * magnitude_squared.max(0.0) / (n * n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGIONS: [ToneRegion; 2] = [ToneRegion::Us, ToneRegion::Eu];
    const PROGRESS_TONES: [Tone; 5] = [
        Tone::Ringback,
        Tone::Ring,
        Tone::Busy,
        Tone::Congestion,
        Tone::CallWaiting,
    ];

    fn generate(tone: Tone, region: ToneRegion, rate: u32, samples: usize) -> Vec<i16> {
        let mut generator = ToneGenerator::new(tone, region, rate).expect("valid tone");
        let mut out = Vec::new();
        generator.generate(samples, &mut out);
        out
    }

    fn mean_square(samples: &[i16]) -> f64 {
        samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64
    }

    #[test]
    fn goertzel_measures_a_known_sine() {
        let rate = 8000;
        let sine: Vec<i16> = (0..800)
            .map(|n| (10000.0 * (TAU * 1000.0 * f64::from(n) / 8000.0).sin()).round() as i16)
            .collect();
        let power = goertzel(&sine, rate, 1000.0);
        assert!((power / 50_000_000.0 - 1.0).abs() < 0.001, "{power}");
        assert!(goertzel(&sine, rate, 1100.0) < power * 1e-4);
        assert!(goertzel(&sine, rate, 2000.0) < power * 1e-4);
        assert_eq!(goertzel(&[0; 400], rate, 1000.0), 0.0);
        assert_eq!(goertzel(&[], rate, 1000.0), 0.0);
    }

    /// The frequencies of each tone carry its energy, and tones of the other plan do not appear.
    #[test]
    fn progress_tones_have_their_frequencies_and_no_others() {
        let candidates = [350.0, 400.0, 425.0, 440.0, 480.0, 620.0, 697.0, 1000.0];
        for region in REGIONS {
            for tone in PROGRESS_TONES {
                let pattern = pattern(tone, region).expect("defined");
                for rate in [8000, 16000, 48000] {
                    // The first 200 ms, inside the first burst of every tone. All frequencies
                    // here complete whole cycles in 200 ms, so they do not leak into each other.
                    let all = generate(tone, region, rate, rate as usize / 5);
                    let block = &all[..];
                    let total = mean_square(block);
                    for frequency in candidates {
                        let expected = pattern
                            .components
                            .iter()
                            .find(|&&(f, _)| f64::from(f) == frequency)
                            .map(|&(_, amplitude)| f64::from(amplitude).powi(2) / 2.0);
                        let power = goertzel(block, rate, frequency);
                        match expected {
                            Some(expected) => assert!(
                                (power / expected - 1.0).abs() < 0.02,
                                "{tone:?} {region:?} @{rate}: {frequency} Hz power {power}, expected {expected}"
                            ),
                            None => assert!(
                                power < total * 0.01,
                                "{tone:?} {region:?} @{rate}: stray {frequency} Hz ({power} of {total})"
                            ),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_dtmf_key_is_its_row_and_column() {
        let rate = 8000;
        for (row, keys) in KEYPAD.iter().enumerate() {
            for (column, &key) in keys.iter().enumerate() {
                // 40 ms: the minimum a DTMF receiver must accept (ITU-T Q.24).
                let block = generate(Tone::Dtmf(key), ToneRegion::Us, rate, 320);
                let mut powers: Vec<(f64, u32)> = DTMF_ROWS
                    .iter()
                    .chain(&DTMF_COLUMNS)
                    .map(|&f| (goertzel(&block, rate, f64::from(f)), f))
                    .collect();
                powers.sort_by(|a, b| b.0.total_cmp(&a.0));
                let mut strongest = [powers[0].1, powers[1].1];
                strongest.sort_unstable();
                assert_eq!(
                    strongest,
                    [DTMF_ROWS[row], DTMF_COLUMNS[column]],
                    "key {key}"
                );
                // The third strongest is at least 20 dB down.
                assert!(powers[2].0 < powers[1].0 / 100.0, "key {key}: {powers:?}");
            }
        }
        assert_eq!(dtmf_frequencies('5'), Some((770, 1336)));
        assert_eq!(dtmf_frequencies('d'), Some((941, 1633)));
        assert_eq!(dtmf_frequencies('x'), None);
        // Region does not matter for DTMF.
        assert_eq!(
            generate(Tone::Dtmf('7'), ToneRegion::Us, 8000, 100),
            generate(Tone::Dtmf('7'), ToneRegion::Eu, 8000, 100)
        );
    }

    /// Runs of on and off time, as (is_on, length in samples).
    fn runs(on: impl Iterator<Item = bool>) -> Vec<(bool, usize)> {
        let mut runs: Vec<(bool, usize)> = Vec::new();
        for on in on {
            match runs.last_mut() {
                Some((last, length)) if *last == on => *length += 1,
                _ => runs.push((on, 1)),
            }
        }
        runs
    }

    #[test]
    fn cadences_are_exact_in_samples() {
        // (tone, region, on/off lengths in ms over one cycle)
        let cases: &[(Tone, ToneRegion, &[u32])] = &[
            (Tone::Ringback, ToneRegion::Us, &[2000, 4000]),
            (Tone::Ringback, ToneRegion::Eu, &[1000, 4000]),
            (Tone::Ring, ToneRegion::Us, &[2000, 4000]),
            (Tone::Ring, ToneRegion::Eu, &[1000, 4000]),
            (Tone::Busy, ToneRegion::Us, &[500, 500]),
            (Tone::Busy, ToneRegion::Eu, &[500, 500]),
            (Tone::Congestion, ToneRegion::Us, &[250, 250]),
            (Tone::Congestion, ToneRegion::Eu, &[200, 200]),
            (Tone::CallWaiting, ToneRegion::Us, &[300, 9700]),
            (Tone::CallWaiting, ToneRegion::Eu, &[200, 200, 200, 4400]),
        ];
        for &(tone, region, lengths) in cases {
            for rate in [8000u32, 48000] {
                let in_samples = |ms: u32| (u64::from(ms) * u64::from(rate) / 1000) as usize;
                let cycle = in_samples(lengths.iter().sum());
                let generator = ToneGenerator::new(tone, region, rate).expect("valid tone");
                // One cycle and the first burst of the next: the cadence repeats.
                let span = cycle + in_samples(lengths[0]);
                let gate: Vec<bool> = (0..span as u64)
                    .map(|position| generator.gain_at(position) > 0.0)
                    .collect();
                let expected: Vec<(bool, usize)> = lengths
                    .iter()
                    .chain(&lengths[..1])
                    .enumerate()
                    .map(|(i, &ms)| (i % 2 == 0, in_samples(ms)))
                    .collect();
                assert_eq!(
                    runs(gate.iter().copied()),
                    expected,
                    "{tone:?} {region:?} @{rate}"
                );
                if rate != 8000 {
                    continue; // the audio check below is the same at every rate, and slow
                }
                // The audio follows the gate: silence is exact, every on millisecond has sound.
                let samples = generate(tone, region, rate, span);
                assert!(samples.iter().zip(&gate).all(|(&s, &on)| on || s == 0));
                let ms = rate as usize / 1000;
                for (block, gates) in samples.chunks_exact(ms).zip(gate.chunks_exact(ms)) {
                    if gates.iter().all(|&on| on) {
                        assert!(
                            block.iter().any(|&s| s.unsigned_abs() > 500),
                            "{tone:?} {region:?} @{rate}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn bursts_ramp_up_and_down_over_one_millisecond() {
        let samples = generate(Tone::Busy, ToneRegion::Us, 8000, 8000);
        // First sample: 1/9 of the peak (both cosines start at their crest).
        assert_eq!(
            samples[0],
            ((2.0 * f64::from(PROGRESS_LEVEL)) / 9.0).round() as i16
        );
        let peak = |range: std::ops::Range<usize>| {
            samples[range]
                .iter()
                .map(|s| s.unsigned_abs())
                .max()
                .unwrap_or(0)
        };
        let full = 2 * PROGRESS_LEVEL as u16;
        assert_eq!(peak(100..3900), full, "full level between the ramps");
        // The first and last four samples are at most 4/9 of full level.
        assert!(peak(0..4) <= full * 4 / 9 + 1);
        assert!(peak(3996..4000) <= full * 4 / 9 + 1);
        assert_eq!(peak(4000..8000), 0);
    }

    #[test]
    fn dtmf_tones_are_continuous() {
        let samples = generate(Tone::Dtmf('#'), ToneRegion::Eu, 8000, 8000);
        assert!(samples.chunks(8).all(|block| block.iter().any(|&s| s != 0)));
    }

    #[test]
    fn chunked_generation_equals_one_shot() {
        let one_shot = generate(Tone::CallWaiting, ToneRegion::Eu, 16000, 20000);
        let mut generator =
            ToneGenerator::new(Tone::CallWaiting, ToneRegion::Eu, 16000).expect("valid");
        let mut chunked = Vec::new();
        for size in [1, 159, 160, 3000, 7, 16673] {
            generator.generate(size, &mut chunked);
        }
        assert_eq!(chunked, one_shot);
        let mut buffer = [1i16; 320];
        generator.restart();
        generator.fill(&mut buffer);
        assert_eq!(buffer[..], one_shot[..320]);
    }

    #[test]
    fn invalid_requests_are_errors() {
        assert_eq!(
            ToneGenerator::new(Tone::Dtmf('e'), ToneRegion::Us, 8000).err(),
            Some(ToneError::InvalidKey('e'))
        );
        assert_eq!(
            ToneGenerator::new(Tone::Busy, ToneRegion::Us, 0).err(),
            Some(ToneError::InvalidSampleRate(0))
        );
    }
}
