//! Queue and agent statistics over a period, from report events (either source).
//!
//! Definitions (all times in whole seconds, as Asterisk logs them):
//! - A call belongs to the period its `enter-queue` falls in (`from <= time < to`), and all of
//!   its later events count with it, even past `to`; a call whose entry we never saw counts
//!   nowhere. Each call has one outcome: `connected` (answered), `caller-quit` (abandoned),
//!   `exit-timeout` or `exit-empty`; until then it is open. So for every queue
//!   `answered + abandoned + timeouts + empties + open == offered`.
//! - Abandon rate: callers who hung up while waiting over calls offered. (Asterisk's own
//!   `Abandoned` counter also counts timeouts and empty exits; those are separate here.)
//! - Service level, Asterisk's definition (app_queue `ServicelevelPerf`): answered calls whose
//!   wait was at most N seconds, over answered calls. `service_level_with_unanswered_pct` is
//!   `ServicelevelPerf2`: (answered within N + abandoned, timed out or emptied within N) over
//!   (answered + abandoned + timeouts + empties).
//! - Average wait is over answered calls (the average speed of answer); the longest wait is
//!   over every closed call. Average talk is over calls that ended with a known talk time.
//! - Agents: calls are the answered calls of the period's calls; "no answer" counts ring-outs
//!   in the period. Time logged in runs from agent-connect to agent-disconnect (in any queue
//!   in scope), time paused from pause to unpause (or disconnect), each clipped to the period
//!   and, for sessions still open, to the last event seen. Static members never log in, so
//!   queue_log gives them no logged-in time.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::Serialize;

use super::queue_log::lines_ref;
use super::report::{from_queue_log_ref, ReportEventRef, ReportKind};

/// What to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsConfig {
    /// Epoch seconds, inclusive.
    pub from: u64,
    /// Epoch seconds, exclusive.
    pub to: u64,
    /// The service-level threshold N, seconds.
    pub service_level_s: u32,
    /// Only this queue (and agents' activity in it), or all.
    pub queue: Option<String>,
}

impl StatsConfig {
    /// Everything, all queues.
    pub fn all_time(service_level_s: u32) -> Self {
        Self {
            from: 0,
            to: u64::MAX,
            service_level_s,
            queue: None,
        }
    }

    fn contains(&self, time: u64) -> bool {
        self.from <= time && time < self.to
    }
}

/// One queue's numbers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct QueueStats {
    pub queue: String,
    pub offered: u64,
    pub answered: u64,
    /// Callers who hung up while waiting.
    pub abandoned: u64,
    pub timeouts: u64,
    pub empties: u64,
    pub answered_within_sl: u64,
    /// Abandoned, timed out or emptied within the service level.
    pub unanswered_within_sl: u64,
    /// Sum of the answered calls' waits.
    pub answered_wait_total_s: u64,
    pub longest_wait_s: u32,
    pub talk_total_s: u64,
    /// Calls with a known talk time.
    pub talked_calls: u64,
    /// Blind and attended transfers.
    pub transfers: u64,
    /// Agents' ring-outs.
    pub no_answers: u64,
}

impl QueueStats {
    /// Offered calls without an outcome yet (still waiting, or their end is not in the data).
    pub fn open(&self) -> u64 {
        self.offered
            .saturating_sub(self.answered + self.abandoned + self.timeouts + self.empties)
    }

    /// Percent of offered calls whose caller hung up while waiting.
    pub fn abandon_rate_pct(&self) -> Option<f64> {
        percent(self.abandoned, self.offered)
    }

    /// Asterisk's ServicelevelPerf: percent of answered calls answered within N s.
    pub fn service_level_pct(&self) -> Option<f64> {
        percent(self.answered_within_sl, self.answered)
    }

    /// Asterisk's ServicelevelPerf2, which also credits callers who gave up within N s.
    pub fn service_level_with_unanswered_pct(&self) -> Option<f64> {
        let closed = self.answered + self.abandoned + self.timeouts + self.empties;
        percent(self.answered_within_sl + self.unanswered_within_sl, closed)
    }

    /// Average wait of answered calls, seconds.
    pub fn average_answer_wait_s(&self) -> Option<f64> {
        ratio(self.answered_wait_total_s, self.answered)
    }

    /// Average talk time, seconds.
    pub fn average_talk_s(&self) -> Option<f64> {
        ratio(self.talk_total_s, self.talked_calls)
    }
}

/// One agent's numbers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct AgentStats {
    pub agent: String,
    /// Calls answered.
    pub calls: u64,
    pub talk_total_s: u64,
    pub talked_calls: u64,
    pub no_answers: u64,
    pub logged_in_s: u64,
    pub paused_s: u64,
}

impl AgentStats {
    /// Average talk time, seconds.
    pub fn average_talk_s(&self) -> Option<f64> {
        ratio(self.talk_total_s, self.talked_calls)
    }
}

/// The result: queues and agents sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Stats {
    pub queues: Vec<QueueStats>,
    pub agents: Vec<AgentStats>,
    pub service_level_s: u32,
    /// Report events counted in (every event read, before the period filter).
    pub events: u64,
    /// The time open agent sessions were closed at: the period's end or the last event.
    pub until: u64,
}

fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// A multiply-rotate hash for the per-line map lookups. The keys (queue and member names,
/// Asterisk uniqueids) come from the PBX's own configuration and counters, not from a remote
/// peer, so there is no flooding to defend against, and SipHash would cost about a third of a
/// whole-file pass.
#[derive(Debug, Default, Clone, Copy)]
struct NameHasher(u64);

impl NameHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            for (slot, byte) in word.iter_mut().zip(rest) {
                *slot = *byte;
            }
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.mix(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type NameMap<'a, V> = HashMap<&'a str, V, BuildHasherDefault<NameHasher>>;

#[derive(Debug, Clone, Copy)]
struct OpenCall {
    queue: u32,
    counted: bool,
    answered: bool,
}

#[derive(Debug, Clone, Default)]
struct AgentTrack {
    stats: AgentStats,
    member_of: Vec<u32>,
    paused_in: Vec<u32>,
    logged_in_since: u64,
    paused_since: u64,
}

/// Accumulates statistics event by event, borrowing names from the events' text (no
/// allocation per event). Feed every event from the start of the data, not only the period's:
/// sessions and calls that began earlier are needed to count the period right.
#[derive(Debug)]
pub struct StatsBuilder<'a> {
    config: StatsConfig,
    queue_ids: NameMap<'a, u32>,
    queues: Vec<QueueStats>,
    agent_ids: NameMap<'a, u32>,
    agents: Vec<AgentTrack>,
    calls: NameMap<'a, OpenCall>,
    events: u64,
    last_time: u64,
}

impl<'a> StatsBuilder<'a> {
    pub fn new(config: StatsConfig) -> Self {
        Self {
            config,
            queue_ids: NameMap::default(),
            queues: Vec::new(),
            agent_ids: NameMap::default(),
            agents: Vec::new(),
            calls: NameMap::default(),
            events: 0,
            last_time: 0,
        }
    }

    /// Counts one event.
    pub fn add(&mut self, event: &ReportEventRef<'a>) {
        self.events += 1;
        self.last_time = self.last_time.max(event.time);
        if self
            .config
            .queue
            .as_deref()
            .is_some_and(|only| only != event.queue)
        {
            return;
        }
        let queue = self.queue_id(event.queue);
        let in_period = self.config.contains(event.time);
        let sl = u64::from(self.config.service_level_s);
        match event.kind {
            ReportKind::EnterQueue => {
                let Some(call_id) = event.call_id else {
                    return;
                };
                if in_period {
                    self.queues[queue as usize].offered += 1;
                }
                self.calls.insert(
                    call_id,
                    OpenCall {
                        queue,
                        counted: in_period,
                        answered: false,
                    },
                );
            }
            ReportKind::Connected => {
                let Some(call) = event.call_id.and_then(|id| self.calls.get_mut(id)) else {
                    return;
                };
                if !call.counted || call.answered {
                    return;
                }
                call.answered = true;
                let stats = &mut self.queues[call.queue as usize];
                let wait = event.wait_s.unwrap_or(0);
                stats.answered += 1;
                stats.answered_wait_total_s += u64::from(wait);
                stats.longest_wait_s = stats.longest_wait_s.max(wait);
                if u64::from(wait) <= sl {
                    stats.answered_within_sl += 1;
                }
                if let Some(agent) = event.agent {
                    let agent = self.agent_id(agent);
                    self.agents[agent].stats.calls += 1;
                }
            }
            ReportKind::AgentHangup
            | ReportKind::CallerHangup
            | ReportKind::Transfer
            | ReportKind::BlindTransfer => {
                let Some(call) = event.call_id.and_then(|id| self.calls.remove(id)) else {
                    return;
                };
                if !call.counted {
                    return;
                }
                let stats = &mut self.queues[call.queue as usize];
                if matches!(event.kind, ReportKind::Transfer | ReportKind::BlindTransfer) {
                    stats.transfers += 1;
                }
                let Some(talk) = event.talk_s else {
                    return;
                };
                stats.talk_total_s += u64::from(talk);
                stats.talked_calls += 1;
                if let Some(agent) = event.agent {
                    let agent = self.agent_id(agent);
                    let agent = &mut self.agents[agent].stats;
                    agent.talk_total_s += u64::from(talk);
                    agent.talked_calls += 1;
                }
            }
            ReportKind::CallerQuit | ReportKind::ExitTimeout | ReportKind::ExitEmpty => {
                let Some(call) = event.call_id.and_then(|id| self.calls.remove(id)) else {
                    return;
                };
                if !call.counted || call.answered {
                    return;
                }
                let stats = &mut self.queues[call.queue as usize];
                match event.kind {
                    ReportKind::CallerQuit => stats.abandoned += 1,
                    ReportKind::ExitTimeout => stats.timeouts += 1,
                    _ => stats.empties += 1,
                }
                let wait = event.wait_s.unwrap_or(0);
                stats.longest_wait_s = stats.longest_wait_s.max(wait);
                if u64::from(wait) <= sl {
                    stats.unanswered_within_sl += 1;
                }
            }
            ReportKind::NoAnswer => {
                if in_period {
                    self.queues[queue as usize].no_answers += 1;
                    if let Some(agent) = event.agent {
                        let agent = self.agent_id(agent);
                        self.agents[agent].stats.no_answers += 1;
                    }
                }
            }
            ReportKind::NoAnswerCallerHangup => {}
            ReportKind::AgentConnect
            | ReportKind::AgentDisconnect
            | ReportKind::Pause
            | ReportKind::Unpause => {
                let Some(agent) = event.agent else {
                    return;
                };
                let agent = self.agent_id(agent);
                let (from, to) = (self.config.from, self.config.to);
                let track = &mut self.agents[agent];
                let now = event.time;
                match event.kind {
                    ReportKind::AgentConnect => {
                        if !track.member_of.contains(&queue) {
                            if track.member_of.is_empty() {
                                track.logged_in_since = now;
                            }
                            track.member_of.push(queue);
                        }
                    }
                    ReportKind::AgentDisconnect => {
                        if remove(&mut track.member_of, queue) && track.member_of.is_empty() {
                            track.stats.logged_in_s +=
                                overlap(track.logged_in_since, now, from, to);
                        }
                        if remove(&mut track.paused_in, queue) && track.paused_in.is_empty() {
                            track.stats.paused_s += overlap(track.paused_since, now, from, to);
                        }
                    }
                    ReportKind::Pause => {
                        if !track.paused_in.contains(&queue) {
                            if track.paused_in.is_empty() {
                                track.paused_since = now;
                            }
                            track.paused_in.push(queue);
                        }
                    }
                    _ => {
                        if remove(&mut track.paused_in, queue) && track.paused_in.is_empty() {
                            track.stats.paused_s += overlap(track.paused_since, now, from, to);
                        }
                    }
                }
            }
        }
    }

    /// The statistics: open sessions are closed at the period's end or the last event,
    /// whichever is earlier.
    pub fn finish(mut self) -> Stats {
        let until = self.config.to.min(self.last_time);
        let (from, to) = (self.config.from, self.config.to);
        for track in &mut self.agents {
            if !track.member_of.is_empty() {
                track.stats.logged_in_s += overlap(track.logged_in_since, until, from, to);
            }
            if !track.paused_in.is_empty() {
                track.stats.paused_s += overlap(track.paused_since, until, from, to);
            }
        }
        let mut queues = self.queues;
        queues.sort_by(|a, b| a.queue.cmp(&b.queue));
        let mut agents: Vec<AgentStats> = self.agents.into_iter().map(|t| t.stats).collect();
        agents.sort_by(|a, b| a.agent.cmp(&b.agent));
        Stats {
            queues,
            agents,
            service_level_s: self.config.service_level_s,
            events: self.events,
            until,
        }
    }

    fn queue_id(&mut self, name: &'a str) -> u32 {
        if let Some(id) = self.queue_ids.get(name) {
            return *id;
        }
        let id = self.queues.len() as u32;
        self.queues.push(QueueStats {
            queue: name.to_owned(),
            ..QueueStats::default()
        });
        self.queue_ids.insert(name, id);
        id
    }

    fn agent_id(&mut self, name: &'a str) -> usize {
        if let Some(id) = self.agent_ids.get(name) {
            return *id as usize;
        }
        let id = self.agents.len();
        self.agents.push(AgentTrack {
            stats: AgentStats {
                agent: name.to_owned(),
                ..AgentStats::default()
            },
            ..AgentTrack::default()
        });
        self.agent_ids.insert(name, id as u32);
        id
    }
}

fn remove(list: &mut Vec<u32>, item: u32) -> bool {
    let before = list.len();
    list.retain(|x| *x != item);
    list.len() != before
}

/// Seconds of `[start, end)` inside `[from, to)`.
fn overlap(start: u64, end: u64, from: u64, to: u64) -> u64 {
    end.min(to).saturating_sub(start.max(from))
}

/// Statistics of a whole queue_log text, and how many lines were malformed.
pub fn stats_from_queue_log(text: &str, config: StatsConfig) -> (Stats, u64) {
    let mut builder = StatsBuilder::new(config);
    let mut malformed = 0;
    for (_, line) in lines_ref(text) {
        match line {
            Ok(line) => {
                if let Some(event) = from_queue_log_ref(&line) {
                    builder.add(&event);
                }
            }
            Err(_) => malformed += 1,
        }
    }
    (builder.finish(), malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::report::from_queue_log_ref;
    use proptest::prelude::*;
    use std::fmt::Write as _;
    use std::path::PathBuf;

    fn full_log() -> String {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/asterisk/queue_log/full.log");
        std::fs::read_to_string(path).expect("full.log")
    }

    fn agent(
        name: &str,
        calls: u64,
        talk: u64,
        talked: u64,
        no_answers: u64,
        logged: u64,
        paused: u64,
    ) -> AgentStats {
        AgentStats {
            agent: name.into(),
            calls,
            talk_total_s: talk,
            talked_calls: talked,
            no_answers,
            logged_in_s: logged,
            paused_s: paused,
        }
    }

    #[test]
    fn full_log_statistics() {
        let (stats, malformed) = stats_from_queue_log(&full_log(), StatsConfig::all_time(60));
        assert_eq!(malformed, 0);
        assert_eq!(stats.events, 48);
        assert_eq!(stats.until, 1_795_259_708);
        let support = QueueStats {
            queue: "support".into(),
            offered: 9,
            answered: 5,
            abandoned: 3,
            timeouts: 1,
            empties: 0,
            answered_within_sl: 5,
            unanswered_within_sl: 4,
            answered_wait_total_s: 19,
            longest_wait_s: 17,
            talk_total_s: 18,
            talked_calls: 5,
            transfers: 2,
            no_answers: 1,
        };
        let empty = QueueStats {
            queue: "empty".into(),
            offered: 1,
            empties: 1,
            unanswered_within_sl: 1,
            ..QueueStats::default()
        };
        assert_eq!(stats.queues, [empty.clone(), support.clone()]);
        assert_eq!(support.open(), 0);
        assert_eq!(support.abandon_rate_pct(), Some(300.0 / 9.0));
        assert_eq!(support.service_level_pct(), Some(100.0));
        assert_eq!(support.service_level_with_unanswered_pct(), Some(100.0));
        assert_eq!(support.average_answer_wait_s(), Some(3.8));
        assert_eq!(support.average_talk_s(), Some(3.6));
        assert_eq!(empty.service_level_pct(), None, "nothing answered");
        assert_eq!(empty.service_level_with_unanswered_pct(), Some(100.0));
        assert_eq!(
            stats.agents,
            [
                agent("agent1", 4, 14, 4, 1, 129, 3),
                agent("agent2", 1, 4, 1, 0, 47, 11)
            ]
        );
        assert_eq!(stats.agents[0].average_talk_s(), Some(3.5));

        // A stricter service level: only calls answered within 0 s.
        let (strict, _) = stats_from_queue_log(&full_log(), StatsConfig::all_time(0));
        let support = &strict.queues[1];
        assert_eq!(
            (support.answered_within_sl, support.unanswered_within_sl),
            (2, 0)
        );
        assert_eq!(support.service_level_pct(), Some(40.0));
        // (2 + 0) / (5 + 3 + 1): abandoned after 4-10 s are outside 0 s.
        assert_eq!(
            support.service_level_with_unanswered_pct(),
            Some(200.0 / 9.0)
        );
    }

    #[test]
    fn queue_log_agrees_with_asterisks_own_counters_at_the_snapshot() {
        // The QueueStatus snapshot at 1795259649.7 says support: Completed 5, Abandoned 1,
        // Calls 1, ServicelevelPerf 100.0, ServicelevelPerf2 100.0 (servicelevel 60).
        let text = full_log();
        let until_snapshot: String = text
            .lines()
            .take_while(|line| line < &"1795259650")
            .map(|line| format!("{line}\n"))
            .collect();
        let (stats, _) = stats_from_queue_log(&until_snapshot, StatsConfig::all_time(60));
        let support = stats
            .queues
            .iter()
            .find(|q| q.queue == "support")
            .expect("support");
        assert_eq!(support.answered, 5);
        assert_eq!(support.abandoned + support.timeouts + support.empties, 1);
        assert_eq!(support.open(), 1);
        assert_eq!(support.service_level_pct(), Some(100.0));
        assert_eq!(support.service_level_with_unanswered_pct(), Some(100.0));
        let agent1 = stats
            .agents
            .iter()
            .find(|a| a.agent == "agent1")
            .expect("agent1");
        assert_eq!(agent1.calls, 4, "QueueMember agent1 CallsTaken: 4");
    }

    #[test]
    fn a_period_counts_the_calls_that_entered_in_it() {
        let config = StatsConfig {
            from: 1_795_259_560,
            to: 1_795_259_600,
            service_level_s: 60,
            queue: None,
        };
        let (stats, _) = stats_from_queue_log(&full_log(), config);
        let support = stats
            .queues
            .iter()
            .find(|q| q.queue == "support")
            .expect("support");
        // b entered at ...557, before the period, though it ended at ...561: not counted.
        assert_eq!(
            (support.offered, support.answered, support.no_answers),
            (2, 2, 1)
        );
        assert_eq!(support.talk_total_s, 7);
        assert_eq!(stats.until, 1_795_259_600);
        assert_eq!(
            stats.agents,
            [
                agent("agent1", 1, 3, 1, 1, 40, 0),
                agent("agent2", 1, 4, 1, 0, 29, 0)
            ]
        );

        let only_empty = StatsConfig {
            queue: Some("empty".into()),
            ..StatsConfig::all_time(60)
        };
        let (stats, _) = stats_from_queue_log(&full_log(), only_empty);
        assert_eq!(stats.queues.len(), 1);
        assert_eq!((stats.queues[0].offered, stats.queues[0].empties), (1, 1));
        assert!(stats.agents.is_empty(), "no agent activity in queue empty");
    }

    #[test]
    fn statistics_from_ami_match_statistics_from_queue_log() {
        use crate::queue::ami::{AmiFramer, AmiItem};
        use crate::queue::report::{QueueLogReport, ReportDeriver, ReportEvent, ReportKind};
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/asterisk/ami");
        let mut deriver = ReportDeriver::new();
        let mut from_ami: Vec<ReportEvent> = Vec::new();
        for scenario in [
            "b-completecaller",
            "c-completeagent",
            "d-ringnoanswer",
            "i-blindtransfer",
            "j-attendedtransfer",
            "f-ringcanceled-abandon",
            "e-abandon",
            "g-exitwithtimeout",
            "h-exitempty",
        ] {
            let mut framer = AmiFramer::from_server();
            framer.push(
                &std::fs::read(dir.join(format!("events-{scenario}.server.txt"))).expect("fixture"),
            );
            while let Some(item) = framer.next_item().expect("frames") {
                if let AmiItem::Message(message) = item {
                    deriver.handle_message(0, &message).expect("well formed");
                    while let Some(event) = deriver.poll_event() {
                        from_ami.push(event);
                    }
                }
            }
        }
        // The same calls in queue_log: every call line except the snapshot's caller (28-30),
        // which has no AMI capture.
        let text = full_log();
        let mut report = QueueLogReport::new();
        let from_log: Vec<ReportEvent> = crate::queue::queue_log::lines_ref(&text)
            .filter(|(number, _)| !(28..=30).contains(number))
            .filter_map(|(_, line)| report.handle_line(&line.expect("well formed")))
            // Queue statistics only: member and pause events have no AMI twin here.
            .filter(|event| {
                event.call_id.is_some()
                    && !matches!(
                        event.kind,
                        ReportKind::AgentConnect | ReportKind::AgentDisconnect
                    )
            })
            .collect();
        let stats_of = |events: &[ReportEvent]| {
            let mut builder = StatsBuilder::new(StatsConfig::all_time(60));
            for event in events {
                builder.add(&event.as_event_ref());
            }
            builder.finish().queues
        };
        let ami_queues = stats_of(&from_ami);
        assert_eq!(ami_queues, stats_of(&from_log));
        assert_eq!(ami_queues[1].offered, 8);
    }

    /// One generated call: the queue, when it enters, what becomes of it.
    #[derive(Debug, Clone)]
    struct CallSpec {
        queue: usize,
        enter: u64,
        outcome: u8,
        wait: u64,
        talk: u64,
        ring_outs: u8,
    }

    fn call_spec() -> impl Strategy<Value = CallSpec> {
        (0..3usize, 0..2_000u64, 0..7u8, 0..200u64, 0..600u64, 0..3u8).prop_map(
            |(queue, enter, outcome, wait, talk, ring_outs)| CallSpec {
                queue,
                enter,
                outcome,
                wait,
                talk,
                ring_outs,
            },
        )
    }

    const T0: u64 = 1_800_000_000;
    const QUEUES: [&str; 3] = ["alpha", "beta", "gamma"];

    /// queue_log lines for the calls, merged in time order.
    fn queue_log_of(calls: &[CallSpec]) -> String {
        let mut lines: Vec<(u64, String)> = Vec::new();
        for (index, call) in calls.iter().enumerate() {
            let queue = QUEUES[call.queue];
            let id = format!("c{index}");
            let at = T0 + call.enter;
            let mut line = |time: u64, agent: &str, event: &str, data: String| {
                lines.push((time, format!("{time}|{id}|{queue}|{agent}|{event}|{data}")));
            };
            line(at, "NONE", "ENTERQUEUE", "|+4930123|1".into());
            for _ in 0..call.ring_outs {
                line(at, "agent9", "RINGNOANSWER", "15000".into());
            }
            let agent = format!("agent{}", index % 4);
            let (answered_at, ended_at) = (at + call.wait, at + call.wait + call.talk);
            let (wait, talk) = (call.wait, call.talk);
            match call.outcome {
                0..=2 => {
                    line(answered_at, &agent, "CONNECT", format!("{wait}|{id}.1|0"));
                    let end =
                        ["COMPLETECALLER", "COMPLETEAGENT", "BLINDTRANSFER"][call.outcome as usize];
                    let data = if call.outcome == 2 {
                        format!("1002|lab|{wait}|{talk}|1")
                    } else {
                        format!("{wait}|{talk}|1")
                    };
                    line(ended_at, &agent, end, data);
                }
                3 => line(answered_at, "NONE", "ABANDON", format!("1|1|{wait}")),
                4 => line(
                    answered_at,
                    "NONE",
                    "EXITWITHTIMEOUT",
                    format!("1|1|{wait}"),
                ),
                5 => line(answered_at, "NONE", "EXITEMPTY", format!("1|1|{wait}")),
                _ => {} // still waiting when the log ends
            }
        }
        lines.sort_by_key(|(time, _)| *time);
        lines.into_iter().map(|(_, line)| line + "\n").collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn every_offered_call_has_one_outcome_or_is_open(
            calls in proptest::collection::vec(call_spec(), 0..60),
            from in 0..2_000u64,
            length in 1..2_500u64,
        ) {
            let config = StatsConfig {
                from: T0 + from,
                to: T0 + from + length,
                service_level_s: 30,
                queue: None,
            };
            let (stats, malformed) = stats_from_queue_log(&queue_log_of(&calls), config.clone());
            prop_assert_eq!(malformed, 0);
            for (index, name) in QUEUES.iter().enumerate() {
                let in_period: Vec<&CallSpec> = calls
                    .iter()
                    .filter(|c| c.queue == index && config.contains(T0 + c.enter))
                    .collect();
                let count = |outcomes: &[u8]| {
                    in_period.iter().filter(|c| outcomes.contains(&c.outcome)).count() as u64
                };
                let got = stats.queues.iter().find(|q| q.queue == *name).cloned().unwrap_or_default();
                // The property: answered + abandoned + timeouts + empties = offered, for closed calls.
                prop_assert_eq!(
                    got.answered + got.abandoned + got.timeouts + got.empties,
                    got.offered - got.open()
                );
                prop_assert_eq!(got.offered, in_period.len() as u64);
                prop_assert_eq!(got.answered, count(&[0, 1, 2]));
                prop_assert_eq!(got.abandoned, count(&[3]));
                prop_assert_eq!(got.timeouts, count(&[4]));
                prop_assert_eq!(got.empties, count(&[5]));
                prop_assert_eq!(got.open(), count(&[6]));
                prop_assert_eq!(got.transfers, count(&[2]));
                let within: u64 = in_period.iter().filter(|c| c.outcome <= 2 && c.wait <= 30).count() as u64;
                prop_assert_eq!(got.answered_within_sl, within);
                let answered_talk: u64 = in_period.iter().filter(|c| c.outcome <= 2).map(|c| c.talk).sum();
                prop_assert_eq!(got.talk_total_s, answered_talk);
            }
            let calls_per_agent: u64 = stats.agents.iter().map(|a| a.calls).sum();
            let answered: u64 = stats.queues.iter().map(|q| q.answered).sum();
            prop_assert_eq!(calls_per_agent, answered);
        }
    }

    /// A queue_log of at least `count` lines: a realistic mix of calls, ring-outs, pauses and
    /// logins over six agents and two queues.
    fn generated_log(count: usize) -> String {
        let mut out = String::with_capacity(count * 84);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut time = 1_795_000_000u64;
        let mut lines = 0;
        let mut call = 0u64;
        while lines < count {
            call += 1;
            time += next() % 4;
            let queue = if call.is_multiple_of(3) {
                "sales"
            } else {
                "support"
            };
            let agent = 1 + next() % 6;
            let wait = next() % 120;
            let id = format!("ringside-lab-{time}.{call}");
            let _ = writeln!(out, "{time}|{id}|{queue}|NONE|ENTERQUEUE||+4930{call:07}|1");
            lines += 1;
            match call % 10 {
                0..=5 => {
                    let talk = next() % 600;
                    let _ = writeln!(
                        out,
                        "{time}|{id}|{queue}|agent{agent}|CONNECT|{wait}|{id}.1|3"
                    );
                    let _ = writeln!(
                        out,
                        "{time}|{id}|{queue}|agent{agent}|COMPLETECALLER|{wait}|{talk}|1"
                    );
                    lines += 2;
                }
                6 => {
                    let _ = writeln!(out, "{time}|{id}|{queue}|agent{agent}|RINGNOANSWER|15000");
                    let _ = writeln!(
                        out,
                        "{time}|{id}|{queue}|agent{agent}|CONNECT|{wait}|{id}.2|15"
                    );
                    let _ = writeln!(
                        out,
                        "{time}|{id}|{queue}|agent{agent}|COMPLETEAGENT|{wait}|97|1"
                    );
                    lines += 3;
                }
                7 => {
                    let _ = writeln!(out, "{time}|{id}|{queue}|agent{agent}|RINGCANCELED|4502");
                    let _ = writeln!(out, "{time}|{id}|{queue}|NONE|ABANDON|1|1|{wait}");
                    lines += 2;
                }
                8 => {
                    let _ = writeln!(out, "{time}|{id}|{queue}|NONE|EXITWITHTIMEOUT|1|1|300");
                    lines += 1;
                }
                _ => {
                    let _ = writeln!(out, "{time}|{id}|{queue}|NONE|EXITEMPTY|1|1|0");
                    let _ = writeln!(out, "{time}|NONE|{queue}|agent{agent}|PAUSE|lunch");
                    let _ = writeln!(out, "{time}|NONE|{queue}|agent{agent}|UNPAUSE|");
                    let _ = writeln!(out, "{time}|MANAGER|{queue}|agent{agent}|ADDMEMBER|");
                    lines += 4;
                }
            }
        }
        out
    }

    /// `cargo test --release --lib queue::stats -- --ignored --nocapture`
    #[test]
    #[ignore = "benchmark: run in release mode"]
    fn bench_parse_and_aggregate_ten_million_lines() {
        const LINES: usize = 10_000_000;
        let started = std::time::Instant::now();
        let text = generated_log(LINES);
        let lines = text.lines().count();
        println!(
            "generated {lines} lines, {} MB, in {:.1} s",
            text.len() / 1_000_000,
            started.elapsed().as_secs_f64()
        );
        let mut best = f64::MAX;
        let mut last = None;
        for _ in 0..3 {
            let start = std::time::Instant::now();
            let (stats, malformed) = stats_from_queue_log(&text, StatsConfig::all_time(60));
            best = best.min(start.elapsed().as_secs_f64());
            assert_eq!(malformed, 0);
            last = Some(stats);
        }
        let stats = last.expect("ran");
        let offered: u64 = stats.queues.iter().map(|q| q.offered).sum();
        let closed: u64 = stats.queues.iter().map(|q| q.offered - q.open()).sum();
        assert_eq!(offered, closed, "every generated call closes");
        println!(
            "parse + aggregate (stats_from_queue_log): {:.2} M lines/s, {:.0} MB/s, one core; {offered} calls",
            lines as f64 / best / 1e6,
            text.len() as f64 / best / 1e6
        );
        let start = std::time::Instant::now();
        let mut events = 0u64;
        for (_, line) in crate::queue::queue_log::lines_ref(&text) {
            if let Ok(line) = line {
                if from_queue_log_ref(&line).is_some() {
                    events += 1;
                }
            }
        }
        println!(
            "parse + map to report events only: {:.2} M lines/s ({events} events)",
            lines as f64 / start.elapsed().as_secs_f64() / 1e6
        );
    }
}
