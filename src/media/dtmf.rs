//! DTMF as RFC 4733 telephone-events, sans-IO.
//!
//! [`DtmfSender`] turns a key press into the packet sequence of RFC 4733 §2.5.1: every packet of
//! an event carries the RTP timestamp of the event's start; the first has the marker bit; the
//! duration field grows by one packet interval per update; the final packet, with the E bit and
//! the full duration, goes out three times at the update interval (§2.5.1.4). So a 100 ms '5' at
//! 20 ms / 8 kHz is durations 160, 320, 480, 640, then 800 with E three times.
//!
//! [`DtmfReceiver`] reports each key press once, with its duration, whatever the network did to
//! the packets: retransmitted or duplicated end packets, a lost first packet, lost end packets
//! (a quiet period closes the event), or the next digit arriving before the previous one ended.
//!
//! Whoever sends RTP must hold back audio for the timestamps an event covers and use the same
//! SSRC, sequence numbers and clock as the audio stream; this module only builds the payloads.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Volume of the tone we ask the far end to play, in -dBm0 (RFC 4733 §2.3.4): 10 means -10 dBm0.
pub const DEFAULT_VOLUME: u8 = 10;
/// The update interval most gateways use; 50 ms is also common (see [`DtmfSender::new`]).
pub const DEFAULT_PACKET_INTERVAL_MS: u32 = 20;
/// How many times the final packet of an event goes out (RFC 4733 §2.5.1.4).
const FINAL_PACKET_COUNT: u32 = 3;
/// After this long without a packet for an unfinished event, the receiver assumes its end packets
/// were lost and reports it.
pub const DEFAULT_RECEIVE_TIMEOUT: Duration = Duration::from_millis(300);
/// How many finished events the receiver remembers to drop their late retransmissions.
const FINISHED_MEMORY: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    #[error("{0:?} is not a DTMF key: use 0-9, *, #, or A-D")]
    InvalidKey(char),
    #[error("a DTMF duration of 0 ms sends nothing: use at least 40 ms (100 ms is usual)")]
    ZeroDuration,
    #[error("a packet interval of {0} ms is out of range: use 10 to 100 ms (20 or 50 are usual)")]
    InvalidInterval(u32),
    #[error("an RTP clock of {0} Hz is out of range: telephone-event uses the audio clock, 8000 to 48000 Hz")]
    InvalidClockRate(u32),
    #[error(
        "the previous DTMF digit is still being sent: start the next one once is_idle() is true"
    )]
    Busy,
}

/// The RFC 4733 event code of a DTMF key (`0`-`9` → 0-9, `*` → 10, `#` → 11, `A`-`D` → 12-15).
pub fn event_for_key(key: char) -> Option<u8> {
    match key {
        '0'..='9' => Some(key as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(key as u8 - b'A' + 12),
        'a'..='d' => Some(key as u8 - b'a' + 12),
        _ => None,
    }
}

/// The DTMF key of an RFC 4733 event code, or `None` for the other events (flash, modem tones…).
pub fn key_for_event(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// One telephone-event report: the 4-octet payload of RFC 4733 §2.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventReport {
    pub event: u8,
    /// E bit: this is (a retransmission of) the event's final packet.
    pub end: bool,
    /// Tone power in -dBm0, 0..=63.
    pub volume: u8,
    /// Time since the event started, in RTP clock units.
    pub duration: u16,
}

impl EventReport {
    pub fn to_bytes(self) -> [u8; 4] {
        let [high, low] = self.duration.to_be_bytes();
        let end = if self.end { 0x80 } else { 0 };
        [self.event, end | (self.volume & 0x3F), high, low]
    }

    /// Reads the first report of a payload. Extra octets (RFC 4733 allows several reports per
    /// packet, §2.5.1.5) are ignored; a payload shorter than four octets is `None`.
    pub fn parse(payload: &[u8]) -> Option<EventReport> {
        let [event, flags, high, low, ..] = *payload else {
            return None;
        };
        Some(EventReport {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([high, low]),
        })
    }
}

/// A telephone-event packet to send: payload, RTP marker bit and RTP timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    pub payload: [u8; 4],
    pub marker: bool,
    /// The RTP timestamp to put in the header: the event's start, the same for all its packets.
    pub timestamp: u32,
    /// When it is due, on the same RTP clock (`timestamp` + the time since the start).
    pub due: u32,
}

#[derive(Debug, Clone)]
struct OutgoingEvent {
    event: u8,
    start: u32,
    /// Total length in clock units, at least 1.
    length: u32,
    /// Packets already sent.
    sent: u32,
}

/// Produces the RFC 4733 packets of one digit at a time, sans-IO: `start` it, then `poll` with
/// the current RTP-clock time until it returns `None` (and `next_due` says when to come back).
#[derive(Debug, Clone)]
pub struct DtmfSender {
    clock_rate: u32,
    interval: u32,
    volume: u8,
    current: Option<OutgoingEvent>,
}

impl DtmfSender {
    /// A sender for a telephone-event stream on an RTP clock of `clock_rate` Hz (8000 unless the
    /// SDP says otherwise), updating every `interval_ms` (usually [`DEFAULT_PACKET_INTERVAL_MS`]).
    pub fn new(clock_rate: u32, interval_ms: u32) -> Result<DtmfSender, DtmfError> {
        if !(8000..=48000).contains(&clock_rate) {
            return Err(DtmfError::InvalidClockRate(clock_rate));
        }
        if !(10..=100).contains(&interval_ms) {
            return Err(DtmfError::InvalidInterval(interval_ms));
        }
        Ok(DtmfSender {
            clock_rate,
            interval: ms_to_clock(interval_ms, clock_rate),
            volume: DEFAULT_VOLUME,
            current: None,
        })
    }

    /// Sets the volume field (-dBm0, clamped to 0..=63) of the next events.
    pub fn set_volume(&mut self, volume: u8) {
        self.volume = volume.min(63);
    }

    /// Begins sending `key` for `duration_ms`, the event starting at RTP time `timestamp`.
    ///
    /// One event fits one duration field (65535 clock units: 8.19 s at 8 kHz, 1.36 s at 48 kHz);
    /// longer presses are shortened to that (RFC 4733 §2.5.1.3 segments are not sent).
    pub fn start(&mut self, key: char, duration_ms: u32, timestamp: u32) -> Result<(), DtmfError> {
        let event = event_for_key(key).ok_or(DtmfError::InvalidKey(key))?;
        if duration_ms == 0 {
            return Err(DtmfError::ZeroDuration);
        }
        if self.current.is_some() {
            return Err(DtmfError::Busy);
        }
        let length = ms_to_clock(duration_ms, self.clock_rate).clamp(1, u32::from(u16::MAX));
        self.current = Some(OutgoingEvent {
            event,
            start: timestamp,
            length,
            sent: 0,
        });
        Ok(())
    }

    /// True when no event is being sent, so `start` will accept the next one.
    pub fn is_idle(&self) -> bool {
        self.current.is_none()
    }

    /// The RTP time at which the next packet is due, if any.
    pub fn next_due(&self) -> Option<u32> {
        let current = self.current.as_ref()?;
        Some(
            current
                .start
                .wrapping_add(self.offset_of(current, current.sent)),
        )
    }

    /// The next packet if it is due at RTP time `now` (timestamps wrap; "due" means not in the
    /// future by the usual half-range rule). Call again until `None`: a late caller catches up.
    pub fn poll(&mut self, now: u32) -> Option<DtmfPacket> {
        let due = self.next_due()?;
        if (now.wrapping_sub(due) as i32) < 0 {
            return None;
        }
        let current = self.current.as_mut()?;
        let updates = updates_before_end(current.length, self.interval);
        let index = current.sent;
        let (end, elapsed) = if index < updates {
            (false, (index + 1) * self.interval)
        } else {
            (true, current.length)
        };
        let report = EventReport {
            event: current.event,
            end,
            volume: self.volume,
            duration: u16::try_from(elapsed).unwrap_or(u16::MAX),
        };
        let packet = DtmfPacket {
            payload: report.to_bytes(),
            marker: index == 0,
            timestamp: current.start,
            due,
        };
        current.sent += 1;
        if current.sent >= updates + FINAL_PACKET_COUNT {
            self.current = None;
        }
        Some(packet)
    }

    /// RTP-time offset from the event start at which packet `index` is due.
    fn offset_of(&self, event: &OutgoingEvent, index: u32) -> u32 {
        let updates = updates_before_end(event.length, self.interval);
        if index < updates {
            (index + 1) * self.interval
        } else {
            event.length + (index - updates) * self.interval
        }
    }
}

/// Interim packets (without E) of an event `length` long: one per full interval that ends before
/// the event does.
fn updates_before_end(length: u32, interval: u32) -> u32 {
    length.saturating_sub(1) / interval.max(1)
}

fn ms_to_clock(ms: u32, clock_rate: u32) -> u32 {
    u32::try_from(u64::from(ms) * u64::from(clock_rate) / 1000).unwrap_or(u32::MAX)
}

/// Every packet of one digit, with the time each is due: the batch form of [`DtmfSender`].
pub fn packets_for(
    key: char,
    duration_ms: u32,
    timestamp: u32,
    interval_ms: u32,
    clock_rate: u32,
) -> Result<Vec<DtmfPacket>, DtmfError> {
    let mut sender = DtmfSender::new(clock_rate, interval_ms)?;
    sender.start(key, duration_ms, timestamp)?;
    let mut packets = Vec::new();
    while let Some(due) = sender.next_due() {
        match sender.poll(due) {
            Some(packet) => packets.push(packet),
            None => break,
        }
    }
    Ok(packets)
}

/// A key press the far end sent, reported once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfDigit {
    pub key: char,
    pub duration_ms: u32,
}

#[derive(Debug, Clone)]
struct IncomingEvent {
    event: u8,
    /// RTP timestamp of the current segment (of the event, unless it is a long one).
    timestamp: u32,
    /// Longest duration seen in the current segment, and the sum of finished segments.
    duration: u16,
    earlier_segments: u64,
    last_heard: Instant,
}

/// Turns received telephone-event payloads into digits, sans-IO: feed packets with
/// `handle_packet`, call `handle_timeout` when `poll_timeout` says, drain `poll_digit`.
#[derive(Debug, Clone)]
pub struct DtmfReceiver {
    clock_rate: u32,
    timeout: Duration,
    current: Option<IncomingEvent>,
    /// Start timestamps of recently reported events, whose stragglers must not count again.
    finished: VecDeque<u32>,
    digits: VecDeque<DtmfDigit>,
}

impl DtmfReceiver {
    /// A receiver for a telephone-event stream on an RTP clock of `clock_rate` Hz.
    pub fn new(clock_rate: u32) -> Result<DtmfReceiver, DtmfError> {
        if !(8000..=48000).contains(&clock_rate) {
            return Err(DtmfError::InvalidClockRate(clock_rate));
        }
        Ok(DtmfReceiver {
            clock_rate,
            timeout: DEFAULT_RECEIVE_TIMEOUT,
            current: None,
            finished: VecDeque::new(),
            digits: VecDeque::new(),
        })
    }

    /// Changes how long an unfinished event may stay silent before it is reported.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Takes one received telephone-event packet: its RTP timestamp and payload. Malformed
    /// payloads and non-DTMF events are ignored.
    pub fn handle_packet(&mut self, now: Instant, timestamp: u32, payload: &[u8]) {
        let Some(report) = EventReport::parse(payload) else {
            return;
        };
        if key_for_event(report.event).is_none() || self.finished.contains(&timestamp) {
            return;
        }
        match self.current.as_mut() {
            Some(current) if current.timestamp == timestamp => {
                current.duration = current.duration.max(report.duration);
                current.last_heard = now;
            }
            Some(current) if is_next_segment(current, report.event, timestamp) => {
                // RFC 4733 §2.5.1.3: a long event goes on under a new timestamp.
                current.earlier_segments += u64::from(current.duration);
                current.timestamp = timestamp;
                current.duration = report.duration;
                current.last_heard = now;
            }
            Some(current) if (timestamp.wrapping_sub(current.timestamp) as i32) < 0 => {
                // Older than the event in progress: a straggler of one we never saw; too late.
                return;
            }
            _ => {
                // A new event (its first packet may have been lost: no marker is needed). One
                // still open lost its end packets: it ended when this one began.
                self.finish();
                self.current = Some(IncomingEvent {
                    event: report.event,
                    timestamp,
                    duration: report.duration,
                    earlier_segments: 0,
                    last_heard: now,
                });
            }
        }
        if report.end {
            self.finish();
        }
    }

    /// Reports an event whose end packets were all lost, once it has been quiet for the timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|deadline| now >= deadline) {
            self.finish();
        }
    }

    /// When `handle_timeout` should next be called, if an event is open.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current
            .as_ref()
            .and_then(|current| current.last_heard.checked_add(self.timeout))
    }

    /// The next received digit, in order.
    pub fn poll_digit(&mut self) -> Option<DtmfDigit> {
        self.digits.pop_front()
    }

    /// Forgets all state, e.g. when the stream's SSRC changes.
    pub fn reset(&mut self) {
        self.current = None;
        self.finished.clear();
    }

    fn finish(&mut self) {
        let Some(event) = self.current.take() else {
            return;
        };
        if self.finished.len() >= FINISHED_MEMORY {
            self.finished.pop_front();
        }
        self.finished.push_back(event.timestamp);
        let Some(key) = key_for_event(event.event) else {
            return;
        };
        let clock_units = event.earlier_segments + u64::from(event.duration);
        let duration_ms = clock_units * 1000 / u64::from(self.clock_rate.max(1));
        self.digits.push_back(DtmfDigit {
            key,
            duration_ms: u32::try_from(duration_ms).unwrap_or(u32::MAX),
        });
    }
}

/// Whether a packet continues a long event whose previous segment filled the duration field.
fn is_next_segment(current: &IncomingEvent, event: u8, timestamp: u32) -> bool {
    event == current.event
        && current.duration > u16::MAX / 2
        && timestamp == current.timestamp.wrapping_add(u32::from(current.duration))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(event: u8, end: bool, duration: u16) -> [u8; 4] {
        EventReport {
            event,
            end,
            volume: 10,
            duration,
        }
        .to_bytes()
    }

    #[test]
    fn digit_5_for_100_ms_at_20_ms_is_byte_exact() {
        let packets = packets_for('5', 100, 0x1234_5678, 20, 8000).expect("valid");
        let expected: Vec<([u8; 4], bool, u32)> = vec![
            ([0x05, 0x0A, 0x00, 0xA0], true, 160),
            ([0x05, 0x0A, 0x01, 0x40], false, 320),
            ([0x05, 0x0A, 0x01, 0xE0], false, 480),
            ([0x05, 0x0A, 0x02, 0x80], false, 640),
            ([0x05, 0x8A, 0x03, 0x20], false, 800),
            ([0x05, 0x8A, 0x03, 0x20], false, 960),
            ([0x05, 0x8A, 0x03, 0x20], false, 1120),
        ];
        let got: Vec<([u8; 4], bool, u32)> = packets
            .iter()
            .map(|p| (p.payload, p.marker, p.due.wrapping_sub(0x1234_5678)))
            .collect();
        assert_eq!(got, expected);
        assert!(packets.iter().all(|p| p.timestamp == 0x1234_5678));
    }

    #[test]
    fn intervals_durations_and_clock_rates() {
        // 50 ms updates: 400, then the end (800) three times, 50 ms apart.
        let packets = packets_for('#', 100, 0, 50, 8000).expect("valid");
        let summary: Vec<(u8, u8, u16, u32)> = packets
            .iter()
            .map(|p| {
                let r = EventReport::parse(&p.payload).expect("4 octets");
                (r.event, u8::from(r.end), r.duration, p.due)
            })
            .collect();
        assert_eq!(
            summary,
            [
                (11, 0, 400, 400),
                (11, 1, 800, 800),
                (11, 1, 800, 1200),
                (11, 1, 800, 1600)
            ]
        );
        // A length that is not a multiple of the interval ends when the event does.
        let packets = packets_for('1', 90, 0, 20, 8000).expect("valid");
        let dues: Vec<u32> = packets.iter().map(|p| p.due).collect();
        assert_eq!(dues, [160, 320, 480, 640, 720, 880, 1040]);
        // Shorter than one interval: the first packet is already the end, and carries the marker.
        let packets = packets_for('D', 10, 0, 20, 8000).expect("valid");
        assert_eq!(packets.len(), 3);
        assert_eq!(packets[0].payload, [15, 0x8A, 0, 80]);
        assert_eq!(
            packets.iter().map(|p| p.marker).collect::<Vec<_>>(),
            [true, false, false]
        );
        // The duration counts the RTP clock, not milliseconds.
        let packets = packets_for('0', 100, 0, 20, 48000).expect("valid");
        assert_eq!(packets[0].payload, [0, 0x0A, 0x03, 0xC0]); // 960
        assert_eq!(packets[4].payload, [0, 0x8A, 0x12, 0xC0]); // 4800
                                                               // Longer than the duration field: one event of 65535 units.
        let packets = packets_for('9', 10_000, 0, 20, 8000).expect("valid");
        assert_eq!(
            packets.last().map(|p| p.payload),
            Some([9, 0x8A, 0xFF, 0xFF])
        );
    }

    #[test]
    fn sender_is_driven_by_the_rtp_clock() {
        let mut sender = DtmfSender::new(8000, 20).expect("valid");
        sender.set_volume(99);
        assert_eq!(sender.next_due(), None);
        // Start just before the timestamp wraps: due times wrap with it.
        let start = u32::MAX - 100;
        sender.start('*', 60, start).expect("idle");
        assert_eq!(sender.start('1', 60, start), Err(DtmfError::Busy));
        assert!(sender.poll(start).is_none(), "nothing is due at the start");
        assert!(sender.poll(start.wrapping_add(159)).is_none());
        let first = sender.poll(start.wrapping_add(160)).expect("due");
        assert_eq!(first.payload, [10, 63, 0, 160], "volume clamped to 63");
        assert!(first.marker);
        assert!(
            sender.poll(start.wrapping_add(160)).is_none(),
            "one per interval"
        );
        // A late caller gets everything that is due, in order.
        let late: Vec<[u8; 4]> = std::iter::from_fn(|| sender.poll(start.wrapping_add(5000)))
            .map(|p| p.payload)
            .collect();
        assert_eq!(
            late,
            [
                [10, 63, 1, 64],
                [10, 0xBF, 1, 0xE0],
                [10, 0xBF, 1, 0xE0],
                [10, 0xBF, 1, 0xE0]
            ]
        );
        assert!(sender.is_idle());
        sender.start('1', 60, 0).expect("idle again");
    }

    #[test]
    fn invalid_input_is_an_error() {
        assert_eq!(
            DtmfSender::new(0, 20).err(),
            Some(DtmfError::InvalidClockRate(0))
        );
        assert_eq!(
            DtmfSender::new(8000, 0).err(),
            Some(DtmfError::InvalidInterval(0))
        );
        assert_eq!(
            DtmfReceiver::new(1).err(),
            Some(DtmfError::InvalidClockRate(1))
        );
        let mut sender = DtmfSender::new(8000, 20).expect("valid");
        assert_eq!(sender.start('x', 100, 0), Err(DtmfError::InvalidKey('x')));
        assert_eq!(sender.start('1', 0, 0), Err(DtmfError::ZeroDuration));
        assert!(sender.is_idle());
    }

    #[test]
    fn keys_and_event_codes() {
        let keys = "0123456789*#ABCD";
        for (code, key) in keys.chars().enumerate() {
            assert_eq!(event_for_key(key), Some(code as u8));
            assert_eq!(key_for_event(code as u8), Some(key));
        }
        assert_eq!(event_for_key('b'), Some(13));
        assert_eq!(event_for_key('E'), None);
        assert_eq!(key_for_event(16), None, "flash is not a key");
        assert_eq!(EventReport::parse(&[1, 2, 3]), None);
        assert_eq!(
            EventReport::parse(&[11, 0x8A, 0x03, 0x20, 0xFF]),
            Some(EventReport {
                event: 11,
                end: true,
                volume: 10,
                duration: 800
            })
        );
    }

    fn receiver() -> (DtmfReceiver, Instant) {
        (DtmfReceiver::new(8000).expect("valid"), Instant::now())
    }

    fn digits(receiver: &mut DtmfReceiver) -> Vec<(char, u32)> {
        std::iter::from_fn(|| receiver.poll_digit())
            .map(|d| (d.key, d.duration_ms))
            .collect()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn receiver_reports_a_sent_digit_once_despite_retransmitted_ends() {
        let (mut rx, t0) = receiver();
        for p in packets_for('5', 100, 4000, 20, 8000).expect("valid") {
            let at = t0 + ms(u64::from(p.due - 4000) / 8);
            rx.handle_packet(at, p.timestamp, &p.payload);
        }
        // The two retransmissions of the end, and a duplicate of the whole burst, change nothing.
        rx.handle_packet(t0 + ms(200), 4000, &packet(5, true, 800));
        rx.handle_packet(t0 + ms(200), 4000, &packet(5, false, 320));
        assert_eq!(digits(&mut rx), [('5', 100)]);
        assert_eq!(rx.poll_timeout(), None);
    }

    #[test]
    fn receiver_copes_with_a_lost_first_packet() {
        let (mut rx, t0) = receiver();
        // No marker packet ever arrives; the event still counts from its first packet seen.
        rx.handle_packet(t0 + ms(40), 8000, &packet(7, false, 320));
        rx.handle_packet(t0 + ms(60), 8000, &packet(7, false, 480));
        assert_eq!(digits(&mut rx), []);
        rx.handle_packet(t0 + ms(80), 8000, &packet(7, true, 640));
        assert_eq!(digits(&mut rx), [('7', 80)]);
    }

    #[test]
    fn receiver_times_out_an_event_whose_ends_were_lost() {
        let (mut rx, t0) = receiver();
        rx.handle_packet(t0 + ms(20), 0, &packet(1, false, 160));
        rx.handle_packet(t0 + ms(40), 0, &packet(1, false, 320));
        assert_eq!(rx.poll_timeout(), Some(t0 + ms(340)));
        rx.handle_timeout(t0 + ms(339));
        assert_eq!(digits(&mut rx), []);
        rx.handle_timeout(t0 + ms(340));
        assert_eq!(digits(&mut rx), [('1', 40)]);
        assert_eq!(rx.poll_timeout(), None);
        // The end packets arriving after all do not report it again.
        rx.handle_packet(t0 + ms(400), 0, &packet(1, true, 800));
        assert_eq!(digits(&mut rx), []);
    }

    #[test]
    fn the_next_digit_closes_one_whose_ends_were_lost() {
        let (mut rx, t0) = receiver();
        rx.handle_packet(t0, 0, &packet(2, false, 160));
        rx.handle_packet(t0 + ms(20), 0, &packet(2, false, 320));
        rx.handle_packet(t0 + ms(100), 1600, &packet(3, false, 160));
        assert_eq!(digits(&mut rx), [('2', 40)]);
        // A straggler from before the digit in progress is dropped.
        rx.handle_packet(t0 + ms(110), 800, &packet(4, true, 160));
        rx.handle_packet(t0 + ms(120), 1600, &packet(3, true, 800));
        assert_eq!(digits(&mut rx), [('3', 100)]);
    }

    #[test]
    fn the_same_key_twice_is_two_digits() {
        let (mut rx, t0) = receiver();
        rx.handle_packet(t0, 0, &packet(9, true, 800));
        rx.handle_packet(t0 + ms(200), 1600, &packet(9, true, 800));
        assert_eq!(digits(&mut rx), [('9', 100), ('9', 100)]);
    }

    #[test]
    fn a_long_event_in_segments_is_one_digit() {
        let (mut rx, t0) = receiver();
        rx.handle_packet(t0, 0, &packet(0, false, 0xFFFF));
        rx.handle_packet(t0 + ms(20), 0xFFFF, &packet(0, false, 800));
        rx.handle_packet(t0 + ms(40), 0xFFFF, &packet(0, true, 1600));
        assert_eq!(digits(&mut rx), [('0', (0xFFFF + 1600) * 1000 / 8000)]);
    }

    #[test]
    fn garbage_and_other_events_are_ignored() {
        let (mut rx, t0) = receiver();
        rx.handle_packet(t0, 0, &[]);
        rx.handle_packet(t0, 0, &[5, 0x80]);
        rx.handle_packet(t0, 0, &packet(16, true, 800)); // flash
        rx.handle_packet(t0, 0, &packet(255, true, 800));
        rx.handle_timeout(t0 + ms(10_000));
        assert_eq!(digits(&mut rx), []);
        assert_eq!(rx.poll_timeout(), None);
    }
}
