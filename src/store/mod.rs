//! The local store behind the Recent, Next Activities and Contacts tabs: contacts, activities and
//! call history in one SQLite file (rusqlite, bundled SQLite).
//!
//! Plain blocking calls, no UI types and no clock: every instant is passed in by the caller as epoch
//! seconds and every "today" as a [`CivilDate`], so the tabs and the crash-recovery path are tested
//! deterministically. The file lives in the data directory ([`default_data_dir`], `--data-dir`).
//!
//! Crash safety: a call's history row is written when the call starts ([`Store::start_call`]) and
//! completed when it ends ([`Store::finish_call`]); at start-up, [`Store::close_interrupted`] marks
//! rows a crash left open as [`CallOutcome::Interrupted`].

mod activities;
mod call_log;
mod contacts;
mod csv;
mod date;
mod desk;
mod history;
mod import;
mod phone;
mod schema;
mod search;
mod vcard;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

pub use activities::{
    Activity, ActivityEdit, ActivityId, ActivityKind, ActivityState, NewActivity,
};
pub use call_log::CallLog;
pub use contacts::{Contact, ContactId, NewContact, Phone};
pub use date::{CivilDate, DateError};
pub use desk::{
    ActivityItem, Desk, DeskRequest, DeskUpdate, SearchFor, CONTACT_HITS, DIAL_HITS, RECENT_LIMIT,
};
pub use history::{CallDirection, CallFinish, CallOutcome, CallRecord, CallRowId, CallStart};
pub use import::{export_csv, parse_contacts, ImportFormat, ImportReport, ParsedContacts};
pub use phone::{is_e164, normalize_phone};
pub use schema::SCHEMA_VERSION;
pub use search::ContactIndex;

/// The store's file name inside the data directory.
pub const DB_FILE_NAME: &str = "ringside.db";

/// How long a write waits for another connection (a second ringside on the same data directory)
/// before giving up with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the store can fail with. Messages name the file and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot create the data directory {path}: {error} — check --data-dir and its permissions"
    )]
    CreateDir {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot open the store at {path}: {error} — check --data-dir, that the directory is writable and that the file is a ringside database")]
    Open {
        path: String,
        error: rusqlite::Error,
    },
    #[error("the store at {path} has schema version {found}, newer than this ringside understands ({supported}) — upgrade ringside or point --data-dir elsewhere")]
    TooNew {
        path: String,
        found: i64,
        supported: i64,
    },
    #[error("cannot migrate the store at {path} to schema version {version}: {error} — the file was left at its previous version; keep a copy and report the problem")]
    Migrate {
        path: String,
        version: i64,
        error: rusqlite::Error,
    },
    #[error("the store at {path} failed while {action}: {error} — if this persists, check the disk and the file's permissions")]
    Query {
        path: String,
        action: &'static str,
        error: rusqlite::Error,
    },
    #[error("there is no contact #{0} — it may have been deleted; reload the list")]
    ContactNotFound(i64),
    #[error("there is no activity #{0} — it may have been deleted; reload the list")]
    ActivityNotFound(i64),
    #[error("activity #{id} is already {state}; only planned activities can be changed")]
    ActivityNotPlanned { id: i64, state: ActivityState },
    #[error("there is no call #{0} in the history")]
    CallNotFound(i64),
    #[error("call #{0} is already finished; its history row is left as it was")]
    CallAlreadyFinished(i64),
    #[error("a contact needs a name (or at least a company) — fill in the name")]
    EmptyName,
    #[error("cannot read {path}: {error} — check the file name")]
    ReadImport {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot tell the format of {0}: name it .vcf or .csv")]
    UnknownImportFormat(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The agent's local database. Owns one SQLite connection; writes take `&mut self`.
pub struct Store {
    conn: Connection,
    /// For messages: the file path, or "memory".
    path: String,
    /// Country calling code used to turn national numbers ("01 23 45 67 89") into E.164.
    default_calling_code: Option<String>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("default_calling_code", &self.default_calling_code)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed, along with its directory) the store at `path`, then brings its
    /// schema up to [`SCHEMA_VERSION`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                error: source,
            })?;
        }
        let shown = path.display().to_string();
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: shown.clone(),
            error: source,
        })?;
        Self::prepare(conn, shown)
    }

    /// Opens the store file [`DB_FILE_NAME`] inside `data_dir`.
    pub fn open_in_dir(data_dir: impl AsRef<Path>) -> Result<Self> {
        Self::open(data_dir.as_ref().join(DB_FILE_NAME))
    }

    /// A private store that vanishes when dropped: for tests and the demo mode.
    pub fn open_in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: "memory".into(),
            error: source,
        })?;
        Self::prepare(conn, "memory".into())
    }

    fn prepare(conn: Connection, path: String) -> Result<Self> {
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            error: source,
        };
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // WAL lets the UI read while a write is in progress, and an app crash (kill -9) never
        // loses a committed row; NORMAL sync is crash-safe under WAL and keeps inserts cheap.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(open_err)?;
        let mut store = Store {
            conn,
            path,
            default_calling_code: None,
        };
        schema::migrate(&mut store.conn, &store.path)?;
        Ok(store)
    }

    /// Sets the country calling code (digits, e.g. "33") used to normalise national numbers when
    /// contacts are saved or looked up.
    pub fn set_default_calling_code(&mut self, code: Option<&str>) {
        self.default_calling_code = code
            .map(|c| c.trim().trim_start_matches('+').to_string())
            .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()));
    }

    pub fn default_calling_code(&self) -> Option<&str> {
        self.default_calling_code.as_deref()
    }

    /// Where the store lives ("memory" for an in-memory store).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The schema version recorded in the file.
    pub fn schema_version(&self) -> Result<i64> {
        schema::user_version(&self.conn).map_err(self.query_err("reading the schema version"))
    }

    /// Builds the error mapper for one action, so every query error names the file.
    fn query_err(&self, action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Query {
            path: self.path.clone(),
            action,
            error: source,
        }
    }
}

/// The default data directory: `$XDG_DATA_HOME/ringside`, else `$HOME/.local/share/ringside`.
///
/// Takes the environment values as parameters so it stays pure; an empty or relative
/// `XDG_DATA_HOME` is ignored, as the XDG base-directory spec asks. `None` when neither gives an
/// absolute path (the caller then asks for `--data-dir`).
pub fn default_data_dir(xdg_data_home: Option<&OsStr>, home: Option<&OsStr>) -> Option<PathBuf> {
    let absolute = |value: Option<&OsStr>| {
        value
            .map(Path::new)
            .filter(|p| p.is_absolute())
            .map(Path::to_path_buf)
    };
    if let Some(base) = absolute(xdg_data_home) {
        return Some(base.join("ringside"));
    }
    absolute(home).map(|home| home.join(".local").join("share").join("ringside"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }

    #[test]
    fn data_dir_prefers_xdg_then_home() {
        assert_eq!(
            default_data_dir(os("/xdg/data"), os("/home/ann")),
            Some(PathBuf::from("/xdg/data/ringside"))
        );
        assert_eq!(
            default_data_dir(None, os("/home/ann")),
            Some(PathBuf::from("/home/ann/.local/share/ringside"))
        );
        // The spec says to ignore empty and relative values.
        assert_eq!(
            default_data_dir(os(""), os("/home/ann")),
            Some(PathBuf::from("/home/ann/.local/share/ringside"))
        );
        assert_eq!(
            default_data_dir(os("rel/data"), os("/home/ann")),
            Some(PathBuf::from("/home/ann/.local/share/ringside"))
        );
        assert_eq!(default_data_dir(None, None), None);
        assert_eq!(default_data_dir(None, os("relative")), None);
    }

    fn scratch_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ringside-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn open_creates_the_directory_and_uses_wal() {
        let dir = scratch_dir("wal");
        let store = Store::open_in_dir(dir.join("nested")).expect("open_in_dir");
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("query_row");
        assert_eq!(mode, "wal");
        let fk: i64 = store
            .conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .expect("query_row");
        assert_eq!(fk, 1);
        assert_eq!(
            store.schema_version().expect("schema_version"),
            SCHEMA_VERSION
        );
        assert!(dir.join("nested").join(DB_FILE_NAME).exists());
        drop(store);
        std::fs::remove_dir_all(&dir).expect("remove_dir_all");
    }

    #[test]
    fn data_survives_reopening() {
        let dir = scratch_dir("reopen");
        let id = {
            let mut store = Store::open_in_dir(&dir).expect("open_in_dir");
            store
                .add_contact(
                    &NewContact::named("Ada Lovelace").with_phone("work", "+44 20 7946 0000"),
                )
                .expect("add_contact")
        };
        let store = Store::open_in_dir(&dir).expect("open_in_dir");
        let ada = store.contact(id).expect("contact").expect("present");
        assert_eq!(ada.name, "Ada Lovelace");
        assert_eq!(ada.phones[0].number, "+442079460000");
        drop(store);
        std::fs::remove_dir_all(&dir).expect("remove_dir_all");
    }

    #[test]
    fn open_errors_name_the_path_and_the_remedy() {
        let dir = scratch_dir("notdb");
        std::fs::create_dir_all(&dir).expect("create_dir_all");
        let file = dir.join("ringside.db");
        std::fs::write(&file, b"this is not an sqlite database, just some text padding it out to a page........................................").expect("write");
        let err = Store::open(&file).expect_err("must fail").to_string();
        assert!(err.contains(&file.display().to_string()), "{err}");
        assert!(err.contains("--data-dir"), "{err}");

        // A file where the directory should be.
        let blocker = dir.join("blocker");
        std::fs::write(&blocker, b"x").expect("write");
        let err = Store::open(blocker.join("sub").join("ringside.db"))
            .expect_err("must fail")
            .to_string();
        assert!(err.starts_with("cannot create the data directory"), "{err}");
        assert!(err.contains("blocker"), "{err}");
        std::fs::remove_dir_all(&dir).expect("remove_dir_all");
    }

    #[test]
    fn calling_code_is_cleaned() {
        let mut store = Store::open_in_memory().expect("open_in_memory");
        store.set_default_calling_code(Some(" +33 "));
        assert_eq!(store.default_calling_code(), Some("33"));
        store.set_default_calling_code(Some("fr"));
        assert_eq!(store.default_calling_code(), None);
    }
}
