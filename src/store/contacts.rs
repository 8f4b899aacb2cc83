//! Contacts and their phone numbers; caller lookup by normalised number.

use rusqlite::{params, Connection, OptionalExtension};

use super::phone::{is_e164, normalize_phone, suffix_key};
use super::{Result, Store, StoreError};

/// Fewest significant digits for a suffix match: fewer would let short extensions match
/// unrelated numbers.
const MIN_SUFFIX_DIGITS: usize = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContactId(pub i64);

impl std::fmt::Display for ContactId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// One phone number of a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    /// "mobile", "work", "home", or whatever the source called it; may be empty.
    pub label: String,
    /// As the user or the imported file wrote it.
    pub raw: String,
    /// [`normalize_phone`] of `raw`: E.164 when possible. The store recomputes it on every save
    /// with its default calling code, so callers may leave it stale.
    pub number: String,
}

impl Phone {
    pub fn new(label: &str, raw: &str) -> Self {
        Phone {
            label: label.trim().to_string(),
            raw: raw.trim().to_string(),
            number: normalize_phone(raw, None),
        }
    }
}

/// A contact to be created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewContact {
    pub name: String,
    pub company: String,
    pub phones: Vec<Phone>,
    pub email: String,
    pub notes: String,
}

impl NewContact {
    pub fn named(name: &str) -> Self {
        NewContact {
            name: name.to_string(),
            ..NewContact::default()
        }
    }

    pub fn with_company(mut self, company: &str) -> Self {
        self.company = company.to_string();
        self
    }

    pub fn with_phone(mut self, label: &str, raw: &str) -> Self {
        self.phones.push(Phone::new(label, raw));
        self
    }

    pub fn with_email(mut self, email: &str) -> Self {
        self.email = email.to_string();
        self
    }

    pub fn with_notes(mut self, notes: &str) -> Self {
        self.notes = notes.to_string();
        self
    }
}

/// A stored contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: ContactId,
    pub name: String,
    pub company: String,
    pub phones: Vec<Phone>,
    pub email: String,
    pub notes: String,
}

impl Contact {
    /// The number to dial by default: the first one.
    pub fn primary_number(&self) -> Option<&str> {
        self.phones.first().map(|p| p.number.as_str())
    }
}

pub(crate) const SELECT_BY_NUMBER: &str =
    "SELECT contact_id FROM contact_phones WHERE number = ?1 ORDER BY contact_id LIMIT 1";
/// Stored numbers whose last digits are the caller's significant digits.
pub(crate) const SELECT_BY_SUFFIX: &str = "SELECT DISTINCT contact_id FROM contact_phones
     WHERE digits_rev >= ?1 AND digits_rev < ?1 || ':' LIMIT 2";
/// Stored national numbers whose significant digits are the caller's last digits.
pub(crate) const SELECT_BY_KEY: &str =
    "SELECT DISTINCT contact_id FROM contact_phones WHERE digits_rev = ?1 LIMIT 2";

impl Store {
    pub fn add_contact(&mut self, contact: &NewContact) -> Result<ContactId> {
        let code = self.default_calling_code.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(|source| query_error(&self.path, "adding a contact", source))?;
        let id = insert_contact(&tx, contact, code.as_deref())?
            .map_err(|source| query_error(&self.path, "adding a contact", source))?;
        tx.commit()
            .map_err(|source| query_error(&self.path, "adding a contact", source))?;
        Ok(id)
    }

    /// Saves every field of `contact`, its phones replacing the stored ones.
    pub fn update_contact(&mut self, contact: &Contact) -> Result<()> {
        let (name, company) = name_and_company(&contact.name, &contact.company)?;
        let code = self.default_calling_code.clone();
        let path = self.path.clone();
        let err = |source| query_error(&path, "saving a contact", source);
        let tx = self.conn.transaction().map_err(err)?;
        let changed = tx
            .execute(
                "UPDATE contacts SET name = ?2, company = ?3, email = ?4, notes = ?5 WHERE id = ?1",
                params![
                    contact.id.0,
                    name,
                    company,
                    contact.email.trim(),
                    contact.notes.trim()
                ],
            )
            .map_err(err)?;
        if changed == 0 {
            return Err(StoreError::ContactNotFound(contact.id.0));
        }
        tx.execute(
            "DELETE FROM contact_phones WHERE contact_id = ?1",
            [contact.id.0],
        )
        .map_err(err)?;
        insert_phones(&tx, contact.id, &contact.phones, code.as_deref()).map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Deletes a contact and its phones; its activities and calls keep their rows, unlinked.
    pub fn delete_contact(&mut self, id: ContactId) -> Result<()> {
        let deleted = self
            .conn
            .execute("DELETE FROM contacts WHERE id = ?1", [id.0])
            .map_err(self.query_err("deleting a contact"))?;
        if deleted == 0 {
            return Err(StoreError::ContactNotFound(id.0));
        }
        Ok(())
    }

    pub fn contact(&self, id: ContactId) -> Result<Option<Contact>> {
        load_contact(&self.conn, id).map_err(self.query_err("reading a contact"))
    }

    pub fn contact_count(&self) -> Result<u64> {
        let count: i64 = self
            .conn
            .query_row("SELECT count(*) FROM contacts", [], |row| row.get(0))
            .map_err(self.query_err("counting contacts"))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Every contact with its phones, by name (case-insensitive), then id.
    pub fn contacts(&self) -> Result<Vec<Contact>> {
        load_all(&self.conn).map_err(self.query_err("listing contacts"))
    }

    /// Caller lookup: the contact owning `number`, however it is written ("+33 1 23 45 67 89",
    /// "0033123456789", or "01 23 45 67 89" with calling code 33).
    ///
    /// An exact match on the normalised number comes first (indexed). Failing that, when either
    /// side lacks the country code, numbers agreeing on their last significant digits (at least
    /// 7) match, but only if exactly one contact does, so a guess never names the wrong person.
    pub fn contact_by_number(&self, number: &str) -> Result<Option<Contact>> {
        let normalized = normalize_phone(number, self.default_calling_code.as_deref());
        if normalized.is_empty() {
            return Ok(None);
        }
        let err = self.query_err("looking up a caller");
        let exact: Option<i64> = self
            .conn
            .query_row(SELECT_BY_NUMBER, [&normalized], |row| row.get(0))
            .optional()
            .map_err(&err)?;
        let id = match exact {
            Some(id) => Some(id),
            None => by_suffix(&self.conn, &normalized).map_err(&err)?,
        };
        match id {
            Some(id) => load_contact(&self.conn, ContactId(id)).map_err(err),
            None => Ok(None),
        }
    }
}

fn by_suffix(conn: &Connection, normalized: &str) -> rusqlite::Result<Option<i64>> {
    let key = suffix_key(normalized);
    if key.len() < MIN_SUFFIX_DIGITS || !normalized.bytes().all(|b| b == b'+' || b.is_ascii_digit())
    {
        return Ok(None);
    }
    let mut found: Vec<i64> = Vec::new();
    {
        // The caller's number is the shorter one: stored numbers ending with it.
        let mut stmt = conn.prepare(SELECT_BY_SUFFIX)?;
        for id in stmt.query_map([&key], |row| row.get(0))? {
            found.push(id?);
        }
    }
    if is_e164(normalized) {
        // The stored number is the shorter one: a national number equal to one of our suffixes.
        let mut stmt = conn.prepare(SELECT_BY_KEY)?;
        for len in MIN_SUFFIX_DIGITS..key.len() {
            let Some(suffix) = key.get(..len) else {
                break;
            };
            for id in stmt.query_map([suffix], |row| row.get(0))? {
                found.push(id?);
            }
        }
    }
    found.sort_unstable();
    found.dedup();
    Ok(match found.as_slice() {
        [only] => Some(*only),
        _ => None,
    })
}

pub(crate) fn query_error(path: &str, action: &'static str, source: rusqlite::Error) -> StoreError {
    StoreError::Query {
        path: path.to_string(),
        action,
        error: source,
    }
}

/// A contact needs a name; a company alone will do, and then serves as the name.
fn name_and_company<'a>(name: &'a str, company: &'a str) -> Result<(&'a str, &'a str)> {
    let (name, company) = (name.trim(), company.trim());
    match (name.is_empty(), company.is_empty()) {
        (false, _) => Ok((name, company)),
        (true, false) => Ok((company, company)),
        (true, true) => Err(StoreError::EmptyName),
    }
}

/// Inserts inside the caller's transaction. The outer `Result` is for a contact the store
/// refuses, the inner one for SQLite failures.
pub(crate) fn insert_contact(
    conn: &Connection,
    contact: &NewContact,
    calling_code: Option<&str>,
) -> Result<rusqlite::Result<ContactId>> {
    let (name, company) = name_and_company(&contact.name, &contact.company)?;
    Ok((|| {
        conn.execute(
            "INSERT INTO contacts (name, company, email, notes) VALUES (?1, ?2, ?3, ?4)",
            params![name, company, contact.email.trim(), contact.notes.trim()],
        )?;
        let id = ContactId(conn.last_insert_rowid());
        insert_phones(conn, id, &contact.phones, calling_code)?;
        Ok(id)
    })())
}

fn insert_phones(
    conn: &Connection,
    id: ContactId,
    phones: &[Phone],
    calling_code: Option<&str>,
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(
        "INSERT INTO contact_phones (contact_id, position, label, raw, number, digits_rev)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let kept = phones.iter().filter(|p| !p.raw.trim().is_empty());
    for (position, phone) in kept.enumerate() {
        let number = normalize_phone(&phone.raw, calling_code);
        stmt.execute(params![
            id.0,
            i64::try_from(position).unwrap_or(i64::MAX),
            phone.label.trim(),
            phone.raw.trim(),
            number,
            suffix_key(&number),
        ])?;
    }
    Ok(())
}

fn load_contact(conn: &Connection, id: ContactId) -> rusqlite::Result<Option<Contact>> {
    let contact = conn
        .query_row(
            "SELECT id, name, company, email, notes FROM contacts WHERE id = ?1",
            [id.0],
            contact_row,
        )
        .optional()?;
    let Some(mut contact) = contact else {
        return Ok(None);
    };
    let mut stmt = conn.prepare(
        "SELECT label, raw, number FROM contact_phones WHERE contact_id = ?1 ORDER BY position",
    )?;
    contact.phones = stmt
        .query_map([id.0], phone_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(contact))
}

fn load_all(conn: &Connection) -> rusqlite::Result<Vec<Contact>> {
    let mut stmt = conn.prepare(
        "SELECT id, name, company, email, notes FROM contacts ORDER BY name COLLATE NOCASE, id",
    )?;
    let mut contacts: Vec<Contact> = stmt
        .query_map([], contact_row)?
        .collect::<rusqlite::Result<_>>()?;
    let mut position_of: std::collections::HashMap<i64, usize> =
        std::collections::HashMap::with_capacity(contacts.len());
    for (i, c) in contacts.iter().enumerate() {
        position_of.insert(c.id.0, i);
    }
    let mut stmt = conn.prepare(
        "SELECT contact_id, label, raw, number FROM contact_phones ORDER BY contact_id, position",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let owner: i64 = row.get(0)?;
        if let Some(contact) = position_of.get(&owner).and_then(|&i| contacts.get_mut(i)) {
            contact.phones.push(Phone {
                label: row.get(1)?,
                raw: row.get(2)?,
                number: row.get(3)?,
            });
        }
    }
    Ok(contacts)
}

fn contact_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Contact> {
    Ok(Contact {
        id: ContactId(row.get(0)?),
        name: row.get(1)?,
        company: row.get(2)?,
        phones: Vec::new(),
        email: row.get(3)?,
        notes: row.get(4)?,
    })
}

fn phone_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Phone> {
    Ok(Phone {
        label: row.get(0)?,
        raw: row.get(1)?,
        number: row.get(2)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store::open_in_memory().expect("open_in_memory")
    }

    fn marie() -> NewContact {
        NewContact::named("Marie Curie")
            .with_company("Institut du Radium")
            .with_phone("work", "+33 1 23 45 67 89")
            .with_phone("mobile", "06 12 34 56 78")
            .with_email("marie@radium.example")
            .with_notes("Prefers mornings")
    }

    #[test]
    fn add_read_update_delete() {
        let mut store = store();
        store.set_default_calling_code(Some("33"));
        let id = store.add_contact(&marie()).expect("add_contact");
        let mut saved = store.contact(id).expect("contact").expect("present");
        assert_eq!(saved.name, "Marie Curie");
        assert_eq!(saved.company, "Institut du Radium");
        assert_eq!(saved.email, "marie@radium.example");
        assert_eq!(saved.notes, "Prefers mornings");
        let numbers: Vec<(&str, &str, &str)> = saved
            .phones
            .iter()
            .map(|p| (p.label.as_str(), p.raw.as_str(), p.number.as_str()))
            .collect();
        assert_eq!(
            numbers,
            [
                ("work", "+33 1 23 45 67 89", "+33123456789"),
                ("mobile", "06 12 34 56 78", "+33612345678"),
            ]
        );
        assert_eq!(saved.primary_number(), Some("+33123456789"));

        saved.notes = "Prefers afternoons".into();
        saved.phones.remove(0);
        saved.phones.push(Phone::new("home", "01 98 76 54 32"));
        store.update_contact(&saved).expect("update_contact");
        let again = store.contact(id).expect("contact").expect("present");
        assert_eq!(again.notes, "Prefers afternoons");
        let numbers: Vec<&str> = again.phones.iter().map(|p| p.number.as_str()).collect();
        assert_eq!(numbers, ["+33612345678", "+33198765432"]);
        assert_eq!(
            store
                .contact_by_number("+33123456789")
                .expect("contact_by_number"),
            None
        );

        store.delete_contact(id).expect("delete_contact");
        assert_eq!(store.contact(id).expect("contact"), None);
        assert!(
            matches!(store.delete_contact(id), Err(StoreError::ContactNotFound(n)) if n == id.0)
        );
        assert!(matches!(
            store.update_contact(&again),
            Err(StoreError::ContactNotFound(_))
        ));
        let orphans: i64 = store
            .conn
            .query_row("SELECT count(*) FROM contact_phones", [], |r| r.get(0))
            .expect("query_row");
        assert_eq!(orphans, 0, "phones go with their contact");
    }

    #[test]
    fn a_contact_needs_a_name_or_a_company() {
        let mut store = store();
        assert!(matches!(
            store.add_contact(&NewContact::named("  ").with_phone("", "1001")),
            Err(StoreError::EmptyName)
        ));
        let id = store
            .add_contact(&NewContact::named("").with_company("Acme Corp"))
            .expect("add_contact");
        assert_eq!(
            store.contact(id).expect("contact").expect("present").name,
            "Acme Corp"
        );
        assert_eq!(store.contact_count().expect("contact_count"), 1);
    }

    #[test]
    fn list_is_sorted_by_name_with_phones_attached() {
        let mut store = store();
        store
            .add_contact(&NewContact::named("bob Stone").with_phone("", "1002"))
            .expect("add_contact");
        store
            .add_contact(
                &NewContact::named("Alice Martin")
                    .with_phone("a", "1001")
                    .with_phone("b", "1003"),
            )
            .expect("add_contact");
        store
            .add_contact(&NewContact::named("Zoé Lambert"))
            .expect("add_contact");
        let list = store.contacts().expect("contacts");
        let names: Vec<&str> = list.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["Alice Martin", "bob Stone", "Zoé Lambert"]);
        assert_eq!(list[0].phones.len(), 2);
        assert_eq!(list[1].phones[0].number, "1002");
        assert!(list[2].phones.is_empty());
    }

    #[test]
    fn caller_lookup_accepts_every_spelling() {
        let mut store = store();
        let id = store.add_contact(&marie()).expect("add_contact");
        for spelling in [
            "+33 1 23 45 67 89",
            "0033123456789",
            "+33123456789",
            "tel:+33-1-23-45-67-89",
        ] {
            let found = store
                .contact_by_number(spelling)
                .expect("contact_by_number");
            assert_eq!(found.map(|c| c.id), Some(id), "{spelling}");
        }
        // National caller IDs (a PBX that strips the country code) match by their last digits.
        assert_eq!(
            store
                .contact_by_number("01 23 45 67 89")
                .expect("contact_by_number")
                .map(|c| c.id),
            Some(id)
        );
        // With the calling code set, the national form is exact.
        store.set_default_calling_code(Some("33"));
        assert_eq!(
            store
                .contact_by_number("01 23 45 67 89")
                .expect("contact_by_number")
                .map(|c| c.id),
            Some(id)
        );
        assert_eq!(
            store
                .contact_by_number("+33 1 23 45 67 80")
                .expect("contact_by_number"),
            None
        );
        assert_eq!(
            store.contact_by_number("").expect("contact_by_number"),
            None
        );
        assert_eq!(
            store
                .contact_by_number("anonymous")
                .expect("contact_by_number"),
            None
        );
    }

    #[test]
    fn a_stored_national_number_matches_an_e164_caller() {
        let mut store = store();
        // Saved before any calling code was configured: kept as national digits.
        let id = store
            .add_contact(&NewContact::named("Paul Langevin").with_phone("", "01 45 67 89 10"))
            .expect("add_contact");
        assert_eq!(
            store.contact(id).expect("contact").expect("present").phones[0].number,
            "0145678910"
        );
        assert_eq!(
            store
                .contact_by_number("+33 1 45 67 89 10")
                .expect("contact_by_number")
                .map(|c| c.id),
            Some(id)
        );
    }

    #[test]
    fn suffix_guesses_need_enough_digits_and_one_owner() {
        let mut store = store();
        store
            .add_contact(&NewContact::named("Ext").with_phone("", "+33 1 00 00 10 01"))
            .expect("add_contact");
        // A short extension must not be taken for the end of a full number.
        assert_eq!(
            store.contact_by_number("1001").expect("contact_by_number"),
            None
        );
        // Two contacts in two countries share the last nine digits: no guess.
        store
            .add_contact(&NewContact::named("Paris").with_phone("", "+33 1 23 45 67 89"))
            .expect("add_contact");
        store
            .add_contact(&NewContact::named("Brussels").with_phone("", "+32 1 23 45 67 89"))
            .expect("add_contact");
        assert_eq!(
            store
                .contact_by_number("0123456789")
                .expect("contact_by_number"),
            None
        );
        // The exact number still wins.
        assert_eq!(
            store
                .contact_by_number("+32123456789")
                .expect("contact_by_number")
                .expect("present")
                .name,
            "Brussels"
        );
    }

    fn plan(store: &Store, sql: &str) -> String {
        let mut stmt = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("prepare");
        let rows = stmt
            .query_map(["x"], |r| r.get::<_, String>(3))
            .expect("query_map");
        rows.map(|r| r.expect("row")).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn caller_lookup_uses_the_indexes() {
        let store = store();
        let exact = plan(&store, SELECT_BY_NUMBER);
        assert!(
            exact.contains("USING COVERING INDEX contact_phones_number"),
            "{exact}"
        );
        let suffix = plan(&store, SELECT_BY_SUFFIX);
        assert!(
            suffix.contains("INDEX contact_phones_digits_rev (digits_rev>? AND digits_rev<?)"),
            "{suffix}"
        );
        let key = plan(&store, SELECT_BY_KEY);
        assert!(
            key.contains("INDEX contact_phones_digits_rev (digits_rev=?)"),
            "{key}"
        );
    }
}
