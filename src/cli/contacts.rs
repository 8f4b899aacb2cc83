//! `ringside contacts import FILE | export [FILE] | list`: the agent's contacts in the local
//! store (the data dir's ringside.db), for the dashboard's Contacts tab and caller lookup.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::store::{ImportReport, Store, StoreError};

/// What `ringside contacts` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactsAction {
    /// Import a vCard 3/4 (.vcf) or CSV file.
    Import(PathBuf),
    /// Export every contact as CSV to a file, or to stdout.
    Export(Option<PathBuf>),
    /// Name, company and numbers of every contact.
    List,
}

#[derive(Debug, thiserror::Error)]
pub enum ContactsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// Runs `action` on the store in `data_dir`. National numbers in imported files are read with
/// `calling_code` (from `[dial] default_region`). Per-line import problems go to `warn`.
pub fn run(
    data_dir: &Path,
    calling_code: Option<&str>,
    action: &ContactsAction,
    out: &mut impl Write,
    warn: &mut impl Write,
) -> Result<(), ContactsError> {
    let mut store = Store::open_in_dir(data_dir)?;
    store.set_default_calling_code(calling_code);
    let stdout_error = |source| ContactsError::Write {
        path: "standard output".to_owned(),
        source,
    };
    match action {
        ContactsAction::Import(path) => {
            let report = store.import_file(path)?;
            write_report(path, &report, out, warn).map_err(stdout_error)?;
        }
        ContactsAction::Export(target) => {
            let csv = store.export_contacts_csv()?;
            match target {
                Some(path) => std::fs::write(path, csv).map_err(|source| ContactsError::Write {
                    path: path.display().to_string(),
                    source,
                })?,
                None => out.write_all(csv.as_bytes()).map_err(stdout_error)?,
            }
        }
        ContactsAction::List => {
            for contact in store.contacts()? {
                let numbers: Vec<&str> = contact.phones.iter().map(|p| p.number.as_str()).collect();
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    contact.name,
                    contact.company,
                    numbers.join(", "),
                    contact.email
                )
                .map_err(stdout_error)?;
            }
        }
    }
    Ok(())
}

fn write_report(
    path: &Path,
    report: &ImportReport,
    out: &mut impl Write,
    warn: &mut impl Write,
) -> io::Result<()> {
    for (line, why) in &report.skipped {
        writeln!(warn, "{}:{line}: skipped: {why}", path.display())?;
    }
    for (line, why) in &report.warnings {
        writeln!(warn, "{}:{line}: {why}", path.display())?;
    }
    writeln!(
        out,
        "{}: {} contact(s) imported, {} skipped",
        path.display(),
        report.imported,
        report.skipped.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/contacts")
            .join(name)
    }

    #[test]
    fn import_then_export_and_list_through_the_store_on_disk() {
        let dir = std::env::temp_dir().join(format!("ringside-contacts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut out, mut warn) = (Vec::new(), Vec::new());
        let action = ContactsAction::Import(data("google.csv"));
        run(&dir, Some("32"), &action, &mut out, &mut warn).expect("import");
        let said = String::from_utf8_lossy(&out).into_owned();
        assert!(said.contains("contact(s) imported"), "{said}");
        let warned = String::from_utf8_lossy(&warn).into_owned();
        // The sample's malformed row is reported with its file and line, the rest imported.
        assert!(warned.contains("google.csv:"), "{warned}");
        assert!(warned.contains("skipped"), "{warned}");
        // Importing the same file again adds nothing: every entry is already there.
        let (mut again, mut warn_again) = (Vec::new(), Vec::new());
        run(&dir, Some("32"), &action, &mut again, &mut warn_again).expect("re-import");
        assert!(
            String::from_utf8_lossy(&again).contains(": 0 contact(s) imported"),
            "{}",
            String::from_utf8_lossy(&again)
        );
        // The store survives the process: a new open lists what was imported.
        let mut listed = Vec::new();
        run(
            &dir,
            None,
            &ContactsAction::List,
            &mut listed,
            &mut Vec::new(),
        )
        .expect("list");
        let listed = String::from_utf8_lossy(&listed).into_owned();
        assert!(listed.lines().count() >= 2, "{listed}");
        assert!(
            listed.contains("+"),
            "numbers are stored in E.164: {listed}"
        );
        let export = dir.join("export.csv");
        run(
            &dir,
            None,
            &ContactsAction::Export(Some(export.clone())),
            &mut Vec::new(),
            &mut Vec::new(),
        )
        .expect("export");
        let csv = std::fs::read_to_string(&export).unwrap_or_default();
        assert!(csv.starts_with("Name,Company,E-mail"), "{csv}");
        for line in listed.lines() {
            let name = line.split('\t').next().unwrap_or_default();
            assert!(csv.contains(name), "{name} missing from the export:\n{csv}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
