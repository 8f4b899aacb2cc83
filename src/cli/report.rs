//! `ringside report` (the seeds' queue report: filter, table / CSV / JSON, statistics) and
//! `ringside events` (report events as JSON Lines, optionally following the file like
//! `tail -F`). Both read Asterisk's queue_log, or an AMI (`--ami HOST:PORT`): then the report
//! is the queues as they are now (the QueueStatus / QueueSummary snapshot) and `events` streams
//! the report events derived from live AMI events. `report` also reads a queue report exported
//! to CSV (`--csv FILE`: ours, or a hosted PBX's "Export to CSV"), for PBXs without AMI.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use thiserror::Error;

use crate::config::Secret;
use crate::net::ami::{spawn as spawn_ami, AmiConfig, AmiError};
use crate::queue::ami_client::{AmiClientEvent, EventsFilter, QueueMonitor};
use crate::queue::model::{AgentState, QueueState};
use crate::queue::queue_log::{lines_ref, parse_line_ref};
use crate::queue::report::{
    civil_from_days, days_from_civil, format_utc, from_queue_log_ref, push_csv_field,
    write_csv_record, QueueLogReport, ReportEvent, ReportKind, UnknownReportKind, CSV_HEADER,
};
use crate::queue::report_csv::{
    decode_csv_bytes, parse_report_csv, CsvImportOptions, ReportCsvError,
};
use crate::queue::stats::{Stats, StatsBuilder, StatsConfig};

/// What can stop a report. Malformed queue_log lines do not: they come back as warnings.
#[derive(Debug, Error)]
pub enum ReportError {
    #[error("no queue_log given: pass --queue-log FILE (Asterisk writes it to /var/log/asterisk/queue_log), --csv FILE (a queue report exported to CSV) or --ami HOST:PORT")]
    NoSource,
    #[error("no AMI user: pass --ami-user NAME (a [user] section of manager.conf) or set RINGSIDE_AMI_USER")]
    NoAmiUser,
    #[error("no AMI secret: pass --ami-secret TEXT or, to keep it off the command line, set RINGSIDE_AMI_SECRET")]
    NoAmiSecret,
    #[error("--queue-log and --ami are two sources: give one of them")]
    TwoSources,
    #[error("--csv and {other} are two sources: give one of them")]
    CsvWithOtherSource { other: &'static str },
    #[error("{}: {error}", path.display())]
    Csv {
        path: PathBuf,
        error: ReportCsvError,
    },
    #[error("{flag} applies to --queue-log: --ami shows the queues as they are now (use `ringside events --ami` for live events)")]
    AmiSnapshotOnly { flag: &'static str },
    #[error(transparent)]
    Ami(#[from] AmiError),
    #[error("cannot start the async runtime for --ami: {0}")]
    Runtime(io::Error),
    #[error(
        "run_report with --ami was called inside an async runtime: call run_report_ami instead"
    )]
    InsideRuntime,
    #[error("--period cannot be combined with --from / --to: use one or the other")]
    PeriodWithRange,
    #[error("the period is empty: --from {from} is not before --to {to}")]
    EmptyRange { from: String, to: String },
    // The I/O error is part of the message, not a `source`: a reporter that prints the chain
    // would otherwise say it twice.
    #[error("cannot read {path}: {error} (check the path and that you may read it)")]
    Read { path: PathBuf, error: io::Error },
    #[error("cannot write the output: {0}")]
    Write(io::Error),
    #[error(transparent)]
    UnknownKind(#[from] UnknownReportKind),
    #[error("unknown period {0:?}: use today, yesterday, this-week, last-week or this-month")]
    UnknownPeriod(String),
    #[error("unknown format {0:?}: use table, csv or json")]
    UnknownFormat(String),
    #[error("cannot read the time {0:?}: use epoch seconds (1795259540), a UTC date (2026-11-21) or a UTC date and time (2026-11-21T11:12:20Z)")]
    BadTime(String),
}

/// A named period, computed in UTC. Weeks start on Monday (ISO 8601).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Today,
    Yesterday,
    ThisWeek,
    LastWeek,
    ThisMonth,
}

const DAY_S: u64 = 86_400;

impl Period {
    /// `[from, to)` in epoch seconds for the period containing `now_epoch`.
    pub fn range(self, now_epoch: u64) -> (u64, u64) {
        let today = now_epoch - now_epoch % DAY_S;
        // 1970-01-01 was a Thursday: three days after a Monday.
        let weekday_from_monday = (now_epoch / DAY_S + 3) % 7;
        let monday = today.saturating_sub(weekday_from_monday * DAY_S);
        match self {
            Period::Today => (today, today.saturating_add(DAY_S)),
            Period::Yesterday => (today.saturating_sub(DAY_S), today),
            Period::ThisWeek => (monday, monday.saturating_add(7 * DAY_S)),
            Period::LastWeek => (monday.saturating_sub(7 * DAY_S), monday),
            Period::ThisMonth => {
                let days = i64::try_from(now_epoch / DAY_S).unwrap_or(0);
                let (year, month, _) = civil_from_days(days);
                let (next_year, next_month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                let start = days_from_civil(year, month, 1);
                let end = days_from_civil(next_year, next_month, 1);
                (epoch_of_day(start), epoch_of_day(end))
            }
        }
    }
}

fn epoch_of_day(days: i64) -> u64 {
    u64::try_from(days).unwrap_or(0).saturating_mul(DAY_S)
}

impl FromStr for Period {
    type Err = ReportError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "today" => Ok(Period::Today),
            "yesterday" => Ok(Period::Yesterday),
            "this-week" => Ok(Period::ThisWeek),
            "last-week" => Ok(Period::LastWeek),
            "this-month" => Ok(Period::ThisMonth),
            _ => Err(ReportError::UnknownPeriod(text.chars().take(40).collect())),
        }
    }
}

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportFormat {
    /// Aligned columns for a person, fitting 80 columns.
    #[default]
    Table,
    /// The seeds' "Export to CSV".
    Csv,
    /// JSON Lines, one event per line (the `ringside events` schema).
    Json,
}

impl FromStr for ReportFormat {
    type Err = ReportError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "table" => Ok(ReportFormat::Table),
            "csv" => Ok(ReportFormat::Csv),
            "json" => Ok(ReportFormat::Json),
            _ => Err(ReportError::UnknownFormat(text.chars().take(40).collect())),
        }
    }
}

/// The arguments of `ringside report`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportArgs {
    pub queue_log: Option<PathBuf>,
    /// A queue report exported to CSV (ours or a hosted PBX's), instead of a queue_log.
    pub csv: Option<PathBuf>,
    /// Seconds east of UTC of the `csv` times written without a zone (the PBX's local time).
    pub utc_offset_s: i32,
    /// `HOST:PORT` of an AMI: report the queues now instead of a queue_log's history.
    pub ami: Option<String>,
    /// Epoch seconds, inclusive.
    pub from: Option<u64>,
    /// Epoch seconds, exclusive.
    pub to: Option<u64>,
    pub period: Option<Period>,
    /// Empty means all kinds.
    pub events: Vec<ReportKind>,
    pub queue: Option<String>,
    pub call_id: Option<String>,
    pub format: ReportFormat,
    /// Print statistics instead of events (the period and `queue` apply; `events` and
    /// `call_id` do not).
    pub stats: bool,
    /// The service-level threshold, seconds.
    pub service_level_s: u32,
}

/// Asterisk's sample queues.conf uses 60 s.
pub const DEFAULT_SERVICE_LEVEL_S: u32 = 60;

impl Default for ReportArgs {
    fn default() -> Self {
        Self {
            queue_log: None,
            csv: None,
            utc_offset_s: 0,
            ami: None,
            from: None,
            to: None,
            period: None,
            events: Vec::new(),
            queue: None,
            call_id: None,
            format: ReportFormat::Table,
            stats: false,
            service_level_s: DEFAULT_SERVICE_LEVEL_S,
        }
    }
}

/// What a report run read, and the malformed lines it skipped (for stderr). For `--csv`, lines
/// are the CSV's records and malformed the records skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportSummary {
    pub lines: u64,
    pub malformed: u64,
    /// Events printed (0 with `--stats`).
    pub events_shown: u64,
    /// `line N: why`, the first [`MAX_WARNINGS`] malformed lines, then a count of the rest.
    pub warnings: Vec<String>,
}

/// Malformed lines listed one by one before they are only counted.
pub const MAX_WARNINGS: usize = 20;

/// Reads `--event` values: stable names, comma-separated or repeated; `all` (or nothing)
/// means every kind.
pub fn parse_event_kinds(values: &[String]) -> Result<Vec<ReportKind>, ReportError> {
    let mut kinds = Vec::new();
    for name in values.iter().flat_map(|value| value.split(',')) {
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        if name.eq_ignore_ascii_case("all") {
            return Ok(Vec::new());
        }
        let kind: ReportKind = name.parse()?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

/// Reads `--from`: epoch seconds, `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM[:SS][Z]`.
pub fn parse_time(text: &str) -> Result<u64, ReportError> {
    parse_moment(text).map(|(epoch, _)| epoch)
}

/// Reads `--to` like [`parse_time`], except that a bare date means the end of that day, so
/// `--from 2026-11-21 --to 2026-11-21` is the whole day.
pub fn parse_time_end(text: &str) -> Result<u64, ReportError> {
    parse_moment(text).map(|(epoch, date_only)| {
        if date_only {
            epoch.saturating_add(DAY_S)
        } else {
            epoch
        }
    })
}

fn parse_moment(text: &str) -> Result<(u64, bool), ReportError> {
    let bad = || ReportError::BadTime(text.chars().take(40).collect());
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map(|epoch| (epoch, false)).map_err(|_| bad());
    }
    let text = text.strip_suffix(['Z', 'z']).unwrap_or(text);
    let (date, time) = match text.split_once(['T', 't', ' ']) {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let mut date_parts = date.split('-');
    let (Some(year), Some(month), Some(day), None) = (
        date_parts.next().and_then(digits),
        date_parts.next().and_then(digits),
        date_parts.next().and_then(digits),
        date_parts.next(),
    ) else {
        return Err(bad());
    };
    let (year, month, day) = (
        i64::try_from(year).map_err(|_| bad())?,
        u32::try_from(month).map_err(|_| bad())?,
        u32::try_from(day).map_err(|_| bad())?,
    );
    if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) || day == 0 {
        return Err(bad());
    }
    let days = days_from_civil(year, month, day);
    if civil_from_days(days) != (year, month, day) {
        return Err(bad()); // 2026-02-30 and the like
    }
    let mut seconds = epoch_of_day(days);
    let Some(time) = time else {
        return Ok((seconds, true));
    };
    let mut parts = time.split(':');
    let (Some(hour), Some(minute), second, None) = (
        parts.next().and_then(digits),
        parts.next().and_then(digits),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad());
    };
    let second = match second {
        Some(second) => digits(second).ok_or_else(bad)?,
        None => 0,
    };
    if hour > 23 || minute > 59 || second > 59 {
        return Err(bad());
    }
    seconds += hour * 3600 + minute * 60 + second;
    Ok((seconds, false))
}

fn digits(text: &str) -> Option<u64> {
    (!text.is_empty() && text.len() <= 4 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// The wall clock, for the named periods. Only the CLI reads it; the core is given `now`.
fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// `ringside report` with the system clock for `--period`.
pub fn run_report(args: &ReportArgs, out: &mut impl Write) -> Result<ReportSummary, ReportError> {
    run_report_at(args, now_epoch(), out)
}

/// `ringside report`, with `now_epoch` (UTC seconds) defining today, this week, ...
pub fn run_report_at(
    args: &ReportArgs,
    now_epoch: u64,
    out: &mut impl Write,
) -> Result<ReportSummary, ReportError> {
    check_csv_alone(args)?;
    if args.ami.is_some() {
        // Only the environment can give credentials here; the CLI passes its
        // --ami-user / --ami-secret to run_report_ami directly.
        let credentials = AmiCredentials::resolve(None, None)?;
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(ReportError::InsideRuntime);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ReportError::Runtime)?;
        return runtime.block_on(run_report_ami_at(args, &credentials, now_epoch, out));
    }
    let Some(path) = args.queue_log.as_ref().or(args.csv.as_ref()) else {
        return Err(ReportError::NoSource);
    };
    let (from, to) = match (args.period, args.from, args.to) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => return Err(ReportError::PeriodWithRange),
        (Some(period), None, None) => period.range(now_epoch),
        (None, from, to) => (from.unwrap_or(0), to.unwrap_or(u64::MAX)),
    };
    if from >= to {
        return Err(ReportError::EmptyRange {
            from: format_utc(from),
            to: format_utc(to),
        });
    }
    let bytes = std::fs::read(path).map_err(|error| ReportError::Read {
        path: path.clone(),
        error,
    })?;
    if args.csv.is_some() {
        return report_from_csv(args, path, &bytes, (from, to), out);
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut summary = ReportSummary::default();

    if args.stats {
        let mut builder = StatsBuilder::new(StatsConfig {
            from,
            to,
            service_level_s: args.service_level_s,
            queue: args.queue.clone(),
        });
        for (number, line) in lines_ref(&text) {
            summary.lines += 1;
            match line {
                Ok(line) => {
                    if let Some(event) = from_queue_log_ref(&line) {
                        builder.add(&event);
                    }
                }
                Err(error) => note_malformed(&mut summary, number, &error.to_string()),
            }
        }
        finish_warnings(&mut summary);
        let stats = builder.finish();
        write_stats(&stats, args.format, out).map_err(ReportError::Write)?;
        return Ok(summary);
    }

    let mut report = QueueLogReport::new();
    let mut events = Vec::new();
    for (number, line) in lines_ref(&text) {
        summary.lines += 1;
        match line {
            Ok(line) => {
                // Every line goes through the deriver so callers carry over from entries
                // outside the filter.
                let Some(event) = report.handle_line(&line) else {
                    continue;
                };
                if keep(args, from, to, &event) {
                    events.push(event);
                }
            }
            Err(error) => note_malformed(&mut summary, number, &error.to_string()),
        }
    }
    finish_warnings(&mut summary);
    summary.events_shown = events.len() as u64;
    let footer = format!(
        "{} event(s); {} line(s) read, {} malformed",
        events.len(),
        summary.lines,
        summary.malformed
    );
    write_events(&events, args.format, &footer, out)?;
    Ok(summary)
}

/// `--csv` excludes the other two sources.
fn check_csv_alone(args: &ReportArgs) -> Result<(), ReportError> {
    if args.csv.is_none() {
        return Ok(());
    }
    if args.queue_log.is_some() {
        return Err(ReportError::CsvWithOtherSource {
            other: "--queue-log",
        });
    }
    if args.ami.is_some() {
        return Err(ReportError::CsvWithOtherSource { other: "--ami" });
    }
    Ok(())
}

/// The report over an exported CSV: the same filters, formats and statistics as a queue_log's.
fn report_from_csv(
    args: &ReportArgs,
    path: &Path,
    bytes: &[u8],
    (from, to): (u64, u64),
    out: &mut impl Write,
) -> Result<ReportSummary, ReportError> {
    let text = decode_csv_bytes(bytes);
    let options = CsvImportOptions {
        utc_offset_s: args.utc_offset_s,
    };
    let import = parse_report_csv(&text, options).map_err(|error| ReportError::Csv {
        path: path.to_owned(),
        error,
    })?;
    let mut summary = ReportSummary {
        lines: import.records,
        malformed: import.skipped,
        ..ReportSummary::default()
    };
    summary.warnings = import
        .warnings
        .iter()
        .take(MAX_WARNINGS)
        .map(|warning| format!("CSV {warning}"))
        .collect();
    let listed = summary.warnings.len() as u64;
    if import.warning_count > listed {
        summary.warnings.push(format!(
            "... and {} more CSV warning(s)",
            import.warning_count - listed
        ));
    }

    if args.stats {
        let mut builder = StatsBuilder::new(StatsConfig {
            from,
            to,
            service_level_s: args.service_level_s,
            queue: args.queue.clone(),
        });
        for event in &import.events {
            builder.add(&event.as_event_ref());
        }
        write_stats(&builder.finish(), args.format, out).map_err(ReportError::Write)?;
        return Ok(summary);
    }

    let events: Vec<ReportEvent> = import
        .events
        .into_iter()
        .filter(|event| keep(args, from, to, event))
        .collect();
    summary.events_shown = events.len() as u64;
    let footer = format!(
        "{} event(s); {} CSV row(s) read, {} skipped",
        events.len(),
        summary.lines,
        summary.malformed
    );
    write_events(&events, args.format, &footer, out)?;
    Ok(summary)
}

/// The events in the chosen format; `footer` closes the table.
fn write_events(
    events: &[ReportEvent],
    format: ReportFormat,
    footer: &str,
    out: &mut impl Write,
) -> Result<(), ReportError> {
    let written = match format {
        ReportFormat::Table => write_table(events, out).and_then(|()| writeln!(out, "{footer}")),
        ReportFormat::Csv => write_csv(events, out),
        ReportFormat::Json => events
            .iter()
            .try_for_each(|event| writeln!(out, "{}", event.to_json_line())),
    };
    written
        .and_then(|()| out.flush())
        .map_err(ReportError::Write)
}

fn keep(args: &ReportArgs, from: u64, to: u64, event: &ReportEvent) -> bool {
    (from..to).contains(&event.time)
        && (args.events.is_empty() || args.events.contains(&event.kind))
        && args.queue.as_deref().is_none_or(|q| q == event.queue)
        && args
            .call_id
            .as_deref()
            .is_none_or(|id| event.call_id.as_deref() == Some(id))
}

fn note_malformed(summary: &mut ReportSummary, line_number: usize, why: &str) {
    summary.malformed += 1;
    if summary.warnings.len() < MAX_WARNINGS {
        summary
            .warnings
            .push(format!("queue_log line {line_number}: {why}"));
    }
}

fn finish_warnings(summary: &mut ReportSummary) {
    let listed = summary.warnings.len() as u64;
    if summary.malformed > listed {
        summary.warnings.push(format!(
            "... and {} more malformed line(s), skipped",
            summary.malformed - listed
        ));
    }
}

/// The table's width budget: a plain terminal.
const TABLE_WIDTH: usize = 80;

/// Pads or cuts `text` to `width` characters (cut text ends in `…`).
fn fit(text: &str, width: usize, right_align: bool) -> String {
    let count = text.chars().count();
    if count > width {
        let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        return cut;
    }
    let padding = " ".repeat(width - count);
    if right_align {
        padding + text
    } else {
        text.to_owned() + &padding
    }
}

fn seconds_cell(value: Option<u32>) -> String {
    value.map(|s| format!("{s}s")).unwrap_or_default()
}

/// The DETAIL column: what else matters for this kind.
fn detail_cell(event: &ReportEvent) -> String {
    let mut parts = Vec::new();
    match event.kind {
        ReportKind::NoAnswer | ReportKind::NoAnswerCallerHangup => {
            if let Some(ms) = event.ring_ms {
                parts.push(format!("rang {}.{}s", ms / 1000, ms % 1000 / 100));
            }
        }
        ReportKind::Connected => {
            if let Some(ms) = event.ring_ms.filter(|ms| *ms > 0) {
                parts.push(format!("rang {} s", ms / 1000));
            }
        }
        ReportKind::EnterQueue
        | ReportKind::CallerQuit
        | ReportKind::ExitEmpty
        | ReportKind::ExitTimeout => {
            if let Some(position) = event.position {
                parts.push(format!("pos {position}"));
            }
        }
        ReportKind::Transfer | ReportKind::BlindTransfer => {
            if let Some(target) = &event.detail {
                parts.push(format!("to {target}"));
            }
            return parts.join(", ");
        }
        _ => {}
    }
    if let Some(detail) = &event.detail {
        parts.push(detail.clone());
    }
    parts.join(", ")
}

/// Events as aligned columns, one date line per UTC day.
fn write_table(events: &[ReportEvent], out: &mut impl Write) -> io::Result<()> {
    let headers = ["TIME", "EVENT", "QUEUE", "AGENT", "CALLER", "WAIT", "TALK"];
    let caps = [8, 23, 12, 12, 16, 6, 6];
    let rows: Vec<[String; 8]> = events
        .iter()
        .map(|event| {
            let time = format_utc(event.time);
            [
                time.get(11..).unwrap_or_default().to_owned(),
                event.kind.name().to_owned(),
                event.queue.clone(),
                event.agent.clone().unwrap_or_default(),
                event.caller.clone().unwrap_or_default(),
                seconds_cell(event.wait_s),
                seconds_cell(event.talk_s),
                detail_cell(event),
            ]
        })
        .collect();
    let mut widths = [0usize; 7];
    for (column, width) in widths.iter_mut().enumerate() {
        let longest = rows
            .iter()
            .map(|row| row[column].chars().count())
            .max()
            .unwrap_or(0)
            .max(headers[column].len());
        *width = longest.min(caps[column]);
    }
    // One space between aligned columns and two before the free-text DETAIL keep a row of
    // typical names within 80 columns; DETAIL gets what is left (at least 12) and is cut.
    let used: usize = widths.iter().map(|w| w + 1).sum::<usize>() + 1;
    let detail_width = TABLE_WIDTH.saturating_sub(used).max(12);
    let right = [false, false, false, false, false, true, true];
    let line = |cells: [&str; 8]| {
        let mut text = String::new();
        for column in 0..7 {
            text.push_str(&fit(cells[column], widths[column], right[column]));
            text.push(' ');
        }
        text.push(' ');
        text.push_str(&fit(cells[7], detail_width, false));
        text.trim_end().to_owned()
    };
    writeln!(
        out,
        "{}",
        line([
            headers[0], headers[1], headers[2], headers[3], headers[4], headers[5], headers[6],
            "DETAIL"
        ])
    )?;
    let mut day = None;
    for (event, row) in events.iter().zip(&rows) {
        let this_day = event.time / DAY_S;
        if day != Some(this_day) {
            day = Some(this_day);
            let date = format_utc(event.time);
            writeln!(out, "{} (UTC)", date.get(..10).unwrap_or_default())?;
        }
        writeln!(
            out,
            "{}",
            line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5], &row[6], &row[7]])
        )?;
    }
    Ok(())
}

fn write_csv(events: &[ReportEvent], out: &mut impl Write) -> io::Result<()> {
    let mut text = String::with_capacity(CSV_HEADER.len() + 2 + events.len() * 120);
    text.push_str(CSV_HEADER);
    text.push_str("\r\n");
    for event in events {
        write_csv_record(event, &mut text);
    }
    out.write_all(text.as_bytes())
}

fn one_decimal(value: Option<f64>) -> Option<f64> {
    value.map(|v| (v * 10.0).round() / 10.0)
}

fn decimal_cell(value: Option<f64>, suffix: &str) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}{suffix}"))
}

/// Seconds as `2h03m`, `2m09s` or `47s`.
fn duration_cell(seconds: u64) -> String {
    match seconds {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

fn write_stats(stats: &Stats, format: ReportFormat, out: &mut impl Write) -> io::Result<()> {
    match format {
        ReportFormat::Json => {
            writeln!(out, "{}", stats_json(stats))?;
        }
        ReportFormat::Csv => write_stats_csv(stats, out)?,
        ReportFormat::Table => write_stats_table(stats, out)?,
    }
    out.flush()
}

/// The statistics as one JSON object: the counters plus the derived rates, rounded to 0.1.
pub fn stats_json(stats: &Stats) -> Value {
    let queues: Vec<Value> = stats
        .queues
        .iter()
        .map(|q| {
            json!({
                "queue": q.queue,
                "offered": q.offered,
                "answered": q.answered,
                "abandoned": q.abandoned,
                "timeouts": q.timeouts,
                "empties": q.empties,
                "open": q.open(),
                "abandon_rate_pct": one_decimal(q.abandon_rate_pct()),
                "service_level_pct": one_decimal(q.service_level_pct()),
                "service_level_with_unanswered_pct": one_decimal(q.service_level_with_unanswered_pct()),
                "average_answer_wait_s": one_decimal(q.average_answer_wait_s()),
                "longest_wait_s": q.longest_wait_s,
                "average_talk_s": one_decimal(q.average_talk_s()),
                "transfers": q.transfers,
                "no_answers": q.no_answers,
            })
        })
        .collect();
    let agents: Vec<Value> = stats
        .agents
        .iter()
        .map(|a| {
            json!({
                "agent": a.agent,
                "calls": a.calls,
                "talk_total_s": a.talk_total_s,
                "average_talk_s": one_decimal(a.average_talk_s()),
                "no_answers": a.no_answers,
                "logged_in_s": a.logged_in_s,
                "paused_s": a.paused_s,
            })
        })
        .collect();
    json!({
        "service_level_s": stats.service_level_s,
        "queues": queues,
        "agents": agents,
    })
}

fn write_stats_csv(stats: &Stats, out: &mut impl Write) -> io::Result<()> {
    let sl = stats.service_level_s;
    let mut text = format!(
        "Queue,Offered,Answered,Abandoned,Timeouts,Empties,Open,Abandon rate (%),Service level {sl}s (%),Service level {sl}s incl. unanswered (%),Average wait (s),Longest wait (s),Average talk (s),Transfers,No answer\r\n"
    );
    let decimal = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_default();
    for q in &stats.queues {
        push_csv_field(&mut text, &q.queue);
        text.push_str(&format!(
            ",{},{},{},{},{},{},{},{},{},{},{},{},{},{}\r\n",
            q.offered,
            q.answered,
            q.abandoned,
            q.timeouts,
            q.empties,
            q.open(),
            decimal(q.abandon_rate_pct()),
            decimal(q.service_level_pct()),
            decimal(q.service_level_with_unanswered_pct()),
            decimal(q.average_answer_wait_s()),
            q.longest_wait_s,
            decimal(q.average_talk_s()),
            q.transfers,
            q.no_answers
        ));
    }
    text.push_str(
        "\r\nAgent,Calls,Talk (s),Average talk (s),No answer,Logged in (s),Paused (s)\r\n",
    );
    for a in &stats.agents {
        push_csv_field(&mut text, &a.agent);
        text.push_str(&format!(
            ",{},{},{},{},{},{}\r\n",
            a.calls,
            a.talk_total_s,
            decimal(a.average_talk_s()),
            a.no_answers,
            a.logged_in_s,
            a.paused_s
        ));
    }
    out.write_all(text.as_bytes())
}

/// Rows of cells as aligned columns: the first column left-aligned, the rest right-aligned.
fn write_columns(rows: &[Vec<String>], out: &mut impl Write) -> io::Result<()> {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|row| row.get(c).map_or(0, |cell| cell.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            line.push_str(&fit(cell, widths.get(c).copied().unwrap_or(0), c > 0));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn write_stats_table(stats: &Stats, out: &mut impl Write) -> io::Result<()> {
    let sl = stats.service_level_s;
    let mut calls = vec![[
        "QUEUE",
        "OFFERED",
        "ANSWERED",
        "ABANDONED",
        "TIMEOUT",
        "EMPTY",
        "OPEN",
        "ABANDON%",
    ]
    .map(str::to_owned)
    .to_vec()];
    let mut times = vec![vec![
        "QUEUE".to_owned(),
        format!("SL {sl}s"),
        "SL+UNANS".to_owned(),
        "AVG WAIT".to_owned(),
        "MAX WAIT".to_owned(),
        "AVG TALK".to_owned(),
        "TRANSFERS".to_owned(),
    ]];
    for q in &stats.queues {
        calls.push(vec![
            q.queue.clone(),
            q.offered.to_string(),
            q.answered.to_string(),
            q.abandoned.to_string(),
            q.timeouts.to_string(),
            q.empties.to_string(),
            q.open().to_string(),
            decimal_cell(q.abandon_rate_pct(), "%"),
        ]);
        times.push(vec![
            q.queue.clone(),
            decimal_cell(q.service_level_pct(), "%"),
            decimal_cell(q.service_level_with_unanswered_pct(), "%"),
            decimal_cell(q.average_answer_wait_s(), "s"),
            format!("{}s", q.longest_wait_s),
            decimal_cell(q.average_talk_s(), "s"),
            q.transfers.to_string(),
        ]);
    }
    let mut agents = vec![[
        "AGENT",
        "CALLS",
        "TALK",
        "AVG TALK",
        "NO ANSWER",
        "LOGGED IN",
        "PAUSED",
    ]
    .map(str::to_owned)
    .to_vec()];
    for a in &stats.agents {
        agents.push(vec![
            a.agent.clone(),
            a.calls.to_string(),
            duration_cell(a.talk_total_s),
            decimal_cell(a.average_talk_s(), "s"),
            a.no_answers.to_string(),
            duration_cell(a.logged_in_s),
            duration_cell(a.paused_s),
        ]);
    }
    write_columns(&calls, out)?;
    writeln!(out)?;
    write_columns(&times, out)?;
    writeln!(out)?;
    write_columns(&agents, out)?;
    writeln!(
        out,
        "\nSL {sl}s: answered within {sl} s / answered (Asterisk's ServicelevelPerf).\n\
         SL+UNANS: also counts callers who left within {sl} s (ServicelevelPerf2).\n\
         AVG WAIT: answered calls; MAX WAIT: all calls; ABANDON%: hang-ups / offered."
    )
}

/// How often a followed file is checked for growth, truncation and rotation.
pub const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// What `ringside events` read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventsSummary {
    pub lines: u64,
    pub events: u64,
    pub malformed: u64,
    /// Times the file was reopened after rotation or read again after truncation.
    pub reopened: u64,
}

/// Malformed lines shown per file (re)open before they are only counted.
const MAX_EVENT_WARNINGS: u64 = 100;
const READ_CHUNK: usize = 64 * 1024;

/// `ringside events`: every report event of the queue_log at `path` as one JSON Lines record
/// on `out`, malformed lines on `warn`. With `follow`, keeps reading what is appended, like
/// `tail -F`: a file that shrinks was truncated (read again from its start), a path that now
/// names another file was rotated (the old one is read to its end, then the new one from its
/// start), and a missing file is waited for. Checks every 200 ms until `stop` is set.
pub fn run_events(
    path: &Path,
    follow: bool,
    out: &mut impl Write,
    warn: &mut impl Write,
    stop: &AtomicBool,
) -> Result<EventsSummary, ReportError> {
    run_events_polling(path, follow, out, warn, stop, FOLLOW_POLL)
}

/// One open queue_log and where we are in it.
struct Tail {
    path: PathBuf,
    file: Option<File>,
    identity: Option<(u64, u64)>,
    offset: u64,
    /// Bytes after the last complete line.
    partial: Vec<u8>,
    line_number: usize,
    warnings_shown: u64,
}

#[cfg(unix)]
fn file_identity(metadata: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
fn file_identity(_metadata: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

impl Tail {
    fn read_error(&self, error: io::Error) -> ReportError {
        ReportError::Read {
            path: self.path.clone(),
            error,
        }
    }

    /// Opens the path from its start; `Ok(false)` when it does not exist (yet).
    fn open(&mut self) -> Result<bool, ReportError> {
        match File::open(&self.path) {
            Ok(file) => {
                let metadata = file.metadata().map_err(|e| self.read_error(e))?;
                self.identity = file_identity(&metadata);
                self.file = Some(file);
                self.offset = 0;
                self.partial.clear();
                self.line_number = 0;
                self.warnings_shown = 0;
                Ok(true)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(self.read_error(error)),
        }
    }

    /// Reads one chunk, appending the lines it completes (each ending in `\n`) to `lines`.
    /// Returns the bytes read: 0 at the current end of the file.
    fn read_chunk(&mut self, lines: &mut Vec<u8>) -> Result<usize, ReportError> {
        let Some(file) = self.file.as_mut() else {
            return Ok(0);
        };
        let mut chunk = [0u8; READ_CHUNK];
        let read = loop {
            match file.read(&mut chunk) {
                Ok(read) => break read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(self.read_error(error)),
            }
        };
        self.offset += read as u64;
        let fresh = chunk.get(..read).unwrap_or_default();
        match fresh.iter().rposition(|b| *b == b'\n') {
            Some(last) => {
                lines.append(&mut self.partial);
                lines.extend_from_slice(fresh.get(..=last).unwrap_or_default());
                self.partial
                    .extend_from_slice(fresh.get(last + 1..).unwrap_or_default());
            }
            None => self.partial.extend_from_slice(fresh),
        }
        Ok(read)
    }

    /// After a quiet read: what happened to the path since it was opened.
    fn check_path(&mut self) -> Result<PathChange, ReportError> {
        let metadata = match std::fs::metadata(&self.path) {
            Ok(metadata) => metadata,
            // Rotated away and not recreated yet: keep the old file until it is.
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(PathChange::Unchanged)
            }
            Err(error) => return Err(self.read_error(error)),
        };
        if self.file.is_none() {
            return Ok(PathChange::Replaced);
        }
        let identity = file_identity(&metadata);
        if identity.is_some() && identity != self.identity {
            return Ok(PathChange::Replaced);
        }
        if metadata.len() < self.offset {
            return Ok(PathChange::Truncated);
        }
        Ok(PathChange::Unchanged)
    }

    /// Reads a truncated file again from its start.
    fn rewind(&mut self) -> Result<(), ReportError> {
        if let Some(file) = self.file.as_mut() {
            if let Err(error) = file.seek(SeekFrom::Start(0)) {
                return Err(self.read_error(error));
            }
        }
        self.offset = 0;
        self.partial.clear();
        self.line_number = 0;
        self.warnings_shown = 0;
        Ok(())
    }
}

/// What [`Tail::check_path`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathChange {
    Unchanged,
    /// Shorter than what we read: copytruncate rotation or a cleared log.
    Truncated,
    /// The path names another file now (rename rotation), or appeared.
    Replaced,
}

/// Turns queue_log lines into JSON Lines on `out` and warnings on `warn`.
struct EventsSink<'w, O, W> {
    out: &'w mut O,
    warn: &'w mut W,
    report: QueueLogReport,
    summary: EventsSummary,
}

impl<O: Write, W: Write> EventsSink<'_, O, W> {
    fn line(&mut self, tail: &mut Tail, bytes: &[u8]) -> Result<(), ReportError> {
        tail.line_number += 1;
        let text = String::from_utf8_lossy(bytes);
        if text.trim_end_matches('\r').is_empty() {
            return Ok(());
        }
        self.summary.lines += 1;
        match parse_line_ref(&text) {
            Ok(line) => {
                if let Some(event) = self.report.handle_line(&line) {
                    self.summary.events += 1;
                    writeln!(self.out, "{}", event.to_json_line()).map_err(ReportError::Write)?;
                }
            }
            Err(error) => {
                self.summary.malformed += 1;
                tail.warnings_shown += 1;
                if tail.warnings_shown <= MAX_EVENT_WARNINGS {
                    writeln!(self.warn, "queue_log line {}: {error}", tail.line_number)
                        .map_err(ReportError::Write)?;
                }
            }
        }
        Ok(())
    }

    fn lines(&mut self, tail: &mut Tail, lines: &[u8]) -> Result<(), ReportError> {
        let Some(body) = lines.strip_suffix(b"\n") else {
            return Ok(());
        };
        body.split(|b| *b == b'\n')
            .try_for_each(|line| self.line(tail, line))
    }
}

fn run_events_polling(
    path: &Path,
    follow: bool,
    out: &mut impl Write,
    warn: &mut impl Write,
    stop: &AtomicBool,
    poll: Duration,
) -> Result<EventsSummary, ReportError> {
    let mut tail = Tail {
        path: path.to_owned(),
        file: None,
        identity: None,
        offset: 0,
        partial: Vec::new(),
        line_number: 0,
        warnings_shown: 0,
    };
    if !tail.open()? {
        if !follow {
            return Err(tail.read_error(io::Error::from(io::ErrorKind::NotFound)));
        }
        writeln!(warn, "waiting for {} to appear", path.display()).map_err(ReportError::Write)?;
    }
    let mut sink = EventsSink {
        out,
        warn,
        report: QueueLogReport::new(),
        summary: EventsSummary::default(),
    };
    let mut lines = Vec::with_capacity(READ_CHUNK);
    let finished = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        lines.clear();
        let read = match tail.read_chunk(&mut lines) {
            Ok(read) => read,
            Err(error) => break Err(error),
        };
        if let Err(error) = sink.lines(&mut tail, &lines) {
            break Err(error);
        }
        if read > 0 {
            continue;
        }
        if !follow {
            // A last line without its newline still counts when we are not waiting for more.
            let partial = std::mem::take(&mut tail.partial);
            if !partial.is_empty() {
                if let Err(error) = sink.line(&mut tail, &partial) {
                    break Err(error);
                }
            }
            break Ok(());
        }
        if let Err(error) = sink.out.flush() {
            break Err(ReportError::Write(error));
        }
        let change = match tail.check_path() {
            Ok(change) => change,
            Err(error) => break Err(error),
        };
        let reopened = match change {
            PathChange::Unchanged => {
                std::thread::sleep(poll);
                continue;
            }
            PathChange::Truncated => tail.rewind(),
            PathChange::Replaced => {
                // The writer may have appended to the old file after our last read.
                match drain(&mut tail, &mut sink) {
                    Ok(()) => tail.open().map(|_| ()),
                    Err(error) => Err(error),
                }
            }
        };
        match reopened {
            Ok(()) => sink.summary.reopened += 1,
            Err(error) => break Err(error),
        }
    };
    match finished {
        Ok(()) => {}
        // `ringside events | head` closes the pipe: that is a normal end.
        Err(ReportError::Write(error)) if error.kind() == io::ErrorKind::BrokenPipe => {}
        Err(error) => return Err(error),
    }
    match sink.out.flush() {
        Err(error) if error.kind() != io::ErrorKind::BrokenPipe => Err(ReportError::Write(error)),
        _ => Ok(sink.summary),
    }
}

/// Reads the open file to its end.
fn drain<O: Write, W: Write>(
    tail: &mut Tail,
    sink: &mut EventsSink<'_, O, W>,
) -> Result<(), ReportError> {
    let mut lines = Vec::new();
    loop {
        lines.clear();
        let read = tail.read_chunk(&mut lines)?;
        sink.lines(tail, &lines)?;
        if read == 0 {
            return Ok(());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// AMI sources

/// The environment variable read for the AMI user when `--ami-user` is not given.
pub const AMI_USER_ENV: &str = "RINGSIDE_AMI_USER";
/// The environment variable read for the AMI secret, so it need not be typed on the command
/// line (where `ps` and the shell history would show it).
pub const AMI_SECRET_ENV: &str = "RINGSIDE_AMI_SECRET";
/// From connecting to a complete snapshot.
pub const AMI_SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(20);

/// The AMI user (a `[user]` section of manager.conf) and its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmiCredentials {
    pub user: String,
    pub secret: Secret,
}

impl AmiCredentials {
    /// `--ami-user` / `--ami-secret` when given, else `RINGSIDE_AMI_USER` /
    /// `RINGSIDE_AMI_SECRET`.
    pub fn resolve(user: Option<&str>, secret: Option<&str>) -> Result<Self, ReportError> {
        let user = user
            .map(str::to_owned)
            .or_else(|| std::env::var(AMI_USER_ENV).ok())
            .filter(|user| !user.trim().is_empty())
            .ok_or(ReportError::NoAmiUser)?;
        let secret = secret
            .map(str::to_owned)
            .or_else(|| std::env::var(AMI_SECRET_ENV).ok())
            .ok_or(ReportError::NoAmiSecret)?;
        Ok(Self {
            user: user.trim().to_owned(),
            secret: Secret::new(secret),
        })
    }
}

/// `ringside report --ami HOST:PORT` with the system clock.
pub async fn run_report_ami(
    args: &ReportArgs,
    credentials: &AmiCredentials,
    out: &mut impl Write,
) -> Result<ReportSummary, ReportError> {
    run_report_ami_at(args, credentials, now_epoch(), out).await
}

/// `ringside report --ami HOST:PORT`: logs in, takes the QueueStatus + QueueSummary snapshot,
/// logs off and prints the queues, the waiting callers and the agents with their state (or,
/// with `--stats`, Asterisk's own counters from QueueSummary and QueueParams). `--queue`
/// narrows it to one queue; `now_epoch` is the clock for the waits.
///
/// The JSON form is one object: `{"time", "queues": [{"queue", "strategy", "max_callers",
/// "service_level_s", "completed", "abandoned", "members", "callers": [{"position",
/// "call_id", "channel", "caller_id_num", "caller_id_name", "wait_s"}]}], "agents": [{"agent",
/// "interface", "state", "pause_reason", "static", "queues", "calls_taken", "last_call",
/// "login_time"}]}` (times in epoch seconds); with `--stats`: `{"time", "queues": [{"queue",
/// "logged_in", "available", "callers", "hold_time_s", "talk_time_s", "longest_hold_time_s",
/// "completed", "abandoned", "service_level_s", "service_level_pct"}]}`.
pub async fn run_report_ami_at(
    args: &ReportArgs,
    credentials: &AmiCredentials,
    now_epoch: u64,
    out: &mut impl Write,
) -> Result<ReportSummary, ReportError> {
    let Some(addr) = &args.ami else {
        return Err(ReportError::NoSource);
    };
    let flags = [
        (args.from.is_some(), "--from"),
        (args.to.is_some(), "--to"),
        (args.period.is_some(), "--period"),
        (!args.events.is_empty(), "--event"),
        (args.call_id.is_some(), "--call-id"),
    ];
    if args.queue_log.is_some() {
        return Err(ReportError::TwoSources);
    }
    check_csv_alone(args)?;
    if let Some((_, flag)) = flags.iter().find(|(given, _)| *given) {
        return Err(ReportError::AmiSnapshotOnly { flag });
    }
    let mut config = AmiConfig::new(
        addr.clone(),
        credentials.user.clone(),
        credentials.secret.clone(),
    );
    config.events = EventsFilter::Off;
    config.reconnect = false;
    let monitor = take_snapshot(config, now_epoch, AMI_SNAPSHOT_TIMEOUT).await?;
    let queue = args.queue.as_deref();
    let written = match (args.stats, args.format) {
        (false, ReportFormat::Table) => write_model_table(monitor.state(), queue, now_epoch, out),
        (false, ReportFormat::Csv) => write_model_csv(monitor.state(), queue, now_epoch, out),
        (false, ReportFormat::Json) => {
            writeln!(out, "{}", model_json(monitor.state(), queue, now_epoch))
        }
        (true, ReportFormat::Table) => write_ami_stats_table(&monitor, queue, out),
        (true, ReportFormat::Csv) => write_ami_stats_csv(&monitor, queue, out),
        (true, ReportFormat::Json) => {
            writeln!(out, "{}", ami_stats_json(&monitor, queue, now_epoch))
        }
    };
    written
        .and_then(|()| out.flush())
        .map_err(ReportError::Write)?;
    Ok(ReportSummary::default())
}

/// Connects once, waits for the snapshot, logs off.
async fn take_snapshot(
    config: AmiConfig,
    now_epoch: u64,
    limit: Duration,
) -> Result<QueueMonitor, ReportError> {
    let addr = config.addr.clone();
    let mut handle = spawn_ami(config);
    let mut monitor = QueueMonitor::new();
    let waited = tokio::time::timeout(limit, async {
        while let Some(event) = handle.next_event().await {
            if let AmiClientEvent::Snapshot(_) = &event {
                // A malformed list line is skipped; the rest of the model is still right.
                let _ = monitor.handle(now_epoch, &event);
                return true;
            }
        }
        false
    })
    .await;
    match waited {
        Ok(true) => {
            handle.shutdown().await.ok();
            Ok(monitor)
        }
        // The driver stopped: its error says why (refused, rejected login, closed).
        Ok(false) => match handle.join().await {
            Err(error) => Err(error.into()),
            Ok(()) => Err(AmiError::Lost {
                addr,
                reason: "it closed before the queue snapshot was complete".to_owned(),
            }
            .into()),
        },
        Err(_) => {
            handle.shutdown().await.ok();
            Err(AmiError::Timeout {
                addr,
                context: "QueueStatus + QueueSummary".to_owned(),
                seconds: limit.as_secs(),
            }
            .into())
        }
    }
}

fn agent_state_text(state: &AgentState) -> String {
    match state {
        AgentState::Available => "available".to_owned(),
        AgentState::Ringing => "ringing".to_owned(),
        AgentState::Busy => "busy".to_owned(),
        AgentState::OnHold => "on hold".to_owned(),
        AgentState::Paused { reason } if reason.is_empty() => "paused".to_owned(),
        AgentState::Paused { reason } => format!("paused ({reason})"),
        AgentState::Unavailable => "unavailable".to_owned(),
        AgentState::LoggedOut => "logged out".to_owned(),
    }
}

fn in_queue(wanted: Option<&str>, queue: &str) -> bool {
    wanted.is_none_or(|wanted| wanted == queue)
}

/// The model as rows: queues, waiting callers, agents (each with its header row).
fn model_rows(state: &QueueState, queue: Option<&str>, now_epoch: u64) -> [Vec<Vec<String>>; 3] {
    let mut queues = vec![[
        "QUEUE",
        "STRATEGY",
        "WAITING",
        "LONGEST",
        "MEMBERS",
        "COMPLETED",
        "ABANDONED",
        "SL",
    ]
    .map(str::to_owned)
    .to_vec()];
    let mut callers = vec![["QUEUE", "POS", "CALLER", "NAME", "WAIT", "CALL ID"]
        .map(str::to_owned)
        .to_vec()];
    for q in state.queues().filter(|q| in_queue(queue, &q.name)) {
        queues.push(vec![
            q.name.clone(),
            q.strategy.clone(),
            q.callers.len().to_string(),
            duration_cell(q.longest_wait_s(now_epoch)),
            q.members.len().to_string(),
            q.completed.to_string(),
            q.abandoned.to_string(),
            q.service_level_s
                .map(|s| format!("{s}s"))
                .unwrap_or_default(),
        ]);
        for caller in &q.callers {
            callers.push(vec![
                q.name.clone(),
                caller.position.to_string(),
                caller.caller_id_num.clone(),
                caller.caller_id_name.clone(),
                duration_cell(caller.wait_s(now_epoch)),
                caller.call_id.clone(),
            ]);
        }
    }
    let mut agents = vec![[
        "AGENT",
        "INTERFACE",
        "STATE",
        "QUEUES",
        "MEMBER",
        "CALLS",
        "LAST CALL",
    ]
    .map(str::to_owned)
    .to_vec()];
    for agent in state.agents() {
        if !agent.memberships.iter().any(|m| in_queue(queue, &m.queue)) {
            continue;
        }
        let queues: Vec<&str> = agent.memberships.iter().map(|m| m.queue.as_str()).collect();
        agents.push(vec![
            agent.name.clone(),
            agent.interface.clone(),
            agent_state_text(&agent.state()),
            queues.join(","),
            if agent.is_static() {
                "static"
            } else {
                "dynamic"
            }
            .to_owned(),
            agent.calls_taken().to_string(),
            agent.last_call().map(format_utc).unwrap_or_default(),
        ]);
    }
    [queues, callers, agents]
}

/// Aligned columns; `right` marks the right-aligned ones.
fn write_aligned(rows: &[Vec<String>], right: &[bool], out: &mut impl Write) -> io::Result<()> {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|row| row.get(c).map_or(0, |cell| cell.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            let width = widths.get(c).copied().unwrap_or(0);
            line.push_str(&fit(cell, width, right.get(c).copied().unwrap_or(false)));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn write_model_table(
    state: &QueueState,
    queue: Option<&str>,
    now_epoch: u64,
    out: &mut impl Write,
) -> io::Result<()> {
    let [queues, callers, agents] = model_rows(state, queue, now_epoch);
    writeln!(out, "Queues at {} (UTC)", format_utc(now_epoch))?;
    write_aligned(
        &queues,
        &[false, false, true, true, true, true, true, true],
        out,
    )?;
    writeln!(out)?;
    if callers.len() > 1 {
        write_aligned(&callers, &[false, true, false, false, true, false], out)?;
    } else {
        writeln!(out, "No caller is waiting.")?;
    }
    writeln!(out)?;
    if agents.len() > 1 {
        write_aligned(
            &agents,
            &[false, false, false, false, false, true, false],
            out,
        )
    } else {
        writeln!(out, "No agent is logged in.")
    }
}

fn write_csv_rows(rows: &[Vec<String>], text: &mut String) {
    for row in rows {
        for (index, cell) in row.iter().enumerate() {
            if index > 0 {
                text.push(',');
            }
            push_csv_field(text, cell);
        }
        text.push_str("\r\n");
    }
}

fn write_model_csv(
    state: &QueueState,
    queue: Option<&str>,
    now_epoch: u64,
    out: &mut impl Write,
) -> io::Result<()> {
    let sections = model_rows(state, queue, now_epoch);
    let mut text = String::new();
    for (index, rows) in sections.iter().enumerate() {
        if index > 0 {
            text.push_str("\r\n");
        }
        write_csv_rows(rows, &mut text);
    }
    out.write_all(text.as_bytes())
}

/// The model as the JSON object documented on [`run_report_ami_at`].
pub fn model_json(state: &QueueState, queue: Option<&str>, now_epoch: u64) -> Value {
    let queues: Vec<Value> = state
        .queues()
        .filter(|q| in_queue(queue, &q.name))
        .map(|q| {
            let callers: Vec<Value> = q
                .callers
                .iter()
                .map(|c| {
                    json!({
                        "position": c.position,
                        "call_id": c.call_id,
                        "channel": c.channel,
                        "caller_id_num": c.caller_id_num,
                        "caller_id_name": c.caller_id_name,
                        "wait_s": c.wait_s(now_epoch),
                    })
                })
                .collect();
            json!({
                "queue": q.name,
                "strategy": q.strategy,
                "max_callers": q.max_callers,
                "service_level_s": q.service_level_s,
                "completed": q.completed,
                "abandoned": q.abandoned,
                "members": q.members,
                "callers": callers,
            })
        })
        .collect();
    let agents: Vec<Value> = state
        .agents()
        .filter(|a| a.memberships.iter().any(|m| in_queue(queue, &m.queue)))
        .map(|a| {
            let state = a.state();
            let pause_reason = match &state {
                AgentState::Paused { reason } => Some(reason.clone()),
                _ => None,
            };
            let queues: Vec<&str> = a.memberships.iter().map(|m| m.queue.as_str()).collect();
            json!({
                "agent": a.name,
                "interface": a.interface,
                "state": match state {
                    AgentState::Available => "available",
                    AgentState::Ringing => "ringing",
                    AgentState::Busy => "busy",
                    AgentState::OnHold => "on-hold",
                    AgentState::Paused { .. } => "paused",
                    AgentState::Unavailable => "unavailable",
                    AgentState::LoggedOut => "logged-out",
                },
                "pause_reason": pause_reason,
                "static": a.is_static(),
                "queues": queues,
                "calls_taken": a.calls_taken(),
                "last_call": a.last_call(),
                "login_time": a.login_time(),
            })
        })
        .collect();
    json!({ "time": now_epoch, "queues": queues, "agents": agents })
}

/// One row per queue: QueueSummary's counts with QueueParams' counters and service level.
/// `plain` writes bare numbers (seconds, percent) for CSV.
fn ami_stats_rows(monitor: &QueueMonitor, queue: Option<&str>, plain: bool) -> Vec<Vec<String>> {
    let number = |value: Option<u64>| value.map(|v| v.to_string()).unwrap_or_default();
    let seconds = |value: Option<u64>| match value {
        Some(v) if plain => v.to_string(),
        Some(v) => duration_cell(v),
        None => String::new(),
    };
    let level = |value: Option<u64>| match value {
        Some(v) if plain => v.to_string(),
        Some(v) => format!("{v}s"),
        None => String::new(),
    };
    let percent = |value: Option<f64>| match value {
        Some(v) if plain => format!("{v:.1}"),
        Some(_) => decimal_cell(value, "%"),
        None => String::new(),
    };
    let mut rows = vec![[
        "QUEUE",
        "LOGGED IN",
        "AVAILABLE",
        "CALLERS",
        "AVG HOLD",
        "AVG TALK",
        "LONGEST HOLD",
        "COMPLETED",
        "ABANDONED",
        "SL",
        "SL%",
    ]
    .map(str::to_owned)
    .to_vec()];
    for summary in monitor
        .summaries()
        .iter()
        .filter(|s| in_queue(queue, &s.queue))
    {
        let params = monitor.params().iter().find(|p| p.queue == summary.queue);
        rows.push(vec![
            summary.queue.clone(),
            number(summary.logged_in),
            number(summary.available),
            number(summary.callers),
            seconds(summary.hold_time_s),
            seconds(summary.talk_time_s),
            seconds(summary.longest_hold_time_s),
            number(params.and_then(|p| p.completed)),
            number(params.and_then(|p| p.abandoned)),
            level(params.and_then(|p| p.service_level_s)),
            percent(params.and_then(|p| p.service_level_perf)),
        ]);
    }
    rows
}

fn write_ami_stats_table(
    monitor: &QueueMonitor,
    queue: Option<&str>,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut right = [true; 11];
    right[0] = false;
    write_aligned(&ami_stats_rows(monitor, queue, false), &right, out)?;
    writeln!(
        out,
        "\nAsterisk's own counters since its last reset: AVG HOLD / AVG TALK are its running\n\
         averages, ABANDONED counts hang-ups, timeouts and empty-queue exits together, SL% is\n\
         ServicelevelPerf (answered within SL / answered)."
    )
}

fn write_ami_stats_csv(
    monitor: &QueueMonitor,
    queue: Option<&str>,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut text = String::new();
    write_csv_rows(&ami_stats_rows(monitor, queue, true), &mut text);
    out.write_all(text.as_bytes())
}

/// The `--stats --format json` object documented on [`run_report_ami_at`].
pub fn ami_stats_json(monitor: &QueueMonitor, queue: Option<&str>, now_epoch: u64) -> Value {
    let queues: Vec<Value> = monitor
        .summaries()
        .iter()
        .filter(|s| in_queue(queue, &s.queue))
        .map(|s| {
            let params = monitor.params().iter().find(|p| p.queue == s.queue);
            json!({
                "queue": s.queue,
                "logged_in": s.logged_in,
                "available": s.available,
                "callers": s.callers,
                "hold_time_s": s.hold_time_s,
                "talk_time_s": s.talk_time_s,
                "longest_hold_time_s": s.longest_hold_time_s,
                "completed": params.and_then(|p| p.completed),
                "abandoned": params.and_then(|p| p.abandoned),
                "service_level_s": params.and_then(|p| p.service_level_s),
                "service_level_pct": one_decimal(params.and_then(|p| p.service_level_perf)),
            })
        })
        .collect();
    json!({ "time": now_epoch, "queues": queues })
}

/// `ringside events --ami HOST:PORT`: the report events derived from the live AMI events, as
/// JSON Lines on `out` (the same schema as from a queue_log), until the AMI rejects the login
/// or the process is stopped (Ctrl-C). The connection is kept up: reconnects with backoff
/// and a full resync. Connection news goes to `warn`.
pub async fn run_events_ami(
    addr: &str,
    credentials: &AmiCredentials,
    out: &mut impl Write,
    warn: &mut impl Write,
) -> Result<EventsSummary, ReportError> {
    let config = AmiConfig::new(addr, credentials.user.clone(), credentials.secret.clone());
    run_events_ami_with(config, out, warn, std::future::pending()).await
}

/// [`run_events_ami`] with an explicit driver config, ending when `stop` completes. In the
/// summary `lines` counts live AMI events, `reopened` the resyncs after reconnecting.
pub async fn run_events_ami_with(
    config: AmiConfig,
    out: &mut impl Write,
    warn: &mut impl Write,
    stop: impl std::future::Future<Output = ()>,
) -> Result<EventsSummary, ReportError> {
    let addr = config.addr.clone();
    let mut handle = spawn_ami(config);
    let mut monitor = QueueMonitor::new();
    let mut summary = EventsSummary::default();
    tokio::pin!(stop);
    let ended: Result<(), ReportError> = loop {
        let event = tokio::select! {
            () = &mut stop => break Ok(()),
            event = handle.next_event() => event,
        };
        let Some(event) = event else {
            // The driver stopped by itself: a rejected login.
            return match handle.join().await {
                Ok(()) => Ok(summary),
                Err(error) => Err(error.into()),
            };
        };
        let note = match &event {
            AmiClientEvent::Connected { banner } => Some(format!("connected ({banner})")),
            AmiClientEvent::Snapshot(_) => {
                if monitor.snapshots() > 0 {
                    summary.reopened += 1;
                }
                None
            }
            AmiClientEvent::Event(_) => {
                summary.lines += 1;
                None
            }
            AmiClientEvent::Disconnected { reason } => Some(reason.clone()),
            AmiClientEvent::Retrying { after, reason } => Some(format!(
                "{reason}; retrying in {:.1} s",
                after.as_secs_f64()
            )),
            AmiClientEvent::Problem { message } => Some(message.clone()),
            AmiClientEvent::LoggedIn
            | AmiClientEvent::LoginFailed { .. }
            | AmiClientEvent::ActionResult { .. } => None,
        };
        if let Some(note) = note {
            if let Err(error) = writeln!(warn, "AMI {addr}: {note}") {
                break Err(ReportError::Write(error));
            }
        }
        if let Err(error) = monitor.handle(now_epoch(), &event) {
            summary.malformed += 1;
            if summary.malformed <= MAX_EVENT_WARNINGS {
                if let Err(error) = writeln!(warn, "AMI {addr}: {error}") {
                    break Err(ReportError::Write(error));
                }
            }
        }
        let mut written = Ok(());
        while let Some(report) = monitor.poll_report() {
            summary.events += 1;
            written = writeln!(out, "{}", report.to_json_line());
            if written.is_err() {
                break;
            }
        }
        if let Err(error) = written.and_then(|()| out.flush()) {
            break Err(ReportError::Write(error));
        }
    };
    handle.shutdown().await.ok();
    match ended {
        // `ringside events --ami | head` closes the pipe: that is a normal end.
        Err(ReportError::Write(error)) if error.kind() == io::ErrorKind::BrokenPipe => Ok(summary),
        Err(error) => Err(error),
        Ok(()) => Ok(summary),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/asterisk/queue_log/full.log")
    }

    fn report(args: &ReportArgs) -> (String, ReportSummary) {
        let mut out = Vec::new();
        let summary = run_report_at(args, 1_795_259_540, &mut out).expect("report runs");
        (String::from_utf8(out).expect("utf-8"), summary)
    }

    fn fixture_args() -> ReportArgs {
        ReportArgs {
            queue_log: Some(fixture()),
            ..ReportArgs::default()
        }
    }

    const TABLE: &str = "\
TIME     EVENT                   QUEUE   AGENT  CALLER  WAIT TALK  DETAIL
2026-11-21 (UTC)
11:12:25 agent-connect           support agent1
11:12:28 agent-disconnect        support agent1
11:12:32 agent-connect           support agent1
11:12:37 enter-queue             support        caller1            pos 1
11:12:37 connected               support agent1 caller1   0s
11:12:41 caller-hangup           support agent1 caller1   0s   4s
11:12:46 enter-queue             support        caller1            pos 1
11:12:46 connected               support agent1 caller1   0s
11:12:49 agent-hangup            support agent1 caller1   0s   3s
11:12:51 agent-connect           support agent2
11:12:56 enter-queue             support        caller1            pos 1
11:13:11 no-answer               support agent1 caller1            rang 15.0s
11:13:13 connected               support agent2 caller1  17s
11:13:17 caller-hangup           support agent2 caller1  17s   4s
11:13:20 agent-disconnect        support agent2
11:13:24 enter-queue             support        caller1            pos 1
11:13:25 connected               support agent1 caller1   1s
11:13:27 blind-transfer          support agent1 caller1   1s   2s  to 1002@lab
11:13:38 enter-queue             support        caller1            pos 1
11:13:39 connected               support agent1 caller1   1s
11:13:44 transfer                support agent1 caller1   1s   5s  to bridge:03…
11:13:56 enter-queue             support        caller1            pos 1
11:14:00 no-answer-caller-hangup support agent1 caller1            rang 4.5s
11:14:00 caller-quit             support        caller1   4s       pos 1
11:14:04 agent-connect           support agent2
11:14:06 pause                   support agent2                    coffee-break
11:14:07 enter-queue             support        caller1            pos 1
11:14:15 no-answer-caller-hangup support agent1 caller1            rang 8.5s
11:14:15 caller-quit             support        caller1   8s       pos 1
11:14:16 unpause                 support agent2
11:14:17 agent-disconnect        support agent1
11:14:19 agent-disconnect        support agent2
11:14:23 enter-queue             support        caller1            pos 1
11:14:27 caller-quit             support        caller1   4s       pos 1
11:14:31 enter-queue             support        caller1            pos 1
11:14:41 exit-timeout            support        caller1  10s       pos 1
11:14:44 enter-queue             empty          caller1            pos 1
11:14:44 exit-empty              empty          caller1   0s       pos 1
11:14:47 agent-connect           support agent1
11:14:51 pause                   support agent1                    lab-pause
11:14:53 unpause                 support agent1                    lab-unpause
11:14:57 pause                   support agent1                    lunch
11:14:58 unpause                 support agent1
11:15:01 agent-connect           support agent2
11:15:02 pause                   support agent2                    supervisor-h…
11:15:03 unpause                 support agent2
11:15:04 agent-disconnect        support agent2
11:15:08 agent-disconnect        support agent1
48 event(s); 52 line(s) read, 0 malformed
";

    #[test]
    fn the_table_over_the_fixture() {
        let (table, summary) = report(&fixture_args());
        assert_eq!(table, TABLE);
        assert!(table.lines().all(|line| line.chars().count() <= 80));
        assert_eq!(
            summary,
            ReportSummary {
                lines: 52,
                malformed: 0,
                events_shown: 48,
                warnings: Vec::new(),
            }
        );
    }

    #[test]
    fn the_csv_export_over_the_fixture() {
        let args = ReportArgs {
            format: ReportFormat::Csv,
            ..fixture_args()
        };
        let (csv, _) = report(&args);
        let rows: Vec<&str> = csv.split_terminator("\r\n").collect();
        assert_eq!(rows.len(), 49, "header + 48 events");
        assert_eq!(rows[0], CSV_HEADER);
        let fields = |row: &str| {
            let mut quoted = false;
            1 + row
                .chars()
                .filter(|c| {
                    if *c == '"' {
                        quoted = !quoted;
                    }
                    *c == ',' && !quoted
                })
                .count()
        };
        assert!(rows.iter().all(|row| fields(row) == 12));
        assert_eq!(
            rows[23],
            "2026-11-21 11:14:00,\"No one is answering, the caller hangs up\",no-answer-caller-hangup,support,ringside-lab-1795259635.19,agent1,caller1,,,4502,,"
        );
        assert_eq!(
            rows[1],
            "2026-11-21 11:12:25,An agent is connecting,agent-connect,support,ringside-lab-1795259544.0,agent1,,,,,,"
        );
        assert_eq!(
            rows[12],
            "2026-11-21 11:13:11,No one is answering,no-answer,support,ringside-lab-1795259575.8,agent1,caller1,,,15000,,"
        );
        assert_eq!(
            rows[21],
            "2026-11-21 11:13:44,Transfer,transfer,support,ringside-lab-1795259618.15,agent1,caller1,1,5,,1,bridge:03575afb-bad5-4209-b224-321cda7d81f0"
        );
        assert_eq!(
            rows[24],
            "2026-11-21 11:14:00,The caller quit,caller-quit,support,ringside-lab-1795259635.19,,caller1,4,,,1,"
        );
        assert_eq!(
            rows[26],
            "2026-11-21 11:14:06,An agent is pausing,pause,support,,agent2,,,,,,coffee-break"
        );
        assert!(!csv.contains('\n') || csv.matches('\n').count() == csv.matches("\r\n").count());
    }

    #[test]
    fn json_lines_read_back_as_the_same_events() {
        let args = ReportArgs {
            format: ReportFormat::Json,
            ..fixture_args()
        };
        let (json, _) = report(&args);
        let text = std::fs::read_to_string(fixture()).expect("fixture");
        let mut deriver = QueueLogReport::new();
        let expected: Vec<ReportEvent> = lines_ref(&text)
            .filter_map(|(_, line)| deriver.handle_line(&line.expect("well formed")))
            .collect();
        let got: Vec<ReportEvent> = json
            .lines()
            .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
            .collect();
        assert_eq!(got, expected);
        let keys: Vec<String> = serde_json::from_str::<serde_json::Map<String, Value>>(
            json.lines().next().expect("a line"),
        )
        .expect("object")
        .keys()
        .cloned()
        .collect();
        let mut schema = [
            "time", "event", "queue", "call_id", "agent", "caller", "wait_s", "talk_s", "ring_ms",
            "position", "detail",
        ]
        .map(str::to_owned)
        .to_vec();
        schema.sort();
        let mut keys = keys;
        keys.sort();
        assert_eq!(keys, schema, "every key is always present");
    }

    fn kinds_and_times(args: &ReportArgs) -> Vec<(String, u64)> {
        let args = ReportArgs {
            format: ReportFormat::Json,
            ..args.clone()
        };
        let (json, _) = report(&args);
        json.lines()
            .map(|line| {
                let event: ReportEvent = serde_json::from_str(line).expect("event");
                (event.kind.name().to_owned(), event.time)
            })
            .collect()
    }

    #[test]
    fn filters_by_kind_queue_call_and_time() {
        let kinds = parse_event_kinds(&["caller-quit,exit-timeout".into(), "exit-empty".into()])
            .expect("known kinds");
        let only = ReportArgs {
            events: kinds,
            ..fixture_args()
        };
        assert_eq!(
            kinds_and_times(&only),
            [
                ("caller-quit".to_owned(), 1_795_259_640),
                ("caller-quit".to_owned(), 1_795_259_655),
                ("caller-quit".to_owned(), 1_795_259_667),
                ("exit-timeout".to_owned(), 1_795_259_681),
                ("exit-empty".to_owned(), 1_795_259_684),
            ]
        );
        let queue = ReportArgs {
            queue: Some("empty".into()),
            ..fixture_args()
        };
        assert_eq!(kinds_and_times(&queue).len(), 2);
        let call = ReportArgs {
            call_id: Some("ringside-lab-1795259575.8".into()),
            ..fixture_args()
        };
        let kinds: Vec<String> = kinds_and_times(&call).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            kinds,
            ["enter-queue", "no-answer", "connected", "caller-hangup"]
        );
        let window = ReportArgs {
            from: Some(parse_time("2026-11-21T11:14:50Z").expect("time")),
            to: Some(parse_time("2026-11-21 11:15:00").expect("time")),
            ..fixture_args()
        };
        let kinds: Vec<String> = kinds_and_times(&window)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(kinds, ["pause", "unpause", "pause", "unpause"]);
        assert_eq!(parse_event_kinds(&["all".into()]).expect("all"), Vec::new());
        assert_eq!(parse_event_kinds(&[]).expect("none"), Vec::new());
        let error = parse_event_kinds(&["pause,hangup".into()]).expect_err("unknown");
        assert!(error.to_string().contains("\"hangup\""), "{error}");
    }

    #[test]
    fn named_periods_in_utc() {
        // 2026-11-21 11:12:20 UTC is a Saturday.
        let now = 1_795_259_540;
        let day = |text: &str| parse_time(text).expect("date");
        assert_eq!(
            Period::Today.range(now),
            (day("2026-11-21"), day("2026-11-22"))
        );
        assert_eq!(
            Period::Yesterday.range(now),
            (day("2026-11-20"), day("2026-11-21"))
        );
        assert_eq!(
            Period::ThisWeek.range(now),
            (day("2026-11-16"), day("2026-11-23"))
        );
        assert_eq!(
            Period::LastWeek.range(now),
            (day("2026-11-09"), day("2026-11-16"))
        );
        assert_eq!(
            Period::ThisMonth.range(now),
            (day("2026-11-01"), day("2026-12-01"))
        );
        let new_year_eve = day("2026-12-31") + 86_399;
        assert_eq!(
            Period::ThisMonth.range(new_year_eve),
            (day("2026-12-01"), day("2027-01-01"))
        );
        let monday = day("2026-11-16");
        assert_eq!(Period::ThisWeek.range(monday), (monday, day("2026-11-23")));
        assert_eq!(Period::Today.range(0), (0, 86_400));
        assert_eq!(
            Period::ThisWeek.range(0),
            (0, 7 * 86_400),
            "no underflow before 1970-01-05"
        );
        assert_eq!(Period::LastWeek.range(0), (0, 0));
        let _ = Period::ThisMonth.range(u64::MAX);
        assert_eq!(
            "This-Week".parse::<Period>().expect("name"),
            Period::ThisWeek
        );
        assert!("fortnight".parse::<Period>().is_err());

        let today = ReportArgs {
            period: Some(Period::Today),
            ..fixture_args()
        };
        let mut out = Vec::new();
        let summary = run_report_at(&today, now, &mut out).expect("runs");
        assert_eq!(
            summary.events_shown, 48,
            "the whole fixture is on 2026-11-21"
        );
        let summary = run_report_at(&today, now + 86_400, &mut Vec::new()).expect("runs");
        assert_eq!(summary.events_shown, 0, "nothing the next day");
    }

    #[test]
    fn times_on_the_command_line() {
        assert_eq!(parse_time("1795259540").expect("epoch"), 1_795_259_540);
        assert_eq!(
            parse_time("2026-11-21T11:12:20Z").expect("iso"),
            1_795_259_540
        );
        assert_eq!(
            parse_time("2026-11-21 11:12").expect("no seconds"),
            1_795_259_520
        );
        assert_eq!(parse_time("2026-11-21").expect("date"), 1_795_219_200);
        assert_eq!(parse_time_end("2026-11-21").expect("date"), 1_795_305_600);
        assert_eq!(
            parse_time_end("2026-11-21T11:12:20").expect("time"),
            1_795_259_540
        );
        for bad in [
            "",
            "yesterday",
            "2026-02-30",
            "2026-13-01",
            "2026-11-21T24:00",
            "2026-11-21T11:60",
            "2026-11",
            "-5",
            "99999999999999999999999",
            "2026-11-21T11:12:20:01",
            "１２",
        ] {
            let error = parse_time(bad).expect_err(bad);
            assert!(
                error.to_string().contains("epoch seconds"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn argument_errors_say_what_to_do() {
        let ami = ReportArgs {
            ami: Some("127.0.0.1:5038".into()),
            ..fixture_args()
        };
        // The period filters do not apply to a snapshot (checked before connecting).
        let credentials = AmiCredentials {
            user: "console".into(),
            secret: Secret::new("x"),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let error = runtime
            .block_on(run_report_ami_at(
                &ReportArgs {
                    ami: ami.ami.clone(),
                    period: Some(Period::Today),
                    ..ReportArgs::default()
                },
                &credentials,
                0,
                &mut Vec::new(),
            ))
            .expect_err("snapshot only");
        assert_eq!(
            error.to_string(),
            "--period applies to --queue-log: --ami shows the queues as they are now (use `ringside events --ami` for live events)"
        );
        let error = runtime
            .block_on(run_report_ami_at(&ami, &credentials, 0, &mut Vec::new()))
            .expect_err("two sources");
        assert_eq!(
            error.to_string(),
            "--queue-log and --ami are two sources: give one of them"
        );
        let given = AmiCredentials::resolve(Some(" console "), Some("s")).expect("given");
        assert_eq!(given.user, "console");
        assert_eq!(
            format!("{given:?}"),
            "AmiCredentials { user: \"console\", secret: Secret(***) }"
        );
        let none = ReportArgs::default();
        let error = run_report_at(&none, 0, &mut Vec::new()).expect_err("no source");
        assert!(error.to_string().contains("--queue-log FILE"));
        let both = ReportArgs {
            period: Some(Period::Today),
            from: Some(1),
            ..fixture_args()
        };
        assert!(matches!(
            run_report_at(&both, 0, &mut Vec::new()),
            Err(ReportError::PeriodWithRange)
        ));
        let backwards = ReportArgs {
            from: Some(10),
            to: Some(10),
            ..fixture_args()
        };
        let error = run_report_at(&backwards, 0, &mut Vec::new()).expect_err("empty");
        assert!(error.to_string().contains("1970-01-01 00:00:10"), "{error}");
        let missing = ReportArgs {
            queue_log: Some(PathBuf::from("/nonexistent/queue_log")),
            ..ReportArgs::default()
        };
        let error = run_report_at(&missing, 0, &mut Vec::new()).expect_err("missing");
        assert!(
            error
                .to_string()
                .starts_with("cannot read /nonexistent/queue_log: "),
            "{error}"
        );
    }

    /// A unique scratch path for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ringside-report-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn malformed_lines_are_warnings_with_line_numbers() {
        let dir = scratch("malformed");
        let path = dir.join("queue_log");
        let mut text = String::from(
            "1795259557|c1|support|NONE|ENTERQUEUE||caller1|1\n\
             garbage\n\
             \n\
             abc|c1|support|agent1|CONNECT|0|x|0\n\
             1795259561|c1|support|agent1|COMPLETECALLER|0|4|1\n",
        );
        for _ in 0..30 {
            text.push_str("1|2\n");
        }
        text.push_str("\u{0}\u{ff}|\u{7f}\n");
        std::fs::write(&path, text.as_bytes()).expect("write");
        let args = ReportArgs {
            queue_log: Some(path.clone()),
            format: ReportFormat::Json,
            ..ReportArgs::default()
        };
        let (json, summary) = report(&args);
        assert_eq!(json.lines().count(), 2, "the good lines still report");
        assert_eq!((summary.lines, summary.malformed), (35, 33));
        assert_eq!(summary.warnings.len(), MAX_WARNINGS + 1);
        assert!(
            summary.warnings[0].starts_with("queue_log line 2: "),
            "{:?}",
            summary.warnings
        );
        assert!(summary.warnings[1].starts_with("queue_log line 4: queue_log time \"abc\""));
        assert_eq!(
            summary.warnings[MAX_WARNINGS],
            "... and 13 more malformed line(s), skipped"
        );
        let stats = ReportArgs {
            stats: true,
            ..args
        };
        let (_, summary) = report(&stats);
        assert_eq!(summary.malformed, 33);
        // Bytes that are not UTF-8 are read, not refused.
        std::fs::write(
            &path,
            b"1795259557|c1|support|NONE|ENTERQUEUE||Andr\xe9|1\n",
        )
        .expect("write");
        let (json, summary) = report(&ReportArgs {
            queue_log: Some(path),
            format: ReportFormat::Json,
            ..ReportArgs::default()
        });
        assert_eq!(summary.malformed, 0);
        assert!(json.contains("Andr\u{fffd}"), "{json}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn statistics_as_table_csv_and_json() {
        let (table, _) = report(&ReportArgs {
            stats: true,
            ..fixture_args()
        });
        assert_eq!(
            table,
            "\
QUEUE    OFFERED  ANSWERED  ABANDONED  TIMEOUT  EMPTY  OPEN  ABANDON%
empty          1         0          0        0      1     0      0.0%
support        9         5          3        1      0     0     33.3%

QUEUE    SL 60s  SL+UNANS  AVG WAIT  MAX WAIT  AVG TALK  TRANSFERS
empty         -    100.0%         -        0s         -          0
support  100.0%    100.0%      3.8s       17s      3.6s          2

AGENT   CALLS  TALK  AVG TALK  NO ANSWER  LOGGED IN  PAUSED
agent1      4   14s      3.5s          1      2m09s      3s
agent2      1    4s      4.0s          0        47s     11s

SL 60s: answered within 60 s / answered (Asterisk's ServicelevelPerf).
SL+UNANS: also counts callers who left within 60 s (ServicelevelPerf2).
AVG WAIT: answered calls; MAX WAIT: all calls; ABANDON%: hang-ups / offered.
"
        );
        assert!(table.lines().all(|line| line.chars().count() <= 80));

        let (csv, _) = report(&ReportArgs {
            stats: true,
            format: ReportFormat::Csv,
            service_level_s: 0,
            ..fixture_args()
        });
        assert_eq!(
            csv,
            "Queue,Offered,Answered,Abandoned,Timeouts,Empties,Open,Abandon rate (%),Service level 0s (%),Service level 0s incl. unanswered (%),Average wait (s),Longest wait (s),Average talk (s),Transfers,No answer\r\n\
             empty,1,0,0,0,1,0,0.0,,100.0,,0,,0,0\r\n\
             support,9,5,3,1,0,0,33.3,40.0,22.2,3.8,17,3.6,2,1\r\n\
             \r\n\
             Agent,Calls,Talk (s),Average talk (s),No answer,Logged in (s),Paused (s)\r\n\
             agent1,4,14,3.5,1,129,3\r\n\
             agent2,1,4,4.0,0,47,11\r\n"
        );

        let (json, _) = report(&ReportArgs {
            stats: true,
            format: ReportFormat::Json,
            queue: Some("support".into()),
            ..fixture_args()
        });
        let value: Value = serde_json::from_str(&json).expect("one JSON object");
        assert_eq!(
            value["queues"],
            json!([{
                "queue": "support", "offered": 9, "answered": 5, "abandoned": 3, "timeouts": 1,
                "empties": 0, "open": 0, "abandon_rate_pct": 33.3, "service_level_pct": 100.0,
                "service_level_with_unanswered_pct": 100.0, "average_answer_wait_s": 3.8,
                "longest_wait_s": 17, "average_talk_s": 3.6, "transfers": 2, "no_answers": 1
            }])
        );
        assert_eq!(value["agents"][0]["logged_in_s"], 129);
        assert_eq!(value["service_level_s"], 60);
    }

    #[test]
    fn events_without_follow_print_the_whole_file() {
        let dir = scratch("events-once");
        let path = dir.join("queue_log");
        let mut text = std::fs::read_to_string(fixture()).expect("fixture");
        text.push_str("not a line\n1795259710|x|support|NONE|ENTERQUEUE||caller9|1"); // no final newline
        std::fs::write(&path, &text).expect("write");
        let (mut out, mut warn) = (Vec::new(), Vec::new());
        let summary =
            run_events(&path, false, &mut out, &mut warn, &AtomicBool::new(false)).expect("reads");
        assert_eq!(
            summary,
            EventsSummary {
                lines: 54,
                events: 49,
                malformed: 1,
                reopened: 0
            }
        );
        let out = String::from_utf8(out).expect("utf-8");
        assert_eq!(out.lines().count(), 49);
        assert!(out
            .lines()
            .last()
            .is_some_and(|l| l.contains("\"caller9\"")));
        assert_eq!(
            String::from_utf8(warn).expect("utf-8"),
            "queue_log line 53: queue_log line has only 1 `|`-separated field(s), at least 5 are needed (time|callid|queue|agent|event): the line is cut short or is not from a queue_log\n"
        );
        let missing = run_events(
            &dir.join("nope"),
            false,
            &mut Vec::new(),
            &mut Vec::new(),
            &AtomicBool::new(false),
        );
        assert!(matches!(missing, Err(ReportError::Read { .. })));
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A `Write` the test reads while the follower thread writes.
    #[derive(Clone, Default)]
    struct SharedOutput(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for SharedOutput {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl SharedOutput {
        fn call_ids(&self) -> Vec<String> {
            let bytes = self.0.lock().expect("lock").clone();
            String::from_utf8(bytes)
                .expect("utf-8")
                .lines()
                .map(|line| {
                    let event: ReportEvent = serde_json::from_str(line).expect("event");
                    event.call_id.unwrap_or_default()
                })
                .collect()
        }

        /// Waits up to 5 s for `count` events.
        fn wait_for(&self, count: usize) -> Vec<String> {
            for _ in 0..500 {
                let ids = self.call_ids();
                if ids.len() >= count {
                    return ids;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            self.call_ids()
        }
    }

    fn enter(id: &str) -> String {
        format!("1795259557|{id}|support|NONE|ENTERQUEUE||caller1|1\n")
    }

    fn append(path: &Path, text: &str) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open for append");
        file.write_all(text.as_bytes()).expect("append");
    }

    #[test]
    fn follow_survives_truncation_and_rotation() {
        let dir = scratch("follow");
        let path = dir.join("queue_log");
        let output = SharedOutput::default();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let poll = Duration::from_millis(10);
        let follower = {
            let (path, mut out, stop) = (path.clone(), output.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut warn = Vec::new();
                let summary = run_events_polling(&path, true, &mut out, &mut warn, &stop, poll);
                (summary, String::from_utf8(warn).unwrap_or_default())
            })
        };
        // The file does not exist yet: the follower waits for it.
        std::thread::sleep(poll * 5);
        append(&path, &(enter("a1") + &enter("a2")));
        assert_eq!(output.wait_for(2), ["a1", "a2"]);

        // A line written in two pieces is reported once, whole.
        append(&path, "1795259557|a3|support|NO");
        std::thread::sleep(poll * 5);
        assert_eq!(output.call_ids().len(), 2, "half a line waits");
        append(&path, "NE|ENTERQUEUE||caller1|1\n");
        assert_eq!(output.wait_for(3), ["a1", "a2", "a3"]);

        // Truncated in place (logrotate copytruncate): read again from the start.
        std::fs::File::create(&path).expect("truncate");
        std::thread::sleep(poll * 10);
        append(&path, &enter("b1"));
        assert_eq!(output.wait_for(4), ["a1", "a2", "a3", "b1"]);

        // Renamed away while the writer adds one last line to it, then a new file.
        let rotated = dir.join("queue_log.1");
        std::fs::rename(&path, &rotated).expect("rotate");
        append(&rotated, &enter("b2"));
        std::thread::sleep(poll * 5);
        append(&path, &(enter("c1") + &enter("c2")));
        assert_eq!(
            output.wait_for(7),
            ["a1", "a2", "a3", "b1", "b2", "c1", "c2"]
        );
        append(&path, "broken\n");
        append(&path, &enter("c3"));
        assert_eq!(output.wait_for(8).len(), 8);

        stop.store(true, Ordering::Relaxed);
        let (summary, warnings) = follower.join().expect("follower thread");
        let summary = summary.expect("follows without error");
        assert_eq!((summary.events, summary.malformed), (8, 1));
        assert_eq!(summary.reopened, 3, "appeared, truncated, rotated");
        assert!(warnings.starts_with("waiting for "), "{warnings}");
        assert!(warnings.ends_with("queue_log line 3: queue_log line has only 1 `|`-separated field(s), at least 5 are needed (time|callid|queue|agent|event): the line is cut short or is not from a queue_log\n"), "{warnings}");
        let _ = std::fs::remove_dir_all(dir);
    }

    fn hosted_export() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/hosted-queue-report.csv")
    }

    /// Our CSV export of the fixture, written to a scratch file.
    fn exported_fixture(name: &str) -> (PathBuf, PathBuf) {
        let dir = scratch(name);
        let (csv, _) = report(&ReportArgs {
            format: ReportFormat::Csv,
            ..fixture_args()
        });
        let path = dir.join("report.csv");
        std::fs::write(&path, csv).expect("write");
        (dir, path)
    }

    #[test]
    fn an_exported_csv_reports_like_its_queue_log() {
        let (dir, path) = exported_fixture("csv-round-trip");
        let from_csv = |args: &ReportArgs| {
            report(&ReportArgs {
                queue_log: None,
                csv: Some(path.clone()),
                ..args.clone()
            })
        };
        let variants = [
            fixture_args(),
            ReportArgs {
                format: ReportFormat::Json,
                ..fixture_args()
            },
            ReportArgs {
                format: ReportFormat::Csv,
                events: vec![ReportKind::CallerQuit, ReportKind::Connected],
                queue: Some("support".into()),
                from: Some(1_795_259_560),
                to: Some(1_795_259_660),
                ..fixture_args()
            },
            ReportArgs {
                stats: true,
                ..fixture_args()
            },
            ReportArgs {
                stats: true,
                format: ReportFormat::Csv,
                service_level_s: 0,
                ..fixture_args()
            },
            ReportArgs {
                stats: true,
                format: ReportFormat::Json,
                queue: Some("support".into()),
                from: Some(1_795_259_600),
                ..fixture_args()
            },
        ];
        for args in variants {
            let (expected, _) = report(&args);
            let (got, summary) = from_csv(&args);
            if args.format == ReportFormat::Table && !args.stats {
                // The same rows; only the footer counts CSV rows instead of queue_log lines.
                fn body(text: &str) -> Vec<&str> {
                    text.lines().rev().skip(1).collect()
                }
                assert_eq!(body(&got), body(&expected));
                assert!(
                    got.ends_with("48 event(s); 48 CSV row(s) read, 0 skipped\n"),
                    "{got}"
                );
            } else {
                assert_eq!(got, expected, "{args:?}");
            }
            assert_eq!((summary.lines, summary.malformed), (48, 0));
            assert_eq!(summary.warnings, Vec::<String>::new());
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_hosted_pbx_export_gives_the_queue_logs_statistics() {
        let hosted = ReportArgs {
            csv: Some(hosted_export()),
            utc_offset_s: 3600,
            stats: true,
            ..ReportArgs::default()
        };
        let (stats, summary) = report(&hosted);
        let (expected, _) = report(&ReportArgs {
            stats: true,
            ..fixture_args()
        });
        assert_eq!(stats, expected);
        assert_eq!((summary.lines, summary.malformed), (50, 2));
        assert_eq!(summary.warnings.len(), 3);
        assert!(
            summary.warnings[1]
                .starts_with("CSV line 7: unknown event type \"The caller was put on hold\""),
            "{:?}",
            summary.warnings
        );
        // Events: a period given in UTC selects the same events from either source.
        let (events, _) = report(&ReportArgs {
            stats: false,
            format: ReportFormat::Json,
            period: Some(Period::Today),
            ..hosted.clone()
        });
        let count = events.lines().count();
        assert_eq!(count, 48, "{events}");
    }

    #[test]
    fn csv_is_a_third_source_given_alone() {
        let csv = Some(hosted_export());
        let error = run_report_at(
            &ReportArgs {
                csv: csv.clone(),
                ..fixture_args()
            },
            0,
            &mut Vec::new(),
        )
        .expect_err("two sources");
        assert_eq!(
            error.to_string(),
            "--csv and --queue-log are two sources: give one of them"
        );
        let with_ami = ReportArgs {
            csv: csv.clone(),
            ami: Some("127.0.0.1:5038".into()),
            ..ReportArgs::default()
        };
        let error = run_report_at(&with_ami, 0, &mut Vec::new()).expect_err("two sources");
        assert_eq!(
            error.to_string(),
            "--csv and --ami are two sources: give one of them"
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let credentials = AmiCredentials {
            user: "console".into(),
            secret: Secret::new("x"),
        };
        let error = runtime
            .block_on(run_report_ami_at(
                &with_ami,
                &credentials,
                0,
                &mut Vec::new(),
            ))
            .expect_err("checked before connecting");
        assert!(matches!(
            error,
            ReportError::CsvWithOtherSource { other: "--ami" }
        ));

        let dir = scratch("csv-bad-header");
        let path = dir.join("export.csv");
        std::fs::write(&path, "Date;Agent;Talk\n21/11/2026 10:00;a;1\n").expect("write");
        let error = run_report_at(
            &ReportArgs {
                csv: Some(path.clone()),
                ..ReportArgs::default()
            },
            0,
            &mut Vec::new(),
        )
        .expect_err("no event type or queue column");
        assert_eq!(
            error.to_string(),
            format!(
                "{}: the CSV header has no event type column (name it e.g. \"Event type\") and no queue column (name it e.g. \"Queue\"); the header found is: \"Date\", \"Agent\", \"Talk\". Export the report with its header row, or rename the columns",
                path.display()
            )
        );
        let missing = run_report_at(
            &ReportArgs {
                csv: Some(dir.join("absent.csv")),
                ..ReportArgs::default()
            },
            0,
            &mut Vec::new(),
        )
        .expect_err("missing file");
        assert!(missing.to_string().starts_with("cannot read "), "{missing}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
