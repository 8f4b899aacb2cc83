//! Asterisk Manager Interface (AMI) framing, login helpers and typed queue events, sans-IO.
//!
//! AMI is a line protocol over TCP: the server first sends one banner line
//! (`Asterisk Call Manager/11.0.0`), then both sides exchange messages made of `Key: Value` lines
//! ended by a blank line. [`AmiFramer`] turns a byte stream into [`AmiItem`]s without doing any
//! I/O itself: a driver pushes whatever the socket gave and drains items until `Ok(None)`.
//! [`AmiMessage`] is the ordered field list (keys may repeat, e.g. several `Variable:`), and
//! [`QueueAmiEvent`] is the typed view of the queue events the lab PBX writes and the client reads.
//!
//! The field names and units follow the Asterisk 22 captures in
//! `tests/fixtures/asterisk/ami/` (see that folder's README for the timelines).

use core::fmt;

use md5::{Digest, Md5};
use thiserror::Error;

/// The banner Asterisk 22 sends as the first line of every AMI connection.
pub const AMI_BANNER: &str = "Asterisk Call Manager/11.0.0";

/// How much one peer may make us buffer; anything above is dropped with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmiLimits {
    /// Bytes in one message, its CRLFs included (command output counts too).
    pub max_message_bytes: usize,
    /// `Key: Value` lines in one message.
    pub max_fields: usize,
}

impl Default for AmiLimits {
    /// Generous for real traffic: an Asterisk event is 1–3 KiB and about 40 fields, while a
    /// channel with many `ChanVariable` lines stays well below these values.
    fn default() -> Self {
        Self {
            max_message_bytes: 256 * 1024,
            max_fields: 1024,
        }
    }
}

/// What can go wrong while framing or interpreting AMI traffic. Framing errors are not fatal:
/// the framer has already resynchronised and the next [`AmiFramer::next_item`] call goes on.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AmiError {
    #[error("AMI line without a `Key: Value` colon: {line:?}; the line was skipped and the rest of its message kept (the peer is not speaking AMI correctly)")]
    MalformedLine { line: String },
    #[error("AMI message is larger than {limit} bytes; it was dropped up to its closing blank line (raise AmiLimits::max_message_bytes if the peer really sends messages this big)")]
    MessageTooLarge { limit: usize },
    #[error("AMI message has more than {limit} fields; it was dropped up to its closing blank line (raise AmiLimits::max_fields if the peer really sends this many)")]
    TooManyFields { limit: usize },
    #[error("the AMI connection ended inside a message: {bytes} bytes were never completed by a blank line (the peer closed mid-message or the capture is cut)")]
    Truncated { bytes: usize },
    #[error("AMI event {event} has no `{field}` field, which it always carries; the sender is not Asterisk-compatible")]
    MissingField { event: String, field: &'static str },
    #[error("AMI event {event} field `{field}` is {value:?}, which is not a valid {expected}")]
    BadValue {
        event: String,
        field: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// What a message is, from its first `Action`, `Response` or `Event` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmiKind<'a> {
    /// A request from the client, with the action name (`Login`, `QueueStatus`, ...).
    Action(&'a str),
    /// A reply to an action, with its status (`Success`, `Error`, `Goodbye`, `Follows`).
    Response(&'a str),
    /// An unsolicited or list event, with its name (`QueueCallerJoin`, ...).
    Event(&'a str),
    /// None of the three fields is present.
    Other,
}

/// One AMI message: its `Key: Value` lines in the order they came.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AmiMessage {
    pub fields: Vec<(String, String)>,
}

impl AmiMessage {
    pub fn new() -> Self {
        Self::default()
    }

    /// A message starting with `Action: name`.
    pub fn action(name: &str) -> Self {
        Self::new().with("Action", name)
    }

    /// A message starting with `Response: status`.
    pub fn response(status: &str) -> Self {
        Self::new().with("Response", status)
    }

    /// A message starting with `Event: name`.
    pub fn event(name: &str) -> Self {
        Self::new().with("Event", name)
    }

    /// Appends a field and returns the message, for building messages in one expression.
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.push(key, value);
        self
    }

    /// Appends a field (an existing field with the same key is kept: AMI allows repeats).
    pub fn push(&mut self, key: &str, value: &str) {
        self.fields.push((key.to_owned(), value.to_owned()));
    }

    /// The value of the first field named `name`, compared case-insensitively as Asterisk does.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Every value of the fields named `name`, in order (`Variable:`, `Output:`, ...).
    pub fn get_all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.fields
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Classifies the message by the first `Action`, `Response` or `Event` field. The first one
    /// wins because some events carry a `Response` field of their own (`OriginateResponse`).
    pub fn kind(&self) -> AmiKind<'_> {
        for (key, value) in &self.fields {
            if key.eq_ignore_ascii_case("Event") {
                return AmiKind::Event(value);
            }
            if key.eq_ignore_ascii_case("Response") {
                return AmiKind::Response(value);
            }
            if key.eq_ignore_ascii_case("Action") {
                return AmiKind::Action(value);
            }
        }
        AmiKind::Other
    }

    /// The `ActionID` that correlates a response or list event with its action.
    pub fn action_id(&self) -> Option<&str> {
        self.get("ActionID")
    }

    /// The wire form: `Key: Value\r\n` per field, then the blank line.
    pub fn to_bytes(&self) -> Vec<u8> {
        let size = self
            .fields
            .iter()
            .map(|(key, value)| key.len() + value.len() + 4)
            .sum::<usize>()
            + 2;
        let mut out = Vec::with_capacity(size);
        self.write_to(&mut out);
        out
    }

    /// Appends the wire form to `out`. CR and LF inside keys or values become spaces, so a value
    /// taken from a caller name or a SIP header can never inject a line or end the message early.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        for (key, value) in &self.fields {
            push_single_line(out, key);
            out.extend_from_slice(b": ");
            push_single_line(out, value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

impl fmt::Display for AmiMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

fn push_single_line(out: &mut Vec<u8>, text: &str) {
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
}

/// One unit of the AMI byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmiItem {
    /// The server's first line, e.g. `Asterisk Call Manager/11.0.0`.
    Banner(String),
    /// A `Key: Value` message.
    Message(AmiMessage),
    /// The pre-Asterisk-14 reply to `Action: Command`: `Response: Follows`, a few header
    /// fields, then raw CLI output up to `--END COMMAND--`. `output` holds the raw lines, each
    /// ended by `\n`. (Asterisk 14 and later reply with ordinary `Output:` fields instead.)
    CommandOutput { headers: AmiMessage, output: String },
}

/// Which side's bytes a framer reads: only a server's stream starts with a banner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamStart {
    Banner,
    Messages,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for the banner line.
    Banner,
    /// Reading `Key: Value` lines up to a blank line.
    Fields,
    /// Inside a `Response: Follows` body, before `--END COMMAND--`.
    CommandBody { body_started: bool },
    /// After `--END COMMAND--`, waiting for the blank line that closes the message.
    CommandTail,
    /// Dropping an oversized message up to its blank line.
    Discard { line_has_content: bool },
}

const END_COMMAND: &[u8] = b"--END COMMAND--";
/// Longest line content quoted back in a [`AmiError::MalformedLine`].
const MAX_QUOTED_LINE: usize = 200;

/// Sans-IO AMI stream parser: `push` bytes as they arrive, then call `next_item` until it
/// returns `Ok(None)`. An `Err` reports one problem; the framer has already recovered and the
/// next call continues with the rest of the stream.
#[derive(Debug, Clone)]
pub struct AmiFramer {
    buf: Vec<u8>,
    /// Start of the bytes not yet consumed in `buf`.
    pos: usize,
    stage: Stage,
    limits: AmiLimits,
    fields: Vec<(String, String)>,
    command_output: String,
    /// Bytes of the message being assembled, counted against `max_message_bytes`.
    message_bytes: usize,
}

impl AmiFramer {
    /// Frames what a server sends: the banner line, then responses and events.
    pub fn from_server() -> Self {
        Self::with_limits(StreamStart::Banner, AmiLimits::default())
    }

    /// Frames what a client sends: actions only, no banner.
    pub fn from_client() -> Self {
        Self::with_limits(StreamStart::Messages, AmiLimits::default())
    }

    /// Like [`AmiFramer::from_server`] with explicit limits.
    pub fn from_server_with_limits(limits: AmiLimits) -> Self {
        Self::with_limits(StreamStart::Banner, limits)
    }

    /// Like [`AmiFramer::from_client`] with explicit limits.
    pub fn from_client_with_limits(limits: AmiLimits) -> Self {
        Self::with_limits(StreamStart::Messages, limits)
    }

    fn with_limits(start: StreamStart, limits: AmiLimits) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            stage: match start {
                StreamStart::Banner => Stage::Banner,
                StreamStart::Messages => Stage::Fields,
            },
            limits,
            fields: Vec::new(),
            command_output: String::new(),
            message_bytes: 0,
        }
    }

    /// Hands the framer bytes read from the connection, in any chunking.
    pub fn push(&mut self, bytes: &[u8]) {
        let nothing_pending = self.pos >= self.buf.len();
        if let (Stage::Discard { line_has_content }, true) = (self.stage, nothing_pending) {
            // Drop what an oversized message still sends without ever storing it.
            let (line_has_content, rest) = skip_to_blank_line(line_has_content, bytes);
            match rest {
                Some(rest) => {
                    self.stage = Stage::Fields;
                    self.buf.extend_from_slice(rest);
                }
                None => self.stage = Stage::Discard { line_has_content },
            }
            return;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held but not yet returned as items: a partial line or message.
    pub fn buffered_len(&self) -> usize {
        self.buf.len() - self.pos + self.message_bytes
    }

    /// Call when the connection has closed: reports a message left without its blank line.
    pub fn finish(&self) -> Result<(), AmiError> {
        let partial = match self.stage {
            Stage::Discard { .. } => 0,
            _ => self.buffered_len(),
        };
        if partial == 0 {
            Ok(())
        } else {
            Err(AmiError::Truncated { bytes: partial })
        }
    }

    /// The next complete item, `Ok(None)` when more bytes are needed, or one framing error.
    pub fn next_item(&mut self) -> Result<Option<AmiItem>, AmiError> {
        loop {
            if let Stage::Discard { line_has_content } = self.stage {
                let pending = self.buf.get(self.pos..).unwrap_or_default();
                let (line_has_content, rest) = skip_to_blank_line(line_has_content, pending);
                match rest {
                    Some(rest) => {
                        self.pos = self.buf.len() - rest.len();
                        self.stage = Stage::Fields;
                    }
                    None => {
                        self.stage = Stage::Discard { line_has_content };
                        self.buf.clear();
                        self.pos = 0;
                        return Ok(None);
                    }
                }
            }
            let pending = self.buf.get(self.pos..).unwrap_or_default();
            let Some(newline) = pending.iter().position(|&b| b == b'\n') else {
                if self.message_bytes + pending.len() > self.limits.max_message_bytes {
                    let line_has_content = pending.iter().any(|&b| b != b'\r');
                    self.pos = self.buf.len();
                    self.start_discard(line_has_content);
                    self.compact();
                    return Err(AmiError::MessageTooLarge {
                        limit: self.limits.max_message_bytes,
                    });
                }
                self.compact();
                return Ok(None);
            };
            let line_start = self.pos;
            let mut line_end = line_start + newline;
            self.pos = line_end + 1;
            if line_end > line_start && self.buf.get(line_end - 1) == Some(&b'\r') {
                line_end -= 1;
            }
            // Blank lines only count inside command output, where they are kept as content.
            let kept = line_end > line_start || matches!(self.stage, Stage::CommandBody { .. });
            if kept {
                self.message_bytes += newline + 1;
                if self.message_bytes > self.limits.max_message_bytes {
                    self.start_discard(false);
                    return Err(AmiError::MessageTooLarge {
                        limit: self.limits.max_message_bytes,
                    });
                }
            }
            if let Some(item) = self.handle_line(line_start, line_end)? {
                return Ok(Some(item));
            }
        }
    }

    /// Consumes one line (CR already stripped); returns an item when it completes one.
    fn handle_line(
        &mut self,
        line_start: usize,
        line_end: usize,
    ) -> Result<Option<AmiItem>, AmiError> {
        let line = self.buf.get(line_start..line_end).unwrap_or_default();
        match self.stage {
            Stage::Banner => {
                if line.is_empty() {
                    return Ok(None);
                }
                self.stage = Stage::Fields;
                if line.contains(&b':') {
                    // No banner after all (a proxy, or a capture cut after it): read it as a field.
                    return self.handle_line(line_start, line_end);
                }
                let banner = String::from_utf8_lossy(line).into_owned();
                self.message_bytes = 0;
                Ok(Some(AmiItem::Banner(banner)))
            }
            Stage::Fields | Stage::CommandTail => {
                if line.is_empty() {
                    return Ok(self.finish_message());
                }
                let field = parse_field(line)?;
                let starts_command_output = self.stage == Stage::Fields
                    && self.fields.is_empty()
                    && field.0.eq_ignore_ascii_case("Response")
                    && field.1.eq_ignore_ascii_case("Follows");
                self.add_field(field)?;
                if starts_command_output {
                    self.stage = Stage::CommandBody {
                        body_started: false,
                    };
                }
                Ok(None)
            }
            Stage::CommandBody { body_started } => {
                if let Some(before_marker) = line.strip_suffix(END_COMMAND) {
                    // Old Asterisk glued the marker to output that did not end in a newline.
                    if !before_marker.is_empty() {
                        self.command_output
                            .push_str(&String::from_utf8_lossy(before_marker));
                        self.command_output.push('\n');
                    }
                    self.stage = Stage::CommandTail;
                    return Ok(None);
                }
                if !body_started {
                    if let Ok(field) = parse_field(line) {
                        if field.0.eq_ignore_ascii_case("Privilege")
                            || field.0.eq_ignore_ascii_case("ActionID")
                        {
                            self.add_field(field)?;
                            return Ok(None);
                        }
                    }
                }
                self.stage = Stage::CommandBody { body_started: true };
                self.command_output.push_str(&String::from_utf8_lossy(line));
                self.command_output.push('\n');
                Ok(None)
            }
            Stage::Discard { .. } => Ok(None),
        }
    }

    fn add_field(&mut self, field: (String, String)) -> Result<(), AmiError> {
        if self.fields.len() >= self.limits.max_fields {
            self.start_discard(false);
            return Err(AmiError::TooManyFields {
                limit: self.limits.max_fields,
            });
        }
        self.fields.push(field);
        Ok(())
    }

    fn finish_message(&mut self) -> Option<AmiItem> {
        let was_command = self.stage == Stage::CommandTail;
        self.stage = Stage::Fields;
        self.message_bytes = 0;
        if self.fields.is_empty() {
            // A stray blank line, or a message whose every line was malformed.
            return None;
        }
        let headers = AmiMessage {
            fields: core::mem::take(&mut self.fields),
        };
        if was_command {
            Some(AmiItem::CommandOutput {
                headers,
                output: core::mem::take(&mut self.command_output),
            })
        } else {
            Some(AmiItem::Message(headers))
        }
    }

    fn start_discard(&mut self, line_has_content: bool) {
        self.fields.clear();
        self.command_output.clear();
        self.message_bytes = 0;
        self.stage = Stage::Discard { line_has_content };
    }

    fn compact(&mut self) {
        if self.pos >= self.buf.len() {
            self.buf.clear();
        } else if self.pos > 0 {
            self.buf.drain(..self.pos);
        }
        self.pos = 0;
    }
}

/// Scans for the blank line that ends a dropped message. Returns whether the current line has
/// content so far, and the bytes after the blank line once it is found.
fn skip_to_blank_line(mut line_has_content: bool, bytes: &[u8]) -> (bool, Option<&[u8]>) {
    for (index, &byte) in bytes.iter().enumerate() {
        match byte {
            b'\n' if !line_has_content => return (false, bytes.get(index + 1..)),
            b'\n' => line_has_content = false,
            b'\r' => {}
            _ => line_has_content = true,
        }
    }
    (line_has_content, None)
}

/// Splits `Key: Value`. Leading blanks of the value are dropped, trailing ones kept, so
/// `PausedReason: ` reads as an empty value and prints back the same.
fn parse_field(line: &[u8]) -> Result<(String, String), AmiError> {
    let colon = line.iter().position(|&b| b == b':');
    let key = colon
        .and_then(|colon| line.get(..colon))
        .map(|key| key.trim_ascii())
        .filter(|key| !key.is_empty());
    match (colon, key) {
        (Some(colon), Some(key)) => {
            let value = line.get(colon + 1..).unwrap_or_default();
            let skip = value
                .iter()
                .take_while(|&&b| b == b' ' || b == b'\t')
                .count();
            let value = value.get(skip..).unwrap_or_default();
            Ok((
                String::from_utf8_lossy(key).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            ))
        }
        _ => {
            let quoted = line.get(..MAX_QUOTED_LINE).unwrap_or(line);
            Err(AmiError::MalformedLine {
                line: String::from_utf8_lossy(quoted).into_owned(),
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Login

/// `Action: Login` with the secret in clear (only for loopback or a trusted network).
pub fn login_plain(user: &str, secret: &str, action_id: &str) -> AmiMessage {
    AmiMessage::action("Login")
        .with("Username", user)
        .with("Secret", secret)
        .with("ActionID", action_id)
}

/// `Action: Challenge` asking for an MD5 challenge, the first step of [`login_md5`].
pub fn challenge(action_id: &str) -> AmiMessage {
    AmiMessage::action("Challenge")
        .with("AuthType", "MD5")
        .with("ActionID", action_id)
}

/// `Action: Login` answering the server's challenge, so the secret never crosses the wire.
pub fn login_md5(user: &str, challenge: &str, secret: &str, action_id: &str) -> AmiMessage {
    AmiMessage::action("Login")
        .with("AuthType", "MD5")
        .with("Username", user)
        .with("Key", &md5_key(challenge, secret))
        .with("ActionID", action_id)
}

/// The `Key` of an MD5 login: lowercase hex of md5(challenge followed by secret).
pub fn md5_key(challenge: &str, secret: &str) -> String {
    let mut hasher = Md5::new();
    hasher.update(challenge.as_bytes());
    hasher.update(secret.as_bytes());
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(32);
    for byte in digest {
        hex.push(hex_digit(byte >> 4));
        hex.push(hex_digit(byte & 0x0f));
    }
    hex
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0x0f)])
}

/// Server side of [`login_md5`]: whether `key` is right for `challenge` and `secret`. Hex case
/// is ignored, and the comparison does not stop at the first difference.
pub fn verify_md5_key(challenge: &str, secret: &str, key: &str) -> bool {
    let expected = md5_key(challenge, secret);
    if key.len() != expected.len() {
        return false;
    }
    expected
        .bytes()
        .zip(key.bytes())
        .fold(0u8, |diff, (a, b)| diff | (a ^ b.to_ascii_lowercase()))
        == 0
}

// ---------------------------------------------------------------------------------------------
// Typed queue events

/// An event `Timestamp:` (`1795259576.476685`), present when manager.conf has
/// `timestampevents = yes`. Kept exact instead of as a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AmiTimestamp {
    pub secs: u64,
    pub micros: u32,
}

impl AmiTimestamp {
    pub fn as_micros(&self) -> u128 {
        u128::from(self.secs) * 1_000_000 + u128::from(self.micros)
    }

    fn parse(text: &str) -> Option<Self> {
        let (secs, fraction) = text.split_once('.').unwrap_or((text, ""));
        let secs = parse_digits(secs)?;
        if !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut micros = 0u32;
        for position in 0..6 {
            let digit = fraction.as_bytes().get(position).map_or(0, |b| b - b'0');
            micros = micros * 10 + u32::from(digit);
        }
        Some(Self { secs, micros })
    }
}

fn parse_digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A member's device state, the `Status:` number of the member events (Asterisk's
/// `ast_device_state`). With `device_state_busy_at = 1` a ringing member shows `Busy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    Unknown,
    NotInUse,
    InUse,
    Busy,
    Invalid,
    Unavailable,
    Ringing,
    RingInUse,
    OnHold,
    Other(u64),
}

impl DeviceState {
    pub fn from_code(code: u64) -> Self {
        match code {
            0 => Self::Unknown,
            1 => Self::NotInUse,
            2 => Self::InUse,
            3 => Self::Busy,
            4 => Self::Invalid,
            5 => Self::Unavailable,
            6 => Self::Ringing,
            7 => Self::RingInUse,
            8 => Self::OnHold,
            other => Self::Other(other),
        }
    }

    pub fn code(&self) -> u64 {
        match self {
            Self::Unknown => 0,
            Self::NotInUse => 1,
            Self::InUse => 2,
            Self::Busy => 3,
            Self::Invalid => 4,
            Self::Unavailable => 5,
            Self::Ringing => 6,
            Self::RingInUse => 7,
            Self::OnHold => 8,
            Self::Other(code) => *code,
        }
    }
}

/// How a member joined the queue: from queues.conf, by AddQueueMember/QueueAdd, or realtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    Static,
    Dynamic,
    Realtime,
    Other(String),
}

impl Membership {
    fn parse(text: &str) -> Self {
        if text.eq_ignore_ascii_case("static") {
            Self::Static
        } else if text.eq_ignore_ascii_case("dynamic") {
            Self::Dynamic
        } else if text.eq_ignore_ascii_case("realtime") {
            Self::Realtime
        } else {
            Self::Other(text.to_owned())
        }
    }
}

/// Why an answered queue call ended (`AgentComplete` `Reason:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompleteReason {
    Caller,
    Agent,
    Transfer,
    Other(String),
}

impl CompleteReason {
    fn parse(text: &str) -> Self {
        if text.eq_ignore_ascii_case("caller") {
            Self::Caller
        } else if text.eq_ignore_ascii_case("agent") {
            Self::Agent
        } else if text.eq_ignore_ascii_case("transfer") {
            Self::Transfer
        } else {
            Self::Other(text.to_owned())
        }
    }
}

/// The caller's channel block of the caller and agent events. Missing text fields are empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallerChannel {
    pub channel: String,
    pub uniqueid: String,
    /// Absent in `QueueEntry`.
    pub linkedid: String,
    pub caller_id_num: String,
    pub caller_id_name: String,
    pub connected_line_num: String,
    pub connected_line_name: String,
}

/// The member side of `AgentCalled` / `AgentConnect` / `AgentComplete` / `AgentRingNoAnswer`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentLeg {
    pub interface: String,
    pub member_name: String,
    /// The agent's channel (`PJSIP/agent1-00000009`); empty if the event has no Dest block.
    pub dest_channel: String,
    pub dest_uniqueid: String,
}

/// A queue member as reported by `QueueMember` (QueueStatus list) and the live
/// `QueueMemberAdded` / `Removed` / `Pause` / `Status` events.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueMemberInfo {
    pub timestamp: Option<AmiTimestamp>,
    /// Set on QueueStatus list items.
    pub action_id: Option<String>,
    pub queue: String,
    /// `MemberName` in live events, `Name` in `QueueMember`.
    pub member_name: String,
    /// `Interface` in live events, `Location` in `QueueMember`.
    pub interface: String,
    pub state_interface: String,
    pub membership: Option<Membership>,
    pub penalty: Option<i64>,
    pub calls_taken: Option<u64>,
    /// Epoch seconds, 0 when never.
    pub last_call: Option<u64>,
    /// Epoch seconds, 0 when never.
    pub last_pause: Option<u64>,
    /// Epoch seconds.
    pub login_time: Option<u64>,
    pub in_call: Option<bool>,
    pub status: Option<DeviceState>,
    pub paused: Option<bool>,
    /// Carried on unpause too (`lab-unpause`), empty when none was given.
    pub paused_reason: String,
    pub wrapup_time_s: Option<u64>,
    pub ring_in_use: Option<bool>,
}

/// `QueueParams`: a queue's settings and counters in the QueueStatus list.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueParams {
    pub timestamp: Option<AmiTimestamp>,
    pub action_id: Option<String>,
    pub queue: String,
    /// Maximum callers waiting, 0 for unlimited.
    pub max: Option<u64>,
    pub strategy: String,
    /// Callers waiting now.
    pub calls: Option<u64>,
    /// Average hold time, seconds.
    pub hold_time_s: Option<u64>,
    /// Average talk time, seconds.
    pub talk_time_s: Option<u64>,
    pub completed: Option<u64>,
    /// Counts timeout and empty-queue exits too, not only callers hanging up.
    pub abandoned: Option<u64>,
    /// The service-level threshold, seconds.
    pub service_level_s: Option<u64>,
    /// Percent answered within the service level.
    pub service_level_perf: Option<f64>,
    pub service_level_perf2: Option<f64>,
    pub weight: Option<i64>,
}

/// `QueueEntry`: one waiting caller in the QueueStatus list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueEntry {
    pub timestamp: Option<AmiTimestamp>,
    pub action_id: Option<String>,
    pub queue: String,
    pub position: Option<u64>,
    pub caller: CallerChannel,
    /// Seconds waited so far.
    pub wait_s: Option<u64>,
    pub priority: Option<i64>,
}

/// `QueueStatusComplete` / `QueueSummaryComplete`: the end of a list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListComplete {
    pub action_id: Option<String>,
    pub list_items: Option<u64>,
}

/// `QueueSummary`: one queue's counts now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueSummary {
    pub timestamp: Option<AmiTimestamp>,
    pub action_id: Option<String>,
    pub queue: String,
    pub logged_in: Option<u64>,
    pub available: Option<u64>,
    pub callers: Option<u64>,
    pub hold_time_s: Option<u64>,
    pub talk_time_s: Option<u64>,
    pub longest_hold_time_s: Option<u64>,
}

/// `QueueCallerJoin` and `QueueCallerLeave`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueCallerMove {
    pub timestamp: Option<AmiTimestamp>,
    pub queue: String,
    pub caller: CallerChannel,
    pub position: Option<u64>,
    /// Callers in the queue after the move.
    pub count: Option<u64>,
}

/// `QueueCallerAbandon`. Despite the name it also fires when the caller leaves on the queue's
/// maximum wait (EXITWITHTIMEOUT) or because the queue became empty (EXITEMPTY); only a real
/// abandon has the caller's `HangupRequest` before it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueCallerAbandon {
    pub timestamp: Option<AmiTimestamp>,
    pub queue: String,
    pub caller: CallerChannel,
    pub position: Option<u64>,
    pub original_position: Option<u64>,
    /// Seconds waited.
    pub hold_time_s: Option<u64>,
}

/// `AgentCalled`: a member starts ringing for a caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentCalled {
    pub timestamp: Option<AmiTimestamp>,
    pub queue: String,
    pub caller: CallerChannel,
    pub agent: AgentLeg,
}

/// `AgentConnect`: the member answered. Both times are in **seconds** here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentConnect {
    pub timestamp: Option<AmiTimestamp>,
    pub queue: String,
    pub caller: CallerChannel,
    pub agent: AgentLeg,
    pub hold_time_s: Option<u64>,
    pub ring_time_s: Option<u64>,
}

/// `AgentComplete`: an answered queue call ended (by the caller, the agent, or a transfer).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentComplete {
    pub timestamp: Option<AmiTimestamp>,
    pub queue: String,
    pub caller: CallerChannel,
    pub agent: AgentLeg,
    pub hold_time_s: Option<u64>,
    pub talk_time_s: Option<u64>,
    pub reason: Option<CompleteReason>,
}

/// `AgentRingNoAnswer`: the member rang out. Its ring time is in **milliseconds**.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentRingNoAnswer {
    pub timestamp: Option<AmiTimestamp>,
    pub queue: String,
    pub caller: CallerChannel,
    pub agent: AgentLeg,
    pub ring_time_ms: Option<u64>,
}

/// `FullyBooted`: sent right after a login with events on (it has no `Timestamp`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FullyBooted {
    pub timestamp: Option<AmiTimestamp>,
    pub uptime_s: Option<u64>,
    pub last_reload_s: Option<u64>,
    pub status: String,
}

/// The AMI events a queue console and the lab PBX care about, typed.
///
/// Asterisk quirks, as captured from Asterisk 22 (see the fixtures' README):
/// - `QueueMember` (QueueStatus list) names the member `Name` / `Location`, where the live
///   `QueueMember*` events say `MemberName` / `Interface`; both land in
///   [`QueueMemberInfo::member_name`] / [`QueueMemberInfo::interface`].
/// - `RingTime` is milliseconds in `AgentRingNoAnswer` but seconds in `AgentConnect`; the field
///   names here carry the unit (`ring_time_ms`, `ring_time_s`).
/// - `QueueCallerAbandon` also fires on maximum-wait timeouts and on empty-queue exits. Only a
///   caller `HangupRequest` before it (or queue_log's ABANDON / EXITWITHTIMEOUT / EXITEMPTY) tells
///   them apart, and `QueueParams.Abandoned` counts all three.
/// - `FullyBooted` has no `Timestamp` even with `timestampevents = yes`.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueAmiEvent {
    QueueParams(QueueParams),
    QueueMember(QueueMemberInfo),
    QueueEntry(QueueEntry),
    QueueStatusComplete(ListComplete),
    QueueSummary(QueueSummary),
    QueueSummaryComplete(ListComplete),
    QueueCallerJoin(QueueCallerMove),
    QueueCallerLeave(QueueCallerMove),
    QueueCallerAbandon(QueueCallerAbandon),
    AgentCalled(AgentCalled),
    AgentConnect(AgentConnect),
    AgentComplete(AgentComplete),
    AgentRingNoAnswer(AgentRingNoAnswer),
    QueueMemberAdded(QueueMemberInfo),
    QueueMemberRemoved(QueueMemberInfo),
    QueueMemberPause(QueueMemberInfo),
    QueueMemberStatus(QueueMemberInfo),
    FullyBooted(FullyBooted),
}

impl QueueAmiEvent {
    /// Reads a message as a queue event: `Ok(None)` for messages that are not one of these
    /// events (other events, responses, actions), an error when a queue event lacks a field it
    /// always carries or a number is not a number.
    pub fn from_message(message: &AmiMessage) -> Result<Option<Self>, AmiError> {
        let AmiKind::Event(name) = message.kind() else {
            return Ok(None);
        };
        let view = EventView { message, name };
        let event = match () {
            _ if name.eq_ignore_ascii_case("QueueParams") => {
                Self::QueueParams(view.queue_params()?)
            }
            _ if name.eq_ignore_ascii_case("QueueMember") => Self::QueueMember(view.member()?),
            _ if name.eq_ignore_ascii_case("QueueEntry") => Self::QueueEntry(view.entry()?),
            _ if name.eq_ignore_ascii_case("QueueStatusComplete") => {
                Self::QueueStatusComplete(view.list_complete()?)
            }
            _ if name.eq_ignore_ascii_case("QueueSummary") => Self::QueueSummary(view.summary()?),
            _ if name.eq_ignore_ascii_case("QueueSummaryComplete") => {
                Self::QueueSummaryComplete(view.list_complete()?)
            }
            _ if name.eq_ignore_ascii_case("QueueCallerJoin") => {
                Self::QueueCallerJoin(view.caller_move()?)
            }
            _ if name.eq_ignore_ascii_case("QueueCallerLeave") => {
                Self::QueueCallerLeave(view.caller_move()?)
            }
            _ if name.eq_ignore_ascii_case("QueueCallerAbandon") => {
                Self::QueueCallerAbandon(view.caller_abandon()?)
            }
            _ if name.eq_ignore_ascii_case("AgentCalled") => Self::AgentCalled(AgentCalled {
                timestamp: view.timestamp()?,
                queue: view.required("Queue")?,
                caller: view.caller()?,
                agent: view.agent()?,
            }),
            _ if name.eq_ignore_ascii_case("AgentConnect") => Self::AgentConnect(AgentConnect {
                timestamp: view.timestamp()?,
                queue: view.required("Queue")?,
                caller: view.caller()?,
                agent: view.agent()?,
                hold_time_s: view.number("HoldTime")?,
                ring_time_s: view.number("RingTime")?,
            }),
            _ if name.eq_ignore_ascii_case("AgentComplete") => Self::AgentComplete(AgentComplete {
                timestamp: view.timestamp()?,
                queue: view.required("Queue")?,
                caller: view.caller()?,
                agent: view.agent()?,
                hold_time_s: view.number("HoldTime")?,
                talk_time_s: view.number("TalkTime")?,
                reason: view.present("Reason").map(CompleteReason::parse),
            }),
            _ if name.eq_ignore_ascii_case("AgentRingNoAnswer") => {
                Self::AgentRingNoAnswer(AgentRingNoAnswer {
                    timestamp: view.timestamp()?,
                    queue: view.required("Queue")?,
                    caller: view.caller()?,
                    agent: view.agent()?,
                    ring_time_ms: view.number("RingTime")?,
                })
            }
            _ if name.eq_ignore_ascii_case("QueueMemberAdded") => {
                Self::QueueMemberAdded(view.member()?)
            }
            _ if name.eq_ignore_ascii_case("QueueMemberRemoved") => {
                Self::QueueMemberRemoved(view.member()?)
            }
            _ if name.eq_ignore_ascii_case("QueueMemberPause") => {
                Self::QueueMemberPause(view.member()?)
            }
            _ if name.eq_ignore_ascii_case("QueueMemberStatus") => {
                Self::QueueMemberStatus(view.member()?)
            }
            _ if name.eq_ignore_ascii_case("FullyBooted") => Self::FullyBooted(FullyBooted {
                timestamp: view.timestamp()?,
                uptime_s: view.number("Uptime")?,
                last_reload_s: view.number("LastReload")?,
                status: view.text("Status"),
            }),
            _ => return Ok(None),
        };
        Ok(Some(event))
    }

    /// The AMI event name, as Asterisk spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::QueueParams(_) => "QueueParams",
            Self::QueueMember(_) => "QueueMember",
            Self::QueueEntry(_) => "QueueEntry",
            Self::QueueStatusComplete(_) => "QueueStatusComplete",
            Self::QueueSummary(_) => "QueueSummary",
            Self::QueueSummaryComplete(_) => "QueueSummaryComplete",
            Self::QueueCallerJoin(_) => "QueueCallerJoin",
            Self::QueueCallerLeave(_) => "QueueCallerLeave",
            Self::QueueCallerAbandon(_) => "QueueCallerAbandon",
            Self::AgentCalled(_) => "AgentCalled",
            Self::AgentConnect(_) => "AgentConnect",
            Self::AgentComplete(_) => "AgentComplete",
            Self::AgentRingNoAnswer(_) => "AgentRingNoAnswer",
            Self::QueueMemberAdded(_) => "QueueMemberAdded",
            Self::QueueMemberRemoved(_) => "QueueMemberRemoved",
            Self::QueueMemberPause(_) => "QueueMemberPause",
            Self::QueueMemberStatus(_) => "QueueMemberStatus",
            Self::FullyBooted(_) => "FullyBooted",
        }
    }

    /// The event's `Timestamp`, when it has one.
    pub fn timestamp(&self) -> Option<AmiTimestamp> {
        match self {
            Self::QueueParams(e) => e.timestamp,
            Self::QueueMember(e)
            | Self::QueueMemberAdded(e)
            | Self::QueueMemberRemoved(e)
            | Self::QueueMemberPause(e)
            | Self::QueueMemberStatus(e) => e.timestamp,
            Self::QueueEntry(e) => e.timestamp,
            Self::QueueStatusComplete(_) | Self::QueueSummaryComplete(_) => None,
            Self::QueueSummary(e) => e.timestamp,
            Self::QueueCallerJoin(e) | Self::QueueCallerLeave(e) => e.timestamp,
            Self::QueueCallerAbandon(e) => e.timestamp,
            Self::AgentCalled(e) => e.timestamp,
            Self::AgentConnect(e) => e.timestamp,
            Self::AgentComplete(e) => e.timestamp,
            Self::AgentRingNoAnswer(e) => e.timestamp,
            Self::FullyBooted(e) => e.timestamp,
        }
    }
}

/// Field access with the event name at hand for error messages.
struct EventView<'m> {
    message: &'m AmiMessage,
    name: &'m str,
}

impl EventView<'_> {
    fn present(&self, field: &str) -> Option<&str> {
        self.message.get(field)
    }

    fn text(&self, field: &str) -> String {
        self.message.get(field).unwrap_or_default().to_owned()
    }

    /// The first of `fields` that is present (for Asterisk's renamed fields).
    fn text_any(&self, fields: &[&str]) -> Option<String> {
        fields
            .iter()
            .find_map(|field| self.message.get(field))
            .map(str::to_owned)
    }

    fn required(&self, field: &'static str) -> Result<String, AmiError> {
        self.message
            .get(field)
            .map(str::to_owned)
            .ok_or_else(|| self.missing(field))
    }

    fn missing(&self, field: &'static str) -> AmiError {
        AmiError::MissingField {
            event: self.name.to_owned(),
            field,
        }
    }

    fn bad(&self, field: &'static str, value: &str, expected: &'static str) -> AmiError {
        AmiError::BadValue {
            event: self.name.to_owned(),
            field,
            value: value.get(..MAX_QUOTED_LINE).unwrap_or(value).to_owned(),
            expected,
        }
    }

    /// A non-negative integer; an absent or empty field is `None`.
    fn number(&self, field: &'static str) -> Result<Option<u64>, AmiError> {
        match self.message.get(field).map(str::trim) {
            None | Some("") => Ok(None),
            Some(value) => parse_digits(value)
                .map(Some)
                .ok_or_else(|| self.bad(field, value, "non-negative integer")),
        }
    }

    fn signed(&self, field: &'static str) -> Result<Option<i64>, AmiError> {
        match self.message.get(field).map(str::trim) {
            None | Some("") => Ok(None),
            Some(value) => value
                .parse::<i64>()
                .map(Some)
                .map_err(|_| self.bad(field, value, "integer")),
        }
    }

    fn decimal(&self, field: &'static str) -> Result<Option<f64>, AmiError> {
        match self.message.get(field).map(str::trim) {
            None | Some("") => Ok(None),
            Some(value) => value
                .parse::<f64>()
                .ok()
                .filter(|number| number.is_finite())
                .map(Some)
                .ok_or_else(|| self.bad(field, value, "decimal number")),
        }
    }

    fn flag(&self, field: &'static str) -> Result<Option<bool>, AmiError> {
        match self.message.get(field).map(str::trim) {
            None | Some("") => Ok(None),
            Some(value) => match value.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(Some(true)),
                "0" | "false" | "no" | "off" => Ok(Some(false)),
                _ => Err(self.bad(field, value, "flag (0 or 1)")),
            },
        }
    }

    fn timestamp(&self) -> Result<Option<AmiTimestamp>, AmiError> {
        match self.message.get("Timestamp").map(str::trim) {
            None | Some("") => Ok(None),
            Some(value) => AmiTimestamp::parse(value)
                .map(Some)
                .ok_or_else(|| self.bad("Timestamp", value, "epoch time like 1795259576.476685")),
        }
    }

    fn caller(&self) -> Result<CallerChannel, AmiError> {
        Ok(CallerChannel {
            channel: self.text("Channel"),
            uniqueid: self.required("Uniqueid")?,
            linkedid: self.text("Linkedid"),
            caller_id_num: self.text("CallerIDNum"),
            caller_id_name: self.text("CallerIDName"),
            connected_line_num: self.text("ConnectedLineNum"),
            connected_line_name: self.text("ConnectedLineName"),
        })
    }

    fn agent(&self) -> Result<AgentLeg, AmiError> {
        Ok(AgentLeg {
            interface: self.required("Interface")?,
            member_name: self.text("MemberName"),
            dest_channel: self.text("DestChannel"),
            dest_uniqueid: self.text("DestUniqueid"),
        })
    }

    fn member(&self) -> Result<QueueMemberInfo, AmiError> {
        Ok(QueueMemberInfo {
            timestamp: self.timestamp()?,
            action_id: self.present("ActionID").map(str::to_owned),
            queue: self.required("Queue")?,
            member_name: self
                .text_any(&["MemberName", "Name"])
                .ok_or_else(|| self.missing("MemberName"))?,
            interface: self
                .text_any(&["Interface", "Location"])
                .ok_or_else(|| self.missing("Interface"))?,
            state_interface: self.text("StateInterface"),
            membership: self.present("Membership").map(Membership::parse),
            penalty: self.signed("Penalty")?,
            calls_taken: self.number("CallsTaken")?,
            last_call: self.number("LastCall")?,
            last_pause: self.number("LastPause")?,
            login_time: self.number("LoginTime")?,
            in_call: self.flag("InCall")?,
            status: self.number("Status")?.map(DeviceState::from_code),
            paused: self.flag("Paused")?,
            paused_reason: self.text("PausedReason"),
            wrapup_time_s: self.number("Wrapuptime")?,
            ring_in_use: self.flag("Ringinuse")?,
        })
    }

    fn queue_params(&self) -> Result<QueueParams, AmiError> {
        Ok(QueueParams {
            timestamp: self.timestamp()?,
            action_id: self.present("ActionID").map(str::to_owned),
            queue: self.required("Queue")?,
            max: self.number("Max")?,
            strategy: self.text("Strategy"),
            calls: self.number("Calls")?,
            hold_time_s: self.number("Holdtime")?,
            talk_time_s: self.number("TalkTime")?,
            completed: self.number("Completed")?,
            abandoned: self.number("Abandoned")?,
            service_level_s: self.number("ServiceLevel")?,
            service_level_perf: self.decimal("ServicelevelPerf")?,
            service_level_perf2: self.decimal("ServicelevelPerf2")?,
            weight: self.signed("Weight")?,
        })
    }

    fn entry(&self) -> Result<QueueEntry, AmiError> {
        Ok(QueueEntry {
            timestamp: self.timestamp()?,
            action_id: self.present("ActionID").map(str::to_owned),
            queue: self.required("Queue")?,
            position: self.number("Position")?,
            caller: self.caller()?,
            wait_s: self.number("Wait")?,
            priority: self.signed("Priority")?,
        })
    }

    fn list_complete(&self) -> Result<ListComplete, AmiError> {
        Ok(ListComplete {
            action_id: self.present("ActionID").map(str::to_owned),
            list_items: self.number("ListItems")?,
        })
    }

    fn summary(&self) -> Result<QueueSummary, AmiError> {
        Ok(QueueSummary {
            timestamp: self.timestamp()?,
            action_id: self.present("ActionID").map(str::to_owned),
            queue: self.required("Queue")?,
            logged_in: self.number("LoggedIn")?,
            available: self.number("Available")?,
            callers: self.number("Callers")?,
            hold_time_s: self.number("HoldTime")?,
            talk_time_s: self.number("TalkTime")?,
            longest_hold_time_s: self.number("LongestHoldTime")?,
        })
    }

    fn caller_move(&self) -> Result<QueueCallerMove, AmiError> {
        Ok(QueueCallerMove {
            timestamp: self.timestamp()?,
            queue: self.required("Queue")?,
            caller: self.caller()?,
            position: self.number("Position")?,
            count: self.number("Count")?,
        })
    }

    fn caller_abandon(&self) -> Result<QueueCallerAbandon, AmiError> {
        Ok(QueueCallerAbandon {
            timestamp: self.timestamp()?,
            queue: self.required("Queue")?,
            caller: self.caller()?,
            position: self.number("Position")?,
            original_position: self.number("OriginalPosition")?,
            hold_time_s: self.number("HoldTime")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn fixture_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/asterisk/ami")
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(fixture_dir().join(name)).expect("fixture file")
    }

    /// Every `.txt` fixture, sorted, with whether it is a server stream.
    fn all_fixtures() -> Vec<(String, bool, Vec<u8>)> {
        let mut names: Vec<String> = std::fs::read_dir(fixture_dir())
            .expect("fixture dir")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| name.ends_with(".txt"))
            .collect();
        names.sort();
        assert_eq!(names.len(), 36, "18 sessions, client and server side");
        names
            .into_iter()
            .map(|name| {
                let bytes = fixture(&name);
                let is_server = name.ends_with(".server.txt");
                (name, is_server, bytes)
            })
            .collect()
    }

    fn framer_for(is_server: bool) -> AmiFramer {
        if is_server {
            AmiFramer::from_server()
        } else {
            AmiFramer::from_client()
        }
    }

    fn drain(framer: &mut AmiFramer) -> Vec<Result<AmiItem, AmiError>> {
        let mut out = Vec::new();
        loop {
            match framer.next_item() {
                Ok(Some(item)) => out.push(Ok(item)),
                Ok(None) => return out,
                Err(error) => out.push(Err(error)),
            }
        }
    }

    fn frame_all(is_server: bool, bytes: &[u8]) -> Vec<AmiItem> {
        let mut framer = framer_for(is_server);
        framer.push(bytes);
        let items = drain(&mut framer)
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .expect("no framing error");
        framer.finish().expect("nothing left over");
        items
    }

    fn messages(items: &[AmiItem]) -> Vec<&AmiMessage> {
        items
            .iter()
            .filter_map(|item| match item {
                AmiItem::Message(message) => Some(message),
                _ => None,
            })
            .collect()
    }

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

    #[test]
    fn every_fixture_frames_without_error_and_prints_back_byte_for_byte() {
        for (name, is_server, bytes) in all_fixtures() {
            let items = frame_all(is_server, &bytes);
            let mut printed = Vec::new();
            for (index, item) in items.iter().enumerate() {
                match item {
                    AmiItem::Banner(banner) => {
                        assert!(is_server && index == 0, "{name}: banner only first");
                        assert_eq!(banner, AMI_BANNER, "{name}");
                        printed.extend_from_slice(banner.as_bytes());
                        printed.extend_from_slice(b"\r\n");
                    }
                    AmiItem::Message(message) => message.write_to(&mut printed),
                    AmiItem::CommandOutput { .. } => panic!("{name}: no command output here"),
                }
            }
            if is_server {
                assert!(matches!(items.first(), Some(AmiItem::Banner(_))), "{name}");
            }
            assert_eq!(
                String::from_utf8_lossy(&printed),
                String::from_utf8_lossy(&bytes),
                "{name}: print(parse(x)) == x"
            );
        }
    }

    #[test]
    fn chunking_and_bare_lf_do_not_change_the_items() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for (name, is_server, bytes) in all_fixtures() {
            let whole = frame_all(is_server, &bytes);

            let mut framer = framer_for(is_server);
            let mut bytewise = Vec::new();
            for byte in &bytes {
                framer.push(std::slice::from_ref(byte));
                bytewise.extend(drain(&mut framer));
            }
            let bytewise: Vec<AmiItem> = bytewise.into_iter().map(|r| r.expect("ok")).collect();
            assert_eq!(bytewise, whole, "{name}: byte by byte");

            let mut framer = framer_for(is_server);
            let mut chunked = Vec::new();
            let mut rest = bytes.as_slice();
            while !rest.is_empty() {
                let (chunk, tail) = rest.split_at(1 + rng.below(rest.len().min(700)));
                framer.push(chunk);
                chunked.extend(drain(&mut framer).into_iter().map(|r| r.expect("ok")));
                rest = tail;
            }
            assert_eq!(chunked, whole, "{name}: random chunks");

            let bare_lf = String::from_utf8_lossy(&bytes).replace("\r\n", "\n");
            assert_ne!(bare_lf.as_bytes(), bytes.as_slice());
            assert_eq!(
                frame_all(is_server, bare_lf.as_bytes()),
                whole,
                "{name}: bare LF"
            );
        }
    }

    fn queue_event_counts(items: &[AmiItem]) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for message in messages(items) {
            let parsed = QueueAmiEvent::from_message(message)
                .unwrap_or_else(|error| panic!("{error}: {message}"));
            if let Some(event) = parsed {
                *counts.entry(event.name()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// The queue events each session holds, from the timelines in the fixtures' README.
    const EXPECTED_QUEUE_EVENTS: &[(&str, &str)] = &[
        ("events-a-login-logout", "FullyBooted=1 QueueMemberAdded=1 QueueMemberRemoved=1 QueueMemberStatus=2"),
        ("events-b-completecaller", "AgentCalled=1 AgentComplete=1 AgentConnect=1 FullyBooted=1 QueueCallerJoin=1 QueueCallerLeave=1 QueueMemberStatus=2"),
        ("events-c-completeagent", "AgentCalled=1 AgentComplete=1 AgentConnect=1 FullyBooted=1 QueueCallerJoin=1 QueueCallerLeave=1 QueueMemberStatus=2"),
        ("events-d-ringnoanswer", "AgentCalled=2 AgentComplete=1 AgentConnect=1 AgentRingNoAnswer=1 FullyBooted=1 QueueCallerJoin=1 QueueCallerLeave=1 QueueMemberStatus=4"),
        ("events-e-abandon", "FullyBooted=1 QueueCallerAbandon=1 QueueCallerJoin=1 QueueCallerLeave=1"),
        ("events-f-ringcanceled-abandon", "AgentCalled=1 FullyBooted=1 QueueCallerAbandon=1 QueueCallerJoin=1 QueueCallerLeave=1 QueueMemberStatus=2"),
        ("events-g-exitwithtimeout", "FullyBooted=1 QueueCallerAbandon=1 QueueCallerJoin=1 QueueCallerLeave=1"),
        ("events-h-exitempty", "FullyBooted=1 QueueCallerAbandon=1 QueueCallerJoin=1 QueueCallerLeave=1"),
        ("events-i-blindtransfer", "AgentCalled=1 AgentComplete=1 AgentConnect=1 FullyBooted=1 QueueCallerJoin=1 QueueCallerLeave=1 QueueMemberStatus=2"),
        ("events-j-attendedtransfer", "AgentCalled=1 AgentComplete=1 AgentConnect=1 FullyBooted=1 QueueCallerJoin=1 QueueCallerLeave=1 QueueMemberStatus=2"),
        ("events-k1-pause-featurecodes", "FullyBooted=1 QueueMemberPause=2 QueueMemberStatus=4"),
        ("events-k2-pause-ami", "FullyBooted=1 QueueMemberPause=2"),
        ("events-l-ami-member-actions", "FullyBooted=1 QueueMemberAdded=1 QueueMemberPause=2 QueueMemberRemoved=1"),
        ("login-failed", ""),
        ("login-md5", "FullyBooted=1"),
        ("login-plain", ""),
        ("queuestatus", "QueueEntry=1 QueueMember=3 QueueParams=3 QueueStatusComplete=1"),
        ("queuesummary", "QueueSummary=3 QueueSummaryComplete=1"),
    ];

    #[test]
    fn queue_event_counts_match_the_readme() {
        let servers: Vec<_> = all_fixtures().into_iter().filter(|f| f.1).collect();
        assert_eq!(servers.len(), EXPECTED_QUEUE_EVENTS.len());
        for (session, expected) in EXPECTED_QUEUE_EVENTS {
            let bytes = fixture(&format!("{session}.server.txt"));
            let counts = queue_event_counts(&frame_all(true, &bytes));
            let got = counts
                .iter()
                .map(|(name, count)| format!("{name}={count}"))
                .collect::<Vec<_>>()
                .join(" ");
            assert_eq!(&got, expected, "{session}");
        }
    }

    fn typed(session: &str) -> Vec<QueueAmiEvent> {
        let items = frame_all(true, &fixture(&format!("{session}.server.txt")));
        messages(&items)
            .into_iter()
            .filter_map(|message| QueueAmiEvent::from_message(message).expect("valid"))
            .collect()
    }

    #[test]
    fn scenario_values_match_the_readme() {
        // d: agent1 rings out after 15 000 ms, agent2 answers after a 17 s hold.
        let d = typed("events-d-ringnoanswer");
        let no_answer = d.iter().find_map(|e| match e {
            QueueAmiEvent::AgentRingNoAnswer(e) => Some(e),
            _ => None,
        });
        let no_answer = no_answer.expect("ring no answer");
        assert_eq!(no_answer.ring_time_ms, Some(15_000));
        assert_eq!(no_answer.agent.member_name, "agent1");
        assert_eq!(no_answer.agent.dest_channel, "PJSIP/agent1-00000009");
        assert_eq!(no_answer.caller.uniqueid, "ringside-lab-1795259575.8");
        assert_eq!(
            no_answer.timestamp,
            Some(AmiTimestamp {
                secs: 1_795_259_591,
                micros: 490_989
            })
        );
        let connect = d.iter().find_map(|e| match e {
            QueueAmiEvent::AgentConnect(e) => Some(e),
            _ => None,
        });
        let connect = connect.expect("connect");
        assert_eq!(
            (connect.hold_time_s, connect.ring_time_s),
            (Some(17), Some(0))
        );
        assert_eq!(connect.agent.interface, "PJSIP/agent2");
        assert_eq!(connect.caller.caller_id_num, "caller1");
        assert_eq!(connect.caller.caller_id_name, "Caller One");

        let complete = |session: &str| {
            typed(session)
                .into_iter()
                .find_map(|e| match e {
                    QueueAmiEvent::AgentComplete(e) => {
                        Some((e.reason, e.hold_time_s, e.talk_time_s))
                    }
                    _ => None,
                })
                .expect("complete")
        };
        let caller = Some(CompleteReason::Caller);
        let agent = Some(CompleteReason::Agent);
        let transfer = Some(CompleteReason::Transfer);
        assert_eq!(
            complete("events-b-completecaller"),
            (caller.clone(), Some(0), Some(4))
        );
        assert_eq!(
            complete("events-c-completeagent"),
            (agent, Some(0), Some(3))
        );
        assert_eq!(
            complete("events-d-ringnoanswer"),
            (caller, Some(17), Some(4))
        );
        assert_eq!(
            complete("events-i-blindtransfer"),
            (transfer.clone(), Some(1), Some(2))
        );
        assert_eq!(
            complete("events-j-attendedtransfer"),
            (transfer, Some(1), Some(5))
        );

        let abandon = |session: &str| {
            typed(session)
                .into_iter()
                .find_map(|e| match e {
                    QueueAmiEvent::QueueCallerAbandon(e) => {
                        Some((e.queue, e.position, e.original_position, e.hold_time_s))
                    }
                    _ => None,
                })
                .expect("abandon")
        };
        let support = || "support".to_owned();
        assert_eq!(
            abandon("events-e-abandon"),
            (support(), Some(1), Some(1), Some(4))
        );
        assert_eq!(
            abandon("events-f-ringcanceled-abandon"),
            (support(), Some(1), Some(1), Some(4))
        );
        assert_eq!(
            abandon("events-g-exitwithtimeout"),
            (support(), Some(1), Some(1), Some(10))
        );
        assert_eq!(
            abandon("events-h-exitempty"),
            ("empty".to_owned(), Some(1), Some(1), Some(0))
        );

        let b = typed("events-b-completecaller");
        let joins: Vec<_> = b
            .iter()
            .filter_map(|e| match e {
                QueueAmiEvent::QueueCallerJoin(e) => Some((e.position, e.count)),
                QueueAmiEvent::QueueCallerLeave(e) => Some((e.position, e.count)),
                _ => None,
            })
            .collect();
        assert_eq!(joins, [(Some(1), Some(1)), (Some(1), Some(0))]);

        let pauses = |session: &str| -> Vec<(Option<bool>, String)> {
            typed(session)
                .into_iter()
                .filter_map(|e| match e {
                    QueueAmiEvent::QueueMemberPause(e) => Some((e.paused, e.paused_reason)),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(
            pauses("events-k1-pause-featurecodes"),
            [
                (Some(true), "lab-pause".to_owned()),
                (Some(false), "lab-unpause".to_owned())
            ]
        );
        assert_eq!(
            pauses("events-k2-pause-ami"),
            [
                (Some(true), "lunch".to_owned()),
                (Some(false), String::new())
            ]
        );

        let a = typed("events-a-login-logout");
        let QueueAmiEvent::QueueMemberAdded(added) = &a[1] else {
            panic!("second queue event of a is QueueMemberAdded: {:?}", a[1]);
        };
        assert_eq!(added.member_name, "agent1");
        assert_eq!(added.interface, "PJSIP/agent1");
        assert_eq!(added.membership, Some(Membership::Dynamic));
        assert_eq!(
            added.status,
            Some(DeviceState::Busy),
            "Status 3 during the *50 call"
        );
        assert_eq!(added.login_time, Some(1_795_259_545));

        let QueueAmiEvent::FullyBooted(booted) = &a[0] else {
            panic!("FullyBooted first");
        };
        assert_eq!(booted.timestamp, None, "FullyBooted has no Timestamp");
        assert_eq!(booted.status, "Fully Booted");
    }

    #[test]
    fn queuestatus_and_queuesummary_snapshots_read_as_the_readme_says() {
        let status = typed("queuestatus");
        let QueueAmiEvent::QueueParams(support) = &status[0] else {
            panic!("QueueParams first");
        };
        assert_eq!(support.queue, "support");
        assert_eq!(support.strategy, "rrmemory");
        assert_eq!(
            (
                support.max,
                support.calls,
                support.completed,
                support.abandoned
            ),
            (Some(10), Some(1), Some(5), Some(1))
        );
        assert_eq!(
            (support.hold_time_s, support.talk_time_s),
            (Some(2), Some(2))
        );
        assert_eq!(support.service_level_s, Some(60));
        assert_eq!(support.service_level_perf, Some(100.0));
        assert_eq!(support.action_id.as_deref(), Some("qs-1"));

        let members: Vec<&QueueMemberInfo> = status
            .iter()
            .filter_map(|e| match e {
                QueueAmiEvent::QueueMember(m) => Some(m),
                _ => None,
            })
            .collect();
        let summary: Vec<_> = members
            .iter()
            .map(|m| {
                (
                    m.queue.as_str(),
                    m.member_name.as_str(),
                    m.interface.as_str(),
                    m.membership.clone(),
                    m.status,
                    m.paused,
                    m.paused_reason.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "support",
                    "agent1",
                    "PJSIP/agent1",
                    Some(Membership::Dynamic),
                    Some(DeviceState::Busy),
                    Some(false),
                    ""
                ),
                (
                    "support",
                    "agent2",
                    "PJSIP/agent2",
                    Some(Membership::Dynamic),
                    Some(DeviceState::NotInUse),
                    Some(true),
                    "coffee-break"
                ),
                (
                    "sales",
                    "agent3",
                    "PJSIP/agent3",
                    Some(Membership::Static),
                    Some(DeviceState::NotInUse),
                    Some(false),
                    ""
                ),
            ]
        );
        assert_eq!(members[0].calls_taken, Some(4));
        assert_eq!(members[0].in_call, Some(false));
        assert_eq!(members[1].last_pause, Some(1_795_259_646));

        let entry = status.iter().find_map(|e| match e {
            QueueAmiEvent::QueueEntry(e) => Some(e),
            _ => None,
        });
        let entry = entry.expect("one waiting caller");
        assert_eq!((entry.position, entry.wait_s), (Some(1), Some(2)));
        assert_eq!(entry.caller.uniqueid, "ringside-lab-1795259646.22");
        assert_eq!(entry.caller.connected_line_num, "agent1");
        let Some(QueueAmiEvent::QueueStatusComplete(done)) = status.last() else {
            panic!("list ends with QueueStatusComplete");
        };
        assert_eq!(done.list_items, Some(7));
        assert_eq!(done.action_id.as_deref(), Some("qs-1"));

        let summary: Vec<_> = typed("queuesummary")
            .into_iter()
            .filter_map(|e| match e {
                QueueAmiEvent::QueueSummary(s) => Some((
                    s.queue,
                    s.logged_in,
                    s.available,
                    s.callers,
                    s.longest_hold_time_s,
                )),
                QueueAmiEvent::QueueSummaryComplete(c) => {
                    Some(("complete".to_owned(), c.list_items, None, None, None))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("support".to_owned(), Some(2), Some(0), Some(1), Some(2)),
                ("sales".to_owned(), Some(1), Some(1), Some(0), Some(0)),
                ("empty".to_owned(), Some(0), Some(0), Some(0), Some(0)),
                ("complete".to_owned(), Some(3), None, None, None),
            ]
        );
    }

    #[test]
    fn responses_correlate_with_their_actions_by_action_id() {
        let client = frame_all(false, &fixture("events-l-ami-member-actions.client.txt"));
        let server = frame_all(true, &fixture("events-l-ami-member-actions.server.txt"));
        let responses: Vec<(String, String, String)> = messages(&server)
            .into_iter()
            .filter_map(|m| match m.kind() {
                AmiKind::Response(status) => Some((
                    m.action_id().unwrap_or_default().to_owned(),
                    status.to_owned(),
                    m.get("message").unwrap_or_default().to_owned(),
                )),
                _ => None,
            })
            .collect();
        let actions: Vec<String> = messages(&client)
            .into_iter()
            .map(|m| {
                assert!(matches!(m.kind(), AmiKind::Action(_)));
                m.action_id().expect("every action has an id").to_owned()
            })
            .collect();
        let response_ids: Vec<&str> = responses.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(response_ids, actions);
        let results: Vec<(&str, &str)> = responses
            .iter()
            .map(|(_, status, message)| (status.as_str(), message.as_str()))
            .collect();
        assert_eq!(
            results,
            [
                ("Success", "Authentication accepted"),
                ("Success", "Added interface to queue"),
                ("Error", "Unable to add interface: Already there"),
                ("Success", "Interface paused successfully"),
                ("Success", "Interface unpaused successfully"),
                ("Success", "Removed interface from queue"),
                ("Error", "Unable to remove interface: Not there"),
                ("Error", "Interface not found"),
                ("Goodbye", "Thanks for all the fish."),
            ]
        );
    }

    #[test]
    fn md5_login_fixture_verifies_with_the_lab_secret() {
        let server = frame_all(true, &fixture("login-md5.server.txt"));
        let client = frame_all(false, &fixture("login-md5.client.txt"));
        let challenge_text = messages(&server)[0].get("Challenge").expect("challenge");
        assert_eq!(challenge_text, "655728084");
        let login = messages(&client)[1];
        let key = login.get("Key").expect("key");
        assert_eq!(key, "384faa4f1c0dba84da6662b7a532d779");
        assert_eq!(md5_key(challenge_text, "console-ami-secret"), key);
        assert!(verify_md5_key(challenge_text, "console-ami-secret", key));
        assert!(verify_md5_key(
            challenge_text,
            "console-ami-secret",
            &key.to_uppercase()
        ));
        assert!(!verify_md5_key(challenge_text, "lab", key));
        assert!(!verify_md5_key("655728085", "console-ami-secret", key));
        assert!(!verify_md5_key(
            challenge_text,
            "console-ami-secret",
            &key[..31]
        ));
        assert_eq!(
            md5_key("", ""),
            "d41d8cd98f00b204e9800998ecf8427e",
            "RFC 1321 vector"
        );

        // Our requests equal what the capture's client sent (minus its `Events:` choice).
        assert_eq!(challenge("md5-challenge-1"), *messages(&client)[0]);
        let mut captured = login.clone();
        captured.fields.retain(|(k, _)| k != "Events");
        assert_eq!(
            login_md5(
                "console",
                challenge_text,
                "console-ami-secret",
                "md5-login-2"
            ),
            captured
        );
        let plain = frame_all(false, &fixture("events-a-login-logout.client.txt"));
        let mut captured = messages(&plain)[0].clone();
        captured.fields.retain(|(k, _)| k != "Events");
        assert_eq!(
            login_plain("console", "console-ami-secret", "a-login"),
            captured
        );
        assert_eq!(
            challenge("md5-challenge-1").to_bytes(),
            b"Action: Challenge\r\nAuthType: MD5\r\nActionID: md5-challenge-1\r\n\r\n"
        );
    }

    #[test]
    fn message_accessors_and_round_trip() {
        let message = AmiMessage::event("OriginateResponse")
            .with("Response", "Success")
            .with("ActionID", "o-1")
            .with("Variable", "A=1")
            .with("variable", "B=2")
            .with("Empty", "");
        assert_eq!(message.kind(), AmiKind::Event("OriginateResponse"));
        assert_eq!(message.get("actionid"), Some("o-1"));
        assert_eq!(message.action_id(), Some("o-1"));
        assert_eq!(
            message.get_all("VARIABLE").collect::<Vec<_>>(),
            ["A=1", "B=2"]
        );
        assert_eq!(message.get("missing"), None);
        assert_eq!(
            AmiMessage::response("Error").kind(),
            AmiKind::Response("Error")
        );
        assert_eq!(AmiMessage::action("Ping").kind(), AmiKind::Action("Ping"));
        assert_eq!(AmiMessage::new().with("Foo", "bar").kind(), AmiKind::Other);

        let bytes = message.to_bytes();
        assert_eq!(
            bytes,
            b"Event: OriginateResponse\r\nResponse: Success\r\nActionID: o-1\r\nVariable: A=1\r\nvariable: B=2\r\nEmpty: \r\n\r\n"
        );
        assert_eq!(frame_all(false, &bytes), [AmiItem::Message(message)]);

        // A value can never end the message early or add a line.
        let injected = AmiMessage::action("Originate").with("CallerID", "x\r\n\r\nAction: Logoff");
        let framed = frame_all(false, &injected.to_bytes());
        assert_eq!(framed.len(), 1);
        let AmiItem::Message(framed) = &framed[0] else {
            panic!("message");
        };
        assert_eq!(framed.get("CallerID"), Some("x    Action: Logoff"));
    }

    #[test]
    fn malformed_lines_are_reported_and_the_message_goes_on() {
        let mut framer = AmiFramer::from_server();
        framer.push(b"Asterisk Call Manager/11.0.0\r\nEvent: Test\r\nno colon here\r\n: empty key\r\nKey:  value\r\n\r\n\r\n\r\nEvent: Next\r\n\r\n");
        let items = drain(&mut framer);
        let mut expected_first = AmiMessage::event("Test");
        expected_first.push("Key", "value");
        assert_eq!(
            items,
            [
                Ok(AmiItem::Banner(AMI_BANNER.to_owned())),
                Err(AmiError::MalformedLine {
                    line: "no colon here".to_owned()
                }),
                Err(AmiError::MalformedLine {
                    line: ": empty key".to_owned()
                }),
                Ok(AmiItem::Message(expected_first)),
                Ok(AmiItem::Message(AmiMessage::event("Next"))),
            ]
        );
        assert!(framer.finish().is_ok());
        let error = AmiError::MalformedLine { line: "x".into() }.to_string();
        assert!(
            error.contains("\"x\"") && error.contains("skipped"),
            "{error}"
        );
    }

    #[test]
    fn command_output_is_read_up_to_end_command() {
        let mut framer = AmiFramer::from_client();
        framer.push(b"Response: Follows\r\nPrivilege: Command\r\nActionID: c-1\r\nName: value-like line\r\n\r\nlast line\r\n--END COMMAND--\r\n\r\nResponse: Follows\r\nPrivilege: Command\r\nglued--END COMMAND--\r\n\r\n");
        let items: Vec<AmiItem> = drain(&mut framer)
            .into_iter()
            .map(|r| r.expect("ok"))
            .collect();
        assert_eq!(
            items,
            [
                AmiItem::CommandOutput {
                    headers: AmiMessage::response("Follows")
                        .with("Privilege", "Command")
                        .with("ActionID", "c-1"),
                    output: "Name: value-like line\n\nlast line\n".to_owned(),
                },
                AmiItem::CommandOutput {
                    headers: AmiMessage::response("Follows").with("Privilege", "Command"),
                    output: "glued\n".to_owned(),
                },
            ]
        );
        assert!(framer.finish().is_ok());
    }

    #[test]
    fn oversized_input_is_dropped_with_bounded_memory_and_the_stream_resumes() {
        let limits = AmiLimits {
            max_message_bytes: 4096,
            max_fields: 8,
        };
        // 10 MB on one line, pushed in 4 KiB chunks.
        let mut framer = AmiFramer::from_client_with_limits(limits);
        let chunk = vec![b'x'; 4096];
        let mut errors = 0;
        for _ in 0..2560 {
            framer.push(&chunk);
            errors += drain(&mut framer).iter().filter(|r| r.is_err()).count();
            assert!(
                framer.buffered_len() <= 2 * 4096,
                "{}",
                framer.buffered_len()
            );
        }
        assert_eq!(errors, 1, "one MessageTooLarge, then silent discarding");
        framer.push(b"\r\n\r\nAction: Ping\r\n\r\n");
        assert_eq!(
            drain(&mut framer),
            [Ok(AmiItem::Message(AmiMessage::action("Ping")))]
        );

        // Many short lines: too many fields, then too many bytes.
        let mut framer = AmiFramer::from_client_with_limits(limits);
        let mut many = b"Action: Big\r\n".to_vec();
        for index in 0..20 {
            many.extend_from_slice(format!("Field{index}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\nAction: After\r\n\r\n");
        framer.push(&many);
        assert_eq!(
            drain(&mut framer),
            [
                Err(AmiError::TooManyFields { limit: 8 }),
                Ok(AmiItem::Message(AmiMessage::action("After")))
            ]
        );
        let mut framer = AmiFramer::from_client_with_limits(AmiLimits {
            max_fields: 10_000,
            ..limits
        });
        let mut long = b"Action: Long\r\n".to_vec();
        for _ in 0..100 {
            long.extend_from_slice(format!("Variable: {}\r\n", "y".repeat(100)).as_bytes());
        }
        long.extend_from_slice(b"\r\nAction: After\r\n\r\n");
        framer.push(&long);
        assert_eq!(
            drain(&mut framer),
            [
                Err(AmiError::MessageTooLarge { limit: 4096 }),
                Ok(AmiItem::Message(AmiMessage::action("After")))
            ]
        );
        // Endless command output is bounded too, blank lines included.
        let mut framer = AmiFramer::from_client_with_limits(limits);
        framer.push(b"Response: Follows\r\n");
        let mut errors = 0;
        for _ in 0..10_000 {
            framer.push(b"\r\n");
            errors += drain(&mut framer).iter().filter(|r| r.is_err()).count();
        }
        assert_eq!(errors, 1);
        assert!(framer.buffered_len() <= 4096);
    }

    #[test]
    fn truncated_streams_keep_complete_items_and_report_the_rest() {
        let bytes = fixture("queuestatus.server.txt");
        let whole = frame_all(true, &bytes);
        let mut rng = XorShift(42);
        for _ in 0..200 {
            let cut = rng.below(bytes.len());
            let mut framer = AmiFramer::from_server();
            framer.push(&bytes[..cut]);
            let items: Vec<AmiItem> = drain(&mut framer)
                .into_iter()
                .map(|r| r.expect("ok"))
                .collect();
            assert_eq!(items[..], whole[..items.len()], "cut at {cut}");
            let ends_clean = bytes[..cut].ends_with(b"\r\n\r\n")
                || (items.len() == 1 && bytes[..cut].ends_with(b"11.0.0\r\n"))
                || cut == 0;
            match framer.finish() {
                Ok(()) => assert!(ends_clean, "cut at {cut} must be reported"),
                Err(AmiError::Truncated { bytes: left }) => {
                    assert!(!ends_clean && left > 0, "cut at {cut}")
                }
                Err(other) => panic!("{other}"),
            }
        }
    }

    #[test]
    fn mutated_fixtures_never_panic_and_stay_bounded() {
        let fixtures = all_fixtures();
        let limits = AmiLimits {
            max_message_bytes: 2048,
            max_fields: 64,
        };
        let mut rng = XorShift(0x0123_4567_89ab_cdef);
        for round in 0..3000 {
            let (_, is_server, original) = &fixtures[rng.below(fixtures.len())];
            let mut bytes = original.clone();
            for _ in 0..1 + rng.below(20) {
                let at = rng.below(bytes.len());
                match rng.below(6) {
                    0 => bytes[at] = rng.next() as u8,
                    1 => bytes.insert(at, b"\r\n:|-\0\xff"[rng.below(7)]),
                    2 => {
                        bytes.remove(at);
                    }
                    3 => bytes.truncate(at),
                    4 => {
                        let end = (at + rng.below(4000)).min(bytes.len());
                        let copy = bytes[at..end].to_vec();
                        bytes.splice(at..at, copy);
                    }
                    _ => bytes
                        .splice(at..at, std::iter::repeat_n(b'z', rng.below(5000)))
                        .for_each(drop),
                }
                if bytes.is_empty() {
                    break;
                }
            }
            let mut framer = if *is_server {
                AmiFramer::from_server_with_limits(limits)
            } else {
                AmiFramer::from_client_with_limits(limits)
            };
            let mut rest = bytes.as_slice();
            while !rest.is_empty() {
                let (chunk, tail) = rest.split_at(1 + rng.below(rest.len().min(300)));
                framer.push(chunk);
                for item in drain(&mut framer) {
                    if let Ok(AmiItem::Message(message)) = item {
                        assert!(message.fields.len() <= 64);
                        let _ = QueueAmiEvent::from_message(&message);
                    }
                }
                assert!(framer.buffered_len() <= 2048 + 300, "round {round}");
                rest = tail;
            }
            let _ = framer.finish();
        }
    }

    #[test]
    fn typed_events_reject_missing_and_bad_fields() {
        let join = AmiMessage::event("QueueCallerJoin")
            .with("Queue", "support")
            .with("Position", "1");
        assert_eq!(
            QueueAmiEvent::from_message(&join),
            Err(AmiError::MissingField {
                event: "QueueCallerJoin".into(),
                field: "Uniqueid"
            })
        );
        let bad = join.clone().with("Uniqueid", "u-1").with("Count", "-3");
        let error = QueueAmiEvent::from_message(&bad).expect_err("negative count");
        assert!(
            matches!(error, AmiError::BadValue { field: "Count", .. }),
            "{error}"
        );
        assert!(error.to_string().contains("\"-3\""));
        let ok = join
            .with("Uniqueid", "u-1")
            .with("Count", "")
            .with("Timestamp", "12.5");
        let Some(QueueAmiEvent::QueueCallerJoin(ok)) =
            QueueAmiEvent::from_message(&ok).expect("ok")
        else {
            panic!("join");
        };
        assert_eq!((ok.position, ok.count), (Some(1), None));
        assert_eq!(
            ok.timestamp,
            Some(AmiTimestamp {
                secs: 12,
                micros: 500_000
            })
        );
        assert_eq!(ok.timestamp.map(|t| t.as_micros()), Some(12_500_000));
        assert_eq!(
            QueueAmiEvent::from_message(&AmiMessage::event("Newchannel")),
            Ok(None)
        );
        assert_eq!(
            QueueAmiEvent::from_message(&AmiMessage::response("Success")),
            Ok(None)
        );
        let overflow = AmiMessage::event("QueueSummary")
            .with("Queue", "q")
            .with("Callers", "99999999999999999999999");
        assert!(QueueAmiEvent::from_message(&overflow).is_err());
        assert_eq!(
            AmiTimestamp::parse("1795259576.476685"),
            Some(AmiTimestamp {
                secs: 1_795_259_576,
                micros: 476_685
            })
        );
        assert_eq!(
            AmiTimestamp::parse("1.1234567"),
            Some(AmiTimestamp {
                secs: 1,
                micros: 123_456
            })
        );
        assert_eq!(AmiTimestamp::parse("1.x"), None);
        assert_eq!(AmiTimestamp::parse(".5"), None);
    }
}
