//! The AMI client session, sans-IO: login, the queue snapshot, live events, supervisor actions
//! and the keepalive, as a state machine fed with bytes and instants.
//!
//! One [`AmiClient`] lives as long as the console wants an AMI; a driver (`net::ami`) owns the
//! TCP connection and tells the client when one starts ([`AmiClient::handle_connected`]) and
//! ends ([`AmiClient::handle_closed`]). Every connection runs the same flow:
//!
//! 1. the banner (`Asterisk Call Manager/11.0.0`) → [`AmiClientEvent::Connected`];
//! 2. `Action: Challenge` (MD5), then `Login` with `Key: md5hex(challenge + secret)`, so the
//!    secret never crosses the wire. A PBX that refuses the challenge gets a plain `Login` with
//!    `Secret:` instead ([`LoginMethod::Md5`]; [`LoginMethod::Md5Only`] refuses to downgrade).
//!    The `Events:` filter rides on the Login. A rejected login is final
//!    ([`AmiClientEvent::LoginFailed`]): Asterisk closes the connection after a 1 s penalty,
//!    and retrying with the same secret cannot help;
//! 3. `QueueStatus` and `QueueSummary`, correlated by ActionID; their list events are collected
//!    until `QueueStatusComplete` / `QueueSummaryComplete` and handed over as one
//!    [`AmiClientEvent::Snapshot`]. Live events that arrive meanwhile are held back and follow
//!    the snapshot in their order, so a consumer that rebuilds its model from each snapshot
//!    (a full resync after every reconnect) never applies an event to the wrong base;
//! 4. live events ([`AmiClientEvent::Event`]) and the answers to supervisor actions
//!    ([`AmiClientEvent::ActionResult`], with the PBX's own text).
//!
//! Keepalive: a `Ping` every 30 s once logged in; no answer within 10 s (or no banner and login
//! within 10 s of connecting) gives [`AmiClientEvent::Disconnected`], and the driver drops the
//! connection and reconnects. Actions sent but unanswered when a connection ends are reported
//! failed (the PBX may or may not have done them, so they are not repeated); actions given
//! before the login completes wait for it, across reconnects.
//!
//! [`QueueMonitor`] is the usual consumer: it keeps the [`QueueState`] model (rebuilt from each
//! snapshot) and derives the report events.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::config::Secret;

use super::ami::{
    md5_key, AmiError, AmiFramer, AmiItem, AmiKind, AmiMessage, QueueAmiEvent, QueueParams,
    QueueSummary,
};
use super::model::QueueState;
use super::report::{ReportDeriver, ReportEvent};

/// How often an idle session is checked with `Ping`.
pub const PING_INTERVAL: Duration = Duration::from_secs(30);
/// How long a `Ping` may stay unanswered before the connection counts as dead.
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// From connecting to a completed login (Asterisk answers a wrong secret after 1 s).
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Live events held back while a snapshot is collected; older ones are dropped past this.
pub const MAX_HELD_EVENTS: usize = 10_000;
/// Actions waiting for a login; more are refused at once.
pub const MAX_QUEUED_ACTIONS: usize = 1_000;

/// Which events the AMI sends after login (the Login `Events:` header).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EventsFilter {
    /// Every class the AMI user may read.
    #[default]
    On,
    /// None: only responses and the list events of our own actions.
    Off,
    /// Only these classes (`call`, `agent`, ...). The queue model needs `agent`; the report
    /// also needs `call` (caller hang-ups and transfers).
    Classes(Vec<String>),
}

impl EventsFilter {
    /// The `Events:` value: `on`, `off` or the comma-separated classes.
    pub fn header_value(&self) -> String {
        match self {
            EventsFilter::On => "on".to_owned(),
            EventsFilter::Off => "off".to_owned(),
            EventsFilter::Classes(classes) if classes.is_empty() => "off".to_owned(),
            EventsFilter::Classes(classes) => classes.join(","),
        }
    }

    /// Reads `on`, `off` or a comma-separated class list, as a user would type it.
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        if text.eq_ignore_ascii_case("on") || text.eq_ignore_ascii_case("all") {
            return EventsFilter::On;
        }
        if text.eq_ignore_ascii_case("off") || text.is_empty() {
            return EventsFilter::Off;
        }
        EventsFilter::Classes(
            text.split(',')
                .map(str::trim)
                .filter(|class| !class.is_empty())
                .map(str::to_ascii_lowercase)
                .collect(),
        )
    }
}

/// How to log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoginMethod {
    /// MD5 challenge; a plain `Login` when the PBX refuses the challenge.
    #[default]
    Md5,
    /// MD5 challenge only: a PBX that refuses it is a failed login, the secret is never sent.
    Md5Only,
    /// `Login` with `Secret:` in clear (loopback or a trusted network only).
    Plain,
}

/// Tuning; the defaults are what a console wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmiClientOptions {
    pub login: LoginMethod,
    /// Take the QueueStatus + QueueSummary snapshot after login (off for one-shot actions).
    pub snapshot: bool,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub login_timeout: Duration,
}

impl Default for AmiClientOptions {
    fn default() -> Self {
        Self {
            login: LoginMethod::Md5,
            snapshot: true,
            ping_interval: PING_INTERVAL,
            ping_timeout: PING_TIMEOUT,
            login_timeout: LOGIN_TIMEOUT,
        }
    }
}

/// What a console asks the AMI to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmiAction {
    /// Connect an agent to a queue (a dynamic member).
    QueueAdd {
        queue: String,
        interface: String,
        member_name: Option<String>,
        paused: bool,
    },
    /// Disconnect an agent from a queue.
    QueueRemove { queue: String, interface: String },
    /// Pause or unpause a member; without a queue, in every queue it is a member of.
    QueuePause {
        queue: Option<String>,
        interface: String,
        paused: bool,
        reason: Option<String>,
    },
    /// Take a new snapshot now (answered by [`AmiClientEvent::Snapshot`], not an ActionResult).
    Resync,
    /// End the session; the answer is an ActionResult, then the PBX closes the connection.
    Logoff,
}

impl AmiAction {
    /// A short description for messages: `QueueAdd support PJSIP/agent1`.
    pub fn describe(&self) -> String {
        match self {
            AmiAction::QueueAdd {
                queue, interface, ..
            } => format!("QueueAdd {queue} {interface}"),
            AmiAction::QueueRemove { queue, interface } => {
                format!("QueueRemove {queue} {interface}")
            }
            AmiAction::QueuePause {
                queue,
                interface,
                paused,
                ..
            } => {
                let queue = queue.as_deref().unwrap_or("(all queues)");
                let verb = if *paused { "pause" } else { "unpause" };
                format!("QueuePause {queue} {interface} ({verb})")
            }
            AmiAction::Resync => "QueueStatus + QueueSummary".to_owned(),
            AmiAction::Logoff => "Logoff".to_owned(),
        }
    }

    /// The wire message, fields in the order Asterisk's own documentation lists them.
    fn to_message(&self, action_id: &str) -> AmiMessage {
        let bool_text = |value: bool| if value { "true" } else { "false" };
        let message = match self {
            AmiAction::QueueAdd {
                queue,
                interface,
                member_name,
                paused,
            } => {
                let mut message = AmiMessage::action("QueueAdd")
                    .with("Queue", queue)
                    .with("Interface", interface);
                if let Some(name) = member_name {
                    message.push("MemberName", name);
                }
                message
                    .with("StateInterface", interface)
                    .with("Penalty", "0")
                    .with("Paused", bool_text(*paused))
            }
            AmiAction::QueueRemove { queue, interface } => AmiMessage::action("QueueRemove")
                .with("Queue", queue)
                .with("Interface", interface),
            AmiAction::QueuePause {
                queue,
                interface,
                paused,
                reason,
            } => {
                let mut message = AmiMessage::action("QueuePause");
                if let Some(queue) = queue {
                    message.push("Queue", queue);
                }
                message.push("Interface", interface);
                message.push("Paused", bool_text(*paused));
                if let Some(reason) = reason {
                    message.push("Reason", reason);
                }
                message
            }
            AmiAction::Resync => AmiMessage::action("QueueStatus"),
            AmiAction::Logoff => AmiMessage::action("Logoff"),
        };
        message.with("ActionID", action_id)
    }
}

/// What the client reports. Drain with [`AmiClient::poll_event`].
#[derive(Debug, Clone, PartialEq)]
pub enum AmiClientEvent {
    /// The AMI banner arrived; the login starts.
    Connected { banner: String },
    /// Logged in; the snapshot (if enabled) follows.
    LoggedIn,
    /// The login was refused; the session is over (do not retry with the same secret).
    LoginFailed { message: String },
    /// The QueueStatus list events (QueueParams, QueueMember, QueueEntry), then the
    /// QueueSummary ones, as the PBX sent them; the `*Complete` markers are left out.
    Snapshot(Vec<AmiMessage>),
    /// A live event.
    Event(AmiMessage),
    /// The answer to an action given with [`AmiClient::command`]; `message` is the PBX's text.
    ActionResult {
        action_id: String,
        success: bool,
        message: String,
    },
    /// The connection is gone or dead; reconnect (a new [`AmiClient::handle_connected`]).
    Disconnected { reason: String },
    /// Something odd that did not stop the session (malformed traffic, a refused list).
    Problem { message: String },
    /// Sent by the driver only: the next connection attempt is in `after`.
    Retrying { after: Duration, reason: String },
}

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmiClientState {
    /// No connection yet.
    Idle,
    /// Connected, waiting for the banner.
    AwaitingBanner,
    LoggingIn,
    /// Logged in, collecting the snapshot.
    Snapshot,
    Live,
    /// The login was refused: final.
    LoginFailed,
    /// Logged off on request: final.
    LoggedOff,
    /// The connection ended or was declared dead; a new connection starts over.
    Disconnected,
}

/// Why an ActionID was sent.
#[derive(Debug, Clone)]
enum Pending {
    Challenge,
    Login { plain: bool },
    StatusList,
    SummaryList,
    Ping,
    Logoff,
    User,
}

#[derive(Debug, Clone)]
struct SnapshotLists {
    status_id: String,
    summary_id: String,
    status: Vec<AmiMessage>,
    summary: Vec<AmiMessage>,
    status_done: bool,
    summary_done: bool,
}

/// The AMI session state machine. Feed it, then drain every output before the next input.
#[derive(Debug)]
pub struct AmiClient {
    user: String,
    secret: Secret,
    events_filter: EventsFilter,
    options: AmiClientOptions,
    state: AmiClientState,
    framer: AmiFramer,
    next_action: u64,
    in_flight: HashMap<String, Pending>,
    /// Actions waiting for a login, with their ids.
    queued: VecDeque<(String, AmiAction)>,
    snapshot: Option<SnapshotLists>,
    held: VecDeque<AmiMessage>,
    login_deadline: Option<Instant>,
    next_ping_at: Option<Instant>,
    ping_deadline: Option<Instant>,
    transmit: Vec<u8>,
    events: VecDeque<AmiClientEvent>,
}

impl AmiClient {
    /// A client with the default options (MD5 login with plain fallback, snapshot, 30 s ping).
    pub fn new(user: impl Into<String>, secret: Secret, events_filter: EventsFilter) -> Self {
        Self::with_options(user, secret, events_filter, AmiClientOptions::default())
    }

    pub fn with_options(
        user: impl Into<String>,
        secret: Secret,
        events_filter: EventsFilter,
        options: AmiClientOptions,
    ) -> Self {
        Self {
            user: user.into(),
            secret,
            events_filter,
            options,
            state: AmiClientState::Idle,
            framer: AmiFramer::from_server(),
            next_action: 1,
            in_flight: HashMap::new(),
            queued: VecDeque::new(),
            snapshot: None,
            held: VecDeque::new(),
            login_deadline: None,
            next_ping_at: None,
            ping_deadline: None,
            transmit: Vec::new(),
            events: VecDeque::new(),
        }
    }

    pub fn state(&self) -> AmiClientState {
        self.state
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether the session is over for good (login refused, or logged off).
    pub fn is_finished(&self) -> bool {
        matches!(
            self.state,
            AmiClientState::LoginFailed | AmiClientState::LoggedOff
        )
    }

    /// A new TCP connection is up: the session starts over (banner, login, snapshot). Actions
    /// still waiting for a login are kept.
    pub fn handle_connected(&mut self, now: Instant) {
        if self.is_finished() {
            return;
        }
        self.framer = AmiFramer::from_server();
        self.state = AmiClientState::AwaitingBanner;
        self.in_flight.clear();
        self.snapshot = None;
        self.held.clear();
        self.transmit.clear();
        self.next_ping_at = None;
        self.ping_deadline = None;
        self.login_deadline = Some(now + self.options.login_timeout);
    }

    /// The connection closed (read end of stream or an error).
    pub fn handle_closed(&mut self, _now: Instant) {
        match self.state {
            AmiClientState::Idle
            | AmiClientState::LoginFailed
            | AmiClientState::LoggedOff
            | AmiClientState::Disconnected => {}
            AmiClientState::AwaitingBanner
            | AmiClientState::LoggingIn
            | AmiClientState::Snapshot
            | AmiClientState::Live => {
                let reason = match self.framer.finish() {
                    Ok(()) => "the AMI closed the connection".to_owned(),
                    Err(error) => format!("the AMI closed the connection ({error})"),
                };
                self.disconnect(reason);
            }
        }
    }

    /// Bytes read from the connection, in any chunking.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        if !self.is_connected() {
            return;
        }
        self.framer.push(bytes);
        loop {
            match self.framer.next_item() {
                Ok(None) => break,
                Ok(Some(AmiItem::Banner(banner))) => self.on_banner(banner),
                Ok(Some(AmiItem::Message(message))) => self.on_message(now, message),
                // Old-style `Action: Command` output: we never send one.
                Ok(Some(AmiItem::CommandOutput { .. })) => {}
                Err(error) => self.events.push_back(AmiClientEvent::Problem {
                    message: error.to_string(),
                }),
            }
            if !self.is_connected() {
                break;
            }
        }
    }

    /// Gives the client an action; returns its ActionID (the key of its
    /// [`AmiClientEvent::ActionResult`]). Before the login completes the action waits for it.
    pub fn command(&mut self, _now: Instant, action: AmiAction) -> String {
        let action_id = self.new_action_id();
        match action {
            AmiAction::Resync => {
                if self.state == AmiClientState::Live {
                    self.start_snapshot(&action_id);
                }
                // Otherwise a snapshot is on its way anyway (or the session is over).
            }
            AmiAction::Logoff => match self.state {
                AmiClientState::AwaitingBanner
                | AmiClientState::LoggingIn
                | AmiClientState::Snapshot
                | AmiClientState::Live => {
                    // Asterisk accepts Logoff before authentication too.
                    self.send(&action_id, Pending::Logoff, &action.to_message(&action_id));
                }
                AmiClientState::Idle
                | AmiClientState::Disconnected
                | AmiClientState::LoginFailed
                | AmiClientState::LoggedOff => {
                    self.state = AmiClientState::LoggedOff;
                    self.fail_queued("not sent: the session was logged off");
                    self.events.push_back(AmiClientEvent::ActionResult {
                        action_id: action_id.clone(),
                        success: true,
                        message: "not connected".to_owned(),
                    });
                }
            },
            AmiAction::QueueAdd { .. }
            | AmiAction::QueueRemove { .. }
            | AmiAction::QueuePause { .. } => match self.state {
                AmiClientState::Snapshot | AmiClientState::Live => {
                    self.send(&action_id, Pending::User, &action.to_message(&action_id));
                }
                AmiClientState::LoginFailed | AmiClientState::LoggedOff => {
                    self.events.push_back(AmiClientEvent::ActionResult {
                        action_id: action_id.clone(),
                        success: false,
                        message: "not sent: the AMI session is over".to_owned(),
                    });
                }
                _ if self.queued.len() >= MAX_QUEUED_ACTIONS => {
                    self.events.push_back(AmiClientEvent::ActionResult {
                        action_id: action_id.clone(),
                        success: false,
                        message: format!(
                            "not sent: {MAX_QUEUED_ACTIONS} actions are already waiting for the AMI login"
                        ),
                    });
                }
                _ => self.queued.push_back((action_id.clone(), action)),
            },
        }
        action_id
    }

    /// Time passed: login and ping deadlines, and the next ping.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(deadline) = self.login_deadline {
            if now >= deadline {
                let seconds = self.options.login_timeout.as_secs_f32();
                let reason = if self.state == AmiClientState::AwaitingBanner {
                    format!("no AMI banner within {seconds} s (is this port an Asterisk manager?)")
                } else {
                    format!("the AMI did not complete the login within {seconds} s")
                };
                self.disconnect(reason);
                return;
            }
        }
        if let Some(deadline) = self.ping_deadline {
            if now >= deadline {
                let seconds = self.options.ping_timeout.as_secs_f32();
                self.disconnect(format!(
                    "the AMI did not answer a Ping within {seconds} s (the PBX or the network is down)"
                ));
                return;
            }
        }
        if let Some(at) = self.next_ping_at {
            if now >= at && self.ping_deadline.is_none() {
                let id = self.new_action_id();
                self.send(
                    &id,
                    Pending::Ping,
                    &AmiMessage::action("Ping").with("ActionID", &id),
                );
                self.next_ping_at = None;
                self.ping_deadline = Some(now + self.options.ping_timeout);
            }
        }
    }

    /// The next instant [`AmiClient::handle_timeout`] wants to run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.login_deadline, self.ping_deadline, self.next_ping_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Bytes to write to the connection.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.transmit.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.transmit))
        }
    }

    pub fn poll_event(&mut self) -> Option<AmiClientEvent> {
        self.events.pop_front()
    }

    fn is_connected(&self) -> bool {
        matches!(
            self.state,
            AmiClientState::AwaitingBanner
                | AmiClientState::LoggingIn
                | AmiClientState::Snapshot
                | AmiClientState::Live
        )
    }

    fn new_action_id(&mut self) -> String {
        let id = format!("ringside-{}", self.next_action);
        self.next_action += 1;
        id
    }

    fn send(&mut self, action_id: &str, pending: Pending, message: &AmiMessage) {
        self.in_flight.insert(action_id.to_owned(), pending);
        message.write_to(&mut self.transmit);
    }

    fn on_banner(&mut self, banner: String) {
        if self.state != AmiClientState::AwaitingBanner {
            return;
        }
        self.events.push_back(AmiClientEvent::Connected { banner });
        self.state = AmiClientState::LoggingIn;
        match self.options.login {
            LoginMethod::Md5 | LoginMethod::Md5Only => {
                let id = self.new_action_id();
                let challenge = AmiMessage::action("Challenge")
                    .with("AuthType", "MD5")
                    .with("ActionID", &id);
                self.send(&id, Pending::Challenge, &challenge);
            }
            LoginMethod::Plain => self.send_plain_login(),
        }
    }

    fn send_plain_login(&mut self) {
        let id = self.new_action_id();
        let login = AmiMessage::action("Login")
            .with("Username", &self.user)
            .with("Secret", self.secret.expose())
            .with("Events", &self.events_filter.header_value())
            .with("ActionID", &id);
        self.send(&id, Pending::Login { plain: true }, &login);
    }

    fn on_message(&mut self, now: Instant, message: AmiMessage) {
        match message.kind() {
            AmiKind::Response(status) => {
                let success = status.eq_ignore_ascii_case("Success")
                    || status.eq_ignore_ascii_case("Goodbye")
                    || status.eq_ignore_ascii_case("Follows");
                self.on_response(now, success, &message);
            }
            AmiKind::Event(_) => self.on_event(message),
            AmiKind::Action(_) | AmiKind::Other => {}
        }
    }

    fn on_response(&mut self, now: Instant, success: bool, message: &AmiMessage) {
        let Some(action_id) = message.action_id() else {
            return;
        };
        let Some(pending) = self.in_flight.remove(action_id) else {
            return;
        };
        let action_id = action_id.to_owned();
        let text = message.get("Message").unwrap_or_default().to_owned();
        match pending {
            Pending::Challenge => match message.get("Challenge").filter(|_| success) {
                Some(challenge) => {
                    let id = self.new_action_id();
                    let login = AmiMessage::action("Login")
                        .with("AuthType", "MD5")
                        .with("Username", &self.user)
                        .with("Key", &md5_key(challenge, self.secret.expose()))
                        .with("Events", &self.events_filter.header_value())
                        .with("ActionID", &id);
                    self.send(&id, Pending::Login { plain: false }, &login);
                }
                None if self.options.login == LoginMethod::Md5 => self.send_plain_login(),
                None => self.login_failed(format!(
                    "the AMI refused the MD5 challenge ({}) and plain login is not allowed: allow MD5 for user {} or choose plain login",
                    quoted_or_none(&text),
                    self.user
                )),
            },
            Pending::Login { plain } => {
                if success {
                    self.logged_in(now);
                } else {
                    let how = if plain { "plain login" } else { "MD5 login" };
                    self.login_failed(format!(
                        "the AMI rejected user {} ({how}: {}): check the AMI user and secret (manager.conf) and the permit/deny lists",
                        self.user,
                        quoted_or_none(&text)
                    ));
                }
            }
            Pending::StatusList | Pending::SummaryList => {
                if !success {
                    let list = if matches!(pending, Pending::StatusList) {
                        "QueueStatus"
                    } else {
                        "QueueSummary"
                    };
                    self.events.push_back(AmiClientEvent::Problem {
                        message: format!(
                            "{list} was refused ({}): give the AMI user read = agent; the queue model stays incomplete",
                            quoted_or_none(&text)
                        ),
                    });
                    if let Some(lists) = self.snapshot.as_mut() {
                        if lists.status_id == action_id {
                            lists.status_done = true;
                        }
                        if lists.summary_id == action_id {
                            lists.summary_done = true;
                        }
                    }
                    self.finish_snapshot_if_done();
                }
            }
            Pending::Ping => {
                self.ping_deadline = None;
                self.next_ping_at = Some(now + self.options.ping_interval);
            }
            Pending::Logoff => {
                self.state = AmiClientState::LoggedOff;
                self.clear_timers();
                self.fail_in_flight("the session was logged off before the PBX answered");
                self.fail_queued("not sent: the session was logged off");
                self.events.push_back(AmiClientEvent::ActionResult {
                    action_id,
                    success,
                    message: text,
                });
            }
            Pending::User => self.events.push_back(AmiClientEvent::ActionResult {
                action_id,
                success,
                message: text,
            }),
        }
    }

    fn on_event(&mut self, message: AmiMessage) {
        if let Some(lists) = self.snapshot.as_mut() {
            let id = message.action_id();
            let into_status = id == Some(lists.status_id.as_str());
            let into_summary = id == Some(lists.summary_id.as_str());
            if into_status || into_summary {
                let complete = message
                    .get("EventList")
                    .is_some_and(|value| value.eq_ignore_ascii_case("Complete"));
                match (into_status, complete) {
                    (true, true) => lists.status_done = true,
                    (true, false) => lists.status.push(message),
                    (false, true) => lists.summary_done = true,
                    (false, false) => lists.summary.push(message),
                }
                self.finish_snapshot_if_done();
                return;
            }
        }
        if self.state == AmiClientState::Snapshot {
            if self.held.len() >= MAX_HELD_EVENTS {
                self.held.pop_front();
                self.events.push_back(AmiClientEvent::Problem {
                    message: format!(
                        "more than {MAX_HELD_EVENTS} live events arrived during the snapshot; the oldest was dropped"
                    ),
                });
            }
            self.held.push_back(message);
        } else {
            self.events.push_back(AmiClientEvent::Event(message));
        }
    }

    fn logged_in(&mut self, now: Instant) {
        self.login_deadline = None;
        self.next_ping_at = Some(now + self.options.ping_interval);
        self.events.push_back(AmiClientEvent::LoggedIn);
        if self.options.snapshot {
            let id = self.new_action_id();
            self.start_snapshot(&id);
        } else {
            self.state = AmiClientState::Live;
        }
        // Only supervisor actions are ever queued (Logoff and Resync never wait).
        while let Some((action_id, action)) = self.queued.pop_front() {
            self.send(&action_id, Pending::User, &action.to_message(&action_id));
        }
    }

    fn start_snapshot(&mut self, status_id: &str) {
        let summary_id = self.new_action_id();
        self.send(
            status_id,
            Pending::StatusList,
            &AmiAction::Resync.to_message(status_id),
        );
        self.send(
            &summary_id,
            Pending::SummaryList,
            &AmiMessage::action("QueueSummary").with("ActionID", &summary_id),
        );
        self.snapshot = Some(SnapshotLists {
            status_id: status_id.to_owned(),
            summary_id,
            status: Vec::new(),
            summary: Vec::new(),
            status_done: false,
            summary_done: false,
        });
        self.state = AmiClientState::Snapshot;
    }

    fn finish_snapshot_if_done(&mut self) {
        let done = self
            .snapshot
            .as_ref()
            .is_some_and(|lists| lists.status_done && lists.summary_done);
        if !done {
            return;
        }
        let Some(lists) = self.snapshot.take() else {
            return;
        };
        let mut messages = lists.status;
        messages.extend(lists.summary);
        self.events.push_back(AmiClientEvent::Snapshot(messages));
        self.events
            .extend(self.held.drain(..).map(AmiClientEvent::Event));
        if self.state == AmiClientState::Snapshot {
            self.state = AmiClientState::Live;
        }
    }

    fn login_failed(&mut self, message: String) {
        self.state = AmiClientState::LoginFailed;
        self.clear_timers();
        self.in_flight.clear();
        // The reason first: a consumer waiting for one action learns why it was not sent.
        self.events
            .push_back(AmiClientEvent::LoginFailed { message });
        self.fail_queued("not sent: the AMI login failed");
    }

    fn disconnect(&mut self, reason: String) {
        self.state = AmiClientState::Disconnected;
        self.clear_timers();
        self.snapshot = None;
        self.held.clear();
        self.transmit.clear();
        self.fail_in_flight(
            "the connection to the AMI was lost before it answered; the action may or may not have been done",
        );
        self.events
            .push_back(AmiClientEvent::Disconnected { reason });
    }

    fn clear_timers(&mut self) {
        self.login_deadline = None;
        self.next_ping_at = None;
        self.ping_deadline = None;
    }

    fn fail_in_flight(&mut self, why: &str) {
        let mut failed: Vec<String> = self
            .in_flight
            .drain()
            .filter(|(_, pending)| matches!(pending, Pending::User | Pending::Logoff))
            .map(|(id, _)| id)
            .collect();
        failed.sort_by_key(|id| action_number(id));
        for action_id in failed {
            self.events.push_back(AmiClientEvent::ActionResult {
                action_id,
                success: false,
                message: why.to_owned(),
            });
        }
    }

    fn fail_queued(&mut self, why: &str) {
        while let Some((action_id, _)) = self.queued.pop_front() {
            self.events.push_back(AmiClientEvent::ActionResult {
                action_id,
                success: false,
                message: why.to_owned(),
            });
        }
    }
}

/// Orders our own ids (`ringside-12`) numerically.
fn action_number(action_id: &str) -> u64 {
    action_id
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

fn quoted_or_none(text: &str) -> String {
    if text.is_empty() {
        "no message".to_owned()
    } else {
        format!("\"{text}\"")
    }
}

/// The usual consumer of an [`AmiClient`]: the queue model, rebuilt from every snapshot and
/// kept current by live events, plus the report events derived from them.
#[derive(Debug, Default, Clone)]
pub struct QueueMonitor {
    state: QueueState,
    params: Vec<QueueParams>,
    summaries: Vec<QueueSummary>,
    deriver: ReportDeriver,
    snapshots: u64,
}

impl QueueMonitor {
    pub fn new() -> Self {
        Self::default()
    }

    /// The model now.
    pub fn state(&self) -> &QueueState {
        &self.state
    }

    /// The last snapshot's `QueueParams` (counters and service level as Asterisk computes them).
    pub fn params(&self) -> &[QueueParams] {
        &self.params
    }

    /// The last snapshot's `QueueSummary` lines.
    pub fn summaries(&self) -> &[QueueSummary] {
        &self.summaries
    }

    /// Snapshots taken so far (1 after the first login, +1 per resync).
    pub fn snapshots(&self) -> u64 {
        self.snapshots
    }

    /// Feeds one client event. A snapshot replaces the model (a full resync); the report
    /// deriver keeps its calls in progress. Malformed queue events are skipped; the first
    /// one's error comes back after the rest was applied.
    pub fn handle(&mut self, now_epoch: u64, event: &AmiClientEvent) -> Result<(), AmiError> {
        match event {
            AmiClientEvent::Snapshot(messages) => {
                self.state = QueueState::new();
                self.params.clear();
                self.summaries.clear();
                self.snapshots += 1;
                let mut first_error = None;
                for message in messages {
                    if let Err(error) = self.handle_message(now_epoch, message) {
                        first_error.get_or_insert(error);
                    }
                }
                first_error.map_or(Ok(()), Err)
            }
            AmiClientEvent::Event(message) => self.handle_message(now_epoch, message),
            _ => Ok(()),
        }
    }

    /// The next report event, oldest first.
    pub fn poll_report(&mut self) -> Option<ReportEvent> {
        self.deriver.poll_event()
    }

    fn handle_message(&mut self, now_epoch: u64, message: &AmiMessage) -> Result<(), AmiError> {
        match QueueAmiEvent::from_message(message)? {
            Some(event) => {
                self.state.apply(&event, now_epoch);
                self.deriver.handle_event(now_epoch, &event);
                match event {
                    QueueAmiEvent::QueueParams(params) => self.params.push(params),
                    QueueAmiEvent::QueueSummary(summary) => self.summaries.push(summary),
                    _ => {}
                }
                Ok(())
            }
            None => self.deriver.handle_message(now_epoch, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::model::AgentState;
    use std::path::PathBuf;

    fn fixture(name: &str) -> Vec<u8> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/asterisk/ami")
            .join(name);
        std::fs::read(path).expect("fixture")
    }

    fn secret() -> Secret {
        Secret::new("console-ami-secret")
    }

    fn drain(client: &mut AmiClient) -> Vec<AmiClientEvent> {
        std::iter::from_fn(|| client.poll_event()).collect()
    }

    fn sent(client: &mut AmiClient) -> String {
        String::from_utf8(client.poll_transmit().unwrap_or_default()).expect("ascii")
    }

    /// The fixture's server messages, split after the banner (CRLF kept).
    fn server_messages(name: &str) -> (String, Vec<String>) {
        let text = String::from_utf8(fixture(name)).expect("utf-8");
        let (banner, rest) = text.split_once("\r\n").expect("banner");
        let messages = rest
            .split_inclusive("\r\n\r\n")
            .map(str::to_owned)
            .collect();
        (format!("{banner}\r\n"), messages)
    }

    /// The message with its ActionID replaced (or added after the first line).
    fn with_action_id(message: &str, id: &str) -> String {
        let has_id = message.contains("\r\nActionID: ");
        let mut out = String::new();
        for (index, line) in message.lines().enumerate() {
            if line.starts_with("ActionID: ") {
                out.push_str(&format!("ActionID: {id}\r\n"));
                continue;
            }
            out.push_str(line);
            out.push_str("\r\n");
            if index == 0 && !has_id {
                out.push_str(&format!("ActionID: {id}\r\n"));
            }
        }
        out
    }

    #[test]
    fn md5_login_sends_the_fixture_key_and_never_the_secret() {
        let now = Instant::now();
        let options = AmiClientOptions {
            snapshot: false,
            ..AmiClientOptions::default()
        };
        let mut client = AmiClient::with_options("console", secret(), EventsFilter::On, options);
        client.handle_connected(now);
        assert_eq!(client.poll_timeout(), Some(now + LOGIN_TIMEOUT));
        let (banner, replies) = server_messages("login-md5.server.txt");
        client.handle_bytes(now, banner.as_bytes());
        assert_eq!(
            drain(&mut client),
            [AmiClientEvent::Connected {
                banner: "Asterisk Call Manager/11.0.0".into()
            }]
        );
        assert_eq!(
            sent(&mut client),
            "Action: Challenge\r\nAuthType: MD5\r\nActionID: ringside-1\r\n\r\n"
        );
        client.handle_bytes(now, with_action_id(&replies[0], "ringside-1").as_bytes());
        let login = sent(&mut client);
        // The fixture's own Login, byte for byte but for the ActionID.
        let expected = String::from_utf8(fixture("login-md5.client.txt")).expect("utf-8");
        let expected_login = expected.split_inclusive("\r\n\r\n").nth(1).expect("login");
        assert_eq!(login, with_action_id(expected_login, "ringside-2"));
        assert!(login.contains("Key: 384faa4f1c0dba84da6662b7a532d779\r\n"));
        assert!(!login.contains("console-ami-secret"));
        client.handle_bytes(now, with_action_id(&replies[1], "ringside-2").as_bytes());
        assert_eq!(drain(&mut client), [AmiClientEvent::LoggedIn]);
        assert_eq!(client.state(), AmiClientState::Live);
        // FullyBooted is a live event now.
        client.handle_bytes(now, replies[2].as_bytes());
        let events = drain(&mut client);
        assert!(
            matches!(&events[..], [AmiClientEvent::Event(m)] if m.kind() == AmiKind::Event("FullyBooted"))
        );
        let debug = format!("{client:?}");
        assert!(!debug.contains("console-ami-secret") && debug.contains("Secret(***)"));
    }

    #[test]
    fn plain_login_is_the_fallback_when_the_challenge_is_refused() {
        let now = Instant::now();
        let mut client = AmiClient::new("console", secret(), EventsFilter::Off);
        client.handle_connected(now);
        client.handle_bytes(now, b"Asterisk Call Manager/11.0.0\r\n");
        drain(&mut client);
        sent(&mut client);
        client.handle_bytes(
            now,
            b"Response: Error\r\nActionID: ringside-1\r\nMessage: Must specify AuthType\r\n\r\n",
        );
        assert_eq!(
            sent(&mut client),
            "Action: Login\r\nUsername: console\r\nSecret: console-ami-secret\r\nEvents: off\r\nActionID: ringside-2\r\n\r\n"
        );
        // Md5Only refuses to downgrade.
        let mut strict = AmiClient::with_options(
            "console",
            secret(),
            EventsFilter::Off,
            AmiClientOptions {
                login: LoginMethod::Md5Only,
                ..AmiClientOptions::default()
            },
        );
        strict.handle_connected(now);
        strict.handle_bytes(now, b"Asterisk Call Manager/11.0.0\r\n");
        sent(&mut strict);
        strict.handle_bytes(
            now,
            b"Response: Error\r\nActionID: ringside-1\r\nMessage: Must specify AuthType\r\n\r\n",
        );
        assert_eq!(strict.poll_transmit(), None);
        let events = drain(&mut strict);
        assert!(
            matches!(events.last(), Some(AmiClientEvent::LoginFailed { message }) if message.contains("\"Must specify AuthType\""))
        );
        assert!(strict.is_finished());
    }

    #[test]
    fn a_rejected_login_is_final_and_says_what_to_check() {
        let now = Instant::now();
        let mut client = AmiClient::with_options(
            "console",
            Secret::new("wrong-secret"),
            EventsFilter::On,
            AmiClientOptions {
                login: LoginMethod::Plain,
                ..AmiClientOptions::default()
            },
        );
        let queued = client.command(
            now,
            AmiAction::QueueRemove {
                queue: "support".into(),
                interface: "PJSIP/agent1".into(),
            },
        );
        client.handle_connected(now);
        let (banner, replies) = server_messages("login-failed.server.txt");
        client.handle_bytes(now, banner.as_bytes());
        let login = sent(&mut client);
        let expected = String::from_utf8(fixture("login-failed.client.txt")).expect("utf-8");
        // The fixture's Login has no Events line.
        assert_eq!(
            login.replace("Events: on\r\n", ""),
            with_action_id(&expected, "ringside-2")
        );
        drain(&mut client);
        client.handle_bytes(now, with_action_id(&replies[0], "ringside-2").as_bytes());
        assert_eq!(
            drain(&mut client),
            [
                AmiClientEvent::LoginFailed {
                    message: "the AMI rejected user console (plain login: \"Authentication failed\"): check the AMI user and secret (manager.conf) and the permit/deny lists".into()
                },
                AmiClientEvent::ActionResult {
                    action_id: queued,
                    success: false,
                    message: "not sent: the AMI login failed".into()
                }
            ]
        );
        // Asterisk closes the connection now: nothing more, no reconnect wanted.
        client.handle_closed(now);
        client.handle_connected(now);
        assert_eq!(drain(&mut client), []);
        assert_eq!(client.state(), AmiClientState::LoginFailed);
        assert_eq!(client.poll_timeout(), None);
    }

    /// Logs a client in without a snapshot, returning the next free action number.
    fn logged_in(now: Instant, options: AmiClientOptions) -> AmiClient {
        let mut client = AmiClient::with_options(
            "console",
            secret(),
            EventsFilter::On,
            AmiClientOptions {
                login: LoginMethod::Plain,
                ..options
            },
        );
        client.handle_connected(now);
        client.handle_bytes(now, b"Asterisk Call Manager/11.0.0\r\n");
        client.handle_bytes(
            now,
            b"Response: Success\r\nActionID: ringside-1\r\nMessage: Authentication accepted\r\n\r\n",
        );
        sent(&mut client);
        drain(&mut client);
        client
    }

    #[test]
    fn the_snapshot_collects_both_lists_and_holds_live_events_back() {
        let now = Instant::now();
        let mut client = logged_in(now, AmiClientOptions::default());
        assert_eq!(client.state(), AmiClientState::Snapshot);
        // (The snapshot requests went out with the login answer.)
        let (_, status) = server_messages("queuestatus.server.txt");
        let (_, summary) = server_messages("queuesummary.server.txt");
        // status[0] is the login answer, the last one the Goodbye.
        let status_list = &status[1..status.len() - 1];
        let summary_list = &summary[1..summary.len() - 1];
        let live = "Event: QueueCallerLeave\r\nQueue: support\r\nUniqueid: ringside-lab-1795259646.22\r\nPosition: 1\r\nCount: 0\r\n\r\n";
        // Interleave: half the status list, a live event, the summary list, the rest.
        let (first, second) = status_list.split_at(3);
        for message in first {
            client.handle_bytes(now, with_action_id(message, "ringside-2").as_bytes());
        }
        client.handle_bytes(now, live.as_bytes());
        for message in summary_list {
            client.handle_bytes(now, with_action_id(message, "ringside-3").as_bytes());
        }
        assert_eq!(
            drain(&mut client),
            [],
            "nothing until both lists are complete"
        );
        for message in second {
            client.handle_bytes(now, with_action_id(message, "ringside-2").as_bytes());
        }
        let events = drain(&mut client);
        assert_eq!(events.len(), 2);
        let AmiClientEvent::Snapshot(messages) = &events[0] else {
            panic!("snapshot first: {events:?}");
        };
        let names: Vec<&str> = messages
            .iter()
            .map(|m| match m.kind() {
                AmiKind::Event(name) => name,
                _ => "?",
            })
            .collect();
        assert_eq!(
            names,
            [
                "QueueParams",
                "QueueMember",
                "QueueMember",
                "QueueEntry",
                "QueueParams",
                "QueueMember",
                "QueueParams",
                "QueueSummary",
                "QueueSummary",
                "QueueSummary"
            ]
        );
        assert!(
            matches!(&events[1], AmiClientEvent::Event(m) if m.kind() == AmiKind::Event("QueueCallerLeave"))
        );
        assert_eq!(client.state(), AmiClientState::Live);

        let mut monitor = QueueMonitor::new();
        for event in &events {
            monitor.handle(1_795_259_649, event).expect("well formed");
        }
        let agent2 = monitor.state().agent("agent2").expect("agent2");
        assert_eq!(
            agent2.state(),
            AgentState::Paused {
                reason: "coffee-break".into()
            }
        );
        // The live leave came after the snapshot: the caller is gone.
        assert!(monitor
            .state()
            .queue("support")
            .expect("support")
            .callers
            .is_empty());
        assert_eq!(monitor.summaries().len(), 3);
        assert_eq!(monitor.params().len(), 3);
        assert_eq!(monitor.snapshots(), 1);
    }

    #[test]
    fn actions_are_correlated_and_keep_the_pbx_text() {
        let now = Instant::now();
        let mut client = logged_in(
            now,
            AmiClientOptions {
                snapshot: false,
                ..AmiClientOptions::default()
            },
        );
        let add = client.command(
            now,
            AmiAction::QueueAdd {
                queue: "support".into(),
                interface: "PJSIP/agent2".into(),
                member_name: Some("agent2".into()),
                paused: false,
            },
        );
        let pause = client.command(
            now,
            AmiAction::QueuePause {
                queue: None,
                interface: "PJSIP/agent1".into(),
                paused: false,
                reason: None,
            },
        );
        assert_eq!(
            sent(&mut client),
            format!(
                "Action: QueueAdd\r\nQueue: support\r\nInterface: PJSIP/agent2\r\nMemberName: agent2\r\nStateInterface: PJSIP/agent2\r\nPenalty: 0\r\nPaused: false\r\nActionID: {add}\r\n\r\n\
                 Action: QueuePause\r\nInterface: PJSIP/agent1\r\nPaused: false\r\nActionID: {pause}\r\n\r\n"
            )
        );
        // Answered out of order, the second one with an error.
        client.handle_bytes(
            now,
            format!("Response: Error\r\nActionID: {pause}\r\nMessage: Interface not found\r\n\r\nResponse: Success\r\nActionID: {add}\r\nMessage: Added interface to queue\r\n\r\n").as_bytes(),
        );
        assert_eq!(
            drain(&mut client),
            [
                AmiClientEvent::ActionResult {
                    action_id: pause,
                    success: false,
                    message: "Interface not found".into()
                },
                AmiClientEvent::ActionResult {
                    action_id: add,
                    success: true,
                    message: "Added interface to queue".into()
                }
            ]
        );
        // Sent but unanswered when the connection dies: failed, not repeated.
        let remove = client.command(
            now,
            AmiAction::QueueRemove {
                queue: "support".into(),
                interface: "PJSIP/agent2".into(),
            },
        );
        sent(&mut client);
        client.handle_closed(now);
        let events = drain(&mut client);
        assert!(
            matches!(&events[0], AmiClientEvent::ActionResult { action_id, success: false, message } if *action_id == remove && message.contains("may or may not"))
        );
        assert_eq!(
            events[1],
            AmiClientEvent::Disconnected {
                reason: "the AMI closed the connection".into()
            }
        );
        // Given while disconnected: waits for the next login, then goes out.
        let later = client.command(
            now,
            AmiAction::QueuePause {
                queue: Some("support".into()),
                interface: "PJSIP/agent2".into(),
                paused: true,
                reason: Some("supervisor-hold".into()),
            },
        );
        assert_eq!(client.poll_transmit(), None);
        client.handle_connected(now);
        client.handle_bytes(now, b"Asterisk Call Manager/11.0.0\r\n");
        let login = sent(&mut client);
        let login_id = login
            .lines()
            .find_map(|l| l.strip_prefix("ActionID: "))
            .expect("id")
            .to_owned();
        client.handle_bytes(
            now,
            format!("Response: Success\r\nActionID: {login_id}\r\nMessage: Authentication accepted\r\n\r\n").as_bytes(),
        );
        assert_eq!(
            sent(&mut client),
            format!("Action: QueuePause\r\nQueue: support\r\nInterface: PJSIP/agent2\r\nPaused: true\r\nReason: supervisor-hold\r\nActionID: {later}\r\n\r\n")
        );
    }

    #[test]
    fn keepalive_pings_every_30_s_and_gives_up_after_10_s() {
        let start = Instant::now();
        let mut client = logged_in(
            start,
            AmiClientOptions {
                snapshot: false,
                ..AmiClientOptions::default()
            },
        );
        assert_eq!(client.poll_timeout(), Some(start + PING_INTERVAL));
        client.handle_timeout(start + Duration::from_secs(29));
        assert_eq!(client.poll_transmit(), None);
        let first = start + PING_INTERVAL;
        client.handle_timeout(first);
        assert_eq!(
            sent(&mut client),
            "Action: Ping\r\nActionID: ringside-2\r\n\r\n"
        );
        assert_eq!(client.poll_timeout(), Some(first + PING_TIMEOUT));
        // The login-plain fixture's Pong.
        let (_, replies) = server_messages("login-plain.server.txt");
        let pong_at = first + Duration::from_secs(1);
        client.handle_bytes(
            pong_at,
            with_action_id(&replies[1], "ringside-2").as_bytes(),
        );
        assert_eq!(client.poll_timeout(), Some(pong_at + PING_INTERVAL));
        assert_eq!(drain(&mut client), []);
        // The next one goes unanswered.
        let second = pong_at + PING_INTERVAL;
        client.handle_timeout(second);
        assert!(sent(&mut client).starts_with("Action: Ping\r\n"));
        client.handle_timeout(second + Duration::from_secs(9));
        assert_eq!(drain(&mut client), []);
        client.handle_timeout(second + PING_TIMEOUT);
        assert_eq!(
            drain(&mut client),
            [AmiClientEvent::Disconnected {
                reason:
                    "the AMI did not answer a Ping within 10 s (the PBX or the network is down)"
                        .into()
            }]
        );
        assert_eq!(client.state(), AmiClientState::Disconnected);
        assert_eq!(client.poll_timeout(), None);
    }

    #[test]
    fn no_banner_is_a_disconnect_after_the_login_timeout() {
        let now = Instant::now();
        let mut client = AmiClient::new("console", secret(), EventsFilter::On);
        client.handle_connected(now);
        client.handle_timeout(now + LOGIN_TIMEOUT);
        assert_eq!(
            drain(&mut client),
            [AmiClientEvent::Disconnected {
                reason: "no AMI banner within 10 s (is this port an Asterisk manager?)".into()
            }]
        );
    }

    #[test]
    fn logoff_ends_the_session_for_good() {
        let now = Instant::now();
        let mut client = logged_in(
            now,
            AmiClientOptions {
                snapshot: false,
                ..AmiClientOptions::default()
            },
        );
        let id = client.command(now, AmiAction::Logoff);
        assert_eq!(
            sent(&mut client),
            format!("Action: Logoff\r\nActionID: {id}\r\n\r\n")
        );
        let (_, replies) = server_messages("login-md5.server.txt");
        client.handle_bytes(now, with_action_id(&replies[3], &id).as_bytes());
        assert_eq!(
            drain(&mut client),
            [AmiClientEvent::ActionResult {
                action_id: id,
                success: true,
                message: "Thanks for all the fish.".into()
            }]
        );
        client.handle_closed(now);
        assert_eq!(drain(&mut client), []);
        assert!(client.is_finished());
    }

    #[test]
    fn garbage_from_the_server_never_panics() {
        let now = Instant::now();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for round in 0..300 {
            let mut client = AmiClient::new("console", secret(), EventsFilter::On);
            client.handle_connected(now);
            let mut bytes = fixture("queuestatus.server.txt");
            for _ in 0..(round % 40) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let index = (seed as usize) % bytes.len();
                bytes[index] = (seed >> 32) as u8;
            }
            for chunk in bytes.chunks(1 + round % 97) {
                client.handle_bytes(now, chunk);
                while client.poll_event().is_some() {}
                client.poll_transmit();
            }
            client.handle_timeout(now + Duration::from_secs(3600));
            client.handle_closed(now);
        }
    }

    /// Built messages, not a capture: no capture has a queue or agent that a later snapshot
    /// no longer lists, which is what a resync must forget.
    #[test]
    fn a_new_snapshot_replaces_the_model_but_keeps_calls_in_progress() {
        let snapshot = |queue: &str| {
            AmiClientEvent::Snapshot(vec![
                AmiMessage::event("QueueParams")
                    .with("Queue", queue)
                    .with("Strategy", "ringall"),
                AmiMessage::event("QueueMember")
                    .with("Queue", queue)
                    .with("Name", "agent1")
                    .with("Location", "PJSIP/agent1")
                    .with("Status", "1")
                    .with("Paused", "0"),
            ])
        };
        let live = |name: &str| {
            AmiClientEvent::Event(
                AmiMessage::event(name)
                    .with("Timestamp", "1795259700.000000")
                    .with("Queue", "old")
                    .with("Uniqueid", "u1")
                    .with("CallerIDNum", "caller1")
                    .with("Position", "1")
                    .with("Count", "1"),
            )
        };
        let mut monitor = QueueMonitor::new();
        monitor.handle(0, &snapshot("old")).expect("ok");
        monitor.handle(0, &live("QueueCallerJoin")).expect("ok");
        assert_eq!(
            monitor.state().queue("old").map(|q| q.callers.len()),
            Some(1)
        );
        assert_eq!(
            monitor.poll_report().map(|r| r.kind),
            Some(crate::queue::report::ReportKind::EnterQueue)
        );
        monitor.handle(0, &snapshot("new")).expect("ok");
        let names: Vec<&str> = monitor.state().queues().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["new"], "the old queue is forgotten");
        let agent = monitor.state().agent("agent1").expect("agent1");
        assert_eq!(agent.memberships.len(), 1);
        assert_eq!(monitor.snapshots(), 2);
        // The report deriver still knows the caller of the call that was in progress.
        let abandon = AmiClientEvent::Event(
            AmiMessage::event("QueueCallerAbandon")
                .with("Timestamp", "1795259710.000000")
                .with("Queue", "old")
                .with("Uniqueid", "u1")
                .with("Position", "1")
                .with("HoldTime", "10"),
        );
        monitor.handle(0, &abandon).expect("ok");
        let report = monitor.poll_report().expect("an exit");
        assert_eq!(report.caller.as_deref(), Some("caller1"));
    }

    /// `cargo test --release --lib queue::ami_client -- --ignored --nocapture`
    #[test]
    #[ignore = "benchmark: run in release mode"]
    fn bench_bytes_to_client_events_and_the_monitor() {
        let mut stream = Vec::new();
        for name in [
            "events-b-completecaller.server.txt",
            "events-d-ringnoanswer.server.txt",
            "events-f-ringcanceled-abandon.server.txt",
            "events-i-blindtransfer.server.txt",
            "events-j-attendedtransfer.server.txt",
            "events-k1-pause-featurecodes.server.txt",
        ] {
            let (_, messages) = server_messages(name);
            // Only the events: the responses belong to the captures' own sessions.
            stream.extend(
                messages
                    .iter()
                    .filter(|m| m.starts_with("Event:"))
                    .flat_map(|m| m.bytes()),
            );
        }
        let count = stream.windows(4).filter(|w| w == b"\r\n\r\n").count();
        const ROUNDS: usize = 2_000;
        let now = Instant::now();
        let mut client = logged_in(
            now,
            AmiClientOptions {
                snapshot: false,
                ..AmiClientOptions::default()
            },
        );
        let mut events = Vec::with_capacity(count);
        let mut seen = 0usize;
        let start = std::time::Instant::now();
        for round in 0..ROUNDS {
            for chunk in stream.chunks(1460) {
                client.handle_bytes(now, chunk);
                while let Some(event) = client.poll_event() {
                    seen += 1;
                    if round == 0 {
                        events.push(event);
                    }
                }
            }
        }
        let client_ns = start.elapsed().as_nanos() as f64 / (ROUNDS * count) as f64;
        assert_eq!(seen, ROUNDS * count);
        let mut framer = AmiFramer::from_client();
        let mut framed = 0usize;
        let start = std::time::Instant::now();
        for _ in 0..ROUNDS {
            for chunk in stream.chunks(1460) {
                framer.push(chunk);
                while let Ok(Some(_)) = framer.next_item() {
                    framed += 1;
                }
            }
        }
        let framer_ns = start.elapsed().as_nanos() as f64 / framed as f64;
        let mut monitor = QueueMonitor::new();
        let mut reports = 0usize;
        let start = std::time::Instant::now();
        for _ in 0..ROUNDS {
            for event in &events {
                let _ = monitor.handle(0, event);
                while monitor.poll_report().is_some() {
                    reports += 1;
                }
            }
        }
        let monitor_ns = start.elapsed().as_nanos() as f64 / (ROUNDS * events.len()) as f64;
        println!(
            "{count} events ({} bytes) x {ROUNDS}: AmiClient bytes -> Event {client_ns:.0} ns/event \
             ({:.0} MB/s), of which AmiFramer {framer_ns:.0} ns; QueueMonitor (typing + model + report) {monitor_ns:.0} ns/event; \
             {reports} report events",
            stream.len(),
            stream.len() as f64 * ROUNDS as f64 / (client_ns * (ROUNDS * count) as f64 / 1e9) / 1e6
        );
    }

    #[test]
    fn events_filters_read_and_print() {
        assert_eq!(EventsFilter::parse("ON").header_value(), "on");
        assert_eq!(EventsFilter::parse(" off ").header_value(), "off");
        assert_eq!(
            EventsFilter::parse("Call, agent,"),
            EventsFilter::Classes(vec!["call".into(), "agent".into()])
        );
        assert_eq!(
            EventsFilter::parse("call,agent").header_value(),
            "call,agent"
        );
        assert_eq!(
            AmiAction::QueuePause {
                queue: None,
                interface: "PJSIP/agent1".into(),
                paused: true,
                reason: None
            }
            .describe(),
            "QueuePause (all queues) PJSIP/agent1 (pause)"
        );
    }
}
