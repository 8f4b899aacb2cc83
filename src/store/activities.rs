//! Activities: the calls, emails and to-dos behind the Next Activities tab.

use rusqlite::{params, Connection, OptionalExtension};

use super::contacts::ContactId;
use super::date::CivilDate;
use super::{Result, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActivityId(pub i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActivityKind {
    Call,
    Email,
    Todo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActivityState {
    Planned,
    Done,
    Cancelled,
}

/// Text forms as stored; kept in one place with their parsers.
macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($ty::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl rusqlite::types::ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl rusqlite::types::FromSql for $ty {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                let text = value.as_str()?;
                $ty::parse(text).ok_or_else(|| {
                    rusqlite::types::FromSqlError::Other(
                        format!("unknown {} {text:?} in the store", stringify!($ty)).into(),
                    )
                })
            }
        }
    };
}
pub(crate) use text_enum;

text_enum!(ActivityKind { Call => "call", Email => "email", Todo => "todo" });
text_enum!(ActivityState { Planned => "planned", Done => "done", Cancelled => "cancelled" });

/// An activity to be created (always planned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewActivity {
    pub kind: ActivityKind,
    pub summary: String,
    pub due: CivilDate,
    pub note: String,
    /// Free text naming the record it belongs to ("Opportunity: 12 chairs for Acme").
    pub linked_record: String,
    pub assignee: String,
    pub contact_id: Option<ContactId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    pub id: ActivityId,
    pub kind: ActivityKind,
    pub summary: String,
    pub due: CivilDate,
    pub note: String,
    pub linked_record: String,
    pub assignee: String,
    pub state: ActivityState,
    pub contact_id: Option<ContactId>,
    /// Epoch seconds when it was marked done or cancelled.
    pub closed_at: Option<i64>,
}

impl Activity {
    pub fn is_overdue(&self, today: CivilDate) -> bool {
        self.state == ActivityState::Planned && self.due < today
    }
}

/// The fields the inline edit form changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityEdit {
    pub summary: String,
    pub due: CivilDate,
    pub note: String,
}

const ACTIVITY_COLUMNS: &str =
    "id, kind, summary, due, note, linked_record, assignee, state, contact_id, closed_at";

pub(crate) const SELECT_DUE: &str = "SELECT id, kind, summary, due, note, linked_record, assignee,
        state, contact_id, closed_at
     FROM activities WHERE assignee = ?1 AND state = 'planned' AND due <= ?2
     ORDER BY due, id";

impl Store {
    pub fn add_activity(&mut self, activity: &NewActivity) -> Result<ActivityId> {
        self.conn
            .execute(
                "INSERT INTO activities (kind, summary, due, note, linked_record, assignee,
                     contact_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    activity.kind,
                    activity.summary.trim(),
                    activity.due,
                    activity.note.trim(),
                    activity.linked_record.trim(),
                    activity.assignee,
                    activity.contact_id.map(|c| c.0),
                ],
            )
            .map_err(self.query_err("scheduling an activity"))?;
        Ok(ActivityId(self.conn.last_insert_rowid()))
    }

    pub fn activity(&self, id: ActivityId) -> Result<Option<Activity>> {
        load(&self.conn, id).map_err(self.query_err("reading an activity"))
    }

    /// The Next Activities list: `assignee`'s planned activities due today or earlier, oldest
    /// due date first.
    pub fn due_activities(&self, assignee: &str, today: CivilDate) -> Result<Vec<Activity>> {
        let err = self.query_err("listing due activities");
        let mut stmt = self.conn.prepare(SELECT_DUE).map_err(&err)?;
        let rows = stmt
            .query_map(params![assignee, today], activity_row)
            .map_err(&err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    /// Every activity linked to a contact (for its card), planned first, then by due date.
    pub fn contact_activities(&self, contact: ContactId) -> Result<Vec<Activity>> {
        let err = self.query_err("listing a contact's activities");
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {ACTIVITY_COLUMNS} FROM activities WHERE contact_id = ?1
                 ORDER BY state <> 'planned', due, id"
            ))
            .map_err(&err)?;
        let rows = stmt.query_map([contact.0], activity_row).map_err(&err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    pub fn mark_activity_done(&mut self, id: ActivityId, now: i64) -> Result<()> {
        self.close_activity(id, ActivityState::Done, now)
    }

    pub fn cancel_activity(&mut self, id: ActivityId, now: i64) -> Result<()> {
        self.close_activity(id, ActivityState::Cancelled, now)
    }

    /// Changes summary, due date and note of a planned activity.
    pub fn edit_activity(&mut self, id: ActivityId, edit: &ActivityEdit) -> Result<()> {
        let changed = self
            .conn
            .execute(
                "UPDATE activities SET summary = ?2, due = ?3, note = ?4
                 WHERE id = ?1 AND state = 'planned'",
                params![id.0, edit.summary.trim(), edit.due, edit.note.trim()],
            )
            .map_err(self.query_err("editing an activity"))?;
        if changed == 0 {
            return Err(self.why_not_planned(id));
        }
        Ok(())
    }

    /// The default "schedule" action: a call to `contact` due tomorrow, for `assignee`.
    pub fn schedule_call_tomorrow(
        &mut self,
        contact: ContactId,
        assignee: &str,
        today: CivilDate,
    ) -> Result<ActivityId> {
        let name = self
            .contact(contact)?
            .ok_or(StoreError::ContactNotFound(contact.0))?
            .name;
        self.add_activity(&NewActivity {
            kind: ActivityKind::Call,
            summary: format!("Call {name}"),
            due: today.tomorrow(),
            note: String::new(),
            linked_record: String::new(),
            assignee: assignee.to_string(),
            contact_id: Some(contact),
        })
    }

    fn close_activity(&mut self, id: ActivityId, state: ActivityState, now: i64) -> Result<()> {
        let changed = self
            .conn
            .execute(
                "UPDATE activities SET state = ?2, closed_at = ?3 WHERE id = ?1 AND state = 'planned'",
                params![id.0, state, now],
            )
            .map_err(self.query_err("closing an activity"))?;
        if changed == 0 {
            return Err(self.why_not_planned(id));
        }
        Ok(())
    }

    fn why_not_planned(&self, id: ActivityId) -> StoreError {
        match self.activity(id) {
            Ok(Some(activity)) => StoreError::ActivityNotPlanned {
                id: id.0,
                state: activity.state,
            },
            Ok(None) => StoreError::ActivityNotFound(id.0),
            Err(e) => e,
        }
    }
}

fn load(conn: &Connection, id: ActivityId) -> rusqlite::Result<Option<Activity>> {
    conn.query_row(
        &format!("SELECT {ACTIVITY_COLUMNS} FROM activities WHERE id = ?1"),
        [id.0],
        activity_row,
    )
    .optional()
}

fn activity_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Activity> {
    Ok(Activity {
        id: ActivityId(row.get(0)?),
        kind: row.get(1)?,
        summary: row.get(2)?,
        due: row.get(3)?,
        note: row.get(4)?,
        linked_record: row.get(5)?,
        assignee: row.get(6)?,
        state: row.get(7)?,
        contact_id: row.get::<_, Option<i64>>(8)?.map(ContactId),
        closed_at: row.get(9)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewContact;

    fn day(text: &str) -> CivilDate {
        text.parse().expect("parse")
    }

    fn planned(summary: &str, due: &str, assignee: &str) -> NewActivity {
        NewActivity {
            kind: ActivityKind::Call,
            summary: summary.into(),
            due: day(due),
            note: String::new(),
            linked_record: String::new(),
            assignee: assignee.into(),
            contact_id: None,
        }
    }

    #[test]
    fn due_list_is_todays_and_overdue_planned_in_due_order() {
        let mut store = Store::open_in_memory().expect("open_in_memory");
        let today = day("2026-11-30");
        let late = store
            .add_activity(&planned("Overdue quote", "2026-11-20", "ann"))
            .expect("add_activity");
        let now = store
            .add_activity(&planned("Today call", "2026-11-30", "ann"))
            .expect("add_activity");
        let later = store
            .add_activity(&planned("Yesterday", "2026-11-29", "ann"))
            .expect("add_activity");
        store
            .add_activity(&planned("Tomorrow", "2026-12-01", "ann"))
            .expect("add_activity");
        store
            .add_activity(&planned("Bob's", "2026-11-30", "bob"))
            .expect("add_activity");
        let done = store
            .add_activity(&planned("Already done", "2026-11-25", "ann"))
            .expect("add_activity");
        store
            .mark_activity_done(done, 1_796_000_000)
            .expect("mark_activity_done");
        let cancelled = store
            .add_activity(&planned("Dropped", "2026-11-25", "ann"))
            .expect("add_activity");
        store
            .cancel_activity(cancelled, 1_796_000_100)
            .expect("cancel_activity");

        let list = store.due_activities("ann", today).expect("due_activities");
        let ids: Vec<ActivityId> = list.iter().map(|a| a.id).collect();
        assert_eq!(ids, [late, later, now]);
        assert!(list[0].is_overdue(today));
        assert!(!list[2].is_overdue(today));

        let closed = store.activity(done).expect("activity").expect("present");
        assert_eq!(closed.state, ActivityState::Done);
        assert_eq!(closed.closed_at, Some(1_796_000_000));
        assert_eq!(
            store
                .activity(cancelled)
                .expect("activity")
                .expect("present")
                .state,
            ActivityState::Cancelled
        );
    }

    #[test]
    fn closed_activities_cannot_change_again() {
        let mut store = Store::open_in_memory().expect("open_in_memory");
        let id = store
            .add_activity(&planned("Call", "2026-11-30", "ann"))
            .expect("add_activity");
        store
            .mark_activity_done(id, 10)
            .expect("mark_activity_done");
        let err = store.cancel_activity(id, 20).expect_err("must fail");
        assert!(matches!(
            err,
            StoreError::ActivityNotPlanned {
                state: ActivityState::Done,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            format!(
                "activity #{} is already done; only planned activities can be changed",
                id.0
            )
        );
        let edit = ActivityEdit {
            summary: "x".into(),
            due: day("2026-12-01"),
            note: String::new(),
        };
        assert!(matches!(
            store.edit_activity(id, &edit),
            Err(StoreError::ActivityNotPlanned { .. })
        ));
        assert!(matches!(
            store.mark_activity_done(ActivityId(999), 1),
            Err(StoreError::ActivityNotFound(999))
        ));
        assert_eq!(
            store
                .activity(id)
                .expect("activity")
                .expect("present")
                .closed_at,
            Some(10)
        );
    }

    #[test]
    fn edit_moves_the_due_date_out_of_today() {
        let mut store = Store::open_in_memory().expect("open_in_memory");
        let id = store
            .add_activity(&planned("Call", "2026-11-30", "ann"))
            .expect("add_activity");
        store
            .edit_activity(
                id,
                &ActivityEdit {
                    summary: " Call about the renewal ".into(),
                    due: day("2026-12-03"),
                    note: "They asked for Thursday".into(),
                },
            )
            .expect("edit_activity");
        let edited = store.activity(id).expect("activity").expect("present");
        assert_eq!(edited.summary, "Call about the renewal");
        assert_eq!(edited.due, day("2026-12-03"));
        assert_eq!(edited.note, "They asked for Thursday");
        assert!(store
            .due_activities("ann", day("2026-11-30"))
            .expect("due_activities")
            .is_empty());
        assert_eq!(
            store
                .due_activities("ann", day("2026-12-03"))
                .expect("due_activities")
                .len(),
            1
        );
    }

    #[test]
    fn schedule_a_call_for_tomorrow() {
        let mut store = Store::open_in_memory().expect("open_in_memory");
        let grace = store
            .add_contact(&NewContact::named("Grace Hopper"))
            .expect("add_contact");
        let id = store
            .schedule_call_tomorrow(grace, "ann", day("2026-12-31"))
            .expect("schedule_call_tomorrow");
        let activity = store.activity(id).expect("activity").expect("present");
        assert_eq!(activity.kind, ActivityKind::Call);
        assert_eq!(activity.summary, "Call Grace Hopper");
        assert_eq!(activity.due, day("2027-01-01"));
        assert_eq!(activity.state, ActivityState::Planned);
        assert_eq!(activity.contact_id, Some(grace));
        assert_eq!(
            store.contact_activities(grace).expect("contact_activities"),
            vec![activity]
        );
        assert!(matches!(
            store.schedule_call_tomorrow(ContactId(404), "ann", day("2026-12-31")),
            Err(StoreError::ContactNotFound(404))
        ));
        // Deleting the contact keeps the activity, unlinked.
        store.delete_contact(grace).expect("delete_contact");
        assert_eq!(
            store
                .activity(id)
                .expect("activity")
                .expect("present")
                .contact_id,
            None
        );
    }

    #[test]
    fn the_due_list_query_uses_its_index() {
        let store = Store::open_in_memory().expect("open_in_memory");
        let mut stmt = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {SELECT_DUE}"))
            .expect("prepare");
        let plan: Vec<String> = stmt
            .query_map(params!["ann", "2026-11-30"], |r| r.get(3))
            .expect("query_map")
            .map(|r| r.expect("row"))
            .collect();
        let plan = plan.join("; ");
        assert!(
            plan.contains("INDEX activities_agenda (assignee=? AND state=? AND due<?)"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "sorted by the index: {plan}");
    }

    #[test]
    fn unknown_stored_text_is_an_error_not_a_panic() {
        let store = Store::open_in_memory().expect("open_in_memory");
        store
            .conn
            .execute_batch(
                "PRAGMA ignore_check_constraints = ON;
                 INSERT INTO activities (kind, summary, due, assignee) VALUES ('fax', 's', '2026-11-30', 'ann');",
            )
            .expect("execute_batch");
        let err = store
            .due_activities("ann", day("2026-11-30"))
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("unknown ActivityKind \"fax\""), "{err}");
    }
}
