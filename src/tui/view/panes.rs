//! The panes, the header, the notice line and the key bar.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};

use super::{cell, cell_right, columns, list_offset, over, pane_block};
use crate::queue::ami::Membership;
use crate::queue::model::{Agent, AgentState, Queue, WaitingCaller};
use crate::queue::report::ReportKind;
use crate::sip::ua::CallDirection;
use crate::tui::app::{
    clock_duration, clock_time, App, CallPhase, CallRow, Mode, NoticeLevel, Pane, Registration,
};
use crate::tui::keymap::{self, Action, Key};
use crate::tui::theme::{Roles, Theme};

fn title<'a>(text: &'a str, extra: String, theme: &Theme) -> Line<'a> {
    let mut spans = vec![Span::styled(format!(" {text} "), theme.roles.title)];
    if !extra.is_empty() {
        spans.push(Span::styled(format!("{extra} "), theme.roles.dim));
    }
    Line::from(spans)
}

/// The first key bound to `action`, for hints ("press d to dial").
fn key_of(app: &App, action: Action) -> Option<Key> {
    app.keymap.keys_of(action).next()
}

/// Account, registration, this agent's queues, voicemail, clock.
pub fn draw_header(buf: &mut Buffer, area: Rect, app: &App, theme: &Theme) {
    let roles = &theme.roles;
    buf.set_style(area, roles.header);
    let clock = clock_time(app.now_s(), app.config.utc_offset_s);
    let clock_width = 10u16;
    let brand = over(roles.header).add_modifier(ratatui::style::Modifier::BOLD);
    let mut spans = vec![Span::styled(" ringside ", brand)];
    match app.config.mode {
        Mode::Supervisor => {
            spans.push(Span::styled("supervisor ", over(roles.header)));
            if !app.config.account.is_empty() {
                spans.push(Span::styled(
                    format!("{} ", app.config.account),
                    over(roles.header),
                ));
            }
        }
        Mode::Agent => {
            spans.push(Span::styled(
                format!("{} ", app.config.account),
                over(roles.header),
            ));
            let (text, style) = match &app.registration {
                Registration::Registered { .. } => (" registered ".to_owned(), roles.registered),
                Registration::Unknown => (" registering… ".to_owned(), roles.unregistered),
                Registration::Unregistered => (" not registered ".to_owned(), roles.unregistered),
                Registration::Failed { retry_in_s, .. } => (
                    match retry_in_s {
                        Some(s) => format!(" registration failed, retry in {s} s "),
                        None => " registration failed ".to_owned(),
                    },
                    roles.unregistered,
                ),
            };
            spans.push(Span::styled(text, style));
            spans.push(Span::styled(" ", roles.header));
            let me = app.me();
            let mut names: Vec<&str> = app
                .config
                .queue_codes
                .iter()
                .map(|c| c.queue.as_str())
                .collect();
            if let Some(agent) = me {
                for m in &agent.memberships {
                    if !names.contains(&m.queue.as_str()) {
                        names.push(&m.queue);
                    }
                }
            }
            names.sort_unstable();
            for name in names {
                let membership = me.and_then(|a| a.membership(name));
                let (word, style) = match membership {
                    Some(m) if m.paused.is_some() => ("paused", roles.agent_paused),
                    Some(_) => ("on", roles.agent_available),
                    None => ("off", roles.dim),
                };
                spans.push(Span::styled(format!("{name}:"), over(roles.header)));
                spans.push(Span::styled(
                    format!("{word} "),
                    over(roles.header).patch(over(style)),
                ));
            }
        }
    }
    if let Some(waiting) = app.voicemail.filter(|n| *n > 0) {
        spans.push(Span::styled(
            format!("✉ {waiting} "),
            over(roles.header).patch(over(roles.alert)),
        ));
    }
    let left = Rect {
        width: area.width.saturating_sub(clock_width),
        ..area
    };
    buf.set_line(left.x, left.y, &Line::from(spans), left.width);
    let clock_area = Rect {
        x: area.right().saturating_sub(clock_width),
        width: clock_width.min(area.width),
        ..area
    };
    buf.set_stringn(
        clock_area.x + 1,
        clock_area.y,
        &clock,
        usize::from(clock_area.width.saturating_sub(1)),
        roles.clock,
    );
}

fn phase_style(phase: CallPhase, roles: &Roles) -> Style {
    match phase {
        CallPhase::Incoming | CallPhase::Ringing => roles.ringing,
        CallPhase::Early => roles.early,
        CallPhase::Active => roles.active,
        CallPhase::OnHold => roles.on_hold,
        CallPhase::HeldByFarEnd => roles.remote_hold,
        CallPhase::Transferring => roles.transferring,
        CallPhase::Dialing | CallPhase::Connecting | CallPhase::Ending => roles.dim,
    }
}

fn mos_style(mos: f64, roles: &Roles) -> Style {
    if mos >= 4.0 {
        roles.mos_good
    } else if mos >= 3.6 {
        roles.mos_fair
    } else {
        roles.mos_bad
    }
}

/// Who the call is with, as one line: name and number, the queue, the consultation link.
fn call_party(call: &CallRow) -> String {
    let mut text = String::new();
    if call.consultation_of.is_some() {
        text.push_str("↳ ");
    }
    match call.remote_name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => {
            text.push_str(name);
            text.push(' ');
            text.push_str(call.remote_number());
        }
        None => text.push_str(call.remote_number()),
    }
    if let Some(queue) = &call.queue {
        text.push_str(" · ");
        text.push_str(queue);
    }
    text
}

/// Every call: direction, party, state, time, codec, markers, quality.
pub fn draw_calls(buf: &mut Buffer, area: Rect, app: &App, theme: &Theme) {
    let roles = &theme.roles;
    let focused = app.focus == Pane::Calls;
    let extra = if app.calls.is_empty() {
        String::new()
    } else {
        format!("{}", app.calls.len())
    };
    let inner = pane_block(buf, area, title("Calls", extra, theme), focused, theme);
    if inner.height == 0 {
        return;
    }
    if app.calls.is_empty() {
        let text = match (app.config.mode, key_of(app, Action::Dial)) {
            (Mode::Supervisor, _) => "Supervisor mode: no phone line here.".to_owned(),
            (Mode::Agent, Some(key)) => format!("No calls. Press {} to dial.", key.label()),
            (Mode::Agent, None) => "No calls.".to_owned(),
        };
        buf.set_stringn(
            inner.x + 1,
            inner.y,
            text,
            usize::from(inner.width.saturating_sub(1)),
            roles.dim,
        );
        return;
    }
    // dir, party, state, time, codec, markers, MOS
    let cols = columns(inner, &[2, 0, 15, 7, 5, 3, 4], 1, 10);
    let header = ["", "Party", "State", "Time", "Codec", "", "MOS"];
    for (i, text) in header.iter().enumerate() {
        if i == 3 || i == 6 {
            cell_right(buf, cols[i], inner.y, text, roles.dim);
        } else {
            cell(buf, cols[i], inner.y, text, roles.dim);
        }
    }
    let rows = usize::from(inner.height.saturating_sub(1));
    let offset = list_offset(app.selection.calls, app.calls.len(), rows);
    for (n, call) in app.calls.iter().enumerate().skip(offset).take(rows) {
        let y = inner.y + 1 + u16::try_from(n - offset).unwrap_or(0);
        let selected = n == app.selection.calls;
        let phase = call.phase();
        let arrow = match call.direction {
            CallDirection::Incoming => "←",
            CallDirection::Outgoing => "→",
        };
        let marker_style = if selected && focused {
            roles.selected
        } else {
            roles.text
        };
        cell(
            buf,
            cols[0],
            y,
            if selected { "›" } else { " " },
            marker_style,
        );
        buf.set_stringn(cols[0].x + 1, y, arrow, 1, roles.dim);
        let party_style = if selected && focused {
            roles.selected
        } else {
            roles.text
        };
        cell(buf, cols[1], y, &call_party(call), party_style);
        cell(buf, cols[2], y, phase.label(), phase_style(phase, roles));
        cell_right(
            buf,
            cols[3],
            y,
            &clock_duration(call.elapsed_s(app.now_ms)),
            roles.text,
        );
        cell(
            buf,
            cols[4],
            y,
            call.codec.as_deref().unwrap_or(""),
            roles.dim,
        );
        let markers = [
            (call.muted, "M", roles.muted),
            (call.on_hold, "H", roles.on_hold),
            (call.recording, "R", roles.recording),
        ];
        for (i, (on, letter, style)) in markers.into_iter().enumerate() {
            let x = cols[5].x + u16::try_from(i).unwrap_or(0);
            if on && x < cols[5].x + cols[5].width {
                buf.set_stringn(x, y, letter, 1, style);
            }
        }
        match call.mos {
            Some(mos) => cell_right(buf, cols[6], y, &format!("{mos:.1}"), mos_style(mos, roles)),
            None => cell_right(buf, cols[6], y, "–", roles.dim),
        }
    }
}

/// A row of the queues pane.
pub(super) enum QueueRow<'a> {
    Queue(usize, &'a Queue),
    Caller(usize, &'a WaitingCaller),
}

/// Queue rows with the callers of expanded queues, and the row of the selected queue.
pub(super) fn queue_rows(app: &App) -> (Vec<QueueRow<'_>>, usize) {
    let mut rows = Vec::new();
    let mut selected_row = 0;
    for (i, queue) in app.visible_queues().enumerate() {
        if i == app.selection.queues {
            selected_row = rows.len();
        }
        rows.push(QueueRow::Queue(i, queue));
        if app.expanded.contains(&queue.name) {
            rows.extend(queue.callers.iter().map(|c| QueueRow::Caller(i, c)));
        }
    }
    (rows, selected_row)
}

/// The queue (selection index) shown on data row `row` of a pane `rows` rows high.
pub(super) fn queue_at(app: &App, rows: usize, row: usize) -> Option<usize> {
    let (list, selected) = queue_rows(app);
    let offset = list_offset(selected, list.len(), rows);
    list.get(offset + row).map(|r| match r {
        QueueRow::Queue(i, _) | QueueRow::Caller(i, _) => *i,
    })
}

/// Queues: waiting callers, longest wait, service level, abandoned, available agents.
pub fn draw_queues(buf: &mut Buffer, area: Rect, app: &App, theme: &Theme) {
    let roles = &theme.roles;
    let focused = app.focus == Pane::Queues;
    let waiting: usize = app.queues.queues().map(|q| q.callers.len()).sum();
    let extra = if waiting > 0 {
        format!("{waiting} waiting")
    } else {
        String::new()
    };
    let inner = pane_block(buf, area, title("Queues", extra, theme), focused, theme);
    if inner.height == 0 {
        return;
    }
    let (rows, selected_row) = queue_rows(app);
    if rows.is_empty() {
        let text = if app.search.is_some() {
            "No queue matches the search."
        } else {
            "No queues yet: waiting for the PBX."
        };
        buf.set_stringn(
            inner.x + 1,
            inner.y,
            text,
            usize::from(inner.width.saturating_sub(1)),
            roles.dim,
        );
        return;
    }
    // name, waiting, longest, SL, abandoned, agents
    let cols = columns(inner, &[0, 4, 6, 4, 4, 5], 0, 8);
    let header = ["Queue", "Wait", "Long", "SL", "Abn", "Avail"];
    cell(buf, cols[0], inner.y, header[0], roles.dim);
    for i in 1..header.len() {
        cell_right(buf, cols[i], inner.y, header[i], roles.dim);
    }
    let now = app.now_s();
    let height = usize::from(inner.height.saturating_sub(1));
    let offset = list_offset(selected_row, rows.len(), height);
    for (n, row) in rows.iter().enumerate().skip(offset).take(height) {
        let y = inner.y + 1 + u16::try_from(n - offset).unwrap_or(0);
        match row {
            QueueRow::Queue(i, queue) => {
                let selected = *i == app.selection.queues;
                let open = if queue.callers.is_empty() {
                    " "
                } else if app.expanded.contains(&queue.name) {
                    "▾"
                } else {
                    "▸"
                };
                let style = if selected && focused {
                    roles.selected
                } else {
                    roles.text
                };
                cell(buf, cols[0], y, &format!("{open}{}", queue.name), style);
                let count = queue.callers.len();
                let wait_style = if count > 0 {
                    roles.queue_waiting
                } else {
                    roles.dim
                };
                cell_right(buf, cols[1], y, &count.to_string(), wait_style);
                let longest = queue.longest_wait_s(now);
                let longest_text = if count > 0 {
                    clock_duration(longest)
                } else {
                    "–".to_owned()
                };
                cell_right(buf, cols[2], y, &longest_text, wait_style);
                match app
                    .stats
                    .get(&queue.name)
                    .and_then(|s| s.service_level_pct())
                {
                    Some(pct) => {
                        let style = if pct >= app.config.service_level_target_pct {
                            roles.sla_ok
                        } else {
                            roles.sla_bad
                        };
                        cell_right(buf, cols[3], y, &format!("{pct:.0}%"), style);
                    }
                    None => cell_right(buf, cols[3], y, "–", roles.dim),
                }
                cell_right(buf, cols[4], y, &queue.abandoned.to_string(), roles.text);
                let available = queue
                    .members
                    .iter()
                    .filter_map(|i| app.queues.agent(i))
                    .filter(|a| a.state() == AgentState::Available)
                    .count();
                cell_right(
                    buf,
                    cols[5],
                    y,
                    &format!("{available}/{}", queue.members.len()),
                    if available == 0 && count > 0 {
                        roles.sla_bad
                    } else {
                        roles.text
                    },
                );
            }
            QueueRow::Caller(_, caller) => {
                // A name from the PBX first, else the contact the number belongs to.
                let known = app.desk.name_of(&caller.caller_id_num);
                let who = if let (true, Some(name)) = (caller.caller_id_name.is_empty(), known) {
                    format!("{name} {}", caller.caller_id_num)
                } else if caller.caller_id_name.is_empty() {
                    caller.caller_id_num.clone()
                } else {
                    format!("{} {}", caller.caller_id_name, caller.caller_id_num)
                };
                let text = format!("  {}. {who}", caller.position);
                // The caller takes the row; the wait sits at its end.
                let last = cols[cols.len() - 1];
                let span = super::Column {
                    x: cols[0].x,
                    width: last.x.saturating_sub(cols[0].x).saturating_sub(1),
                };
                cell(buf, span, y, &text, roles.text);
                let wait = clock_duration(caller.wait_s(now));
                cell_right(buf, last, y, &wait, roles.queue_waiting);
            }
        }
    }
}

fn agent_style(state: &AgentState, roles: &Roles) -> Style {
    match state {
        AgentState::Available => roles.agent_available,
        AgentState::Ringing => roles.agent_ringing,
        AgentState::Busy => roles.agent_busy,
        AgentState::OnHold => roles.agent_on_hold,
        AgentState::Paused { .. } => roles.agent_paused,
        AgentState::Unavailable => roles.agent_unavailable,
        AgentState::LoggedOut => roles.agent_logged_out,
    }
}

fn agent_state_text(state: &AgentState) -> String {
    match state {
        AgentState::Available => "available".to_owned(),
        AgentState::Ringing => "ringing".to_owned(),
        AgentState::Busy => "busy".to_owned(),
        AgentState::OnHold => "on hold".to_owned(),
        AgentState::Paused { reason } if reason.is_empty() => "paused".to_owned(),
        AgentState::Paused { reason } => format!("paused: {reason}"),
        AgentState::Unavailable => "unavailable".to_owned(),
        AgentState::LoggedOut => "logged out".to_owned(),
    }
}

fn membership_letter(agent: &Agent) -> &'static str {
    if agent.is_static() {
        "S"
    } else if agent
        .memberships
        .iter()
        .any(|m| m.kind == Some(Membership::Realtime))
    {
        "R"
    } else {
        "D"
    }
}

/// Agents in queues: static or dynamic, state, time in state, calls taken.
pub fn draw_agents(buf: &mut Buffer, area: Rect, app: &App, theme: &Theme) {
    let roles = &theme.roles;
    let focused = app.focus == Pane::Agents;
    let total = app.visible_agents().count();
    let extra = if total > 0 {
        total.to_string()
    } else {
        String::new()
    };
    let inner = pane_block(buf, area, title("Agents", extra, theme), focused, theme);
    if inner.height == 0 {
        return;
    }
    if total == 0 {
        let text = if app.search.is_some() {
            "No agent matches the search."
        } else {
            "No agent is connected to a queue."
        };
        buf.set_stringn(
            inner.x + 1,
            inner.y,
            text,
            usize::from(inner.width.saturating_sub(1)),
            roles.dim,
        );
        return;
    }
    // name, S/D, state, time, calls
    let cols = columns(inner, &[0, 1, 13, 6, 5], 0, 8);
    cell(buf, cols[0], inner.y, "Agent", roles.dim);
    cell(buf, cols[2], inner.y, "State", roles.dim);
    cell_right(buf, cols[3], inner.y, "For", roles.dim);
    cell_right(buf, cols[4], inner.y, "Calls", roles.dim);
    let rows = usize::from(inner.height.saturating_sub(1));
    let offset = list_offset(app.selection.agents, total, rows);
    let me = app.me().map(|a| a.interface.as_str());
    for (n, agent) in app.visible_agents().enumerate().skip(offset).take(rows) {
        let y = inner.y + 1 + u16::try_from(n - offset).unwrap_or(0);
        let selected = n == app.selection.agents;
        let style = if selected && focused {
            roles.selected
        } else {
            roles.text
        };
        let name = if me == Some(agent.interface.as_str()) {
            format!("{} (you)", agent.name)
        } else {
            agent.name.clone()
        };
        cell(buf, cols[0], y, &name, style);
        cell(buf, cols[1], y, membership_letter(agent), roles.dim);
        let state = agent.state();
        cell(
            buf,
            cols[2],
            y,
            &agent_state_text(&state),
            agent_style(&state, roles),
        );
        let age = app
            .agent_state_age_s(agent)
            .map_or_else(|| "–".to_owned(), clock_duration);
        cell_right(buf, cols[3], y, &age, roles.dim);
        cell_right(
            buf,
            cols[4],
            y,
            &agent.calls_taken().to_string(),
            roles.text,
        );
    }
}

fn is_alert_kind(kind: ReportKind) -> bool {
    matches!(
        kind,
        ReportKind::CallerQuit
            | ReportKind::ExitTimeout
            | ReportKind::ExitEmpty
            | ReportKind::NoAnswer
            | ReportKind::NoAnswerCallerHangup
    )
}

/// The live report events, newest at the top, with the filters in the title.
pub fn draw_events(buf: &mut Buffer, area: Rect, app: &App, theme: &Theme) {
    let roles = &theme.roles;
    let focused = app.focus == Pane::Events;
    let log = &app.events;
    let mut extra = Vec::new();
    if let Some(kind) = log.kind {
        extra.push(format!("kind {}", kind.name()));
    }
    if let Some(queue) = &log.queue {
        extra.push(format!("queue {queue}"));
    }
    if let Some(search) = &app.search {
        extra.push(format!("“{search}”"));
    }
    if log.is_frozen() {
        let unseen = log.unseen();
        extra.push(if unseen > 0 {
            format!("frozen, {unseen} new")
        } else {
            "frozen".to_owned()
        });
    }
    let inner = pane_block(
        buf,
        area,
        title("Events", extra.join(" · "), theme),
        focused,
        theme,
    );
    if inner.height == 0 {
        return;
    }
    // time, kind, queue, details
    let kind_width = if inner.width >= 90 { 23 } else { 13 };
    let cols = columns(inner, &[8, kind_width, 9, 0], 3, 6);
    let rows = usize::from(inner.height);
    let mut shown = 0;
    for event in log.visible(app.search.as_deref()).take(rows) {
        let y = inner.y + u16::try_from(shown).unwrap_or(0);
        shown += 1;
        cell(
            buf,
            cols[0],
            y,
            &clock_time(event.time, app.config.utc_offset_s),
            roles.event_time,
        );
        let kind_style = if is_alert_kind(event.kind) {
            roles.event_alert
        } else {
            roles.text
        };
        cell(buf, cols[1], y, event.kind.name(), kind_style);
        cell(buf, cols[2], y, &event.queue, roles.text);
        let mut details = String::new();
        for part in [event.caller.as_deref(), event.agent.as_deref()]
            .into_iter()
            .flatten()
        {
            if !details.is_empty() {
                details.push(' ');
            }
            details.push_str(part);
        }
        if let Some(wait) = event.wait_s {
            details.push_str(&format!(" wait {}", clock_duration(u64::from(wait))));
        }
        if let Some(talk) = event.talk_s {
            details.push_str(&format!(" talk {}", clock_duration(u64::from(talk))));
        }
        if let Some(ring) = event.ring_ms {
            details.push_str(&format!(" rang {}s", ring / 1000));
        }
        if let Some(detail) = &event.detail {
            details.push(' ');
            details.push_str(detail);
        }
        cell(buf, cols[3], y, details.trim_start(), roles.dim);
    }
    if shown == 0 {
        let text = if log.is_empty() {
            "Waiting for queue events…"
        } else {
            "No event matches the filters."
        };
        buf.set_stringn(
            inner.x + 1,
            inner.y,
            text,
            usize::from(inner.width.saturating_sub(1)),
            roles.dim,
        );
    }
}

/// Errors and confirmations.
pub fn draw_notice(buf: &mut Buffer, area: Rect, app: &App, theme: &Theme) {
    let Some(notice) = &app.notice else {
        // With nothing to report, the standing hint (the demo's "how to use your PBX").
        if let Some(hint) = &app.config.standing_hint {
            buf.set_stringn(
                area.x + 1,
                area.y,
                hint,
                usize::from(area.width.saturating_sub(1)),
                theme.roles.dim,
            );
        }
        return;
    };
    let style = match notice.level {
        NoticeLevel::Info => theme.roles.notice,
        NoticeLevel::Alert => theme.roles.alert,
    };
    buf.set_stringn(
        area.x + 1,
        area.y,
        &notice.text,
        usize::from(area.width.saturating_sub(1)),
        style,
    );
}

/// The keys valid right now, from the keymap. `help` is kept when the bar is cut short.
pub fn draw_bar(buf: &mut Buffer, area: Rect, app: &App, theme: &Theme) {
    let roles = &theme.roles;
    let items = keymap::bar(app);
    // " key " then " label  ".
    let width = |(key, label): &(String, &str)| Span::raw(key.as_str()).width() + label.len() + 5;
    let help_label = Action::Help.label();
    let help = items
        .iter()
        .find(|(_, label)| *label == help_label)
        .cloned();
    let reserve = help.as_ref().map_or(0, width);
    let mut used = 1;
    let mut spans = vec![Span::raw(" ")];
    let mut dropped = false;
    let mut help_shown = false;
    for item in &items {
        let w = width(item);
        let is_help = item.1 == help_label;
        let room = usize::from(area.width);
        if (is_help && dropped) || (!is_help && used + w + reserve > room) {
            dropped = true;
            continue;
        }
        used += w;
        help_shown |= is_help;
        spans.push(Span::styled(format!(" {} ", item.0), roles.key));
        spans.push(Span::styled(format!(" {}  ", item.1), roles.key_label));
    }
    if dropped && !help_shown {
        if let Some((key, label)) = help {
            spans.push(Span::styled(format!(" {key} "), roles.key));
            spans.push(Span::styled(format!(" {label} "), roles.key_label));
        }
    }
    buf.set_line(area.x, area.y, &Line::from(spans), area.width);
}
