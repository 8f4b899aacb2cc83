//! The lab PBX's configuration (`lab.toml`), with built-in defaults so `ringside lab` and the
//! default run need no file at all.
//!
//! The defaults (see [`LabConfig::default`] and [`LabConfig::describe`]): agents 101–106 with
//! passwords lab101–lab106, a supervisor 200 (lab200); queue `support` on extension 600 with
//! connection code *600 and disconnection code *601 (rrmemory), queue `sales` on 700 with
//! *700 / *701 (ringall); AMI user `lab` with secret `lab`; three bot agents and two simulated
//! callers a minute per queue.
//!
//! Every key can be overridden. `[agents]` and `[supervisors]` list the whole set of accounts
//! (`101 = "lab101"`), so a file can also remove the default ones; `[queues.NAME]` tables change
//! only the keys they name, a new name adds a queue (then `extension`, `login_code` and
//! `logout_code` are required) and `enabled = false` drops one.
//!
//! Errors name the file, the line and the `[section].key` at fault, as the softphone's
//! `config.toml` does ([`crate::config`]): toml deserializes into a loose tree that keeps each
//! key's position, then this module validates the tree by hand, so each message can say what
//! is allowed. Unknown keys are errors, with the nearest known key suggested.

use core::fmt;
use core::ops::RangeInclusive;
use core::time::Duration;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use crate::lab::queue::{QueueConfig, Strategy};
use crate::lab::registrar::LabUser;
use crate::toml_check::{line_of, nearest, printable, show_value};

/// Everything `lab.toml` can set.
#[derive(Debug, Clone, PartialEq)]
pub struct LabConfig {
    /// Agent accounts (extension and SIP password), in file order.
    pub agents: Vec<LabAccount>,
    /// Supervisor accounts: they register like agents but are not meant to log in to queues.
    pub supervisors: Vec<LabAccount>,
    /// The AMI login.
    pub ami: AmiAccount,
    /// The queues, in the order they are offered to the engine.
    pub queues: Vec<LabQueue>,
    /// Simulated callers and bot agents.
    pub simulation: SimulationConfig,
}

/// One SIP account of the lab (digest username = extension).
#[derive(Clone, PartialEq, Eq)]
pub struct LabAccount {
    /// The extension, also the SIP user name: "101".
    pub extension: String,
    /// The digest password.
    pub password: String,
}

impl fmt::Debug for LabAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LabAccount")
            .field("extension", &self.extension)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The AMI login (`[ami]`).
#[derive(Clone, PartialEq, Eq)]
pub struct AmiAccount {
    /// `Username:` of the AMI Login action.
    pub username: String,
    /// `Secret:` (plain login) or the MD5 challenge's secret.
    pub secret: String,
}

impl fmt::Debug for AmiAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmiAccount")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// One queue (`[queues.NAME]`): the engine's settings plus how phones reach it.
#[derive(Debug, Clone, PartialEq)]
pub struct LabQueue {
    /// The engine's settings; `queue.name` is the table name.
    pub queue: QueueConfig,
    /// The extension callers dial to join the queue: "600".
    pub extension: String,
    /// The connection code an agent dials to log in: "*600".
    pub login_code: String,
    /// The disconnection code an agent dials to log out: "*601".
    pub logout_code: String,
    /// Simulated callers a minute into this queue; `None` takes
    /// [`SimulationConfig::callers_per_minute`].
    pub callers_per_minute: Option<f64>,
    /// What a real caller whose maximum wait ran out gets (`timeout_fallback`).
    pub timeout_fallback: TimeoutFallback,
    /// Where voicemail messages are written (`voicemail_dir`); a relative path is taken from
    /// the lab's working directory.
    pub voicemail_dir: PathBuf,
}

/// What happens to a real caller once the queue's maximum wait ran out (queue_log has
/// EXITWITHTIMEOUT either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeoutFallback {
    /// The lab hangs up.
    #[default]
    Hangup,
    /// The caller hears a beep and leaves a message, recorded to a WAV file in the queue's
    /// `voicemail_dir`; then the lab hangs up.
    Voicemail,
}

impl TimeoutFallback {
    /// The `timeout_fallback` value.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutFallback::Hangup => "hangup",
            TimeoutFallback::Voicemail => "voicemail",
        }
    }
}

/// Where voicemail goes when `voicemail_dir` is not set.
pub const DEFAULT_VOICEMAIL_DIR: &str = "voicemail";

/// What a dialled number means to the lab's router.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dialled<'a> {
    /// The queue's extension: join it as a caller.
    Queue(&'a LabQueue),
    /// The queue's connection code: log the caller in as a dynamic member.
    Login(&'a LabQueue),
    /// The queue's disconnection code: log the caller out.
    Logout(&'a LabQueue),
    /// A lab account.
    Account(&'a LabAccount),
}

/// A block of E.164 numbers, `+3225550100..+3225550199` (both ends included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallerIdRange {
    first: u64,
    last: u64,
    digits: usize,
}

impl CallerIdRange {
    /// Numbers in the block (at least one).
    pub fn len(&self) -> u64 {
        self.last.saturating_sub(self.first).saturating_add(1)
    }

    /// Never true: a block holds at least its first number.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `index`-th number (0-based, clamped to the last), with its `+` and leading zeros.
    pub fn nth(&self, index: u64) -> String {
        let number = self.first.saturating_add(index).min(self.last);
        format!("+{number:0width$}", width = self.digits)
    }
}

impl fmt::Display for CallerIdRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            f.write_str(&self.nth(0))
        } else {
            write!(f, "{}..{}", self.nth(0), self.nth(self.len() - 1))
        }
    }
}

impl FromStr for CallerIdRange {
    type Err = String;

    /// `+3225550100` or `+3225550100..+3225550199`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const PROBLEM: &str = "expected E.164 numbers like \"+3225550100\" or a block \
             \"+3225550100..+3225550199\" (a +, then 2 to 15 digits, not starting with 0)";
        let (first, last) = match text.split_once("..") {
            Some((first, last)) => (first, last),
            None => (text, text),
        };
        let parse = |number: &str| -> Option<(u64, usize)> {
            let digits = number.strip_prefix('+')?;
            let valid = (2..=15).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !digits.starts_with('0');
            if !valid {
                return None;
            }
            Some((digits.parse().ok()?, digits.len()))
        };
        let ((first, digits), (last, last_digits)) = parse(first)
            .zip(parse(last))
            .ok_or_else(|| PROBLEM.to_owned())?;
        if digits != last_digits || last < first {
            return Err(
                "a block runs from a number to a larger one of the same length, e.g. \
                 \"+3225550100..+3225550199\""
                    .to_owned(),
            );
        }
        Ok(CallerIdRange {
            first,
            last,
            digits,
        })
    }
}

/// `[simulation]`: the virtual callers and the bot agents.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationConfig {
    /// Poisson arrivals a minute into each queue (`--callers`); 0 stops them.
    pub callers_per_minute: f64,
    /// Caller IDs are drawn from these blocks, every number equally likely.
    pub caller_ids: Vec<CallerIdRange>,
    /// Mean of the callers' patience (exponential): a caller still waiting after it hangs up.
    pub patience_mean: Duration,
    /// Mean talk time (log-normal) of an answered call.
    pub talk_mean: Duration,
    /// Bot agents `bot1`..`botN` (`--bots`).
    pub bots: u32,
    /// Queues the bots log in to; `None` is every queue.
    pub bot_queues: Option<Vec<String>>,
    /// A bot picks up after a delay drawn evenly from this range.
    pub answer_delay_min: Duration,
    /// See `answer_delay_min`.
    pub answer_delay_max: Duration,
    /// Share of rings a bot lets ring out (RINGNOANSWER), in percent.
    pub no_answer_pct: f64,
    /// How often each bot takes a pause, on average.
    pub pauses_per_hour: f64,
    /// Mean pause length (exponential).
    pub pause_mean: Duration,
    /// A pause's reason is drawn from these; empty gives pauses without a reason.
    pub pause_reasons: Vec<String>,
    /// How often each bot logs out of its queues for a while, on average.
    pub logouts_per_hour: f64,
    /// Mean time logged out (exponential).
    pub logout_mean: Duration,
    /// Share of bot calls ended by a blind transfer to `transfer_target`, in percent.
    pub blind_transfer_pct: f64,
    /// Share of bot calls ended by an attended transfer to `transfer_target`, in percent.
    pub attended_transfer_pct: f64,
    /// Where bots transfer callers.
    pub transfer_target: String,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        SimulationConfig {
            callers_per_minute: 2.0,
            caller_ids: vec![CallerIdRange {
                first: 3_225_550_100,
                last: 3_225_550_199,
                digits: 10,
            }],
            patience_mean: Duration::from_secs(120),
            talk_mean: Duration::from_secs(60),
            bots: 3,
            bot_queues: None,
            answer_delay_min: Duration::from_secs(1),
            answer_delay_max: Duration::from_secs(4),
            no_answer_pct: 10.0,
            pauses_per_hour: 2.0,
            pause_mean: Duration::from_secs(120),
            pause_reasons: vec!["coffee".to_owned(), "lunch".to_owned()],
            logouts_per_hour: 0.5,
            logout_mean: Duration::from_secs(300),
            blind_transfer_pct: 2.0,
            attended_transfer_pct: 1.0,
            transfer_target: "1002".to_owned(),
        }
    }
}

impl Default for LabConfig {
    fn default() -> Self {
        let account = |extension: u32| LabAccount {
            extension: extension.to_string(),
            password: format!("lab{extension}"),
        };
        LabConfig {
            agents: (101..=106).map(account).collect(),
            supervisors: vec![account(200)],
            ami: AmiAccount {
                username: "lab".to_owned(),
                secret: "lab".to_owned(),
            },
            queues: vec![
                default_queue(
                    "support",
                    Strategy::RrMemory,
                    ("600", "*600", "*601"),
                    Duration::from_secs(10),
                ),
                default_queue(
                    "sales",
                    Strategy::RingAll,
                    ("700", "*700", "*701"),
                    Duration::from_secs(5),
                ),
            ],
            simulation: SimulationConfig::default(),
        }
    }
}

fn default_queue(
    name: &str,
    strategy: Strategy,
    (extension, login_code, logout_code): (&str, &str, &str),
    wrapup: Duration,
) -> LabQueue {
    LabQueue {
        queue: QueueConfig {
            max_wait: Some(Duration::from_secs(300)),
            ring_timeout: Duration::from_secs(15),
            retry: Duration::from_secs(5),
            wrapup,
            ..QueueConfig::new(name, strategy)
        },
        extension: extension.to_owned(),
        login_code: login_code.to_owned(),
        logout_code: logout_code.to_owned(),
        callers_per_minute: None,
        timeout_fallback: TimeoutFallback::Hangup,
        voicemail_dir: PathBuf::from(DEFAULT_VOICEMAIL_DIR),
    }
}

/// Why `lab.toml` could not be used. Every variant except [`LabConfigError::Read`] starts with
/// `FILE:LINE:`.
#[derive(Debug, thiserror::Error)]
pub enum LabConfigError {
    /// The file could not be read.
    #[error(
        "{}: cannot read the lab config file: {error}\n  check the path given to --config, or run without it for the built-in lab",
        path.display()
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },

    /// Not TOML.
    #[error("{}:{line}: invalid TOML: {message}", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// toml's explanation.
        message: String,
    },

    /// A required key is absent (a new queue without its extension or codes).
    #[error(
        "{}:{line}: Missing parameter: [{section}].{key}\n  add {key} = \"...\" under [{section}]",
        file.display()
    )]
    Missing {
        /// The file.
        file: PathBuf,
        /// The table's header line.
        line: usize,
        /// `queues.NAME`.
        section: String,
        /// The missing key.
        key: &'static str,
    },

    /// A value that is not allowed.
    #[error(
        "{}:{line}: {key}{}: {problem}",
        file.display(),
        value.as_ref().map(|shown| format!(" = {shown}")).unwrap_or_default()
    )]
    Invalid {
        /// The file.
        file: PathBuf,
        /// 1-based line of the key.
        line: usize,
        /// The key with its section: `[queues.support].strategy`.
        key: String,
        /// The value as written, when it may be shown.
        value: Option<String>,
        /// What is allowed instead.
        problem: String,
    },

    /// A key this section does not have.
    #[error(
        "{}:{line}: unknown key [{section}].{key}: allowed keys are {}{}",
        file.display(),
        allowed.join(", "),
        suggestion.map(|near| format!("\n  did you mean {near}?")).unwrap_or_default()
    )]
    UnknownKey {
        /// The file.
        file: PathBuf,
        /// 1-based line of the key.
        line: usize,
        /// Section.
        section: String,
        /// The key as written.
        key: String,
        /// The keys the section has.
        allowed: &'static [&'static str],
        /// The nearest allowed key, if one is close.
        suggestion: Option<&'static str>,
    },

    /// A section the lab does not have.
    #[error(
        "{}:{line}: unknown section [{section}]: allowed sections are {}{}",
        file.display(),
        SECTIONS.join(", "),
        suggestion.map(|near| format!("\n  did you mean [{near}]?")).unwrap_or_default()
    )]
    UnknownSection {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// The section as written.
        section: String,
        /// The nearest section name, if one is close.
        suggestion: Option<&'static str>,
    },

    /// A section written as a plain value.
    #[error(
        "{}:{line}: [{section}] must be a table: write a [{section}] header and put its keys below it",
        file.display()
    )]
    NotATable {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// The section.
        section: String,
    },
}

const SECTIONS: &[&str] = &["agents", "supervisors", "ami", "queues", "simulation"];
const AMI_KEYS: &[&str] = &["username", "secret"];
const QUEUE_KEYS: &[&str] = &[
    "enabled",
    "extension",
    "login_code",
    "logout_code",
    "strategy",
    "max_wait_secs",
    "ring_timeout_secs",
    "retry_secs",
    "wrapup_secs",
    "join_empty",
    "leave_when_empty",
    "max_len",
    "callers_per_minute",
    "timeout_fallback",
    "voicemail_dir",
];
const SIMULATION_KEYS: &[&str] = &[
    "callers_per_minute",
    "caller_ids",
    "patience_mean_secs",
    "talk_mean_secs",
    "bots",
    "bot_queues",
    "answer_delay_min_secs",
    "answer_delay_max_secs",
    "no_answer_pct",
    "pauses_per_hour",
    "pause_mean_secs",
    "pause_reasons",
    "logouts_per_hour",
    "logout_mean_secs",
    "blind_transfer_pct",
    "attended_transfer_pct",
    "transfer_target",
];

/// A day: no lab wait, ring or talk time needs more.
const SECONDS_RANGE: RangeInclusive<i64> = 0..=86_400;
const MEAN_SECONDS_RANGE: RangeInclusive<i64> = 1..=86_400;
const ANSWER_DELAY_RANGE: RangeInclusive<i64> = 0..=300;
const MAX_LEN_RANGE: RangeInclusive<i64> = 0..=100_000;
const BOTS_RANGE: RangeInclusive<i64> = 0..=1_000;
/// 100 calls a second per queue: past what the lab is meant to carry.
const CALLERS_PER_MINUTE_MAX: f64 = 6_000.0;
const PER_HOUR_MAX: f64 = 3_600.0;

impl LabConfig {
    /// Parses `text` over the built-in defaults; `origin` only names the file in errors.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<LabConfig, LabConfigError> {
        let document: RawTable = toml::from_str(text).map_err(|error| LabConfigError::Syntax {
            file: origin.to_path_buf(),
            line: error.span().map_or(1, |span| line_of(text, span.start)),
            message: error.message().lines().collect::<Vec<_>>().join("\n  "),
        })?;
        Source { file: origin, text }.build(document)
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<LabConfig, LabConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| LabConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        LabConfig::from_toml_str(&text, path)
    }

    /// The registrar's accounts: agents, then supervisors.
    pub fn users(&self) -> Vec<LabUser> {
        self.agents
            .iter()
            .chain(&self.supervisors)
            .map(|account| LabUser {
                name: account.extension.clone(),
                password: account.password.clone(),
                display_name: None,
            })
            .collect()
    }

    /// The queue engine's settings, in order.
    pub fn queue_configs(&self) -> Vec<QueueConfig> {
        self.queues.iter().map(|q| q.queue.clone()).collect()
    }

    /// The queue with this name.
    pub fn queue(&self, name: &str) -> Option<&LabQueue> {
        self.queues.iter().find(|q| q.queue.name == name)
    }

    /// Simulated arrivals a minute into `queue` (its own rate, else the simulation's).
    pub fn callers_per_minute(&self, queue: &LabQueue) -> f64 {
        queue
            .callers_per_minute
            .unwrap_or(self.simulation.callers_per_minute)
    }

    /// Queue names the bots log in to.
    pub fn bot_queue_names(&self) -> Vec<String> {
        match &self.simulation.bot_queues {
            Some(names) => names.clone(),
            None => self.queues.iter().map(|q| q.queue.name.clone()).collect(),
        }
    }

    /// What `number` (a Request-URI user part) reaches in the lab, if anything.
    pub fn dialled(&self, number: &str) -> Option<Dialled<'_>> {
        for queue in &self.queues {
            if queue.extension == number {
                return Some(Dialled::Queue(queue));
            }
            if queue.login_code == number {
                return Some(Dialled::Login(queue));
            }
            if queue.logout_code == number {
                return Some(Dialled::Logout(queue));
            }
        }
        self.agents
            .iter()
            .chain(&self.supervisors)
            .find(|account| account.extension == number)
            .map(Dialled::Account)
    }

    /// The summary printed when the lab starts: accounts, queues, AMI login, simulation.
    pub fn describe(&self) -> String {
        let mut lines = Vec::new();
        let mut accounts = Vec::new();
        if !self.agents.is_empty() {
            accounts.push(format!(
                "{} {}",
                if self.agents.len() == 1 {
                    "agent"
                } else {
                    "agents"
                },
                describe_accounts(&self.agents)
            ));
        }
        if !self.supervisors.is_empty() {
            accounts.push(format!(
                "{} {}",
                if self.supervisors.len() == 1 {
                    "supervisor"
                } else {
                    "supervisors"
                },
                describe_accounts(&self.supervisors)
            ));
        }
        if accounts.is_empty() {
            accounts.push("no SIP accounts".to_owned());
        }
        lines.push(accounts.join(", "));
        for queue in &self.queues {
            let config = &queue.queue;
            let mut settings = vec![
                format!("{}/{}", queue.login_code, queue.logout_code),
                config.strategy.to_string(),
                format!("ring {}", seconds(config.ring_timeout)),
                format!("retry {}", seconds(config.retry)),
                format!("wrap-up {}", seconds(config.wrapup)),
                match config.max_wait {
                    Some(wait) => format!("max wait {}", seconds(wait)),
                    None => "no max wait".to_owned(),
                },
            ];
            if !config.join_empty {
                settings.push("no join when empty".to_owned());
            }
            if config.leave_when_empty {
                settings.push("leave when empty".to_owned());
            }
            if let Some(max_len) = config.max_len {
                settings.push(format!("at most {max_len} waiting"));
            }
            if queue.timeout_fallback == TimeoutFallback::Voicemail {
                settings.push(format!(
                    "voicemail after the max wait in {}",
                    queue.voicemail_dir.display()
                ));
            }
            lines.push(format!(
                "queue {} on {} ({})",
                config.name,
                queue.extension,
                settings.join(", ")
            ));
        }
        lines.push(format!(
            "AMI user {} (secret {})",
            self.ami.username, self.ami.secret
        ));
        lines.push(self.describe_simulation());
        lines.join("\n")
    }

    fn describe_simulation(&self) -> String {
        let sim = &self.simulation;
        let rates: Vec<String> = self
            .queues
            .iter()
            .map(|q| {
                format!(
                    "{} {}/min",
                    q.queue.name,
                    number(self.callers_per_minute(q))
                )
            })
            .collect();
        let callers = if rates.is_empty() {
            "no queues".to_owned()
        } else {
            format!("callers {}", rates.join(", "))
        };
        let ids: Vec<String> = sim.caller_ids.iter().map(ToString::to_string).collect();
        let bots = match sim.bots {
            0 => "no bots".to_owned(),
            1 => format!("bot bot1 in {}", self.bot_queue_names().join(", ")),
            n => format!("bots bot1–bot{n} in {}", self.bot_queue_names().join(", ")),
        };
        format!(
            "simulation: {callers} from {}, patience ~{}, talk ~{}; {bots}",
            ids.join(", "),
            seconds(sim.patience_mean),
            seconds(sim.talk_mean),
        )
    }
}

/// "101–106 (passwords lab101–lab106)" for a run of numbered accounts whose passwords follow
/// one pattern, else each account with its password.
fn describe_accounts(accounts: &[LabAccount]) -> String {
    if let [first, .., last] = accounts {
        let numbers: Option<Vec<u64>> = accounts.iter().map(|a| a.extension.parse().ok()).collect();
        let consecutive = numbers.is_some_and(|numbers| {
            numbers
                .windows(2)
                .all(|pair| pair[0].checked_add(1) == Some(pair[1]))
        });
        let prefix = first.password.strip_suffix(first.extension.as_str());
        let patterned = prefix.is_some_and(|prefix| {
            accounts
                .iter()
                .all(|a| a.password.strip_suffix(a.extension.as_str()) == Some(prefix))
        });
        if consecutive && patterned {
            return format!(
                "{}–{} (passwords {}–{})",
                first.extension, last.extension, first.password, last.password
            );
        }
    }
    accounts
        .iter()
        .map(|a| format!("{} (password {})", a.extension, a.password))
        .collect::<Vec<_>>()
        .join(", ")
}

fn seconds(duration: Duration) -> String {
    format!("{} s", duration.as_secs())
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

/// `[section].key`, as errors name a key.
fn key_path(section: &str, key: &str) -> String {
    format!("[{section}].{key}")
}

// ---------------------------------------------------------------------------
// The loose tree toml deserializes into: tables keep their entries in file order, each key
// with its byte span, at any depth (`[queues.support]` is a table inside a table). Leaves stay
// `toml::Value`, so every value reaches the validator, which says what was expected.

struct RawTable(Vec<RawEntry>);

struct RawEntry {
    key: Spanned<String>,
    value: RawValue,
}

enum RawValue {
    Table(Vec<RawEntry>),
    Plain(toml::Value),
    /// A date-time: toml hands it over as a map whose key carries no span.
    DateTime,
}

impl<'de> Deserialize<'de> for RawTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match RawValue::deserialize(deserializer)? {
            RawValue::Table(entries) => Ok(RawTable(entries)),
            RawValue::Plain(_) | RawValue::DateTime => Ok(RawTable(Vec::new())),
        }
    }
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = RawValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a TOML value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawValue, A::Error> {
                let mut entries = Vec::new();
                loop {
                    let Ok(next) = map.next_key::<Spanned<String>>() else {
                        return Ok(RawValue::DateTime);
                    };
                    let Some(key) = next else { break };
                    let value = map.next_value::<RawValue>()?;
                    entries.push(RawEntry { key, value });
                }
                Ok(RawValue::Table(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawValue, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<toml::Value>()? {
                    items.push(item);
                }
                Ok(RawValue::Plain(toml::Value::Array(items)))
            }
            fn visit_bool<E>(self, value: bool) -> Result<RawValue, E> {
                Ok(RawValue::Plain(toml::Value::Boolean(value)))
            }
            fn visit_i64<E>(self, value: i64) -> Result<RawValue, E> {
                Ok(RawValue::Plain(toml::Value::Integer(value)))
            }
            fn visit_u64<E>(self, value: u64) -> Result<RawValue, E> {
                // TOML integers are i64; a larger one can only be out of every range anyway.
                Ok(RawValue::Plain(toml::Value::Integer(
                    i64::try_from(value).unwrap_or(i64::MAX),
                )))
            }
            fn visit_f64<E>(self, value: f64) -> Result<RawValue, E> {
                Ok(RawValue::Plain(toml::Value::Float(value)))
            }
            fn visit_str<E>(self, value: &str) -> Result<RawValue, E> {
                Ok(RawValue::Plain(toml::Value::String(value.to_owned())))
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
}

// ---------------------------------------------------------------------------
// Validation of the loose tree over the defaults.

struct Source<'a> {
    file: &'a Path,
    text: &'a str,
}

/// What is wrong with one value; the caller adds file, line and key.
struct Problem(String);

/// Where a value that must be unique across the lab was set: for the clash check.
struct Claim {
    value: String,
    owner: String,
    /// `None` for built-in defaults.
    at: Option<(usize, String, String)>,
}

impl<'a> Source<'a> {
    fn line(&self, key: &Spanned<String>) -> usize {
        line_of(self.text, key.span().start)
    }

    fn build(&self, document: RawTable) -> Result<LabConfig, LabConfigError> {
        let mut config = LabConfig::default();
        // Lines of keys that later cross-checks may blame.
        let mut claims_at: Vec<(String, usize, String, String)> = Vec::new();
        let mut bot_queues_line = None;
        let mut transfer_line = None;
        let mut answer_delay_line = None;
        for section in &document.0 {
            let name = section.key.get_ref().as_str();
            let Some(&known) = SECTIONS.iter().find(|known| **known == name) else {
                return Err(LabConfigError::UnknownSection {
                    file: self.file.to_path_buf(),
                    line: self.line(&section.key),
                    section: printable(name, "."),
                    suggestion: nearest(name, SECTIONS),
                });
            };
            let RawValue::Table(entries) = &section.value else {
                return Err(self.not_a_table(&section.key, known.to_owned()));
            };
            match known {
                "agents" | "supervisors" => {
                    let accounts = self.accounts(known, entries)?;
                    for (entry, account) in entries.iter().zip(&accounts) {
                        claims_at.push((
                            account.extension.clone(),
                            self.line(&entry.key),
                            known.to_owned(),
                            entry.key.get_ref().clone(),
                        ));
                    }
                    if known == "agents" {
                        config.agents = accounts;
                    } else {
                        config.supervisors = accounts;
                    }
                }
                "ami" => self.ami(entries, &mut config.ami)?,
                "queues" => {
                    for queue in entries {
                        self.queue(queue, &mut config.queues, &mut claims_at)?;
                    }
                }
                _ => {
                    let lines = self.simulation(entries, &mut config.simulation)?;
                    bot_queues_line = lines.bot_queues.or(bot_queues_line);
                    transfer_line = lines.transfer.or(transfer_line);
                    answer_delay_line = lines.answer_delay.or(answer_delay_line);
                }
            }
        }
        self.check_unique(&config, &claims_at)?;
        let sim = &config.simulation;
        if let (Some(names), Some((line, key))) = (&sim.bot_queues, &bot_queues_line) {
            if let Some(unknown) = names.iter().find(|name| config.queue(name).is_none()) {
                let known: Vec<&str> = config
                    .queues
                    .iter()
                    .map(|q| q.queue.name.as_str())
                    .collect();
                return Err(LabConfigError::Invalid {
                    file: self.file.to_path_buf(),
                    line: *line,
                    key: key_path("simulation", key),
                    value: Some(format!("{unknown:?}")),
                    problem: format!(
                        "no queue named `{unknown}`: the queues are {}",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                });
            }
        }
        if sim.blind_transfer_pct + sim.attended_transfer_pct > 100.0 {
            let (line, key) = transfer_line.unwrap_or((1, "blind_transfer_pct".to_owned()));
            return Err(LabConfigError::Invalid {
                file: self.file.to_path_buf(),
                line,
                key: key_path("simulation", &key),
                value: None,
                problem: "blind_transfer_pct and attended_transfer_pct together must not pass 100"
                    .to_owned(),
            });
        }
        if sim.answer_delay_min > sim.answer_delay_max {
            let (line, key) = answer_delay_line.unwrap_or((1, "answer_delay_min_secs".to_owned()));
            return Err(LabConfigError::Invalid {
                file: self.file.to_path_buf(),
                line,
                key: key_path("simulation", &key),
                value: None,
                problem: format!(
                    "answer_delay_min_secs ({}) must not be larger than answer_delay_max_secs ({})",
                    sim.answer_delay_min.as_secs(),
                    sim.answer_delay_max.as_secs()
                ),
            });
        }
        Ok(config)
    }

    fn not_a_table(&self, key: &Spanned<String>, section: String) -> LabConfigError {
        LabConfigError::NotATable {
            file: self.file.to_path_buf(),
            line: self.line(key),
            section,
        }
    }

    fn known_key(
        &self,
        section: &str,
        allowed: &'static [&'static str],
        entry: &RawEntry,
    ) -> Result<&'static str, LabConfigError> {
        let key = entry.key.get_ref();
        allowed
            .iter()
            .find(|known| **known == key)
            .copied()
            .ok_or_else(|| LabConfigError::UnknownKey {
                file: self.file.to_path_buf(),
                line: self.line(&entry.key),
                section: section.to_owned(),
                key: printable(key, "."),
                allowed,
                suggestion: nearest(key, allowed),
            })
    }

    /// The entry's plain value run through `check`, or an error naming the key.
    fn value<T>(
        &self,
        section: &str,
        entry: &RawEntry,
        check: impl FnOnce(&toml::Value) -> Result<T, Problem>,
    ) -> Result<T, LabConfigError> {
        let invalid = |value: Option<String>, Problem(problem)| LabConfigError::Invalid {
            file: self.file.to_path_buf(),
            line: self.line(&entry.key),
            key: key_path(section, &printable(entry.key.get_ref(), ".")),
            value,
            problem,
        };
        match &entry.value {
            RawValue::Plain(value) => check(value).map_err(|p| invalid(Some(show_value(value)), p)),
            RawValue::Table(_) => Err(invalid(
                Some("{...}".to_owned()),
                Problem("expected a value here, not a table".to_owned()),
            )),
            RawValue::DateTime => {
                // A date passes no check; run one on a placeholder to get its explanation.
                let problem = match check(&toml::Value::Boolean(false)) {
                    Ok(_) => Problem("a date-time is not allowed here".to_owned()),
                    Err(problem) => problem,
                };
                Err(invalid(Some("a date-time".to_owned()), problem))
            }
        }
    }

    fn accounts(
        &self,
        section: &'static str,
        entries: &[RawEntry],
    ) -> Result<Vec<LabAccount>, LabConfigError> {
        let mut accounts = Vec::new();
        for entry in entries {
            let extension = entry.key.get_ref();
            if let Err(Problem(problem)) = check_user_name(extension) {
                return Err(LabConfigError::Invalid {
                    file: self.file.to_path_buf(),
                    line: self.line(&entry.key),
                    key: key_path(section, &printable(extension, ".")),
                    value: None,
                    problem,
                });
            }
            let password = self.value(section, entry, password)?;
            accounts.push(LabAccount {
                extension: extension.clone(),
                password,
            });
        }
        Ok(accounts)
    }

    fn ami(&self, entries: &[RawEntry], ami: &mut AmiAccount) -> Result<(), LabConfigError> {
        const S: &str = "ami";
        for entry in entries {
            match self.known_key(S, AMI_KEYS, entry)? {
                "username" => ami.username = self.value(S, entry, ami_user)?,
                _ => ami.secret = self.value(S, entry, password)?,
            }
        }
        Ok(())
    }

    fn queue(
        &self,
        table: &RawEntry,
        queues: &mut Vec<LabQueue>,
        claims_at: &mut Vec<(String, usize, String, String)>,
    ) -> Result<(), LabConfigError> {
        let name = table.key.get_ref();
        let section = format!("queues.{}", printable(name, "."));
        if let Err(Problem(problem)) = check_queue_name(name) {
            return Err(LabConfigError::Invalid {
                file: self.file.to_path_buf(),
                line: self.line(&table.key),
                key: key_path("queues", &printable(name, ".")),
                value: None,
                problem,
            });
        }
        let RawValue::Table(entries) = &table.value else {
            return Err(self.not_a_table(&table.key, section));
        };
        let existing = queues.iter().position(|q| &q.queue.name == name);
        let mut queue = match existing {
            Some(index) => queues[index].clone(),
            None => LabQueue {
                queue: QueueConfig {
                    max_wait: Some(Duration::from_secs(300)),
                    ..QueueConfig::new(name.clone(), Strategy::RrMemory)
                },
                extension: String::new(),
                login_code: String::new(),
                logout_code: String::new(),
                callers_per_minute: None,
                timeout_fallback: TimeoutFallback::Hangup,
                voicemail_dir: PathBuf::from(DEFAULT_VOICEMAIL_DIR),
            },
        };
        let mut enabled = true;
        let s = section.as_str();
        for entry in entries {
            let key = self.known_key(s, QUEUE_KEYS, entry)?;
            let config = &mut queue.queue;
            match key {
                "enabled" => enabled = self.value(s, entry, boolean)?,
                "extension" | "login_code" | "logout_code" => {
                    let value = if key == "extension" {
                        self.value(s, entry, extension)?
                    } else {
                        self.value(s, entry, dial_code)?
                    };
                    claims_at.push((
                        value.clone(),
                        self.line(&entry.key),
                        section.clone(),
                        key.to_owned(),
                    ));
                    match key {
                        "extension" => queue.extension = value,
                        "login_code" => queue.login_code = value,
                        _ => queue.logout_code = value,
                    }
                }
                "strategy" => config.strategy = self.value(s, entry, strategy)?,
                "max_wait_secs" => {
                    let wait =
                        self.value(s, entry, |v| secs(v, SECONDS_RANGE, "0 for no limit"))?;
                    config.max_wait = (!wait.is_zero()).then_some(wait);
                }
                "ring_timeout_secs" => {
                    config.ring_timeout = self.value(s, entry, |v| {
                        secs(v, SECONDS_RANGE, "0 rings until the max wait")
                    })?;
                }
                "retry_secs" => {
                    config.retry = self.value(s, entry, |v| secs(v, SECONDS_RANGE, ""))?
                }
                "wrapup_secs" => {
                    config.wrapup = self.value(s, entry, |v| secs(v, SECONDS_RANGE, ""))?;
                }
                "join_empty" => config.join_empty = self.value(s, entry, boolean)?,
                "leave_when_empty" => config.leave_when_empty = self.value(s, entry, boolean)?,
                "max_len" => {
                    let max_len = self.value(s, entry, |v| {
                        whole(v, MAX_LEN_RANGE, "callers", "0 for no limit")
                    })?;
                    config.max_len = usize::try_from(max_len).ok().filter(|&n| n > 0);
                }
                "timeout_fallback" => {
                    queue.timeout_fallback = self.value(s, entry, timeout_fallback)?;
                }
                "voicemail_dir" => queue.voicemail_dir = self.value(s, entry, directory)?,
                _ => {
                    queue.callers_per_minute = Some(self.value(s, entry, |v| {
                        rate(v, CALLERS_PER_MINUTE_MAX, "callers a minute")
                    })?);
                }
            }
        }
        for (key, value) in [
            ("extension", &queue.extension),
            ("login_code", &queue.login_code),
            ("logout_code", &queue.logout_code),
        ] {
            if enabled && value.is_empty() {
                return Err(LabConfigError::Missing {
                    file: self.file.to_path_buf(),
                    line: self.line(&table.key),
                    section,
                    key,
                });
            }
        }
        match (existing, enabled) {
            (Some(index), true) => queues[index] = queue,
            (Some(index), false) => {
                queues.remove(index);
            }
            (None, true) => queues.push(queue),
            (None, false) => {}
        }
        Ok(())
    }

    fn simulation(
        &self,
        entries: &[RawEntry],
        sim: &mut SimulationConfig,
    ) -> Result<SimulationLines, LabConfigError> {
        const S: &str = "simulation";
        let mut lines = SimulationLines::default();
        for entry in entries {
            let key = self.known_key(S, SIMULATION_KEYS, entry)?;
            let at = || Some((self.line(&entry.key), key.to_owned()));
            match key {
                "callers_per_minute" => {
                    sim.callers_per_minute = self.value(S, entry, |v| {
                        rate(v, CALLERS_PER_MINUTE_MAX, "callers a minute")
                    })?;
                }
                "caller_ids" => sim.caller_ids = self.value(S, entry, caller_ids)?,
                "patience_mean_secs" => {
                    sim.patience_mean =
                        self.value(S, entry, |v| secs(v, MEAN_SECONDS_RANGE, ""))?;
                }
                "talk_mean_secs" => {
                    sim.talk_mean = self.value(S, entry, |v| secs(v, MEAN_SECONDS_RANGE, ""))?;
                }
                "bots" => {
                    let bots = self.value(S, entry, |v| whole(v, BOTS_RANGE, "bots", ""))?;
                    sim.bots = u32::try_from(bots).unwrap_or(0);
                }
                "bot_queues" => {
                    sim.bot_queues = Some(self.value(S, entry, queue_names)?);
                    lines.bot_queues = at();
                }
                "answer_delay_min_secs" => {
                    sim.answer_delay_min =
                        self.value(S, entry, |v| secs(v, ANSWER_DELAY_RANGE, ""))?;
                    lines.answer_delay = at();
                }
                "answer_delay_max_secs" => {
                    sim.answer_delay_max =
                        self.value(S, entry, |v| secs(v, ANSWER_DELAY_RANGE, ""))?;
                    lines.answer_delay = at();
                }
                "no_answer_pct" => sim.no_answer_pct = self.value(S, entry, percent)?,
                "pauses_per_hour" => {
                    sim.pauses_per_hour =
                        self.value(S, entry, |v| rate(v, PER_HOUR_MAX, "pauses an hour"))?;
                }
                "pause_mean_secs" => {
                    sim.pause_mean = self.value(S, entry, |v| secs(v, MEAN_SECONDS_RANGE, ""))?;
                }
                "pause_reasons" => sim.pause_reasons = self.value(S, entry, pause_reasons)?,
                "logouts_per_hour" => {
                    sim.logouts_per_hour =
                        self.value(S, entry, |v| rate(v, PER_HOUR_MAX, "logouts an hour"))?;
                }
                "logout_mean_secs" => {
                    sim.logout_mean = self.value(S, entry, |v| secs(v, MEAN_SECONDS_RANGE, ""))?;
                }
                "blind_transfer_pct" => {
                    sim.blind_transfer_pct = self.value(S, entry, percent)?;
                    lines.transfer = at();
                }
                "attended_transfer_pct" => {
                    sim.attended_transfer_pct = self.value(S, entry, percent)?;
                    lines.transfer = at();
                }
                _ => sim.transfer_target = self.value(S, entry, extension)?,
            }
        }
        Ok(lines)
    }

    /// Extensions and codes must each reach one thing: a clash is blamed on the key the file
    /// set (a default can only clash with something the file set).
    fn check_unique(
        &self,
        config: &LabConfig,
        claims_at: &[(String, usize, String, String)],
    ) -> Result<(), LabConfigError> {
        let locate = |value: &str, section: &str, key: &str| {
            claims_at
                .iter()
                .rev()
                .find(|(v, _, s, k)| v == value && s == section && k == key)
                .map(|(_, line, s, k)| (*line, s.clone(), k.clone()))
        };
        let mut claims: Vec<Claim> = Vec::new();
        for (section, accounts) in [
            ("agents", &config.agents),
            ("supervisors", &config.supervisors),
        ] {
            for account in accounts {
                claims.push(Claim {
                    value: account.extension.clone(),
                    owner: format!("{} {}", section.trim_end_matches('s'), account.extension),
                    at: locate(&account.extension, section, &account.extension),
                });
            }
        }
        for queue in &config.queues {
            let section = format!("queues.{}", queue.queue.name);
            for (key, value) in [
                ("extension", &queue.extension),
                ("login_code", &queue.login_code),
                ("logout_code", &queue.logout_code),
            ] {
                claims.push(Claim {
                    value: value.clone(),
                    owner: format!(
                        "the {} of queue {}",
                        key.replace('_', " "),
                        queue.queue.name
                    ),
                    at: locate(value, &section, key),
                });
            }
        }
        for (index, claim) in claims.iter().enumerate() {
            let Some(earlier) = claims[..index].iter().find(|c| c.value == claim.value) else {
                continue;
            };
            let (line, section, key) = claim.at.clone().or_else(|| earlier.at.clone()).unwrap_or((
                1,
                String::new(),
                String::new(),
            ));
            let other = if claim.at.is_some() { earlier } else { claim };
            return Err(LabConfigError::Invalid {
                file: self.file.to_path_buf(),
                line,
                key: key_path(&section, &printable(&key, ".")),
                value: Some(format!("{:?}", claim.value)),
                problem: format!(
                    "`{}` is already {}: every extension and code must reach one thing",
                    claim.value, other.owner
                ),
            });
        }
        Ok(())
    }
}

#[derive(Default)]
struct SimulationLines {
    bot_queues: Option<(usize, String)>,
    transfer: Option<(usize, String)>,
    answer_delay: Option<(usize, String)>,
}

// ---------------------------------------------------------------------------
// Value checks: the typed value, or a `Problem` saying what is allowed.

fn text<'v>(value: &'v toml::Value, problem: &str) -> Result<&'v str, Problem> {
    match value {
        toml::Value::String(text) => Ok(text),
        _ => Err(Problem(problem.to_owned())),
    }
}

/// Names that go into SIP headers and queue_log fields: no spaces, controls or separators.
fn is_plain_name(name: &str, extra: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c) || extra.contains(c))
}

fn check_user_name(name: &str) -> Result<(), Problem> {
    if is_plain_name(name, "") {
        Ok(())
    } else {
        Err(Problem(
            "an extension is letters, digits, - _ or . (at most 64), e.g. 101 = \"lab101\""
                .to_owned(),
        ))
    }
}

fn check_queue_name(name: &str) -> Result<(), Problem> {
    if is_plain_name(name, "") {
        Ok(())
    } else {
        Err(Problem(
            "a queue name is letters, digits, - _ or . (at most 64), e.g. [queues.support]"
                .to_owned(),
        ))
    }
}

fn password(value: &toml::Value) -> Result<String, Problem> {
    const PROBLEM: &str = "expected a non-empty password in quotes on one line, e.g. \"lab101\"";
    let password = text(value, PROBLEM)?;
    if password.is_empty() || password.chars().any(char::is_control) {
        return Err(Problem(PROBLEM.to_owned()));
    }
    Ok(password.to_owned())
}

fn ami_user(value: &toml::Value) -> Result<String, Problem> {
    const PROBLEM: &str = "expected the AMI user name in quotes, e.g. username = \"lab\"";
    let name = text(value, PROBLEM)?;
    if !is_plain_name(name, "@") {
        return Err(Problem(format!("{PROBLEM} (letters, digits, - _ . @)")));
    }
    Ok(name.to_owned())
}

fn extension(value: &toml::Value) -> Result<String, Problem> {
    const PROBLEM: &str =
        "expected an extension in quotes: letters, digits, + - _ . (e.g. \"600\")";
    let number = text(value, PROBLEM)?;
    if !is_plain_name(number, "+") {
        return Err(Problem(PROBLEM.to_owned()));
    }
    Ok(number.to_owned())
}

fn dial_code(value: &toml::Value) -> Result<String, Problem> {
    const PROBLEM: &str = "expected a code in quotes made of digits, * and # (e.g. \"*600\")";
    let code = text(value, PROBLEM)?;
    let valid = (1..=16).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#');
    if !valid {
        return Err(Problem(PROBLEM.to_owned()));
    }
    Ok(code.to_owned())
}

fn strategy(value: &toml::Value) -> Result<Strategy, Problem> {
    let names: Vec<&str> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
    let problem = || {
        Problem(format!(
            "expected one of {} in quotes",
            names
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    };
    text(value, "")
        .map_err(|_| problem())?
        .parse()
        .map_err(|_| problem())
}

fn timeout_fallback(value: &toml::Value) -> Result<TimeoutFallback, Problem> {
    const PROBLEM: &str = "expected \"hangup\" or \"voicemail\" in quotes";
    match text(value, PROBLEM)?.trim() {
        "hangup" => Ok(TimeoutFallback::Hangup),
        "voicemail" => Ok(TimeoutFallback::Voicemail),
        _ => Err(Problem(PROBLEM.to_owned())),
    }
}

fn directory(value: &toml::Value) -> Result<PathBuf, Problem> {
    const PROBLEM: &str =
        "expected a directory path in quotes on one line, e.g. voicemail_dir = \"/var/tmp/lab-voicemail\"";
    let path = text(value, PROBLEM)?;
    if path.trim().is_empty() || path.chars().any(char::is_control) {
        return Err(Problem(PROBLEM.to_owned()));
    }
    Ok(PathBuf::from(path))
}

fn boolean(value: &toml::Value) -> Result<bool, Problem> {
    match value {
        toml::Value::Boolean(flag) => Ok(*flag),
        _ => Err(Problem(
            "expected true or false (without quotes)".to_owned(),
        )),
    }
}

fn whole(
    value: &toml::Value,
    range: RangeInclusive<i64>,
    unit: &str,
    note: &str,
) -> Result<u64, Problem> {
    match value {
        toml::Value::Integer(number) if range.contains(number) => {
            u64::try_from(*number).map_err(|_| Problem("must not be negative".to_owned()))
        }
        _ => Err(Problem(format!(
            "must be a whole number of {unit} from {} to {}{}",
            range.start(),
            range.end(),
            if note.is_empty() {
                String::new()
            } else {
                format!(" ({note})")
            }
        ))),
    }
}

fn secs(value: &toml::Value, range: RangeInclusive<i64>, note: &str) -> Result<Duration, Problem> {
    whole(value, range, "seconds", note).map(Duration::from_secs)
}

/// A non-negative number, whole or not.
fn rate(value: &toml::Value, max: f64, unit: &str) -> Result<f64, Problem> {
    let given = match value {
        toml::Value::Integer(whole) => Some(*whole as f64),
        toml::Value::Float(real) => Some(*real),
        _ => None,
    };
    match given {
        Some(given) if given.is_finite() && (0.0..=max).contains(&given) => Ok(given),
        _ => Err(Problem(format!(
            "must be a number of {unit} from 0 to {}",
            number(max)
        ))),
    }
}

fn percent(value: &toml::Value) -> Result<f64, Problem> {
    rate(value, 100.0, "percent")
}

fn string_list<T>(
    value: &toml::Value,
    problem: &str,
    mut item: impl FnMut(&str) -> Result<T, String>,
) -> Result<Vec<T>, Problem> {
    let toml::Value::Array(items) = value else {
        return Err(Problem(problem.to_owned()));
    };
    items
        .iter()
        .map(|entry| match entry {
            toml::Value::String(text) => item(text).map_err(Problem),
            _ => Err(Problem(problem.to_owned())),
        })
        .collect()
}

fn caller_ids(value: &toml::Value) -> Result<Vec<CallerIdRange>, Problem> {
    const PROBLEM: &str =
        "expected a list of E.164 numbers or blocks, e.g. [\"+3225550100..+3225550199\"]";
    let ranges = string_list(value, PROBLEM, |text| text.trim().parse())?;
    if ranges.is_empty() {
        return Err(Problem(format!("{PROBLEM}: at least one")));
    }
    Ok(ranges)
}

fn queue_names(value: &toml::Value) -> Result<Vec<String>, Problem> {
    string_list(
        value,
        "expected a list of queue names, e.g. [\"support\", \"sales\"]",
        |name| match check_queue_name(name) {
            Ok(()) => Ok(name.to_owned()),
            Err(Problem(problem)) => Err(problem),
        },
    )
}

fn pause_reasons(value: &toml::Value) -> Result<Vec<String>, Problem> {
    string_list(
        value,
        "expected a list of reasons in quotes, e.g. [\"coffee\", \"lunch\"]",
        |reason| {
            if reason.chars().any(|c| c.is_control() || c == '|') || reason.len() > 64 {
                Err("a pause reason is one line of at most 64 bytes, without |".to_owned())
            } else {
                Ok(reason.to_owned())
            }
        },
    )
}

// ---------------------------------------------------------------------------
// Error helpers.

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LabConfig, LabConfigError> {
        LabConfig::from_toml_str(text, Path::new("lab.toml"))
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(error) => error.to_string(),
        }
    }

    /// A file that sets every key to something other than its default.
    const EVERY_KEY: &str = r##"
[agents]
301 = "pw301"
302 = "pw302"

[supervisors]
900 = "boss"

[ami]
username = "admin"
secret = "s3cret"

[queues.support]
enabled = true
extension = "650"
login_code = "*650"
logout_code = "*651"
strategy = "linear"
max_wait_secs = 0
ring_timeout_secs = 20
retry_secs = 3
wrapup_secs = 30
join_empty = false
leave_when_empty = true
max_len = 12
callers_per_minute = 4.5
timeout_fallback = "voicemail"
voicemail_dir = "/var/tmp/vm"

[queues.sales]
enabled = false

[queues.billing]
extension = "800"
login_code = "*800"
logout_code = "#800"
strategy = "fewestcalls"

[simulation]
callers_per_minute = 3
caller_ids = ["+3225550100..+3225550109", "+14155550123"]
patience_mean_secs = 45
talk_mean_secs = 200
bots = 7
bot_queues = ["billing"]
answer_delay_min_secs = 2
answer_delay_max_secs = 6
no_answer_pct = 25
pauses_per_hour = 4.5
pause_mean_secs = 30
pause_reasons = ["meeting"]
logouts_per_hour = 0
logout_mean_secs = 60
blind_transfer_pct = 10
attended_transfer_pct = 5.5
transfer_target = "2000"
"##;

    #[test]
    fn defaults_are_the_documented_lab() {
        let config = LabConfig::default();
        let agents: Vec<(&str, &str)> = config
            .agents
            .iter()
            .map(|a| (a.extension.as_str(), a.password.as_str()))
            .collect();
        assert_eq!(
            agents,
            [
                ("101", "lab101"),
                ("102", "lab102"),
                ("103", "lab103"),
                ("104", "lab104"),
                ("105", "lab105"),
                ("106", "lab106")
            ]
        );
        assert_eq!(config.supervisors[0].extension, "200");
        assert_eq!(config.supervisors[0].password, "lab200");
        assert_eq!(config.ami.username, "lab");
        assert_eq!(config.ami.secret, "lab");
        let support = config.queue("support").expect("support is built in");
        assert_eq!(
            (
                support.extension.as_str(),
                support.login_code.as_str(),
                support.logout_code.as_str(),
                support.queue.strategy
            ),
            ("600", "*600", "*601", Strategy::RrMemory)
        );
        let sales = config.queue("sales").expect("sales is built in");
        assert_eq!(
            (
                sales.extension.as_str(),
                sales.login_code.as_str(),
                sales.logout_code.as_str(),
                sales.queue.strategy
            ),
            ("700", "*700", "*701", Strategy::RingAll)
        );
        assert_eq!(config.users().len(), 7);
        assert_eq!(config.users()[6].name, "200");
        assert_eq!(config.bot_queue_names(), ["support", "sales"]);
        // An empty file, or one with only comments, is the built-in lab.
        assert_eq!(parse("").expect("empty is fine"), config);
        assert_eq!(parse("# nothing\n").expect("comments are fine"), config);
    }

    #[test]
    fn describe_prints_the_start_summary() {
        assert_eq!(
            LabConfig::default().describe(),
            "agents 101–106 (passwords lab101–lab106), supervisor 200 (password lab200)\n\
             queue support on 600 (*600/*601, rrmemory, ring 15 s, retry 5 s, wrap-up 10 s, max wait 300 s)\n\
             queue sales on 700 (*700/*701, ringall, ring 15 s, retry 5 s, wrap-up 5 s, max wait 300 s)\n\
             AMI user lab (secret lab)\n\
             simulation: callers support 2/min, sales 2/min from +3225550100..+3225550199, patience ~120 s, talk ~60 s; bots bot1–bot3 in support, sales"
        );
        let config = parse(EVERY_KEY).expect("valid");
        assert_eq!(
            config.describe(),
            "agents 301–302 (passwords pw301–pw302), supervisor 900 (password boss)\n\
             queue support on 650 (*650/*651, linear, ring 20 s, retry 3 s, wrap-up 30 s, no max wait, no join when empty, leave when empty, at most 12 waiting, voicemail after the max wait in /var/tmp/vm)\n\
             queue billing on 800 (*800/#800, fewestcalls, ring 15 s, retry 5 s, wrap-up 0 s, max wait 300 s)\n\
             AMI user admin (secret s3cret)\n\
             simulation: callers support 4.5/min, billing 3/min from +3225550100..+3225550109, +14155550123, patience ~45 s, talk ~200 s; bots bot1–bot7 in billing"
        );
        let odd = parse("[agents]\n7 = \"x\"\n9 = \"y\"\n[supervisors]\n").expect("valid");
        assert!(odd
            .describe()
            .starts_with("agents 7 (password x), 9 (password y)\nqueue support"));
    }

    #[test]
    fn every_key_can_be_overridden() {
        let config = parse(EVERY_KEY).expect("valid");
        assert_eq!(config.agents.len(), 2);
        assert_eq!(config.agents[1].extension, "302");
        assert_eq!(config.agents[1].password, "pw302");
        assert_eq!(config.supervisors[0].password, "boss");
        assert_eq!(config.ami.username, "admin");
        assert_eq!(config.ami.secret, "s3cret");
        let names: Vec<&str> = config
            .queues
            .iter()
            .map(|q| q.queue.name.as_str())
            .collect();
        assert_eq!(names, ["support", "billing"]);
        let support = &config.queues[0];
        assert_eq!(
            support.queue,
            QueueConfig {
                name: "support".into(),
                strategy: Strategy::Linear,
                max_wait: None,
                ring_timeout: Duration::from_secs(20),
                retry: Duration::from_secs(3),
                wrapup: Duration::from_secs(30),
                join_empty: false,
                leave_when_empty: true,
                max_len: Some(12),
            }
        );
        assert_eq!(support.extension, "650");
        assert_eq!(support.login_code, "*650");
        assert_eq!(support.logout_code, "*651");
        assert_eq!(support.callers_per_minute, Some(4.5));
        assert_eq!(support.timeout_fallback, TimeoutFallback::Voicemail);
        assert_eq!(support.voicemail_dir, PathBuf::from("/var/tmp/vm"));
        assert_eq!(config.queues[1].timeout_fallback, TimeoutFallback::Hangup);
        assert_eq!(
            config.queues[1].voicemail_dir,
            PathBuf::from(DEFAULT_VOICEMAIL_DIR)
        );
        let billing = &config.queues[1];
        assert_eq!(billing.queue.strategy, Strategy::FewestCalls);
        assert_eq!(billing.logout_code, "#800");
        assert_eq!(config.callers_per_minute(billing), 3.0);
        let sim = &config.simulation;
        assert_eq!(sim.callers_per_minute, 3.0);
        let ids: Vec<String> = sim.caller_ids.iter().map(ToString::to_string).collect();
        assert_eq!(ids, ["+3225550100..+3225550109", "+14155550123"]);
        assert_eq!(sim.patience_mean, Duration::from_secs(45));
        assert_eq!(sim.talk_mean, Duration::from_secs(200));
        assert_eq!(sim.bots, 7);
        assert_eq!(sim.bot_queues, Some(vec!["billing".to_owned()]));
        assert_eq!(sim.answer_delay_min, Duration::from_secs(2));
        assert_eq!(sim.answer_delay_max, Duration::from_secs(6));
        assert_eq!(sim.no_answer_pct, 25.0);
        assert_eq!(sim.pauses_per_hour, 4.5);
        assert_eq!(sim.pause_mean, Duration::from_secs(30));
        assert_eq!(sim.pause_reasons, ["meeting"]);
        assert_eq!(sim.logouts_per_hour, 0.0);
        assert_eq!(sim.logout_mean, Duration::from_secs(60));
        assert_eq!(sim.blind_transfer_pct, 10.0);
        assert_eq!(sim.attended_transfer_pct, 5.5);
        assert_eq!(sim.transfer_target, "2000");
        // The test file really does name every key the lab knows.
        for key in AMI_KEYS.iter().chain(QUEUE_KEYS).chain(SIMULATION_KEYS) {
            assert!(
                EVERY_KEY.contains(&format!("\n{key} = ")),
                "EVERY_KEY misses {key}"
            );
        }
    }

    #[test]
    fn a_queue_table_changes_only_its_keys() {
        let config = parse("[queues.sales]\nwrapup_secs = 42\n").expect("valid");
        let sales = config.queue("sales").expect("still there");
        assert_eq!(sales.queue.wrapup, Duration::from_secs(42));
        assert_eq!(sales.queue.strategy, Strategy::RingAll);
        assert_eq!(sales.extension, "700");
        assert_eq!(config.queues.len(), 2);
        assert_eq!(config.agents, LabConfig::default().agents);
    }

    #[test]
    fn dialled_numbers_reach_queues_codes_and_accounts() {
        let config = LabConfig::default();
        let name = |d: Option<Dialled<'_>>| match d {
            Some(Dialled::Queue(q)) => format!("queue {}", q.queue.name),
            Some(Dialled::Login(q)) => format!("login {}", q.queue.name),
            Some(Dialled::Logout(q)) => format!("logout {}", q.queue.name),
            Some(Dialled::Account(a)) => format!("account {}", a.extension),
            None => "nothing".to_owned(),
        };
        assert_eq!(name(config.dialled("600")), "queue support");
        assert_eq!(name(config.dialled("*600")), "login support");
        assert_eq!(name(config.dialled("*601")), "logout support");
        assert_eq!(name(config.dialled("*701")), "logout sales");
        assert_eq!(name(config.dialled("104")), "account 104");
        assert_eq!(name(config.dialled("200")), "account 200");
        assert_eq!(name(config.dialled("1002")), "nothing");
    }

    #[test]
    fn caller_id_blocks_parse_and_count() {
        let block: CallerIdRange = "+3225550100..+3225550199".parse().expect("valid");
        assert_eq!(block.len(), 100);
        assert_eq!(block.nth(0), "+3225550100");
        assert_eq!(block.nth(99), "+3225550199");
        assert_eq!(block.nth(1000), "+3225550199");
        let single: CallerIdRange = "+14155550123".parse().expect("valid");
        assert_eq!(
            (single.len(), single.to_string()),
            (1, "+14155550123".into())
        );
        for bad in [
            "3225550100",
            "+0225550100",
            "+1",
            "+1234567890123456",
            "+32a5550100",
            "+3225550199..+3225550100",
            "+3225550100..+322555010",
            "",
            "+..+",
        ] {
            assert!(
                bad.parse::<CallerIdRange>().is_err(),
                "{bad} must be refused"
            );
        }
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        assert_eq!(
            error("[queues.support]\nstrategy = \"roundrobin\"\n"),
            "lab.toml:2: [queues.support].strategy = \"roundrobin\": expected one of \
             \"ringall\", \"leastrecent\", \"fewestcalls\", \"random\", \"rrmemory\", \"linear\" in quotes"
        );
        assert_eq!(
            error("[simulation]\n\nbots = -1\n"),
            "lab.toml:3: [simulation].bots = -1: must be a whole number of bots from 0 to 1000"
        );
        assert_eq!(
            error("[simulation]\nbot = 3\n"),
            format!(
                "lab.toml:2: unknown key [simulation].bot: allowed keys are {}\n  did you mean bots?",
                SIMULATION_KEYS.join(", ")
            )
        );
        assert_eq!(
            error("[queue.support]\n"),
            "lab.toml:1: unknown section [queue]: allowed sections are agents, supervisors, ami, queues, simulation\n  did you mean [queues]?"
        );
        assert_eq!(
            error("ami = 3\n"),
            "lab.toml:1: [ami] must be a table: write a [ami] header and put its keys below it"
        );
        assert_eq!(
            error("[queues]\nsupport = 3\n"),
            "lab.toml:2: [queues.support] must be a table: write a [queues.support] header and put its keys below it"
        );
        assert_eq!(
            error("[queues.support]\nretry_secs = 1.5\n"),
            "lab.toml:2: [queues.support].retry_secs = 1.5: must be a whole number of seconds from 0 to 86400"
        );
        assert_eq!(
            error("[queues.support]\ntimeout_fallback = \"record\"\n"),
            "lab.toml:2: [queues.support].timeout_fallback = \"record\": expected \"hangup\" or \"voicemail\" in quotes"
        );
        assert_eq!(
            error("[queues.support]\nvoicemail_dir = 3\n"),
            "lab.toml:2: [queues.support].voicemail_dir = 3: expected a directory path in quotes on one line, e.g. voicemail_dir = \"/var/tmp/lab-voicemail\""
        );
        assert_eq!(
            error("[queues.support]\nmax_wait_secs = 1979-05-27\n"),
            "lab.toml:2: [queues.support].max_wait_secs = a date-time: must be a whole number of seconds from 0 to 86400 (0 for no limit)"
        );
        assert_eq!(
            error("\n\n[queues.vip]\nextension = \"650\"\nlogin_code = \"*650\"\n"),
            "lab.toml:3: Missing parameter: [queues.vip].logout_code\n  add logout_code = \"...\" under [queues.vip]"
        );
        assert_eq!(
            error("[queues.sales]\nextension = \"600\"\n"),
            "lab.toml:2: [queues.sales].extension = \"600\": `600` is already the extension of queue support: every extension and code must reach one thing"
        );
        assert_eq!(
            error("[agents]\n101 = \"a\"\n\"*700\" = \"b\"\n"),
            "lab.toml:3: [agents].\"*700\": an extension is letters, digits, - _ or . (at most 64), e.g. 101 = \"lab101\""
        );
        assert_eq!(
            error("[agents]\n600 = \"a\"\n"),
            "lab.toml:2: [agents].600 = \"600\": `600` is already the extension of queue support: every extension and code must reach one thing"
        );
        assert_eq!(
            error("[supervisors]\n101 = \"x\"\n"),
            "lab.toml:2: [supervisors].101 = \"101\": `101` is already agent 101: every extension and code must reach one thing"
        );
        assert_eq!(
            error("[simulation]\nbot_queues = [\"support\", \"vip\"]\n"),
            "lab.toml:2: [simulation].bot_queues = \"vip\": no queue named `vip`: the queues are support, sales"
        );
        assert_eq!(
            error("[simulation]\nblind_transfer_pct = 60\nattended_transfer_pct = 50\n"),
            "lab.toml:3: [simulation].attended_transfer_pct: blind_transfer_pct and attended_transfer_pct together must not pass 100"
        );
        assert_eq!(
            error("[simulation]\nanswer_delay_min_secs = 9\n"),
            "lab.toml:2: [simulation].answer_delay_min_secs: answer_delay_min_secs (9) must not be larger than answer_delay_max_secs (4)"
        );
        assert_eq!(
            error("[simulation]\ncallers_per_minute = nan\n"),
            "lab.toml:2: [simulation].callers_per_minute = NaN: must be a number of callers a minute from 0 to 6000"
        );
        assert_eq!(
            error("[simulation]\ncaller_ids = [\"+3225550100..+3225550099\"]\n"),
            "lab.toml:2: [simulation].caller_ids = [...]: a block runs from a number to a larger one of the same length, e.g. \"+3225550100..+3225550199\""
        );
        assert_eq!(
            error("[simulation]\ncaller_ids = []\n"),
            "lab.toml:2: [simulation].caller_ids = [...]: expected a list of E.164 numbers or blocks, e.g. [\"+3225550100..+3225550199\"]: at least one"
        );
        assert_eq!(
            error("[ami]\nsecret = \"\"\n"),
            "lab.toml:2: [ami].secret = \"\": expected a non-empty password in quotes on one line, e.g. \"lab101\""
        );
        assert_eq!(
            error("[queues.support]\nlogin_code = \"600a\"\n"),
            "lab.toml:2: [queues.support].login_code = \"600a\": expected a code in quotes made of digits, * and # (e.g. \"*600\")"
        );
        assert_eq!(
            error("[queues.\"a|b\"]\n"),
            "lab.toml:1: [queues].\"a|b\": a queue name is letters, digits, - _ or . (at most 64), e.g. [queues.support]"
        );
        assert_eq!(
            error("[queues.support]\nstrategy = { a = 1 }\n"),
            "lab.toml:2: [queues.support].strategy = {...}: expected a value here, not a table"
        );
        let syntax = error("[simulation]\nbots = = 3\n");
        assert!(syntax.starts_with("lab.toml:2: invalid TOML: "), "{syntax}");
    }

    #[test]
    fn disabling_every_queue_leaves_an_empty_lab() {
        let config = parse(
            "[queues.support]\nenabled = false\n[queues.sales]\nenabled = false\n[simulation]\nbots = 0\n",
        )
        .expect("valid");
        assert!(config.queues.is_empty());
        assert!(config.bot_queue_names().is_empty());
        assert!(config.describe().contains("simulation: no queues"));
    }

    #[test]
    fn load_reports_a_missing_file() {
        let missing = Path::new("/nonexistent/ringside/lab.toml");
        let message = LabConfig::load(missing)
            .expect_err("no such file")
            .to_string();
        assert!(
            message.starts_with("/nonexistent/ringside/lab.toml: cannot read the lab config file")
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let shown = format!("{:?}", LabConfig::default());
        assert!(!shown.contains("lab101"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
