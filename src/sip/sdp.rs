//! SDP (RFC 8866, which replaced RFC 4566): a lenient parser, a canonical printer, and the
//! RFC 3264 offer/answer negotiation for one audio stream.
//!
//! Sans-IO: plain data in, plain data out. Real peers send SDP with bare LF, trailing spaces,
//! attributes nobody has heard of and `c=IN IP4 0.0.0.0` holds from RFC 2543 days, so the
//! parser only fails on what makes a description unusable (no `v=0`, a broken `o=` or `m=`
//! line, a port that is not a number). Everything else it does not understand is kept and
//! printed back, because a B2BUA or a re-offer must not silently drop a peer's attributes.

use core::fmt;
use core::net::IpAddr;
use core::str::FromStr;

/// Offending lines are quoted in errors; a hostile body must not blow up the log.
const MAX_QUOTED_CHARS: usize = 120;

/// Formats named in a "no common codec" error.
const MAX_DESCRIBED_FORMATS: usize = 16;

/// What we offer for Opus in `a=fmtp` (RFC 7587 §6.1): we decode in-band FEC, and voice needs
/// no more than wideband, so the peer can spend its bits on FEC and robustness instead.
pub const OPUS_FMTP: &str = "useinbandfec=1; maxplaybackrate=16000; sprop-maxcapturerate=16000";
/// The payload type we offer Opus on (dynamic; 111 is what most phones use).
pub const OPUS_PAYLOAD_TYPE: u8 = 111;

/// The `a=ptime` value RFC 3551 assumes for audio when the peer does not say.
pub const DEFAULT_PTIME_MS: u32 = 20;

/// The DTMF events (RFC 4733 0-9, *, #, A-D, flash) we send and understand.
const TELEPHONE_EVENT_FMTP: &str = "0-16";

const TELEPHONE_EVENT: &str = "telephone-event";

/// RFC 3551 static payload types, usable without an `a=rtpmap` line.
const STATIC_PAYLOAD_TYPES: &[(u8, &str, u32, u8)] = &[
    (0, "PCMU", 8000, 1),
    (3, "GSM", 8000, 1),
    (4, "G723", 8000, 1),
    (8, "PCMA", 8000, 1),
    (9, "G722", 8000, 1),
    (13, "CN", 8000, 1),
    (18, "G729", 8000, 1),
];

/// Why an SDP body could not be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("the SDP body is empty: a session description must start with `v=0`; reject the request with 488 Not Acceptable Here")]
    Empty,
    #[error("SDP line {line}: expected `v=0` as the first line, found `{text}`; the body is not SDP version 0, reject it with 488 Not Acceptable Here")]
    BadVersion { line: usize, text: String },
    #[error("the SDP has no `o=` origin line, which every session description needs; reject it with 488 Not Acceptable Here")]
    MissingOrigin,
    #[error("SDP line {line}: malformed origin `{text}`, expected `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>` with numeric ids; reject it with 488 Not Acceptable Here")]
    BadOrigin { line: usize, text: String },
    #[error("SDP line {line}: malformed media line `{text}`, expected `m=<media> <port>[/<count>] <proto> <fmt> ...`; reject it with 488 Not Acceptable Here")]
    BadMedia { line: usize, text: String },
    #[error("SDP line {line}: the port in `{text}` is not a number from 0 to 65535; reject it with 488 Not Acceptable Here")]
    BadPort { line: usize, text: String },
}

/// Why offer/answer found no usable audio stream; the caller answers 488 (UAS) or ends the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error("the SDP has no usable audio stream (an `m=audio` line with a non-zero port and RTP/AVP or RTP/AVPF); answer 488 Not Acceptable Here")]
    NoAudioStream,
    #[error("no codec in common: the peer offers [{offered}] and none of them is in our codec list; answer 488 Not Acceptable Here or enable one of those codecs")]
    NoCommonCodec { offered: String },
    #[error("the audio stream has no connection address (no `c=` line at media or session level); the peer's SDP is incomplete, answer 488 Not Acceptable Here")]
    NoConnectionAddress,
    #[error("the connection address `{0}` is not an IP address; hostnames in `c=` are not resolved here, ask the peer to send a numeric address")]
    UnresolvedAddress(String),
    #[error("the answer rejected our audio stream (port 0); the call has no media, end it or offer other codecs")]
    StreamRejected,
    #[error("the answer has {got} media lines where our offer had {expected}, or a line of another type; RFC 3264 wants one answer line per offered line, in order")]
    MediaMismatch { expected: usize, got: usize },
}

/// A whole session description: the session-level part and its media sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin: Origin,
    /// `s=`; an empty name prints as `s= ` (RFC 8866 §5.3).
    pub session_name: String,
    pub connection: Option<Connection>,
    /// `b=<type>:<value>`, e.g. `("AS", "64")`.
    pub bandwidths: Vec<(String, String)>,
    /// `t=` lines; an empty list prints as `t=0 0`, the only value SIP uses.
    pub times: Vec<Timing>,
    pub attributes: Vec<Attribute>,
    pub media: Vec<MediaDescription>,
    /// Session-level lines we do not model (`i=`, `u=`, `z=`, `k=`, unknown letters, or a
    /// `c=`/`b=`/`t=` line we could not read), kept so they can be printed back.
    pub other_lines: Vec<SdpLine>,
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: u64,
    pub session_version: u64,
    pub network_type: String,
    pub address_type: String,
    /// Kept as text: peers put hostnames here and nobody routes on it.
    pub address: String,
}

/// `c=<nettype> <addrtype> <address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub network_type: String,
    pub address_type: String,
    /// Kept as text: may be a hostname or carry a multicast `/ttl` suffix.
    pub address: String,
}

/// `t=<start> <stop>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timing {
    pub start: u64,
    pub stop: u64,
}

/// `a=<name>` or `a=<name>:<value>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

/// A `<letter>=<value>` line this module does not interpret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpLine {
    pub kind: char,
    pub value: String,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, ...
    pub media: String,
    /// 0 means the stream is rejected or disabled (RFC 3264 §6).
    pub port: u16,
    pub port_count: Option<u16>,
    /// `RTP/AVP`, `RTP/SAVP`, ...
    pub proto: String,
    /// Payload type numbers for RTP, kept as text because other protocols use names.
    pub formats: Vec<String>,
    pub connection: Option<Connection>,
    pub bandwidths: Vec<(String, String)>,
    pub attributes: Vec<Attribute>,
    pub other_lines: Vec<SdpLine>,
}

/// What a payload type stands for, from `a=rtpmap` or the RFC 3551 static table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding_name: String,
    pub clock_rate: u32,
    pub channels: u8,
}

/// Media direction from the point of view of the side that wrote the SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

/// A codec we can use, or the one negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// Encoding name as in `a=rtpmap` (`PCMU`, `opus`, `telephone-event`); matched case-insensitively.
    pub name: String,
    pub clock_rate: u32,
    pub channels: u8,
    pub payload_type: u8,
    pub fmtp: Option<String>,
}

/// Our side of the audio stream: where we receive and what we can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    pub address: IpAddr,
    pub port: u16,
    /// In order of preference; the first one the peer also has wins.
    pub codecs: Vec<Codec>,
    /// Payload type we offer for RFC 4733 DTMF (telephone-event/8000), if any. Codecs on
    /// another RTP clock (Opus: 48000) get telephone-event at their clock too, on the next
    /// free dynamic payload types (RFC 4733 §2.1: events use the audio stream's clock).
    pub telephone_event: Option<u8>,
    pub direction: Direction,
    pub ptime: Option<u32>,
}

/// The outcome of offer/answer for the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub remote_address: IpAddr,
    pub remote_port: u16,
    /// Our codec, with the payload type and `fmtp` the peer's SDP uses for it.
    pub codec: Codec,
    pub telephone_event: Option<u8>,
    /// The RTP clock of that telephone-event (its `a=rtpmap` rate); 8000 without one.
    pub telephone_event_clock: u32,
    /// What we may do: `sends()` means we may transmit RTP, `receives()` that we should play it.
    pub local_direction: Direction,
    /// What the peer's SDP said, as written (its point of view).
    pub remote_direction: Direction,
    /// The peer's address is unspecified (`c=IN IP4 0.0.0.0`, the RFC 2543 hold): send nothing.
    pub remote_on_hold_sentinel: bool,
    /// The peer's `a=ptime`, or [`DEFAULT_PTIME_MS`].
    pub ptime: u32,
    /// Both sides agreed to RTP and RTCP on one port (RFC 5761).
    pub rtcp_mux: bool,
}

// ---------------------------------------------------------------------------------------------
// Parsing

impl SessionDescription {
    /// Parses SDP text. CRLF, bare LF or bare CR line ends, blank lines and surrounding
    /// whitespace are all accepted.
    pub fn parse(text: &str) -> Result<Self, SdpError> {
        let mut lines = numbered_lines(text);
        let (first_number, first_line) = lines.next().ok_or(SdpError::Empty)?;
        match split_type(first_line) {
            Some(('v', value)) if value.trim() == "0" => {}
            _ => {
                return Err(SdpError::BadVersion {
                    line: first_number,
                    text: quote(first_line),
                })
            }
        }

        let mut origin = None;
        let mut session_name = None;
        let mut connection = None;
        let mut bandwidths = Vec::new();
        let mut times = Vec::new();
        let mut attributes = Vec::new();
        let mut other_lines = Vec::new();
        let mut media: Vec<MediaDescription> = Vec::new();

        for (number, line) in lines {
            let Some((kind, value)) = split_type(line) else {
                // Not `<letter>=...`: nothing could print it back as valid SDP.
                continue;
            };
            if kind == 'm' {
                media.push(parse_media_line(number, line, value)?);
                continue;
            }
            if let Some(section) = media.last_mut() {
                section.absorb_line(kind, value);
                continue;
            }
            match kind {
                'o' if origin.is_none() => origin = Some(parse_origin(number, line, value)?),
                's' if session_name.is_none() => session_name = Some(value.to_owned()),
                'c' if connection.is_none() => match Connection::parse(value) {
                    Some(parsed) => connection = Some(parsed),
                    None => other_lines.push(SdpLine::new(kind, value)),
                },
                'b' => match parse_bandwidth(value) {
                    Some(parsed) => bandwidths.push(parsed),
                    None => other_lines.push(SdpLine::new(kind, value)),
                },
                't' => match parse_timing(value) {
                    Some(parsed) => times.push(parsed),
                    None => other_lines.push(SdpLine::new(kind, value)),
                },
                'a' => attributes.push(Attribute::parse(value)),
                _ => other_lines.push(SdpLine::new(kind, value)),
            }
        }

        Ok(SessionDescription {
            origin: origin.ok_or(SdpError::MissingOrigin)?,
            session_name: session_name.unwrap_or_default(),
            connection,
            bandwidths,
            times,
            attributes,
            media,
            other_lines,
        })
    }

    /// Parses an SDP body as received; invalid UTF-8 (a Latin-1 `s=`, say) is replaced, not fatal.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, SdpError> {
        Self::parse(&String::from_utf8_lossy(bytes))
    }

    /// First session-level attribute with this name (names compared case-insensitively).
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        find_attribute(&self.attributes, name)
    }

    /// The session-level direction attribute, if any.
    pub fn session_direction(&self) -> Option<Direction> {
        self.attributes.iter().find_map(Direction::from_attribute)
    }

    /// The first audio stream we could use: non-zero port, plain RTP profile.
    pub fn first_active_audio(&self) -> Option<&MediaDescription> {
        self.media.iter().find(|media| media.is_usable_audio())
    }

    /// A copy for a re-offer (hold, resume): every active stream gets `direction`, the
    /// session-level direction goes away, and the origin carries `version`, which must be
    /// higher than the last version we sent in this session (RFC 3264 §8).
    pub fn with_direction(&self, direction: Direction, version: u64) -> SessionDescription {
        let mut sdp = self.clone();
        sdp.origin.session_version = version;
        sdp.attributes
            .retain(|attribute| Direction::from_attribute(attribute).is_none());
        for media in sdp.media.iter_mut().filter(|media| media.port != 0) {
            media.set_direction(direction);
        }
        sdp
    }
}

impl FromStr for SessionDescription {
    type Err = SdpError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// Non-empty trimmed lines with their 1-based line number (counted in LF-separated lines).
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n')
        .enumerate()
        .flat_map(|(index, physical)| {
            physical
                .split('\r')
                .map(move |line| (index.saturating_add(1), line.trim()))
        })
        .filter(|(_, line)| !line.is_empty())
}

/// `x=value` -> `('x', "value")`; types are one lowercase letter (RFC 8866 §5).
fn split_type(line: &str) -> Option<(char, &str)> {
    let mut chars = line.chars();
    let kind = chars.next().filter(char::is_ascii_lowercase)?;
    let value = chars.as_str().strip_prefix('=')?;
    Some((kind, value))
}

fn quote(line: &str) -> String {
    let mut quoted: String = line.chars().take(MAX_QUOTED_CHARS).collect();
    if line.chars().nth(MAX_QUOTED_CHARS).is_some() {
        quoted.push_str("...");
    }
    quoted
}

fn parse_origin(number: usize, line: &str, value: &str) -> Result<Origin, SdpError> {
    let bad = || SdpError::BadOrigin {
        line: number,
        text: quote(line),
    };
    let fields: Vec<&str> = value.split_whitespace().collect();
    let [username, session_id, session_version, network_type, address_type, address] =
        fields.as_slice()
    else {
        return Err(bad());
    };
    Ok(Origin {
        username: (*username).to_owned(),
        session_id: session_id.parse().map_err(|_| bad())?,
        session_version: session_version.parse().map_err(|_| bad())?,
        network_type: (*network_type).to_owned(),
        address_type: (*address_type).to_owned(),
        address: (*address).to_owned(),
    })
}

fn parse_media_line(number: usize, line: &str, value: &str) -> Result<MediaDescription, SdpError> {
    let mut fields = value.split_whitespace();
    let (Some(media), Some(port_field), Some(proto)) =
        (fields.next(), fields.next(), fields.next())
    else {
        return Err(SdpError::BadMedia {
            line: number,
            text: quote(line),
        });
    };
    let bad_port = || SdpError::BadPort {
        line: number,
        text: quote(line),
    };
    let (port, port_count) = match port_field.split_once('/') {
        Some((port, count)) => (
            port.parse().map_err(|_| bad_port())?,
            Some(count.parse().map_err(|_| bad_port())?),
        ),
        None => (port_field.parse().map_err(|_| bad_port())?, None),
    };
    Ok(MediaDescription {
        media: media.to_owned(),
        port,
        port_count,
        proto: proto.to_owned(),
        formats: fields.map(str::to_owned).collect(),
        connection: None,
        bandwidths: Vec::new(),
        attributes: Vec::new(),
        other_lines: Vec::new(),
    })
}

fn parse_bandwidth(value: &str) -> Option<(String, String)> {
    let (kind, amount) = value.split_once(':')?;
    if kind.is_empty() || amount.is_empty() || kind.contains(char::is_whitespace) {
        return None;
    }
    Some((kind.to_owned(), amount.to_owned()))
}

fn parse_timing(value: &str) -> Option<Timing> {
    let mut fields = value.split_whitespace();
    let timing = Timing {
        start: fields.next()?.parse().ok()?,
        stop: fields.next()?.parse().ok()?,
    };
    fields.next().is_none().then_some(timing)
}

impl Connection {
    /// `IN IP4 <address>` or `IN IP6 <address>`.
    pub fn new(address: IpAddr) -> Self {
        Connection {
            network_type: "IN".to_owned(),
            address_type: address_type(address).to_owned(),
            address: address.to_string(),
        }
    }

    fn parse(value: &str) -> Option<Self> {
        let fields: Vec<&str> = value.split_whitespace().collect();
        let [network_type, address_type, address] = fields.as_slice() else {
            return None;
        };
        Some(Connection {
            network_type: (*network_type).to_owned(),
            address_type: (*address_type).to_owned(),
            address: (*address).to_owned(),
        })
    }

    /// The address as an IP, ignoring a multicast `/ttl[/count]` suffix; `None` for hostnames.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.split('/').next()?.parse().ok()
    }

    /// `0.0.0.0` (or `::`): the peer asks not to be sent media, the RFC 2543 way of holding.
    pub fn is_hold_sentinel(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

impl Attribute {
    /// A property attribute such as `a=sendrecv`.
    pub fn flag(name: impl Into<String>) -> Self {
        Attribute {
            name: name.into(),
            value: None,
        }
    }

    /// A value attribute such as `a=ptime:20`.
    pub fn with_value(name: impl Into<String>, value: impl Into<String>) -> Self {
        Attribute {
            name: name.into(),
            value: Some(value.into()),
        }
    }

    fn parse(value: &str) -> Self {
        match value.split_once(':') {
            Some((name, rest)) => Attribute::with_value(name, rest),
            None => Attribute::flag(value),
        }
    }
}

impl SdpLine {
    fn new(kind: char, value: &str) -> Self {
        SdpLine {
            kind,
            value: value.to_owned(),
        }
    }

    /// RFC 8866 puts `i=`, `u=`, `e=`, `p=` before `c=`; everything else we keep goes later.
    fn belongs_before_connection(&self) -> bool {
        matches!(self.kind, 'i' | 'u' | 'e' | 'p')
    }
}

// ---------------------------------------------------------------------------------------------
// Media helpers

impl MediaDescription {
    fn absorb_line(&mut self, kind: char, value: &str) {
        match kind {
            'c' if self.connection.is_none() => match Connection::parse(value) {
                Some(parsed) => self.connection = Some(parsed),
                None => self.other_lines.push(SdpLine::new(kind, value)),
            },
            'b' => match parse_bandwidth(value) {
                Some(parsed) => self.bandwidths.push(parsed),
                None => self.other_lines.push(SdpLine::new(kind, value)),
            },
            'a' => self.attributes.push(Attribute::parse(value)),
            _ => self.other_lines.push(SdpLine::new(kind, value)),
        }
    }

    /// First attribute with this name (names compared case-insensitively).
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        find_attribute(&self.attributes, name)
    }

    /// Values of every attribute with this name, in order.
    pub fn attribute_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.attributes
            .iter()
            .filter(move |attribute| attribute.name.eq_ignore_ascii_case(name))
            .filter_map(|attribute| attribute.value.as_deref())
    }

    /// The RTP payload types in `m=` order (formats that are not numbers are skipped).
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(|format| format.parse::<u8>().ok())
    }

    /// What `payload_type` stands for: its `a=rtpmap`, or the RFC 3551 static assignment.
    pub fn rtpmap(&self, payload_type: u8) -> Option<RtpMap> {
        self.attribute_values("rtpmap")
            .filter_map(parse_rtpmap)
            .find(|rtpmap| rtpmap.payload_type == payload_type)
            .or_else(|| static_rtpmap(payload_type))
    }

    /// Every payload type of the `m=` line that we can name, in `m=` order (the sender's
    /// preference). Payload types with neither an rtpmap nor a static meaning are left out.
    pub fn rtpmaps(&self) -> Vec<RtpMap> {
        let mut maps: Vec<RtpMap> = Vec::new();
        for payload_type in self.payload_types() {
            if maps.iter().any(|known| known.payload_type == payload_type) {
                continue;
            }
            if let Some(rtpmap) = self.rtpmap(payload_type) {
                maps.push(rtpmap);
            }
        }
        maps
    }

    /// The format parameters of `a=fmtp:<payload_type> <params>`.
    pub fn fmtp(&self, payload_type: u8) -> Option<&str> {
        self.attribute_values("fmtp").find_map(|value| {
            let (number, params) = value.trim().split_once(char::is_whitespace)?;
            (number.parse::<u8>().ok()? == payload_type).then_some(params.trim())
        })
    }

    /// `a=ptime` in milliseconds; fractional values (`20.0`) are truncated.
    pub fn ptime(&self) -> Option<u32> {
        self.attribute_values("ptime").find_map(parse_ptime)
    }

    /// The direction attribute of this section alone.
    pub fn own_direction(&self) -> Option<Direction> {
        self.attributes.iter().find_map(Direction::from_attribute)
    }

    /// Effective direction: this section's attribute, else the session's, else sendrecv.
    pub fn direction(&self, session: &SessionDescription) -> Direction {
        self.own_direction()
            .or_else(|| session.session_direction())
            .unwrap_or_default()
    }

    /// `a=rtcp-mux` (RFC 5761) is present.
    pub fn rtcp_mux(&self) -> bool {
        self.attribute("rtcp-mux").is_some()
    }

    /// Effective connection: this section's `c=`, else the session's.
    pub fn effective_connection<'a>(
        &'a self,
        session: &'a SessionDescription,
    ) -> Option<&'a Connection> {
        self.connection.as_ref().or(session.connection.as_ref())
    }

    /// Effective connection address as an IP (`None` when missing or a hostname).
    pub fn connection_address(&self, session: &SessionDescription) -> Option<IpAddr> {
        self.effective_connection(session).and_then(Connection::ip)
    }

    /// Port 0: rejected in an answer, disabled in an offer.
    pub fn is_rejected(&self) -> bool {
        self.port == 0
    }

    /// Replaces the direction attribute in place (keeping attribute order), or appends one.
    pub fn set_direction(&mut self, direction: Direction) {
        let mut replaced = false;
        self.attributes.retain_mut(|attribute| {
            if Direction::from_attribute(attribute).is_none() {
                return true;
            }
            if replaced {
                return false;
            }
            *attribute = Attribute::flag(direction.as_str());
            replaced = true;
            true
        });
        if !replaced {
            self.attributes.push(Attribute::flag(direction.as_str()));
        }
    }

    fn is_usable_audio(&self) -> bool {
        self.media.eq_ignore_ascii_case("audio")
            && self.port != 0
            && (self.proto.eq_ignore_ascii_case("RTP/AVP")
                || self.proto.eq_ignore_ascii_case("RTP/AVPF"))
    }

    /// The rejected copy of an offered section that an answer must still carry (RFC 3264 §6).
    fn rejected_copy(&self) -> MediaDescription {
        let formats = if self.formats.is_empty() {
            vec!["0".to_owned()]
        } else {
            self.formats.clone()
        };
        MediaDescription {
            media: self.media.clone(),
            port: 0,
            port_count: None,
            proto: self.proto.clone(),
            formats,
            connection: None,
            bandwidths: Vec::new(),
            attributes: Vec::new(),
            other_lines: Vec::new(),
        }
    }

    /// `PCMU/8000, G729/8000, 120` for error messages; a hostile list is cut short.
    fn describe_formats(&self) -> String {
        let mut names: Vec<String> = self
            .formats
            .iter()
            .take(MAX_DESCRIBED_FORMATS)
            .map(
                |format| match format.parse::<u8>().ok().and_then(|pt| self.rtpmap(pt)) {
                    Some(rtpmap) => format!("{}/{}", rtpmap.encoding_name, rtpmap.clock_rate),
                    None => format.clone(),
                },
            )
            .collect();
        if self.formats.len() > MAX_DESCRIBED_FORMATS {
            names.push("...".to_owned());
        }
        names.join(", ")
    }
}

fn find_attribute<'a>(attributes: &'a [Attribute], name: &str) -> Option<&'a Attribute> {
    attributes
        .iter()
        .find(|attribute| attribute.name.eq_ignore_ascii_case(name))
}

/// `<pt> <name>/<clock>[/<channels>]`.
fn parse_rtpmap(value: &str) -> Option<RtpMap> {
    let (number, encoding) = value.trim().split_once(char::is_whitespace)?;
    let mut parts = encoding.trim().split('/');
    let encoding_name = parts.next().filter(|name| !name.is_empty())?;
    let clock_rate = parts.next()?.trim().parse().ok()?;
    let channels = match parts.next() {
        Some(channels) => channels.trim().parse().ok()?,
        None => 1,
    };
    Some(RtpMap {
        payload_type: number.parse().ok()?,
        encoding_name: encoding_name.to_owned(),
        clock_rate,
        channels,
    })
}

fn static_rtpmap(payload_type: u8) -> Option<RtpMap> {
    STATIC_PAYLOAD_TYPES
        .iter()
        .find(|(number, ..)| *number == payload_type)
        .map(|&(number, name, clock_rate, channels)| RtpMap {
            payload_type: number,
            encoding_name: name.to_owned(),
            clock_rate,
            channels,
        })
}

fn parse_ptime(value: &str) -> Option<u32> {
    let value = value.trim();
    let whole = value.split_once('.').map_or(value, |(whole, _)| whole);
    whole.parse().ok().filter(|&ptime| ptime > 0)
}

impl RtpMap {
    fn is_telephone_event(&self) -> bool {
        self.encoding_name.eq_ignore_ascii_case(TELEPHONE_EVENT)
    }

    /// The `a=rtpmap:` value, `8 PCMA/8000` or `111 opus/48000/2`.
    fn attribute_value(&self) -> String {
        encoding_value(
            self.payload_type,
            &self.encoding_name,
            self.clock_rate,
            self.channels,
        )
    }
}

fn encoding_value(payload_type: u8, name: &str, clock_rate: u32, channels: u8) -> String {
    if channels > 1 {
        format!("{payload_type} {name}/{clock_rate}/{channels}")
    } else {
        format!("{payload_type} {name}/{clock_rate}")
    }
}

// ---------------------------------------------------------------------------------------------
// Direction

impl Direction {
    /// From "may send" and "may receive".
    pub fn from_flags(sends: bool, receives: bool) -> Self {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The attribute name: `sendrecv`, `sendonly`, `recvonly`, `inactive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Reads a direction attribute; any other attribute gives `None`.
    pub fn from_attribute(attribute: &Attribute) -> Option<Self> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|direction| attribute.name.eq_ignore_ascii_case(direction.as_str()))
    }

    /// The same stream seen from the other end: sendonly there is recvonly here.
    pub fn reversed(self) -> Self {
        Direction::from_flags(self.receives(), self.sends())
    }

    /// Our answer to an offered direction, given what we want (`self`), per RFC 3264 §6.1: we
    /// send only if we want to and the offerer receives; we receive only if we want to and the
    /// offerer sends. So sendonly gets recvonly (or inactive), recvonly gets sendonly (or
    /// inactive), inactive gets inactive.
    pub fn answer_to(self, offered: Direction) -> Direction {
        Direction::from_flags(
            self.sends() && offered.receives(),
            self.receives() && offered.sends(),
        )
    }

    /// Whether the peer, by signalling this direction, puts us on hold (sendonly: music on
    /// hold towards us; inactive: nothing either way). An unspecified `c=` address is the other
    /// hold signal, see [`Connection::is_hold_sentinel`].
    pub fn is_hold_from_remote(self) -> bool {
        matches!(self, Direction::SendOnly | Direction::Inactive)
    }

    /// What to offer to put the peer on hold: sendonly, or inactive if the peer already holds us.
    pub fn hold_offer(remote_holds_us: bool) -> Direction {
        if remote_holds_us {
            Direction::Inactive
        } else {
            Direction::SendOnly
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Codecs and negotiation

impl Codec {
    pub fn new(name: impl Into<String>, clock_rate: u32, channels: u8, payload_type: u8) -> Self {
        Codec {
            name: name.into(),
            clock_rate,
            channels,
            payload_type,
            fmtp: None,
        }
    }

    /// G.711 µ-law, static payload type 0.
    pub fn pcmu() -> Self {
        Codec::new("PCMU", 8000, 1, 0)
    }

    /// G.711 A-law, static payload type 8.
    pub fn pcma() -> Self {
        Codec::new("PCMA", 8000, 1, 8)
    }

    /// G.722, static payload type 9 (its RTP clock is 8000 although it samples at 16 kHz).
    pub fn g722() -> Self {
        Codec::new("G722", 8000, 1, 9)
    }

    /// Opus (RFC 7587): always `opus/48000/2` in SDP, on a dynamic payload type, with our
    /// [`OPUS_FMTP`].
    pub fn opus(payload_type: u8) -> Self {
        Codec {
            fmtp: Some(OPUS_FMTP.to_owned()),
            ..Codec::new("opus", 48_000, 2, payload_type)
        }
    }

    /// RFC 4733 DTMF events 0-16 at 8000 Hz on a dynamic payload type.
    pub fn telephone_event(payload_type: u8) -> Self {
        Codec {
            fmtp: Some(TELEPHONE_EVENT_FMTP.to_owned()),
            ..Codec::new(TELEPHONE_EVENT, 8000, 1, payload_type)
        }
    }

    /// Same encoding: name (case-insensitive) and clock rate.
    pub fn matches(&self, rtpmap: &RtpMap) -> bool {
        self.name.eq_ignore_ascii_case(&rtpmap.encoding_name)
            && self.clock_rate == rtpmap.clock_rate
    }

    pub fn is_telephone_event(&self) -> bool {
        self.name.eq_ignore_ascii_case(TELEPHONE_EVENT)
    }

    fn rtpmap_value(&self) -> String {
        encoding_value(
            self.payload_type,
            &self.name,
            self.clock_rate,
            self.channels,
        )
    }
}

impl LocalMedia {
    /// PCMU then PCMA, DTMF on payload type 101, sendrecv, 20 ms.
    pub fn g711(address: IpAddr, port: u16) -> Self {
        LocalMedia {
            address,
            port,
            codecs: vec![Codec::pcmu(), Codec::pcma()],
            telephone_event: Some(101),
            direction: Direction::SendRecv,
            ptime: Some(DEFAULT_PTIME_MS),
        }
    }
}

impl Negotiated {
    /// The peer holds us: it signalled sendonly/inactive or an unspecified address.
    pub fn remote_holds_us(&self) -> bool {
        self.remote_on_hold_sentinel || self.remote_direction.is_hold_from_remote()
    }

    /// Where our RTP goes.
    pub fn remote_rtp(&self) -> core::net::SocketAddr {
        core::net::SocketAddr::new(self.remote_address, self.remote_port)
    }
}

fn address_type(address: IpAddr) -> &'static str {
    match address {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

fn session_skeleton(address: IpAddr, session_id: u64, version: u64) -> SessionDescription {
    SessionDescription {
        origin: Origin {
            username: "-".to_owned(),
            session_id,
            session_version: version,
            network_type: "IN".to_owned(),
            address_type: address_type(address).to_owned(),
            address: address.to_string(),
        },
        session_name: "-".to_owned(),
        connection: Some(Connection::new(address)),
        bandwidths: Vec::new(),
        times: vec![Timing::default()],
        attributes: Vec::new(),
        media: Vec::new(),
        other_lines: Vec::new(),
    }
}

fn audio_section(port: u16, proto: &str) -> MediaDescription {
    MediaDescription {
        media: "audio".to_owned(),
        port,
        port_count: None,
        proto: proto.to_owned(),
        formats: Vec::new(),
        connection: None,
        bandwidths: Vec::new(),
        attributes: Vec::new(),
        other_lines: Vec::new(),
    }
}

/// Our initial offer: one `m=audio` RTP/AVP line with every codec in preference order, then
/// telephone-event, each with its rtpmap (static ones too: some peers insist), plus fmtp,
/// ptime and the direction.
pub fn build_offer(local: &LocalMedia, session_id: u64, version: u64) -> SessionDescription {
    let mut sdp = session_skeleton(local.address, session_id, version);
    let mut audio = audio_section(local.port, "RTP/AVP");
    let telephone_events = offered_telephone_events(local);
    let mut offered: Vec<&Codec> = Vec::new();
    for codec in local.codecs.iter().chain(telephone_events.iter()) {
        if offered
            .iter()
            .any(|known| known.payload_type == codec.payload_type)
        {
            continue;
        }
        offered.push(codec);
    }
    for codec in &offered {
        audio.formats.push(codec.payload_type.to_string());
    }
    for codec in &offered {
        audio
            .attributes
            .push(Attribute::with_value("rtpmap", codec.rtpmap_value()));
        if let Some(fmtp) = &codec.fmtp {
            audio.attributes.push(Attribute::with_value(
                "fmtp",
                format!("{} {fmtp}", codec.payload_type),
            ));
        }
    }
    if let Some(ptime) = local.ptime {
        audio
            .attributes
            .push(Attribute::with_value("ptime", ptime.to_string()));
    }
    audio
        .attributes
        .push(Attribute::flag(local.direction.as_str()));
    sdp.media.push(audio);
    sdp
}

/// Our telephone-event formats: the configured payload type at 8000 Hz, then one per other
/// RTP clock among our codecs (48000 for Opus), each on the lowest dynamic payload type from
/// the configured one upwards that no codec uses. G.722's RTP clock is 8000 (RFC 3551 §4.5.2),
/// so it shares the 8000 Hz one.
fn offered_telephone_events(local: &LocalMedia) -> Vec<Codec> {
    let Some(base) = local.telephone_event else {
        return Vec::new();
    };
    let mut events = vec![Codec::telephone_event(base)];
    let mut clocks: Vec<u32> = Vec::new();
    for codec in local.codecs.iter().filter(|c| !c.is_telephone_event()) {
        if codec.clock_rate != 8000 && !clocks.contains(&codec.clock_rate) {
            clocks.push(codec.clock_rate);
        }
    }
    let taken = |payload_type: u8, events: &[Codec]| {
        local.codecs.iter().any(|c| c.payload_type == payload_type)
            || events.iter().any(|e| e.payload_type == payload_type)
    };
    for clock_rate in clocks {
        let free = (base.max(96)..=127)
            .chain(96..base.max(96))
            .find(|&pt| !taken(pt, &events));
        if let Some(payload_type) = free {
            events.push(Codec {
                clock_rate,
                ..Codec::telephone_event(payload_type)
            });
        }
    }
    events
}

/// The remote end of a stream: its IP and whether it is the "send nothing" address.
fn remote_endpoint(
    media: &MediaDescription,
    session: &SessionDescription,
) -> Result<(IpAddr, bool), NegotiationError> {
    let connection = media
        .effective_connection(session)
        .ok_or(NegotiationError::NoConnectionAddress)?;
    let ip = connection
        .ip()
        .ok_or_else(|| NegotiationError::UnresolvedAddress(quote(&connection.address)))?;
    Ok((ip, ip.is_unspecified()))
}

/// Direction of a peer stream once an unspecified address is taken into account: the peer
/// cannot receive what we cannot address.
fn effective_remote_direction(signalled: Direction, hold_sentinel: bool) -> Direction {
    Direction::from_flags(signalled.sends(), signalled.receives() && !hold_sentinel)
}

fn session_ptime(media: &MediaDescription, session: &SessionDescription) -> u32 {
    media
        .ptime()
        .or_else(|| {
            session
                .attributes
                .iter()
                .filter(|attribute| attribute.name.eq_ignore_ascii_case("ptime"))
                .find_map(|attribute| attribute.value.as_deref().and_then(parse_ptime))
        })
        .unwrap_or(DEFAULT_PTIME_MS)
}

/// Picks the peer's telephone-event payload type, preferring the chosen codec's clock rate
/// (RFC 4733 §2.1) and falling back to 8000 Hz.
fn pick_telephone_event(rtpmaps: &[RtpMap], clock_rate: u32) -> Option<&RtpMap> {
    let events = || rtpmaps.iter().filter(|rtpmap| rtpmap.is_telephone_event());
    events()
        .find(|rtpmap| rtpmap.clock_rate == clock_rate)
        .or_else(|| events().find(|rtpmap| rtpmap.clock_rate == 8000))
}

/// Answers `offer` (RFC 3264 §6). The first usable audio stream gets the first codec of OUR
/// preference list that the offer has, under the offer's payload type, plus telephone-event
/// when both sides want it; every other stream is rejected with port 0 in the same position.
pub fn build_answer(
    offer: &SessionDescription,
    local: &LocalMedia,
    session_id: u64,
    version: u64,
) -> Result<(SessionDescription, Negotiated), NegotiationError> {
    let chosen_index = offer
        .media
        .iter()
        .position(MediaDescription::is_usable_audio)
        .ok_or(NegotiationError::NoAudioStream)?;
    let offered = offer
        .media
        .get(chosen_index)
        .ok_or(NegotiationError::NoAudioStream)?;

    let offered_maps = offered.rtpmaps();
    let (codec, offered_map) = local
        .codecs
        .iter()
        .filter(|codec| !codec.is_telephone_event())
        .find_map(|codec| {
            offered_maps
                .iter()
                .filter(|rtpmap| !rtpmap.is_telephone_event())
                .find(|rtpmap| codec.matches(rtpmap))
                .map(|rtpmap| (codec, rtpmap))
        })
        .ok_or_else(|| NegotiationError::NoCommonCodec {
            offered: offered.describe_formats(),
        })?;
    let telephone_event = local
        .telephone_event
        .and_then(|_| pick_telephone_event(&offered_maps, offered_map.clock_rate));

    let (remote_address, hold_sentinel) = remote_endpoint(offered, offer)?;
    let remote_direction = offered.direction(offer);
    let local_direction = local
        .direction
        .answer_to(effective_remote_direction(remote_direction, hold_sentinel));
    let rtcp_mux = offered.rtcp_mux();

    let mut audio = audio_section(local.port, &offered.proto);
    audio.formats.push(offered_map.payload_type.to_string());
    audio.attributes.push(Attribute::with_value(
        "rtpmap",
        offered_map.attribute_value(),
    ));
    if let Some(fmtp) = &codec.fmtp {
        audio.attributes.push(Attribute::with_value(
            "fmtp",
            format!("{} {fmtp}", offered_map.payload_type),
        ));
    }
    if let Some(event) = telephone_event {
        audio.formats.push(event.payload_type.to_string());
        audio
            .attributes
            .push(Attribute::with_value("rtpmap", event.attribute_value()));
        audio.attributes.push(Attribute::with_value(
            "fmtp",
            format!("{} {TELEPHONE_EVENT_FMTP}", event.payload_type),
        ));
    }
    if let Some(ptime) = local.ptime {
        audio
            .attributes
            .push(Attribute::with_value("ptime", ptime.to_string()));
    }
    if rtcp_mux {
        audio.attributes.push(Attribute::flag("rtcp-mux"));
    }
    audio
        .attributes
        .push(Attribute::flag(local_direction.as_str()));

    let mut answer = session_skeleton(local.address, session_id, version);
    answer.media = offer
        .media
        .iter()
        .map(MediaDescription::rejected_copy)
        .collect();
    if let Some(slot) = answer.media.get_mut(chosen_index) {
        *slot = audio;
    }

    let negotiated = Negotiated {
        remote_address,
        remote_port: offered.port,
        codec: Codec {
            name: codec.name.clone(),
            clock_rate: codec.clock_rate,
            channels: offered_map.channels,
            payload_type: offered_map.payload_type,
            fmtp: offered.fmtp(offered_map.payload_type).map(str::to_owned),
        },
        telephone_event: telephone_event.map(|event| event.payload_type),
        telephone_event_clock: telephone_event.map_or(8000, |event| event.clock_rate),
        local_direction,
        remote_direction,
        remote_on_hold_sentinel: hold_sentinel,
        ptime: session_ptime(offered, offer),
        rtcp_mux,
    };
    Ok((answer, negotiated))
}

/// Reads the answer to an offer we sent (RFC 3264 §7). The codec is the answer's first format
/// that our offer had; a peer that renumbered it anyway is matched by name and clock rate.
pub fn accept_answer(
    offer_we_sent: &SessionDescription,
    answer: &SessionDescription,
) -> Result<Negotiated, NegotiationError> {
    let index = offer_we_sent
        .media
        .iter()
        .position(MediaDescription::is_usable_audio)
        .ok_or(NegotiationError::NoAudioStream)?;
    let ours = offer_we_sent
        .media
        .get(index)
        .ok_or(NegotiationError::NoAudioStream)?;
    let mismatch = NegotiationError::MediaMismatch {
        expected: offer_we_sent.media.len(),
        got: answer.media.len(),
    };
    let theirs = answer.media.get(index).ok_or(mismatch.clone())?;
    if !theirs.media.eq_ignore_ascii_case(&ours.media) {
        return Err(mismatch);
    }
    if theirs.is_rejected() {
        return Err(NegotiationError::StreamRejected);
    }

    let our_maps = ours.rtpmaps();
    let their_maps = theirs.rtpmaps();
    let same_number = theirs.payload_types().find_map(|payload_type| {
        our_maps
            .iter()
            .find(|rtpmap| rtpmap.payload_type == payload_type && !rtpmap.is_telephone_event())
    });
    let (our_map, payload_type) = match same_number {
        Some(rtpmap) => (rtpmap, rtpmap.payload_type),
        None => their_maps
            .iter()
            .filter(|theirs| !theirs.is_telephone_event())
            .find_map(|theirs| {
                our_maps
                    .iter()
                    .filter(|ours| !ours.is_telephone_event())
                    .find(|ours| {
                        ours.encoding_name
                            .eq_ignore_ascii_case(&theirs.encoding_name)
                            && ours.clock_rate == theirs.clock_rate
                    })
                    .map(|ours| (ours, theirs.payload_type))
            })
            .ok_or_else(|| NegotiationError::NoCommonCodec {
                offered: theirs.describe_formats(),
            })?,
    };
    let agreed_events: Vec<RtpMap> = their_maps
        .iter()
        .filter(|rtpmap| rtpmap.is_telephone_event())
        .filter(|event| {
            our_maps
                .iter()
                .any(|ours| ours.is_telephone_event() && ours.payload_type == event.payload_type)
        })
        .cloned()
        .collect();
    let telephone_event = pick_telephone_event(&agreed_events, our_map.clock_rate)
        .or_else(|| agreed_events.first())
        .map(|event| (event.payload_type, event.clock_rate));

    let (remote_address, hold_sentinel) = remote_endpoint(theirs, answer)?;
    let remote_direction = theirs.direction(answer);
    let local_direction = ours
        .direction(offer_we_sent)
        .answer_to(effective_remote_direction(remote_direction, hold_sentinel));

    Ok(Negotiated {
        remote_address,
        remote_port: theirs.port,
        codec: Codec {
            name: our_map.encoding_name.clone(),
            clock_rate: our_map.clock_rate,
            channels: our_map.channels,
            payload_type,
            fmtp: theirs.fmtp(payload_type).map(str::to_owned),
        },
        telephone_event: telephone_event.map(|(payload_type, _)| payload_type),
        telephone_event_clock: telephone_event.map_or(8000, |(_, clock_rate)| clock_rate),
        local_direction,
        remote_direction,
        remote_on_hold_sentinel: hold_sentinel,
        ptime: session_ptime(theirs, answer),
        rtcp_mux: ours.rtcp_mux() && theirs.rtcp_mux(),
    })
}

// ---------------------------------------------------------------------------------------------
// Finding the SDP in a message body

/// The SDP part of a message body: the body itself for `application/sdp`, or the
/// `application/sdp` part of a `multipart/*` body (SIP-I/SIP-T gateways send SDP next to ISUP,
/// RFC 5621). `None` when there is no SDP.
pub fn sdp_from_body<'a>(content_type: &str, body: &'a [u8]) -> Option<&'a [u8]> {
    find_sdp(content_type, body, 0)
}

/// Multipart nesting we follow; deeper bodies are not worth a stack frame each.
const MAX_MULTIPART_DEPTH: usize = 3;

fn find_sdp<'a>(content_type: &str, body: &'a [u8], depth: usize) -> Option<&'a [u8]> {
    let mut params = content_type.split(';');
    let media_type = params.next()?.trim();
    if media_type.eq_ignore_ascii_case("application/sdp") {
        return Some(body);
    }
    let is_multipart = media_type
        .get(..10)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("multipart/"));
    if !is_multipart || depth >= MAX_MULTIPART_DEPTH {
        return None;
    }
    let boundary = params.find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"'))
    })?;
    if boundary.is_empty() {
        return None;
    }
    multipart_parts(body, boundary.as_bytes()).find_map(|(part_type, part_body)| {
        find_sdp(
            part_type.as_deref().unwrap_or("text/plain"),
            part_body,
            depth + 1,
        )
    })
}

/// `(content type, body)` of each part between `--boundary` delimiter lines (RFC 2046 §5.1.1).
/// A body cut short of its closing delimiter still yields its last part.
fn multipart_parts<'a>(
    body: &'a [u8],
    boundary: &[u8],
) -> impl Iterator<Item = (Option<String>, &'a [u8])> {
    let mut delimiter = b"--".to_vec();
    delimiter.extend_from_slice(boundary);
    let is_delimiter_at = |index: usize| {
        let at_line_start = index == 0 || body.get(index.wrapping_sub(1)) == Some(&b'\n');
        let after = body
            .get(index..)
            .and_then(|rest| rest.strip_prefix(delimiter.as_slice()));
        at_line_start
            && after.is_some_and(|after| {
                after.is_empty()
                    || after.starts_with(b"--")
                    || matches!(after.first(), Some(b'\r' | b'\n' | b' ' | b'\t'))
            })
    };
    let starts: Vec<usize> = (0..body.len())
        .filter(|&index| is_delimiter_at(index))
        .collect();
    let mut parts = Vec::new();
    for (position, &start) in starts.iter().enumerate() {
        let end = starts.get(position + 1).copied().unwrap_or(body.len());
        let Some(delimiter_and_part) = body.get(start..end) else {
            continue;
        };
        let closing = delimiter_and_part
            .get(delimiter.len()..)
            .is_some_and(|rest| rest.starts_with(b"--"));
        if closing {
            break;
        }
        // The part starts after the delimiter line; the line break before the next
        // delimiter belongs to that delimiter.
        let Some(line_end) = delimiter_and_part.iter().position(|&byte| byte == b'\n') else {
            continue;
        };
        let Some(mut part) = delimiter_and_part.get(line_end + 1..) else {
            continue;
        };
        if end < body.len() {
            part = part.strip_suffix(b"\n").unwrap_or(part);
            part = part.strip_suffix(b"\r").unwrap_or(part);
        }
        parts.push(split_part(part));
    }
    parts.into_iter()
}

fn split_part(part: &[u8]) -> (Option<String>, &[u8]) {
    let (headers, body) = match find_blank_line(part) {
        Some((headers_end, body_start)) => (
            part.get(..headers_end).unwrap_or_default(),
            part.get(body_start..).unwrap_or_default(),
        ),
        None => (part, &[][..]),
    };
    let content_type = String::from_utf8_lossy(headers).lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("content-type") || name.eq_ignore_ascii_case("c"))
            .then(|| value.trim().to_owned())
    });
    (content_type, body)
}

/// End of the part headers and start of the part body. A part that starts with a blank line
/// has no headers.
fn find_blank_line(part: &[u8]) -> Option<(usize, usize)> {
    if part.starts_with(b"\r\n") {
        return Some((0, 2));
    }
    if part.starts_with(b"\n") {
        return Some((0, 1));
    }
    (0..part.len()).find_map(|index| {
        let rest = part.get(index..)?;
        if rest.starts_with(b"\r\n\r\n") {
            Some((index, index + 4))
        } else if rest.starts_with(b"\n\n") {
            Some((index, index + 2))
        } else {
            None
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Printing

impl fmt::Display for SessionDescription {
    /// Canonical RFC 8866 order with CRLF: v o s [i u e p] [c] [b] t [others] [a] m...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("v=0\r\n")?;
        write!(f, "o={}\r\n", self.origin)?;
        if self.session_name.is_empty() {
            f.write_str("s= \r\n")?;
        } else {
            write!(f, "s={}\r\n", self.session_name)?;
        }
        write_lines(
            f,
            self.other_lines
                .iter()
                .filter(|line| line.belongs_before_connection()),
        )?;
        if let Some(connection) = &self.connection {
            write!(f, "c={connection}\r\n")?;
        }
        write_bandwidths(f, &self.bandwidths)?;
        if self.times.is_empty() {
            f.write_str("t=0 0\r\n")?;
        }
        for timing in &self.times {
            write!(f, "t={} {}\r\n", timing.start, timing.stop)?;
        }
        write_lines(
            f,
            self.other_lines
                .iter()
                .filter(|line| !line.belongs_before_connection()),
        )?;
        write_attributes(f, &self.attributes)?;
        for media in &self.media {
            write!(f, "{media}")?;
        }
        Ok(())
    }
}

impl fmt::Display for MediaDescription {
    /// `m=` then [i] [c] [b] [others] [a], each line ending in CRLF.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.media, self.port)?;
        if let Some(count) = self.port_count {
            write!(f, "/{count}")?;
        }
        write!(f, " {}", self.proto)?;
        for format in &self.formats {
            write!(f, " {format}")?;
        }
        f.write_str("\r\n")?;
        write_lines(
            f,
            self.other_lines
                .iter()
                .filter(|line| line.belongs_before_connection()),
        )?;
        if let Some(connection) = &self.connection {
            write!(f, "c={connection}\r\n")?;
        }
        write_bandwidths(f, &self.bandwidths)?;
        write_lines(
            f,
            self.other_lines
                .iter()
                .filter(|line| !line.belongs_before_connection()),
        )?;
        write_attributes(f, &self.attributes)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {}",
            self.username,
            self.session_id,
            self.session_version,
            self.network_type,
            self.address_type,
            self.address
        )
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.network_type, self.address_type, self.address
        )
    }
}

impl fmt::Display for Attribute {
    /// The part after `a=`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}:{value}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

fn write_lines<'a>(
    f: &mut fmt::Formatter<'_>,
    lines: impl Iterator<Item = &'a SdpLine>,
) -> fmt::Result {
    for line in lines {
        write!(f, "{}={}\r\n", line.kind, line.value)?;
    }
    Ok(())
}

fn write_bandwidths(f: &mut fmt::Formatter<'_>, bandwidths: &[(String, String)]) -> fmt::Result {
    for (kind, value) in bandwidths {
        write!(f, "b={kind}:{value}\r\n")?;
    }
    Ok(())
}

fn write_attributes(f: &mut fmt::Formatter<'_>, attributes: &[Attribute]) -> fmt::Result {
    for attribute in attributes {
        write!(f, "a={attribute}\r\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    /// chan_pjsip offer shape.
    const ASTERISK_OFFER: &str = "v=0\r\n\
o=- 1680000001 1680000001 IN IP4 192.0.2.10\r\n\
s=Asterisk\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 17222 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=sendrecv\r\n";

    /// baresip shape: bare LF, session-level a=tool, media-level c= and b=, static payload
    /// types without rtpmap, opus first.
    const BARESIP_OFFER: &str = "v=0\n\
o=- 686726419 1742984825 IN IP4 192.0.2.20\n\
s=-\n\
c=IN IP4 192.0.2.20\n\
t=0 0\n\
a=tool:baresip 1.0.0\n\
m=audio 30244 RTP/AVP 96 9 0 8 101\n\
c=IN IP4 192.0.2.21\n\
b=AS:128\n\
a=rtpmap:96 opus/48000/2\n\
a=fmtp:96 stereo=1;sprop-stereo=1\n\
a=rtpmap:101 telephone-event/8000\n\
a=fmtp:101 0-15\n\
a=label:1\n\
a=rtcp-rsize\n\
a=rtcp-mux\n\
a=ssrc:3498303314 cname:sip:test@example.com\n\
a=sendrecv\n\
a=ptime:20\n";

    const SIPP_OFFER: &str = "v=0\r\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

    /// RFC 2543 style hold from an old gateway: address 0.0.0.0 and no direction attribute.
    const OLD_HOLD_OFFER: &str = "v=0\r\n\
o=CiscoSystemsSIP-GW-UserAgent 4217 2894 IN IP4 192.0.2.30\r\n\
s=SIP Call\r\n\
c=IN IP4 0.0.0.0\r\n\
t=0 0\r\n\
m=audio 18442 RTP/AVP 0 101\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n";

    const AUDIO_VIDEO_OFFER: &str = "v=0\r\n\
o=alice 2890844526 2890844527 IN IP4 192.0.2.40\r\n\
s=-\r\n\
i=A call with video\r\n\
c=IN IP4 192.0.2.40\r\n\
b=AS:512\r\n\
t=0 0\r\n\
m=video 51372 RTP/AVP 31 96\r\n\
c=IN IP4 192.0.2.41\r\n\
b=AS:384\r\n\
a=rtpmap:31 H261/90000\r\n\
a=rtpmap:96 H264/90000\r\n\
a=fmtp:96 profile-level-id=42e01f;packetization-mode=1\r\n\
a=recvonly\r\n\
m=audio 49170 RTP/AVP 97 0\r\n\
a=rtpmap:97 iLBC/8000\r\n\
a=sendrecv\r\n";

    const IPV6_OFFER: &str = "v=0\r\n\
o=- 20518 0 IN IP6 ::1\r\n\
s=-\r\n\
c=IN IP6 ::1\r\n\
t=0 0\r\n\
m=audio 5004 RTP/AVP 8\r\n";

    const ALL_SAMPLES: [&str; 6] = [
        ASTERISK_OFFER,
        BARESIP_OFFER,
        SIPP_OFFER,
        OLD_HOLD_OFFER,
        AUDIO_VIDEO_OFFER,
        IPV6_OFFER,
    ];

    fn parse(text: &str) -> SessionDescription {
        SessionDescription::parse(text).expect("sample SDP parses")
    }

    fn local_ip() -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))
    }

    fn g711_pcma_first() -> LocalMedia {
        LocalMedia {
            codecs: vec![Codec::pcma(), Codec::pcmu()],
            ..LocalMedia::g711(local_ip(), 4000)
        }
    }

    fn rtpmap(payload_type: u8, name: &str, clock_rate: u32, channels: u8) -> RtpMap {
        RtpMap {
            payload_type,
            encoding_name: name.to_owned(),
            clock_rate,
            channels,
        }
    }

    // --- parsing real-world descriptions -------------------------------------------------

    #[test]
    fn asterisk_offer_fields_and_helpers() {
        let sdp = parse(ASTERISK_OFFER);
        assert_eq!(sdp.origin.username, "-");
        assert_eq!(sdp.origin.session_id, 1_680_000_001);
        assert_eq!(sdp.origin.address, "192.0.2.10");
        assert_eq!(sdp.session_name, "Asterisk");
        assert_eq!(sdp.times, vec![Timing { start: 0, stop: 0 }]);
        assert_eq!(sdp.media.len(), 1);
        let audio = &sdp.media[0];
        assert_eq!(
            (audio.media.as_str(), audio.port, audio.proto.as_str()),
            ("audio", 17222, "RTP/AVP")
        );
        assert_eq!(audio.formats, ["0", "8", "101"]);
        assert_eq!(
            audio.rtpmaps(),
            vec![
                rtpmap(0, "PCMU", 8000, 1),
                rtpmap(8, "PCMA", 8000, 1),
                rtpmap(101, "telephone-event", 8000, 1)
            ]
        );
        assert_eq!(audio.fmtp(101), Some("0-16"));
        assert_eq!(audio.fmtp(0), None);
        assert_eq!(audio.ptime(), Some(20));
        assert_eq!(
            audio.attribute("maxptime"),
            Some(&Attribute::with_value("maxptime", "150"))
        );
        assert_eq!(audio.direction(&sdp), Direction::SendRecv);
        assert!(!audio.rtcp_mux());
        assert_eq!(
            audio.connection_address(&sdp),
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)))
        );
    }

    #[test]
    fn baresip_offer_with_bare_lf_static_types_and_media_connection() {
        let sdp = parse(BARESIP_OFFER);
        assert_eq!(
            sdp.attributes,
            vec![Attribute::with_value("tool", "baresip 1.0.0")]
        );
        let audio = &sdp.media[0];
        assert_eq!(audio.bandwidths, vec![("AS".to_owned(), "128".to_owned())]);
        assert_eq!(
            audio.rtpmaps(),
            vec![
                rtpmap(96, "opus", 48000, 2),
                rtpmap(9, "G722", 8000, 1),
                rtpmap(0, "PCMU", 8000, 1),
                rtpmap(8, "PCMA", 8000, 1),
                rtpmap(101, "telephone-event", 8000, 1)
            ]
        );
        assert_eq!(audio.fmtp(96), Some("stereo=1;sprop-stereo=1"));
        assert_eq!(audio.fmtp(101), Some("0-15"));
        assert!(audio.rtcp_mux());
        assert_eq!(
            audio.attribute_values("ssrc").collect::<Vec<_>>(),
            ["3498303314 cname:sip:test@example.com"]
        );
        // media-level c= wins over the session's
        assert_eq!(
            audio.connection_address(&sdp),
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 21)))
        );
    }

    #[test]
    fn sipp_offer() {
        let sdp = parse(SIPP_OFFER);
        assert_eq!(
            sdp.origin,
            Origin {
                username: "user1".to_owned(),
                session_id: 53_655_765,
                session_version: 2_353_687_637,
                network_type: "IN".to_owned(),
                address_type: "IP4".to_owned(),
                address: "127.0.0.1".to_owned(),
            }
        );
        let audio = &sdp.media[0];
        assert_eq!(audio.port, 6000);
        assert_eq!(audio.payload_types().collect::<Vec<_>>(), [0, 8, 101]);
    }

    #[test]
    fn old_style_hold_is_recognised() {
        let sdp = parse(OLD_HOLD_OFFER);
        let audio = &sdp.media[0];
        let connection = audio.effective_connection(&sdp).expect("has c=");
        assert!(connection.is_hold_sentinel());
        assert_eq!(connection.ip(), Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
        // no direction attribute anywhere: sendrecv by default
        assert_eq!(audio.direction(&sdp), Direction::SendRecv);
        assert!(!parse(ASTERISK_OFFER)
            .connection
            .expect("c=")
            .is_hold_sentinel());
    }

    #[test]
    fn two_media_sections_with_video_first() {
        let sdp = parse(AUDIO_VIDEO_OFFER);
        assert_eq!(sdp.bandwidths, vec![("AS".to_owned(), "512".to_owned())]);
        assert_eq!(
            sdp.other_lines,
            vec![SdpLine::new('i', "A call with video")]
        );
        assert_eq!(sdp.media.len(), 2);
        let video = &sdp.media[0];
        assert_eq!(video.media, "video");
        assert_eq!(video.direction(&sdp), Direction::RecvOnly);
        assert_eq!(video.rtpmap(96), Some(rtpmap(96, "H264", 90000, 1)));
        assert_eq!(
            video.connection_address(&sdp),
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 41)))
        );
        let audio = sdp.first_active_audio().expect("audio present");
        assert_eq!(audio.port, 49170);
        assert_eq!(
            audio.connection_address(&sdp),
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 40)))
        );
    }

    #[test]
    fn ipv6_connection() {
        let sdp = parse(IPV6_OFFER);
        assert_eq!(sdp.origin.address_type, "IP6");
        assert_eq!(
            sdp.media[0].connection_address(&sdp),
            Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
        );
        assert!(!sdp.connection.expect("c=").is_hold_sentinel());
    }

    #[test]
    fn line_ending_and_whitespace_leniency() {
        let crlf = parse(SIPP_OFFER);
        let lf = parse(&SIPP_OFFER.replace("\r\n", "\n"));
        let cr = parse(&SIPP_OFFER.replace("\r\n", "\r"));
        let sloppy = parse(&format!(
            "\r\n\r\n{}\r\n\r\n",
            SIPP_OFFER.replace("\r\n", "  \t\r\n\r\n")
        ));
        assert_eq!(lf, crlf);
        assert_eq!(cr, crlf);
        assert_eq!(sloppy, crlf);
    }

    #[test]
    fn ptime_fraction_port_count_and_rejected_stream() {
        let sdp = parse(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nt=0 0\r\n\
m=audio 49170/2 RTP/AVP 0\r\na=ptime:30.0\r\n\
m=video 0 RTP/AVP 31\r\n",
        );
        assert_eq!(sdp.media[0].port_count, Some(2));
        assert_eq!(sdp.media[0].ptime(), Some(30));
        assert!(sdp.media[1].is_rejected());
        assert_eq!(sdp.connection, None);
        assert_eq!(sdp.media[0].connection_address(&sdp), None);
    }

    #[test]
    fn hostname_origin_and_connection_are_kept_as_text() {
        let sdp = parse(
            "v=0\r\no=- 1 1 IN IP4 pbx.example.com\r\ns=-\r\nc=IN IP4 media.example.com\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0\r\n",
        );
        assert_eq!(sdp.origin.address, "pbx.example.com");
        assert_eq!(
            sdp.connection.as_ref().map(|c| c.address.as_str()),
            Some("media.example.com")
        );
        assert_eq!(sdp.connection.as_ref().and_then(Connection::ip), None);
        let error = build_answer(&sdp, &LocalMedia::g711(local_ip(), 4000), 1, 1)
            .expect_err("a hostname cannot be sent to");
        assert_eq!(
            error,
            NegotiationError::UnresolvedAddress("media.example.com".to_owned())
        );
    }

    #[test]
    fn session_level_direction_is_the_fallback() {
        let sdp = parse(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\na=sendonly\r\n\
m=audio 4000 RTP/AVP 0\r\nm=audio 4002 RTP/AVP 0\r\na=inactive\r\n",
        );
        assert_eq!(sdp.media[0].own_direction(), None);
        assert_eq!(sdp.media[0].direction(&sdp), Direction::SendOnly);
        assert_eq!(sdp.media[1].direction(&sdp), Direction::Inactive);
    }

    // --- unknown lines, printing, round trip ---------------------------------------------

    #[test]
    fn unknown_lines_are_kept_and_printed_in_canonical_places() {
        let input = "v=0\n\
o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\n\
s=SDP Seminar\n\
c=IN IP4 224.2.17.12/127\n\
t=2873397496 2873404696\n\
a=recvonly\n\
i=A Seminar on the session description protocol\n\
u=http://www.example.com/seminars/sdp.pdf\n\
e=j.doe@example.com (Jane Doe)\n\
z=2882844526 -1h\n\
y=an unknown line type\n\
b=X-YZ:128\n\
b=broken\n\
NOT AN SDP LINE\n\
m=audio 49170 RTP/AVP 0\n\
a=x-custom:some value\n\
k=prompt\n\
i=media title\n\
a=flag-only\n\
m=video 51372 RTP/AVP 99\n\
a=rtpmap:99 h263-1998/90000\n";
        let sdp = parse(input);
        assert_eq!(
            sdp.connection.as_ref().map(|c| c.address.as_str()),
            Some("224.2.17.12/127")
        );
        assert_eq!(
            sdp.connection.as_ref().and_then(Connection::ip),
            Some(IpAddr::V4(Ipv4Addr::new(224, 2, 17, 12)))
        );
        assert_eq!(sdp.bandwidths, vec![("X-YZ".to_owned(), "128".to_owned())]);
        let expected = "v=0\r\n\
o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\r\n\
s=SDP Seminar\r\n\
i=A Seminar on the session description protocol\r\n\
u=http://www.example.com/seminars/sdp.pdf\r\n\
e=j.doe@example.com (Jane Doe)\r\n\
c=IN IP4 224.2.17.12/127\r\n\
b=X-YZ:128\r\n\
t=2873397496 2873404696\r\n\
z=2882844526 -1h\r\n\
y=an unknown line type\r\n\
b=broken\r\n\
a=recvonly\r\n\
m=audio 49170 RTP/AVP 0\r\n\
i=media title\r\n\
k=prompt\r\n\
a=x-custom:some value\r\n\
a=flag-only\r\n\
m=video 51372 RTP/AVP 99\r\n\
a=rtpmap:99 h263-1998/90000\r\n";
        assert_eq!(sdp.to_string(), expected);
        assert_eq!(parse(expected).to_string(), expected);
    }

    #[test]
    fn print_puts_lines_in_canonical_order() {
        // attributes and bandwidth before c=/t= in the input
        let sdp = parse(
            "v=0\no=- 5 6 IN IP4 192.0.2.5\na=group:x\nb=AS:64\nt=0 0\nc=IN IP4 192.0.2.5\ns=\n\
m=audio 4000 RTP/AVP 0\na=sendrecv\nb=TIAS:64000\nc=IN IP4 192.0.2.6\n",
        );
        assert_eq!(sdp.session_name, "");
        assert_eq!(
            sdp.to_string(),
            "v=0\r\no=- 5 6 IN IP4 192.0.2.5\r\ns= \r\nc=IN IP4 192.0.2.5\r\nb=AS:64\r\nt=0 0\r\n\
a=group:x\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 192.0.2.6\r\nb=TIAS:64000\r\na=sendrecv\r\n"
        );
    }

    #[test]
    fn round_trip_of_every_sample() {
        for sample in ALL_SAMPLES {
            let parsed = parse(sample);
            let printed = parsed.to_string();
            assert!(printed.ends_with("\r\n"));
            assert!(!printed.replace("\r\n", "").contains('\n'));
            assert_eq!(parse(&printed), parsed, "round trip of:\n{sample}");
        }
        // CRLF samples already in canonical order print back byte for byte
        for sample in [
            ASTERISK_OFFER,
            SIPP_OFFER,
            OLD_HOLD_OFFER,
            AUDIO_VIDEO_OFFER,
            IPV6_OFFER,
        ] {
            assert_eq!(parse(sample).to_string(), sample);
        }
    }

    #[test]
    fn round_trip_of_built_descriptions() {
        let offer = build_offer(&LocalMedia::g711(local_ip(), 4000), 1, 2);
        assert_eq!(parse(&offer.to_string()), offer);
        let (answer, _) = build_answer(
            &parse(AUDIO_VIDEO_OFFER),
            &LocalMedia::g711(local_ip(), 4000),
            3,
            4,
        )
        .expect("negotiates");
        assert_eq!(parse(&answer.to_string()), answer);
        let held = offer.with_direction(Direction::SendOnly, 3);
        assert_eq!(parse(&held.to_string()), held);
    }

    #[test]
    fn parse_bytes_tolerates_latin1() {
        let mut bytes = SIPP_OFFER.replace("s=-", "s=Caf\u{e9}").into_bytes();
        // re-encode the é as Latin-1
        let position = bytes
            .windows(2)
            .position(|w| w == [0xc3, 0xa9])
            .expect("é present");
        bytes.splice(position..position + 2, [0xe9]);
        let sdp = SessionDescription::parse_bytes(&bytes).expect("parses");
        assert_eq!(sdp.session_name, "Caf\u{fffd}");
        assert_eq!(sdp.media[0].port, 6000);
    }

    // --- errors ---------------------------------------------------------------------------

    #[test]
    fn errors_name_the_line_and_quote_it() {
        let cases: [(&str, SdpError); 9] = [
            ("", SdpError::Empty),
            (" \r\n\r\n", SdpError::Empty),
            (
                "o=- 1 1 IN IP4 192.0.2.1\r\n",
                SdpError::BadVersion { line: 1, text: "o=- 1 1 IN IP4 192.0.2.1".to_owned() },
            ),
            (
                "\r\nv=1\r\no=- 1 1 IN IP4 192.0.2.1\r\n",
                SdpError::BadVersion { line: 2, text: "v=1".to_owned() },
            ),
            ("v=0\r\ns=-\r\nt=0 0\r\n", SdpError::MissingOrigin),
            (
                "v=0\r\no=- abc 1 IN IP4 192.0.2.1\r\n",
                SdpError::BadOrigin { line: 2, text: "o=- abc 1 IN IP4 192.0.2.1".to_owned() },
            ),
            (
                "v=0\r\no=- 1 1 IN IP4\r\n",
                SdpError::BadOrigin { line: 2, text: "o=- 1 1 IN IP4".to_owned() },
            ),
            (
                "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\nm=audio 4000\n",
                SdpError::BadMedia { line: 5, text: "m=audio 4000".to_owned() },
            ),
            (
                "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\na=x\nm=audio abc RTP/AVP 0\n",
                SdpError::BadPort { line: 7, text: "m=audio abc RTP/AVP 0".to_owned() },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                SessionDescription::parse(input),
                Err(expected),
                "input {input:?}"
            );
        }
        for bad_port in [
            "m=audio 65536 RTP/AVP 0",
            "m=audio -1 RTP/AVP 0",
            "m=audio 4000/x RTP/AVP 0",
        ] {
            let input = format!("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n{bad_port}\r\n");
            assert_eq!(
                SessionDescription::parse(&input),
                Err(SdpError::BadPort {
                    line: 3,
                    text: bad_port.to_owned()
                })
            );
        }
        let message = SdpError::BadPort {
            line: 7,
            text: "m=audio abc RTP/AVP 0".to_owned(),
        }
        .to_string();
        assert!(
            message.contains("line 7") && message.contains("m=audio abc RTP/AVP 0"),
            "{message}"
        );
        assert!(message.contains("488"), "{message}");
    }

    #[test]
    fn long_offending_lines_are_truncated_in_errors() {
        let long = format!("v=0\r\no=- x {}\r\n", "é".repeat(500));
        let Err(SdpError::BadOrigin { text, .. }) = SessionDescription::parse(&long) else {
            panic!("expected BadOrigin");
        };
        assert_eq!(text.chars().count(), MAX_QUOTED_CHARS + 3);
        assert!(text.ends_with("..."));
    }

    // --- direction ------------------------------------------------------------------------

    #[test]
    fn answer_direction_table_rfc3264() {
        use Direction::*;
        let all = [SendRecv, SendOnly, RecvOnly, Inactive];
        // (our wish, offered) -> answer
        let expected = [
            // wish SendRecv
            [SendRecv, RecvOnly, SendOnly, Inactive],
            // wish SendOnly (we hold while answering)
            [SendOnly, Inactive, SendOnly, Inactive],
            // wish RecvOnly
            [RecvOnly, RecvOnly, Inactive, Inactive],
            // wish Inactive
            [Inactive, Inactive, Inactive, Inactive],
        ];
        for (wish, row) in all.iter().zip(expected) {
            for (offered, answer) in all.iter().zip(row) {
                assert_eq!(
                    wish.answer_to(*offered),
                    answer,
                    "wish {wish} offered {offered}"
                );
            }
        }
    }

    #[test]
    fn direction_helpers() {
        use Direction::*;
        assert_eq!(SendOnly.reversed(), RecvOnly);
        assert_eq!(RecvOnly.reversed(), SendOnly);
        assert_eq!(SendRecv.reversed(), SendRecv);
        assert_eq!(Inactive.reversed(), Inactive);
        assert!(SendOnly.is_hold_from_remote());
        assert!(Inactive.is_hold_from_remote());
        assert!(!SendRecv.is_hold_from_remote());
        assert!(!RecvOnly.is_hold_from_remote());
        assert_eq!(Direction::hold_offer(false), SendOnly);
        assert_eq!(Direction::hold_offer(true), Inactive);
        assert_eq!(
            Direction::from_attribute(&Attribute::flag("SendOnly")),
            Some(SendOnly)
        );
        assert_eq!(
            Direction::from_attribute(&Attribute::flag("rtcp-mux")),
            None
        );
        assert_eq!(Direction::default(), SendRecv);
        assert_eq!(Inactive.to_string(), "inactive");
    }

    // --- offers ---------------------------------------------------------------------------

    #[test]
    fn build_offer_exact_text() {
        let offer = build_offer(&LocalMedia::g711(local_ip(), 4000), 42, 42);
        assert_eq!(
            offer.to_string(),
            "v=0\r\n\
o=- 42 42 IN IP4 192.0.2.1\r\n\
s=-\r\n\
c=IN IP4 192.0.2.1\r\n\
t=0 0\r\n\
m=audio 4000 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n"
        );
    }

    #[test]
    fn build_offer_is_data_driven_and_ipv6_ready() {
        let local = LocalMedia {
            address: IpAddr::V6(Ipv6Addr::LOCALHOST),
            port: 5004,
            codecs: vec![
                Codec {
                    fmtp: Some("useinbandfec=1".to_owned()),
                    ..Codec::new("opus", 48000, 2, 111)
                },
                Codec::g722(),
                Codec::pcmu(),
            ],
            telephone_event: None,
            direction: Direction::RecvOnly,
            ptime: None,
        };
        assert_eq!(
            build_offer(&local, 7, 8).to_string(),
            "v=0\r\n\
o=- 7 8 IN IP6 ::1\r\n\
s=-\r\n\
c=IN IP6 ::1\r\n\
t=0 0\r\n\
m=audio 5004 RTP/AVP 111 9 0\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 useinbandfec=1\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=recvonly\r\n"
        );
    }

    #[test]
    fn hold_and_resume_reoffers() {
        let offer = build_offer(&LocalMedia::g711(local_ip(), 4000), 42, 42);
        let hold = offer.with_direction(Direction::hold_offer(false), 43);
        let text = hold.to_string();
        assert!(text.contains("o=- 42 43 IN IP4 192.0.2.1\r\n"), "{text}");
        assert!(text.ends_with("a=ptime:20\r\na=sendonly\r\n"), "{text}");
        assert!(!text.contains("sendrecv"));
        let both_held = hold.with_direction(Direction::hold_offer(true), 44);
        assert_eq!(
            both_held.media[0].own_direction(),
            Some(Direction::Inactive)
        );
        assert_eq!(
            both_held.media[0].attributes.len(),
            offer.media[0].attributes.len()
        );
        let resumed = both_held.with_direction(Direction::SendRecv, 45);
        assert_eq!(resumed.origin.session_version, 45);
        assert_eq!(resumed.origin.session_id, 42);
        assert_eq!(
            resumed.with_direction(Direction::SendRecv, 42),
            offer,
            "resume restores the original offer apart from the version"
        );
    }

    #[test]
    fn with_direction_moves_session_level_direction_and_skips_rejected_streams() {
        let sdp = parse(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\na=recvonly\r\n\
m=audio 4000 RTP/AVP 0\r\na=sendrecv\r\na=inactive\r\nm=video 0 RTP/AVP 31\r\n",
        );
        let held = sdp.with_direction(Direction::SendOnly, 2);
        assert!(held.attributes.is_empty());
        assert_eq!(held.media[0].attributes, vec![Attribute::flag("sendonly")]);
        assert!(held.media[1].attributes.is_empty());
    }

    // --- answers --------------------------------------------------------------------------

    #[test]
    fn answer_respects_our_preference_not_the_offer_order() {
        let offer = parse(ASTERISK_OFFER);
        let (answer, negotiated) =
            build_answer(&offer, &g711_pcma_first(), 7, 7).expect("negotiates");
        assert_eq!(
            answer.to_string(),
            "v=0\r\n\
o=- 7 7 IN IP4 192.0.2.1\r\n\
s=-\r\n\
c=IN IP4 192.0.2.1\r\n\
t=0 0\r\n\
m=audio 4000 RTP/AVP 8 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n"
        );
        assert_eq!(
            negotiated,
            Negotiated {
                remote_address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
                remote_port: 17222,
                codec: Codec::pcma(),
                telephone_event: Some(101),
                telephone_event_clock: 8000,
                local_direction: Direction::SendRecv,
                remote_direction: Direction::SendRecv,
                remote_on_hold_sentinel: false,
                ptime: 20,
                rtcp_mux: false,
            }
        );
        assert_eq!(negotiated.remote_rtp().to_string(), "192.0.2.10:17222");
        assert!(!negotiated.remote_holds_us());
    }

    #[test]
    fn answer_uses_the_offers_payload_type_numbers() {
        // the offer maps PCMU to a dynamic number and DTMF to 96; we use 0 and 101 ourselves
        let offer = parse(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 112 96\r\na=rtpmap:112 pcmu/8000\r\na=rtpmap:96 telephone-event/8000\r\n\
a=fmtp:96 0-15\r\na=ptime:30\r\n",
        );
        let (answer, negotiated) =
            build_answer(&offer, &LocalMedia::g711(local_ip(), 4000), 1, 1).expect("negotiates");
        assert_eq!(answer.media[0].formats, ["112", "96"]);
        assert_eq!(
            answer.media[0]
                .attribute_values("rtpmap")
                .collect::<Vec<_>>(),
            ["112 pcmu/8000", "96 telephone-event/8000"]
        );
        assert_eq!(negotiated.codec.payload_type, 112);
        assert_eq!(negotiated.codec.name, "PCMU");
        assert_eq!(negotiated.telephone_event, Some(96));
        assert_eq!(negotiated.ptime, 30);
    }

    #[test]
    fn opus_gets_a_telephone_event_at_its_own_clock_in_offers_and_answers() {
        let local = LocalMedia {
            codecs: vec![Codec::opus(OPUS_PAYLOAD_TYPE), Codec::g722(), Codec::pcmu()],
            ..LocalMedia::g711(local_ip(), 4000)
        };
        let offer = build_offer(&local, 1, 1);
        let audio = &offer.media[0];
        assert_eq!(audio.formats, ["111", "9", "0", "101", "102"]);
        let events: Vec<String> = audio
            .rtpmaps()
            .iter()
            .filter(|m| m.is_telephone_event())
            .map(|m| format!("{} {}", m.payload_type, m.clock_rate))
            .collect();
        assert_eq!(
            events,
            ["101 8000", "102 48000"],
            "G.722 shares the 8000 Hz one"
        );
        assert_eq!(audio.fmtp(102), Some(TELEPHONE_EVENT_FMTP));

        // The peer keeps Opus and the 48 kHz events: that is the clock we use.
        let answer = parse(
            "v=0\r\no=- 2 2 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
m=audio 7000 RTP/AVP 111 101 102\r\na=rtpmap:111 opus/48000/2\r\n\
a=rtpmap:101 telephone-event/8000\r\na=rtpmap:102 telephone-event/48000\r\n",
        );
        let negotiated = accept_answer(&offer, &answer).expect("accepted");
        assert_eq!(
            (negotiated.telephone_event, negotiated.telephone_event_clock),
            (Some(102), 48000)
        );
        // A peer with only the 8000 Hz events beside Opus: those, on their clock.
        let answer = parse(
            "v=0\r\no=- 2 2 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
m=audio 7000 RTP/AVP 111 101\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n",
        );
        let negotiated = accept_answer(&offer, &answer).expect("accepted");
        assert_eq!(
            (negotiated.telephone_event, negotiated.telephone_event_clock),
            (Some(101), 8000)
        );

        // Answering an offer that has both: Opus with its 48 kHz events, on the offer's numbers.
        let offer = parse(
            "v=0\r\no=- 3 3 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
m=audio 7000 RTP/AVP 107 0 100 110\r\na=rtpmap:107 opus/48000/2\r\n\
a=rtpmap:100 telephone-event/8000\r\na=rtpmap:110 telephone-event/48000\r\n",
        );
        let (answer, negotiated) = build_answer(&offer, &local, 1, 1).expect("negotiates");
        assert_eq!(
            (negotiated.telephone_event, negotiated.telephone_event_clock),
            (Some(110), 48000)
        );
        assert_eq!(answer.media[0].formats, ["107", "110"]);
        // ... and PCMU with the 8 kHz ones.
        let pcmu_only = LocalMedia {
            codecs: vec![Codec::pcmu()],
            ..local
        };
        let (_, negotiated) = build_answer(&offer, &pcmu_only, 1, 1).expect("negotiates");
        assert_eq!(
            (negotiated.telephone_event, negotiated.telephone_event_clock),
            (Some(100), 8000)
        );
        assert_eq!(build_offer(&pcmu_only, 1, 1).media[0].formats, ["0", "101"]);
    }

    #[test]
    fn answer_to_baresip_picks_opus_when_we_prefer_it() {
        let offer = parse(BARESIP_OFFER);
        let local = LocalMedia {
            codecs: vec![
                Codec {
                    fmtp: Some("useinbandfec=1".to_owned()),
                    ..Codec::new("OPUS", 48000, 2, 111)
                },
                Codec::pcmu(),
            ],
            ..LocalMedia::g711(local_ip(), 4000)
        };
        let (answer, negotiated) = build_answer(&offer, &local, 1, 1).expect("negotiates");
        assert_eq!(
            negotiated.codec,
            Codec {
                name: "OPUS".to_owned(),
                clock_rate: 48000,
                channels: 2,
                payload_type: 96,
                fmtp: Some("stereo=1;sprop-stereo=1".to_owned()),
            }
        );
        // no telephone-event/48000 offered: fall back to the 8000 Hz one
        assert_eq!(negotiated.telephone_event, Some(101));
        assert!(negotiated.rtcp_mux);
        assert_eq!(
            negotiated.remote_address,
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 21))
        );
        let audio = &answer.media[0];
        assert_eq!(audio.formats, ["96", "101"]);
        assert_eq!(audio.fmtp(96), Some("useinbandfec=1"));
        assert!(audio.rtcp_mux());
        // G.722 via its static number, with no rtpmap in the offer
        let local = LocalMedia {
            codecs: vec![Codec::g722()],
            ..local
        };
        let (_, negotiated) = build_answer(&offer, &local, 1, 1).expect("negotiates");
        assert_eq!(negotiated.codec, Codec::g722());
    }

    #[test]
    fn no_common_codec_is_an_error_that_lists_the_offer() {
        let offer = parse(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 18 98 101 120\r\na=rtpmap:98 PCMU/16000\r\na=rtpmap:101 telephone-event/8000\r\n",
        );
        let error = build_answer(&offer, &LocalMedia::g711(local_ip(), 4000), 1, 1)
            .expect_err("only G.729 and a 16 kHz PCMU");
        assert_eq!(
            error,
            NegotiationError::NoCommonCodec {
                offered: "G729/8000, PCMU/16000, telephone-event/8000, 120".to_owned()
            }
        );
        assert!(error.to_string().contains("488"));
    }

    #[test]
    fn telephone_event_only_when_both_want_it() {
        let offer = parse(ASTERISK_OFFER);
        let local = LocalMedia {
            telephone_event: None,
            ..LocalMedia::g711(local_ip(), 4000)
        };
        let (answer, negotiated) = build_answer(&offer, &local, 1, 1).expect("negotiates");
        assert_eq!(negotiated.telephone_event, None);
        assert_eq!(answer.media[0].formats, ["0"]);
        let offer = parse(IPV6_OFFER);
        let (answer, negotiated) =
            build_answer(&offer, &LocalMedia::g711(local_ip(), 4000), 1, 1).expect("negotiates");
        assert_eq!(negotiated.telephone_event, None);
        assert_eq!(negotiated.codec, Codec::pcma());
        assert_eq!(negotiated.remote_address, IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(answer.media[0].formats, ["8"]);
    }

    #[test]
    fn hold_offers_get_the_matching_answer_direction() {
        for (offered, answered) in [
            ("sendonly", Direction::RecvOnly),
            ("inactive", Direction::Inactive),
            ("recvonly", Direction::SendOnly),
            ("sendrecv", Direction::SendRecv),
        ] {
            let offer = parse(&SIPP_OFFER.replace("a=sendrecv", &format!("a={offered}")));
            let (answer, negotiated) =
                build_answer(&offer, &LocalMedia::g711(local_ip(), 4000), 1, 1)
                    .expect("negotiates");
            assert_eq!(
                answer.media[0].own_direction(),
                Some(answered),
                "offer {offered}"
            );
            assert_eq!(negotiated.local_direction, answered);
            assert_eq!(negotiated.remote_direction.as_str(), offered);
            assert_eq!(
                negotiated.remote_holds_us(),
                offered == "sendonly" || offered == "inactive"
            );
        }
    }

    #[test]
    fn old_style_hold_offer_gets_recvonly_and_sets_the_sentinel() {
        let (answer, negotiated) = build_answer(
            &parse(OLD_HOLD_OFFER),
            &LocalMedia::g711(local_ip(), 4000),
            1,
            1,
        )
        .expect("negotiates");
        assert!(negotiated.remote_on_hold_sentinel);
        assert!(negotiated.remote_holds_us());
        assert_eq!(negotiated.remote_direction, Direction::SendRecv);
        assert_eq!(negotiated.local_direction, Direction::RecvOnly);
        assert!(!negotiated.local_direction.sends());
        assert_eq!(answer.media[0].own_direction(), Some(Direction::RecvOnly));
    }

    #[test]
    fn our_own_hold_wish_shapes_the_answer() {
        let local = LocalMedia {
            direction: Direction::SendOnly,
            ..LocalMedia::g711(local_ip(), 4000)
        };
        let (_, negotiated) = build_answer(&parse(SIPP_OFFER), &local, 1, 1).expect("negotiates");
        assert_eq!(negotiated.local_direction, Direction::SendOnly);
    }

    #[test]
    fn other_streams_are_rejected_in_place() {
        let (answer, negotiated) = build_answer(
            &parse(AUDIO_VIDEO_OFFER),
            &LocalMedia::g711(local_ip(), 4000),
            1,
            1,
        )
        .expect("negotiates");
        assert_eq!(negotiated.codec, Codec::pcmu());
        assert_eq!(negotiated.remote_port, 49170);
        let text = answer.to_string();
        assert!(
            text.contains("t=0 0\r\nm=video 0 RTP/AVP 31 96\r\nm=audio 4000 RTP/AVP 0\r\n"),
            "{text}"
        );
    }

    #[test]
    fn port_zero_audio_is_skipped_and_none_left_is_an_error() {
        let offer = parse(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
m=audio 0 RTP/AVP 0\r\nm=audio 5000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n\
m=audio 6000 RTP/AVP 8\r\n",
        );
        let (answer, negotiated) =
            build_answer(&offer, &LocalMedia::g711(local_ip(), 4000), 1, 1).expect("third stream");
        assert_eq!(negotiated.remote_port, 6000);
        assert_eq!(
            answer.media.iter().map(|m| m.port).collect::<Vec<_>>(),
            [0, 0, 4000]
        );
        let none_left = parse(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
m=audio 0 RTP/AVP 0\r\nm=video 5000 RTP/AVP 31\r\n",
        );
        assert_eq!(
            build_answer(&none_left, &LocalMedia::g711(local_ip(), 4000), 1, 1),
            Err(NegotiationError::NoAudioStream)
        );
        let no_address =
            parse("v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n");
        assert_eq!(
            build_answer(&no_address, &LocalMedia::g711(local_ip(), 4000), 1, 1),
            Err(NegotiationError::NoConnectionAddress)
        );
    }

    // --- accepting answers ----------------------------------------------------------------

    #[test]
    fn accept_answer_takes_the_first_answered_format_we_offered() {
        let offer = build_offer(&LocalMedia::g711(local_ip(), 4000), 42, 42);
        let answer = parse(
            "v=0\r\no=- 9 9 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 192.0.2.50\r\nt=0 0\r\n\
m=audio 30000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:40\r\na=sendrecv\r\n",
        );
        let negotiated = accept_answer(&offer, &answer).expect("accepts");
        assert_eq!(
            negotiated,
            Negotiated {
                remote_address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 50)),
                remote_port: 30000,
                codec: Codec::pcma(),
                telephone_event: Some(101),
                telephone_event_clock: 8000,
                local_direction: Direction::SendRecv,
                remote_direction: Direction::SendRecv,
                remote_on_hold_sentinel: false,
                ptime: 40,
                rtcp_mux: false,
            }
        );
    }

    #[test]
    fn accept_answer_to_our_hold_offer() {
        let offer = build_offer(&LocalMedia::g711(local_ip(), 4000), 42, 42)
            .with_direction(Direction::SendOnly, 43);
        let answer = parse(&SIPP_OFFER.replace("a=sendrecv", "a=recvonly"));
        let negotiated = accept_answer(&offer, &answer).expect("accepts");
        assert_eq!(negotiated.local_direction, Direction::SendOnly);
        assert_eq!(negotiated.remote_direction, Direction::RecvOnly);
        assert!(!negotiated.remote_holds_us());
        // a peer answering inactive to our sendonly stops our sending too
        let answer = parse(&SIPP_OFFER.replace("a=sendrecv", "a=inactive"));
        assert_eq!(
            accept_answer(&offer, &answer).map(|n| n.local_direction),
            Ok(Direction::Inactive)
        );
    }

    #[test]
    fn accept_answer_errors() {
        let offer = build_offer(&LocalMedia::g711(local_ip(), 4000), 42, 42);
        let rejected = parse(&SIPP_OFFER.replace("m=audio 6000", "m=audio 0"));
        assert_eq!(
            accept_answer(&offer, &rejected),
            Err(NegotiationError::StreamRejected)
        );
        let no_media = parse("v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nt=0 0\r\n");
        assert_eq!(
            accept_answer(&offer, &no_media),
            Err(NegotiationError::MediaMismatch {
                expected: 1,
                got: 0
            })
        );
        let video = parse(&SIPP_OFFER.replace("m=audio", "m=video"));
        assert_eq!(
            accept_answer(&offer, &video),
            Err(NegotiationError::MediaMismatch {
                expected: 1,
                got: 1
            })
        );
        let foreign = parse(&SIPP_OFFER.replace("RTP/AVP 0 8 101", "RTP/AVP 18"));
        assert_eq!(
            accept_answer(&offer, &foreign),
            Err(NegotiationError::NoCommonCodec {
                offered: "G729/8000".to_owned()
            })
        );
    }

    #[test]
    fn accept_answer_tolerates_renumbered_payload_types() {
        let local = LocalMedia {
            codecs: vec![Codec::new("opus", 48000, 2, 111), Codec::pcmu()],
            ..LocalMedia::g711(local_ip(), 4000)
        };
        let offer = build_offer(&local, 1, 1);
        let answer = parse(
            "v=0\r\no=- 9 9 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 192.0.2.50\r\nt=0 0\r\n\
m=audio 30000 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 maxplaybackrate=16000\r\n",
        );
        let negotiated = accept_answer(&offer, &answer).expect("matched by name");
        assert_eq!(negotiated.codec.payload_type, 96);
        assert_eq!(negotiated.codec.name, "opus");
        assert_eq!(
            negotiated.codec.fmtp.as_deref(),
            Some("maxplaybackrate=16000")
        );
        assert_eq!(negotiated.telephone_event, None);
    }

    #[test]
    fn offer_answer_between_two_of_us_agrees_on_both_sides() {
        let alice = LocalMedia::g711(local_ip(), 4000);
        let bob = LocalMedia {
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            port: 5000,
            ..g711_pcma_first()
        };
        let offer = build_offer(&alice, 10, 10);
        let wire_offer = parse(&offer.to_string());
        let (answer, at_bob) = build_answer(&wire_offer, &bob, 20, 20).expect("bob answers");
        let at_alice = accept_answer(&offer, &parse(&answer.to_string())).expect("alice accepts");
        assert_eq!(at_alice.codec, at_bob.codec);
        assert_eq!(at_alice.codec, Codec::pcma());
        assert_eq!(at_alice.telephone_event, Some(101));
        assert_eq!(at_bob.telephone_event, Some(101));
        assert_eq!(at_alice.remote_rtp().to_string(), "192.0.2.2:5000");
        assert_eq!(at_bob.remote_rtp().to_string(), "192.0.2.1:4000");

        // alice holds, bob answers, alice resumes
        let hold = offer.with_direction(Direction::hold_offer(false), 11);
        let (hold_answer, bob_held) = build_answer(&hold, &bob, 20, 21).expect("bob answers hold");
        assert!(bob_held.remote_holds_us());
        assert_eq!(bob_held.local_direction, Direction::RecvOnly);
        let alice_holding = accept_answer(&hold, &hold_answer).expect("alice accepts");
        assert_eq!(alice_holding.local_direction, Direction::SendOnly);
        let resume = hold.with_direction(Direction::SendRecv, 12);
        let (_, bob_resumed) = build_answer(&resume, &bob, 20, 22).expect("bob answers resume");
        assert_eq!(bob_resumed.local_direction, Direction::SendRecv);
        assert!(!bob_resumed.remote_holds_us());
    }

    // --- multipart bodies -----------------------------------------------------------------

    #[test]
    fn sdp_is_found_in_plain_and_multipart_bodies() {
        assert_eq!(
            sdp_from_body("application/SDP; charset=utf-8", SIPP_OFFER.as_bytes()),
            Some(SIPP_OFFER.as_bytes())
        );
        assert_eq!(sdp_from_body("text/plain", b"hello"), None);

        // SIP-I: SDP next to an ISUP IAM, quoted boundary
        let body = format!(
            "preamble\r\n--unique-boundary-1\r\nContent-Type: application/sdp\r\n\r\n{SIPP_OFFER}\r\n\
--unique-boundary-1\r\nContent-Type: application/ISUP; version=itu-t92+\r\n\
Content-Disposition: signal; handling=optional\r\n\r\n\x01\x00\x49\x00\x00\x03\x02\x00\x07\r\n\
--unique-boundary-1--\r\n"
        );
        let found = sdp_from_body(
            "multipart/mixed; boundary=\"unique-boundary-1\"",
            body.as_bytes(),
        )
        .expect("sdp part");
        assert_eq!(found, SIPP_OFFER.as_bytes());
        assert_eq!(
            SessionDescription::parse_bytes(found).map(|s| s.media[0].port),
            Ok(6000)
        );

        // SDP second, LF line ends, compact header name
        let body = format!(
            "--b\nc: text/plain\n\nhi\n--b\nc: application/sdp\n\n{}\n--b--\n",
            IPV6_OFFER.replace("\r\n", "\n")
        );
        let found = sdp_from_body("Multipart/Mixed;boundary=b", body.as_bytes()).expect("sdp part");
        assert_eq!(found, IPV6_OFFER.replace("\r\n", "\n").as_bytes());

        // a boundary that only prefixes another string is not a delimiter
        let body = "--bb\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--b--\r\n";
        assert_eq!(
            sdp_from_body("multipart/mixed;boundary=b", body.as_bytes()),
            None
        );
    }

    #[test]
    fn multipart_without_sdp_like_rfc4475_mpart01() {
        // the shape of RFC 4475 mpart01: text/plain and a binary S/MIME blob, no SDP
        let mut body = b"--7a9cbec02ceef655\r\nContent-Type: text/plain\r\n\
Content-Transfer-Encoding: binary\r\n\r\nHello\r\n--7a9cbec02ceef655\r\n\
Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            .to_vec();
        body.extend_from_slice(&[
            0x30, 0x82, 0x01, 0x52, 0x06, 0x09, 0x2a, 0x86, 0x48, 0xf7, 0x0d, 0x0a, 0xff,
        ]);
        body.extend_from_slice(b"\r\n--7a9cbec02ceef655--\r\n");
        assert_eq!(
            sdp_from_body("multipart/mixed;boundary=7a9cbec02ceef655", &body),
            None
        );
        // missing boundary parameter, or a cut-off body, is not a panic
        assert_eq!(sdp_from_body("multipart/mixed", &body), None);
        for cut in 0..body.len() {
            let _ = sdp_from_body("multipart/mixed;boundary=7a9cbec02ceef655", &body[..cut]);
        }
        // a body cut before its closing delimiter still yields its last part
        let cut = "--x\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n";
        assert_eq!(
            sdp_from_body("multipart/alternative; boundary=x", cut.as_bytes()),
            Some(&b"v=0\r\n"[..])
        );
    }

    // --- robustness -----------------------------------------------------------------------

    /// xorshift64: deterministic, dependency-free randomness for the mutation test.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, bound: usize) -> usize {
            (self.next() % bound.max(1) as u64) as usize
        }
    }

    const INTERESTING_BYTES: &[u8] = b"\r\n =:/0123456789-.amvcbotsk\t\xff\xc3\x00";

    fn mutate(rng: &mut XorShift, input: &[u8]) -> Vec<u8> {
        let mut bytes = input.to_vec();
        for _ in 0..=rng.below(8) {
            let position = rng.below(bytes.len() + 1);
            let byte = if rng.below(2) == 0 {
                INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())]
            } else {
                (rng.next() & 0xff) as u8
            };
            match rng.below(6) {
                0 if position < bytes.len() => bytes[position] = byte,
                1 if position < bytes.len() => {
                    bytes.remove(position);
                }
                2 => bytes.insert(position, byte),
                3 => bytes.truncate(position),
                4 => {
                    // repeat a chunk, to grow digits past u16/u64 and duplicate lines
                    let end = (position + rng.below(40)).min(bytes.len());
                    let chunk = bytes[position.min(end)..end].to_vec();
                    bytes.splice(position..position, chunk);
                }
                _ => {
                    let digits = b"99999999999999999999999";
                    bytes.splice(
                        position..position,
                        digits[..rng.below(digits.len())].iter().copied(),
                    );
                }
            }
        }
        bytes
    }

    #[test]
    fn random_mutations_never_panic_and_print_is_stable() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let local = LocalMedia::g711(local_ip(), 4000);
        let our_offer = build_offer(&local, 1, 1);
        let mut parsed_count = 0usize;
        let mut negotiated_count = 0usize;
        let iterations = 6_000;
        for sample in ALL_SAMPLES {
            for _ in 0..iterations {
                let bytes = mutate(&mut rng, sample.as_bytes());
                let _ = sdp_from_body("multipart/mixed;boundary=a", &bytes);
                let Ok(sdp) = SessionDescription::parse_bytes(&bytes) else {
                    continue;
                };
                parsed_count += 1;
                let printed = sdp.to_string();
                let reparsed = SessionDescription::parse(&printed)
                    .unwrap_or_else(|error| panic!("printed SDP must parse: {error}\n{printed}"));
                assert_eq!(
                    reparsed.to_string(),
                    printed,
                    "print is not stable for {bytes:?}"
                );
                for media in &reparsed.media {
                    let _ = (media.rtpmaps(), media.ptime(), media.direction(&reparsed));
                    let _ = (media.rtcp_mux(), media.connection_address(&reparsed));
                }
                if let Ok((answer, _)) = build_answer(&reparsed, &local, 2, 2) {
                    negotiated_count += 1;
                    assert_eq!(parse(&answer.to_string()), answer);
                }
                let _ = accept_answer(&our_offer, &reparsed);
                let _ = reparsed.with_direction(Direction::SendOnly, 3).to_string();
            }
        }
        // the mutations must leave plenty of inputs parseable, or the test proves little
        assert!(
            parsed_count > iterations,
            "only {parsed_count} mutated inputs parsed"
        );
        assert!(
            negotiated_count > iterations / 2,
            "only {negotiated_count} negotiated"
        );
    }
}
