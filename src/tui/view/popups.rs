//! Popups drawn over the dashboard: the incoming call, prompts, help, the command palette,
//! the queue picker and the quit confirmation.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Widget};

use super::over;
use crate::tui::app::{clock_duration, palette_matches, App, Picker, Prompt};
use crate::tui::keymap::{Action, Group};
use crate::tui::theme::Theme;

/// A centred box of at most `width`×`height` inside `area`, cleared and framed; returns the
/// inside.
pub(super) fn popup(
    buf: &mut Buffer,
    area: Rect,
    width: u16,
    height: u16,
    title: &str,
    theme: &Theme,
) -> Rect {
    let width = width.min(area.width.saturating_sub(2));
    let height = height.min(area.height.saturating_sub(2));
    let rect = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
    Clear.render(rect, buf);
    buf.set_style(rect, theme.roles.popup);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(over(theme.roles.popup_border))
        .title(Span::styled(
            format!(" {title} "),
            over(theme.roles.popup_border),
        ));
    let inner = block.inner(rect);
    block.render(rect, buf);
    inner
}

pub(super) fn line(buf: &mut Buffer, inner: Rect, row: u16, text: Line<'_>) {
    if row < inner.height {
        buf.set_line(
            inner.x + 1,
            inner.y + row,
            &text,
            inner.width.saturating_sub(2),
        );
    }
}

/// `a answer   r reject` for the given actions, from the keymap.
fn key_hints<'a>(app: &App, actions: &[Action], theme: &Theme) -> Line<'a> {
    let mut spans = Vec::new();
    for action in actions {
        let Some(key) = app.keymap.keys_of(*action).next() else {
            continue;
        };
        spans.push(Span::styled(format!(" {} ", key.label()), theme.roles.key));
        spans.push(Span::styled(
            format!(" {}   ", action.label()),
            over(theme.roles.popup),
        ));
    }
    Line::from(spans)
}

/// The first incoming call: who, which queue, how long it has rung, and the keys.
pub fn draw_incoming(buf: &mut Buffer, area: Rect, app: &App, theme: &Theme) {
    let Some(call) = app.ringing_call() else {
        return;
    };
    let roles = &theme.roles;
    let inner = popup(buf, area, 52, 8, "Incoming call", theme);
    let name = call.remote_name.as_deref().filter(|n| !n.is_empty());
    line(
        buf,
        inner,
        0,
        Line::from(Span::styled(
            name.unwrap_or_else(|| call.remote_number()).to_owned(),
            over(roles.input),
        )),
    );
    if name.is_some() {
        line(
            buf,
            inner,
            1,
            Line::from(Span::styled(
                call.remote_number().to_owned(),
                over(roles.popup),
            )),
        );
    }
    let mut status = vec![Span::styled("ringing", over(roles.ringing))];
    status.push(Span::styled(
        format!(" {}", clock_duration(call.elapsed_s(app.now_ms))),
        over(roles.popup),
    ));
    if let Some(queue) = &call.queue {
        status.push(Span::styled(format!(" · via {queue}"), over(roles.popup)));
    }
    let others = app.calls.iter().filter(|c| c.id != call.id).count();
    if others > 0 {
        status.push(Span::styled(
            format!(
                " · {others} other call{}",
                if others == 1 { "" } else { "s" }
            ),
            over(roles.dim),
        ));
    }
    line(buf, inner, 2, Line::from(status));
    line(
        buf,
        inner,
        4,
        key_hints(app, &[Action::Answer, Action::Reject], theme),
    );
}

/// A text prompt: what is typed, a hint or the error, the history position.
pub fn draw_prompt(buf: &mut Buffer, area: Rect, app: &App, prompt: &Prompt, theme: &Theme) {
    let roles = &theme.roles;
    let suggestions = u16::try_from(prompt.suggestions.len()).unwrap_or(0);
    let height = if suggestions > 0 { 8 + suggestions } else { 7 };
    let inner = popup(buf, area, 72, height, prompt.purpose.title(), theme);
    let mut typed = vec![
        Span::styled("> ", over(roles.dim)),
        Span::styled(prompt.input.clone(), over(roles.input)),
        Span::styled("▏", over(roles.input)),
    ];
    if let Some(pos) = prompt.history_pos {
        typed.push(Span::styled(
            format!("   history {}/{}", pos + 1, app.dial_history.len()),
            over(roles.dim),
        ));
    }
    line(buf, inner, 0, Line::from(typed));
    let below = match &prompt.error {
        Some(error) => Span::styled(error.clone(), over(roles.alert)),
        None => Span::styled(prompt.purpose.hint(), over(roles.dim)),
    };
    line(buf, inner, 2, Line::from(below));
    if let Some(region) = &app.config.default_region {
        if prompt.error.is_none() && prompt.purpose.takes_numbers() {
            line(
                buf,
                inner,
                3,
                Line::from(Span::styled(
                    format!("National numbers are read as {region} numbers"),
                    over(roles.dim),
                )),
            );
        }
    }
    for (i, (name, number)) in prompt.suggestions.iter().enumerate() {
        let picked = prompt.pick == Some(i);
        let style = if picked {
            roles.selected
        } else {
            over(roles.popup)
        };
        let row = 5 + u16::try_from(i).unwrap_or(u16::MAX);
        line(
            buf,
            inner,
            row,
            Line::from(vec![
                Span::styled(if picked { "› " } else { "  " }, style),
                Span::styled(format!("{name}  "), style),
                Span::styled(number.clone(), over(roles.dim)),
            ]),
        );
    }
}

/// Every action by group, with its keys; those that do not apply now are dimmed.
pub fn draw_help(buf: &mut Buffer, area: Rect, app: &App, scroll: usize, theme: &Theme) {
    let roles = &theme.roles;
    let inner = popup(buf, area, 90, area.height.saturating_sub(2), "Keys", theme);
    let facts = app.facts();
    let mut lines: Vec<Line<'_>> = Vec::new();
    for group in Group::ALL {
        if !lines.is_empty() {
            lines.push(Line::raw(""));
        }
        lines.push(Line::from(Span::styled(group.title(), over(roles.title))));
        for action in Action::ALL.iter().filter(|a| a.group() == group) {
            let keys = app.keymap.keys_text(*action);
            let keys = if keys.is_empty() {
                "(unbound)".to_owned()
            } else {
                keys
            };
            let applies = action.condition().holds(&facts);
            let text_style = if applies {
                over(roles.popup)
            } else {
                over(roles.dim)
            };
            let key_style = if applies {
                over(roles.input)
            } else {
                over(roles.dim)
            };
            // keys (10), name (18), then the help text wrapped under itself.
            const INDENT: usize = 2 + 10 + 1 + 18 + 1;
            let room = usize::from(inner.width.saturating_sub(2))
                .saturating_sub(INDENT)
                .max(20);
            let mut parts = wrap(action.help(), room).into_iter();
            lines.push(Line::from(vec![
                Span::styled(format!("  {keys:<10} "), key_style),
                Span::styled(format!("{:<18} ", action.name()), over(roles.dim)),
                Span::styled(parts.next().unwrap_or_default(), text_style),
            ]));
            for rest in parts {
                lines.push(Line::from(vec![
                    Span::raw(" ".repeat(INDENT)),
                    Span::styled(rest, text_style),
                ]));
            }
        }
    }
    let rows = usize::from(inner.height);
    let scroll = scroll.min(lines.len().saturating_sub(rows));
    for (row, text) in lines.into_iter().skip(scroll).take(rows).enumerate() {
        line(buf, inner, u16::try_from(row).unwrap_or(0), text);
    }
}

/// Actions by name, filtered by what is typed.
pub fn draw_palette(
    buf: &mut Buffer,
    area: Rect,
    app: &App,
    input: &str,
    selected: usize,
    theme: &Theme,
) {
    let roles = &theme.roles;
    let inner = popup(buf, area, 72, 16, "Commands", theme);
    line(
        buf,
        inner,
        0,
        Line::from(vec![
            Span::styled(": ", over(roles.dim)),
            Span::styled(input.to_owned(), over(roles.input)),
            Span::styled("▏", over(roles.input)),
        ]),
    );
    let facts = app.facts();
    let matches = palette_matches(input);
    if matches.is_empty() {
        line(
            buf,
            inner,
            2,
            Line::from(Span::styled("No action has that name.", over(roles.dim))),
        );
        return;
    }
    let rows = usize::from(inner.height.saturating_sub(2));
    let offset = super::list_offset(selected, matches.len(), rows);
    for (n, action) in matches.iter().enumerate().skip(offset).take(rows) {
        let applies = action.condition().holds(&facts);
        let base = if n == selected {
            roles.selected
        } else if applies {
            over(roles.popup)
        } else {
            over(roles.dim)
        };
        let keys = app.keymap.keys_text(*action);
        let row = u16::try_from(n - offset + 2).unwrap_or(0);
        let y = inner.y + row;
        if row < inner.height {
            let width = inner.width.saturating_sub(2);
            buf.set_style(Rect::new(inner.x + 1, y, width, 1), base);
            let text = format!("{:<20} {:<8} {}", action.name(), keys, action.help());
            buf.set_stringn(inner.x + 1, y, text, usize::from(width), base);
        }
    }
}

/// Pick a queue for connect or disconnect.
pub fn draw_picker(buf: &mut Buffer, area: Rect, picker: &Picker, theme: &Theme) {
    let roles = &theme.roles;
    let height = u16::try_from(picker.options.len())
        .unwrap_or(u16::MAX)
        .saturating_add(4);
    let inner = popup(buf, area, 44, height, &picker.title, theme);
    for (i, option) in picker.options.iter().enumerate() {
        let row = u16::try_from(i + 1).unwrap_or(u16::MAX);
        let style = if i == picker.selected {
            roles.selected
        } else {
            over(roles.popup)
        };
        let number = if i < 9 {
            format!("{}. ", i + 1)
        } else {
            "   ".to_owned()
        };
        if row < inner.height {
            let width = inner.width.saturating_sub(2);
            buf.set_style(Rect::new(inner.x + 1, inner.y + row, width, 1), style);
            buf.set_stringn(
                inner.x + 1,
                inner.y + row,
                format!("{number}{option}"),
                usize::from(width),
                style,
            );
        }
    }
}

/// Quitting with a call up hangs it up: ask first.
pub fn draw_confirm_quit(buf: &mut Buffer, area: Rect, app: &App, theme: &Theme) {
    let roles = &theme.roles;
    let inner = popup(buf, area, 50, 7, "Quit ringside?", theme);
    let calls = app.calls.len();
    let text = if calls == 1 {
        "A call is up: quitting hangs it up.".to_owned()
    } else {
        format!("{calls} calls are up: quitting hangs them up.")
    };
    line(
        buf,
        inner,
        0,
        Line::from(Span::styled(text, over(roles.alert))),
    );
    line(
        buf,
        inner,
        2,
        Line::from(vec![
            Span::styled(" y ", roles.key),
            Span::styled(" quit   ", over(roles.popup)),
            Span::styled(" n ", roles.key),
            Span::styled(" stay", over(roles.popup)),
        ]),
    );
}

/// Splits `text` at blanks into lines of at most `width` characters (longer words stand alone).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wrapping_keeps_words_whole() {
        assert_eq!(
            wrap("Hang up the selected call (rejects it if it rings)", 20),
            ["Hang up the selected", "call (rejects it if", "it rings)"]
        );
        assert_eq!(wrap("", 10), Vec::<String>::new());
        assert_eq!(
            wrap("supercalifragilistic word", 5),
            ["supercalifragilistic", "word"]
        );
    }
}
