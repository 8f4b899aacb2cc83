//! The configuration file: `config.toml`, parsed into typed settings.
//!
//! Every error names the file, the line and the `[section].key` at fault, so a
//! user can fix a typo without guessing. Unknown keys are errors rather than
//! silently ignored, because a misspelt `pasword` would otherwise look like a
//! missing password. The password is held in [`Secret`] and never appears in
//! an error message or in `Debug` output.
//!
//! Parsing happens in two steps: toml deserializes the text into a loose tree
//! of key/value entries that keeps each key's byte offset, then this module
//! validates that tree by hand into [`Config`]. Doing the validation by hand
//! (instead of serde attributes) is what lets each message carry the line,
//! the key and an explanation of the allowed values.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::ops::RangeInclusive;
use core::time::Duration;
use std::path::{Path, PathBuf};

use crate::mail::compose::FollowUpTemplate;
use crate::mail::settings::{
    EmailSettings, Security, SettingsError, SmtpSettings, Transport as MailTransport,
    DEFAULT_SENDMAIL_PATH,
};
use crate::toml_check::{line_of, nearest, printable, show_value};
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// Everything `config.toml` can set. A file with no `[account]` is valid: the
/// product then runs its embedded demo PBX.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    pub account: Option<AccountConfig>,
    pub network: NetworkConfig,
    pub dial: DialConfig,
    pub sip: SipConfig,
    pub audio: AudioConfig,
    pub ui: UiConfig,
    pub ami: Option<AmiAccess>,
    /// The PBX's queues this agent can join, with their agent codes, in file order.
    pub queues: Vec<QueueCodesConfig>,
    /// Follow-up email (`[email]`): SMTP or the system's sendmail.
    pub email: Option<EmailSettings>,
}

/// The `[ui]` table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UiConfig {
    /// A theme name (built in, or a file in the user theme dir); `--theme` wins.
    pub theme: Option<String>,
    /// Desktop notification (notify-send) on an incoming call.
    pub notifications: bool,
    /// A keymap file; default: `keymap.toml` beside config.toml.
    pub keymap: Option<PathBuf>,
}

/// The `[ami]` table: the PBX's Asterisk Manager Interface, for live queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmiAccess {
    /// `HOST:PORT` (port 5038 when omitted).
    pub address: String,
    pub user: String,
    pub secret: Secret,
}

/// One entry of the `[queues]` table: `support = { login = "*600", logout = "*601" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCodesConfig {
    pub name: String,
    pub login: String,
    pub logout: String,
    /// The queue's own extension, when callers reach it by one (shown, never dialled).
    pub extension: Option<String>,
}

/// The `[account]` table: who we register as, and how calls are handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountConfig {
    /// Shown to the called party (the From display name).
    pub display_name: Option<String>,
    /// The extension / SIP user part of our address of record.
    pub username: String,
    /// The user name for digest authentication; `username` when not given.
    pub auth_username: String,
    pub password: Secret,
    /// The SIP domain, `host` or `host:port`, exactly as written.
    pub domain: String,
    /// Where REGISTER goes; `sip:<domain>` when not given.
    pub registrar: ProxyUri,
    /// Every request is sent here first when set.
    pub outbound_proxy: Option<ProxyUri>,
    /// Requested registration lifetime in seconds (60..=86400).
    pub expires: u32,
    pub transport: Transport,
    /// Answer every incoming call with `reject_with` instead of ringing.
    pub reject_incoming: bool,
    pub reject_with: RejectWith,
    /// Answer incoming calls by themselves after this delay; `None` = off.
    pub auto_answer: Option<Duration>,
    /// "Call from another device": a number or extension to ring instead.
    pub external_device: Option<String>,
    /// Whether incoming REFER (transfer requests) are accepted.
    pub accept_refer: bool,
}

/// The `[network]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The local address the SIP socket binds to.
    pub bind: SocketAddr,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        }
    }
}

/// The `[dial]` table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DialConfig {
    /// Upper-case ISO 3166 alpha-2 code used for numbers typed without `+`.
    pub default_region: Option<String>,
}

/// Which audio device a call uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AudioDeviceChoice {
    /// The system's default sound card (falls back to `none`, with a notice, when absent).
    #[default]
    Default,
    /// No sound card: silence is sent, nothing is played (SSH, CI).
    None,
    /// Microphone from `file_in`, speaker to `file_out` (WAV).
    File,
    /// A sound card by name (`ringside devices` lists them).
    Named(String),
}

/// The `[audio]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioConfig {
    pub device: AudioDeviceChoice,
    /// The sound card for the microphone when it is not `device` (`ringside devices` names).
    pub input: Option<String>,
    /// The sound card for the speaker when it is not `device`.
    pub output: Option<String>,
    pub file_in: Option<PathBuf>,
    pub file_out: Option<PathBuf>,
    /// Codec names in preference order, as offered in SDP.
    pub codecs: Vec<String>,
    pub tone_region: ToneRegionChoice,
    /// RTP ports are taken from this range (even numbers; RTCP uses the odd one above).
    pub rtp_ports: (u16, u16),
    /// Record every answered call (two-channel WAV: agent, remote).
    pub record: bool,
    /// Where recordings go; `None` = the data dir's `recordings/`.
    pub record_dir: Option<PathBuf>,
}

impl Default for AudioConfig {
    fn default() -> Self {
        Self {
            device: AudioDeviceChoice::Default,
            input: None,
            output: None,
            file_in: None,
            file_out: None,
            codecs: DEFAULT_CODECS.iter().map(|c| c.to_string()).collect(),
            tone_region: ToneRegionChoice::Us,
            rtp_ports: (16384, 32766),
            record: false,
            record_dir: None,
        }
    }
}

/// Ringback, busy and congestion cadences differ by country.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToneRegionChoice {
    #[default]
    Us,
    Eu,
}

/// The `[sip]` table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SipConfig {
    pub timers: SipTimers,
    /// The User-Agent header; `None` means the caller's `ringside/<version>`.
    pub user_agent: Option<String>,
}

impl SipConfig {
    /// The User-Agent to send: the configured one, else `ringside/<version>`.
    pub fn user_agent_or_default(&self, version: &str) -> String {
        match &self.user_agent {
            Some(configured) => configured.clone(),
            None => format!("ringside/{version}"),
        }
    }
}

/// RFC 3261 timer bases (section 17.1.1.1): T1 (RTT estimate), T2 (maximum
/// non-INVITE retransmit interval) and T4 (how long a message may linger in
/// the network).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipTimers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for SipTimers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(DEFAULT_T1_MS.into()),
            t2: Duration::from_millis(DEFAULT_T2_MS.into()),
            t4: Duration::from_millis(DEFAULT_T4_MS.into()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
}

impl Transport {
    /// The lower-case token used in `;transport=` and in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }

    fn parse(text: &str) -> Option<Transport> {
        if text.eq_ignore_ascii_case("udp") {
            Some(Transport::Udp)
        } else if text.eq_ignore_ascii_case("tcp") {
            Some(Transport::Tcp)
        } else {
            None
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How incoming calls are refused when `reject_incoming` is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RejectWith {
    /// 486 Busy Here: the caller may try again later or be sent to voicemail.
    #[default]
    Busy,
    /// 603 Decline: the callee does not want the call.
    Decline,
}

impl RejectWith {
    pub fn status_code(self) -> u16 {
        match self {
            RejectWith::Busy => 486,
            RejectWith::Decline => 603,
        }
    }
}

/// A server address written as `sip:host[:port][;transport=udp|tcp]`.
///
/// `host` is a name or an IP address; an IPv6 address is stored without its
/// brackets (`::1`), and [`fmt::Display`] puts them back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUri {
    pub host: String,
    pub port: Option<u16>,
    /// From `;transport=`, else the account's `transport`.
    pub transport: Transport,
}

impl fmt::Display for ProxyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "sip:[{}]", self.host)?;
        } else {
            write!(f, "sip:{}", self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        if self.transport == Transport::Tcp {
            f.write_str(";transport=tcp")?;
        }
        Ok(())
    }
}

/// A password. Its `Debug` output is `Secret(***)` and it has no `Display`,
/// so it cannot leak into logs or error messages by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The clear text, for the digest computation and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Why a configuration could not be read. Every variant except [`ConfigError::Read`]
/// starts with `FILE:LINE:`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "{}: cannot read the config file: {error}\n  create it from config.example.toml or pass --config FILE",
        path.display()
    )]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error("{}:{line}: invalid TOML: {message}", file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        message: String,
    },

    #[error(
        "{}:{line}: Missing parameter: [{section}].{key}\n  add {key} = \"...\" under [{section}]",
        file.display()
    )]
    Missing {
        file: PathBuf,
        line: usize,
        section: &'static str,
        key: &'static str,
    },

    /// `value` is `None` when the value must not be shown (the password).
    #[error(
        "{}:{line}: [{section}].{key}{}: {problem}",
        file.display(),
        value.as_ref().map(|shown| format!(" = {shown}")).unwrap_or_default()
    )]
    Invalid {
        file: PathBuf,
        line: usize,
        section: &'static str,
        key: String,
        value: Option<String>,
        problem: String,
    },

    #[error(
        "{}:{line}: unknown key [{section}].{key}: allowed keys are {}{}",
        file.display(),
        allowed.join(", "),
        suggestion.map(|near| format!("\n  did you mean {near}?")).unwrap_or_default()
    )]
    UnknownKey {
        file: PathBuf,
        line: usize,
        section: &'static str,
        key: String,
        allowed: &'static [&'static str],
        suggestion: Option<&'static str>,
    },

    #[error(
        "{}:{line}: unknown section [{section}]: allowed sections are {}{}",
        file.display(),
        SECTIONS.join(", "),
        suggestion.map(|near| format!("\n  did you mean [{near}]?")).unwrap_or_default()
    )]
    UnknownSection {
        file: PathBuf,
        line: usize,
        section: String,
        suggestion: Option<&'static str>,
    },

    #[error(
        "{}:{line}: [{section}] must be a table: write a [{section}] header and put its keys below it",
        file.display()
    )]
    NotATable {
        file: PathBuf,
        line: usize,
        section: &'static str,
    },
}

const SECTIONS: &[&str] = &[
    "account", "network", "dial", "sip", "audio", "ui", "ami", "queues", "email",
];
const UI_KEYS: &[&str] = &["theme", "notifications", "keymap"];
const AMI_KEYS: &[&str] = &["address", "user", "secret"];
const EMAIL_KEYS: &[&str] = &[
    "transport",
    "host",
    "port",
    "security",
    "user",
    "password",
    "from",
    "ca_file",
    "helo_name",
    "sendmail_path",
    "subject",
    "body",
];
const AUDIO_KEYS: &[&str] = &[
    "device",
    "input",
    "output",
    "file_in",
    "file_out",
    "codecs",
    "tone_region",
    "rtp_port_min",
    "rtp_port_max",
    "record",
    "record_dir",
];
/// The codecs the media layer implements, in the default preference order.
#[cfg(feature = "opus")]
pub const SUPPORTED_CODECS: &[&str] = &["PCMU", "PCMA", "G722", "opus"];
/// The codecs the media layer implements, in the default preference order.
#[cfg(not(feature = "opus"))]
pub const SUPPORTED_CODECS: &[&str] = &["PCMU", "PCMA", "G722"];
const DEFAULT_CODECS: &[&str] = &["PCMU", "PCMA"];
const RTP_PORT_RANGE: RangeInclusive<i64> = 1024..=65_534;
const ACCOUNT_KEYS: &[&str] = &[
    "display_name",
    "username",
    "auth_username",
    "password",
    "domain",
    "registrar",
    "outbound_proxy",
    "expires",
    "transport",
    "reject_incoming",
    "reject_with",
    "auto_answer",
    "external_device",
    "accept_refer",
];
const NETWORK_KEYS: &[&str] = &["bind"];
const DIAL_KEYS: &[&str] = &["default_region"];
const SIP_KEYS: &[&str] = &["t1_ms", "t2_ms", "t4_ms", "user_agent"];

const DEFAULT_EXPIRES: u32 = 600;
const EXPIRES_RANGE: RangeInclusive<i64> = 60..=86_400;
const AUTO_ANSWER_RANGE: RangeInclusive<i64> = 0..=60;
const DEFAULT_T1_MS: u32 = 500;
const DEFAULT_T2_MS: u32 = 4_000;
const DEFAULT_T4_MS: u32 = 5_000;
const T1_RANGE: RangeInclusive<i64> = 50..=10_000;
const T2_RANGE: RangeInclusive<i64> = 100..=60_000;
const T4_RANGE: RangeInclusive<i64> = 100..=60_000;

const PROXY_FORMAT: &str = "expected sip:host[:port][;transport=udp|tcp]";

impl Config {
    /// Parses `text`; `origin` is only used to name the file in errors.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let source = Source { file: origin, text };
        let document: RawDocument = toml::from_str(text).map_err(|error| ConfigError::Syntax {
            file: origin.to_path_buf(),
            line: error.span().map_or(1, |span| line_of(text, span.start)),
            // toml's first line names the fault; later lines say what was expected.
            message: error.message().lines().collect::<Vec<_>>().join("\n  "),
        })?;
        source.build(document)
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Config::from_toml_str(&text, path)
    }

    /// `$XDG_CONFIG_HOME/ringside/config.toml` or the platform's equivalent;
    /// `None` when no home directory is known.
    pub fn default_path() -> Option<PathBuf> {
        directories::ProjectDirs::from("", "", "ringside")
            .map(|dirs| dirs.config_dir().join("config.toml"))
    }

    /// Loads `explicit` (which must exist), or else the default path if a file
    /// is there. `Ok(None)` means no config file: run with the demo PBX.
    pub fn find(explicit: Option<&Path>) -> Result<Option<(PathBuf, Config)>, ConfigError> {
        if let Some(path) = explicit {
            return Config::load(path).map(|config| Some((path.to_path_buf(), config)));
        }
        let Some(path) = Config::default_path() else {
            return Ok(None);
        };
        match Config::load(&path) {
            Ok(config) => Ok(Some((path, config))),
            Err(ConfigError::Read { error, .. })
                if error.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            Err(other) => Err(other),
        }
    }
}

// ---------------------------------------------------------------------------
// The loose tree toml deserializes into: sections and their entries in file
// order, each key with its byte span. Values stay `toml::Value` so that any
// TOML value (dates included) reaches the validator instead of failing inside
// serde with a message about Rust types.

struct RawDocument {
    sections: Vec<RawSection>,
}

struct RawSection {
    name: Spanned<String>,
    body: RawBody,
}

enum RawBody {
    Table(Vec<RawEntry>),
    NotATable,
}

struct RawEntry {
    key: Spanned<String>,
    value: toml::Value,
}

impl<'de> Deserialize<'de> for RawDocument {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DocumentVisitor;
        impl<'de> Visitor<'de> for DocumentVisitor {
            type Value = RawDocument;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a TOML document")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawDocument, A::Error> {
                let mut sections = Vec::new();
                while let Some(name) = map.next_key::<Spanned<String>>()? {
                    let body = map.next_value::<RawBody>()?;
                    sections.push(RawSection { name, body });
                }
                Ok(RawDocument { sections })
            }
        }
        deserializer.deserialize_map(DocumentVisitor)
    }
}

impl<'de> Deserialize<'de> for RawBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BodyVisitor;
        impl<'de> Visitor<'de> for BodyVisitor {
            type Value = RawBody;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawBody, A::Error> {
                let mut entries = Vec::new();
                loop {
                    // A key without a span can only come from a TOML date-time,
                    // which toml hands over as a one-entry map: not a table.
                    let Ok(next) = map.next_key::<Spanned<String>>() else {
                        return Ok(RawBody::NotATable);
                    };
                    let Some(key) = next else { break };
                    let value = map.next_value::<toml::Value>()?;
                    entries.push(RawEntry { key, value });
                }
                Ok(RawBody::Table(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawBody, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RawBody::NotATable)
            }
            fn visit_bool<E>(self, _: bool) -> Result<RawBody, E> {
                Ok(RawBody::NotATable)
            }
            fn visit_i64<E>(self, _: i64) -> Result<RawBody, E> {
                Ok(RawBody::NotATable)
            }
            fn visit_u64<E>(self, _: u64) -> Result<RawBody, E> {
                Ok(RawBody::NotATable)
            }
            fn visit_f64<E>(self, _: f64) -> Result<RawBody, E> {
                Ok(RawBody::NotATable)
            }
            fn visit_str<E>(self, _: &str) -> Result<RawBody, E> {
                Ok(RawBody::NotATable)
            }
        }
        deserializer.deserialize_any(BodyVisitor)
    }
}

// ---------------------------------------------------------------------------
// Validation of the loose tree into `Config`.

struct Source<'a> {
    file: &'a Path,
    text: &'a str,
}

/// What went wrong with one value; the caller adds file, line and key.
struct Problem(String);

impl<'a> Source<'a> {
    fn line(&self, key: &Spanned<String>) -> usize {
        line_of(self.text, key.span().start)
    }

    fn build(&self, document: RawDocument) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        for section in &document.sections {
            let Some(&name) = SECTIONS
                .iter()
                .find(|known| **known == section.name.get_ref().as_str())
            else {
                return Err(ConfigError::UnknownSection {
                    file: self.file.to_path_buf(),
                    line: self.line(&section.name),
                    section: printable(section.name.get_ref(), ""),
                    suggestion: nearest(section.name.get_ref(), SECTIONS),
                });
            };
            let RawBody::Table(entries) = &section.body else {
                return Err(ConfigError::NotATable {
                    file: self.file.to_path_buf(),
                    line: self.line(&section.name),
                    section: name,
                });
            };
            match name {
                "account" => config.account = Some(self.account(&section.name, entries)?),
                "network" => config.network = self.network(entries)?,
                "dial" => config.dial = self.dial(entries)?,
                "audio" => config.audio = self.audio(entries)?,
                "ui" => config.ui = self.ui(entries)?,
                "ami" => config.ami = Some(self.ami(&section.name, entries)?),
                "queues" => config.queues = self.queues(entries)?,
                "email" => config.email = Some(self.email(&section.name, entries)?),
                _ => config.sip = self.sip(entries)?,
            }
        }
        Ok(config)
    }

    /// Checks that every key of a section is known, so typos are reported.
    fn known_key(
        &self,
        section: &'static str,
        allowed: &'static [&'static str],
        entry: &RawEntry,
    ) -> Result<&'static str, ConfigError> {
        let key = entry.key.get_ref();
        allowed
            .iter()
            .find(|known| **known == key)
            .copied()
            .ok_or_else(|| ConfigError::UnknownKey {
                file: self.file.to_path_buf(),
                line: self.line(&entry.key),
                section,
                key: printable(key, ""),
                allowed,
                suggestion: nearest(key, allowed),
            })
    }

    fn check<T>(
        &self,
        section: &'static str,
        entry: &RawEntry,
        parsed: Result<T, Problem>,
    ) -> Result<T, ConfigError> {
        let secret = (matches!(section, "account" | "email") && entry.key.get_ref() == "password")
            || (section == "ami" && entry.key.get_ref() == "secret");
        parsed.map_err(|Problem(problem)| ConfigError::Invalid {
            file: self.file.to_path_buf(),
            line: self.line(&entry.key),
            section,
            key: printable(entry.key.get_ref(), ""),
            value: (!secret).then(|| show_value(&entry.value)),
            problem,
        })
    }

    fn account(
        &self,
        header: &Spanned<String>,
        entries: &[RawEntry],
    ) -> Result<AccountConfig, ConfigError> {
        const S: &str = "account";
        let mut display_name = None;
        let mut username = None;
        let mut auth_username = None;
        let mut password = None;
        let mut domain = None;
        let mut registrar: Option<(HostPort, Option<Transport>)> = None;
        let mut outbound_proxy: Option<(HostPort, Option<Transport>)> = None;
        let mut expires = DEFAULT_EXPIRES;
        let mut transport = Transport::Udp;
        let mut reject_incoming = false;
        let mut reject_with = RejectWith::Busy;
        let mut auto_answer = None;
        let mut external_device = None;
        let mut accept_refer = true;

        for entry in entries {
            let value = &entry.value;
            match self.known_key(S, ACCOUNT_KEYS, entry)? {
                "display_name" => {
                    display_name = Some(self.check(S, entry, one_line_text(value))?)
                }
                "username" => username = Some(self.check(S, entry, sip_user(value))?),
                "auth_username" => auth_username = Some(self.check(S, entry, auth_user(value))?),
                "password" => password = Some(self.check(S, entry, password_text(value))?),
                "domain" => domain = Some(self.check(S, entry, sip_domain(value))?),
                "registrar" => registrar = Some(self.check(S, entry, sip_server_uri(value))?),
                "outbound_proxy" => {
                    outbound_proxy = Some(self.check(S, entry, sip_server_uri(value))?);
                }
                "expires" => {
                    expires =
                        self.check(S, entry, whole_number(value, EXPIRES_RANGE, "seconds"))?;
                }
                "transport" => transport = self.check(S, entry, transport_name(value))?,
                "reject_incoming" => reject_incoming = self.check(S, entry, boolean(value))?,
                "reject_with" => reject_with = self.check(S, entry, reject_with_name(value))?,
                "auto_answer" => {
                    let seconds = self.check(S, entry, auto_answer_seconds(value))?;
                    auto_answer = (seconds > 0).then(|| Duration::from_secs(seconds.into()));
                }
                "external_device" => {
                    external_device = Some(self.check(S, entry, device_number(value))?);
                }
                _ => accept_refer = self.check(S, entry, boolean(value))?,
            }
        }

        let missing = |key: &'static str| ConfigError::Missing {
            file: self.file.to_path_buf(),
            line: self.line(header),
            section: S,
            key,
        };
        let username = username.ok_or_else(|| missing("username"))?;
        let password = password.ok_or_else(|| missing("password"))?;
        let (domain, domain_host_port) = domain.ok_or_else(|| missing("domain"))?;

        let registrar = match registrar {
            Some((host_port, explicit)) => host_port.into_uri(explicit.unwrap_or(transport)),
            None => domain_host_port.into_uri(transport),
        };
        Ok(AccountConfig {
            display_name,
            auth_username: auth_username.unwrap_or_else(|| username.clone()),
            username,
            password,
            domain,
            registrar,
            outbound_proxy: outbound_proxy
                .map(|(host_port, explicit)| host_port.into_uri(explicit.unwrap_or(transport))),
            expires,
            transport,
            reject_incoming,
            reject_with,
            auto_answer,
            external_device,
            accept_refer,
        })
    }

    fn network(&self, entries: &[RawEntry]) -> Result<NetworkConfig, ConfigError> {
        let mut network = NetworkConfig::default();
        for entry in entries {
            self.known_key("network", NETWORK_KEYS, entry)?;
            network.bind = self.check("network", entry, socket_address(&entry.value))?;
        }
        Ok(network)
    }

    fn dial(&self, entries: &[RawEntry]) -> Result<DialConfig, ConfigError> {
        let mut dial = DialConfig::default();
        for entry in entries {
            self.known_key("dial", DIAL_KEYS, entry)?;
            dial.default_region = Some(self.check("dial", entry, region_code(&entry.value))?);
        }
        Ok(dial)
    }

    fn ui(&self, entries: &[RawEntry]) -> Result<UiConfig, ConfigError> {
        const S: &str = "ui";
        let mut ui = UiConfig::default();
        for entry in entries {
            let value = &entry.value;
            match self.known_key(S, UI_KEYS, entry)? {
                "theme" => ui.theme = Some(self.check(S, entry, theme_name(value))?),
                "notifications" => ui.notifications = self.check(S, entry, boolean(value))?,
                _ => ui.keymap = Some(self.check(S, entry, file_path(value))?),
            }
        }
        Ok(ui)
    }

    fn ami(
        &self,
        header: &Spanned<String>,
        entries: &[RawEntry],
    ) -> Result<AmiAccess, ConfigError> {
        const S: &str = "ami";
        let (mut address, mut user, mut secret) = (None, None, None);
        for entry in entries {
            let value = &entry.value;
            match self.known_key(S, AMI_KEYS, entry)? {
                "address" => address = Some(self.check(S, entry, ami_address(value))?),
                "user" => user = Some(self.check(S, entry, one_line_text(value))?),
                _ => {
                    secret = Some(self.check(
                        S,
                        entry,
                        text(value, "expected the AMI secret in quotes").map(Secret::new),
                    )?)
                }
            }
        }
        let missing = |key: &'static str| ConfigError::Missing {
            file: self.file.to_path_buf(),
            line: self.line(header),
            section: S,
            key,
        };
        Ok(AmiAccess {
            address: address.ok_or_else(|| missing("address"))?,
            user: user.ok_or_else(|| missing("user"))?,
            secret: secret.ok_or_else(|| missing("secret"))?,
        })
    }

    fn email(
        &self,
        header: &Spanned<String>,
        entries: &[RawEntry],
    ) -> Result<EmailSettings, ConfigError> {
        const S: &str = "email";
        let mut sendmail = false;
        let mut smtp = SmtpSettings::new("", Security::StartTls, "");
        let mut port = None;
        let mut sendmail_path = PathBuf::from(DEFAULT_SENDMAIL_PATH);
        let mut template = FollowUpTemplate::default();
        let mut from = None;
        for entry in entries {
            let value = &entry.value;
            match self.known_key(S, EMAIL_KEYS, entry)? {
                "transport" => sendmail = self.check(S, entry, email_transport(value))?,
                "host" => smtp.host = self.check(S, entry, one_line_text(value))?,
                "port" => {
                    port = Some(self.check(S, entry, whole_number(value, 1..=65_535, "port"))?)
                }
                "security" => smtp.security = self.check(S, entry, email_security(value))?,
                "user" => smtp.user = Some(self.check(S, entry, one_line_text(value))?),
                "password" => smtp.password = Some(self.check(S, entry, password_text(value))?),
                "from" => from = Some(self.check(S, entry, one_line_text(value))?),
                "ca_file" => smtp.ca_file = Some(self.check(S, entry, file_path(value))?),
                "helo_name" => smtp.helo_name = Some(self.check(S, entry, one_line_text(value))?),
                "sendmail_path" => sendmail_path = self.check(S, entry, file_path(value))?,
                "subject" => template.subject = self.check(S, entry, one_line_text(value))?,
                _ => {
                    template.body = self.check(
                        S,
                        entry,
                        text(
                            value,
                            "expected the body template in quotes (\"\"\" for several lines)",
                        )
                        .map(str::to_owned),
                    )?
                }
            }
        }
        let line_of_key = |key: &str| {
            entries
                .iter()
                .find(|e| e.key.get_ref() == key)
                .map_or_else(|| self.line(header), |e| self.line(&e.key))
        };
        let from = from.ok_or_else(|| ConfigError::Missing {
            file: self.file.to_path_buf(),
            line: self.line(header),
            section: S,
            key: "from",
        })?;
        smtp.port = port
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| smtp.security.default_port());
        let settings = EmailSettings {
            transport: if sendmail {
                MailTransport::Sendmail {
                    path: sendmail_path,
                    from,
                }
            } else {
                smtp.from = from;
                MailTransport::Smtp(smtp)
            },
            template,
        };
        settings.validate().map_err(|error| {
            let key = match &error {
                SettingsError::InvalidFrom { .. } => "from",
                SettingsError::MissingHost => "host",
                SettingsError::ZeroPort => "port",
                SettingsError::PlainNotLoopback { .. } => "security",
                SettingsError::UserWithoutPassword => "password",
                SettingsError::PasswordWithoutUser => "user",
                SettingsError::EmptySendmailPath => "sendmail_path",
                SettingsError::Template(_) => "body",
            };
            ConfigError::Invalid {
                file: self.file.to_path_buf(),
                line: line_of_key(key),
                section: S,
                key: key.to_owned(),
                value: None,
                problem: error.to_string(),
            }
        })?;
        Ok(settings)
    }

    fn queues(&self, entries: &[RawEntry]) -> Result<Vec<QueueCodesConfig>, ConfigError> {
        let mut queues = Vec::new();
        for entry in entries {
            let name = entry.key.get_ref().clone();
            let codes = self.check("queues", entry, queue_codes(&name, &entry.value))?;
            queues.push(codes);
        }
        Ok(queues)
    }

    fn audio(&self, entries: &[RawEntry]) -> Result<AudioConfig, ConfigError> {
        const S: &str = "audio";
        let mut audio = AudioConfig::default();
        let mut min_entry = None;
        let mut max_entry = None;
        for entry in entries {
            let value = &entry.value;
            match self.known_key(S, AUDIO_KEYS, entry)? {
                "device" => audio.device = self.check(S, entry, device_choice(value))?,
                "input" => audio.input = Some(self.check(S, entry, card_name(value))?),
                "output" => audio.output = Some(self.check(S, entry, card_name(value))?),
                "file_in" => audio.file_in = Some(self.check(S, entry, file_path(value))?),
                "file_out" => audio.file_out = Some(self.check(S, entry, file_path(value))?),
                "codecs" => audio.codecs = self.check(S, entry, codec_list(value))?,
                "tone_region" => audio.tone_region = self.check(S, entry, tone_region(value))?,
                "record" => audio.record = self.check(S, entry, boolean(value))?,
                "record_dir" => audio.record_dir = Some(self.check(S, entry, file_path(value))?),
                "rtp_port_min" => {
                    let port = self.check(S, entry, whole_number(value, RTP_PORT_RANGE, "port"))?;
                    audio.rtp_ports.0 = u16::try_from(port).unwrap_or(16384);
                    min_entry = Some(entry);
                }
                _ => {
                    let port = self.check(S, entry, whole_number(value, RTP_PORT_RANGE, "port"))?;
                    audio.rtp_ports.1 = u16::try_from(port).unwrap_or(32766);
                    max_entry = Some(entry);
                }
            }
        }
        let (low, high) = audio.rtp_ports;
        // Each call needs an even RTP port and the odd RTCP port above it.
        if high < low.saturating_add(2) {
            if let Some(entry) = max_entry.or(min_entry) {
                return self.check(
                    S,
                    entry,
                    Err(Problem(format!(
                        "the range {low}..{high} holds no RTP/RTCP port pair: make rtp_port_max at least rtp_port_min + 2"
                    ))),
                );
            }
        }
        Ok(audio)
    }

    fn sip(&self, entries: &[RawEntry]) -> Result<SipConfig, ConfigError> {
        const S: &str = "sip";
        let mut t1 = DEFAULT_T1_MS;
        let mut t2 = DEFAULT_T2_MS;
        let mut t4 = DEFAULT_T4_MS;
        let mut t1_entry = None;
        let mut t2_entry = None;
        let mut user_agent = None;
        for entry in entries {
            let value = &entry.value;
            match self.known_key(S, SIP_KEYS, entry)? {
                "t1_ms" => {
                    t1 = self.check(S, entry, whole_number(value, T1_RANGE, "milliseconds"))?;
                    t1_entry = Some(entry);
                }
                "t2_ms" => {
                    t2 = self.check(S, entry, whole_number(value, T2_RANGE, "milliseconds"))?;
                    t2_entry = Some(entry);
                }
                "t4_ms" => {
                    t4 = self.check(S, entry, whole_number(value, T4_RANGE, "milliseconds"))?;
                }
                _ => user_agent = Some(self.check(S, entry, user_agent_text(value))?),
            }
        }
        if t2 < t1 {
            // T2 caps the doubling of T1, so it cannot be smaller. Blame the value the
            // user wrote (the defaults are consistent, so at least one was written).
            let blamed = t2_entry
                .map(|entry| (entry, format!("must not be less than t1_ms ({t1})")))
                .or_else(|| {
                    t1_entry
                        .map(|entry| (entry, format!("must not exceed t2_ms ({t2}, the default)")))
                });
            if let Some((entry, problem)) = blamed {
                return self.check(S, entry, Err(Problem(problem)));
            }
        }
        Ok(SipConfig {
            timers: SipTimers {
                t1: Duration::from_millis(t1.into()),
                t2: Duration::from_millis(t2.into()),
                t4: Duration::from_millis(t4.into()),
            },
            user_agent,
        })
    }
}

// ---------------------------------------------------------------------------
// Value checks. Each returns the typed value or a `Problem` saying what is allowed.

fn text<'v>(value: &'v toml::Value, problem: &str) -> Result<&'v str, Problem> {
    match value {
        toml::Value::String(text) => Ok(text),
        _ => Err(Problem(problem.to_owned())),
    }
}

/// Text that ends up in a SIP header: a CR or LF would inject header lines.
fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

fn one_line_text(value: &toml::Value) -> Result<String, Problem> {
    const PROBLEM: &str = "expected quoted text on one line, e.g. display_name = \"Alice Agent\"";
    let text = text(value, PROBLEM)?;
    if has_control(text) {
        return Err(Problem(PROBLEM.to_owned()));
    }
    Ok(text.to_owned())
}

fn theme_name(value: &toml::Value) -> Result<String, Problem> {
    const PROBLEM: &str = "expected a theme name in quotes: default, light, high-contrast, mono, \
         or the name of a file in the user theme directory";
    let name = text(value, PROBLEM)?;
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if name.is_empty() || !name.chars().all(plain) {
        return Err(Problem(PROBLEM.to_owned()));
    }
    Ok(name.to_owned())
}

fn ami_address(value: &toml::Value) -> Result<String, Problem> {
    const PROBLEM: &str =
        "expected the AMI as host or host:port in quotes, e.g. \"pbx.example.com:5038\"";
    let address = text(value, PROBLEM)?;
    if parse_host_port(address).is_none() {
        return Err(Problem(PROBLEM.to_owned()));
    }
    Ok(address.to_owned())
}

/// A dial string for a queue code: digits, `*` and `#` (and `+` for numbers).
fn dial_code(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 32
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | '+'))
}

fn queue_codes(name: &str, value: &toml::Value) -> Result<QueueCodesConfig, Problem> {
    let problem = || {
        Problem(
            "expected the queue's agent codes, e.g. support = { login = \"*600\", logout = \"*601\" } \
             (digits, * and #; extension optional)"
                .to_owned(),
        )
    };
    let toml::Value::Table(table) = value else {
        return Err(problem());
    };
    let mut login = None;
    let mut logout = None;
    let mut extension = None;
    for (key, value) in table {
        let code = match value {
            toml::Value::String(code) if dial_code(code) => code.clone(),
            _ => return Err(problem()),
        };
        match key.as_str() {
            "login" => login = Some(code),
            "logout" => logout = Some(code),
            "extension" => extension = Some(code),
            other => {
                return Err(Problem(format!(
                    "unknown key {:?} in the queue's codes: allowed are login, logout, extension",
                    printable(other, "")
                )))
            }
        }
    }
    match (login, logout) {
        (Some(login), Some(logout)) => Ok(QueueCodesConfig {
            name: name.to_owned(),
            login,
            logout,
            extension,
        }),
        _ => Err(problem()),
    }
}

fn sip_user(value: &toml::Value) -> Result<String, Problem> {
    const PROBLEM: &str = "expected the SIP user or extension in quotes, e.g. username = \"101\" \
         (no spaces, @ or :)";
    let text = text(value, PROBLEM)?;
    let forbidden = |c: char| c.is_whitespace() || c.is_control() || "@:<>\"".contains(c);
    if text.is_empty() || text.chars().any(forbidden) {
        return Err(Problem(PROBLEM.to_owned()));
    }
    Ok(text.to_owned())
}

fn auth_user(value: &toml::Value) -> Result<String, Problem> {
    const PROBLEM: &str =
        "expected the authentication user name in quotes, e.g. auth_username = \"101\" (no spaces)";
    let text = text(value, PROBLEM)?;
    if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Problem(PROBLEM.to_owned()));
    }
    Ok(text.to_owned())
}

/// `transport = "smtp" | "sendmail"`: true for sendmail.
fn email_transport(value: &toml::Value) -> Result<bool, Problem> {
    const PROBLEM: &str = "expected \"smtp\" or \"sendmail\"";
    match text(value, PROBLEM)?.trim().to_ascii_lowercase().as_str() {
        "smtp" => Ok(false),
        "sendmail" => Ok(true),
        _ => Err(Problem(PROBLEM.to_owned())),
    }
}

fn email_security(value: &toml::Value) -> Result<Security, Problem> {
    const PROBLEM: &str =
        "expected \"starttls\" (port 587), \"tls\" (port 465) or \"plain\" (loopback only)";
    Security::from_config_name(text(value, PROBLEM)?).ok_or_else(|| Problem(PROBLEM.to_owned()))
}

fn password_text(value: &toml::Value) -> Result<Secret, Problem> {
    text(
        value,
        "expected the password in quotes, e.g. password = \"...\"",
    )
    .map(Secret::new)
}

fn sip_domain(value: &toml::Value) -> Result<(String, HostPort), Problem> {
    const PROBLEM: &str = "expected the SIP domain as host or host:port, e.g. pbx.example.com";
    let text = text(value, PROBLEM)?;
    let host_port = parse_host_port(text).ok_or_else(|| Problem(PROBLEM.to_owned()))?;
    Ok((text.to_owned(), host_port))
}

fn sip_server_uri(value: &toml::Value) -> Result<(HostPort, Option<Transport>), Problem> {
    let text = text(value, PROXY_FORMAT)?;
    parse_server_uri(text).ok_or_else(|| Problem(PROXY_FORMAT.to_owned()))
}

fn whole_number(
    value: &toml::Value,
    range: RangeInclusive<i64>,
    unit: &str,
) -> Result<u32, Problem> {
    let problem = || {
        Problem(format!(
            "must be a whole number of {unit} from {} to {}",
            range.start(),
            range.end()
        ))
    };
    match value {
        toml::Value::Integer(number) if range.contains(number) => {
            u32::try_from(*number).map_err(|_| problem())
        }
        _ => Err(problem()),
    }
}

fn auto_answer_seconds(value: &toml::Value) -> Result<u32, Problem> {
    let problem = || {
        Problem(format!(
            "must be a whole number of seconds from 1 to {}, or 0 for off",
            AUTO_ANSWER_RANGE.end()
        ))
    };
    match value {
        toml::Value::Integer(number) if AUTO_ANSWER_RANGE.contains(number) => {
            u32::try_from(*number).map_err(|_| problem())
        }
        _ => Err(problem()),
    }
}

fn boolean(value: &toml::Value) -> Result<bool, Problem> {
    match value {
        toml::Value::Boolean(flag) => Ok(*flag),
        _ => Err(Problem(
            "expected true or false (without quotes)".to_owned(),
        )),
    }
}

fn device_choice(value: &toml::Value) -> Result<AudioDeviceChoice, Problem> {
    const PROBLEM: &str =
        "expected \"default\", \"none\", \"file\" or a sound card name from `ringside devices`";
    let name = text(value, PROBLEM)?;
    if name.trim().is_empty() || has_control(name) {
        return Err(Problem(PROBLEM.to_owned()));
    }
    Ok(match name.to_ascii_lowercase().as_str() {
        "default" => AudioDeviceChoice::Default,
        "none" => AudioDeviceChoice::None,
        "file" => AudioDeviceChoice::File,
        _ => AudioDeviceChoice::Named(name.to_owned()),
    })
}

fn card_name(value: &toml::Value) -> Result<String, Problem> {
    const PROBLEM: &str =
        "expected a sound card name from `ringside devices`, e.g. \"USB Headset\"";
    let name = text(value, PROBLEM)?;
    if name.trim().is_empty() || has_control(name) {
        return Err(Problem(PROBLEM.to_owned()));
    }
    Ok(name.trim().to_owned())
}

fn file_path(value: &toml::Value) -> Result<PathBuf, Problem> {
    const PROBLEM: &str = "expected a file path in quotes, e.g. \"/home/me/greeting.wav\"";
    let path = text(value, PROBLEM)?;
    if path.trim().is_empty() || has_control(path) {
        return Err(Problem(PROBLEM.to_owned()));
    }
    Ok(PathBuf::from(path))
}

fn codec_list(value: &toml::Value) -> Result<Vec<String>, Problem> {
    let problem = || {
        Problem(format!(
            "expected a list of codec names, e.g. [\"PCMU\", \"PCMA\"]; supported: {}",
            SUPPORTED_CODECS.join(", ")
        ))
    };
    let toml::Value::Array(items) = value else {
        return Err(problem());
    };
    let mut codecs: Vec<String> = Vec::new();
    for item in items {
        let toml::Value::String(name) = item else {
            return Err(problem());
        };
        let Some(known) = SUPPORTED_CODECS
            .iter()
            .find(|c| c.eq_ignore_ascii_case(name.trim()))
        else {
            if name.trim().eq_ignore_ascii_case("opus") {
                return Err(Problem(format!(
                    "this ringside was built without Opus (cargo feature `opus`, which needs libopus-dev); rebuild with it or choose from: {}",
                    SUPPORTED_CODECS.join(", ")
                )));
            }
            return Err(Problem(format!(
                "unknown codec {:?}; supported: {}",
                name,
                SUPPORTED_CODECS.join(", ")
            )));
        };
        if !codecs.iter().any(|c| c == known) {
            codecs.push((*known).to_owned());
        }
    }
    if codecs.is_empty() {
        return Err(problem());
    }
    Ok(codecs)
}

fn tone_region(value: &toml::Value) -> Result<ToneRegionChoice, Problem> {
    const PROBLEM: &str = "allowed values are us (North American tones), eu (ETSI 425 Hz tones)";
    match text(value, PROBLEM)?.to_ascii_lowercase().as_str() {
        "us" => Ok(ToneRegionChoice::Us),
        "eu" => Ok(ToneRegionChoice::Eu),
        _ => Err(Problem(PROBLEM.to_owned())),
    }
}

fn transport_name(value: &toml::Value) -> Result<Transport, Problem> {
    const PROBLEM: &str = "allowed values are udp, tcp";
    Transport::parse(text(value, PROBLEM)?).ok_or_else(|| Problem(PROBLEM.to_owned()))
}

fn reject_with_name(value: &toml::Value) -> Result<RejectWith, Problem> {
    const PROBLEM: &str = "allowed values are busy (486 Busy Here), decline (603 Decline)";
    let text = text(value, PROBLEM)?;
    if text.eq_ignore_ascii_case("busy") {
        Ok(RejectWith::Busy)
    } else if text.eq_ignore_ascii_case("decline") {
        Ok(RejectWith::Decline)
    } else {
        Err(Problem(PROBLEM.to_owned()))
    }
}

fn device_number(value: &toml::Value) -> Result<String, Problem> {
    // A bare TOML integer would drop a leading + or 0, so quotes are required.
    const PROBLEM: &str =
        "expected a phone number or extension in quotes, such as \"+3225551234\" or \"102\"";
    let text = text(value, PROBLEM)?;
    if text.trim().is_empty() || has_control(text) {
        return Err(Problem(PROBLEM.to_owned()));
    }
    Ok(text.to_owned())
}

fn socket_address(value: &toml::Value) -> Result<SocketAddr, Problem> {
    const PROBLEM: &str = "expected IP:port, e.g. 0.0.0.0:5060";
    text(value, PROBLEM)?
        .parse::<SocketAddr>()
        .map_err(|_| Problem(PROBLEM.to_owned()))
}

fn region_code(value: &toml::Value) -> Result<String, Problem> {
    const PROBLEM: &str = "expected a two-letter ISO 3166 country code such as BE or US";
    let text = text(value, PROBLEM)?;
    if text.len() == 2 && text.bytes().all(|byte| byte.is_ascii_alphabetic()) {
        Ok(text.to_ascii_uppercase())
    } else {
        Err(Problem(PROBLEM.to_owned()))
    }
}

fn user_agent_text(value: &toml::Value) -> Result<String, Problem> {
    const PROBLEM: &str = "expected quoted text on one line, e.g. user_agent = \"ringside/1.0\"";
    let text = text(value, PROBLEM)?;
    if text.trim().is_empty() || has_control(text) {
        return Err(Problem(PROBLEM.to_owned()));
    }
    Ok(text.to_owned())
}

// ---------------------------------------------------------------------------
// sip:host[:port][;transport=udp|tcp]

#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPort {
    host: String,
    port: Option<u16>,
}

impl HostPort {
    fn into_uri(self, transport: Transport) -> ProxyUri {
        ProxyUri {
            host: self.host,
            port: self.port,
            transport,
        }
    }
}

fn parse_server_uri(text: &str) -> Option<(HostPort, Option<Transport>)> {
    let scheme = text.get(..4)?;
    if !scheme.eq_ignore_ascii_case("sip:") {
        return None;
    }
    let rest = text.get(4..)?;
    let mut parts = rest.split(';');
    let host_port = parse_host_port(parts.next()?)?;
    let mut transport = None;
    for parameter in parts {
        let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        if name.eq_ignore_ascii_case("transport") && transport.is_none() {
            transport = Some(Transport::parse(value)?);
        } else if parameter.eq_ignore_ascii_case("lr") {
            // Loose routing is how we route anyway; accept the usual `;lr`.
        } else {
            return None;
        }
    }
    Some((host_port, transport))
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; a port of 0 is refused.
fn parse_host_port(text: &str) -> Option<HostPort> {
    let (host, port_text) = if let Some(bracketed) = text.strip_prefix('[') {
        let (inside, after) = bracketed.split_once(']')?;
        let address = inside.parse::<Ipv6Addr>().ok()?;
        let port_text = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (address.to_string(), port_text)
    } else {
        let (host, port_text) = match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        if !is_host_name(host) {
            return None;
        }
        (host.to_owned(), port_text)
    };
    let port = match port_text {
        None => None,
        Some(digits) => Some(parse_port(digits)?),
    };
    Some(HostPort { host, port })
}

/// A DNS name or dotted IPv4 address: letters, digits, `-` and `.`.
fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
        })
}

fn parse_port(digits: &str) -> Option<u16> {
    // `u16::from_str` would accept a leading `+`.
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u16>().ok().filter(|port| *port != 0)
}

// ---------------------------------------------------------------------------
// Error helpers.

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../config.example.toml");

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(text, Path::new("config.toml"))
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(error) => error.to_string(),
        }
    }

    fn account(text: &str) -> AccountConfig {
        match parse(text) {
            Ok(Config {
                account: Some(account),
                ..
            }) => account,
            other => panic!("expected an account, got {other:?}"),
        }
    }

    const MINIMAL: &str =
        "[account]\nusername = \"101\"\npassword = \"pw\"\ndomain = \"pbx.example.com\"\n";

    fn with_account(extra: &str) -> String {
        format!("{MINIMAL}{extra}\n")
    }

    #[test]
    fn example_file_parses_and_sets_every_value() {
        let config = parse(EXAMPLE).expect("config.example.toml must parse");
        let account = config.account.expect("the example has an [account]");
        assert_eq!(account.display_name.as_deref(), Some("Alice Agent"));
        assert_eq!(account.username, "101");
        assert_eq!(account.auth_username, "101");
        assert_eq!(account.password.expose(), "change-me");
        assert_eq!(account.domain, "pbx.example.com");
        assert_eq!(account.registrar.to_string(), "sip:pbx.example.com:5060");
        assert_eq!(
            account
                .outbound_proxy
                .map(|proxy| proxy.to_string())
                .as_deref(),
            Some("sip:pbx.example.com:5060")
        );
        assert_eq!(account.expires, 600);
        assert_eq!(account.transport, Transport::Udp);
        assert!(!account.reject_incoming);
        assert_eq!(account.reject_with, RejectWith::Busy);
        assert_eq!(account.auto_answer, None);
        assert_eq!(account.external_device.as_deref(), Some("+3225551234"));
        assert!(account.accept_refer);
        assert_eq!(config.network.bind.to_string(), "0.0.0.0:0");
        assert_eq!(config.dial.default_region.as_deref(), Some("BE"));
        assert_eq!(config.sip.timers, SipTimers::default());
        assert_eq!(config.sip.user_agent.as_deref(), Some("ringside"));
    }

    /// Every key is in the example, each under a comment that gives its default
    /// or says it is required.
    #[test]
    fn example_file_documents_every_key() {
        let lines: Vec<&str> = EXAMPLE.lines().collect();
        let sections = [
            ("account", ACCOUNT_KEYS),
            ("network", NETWORK_KEYS),
            ("dial", DIAL_KEYS),
            ("sip", SIP_KEYS),
            ("audio", AUDIO_KEYS),
            ("ui", UI_KEYS),
            ("ami", AMI_KEYS),
        ];
        for (section, keys) in sections {
            assert!(
                EXAMPLE.contains(&format!("\n[{section}]\n")),
                "[{section}] missing"
            );
            for key in keys {
                let at = lines
                    .iter()
                    .position(|line| line.starts_with(&format!("{key} = ")))
                    .unwrap_or_else(|| panic!("{key} is not in config.example.toml"));
                let comment: Vec<&str> = lines[..at]
                    .iter()
                    .rev()
                    .take_while(|line| line.starts_with('#'))
                    .copied()
                    .collect();
                let comment = comment.join(" ").to_lowercase();
                assert!(
                    comment.contains("default") || comment.contains("required"),
                    "{key} needs a comment giving its default: {comment:?}"
                );
            }
        }
    }

    #[test]
    fn minimal_account_takes_every_default() {
        let config = parse(MINIMAL).expect("minimal config");
        let account = config.account.clone().expect("account");
        assert_eq!(account.display_name, None);
        assert_eq!(account.auth_username, "101");
        assert_eq!(account.password.expose(), "pw");
        assert_eq!(
            account.registrar,
            ProxyUri {
                host: "pbx.example.com".into(),
                port: None,
                transport: Transport::Udp
            }
        );
        assert_eq!(account.registrar.to_string(), "sip:pbx.example.com");
        assert_eq!(account.outbound_proxy, None);
        assert_eq!(account.expires, 600);
        assert_eq!(account.transport, Transport::Udp);
        assert!(!account.reject_incoming);
        assert_eq!(account.reject_with.status_code(), 486);
        assert_eq!(account.auto_answer, None);
        assert_eq!(account.external_device, None);
        assert!(account.accept_refer);
        assert_eq!(config.network.bind, SocketAddr::from(([0, 0, 0, 0], 0)));
        assert_eq!(config.dial.default_region, None);
        assert_eq!(config.sip.timers.t1, Duration::from_millis(500));
        assert_eq!(config.sip.timers.t2, Duration::from_millis(4000));
        assert_eq!(config.sip.timers.t4, Duration::from_millis(5000));
        assert_eq!(config.sip.user_agent, None);
        assert_eq!(config.sip.user_agent_or_default("0.1.0"), "ringside/0.1.0");
    }

    #[test]
    fn no_account_table_means_demo_mode() {
        assert_eq!(parse("").expect("empty file"), Config::default());
        let config = parse("[network]\nbind = \"127.0.0.1:5070\"\n").expect("network only");
        assert_eq!(config.account, None);
        assert_eq!(
            config.network.bind,
            SocketAddr::from(([127, 0, 0, 1], 5070))
        );
    }

    #[test]
    fn auth_username_is_kept_when_given() {
        let account = account(&with_account("auth_username = \"alice@pbx.example.com\""));
        assert_eq!(account.username, "101");
        assert_eq!(account.auth_username, "alice@pbx.example.com");
    }

    #[test]
    fn registrar_defaults_to_the_domain_with_its_port_and_transport() {
        let text = "[account]\nusername = \"7\"\npassword = \"\"\ndomain = \"pbx.example.com:5080\"\ntransport = \"tcp\"\n";
        let account = account(text);
        assert_eq!(account.password.expose(), "");
        assert_eq!(account.domain, "pbx.example.com:5080");
        assert_eq!(account.registrar.port, Some(5080));
        assert_eq!(account.registrar.transport, Transport::Tcp);
        assert_eq!(
            account.registrar.to_string(),
            "sip:pbx.example.com:5080;transport=tcp"
        );
    }

    #[test]
    fn ipv6_proxy_and_registrar() {
        let account = account(&with_account(
            "outbound_proxy = \"sip:[::1]:5060;transport=tcp\"\nregistrar = \"sip:[2001:db8::10]\"",
        ));
        let proxy = account.outbound_proxy.expect("proxy");
        assert_eq!(
            proxy,
            ProxyUri {
                host: "::1".into(),
                port: Some(5060),
                transport: Transport::Tcp
            }
        );
        assert_eq!(proxy.to_string(), "sip:[::1]:5060;transport=tcp");
        assert_eq!(account.registrar.host, "2001:db8::10");
        assert_eq!(account.registrar.port, None);
        assert_eq!(account.registrar.to_string(), "sip:[2001:db8::10]");
    }

    #[test]
    fn proxy_transport_parameter_beats_the_account_transport() {
        let account = account(&with_account(
            "transport = \"tcp\"\noutbound_proxy = \"SIP:10.0.0.1:5060;lr;transport=UDP\"\nregistrar = \"sip:reg.example.com\"",
        ));
        let proxy = account.outbound_proxy.expect("proxy");
        assert_eq!(proxy.host, "10.0.0.1");
        assert_eq!(proxy.transport, Transport::Udp);
        assert_eq!(
            account.registrar.transport,
            Transport::Tcp,
            "inherits transport"
        );
    }

    #[test]
    fn server_uri_parser_refuses_what_it_cannot_route() {
        for bad in [
            "pbx.example.com",
            "sip:",
            "sips:pbx.example.com",
            "sip:alice@pbx.example.com",
            "sip:pbx.example.com:0",
            "sip:pbx.example.com:+5060",
            "sip:pbx.example.com:65536",
            "sip:pbx.example.com:",
            "sip:[::1",
            "sip:[::1]5060",
            "sip:[pbx]:5060",
            "sip:::1",
            "sip:pbx.example.com;transport=sctp",
            "sip:pbx.example.com;maddr=10.0.0.1",
            "sip:pbx..example.com",
            "sip:-pbx.example.com",
            "sip:pbx example.com",
            "sip:é",
        ] {
            assert_eq!(parse_server_uri(bad), None, "{bad} was accepted");
        }
        assert_eq!(
            parse_server_uri("sip:pbx.example.com:65535"),
            Some((
                HostPort {
                    host: "pbx.example.com".into(),
                    port: Some(65535)
                },
                None
            ))
        );
    }

    #[test]
    fn missing_parameter_names_the_account_header_line() {
        assert_eq!(
            error("[account]\nusername = \"101\"\npassword = \"pw\"\n"),
            "config.toml:1: Missing parameter: [account].domain\n  add domain = \"...\" under [account]"
        );
        // The first missing one in the order username, password, domain.
        assert_eq!(
            error("# my phone\n\n[account]\ndisplay_name = \"A\"\n"),
            "config.toml:3: Missing parameter: [account].username\n  add username = \"...\" under [account]"
        );
        assert_eq!(
            error("[network]\nbind = \"0.0.0.0:0\"\n[account]\nusername = \"101\"\ndomain = \"d\"\n"),
            "config.toml:3: Missing parameter: [account].password\n  add password = \"...\" under [account]"
        );
    }

    #[test]
    fn bad_values_name_line_key_value_and_what_is_allowed() {
        let text = "[account]\nusername = \"101\"\npassword = \"pw\"\ndomain = \"d\"\n\n# renew often\nexpires = 5\n";
        assert_eq!(
            error(text),
            "config.toml:7: [account].expires = 5: must be a whole number of seconds from 60 to 86400"
        );
        assert_eq!(
            error("[dial]\ndefault_region = \"BE\"\n[network]\nbind = \"nope\"\n"),
            "config.toml:4: [network].bind = \"nope\": expected IP:port, e.g. 0.0.0.0:5060"
        );
        assert_eq!(
            error(&with_account("outbound_proxy = \"10.0.0.1\"")),
            "config.toml:5: [account].outbound_proxy = \"10.0.0.1\": expected sip:host[:port][;transport=udp|tcp]"
        );
        assert_eq!(
            error("\n[dial]\ndefault_region = \"belgium\"\n"),
            "config.toml:3: [dial].default_region = \"belgium\": expected a two-letter ISO 3166 country code such as BE or US"
        );
        assert_eq!(
            error(&with_account("transport = \"sctp\"")),
            "config.toml:5: [account].transport = \"sctp\": allowed values are udp, tcp"
        );
        assert_eq!(
            error(&with_account("reject_with = \"ignore\"")),
            "config.toml:5: [account].reject_with = \"ignore\": allowed values are busy (486 Busy Here), decline (603 Decline)"
        );
        assert_eq!(
            error(&with_account("reject_incoming = \"yes\"")),
            "config.toml:5: [account].reject_incoming = \"yes\": expected true or false (without quotes)"
        );
        assert_eq!(
            error(&with_account("auto_answer = 61")),
            "config.toml:5: [account].auto_answer = 61: must be a whole number of seconds from 1 to 60, or 0 for off"
        );
        assert_eq!(
            error("[account]\nusername = 101\n"),
            "config.toml:2: [account].username = 101: expected the SIP user or extension in quotes, e.g. username = \"101\" (no spaces, @ or :)"
        );
        assert_eq!(
            error("[sip]\nt1_ms = 20\n"),
            "config.toml:2: [sip].t1_ms = 20: must be a whole number of milliseconds from 50 to 10000"
        );
    }

    #[test]
    fn whole_numbers_are_range_checked_at_both_ends() {
        for (value, ok) in [
            ("60", true),
            ("86400", true),
            ("59", false),
            ("86401", false),
            ("-600", false),
            ("600.0", false),
            ("\"600\"", false),
            ("9223372036854775807", false),
        ] {
            let result = parse(&with_account(&format!("expires = {value}")));
            assert_eq!(result.is_ok(), ok, "expires = {value}");
        }
        assert_eq!(account(&with_account("auto_answer = 0")).auto_answer, None);
        assert_eq!(
            account(&with_account("auto_answer = 60")).auto_answer,
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_a_suggestion() {
        assert_eq!(
            error("[account]\nusername = \"101\"\nusrname = \"102\"\n"),
            "config.toml:3: unknown key [account].usrname: allowed keys are display_name, username, \
             auth_username, password, domain, registrar, outbound_proxy, expires, transport, \
             reject_incoming, reject_with, auto_answer, external_device, accept_refer\n  did you mean username?"
        );
        assert_eq!(
            error("[network]\nport = 5060\n"),
            "config.toml:2: unknown key [network].port: allowed keys are bind"
        );
        assert_eq!(
            error("[network]\nbind = \"0.0.0.0:0\"\n\n[acount]\n"),
            "config.toml:4: unknown section [acount]: allowed sections are account, network, dial, sip, audio, ui, ami, queues, email\n  did you mean [account]?"
        );
        assert_eq!(
            error("username = \"101\"\n"),
            "config.toml:1: unknown section [username]: allowed sections are account, network, dial, sip, audio, ui, ami, queues, email"
        );
        // A sub-table is an unknown key too, reported at its header.
        assert_eq!(
            error("[account]\n\n[account.extra]\nx = 1\n")
                .lines()
                .next()
                .and_then(|line| line.split(": allowed").next()),
            Some("config.toml:3: unknown key [account].extra")
        );
        // A key that needs quoting is shown escaped, so it cannot break the line.
        assert!(error("[sip]\n\"t1\\nms\" = 1\n")
            .starts_with("config.toml:2: unknown key [sip].\"t1\\nms\":"));
    }

    #[test]
    fn sections_must_be_tables() {
        let expected = "config.toml:2: [account] must be a table: write a [account] header and put its keys below it";
        assert_eq!(error("\naccount = \"101\"\n"), expected);
        assert_eq!(error("\naccount = 1979-05-27T07:32:00Z\n"), expected);
        assert_eq!(error("\n[[account]]\nusername = \"1\"\n"), expected);
    }

    #[test]
    fn dotted_keys_work_like_a_table() {
        let config =
            parse("account.username = \"1\"\naccount.password = \"p\"\naccount.domain = \"d\"\n")
                .expect("dotted keys");
        assert_eq!(
            config.account.map(|account| account.username).as_deref(),
            Some("1")
        );
        assert_eq!(
            error("\naccount.username = \"1\"\n"),
            "config.toml:2: Missing parameter: [account].password\n  add password = \"...\" under [account]"
        );
    }

    #[test]
    fn toml_syntax_errors_give_the_line() {
        assert_eq!(
            error("[account]\nusername = \"101\"\npassword = \"pw\"\ndomain = pbx.example.com\n"),
            "config.toml:4: invalid TOML: invalid string\n  expected `\"`, `'`"
        );
        assert_eq!(
            error("[account]\nusername = \"101\"\nusername = \"102\"\n"),
            "config.toml:3: invalid TOML: duplicate key `username` in table `account`"
        );
        assert!(error("\n\n[network\n")
            .starts_with("config.toml:3: invalid TOML: invalid table header"));
    }

    #[test]
    fn ui_ami_and_queue_codes_sections() {
        let config = Config::from_toml_str(
            "[ui]\ntheme = \"light\"\nnotifications = true\n\
             [ami]\naddress = \"pbx.example.com:5038\"\nuser = \"console\"\nsecret = \"s3cret\"\n\
             [queues]\nsupport = { login = \"*600\", logout = \"*601\", extension = \"600\" }\n\
             sales = { login = \"*700\", logout = \"*701\" }\n",
            Path::new("config.toml"),
        )
        .expect("valid");
        assert_eq!(config.ui.theme.as_deref(), Some("light"));
        assert!(config.ui.notifications);
        let ami = config.ami.expect("ami");
        assert_eq!(ami.address, "pbx.example.com:5038");
        assert_eq!(ami.user, "console");
        assert_eq!(ami.secret.expose(), "s3cret");
        let names: Vec<_> = config.queues.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["support", "sales"]);
        assert_eq!(config.queues[0].login, "*600");
        assert_eq!(config.queues[0].extension.as_deref(), Some("600"));
        assert_eq!(config.queues[1].logout, "*701");
        assert_eq!(config.queues[1].extension, None);
    }

    #[test]
    fn bad_ui_ami_and_queue_entries_name_line_and_key() {
        assert_eq!(
            error("[ui]\ntheme = \"../etc/x\"\n"),
            "config.toml:2: [ui].theme = \"../etc/x\": expected a theme name in quotes: default, light, \
             high-contrast, mono, or the name of a file in the user theme directory"
        );
        assert_eq!(
            error("[ami]\naddress = \"pbx:5038\"\nuser = \"u\"\n"),
            "config.toml:1: Missing parameter: [ami].secret\n  add secret = \"...\" under [ami]"
        );
        let message = error("[queues]\nsupport = { login = \"*600\" }\n");
        assert!(
            message.starts_with("config.toml:2: [queues].support = "),
            "{message}"
        );
        assert!(message.contains("logout = \"*601\""), "{message}");
        let message = error("[queues]\nsupport = { login = \"call me\", logout = \"*601\" }\n");
        assert!(message.contains("digits, * and #"), "{message}");
        // The AMI secret never shows in an error.
        let message = error("[ami]\naddress = \"pbx\"\nuser = \"u\"\nsecret = 12345\n");
        assert!(!message.contains("12345"), "{message}");
        assert!(
            message.starts_with("config.toml:4: [ami].secret"),
            "{message}"
        );
    }

    #[test]
    fn the_email_section_smtp_sendmail_and_its_errors() {
        let config = parse(
            "[email]\nhost = \"smtp.example.com\"\nsecurity = \"tls\"\nuser = \"ann\"\n\
             password = \"s3cret\"\nfrom = \"Ann Agent <ann@example.com>\"\n\
             subject = \"Our call, {started}\"\n",
        )
        .expect("valid");
        let email = config.email.expect("[email]");
        match &email.transport {
            MailTransport::Smtp(smtp) => {
                assert_eq!((smtp.host.as_str(), smtp.port), ("smtp.example.com", 465));
                assert_eq!(smtp.security, Security::Tls);
                assert_eq!(smtp.user.as_deref(), Some("ann"));
                assert_eq!(smtp.from, "Ann Agent <ann@example.com>");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(email.template.subject, "Our call, {started}");
        assert!(!format!("{email:?}").contains("s3cret"));

        let config = parse(
            "[email]\ntransport = \"sendmail\"\nsendmail_path = \"/usr/lib/sendmail\"\nfrom = \"a@b.example\"\n",
        )
        .expect("valid");
        assert!(matches!(
            config.email.map(|e| e.transport),
            Some(MailTransport::Sendmail { path, .. }) if path == Path::new("/usr/lib/sendmail")
        ));

        assert_eq!(
            error("[email]\nhost = \"smtp.example.com\"\n"),
            "config.toml:1: Missing parameter: [email].from\n  add from = \"...\" under [email]"
        );
        let message = error(
            "[email]\nhost = \"smtp.example.com\"\nsecurity = \"plain\"\nfrom = \"a@b.example\"\n",
        );
        assert!(
            message.starts_with("config.toml:3: [email].security: "),
            "{message}"
        );
        assert!(
            message.contains("only allowed to a loopback host"),
            "{message}"
        );
        let message =
            error("[email]\nhost = \"h.example\"\nfrom = \"a@b.example\"\nbody = \"Hi {name}\"\n");
        assert!(
            message.starts_with("config.toml:4: [email].body: "),
            "{message}"
        );
        assert!(message.contains("{name}"), "{message}");
        let message =
            error("[email]\nhost = \"h.example\"\nfrom = \"a@b.example\"\npassword = 42\n");
        assert!(
            message.starts_with("config.toml:4: [email].password:"),
            "{message}"
        );
        assert!(!message.contains("42"), "{message}");
    }

    #[test]
    fn secrets_never_reach_errors_or_debug_output() {
        let text =
            "[account]\nusername = \"101\"\npassword = \"hunter2\"\ndomain = \"d\"\nexpires = 1\n";
        let message = error(text);
        assert!(
            message.starts_with("config.toml:5: [account].expires = 1:"),
            "{message}"
        );
        assert!(!message.contains("hunter2"));
        assert!(!format!("{:?}", parse(text)).contains("hunter2"));

        let config = parse(&text.replace("expires = 1", "expires = 60")).expect("valid");
        let debug = format!("{config:?} {config:#?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("Secret(***)"));
        let account = config.account.expect("account");
        assert_eq!(account.password.expose(), "hunter2");

        // Neither a syntax error on the password line nor a value of the wrong
        // type echoes it.
        let message = error("[account]\npassword = hunter2\n");
        assert!(
            message.starts_with("config.toml:2: invalid TOML:"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");

        let message = error("[account]\npassword = 31337\n");
        assert_eq!(
            message,
            "config.toml:2: [account].password: expected the password in quotes, e.g. password = \"...\""
        );
    }

    #[test]
    fn header_values_refuse_line_breaks() {
        assert!(error(&with_account("display_name = \"Alice\\r\\nVia: evil\"")).starts_with(
            "config.toml:5: [account].display_name = \"Alice\\r\\nVia: evil\": expected quoted text"
        ));
        assert!(
            error("[sip]\nuser_agent = \"x\\ny\"\n").starts_with("config.toml:2: [sip].user_agent")
        );
        assert!(error("[account]\nusername = \"a b\"\n")
            .starts_with("config.toml:2: [account].username = \"a b\":"));
        assert!(error("[account]\nusername = \"\"\n")
            .starts_with("config.toml:2: [account].username = \"\":"));
        assert!(error("[account]\ndomain = \"sip:pbx.example.com\"\n").starts_with(
            "config.toml:2: [account].domain = \"sip:pbx.example.com\": expected the SIP domain"
        ));
    }

    #[test]
    fn external_device_must_be_quoted_to_keep_its_plus() {
        assert_eq!(
            error(&with_account("external_device = +3225551234")),
            "config.toml:5: [account].external_device = 3225551234: expected a phone number or \
             extension in quotes, such as \"+3225551234\" or \"102\""
        );
        assert_eq!(
            account(&with_account("external_device = \"102\""))
                .external_device
                .as_deref(),
            Some("102")
        );
    }

    #[test]
    fn other_settings_are_read() {
        let account = account(&with_account(
            "reject_incoming = true\nreject_with = \"decline\"\naccept_refer = false\ndisplay_name = \"Desk 4\"",
        ));
        assert!(account.reject_incoming);
        assert_eq!(account.reject_with, RejectWith::Decline);
        assert_eq!(account.reject_with.status_code(), 603);
        assert!(!account.accept_refer);
        assert_eq!(account.display_name.as_deref(), Some("Desk 4"));

        let config = parse(
            "[network]\nbind = \"[::]:5060\"\n[dial]\ndefault_region = \"be\"\n\
             [sip]\nt1_ms = 250\nt2_ms = 2000\nt4_ms = 100\nuser_agent = \"Desk/1\"\n",
        )
        .expect("valid");
        assert_eq!(config.network.bind.to_string(), "[::]:5060");
        assert_eq!(config.dial.default_region.as_deref(), Some("BE"));
        assert_eq!(
            config.sip.timers,
            SipTimers {
                t1: Duration::from_millis(250),
                t2: Duration::from_millis(2000),
                t4: Duration::from_millis(100),
            }
        );
        assert_eq!(config.sip.user_agent_or_default("9.9"), "Desk/1");
    }

    #[test]
    fn t2_may_not_be_below_t1() {
        assert_eq!(
            error("[sip]\nt1_ms = 500\nt2_ms = 400\n"),
            "config.toml:3: [sip].t2_ms = 400: must not be less than t1_ms (500)"
        );
        assert_eq!(
            error("[sip]\n\nt1_ms = 5000\n"),
            "config.toml:3: [sip].t1_ms = 5000: must not exceed t2_ms (4000, the default)"
        );
    }

    #[test]
    fn load_and_find_report_the_path_and_the_fix() {
        let missing =
            std::env::temp_dir().join(format!("ringside-no-such-{}.toml", std::process::id()));
        let message = match Config::find(Some(&missing)) {
            Err(error @ ConfigError::Read { .. }) => error.to_string(),
            other => panic!("expected a read error, got {other:?}"),
        };
        assert!(message.starts_with(&format!(
            "{}: cannot read the config file: ",
            missing.display()
        )));
        assert!(message.ends_with("\n  create it from config.example.toml or pass --config FILE"));

        let present =
            std::env::temp_dir().join(format!("ringside-config-{}.toml", std::process::id()));
        std::fs::write(&present, format!("{MINIMAL}expires = 0\n")).expect("write temp file");
        let message = Config::load(&present)
            .map(|_| ())
            .map_err(|error| error.to_string());
        assert_eq!(
            message,
            Err(format!(
                "{}:5: [account].expires = 0: must be a whole number of seconds from 60 to 86400",
                present.display()
            ))
        );
        std::fs::write(&present, MINIMAL).expect("write temp file");
        let found = Config::find(Some(&present)).expect("loads");
        let _ = std::fs::remove_file(&present);
        let (path, config) = found.expect("explicit path is used");
        assert_eq!(path, present);
        assert_eq!(
            config.account.map(|account| account.username).as_deref(),
            Some("101")
        );
    }

    #[test]
    fn default_path_is_ringside_config_toml() {
        if let Some(path) = Config::default_path() {
            assert!(path.ends_with("ringside/config.toml"), "{}", path.display());
        }
    }

    /// Every prefix of the example is either valid or an error that starts with
    /// FILE:LINE: — and never a panic.
    #[test]
    fn truncated_files_never_panic_and_always_name_a_line() {
        for (end, _) in EXAMPLE.char_indices() {
            if let Err(error) = parse(&EXAMPLE[..end]) {
                let message = error.to_string();
                let line = message
                    .strip_prefix("config.toml:")
                    .and_then(|rest| rest.split(':').next())
                    .and_then(|digits| digits.parse::<usize>().ok());
                let line = line.unwrap_or_else(|| panic!("no line in {message:?}"));
                // An error at the very end (an unclosed string) is on the line after the
                // last newline, the empty line editors show there.
                let prefix = &EXAMPLE[..end];
                let last_line = prefix.lines().count() + usize::from(prefix.ends_with('\n'));
                assert!(line >= 1 && line <= last_line.max(1), "{message}");
            }
        }
    }

    #[test]
    fn audio_section_values_and_errors() {
        let cfg = parse("[audio]\ndevice = \"file\"\nfile_in = \"in.wav\"\ncodecs = [\"pcma\", \"G722\", \"PCMA\"]\ntone_region = \"EU\"\nrtp_port_min = 20000\nrtp_port_max = 20100\n")
            .expect("valid");
        assert_eq!(cfg.audio.device, AudioDeviceChoice::File);
        assert_eq!(cfg.audio.file_in.as_deref(), Some(Path::new("in.wav")));
        assert_eq!(
            cfg.audio.codecs,
            vec!["PCMA".to_string(), "G722".to_string()]
        );
        assert_eq!(cfg.audio.tone_region, ToneRegionChoice::Eu);
        assert_eq!(cfg.audio.rtp_ports, (20000, 20100));
        assert_eq!(
            parse("[audio]\ndevice = \"USB Headset\"\n")
                .expect("named")
                .audio
                .device,
            AudioDeviceChoice::Named("USB Headset".into())
        );
        let split = parse("[audio]\ninput = \"USB Headset\"\noutput = \" hw:CARD=PCH,DEV=0 \"\n")
            .expect("input and output")
            .audio;
        assert_eq!(split.device, AudioDeviceChoice::Default);
        assert_eq!(split.input.as_deref(), Some("USB Headset"));
        assert_eq!(split.output.as_deref(), Some("hw:CARD=PCH,DEV=0"));
        let err = parse("[audio]\noutput = \"\"\n")
            .expect_err("empty card")
            .to_string();
        assert!(
            err.contains("[audio].output") && err.contains("ringside devices"),
            "{err}"
        );
        let err = parse("[audio]\ncodecs = [\"G729\"]\n")
            .expect_err("unknown codec")
            .to_string();
        assert!(
            err.contains("config.toml:2: [audio].codecs")
                && err.contains("unknown codec \"G729\"; supported: PCMU, PCMA, G722"),
            "{err}"
        );
        let opus = parse("[audio]\ncodecs = [\"OPUS\", \"pcmu\"]\n");
        if cfg!(feature = "opus") {
            assert_eq!(
                opus.expect("opus").audio.codecs,
                vec!["opus".to_string(), "PCMU".to_string()]
            );
        } else {
            let err = opus.expect_err("no opus").to_string();
            assert!(err.contains("built without Opus"), "{err}");
        }
        let err = parse("[audio]\nrtp_port_min = 30000\nrtp_port_max = 30001\n")
            .expect_err("range")
            .to_string();
        assert!(
            err.contains("config.toml:3: [audio].rtp_port_max")
                && err.contains("no RTP/RTCP port pair"),
            "{err}"
        );
        let err = parse("[audio]\ntone_region = \"mars\"\n")
            .expect_err("region")
            .to_string();
        assert!(err.contains("allowed values are us"), "{err}");
        assert_eq!(
            Config::default().audio.codecs,
            vec!["PCMU".to_string(), "PCMA".to_string()]
        );
    }
}
