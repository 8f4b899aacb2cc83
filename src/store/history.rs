//! Call history: one row per call, written when the call starts and completed when it ends, so a
//! crash leaves an open row that the next start closes as interrupted.

use rusqlite::{params, OptionalExtension};

use super::activities::{text_enum, ActivityId};
use super::contacts::ContactId;
use super::{Result, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallRowId(pub i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallDirection {
    Inbound,
    Outbound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    Answered,
    Missed,
    Rejected,
    Busy,
    Failed,
    Transferred,
    /// The program stopped (crash, kill -9, power) before the call ended.
    Interrupted,
}

text_enum!(CallDirection { Inbound => "in", Outbound => "out" });
text_enum!(CallOutcome {
    Answered => "answered",
    Missed => "missed",
    Rejected => "rejected",
    Busy => "busy",
    Failed => "failed",
    Transferred => "transferred",
    Interrupted => "interrupted",
});

/// What is known when a call starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallStart {
    pub direction: CallDirection,
    pub local_number: String,
    pub remote_number: String,
    /// `None` lets the store look the remote number up ([`Store::contact_by_number`]).
    pub contact_id: Option<ContactId>,
    pub queue: Option<String>,
    /// Epoch seconds.
    pub started: i64,
    /// The activity the call was placed from, so its end can offer "mark done?".
    pub activity_id: Option<ActivityId>,
}

/// What is known when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFinish {
    pub outcome: CallOutcome,
    /// Epoch seconds when it was answered, if it was.
    pub answered: Option<i64>,
    pub ended: i64,
    pub recording_path: Option<String>,
}

/// A history row, with the contact's name when one is linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub id: CallRowId,
    pub direction: CallDirection,
    pub local_number: String,
    pub remote_number: String,
    pub contact_id: Option<ContactId>,
    pub contact_name: Option<String>,
    pub queue: Option<String>,
    pub started: i64,
    pub answered: Option<i64>,
    /// `None` while the call is in progress.
    pub ended: Option<i64>,
    /// Talk time in seconds (answer to hang-up); 0 if never answered; `None` while in progress
    /// or when a crash hid the real end.
    pub duration: Option<i64>,
    pub outcome: Option<CallOutcome>,
    pub recording_path: Option<String>,
    pub activity_id: Option<ActivityId>,
}

pub(crate) const SELECT_RECENT: &str = "SELECT c.id, c.direction, c.local_number, c.remote_number,
        c.contact_id, k.name, c.queue, c.started, c.answered, c.ended, c.duration, c.outcome,
        c.recording_path, c.activity_id
     FROM calls c LEFT JOIN contacts k ON k.id = c.contact_id";

impl Store {
    /// Writes the history row for a call that is starting; returns its id for
    /// [`Store::finish_call`].
    pub fn start_call(&mut self, call: &CallStart) -> Result<CallRowId> {
        let contact = match call.contact_id {
            Some(id) => Some(id),
            None => self.contact_by_number(&call.remote_number)?.map(|c| c.id),
        };
        self.conn
            .execute(
                "INSERT INTO calls (direction, local_number, remote_number, contact_id, queue,
                     started, activity_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    call.direction,
                    call.local_number,
                    call.remote_number,
                    contact.map(|c| c.0),
                    call.queue,
                    call.started,
                    call.activity_id.map(|a| a.0),
                ],
            )
            .map_err(self.query_err("recording a call start"))?;
        Ok(CallRowId(self.conn.last_insert_rowid()))
    }

    /// Completes a row written by [`Store::start_call`]. A row already closed (finished, or
    /// closed as interrupted) is left alone and reported.
    pub fn finish_call(&mut self, id: CallRowId, finish: &CallFinish) -> Result<()> {
        let duration = finish
            .answered
            .map_or(0, |answered| finish.ended.saturating_sub(answered).max(0));
        let changed = self
            .conn
            .execute(
                "UPDATE calls SET outcome = ?2, answered = ?3, ended = ?4, duration = ?5,
                     recording_path = ?6
                 WHERE id = ?1 AND ended IS NULL",
                params![
                    id.0,
                    finish.outcome,
                    finish.answered,
                    finish.ended,
                    duration,
                    finish.recording_path,
                ],
            )
            .map_err(self.query_err("recording a call end"))?;
        if changed == 0 {
            let exists = self
                .conn
                .query_row("SELECT 1 FROM calls WHERE id = ?1", [id.0], |_| Ok(()))
                .optional()
                .map_err(self.query_err("recording a call end"))?;
            return Err(match exists {
                Some(()) => StoreError::CallAlreadyFinished(id.0),
                None => StoreError::CallNotFound(id.0),
            });
        }
        Ok(())
    }

    /// Records that a call in progress was answered (so a crash after this keeps the fact).
    pub fn mark_call_answered(&mut self, id: CallRowId, answered: i64) -> Result<()> {
        let changed = self
            .conn
            .execute(
                "UPDATE calls SET answered = ?2 WHERE id = ?1 AND ended IS NULL",
                params![id.0, answered],
            )
            .map_err(self.query_err("recording a call answer"))?;
        if changed == 0 {
            return Err(StoreError::CallNotFound(id.0));
        }
        Ok(())
    }

    /// Run once at start-up: every row left open by a previous run (which can no longer be in
    /// a call) is closed as [`CallOutcome::Interrupted`] with `ended = now` and no duration.
    /// Returns how many rows it closed.
    pub fn close_interrupted(&mut self, now: i64) -> Result<usize> {
        self.conn
            .execute(
                "UPDATE calls SET outcome = 'interrupted', ended = max(?1, started), duration = NULL
                 WHERE ended IS NULL",
                [now],
            )
            .map_err(self.query_err("closing interrupted calls"))
    }

    /// The Recent tab: newest first; `missed_only` keeps missed calls.
    pub fn recent_calls(&self, limit: usize, missed_only: bool) -> Result<Vec<CallRecord>> {
        let filter = if missed_only {
            " WHERE c.outcome = 'missed'"
        } else {
            ""
        };
        let sql = format!("{SELECT_RECENT}{filter} ORDER BY c.started DESC, c.id DESC LIMIT ?1");
        let err = self.query_err("listing recent calls");
        let mut stmt = self.conn.prepare(&sql).map_err(&err)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map([limit], call_row).map_err(&err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    pub fn call(&self, id: CallRowId) -> Result<Option<CallRecord>> {
        self.conn
            .query_row(
                &format!("{SELECT_RECENT} WHERE c.id = ?1"),
                [id.0],
                call_row,
            )
            .optional()
            .map_err(self.query_err("reading a call"))
    }
}

fn call_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CallRecord> {
    Ok(CallRecord {
        id: CallRowId(row.get(0)?),
        direction: row.get(1)?,
        local_number: row.get(2)?,
        remote_number: row.get(3)?,
        contact_id: row.get::<_, Option<i64>>(4)?.map(ContactId),
        contact_name: row.get(5)?,
        queue: row.get(6)?,
        started: row.get(7)?,
        answered: row.get(8)?,
        ended: row.get(9)?,
        duration: row.get(10)?,
        outcome: row.get(11)?,
        recording_path: row.get(12)?,
        activity_id: row.get::<_, Option<i64>>(13)?.map(ActivityId),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewContact;

    const T0: i64 = 1_796_000_000;

    fn inbound(remote: &str, started: i64) -> CallStart {
        CallStart {
            direction: CallDirection::Inbound,
            local_number: "1001".into(),
            remote_number: remote.into(),
            contact_id: None,
            queue: Some("support".into()),
            started,
            activity_id: None,
        }
    }

    #[test]
    fn a_call_is_written_at_start_and_completed_at_end() {
        let mut store = Store::open_in_memory().expect("open_in_memory");
        let grace = store
            .add_contact(&NewContact::named("Grace Hopper").with_phone("", "+1 650 691 3277"))
            .expect("add_contact");
        let id = store
            .start_call(&inbound("0016506913277", T0))
            .expect("start_call");

        let open = store.call(id).expect("call").expect("present");
        assert_eq!(
            open.contact_id,
            Some(grace),
            "looked up from the remote number"
        );
        assert_eq!(open.contact_name.as_deref(), Some("Grace Hopper"));
        assert_eq!(
            (open.ended, open.outcome, open.duration),
            (None, None, None)
        );

        store
            .mark_call_answered(id, T0 + 4)
            .expect("mark_call_answered");
        store
            .finish_call(
                id,
                &CallFinish {
                    outcome: CallOutcome::Answered,
                    answered: Some(T0 + 4),
                    ended: T0 + 95,
                    recording_path: Some("/rec/1.wav".into()),
                },
            )
            .expect("finish_call");
        let done = store.call(id).expect("call").expect("present");
        assert_eq!(done.answered, Some(T0 + 4));
        assert_eq!(done.ended, Some(T0 + 95));
        assert_eq!(done.duration, Some(91));
        assert_eq!(done.outcome, Some(CallOutcome::Answered));
        assert_eq!(done.recording_path.as_deref(), Some("/rec/1.wav"));
        assert_eq!(done.queue.as_deref(), Some("support"));

        let again = store.finish_call(
            id,
            &CallFinish {
                outcome: CallOutcome::Failed,
                answered: None,
                ended: T0 + 99,
                recording_path: None,
            },
        );
        assert!(matches!(again, Err(StoreError::CallAlreadyFinished(_))));
        assert_eq!(
            store.call(id).expect("call").expect("present").outcome,
            Some(CallOutcome::Answered)
        );
        let missing = store.finish_call(
            CallRowId(999),
            &CallFinish {
                outcome: CallOutcome::Failed,
                answered: None,
                ended: T0,
                recording_path: None,
            },
        );
        assert!(matches!(missing, Err(StoreError::CallNotFound(999))));
    }

    #[test]
    fn unanswered_calls_have_zero_duration() {
        let mut store = Store::open_in_memory().expect("open_in_memory");
        let id = store
            .start_call(&inbound("+441632960000", T0))
            .expect("start_call");
        store
            .finish_call(
                id,
                &CallFinish {
                    outcome: CallOutcome::Missed,
                    answered: None,
                    ended: T0 + 30,
                    recording_path: None,
                },
            )
            .expect("finish_call");
        let row = store.call(id).expect("call").expect("present");
        assert_eq!(row.duration, Some(0));
        assert_eq!(row.contact_id, None);
        assert_eq!(row.contact_name, None);
    }

    #[test]
    fn recent_is_newest_first_and_filters_missed() {
        let mut store = Store::open_in_memory().expect("open_in_memory");
        let outcomes = [
            CallOutcome::Answered,
            CallOutcome::Missed,
            CallOutcome::Busy,
            CallOutcome::Missed,
            CallOutcome::Transferred,
        ];
        let mut ids = Vec::new();
        for (i, outcome) in outcomes.into_iter().enumerate() {
            let started = T0 + 100 * i as i64;
            let id = store
                .start_call(&inbound(&format!("+3361234567{i}"), started))
                .expect("start_call");
            let answered = (outcome == CallOutcome::Answered).then_some(started + 2);
            store
                .finish_call(
                    id,
                    &CallFinish {
                        outcome,
                        answered,
                        ended: started + 20,
                        recording_path: None,
                    },
                )
                .expect("finish_call");
            ids.push(id);
        }
        let recent: Vec<CallRowId> = store
            .recent_calls(3, false)
            .expect("recent_calls")
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(recent, [ids[4], ids[3], ids[2]]);
        let missed = store.recent_calls(10, true).expect("recent_calls");
        let missed_ids: Vec<CallRowId> = missed.iter().map(|c| c.id).collect();
        assert_eq!(missed_ids, [ids[3], ids[1]]);
        assert_eq!(missed[0].remote_number, "+33612345673");
        assert_eq!(store.recent_calls(0, false).expect("recent_calls"), vec![]);
    }

    #[test]
    fn restart_closes_open_rows_as_interrupted() {
        let mut store = Store::open_in_memory().expect("open_in_memory");
        let finished = store
            .start_call(&inbound("+33612345670", T0))
            .expect("start_call");
        store
            .finish_call(
                finished,
                &CallFinish {
                    outcome: CallOutcome::Answered,
                    answered: Some(T0 + 1),
                    ended: T0 + 10,
                    recording_path: None,
                },
            )
            .expect("finish_call");
        let talking = store
            .start_call(&inbound("+33612345671", T0 + 20))
            .expect("start_call");
        store
            .mark_call_answered(talking, T0 + 25)
            .expect("mark_call_answered");
        let ringing = store
            .start_call(&inbound("+33612345672", T0 + 30))
            .expect("start_call");

        assert_eq!(
            store
                .close_interrupted(T0 + 600)
                .expect("close_interrupted"),
            2
        );
        for id in [talking, ringing] {
            let row = store.call(id).expect("call").expect("present");
            assert_eq!(row.outcome, Some(CallOutcome::Interrupted));
            assert_eq!(row.ended, Some(T0 + 600));
            assert_eq!(row.duration, None, "the real end is unknown");
        }
        assert_eq!(
            store
                .call(talking)
                .expect("call")
                .expect("present")
                .answered,
            Some(T0 + 25)
        );
        assert_eq!(
            store
                .call(finished)
                .expect("call")
                .expect("present")
                .outcome,
            Some(CallOutcome::Answered)
        );
        assert_eq!(
            store
                .close_interrupted(T0 + 700)
                .expect("close_interrupted"),
            0
        );
        // A late finish for a closed row is refused rather than overwriting it.
        assert!(matches!(
            store.finish_call(
                ringing,
                &CallFinish {
                    outcome: CallOutcome::Missed,
                    answered: None,
                    ended: T0 + 40,
                    recording_path: None
                }
            ),
            Err(StoreError::CallAlreadyFinished(_))
        ));
    }

    const CRASH_DIR_VAR: &str = "RINGSIDE_STORE_CRASH_CHILD_DIR";
    const STARTED_MARKER: &str = "ringside-call-started";

    /// Run by the test below in a child process, which it then kills with SIGKILL.
    #[test]
    #[ignore = "helper process for kill_9_mid_call_leaves_a_row_the_next_start_closes"]
    fn crash_child_starts_a_call_and_waits() {
        let Some(dir) = std::env::var_os(CRASH_DIR_VAR) else {
            return;
        };
        let mut store = Store::open_in_dir(dir).expect("open_in_dir");
        store
            .start_call(&inbound("+33612345670", T0))
            .expect("start_call");
        println!("{STARTED_MARKER}");
        // Bounded, so an orphaned child never lingers.
        std::thread::sleep(std::time::Duration::from_secs(30));
    }

    #[test]
    fn kill_9_mid_call_leaves_a_row_the_next_start_closes() {
        use std::io::BufRead;
        let dir =
            std::env::temp_dir().join(format!("ringside-history-kill-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = std::process::Command::new(std::env::current_exe().expect("current_exe"))
            .args([
                "--exact",
                "store::history::tests::crash_child_starts_a_call_and_waits",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_DIR_VAR, &dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("take");
        let started = std::io::BufReader::new(stdout)
            .lines()
            .map_while(|line| line.ok())
            .any(|line| line.contains(STARTED_MARKER));
        assert!(started, "the child never started its call");
        child.kill().expect("kill"); // SIGKILL: no destructor, no clean close
        child.wait().expect("wait");

        let mut store = Store::open_in_dir(&dir).expect("open_in_dir");
        let open = store.recent_calls(10, false).expect("recent_calls");
        assert_eq!(open.len(), 1);
        assert_eq!(
            open[0].ended, None,
            "the start was committed before the kill"
        );
        assert_eq!(
            store.close_interrupted(T0 + 60).expect("close_interrupted"),
            1
        );
        let closed = store.call(open[0].id).expect("call").expect("present");
        assert_eq!(closed.outcome, Some(CallOutcome::Interrupted));
        assert_eq!(closed.ended, Some(T0 + 60));
        drop(store);
        std::fs::remove_dir_all(&dir).expect("remove_dir_all");
    }

    #[test]
    fn queries_use_indexes() {
        let store = Store::open_in_memory().expect("open_in_memory");
        let plan = |sql: &str| {
            let mut stmt = store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("prepare");
            let rows: Vec<String> = stmt
                .query_map([10], |r| r.get(3))
                .expect("query_map")
                .map(|r| r.expect("row"))
                .collect();
            rows.join("; ")
        };
        let recent = plan(&format!(
            "{SELECT_RECENT} ORDER BY c.started DESC, c.id DESC LIMIT ?1"
        ));
        assert!(
            recent.contains("SCAN c USING INDEX calls_started"),
            "{recent}"
        );
        let missed = plan(&format!(
            "{SELECT_RECENT} WHERE c.outcome = 'missed' ORDER BY c.started DESC, c.id DESC LIMIT ?1"
        ));
        assert!(missed.contains("USING INDEX calls_missed"), "{missed}");
        let open = plan("UPDATE calls SET outcome = 'interrupted' WHERE ended IS NULL AND ?1 > 0");
        assert!(open.contains("calls_open"), "{open}");
    }
}
