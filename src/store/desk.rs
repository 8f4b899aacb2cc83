//! The agent's desk: what the dashboard's Recent, Next Activities and Contacts tabs ask of the
//! store ([`DeskRequest`]) and what comes back ([`DeskUpdate`]). Both are plain data, so the
//! TUI holds no SQL and the store no UI. [`Desk`] carries requests out against a [`Store`],
//! keeps the contact search index warm between keystrokes, and writes the call history from
//! the SIP events (through [`CallLog`]).
//!
//! Time comes in as epoch seconds with every call, and "today" is derived from it with the
//! local UTC offset given at construction, so the tabs are tested on fixed dates.

use crate::sip::ua::UaEvent;

use super::{
    Activity, ActivityEdit, ActivityId, CallLog, CallRecord, CivilDate, Contact, ContactId,
    ContactIndex, NewActivity, Result, Store, StoreError,
};

/// Rows the Recent tab keeps.
pub const RECENT_LIMIT: usize = 200;
/// Contacts a tab search returns.
pub const CONTACT_HITS: usize = 50;
/// Suggestions under the dial prompt.
pub const DIAL_HITS: usize = 5;

/// An activity with the contact it is about, when it has one (to show and to dial).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityItem {
    pub activity: Activity,
    pub contact: Option<Contact>,
}

impl ActivityItem {
    /// The number the "call" action dials.
    pub fn number(&self) -> Option<&str> {
        self.contact.as_ref().and_then(Contact::primary_number)
    }
}

/// Who asked for a contact search: the Contacts tab, or the dial prompt's completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchFor {
    Tab,
    Dial,
}

/// What the dashboard asks of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeskRequest {
    /// Everything the tabs show, again (at start, and when the day changes).
    Refresh,
    /// The Recent tab, all calls or missed ones only.
    Recent {
        missed_only: bool,
    },
    SearchContacts {
        query: String,
        purpose: SearchFor,
    },
    /// A contact's card: the contact and its planned activities.
    Card(ContactId),
    MarkDone(ActivityId),
    Cancel(ActivityId),
    Edit {
        id: ActivityId,
        edit: ActivityEdit,
    },
    /// A new activity; an empty assignee means this agent.
    Schedule(NewActivity),
    /// The next outgoing call to `target` is placed from `activity` (its history row links it).
    CallFromActivity {
        target: String,
        activity: ActivityId,
    },
    /// Contact names for these numbers (waiting queue callers).
    LookupNames(Vec<String>),
}

/// What the store answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeskUpdate {
    Recent {
        missed_only: bool,
        calls: Vec<CallRecord>,
    },
    /// This agent's planned activities due today or earlier, in due order.
    Activities {
        today: CivilDate,
        items: Vec<ActivityItem>,
    },
    Contacts {
        query: String,
        purpose: SearchFor,
        hits: Vec<Contact>,
    },
    Card {
        contact: Contact,
        activities: Vec<Activity>,
    },
    /// Number → contact name (`None`: nobody has that number).
    Names(Vec<(String, Option<String>)>),
    /// A change went through; the text is for the notice line.
    Done(String),
    /// A request failed; the text says what and what to do.
    Failed(String),
}

/// The store side of the tabs, owned by the dashboard's driver next to the [`Store`].
#[derive(Debug)]
pub struct Desk {
    log: CallLog,
    index: Option<ContactIndex>,
    assignee: String,
    utc_offset_s: i64,
    missed_only: bool,
}

impl Desk {
    /// `local_number` goes into history rows; `assignee` is whose activities the tab lists.
    pub fn new(local_number: &str, assignee: &str, utc_offset_s: i64) -> Desk {
        Desk {
            log: CallLog::new(local_number),
            index: None,
            assignee: assignee.to_owned(),
            utc_offset_s,
            missed_only: false,
        }
    }

    /// The local time's offset from UTC, seconds.
    pub fn utc_offset_s(&self) -> i32 {
        i32::try_from(self.utc_offset_s).unwrap_or(0)
    }

    pub fn assignee(&self) -> &str {
        &self.assignee
    }

    /// The call log, to name calls that are not conversations ([`CallLog::ignore`]).
    pub fn log_mut(&mut self) -> &mut CallLog {
        &mut self.log
    }

    /// The local date at `now` (epoch seconds).
    pub fn today(&self, now: i64) -> CivilDate {
        CivilDate::from_epoch_seconds(now, self.utc_offset_s).unwrap_or(CivilDate::UNIX_EPOCH)
    }

    /// Carries out `request` at `now`; a failure becomes [`DeskUpdate::Failed`].
    pub fn handle(&mut self, store: &mut Store, request: DeskRequest, now: i64) -> Vec<DeskUpdate> {
        self.try_handle(store, request, now)
            .unwrap_or_else(|error| vec![DeskUpdate::Failed(error.to_string())])
    }

    fn try_handle(
        &mut self,
        store: &mut Store,
        request: DeskRequest,
        now: i64,
    ) -> Result<Vec<DeskUpdate>> {
        Ok(match request {
            DeskRequest::Refresh => vec![
                self.recent(store)?,
                self.activities(store, now)?,
                self.search(store, String::new(), SearchFor::Tab)?,
            ],
            DeskRequest::Recent { missed_only } => {
                self.missed_only = missed_only;
                vec![self.recent(store)?]
            }
            DeskRequest::SearchContacts { query, purpose } => {
                vec![self.search(store, query, purpose)?]
            }
            DeskRequest::Card(id) => {
                let contact = store
                    .contact(id)?
                    .ok_or(StoreError::ContactNotFound(id.0))?;
                let activities = store.contact_activities(id)?;
                vec![DeskUpdate::Card {
                    contact,
                    activities,
                }]
            }
            DeskRequest::MarkDone(id) => {
                let summary = self.summary(store, id)?;
                store.mark_activity_done(id, now)?;
                vec![
                    DeskUpdate::Done(format!("Done: {summary}")),
                    self.activities(store, now)?,
                ]
            }
            DeskRequest::Cancel(id) => {
                let summary = self.summary(store, id)?;
                store.cancel_activity(id, now)?;
                vec![
                    DeskUpdate::Done(format!("Cancelled: {summary}")),
                    self.activities(store, now)?,
                ]
            }
            DeskRequest::Edit { id, edit } => {
                store.edit_activity(id, &edit)?;
                vec![
                    DeskUpdate::Done(format!("Saved: {} (due {})", edit.summary, edit.due)),
                    self.activities(store, now)?,
                ]
            }
            DeskRequest::Schedule(mut activity) => {
                if activity.assignee.is_empty() {
                    activity.assignee = self.assignee.clone();
                }
                store.add_activity(&activity)?;
                vec![
                    DeskUpdate::Done(format!(
                        "Scheduled: {} (due {})",
                        activity.summary, activity.due
                    )),
                    self.activities(store, now)?,
                ]
            }
            DeskRequest::CallFromActivity { target, activity } => {
                self.log.from_activity(target, activity);
                Vec::new()
            }
            DeskRequest::LookupNames(numbers) => {
                let mut names = Vec::with_capacity(numbers.len());
                for number in numbers {
                    let name = store.contact_by_number(&number)?.map(|c| c.name);
                    names.push((number, name));
                }
                vec![DeskUpdate::Names(names)]
            }
        })
    }

    /// Writes the call history for a SIP event; the Recent tab's new rows when they changed.
    pub fn on_call_event(
        &mut self,
        store: &mut Store,
        event: &UaEvent,
        now: i64,
    ) -> Result<Vec<DeskUpdate>> {
        self.log.handle(store, event, now)?;
        Ok(match event {
            UaEvent::IncomingCall { .. }
            | UaEvent::Dialing { .. }
            | UaEvent::Answered { .. }
            | UaEvent::CallEnded { .. } => vec![self.recent(store)?],
            _ => Vec::new(),
        })
    }

    fn summary(&self, store: &Store, id: ActivityId) -> Result<String> {
        Ok(store
            .activity(id)?
            .ok_or(StoreError::ActivityNotFound(id.0))?
            .summary)
    }

    fn recent(&self, store: &Store) -> Result<DeskUpdate> {
        Ok(DeskUpdate::Recent {
            missed_only: self.missed_only,
            calls: store.recent_calls(RECENT_LIMIT, self.missed_only)?,
        })
    }

    fn activities(&self, store: &Store, now: i64) -> Result<DeskUpdate> {
        let today = self.today(now);
        let mut items = Vec::new();
        for activity in store.due_activities(&self.assignee, today)? {
            let contact = match activity.contact_id {
                Some(id) => store.contact(id)?,
                None => None,
            };
            items.push(ActivityItem { activity, contact });
        }
        Ok(DeskUpdate::Activities { today, items })
    }

    fn search(&mut self, store: &Store, query: String, purpose: SearchFor) -> Result<DeskUpdate> {
        let index = match &mut self.index {
            Some(index) => index,
            slot @ None => slot.insert(ContactIndex::build(store)?),
        };
        let limit = match purpose {
            SearchFor::Tab => CONTACT_HITS,
            SearchFor::Dial => DIAL_HITS,
        };
        let mut hits = Vec::new();
        for (id, _) in index.search(&query, limit) {
            if let Some(contact) = store.contact(id)? {
                hits.push(contact);
            }
        }
        Ok(DeskUpdate::Contacts {
            query,
            purpose,
            hits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::ua::{CallId, EndedBy};
    use crate::store::{ActivityKind, CallOutcome, NewContact};

    /// 2026-11-21 10:00 UTC.
    const NOW: i64 = 1_795_255_200;

    fn date(text: &str) -> CivilDate {
        text.parse().expect("date")
    }

    fn seeded() -> (Store, ContactId, ContactId) {
        let mut store = Store::open_in_memory().expect("store");
        let martin = store
            .add_contact(
                &NewContact::named("Martin Dupont")
                    .with_company("Acme")
                    .with_phone("work", "+32 2 555 01 37")
                    .with_email("martin@acme.example"),
            )
            .expect("martin");
        let ana = store
            .add_contact(&NewContact::named("Ana Silva").with_phone("mobile", "+351 912 345 678"))
            .expect("ana");
        (store, martin, ana)
    }

    fn activity(summary: &str, due: &str, assignee: &str, contact: ContactId) -> NewActivity {
        NewActivity {
            kind: ActivityKind::Call,
            summary: summary.into(),
            due: date(due),
            note: String::new(),
            linked_record: String::new(),
            assignee: assignee.into(),
            contact_id: Some(contact),
        }
    }

    fn activities(updates: &[DeskUpdate]) -> Vec<String> {
        updates
            .iter()
            .find_map(|u| match u {
                DeskUpdate::Activities { items, .. } => Some(
                    items
                        .iter()
                        .map(|i| {
                            format!(
                                "{} {} {}",
                                i.activity.due,
                                i.activity.summary,
                                i.number().unwrap_or("-")
                            )
                        })
                        .collect(),
                ),
                _ => None,
            })
            .expect("an activities update")
    }

    #[test]
    fn the_activities_tab_lists_this_agents_due_and_overdue_ones_in_due_order() {
        let (mut store, martin, ana) = seeded();
        let mut desk = Desk::new("101", "101", 0);
        for new in [
            activity("Call back about the invoice", "2026-11-21", "101", martin),
            activity("Overdue follow-up", "2026-11-19", "101", ana),
            activity("Next week", "2026-11-28", "101", ana),
            activity("Someone else's", "2026-11-21", "102", ana),
        ] {
            store.add_activity(&new).expect("add");
        }
        let updates = desk.handle(&mut store, DeskRequest::Refresh, NOW);
        assert_eq!(
            activities(&updates),
            [
                "2026-11-19 Overdue follow-up +351912345678",
                "2026-11-21 Call back about the invoice +3225550137",
            ]
        );
        assert!(updates.iter().any(
            |u| matches!(u, DeskUpdate::Activities { today, .. } if *today == date("2026-11-21"))
        ));
        // 23:30 in UTC-1 is already the 22nd in UTC: the offset decides what "today" is.
        assert_eq!(desk.today(NOW + 14 * 3600), date("2026-11-22"));
        assert_eq!(
            Desk::new("101", "101", -3600).today(NOW + 14 * 3600),
            date("2026-11-21")
        );
    }

    #[test]
    fn done_cancel_edit_and_schedule_change_the_list_and_say_so() {
        let (mut store, martin, ana) = seeded();
        let mut desk = Desk::new("101", "101", 0);
        let first = store
            .add_activity(&activity("First", "2026-11-20", "101", martin))
            .expect("add");
        let second = store
            .add_activity(&activity("Second", "2026-11-21", "101", ana))
            .expect("add");

        let updates = desk.handle(&mut store, DeskRequest::MarkDone(first), NOW);
        assert_eq!(updates[0], DeskUpdate::Done("Done: First".into()));
        assert_eq!(activities(&updates), ["2026-11-21 Second +351912345678"]);
        // Done twice is an error that says so, not a silent success.
        match desk
            .handle(&mut store, DeskRequest::MarkDone(first), NOW)
            .as_slice()
        {
            [DeskUpdate::Failed(message)] => assert!(message.contains("done"), "{message}"),
            other => panic!("expected a failure, got {other:?}"),
        }

        let edit = ActivityEdit {
            summary: "Second, moved".into(),
            due: date("2026-11-21"),
            note: "asked for Friday".into(),
        };
        let updates = desk.handle(&mut store, DeskRequest::Edit { id: second, edit }, NOW);
        assert_eq!(
            activities(&updates),
            ["2026-11-21 Second, moved +351912345678"]
        );
        let stored = store.activity(second).expect("read").expect("there");
        assert_eq!(stored.note, "asked for Friday");

        let mut new = activity("Scheduled today", "2026-11-21", "", martin);
        new.assignee.clear();
        let updates = desk.handle(&mut store, DeskRequest::Schedule(new), NOW);
        assert_eq!(
            activities(&updates),
            [
                "2026-11-21 Second, moved +351912345678",
                "2026-11-21 Scheduled today +3225550137"
            ]
        );

        let updates = desk.handle(&mut store, DeskRequest::Cancel(second), NOW);
        assert_eq!(
            updates[0],
            DeskUpdate::Done("Cancelled: Second, moved".into())
        );
        assert_eq!(
            activities(&updates),
            ["2026-11-21 Scheduled today +3225550137"]
        );
    }

    #[test]
    fn searches_serve_the_tab_and_the_dial_prompt_with_their_own_limits() {
        let (mut store, _, _) = seeded();
        for i in 0..20 {
            store
                .add_contact(&NewContact::named(&format!("Marta {i:02}")))
                .expect("add");
        }
        let mut desk = Desk::new("101", "101", 0);
        let ask = |desk: &mut Desk, store: &mut Store, query: &str, purpose| match desk
            .handle(
                store,
                DeskRequest::SearchContacts {
                    query: query.into(),
                    purpose,
                },
                NOW,
            )
            .remove(0)
        {
            DeskUpdate::Contacts { hits, .. } => {
                hits.into_iter().map(|c| c.name).collect::<Vec<_>>()
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(
            ask(&mut desk, &mut store, "mar dup", SearchFor::Tab),
            ["Martin Dupont"]
        );
        assert_eq!(
            ask(&mut desk, &mut store, "mar", SearchFor::Dial).len(),
            DIAL_HITS
        );
        assert_eq!(ask(&mut desk, &mut store, "mar", SearchFor::Tab).len(), 21);
        assert_eq!(
            ask(&mut desk, &mut store, "912 345", SearchFor::Dial),
            ["Ana Silva"]
        );
    }

    #[test]
    fn history_rows_link_the_activity_a_call_was_placed_from() {
        let (mut store, martin, _) = seeded();
        let mut desk = Desk::new("101", "101", 0);
        let planned = store
            .add_activity(&activity("Call Martin", "2026-11-21", "101", martin))
            .expect("add");
        desk.handle(
            &mut store,
            DeskRequest::CallFromActivity {
                target: "+3225550137".into(),
                activity: planned,
            },
            NOW,
        );
        let events = [
            UaEvent::Dialing {
                call: CallId(7),
                to: "sip:+3225550137@pbx.example".into(),
            },
            UaEvent::CallEnded {
                call: CallId(7),
                code: Some(486),
                reason: "Busy Here".into(),
                by: EndedBy::Remote,
            },
        ];
        let mut last = Vec::new();
        for event in &events {
            last = desk.on_call_event(&mut store, event, NOW).expect("log");
            // The SIP driver reports a recording once the call is under way.
            desk.log_mut()
                .recording(CallId(7), "/rec/20261121-100000-call7.wav");
        }
        match last.as_slice() {
            [DeskUpdate::Recent { calls, .. }] => {
                assert_eq!(calls.len(), 1);
                assert_eq!(calls[0].activity_id, Some(planned));
                assert_eq!(calls[0].contact_name.as_deref(), Some("Martin Dupont"));
                assert_eq!(calls[0].outcome, Some(CallOutcome::Busy));
                assert_eq!(
                    calls[0].recording_path.as_deref(),
                    Some("/rec/20261121-100000-call7.wav")
                );
            }
            other => panic!("{other:?}"),
        }
        // Names for waiting callers, whatever way the number is written.
        let updates = desk.handle(
            &mut store,
            DeskRequest::LookupNames(vec!["+32 2 555 01 37".into(), "+15550000".into()]),
            NOW,
        );
        assert_eq!(
            updates,
            [DeskUpdate::Names(vec![
                ("+32 2 555 01 37".into(), Some("Martin Dupont".into())),
                ("+15550000".into(), None)
            ])]
        );
    }
}
