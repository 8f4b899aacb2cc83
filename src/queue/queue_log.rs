//! Asterisk's queue_log format: parse and write, sans-IO and fast.
//!
//! Each line is `epoch|callid|queue|agent|EVENT|data1|data2|...`, written by app_queue as
//! `"%ld|%s|%s|%s|%s|%s\n"` where the last `%s` is the event's data already joined with `|`.
//! So Asterisk always writes a sixth field, empty for events without data (`...|ADDMEMBER|`).
//! Here an empty sixth field and a missing one both read as "no data", and
//! [`format_line`] always writes the sixth field, which makes `format(parse(line)) == line`
//! for every line Asterisk writes.
//!
//! Two readers: [`parse_line`] / [`parse_all`] build owned [`QueueLogLine`]s; [`parse_line_ref`]
//! / [`lines_ref`] return [`QueueLogRef`]s borrowing from the text, with no allocation at all,
//! for whole-file statistics. Field meanings and units, from app_queue.c (Asterisk 22):
//! wait, hold and talk times are seconds, ring times of RINGNOANSWER / RINGCANCELED are
//! milliseconds.

use core::convert::Infallible;
use core::fmt;
use core::str::FromStr;

use thiserror::Error;

/// Why one queue_log line could not be read. Reported with the line number by [`parse_all`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueueLogError {
    #[error("queue_log line has only {found} `|`-separated field(s), at least 5 are needed (time|callid|queue|agent|event): the line is cut short or is not from a queue_log")]
    TooFewFields { found: usize },
    #[error("queue_log time {value:?} is not whole seconds since the epoch (Asterisk writes digits only): the file may be damaged or not a queue_log")]
    BadTime { value: String },
    #[error("queue_log line has an empty event name in field 5: the file may be damaged")]
    EmptyEvent,
}

/// Longest piece of a bad field quoted back in an error.
const MAX_QUOTED: usize = 40;

macro_rules! queue_log_events {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, )*) => {
        /// A queue_log event (the fifth field). Unknown names are kept in `Other`, never an
        /// error. `S` is the text type of `Other`: `String` for owned lines, `&str` in
        /// [`QueueLogRef`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum QueueLogEvent<S = String> {
            $( $(#[$doc])* $variant, )*
            /// Any other event name, kept as written.
            Other(S),
        }

        #[derive(Clone, Copy)]
        enum Discriminant {
            $( $variant, )*
            Other,
        }

        impl<'a> QueueLogEvent<&'a str> {
            /// Reads an event name, exactly as Asterisk writes it (upper case).
            pub fn from_name(name: &'a str) -> Self {
                match name {
                    $( $name => Self::$variant, )*
                    other => Self::Other(other),
                }
            }
        }

        impl<S: AsRef<str>> QueueLogEvent<S> {
            /// The name as written in the file (`TRANSFER` stays `TRANSFER`).
            pub fn name(&self) -> &str {
                match self {
                    $( Self::$variant => $name, )*
                    Self::Other(name) => name.as_ref(),
                }
            }

            /// A borrowed view, e.g. to compare an owned event with one from [`parse_line_ref`].
            pub fn as_borrowed(&self) -> QueueLogEvent<&str> {
                match self {
                    $( Self::$variant => QueueLogEvent::$variant, )*
                    Self::Other(name) => QueueLogEvent::Other(name.as_ref()),
                }
            }
        }

        impl<S> QueueLogEvent<S> {
            /// Number of distinct kinds, `Other` included: the length of a per-kind table.
            pub const KIND_COUNT: usize = Discriminant::Other as usize + 1;

            /// A dense index in `0..KIND_COUNT` (every `Other` shares the last one), for
            /// counting per kind in an array instead of a map.
            pub fn index(&self) -> usize {
                let discriminant = match self {
                    $( Self::$variant => Discriminant::$variant, )*
                    Self::Other(_) => Discriminant::Other,
                };
                discriminant as usize
            }

            /// Converts the text of `Other`, keeping every known kind.
            pub fn map_other<T>(self, convert: impl FnOnce(S) -> T) -> QueueLogEvent<T> {
                match self {
                    $( Self::$variant => QueueLogEvent::$variant, )*
                    Self::Other(name) => QueueLogEvent::Other(convert(name)),
                }
            }
        }
    };
}

queue_log_events! {
    /// A caller joined. Data: url, caller id number, position.
    EnterQueue = "ENTERQUEUE",
    /// An agent answered. Data: hold time s, uniqueid of the agent's channel, ring time s.
    Connect = "CONNECT",
    /// The agent hung up. Data: hold time s, call time s, original position.
    CompleteAgent = "COMPLETEAGENT",
    /// The caller hung up. Data: hold time s, call time s, original position.
    CompleteCaller = "COMPLETECALLER",
    /// The caller hung up while waiting. Data: position, original position, wait time s.
    Abandon = "ABANDON",
    /// The caller left because no member could take calls. Data: position, original
    /// position, wait time s.
    ExitEmpty = "EXITEMPTY",
    /// The caller reached the queue's maximum wait. Data: position, original position,
    /// wait time s.
    ExitWithTimeout = "EXITWITHTIMEOUT",
    /// The caller pressed a key to leave. Data: key, position, original position, wait s.
    ExitWithKey = "EXITWITHKEY",
    /// An agent rang out. Data: ring time **ms**.
    RingNoAnswer = "RINGNOANSWER",
    /// The caller hung up while an agent was ringing. Data: ring time **ms**.
    RingCanceled = "RINGCANCELED",
    /// Attended transfer. Data (bridge case): `BRIDGE`, bridge uniqueid, hold time s, call
    /// time s, original position; Asterisk also writes `APP` and `LINK` variants.
    AttendedTransfer = "ATTENDEDTRANSFER",
    /// Blind transfer. Data: extension, context, hold time s, call time s, original position.
    BlindTransfer = "BLINDTRANSFER",
    /// The name Asterisk 11 and older used for every transfer, with BLINDTRANSFER's data
    /// (extension, context, hold time s, call time s, original position).
    Transfer = "TRANSFER",
    /// A member joined the queue (dynamic login or QueueAdd). No data.
    AddMember = "ADDMEMBER",
    /// A member left the queue. No data.
    RemoveMember = "REMOVEMEMBER",
    /// A member paused in this queue. Data: reason (may be empty).
    Pause = "PAUSE",
    /// A member unpaused in this queue. Data: reason (may be empty).
    Unpause = "UNPAUSE",
    /// A member paused in all queues; the queue field is `NONE`. Data: reason.
    PauseAll = "PAUSEALL",
    /// A member unpaused in all queues; the queue field is `NONE`. Data: reason.
    UnpauseAll = "UNPAUSEALL",
    /// chan_agent / app_agent_pool login (not written for plain queue members).
    AgentLogin = "AGENTLOGIN",
    /// chan_agent / app_agent_pool logoff.
    AgentLogoff = "AGENTLOGOFF",
    /// Asterisk started (callid, queue and agent are `NONE`).
    QueueStart = "QUEUESTART",
    /// The queue configuration was reloaded.
    ConfigReload = "CONFIGRELOAD",
    /// The agent answered but the two channels could not be made compatible (no common
    /// format), so the call was not bridged.
    SysCompat = "SYSCOMPAT",
    /// The caller was refused because the queue had no members (`joinempty`).
    JoinEmpty = "JOINEMPTY",
}

impl QueueLogEvent<&str> {
    /// An owned copy, for keeping an event beyond the text it was read from.
    pub fn into_owned(self) -> QueueLogEvent {
        self.map_other(str::to_owned)
    }
}

impl FromStr for QueueLogEvent {
    type Err = Infallible;

    /// Never fails: unknown names become `Other`.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Ok(QueueLogEvent::from_name(name).into_owned())
    }
}

impl<S: AsRef<str>> fmt::Display for QueueLogEvent<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One queue_log line, owned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueueLogLine {
    /// Seconds since the epoch.
    pub time: u64,
    /// The caller channel's uniqueid; `NONE` for pause and start lines, `MANAGER` / `CLI` for
    /// members added or removed by AMI / the CLI.
    pub call_id: String,
    /// `NONE` on lines not tied to one queue (QUEUESTART, PAUSEALL, UNPAUSEALL).
    pub queue: String,
    /// The member name (with `log_membername_as_agent = yes`) or interface; `NONE` when no
    /// agent is involved.
    pub agent: String,
    pub event: QueueLogEvent,
    /// The fields after the event. Empty for events without data, whether the line ends in
    /// `|` (as Asterisk writes it) or not.
    pub data: Vec<String>,
}

impl QueueLogLine {
    /// Data field `index` (0 = the first after the event).
    pub fn data_field(&self, index: usize) -> Option<&str> {
        self.data.get(index).map(String::as_str)
    }

    /// Data field `index` read as a non-negative integer.
    pub fn data_number(&self, index: usize) -> Option<u64> {
        self.data_field(index).and_then(parse_epoch_digits)
    }
}

impl fmt::Display for QueueLogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_line(self))
    }
}

/// One queue_log line borrowing its text: the allocation-free form for whole-file passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueueLogRef<'a> {
    pub time: u64,
    pub call_id: &'a str,
    pub queue: &'a str,
    pub agent: &'a str,
    pub event: QueueLogEvent<&'a str>,
    /// Everything after the event's `|`, still joined: `""` when there is no data,
    /// `"|caller1|1"` for an ENTERQUEUE with an empty url.
    pub data: &'a str,
}

impl<'a> QueueLogRef<'a> {
    /// The data fields, split on `|`; none when `data` is empty.
    pub fn data_fields(&self) -> impl Iterator<Item = &'a str> + 'a {
        let data = self.data;
        (!data.is_empty())
            .then(|| data.split('|'))
            .into_iter()
            .flatten()
    }

    /// Data field `index` (0 = the first after the event).
    pub fn data_field(&self, index: usize) -> Option<&'a str> {
        self.data_fields().nth(index)
    }

    /// Data field `index` read as a non-negative integer.
    pub fn data_number(&self, index: usize) -> Option<u64> {
        self.data_field(index).and_then(parse_epoch_digits)
    }

    /// An owned copy of the line.
    pub fn to_line(&self) -> QueueLogLine {
        QueueLogLine {
            time: self.time,
            call_id: self.call_id.to_owned(),
            queue: self.queue.to_owned(),
            agent: self.agent.to_owned(),
            event: self.event.into_owned(),
            data: self.data_fields().map(str::to_owned).collect(),
        }
    }
}

/// Reads one line without allocating. A trailing `\n` or `\r\n` is ignored.
pub fn parse_line_ref(line: &str) -> Result<QueueLogRef<'_>, QueueLogError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    // One pass over the bytes for the first five separators; `|` is ASCII, so every cut is
    // a char boundary and `get` never fails on it.
    let bytes = line.as_bytes();
    let mut cuts = [bytes.len(); 5];
    let mut found = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        if byte == b'|' {
            cuts[found] = index;
            found += 1;
            if found == cuts.len() {
                break;
            }
        }
    }
    if found < 4 {
        return Err(QueueLogError::TooFewFields { found: found + 1 });
    }
    let field = |from: usize, to: usize| line.get(from..to).unwrap_or_default();
    let time = field(0, cuts[0]);
    let call_id = field(cuts[0] + 1, cuts[1]);
    let queue = field(cuts[1] + 1, cuts[2]);
    let agent = field(cuts[2] + 1, cuts[3]);
    let event = field(cuts[3] + 1, cuts[4]);
    let data = if found == 5 {
        field(cuts[4] + 1, bytes.len())
    } else {
        ""
    };
    let time =
        parse_epoch_digits(time).ok_or_else(|| QueueLogError::BadTime { value: quote(time) })?;
    if event.is_empty() {
        return Err(QueueLogError::EmptyEvent);
    }
    Ok(QueueLogRef {
        time,
        call_id,
        queue,
        agent,
        event: QueueLogEvent::from_name(event),
        data,
    })
}

/// Reads one line into an owned [`QueueLogLine`].
pub fn parse_line(line: &str) -> Result<QueueLogLine, QueueLogError> {
    parse_line_ref(line).map(|line| line.to_line())
}

/// Writes a line in Asterisk's exact format, without the final newline. Line breaks inside
/// fields become spaces so one record stays one line; a `|` inside a field is written as is,
/// as Asterisk does, and reads back as a separator.
pub fn format_line(line: &QueueLogLine) -> String {
    let mut out = String::with_capacity(
        24 + line.call_id.len()
            + line.queue.len()
            + line.agent.len()
            + line.event.name().len()
            + line.data.iter().map(|field| field.len() + 1).sum::<usize>(),
    );
    write_line(line, &mut out);
    out
}

/// Appends [`format_line`]'s text and a `\n` to `out`: the form a queue_log writer appends.
pub fn write_record(line: &QueueLogLine, out: &mut String) {
    write_line(line, out);
    out.push('\n');
}

fn write_line(line: &QueueLogLine, out: &mut String) {
    use fmt::Write as _;
    // Writing into a String cannot fail.
    let _ = write!(out, "{}", line.time);
    for field in [
        line.call_id.as_str(),
        line.queue.as_str(),
        line.agent.as_str(),
        line.event.name(),
    ] {
        out.push('|');
        push_one_line(out, field);
    }
    out.push('|');
    for (index, field) in line.data.iter().enumerate() {
        if index > 0 {
            out.push('|');
        }
        push_one_line(out, field);
    }
}

fn push_one_line(out: &mut String, text: &str) {
    if text.contains(['\r', '\n']) {
        out.extend(
            text.chars()
                .map(|c| if c == '\r' || c == '\n' { ' ' } else { c }),
        );
    } else {
        out.push_str(text);
    }
}

/// Iterates over the lines of a queue_log text as `(line number from 1, result)`, borrowing.
/// Blank lines (the end of the file, or a stray empty line) are skipped, not errors.
pub fn lines_ref(text: &str) -> QueueLogLines<'_> {
    QueueLogLines {
        rest: Some(text),
        line_number: 0,
    }
}

/// The iterator of [`lines_ref`].
#[derive(Debug, Clone)]
pub struct QueueLogLines<'a> {
    rest: Option<&'a str>,
    line_number: usize,
}

impl<'a> Iterator for QueueLogLines<'a> {
    type Item = (usize, Result<QueueLogRef<'a>, QueueLogError>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let text = self.rest?;
            let (line, rest) = match text.split_once('\n') {
                Some((line, rest)) => (line, Some(rest)),
                None => (text, None),
            };
            self.rest = rest;
            self.line_number += 1;
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            return Some((self.line_number, parse_line_ref(line)));
        }
    }
}

/// Reads a whole queue_log. Malformed lines never stop the read: they come back with their
/// line number (from 1) next to the lines that parsed.
pub fn parse_all(text: &str) -> (Vec<QueueLogLine>, Vec<(usize, QueueLogError)>) {
    let mut lines = Vec::with_capacity(text.len() / 64);
    let mut errors = Vec::new();
    for (line_number, result) in lines_ref(text) {
        match result {
            Ok(line) => lines.push(line.to_line()),
            Err(error) => errors.push((line_number, error)),
        }
    }
    (lines, errors)
}

/// Digits only, no sign or blanks, and no overflow.
fn parse_epoch_digits(text: &str) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    text.bytes().try_fold(0u64, |value, byte| {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

fn quote(text: &str) -> String {
    let mut end = text.len().min(MAX_QUOTED);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn full_log() -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/asterisk/queue_log/full.log"
        );
        std::fs::read_to_string(path).expect("fixture")
    }

    fn nth_line(number: usize) -> QueueLogLine {
        let text = full_log();
        let line = text.lines().nth(number - 1).expect("line exists");
        parse_line(line).expect("parses")
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn every_fixture_line_parses_and_formats_back_byte_for_byte() {
        let text = full_log();
        assert!(text.ends_with('\n'));
        let raw_lines: Vec<&str> = text.split_terminator('\n').collect();
        assert_eq!(raw_lines.len(), 52);
        for (index, raw) in raw_lines.iter().enumerate() {
            let line = parse_line(raw).unwrap_or_else(|e| panic!("line {}: {e}", index + 1));
            assert_eq!(format_line(&line), *raw, "line {}", index + 1);
            let borrowed = parse_line_ref(raw).expect("parses");
            assert_eq!(borrowed.to_line(), line);
            assert_eq!(borrowed.event, line.event.as_borrowed());
        }
        let (lines, errors) = parse_all(&text);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(lines.len(), 52);
        let mut written = String::new();
        for line in &lines {
            write_record(line, &mut written);
        }
        assert_eq!(written, text, "the whole file writes back identically");
    }

    #[test]
    fn event_counts_match_the_readme() {
        let (lines, _) = parse_all(&full_log());
        let mut counts = BTreeMap::new();
        for line in &lines {
            *counts.entry(line.event.name().to_owned()).or_insert(0) += 1;
        }
        let expected: BTreeMap<String, usize> = [
            ("ABANDON", 3),
            ("ADDMEMBER", 6),
            ("ATTENDEDTRANSFER", 1),
            ("BLINDTRANSFER", 1),
            ("COMPLETEAGENT", 1),
            ("COMPLETECALLER", 2),
            ("CONNECT", 5),
            ("ENTERQUEUE", 10),
            ("EXITEMPTY", 1),
            ("EXITWITHTIMEOUT", 1),
            ("PAUSE", 4),
            ("PAUSEALL", 1),
            ("QUEUESTART", 1),
            ("REMOVEMEMBER", 6),
            ("RINGCANCELED", 2),
            ("RINGNOANSWER", 1),
            ("UNPAUSE", 4),
            ("UNPAUSEALL", 2),
        ]
        .into_iter()
        .map(|(name, count)| (name.to_owned(), count))
        .collect();
        assert_eq!(counts, expected);
        assert!(lines
            .iter()
            .all(|l| !matches!(l.event, QueueLogEvent::Other(_))));
    }

    #[test]
    fn fixture_fields_read_as_the_readme_says() {
        let enter = nth_line(5);
        assert_eq!(enter.time, 1_795_259_557);
        assert_eq!(enter.call_id, "ringside-lab-1795259556.3");
        assert_eq!(
            (enter.queue.as_str(), enter.agent.as_str()),
            ("support", "NONE")
        );
        assert_eq!(enter.event, QueueLogEvent::EnterQueue);
        assert_eq!(enter.data, strings(&["", "caller1", "1"]));

        let connect = nth_line(14);
        assert_eq!(connect.event, QueueLogEvent::Connect);
        assert_eq!(connect.agent, "agent2");
        assert_eq!(connect.data_number(0), Some(17));
        assert_eq!(connect.data_field(1), Some("ringside-lab-1795259593.10"));
        assert_eq!(connect.data_number(2), Some(0));

        assert_eq!(
            nth_line(13).data_number(0),
            Some(15_000),
            "RINGNOANSWER in ms"
        );
        assert_eq!(nth_line(24).data, strings(&["4502"]));
        assert_eq!(nth_line(19).data, strings(&["1002", "lab", "1", "2", "1"]));
        assert_eq!(
            nth_line(22).data,
            strings(&[
                "BRIDGE",
                "03575afb-bad5-4209-b224-321cda7d81f0",
                "1",
                "5",
                "1"
            ])
        );
        assert_eq!(nth_line(37).event, QueueLogEvent::ExitWithTimeout);
        assert_eq!(nth_line(37).data, strings(&["1", "1", "10"]));

        let pause_all = nth_line(41);
        assert_eq!(pause_all.event, QueueLogEvent::PauseAll);
        assert_eq!(
            (pause_all.call_id.as_str(), pause_all.queue.as_str()),
            ("NONE", "NONE")
        );
        assert_eq!(pause_all.data, strings(&["lab-pause"]));
        assert!(
            nth_line(46).data.is_empty(),
            "UNPAUSEALL| has an empty reason"
        );

        let added = nth_line(48);
        assert_eq!(added.event, QueueLogEvent::AddMember);
        assert_eq!(added.call_id, "MANAGER");
        assert!(added.data.is_empty());
        assert_eq!(
            format_line(&added),
            "1795259701|MANAGER|support|agent2|ADDMEMBER|"
        );

        let borrowed =
            parse_line_ref("1795259557|c|support|NONE|ENTERQUEUE||caller1|1").expect("parses");
        assert_eq!(borrowed.data, "|caller1|1");
        assert_eq!(
            borrowed.data_fields().collect::<Vec<_>>(),
            ["", "caller1", "1"]
        );
        assert_eq!(borrowed.data_field(1), Some("caller1"));
        assert_eq!(borrowed.data_number(2), Some(1));
        assert_eq!(borrowed.data_field(3), None);
        let no_data = parse_line_ref("1|c|q|a|ADDMEMBER|").expect("parses");
        assert_eq!(no_data.data_fields().count(), 0);
    }

    #[test]
    fn malformed_lines_come_back_with_their_line_numbers() {
        let text = "1795259540|NONE|NONE|NONE|QUEUESTART|\n\
                    1795259540|NONE|NONE\n\
                    \n\
                    abc|NONE|q|a|CONNECT|1|u|0\n\
                    |x|y|z|EVENT\n\
                    123|a|b|c|\n\
                    99999999999999999999999|a|b|c|PAUSE|x\n\
                    -5|a|b|c|PAUSE|x\n\
                    1795259545|id|support|agent1|ADDMEMBER|\r\n\
                    garbage\n\
                    1795259546|id|support|agent1|REMOVEMEMBER|";
        let (lines, errors) = parse_all(text);
        assert_eq!(
            lines.iter().map(|l| l.event.name()).collect::<Vec<_>>(),
            ["QUEUESTART", "ADDMEMBER", "REMOVEMEMBER"]
        );
        let bad_time = |value: &str| QueueLogError::BadTime {
            value: value.to_owned(),
        };
        assert_eq!(
            errors,
            [
                (2, QueueLogError::TooFewFields { found: 3 }),
                (4, bad_time("abc")),
                (5, bad_time("")),
                (6, QueueLogError::EmptyEvent),
                (7, bad_time("99999999999999999999999")),
                (8, bad_time("-5")),
                (10, QueueLogError::TooFewFields { found: 1 }),
            ]
        );
        let message = errors[0].1.to_string();
        assert!(
            message.contains("only 3") && message.contains("at least 5"),
            "{message}"
        );
        assert!(errors[1].1.to_string().contains("\"abc\""));
        let long = format!("{}|a|b|c|X", "z".repeat(10_000));
        let Err(QueueLogError::BadTime { value }) = parse_line(&long) else {
            panic!("bad time");
        };
        assert_eq!(value.len(), MAX_QUOTED, "errors quote a bounded piece");
        assert_eq!(parse_line("é|a|b|c|X"), Err(bad_time("é")));
    }

    #[test]
    fn the_old_transfer_name_and_unknown_events_are_kept() {
        let raw = "1300000000|1300000000.1|support|SIP/agent1|TRANSFER|1002|lab|1|2|1";
        let old = parse_line(raw).expect("parses");
        assert_eq!(old.event, QueueLogEvent::Transfer);
        assert_eq!(old.data, strings(&["1002", "lab", "1", "2", "1"]));
        assert_eq!(format_line(&old), raw);

        let raw = "1795259540|id|support|NONE|DID|4930123456";
        let unknown = parse_line(raw).expect("parses");
        assert_eq!(unknown.event, QueueLogEvent::Other("DID".to_owned()));
        assert_eq!(format_line(&unknown), raw);
        let lower = parse_line_ref("1|a|b|c|connect|").expect("parses");
        assert_eq!(lower.event, QueueLogEvent::Other("connect"));
        assert_eq!(
            lower.event.index(),
            QueueLogEvent::<&str>::KIND_COUNT - 1,
            "every Other shares the last index"
        );
    }

    #[test]
    fn every_known_name_round_trips_with_a_distinct_index() {
        let names = [
            "ENTERQUEUE",
            "CONNECT",
            "COMPLETEAGENT",
            "COMPLETECALLER",
            "ABANDON",
            "EXITEMPTY",
            "EXITWITHTIMEOUT",
            "EXITWITHKEY",
            "RINGNOANSWER",
            "RINGCANCELED",
            "ATTENDEDTRANSFER",
            "BLINDTRANSFER",
            "TRANSFER",
            "ADDMEMBER",
            "REMOVEMEMBER",
            "PAUSE",
            "UNPAUSE",
            "PAUSEALL",
            "UNPAUSEALL",
            "AGENTLOGIN",
            "AGENTLOGOFF",
            "QUEUESTART",
            "CONFIGRELOAD",
            "SYSCOMPAT",
            "JOINEMPTY",
        ];
        assert_eq!(QueueLogEvent::<String>::KIND_COUNT, names.len() + 1);
        let mut seen = vec![false; names.len()];
        for name in names {
            let event = QueueLogEvent::from_name(name);
            assert!(!matches!(event, QueueLogEvent::Other(_)), "{name} is known");
            assert_eq!(event.name(), name);
            assert!(!seen[event.index()], "{name} has its own index");
            seen[event.index()] = true;
            let owned: QueueLogEvent = name.parse().expect("infallible");
            assert_eq!(owned.to_string(), name);
            assert_eq!(owned.as_borrowed(), event);
        }
    }

    #[test]
    fn line_ends_and_line_breaks_inside_fields() {
        let crlf = parse_line("1795259545|id|support|agent1|PAUSE|lunch\r\n").expect("parses");
        assert_eq!(crlf.data, strings(&["lunch"]));
        let bare = parse_line("1795259545|id|support|agent1|ADDMEMBER").expect("no 6th field");
        assert!(bare.data.is_empty());
        assert_eq!(
            format_line(&bare),
            "1795259545|id|support|agent1|ADDMEMBER|"
        );
        let sneaky = QueueLogLine {
            time: 7,
            call_id: "id".into(),
            queue: "q".into(),
            agent: "a\nb".into(),
            event: QueueLogEvent::Pause,
            data: strings(&["x\r\n7|id|q|a|ADDMEMBER"]),
        };
        let written = format_line(&sneaky);
        assert!(!written.contains(['\n', '\r']), "{written}");
        assert_eq!(written, "7|id|q|a b|PAUSE|x  7|id|q|a|ADDMEMBER");
        let empty = QueueLogLine {
            time: 0,
            call_id: String::new(),
            queue: String::new(),
            agent: String::new(),
            event: QueueLogEvent::QueueStart,
            data: Vec::new(),
        };
        assert_eq!(format_line(&empty), "0||||QUEUESTART|");
        assert_eq!(parse_line("0||||QUEUESTART|"), Ok(empty));
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn mutated_lines_never_panic() {
        let text = full_log();
        let mut rng = XorShift(7);
        for _ in 0..3_000 {
            let mut bytes = text.as_bytes().to_vec();
            for _ in 0..1 + rng.next() % 8 {
                let at = (rng.next() as usize) % bytes.len().max(1);
                match rng.next() % 3 {
                    0 if !bytes.is_empty() => {
                        bytes[at] = b"|\n\r0a\xc3\xa9"[(rng.next() % 7) as usize]
                    }
                    1 if !bytes.is_empty() => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, b'|'),
                }
            }
            let mutated = String::from_utf8_lossy(&bytes);
            let (lines, errors) = parse_all(&mutated);
            let nonblank = mutated
                .split('\n')
                .filter(|l| !l.trim_end_matches('\r').is_empty())
                .count();
            assert_eq!(lines.len() + errors.len(), nonblank);
            for line in &lines {
                let written = format_line(line);
                assert!(!written.contains('\n'));
                let again = parse_line(&written).expect("what we write reads back");
                if !format!("{line:?}").contains("\\r") {
                    assert_eq!(&again, line);
                }
            }
        }
    }

    /// A queue_log of `count` lines cycling through a realistic call mix.
    fn generated_log(count: usize) -> String {
        let mut out = String::with_capacity(count * 80);
        let mut rng = XorShift(0xdead_beef);
        let mut time = 1_795_000_000u64;
        let mut call = 0u64;
        let mut written = 0;
        while written < count {
            call += 1;
            time += rng.next() % 5;
            let id = format!("ringside-lab-{time}.{call}");
            let queue = if call.is_multiple_of(3) {
                "sales"
            } else {
                "support"
            };
            let agent = format!("agent{}", 1 + rng.next() % 6);
            let wait = rng.next() % 120;
            let mut line = |event: QueueLogEvent, agent: &str, data: &[String]| {
                if written < count {
                    let record = QueueLogLine {
                        time,
                        call_id: id.clone(),
                        queue: queue.to_owned(),
                        agent: agent.to_owned(),
                        event,
                        data: data.to_vec(),
                    };
                    write_record(&record, &mut out);
                    written += 1;
                }
            };
            line(
                QueueLogEvent::EnterQueue,
                "NONE",
                &[String::new(), format!("+4930{call:07}"), "1".into()],
            );
            match call % 10 {
                0..=5 => {
                    line(
                        QueueLogEvent::Connect,
                        &agent,
                        &[wait.to_string(), format!("{id}.1"), "3".into()],
                    );
                    line(
                        QueueLogEvent::CompleteCaller,
                        &agent,
                        &[wait.to_string(), (rng.next() % 600).to_string(), "1".into()],
                    );
                }
                6 => {
                    line(QueueLogEvent::RingNoAnswer, &agent, &["15000".into()]);
                    line(
                        QueueLogEvent::Connect,
                        &agent,
                        &[wait.to_string(), format!("{id}.2"), "2".into()],
                    );
                    line(
                        QueueLogEvent::CompleteAgent,
                        &agent,
                        &[wait.to_string(), "97".into(), "1".into()],
                    );
                }
                7 => {
                    line(QueueLogEvent::RingCanceled, &agent, &["4502".into()]);
                    line(
                        QueueLogEvent::Abandon,
                        "NONE",
                        &["1".into(), "1".into(), wait.to_string()],
                    );
                }
                8 => line(
                    QueueLogEvent::ExitWithTimeout,
                    "NONE",
                    &["1".into(), "1".into(), "300".into()],
                ),
                _ => line(QueueLogEvent::Pause, &agent, &["lunch".into()]),
            }
        }
        out
    }

    /// `cargo test --release --lib queue_log -- --ignored --nocapture`
    #[test]
    #[ignore = "benchmark: run in release mode"]
    fn bench_parse_and_aggregate_one_million_lines() {
        const LINES: usize = 1_000_000;
        let text = generated_log(LINES);
        println!("generated {LINES} lines, {} MB", text.len() / 1_000_000);

        let mut best_ref = f64::MAX;
        let mut checksum = 0u64;
        for _ in 0..5 {
            let start = std::time::Instant::now();
            let mut per_kind = [0u64; QueueLogEvent::<&str>::KIND_COUNT];
            let mut held = 0u64;
            let mut errors = 0u64;
            for (_, result) in lines_ref(&text) {
                match result {
                    Ok(line) => {
                        per_kind[line.event.index()] += 1;
                        if line.event == QueueLogEvent::Connect {
                            held += line.data_number(0).unwrap_or(0);
                        }
                    }
                    Err(_) => errors += 1,
                }
            }
            best_ref = best_ref.min(start.elapsed().as_secs_f64());
            assert_eq!(errors, 0);
            assert_eq!(per_kind.iter().sum::<u64>(), LINES as u64);
            checksum = held;
        }
        let start = std::time::Instant::now();
        let (owned, errors) = parse_all(&text);
        let owned_secs = start.elapsed().as_secs_f64();
        assert!(errors.is_empty());
        assert_eq!(owned.len(), LINES);
        println!(
            "borrowed parse + aggregate: {:.1} M lines/s ({:.0} MB/s, checksum {checksum})",
            LINES as f64 / best_ref / 1e6,
            text.len() as f64 / best_ref / 1e6
        );
        println!(
            "owned parse_all: {:.1} M lines/s",
            LINES as f64 / owned_secs / 1e6
        );
    }
}
