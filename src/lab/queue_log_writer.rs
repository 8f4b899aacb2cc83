//! The lab's queue_log: every [`QueueEvent`] with a queue_log verb becomes one line in Asterisk's
//! exact format (`epoch|callid|queue|agent|VERB|data...`, fields and units as app_queue writes
//! them in Asterisk 22), sans-IO.
//!
//! The engine knows the queue facts; a few columns belong to the driver, which owns the call
//! legs: the uniqueid of the agent's leg (CONNECT), the bridge an attended transfer ends in
//! (ATTENDEDTRANSFER), the call that dialled a login or logout code (the callid column of
//! ADDMEMBER / REMOVEMEMBER, `MANAGER` when AMI did it) and the dialplan context of a blind
//! transfer target. They travel in [`LineIds`]; what the driver leaves out is written `NONE`,
//! Asterisk's own word for an absent id.
//!
//! [`QueueLogWriter`] buffers the text so the driver only appends bytes to the file.
//!
//! Choices where Asterisk gives no lead:
//! - JOINEMPTY and FULL (a caller turned away at the door) carry no data: the captured Asterisk
//!   22 log has none, and app_queue's own callers of these verbs differ between versions.
//! - A `|` or a line break inside free text (a pause reason, a caller id, a transfer target)
//!   is written as a space. Asterisk writes a `|` as is, and every reader then sees one field
//!   too many.

use crate::lab::queue::{QueueEvent, RefuseReason};
use crate::queue::queue_log::{write_record, QueueLogEvent, QueueLogLine};

/// What Asterisk writes where there is no id, queue or agent.
const NONE: &str = "NONE";

/// The dialplan context written in BLINDTRANSFER lines unless the driver names another: the
/// lab has a single one, and the Asterisk capture's lab used this name too.
pub const LAB_CONTEXT: &str = "lab";

/// The columns only the driver knows (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineIds<'a> {
    /// The callid column of ADDMEMBER / REMOVEMEMBER: the uniqueid of the call that dialled the
    /// connection or disconnection code, `MANAGER` for AMI QueueAdd / QueueRemove.
    pub member_call_id: &'a str,
    /// CONNECT's second field: the uniqueid of the agent's leg.
    pub agent_leg: &'a str,
    /// ATTENDEDTRANSFER's second field: the uniqueid of the bridge the caller ends up in.
    pub bridge: &'a str,
    /// BLINDTRANSFER's second field: the dialplan context of the target extension.
    pub context: &'a str,
}

impl Default for LineIds<'_> {
    fn default() -> Self {
        LineIds {
            member_call_id: NONE,
            agent_leg: NONE,
            bridge: NONE,
            context: LAB_CONTEXT,
        }
    }
}

impl<'a> LineIds<'a> {
    /// Default ids with the callid of a membership change (the code-dialling call or `MANAGER`).
    pub fn member(member_call_id: &'a str) -> Self {
        LineIds {
            member_call_id,
            ..LineIds::default()
        }
    }

    /// Default ids with the agent leg's uniqueid, for the events that follow an answer.
    pub fn agent_leg(agent_leg: &'a str) -> Self {
        LineIds {
            agent_leg,
            ..LineIds::default()
        }
    }

    /// Default ids with the bridge uniqueid of an attended transfer.
    pub fn bridge(bridge: &'a str) -> Self {
        LineIds {
            bridge,
            ..LineIds::default()
        }
    }
}

/// The line for `event` at `epoch_secs`, or `None` for events that only go to AMI (and for
/// static members' ADDMEMBER, which Asterisk does not log). ADDMEMBER / REMOVEMEMBER get
/// `call_id_for_member_events` as their callid; the driver-owned fields of CONNECT and
/// ATTENDEDTRANSFER are `NONE` (use [`queue_log_line_with`] to fill them).
pub fn queue_log_line(
    event: &QueueEvent,
    epoch_secs: u64,
    call_id_for_member_events: &str,
) -> Option<QueueLogLine> {
    queue_log_line_with(
        event,
        epoch_secs,
        &LineIds::member(call_id_for_member_events),
    )
}

/// [`queue_log_line`] with every driver-owned field given.
pub fn queue_log_line_with(
    event: &QueueEvent,
    epoch_secs: u64,
    ids: &LineIds<'_>,
) -> Option<QueueLogLine> {
    let (call_id, queue, agent, kind, data): (&str, &str, &str, QueueLogEvent, Vec<String>) =
        match event {
            QueueEvent::AddMember {
                queue,
                agent,
                static_member,
            } => {
                if *static_member {
                    return None;
                }
                (
                    ids.member_call_id,
                    queue,
                    agent,
                    QueueLogEvent::AddMember,
                    Vec::new(),
                )
            }
            QueueEvent::RemoveMember { queue, agent } => (
                ids.member_call_id,
                queue,
                agent,
                QueueLogEvent::RemoveMember,
                Vec::new(),
            ),
            QueueEvent::PauseAll { agent, reason } => (
                NONE,
                NONE,
                agent,
                QueueLogEvent::PauseAll,
                vec![reason.clone()],
            ),
            QueueEvent::UnpauseAll { agent, reason } => (
                NONE,
                NONE,
                agent,
                QueueLogEvent::UnpauseAll,
                vec![reason.clone()],
            ),
            QueueEvent::Pause {
                queue,
                agent,
                reason,
            } => (
                NONE,
                queue,
                agent,
                QueueLogEvent::Pause,
                vec![reason.clone()],
            ),
            QueueEvent::Unpause {
                queue,
                agent,
                reason,
            } => (
                NONE,
                queue,
                agent,
                QueueLogEvent::Unpause,
                vec![reason.clone()],
            ),
            QueueEvent::JoinRefused {
                queue,
                call_id,
                reason,
                ..
            } => (
                call_id,
                queue,
                NONE,
                match reason {
                    RefuseReason::Empty => QueueLogEvent::JoinEmpty,
                    RefuseReason::Full => QueueLogEvent::Other("FULL".to_owned()),
                },
                Vec::new(),
            ),
            QueueEvent::EnterQueue {
                queue,
                call_id,
                caller_id,
                position,
            } => (
                call_id,
                queue,
                NONE,
                QueueLogEvent::EnterQueue,
                // The URL the caller may send to the agent: the lab has none.
                vec![String::new(), caller_id.clone(), position.to_string()],
            ),
            QueueEvent::Connect {
                queue,
                call_id,
                agent,
                hold_secs,
                ring_secs,
                ..
            } => (
                call_id,
                queue,
                agent,
                QueueLogEvent::Connect,
                vec![
                    hold_secs.to_string(),
                    ids.agent_leg.to_owned(),
                    ring_secs.to_string(),
                ],
            ),
            QueueEvent::RingNoAnswer {
                queue,
                call_id,
                agent,
                ring_ms,
            } => (
                call_id,
                queue,
                agent,
                QueueLogEvent::RingNoAnswer,
                vec![ring_ms.to_string()],
            ),
            QueueEvent::RingCanceled {
                queue,
                call_id,
                agent,
                ring_ms,
            } => (
                call_id,
                queue,
                agent,
                QueueLogEvent::RingCanceled,
                vec![ring_ms.to_string()],
            ),
            QueueEvent::CompleteAgent {
                queue,
                call_id,
                agent,
                hold_secs,
                talk_secs,
                orig_position,
            } => (
                call_id,
                queue,
                agent,
                QueueLogEvent::CompleteAgent,
                numbers(&[*hold_secs, *talk_secs, as_u64(*orig_position)]),
            ),
            QueueEvent::CompleteCaller {
                queue,
                call_id,
                agent,
                hold_secs,
                talk_secs,
                orig_position,
            } => (
                call_id,
                queue,
                agent,
                QueueLogEvent::CompleteCaller,
                numbers(&[*hold_secs, *talk_secs, as_u64(*orig_position)]),
            ),
            QueueEvent::Abandon {
                queue,
                call_id,
                position,
                orig_position,
                wait_secs,
            } => (
                call_id,
                queue,
                NONE,
                QueueLogEvent::Abandon,
                numbers(&[as_u64(*position), as_u64(*orig_position), *wait_secs]),
            ),
            QueueEvent::ExitWithTimeout {
                queue,
                call_id,
                position,
                orig_position,
                wait_secs,
            } => (
                call_id,
                queue,
                NONE,
                QueueLogEvent::ExitWithTimeout,
                numbers(&[as_u64(*position), as_u64(*orig_position), *wait_secs]),
            ),
            QueueEvent::ExitEmpty {
                queue,
                call_id,
                position,
                orig_position,
                wait_secs,
            } => (
                call_id,
                queue,
                NONE,
                QueueLogEvent::ExitEmpty,
                numbers(&[as_u64(*position), as_u64(*orig_position), *wait_secs]),
            ),
            QueueEvent::BlindTransfer {
                queue,
                call_id,
                agent,
                target,
                hold_secs,
                talk_secs,
                orig_position,
            } => {
                let mut data = vec![target.clone(), ids.context.to_owned()];
                data.extend(numbers(&[*hold_secs, *talk_secs, as_u64(*orig_position)]));
                (call_id, queue, agent, QueueLogEvent::BlindTransfer, data)
            }
            QueueEvent::AttendedTransfer {
                queue,
                call_id,
                agent,
                hold_secs,
                talk_secs,
                orig_position,
                ..
            } => {
                // Asterisk's bridge-merge form; the APP and LINK forms need channels the lab
                // does not have.
                let mut data = vec!["BRIDGE".to_owned(), ids.bridge.to_owned()];
                data.extend(numbers(&[*hold_secs, *talk_secs, as_u64(*orig_position)]));
                (call_id, queue, agent, QueueLogEvent::AttendedTransfer, data)
            }
            QueueEvent::MemberStatus { .. }
            | QueueEvent::CallerLeave { .. }
            | QueueEvent::AgentCalled { .. } => return None,
        };
    let mut data: Vec<String> = data.iter().map(|text| field(text)).collect();
    // An empty reason prints like no data at all, and reads back as none.
    if data.len() == 1 && data[0].is_empty() {
        data.clear();
    }
    Some(QueueLogLine {
        time: epoch_secs,
        call_id: field(call_id),
        queue: field(queue),
        agent: field(agent),
        event: kind,
        data,
    })
}

/// The line Asterisk writes when its queue module starts: the first line of every run.
pub fn queue_start_line(epoch_secs: u64) -> QueueLogLine {
    QueueLogLine {
        time: epoch_secs,
        call_id: NONE.to_owned(),
        queue: NONE.to_owned(),
        agent: NONE.to_owned(),
        event: QueueLogEvent::QueueStart,
        data: Vec::new(),
    }
}

/// Buffered queue_log text: push events as the engine reports them, then append what
/// [`QueueLogWriter::drain`] returns to the file.
#[derive(Debug, Clone, Default)]
pub struct QueueLogWriter {
    pending: String,
    lines: u64,
}

impl QueueLogWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queue the line for `event` with default ids (see [`queue_log_line`]); returns whether
    /// the event had a line.
    pub fn push(&mut self, event: &QueueEvent, epoch_secs: u64) -> bool {
        self.push_with(event, epoch_secs, &LineIds::default())
    }

    /// Queue the line for `event` with the driver's ids; returns whether the event had a line.
    pub fn push_with(&mut self, event: &QueueEvent, epoch_secs: u64, ids: &LineIds<'_>) -> bool {
        match queue_log_line_with(event, epoch_secs, ids) {
            Some(line) => {
                self.push_line(&line);
                true
            }
            None => false,
        }
    }

    /// Queue a line built elsewhere (QUEUESTART at startup, say).
    pub fn push_line(&mut self, line: &QueueLogLine) {
        write_record(line, &mut self.pending);
        self.lines = self.lines.saturating_add(1);
    }

    /// Everything queued since the last drain, each line ending in `\n`.
    pub fn drain(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// Nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Lines queued since the writer was made (drained or not).
    pub fn lines_written(&self) -> u64 {
        self.lines
    }
}

fn numbers(values: &[u64]) -> Vec<String> {
    values.iter().map(u64::to_string).collect()
}

fn as_u64(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// One field as written: a `|` would split it in two when read back and a line break would
/// split the record, so each becomes a space.
fn field(text: &str) -> String {
    text.replace(['|', '\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::queue::{QueueConfig, QueueEngine, Strategy};
    use crate::queue::queue_log::{format_line, parse_all, parse_line};
    use std::time::{Duration, Instant};

    fn full_log() -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/asterisk/queue_log/full.log"
        );
        std::fs::read_to_string(path).expect("the Asterisk capture is in tests/fixtures")
    }

    /// One engine on a virtual clock tied to the capture's Unix time, writing every event it
    /// reports through a [`QueueLogWriter`] with the ids of the step that caused it.
    struct Replay {
        engine: QueueEngine,
        t0: Instant,
        now: Instant,
        /// Unix time at `t0`, in ms.
        unix_ms_at_t0: u64,
        writer: QueueLogWriter,
        /// Every line pushed, for the round-trip checks.
        lines: Vec<QueueLogLine>,
    }

    impl Replay {
        fn new(t0: Instant, unix_ms_at_t0: u64) -> Self {
            let mut engine = QueueEngine::new(1);
            engine.set_wall_clock(t0, Duration::from_millis(unix_ms_at_t0));
            engine.add_queue(support());
            engine.add_queue(QueueConfig {
                leave_when_empty: true,
                ..QueueConfig::new("empty", Strategy::RingAll)
            });
            Replay {
                engine,
                t0,
                now: t0,
                unix_ms_at_t0,
                writer: QueueLogWriter::new(),
                lines: Vec::new(),
            }
        }

        fn epoch(&self) -> u64 {
            let elapsed = self.now.duration_since(self.t0);
            (self.unix_ms_at_t0 + u64::try_from(elapsed.as_millis()).expect("small")) / 1000
        }

        fn write_events(&mut self, ids: &LineIds<'_>) {
            let epoch = self.epoch();
            while self.engine.poll_action().is_some() {}
            while let Some(event) = self.engine.poll_event() {
                if let Some(line) = queue_log_line_with(&event, epoch, ids) {
                    self.lines.push(line);
                }
                self.writer.push_with(&event, epoch, ids);
            }
        }

        /// Move the clock to Unix time `unix_ms`, firing every engine timer on the way.
        fn run_to(&mut self, unix_ms: u64) {
            let target = self.t0 + Duration::from_millis(unix_ms - self.unix_ms_at_t0);
            assert!(target >= self.now, "the replay only goes forward");
            while let Some(due) = self.engine.poll_timeout() {
                if due > target {
                    break;
                }
                self.now = due.max(self.now);
                self.engine.handle_timeout(self.now);
                self.write_events(&LineIds::default());
            }
            self.now = target;
        }

        fn at(
            &mut self,
            unix_ms: u64,
            ids: LineIds<'_>,
            step: impl FnOnce(&mut QueueEngine, Instant),
        ) {
            self.run_to(unix_ms);
            let now = self.now;
            step(&mut self.engine, now);
            self.write_events(&ids);
        }

        fn add(&mut self, unix_ms: u64, agent: &str, by: &str) {
            self.at(unix_ms, LineIds::member(by), |engine, now| {
                engine
                    .add_member(now, "support", agent, false)
                    .expect("a dynamic member joins support");
            });
        }

        fn remove(&mut self, unix_ms: u64, agent: &str, by: &str) {
            self.at(unix_ms, LineIds::member(by), |engine, now| {
                engine
                    .remove_member(now, "support", agent)
                    .expect("a dynamic member leaves support");
            });
        }

        fn pause(
            &mut self,
            unix_ms: u64,
            queue: Option<&str>,
            agent: &str,
            paused: bool,
            reason: Option<&str>,
        ) {
            self.at(unix_ms, LineIds::default(), |engine, now| {
                engine
                    .pause(now, queue, agent, paused, reason.map(str::to_owned))
                    .expect("the agent is a member");
            });
        }

        fn join(&mut self, unix_ms: u64, queue: &str, call_id: &str) {
            self.at(unix_ms, LineIds::default(), |engine, now| {
                engine
                    .caller_join(now, queue, call_id, "caller1")
                    .expect("the queue exists");
            });
        }

        fn answer(&mut self, unix_ms: u64, call_id: &str, agent: &str, leg: &str) {
            self.at(unix_ms, LineIds::agent_leg(leg), |engine, now| {
                engine
                    .agent_answered(now, call_id, agent)
                    .expect("the agent was ringing for this caller");
            });
        }

        fn hangup(&mut self, unix_ms: u64, call_id: &str, by_agent: bool) {
            self.at(unix_ms, LineIds::default(), |engine, now| {
                if by_agent {
                    engine.call_ended(now, call_id, true);
                } else {
                    engine.caller_hangup(now, call_id);
                }
            });
        }
    }

    /// The capture lab's `support` queue: rrmemory, 15 s ring, 2 s retry.
    fn support() -> QueueConfig {
        QueueConfig {
            retry: Duration::from_secs(2),
            max_len: Some(10),
            ..QueueConfig::new("support", Strategy::RrMemory)
        }
    }

    const RUN_START_MS: u64 = 1_795_259_540_000;

    /// Lines 1–10 of the capture: start, scenario a, and b and c with agent1 alone.
    fn replay_start_to_c(t0: Instant) -> Replay {
        let mut lab = Replay::new(t0, RUN_START_MS);
        let start = queue_start_line(lab.epoch());
        lab.writer.push_line(&start);
        lab.lines.push(start);
        lab.add(1_795_259_545_300, "agent1", "ringside-lab-1795259544.0");
        lab.remove(1_795_259_548_400, "agent1", "ringside-lab-1795259548.1");
        lab.add(1_795_259_552_500, "agent1", "ringside-lab-1795259552.2");
        // b: the caller hangs up.
        let b = "ringside-lab-1795259556.3";
        lab.join(1_795_259_557_186, "support", b);
        lab.answer(1_795_259_557_690, b, "agent1", "ringside-lab-1795259557.4");
        lab.hangup(1_795_259_561_690, b, false);
        // c: the agent hangs up.
        let c = "ringside-lab-1795259565.5";
        lab.join(1_795_259_566_023, "support", c);
        lab.answer(1_795_259_566_528, c, "agent1", "ringside-lab-1795259566.6");
        lab.hangup(1_795_259_569_531, c, true);
        lab
    }

    /// Lines 11–52: from agent2's login before d to the teardown.
    fn replay_d_to_end(mut lab: Replay) -> Replay {
        lab.add(1_795_259_571_200, "agent2", "ringside-lab-1795259571.7");
        // d: agent1 rings out after 15 s, agent2 rings 2 s later and answers.
        let d = "ringside-lab-1795259575.8";
        lab.join(1_795_259_576_477, "support", d);
        lab.answer(1_795_259_593_999, d, "agent2", "ringside-lab-1795259593.10");
        lab.hangup(1_795_259_597_983, d, false);
        lab.remove(1_795_259_600_100, "agent2", "ringside-lab-1795259599.11");
        // i: blind transfer to 1002.
        let i = "ringside-lab-1795259604.12";
        lab.join(1_795_259_604_667, "support", i);
        lab.answer(1_795_259_605_175, i, "agent1", "ringside-lab-1795259604.13");
        lab.at(1_795_259_607_179, LineIds::default(), |engine, now| {
            engine.transferred(now, i, true, "1002");
        });
        // j: attended transfer, the caller ends up in another bridge.
        let j = "ringside-lab-1795259618.15";
        lab.join(1_795_259_618_518, "support", j);
        lab.answer(1_795_259_619_022, j, "agent1", "ringside-lab-1795259618.16");
        lab.at(
            1_795_259_624_562,
            LineIds::bridge("03575afb-bad5-4209-b224-321cda7d81f0"),
            |engine, now| engine.transferred(now, j, false, "agent2"),
        );
        // f: the caller hangs up while agent1 rings.
        let f = "ringside-lab-1795259635.19";
        lab.join(1_795_259_636_396, "support", f);
        lab.hangup(1_795_259_640_898, f, false);
        // The queue status snapshot: agent2 paused, one caller waiting while agent1 rings.
        lab.add(1_795_259_644_100, "agent2", "ringside-lab-1795259643.21");
        lab.pause(
            1_795_259_646_200,
            Some("support"),
            "agent2",
            true,
            Some("coffee-break"),
        );
        let snapshot = "ringside-lab-1795259646.22";
        lab.join(1_795_259_647_100, "support", snapshot);
        lab.hangup(1_795_259_655_603, snapshot, false);
        lab.pause(1_795_259_656_300, Some("support"), "agent2", false, None);
        lab.remove(1_795_259_657_100, "agent1", "ringside-lab-1795259657.24");
        lab.remove(1_795_259_659_100, "agent2", "ringside-lab-1795259659.25");
        // e: nobody logged in, the caller gives up after 4 s.
        let e = "ringside-lab-1795259663.26";
        lab.join(1_795_259_663_701, "support", e);
        lab.hangup(1_795_259_667_708, e, false);
        // g: dialled with a 10 s maximum wait.
        lab.engine.add_queue(QueueConfig {
            max_wait: Some(Duration::from_secs(10)),
            ..support()
        });
        lab.join(1_795_259_671_035, "support", "ringside-lab-1795259670.27");
        lab.run_to(1_795_259_682_000);
        lab.engine.add_queue(support());
        // h: a queue that sends callers away when nobody is logged in.
        lab.join(1_795_259_684_889, "empty", "ringside-lab-1795259684.28");
        // k1 and k2: pause codes and AMI QueuePause.
        lab.add(1_795_259_687_100, "agent1", "ringside-lab-1795259686.29");
        lab.pause(1_795_259_691_100, None, "agent1", true, Some("lab-pause"));
        lab.pause(
            1_795_259_693_100,
            None,
            "agent1",
            false,
            Some("lab-unpause"),
        );
        lab.pause(
            1_795_259_697_100,
            Some("support"),
            "agent1",
            true,
            Some("lunch"),
        );
        lab.pause(1_795_259_698_100, None, "agent1", false, None);
        // l: AMI QueueAdd, QueuePause, QueueRemove.
        lab.add(1_795_259_701_100, "agent2", "MANAGER");
        lab.pause(
            1_795_259_702_100,
            Some("support"),
            "agent2",
            true,
            Some("supervisor-hold"),
        );
        lab.pause(1_795_259_703_100, Some("support"), "agent2", false, None);
        lab.remove(1_795_259_704_100, "agent2", "MANAGER");
        lab.remove(1_795_259_708_100, "agent1", "ringside-lab-1795259707.32");
        lab
    }

    #[test]
    fn replaying_the_asterisk_run_writes_its_queue_log_byte_for_byte() {
        let t0 = Instant::now();
        // One engine for the whole run: in d it rings agent1 first although agent1 took b and c
        // alone, because rrmemory wraps its position as Asterisk does.
        let mut lab = replay_d_to_end(replay_start_to_c(t0));
        let written = lab.writer.drain();
        let expected = full_log();
        for (number, (ours, theirs)) in written.lines().zip(expected.lines()).enumerate() {
            assert_eq!(ours, theirs, "line {}", number + 1);
        }
        assert_eq!(written.lines().count(), 52);
        assert_eq!(written, expected);
        assert!(lab.writer.is_empty());
        assert_eq!(lab.writer.lines_written(), 52);
    }

    #[test]
    fn every_line_parses_back_into_the_same_record() {
        let t0 = Instant::now();
        let mut lines = replay_d_to_end(replay_start_to_c(t0)).lines;
        lines.extend(unit_lines());
        assert_eq!(lines.len(), 52 + 5);
        for line in &lines {
            let text = format_line(line);
            let parsed = parse_line(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(&parsed, line, "{text}");
            assert_eq!(format_line(&parsed), text);
            assert!(!matches!(parsed.event, QueueLogEvent::Other(ref name) if name != "FULL"));
        }
        let mut writer = QueueLogWriter::new();
        for line in &lines {
            writer.push_line(line);
        }
        let text = writer.drain();
        let (read, errors) = parse_all(&text);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(read, lines);
    }

    /// Lines for the events and fields the capture does not cover.
    fn unit_lines() -> Vec<QueueLogLine> {
        let events = [
            QueueEvent::JoinRefused {
                queue: "sales".into(),
                call_id: "lab-7".into(),
                caller_id: "+33123456789".into(),
                reason: RefuseReason::Empty,
            },
            QueueEvent::JoinRefused {
                queue: "sales".into(),
                call_id: "lab-8".into(),
                caller_id: "+33123456789".into(),
                reason: RefuseReason::Full,
            },
            QueueEvent::ExitEmpty {
                queue: "sales".into(),
                call_id: "lab-9".into(),
                position: 2,
                orig_position: 3,
                wait_secs: 41,
            },
            QueueEvent::RingNoAnswer {
                queue: "sales".into(),
                call_id: "lab-9".into(),
                agent: "102".into(),
                ring_ms: 7_350,
            },
            QueueEvent::Pause {
                queue: "sales".into(),
                agent: "102".into(),
                reason: "lunch|break\nsoon".into(),
            },
        ];
        events
            .iter()
            .filter_map(|event| queue_log_line(event, 1_800_000_000, "NONE"))
            .collect()
    }

    #[test]
    fn lines_for_what_the_capture_does_not_show() {
        let text: Vec<String> = unit_lines().iter().map(format_line).collect();
        assert_eq!(
            text,
            [
                "1800000000|lab-7|sales|NONE|JOINEMPTY|",
                "1800000000|lab-8|sales|NONE|FULL|",
                "1800000000|lab-9|sales|NONE|EXITEMPTY|2|3|41",
                "1800000000|lab-9|sales|102|RINGNOANSWER|7350",
                // A `|` or a line break inside a reason would add a field or a line.
                "1800000000|NONE|sales|102|PAUSE|lunch break soon",
            ]
        );
    }

    #[test]
    fn driver_ids_fill_their_columns_and_default_to_none() {
        let connect = QueueEvent::Connect {
            queue: "support".into(),
            call_id: "lab-1".into(),
            agent: "101".into(),
            hold_secs: 12,
            ring_secs: 3,
            orig_position: 2,
        };
        let line =
            |ids: &LineIds<'_>| queue_log_line_with(&connect, 5, ids).map(|l| format_line(&l));
        assert_eq!(
            line(&LineIds::default()).as_deref(),
            Some("5|lab-1|support|101|CONNECT|12|NONE|3")
        );
        assert_eq!(
            line(&LineIds::agent_leg("lab-2")).as_deref(),
            Some("5|lab-1|support|101|CONNECT|12|lab-2|3")
        );
        let blind = QueueEvent::BlindTransfer {
            queue: "support".into(),
            call_id: "lab-1".into(),
            agent: "101".into(),
            target: "+3312345".into(),
            hold_secs: 12,
            talk_secs: 60,
            orig_position: 2,
        };
        let ids = LineIds {
            context: "external",
            ..LineIds::default()
        };
        assert_eq!(
            queue_log_line_with(&blind, 5, &ids)
                .map(|l| format_line(&l))
                .as_deref(),
            Some("5|lab-1|support|101|BLINDTRANSFER|+3312345|external|12|60|2")
        );
        let attended = QueueEvent::AttendedTransfer {
            queue: "support".into(),
            call_id: "lab-1".into(),
            agent: "101".into(),
            target: "102".into(),
            hold_secs: 0,
            talk_secs: 9,
            orig_position: 1,
        };
        assert_eq!(
            queue_log_line(&attended, 5, "x")
                .map(|l| format_line(&l))
                .as_deref(),
            Some("5|lab-1|support|101|ATTENDEDTRANSFER|BRIDGE|NONE|0|9|1")
        );
        let add = QueueEvent::AddMember {
            queue: "support".into(),
            agent: "101".into(),
            static_member: false,
        };
        assert_eq!(
            queue_log_line(&add, 5, "lab-3")
                .map(|l| format_line(&l))
                .as_deref(),
            Some("5|lab-3|support|101|ADDMEMBER|")
        );
    }

    #[test]
    fn ami_only_events_and_static_members_write_nothing() {
        let silent = [
            QueueEvent::AddMember {
                queue: "support".into(),
                agent: "101".into(),
                static_member: true,
            },
            QueueEvent::MemberStatus {
                queue: "support".into(),
                agent: "101".into(),
                state: crate::lab::queue::AgentState::Ringing,
                paused: false,
            },
            QueueEvent::CallerLeave {
                queue: "support".into(),
                call_id: "lab-1".into(),
                position: 1,
                count: 0,
            },
            QueueEvent::AgentCalled {
                queue: "support".into(),
                call_id: "lab-1".into(),
                caller_id: "caller1".into(),
                agent: "101".into(),
            },
        ];
        let mut writer = QueueLogWriter::new();
        for event in &silent {
            assert_eq!(queue_log_line(event, 1, "x"), None, "{event:?}");
            assert!(!writer.push(event, 1));
        }
        assert!(writer.is_empty());
        assert_eq!(writer.drain(), "");
        // Every event with a verb writes a line with that verb.
        for line in unit_lines() {
            assert_ne!(line.event.name(), "");
        }
    }

    #[test]
    fn the_writer_hands_out_whole_lines_once() {
        let mut writer = QueueLogWriter::new();
        let enter = QueueEvent::EnterQueue {
            queue: "support".into(),
            call_id: "lab-1".into(),
            caller_id: "+33612345678".into(),
            position: 1,
        };
        assert!(writer.push(&enter, 100));
        writer.push_line(&queue_start_line(99));
        assert!(!writer.is_empty());
        assert_eq!(
            writer.drain(),
            "100|lab-1|support|NONE|ENTERQUEUE||+33612345678|1\n99|NONE|NONE|NONE|QUEUESTART|\n"
        );
        assert!(writer.is_empty());
        assert_eq!(writer.drain(), "");
        assert_eq!(writer.lines_written(), 2);
    }

    #[test]
    fn every_verb_the_engine_names_gets_a_line_with_that_verb() {
        // The engine's own list of verbs and this writer must agree.
        let t0 = Instant::now();
        let mut engine = QueueEngine::new(3);
        engine.add_queue(QueueConfig {
            join_empty: false,
            max_len: Some(0),
            ..QueueConfig::new("closed", Strategy::Linear)
        });
        let _ = engine.caller_join(t0, "closed", "lab-1", "caller");
        let mut events: Vec<QueueEvent> = std::iter::from_fn(|| engine.poll_event()).collect();
        events.extend(unit_events_with_every_verb());
        for event in events {
            let line = queue_log_line(&event, 1, "x");
            match (event.verb(), &event) {
                (None, _) => assert_eq!(line, None),
                (
                    Some(_),
                    QueueEvent::AddMember {
                        static_member: true,
                        ..
                    },
                ) => {
                    assert_eq!(line, None)
                }
                (Some(verb), _) => {
                    assert_eq!(
                        line.map(|l| l.event.name().to_owned()).as_deref(),
                        Some(verb)
                    )
                }
            }
        }
    }

    fn unit_events_with_every_verb() -> Vec<QueueEvent> {
        let q = || "q".to_owned();
        let c = || "c".to_owned();
        let a = || "a".to_owned();
        vec![
            QueueEvent::AddMember {
                queue: q(),
                agent: a(),
                static_member: false,
            },
            QueueEvent::AddMember {
                queue: q(),
                agent: a(),
                static_member: true,
            },
            QueueEvent::RemoveMember {
                queue: q(),
                agent: a(),
            },
            QueueEvent::PauseAll {
                agent: a(),
                reason: String::new(),
            },
            QueueEvent::UnpauseAll {
                agent: a(),
                reason: String::new(),
            },
            QueueEvent::Pause {
                queue: q(),
                agent: a(),
                reason: String::new(),
            },
            QueueEvent::Unpause {
                queue: q(),
                agent: a(),
                reason: String::new(),
            },
            QueueEvent::JoinRefused {
                queue: q(),
                call_id: c(),
                caller_id: c(),
                reason: RefuseReason::Full,
            },
            QueueEvent::EnterQueue {
                queue: q(),
                call_id: c(),
                caller_id: c(),
                position: 1,
            },
            QueueEvent::Connect {
                queue: q(),
                call_id: c(),
                agent: a(),
                hold_secs: 1,
                ring_secs: 1,
                orig_position: 1,
            },
            QueueEvent::RingNoAnswer {
                queue: q(),
                call_id: c(),
                agent: a(),
                ring_ms: 1,
            },
            QueueEvent::RingCanceled {
                queue: q(),
                call_id: c(),
                agent: a(),
                ring_ms: 1,
            },
            QueueEvent::CompleteAgent {
                queue: q(),
                call_id: c(),
                agent: a(),
                hold_secs: 1,
                talk_secs: 1,
                orig_position: 1,
            },
            QueueEvent::CompleteCaller {
                queue: q(),
                call_id: c(),
                agent: a(),
                hold_secs: 1,
                talk_secs: 1,
                orig_position: 1,
            },
            QueueEvent::Abandon {
                queue: q(),
                call_id: c(),
                position: 1,
                orig_position: 1,
                wait_secs: 1,
            },
            QueueEvent::ExitWithTimeout {
                queue: q(),
                call_id: c(),
                position: 1,
                orig_position: 1,
                wait_secs: 1,
            },
            QueueEvent::ExitEmpty {
                queue: q(),
                call_id: c(),
                position: 1,
                orig_position: 1,
                wait_secs: 1,
            },
            QueueEvent::BlindTransfer {
                queue: q(),
                call_id: c(),
                agent: a(),
                target: c(),
                hold_secs: 1,
                talk_secs: 1,
                orig_position: 1,
            },
            QueueEvent::AttendedTransfer {
                queue: q(),
                call_id: c(),
                agent: a(),
                target: c(),
                hold_secs: 1,
                talk_secs: 1,
                orig_position: 1,
            },
        ]
    }
}
