//! Drawing: pure functions of an [`App`] and a [`Theme`] into a ratatui buffer. Nothing here
//! changes state or touches the terminal; the run loop calls [`draw`] when the app is dirty.
//!
//! Layout from 80×24 up. Narrow (below 120 columns or 30 rows): the calls pane across the top,
//! queues beside agents, then the tabs beside the event stream. Wide: queues over agents on the
//! left, calls, tabs and events on the right. Below 80×24 only a "too small" notice is drawn.
//!
//! Rows are drawn cell by cell into the buffer (no table layout solving): a render touches only
//! the visible rows, so 1000 agents or 10 000 events cost what one screen costs.

mod panes;
mod popups;
mod tabs;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Paragraph, Widget};
use ratatui::Frame;

use super::app::{App, Modal, Pane};
use super::theme::Theme;

pub use panes::{
    draw_agents, draw_bar, draw_calls, draw_events, draw_header, draw_notice, draw_queues,
};
pub use popups::{
    draw_confirm_quit, draw_help, draw_incoming, draw_palette, draw_picker, draw_prompt,
};
pub use tabs::draw_tabs;

pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;
const WIDE_WIDTH: u16 = 120;
const WIDE_HEIGHT: u16 = 30;

/// Where each part of the screen goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub header: Rect,
    pub calls: Rect,
    pub queues: Rect,
    pub agents: Rect,
    pub tabs: Rect,
    pub events: Rect,
    pub notice: Rect,
    pub bar: Rect,
}

impl Areas {
    pub fn of(&self, pane: Pane) -> Rect {
        match pane {
            Pane::Calls => self.calls,
            Pane::Queues => self.queues,
            Pane::Agents => self.agents,
            Pane::Tabs => self.tabs,
            Pane::Events => self.events,
        }
    }
}

/// The screen layout for `area`; `None` below 80×24.
pub fn layout(area: Rect, app: &App) -> Option<Areas> {
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        return None;
    }
    let [header, body, notice, bar] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    // Border, column header, one row per call; at least room for the empty-state line.
    let call_rows = u16::try_from(app.calls.len()).unwrap_or(u16::MAX).max(1);
    let wide = area.width >= WIDE_WIDTH && area.height >= WIDE_HEIGHT;
    let areas = if wide {
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)])
                .areas(body);
        let [queues, agents] =
            Layout::vertical([Constraint::Percentage(45), Constraint::Min(0)]).areas(left);
        let calls_height = call_rows.saturating_add(3).clamp(4, 10);
        let [calls, tabs, events] = Layout::vertical([
            Constraint::Length(calls_height),
            Constraint::Length(8),
            Constraint::Min(0),
        ])
        .areas(right);
        Areas {
            header,
            calls,
            queues,
            agents,
            tabs,
            events,
            notice,
            bar,
        }
    } else {
        let calls_height = call_rows.saturating_add(3).clamp(4, 7);
        let [calls, middle, bottom] = Layout::vertical([
            Constraint::Length(calls_height),
            Constraint::Percentage(55),
            Constraint::Min(0),
        ])
        .areas(body);
        let [queues, agents] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(middle);
        let [tabs, events] =
            Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)])
                .areas(bottom);
        Areas {
            header,
            calls,
            queues,
            agents,
            tabs,
            events,
            notice,
            bar,
        }
    };
    Some(areas)
}

/// Draws the whole dashboard.
pub fn draw(frame: &mut Frame, app: &App, theme: &Theme) {
    let area = frame.area();
    draw_into(frame.buffer_mut(), area, app, theme);
}

/// [`draw`] on a bare buffer (benchmarks, tests).
pub fn draw_into(buf: &mut Buffer, area: Rect, app: &App, theme: &Theme) {
    let Some(areas) = layout(area, app) else {
        draw_too_small(buf, area, theme);
        return;
    };
    buf.set_style(area, theme.roles.text);
    draw_header(buf, areas.header, app, theme);
    draw_calls(buf, areas.calls, app, theme);
    draw_queues(buf, areas.queues, app, theme);
    draw_agents(buf, areas.agents, app, theme);
    draw_tabs(buf, areas.tabs, app, theme);
    draw_events(buf, areas.events, app, theme);
    draw_notice(buf, areas.notice, app, theme);
    draw_bar(buf, areas.bar, app, theme);
    match &app.modal {
        Some(Modal::Prompt(prompt)) => draw_prompt(buf, area, app, prompt, theme),
        Some(Modal::Pick(picker)) => draw_picker(buf, area, picker, theme),
        Some(Modal::Help { scroll }) => draw_help(buf, area, app, *scroll, theme),
        Some(Modal::Palette { input, selected }) => {
            draw_palette(buf, area, app, input, *selected, theme)
        }
        Some(Modal::ConfirmQuit) => draw_confirm_quit(buf, area, app, theme),
        Some(Modal::Form(form)) => tabs::draw_form(buf, area, form, theme),
        Some(Modal::Card {
            contact,
            activities,
        }) => tabs::draw_card(buf, area, app, contact, activities, theme),
        Some(Modal::ConfirmDone { summary, .. }) => {
            tabs::draw_confirm_done(buf, area, summary, theme)
        }
        Some(Modal::SendChoice(draft)) => tabs::draw_send_choice(buf, area, draft, theme),
        None => {
            if app.ringing_call().is_some() {
                draw_incoming(buf, area, app, theme);
            }
        }
    }
}

/// What a terminal below 80×24 shows instead of the dashboard.
pub fn draw_too_small(buf: &mut Buffer, area: Rect, theme: &Theme) {
    buf.set_style(area, theme.roles.text);
    let lines = vec![
        Line::from(Span::styled(
            format!("Terminal too small: {}×{}", area.width, area.height),
            theme.roles.alert,
        )),
        Line::from(Span::styled(
            format!("ringside needs at least {MIN_WIDTH}×{MIN_HEIGHT}"),
            theme.roles.dim,
        )),
    ];
    let y = area.y + area.height.saturating_sub(2) / 2;
    let text_area = Rect::new(area.x, y, area.width, area.height.min(2));
    Paragraph::new(lines)
        .centered()
        .render(text_area.intersection(area), buf);
}

/// Which pane (and which list row of it, as a selection index) is at a cell. Used for mouse
/// clicks; the same layout as [`draw`], so a click lands where the eye does.
pub fn hit(app: &App, column: u16, row: u16) -> Option<(Pane, Option<usize>)> {
    let area = Rect::new(0, 0, app.size.0, app.size.1);
    let areas = layout(area, app)?;
    let position = Position::new(column, row);
    let pane = Pane::ALL
        .into_iter()
        .find(|pane| areas.of(*pane).contains(position))?;
    let rect = areas.of(pane);
    // Rows start under the border and the column header.
    let first = rect.y.saturating_add(2);
    let data_rows = usize::from(rect.height.saturating_sub(3));
    let index =
        (row >= first && row < rect.bottom().saturating_sub(1)).then(|| usize::from(row - first));
    let index = index.and_then(|i| match pane {
        Pane::Calls => Some(list_offset(app.selection.calls, app.calls.len(), data_rows) + i),
        Pane::Queues => panes::queue_at(app, data_rows, i),
        Pane::Agents => {
            let len = app.visible_agents().count();
            Some(list_offset(app.selection.agents, len, data_rows) + i)
        }
        Pane::Tabs => {
            let len = app.desk.len(app.tab);
            let at = list_offset(app.desk.selected(app.tab), len, data_rows) + i;
            (at < len).then_some(at)
        }
        Pane::Events => None,
    });
    Some((pane, index))
}

/// The first row shown of a list of `len` with `selected` kept in view in `rows` rows: no
/// scroll state is kept, so drawing stays a function of the app.
pub fn list_offset(selected: usize, len: usize, rows: usize) -> usize {
    if rows == 0 || len <= rows {
        return 0;
    }
    selected.min(len - 1).saturating_sub(rows - 1)
}

/// A bordered pane with its title; returns the inside.
fn pane_block(buf: &mut Buffer, area: Rect, title: Line<'_>, focused: bool, theme: &Theme) -> Rect {
    let border = if focused {
        theme.roles.border_focused
    } else {
        theme.roles.border
    };
    let block = Block::bordered()
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(border)
        .title(title);
    let inner = block.inner(area);
    block.render(area, buf);
    inner
}

/// A column of a hand-laid table: x and width.
#[derive(Debug, Clone, Copy)]
struct Column {
    x: u16,
    width: u16,
}

/// Lays out columns of fixed widths with one flexible column taking what is left (at least
/// `min_flex`), one blank between columns. Columns that do not fit get width 0.
fn columns(area: Rect, widths: &[u16], flex: usize, min_flex: u16) -> Vec<Column> {
    let gaps = u16::try_from(widths.len().saturating_sub(1)).unwrap_or(0);
    let fixed: u16 = widths
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != flex)
        .map(|(_, w)| *w)
        .sum();
    let flex_width = area
        .width
        .saturating_sub(fixed.saturating_add(gaps))
        .max(min_flex);
    let mut x = area.x;
    let mut out = Vec::with_capacity(widths.len());
    for (i, width) in widths.iter().enumerate() {
        let wanted = if i == flex { flex_width } else { *width };
        let room = area.right().saturating_sub(x);
        let width = wanted.min(room);
        out.push(Column { x, width });
        x = x.saturating_add(width).saturating_add(1);
    }
    out
}

/// Writes `text` left-aligned in a column; text too long is cut with an ellipsis.
fn cell(buf: &mut Buffer, column: Column, y: u16, text: &str, style: Style) {
    let width = usize::from(column.width);
    if width == 0 {
        return;
    }
    // Byte length bounds display width for the ASCII most cells hold: skip measuring then.
    if text.len() <= width || Span::raw(text).width() <= width {
        buf.set_stringn(column.x, y, text, width, style);
    } else {
        let (x, _) = buf.set_stringn(column.x, y, text, width - 1, style);
        buf.set_stringn(x, y, "…", 1, style);
    }
}

/// Writes `text` right-aligned in a column (numbers).
fn cell_right(buf: &mut Buffer, column: Column, y: u16, text: &str, style: Style) {
    let width = u16::try_from(Span::raw(text).width()).unwrap_or(u16::MAX);
    if width >= column.width {
        cell(buf, column, y, text, style);
    } else {
        buf.set_stringn(
            column.x + column.width - width,
            y,
            text,
            usize::from(width),
            style,
        );
    }
}

/// A role's style without its background, to lay over a line that has one.
fn over(style: Style) -> Style {
    Style { bg: None, ..style }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::session::MediaStats;
    use crate::queue::ami::{
        AgentCalled, AgentConnect, AgentLeg, CallerChannel, DeviceState, QueueAmiEvent,
        QueueMemberInfo,
    };
    use crate::queue::report::{ReportEvent, ReportKind};
    use crate::sip::ua::{CallDirection, CallId, CallInfo, CallState, UaEvent};
    use crate::tui::app::tests::{
        answered, app, caller_joins, code, incoming, key, member, params, type_text, T0_MS,
    };
    use crate::tui::app::{Input, Mouse, MouseKind};
    use crate::tui::keymap::KeyCode;
    use ratatui::backend::TestBackend;
    use ratatui::style::Color;
    use ratatui::Terminal;
    use std::time::Duration;

    fn render(app: &App, theme: &Theme, width: u16, height: u16) -> Terminal<TestBackend> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
        terminal
            .draw(|frame| draw(frame, app, theme))
            .expect("draw");
        terminal
    }

    fn dark() -> Theme {
        Theme::built_in("default").expect("default theme")
    }

    fn screen(app: &App, width: u16, height: u16) -> String {
        render(app, &dark(), width, height).backend().to_string()
    }

    /// The queues, agents and events of a small live call center.
    fn call_center() -> App {
        let mut app = app();
        app.update(Input::Resize {
            width: 80,
            height: 24,
        });
        for q in ["sales", "support"] {
            app.update(Input::Queue(params(q)));
        }
        for (queue, interface, name, state) in [
            ("support", "PJSIP/101", "101", DeviceState::NotInUse),
            ("support", "PJSIP/agent1", "agent1", DeviceState::InUse),
            ("support", "PJSIP/agent2", "agent2", DeviceState::NotInUse),
            ("sales", "PJSIP/agent2", "agent2", DeviceState::NotInUse),
            ("sales", "PJSIP/agent3", "agent3", DeviceState::Unavailable),
        ] {
            app.update(Input::Queue(member(queue, interface, name, state)));
        }
        app.update(Input::Queue(QueueAmiEvent::QueueMemberPause(
            QueueMemberInfo {
                queue: "sales".to_owned(),
                member_name: "agent2".to_owned(),
                interface: "PJSIP/agent2".to_owned(),
                paused: Some(true),
                paused_reason: "lunch".to_owned(),
                ..QueueMemberInfo::default()
            },
        )));
        app.update(Input::Queue(QueueAmiEvent::QueueMemberPause(
            QueueMemberInfo {
                queue: "support".to_owned(),
                member_name: "agent2".to_owned(),
                interface: "PJSIP/agent2".to_owned(),
                paused: Some(true),
                paused_reason: "lunch".to_owned(),
                ..QueueMemberInfo::default()
            },
        )));
        app.update(Input::Queue(caller_joins(
            "support",
            "u1",
            "+32470111111",
            "Bob Martin",
        )));
        let events = [
            (
                0,
                ReportKind::EnterQueue,
                "support",
                Some("+32470111111"),
                None,
            ),
            (3, ReportKind::AgentConnect, "sales", None, Some("agent3")),
            (
                9,
                ReportKind::EnterQueue,
                "sales",
                Some("+33612345678"),
                None,
            ),
            (
                21,
                ReportKind::CallerQuit,
                "sales",
                Some("+33612345678"),
                None,
            ),
        ];
        for (offset, kind, queue, caller, agent) in events {
            app.update(Input::Report(ReportEvent {
                time: T0_MS / 1000 - 60 + offset,
                kind,
                queue: queue.to_owned(),
                call_id: caller.map(|c| format!("id-{c}")),
                agent: agent.map(str::to_owned),
                caller: caller.map(str::to_owned),
                wait_s: (kind == ReportKind::CallerQuit).then_some(12),
                talk_s: None,
                ring_ms: None,
                position: Some(1),
                detail: None,
            }));
        }
        crate::tui::sample::fill_desk(&mut app);
        app.update(Input::Tick {
            epoch_ms: T0_MS + 42_000,
        });
        app.notice = None;
        app
    }

    fn ring(app: &mut App) {
        // The lab rings this agent for Bob, who waits in support.
        app.update(Input::Queue(QueueAmiEvent::AgentCalled(AgentCalled {
            queue: "support".to_owned(),
            caller: CallerChannel {
                uniqueid: "u1".to_owned(),
                ..CallerChannel::default()
            },
            agent: AgentLeg {
                interface: "PJSIP/101".to_owned(),
                member_name: "101".to_owned(),
                ..AgentLeg::default()
            },
            ..AgentCalled::default()
        })));
        incoming(app, 1, "sip:+32470111111@lab", Some("Bob Martin"));
        app.update(Input::Tick {
            epoch_ms: T0_MS + 46_000,
        });
    }

    fn talk(app: &mut App) {
        ring(app);
        answered(app, 1);
        app.update(Input::Queue(QueueAmiEvent::AgentConnect(AgentConnect {
            queue: "support".to_owned(),
            caller: CallerChannel {
                uniqueid: "u1".to_owned(),
                ..CallerChannel::default()
            },
            agent: AgentLeg {
                interface: "PJSIP/101".to_owned(),
                member_name: "101".to_owned(),
                ..AgentLeg::default()
            },
            ..AgentConnect::default()
        })));
        app.update(Input::Snapshot {
            calls: vec![CallInfo {
                id: CallId(1),
                direction: CallDirection::Incoming,
                state: CallState::Active,
                remote_uri: "sip:+32470111111@lab".to_owned(),
                remote_name: Some("Bob Martin".to_owned()),
                on_hold: false,
                remote_hold: false,
                codec: Some("PCMU".to_owned()),
                duration: Duration::from_secs(83),
                transferring: false,
                consultation_of: None,
                age: Duration::from_secs(90),
            }],
            registered: true,
            media: vec![(CallId(1), MediaStats::default(), 4.2)],
        });
        app.notice = None;
    }

    /// The cell style at the first place `text` appears on screen.
    fn style_of(terminal: &Terminal<TestBackend>, text: &str) -> Style {
        let buffer = terminal.backend().buffer();
        let width = usize::from(buffer.area.width);
        let symbols: Vec<&str> = buffer.content().iter().map(|c| c.symbol()).collect();
        for (row, line) in symbols.chunks(width).enumerate() {
            let joined: String = line.concat();
            if let Some(byte) = joined.find(text) {
                let column = joined[..byte].chars().count();
                return buffer.content()[row * width + column].style();
            }
        }
        panic!("{text:?} is not on screen:\n{}", terminal.backend());
    }

    #[test]
    fn idle_80x24() {
        let app = call_center();
        insta::assert_snapshot!(screen(&app, 80, 24));
    }

    #[test]
    fn idle_wide_160x48() {
        let mut app = call_center();
        app.update(Input::Resize {
            width: 160,
            height: 48,
        });
        insta::assert_snapshot!(screen(&app, 160, 48));
    }

    #[test]
    fn ringing_with_incoming_popup() {
        let mut app = call_center();
        ring(&mut app);
        let screen = screen(&app, 80, 24);
        assert!(screen.contains("via support"), "{screen}");
        insta::assert_snapshot!(screen);
    }

    #[test]
    fn in_call() {
        let mut app = call_center();
        talk(&mut app);
        app.update(key('m'));
        app.notice = None;
        insta::assert_snapshot!(screen(&app, 80, 24));
    }

    #[test]
    fn on_hold() {
        let mut app = call_center();
        talk(&mut app);
        app.update(Input::Ua(UaEvent::Held { call: CallId(1) }));
        insta::assert_snapshot!(screen(&app, 80, 24));
    }

    #[test]
    fn attended_transfer() {
        let mut app = call_center();
        talk(&mut app);
        app.update(key('T'));
        type_text(&mut app, "102");
        app.update(code(KeyCode::Enter));
        app.update(Input::Ua(UaEvent::Held { call: CallId(1) }));
        app.update(Input::Ua(UaEvent::Dialing {
            call: CallId(2),
            to: "sip:102@lab".to_owned(),
        }));
        app.update(Input::Ua(UaEvent::Ringing {
            call: CallId(2),
            early_media: false,
        }));
        answered(&mut app, 2);
        app.update(Input::Tick {
            epoch_ms: T0_MS + 60_000,
        });
        let text = screen(&app, 80, 24);
        assert!(text.contains("complete transfer"), "{text}");
        insta::assert_snapshot!(text);
    }

    /// 50 queues, 1000 agents (a tenth of them in each queue) and `events` report events.
    fn busy(events: usize) -> App {
        let mut app = app();
        crate::tui::sample::fill_busy(&mut app, events);
        app
    }

    #[test]
    fn busy_queues_80x24() {
        let mut app = busy(200);
        app.focus = Pane::Queues;
        app.update(code(KeyCode::Enter));
        insta::assert_snapshot!(screen(&app, 80, 24));
    }

    #[test]
    fn busy_queues_wide() {
        let mut app = busy(200);
        app.update(Input::Resize {
            width: 160,
            height: 48,
        });
        app.focus = Pane::Queues;
        app.update(code(KeyCode::Enter));
        insta::assert_snapshot!(screen(&app, 160, 48));
    }

    #[test]
    fn too_small() {
        let app = call_center();
        let text = screen(&app, 70, 20);
        assert!(text.contains("Terminal too small: 70×20"));
        insta::assert_snapshot!(text);
    }

    #[test]
    fn popups() {
        let mut app = call_center();
        app.update(key('d'));
        type_text(&mut app, "0470 12");
        app.update(code(KeyCode::Enter));
        insta::assert_snapshot!("dial_prompt_error", screen(&app, 80, 24));
        app.update(code(KeyCode::Esc));
        app.update(key('?'));
        insta::assert_snapshot!("help", screen(&app, 80, 24));
        app.update(code(KeyCode::Esc));
        app.update(key(':'));
        type_text(&mut app, "queue");
        insta::assert_snapshot!("palette", screen(&app, 80, 24));
        app.update(code(KeyCode::Esc));
        let mut app = call_center();
        app.me().expect("101 is in support");
        app.update(code(KeyCode::Esc));
        talk(&mut app);
        app.update(key('q'));
        insta::assert_snapshot!("confirm_quit", screen(&app, 80, 24));
    }

    #[test]
    fn queue_picker() {
        let mut app = call_center();
        app.config.queue_codes.push(crate::tui::app::QueueCodes {
            queue: "billing".to_owned(),
            extension: "800".to_owned(),
            login_code: "*800".to_owned(),
            logout_code: "*801".to_owned(),
        });
        app.update(key('c'));
        insta::assert_snapshot!(screen(&app, 80, 24));
    }

    #[test]
    fn theme_roles_colour_the_cells() {
        let theme = dark();
        let roles = &theme.roles;
        let mut app = call_center();
        ring(&mut app);
        app.focus = Pane::Events;
        let terminal = render(&app, &theme, 160, 48);
        // The ringing call's state cell, under the popup in the calls pane at this size.
        assert_eq!(style_of(&terminal, "ringing").fg, roles.ringing.fg);
        assert_eq!(
            style_of(&terminal, "Incoming call").fg,
            roles.popup_border.fg
        );
        assert_eq!(style_of(&terminal, "caller-quit").fg, roles.event_alert.fg);
        assert_eq!(style_of(&terminal, "registering").bg, roles.unregistered.bg);
        // The focused pane's border, the others' borders.
        assert_eq!(style_of(&terminal, "Events").fg, roles.title.fg);
        assert_eq!(style_of(&terminal, "┏").fg, roles.border_focused.fg);
        assert_eq!(style_of(&terminal, "┌").fg, roles.border.fg);

        talk(&mut app);
        app.update(Input::Ua(UaEvent::Held { call: CallId(1) }));
        let terminal = render(&app, &theme, 160, 48);
        assert_eq!(style_of(&terminal, "on hold").fg, roles.on_hold.fg);
        assert_eq!(style_of(&terminal, "4.2").fg, roles.mos_good.fg);
        assert_eq!(
            style_of(&terminal, "paused: lunch").fg,
            roles.agent_paused.fg
        );
        assert_eq!(
            style_of(&terminal, "unavailable").fg,
            roles.agent_unavailable.fg
        );
        assert_eq!(style_of(&terminal, "registered").bg, roles.registered.bg);
        assert_ne!(roles.on_hold.fg, roles.ringing.fg);

        // The same screen in mono has no colour anywhere.
        let mono = Theme::mono();
        let terminal = render(&app, &mono, 160, 48);
        for cell in terminal.backend().buffer().content() {
            assert!(matches!(cell.fg, Color::Reset), "{cell:?}");
            assert!(matches!(cell.bg, Color::Reset), "{cell:?}");
        }
    }

    #[test]
    fn every_theme_draws_every_state() {
        for (name, _) in crate::tui::theme::BUILT_IN {
            let theme = Theme::built_in(name).expect("theme");
            let mut app = call_center();
            ring(&mut app);
            let ringing = render(&app, &theme, 80, 24);
            assert_eq!(
                style_of(&ringing, "ringing").fg,
                theme.roles.ringing.fg.or(Some(Color::Reset))
            );
            talk(&mut app);
            let talking = render(&app, &theme, 80, 24);
            assert!(talking.backend().to_string().contains("active"));
        }
    }

    #[test]
    fn the_bar_is_the_keymaps() {
        let mut app = call_center();
        let text = screen(&app, 80, 24);
        let bar = text.lines().nth(23).unwrap_or_default().to_owned();
        assert!(bar.contains(" d  dial "), "{bar}");
        assert!(bar.contains(" ?  help "), "{bar}");
        app.keymap = crate::tui::keymap::Keymap::from_toml(
            "[keys]\ndial = \"n\"\n",
            std::path::Path::new("k.toml"),
        )
        .expect("keymap");
        let text = screen(&app, 80, 24);
        let bar = text.lines().nth(23).unwrap_or_default().to_owned();
        assert!(bar.contains(" n  dial "), "{bar}");
        assert!(!bar.contains(" d  dial "), "{bar}");
    }

    /// Focus the tabs pane on `tab`.
    fn show_tab(app: &mut App, tab: crate::tui::app::Tab) {
        app.focus = Pane::Tabs;
        app.tab = tab;
    }

    #[test]
    fn the_three_tabs() {
        use crate::tui::app::Tab;
        let mut app = call_center();
        show_tab(&mut app, Tab::Recent);
        app.update(code(KeyCode::Down));
        let wide = screen(&app, 160, 48);
        assert!(wide.contains("›← +3225550199"), "{wide}");
        insta::assert_snapshot!("tab_recent_wide", wide);
        show_tab(&mut app, Tab::NextActivities);
        let text = screen(&app, 160, 48);
        assert!(text.contains("11-19 Call  Follow up on the quote · Ana Silva"));
        insta::assert_snapshot!("tab_activities_wide", text);
        // Overdue is drawn as an alert, today's as text.
        let terminal = render(&app, &dark(), 160, 48);
        assert_eq!(style_of(&terminal, "11-19").fg, dark().roles.alert.fg);
        show_tab(&mut app, Tab::Contacts);
        insta::assert_snapshot!("tab_contacts_80x24", screen(&app, 80, 24));
        app.update(key('/'));
        type_text(&mut app, "chen");
        insta::assert_snapshot!("tab_contacts_search", screen(&app, 80, 24));
    }

    #[test]
    fn desk_popups() {
        use crate::tui::app::Tab;
        let mut app = call_center();
        show_tab(&mut app, Tab::NextActivities);
        app.update(key('e'));
        insta::assert_snapshot!("activity_edit_form", screen(&app, 80, 24));
        app.update(code(KeyCode::Esc));
        show_tab(&mut app, Tab::Contacts);
        app.update(code(KeyCode::Down));
        app.update(key('s'));
        let form = screen(&app, 80, 24);
        assert!(form.contains("Schedule for Chen Wei"), "{form}");
        assert!(form.contains("Call Chen Wei"), "{form}");
        assert!(form.contains("2026-11-22"), "{form}");
        insta::assert_snapshot!("schedule_form", form);
        app.update(code(KeyCode::Esc));
        let contact = app.desk.selected_contact().cloned().expect("Chen");
        app.update(Input::Desk(crate::store::DeskUpdate::Card {
            contact,
            activities: Vec::new(),
        }));
        insta::assert_snapshot!("contact_card", screen(&app, 80, 24));
        app.update(code(KeyCode::Esc));
        // The dial prompt with contact suggestions, the second one picked.
        app.update(key('d'));
        type_text(&mut app, "ma");
        let hits = app.desk.contacts.clone();
        app.update(Input::Desk(crate::store::DeskUpdate::Contacts {
            query: "ma".into(),
            purpose: crate::store::SearchFor::Dial,
            hits,
        }));
        app.update(code(KeyCode::Down));
        app.update(code(KeyCode::Down));
        insta::assert_snapshot!("dial_suggestions", screen(&app, 80, 24));
        app.update(code(KeyCode::Esc));
        app.update(Input::EmailDraft(crate::tui::app::EmailDraft {
            text: "To: \nSubject: Following up on our call\n\nHello,\n\nthank you for your time.\n"
                .into(),
            to: String::new(),
            subject: "Following up on our call".into(),
            problem: Some("the draft has no recipient: fill in the To: line".into()),
            contact: None,
            activity: None,
        }));
        let text = screen(&app, 80, 24);
        assert!(
            text.contains("(nobody yet)") && text.contains("keep for later"),
            "{text}"
        );
        insta::assert_snapshot!("follow_up_send_choice", text);
    }

    #[test]
    fn mouse_clicks_focus_and_select() {
        let mut app = call_center();
        let areas = layout(Rect::new(0, 0, 80, 24), &app).expect("layout");
        let agents = areas.agents;
        // Second agent row: border, header, first row, second row.
        app.update(Input::Mouse(Mouse {
            kind: MouseKind::Click,
            column: agents.x + 3,
            row: agents.y + 3,
        }));
        assert_eq!(app.focus, Pane::Agents);
        assert_eq!(app.selection.agents, 1);
        let events = areas.events;
        app.update(Input::Mouse(Mouse {
            kind: MouseKind::ScrollUp,
            column: events.x + 3,
            row: events.y + 3,
        }));
        assert_eq!(app.focus, Pane::Events);
        assert!(app.events.is_frozen());
    }

    #[test]
    fn list_offsets_keep_the_selection_in_view() {
        assert_eq!(list_offset(0, 100, 10), 0);
        assert_eq!(list_offset(9, 100, 10), 0);
        assert_eq!(list_offset(10, 100, 10), 1);
        assert_eq!(list_offset(99, 100, 10), 90);
        assert_eq!(list_offset(500, 100, 10), 90);
        assert_eq!(list_offset(5, 3, 10), 0);
        assert_eq!(list_offset(5, 30, 0), 0);
    }

    /// `cargo test --release -- --ignored render_cost --nocapture`
    #[test]
    #[ignore = "timing; run in release"]
    fn render_cost_1000_agents_50_queues_10k_events() {
        let mut app = busy(10_000);
        assert_eq!(app.events.len(), 10_000);
        let theme = dark();
        for (width, height) in [(80, 24), (160, 48), (240, 70)] {
            app.update(Input::Resize { width, height });
            let area = Rect::new(0, 0, width, height);
            let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
            let rounds = 500;
            // Warm up, then time whole frames: drawing plus ratatui's diff and flush.
            for _ in 0..20 {
                terminal.draw(|f| draw(f, &app, &theme)).expect("draw");
            }
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                terminal.draw(|f| draw(f, &app, &theme)).expect("draw");
            }
            let frame = start.elapsed() / rounds;
            let mut buf = Buffer::empty(area);
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                draw_into(&mut buf, area, &app, &theme);
            }
            let draw_only = start.elapsed() / rounds;
            // With a filter that matches few events the stream pane scans the whole ring.
            app.events.kind = Some(ReportKind::ExitEmpty);
            app.search = Some("queue07".to_owned());
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                draw_into(&mut buf, area, &app, &theme);
            }
            let filtered = start.elapsed() / rounds;
            app.events.kind = None;
            app.search = None;
            let start = std::time::Instant::now();
            for _ in 0..20 {
                app.refresh_stats();
            }
            let stats = start.elapsed() / 20;
            println!(
                "{width}x{height}: frame {frame:?}, draw only {draw_only:?}, draw with filters {filtered:?}; stats over 10k events {stats:?}"
            );
            assert!(
                frame < Duration::from_millis(20),
                "far over the 2 ms goal: {frame:?}"
            );
        }
    }
}
