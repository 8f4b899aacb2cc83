//! A call center to draw: 50 queues, 1000 agents, 300 waiting callers and a stream of report
//! events, built through [`App::update`] as live data would be. The snapshot tests and the
//! render benchmark (benches/render.rs) share it.

use crate::queue::ami::{
    CallerChannel, DeviceState, Membership, QueueAmiEvent, QueueCallerMove, QueueMemberInfo,
    QueueParams,
};
use crate::queue::report::{ReportEvent, ReportKind};
use crate::tui::app::{App, Input};

/// The sample's wall clock: 2026-11-21T11:13:11Z, in epoch milliseconds.
pub const T0_MS: u64 = 1_795_259_591_000;

pub fn member(queue: &str, interface: &str, name: &str, status: DeviceState) -> QueueAmiEvent {
    QueueAmiEvent::QueueMember(QueueMemberInfo {
        queue: queue.to_owned(),
        member_name: name.to_owned(),
        interface: interface.to_owned(),
        membership: Some(Membership::Dynamic),
        status: Some(status),
        paused: Some(false),
        ..QueueMemberInfo::default()
    })
}

pub fn params(queue: &str) -> QueueAmiEvent {
    QueueAmiEvent::QueueParams(QueueParams {
        queue: queue.to_owned(),
        strategy: "rrmemory".to_owned(),
        service_level_s: Some(20),
        ..QueueParams::default()
    })
}

pub fn caller_joins(queue: &str, id: &str, number: &str, name: &str) -> QueueAmiEvent {
    QueueAmiEvent::QueueCallerJoin(QueueCallerMove {
        queue: queue.to_owned(),
        caller: CallerChannel {
            channel: format!("PJSIP/{number}-0001"),
            uniqueid: id.to_owned(),
            caller_id_num: number.to_owned(),
            caller_id_name: name.to_owned(),
            ..CallerChannel::default()
        },
        ..QueueCallerMove::default()
    })
}

/// Fills `app` with the busy call center and `events` report events (calls entering, then
/// answered and hung up, or abandoned), and moves its clock two minutes on.
pub fn fill_busy(app: &mut App, events: usize) {
    for q in 0..50 {
        app.update(Input::Queue(params(&format!("queue{q:02}"))));
    }
    for a in 0..1000 {
        let status = match a % 4 {
            0 => DeviceState::NotInUse,
            1 => DeviceState::InUse,
            2 => DeviceState::Ringing,
            _ => DeviceState::Unavailable,
        };
        let queue = format!("queue{:02}", a % 50);
        let interface = format!("PJSIP/a{a:04}");
        app.update(Input::Queue(member(
            &queue,
            &interface,
            &format!("agent{a:04}"),
            status,
        )));
    }
    for c in 0..300 {
        let queue = format!("queue{:02}", c % 7);
        app.update(Input::Queue(caller_joins(
            &queue,
            &format!("c{c}"),
            &format!("+3247{c:07}"),
            if c % 3 == 0 { "" } else { "Caller Name" },
        )));
    }
    // Calls in turn through the queues: enter, then answered (and hung up) or abandoned.
    let mut pushed = 0;
    let mut call = 0u64;
    while pushed < events {
        let queue = format!("queue{:02}", call % 50);
        let time = T0_MS / 1000 - 600 + call % 600;
        let wait = u32::try_from(call % 45).unwrap_or(0);
        let outcome = if call % 7 == 3 {
            vec![(ReportKind::CallerQuit, Some(wait), None)]
        } else {
            vec![
                (ReportKind::Connected, Some(wait), None),
                (ReportKind::AgentHangup, Some(wait), Some(120)),
            ]
        };
        let steps = std::iter::once((ReportKind::EnterQueue, None, None)).chain(outcome);
        for (kind, wait_s, talk_s) in steps {
            if pushed == events {
                break;
            }
            let answered = kind != ReportKind::EnterQueue && kind != ReportKind::CallerQuit;
            app.update(Input::Report(ReportEvent {
                time,
                kind,
                queue: queue.clone(),
                call_id: Some(format!("call{call}")),
                agent: answered.then(|| format!("agent{:04}", call % 1000)),
                caller: Some(format!("+3247{call:07}")),
                wait_s,
                talk_s,
                ring_ms: None,
                position: Some(1),
                detail: None,
            }));
            pushed += 1;
        }
        call += 1;
    }
    app.update(Input::Tick {
        epoch_ms: T0_MS + 120_000,
    });
    app.notice = None;
}
