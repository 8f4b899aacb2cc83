//! The dashboard's driver: owns the terminal (raw mode, alternate screen, mouse), moves
//! terminal events, SIP driver output, AMI events and queue_log lines into
//! [`App::update`](crate::tui::app::App::update), carries out the commands it returns, and
//! draws with [`crate::tui::view::draw`] only when the state changed — at most once per frame
//! interval, so an idle dashboard writes nothing but the clock, once a second.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{
    self as term_event, DisableMouseCapture, EnableMouseCapture, Event as TermEvent, MouseButton,
    MouseEventKind,
};
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::crossterm::{cursor, execute};
use ratatui::Terminal;
use tokio::sync::mpsc;

use crate::mail::settings::EmailSettings;
use crate::net::ami::{spawn as spawn_ami, AmiConfig, AmiHandle};
use crate::net::follow_up;
use crate::net::sip::{DriverCommand, DriverHandle, DriverOutput};
use crate::queue::ami::QueueAmiEvent;
use crate::queue::ami_client::{AmiAction, AmiClientEvent, QueueMonitor};
use crate::queue::report::ReportEvent;
use crate::sip::ua::{self, CallId, UaEvent};
use crate::store::{CallLog, Desk, DeskRequest, Store, StoreError};
use crate::tui::app::{App, Command, Input, Mouse, MouseKind};
use crate::tui::app::{EmailDraft, EmailRequest};
use crate::tui::keymap::Key;
use crate::tui::theme::Theme;
use crate::tui::view;

/// At most this many frames a second: a burst of events costs one draw.
const FRAME_INTERVAL: Duration = Duration::from_millis(33);
/// How long the terminal reader waits for input before checking whether it should stop.
const INPUT_POLL: Duration = Duration::from_millis(500);
/// Unregistering and hanging up at quit may take this long.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Where the dashboard's data comes from.
#[derive(Default)]
pub struct Sources {
    /// The SIP driver of the agent's account (none in supervisor mode).
    pub sip: Option<DriverHandle>,
    /// The PBX's AMI: the queue model, report events and supervisor actions.
    pub ami: Option<AmiConfig>,
    /// An Asterisk queue_log to follow for report events (supervisor mode without AMI).
    pub queue_log: Option<PathBuf>,
    /// The local store: every call of this agent goes into its history. An error here is shown
    /// at start, and the dashboard runs without history.
    pub store: Option<Result<Store, StoreError>>,
    /// `[email]`: where follow-up emails go (none: `E` says how to set it up).
    pub email: Option<EmailSettings>,
}

pub struct DashboardOptions {
    pub app: App,
    pub theme: Theme,
    pub sources: Sources,
    /// Queues to connect to (by dialling their code) once registered: the demo's agent
    /// joins `support` this way.
    pub connect_on_register: Vec<String>,
    /// Run `notify-send` on an incoming call.
    pub desktop_notifications: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("cannot use the terminal: {0} (the dashboard needs an interactive terminal; use `ringside shell` for scripts)")]
    Terminal(#[source] io::Error),
}

/// What the dashboard did, for the log and the benchmarks.
#[derive(Debug, Default, Clone, Copy)]
pub struct DashboardSummary {
    pub frames: u64,
    pub bytes_written: u64,
}

/// Counts what reaches the terminal (the cost of the dashboard over SSH).
struct CountingWriter<W> {
    inner: W,
    bytes: Arc<AtomicU64>,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.bytes.fetch_add(written as u64, Ordering::Relaxed);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Puts the terminal back however the dashboard ends: return, error or panic.
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> io::Result<TerminalGuard> {
        enable_raw_mode()?;
        let guard = TerminalGuard;
        execute!(
            io::stdout(),
            EnterAlternateScreen,
            EnableMouseCapture,
            cursor::Hide
        )?;
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
        Ok(guard)
    }
}

fn restore_terminal() {
    let _ = execute!(
        io::stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        cursor::Show
    );
    let _ = disable_raw_mode();
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Reads terminal events on a thread of its own (crossterm's reader blocks), until `stop`.
fn spawn_terminal_reader(
    tx: mpsc::UnboundedSender<TermEvent>,
    stop: Arc<AtomicBool>,
    gate: Arc<InputGate>,
) {
    let spawned = std::thread::Builder::new()
        .name("terminal-input".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if gate.paused.load(Ordering::SeqCst) {
                    gate.parked.store(true, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                gate.parked.store(false, Ordering::SeqCst);
                match term_event::poll(INPUT_POLL) {
                    Ok(true) => match term_event::read() {
                        Ok(event) => {
                            if tx.send(event).is_err() {
                                break;
                            }
                        }
                        Err(error) => {
                            tracing::warn!(%error, "terminal input failed");
                            break;
                        }
                    },
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(%error, "terminal input failed");
                        break;
                    }
                }
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the terminal reader");
    }
}

/// Sends a follow-up on a worker thread (SMTP and sendmail block); the outcome comes back as
/// [`Input::EmailSent`].
fn spawn_send(settings: EmailSettings, draft: EmailDraft, results: mpsc::UnboundedSender<Input>) {
    let worker = std::thread::Builder::new()
        .name("mail".into())
        .spawn(move || {
            let result = settings
                .from_mailbox()
                .map_err(|e| e.to_string())
                .and_then(|from| {
                    crate::mail::compose::FollowUp::from_draft(&draft.text, from)
                        .map_err(|e| e.to_string())
                })
                .and_then(|follow_up| {
                    crate::net::mail::send_follow_up(&settings, &follow_up)
                        .map(|sent| {
                            let to: Vec<String> =
                                follow_up.to.iter().map(ToString::to_string).collect();
                            tracing::info!(message_id = %sent.message_id, recipients = sent.recipients, "follow-up sent");
                            format!("Email sent to {}", to.join(", "))
                        })
                        .map_err(|e| e.to_string())
                });
            if let Err(error) = &result {
                tracing::warn!(%error, "follow-up not sent");
            }
            let _ = results.send(Input::EmailSent { result, draft });
        });
    if let Err(error) = worker {
        tracing::error!(%error, "cannot start the mail worker");
    }
}

/// Lets the run loop take the terminal back from the reader thread (to run `$EDITOR`).
#[derive(Default)]
struct InputGate {
    paused: AtomicBool,
    /// Set by the reader once it has stopped reading.
    parked: AtomicBool,
}

impl InputGate {
    /// Stops the reader and waits (a poll interval at most) until it no longer reads.
    async fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + INPUT_POLL * 2;
        while !self.parked.load(Ordering::SeqCst) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }
}

/// Follows a queue_log on a thread (the tail is blocking file I/O) and sends its report events.
fn spawn_queue_log_follower(
    path: PathBuf,
    events: mpsc::UnboundedSender<ReportEvent>,
    warnings: mpsc::UnboundedSender<String>,
    stop: Arc<AtomicBool>,
) {
    /// Turns the follower's JSON Lines back into events (the follower is shared with
    /// `ringside events --follow`, which prints them).
    struct EventLines {
        pending: Vec<u8>,
        events: mpsc::UnboundedSender<ReportEvent>,
    }
    impl Write for EventLines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.pending.extend_from_slice(buf);
            while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                if let Ok(event) = serde_json::from_slice::<ReportEvent>(&line) {
                    if self.events.send(event).is_err() {
                        return Err(io::Error::new(io::ErrorKind::BrokenPipe, "dashboard gone"));
                    }
                }
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    struct WarningLines(mpsc::UnboundedSender<String>);
    impl Write for WarningLines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let text = String::from_utf8_lossy(buf);
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let _ = self.0.send(line.to_owned());
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let spawned = std::thread::Builder::new()
        .name("queue-log".into())
        .spawn(move || {
            let mut out = EventLines {
                pending: Vec::new(),
                events,
            };
            let mut warn = WarningLines(warnings.clone());
            if let Err(error) =
                crate::cli::report::run_events(&path, true, &mut out, &mut warn, &stop)
            {
                let _ = warnings.send(format!("queue_log {}: {error}", path.display()));
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the queue_log follower");
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Now in the history's unit: epoch seconds.
fn history_now() -> i64 {
    i64::try_from(epoch_ms() / 1000).unwrap_or(i64::MAX)
}

/// The instant of the next whole second of the wall clock, so the clock ticks on time.
fn next_second(now: Instant) -> Instant {
    let into_second = epoch_ms() % 1000;
    now + Duration::from_millis(1000 - into_second)
}

/// A queue code call in flight: which queue, and whether it logs in or out.
#[derive(Debug, Clone)]
struct CodeCall {
    queue: String,
    code: String,
    answered: bool,
}

/// The driver's state beside the app.
struct Drive {
    sip: Option<mpsc::UnboundedSender<DriverCommand>>,
    ami: Option<AmiHandle>,
    /// ActionID → what it was, to explain the PBX's answer.
    actions: HashMap<String, String>,
    /// Codes dialled whose call has not been seen yet, oldest first.
    codes_dialled: VecDeque<CodeCall>,
    code_calls: HashMap<CallId, CodeCall>,
    monitor: QueueMonitor,
    store: Option<(Store, Desk)>,
    email: Option<EmailSettings>,
    /// Follow-ups waiting for the editor (it needs the terminal, which the run loop owns).
    editor_jobs: VecDeque<EmailRequest>,
    /// Where send workers report.
    mail_results: mpsc::UnboundedSender<Input>,
    bell: bool,
    notify: bool,
    connect_on_register: Vec<String>,
}

impl Drive {
    async fn carry_out(&mut self, app: &mut App, commands: Vec<Command>, bell: &mut bool) {
        let mut queue: VecDeque<Command> = commands.into();
        while let Some(command) = queue.pop_front() {
            let follow_up = self.carry_out_one(app, command, bell).await;
            queue.extend(follow_up);
        }
    }

    async fn carry_out_one(
        &mut self,
        app: &mut App,
        command: Command,
        bell: &mut bool,
    ) -> Vec<Command> {
        let to_sip = |this: &Self, command: DriverCommand| -> Option<String> {
            match &this.sip {
                Some(tx) => tx
                    .send(command)
                    .err()
                    .map(|_| "the SIP driver has stopped: restart ringside".to_owned()),
                None => Some("no SIP account: calls need [account] in the config".to_owned()),
            }
        };
        let failure = match command {
            Command::Sip(c) => to_sip(self, DriverCommand::Ua(c)),
            Command::Mute { call, muted } => to_sip(self, DriverCommand::Mute { call, muted }),
            Command::Record { call } => to_sip(self, DriverCommand::Record { call }),
            Command::Snapshot => to_sip(self, DriverCommand::Snapshot),
            Command::DialCode { queue, code } => {
                if let Some((_, desk)) = &mut self.store {
                    desk.log_mut().ignore(code.clone());
                }
                self.codes_dialled.push_back(CodeCall {
                    queue,
                    code: code.clone(),
                    answered: false,
                });
                to_sip(self, DriverCommand::Ua(ua::Command::Dial { target: code }))
            }
            Command::QueuePause {
                interface,
                queue,
                paused,
            } => {
                self.ami_action(AmiAction::QueuePause {
                    queue,
                    interface,
                    paused,
                    reason: paused.then(|| "ringside".to_owned()),
                })
                .await
            }
            Command::QueueAdd { queue, interface } => {
                self.ami_action(AmiAction::QueueAdd {
                    queue,
                    interface,
                    member_name: None,
                    paused: false,
                })
                .await
            }
            Command::QueueRemove { queue, interface } => {
                self.ami_action(AmiAction::QueueRemove { queue, interface })
                    .await
            }
            Command::Desk(request) => {
                return self.desk_request(app, request);
            }
            Command::ComposeEmail(request) => match &self.email {
                Some(_) => {
                    self.editor_jobs.push_back(request);
                    None
                }
                None => Some(
                    "Follow-up email needs an [email] section in the config (an SMTP server or sendmail): see config.example.toml"
                        .to_owned(),
                ),
            },
            Command::SendEmail {
                draft,
                contact,
                activity,
            } => match &self.email {
                Some(settings) => {
                    spawn_send(
                        settings.clone(),
                        EmailDraft {
                            to: String::new(),
                            subject: String::new(),
                            problem: None,
                            text: draft,
                            contact,
                            activity,
                        },
                        self.mail_results.clone(),
                    );
                    None
                }
                None => Some("Follow-up email needs an [email] section in the config".to_owned()),
            },
            Command::Bell => {
                *bell = self.bell;
                None
            }
            Command::Quit => None,
        };
        match failure {
            Some(message) => app.update(Input::CommandFailed(message)),
            None => Vec::new(),
        }
    }

    /// A tab's request, carried out on the store at once (SQLite answers in well under a
    /// frame); the answers go straight back into the app.
    fn desk_request(&mut self, app: &mut App, request: DeskRequest) -> Vec<Command> {
        let Some((store, desk)) = &mut self.store else {
            return app.update(Input::CommandFailed(
                "No local store: contacts, activities and history are off (see the log)".to_owned(),
            ));
        };
        let updates = desk.handle(store, request, history_now());
        let mut follow_up = Vec::new();
        for update in updates {
            follow_up.extend(app.update(Input::Desk(update)));
        }
        follow_up
    }

    /// The follow-up's draft in `$EDITOR`: the terminal is handed over (reader parked, raw
    /// mode and the alternate screen left) while the editor runs on a blocking thread, so the
    /// SIP driver keeps answering meanwhile; then the dashboard is drawn afresh.
    async fn edit_follow_up<W: Write>(
        &mut self,
        request: &EmailRequest,
        gate: &InputGate,
        terminal: &mut Terminal<CrosstermBackend<W>>,
    ) -> Input {
        let Some(settings) = self.email.clone() else {
            return Input::CommandFailed("Follow-up email needs an [email] section".to_owned());
        };
        let now = history_now();
        let store = self.store.as_ref().map(|(store, _)| store);
        let offset = self
            .store
            .as_ref()
            .map_or(0, |(_, desk)| desk.utc_offset_s());
        let text = match follow_up::draft_for(&settings, store, request, now, offset) {
            Ok(text) => text,
            Err(error) => return Input::CommandFailed(format!("Follow-up email: {error}")),
        };
        let path = follow_up::draft_path(store.map(Store::path), now);
        gate.pause().await;
        restore_terminal();
        let edited = tokio::task::spawn_blocking(move || follow_up::edit(&path, &text)).await;
        let reentered = enable_raw_mode().and_then(|()| {
            execute!(
                io::stdout(),
                EnterAlternateScreen,
                EnableMouseCapture,
                cursor::Hide
            )
        });
        if let Err(error) = reentered {
            tracing::error!(%error, "cannot take the terminal back after the editor");
        }
        let _ = terminal.clear();
        gate.resume();
        match edited {
            Ok(Ok(text)) => Input::EmailDraft(follow_up::read_draft(&settings, text, request)),
            Ok(Err(error)) => Input::CommandFailed(format!("Follow-up email: {error}")),
            Err(error) => {
                Input::CommandFailed(format!("Follow-up email: the editor task failed: {error}"))
            }
        }
    }

    async fn ami_action(&mut self, action: AmiAction) -> Option<String> {
        let Some(ami) = &self.ami else {
            return Some(format!(
                "{}: no AMI is configured (set [ami] address, user and secret)",
                action.describe()
            ));
        };
        let what = action.describe();
        match ami.command(action).await {
            Ok(id) => {
                self.actions.insert(id, what);
                None
            }
            Err(error) => Some(format!("{what}: {error}")),
        }
    }

    /// SIP driver output as dashboard inputs; queue code calls are followed here.
    fn sip_inputs(&mut self, output: DriverOutput) -> Vec<Input> {
        match output {
            DriverOutput::Event(mut event) => {
                let mut inputs = Vec::new();
                // Caller lookup: a known number shows the contact's name.
                if let (UaEvent::IncomingCall { from, name, .. }, Some((store, _))) =
                    (&mut event, &self.store)
                {
                    if let Some(contact) = CallLog::contact_name(store, from) {
                        *name = Some(contact);
                    }
                }
                if let Some((store, desk)) = &mut self.store {
                    let now = history_now();
                    match desk.on_call_event(store, &event, now) {
                        Ok(updates) => inputs.extend(updates.into_iter().map(Input::Desk)),
                        Err(error) => {
                            tracing::warn!(%error, "call history");
                            inputs.push(Input::CommandFailed(format!("Call history: {error}")));
                        }
                    }
                }
                match &event {
                    UaEvent::Registered { .. } => {
                        for queue in std::mem::take(&mut self.connect_on_register) {
                            inputs.push(Input::ConnectQueue(queue));
                        }
                    }
                    UaEvent::Dialing { call, to } => {
                        if let Some(pos) = self
                            .codes_dialled
                            .iter()
                            .position(|c| to.contains(c.code.as_str()))
                        {
                            if let Some(code) = self.codes_dialled.remove(pos) {
                                self.code_calls.insert(*call, code);
                            }
                        }
                    }
                    UaEvent::Answered { call, .. } => {
                        if let Some(code) = self.code_calls.get_mut(call) {
                            code.answered = true;
                        }
                    }
                    UaEvent::IncomingCall { from, name, .. } if self.notify => {
                        notify_incoming(from, name.as_deref());
                    }
                    _ => {}
                }
                let ended = match &event {
                    UaEvent::CallEnded { call, reason, .. } => self
                        .code_calls
                        .remove(call)
                        .map(|code| (code, reason.clone())),
                    _ => None,
                };
                inputs.insert(0, Input::Ua(event));
                if let Some((code, reason)) = ended {
                    inputs.push(Input::CodeResult {
                        queue: code.queue,
                        code: code.code,
                        accepted: code.answered,
                        reason,
                    });
                }
                inputs
            }
            DriverOutput::CommandFailed(error) => {
                if matches!(error, ua::CommandError::BadTarget(_)) {
                    self.codes_dialled.pop_back();
                }
                vec![Input::CommandFailed(error.to_string())]
            }
            DriverOutput::Snapshot {
                calls,
                registered,
                media,
            } => vec![Input::Snapshot {
                calls,
                registered,
                media,
            }],
            DriverOutput::Warning(message) => vec![Input::CommandFailed(message)],
            DriverOutput::Recording { call, path } => {
                if let Some((_, desk)) = &mut self.store {
                    desk.log_mut().recording(call, path.display().to_string());
                }
                Vec::new()
            }
            DriverOutput::Stopped => vec![Input::CommandFailed(
                "the SIP driver has stopped: restart ringside".to_owned(),
            )],
        }
    }

    /// AMI events as dashboard inputs: the model's changes and the report events.
    fn ami_inputs(&mut self, event: AmiClientEvent) -> Vec<Input> {
        let now = epoch_ms() / 1000;
        let mut inputs = Vec::new();
        if let Err(error) = self.monitor.handle(now, &event) {
            tracing::warn!(%error, "malformed AMI event");
        }
        match &event {
            AmiClientEvent::Snapshot(_) => {
                inputs.push(Input::QueueReset(self.monitor.state().clone()));
            }
            AmiClientEvent::Event(message) => {
                if let Ok(Some(queue_event)) = QueueAmiEvent::from_message(message) {
                    inputs.push(Input::Queue(queue_event));
                }
            }
            AmiClientEvent::ActionResult {
                action_id,
                success,
                message,
            } => {
                let what = self
                    .actions
                    .remove(action_id)
                    .unwrap_or_else(|| "AMI action".to_owned());
                inputs.push(if *success {
                    Input::Info(format!("{what}: done"))
                } else {
                    Input::CommandFailed(format!("{what}: the PBX said {message:?}"))
                });
            }
            AmiClientEvent::LoginFailed { message } => inputs.push(Input::CommandFailed(format!(
                "AMI login refused: {message} — check [ami] user and secret"
            ))),
            AmiClientEvent::Retrying { after, reason } => inputs.push(Input::CommandFailed(
                format!("AMI: {reason}; retrying in {} s", after.as_secs().max(1)),
            )),
            AmiClientEvent::Problem { message } => {
                tracing::warn!(%message, "AMI problem");
            }
            AmiClientEvent::Connected { .. }
            | AmiClientEvent::LoggedIn
            | AmiClientEvent::Disconnected { .. } => {}
        }
        while let Some(report) = self.monitor.poll_report() {
            inputs.push(Input::Report(report));
        }
        inputs
    }
}

/// A desktop notification, when `notify-send` exists; failures only reach the log.
fn notify_incoming(from: &str, name: Option<&str>) {
    let who = match name {
        Some(name) => format!("{name} <{}>", crate::tui::app::user_part(from)),
        None => crate::tui::app::user_part(from).to_owned(),
    };
    match std::process::Command::new("notify-send")
        .args(["--app-name=ringside", "Incoming call", &who])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(error) => tracing::debug!(%error, "notify-send unavailable"),
    }
}

fn mouse_input(event: &term_event::MouseEvent) -> Option<Input> {
    let kind = match event.kind {
        MouseEventKind::Down(MouseButton::Left) => MouseKind::Click,
        MouseEventKind::ScrollUp => MouseKind::ScrollUp,
        MouseEventKind::ScrollDown => MouseKind::ScrollDown,
        _ => return None,
    };
    Some(Input::Mouse(Mouse {
        kind,
        column: event.column,
        row: event.row,
    }))
}

/// Runs the dashboard until the user quits, or `background` (the in-process lab) ends.
pub async fn run<E: std::fmt::Display>(
    options: DashboardOptions,
    background: impl std::future::Future<Output = Result<(), E>>,
) -> Result<DashboardSummary, DashboardError> {
    let DashboardOptions {
        mut app,
        theme,
        sources,
        connect_on_register,
        desktop_notifications,
    } = options;
    let guard = TerminalGuard::enter().map_err(DashboardError::Terminal)?;
    let bytes = Arc::new(AtomicU64::new(0));
    let writer = CountingWriter {
        inner: io::BufWriter::with_capacity(64 * 1024, io::stdout()),
        bytes: bytes.clone(),
    };
    let mut terminal =
        Terminal::new(CrosstermBackend::new(writer)).map_err(DashboardError::Terminal)?;
    let size = terminal.size().map_err(DashboardError::Terminal)?;
    app.update(Input::Resize {
        width: size.width,
        height: size.height,
    });

    let stop = Arc::new(AtomicBool::new(false));
    let (term_tx, mut term_rx) = mpsc::unbounded_channel();
    let gate = Arc::new(InputGate::default());
    spawn_terminal_reader(term_tx, stop.clone(), gate.clone());
    let (mail_tx, mut mail_rx) = mpsc::unbounded_channel();
    let (log_tx, mut log_rx) = mpsc::unbounded_channel();
    let (warn_tx, mut warn_rx) = mpsc::unbounded_channel();
    if let Some(path) = sources.queue_log.clone() {
        spawn_queue_log_follower(path, log_tx, warn_tx, stop.clone());
    }
    let (sip_tx, mut sip_rx) = match sources.sip {
        Some(handle) => (Some(handle.commands), Some(handle.outputs)),
        None => (None, None),
    };
    if let Some(tx) = &sip_tx {
        let _ = tx.send(DriverCommand::Ua(ua::Command::Register));
    }
    let store = match sources.store {
        Some(Err(error)) => {
            app.update(Input::CommandFailed(format!(
                "No call history this time: {error}"
            )));
            None
        }
        Some(Ok(mut store)) => {
            let now = history_now();
            match store.close_interrupted(now) {
                Ok(0) => {}
                Ok(n) => {
                    app.update(Input::CommandFailed(format!(
                        "{n} call(s) were still open when ringside last stopped: marked interrupted in the history"
                    )));
                }
                Err(error) => {
                    app.update(Input::CommandFailed(format!("Call history: {error}")));
                }
            }
            let local = app.config.account.clone();
            let assignee = local.split('@').next().unwrap_or_default().to_owned();
            let desk = Desk::new(&local, &assignee, i64::from(app.config.utc_offset_s));
            app.desk.available = true;
            Some((store, desk))
        }
        None => None,
    };
    let mut drive = Drive {
        sip: sip_tx,
        ami: sources.ami.map(spawn_ami),
        actions: HashMap::new(),
        codes_dialled: VecDeque::new(),
        code_calls: HashMap::new(),
        monitor: QueueMonitor::new(),
        store,
        email: sources.email,
        editor_jobs: VecDeque::new(),
        mail_results: mail_tx,
        bell: true,
        notify: desktop_notifications,
        connect_on_register,
    };

    let first = drive.desk_request(&mut app, DeskRequest::Refresh);
    drive.carry_out(&mut app, first, &mut false).await;

    let mut summary = DashboardSummary::default();
    let mut last_draw: Option<Instant> = None;
    let mut next_tick = Instant::now();
    tokio::pin!(background);
    let mut background_done = false;
    loop {
        let now = Instant::now();
        let draw_at = last_draw.map_or(now, |t| t + FRAME_INTERVAL);
        let inputs: Vec<Input> = tokio::select! {
            Some(event) = term_rx.recv() => match event {
                TermEvent::Key(key) => Key::from_crossterm(&key).map(Input::Key).into_iter().collect(),
                TermEvent::Mouse(mouse) => mouse_input(&mouse).into_iter().collect(),
                TermEvent::Resize(width, height) => vec![Input::Resize { width, height }],
                _ => Vec::new(),
            },
            Some(output) = async { match sip_rx.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                drive.sip_inputs(output)
            }
            Some(event) = async { match drive.ami.as_mut() { Some(ami) => ami.next_event().await, None => std::future::pending().await } } => {
                drive.ami_inputs(event)
            }
            Some(event) = log_rx.recv() => vec![Input::Report(event)],
            Some(warning) = warn_rx.recv() => vec![Input::CommandFailed(warning)],
            Some(input) = mail_rx.recv() => vec![input],
            () = tokio::time::sleep_until(next_tick.into()) => {
                next_tick = next_second(Instant::now());
                vec![Input::Tick { epoch_ms: epoch_ms() }]
            }
            () = tokio::time::sleep_until(draw_at.into()), if app.is_dirty() => Vec::new(),
            result = &mut background, if !background_done => {
                background_done = true;
                let message = match result {
                    Ok(()) => "the lab PBX has stopped".to_owned(),
                    Err(error) => format!("the lab PBX has stopped: {error}"),
                };
                vec![Input::CommandFailed(message)]
            }
        };
        let mut ring_bell = false;
        for input in inputs {
            let commands = app.update(input);
            drive.carry_out(&mut app, commands, &mut ring_bell).await;
        }
        while let Some(job) = drive.editor_jobs.pop_front() {
            let draft = drive.edit_follow_up(&job, &gate, &mut terminal).await;
            let commands = app.update(draft);
            drive.carry_out(&mut app, commands, &mut ring_bell).await;
        }
        if app.is_quitting() {
            break;
        }
        if ring_bell {
            let _ = terminal.backend_mut().write_all(b"\x07");
        }
        let now = Instant::now();
        if app.is_dirty() && last_draw.is_none_or(|t| now >= t + FRAME_INTERVAL) {
            app.take_dirty();
            terminal
                .draw(|frame| view::draw(frame, &app, &theme))
                .map_err(DashboardError::Terminal)?;
            summary.frames += 1;
            last_draw = Some(now);
        } else if ring_bell {
            let _ = terminal.backend_mut().flush();
        }
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(sip) = &drive.sip {
        let _ = sip.send(DriverCommand::Shutdown {
            grace: SHUTDOWN_GRACE,
        });
        if let Some(rx) = sip_rx.as_mut() {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
                while let Some(output) = rx.recv().await {
                    if matches!(output, DriverOutput::Stopped) {
                        break;
                    }
                    // Calls ending now still close their history rows.
                    drive.sip_inputs(output);
                }
            })
            .await;
        }
    }
    if let Some(ami) = drive.ami.take() {
        let _ = tokio::time::timeout(Duration::from_secs(2), ami.shutdown()).await;
    }
    summary.bytes_written = bytes.load(Ordering::Relaxed);
    drop(terminal);
    drop(guard);
    tracing::info!(
        frames = summary.frames,
        bytes = summary.bytes_written,
        "dashboard closed"
    );
    Ok(summary)
}
