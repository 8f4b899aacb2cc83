//! The lab's simulated call center: virtual callers and bot agents driving the queue engine,
//! sans-IO, so `ringside` shows a live call center with nobody on the phones.
//!
//! [`Simulation`] owns the [`QueueEngine`] and the [`QueueLogWriter`]. Per queue, callers
//! arrive as a Poisson process (`callers_per_minute`), each with a caller ID from the pool and a
//! patience drawn around the configured mean: a caller still waiting (or ringing) when it runs
//! out hangs up, which the engine reports as ABANDON (after RINGCANCELED when an agent rang).
//! Bot agents `bot1`..`botN` log in as dynamic members at start, pick up a ring after 1–4 s,
//! let some rings run out (RINGNOANSWER), talk for a log-normal time around the mean, then end
//! the call from either side (COMPLETEAGENT / COMPLETECALLER) or transfer it (BLINDTRANSFER /
//! ATTENDEDTRANSFER); now and then they pause with a reason or log out for a while.
//!
//! Real phones take part through the same object: the SIP side logs agents in
//! ([`Simulation::real_agent_login`]), puts real callers in queues, and reports answers,
//! hang-ups and transfers. The engine's actions for bots and virtual callers are carried out
//! here; everything else comes out of [`Simulation::poll_action`] for the SIP side: rings for
//! real agents (even for a virtual caller, see [`Simulation::is_simulated_call`]), hang-ups of
//! real callers, and [`SimAction::EndCall`] when a bot or a virtual caller ends a call that has a
//! real leg. A bot may answer a real caller: the Connect event then names a bot
//! ([`Simulation::is_bot`]), which has no SIP leg, so the SIP side keeps the caller on generated
//! audio (it is told with [`SimAction::BotAnswered`]) until `EndCall`. Bots never transfer real
//! callers.
//!
//! Contract, as everywhere in the core: call `start` once, then after every input
//! (`handle_timeout` when `poll_timeout` says so, or a SIP report) drain `poll_action`,
//! `poll_event` and `poll_queue_log`. Time comes in as `now`; Unix time for queue_log comes from
//! [`Simulation::set_wall_clock`]. Randomness comes from the seed, so a seed and the same inputs
//! give the same queue_log byte for byte.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::lab::config::LabConfig;
use crate::lab::queue::{
    JoinOutcome, QueueAction, QueueEngine, QueueError, QueueEvent, QueueSnapshot,
};
use crate::lab::queue_log_writer::{queue_start_line, LineIds, QueueLogWriter};

/// Where a timer sits in the simulation's table: due time, then creation order.
type TimerKey = (Instant, u64);

/// How a waiting bot retries a pause or logout it could not take because it was on a call.
const BUSY_RETRY: Duration = Duration::from_secs(20);
/// Spread of the log-normal talk time (of the underlying normal).
const TALK_SIGMA: f64 = 0.6;
/// The shortest call a virtual caller makes.
const MIN_TALK: Duration = Duration::from_secs(1);
/// No drawn duration is longer: a day.
const MAX_DRAW_SECS: f64 = 86_400.0;

/// What the SIP side must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimAction {
    /// An engine action about a real phone: ring or stop ringing a real agent, or take a real
    /// caller out of the queue.
    Queue(QueueAction),
    /// The simulation ended this queue call (a bot hung up on a real caller, or a virtual caller
    /// hung up on a real agent): hang up its real leg. The queue has already logged the end.
    EndCall {
        /// The queue call's id.
        call_id: String,
    },
    /// A bot picked up a real caller (a caller with a SIP leg): the SIP side plays the bot's
    /// voice to the caller until [`SimAction::EndCall`], or until the caller hangs up.
    BotAnswered {
        /// The queue call's id.
        call_id: String,
        /// The bot.
        agent: String,
    },
}

/// A transfer reported by the SIP side (the agent's REFER).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer<'a> {
    /// Blind: the caller was sent to `target` in dialplan `context`.
    Blind {
        /// The Refer-To user part.
        target: &'a str,
        /// The context written in queue_log (the lab has one, `lab`).
        context: &'a str,
    },
    /// Attended: the caller was bridged to `target` in bridge `bridge`.
    Attended {
        /// Who took the caller.
        target: &'a str,
        /// The bridge's uniqueid, written in queue_log.
        bridge: &'a str,
    },
}

/// What a bot is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotActivity {
    /// Logged out of its queues for a while.
    LoggedOut,
    /// Free (or in wrap-up, which the engine knows).
    Idle,
    /// Being rung; it will pick up or let it ring out.
    Ringing,
    /// On a queue call.
    Talking,
}

/// One bot agent, for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotSnapshot {
    /// `bot1`...
    pub name: String,
    /// What it is doing.
    pub activity: BotActivity,
    /// Paused in its queues.
    pub paused: bool,
    /// The call it rings for or talks to.
    pub call_id: Option<String>,
}

/// Running totals of what the simulation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimCounters {
    /// Virtual callers sent into queues.
    pub callers: u64,
    /// Rings bots picked up.
    pub bot_answers: u64,
    /// Rings bots let run out.
    pub bot_ring_outs: u64,
    /// Virtual callers whose patience ran out while waiting or ringing.
    pub impatient_hangups: u64,
    /// Blind and attended transfers by bots.
    pub bot_transfers: u64,
    /// Bot pauses.
    pub bot_pauses: u64,
    /// Bot logouts.
    pub bot_logouts: u64,
}

/// The whole picture: queues (from the engine), bots, totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimSnapshot {
    /// Every queue with its callers and members.
    pub queues: Vec<QueueSnapshot>,
    /// Every bot.
    pub bots: Vec<BotSnapshot>,
    /// Totals since start.
    pub counters: SimCounters,
}

/// Sizes of the internal tables, to show that memory stays flat: with no call in progress
/// they come back to the same values whatever the traffic before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Footprint {
    /// Calls the simulation follows (virtual callers, and real callers talking to bots).
    pub calls: usize,
    /// Pending timers.
    pub timers: usize,
    /// Actions not drained yet.
    pub pending_actions: usize,
    /// Events not drained yet.
    pub pending_events: usize,
    /// queue_log text waits to be drained.
    pub pending_log: bool,
    /// Callers waiting in the engine, all queues.
    pub engine_waiting: usize,
    /// Distinct calls the engine's members ring for or talk to.
    pub engine_calls_at_agents: usize,
}

#[derive(Debug, Clone)]
enum Timer {
    Arrival { queue: usize },
    Patience { call_id: String },
    BotAnswer { bot: usize, call_id: String },
    CallEnd { call_id: String },
    BotPause { bot: usize },
    BotUnpause { bot: usize },
    BotLogout { bot: usize },
    BotLogin { bot: usize },
}

#[derive(Debug, Clone)]
struct SimCall {
    /// A virtual caller (else a real caller a bot answered).
    simulated: bool,
    patience: Option<TimerKey>,
    end: Option<TimerKey>,
    agent: Option<String>,
}

#[derive(Debug, Clone)]
struct Bot {
    name: String,
    queues: Vec<String>,
    logged_in: bool,
    paused: bool,
    /// The call it rings for, and the timer of its pick-up (none when it lets it ring out).
    ringing: Option<(String, Option<TimerKey>)>,
    in_call: Option<String>,
    /// The pending pause-or-unpause timer, and the pending logout-or-login timer.
    pause_timer: Option<TimerKey>,
    logout_timer: Option<TimerKey>,
}

impl Bot {
    fn is_free(&self) -> bool {
        self.ringing.is_none() && self.in_call.is_none()
    }
}

#[derive(Debug, Clone)]
struct Arrivals {
    per_minute: f64,
    timer: Option<TimerKey>,
}

/// Ids for queue_log columns that the current input owns (see [`LineIds`]).
#[derive(Debug, Clone, Default)]
struct PendingIds {
    member_call_id: Option<String>,
    agent_leg: Option<String>,
    bridge: Option<String>,
    context: Option<String>,
}

/// xorshift64*, seeded through splitmix64 so that nearby seeds give unrelated streams.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // Zero is xorshift's fixed point.
        Rng(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in (0, 1): never 0, so its logarithm is finite.
    fn unit(&mut self) -> f64 {
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        ((self.next_u64() >> 11) as f64 + 0.5) * SCALE
    }

    /// A number in `0..bound` (0 when `bound` is 0).
    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }

    fn chance(&mut self, percent: f64) -> bool {
        self.unit() * 100.0 < percent
    }

    fn exponential(&mut self, mean: Duration) -> Duration {
        seconds(-mean.as_secs_f64() * self.unit().ln())
    }

    /// Log-normal with the given mean: most calls near it, a long tail of long ones.
    fn log_normal(&mut self, mean: Duration, sigma: f64) -> Duration {
        let mean = mean.as_secs_f64().max(f64::MIN_POSITIVE);
        let normal = (-2.0 * self.unit().ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos();
        seconds((mean.ln() - sigma * sigma / 2.0 + sigma * normal).exp())
    }

    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = high.saturating_sub(low).as_secs_f64();
        low.saturating_add(seconds(span * self.unit()))
    }
}

fn seconds(value: f64) -> Duration {
    if value.is_nan() {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(value.clamp(0.0, MAX_DRAW_SECS)).unwrap_or(Duration::ZERO)
}

/// Virtual callers and bot agents around a queue engine. See the module documentation.
#[derive(Debug, Clone)]
pub struct Simulation {
    config: LabConfig,
    engine: QueueEngine,
    log: QueueLogWriter,
    rng: Rng,
    started_at: Option<Instant>,
    /// The latest instant seen: inputs never go back in time.
    now: Option<Instant>,
    wall_clock: Option<(Instant, Duration)>,
    timers: BTreeMap<TimerKey, Timer>,
    timer_seq: u64,
    arrivals: Vec<Arrivals>,
    calls: HashMap<String, SimCall>,
    bots: Vec<Bot>,
    bot_by_name: HashMap<String, usize>,
    actions: VecDeque<SimAction>,
    events: VecDeque<QueueEvent>,
    ids: PendingIds,
    next_id: u64,
    counters: SimCounters,
}

impl Simulation {
    /// A simulation of `config`'s queues, not started; `seed` drives every random choice.
    pub fn new(config: LabConfig, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let mut engine = QueueEngine::new(rng.next_u64());
        for queue in config.queue_configs() {
            engine.add_queue(queue);
        }
        let arrivals = config
            .queues
            .iter()
            .map(|queue| Arrivals {
                per_minute: config.callers_per_minute(queue),
                timer: None,
            })
            .collect();
        let bot_queues = config.bot_queue_names();
        let count = usize::try_from(config.simulation.bots).unwrap_or(0);
        let bots: Vec<Bot> = (1..=count)
            .map(|n| Bot {
                name: format!("bot{n}"),
                queues: bot_queues.clone(),
                logged_in: false,
                paused: false,
                ringing: None,
                in_call: None,
                pause_timer: None,
                logout_timer: None,
            })
            .collect();
        let bot_by_name = bots
            .iter()
            .enumerate()
            .map(|(index, bot)| (bot.name.clone(), index))
            .collect();
        Simulation {
            config,
            engine,
            log: QueueLogWriter::new(),
            rng,
            started_at: None,
            now: None,
            wall_clock: None,
            timers: BTreeMap::new(),
            timer_seq: 0,
            arrivals,
            calls: HashMap::new(),
            bots,
            bot_by_name,
            actions: VecDeque::new(),
            events: VecDeque::new(),
            ids: PendingIds::default(),
            next_id: 0,
            counters: SimCounters::default(),
        }
    }

    /// Tie the monotonic clock to Unix time (`since_epoch` at `at`) for queue_log epochs, call
    /// ids and the engine's whole-second arithmetic. Without it, epochs count from `start`.
    pub fn set_wall_clock(&mut self, at: Instant, since_epoch: Duration) {
        self.wall_clock = Some((at, since_epoch));
        self.engine.set_wall_clock(at, since_epoch);
    }

    /// Open the queues: QUEUESTART, the bots log in, arrivals begin. Later calls do nothing.
    pub fn start(&mut self, now: Instant) {
        if self.started_at.is_some() {
            return;
        }
        self.started_at = Some(now);
        self.now = Some(now);
        self.log.push_line(&queue_start_line(self.epoch(now)));
        for bot in 0..self.bots.len() {
            self.bot_login(now, bot);
            self.schedule_bot_pause(now, bot);
            self.schedule_bot_logout(now, bot);
        }
        for queue in 0..self.arrivals.len() {
            self.schedule_arrival(now, queue);
        }
    }

    /// Run everything due at `now`, each timer at its own instant (in order), so a late wake-up
    /// gives the same log as a punctual one.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.now.map_or(now, |seen| seen.max(now));
        loop {
            let sim_due = self.timers.first_key_value().map(|(key, _)| key.0);
            let engine_due = self.engine.poll_timeout();
            let Some(due) = [sim_due, engine_due].into_iter().flatten().min() else {
                break;
            };
            if due > now {
                break;
            }
            let at = self.advance(due);
            if engine_due.is_some_and(|engine| sim_due.is_none_or(|sim| engine <= sim)) {
                self.engine.handle_timeout(at);
                self.drain_engine(at);
                if self.engine.poll_timeout().is_some_and(|next| next <= at) {
                    // The engine always moves its timers on; this guards against a livelock.
                    break;
                }
            } else if let Some((_, timer)) = self.timers.pop_first() {
                self.fire(at, timer);
            }
        }
        self.advance(now);
    }

    /// When `handle_timeout` is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sim_due = self.timers.first_key_value().map(|(key, _)| key.0);
        [sim_due, self.engine.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Next thing the SIP side must do.
    pub fn poll_action(&mut self) -> Option<SimAction> {
        self.actions.pop_front()
    }

    /// Next queue event (every engine event, for AMI and the dashboard).
    pub fn poll_event(&mut self) -> Option<QueueEvent> {
        self.events.pop_front()
    }

    /// queue_log lines written since the last call, each ending in `\n`.
    pub fn poll_queue_log(&mut self) -> String {
        self.log.drain()
    }

    /// Queues, bots and totals as they are now.
    pub fn snapshot(&self) -> SimSnapshot {
        SimSnapshot {
            queues: self.engine.snapshot(),
            bots: self
                .bots
                .iter()
                .map(|bot| BotSnapshot {
                    name: bot.name.clone(),
                    activity: if bot.in_call.is_some() {
                        BotActivity::Talking
                    } else if bot.ringing.is_some() {
                        BotActivity::Ringing
                    } else if bot.logged_in {
                        BotActivity::Idle
                    } else {
                        BotActivity::LoggedOut
                    },
                    paused: bot.paused,
                    call_id: bot
                        .in_call
                        .clone()
                        .or_else(|| bot.ringing.as_ref().map(|(call, _)| call.clone())),
                })
                .collect(),
            counters: self.counters,
        }
    }

    /// Sizes of the internal tables (see [`Footprint`]).
    pub fn footprint(&self) -> Footprint {
        let queues = self.engine.snapshot();
        let mut at_agents: Vec<&str> = queues
            .iter()
            .flat_map(|q| q.members.iter())
            .filter_map(|m| m.current_call.as_deref())
            .collect();
        at_agents.sort_unstable();
        at_agents.dedup();
        Footprint {
            calls: self.calls.len(),
            timers: self.timers.len(),
            pending_actions: self.actions.len(),
            pending_events: self.events.len(),
            pending_log: !self.log.is_empty(),
            engine_waiting: queues.iter().map(|q| q.callers.len()).sum(),
            engine_calls_at_agents: at_agents.len(),
        }
    }

    /// The configuration the simulation runs.
    pub fn config(&self) -> &LabConfig {
        &self.config
    }

    /// The engine, for read-only views.
    pub fn engine(&self) -> &QueueEngine {
        &self.engine
    }

    /// Whether `call_id` is a virtual caller (its "leg" is generated audio, not a SIP dialog).
    pub fn is_simulated_call(&self, call_id: &str) -> bool {
        self.calls.get(call_id).is_some_and(|call| call.simulated)
    }

    /// Whether `agent` is one of the bots.
    pub fn is_bot(&self, agent: &str) -> bool {
        self.bot_by_name.contains_key(agent)
    }

    /// Change the arrival rate of `queue` (`--callers`, or a key in the UI); 0 stops arrivals.
    /// Negative, NaN and infinite rates count as 0.
    pub fn set_callers_per_minute(
        &mut self,
        now: Instant,
        queue: &str,
        per_minute: f64,
    ) -> Result<(), QueueError> {
        let now = self.advance(now);
        let index = self
            .config
            .queues
            .iter()
            .position(|q| q.queue.name == queue)
            .ok_or_else(|| QueueError::UnknownQueue(queue.to_owned()))?;
        let per_minute = if per_minute.is_finite() {
            per_minute.max(0.0)
        } else {
            0.0
        };
        if let Some(arrivals) = self.arrivals.get_mut(index) {
            arrivals.per_minute = per_minute;
            if let Some(key) = arrivals.timer.take() {
                self.timers.remove(&key);
            }
        }
        if self.started_at.is_some() {
            self.schedule_arrival(now, index);
        }
        Ok(())
    }

    // --- Inputs from the SIP side -------------------------------------------------------

    /// A real agent dialled the connection code (`via` is that call's id, or `MANAGER` for
    /// AMI QueueAdd): it joins `queue` as a dynamic member.
    pub fn real_agent_login(
        &mut self,
        now: Instant,
        queue: &str,
        agent: &str,
        via: &str,
    ) -> Result<(), QueueError> {
        let now = self.advance(now);
        self.ids.member_call_id = Some(via.to_owned());
        let result = self.engine.add_member(now, queue, agent, false);
        self.drain_engine(now);
        result
    }

    /// A real agent dialled the disconnection code (or AMI QueueRemove).
    pub fn real_agent_logout(
        &mut self,
        now: Instant,
        queue: &str,
        agent: &str,
        via: &str,
    ) -> Result<(), QueueError> {
        let now = self.advance(now);
        self.ids.member_call_id = Some(via.to_owned());
        let result = self.engine.remove_member(now, queue, agent);
        self.drain_engine(now);
        result
    }

    /// A real caller dialled a queue's extension.
    pub fn real_caller_join(
        &mut self,
        now: Instant,
        queue: &str,
        call_id: &str,
        caller_id: &str,
    ) -> Result<JoinOutcome, QueueError> {
        let now = self.advance(now);
        let result = self.engine.caller_join(now, queue, call_id, caller_id);
        self.drain_engine(now);
        result
    }

    /// A real agent picked up (`agent_leg` is its leg's uniqueid, written in CONNECT). Fails
    /// when the offer already ended: hang up the agent's leg then.
    pub fn agent_answered(
        &mut self,
        now: Instant,
        call_id: &str,
        agent: &str,
        agent_leg: &str,
    ) -> Result<(), QueueError> {
        let now = self.advance(now);
        self.ids.agent_leg = Some(agent_leg.to_owned());
        let result = self.engine.agent_answered(now, call_id, agent);
        self.drain_engine(now);
        result
    }

    /// A real agent's leg failed while ringing (busy, declined).
    pub fn agent_rejected(&mut self, now: Instant, call_id: &str, agent: &str) {
        let now = self.advance(now);
        self.engine.agent_rejected(now, call_id, agent);
        self.drain_engine(now);
    }

    /// A real caller hung up (waiting, ringing or connected).
    pub fn caller_hangup(&mut self, now: Instant, call_id: &str) {
        let now = self.advance(now);
        self.engine.caller_hangup(now, call_id);
        self.drain_engine(now);
    }

    /// A connected call ended on the SIP side; `by_agent` when the agent hung up.
    pub fn call_ended(&mut self, now: Instant, call_id: &str, by_agent: bool) {
        let now = self.advance(now);
        self.engine.call_ended(now, call_id, by_agent);
        self.drain_engine(now);
    }

    /// A real agent transferred its caller.
    pub fn transferred(&mut self, now: Instant, call_id: &str, transfer: Transfer<'_>) {
        let now = self.advance(now);
        let (blind, target) = match transfer {
            Transfer::Blind { target, context } => {
                self.ids.context = Some(context.to_owned());
                (true, target)
            }
            Transfer::Attended { target, bridge } => {
                self.ids.bridge = Some(bridge.to_owned());
                (false, target)
            }
        };
        self.engine.transferred(now, call_id, blind, target);
        self.drain_engine(now);
    }

    /// Pause or unpause any agent (AMI QueuePause, a key in the UI); `queue = None` is every
    /// queue it is in.
    pub fn pause(
        &mut self,
        now: Instant,
        queue: Option<&str>,
        agent: &str,
        paused: bool,
        reason: Option<String>,
    ) -> Result<(), QueueError> {
        let now = self.advance(now);
        let result = self.engine.pause(now, queue, agent, paused, reason);
        self.drain_engine(now);
        result
    }

    /// A real agent's phone is (or no longer is) on a call that did not come from a queue.
    pub fn set_agent_busy(&mut self, now: Instant, agent: &str, busy: bool) {
        let now = self.advance(now);
        self.engine.set_agent_busy(now, agent, busy);
        self.drain_engine(now);
    }

    // --- Internals ----------------------------------------------------------------------

    /// `now`, never earlier than an instant already seen.
    fn advance(&mut self, now: Instant) -> Instant {
        let now = self.now.map_or(now, |seen| seen.max(now));
        self.now = Some(now);
        now
    }

    fn unix_time(&self, at: Instant) -> Duration {
        match (self.wall_clock, self.started_at) {
            (Some((anchor, anchor_unix)), _) => {
                if at >= anchor {
                    anchor_unix.saturating_add(at.saturating_duration_since(anchor))
                } else {
                    anchor_unix.saturating_sub(anchor.saturating_duration_since(at))
                }
            }
            (None, Some(start)) => at.saturating_duration_since(start),
            (None, None) => Duration::ZERO,
        }
    }

    fn epoch(&self, at: Instant) -> u64 {
        self.unix_time(at).as_secs()
    }

    /// A uniqueid in Asterisk's shape (`name-epoch.sequence`) for virtual calls and legs.
    fn new_id(&mut self, now: Instant) -> String {
        let id = format!("ringside-sim-{}.{}", self.epoch(now), self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// A bridge uniqueid in Asterisk's UUID shape.
    fn new_bridge_id(&mut self) -> String {
        let high = self.rng.next_u64();
        let low = self.rng.next_u64();
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            high >> 32,
            (high >> 16) & 0xFFFF,
            high & 0xFFFF,
            low >> 48,
            low & 0xFFFF_FFFF_FFFF
        )
    }

    fn schedule(&mut self, at: Instant, timer: Timer) -> TimerKey {
        let key = (at, self.timer_seq);
        self.timer_seq = self.timer_seq.wrapping_add(1);
        self.timers.insert(key, timer);
        key
    }

    fn cancel(&mut self, key: Option<TimerKey>) {
        if let Some(key) = key {
            self.timers.remove(&key);
        }
    }

    fn schedule_arrival(&mut self, now: Instant, queue: usize) {
        let Some(per_minute) = self.arrivals.get(queue).map(|a| a.per_minute) else {
            return;
        };
        if per_minute <= 0.0 {
            return;
        }
        let gap = self.rng.exponential(seconds(60.0 / per_minute));
        if let Some(at) = now.checked_add(gap) {
            let key = self.schedule(at, Timer::Arrival { queue });
            if let Some(arrivals) = self.arrivals.get_mut(queue) {
                arrivals.timer = Some(key);
            }
        }
    }

    fn schedule_bot_pause(&mut self, now: Instant, bot: usize) {
        let per_hour = self.config.simulation.pauses_per_hour;
        if per_hour <= 0.0 {
            return;
        }
        let gap = self.rng.exponential(seconds(3600.0 / per_hour));
        self.schedule_bot_timer(now, gap, Timer::BotPause { bot }, bot, true);
    }

    fn schedule_bot_logout(&mut self, now: Instant, bot: usize) {
        let per_hour = self.config.simulation.logouts_per_hour;
        if per_hour <= 0.0 {
            return;
        }
        let gap = self.rng.exponential(seconds(3600.0 / per_hour));
        self.schedule_bot_timer(now, gap, Timer::BotLogout { bot }, bot, false);
    }

    fn schedule_bot_timer(
        &mut self,
        now: Instant,
        after: Duration,
        timer: Timer,
        bot: usize,
        pause_slot: bool,
    ) {
        let Some(at) = now.checked_add(after) else {
            return;
        };
        let key = self.schedule(at, timer);
        if let Some(state) = self.bots.get_mut(bot) {
            let slot = if pause_slot {
                &mut state.pause_timer
            } else {
                &mut state.logout_timer
            };
            if let Some(old) = slot.replace(key) {
                self.timers.remove(&old);
            }
        }
    }

    fn fire(&mut self, now: Instant, timer: Timer) {
        match timer {
            Timer::Arrival { queue } => {
                if let Some(arrivals) = self.arrivals.get_mut(queue) {
                    arrivals.timer = None;
                }
                self.virtual_caller_arrives(now, queue);
                self.schedule_arrival(now, queue);
            }
            Timer::Patience { call_id } => {
                if let Some(call) = self.calls.get_mut(&call_id) {
                    call.patience = None;
                    self.counters.impatient_hangups += 1;
                    self.engine.caller_hangup(now, &call_id);
                    self.drain_engine(now);
                }
            }
            Timer::BotAnswer { bot, call_id } => self.bot_answers(now, bot, &call_id),
            Timer::CallEnd { call_id } => self.call_runs_out(now, &call_id),
            Timer::BotPause { bot } => self.bot_pause(now, bot),
            Timer::BotUnpause { bot } => self.bot_unpause(now, bot),
            Timer::BotLogout { bot } => self.bot_logout(now, bot),
            Timer::BotLogin { bot } => {
                if let Some(state) = self.bots.get_mut(bot) {
                    state.logout_timer = None;
                }
                self.bot_login(now, bot);
                self.schedule_bot_logout(now, bot);
            }
        }
    }

    fn virtual_caller_arrives(&mut self, now: Instant, queue: usize) {
        let Some(name) = self.config.queues.get(queue).map(|q| q.queue.name.clone()) else {
            return;
        };
        let call_id = self.new_id(now);
        let caller_id = self.draw_caller_id();
        let patience = self.rng.exponential(self.config.simulation.patience_mean);
        let patience = now.checked_add(patience).map(|at| {
            self.schedule(
                at,
                Timer::Patience {
                    call_id: call_id.clone(),
                },
            )
        });
        // Followed before the engine hears of it: the engine may send it away at once.
        self.calls.insert(
            call_id.clone(),
            SimCall {
                simulated: true,
                patience,
                end: None,
                agent: None,
            },
        );
        self.counters.callers += 1;
        let joined = self.engine.caller_join(now, &name, &call_id, &caller_id);
        self.drain_engine(now);
        if joined.is_err() {
            self.forget_call(&call_id);
        }
    }

    fn draw_caller_id(&mut self) -> String {
        let ranges = &self.config.simulation.caller_ids;
        let total = ranges
            .iter()
            .fold(0u64, |sum, range| sum.saturating_add(range.len()));
        let mut index = self.rng.below(total);
        for range in ranges {
            if index < range.len() {
                return range.nth(index);
            }
            index -= range.len();
        }
        "anonymous".to_owned()
    }

    fn bot_answers(&mut self, now: Instant, bot: usize, call_id: &str) {
        let Some(state) = self.bots.get_mut(bot) else {
            return;
        };
        if state.ringing.as_ref().map(|(call, _)| call.as_str()) != Some(call_id) {
            return;
        }
        state.ringing = None;
        let name = state.name.clone();
        let leg = self.new_id(now);
        self.ids.agent_leg = Some(leg);
        if self.engine.agent_answered(now, call_id, &name).is_ok() {
            self.counters.bot_answers += 1;
        }
        self.drain_engine(now);
    }

    /// A connected call's talk time ran out: the bot (or the virtual caller facing a real
    /// agent) ends it.
    fn call_runs_out(&mut self, now: Instant, call_id: &str) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.end = None;
        let simulated = call.simulated;
        let bot_call = call
            .agent
            .as_deref()
            .is_some_and(|a| self.bot_by_name.contains_key(a));
        if !bot_call {
            // A virtual caller hangs up on a real agent.
            self.engine.call_ended(now, call_id, false);
            self.end_real_leg(call_id);
        } else if !simulated {
            // A bot never transfers a real caller: there is nobody at the target.
            self.engine.call_ended(now, call_id, true);
            self.end_real_leg(call_id);
        } else {
            let sim = &self.config.simulation;
            let (blind, attended) = (sim.blind_transfer_pct, sim.attended_transfer_pct);
            let target = sim.transfer_target.clone();
            let draw = self.rng.unit() * 100.0;
            if draw < blind + attended {
                let is_blind = draw < blind;
                if !is_blind {
                    let bridge = self.new_bridge_id();
                    self.ids.bridge = Some(bridge);
                }
                self.counters.bot_transfers += 1;
                self.engine.transferred(now, call_id, is_blind, &target);
            } else {
                let by_agent = self.rng.chance(50.0);
                self.engine.call_ended(now, call_id, by_agent);
            }
        }
        self.drain_engine(now);
    }

    fn end_real_leg(&mut self, call_id: &str) {
        self.actions.push_back(SimAction::EndCall {
            call_id: call_id.to_owned(),
        });
    }

    fn bot_login(&mut self, now: Instant, bot: usize) {
        let Some(state) = self.bots.get_mut(bot) else {
            return;
        };
        state.logged_in = true;
        state.paused = false;
        let (name, queues) = (state.name.clone(), state.queues.clone());
        for queue in queues {
            let via = self.new_id(now);
            self.ids.member_call_id = Some(via);
            // Already a member (a supervisor added it) is fine: it is logged in either way.
            let _already = self.engine.add_member(now, &queue, &name, false);
            self.drain_engine(now);
        }
    }

    fn bot_logout(&mut self, now: Instant, bot: usize) {
        let Some(state) = self.bots.get_mut(bot) else {
            return;
        };
        state.logout_timer = None;
        if !state.logged_in {
            self.schedule_bot_logout(now, bot);
            return;
        }
        if !state.is_free() || state.paused {
            self.schedule_bot_timer(now, BUSY_RETRY, Timer::BotLogout { bot }, bot, false);
            return;
        }
        state.logged_in = false;
        let (name, queues) = (state.name.clone(), state.queues.clone());
        self.counters.bot_logouts += 1;
        for queue in queues {
            let via = self.new_id(now);
            self.ids.member_call_id = Some(via);
            let _not_member = self.engine.remove_member(now, &queue, &name);
            self.drain_engine(now);
        }
        let away = self.rng.exponential(self.config.simulation.logout_mean);
        self.schedule_bot_timer(now, away, Timer::BotLogin { bot }, bot, false);
    }

    fn bot_pause(&mut self, now: Instant, bot: usize) {
        let Some(state) = self.bots.get_mut(bot) else {
            return;
        };
        state.pause_timer = None;
        if !state.logged_in || state.paused || !state.is_free() {
            self.schedule_bot_timer(now, BUSY_RETRY, Timer::BotPause { bot }, bot, true);
            return;
        }
        let name = state.name.clone();
        let reasons = &self.config.simulation.pause_reasons;
        let reason = match u64::try_from(reasons.len()) {
            Ok(count) if count > 0 => {
                let pick = usize::try_from(self.rng.below(count)).unwrap_or(0);
                reasons.get(pick).cloned()
            }
            _ => None,
        };
        if self.engine.pause(now, None, &name, true, reason).is_ok() {
            self.counters.bot_pauses += 1;
        }
        self.drain_engine(now);
        let length = self.rng.exponential(self.config.simulation.pause_mean);
        self.schedule_bot_timer(now, length, Timer::BotUnpause { bot }, bot, true);
    }

    fn bot_unpause(&mut self, now: Instant, bot: usize) {
        let Some(state) = self.bots.get_mut(bot) else {
            return;
        };
        state.pause_timer = None;
        let name = state.name.clone();
        if state.paused && state.logged_in {
            // Asterisk carries a reason on unpause too; the bot has none to give.
            let _not_member = self.engine.pause(now, None, &name, false, None);
            self.drain_engine(now);
        }
        self.schedule_bot_pause(now, bot);
    }

    /// Take every output of the engine's last input: carry out or forward the actions, then
    /// log and forward the events and follow what they mean for virtual calls and bots.
    /// Actions come first so that a Hangup still finds the virtual caller its exit event ends.
    fn drain_engine(&mut self, now: Instant) {
        let epoch = self.epoch(now);
        let ids = std::mem::take(&mut self.ids);
        while let Some(action) = self.engine.poll_action() {
            self.route(now, action);
        }
        while let Some(event) = self.engine.poll_event() {
            let mut line_ids = LineIds::default();
            if let Some(id) = &ids.member_call_id {
                line_ids.member_call_id = id;
            }
            if let Some(id) = &ids.agent_leg {
                line_ids.agent_leg = id;
            }
            if let Some(id) = &ids.bridge {
                line_ids.bridge = id;
            }
            if let Some(context) = &ids.context {
                line_ids.context = context;
            }
            self.log.push_with(&event, epoch, &line_ids);
            self.observe(now, &event);
            self.events.push_back(event);
        }
    }

    fn observe(&mut self, now: Instant, event: &QueueEvent) {
        match event {
            QueueEvent::Connect { call_id, agent, .. } => self.connected(now, call_id, agent),
            QueueEvent::RingNoAnswer { call_id, agent, .. }
            | QueueEvent::RingCanceled { call_id, agent, .. } => {
                self.bot_stops_ringing(call_id, agent);
            }
            QueueEvent::CompleteAgent { call_id, agent, .. }
            | QueueEvent::CompleteCaller { call_id, agent, .. }
            | QueueEvent::BlindTransfer { call_id, agent, .. }
            | QueueEvent::AttendedTransfer { call_id, agent, .. } => {
                if let Some(&bot) = self.bot_by_name.get(agent.as_str()) {
                    if let Some(state) = self.bots.get_mut(bot) {
                        if state.in_call.as_deref() == Some(call_id.as_str()) {
                            state.in_call = None;
                        }
                    }
                }
                self.forget_call(call_id);
            }
            QueueEvent::Abandon { call_id, .. }
            | QueueEvent::ExitWithTimeout { call_id, .. }
            | QueueEvent::ExitEmpty { call_id, .. }
            | QueueEvent::JoinRefused { call_id, .. } => self.forget_call(call_id),
            QueueEvent::Pause { agent, .. } | QueueEvent::Unpause { agent, .. } => {
                let paused = matches!(event, QueueEvent::Pause { .. });
                if let Some(&bot) = self.bot_by_name.get(agent.as_str()) {
                    if let Some(state) = self.bots.get_mut(bot) {
                        state.paused = paused;
                    }
                }
            }
            _ => {}
        }
    }

    fn connected(&mut self, now: Instant, call_id: &str, agent: &str) {
        let bot = self.bot_by_name.get(agent).copied();
        if let Some(bot) = bot {
            if let Some(state) = self.bots.get_mut(bot) {
                state.in_call = Some(call_id.to_owned());
            }
        }
        if bot.is_none() && !self.calls.contains_key(call_id) {
            // A real caller with a real agent: nothing for the simulation to do.
            return;
        }
        let talk = self
            .rng
            .log_normal(self.config.simulation.talk_mean, TALK_SIGMA)
            .max(MIN_TALK);
        let end = now.checked_add(talk).map(|at| {
            self.schedule(
                at,
                Timer::CallEnd {
                    call_id: call_id.to_owned(),
                },
            )
        });
        let call = self.calls.entry(call_id.to_owned()).or_insert(SimCall {
            simulated: false,
            patience: None,
            end: None,
            agent: None,
        });
        let real_caller_with_bot = bot.is_some() && !call.simulated;
        let patience = call.patience.take();
        let old_end = std::mem::replace(&mut call.end, end);
        call.agent = Some(agent.to_owned());
        self.cancel(patience);
        self.cancel(old_end);
        if real_caller_with_bot {
            self.actions.push_back(SimAction::BotAnswered {
                call_id: call_id.to_owned(),
                agent: agent.to_owned(),
            });
        }
    }

    fn bot_stops_ringing(&mut self, call_id: &str, agent: &str) {
        let Some(&bot) = self.bot_by_name.get(agent) else {
            return;
        };
        let Some(state) = self.bots.get_mut(bot) else {
            return;
        };
        if state
            .ringing
            .as_ref()
            .is_some_and(|(call, _)| call == call_id)
        {
            if let Some((_, timer)) = state.ringing.take() {
                self.cancel(timer);
            }
        }
    }

    fn forget_call(&mut self, call_id: &str) {
        if let Some(call) = self.calls.remove(call_id) {
            self.cancel(call.patience);
            self.cancel(call.end);
        }
    }

    fn route(&mut self, now: Instant, action: QueueAction) {
        match action {
            QueueAction::Ring { call_id, agent, .. } if self.bot_by_name.contains_key(&agent) => {
                let Some(&bot) = self.bot_by_name.get(&agent) else {
                    return;
                };
                let sim = &self.config.simulation;
                let (low, high, skip) = (
                    sim.answer_delay_min,
                    sim.answer_delay_max,
                    sim.no_answer_pct,
                );
                let timer = if self.rng.chance(skip) {
                    self.counters.bot_ring_outs += 1;
                    None
                } else {
                    let delay = self.rng.between(low, high);
                    now.checked_add(delay).map(|at| {
                        self.schedule(
                            at,
                            Timer::BotAnswer {
                                bot,
                                call_id: call_id.clone(),
                            },
                        )
                    })
                };
                if let Some(state) = self.bots.get_mut(bot) {
                    if let Some((_, old)) = state.ringing.replace((call_id, timer)) {
                        self.cancel(old);
                    }
                }
            }
            QueueAction::StopRinging { call_id, agent } if self.is_bot(&agent) => {
                self.bot_stops_ringing(&call_id, &agent);
            }
            QueueAction::Hangup { call_id, .. } if self.is_simulated_call(&call_id) => {
                // The exit event already ended the virtual caller.
                self.forget_call(&call_id);
            }
            other => self.actions.push_back(SimAction::Queue(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::config::SimulationConfig;
    use crate::queue::queue_log::{format_line, lines_ref, parse_line, QueueLogEvent};
    use crate::queue::report::{from_queue_log_ref, ReportKind};
    use crate::queue::stats::{stats_from_queue_log, StatsConfig};
    use std::collections::{BTreeSet, HashSet};

    /// Unix time of the virtual t0.
    const EPOCH: u64 = 1_795_259_540;

    /// A virtual clock around one simulation that keeps every output.
    struct Run {
        sim: Simulation,
        t0: Instant,
        log: String,
        events: Vec<QueueEvent>,
        actions: Vec<SimAction>,
        /// Largest footprint seen while running (calls, timers).
        peak: (usize, usize),
    }

    impl Run {
        fn new(config: LabConfig, seed: u64) -> Self {
            let t0 = Instant::now();
            let mut sim = Simulation::new(config, seed);
            sim.set_wall_clock(t0, Duration::from_secs(EPOCH));
            sim.start(t0);
            let mut run = Run {
                sim,
                t0,
                log: String::new(),
                events: Vec::new(),
                actions: Vec::new(),
                peak: (0, 0),
            };
            run.drain();
            run
        }

        fn at(&self, secs: f64) -> Instant {
            self.t0 + Duration::from_secs_f64(secs)
        }

        fn drain(&mut self) {
            while let Some(action) = self.sim.poll_action() {
                self.actions.push(action);
            }
            while let Some(event) = self.sim.poll_event() {
                self.events.push(event);
            }
            self.log.push_str(&self.sim.poll_queue_log());
        }

        /// Fire every timer up to `secs`, each on time, as a punctual driver would.
        fn run_to(&mut self, secs: f64) {
            let target = self.at(secs);
            while let Some(due) = self.sim.poll_timeout() {
                if due > target {
                    break;
                }
                self.sim.handle_timeout(due);
                self.drain();
                // The tables directly: `footprint` copies the engine's snapshot, too slow here.
                self.peak.0 = self.peak.0.max(self.sim.calls.len());
                self.peak.1 = self.peak.1.max(self.sim.timers.len());
            }
            self.sim.handle_timeout(target);
            self.drain();
        }

        /// Stop arrivals and run until every call has ended (at most `limit` seconds more).
        fn finish(&mut self, from: f64, limit: f64) -> f64 {
            let queues: Vec<String> = self
                .sim
                .config()
                .queues
                .iter()
                .map(|q| q.queue.name.clone())
                .collect();
            for queue in queues {
                self.sim
                    .set_callers_per_minute(self.at(from), &queue, 0.0)
                    .expect("configured queue");
            }
            let mut secs = from;
            while secs < from + limit {
                secs += 10.0;
                self.run_to(secs);
                let footprint = self.sim.footprint();
                if footprint.calls == 0 && footprint.engine_waiting == 0 {
                    return secs;
                }
            }
            panic!("calls still open {limit} s after arrivals stopped");
        }

        fn verbs(&self, verb: &str) -> usize {
            self.log
                .lines()
                .filter(|line| line.split('|').nth(4) == Some(verb))
                .count()
        }
    }

    /// The defaults with `support` at `per_minute`, `sales` idle, and `bots` bots.
    fn support_only(per_minute: f64, bots: u32) -> LabConfig {
        let mut config = LabConfig::default();
        config.simulation.bots = bots;
        config.simulation.callers_per_minute = 0.0;
        config.queues[0].callers_per_minute = Some(per_minute);
        config
    }

    /// Every line parses, prints back identically, and has a known verb; every ENTERQUEUE
    /// has exactly one end, consistent with whether it was answered. Returns the call count.
    fn check_log(log: &str) -> usize {
        for line in log.lines() {
            let parsed = parse_line(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert!(
                !matches!(parsed.event, QueueLogEvent::Other(_)),
                "unknown verb: {line}"
            );
            assert_eq!(format_line(&parsed), line);
        }
        let mut calls: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for line in log.lines() {
            let fields: Vec<&str> = line.split('|').collect();
            let (call_id, verb) = (fields[1], fields[4]);
            if verb == "ENTERQUEUE" {
                assert!(
                    calls.insert(call_id, vec![verb]).is_none(),
                    "call id reused: {call_id}"
                );
            } else if let Some(verbs) = calls.get_mut(call_id) {
                verbs.push(verb);
            }
        }
        for (call_id, verbs) in &calls {
            let ends: Vec<&&str> = verbs
                .iter()
                .filter(|v| {
                    [
                        "ABANDON",
                        "EXITWITHTIMEOUT",
                        "EXITEMPTY",
                        "COMPLETEAGENT",
                        "COMPLETECALLER",
                        "BLINDTRANSFER",
                        "ATTENDEDTRANSFER",
                    ]
                    .contains(v)
                })
                .collect();
            assert_eq!(ends.len(), 1, "{call_id}: {verbs:?}");
            let connects = verbs.iter().filter(|v| **v == "CONNECT").count();
            let answered_end = [
                "COMPLETEAGENT",
                "COMPLETECALLER",
                "BLINDTRANSFER",
                "ATTENDEDTRANSFER",
            ]
            .contains(ends[0]);
            assert_eq!(connects, usize::from(answered_end), "{call_id}: {verbs:?}");
            assert_eq!(
                verbs.last(),
                Some(ends[0]),
                "{call_id} goes on after its end: {verbs:?}"
            );
        }
        calls.len()
    }

    fn report_kinds(log: &str) -> BTreeSet<ReportKind> {
        lines_ref(log)
            .filter_map(|(_, line)| line.ok())
            .filter_map(|line| from_queue_log_ref(&line).map(|event| event.kind))
            .collect()
    }

    #[test]
    fn an_hour_of_support_traffic_with_three_bots() {
        let mut run = Run::new(support_only(6.0, 3), 7);
        run.run_to(3600.0);
        let end = run.finish(3600.0, 3600.0);
        let calls = check_log(&run.log);
        let counters = run.sim.snapshot().counters;
        assert_eq!(calls, run.verbs("ENTERQUEUE"));
        assert_eq!(u64::try_from(calls).ok(), Some(counters.callers));
        // 6 a minute for an hour: 360 expected, 3 standard deviations is ±57.
        assert!((303..=417).contains(&calls), "{calls} calls");
        // Everything happened in support, and nothing was left for a SIP side to do.
        assert!(!run.log.contains("|sales|NONE|ENTERQUEUE|"));
        assert_eq!(run.actions, []);

        let (stats, malformed) = stats_from_queue_log(&run.log, StatsConfig::all_time(20));
        assert_eq!(malformed, 0);
        let support = stats
            .queues
            .iter()
            .find(|q| q.queue == "support")
            .expect("support has calls");
        assert_eq!(support.offered, u64::try_from(calls).unwrap_or(0));
        assert_eq!(support.open(), 0);
        assert!(support.answered > 50, "{support:?}");
        let abandon = support.abandon_rate_pct().expect("calls were offered");
        assert!(abandon > 0.0 && abandon < 100.0, "abandon rate {abandon}");
        let service = support.service_level_pct().expect("calls were answered");
        assert!((0.0..=100.0).contains(&service), "service level {service}");
        // Bots pick up after 1 to 4 s, so the first agent answers well within 20 s.
        assert!(service > 0.0);
        assert_eq!(stats.agents.len(), 3);
        assert!(
            stats.agents.iter().all(|a| a.calls > 0),
            "{:?}",
            stats.agents
        );
        assert!(run.verbs("RINGNOANSWER") > 0);
        assert!(run.verbs("PAUSE") > 0 && run.verbs("UNPAUSE") > 0);
        let talk = support.average_talk_s().expect("calls talked");
        assert!(
            (30.0..=100.0).contains(&talk),
            "average talk {talk} s around 60"
        );

        // Nothing is left behind: no call in the simulation or the engine, and only the
        // bots' own timers (each always has a pause-or-unpause and a logout-or-login).
        let footprint = run.sim.footprint();
        assert_eq!(
            footprint,
            Footprint {
                calls: 0,
                timers: 6,
                pending_actions: 0,
                pending_events: 0,
                pending_log: false,
                engine_waiting: 0,
                engine_calls_at_agents: 0,
            }
        );
        // The engine has forgotten every call id: each can join again.
        let mut probe = run.sim.engine().clone();
        let ids: Vec<&str> = run
            .log
            .lines()
            .filter(|l| l.contains("|ENTERQUEUE|"))
            .filter_map(|l| l.split('|').nth(1))
            .collect();
        for id in ids {
            assert!(
                matches!(
                    probe.caller_join(run.at(end), "support", id, "+3225550100"),
                    Ok(JoinOutcome::Joined { .. })
                ),
                "{id} still known to the engine"
            );
        }
    }

    #[test]
    fn a_long_run_with_every_knob_shows_all_fifteen_report_kinds() {
        let mut config = LabConfig {
            simulation: SimulationConfig {
                callers_per_minute: 3.0,
                bots: 2,
                pauses_per_hour: 6.0,
                logouts_per_hour: 3.0,
                logout_mean: Duration::from_secs(120),
                blind_transfer_pct: 5.0,
                attended_transfer_pct: 5.0,
                ..SimulationConfig::default()
            },
            ..LabConfig::default()
        };
        config.queues[0].queue.max_wait = Some(Duration::from_secs(90));
        config.queues[1].queue.leave_when_empty = true;
        let mut run = Run::new(config, 11);
        run.run_to(4.0 * 3600.0);
        run.finish(4.0 * 3600.0, 3600.0);
        check_log(&run.log);
        let kinds = report_kinds(&run.log);
        let missing: Vec<&str> = ReportKind::ALL
            .iter()
            .filter(|kind| !kinds.contains(kind))
            .map(|kind| kind.name())
            .collect();
        assert_eq!(missing, Vec::<&str>::new());
        // Transfers go to the configured target, attended ones into a bridge.
        assert!(run.log.contains("|BLINDTRANSFER|1002|lab|"));
        assert!(run
            .log
            .lines()
            .any(|l| l.contains("|ATTENDEDTRANSFER|BRIDGE|")
                && l.split('|').nth(6).is_some_and(|bridge| bridge.len() == 36)));
        assert!(run.log.contains("|PAUSE|coffee") || run.log.contains("|PAUSE|lunch"));
        assert_eq!(run.actions, []);
    }

    #[test]
    fn the_same_seed_gives_the_same_queue_log() {
        let log = |seed: u64| {
            let mut run = Run::new(LabConfig::default(), seed);
            run.run_to(1800.0);
            run.log
        };
        let first = log(42);
        assert!(first.lines().count() > 100);
        assert_eq!(first, log(42));
        assert_ne!(first, log(43));
    }

    #[test]
    fn a_late_driver_gets_the_same_log_as_a_punctual_one() {
        let mut punctual = Run::new(LabConfig::default(), 5);
        punctual.run_to(900.0);
        let mut late = Run::new(LabConfig::default(), 5);
        for step in 1..=30 {
            late.sim.handle_timeout(late.at(f64::from(step) * 30.0));
            late.drain();
        }
        assert_eq!(punctual.log, late.log);
        assert_eq!(punctual.events, late.events);
    }

    #[test]
    fn memory_stays_flat_over_repeated_busy_periods() {
        let mut run = Run::new(support_only(10.0, 4), 3);
        let baseline = Footprint {
            calls: 0,
            timers: 8,
            ..Footprint::default()
        };
        let mut peaks = Vec::new();
        let mut secs = 0.0;
        for _ in 0..4 {
            run.sim
                .set_callers_per_minute(run.at(secs), "support", 10.0)
                .expect("support exists");
            run.peak = (0, 0);
            run.run_to(secs + 1800.0);
            secs = run.finish(secs + 1800.0, 3600.0);
            assert_eq!(run.sim.footprint(), baseline);
            peaks.push(run.peak);
        }
        // Each busy period peaks at about the same size: nothing accumulates across them.
        let (low, high) = (
            peaks.iter().map(|p| p.0).min().unwrap_or(0),
            peaks.iter().map(|p| p.0).max().unwrap_or(0),
        );
        assert!(high <= 2 * low.max(1) && high < 200, "peaks {peaks:?}");
        check_log(&run.log);
    }

    #[test]
    fn load_twenty_calls_a_second_for_a_minute_with_thirty_bots() {
        let started = Instant::now();
        let mut run = Run::new(support_only(20.0 * 60.0, 30), 9);
        run.run_to(60.0);
        let offered_in_minute = run.verbs("ENTERQUEUE");
        let end = run.finish(60.0, 7200.0);
        let elapsed = started.elapsed();
        let calls = check_log(&run.log);
        assert_eq!(calls, offered_in_minute);
        // 1200 expected, 3 standard deviations is ±104.
        assert!((1096..=1304).contains(&calls), "{calls} calls");
        let (stats, _) = stats_from_queue_log(&run.log, StatsConfig::all_time(20));
        let support = stats
            .queues
            .iter()
            .find(|q| q.queue == "support")
            .expect("support has calls");
        assert_eq!(support.open(), 0);
        println!(
            "load: {calls} calls in 60 s simulated (all ended by {end} s), {} answered, {} abandoned, {} timed out, {} queue_log lines, peak {} calls / {} timers, {:.0} ms real time",
            support.answered,
            support.abandoned,
            support.timeouts,
            run.log.lines().count(),
            run.peak.0,
            run.peak.1,
            elapsed.as_secs_f64() * 1000.0
        );
        assert_eq!(run.sim.footprint().calls, 0);
        assert_eq!(run.actions, []);
    }

    #[test]
    fn real_agents_get_rings_for_virtual_callers_and_the_caller_hangs_up() {
        let mut run = Run::new(support_only(2.0, 0), 1);
        run.sim
            .real_agent_login(run.at(0.0), "support", "101", "ringside-lab-1795259540.0")
            .expect("support exists");
        run.drain();
        assert!(run
            .log
            .ends_with("1795259540|ringside-lab-1795259540.0|support|101|ADDMEMBER|\n"));
        let mut secs = 0.0;
        let (call_id, agent, caller_id) = loop {
            secs += 1.0;
            run.run_to(secs);
            if let Some(SimAction::Queue(QueueAction::Ring {
                call_id,
                agent,
                caller_id,
                ..
            })) = run.actions.first()
            {
                break (call_id.clone(), agent.clone(), caller_id.clone());
            }
            assert!(secs < 600.0, "no ring");
        };
        assert_eq!(agent, "101");
        assert!(run.sim.is_simulated_call(&call_id));
        assert!(caller_id.starts_with("+32255501"), "{caller_id}");
        assert!(!run.sim.is_bot("101"));
    }

    #[test]
    fn a_real_agent_answers_and_the_virtual_caller_ends_the_call() {
        let mut config = support_only(0.0, 0);
        config.simulation.patience_mean = Duration::from_secs(86_400);
        let mut run = Run::new(config, 2);
        run.sim
            .real_agent_login(run.at(0.0), "support", "102", "MANAGER")
            .expect("support exists");
        run.sim
            .set_callers_per_minute(run.at(0.0), "support", 60.0)
            .expect("support exists");
        // Run until the first ring, then stop arrivals.
        let mut secs = 0.0;
        let call_id = loop {
            secs += 1.0;
            run.run_to(secs);
            if let Some(SimAction::Queue(QueueAction::Ring { call_id, .. })) = run.actions.first() {
                break call_id.clone();
            }
            assert!(secs < 600.0, "no ring");
        };
        run.sim
            .set_callers_per_minute(run.at(secs), "support", 0.0)
            .expect("support exists");
        run.sim
            .agent_answered(run.at(secs + 2.0), &call_id, "102", "leg-102-1")
            .expect("it was ringing");
        run.drain();
        assert!(run.log.contains("|102|CONNECT|"));
        assert!(run.log.contains("|leg-102-1|"), "{}", run.log);
        run.finish(secs + 2.0, 86_400.0);
        assert!(run.actions.contains(&SimAction::EndCall {
            call_id: call_id.clone()
        }));
        let last = run.log.lines().last().unwrap_or_default();
        assert!(
            last.contains(&format!("|{call_id}|support|102|COMPLETECALLER|")),
            "{last}"
        );
        assert!(!run.sim.is_simulated_call(&call_id));
    }

    #[test]
    fn bots_answer_real_callers_and_hang_up_on_them() {
        let mut run = Run::new(support_only(0.0, 1), 4);
        let mut config_check = run.sim.snapshot();
        assert_eq!(config_check.bots.len(), 1);
        assert_eq!(config_check.bots[0].activity, BotActivity::Idle);
        run.sim
            .real_caller_join(run.at(1.0), "support", "sip-call-1", "+3225551234")
            .expect("support exists");
        run.drain();
        // The bot rings and (90 % of the time) picks up within 4 s; this seed does.
        run.run_to(6.0);
        config_check = run.sim.snapshot();
        assert_eq!(config_check.bots[0].activity, BotActivity::Talking);
        assert_eq!(config_check.bots[0].call_id.as_deref(), Some("sip-call-1"));
        assert!(!run.sim.is_simulated_call("sip-call-1"));
        run.finish(6.0, 86_400.0);
        assert_eq!(
            run.actions,
            [
                SimAction::BotAnswered {
                    call_id: "sip-call-1".into(),
                    agent: "bot1".into()
                },
                SimAction::EndCall {
                    call_id: "sip-call-1".into()
                }
            ]
        );
        assert!(run.log.contains("|sip-call-1|support|bot1|COMPLETEAGENT|"));
    }

    #[test]
    fn real_callers_are_sent_away_by_the_sip_side() {
        let mut config = support_only(0.0, 0);
        config.queues[0].queue.max_wait = Some(Duration::from_secs(30));
        let mut run = Run::new(config, 4);
        run.sim
            .real_caller_join(run.at(0.0), "support", "sip-call-2", "+3225551234")
            .expect("support exists");
        run.run_to(31.0);
        assert!(matches!(
            run.actions.as_slice(),
            [SimAction::Queue(QueueAction::Hangup { call_id, .. })] if call_id == "sip-call-2"
        ));
        assert!(run
            .log
            .contains("|sip-call-2|support|NONE|EXITWITHTIMEOUT|1|1|30"));
    }

    #[test]
    fn real_transfers_carry_their_ids_into_queue_log() {
        let mut run = Run::new(support_only(0.0, 0), 4);
        run.sim
            .real_agent_login(run.at(0.0), "support", "103", "MANAGER")
            .expect("support exists");
        for (n, transfer) in [
            Transfer::Blind {
                target: "1002",
                context: "lab",
            },
            Transfer::Attended {
                target: "1003",
                bridge: "03575afb-bad5-4209-b224-321cda7d81f0",
            },
        ]
        .into_iter()
        .enumerate()
        {
            let call = format!("sip-{n}");
            let t = f64::from(u32::try_from(n).unwrap_or(0)) * 100.0;
            run.sim
                .real_caller_join(run.at(t), "support", &call, "+3225551234")
                .expect("support exists");
            run.sim
                .agent_answered(run.at(t + 1.0), &call, "103", "leg")
                .expect("ringing");
            run.sim.transferred(run.at(t + 6.0), &call, transfer);
            run.drain();
        }
        assert!(run
            .log
            .contains("|sip-0|support|103|BLINDTRANSFER|1002|lab|1|5|1\n"));
        assert!(run.log.contains(
            "|sip-1|support|103|ATTENDEDTRANSFER|BRIDGE|03575afb-bad5-4209-b224-321cda7d81f0|1|5|1\n"
        ));
    }

    #[test]
    fn arrivals_patience_and_talk_follow_their_distributions() {
        let mut rng = Rng::new(1);
        let n = 20_000.0;
        let mean = |draw: &mut dyn FnMut() -> Duration| {
            (0..20_000).map(|_| draw().as_secs_f64()).sum::<f64>() / n
        };
        let exp = mean(&mut || rng.exponential(Duration::from_secs(120)));
        assert!((114.0..126.0).contains(&exp), "exponential mean {exp}");
        let log_normal = mean(&mut || rng.log_normal(Duration::from_secs(60), TALK_SIGMA));
        assert!(
            (57.0..63.0).contains(&log_normal),
            "log-normal mean {log_normal}"
        );
        let uniform = mean(&mut || rng.between(Duration::from_secs(1), Duration::from_secs(4)));
        assert!((2.45..2.55).contains(&uniform), "uniform mean {uniform}");
        let hits = (0..20_000).filter(|_| rng.chance(10.0)).count();
        assert!((1_800..2_200).contains(&hits), "{hits} of 20000 at 10 %");
        assert_eq!(seconds(f64::NAN), Duration::ZERO);
        assert_eq!(seconds(-5.0), Duration::ZERO);
        assert_eq!(seconds(f64::INFINITY), Duration::from_secs(86_400));

        // Bots let about one ring in ten run out.
        let mut run = Run::new(support_only(6.0, 3), 21);
        run.run_to(3.0 * 3600.0);
        let counters = run.sim.snapshot().counters;
        let rings = counters.bot_answers + counters.bot_ring_outs;
        let share = counters.bot_ring_outs as f64 * 100.0 / rings as f64;
        assert!(
            (6.0..14.0).contains(&share),
            "{share} % of {rings} rings ran out"
        );
        let caller_ids: HashSet<&str> = run
            .log
            .lines()
            .filter(|l| l.contains("|ENTERQUEUE|"))
            .filter_map(|l| l.split('|').nth(6))
            .collect();
        assert!(
            caller_ids.len() > 50,
            "{} distinct caller ids",
            caller_ids.len()
        );
        assert!(caller_ids
            .iter()
            .all(|id| id.len() == 11 && id.starts_with("+32255501")));
    }

    #[test]
    fn bots_log_in_at_start_with_their_own_call_ids() {
        let run = Run::new(LabConfig::default(), 8);
        let lines: Vec<&str> = run.log.lines().collect();
        assert_eq!(lines[0], "1795259540|NONE|NONE|NONE|QUEUESTART|");
        assert_eq!(
            lines[1..],
            [
                "1795259540|ringside-sim-1795259540.0|support|bot1|ADDMEMBER|",
                "1795259540|ringside-sim-1795259540.1|sales|bot1|ADDMEMBER|",
                "1795259540|ringside-sim-1795259540.2|support|bot2|ADDMEMBER|",
                "1795259540|ringside-sim-1795259540.3|sales|bot2|ADDMEMBER|",
                "1795259540|ringside-sim-1795259540.4|support|bot3|ADDMEMBER|",
                "1795259540|ringside-sim-1795259540.5|sales|bot3|ADDMEMBER|",
            ]
        );
        let snapshot = run.sim.snapshot();
        assert_eq!(snapshot.queues[0].members.len(), 3);
        assert!(run.sim.is_bot("bot3") && !run.sim.is_bot("bot4"));
        // Two arrival timers and two timers per bot.
        assert_eq!(run.sim.footprint().timers, 2 + 6);
        assert!(run.sim.poll_timeout().is_some_and(|t| t > run.t0));
    }

    #[test]
    fn without_a_wall_clock_epochs_count_from_start() {
        let t0 = Instant::now();
        let mut sim = Simulation::new(support_only(0.0, 1), 1);
        assert_eq!(sim.poll_timeout(), None);
        sim.start(t0);
        sim.start(t0 + Duration::from_secs(5));
        let log = sim.poll_queue_log();
        assert_eq!(
            log,
            "0|NONE|NONE|NONE|QUEUESTART|\n0|ringside-sim-0.0|support|bot1|ADDMEMBER|\n0|ringside-sim-0.1|sales|bot1|ADDMEMBER|\n"
        );
        assert_eq!(
            sim.set_callers_per_minute(t0, "nope", 1.0),
            Err(QueueError::UnknownQueue("nope".into()))
        );
    }
}
