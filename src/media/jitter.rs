//! Adaptive jitter buffer for voice, sans-IO.
//!
//! Packets go in with [`JitterBuffer::put`] as they arrive; the playout clock calls
//! [`JitterBuffer::pop`] once per frame period and gets exactly one [`Playout`] back. Time is a
//! `Duration` since any epoch the driver likes, so tests run faster than real time.
//!
//! All arithmetic is in RTP clock units (samples):
//! - Frames wait in a ring with one slot per frame period, starting at the next timestamp to
//!   play. The ring is the memory bound: a packet that does not fit is either the stream jumping
//!   to a new timeline (resync) or noise (counted and ignored).
//! - Every packet's transit time (arrival minus timestamp) is compared with the smallest transit
//!   of the last few seconds. That deviation goes into a histogram that forgets old packets; the
//!   target delay is a high percentile of it plus a margin, clamped to the configured range. The
//!   target follows increases at once and decreases slowly.
//! - The current delay is how long the frame leaving the buffer waited after the earliest moment
//!   it could have arrived. Below the target, `pop` conceals one extra frame ([`Playout::Insert`]);
//!   more than a frame above it, `pop` skips one frame period. Both are rate-limited. Clock skew
//!   between sender and receiver is a slow drift of the transit time, so the same mechanism keeps
//!   the buffer from growing or draining.
//! - A stream that goes quiet (hold, DTX, outage) is concealed briefly, then turns into
//!   [`Playout::Silence`]; its next packet starts playout again on its own timeline.

use std::time::Duration;

/// Percentile of the transit deviation that the target delay covers.
const DEVIATION_QUANTILE: f64 = 0.95;
/// Per-packet forgetting factor of the deviation histogram: about 500 packets (10 s at 20 ms)
/// of memory.
const HISTOGRAM_FORGET: f64 = 0.998;
/// Fraction of the gap closed per frame when the target shrinks (a time constant of ~2.5 s at
/// 20 ms frames), so one quiet second does not undo what a burst of jitter taught.
const TARGET_SHRINK_PER_FRAME: f64 = 1.0 / 128.0;
/// The target never shrinks on the strength of fewer observations than this.
const OBSERVATIONS_BEFORE_SHRINK: u32 = 50;
/// Adjustments look at the smallest delay of this many pops since the last adjustment, so a
/// playout timer that fires a few milliseconds early or late does not cause insert/skip churn;
/// it also caps growth at one inserted frame per this many frames.
const DELAY_WINDOW: usize = 4;
/// At most one skipped frame per this many frames: shrinking is never urgent.
const FRAMES_BETWEEN_SKIPS: u32 = 10;
/// This many late packets in a row mean the sender's timeline moved back (a pause without a
/// timestamp jump): start again from the packets that are arriving.
const LATE_PACKETS_BEFORE_RESYNC: u32 = 4;
/// Concealment with an empty buffer lasts this long before the stream counts as stalled.
const STALL_AFTER: Duration = Duration::from_millis(200);
/// Delays above this are clamped: nobody talks through a minute of latency.
const MAX_CONFIG_DELAY: Duration = Duration::from_secs(60);
/// The transit floor is the minimum over this many one-second buckets.
const FLOOR_BUCKETS: usize = 8;
const MIN_CAPACITY: usize = 16;
const MAX_CAPACITY: usize = 4096;
const MAX_HISTOGRAM_BINS: i64 = 1024;
/// Words of the duplicate-detection bitmap: 512 sequence numbers, about 10 s at 20 ms.
const SEQUENCE_WINDOW_WORDS: usize = 8;
const SEQUENCE_WINDOW: i64 = 64 * SEQUENCE_WINDOW_WORDS as i64;
/// Headroom for sample counts derived from `now`, so sums and differences cannot overflow.
const MAX_SAMPLES: i64 = 1 << 61;

/// How the buffer is sized and how far it may adapt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// RTP clock rate of the stream (8000 for G.711, 48000 for Opus).
    pub clock_rate: u32,
    /// Timestamp increment of one frame: 160 for 20 ms at 8 kHz. Must match the sender's
    /// packetization (SDP `ptime`).
    pub frame_samples: u32,
    /// The target delay never goes below this.
    pub min_delay: Duration,
    /// The target delay never goes above this; a buffer far above it catches up at once.
    pub max_delay: Duration,
    /// Delay between the first packet and the start of playout.
    pub initial_delay: Duration,
}

impl Default for JitterConfig {
    /// 20 ms frames on an 8 kHz clock (G.711, G.722), 20–300 ms of delay, starting at 60 ms.
    fn default() -> Self {
        Self {
            clock_rate: 8000,
            frame_samples: 160,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(300),
            initial_delay: Duration::from_millis(60),
        }
    }
}

/// A configuration that [`JitterBuffer::new`] would have to correct.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JitterConfigError {
    #[error("jitter buffer clock rate is 0: set it to the codec's RTP clock rate (8000 for G.711, 48000 for Opus)")]
    ZeroClockRate,
    #[error("jitter buffer frame size is 0 samples: set it to clock rate × ptime (160 for 20 ms at 8 kHz)")]
    ZeroFrameSamples,
    #[error("jitter buffer min delay {min:?} is above max delay {max:?}: lower min_delay or raise max_delay")]
    MinAboveMax { min: Duration, max: Duration },
    #[error("jitter buffer initial delay {initial:?} is outside {min:?}..={max:?}: pick a value in that range")]
    InitialOutOfRange {
        initial: Duration,
        min: Duration,
        max: Duration,
    },
    #[error("jitter buffer max delay {max:?} is above the 60 s limit: lower it")]
    MaxTooLarge { max: Duration },
}

impl JitterConfig {
    /// Checks the settings, for config loaders that want to reject nonsense rather than have
    /// [`JitterBuffer::new`] quietly clamp it.
    pub fn validate(&self) -> Result<(), JitterConfigError> {
        if self.clock_rate == 0 {
            return Err(JitterConfigError::ZeroClockRate);
        }
        if self.frame_samples == 0 {
            return Err(JitterConfigError::ZeroFrameSamples);
        }
        if self.max_delay > MAX_CONFIG_DELAY {
            return Err(JitterConfigError::MaxTooLarge {
                max: self.max_delay,
            });
        }
        if self.min_delay > self.max_delay {
            return Err(JitterConfigError::MinAboveMax {
                min: self.min_delay,
                max: self.max_delay,
            });
        }
        if self.initial_delay < self.min_delay || self.initial_delay > self.max_delay {
            return Err(JitterConfigError::InitialOutOfRange {
                initial: self.initial_delay,
                min: self.min_delay,
                max: self.max_delay,
            });
        }
        Ok(())
    }
}

/// What to play for one frame period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// The frame with this RTP timestamp: decode it.
    Frame { payload: Vec<u8>, timestamp: u32 },
    /// The frame with this timestamp was lost: the decoder conceals it (PLC). `next_payload` is
    /// the following frame when it is already here, so Opus can recover this one from its FEC.
    Missing {
        timestamp: u32,
        next_payload: Option<Vec<u8>>,
    },
    /// One extra frame of concealment that belongs to no timestamp, played to grow the delay
    /// (more jitter, or a sender clock slower than ours). Run the decoder's PLC; the stream does
    /// not advance.
    Insert,
    /// Nothing to play: not started yet, or the stream stalled (hold, DTX, outage). Play comfort
    /// silence; the next packet restarts playout.
    Silence,
}

/// Counters since [`JitterBuffer::new`] (kept across [`JitterBuffer::reset`]) and the current
/// delay figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets passed to `put`.
    pub received: u64,
    /// `Frame`s played.
    pub played: u64,
    /// `Missing` frames: lost or too late, concealed by the decoder.
    pub concealed: u64,
    /// `Insert` frames played to grow the delay.
    pub inserted: u64,
    /// Frame periods skipped to shrink the delay (each makes the timestamp jump one frame more).
    pub skipped: u64,
    /// Packets that arrived after their frame period was played or skipped.
    pub late: u64,
    /// Packets whose sequence number (or frame slot) had already been received.
    pub duplicates: u64,
    /// Packets that arrived after a packet with a higher sequence number.
    pub reordered: u64,
    /// Packets so far ahead of the stream, with an old sequence number, that they cannot be
    /// part of it.
    pub out_of_window: u64,
    /// Received frames thrown away unplayed: skipped, flushed by a resync or a reset.
    pub dropped: u64,
    /// Times playout restarted on a new timeline (stall, timestamp jump, run of late packets).
    pub resyncs: u64,
    /// Frames waiting in the buffer.
    pub buffered: usize,
    /// Delay of the last frame played after the earliest moment it could have arrived.
    pub current_delay: Duration,
    /// Delay the buffer is steering towards.
    pub target_delay: Duration,
    /// RFC 3550 interarrival jitter.
    pub jitter_estimate: Duration,
    /// The same in timestamp units, as an RTCP receiver report carries it.
    pub interarrival_jitter: u32,
}

/// An adaptive jitter buffer for one RTP stream (one SSRC).
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    config: JitterConfig,
    settings: Settings,
    phase: Phase,
    ring: Ring,
    /// Extended timestamp of the frame the next `pop` plays; the reference for unwrapping.
    next_timestamp: i64,
    sequences: SequenceWindow,
    floor: TransitFloor,
    histogram: DeviationHistogram,
    /// Target delay in samples; fractional so slow shrinking does not stall on rounding.
    target: f64,
    current_delay: i64,
    last_transit: Option<i64>,
    /// RFC 3550 jitter in samples.
    interarrival_jitter: f64,
    frames_since_adjust: u32,
    /// Delays measured at the last pops since the last adjustment (a ring of `DELAY_WINDOW`).
    recent_delays: [i64; DELAY_WINDOW],
    recent_count: usize,
    empty_concealments: u32,
    late_run: u32,
    stats: JitterStats,
}

/// The configuration in samples, with nonsense clamped away.
#[derive(Debug, Clone, Copy)]
struct Settings {
    clock_rate: u32,
    frame: i64,
    min_delay: i64,
    max_delay: i64,
    initial_delay: i64,
    capacity: usize,
    stall_frames: u32,
    margin: i64,
    bin_width: i64,
    bins: usize,
}

impl Settings {
    fn from_config(config: &JitterConfig) -> Self {
        let clock_rate = config.clock_rate.max(1);
        let frame = i64::from(config.frame_samples.max(1));
        let delay = |d: Duration| duration_to_samples(d.min(MAX_CONFIG_DELAY), clock_rate);
        let max_delay = delay(config.max_delay);
        let min_delay = delay(config.min_delay).min(max_delay);
        let initial_delay = delay(config.initial_delay).clamp(min_delay, max_delay);
        let frames_in_max = ceil_div(max_delay, frame).max(1);
        // Room for the deepest allowed buffer four times over: a burst after an outage must
        // fit before the catch-up trims it.
        let capacity = usize::try_from(frames_in_max.saturating_mul(4).saturating_add(8))
            .unwrap_or(MAX_CAPACITY)
            .clamp(MIN_CAPACITY, MAX_CAPACITY);
        let stall_frames = u32::try_from(
            ceil_div(duration_to_samples(STALL_AFTER, clock_rate), frame).clamp(1, 1000),
        )
        .unwrap_or(1);
        let bin_width = (frame / 8)
            .max(ceil_div(max_delay, MAX_HISTOGRAM_BINS - 2))
            .max(1);
        let bins = usize::try_from(max_delay / bin_width + 2).unwrap_or(2);
        Self {
            clock_rate,
            frame,
            min_delay,
            max_delay,
            initial_delay,
            capacity,
            stall_frames,
            margin: (frame / 4).max(1),
            bin_width,
            bins,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No packet yet.
    Idle,
    /// Packets are collecting; playout starts when `now` reaches `start_at` (samples).
    Buffering {
        start_at: i64,
    },
    Playing,
    /// The stream went quiet; the next packet starts a new timeline.
    Stalled,
}

impl JitterBuffer {
    /// A buffer for one stream. Settings out of range are clamped (see
    /// [`JitterConfig::validate`]).
    pub fn new(config: JitterConfig) -> Self {
        let settings = Settings::from_config(&config);
        Self {
            config,
            settings,
            phase: Phase::Idle,
            ring: Ring::new(settings.capacity),
            next_timestamp: 0,
            sequences: SequenceWindow::new(),
            floor: TransitFloor::new(i64::from(settings.clock_rate)),
            histogram: DeviationHistogram::new(settings.bin_width, settings.bins),
            target: settings.initial_delay as f64,
            current_delay: 0,
            last_transit: None,
            interarrival_jitter: 0.0,
            frames_since_adjust: 0,
            recent_delays: [0; DELAY_WINDOW],
            recent_count: 0,
            empty_concealments: 0,
            late_run: 0,
            stats: JitterStats::default(),
        }
    }

    /// The configuration as given (before clamping).
    pub fn config(&self) -> &JitterConfig {
        &self.config
    }

    /// Frames waiting in the buffer; never more than [`capacity`](Self::capacity).
    pub fn len(&self) -> usize {
        self.ring.len
    }

    pub fn is_empty(&self) -> bool {
        self.ring.len == 0
    }

    /// The most frames the buffer ever holds.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Takes one received RTP packet: its arrival time, sequence number, timestamp and encoded
    /// payload. Duplicates, late and stray packets are counted and dropped.
    pub fn put(&mut self, now: Duration, sequence: u16, timestamp: u32, payload: &[u8]) {
        self.stats.received += 1;
        let arrival = duration_to_samples(now, self.settings.clock_rate);
        let verdict = self.sequences.record(sequence);
        if verdict.duplicate {
            self.stats.duplicates += 1;
            return;
        }
        if verdict.reordered {
            self.stats.reordered += 1;
        }
        match self.phase {
            Phase::Idle => {
                self.start(arrival, timestamp, payload, self.settings.initial_delay);
                return;
            }
            Phase::Stalled => {
                self.resync(arrival, timestamp, payload);
                return;
            }
            Phase::Buffering { .. } | Phase::Playing => {}
        }
        let extended = self.extend_timestamp(timestamp);
        let frame = self.settings.frame;
        let capacity = i64::try_from(self.ring.capacity()).unwrap_or(i64::MAX);
        let mut slot = extended
            .saturating_sub(self.next_timestamp)
            .div_euclid(frame);
        if slot >= capacity {
            // A packet in sequence this far ahead means the sender's timestamps jumped.
            if verdict.newer {
                self.resync(arrival, timestamp, payload);
            } else {
                self.stats.out_of_window += 1;
            }
            return;
        }
        if slot < 0 {
            let behind = usize::try_from(slot.unsigned_abs()).unwrap_or(usize::MAX);
            if matches!(self.phase, Phase::Buffering { .. }) && self.ring.can_shift_back(behind) {
                // An earlier packet overtook the first one: start playout from it instead.
                self.ring.shift_back(behind);
                self.next_timestamp = self.next_timestamp.saturating_sub(slot.abs() * frame);
                slot = 0;
            } else if slot <= -capacity && verdict.newer {
                self.resync(arrival, timestamp, payload);
                return;
            } else {
                self.observe_transit(arrival, extended);
                self.late_run += 1;
                if self.late_run >= LATE_PACKETS_BEFORE_RESYNC {
                    self.resync(arrival, timestamp, payload);
                } else {
                    self.stats.late += 1;
                }
                return;
            }
        }
        self.observe_transit(arrival, extended);
        let stored = StoredFrame {
            timestamp,
            payload: payload.to_vec(),
        };
        if self.ring.insert(usize::try_from(slot).unwrap_or(0), stored) {
            self.late_run = 0;
        } else {
            // Same frame period, different sequence number: a sender that packetizes smaller
            // frames than configured, or a replay. Keep the first.
            self.stats.duplicates += 1;
        }
    }

    /// Called once per frame period by the playout clock: what to play now.
    pub fn pop(&mut self, now: Duration) -> Playout {
        let now_samples = duration_to_samples(now, self.settings.clock_rate);
        match self.phase {
            Phase::Idle | Phase::Stalled => return Playout::Silence,
            Phase::Buffering { start_at } => {
                if now_samples < start_at {
                    return Playout::Silence;
                }
                self.phase = Phase::Playing;
                self.adjusted();
                self.update_target();
                self.current_delay = self.measure_delay(now_samples);
                self.note_delay(self.current_delay);
                return self.emit_front();
            }
            Phase::Playing => {}
        }
        self.update_target();
        self.current_delay = self.measure_delay(now_samples);
        self.note_delay(self.current_delay);
        self.frames_since_adjust = self.frames_since_adjust.saturating_add(1);
        let target = self.target_samples();
        let frame = self.settings.frame;
        let low_delay = self.low_delay();
        if self.current_delay > self.settings.max_delay.saturating_add(frame) {
            // A burst after an outage: the old audio is worth less than the latency it costs.
            let capacity = i64::try_from(self.ring.capacity()).unwrap_or(i64::MAX);
            let excess_frames =
                (self.current_delay.saturating_sub(target) / frame).clamp(1, capacity);
            for _ in 0..excess_frames {
                self.skip_front();
            }
            self.current_delay = self.current_delay.saturating_sub(excess_frames * frame);
            self.adjusted();
        } else if let Some(low_delay) = low_delay {
            if low_delay < target {
                self.adjusted();
                self.stats.inserted += 1;
                return Playout::Insert;
            }
            // A quarter frame of hysteresis keeps a skip from being undone by the next insert.
            if low_delay >= target.saturating_add(frame + frame / 4)
                && self.frames_since_adjust >= FRAMES_BETWEEN_SKIPS
            {
                self.skip_front();
                self.current_delay = self.current_delay.saturating_sub(frame);
                self.adjusted();
            }
        }
        self.emit_front()
    }

    /// Counters and delay figures.
    pub fn stats(&self) -> JitterStats {
        let rate = self.settings.clock_rate;
        let jitter = self.interarrival_jitter.clamp(0.0, f64::from(u32::MAX)) as u32;
        JitterStats {
            buffered: self.ring.len,
            current_delay: samples_to_duration(self.current_delay, rate),
            target_delay: samples_to_duration(self.target_samples(), rate),
            jitter_estimate: samples_to_duration(i64::from(jitter), rate),
            interarrival_jitter: jitter,
            ..self.stats
        }
    }

    /// Forgets the stream (call it when the SSRC changes); the counters carry on.
    pub fn reset(&mut self) {
        self.stats.dropped += self.ring.clear() as u64;
        self.phase = Phase::Idle;
        self.next_timestamp = 0;
        self.sequences = SequenceWindow::new();
        self.floor.clear();
        self.histogram = DeviationHistogram::new(self.settings.bin_width, self.settings.bins);
        self.target = self.settings.initial_delay as f64;
        self.current_delay = 0;
        self.last_transit = None;
        self.interarrival_jitter = 0.0;
        self.adjusted();
        self.empty_concealments = 0;
        self.late_run = 0;
    }

    /// Starts a timeline at this packet: playout begins `delay` samples after its arrival.
    fn start(&mut self, arrival: i64, timestamp: u32, payload: &[u8], delay: i64) {
        self.stats.dropped += self.ring.clear() as u64;
        self.next_timestamp = i64::from(timestamp);
        self.floor.clear();
        self.last_transit = None;
        self.observe_transit(arrival, self.next_timestamp);
        let first = StoredFrame {
            timestamp,
            payload: payload.to_vec(),
        };
        self.ring.insert(0, first);
        self.phase = Phase::Buffering {
            start_at: arrival.saturating_add(delay),
        };
        self.adjusted();
        self.empty_concealments = 0;
        self.late_run = 0;
    }

    fn resync(&mut self, arrival: i64, timestamp: u32, payload: &[u8]) {
        self.stats.resyncs += 1;
        let delay = self.target_samples();
        self.start(arrival, timestamp, payload, delay);
    }

    /// Places a 32-bit timestamp on the extended timeline, within ±2³¹ of the playout point.
    fn extend_timestamp(&self, timestamp: u32) -> i64 {
        // Truncation is the point: the offset is taken modulo 2³².
        let reference = self.next_timestamp as u32;
        let offset = timestamp.wrapping_sub(reference) as i32;
        self.next_timestamp.saturating_add(i64::from(offset))
    }

    fn observe_transit(&mut self, arrival: i64, extended_timestamp: i64) {
        let transit = arrival.saturating_sub(extended_timestamp);
        self.floor.insert(arrival, transit);
        if let Some(floor) = self.floor.floor() {
            self.histogram.add(transit.saturating_sub(floor).max(0));
        }
        if let Some(previous) = self.last_transit {
            let difference = transit.saturating_sub(previous).unsigned_abs() as f64;
            self.interarrival_jitter += (difference - self.interarrival_jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    fn update_target(&mut self) {
        let Some(edge) = self.histogram.quantile_upper_edge(DEVIATION_QUANTILE) else {
            return;
        };
        let wanted = edge
            .saturating_add(self.settings.margin)
            .clamp(self.settings.min_delay, self.settings.max_delay) as f64;
        if wanted > self.target {
            self.target = wanted;
        } else if self.histogram.observations >= OBSERVATIONS_BEFORE_SHRINK {
            self.target += (wanted - self.target) * TARGET_SHRINK_PER_FRAME;
        }
    }

    fn target_samples(&self) -> i64 {
        // `as` saturates, and the target stays within the clamped delay range anyway.
        self.target.round() as i64
    }

    /// How long after its earliest possible arrival the next frame leaves the buffer.
    fn measure_delay(&self, now_samples: i64) -> i64 {
        match self.floor.floor() {
            Some(floor) => now_samples
                .saturating_sub(self.next_timestamp)
                .saturating_sub(floor),
            None => self.target_samples(),
        }
    }

    fn note_delay(&mut self, delay: i64) {
        if let Some(entry) = self.recent_delays.get_mut(self.recent_count % DELAY_WINDOW) {
            *entry = delay;
        }
        self.recent_count = self.recent_count.saturating_add(1);
    }

    /// The smallest recent delay, once there are enough pops since the last adjustment.
    fn low_delay(&self) -> Option<i64> {
        if self.recent_count < DELAY_WINDOW {
            return None;
        }
        self.recent_delays.iter().copied().min()
    }

    /// Starts a new observation period after the delay changed by a frame.
    fn adjusted(&mut self) {
        self.frames_since_adjust = 0;
        self.recent_count = 0;
    }

    fn skip_front(&mut self) {
        if self.ring.take_front().is_some() {
            self.stats.dropped += 1;
        }
        self.next_timestamp = self.next_timestamp.saturating_add(self.settings.frame);
        self.stats.skipped += 1;
    }

    fn emit_front(&mut self) -> Playout {
        // Truncation is the point: extended timestamps are congruent to RTP ones modulo 2³².
        let timestamp = self.next_timestamp as u32;
        let front = self.ring.take_front();
        self.next_timestamp = self.next_timestamp.saturating_add(self.settings.frame);
        if let Some(frame) = front {
            self.stats.played += 1;
            self.empty_concealments = 0;
            return Playout::Frame {
                payload: frame.payload,
                timestamp: frame.timestamp,
            };
        }
        if self.ring.len == 0 {
            self.empty_concealments += 1;
            if self.empty_concealments > self.settings.stall_frames {
                self.phase = Phase::Stalled;
                return Playout::Silence;
            }
        } else {
            self.empty_concealments = 0;
        }
        self.stats.concealed += 1;
        Playout::Missing {
            timestamp,
            next_payload: self.ring.front().map(|frame| frame.payload.clone()),
        }
    }
}

#[derive(Debug, Clone)]
struct StoredFrame {
    timestamp: u32,
    payload: Vec<u8>,
}

/// One slot per frame period; slot 0 (at `head`) is the next frame to play.
#[derive(Debug, Clone)]
struct Ring {
    slots: Vec<Option<StoredFrame>>,
    head: usize,
    len: usize,
}

impl Ring {
    fn new(capacity: usize) -> Self {
        Self {
            slots: (0..capacity.max(1)).map(|_| None).collect(),
            head: 0,
            len: 0,
        }
    }

    fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn index(&self, slot: usize) -> usize {
        (self.head + slot % self.capacity()) % self.capacity()
    }

    /// Stores a frame `slot` periods ahead; false if that period already holds one.
    fn insert(&mut self, slot: usize, frame: StoredFrame) -> bool {
        let index = self.index(slot);
        match self.slots.get_mut(index) {
            Some(entry @ None) => {
                *entry = Some(frame);
                self.len += 1;
                true
            }
            _ => false,
        }
    }

    fn front(&self) -> Option<&StoredFrame> {
        self.slots.get(self.head).and_then(Option::as_ref)
    }

    fn take_front(&mut self) -> Option<StoredFrame> {
        let taken = self.slots.get_mut(self.head).and_then(Option::take);
        if taken.is_some() {
            self.len -= 1;
        }
        self.head = (self.head + 1) % self.capacity();
        taken
    }

    /// Whether the ring can start `periods` earlier without losing a stored frame.
    fn can_shift_back(&self, periods: usize) -> bool {
        let capacity = self.capacity();
        periods < capacity
            && (capacity - periods..capacity).all(|slot| {
                self.slots
                    .get(self.index(slot))
                    .is_some_and(Option::is_none)
            })
    }

    fn shift_back(&mut self, periods: usize) {
        let capacity = self.capacity();
        self.head = (self.head + capacity - periods % capacity) % capacity;
    }

    /// Empties the ring; returns how many frames were in it.
    fn clear(&mut self) -> usize {
        let flushed = self.len;
        self.slots.iter_mut().for_each(|slot| *slot = None);
        self.head = 0;
        self.len = 0;
        flushed
    }
}

/// Recently seen sequence numbers, for duplicate and reordering detection.
#[derive(Debug, Clone)]
struct SequenceWindow {
    highest: Option<i64>,
    seen: [u64; SEQUENCE_WINDOW_WORDS],
}

struct SequenceVerdict {
    duplicate: bool,
    reordered: bool,
    /// Above every sequence number so far: the packet is the stream moving forward.
    newer: bool,
}

impl SequenceWindow {
    fn new() -> Self {
        Self {
            highest: None,
            seen: [0; SEQUENCE_WINDOW_WORDS],
        }
    }

    fn bit(extended: i64) -> (usize, u64) {
        let position = extended.rem_euclid(SEQUENCE_WINDOW);
        let word = usize::try_from(position / 64).unwrap_or(0);
        (word, 1u64 << (position % 64))
    }

    fn is_seen(&self, extended: i64) -> bool {
        let (word, mask) = Self::bit(extended);
        self.seen.get(word).is_some_and(|bits| bits & mask != 0)
    }

    fn set(&mut self, extended: i64, value: bool) {
        let (word, mask) = Self::bit(extended);
        if let Some(bits) = self.seen.get_mut(word) {
            if value {
                *bits |= mask;
            } else {
                *bits &= !mask;
            }
        }
    }

    fn record(&mut self, sequence: u16) -> SequenceVerdict {
        let Some(highest) = self.highest else {
            self.highest = Some(i64::from(sequence));
            self.set(i64::from(sequence), true);
            return SequenceVerdict {
                duplicate: false,
                reordered: false,
                newer: true,
            };
        };
        // Truncation is the point: sequence numbers compare modulo 2¹⁶.
        let offset = sequence.wrapping_sub(highest as u16) as i16;
        let extended = highest + i64::from(offset);
        if extended > highest {
            if extended - highest >= SEQUENCE_WINDOW {
                self.seen = [0; SEQUENCE_WINDOW_WORDS];
            } else {
                for forgotten in highest + 1..extended {
                    self.set(forgotten, false);
                }
            }
            self.set(extended, true);
            self.highest = Some(extended);
            return SequenceVerdict {
                duplicate: false,
                reordered: false,
                newer: true,
            };
        }
        let known = highest - extended < SEQUENCE_WINDOW;
        let duplicate = known && self.is_seen(extended);
        if known && !duplicate {
            self.set(extended, true);
        }
        SequenceVerdict {
            duplicate,
            reordered: !duplicate,
            newer: false,
        }
    }
}

/// Smallest transit time over the last few seconds, in one-second buckets of arrival time:
/// constant memory, and it follows a drifting clock with a lag of the window length.
#[derive(Debug, Clone)]
struct TransitFloor {
    bucket_len: i64,
    /// (bucket number, smallest transit in it)
    buckets: [Option<(i64, i64)>; FLOOR_BUCKETS],
    latest: Option<i64>,
}

impl TransitFloor {
    fn new(bucket_len: i64) -> Self {
        Self {
            bucket_len: bucket_len.max(1),
            buckets: [None; FLOOR_BUCKETS],
            latest: None,
        }
    }

    fn clear(&mut self) {
        self.buckets = [None; FLOOR_BUCKETS];
        self.latest = None;
    }

    fn insert(&mut self, arrival: i64, transit: i64) {
        let number = arrival.div_euclid(self.bucket_len);
        let index = usize::try_from(number.rem_euclid(FLOOR_BUCKETS as i64)).unwrap_or(0);
        if let Some(bucket) = self.buckets.get_mut(index) {
            match bucket {
                Some((stored, smallest)) if *stored == number => {
                    *smallest = (*smallest).min(transit);
                }
                Some((stored, _)) if *stored > number => {} // older than what the slot holds
                _ => *bucket = Some((number, transit)),
            }
        }
        self.latest = Some(self.latest.map_or(number, |latest| latest.max(number)));
    }

    fn floor(&self) -> Option<i64> {
        let latest = self.latest?;
        let oldest = latest.saturating_sub(FLOOR_BUCKETS as i64 - 1);
        self.buckets
            .iter()
            .flatten()
            .filter(|(number, _)| (oldest..=latest).contains(number))
            .map(|&(_, transit)| transit)
            .min()
    }
}

/// Histogram of transit deviations with exponential forgetting. Rather than decaying every bin
/// per packet, each new packet weighs a little more than the last; the weights are rescaled
/// before they overflow.
#[derive(Debug, Clone)]
struct DeviationHistogram {
    bin_width: i64,
    bins: Vec<f64>,
    weight: f64,
    total: f64,
    observations: u32,
}

impl DeviationHistogram {
    fn new(bin_width: i64, bins: usize) -> Self {
        Self {
            bin_width: bin_width.max(1),
            bins: vec![0.0; bins.max(1)],
            weight: 1.0,
            total: 0.0,
            observations: 0,
        }
    }

    fn add(&mut self, deviation: i64) {
        let last = self.bins.len() - 1;
        let index = usize::try_from(deviation / self.bin_width)
            .unwrap_or(0)
            .min(last);
        if let Some(bin) = self.bins.get_mut(index) {
            *bin += self.weight;
        }
        self.total += self.weight;
        self.weight /= HISTOGRAM_FORGET;
        if self.weight > 1e100 {
            let scale = self.weight;
            self.bins.iter_mut().for_each(|bin| *bin /= scale);
            self.total /= scale;
            self.weight = 1.0;
        }
        self.observations = self.observations.saturating_add(1);
    }

    /// Upper edge of the bin where the cumulative weight reaches `quantile`, in samples.
    fn quantile_upper_edge(&self, quantile: f64) -> Option<i64> {
        if self.total <= 0.0 {
            return None;
        }
        let threshold = self.total * quantile;
        let mut cumulative = 0.0;
        let mut edge = 0;
        for bin in &self.bins {
            edge += self.bin_width;
            cumulative += bin;
            if cumulative >= threshold {
                break;
            }
        }
        Some(edge)
    }
}

fn ceil_div(numerator: i64, denominator: i64) -> i64 {
    let denominator = denominator.max(1);
    numerator.max(0).saturating_add(denominator - 1) / denominator
}

fn duration_to_samples(duration: Duration, clock_rate: u32) -> i64 {
    let rate = u64::from(clock_rate);
    let whole = duration.as_secs().saturating_mul(rate);
    let fraction = u64::from(duration.subsec_nanos()) * rate / 1_000_000_000;
    i64::try_from(whole.saturating_add(fraction))
        .unwrap_or(MAX_SAMPLES)
        .min(MAX_SAMPLES)
}

fn samples_to_duration(samples: i64, clock_rate: u32) -> Duration {
    let samples = u64::try_from(samples.max(0)).unwrap_or(0);
    let rate = u64::from(clock_rate.max(1));
    Duration::from_secs(samples / rate)
        + Duration::from_nanos((samples % rate) * 1_000_000_000 / rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FRAME: u32 = 160;
    const PERIOD: Duration = Duration::from_millis(20);

    /// xorshift64: deterministic, seedable, and enough for a network simulation.
    struct XorShift(u64);

    impl XorShift {
        fn new(seed: u64) -> Self {
            Self(seed.max(1))
        }

        fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        /// Uniform in [0, 1).
        fn unit(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[derive(Clone, Copy)]
    struct Network {
        base_delay_ms: f64,
        jitter_ms: f64,
        loss: f64,
        duplicate: f64,
    }

    impl Network {
        fn perfect() -> Self {
            Self {
                base_delay_ms: 40.0,
                jitter_ms: 0.0,
                loss: 0.0,
                duplicate: 0.0,
            }
        }
    }

    #[derive(Clone, Copy)]
    struct Gap {
        after_frame: u32,
        seconds: f64,
        timestamps_jump: bool,
    }

    #[derive(Clone, Copy)]
    struct Sender {
        frames: u32,
        first_sequence: u16,
        first_timestamp: u32,
        /// Sender frame period over ours: 0.999 is a sender clock 0.1 % fast.
        period_ratio: f64,
        gap: Option<Gap>,
    }

    impl Sender {
        fn seconds(seconds: u32) -> Self {
            Self {
                frames: seconds * 50,
                first_sequence: 1000,
                first_timestamp: 50_000,
                period_ratio: 1.0,
                gap: None,
            }
        }
    }

    struct Packet {
        arrival: Duration,
        sequence: u16,
        timestamp: u32,
        index: u32,
    }

    struct Traffic {
        packets: Vec<Packet>,
        /// RTP timestamp of every frame the sender produced, by frame index.
        timestamps: Vec<u32>,
        lost: u64,
        duplicated: u64,
        first_after_gap: Option<Duration>,
    }

    fn transmit(sender: Sender, network: Network, seed: u64) -> Traffic {
        let mut rng = XorShift::new(seed);
        let mut traffic = Traffic {
            packets: Vec::new(),
            timestamps: Vec::new(),
            lost: 0,
            duplicated: 0,
            first_after_gap: None,
        };
        for index in 0..sender.frames {
            let mut send_time = f64::from(index) * 0.020 * sender.period_ratio;
            let mut timestamp = sender.first_timestamp.wrapping_add(index * FRAME);
            let after_gap = sender.gap.filter(|gap| index >= gap.after_frame);
            if let Some(gap) = after_gap {
                send_time += gap.seconds;
                if gap.timestamps_jump {
                    timestamp = timestamp.wrapping_add((gap.seconds * 8000.0) as u32);
                }
            }
            traffic.timestamps.push(timestamp);
            if rng.unit() < network.loss {
                traffic.lost += 1;
                continue;
            }
            let copies = if rng.unit() < network.duplicate { 2 } else { 1 };
            traffic.duplicated += copies - 1;
            for _ in 0..copies {
                let delay = network.base_delay_ms + network.jitter_ms * rng.unit();
                let arrival = Duration::from_secs_f64(send_time + delay / 1000.0);
                if after_gap.is_some() {
                    let first = traffic.first_after_gap.get_or_insert(arrival);
                    *first = (*first).min(arrival);
                }
                traffic.packets.push(Packet {
                    arrival,
                    sequence: sender.first_sequence.wrapping_add(index as u16),
                    timestamp,
                    index,
                });
            }
        }
        traffic.packets.sort_by_key(|packet| packet.arrival);
        traffic
    }

    #[derive(Debug, Clone, PartialEq)]
    enum Out {
        Frame { timestamp: u32, index: u32 },
        Missing { timestamp: u32, fec: bool },
        Insert,
        Silence,
    }

    struct Step {
        at: Duration,
        out: Out,
        stats: JitterStats,
    }

    /// Delivers every packet that has arrived by each pop, then pops; pops run on our clock
    /// every 20 ms from `first_pop`.
    fn play(
        config: JitterConfig,
        traffic: &Traffic,
        first_pop: Duration,
        pops: u32,
    ) -> (JitterBuffer, Vec<Step>) {
        let mut buffer = JitterBuffer::new(config);
        let mut steps = Vec::with_capacity(pops as usize);
        let mut next = 0;
        for pop in 0..pops {
            let at = first_pop + PERIOD * pop;
            while let Some(packet) = traffic.packets.get(next).filter(|p| p.arrival <= at) {
                let payload = packet.index.to_le_bytes();
                buffer.put(packet.arrival, packet.sequence, packet.timestamp, &payload);
                next += 1;
            }
            let out = match buffer.pop(at) {
                Playout::Frame { payload, timestamp } => {
                    let bytes: [u8; 4] = payload.as_slice().try_into().expect("4-byte payload");
                    Out::Frame {
                        timestamp,
                        index: u32::from_le_bytes(bytes),
                    }
                }
                Playout::Missing {
                    timestamp,
                    next_payload,
                } => Out::Missing {
                    timestamp,
                    fec: next_payload.is_some(),
                },
                Playout::Insert => Out::Insert,
                Playout::Silence => Out::Silence,
            };
            steps.push(Step {
                at,
                out,
                stats: buffer.stats(),
            });
        }
        (buffer, steps)
    }

    /// Timestamps strictly increase by one frame per pop, plus one frame per skip, except
    /// across a resync; every frame carries the payload its timestamp was sent with.
    fn assert_continuity(steps: &[Step], traffic: &Traffic) {
        let mut previous: Option<(u32, JitterStats)> = None;
        for step in steps {
            let timestamp = match step.out {
                Out::Frame { timestamp, index } => {
                    assert_eq!(
                        traffic.timestamps[index as usize], timestamp,
                        "payload/timestamp mix-up"
                    );
                    timestamp
                }
                Out::Missing { timestamp, .. } => timestamp,
                Out::Insert | Out::Silence => continue,
            };
            if let Some((last, stats)) = previous {
                if step.stats.resyncs == stats.resyncs {
                    let skips = (step.stats.skipped - stats.skipped) as u32;
                    assert_eq!(
                        timestamp.wrapping_sub(last),
                        FRAME * (1 + skips),
                        "discontinuity at {:?}",
                        step.at
                    );
                }
            }
            previous = Some((timestamp, step.stats));
        }
    }

    fn assert_no_silence_after_start(steps: &[Step]) {
        let start = steps
            .iter()
            .position(|step| matches!(step.out, Out::Frame { .. }))
            .expect("playout started");
        let silent = steps[start..]
            .iter()
            .filter(|step| step.out == Out::Silence)
            .count();
        assert_eq!(silent, 0, "silence after playout started");
    }

    /// Every packet handed in is played, thrown away (with a reason) or still waiting.
    fn assert_accounted(stats: &JitterStats) {
        assert_eq!(
            stats.received,
            stats.played
                + stats.dropped
                + stats.late
                + stats.duplicates
                + stats.out_of_window
                + stats.buffered as u64,
            "{stats:?}"
        );
    }

    fn ms(duration: Duration) -> f64 {
        duration.as_secs_f64() * 1000.0
    }

    fn count(steps: &[Step], wanted: fn(&Out) -> bool) -> usize {
        steps.iter().filter(|step| wanted(&step.out)).count()
    }

    #[test]
    fn perfect_network_conceals_nothing_and_settles_at_min_delay() {
        let sender = Sender::seconds(60);
        let traffic = transmit(sender, Network::perfect(), 1);
        let (_, steps) = play(
            JitterConfig::default(),
            &traffic,
            Duration::from_millis(7),
            sender.frames,
        );
        let last = steps.last().expect("steps").stats;
        println!("perfect: {last:?}");
        assert_eq!(last.concealed, 0);
        assert_eq!(last.late, 0);
        assert_eq!(last.inserted, 0);
        assert_eq!(last.target_delay, Duration::from_millis(20));
        assert!(ms(last.current_delay) < 45.0, "{last:?}");
        // The only frames not played are the one or two skipped to come down from 60 ms.
        assert!(
            last.skipped <= 2 && last.dropped == last.skipped,
            "{last:?}"
        );
        assert_continuity(&steps, &traffic);
        assert_no_silence_after_start(&steps);
        assert_accounted(&last);
    }

    #[test]
    fn five_percent_loss_is_concealed_frame_for_frame() {
        let sender = Sender::seconds(120);
        let network = Network {
            loss: 0.05,
            ..Network::perfect()
        };
        let traffic = transmit(sender, network, 7);
        let (_, steps) = play(
            JitterConfig::default(),
            &traffic,
            Duration::from_millis(7),
            sender.frames,
        );
        let last = steps.last().expect("steps").stats;
        let concealed = last.concealed as f64 / f64::from(sender.frames);
        let with_fec = count(&steps, |out| matches!(out, Out::Missing { fec: true, .. }));
        println!(
            "5% loss: lost {} ({:.2} %), concealed {} ({:.2} %), next payload for FEC {with_fec}, {last:?}",
            traffic.lost,
            traffic.lost as f64 * 100.0 / f64::from(sender.frames),
            last.concealed,
            concealed * 100.0
        );
        assert!((0.04..0.06).contains(&concealed), "{concealed}");
        // A loss is concealed unless a skip happened to land on it, or it is still ahead.
        assert!(last.concealed <= traffic.lost);
        assert!(
            traffic.lost - last.concealed <= last.skipped + 3,
            "{last:?}"
        );
        assert_eq!(last.late, 0);
        assert_eq!(last.target_delay, Duration::from_millis(20));
        assert_continuity(&steps, &traffic);
        assert_no_silence_after_start(&steps);
        assert_accounted(&last);
    }

    #[test]
    fn jitter_reordering_and_duplicates_cause_no_late_drops_after_adaptation() {
        let sender = Sender::seconds(120);
        let network = Network {
            jitter_ms: 30.0,
            duplicate: 0.01,
            ..Network::perfect()
        };
        let traffic = transmit(sender, network, 42);
        let (_, steps) = play(
            JitterConfig::default(),
            &traffic,
            Duration::from_millis(3),
            sender.frames,
        );
        let last = steps.last().expect("steps").stats;
        let adapted = steps[500].stats; // 10 s in
        println!("30 ms jitter: after 10 s {adapted:?}");
        println!("30 ms jitter: at the end {last:?}");
        assert_eq!(last.late, adapted.late, "late packets after adaptation");
        assert_eq!(
            last.concealed, adapted.concealed,
            "concealment after adaptation"
        );
        assert_eq!(last.duplicates, traffic.duplicated);
        assert!(last.reordered > 100, "{last:?}");
        assert!((30.0..45.0).contains(&ms(last.target_delay)), "{last:?}");
        assert!(
            ms(last.current_delay) < ms(last.target_delay) + 25.0,
            "{last:?}"
        );
        assert_eq!(last.resyncs, 0);
        assert_continuity(&steps, &traffic);
        assert_no_silence_after_start(&steps);
        assert_accounted(&last);
    }

    fn run_skew(period_ratio: f64) -> (JitterStats, f64, f64) {
        let sender = Sender {
            period_ratio,
            ..Sender::seconds(600)
        };
        let network = Network {
            jitter_ms: 10.0,
            ..Network::perfect()
        };
        let traffic = transmit(sender, network, 99);
        // Stop before a fast sender's last packet: it finished 0.6 s early.
        let (_, steps) = play(
            JitterConfig::default(),
            &traffic,
            Duration::from_millis(11),
            sender.frames - 50,
        );
        let settled = &steps[500..];
        let highest = settled
            .iter()
            .map(|s| ms(s.stats.current_delay))
            .fold(0.0, f64::max);
        let deepest = settled.iter().map(|s| s.stats.buffered).max().unwrap_or(0);
        let last = steps.last().expect("steps").stats;
        assert_continuity(&steps, &traffic);
        assert_no_silence_after_start(&steps);
        assert_accounted(&last);
        (last, highest, deepest as f64)
    }

    #[test]
    fn sender_clock_skew_neither_grows_nor_drains_the_buffer() {
        for (ratio, name) in [(0.999, "fast"), (1.001, "slow")] {
            let (last, highest, deepest) = run_skew(ratio);
            println!("skew {name}: max delay {highest:.1} ms, max buffered {deepest}, {last:?}");
            assert_eq!(last.concealed, 0, "{name}");
            assert_eq!(last.late, 0, "{name}");
            assert!(highest < 70.0, "{name}: {highest}");
            assert!(deepest <= 5.0, "{name}: {deepest}");
            // 0.1 % of 30 000 frames is 30 frames to absorb.
            let (expected, other) = if ratio < 1.0 {
                (last.skipped, last.inserted)
            } else {
                (last.inserted, last.skipped)
            };
            assert!((25..=45).contains(&expected), "{name}: {last:?}");
            assert!(other <= 10, "{name}: {last:?}");
        }
    }

    #[test]
    fn timestamps_and_sequence_numbers_wrap_mid_stream() {
        let sender = Sender {
            first_sequence: u16::MAX - 100,
            first_timestamp: u32::MAX - FRAME * 250 + 1,
            ..Sender::seconds(30)
        };
        let network = Network {
            jitter_ms: 20.0,
            loss: 0.01,
            ..Network::perfect()
        };
        let traffic = transmit(sender, network, 5);
        let (_, steps) = play(
            JitterConfig::default(),
            &traffic,
            Duration::from_millis(13),
            sender.frames,
        );
        let last = steps.last().expect("steps").stats;
        println!("wrap: {last:?}");
        assert_eq!(last.resyncs, 0);
        assert_eq!(last.late, 0);
        assert_eq!(last.out_of_window, 0);
        assert_eq!(last.duplicates, 0);
        let wrapped = steps
            .iter()
            .any(|step| matches!(step.out, Out::Frame { timestamp, .. } if timestamp < FRAME * 10));
        assert!(wrapped, "the run crossed the timestamp wrap");
        assert_continuity(&steps, &traffic);
        assert_no_silence_after_start(&steps);
        assert_accounted(&last);
    }

    fn run_hold(timestamps_jump: bool) {
        let sender = Sender {
            gap: Some(Gap {
                after_frame: 500,
                seconds: 10.0,
                timestamps_jump,
            }),
            ..Sender::seconds(30)
        };
        let traffic = transmit(sender, Network::perfect(), 3);
        let (_, steps) = play(
            JitterConfig::default(),
            &traffic,
            Duration::from_millis(7),
            sender.frames + 500,
        );
        let last = steps.last().expect("steps").stats;
        let resumed = traffic.first_after_gap.expect("packets after the gap");
        let gap = steps
            .iter()
            .filter(|step| step.at < resumed && step.at > Duration::from_secs(10));
        let concealed_in_gap = gap
            .filter(|step| matches!(step.out, Out::Missing { .. }))
            .count();
        let first_frame = steps
            .iter()
            .position(|step| step.at >= resumed && matches!(step.out, Out::Frame { .. }))
            .expect("playout resumed");
        let waited = steps[..first_frame]
            .iter()
            .filter(|step| step.at >= resumed)
            .count();
        println!(
            "hold (timestamps jump: {timestamps_jump}): concealed in gap {concealed_in_gap}, first frame {} pops after the first packet, {last:?}",
            waited + 1
        );
        assert!(concealed_in_gap <= 11, "{concealed_in_gap}");
        assert!(waited <= 3, "{waited}");
        assert_eq!(last.resyncs, 1);
        assert_eq!(last.late, 0);
        assert_continuity(&steps, &traffic);
        assert_accounted(&last);
        // After the resync, playout is continuous again.
        assert_no_silence_after_start(&steps[first_frame..sender.frames as usize]);
    }

    #[test]
    fn hold_with_timestamp_jump_resyncs_quickly() {
        run_hold(true);
    }

    #[test]
    fn hold_without_timestamp_jump_resyncs_quickly() {
        run_hold(false);
    }

    #[test]
    fn short_pause_without_timestamp_jump_resyncs_after_a_few_late_packets() {
        let sender = Sender {
            gap: Some(Gap {
                after_frame: 250,
                seconds: 0.12,
                timestamps_jump: false,
            }),
            ..Sender::seconds(20)
        };
        let traffic = transmit(sender, Network::perfect(), 3);
        let (_, steps) = play(
            JitterConfig::default(),
            &traffic,
            Duration::from_millis(7),
            sender.frames,
        );
        let last = steps.last().expect("steps").stats;
        println!("short pause: {last:?}");
        assert_eq!(last.resyncs, 1);
        assert_eq!(last.late, u64::from(LATE_PACKETS_BEFORE_RESYNC - 1));
        assert_continuity(&steps, &traffic);
        assert_accounted(&last);
        let tail = &steps[400..];
        assert!(tail
            .iter()
            .all(|step| matches!(step.out, Out::Frame { .. } | Out::Insert)));
    }

    #[test]
    fn a_playout_timer_that_fires_early_or_late_causes_little_adjustment() {
        let sender = Sender::seconds(120);
        let network = Network {
            jitter_ms: 10.0,
            ..Network::perfect()
        };
        let traffic = transmit(sender, network, 8);
        let mut buffer = JitterBuffer::new(JitterConfig::default());
        let mut rng = XorShift::new(77);
        let mut next = 0;
        for pop in 0..sender.frames {
            // The driver's timer fires up to 8 ms late.
            let at = PERIOD * pop + Duration::from_micros(rng.next_u64() % 8000);
            while let Some(packet) = traffic.packets.get(next).filter(|p| p.arrival <= at) {
                buffer.put(packet.arrival, packet.sequence, packet.timestamp, b"x");
                next += 1;
            }
            let _ = buffer.pop(at);
        }
        let stats = buffer.stats();
        println!("timer jitter: {stats:?}");
        assert_eq!((stats.late, stats.concealed), (0, 0));
        assert!(stats.inserted + stats.skipped <= 15, "{stats:?}");
    }

    #[test]
    fn target_grows_fast_when_jitter_rises_and_shrinks_slowly_after() {
        // 30 s clean, 30 s of 80 ms uniform jitter, 60 s clean.
        let sender = Sender::seconds(120);
        let clean = transmit(sender, Network::perfect(), 1);
        let jittery = transmit(
            sender,
            Network {
                jitter_ms: 80.0,
                ..Network::perfect()
            },
            2,
        );
        let in_jitter = |p: &Packet| (1500..3000).contains(&p.index);
        let mut packets: Vec<Packet> = clean
            .packets
            .into_iter()
            .filter(|p| !in_jitter(p))
            .collect();
        packets.extend(jittery.packets.into_iter().filter(in_jitter));
        packets.sort_by_key(|packet| packet.arrival);
        let traffic = Traffic { packets, ..clean };
        let (_, steps) = play(
            JitterConfig::default(),
            &traffic,
            Duration::from_millis(7),
            sender.frames,
        );
        let target_at = |frame: usize| ms(steps[frame].stats.target_delay);
        let onset = steps[1499].stats;
        let settled = steps[1750].stats; // 5 s into the jitter
        let last = steps.last().expect("steps").stats;
        println!(
            "jitter 0 → 80 ms → 0: target {:.1} ms before, {:.1} after 1 s, {:.1} after 2 s, {:.1} at the end of it, then {:.1} / {:.1} / {:.1} ms 5 / 20 / 40 s later; late during adaptation {}, after {}; {last:?}",
            target_at(1499),
            target_at(1550),
            target_at(1600),
            target_at(2999),
            target_at(3250),
            target_at(4000),
            target_at(5000),
            settled.late - onset.late,
            steps[2999].stats.late - settled.late,
        );
        assert!(target_at(1600) >= 60.0);
        assert!((75.0..90.0).contains(&target_at(2999)));
        assert_eq!(
            steps[2999].stats.late, settled.late,
            "late packets once adapted"
        );
        assert!(target_at(3250) >= 70.0, "shrinks slowly");
        assert!(target_at(5000) <= 25.0, "but does shrink");
        assert_continuity(&steps, &traffic);
        assert_accounted(&last);
    }

    #[test]
    fn missing_the_target_delay_inserts_frames() {
        let config = JitterConfig {
            initial_delay: Duration::from_millis(20),
            ..JitterConfig::default()
        };
        let mut buffer = JitterBuffer::new(config);
        let mut outputs = Vec::new();
        for n in 0..100u32 {
            // Every other packet arrives 35 ms behind the rest.
            let arrival = ms_d(u64::from(n * 20 + (n % 2) * 35));
            buffer.put(arrival, n as u16, n * FRAME, b"x");
            outputs.push(buffer.pop(ms_d(u64::from(n * 20 + 20))));
        }
        let stats = buffer.stats();
        println!("insert: {stats:?}");
        let first_insert = outputs
            .iter()
            .position(|out| *out == Playout::Insert)
            .expect("an insert");
        assert!(first_insert < 10, "{first_insert}");
        assert!((2..=3).contains(&stats.inserted), "{stats:?}");
        let missing_after_growth = outputs[20..]
            .iter()
            .filter(|out| matches!(out, Playout::Missing { .. }))
            .count();
        assert_eq!(missing_after_growth, 0);
        assert!(ms(stats.target_delay) >= 40.0, "{stats:?}");
    }

    fn config_8k() -> JitterConfig {
        JitterConfig::default()
    }

    fn ms_d(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn frame(payload: &[u8], timestamp: u32) -> Playout {
        Playout::Frame {
            payload: payload.to_vec(),
            timestamp,
        }
    }

    #[test]
    fn silence_until_the_initial_delay_has_passed() {
        let mut buffer = JitterBuffer::new(config_8k());
        assert_eq!(buffer.pop(ms_d(0)), Playout::Silence);
        buffer.put(ms_d(100), 1, 8000, b"a");
        assert_eq!(buffer.pop(ms_d(100)), Playout::Silence);
        assert_eq!(buffer.pop(ms_d(159)), Playout::Silence);
        assert_eq!(buffer.pop(ms_d(160)), frame(b"a", 8000));
    }

    #[test]
    fn reordered_packets_come_out_in_timestamp_order() {
        let mut buffer = JitterBuffer::new(config_8k());
        // The second packet overtakes the first: playout starts from the earlier one.
        buffer.put(ms_d(0), 11, 1160, b"b");
        buffer.put(ms_d(5), 10, 1000, b"a");
        buffer.put(ms_d(30), 13, 1480, b"d");
        buffer.put(ms_d(31), 12, 1320, b"c");
        let played: Vec<Playout> = (0..4).map(|n| buffer.pop(ms_d(60 + 20 * n))).collect();
        assert_eq!(
            played,
            vec![
                frame(b"a", 1000),
                frame(b"b", 1160),
                frame(b"c", 1320),
                frame(b"d", 1480)
            ]
        );
        let stats = buffer.stats();
        assert_eq!((stats.reordered, stats.played), (2, 4));
    }

    #[test]
    fn duplicates_are_counted_even_after_the_original_played() {
        let mut buffer = JitterBuffer::new(config_8k());
        buffer.put(ms_d(0), 1, 160, b"a");
        buffer.put(ms_d(1), 1, 160, b"a");
        buffer.put(ms_d(20), 2, 320, b"b");
        assert_eq!(buffer.pop(ms_d(60)), frame(b"a", 160));
        buffer.put(ms_d(61), 1, 160, b"a");
        let stats = buffer.stats();
        assert_eq!((stats.duplicates, stats.late), (2, 0));
    }

    #[test]
    fn late_packets_are_counted_and_dropped() {
        let mut buffer = JitterBuffer::new(config_8k());
        buffer.put(ms_d(0), 1, 160, b"a");
        buffer.put(ms_d(40), 3, 480, b"c");
        assert_eq!(buffer.pop(ms_d(60)), frame(b"a", 160));
        assert_eq!(
            buffer.pop(ms_d(80)),
            Playout::Missing {
                timestamp: 320,
                next_payload: Some(b"c".to_vec())
            }
        );
        buffer.put(ms_d(85), 2, 320, b"b");
        assert_eq!(buffer.pop(ms_d(100)), frame(b"c", 480));
        let stats = buffer.stats();
        assert_eq!((stats.late, stats.concealed, stats.played), (1, 1, 2));
        assert_accounted(&stats);
    }

    #[test]
    fn a_timestamp_jump_in_sequence_resyncs_but_a_stray_packet_does_not() {
        let mut buffer = JitterBuffer::new(config_8k());
        for n in 0..10u16 {
            buffer.put(ms_d(20 * u64::from(n)), n, u32::from(n) * FRAME, b"x");
        }
        // Old sequence number, timestamp far ahead: noise.
        buffer.put(ms_d(190), 60_000, 4_000_000, b"stray");
        assert_eq!(buffer.stats().out_of_window, 1);
        assert_eq!(buffer.pop(ms_d(200)), frame(b"x", 0));
        // Next sequence number with a new timeline (a bridged source, say).
        buffer.put(ms_d(200), 10, 4_000_000, b"new");
        let stats = buffer.stats();
        assert_eq!(stats.resyncs, 1);
        assert_eq!(stats.dropped, 9, "the old timeline's frames are flushed");
        // Playout restarts one target delay (still the initial 60 ms) after the new packet.
        assert_eq!(buffer.pop(ms_d(240)), Playout::Silence);
        assert_eq!(buffer.pop(ms_d(260)), frame(b"new", 4_000_000));
        assert_accounted(&buffer.stats());
    }

    #[test]
    fn reset_forgets_the_stream_but_keeps_the_counters() {
        let mut buffer = JitterBuffer::new(config_8k());
        buffer.put(ms_d(0), 500, 9999, b"old");
        buffer.put(ms_d(20), 501, 10159, b"old");
        buffer.reset();
        assert!(buffer.is_empty());
        assert_eq!(buffer.pop(ms_d(100)), Playout::Silence);
        // The new SSRC may reuse any numbers.
        buffer.put(ms_d(100), 500, 77, b"new");
        assert_eq!(buffer.pop(ms_d(159)), Playout::Silence);
        assert_eq!(buffer.pop(ms_d(160)), frame(b"new", 77));
        let stats = buffer.stats();
        assert_eq!((stats.received, stats.dropped, stats.duplicates), (3, 2, 0));
    }

    #[test]
    fn opus_clock_and_frame_size_work_the_same() {
        let config = JitterConfig {
            clock_rate: 48_000,
            frame_samples: 960,
            ..JitterConfig::default()
        };
        let mut buffer = JitterBuffer::new(config);
        buffer.put(ms_d(0), 0, u32::MAX - 959, b"a");
        buffer.put(ms_d(20), 1, 0, b"b");
        assert_eq!(buffer.pop(ms_d(60)), frame(b"a", u32::MAX - 959));
        assert_eq!(buffer.pop(ms_d(80)), frame(b"b", 0));
        assert_eq!(buffer.stats().current_delay, ms_d(60));
    }

    #[test]
    fn nonsense_config_is_reported_and_clamped() {
        let zero = JitterConfig {
            clock_rate: 0,
            frame_samples: 0,
            min_delay: ms_d(500),
            max_delay: ms_d(100),
            initial_delay: ms_d(0),
        };
        assert_eq!(zero.validate(), Err(JitterConfigError::ZeroClockRate));
        let message = JitterConfigError::MinAboveMax {
            min: ms_d(500),
            max: ms_d(100),
        }
        .to_string();
        assert!(
            message.contains("500ms") && message.contains("raise max_delay"),
            "{message}"
        );
        assert_eq!(
            JitterConfig {
                initial_delay: ms_d(5),
                ..JitterConfig::default()
            }
            .validate(),
            Err(JitterConfigError::InitialOutOfRange {
                initial: ms_d(5),
                min: ms_d(20),
                max: ms_d(300)
            })
        );
        assert_eq!(JitterConfig::default().validate(), Ok(()));
        let mut buffer = JitterBuffer::new(zero);
        buffer.put(Duration::MAX, u16::MAX, u32::MAX, b"x");
        let _ = buffer.pop(Duration::MAX);
        let _ = buffer.pop(Duration::ZERO);
        assert!(buffer.capacity() >= MIN_CAPACITY);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put {
            advance_ms: u64,
            sequence: u16,
            timestamp: u32,
            len: usize,
        },
        NearPut {
            advance_ms: u64,
            sequence_step: i8,
            frames_ahead: i16,
        },
        Pop {
            advance_ms: u64,
        },
        Jump {
            to: Duration,
        },
        Reset,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => (0u64..50, any::<u16>(), any::<u32>(), 0usize..300).prop_map(
                |(advance_ms, sequence, timestamp, len)| Op::Put { advance_ms, sequence, timestamp, len }
            ),
            4 => (0u64..50, any::<i8>(), -40i16..200).prop_map(|(advance_ms, sequence_step, frames_ahead)| {
                Op::NearPut { advance_ms, sequence_step, frames_ahead }
            }),
            4 => (0u64..60).prop_map(|advance_ms| Op::Pop { advance_ms }),
            1 => any::<u64>().prop_map(|nanos| Op::Jump { to: Duration::from_nanos(nanos) }),
            1 => Just(Op::Reset),
        ]
    }

    fn any_config() -> impl Strategy<Value = JitterConfig> {
        (
            0u32..100_000,
            0u32..5000,
            0u64..2000,
            0u64..2000,
            0u64..2000,
        )
            .prop_map(
                |(clock_rate, frame_samples, min, max, initial)| JitterConfig {
                    clock_rate,
                    frame_samples,
                    min_delay: ms_d(min),
                    max_delay: ms_d(max),
                    initial_delay: ms_d(initial),
                },
            )
    }

    proptest! {
        #[test]
        fn arbitrary_puts_and_pops_never_panic_and_stay_bounded(
            config in prop_oneof![Just(JitterConfig::default()), any_config()],
            ops in proptest::collection::vec(op(), 1..400),
        ) {
            let mut buffer = JitterBuffer::new(config);
            let capacity = buffer.capacity();
            prop_assert!(capacity <= MAX_CAPACITY);
            let mut now = Duration::ZERO;
            let mut sequence = 0u16;
            let mut timestamp = 0u32;
            let step = config.frame_samples.max(1);
            for op in ops {
                match op {
                    Op::Put { advance_ms, sequence: s, timestamp: t, len } => {
                        now = now.saturating_add(ms_d(advance_ms));
                        sequence = s;
                        timestamp = t;
                        buffer.put(now, s, t, &vec![7; len]);
                    }
                    Op::NearPut { advance_ms, sequence_step, frames_ahead } => {
                        now = now.saturating_add(ms_d(advance_ms));
                        sequence = sequence.wrapping_add(sequence_step as u16);
                        let t = timestamp.wrapping_add((i32::from(frames_ahead) as u32).wrapping_mul(step));
                        if frames_ahead == 1 {
                            timestamp = t;
                        }
                        buffer.put(now, sequence, t, b"p");
                    }
                    Op::Pop { advance_ms } => {
                        now = now.saturating_add(ms_d(advance_ms));
                        let _ = buffer.pop(now);
                    }
                    Op::Jump { to } => now = to,
                    Op::Reset => buffer.reset(),
                }
                prop_assert!(buffer.len() <= capacity);
                prop_assert_eq!(buffer.len(), buffer.ring.slots.iter().flatten().count());
                let stats = buffer.stats();
                prop_assert_eq!(
                    stats.received,
                    stats.played + stats.dropped + stats.late + stats.duplicates
                        + stats.out_of_window + stats.buffered as u64
                );
                prop_assert!(stats.target_delay <= config.max_delay.max(config.min_delay).min(MAX_CONFIG_DELAY) + ms_d(1));
            }
        }
    }

    /// `cargo test --release -- --ignored --nocapture put_pop_cost`
    #[test]
    #[ignore]
    fn put_pop_cost_over_a_million_frames() {
        let mut buffer = JitterBuffer::new(JitterConfig::default());
        let payload = [0x55u8; 160];
        let mut rng = XorShift::new(17);
        let frames = 1_000_000u32;
        let started = std::time::Instant::now();
        for n in 0..frames {
            let sent = PERIOD * n;
            let arrival = sent + Duration::from_micros(rng.next_u64() % 10_000);
            buffer.put(arrival, n as u16, n.wrapping_mul(FRAME), &payload);
            std::hint::black_box(buffer.pop(sent + Duration::from_millis(10)));
        }
        let elapsed = started.elapsed();
        let stats = buffer.stats();
        println!(
            "{frames} × put+pop: {elapsed:?}, {:.0} ns per frame; {stats:?}",
            elapsed.as_nanos() as f64 / f64::from(frames)
        );
        assert!(stats.played > u64::from(frames) * 99 / 100, "{stats:?}");
    }
}
