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

/// An agent's desk on the sample's day: recent calls, activities (one overdue) and contacts,
/// as the store would answer [`crate::store::DeskRequest::Refresh`].
pub fn desk_updates() -> Vec<crate::store::DeskUpdate> {
    use crate::store::{
        Activity, ActivityId, ActivityItem, ActivityKind, ActivityState, CallDirection,
        CallOutcome, CallRecord, CallRowId, CivilDate, Contact, ContactId, DeskUpdate, Phone,
        SearchFor,
    };
    let t0 = i64::try_from(T0_MS / 1000).unwrap_or(0);
    let contact = |id: i64, name: &str, company: &str, number: &str, email: &str| Contact {
        id: ContactId(id),
        name: name.to_owned(),
        company: company.to_owned(),
        phones: vec![Phone::new("work", number)],
        email: email.to_owned(),
        notes: String::new(),
    };
    let martin = contact(
        1,
        "Martin Dupont",
        "Acme",
        "+3225550137",
        "martin@acme.example",
    );
    let ana = contact(2, "Ana Silva", "Lisbon Tiles", "+351912345678", "");
    let mut chen = contact(3, "Chen Wei", "", "+3225550142", "chen@example.org");
    chen.notes = "Prefers calls after 14:00.\nAsked about the yearly plan.".to_owned();
    let ines = contact(4, "Inès Laurent", "Laurent & Fils", "+33612345678", "");
    let call =
        |id: i64, direction, number: &str, who: Option<&Contact>, ago: i64, talk, outcome| {
            CallRecord {
                id: CallRowId(id),
                direction,
                local_number: "101".to_owned(),
                remote_number: number.to_owned(),
                contact_id: who.map(|c| c.id),
                contact_name: who.map(|c| c.name.clone()),
                queue: None,
                started: t0 - ago,
                answered: (talk > 0).then_some(t0 - ago + 5),
                ended: Some(t0 - ago + 5 + talk),
                duration: Some(talk),
                outcome: Some(outcome),
                recording_path: None,
                activity_id: None,
            }
        };
    let recent = vec![
        call(
            4,
            CallDirection::Inbound,
            "+3225550137",
            Some(&martin),
            1_800,
            192,
            CallOutcome::Answered,
        ),
        call(
            3,
            CallDirection::Inbound,
            "+3225550199",
            None,
            4_500,
            0,
            CallOutcome::Missed,
        ),
        call(
            2,
            CallDirection::Outbound,
            "+351912345678",
            Some(&ana),
            90_000,
            0,
            CallOutcome::Busy,
        ),
        call(
            1,
            CallDirection::Inbound,
            "+33612345678",
            Some(&ines),
            95_000,
            65,
            CallOutcome::Transferred,
        ),
    ];
    let today = CivilDate::from_epoch_seconds(t0, 0).unwrap_or(CivilDate::UNIX_EPOCH);
    let activity = |id: i64, kind, summary: &str, days: i64, who: Option<&Contact>| ActivityItem {
        activity: Activity {
            id: ActivityId(id),
            kind,
            summary: summary.to_owned(),
            due: today.add_days(days).unwrap_or(today),
            note: String::new(),
            linked_record: String::new(),
            assignee: "101".to_owned(),
            state: ActivityState::Planned,
            contact_id: who.map(|c| c.id),
            closed_at: None,
        },
        contact: who.cloned(),
    };
    let items = vec![
        activity(
            1,
            ActivityKind::Call,
            "Follow up on the quote",
            -2,
            Some(&ana),
        ),
        activity(
            2,
            ActivityKind::Call,
            "Call back about the invoice",
            0,
            Some(&martin),
        ),
        activity(3, ActivityKind::Email, "Send the contract", 0, Some(&chen)),
        activity(4, ActivityKind::Todo, "Prepare Monday's report", 0, None),
    ];
    vec![
        DeskUpdate::Recent {
            missed_only: false,
            calls: recent,
        },
        DeskUpdate::Activities { today, items },
        DeskUpdate::Contacts {
            query: String::new(),
            purpose: SearchFor::Tab,
            hits: vec![ana, chen, ines, martin],
        },
    ]
}

/// Fills `app`'s tabs with [`desk_updates`], as the driver does at start.
pub fn fill_desk(app: &mut App) {
    app.desk.available = true;
    for update in desk_updates() {
        app.update(Input::Desk(update));
    }
}
