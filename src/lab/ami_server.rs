//! The lab PBX's AMI server, sans-IO: one [`AmiSession`] per TCP connection, and one
//! [`AmiEventBook`] that turns the simulation's [`QueueEvent`]s into Asterisk 22 events.
//!
//! Everything a client sees has the shape of the captures in `tests/fixtures/asterisk/ami/`:
//! the same keys in the same order, the same units (`AgentRingNoAnswer` RingTime in ms,
//! `AgentConnect` RingTime and every HoldTime / TalkTime in s), `Privilege: agent,all` on queue
//! events and `call,all` on channel events, a `Timestamp: secs.micros` on every live event but
//! `FullyBooted`, and no Privilege / Timestamp on the list events of QueueStatus / QueueSummary.
//!
//! Session contract (as everywhere in the core): feed [`AmiSession::handle_bytes`],
//! [`AmiSession::handle_timeout`] and [`AmiSession::handle_event`], then drain
//! [`AmiSession::poll_transmit`] and [`AmiSession::poll_request`]. A supervisor action
//! (QueueAdd, QueueRemove, QueuePause) comes out as a [`LabRequest`]; the driver applies it to
//! the [`Simulation`] ([`LabRequest::apply`]), answers with [`AmiSession::respond`], publishes
//! the events the change caused, and only then lets the session read on (`handle_bytes` with
//! no bytes). So responses keep the order of the actions, and each response goes out before the
//! member event its change causes, as Asterisk sends them.
//!
//! Events are formatted once per queue event by [`AmiEventBook::publish`], not once per
//! session; each session only filters by class (`Events: on`, `off`, or `agent,call` ...).
//! Queue events are class `agent`. The book also writes the three `call` events the report needs
//! to tell outcomes apart, exactly where Asterisk writes them: `HangupRequest` before a caller's
//! `QueueCallerAbandon` (a real abandon; timeout and empty exits have none) and before the
//! `AgentComplete` of a hang-up, and `BlindTransfer` / `AttendedTransfer` before the
//! `AgentComplete` of a transfer. Other channel events (Newchannel, Dial*, Bridge*, Hangup,
//! DeviceStateChange) are not produced.
//!
//! Names: a lab agent's interface is `PJSIP/<extension>` and its member name the extension; a
//! bot's interface is `Local/<bot>` (bots have no SIP endpoint) and its member name the bot's
//! name. Simulated callers' channels are `Local/<number>@lab-callers-<seq>;2`, other callers'
//! `PJSIP/<number>-<seq>`; their uniqueid is the queue_log call id.

use std::cell::OnceCell;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::lab::queue::{AgentState, QueueError, QueueEvent, QueueSnapshot};
use crate::lab::sim::Simulation;
use crate::queue::ami::{
    verify_md5_key, AmiFramer, AmiItem, AmiKind, AmiLimits, AmiMessage, AMI_BANNER,
};
use crate::queue::queue_log::parse_line_ref;

/// The lab's `SystemName` and uniqueid prefix (Asterisk's `systemname`).
pub const LAB_SYSTEM_NAME: &str = "ringside-lab";
/// The dialplan context the lab names in channel fields.
const LAB_CONTEXT: &str = "lab";
/// How long a failed login waits before its error (Asterisk sleeps 1 s, then closes).
pub const LOGIN_FAILURE_DELAY: Duration = Duration::from_secs(1);
/// How long a connection may stay without a successful login (Asterisk's `authtimeout`).
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(30);
/// What one client action may be: Asterisk reads lines of at most 1 KiB and 128 headers.
const CLIENT_LIMITS: AmiLimits = AmiLimits {
    max_message_bytes: 16 * 1024,
    max_fields: 128,
};
/// Calls the book follows at once; past this the table is emptied (a lost event can never
/// make it grow without end).
const MAX_BOOK_CALLS: usize = 100_000;
/// Transfer ids read from queue_log and not yet used by their event.
const MAX_TRANSFER_NOTES: usize = 256;
const UNKNOWN: &str = "<unknown>";

// ---------------------------------------------------------------------------------------------
// Event classes

/// An AMI event class (manager.conf `read =` names), as a bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventClass(u32);

impl EventClass {
    pub const SYSTEM: EventClass = EventClass(1);
    pub const CALL: EventClass = EventClass(1 << 1);
    pub const AGENT: EventClass = EventClass(1 << 5);

    /// The `Privilege:` value of an event of this class.
    fn privilege(self) -> &'static str {
        match self {
            EventClass::SYSTEM => "system,all",
            EventClass::CALL => "call,all",
            _ => "agent,all",
        }
    }
}

/// Class names Asterisk knows, with their bits (only some are ever sent by the lab).
const CLASS_NAMES: &[(&str, u32)] = &[
    ("system", 1),
    ("call", 1 << 1),
    ("log", 1 << 2),
    ("verbose", 1 << 3),
    ("command", 1 << 4),
    ("agent", 1 << 5),
    ("user", 1 << 6),
    ("config", 1 << 7),
    ("dtmf", 1 << 8),
    ("reporting", 1 << 9),
    ("cdr", 1 << 10),
    ("dialplan", 1 << 11),
    ("originate", 1 << 12),
    ("agi", 1 << 13),
    ("cc", 1 << 14),
    ("aoc", 1 << 15),
    ("test", 1 << 16),
    ("security", 1 << 17),
    ("message", 1 << 18),
];
const ALL_CLASSES: u32 = u32::MAX;

/// Asterisk's `strings_to_mask`: empty or a true word is every class, a false word none,
/// otherwise a comma-separated list of class names (unknown names count for nothing).
fn parse_event_mask(text: Option<&str>) -> u32 {
    let text = text.map(str::trim).unwrap_or_default();
    let lower = text.to_ascii_lowercase();
    if lower.is_empty() || matches!(lower.as_str(), "yes" | "true" | "y" | "t" | "1" | "on") {
        return ALL_CLASSES;
    }
    if matches!(lower.as_str(), "no" | "false" | "n" | "f" | "0" | "off") {
        return 0;
    }
    lower
        .split(',')
        .map(str::trim)
        .filter_map(|name| {
            if name == "all" {
                return Some(ALL_CLASSES);
            }
            CLASS_NAMES
                .iter()
                .find(|(known, _)| *known == name)
                .map(|(_, bit)| *bit)
        })
        .fold(0, |mask, bit| mask | bit)
}

// ---------------------------------------------------------------------------------------------
// Clock and view

/// The instant of an input and the Unix time it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabClock {
    pub now: Instant,
    /// Unix time at `now`, in microseconds.
    pub now_epoch_micros: u64,
    /// Unix time when the lab started, in microseconds (FullyBooted's Uptime).
    pub started_epoch_micros: u64,
}

impl LabClock {
    /// Whole Unix seconds at `at`, on the same anchor as `now`.
    fn epoch_secs(&self, at: Instant) -> u64 {
        let micros = if at <= self.now {
            self.now_epoch_micros
                .saturating_sub(duration_micros(self.now.saturating_duration_since(at)))
        } else {
            self.now_epoch_micros
                .saturating_add(duration_micros(at.saturating_duration_since(self.now)))
        };
        micros / 1_000_000
    }

    fn uptime_secs(&self) -> u64 {
        self.now_epoch_micros
            .saturating_sub(self.started_epoch_micros)
            / 1_000_000
    }
}

fn duration_micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// What a session reads to answer QueueStatus / QueueSummary: the simulation, the channel
/// names the book gave, and the time. The queue snapshot is taken once, on first use.
pub struct LabView<'a> {
    sim: &'a Simulation,
    book: &'a AmiEventBook,
    clock: LabClock,
    queues: OnceCell<Vec<QueueSnapshot>>,
}

impl<'a> LabView<'a> {
    pub fn new(sim: &'a Simulation, book: &'a AmiEventBook, clock: LabClock) -> Self {
        LabView {
            sim,
            book,
            clock,
            queues: OnceCell::new(),
        }
    }

    pub fn clock(&self) -> LabClock {
        self.clock
    }

    fn queues(&self) -> &[QueueSnapshot] {
        self.queues.get_or_init(|| self.sim.engine().snapshot())
    }
}

/// The interface AMI shows for a lab agent: `Local/<bot>` for bots, `PJSIP/<extension>`
/// otherwise.
pub fn interface_of(sim: &Simulation, agent: &str) -> String {
    if sim.is_bot(agent) {
        format!("Local/{agent}")
    } else {
        format!("PJSIP/{agent}")
    }
}

/// The lab agent an interface names: the part after `TECH/`, up to an `@` or `;`
/// (`PJSIP/101` → `101`, `Local/bot1` → `bot1`). `None` for an empty name.
pub fn agent_of_interface(interface: &str) -> Option<String> {
    let name = interface
        .split_once('/')
        .map_or(interface, |(_, rest)| rest)
        .split(['@', ';'])
        .next()
        .unwrap_or_default()
        .trim();
    (!name.is_empty()).then(|| name.to_owned())
}

// ---------------------------------------------------------------------------------------------
// The event book

/// One live event, formatted once for every session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedEvent {
    pub class: EventClass,
    pub bytes: Vec<u8>,
}

/// The fields Asterisk prints for one channel, with or without a prefix (`Dest`, `Transferee`
/// ...).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ChannelFacts {
    channel: String,
    state: u8,
    caller_num: String,
    caller_name: String,
    connected_num: String,
    connected_name: String,
    context: String,
    exten: String,
    priority: u32,
    uniqueid: String,
    linkedid: String,
}

impl ChannelFacts {
    fn push(&self, message: &mut AmiMessage, prefix: &str) {
        let state_desc = match self.state {
            0 => "Down",
            4 => "Ring",
            5 => "Ringing",
            _ => "Up",
        };
        let field = |name: &str| format!("{prefix}{name}");
        message.push(&field("Channel"), &self.channel);
        message.push(&field("ChannelState"), &self.state.to_string());
        message.push(&field("ChannelStateDesc"), state_desc);
        message.push(&field("CallerIDNum"), &self.caller_num);
        message.push(&field("CallerIDName"), &self.caller_name);
        message.push(&field("ConnectedLineNum"), &self.connected_num);
        message.push(&field("ConnectedLineName"), &self.connected_name);
        message.push(&field("Language"), "en");
        message.push(&field("AccountCode"), "");
        message.push(&field("Context"), &self.context);
        message.push(&field("Exten"), &self.exten);
        message.push(&field("Priority"), &self.priority.to_string());
        message.push(&field("Uniqueid"), &self.uniqueid);
        message.push(&field("Linkedid"), &self.linkedid);
    }
}

#[derive(Debug, Clone)]
struct AgentLeg {
    agent: String,
    interface: String,
    channel: String,
    uniqueid: String,
    state: u8,
}

#[derive(Debug, Clone)]
struct CallFacts {
    channel: String,
    exten: String,
    caller_num: String,
    /// The agent last rung or connected, shown as the caller's connected line.
    connected: Option<String>,
    legs: Vec<AgentLeg>,
    bridge: String,
    hangup_sent: bool,
    /// Left the waiting list without an agent: forgotten at its QueueCallerLeave.
    gone: bool,
}

/// A member as the member events show it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MemberFacts {
    static_member: bool,
    calls_taken: u64,
    last_call: u64,
    last_pause: u64,
    login_time: u64,
    in_call: bool,
    status: u8,
    paused: bool,
    paused_reason: String,
}

impl MemberFacts {
    fn from_snapshot(queue: &QueueSnapshot, agent: &str, clock: &LabClock) -> Option<Self> {
        let member = queue.members.iter().find(|m| m.agent == agent)?;
        Some(MemberFacts {
            static_member: member.static_member,
            calls_taken: member.calls_taken,
            last_call: member.last_call.map_or(0, |at| clock.epoch_secs(at)),
            last_pause: member.last_pause.map_or(0, |at| clock.epoch_secs(at)),
            login_time: clock.epoch_secs(member.login_time),
            in_call: member.state == AgentState::InCall,
            status: device_status(member.state),
            paused: member.paused,
            paused_reason: member.paused_reason.clone(),
        })
    }

    fn new_dynamic(clock: &LabClock) -> Self {
        MemberFacts {
            static_member: false,
            calls_taken: 0,
            last_call: 0,
            last_pause: 0,
            login_time: clock.now_epoch_micros / 1_000_000,
            in_call: false,
            status: 1,
            paused: false,
            paused_reason: String::new(),
        }
    }
}

/// Asterisk's device state number as the captured lab shows it (`device_state_busy_at = 1`):
/// ringing, talking and other calls are BUSY (3); free and wrap-up are NOT_INUSE (1).
fn device_status(state: AgentState) -> u8 {
    match state {
        AgentState::Idle | AgentState::WrapUp => 1,
        AgentState::Ringing | AgentState::InCall | AgentState::Busy => 3,
    }
}

/// Which member event block to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberBlock {
    /// QueueMemberAdded / Removed / Pause / Status.
    Event,
    /// The QueueMember list event of QueueStatus.
    List,
}

fn push_member(
    message: &mut AmiMessage,
    block: MemberBlock,
    queue: &str,
    agent: &str,
    interface: &str,
    facts: &MemberFacts,
) {
    message.push("Queue", queue);
    match block {
        MemberBlock::Event => {
            message.push("MemberName", agent);
            message.push("Interface", interface);
        }
        MemberBlock::List => {
            message.push("Name", agent);
            message.push("Location", interface);
        }
    }
    message.push("StateInterface", interface);
    message.push(
        "Membership",
        if facts.static_member {
            "static"
        } else {
            "dynamic"
        },
    );
    message.push("Penalty", "0");
    message.push("CallsTaken", &facts.calls_taken.to_string());
    message.push("LastCall", &facts.last_call.to_string());
    message.push("LastPause", &facts.last_pause.to_string());
    message.push("LoginTime", &facts.login_time.to_string());
    message.push("InCall", flag(facts.in_call));
    message.push("Status", &facts.status.to_string());
    message.push("Paused", flag(facts.paused));
    message.push("PausedReason", &facts.paused_reason);
    if block == MemberBlock::Event {
        message.push("Ringinuse", "0");
    }
    message.push("Wrapuptime", "0");
}

fn flag(value: bool) -> &'static str {
    if value {
        "1"
    } else {
        "0"
    }
}

/// Turns queue events into AMI events and remembers what they need: channel names and
/// uniqueids of callers and agent legs, bridges, and members that have left.
#[derive(Debug, Clone)]
pub struct AmiEventBook {
    system_name: String,
    calls: HashMap<String, CallFacts>,
    /// Members seen in an event, for the QueueMemberRemoved of one that is gone.
    members: HashMap<(String, String), MemberFacts>,
    /// The Status and Paused last announced per member: Asterisk sends QueueMemberStatus only
    /// when the device state changes (ringing and talking are both BUSY).
    announced: HashMap<(String, String), (u8, bool)>,
    /// Each agent's state as the events so far tell it. The snapshot is taken after a whole
    /// drain, so it may already be ahead of the event being written.
    agent_states: HashMap<String, AgentState>,
    /// Paused and reason per member, as the events so far tell it.
    pauses: HashMap<(String, String), (bool, String)>,
    /// Bridge uniqueid (ATTENDEDTRANSFER) or context (BLINDTRANSFER) by call id, from queue_log.
    transfer_notes: VecDeque<(String, String)>,
    next_channel: u64,
    next_uniqueid: u64,
    bridge_rng: u64,
    last_timestamp: u64,
}

impl AmiEventBook {
    /// `seed` only varies the bridge uniqueids.
    pub fn new(system_name: impl Into<String>, seed: u64) -> Self {
        AmiEventBook {
            system_name: system_name.into(),
            calls: HashMap::new(),
            members: HashMap::new(),
            announced: HashMap::new(),
            agent_states: HashMap::new(),
            pauses: HashMap::new(),
            transfer_notes: VecDeque::new(),
            next_channel: 1,
            next_uniqueid: 1,
            bridge_rng: seed | 1,
            last_timestamp: 0,
        }
    }

    pub fn system_name(&self) -> &str {
        &self.system_name
    }

    /// Calls followed now (for memory checks).
    pub fn calls_followed(&self) -> usize {
        self.calls.len()
    }

    /// Reads the queue_log text written since the last call, for the ids only it carries: the
    /// bridge of an attended transfer and the context of a blind one. Call it before
    /// publishing the events of the same drain.
    pub fn note_queue_log(&mut self, text: &str) {
        for line in text.lines() {
            let Ok(line) = parse_line_ref(line) else {
                continue;
            };
            let value = match line.event.name() {
                // BRIDGE|<uniqueid>|... and <exten>|<context>|...
                "ATTENDEDTRANSFER" | "BLINDTRANSFER" => line.data_field(1),
                _ => None,
            };
            if let Some(value) = value.filter(|v| !v.is_empty() && *v != "NONE") {
                if self.transfer_notes.len() >= MAX_TRANSFER_NOTES {
                    self.transfer_notes.pop_front();
                }
                self.transfer_notes
                    .push_back((line.call_id.to_owned(), value.to_owned()));
            }
        }
    }

    /// The AMI events for a drained batch of queue events, in order. `sim` is read for member
    /// details (calls taken, login time ...) and names; one queue snapshot serves the batch.
    pub fn publish(
        &mut self,
        sim: &Simulation,
        clock: LabClock,
        events: &[QueueEvent],
    ) -> Vec<PublishedEvent> {
        let snapshot: OnceCell<Vec<QueueSnapshot>> = OnceCell::new();
        let mut out = Vec::new();
        for event in events {
            self.publish_one(sim, &clock, &snapshot, event, &mut out);
        }
        out
    }

    fn publish_one(
        &mut self,
        sim: &Simulation,
        clock: &LabClock,
        snapshot: &OnceCell<Vec<QueueSnapshot>>,
        event: &QueueEvent,
        out: &mut Vec<PublishedEvent>,
    ) {
        let queues = || snapshot.get_or_init(|| sim.engine().snapshot());
        match event {
            QueueEvent::AddMember {
                queue,
                agent,
                static_member,
            } => {
                // Asterisk announces no member loaded from its configuration.
                if *static_member {
                    return;
                }
                self.pauses
                    .insert((queue.clone(), agent.clone()), (false, String::new()));
                let facts = self.member_facts(queues(), clock, queue, agent);
                self.member_event(sim, clock, "QueueMemberAdded", queue, agent, &facts, out);
            }
            QueueEvent::RemoveMember { queue, agent } => {
                let key = (queue.clone(), agent.clone());
                let mut facts = self
                    .members
                    .remove(&key)
                    .unwrap_or_else(|| MemberFacts::new_dynamic(clock));
                self.overlay_events(queue, agent, &mut facts);
                self.pauses.remove(&key);
                self.member_event(sim, clock, "QueueMemberRemoved", queue, agent, &facts, out);
            }
            QueueEvent::Pause {
                queue,
                agent,
                reason,
            }
            | QueueEvent::Unpause {
                queue,
                agent,
                reason,
            } => {
                let paused = matches!(event, QueueEvent::Pause { .. });
                self.pauses
                    .insert((queue.clone(), agent.clone()), (paused, reason.clone()));
                let facts = self.member_facts(queues(), clock, queue, agent);
                self.member_event(sim, clock, "QueueMemberPause", queue, agent, &facts, out);
            }
            QueueEvent::MemberStatus {
                queue,
                agent,
                state,
                paused,
            } => {
                self.agent_states.insert(agent.clone(), *state);
                let mut facts = self.member_facts(queues(), clock, queue, agent);
                facts.paused = *paused;
                let key = (queue.clone(), agent.clone());
                if self.announced.get(&key) == Some(&(facts.status, facts.paused)) {
                    return;
                }
                self.member_event(sim, clock, "QueueMemberStatus", queue, agent, &facts, out);
            }
            QueueEvent::PauseAll { .. }
            | QueueEvent::UnpauseAll { .. }
            | QueueEvent::JoinRefused { .. } => {}
            QueueEvent::EnterQueue {
                queue,
                call_id,
                caller_id,
                position,
            } => {
                if self.calls.len() >= MAX_BOOK_CALLS {
                    self.calls.clear();
                }
                let exten = sim
                    .config()
                    .queue(queue)
                    .map(|q| q.extension.clone())
                    .unwrap_or_default();
                let seq = self.next_channel();
                let channel = if sim.is_simulated_call(call_id) {
                    format!("Local/{caller_id}@lab-callers-{seq:08x};2")
                } else {
                    format!("PJSIP/{caller_id}-{seq:08x}")
                };
                let bridge = self.new_bridge_id();
                self.calls.insert(
                    call_id.clone(),
                    CallFacts {
                        channel,
                        exten,
                        caller_num: caller_id.clone(),
                        connected: None,
                        legs: Vec::new(),
                        bridge,
                        hangup_sent: false,
                        gone: false,
                    },
                );
                let mut message = self.header("QueueCallerJoin", EventClass::AGENT, clock);
                self.caller_fields(call_id).push(&mut message, "");
                message.push("Queue", queue);
                message.push("Position", &position.to_string());
                message.push("Count", &position.to_string());
                out.push(published(EventClass::AGENT, &message));
            }
            QueueEvent::CallerLeave {
                queue,
                call_id,
                position,
                count,
            } => {
                let mut message = self.header("QueueCallerLeave", EventClass::AGENT, clock);
                self.caller_fields(call_id).push(&mut message, "");
                message.push("Queue", queue);
                message.push("Position", &position.to_string());
                message.push("Count", &count.to_string());
                out.push(published(EventClass::AGENT, &message));
                if self.calls.get(call_id).is_some_and(|call| call.gone) {
                    self.calls.remove(call_id);
                }
            }
            QueueEvent::AgentCalled {
                queue,
                call_id,
                agent,
                ..
            } => {
                let interface = interface_of(sim, agent);
                let seq = self.next_channel();
                let leg = AgentLeg {
                    agent: agent.clone(),
                    channel: if sim.is_bot(agent) {
                        format!("{interface}-{seq:08x};1")
                    } else {
                        format!("{interface}-{seq:08x}")
                    },
                    interface,
                    uniqueid: self.new_uniqueid(clock),
                    state: 0,
                };
                let mut message = self.header("AgentCalled", EventClass::AGENT, clock);
                self.caller_fields(call_id).push(&mut message, "");
                self.leg_fields(call_id, &leg).push(&mut message, "Dest");
                push_agent(&mut message, queue, &leg);
                out.push(published(EventClass::AGENT, &message));
                if let Some(call) = self.calls.get_mut(call_id) {
                    call.legs.retain(|l| l.agent != *agent);
                    call.legs.push(leg);
                    call.connected = Some(agent.clone());
                }
            }
            QueueEvent::Connect {
                queue,
                call_id,
                agent,
                hold_secs,
                ring_secs,
                ..
            } => {
                if let Some(call) = self.calls.get_mut(call_id) {
                    call.connected = Some(agent.clone());
                    // Other legs of a ringall stop without an event, as in Asterisk.
                    call.legs.retain(|l| l.agent == *agent);
                    for leg in &mut call.legs {
                        leg.state = 6;
                    }
                }
                let leg = self.leg(sim, call_id, agent, 6);
                let mut message = self.header("AgentConnect", EventClass::AGENT, clock);
                self.caller_fields(call_id).push(&mut message, "");
                self.leg_fields(call_id, &leg).push(&mut message, "Dest");
                push_agent(&mut message, queue, &leg);
                message.push("HoldTime", &hold_secs.to_string());
                message.push("RingTime", &ring_secs.to_string());
                out.push(published(EventClass::AGENT, &message));
            }
            QueueEvent::RingNoAnswer {
                queue,
                call_id,
                agent,
                ring_ms,
            } => {
                let leg = self.leg(sim, call_id, agent, 5);
                let mut message = self.header("AgentRingNoAnswer", EventClass::AGENT, clock);
                self.caller_fields(call_id).push(&mut message, "");
                self.leg_fields(call_id, &leg).push(&mut message, "Dest");
                push_agent(&mut message, queue, &leg);
                message.push("RingTime", &ring_ms.to_string());
                out.push(published(EventClass::AGENT, &message));
                self.drop_leg(call_id, agent);
            }
            QueueEvent::RingCanceled { call_id, agent, .. } => {
                // No AMI event of its own: the caller's hang-up comes first.
                self.caller_hangup_request(clock, call_id, out);
                self.drop_leg(call_id, agent);
            }
            QueueEvent::CompleteAgent {
                queue,
                call_id,
                agent,
                hold_secs,
                talk_secs,
                ..
            }
            | QueueEvent::CompleteCaller {
                queue,
                call_id,
                agent,
                hold_secs,
                talk_secs,
                ..
            } => {
                let by_agent = matches!(event, QueueEvent::CompleteAgent { .. });
                let leg = self.leg(sim, call_id, agent, 6);
                if by_agent {
                    let mut message = self.header("HangupRequest", EventClass::CALL, clock);
                    self.leg_fields(call_id, &leg).push(&mut message, "");
                    out.push(published(EventClass::CALL, &message));
                } else {
                    self.caller_hangup_request(clock, call_id, out);
                }
                let mut message = self.header("AgentComplete", EventClass::AGENT, clock);
                self.caller_fields(call_id).push(&mut message, "");
                self.leg_fields(call_id, &leg).push(&mut message, "Dest");
                push_agent(&mut message, queue, &leg);
                message.push("HoldTime", &hold_secs.to_string());
                message.push("TalkTime", &talk_secs.to_string());
                message.push("Reason", if by_agent { "agent" } else { "caller" });
                out.push(published(EventClass::AGENT, &message));
                self.calls.remove(call_id);
            }
            QueueEvent::Abandon {
                queue,
                call_id,
                position,
                orig_position,
                wait_secs,
            }
            | QueueEvent::ExitWithTimeout {
                queue,
                call_id,
                position,
                orig_position,
                wait_secs,
            }
            | QueueEvent::ExitEmpty {
                queue,
                call_id,
                position,
                orig_position,
                wait_secs,
            } => {
                // Only a caller who hangs up has a HangupRequest before the abandon event; the
                // timeout and empty exits are hung up by the dialplan afterwards.
                if matches!(event, QueueEvent::Abandon { .. }) {
                    self.caller_hangup_request(clock, call_id, out);
                }
                let mut message = self.header("QueueCallerAbandon", EventClass::AGENT, clock);
                self.caller_fields(call_id).push(&mut message, "");
                message.push("Queue", queue);
                message.push("Position", &position.to_string());
                message.push("OriginalPosition", &orig_position.to_string());
                message.push("HoldTime", &wait_secs.to_string());
                out.push(published(EventClass::AGENT, &message));
                if let Some(call) = self.calls.get_mut(call_id) {
                    call.gone = true;
                    call.legs.clear();
                }
            }
            QueueEvent::BlindTransfer {
                queue,
                call_id,
                agent,
                target,
                hold_secs,
                talk_secs,
                ..
            } => {
                let context = self
                    .take_transfer_note(call_id)
                    .unwrap_or_else(|| LAB_CONTEXT.to_owned());
                let leg = self.leg(sim, call_id, agent, 6);
                let caller = self.caller_fields(call_id);
                let bridge = self.bridge_of(call_id);
                let mut message = self.header("BlindTransfer", EventClass::CALL, clock);
                message.push("Result", "Success");
                self.leg_fields(call_id, &leg)
                    .push(&mut message, "Transferer");
                caller.push(&mut message, "Transferee");
                push_bridge(&mut message, "", &bridge);
                message.push("IsExternal", "Yes");
                message.push("Context", &context);
                message.push("Extension", target);
                out.push(published(EventClass::CALL, &message));
                // The caller already runs the target extension: no Dest block, Exten moved.
                let mut moved = caller;
                moved.context = context;
                moved.exten = target.clone();
                moved.priority = 1;
                let mut message = self.header("AgentComplete", EventClass::AGENT, clock);
                moved.push(&mut message, "");
                push_agent(&mut message, queue, &leg);
                message.push("HoldTime", &hold_secs.to_string());
                message.push("TalkTime", &talk_secs.to_string());
                message.push("Reason", "transfer");
                out.push(published(EventClass::AGENT, &message));
                self.calls.remove(call_id);
            }
            QueueEvent::AttendedTransfer {
                queue,
                call_id,
                agent,
                target,
                hold_secs,
                talk_secs,
                ..
            } => {
                if let Some(bridge) = self.take_transfer_note(call_id) {
                    if let Some(call) = self.calls.get_mut(call_id) {
                        call.bridge = bridge;
                    }
                }
                let leg = self.leg(sim, call_id, agent, 6);
                let caller = self.caller_fields(call_id);
                let bridge = self.bridge_of(call_id);
                let first = self.leg_fields(call_id, &leg);
                // The consultation call: the agent's second channel and the target's.
                let consult_seq = self.next_channel();
                let target_seq = self.next_channel();
                let consult_id = self.new_uniqueid(clock);
                let target_id = self.new_uniqueid(clock);
                let second_bridge = self.new_bridge_id();
                let second = ChannelFacts {
                    channel: format!("{}-{consult_seq:08x}", leg.interface),
                    state: 6,
                    caller_num: agent.clone(),
                    caller_name: UNKNOWN.to_owned(),
                    connected_num: target.clone(),
                    connected_name: UNKNOWN.to_owned(),
                    context: LAB_CONTEXT.to_owned(),
                    exten: target.clone(),
                    priority: 1,
                    uniqueid: consult_id.clone(),
                    linkedid: consult_id.clone(),
                };
                let target_leg = ChannelFacts {
                    channel: format!("PJSIP/{target}-{target_seq:08x}"),
                    state: 6,
                    caller_num: target.clone(),
                    caller_name: UNKNOWN.to_owned(),
                    connected_num: agent.clone(),
                    connected_name: UNKNOWN.to_owned(),
                    context: LAB_CONTEXT.to_owned(),
                    exten: String::new(),
                    priority: 1,
                    uniqueid: target_id,
                    linkedid: consult_id,
                };
                let mut message = self.header("AttendedTransfer", EventClass::CALL, clock);
                message.push("Result", "Success");
                first.push(&mut message, "OrigTransferer");
                push_bridge(&mut message, "Orig", &bridge);
                second.push(&mut message, "SecondTransferer");
                push_bridge(&mut message, "Second", &second_bridge);
                caller.push(&mut message, "Transferee");
                target_leg.push(&mut message, "TransferTarget");
                message.push("IsExternal", "No");
                message.push("DestType", "Bridge");
                message.push("DestBridgeUniqueid", &bridge);
                out.push(published(EventClass::CALL, &message));
                let mut message = self.header("AgentComplete", EventClass::AGENT, clock);
                caller.push(&mut message, "");
                first.push(&mut message, "Dest");
                push_agent(&mut message, queue, &leg);
                message.push("HoldTime", &hold_secs.to_string());
                message.push("TalkTime", &talk_secs.to_string());
                message.push("Reason", "transfer");
                out.push(published(EventClass::AGENT, &message));
                self.calls.remove(call_id);
            }
        }
    }

    /// `Event`, `Privilege`, `Timestamp` (strictly increasing), `SystemName`.
    fn header(&mut self, name: &str, class: EventClass, clock: &LabClock) -> AmiMessage {
        let stamp = clock
            .now_epoch_micros
            .max(self.last_timestamp.saturating_add(1));
        self.last_timestamp = stamp;
        AmiMessage::event(name)
            .with("Privilege", class.privilege())
            .with("Timestamp", &timestamp_text(stamp))
            .with("SystemName", &self.system_name)
    }

    #[allow(clippy::too_many_arguments)]
    fn member_event(
        &mut self,
        sim: &Simulation,
        clock: &LabClock,
        name: &str,
        queue: &str,
        agent: &str,
        facts: &MemberFacts,
        out: &mut Vec<PublishedEvent>,
    ) {
        let key = (queue.to_owned(), agent.to_owned());
        if name == "QueueMemberRemoved" {
            self.announced.remove(&key);
        } else {
            self.announced.insert(key, (facts.status, facts.paused));
        }
        let mut message = self.header(name, EventClass::AGENT, clock);
        push_member(
            &mut message,
            MemberBlock::Event,
            queue,
            agent,
            &interface_of(sim, agent),
            facts,
        );
        out.push(published(EventClass::AGENT, &message));
    }

    /// The member as the snapshot shows it (remembered for its removal), else as last seen;
    /// device state and pause as the events so far tell them.
    fn member_facts(
        &mut self,
        queues: &[QueueSnapshot],
        clock: &LabClock,
        queue: &str,
        agent: &str,
    ) -> MemberFacts {
        let key = (queue.to_owned(), agent.to_owned());
        let current = queues
            .iter()
            .find(|q| q.name == queue)
            .and_then(|q| MemberFacts::from_snapshot(q, agent, clock));
        let mut facts = match current {
            Some(facts) => {
                self.members.insert(key, facts.clone());
                facts
            }
            None => self
                .members
                .get(&key)
                .cloned()
                .unwrap_or_else(|| MemberFacts::new_dynamic(clock)),
        };
        self.overlay_events(queue, agent, &mut facts);
        facts
    }

    fn overlay_events(&self, queue: &str, agent: &str, facts: &mut MemberFacts) {
        let state = self
            .agent_states
            .get(agent)
            .copied()
            .unwrap_or(AgentState::Idle);
        facts.status = device_status(state);
        facts.in_call = state == AgentState::InCall;
        if let Some((paused, reason)) = self.pauses.get(&(queue.to_owned(), agent.to_owned())) {
            facts.paused = *paused;
            facts.paused_reason = reason.clone();
        }
    }

    fn caller_hangup_request(
        &mut self,
        clock: &LabClock,
        call_id: &str,
        out: &mut Vec<PublishedEvent>,
    ) {
        if self.calls.get(call_id).is_some_and(|call| call.hangup_sent) {
            return;
        }
        let mut message = self.header("HangupRequest", EventClass::CALL, clock);
        self.caller_fields(call_id).push(&mut message, "");
        out.push(published(EventClass::CALL, &message));
        if let Some(call) = self.calls.get_mut(call_id) {
            call.hangup_sent = true;
        }
    }

    /// The caller channel as it is now (a call the book never saw gets placeholder names).
    fn caller_fields(&self, call_id: &str) -> ChannelFacts {
        let call = self.calls.get(call_id);
        let connected = call.and_then(|c| c.connected.clone());
        ChannelFacts {
            channel: call.map_or_else(|| format!("Local/{call_id}"), |c| c.channel.clone()),
            state: 6,
            caller_num: call.map_or_else(|| UNKNOWN.to_owned(), |c| c.caller_num.clone()),
            caller_name: UNKNOWN.to_owned(),
            connected_num: connected.clone().unwrap_or_else(|| UNKNOWN.to_owned()),
            connected_name: UNKNOWN.to_owned(),
            context: LAB_CONTEXT.to_owned(),
            exten: call.map(|c| c.exten.clone()).unwrap_or_default(),
            priority: 1,
            uniqueid: call_id.to_owned(),
            linkedid: call_id.to_owned(),
        }
    }

    fn leg_fields(&self, call_id: &str, leg: &AgentLeg) -> ChannelFacts {
        let call = self.calls.get(call_id);
        ChannelFacts {
            channel: leg.channel.clone(),
            state: leg.state,
            caller_num: leg.agent.clone(),
            caller_name: UNKNOWN.to_owned(),
            connected_num: call.map_or_else(|| UNKNOWN.to_owned(), |c| c.caller_num.clone()),
            connected_name: UNKNOWN.to_owned(),
            context: LAB_CONTEXT.to_owned(),
            exten: call.map(|c| c.exten.clone()).unwrap_or_default(),
            priority: 1,
            uniqueid: leg.uniqueid.clone(),
            linkedid: call_id.to_owned(),
        }
    }

    /// The agent's leg of this call in `state` (made up when the book missed its ring).
    fn leg(&mut self, sim: &Simulation, call_id: &str, agent: &str, state: u8) -> AgentLeg {
        if let Some(leg) = self
            .calls
            .get(call_id)
            .and_then(|call| call.legs.iter().find(|l| l.agent == agent))
        {
            return AgentLeg {
                state,
                ..leg.clone()
            };
        }
        let interface = interface_of(sim, agent);
        let seq = self.next_channel();
        let uniqueid = format!(
            "{}-{}.{}",
            self.system_name,
            self.last_timestamp / 1_000_000,
            self.next_uniqueid
        );
        self.next_uniqueid = self.next_uniqueid.wrapping_add(1);
        AgentLeg {
            agent: agent.to_owned(),
            channel: format!("{interface}-{seq:08x}"),
            interface,
            uniqueid,
            state,
        }
    }

    fn drop_leg(&mut self, call_id: &str, agent: &str) {
        if let Some(call) = self.calls.get_mut(call_id) {
            call.legs.retain(|l| l.agent != agent);
        }
    }

    fn bridge_of(&mut self, call_id: &str) -> String {
        match self.calls.get(call_id) {
            Some(call) => call.bridge.clone(),
            None => self.new_bridge_id(),
        }
    }

    fn take_transfer_note(&mut self, call_id: &str) -> Option<String> {
        let index = self
            .transfer_notes
            .iter()
            .position(|(call, _)| call == call_id)?;
        self.transfer_notes.remove(index).map(|(_, value)| value)
    }

    fn next_channel(&mut self) -> u64 {
        let seq = self.next_channel;
        self.next_channel = self.next_channel.wrapping_add(1);
        seq & 0xFFFF_FFFF
    }

    fn new_uniqueid(&mut self, clock: &LabClock) -> String {
        let id = format!(
            "{}-{}.{}",
            self.system_name,
            clock.now_epoch_micros / 1_000_000,
            self.next_uniqueid
        );
        self.next_uniqueid = self.next_uniqueid.wrapping_add(1);
        id
    }

    /// A uniqueid in the UUID shape of Asterisk's bridges.
    fn new_bridge_id(&mut self) -> String {
        let high = self.next_random();
        let low = self.next_random();
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            high >> 32,
            (high >> 16) & 0xFFFF,
            high & 0xFFFF,
            low >> 48,
            low & 0xFFFF_FFFF_FFFF
        )
    }

    fn next_random(&mut self) -> u64 {
        self.bridge_rng = xorshift(self.bridge_rng);
        self.bridge_rng
    }
}

fn push_agent(message: &mut AmiMessage, queue: &str, leg: &AgentLeg) {
    message.push("Queue", queue);
    message.push("Interface", &leg.interface);
    message.push("MemberName", &leg.agent);
}

fn push_bridge(message: &mut AmiMessage, prefix: &str, bridge: &str) {
    let field = |name: &str| format!("{prefix}{name}");
    message.push(&field("BridgeUniqueid"), bridge);
    message.push(&field("BridgeType"), "basic");
    message.push(&field("BridgeTechnology"), "simple_bridge");
    message.push(&field("BridgeCreator"), UNKNOWN);
    message.push(&field("BridgeName"), UNKNOWN);
    message.push(&field("BridgeNumChannels"), "2");
    message.push(&field("BridgeVideoSourceMode"), "none");
}

fn published(class: EventClass, message: &AmiMessage) -> PublishedEvent {
    PublishedEvent {
        class,
        bytes: message.to_bytes(),
    }
}

/// `secs.micros`, Asterisk's `%ld.%06lu`.
fn timestamp_text(epoch_micros: u64) -> String {
    format!(
        "{}.{:06}",
        epoch_micros / 1_000_000,
        epoch_micros % 1_000_000
    )
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    if x == 0 {
        0x9E37_79B9_7F4A_7C15
    } else {
        x
    }
}

// ---------------------------------------------------------------------------------------------
// Supervisor requests

/// A change a client asked for, to be carried out on the simulation by the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabRequest {
    /// The action's ActionID, echoed in the response.
    pub action_id: Option<String>,
    pub change: MemberChange,
}

/// QueueAdd, QueueRemove or QueuePause, with the interface already turned into the lab agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    Add {
        queue: String,
        agent: String,
        paused: bool,
        reason: Option<String>,
    },
    Remove {
        queue: String,
        agent: String,
    },
    Pause {
        /// `None`: every queue the agent is in.
        queue: Option<String>,
        agent: String,
        paused: bool,
        reason: Option<String>,
    },
}

/// The callid queue_log writes for membership changes made over AMI.
const MANAGER: &str = "MANAGER";

impl LabRequest {
    /// Carries the change out at `now`. `Err` holds Asterisk's own error text for the client.
    pub fn apply(&self, sim: &mut Simulation, now: Instant) -> Result<(), String> {
        match &self.change {
            MemberChange::Add {
                queue,
                agent,
                paused,
                reason,
            } => {
                sim.real_agent_login(now, queue, agent, MANAGER)
                    .map_err(|error| match error {
                        QueueError::AlreadyMember { .. } => {
                            "Unable to add interface: Already there".to_owned()
                        }
                        QueueError::UnknownQueue(_) => {
                            "Unable to add interface to queue: No such queue".to_owned()
                        }
                        other => format!("Unable to add interface: {other}"),
                    })?;
                if *paused {
                    // The member is there: this cannot fail.
                    let _ = sim.pause(now, Some(queue), agent, true, reason.clone());
                }
                Ok(())
            }
            MemberChange::Remove { queue, agent } => sim
                .real_agent_logout(now, queue, agent, MANAGER)
                .map_err(|error| {
                    match error {
                        QueueError::NotMember { .. } => "Unable to remove interface: Not there",
                        QueueError::UnknownQueue(_) => {
                            "Unable to remove interface from queue: No such queue"
                        }
                        QueueError::StaticMember { .. } => "Member not dynamic",
                        _ => "Unable to remove interface: Not there",
                    }
                    .to_owned()
                }),
            MemberChange::Pause {
                queue,
                agent,
                paused,
                reason,
            } => sim
                .pause(now, queue.as_deref(), agent, *paused, reason.clone())
                .map_err(|_| "Interface not found".to_owned()),
        }
    }

    /// The success message Asterisk answers with.
    fn success_text(&self) -> &'static str {
        match &self.change {
            MemberChange::Add { .. } => "Added interface to queue",
            MemberChange::Remove { .. } => "Removed interface from queue",
            MemberChange::Pause { paused: true, .. } => "Interface paused successfully",
            MemberChange::Pause { paused: false, .. } => "Interface unpaused successfully",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The session

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Before a successful login; closed silently at `deadline` (epoch µs).
    LoggedOut {
        deadline: u64,
    },
    /// A failed login: the error goes out at `until`, then the connection closes.
    Penalty {
        until: u64,
        action_id: Option<String>,
    },
    LoggedIn,
    Closed,
}

/// One AMI connection, from the banner to the close.
#[derive(Debug, Clone)]
pub struct AmiSession {
    user: String,
    secret: String,
    framer: AmiFramer,
    transmit: Vec<u8>,
    phase: Phase,
    mask: u32,
    challenge: Option<String>,
    rng: u64,
    /// The request handed to the driver and not answered yet.
    waiting: Option<LabRequest>,
    requests: VecDeque<LabRequest>,
}

impl AmiSession {
    /// A session for a new connection at `now_epoch_micros`; the banner is ready to send.
    /// `challenge_seed` makes the MD5 challenges unpredictable (give it fresh randomness).
    pub fn new(
        user: impl Into<String>,
        secret: impl Into<String>,
        now_epoch_micros: u64,
        challenge_seed: u64,
    ) -> Self {
        let mut transmit = Vec::with_capacity(64);
        transmit.extend_from_slice(AMI_BANNER.as_bytes());
        transmit.extend_from_slice(b"\r\n");
        AmiSession {
            user: user.into(),
            secret: secret.into(),
            framer: AmiFramer::from_client_with_limits(CLIENT_LIMITS),
            transmit,
            phase: Phase::LoggedOut {
                deadline: now_epoch_micros.saturating_add(duration_micros(AUTH_TIMEOUT)),
            },
            mask: 0,
            challenge: None,
            rng: challenge_seed | 1,
            waiting: None,
            requests: VecDeque::new(),
        }
    }

    /// Bytes read from the client (none: go on reading what waited behind a request).
    pub fn handle_bytes(&mut self, view: &LabView<'_>, bytes: &[u8]) {
        if !matches!(self.phase, Phase::LoggedOut { .. } | Phase::LoggedIn) {
            return;
        }
        self.framer.push(bytes);
        self.process(view);
    }

    /// A live event: queued when logged in and the event's class is wanted.
    pub fn handle_event(&mut self, event: &PublishedEvent) {
        if self.phase == Phase::LoggedIn && self.mask & event.class.0 != 0 {
            self.transmit.extend_from_slice(&event.bytes);
        }
    }

    /// The answer to the request last taken from [`AmiSession::poll_request`]: `Ok`, or
    /// Asterisk's error text ([`LabRequest::apply`] gives both). Publish the events the change
    /// caused next, then call `handle_bytes(view, &[])` to read the actions that waited.
    pub fn respond(&mut self, action_id: Option<&str>, result: Result<(), String>) {
        let Some(request) = self.waiting.take() else {
            return;
        };
        if request.action_id.as_deref() != action_id {
            // Not the answer to this request: keep waiting for it.
            self.waiting = Some(request);
            return;
        }
        match result {
            Ok(()) => self.send_response("Success", action_id, request.success_text()),
            Err(text) => self.send_response("Error", action_id, &text),
        }
    }

    /// Timers: the failed-login delay and the login deadline.
    pub fn handle_timeout(&mut self, now_epoch_micros: u64) {
        match &self.phase {
            Phase::Penalty { until, action_id } if now_epoch_micros >= *until => {
                let action_id = action_id.clone();
                self.send_response("Error", action_id.as_deref(), "Authentication failed");
                self.close();
            }
            Phase::LoggedOut { deadline } if now_epoch_micros >= *deadline => self.close(),
            _ => {}
        }
    }

    /// When [`AmiSession::handle_timeout`] is next due (epoch µs).
    pub fn poll_timeout(&self) -> Option<u64> {
        match &self.phase {
            Phase::LoggedOut { deadline } => Some(*deadline),
            Phase::Penalty { until, .. } => Some(*until),
            Phase::LoggedIn | Phase::Closed => None,
        }
    }

    /// Bytes to write to the client.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.transmit.is_empty()).then(|| std::mem::take(&mut self.transmit))
    }

    /// A change for the driver to apply, then answer with [`AmiSession::respond`].
    pub fn poll_request(&mut self) -> Option<LabRequest> {
        let request = self.requests.pop_front()?;
        self.waiting = Some(request.clone());
        Some(request)
    }

    /// Bytes queued and not yet taken by `poll_transmit`.
    pub fn pending_bytes(&self) -> usize {
        self.transmit.len()
    }

    /// Whether the connection is to be closed once the last bytes are written.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    pub fn is_logged_in(&self) -> bool {
        self.phase == Phase::LoggedIn
    }

    fn close(&mut self) {
        self.phase = Phase::Closed;
        self.requests.clear();
        self.waiting = None;
    }

    /// Reads actions until one needs the driver, the session closes or the bytes run out.
    fn process(&mut self, view: &LabView<'_>) {
        while self.waiting.is_none()
            && self.requests.is_empty()
            && matches!(self.phase, Phase::LoggedOut { .. } | Phase::LoggedIn)
        {
            match self.framer.next_item() {
                Ok(Some(AmiItem::Message(message))) => self.handle_action(view, &message),
                Ok(Some(_)) => {}
                Ok(None) => break,
                // A line without a colon or an oversized message: Asterisk drops it too.
                Err(_) => {}
            }
        }
    }

    fn handle_action(&mut self, view: &LabView<'_>, message: &AmiMessage) {
        let action_id = message.action_id().filter(|id| !id.is_empty());
        let name = match message.kind() {
            AmiKind::Action(name) if !name.trim().is_empty() => name.trim().to_owned(),
            _ => {
                self.send_response("Error", action_id, "Missing action in request");
                return;
            }
        };
        let is = |wanted: &str| name.eq_ignore_ascii_case(wanted);
        let logged_in = self.phase == Phase::LoggedIn;
        if !(logged_in || is("Login") || is("Logoff") || is("Challenge")) {
            self.send_response("Error", action_id, "Permission denied");
            return;
        }
        if is("Login") {
            self.login(view, message, action_id);
        } else if is("Challenge") {
            self.challenge(message, action_id);
        } else if is("Logoff") {
            self.send_response("Goodbye", action_id, "Thanks for all the fish.");
            self.close();
        } else if is("Ping") {
            let mut reply = AmiMessage::response("Success");
            push_action_id(&mut reply, action_id);
            reply.push("Ping", "Pong");
            reply.push("Timestamp", &timestamp_text(view.clock.now_epoch_micros));
            reply.write_to(&mut self.transmit);
        } else if is("Events") {
            self.mask = parse_event_mask(message.get("EventMask"));
            let mut reply = AmiMessage::response("Success");
            push_action_id(&mut reply, action_id);
            reply.push("Events", if self.mask == 0 { "Off" } else { "On" });
            reply.write_to(&mut self.transmit);
        } else if is("QueueStatus") {
            self.queue_status(view, message, action_id);
        } else if is("QueueSummary") {
            self.queue_summary(view, message, action_id);
        } else if is("QueueAdd") || is("QueueRemove") || is("QueuePause") {
            match member_change(&name, message) {
                Ok(change) => self.requests.push_back(LabRequest {
                    action_id: action_id.map(str::to_owned),
                    change,
                }),
                Err(text) => self.send_response("Error", action_id, text),
            }
        } else {
            let text = format!(
                "Invalid/unknown command: {name}. Use Action: ListCommands to show available commands."
            );
            self.send_response("Error", action_id, &text);
        }
    }

    fn login(&mut self, view: &LabView<'_>, message: &AmiMessage, action_id: Option<&str>) {
        if self.phase == Phase::LoggedIn {
            self.send_response("Success", action_id, "Already authenticated");
            return;
        }
        let user_ok = message
            .get("Username")
            .is_some_and(|user| user.eq_ignore_ascii_case(&self.user));
        let md5 = message
            .get("AuthType")
            .is_some_and(|kind| kind.eq_ignore_ascii_case("MD5"));
        let secret_ok = if md5 {
            match (&self.challenge, message.get("Key")) {
                (Some(challenge), Some(key)) => verify_md5_key(challenge, &self.secret, key),
                _ => false,
            }
        } else {
            message
                .get("Secret")
                .is_some_and(|secret| same_text(secret, &self.secret))
        };
        if !(user_ok && secret_ok) {
            self.phase = Phase::Penalty {
                until: view
                    .clock
                    .now_epoch_micros
                    .saturating_add(duration_micros(LOGIN_FAILURE_DELAY)),
                action_id: action_id.map(str::to_owned),
            };
            return;
        }
        self.phase = Phase::LoggedIn;
        self.mask = parse_event_mask(message.get("Events"));
        self.send_response("Success", action_id, "Authentication accepted");
        if self.mask & EventClass::SYSTEM.0 != 0 {
            let uptime = view.clock.uptime_secs().to_string();
            AmiMessage::event("FullyBooted")
                .with("Privilege", EventClass::SYSTEM.privilege())
                .with("Uptime", &uptime)
                .with("LastReload", &uptime)
                .with("Status", "Fully Booted")
                .write_to(&mut self.transmit);
        }
    }

    fn challenge(&mut self, message: &AmiMessage, action_id: Option<&str>) {
        let md5 = message
            .get("AuthType")
            .is_some_and(|kind| kind.eq_ignore_ascii_case("MD5"));
        if !md5 {
            self.send_response("Error", action_id, "Must specify AuthType");
            return;
        }
        if self.challenge.is_none() {
            self.rng = xorshift(self.rng);
            // Asterisk's challenge is a random long printed in decimal.
            self.challenge = Some((self.rng >> 33).to_string());
        }
        let mut reply = AmiMessage::response("Success");
        push_action_id(&mut reply, action_id);
        reply.push("Challenge", self.challenge.as_deref().unwrap_or_default());
        reply.write_to(&mut self.transmit);
    }

    fn queue_status(&mut self, view: &LabView<'_>, message: &AmiMessage, action_id: Option<&str>) {
        let queue_filter = message.get("Queue").filter(|q| !q.is_empty());
        let member_filter = message.get("Member").filter(|m| !m.is_empty());
        self.send_list_start(action_id, "Queue status will follow");
        let mut items = 0u64;
        let clock = view.clock;
        for queue in view.queues() {
            if queue_filter.is_some_and(|wanted| wanted != queue.name) {
                continue;
            }
            let mut params = AmiMessage::event("QueueParams");
            params.push("Queue", &queue.name);
            params.push("Max", &queue.max_len.unwrap_or(0).to_string());
            params.push("Strategy", queue.strategy.as_str());
            params.push("Calls", &queue.callers.len().to_string());
            params.push("Holdtime", &queue.stats.avg_hold_secs.to_string());
            params.push("TalkTime", &queue.stats.avg_talk_secs.to_string());
            params.push("Completed", &queue.stats.completed.to_string());
            params.push("Abandoned", &queue.stats.abandoned.to_string());
            params.push("ServiceLevel", "0");
            params.push("ServicelevelPerf", "0.0");
            params.push("ServicelevelPerf2", "0.0");
            params.push("Weight", "0");
            push_action_id(&mut params, action_id);
            params.write_to(&mut self.transmit);
            items += 1;
            for member in &queue.members {
                let interface = interface_of(view.sim, &member.agent);
                if member_filter.is_some_and(|wanted| wanted != interface && wanted != member.agent)
                {
                    continue;
                }
                let Some(facts) = MemberFacts::from_snapshot(queue, &member.agent, &clock) else {
                    continue;
                };
                let mut event = AmiMessage::event("QueueMember");
                push_member(
                    &mut event,
                    MemberBlock::List,
                    &queue.name,
                    &member.agent,
                    &interface,
                    &facts,
                );
                push_action_id(&mut event, action_id);
                event.write_to(&mut self.transmit);
                items += 1;
            }
            for caller in &queue.callers {
                let mut channel = view.book.caller_fields(&caller.call_id);
                if !view.book.calls.contains_key(&caller.call_id) {
                    channel.caller_num = caller.caller_id.clone();
                    channel.connected_num = caller
                        .ringing
                        .last()
                        .cloned()
                        .unwrap_or_else(|| UNKNOWN.to_owned());
                }
                let mut event = AmiMessage::event("QueueEntry");
                event.push("Queue", &queue.name);
                event.push("Position", &caller.position.to_string());
                event.push("Channel", &channel.channel);
                event.push("Uniqueid", &channel.uniqueid);
                event.push("CallerIDNum", &channel.caller_num);
                event.push("CallerIDName", &channel.caller_name);
                event.push("ConnectedLineNum", &channel.connected_num);
                event.push("ConnectedLineName", &channel.connected_name);
                event.push("Wait", &caller.wait(clock.now).as_secs().to_string());
                event.push("Priority", "0");
                push_action_id(&mut event, action_id);
                event.write_to(&mut self.transmit);
                items += 1;
            }
        }
        self.send_list_complete("QueueStatusComplete", action_id, items);
    }

    fn queue_summary(&mut self, view: &LabView<'_>, message: &AmiMessage, action_id: Option<&str>) {
        let queue_filter = message.get("Queue").filter(|q| !q.is_empty());
        self.send_list_start(action_id, "Queue summary will follow");
        let mut items = 0u64;
        let now = view.clock.now;
        for queue in view.queues() {
            if queue_filter.is_some_and(|wanted| wanted != queue.name) {
                continue;
            }
            let available = queue
                .members
                .iter()
                .filter(|m| !m.paused && m.state == AgentState::Idle)
                .count();
            let longest = queue
                .callers
                .iter()
                .map(|c| c.wait(now).as_secs())
                .max()
                .unwrap_or(0);
            let mut event = AmiMessage::event("QueueSummary");
            event.push("Queue", &queue.name);
            event.push("LoggedIn", &queue.members.len().to_string());
            event.push("Available", &available.to_string());
            event.push("Callers", &queue.callers.len().to_string());
            event.push("HoldTime", &queue.stats.avg_hold_secs.to_string());
            event.push("TalkTime", &queue.stats.avg_talk_secs.to_string());
            event.push("LongestHoldTime", &longest.to_string());
            push_action_id(&mut event, action_id);
            event.write_to(&mut self.transmit);
            items += 1;
        }
        self.send_list_complete("QueueSummaryComplete", action_id, items);
    }

    fn send_response(&mut self, status: &str, action_id: Option<&str>, text: &str) {
        let mut reply = AmiMessage::response(status);
        push_action_id(&mut reply, action_id);
        reply.push("Message", text);
        reply.write_to(&mut self.transmit);
    }

    fn send_list_start(&mut self, action_id: Option<&str>, text: &str) {
        let mut reply = AmiMessage::response("Success");
        push_action_id(&mut reply, action_id);
        reply.push("EventList", "start");
        reply.push("Message", text);
        reply.write_to(&mut self.transmit);
    }

    fn send_list_complete(&mut self, name: &str, action_id: Option<&str>, items: u64) {
        let mut event = AmiMessage::event(name);
        push_action_id(&mut event, action_id);
        event.push("EventList", "Complete");
        event.push("ListItems", &items.to_string());
        event.write_to(&mut self.transmit);
    }
}

fn push_action_id(message: &mut AmiMessage, action_id: Option<&str>) {
    if let Some(id) = action_id {
        message.push("ActionID", id);
    }
}

/// Compares without stopping at the first difference.
fn same_text(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// Asterisk's true words for `Paused:` (`ast_true`).
fn is_true(text: Option<&str>) -> bool {
    text.map(|t| t.trim().to_ascii_lowercase())
        .is_some_and(|t| matches!(t.as_str(), "yes" | "true" | "y" | "t" | "1" | "on"))
}

/// Reads QueueAdd / QueueRemove / QueuePause, with Asterisk's errors for missing fields.
fn member_change(name: &str, message: &AmiMessage) -> Result<MemberChange, &'static str> {
    let field = |key: &str| message.get(key).map(str::trim).filter(|v| !v.is_empty());
    let reason = field("Reason").map(str::to_owned);
    if name.eq_ignore_ascii_case("QueueAdd") {
        let queue = field("Queue").ok_or("'Queue' not specified.")?;
        let interface = field("Interface").ok_or("'Interface' not specified.")?;
        let agent = agent_of_interface(interface).ok_or("'Interface' not specified.")?;
        Ok(MemberChange::Add {
            queue: queue.to_owned(),
            agent,
            paused: is_true(field("Paused")),
            reason,
        })
    } else if name.eq_ignore_ascii_case("QueueRemove") {
        let (Some(queue), Some(interface)) = (field("Queue"), field("Interface")) else {
            return Err("Need 'Queue' and 'Interface' parameters.");
        };
        let agent =
            agent_of_interface(interface).ok_or("Need 'Queue' and 'Interface' parameters.")?;
        Ok(MemberChange::Remove {
            queue: queue.to_owned(),
            agent,
        })
    } else {
        let (Some(interface), Some(paused)) = (field("Interface"), field("Paused")) else {
            return Err("Need 'Interface' and 'Paused' parameters.");
        };
        let agent =
            agent_of_interface(interface).ok_or("Need 'Interface' and 'Paused' parameters.")?;
        Ok(MemberChange::Pause {
            queue: field("Queue").map(str::to_owned),
            agent,
            paused: is_true(Some(paused)),
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::config::LabConfig;
    use crate::queue::ami::{md5_key, QueueAmiEvent};
    use std::path::PathBuf;

    /// Unix time of the harness's t0, in µs.
    const EPOCH_MICROS: u64 = 1_795_259_540_000_000;
    const USER: &str = "console";
    const SECRET: &str = "console-ami-secret";

    /// One session wired to a quiet simulation (no callers, no bots) the way the driver wires
    /// it: requests applied, responses, then the events the change caused.
    struct Harness {
        sim: Simulation,
        book: AmiEventBook,
        session: AmiSession,
        t0: Instant,
        elapsed: Duration,
        out: Vec<u8>,
    }

    impl Harness {
        fn new() -> Self {
            let mut config = LabConfig::default();
            config.simulation.callers_per_minute = 0.0;
            config.simulation.bots = 0;
            let mut sim = Simulation::new(config, 7);
            let t0 = Instant::now();
            sim.set_wall_clock(t0, Duration::from_micros(EPOCH_MICROS));
            sim.start(t0);
            let mut harness = Harness {
                sim,
                book: AmiEventBook::new(LAB_SYSTEM_NAME, 7),
                session: AmiSession::new(USER, SECRET, EPOCH_MICROS, 42),
                t0,
                elapsed: Duration::ZERO,
                out: Vec::new(),
            };
            harness.pump();
            harness
        }

        fn clock(&self) -> LabClock {
            LabClock {
                now: self.t0 + self.elapsed,
                now_epoch_micros: EPOCH_MICROS + duration_micros(self.elapsed),
                started_epoch_micros: EPOCH_MICROS,
            }
        }

        fn now(&self) -> Instant {
            self.t0 + self.elapsed
        }

        /// Publishes what the simulation did and collects what the session sends.
        fn pump(&mut self) {
            let _ = self.sim.poll_queue_log();
            while self.sim.poll_action().is_some() {}
            let mut events = Vec::new();
            while let Some(event) = self.sim.poll_event() {
                events.push(event);
            }
            let clock = self.clock();
            for event in self.book.publish(&self.sim, clock, &events) {
                self.session.handle_event(&event);
            }
            while let Some(bytes) = self.session.poll_transmit() {
                self.out.extend_from_slice(&bytes);
            }
        }

        fn feed(&mut self, bytes: &[u8]) {
            let mut input = bytes;
            loop {
                let clock = self.clock();
                self.session
                    .handle_bytes(&LabView::new(&self.sim, &self.book, clock), input);
                input = &[];
                let Some(request) = self.session.poll_request() else {
                    break;
                };
                let result = request.apply(&mut self.sim, clock.now);
                self.session.respond(request.action_id.as_deref(), result);
                self.pump();
            }
            self.pump();
        }

        fn advance(&mut self, by: Duration) {
            self.elapsed += by;
            let now = self.now();
            self.sim.handle_timeout(now);
            self.session.handle_timeout(self.clock().now_epoch_micros);
            self.pump();
        }

        fn take_messages(&mut self) -> Vec<AmiMessage> {
            let bytes = std::mem::take(&mut self.out);
            messages(&bytes, false)
        }
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/asterisk/ami")
            .join(name);
        std::fs::read(path).expect("fixture")
    }

    /// The messages of a server stream (after its banner when `banner`) or of a client's.
    fn messages(bytes: &[u8], banner: bool) -> Vec<AmiMessage> {
        let mut framer = if banner {
            AmiFramer::from_server()
        } else {
            AmiFramer::from_client()
        };
        framer.push(bytes);
        let mut out = Vec::new();
        while let Some(item) = framer.next_item().expect("well framed") {
            if let AmiItem::Message(message) = item {
                out.push(message);
            }
        }
        out
    }

    /// Events the lab writes; the fixtures' other events (Newchannel, DeviceStateChange ...)
    /// are left out of the comparison.
    const LAB_EVENTS: &[&str] = &[
        "FullyBooted",
        "QueueParams",
        "QueueMember",
        "QueueEntry",
        "QueueStatusComplete",
        "QueueSummary",
        "QueueSummaryComplete",
        "QueueMemberAdded",
        "QueueMemberRemoved",
        "QueueMemberPause",
        "QueueMemberStatus",
    ];

    fn keys(message: &AmiMessage) -> Vec<&str> {
        message.fields.iter().map(|(k, _)| k.as_str()).collect()
    }

    /// Same messages in the same order: the same keys, and for responses the same values
    /// (but the timestamp and challenge, which differ by nature).
    fn assert_same_shape(ours: &[AmiMessage], theirs: &[AmiMessage]) {
        let theirs: Vec<&AmiMessage> = theirs
            .iter()
            .filter(|m| match m.kind() {
                AmiKind::Event(name) => LAB_EVENTS.contains(&name),
                _ => true,
            })
            .collect();
        let summary = |list: Vec<&AmiMessage>| -> Vec<String> {
            list.iter()
                .map(|m| {
                    m.fields
                        .first()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .unwrap_or_default()
                })
                .collect()
        };
        assert_eq!(
            ours.len(),
            theirs.len(),
            "ours {:?}\ntheirs {:?}",
            summary(ours.iter().collect()),
            summary(theirs.clone())
        );
        for (mine, real) in ours.iter().zip(theirs) {
            assert_eq!(keys(mine), keys(real), "{mine}\nvs\n{real}");
            if matches!(real.kind(), AmiKind::Response(_)) {
                for (key, value) in &real.fields {
                    if key == "Timestamp" || key == "Challenge" {
                        continue;
                    }
                    assert_eq!(mine.get(key), Some(value.as_str()), "{key} in\n{mine}");
                }
            } else {
                assert_eq!(mine.get("Event"), real.get("Event"));
            }
        }
    }

    #[test]
    fn plain_login_ping_and_logoff_match_the_capture() {
        let mut lab = Harness::new();
        assert!(lab.out.starts_with(b"Asterisk Call Manager/11.0.0\r\n"));
        lab.out.drain(..30);
        lab.feed(&fixture("login-plain.client.txt"));
        let ours = lab.take_messages();
        assert_same_shape(&ours, &messages(&fixture("login-plain.server.txt"), true));
        // Ping's timestamp is the session's clock, in Asterisk's `%ld.%06lu`.
        assert_eq!(ours[1].get("Timestamp"), Some("1795259540.000000"));
        assert!(lab.session.is_closed());
    }

    #[test]
    fn md5_login_is_accepted_and_fully_booted_follows() {
        let mut lab = Harness::new();
        lab.out.clear();
        lab.feed(b"Action: Challenge\r\nAuthType: MD5\r\nActionID: md5-challenge-1\r\n\r\n");
        let challenge = lab.take_messages()[0]
            .get("Challenge")
            .expect("challenge")
            .to_owned();
        assert!(challenge.parse::<u64>().is_ok(), "{challenge}");
        let login = format!(
            "Action: Login\r\nAuthType: MD5\r\nUsername: console\r\nKey: {}\r\nEvents: on\r\nActionID: md5-login-2\r\n\r\nAction: Logoff\r\nActionID: md5-logoff-3\r\n\r\n",
            md5_key(&challenge, SECRET)
        );
        lab.feed(
            &[
                b"Action: Challenge\r\nAuthType: MD5\r\nActionID: md5-challenge-1\r\n\r\n"
                    .as_slice(),
                login.as_bytes(),
            ]
            .concat(),
        );
        let ours = lab.take_messages();
        assert_eq!(ours[0].get("Challenge"), Some(challenge.as_str()), "kept");
        assert_same_shape(&ours, &messages(&fixture("login-md5.server.txt"), true));
        assert_eq!(ours[2].get("Privilege"), Some("system,all"));
    }

    #[test]
    fn a_wrong_secret_is_refused_after_a_second_and_the_connection_closes() {
        let mut lab = Harness::new();
        lab.out.clear();
        lab.feed(&fixture("login-failed.client.txt"));
        assert!(lab.out.is_empty(), "nothing before the penalty");
        assert_eq!(lab.session.poll_timeout(), Some(EPOCH_MICROS + 1_000_000));
        lab.advance(Duration::from_millis(999));
        assert!(lab.out.is_empty());
        lab.advance(Duration::from_millis(1));
        let ours = lab.take_messages();
        assert_same_shape(&ours, &messages(&fixture("login-failed.server.txt"), true));
        assert!(lab.session.is_closed());
        // Nothing more is read on a refused connection.
        lab.feed(b"Action: Ping\r\n\r\n");
        assert!(lab.out.is_empty());
    }

    #[test]
    fn a_wrong_md5_key_and_a_key_without_challenge_are_refused() {
        for client in [
            "Action: Challenge\r\nAuthType: md5\r\n\r\nAction: Login\r\nAuthType: MD5\r\nUsername: console\r\nKey: 00000000000000000000000000000000\r\n\r\n",
            "Action: Login\r\nAuthType: MD5\r\nUsername: console\r\nKey: 384faa4f1c0dba84da6662b7a532d779\r\n\r\n",
            "Action: Login\r\nUsername: someone\r\nSecret: console-ami-secret\r\n\r\n",
        ] {
            let mut lab = Harness::new();
            lab.out.clear();
            lab.feed(client.as_bytes());
            lab.advance(LOGIN_FAILURE_DELAY);
            let last = lab.take_messages().pop().expect("an answer");
            assert_eq!(last.get("Message"), Some("Authentication failed"), "{client}");
            assert!(lab.session.is_closed());
        }
    }

    #[test]
    fn actions_before_login_are_denied_and_unknown_ones_named() {
        let mut lab = Harness::new();
        lab.out.clear();
        lab.feed(b"Action: QueueStatus\r\nActionID: early\r\n\r\nActionID: none\r\n\r\nAction: Challenge\r\nAuthType: plain\r\n\r\n");
        let ours = lab.take_messages();
        let texts: Vec<_> = ours
            .iter()
            .map(|m| m.get("Message").unwrap_or_default())
            .collect();
        assert_eq!(
            texts,
            [
                "Permission denied",
                "Missing action in request",
                "Must specify AuthType"
            ]
        );
        assert_eq!(ours[0].get("ActionID"), Some("early"));
        lab.feed(b"Action: Login\r\nUsername: console\r\nSecret: console-ami-secret\r\nEvents: off\r\n\r\nAction: Originate\r\nActionID: o1\r\n\r\nAction: Login\r\nUsername: console\r\nSecret: x\r\n\r\n");
        let ours = lab.take_messages();
        assert_eq!(ours.len(), 3, "no FullyBooted with events off");
        assert_eq!(
            ours[1].get("Message"),
            Some("Invalid/unknown command: Originate. Use Action: ListCommands to show available commands.")
        );
        assert_eq!(ours[1].get("Response"), Some("Error"));
        assert_eq!(ours[2].get("Message"), Some("Already authenticated"));
    }

    #[test]
    fn an_idle_connection_without_login_is_closed_after_the_auth_timeout() {
        let mut lab = Harness::new();
        lab.advance(AUTH_TIMEOUT - Duration::from_millis(1));
        assert!(!lab.session.is_closed());
        lab.advance(Duration::from_millis(1));
        assert!(lab.session.is_closed());
        assert_eq!(lab.session.poll_timeout(), None);
    }

    #[test]
    fn event_masks_follow_asterisk() {
        let agent = EventClass::AGENT.0;
        let call = EventClass::CALL.0;
        let system = EventClass::SYSTEM.0;
        assert_eq!(parse_event_mask(None), ALL_CLASSES);
        assert_eq!(parse_event_mask(Some("on")), ALL_CLASSES);
        assert_eq!(parse_event_mask(Some("Yes")), ALL_CLASSES);
        assert_eq!(parse_event_mask(Some("off")), 0);
        assert_eq!(parse_event_mask(Some("agent")), agent);
        assert_eq!(parse_event_mask(Some("call, Agent")), agent | call);
        assert_eq!(parse_event_mask(Some("system,bogus")), system);
        assert_eq!(parse_event_mask(Some("bogus")), 0);
    }

    /// Logs the harness in with `events`.
    fn logged_in(events: &str) -> Harness {
        let mut lab = Harness::new();
        lab.feed(
            format!("Action: Login\r\nUsername: console\r\nSecret: {SECRET}\r\nEvents: {events}\r\n\r\n")
                .as_bytes(),
        );
        lab.out.clear();
        lab
    }

    #[test]
    fn supervisor_actions_match_the_capture_response_then_event() {
        let mut lab = Harness::new();
        lab.out.clear();
        lab.feed(&fixture("events-l-ami-member-actions.client.txt"));
        let ours = lab.take_messages();
        assert_same_shape(
            &ours,
            &messages(&fixture("events-l-ami-member-actions.server.txt"), true),
        );
        let added = ours
            .iter()
            .find(|m| m.get("Event") == Some("QueueMemberAdded"))
            .expect("added");
        assert_eq!(added.get("Interface"), Some("PJSIP/agent2"));
        assert_eq!(added.get("MemberName"), Some("agent2"));
        assert_eq!(added.get("Membership"), Some("dynamic"));
        assert_eq!(added.get("LoginTime"), Some("1795259540"));
        let paused = ours
            .iter()
            .find(|m| m.get("Event") == Some("QueueMemberPause"))
            .expect("pause");
        assert_eq!(paused.get("Paused"), Some("1"));
        assert_eq!(paused.get("PausedReason"), Some("supervisor-hold"));
        assert_eq!(paused.get("LastPause"), Some("1795259540"));
    }

    #[test]
    fn pause_in_every_queue_matches_the_capture() {
        let mut lab = Harness::new();
        let now = lab.now();
        lab.sim
            .real_agent_login(now, "support", "agent1", "MANAGER")
            .expect("login");
        lab.pump();
        lab.out.clear();
        lab.feed(&fixture("events-k2-pause-ami.client.txt"));
        let ours = lab.take_messages();
        assert_same_shape(
            &ours,
            &messages(&fixture("events-k2-pause-ami.server.txt"), true),
        );
        let unpause = ours
            .iter()
            .rev()
            .find(|m| m.get("Event") == Some("QueueMemberPause"));
        assert_eq!(unpause.and_then(|m| m.get("Paused")), Some("0"));
        assert_eq!(unpause.and_then(|m| m.get("PausedReason")), Some(""));
    }

    #[test]
    fn member_actions_refuse_with_asterisk_texts() {
        let mut lab = logged_in("off");
        lab.feed(
            b"Action: QueueAdd\r\nQueue: nosuch\r\nInterface: PJSIP/101\r\nActionID: a\r\n\r\n\
              Action: QueueAdd\r\nInterface: PJSIP/101\r\nActionID: b\r\n\r\n\
              Action: QueueAdd\r\nQueue: support\r\nActionID: c\r\n\r\n\
              Action: QueueRemove\r\nQueue: support\r\nActionID: d\r\n\r\n\
              Action: QueueRemove\r\nQueue: nosuch\r\nInterface: PJSIP/101\r\nActionID: e\r\n\r\n\
              Action: QueuePause\r\nInterface: PJSIP/101\r\nActionID: f\r\n\r\n\
              Action: QueueAdd\r\nQueue: support\r\nInterface: PJSIP/101\r\nPaused: yes\r\nReason: training\r\nActionID: g\r\n\r\n\
              Action: QueueStatus\r\nQueue: support\r\nActionID: h\r\n\r\n",
        );
        let ours = lab.take_messages();
        let texts: Vec<_> = ours
            .iter()
            .take(7)
            .map(|m| m.get("Message").unwrap_or_default())
            .collect();
        assert_eq!(
            texts,
            [
                "Unable to add interface to queue: No such queue",
                "'Queue' not specified.",
                "'Interface' not specified.",
                "Need 'Queue' and 'Interface' parameters.",
                "Unable to remove interface from queue: No such queue",
                "Need 'Interface' and 'Paused' parameters.",
                "Added interface to queue",
            ]
        );
        // The added member is paused, and the list after it shows so.
        let member = ours
            .iter()
            .find(|m| m.get("Event") == Some("QueueMember"))
            .expect("member listed");
        assert_eq!(member.get("Location"), Some("PJSIP/101"));
        assert_eq!(member.get("Paused"), Some("1"));
        assert_eq!(member.get("PausedReason"), Some("training"));
    }

    #[test]
    fn queue_status_and_summary_lists_have_the_captured_shape() {
        let mut lab = logged_in("off");
        let now = lab.now();
        for agent in ["agent1", "agent2"] {
            lab.sim
                .real_agent_login(now, "support", agent, "MANAGER")
                .expect("login");
        }
        lab.sim
            .pause(
                now,
                Some("support"),
                "agent2",
                true,
                Some("coffee-break".into()),
            )
            .expect("pause");
        lab.sim
            .real_caller_join(now, "support", "ringside-lab-1795259646.22", "caller1")
            .expect("join");
        lab.pump();
        lab.advance(Duration::from_secs(2));
        lab.out.clear();
        lab.feed(b"Action: QueueStatus\r\nActionID: qs-1\r\n\r\nAction: QueueSummary\r\nActionID: qsum-1\r\n\r\n");
        let ours = lab.take_messages();
        let theirs: Vec<AmiMessage> = messages(&fixture("queuestatus.server.txt"), true)
            .into_iter()
            .chain(messages(&fixture("queuesummary.server.txt"), true))
            .collect();
        // Every kind of message has the captured keys in the captured order.
        for mine in &ours {
            let name = mine
                .get("Event")
                .or(mine.get("EventList"))
                .unwrap_or_default();
            let real = theirs
                .iter()
                .find(|m| {
                    m.get("Event").or(m.get("EventList")).unwrap_or_default() == name
                        && m.get("Response") == mine.get("Response")
                })
                .unwrap_or_else(|| panic!("no captured {name}"));
            assert_eq!(keys(mine), keys(real), "{mine}");
        }
        let entry = ours
            .iter()
            .find(|m| m.get("Event") == Some("QueueEntry"))
            .expect("entry");
        assert_eq!(entry.get("Uniqueid"), Some("ringside-lab-1795259646.22"));
        assert_eq!(entry.get("ConnectedLineNum"), Some("agent1"), "being rung");
        assert_eq!(entry.get("Wait"), Some("2"));
        let complete = ours
            .iter()
            .find(|m| m.get("Event") == Some("QueueStatusComplete"))
            .expect("complete");
        // support: params, 2 members, 1 entry; sales: params.
        assert_eq!(complete.get("ListItems"), Some("5"));
        let summary = ours
            .iter()
            .find(|m| m.get("Event") == Some("QueueSummary"))
            .expect("summary");
        assert_eq!(summary.get("LoggedIn"), Some("2"));
        assert_eq!(
            summary.get("Available"),
            Some("0"),
            "agent1 rings, agent2 paused"
        );
        assert_eq!(summary.get("LongestHoldTime"), Some("2"));
        for message in &ours {
            assert!(QueueAmiEvent::from_message(message).is_ok(), "{message}");
        }
    }

    /// Event names (and `Reason` of AgentComplete) of the live events the session sent.
    fn timeline(messages: &[AmiMessage]) -> Vec<String> {
        messages
            .iter()
            .filter_map(|m| {
                let name = m.get("Event")?;
                Some(match m.get("Reason") {
                    Some(reason) => format!("{name}:{reason}"),
                    None => name.to_owned(),
                })
            })
            .collect()
    }

    #[test]
    fn a_call_rings_out_then_is_answered_and_the_caller_hangs_up() {
        let mut lab = logged_in("on");
        let now = lab.now();
        lab.sim
            .real_agent_login(now, "support", "101", "MANAGER")
            .expect("login");
        lab.sim
            .real_caller_join(now, "support", "call-1", "+3225550100")
            .expect("join");
        lab.pump();
        lab.advance(Duration::from_secs(15));
        lab.advance(Duration::from_secs(5));
        let now = lab.now();
        lab.sim
            .agent_answered(now, "call-1", "101", "leg-1")
            .expect("answer");
        lab.pump();
        lab.advance(Duration::from_secs(4));
        let now = lab.now();
        lab.sim.call_ended(now, "call-1", false);
        lab.pump();
        let ours = lab.take_messages();
        assert_eq!(
            timeline(&ours),
            [
                "QueueMemberAdded",
                "QueueCallerJoin",
                "AgentCalled",
                "QueueMemberStatus",
                "AgentRingNoAnswer",
                "QueueMemberStatus",
                "AgentCalled",
                "QueueMemberStatus",
                "QueueCallerLeave",
                "AgentConnect",
                "HangupRequest",
                "AgentComplete:caller",
                "QueueMemberStatus",
            ]
        );
        let find = |name: &str| {
            ours.iter()
                .find(|m| m.get("Event") == Some(name))
                .expect(name)
        };
        assert_eq!(find("AgentRingNoAnswer").get("RingTime"), Some("15000"));
        assert_eq!(find("AgentRingNoAnswer").get("DestChannelState"), Some("5"));
        let connect = find("AgentConnect");
        assert_eq!(connect.get("HoldTime"), Some("20"));
        assert_eq!(connect.get("RingTime"), Some("0"));
        assert_eq!(connect.get("Interface"), Some("PJSIP/101"));
        assert_eq!(connect.get("Uniqueid"), Some("call-1"));
        assert_eq!(connect.get("CallerIDNum"), Some("+3225550100"));
        let called = ours
            .iter()
            .rfind(|m| m.get("Event") == Some("AgentCalled"))
            .expect("called");
        assert_eq!(connect.get("DestUniqueid"), called.get("DestUniqueid"));
        assert_eq!(connect.get("DestChannel"), called.get("DestChannel"));
        let complete = find("AgentComplete");
        assert_eq!(complete.get("TalkTime"), Some("4"));
        assert_eq!(complete.get("HoldTime"), Some("20"));
        assert_eq!(find("HangupRequest").get("Uniqueid"), Some("call-1"));
        assert_eq!(find("HangupRequest").get("Privilege"), Some("call,all"));
        let status = ours
            .iter()
            .rfind(|m| m.get("Event") == Some("QueueMemberStatus"))
            .expect("status");
        assert_eq!(status.get("CallsTaken"), Some("1"));
        assert_eq!(status.get("LastCall"), Some("1795259564"));
        assert_eq!(status.get("Status"), Some("1"));
        // Timestamps rise strictly, even within one drain.
        let stamps: Vec<&str> = ours.iter().filter_map(|m| m.get("Timestamp")).collect();
        assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
        assert_eq!(
            lab.book.calls_followed(),
            0,
            "the finished call is forgotten"
        );
    }

    /// A caller who hangs up in `support` after 4 s, and one who times out in `sales` after
    /// 10 s, seen by a session logged in with `events`.
    fn abandon_and_timeout(events: &str) -> Vec<AmiMessage> {
        let mut lab = logged_in(events);
        let mut config = LabConfig::default();
        config.simulation.callers_per_minute = 0.0;
        config.simulation.bots = 0;
        if let Some(queue) = config.queues.iter_mut().find(|q| q.queue.name == "sales") {
            queue.queue.max_wait = Some(Duration::from_secs(10));
        }
        lab.sim = Simulation::new(config, 7);
        lab.sim
            .set_wall_clock(lab.t0, Duration::from_micros(EPOCH_MICROS));
        lab.sim.start(lab.t0);
        let now = lab.now();
        lab.sim
            .real_agent_login(now, "support", "101", "MANAGER")
            .expect("login");
        lab.sim
            .real_caller_join(now, "support", "quits", "100")
            .expect("join");
        lab.sim
            .real_caller_join(now, "sales", "times-out", "200")
            .expect("join");
        lab.pump();
        lab.advance(Duration::from_secs(4));
        let now = lab.now();
        lab.sim.caller_hangup(now, "quits");
        lab.pump();
        lab.advance(Duration::from_secs(6));
        lab.take_messages()
    }

    #[test]
    fn only_a_real_abandon_has_a_hangup_request_and_classes_filter() {
        let ours = abandon_and_timeout("agent,call");
        let all = timeline(&ours);
        assert_eq!(
            all,
            [
                "QueueMemberAdded",
                "QueueCallerJoin",
                "AgentCalled",
                "QueueMemberStatus",
                "QueueCallerJoin",
                "HangupRequest",
                "QueueCallerAbandon",
                "QueueCallerLeave",
                "QueueMemberStatus",
                "QueueCallerAbandon",
                "QueueCallerLeave",
            ]
        );
        let abandons: Vec<&AmiMessage> = ours
            .iter()
            .filter(|m| m.get("Event") == Some("QueueCallerAbandon"))
            .collect();
        assert_eq!(abandons[0].get("HoldTime"), Some("4"));
        assert_eq!(abandons[1].get("HoldTime"), Some("10"));
        assert_eq!(abandons[1].get("Queue"), Some("sales"));
        assert_eq!(abandons[1].get("OriginalPosition"), Some("1"));
        // `Events: agent` leaves out exactly the call-class event.
        let agent_only = timeline(&abandon_and_timeout("agent"));
        let without_call: Vec<String> = all.into_iter().filter(|e| e != "HangupRequest").collect();
        assert_eq!(agent_only, without_call);
        assert_eq!(timeline(&abandon_and_timeout("call")), ["HangupRequest"]);
    }

    #[test]
    fn transfers_are_announced_as_asterisk_does() {
        let mut lab = logged_in("on");
        let now = lab.now();
        lab.sim
            .real_agent_login(now, "support", "101", "MANAGER")
            .expect("login");
        for call in ["blind", "attended"] {
            lab.sim
                .real_caller_join(now, "support", call, "100")
                .expect("join");
        }
        lab.pump();
        lab.advance(Duration::from_secs(1));
        let now = lab.now();
        lab.sim
            .agent_answered(now, "blind", "101", "leg")
            .expect("answer");
        lab.pump();
        lab.advance(Duration::from_secs(2));
        let now = lab.now();
        lab.sim.transferred(
            now,
            "blind",
            crate::lab::sim::Transfer::Blind {
                target: "1002",
                context: "lab",
            },
        );
        let text = lab.sim.poll_queue_log();
        lab.book.note_queue_log(&text);
        lab.pump();
        // After the wrap-up, 101 rings for the second caller.
        lab.advance(Duration::from_secs(11));
        let now = lab.now();
        lab.sim
            .agent_answered(now, "attended", "101", "leg2")
            .expect("answer");
        lab.pump();
        let now = lab.now();
        lab.sim.transferred(
            now,
            "attended",
            crate::lab::sim::Transfer::Attended {
                target: "1003",
                bridge: "03575afb-bad5-4209-b224-321cda7d81f0",
            },
        );
        let text = lab.sim.poll_queue_log();
        lab.book.note_queue_log(&text);
        lab.pump();
        let ours = lab.take_messages();
        let real = messages(&fixture("events-i-blindtransfer.server.txt"), true)
            .into_iter()
            .chain(messages(
                &fixture("events-j-attendedtransfer.server.txt"),
                true,
            ))
            .collect::<Vec<_>>();
        for name in ["BlindTransfer", "AttendedTransfer"] {
            let mine = ours
                .iter()
                .find(|m| m.get("Event") == Some(name))
                .expect(name);
            let theirs = real
                .iter()
                .find(|m| m.get("Event") == Some(name))
                .expect(name);
            assert_eq!(keys(mine), keys(theirs), "{name}");
        }
        let completes: Vec<&AmiMessage> = ours
            .iter()
            .filter(|m| m.get("Reason") == Some("transfer"))
            .collect();
        assert_eq!(completes.len(), 2);
        assert_eq!(
            completes[0].get("DestChannel"),
            None,
            "blind: no Dest block"
        );
        assert_eq!(completes[0].get("Exten"), Some("1002"));
        assert!(
            completes[1].get("DestChannel").is_some(),
            "attended keeps it"
        );
        let attended = ours
            .iter()
            .find(|m| m.get("Event") == Some("AttendedTransfer"))
            .expect("attended");
        assert_eq!(
            attended.get("DestBridgeUniqueid"),
            Some("03575afb-bad5-4209-b224-321cda7d81f0"),
            "the bridge queue_log names"
        );
        assert_eq!(attended.get("TransfereeUniqueid"), Some("attended"));
        let blind = ours
            .iter()
            .find(|m| m.get("Event") == Some("BlindTransfer"))
            .expect("blind");
        assert_eq!(blind.get("Extension"), Some("1002"));
        assert_eq!(blind.get("Context"), Some("lab"));
        assert_eq!(blind.get("TransfereeUniqueid"), Some("blind"));
    }

    #[test]
    fn interfaces_name_the_agent() {
        assert_eq!(agent_of_interface("PJSIP/101").as_deref(), Some("101"));
        assert_eq!(
            agent_of_interface("Local/bot1@lab;1").as_deref(),
            Some("bot1")
        );
        assert_eq!(agent_of_interface("101").as_deref(), Some("101"));
        assert_eq!(agent_of_interface("PJSIP/"), None);
        assert_eq!(agent_of_interface(""), None);
    }

    #[test]
    fn garbage_and_oversized_input_never_panics_nor_grows() {
        let mut lab = logged_in("on");
        let junk: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        lab.feed(&junk);
        lab.feed(b"\r\n\r\nAction: Ping\r\nActionID: after\r\n\r\n");
        let ours = lab.take_messages();
        assert!(ours
            .iter()
            .any(|m| m.get("ActionID") == Some("after") && m.get("Ping") == Some("Pong")));
    }
}
