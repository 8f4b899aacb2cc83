//! The Recent, Next Activities and Contacts tabs, and the desk's popups: the activity form,
//! the contact card and the "mark done?" question.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::popups::{line, popup};
use super::{cell, cell_right, columns, list_offset, over, pane_block};
use crate::store::{Activity, CallOutcome, CivilDate, Contact};
use crate::tui::app::{clock_duration, clock_time, App, EmailDraft, Pane, Tab};
use crate::tui::desk::{call_party, direction_arrow, kind_label, outcome_label, ActivityForm};
use crate::tui::theme::{Roles, Theme};

fn tab_title(app: &App, tab: Tab, short: bool) -> String {
    let name = if short {
        tab.short_title()
    } else {
        tab.title()
    };
    match tab {
        Tab::NextActivities if !app.desk.activities.is_empty() => {
            format!("{name} ({})", app.desk.activities.len())
        }
        _ => name.to_owned(),
    }
}

/// The tab row titles, the shown tab's status line, then its rows.
pub fn draw_tabs(buf: &mut Buffer, area: Rect, app: &App, theme: &Theme) {
    let roles = &theme.roles;
    let focused = app.focus == Pane::Tabs;
    let full: usize = Tab::ALL
        .iter()
        .map(|t| tab_title(app, *t, false).chars().count() + 3)
        .sum();
    let short = full + 2 > usize::from(area.width);
    let mut spans = vec![Span::raw(" ")];
    for (i, tab) in Tab::ALL.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" │ ", roles.border));
        }
        let style = if *tab == app.tab {
            roles.tab_active
        } else {
            roles.tab_inactive
        };
        spans.push(Span::styled(tab_title(app, *tab, short), style));
    }
    spans.push(Span::raw(" "));
    let inner = pane_block(buf, area, Line::from(spans), focused, theme);
    if inner.height == 0 {
        return;
    }
    let status = status_line(app);
    buf.set_stringn(
        inner.x + 1,
        inner.y,
        status,
        usize::from(inner.width.saturating_sub(1)),
        roles.dim,
    );
    let rows = Rect::new(
        inner.x,
        inner.y.saturating_add(1),
        inner.width,
        inner.height.saturating_sub(1),
    );
    if rows.height == 0 {
        return;
    }
    if app.desk.len(app.tab) == 0 {
        draw_empty(buf, rows, app, roles);
        return;
    }
    match app.tab {
        Tab::Recent => draw_recent(buf, rows, app, roles, focused),
        Tab::NextActivities => draw_activities(buf, rows, app, roles, focused),
        Tab::Contacts => draw_contacts(buf, rows, app, roles, focused),
    }
}

fn status_line(app: &App) -> String {
    let desk = &app.desk;
    match app.tab {
        Tab::Recent if desk.missed_only => "missed calls only".to_owned(),
        Tab::Recent => "every call, newest first".to_owned(),
        Tab::NextActivities => {
            let today = desk.today.unwrap_or_else(|| app.today());
            match desk.overdue() {
                0 => format!("due by {today}"),
                n => format!("due by {today} · {n} overdue"),
            }
        }
        Tab::Contacts if desk.query.is_empty() => "everyone, by name · / to search".to_owned(),
        Tab::Contacts => format!("“{}”: {} found", desk.query, desk.contacts.len()),
    }
}

fn draw_empty(buf: &mut Buffer, area: Rect, app: &App, roles: &Roles) {
    let (headline, detail) = if !app.desk.available {
        (
            "No local store.",
            "Contacts, activities and call history need a data directory (--data-dir); the log says why it could not open.",
        )
    } else if app.tab == Tab::Recent && app.desk.missed_only {
        ("No missed calls.", "Press M to show every call.")
    } else if app.tab == Tab::Contacts && !app.desk.query.is_empty() {
        (
            "Nobody matches.",
            "Try fewer letters, or Esc in the search to list everyone.",
        )
    } else {
        app.tab.empty_state()
    };
    let lines = vec![
        Line::from(Span::styled(headline, roles.text)),
        Line::from(Span::styled(detail, roles.dim)),
    ];
    // Centre the wrapped text: one row for the headline, the detail's rows below.
    let width = usize::from(area.width.max(1));
    let detail_rows = detail.len().div_ceil(width).max(1);
    let rows = u16::try_from(1 + detail_rows).unwrap_or(u16::MAX);
    let y = area.y + area.height.saturating_sub(rows) / 2;
    let text_area = Rect::new(area.x, y, area.width, rows).intersection(area);
    Paragraph::new(lines)
        .centered()
        .wrap(ratatui::widgets::Wrap { trim: true })
        .render(text_area, buf);
}

/// The selection marker and the row's text style.
fn row_styles(selected: bool, focused: bool, roles: &Roles) -> (&'static str, Style) {
    match (selected, focused) {
        (true, true) => ("›", roles.selected),
        (true, false) => ("›", roles.text),
        _ => (" ", roles.text),
    }
}

/// A call's time: `HH:MM` today, `MM-DD` before.
fn when(app: &App, epoch_s: i64) -> String {
    let offset = app.config.utc_offset_s;
    let day = CivilDate::from_epoch_seconds(epoch_s, i64::from(offset));
    if day.is_some_and(|d| d == app.today()) {
        let time = clock_time(u64::try_from(epoch_s).unwrap_or(0), offset);
        time.get(..5).unwrap_or(&time).to_owned()
    } else {
        day.map(|d| format!("{:02}-{:02}", d.month(), d.day()))
            .unwrap_or_default()
    }
}

fn draw_recent(buf: &mut Buffer, area: Rect, app: &App, roles: &Roles, focused: bool) {
    let desk = &app.desk;
    // marker+arrow, party, time, duration, outcome; narrow panes drop the duration.
    let narrow = area.width < 44;
    let widths: &[u16] = if narrow {
        &[2, 0, 5, 0, 8]
    } else {
        &[2, 0, 5, 5, 11]
    };
    let cols = columns(area, widths, 1, 8);
    let rows = usize::from(area.height);
    let selected = desk.selected(Tab::Recent);
    let offset = list_offset(selected, desk.recent.len(), rows);
    for (n, call) in desk.recent.iter().enumerate().skip(offset).take(rows) {
        let y = area.y + u16::try_from(n - offset).unwrap_or(0);
        let (marker, style) = row_styles(n == selected, focused, roles);
        cell(buf, cols[0], y, marker, style);
        buf.set_stringn(
            cols[0].x + 1,
            y,
            direction_arrow(call.direction),
            1,
            roles.dim,
        );
        cell(buf, cols[1], y, call_party(call), style);
        cell(buf, cols[2], y, &when(app, call.started), roles.dim);
        let duration = call
            .duration
            .and_then(|d| u64::try_from(d).ok())
            .filter(|d| *d > 0)
            .map(clock_duration)
            .unwrap_or_default();
        cell_right(buf, cols[3], y, &duration, roles.text);
        let outcome_style = match call.outcome {
            Some(CallOutcome::Missed | CallOutcome::Failed | CallOutcome::Interrupted) => {
                roles.alert
            }
            Some(CallOutcome::Answered | CallOutcome::Transferred) => roles.dim,
            _ => roles.text,
        };
        cell(buf, cols[4], y, outcome_label(call.outcome), outcome_style);
    }
}

fn draw_activities(buf: &mut Buffer, area: Rect, app: &App, roles: &Roles, focused: bool) {
    let desk = &app.desk;
    let today = desk.today.unwrap_or_else(|| app.today());
    // marker, due, kind, summary · contact
    let cols = columns(area, &[1, 5, 5, 0], 3, 8);
    let rows = usize::from(area.height);
    let selected = desk.selected(Tab::NextActivities);
    let offset = list_offset(selected, desk.activities.len(), rows);
    for (n, item) in desk.activities.iter().enumerate().skip(offset).take(rows) {
        let y = area.y + u16::try_from(n - offset).unwrap_or(0);
        let (marker, style) = row_styles(n == selected, focused, roles);
        let activity = &item.activity;
        cell(buf, cols[0], y, marker, style);
        let (due, due_style) = if activity.due == today {
            ("today".to_owned(), roles.text)
        } else {
            (
                format!("{:02}-{:02}", activity.due.month(), activity.due.day()),
                if activity.is_overdue(today) {
                    roles.alert
                } else {
                    roles.dim
                },
            )
        };
        cell(buf, cols[1], y, &due, due_style);
        cell(buf, cols[2], y, kind_label(activity.kind), roles.dim);
        let text = match &item.contact {
            Some(contact) => format!("{} · {}", activity.summary, contact.name),
            None => activity.summary.clone(),
        };
        cell(buf, cols[3], y, &text, style);
    }
}

fn draw_contacts(buf: &mut Buffer, area: Rect, app: &App, roles: &Roles, focused: bool) {
    let desk = &app.desk;
    // marker, name, company, number
    let cols = columns(area, &[1, 0, 12, 16], 1, 10);
    let rows = usize::from(area.height);
    let selected = desk.selected(Tab::Contacts);
    let offset = list_offset(selected, desk.contacts.len(), rows);
    for (n, contact) in desk.contacts.iter().enumerate().skip(offset).take(rows) {
        let y = area.y + u16::try_from(n - offset).unwrap_or(0);
        let (marker, style) = row_styles(n == selected, focused, roles);
        cell(buf, cols[0], y, marker, style);
        cell(buf, cols[1], y, &contact.name, style);
        cell(buf, cols[2], y, &contact.company, roles.dim);
        cell(
            buf,
            cols[3],
            y,
            contact.primary_number().unwrap_or("no number"),
            roles.text,
        );
    }
}

/// The activity form: one line per field, the cursor's field highlighted.
pub fn draw_form(buf: &mut Buffer, area: Rect, form: &ActivityForm, theme: &Theme) {
    let roles = &theme.roles;
    let fields = form.fields();
    let height = u16::try_from(fields.len()).unwrap_or(4) * 2 + 5;
    let inner = popup(buf, area, 66, height, &form.title(), theme);
    let mut row = 0;
    for field in fields {
        let current = *field == form.field;
        let label_style = if current {
            over(roles.key_label)
        } else {
            over(roles.dim)
        };
        let value = form.value(*field);
        let mut spans = vec![Span::styled(format!("{:<8} ", field.label()), label_style)];
        match (field, current) {
            (crate::tui::desk::FormField::Kind, true) => {
                spans.push(Span::styled(format!("‹ {value} ›"), over(roles.input)));
            }
            (_, true) => {
                spans.push(Span::styled(value.to_owned(), over(roles.input)));
                spans.push(Span::styled("▏", over(roles.input)));
            }
            (_, false) => spans.push(Span::styled(value.to_owned(), over(roles.popup))),
        }
        line(buf, inner, row, Line::from(spans));
        row += 2;
    }
    let below = match &form.error {
        Some(error) => Span::styled(error.clone(), over(roles.alert)),
        None => Span::styled(
            "Due: YYYY-MM-DD, today, tomorrow or +N days",
            over(roles.dim),
        ),
    };
    line(buf, inner, row, Line::from(below));
}

/// A contact's card: who, how to reach them, notes, planned activities.
pub fn draw_card(
    buf: &mut Buffer,
    area: Rect,
    app: &App,
    contact: &Contact,
    activities: &[Activity],
    theme: &Theme,
) {
    let roles = &theme.roles;
    let inner = popup(buf, area, 64, 18, "Contact", theme);
    let mut lines: Vec<Line<'_>> = Vec::new();
    let mut head = vec![Span::styled(contact.name.clone(), over(roles.input))];
    if !contact.company.is_empty() {
        head.push(Span::styled(
            format!("  {}", contact.company),
            over(roles.dim),
        ));
    }
    lines.push(Line::from(head));
    for phone in &contact.phones {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<8} ", phone.label), over(roles.dim)),
            Span::styled(phone.number.clone(), over(roles.popup)),
        ]));
    }
    if !contact.email.is_empty() {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<8} ", "email"), over(roles.dim)),
            Span::styled(contact.email.clone(), over(roles.popup)),
        ]));
    }
    for note in contact
        .notes
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(3)
    {
        lines.push(Line::from(Span::styled(note.to_owned(), over(roles.dim))));
    }
    let today = app.today();
    let planned: Vec<&Activity> = activities
        .iter()
        .filter(|a| a.state == crate::store::ActivityState::Planned)
        .collect();
    lines.push(Line::default());
    lines.push(Line::from(Span::styled(
        match planned.len() {
            0 => "Nothing planned".to_owned(),
            n => format!("Planned ({n})"),
        },
        over(roles.popup),
    )));
    for activity in planned.iter().take(4) {
        let style = if activity.is_overdue(today) {
            over(roles.alert)
        } else {
            over(roles.dim)
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{} ", activity.due), style),
            Span::styled(format!("{:<6}", kind_label(activity.kind)), over(roles.dim)),
            Span::styled(activity.summary.clone(), over(roles.popup)),
        ]));
    }
    let keys_row = inner.height.saturating_sub(1);
    for (i, text) in lines.into_iter().enumerate() {
        let row = u16::try_from(i).unwrap_or(u16::MAX);
        if row + 1 >= keys_row {
            break;
        }
        line(buf, inner, row, text);
    }
    line(
        buf,
        inner,
        keys_row,
        Line::from(vec![
            Span::styled(" Enter ", roles.key),
            Span::styled(" call   ", over(roles.popup)),
            Span::styled(" s ", roles.key),
            Span::styled(" schedule   ", over(roles.popup)),
            Span::styled(" Esc ", roles.key),
            Span::styled(" close", over(roles.popup)),
        ]),
    );
}

/// A call placed from an activity ended: mark it done?
pub fn draw_confirm_done(buf: &mut Buffer, area: Rect, summary: &str, theme: &Theme) {
    let roles = &theme.roles;
    let inner = popup(buf, area, 60, 7, "Mark the activity done?", theme);
    line(
        buf,
        inner,
        0,
        Line::from(Span::styled(
            "The call placed from this activity ended:",
            over(roles.popup),
        )),
    );
    line(
        buf,
        inner,
        1,
        Line::from(Span::styled(summary.to_owned(), over(roles.input))),
    );
    line(
        buf,
        inner,
        3,
        Line::from(vec![
            Span::styled(" y ", roles.key),
            Span::styled(" mark done   ", over(roles.popup)),
            Span::styled(" n ", roles.key),
            Span::styled(" keep it planned", over(roles.popup)),
        ]),
    );
}

/// An edited follow-up: to whom, the subject, the start of the body, and what to do with it.
pub fn draw_send_choice(buf: &mut Buffer, area: Rect, draft: &EmailDraft, theme: &Theme) {
    let roles = &theme.roles;
    let inner = popup(buf, area, 72, 14, "Follow-up email", theme);
    let field = |label: &str, value: &str| {
        Line::from(vec![
            Span::styled(format!("{label:<8} "), over(roles.dim)),
            Span::styled(value.to_owned(), over(roles.input)),
        ])
    };
    let to = if draft.to.is_empty() {
        "(nobody yet)"
    } else {
        &draft.to
    };
    line(buf, inner, 0, field("To", to));
    line(buf, inner, 1, field("Subject", &draft.subject));
    let body = draft.text.split_once("\n\n").map_or("", |(_, body)| body);
    let body_rows = inner.height.saturating_sub(6);
    for (i, text) in body.lines().take(usize::from(body_rows)).enumerate() {
        let row = 3 + u16::try_from(i).unwrap_or(u16::MAX);
        line(
            buf,
            inner,
            row,
            Line::from(Span::styled(text.to_owned(), over(roles.popup))),
        );
    }
    let last = inner.height.saturating_sub(1);
    if let Some(problem) = &draft.problem {
        line(
            buf,
            inner,
            last.saturating_sub(1),
            Line::from(Span::styled(problem.clone(), over(roles.alert))),
        );
    }
    let mut keys = Vec::new();
    let choices: &[(&str, &str)] = if draft.problem.is_some() {
        &[
            ("e", "edit again"),
            ("l", "keep for later"),
            ("Esc", "discard"),
        ]
    } else {
        &[
            ("s", "send now"),
            ("l", "send later"),
            ("e", "edit again"),
            ("Esc", "discard"),
        ]
    };
    for (key, label) in choices {
        keys.push(Span::styled(format!(" {key} "), roles.key));
        keys.push(Span::styled(format!(" {label}   "), over(roles.popup)));
    }
    line(buf, inner, last, Line::from(keys));
}
