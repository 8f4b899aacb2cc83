//! Contact import (vCard, CSV) and CSV export.
//!
//! Imports never stop at a bad entry: malformed cards and rows are reported by line with a reason
//! and the rest is imported, in one transaction. A contact already in the store (same name,
//! numbers and email) is reported rather than duplicated, so importing a file twice is harmless.

use std::collections::HashMap;
use std::path::Path;

use super::contacts::{insert_contact, query_error, Contact, ContactId, NewContact, Phone};
use super::phone::normalize_phone;
use super::{csv, vcard, Result, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    VCard,
    Csv,
}

impl ImportFormat {
    /// From the file extension (.vcf/.vcard, .csv/.tsv), else from the content.
    pub fn detect(path: &Path, text: &str) -> Option<Self> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("vcf" | "vcard") => return Some(ImportFormat::VCard),
            Some("csv" | "tsv") => return Some(ImportFormat::Csv),
            _ => {}
        }
        let start = text.trim_start_matches('\u{feff}').trim_start();
        let head = start.get(..11).unwrap_or(start);
        if head.eq_ignore_ascii_case("BEGIN:VCARD") {
            return Some(ImportFormat::VCard);
        }
        let first_line = start.lines().next().unwrap_or_default();
        first_line
            .contains([',', ';', '\t'])
            .then_some(ImportFormat::Csv)
    }
}

/// What a file yields before it touches the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedContacts {
    /// Each contact with the line its card or row starts on.
    pub contacts: Vec<(usize, NewContact)>,
    /// Entries that could not become contacts: (line, reason).
    pub skipped: Vec<(usize, String)>,
    /// Lines ignored inside otherwise good entries: (line, what).
    pub warnings: Vec<(usize, String)>,
}

/// The outcome of an import, for the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub imported: usize,
    /// Entries not imported, with the line they start on and why (malformed, no name, or already
    /// in the store).
    pub skipped: Vec<(usize, String)>,
    /// Lines ignored inside entries that were imported.
    pub warnings: Vec<(usize, String)>,
}

/// Parses a whole file's text.
pub fn parse_contacts(text: &str, format: ImportFormat) -> ParsedContacts {
    match format {
        ImportFormat::VCard => vcard::parse(text),
        ImportFormat::Csv => parse_csv(text),
    }
}

impl Store {
    /// Imports contacts from text already read.
    pub fn import_contacts(&mut self, text: &str, format: ImportFormat) -> Result<ImportReport> {
        let parsed = parse_contacts(text, format);
        let mut report = ImportReport {
            imported: 0,
            skipped: parsed.skipped,
            warnings: parsed.warnings,
        };
        let code = self.default_calling_code.clone();
        let mut seen: HashMap<String, ContactId> = self
            .contacts()?
            .iter()
            .map(|c| {
                (
                    identity(&c.name, &c.phones, &c.email, code.as_deref()),
                    c.id,
                )
            })
            .collect();
        let path = self.path.clone();
        let err = |source| query_error(&path, "importing contacts", source);
        let tx = self.conn.transaction().map_err(err)?;
        for (line, contact) in parsed.contacts {
            let key = identity(
                &contact.name,
                &contact.phones,
                &contact.email,
                code.as_deref(),
            );
            if let Some(existing) = seen.get(&key) {
                report.skipped.push((
                    line,
                    format!(
                        "{} is already in the store (contact {existing})",
                        contact.name.trim()
                    ),
                ));
                continue;
            }
            match insert_contact(&tx, &contact, code.as_deref()) {
                Ok(inserted) => {
                    seen.insert(key, inserted.map_err(err)?);
                    report.imported += 1;
                }
                Err(refused) => report.skipped.push((line, refused.to_string())),
            }
        }
        tx.commit().map_err(err)?;
        report.skipped.sort_by_key(|(line, _)| *line);
        Ok(report)
    }

    /// `ringside contacts import FILE`: reads the file (UTF-8, UTF-16 with BOM, or Windows-1252
    /// as old Outlook exports are) and imports it.
    pub fn import_file(&mut self, path: &Path) -> Result<ImportReport> {
        let bytes = std::fs::read(path).map_err(|source| StoreError::ReadImport {
            path: path.to_path_buf(),
            error: source,
        })?;
        let text = decode_text(&bytes);
        let format = ImportFormat::detect(path, &text)
            .ok_or_else(|| StoreError::UnknownImportFormat(path.display().to_string()))?;
        self.import_contacts(&text, format)
    }

    /// Every contact as CSV ([`export_csv`]).
    pub fn export_contacts_csv(&self) -> Result<String> {
        Ok(export_csv(&self.contacts()?))
    }
}

/// What makes two contacts the same for import: name, numbers and email, ignoring case and
/// number formatting.
fn identity(name: &str, phones: &[Phone], email: &str, calling_code: Option<&str>) -> String {
    let mut numbers: Vec<String> = phones
        .iter()
        .map(|p| normalize_phone(&p.raw, calling_code))
        .filter(|n| !n.is_empty())
        .collect();
    numbers.sort();
    format!(
        "{}\u{1f}{}\u{1f}{}",
        name.trim().to_lowercase(),
        numbers.join(","),
        email.trim().to_lowercase()
    )
}

/// Text of an import file: UTF-8 (BOM or not), UTF-16 with a BOM, else Windows-1252.
pub(crate) fn decode_text(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return String::from_utf8_lossy(rest).into_owned();
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, u16::from_le_bytes);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, u16::from_be_bytes);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => bytes.iter().map(|&b| windows_1252(b)).collect(),
    }
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> String {
    let units = bytes.chunks_exact(2).map(|pair| unit([pair[0], pair[1]]));
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

fn windows_1252(byte: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    match byte {
        0x80..=0x9F => HIGH
            .get(usize::from(byte - 0x80))
            .copied()
            .unwrap_or(char::REPLACEMENT_CHARACTER),
        _ => char::from(byte),
    }
}

/// What a CSV column holds, from its header.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    FullName,
    FirstName,
    MiddleName,
    LastName,
    Company,
    /// A phone column whose header implies the label ("Mobile Phone").
    Phone(&'static str),
    /// Google's numbered pairs: "Phone 1 - Value" and "Phone 1 - Type" / "Phone 1 - Label".
    PhoneValue(String),
    PhoneLabel(String),
    Email,
    Notes,
    Ignored,
}

fn classify(header: &str) -> Column {
    let h = header
        .trim()
        .trim_start_matches('\u{feff}')
        .trim_matches('"')
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(rest) = h.strip_prefix("phone ") {
        if let Some((n, kind)) = rest.split_once(" - ") {
            return match kind {
                "value" => Column::PhoneValue(n.to_string()),
                "type" | "label" => Column::PhoneLabel(n.to_string()),
                _ => Column::Ignored,
            };
        }
    }
    match h.as_str() {
        "name" | "full name" | "fullname" | "display name" | "contact name" | "formatted name"
        | "contact" => return Column::FullName,
        "first name" | "firstname" | "given name" | "first" => return Column::FirstName,
        "middle name" | "additional name" | "middle" => return Column::MiddleName,
        "last name" | "lastname" | "family name" | "surname" | "last" => return Column::LastName,
        "company"
        | "company name"
        | "organization"
        | "organisation"
        | "organization name"
        | "organisation name"
        | "organization 1 - name"
        | "org"
        | "account"
        | "account name" => return Column::Company,
        "notes" | "note" | "comments" | "comment" => return Column::Notes,
        _ => {}
    }
    let words: Vec<&str> = h
        .split([' ', '-', '\'', '_'])
        .filter(|w| !w.is_empty())
        .collect();
    let has = |w: &str| words.contains(&w);
    if has("fax") || has("pager") || has("telex") || has("type") || has("label") {
        return Column::Ignored;
    }
    if h.contains("mail") {
        return if has("display") {
            Column::Ignored
        } else {
            Column::Email
        };
    }
    let is_phone = has("phone")
        || has("mobile")
        || has("cell")
        || has("tel")
        || has("telephone")
        || has("callback");
    if !is_phone {
        return Column::Ignored;
    }
    let label = if has("mobile") || has("cell") {
        "mobile"
    } else if has("business") || has("work") || has("office") || has("company") {
        "work"
    } else if has("home") {
        "home"
    } else if has("assistant's") || has("assistant") {
        "assistant"
    } else if has("car") {
        "car"
    } else if has("primary") || has("main") {
        "main"
    } else if has("other") {
        "other"
    } else {
        ""
    };
    Column::Phone(label)
}

/// Google writes several values in one cell separated by " ::: ".
fn cell_values(cell: &str) -> impl Iterator<Item = &str> {
    cell.split(":::").map(str::trim).filter(|v| !v.is_empty())
}

fn google_label(label: &str) -> String {
    label.trim().trim_start_matches('*').trim().to_lowercase()
}

fn parse_csv(text: &str) -> ParsedContacts {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parsed = ParsedContacts::default();
    let mut items = csv::read(text, csv::detect_separator(text)).into_iter();
    let header = loop {
        match items.next() {
            Some(csv::Item::Record(record)) => break record,
            Some(csv::Item::Broken { line, reason }) => parsed.skipped.push((line, reason)),
            None => return parsed,
        }
    };
    let columns: Vec<Column> = header.fields.iter().map(|h| classify(h)).collect();
    let names_someone = columns.iter().any(|c| {
        matches!(
            c,
            Column::FullName | Column::FirstName | Column::LastName | Column::Company
        )
    });
    if !names_someone {
        parsed.skipped.push((
            header.line,
            "the header has no name column (expected Name, First Name / Last Name, or Company); \
             nothing was imported"
                .to_string(),
        ));
        return parsed;
    }
    for item in items {
        match item {
            csv::Item::Broken { line, reason } => parsed.skipped.push((line, reason)),
            csv::Item::Record(record) => match contact_from_row(&columns, &record.fields) {
                Ok(contact) => parsed.contacts.push((record.line, contact)),
                Err(Some(reason)) => parsed.skipped.push((record.line, reason)),
                Err(None) => {}
            },
        }
    }
    parsed
}

/// `Err(None)` for an empty row, which is not worth reporting.
fn contact_from_row(columns: &[Column], fields: &[String]) -> Result<NewContact, Option<String>> {
    if fields.iter().all(|f| f.trim().is_empty()) {
        return Err(None);
    }
    let extra = fields.get(columns.len()..).unwrap_or_default();
    if extra.iter().any(|f| !f.trim().is_empty()) {
        return Err(Some(format!(
            "the row has {} fields but the header has {}; check for an unquoted comma",
            fields.len(),
            columns.len()
        )));
    }
    let mut full_name = String::new();
    let (mut first, mut middle, mut last) = (String::new(), String::new(), String::new());
    let mut contact = NewContact::default();
    let mut notes: Vec<&str> = Vec::new();
    let mut google_phones: Vec<(String, String, String)> = Vec::new(); // (group, label, values)
    for (column, cell) in columns.iter().zip(fields) {
        let value = cell.trim();
        if value.is_empty() {
            continue;
        }
        match column {
            Column::FullName => full_name = value.to_string(),
            Column::FirstName => first = value.to_string(),
            Column::MiddleName => middle = value.to_string(),
            Column::LastName => last = value.to_string(),
            Column::Company => {
                if contact.company.is_empty() {
                    contact.company = value.to_string();
                }
            }
            Column::Phone(label) => {
                for number in cell_values(value) {
                    contact.phones.push(Phone::new(label, number));
                }
            }
            Column::PhoneValue(group) => match google_phones.iter_mut().find(|g| &g.0 == group) {
                Some(entry) => entry.2 = value.to_string(),
                None => google_phones.push((group.clone(), String::new(), value.to_string())),
            },
            Column::PhoneLabel(group) => match google_phones.iter_mut().find(|g| &g.0 == group) {
                Some(entry) => entry.1 = google_label(value),
                None => google_phones.push((group.clone(), google_label(value), String::new())),
            },
            Column::Email => {
                if contact.email.is_empty() {
                    contact.email = cell_values(value).next().unwrap_or_default().to_string();
                }
            }
            Column::Notes => notes.push(value),
            Column::Ignored => {}
        }
    }
    for (_, label, values) in &google_phones {
        for number in cell_values(values) {
            contact.phones.push(Phone::new(label, number));
        }
    }
    contact.name = if full_name.is_empty() {
        [first, middle, last]
            .iter()
            .filter(|p| !p.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        full_name
    };
    if contact.name.is_empty() {
        if contact.company.is_empty() {
            return Err(Some(
                "the row has no name and no company; it was skipped".into(),
            ));
        }
        contact.name.clone_from(&contact.company);
    }
    contact.notes = notes.join("\n");
    Ok(contact)
}

/// Contacts as CSV with a header that [`parse_contacts`] reads back: Name, Company, E-mail,
/// Notes, then "Phone N - Label" / "Phone N - Value" pairs for the most phones any contact has.
pub fn export_csv(contacts: &[Contact]) -> String {
    let most_phones = contacts.iter().map(|c| c.phones.len()).max().unwrap_or(0);
    let mut header: Vec<String> = ["Name", "Company", "E-mail", "Notes"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for n in 1..=most_phones {
        header.push(format!("Phone {n} - Label"));
        header.push(format!("Phone {n} - Value"));
    }
    let mut out = String::new();
    csv::write_record(&mut out, &header);
    for contact in contacts {
        let mut row = vec![
            contact.name.as_str(),
            contact.company.as_str(),
            contact.email.as_str(),
            contact.notes.as_str(),
        ];
        for n in 0..most_phones {
            match contact.phones.get(n) {
                Some(phone) => {
                    row.push(&phone.label);
                    row.push(&phone.number);
                }
                None => row.extend(["", ""]),
            }
        }
        csv::write_record(&mut out, &row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/contacts")
            .join(name)
    }

    fn names(store: &Store) -> Vec<String> {
        store
            .contacts()
            .expect("contacts")
            .into_iter()
            .map(|c| c.name)
            .collect()
    }

    fn numbers(contact: &Contact) -> Vec<(String, String)> {
        contact
            .phones
            .iter()
            .map(|p| (p.label.clone(), p.number.clone()))
            .collect()
    }

    fn find(store: &Store, name: &str) -> Contact {
        store
            .contacts()
            .expect("contacts")
            .into_iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name} was not imported"))
    }

    fn skipped_lines(report: &ImportReport) -> Vec<usize> {
        report.skipped.iter().map(|(l, _)| *l).collect()
    }

    #[test]
    fn columns_are_recognised_from_common_headers() {
        assert_eq!(classify("Name"), Column::FullName);
        assert_eq!(classify("\u{feff}\"First Name\""), Column::FirstName);
        assert_eq!(classify("Family Name"), Column::LastName);
        assert_eq!(classify("Organization 1 - Name"), Column::Company);
        assert_eq!(classify("Organization Name"), Column::Company);
        assert_eq!(classify("Mobile Phone"), Column::Phone("mobile"));
        assert_eq!(classify("Business Phone 2"), Column::Phone("work"));
        assert_eq!(classify("Company Main Phone"), Column::Phone("work"));
        assert_eq!(classify("Home Phone"), Column::Phone("home"));
        assert_eq!(classify("Assistant's Phone"), Column::Phone("assistant"));
        assert_eq!(classify("Phone"), Column::Phone(""));
        assert_eq!(classify("Business Fax"), Column::Ignored);
        assert_eq!(classify("Phone 1 - Value"), Column::PhoneValue("1".into()));
        assert_eq!(classify("Phone 2 - Label"), Column::PhoneLabel("2".into()));
        assert_eq!(classify("Phone 2 - Type"), Column::PhoneLabel("2".into()));
        assert_eq!(classify("E-mail Address"), Column::Email);
        assert_eq!(classify("E-mail 1 - Value"), Column::Email);
        assert_eq!(classify("E-mail 1 - Type"), Column::Ignored);
        assert_eq!(classify("E-mail Display Name"), Column::Ignored);
        assert_eq!(classify("Notes"), Column::Notes);
        assert_eq!(classify("Birthday"), Column::Ignored);
    }

    #[test]
    fn google_contacts_csv() {
        let mut store = Store::open_in_memory().expect("open_in_memory");
        let report = store.import_file(&data("google.csv")).expect("import_file");
        assert_eq!(report.imported, 4, "{report:?}");
        assert_eq!(skipped_lines(&report), [7], "{report:?}");
        assert!(
            report.skipped[0].1.contains("no name and no company"),
            "{report:?}"
        );
        let ada = find(&store, "Ada King Lovelace");
        assert_eq!(ada.company, "Analytical Engines Ltd");
        assert_eq!(ada.email, "ada@engines.example");
        assert_eq!(
            numbers(&ada),
            [
                ("mobile".into(), "+447700900123".into()),
                ("work".into(), "+442079460000".into()),
                ("work".into(), "+442079460001".into()),
            ]
        );
        let hopper = find(&store, "Grace Hopper");
        assert_eq!(
            hopper.notes,
            "Met at the conference, 2026.\nAsk about \"COBOL\"."
        );
        assert_eq!(numbers(&hopper), [("mobile".into(), "+16506913277".into())]);
    }

    #[test]
    fn outlook_csv_in_windows_1252() {
        let mut store = Store::open_in_memory().expect("open_in_memory");
        store.set_default_calling_code(Some("33"));
        let report = store
            .import_file(&data("outlook.csv"))
            .expect("import_file");
        assert_eq!(report.imported, 3, "{report:?}");
        assert_eq!(skipped_lines(&report), [4], "{report:?}");
        assert!(
            report.skipped[0].1.contains("fields but the header has"),
            "{report:?}"
        );
        let andre = find(&store, "André Dupont");
        assert_eq!(andre.company, "Société Générale d’Essai");
        assert_eq!(andre.email, "andre.dupont@essai.example");
        assert_eq!(
            numbers(&andre),
            [
                ("work".into(), "+33123456789".into()),
                ("mobile".into(), "+33612345678".into()),
            ]
        );
        let noor = find(&store, "Noor Haddad");
        assert_eq!(numbers(&noor), [("home".into(), "+97143000000".into())]);
        assert_eq!(find(&store, "Acme Logistics").company, "Acme Logistics");
    }

    #[test]
    fn ios_vcard_3() {
        let mut store = Store::open_in_memory().expect("open_in_memory");
        let report = store.import_file(&data("ios.vcf")).expect("import_file");
        assert_eq!(report.imported, 3, "{report:?}");
        assert_eq!(skipped_lines(&report), [25], "{report:?}");
        let tim = find(&store, "Timothy Apple");
        assert_eq!(tim.company, "Fruit Computers");
        assert_eq!(
            numbers(&tim),
            [
                ("mobile".into(), "+14089961010".into()),
                ("main".into(), "+14089960000".into()),
            ]
        );
        assert_eq!(
            tim.notes,
            "Prefers email, not calls; urgent only.\nAssistant: Jo"
        );
        let ines = find(&store, "Inès Álvarez");
        assert_eq!(ines.email, "ines@correo.example");
    }

    #[test]
    fn vcard_4() {
        let mut store = Store::open_in_memory().expect("open_in_memory");
        let report = store
            .import_file(&data("contacts-v4.vcf"))
            .expect("import_file");
        assert_eq!(report.imported, 2, "{report:?}");
        assert_eq!(skipped_lines(&report), [14], "{report:?}");
        assert_eq!(report.warnings.len(), 1, "{report:?}");
        let lin = find(&store, "Lin Wei");
        assert_eq!(
            numbers(&lin),
            [
                ("work".into(), "+862112345678".into()),
                ("mobile".into(), "+8613800138000".into()),
            ]
        );
        assert_eq!(lin.email, "lin.wei@work.example");
        assert_eq!(names(&store), ["Lin Wei", "Olu Adeyemi"]);
    }

    #[test]
    fn importing_twice_adds_nothing() {
        let mut store = Store::open_in_memory().expect("open_in_memory");
        let first = store.import_file(&data("ios.vcf")).expect("import_file");
        let second = store.import_file(&data("ios.vcf")).expect("import_file");
        assert_eq!(second.imported, 0);
        assert_eq!(second.skipped.len(), first.imported + first.skipped.len());
        assert!(second
            .skipped
            .iter()
            .any(|(_, r)| r.contains("already in the store")));
        assert_eq!(
            store.contact_count().expect("contact_count"),
            first.imported as u64
        );
    }

    #[test]
    fn export_round_trips_through_import() {
        let mut source = Store::open_in_memory().expect("open_in_memory");
        for file in ["google.csv", "ios.vcf", "contacts-v4.vcf"] {
            source.import_file(&data(file)).expect("import_file");
        }
        source
            .add_contact(
                &NewContact::named("Quote \"Q\" Person, Jr.")
                    .with_company("Commas, Inc.")
                    .with_notes("two\nlines, and \"quotes\"")
                    .with_phone("", "1001"),
            )
            .expect("add_contact");
        let exported = source.export_contacts_csv().expect("export_contacts_csv");
        let mut copy = Store::open_in_memory().expect("open_in_memory");
        let report = copy
            .import_contacts(&exported, ImportFormat::Csv)
            .expect("import_contacts");
        assert!(report.skipped.is_empty(), "{report:?}");
        type Flat = (String, String, String, String, Vec<(String, String)>);
        let strip = |contacts: Vec<Contact>| -> Vec<Flat> {
            contacts
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        c.company.clone(),
                        c.email.clone(),
                        c.notes.clone(),
                        numbers(c),
                    )
                })
                .collect()
        };
        let original = strip(source.contacts().expect("contacts"));
        assert_eq!(original.len(), 10);
        assert_eq!(strip(copy.contacts().expect("contacts")), original);
    }

    #[test]
    fn export_has_one_label_value_pair_per_phone() {
        let contacts = vec![Contact {
            id: ContactId(1),
            name: "Ann".into(),
            company: String::new(),
            phones: vec![Phone::new("work", "+33 1 23 45 67 89")],
            email: "ann@x.example".into(),
            notes: String::new(),
        }];
        assert_eq!(
            export_csv(&contacts),
            "Name,Company,E-mail,Notes,Phone 1 - Label,Phone 1 - Value\r\nAnn,,ann@x.example,,work,+33123456789\r\n"
        );
        assert_eq!(export_csv(&[]), "Name,Company,E-mail,Notes\r\n");
    }

    #[test]
    fn a_header_without_names_imports_nothing() {
        let mut store = Store::open_in_memory().expect("open_in_memory");
        let report = store
            .import_contacts("Phone,Email\n+1 555 0100,a@b.example\n", ImportFormat::Csv)
            .expect("import_contacts");
        assert_eq!(report.imported, 0);
        assert_eq!(skipped_lines(&report), [1]);
    }

    #[test]
    fn text_decoding() {
        assert_eq!(decode_text(b"\xEF\xBB\xBFName"), "Name");
        assert_eq!(decode_text(b"\xFF\xFEN\x00\xE9\x00"), "Né");
        assert_eq!(decode_text(b"\xFE\xFF\x00N\x00\xE9"), "Né");
        assert_eq!(decode_text(b"Caf\xE9 \x80 \x92"), "Café € ’");
        assert_eq!(decode_text("déjà".as_bytes()), "déjà");
        assert_eq!(decode_text(b"\xFF\xFEN"), "");
    }

    #[test]
    fn format_detection() {
        let p = Path::new;
        assert_eq!(
            ImportFormat::detect(p("a.VCF"), ""),
            Some(ImportFormat::VCard)
        );
        assert_eq!(
            ImportFormat::detect(p("a.csv"), "BEGIN:VCARD"),
            Some(ImportFormat::Csv)
        );
        assert_eq!(
            ImportFormat::detect(p("export"), "\u{feff} begin:vcard\n"),
            Some(ImportFormat::VCard)
        );
        assert_eq!(
            ImportFormat::detect(p("export"), "Name;Phone\n"),
            Some(ImportFormat::Csv)
        );
        assert_eq!(ImportFormat::detect(p("export"), "hello"), None);
        let mut store = Store::open_in_memory().expect("open_in_memory");
        let err = store
            .import_file(p("/nonexistent/contacts.vcf"))
            .expect_err("must fail")
            .to_string();
        assert!(
            err.starts_with("cannot read /nonexistent/contacts.vcf"),
            "{err}"
        );
    }
}
