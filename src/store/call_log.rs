//! Turns the SIP user agent's call events into call-history rows: a row when a call starts, its
//! answer, and its outcome when it ends (answered, missed, rejected, busy, failed, transferred).
//! No clock of its own: every event comes with the time it happened.

use std::collections::HashMap;

use crate::sip::ua::{CallId, EndedBy, UaEvent};

use super::{
    ActivityId, CallDirection, CallFinish, CallOutcome, CallRowId, CallStart, Result, Store,
};

/// One call being followed.
#[derive(Debug, Clone)]
struct OpenCall {
    row: CallRowId,
    direction: CallDirection,
    answered: Option<i64>,
    transferred: bool,
    /// Where its recording went, once one started.
    recording: Option<String>,
}

/// Follows calls for the history. Calls to skip (queue login codes) are named with
/// [`CallLog::ignore`] before their first event.
#[derive(Debug, Default)]
pub struct CallLog {
    local_number: String,
    open: HashMap<CallId, OpenCall>,
    ignored_targets: Vec<String>,
    /// The next outgoing call to this number was placed from that activity.
    activity_calls: Vec<(String, ActivityId)>,
}

/// `sip:+3225550100@host;x` → `+3225550100`.
fn number_of(uri: &str) -> String {
    let text = uri.trim().trim_start_matches('<');
    let text = text
        .strip_prefix("sips:")
        .or_else(|| text.strip_prefix("sip:"))
        .or_else(|| text.strip_prefix("tel:"))
        .unwrap_or(text);
    text.split(['@', ';', '>'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

impl CallLog {
    pub fn new(local_number: impl Into<String>) -> CallLog {
        CallLog {
            local_number: local_number.into(),
            ..CallLog::default()
        }
    }

    /// The name of the contact a caller's URI belongs to (caller lookup by normalised number).
    pub fn contact_name(store: &Store, uri: &str) -> Option<String> {
        let number = number_of(uri);
        match store.contact_by_number(&number) {
            Ok(contact) => contact.map(|c| c.name),
            Err(error) => {
                tracing::warn!(%error, "caller lookup");
                None
            }
        }
    }

    /// The next outgoing call to `target` is not a conversation (a queue code): keep it out.
    pub fn ignore(&mut self, target: impl Into<String>) {
        self.ignored_targets.push(target.into());
    }

    /// The next outgoing call to `target` is placed from `activity`: its row links to it.
    pub fn from_activity(&mut self, target: impl Into<String>, activity: ActivityId) {
        self.activity_calls.push((target.into(), activity));
    }

    /// The call's recording goes to `path` (kept in its history row when it ends).
    pub fn recording(&mut self, call: CallId, path: impl Into<String>) {
        if let Some(open) = self.open.get_mut(&call) {
            open.recording = Some(path.into());
        }
    }

    /// Applies one event that happened at `now` (epoch seconds).
    pub fn handle(&mut self, store: &mut Store, event: &UaEvent, now: i64) -> Result<()> {
        match event {
            UaEvent::IncomingCall { call, from, .. } => {
                self.start(
                    store,
                    *call,
                    CallDirection::Inbound,
                    number_of(from),
                    None,
                    now,
                )?;
            }
            UaEvent::Dialing { call, to } => {
                let remote = number_of(to);
                if let Some(pos) = self.ignored_targets.iter().position(|t| *t == remote) {
                    self.ignored_targets.remove(pos);
                    return Ok(());
                }
                let activity = self
                    .activity_calls
                    .iter()
                    .position(|(target, _)| *target == remote)
                    .map(|pos| self.activity_calls.remove(pos).1);
                self.start(store, *call, CallDirection::Outbound, remote, activity, now)?;
            }
            UaEvent::Answered { call, .. } => {
                if let Some(open) = self.open.get_mut(call) {
                    if open.answered.is_none() {
                        open.answered = Some(now);
                        store.mark_call_answered(open.row, now)?;
                    }
                }
            }
            UaEvent::TransferDone {
                call,
                success: true,
                ..
            } => {
                if let Some(open) = self.open.get_mut(call) {
                    open.transferred = true;
                }
            }
            UaEvent::CallEnded { call, code, by, .. } => {
                if let Some(open) = self.open.remove(call) {
                    let outcome = outcome(&open, *code, *by);
                    store.finish_call(
                        open.row,
                        &CallFinish {
                            outcome,
                            answered: open.answered,
                            ended: now,
                            recording_path: open.recording,
                        },
                    )?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn start(
        &mut self,
        store: &mut Store,
        call: CallId,
        direction: CallDirection,
        remote_number: String,
        activity_id: Option<ActivityId>,
        now: i64,
    ) -> Result<()> {
        let row = store.start_call(&CallStart {
            direction,
            local_number: self.local_number.clone(),
            remote_number,
            contact_id: None,
            queue: None,
            started: now,
            activity_id,
        })?;
        self.open.insert(
            call,
            OpenCall {
                row,
                direction,
                answered: None,
                transferred: false,
                recording: None,
            },
        );
        Ok(())
    }
}

fn outcome(call: &OpenCall, code: Option<u16>, by: EndedBy) -> CallOutcome {
    if call.transferred {
        return CallOutcome::Transferred;
    }
    if call.answered.is_some() {
        return CallOutcome::Answered;
    }
    match (call.direction, code, by) {
        (_, Some(486 | 600), _) => CallOutcome::Busy,
        (CallDirection::Inbound, _, EndedBy::Local) => CallOutcome::Rejected,
        (CallDirection::Inbound, _, _) => CallOutcome::Missed,
        (CallDirection::Outbound, Some(603), _) => CallOutcome::Rejected,
        (CallDirection::Outbound, _, _) => CallOutcome::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(call: u32, code: Option<u16>, by: EndedBy) -> UaEvent {
        UaEvent::CallEnded {
            call: CallId(call),
            code,
            reason: String::new(),
            by,
        }
    }

    #[test]
    fn calls_become_history_rows_with_their_outcome() {
        let mut store = Store::open_in_memory().expect("store");
        let mut log = CallLog::new("101");
        let events = [
            // 1: an inbound call answered at 10, hung up at 70.
            (
                UaEvent::IncomingCall {
                    call: CallId(1),
                    from: "sip:+3225550111@lab".into(),
                    name: None,
                },
                0,
            ),
            (
                UaEvent::Answered {
                    call: CallId(1),
                    codec: None,
                },
                10,
            ),
            (ended(1, None, EndedBy::Remote), 70),
            // 2: an inbound call that rang out.
            (
                UaEvent::IncomingCall {
                    call: CallId(2),
                    from: "<sip:+3225550122@lab>".into(),
                    name: None,
                },
                100,
            ),
            (ended(2, Some(487), EndedBy::Remote), 115),
            // 3: the queue code is not a conversation.
            (
                UaEvent::Dialing {
                    call: CallId(3),
                    to: "sip:*600@lab".into(),
                },
                200,
            ),
            (
                UaEvent::Answered {
                    call: CallId(3),
                    codec: None,
                },
                200,
            ),
            (ended(3, None, EndedBy::Remote), 202),
            // 4: an outbound call to a busy number.
            (
                UaEvent::Dialing {
                    call: CallId(4),
                    to: "sip:102@lab".into(),
                },
                300,
            ),
            (ended(4, Some(486), EndedBy::Remote), 301),
            // 5: answered, then transferred.
            (
                UaEvent::IncomingCall {
                    call: CallId(5),
                    from: "sip:+3225550155@lab".into(),
                    name: None,
                },
                400,
            ),
            (
                UaEvent::Answered {
                    call: CallId(5),
                    codec: None,
                },
                402,
            ),
            (
                UaEvent::TransferDone {
                    call: CallId(5),
                    success: true,
                    reason: String::new(),
                },
                420,
            ),
            (ended(5, None, EndedBy::Local), 421),
            // 6: still up when the program stops.
            (
                UaEvent::IncomingCall {
                    call: CallId(6),
                    from: "sip:+3225550166@lab".into(),
                    name: None,
                },
                500,
            ),
        ];
        log.ignore("*600");
        for (event, at) in &events {
            log.handle(&mut store, event, *at).expect("handled");
        }
        let rows = store.recent_calls(10, false).expect("recent");
        let summary: Vec<(String, Option<CallOutcome>, Option<i64>)> = rows
            .iter()
            .map(|r| (r.remote_number.clone(), r.outcome, r.duration))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("+3225550166".to_owned(), None, None),
                (
                    "+3225550155".to_owned(),
                    Some(CallOutcome::Transferred),
                    Some(19)
                ),
                ("102".to_owned(), Some(CallOutcome::Busy), Some(0)),
                ("+3225550122".to_owned(), Some(CallOutcome::Missed), Some(0)),
                (
                    "+3225550111".to_owned(),
                    Some(CallOutcome::Answered),
                    Some(60)
                ),
            ]
        );
        assert_eq!(store.close_interrupted(600).expect("close"), 1);
        let missed = store.recent_calls(10, true).expect("missed");
        assert_eq!(missed.len(), 1);
        assert_eq!(missed[0].remote_number, "+3225550122");
    }

    #[test]
    fn callers_are_looked_up_by_number() {
        let mut store = Store::open_in_memory().expect("store");
        store
            .add_contact(
                &super::super::NewContact::named("Jean Dupont")
                    .with_phone("work", "+32 2 555 01 42"),
            )
            .expect("add");
        assert_eq!(
            CallLog::contact_name(&store, "sip:+3225550142@lab;user=phone").as_deref(),
            Some("Jean Dupont")
        );
        assert_eq!(CallLog::contact_name(&store, "sip:+3225550143@lab"), None);
    }

    #[test]
    fn numbers_are_taken_out_of_uris() {
        assert_eq!(
            number_of("sip:+3225550100@lab:5060;user=phone"),
            "+3225550100"
        );
        assert_eq!(number_of("<sips:alice@example.com>"), "alice");
        assert_eq!(number_of("tel:+16506913277"), "+16506913277");
        assert_eq!(number_of("102"), "102");
    }
}
