//! Streaming sample-rate conversion between a sound card and a codec (rubato's band-limited
//! sinc resampler), with a fixed-size pull so the media task always gets whole frames.
//!
//! Sans-IO: samples in, samples out. Push what arrives, pull exactly what the next stage
//! needs; a pull that finds too little is padded with silence and counted.

use std::collections::VecDeque;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, FixedAsync, Resampler, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};

/// Sinc length: 64 taps keep the delay near 2 ms at telephone rates while still cutting
/// aliasing far below what G.711 itself adds.
const SINC_LEN: usize = 64;
/// Output primed with this much silence so that the ±1 sample a chunk's output wanders never
/// leaves a pull short.
const PRIME_MS: usize = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot resample from {from} Hz to {to} Hz: {reason}")]
pub struct ResampleError {
    from: u32,
    to: u32,
    reason: String,
}

/// One direction of conversion, mono, `from` Hz to `to` Hz, in chunks of `chunk_ms`.
pub struct StreamResampler {
    inner: Option<Async<f32>>,
    chunk: usize,
    pending: Vec<f32>,
    input: Vec<f32>,
    output: Vec<f32>,
    ready: VecDeque<i16>,
    padded: u64,
}

impl StreamResampler {
    pub fn new(from: u32, to: u32, chunk_ms: u32) -> Result<StreamResampler, ResampleError> {
        let fail = |reason: String| ResampleError { from, to, reason };
        if from == 0 || to == 0 {
            return Err(fail("a rate of 0 Hz".into()));
        }
        let chunk = (from as usize * chunk_ms.max(1) as usize / 1000).max(1);
        let prime = to as usize * PRIME_MS / 1000;
        if from == to {
            return Ok(StreamResampler {
                inner: None,
                chunk,
                pending: Vec::new(),
                input: Vec::new(),
                output: Vec::new(),
                ready: VecDeque::new(),
                padded: 0,
            });
        }
        let parameters =
            SincInterpolationParameters::new(SINC_LEN, WindowFunction::BlackmanHarris2)
                .oversampling_factor(128)
                .interpolation(SincInterpolationType::Cubic);
        let inner = Async::<f32>::new_sinc(
            f64::from(to) / f64::from(from),
            1.0,
            &parameters,
            chunk,
            1,
            FixedAsync::Input,
        )
        .map_err(|e| fail(e.to_string()))?;
        let output = vec![0.0; inner.output_frames_max()];
        let mut ready = VecDeque::with_capacity(prime + 2 * output.len());
        ready.extend(std::iter::repeat_n(0, prime));
        Ok(StreamResampler {
            inner: Some(inner),
            chunk,
            pending: Vec::with_capacity(2 * chunk),
            input: vec![0.0; chunk],
            output,
            ready,
            padded: 0,
        })
    }

    /// Feeds samples at the input rate; every full chunk is converted at once.
    pub fn push(&mut self, samples: &[i16]) {
        let Some(inner) = self.inner.as_mut() else {
            self.ready.extend(samples);
            return;
        };
        self.pending
            .extend(samples.iter().map(|&s| f32::from(s) / 32768.0));
        let output_len = self.output.len();
        while self.pending.len() >= self.chunk {
            self.input.clear();
            self.input.extend(self.pending.drain(..self.chunk));
            let (Ok(input), Ok(mut output)) = (
                InterleavedSlice::new(&self.input, 1, self.chunk),
                InterleavedSlice::new_mut(&mut self.output, 1, output_len),
            ) else {
                return;
            };
            let Ok((_, written)) = inner.process_into_buffer(&input, &mut output, None) else {
                return;
            };
            self.ready.extend(
                self.output
                    .iter()
                    .take(written)
                    .map(|&s| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16),
            );
        }
    }

    /// Samples ready to pull.
    pub fn available(&self) -> usize {
        self.ready.len()
    }

    /// Appends exactly `count` samples at the output rate to `out`, silence where there are
    /// not enough (counted in [`StreamResampler::padded`]).
    pub fn pull(&mut self, count: usize, out: &mut Vec<i16>) {
        let real = count.min(self.ready.len());
        out.extend(self.ready.drain(..real));
        let missing = count - real;
        if missing > 0 {
            out.extend(std::iter::repeat_n(0, missing));
            self.padded = self.padded.saturating_add(missing as u64);
        }
    }

    /// Silence samples [`StreamResampler::pull`] had to invent so far.
    pub fn padded(&self) -> u64 {
        self.padded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::tones::goertzel;

    fn sine(rate: u32, freq: f64, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|i| {
                (10000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    /// Streams one second through in 20 ms frames, as the media task does.
    fn stream(from: u32, to: u32, input: &[i16]) -> (Vec<i16>, u64) {
        let mut resampler = StreamResampler::new(from, to, 20).expect("resampler");
        let in_frame = from as usize / 50;
        let out_frame = to as usize / 50;
        let mut out = Vec::new();
        for frame in input.chunks(in_frame) {
            resampler.push(frame);
            resampler.pull(out_frame, &mut out);
        }
        (out, resampler.padded())
    }

    #[test]
    fn a_tone_keeps_its_pitch_across_every_rate_pair_without_gaps() {
        for (from, to) in [
            (48_000, 8_000),
            (8_000, 48_000),
            (44_100, 16_000),
            (16_000, 44_100),
            (48_000, 16_000),
            (16_000, 16_000),
        ] {
            let input = sine(from, 1000.0, from as usize * 2);
            let (out, padded) = stream(from, to, &input);
            assert_eq!(out.len(), to as usize * 2, "{from}->{to}");
            assert_eq!(padded, 0, "{from}->{to}: frames came out short");
            let tail = &out[out.len() / 2..];
            let at = goertzel(tail, to, 1000.0);
            let off = [700.0, 1300.0, 2000.0]
                .iter()
                .map(|&f| goertzel(tail, to, f))
                .fold(0.0, f64::max);
            assert!(at > 1000.0 * off, "{from}->{to}: {at} vs {off}");
            // Amplitude is kept: RMS of a 10000-peak sine is 7071.
            let rms = (tail.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / tail.len() as f64)
                .sqrt();
            assert!((6800.0..7300.0).contains(&rms), "{from}->{to}: RMS {rms}");
        }
    }

    #[test]
    fn downsampling_removes_what_the_codec_cannot_carry() {
        // 6 kHz cannot exist at 8 kHz: it must be filtered, not folded to 2 kHz.
        let input = sine(48_000, 6000.0, 48_000);
        let (out, _) = stream(48_000, 8_000, &input);
        let tail = &out[out.len() / 2..];
        let alias = goertzel(tail, 8000, 2000.0);
        let reference = goertzel(&sine(8000, 2000.0, tail.len()), 8000, 2000.0);
        assert!(alias < reference / 1000.0, "alias {alias} vs {reference}");
    }

    #[test]
    fn a_short_pull_is_padded_and_counted_and_zero_rates_are_refused() {
        let mut resampler = StreamResampler::new(8000, 16000, 20).expect("resampler");
        let mut out = Vec::new();
        resampler.pull(320, &mut out);
        assert_eq!(out.len(), 320);
        assert_eq!(
            resampler.padded(),
            320 - 16,
            "only the 1 ms priming was real"
        );
        assert!(StreamResampler::new(0, 8000, 20).is_err());
    }
}
