//! The live queue model, sans-IO: queues with their waiting callers and members, and agents
//! with their state, built from the AMI QueueStatus list and kept current by live events.
//!
//! Feed [`QueueState::apply`] every typed event with the current time: first the snapshot
//! (`QueueParams`, then that queue's `QueueMember`s and `QueueEntry`s, as QueueStatus lists
//! them), then the live events. A new snapshot resynchronises: each `QueueParams` drops that
//! queue's members and callers, and the list that follows re-adds them.
//!
//! Agent state is per interface (one phone), folded over its queue memberships:
//! ringing / busy / on hold (a call in progress) come first, then paused (in every queue it is
//! a member of), then unavailable (the device is), else available; an interface in no queue is
//! logged out. With Asterisk's `device_state_busy_at` a ringing phone reports BUSY, so ringing
//! comes from `AgentCalled` until the call is answered, rung out or gone, and in a snapshot
//! from a waiting caller whose connected line names the member (that is who Asterisk rings).
//! A BUSY report caused by that ringing or by the queue call itself is dropped when it ends,
//! so the agent does not stay busy until the next `QueueMemberStatus`; an idle (NOT_INUSE)
//! status ends ringing and the call whatever events were missed.

use std::collections::BTreeMap;

use super::ami::{CallerChannel, DeviceState, Membership, QueueAmiEvent, QueueMemberInfo};

/// A caller waiting in a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingCaller {
    /// The caller channel's uniqueid (queue_log's call id).
    pub call_id: String,
    pub channel: String,
    pub caller_id_num: String,
    pub caller_id_name: String,
    /// 1 = next to be served.
    pub position: u64,
    /// When the caller joined, epoch seconds.
    pub joined_at: u64,
}

impl WaitingCaller {
    /// Seconds waited so far.
    pub fn wait_s(&self, now_epoch: u64) -> u64 {
        now_epoch.saturating_sub(self.joined_at)
    }
}

/// One queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    pub name: String,
    /// Asterisk's strategy name (`rrmemory`, `ringall`, ...); empty until a snapshot says.
    pub strategy: String,
    /// Most callers allowed to wait (`maxlen`); `None` for unlimited or unknown. AMI does not
    /// report the maximum wait: that is an argument of each `Queue()` call.
    pub max_callers: Option<u64>,
    /// The service-level threshold, seconds.
    pub service_level_s: Option<u64>,
    /// Answered calls completed, from the snapshot and counted on since.
    pub completed: u64,
    /// Asterisk's abandoned count: caller hang-ups, timeouts and empty exits together.
    pub abandoned: u64,
    /// Member interfaces, in the order they joined.
    pub members: Vec<String>,
    /// Waiting callers by position.
    pub callers: Vec<WaitingCaller>,
}

impl Queue {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            strategy: String::new(),
            max_callers: None,
            service_level_s: None,
            completed: 0,
            abandoned: 0,
            members: Vec::new(),
            callers: Vec::new(),
        }
    }

    /// The longest current wait, seconds.
    pub fn longest_wait_s(&self, now_epoch: u64) -> u64 {
        self.callers
            .iter()
            .map(|caller| caller.wait_s(now_epoch))
            .max()
            .unwrap_or(0)
    }

    fn remove_caller(&mut self, call_id: &str) -> bool {
        let Some(index) = self.callers.iter().position(|c| c.call_id == call_id) else {
            return false;
        };
        let gone = self.callers.remove(index);
        // Asterisk moves everyone behind the leaver up one place.
        for caller in &mut self.callers {
            if caller.position > gone.position {
                caller.position -= 1;
            }
        }
        true
    }
}

/// An agent's membership of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMembership {
    pub queue: String,
    /// Static (queues.conf), dynamic (logged in) or realtime; `None` until a member event says.
    pub kind: Option<Membership>,
    pub penalty: i64,
    /// `Some(reason)` while paused in this queue (the reason may be empty).
    pub paused: Option<String>,
    pub calls_taken: u64,
    /// Epoch seconds of the last call's end, if any.
    pub last_call: Option<u64>,
    /// Epoch seconds.
    pub login_time: Option<u64>,
}

/// What an agent is doing now, as a supervisor would say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    Available,
    Ringing,
    Busy,
    OnHold,
    Paused {
        reason: String,
    },
    /// A member whose phone is unreachable (unregistered, invalid).
    Unavailable,
    /// In no queue.
    LoggedOut,
}

/// One agent: an interface (phone) and its memberships.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Member name (the interface when Asterisk has none).
    pub name: String,
    pub interface: String,
    pub memberships: Vec<QueueMembership>,
    /// The last device state reported.
    pub device: DeviceState,
    /// The caller (uniqueid) this agent's phone is ringing for.
    pub ringing_for: Option<String>,
    /// The caller (uniqueid) this agent is talking to.
    pub talking_to: Option<String>,
    /// Whether `device` reports activity that ends with the ringing or the queue call.
    device_from_queue_call: bool,
}

impl Agent {
    fn new(name: &str, interface: &str) -> Self {
        Self {
            name: if name.is_empty() { interface } else { name }.to_owned(),
            interface: interface.to_owned(),
            memberships: Vec::new(),
            device: DeviceState::Unknown,
            ringing_for: None,
            talking_to: None,
            device_from_queue_call: false,
        }
    }

    /// The state a supervisor sees (see the module docs for the precedence).
    pub fn state(&self) -> AgentState {
        if self.memberships.is_empty() {
            return AgentState::LoggedOut;
        }
        if self.device == DeviceState::OnHold {
            return AgentState::OnHold;
        }
        if self.ringing_for.is_some()
            || matches!(self.device, DeviceState::Ringing | DeviceState::RingInUse)
        {
            return AgentState::Ringing;
        }
        if self.talking_to.is_some()
            || matches!(self.device, DeviceState::InUse | DeviceState::Busy)
        {
            return AgentState::Busy;
        }
        if self.memberships.iter().all(|m| m.paused.is_some()) {
            let reason = self
                .memberships
                .iter()
                .find_map(|m| m.paused.clone().filter(|r| !r.is_empty()))
                .unwrap_or_default();
            return AgentState::Paused { reason };
        }
        if matches!(self.device, DeviceState::Unavailable | DeviceState::Invalid) {
            return AgentState::Unavailable;
        }
        AgentState::Available
    }

    /// The membership of `queue`, if any.
    pub fn membership(&self, queue: &str) -> Option<&QueueMembership> {
        self.memberships.iter().find(|m| m.queue == queue)
    }

    /// Whether every membership is static (always logged in).
    pub fn is_static(&self) -> bool {
        !self.memberships.is_empty()
            && self
                .memberships
                .iter()
                .all(|m| m.kind == Some(Membership::Static))
    }

    /// Calls taken over all queues.
    pub fn calls_taken(&self) -> u64 {
        self.memberships.iter().map(|m| m.calls_taken).sum()
    }

    /// The most recent call's end over all queues.
    pub fn last_call(&self) -> Option<u64> {
        self.memberships.iter().filter_map(|m| m.last_call).max()
    }

    /// The earliest login over all queues.
    pub fn login_time(&self) -> Option<u64> {
        self.memberships.iter().filter_map(|m| m.login_time).min()
    }

    fn membership_mut(&mut self, queue: &str) -> &mut QueueMembership {
        if let Some(index) = self.memberships.iter().position(|m| m.queue == queue) {
            return &mut self.memberships[index];
        }
        self.memberships.push(QueueMembership {
            queue: queue.to_owned(),
            kind: None,
            penalty: 0,
            paused: None,
            calls_taken: 0,
            last_call: None,
            login_time: None,
        });
        let last = self.memberships.len() - 1;
        &mut self.memberships[last]
    }

    fn set_device(&mut self, device: DeviceState) {
        self.device = device;
        if device == DeviceState::NotInUse {
            // An idle phone is neither ringing nor on the call any more, whatever event
            // (answer elsewhere, a caller who left, a transfer) we have not seen yet.
            self.ringing_for = None;
            self.talking_to = None;
        }
        self.device_from_queue_call = (self.ringing_for.is_some() || self.talking_to.is_some())
            && matches!(
                device,
                DeviceState::Busy | DeviceState::InUse | DeviceState::Ringing
            );
    }

    /// Drops a busy report that the ringing or the queue call caused, once both are over.
    fn settle_device(&mut self) {
        if self.ringing_for.is_none() && self.talking_to.is_none() && self.device_from_queue_call {
            self.device = DeviceState::NotInUse;
            self.device_from_queue_call = false;
        }
    }
}

/// Queues and agents, kept current from AMI.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueState {
    queues: BTreeMap<String, Queue>,
    /// By interface.
    agents: BTreeMap<String, Agent>,
}

impl QueueState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues by name.
    pub fn queues(&self) -> impl Iterator<Item = &Queue> {
        self.queues.values()
    }

    pub fn queue(&self, name: &str) -> Option<&Queue> {
        self.queues.get(name)
    }

    /// Agents by interface, logged-out ones included.
    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    /// The agent on `interface` (`PJSIP/agent1`), or failing that the one named `name_or_interface`.
    pub fn agent(&self, name_or_interface: &str) -> Option<&Agent> {
        self.agents.get(name_or_interface).or_else(|| {
            self.agents
                .values()
                .find(|agent| agent.name == name_or_interface)
        })
    }

    /// Applies one event. Events carry their own `Timestamp`; `now_epoch` stands in for it in
    /// the QueueStatus list (which has none) and is the clock for waits there.
    pub fn apply(&mut self, event: &QueueAmiEvent, now_epoch: u64) {
        let time = event.timestamp().map_or(now_epoch, |t| t.secs);
        match event {
            QueueAmiEvent::QueueParams(params) => {
                self.forget_listing(&params.queue);
                let queue = self.queue_mut(&params.queue);
                queue.strategy = params.strategy.clone();
                queue.max_callers = params.max.filter(|max| *max > 0);
                queue.service_level_s = params.service_level_s;
                queue.completed = params.completed.unwrap_or(queue.completed);
                queue.abandoned = params.abandoned.unwrap_or(queue.abandoned);
            }
            QueueAmiEvent::QueueMember(member)
            | QueueAmiEvent::QueueMemberAdded(member)
            | QueueAmiEvent::QueueMemberPause(member)
            | QueueAmiEvent::QueueMemberStatus(member) => self.upsert_member(member),
            QueueAmiEvent::QueueMemberRemoved(member) => {
                if let Some(queue) = self.queues.get_mut(&member.queue) {
                    queue.members.retain(|i| i != &member.interface);
                }
                if let Some(agent) = self.agents.get_mut(&member.interface) {
                    agent.memberships.retain(|m| m.queue != member.queue);
                }
            }
            QueueAmiEvent::QueueEntry(entry) => {
                let joined_at = now_epoch.saturating_sub(entry.wait_s.unwrap_or(0));
                let position = entry.position.unwrap_or(0);
                self.add_caller(&entry.queue, &entry.caller, position, joined_at);
                self.infer_ringing(&entry.queue, &entry.caller);
            }
            QueueAmiEvent::QueueCallerJoin(join) => {
                let position = join.position.unwrap_or(0);
                self.add_caller(&join.queue, &join.caller, position, time);
            }
            // Asterisk sends the leave just before AgentConnect when a call is answered, so
            // the ringing agent is left as it is: the connect, a ring-out, the abandon or an
            // idle device status ends the ringing.
            QueueAmiEvent::QueueCallerLeave(leave) => {
                if let Some(queue) = self.queues.get_mut(&leave.queue) {
                    queue.remove_caller(&leave.caller.uniqueid);
                }
            }
            QueueAmiEvent::QueueCallerAbandon(abandon) => {
                let queue = self.queue_mut(&abandon.queue);
                queue.remove_caller(&abandon.caller.uniqueid);
                queue.abandoned += 1;
                self.stop_ringing_for(&abandon.caller.uniqueid, None);
            }
            QueueAmiEvent::AgentCalled(called) => {
                let agent = self.agent_in_queue(
                    &called.queue,
                    &called.agent.member_name,
                    &called.agent.interface,
                );
                agent.ringing_for = Some(called.caller.uniqueid.clone());
            }
            QueueAmiEvent::AgentRingNoAnswer(rna) => {
                let agent =
                    self.agent_in_queue(&rna.queue, &rna.agent.member_name, &rna.agent.interface);
                if agent.ringing_for.as_deref() == Some(rna.caller.uniqueid.as_str()) {
                    agent.ringing_for = None;
                }
                agent.settle_device();
            }
            QueueAmiEvent::AgentConnect(connect) => {
                let agent = self.agent_in_queue(
                    &connect.queue,
                    &connect.agent.member_name,
                    &connect.agent.interface,
                );
                agent.ringing_for = None;
                agent.talking_to = Some(connect.caller.uniqueid.clone());
                let interface = agent.interface.clone();
                // With ringall the others stop ringing now.
                self.stop_ringing_for(&connect.caller.uniqueid, Some(&interface));
                if let Some(queue) = self.queues.get_mut(&connect.queue) {
                    queue.remove_caller(&connect.caller.uniqueid);
                }
            }
            QueueAmiEvent::AgentComplete(complete) => {
                let agent = self.agent_in_queue(
                    &complete.queue,
                    &complete.agent.member_name,
                    &complete.agent.interface,
                );
                if agent.talking_to.as_deref() == Some(complete.caller.uniqueid.as_str()) {
                    agent.talking_to = None;
                }
                agent.settle_device();
                let membership = agent.membership_mut(&complete.queue);
                membership.calls_taken += 1;
                membership.last_call = Some(time);
                self.queue_mut(&complete.queue).completed += 1;
            }
            QueueAmiEvent::QueueStatusComplete(_)
            | QueueAmiEvent::QueueSummary(_)
            | QueueAmiEvent::QueueSummaryComplete(_)
            | QueueAmiEvent::FullyBooted(_) => {}
        }
    }

    fn queue_mut(&mut self, name: &str) -> &mut Queue {
        self.queues
            .entry(name.to_owned())
            .or_insert_with(|| Queue::new(name))
    }

    /// A QueueStatus list is about to name this queue's members and callers again.
    fn forget_listing(&mut self, queue_name: &str) {
        let Some(queue) = self.queues.get_mut(queue_name) else {
            return;
        };
        queue.callers.clear();
        for interface in std::mem::take(&mut queue.members) {
            if let Some(agent) = self.agents.get_mut(&interface) {
                agent.memberships.retain(|m| m.queue != queue_name);
            }
        }
    }

    fn agent_mut(&mut self, name: &str, interface: &str) -> &mut Agent {
        let agent = self
            .agents
            .entry(interface.to_owned())
            .or_insert_with(|| Agent::new(name, interface));
        if !name.is_empty() {
            name.clone_into(&mut agent.name);
        }
        agent
    }

    /// The agent, made a member of `queue` if it was not known as one: only members ring for
    /// and answer a queue's callers.
    fn agent_in_queue(&mut self, queue: &str, name: &str, interface: &str) -> &mut Agent {
        let members = &mut self.queue_mut(queue).members;
        if !members.iter().any(|i| i == interface) {
            members.push(interface.to_owned());
        }
        let agent = self.agent_mut(name, interface);
        agent.membership_mut(queue);
        agent
    }

    fn upsert_member(&mut self, info: &QueueMemberInfo) {
        let agent = self.agent_in_queue(&info.queue, &info.member_name, &info.interface);
        if let Some(status) = info.status {
            agent.set_device(status);
        }
        let membership = agent.membership_mut(&info.queue);
        if let Some(kind) = &info.membership {
            membership.kind = Some(kind.clone());
        }
        if let Some(penalty) = info.penalty {
            membership.penalty = penalty;
        }
        if let Some(paused) = info.paused {
            membership.paused = paused.then(|| info.paused_reason.clone());
        }
        if let Some(calls) = info.calls_taken {
            membership.calls_taken = calls;
        }
        if let Some(last_call) = info.last_call {
            membership.last_call = (last_call > 0).then_some(last_call);
        }
        if let Some(login) = info.login_time {
            membership.login_time = (login > 0).then_some(login);
        }
    }

    fn add_caller(
        &mut self,
        queue_name: &str,
        caller: &CallerChannel,
        position: u64,
        joined_at: u64,
    ) {
        let queue = self.queue_mut(queue_name);
        queue.remove_caller(&caller.uniqueid);
        let position = if position == 0 {
            queue.callers.len() as u64 + 1
        } else {
            position
        };
        for other in &mut queue.callers {
            if other.position >= position {
                other.position += 1;
            }
        }
        queue.callers.push(WaitingCaller {
            call_id: caller.uniqueid.clone(),
            channel: caller.channel.clone(),
            caller_id_num: caller.caller_id_num.clone(),
            caller_id_name: caller.caller_id_name.clone(),
            position,
            joined_at,
        });
        queue.callers.sort_by_key(|c| c.position);
    }

    /// Every agent ringing for `call_id` stops, except `keep`.
    fn stop_ringing_for(&mut self, call_id: &str, keep: Option<&str>) {
        for agent in self.agents.values_mut() {
            if agent.ringing_for.as_deref() == Some(call_id)
                && keep != Some(agent.interface.as_str())
            {
                agent.ringing_for = None;
                agent.settle_device();
            }
        }
    }

    /// In a snapshot, a waiting caller's connected line names the member Asterisk rings.
    fn infer_ringing(&mut self, queue_name: &str, caller: &CallerChannel) {
        let rung = caller.connected_line_num.as_str();
        if rung.is_empty() || rung == "<unknown>" {
            return;
        }
        let Some(queue) = self.queues.get(queue_name) else {
            return;
        };
        for interface in &queue.members {
            let Some(agent) = self.agents.get_mut(interface) else {
                continue;
            };
            let endpoint = interface.rsplit('/').next().unwrap_or(interface);
            let named = agent.name == rung || endpoint == rung;
            let phone_active = matches!(
                agent.device,
                DeviceState::Busy | DeviceState::InUse | DeviceState::Ringing
            );
            if named && phone_active && agent.talking_to.is_none() {
                agent.ringing_for = Some(caller.uniqueid.clone());
                agent.device_from_queue_call = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::ami::{AmiFramer, AmiItem, AmiMessage};
    use std::path::PathBuf;

    const SNAPSHOT_AT: u64 = 1_795_259_649;

    fn typed_events(name: &str) -> Vec<QueueAmiEvent> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/asterisk/ami")
            .join(name);
        let mut framer = AmiFramer::from_server();
        framer.push(&std::fs::read(path).expect("fixture"));
        let mut events = Vec::new();
        while let Some(item) = framer.next_item().expect("frames") {
            if let AmiItem::Message(message) = item {
                if let Some(event) = QueueAmiEvent::from_message(&message).expect("well formed") {
                    events.push(event);
                }
            }
        }
        events
    }

    fn snapshot() -> QueueState {
        let mut state = QueueState::new();
        for event in typed_events("queuestatus.server.txt") {
            state.apply(&event, SNAPSHOT_AT);
        }
        state
    }

    fn membership(queue: &str, kind: Membership) -> QueueMembership {
        QueueMembership {
            queue: queue.into(),
            kind: Some(kind),
            penalty: 0,
            paused: None,
            calls_taken: 0,
            last_call: None,
            login_time: None,
        }
    }

    #[test]
    fn the_queuestatus_snapshot_is_the_readme_model() {
        let state = snapshot();
        let names: Vec<&str> = state.queues().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["empty", "sales", "support"]);

        let support = state.queue("support").expect("support");
        assert_eq!(
            (
                support.strategy.as_str(),
                support.max_callers,
                support.service_level_s,
                support.completed,
                support.abandoned
            ),
            ("rrmemory", Some(10), Some(60), 5, 1)
        );
        assert_eq!(support.members, ["PJSIP/agent1", "PJSIP/agent2"]);
        assert_eq!(
            support.callers,
            [WaitingCaller {
                call_id: "ringside-lab-1795259646.22".into(),
                channel: "PJSIP/caller1-00000016".into(),
                caller_id_num: "caller1".into(),
                caller_id_name: "Caller One".into(),
                position: 1,
                joined_at: 1_795_259_647,
            }]
        );
        assert_eq!(support.callers[0].wait_s(SNAPSHOT_AT), 2);
        assert_eq!(support.longest_wait_s(SNAPSHOT_AT + 3), 5);

        let sales = state.queue("sales").expect("sales");
        assert_eq!(
            (sales.strategy.as_str(), sales.members.as_slice()),
            ("ringall", &["PJSIP/agent3".to_owned()][..])
        );
        assert!(sales.callers.is_empty());
        let empty = state.queue("empty").expect("empty");
        assert!(empty.members.is_empty() && empty.callers.is_empty());

        let agent1 = state.agent("PJSIP/agent1").expect("agent1");
        assert_eq!(agent1.name, "agent1");
        assert_eq!(
            agent1.state(),
            AgentState::Ringing,
            "Status 3 + the caller's connected line"
        );
        assert_eq!(
            agent1.ringing_for.as_deref(),
            Some("ringside-lab-1795259646.22")
        );
        assert_eq!(
            agent1.memberships,
            [QueueMembership {
                calls_taken: 4,
                last_call: Some(1_795_259_624),
                login_time: Some(1_795_259_552),
                ..membership("support", Membership::Dynamic)
            }]
        );
        assert!(!agent1.is_static());

        let agent2 = state.agent("agent2").expect("found by name too");
        assert_eq!(
            agent2.state(),
            AgentState::Paused {
                reason: "coffee-break".into()
            }
        );
        assert_eq!(
            agent2.memberships,
            [QueueMembership {
                paused: Some("coffee-break".into()),
                login_time: Some(1_795_259_644),
                ..membership("support", Membership::Dynamic)
            }]
        );

        let agent3 = state.agent("PJSIP/agent3").expect("agent3");
        assert_eq!(agent3.state(), AgentState::Available);
        assert!(agent3.is_static());
        assert_eq!(
            (
                agent3.calls_taken(),
                agent3.last_call(),
                agent3.login_time()
            ),
            (0, None, Some(1_795_259_540))
        );
        assert_eq!(state.agents().count(), 3);
    }

    /// The agent's state after each event that changed it, starting from the empty model.
    fn transitions(fixture: &str, interface: &str) -> Vec<AgentState> {
        let mut state = QueueState::new();
        let mut seen: Vec<AgentState> = Vec::new();
        for event in typed_events(fixture) {
            state.apply(&event, 0);
            if let Some(agent) = state.agent(interface) {
                let now = agent.state();
                if seen.last() != Some(&now) {
                    seen.push(now);
                }
            }
        }
        seen
    }

    #[test]
    fn live_events_move_agents_as_the_timelines_say() {
        use AgentState::*;
        // a: *50 login (the login call keeps the phone busy), hang-up, *51, removal.
        assert_eq!(
            transitions("events-a-login-logout.server.txt", "PJSIP/agent1"),
            [Busy, Available, Busy, LoggedOut]
        );
        // b: rings, answers, the caller hangs up.
        assert_eq!(
            transitions("events-b-completecaller.server.txt", "PJSIP/agent1"),
            [Ringing, Busy, Available]
        );
        // d: agent1 rings out; agent2 answers.
        assert_eq!(
            transitions("events-d-ringnoanswer.server.txt", "PJSIP/agent1"),
            [Ringing, Available]
        );
        assert_eq!(
            transitions("events-d-ringnoanswer.server.txt", "PJSIP/agent2"),
            [Ringing, Busy, Available]
        );
        // f: rings until the caller gives up.
        assert_eq!(
            transitions("events-f-ringcanceled-abandon.server.txt", "PJSIP/agent1"),
            [Ringing, Available]
        );
        // i: blind transfer ends the agent's part.
        assert_eq!(
            transitions("events-i-blindtransfer.server.txt", "PJSIP/agent1"),
            [Ringing, Busy, Available]
        );
        // k1: *54 (a short call of its own) pauses, *55 unpauses.
        let lab_pause = Paused {
            reason: "lab-pause".into(),
        };
        assert_eq!(
            transitions("events-k1-pause-featurecodes.server.txt", "PJSIP/agent1"),
            [Busy, lab_pause, Busy, Available]
        );
        // l: supervisor adds, pauses, unpauses and removes agent2.
        assert_eq!(
            transitions("events-l-ami-member-actions.server.txt", "PJSIP/agent2"),
            [
                Available,
                Paused {
                    reason: "supervisor-hold".into()
                },
                Available,
                LoggedOut
            ]
        );
    }

    #[test]
    fn live_events_move_callers_as_the_timelines_say() {
        let mut state = QueueState::new();
        let mut waiting = Vec::new();
        for event in typed_events("events-d-ringnoanswer.server.txt") {
            state.apply(&event, 0);
            let now: Vec<(String, u64)> = state
                .queue("support")
                .map(|q| {
                    q.callers
                        .iter()
                        .map(|c| (c.caller_id_num.clone(), c.position))
                        .collect()
                })
                .unwrap_or_default();
            if waiting.last() != Some(&now) {
                waiting.push(now);
            }
        }
        assert_eq!(waiting, [vec![], vec![("caller1".to_owned(), 1)], vec![]]);
        let support = state.queue("support").expect("support");
        assert_eq!(support.completed, 1);
        let agent2 = state.agent("agent2").expect("agent2");
        assert_eq!(
            (agent2.calls_taken(), agent2.last_call()),
            (1, Some(1_795_259_597))
        );

        // e, g, h: callers leave without an agent; Asterisk counts all three as abandoned.
        let mut state = QueueState::new();
        for fixture in [
            "events-e-abandon.server.txt",
            "events-g-exitwithtimeout.server.txt",
            "events-h-exitempty.server.txt",
        ] {
            for event in typed_events(fixture) {
                state.apply(&event, 0);
            }
        }
        let abandoned: Vec<(&str, u64, usize)> = state
            .queues()
            .map(|q| (q.name.as_str(), q.abandoned, q.callers.len()))
            .collect();
        assert_eq!(abandoned, [("empty", 1, 0), ("support", 2, 0)]);
    }

    fn caller_event(name: &str, id: &str, position: &str) -> QueueAmiEvent {
        let message = AmiMessage::event(name)
            .with("Queue", "q")
            .with("Uniqueid", id)
            .with("CallerIDNum", id)
            .with("Position", position);
        QueueAmiEvent::from_message(&message)
            .expect("well formed")
            .expect("a queue event")
    }

    #[test]
    fn positions_close_up_when_a_caller_leaves() {
        let mut state = QueueState::new();
        for (id, position) in [("a", "1"), ("b", "2"), ("c", "3")] {
            state.apply(&caller_event("QueueCallerJoin", id, position), 10);
        }
        // A priority caller joins at the head.
        state.apply(&caller_event("QueueCallerJoin", "vip", "1"), 11);
        state.apply(&caller_event("QueueCallerLeave", "b", "3"), 12);
        let order: Vec<(&str, u64)> = state
            .queue("q")
            .expect("q")
            .callers
            .iter()
            .map(|c| (c.call_id.as_str(), c.position))
            .collect();
        assert_eq!(order, [("vip", 1), ("a", 2), ("c", 3)]);
    }

    #[test]
    fn a_new_snapshot_replaces_the_old_listing() {
        let mut state = snapshot();
        // Asterisk restarted without agent2 and the caller: the next QueueStatus lists only agent1.
        let resync = [
            AmiMessage::event("QueueParams")
                .with("Queue", "support")
                .with("Strategy", "rrmemory")
                .with("Max", "0")
                .with("Completed", "0")
                .with("Abandoned", "0"),
            AmiMessage::event("QueueMember")
                .with("Queue", "support")
                .with("Name", "agent1")
                .with("Location", "PJSIP/agent1")
                .with("Membership", "dynamic")
                .with("Status", "1")
                .with("Paused", "0"),
        ];
        for message in resync {
            let event = QueueAmiEvent::from_message(&message)
                .expect("ok")
                .expect("event");
            state.apply(&event, SNAPSHOT_AT + 60);
        }
        let support = state.queue("support").expect("support");
        assert_eq!(support.members, ["PJSIP/agent1"]);
        assert!(support.callers.is_empty());
        assert_eq!((support.max_callers, support.completed), (None, 0));
        assert_eq!(
            state.agent("agent2").map(Agent::state),
            Some(AgentState::LoggedOut)
        );
        // agent1 still rings for the caller the old listing had; the device says idle now,
        // and the caller is gone, so only the explicit ringing remains until it ends.
        let leave = caller_event("QueueCallerLeave", "ringside-lab-1795259646.22", "1");
        state.apply(&leave, SNAPSHOT_AT + 61);
        assert_eq!(
            state.agent("agent1").map(Agent::state),
            Some(AgentState::Available)
        );
    }

    /// `cargo test --release --lib queue::model -- --ignored --nocapture`
    #[test]
    #[ignore = "benchmark: run in release mode"]
    fn bench_one_ami_event_into_the_model() {
        let mut messages = Vec::new();
        for fixture in [
            "queuestatus.server.txt",
            "events-b-completecaller.server.txt",
            "events-d-ringnoanswer.server.txt",
            "events-f-ringcanceled-abandon.server.txt",
            "events-k1-pause-featurecodes.server.txt",
            "events-l-ami-member-actions.server.txt",
        ] {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/asterisk/ami")
                .join(fixture);
            let mut framer = AmiFramer::from_server();
            framer.push(&std::fs::read(path).expect("fixture"));
            while let Some(item) = framer.next_item().expect("frames") {
                if let AmiItem::Message(message) = item {
                    messages.push(message);
                }
            }
        }
        let typed: Vec<QueueAmiEvent> = messages
            .iter()
            .filter_map(|m| QueueAmiEvent::from_message(m).expect("ok"))
            .collect();
        const ROUNDS: usize = 20_000;
        let mut state = QueueState::new();
        let start = std::time::Instant::now();
        for round in 0..ROUNDS {
            for event in &typed {
                state.apply(event, round as u64);
            }
        }
        let apply_ns = start.elapsed().as_nanos() as f64 / (ROUNDS * typed.len()) as f64;
        let queue_messages: Vec<&AmiMessage> = messages
            .iter()
            .filter(|m| matches!(QueueAmiEvent::from_message(m), Ok(Some(_))))
            .collect();
        let start = std::time::Instant::now();
        for _ in 0..ROUNDS / 10 {
            for message in &queue_messages {
                if let Ok(Some(event)) = QueueAmiEvent::from_message(message) {
                    state.apply(&event, 0);
                }
            }
        }
        let typed_and_apply_ns =
            start.elapsed().as_nanos() as f64 / (ROUNDS / 10 * queue_messages.len()) as f64;
        let mut deriver = crate::queue::report::ReportDeriver::new();
        let start = std::time::Instant::now();
        let mut derived = 0usize;
        for _ in 0..ROUNDS / 10 {
            for message in &messages {
                let _ = deriver.handle_message(0, message);
                while deriver.poll_event().is_some() {
                    derived += 1;
                }
            }
        }
        let derive_ns = start.elapsed().as_nanos() as f64 / (ROUNDS / 10 * messages.len()) as f64;
        println!(
            "{} queue events: QueueState::apply {apply_ns:.0} ns/event; typing the message \
             (from_message) + apply {typed_and_apply_ns:.0} ns/event; ReportDeriver \
             {derive_ns:.0} ns per AMI message of any kind ({} messages, {derived} events)",
            typed.len(),
            messages.len()
        );
    }
}
