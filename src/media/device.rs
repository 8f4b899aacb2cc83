//! Audio devices: where the microphone samples come from and where the far end's voice goes.
//! This is the only I/O in `media`; the media task calls it once per 20 ms frame, so every
//! device is paced by that clock (ALSA's `null` device is not, which is why `none` is ours).
//!
//! - `none`: silence in, nothing out — SSH supervisors and CI. RTP still flows, so the far
//!   end and the PBX see a normal call.
//! - `file`: microphone from a WAV file (looped), speaker to a WAV file — tests and scripted
//!   calls.
//!
//! - a sound card (cargo feature `sound-card`, [`super::sound_card`]): cpal, with lock-free
//!   rings between its callbacks and the media task.
//!
//! Devices work at their own sample rate; the media session resamples to the codec's rate.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// What failed when opening or using a device, with the path or name involved.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("cannot read the microphone file {path}: {reason}. Use a mono or stereo 16-bit PCM WAV file")]
    InputFile { path: PathBuf, reason: String },
    #[error("cannot write the speaker file {path}: {reason}")]
    OutputFile { path: PathBuf, reason: String },
    #[error("the sound system cannot be used: {reason}. Check that ALSA works (aplay -l), or set [audio] device = \"none\"")]
    SoundSystem { reason: String },
    #[error("no default {direction} sound card: run `ringside devices` to list the cards and name one in [audio], or set [audio] device = \"none\"")]
    NoDefault { direction: &'static str },
    #[error("no sound card named {wanted:?} for the {direction}; known: [{known}]. Run `ringside devices` and copy a name into [audio], or set [audio] device = \"none\"")]
    NotFound {
        wanted: String,
        direction: &'static str,
        known: String,
    },
    #[error("cannot open the {direction} on {device:?}: {reason}. Close other programs using it, pick another card (`ringside devices`), or set [audio] device = \"none\"")]
    Stream {
        device: String,
        direction: &'static str,
        reason: String,
    },
}

/// One audio endpoint as the media task sees it: fixed-size frames, never blocking.
pub trait AudioDevice: Send {
    /// The device's sample rate in Hz (mono samples per second).
    fn sample_rate(&self) -> u32;
    /// Fill `frame` with the next microphone samples (silence when there are none).
    fn read_frame(&mut self, frame: &mut [i16]);
    /// Play `frame` (the far end's voice, already decoded and mixed).
    fn write_frame(&mut self, frame: &[i16]);
    /// Audio written but not yet heard: what a sound card still has queued for its speaker.
    fn output_delay(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
    /// Flush what is buffered (files get their headers finished). Called when the call ends.
    fn finish(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }
}

/// No sound card: silence in, nothing out.
#[derive(Debug, Clone, Copy)]
pub struct NoDevice {
    rate: u32,
}

impl NoDevice {
    pub fn new(rate: u32) -> NoDevice {
        NoDevice { rate }
    }
}

impl AudioDevice for NoDevice {
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn read_frame(&mut self, frame: &mut [i16]) {
        frame.fill(0);
    }

    fn write_frame(&mut self, _frame: &[i16]) {}
}

/// Microphone from a WAV file, speaker to a WAV file (either side optional).
pub struct FileDevice {
    rate: u32,
    input: Vec<i16>,
    position: usize,
    output: Option<hound::WavWriter<BufWriter<File>>>,
    output_path: Option<PathBuf>,
    write_failed: bool,
}

impl FileDevice {
    /// `input`: a 16-bit PCM WAV (stereo is mixed to mono); played in a loop, so a short
    /// clip lasts the whole call. `output`: written at the input's rate (or `default_rate`).
    pub fn open(
        input: Option<&Path>,
        output: Option<&Path>,
        default_rate: u32,
    ) -> Result<FileDevice, DeviceError> {
        let (samples, rate) = match input {
            Some(path) => read_wav_mono(path)?,
            None => (Vec::new(), default_rate),
        };
        let writer = match output {
            Some(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| DeviceError::OutputFile {
                        path: path.to_path_buf(),
                        reason: e.to_string(),
                    })?;
                }
                let spec = hound::WavSpec {
                    channels: 1,
                    sample_rate: rate,
                    bits_per_sample: 16,
                    sample_format: hound::SampleFormat::Int,
                };
                Some(
                    hound::WavWriter::create(path, spec).map_err(|e| DeviceError::OutputFile {
                        path: path.to_path_buf(),
                        reason: e.to_string(),
                    })?,
                )
            }
            None => None,
        };
        Ok(FileDevice {
            rate,
            input: samples,
            position: 0,
            output: writer,
            output_path: output.map(Path::to_path_buf),
            write_failed: false,
        })
    }
}

fn read_wav_mono(path: &Path) -> Result<(Vec<i16>, u32), DeviceError> {
    let fail = |reason: String| DeviceError::InputFile {
        path: path.to_path_buf(),
        reason,
    };
    let mut reader = hound::WavReader::open(path).map_err(|e| fail(e.to_string()))?;
    let spec = reader.spec();
    if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
        return Err(fail(format!(
            "{}-bit {:?} samples",
            spec.bits_per_sample, spec.sample_format
        )));
    }
    if spec.channels == 0 || spec.sample_rate == 0 {
        return Err(fail("no channels or a zero sample rate".into()));
    }
    let channels = usize::from(spec.channels);
    let interleaved: Vec<i16> = reader
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .map_err(|e| fail(e.to_string()))?;
    let mono = interleaved
        .chunks(channels)
        .map(|c| (c.iter().map(|s| i32::from(*s)).sum::<i32>() / c.len() as i32) as i16)
        .collect();
    Ok((mono, spec.sample_rate))
}

impl AudioDevice for FileDevice {
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn read_frame(&mut self, frame: &mut [i16]) {
        if self.input.is_empty() {
            frame.fill(0);
            return;
        }
        for sample in frame.iter_mut() {
            *sample = self.input[self.position];
            self.position = (self.position + 1) % self.input.len();
        }
    }

    fn write_frame(&mut self, frame: &[i16]) {
        let Some(writer) = self.output.as_mut() else {
            return;
        };
        for sample in frame {
            if writer.write_sample(*sample).is_err() {
                // A full disk must not stop the call; say it once in the log.
                if !self.write_failed {
                    tracing::warn!(path = ?self.output_path, "cannot write the speaker file");
                    self.write_failed = true;
                }
                return;
            }
        }
    }

    fn finish(&mut self) -> Result<(), DeviceError> {
        match self.output.take() {
            Some(writer) => writer.finalize().map_err(|e| DeviceError::OutputFile {
                path: self.output_path.clone().unwrap_or_default(),
                reason: e.to_string(),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ringside-device-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    #[test]
    fn none_gives_silence() {
        let mut d = NoDevice::new(8000);
        let mut frame = [7i16; 160];
        d.read_frame(&mut frame);
        assert!(frame.iter().all(|s| *s == 0));
    }

    #[test]
    fn file_loops_its_input_and_records_its_output() {
        let dir = scratch("loop");
        let input = dir.join("in.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&input, spec).expect("create");
        for i in 0..100i16 {
            w.write_sample(i * 2).expect("l");
            w.write_sample(0).expect("r");
        }
        w.finalize().expect("finalize");
        let output = dir.join("out/rec.wav");
        let mut d = FileDevice::open(Some(&input), Some(&output), 8000).expect("open");
        assert_eq!(d.sample_rate(), 8000);
        let mut frame = [0i16; 160];
        d.read_frame(&mut frame);
        // Stereo mixed to mono (average), then looped after 100 samples.
        assert_eq!(frame[1], 1);
        assert_eq!(frame[99], 99);
        assert_eq!(frame[100], 0);
        assert_eq!(frame[101], 1);
        d.write_frame(&frame);
        d.finish().expect("finish");
        let r = hound::WavReader::open(&output).expect("reopen");
        assert_eq!(r.len(), 160);
    }

    #[test]
    fn a_bad_input_file_says_which_and_why() {
        let dir = scratch("bad");
        let path = dir.join("not.wav");
        std::fs::write(&path, b"hello").expect("write");
        let err = FileDevice::open(Some(&path), None, 8000)
            .err()
            .expect("error");
        let text = err.to_string();
        assert!(
            text.contains("not.wav") && text.contains("16-bit PCM WAV"),
            "{text}"
        );
    }
}
