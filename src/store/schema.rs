//! The schema and its history. `PRAGMA user_version` holds the version; each migration moves the
//! file one version forward, and all pending ones run in a single transaction, so a failure leaves
//! the file exactly as it was.
//!
//! Append new migrations at the end; never edit one that has shipped.

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::phone::{normalize_phone, suffix_key};
use super::{Result, StoreError};

pub(crate) struct Migration {
    pub version: i64,
    pub apply: fn(&Transaction<'_>) -> rusqlite::Result<()>,
}

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        apply: v1_initial,
    },
    Migration {
        version: 2,
        apply: v2_several_phones,
    },
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 2;

/// Version 1: one phone per contact.
fn v1_initial(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE contacts (
            id      INTEGER PRIMARY KEY,
            name    TEXT NOT NULL,
            company TEXT NOT NULL DEFAULT '',
            phone   TEXT NOT NULL DEFAULT '',
            email   TEXT NOT NULL DEFAULT '',
            notes   TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX contacts_phone ON contacts(phone);

        CREATE TABLE activities (
            id            INTEGER PRIMARY KEY,
            kind          TEXT NOT NULL CHECK (kind IN ('call', 'email', 'todo')),
            summary       TEXT NOT NULL,
            due           TEXT NOT NULL,
            note          TEXT NOT NULL DEFAULT '',
            linked_record TEXT NOT NULL DEFAULT '',
            assignee      TEXT NOT NULL,
            state         TEXT NOT NULL DEFAULT 'planned'
                          CHECK (state IN ('planned', 'done', 'cancelled')),
            contact_id    INTEGER REFERENCES contacts(id) ON DELETE SET NULL,
            closed_at     INTEGER
        );
        CREATE INDEX activities_agenda ON activities(assignee, state, due);
        CREATE INDEX activities_contact ON activities(contact_id);

        CREATE TABLE calls (
            id             INTEGER PRIMARY KEY,
            direction      TEXT NOT NULL CHECK (direction IN ('in', 'out')),
            local_number   TEXT NOT NULL,
            remote_number  TEXT NOT NULL,
            contact_id     INTEGER REFERENCES contacts(id) ON DELETE SET NULL,
            queue          TEXT,
            started        INTEGER NOT NULL,
            answered       INTEGER,
            ended          INTEGER,
            duration       INTEGER,
            outcome        TEXT CHECK (outcome IN ('answered', 'missed', 'rejected', 'busy',
                                                   'failed', 'transferred', 'interrupted')),
            recording_path TEXT,
            activity_id    INTEGER REFERENCES activities(id) ON DELETE SET NULL
        );
        CREATE INDEX calls_started ON calls(started);
        CREATE INDEX calls_open ON calls(id) WHERE ended IS NULL;
        CREATE INDEX calls_missed ON calls(started) WHERE outcome = 'missed';
        CREATE INDEX calls_contact ON calls(contact_id);",
    )
}

/// Version 2: several labelled phones per contact, normalised, indexed both by number (exact
/// caller lookup) and by [`suffix_key`] (caller IDs sent without the country code). The single v1
/// phone moves over with the label "phone".
fn v2_several_phones(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE contact_phones (
            id         INTEGER PRIMARY KEY,
            contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
            position   INTEGER NOT NULL,
            label      TEXT NOT NULL DEFAULT '',
            raw        TEXT NOT NULL,
            number     TEXT NOT NULL,
            digits_rev TEXT NOT NULL
        );
        CREATE INDEX contact_phones_number ON contact_phones(number, contact_id);
        CREATE INDEX contact_phones_digits_rev ON contact_phones(digits_rev);
        CREATE INDEX contact_phones_contact ON contact_phones(contact_id, position);",
    )?;
    let old: Vec<(i64, String)> = {
        let mut stmt = tx.prepare("SELECT id, phone FROM contacts WHERE trim(phone) <> ''")?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    {
        let mut insert = tx.prepare(
            "INSERT INTO contact_phones (contact_id, position, label, raw, number, digits_rev)
             VALUES (?1, 0, 'phone', ?2, ?3, ?4)",
        )?;
        for (id, raw) in &old {
            // The calling code is configuration, unknown here: national numbers stay digits.
            let number = normalize_phone(raw, None);
            insert.execute(rusqlite::params![
                id,
                raw.trim(),
                number,
                suffix_key(&number)
            ])?;
        }
    }
    tx.execute_batch(
        "DROP INDEX contacts_phone;
         ALTER TABLE contacts DROP COLUMN phone;",
    )
}

pub(crate) fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

pub(crate) fn migrate(conn: &mut Connection, path: &str) -> Result<()> {
    migrate_with(conn, path, MIGRATIONS)
}

pub(crate) fn migrate_with(
    conn: &mut Connection,
    path: &str,
    migrations: &[Migration],
) -> Result<()> {
    let latest = migrations.last().map_or(0, |m| m.version);
    let query_err = |source| StoreError::Query {
        path: path.to_string(),
        action: "reading the schema version",
        error: source,
    };
    let found = user_version(conn).map_err(query_err)?;
    if found > latest {
        return Err(StoreError::TooNew {
            path: path.to_string(),
            found,
            supported: latest,
        });
    }
    if found == latest {
        return Ok(());
    }
    // IMMEDIATE takes the write lock first, so two ringsides starting together migrate once.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(query_err)?;
    let found = user_version(&tx).map_err(query_err)?;
    for migration in migrations.iter().filter(|m| m.version > found) {
        let failed = |source| StoreError::Migrate {
            path: path.to_string(),
            version: migration.version,
            error: source,
        };
        (migration.apply)(&tx).map_err(failed)?;
        tx.pragma_update(None, "user_version", migration.version)
            .map_err(failed)?;
    }
    tx.commit().map_err(|source| StoreError::Migrate {
        path: path.to_string(),
        version: latest,
        error: source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewContact, Store};

    fn scratch_file(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ringside-schema-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create_dir_all");
        dir.join("ringside.db")
    }

    /// Writes a version-1 file the way the v1 code did, without using the migration code.
    fn write_v1_database(path: &std::path::Path) {
        let conn = Connection::open(path).expect("open");
        conn.execute_batch(
            "CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
                 company TEXT NOT NULL DEFAULT '', phone TEXT NOT NULL DEFAULT '',
                 email TEXT NOT NULL DEFAULT '', notes TEXT NOT NULL DEFAULT '');
             CREATE INDEX contacts_phone ON contacts(phone);
             CREATE TABLE activities (id INTEGER PRIMARY KEY,
                 kind TEXT NOT NULL CHECK (kind IN ('call', 'email', 'todo')),
                 summary TEXT NOT NULL, due TEXT NOT NULL, note TEXT NOT NULL DEFAULT '',
                 linked_record TEXT NOT NULL DEFAULT '', assignee TEXT NOT NULL,
                 state TEXT NOT NULL DEFAULT 'planned'
                     CHECK (state IN ('planned', 'done', 'cancelled')),
                 contact_id INTEGER REFERENCES contacts(id) ON DELETE SET NULL,
                 closed_at INTEGER);
             CREATE INDEX activities_agenda ON activities(assignee, state, due);
             CREATE INDEX activities_contact ON activities(contact_id);
             CREATE TABLE calls (id INTEGER PRIMARY KEY,
                 direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
                 local_number TEXT NOT NULL, remote_number TEXT NOT NULL,
                 contact_id INTEGER REFERENCES contacts(id) ON DELETE SET NULL, queue TEXT,
                 started INTEGER NOT NULL, answered INTEGER, ended INTEGER, duration INTEGER,
                 outcome TEXT CHECK (outcome IN ('answered', 'missed', 'rejected', 'busy',
                     'failed', 'transferred', 'interrupted')),
                 recording_path TEXT,
                 activity_id INTEGER REFERENCES activities(id) ON DELETE SET NULL);
             CREATE INDEX calls_started ON calls(started);
             CREATE INDEX calls_open ON calls(id) WHERE ended IS NULL;
             CREATE INDEX calls_missed ON calls(started) WHERE outcome = 'missed';
             CREATE INDEX calls_contact ON calls(contact_id);

             INSERT INTO contacts (id, name, company, phone, email, notes) VALUES
                 (7, 'Grace Hopper', 'US Navy', '+1 (650) 691-3277', 'grace@navy.example', 'COBOL'),
                 (8, 'Alan Turing', 'NPL', '', 'alan@npl.example', ''),
                 (9, 'Marie Curie', '', '0033 1 23 45 67 89', '', 'two prizes');
             INSERT INTO activities (id, kind, summary, due, assignee, contact_id)
                 VALUES (3, 'call', 'Call Grace back', '2026-11-30', 'ann', 7);
             INSERT INTO calls (id, direction, local_number, remote_number, contact_id, started,
                 answered, ended, duration, outcome)
                 VALUES (5, 'in', '1001', '+16506913277', 7, 1796000000, 1796000004, 1796000064,
                         60, 'answered');
             PRAGMA user_version = 1;",
        )
        .expect("execute_batch");
    }

    #[test]
    fn a_version_1_file_is_migrated_with_its_data() {
        let path = scratch_file("v1");
        write_v1_database(&path);

        let mut store = Store::open(&path).expect("open");
        assert_eq!(store.schema_version().expect("schema_version"), 2);

        let grace = store
            .contact(crate::store::ContactId(7))
            .expect("contact")
            .expect("present");
        assert_eq!(grace.name, "Grace Hopper");
        assert_eq!(grace.company, "US Navy");
        assert_eq!(grace.email, "grace@navy.example");
        assert_eq!(grace.notes, "COBOL");
        assert_eq!(grace.phones.len(), 1);
        assert_eq!(grace.phones[0].label, "phone");
        assert_eq!(grace.phones[0].raw, "+1 (650) 691-3277");
        assert_eq!(grace.phones[0].number, "+16506913277");

        let alan = store
            .contact(crate::store::ContactId(8))
            .expect("contact")
            .expect("present");
        assert!(alan.phones.is_empty());

        // The migrated numbers are found by caller lookup, in either spelling.
        let marie = store
            .contact_by_number("+33 1 23 45 67 89")
            .expect("contact_by_number")
            .expect("present");
        assert_eq!(marie.id, crate::store::ContactId(9));
        assert_eq!(marie.notes, "two prizes");

        // Activities and history came through untouched.
        let agenda = store
            .due_activities("ann", "2026-11-30".parse().expect("parse"))
            .expect("due_activities");
        assert_eq!(agenda.len(), 1);
        assert_eq!(agenda[0].summary, "Call Grace back");
        let recent = store.recent_calls(10, false).expect("recent_calls");
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].duration, Some(60));
        assert_eq!(recent[0].contact_name.as_deref(), Some("Grace Hopper"));

        // The old column is gone and new rows use the new table.
        let columns: Vec<String> = {
            let mut stmt = store
                .conn
                .prepare("SELECT name FROM pragma_table_info('contacts')")
                .expect("prepare");
            stmt.query_map([], |r| r.get(0))
                .expect("query_map")
                .map(|r| r.expect("row"))
                .collect()
        };
        assert_eq!(columns, ["id", "name", "company", "email", "notes"]);
        let id = store
            .add_contact(&NewContact::named("Ada").with_phone("mobile", "+44 7700 900123"))
            .expect("add_contact");
        assert!(id.0 > 9);
        drop(store);
        std::fs::remove_dir_all(path.parent().expect("parent")).expect("remove_dir_all");
    }

    #[test]
    fn a_newer_file_is_refused_and_left_alone() {
        let path = scratch_file("future");
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch("CREATE TABLE t (x); PRAGMA user_version = 99;")
                .expect("execute_batch");
        }
        let err = Store::open(&path).expect_err("must fail");
        assert!(
            matches!(
                err,
                StoreError::TooNew {
                    found: 99,
                    supported: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("upgrade ringside"), "{err}");
        let conn = Connection::open(&path).expect("open");
        assert_eq!(user_version(&conn).expect("user_version"), 99);
        drop(conn);
        std::fs::remove_dir_all(path.parent().expect("parent")).expect("remove_dir_all");
    }

    #[test]
    fn a_failing_migration_rolls_back_every_step() {
        fn creates_a_table(tx: &Transaction<'_>) -> rusqlite::Result<()> {
            tx.execute_batch("CREATE TABLE step_one (x INTEGER)")
        }
        fn fails(tx: &Transaction<'_>) -> rusqlite::Result<()> {
            tx.execute_batch("INSERT INTO no_such_table VALUES (1)")
        }
        let steps = [
            Migration {
                version: 1,
                apply: creates_a_table,
            },
            Migration {
                version: 2,
                apply: fails,
            },
        ];
        let mut conn = Connection::open_in_memory().expect("open_in_memory");
        let err = migrate_with(&mut conn, "memory", &steps).expect_err("must fail");
        assert!(
            matches!(err, StoreError::Migrate { version: 2, .. }),
            "{err}"
        );
        assert_eq!(user_version(&conn).expect("user_version"), 0);
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'step_one'",
                [],
                |r| r.get(0),
            )
            .expect("query_row");
        assert_eq!(tables, 0);
    }

    #[test]
    fn migrations_are_ordered_and_end_at_the_current_version() {
        for pair in MIGRATIONS.windows(2) {
            assert_eq!(pair[1].version, pair[0].version + 1);
        }
        assert_eq!(MIGRATIONS.first().map(|m| m.version), Some(1));
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(SCHEMA_VERSION));
    }
}
