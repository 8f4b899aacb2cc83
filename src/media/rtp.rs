//! RTP packets (RFC 3550 §5) and the per-call sequence and timestamp state around them, sans-IO.
//!
//! - [`RtpPacket::parse`] / [`write_rtp`]: our own small parser and writer. Every length comes from
//!   the wire, so each one is checked against the datagram before it is used; no input panics.
//! - [`is_rtcp`]: the RFC 5761 demultiplexing rule for rtcp-mux.
//! - [`RtpSender`]: sequence numbers, timestamps and the counters a sender report needs.
//! - [`RtpReceiver`]: the receiver side of RFC 3550 appendix A — source validation (A.1), loss
//!   statistics for reception reports (A.3) and interarrival jitter (A.8) — fed with an explicit
//!   arrival time instead of a clock.

use core::time::Duration;

/// The only RTP version in use (RFC 3550).
pub const RTP_VERSION: u8 = 2;
/// Length of the fixed RTP header, before CSRCs and extension.
pub const RTP_HEADER_LEN: usize = 12;
/// The CSRC count is a 4-bit field.
pub const MAX_CSRCS: usize = 15;
/// Consecutive packets a new source must send before it is believed (RFC 3550 A.1).
pub const MIN_SEQUENTIAL: u8 = 2;
/// A forward jump of fewer sequence numbers than this is loss, not a restart (RFC 3550 A.1).
pub const MAX_DROPOUT: u16 = 3000;
/// A backward step of up to this many sequence numbers is reordering (RFC 3550 A.1).
pub const MAX_MISORDER: u16 = 100;

const SEQUENCE_MODULUS: u32 = 1 << 16;
const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Why an RTP packet could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    #[error("RTP packet of {len} bytes is too short: its header needs {needed}; the datagram is truncated or not RTP, drop it")]
    Truncated { len: usize, needed: usize },
    #[error("RTP version {0} where 2 was expected; the datagram is not RTP (STUN, DTLS or stray traffic on the media port), drop it")]
    BadVersion(u8),
    #[error("RTP padding count {count} does not fit the {available} bytes after the header (it must be 1 to {available}); the packet is corrupt, drop it")]
    BadPadding { count: u8, available: usize },
    #[error("RTP payload type {0} does not fit in 7 bits (0-127); use the payload type negotiated in the SDP")]
    BadPayloadType(u8),
    #[error(
        "an RTP header holds at most 15 CSRCs, this one has {0}; mix fewer contributing sources"
    )]
    TooManyCsrcs(usize),
    #[error("cannot write an RTP header extension: RtpHeader carries no extension data; clear `extension` before writing")]
    ExtensionNotSupported,
}

/// The RTP header. The version is always 2: [`RtpPacket::parse`] rejects others and
/// [`write_rtp`] writes 2.
///
/// `padding` and `extension` record what a parsed packet carried (both already removed from the
/// payload); on writing, `padding` pads the packet to a multiple of four bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RtpHeader {
    pub padding: bool,
    pub extension: bool,
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub csrcs: Vec<u32>,
}

/// A parsed RTP packet borrowing its payload from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub header: RtpHeader,
    /// The payload without header extension and without padding.
    pub payload: &'a [u8],
}

/// Reads big-endian fields from untrusted bytes; every read is bounds-checked.
#[derive(Debug, Clone)]
pub(super) struct ByteReader<'a> {
    rest: &'a [u8],
}

impl<'a> ByteReader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    pub(super) fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub(super) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    pub(super) fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        if count > self.rest.len() {
            return None;
        }
        let (taken, rest) = self.rest.split_at(count);
        self.rest = rest;
        Some(taken)
    }

    pub(super) fn u8(&mut self) -> Option<u8> {
        let (&first, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(first)
    }

    pub(super) fn u16(&mut self) -> Option<u16> {
        let (bytes, rest) = self.rest.split_first_chunk::<2>()?;
        self.rest = rest;
        Some(u16::from_be_bytes(*bytes))
    }

    pub(super) fn u32(&mut self) -> Option<u32> {
        let (bytes, rest) = self.rest.split_first_chunk::<4>()?;
        self.rest = rest;
        Some(u32::from_be_bytes(*bytes))
    }

    pub(super) fn u64(&mut self) -> Option<u64> {
        let (bytes, rest) = self.rest.split_first_chunk::<8>()?;
        self.rest = rest;
        Some(u64::from_be_bytes(*bytes))
    }
}

impl<'a> RtpPacket<'a> {
    /// Parses one RTP packet: fixed header, CSRC list, header extension (skipped by its declared
    /// length) and padding (removed after checking its count).
    pub fn parse(datagram: &'a [u8]) -> Result<Self, RtpError> {
        let len = datagram.len();
        let truncated = |needed: usize| RtpError::Truncated { len, needed };
        let mut reader = ByteReader::new(datagram);
        let first = reader.u8().ok_or(truncated(RTP_HEADER_LEN))?;
        let version = first >> 6;
        if version != RTP_VERSION {
            return Err(RtpError::BadVersion(version));
        }
        let second = reader.u8().ok_or(truncated(RTP_HEADER_LEN))?;
        let sequence = reader.u16().ok_or(truncated(RTP_HEADER_LEN))?;
        let timestamp = reader.u32().ok_or(truncated(RTP_HEADER_LEN))?;
        let ssrc = reader.u32().ok_or(truncated(RTP_HEADER_LEN))?;

        let padding = first & 0x20 != 0;
        let extension = first & 0x10 != 0;
        let csrc_count = usize::from(first & 0x0f);
        let mut needed = RTP_HEADER_LEN + 4 * csrc_count;
        let mut csrcs = Vec::with_capacity(csrc_count);
        for _ in 0..csrc_count {
            csrcs.push(reader.u32().ok_or(truncated(needed))?);
        }

        if extension {
            needed += 4;
            let _profile = reader.u16().ok_or(truncated(needed))?;
            let words = usize::from(reader.u16().ok_or(truncated(needed))?);
            needed += 4 * words;
            reader.take(4 * words).ok_or(truncated(needed))?;
        }

        let mut payload = reader.rest();
        if padding {
            let available = payload.len();
            let count = payload.last().copied().unwrap_or(0);
            if count == 0 || usize::from(count) > available {
                return Err(RtpError::BadPadding { count, available });
            }
            payload = payload
                .get(..available - usize::from(count))
                .ok_or(RtpError::BadPadding { count, available })?;
        }

        Ok(Self {
            header: RtpHeader {
                padding,
                extension,
                marker: second & 0x80 != 0,
                payload_type: second & 0x7f,
                sequence,
                timestamp,
                ssrc,
                csrcs,
            },
            payload,
        })
    }
}

/// Appends one RTP packet to `out`. On error nothing is appended.
///
/// With `header.padding` the packet is padded to a multiple of four bytes (one to four padding
/// bytes, the last holding their count). Header extensions cannot be written.
pub fn write_rtp(header: &RtpHeader, payload: &[u8], out: &mut Vec<u8>) -> Result<(), RtpError> {
    if header.payload_type > 0x7f {
        return Err(RtpError::BadPayloadType(header.payload_type));
    }
    if header.csrcs.len() > MAX_CSRCS {
        return Err(RtpError::TooManyCsrcs(header.csrcs.len()));
    }
    if header.extension {
        return Err(RtpError::ExtensionNotSupported);
    }
    let unpadded = RTP_HEADER_LEN + 4 * header.csrcs.len() + payload.len();
    let padding = if header.padding { 4 - unpadded % 4 } else { 0 };
    out.reserve(unpadded + padding);

    // Both fit their fields: checked above.
    let csrc_count = header.csrcs.len() as u8;
    out.push(RTP_VERSION << 6 | u8::from(header.padding) << 5 | csrc_count);
    out.push(u8::from(header.marker) << 7 | header.payload_type);
    out.extend_from_slice(&header.sequence.to_be_bytes());
    out.extend_from_slice(&header.timestamp.to_be_bytes());
    out.extend_from_slice(&header.ssrc.to_be_bytes());
    for csrc in &header.csrcs {
        out.extend_from_slice(&csrc.to_be_bytes());
    }
    out.extend_from_slice(payload);
    if padding > 0 {
        out.extend(core::iter::repeat_n(0, padding - 1));
        out.push(padding as u8);
    }
    Ok(())
}

/// RFC 5761 §4 demultiplexing for rtcp-mux: a datagram whose second byte is 192–223 (RTCP packet
/// types 192–223, i.e. an RTP marker bit plus payload type 64–95) is RTCP, anything else RTP.
/// This is why payload types 64–95 must not be negotiated with rtcp-mux.
pub fn is_rtcp(datagram: &[u8]) -> bool {
    match datagram {
        [first, second, ..] => first >> 6 == RTP_VERSION && (192..=223).contains(second),
        _ => false,
    }
}

/// Sequence number, timestamp and counters of the one stream we send in a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpSender {
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    packets_sent: u32,
    octets_sent: u32,
}

impl RtpSender {
    /// `ssrc`, `initial_sequence` and `initial_timestamp` should be random (RFC 3550 §5.1); the
    /// caller draws them so that this stays deterministic.
    pub fn new(ssrc: u32, initial_sequence: u16, initial_timestamp: u32) -> Self {
        Self {
            ssrc,
            sequence: initial_sequence,
            timestamp: initial_timestamp,
            packets_sent: 0,
            octets_sent: 0,
        }
    }

    /// The header for the next packet, which carries `samples` samples (per channel, at the
    /// codec's RTP clock rate). Sequence number and timestamp then move on, wrapping around;
    /// the packet counter goes up by one. Count the payload with [`Self::add_payload_octets`].
    pub fn next(&mut self, payload_type: u8, samples: u32, marker: bool) -> RtpHeader {
        let header = RtpHeader {
            padding: false,
            extension: false,
            marker,
            payload_type,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
            csrcs: Vec::new(),
        };
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.packets_sent = self.packets_sent.wrapping_add(1);
        header
    }

    /// Lets `samples` of media time pass without sending (silence suppression, hold): the
    /// timestamp keeps pace with the clock, the sequence number does not move.
    pub fn skip(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
    }

    /// Adds a sent payload to the octet count of sender reports (which wraps, RFC 3550 §6.4.1).
    pub fn add_payload_octets(&mut self, octets: usize) {
        let octets = u32::try_from(octets).unwrap_or(u32::MAX);
        self.octets_sent = self.octets_sent.wrapping_add(octets);
    }

    /// [`Self::next`] plus [`write_rtp`] plus [`Self::add_payload_octets`]: appends the next
    /// packet to `out`. On error nothing is appended and the state does not move.
    pub fn write_next(
        &mut self,
        payload_type: u8,
        samples: u32,
        marker: bool,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<RtpHeader, RtpError> {
        let before = self.clone();
        let header = self.next(payload_type, samples, marker);
        if let Err(error) = write_rtp(&header, payload, out) {
            *self = before;
            return Err(error);
        }
        self.add_payload_octets(payload.len());
        Ok(header)
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// The timestamp the next packet will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.timestamp
    }

    pub fn packets_sent(&self) -> u32 {
        self.packets_sent
    }

    /// Payload octets sent, modulo 2^32.
    pub fn octets_sent(&self) -> u32 {
        self.octets_sent
    }
}

/// What to do with a received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Play it. `extended_sequence` counts sequence-number wrap-arounds in its upper bits, so it
    /// orders packets across 65535→0 (it restarts with a [`ReceiveEvent`]).
    Accepted { extended_sequence: u64 },
    /// A copy of a packet already received; drop it.
    Duplicate,
    /// From a source that has not yet sent [`MIN_SEQUENTIAL`] packets in sequence; drop it.
    Probation,
    /// The sequence number jumped by [`MAX_DROPOUT`] or more; dropped unless the next packet
    /// continues from it, which restarts the stream.
    SequenceJump,
    /// Reordered from before the first packet accepted from this source; too old to play.
    Stale,
}

/// Something the caller (the jitter buffer, the UI) should know beyond the single packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveEvent {
    /// A source passed probation and is now the one we receive; statistics start afresh.
    /// `previous` is the source it replaces (an SSRC change), `None` for the first one.
    NewSource { ssrc: u32, previous: Option<u32> },
    /// The current source jumped its sequence numbers and kept going from there (e.g. it
    /// restarted); statistics and extended sequence numbers start afresh.
    SequenceRestart { ssrc: u32 },
}

/// The result of [`RtpReceiver::receive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveOutcome {
    pub disposition: Disposition,
    pub event: Option<ReceiveEvent>,
}

impl ReceiveOutcome {
    pub fn is_accepted(&self) -> bool {
        matches!(self.disposition, Disposition::Accepted { .. })
    }
}

/// The receiver's half of one report block (RFC 3550 §6.4.1), for the source we receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceptionReport {
    pub ssrc: u32,
    /// Packets lost in the interval since the previous report, in 1/256 (RFC 3550 A.3).
    pub fraction_lost: u8,
    /// Expected minus received since the source started, clamped to 24-bit signed.
    pub cumulative_lost: i32,
    /// Wrap-around count in the upper 16 bits, highest sequence number in the lower 16.
    pub extended_highest_sequence: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
}

/// Cumulative statistics of the source we receive, for call-quality display.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReceiverStats {
    pub ssrc: u32,
    pub packets_received: u64,
    pub packets_expected: u64,
    /// Expected minus received; negative when a source sends duplicates we could not spot.
    pub packets_lost: i64,
    pub duplicates: u64,
    pub extended_highest_sequence: u64,
    /// Interarrival jitter in timestamp units (divide by the clock rate for seconds).
    pub jitter: f64,
}

const CUMULATIVE_LOST_MAX: i64 = 0x7f_ffff;
const CUMULATIVE_LOST_MIN: i64 = -0x80_0000;
/// Marks "no suspicious jump pending": one past any 16-bit sequence number.
const NO_BAD_SEQUENCE: u32 = SEQUENCE_MODULUS + 1;

/// What [`SourceState::update_sequence`] decided.
enum SequenceVerdict {
    Accepted(u64),
    Validated(u64),
    Restarted(u64),
    Duplicate,
    Probation,
    Jump,
    Stale,
}

/// Per-source state of RFC 3550 A.1 and A.8.
#[derive(Debug, Clone)]
struct SourceState {
    ssrc: u32,
    max_sequence: u16,
    /// Number of times the sequence number wrapped (A.1 keeps it pre-shifted; we shift on use).
    cycles: u32,
    base_sequence: u16,
    bad_sequence: u32,
    probation: u8,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Bit `i` is set when extended sequence `highest - i` was received: catches duplicates
    /// within the misorder window, which A.1 would count twice.
    recent: u128,
    duplicates: u64,
    transit: Option<u32>,
    jitter: f64,
}

impl SourceState {
    fn on_probation(ssrc: u32, sequence: u16) -> Self {
        let mut state = Self {
            ssrc,
            max_sequence: sequence,
            cycles: 0,
            base_sequence: sequence,
            bad_sequence: NO_BAD_SEQUENCE,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            recent: 1,
            duplicates: 0,
            transit: None,
            jitter: 0.0,
        };
        state.restart(sequence);
        // So that `sequence` itself counts as the first in-order packet.
        state.max_sequence = sequence.wrapping_sub(1);
        state
    }

    /// `init_seq` of A.1. Jitter survives; the transit time does not, since a restarted source
    /// usually restarts its timestamps too.
    fn restart(&mut self, sequence: u16) {
        self.base_sequence = sequence;
        self.max_sequence = sequence;
        self.bad_sequence = NO_BAD_SEQUENCE;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
        self.recent = 1;
        self.transit = None;
    }

    fn extended_max(&self) -> u64 {
        u64::from(self.cycles) << 16 | u64::from(self.max_sequence)
    }

    fn expected(&self) -> u64 {
        // The extended maximum never falls below the base: it only grows until `restart`.
        (self.extended_max() + 1).saturating_sub(u64::from(self.base_sequence))
    }

    /// `update_seq` of A.1, plus duplicate detection.
    fn update_sequence(&mut self, sequence: u16) -> SequenceVerdict {
        let delta = sequence.wrapping_sub(self.max_sequence);
        if self.probation > 0 {
            if delta == 1 {
                self.probation -= 1;
                self.max_sequence = sequence;
                if self.probation == 0 {
                    self.restart(sequence);
                    self.received += 1;
                    return SequenceVerdict::Validated(self.extended_max());
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_sequence = sequence;
            }
            return SequenceVerdict::Probation;
        }

        if delta == 0 {
            self.duplicates += 1;
            SequenceVerdict::Duplicate
        } else if delta < MAX_DROPOUT {
            if sequence < self.max_sequence {
                self.cycles = self.cycles.saturating_add(1);
            }
            self.max_sequence = sequence;
            self.recent = self.recent.checked_shl(u32::from(delta)).unwrap_or(0) | 1;
            self.received += 1;
            SequenceVerdict::Accepted(self.extended_max())
        } else if u32::from(delta) <= SEQUENCE_MODULUS - u32::from(MAX_MISORDER) {
            if u32::from(sequence) == self.bad_sequence {
                self.restart(sequence);
                self.received += 1;
                SequenceVerdict::Restarted(self.extended_max())
            } else {
                self.bad_sequence = (u32::from(sequence) + 1) % SEQUENCE_MODULUS;
                SequenceVerdict::Jump
            }
        } else {
            // Reordered: `behind` is 1..MAX_MISORDER, inside the 128-bit window.
            let behind = self.max_sequence.wrapping_sub(sequence);
            let extended = match self.extended_max().checked_sub(u64::from(behind)) {
                Some(extended) if extended >= u64::from(self.base_sequence) => extended,
                _ => return SequenceVerdict::Stale,
            };
            let bit = 1u128.checked_shl(u32::from(behind)).unwrap_or(0);
            if self.recent & bit != 0 {
                self.duplicates += 1;
                return SequenceVerdict::Duplicate;
            }
            self.recent |= bit;
            self.received += 1;
            SequenceVerdict::Accepted(extended)
        }
    }

    /// A.8: J += (|D| - J) / 16, with D the change in transit time between two packets.
    fn update_jitter(&mut self, arrival: u32, timestamp: u32) {
        let transit = arrival.wrapping_sub(timestamp);
        if let Some(previous) = self.transit {
            // Reinterpreting the wrapped difference as signed gives the shorter way round.
            let difference = (transit.wrapping_sub(previous) as i32).unsigned_abs();
            self.jitter += (f64::from(difference) - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
    }

    fn stats(&self) -> ReceiverStats {
        let expected = self.expected();
        ReceiverStats {
            ssrc: self.ssrc,
            packets_received: self.received,
            packets_expected: expected,
            packets_lost: signed_difference(expected, self.received),
            duplicates: self.duplicates,
            extended_highest_sequence: self.extended_max(),
            jitter: self.jitter,
        }
    }

    /// A.3, advancing the interval bookkeeping.
    fn reception_report(&mut self) -> Option<ReceptionReport> {
        let expected = self.expected();
        let received_interval = self.received.saturating_sub(self.received_prior);
        if received_interval == 0 {
            // RFC 3550 §6.4: only sources heard from since the last report get a block.
            return None;
        }
        let expected_interval = expected.saturating_sub(self.expected_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = signed_difference(expected_interval, received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            let fraction = (lost_interval.unsigned_abs() << 8) / expected_interval;
            u8::try_from(fraction).unwrap_or(u8::MAX)
        };
        let cumulative_lost = signed_difference(expected, self.received)
            .clamp(CUMULATIVE_LOST_MIN, CUMULATIVE_LOST_MAX);
        Some(ReceptionReport {
            ssrc: self.ssrc,
            fraction_lost,
            // Clamped to 24 bits just above, so it fits.
            cumulative_lost: cumulative_lost as i32,
            // The report field holds the wrap count modulo 2^16.
            extended_highest_sequence: self.extended_max() as u32,
            jitter: jitter_units(self.jitter),
        })
    }
}

fn signed_difference(minuend: u64, subtrahend: u64) -> i64 {
    let difference = i128::from(minuend) - i128::from(subtrahend);
    i64::try_from(difference).unwrap_or(if difference < 0 { i64::MIN } else { i64::MAX })
}

fn jitter_units(jitter: f64) -> u32 {
    // `as` saturates (and maps NaN to 0), which is what a report field wants.
    jitter.round() as u32
}

/// `now` expressed in RTP timestamp units of `clock_rate`, modulo 2^32 like RTP timestamps.
pub fn rtp_units(now: Duration, clock_rate: u32) -> u32 {
    (now.as_nanos() * u128::from(clock_rate) / NANOS_PER_SECOND) as u32
}

/// Reception state for the remote side of one call: one current source plus at most one
/// candidate on probation, so a stray packet with another SSRC cannot disturb the stream, while a
/// real SSRC change (re-INVITE, transfer, PBX media switch) takes over after [`MIN_SEQUENTIAL`]
/// packets.
#[derive(Debug, Clone, Default)]
pub struct RtpReceiver {
    current: Option<SourceState>,
    candidate: Option<SourceState>,
}

impl RtpReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Accounts for one packet that arrived at `now` (any monotonic clock, the same for every
    /// call) and says whether to play it. `clock_rate` is the RTP clock rate of its payload
    /// type, for the jitter estimate.
    pub fn receive(
        &mut self,
        now: Duration,
        header: &RtpHeader,
        clock_rate: u32,
    ) -> ReceiveOutcome {
        let arrival = rtp_units(now, clock_rate);
        if let Some(current) = self.current.as_mut().filter(|s| s.ssrc == header.ssrc) {
            let (disposition, event) = match current.update_sequence(header.sequence) {
                SequenceVerdict::Accepted(extended_sequence) => {
                    (Disposition::Accepted { extended_sequence }, None)
                }
                SequenceVerdict::Validated(extended_sequence)
                | SequenceVerdict::Restarted(extended_sequence) => (
                    Disposition::Accepted { extended_sequence },
                    Some(ReceiveEvent::SequenceRestart { ssrc: header.ssrc }),
                ),
                SequenceVerdict::Duplicate => (Disposition::Duplicate, None),
                SequenceVerdict::Probation => (Disposition::Probation, None),
                SequenceVerdict::Jump => (Disposition::SequenceJump, None),
                SequenceVerdict::Stale => (Disposition::Stale, None),
            };
            if matches!(disposition, Disposition::Accepted { .. }) {
                current.update_jitter(arrival, header.timestamp);
            }
            return ReceiveOutcome { disposition, event };
        }

        let mut candidate = match self.candidate.take() {
            Some(candidate) if candidate.ssrc == header.ssrc => candidate,
            _ => SourceState::on_probation(header.ssrc, header.sequence),
        };
        match candidate.update_sequence(header.sequence) {
            SequenceVerdict::Validated(extended_sequence) => {
                candidate.update_jitter(arrival, header.timestamp);
                let previous = self.current.replace(candidate).map(|s| s.ssrc);
                ReceiveOutcome {
                    disposition: Disposition::Accepted { extended_sequence },
                    event: Some(ReceiveEvent::NewSource {
                        ssrc: header.ssrc,
                        previous,
                    }),
                }
            }
            _ => {
                self.candidate = Some(candidate);
                ReceiveOutcome {
                    disposition: Disposition::Probation,
                    event: None,
                }
            }
        }
    }

    /// The SSRC we currently receive, once one has passed probation.
    pub fn source(&self) -> Option<u32> {
        self.current.as_ref().map(|s| s.ssrc)
    }

    /// Cumulative statistics of the current source.
    pub fn stats(&self) -> Option<ReceiverStats> {
        self.current.as_ref().map(SourceState::stats)
    }

    /// The report block contents for the next RTCP report, starting a new interval. `None`
    /// when no source is validated or nothing arrived since the previous report.
    pub fn reception_report(&mut self) -> Option<ReceptionReport> {
        self.current.as_mut()?.reception_report()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(sequence: u16, timestamp: u32, ssrc: u32) -> RtpHeader {
        RtpHeader {
            payload_type: 0,
            sequence,
            timestamp,
            ssrc,
            ..RtpHeader::default()
        }
    }

    fn ms(milliseconds: u64) -> Duration {
        Duration::from_millis(milliseconds)
    }

    /// Seeded xorshift64*: deterministic "random" input for the fuzz-like tests.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    /// Feeds consecutive packets `sequences` at a 20 ms cadence, 160 samples each at 8 kHz.
    fn feed(receiver: &mut RtpReceiver, ssrc: u32, sequences: impl IntoIterator<Item = u16>) {
        for (index, sequence) in sequences.into_iter().enumerate() {
            let index = index as u64;
            receiver.receive(
                ms(20 * index),
                &header(sequence, 160 * index as u32, ssrc),
                8000,
            );
        }
    }

    #[test]
    fn writes_a_known_header_byte_for_byte() {
        let header = RtpHeader {
            marker: true,
            payload_type: 0,
            sequence: 0x1234,
            timestamp: 0xdead_beef,
            ssrc: 0x1122_3344,
            ..RtpHeader::default()
        };
        let mut out = vec![0xff]; // appends, keeps what was there
        write_rtp(&header, &[0xd5, 0x55, 0x7f], &mut out).expect("writes");
        assert_eq!(
            out,
            [
                0xff, 0x80, 0x80, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0x11, 0x22, 0x33, 0x44, 0xd5,
                0x55, 0x7f
            ]
        );
    }

    #[test]
    fn writes_csrcs_and_dynamic_payload_type() {
        let header = RtpHeader {
            payload_type: 101,
            sequence: 65535,
            timestamp: 1,
            ssrc: 0xcafe_babe,
            csrcs: vec![0xaabb_ccdd, 2],
            ..RtpHeader::default()
        };
        let mut out = Vec::new();
        write_rtp(&header, &[], &mut out).expect("writes");
        assert_eq!(
            out,
            [
                0x82, 0x65, 0xff, 0xff, 0, 0, 0, 1, 0xca, 0xfe, 0xba, 0xbe, 0xaa, 0xbb, 0xcc, 0xdd,
                0, 0, 0, 2
            ]
        );
        let parsed = RtpPacket::parse(&out).expect("parses");
        assert_eq!(parsed.header, header);
        assert!(parsed.payload.is_empty());
    }

    #[test]
    fn padding_is_written_to_a_four_byte_boundary_and_removed_on_parse() {
        for (payload_len, padding) in [(0, 4), (1, 3), (2, 2), (3, 1), (160, 4)] {
            let header = RtpHeader {
                padding: true,
                sequence: 7,
                ..RtpHeader::default()
            };
            let payload = vec![0x42; payload_len];
            let mut out = Vec::new();
            write_rtp(&header, &payload, &mut out).expect("writes");
            assert_eq!(out.len(), RTP_HEADER_LEN + payload_len + padding);
            assert_eq!(out.len() % 4, 0);
            assert_eq!(out[0], 0xa0);
            assert_eq!(out.last(), Some(&(padding as u8)));
            let parsed = RtpPacket::parse(&out).expect("parses");
            assert_eq!(parsed.payload, &payload[..]);
            assert!(parsed.header.padding);
        }
    }

    #[test]
    fn parses_csrcs_extension_and_padding_together() {
        let packet = [
            0xb1, 0xe0, 0x00, 0x05, // V=2 P X CC=1, M, PT=96, seq 5
            0x00, 0x00, 0x01, 0x40, // timestamp 320
            0x01, 0x02, 0x03, 0x04, // ssrc
            0x0a, 0x0b, 0x0c, 0x0d, // csrc
            0xbe, 0xde, 0x00, 0x02, // one-byte-header extension, 2 words
            0x10, 0xff, 0x00, 0x00, 0x22, 0x11, 0x00, 0x00, // extension data, skipped
            0x61, 0x62, // payload "ab"
            0x00, 0x00, 0x03, // 3 bytes of padding
        ];
        let parsed = RtpPacket::parse(&packet).expect("parses");
        assert_eq!(
            parsed.header,
            RtpHeader {
                padding: true,
                extension: true,
                marker: true,
                payload_type: 96,
                sequence: 5,
                timestamp: 320,
                ssrc: 0x0102_0304,
                csrcs: vec![0x0a0b_0c0d],
            }
        );
        assert_eq!(parsed.payload, b"ab");
    }

    #[test]
    fn malformed_packets_are_errors() {
        let good = {
            let mut out = Vec::new();
            write_rtp(&header(1, 2, 3), b"payload", &mut out).expect("writes");
            out
        };
        assert_eq!(
            RtpPacket::parse(&good[..11]),
            Err(RtpError::Truncated {
                len: 11,
                needed: 12
            })
        );
        assert_eq!(
            RtpPacket::parse(&[]),
            Err(RtpError::Truncated { len: 0, needed: 12 })
        );

        let mut bad_version = good.clone();
        bad_version[0] = 0x40;
        assert_eq!(RtpPacket::parse(&bad_version), Err(RtpError::BadVersion(1)));
        // A STUN binding request starts with 0x00 0x01.
        assert_eq!(
            RtpPacket::parse(&[0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0]),
            Err(RtpError::BadVersion(0))
        );

        let mut lying_csrc_count = good.clone();
        lying_csrc_count[0] = 0x8f; // 15 CSRCs = 60 bytes, only 7 follow
        assert_eq!(
            RtpPacket::parse(&lying_csrc_count),
            Err(RtpError::Truncated {
                len: 19,
                needed: 72
            })
        );

        let mut lying_extension = good[..RTP_HEADER_LEN].to_vec();
        lying_extension[0] = 0x90;
        lying_extension.extend_from_slice(&[0xbe, 0xde, 0xff, 0xff, 1, 2, 3, 4]);
        assert_eq!(
            RtpPacket::parse(&lying_extension),
            Err(RtpError::Truncated {
                len: 20,
                needed: 16 + 4 * 0xffff
            })
        );
        assert_eq!(
            RtpPacket::parse(&lying_extension[..14]),
            Err(RtpError::Truncated {
                len: 14,
                needed: 16
            })
        );

        let mut zero_padding = good.clone();
        zero_padding[0] |= 0x20;
        *zero_padding.last_mut().expect("non-empty") = 0;
        assert_eq!(
            RtpPacket::parse(&zero_padding),
            Err(RtpError::BadPadding {
                count: 0,
                available: 7
            })
        );
        let mut lying_padding = good.clone();
        lying_padding[0] |= 0x20;
        *lying_padding.last_mut().expect("non-empty") = 8;
        assert_eq!(
            RtpPacket::parse(&lying_padding),
            Err(RtpError::BadPadding {
                count: 8,
                available: 7
            })
        );
        let mut padding_without_room = good[..RTP_HEADER_LEN].to_vec();
        padding_without_room[0] |= 0x20;
        assert_eq!(
            RtpPacket::parse(&padding_without_room),
            Err(RtpError::BadPadding {
                count: 0,
                available: 0
            })
        );
        // A padding count that eats the whole payload is legal.
        let mut all_padding = good.clone();
        all_padding[0] |= 0x20;
        *all_padding.last_mut().expect("non-empty") = 7;
        assert_eq!(RtpPacket::parse(&all_padding).expect("parses").payload, b"");
    }

    #[test]
    fn writer_refuses_what_it_cannot_encode_and_appends_nothing() {
        let mut out = vec![1, 2];
        let too_big_type = RtpHeader {
            payload_type: 128,
            ..RtpHeader::default()
        };
        assert_eq!(
            write_rtp(&too_big_type, b"x", &mut out),
            Err(RtpError::BadPayloadType(128))
        );
        let too_many_csrcs = RtpHeader {
            csrcs: vec![0; 16],
            ..RtpHeader::default()
        };
        assert_eq!(
            write_rtp(&too_many_csrcs, b"x", &mut out),
            Err(RtpError::TooManyCsrcs(16))
        );
        let extension = RtpHeader {
            extension: true,
            ..RtpHeader::default()
        };
        assert_eq!(
            write_rtp(&extension, b"x", &mut out),
            Err(RtpError::ExtensionNotSupported)
        );
        assert_eq!(out, [1, 2]);

        let mut sender = RtpSender::new(1, 10, 100);
        assert_eq!(
            sender.write_next(200, 160, false, b"x", &mut out),
            Err(RtpError::BadPayloadType(200))
        );
        assert_eq!(sender, RtpSender::new(1, 10, 100));
        assert_eq!(out, [1, 2]);
    }

    #[test]
    fn rtcp_mux_demultiplexing_follows_rfc_5761() {
        assert!(is_rtcp(&[0x80, 200])); // SR
        assert!(is_rtcp(&[0x81, 201, 0, 7])); // RR with one block
        assert!(is_rtcp(&[0x81, 202])); // SDES
        assert!(is_rtcp(&[0x81, 203])); // BYE
        assert!(is_rtcp(&[0x80, 207])); // XR
        assert!(is_rtcp(&[0x80, 223]));
        assert!(!is_rtcp(&[0x80, 224])); // PT 96 with marker: RTP
        assert!(!is_rtcp(&[0x80, 191])); // PT 63 with marker: RTP
        assert!(!is_rtcp(&[0x80, 0])); // PCMU
        assert!(!is_rtcp(&[0x80, 72])); // PT 72 without marker: RTP
        assert!(!is_rtcp(&[0x00, 200])); // not version 2
        assert!(!is_rtcp(&[0x80]));
        assert!(!is_rtcp(&[]));
    }

    #[test]
    fn sender_wraps_sequence_and_timestamp() {
        let mut sender = RtpSender::new(0x5555_aaaa, 65534, u32::MAX - 100);
        let first = sender.next(0, 160, true);
        assert_eq!(
            (first.sequence, first.timestamp, first.marker),
            (65534, u32::MAX - 100, true)
        );
        assert_eq!(first.ssrc, 0x5555_aaaa);
        let second = sender.next(0, 160, false);
        assert_eq!((second.sequence, second.timestamp), (65535, 59));
        let third = sender.next(0, 160, false);
        assert_eq!((third.sequence, third.timestamp), (0, 219));
        assert_eq!(sender.packets_sent(), 3);
    }

    #[test]
    fn skip_advances_the_timestamp_but_not_the_sequence() {
        let mut sender = RtpSender::new(9, 100, 1000);
        sender.next(0, 160, false);
        sender.skip(160 * 50); // one second of silence
        let resumed = sender.next(0, 160, true);
        assert_eq!(resumed.sequence, 101);
        assert_eq!(resumed.timestamp, 1000 + 160 + 8000);
        assert_eq!(sender.packets_sent(), 2);
        assert_eq!(
            (sender.next_sequence(), sender.next_timestamp()),
            (102, 9320)
        );
    }

    #[test]
    fn write_next_counts_octets_and_writes_the_header_it_returns() {
        let mut sender = RtpSender::new(0x0102_0304, 65535, 0);
        let mut out = Vec::new();
        let header = sender
            .write_next(8, 160, true, &[0xd5; 160], &mut out)
            .expect("writes");
        assert_eq!(&out[..4], &[0x80, 0x88, 0xff, 0xff]);
        assert_eq!(RtpPacket::parse(&out).expect("parses").header, header);
        out.clear();
        sender
            .write_next(8, 160, false, &[0xd5; 80], &mut out)
            .expect("writes");
        assert_eq!(&out[..4], &[0x80, 0x08, 0x00, 0x00]);
        assert_eq!((sender.packets_sent(), sender.octets_sent()), (2, 240));
    }

    #[test]
    fn a_new_source_is_on_probation_for_one_packet() {
        let mut receiver = RtpReceiver::new();
        let first = receiver.receive(ms(0), &header(1000, 0, 7), 8000);
        assert_eq!(first.disposition, Disposition::Probation);
        assert_eq!(first.event, None);
        assert_eq!(receiver.source(), None);
        let second = receiver.receive(ms(20), &header(1001, 160, 7), 8000);
        assert_eq!(
            second.disposition,
            Disposition::Accepted {
                extended_sequence: 1001
            }
        );
        assert_eq!(
            second.event,
            Some(ReceiveEvent::NewSource {
                ssrc: 7,
                previous: None
            })
        );
        assert_eq!(receiver.source(), Some(7));
        let third = receiver.receive(ms(40), &header(1002, 320, 7), 8000);
        assert_eq!(
            third,
            ReceiveOutcome {
                disposition: Disposition::Accepted {
                    extended_sequence: 1002
                },
                event: None
            }
        );
    }

    #[test]
    fn probation_restarts_when_packets_are_not_consecutive() {
        let mut receiver = RtpReceiver::new();
        for sequence in [10, 12, 20] {
            let outcome = receiver.receive(ms(0), &header(sequence, 0, 7), 8000);
            assert_eq!(
                outcome.disposition,
                Disposition::Probation,
                "seq {sequence}"
            );
        }
        assert!(receiver
            .receive(ms(20), &header(21, 160, 7), 8000)
            .is_accepted());
        let stats = receiver.stats().expect("a validated source");
        assert_eq!((stats.packets_received, stats.packets_expected), (1, 1));
    }

    #[test]
    fn sequence_wraps_into_the_extended_sequence_and_report() {
        let mut receiver = RtpReceiver::new();
        let sequences: Vec<u16> = (65530..=65535).chain(0..=5).collect();
        let mut extended = Vec::new();
        for (index, &sequence) in sequences.iter().enumerate() {
            let outcome = receiver.receive(ms(20 * index as u64), &header(sequence, 0, 1), 8000);
            if let Disposition::Accepted { extended_sequence } = outcome.disposition {
                extended.push(extended_sequence);
            }
        }
        let expected: Vec<u64> = (65531..=65541).collect();
        assert_eq!(extended, expected);
        let report = receiver.reception_report().expect("a report block");
        assert_eq!(report.extended_highest_sequence, 0x0001_0005);
        assert_eq!((report.fraction_lost, report.cumulative_lost), (0, 0));
        let stats = receiver.stats().expect("a validated source");
        assert_eq!((stats.packets_received, stats.packets_expected), (11, 11));
    }

    #[test]
    fn an_ssrc_change_takes_over_after_probation_and_resets_statistics() {
        let mut receiver = RtpReceiver::new();
        feed(&mut receiver, 0xaaaa, 0..50);
        assert_eq!(
            receiver
                .stats()
                .expect("a validated source")
                .packets_received,
            49
        );

        // The first packet of the new source does not disturb the old one.
        let stray = receiver.receive(ms(1000), &header(40_000, 0, 0xbbbb), 8000);
        assert_eq!(stray.disposition, Disposition::Probation);
        assert!(receiver
            .receive(ms(1000), &header(50, 8000, 0xaaaa), 8000)
            .is_accepted());
        assert_eq!(receiver.source(), Some(0xaaaa));

        let switch = receiver.receive(ms(1020), &header(40_001, 160, 0xbbbb), 8000);
        assert_eq!(
            switch.disposition,
            Disposition::Accepted {
                extended_sequence: 40_001
            }
        );
        assert_eq!(
            switch.event,
            Some(ReceiveEvent::NewSource {
                ssrc: 0xbbbb,
                previous: Some(0xaaaa)
            })
        );
        let stats = receiver.stats().expect("a validated source");
        assert_eq!(
            (stats.ssrc, stats.packets_received, stats.packets_expected),
            (0xbbbb, 1, 1)
        );

        // The old source is now the stranger on probation.
        let late_old = receiver.receive(ms(1030), &header(51, 8160, 0xaaaa), 8000);
        assert_eq!(late_old.disposition, Disposition::Probation);
        assert_eq!(receiver.source(), Some(0xbbbb));
    }

    #[test]
    fn duplicates_are_detected_in_order_and_reordered() {
        let mut receiver = RtpReceiver::new();
        feed(&mut receiver, 5, [100, 101, 102, 104, 105]);
        let duplicate = receiver.receive(ms(200), &header(105, 0, 5), 8000);
        assert_eq!(duplicate.disposition, Disposition::Duplicate);
        let old_duplicate = receiver.receive(ms(200), &header(101, 0, 5), 8000);
        assert_eq!(old_duplicate.disposition, Disposition::Duplicate);
        let reordered = receiver.receive(ms(200), &header(103, 0, 5), 8000);
        assert_eq!(
            reordered.disposition,
            Disposition::Accepted {
                extended_sequence: 103
            }
        );
        let reordered_again = receiver.receive(ms(200), &header(103, 0, 5), 8000);
        assert_eq!(reordered_again.disposition, Disposition::Duplicate);

        let stats = receiver.stats().expect("a validated source");
        assert_eq!(stats.duplicates, 3);
        // 101..=105 expected and received once each: duplicates do not hide loss.
        assert_eq!(
            (
                stats.packets_received,
                stats.packets_expected,
                stats.packets_lost
            ),
            (5, 5, 0)
        );
    }

    #[test]
    fn duplicates_are_detected_across_the_wrap() {
        let mut receiver = RtpReceiver::new();
        feed(&mut receiver, 5, [65533, 65534, 65535, 0, 1]);
        assert_eq!(
            receiver
                .receive(ms(100), &header(65535, 0, 5), 8000)
                .disposition,
            Disposition::Duplicate
        );
        assert_eq!(
            receiver
                .receive(ms(100), &header(1, 0, 5), 8000)
                .disposition,
            Disposition::Duplicate
        );
    }

    #[test]
    fn reordered_packets_from_before_the_start_are_stale() {
        let mut receiver = RtpReceiver::new();
        feed(&mut receiver, 5, [1, 2, 3]);
        // Base is 2 (the packet that ended probation); 0 and 65535 wrap below it.
        for sequence in [1, 0, 65535] {
            let outcome = receiver.receive(ms(100), &header(sequence, 0, 5), 8000);
            assert_eq!(outcome.disposition, Disposition::Stale, "seq {sequence}");
        }
        assert_eq!(
            receiver
                .stats()
                .expect("a validated source")
                .packets_received,
            2
        );
    }

    #[test]
    fn a_large_jump_is_dropped_once_then_restarts_the_stream() {
        let mut receiver = RtpReceiver::new();
        feed(&mut receiver, 5, 0..10);
        let jump = receiver.receive(ms(200), &header(20_000, 0, 5), 8000);
        assert_eq!(jump.disposition, Disposition::SequenceJump);
        let next = receiver.receive(ms(220), &header(20_001, 160, 5), 8000);
        assert_eq!(
            next.disposition,
            Disposition::Accepted {
                extended_sequence: 20_001
            }
        );
        assert_eq!(next.event, Some(ReceiveEvent::SequenceRestart { ssrc: 5 }));
        let stats = receiver.stats().expect("a validated source");
        assert_eq!((stats.packets_received, stats.packets_expected), (1, 1));

        // A lone jump that is not followed up is just dropped.
        let lone = receiver.receive(ms(240), &header(50_000, 0, 5), 8000);
        assert_eq!(lone.disposition, Disposition::SequenceJump);
        assert!(receiver
            .receive(ms(240), &header(20_002, 320, 5), 8000)
            .is_accepted());
        // A gap below MAX_DROPOUT is loss, not a jump.
        let gap = receiver.receive(ms(260), &header(20_002 + 2999, 0, 5), 8000);
        assert!(gap.is_accepted());
    }

    #[test]
    fn dropping_every_tenth_of_1000_packets_reports_25_of_256() {
        let mut receiver = RtpReceiver::new();
        // Packets 0..1000 with every tenth (9, 19, ..., 999) lost. Packet 0 is probation, so
        // the stream counts from 1: 998 expected (1..=998), 99 of them lost.
        feed(&mut receiver, 77, (0..1000u16).filter(|s| s % 10 != 9));
        let report = receiver.reception_report().expect("a report block");
        assert_eq!(report.fraction_lost, 25); // 99 * 256 / 998 = 25.4
        assert_eq!(report.cumulative_lost, 99);
        assert_eq!(report.extended_highest_sequence, 998);
        assert_eq!(report.ssrc, 77);

        // Nothing new: no block (RFC 3550 §6.4).
        assert_eq!(receiver.reception_report(), None);

        // The next interval only loses 999, which the first could not know about yet.
        for sequence in 1000..1100u16 {
            receiver.receive(ms(20_000), &header(sequence, 0, 77), 8000);
        }
        let report = receiver.reception_report().expect("a report block");
        assert_eq!((report.fraction_lost, report.cumulative_lost), (2, 100)); // 256 / 101

        // An interval with half of its packets lost.
        for sequence in (1100..1200u16).step_by(2) {
            receiver.receive(ms(20_000), &header(sequence, 0, 77), 8000);
        }
        let report = receiver.reception_report().expect("a report block");
        assert_eq!(report.fraction_lost, 126); // 49 lost of 99 expected (1099 was received)
        assert_eq!(report.cumulative_lost, 100 + 49);
    }

    #[test]
    fn jitter_is_zero_on_a_constant_cadence() {
        let mut receiver = RtpReceiver::new();
        for index in 0..500u32 {
            let now = Duration::from_millis(1_000 + 20 * u64::from(index));
            let outcome =
                receiver.receive(now, &header(index as u16, 123_456 + 160 * index, 1), 8000);
            assert_ne!(outcome.disposition, Disposition::Duplicate);
        }
        assert_eq!(receiver.stats().expect("a validated source").jitter, 0.0);
        assert_eq!(
            receiver.reception_report().expect("a report block").jitter,
            0
        );
    }

    #[test]
    fn jitter_converges_to_the_alternating_delay_deviation() {
        // Packets sent every 20 ms arrive alternately 5 ms late and 5 ms early: consecutive
        // transit times differ by 10 ms, 80 units at 8 kHz, the value J converges to.
        for (clock_rate, expected) in [(8000u32, 80u32), (48_000, 480)] {
            let mut receiver = RtpReceiver::new();
            let samples = clock_rate / 50;
            for index in 0..400u32 {
                let offset_ms: i64 = if index % 2 == 0 { 5 } else { -5 };
                let arrival_ms = 100 + 20 * i64::from(index) + offset_ms;
                let now = Duration::from_millis(arrival_ms as u64);
                let timestamp = 90_000u32.wrapping_add(samples * index);
                receiver.receive(now, &header(index as u16, timestamp, 1), clock_rate);
            }
            let jitter = receiver.stats().expect("a validated source").jitter;
            assert!(
                (jitter - f64::from(expected)).abs() < 0.01,
                "{clock_rate}: {jitter}"
            );
            assert_eq!(
                receiver.reception_report().expect("a report block").jitter,
                expected
            );
        }
    }

    #[test]
    fn jitter_of_steps_of_five_milliseconds() {
        // Arrival gaps alternate 25 ms and 15 ms: each transit differs from the previous by
        // ±5 ms = 40 units at 8 kHz, the value J converges to.
        let mut receiver = RtpReceiver::new();
        let mut arrival_ms = 0u64;
        for index in 0..400u32 {
            arrival_ms += if index % 2 == 0 { 25 } else { 15 };
            receiver.receive(ms(arrival_ms), &header(index as u16, 160 * index, 1), 8000);
        }
        let jitter = receiver.stats().expect("a validated source").jitter;
        assert!((jitter - 40.0).abs() < 0.01, "{jitter}");
        assert_eq!(
            receiver.reception_report().expect("a report block").jitter,
            40
        );
    }

    #[test]
    fn jitter_moves_a_sixteenth_of_the_way_per_packet() {
        let mut receiver = RtpReceiver::new();
        receiver.receive(ms(0), &header(0, 0, 1), 8000); // probation
        receiver.receive(ms(20), &header(1, 160, 1), 8000); // first transit, no difference yet
        assert_eq!(receiver.stats().expect("a validated source").jitter, 0.0);
        receiver.receive(ms(50), &header(2, 320, 1), 8000); // 10 ms late: |D| = 80
        assert_eq!(receiver.stats().expect("a validated source").jitter, 5.0);
        receiver.receive(ms(60), &header(3, 480, 1), 8000); // back on time: |D| = 80
        assert_eq!(receiver.stats().expect("a validated source").jitter, 9.6875);
        // Duplicates do not feed the estimate.
        receiver.receive(ms(500), &header(3, 480, 1), 8000);
        assert_eq!(receiver.stats().expect("a validated source").jitter, 9.6875);
    }

    #[test]
    fn jitter_survives_timestamp_and_clock_wrap() {
        let mut receiver = RtpReceiver::new();
        // Timestamps wrap past u32::MAX; arrivals are steady, so jitter stays 0.
        for index in 0..100u32 {
            let timestamp = (u32::MAX - 800).wrapping_add(160 * index);
            receiver.receive(
                ms(20 * u64::from(index)),
                &header(index as u16, timestamp, 1),
                8000,
            );
        }
        assert_eq!(receiver.stats().expect("a validated source").jitter, 0.0);
        assert_eq!(
            rtp_units(Duration::from_secs(1 << 20), 8000),
            (8000u64 << 20) as u32
        );
    }

    #[test]
    fn random_bytes_never_panic_the_parser() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut accepted = 0;
        for _ in 0..20_000 {
            let len = rng.below(80) as usize;
            let mut bytes = rng.bytes(len);
            if let Some(first) = bytes.first_mut() {
                *first = (*first & 0x3f) | 0x80; // mostly version 2, to get past the first check
            }
            if let Ok(packet) = RtpPacket::parse(&bytes) {
                accepted += 1;
                assert!(packet.header.csrcs.len() <= MAX_CSRCS);
                assert!(packet.header.payload_type <= 0x7f);
                assert!(RTP_HEADER_LEN + packet.payload.len() <= bytes.len());
            }
        }
        assert!(accepted > 1000, "only {accepted} random packets parsed");
    }

    #[test]
    fn mutated_packets_never_panic_and_round_trips_hold() {
        let mut rng = XorShift(42);
        for _ in 0..5_000 {
            let header = RtpHeader {
                padding: rng.below(2) == 0,
                extension: false,
                marker: rng.below(2) == 0,
                payload_type: rng.below(128) as u8,
                sequence: rng.next() as u16,
                timestamp: rng.next() as u32,
                ssrc: rng.next() as u32,
                csrcs: (0..rng.below(16)).map(|_| rng.next() as u32).collect(),
            };
            let payload_len = rng.below(200) as usize;
            let payload = rng.bytes(payload_len);
            let mut bytes = Vec::new();
            write_rtp(&header, &payload, &mut bytes).expect("writes");
            let parsed = RtpPacket::parse(&bytes).expect("parses");
            assert_eq!(parsed.header, header);
            assert_eq!(parsed.payload, &payload[..]);

            for _ in 0..4 {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] ^= 1 << rng.below(8);
            }
            let cut = rng.below(bytes.len() as u64 + 1) as usize;
            let _ = RtpPacket::parse(&bytes[..cut]);
            let _ = RtpPacket::parse(&bytes);
        }
    }

    #[test]
    fn random_sequences_keep_the_statistics_in_range() {
        let mut rng = XorShift(7);
        let mut receiver = RtpReceiver::new();
        let mut sequence = 0u16;
        for step in 0..50_000u64 {
            sequence = match rng.below(10) {
                0 => rng.next() as u16,
                1 => sequence.wrapping_sub(rng.below(150) as u16),
                _ => sequence.wrapping_add(rng.below(4) as u16),
            };
            let ssrc = if rng.below(500) == 0 { 2 } else { 1 };
            let header = header(sequence, rng.next() as u32, ssrc);
            let clock_rate = [0, 8000, 48_000, u32::MAX][rng.below(4) as usize];
            let now = Duration::from_micros(step * 20_000 + rng.below(100_000));
            receiver.receive(now, &header, clock_rate);
            if step % 250 == 0 {
                if let Some(report) = receiver.reception_report() {
                    assert!((-0x80_0000..=0x7f_ffff).contains(&report.cumulative_lost));
                }
            }
        }
        let stats = receiver.stats().expect("a validated source");
        assert!(stats.jitter.is_finite() && stats.jitter >= 0.0);
    }
}
