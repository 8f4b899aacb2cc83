//! The lab PBX's call-queue engine: Asterisk app_queue semantics as a sans-IO state machine.
//!
//! The SIP B2BUA drives it. It reports what happened on the call legs (`caller_join`,
//! `agent_answered`, `call_ended`, ...), calls `handle_timeout` when `poll_timeout` says so, and
//! after every input drains `poll_action` (ring or stop ringing an agent, hang up a caller) and
//! `poll_event` (everything that goes to queue_log and AMI). The engine never touches SIP, sockets
//! or the clock: every input carries `now`, and randomness comes from the seed given to `new`.
//!
//! Behaviour follows the Axivox queue settings in the product seeds and Asterisk 22, whose real
//! output is in `shared/fixtures/asterisk` (the tests replay several of those captures):
//! - callers are served in arrival order; with several agents free, several callers ring at once
//!   (Asterisk's `autofill = yes`), the earliest caller choosing first;
//! - an agent is offered a call when it is a member, not paused, not busy on another call, not in
//!   wrap-up and not already ringing for someone (`ringinuse = no`);
//! - each attempt rings for `ring_timeout`, ends with RINGNOANSWER, and the caller's next attempt
//!   starts `retry` later; the attempt is cut short when the caller's maximum wait runs out first;
//! - "empty" means no member that is not paused, as Asterisk's `joinempty = no` and
//!   `leavewhenempty = yes` map to `penalty,paused,invalid`;
//! - one deliberate difference: leastrecent, fewestcalls and random skip the agents that already
//!   let this caller ring out until every available agent has been tried ("maximum duration of
//!   ringing at an agent ... then the next"), where Asterisk would ring the same best agent again.
//!
//! Seconds (hold, talk, wait) are whole seconds like Asterisk's `time(NULL)` differences when the
//! driver gives the wall clock with [`QueueEngine::set_wall_clock`], otherwise truncated elapsed
//! time. Ring times are measured in milliseconds.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// How a queue picks the agents to ring. Names and semantics are Asterisk's; the seeds' (Axivox)
/// labels are:
///
/// | variant | Asterisk | Axivox label |
/// |---|---|---|
/// | `RingAll` | `ringall` | Call all available agents |
/// | `LeastRecent` | `leastrecent` | Calls the agent who has received the call for the longest time (longest idle) |
/// | `FewestCalls` | `fewestcalls` | Calls the agent who has received the least call |
/// | `Random` | `random` | Call a random agent |
/// | `RrMemory` | `rrmemory` | Call agents one after the other (order remembered across calls) |
/// | `Linear` | `linear` | Call agents one after the other starting with the first in the list |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Ring every available member at once; the first to answer wins.
    RingAll,
    /// Ring the member whose last queue call ended longest ago (never called comes first).
    LeastRecent,
    /// Ring the member who completed the fewest calls from this queue.
    FewestCalls,
    /// Ring a member picked at random.
    Random,
    /// Ring members in list order, continuing after the last member rung, across callers.
    RrMemory,
    /// Ring members in list order, starting from the first for every caller.
    Linear,
}

impl Strategy {
    /// Every strategy, in the order Asterisk documents them.
    pub const ALL: [Strategy; 6] = [
        Strategy::RingAll,
        Strategy::LeastRecent,
        Strategy::FewestCalls,
        Strategy::Random,
        Strategy::RrMemory,
        Strategy::Linear,
    ];

    /// The Asterisk `strategy =` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RingAll => "ringall",
            Strategy::LeastRecent => "leastrecent",
            Strategy::FewestCalls => "fewestcalls",
            Strategy::Random => "random",
            Strategy::RrMemory => "rrmemory",
            Strategy::Linear => "linear",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = QueueError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let name = name.trim();
        Strategy::ALL
            .into_iter()
            .find(|strategy| strategy.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| QueueError::UnknownStrategy(name.to_owned()))
    }
}

/// One queue's settings (Asterisk `queues.conf` names in brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Queue name, as used in queue_log and AMI.
    pub name: String,
    /// How agents are picked (`strategy`).
    pub strategy: Strategy,
    /// Longest a caller waits before leaving with EXITWITHTIMEOUT (the `Queue()` timeout);
    /// `None` waits forever.
    pub max_wait: Option<Duration>,
    /// How long one agent rings per attempt (`timeout`); zero rings until the caller's
    /// maximum wait runs out, as Asterisk's `timeout = 0` does.
    pub ring_timeout: Duration,
    /// Pause between a caller's attempts (`retry`).
    pub retry: Duration,
    /// Rest after a queue call before the agent is offered another (`wrapuptime`).
    pub wrapup: Duration,
    /// Let callers in while no member is logged in and unpaused (`joinempty = yes`).
    pub join_empty: bool,
    /// Send waiting callers away once no member is logged in and unpaused (`leavewhenempty`).
    pub leave_when_empty: bool,
    /// Most callers waiting at once (`maxlen`); `None` is unlimited (Asterisk's `maxlen = 0`).
    pub max_len: Option<usize>,
}

impl QueueConfig {
    /// A queue with Asterisk's defaults: 15 s ring time, 5 s retry, no wrap-up, callers may join
    /// an empty queue and stay, no length or wait limit.
    pub fn new(name: impl Into<String>, strategy: Strategy) -> Self {
        QueueConfig {
            name: name.into(),
            strategy,
            max_wait: None,
            ring_timeout: Duration::from_secs(15),
            retry: Duration::from_secs(5),
            wrapup: Duration::ZERO,
            join_empty: true,
            leave_when_empty: false,
            max_len: None,
        }
    }
}

/// What went wrong with a queue command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// A strategy name that Asterisk does not know.
    #[error(
        "unknown queue strategy `{0}`: use ringall, leastrecent, fewestcalls, random, rrmemory or linear"
    )]
    UnknownStrategy(String),
    /// The queue name is not configured.
    #[error("no queue named `{0}`: add it to the lab configuration first")]
    UnknownQueue(String),
    /// The agent is already in the queue.
    #[error(
        "agent `{agent}` is already a member of queue `{queue}`: remove it before adding it again"
    )]
    AlreadyMember {
        /// Queue name.
        queue: String,
        /// Agent name.
        agent: String,
    },
    /// The agent is not in the queue.
    #[error("agent `{agent}` is not a member of queue `{queue}`: log it in to the queue first")]
    NotMember {
        /// Queue name.
        queue: String,
        /// Agent name.
        agent: String,
    },
    /// An all-queues pause for an agent that is in no queue.
    #[error("agent `{0}` is not a member of any queue: log it in to a queue first")]
    NotInAnyQueue(String),
    /// Static members are always logged in.
    #[error(
        "agent `{agent}` is a static member of queue `{queue}` and cannot log out: remove it from the configuration instead"
    )]
    StaticMember {
        /// Queue name.
        queue: String,
        /// Agent name.
        agent: String,
    },
    /// The call id is already waiting or connected.
    #[error("call `{0}` is already in a queue: give every queue call its own call id")]
    DuplicateCall(String),
    /// An answer for an offer that has already ended (timed out, canceled, answered elsewhere).
    #[error(
        "agent `{agent}` is not being rung for call `{call_id}`: the offer ended first, so hang up the agent's leg"
    )]
    NotRinging {
        /// Caller's call id.
        call_id: String,
        /// Agent name.
        agent: String,
    },
}

/// The answer to a caller knocking at a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    /// The caller waits at this position (1 is next). With `leave_when_empty` and an empty queue
    /// the caller is sent away at once, as Asterisk does: ExitEmpty and a Hangup action follow.
    Joined {
        /// Position in the queue, 1-based.
        position: usize,
    },
    /// The caller was not let in; no EnterQueue was logged.
    Refused(RefuseReason),
}

/// Why a caller was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseReason {
    /// `join_empty = false` and no member is logged in and unpaused (queue_log JOINEMPTY).
    Empty,
    /// `max_len` callers are already waiting (queue_log FULL).
    Full,
}

/// Why the engine sends a caller out of the queue; the driver applies the queue's fallback
/// (hang up, or voicemail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupReason {
    /// The maximum wait ran out.
    Timeout,
    /// No member left to answer (`leave_when_empty`).
    Empty,
}

/// What the B2BUA must do on the call legs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueAction {
    /// Start ringing the agent for this caller.
    Ring {
        /// Queue name.
        queue: String,
        /// Caller's call id.
        call_id: String,
        /// Caller id to present to the agent.
        caller_id: String,
        /// Agent to ring.
        agent: String,
    },
    /// Stop ringing the agent (CANCEL its leg): rang out, answered elsewhere, caller gone.
    /// Not sent after `agent_rejected`, whose leg has already ended.
    StopRinging {
        /// Caller's call id.
        call_id: String,
        /// Agent being rung.
        agent: String,
    },
    /// Take the caller out of the queue and apply the queue's fallback.
    Hangup {
        /// Caller's call id.
        call_id: String,
        /// Why the caller leaves.
        reason: HangupReason,
    },
}

/// An agent's device as the queues see it (AMI `QueueMemberStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgentState {
    /// Free for queue calls (unless paused, which is per queue).
    #[default]
    Idle,
    /// Being rung for a queue caller.
    Ringing,
    /// Talking to a queue caller.
    InCall,
    /// On a call that did not come from a queue.
    Busy,
    /// Resting after a queue call.
    WrapUp,
}

/// Everything that goes to queue_log and AMI. Times follow Asterisk: seconds for hold, talk,
/// wait and the CONNECT ring time, milliseconds for RINGNOANSWER and RINGCANCELED.
/// Positions are 1-based; `orig_position` is the position at EnterQueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueEvent {
    /// A member joined (queue_log ADDMEMBER, AMI QueueMemberAdded). Asterisk logs nothing for
    /// static members loaded from its configuration, hence `static_member`.
    AddMember {
        /// Queue name.
        queue: String,
        /// Agent name.
        agent: String,
        /// Static (always logged in) or dynamic (logged in by code).
        static_member: bool,
    },
    /// A dynamic member left (REMOVEMEMBER, QueueMemberRemoved); static members cannot leave.
    RemoveMember {
        /// Queue name.
        queue: String,
        /// Agent name.
        agent: String,
    },
    /// Pause in every queue, logged before the per-queue Pause lines (PAUSEALL, queue NONE).
    PauseAll {
        /// Agent name.
        agent: String,
        /// Reason, possibly empty.
        reason: String,
    },
    /// Unpause in every queue, before the per-queue Unpause lines (UNPAUSEALL, queue NONE).
    UnpauseAll {
        /// Agent name.
        agent: String,
        /// Reason, possibly empty.
        reason: String,
    },
    /// PAUSE, QueueMemberPause with Paused 1.
    Pause {
        /// Queue name.
        queue: String,
        /// Agent name.
        agent: String,
        /// Reason, possibly empty.
        reason: String,
    },
    /// UNPAUSE, QueueMemberPause with Paused 0 (Asterisk carries the unpause reason too).
    Unpause {
        /// Queue name.
        queue: String,
        /// Agent name.
        agent: String,
        /// Reason, possibly empty.
        reason: String,
    },
    /// The agent's device state changed (AMI QueueMemberStatus), once per queue it is in.
    MemberStatus {
        /// Queue name.
        queue: String,
        /// Agent name.
        agent: String,
        /// New state.
        state: AgentState,
        /// Paused in this queue.
        paused: bool,
    },
    /// A caller was turned away at the door (JOINEMPTY or FULL); no EnterQueue precedes it.
    JoinRefused {
        /// Queue name.
        queue: String,
        /// Caller's call id.
        call_id: String,
        /// Caller id number.
        caller_id: String,
        /// Why.
        reason: RefuseReason,
    },
    /// ENTERQUEUE (url empty, caller id, position); AMI QueueCallerJoin, whose Count equals the
    /// position because callers always join at the end.
    EnterQueue {
        /// Queue name.
        queue: String,
        /// Caller's call id.
        call_id: String,
        /// Caller id number.
        caller_id: String,
        /// Position, 1-based.
        position: usize,
    },
    /// AMI QueueCallerLeave: the caller left the waiting list (connected, abandoned, sent away).
    CallerLeave {
        /// Queue name.
        queue: String,
        /// Caller's call id.
        call_id: String,
        /// Position the caller had.
        position: usize,
        /// Callers still waiting.
        count: usize,
    },
    /// AMI AgentCalled: an agent starts ringing for the caller.
    AgentCalled {
        /// Queue name.
        queue: String,
        /// Caller's call id.
        call_id: String,
        /// Caller id number.
        caller_id: String,
        /// Agent rung.
        agent: String,
    },
    /// CONNECT (holdtime, agent leg uniqueid from the driver, ringtime); AMI AgentConnect.
    Connect {
        /// Queue name.
        queue: String,
        /// Caller's call id.
        call_id: String,
        /// Agent who answered.
        agent: String,
        /// Seconds from EnterQueue to the answer.
        hold_secs: u64,
        /// Seconds this agent rang before answering.
        ring_secs: u64,
        /// Position at EnterQueue.
        orig_position: usize,
    },
    /// RINGNOANSWER (ms); AMI AgentRingNoAnswer. Also ends rings stopped by the engine
    /// (maximum wait reached, member removed, queue emptied).
    RingNoAnswer {
        /// Queue name.
        queue: String,
        /// Caller's call id.
        call_id: String,
        /// Agent who did not answer.
        agent: String,
        /// How long it rang, in ms.
        ring_ms: u64,
    },
    /// RINGCANCELED (ms): the caller hung up while this agent rang; Abandon follows.
    RingCanceled {
        /// Queue name.
        queue: String,
        /// Caller's call id.
        call_id: String,
        /// Agent being rung.
        agent: String,
        /// How long it rang, in ms.
        ring_ms: u64,
    },
    /// COMPLETEAGENT (holdtime, calltime, origposition); AgentComplete Reason agent.
    CompleteAgent {
        /// Queue name.
        queue: String,
        /// Caller's call id.
        call_id: String,
        /// Agent.
        agent: String,
        /// Seconds waited before the answer.
        hold_secs: u64,
        /// Seconds talked.
        talk_secs: u64,
        /// Position at EnterQueue.
        orig_position: usize,
    },
    /// COMPLETECALLER (holdtime, calltime, origposition); AgentComplete Reason caller.
    CompleteCaller {
        /// Queue name.
        queue: String,
        /// Caller's call id.
        call_id: String,
        /// Agent.
        agent: String,
        /// Seconds waited before the answer.
        hold_secs: u64,
        /// Seconds talked.
        talk_secs: u64,
        /// Position at EnterQueue.
        orig_position: usize,
    },
    /// ABANDON (position, origposition, waittime); AMI QueueCallerAbandon.
    Abandon {
        /// Queue name.
        queue: String,
        /// Caller's call id.
        call_id: String,
        /// Position when the caller left.
        position: usize,
        /// Position at EnterQueue.
        orig_position: usize,
        /// Seconds waited.
        wait_secs: u64,
    },
    /// EXITWITHTIMEOUT (position, origposition, waittime); AMI shows QueueCallerAbandon.
    ExitWithTimeout {
        /// Queue name.
        queue: String,
        /// Caller's call id.
        call_id: String,
        /// Position when the caller left.
        position: usize,
        /// Position at EnterQueue.
        orig_position: usize,
        /// Seconds waited.
        wait_secs: u64,
    },
    /// EXITEMPTY (position, origposition, waittime); AMI shows QueueCallerAbandon.
    ExitEmpty {
        /// Queue name.
        queue: String,
        /// Caller's call id.
        call_id: String,
        /// Position when the caller left.
        position: usize,
        /// Position at EnterQueue.
        orig_position: usize,
        /// Seconds waited.
        wait_secs: u64,
    },
    /// BLINDTRANSFER (extension, context from the driver, holdtime, calltime, origposition);
    /// AgentComplete Reason transfer.
    BlindTransfer {
        /// Queue name.
        queue: String,
        /// Caller's call id.
        call_id: String,
        /// Transferring agent.
        agent: String,
        /// Where the caller went (the Refer-To user part).
        target: String,
        /// Seconds waited before the answer.
        hold_secs: u64,
        /// Seconds talked.
        talk_secs: u64,
        /// Position at EnterQueue.
        orig_position: usize,
    },
    /// ATTENDEDTRANSFER (BRIDGE, bridge uniqueid from the driver, holdtime, calltime,
    /// origposition); AgentComplete Reason transfer.
    AttendedTransfer {
        /// Queue name.
        queue: String,
        /// Caller's call id.
        call_id: String,
        /// Transferring agent.
        agent: String,
        /// Who took the caller over.
        target: String,
        /// Seconds waited before the answer.
        hold_secs: u64,
        /// Seconds talked.
        talk_secs: u64,
        /// Position at EnterQueue.
        orig_position: usize,
    },
}

impl QueueEvent {
    /// The queue_log verb, or `None` for events that only go to AMI.
    pub fn verb(&self) -> Option<&'static str> {
        Some(match self {
            QueueEvent::AddMember { .. } => "ADDMEMBER",
            QueueEvent::RemoveMember { .. } => "REMOVEMEMBER",
            QueueEvent::PauseAll { .. } => "PAUSEALL",
            QueueEvent::UnpauseAll { .. } => "UNPAUSEALL",
            QueueEvent::Pause { .. } => "PAUSE",
            QueueEvent::Unpause { .. } => "UNPAUSE",
            QueueEvent::JoinRefused {
                reason: RefuseReason::Empty,
                ..
            } => "JOINEMPTY",
            QueueEvent::JoinRefused {
                reason: RefuseReason::Full,
                ..
            } => "FULL",
            QueueEvent::EnterQueue { .. } => "ENTERQUEUE",
            QueueEvent::Connect { .. } => "CONNECT",
            QueueEvent::RingNoAnswer { .. } => "RINGNOANSWER",
            QueueEvent::RingCanceled { .. } => "RINGCANCELED",
            QueueEvent::CompleteAgent { .. } => "COMPLETEAGENT",
            QueueEvent::CompleteCaller { .. } => "COMPLETECALLER",
            QueueEvent::Abandon { .. } => "ABANDON",
            QueueEvent::ExitWithTimeout { .. } => "EXITWITHTIMEOUT",
            QueueEvent::ExitEmpty { .. } => "EXITEMPTY",
            QueueEvent::BlindTransfer { .. } => "BLINDTRANSFER",
            QueueEvent::AttendedTransfer { .. } => "ATTENDEDTRANSFER",
            QueueEvent::MemberStatus { .. }
            | QueueEvent::CallerLeave { .. }
            | QueueEvent::AgentCalled { .. } => return None,
        })
    }

    /// The caller's call id, for events about one call.
    pub fn call_id(&self) -> Option<&str> {
        match self {
            QueueEvent::JoinRefused { call_id, .. }
            | QueueEvent::EnterQueue { call_id, .. }
            | QueueEvent::CallerLeave { call_id, .. }
            | QueueEvent::AgentCalled { call_id, .. }
            | QueueEvent::Connect { call_id, .. }
            | QueueEvent::RingNoAnswer { call_id, .. }
            | QueueEvent::RingCanceled { call_id, .. }
            | QueueEvent::CompleteAgent { call_id, .. }
            | QueueEvent::CompleteCaller { call_id, .. }
            | QueueEvent::Abandon { call_id, .. }
            | QueueEvent::ExitWithTimeout { call_id, .. }
            | QueueEvent::ExitEmpty { call_id, .. }
            | QueueEvent::BlindTransfer { call_id, .. }
            | QueueEvent::AttendedTransfer { call_id, .. } => Some(call_id),
            QueueEvent::AddMember { .. }
            | QueueEvent::RemoveMember { .. }
            | QueueEvent::PauseAll { .. }
            | QueueEvent::UnpauseAll { .. }
            | QueueEvent::Pause { .. }
            | QueueEvent::Unpause { .. }
            | QueueEvent::MemberStatus { .. } => None,
        }
    }
}

/// Per-queue counters (AMI QueueParams).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Calls answered and then completed or transferred.
    pub completed: u64,
    /// Abandons, timeouts and empty exits together, as Asterisk's `Abandoned` counts them.
    pub abandoned: u64,
    /// Asterisk's running hold-time average: (3 × old + new) / 4, in seconds.
    pub avg_hold_secs: u64,
    /// The same running average for talk time, in seconds.
    pub avg_talk_secs: u64,
}

/// One queue as seen now (AMI QueueStatus / QueueSummary, the dashboard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSnapshot {
    /// Queue name.
    pub name: String,
    /// Strategy.
    pub strategy: Strategy,
    /// Length limit.
    pub max_len: Option<usize>,
    /// Counters.
    pub stats: QueueStats,
    /// Waiting callers, position 1 first.
    pub callers: Vec<CallerSnapshot>,
    /// Members in the order they were added.
    pub members: Vec<MemberSnapshot>,
}

/// A waiting caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerSnapshot {
    /// Caller's call id.
    pub call_id: String,
    /// Caller id number.
    pub caller_id: String,
    /// Position, 1-based.
    pub position: usize,
    /// Position at EnterQueue.
    pub orig_position: usize,
    /// When the caller joined.
    pub joined_at: Instant,
    /// Agents ringing for this caller right now.
    pub ringing: Vec<String>,
}

impl CallerSnapshot {
    /// How long the caller has waited at `now`.
    pub fn wait(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.joined_at)
    }
}

/// A queue member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSnapshot {
    /// Agent name.
    pub agent: String,
    /// Static (always logged in) or dynamic.
    pub static_member: bool,
    /// Device state.
    pub state: AgentState,
    /// The queue call it rings for or talks to, in any queue.
    pub current_call: Option<String>,
    /// Paused in this queue.
    pub paused: bool,
    /// Reason given with the last pause or unpause.
    pub paused_reason: String,
    /// When it was last paused.
    pub last_pause: Option<Instant>,
    /// Calls from this queue it completed.
    pub calls_taken: u64,
    /// When its last queue call ended (any queue, as with Asterisk's `shared_lastcall`).
    pub last_call: Option<Instant>,
    /// When it joined the queue.
    pub login_time: Instant,
}

#[derive(Debug, Clone)]
struct Member {
    agent: String,
    static_member: bool,
    paused: bool,
    paused_reason: String,
    last_pause: Option<Instant>,
    login_time: Instant,
    calls_taken: u64,
}

#[derive(Debug, Clone)]
struct Attempt {
    agent: String,
    started: Instant,
    /// `None` rings until the caller leaves (ring timeout zero).
    ends_at: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Caller {
    call_id: String,
    caller_id: String,
    arrival: u64,
    joined_at: Instant,
    orig_position: usize,
    gives_up_at: Option<Instant>,
    attempts: Vec<Attempt>,
    retry_at: Option<Instant>,
    /// `linear`: index of the member to try next for this caller.
    linear_next: usize,
    /// leastrecent/fewestcalls/random: agents that rang out for this caller in this round.
    tried: Vec<String>,
}

#[derive(Debug, Clone)]
struct Queue {
    config: QueueConfig,
    members: Vec<Member>,
    waiting: Vec<Caller>,
    /// `rrmemory`: index of the member to try next, shared by all callers.
    rr_next: usize,
    stats: QueueStats,
}

impl Queue {
    fn member_index(&self, agent: &str) -> Option<usize> {
        self.members.iter().position(|m| m.agent == agent)
    }

    fn caller_index(&self, call_id: &str) -> Option<usize> {
        self.waiting.iter().position(|c| c.call_id == call_id)
    }

    /// Asterisk's "empty" for joinempty=no / leavewhenempty=yes: nobody logged in and unpaused.
    fn is_empty(&self) -> bool {
        self.members.iter().all(|m| m.paused)
    }
}

#[derive(Debug, Clone, Default)]
struct Agent {
    busy: bool,
    ringing_for: Option<String>,
    in_call: Option<String>,
    wrapup_until: Option<Instant>,
    last_call_end: Option<Instant>,
    reported: AgentState,
}

impl Agent {
    /// Not busy, not ringing, not talking, not in wrap-up (pause is per queue, checked apart).
    fn can_take_a_call(&self) -> bool {
        !self.busy
            && self.ringing_for.is_none()
            && self.in_call.is_none()
            && self.wrapup_until.is_none()
    }

    fn state(&self) -> AgentState {
        if self.in_call.is_some() {
            AgentState::InCall
        } else if self.ringing_for.is_some() {
            AgentState::Ringing
        } else if self.busy {
            AgentState::Busy
        } else if self.wrapup_until.is_some() {
            AgentState::WrapUp
        } else {
            AgentState::Idle
        }
    }
}

#[derive(Debug, Clone)]
struct ConnectedCall {
    queue: usize,
    agent: String,
    joined_at: Instant,
    answered_at: Instant,
    orig_position: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RingEnd {
    /// Rang out, or stopped by the engine: RingNoAnswer plus StopRinging.
    NoAnswer,
    /// The agent's leg failed (busy, declined): RingNoAnswer only.
    Rejected,
    /// The caller hung up: RingCanceled plus StopRinging.
    CallerGone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Departure {
    Abandon,
    Timeout,
    Empty,
}

/// xorshift64*: small, seedable and good enough to spread calls over agents.
#[derive(Debug, Clone)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // Zero is xorshift's fixed point; any other constant seed will do.
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..bound`; `bound` must not be zero.
    fn below(&mut self, bound: usize) -> usize {
        let bound = u64::try_from(bound).unwrap_or(u64::MAX).max(1);
        usize::try_from(self.next_u64() % bound).unwrap_or(0)
    }
}

/// The queues and agents of the lab PBX. See the module documentation for the contract.
#[derive(Debug, Clone)]
pub struct QueueEngine {
    queues: Vec<Queue>,
    agents: BTreeMap<String, Agent>,
    /// Call id → index of the queue it waits in.
    waiting_in: HashMap<String, usize>,
    connected: HashMap<String, ConnectedCall>,
    next_arrival: u64,
    rng: XorShift,
    wall_clock: Option<(Instant, Duration)>,
    actions: VecDeque<QueueAction>,
    events: VecDeque<QueueEvent>,
}

impl QueueEngine {
    /// An engine with no queues; `seed` drives the `random` strategy.
    pub fn new(seed: u64) -> Self {
        QueueEngine {
            queues: Vec::new(),
            agents: BTreeMap::new(),
            waiting_in: HashMap::new(),
            connected: HashMap::new(),
            next_arrival: 0,
            rng: XorShift::new(seed),
            wall_clock: None,
            actions: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Tie the monotonic clock to the wall clock (`since_epoch` was the Unix time at `at`), so
    /// hold, talk and wait seconds are differences of whole Unix seconds, exactly as Asterisk
    /// computes them. Without it they are truncated elapsed time.
    pub fn set_wall_clock(&mut self, at: Instant, since_epoch: Duration) {
        self.wall_clock = Some((at, since_epoch));
    }

    /// Add a queue, or replace the settings of the queue with that name (members and callers
    /// stay; new settings apply to the next attempts and joins).
    pub fn add_queue(&mut self, config: QueueConfig) {
        match self
            .queues
            .iter_mut()
            .find(|q| q.config.name == config.name)
        {
            Some(queue) => queue.config = config,
            None => self.queues.push(Queue {
                config,
                members: Vec::new(),
                waiting: Vec::new(),
                rr_next: 0,
                stats: QueueStats::default(),
            }),
        }
    }

    /// Log an agent in to a queue. Static members are the configured ones, always logged in;
    /// dynamic members logged in with the connection code (*600) or by a supervisor.
    pub fn add_member(
        &mut self,
        now: Instant,
        queue: &str,
        agent: &str,
        static_member: bool,
    ) -> Result<(), QueueError> {
        let qi = self.queue_index(queue)?;
        if self.queues[qi].member_index(agent).is_some() {
            return Err(QueueError::AlreadyMember {
                queue: queue.to_owned(),
                agent: agent.to_owned(),
            });
        }
        self.queues[qi].members.push(Member {
            agent: agent.to_owned(),
            static_member,
            paused: false,
            paused_reason: String::new(),
            last_pause: None,
            login_time: now,
            calls_taken: 0,
        });
        self.agents.entry(agent.to_owned()).or_default();
        self.events.push_back(QueueEvent::AddMember {
            queue: queue.to_owned(),
            agent: agent.to_owned(),
            static_member,
        });
        self.settle(now);
        Ok(())
    }

    /// Log a dynamic agent out of a queue (disconnection code *601, or a supervisor). A ring in
    /// progress for this queue stops; a call in progress goes on and is still reported.
    pub fn remove_member(
        &mut self,
        now: Instant,
        queue: &str,
        agent: &str,
    ) -> Result<(), QueueError> {
        let qi = self.queue_index(queue)?;
        let Some(mi) = self.queues[qi].member_index(agent) else {
            return Err(QueueError::NotMember {
                queue: queue.to_owned(),
                agent: agent.to_owned(),
            });
        };
        if self.queues[qi].members[mi].static_member {
            return Err(QueueError::StaticMember {
                queue: queue.to_owned(),
                agent: agent.to_owned(),
            });
        }
        let ringing_here = self
            .agents
            .get(agent)
            .and_then(|a| a.ringing_for.clone())
            .filter(|call_id| self.waiting_in.get(call_id) == Some(&qi));
        if let Some(call_id) = ringing_here {
            if let Some(ci) = self.queues[qi].caller_index(&call_id) {
                self.end_attempt(now, qi, ci, agent, RingEnd::NoAnswer);
            }
        }
        let queue_state = &mut self.queues[qi];
        queue_state.members.remove(mi);
        if mi < queue_state.rr_next {
            queue_state.rr_next -= 1;
        }
        for caller in &mut queue_state.waiting {
            if mi < caller.linear_next {
                caller.linear_next -= 1;
            }
        }
        self.events.push_back(QueueEvent::RemoveMember {
            queue: queue.to_owned(),
            agent: agent.to_owned(),
        });
        self.leave_if_empty(now, qi);
        self.settle(now);
        Ok(())
    }

    /// Pause or unpause an agent in one queue, or in all its queues with `queue = None` (then
    /// PauseAll/UnpauseAll comes first, as Asterisk logs it). A ring in progress goes on.
    pub fn pause(
        &mut self,
        now: Instant,
        queue: Option<&str>,
        agent: &str,
        paused: bool,
        reason: Option<String>,
    ) -> Result<(), QueueError> {
        let targets: Vec<usize> = match queue {
            Some(name) => {
                let qi = self.queue_index(name)?;
                if self.queues[qi].member_index(agent).is_none() {
                    return Err(QueueError::NotMember {
                        queue: name.to_owned(),
                        agent: agent.to_owned(),
                    });
                }
                vec![qi]
            }
            None => {
                let all: Vec<usize> = (0..self.queues.len())
                    .filter(|&qi| self.queues[qi].member_index(agent).is_some())
                    .collect();
                if all.is_empty() {
                    return Err(QueueError::NotInAnyQueue(agent.to_owned()));
                }
                all
            }
        };
        let reason = reason.unwrap_or_default();
        if queue.is_none() {
            self.events.push_back(if paused {
                QueueEvent::PauseAll {
                    agent: agent.to_owned(),
                    reason: reason.clone(),
                }
            } else {
                QueueEvent::UnpauseAll {
                    agent: agent.to_owned(),
                    reason: reason.clone(),
                }
            });
        }
        for &qi in &targets {
            let queue_state = &mut self.queues[qi];
            let name = queue_state.config.name.clone();
            if let Some(member) = queue_state.members.iter_mut().find(|m| m.agent == agent) {
                member.paused = paused;
                member.paused_reason = reason.clone();
                if paused {
                    member.last_pause = Some(now);
                }
            }
            self.events.push_back(if paused {
                QueueEvent::Pause {
                    queue: name,
                    agent: agent.to_owned(),
                    reason: reason.clone(),
                }
            } else {
                QueueEvent::Unpause {
                    queue: name,
                    agent: agent.to_owned(),
                    reason: reason.clone(),
                }
            });
        }
        if paused {
            for &qi in &targets {
                self.leave_if_empty(now, qi);
            }
        }
        self.settle(now);
        Ok(())
    }

    /// The agent's device is (or is no longer) on a call that did not come from a queue; busy
    /// agents are not offered queue calls. Unknown agents are remembered for when they join.
    pub fn set_agent_busy(&mut self, now: Instant, agent: &str, busy: bool) {
        self.agents.entry(agent.to_owned()).or_default().busy = busy;
        self.settle(now);
    }

    /// A caller reaches the queue. Returns the position, or why the caller was turned away
    /// (the driver then continues with the queue's fallback).
    pub fn caller_join(
        &mut self,
        now: Instant,
        queue: &str,
        call_id: &str,
        caller_id: &str,
    ) -> Result<JoinOutcome, QueueError> {
        let qi = self.queue_index(queue)?;
        if self.waiting_in.contains_key(call_id) || self.connected.contains_key(call_id) {
            return Err(QueueError::DuplicateCall(call_id.to_owned()));
        }
        let queue_state = &self.queues[qi];
        let empty = queue_state.is_empty();
        let refused = if empty && !queue_state.config.join_empty {
            Some(RefuseReason::Empty)
        } else if queue_state
            .config
            .max_len
            .is_some_and(|max| queue_state.waiting.len() >= max)
        {
            Some(RefuseReason::Full)
        } else {
            None
        };
        if let Some(reason) = refused {
            self.events.push_back(QueueEvent::JoinRefused {
                queue: queue.to_owned(),
                call_id: call_id.to_owned(),
                caller_id: caller_id.to_owned(),
                reason,
            });
            return Ok(JoinOutcome::Refused(reason));
        }
        let arrival = self.next_arrival;
        self.next_arrival = self.next_arrival.wrapping_add(1);
        let queue_state = &mut self.queues[qi];
        let position = queue_state.waiting.len() + 1;
        let gives_up_at = queue_state.config.max_wait.and_then(|d| now.checked_add(d));
        queue_state.waiting.push(Caller {
            call_id: call_id.to_owned(),
            caller_id: caller_id.to_owned(),
            arrival,
            joined_at: now,
            orig_position: position,
            gives_up_at,
            attempts: Vec::new(),
            retry_at: None,
            linear_next: 0,
            tried: Vec::new(),
        });
        self.waiting_in.insert(call_id.to_owned(), qi);
        self.events.push_back(QueueEvent::EnterQueue {
            queue: queue.to_owned(),
            call_id: call_id.to_owned(),
            caller_id: caller_id.to_owned(),
            position,
        });
        self.leave_if_empty(now, qi);
        self.settle(now);
        Ok(JoinOutcome::Joined { position })
    }

    /// The caller hung up while waiting or while agents rang: RingCanceled for each agent being
    /// rung, then Abandon. For a connected call this is `call_ended(.., by_agent = false)`.
    /// Unknown call ids are ignored (the call already left).
    pub fn caller_hangup(&mut self, now: Instant, call_id: &str) {
        if let Some((qi, ci)) = self.find_waiting(call_id) {
            self.depart(now, qi, ci, Departure::Abandon);
            self.settle(now);
        } else if self.connected.contains_key(call_id) {
            self.call_ended(now, call_id, false);
        }
    }

    /// The rung agent picked up: the caller leaves the waiting list, other agents stop ringing,
    /// Connect is reported. Fails when the offer already ended; the driver must then hang up the
    /// agent's leg.
    pub fn agent_answered(
        &mut self,
        now: Instant,
        call_id: &str,
        agent: &str,
    ) -> Result<(), QueueError> {
        let not_ringing = || QueueError::NotRinging {
            call_id: call_id.to_owned(),
            agent: agent.to_owned(),
        };
        let (qi, ci) = self.find_waiting(call_id).ok_or_else(not_ringing)?;
        let ai = self.queues[qi].waiting[ci]
            .attempts
            .iter()
            .position(|a| a.agent == agent)
            .ok_or_else(not_ringing)?;

        let queue_state = &mut self.queues[qi];
        let caller = queue_state.waiting.remove(ci);
        self.waiting_in.remove(call_id);
        let queue_name = queue_state.config.name.clone();
        let count = queue_state.waiting.len();
        for (index, attempt) in caller.attempts.iter().enumerate() {
            if let Some(state) = self.agents.get_mut(&attempt.agent) {
                state.ringing_for = None;
                if index == ai {
                    state.in_call = Some(call_id.to_owned());
                }
            }
            if index != ai {
                self.actions.push_back(QueueAction::StopRinging {
                    call_id: call_id.to_owned(),
                    agent: attempt.agent.clone(),
                });
            }
        }
        let ring_secs = caller
            .attempts
            .get(ai)
            .map_or(0, |a| now.saturating_duration_since(a.started).as_secs());
        let hold_secs = self.whole_secs_between(caller.joined_at, now);
        let stats = &mut self.queues[qi].stats;
        stats.avg_hold_secs = running_average(stats.avg_hold_secs, hold_secs);
        self.events.push_back(QueueEvent::CallerLeave {
            queue: queue_name.clone(),
            call_id: call_id.to_owned(),
            position: ci + 1,
            count,
        });
        self.events.push_back(QueueEvent::Connect {
            queue: queue_name,
            call_id: call_id.to_owned(),
            agent: agent.to_owned(),
            hold_secs,
            ring_secs,
            orig_position: caller.orig_position,
        });
        self.connected.insert(
            call_id.to_owned(),
            ConnectedCall {
                queue: qi,
                agent: agent.to_owned(),
                joined_at: caller.joined_at,
                answered_at: now,
                orig_position: caller.orig_position,
            },
        );
        self.settle(now);
        Ok(())
    }

    /// The rung agent's leg failed (busy, declined, unreachable): the attempt ends as a
    /// ring-no-answer, without StopRinging. Stale reports are ignored.
    pub fn agent_rejected(&mut self, now: Instant, call_id: &str, agent: &str) {
        if let Some((qi, ci)) = self.find_waiting(call_id) {
            if self.queues[qi].waiting[ci]
                .attempts
                .iter()
                .any(|a| a.agent == agent)
            {
                self.end_attempt(now, qi, ci, agent, RingEnd::Rejected);
                self.settle(now);
            }
        }
    }

    /// A connected queue call ended: CompleteAgent or CompleteCaller, and the agent's wrap-up
    /// starts. A call still waiting counts as abandoned. Unknown call ids are ignored.
    pub fn call_ended(&mut self, now: Instant, call_id: &str, by_agent: bool) {
        if let Some(call) = self.connected.remove(call_id) {
            let hold_secs = self.whole_secs_between(call.joined_at, call.answered_at);
            let talk_secs = self.whole_secs_between(call.answered_at, now);
            let queue = self.queue_name(call.queue);
            self.events.push_back(if by_agent {
                QueueEvent::CompleteAgent {
                    queue,
                    call_id: call_id.to_owned(),
                    agent: call.agent.clone(),
                    hold_secs,
                    talk_secs,
                    orig_position: call.orig_position,
                }
            } else {
                QueueEvent::CompleteCaller {
                    queue,
                    call_id: call_id.to_owned(),
                    agent: call.agent.clone(),
                    hold_secs,
                    talk_secs,
                    orig_position: call.orig_position,
                }
            });
            self.finish_call(now, &call, talk_secs);
            self.settle(now);
        } else if let Some((qi, ci)) = self.find_waiting(call_id) {
            self.depart(now, qi, ci, Departure::Abandon);
            self.settle(now);
        }
    }

    /// The agent transferred the connected caller (REFER, blind or with Replaces) to `target`:
    /// BlindTransfer or AttendedTransfer, and the agent's wrap-up starts. The caller's call goes
    /// on outside the queue. Unknown call ids are ignored.
    pub fn transferred(&mut self, now: Instant, call_id: &str, blind: bool, target: &str) {
        let Some(call) = self.connected.remove(call_id) else {
            return;
        };
        let hold_secs = self.whole_secs_between(call.joined_at, call.answered_at);
        let talk_secs = self.whole_secs_between(call.answered_at, now);
        let queue = self.queue_name(call.queue);
        self.events.push_back(if blind {
            QueueEvent::BlindTransfer {
                queue,
                call_id: call_id.to_owned(),
                agent: call.agent.clone(),
                target: target.to_owned(),
                hold_secs,
                talk_secs,
                orig_position: call.orig_position,
            }
        } else {
            QueueEvent::AttendedTransfer {
                queue,
                call_id: call_id.to_owned(),
                agent: call.agent.clone(),
                target: target.to_owned(),
                hold_secs,
                talk_secs,
                orig_position: call.orig_position,
            }
        });
        self.finish_call(now, &call, talk_secs);
        self.settle(now);
    }

    /// Run every timer due at `now`: rings that ran out, retries, maximum waits, wrap-ups.
    pub fn handle_timeout(&mut self, now: Instant) {
        for qi in 0..self.queues.len() {
            let mut ci = 0;
            while ci < self.queues[qi].waiting.len() {
                let expired: Vec<String> = self.queues[qi].waiting[ci]
                    .attempts
                    .iter()
                    .filter(|a| a.ends_at.is_some_and(|t| t <= now))
                    .map(|a| a.agent.clone())
                    .collect();
                for agent in expired {
                    self.end_attempt(now, qi, ci, &agent, RingEnd::NoAnswer);
                }
                if self.queues[qi].waiting[ci]
                    .gives_up_at
                    .is_some_and(|t| t <= now)
                {
                    self.depart(now, qi, ci, Departure::Timeout);
                } else {
                    ci += 1;
                }
            }
        }
        self.settle(now);
    }

    /// When `handle_timeout` is next due, if anything is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let wrapups = self.agents.values().filter_map(|a| a.wrapup_until);
        let callers = self
            .queues
            .iter()
            .flat_map(|q| q.waiting.iter())
            .flat_map(|c| {
                c.attempts
                    .iter()
                    .filter_map(|a| a.ends_at)
                    .chain(c.retry_at)
                    .chain(c.gives_up_at)
            });
        wrapups.chain(callers).min()
    }

    /// Next thing the B2BUA must do on the call legs.
    pub fn poll_action(&mut self) -> Option<QueueAction> {
        self.actions.pop_front()
    }

    /// Next event for queue_log and AMI.
    pub fn poll_event(&mut self) -> Option<QueueEvent> {
        self.events.pop_front()
    }

    /// Every queue in the order added, with its callers and members.
    pub fn snapshot(&self) -> Vec<QueueSnapshot> {
        self.queues
            .iter()
            .map(|queue| QueueSnapshot {
                name: queue.config.name.clone(),
                strategy: queue.config.strategy,
                max_len: queue.config.max_len,
                stats: queue.stats,
                callers: queue
                    .waiting
                    .iter()
                    .enumerate()
                    .map(|(index, caller)| CallerSnapshot {
                        call_id: caller.call_id.clone(),
                        caller_id: caller.caller_id.clone(),
                        position: index + 1,
                        orig_position: caller.orig_position,
                        joined_at: caller.joined_at,
                        ringing: caller.attempts.iter().map(|a| a.agent.clone()).collect(),
                    })
                    .collect(),
                members: queue
                    .members
                    .iter()
                    .map(|member| {
                        let agent = self.agents.get(&member.agent);
                        MemberSnapshot {
                            agent: member.agent.clone(),
                            static_member: member.static_member,
                            state: agent.map_or(AgentState::Idle, Agent::state),
                            current_call: agent
                                .and_then(|a| a.in_call.clone().or_else(|| a.ringing_for.clone())),
                            paused: member.paused,
                            paused_reason: member.paused_reason.clone(),
                            last_pause: member.last_pause,
                            calls_taken: member.calls_taken,
                            last_call: agent.and_then(|a| a.last_call_end),
                            login_time: member.login_time,
                        }
                    })
                    .collect(),
            })
            .collect()
    }

    fn queue_index(&self, name: &str) -> Result<usize, QueueError> {
        self.queues
            .iter()
            .position(|q| q.config.name == name)
            .ok_or_else(|| QueueError::UnknownQueue(name.to_owned()))
    }

    fn queue_name(&self, qi: usize) -> String {
        self.queues
            .get(qi)
            .map(|q| q.config.name.clone())
            .unwrap_or_default()
    }

    fn find_waiting(&self, call_id: &str) -> Option<(usize, usize)> {
        let qi = *self.waiting_in.get(call_id)?;
        let ci = self.queues.get(qi)?.caller_index(call_id)?;
        Some((qi, ci))
    }

    fn whole_secs_between(&self, from: Instant, to: Instant) -> u64 {
        match self.wall_clock {
            Some(anchor) => unix_time(anchor, to)
                .as_secs()
                .saturating_sub(unix_time(anchor, from).as_secs()),
            None => to.saturating_duration_since(from).as_secs(),
        }
    }

    /// End one agent's ring for a waiting caller; when it was the caller's last ring, the next
    /// attempt waits `retry`.
    fn end_attempt(&mut self, now: Instant, qi: usize, ci: usize, agent: &str, how: RingEnd) {
        let queue_state = &mut self.queues[qi];
        let queue = queue_state.config.name.clone();
        let retry = queue_state.config.retry;
        let caller = &mut queue_state.waiting[ci];
        let Some(ai) = caller.attempts.iter().position(|a| a.agent == agent) else {
            return;
        };
        let attempt = caller.attempts.remove(ai);
        let ring_ms = millis(now.saturating_duration_since(attempt.started));
        let call_id = caller.call_id.clone();
        if how != RingEnd::CallerGone && caller.attempts.is_empty() && !retry.is_zero() {
            caller.retry_at = now.checked_add(retry);
        }
        if let Some(state) = self.agents.get_mut(agent) {
            state.ringing_for = None;
        }
        if how != RingEnd::Rejected {
            self.actions.push_back(QueueAction::StopRinging {
                call_id: call_id.clone(),
                agent: agent.to_owned(),
            });
        }
        self.events.push_back(if how == RingEnd::CallerGone {
            QueueEvent::RingCanceled {
                queue,
                call_id,
                agent: agent.to_owned(),
                ring_ms,
            }
        } else {
            QueueEvent::RingNoAnswer {
                queue,
                call_id,
                agent: agent.to_owned(),
                ring_ms,
            }
        });
    }

    /// Take a waiting caller out of the queue without an agent.
    fn depart(&mut self, now: Instant, qi: usize, ci: usize, why: Departure) {
        let ringing: Vec<String> = self.queues[qi].waiting[ci]
            .attempts
            .iter()
            .map(|a| a.agent.clone())
            .collect();
        let how = if why == Departure::Abandon {
            RingEnd::CallerGone
        } else {
            RingEnd::NoAnswer
        };
        for agent in ringing {
            self.end_attempt(now, qi, ci, &agent, how);
        }
        let queue_state = &mut self.queues[qi];
        let caller = queue_state.waiting.remove(ci);
        queue_state.stats.abandoned = queue_state.stats.abandoned.saturating_add(1);
        let queue = queue_state.config.name.clone();
        let count = queue_state.waiting.len();
        self.waiting_in.remove(&caller.call_id);
        let position = ci + 1;
        let orig_position = caller.orig_position;
        let wait_secs = self.whole_secs_between(caller.joined_at, now);
        let call_id = caller.call_id;
        self.events.push_back(match why {
            Departure::Abandon => QueueEvent::Abandon {
                queue: queue.clone(),
                call_id: call_id.clone(),
                position,
                orig_position,
                wait_secs,
            },
            Departure::Timeout => QueueEvent::ExitWithTimeout {
                queue: queue.clone(),
                call_id: call_id.clone(),
                position,
                orig_position,
                wait_secs,
            },
            Departure::Empty => QueueEvent::ExitEmpty {
                queue: queue.clone(),
                call_id: call_id.clone(),
                position,
                orig_position,
                wait_secs,
            },
        });
        self.events.push_back(QueueEvent::CallerLeave {
            queue,
            call_id: call_id.clone(),
            position,
            count,
        });
        let reason = match why {
            Departure::Abandon => return,
            Departure::Timeout => HangupReason::Timeout,
            Departure::Empty => HangupReason::Empty,
        };
        self.actions
            .push_back(QueueAction::Hangup { call_id, reason });
    }

    fn leave_if_empty(&mut self, now: Instant, qi: usize) {
        let queue_state = &self.queues[qi];
        if queue_state.config.leave_when_empty && queue_state.is_empty() {
            // Last caller first, so each one reports the position it had when the queue emptied.
            while let Some(last) = self.queues[qi].waiting.len().checked_sub(1) {
                self.depart(now, qi, last, Departure::Empty);
            }
        }
    }

    fn finish_call(&mut self, now: Instant, call: &ConnectedCall, talk_secs: u64) {
        let queue_state = &mut self.queues[call.queue];
        let wrapup = queue_state.config.wrapup;
        let stats = &mut queue_state.stats;
        stats.completed = stats.completed.saturating_add(1);
        stats.avg_talk_secs = running_average(stats.avg_talk_secs, talk_secs);
        if let Some(member) = queue_state
            .members
            .iter_mut()
            .find(|m| m.agent == call.agent)
        {
            member.calls_taken = member.calls_taken.saturating_add(1);
        }
        if let Some(agent) = self.agents.get_mut(&call.agent) {
            agent.in_call = None;
            agent.last_call_end = Some(now);
            agent.wrapup_until = if wrapup.is_zero() {
                None
            } else {
                now.checked_add(wrapup)
            };
        }
    }

    /// After every input: offer free agents to waiting callers, then report state changes.
    fn settle(&mut self, now: Instant) {
        for agent in self.agents.values_mut() {
            if agent.wrapup_until.is_some_and(|t| t <= now) {
                agent.wrapup_until = None;
            }
        }
        for caller in self.queues.iter_mut().flat_map(|q| q.waiting.iter_mut()) {
            if caller.retry_at.is_some_and(|t| t <= now) {
                caller.retry_at = None;
            }
        }
        self.dispatch(now);
        self.report_agent_states();
    }

    fn agent_is_free(&self, member: &Member) -> bool {
        !member.paused
            && self
                .agents
                .get(&member.agent)
                .is_some_and(Agent::can_take_a_call)
    }

    /// Ring free agents for callers who are not ringing and not pausing between attempts, the
    /// earliest arrival (in any queue) first.
    fn dispatch(&mut self, now: Instant) {
        let mut ready: Vec<(u64, usize, usize)> = Vec::new();
        for (qi, queue) in self.queues.iter().enumerate() {
            for (ci, caller) in queue.waiting.iter().enumerate() {
                if caller.attempts.is_empty() && caller.retry_at.is_none() {
                    ready.push((caller.arrival, qi, ci));
                }
            }
        }
        ready.sort_unstable();
        // Under overload most callers find every agent taken: stop as soon as nobody anywhere
        // could take a call, instead of scanning the members of every waiting caller's queue.
        let mut anyone_free = self.agents.values().any(Agent::can_take_a_call);
        for (_, qi, ci) in ready {
            if !anyone_free {
                break;
            }
            let free: Vec<usize> = self.queues[qi]
                .members
                .iter()
                .enumerate()
                .filter(|(_, member)| self.agent_is_free(member))
                .map(|(mi, _)| mi)
                .collect();
            if free.is_empty() {
                continue;
            }
            let chosen = self.choose(qi, ci, &free);
            for mi in chosen {
                self.start_ring(now, qi, ci, mi);
            }
            anyone_free = self.agents.values().any(Agent::can_take_a_call);
        }
    }

    /// Pick member indices to ring among `free` (non-empty, in member order).
    fn choose(&mut self, qi: usize, ci: usize, free: &[usize]) -> Vec<usize> {
        let strategy = self.queues[qi].config.strategy;
        match strategy {
            Strategy::RingAll => free.to_vec(),
            Strategy::RrMemory => {
                let queue_state = &mut self.queues[qi];
                let mi = next_in_order(free, queue_state.rr_next);
                // Wrap right away, as Asterisk does: a member who logs in later is rung after
                // the ones at the head of the list (the capture's scenario d shows it).
                queue_state.rr_next = (mi + 1) % queue_state.members.len().max(1);
                vec![mi]
            }
            Strategy::Linear => {
                let caller = &mut self.queues[qi].waiting[ci];
                let mi = next_in_order(free, caller.linear_next);
                caller.linear_next = mi + 1;
                vec![mi]
            }
            Strategy::LeastRecent | Strategy::FewestCalls | Strategy::Random => {
                let queue_state = &self.queues[qi];
                let caller = &queue_state.waiting[ci];
                let mut candidates: Vec<usize> = free
                    .iter()
                    .copied()
                    .filter(|&mi| !caller.tried.contains(&queue_state.members[mi].agent))
                    .collect();
                if candidates.is_empty() {
                    // Everyone free has rung out for this caller: start a new round.
                    self.queues[qi].waiting[ci].tried.clear();
                    candidates = free.to_vec();
                }
                let picked = match strategy {
                    Strategy::LeastRecent => candidates.iter().copied().min_by_key(|&mi| {
                        let name = &self.queues[qi].members[mi].agent;
                        self.agents.get(name).and_then(|a| a.last_call_end)
                    }),
                    Strategy::FewestCalls => candidates
                        .iter()
                        .copied()
                        .min_by_key(|&mi| self.queues[qi].members[mi].calls_taken),
                    _ => candidates.get(self.rng.below(candidates.len())).copied(),
                };
                let Some(mi) = picked else {
                    return Vec::new();
                };
                let agent = self.queues[qi].members[mi].agent.clone();
                self.queues[qi].waiting[ci].tried.push(agent);
                vec![mi]
            }
        }
    }

    fn start_ring(&mut self, now: Instant, qi: usize, ci: usize, mi: usize) {
        let queue_state = &mut self.queues[qi];
        let ring_timeout = queue_state.config.ring_timeout;
        let queue = queue_state.config.name.clone();
        let agent = queue_state.members[mi].agent.clone();
        let caller = &mut queue_state.waiting[ci];
        // A ring still going when the maximum wait runs out is stopped by the caller's exit.
        let ends_at = if ring_timeout.is_zero() {
            None
        } else {
            now.checked_add(ring_timeout)
        };
        caller.attempts.push(Attempt {
            agent: agent.clone(),
            started: now,
            ends_at,
        });
        let call_id = caller.call_id.clone();
        let caller_id = caller.caller_id.clone();
        if let Some(state) = self.agents.get_mut(&agent) {
            state.ringing_for = Some(call_id.clone());
        }
        self.events.push_back(QueueEvent::AgentCalled {
            queue: queue.clone(),
            call_id: call_id.clone(),
            caller_id: caller_id.clone(),
            agent: agent.clone(),
        });
        self.actions.push_back(QueueAction::Ring {
            queue,
            call_id,
            caller_id,
            agent,
        });
    }

    fn report_agent_states(&mut self) {
        for (name, agent) in &mut self.agents {
            let state = agent.state();
            if state == agent.reported {
                continue;
            }
            agent.reported = state;
            for queue in &self.queues {
                if let Some(member) = queue.members.iter().find(|m| &m.agent == name) {
                    self.events.push_back(QueueEvent::MemberStatus {
                        queue: queue.config.name.clone(),
                        agent: name.clone(),
                        state,
                        paused: member.paused,
                    });
                }
            }
        }
    }
}

/// The first free member at or after `start` in list order, wrapping to the top.
fn next_in_order(free: &[usize], start: usize) -> usize {
    free.iter()
        .copied()
        .find(|&mi| mi >= start)
        .or_else(|| free.first().copied())
        .unwrap_or(0)
}

fn running_average(old: u64, new: u64) -> u64 {
    old.saturating_mul(3).saturating_add(new) / 4
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn unix_time((anchor, anchor_unix): (Instant, Duration), at: Instant) -> Duration {
    if at >= anchor {
        anchor_unix.saturating_add(at.saturating_duration_since(anchor))
    } else {
        anchor_unix.saturating_sub(anchor.saturating_duration_since(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A virtual clock around one engine that records every output with its time (ms from t0).
    struct Lab {
        engine: QueueEngine,
        t0: Instant,
        now: Instant,
        /// Unix time at t0, in ms, when replaying an Asterisk capture.
        epoch_ms: u64,
        actions: Vec<(u64, QueueAction)>,
        events: Vec<(u64, QueueEvent)>,
    }

    impl Lab {
        fn new(seed: u64) -> Self {
            let t0 = Instant::now();
            Lab {
                engine: QueueEngine::new(seed),
                t0,
                now: t0,
                epoch_ms: 0,
                actions: Vec::new(),
                events: Vec::new(),
            }
        }

        /// A lab whose t0 is the Unix time `epoch_ms`, like a fixture's first event.
        fn replaying(epoch_ms: u64) -> Self {
            let mut lab = Lab::new(1);
            lab.epoch_ms = epoch_ms;
            lab.engine
                .set_wall_clock(lab.t0, Duration::from_millis(epoch_ms));
            lab
        }

        fn ms(&self) -> u64 {
            millis(self.now.duration_since(self.t0))
        }

        fn drain(&mut self) {
            let ms = self.ms();
            while let Some(action) = self.engine.poll_action() {
                self.actions.push((ms, action));
            }
            while let Some(event) = self.engine.poll_event() {
                self.events.push((ms, event));
            }
        }

        /// Move the clock to `ms`, firing every timer due on the way at its own instant.
        fn run_to(&mut self, ms: u64) {
            let target = self.t0 + Duration::from_millis(ms);
            assert!(target >= self.now, "the virtual clock only goes forward");
            while let Some(due) = self.engine.poll_timeout() {
                if due > target {
                    break;
                }
                self.now = due.max(self.now);
                self.engine.handle_timeout(self.now);
                self.drain();
                let next = self.engine.poll_timeout();
                assert!(
                    next.is_none_or(|n| n > self.now),
                    "a timer fired twice at the same instant"
                );
            }
            self.now = target;
        }

        fn queue(&mut self, config: QueueConfig) {
            self.engine.add_queue(config);
        }

        fn member(&mut self, ms: u64, queue: &str, agent: &str) {
            self.run_to(ms);
            self.engine
                .add_member(self.now, queue, agent, false)
                .expect("the agent joins a configured queue");
            self.drain();
        }

        fn join(&mut self, ms: u64, queue: &str, call_id: &str) -> JoinOutcome {
            self.run_to(ms);
            let outcome = self
                .engine
                .caller_join(self.now, queue, call_id, "caller1")
                .expect("the queue exists and the call id is new");
            self.drain();
            outcome
        }

        fn answer(&mut self, ms: u64, call_id: &str, agent: &str) -> Result<(), QueueError> {
            self.run_to(ms);
            let result = self.engine.agent_answered(self.now, call_id, agent);
            self.drain();
            result
        }

        fn reject(&mut self, ms: u64, call_id: &str, agent: &str) {
            self.run_to(ms);
            self.engine.agent_rejected(self.now, call_id, agent);
            self.drain();
        }

        fn hangup(&mut self, ms: u64, call_id: &str) {
            self.run_to(ms);
            self.engine.caller_hangup(self.now, call_id);
            self.drain();
        }

        fn end(&mut self, ms: u64, call_id: &str, by_agent: bool) {
            self.run_to(ms);
            self.engine.call_ended(self.now, call_id, by_agent);
            self.drain();
        }

        fn busy(&mut self, ms: u64, agent: &str, busy: bool) {
            self.run_to(ms);
            self.engine.set_agent_busy(self.now, agent, busy);
            self.drain();
        }

        /// The agent most recently rung for this call.
        fn rung(&self, call_id: &str) -> String {
            self.rings_for(call_id).last().cloned().unwrap_or_default()
        }

        /// Agents rung for this call, in order.
        fn rings_for(&self, call_id: &str) -> Vec<String> {
            self.actions
                .iter()
                .filter_map(|(_, action)| match action {
                    QueueAction::Ring {
                        call_id: c, agent, ..
                    } if c == call_id => Some(agent.clone()),
                    _ => None,
                })
                .collect()
        }

        /// Every Ring action as (ms, call, agent).
        fn rings(&self) -> Vec<(u64, String, String)> {
            self.actions
                .iter()
                .filter_map(|(ms, action)| match action {
                    QueueAction::Ring { call_id, agent, .. } => {
                        Some((*ms, call_id.clone(), agent.clone()))
                    }
                    _ => None,
                })
                .collect()
        }

        fn stops(&self) -> Vec<(u64, String, String)> {
            self.actions
                .iter()
                .filter_map(|(ms, action)| match action {
                    QueueAction::StopRinging { call_id, agent } => {
                        Some((*ms, call_id.clone(), agent.clone()))
                    }
                    _ => None,
                })
                .collect()
        }

        /// queue_log lines as `epoch|queue|agent|VERB|data` (Asterisk's line without the
        /// callid; the agent leg and bridge uniqueids, which the driver owns, as LEG / BRIDGEID).
        fn log(&self) -> Vec<String> {
            self.events
                .iter()
                .filter_map(|(ms, event)| log_line((self.epoch_ms + ms) / 1000, event))
                .collect()
        }

        fn snapshot(&self, queue: &str) -> QueueSnapshot {
            self.engine
                .snapshot()
                .into_iter()
                .find(|q| q.name == queue)
                .expect("the queue was added")
        }
    }

    fn log_line(epoch: u64, event: &QueueEvent) -> Option<String> {
        let verb = event.verb()?;
        let (queue, agent, data) = match event {
            QueueEvent::AddMember { queue, agent, .. }
            | QueueEvent::RemoveMember { queue, agent, .. } => {
                (queue.as_str(), agent.as_str(), String::new())
            }
            QueueEvent::PauseAll { agent, reason } | QueueEvent::UnpauseAll { agent, reason } => {
                ("NONE", agent.as_str(), reason.clone())
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
            } => (queue.as_str(), agent.as_str(), reason.clone()),
            QueueEvent::JoinRefused { queue, .. } => (queue.as_str(), "NONE", String::new()),
            QueueEvent::EnterQueue {
                queue,
                caller_id,
                position,
                ..
            } => (queue.as_str(), "NONE", format!("|{caller_id}|{position}")),
            QueueEvent::Connect {
                queue,
                agent,
                hold_secs,
                ring_secs,
                ..
            } => (
                queue.as_str(),
                agent.as_str(),
                format!("{hold_secs}|LEG|{ring_secs}"),
            ),
            QueueEvent::RingNoAnswer {
                queue,
                agent,
                ring_ms,
                ..
            }
            | QueueEvent::RingCanceled {
                queue,
                agent,
                ring_ms,
                ..
            } => (queue.as_str(), agent.as_str(), ring_ms.to_string()),
            QueueEvent::CompleteAgent {
                queue,
                agent,
                hold_secs,
                talk_secs,
                orig_position,
                ..
            }
            | QueueEvent::CompleteCaller {
                queue,
                agent,
                hold_secs,
                talk_secs,
                orig_position,
                ..
            } => (
                queue.as_str(),
                agent.as_str(),
                format!("{hold_secs}|{talk_secs}|{orig_position}"),
            ),
            QueueEvent::Abandon {
                queue,
                position,
                orig_position,
                wait_secs,
                ..
            }
            | QueueEvent::ExitWithTimeout {
                queue,
                position,
                orig_position,
                wait_secs,
                ..
            }
            | QueueEvent::ExitEmpty {
                queue,
                position,
                orig_position,
                wait_secs,
                ..
            } => (
                queue.as_str(),
                "NONE",
                format!("{position}|{orig_position}|{wait_secs}"),
            ),
            QueueEvent::BlindTransfer {
                queue,
                agent,
                target,
                hold_secs,
                talk_secs,
                orig_position,
                ..
            } => (
                queue.as_str(),
                agent.as_str(),
                format!("{target}|lab|{hold_secs}|{talk_secs}|{orig_position}"),
            ),
            QueueEvent::AttendedTransfer {
                queue,
                agent,
                hold_secs,
                talk_secs,
                orig_position,
                ..
            } => (
                queue.as_str(),
                agent.as_str(),
                format!("BRIDGE|BRIDGEID|{hold_secs}|{talk_secs}|{orig_position}"),
            ),
            _ => return None,
        };
        Some(format!("{epoch}|{queue}|{agent}|{verb}|{data}"))
    }

    /// The fixture lab's `support` queue: rrmemory, 15 s ring, 2 s retry, no wrap-up.
    fn support() -> QueueConfig {
        QueueConfig {
            retry: Duration::from_secs(2),
            max_len: Some(10),
            ..QueueConfig::new("support", Strategy::RrMemory)
        }
    }

    /// A queue `q` with members a, b, c (in that order), 15 s ring, 2 s retry.
    fn three_agents(strategy: Strategy, seed: u64) -> Lab {
        let mut lab = Lab::new(seed);
        lab.queue(QueueConfig {
            retry: Duration::from_secs(2),
            ..QueueConfig::new("q", strategy)
        });
        for agent in ["a", "b", "c"] {
            lab.member(0, "q", agent);
        }
        lab
    }

    /// One caller at `ms`, answered at once by whoever rings, hung up 1 s later; returns the agent.
    fn quick_call(lab: &mut Lab, ms: u64, call_id: &str) -> String {
        lab.join(ms, "q", call_id);
        let agent = lab.rung(call_id);
        lab.answer(ms, call_id, &agent)
            .expect("the agent was ringing");
        lab.end(ms + 1000, call_id, false);
        agent
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn strategy_names_are_asterisks() {
        for strategy in Strategy::ALL {
            assert_eq!(strategy.to_string().parse::<Strategy>(), Ok(strategy));
        }
        assert_eq!("rrmemory".parse(), Ok(Strategy::RrMemory));
        assert_eq!(" RingAll ".parse(), Ok(Strategy::RingAll));
        assert_eq!(Strategy::LeastRecent.to_string(), "leastrecent");
        assert_eq!(Strategy::FewestCalls.to_string(), "fewestcalls");
        assert_eq!(Strategy::Linear.to_string(), "linear");
        let err = "roundrobin"
            .parse::<Strategy>()
            .expect_err("an unknown name is an error");
        assert_eq!(err, QueueError::UnknownStrategy("roundrobin".into()));
        assert!(err.to_string().contains("use ringall, leastrecent"));
    }

    // --- Replays of the Asterisk 22 captures (shared/fixtures/asterisk, queue_log/full.log) ---

    #[test]
    fn fixture_b_and_c_complete_by_caller_and_by_agent() {
        let mut lab = Lab::replaying(1_795_259_556_684);
        lab.queue(support());
        lab.member(0, "support", "agent1");
        lab.join(502, "support", "b");
        lab.answer(1006, "b", "agent1")
            .expect("the agent was ringing");
        lab.end(5006, "b", false);
        assert_eq!(
            lab.log()[1..],
            strings(&[
                "1795259557|support|NONE|ENTERQUEUE||caller1|1",
                "1795259557|support|agent1|CONNECT|0|LEG|0",
                "1795259561|support|agent1|COMPLETECALLER|0|4|1",
            ])
        );

        let mut lab = Lab::replaying(1_795_259_565_521);
        lab.queue(support());
        lab.member(0, "support", "agent1");
        lab.join(502, "support", "c");
        lab.answer(1007, "c", "agent1")
            .expect("the agent was ringing");
        lab.end(4010, "c", true);
        assert_eq!(
            lab.log()[1..],
            strings(&[
                "1795259566|support|NONE|ENTERQUEUE||caller1|1",
                "1795259566|support|agent1|CONNECT|0|LEG|0",
                "1795259569|support|agent1|COMPLETEAGENT|0|3|1",
            ])
        );
    }

    #[test]
    fn fixture_d_ring_no_answer_then_next_agent_after_retry() {
        let mut lab = Lab::replaying(1_795_259_575_969);
        lab.queue(support());
        lab.member(0, "support", "agent1");
        lab.member(0, "support", "agent2");
        lab.join(508, "support", "d");
        lab.run_to(18_000);
        assert_eq!(
            lab.rings(),
            vec![
                (508, "d".into(), "agent1".into()),
                (17_508, "d".into(), "agent2".into())
            ]
        );
        assert_eq!(lab.stops(), vec![(15_508, "d".into(), "agent1".into())]);
        lab.answer(18_030, "d", "agent2")
            .expect("the agent was ringing");
        lab.hangup(22_014, "d");
        assert_eq!(
            lab.log()[2..],
            strings(&[
                "1795259576|support|NONE|ENTERQUEUE||caller1|1",
                "1795259591|support|agent1|RINGNOANSWER|15000",
                "1795259593|support|agent2|CONNECT|17|LEG|0",
                "1795259597|support|agent2|COMPLETECALLER|17|4|1",
            ])
        );
        // Without the wall clock, seconds are truncated elapsed time: 17.52 s hold, 3.98 s talk.
        let talk = lab.events.iter().find_map(|(_, e)| match e {
            QueueEvent::CompleteCaller { talk_secs, .. } => Some(*talk_secs),
            _ => None,
        });
        assert_eq!(talk, Some(4));
        let mut plain = Lab::new(1);
        plain.queue(QueueConfig {
            ring_timeout: Duration::from_secs(30),
            ..support()
        });
        plain.member(0, "support", "agent1");
        plain.join(508, "support", "d");
        plain
            .answer(18_030, "d", "agent1")
            .expect("the agent was ringing");
        plain.hangup(22_014, "d");
        assert_eq!(plain.log()[2], "18|support|agent1|CONNECT|17|LEG|17");
        assert_eq!(plain.log()[3], "22|support|agent1|COMPLETECALLER|17|3|1");
    }

    #[test]
    fn fixture_f_caller_hangs_up_while_agent_rings() {
        let mut lab = Lab::replaying(1_795_259_635_893);
        lab.queue(support());
        lab.member(0, "support", "agent1");
        lab.join(503, "support", "f");
        lab.hangup(5005, "f");
        assert_eq!(
            lab.log()[1..],
            strings(&[
                "1795259636|support|NONE|ENTERQUEUE||caller1|1",
                "1795259640|support|agent1|RINGCANCELED|4502",
                "1795259640|support|NONE|ABANDON|1|1|4",
            ])
        );
        assert_eq!(lab.stops(), vec![(5005, "f".into(), "agent1".into())]);
        // An abandon is the caller's own hangup: the engine sends no Hangup action.
        assert!(!lab
            .actions
            .iter()
            .any(|(_, a)| matches!(a, QueueAction::Hangup { .. })));
        assert_eq!(lab.snapshot("support").stats.abandoned, 1);
    }

    #[test]
    fn fixture_e_g_h_abandon_timeout_and_empty_exits() {
        let mut lab = Lab::replaying(1_795_259_663_200);
        lab.queue(support());
        lab.join(501, "support", "e");
        lab.hangup(4007, "e");
        assert_eq!(
            lab.log(),
            strings(&[
                "1795259663|support|NONE|ENTERQUEUE||caller1|1",
                "1795259667|support|NONE|ABANDON|1|1|4",
            ])
        );

        let mut lab = Lab::replaying(1_795_259_670_533);
        lab.queue(QueueConfig {
            max_wait: Some(Duration::from_secs(10)),
            ..support()
        });
        lab.join(502, "support", "g");
        lab.run_to(20_000);
        assert_eq!(
            lab.log(),
            strings(&[
                "1795259671|support|NONE|ENTERQUEUE||caller1|1",
                "1795259681|support|NONE|EXITWITHTIMEOUT|1|1|10",
            ])
        );
        assert_eq!(
            lab.actions,
            vec![(
                10_502,
                QueueAction::Hangup {
                    call_id: "g".into(),
                    reason: HangupReason::Timeout
                }
            )]
        );

        let mut lab = Lab::replaying(1_795_259_684_388);
        lab.queue(QueueConfig {
            leave_when_empty: true,
            ..QueueConfig::new("empty", Strategy::RingAll)
        });
        assert_eq!(
            lab.join(501, "empty", "h"),
            JoinOutcome::Joined { position: 1 }
        );
        assert_eq!(
            lab.log(),
            strings(&[
                "1795259684|empty|NONE|ENTERQUEUE||caller1|1",
                "1795259684|empty|NONE|EXITEMPTY|1|1|0",
            ])
        );
        assert_eq!(
            lab.actions,
            vec![(
                501,
                QueueAction::Hangup {
                    call_id: "h".into(),
                    reason: HangupReason::Empty
                }
            )]
        );
    }

    #[test]
    fn fixture_i_and_j_blind_and_attended_transfers() {
        let mut lab = Lab::replaying(1_795_259_604_165);
        lab.queue(support());
        lab.member(0, "support", "agent1");
        lab.join(502, "support", "i");
        lab.answer(1010, "i", "agent1")
            .expect("the agent was ringing");
        lab.run_to(3014);
        lab.engine.transferred(lab.now, "i", true, "1002");
        lab.drain();
        assert_eq!(
            lab.log()[1..],
            strings(&[
                "1795259604|support|NONE|ENTERQUEUE||caller1|1",
                "1795259605|support|agent1|CONNECT|1|LEG|0",
                "1795259607|support|agent1|BLINDTRANSFER|1002|lab|1|2|1",
            ])
        );

        let mut lab = Lab::replaying(1_795_259_618_016);
        lab.queue(support());
        lab.member(0, "support", "agent1");
        lab.join(502, "support", "j");
        lab.answer(1006, "j", "agent1")
            .expect("the agent was ringing");
        lab.run_to(6546);
        lab.engine.transferred(lab.now, "j", false, "agent2");
        lab.drain();
        assert_eq!(
            lab.log()[1..],
            strings(&[
                "1795259618|support|NONE|ENTERQUEUE||caller1|1",
                "1795259619|support|agent1|CONNECT|1|LEG|0",
                "1795259624|support|agent1|ATTENDEDTRANSFER|BRIDGE|BRIDGEID|1|5|1",
            ])
        );
        // The caller's call goes on outside the queue; later reports about it are ignored.
        lab.end(9000, "j", false);
        assert_eq!(lab.log().len(), 4);
        assert_eq!(lab.snapshot("support").members[0].calls_taken, 1);
    }

    #[test]
    fn fixture_k_and_l_pause_and_member_actions() {
        let mut lab = Lab::new(1);
        lab.queue(support());
        lab.member(0, "support", "agent1");
        let now = lab.now;
        let engine = &mut lab.engine;
        engine
            .pause(now, None, "agent1", true, Some("lab-pause".into()))
            .expect("the agent is a member");
        engine
            .pause(now, None, "agent1", false, Some("lab-unpause".into()))
            .expect("the agent is a member");
        engine
            .pause(now, Some("support"), "agent1", true, Some("lunch".into()))
            .expect("the agent is a member");
        engine
            .pause(now, None, "agent1", false, None)
            .expect("the agent is a member");
        engine
            .add_member(now, "support", "agent2", false)
            .expect("the agent joins a configured queue");
        assert_eq!(
            engine.add_member(now, "support", "agent2", false),
            Err(QueueError::AlreadyMember {
                queue: "support".into(),
                agent: "agent2".into()
            })
        );
        engine
            .pause(
                now,
                Some("support"),
                "agent2",
                true,
                Some("supervisor-hold".into()),
            )
            .expect("the agent is a member");
        engine
            .pause(now, Some("support"), "agent2", false, None)
            .expect("the agent is a member");
        engine
            .remove_member(now, "support", "agent2")
            .expect("a dynamic member logs out");
        assert_eq!(
            engine.remove_member(now, "support", "agent2"),
            Err(QueueError::NotMember {
                queue: "support".into(),
                agent: "agent2".into()
            })
        );
        assert_eq!(
            engine.pause(now, None, "nobody", true, None),
            Err(QueueError::NotInAnyQueue("nobody".into()))
        );
        assert_eq!(
            engine.pause(now, Some("sales"), "agent1", true, None),
            Err(QueueError::UnknownQueue("sales".into()))
        );
        lab.drain();
        assert_eq!(
            lab.log(),
            strings(&[
                "0|support|agent1|ADDMEMBER|",
                "0|NONE|agent1|PAUSEALL|lab-pause",
                "0|support|agent1|PAUSE|lab-pause",
                "0|NONE|agent1|UNPAUSEALL|lab-unpause",
                "0|support|agent1|UNPAUSE|lab-unpause",
                "0|support|agent1|PAUSE|lunch",
                "0|NONE|agent1|UNPAUSEALL|",
                "0|support|agent1|UNPAUSE|",
                "0|support|agent2|ADDMEMBER|",
                "0|support|agent2|PAUSE|supervisor-hold",
                "0|support|agent2|UNPAUSE|",
                "0|support|agent2|REMOVEMEMBER|",
            ])
        );
    }

    // --- Strategies: who rings, in what order, over many callers ---

    #[test]
    fn rrmemory_continues_after_the_last_agent_rung_across_callers() {
        let mut lab = three_agents(Strategy::RrMemory, 1);
        let order: Vec<String> = (0..7)
            .map(|i| quick_call(&mut lab, i * 10_000, &format!("c{i}")))
            .collect();
        assert_eq!(order, strings(&["a", "b", "c", "a", "b", "c", "a"]));
        // x rings b (after a), b rings out, c answers; y continues after c, with a.
        lab.join(100_000, "q", "x");
        lab.run_to(117_000);
        lab.answer(117_000, "x", "c")
            .expect("the agent was ringing");
        lab.join(118_000, "q", "y");
        assert_eq!(lab.rings_for("x"), strings(&["b", "c"]));
        assert_eq!(lab.rings_for("y"), strings(&["a"]));
    }

    #[test]
    fn linear_restarts_from_the_first_agent_for_every_caller() {
        let mut lab = three_agents(Strategy::Linear, 1);
        lab.join(0, "q", "x");
        lab.run_to(17_000); // a rings out at 15 s, b rings after the 2 s retry
        lab.answer(17_000, "x", "b").expect("the agent was ringing");
        lab.end(20_000, "x", true);
        lab.join(30_000, "q", "y");
        lab.reject(31_000, "y", "a");
        lab.reject(34_000, "y", "b");
        lab.answer(37_000, "y", "c").expect("the agent was ringing");
        lab.end(40_000, "y", true);
        lab.join(50_000, "q", "z");
        assert_eq!(lab.rings_for("x"), strings(&["a", "b"]));
        assert_eq!(lab.rings_for("y"), strings(&["a", "b", "c"]));
        assert_eq!(lab.rings_for("z"), strings(&["a"]));
        assert_eq!(
            lab.rings().iter().map(|(ms, _, _)| *ms).collect::<Vec<_>>(),
            vec![0, 17_000, 30_000, 33_000, 36_000, 50_000]
        );
        // Ring-no-answer, rejection and the next attempt after `retry`, to the millisecond.
        assert!(lab.log().contains(&"15|q|a|RINGNOANSWER|15000".to_owned()));
        assert!(lab.log().contains(&"31|q|a|RINGNOANSWER|1000".to_owned()));
    }

    #[test]
    fn fewestcalls_counts_completed_calls_only() {
        let mut lab = three_agents(Strategy::FewestCalls, 1);
        lab.run_to(0);
        lab.engine
            .pause(lab.now, Some("q"), "c", true, None)
            .expect("the agent is a member");
        let first: Vec<String> = (0..4)
            .map(|i| quick_call(&mut lab, i * 10_000, &format!("p{i}")))
            .collect();
        assert_eq!(first, strings(&["a", "b", "a", "b"]));
        lab.run_to(50_000);
        lab.engine
            .pause(lab.now, Some("q"), "c", false, None)
            .expect("the agent is a member");
        // c rings and rejects: no completed call, so c is still the one with fewest.
        lab.join(50_000, "q", "r");
        assert_eq!(lab.rung("r"), "c");
        lab.reject(51_000, "r", "c");
        lab.run_to(53_000); // after the retry, a (2 calls) before b (2 calls): list order
        assert_eq!(lab.rings_for("r"), strings(&["c", "a"]));
        lab.hangup(54_000, "r");
        let next: Vec<String> = (0..3)
            .map(|i| quick_call(&mut lab, 60_000 + i * 10_000, &format!("s{i}")))
            .collect();
        assert_eq!(next, strings(&["c", "c", "a"]));
        let taken: Vec<u64> = lab
            .snapshot("q")
            .members
            .iter()
            .map(|m| m.calls_taken)
            .collect();
        assert_eq!(taken, vec![3, 2, 2]);
    }

    #[test]
    fn leastrecent_picks_whoever_finished_longest_ago() {
        let mut lab = three_agents(Strategy::LeastRecent, 1);
        // Never-called agents first, in list order.
        for (ms, call) in [(0, "x"), (1000, "y"), (2000, "z")] {
            lab.join(ms, "q", call);
            let agent = lab.rung(call);
            lab.answer(ms, call, &agent).expect("the agent was ringing");
        }
        assert_eq!(
            [lab.rung("x"), lab.rung("y"), lab.rung("z")],
            ["a", "b", "c"].map(String::from)
        );
        // a started first but ends after c: the end of the last call is what counts.
        lab.end(10_000, "z", false);
        lab.end(20_000, "x", false);
        lab.end(30_000, "y", false);
        let order: Vec<String> = (0..4)
            .map(|i| quick_call(&mut lab, 40_000 + i * 10_000, &format!("n{i}")))
            .collect();
        assert_eq!(order, strings(&["c", "a", "b", "c"]));
        assert_eq!(
            lab.snapshot("q").members[2].last_call,
            Some(lab.t0 + Duration::from_millis(71_000))
        );
    }

    #[test]
    fn random_is_reproducible_from_the_seed_and_spreads_calls() {
        let run = |seed: u64| {
            let mut lab = three_agents(Strategy::Random, seed);
            (0..300)
                .map(|i| quick_call(&mut lab, i * 10_000, &format!("r{i}")))
                .collect::<Vec<_>>()
        };
        let first = run(7);
        assert_eq!(first, run(7));
        assert_ne!(first, run(8));
        for agent in ["a", "b", "c"] {
            let count = first.iter().filter(|a| *a == agent).count();
            assert!((70..=130).contains(&count), "{agent} got {count} of 300");
        }
    }

    #[test]
    fn random_tries_someone_else_after_a_ring_out() {
        let mut lab = three_agents(Strategy::Random, 3);
        lab.join(0, "q", "x");
        lab.run_to(60_000);
        let rung = lab.rings_for("x");
        assert_eq!(rung.len(), 4); // at 0, 17, 34, 51 s
        let mut round: Vec<&String> = rung[..3].iter().collect();
        round.sort();
        assert_eq!(
            round,
            vec!["a", "b", "c"],
            "the first round tries every agent once"
        );
    }

    #[test]
    fn ringall_rings_every_free_agent_and_stops_the_losers() {
        let mut lab = three_agents(Strategy::RingAll, 1);
        lab.busy(0, "b", true);
        lab.join(1000, "q", "x");
        assert_eq!(lab.rings_for("x"), strings(&["a", "c"]));
        lab.answer(3000, "x", "c").expect("the agent was ringing");
        assert_eq!(lab.stops(), vec![(3000, "x".into(), "a".into())]);
        assert!(
            !lab.log().iter().any(|l| l.contains("RINGNOANSWER")),
            "losers are not no-answers"
        );
        assert_eq!(
            lab.log().last().map(String::as_str),
            Some("3|q|c|CONNECT|2|LEG|2")
        );
        assert_eq!(
            lab.answer(3001, "x", "a"),
            Err(QueueError::NotRinging {
                call_id: "x".into(),
                agent: "a".into()
            })
        );
        // Everyone rings out together, then again after the retry.
        lab.join(4000, "q", "y");
        assert_eq!(lab.rings_for("y"), strings(&["a"]));
        lab.busy(5000, "b", false);
        assert_eq!(
            lab.rings_for("y"),
            strings(&["a"]),
            "b joins at the next attempt, not mid-ring"
        );
        lab.run_to(21_000);
        assert_eq!(lab.rings_for("y"), strings(&["a", "a", "b"]));
        assert!(lab.log().contains(&"19|q|a|RINGNOANSWER|15000".to_owned()));
    }

    #[test]
    fn max_wait_cuts_a_ring_short_and_sends_the_caller_away() {
        let mut lab = three_agents(Strategy::Linear, 1);
        lab.queue(QueueConfig {
            retry: Duration::from_secs(2),
            max_wait: Some(Duration::from_secs(20)),
            ..QueueConfig::new("q", Strategy::Linear)
        });
        lab.join(0, "q", "x");
        lab.run_to(30_000);
        assert_eq!(
            lab.log()[3..],
            strings(&[
                "0|q|NONE|ENTERQUEUE||caller1|1",
                "15|q|a|RINGNOANSWER|15000",
                "20|q|b|RINGNOANSWER|3000",
                "20|q|NONE|EXITWITHTIMEOUT|1|1|20",
            ])
        );
        assert_eq!(
            lab.stops(),
            vec![
                (15_000, "x".into(), "a".into()),
                (20_000, "x".into(), "b".into())
            ]
        );
        assert_eq!(
            lab.actions.last(),
            Some(&(
                20_000,
                QueueAction::Hangup {
                    call_id: "x".into(),
                    reason: HangupReason::Timeout
                }
            ))
        );
        assert_eq!(lab.engine.poll_timeout(), None);
        assert!(lab
            .snapshot("q")
            .members
            .iter()
            .all(|m| m.state == AgentState::Idle));
    }

    #[test]
    fn static_members_stay_logged_in_dynamic_ones_log_out() {
        let mut lab = Lab::new(1);
        lab.queue(QueueConfig::new("sales", Strategy::RingAll));
        lab.engine
            .add_member(lab.now, "sales", "agent3", true)
            .expect("the agent joins a configured queue");
        lab.member(0, "sales", "agent1");
        assert_eq!(
            lab.engine.remove_member(lab.now, "sales", "agent3"),
            Err(QueueError::StaticMember {
                queue: "sales".into(),
                agent: "agent3".into()
            })
        );
        lab.engine
            .remove_member(lab.now, "sales", "agent1")
            .expect("a dynamic member logs out");
        lab.drain();
        let members = lab.snapshot("sales").members;
        assert_eq!(members.len(), 1);
        assert!(members[0].static_member);
        assert!(matches!(
            &lab.events[0].1,
            QueueEvent::AddMember { static_member: true, agent, .. } if agent == "agent3"
        ));
        assert!(lab
            .engine
            .add_member(lab.now, "nope", "agent1", false)
            .is_err());
    }

    #[test]
    fn paused_agents_get_no_offers_until_unpaused() {
        let mut lab = three_agents(Strategy::Linear, 1);
        lab.queue(QueueConfig::new("other", Strategy::RingAll));
        lab.member(0, "other", "a");
        lab.run_to(1000);
        lab.engine
            .pause(lab.now, None, "a", true, Some("lunch".into()))
            .expect("the agent is a member");
        lab.engine
            .pause(lab.now, Some("q"), "b", true, Some("coffee-break".into()))
            .expect("the agent is a member");
        lab.drain();
        lab.join(2000, "q", "x");
        assert_eq!(lab.rings_for("x"), strings(&["c"]));
        let members = lab.snapshot("q").members;
        assert_eq!(
            members
                .iter()
                .map(|m| (m.paused, m.paused_reason.as_str()))
                .collect::<Vec<_>>(),
            vec![(true, "lunch"), (true, "coffee-break"), (false, "")]
        );
        assert_eq!(
            members[0].last_pause,
            Some(lab.t0 + Duration::from_millis(1000))
        );
        assert!(
            lab.snapshot("other").members[0].paused,
            "pause without a queue pauses everywhere"
        );
        lab.reject(3000, "x", "c");
        lab.run_to(10_000);
        assert_eq!(
            lab.rings_for("x"),
            strings(&["c", "c"]),
            "paused agents are skipped on retry too"
        );
        lab.run_to(11_000);
        lab.engine
            .pause(lab.now, Some("q"), "b", false, None)
            .expect("the agent is a member");
        lab.drain();
        lab.join(11_000, "q", "y");
        assert_eq!(
            lab.rings_for("y"),
            strings(&["b"]),
            "an unpaused agent is offered at once"
        );
    }

    #[test]
    fn wrapup_delays_the_next_offer() {
        let mut lab = Lab::new(1);
        lab.queue(QueueConfig {
            wrapup: Duration::from_secs(10),
            ..QueueConfig::new("q", Strategy::RingAll)
        });
        lab.member(0, "q", "a");
        lab.join(0, "q", "x");
        lab.answer(1000, "x", "a").expect("the agent was ringing");
        lab.end(5000, "x", true);
        lab.join(6000, "q", "y");
        assert!(lab.rings_for("y").is_empty());
        assert_eq!(lab.snapshot("q").members[0].state, AgentState::WrapUp);
        assert_eq!(
            lab.engine.poll_timeout(),
            Some(lab.t0 + Duration::from_millis(15_000))
        );
        lab.run_to(20_000);
        assert_eq!(
            lab.rings(),
            vec![
                (0, "x".into(), "a".into()),
                (15_000, "y".into(), "a".into())
            ]
        );
        let states: Vec<AgentState> = lab
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                QueueEvent::MemberStatus { state, .. } => Some(*state),
                _ => None,
            })
            .collect();
        assert_eq!(
            states,
            vec![
                AgentState::Ringing,
                AgentState::InCall,
                AgentState::WrapUp,
                AgentState::Ringing
            ]
        );
    }

    #[test]
    fn busy_agents_are_skipped() {
        let mut lab = three_agents(Strategy::RrMemory, 1);
        lab.busy(0, "a", true);
        lab.join(1000, "q", "x");
        assert_eq!(lab.rung("x"), "b");
        assert_eq!(lab.snapshot("q").members[0].state, AgentState::Busy);
        lab.busy(2000, "a", false);
        lab.join(3000, "q", "y");
        assert_eq!(lab.rung("y"), "c");
        lab.join(4000, "q", "z");
        assert_eq!(lab.rung("z"), "a");
    }

    #[test]
    fn an_agent_in_two_queues_rings_for_one_caller_at_a_time() {
        let mut lab = Lab::new(1);
        lab.queue(QueueConfig::new("support", Strategy::RingAll));
        lab.queue(QueueConfig::new("sales", Strategy::RingAll));
        lab.member(0, "support", "a");
        lab.member(0, "sales", "a");
        lab.join(1000, "sales", "early");
        lab.join(2000, "support", "late");
        lab.reject(3000, "early", "a");
        // a is free again: the later caller is the only one not pausing between attempts.
        assert_eq!(
            lab.rings(),
            vec![
                (1000, "early".into(), "a".into()),
                (3000, "late".into(), "a".into())
            ]
        );
        lab.answer(4000, "late", "a")
            .expect("the agent was ringing");
        lab.end(5000, "late", false);
        lab.run_to(8000);
        assert_eq!(
            lab.rings().last(),
            Some(&(8000, "early".into(), "a".into())),
            "early retries after 5 s"
        );
    }

    #[test]
    fn join_empty_and_full_refuse_at_the_door() {
        let mut lab = Lab::new(1);
        lab.queue(QueueConfig {
            join_empty: false,
            max_len: Some(2),
            ..QueueConfig::new("q", Strategy::RingAll)
        });
        assert_eq!(
            lab.join(0, "q", "x"),
            JoinOutcome::Refused(RefuseReason::Empty)
        );
        lab.member(0, "q", "a");
        lab.engine
            .pause(lab.now, Some("q"), "a", true, None)
            .expect("the agent is a member");
        assert_eq!(
            lab.join(0, "q", "y"),
            JoinOutcome::Refused(RefuseReason::Empty),
            "paused counts as empty"
        );
        lab.engine
            .pause(lab.now, Some("q"), "a", false, None)
            .expect("the agent is a member");
        assert_eq!(lab.join(0, "q", "z1"), JoinOutcome::Joined { position: 1 });
        assert_eq!(lab.join(0, "q", "z2"), JoinOutcome::Joined { position: 2 });
        assert_eq!(
            lab.join(0, "q", "z3"),
            JoinOutcome::Refused(RefuseReason::Full)
        );
        assert_eq!(
            lab.engine.caller_join(lab.now, "q", "z1", "dup"),
            Err(QueueError::DuplicateCall("z1".into()))
        );
        let verbs: Vec<&str> = lab.events.iter().filter_map(|(_, e)| e.verb()).collect();
        assert_eq!(
            verbs,
            vec![
                "JOINEMPTY",
                "ADDMEMBER",
                "PAUSE",
                "JOINEMPTY",
                "UNPAUSE",
                "ENTERQUEUE",
                "ENTERQUEUE",
                "FULL"
            ]
        );
    }

    #[test]
    fn leave_when_empty_sends_waiting_callers_away_when_the_last_agent_leaves() {
        let mut lab = Lab::new(1);
        lab.queue(QueueConfig {
            leave_when_empty: true,
            ..QueueConfig::new("q", Strategy::Linear)
        });
        lab.member(0, "q", "a");
        lab.member(0, "q", "b");
        lab.join(1000, "q", "x");
        lab.join(2000, "q", "y");
        lab.join(3000, "q", "w");
        assert_eq!((lab.rung("x"), lab.rung("y")), ("a".into(), "b".into()));
        lab.run_to(4000);
        lab.engine
            .pause(lab.now, Some("q"), "b", true, Some("break".into()))
            .expect("the agent is a member");
        lab.drain();
        assert_eq!(
            lab.snapshot("q").callers.len(),
            3,
            "one unpaused member is enough"
        );
        lab.run_to(6000);
        lab.engine
            .remove_member(lab.now, "q", "a")
            .expect("a dynamic member logs out");
        lab.drain();
        assert_eq!(
            lab.log()[lab.log().len() - 6..],
            strings(&[
                "6|q|a|RINGNOANSWER|5000",
                "6|q|a|REMOVEMEMBER|",
                "6|q|NONE|EXITEMPTY|3|3|3",
                "6|q|b|RINGNOANSWER|4000",
                "6|q|NONE|EXITEMPTY|2|2|4",
                "6|q|NONE|EXITEMPTY|1|1|5",
            ])
        );
        let hangups = lab
            .actions
            .iter()
            .filter(|(_, a)| {
                matches!(
                    a,
                    QueueAction::Hangup {
                        reason: HangupReason::Empty,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(hangups, 3);
        assert!(lab.snapshot("q").callers.is_empty());
        assert_eq!(lab.snapshot("q").stats.abandoned, 3);
    }

    #[test]
    fn positions_move_up_when_callers_leave() {
        let mut lab = Lab::new(1);
        lab.queue(QueueConfig::new("q", Strategy::RingAll));
        for (ms, call) in [(0, "x"), (1000, "y"), (2000, "z")] {
            lab.join(ms, "q", call);
        }
        lab.hangup(5000, "y");
        let callers = lab.snapshot("q").callers;
        assert_eq!(
            callers
                .iter()
                .map(|c| (c.call_id.as_str(), c.position, c.orig_position))
                .collect::<Vec<_>>(),
            vec![("x", 1, 1), ("z", 2, 3)]
        );
        assert_eq!(
            callers[1].wait(lab.t0 + Duration::from_millis(9500)),
            Duration::from_millis(7500)
        );
        lab.member(6000, "q", "a");
        assert_eq!(lab.rung("x"), "a", "position 1 is served first");
        lab.answer(7000, "x", "a").expect("the agent was ringing");
        lab.hangup(8000, "z");
        assert_eq!(
            lab.log()[3..],
            strings(&[
                "5|q|NONE|ABANDON|2|2|4",
                "6|q|a|ADDMEMBER|",
                "7|q|a|CONNECT|7|LEG|1",
                "8|q|NONE|ABANDON|1|3|6",
            ])
        );
        let leaves: Vec<(usize, usize)> = lab
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                QueueEvent::CallerLeave {
                    position, count, ..
                } => Some((*position, *count)),
                _ => None,
            })
            .collect();
        assert_eq!(leaves, vec![(2, 2), (1, 1), (1, 0)]);
    }

    #[test]
    fn removing_a_ringing_agent_moves_on_to_the_next() {
        let mut lab = three_agents(Strategy::Linear, 1);
        lab.join(0, "q", "x");
        lab.run_to(4000);
        lab.engine
            .remove_member(lab.now, "q", "a")
            .expect("a dynamic member logs out");
        lab.drain();
        assert_eq!(lab.stops(), vec![(4000, "x".into(), "a".into())]);
        lab.run_to(6000);
        assert_eq!(lab.rings_for("x"), strings(&["a", "b"]));
        assert_eq!(lab.rings().last().map(|r| r.0), Some(6000));
    }

    #[test]
    fn late_answers_are_refused_and_stale_reports_ignored() {
        let mut lab = three_agents(Strategy::Linear, 1);
        lab.join(0, "q", "x");
        lab.run_to(16_000);
        assert_eq!(
            lab.answer(16_000, "x", "a"),
            Err(QueueError::NotRinging {
                call_id: "x".into(),
                agent: "a".into()
            })
        );
        let before = lab.events.len();
        lab.reject(16_000, "x", "a");
        lab.reject(16_000, "nope", "a");
        lab.hangup(16_000, "nope");
        lab.end(16_000, "nope", true);
        lab.engine.transferred(lab.now, "nope", true, "1002");
        lab.drain();
        assert_eq!(lab.events.len(), before);
        assert!(lab.answer(17_000, "x", "b").is_ok());
    }

    #[test]
    fn ring_timeout_zero_rings_until_the_caller_gives_up() {
        let mut lab = Lab::new(1);
        lab.queue(QueueConfig {
            ring_timeout: Duration::ZERO,
            max_wait: Some(Duration::from_secs(300)),
            ..QueueConfig::new("q", Strategy::Linear)
        });
        lab.member(0, "q", "a");
        lab.join(0, "q", "x");
        assert_eq!(
            lab.engine.poll_timeout(),
            Some(lab.t0 + Duration::from_secs(300))
        );
        lab.run_to(400_000);
        assert_eq!(
            lab.log()[2..],
            strings(&[
                "300|q|a|RINGNOANSWER|300000",
                "300|q|NONE|EXITWITHTIMEOUT|1|1|300"
            ])
        );
    }

    #[test]
    fn replacing_a_queue_keeps_members_and_callers() {
        let mut lab = three_agents(Strategy::RingAll, 1);
        lab.join(0, "q", "x");
        lab.queue(QueueConfig::new("q", Strategy::Linear));
        let snap = lab.snapshot("q");
        assert_eq!(
            (snap.strategy, snap.members.len(), snap.callers.len()),
            (Strategy::Linear, 3, 1)
        );
        assert_eq!(snap.callers[0].ringing, strings(&["a", "b", "c"]));
        assert_eq!(snap.members[0].current_call.as_deref(), Some("x"));
    }

    #[test]
    fn stats_keep_asterisks_running_averages() {
        let mut lab = Lab::new(1);
        lab.queue(QueueConfig::new("q", Strategy::RingAll));
        lab.member(0, "q", "a");
        lab.join(0, "q", "x");
        lab.answer(8000, "x", "a").expect("the agent was ringing");
        lab.end(48_000, "x", true);
        lab.join(50_000, "q", "y");
        lab.answer(54_000, "y", "a").expect("the agent was ringing");
        lab.end(74_000, "y", true);
        let stats = lab.snapshot("q").stats;
        // hold: (3*0+8)/4 = 2, then (3*2+4)/4 = 2; talk: 40/4 = 10, then (30+20)/4 = 12.
        assert_eq!(
            stats,
            QueueStats {
                completed: 2,
                abandoned: 0,
                avg_hold_secs: 2,
                avg_talk_secs: 12
            }
        );
    }

    /// Seeded random walk: joins, answers, rejections, hangups, transfers, pauses, log-ins and
    /// log-outs, busy flags and time jumps over six queues (one per strategy).
    #[test]
    fn random_walk_keeps_every_call_accounted_for() {
        let mut rng = XorShift::new(0x5EED);
        let mut lab = Lab::new(42);
        let agents = ["a1", "a2", "a3", "a4", "a5", "a6", "a7"];
        let queues: Vec<String> = Strategy::ALL.iter().map(|s| s.to_string()).collect();
        for (i, strategy) in Strategy::ALL.into_iter().enumerate() {
            lab.queue(QueueConfig {
                max_wait: (i % 2 == 0).then(|| Duration::from_secs(60 + 20 * i as u64)),
                ring_timeout: Duration::from_secs(5 + i as u64 * 3),
                retry: Duration::from_secs(i as u64 % 3),
                wrapup: Duration::from_secs(i as u64 * 2),
                join_empty: i != 1,
                leave_when_empty: i == 2 || i == 5,
                max_len: (i == 3).then_some(4),
                ..QueueConfig::new(queues[i].clone(), strategy)
            });
        }
        for (i, agent) in agents.iter().enumerate() {
            lab.engine
                .add_member(lab.now, &queues[i % 6], agent, i == 0)
                .expect("the agent joins a configured queue");
            lab.engine
                .add_member(lab.now, &queues[(i + 2) % 6], agent, false)
                .expect("the agent joins a configured queue");
        }
        lab.drain();

        let mut ringing: HashMap<String, String> = HashMap::new(); // agent → call
        let mut talking: HashMap<String, String> = HashMap::new(); // agent → call
        let mut known_calls: Vec<String> = Vec::new();
        let mut seen_actions = lab.actions.len();
        let mut seen_events = lab.events.len();
        let mut clock_ms = 0u64;
        let mut next_call = 0u32;
        let mut answers = 0u32;

        let pick = |rng: &mut XorShift, items: &[&str]| items[rng.below(items.len())].to_owned();
        for step in 0..10_000u32 {
            let agent = pick(&mut rng, &agents);
            let queue = queues[rng.below(queues.len())].clone();
            match rng.below(16) {
                0..=3 => {
                    next_call += 1;
                    let call = format!("call{next_call}");
                    lab.run_to(clock_ms);
                    if let JoinOutcome::Joined { .. } = lab
                        .engine
                        .caller_join(lab.now, &queue, &call, "+15550100")
                        .expect("the queue exists and the call id is new")
                    {
                        known_calls.push(call);
                    }
                }
                4..=6 => {
                    // Someone being rung answers (or a stale answer for a random pair).
                    let mut pairs: Vec<(&String, &String)> = ringing.iter().collect();
                    pairs.sort();
                    lab.run_to(clock_ms);
                    if !pairs.is_empty() && rng.below(5) > 0 {
                        let (agent, call) = pairs[rng.below(pairs.len())];
                        let (agent, call) = (agent.clone(), call.clone());
                        lab.engine
                            .agent_answered(lab.now, &call, &agent)
                            .expect("the agent was ringing for that call");
                        ringing.remove(&agent);
                        talking.insert(agent, call);
                        answers += 1;
                    } else if let Some(call) = known_calls.get(rng.below(known_calls.len().max(1)))
                    {
                        let expected_ok = ringing.get(&agent) == Some(call);
                        let result = lab.engine.agent_answered(lab.now, call, &agent);
                        assert_eq!(
                            result.is_ok(),
                            expected_ok,
                            "step {step}: answer {agent} for {call}"
                        );
                        if expected_ok {
                            ringing.remove(&agent);
                            talking.insert(agent.clone(), call.clone());
                        }
                    }
                }
                7 => {
                    lab.run_to(clock_ms);
                    if let Some(call) = ringing.get(&agent).cloned() {
                        lab.engine.agent_rejected(lab.now, &call, &agent);
                        ringing.remove(&agent);
                    }
                }
                8 => {
                    lab.run_to(clock_ms);
                    if let Some(call) = known_calls
                        .get(rng.below(known_calls.len().max(1)))
                        .cloned()
                    {
                        lab.engine.caller_hangup(lab.now, &call);
                    }
                }
                9 => {
                    lab.run_to(clock_ms);
                    if let Some(call) = talking.get(&agent).cloned() {
                        match rng.below(4) {
                            0 => lab.engine.transferred(lab.now, &call, true, "1002"),
                            1 => lab.engine.transferred(lab.now, &call, false, "a9"),
                            n => lab.engine.call_ended(lab.now, &call, n == 2),
                        }
                    }
                }
                10 => {
                    lab.run_to(clock_ms);
                    let which = (rng.below(3) > 0).then_some(queue.as_str());
                    let _ = lab.engine.pause(
                        lab.now,
                        which,
                        &agent,
                        rng.below(2) == 0,
                        Some("r".into()),
                    );
                }
                11 => {
                    lab.run_to(clock_ms);
                    let _ = lab.engine.add_member(lab.now, &queue, &agent, false);
                }
                12 => {
                    lab.run_to(clock_ms);
                    let _ = lab.engine.remove_member(lab.now, &queue, &agent);
                }
                13 => {
                    lab.run_to(clock_ms);
                    lab.engine
                        .set_agent_busy(lab.now, &agent, rng.below(3) == 0);
                }
                _ => {
                    clock_ms += u64::try_from(rng.below(20_000)).expect("a small number fits u64");
                    lab.run_to(clock_ms);
                }
            }
            lab.drain();

            // Replay the step: calls that ended free their agent, then the new rings must go
            // to agents that are neither ringing nor talking, then new connections.
            for (_, event) in &lab.events[seen_events..] {
                match event {
                    QueueEvent::CompleteAgent { agent, call_id, .. }
                    | QueueEvent::CompleteCaller { agent, call_id, .. }
                    | QueueEvent::BlindTransfer { agent, call_id, .. }
                    | QueueEvent::AttendedTransfer { agent, call_id, .. } => {
                        assert_eq!(talking.remove(agent).as_ref(), Some(call_id), "step {step}");
                    }
                    _ => {}
                }
            }
            for (_, action) in &lab.actions[seen_actions..] {
                match action {
                    QueueAction::Ring { call_id, agent, .. } => {
                        assert!(
                            !ringing.contains_key(agent),
                            "step {step}: {agent} rung twice"
                        );
                        assert!(
                            !talking.contains_key(agent),
                            "step {step}: {agent} rung while talking"
                        );
                        ringing.insert(agent.clone(), call_id.clone());
                    }
                    QueueAction::StopRinging { call_id, agent } => {
                        assert_eq!(ringing.remove(agent).as_ref(), Some(call_id), "step {step}");
                    }
                    QueueAction::Hangup { .. } => {}
                }
            }
            seen_actions = lab.actions.len();
            for (_, event) in &lab.events[seen_events..] {
                if let QueueEvent::Connect { agent, call_id, .. } = event {
                    assert_eq!(talking.get(agent), Some(call_id), "step {step}");
                }
            }
            seen_events = lab.events.len();
            // The engine's own view agrees: nobody rings for two callers.
            let mut rung_now: Vec<String> = lab
                .engine
                .snapshot()
                .iter()
                .flat_map(|q| q.callers.iter().flat_map(|c| c.ringing.clone()))
                .collect();
            let total = rung_now.len();
            rung_now.sort();
            rung_now.dedup();
            assert_eq!(
                rung_now.len(),
                total,
                "step {step}: an agent rings for two callers"
            );
            assert_eq!(total, ringing.len(), "step {step}");
        }

        // Wind down: every caller hangs up, every call ends.
        lab.run_to(clock_ms);
        for call in &known_calls {
            lab.engine.caller_hangup(lab.now, call);
        }
        lab.drain();
        assert!(lab.engine.snapshot().iter().all(|q| q.callers.is_empty()));

        let mut ends: HashMap<&str, Vec<&'static str>> = HashMap::new();
        for (_, event) in &lab.events {
            if let (Some(call), Some(verb)) = (event.call_id(), event.verb()) {
                if !matches!(verb, "RINGNOANSWER" | "RINGCANCELED") {
                    ends.entry(call).or_default().push(verb);
                }
            }
        }
        let mut outcomes: HashMap<&str, usize> = HashMap::new();
        for call in &known_calls {
            let verbs = ends.get(call.as_str()).cloned().unwrap_or_default();
            let shape = match verbs.as_slice() {
                ["ENTERQUEUE", "ABANDON"] => "abandon",
                ["ENTERQUEUE", "EXITWITHTIMEOUT"] => "timeout",
                ["ENTERQUEUE", "EXITEMPTY"] => "empty",
                ["ENTERQUEUE", "CONNECT", "COMPLETEAGENT" | "COMPLETECALLER"] => "completed",
                ["ENTERQUEUE", "CONNECT", "BLINDTRANSFER" | "ATTENDEDTRANSFER"] => "transferred",
                other => panic!("{call}: {other:?}"),
            };
            *outcomes.entry(shape).or_default() += 1;
        }
        // The walk must actually exercise every ending, not just survive.
        for shape in ["abandon", "timeout", "empty", "completed", "transferred"] {
            assert!(
                outcomes.get(shape).copied().unwrap_or(0) >= 5,
                "{shape}: {outcomes:?}"
            );
        }
        assert!(answers > 200, "only {answers} answers");
        assert!(known_calls.len() > 1000);
    }
}
