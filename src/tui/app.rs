//! The dashboard's state and its one entry point, [`App::update`]: an input in (a key, a SIP
//! event, a queue event, a tick), the commands for the drivers out. No I/O and no clock here:
//! time arrives in `Input::Tick`, so every sequence is a plain test.
//!
//! The run loop owns the terminal and the channels. It turns crossterm events into
//! [`Input::Key`] (via [`Key::from_crossterm`]), [`Input::Mouse`] and [`Input::Resize`], driver
//! output into [`Input::Ua`] / [`Input::Snapshot`] / [`Input::CommandFailed`], AMI events into
//! [`Input::Queue`] and the report deriver's events into [`Input::Report`]; it sends a
//! [`Input::Tick`] once a second, carries out the returned [`Command`]s, and draws with
//! [`crate::tui::view::draw`] when [`App::take_dirty`] says so.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::lab::config::LabQueue;
use crate::media::session::MediaStats;
use crate::queue::ami::{DeviceState, Membership, QueueAmiEvent, QueueMemberInfo};
use crate::queue::model::{Agent, AgentState, Queue, QueueState};
use crate::queue::report::{ReportEvent, ReportKind};
use crate::queue::stats::{QueueStats, StatsBuilder, StatsConfig};
use crate::sip::ua::{self, CallDirection, CallId, CallInfo, CallState, EndedBy, UaEvent};

use crate::store::{
    ActivityId, ActivityKind, CallRowId, CivilDate, Contact, ContactId, DeskRequest, DeskUpdate,
    NewActivity, SearchFor,
};

use super::desk::{ActivityForm, Desk, FormOutcome, FormSave};
use super::keymap::{Action, Facts, Key, KeyCode, Keymap};
use super::number::{dial_target, normalize_number};

/// Events kept for the stream pane (and the live statistics).
pub const DEFAULT_EVENT_CAPACITY: usize = 10_000;
const HISTORY_CAPACITY: usize = 50;
const PROMPT_MAX_CHARS: usize = 128;
const NOTICE_MS: u64 = 6_000;
const ALERT_MS: u64 = 20_000;
/// Rows a page key moves.
pub const PAGE_ROWS: usize = 10;

/// Who sits at the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An agent with a SIP account: calls, queue login codes, own pause.
    Agent,
    /// `ringside supervise`: no SIP account; queue actions apply to the selected agent.
    Supervisor,
}

/// How an agent joins and leaves a queue from the phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCodes {
    pub queue: String,
    pub extension: String,
    pub login_code: String,
    pub logout_code: String,
}

impl From<&LabQueue> for QueueCodes {
    fn from(queue: &LabQueue) -> Self {
        QueueCodes {
            queue: queue.queue.name.clone(),
            extension: queue.extension.clone(),
            login_code: queue.login_code.clone(),
            logout_code: queue.logout_code.clone(),
        }
    }
}

/// What the dashboard is told at start.
#[derive(Debug, Clone, PartialEq)]
pub struct AppConfig {
    pub mode: Mode,
    /// The account as the header shows it (`101@192.0.2.1`).
    pub account: String,
    /// This agent in the queue model: its interface (`PJSIP/101`) or member name.
    pub agent: Option<String>,
    pub queue_codes: Vec<QueueCodes>,
    /// `[dial] default_region`, for national numbers.
    pub default_region: Option<String>,
    /// Digits-only input up to this length is an extension, longer is a phone number.
    pub max_extension_digits: usize,
    /// Local time offset for the clock and event times (the loop reads it from the system).
    pub utc_offset_s: i32,
    /// The service-level threshold N for the live statistics, seconds.
    pub service_level_s: u32,
    /// Service level below this percentage shows as bad.
    pub service_level_target_pct: f64,
    pub event_capacity: usize,
    /// Whether queue actions (pause, supervisor add/remove) can be sent to an AMI.
    pub ami_actions: bool,
    /// Whether a queue model arrives from the PBX (AMI). Without one, the agent's own queue
    /// state comes from the connection and disconnection codes it dialled.
    pub live_queue_feed: bool,
    /// Shown on the notice line while no notice is (the demo says what it is here).
    pub standing_hint: Option<String>,
    /// A local store is behind the Recent, Next Activities and Contacts tabs.
    pub store: bool,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            mode: Mode::Agent,
            account: String::new(),
            agent: None,
            queue_codes: Vec::new(),
            default_region: None,
            max_extension_digits: 6,
            utc_offset_s: 0,
            service_level_s: 20,
            service_level_target_pct: 80.0,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            ami_actions: false,
            live_queue_feed: false,
            standing_hint: None,
            store: false,
        }
    }
}

/// A follow-up email to compose: who it is for and which call or activity it follows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EmailRequest {
    pub contact: Option<ContactId>,
    /// Who, as the tab showed it (for notices).
    pub name: String,
    pub number: Option<String>,
    pub call: Option<CallRowId>,
    /// The email activity it comes from (its note is the draft; done once sent).
    pub activity: Option<ActivityId>,
    /// A draft to edit again instead of a fresh one from the template.
    pub draft: Option<String>,
}

/// A draft back from the editor, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailDraft {
    pub text: String,
    pub to: String,
    pub subject: String,
    /// Why it cannot be sent as it is (no recipient, a bad address...).
    pub problem: Option<String>,
    pub contact: Option<ContactId>,
    pub activity: Option<ActivityId>,
}

/// A mouse event, already in terminal cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MouseKind {
    Click,
    ScrollUp,
    ScrollDown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mouse {
    pub kind: MouseKind,
    pub column: u16,
    pub row: u16,
}

/// Everything that can change the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Key(Key),
    /// An action by name (command palette, scripts, tests).
    Action(Action),
    Mouse(Mouse),
    Ua(UaEvent),
    /// The driver's answer to [`Command::Snapshot`].
    Snapshot {
        calls: Vec<CallInfo>,
        registered: bool,
        media: Vec<(CallId, MediaStats, f64)>,
    },
    /// A command the driver could not carry out, or a warning it raised.
    CommandFailed(String),
    /// A confirmation from a driver (an AMI action done).
    Info(String),
    /// Connect to a queue by its code, as the `c` key does (the demo does it at start).
    ConnectQueue(String),
    /// A queue code call ended: `accepted` when the PBX answered it (and played its
    /// confirmation), else `reason` says why not.
    CodeResult {
        queue: String,
        code: String,
        accepted: bool,
        reason: String,
    },
    Queue(QueueAmiEvent),
    /// A whole new queue model (a reconnect's fresh snapshot, or another source).
    QueueReset(QueueState),
    Report(ReportEvent),
    /// Voicemail messages waiting (MWI), when known.
    Voicemail(Option<u32>),
    /// The store's answer for the tabs.
    Desk(DeskUpdate),
    /// A follow-up email came back from the editor.
    EmailDraft(EmailDraft),
    /// A follow-up was sent (the notice text), or was not (why).
    EmailSent {
        result: Result<String, String>,
        draft: EmailDraft,
    },
    /// The wall clock, once a second or so: epoch milliseconds.
    Tick {
        epoch_ms: u64,
    },
    Resize {
        width: u16,
        height: u16,
    },
}

/// What the drivers must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Sip(ua::Command),
    Mute {
        call: CallId,
        muted: bool,
    },
    Record {
        call: CallId,
    },
    /// Dial a queue's login or logout code (a short call the PBX answers with beeps).
    DialCode {
        queue: String,
        code: String,
    },
    /// AMI QueuePause; `queue: None` means every queue of the member.
    QueuePause {
        interface: String,
        queue: Option<String>,
        paused: bool,
    },
    /// AMI QueueAdd (supervisor).
    QueueAdd {
        queue: String,
        interface: String,
    },
    /// AMI QueueRemove (supervisor).
    QueueRemove {
        queue: String,
        interface: String,
    },
    /// Ask the SIP driver for a snapshot (call timers, MOS).
    Snapshot,
    /// Read or change the store behind the tabs.
    Desk(DeskRequest),
    /// Compose a follow-up email in $EDITOR.
    ComposeEmail(EmailRequest),
    /// Send an edited follow-up (on a worker: the answer comes back as a notice).
    SendEmail {
        draft: String,
        contact: Option<ContactId>,
        activity: Option<ActivityId>,
    },
    /// Ring the terminal bell.
    Bell,
    Quit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    Unknown,
    Registered {
        aor: String,
    },
    Failed {
        message: String,
        retry_in_s: Option<u64>,
    },
    Unregistered,
}

/// What a call is doing, as the calls pane says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallPhase {
    Dialing,
    /// Our outgoing call rings at the far end.
    Ringing,
    /// Outgoing, with early media (announcements, ringback from the far end).
    Early,
    /// Someone calls us.
    Incoming,
    Connecting,
    Active,
    OnHold,
    HeldByFarEnd,
    Transferring,
    Ending,
}

impl CallPhase {
    pub fn label(self) -> &'static str {
        match self {
            CallPhase::Dialing => "dialing",
            CallPhase::Ringing => "ringing",
            CallPhase::Early => "early media",
            CallPhase::Incoming => "ringing",
            CallPhase::Connecting => "connecting",
            CallPhase::Active => "active",
            CallPhase::OnHold => "on hold",
            CallPhase::HeldByFarEnd => "held by far end",
            CallPhase::Transferring => "transferring",
            CallPhase::Ending => "ending",
        }
    }
}

/// One call as the dashboard tracks it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRow {
    pub id: CallId,
    pub direction: CallDirection,
    pub state: CallState,
    pub remote_uri: String,
    pub remote_name: Option<String>,
    pub on_hold: bool,
    pub remote_hold: bool,
    pub early_media: bool,
    pub transferring: bool,
    /// This call consults for an attended transfer of that (held) call.
    pub consultation_of: Option<CallId>,
    pub codec: Option<String>,
    pub muted: bool,
    pub recording: bool,
    pub mos: Option<f64>,
    /// The queue an incoming call came through, when the queue model shows it.
    pub queue: Option<String>,
    pub started_ms: u64,
    pub answered_ms: Option<u64>,
    /// The activity this call was placed from, and its summary (its end asks "mark done?").
    pub activity: Option<(ActivityId, String)>,
}

impl CallRow {
    fn new(id: CallId, direction: CallDirection, state: CallState, uri: &str, now_ms: u64) -> Self {
        CallRow {
            id,
            direction,
            state,
            remote_uri: uri.to_owned(),
            remote_name: None,
            on_hold: false,
            remote_hold: false,
            early_media: false,
            transferring: false,
            consultation_of: None,
            codec: None,
            muted: false,
            recording: false,
            mos: None,
            queue: None,
            started_ms: now_ms,
            answered_ms: None,
            activity: None,
        }
    }

    pub fn phase(&self) -> CallPhase {
        match self.state {
            CallState::Dialing => CallPhase::Dialing,
            CallState::Ringing if self.early_media => CallPhase::Early,
            CallState::Ringing => CallPhase::Ringing,
            CallState::Incoming => CallPhase::Incoming,
            CallState::Connecting => CallPhase::Connecting,
            CallState::Ending => CallPhase::Ending,
            CallState::Active if self.transferring => CallPhase::Transferring,
            CallState::Active if self.on_hold => CallPhase::OnHold,
            CallState::Active if self.remote_hold => CallPhase::HeldByFarEnd,
            CallState::Active => CallPhase::Active,
        }
    }

    pub fn is_answered(&self) -> bool {
        self.state == CallState::Active
    }

    /// Talk time once answered, ring time before.
    pub fn elapsed_s(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.answered_ms.unwrap_or(self.started_ms)) / 1000
    }

    /// The number or user part of the remote URI (`sip:+3247...@host` → `+3247...`).
    pub fn remote_number(&self) -> &str {
        user_part(&self.remote_uri)
    }

    /// The name when known, else the number.
    pub fn who(&self) -> &str {
        self.remote_name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.remote_number())
    }
}

/// `sip:user@host;params` → `user`; anything else as it is.
pub fn user_part(uri: &str) -> &str {
    let text = uri.trim().trim_start_matches('<').trim_end_matches('>');
    let text = text
        .strip_prefix("sips:")
        .or_else(|| text.strip_prefix("sip:"))
        .or_else(|| text.strip_prefix("tel:"))
        .unwrap_or(text);
    let end = text.find(['@', ';', '>']).unwrap_or(text.len());
    text.get(..end).filter(|u| !u.is_empty()).unwrap_or(text)
}

/// The dashboard's panes, in Tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pane {
    Calls,
    Queues,
    Agents,
    Tabs,
    Events,
}

impl Pane {
    pub const ALL: [Pane; 5] = [
        Pane::Calls,
        Pane::Queues,
        Pane::Agents,
        Pane::Tabs,
        Pane::Events,
    ];

    fn index(self) -> usize {
        Pane::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }
}

/// The activities tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Recent,
    NextActivities,
    Contacts,
}

impl Tab {
    pub const ALL: [Tab; 3] = [Tab::Recent, Tab::NextActivities, Tab::Contacts];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Recent => "Recent",
            Tab::NextActivities => "Next Activities",
            Tab::Contacts => "Contacts",
        }
    }

    /// The title where the full one does not fit.
    pub fn short_title(self) -> &'static str {
        match self {
            Tab::Recent => "Recent",
            Tab::NextActivities => "Next",
            Tab::Contacts => "Contacts",
        }
    }

    /// What the tab says while it has nothing to show.
    pub fn empty_state(self) -> (&'static str, &'static str) {
        match self {
            Tab::Recent => (
                "No recent calls yet.",
                "Calls you make and take will be listed here.",
            ),
            Tab::NextActivities => (
                "No upcoming activities.",
                "Callbacks and follow-ups you plan will show up here.",
            ),
            Tab::Contacts => (
                "No contacts yet.",
                "People you call often will be listed here for quick dialling.",
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeLevel {
    Info,
    Alert,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    pub level: NoticeLevel,
    pub until_ms: u64,
}

/// What a text prompt is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptPurpose {
    Dial,
    BlindTransfer(CallId),
    Forward(CallId),
    AttendedTransfer(CallId),
    Dtmf(CallId),
    Search,
    /// The Contacts tab's search, as you type.
    ContactSearch,
}

impl PromptPurpose {
    pub fn title(self) -> &'static str {
        match self {
            PromptPurpose::Dial => "Dial",
            PromptPurpose::BlindTransfer(_) => "Transfer to",
            PromptPurpose::Forward(_) => "Forward to number",
            PromptPurpose::AttendedTransfer(_) => "Consult (attended transfer)",
            PromptPurpose::Dtmf(_) => "Send DTMF digits",
            PromptPurpose::Search => "Search",
            PromptPurpose::ContactSearch => "Search contacts",
        }
    }

    pub fn hint(self) -> &'static str {
        match self {
            PromptPurpose::Dial | PromptPurpose::AttendedTransfer(_) => {
                "A number (+32 470 12 34 56), an extension or sip:user@host"
            }
            PromptPurpose::BlindTransfer(_) => "An extension, a number or sip:user@host",
            PromptPurpose::Forward(_) => "A phone number, e.g. +16506913277",
            PromptPurpose::Dtmf(_) => "Digits 0-9, *, # and A-D",
            PromptPurpose::Search => "Text to find in queues, agents and events",
            PromptPurpose::ContactSearch => "A name, company, email or part of a number",
        }
    }

    fn uses_history(self) -> bool {
        !matches!(
            self,
            PromptPurpose::Dtmf(_) | PromptPurpose::Search | PromptPurpose::ContactSearch
        )
    }

    /// Whether the input is a number to dial (national numbers read in the default region).
    pub fn takes_numbers(self) -> bool {
        self.completes_contacts() || matches!(self, PromptPurpose::Forward(_))
    }

    /// Whether contacts are suggested as you type (the number comes from the contact).
    fn completes_contacts(self) -> bool {
        matches!(
            self,
            PromptPurpose::Dial
                | PromptPurpose::BlindTransfer(_)
                | PromptPurpose::AttendedTransfer(_)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub purpose: PromptPurpose,
    pub input: String,
    /// Position in the dial history while browsing it with ↑/↓.
    pub history_pos: Option<usize>,
    pub error: Option<String>,
    /// Contacts matching the input: (name, number), best first.
    pub suggestions: Vec<(String, String)>,
    /// The suggestion chosen with ↓, if any.
    pub pick: Option<usize>,
}

/// What a list picker chooses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickPurpose {
    Connect,
    Disconnect,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picker {
    pub purpose: PickPurpose,
    pub title: String,
    pub options: Vec<String>,
    pub selected: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modal {
    Prompt(Prompt),
    Pick(Picker),
    Help {
        scroll: usize,
    },
    Palette {
        input: String,
        selected: usize,
    },
    ConfirmQuit,
    /// Edit an activity or schedule a new one.
    Form(ActivityForm),
    /// A contact's card with its planned activities.
    Card {
        contact: Contact,
        activities: Vec<crate::store::Activity>,
    },
    /// A call placed from an activity ended: mark the activity done?
    ConfirmDone {
        activity: ActivityId,
        summary: String,
    },
    /// An edited follow-up: send now, later (an activity), edit again, or discard.
    SendChoice(EmailDraft),
}

/// The event stream: a bounded ring of report events with its filters and scroll state.
#[derive(Debug, Clone, PartialEq)]
pub struct EventLog {
    ring: VecDeque<ReportEvent>,
    capacity: usize,
    /// Events ever pushed (so a frozen view can hold still while old ones drop off).
    pushed: u64,
    pub kind: Option<ReportKind>,
    pub queue: Option<String>,
    /// The pushed count when scrolling was frozen.
    frozen_at: Option<u64>,
    /// Matching rows skipped from the newest visible one (scrolling back).
    pub scroll: usize,
}

impl EventLog {
    pub fn new(capacity: usize) -> Self {
        EventLog {
            ring: VecDeque::with_capacity(capacity.min(DEFAULT_EVENT_CAPACITY)),
            capacity: capacity.max(1),
            pushed: 0,
            kind: None,
            queue: None,
            frozen_at: None,
            scroll: 0,
        }
    }

    pub fn push(&mut self, event: ReportEvent) {
        if self.ring.len() == self.capacity {
            self.ring.pop_front();
        }
        self.ring.push_back(event);
        self.pushed += 1;
    }

    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    pub fn all(&self) -> impl DoubleEndedIterator<Item = &ReportEvent> {
        self.ring.iter()
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen_at.is_some()
    }

    /// Events that arrived since the view froze.
    pub fn unseen(&self) -> u64 {
        self.frozen_at
            .map_or(0, |at| self.pushed.saturating_sub(at))
    }

    pub fn freeze(&mut self) {
        if self.frozen_at.is_none() {
            self.frozen_at = Some(self.pushed);
        }
    }

    /// Follow the newest events again.
    pub fn follow(&mut self) {
        self.frozen_at = None;
        self.scroll = 0;
    }

    fn matches(&self, event: &ReportEvent, search: Option<&str>) -> bool {
        self.kind.is_none_or(|kind| event.kind == kind)
            && self.queue.as_deref().is_none_or(|q| event.queue == q)
            && search.is_none_or(|text| {
                contains_folded(&event.queue, text)
                    || event
                        .agent
                        .as_deref()
                        .is_some_and(|a| contains_folded(a, text))
                    || event
                        .caller
                        .as_deref()
                        .is_some_and(|c| contains_folded(c, text))
                    || contains_folded(event.kind.name(), text)
            })
    }

    /// The rows to show, newest first: filtered, without what arrived after a freeze, after
    /// skipping `scroll` rows.
    pub fn visible<'a>(
        &'a self,
        search: Option<&'a str>,
    ) -> impl Iterator<Item = &'a ReportEvent> + 'a {
        let hidden_new = usize::try_from(self.unseen()).unwrap_or(usize::MAX);
        let end = self.ring.len().saturating_sub(hidden_new);
        self.ring
            .range(..end)
            .rev()
            .filter(move |e| self.matches(e, search))
            .skip(self.scroll)
    }
}

/// Case-insensitive `contains` for ASCII-folded search text (`needle` is already lower case).
fn contains_folded(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    haystack.to_ascii_lowercase().contains(needle)
}

/// Which row each list has selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Selection {
    pub calls: usize,
    pub queues: usize,
    pub agents: usize,
}

/// The state of the whole dashboard.
#[derive(Debug, Clone)]
pub struct App {
    pub config: AppConfig,
    pub keymap: Keymap,
    pub registration: Registration,
    pub calls: Vec<CallRow>,
    pub queues: QueueState,
    /// Live statistics per queue, from the event stream.
    pub stats: BTreeMap<String, QueueStats>,
    /// Per agent interface: its state's name and since when (epoch seconds).
    pub agent_since: HashMap<String, (&'static str, u64)>,
    pub events: EventLog,
    pub focus: Pane,
    pub tab: Tab,
    pub expanded: BTreeSet<String>,
    pub selection: Selection,
    /// Lower-case search text, applied to queues, agents and events.
    pub search: Option<String>,
    pub notice: Option<Notice>,
    pub modal: Option<Modal>,
    /// Most recent first.
    pub dial_history: Vec<String>,
    pub voicemail: Option<u32>,
    /// The Recent, Next Activities and Contacts tabs.
    pub desk: Desk,
    pub now_ms: u64,
    pub size: (u16, u16),
    /// The next call to this target is placed from this activity.
    pending_activity_call: Option<(String, ActivityId, String)>,
    dirty: bool,
    quitting: bool,
    pending_consultation: Option<CallId>,
    stats_stale: bool,
}

fn agent_state_name(state: &AgentState) -> &'static str {
    match state {
        AgentState::Available => "available",
        AgentState::Ringing => "ringing",
        AgentState::Busy => "busy",
        AgentState::OnHold => "on hold",
        AgentState::Paused { .. } => "paused",
        AgentState::Unavailable => "unavailable",
        AgentState::LoggedOut => "logged out",
    }
}

impl App {
    pub fn new(config: AppConfig, keymap: Keymap) -> App {
        let events = EventLog::new(config.event_capacity);
        let desk = Desk {
            available: config.store,
            ..Desk::default()
        };
        App {
            config,
            keymap,
            registration: Registration::Unknown,
            calls: Vec::new(),
            queues: QueueState::new(),
            stats: BTreeMap::new(),
            agent_since: HashMap::new(),
            events,
            focus: Pane::Calls,
            tab: Tab::Recent,
            expanded: BTreeSet::new(),
            selection: Selection::default(),
            search: None,
            notice: None,
            modal: None,
            dial_history: Vec::new(),
            voicemail: None,
            desk,
            now_ms: 0,
            size: (80, 24),
            pending_activity_call: None,
            dirty: true,
            quitting: false,
            pending_consultation: None,
            stats_stale: false,
        }
    }

    /// Whether something visible changed since the last call; clears the flag.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Set once the user confirmed quitting ([`Command::Quit`] was returned).
    pub fn is_quitting(&self) -> bool {
        self.quitting
    }

    pub fn now_s(&self) -> u64 {
        self.now_ms / 1000
    }

    /// The one entry point: apply `input`, return what the drivers must do.
    pub fn update(&mut self, input: Input) -> Vec<Command> {
        let mut out = Vec::new();
        let mut changed = true;
        match input {
            Input::Key(key) => self.on_key(key, &mut out),
            Input::Action(action) => self.perform(action, None, &mut out),
            Input::Mouse(mouse) => self.on_mouse(mouse),
            Input::Ua(event) => self.on_ua(event, &mut out),
            Input::Snapshot {
                calls,
                registered,
                media,
            } => self.on_snapshot(calls, registered, &media),
            Input::CommandFailed(message) => self.alert(message),
            Input::Info(message) => self.info(message),
            Input::ConnectQueue(queue) => {
                if self.config.mode == Mode::Agent {
                    self.apply_membership(&PickPurpose::Connect, &queue, &mut out);
                }
            }
            Input::CodeResult {
                queue,
                code,
                accepted,
                reason,
            } => self.on_code_result(&queue, &code, accepted, &reason),
            Input::Queue(event) => {
                let before = self.my_memberships();
                self.queues.apply(&event, self.now_s());
                self.after_queue_change(before);
                self.ask_caller_names(&mut out);
            }
            Input::QueueReset(state) => {
                let before = self.my_memberships();
                self.queues = state;
                self.after_queue_change(before);
                self.ask_caller_names(&mut out);
            }
            Input::Desk(update) => self.on_desk(update),
            Input::EmailDraft(draft) => self.modal = Some(Modal::SendChoice(draft)),
            Input::EmailSent { result, draft } => match result {
                Ok(text) => {
                    self.info(text);
                    if let Some(id) = draft.activity {
                        out.push(Command::Desk(DeskRequest::MarkDone(id)));
                    }
                }
                Err(error) => {
                    // Nothing typed is lost: the draft waits in Next Activities.
                    self.alert(format!(
                        "Email not sent: {error}. Kept in Next Activities: E on it to try again"
                    ));
                    let keep = self.send_later(draft);
                    out.push(keep);
                }
            },
            Input::Report(event) => {
                self.events.push(event);
                self.stats_stale = true;
            }
            Input::Voicemail(waiting) => {
                changed = self.voicemail != waiting;
                self.voicemail = waiting;
            }
            Input::Tick { epoch_ms } => changed = self.on_tick(epoch_ms, &mut out),
            Input::Resize { width, height } => self.size = (width, height),
        }
        self.clamp_selection();
        self.dirty |= changed;
        out
    }

    // -- facts and targets ----------------------------------------------------------------

    /// What the keymap's conditions look at.
    pub fn facts(&self) -> Facts {
        let live = |c: &&CallRow| c.state != CallState::Ending;
        Facts {
            sip: self.config.mode == Mode::Agent,
            incoming: self.calls.iter().any(|c| c.state == CallState::Incoming),
            call: self.calls.iter().any(|c| live(&c)),
            answered: self.calls.iter().any(CallRow::is_answered),
            consulting: self.calls.iter().any(|c| c.consultation_of.is_some()),
            can_connect: !self.connect_options().is_empty(),
            can_disconnect: !self.disconnect_options().is_empty(),
            can_pause: self.pause_target().is_some(),
            redial: !self.dial_history.is_empty(),
            queues_focused: self.focus == Pane::Queues,
            events_focused: self.focus == Pane::Events,
            tab: (self.focus == Pane::Tabs).then_some(self.tab),
            tab_row: self.desk.len(self.tab) > 0,
        }
    }

    pub fn selected_call(&self) -> Option<&CallRow> {
        self.calls.get(self.selection.calls)
    }

    /// The ringing incoming call to answer or reject: the selected one if it rings.
    fn incoming_call(&self) -> Option<CallId> {
        self.selected_call()
            .filter(|c| c.state == CallState::Incoming)
            .or_else(|| self.calls.iter().find(|c| c.state == CallState::Incoming))
            .map(|c| c.id)
    }

    /// The answered call an action applies to: the selected one if answered, else the one in
    /// conversation, else any answered call.
    fn answered_call(&self) -> Option<CallId> {
        self.selected_call()
            .filter(|c| c.is_answered())
            .or_else(|| self.calls.iter().find(|c| c.is_answered() && !c.on_hold))
            .or_else(|| self.calls.iter().find(|c| c.is_answered()))
            .map(|c| c.id)
    }

    /// The held call of an attended transfer in progress.
    fn consultation_origin(&self) -> Option<CallId> {
        self.calls.iter().find_map(|c| c.consultation_of)
    }

    /// The call that ringing for us in the popup: the first incoming one.
    pub fn ringing_call(&self) -> Option<&CallRow> {
        self.calls.iter().find(|c| c.state == CallState::Incoming)
    }

    /// This agent in the queue model.
    pub fn me(&self) -> Option<&Agent> {
        self.config
            .agent
            .as_deref()
            .and_then(|name| self.queues.agent(name))
    }

    fn my_memberships(&self) -> Vec<(String, bool)> {
        self.me()
            .map(|agent| {
                agent
                    .memberships
                    .iter()
                    .map(|m| (m.queue.clone(), m.paused.is_some()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Queues, filtered by the search text, by name.
    pub fn visible_queues(&self) -> impl Iterator<Item = &Queue> + '_ {
        let search = self.search.as_deref();
        self.queues
            .queues()
            .filter(move |q| search.is_none_or(|s| contains_folded(&q.name, s)))
    }

    /// Agents in at least one queue, filtered by the search text, by interface.
    pub fn visible_agents(&self) -> impl Iterator<Item = &Agent> + '_ {
        let search = self.search.as_deref();
        self.queues.agents().filter(move |a| {
            !a.memberships.is_empty()
                && search
                    .is_none_or(|s| contains_folded(&a.name, s) || contains_folded(&a.interface, s))
        })
    }

    fn selected_agent(&self) -> Option<&Agent> {
        self.visible_agents().nth(self.selection.agents)
    }

    /// Seconds the agent has been in its current state, when we saw it change.
    pub fn agent_state_age_s(&self, agent: &Agent) -> Option<u64> {
        self.agent_since
            .get(&agent.interface)
            .map(|(_, since)| self.now_s().saturating_sub(*since))
    }

    /// The agent's own queues (from the codes it knows) it is in (`joined`) or not. Without a
    /// queue model for the agent yet, every queue is offered both ways.
    fn own_queue_options(&self, joined: bool) -> Vec<String> {
        let me = self.me();
        self.config
            .queue_codes
            .iter()
            .filter(|c| me.is_none_or(|a| a.membership(&c.queue).is_some() == joined))
            .map(|c| c.queue.clone())
            .collect()
    }

    /// The selected agent, when supervisor actions can reach the PBX.
    fn actionable_agent(&self) -> Option<&Agent> {
        self.selected_agent().filter(|_| self.config.ami_actions)
    }

    /// Queues that can be joined now, by name.
    pub fn connect_options(&self) -> Vec<String> {
        match self.config.mode {
            Mode::Agent => self.own_queue_options(false),
            Mode::Supervisor => {
                let Some(agent) = self.actionable_agent() else {
                    return Vec::new();
                };
                self.queues
                    .queues()
                    .filter(|q| agent.membership(&q.name).is_none())
                    .map(|q| q.name.clone())
                    .collect()
            }
        }
    }

    /// Queues that can be left now, by name.
    pub fn disconnect_options(&self) -> Vec<String> {
        match self.config.mode {
            Mode::Agent => self.own_queue_options(true),
            Mode::Supervisor => {
                let Some(agent) = self.actionable_agent() else {
                    return Vec::new();
                };
                agent
                    .memberships
                    .iter()
                    .filter(|m| m.kind != Some(Membership::Static))
                    .map(|m| m.queue.clone())
                    .collect()
            }
        }
    }

    /// The member a pause applies to: this agent, or the supervisor's selected agent.
    fn pause_target(&self) -> Option<&Agent> {
        if !self.config.ami_actions {
            return None;
        }
        let agent = match self.config.mode {
            Mode::Agent => self.me(),
            Mode::Supervisor => self.selected_agent(),
        };
        agent.filter(|a| !a.memberships.is_empty())
    }

    // -- notices ----------------------------------------------------------------------------

    /// The end of a queue code call. Without a live queue feed this is the only news of the
    /// agent's own membership, so it goes into the model as the PBX would have reported it.
    fn on_code_result(&mut self, queue: &str, code: &str, accepted: bool, reason: &str) {
        let Some(codes) = self.config.queue_codes.iter().find(|c| c.queue == queue) else {
            return;
        };
        let connecting = codes.login_code == code;
        let verb = if connecting {
            "connect to"
        } else {
            "disconnect from"
        };
        if !accepted {
            let reason = if reason.is_empty() {
                "no answer"
            } else {
                reason
            };
            self.alert(format!(
                "Could not {verb} {queue}: the PBX refused {code} ({reason}); check the agent codes with your PBX administrator"
            ));
            return;
        }
        self.info(if connecting {
            format!("Connected to {queue}")
        } else {
            format!("Disconnected from {queue}")
        });
        if self.config.live_queue_feed {
            return;
        }
        let Some(interface) = self.config.agent.clone() else {
            return;
        };
        let member = QueueMemberInfo {
            queue: queue.to_owned(),
            member_name: interface.clone(),
            interface: interface.clone(),
            state_interface: interface,
            membership: Some(Membership::Dynamic),
            status: Some(DeviceState::NotInUse),
            paused: Some(false),
            login_time: Some(self.now_s()),
            ..QueueMemberInfo::default()
        };
        let before = self.my_memberships();
        let event = if connecting {
            QueueAmiEvent::QueueMemberAdded(member)
        } else {
            QueueAmiEvent::QueueMemberRemoved(member)
        };
        self.queues.apply(&event, self.now_s());
        self.after_queue_change(before);
    }

    fn info(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            level: NoticeLevel::Info,
            until_ms: self.now_ms.saturating_add(NOTICE_MS),
        });
    }

    fn alert(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            level: NoticeLevel::Alert,
            until_ms: self.now_ms.saturating_add(ALERT_MS),
        });
    }

    // -- keys -------------------------------------------------------------------------------

    fn on_key(&mut self, key: Key, out: &mut Vec<Command>) {
        if let Some(modal) = self.modal.take() {
            self.modal_key(modal, key, out);
            return;
        }
        let facts = self.facts();
        match self.keymap.resolve(key, &facts) {
            Some(action) => self.perform(action, Some(key), out),
            None => {
                // A bound key that does not apply now says why, instead of doing nothing.
                if let Some(action) = self.keymap.actions_of(key).first() {
                    self.info(format!(
                        "{} ({}): {}",
                        key.label(),
                        action.name(),
                        action.condition().unmet()
                    ));
                }
            }
        }
    }

    /// Carries out an action; `key` is the key that triggered it (DTMF sends its digit).
    pub fn perform(&mut self, action: Action, key: Option<Key>, out: &mut Vec<Command>) {
        let facts = self.facts();
        if !action.condition().holds(&facts) {
            self.info(format!("{}: {}", action.name(), action.condition().unmet()));
            return;
        }
        match action {
            Action::Answer => {
                if let Some(call) = self.incoming_call() {
                    out.push(Command::Sip(ua::Command::Answer { call }));
                }
            }
            Action::Reject => {
                if let Some(call) = self.incoming_call() {
                    out.push(Command::Sip(ua::Command::Reject { call }));
                }
            }
            Action::Hangup => {
                let target = self
                    .selected_call()
                    .filter(|c| c.state != CallState::Ending)
                    .or_else(|| self.calls.iter().find(|c| c.is_answered() && !c.on_hold))
                    .or_else(|| self.calls.iter().find(|c| c.state != CallState::Ending));
                if let Some(call) = target {
                    let id = call.id;
                    out.push(Command::Sip(if call.state == CallState::Incoming {
                        ua::Command::Reject { call: id }
                    } else {
                        ua::Command::Hangup { call: id }
                    }));
                }
            }
            Action::HoldToggle => {
                if let Some(id) = self.answered_call() {
                    let held = self.calls.iter().any(|c| c.id == id && c.on_hold);
                    out.push(Command::Sip(if held {
                        ua::Command::Resume { call: id }
                    } else {
                        ua::Command::Hold { call: id }
                    }));
                }
            }
            Action::MuteToggle => {
                if let Some(id) = self.answered_call() {
                    if let Some(call) = self.calls.iter_mut().find(|c| c.id == id) {
                        call.muted = !call.muted;
                        out.push(Command::Mute {
                            call: id,
                            muted: call.muted,
                        });
                    }
                }
            }
            Action::RecordToggle => {
                if let Some(id) = self.answered_call() {
                    if let Some(call) = self.calls.iter_mut().find(|c| c.id == id) {
                        call.recording = !call.recording;
                        out.push(Command::Record { call: id });
                    }
                }
            }
            Action::BlindTransfer => self.open_call_prompt(PromptPurpose::BlindTransfer),
            Action::Forward => self.open_call_prompt(PromptPurpose::Forward),
            Action::AttendedTransfer => self.open_call_prompt(PromptPurpose::AttendedTransfer),
            Action::AttendedComplete => {
                if let Some(call) = self.consultation_origin() {
                    out.push(Command::Sip(ua::Command::AttendedComplete { call }));
                }
            }
            Action::AttendedAbort => {
                if let Some(call) = self.consultation_origin() {
                    out.push(Command::Sip(ua::Command::AttendedAbort { call }));
                }
            }
            Action::Dtmf => match (key.and_then(|k| k.typed()), self.answered_call()) {
                (Some(digit), Some(call)) => out.push(Command::Sip(ua::Command::Dtmf {
                    call,
                    digits: digit.to_string(),
                })),
                (None, Some(_)) => self.open_call_prompt(PromptPurpose::Dtmf),
                _ => {}
            },
            Action::Dial => self.open_prompt(PromptPurpose::Dial, String::new()),
            Action::Redial => {
                if let Some(target) = self.dial_history.first().cloned() {
                    self.info(format!("Redialling {target}"));
                    out.push(Command::Sip(ua::Command::Dial { target }));
                }
            }
            Action::QueueConnect => self.queue_membership(PickPurpose::Connect, out),
            Action::QueueDisconnect => self.queue_membership(PickPurpose::Disconnect, out),
            Action::PauseToggle => {
                if let Some(agent) = self.pause_target() {
                    let paused = !agent.memberships.iter().all(|m| m.paused.is_some());
                    let interface = agent.interface.clone();
                    let name = agent.name.clone();
                    self.info(if paused {
                        format!("Pausing {name} in every queue…")
                    } else {
                        format!("Unpausing {name}…")
                    });
                    out.push(Command::QueuePause {
                        interface,
                        queue: None,
                        paused,
                    });
                }
            }
            Action::Expand => {
                let name = self
                    .visible_queues()
                    .nth(self.selection.queues)
                    .map(|q| q.name.clone());
                if let Some(name) = name {
                    if !self.expanded.remove(&name) {
                        self.expanded.insert(name);
                    }
                }
            }
            Action::StreamPause => {
                if self.events.is_frozen() {
                    self.events.follow();
                } else {
                    self.events.freeze();
                }
            }
            Action::FilterKind => {
                let mut kinds: Vec<ReportKind> = self.events.all().map(|e| e.kind).collect();
                kinds.sort_unstable();
                kinds.dedup();
                self.events.kind = next_in_cycle(&kinds, self.events.kind.as_ref()).copied();
                self.events.scroll = 0;
                self.info(match self.events.kind {
                    Some(kind) => format!("Events: only {}", kind.name()),
                    None => "Events: every kind".to_owned(),
                });
            }
            Action::FilterQueue => {
                let mut names: Vec<String> = self.queues.queues().map(|q| q.name.clone()).collect();
                names.extend(self.events.all().map(|e| e.queue.clone()));
                names.sort_unstable();
                names.dedup();
                self.events.queue = next_in_cycle(&names, self.events.queue.as_ref()).cloned();
                self.events.scroll = 0;
                self.info(match &self.events.queue {
                    Some(queue) => format!("Events: only queue {queue}"),
                    None => "Events: every queue".to_owned(),
                });
            }
            Action::Search if self.focus == Pane::Tabs && self.tab == Tab::Contacts => {
                let current = self.desk.query.clone();
                self.open_prompt(PromptPurpose::ContactSearch, current);
            }
            Action::Search => {
                let current = self.search.clone().unwrap_or_default();
                self.open_prompt(PromptPurpose::Search, current);
            }
            Action::CallSelected => self.call_selected(out),
            Action::FollowUpEmail => {
                if let Some(request) = self.email_request() {
                    self.info(format!("Composing a follow-up to {}…", request.name));
                    out.push(Command::ComposeEmail(request));
                }
            }
            Action::MarkDone => {
                if let Some(item) = self.desk.selected_activity() {
                    out.push(Command::Desk(DeskRequest::MarkDone(item.activity.id)));
                }
            }
            Action::CancelActivity => {
                if let Some(item) = self.desk.selected_activity() {
                    out.push(Command::Desk(DeskRequest::Cancel(item.activity.id)));
                }
            }
            Action::EditActivity => {
                if let Some(item) = self.desk.selected_activity() {
                    self.modal = Some(Modal::Form(ActivityForm::edit(&item.activity)));
                }
            }
            Action::Schedule => self.schedule_for_selected(),
            Action::ContactCard => {
                if let Some(contact) = self.desk.selected_contact() {
                    out.push(Command::Desk(DeskRequest::Card(contact.id)));
                }
            }
            Action::FilterMissed => {
                let missed_only = !self.desk.missed_only;
                self.info(if missed_only {
                    "Recent: missed calls only"
                } else {
                    "Recent: every call"
                });
                out.push(Command::Desk(DeskRequest::Recent { missed_only }));
            }
            Action::CommandPalette => {
                self.modal = Some(Modal::Palette {
                    input: String::new(),
                    selected: 0,
                })
            }
            Action::Help => self.modal = Some(Modal::Help { scroll: 0 }),
            Action::NextPane => {
                self.focus = Pane::ALL[(self.focus.index() + 1) % Pane::ALL.len()];
            }
            Action::PrevPane => {
                self.focus =
                    Pane::ALL[(self.focus.index() + Pane::ALL.len() - 1) % Pane::ALL.len()];
            }
            Action::Up => self.move_selection(-1),
            Action::Down => self.move_selection(1),
            Action::PageUp => self.move_selection(-(PAGE_ROWS as i64)),
            Action::PageDown => self.move_selection(PAGE_ROWS as i64),
            Action::Top => self.move_selection(i64::MIN / 2),
            Action::Bottom => {
                if self.focus == Pane::Events {
                    self.events.follow();
                } else {
                    self.move_selection(i64::MAX / 2);
                }
            }
            Action::NextTab => {
                let i = Tab::ALL.iter().position(|t| *t == self.tab).unwrap_or(0);
                self.tab = Tab::ALL[(i + 1) % Tab::ALL.len()];
            }
            Action::PrevTab => {
                let i = Tab::ALL.iter().position(|t| *t == self.tab).unwrap_or(0);
                self.tab = Tab::ALL[(i + Tab::ALL.len() - 1) % Tab::ALL.len()];
            }
            Action::Quit => {
                if self.calls.iter().any(|c| c.state != CallState::Ending) {
                    self.modal = Some(Modal::ConfirmQuit);
                } else {
                    self.quitting = true;
                    out.push(Command::Quit);
                }
            }
        }
    }

    fn open_prompt(&mut self, purpose: PromptPurpose, input: String) {
        self.modal = Some(Modal::Prompt(Prompt {
            purpose,
            input,
            history_pos: None,
            error: None,
            suggestions: Vec::new(),
            pick: None,
        }));
    }

    fn open_call_prompt(&mut self, purpose: fn(CallId) -> PromptPurpose) {
        if let Some(call) = self.answered_call() {
            self.open_prompt(purpose(call), String::new());
        }
    }

    fn queue_membership(&mut self, purpose: PickPurpose, out: &mut Vec<Command>) {
        let mut options = match purpose {
            PickPurpose::Connect => self.connect_options(),
            PickPurpose::Disconnect => self.disconnect_options(),
        };
        options.sort_unstable();
        match options.as_slice() {
            [] => {}
            [only] => {
                let queue = only.clone();
                self.apply_membership(&purpose, &queue, out);
            }
            _ => {
                let who = match self.config.mode {
                    Mode::Agent => String::new(),
                    Mode::Supervisor => self
                        .selected_agent()
                        .map(|a| format!(" {}", a.name))
                        .unwrap_or_default(),
                };
                let title = match purpose {
                    PickPurpose::Connect => format!("Connect{who} to which queue?"),
                    PickPurpose::Disconnect => format!("Disconnect{who} from which queue?"),
                };
                self.modal = Some(Modal::Pick(Picker {
                    purpose,
                    title,
                    options,
                    selected: 0,
                }));
            }
        }
    }

    fn apply_membership(&mut self, purpose: &PickPurpose, queue: &str, out: &mut Vec<Command>) {
        match self.config.mode {
            Mode::Agent => {
                let Some(codes) = self.config.queue_codes.iter().find(|c| c.queue == queue) else {
                    return;
                };
                let (code, verb) = match purpose {
                    PickPurpose::Connect => (codes.login_code.clone(), "Connecting to"),
                    PickPurpose::Disconnect => (codes.logout_code.clone(), "Disconnecting from"),
                };
                self.info(format!("{verb} {queue} (dialling {code})…"));
                out.push(Command::DialCode {
                    queue: queue.to_owned(),
                    code,
                });
            }
            Mode::Supervisor => {
                let Some(agent) = self.selected_agent() else {
                    return;
                };
                let interface = agent.interface.clone();
                let name = agent.name.clone();
                match purpose {
                    PickPurpose::Connect => {
                        self.info(format!("Adding {name} to {queue}…"));
                        out.push(Command::QueueAdd {
                            queue: queue.to_owned(),
                            interface,
                        });
                    }
                    PickPurpose::Disconnect => {
                        self.info(format!("Removing {name} from {queue}…"));
                        out.push(Command::QueueRemove {
                            queue: queue.to_owned(),
                            interface,
                        });
                    }
                }
            }
        }
    }

    fn modal_key(&mut self, modal: Modal, key: Key, out: &mut Vec<Command>) {
        match modal {
            Modal::Prompt(prompt) => self.prompt_key(prompt, key, out),
            Modal::Pick(mut picker) => match key.code {
                KeyCode::Esc => {}
                KeyCode::Up => {
                    picker.selected = picker.selected.saturating_sub(1);
                    self.modal = Some(Modal::Pick(picker));
                }
                KeyCode::Down => {
                    picker.selected =
                        (picker.selected + 1).min(picker.options.len().saturating_sub(1));
                    self.modal = Some(Modal::Pick(picker));
                }
                KeyCode::Enter => {
                    if let Some(queue) = picker.options.get(picker.selected).cloned() {
                        self.apply_membership(&picker.purpose, &queue, out);
                    }
                }
                KeyCode::Char(c @ '1'..='9') => {
                    let index = usize::from(c as u8 - b'1');
                    match picker.options.get(index).cloned() {
                        Some(queue) => self.apply_membership(&picker.purpose, &queue, out),
                        None => self.modal = Some(Modal::Pick(picker)),
                    }
                }
                _ => self.modal = Some(Modal::Pick(picker)),
            },
            Modal::Help { scroll } => {
                let keep = match key.code {
                    KeyCode::Up => Some(scroll.saturating_sub(1)),
                    KeyCode::Down => Some(scroll.saturating_add(1)),
                    KeyCode::PageUp => Some(scroll.saturating_sub(PAGE_ROWS)),
                    KeyCode::PageDown => Some(scroll.saturating_add(PAGE_ROWS)),
                    _ => None,
                };
                if let Some(scroll) = keep {
                    self.modal = Some(Modal::Help { scroll });
                }
            }
            Modal::Palette {
                mut input,
                mut selected,
            } => {
                let matches = palette_matches(&input);
                match key.code {
                    KeyCode::Esc => return,
                    KeyCode::Enter => {
                        if let Some(action) = matches.get(selected).copied() {
                            self.perform(action, None, out);
                        }
                        return;
                    }
                    KeyCode::Up => selected = selected.saturating_sub(1),
                    KeyCode::Down => selected = (selected + 1).min(matches.len().saturating_sub(1)),
                    KeyCode::Backspace => {
                        input.pop();
                        selected = 0;
                    }
                    _ => {
                        if let Some(c) = key.typed().filter(|_| input.chars().count() < 40) {
                            input.push(c);
                            selected = 0;
                        }
                    }
                }
                self.modal = Some(Modal::Palette { input, selected });
            }
            Modal::Form(form) => match form.key(key, self.today()) {
                FormOutcome::Editing(form) => self.modal = Some(Modal::Form(form)),
                FormOutcome::Cancelled => {}
                FormOutcome::Save(FormSave::Edit { id, edit }) => {
                    out.push(Command::Desk(DeskRequest::Edit { id, edit }));
                }
                FormOutcome::Save(FormSave::New(activity)) => {
                    out.push(Command::Desk(DeskRequest::Schedule(activity)));
                }
            },
            Modal::Card {
                contact,
                activities,
            } => match key.code {
                KeyCode::Enter | KeyCode::Char('c') => {
                    if let Some(number) = contact.primary_number().map(str::to_owned) {
                        self.dial_contact(&contact.name, &number, None, out);
                    } else {
                        self.alert(format!("{} has no phone number", contact.name));
                    }
                }
                KeyCode::Char('E') => out.push(Command::ComposeEmail(EmailRequest {
                    contact: Some(contact.id),
                    name: contact.name.clone(),
                    number: contact.primary_number().map(str::to_owned),
                    ..EmailRequest::default()
                })),
                KeyCode::Char('s') => {
                    let today = self.today();
                    self.modal = Some(Modal::Form(ActivityForm::schedule(
                        Some(contact.id),
                        &contact.name,
                        today,
                    )));
                }
                KeyCode::Esc | KeyCode::Char('q') => {}
                _ => {
                    self.modal = Some(Modal::Card {
                        contact,
                        activities,
                    })
                }
            },
            Modal::ConfirmDone { activity, summary } => match key.code {
                KeyCode::Char('y' | 'Y') | KeyCode::Enter => {
                    out.push(Command::Desk(DeskRequest::MarkDone(activity)));
                }
                KeyCode::Char('n' | 'N') | KeyCode::Esc => {
                    self.info(format!("Still planned: {summary}"));
                }
                _ => self.modal = Some(Modal::ConfirmDone { activity, summary }),
            },
            Modal::SendChoice(draft) => match key.code {
                KeyCode::Char('s') | KeyCode::Enter if draft.problem.is_none() => {
                    self.info(format!("Sending to {}…", draft.to));
                    out.push(Command::SendEmail {
                        draft: draft.text,
                        contact: draft.contact,
                        activity: draft.activity,
                    });
                }
                KeyCode::Char('l') => {
                    let command = self.send_later(draft);
                    out.push(command);
                }
                KeyCode::Char('e') => out.push(Command::ComposeEmail(EmailRequest {
                    contact: draft.contact,
                    name: draft.to.clone(),
                    activity: draft.activity,
                    draft: Some(draft.text),
                    ..EmailRequest::default()
                })),
                KeyCode::Esc | KeyCode::Char('d') => self.info("Draft discarded"),
                _ => self.modal = Some(Modal::SendChoice(draft)),
            },
            Modal::ConfirmQuit => match key.code {
                KeyCode::Char('y' | 'Y') | KeyCode::Enter => {
                    self.quitting = true;
                    out.push(Command::Quit);
                }
                KeyCode::Char('n' | 'N') | KeyCode::Esc => {}
                _ => self.modal = Some(Modal::ConfirmQuit),
            },
        }
    }

    fn prompt_key(&mut self, mut prompt: Prompt, key: Key, out: &mut Vec<Command>) {
        let before = prompt.input.clone();
        match key.code {
            KeyCode::Esc => {
                match prompt.purpose {
                    PromptPurpose::Search => self.search = None,
                    PromptPurpose::ContactSearch if !self.desk.query.is_empty() => {
                        self.desk.query.clear();
                        out.push(Command::Desk(DeskRequest::SearchContacts {
                            query: String::new(),
                            purpose: SearchFor::Tab,
                        }));
                    }
                    _ => {}
                }
                return;
            }
            // ↓ from the text goes into the contact suggestions, ↑ back out of them.
            KeyCode::Down if !prompt.suggestions.is_empty() && prompt.history_pos.is_none() => {
                let last = prompt.suggestions.len() - 1;
                prompt.pick = Some(prompt.pick.map_or(0, |i| (i + 1).min(last)));
            }
            KeyCode::Up if prompt.pick.is_some() => {
                prompt.pick = prompt.pick.and_then(|i| i.checked_sub(1));
            }
            KeyCode::Tab if !prompt.suggestions.is_empty() => {
                let chosen = prompt.pick.unwrap_or(0);
                if let Some((_, number)) = prompt.suggestions.get(chosen) {
                    prompt.input = number.clone();
                }
                prompt.suggestions.clear();
                prompt.pick = None;
                self.modal = Some(Modal::Prompt(prompt));
                return;
            }
            KeyCode::Enter => {
                if self.submit(&mut prompt, out) {
                    return;
                }
            }
            KeyCode::Backspace => {
                prompt.input.pop();
                prompt.error = None;
            }
            KeyCode::Char('u') if key.ctrl => {
                prompt.input.clear();
                prompt.error = None;
            }
            KeyCode::Up | KeyCode::Down if prompt.purpose.uses_history() => {
                let len = self.dial_history.len();
                let next = match (key.code, prompt.history_pos) {
                    (KeyCode::Up, None) if len > 0 => Some(0),
                    (KeyCode::Up, Some(i)) => Some((i + 1).min(len.saturating_sub(1))),
                    (KeyCode::Down, Some(0)) => None,
                    (KeyCode::Down, Some(i)) => Some(i - 1),
                    (_, pos) => pos,
                };
                prompt.history_pos = next;
                prompt.input = next
                    .and_then(|i| self.dial_history.get(i).cloned())
                    .unwrap_or_default();
                prompt.error = None;
            }
            KeyCode::Tab if prompt.purpose.uses_history() => {
                if let Some(found) = self
                    .dial_history
                    .iter()
                    .find(|h| h.starts_with(prompt.input.as_str()) && **h != prompt.input)
                {
                    prompt.input = found.clone();
                }
            }
            _ => {
                if let Some(c) = key.typed() {
                    if prompt.input.chars().count() < PROMPT_MAX_CHARS && !c.is_control() {
                        prompt.input.push(c);
                        prompt.error = None;
                    }
                }
            }
        }
        if prompt.purpose == PromptPurpose::Search {
            let text = prompt.input.trim().to_ascii_lowercase();
            self.search = (!text.is_empty()).then_some(text);
        }
        if prompt.input != before {
            self.prompt_text_changed(&mut prompt, out);
        }
        self.modal = Some(Modal::Prompt(prompt));
    }

    /// Search as you type: the Contacts tab's list, or contacts to complete a number with.
    fn prompt_text_changed(&mut self, prompt: &mut Prompt, out: &mut Vec<Command>) {
        if !self.desk.available {
            return;
        }
        let query = prompt.input.trim().to_owned();
        if prompt.purpose == PromptPurpose::ContactSearch {
            self.desk.query = query.clone();
            out.push(Command::Desk(DeskRequest::SearchContacts {
                query,
                purpose: SearchFor::Tab,
            }));
            return;
        }
        if !prompt.purpose.completes_contacts() {
            return;
        }
        prompt.pick = None;
        let digits = query.chars().filter(char::is_ascii_digit).count();
        let worth_it = !query.starts_with("sip") && !query.starts_with('*') && {
            let has_letter = query.chars().any(char::is_alphabetic);
            has_letter || digits >= 3
        };
        if worth_it {
            out.push(Command::Desk(DeskRequest::SearchContacts {
                query,
                purpose: SearchFor::Dial,
            }));
        } else {
            prompt.suggestions.clear();
        }
    }

    /// Acts on a prompt's text; false keeps the prompt open (with its error).
    fn submit(&mut self, prompt: &mut Prompt, out: &mut Vec<Command>) -> bool {
        let region = self.config.default_region.clone();
        let region = region.as_deref();
        let max = self.config.max_extension_digits;
        let picked = prompt
            .pick
            .and_then(|i| prompt.suggestions.get(i))
            .map(|(_, number)| number.clone());
        let input = picked.unwrap_or_else(|| prompt.input.trim().to_owned());
        let result = match prompt.purpose {
            PromptPurpose::Search | PromptPurpose::ContactSearch => return true,
            PromptPurpose::Dial => dial_target(&input, region, max).map(|target| {
                self.info(format!("Dialling {target}…"));
                self.remember(&target);
                ua::Command::Dial { target }
            }),
            PromptPurpose::BlindTransfer(call) => dial_target(&input, region, max).map(|target| {
                self.info(format!("Transferring to {target}…"));
                self.remember(&target);
                ua::Command::Transfer { call, target }
            }),
            PromptPurpose::Forward(call) => normalize_number(&input, region).map(|target| {
                self.info(format!("Forwarding to {target}…"));
                self.remember(&target);
                ua::Command::Transfer { call, target }
            }),
            PromptPurpose::AttendedTransfer(call) => {
                dial_target(&input, region, max).map(|target| {
                    self.info(format!("Consulting {target}; the caller is on hold"));
                    self.remember(&target);
                    self.pending_consultation = Some(call);
                    ua::Command::AttendedStart { call, target }
                })
            }
            PromptPurpose::Dtmf(call) => {
                let digits: String = input.chars().filter(|c| !c.is_whitespace()).collect();
                if !digits.is_empty()
                    && digits
                        .chars()
                        .all(|c| c.is_ascii_digit() || "*#ABCDabcd".contains(c))
                {
                    Ok(ua::Command::Dtmf {
                        call,
                        digits: digits.to_ascii_uppercase(),
                    })
                } else {
                    Err("DTMF takes the digits 0-9, *, # and A-D".to_owned())
                }
            }
        };
        match result {
            Ok(command) => {
                out.push(Command::Sip(command));
                true
            }
            Err(message) => {
                prompt.error = Some(message);
                false
            }
        }
    }

    // -- the tabs -----------------------------------------------------------------------------

    /// The local date now (the store's "today" until the first tick).
    pub fn today(&self) -> CivilDate {
        let now = i64::try_from(self.now_s()).unwrap_or(0);
        match CivilDate::from_epoch_seconds(now, i64::from(self.config.utc_offset_s)) {
            Some(today) if now > 0 => today,
            _ => self.desk.today.unwrap_or(CivilDate::UNIX_EPOCH),
        }
    }

    fn on_desk(&mut self, update: DeskUpdate) {
        self.desk.apply(&update);
        match update {
            DeskUpdate::Contacts {
                query,
                purpose: SearchFor::Dial,
                hits,
            } => {
                if let Some(Modal::Prompt(prompt)) = &mut self.modal {
                    if prompt.purpose.completes_contacts() && prompt.input.trim() == query {
                        prompt.suggestions = hits
                            .iter()
                            .filter_map(|c| {
                                c.primary_number().map(|n| (c.name.clone(), n.to_owned()))
                            })
                            .collect();
                        prompt.pick = None;
                    }
                }
            }
            DeskUpdate::Card {
                contact,
                activities,
            } => {
                if self.modal.is_none() {
                    self.modal = Some(Modal::Card {
                        contact,
                        activities,
                    });
                }
            }
            DeskUpdate::Done(text) => self.info(text),
            DeskUpdate::Failed(text) => self.alert(text),
            DeskUpdate::Recent { .. }
            | DeskUpdate::Activities { .. }
            | DeskUpdate::Contacts { .. }
            | DeskUpdate::Names(_) => {}
        }
    }

    /// Asks the store for the names of waiting callers the PBX gave only a number for.
    fn ask_caller_names(&mut self, out: &mut Vec<Command>) {
        if !self.desk.available {
            return;
        }
        let numbers: Vec<String> = self
            .queues
            .queues()
            .flat_map(|q| q.callers.iter())
            .filter(|c| c.caller_id_name.is_empty())
            .map(|c| c.caller_id_num.clone())
            .collect();
        let ask = self
            .desk
            .unknown_numbers(numbers.iter().map(String::as_str));
        if !ask.is_empty() {
            out.push(Command::Desk(DeskRequest::LookupNames(ask)));
        }
    }

    /// Enter on a tab row: call the caller back, the activity's contact, or the contact.
    fn call_selected(&mut self, out: &mut Vec<Command>) {
        let (name, number, activity) = match self.tab {
            Tab::Recent => match self.desk.selected_call() {
                Some(call) => (
                    super::desk::call_party(call).to_owned(),
                    Some(call.remote_number.clone()),
                    None,
                ),
                None => return,
            },
            Tab::NextActivities => match self.desk.selected_activity() {
                Some(item) => (
                    item.contact
                        .as_ref()
                        .map_or_else(|| item.activity.summary.clone(), |c| c.name.clone()),
                    item.number().map(str::to_owned),
                    Some((item.activity.id, item.activity.summary.clone())),
                ),
                None => return,
            },
            Tab::Contacts => match self.desk.selected_contact() {
                Some(contact) => (
                    contact.name.clone(),
                    contact.primary_number().map(str::to_owned),
                    None,
                ),
                None => return,
            },
        };
        match number {
            Some(number) => self.dial_contact(&name, &number, activity, out),
            None => self.alert(format!(
                "{name} has no phone number: add one to the contact (ringside contacts import)"
            )),
        }
    }

    fn dial_contact(
        &mut self,
        name: &str,
        number: &str,
        activity: Option<(ActivityId, String)>,
        out: &mut Vec<Command>,
    ) {
        if self.config.mode != Mode::Agent {
            self.alert("Calling needs a SIP account (not in supervisor mode)");
            return;
        }
        let region = self.config.default_region.clone();
        let target = match dial_target(number, region.as_deref(), self.config.max_extension_digits)
        {
            Ok(target) => target,
            Err(message) => {
                self.alert(format!("Cannot call {name}: {message}"));
                return;
            }
        };
        self.info(if name == target {
            format!("Dialling {target}…")
        } else {
            format!("Dialling {name} ({target})…")
        });
        self.remember(&target);
        if let Some((id, summary)) = activity {
            out.push(Command::Desk(DeskRequest::CallFromActivity {
                target: target.clone(),
                activity: id,
            }));
            self.pending_activity_call = Some((target.clone(), id, summary));
        }
        out.push(Command::Sip(ua::Command::Dial { target }));
    }

    /// `E` on a tab row: a follow-up to the row's contact, about its call if it is one.
    fn email_request(&self) -> Option<EmailRequest> {
        match self.tab {
            Tab::Recent => self.desk.selected_call().map(|call| EmailRequest {
                contact: call.contact_id,
                name: super::desk::call_party(call).to_owned(),
                number: Some(call.remote_number.clone()),
                call: Some(call.id),
                ..EmailRequest::default()
            }),
            Tab::NextActivities => self.desk.selected_activity().map(|item| {
                let activity = &item.activity;
                // An email planned for later carries its draft in the note.
                let draft = (activity.kind == ActivityKind::Email
                    && activity.note.starts_with("To:"))
                .then(|| activity.note.clone());
                EmailRequest {
                    contact: activity.contact_id,
                    name: item
                        .contact
                        .as_ref()
                        .map_or_else(|| activity.summary.clone(), |c| c.name.clone()),
                    number: item.number().map(str::to_owned),
                    activity: draft.is_some().then_some(activity.id),
                    draft,
                    ..EmailRequest::default()
                }
            }),
            Tab::Contacts => self.desk.selected_contact().map(|contact| EmailRequest {
                contact: Some(contact.id),
                name: contact.name.clone(),
                number: contact.primary_number().map(str::to_owned),
                ..EmailRequest::default()
            }),
        }
    }

    /// "Send later": the draft becomes an email activity due today, its note the draft.
    fn send_later(&mut self, draft: EmailDraft) -> Command {
        let summary = match (draft.to.is_empty(), draft.subject.is_empty()) {
            (false, false) => format!("Email {}: {}", draft.to, draft.subject),
            (false, true) => format!("Email {}", draft.to),
            _ => "Send a follow-up email".to_owned(),
        };
        Command::Desk(match draft.activity {
            // Already an activity: keep it, with the edited draft.
            Some(id) => DeskRequest::Edit {
                id,
                edit: crate::store::ActivityEdit {
                    summary,
                    due: self.today(),
                    note: draft.text,
                },
            },
            None => DeskRequest::Schedule(NewActivity {
                kind: ActivityKind::Email,
                summary,
                due: self.today(),
                note: draft.text,
                linked_record: String::new(),
                assignee: String::new(),
                contact_id: draft.contact,
            }),
        })
    }

    /// `s`: the schedule form for the selected row's contact.
    fn schedule_for_selected(&mut self) {
        let (contact, who) = match self.tab {
            Tab::Recent => match self.desk.selected_call() {
                Some(call) => (call.contact_id, super::desk::call_party(call).to_owned()),
                None => return,
            },
            Tab::NextActivities => match self.desk.selected_activity() {
                Some(item) => (
                    item.activity.contact_id,
                    item.contact
                        .as_ref()
                        .map(|c| c.name.clone())
                        .unwrap_or_default(),
                ),
                None => return,
            },
            Tab::Contacts => match self.desk.selected_contact() {
                Some(c) => (Some(c.id), c.name.clone()),
                None => return,
            },
        };
        let today = self.today();
        self.modal = Some(Modal::Form(ActivityForm::schedule(contact, &who, today)));
    }

    fn remember(&mut self, target: &str) {
        self.dial_history.retain(|h| h != target);
        self.dial_history.insert(0, target.to_owned());
        self.dial_history.truncate(HISTORY_CAPACITY);
    }

    fn move_selection(&mut self, delta: i64) {
        let step = |index: usize, len: usize| -> usize {
            let moved = i64::try_from(index).unwrap_or(0).saturating_add(delta);
            usize::try_from(moved.max(0))
                .unwrap_or(0)
                .min(len.saturating_sub(1))
        };
        match self.focus {
            Pane::Calls => self.selection.calls = step(self.selection.calls, self.calls.len()),
            Pane::Queues => {
                let len = self.visible_queues().count();
                self.selection.queues = step(self.selection.queues, len);
            }
            Pane::Agents => {
                let len = self.visible_agents().count();
                self.selection.agents = step(self.selection.agents, len);
            }
            Pane::Tabs => self.desk.move_selection(self.tab, delta),
            Pane::Events => {
                // Up goes back in time: freeze so new events do not move the rows away.
                let back = self.events.scroll as i64 - delta;
                if back > 0 {
                    self.events.freeze();
                }
                let len = self.events.len();
                self.events.scroll = usize::try_from(back.max(0))
                    .unwrap_or(0)
                    .min(len.saturating_sub(1));
            }
        }
    }

    fn clamp_selection(&mut self) {
        self.selection.calls = self.selection.calls.min(self.calls.len().saturating_sub(1));
    }

    fn on_mouse(&mut self, mouse: Mouse) {
        let Some((pane, row)) = super::view::hit(self, mouse.column, mouse.row) else {
            return;
        };
        if self.modal.is_some() {
            return;
        }
        self.focus = pane;
        match mouse.kind {
            MouseKind::ScrollUp => self.move_selection(-1),
            MouseKind::ScrollDown => self.move_selection(1),
            MouseKind::Click => {
                if let Some(row) = row {
                    match pane {
                        Pane::Calls => {
                            self.selection.calls = row.min(self.calls.len().saturating_sub(1))
                        }
                        Pane::Queues => {
                            let len = self.visible_queues().count();
                            self.selection.queues = row.min(len.saturating_sub(1));
                        }
                        Pane::Agents => {
                            let len = self.visible_agents().count();
                            self.selection.agents = row.min(len.saturating_sub(1));
                        }
                        Pane::Tabs => self.desk.select(self.tab, row),
                        Pane::Events => {}
                    }
                }
            }
        }
    }

    // -- SIP --------------------------------------------------------------------------------

    fn call_mut(&mut self, id: CallId) -> Option<&mut CallRow> {
        self.calls.iter_mut().find(|c| c.id == id)
    }

    fn on_ua(&mut self, event: UaEvent, out: &mut Vec<Command>) {
        let now = self.now_ms;
        match event {
            UaEvent::Registered { aor, .. } => {
                if !matches!(&self.registration, Registration::Registered { aor: a } if *a == aor) {
                    self.info(format!("Registered as {}", user_part(&aor)));
                }
                self.registration = Registration::Registered { aor };
            }
            UaEvent::RegistrationFailed {
                code,
                message,
                retry_in,
            } => {
                let text = match code {
                    Some(code) => format!("{code} {message}"),
                    None => message,
                };
                let retry_in_s = retry_in.map(|d| d.as_secs());
                self.alert(match retry_in_s {
                    Some(s) => format!("Registration failed: {text} (retrying in {s} s)"),
                    None => format!("Registration failed: {text}"),
                });
                self.registration = Registration::Failed {
                    message: text,
                    retry_in_s,
                };
            }
            UaEvent::Unregistered => self.registration = Registration::Unregistered,
            UaEvent::IncomingCall { call, from, name } => {
                let mut row = CallRow::new(
                    call,
                    CallDirection::Incoming,
                    CallState::Incoming,
                    &from,
                    now,
                );
                row.remote_name = name.filter(|n| !n.is_empty());
                row.queue = self.queue_of_incoming(row.remote_number());
                self.calls.push(row);
                self.calls.sort_by_key(|c| c.id);
                self.select_call(call);
                out.push(Command::Bell);
            }
            UaEvent::Dialing { call, to } => {
                let mut row =
                    CallRow::new(call, CallDirection::Outgoing, CallState::Dialing, &to, now);
                row.consultation_of = self.pending_consultation.take();
                if let Some((target, id, summary)) = self.pending_activity_call.take() {
                    if user_part(&to) == target || to == target {
                        row.activity = Some((id, summary));
                    } else {
                        self.pending_activity_call = Some((target, id, summary));
                    }
                }
                self.calls.push(row);
                self.calls.sort_by_key(|c| c.id);
                self.select_call(call);
            }
            UaEvent::Ringing { call, early_media } => {
                if let Some(row) = self.call_mut(call) {
                    row.state = CallState::Ringing;
                    row.early_media = early_media;
                }
            }
            UaEvent::Answered { call, codec } => {
                if let Some(row) = self.call_mut(call) {
                    row.state = CallState::Active;
                    row.codec = codec.or(row.codec.take());
                    row.answered_ms = Some(now);
                }
            }
            UaEvent::CallEnded {
                call,
                code,
                reason,
                by,
            } => {
                let Some(index) = self.calls.iter().position(|c| c.id == call) else {
                    return;
                };
                let row = self.calls.remove(index);
                if row.consultation_of.is_none() && self.pending_consultation == Some(call) {
                    self.pending_consultation = None;
                }
                if self.selection.calls > index {
                    self.selection.calls -= 1;
                }
                let who = row.who().to_owned();
                let reason = match code {
                    Some(code) if !reason.is_empty() => format!("{code} {reason}"),
                    Some(code) => code.to_string(),
                    None => reason,
                };
                let text = match (by, row.answered_ms) {
                    (EndedBy::Remote, Some(_)) => format!("{who} hung up"),
                    (EndedBy::Local, Some(_)) => format!("Call with {who} ended"),
                    (EndedBy::Network, _) => format!("Call with {who} lost: {reason}"),
                    (_, None) if reason.is_empty() => format!("Call with {who} not answered"),
                    (_, None) => format!("Call with {who} not answered: {reason}"),
                };
                if by == EndedBy::Network {
                    self.alert(text);
                } else {
                    self.info(text);
                }
                if let Some((activity, summary)) = row.activity {
                    if self.modal.is_none() {
                        self.modal = Some(Modal::ConfirmDone { activity, summary });
                    }
                }
            }
            UaEvent::Held { call } => {
                if let Some(row) = self.call_mut(call) {
                    row.on_hold = true;
                }
            }
            UaEvent::Resumed { call } => {
                if let Some(row) = self.call_mut(call) {
                    row.on_hold = false;
                }
            }
            UaEvent::RemoteHold { call } => {
                if let Some(row) = self.call_mut(call) {
                    row.remote_hold = true;
                }
            }
            UaEvent::RemoteResume { call } => {
                if let Some(row) = self.call_mut(call) {
                    row.remote_hold = false;
                }
            }
            UaEvent::HoldFailed { call, code, reason } => {
                let code = code.map(|c| format!("{c} ")).unwrap_or_default();
                self.alert(format!(
                    "Hold or resume failed on call {call}: {code}{reason}"
                ));
            }
            UaEvent::RemotePartyChanged { call, name, uri } => {
                if let Some(row) = self.call_mut(call) {
                    row.remote_uri = uri;
                    row.remote_name = name.filter(|n| !n.is_empty());
                }
            }
            UaEvent::TransferProgress { call, code, reason } => {
                if let Some(row) = self.call_mut(call) {
                    row.transferring = true;
                }
                self.info(format!("Transfer of call {call}: {code} {reason}"));
            }
            UaEvent::TransferDone {
                call,
                success,
                reason,
            } => {
                if let Some(row) = self.call_mut(call) {
                    row.transferring = false;
                }
                if success {
                    self.info(format!("Call {call} transferred"));
                } else {
                    self.alert(format!("Transfer of call {call} failed: {reason}"));
                }
            }
            UaEvent::TransferRequested { target, .. } => {
                self.info(format!("The far end transferred you to {target}"));
            }
            UaEvent::DtmfReceived { call, digit, .. } => {
                self.info(format!("Call {call}: the caller pressed {digit}"));
            }
            UaEvent::Media { call, codec, .. } => {
                if let (Some(row), Some(codec)) = (self.call_mut(call), codec) {
                    row.codec = Some(codec);
                }
            }
            UaEvent::SendDtmfRtp { .. } => {}
            UaEvent::Notice { message } => self.info(message),
            UaEvent::Voicemail { new, .. } => {
                self.voicemail = Some(new);
                self.dirty = true;
            }
        }
    }

    fn select_call(&mut self, id: CallId) {
        if let Some(index) = self.calls.iter().position(|c| c.id == id) {
            self.selection.calls = index;
        }
    }

    /// The queue a call ringing here came through: the caller this agent rings for, else a
    /// waiting caller with the same number.
    fn queue_of_incoming(&self, number: &str) -> Option<String> {
        if let Some(ringing_for) = self.me().and_then(|a| a.ringing_for.as_deref()) {
            if let Some(queue) = self
                .queues
                .queues()
                .find(|q| q.callers.iter().any(|c| c.call_id == ringing_for))
            {
                return Some(queue.name.clone());
            }
        }
        self.queues
            .queues()
            .find(|q| {
                q.callers
                    .iter()
                    .any(|c| !number.is_empty() && c.caller_id_num == number)
            })
            .map(|q| q.name.clone())
    }

    fn on_snapshot(
        &mut self,
        calls: Vec<CallInfo>,
        registered: bool,
        media: &[(CallId, MediaStats, f64)],
    ) {
        let now = self.now_ms;
        let mut rows = Vec::with_capacity(calls.len());
        for info in calls {
            let mut row = self
                .calls
                .iter()
                .find(|c| c.id == info.id)
                .cloned()
                .unwrap_or_else(|| {
                    CallRow::new(info.id, info.direction, info.state, &info.remote_uri, now)
                });
            row.direction = info.direction;
            row.state = info.state;
            row.remote_uri = info.remote_uri;
            row.remote_name = info
                .remote_name
                .filter(|n| !n.is_empty())
                .or(row.remote_name);
            row.on_hold = info.on_hold;
            row.remote_hold = info.remote_hold;
            row.codec = info.codec.or(row.codec);
            row.transferring = info.transferring;
            row.consultation_of = info.consultation_of;
            let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            row.started_ms = now.saturating_sub(ms(info.age));
            row.answered_ms =
                (info.state == CallState::Active).then(|| now.saturating_sub(ms(info.duration)));
            row.mos = media
                .iter()
                .find(|(id, _, _)| *id == info.id)
                .map(|(_, _, mos)| *mos);
            rows.push(row);
        }
        rows.sort_by_key(|c| c.id);
        self.calls = rows;
        match (&self.registration, registered) {
            (Registration::Registered { .. }, true) => {}
            (_, true) => {
                self.registration = Registration::Registered {
                    aor: self.config.account.clone(),
                }
            }
            (Registration::Registered { .. }, false) => self.registration = Registration::Unknown,
            (_, false) => {}
        }
    }

    // -- queues -----------------------------------------------------------------------------

    fn after_queue_change(&mut self, before: Vec<(String, bool)>) {
        let now = self.now_s();
        for agent in self.queues.agents() {
            let name = agent_state_name(&agent.state());
            match self.agent_since.get_mut(&agent.interface) {
                Some(entry) if entry.0 == name => {}
                Some(entry) => *entry = (name, now),
                None => {
                    self.agent_since
                        .insert(agent.interface.clone(), (name, now));
                }
            }
        }
        // Say what changed for this agent: the answer to c, C and p.
        let after = self.my_memberships();
        if self.config.mode == Mode::Agent && before != after {
            let mut said = Vec::new();
            for (queue, paused) in &after {
                match before.iter().find(|(q, _)| q == queue) {
                    None => said.push(format!("connected to {queue}")),
                    Some((_, was)) if was != paused => said.push(format!(
                        "{} in {queue}",
                        if *paused { "paused" } else { "unpaused" }
                    )),
                    Some(_) => {}
                }
            }
            for (queue, _) in &before {
                if !after.iter().any(|(q, _)| q == queue) {
                    said.push(format!("disconnected from {queue}"));
                }
            }
            if !said.is_empty() {
                self.info(format!("You are {}", said.join(", ")));
            }
        }
    }

    fn on_tick(&mut self, epoch_ms: u64, out: &mut Vec<Command>) -> bool {
        let second_changed = epoch_ms / 1000 != self.now_ms / 1000;
        self.now_ms = epoch_ms;
        let mut changed = second_changed;
        if self.notice.as_ref().is_some_and(|n| n.until_ms <= epoch_ms) {
            self.notice = None;
            changed = true;
        }
        if second_changed {
            if self.stats_stale {
                self.refresh_stats();
                changed = true;
            }
            if self.config.mode == Mode::Agent && !self.calls.is_empty() {
                out.push(Command::Snapshot);
            }
            // Past midnight, tomorrow's activities are today's.
            let today = self.today();
            if self.desk.available && self.desk.today.is_some_and(|d| d != today) {
                self.desk.today = Some(today);
                out.push(Command::Desk(DeskRequest::Refresh));
            }
        }
        changed
    }

    /// Recomputes the live statistics from the events held (at most once a second).
    pub fn refresh_stats(&mut self) {
        let mut builder = StatsBuilder::new(StatsConfig::all_time(self.config.service_level_s));
        for event in self.events.all() {
            builder.add(&event.as_event_ref());
        }
        let stats = builder.finish();
        self.stats = stats
            .queues
            .into_iter()
            .map(|q| (q.queue.clone(), q))
            .collect();
        self.stats_stale = false;
    }
}

/// The item after `current` in `items`, `None` after the last (meaning "all").
fn next_in_cycle<'a, T: PartialEq>(items: &'a [T], current: Option<&T>) -> Option<&'a T> {
    match current {
        None => items.first(),
        Some(current) => {
            let index = items.iter().position(|i| i == current)?;
            items.get(index + 1)
        }
    }
}

/// Actions matching the palette's text: names starting with it first, then containing it.
/// Blanks match underscores.
pub fn palette_matches(input: &str) -> Vec<Action> {
    let wanted = input.trim().to_ascii_lowercase().replace(' ', "_");
    let mut starts: Vec<Action> = Vec::new();
    let mut contains: Vec<Action> = Vec::new();
    for &action in Action::ALL {
        if action.name().starts_with(&wanted) {
            starts.push(action);
        } else if action.name().contains(&wanted) || action.label().contains(input.trim()) {
            contains.push(action);
        }
    }
    starts.extend(contains);
    starts
}

/// Seconds as `m:ss` (or `h:mm:ss` past an hour).
pub fn clock_duration(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// Epoch seconds as local `HH:MM:SS`.
pub fn clock_time(epoch_s: u64, utc_offset_s: i32) -> String {
    let local = i64::try_from(epoch_s)
        .unwrap_or(0)
        .saturating_add(i64::from(utc_offset_s))
        .rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}",
        local / 3600,
        local / 60 % 60,
        local % 60
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::queue::ami::{AgentCalled, AgentLeg, CallerChannel, DeviceState};
    use crate::tui::number::INCORRECT_NUMBER;
    use std::time::Duration;

    pub use crate::tui::sample::{caller_joins, member, params, T0_MS};

    pub fn config() -> AppConfig {
        AppConfig {
            account: "101@lab".to_owned(),
            agent: Some("PJSIP/101".to_owned()),
            queue_codes: vec![
                QueueCodes {
                    queue: "sales".to_owned(),
                    extension: "700".to_owned(),
                    login_code: "*700".to_owned(),
                    logout_code: "*701".to_owned(),
                },
                QueueCodes {
                    queue: "support".to_owned(),
                    extension: "600".to_owned(),
                    login_code: "*600".to_owned(),
                    logout_code: "*601".to_owned(),
                },
            ],
            default_region: Some("BE".to_owned()),
            ami_actions: true,
            ..AppConfig::default()
        }
    }

    pub fn app() -> App {
        let mut app = App::new(config(), Keymap::default());
        app.update(Input::Tick { epoch_ms: T0_MS });
        app
    }

    pub fn key(c: char) -> Input {
        Input::Key(Key::char(c))
    }

    pub fn code(code: KeyCode) -> Input {
        Input::Key(Key::plain(code))
    }

    pub fn type_text(app: &mut App, text: &str) -> Vec<Command> {
        text.chars().flat_map(|c| app.update(key(c))).collect()
    }

    pub fn incoming(app: &mut App, call: u32, from: &str, name: Option<&str>) -> Vec<Command> {
        app.update(Input::Ua(UaEvent::IncomingCall {
            call: CallId(call),
            from: from.to_owned(),
            name: name.map(str::to_owned),
        }))
    }

    pub fn answered(app: &mut App, call: u32) {
        app.update(Input::Ua(UaEvent::Answered {
            call: CallId(call),
            codec: Some("PCMU".to_owned()),
        }));
    }

    fn sip(commands: &[Command]) -> Vec<ua::Command> {
        commands
            .iter()
            .filter_map(|c| match c {
                Command::Sip(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn answer_applies_only_while_ringing() {
        let mut app = app();
        assert!(app.update(key('a')).is_empty());
        assert_eq!(
            app.notice.as_ref().map(|n| n.text.as_str()),
            Some("a (answer): needs an incoming call")
        );
        let out = incoming(&mut app, 7, "sip:+32470123456@lab", Some("Alice"));
        assert_eq!(out, vec![Command::Bell]);
        assert_eq!(
            app.update(key('a')),
            vec![Command::Sip(ua::Command::Answer { call: CallId(7) })]
        );
        answered(&mut app, 7);
        assert_eq!(app.calls[0].phase(), CallPhase::Active);
        // Answered: a is not answer any more.
        assert!(app.update(key('a')).is_empty());
    }

    #[test]
    fn reject_and_escape_on_a_ringing_call() {
        let mut app = app();
        incoming(&mut app, 3, "sip:200@lab", None);
        assert_eq!(
            app.update(key('r')),
            vec![Command::Sip(ua::Command::Reject { call: CallId(3) })]
        );
        // Esc is hang up, which for a ringing call is a reject.
        assert_eq!(
            app.update(code(KeyCode::Esc)),
            vec![Command::Sip(ua::Command::Reject { call: CallId(3) })]
        );
    }

    #[test]
    fn quit_asks_first_when_a_call_is_up() {
        let mut app = app();
        incoming(&mut app, 1, "sip:200@lab", None);
        answered(&mut app, 1);
        assert!(app.update(key('q')).is_empty());
        assert_eq!(app.modal, Some(Modal::ConfirmQuit));
        assert!(!app.is_quitting());
        // n keeps the call.
        assert!(app.update(key('n')).is_empty());
        assert_eq!(app.modal, None);
        app.update(key('q'));
        assert_eq!(app.update(key('y')), vec![Command::Quit]);
        assert!(app.is_quitting());
        // Without a call, q quits at once.
        let mut idle = self::app();
        assert_eq!(idle.update(key('q')), vec![Command::Quit]);
    }

    #[test]
    fn dial_prompt_validates_normalises_and_remembers() {
        let mut app = app();
        app.update(key('d'));
        assert!(matches!(
            app.modal,
            Some(Modal::Prompt(Prompt {
                purpose: PromptPurpose::Dial,
                ..
            }))
        ));
        type_text(&mut app, "12ab34");
        assert!(app.update(code(KeyCode::Enter)).is_empty());
        let Some(Modal::Prompt(prompt)) = &app.modal else {
            panic!("the prompt stays open")
        };
        assert_eq!(prompt.error.as_deref(), Some(INCORRECT_NUMBER));
        app.update(Input::Key(Key::ctrl('u')));
        type_text(&mut app, "0470 12 34 56");
        assert_eq!(
            app.update(code(KeyCode::Enter)),
            vec![Command::Sip(ua::Command::Dial {
                target: "+32470123456".to_owned()
            })]
        );
        assert_eq!(app.modal, None);
        assert_eq!(app.dial_history, vec!["+32470123456"]);
        // History: ↑ brings it back; R redials it.
        app.update(key('d'));
        app.update(code(KeyCode::Up));
        let Some(Modal::Prompt(prompt)) = &app.modal else {
            panic!("prompt")
        };
        assert_eq!(prompt.input, "+32470123456");
        app.update(code(KeyCode::Esc));
        assert_eq!(
            sip(&app.update(key('R'))),
            vec![ua::Command::Dial {
                target: "+32470123456".to_owned()
            }]
        );
    }

    #[test]
    fn hold_mute_and_dtmf_target_the_answered_call() {
        let mut app = app();
        incoming(&mut app, 4, "sip:+3225551212@lab", None);
        answered(&mut app, 4);
        assert_eq!(
            sip(&app.update(key('h'))),
            vec![ua::Command::Hold { call: CallId(4) }]
        );
        app.update(Input::Ua(UaEvent::Held { call: CallId(4) }));
        assert_eq!(app.calls[0].phase(), CallPhase::OnHold);
        assert_eq!(
            sip(&app.update(key('h'))),
            vec![ua::Command::Resume { call: CallId(4) }]
        );
        assert_eq!(
            app.update(key('m')),
            vec![Command::Mute {
                call: CallId(4),
                muted: true
            }]
        );
        assert!(app.calls[0].muted);
        assert_eq!(
            sip(&app.update(key('#'))),
            vec![ua::Command::Dtmf {
                call: CallId(4),
                digits: "#".to_owned()
            }]
        );
        assert_eq!(
            app.update(Input::Key(Key::ctrl('r'))),
            vec![Command::Record { call: CallId(4) }]
        );
        assert!(app.calls[0].recording);
    }

    #[test]
    fn attended_transfer_start_complete_and_abort() {
        let mut app = app();
        incoming(&mut app, 1, "sip:+3225551212@lab", None);
        answered(&mut app, 1);
        app.update(key('T'));
        type_text(&mut app, "102");
        assert_eq!(
            sip(&app.update(code(KeyCode::Enter))),
            vec![ua::Command::AttendedStart {
                call: CallId(1),
                target: "102".to_owned()
            }]
        );
        app.update(Input::Ua(UaEvent::Held { call: CallId(1) }));
        app.update(Input::Ua(UaEvent::Dialing {
            call: CallId(2),
            to: "sip:102@lab".to_owned(),
        }));
        assert_eq!(app.calls[1].consultation_of, Some(CallId(1)));
        answered(&mut app, 2);
        // T now completes; X aborts.
        assert_eq!(
            sip(&app.update(key('T'))),
            vec![ua::Command::AttendedComplete { call: CallId(1) }]
        );
        assert_eq!(
            sip(&app.update(key('X'))),
            vec![ua::Command::AttendedAbort { call: CallId(1) }]
        );
    }

    #[test]
    fn forward_takes_only_phone_numbers() {
        let mut app = app();
        incoming(&mut app, 1, "sip:200@lab", None);
        answered(&mut app, 1);
        app.update(key('f'));
        type_text(&mut app, "+1 650 691 327");
        assert!(app.update(code(KeyCode::Enter)).is_empty());
        app.update(code(KeyCode::Backspace));
        type_text(&mut app, "77");
        assert_eq!(
            sip(&app.update(code(KeyCode::Enter))),
            vec![ua::Command::Transfer {
                call: CallId(1),
                target: "+16506913277".to_owned()
            }]
        );
    }

    #[test]
    fn queue_connect_picks_among_several_and_dials_the_code() {
        let mut app = app();
        // No queue model yet: both queues are offered.
        assert!(app.update(key('c')).is_empty());
        let Some(Modal::Pick(picker)) = &app.modal else {
            panic!("a picker")
        };
        assert_eq!(picker.options, vec!["sales", "support"]);
        app.update(code(KeyCode::Down));
        assert_eq!(
            app.update(code(KeyCode::Enter)),
            vec![Command::DialCode {
                queue: "support".to_owned(),
                code: "*600".to_owned()
            }]
        );
        // The model then shows the membership: the notice says so, and only sales is left.
        app.update(Input::Queue(params("support")));
        app.update(Input::Queue(member(
            "support",
            "PJSIP/101",
            "101",
            DeviceState::NotInUse,
        )));
        assert_eq!(
            app.notice.as_ref().map(|n| n.text.as_str()),
            Some("You are connected to support")
        );
        assert_eq!(
            app.update(key('c')),
            vec![Command::DialCode {
                queue: "sales".to_owned(),
                code: "*700".to_owned()
            }]
        );
        assert_eq!(
            app.update(key('C')),
            vec![Command::DialCode {
                queue: "support".to_owned(),
                code: "*601".to_owned()
            }]
        );
        assert_eq!(
            app.update(key('p')),
            vec![Command::QueuePause {
                interface: "PJSIP/101".to_owned(),
                queue: None,
                paused: true
            }]
        );
    }

    #[test]
    fn without_ami_the_codes_dialled_tell_the_agent_its_queue_state() {
        let mut app = app(); // live_queue_feed is false: a hosted PBX without AMI
        assert!(app.me().is_none());
        // Both queues can be joined; the driver reports the *600 call answered and ended.
        app.update(Input::ConnectQueue("support".to_owned()));
        app.update(Input::CodeResult {
            queue: "support".to_owned(),
            code: "*600".to_owned(),
            accepted: true,
            reason: String::new(),
        });
        let me = app.me().expect("the agent is in the model now");
        assert!(me.membership("support").is_some());
        assert!(me.membership("sales").is_none());
        assert_eq!(app.disconnect_options(), vec!["support".to_owned()]);
        assert_eq!(app.connect_options(), vec!["sales".to_owned()]);
        // A refused code changes nothing and says why.
        app.update(Input::CodeResult {
            queue: "sales".to_owned(),
            code: "*700".to_owned(),
            accepted: false,
            reason: "404 Not Found".to_owned(),
        });
        assert!(app.me().is_some_and(|a| a.membership("sales").is_none()));
        let notice = app
            .notice
            .as_ref()
            .map(|n| n.text.clone())
            .unwrap_or_default();
        assert!(
            notice.contains("Could not connect to sales") && notice.contains("404 Not Found"),
            "{notice}"
        );
        // The logout code takes the agent out again.
        app.update(Input::CodeResult {
            queue: "support".to_owned(),
            code: "*601".to_owned(),
            accepted: true,
            reason: String::new(),
        });
        assert!(app.me().is_none_or(|a| a.membership("support").is_none()));
        assert_eq!(app.connect_options().len(), 2);
    }

    #[test]
    fn with_ami_the_pbx_alone_says_the_agent_state() {
        let mut app = app();
        app.config.live_queue_feed = true;
        app.update(Input::CodeResult {
            queue: "support".to_owned(),
            code: "*600".to_owned(),
            accepted: true,
            reason: String::new(),
        });
        // The confirmation is shown, but membership waits for the PBX's QueueMemberAdded.
        assert!(app.me().is_none());
        assert_eq!(
            app.notice.as_ref().map(|n| n.text.as_str()),
            Some("Connected to support")
        );
    }

    #[test]
    fn supervisors_act_on_the_selected_agent() {
        let mut app = App::new(
            AppConfig {
                mode: Mode::Supervisor,
                ami_actions: true,
                ..AppConfig::default()
            },
            Keymap::default(),
        );
        app.update(Input::Queue(params("sales")));
        app.update(Input::Queue(params("support")));
        app.update(Input::Queue(member(
            "support",
            "PJSIP/agent1",
            "agent1",
            DeviceState::NotInUse,
        )));
        app.update(Input::Queue(member(
            "support",
            "PJSIP/agent2",
            "agent2",
            DeviceState::InUse,
        )));
        // No dialling without a SIP account.
        assert!(app.update(key('d')).is_empty());
        assert_eq!(app.modal, None);
        app.focus = Pane::Agents;
        app.update(code(KeyCode::Down));
        assert_eq!(
            app.update(key('c')),
            vec![Command::QueueAdd {
                queue: "sales".to_owned(),
                interface: "PJSIP/agent2".to_owned()
            }]
        );
        assert_eq!(
            app.update(key('C')),
            vec![Command::QueueRemove {
                queue: "support".to_owned(),
                interface: "PJSIP/agent2".to_owned()
            }]
        );
    }

    #[test]
    fn search_filters_as_you_type_and_escape_clears() {
        let mut app = app();
        for q in ["billing", "sales", "support"] {
            app.update(Input::Queue(params(q)));
        }
        app.update(key('/'));
        type_text(&mut app, "SU");
        assert_eq!(app.search.as_deref(), Some("su"));
        let names: Vec<&str> = app.visible_queues().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["support"]);
        app.update(code(KeyCode::Enter));
        assert_eq!(app.modal, None);
        assert_eq!(app.search.as_deref(), Some("su"));
        app.update(key('/'));
        app.update(code(KeyCode::Esc));
        assert_eq!(app.search, None);
    }

    #[test]
    fn the_event_stream_is_bounded_filtered_and_freezes() {
        let mut app = App::new(
            AppConfig {
                event_capacity: 5,
                ..config()
            },
            Keymap::default(),
        );
        let event = |n: u64, kind: ReportKind, queue: &str| ReportEvent {
            time: 1_000 + n,
            kind,
            queue: queue.to_owned(),
            call_id: Some(format!("c{n}")),
            agent: None,
            caller: Some(format!("+3247000000{n}")),
            wait_s: None,
            talk_s: None,
            ring_ms: None,
            position: None,
            detail: None,
        };
        for n in 0..8 {
            let kind = if n % 2 == 0 {
                ReportKind::EnterQueue
            } else {
                ReportKind::CallerQuit
            };
            app.update(Input::Report(event(
                n,
                kind,
                if n < 4 { "sales" } else { "support" },
            )));
        }
        assert_eq!(app.events.len(), 5);
        let times: Vec<u64> = app.events.visible(None).map(|e| e.time).collect();
        assert_eq!(times, [1007, 1006, 1005, 1004, 1003]);
        app.focus = Pane::Events;
        app.update(key('e')); // enter-queue... kinds sorted: CallerQuit first
        assert_eq!(app.events.kind, Some(ReportKind::CallerQuit));
        let times: Vec<u64> = app.events.visible(None).map(|e| e.time).collect();
        assert_eq!(times, [1007, 1005, 1003]);
        app.update(key('e'));
        app.update(key('e'));
        assert_eq!(app.events.kind, None);
        app.update(key('Q'));
        assert_eq!(app.events.queue.as_deref(), Some("sales"));
        app.update(key('Q'));
        app.update(key('Q'));
        assert_eq!(app.events.queue, None);
        // Frozen: new events do not move the view; they are counted.
        app.update(key(' '));
        app.update(Input::Report(event(8, ReportKind::Connected, "support")));
        app.update(Input::Report(event(9, ReportKind::Connected, "support")));
        let times: Vec<u64> = app.events.visible(None).map(|e| e.time).collect();
        assert_eq!(times, [1007, 1006, 1005]);
        assert_eq!(app.events.unseen(), 2);
        app.update(key(' '));
        assert_eq!(app.events.visible(None).next().map(|e| e.time), Some(1009));
        // Scrolling back freezes too.
        app.update(code(KeyCode::Up));
        assert!(app.events.is_frozen());
        assert_eq!(app.events.visible(None).next().map(|e| e.time), Some(1008));
        app.update(code(KeyCode::End));
        assert!(!app.events.is_frozen());
    }

    #[test]
    fn live_statistics_follow_the_events() {
        let mut app = app();
        let event = |kind, call: &str, wait| ReportEvent {
            time: 1_000,
            kind,
            queue: "support".to_owned(),
            call_id: Some(call.to_owned()),
            agent: Some("agent1".to_owned()),
            caller: None,
            wait_s: wait,
            talk_s: None,
            ring_ms: None,
            position: None,
            detail: None,
        };
        for input in [
            event(ReportKind::EnterQueue, "a", None),
            event(ReportKind::Connected, "a", Some(5)),
            event(ReportKind::EnterQueue, "b", None),
            event(ReportKind::Connected, "b", Some(45)),
            event(ReportKind::EnterQueue, "c", None),
            event(ReportKind::CallerQuit, "c", Some(30)),
        ] {
            app.update(Input::Report(input));
        }
        assert!(
            app.stats.is_empty(),
            "computed on the next second, not per event"
        );
        app.update(Input::Tick {
            epoch_ms: T0_MS + 1_000,
        });
        let support = &app.stats["support"];
        assert_eq!(
            (support.offered, support.answered, support.abandoned),
            (3, 2, 1)
        );
        assert_eq!(support.service_level_pct(), Some(50.0));
    }

    #[test]
    fn agent_time_in_state_counts_from_the_change() {
        let mut app = app();
        app.update(Input::Queue(params("support")));
        app.update(Input::Queue(member(
            "support",
            "PJSIP/agent1",
            "agent1",
            DeviceState::NotInUse,
        )));
        app.update(Input::Tick {
            epoch_ms: T0_MS + 30_000,
        });
        let agent = app.queues.agent("agent1").cloned().expect("agent");
        assert_eq!(app.agent_state_age_s(&agent), Some(30));
        app.update(Input::Queue(QueueAmiEvent::AgentCalled(AgentCalled {
            queue: "support".to_owned(),
            caller: CallerChannel {
                uniqueid: "u1".to_owned(),
                ..CallerChannel::default()
            },
            agent: AgentLeg {
                interface: "PJSIP/agent1".to_owned(),
                member_name: "agent1".to_owned(),
                ..AgentLeg::default()
            },
            ..AgentCalled::default()
        })));
        app.update(Input::Tick {
            epoch_ms: T0_MS + 34_000,
        });
        let agent = app.queues.agent("agent1").cloned().expect("agent");
        assert_eq!(agent.state(), AgentState::Ringing);
        assert_eq!(app.agent_state_age_s(&agent), Some(4));
    }

    #[test]
    fn an_incoming_call_knows_its_queue() {
        let mut app = app();
        app.update(Input::Queue(params("support")));
        app.update(Input::Queue(caller_joins(
            "support",
            "u9",
            "+32470999999",
            "Bob",
        )));
        incoming(&mut app, 5, "sip:+32470999999@lab", Some("Bob"));
        assert_eq!(app.calls[0].queue.as_deref(), Some("support"));
    }

    #[test]
    fn snapshots_resync_timers_and_keep_local_flags() {
        let mut app = app();
        incoming(&mut app, 1, "sip:+3225551212@lab", None);
        answered(&mut app, 1);
        app.update(key('m'));
        let mut info = CallInfo {
            id: CallId(1),
            direction: CallDirection::Incoming,
            state: CallState::Active,
            remote_uri: "sip:+3225551212@lab".to_owned(),
            remote_name: Some("Carol".to_owned()),
            on_hold: false,
            remote_hold: true,
            codec: Some("G722".to_owned()),
            duration: Duration::from_secs(75),
            transferring: false,
            consultation_of: None,
            age: Duration::from_secs(80),
        };
        app.update(Input::Snapshot {
            calls: vec![info.clone()],
            registered: true,
            media: vec![(CallId(1), MediaStats::default(), 4.1)],
        });
        let row = &app.calls[0];
        assert_eq!(row.phase(), CallPhase::HeldByFarEnd);
        assert!(row.muted, "mute is ours; the snapshot does not know it");
        assert_eq!(row.elapsed_s(app.now_ms), 75);
        assert_eq!(row.mos, Some(4.1));
        assert_eq!(row.who(), "Carol");
        assert_eq!(
            app.registration,
            Registration::Registered {
                aor: "101@lab".to_owned()
            }
        );
        // A call gone from the snapshot is gone.
        info.id = CallId(2);
        app.update(Input::Snapshot {
            calls: vec![],
            registered: true,
            media: vec![],
        });
        assert!(app.calls.is_empty());
    }

    #[test]
    fn ticks_ask_for_snapshots_during_calls_and_expire_notices() {
        let mut app = app();
        assert!(app.take_dirty());
        assert!(app
            .update(Input::Tick {
                epoch_ms: T0_MS + 400
            })
            .is_empty());
        assert!(!app.take_dirty(), "same second: nothing to redraw");
        app.update(Input::Tick {
            epoch_ms: T0_MS + 1_000,
        });
        assert!(app.take_dirty(), "the clock moved");
        incoming(&mut app, 1, "sip:1@lab", None);
        assert_eq!(
            app.update(Input::Tick {
                epoch_ms: T0_MS + 2_000
            }),
            vec![Command::Snapshot]
        );
        app.update(Input::CommandFailed("no call 9".to_owned()));
        assert!(app.notice.is_some());
        app.update(Input::Tick {
            epoch_ms: T0_MS + 2_000 + ALERT_MS,
        });
        assert_eq!(app.notice, None);
    }

    #[test]
    fn the_palette_runs_actions_by_name() {
        let mut app = app();
        app.update(key(':'));
        type_text(&mut app, "hel");
        assert_eq!(palette_matches("hel"), vec![Action::Help]);
        app.update(code(KeyCode::Enter));
        assert_eq!(app.modal, Some(Modal::Help { scroll: 0 }));
        app.update(code(KeyCode::Esc));
        app.update(key(':'));
        type_text(&mut app, "answer");
        app.update(code(KeyCode::Enter));
        assert_eq!(
            app.notice.as_ref().map(|n| n.text.as_str()),
            Some("answer: needs an incoming call")
        );
        assert_eq!(palette_matches("transfer")[0], Action::AttendedComplete);
        assert!(palette_matches("transfer").contains(&Action::BlindTransfer));
    }

    #[test]
    fn panes_cycle_and_lists_stay_in_bounds() {
        let mut app = app();
        for _ in 0..5 {
            app.update(code(KeyCode::Tab));
        }
        assert_eq!(app.focus, Pane::Calls);
        app.update(code(KeyCode::BackTab));
        assert_eq!(app.focus, Pane::Events);
        app.focus = Pane::Queues;
        for q in ["a", "b", "c"] {
            app.update(Input::Queue(params(q)));
        }
        app.update(code(KeyCode::PageDown));
        assert_eq!(app.selection.queues, 2);
        app.update(code(KeyCode::Enter));
        assert!(app.expanded.contains("c"));
        app.update(code(KeyCode::Home));
        assert_eq!(app.selection.queues, 0);
        app.update(key(']'));
        assert_eq!(app.tab, Tab::NextActivities);
        app.update(key('['));
        app.update(key('['));
        assert_eq!(app.tab, Tab::Contacts);
    }

    #[test]
    fn call_end_messages_say_who_and_why() {
        let mut app = app();
        incoming(&mut app, 1, "sip:+3225551212@lab", Some("Dave"));
        answered(&mut app, 1);
        app.update(Input::Ua(UaEvent::CallEnded {
            call: CallId(1),
            code: None,
            reason: "BYE".to_owned(),
            by: EndedBy::Remote,
        }));
        assert_eq!(
            app.notice.as_ref().map(|n| n.text.as_str()),
            Some("Dave hung up")
        );
        app.update(Input::Ua(UaEvent::Dialing {
            call: CallId(2),
            to: "sip:102@lab".to_owned(),
        }));
        app.update(Input::Ua(UaEvent::CallEnded {
            call: CallId(2),
            code: Some(486),
            reason: "Busy Here".to_owned(),
            by: EndedBy::Remote,
        }));
        assert_eq!(
            app.notice.as_ref().map(|n| n.text.as_str()),
            Some("Call with 102 not answered: 486 Busy Here")
        );
        assert!(app.calls.is_empty());
    }

    #[test]
    fn helpers() {
        assert_eq!(user_part("sip:+3247@lab;user=phone"), "+3247");
        assert_eq!(user_part("<sips:bob@x>"), "bob");
        assert_eq!(user_part("alice"), "alice");
        assert_eq!(clock_duration(59), "0:59");
        assert_eq!(clock_duration(3_725), "1:02:05");
        let t = 1_795_259_591;
        let utc = crate::queue::report::format_utc(t);
        assert_eq!(clock_time(t, 0), utc[11..]);
        assert_eq!(clock_time(t, 0), "11:13:11");
        assert_eq!(clock_time(t, 3_600), "12:13:11");
        assert_eq!(clock_time(0, -3_600), "23:00:00");
    }

    // -- the tabs -----------------------------------------------------------------------------

    fn desk_app() -> App {
        let mut app = app();
        crate::tui::sample::fill_desk(&mut app);
        app.focus = Pane::Tabs;
        app
    }

    fn desk_requests(commands: &[Command]) -> Vec<DeskRequest> {
        commands
            .iter()
            .filter_map(|c| match c {
                Command::Desk(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn enter_calls_back_from_recent_and_m_filters_missed_calls() {
        let mut app = desk_app();
        app.tab = Tab::Recent;
        app.update(code(KeyCode::Down));
        let out = app.update(code(KeyCode::Enter));
        assert_eq!(
            sip(&out),
            [ua::Command::Dial {
                target: "+3225550199".into()
            }]
        );
        assert_eq!(
            app.dial_history.first().map(String::as_str),
            Some("+3225550199")
        );
        let out = app.update(key('M'));
        assert_eq!(
            desk_requests(&out),
            [DeskRequest::Recent { missed_only: true }]
        );
        // M means mute elsewhere only during a call; in the Queues pane it does nothing.
        app.focus = Pane::Queues;
        assert!(desk_requests(&app.update(key('M'))).is_empty());
    }

    #[test]
    fn a_call_from_an_activity_links_it_and_asks_to_mark_it_done_at_the_end() {
        let mut app = desk_app();
        app.tab = Tab::NextActivities;
        app.update(code(KeyCode::Down));
        let out = app.update(code(KeyCode::Enter));
        let activity = app.desk.activities[1].activity.id;
        assert_eq!(
            desk_requests(&out),
            [DeskRequest::CallFromActivity {
                target: "+3225550137".into(),
                activity
            }]
        );
        assert_eq!(
            sip(&out),
            [ua::Command::Dial {
                target: "+3225550137".into()
            }]
        );
        app.update(Input::Ua(UaEvent::Dialing {
            call: CallId(5),
            to: "sip:+3225550137@lab".into(),
        }));
        answered(&mut app, 5);
        app.update(Input::Ua(UaEvent::CallEnded {
            call: CallId(5),
            code: None,
            reason: String::new(),
            by: EndedBy::Remote,
        }));
        assert!(matches!(
            &app.modal,
            Some(Modal::ConfirmDone { activity: a, summary }) if *a == activity && summary == "Call back about the invoice"
        ));
        let out = app.update(key('y'));
        assert_eq!(desk_requests(&out), [DeskRequest::MarkDone(activity)]);
        assert!(app.modal.is_none());
        // An ordinary call's end asks nothing.
        app.update(Input::Ua(UaEvent::Dialing {
            call: CallId(6),
            to: "sip:+3225550137@lab".into(),
        }));
        app.update(Input::Ua(UaEvent::CallEnded {
            call: CallId(6),
            code: Some(486),
            reason: "Busy Here".into(),
            by: EndedBy::Remote,
        }));
        assert!(app.modal.is_none());
    }

    #[test]
    fn activity_keys_done_cancel_edit_and_schedule() {
        let mut app = desk_app();
        app.tab = Tab::NextActivities;
        let first = app.desk.activities[0].activity.id;
        assert_eq!(
            desk_requests(&app.update(key('D'))),
            [DeskRequest::MarkDone(first)]
        );
        assert_eq!(
            desk_requests(&app.update(code(KeyCode::Delete))),
            [DeskRequest::Cancel(first)]
        );
        // e: the inline form; typing changes the summary, Enter saves it.
        app.update(key('e'));
        assert!(matches!(app.modal, Some(Modal::Form(_))));
        type_text(&mut app, " (sent)");
        let out = app.update(code(KeyCode::Enter));
        match desk_requests(&out).as_slice() {
            [DeskRequest::Edit { id, edit }] => {
                assert_eq!(*id, first);
                assert_eq!(edit.summary, "Follow up on the quote (sent)");
                assert_eq!(edit.due.to_string(), "2026-11-19");
            }
            other => panic!("{other:?}"),
        }
        // s on an activity without a contact still schedules (no contact linked).
        app.update(code(KeyCode::End));
        app.update(key('s'));
        let out = app.update(code(KeyCode::Enter));
        match desk_requests(&out).as_slice() {
            [DeskRequest::Schedule(new)] => {
                assert_eq!(new.contact_id, None);
                assert_eq!(new.due.to_string(), "2026-11-22");
            }
            other => panic!("{other:?}"),
        }
        // The store's answers reach the notice line.
        app.update(Input::Desk(DeskUpdate::Failed(
            "activity 1 is already done".into(),
        )));
        assert_eq!(
            app.notice.as_ref().map(|n| (n.text.as_str(), n.level)),
            Some(("activity 1 is already done", NoticeLevel::Alert))
        );
    }

    #[test]
    fn contacts_search_as_you_type_and_esc_lists_everyone_again() {
        let mut app = desk_app();
        app.tab = Tab::Contacts;
        app.update(key('/'));
        let out = type_text(&mut app, "an");
        assert_eq!(
            desk_requests(&out),
            [
                DeskRequest::SearchContacts {
                    query: "a".into(),
                    purpose: SearchFor::Tab
                },
                DeskRequest::SearchContacts {
                    query: "an".into(),
                    purpose: SearchFor::Tab
                },
            ]
        );
        assert_eq!(app.desk.query, "an");
        // The queues/events search is untouched.
        assert_eq!(app.search, None);
        let out = app.update(code(KeyCode::Esc));
        assert_eq!(
            desk_requests(&out),
            [DeskRequest::SearchContacts {
                query: String::new(),
                purpose: SearchFor::Tab
            }]
        );
        // i asks for the card; the answer opens it; Enter on it dials.
        app.update(code(KeyCode::Down));
        let out = app.update(key('i'));
        let chen = app.desk.contacts[1].clone();
        assert_eq!(desk_requests(&out), [DeskRequest::Card(chen.id)]);
        app.update(Input::Desk(DeskUpdate::Card {
            contact: chen,
            activities: Vec::new(),
        }));
        let out = app.update(code(KeyCode::Enter));
        assert_eq!(
            sip(&out),
            [ua::Command::Dial {
                target: "+3225550142".into()
            }]
        );
    }

    #[test]
    fn the_dial_prompt_completes_from_contacts() {
        let mut app = desk_app();
        app.focus = Pane::Calls;
        app.update(key('d'));
        // Short digit strings and SIP URIs do not search; letters do.
        assert!(desk_requests(&type_text(&mut app, "04")).is_empty());
        app.update(Input::Key(Key::ctrl('u')));
        let out = type_text(&mut app, "ch");
        assert_eq!(
            desk_requests(&out).last(),
            Some(&DeskRequest::SearchContacts {
                query: "ch".into(),
                purpose: SearchFor::Dial
            })
        );
        let chen = app.desk.contacts[1].clone();
        // An answer for an older text is dropped.
        app.update(Input::Desk(DeskUpdate::Contacts {
            query: "c".into(),
            purpose: SearchFor::Dial,
            hits: vec![chen.clone()],
        }));
        assert!(matches!(&app.modal, Some(Modal::Prompt(p)) if p.suggestions.is_empty()));
        app.update(Input::Desk(DeskUpdate::Contacts {
            query: "ch".into(),
            purpose: SearchFor::Dial,
            hits: vec![chen],
        }));
        assert!(
            matches!(&app.modal, Some(Modal::Prompt(p)) if p.suggestions == [("Chen Wei".to_owned(), "+3225550142".to_owned())])
        );
        app.update(code(KeyCode::Down));
        let out = app.update(code(KeyCode::Enter));
        assert_eq!(
            sip(&out),
            [ua::Command::Dial {
                target: "+3225550142".into()
            }]
        );
        // Tab completes the text with the number instead.
        app.update(key('d'));
        type_text(&mut app, "ch");
        let chen = app.desk.contacts[1].clone();
        app.update(Input::Desk(DeskUpdate::Contacts {
            query: "ch".into(),
            purpose: SearchFor::Dial,
            hits: vec![chen],
        }));
        app.update(code(KeyCode::Tab));
        assert!(matches!(&app.modal, Some(Modal::Prompt(p)) if p.input == "+3225550142"));
    }

    #[test]
    fn waiting_callers_are_looked_up_once_and_named() {
        let mut app = desk_app();
        app.update(Input::Queue(params("support")));
        let out = app.update(Input::Queue(caller_joins(
            "support",
            "u1",
            "+3225550137",
            "",
        )));
        assert_eq!(
            desk_requests(&out),
            [DeskRequest::LookupNames(vec!["+3225550137".into()])]
        );
        let out = app.update(Input::Queue(caller_joins(
            "support",
            "u2",
            "+3225550142",
            "PBX Name",
        )));
        assert!(desk_requests(&out).is_empty(), "a PBX name needs no lookup");
        app.update(Input::Desk(DeskUpdate::Names(vec![(
            "+3225550137".into(),
            Some("Martin Dupont".into()),
        )])));
        assert_eq!(app.desk.name_of("+3225550137"), Some("Martin Dupont"));
        // Another queue event does not ask again.
        let out = app.update(Input::Queue(params("support")));
        assert!(desk_requests(&out).is_empty());
        // Past midnight the tabs are read again.
        let midnight = (T0_MS / 86_400_000 + 1) * 86_400_000;
        let out = app.update(Input::Tick { epoch_ms: midnight });
        assert_eq!(desk_requests(&out), [DeskRequest::Refresh]);
    }

    fn draft(activity: Option<ActivityId>, problem: Option<&str>) -> EmailDraft {
        EmailDraft {
            text: "To: Chen Wei <chen@example.org>\nSubject: Our call\n\nHello\n".into(),
            to: "Chen Wei <chen@example.org>".into(),
            subject: "Our call".into(),
            problem: problem.map(str::to_owned),
            contact: Some(ContactId(3)),
            activity,
        }
    }

    #[test]
    fn e_composes_a_follow_up_about_the_selected_call_and_the_draft_is_sent_or_kept() {
        let mut app = desk_app();
        app.tab = Tab::Recent;
        let out = app.update(key('E'));
        let call = app.desk.recent[0].id;
        match out.as_slice() {
            [Command::ComposeEmail(request)] => {
                assert_eq!(request.call, Some(call));
                assert_eq!(request.contact, app.desk.recent[0].contact_id);
                assert_eq!(request.name, "Martin Dupont");
                assert_eq!(request.draft, None);
            }
            other => panic!("{other:?}"),
        }
        // Back from the editor: send now.
        app.update(Input::EmailDraft(draft(None, None)));
        assert!(matches!(app.modal, Some(Modal::SendChoice(_))));
        match app.update(key('s')).as_slice() {
            [Command::SendEmail { draft, contact, .. }] => {
                assert!(draft.starts_with("To: Chen Wei"));
                assert_eq!(*contact, Some(ContactId(3)));
            }
            other => panic!("{other:?}"),
        }
        // A draft with a problem cannot be sent; l keeps it as an email activity for today.
        app.update(Input::EmailDraft(draft(None, Some("no recipient"))));
        assert!(desk_requests(&app.update(key('s'))).is_empty());
        assert!(matches!(app.modal, Some(Modal::SendChoice(_))));
        match desk_requests(&app.update(key('l'))).as_slice() {
            [DeskRequest::Schedule(new)] => {
                assert_eq!(new.kind, ActivityKind::Email);
                assert_eq!(new.summary, "Email Chen Wei <chen@example.org>: Our call");
                assert_eq!(new.due, app.today());
                assert!(new.note.starts_with("To: Chen Wei"));
            }
            other => panic!("{other:?}"),
        }
        // e edits the same draft again.
        app.update(Input::EmailDraft(draft(None, None)));
        match app.update(key('e')).as_slice() {
            [Command::ComposeEmail(request)] => {
                assert!(request
                    .draft
                    .as_deref()
                    .is_some_and(|d| d.ends_with("Hello\n")));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_kept_email_is_sent_from_its_activity_and_a_failed_send_is_kept() {
        let mut app = desk_app();
        app.tab = Tab::NextActivities;
        // The sample's email activity has no draft: E composes a fresh one for its contact.
        app.update(code(KeyCode::Down));
        app.update(code(KeyCode::Down));
        match app.update(key('E')).as_slice() {
            [Command::ComposeEmail(request)] => {
                assert_eq!(request.name, "Chen Wei");
                assert_eq!(request.activity, None);
            }
            other => panic!("{other:?}"),
        }
        // One with its draft in the note: E edits that draft, and sending marks it done.
        app.desk.activities[2].activity.note = draft(None, None).text;
        let id = app.desk.activities[2].activity.id;
        match app.update(key('E')).as_slice() {
            [Command::ComposeEmail(request)] => {
                assert_eq!(request.activity, Some(id));
                assert_eq!(
                    request.draft.as_deref(),
                    Some(draft(None, None).text.as_str())
                );
            }
            other => panic!("{other:?}"),
        }
        let out = app.update(Input::EmailSent {
            result: Ok("Email sent to Chen Wei <chen@example.org>".into()),
            draft: draft(Some(id), None),
        });
        assert_eq!(desk_requests(&out), [DeskRequest::MarkDone(id)]);
        // A failure keeps the draft: the activity is updated, a new one made otherwise.
        let out = app.update(Input::EmailSent {
            result: Err("cannot connect to SMTP server".into()),
            draft: draft(Some(id), None),
        });
        assert!(
            matches!(desk_requests(&out).as_slice(), [DeskRequest::Edit { id: i, .. }] if *i == id)
        );
        assert!(app.notice.as_ref().is_some_and(
            |n| n.level == NoticeLevel::Alert && n.text.contains("Kept in Next Activities")
        ));
        let out = app.update(Input::EmailSent {
            result: Err("refused".into()),
            draft: draft(None, None),
        });
        assert!(matches!(
            desk_requests(&out).as_slice(),
            [DeskRequest::Schedule(_)]
        ));
    }
}
