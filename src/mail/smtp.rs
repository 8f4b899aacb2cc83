//! An SMTP submission client (RFC 5321) as a sans-IO state machine.
//!
//! Feed it the server's bytes with `handle_bytes`, tell it when the STARTTLS handshake is done
//! (`handle_tls_established`), the connection closed (`handle_closed`) or a read timed out
//! (`handle_timeout`); after each input drain `poll_transmit` (bytes to write) and
//! `poll_event` (`StartTls`: do the TLS handshake now; `Finished`: the outcome). No pipelining:
//! one command, one reply, which keeps every error tied to the step that caused it.

use std::collections::VecDeque;
use std::fmt;

use super::compose::base64;
use super::settings::Secret;

/// Longer reply lines are an error (RFC 5321 allows 512; real servers stay far below 2048).
const MAX_REPLY_LINE: usize = 2048;
/// More lines in one reply are an error (EHLO replies have a dozen or so).
const MAX_REPLY_LINES: usize = 128;
/// Reply text quoted in an error is cut to this many characters.
const MAX_QUOTED_TEXT: usize = 300;

/// One complete server reply; `lines` holds the text after the code of each line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// All lines joined with spaces, shortened for quoting in an error.
    pub fn text(&self) -> String {
        let joined = self
            .lines
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if joined.chars().count() > MAX_QUOTED_TEXT {
            let mut cut: String = joined.chars().take(MAX_QUOTED_TEXT).collect();
            cut.push_str("...");
            cut
        } else {
            joined
        }
    }

    fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("a reply line is longer than {MAX_REPLY_LINE} bytes")]
    LineTooLong,
    #[error("a reply has more than {MAX_REPLY_LINES} lines")]
    TooManyLines,
    #[error("line {line:?} does not start with a 3-digit reply code")]
    BadCode { line: String },
    #[error("line {line:?} has {found:?} after the code instead of ' ' or '-'")]
    BadSeparator { line: String, found: char },
    #[error("a multi-line reply changed its code from {first} to {then}")]
    CodeChanged { first: u16, then: u16 },
}

/// Splits the server's byte stream into replies (RFC 5321 4.2: `250-first`, `250 last`).
/// Bare LF line ends are accepted; arbitrary bytes never panic.
#[derive(Debug, Default)]
pub struct ReplyParser {
    buffer: Vec<u8>,
    code: Option<u16>,
    lines: Vec<String>,
}

fn shown_line(line: &[u8]) -> String {
    String::from_utf8_lossy(line).chars().take(80).collect()
}

impl ReplyParser {
    pub fn new() -> ReplyParser {
        ReplyParser::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// True when bytes beyond the last complete reply are waiting.
    pub fn has_buffered(&self) -> bool {
        !self.buffer.is_empty() || !self.lines.is_empty()
    }

    /// The next complete reply, `None` if more bytes are needed.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ReplyError> {
        loop {
            let Some(newline) = self.buffer.iter().position(|b| *b == b'\n') else {
                if self.buffer.len() > MAX_REPLY_LINE {
                    return Err(ReplyError::LineTooLong);
                }
                return Ok(None);
            };
            if newline > MAX_REPLY_LINE {
                return Err(ReplyError::LineTooLong);
            }
            let raw: Vec<u8> = self.buffer.drain(..=newline).collect();
            let line = raw
                .strip_suffix(b"\n")
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .unwrap_or(&raw);
            let (code, is_last, text) = parse_reply_line(line)?;
            match self.code {
                Some(first) if first != code => {
                    return Err(ReplyError::CodeChanged { first, then: code })
                }
                _ => self.code = Some(code),
            }
            if self.lines.len() >= MAX_REPLY_LINES {
                return Err(ReplyError::TooManyLines);
            }
            self.lines.push(text);
            if is_last {
                self.code = None;
                return Ok(Some(Reply {
                    code,
                    lines: std::mem::take(&mut self.lines),
                }));
            }
        }
    }
}

fn parse_reply_line(line: &[u8]) -> Result<(u16, bool, String), ReplyError> {
    let digits = match line.get(..3) {
        Some(d) if d.iter().all(u8::is_ascii_digit) && (b'2'..=b'5').contains(&d[0]) => d,
        _ => {
            return Err(ReplyError::BadCode {
                line: shown_line(line),
            })
        }
    };
    let code = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let is_last = match line.get(3) {
        None | Some(b' ') => true,
        Some(b'-') => false,
        Some(other) => {
            return Err(ReplyError::BadSeparator {
                line: shown_line(line),
                found: char::from(*other),
            })
        }
    };
    let text: String = String::from_utf8_lossy(line.get(4..).unwrap_or_default())
        .chars()
        .filter(|c| !c.is_control() || *c == '\t')
        .collect();
    Ok((code, is_last, text))
}

/// Where in the conversation something happened; errors name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Auth,
    MailFrom(String),
    RcptTo(String),
    Data,
    Message,
    Quit,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Greeting => f.write_str("the connection (greeting)"),
            Step::Ehlo => f.write_str("EHLO"),
            Step::Helo => f.write_str("HELO"),
            Step::StartTls => f.write_str("STARTTLS"),
            Step::Auth => f.write_str("AUTH"),
            Step::MailFrom(from) => write!(f, "MAIL FROM:<{from}>"),
            Step::RcptTo(to) => write!(f, "RCPT TO:<{to}>"),
            Step::Data => f.write_str("DATA"),
            Step::Message => f.write_str("the message"),
            Step::Quit => f.write_str("QUIT"),
        }
    }
}

fn advice(step: &Step, code: u16) -> &'static str {
    if (400..500).contains(&code) {
        return "a temporary failure: try again later (or send later)";
    }
    match step {
        Step::Greeting => "the server does not accept mail from this client now: check [email] host and port, or try later",
        Step::Ehlo | Step::Helo => "the server rejects this client: check [email] helo_name and the server's client restrictions",
        Step::StartTls => "the server cannot start TLS: check its TLS setup, or use security = \"tls\" on port 465",
        Step::Auth if code == 534 || code == 538 => "the server wants another kind of login (an app password, or TLS first): check the account's SMTP settings",
        Step::Auth => "check [email] user and password",
        Step::MailFrom(_) => "check that [email] from is an address this account may send as",
        Step::RcptTo(_) => "check the recipient's address in the To: line",
        Step::Data | Step::Message if code == 552 => "the message is too large for the server",
        Step::Data | Step::Message => "the server rejected the message: check its log or the message content",
        Step::Quit => "the message was already accepted; nothing to do",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmtpError {
    #[error("SMTP server {server} refused {step} ({code} {text}): {advice}")]
    Refused {
        server: String,
        step: Step,
        code: u16,
        text: String,
        advice: &'static str,
    },
    #[error("SMTP server {server} sent a malformed reply to {step} ({problem}): check that [email] host and port point to an SMTP server (port 465 needs security = \"tls\", port 587 \"starttls\")")]
    Malformed {
        server: String,
        step: Step,
        problem: ReplyError,
    },
    #[error("SMTP server {server} does not offer STARTTLS ({after}): ringside will not send the login or message unencrypted; if the server speaks TLS from the start, set [email] security = \"tls\" and port = 465")]
    StartTlsNotOffered { server: String, after: &'static str },
    #[error("SMTP server {server} sent data right after agreeing to STARTTLS, before the TLS handshake: refusing to go on (something on the path may be injecting commands); check the network path to the server")]
    StartTlsInjection { server: String },
    #[error("SMTP server {server} does not offer AUTH on this connection: remove user and password from [email] if it needs no login, or use its submission port (587)")]
    AuthNotOffered { server: String },
    #[error("SMTP server {server} offers AUTH {offered} but ringside speaks only PLAIN and LOGIN: enable one of them on the server")]
    UnsupportedAuth { server: String, offered: String },
    #[error("SMTP server {server} closed the connection during {step}: check [email] security (\"tls\" for port 465) and the server's log")]
    Closed { server: String, step: Step },
    #[error("SMTP server {server} did not answer {step} within {seconds} s: check [email] host and port and that a firewall lets SMTP through")]
    TimedOut {
        server: String,
        step: Step,
        seconds: u64,
    },
    #[error("cannot send via {server}: {problem}")]
    InvalidEnvelope { server: String, problem: String },
}

impl SmtpError {
    /// True for failures worth retrying later (4xx replies, lost connections, timeouts).
    pub fn is_transient(&self) -> bool {
        match self {
            SmtpError::Refused { code, .. } => (400..500).contains(code),
            SmtpError::Closed { .. } | SmtpError::TimedOut { .. } => true,
            _ => false,
        }
    }
}

/// Login for AUTH; the password never shows in Debug output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
}

/// What the client needs to know before the conversation starts.
#[derive(Debug, Clone)]
pub struct SmtpClientConfig {
    /// `host:port`, for errors.
    pub server: String,
    /// Sent in EHLO/HELO: a domain or an address literal like `[127.0.0.1]`.
    pub helo_name: String,
    /// Upgrade with STARTTLS and refuse to go on without it.
    pub require_starttls: bool,
    /// The connection is already TLS (implicit TLS, port 465).
    pub tls_active: bool,
    pub credentials: Option<Credentials>,
}

/// A message and its envelope: bare addresses, the message already CRLF-formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub from: String,
    pub recipients: Vec<String>,
}

/// The server accepted the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub recipients: usize,
    /// The server's reply to the message, often with its queue id.
    pub server_reply: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpEvent {
    /// The server agreed to STARTTLS: do the TLS handshake, then `handle_tls_established`.
    StartTls,
    /// The conversation is over; write any pending `poll_transmit` bytes, then close.
    Finished(Result<Delivery, SmtpError>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    AwaitingTls,
    AuthPlain,
    AuthLoginUser,
    AuthLoginPassword,
    AuthLoginDone,
    MailFrom,
    RcptTo(usize),
    Data,
    Message,
    Quit,
    Done,
}

/// The client. Its Debug output never includes the password or the message.
pub struct SmtpClient {
    config: SmtpClientConfig,
    envelope: Envelope,
    message: Vec<u8>,
    state: State,
    used_helo: bool,
    offers_starttls: bool,
    auth_mechanisms: Vec<String>,
    parser: ReplyParser,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<SmtpEvent>,
    delivery: Option<Delivery>,
}

impl fmt::Debug for SmtpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpClient")
            .field("server", &self.config.server)
            .field("state", &self.state)
            .field("recipients", &self.envelope.recipients.len())
            .field("message_bytes", &self.message.len())
            .finish_non_exhaustive()
    }
}

fn check_path(what: &str, address: &str) -> Result<(), String> {
    if address.is_empty() {
        return Err(format!("the {what} address is empty"));
    }
    if address
        .chars()
        .any(|c| c.is_control() || c == ' ' || c == '<' || c == '>')
    {
        return Err(format!(
            "the {what} address {address:?} contains spaces, control characters or angle brackets"
        ));
    }
    Ok(())
}

/// Dot-stuffs a message for DATA (RFC 5321 4.5.2), makes every line end in CRLF and appends
/// the terminating `.` line.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32 + 8);
    let body = message.strip_suffix(b"\n").unwrap_or(message);
    if !message.is_empty() {
        for line in body.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.first() == Some(&b'.') {
                out.push(b'.');
            }
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b".\r\n");
    out
}

impl SmtpClient {
    /// A client that waits for the server's greeting. Fails on an unusable envelope.
    pub fn new(
        config: SmtpClientConfig,
        envelope: Envelope,
        message: Vec<u8>,
    ) -> Result<SmtpClient, SmtpError> {
        let invalid = |problem: String| SmtpError::InvalidEnvelope {
            server: config.server.clone(),
            problem,
        };
        check_path("sender", &envelope.from).map_err(invalid)?;
        if envelope.recipients.is_empty() {
            return Err(invalid("the message has no recipient".to_string()));
        }
        for recipient in &envelope.recipients {
            check_path("recipient", recipient).map_err(invalid)?;
        }
        if config.helo_name.is_empty()
            || config.helo_name.chars().any(|c| c.is_control() || c == ' ')
        {
            return Err(invalid(format!(
                "the EHLO name {:?} is empty or has spaces: fix [email] helo_name",
                config.helo_name
            )));
        }
        Ok(SmtpClient {
            config,
            envelope,
            message,
            state: State::Greeting,
            used_helo: false,
            offers_starttls: false,
            auth_mechanisms: Vec::new(),
            parser: ReplyParser::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            delivery: None,
        })
    }

    /// True once `Finished` has been queued.
    pub fn is_finished(&self) -> bool {
        self.state == State::Done
    }

    /// The step the client is waiting on, for the driver's own errors (TLS, I/O).
    pub fn step(&self) -> Step {
        match self.state {
            State::Greeting => Step::Greeting,
            State::Ehlo => Step::Ehlo,
            State::Helo => Step::Helo,
            State::StartTls | State::AwaitingTls => Step::StartTls,
            State::AuthPlain
            | State::AuthLoginUser
            | State::AuthLoginPassword
            | State::AuthLoginDone => Step::Auth,
            State::MailFrom => Step::MailFrom(self.envelope.from.clone()),
            State::RcptTo(index) => Step::RcptTo(
                self.envelope
                    .recipients
                    .get(index)
                    .cloned()
                    .unwrap_or_default(),
            ),
            State::Data => Step::Data,
            State::Message => Step::Message,
            State::Quit | State::Done => Step::Quit,
        }
    }

    /// True while `poll_transmit` has bytes waiting.
    pub fn poll_transmit_pending(&self) -> bool {
        !self.transmit.is_empty()
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<SmtpEvent> {
        self.events.pop_front()
    }

    /// Bytes read from the server.
    pub fn handle_bytes(&mut self, bytes: &[u8]) {
        if self.state == State::Done {
            return;
        }
        self.parser.push(bytes);
        while self.state != State::Done && self.state != State::AwaitingTls {
            match self.parser.next_reply() {
                Ok(Some(reply)) => self.handle_reply(reply),
                Ok(None) => break,
                Err(problem) => {
                    let error = SmtpError::Malformed {
                        server: self.config.server.clone(),
                        step: self.step(),
                        problem,
                    };
                    self.fail(error, false);
                }
            }
        }
    }

    /// The STARTTLS handshake succeeded: greet again over TLS (RFC 3207 4.2).
    pub fn handle_tls_established(&mut self) {
        if self.state != State::AwaitingTls {
            return;
        }
        self.config.tls_active = true;
        self.offers_starttls = false;
        self.auth_mechanisms.clear();
        self.send_ehlo();
    }

    /// The server closed the connection.
    pub fn handle_closed(&mut self) {
        match self.state {
            State::Done => {}
            State::Quit => self.finish_delivered(),
            _ => {
                let error = SmtpError::Closed {
                    server: self.config.server.clone(),
                    step: self.step(),
                };
                self.fail(error, false);
            }
        }
    }

    /// No reply came within the driver's read timeout.
    pub fn handle_timeout(&mut self, waited_seconds: u64) {
        match self.state {
            State::Done => {}
            State::Quit => self.finish_delivered(),
            _ => {
                let error = SmtpError::TimedOut {
                    server: self.config.server.clone(),
                    step: self.step(),
                    seconds: waited_seconds,
                };
                self.fail(error, true);
            }
        }
    }

    fn send(&mut self, line: String) {
        self.transmit.push_back(line.into_bytes());
    }

    fn fail(&mut self, error: SmtpError, polite_quit: bool) {
        if polite_quit {
            self.send("QUIT\r\n".to_string());
        }
        self.state = State::Done;
        self.events.push_back(SmtpEvent::Finished(Err(error)));
    }

    fn finish_delivered(&mut self) {
        self.state = State::Done;
        let delivery = self.delivery.take().unwrap_or(Delivery {
            recipients: self.envelope.recipients.len(),
            server_reply: String::new(),
        });
        self.events.push_back(SmtpEvent::Finished(Ok(delivery)));
    }

    fn refuse(&mut self, reply: &Reply) {
        let step = self.step();
        let mut text = reply.text();
        if step == Step::Auth {
            text = self.redact(text);
        }
        let error = SmtpError::Refused {
            server: self.config.server.clone(),
            advice: advice(&step, reply.code),
            step,
            code: reply.code,
            text,
        };
        // 421 means the server is closing the connection itself.
        self.fail(error, reply.code != 421);
    }

    /// A server that echoes our login back must not put it into an error message.
    fn redact(&self, text: String) -> String {
        let Some(credentials) = &self.config.credentials else {
            return text;
        };
        let password = credentials.password.expose();
        let mut secrets = vec![
            base64(password.as_bytes()),
            base64(format!("\0{}\0{password}", credentials.user).as_bytes()),
        ];
        if password.len() >= 3 {
            secrets.push(password.to_string());
        }
        secrets
            .iter()
            .filter(|s| !s.is_empty())
            .fold(text, |text, secret| {
                text.replace(secret.as_str(), "<redacted>")
            })
    }

    fn send_ehlo(&mut self) {
        self.state = State::Ehlo;
        self.send(format!("EHLO {}\r\n", self.config.helo_name));
    }

    fn handle_reply(&mut self, reply: Reply) {
        match self.state {
            State::Greeting if reply.code == 220 => self.send_ehlo(),
            State::Ehlo if reply.code == 250 => {
                self.read_extensions(&reply);
                self.after_greeting();
            }
            // RFC 5321 3.2: a server that does not know EHLO gets HELO.
            State::Ehlo if (500..=502).contains(&reply.code) || reply.code == 504 => {
                self.state = State::Helo;
                self.used_helo = true;
                self.send(format!("HELO {}\r\n", self.config.helo_name));
            }
            State::Helo if reply.code == 250 => self.after_greeting(),
            State::StartTls if reply.code == 220 => {
                if self.parser.has_buffered() {
                    let error = SmtpError::StartTlsInjection {
                        server: self.config.server.clone(),
                    };
                    self.fail(error, false);
                } else {
                    self.state = State::AwaitingTls;
                    self.events.push_back(SmtpEvent::StartTls);
                }
            }
            State::AuthPlain if reply.code == 334 => {
                // The server wants the initial response on its own line.
                let response = self.plain_response();
                self.send(format!("{response}\r\n"));
            }
            State::AuthLoginUser if reply.code == 334 => {
                let user = self
                    .config
                    .credentials
                    .as_ref()
                    .map(|c| base64(c.user.as_bytes()))
                    .unwrap_or_default();
                self.state = State::AuthLoginPassword;
                self.send(format!("{user}\r\n"));
            }
            State::AuthLoginPassword if reply.code == 334 => {
                let password = self
                    .config
                    .credentials
                    .as_ref()
                    .map(|c| base64(c.password.expose().as_bytes()))
                    .unwrap_or_default();
                self.state = State::AuthLoginDone;
                self.send(format!("{password}\r\n"));
            }
            State::AuthPlain | State::AuthLoginDone if reply.code == 235 => self.send_mail_from(),
            State::MailFrom if reply.code == 250 => self.send_rcpt(0),
            State::RcptTo(index) if reply.code == 250 || reply.code == 251 => {
                self.send_rcpt(index + 1)
            }
            State::Data if reply.code == 354 => {
                self.state = State::Message;
                let stuffed = dot_stuff(&self.message);
                self.transmit.push_back(stuffed);
            }
            State::Message if reply.is_positive() => {
                self.delivery = Some(Delivery {
                    recipients: self.envelope.recipients.len(),
                    server_reply: reply.text(),
                });
                self.state = State::Quit;
                self.send("QUIT\r\n".to_string());
            }
            State::Quit => self.finish_delivered(),
            State::Done | State::AwaitingTls => {}
            _ => self.refuse(&reply),
        }
    }

    fn read_extensions(&mut self, reply: &Reply) {
        self.offers_starttls = false;
        self.auth_mechanisms.clear();
        // The first line is the server's name; each further line is one extension.
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            let keyword = words.next().unwrap_or_default().to_ascii_uppercase();
            if keyword == "STARTTLS" {
                self.offers_starttls = true;
            } else if keyword == "AUTH" || keyword.starts_with("AUTH=") {
                let inline = keyword.strip_prefix("AUTH=").map(str::to_string);
                for mechanism in inline.into_iter().chain(words.map(str::to_ascii_uppercase)) {
                    if !mechanism.is_empty() && !self.auth_mechanisms.contains(&mechanism) {
                        self.auth_mechanisms.push(mechanism);
                    }
                }
            }
        }
    }

    fn after_greeting(&mut self) {
        if self.config.require_starttls && !self.config.tls_active {
            if self.offers_starttls {
                self.state = State::StartTls;
                self.send("STARTTLS\r\n".to_string());
            } else {
                let error = SmtpError::StartTlsNotOffered {
                    server: self.config.server.clone(),
                    after: if self.used_helo {
                        "it does not understand EHLO"
                    } else {
                        "its EHLO reply does not list it"
                    },
                };
                self.fail(error, true);
            }
            return;
        }
        if self.config.credentials.is_none() {
            self.send_mail_from();
            return;
        }
        if self.auth_mechanisms.iter().any(|m| m == "PLAIN") {
            self.state = State::AuthPlain;
            let response = self.plain_response();
            self.send(format!("AUTH PLAIN {response}\r\n"));
        } else if self.auth_mechanisms.iter().any(|m| m == "LOGIN") {
            self.state = State::AuthLoginUser;
            self.send("AUTH LOGIN\r\n".to_string());
        } else if self.auth_mechanisms.is_empty() {
            let error = SmtpError::AuthNotOffered {
                server: self.config.server.clone(),
            };
            self.fail(error, true);
        } else {
            let error = SmtpError::UnsupportedAuth {
                server: self.config.server.clone(),
                offered: self.auth_mechanisms.join(" "),
            };
            self.fail(error, true);
        }
    }

    /// RFC 4616: base64 of NUL user NUL password.
    fn plain_response(&self) -> String {
        self.config
            .credentials
            .as_ref()
            .map(|c| base64(format!("\0{}\0{}", c.user, c.password.expose()).as_bytes()))
            .unwrap_or_default()
    }

    fn send_mail_from(&mut self) {
        self.state = State::MailFrom;
        self.send(format!("MAIL FROM:<{}>\r\n", self.envelope.from));
    }

    fn send_rcpt(&mut self, index: usize) {
        match self.envelope.recipients.get(index) {
            Some(recipient) => {
                let line = format!("RCPT TO:<{recipient}>\r\n");
                self.state = State::RcptTo(index);
                self.send(line);
            }
            None => {
                self.state = State::Data;
                self.send("DATA\r\n".to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &str = "s3cr3t-pa55";

    fn config(require_starttls: bool, with_login: bool) -> SmtpClientConfig {
        SmtpClientConfig {
            server: "smtp.example.com:587".into(),
            helo_name: "[192.0.2.7]".into(),
            require_starttls,
            tls_active: false,
            credentials: with_login.then(|| Credentials {
                user: "ann".into(),
                password: Secret::new(SECRET),
            }),
        }
    }

    fn envelope() -> Envelope {
        Envelope {
            from: "ann@example.com".into(),
            recipients: vec!["bob@example.org".into(), "carol@example.org".into()],
        }
    }

    fn client(require_starttls: bool, with_login: bool) -> SmtpClient {
        SmtpClient::new(
            config(require_starttls, with_login),
            envelope(),
            b"Subject: hi\r\n\r\n.dot\r\nline\r\n".to_vec(),
        )
        .expect("valid envelope")
    }

    /// Feeds one server reply and returns what the client wrote back.
    fn exchange(client: &mut SmtpClient, reply: &str) -> String {
        client.handle_bytes(reply.as_bytes());
        let mut written = Vec::new();
        while let Some(bytes) = client.poll_transmit() {
            written.extend(bytes);
        }
        String::from_utf8_lossy(&written).into_owned()
    }

    fn finished(client: &mut SmtpClient) -> Option<Result<Delivery, SmtpError>> {
        std::iter::from_fn(|| client.poll_event()).find_map(|event| match event {
            SmtpEvent::Finished(outcome) => Some(outcome),
            SmtpEvent::StartTls => None,
        })
    }

    #[test]
    fn starttls_auth_plain_two_recipients() {
        let mut c = client(true, true);
        assert_eq!(exchange(&mut c, "220 mx ESMTP\r\n"), "EHLO [192.0.2.7]\r\n");
        assert_eq!(
            exchange(&mut c, "250-mx hello\r\n250-PIPELINING\r\n250 STARTTLS\r\n"),
            "STARTTLS\r\n"
        );
        assert_eq!(exchange(&mut c, "220 go ahead\r\n"), "");
        assert_eq!(c.poll_event(), Some(SmtpEvent::StartTls));
        c.handle_tls_established();
        assert_eq!(c.poll_transmit(), Some(b"EHLO [192.0.2.7]\r\n".to_vec()));
        assert_eq!(
            exchange(
                &mut c,
                "250-mx hello\r\n250-AUTH LOGIN PLAIN\r\n250 8BITMIME\r\n"
            ),
            "AUTH PLAIN AGFubgBzM2NyM3QtcGE1NQ==\r\n"
        );
        assert_eq!(
            exchange(&mut c, "235 2.7.0 ok\r\n"),
            "MAIL FROM:<ann@example.com>\r\n"
        );
        assert_eq!(
            exchange(&mut c, "250 ok\r\n"),
            "RCPT TO:<bob@example.org>\r\n"
        );
        assert_eq!(
            exchange(&mut c, "250 ok\r\n"),
            "RCPT TO:<carol@example.org>\r\n"
        );
        assert_eq!(exchange(&mut c, "251 will forward\r\n"), "DATA\r\n");
        assert_eq!(
            exchange(&mut c, "354 go\r\n"),
            "Subject: hi\r\n\r\n..dot\r\nline\r\n.\r\n"
        );
        assert_eq!(exchange(&mut c, "250 2.0.0 queued as 4ABC\r\n"), "QUIT\r\n");
        assert!(!c.is_finished());
        assert_eq!(exchange(&mut c, "221 bye\r\n"), "");
        assert_eq!(
            finished(&mut c),
            Some(Ok(Delivery {
                recipients: 2,
                server_reply: "2.0.0 queued as 4ABC".into()
            }))
        );
        assert!(c.is_finished());
    }

    #[test]
    fn helo_fallback_without_tls_or_login() {
        let mut c = client(false, false);
        exchange(&mut c, "220 old\r\n");
        assert_eq!(
            exchange(&mut c, "502 5.5.1 command not implemented\r\n"),
            "HELO [192.0.2.7]\r\n"
        );
        assert_eq!(
            exchange(&mut c, "250 old\r\n"),
            "MAIL FROM:<ann@example.com>\r\n"
        );
    }

    #[test]
    fn auth_login_when_plain_is_missing() {
        let mut c = client(false, true);
        exchange(&mut c, "220 mx\r\n");
        assert_eq!(
            exchange(&mut c, "250-mx\r\n250 AUTH=LOGIN\r\n"),
            "AUTH LOGIN\r\n"
        );
        assert_eq!(exchange(&mut c, "334 VXNlcm5hbWU6\r\n"), "YW5u\r\n");
        assert_eq!(
            exchange(&mut c, "334 UGFzc3dvcmQ6\r\n"),
            "czNjcjN0LXBhNTU=\r\n"
        );
        assert_eq!(
            exchange(&mut c, "235 ok\r\n"),
            "MAIL FROM:<ann@example.com>\r\n"
        );
    }

    #[test]
    fn auth_refusal_names_step_code_and_advice_without_secrets() {
        let mut c = client(false, true);
        exchange(&mut c, "220 mx\r\n");
        exchange(&mut c, "250-mx\r\n250 AUTH PLAIN\r\n");
        // A hostile server echoing the login back.
        assert_eq!(
            exchange(
                &mut c,
                "535 5.7.8 bad credentials AGFubgBzM2NyM3QtcGE1NQ== s3cr3t-pa55\r\n"
            ),
            "QUIT\r\n"
        );
        let error = finished(&mut c).and_then(Result::err).expect("refused");
        assert_eq!(
            error.to_string(),
            "SMTP server smtp.example.com:587 refused AUTH (535 5.7.8 bad credentials \
             <redacted> <redacted>): check [email] user and password"
        );
        assert!(!error.is_transient());
        let debug = format!("{error:?} {c:?}");
        assert!(
            !debug.contains(SECRET) && !debug.contains("AGFubgBz"),
            "{debug}"
        );
    }

    #[test]
    fn auth_without_any_offer_and_with_unknown_mechanisms() {
        let mut c = client(false, true);
        exchange(&mut c, "220 mx\r\n");
        exchange(&mut c, "250 mx\r\n");
        let error = finished(&mut c).and_then(Result::err);
        assert!(matches!(error, Some(SmtpError::AuthNotOffered { .. })));

        let mut c = client(false, true);
        exchange(&mut c, "220 mx\r\n");
        exchange(&mut c, "250-mx\r\n250 AUTH CRAM-MD5 XOAUTH2\r\n");
        let error = finished(&mut c)
            .and_then(Result::err)
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some(
                "SMTP server smtp.example.com:587 offers AUTH CRAM-MD5 XOAUTH2 but ringside \
                 speaks only PLAIN and LOGIN: enable one of them on the server"
            )
        );
    }

    #[test]
    fn starttls_required_but_not_offered() {
        let mut c = client(true, true);
        exchange(&mut c, "220 mx\r\n");
        assert_eq!(exchange(&mut c, "250-mx\r\n250 AUTH PLAIN\r\n"), "QUIT\r\n");
        let error = finished(&mut c).and_then(Result::err);
        assert!(
            matches!(error, Some(SmtpError::StartTlsNotOffered { .. })),
            "{error:?}"
        );
    }

    #[test]
    fn data_after_starttls_reply_is_refused() {
        let mut c = client(true, false);
        exchange(&mut c, "220 mx\r\n");
        exchange(&mut c, "250-mx\r\n250 STARTTLS\r\n");
        assert_eq!(exchange(&mut c, "220 go\r\n250 injected\r\n"), "");
        assert_eq!(
            finished(&mut c),
            Some(Err(SmtpError::StartTlsInjection {
                server: "smtp.example.com:587".into()
            }))
        );
    }

    #[test]
    fn refused_recipient_is_named() {
        let mut c = client(false, false);
        exchange(&mut c, "220 mx\r\n");
        exchange(&mut c, "250 mx\r\n");
        exchange(&mut c, "250 ok\r\n");
        exchange(&mut c, "250 ok\r\n");
        assert_eq!(
            exchange(&mut c, "550-5.1.1 no such user\r\n550 5.1.1 try again\r\n"),
            "QUIT\r\n"
        );
        let error = finished(&mut c)
            .and_then(Result::err)
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some(
                "SMTP server smtp.example.com:587 refused RCPT TO:<carol@example.org> \
                 (550 5.1.1 no such user 5.1.1 try again): check the recipient's address in \
                 the To: line"
            )
        );
    }

    #[test]
    fn temporary_greeting_failure_is_transient() {
        let mut c = client(false, false);
        assert_eq!(exchange(&mut c, "421 4.3.2 busy\r\n"), "");
        let error = finished(&mut c).and_then(Result::err).expect("refused");
        assert!(error.is_transient());
        assert!(error
            .to_string()
            .contains("refused the connection (greeting) (421 4.3.2 busy)"));
    }

    #[test]
    fn replies_split_byte_by_byte() {
        let mut c = client(false, false);
        for byte in b"220 mx\n" {
            c.handle_bytes(&[*byte]);
        }
        assert_eq!(c.poll_transmit(), Some(b"EHLO [192.0.2.7]\r\n".to_vec()));
        for byte in b"250-mx\r\n250-SIZE 100\r\n250 HELP\r\n" {
            c.handle_bytes(&[*byte]);
        }
        assert_eq!(
            c.poll_transmit(),
            Some(b"MAIL FROM:<ann@example.com>\r\n".to_vec())
        );
    }

    #[test]
    fn closed_timeout_and_garbage() {
        let mut c = client(false, false);
        exchange(&mut c, "220 mx\r\n");
        c.handle_closed();
        let error = finished(&mut c)
            .and_then(Result::err)
            .map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.contains("closed the connection during EHLO")));

        let mut c = client(false, false);
        c.handle_timeout(30);
        let error = finished(&mut c)
            .and_then(Result::err)
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some(
                "SMTP server smtp.example.com:587 did not answer the connection (greeting) \
                 within 30 s: check [email] host and port and that a firewall lets SMTP through"
            )
        );

        let mut c = client(false, false);
        exchange(&mut c, "\u{16}\u{3}\u{1}binary TLS hello\r\n");
        let error = finished(&mut c).and_then(Result::err);
        assert!(
            matches!(error, Some(SmtpError::Malformed { .. })),
            "{error:?}"
        );
    }

    #[test]
    fn envelope_injection_is_refused() {
        let mut bad = envelope();
        bad.recipients
            .push("eve@example.org>\r\nRCPT TO:<x@y".into());
        let error = SmtpClient::new(config(false, false), bad, Vec::new()).err();
        assert!(matches!(error, Some(SmtpError::InvalidEnvelope { .. })));
        let mut none = envelope();
        none.recipients.clear();
        assert!(SmtpClient::new(config(false, false), none, Vec::new()).is_err());
    }

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n..c\n"), b"a\r\n..b\r\n...c\r\n.\r\n");
        assert_eq!(dot_stuff(b"no newline"), b"no newline\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
        assert_eq!(dot_stuff(b".\r\n"), b"..\r\n.\r\n");
    }

    #[test]
    fn parser_errors() {
        let mut parser = ReplyParser::new();
        parser.push(b"250-a\r\n251 b\r\n");
        assert_eq!(
            parser.next_reply(),
            Err(ReplyError::CodeChanged {
                first: 250,
                then: 251
            })
        );
        let mut parser = ReplyParser::new();
        parser.push(b"250+x\r\n");
        assert!(matches!(
            parser.next_reply(),
            Err(ReplyError::BadSeparator { found: '+', .. })
        ));
        let mut parser = ReplyParser::new();
        parser.push(&vec![b'2'; MAX_REPLY_LINE + 1]);
        assert_eq!(parser.next_reply(), Err(ReplyError::LineTooLong));
        let mut parser = ReplyParser::new();
        parser.push(b"250\r\n");
        assert_eq!(
            parser.next_reply(),
            Ok(Some(Reply {
                code: 250,
                lines: vec![String::new()]
            }))
        );
    }

    proptest! {
        #[test]
        fn parser_never_panics_on_arbitrary_bytes(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8)
        ) {
            let mut parser = ReplyParser::new();
            for chunk in &chunks {
                parser.push(chunk);
                while let Ok(Some(reply)) = parser.next_reply() {
                    prop_assert!((200..600).contains(&reply.code));
                }
            }
        }

        #[test]
        fn client_never_panics_on_arbitrary_bytes(
            prefix in proptest::sample::select(vec!["", "220 x\r\n", "220 x\r\n250-x\r\n250 AUTH LOGIN\r\n", "220 x\r\n250 STARTTLS\r\n"]),
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..6),
            tls in any::<bool>(),
        ) {
            let mut c = client(tls, tls);
            c.handle_bytes(prefix.as_bytes());
            for chunk in &chunks {
                c.handle_bytes(chunk);
                c.handle_tls_established();
                while c.poll_transmit().is_some() {}
            }
            c.handle_closed();
            let finished_count = std::iter::from_fn(|| c.poll_event())
                .filter(|e| matches!(e, SmtpEvent::Finished(_)))
                .count();
            prop_assert_eq!(finished_count, 1);
        }

        #[test]
        fn well_formed_replies_round_trip(
            code in 200u16..600,
            lines in proptest::collection::vec("[ -~]{0,60}", 1..6),
        ) {
            let mut wire = String::new();
            for (i, line) in lines.iter().enumerate() {
                let separator = if i + 1 == lines.len() { ' ' } else { '-' };
                wire.push_str(&format!("{code}{separator}{line}\r\n"));
            }
            let mut parser = ReplyParser::new();
            for byte in wire.as_bytes() {
                parser.push(&[*byte]);
                if let Some(reply) = parser.next_reply().map_err(|e| TestCaseError::fail(e.to_string()))? {
                    prop_assert_eq!(reply.code, code);
                    prop_assert_eq!(&reply.lines, &lines);
                }
            }
            prop_assert!(!parser.has_buffered());
        }
    }
}
