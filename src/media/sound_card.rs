//! Sound cards through cpal (ALSA on Linux): the microphone and speaker of a call.
//!
//! cpal calls us back on its own threads; those callbacks only convert samples and move them
//! through lock-free rings ([`super::ring`]): they never block, lock or allocate. Everything
//! else (resampling, mixing, pacing) happens in the media task's `read_frame`/`write_frame`.
//!
//! ALSA reports problems through `snd_lib_error`, which prints to stderr by default ("cannot
//! find card '0'", "Unknown PCM ..."): under the TUI that would scribble over the screen. Every
//! cpal call here runs with ALSA's thread-local error handler pointed at a buffer (the `alsa`
//! crate's safe `Output::local_error_handler`), and what lands there goes to the log.

use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample, StreamConfig};

use super::device::{AudioDevice, DeviceError};
use super::resample::StreamResampler;
use super::ring::{sample_ring, RingCounters, RingReader, RingWriter};

/// The rings hold this much audio: enough for a late media-task tick, and a bound on delay.
const RING_MS: usize = 200;
/// Capture older than this is dropped at the next read: the sound card's clock runs a little
/// faster than ours, and a call must not drift into seconds of delay.
const MAX_CAPTURE_BACKLOG_MS: usize = 60;
/// Playback starts with this much silence queued, so timer jitter in the media task does not
/// starve the first callbacks.
const PLAYBACK_PRIME_MS: usize = 30;
/// Playback queued above this is not added to (the card's clock is slower than ours).
const MAX_PLAYBACK_QUEUE_MS: usize = 100;
/// How long cpal may take to open a stream.
const OPEN_TIMEOUT: Duration = Duration::from_secs(2);

/// One device as `ringside devices` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The name to put in `[audio] device` (or `input` / `output`).
    pub name: String,
    /// cpal's stable id (`alsa:hw:CARD=...`), also accepted as a name.
    pub id: String,
    pub input: bool,
    pub output: bool,
    pub default_input: bool,
    pub default_output: bool,
    /// The device's preferred rate and channels, when it says.
    pub sample_rate: Option<u32>,
    pub channels: Option<u16>,
}

/// Which card to open for each direction: `None` is the system default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SoundCardChoice {
    pub input: Option<String>,
    pub output: Option<String>,
}

/// Runs `f` with ALSA's error messages caught, then logs them (never stderr).
fn quietly<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let catcher = alsa::Output::local_error_handler().ok();
    let result = f();
    if let Some(catcher) = catcher {
        let text = catcher.borrow().to_string();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            tracing::debug!(target: "ringside::alsa", during = what, "{line}");
        }
    }
    result
}

fn host_error(error: impl std::fmt::Display) -> DeviceError {
    DeviceError::SoundSystem {
        reason: error.to_string(),
    }
}

fn describe(device: &cpal::Device) -> (String, String) {
    let id = device.id().map(|id| id.to_string()).unwrap_or_default();
    let name = device
        .description()
        .map(|d| d.name().to_owned())
        .unwrap_or_else(|_| id.clone());
    (name, id)
}

/// Every input and output device the sound system knows, defaults marked.
pub fn list_devices() -> Result<Vec<DeviceInfo>, DeviceError> {
    quietly("listing devices", || {
        let host = cpal::default_host();
        let default_in = host.default_input_device().map(|d| describe(&d).1);
        let default_out = host.default_output_device().map(|d| describe(&d).1);
        let mut found: Vec<DeviceInfo> = Vec::new();
        for device in host.devices().map_err(host_error)? {
            let (name, id) = describe(&device);
            let input_config = device.default_input_config().ok();
            let output_config = device.default_output_config().ok();
            let config = output_config.as_ref().or(input_config.as_ref());
            found.push(DeviceInfo {
                default_input: default_in.as_deref() == Some(id.as_str()),
                default_output: default_out.as_deref() == Some(id.as_str()),
                input: input_config.is_some(),
                output: output_config.is_some(),
                sample_rate: config.map(|c| c.sample_rate()),
                channels: config.map(|c| c.channels()),
                name,
                id,
            });
        }
        Ok(found)
    })
}

/// The name matches the device's name or id exactly (case-insensitive), or the id without
/// its `alsa:` host prefix.
fn name_matches(wanted: &str, name: &str, id: &str) -> bool {
    let wanted = wanted.trim();
    wanted.eq_ignore_ascii_case(name)
        || wanted.eq_ignore_ascii_case(id)
        || id
            .split_once(':')
            .is_some_and(|(_, bare)| wanted.eq_ignore_ascii_case(bare))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Input,
    Output,
}

impl Direction {
    fn word(self) -> &'static str {
        match self {
            Direction::Input => "microphone",
            Direction::Output => "speaker",
        }
    }
}

fn find_device(
    host: &cpal::Host,
    wanted: Option<&str>,
    direction: Direction,
) -> Result<cpal::Device, DeviceError> {
    let Some(wanted) = wanted else {
        let default = match direction {
            Direction::Input => host.default_input_device(),
            Direction::Output => host.default_output_device(),
        };
        return default.ok_or(DeviceError::NoDefault {
            direction: direction.word(),
        });
    };
    let devices = host.devices().map_err(host_error)?;
    let mut names = Vec::new();
    for device in devices {
        let (name, id) = describe(&device);
        if name_matches(wanted, &name, &id) {
            return Ok(device);
        }
        names.push(name);
    }
    Err(DeviceError::NotFound {
        wanted: wanted.to_owned(),
        direction: direction.word(),
        known: names.join(", "),
    })
}

/// A sound card's microphone and speaker as one [`AudioDevice`] at the speaker's rate.
pub struct SoundCard {
    rate: u32,
    capture: RingReader,
    /// Converts the microphone to the speaker's rate when the two differ.
    capture_resampler: Option<StreamResampler>,
    capture_frame: Vec<i16>,
    playback: RingWriter,
    playback_primed: bool,
    /// Kept alive for the call: dropping a stream stops it.
    _streams: (cpal::Stream, cpal::Stream),
    capture_counters: RingCounters,
    playback_counters: RingCounters,
    capture_rate: u32,
}

impl SoundCard {
    /// Opens both directions and starts them. A missing or busy device is an error that says
    /// which and what to do; nothing here panics.
    pub fn open(choice: &SoundCardChoice) -> Result<SoundCard, DeviceError> {
        quietly("opening the sound card", || Self::open_loud(choice))
    }

    fn open_loud(choice: &SoundCardChoice) -> Result<SoundCard, DeviceError> {
        let host = cpal::default_host();
        let output_device = find_device(&host, choice.output.as_deref(), Direction::Output)?;
        let input_device = find_device(&host, choice.input.as_deref(), Direction::Input)?;
        let (output_name, _) = describe(&output_device);
        let (input_name, _) = describe(&input_device);
        let stream_error = |device: &str, direction: Direction| {
            let device = device.to_owned();
            move |error: cpal::Error| DeviceError::Stream {
                device: device.clone(),
                direction: direction.word(),
                reason: error.to_string(),
            }
        };

        let output_config = output_device
            .default_output_config()
            .map_err(stream_error(&output_name, Direction::Output))?;
        let rate = output_config.sample_rate();
        // The microphone at the speaker's rate if it can, else its own (resampled later).
        let input_config = input_device
            .supported_input_configs()
            .ok()
            .and_then(|ranges| {
                ranges
                    .filter(|r| (r.min_sample_rate()..=r.max_sample_rate()).contains(&rate))
                    .filter_map(|r| Some((format_preference(r.sample_format())?, r)))
                    .min_by_key(|(preference, r)| (*preference, r.channels()))
            })
            .map(|(_, r)| r.with_sample_rate(rate))
            .map_or_else(|| input_device.default_input_config(), Ok)
            .map_err(stream_error(&input_name, Direction::Input))?;
        let capture_rate = input_config.sample_rate();

        let ring_len = |rate: u32| rate as usize * RING_MS / 1000;
        let (capture_writer, capture) = sample_ring(ring_len(capture_rate));
        let (playback, playback_reader) = sample_ring(ring_len(rate));
        let capture_counters = capture.counters();
        let playback_counters = playback.counters();

        let input_stream = build_input(
            &input_device,
            input_config.sample_format(),
            input_config.config(),
            capture_writer,
        )
        .map_err(stream_error(&input_name, Direction::Input))?;
        let output_stream = build_output(
            &output_device,
            output_config.sample_format(),
            output_config.config(),
            playback_reader,
        )
        .map_err(stream_error(&output_name, Direction::Output))?;
        input_stream
            .play()
            .map_err(stream_error(&input_name, Direction::Input))?;
        output_stream
            .play()
            .map_err(stream_error(&output_name, Direction::Output))?;
        tracing::info!(
            input = %input_name, output = %output_name, rate, capture_rate,
            "sound card open"
        );
        let capture_resampler = if capture_rate == rate {
            None
        } else {
            Some(
                StreamResampler::new(capture_rate, rate, 20).map_err(|e| DeviceError::Stream {
                    device: input_name.clone(),
                    direction: Direction::Input.word(),
                    reason: e.to_string(),
                })?,
            )
        };
        Ok(SoundCard {
            rate,
            capture,
            capture_resampler,
            capture_frame: Vec::new(),
            playback,
            playback_primed: false,
            _streams: (input_stream, output_stream),
            capture_counters,
            playback_counters,
            capture_rate,
        })
    }

    /// Samples the capture callback had to drop (ring full or too old) and the playback
    /// callback had to invent (ring empty).
    pub fn dropouts(&self) -> (u64, u64) {
        (
            self.capture_counters.overruns(),
            self.playback_counters.underruns(),
        )
    }
}

/// The sample formats we take, best first (`None`: not at all).
fn format_preference(format: SampleFormat) -> Option<u8> {
    [
        SampleFormat::F32,
        SampleFormat::I16,
        SampleFormat::I32,
        SampleFormat::F64,
        SampleFormat::U16,
        SampleFormat::I8,
        SampleFormat::U8,
    ]
    .iter()
    .position(|&f| f == format)
    .and_then(|p| u8::try_from(p).ok())
}

/// Interleaved device samples to our mono i16: channels averaged.
fn build_input(
    device: &cpal::Device,
    format: SampleFormat,
    config: StreamConfig,
    writer: RingWriter,
) -> Result<cpal::Stream, cpal::Error> {
    match format {
        SampleFormat::F32 => input_stream::<f32>(device, config, writer),
        SampleFormat::I16 => input_stream::<i16>(device, config, writer),
        SampleFormat::I32 => input_stream::<i32>(device, config, writer),
        SampleFormat::U16 => input_stream::<u16>(device, config, writer),
        SampleFormat::U8 => input_stream::<u8>(device, config, writer),
        SampleFormat::I8 => input_stream::<i8>(device, config, writer),
        SampleFormat::F64 => input_stream::<f64>(device, config, writer),
        other => Err(unsupported(other)),
    }
}

fn build_output(
    device: &cpal::Device,
    format: SampleFormat,
    config: StreamConfig,
    reader: RingReader,
) -> Result<cpal::Stream, cpal::Error> {
    match format {
        SampleFormat::F32 => output_stream::<f32>(device, config, reader),
        SampleFormat::I16 => output_stream::<i16>(device, config, reader),
        SampleFormat::I32 => output_stream::<i32>(device, config, reader),
        SampleFormat::U16 => output_stream::<u16>(device, config, reader),
        SampleFormat::U8 => output_stream::<u8>(device, config, reader),
        SampleFormat::I8 => output_stream::<i8>(device, config, reader),
        SampleFormat::F64 => output_stream::<f64>(device, config, reader),
        other => Err(unsupported(other)),
    }
}

fn unsupported(format: SampleFormat) -> cpal::Error {
    cpal::Error::with_message(
        cpal::ErrorKind::UnsupportedConfig,
        format!("sample format {format} is not supported by ringside"),
    )
}

fn input_stream<T>(
    device: &cpal::Device,
    config: StreamConfig,
    mut writer: RingWriter,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + Send + 'static,
    f32: FromSample<T>,
{
    let channels = usize::from(config.channels.max(1));
    device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], _| {
            // Runs on cpal's thread: arithmetic and atomics only.
            writer.push(data.chunks(channels).map(|frame| {
                let sum: f32 = frame.iter().map(|&s| f32::from_sample_(s)).sum();
                let mono = sum / frame.len().max(1) as f32;
                (mono * 32767.0).clamp(-32768.0, 32767.0) as i16
            }));
        },
        |error| tracing::warn!(%error, "microphone stream error"),
        Some(OPEN_TIMEOUT),
    )
}

fn output_stream<T>(
    device: &cpal::Device,
    config: StreamConfig,
    mut reader: RingReader,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<f32> + Send + 'static,
{
    let channels = usize::from(config.channels.max(1));
    device.build_output_stream::<T, _, _>(
        config,
        move |data: &mut [T], _| {
            // Runs on cpal's thread: arithmetic and atomics only. One mono sample fills every
            // channel of its frame.
            let mut frames = data.chunks_mut(channels);
            let count = frames.len();
            reader.pop_each(count, |sample| {
                if let Some(frame) = frames.next() {
                    let value = T::from_sample_(f32::from(sample) / 32768.0);
                    frame.fill(value);
                }
            });
        },
        |error| tracing::warn!(%error, "speaker stream error"),
        Some(OPEN_TIMEOUT),
    )
}

impl AudioDevice for SoundCard {
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn read_frame(&mut self, frame: &mut [i16]) {
        let backlog = self.capture_rate as usize * MAX_CAPTURE_BACKLOG_MS / 1000;
        self.capture.discard_to(backlog.max(frame.len()));
        match self.capture_resampler.as_mut() {
            None => {
                self.capture.pop_into(frame);
            }
            Some(resampler) => {
                let wanted = frame.len() * self.capture_rate as usize / self.rate.max(1) as usize;
                self.capture_frame.clear();
                self.capture
                    .pop_each(wanted, |sample| self.capture_frame.push(sample));
                resampler.push(&self.capture_frame);
                self.capture_frame.clear();
                resampler.pull(frame.len(), &mut self.capture_frame);
                for (out, sample) in frame.iter_mut().zip(&self.capture_frame) {
                    *out = *sample;
                }
            }
        }
    }

    fn write_frame(&mut self, frame: &[i16]) {
        if !self.playback_primed {
            self.playback_primed = true;
            let prime = self.rate as usize * PLAYBACK_PRIME_MS / 1000;
            self.playback.push(std::iter::repeat_n(0, prime));
        }
        let limit = self.rate as usize * MAX_PLAYBACK_QUEUE_MS / 1000;
        if self.playback.len() + frame.len() > limit {
            // The card plays slower than we send: skip this frame rather than build delay.
            return;
        }
        self.playback.push(frame.iter().copied());
    }

    fn output_delay(&self) -> Duration {
        Duration::from_secs_f64(self.playback.len() as f64 / f64::from(self.rate.max(1)))
    }

    fn finish(&mut self) -> Result<(), DeviceError> {
        let (dropped, silent) = self.dropouts();
        if dropped > 0 || silent > 0 {
            tracing::info!(
                capture_dropped = dropped,
                playback_silence = silent,
                "sound card dropouts during the call (samples)"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_by_name_or_id() {
        assert!(name_matches(
            "USB Headset",
            "usb headset",
            "alsa:hw:CARD=H,DEV=0"
        ));
        assert!(name_matches(
            "hw:CARD=H,DEV=0",
            "USB Headset",
            "alsa:hw:CARD=H,DEV=0"
        ));
        assert!(name_matches(
            " alsa:hw:CARD=H,DEV=0 ",
            "x",
            "alsa:hw:CARD=H,DEV=0"
        ));
        assert!(!name_matches("USB", "USB Headset", "alsa:hw:CARD=H,DEV=0"));
    }

    /// This machine (and CI) has no sound card: opening must be a clear error, not a panic,
    /// and ALSA's complaints must not reach stderr (they go to the log).
    #[test]
    fn a_missing_card_is_an_error_that_says_what_to_do() {
        let named = SoundCard::open(&SoundCardChoice {
            input: Some("no such card 7f3a".into()),
            output: Some("no such card 7f3a".into()),
        });
        let text = named.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("no such card 7f3a") && text.contains("ringside devices"),
            "{text}"
        );
        if list_devices().map(|d| d.is_empty()).unwrap_or(true) {
            let default = SoundCard::open(&SoundCardChoice::default());
            let text = default.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(text.contains("[audio]"), "{text}");
        }
    }
}
