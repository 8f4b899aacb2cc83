//! Import of a queue report exported to CSV, sans-IO: ringside's own export (`ringside report
//! --format csv`, [`CSV_HEADER`](super::report::CSV_HEADER)) or a hosted PBX's "Export to CSV",
//! back into [`ReportEvent`]s, so that a PBX without AMI or queue_log access still gets the
//! report, the filters and the statistics.
//!
//! # What is read
//! - CSV as RFC 4180 writes it (quoted fields, `""` for a quote, separators and line breaks
//!   inside quotes, CRLF or LF), with an optional UTF-8 byte order mark. The separator is the
//!   one the header line uses most among `,`, `;` (spreadsheets in locales with a decimal
//!   comma) and tab. [`decode_csv_bytes`] also takes UTF-16 with a byte order mark and
//!   Windows-1252, what spreadsheets save when asked for "Unicode text" or plain "CSV".
//! - Columns by name, in any order, case and accents ignored, unknown columns skipped. Three
//!   are needed: the time, the event type and the queue. See [`column_role`] for the names.
//! - Times: `YYYY-MM-DD HH:MM[:SS]`, `YYYY-MM-DDTHH:MM:SS` with an optional `Z` or `±HH:MM`,
//!   `DD/MM/YYYY HH:MM[:SS]` (also with `-` or `.`), a bare date (midnight), or epoch seconds.
//!   A time written without a zone is in [`CsvImportOptions::utc_offset_s`] (UTC by default).
//!   A date and a time of day in two columns (`Date`, `Time`) are joined.
//! - Event types: the stable names (`caller-quit`), the seeds' labels ("The caller quit", ...;
//!   case, punctuation and a trailing period ignored) or Asterisk's queue_log verbs (`ABANDON`).
//! - Durations: seconds (`17`, `4.5`, `4,5`), `mm:ss`, `hh:mm:ss`, or `2m09s`. A column whose
//!   name ends in `(ms)` holds milliseconds.
//!
//! A row that cannot be read is skipped with a warning (`line N: why`, N being the line the
//! record starts on, the header being line 1); a field that cannot be read is left empty with a
//! warning. Only a header without the three needed columns is an error. Text fields are kept
//! verbatim (an empty field is "unknown"), so ringside's export reads back as the same events.
//!
//! Events come back in time order: an export listing the newest first is reversed, and rows out
//! of order are sorted (stably, so events of the same second keep their order).

use std::borrow::Cow;
use std::fmt;

use thiserror::Error;

use super::queue_log::QueueLogEvent;
use super::report::{civil_from_days, days_from_civil, report_kind_of, ReportEvent, ReportKind};

/// How to read what the file leaves implicit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CsvImportOptions {
    /// Seconds east of UTC of the times written without a zone (the PBX's local time):
    /// `3600` for `+01:00`. A fixed offset: a file that spans a daylight-saving change is off by
    /// an hour on one side of it.
    pub utc_offset_s: i32,
}

/// Warnings kept one by one; past this many they are only counted.
pub const MAX_KEPT_WARNINGS: usize = 1000;

/// Why a record or a field was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvWarning {
    /// The line the record starts on (1-based; the header is line 1 unless blank lines precede it).
    pub line: usize,
    pub why: String,
}

impl fmt::Display for CsvWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.why)
    }
}

/// What an import read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CsvImport {
    /// In time order.
    pub events: Vec<ReportEvent>,
    /// Data records read (blank lines are not records).
    pub records: u64,
    /// Records that gave no event.
    pub skipped: u64,
    /// The first [`MAX_KEPT_WARNINGS`] warnings.
    pub warnings: Vec<CsvWarning>,
    /// Every warning, kept or not.
    pub warning_count: u64,
    /// The separator the header uses.
    pub separator: char,
}

/// What stops an import: the file as a whole is not a queue report.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReportCsvError {
    #[error("the CSV file is empty: expected a header line such as \"Date,Event type,Queue,Call ID,Agent,Caller,Wait (s),Talk (s)\" and one line per event")]
    Empty,
    #[error("{}", describe_missing(.missing, .found))]
    MissingColumns {
        /// The needed columns not found: `time`, `event type`, `queue`.
        missing: Vec<&'static str>,
        /// The header as read, one entry per column.
        found: Vec<String>,
    },
    #[error("cannot read the UTC offset {0:?}: use +HH:MM or -HH:MM east of UTC (+01:00 for Paris in winter, -05:00 for New York), at most 18 hours")]
    BadUtcOffset(String),
}

fn describe_missing(missing: &[&'static str], found: &[String]) -> String {
    let wanted: Vec<String> = missing
        .iter()
        .map(|column| {
            let example = match *column {
                "time" => "\"Date\"",
                "event type" => "\"Event type\"",
                _ => "\"Queue\"",
            };
            format!("no {column} column (name it e.g. {example})")
        })
        .collect();
    let header: Vec<String> = found
        .iter()
        .take(40)
        .map(|name| format!("{:?}", name.chars().take(60).collect::<String>()))
        .collect();
    format!(
        "the CSV header has {}; the header found is: {}. Export the report with its header row, or rename the columns",
        wanted.join(" and "),
        if header.is_empty() {
            "(nothing)".to_owned()
        } else {
            header.join(", ")
        }
    )
}

/// Reads a UTC offset: `+01:00`, `-0530`, `+2`, `UTC`, `Z` or `0`. Seconds east of UTC.
pub fn parse_utc_offset(text: &str) -> Result<i32, ReportCsvError> {
    let bad = || ReportCsvError::BadUtcOffset(text.chars().take(40).collect());
    let trimmed = text.trim();
    if ["utc", "gmt", "z", "0"]
        .iter()
        .any(|zone| trimmed.eq_ignore_ascii_case(zone))
    {
        return Ok(0);
    }
    offset_seconds(trimmed).ok_or_else(bad)
}

/// `±HH[:MM]` or `±HHMM`, at most 18 hours.
fn offset_seconds(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, text.get(1..)?),
        b'-' => (-1, text.get(1..)?),
        _ => return None,
    };
    let (hours, minutes) = match rest.split_once(':') {
        Some((hours, minutes)) => (hours, minutes),
        None if rest.len() == 4 => (rest.get(..2)?, rest.get(2..)?),
        None => (rest, "0"),
    };
    let (hours, minutes) = (small_number(hours, 2)?, small_number(minutes, 2)?);
    if minutes > 59 || hours * 60 + minutes > 18 * 60 {
        return None;
    }
    i32::try_from((hours * 60 + minutes) * 60)
        .ok()
        .map(|s| sign * s)
}

/// Decimal digits only, at most `max_len` of them.
fn small_number(text: &str, max_len: usize) -> Option<u64> {
    if text.is_empty() || text.len() > max_len || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The text of a CSV file's bytes: UTF-8 (a BOM is left for the parser), UTF-16 with a BOM, or
/// else Windows-1252, which is what spreadsheets write as "CSV" in Western Europe. Never fails.
pub fn decode_csv_bytes(bytes: &[u8]) -> Cow<'_, str> {
    if let Some(utf16) = bytes.strip_prefix(&[0xff, 0xfe]) {
        return Cow::Owned(decode_utf16(utf16, u16::from_le_bytes));
    }
    if let Some(utf16) = bytes.strip_prefix(&[0xfe, 0xff]) {
        return Cow::Owned(decode_utf16(utf16, u16::from_be_bytes));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => Cow::Owned(bytes.iter().map(|b| windows_1252(*b)).collect()),
    }
}

fn decode_utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> String {
    let units = bytes.chunks_exact(2).map(|pair| unit([pair[0], pair[1]]));
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// Windows-1252: Latin-1 except for 0x80-0x9F.
fn windows_1252(byte: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{fffd}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{fffd}', 'Ž',
        '\u{fffd}', '\u{fffd}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ',
        '\u{fffd}', 'ž', 'Ÿ',
    ];
    match byte {
        0x80..=0x9f => HIGH[usize::from(byte - 0x80)],
        _ => char::from(byte),
    }
}

/// Lower case, accents dropped, anything but letters and digits turned into single spaces:
/// "Type d'événement" and "type d evenement" fold alike.
pub fn fold(text: &str) -> String {
    let mut folded = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars().flat_map(char::to_lowercase) {
        let plain: &str = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ą' => "a",
            'ç' | 'ć' | 'č' => "c",
            'ď' => "d",
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
            'ì' | 'í' | 'î' | 'ï' | 'ī' => "i",
            'ł' => "l",
            'ñ' | 'ń' | 'ň' => "n",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
            'ř' => "r",
            'ś' | 'š' => "s",
            'ť' => "t",
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => "u",
            'ý' | 'ÿ' => "y",
            'ź' | 'ż' | 'ž' => "z",
            'æ' => "ae",
            'œ' => "oe",
            'ß' => "ss",
            c if c.is_alphanumeric() => {
                if space && !folded.is_empty() {
                    folded.push(' ');
                }
                space = false;
                folded.push(c);
                continue;
            }
            _ => {
                space = true;
                continue;
            }
        };
        if space && !folded.is_empty() {
            folded.push(' ');
        }
        space = false;
        folded.push_str(plain);
    }
    folded
}

/// The unit of a duration column's plain numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationUnit {
    Seconds,
    Milliseconds,
}

impl DurationUnit {
    fn millis(self) -> u64 {
        match self {
            DurationUnit::Seconds => 1000,
            DurationUnit::Milliseconds => 1,
        }
    }
}

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRole {
    /// The date and time of the event (or the date alone, with [`ColumnRole::TimeOfDay`]).
    Time,
    /// A bare `Time` column: the time of day when a date column exists, else the time.
    TimeOfDay,
    /// The event type: a stable name, a seeds' label or a queue_log verb.
    Event,
    Queue,
    CallId,
    Agent,
    Caller,
    Wait(DurationUnit),
    Talk(DurationUnit),
    Ring(DurationUnit),
    Position,
    Detail,
}

const TIME_NAMES: &[&str] = &[
    "date",
    "date time",
    "datetime",
    "date and time",
    "date heure",
    "date et heure",
    "timestamp",
    "time stamp",
    "event time",
    "event date",
    "call date",
    "start",
    "start time",
    "horodatage",
    "datum",
];
const TIME_OF_DAY_NAMES: &[&str] = &["time", "hour", "heure", "tijd"];
const EVENT_NAMES: &[&str] = &[
    "event",
    "event type",
    "event name",
    "type",
    "kind",
    "evenement",
    "type d evenement",
    "type de l evenement",
    "type evenement",
    "gebeurtenis",
];
const QUEUE_NAMES: &[&str] = &[
    "queue",
    "queue name",
    "queuename",
    "file d attente",
    "wachtrij",
];
const CALL_ID_NAMES: &[&str] = &[
    "call id",
    "callid",
    "uniqueid",
    "unique id",
    "id appel",
    "id d appel",
    "identifiant d appel",
];
const AGENT_NAMES: &[&str] = &[
    "agent",
    "agent name",
    "agent id",
    "member",
    "member name",
    "membername",
    "interface",
];
const CALLER_NAMES: &[&str] = &[
    "caller",
    "caller id",
    "callerid",
    "caller id number",
    "caller id num",
    "calleridnum",
    "caller number",
    "calling number",
    "number",
    "phone",
    "phone number",
    "from",
    "appelant",
    "numero",
    "numero appelant",
    "nummer",
    "beller",
];
const WAIT_NAMES: &[&str] = &[
    "wait",
    "wait time",
    "waiting time",
    "hold",
    "hold time",
    "holdtime",
    "queue time",
    "attente",
    "temps d attente",
    "duree d attente",
    "wachttijd",
];
const TALK_NAMES: &[&str] = &[
    "talk",
    "talk time",
    "talktime",
    "duration",
    "call duration",
    "conversation",
    "duree",
    "duree de l appel",
    "duree d appel",
    "temps de conversation",
    "gespreksduur",
    "billsec",
];
const RING_NAMES: &[&str] = &[
    "ring",
    "ring time",
    "ringtime",
    "ringing",
    "ringing time",
    "ring duration",
    "sonnerie",
    "temps de sonnerie",
    "duree de sonnerie",
    "beltijd",
];
const POSITION_NAMES: &[&str] = &[
    "position",
    "pos",
    "original position",
    "origpos",
    "queue position",
];
const DETAIL_NAMES: &[&str] = &[
    "detail", "details", "reason", "data", "info", "note", "notes", "raison",
];

/// Trailing words of a header that name a unit, not the column: `Wait (s)`, `Ring (ms)`,
/// `Durée (mm:ss)`.
const SECONDS_WORDS: &[&str] = &[
    "s", "sec", "secs", "second", "seconds", "seconde", "secondes", "mm", "ss", "hh", "min", "mn",
];
const MILLIS_WORDS: &[&str] = &[
    "ms",
    "msec",
    "millisecond",
    "milliseconds",
    "milliseconde",
    "millisecondes",
];

/// What a header name means, or `None` for a column to skip. Case, accents, punctuation and a
/// trailing unit (`(s)`, `(ms)`, `(mm:ss)`) are ignored. Accepted names (folded): time
/// `date`, `date time`, `timestamp`, `start time`, ...; `time` / `hour` (time of day when a date
/// column exists); event type `event`, `event type`, `type`, `evenement`, ...; `queue`,
/// `queue name`, `file d attente`; `call id`, `uniqueid`; `agent`, `member`, `interface`;
/// caller `caller`, `caller id`, `number`, `phone`, `appelant`, ...; wait `wait time`,
/// `hold time`, `attente`, ...; talk `talk time`, `duration`, `duree`, ...; ring `ring time`,
/// `ringing`, `sonnerie`, ...; `position`; detail `detail`, `reason`, `data`, ...
pub fn column_role(name: &str) -> Option<ColumnRole> {
    let folded = fold(name);
    let mut words: Vec<&str> = folded.split(' ').filter(|w| !w.is_empty()).collect();
    let mut unit = None;
    while words.len() > 1 {
        let Some(last) = words.last() else { break };
        if MILLIS_WORDS.contains(last) {
            unit = Some(DurationUnit::Milliseconds);
        } else if SECONDS_WORDS.contains(last) {
            unit = unit.or(Some(DurationUnit::Seconds));
        } else {
            break;
        }
        words.pop();
    }
    let name = words.join(" ");
    let is = |names: &[&str]| names.contains(&name.as_str());
    let seconds = unit.unwrap_or(DurationUnit::Seconds);
    Some(if is(TIME_NAMES) {
        ColumnRole::Time
    } else if is(TIME_OF_DAY_NAMES) {
        ColumnRole::TimeOfDay
    } else if is(EVENT_NAMES) {
        ColumnRole::Event
    } else if is(QUEUE_NAMES) {
        ColumnRole::Queue
    } else if is(CALL_ID_NAMES) {
        ColumnRole::CallId
    } else if is(AGENT_NAMES) {
        ColumnRole::Agent
    } else if is(CALLER_NAMES) {
        ColumnRole::Caller
    } else if is(WAIT_NAMES) {
        ColumnRole::Wait(seconds)
    } else if is(TALK_NAMES) {
        ColumnRole::Talk(seconds)
    } else if is(RING_NAMES) {
        ColumnRole::Ring(seconds)
    } else if is(POSITION_NAMES) {
        ColumnRole::Position
    } else if is(DETAIL_NAMES) {
        ColumnRole::Detail
    } else {
        return None;
    })
}

/// Reads an event type: a stable name (`caller-quit`), one of the seeds' labels ("The caller
/// quit", "The caller is connected to an agent."), leniently (case, punctuation, spacing), or
/// a queue_log verb (`ABANDON`; `PAUSEALL` and the like are not report events).
pub fn parse_event_kind(text: &str) -> Option<ReportKind> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    // Exact forms first: ringside's own export takes this path for every row.
    if let Some(kind) = ReportKind::ALL
        .into_iter()
        .find(|kind| kind.label() == text || kind.name() == text)
    {
        return Some(kind);
    }
    let bare = text.strip_suffix('.').unwrap_or(text).trim_end();
    if let Some(kind) = ReportKind::ALL.into_iter().find(|kind| {
        kind.label().eq_ignore_ascii_case(bare) || kind.name().eq_ignore_ascii_case(bare)
    }) {
        return Some(kind);
    }
    if text.bytes().all(|b| b.is_ascii_uppercase()) {
        if let Some(kind) = report_kind_of(&QueueLogEvent::from_name(text)) {
            return Some(kind);
        }
    }
    let folded = fold(text);
    ReportKind::ALL
        .into_iter()
        .find(|kind| fold(kind.label()) == folded || fold(kind.name()) == folded)
}

/// Reads a time (see the module docs) as epoch seconds; `utc_offset_s` applies when the text
/// has no zone of its own.
pub fn parse_csv_time(text: &str, utc_offset_s: i32) -> Option<u64> {
    let text = text.trim();
    if let Some(epoch) = epoch_seconds(text) {
        return Some(epoch);
    }
    let (date, rest) = match text.find([' ', 'T', 't']) {
        Some(at) => (text.get(..at)?, text.get(at + 1..)?.trim()),
        None => (text, ""),
    };
    let days = parse_date(date)?;
    let (clock, zone) = split_zone(rest)?;
    let offset = zone.unwrap_or(utc_offset_s);
    let seconds_of_day = if clock.is_empty() {
        0
    } else {
        parse_clock(clock)?
    };
    let local = days
        .checked_mul(86_400)?
        .checked_add(i64::from(seconds_of_day))?;
    u64::try_from(local.checked_sub(i64::from(offset))?).ok()
}

/// Whole epoch seconds, a fraction allowed and dropped.
fn epoch_seconds(text: &str) -> Option<u64> {
    let whole = match text.split_once('.') {
        Some((whole, fraction)) if fraction.bytes().all(|b| b.is_ascii_digit()) => whole,
        Some(_) => return None,
        None => text,
    };
    small_number(whole, 12)
}

/// `YYYY-MM-DD`, `YYYY/MM/DD`, `DD/MM/YYYY`, `DD-MM-YYYY` or `DD.MM.YYYY` as days since the
/// epoch; the year within 1970-9999.
fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.split(['-', '/', '.']);
    let (first, second, third) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (year, month, day) = if first.len() == 4 {
        (first, second, third)
    } else if third.len() == 4 {
        (third, second, first)
    } else {
        return None;
    };
    let year = i64::try_from(small_number(year, 4)?).ok()?;
    let month = u32::try_from(small_number(month, 2)?).ok()?;
    let day = u32::try_from(small_number(day, 2)?).ok()?;
    if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) || day == 0 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // 2026-02-30 and the like come back as another date.
    (civil_from_days(days) == (year, month, day)).then_some(days)
}

/// Splits a trailing zone (`Z`, `UTC`, `+01:00`, `-0500`) off a time of day.
fn split_zone(text: &str) -> Option<(&str, Option<i32>)> {
    if let Some(clock) = text.strip_suffix(['Z', 'z']) {
        return Some((clock.trim_end(), Some(0)));
    }
    for zone in ["UTC", "GMT"] {
        let at = text.len().saturating_sub(zone.len());
        if text
            .get(at..)
            .is_some_and(|end| end.eq_ignore_ascii_case(zone))
        {
            return Some((text.get(..at)?.trim_end(), Some(0)));
        }
    }
    match text.rfind(['+', '-']) {
        Some(at) => {
            let offset = offset_seconds(text.get(at..)?)?;
            Some((text.get(..at)?.trim_end(), Some(offset)))
        }
        None => Some((text, None)),
    }
}

/// `HH:MM` or `HH:MM:SS` (a fraction of a second dropped) as seconds since midnight.
fn parse_clock(text: &str) -> Option<u32> {
    let mut parts = text.split(':');
    let (hour, minute, second) = (parts.next()?, parts.next()?, parts.next());
    if parts.next().is_some() {
        return None;
    }
    let hour = small_number(hour, 2)?;
    let minute = small_number(minute, 2)?;
    let second = match second {
        Some(second) => {
            let whole = match second.split_once(['.', ',']) {
                Some((whole, fraction)) if fraction.bytes().all(|b| b.is_ascii_digit()) => whole,
                Some(_) => return None,
                None => second,
            };
            small_number(whole, 2)?
        }
        None => 0,
    };
    // A leap second (:60) is read as :59; nothing in a queue report hangs on it.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    u32::try_from(hour * 3600 + minute * 60 + second.min(59)).ok()
}

/// Reads a duration as milliseconds: `17` (in `unit`), `4.5` / `4,5`, `mm:ss`, `hh:mm:ss`,
/// `2m09s`, `1h02m`, `850ms`. `Ok(None)` for an empty field or `-`.
pub fn parse_duration_ms(text: &str, unit: DurationUnit) -> Result<Option<u64>, NotADuration> {
    let text = text.trim();
    if text.is_empty() || text == "-" {
        return Ok(None);
    }
    let millis = if text.contains(':') {
        colon_duration(text)
    } else if text.ends_with(|c: char| c.is_ascii_alphabetic()) {
        suffixed_duration(text)
    } else {
        decimal_millis(text, unit.millis())
    };
    millis.map(Some).ok_or(NotADuration)
}

/// A duration field that cannot be read, or does not fit in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("not a duration: use seconds, mm:ss or hh:mm:ss")]
pub struct NotADuration;

/// `12.5` in a unit of `unit_ms` milliseconds, as milliseconds (finer digits dropped).
fn decimal_millis(text: &str, unit_ms: u64) -> Option<u64> {
    let (whole, fraction) = match text.split_once(['.', ',']) {
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    if !fraction.bytes().all(|b| b.is_ascii_digit()) || (whole.is_empty() && fraction.is_empty()) {
        return None;
    }
    let whole = if whole.is_empty() {
        0
    } else {
        small_number(whole, 19)?
    };
    let mut millis = whole.checked_mul(unit_ms)?;
    // Each fractional digit is worth a tenth of the one before.
    let mut place = unit_ms;
    for digit in fraction.bytes() {
        place /= 10;
        if place == 0 {
            break;
        }
        millis = millis.checked_add(u64::from(digit - b'0') * place)?;
    }
    Some(millis)
}

fn colon_duration(text: &str) -> Option<u64> {
    let parts: Vec<&str> = text.split(':').collect();
    let (hours, minutes, seconds) = match parts.as_slice() {
        [minutes, seconds] => ("0", *minutes, *seconds),
        [hours, minutes, seconds] => (*hours, *minutes, *seconds),
        _ => return None,
    };
    let hours = small_number(hours, 9)?;
    let minutes = small_number(minutes, 9)?;
    let seconds = decimal_millis(seconds, 1000)?;
    if seconds >= 60_000 || (parts.len() == 3 && minutes > 59) {
        return None;
    }
    hours
        .checked_mul(3600)?
        .checked_add(minutes.checked_mul(60)?)?
        .checked_mul(1000)?
        .checked_add(seconds)
}

/// `1h02m03s`, `2m09s`, `47s`, `4.5s`, `850ms`.
fn suffixed_duration(text: &str) -> Option<u64> {
    if let Some(number) = text.strip_suffix("ms") {
        return decimal_millis(number.trim_end(), 1);
    }
    let mut total: u64 = 0;
    let mut rest = text;
    let mut seen = false;
    while !rest.is_empty() {
        let end = rest.find(|c: char| c.is_ascii_alphabetic())?;
        let (number, unit_and_rest) = (rest.get(..end)?.trim(), rest.get(end..)?);
        let mut chars = unit_and_rest.chars();
        let unit_ms = match chars.next()?.to_ascii_lowercase() {
            'h' => 3_600_000,
            'm' => 60_000,
            's' => 1000,
            _ => return None,
        };
        total = total.checked_add(decimal_millis(number, unit_ms)?)?;
        rest = chars.as_str().trim_start();
        seen = true;
    }
    seen.then_some(total)
}

/// Where each role's column is.
#[derive(Debug, Default)]
struct Columns {
    time: Option<usize>,
    time_of_day: Option<usize>,
    /// Every event column (ringside's export has the label and the name), tried in order.
    events: Vec<usize>,
    queue: Option<usize>,
    call_id: Option<usize>,
    agent: Option<usize>,
    caller: Option<usize>,
    wait: Option<(usize, DurationUnit)>,
    talk: Option<(usize, DurationUnit)>,
    ring: Option<(usize, DurationUnit)>,
    position: Option<usize>,
    detail: Option<usize>,
}

impl Columns {
    fn from_header(names: &[Cow<'_, str>]) -> Result<Self, ReportCsvError> {
        let mut columns = Columns::default();
        let mut dates = Vec::new();
        let mut times_of_day = Vec::new();
        for (index, name) in names.iter().enumerate() {
            // The first column of a role wins; later ones are skipped like unknown columns.
            match column_role(name) {
                Some(ColumnRole::Time) => dates.push(index),
                Some(ColumnRole::TimeOfDay) => times_of_day.push(index),
                Some(ColumnRole::Event) => columns.events.push(index),
                Some(ColumnRole::Queue) => set_once(&mut columns.queue, index),
                Some(ColumnRole::CallId) => set_once(&mut columns.call_id, index),
                Some(ColumnRole::Agent) => set_once(&mut columns.agent, index),
                Some(ColumnRole::Caller) => set_once(&mut columns.caller, index),
                Some(ColumnRole::Wait(unit)) => set_once(&mut columns.wait, (index, unit)),
                Some(ColumnRole::Talk(unit)) => set_once(&mut columns.talk, (index, unit)),
                Some(ColumnRole::Ring(unit)) => set_once(&mut columns.ring, (index, unit)),
                Some(ColumnRole::Position) => set_once(&mut columns.position, index),
                Some(ColumnRole::Detail) => set_once(&mut columns.detail, index),
                None => {}
            }
        }
        // `Time` beside `Date` is the time of day; alone, it is the time.
        if let Some(date) = dates.first() {
            columns.time = Some(*date);
            columns.time_of_day = times_of_day.first().copied();
        } else {
            columns.time = times_of_day.first().copied();
        }
        let mut missing = Vec::new();
        if columns.time.is_none() {
            missing.push("time");
        }
        if columns.events.is_empty() {
            missing.push("event type");
        }
        if columns.queue.is_none() {
            missing.push("queue");
        }
        if missing.is_empty() {
            Ok(columns)
        } else {
            Err(ReportCsvError::MissingColumns {
                missing,
                found: names.iter().map(|name| name.to_string()).collect(),
            })
        }
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

/// One record's fields and where it starts.
struct Record {
    line: usize,
    /// A quote opened and never closed: the record was cut at its first line and skipped.
    unterminated: bool,
}

/// An RFC 4180 reader over text, lenient where RFC 4180 is silent: a quote inside an unquoted
/// field and text after a closing quote are kept as they are; a lone CR ends a line too.
struct CsvReader<'a> {
    text: &'a str,
    position: usize,
    /// The line `position` is on, 1-based.
    line: usize,
    separator: u8,
}

impl<'a> CsvReader<'a> {
    fn at(&self, index: usize) -> Option<u8> {
        self.text.as_bytes().get(index).copied()
    }

    fn slice(&self, from: usize, to: usize) -> &'a str {
        self.text.get(from..to).unwrap_or_default()
    }

    /// Reads the next record into `fields`; `None` at the end of the text.
    fn next_record(&mut self, fields: &mut Vec<Cow<'a, str>>) -> Option<Record> {
        if self.position >= self.text.len() {
            return None;
        }
        fields.clear();
        let record = Record {
            line: self.line,
            unterminated: false,
        };
        let record_start = self.position;
        loop {
            let field = if self.at(self.position) == Some(b'"') {
                match self.quoted_field() {
                    Some(field) => field,
                    None => {
                        // Cut the record at its first line so the rest of the file still reads.
                        self.position = record_start;
                        self.line = record.line;
                        while let Some(byte) = self.at(self.position) {
                            if byte == b'\r' || byte == b'\n' {
                                break;
                            }
                            self.position += 1;
                        }
                        self.end_of_line();
                        fields.clear();
                        return Some(Record {
                            unterminated: true,
                            ..record
                        });
                    }
                }
            } else {
                let start = self.position;
                self.skip_to_field_end();
                Cow::Borrowed(self.slice(start, self.position))
            };
            fields.push(field);
            match self.at(self.position) {
                Some(byte) if byte == self.separator => self.position += 1,
                _ => {
                    self.end_of_line();
                    return Some(record);
                }
            }
        }
    }

    fn skip_to_field_end(&mut self) {
        while let Some(byte) = self.at(self.position) {
            if byte == self.separator || byte == b'\r' || byte == b'\n' {
                break;
            }
            self.position += 1;
        }
    }

    /// Steps over CRLF, LF or CR, if there.
    fn end_of_line(&mut self) {
        match self.at(self.position) {
            Some(b'\r') => {
                self.position += 1;
                if self.at(self.position) == Some(b'\n') {
                    self.position += 1;
                }
                self.line += 1;
            }
            Some(b'\n') => {
                self.position += 1;
                self.line += 1;
            }
            _ => {}
        }
    }

    /// A field starting with `"`; `None` when its closing quote never comes.
    fn quoted_field(&mut self) -> Option<Cow<'a, str>> {
        self.position += 1;
        let mut owned: Option<String> = None;
        let mut segment = self.position;
        let closed_at = loop {
            let offset = self
                .text
                .as_bytes()
                .get(self.position..)?
                .iter()
                .position(|b| *b == b'"')?;
            let quote = self.position + offset;
            self.line += line_breaks(self.slice(self.position, quote));
            if self.at(quote + 1) == Some(b'"') {
                // A doubled quote: keep one.
                owned
                    .get_or_insert_with(String::new)
                    .push_str(self.slice(segment, quote + 1));
                self.position = quote + 2;
                segment = self.position;
            } else {
                self.position = quote + 1;
                break quote;
            }
        };
        let mut field = match owned {
            Some(mut text) => {
                text.push_str(self.slice(segment, closed_at));
                Cow::Owned(text)
            }
            None => Cow::Borrowed(self.slice(segment, closed_at)),
        };
        let stray_start = self.position;
        self.skip_to_field_end();
        if self.position > stray_start {
            field
                .to_mut()
                .push_str(self.slice(stray_start, self.position));
        }
        Some(field)
    }
}

/// Line breaks in `text`: LF, CRLF and a lone CR each count once.
fn line_breaks(text: &str) -> usize {
    let bytes = text.as_bytes();
    bytes
        .iter()
        .enumerate()
        .filter(|(index, byte)| {
            **byte == b'\n' || (**byte == b'\r' && bytes.get(index + 1) != Some(&b'\n'))
        })
        .count()
}

/// The separator the header line uses most: `,`, `;` or tab (`,` when none or tied).
fn detect_separator(text: &str) -> u8 {
    let header = text.split(['\r', '\n']).next().unwrap_or_default();
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for byte in header.bytes() {
        if byte == b'"' {
            quoted = !quoted;
        } else if !quoted {
            if let Some(count) = counts.iter_mut().find(|(sep, _)| *sep == byte) {
                count.1 += 1;
            }
        }
    }
    counts
        .iter()
        .fold(
            (b',', 0),
            |best, &(sep, count)| {
                if count > best.1 {
                    (sep, count)
                } else {
                    best
                }
            },
        )
        .0
}

fn is_blank(fields: &[Cow<'_, str>]) -> bool {
    fields.iter().all(|field| field.trim().is_empty())
}

/// Up to 60 characters of a field for a warning, quoted.
fn shown(text: &str) -> String {
    let cut: String = text.chars().take(60).collect();
    format!("{cut:?}")
}

/// The import in progress.
struct Importer<'c> {
    columns: &'c Columns,
    options: CsvImportOptions,
    header_width: usize,
    import: CsvImport,
}

impl Importer<'_> {
    fn warn(&mut self, line: usize, why: String) {
        self.import.warning_count += 1;
        if self.import.warnings.len() < MAX_KEPT_WARNINGS {
            self.import.warnings.push(CsvWarning { line, why });
        }
    }

    fn skip(&mut self, line: usize, why: String) {
        self.import.skipped += 1;
        self.warn(line, format!("{why}; row skipped"));
    }

    fn record(&mut self, line: usize, fields: &[Cow<'_, str>]) {
        self.import.records += 1;
        if fields.len() > self.header_width
            && fields
                .get(self.header_width..)
                .is_some_and(|extra| !is_blank(extra))
        {
            return self.skip(
                line,
                format!(
                    "{} fields where the header has {} (a separator inside an unquoted field?)",
                    fields.len(),
                    self.header_width
                ),
            );
        }
        let columns = self.columns;
        let field = |index: Option<usize>| -> &str {
            index
                .and_then(|i| fields.get(i))
                .map(|f| f.as_ref())
                .unwrap_or_default()
        };
        let text = |index: Option<usize>| -> Option<String> {
            Some(field(index))
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
        };

        let mut kind = None;
        let mut first_event_text = "";
        for index in &columns.events {
            let value = field(Some(*index));
            if first_event_text.trim().is_empty() {
                first_event_text = value;
            }
            if let Some(found) = parse_event_kind(value) {
                kind = Some(found);
                break;
            }
        }
        let Some(kind) = kind else {
            let why = if first_event_text.trim().is_empty() {
                "no event type".to_owned()
            } else {
                format!(
                    "unknown event type {}: use a stable name (caller-quit, ...) or the report's label (\"The caller quit\", ...)",
                    shown(first_event_text)
                )
            };
            return self.skip(line, why);
        };

        let date = field(columns.time);
        let time_of_day = field(columns.time_of_day).trim();
        let joined;
        let moment = if !time_of_day.is_empty() && !date.trim().contains([' ', 'T', 't']) {
            joined = format!("{} {time_of_day}", date.trim());
            joined.as_str()
        } else {
            date
        };
        let Some(time) = parse_csv_time(moment, self.options.utc_offset_s) else {
            let why = if moment.trim().is_empty() {
                "no time".to_owned()
            } else {
                format!(
                    "cannot read the time {}: use YYYY-MM-DD HH:MM:SS, DD/MM/YYYY HH:MM[:SS] or epoch seconds",
                    shown(moment)
                )
            };
            return self.skip(line, why);
        };
        let Some(queue) = text(columns.queue) else {
            return self.skip(line, "no queue".to_owned());
        };

        let mut event = ReportEvent {
            time,
            kind,
            queue,
            call_id: text(columns.call_id),
            agent: text(columns.agent),
            caller: text(columns.caller),
            wait_s: None,
            talk_s: None,
            ring_ms: None,
            position: None,
            detail: text(columns.detail),
        };
        let mut problems = Vec::new();
        let mut duration = |column: Option<(usize, DurationUnit)>, what: &str, per: u64| {
            let (index, unit) = column?;
            let value = field(Some(index));
            match parse_duration_ms(value, unit) {
                Ok(millis) => {
                    let converted = millis.map(|ms| u32::try_from(ms / per));
                    match converted {
                        Some(Ok(number)) => Some(number),
                        Some(Err(_)) => {
                            problems.push(format!("{what} {} is too large", shown(value)));
                            None
                        }
                        None => None,
                    }
                }
                Err(NotADuration) => {
                    problems.push(format!(
                        "{what} {} is not a duration (use seconds, mm:ss or hh:mm:ss)",
                        shown(value)
                    ));
                    None
                }
            }
        };
        event.wait_s = duration(columns.wait, "wait time", 1000);
        event.talk_s = duration(columns.talk, "talk time", 1000);
        event.ring_ms = duration(columns.ring, "ring time", 1);
        let position = field(columns.position).trim();
        if !position.is_empty() {
            match small_number(position, 10).and_then(|n| u32::try_from(n).ok()) {
                Some(number) => event.position = Some(number),
                None => problems.push(format!(
                    "position {} is not a whole number",
                    shown(position)
                )),
            }
        }
        for problem in problems {
            self.warn(line, format!("{problem}; left empty"));
        }
        self.import.events.push(event);
    }
}

/// Reads a queue report CSV (see the module docs). Fails only when there is no header or it
/// lacks the time, event type or queue column; bad rows are warnings.
pub fn parse_report_csv(
    text: &str,
    options: CsvImportOptions,
) -> Result<CsvImport, ReportCsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let separator = detect_separator(text.trim_start_matches(['\r', '\n']));
    let mut reader = CsvReader {
        text,
        position: 0,
        line: 1,
        separator,
    };
    let mut fields = Vec::new();
    let header_line = loop {
        let Some(record) = reader.next_record(&mut fields) else {
            return Err(ReportCsvError::Empty);
        };
        if !is_blank(&fields) {
            break record.line;
        }
    };
    let columns = Columns::from_header(&fields)?;
    let mut importer = Importer {
        columns: &columns,
        options,
        header_width: fields.len(),
        import: CsvImport {
            separator: char::from(separator),
            ..CsvImport::default()
        },
    };
    if columns.call_id.is_none() {
        importer.warn(
            header_line,
            "no call ID column: the events are read, but statistics cannot tie a call's events together (offered and answered stay 0)".to_owned(),
        );
    }
    while let Some(record) = reader.next_record(&mut fields) {
        if record.unterminated {
            importer.import.records += 1;
            importer.skip(
                record.line,
                "a quoted field is never closed (a missing \")".to_owned(),
            );
            continue;
        }
        if is_blank(&fields) {
            continue;
        }
        importer.record(record.line, &fields);
    }
    let mut import = importer.import;
    into_time_order(&mut import.events);
    Ok(import)
}

/// Puts events in time order: a newest-first export is reversed (so events of one second keep
/// their real order), then what is still out of order is sorted stably.
fn into_time_order(events: &mut [ReportEvent]) {
    let (mut rising, mut falling) = (0usize, 0usize);
    for pair in events.windows(2) {
        match pair[0].time.cmp(&pair[1].time) {
            std::cmp::Ordering::Less => rising += 1,
            std::cmp::Ordering::Greater => falling += 1,
            std::cmp::Ordering::Equal => {}
        }
    }
    if falling > rising {
        events.reverse();
    }
    if falling > 0 {
        events.sort_by_key(|event| event.time);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::queue_log::lines_ref;
    use crate::queue::report::{write_csv_record, QueueLogReport, CSV_HEADER};
    use crate::queue::stats::{stats_from_queue_log, Stats, StatsBuilder, StatsConfig};
    use proptest::prelude::*;
    use std::path::PathBuf;

    fn manifest(path: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
    }

    fn full_log() -> String {
        std::fs::read_to_string(manifest("tests/fixtures/asterisk/queue_log/full.log"))
            .expect("full.log")
    }

    fn queue_log_events(text: &str) -> Vec<ReportEvent> {
        let mut report = QueueLogReport::new();
        lines_ref(text)
            .filter_map(|(_, line)| report.handle_line(&line.expect("well formed")))
            .collect()
    }

    fn export(events: &[ReportEvent]) -> String {
        let mut text = format!("{CSV_HEADER}\r\n");
        for event in events {
            write_csv_record(event, &mut text);
        }
        text
    }

    fn import(text: &str) -> CsvImport {
        parse_report_csv(text, CsvImportOptions::default()).expect("imports")
    }

    fn stats_of(events: &[ReportEvent]) -> Stats {
        let mut builder = StatsBuilder::new(StatsConfig::all_time(60));
        for event in events {
            builder.add(&event.as_event_ref());
        }
        builder.finish()
    }

    #[test]
    fn the_fixture_survives_export_and_import() {
        let log = full_log();
        let events = queue_log_events(&log);
        assert_eq!(events.len(), 48);
        let imported = import(&export(&events));
        assert_eq!(imported.warnings, Vec::new());
        assert_eq!((imported.records, imported.skipped), (48, 0));
        assert_eq!(imported.separator, ',');
        assert_eq!(imported.events, events);
        let (from_log, malformed) = stats_from_queue_log(&log, StatsConfig::all_time(60));
        assert_eq!(malformed, 0);
        let from_csv = stats_of(&imported.events);
        assert_eq!(from_csv, from_log);
        assert_eq!(
            from_csv.queues[1].offered, 9,
            "support's calls were counted"
        );
    }

    const HOSTED: &str = include_str!("../../tests/data/hosted-queue-report.csv");

    #[test]
    fn a_hosted_pbx_export_reads_as_the_same_calls() {
        let imported =
            parse_report_csv(HOSTED, CsvImportOptions { utc_offset_s: 3600 }).expect("imports");
        assert_eq!(imported.separator, ';');
        assert_eq!((imported.records, imported.skipped), (50, 2));
        let warnings: Vec<String> = imported.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            warnings,
            [
                "line 5: wait time \"ab:cd\" is not a duration (use seconds, mm:ss or hh:mm:ss); left empty",
                "line 7: unknown event type \"The caller was put on hold\": use a stable name (caller-quit, ...) or the report's label (\"The caller quit\", ...); row skipped",
                "line 42: cannot read the time \"31/02/2026 12:13:30\": use YYYY-MM-DD HH:MM:SS, DD/MM/YYYY HH:MM[:SS] or epoch seconds; row skipped",
            ]
        );
        assert_eq!(imported.warning_count, 3);

        // Newest first in the file, local time +01:00, mm:ss: the same calls as queue_log's.
        let log = full_log();
        let expected = queue_log_events(&log);
        let essentials = |e: &ReportEvent| {
            (
                e.time,
                e.kind,
                e.queue.clone(),
                e.call_id.clone(),
                e.agent.clone(),
                e.wait_s,
                e.talk_s,
            )
        };
        assert_eq!(
            imported.events.iter().map(essentials).collect::<Vec<_>>(),
            expected.iter().map(essentials).collect::<Vec<_>>()
        );
        let no_answer = imported
            .events
            .iter()
            .find(|e| e.kind == ReportKind::NoAnswer)
            .expect("no-answer");
        assert_eq!(no_answer.ring_ms, Some(15_000));
        let vip = imported
            .events
            .iter()
            .find(|e| e.call_id.as_deref() == Some("ringside-lab-1795259604.12"))
            .expect("the quoted caller's call");
        assert_eq!(vip.caller.as_deref(), Some("Dupont, Jean\r\n(VIP)"));
        assert_eq!(vip.kind, ReportKind::EnterQueue);
        assert_eq!(
            stats_of(&imported.events),
            stats_from_queue_log(&log, StatsConfig::all_time(60)).0
        );
        // Read as UTC, every time is an hour late.
        let utc = import(HOSTED);
        assert_eq!(utc.events[0].time, expected[0].time + 3600);
    }

    fn arbitrary_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just(",".to_owned()),
            Just("\"".to_owned()),
            Just("\"\"".to_owned()),
            Just("\n".to_owned()),
            Just("\r\n".to_owned()),
            Just("\r".to_owned()),
            Just(";".to_owned()),
            Just(" ".to_owned()),
            Just("\u{feff}".to_owned()),
            proptest::sample::select(vec!["agent1", "support", "1002@lab", "PJSIP/101", "NONE"])
                .prop_map(str::to_owned),
            any::<char>().prop_map(String::from),
        ];
        proptest::collection::vec(piece, 1..8).prop_map(|pieces| pieces.concat())
    }

    fn optional_text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(arbitrary_text())
    }

    fn arbitrary_event() -> impl Strategy<Value = ReportEvent> {
        (
            (
                0..=253_402_300_799u64, // up to 9999-12-31 23:59:59
                proptest::sample::select(ReportKind::ALL.to_vec()),
                arbitrary_text(),
                optional_text(),
                optional_text(),
                optional_text(),
            ),
            (
                proptest::option::of(any::<u32>()),
                proptest::option::of(any::<u32>()),
                proptest::option::of(any::<u32>()),
                proptest::option::of(any::<u32>()),
                optional_text(),
            ),
        )
            .prop_map(
                |(
                    (time, kind, queue, call_id, agent, caller),
                    (wait_s, talk_s, ring_ms, position, detail),
                )| {
                    ReportEvent {
                        time,
                        kind,
                        queue,
                        call_id,
                        agent,
                        caller,
                        wait_s,
                        talk_s,
                        ring_ms,
                        position,
                        detail,
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn export_then_import_is_the_identity(
            mut events in proptest::collection::vec(arbitrary_event(), 0..30),
        ) {
            events.sort_by_key(|event| event.time);
            let imported = import(&export(&events));
            prop_assert_eq!(imported.warning_count, 0, "{:?}", imported.warnings);
            prop_assert_eq!(imported.records, events.len() as u64);
            prop_assert_eq!(imported.events, events);
        }

        #[test]
        fn any_text_imports_without_panicking(text in "(?s).{0,300}", header in 0..3usize) {
            let headers = [CSV_HEADER, "Date;Event type;Queue;Wait time", "Time\tType\tQueue"];
            let text = format!("{}\n{text}", headers[header]);
            let imported = parse_report_csv(&text, CsvImportOptions::default()).expect("has a header");
            prop_assert!(imported.skipped <= imported.records);
            prop_assert!(imported.events.len() as u64 <= imported.records);
        }
    }

    #[test]
    fn quoting_line_ends_and_separators() {
        let text = "\u{feff}date;EVENT TYPE;queue;agent;uniqueid\n\
                    2026-11-21 11:12:20;caller-quit;\"sup;port\";\"a \"\"b\"\"\r\nc\"\r\n\
                    \n\
                    2026-11-21 11:12:21;connected;support;x\"y\r\
                    2026-11-21 11:12:22;connected;support;\"ab\"cd\n\
                    2026-11-21 11:12:23;connected;support;last";
        let imported = import(text);
        assert_eq!(imported.separator, ';');
        assert_eq!(imported.warnings, Vec::new());
        let agents: Vec<(&str, Option<&str>)> = imported
            .events
            .iter()
            .map(|e| (e.queue.as_str(), e.agent.as_deref()))
            .collect();
        assert_eq!(
            agents,
            [
                ("sup;port", Some("a \"b\"\r\nc")),
                ("support", Some("x\"y")),
                ("support", Some("abcd")),
                ("support", Some("last")),
            ]
        );
        assert_eq!(imported.records, 4, "the blank line is not a record");
        let tabs = import("Time\tType\tQueue\tUniqueid\n1795259540\tABANDON\tsales\n");
        assert_eq!(tabs.separator, '\t');
        assert_eq!(tabs.events[0].kind, ReportKind::CallerQuit);
        assert_eq!(tabs.events[0].time, 1_795_259_540);
    }

    #[test]
    fn an_unclosed_quote_costs_one_line() {
        let text = "Date,Event,Queue,Agent,Call ID\n\
                    2026-11-21 11:12:20,connected,support,\"agent1\n\
                    2026-11-21 11:12:21,connected,support,agent2\n\
                    2026-11-21 11:12:22,connected,support,agent3\n";
        let imported = import(text);
        let agents: Vec<_> = imported.events.iter().map(|e| e.agent.clone()).collect();
        assert_eq!(agents, [Some("agent2".into()), Some("agent3".into())]);
        assert_eq!(
            imported.warnings[0].to_string(),
            "line 2: a quoted field is never closed (a missing \"); row skipped"
        );
        assert_eq!((imported.records, imported.skipped), (3, 1));
    }

    #[test]
    fn rows_that_do_not_fit_the_header() {
        let text = "Date,Event,Queue,Agent\n\
                    2026-11-21 11:12:20,connected,support,Smith, Bob\n\
                    2026-11-21 11:12:21,connected,support,agent2,,\n\
                    2026-11-21 11:12:22,connected\n\
                    2026-11-21 11:12:23,,support,agent4\n\
                    2026-11-21 11:12:24,connected,support\n";
        let imported = import(text);
        let why: Vec<String> = imported.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            why,
            [
                "line 1: no call ID column: the events are read, but statistics cannot tie a call's events together (offered and answered stay 0)",
                "line 2: 5 fields where the header has 4 (a separator inside an unquoted field?); row skipped",
                "line 4: no queue; row skipped",
                "line 5: no event type; row skipped",
            ]
        );
        assert_eq!(
            imported.events.len(),
            2,
            "trailing empty fields and short rows are fine"
        );
        assert_eq!(imported.events[1].agent, None);
    }

    #[test]
    fn missing_columns_are_named_with_the_header_found() {
        let error = parse_report_csv(
            "When,What,Queue,Agent\n1,caller-quit,q,a\n",
            CsvImportOptions::default(),
        )
        .expect_err("no time or event column");
        assert_eq!(
            error.to_string(),
            "the CSV header has no time column (name it e.g. \"Date\") and no event type column (name it e.g. \"Event type\"); the header found is: \"When\", \"What\", \"Queue\", \"Agent\". Export the report with its header row, or rename the columns"
        );
        assert_eq!(
            error,
            ReportCsvError::MissingColumns {
                missing: vec!["time", "event type"],
                found: vec!["When".into(), "What".into(), "Queue".into(), "Agent".into()],
            }
        );
        assert_eq!(
            parse_report_csv("\u{feff}\r\n\r\n", CsvImportOptions::default()),
            Err(ReportCsvError::Empty)
        );
        assert!(matches!(
            parse_report_csv("Date,Event type\n", CsvImportOptions::default()),
            Err(ReportCsvError::MissingColumns { missing, .. }) if missing == ["queue"]
        ));
    }

    #[test]
    fn header_names_in_any_case_accent_or_order() {
        let cases: [(&str, Option<ColumnRole>); 22] = [
            ("Date", Some(ColumnRole::Time)),
            ("  DATE / HEURE ", Some(ColumnRole::Time)),
            ("Time", Some(ColumnRole::TimeOfDay)),
            ("Event type", Some(ColumnRole::Event)),
            ("Type d'événement", Some(ColumnRole::Event)),
            ("ÉVÉNEMENT", Some(ColumnRole::Event)),
            ("File d'attente", Some(ColumnRole::Queue)),
            ("Call ID", Some(ColumnRole::CallId)),
            ("Uniqueid", Some(ColumnRole::CallId)),
            ("Caller ID", Some(ColumnRole::Caller)),
            ("Numéro", Some(ColumnRole::Caller)),
            ("Wait (s)", Some(ColumnRole::Wait(DurationUnit::Seconds))),
            ("Hold time", Some(ColumnRole::Wait(DurationUnit::Seconds))),
            (
                "Durée (mm:ss)",
                Some(ColumnRole::Talk(DurationUnit::Seconds)),
            ),
            ("Talk time", Some(ColumnRole::Talk(DurationUnit::Seconds))),
            (
                "Ring (ms)",
                Some(ColumnRole::Ring(DurationUnit::Milliseconds)),
            ),
            ("Ring time", Some(ColumnRole::Ring(DurationUnit::Seconds))),
            ("Position", Some(ColumnRole::Position)),
            ("ID", None),
            ("File", None),
            ("Caller name", None),
            ("s", None),
        ];
        for (name, role) in cases {
            assert_eq!(column_role(name), role, "{name}");
        }
        // Reordered columns, a date and a time of day apart, unknown columns skipped.
        let text = "Queue,Notes,Time,Talk time,Date,Type\n\
                    support,x,12:12:20,1:02:03,21.11.2026,caller-hangup\n";
        let imported = import(text);
        let event = &imported.events[0];
        assert_eq!(event.time, 1_795_263_140);
        assert_eq!(event.talk_s, Some(3723));
        assert_eq!(event.detail.as_deref(), Some("x"));
    }

    #[test]
    fn the_seeds_labels_names_and_verbs() {
        let seeds = [
            ("The caller quit", ReportKind::CallerQuit),
            ("An agent is connecting", ReportKind::AgentConnect),
            ("An agent is disconnecting", ReportKind::AgentDisconnect),
            (
                "The call was terminated (agent hangs up)",
                ReportKind::AgentHangup,
            ),
            (
                "The call was terminated (caller hangs up)",
                ReportKind::CallerHangup,
            ),
            (
                "The caller is connected to an agent.",
                ReportKind::Connected,
            ),
            ("Someone is entering the queue", ReportKind::EnterQueue),
            (
                "The caller exits the queue (no agent is connected)",
                ReportKind::ExitEmpty,
            ),
            (
                "The caller exits the queue (timeout)",
                ReportKind::ExitTimeout,
            ),
            ("No one is answering", ReportKind::NoAnswer),
            (
                "No one is answering, the caller hangs up",
                ReportKind::NoAnswerCallerHangup,
            ),
            ("Transfer", ReportKind::Transfer),
            ("Blind Transfer", ReportKind::BlindTransfer),
        ];
        for (label, kind) in seeds {
            assert_eq!(parse_event_kind(label), Some(kind), "{label}");
            let shouted = format!("  {}. ", label.to_uppercase());
            assert_eq!(parse_event_kind(&shouted), Some(kind), "{shouted}");
            let bare = label.trim_end_matches('.').to_lowercase();
            assert_eq!(parse_event_kind(&bare), Some(kind), "{bare}");
        }
        for kind in ReportKind::ALL {
            assert_eq!(parse_event_kind(kind.name()), Some(kind));
            assert_eq!(parse_event_kind(kind.label()), Some(kind));
        }
        assert_eq!(
            parse_event_kind("Caller_Quit"),
            Some(ReportKind::CallerQuit)
        );
        assert_eq!(
            parse_event_kind("RINGCANCELED"),
            Some(ReportKind::NoAnswerCallerHangup)
        );
        assert_eq!(parse_event_kind("PAUSEALL"), None);
        assert_eq!(parse_event_kind("No one"), None);
        assert_eq!(parse_event_kind(""), None);
    }

    #[test]
    fn times_in_every_accepted_form() {
        let t = 1_795_259_540; // 2026-11-21 11:12:20 UTC
        for text in [
            "2026-11-21 11:12:20",
            "2026-11-21T11:12:20Z",
            "2026-11-21T11:12:20.750Z",
            "2026-11-21T12:12:20+01:00",
            "2026-11-21 06:12:20 -0500",
            "2026-11-21 11:12:20 UTC",
            "2026/11/21 11:12:20",
            "21/11/2026 11:12:20",
            "21-11-2026 11:12:20",
            "21.11.2026 11:12:20",
            " 1795259540 ",
            "1795259540.9",
        ] {
            assert_eq!(parse_csv_time(text, 0), Some(t), "{text}");
        }
        assert_eq!(parse_csv_time("21/11/2026 11:12", 0), Some(t - 20));
        assert_eq!(parse_csv_time("2026-11-21", 0), Some(t - 40_340));
        // Without a zone the offset applies; with one it does not.
        assert_eq!(parse_csv_time("21/11/2026 12:12:20", 3600), Some(t));
        assert_eq!(parse_csv_time("2026-11-21 05:42:20", -19_800), Some(t));
        assert_eq!(parse_csv_time("2026-11-21T11:12:20Z", 3600), Some(t));
        assert_eq!(parse_csv_time("1795259540", 3600), Some(t));
        for bad in [
            "",
            "31/02/2026 10:00",
            "2026-13-01",
            "2026-11-21 24:00",
            "2026-11-21 11:60",
            "11/21/26",
            "1969-12-31 23:59:59",
            "1970-01-01 00:30",
            "2026-11-21 11:12:20 +25:00",
            "yesterday",
            "99999999999999999999",
            "2026-11-21 ١١:12",
        ] {
            let offset = if bad == "1970-01-01 00:30" { 3600 } else { 0 };
            assert_eq!(parse_csv_time(bad, offset), None, "{bad}");
        }
    }

    #[test]
    fn durations_in_every_accepted_form() {
        let s = DurationUnit::Seconds;
        let ms = DurationUnit::Milliseconds;
        let cases = [
            ("17", s, Some(17_000)),
            (" 4.5 ", s, Some(4500)),
            ("4,25", s, Some(4250)),
            ("01:05", s, Some(65_000)),
            ("90:00", s, Some(5_400_000)),
            ("1:02:03", s, Some(3_723_000)),
            ("00:04.5", s, Some(4500)),
            ("2m09s", s, Some(129_000)),
            ("1h02m", s, Some(3_720_000)),
            ("47s", s, Some(47_000)),
            ("850ms", s, Some(850)),
            ("15000", ms, Some(15_000)),
            ("00:15", ms, Some(15_000)),
            ("4502.9", ms, Some(4502)),
            ("", s, None),
            ("-", s, None),
        ];
        for (text, unit, millis) in cases {
            assert_eq!(parse_duration_ms(text, unit), Ok(millis), "{text}");
        }
        for bad in [
            "ab:cd",
            "1:2:3:4",
            "00:75",
            "1:75:00",
            "5x",
            "h",
            "1.2.3",
            ".",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_duration_ms(bad, s), Err(NotADuration), "{bad}");
        }
        let big =
            import("Date,Event,Queue,Wait (s),Position,Call ID\n1,connected,q,4294967296,x\n");
        let why: Vec<String> = big.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            why,
            [
                "line 2: wait time \"4294967296\" is too large; left empty",
                "line 2: position \"x\" is not a whole number; left empty",
            ]
        );
        assert_eq!(big.events.len(), 1);
    }

    #[test]
    fn utc_offsets() {
        for (text, seconds) in [
            ("+01:00", 3600),
            ("-05:00", -18_000),
            ("+0530", 19_800),
            ("+2", 7200),
            ("UTC", 0),
            ("z", 0),
            ("0", 0),
            ("+18:00", 64_800),
        ] {
            assert_eq!(parse_utc_offset(text), Ok(seconds), "{text}");
        }
        for bad in ["+19:00", "01:00", "+1:75", "", "+", "CET"] {
            assert!(parse_utc_offset(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_utc_offset("CET").map_err(|e| e.to_string()),
            Err("cannot read the UTC offset \"CET\": use +HH:MM or -HH:MM east of UTC (+01:00 for Paris in winter, -05:00 for New York), at most 18 hours".to_owned())
        );
    }

    #[test]
    fn newest_first_exports_come_back_in_time_order() {
        let text = "Date,Event,Queue,Call ID\n\
                    2026-11-21 11:12:30,agent-hangup,q,c1\n\
                    2026-11-21 11:12:20,connected,q,c1\n\
                    2026-11-21 11:12:20,enter-queue,q,c1\n\
                    2026-11-21 11:12:10,agent-connect,q,a\n";
        let kinds: Vec<ReportKind> = import(text).events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                ReportKind::AgentConnect,
                ReportKind::EnterQueue,
                ReportKind::Connected,
                ReportKind::AgentHangup
            ]
        );
        let shuffled = "Date,Event,Queue\n3,connected,q\n1,enter-queue,q\n2,pause,q\n4,unpause,q\n";
        let times: Vec<u64> = import(shuffled).events.iter().map(|e| e.time).collect();
        assert_eq!(times, [1, 2, 3, 4]);
    }

    #[test]
    fn spreadsheet_encodings() {
        assert_eq!(
            decode_csv_bytes(b"Queue;File d'attente"),
            "Queue;File d'attente"
        );
        assert_eq!(decode_csv_bytes(b"Dur\xe9e \x80"), "Durée €");
        let utf16le: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain(
                "Date\tType\tQueue"
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes),
            )
            .collect();
        assert_eq!(decode_csv_bytes(&utf16le), "Date\tType\tQueue");
        let utf16be: Vec<u8> = [0xfe, 0xff]
            .into_iter()
            .chain("é".encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(decode_csv_bytes(&utf16be), "é");
    }
}
