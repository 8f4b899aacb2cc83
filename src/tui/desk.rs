//! The agent's desk in the dashboard: what the Recent, Next Activities and Contacts tabs show,
//! their selections, the caller-name cache, and the inline activity form. The rows arrive from
//! the store as [`DeskUpdate`]s; changes leave as [`DeskRequest`]s through the app's commands.
//! Pure state, tested with plain values like the rest of the app.

use std::collections::HashMap;

use crate::store::{
    Activity, ActivityEdit, ActivityId, ActivityItem, ActivityKind, CallDirection, CallOutcome,
    CallRecord, CivilDate, Contact, ContactId, DeskUpdate, NewActivity, SearchFor,
};

use super::app::Tab;
use super::keymap::{Key, KeyCode};

/// Names kept for waiting callers before the cache starts over.
const NAME_CACHE_CAPACITY: usize = 10_000;
const FIELD_MAX_CHARS: usize = 200;

/// What the tabs show.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Desk {
    /// Whether a store is behind the tabs (no store: the tabs say why they stay empty).
    pub available: bool,
    pub recent: Vec<CallRecord>,
    pub missed_only: bool,
    pub activities: Vec<ActivityItem>,
    /// The date the activities were listed for (overdue is before it).
    pub today: Option<CivilDate>,
    pub contacts: Vec<Contact>,
    /// The Contacts tab's search text.
    pub query: String,
    /// Selected row per tab: Recent, Next Activities, Contacts.
    pub selected: [usize; 3],
    /// Number → contact name, for waiting queue callers (`None`: asked, or nobody).
    pub names: HashMap<String, Option<String>>,
}

impl Desk {
    pub fn len(&self, tab: Tab) -> usize {
        match tab {
            Tab::Recent => self.recent.len(),
            Tab::NextActivities => self.activities.len(),
            Tab::Contacts => self.contacts.len(),
        }
    }

    pub fn selected(&self, tab: Tab) -> usize {
        self.selected[tab_index(tab)]
    }

    /// Moves the tab's selection by `delta` rows, within the list.
    pub fn move_selection(&mut self, tab: Tab, delta: i64) {
        let len = self.len(tab);
        let slot = &mut self.selected[tab_index(tab)];
        let moved = i64::try_from(*slot).unwrap_or(0).saturating_add(delta);
        *slot = usize::try_from(moved.max(0))
            .unwrap_or(0)
            .min(len.saturating_sub(1));
    }

    pub fn select(&mut self, tab: Tab, row: usize) {
        self.selected[tab_index(tab)] = row.min(self.len(tab).saturating_sub(1));
    }

    pub fn selected_call(&self) -> Option<&CallRecord> {
        self.recent.get(self.selected(Tab::Recent))
    }

    pub fn selected_activity(&self) -> Option<&ActivityItem> {
        self.activities.get(self.selected(Tab::NextActivities))
    }

    pub fn selected_contact(&self) -> Option<&Contact> {
        self.contacts.get(self.selected(Tab::Contacts))
    }

    pub fn overdue(&self) -> usize {
        self.today.map_or(0, |today| {
            self.activities
                .iter()
                .filter(|i| i.activity.is_overdue(today))
                .count()
        })
    }

    /// The contact name for a waiting caller's number, once the store answered.
    pub fn name_of(&self, number: &str) -> Option<&str> {
        self.names.get(number).and_then(|n| n.as_deref())
    }

    /// Numbers not asked about yet; they are marked as asked.
    pub fn unknown_numbers<'a>(&mut self, numbers: impl Iterator<Item = &'a str>) -> Vec<String> {
        let mut ask = Vec::new();
        for number in numbers {
            if number.is_empty() || self.names.contains_key(number) {
                continue;
            }
            if self.names.len() >= NAME_CACHE_CAPACITY {
                self.names.clear();
            }
            self.names.insert(number.to_owned(), None);
            ask.push(number.to_owned());
        }
        ask
    }

    /// Applies a store update to the tab rows (search results for the dial prompt, cards and
    /// notices are the app's business and are ignored here).
    pub fn apply(&mut self, update: &DeskUpdate) {
        match update {
            DeskUpdate::Recent { missed_only, calls } => {
                self.missed_only = *missed_only;
                self.recent = calls.clone();
            }
            DeskUpdate::Activities { today, items } => {
                self.today = Some(*today);
                self.activities = items.clone();
            }
            DeskUpdate::Contacts {
                query,
                purpose: SearchFor::Tab,
                hits,
            } => {
                // A late answer to an older keystroke must not replace a newer one.
                if *query == self.query {
                    self.contacts = hits.clone();
                    self.selected[tab_index(Tab::Contacts)] = 0;
                }
            }
            DeskUpdate::Names(names) => {
                for (number, name) in names {
                    self.names.insert(number.clone(), name.clone());
                }
            }
            DeskUpdate::Contacts { .. }
            | DeskUpdate::Card { .. }
            | DeskUpdate::Done(_)
            | DeskUpdate::Failed(_) => {}
        }
        for tab in Tab::ALL {
            let len = self.len(tab);
            let slot = &mut self.selected[tab_index(tab)];
            *slot = (*slot).min(len.saturating_sub(1));
        }
    }
}

fn tab_index(tab: Tab) -> usize {
    match tab {
        Tab::Recent => 0,
        Tab::NextActivities => 1,
        Tab::Contacts => 2,
    }
}

/// Who a history row is with: the contact's name, else the number.
pub fn call_party(call: &CallRecord) -> &str {
    call.contact_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(&call.remote_number)
}

pub fn direction_arrow(direction: CallDirection) -> &'static str {
    match direction {
        CallDirection::Inbound => "←",
        CallDirection::Outbound => "→",
    }
}

/// The word the Recent tab shows for an outcome (`None`: still going).
pub fn outcome_label(outcome: Option<CallOutcome>) -> &'static str {
    match outcome {
        None => "in call",
        Some(CallOutcome::Answered) => "answered",
        Some(CallOutcome::Missed) => "missed",
        Some(CallOutcome::Rejected) => "rejected",
        Some(CallOutcome::Busy) => "busy",
        Some(CallOutcome::Failed) => "failed",
        Some(CallOutcome::Transferred) => "transferred",
        Some(CallOutcome::Interrupted) => "interrupted",
    }
}

pub fn kind_label(kind: ActivityKind) -> &'static str {
    match kind {
        ActivityKind::Call => "Call",
        ActivityKind::Email => "Email",
        ActivityKind::Todo => "To-do",
    }
}

/// `today`, `tomorrow`, `+N` (days from today) or `YYYY-MM-DD`.
pub fn parse_due(text: &str, today: CivilDate) -> Result<CivilDate, String> {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    let relative = match lower.as_str() {
        "today" => Some(Some(0)),
        "tomorrow" => Some(Some(1)),
        _ => lower.strip_prefix('+').map(|days| {
            days.trim()
                .parse::<i64>()
                .ok()
                .filter(|d| (0..=3650).contains(d))
        }),
    };
    match relative {
        Some(Some(days)) => today
            .add_days(days)
            .ok_or_else(|| format!("{text:?} is past the calendar's end")),
        Some(None) => Err(format!(
            "{text:?}: write +N with N from 0 to 3650 days, e.g. +3"
        )),
        None => text
            .parse::<CivilDate>()
            .map_err(|e| format!("{e} (or today, tomorrow, +N days)")),
    }
}

/// Which field of the activity form has the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormField {
    Kind,
    Summary,
    Due,
    Note,
}

impl FormField {
    pub const ALL: [FormField; 4] = [
        FormField::Kind,
        FormField::Summary,
        FormField::Due,
        FormField::Note,
    ];

    pub fn label(self) -> &'static str {
        match self {
            FormField::Kind => "Type",
            FormField::Summary => "Summary",
            FormField::Due => "Due",
            FormField::Note => "Note",
        }
    }
}

/// What the form saves into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormTarget {
    Edit(ActivityId),
    New {
        contact: Option<ContactId>,
        /// Shown in the title ("Schedule for Martin Dupont").
        who: String,
    },
}

/// The inline form to edit an activity or schedule a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityForm {
    pub target: FormTarget,
    pub kind: ActivityKind,
    pub summary: String,
    pub due: String,
    pub note: String,
    pub field: FormField,
    pub error: Option<String>,
}

/// What a key did to the form.
#[derive(Debug, Clone, PartialEq)]
pub enum FormOutcome {
    Editing(ActivityForm),
    Cancelled,
    Save(FormSave),
}

#[derive(Debug, Clone, PartialEq)]
pub enum FormSave {
    Edit { id: ActivityId, edit: ActivityEdit },
    New(NewActivity),
}

impl ActivityForm {
    /// The edit form, filled from the activity.
    pub fn edit(activity: &Activity) -> ActivityForm {
        ActivityForm {
            target: FormTarget::Edit(activity.id),
            kind: activity.kind,
            summary: activity.summary.clone(),
            due: activity.due.to_string(),
            note: activity.note.clone(),
            field: FormField::Summary,
            error: None,
        }
    }

    /// The schedule form's defaults: a call, tomorrow.
    pub fn schedule(contact: Option<ContactId>, who: &str, today: CivilDate) -> ActivityForm {
        ActivityForm {
            target: FormTarget::New {
                contact,
                who: who.to_owned(),
            },
            kind: ActivityKind::Call,
            summary: format!("Call {who}"),
            due: today.tomorrow().to_string(),
            note: String::new(),
            field: FormField::Summary,
            error: None,
        }
    }

    pub fn title(&self) -> String {
        match &self.target {
            FormTarget::Edit(_) => "Edit activity".to_owned(),
            FormTarget::New { who, .. } if who.is_empty() => "Schedule an activity".to_owned(),
            FormTarget::New { who, .. } => format!("Schedule for {who}"),
        }
    }

    /// The fields the form shows: the type only when scheduling (an edit keeps it).
    pub fn fields(&self) -> &'static [FormField] {
        match self.target {
            FormTarget::Edit(_) => &FormField::ALL[1..],
            FormTarget::New { .. } => &FormField::ALL,
        }
    }

    pub fn value(&self, field: FormField) -> &str {
        match field {
            FormField::Kind => kind_label(self.kind),
            FormField::Summary => &self.summary,
            FormField::Due => &self.due,
            FormField::Note => &self.note,
        }
    }

    fn text_mut(&mut self, field: FormField) -> Option<&mut String> {
        match field {
            FormField::Kind => None,
            FormField::Summary => Some(&mut self.summary),
            FormField::Due => Some(&mut self.due),
            FormField::Note => Some(&mut self.note),
        }
    }

    fn step_field(&mut self, forward: bool) {
        let fields = self.fields();
        let at = fields.iter().position(|f| *f == self.field).unwrap_or(0);
        let next = if forward {
            (at + 1) % fields.len()
        } else {
            (at + fields.len() - 1) % fields.len()
        };
        if let Some(field) = fields.get(next) {
            self.field = *field;
        }
    }

    /// One key: Tab/↓ and Shift-Tab/↑ move between fields, ←/→ change the type, Enter saves,
    /// Esc cancels, anything typed goes into the field.
    pub fn key(mut self, key: Key, today: CivilDate) -> FormOutcome {
        match key.code {
            KeyCode::Esc => return FormOutcome::Cancelled,
            KeyCode::Enter => match self.validate(today) {
                Ok(save) => return FormOutcome::Save(save),
                Err(message) => self.error = Some(message),
            },
            KeyCode::Tab | KeyCode::Down => self.step_field(true),
            KeyCode::BackTab | KeyCode::Up => self.step_field(false),
            KeyCode::Left | KeyCode::Right if self.field == FormField::Kind => {
                let kinds = [ActivityKind::Call, ActivityKind::Email, ActivityKind::Todo];
                let at = kinds.iter().position(|k| *k == self.kind).unwrap_or(0);
                let next = if key.code == KeyCode::Right {
                    (at + 1) % kinds.len()
                } else {
                    (at + kinds.len() - 1) % kinds.len()
                };
                if let Some(kind) = kinds.get(next) {
                    self.kind = *kind;
                }
            }
            KeyCode::Backspace => {
                if let Some(text) = self.text_mut(self.field) {
                    text.pop();
                }
                self.error = None;
            }
            KeyCode::Char('u') if key.ctrl => {
                if let Some(text) = self.text_mut(self.field) {
                    text.clear();
                }
            }
            _ => {
                if let Some(c) = key.typed().filter(|c| !c.is_control()) {
                    if let Some(text) = self.text_mut(self.field) {
                        if text.chars().count() < FIELD_MAX_CHARS {
                            text.push(c);
                        }
                    }
                    self.error = None;
                }
            }
        }
        FormOutcome::Editing(self)
    }

    fn validate(&mut self, today: CivilDate) -> Result<FormSave, String> {
        let summary = self.summary.trim().to_owned();
        if summary.is_empty() {
            self.field = FormField::Summary;
            return Err("The summary is empty: say what is to be done".to_owned());
        }
        let due = parse_due(&self.due, today).inspect_err(|_| self.field = FormField::Due)?;
        let note = self.note.trim().to_owned();
        Ok(match &self.target {
            FormTarget::Edit(id) => FormSave::Edit {
                id: *id,
                edit: ActivityEdit { summary, due, note },
            },
            FormTarget::New { contact, .. } => FormSave::New(NewActivity {
                kind: self.kind,
                summary,
                due,
                note,
                linked_record: String::new(),
                assignee: String::new(),
                contact_id: *contact,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> CivilDate {
        text.parse().expect("date")
    }

    fn type_text(mut form: ActivityForm, text: &str, today: CivilDate) -> ActivityForm {
        for c in text.chars() {
            form = match form.key(Key::char(c), today) {
                FormOutcome::Editing(form) => form,
                other => panic!("{other:?}"),
            };
        }
        form
    }

    fn press(form: ActivityForm, code: KeyCode, today: CivilDate) -> FormOutcome {
        form.key(Key::plain(code), today)
    }

    fn editing(outcome: FormOutcome) -> ActivityForm {
        match outcome {
            FormOutcome::Editing(form) => form,
            other => panic!("still editing expected, got {other:?}"),
        }
    }

    #[test]
    fn due_dates_are_absolute_or_relative_with_a_helpful_error() {
        let today = day("2026-11-30");
        assert_eq!(parse_due("today", today), Ok(today));
        assert_eq!(parse_due(" Tomorrow ", today), Ok(day("2026-12-01")));
        assert_eq!(parse_due("+3", today), Ok(day("2026-12-03")));
        assert_eq!(parse_due("2027-02-28", today), Ok(day("2027-02-28")));
        let bad = parse_due("2027-02-30", today).expect_err("no Feb 30");
        assert!(bad.contains("not a day"), "{bad}");
        let bad = parse_due("+x", today).expect_err("not a count");
        assert!(bad.contains("+N"), "{bad}");
        let bad = parse_due("next week", today).expect_err("not a date");
        assert!(
            bad.contains("YYYY-MM-DD") && bad.contains("tomorrow"),
            "{bad}"
        );
    }

    #[test]
    fn the_schedule_form_defaults_to_a_call_tomorrow_and_saves_what_was_typed() {
        let today = day("2026-11-21");
        let form = ActivityForm::schedule(Some(ContactId(4)), "Ana Silva", today);
        assert_eq!(form.title(), "Schedule for Ana Silva");
        assert_eq!(form.summary, "Call Ana Silva");
        assert_eq!(form.due, "2026-11-22");
        // Up from the summary reaches the type; → makes it an email.
        let form = editing(press(form, KeyCode::Up, today));
        assert_eq!(form.field, FormField::Kind);
        let form = editing(press(form, KeyCode::Right, today));
        assert_eq!(form.kind, ActivityKind::Email);
        // Down twice: the due date; replace it with +2, then a note.
        let form = editing(press(form, KeyCode::Down, today));
        let form = editing(press(form, KeyCode::Down, today));
        assert_eq!(form.field, FormField::Due);
        let form = editing(form.key(Key::ctrl('u'), today));
        let form = type_text(form, "+2", today);
        let form = editing(press(form, KeyCode::Tab, today));
        let form = type_text(form, "quote sent", today);
        match press(form, KeyCode::Enter, today) {
            FormOutcome::Save(FormSave::New(new)) => {
                assert_eq!(new.kind, ActivityKind::Email);
                assert_eq!(new.summary, "Call Ana Silva");
                assert_eq!(new.due, day("2026-11-23"));
                assert_eq!(new.note, "quote sent");
                assert_eq!(new.contact_id, Some(ContactId(4)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_form_stays_open_on_the_faulty_field_with_the_reason() {
        let today = day("2026-11-21");
        let activity = Activity {
            id: ActivityId(9),
            kind: ActivityKind::Todo,
            summary: "Send the contract".into(),
            due: day("2026-11-20"),
            note: String::new(),
            linked_record: String::new(),
            assignee: "101".into(),
            state: crate::store::ActivityState::Planned,
            contact_id: None,
            closed_at: None,
        };
        let form = ActivityForm::edit(&activity);
        // No type field when editing: from the summary, Up wraps to the note.
        assert_eq!(form.fields().len(), 3);
        let form = editing(press(form, KeyCode::Down, today));
        let form = editing(form.key(Key::ctrl('u'), today));
        let form = type_text(form, "someday", today);
        let form = editing(press(form, KeyCode::Enter, today));
        assert_eq!(form.field, FormField::Due);
        assert!(form
            .error
            .as_deref()
            .is_some_and(|e| e.contains("YYYY-MM-DD")));
        // Typing clears the error; an empty summary is the next refusal.
        let form = editing(form.key(Key::ctrl('u'), today));
        let form = type_text(form, "today", today);
        assert_eq!(form.error, None);
        let form = editing(press(form, KeyCode::Up, today));
        let form = editing(form.key(Key::ctrl('u'), today));
        let form = editing(press(form, KeyCode::Enter, today));
        assert_eq!(form.field, FormField::Summary);
        assert!(form.error.as_deref().is_some_and(|e| e.contains("summary")));
        let form = type_text(form, "Send it", today);
        match press(form, KeyCode::Enter, today) {
            FormOutcome::Save(FormSave::Edit { id, edit }) => {
                assert_eq!(id, ActivityId(9));
                assert_eq!(edit.summary, "Send it");
                assert_eq!(edit.due, today);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            press(ActivityForm::edit(&activity), KeyCode::Esc, today),
            FormOutcome::Cancelled
        );
    }

    #[test]
    fn late_search_answers_do_not_replace_newer_ones_and_selections_stay_in_range() {
        let contact = |id: i64, name: &str| Contact {
            id: ContactId(id),
            name: name.into(),
            company: String::new(),
            phones: Vec::new(),
            email: String::new(),
            notes: String::new(),
        };
        let mut desk = Desk {
            query: "mar".into(),
            ..Desk::default()
        };
        desk.apply(&DeskUpdate::Contacts {
            query: "ma".into(),
            purpose: SearchFor::Tab,
            hits: vec![contact(1, "Mads"), contact(2, "Maria")],
        });
        assert!(
            desk.contacts.is_empty(),
            "an older query's answer was shown"
        );
        desk.apply(&DeskUpdate::Contacts {
            query: "mar".into(),
            purpose: SearchFor::Tab,
            hits: vec![contact(2, "Maria"), contact(3, "Mark")],
        });
        desk.move_selection(Tab::Contacts, 5);
        assert_eq!(
            desk.selected_contact().map(|c| c.name.as_str()),
            Some("Mark")
        );
        desk.apply(&DeskUpdate::Contacts {
            query: "mar".into(),
            purpose: SearchFor::Dial,
            hits: Vec::new(),
        });
        assert_eq!(desk.contacts.len(), 2, "dial suggestions went into the tab");
        let asked = desk.unknown_numbers(["+3225550137", "", "+3225550137"].into_iter());
        assert_eq!(asked, ["+3225550137"]);
        assert!(desk.unknown_numbers(["+3225550137"].into_iter()).is_empty());
        desk.apply(&DeskUpdate::Names(vec![(
            "+3225550137".into(),
            Some("Martin Dupont".into()),
        )]));
        assert_eq!(desk.name_of("+3225550137"), Some("Martin Dupont"));
    }
}
