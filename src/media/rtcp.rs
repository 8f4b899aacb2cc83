//! RTCP (RFC 3550 §6), sans-IO: compound packet parsing and writing, the report schedule and the
//! per-call report state (what the peer told us, round-trip time).
//!
//! Parsing covers SR, RR, SDES, BYE and skips any other packet type (APP, XR, feedback) by its
//! length. Every length and count from the wire is checked against the bytes actually present;
//! no input panics. Wall-clock time enters only as 64-bit NTP timestamps passed in by the caller
//! ([`ntp_from_unix`] converts), and the report interval's randomness as an argument.
//!
//! Compound packets are not required to start with SR or RR (RFC 3550 A.2 suggests it; RFC 5506
//! relaxes it): being lenient there costs nothing, since every packet is still checked.

use core::time::Duration;
use std::collections::VecDeque;

use super::rtp::{ByteReader, ReceptionReport, RtpSender, RTP_VERSION};

pub const PACKET_TYPE_SENDER_REPORT: u8 = 200;
pub const PACKET_TYPE_RECEIVER_REPORT: u8 = 201;
pub const PACKET_TYPE_SOURCE_DESCRIPTION: u8 = 202;
pub const PACKET_TYPE_BYE: u8 = 203;
pub const PACKET_TYPE_APP: u8 = 204;
/// SDES item type of the canonical name.
pub const SDES_CNAME: u8 = 1;
/// Report blocks, SDES chunks and BYE sources per packet: a 5-bit count.
pub const MAX_COUNT: usize = 31;
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
pub const NTP_UNIX_OFFSET_SECONDS: u64 = 2_208_988_800;

const HEADER_LEN: usize = 4;
const REPORT_BLOCK_LEN: usize = 24;
const SENDER_INFO_LEN: usize = 20;
const NANOS_PER_SECOND: u128 = 1_000_000_000;
/// A computed round trip this far below zero (about 1 ms, in 1/65536 s) is rounding, not nonsense.
const RTT_ROUNDING_TOLERANCE: i32 = 66;

/// Why an RTCP packet could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    #[error("RTCP datagram ends inside {what}: it needs {needed} bytes, {available} are left; the packet is truncated or not RTCP, drop it")]
    Truncated {
        what: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("RTCP version {0} where 2 was expected; the datagram is not RTCP, drop it")]
    BadVersion(u8),
    #[error("RTCP packet type {packet_type} declares {declared} bytes but only {available} remain in the datagram; its length field is wrong, drop the compound packet")]
    LengthExceedsDatagram {
        packet_type: u8,
        declared: usize,
        available: usize,
    },
    #[error("RTCP packet type {packet_type}: padding count {count} does not fit its {available}-byte body (it must be 1 to {available}); drop the compound packet")]
    BadPadding {
        packet_type: u8,
        count: u8,
        available: usize,
    },
    #[error("RTCP packet type {packet_type} claims {count} {what} but its {available}-byte body cannot hold them; drop the compound packet")]
    CountExceedsLength {
        packet_type: u8,
        count: u8,
        what: &'static str,
        available: usize,
    },
    #[error(
        "an RTCP packet holds at most 31 {what}, got {count}; split them over several packets"
    )]
    TooManyEntries { what: &'static str, count: usize },
    #[error("the RTCP {what} is {len} bytes, more than the 255 an SDES item or BYE reason can hold; shorten it")]
    TextTooLong { what: &'static str, len: usize },
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// 24-bit signed on the wire; clamped to that range when written.
    pub cumulative_lost: i32,
    pub extended_highest_sequence: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from `ssrc`, 0 if none.
    pub last_sender_report: u32,
    /// Time between receiving that SR and sending this block, in 1/65536 s.
    pub delay_since_last_sender_report: u32,
}

/// The sender information of a sender report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// Wall-clock time of the report, 64-bit NTP format.
    pub ntp_timestamp: u64,
    /// The RTP timestamp corresponding to `ntp_timestamp` on the media clock.
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

impl SenderInfo {
    /// Sender information from our sender's counters. `rtp_timestamp` is the media clock at
    /// `ntp_timestamp`, which only the caller (who paces the audio) knows.
    pub fn from_sender(sender: &RtpSender, ntp_timestamp: u64, rtp_timestamp: u32) -> Self {
        Self {
            ntp_timestamp,
            rtp_timestamp,
            packet_count: sender.packets_sent(),
            octet_count: sender.octets_sent(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderReport {
    pub ssrc: u32,
    pub sender_info: SenderInfo,
    pub reports: Vec<ReportBlock>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverReport {
    pub ssrc: u32,
    pub reports: Vec<ReportBlock>,
}

/// One SDES item; text that is not UTF-8 is kept lossily.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesItem {
    pub kind: u8,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesChunk {
    pub ssrc: u32,
    pub items: Vec<SdesItem>,
}

impl SdesChunk {
    pub fn cname(&self) -> Option<&str> {
        self.items
            .iter()
            .find(|item| item.kind == SDES_CNAME)
            .map(|item| item.text.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bye {
    pub sources: Vec<u32>,
    pub reason: Option<String>,
}

/// One packet of a compound RTCP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    SenderReport(SenderReport),
    ReceiverReport(ReceiverReport),
    SourceDescription(Vec<SdesChunk>),
    Bye(Bye),
    /// APP, XR, feedback and anything else: skipped by its length, body without padding.
    Other {
        packet_type: u8,
        count: u8,
        body: &'a [u8],
    },
}

/// Parses a compound RTCP datagram into its packets. One bad packet fails the whole datagram,
/// since after a wrong length nothing that follows can be trusted.
pub fn parse_compound(datagram: &[u8]) -> Result<Vec<RtcpPacket<'_>>, RtcpError> {
    if datagram.is_empty() {
        return Err(RtcpError::Truncated {
            what: "an RTCP header",
            needed: HEADER_LEN,
            available: 0,
        });
    }
    let mut reader = ByteReader::new(datagram);
    let mut packets = Vec::new();
    while reader.remaining() > 0 {
        let available = reader.remaining();
        let truncated_header = RtcpError::Truncated {
            what: "an RTCP header",
            needed: HEADER_LEN,
            available,
        };
        let first = reader.u8().ok_or(truncated_header.clone())?;
        let version = first >> 6;
        if version != RTP_VERSION {
            return Err(RtcpError::BadVersion(version));
        }
        let packet_type = reader.u8().ok_or(truncated_header.clone())?;
        let length_words = reader.u16().ok_or(truncated_header)?;
        let declared = (usize::from(length_words) + 1) * 4;
        let body = reader
            .take(declared - HEADER_LEN)
            .ok_or(RtcpError::LengthExceedsDatagram {
                packet_type,
                declared,
                available,
            })?;
        let body = if first & 0x20 != 0 {
            strip_padding(packet_type, body)?
        } else {
            body
        };
        packets.push(parse_packet(packet_type, first & 0x1f, body)?);
    }
    Ok(packets)
}

fn strip_padding(packet_type: u8, body: &[u8]) -> Result<&[u8], RtcpError> {
    let available = body.len();
    let count = body.last().copied().unwrap_or(0);
    if count == 0 || usize::from(count) > available {
        return Err(RtcpError::BadPadding {
            packet_type,
            count,
            available,
        });
    }
    body.get(..available - usize::from(count))
        .ok_or(RtcpError::BadPadding {
            packet_type,
            count,
            available,
        })
}

fn parse_packet(packet_type: u8, count: u8, body: &[u8]) -> Result<RtcpPacket<'_>, RtcpError> {
    let mut reader = ByteReader::new(body);
    match packet_type {
        PACKET_TYPE_SENDER_REPORT => {
            let truncated = RtcpError::Truncated {
                what: "a sender report",
                needed: 4 + SENDER_INFO_LEN,
                available: body.len(),
            };
            let ssrc = reader.u32().ok_or(truncated.clone())?;
            let sender_info = SenderInfo {
                ntp_timestamp: reader.u64().ok_or(truncated.clone())?,
                rtp_timestamp: reader.u32().ok_or(truncated.clone())?,
                packet_count: reader.u32().ok_or(truncated.clone())?,
                octet_count: reader.u32().ok_or(truncated)?,
            };
            let reports = parse_report_blocks(&mut reader, packet_type, count)?;
            Ok(RtcpPacket::SenderReport(SenderReport {
                ssrc,
                sender_info,
                reports,
            }))
        }
        PACKET_TYPE_RECEIVER_REPORT => {
            let ssrc = reader.u32().ok_or(RtcpError::Truncated {
                what: "a receiver report",
                needed: 4,
                available: body.len(),
            })?;
            let reports = parse_report_blocks(&mut reader, packet_type, count)?;
            Ok(RtcpPacket::ReceiverReport(ReceiverReport { ssrc, reports }))
        }
        PACKET_TYPE_SOURCE_DESCRIPTION => {
            parse_sdes(count, body).map(RtcpPacket::SourceDescription)
        }
        PACKET_TYPE_BYE => parse_bye(count, body).map(RtcpPacket::Bye),
        _ => Ok(RtcpPacket::Other {
            packet_type,
            count,
            body,
        }),
    }
}

/// Reads `count` report blocks; bytes after them are profile-specific extensions, ignored.
fn parse_report_blocks(
    reader: &mut ByteReader<'_>,
    packet_type: u8,
    count: u8,
) -> Result<Vec<ReportBlock>, RtcpError> {
    let too_many = RtcpError::CountExceedsLength {
        packet_type,
        count,
        what: "report blocks",
        available: reader.remaining(),
    };
    if reader.remaining() < usize::from(count) * REPORT_BLOCK_LEN {
        return Err(too_many);
    }
    (0..count)
        .map(|_| parse_report_block(reader).ok_or(too_many.clone()))
        .collect()
}

fn parse_report_block(reader: &mut ByteReader<'_>) -> Option<ReportBlock> {
    let ssrc = reader.u32()?;
    let loss = reader.u32()?;
    Some(ReportBlock {
        ssrc,
        fraction_lost: (loss >> 24) as u8,
        // Shift the 24-bit field to the top and back to sign-extend it.
        cumulative_lost: ((loss << 8) as i32) >> 8,
        extended_highest_sequence: reader.u32()?,
        jitter: reader.u32()?,
        last_sender_report: reader.u32()?,
        delay_since_last_sender_report: reader.u32()?,
    })
}

fn parse_sdes(count: u8, body: &[u8]) -> Result<Vec<SdesChunk>, RtcpError> {
    let mut reader = ByteReader::new(body);
    let mut chunks = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let ssrc = reader.u32().ok_or(RtcpError::CountExceedsLength {
            packet_type: PACKET_TYPE_SOURCE_DESCRIPTION,
            count,
            what: "SDES chunks",
            available: body.len(),
        })?;
        let mut items = Vec::new();
        // The item list ends with a null octet, then padding to 32 bits; a body that simply ends
        // also ends the list (some senders skip the terminator of the last chunk).
        while let Some(kind) = reader.u8() {
            if kind == 0 {
                let consumed = body.len() - reader.remaining();
                let padding = (4 - consumed % 4) % 4;
                reader.take(padding.min(reader.remaining()));
                break;
            }
            let len = usize::from(reader.u8().ok_or(RtcpError::Truncated {
                what: "an SDES item",
                needed: 2,
                available: 1,
            })?);
            let available = reader.remaining();
            let text = reader.take(len).ok_or(RtcpError::Truncated {
                what: "an SDES item",
                needed: len,
                available,
            })?;
            items.push(SdesItem {
                kind,
                text: String::from_utf8_lossy(text).into_owned(),
            });
        }
        chunks.push(SdesChunk { ssrc, items });
    }
    Ok(chunks)
}

fn parse_bye(count: u8, body: &[u8]) -> Result<Bye, RtcpError> {
    let mut reader = ByteReader::new(body);
    let too_many = RtcpError::CountExceedsLength {
        packet_type: PACKET_TYPE_BYE,
        count,
        what: "BYE sources",
        available: body.len(),
    };
    let sources = (0..count)
        .map(|_| reader.u32().ok_or(too_many.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let reason = match reader.u8() {
        None | Some(0) => None,
        Some(len) => {
            let available = reader.remaining();
            let text = reader.take(usize::from(len)).ok_or(RtcpError::Truncated {
                what: "the BYE reason",
                needed: usize::from(len),
                available,
            })?;
            Some(String::from_utf8_lossy(text).into_owned())
        }
    };
    Ok(Bye { sources, reason })
}

fn check_count(what: &'static str, count: usize) -> Result<u8, RtcpError> {
    match u8::try_from(count) {
        Ok(count) if usize::from(count) <= MAX_COUNT => Ok(count),
        _ => Err(RtcpError::TooManyEntries { what, count }),
    }
}

fn check_text(what: &'static str, text: &str) -> Result<u8, RtcpError> {
    u8::try_from(text.len()).map_err(|_| RtcpError::TextTooLong {
        what,
        len: text.len(),
    })
}

/// Writes the 4-byte header for a packet whose body (a multiple of 4 bytes) is `body_len` long.
fn push_header(out: &mut Vec<u8>, count: u8, packet_type: u8, body_len: usize) {
    // Every body written here is at most a few hundred bytes, far below 2^18.
    let length_words = (body_len / 4) as u16;
    out.push(RTP_VERSION << 6 | count);
    out.push(packet_type);
    out.extend_from_slice(&length_words.to_be_bytes());
}

fn push_report_block(out: &mut Vec<u8>, block: &ReportBlock) {
    let cumulative = block.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32 & 0x00ff_ffff;
    out.extend_from_slice(&block.ssrc.to_be_bytes());
    out.extend_from_slice(&(u32::from(block.fraction_lost) << 24 | cumulative).to_be_bytes());
    out.extend_from_slice(&block.extended_highest_sequence.to_be_bytes());
    out.extend_from_slice(&block.jitter.to_be_bytes());
    out.extend_from_slice(&block.last_sender_report.to_be_bytes());
    out.extend_from_slice(&block.delay_since_last_sender_report.to_be_bytes());
}

/// Appends a sender report. On error nothing is appended.
pub fn write_sender_report(report: &SenderReport, out: &mut Vec<u8>) -> Result<(), RtcpError> {
    let count = check_count("report blocks", report.reports.len())?;
    let body_len = 4 + SENDER_INFO_LEN + REPORT_BLOCK_LEN * report.reports.len();
    push_header(out, count, PACKET_TYPE_SENDER_REPORT, body_len);
    out.extend_from_slice(&report.ssrc.to_be_bytes());
    let info = &report.sender_info;
    out.extend_from_slice(&info.ntp_timestamp.to_be_bytes());
    out.extend_from_slice(&info.rtp_timestamp.to_be_bytes());
    out.extend_from_slice(&info.packet_count.to_be_bytes());
    out.extend_from_slice(&info.octet_count.to_be_bytes());
    for block in &report.reports {
        push_report_block(out, block);
    }
    Ok(())
}

/// Appends a receiver report (no blocks is valid: "I receive nothing"). On error nothing is
/// appended.
pub fn write_receiver_report(report: &ReceiverReport, out: &mut Vec<u8>) -> Result<(), RtcpError> {
    let count = check_count("report blocks", report.reports.len())?;
    let body_len = 4 + REPORT_BLOCK_LEN * report.reports.len();
    push_header(out, count, PACKET_TYPE_RECEIVER_REPORT, body_len);
    out.extend_from_slice(&report.ssrc.to_be_bytes());
    for block in &report.reports {
        push_report_block(out, block);
    }
    Ok(())
}

/// Appends an SDES packet with one chunk holding only the CNAME. On error nothing is appended.
pub fn write_sdes_cname(ssrc: u32, cname: &str, out: &mut Vec<u8>) -> Result<(), RtcpError> {
    let len = check_text("CNAME", cname)?;
    let chunk_len = 4 + 2 + cname.len();
    // At least one null octet ends the item list, more pad the chunk to 32 bits.
    let terminator = 4 - chunk_len % 4;
    push_header(
        out,
        1,
        PACKET_TYPE_SOURCE_DESCRIPTION,
        chunk_len + terminator,
    );
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(SDES_CNAME);
    out.push(len);
    out.extend_from_slice(cname.as_bytes());
    out.extend(core::iter::repeat_n(0, terminator));
    Ok(())
}

/// Appends a BYE packet. On error nothing is appended.
pub fn write_bye(bye: &Bye, out: &mut Vec<u8>) -> Result<(), RtcpError> {
    let count = check_count("BYE sources", bye.sources.len())?;
    let reason = bye.reason.as_deref().filter(|reason| !reason.is_empty());
    let reason_len = reason.map(|r| check_text("BYE reason", r)).transpose()?;
    let reason_bytes = reason.map_or(0, |r| 1 + r.len());
    let padding = (4 - reason_bytes % 4) % 4;
    push_header(
        out,
        count,
        PACKET_TYPE_BYE,
        4 * bye.sources.len() + reason_bytes + padding,
    );
    for source in &bye.sources {
        out.extend_from_slice(&source.to_be_bytes());
    }
    if let (Some(reason), Some(len)) = (reason, reason_len) {
        out.push(len);
        out.extend_from_slice(reason.as_bytes());
        out.extend(core::iter::repeat_n(0, padding));
    }
    Ok(())
}

/// 64-bit NTP timestamp (seconds since 1900 in the upper half, fraction in the lower) of a time
/// given as the duration since the Unix epoch. The seconds wrap in 2036 like NTP's own.
pub fn ntp_from_unix(since_unix_epoch: Duration) -> u64 {
    let seconds = since_unix_epoch
        .as_secs()
        .wrapping_add(NTP_UNIX_OFFSET_SECONDS) as u32;
    let fraction = (u128::from(since_unix_epoch.subsec_nanos()) << 32) / NANOS_PER_SECOND;
    u64::from(seconds) << 32 | fraction as u64
}

/// The middle 32 bits of an NTP timestamp (16.16 fixed point seconds), as LSR and RTT use.
pub fn compact_ntp(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// A duration in compact NTP units (1/65536 s), saturating; the unit of DLSR.
pub fn duration_to_compact(duration: Duration) -> u32 {
    let units = (duration.as_nanos() << 16) / NANOS_PER_SECOND;
    u32::try_from(units).unwrap_or(u32::MAX)
}

/// A compact NTP value (1/65536 s) as a duration.
pub fn compact_to_duration(compact: u32) -> Duration {
    let nanos = (u128::from(compact) * NANOS_PER_SECOND) >> 16;
    Duration::from_nanos(nanos as u64)
}

/// Round-trip time from a report block about our stream that arrived at `arrival_ntp`
/// (RFC 3550 §6.4.1: A − LSR − DLSR). `None` when the peer has no SR of ours yet (LSR 0) or the
/// result is negative beyond rounding (a bogus block or a clock jump).
pub fn round_trip_time(
    arrival_ntp: u64,
    last_sender_report: u32,
    delay_since_last_sender_report: u32,
) -> Option<Duration> {
    if last_sender_report == 0 {
        return None;
    }
    let round_trip = compact_ntp(arrival_ntp)
        .wrapping_sub(last_sender_report)
        .wrapping_sub(delay_since_last_sender_report);
    // Reinterpreting as signed tells "slightly negative" from "huge".
    match round_trip as i32 {
        positive if positive >= 0 => Some(compact_to_duration(round_trip)),
        negative if negative > -RTT_ROUNDING_TOLERANCE => Some(Duration::ZERO),
        _ => None,
    }
}

/// When to send the next RTCP report: about every `interval` (5 s, the RFC 3550 minimum, which
/// is what a two-party audio call gets), randomized to 0.5–1.5 × so that peers do not
/// synchronize; the first report comes after half of that (RFC 3550 §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpScheduler {
    interval: Duration,
}

impl Default for RtcpScheduler {
    fn default() -> Self {
        Self::new(Self::DEFAULT_INTERVAL)
    }
}

impl RtcpScheduler {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

    pub fn new(interval: Duration) -> Self {
        Self { interval }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The time of the next report, given the time of the last one (`None` before the first).
    /// `random_factor` is a uniform draw from [0, 1) made by the caller; values outside are
    /// clamped and NaN counts as 0.5. An overdue report is due `now`.
    pub fn next_report_at(
        &self,
        now: Duration,
        last: Option<Duration>,
        random_factor: f64,
    ) -> Duration {
        let factor = if random_factor.is_nan() {
            1.0
        } else {
            0.5 + random_factor.clamp(0.0, 1.0)
        };
        let (base, from) = match last {
            Some(last) => (self.interval, last),
            None => (self.interval / 2, now),
        };
        let delay = Duration::try_from_secs_f64(base.as_secs_f64() * factor).unwrap_or(base);
        from.checked_add(delay).unwrap_or(Duration::MAX).max(now)
    }
}

/// What the peer's RTCP told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpEvent {
    /// The peer's sender report (its own sending statistics).
    SenderReport { ssrc: u32, sender_info: SenderInfo },
    /// The peer's report on our stream, with the round trip it yields (if it has seen our SR).
    ReportOnUs {
        reporter: u32,
        block: ReportBlock,
        round_trip_time: Option<Duration>,
    },
    /// A CNAME seen for the first time or changed.
    Cname { ssrc: u32, cname: String },
    Bye {
        sources: Vec<u32>,
        reason: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReceivedSenderReport {
    ssrc: u32,
    compact_ntp: u32,
    arrival_ntp: u64,
}

/// The RTCP state of one call: our SSRC and CNAME, the last SR from the peer (for LSR/DLSR in
/// our reports), and what the peer reports about our stream (loss, jitter, RTT).
///
/// Feed datagrams with [`Self::handle_compound`], then drain [`Self::poll_event`]; build reports
/// with [`Self::write_report`] when [`RtcpScheduler`] says so, and [`Self::write_bye`] at hang-up.
#[derive(Debug, Clone)]
pub struct RtcpSession {
    local_ssrc: u32,
    cname: String,
    remote_sender_report: Option<ReceivedSenderReport>,
    remote_cname: Option<(u32, String)>,
    report_on_us: Option<ReportBlock>,
    round_trip_time: Option<Duration>,
    events: VecDeque<RtcpEvent>,
}

impl RtcpSession {
    /// `cname` identifies us across SSRC changes (RFC 7022: random per call is fine).
    pub fn new(local_ssrc: u32, cname: impl Into<String>) -> Result<Self, RtcpError> {
        let cname = cname.into();
        check_text("CNAME", &cname)?;
        Ok(Self {
            local_ssrc,
            cname,
            remote_sender_report: None,
            remote_cname: None,
            report_on_us: None,
            round_trip_time: None,
            events: VecDeque::new(),
        })
    }

    pub fn local_ssrc(&self) -> u32 {
        self.local_ssrc
    }

    /// The latest round-trip time measured from the peer's reports.
    pub fn round_trip_time(&self) -> Option<Duration> {
        self.round_trip_time
    }

    /// The peer's latest report block about our stream.
    pub fn report_on_us(&self) -> Option<&ReportBlock> {
        self.report_on_us.as_ref()
    }

    pub fn remote_cname(&self) -> Option<&str> {
        self.remote_cname.as_ref().map(|(_, cname)| cname.as_str())
    }

    /// Takes in one RTCP datagram that arrived at `arrival_ntp` (64-bit NTP wall-clock time).
    /// A malformed datagram changes nothing.
    pub fn handle_compound(&mut self, arrival_ntp: u64, datagram: &[u8]) -> Result<(), RtcpError> {
        for packet in parse_compound(datagram)? {
            match packet {
                RtcpPacket::SenderReport(report) => {
                    if report.ssrc != self.local_ssrc {
                        self.remote_sender_report = Some(ReceivedSenderReport {
                            ssrc: report.ssrc,
                            compact_ntp: compact_ntp(report.sender_info.ntp_timestamp),
                            arrival_ntp,
                        });
                    }
                    self.events.push_back(RtcpEvent::SenderReport {
                        ssrc: report.ssrc,
                        sender_info: report.sender_info,
                    });
                    self.handle_blocks(arrival_ntp, report.ssrc, &report.reports);
                }
                RtcpPacket::ReceiverReport(report) => {
                    self.handle_blocks(arrival_ntp, report.ssrc, &report.reports);
                }
                RtcpPacket::SourceDescription(chunks) => {
                    for chunk in chunks {
                        let Some(cname) = chunk.cname() else { continue };
                        let known = self.remote_cname.as_ref();
                        if known.is_some_and(|(ssrc, known)| *ssrc == chunk.ssrc && known == cname)
                        {
                            continue;
                        }
                        self.remote_cname = Some((chunk.ssrc, cname.to_owned()));
                        self.events.push_back(RtcpEvent::Cname {
                            ssrc: chunk.ssrc,
                            cname: cname.to_owned(),
                        });
                    }
                }
                RtcpPacket::Bye(bye) => self.events.push_back(RtcpEvent::Bye {
                    sources: bye.sources,
                    reason: bye.reason,
                }),
                RtcpPacket::Other { .. } => {}
            }
        }
        Ok(())
    }

    fn handle_blocks(&mut self, arrival_ntp: u64, reporter: u32, blocks: &[ReportBlock]) {
        for block in blocks.iter().filter(|block| block.ssrc == self.local_ssrc) {
            let round_trip_time = round_trip_time(
                arrival_ntp,
                block.last_sender_report,
                block.delay_since_last_sender_report,
            );
            if round_trip_time.is_some() {
                self.round_trip_time = round_trip_time;
            }
            self.report_on_us = Some(*block);
            self.events.push_back(RtcpEvent::ReportOnUs {
                reporter,
                block: *block,
                round_trip_time,
            });
        }
    }

    pub fn poll_event(&mut self) -> Option<RtcpEvent> {
        self.events.pop_front()
    }

    /// Appends our compound report at `now_ntp`: an SR when `sender_info` is given (we sent
    /// media since the last report), else an RR; with a block for `reception` (the source we
    /// receive, if it sent anything since the last report), then our SDES CNAME.
    pub fn write_report(
        &self,
        now_ntp: u64,
        sender_info: Option<SenderInfo>,
        reception: Option<ReceptionReport>,
        out: &mut Vec<u8>,
    ) -> Result<(), RtcpError> {
        let reports: Vec<ReportBlock> = reception
            .map(|reception| self.report_block(now_ntp, reception))
            .into_iter()
            .collect();
        let start = out.len();
        let written = match sender_info {
            Some(sender_info) => write_sender_report(
                &SenderReport {
                    ssrc: self.local_ssrc,
                    sender_info,
                    reports,
                },
                out,
            ),
            None => write_receiver_report(
                &ReceiverReport {
                    ssrc: self.local_ssrc,
                    reports,
                },
                out,
            ),
        }
        .and_then(|()| write_sdes_cname(self.local_ssrc, &self.cname, out));
        if written.is_err() {
            out.truncate(start);
        }
        written
    }

    /// Appends the compound packet that ends our stream: an empty RR, our CNAME and a BYE.
    pub fn write_bye(&self, reason: Option<&str>, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        if let Some(reason) = reason {
            check_text("BYE reason", reason)?;
        }
        let start = out.len();
        let written = write_receiver_report(
            &ReceiverReport {
                ssrc: self.local_ssrc,
                reports: Vec::new(),
            },
            out,
        )
        .and_then(|()| write_sdes_cname(self.local_ssrc, &self.cname, out))
        .and_then(|()| {
            write_bye(
                &Bye {
                    sources: vec![self.local_ssrc],
                    reason: reason.map(str::to_owned),
                },
                out,
            )
        });
        if written.is_err() {
            out.truncate(start);
        }
        written
    }

    /// A report block for `reception`, with LSR/DLSR when we hold an SR from that source.
    pub fn report_block(&self, now_ntp: u64, reception: ReceptionReport) -> ReportBlock {
        let (last_sender_report, delay_since_last_sender_report) = match self.remote_sender_report {
            Some(sr) if sr.ssrc == reception.ssrc => (
                sr.compact_ntp,
                compact_ntp(now_ntp).wrapping_sub(compact_ntp(sr.arrival_ntp)),
            ),
            _ => (0, 0),
        };
        ReportBlock {
            ssrc: reception.ssrc,
            fraction_lost: reception.fraction_lost,
            cumulative_lost: reception.cumulative_lost,
            extended_highest_sequence: reception.extended_highest_sequence,
            jitter: reception.jitter,
            last_sender_report,
            delay_since_last_sender_report,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::rtp::{RtpHeader, RtpReceiver};
    use super::*;

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
    }

    /// 10 Nov 1995 11:33:25.125 UTC, the SR time of RFC 3550's RTT example (Figure 2).
    const RFC_SR_TIME: Duration = Duration::from_millis(816_003_205_125);

    fn sample_block() -> ReportBlock {
        ReportBlock {
            ssrc: 0xaabb_ccdd,
            fraction_lost: 25,
            cumulative_lost: 99,
            extended_highest_sequence: 0x0001_03e6,
            jitter: 40,
            last_sender_report: 0xb705_2000,
            delay_since_last_sender_report: 0x0005_4000,
        }
    }

    #[test]
    fn receiver_report_byte_for_byte() {
        let mut out = Vec::new();
        let report = ReceiverReport {
            ssrc: 0x1122_3344,
            reports: vec![sample_block()],
        };
        write_receiver_report(&report, &mut out).expect("writes");
        #[rustfmt::skip]
        let expected = [
            0x81, 0xc9, 0x00, 0x07, // V=2 RC=1, RR, 7 words follow
            0x11, 0x22, 0x33, 0x44,
            0xaa, 0xbb, 0xcc, 0xdd,
            0x19, 0x00, 0x00, 0x63, // 25/256, 99 lost
            0x00, 0x01, 0x03, 0xe6,
            0x00, 0x00, 0x00, 0x28,
            0xb7, 0x05, 0x20, 0x00,
            0x00, 0x05, 0x40, 0x00,
        ];
        assert_eq!(out, expected);
        assert_eq!(
            parse_compound(&out).expect("parses"),
            [RtcpPacket::ReceiverReport(report)]
        );
    }

    #[test]
    fn sender_report_byte_for_byte() {
        let mut out = Vec::new();
        let report = SenderReport {
            ssrc: 0x0102_0304,
            sender_info: SenderInfo {
                ntp_timestamp: ntp_from_unix(RFC_SR_TIME),
                rtp_timestamp: 0x0000_a000,
                packet_count: 250,
                octet_count: 40_000,
            },
            reports: Vec::new(),
        };
        write_sender_report(&report, &mut out).expect("writes");
        #[rustfmt::skip]
        let expected = [
            0x80, 0xc8, 0x00, 0x06,
            0x01, 0x02, 0x03, 0x04,
            0xb4, 0x4d, 0xb7, 0x05, 0x20, 0x00, 0x00, 0x00, // the RFC's NTP time
            0x00, 0x00, 0xa0, 0x00,
            0x00, 0x00, 0x00, 0xfa,
            0x00, 0x00, 0x9c, 0x40,
        ];
        assert_eq!(out, expected);
        assert_eq!(
            parse_compound(&out).expect("parses"),
            [RtcpPacket::SenderReport(report)]
        );
    }

    #[test]
    fn sdes_cname_byte_for_byte_with_null_termination() {
        let mut out = Vec::new();
        write_sdes_cname(0x1122_3344, "user@host", &mut out).expect("writes");
        #[rustfmt::skip]
        let expected = [
            0x81, 0xca, 0x00, 0x04,
            0x11, 0x22, 0x33, 0x44,
            0x01, 0x09, b'u', b's', b'e', b'r', b'@', b'h', b'o', b's', b't', 0x00,
        ];
        assert_eq!(out, expected);

        // A chunk that already ends on 32 bits still needs a whole word of nulls.
        out.clear();
        write_sdes_cname(1, "0123456789", &mut out).expect("writes");
        assert_eq!(out.len(), 24);
        assert_eq!(&out[..4], &[0x81, 0xca, 0x00, 0x05]);
        assert_eq!(&out[20..], &[0, 0, 0, 0]);
        let parsed = parse_compound(&out).expect("parses");
        let [RtcpPacket::SourceDescription(chunks)] = parsed.as_slice() else {
            panic!("{parsed:?}")
        };
        assert_eq!(chunks[0].cname(), Some("0123456789"));
        assert_eq!(chunks[0].ssrc, 1);
    }

    #[test]
    fn bye_byte_for_byte_with_and_without_reason() {
        let mut out = Vec::new();
        let bye = Bye {
            sources: vec![0x1122_3344],
            reason: Some("done".into()),
        };
        write_bye(&bye, &mut out).expect("writes");
        #[rustfmt::skip]
        let expected = [
            0x81, 0xcb, 0x00, 0x03,
            0x11, 0x22, 0x33, 0x44,
            0x04, b'd', b'o', b'n', b'e', 0x00, 0x00, 0x00,
        ];
        assert_eq!(out, expected);
        assert_eq!(
            parse_compound(&out).expect("parses"),
            [RtcpPacket::Bye(bye)]
        );

        out.clear();
        let bye = Bye {
            sources: vec![7, 8],
            reason: None,
        };
        write_bye(&bye, &mut out).expect("writes");
        assert_eq!(out, [0x82, 0xcb, 0, 2, 0, 0, 0, 7, 0, 0, 0, 8]);
        assert_eq!(
            parse_compound(&out).expect("parses"),
            [RtcpPacket::Bye(bye)]
        );
    }

    #[test]
    fn negative_cumulative_loss_is_sign_extended_and_clamped() {
        let mut out = Vec::new();
        let mut block = sample_block();
        block.cumulative_lost = -2;
        write_receiver_report(
            &ReceiverReport {
                ssrc: 1,
                reports: vec![block],
            },
            &mut out,
        )
        .expect("writes");
        assert_eq!(&out[12..16], &[0x19, 0xff, 0xff, 0xfe]);
        let parsed = parse_compound(&out).expect("parses");
        let [RtcpPacket::ReceiverReport(report)] = parsed.as_slice() else {
            panic!("{parsed:?}")
        };
        assert_eq!(report.reports[0].cumulative_lost, -2);

        for (value, wire) in [
            (i32::MAX, [0x7f, 0xff, 0xff]),
            (i32::MIN, [0x80, 0x00, 0x00]),
        ] {
            out.clear();
            block.cumulative_lost = value;
            write_receiver_report(
                &ReceiverReport {
                    ssrc: 1,
                    reports: vec![block],
                },
                &mut out,
            )
            .expect("writes");
            assert_eq!(&out[13..16], &wire);
        }
    }

    #[test]
    fn compound_with_unknown_packets_skips_them() {
        let mut out = Vec::new();
        write_receiver_report(
            &ReceiverReport {
                ssrc: 9,
                reports: Vec::new(),
            },
            &mut out,
        )
        .expect("writes");
        // APP, subtype 1, name "TEST", 4 bytes of data.
        out.extend_from_slice(&[
            0x81, 0xcc, 0, 3, 0, 0, 0, 9, b'T', b'E', b'S', b'T', 1, 2, 3, 4,
        ]);
        // XR with a receiver reference time block.
        out.extend_from_slice(&[
            0x80, 0xcf, 0, 4, 0, 0, 0, 9, 4, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8,
        ]);
        write_sdes_cname(9, "peer", &mut out).expect("writes");
        let packets = parse_compound(&out).expect("parses");
        assert_eq!(packets.len(), 4);
        assert_eq!(
            packets[1],
            RtcpPacket::Other {
                packet_type: PACKET_TYPE_APP,
                count: 1,
                body: &[0, 0, 0, 9, b'T', b'E', b'S', b'T', 1, 2, 3, 4],
            }
        );
        assert!(matches!(
            packets[2],
            RtcpPacket::Other {
                packet_type: 207,
                ..
            }
        ));
        let RtcpPacket::SourceDescription(chunks) = &packets[3] else {
            panic!("{packets:?}")
        };
        assert_eq!(chunks[0].cname(), Some("peer"));
    }

    #[test]
    fn parses_multi_chunk_sdes_with_several_items_and_padding_bit() {
        #[rustfmt::skip]
        let packet = [
            0xa2, 0xca, 0x00, 0x07, // V=2 P SC=2, SDES, 7 words
            0x00, 0x00, 0x00, 0x01,
            0x01, 0x01, b'a', // CNAME "a"
            0x02, 0x02, b'A', b'l', // NAME "Al"
            0x00, // end of items, chunk is 12 bytes
            0x00, 0x00, 0x00, 0x02,
            0x01, 0x02, 0xff, b'b', 0x00, 0x00, 0x00, 0x00, // CNAME with a non-UTF-8 byte
            0x00, 0x00, 0x00, 0x04, // 4 bytes of padding
        ];
        let parsed = parse_compound(&packet).expect("parses");
        let [RtcpPacket::SourceDescription(chunks)] = parsed.as_slice() else {
            panic!("{parsed:?}")
        };
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].cname(), Some("a"));
        assert_eq!(
            chunks[0].items[1],
            SdesItem {
                kind: 2,
                text: "Al".into()
            }
        );
        assert_eq!((chunks[1].ssrc, chunks[1].cname()), (2, Some("\u{fffd}b")));
    }

    #[test]
    fn malformed_compounds_are_errors() {
        let mut good = Vec::new();
        write_receiver_report(
            &ReceiverReport {
                ssrc: 1,
                reports: vec![sample_block()],
            },
            &mut good,
        )
        .expect("writes");
        write_sdes_cname(1, "x@y", &mut good).expect("writes");
        assert_eq!(parse_compound(&good).expect("parses").len(), 2);

        assert_eq!(
            parse_compound(&[]),
            Err(RtcpError::Truncated {
                what: "an RTCP header",
                needed: 4,
                available: 0
            })
        );
        // Garbage after the last packet: less than a header.
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0x80, 0xc9]);
        assert_eq!(
            parse_compound(&trailing),
            Err(RtcpError::Truncated {
                what: "an RTCP header",
                needed: 4,
                available: 2
            })
        );

        let mut bad_version = good.clone();
        bad_version[0] = 0x41;
        assert_eq!(parse_compound(&bad_version), Err(RtcpError::BadVersion(1)));

        let mut lying_length = good.clone();
        lying_length[3] = 0xff;
        assert_eq!(
            parse_compound(&lying_length),
            Err(RtcpError::LengthExceedsDatagram {
                packet_type: PACKET_TYPE_RECEIVER_REPORT,
                declared: 1024,
                available: good.len(),
            })
        );
        assert!(matches!(
            parse_compound(&good[..31]),
            Err(RtcpError::LengthExceedsDatagram {
                declared: 32,
                available: 31,
                ..
            })
        ));

        let mut lying_count = good.clone();
        lying_count[0] = 0x82; // two blocks, room for one
        assert_eq!(
            parse_compound(&lying_count),
            Err(RtcpError::CountExceedsLength {
                packet_type: PACKET_TYPE_RECEIVER_REPORT,
                count: 2,
                what: "report blocks",
                available: 24,
            })
        );

        let short_sr = [0x80, 0xc8, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 0];
        assert!(matches!(
            parse_compound(&short_sr),
            Err(RtcpError::Truncated {
                what: "a sender report",
                ..
            })
        ));
        let empty_rr = [0x80, 0xc9, 0x00, 0x00];
        assert!(matches!(
            parse_compound(&empty_rr),
            Err(RtcpError::Truncated {
                what: "a receiver report",
                ..
            })
        ));

        let lying_item = [0x81, 0xca, 0, 2, 0, 0, 0, 1, 1, 200, b'a', b'b'];
        assert_eq!(
            parse_compound(&lying_item),
            Err(RtcpError::Truncated {
                what: "an SDES item",
                needed: 200,
                available: 2
            })
        );
        let lying_chunks = [0x85, 0xca, 0, 1, 0, 0, 0, 1];
        assert!(matches!(
            parse_compound(&lying_chunks),
            Err(RtcpError::CountExceedsLength {
                what: "SDES chunks",
                ..
            })
        ));

        let lying_reason = [0x81, 0xcb, 0, 2, 0, 0, 0, 1, 9, b'b', b'y', b'e'];
        assert_eq!(
            parse_compound(&lying_reason),
            Err(RtcpError::Truncated {
                what: "the BYE reason",
                needed: 9,
                available: 3
            })
        );
        let lying_sources = [0x84, 0xcb, 0, 1, 0, 0, 0, 1];
        assert!(matches!(
            parse_compound(&lying_sources),
            Err(RtcpError::CountExceedsLength {
                what: "BYE sources",
                ..
            })
        ));

        let mut lying_padding = vec![0xa0, 0xc9, 0, 1, 0, 0, 0, 9];
        assert_eq!(
            parse_compound(&lying_padding),
            Err(RtcpError::BadPadding {
                packet_type: 201,
                count: 9,
                available: 4
            })
        );
        lying_padding[7] = 0;
        assert!(matches!(
            parse_compound(&lying_padding),
            Err(RtcpError::BadPadding { count: 0, .. })
        ));
        let no_body_padding = [0xa0, 0xcc, 0, 0];
        assert!(matches!(
            parse_compound(&no_body_padding),
            Err(RtcpError::BadPadding { available: 0, .. })
        ));
    }

    #[test]
    fn writers_refuse_what_does_not_fit_and_append_nothing() {
        let mut out = vec![0xee];
        let blocks = vec![sample_block(); 32];
        assert_eq!(
            write_receiver_report(
                &ReceiverReport {
                    ssrc: 1,
                    reports: blocks.clone()
                },
                &mut out
            ),
            Err(RtcpError::TooManyEntries {
                what: "report blocks",
                count: 32
            })
        );
        let sender_report = SenderReport {
            ssrc: 1,
            sender_info: SenderInfo::default(),
            reports: blocks,
        };
        assert!(write_sender_report(&sender_report, &mut out).is_err());
        let long = "x".repeat(256);
        assert_eq!(
            write_sdes_cname(1, &long, &mut out),
            Err(RtcpError::TextTooLong {
                what: "CNAME",
                len: 256
            })
        );
        let bye = Bye {
            sources: vec![1],
            reason: Some(long.clone()),
        };
        assert!(matches!(
            write_bye(&bye, &mut out),
            Err(RtcpError::TextTooLong { .. })
        ));
        let bye = Bye {
            sources: vec![1; 40],
            reason: None,
        };
        assert!(matches!(
            write_bye(&bye, &mut out),
            Err(RtcpError::TooManyEntries { .. })
        ));
        assert!(RtcpSession::new(1, long.clone()).is_err());
        let session = RtcpSession::new(1, "me").expect("a valid CNAME");
        assert!(session.write_bye(Some(&long), &mut out).is_err());
        assert_eq!(out, [0xee]);

        // 31 blocks and 255-byte texts are the limits, and they round-trip.
        out.clear();
        let full = ReceiverReport {
            ssrc: 1,
            reports: vec![sample_block(); 31],
        };
        write_receiver_report(&full, &mut out).expect("writes");
        write_sdes_cname(1, &"c".repeat(255), &mut out).expect("writes");
        write_bye(
            &Bye {
                sources: vec![1],
                reason: Some("r".repeat(255)),
            },
            &mut out,
        )
        .expect("writes");
        let packets = parse_compound(&out).expect("parses");
        assert_eq!(packets[0], RtcpPacket::ReceiverReport(full));
        assert!(
            matches!(&packets[2], RtcpPacket::Bye(Bye { reason: Some(r), .. }) if r.len() == 255)
        );
    }

    #[test]
    fn ntp_conversion_matches_the_rfc_example() {
        assert_eq!(ntp_from_unix(RFC_SR_TIME), 0xb44d_b705_2000_0000);
        assert_eq!(compact_ntp(ntp_from_unix(RFC_SR_TIME)), 0xb705_2000);
        assert_eq!(ntp_from_unix(Duration::ZERO), NTP_UNIX_OFFSET_SECONDS << 32);
        assert_eq!(
            duration_to_compact(Duration::from_millis(5250)),
            0x0005_4000
        );
        assert_eq!(
            compact_to_duration(0x0006_2000),
            Duration::from_millis(6125)
        );
        assert_eq!(duration_to_compact(Duration::MAX), u32::MAX);
        // 7 Feb 2036 06:28:16 UTC: NTP era 1 starts, seconds wrap to 0.
        assert_eq!(ntp_from_unix(Duration::from_secs(2_085_978_496)) >> 32, 0);
    }

    #[test]
    fn round_trip_time_of_the_rfc_example_is_6_125_seconds() {
        // A = 0xb710:8000 (46864.500 s), LSR = 0xb705:2000, DLSR = 0x0005:4000 (5.250 s).
        let arrival = ntp_from_unix(RFC_SR_TIME + Duration::from_millis(11_375));
        assert_eq!(compact_ntp(arrival), 0xb710_8000);
        assert_eq!(
            round_trip_time(arrival, 0xb705_2000, 0x0005_4000),
            Some(Duration::from_millis(6125))
        );
        assert_eq!(round_trip_time(arrival, 0, 0), None);
        // A DLSR longer than the whole round trip: a bogus block, not a huge RTT.
        assert_eq!(round_trip_time(arrival, 0xb705_2000, 0x0010_0000), None);
        // Rounding a hair below zero reads as zero.
        assert_eq!(
            round_trip_time(arrival, 0xb705_2000, 0x000b_6001),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn sender_report_to_receiver_report_round_trip_measures_the_injected_delay() {
        let base = Duration::from_secs(1_700_000_000) + Duration::from_micros(123_456);
        let ntp_at = |offset_ms: u64| ntp_from_unix(base + Duration::from_millis(offset_ms));
        let (alice_ssrc, bob_ssrc) = (0xa11c_e000, 0x0b0b_0000);
        let mut alice = RtcpSession::new(alice_ssrc, "alice@ringside").expect("a valid CNAME");
        let mut bob = RtcpSession::new(bob_ssrc, "bob@peer").expect("a valid CNAME");

        // Alice sends 100 packets; Bob receives all but two.
        let mut sender = RtpSender::new(alice_ssrc, 65_500, 1_000);
        let mut receiver = RtpReceiver::new();
        for index in 0..100u64 {
            let header: RtpHeader = sender.next(0, 160, index == 0);
            sender.add_payload_octets(160);
            if index != 40 && index != 41 {
                receiver.receive(Duration::from_millis(20 * index), &header, 8000);
            }
        }

        let mut datagram = Vec::new();
        let info = SenderInfo::from_sender(&sender, ntp_at(0), 17_000);
        assert_eq!((info.packet_count, info.octet_count), (100, 16_000));
        alice
            .write_report(ntp_at(0), Some(info), None, &mut datagram)
            .expect("writes");
        assert_eq!(datagram[1], PACKET_TYPE_SENDER_REPORT);

        // 30 ms one way, Bob holds the SR for 1.5 s, 50 ms back: RTT 80 ms.
        bob.handle_compound(ntp_at(30), &datagram)
            .expect("valid RTCP");
        assert_eq!(
            bob.poll_event(),
            Some(RtcpEvent::SenderReport {
                ssrc: alice_ssrc,
                sender_info: info
            })
        );
        assert_eq!(
            bob.poll_event(),
            Some(RtcpEvent::Cname {
                ssrc: alice_ssrc,
                cname: "alice@ringside".into()
            })
        );
        assert_eq!(bob.poll_event(), None);

        datagram.clear();
        let reception = receiver.reception_report().expect("a report block");
        bob.write_report(ntp_at(1_530), None, Some(reception), &mut datagram)
            .expect("writes");
        assert_eq!(datagram[1], PACKET_TYPE_RECEIVER_REPORT);

        alice
            .handle_compound(ntp_at(1_580), &datagram)
            .expect("valid RTCP");
        let Some(RtcpEvent::ReportOnUs {
            reporter,
            block,
            round_trip_time,
        }) = alice.poll_event()
        else {
            panic!("no report on Alice's stream")
        };
        assert_eq!(reporter, bob_ssrc);
        assert_eq!(block.ssrc, alice_ssrc);
        assert_eq!(block.last_sender_report, compact_ntp(ntp_at(0)));
        let held = duration_to_compact(Duration::from_millis(1500));
        assert!(block.delay_since_last_sender_report.abs_diff(held) <= 1);
        // 99 packets expected after probation (65501..=65599, wrapped), 2 lost: 2 * 256 / 99 = 5.
        assert_eq!((block.fraction_lost, block.cumulative_lost), (5, 2));
        assert_eq!(block.extended_highest_sequence, 0x0001_0000 | 63);
        let round_trip_time = round_trip_time.expect("valid RTCP");
        let error = round_trip_time.abs_diff(Duration::from_millis(80));
        assert!(error <= Duration::from_micros(50), "{round_trip_time:?}");
        assert_eq!(alice.round_trip_time(), Some(round_trip_time));
        assert_eq!(alice.report_on_us(), Some(&block));
        assert_eq!(alice.remote_cname(), Some("bob@peer"));
        assert!(matches!(alice.poll_event(), Some(RtcpEvent::Cname { .. })));
        assert_eq!(alice.poll_event(), None);

        // A report from Bob before he had any SR carries LSR 0: no RTT, the old one stays.
        let fresh_bob = RtcpSession::new(bob_ssrc, "bob@peer").expect("a valid CNAME");
        datagram.clear();
        fresh_bob
            .write_report(ntp_at(2_000), None, Some(reception), &mut datagram)
            .expect("writes");
        alice
            .handle_compound(ntp_at(2_050), &datagram)
            .expect("valid RTCP");
        assert!(matches!(
            alice.poll_event(),
            Some(RtcpEvent::ReportOnUs {
                round_trip_time: None,
                ..
            })
        ));
        assert_eq!(alice.round_trip_time(), Some(round_trip_time));
    }

    #[test]
    fn bye_compound_starts_with_a_report_and_names_us() {
        let session = RtcpSession::new(0x0102_0304, "me@here").expect("a valid CNAME");
        let mut out = Vec::new();
        session.write_bye(Some("hangup"), &mut out).expect("writes");
        let packets = parse_compound(&out).expect("parses");
        assert_eq!(packets.len(), 3);
        assert_eq!(
            packets[0],
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: 0x0102_0304,
                reports: vec![]
            })
        );
        assert_eq!(
            packets[2],
            RtcpPacket::Bye(Bye {
                sources: vec![0x0102_0304],
                reason: Some("hangup".into())
            })
        );

        let mut peer = RtcpSession::new(9, "peer").expect("a valid CNAME");
        peer.handle_compound(0, &out).expect("valid RTCP");
        assert!(matches!(peer.poll_event(), Some(RtcpEvent::Cname { .. })));
        assert_eq!(
            peer.poll_event(),
            Some(RtcpEvent::Bye {
                sources: vec![0x0102_0304],
                reason: Some("hangup".into())
            })
        );
        // A malformed datagram is an error and queues nothing.
        assert!(peer.handle_compound(0, &out[..out.len() - 1]).is_err());
        assert_eq!(peer.poll_event(), None);
    }

    #[test]
    fn scheduler_spreads_reports_around_five_seconds() {
        let scheduler = RtcpScheduler::default();
        let now = Duration::from_secs(100);
        let last = Some(now);
        assert_eq!(
            scheduler.next_report_at(now, last, 0.0),
            now + Duration::from_millis(2500)
        );
        assert_eq!(
            scheduler.next_report_at(now, last, 0.5),
            now + Duration::from_secs(5)
        );
        let latest = scheduler.next_report_at(now, last, 0.999_999);
        assert!(
            latest < now + Duration::from_millis(7500)
                && latest > now + Duration::from_millis(7499)
        );
        // Out-of-range and NaN factors are tamed, not trusted.
        assert_eq!(
            scheduler.next_report_at(now, last, 7.0),
            now + Duration::from_millis(7500)
        );
        assert_eq!(
            scheduler.next_report_at(now, last, -1.0),
            now + Duration::from_millis(2500)
        );
        assert_eq!(
            scheduler.next_report_at(now, last, f64::NAN),
            now + Duration::from_secs(5)
        );
        // The first report comes after half the interval.
        assert_eq!(
            scheduler.next_report_at(now, None, 0.5),
            now + Duration::from_millis(2500)
        );
        // Overdue (the driver slept): due now, not in the past.
        let long_ago = Some(now - Duration::from_secs(60));
        assert_eq!(scheduler.next_report_at(now, long_ago, 0.5), now);
        // Even an absurd interval does not overflow.
        let huge = RtcpScheduler::new(Duration::MAX);
        assert_eq!(huge.next_report_at(now, last, 1.0), Duration::MAX);

        let mut rng = XorShift(5);
        let mut total = Duration::ZERO;
        let mut at = Duration::ZERO;
        for _ in 0..1000 {
            let factor = rng.below(1 << 53) as f64 / (1u64 << 53) as f64;
            let next = scheduler.next_report_at(at, Some(at), factor);
            let gap = next - at;
            assert!(gap >= Duration::from_millis(2500) && gap < Duration::from_millis(7500));
            total += gap;
            at = next;
        }
        let mean = total / 1000;
        assert!(
            mean.abs_diff(Duration::from_secs(5)) < Duration::from_millis(200),
            "{mean:?}"
        );
    }

    #[test]
    fn random_and_mutated_compounds_never_panic() {
        let mut rng = XorShift(0xdead_beef);
        let session = RtcpSession::new(1, "fuzz").expect("a valid CNAME");
        let mut parsed = 0;
        for round in 0..5_000u64 {
            let mut datagram = Vec::new();
            let reception = ReceptionReport {
                ssrc: rng.next() as u32,
                fraction_lost: rng.next() as u8,
                cumulative_lost: rng.next() as i32 >> 8,
                extended_highest_sequence: rng.next() as u32,
                jitter: rng.next() as u32,
            };
            let info = SenderInfo {
                ntp_timestamp: rng.next(),
                rtp_timestamp: rng.next() as u32,
                packet_count: rng.next() as u32,
                octet_count: rng.next() as u32,
            };
            let sender = (round % 2 == 0).then_some(info);
            session
                .write_report(rng.next(), sender, Some(reception), &mut datagram)
                .expect("writes");
            if round % 3 == 0 {
                session
                    .write_bye(Some("fuzzing"), &mut datagram)
                    .expect("writes");
            }
            assert!(parse_compound(&datagram).is_ok());

            for _ in 0..(1 + rng.below(4)) {
                let at = rng.below(datagram.len() as u64) as usize;
                datagram[at] = rng.next() as u8;
            }
            let cut = rng.below(datagram.len() as u64 + 1) as usize;
            let mut receiver = RtcpSession::new(rng.next() as u32, "r").expect("a valid CNAME");
            for bytes in [&datagram[..cut], &datagram[..]] {
                if let Ok(packets) = parse_compound(bytes) {
                    parsed += 1;
                    assert!(packets.len() <= bytes.len() / 4);
                }
                let _ = receiver.handle_compound(rng.next(), bytes);
                while receiver.poll_event().is_some() {}
            }

            let noise: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
            let _ = parse_compound(&noise);
            let mut version_two = noise.clone();
            if let Some(first) = version_two.first_mut() {
                *first = (*first & 0x3f) | 0x80;
            }
            let _ = parse_compound(&version_two);
        }
        assert!(parsed > 500, "only {parsed} mutated compounds parsed");
    }
}
