//! Themes: a palette of named colours plus the semantic roles the views draw with.
//!
//! Four themes are built in (`themes/*.toml`, compiled into the binary): `default` (dark),
//! `light`, `high-contrast` and `mono`. A file `NAME.toml` in the user's theme directory
//! overrides or adds a theme; it may say `extends = "light"` (default: `default`) and then
//! names only the roles it changes. `NO_COLOR` selects `mono` unless a theme is asked for by
//! name (no-color.org: an explicit choice wins over the variable).
//!
//! File format:
//!
//! ```toml
//! extends = "default"          # user themes only; optional
//! [palette]                    # names for colours, used by the roles below
//! accent = "#5fafff"
//! [roles]
//! ringing = "yellow"                                # a colour: the foreground
//! selected = { fg = "black", bg = "accent", bold = true }
//! ```
//!
//! A colour is a palette name, an ANSI name (`red`, `lightred`, `darkgray`, `reset`, ...),
//! `#rrggbb`, or a number 0-255 (the 256-colour table). The built-in themes stay within the
//! 16 ANSI colours so they look right in 16-colour terminals and follow the user's palette.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};

use super::toml_tree::{self, Entry, Node};
use crate::toml_check::{nearest, printable, show_value};

macro_rules! roles {
    ($( $(#[$doc:meta])* $field:ident, )*) => {
        /// Every style the views use, by meaning.
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct Roles {
            $( $(#[$doc])* pub $field: Style, )*
        }

        /// The role names as written in theme files, in declaration order.
        pub const ROLE_NAMES: &[&str] = &[ $( stringify!($field), )* ];

        impl Roles {
            fn slot(&mut self, name: &str) -> Option<&mut Style> {
                match name {
                    $( stringify!($field) => Some(&mut self.$field), )*
                    _ => None,
                }
            }
        }
    };
}

roles! {
    /// Ordinary text.
    text,
    /// Secondary text: hints, empty states, units.
    dim,
    border,
    /// The border of the pane that has the keyboard.
    border_focused,
    /// Pane titles.
    title,
    /// The header line's background and text.
    header,
    clock,
    /// The selected row of the focused pane.
    selected,
    tab_active,
    tab_inactive,
    /// A key in the bottom bar and in help.
    key,
    /// The label after a key.
    key_label,
    /// Confirmations on the notice line.
    notice,
    /// Errors and warnings.
    alert,
    /// Popup body.
    popup,
    popup_border,
    /// Text being typed in a prompt.
    input,
    registered,
    unregistered,
    /// An incoming call ringing here, or an outgoing one ringing there.
    ringing,
    /// An outgoing call with early media.
    early,
    /// A call in conversation.
    active,
    /// A call we put on hold.
    on_hold,
    /// A call the far end put on hold.
    remote_hold,
    transferring,
    muted,
    recording,
    mos_good,
    mos_fair,
    mos_bad,
    agent_available,
    agent_ringing,
    agent_busy,
    agent_on_hold,
    agent_paused,
    agent_unavailable,
    agent_logged_out,
    /// Callers waiting in a queue.
    queue_waiting,
    /// Service level at or above its target.
    sla_ok,
    /// Service level below its target.
    sla_bad,
    event_time,
    /// Event kinds that mean a lost or unhappy caller.
    event_alert,
}

/// The built-in themes: name and TOML text.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("default", include_str!("../../themes/default.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("mono", include_str!("../../themes/mono.toml")),
];

/// A theme ready to draw with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Theme {
    pub name: String,
    pub roles: Roles,
}

#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("{}: cannot read the theme file: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}:{line}: invalid TOML: {message}", file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "{}:{line}: unknown key {key}: {expected}{}",
        file.display(),
        suggestion.map(|s| format!("\n  did you mean {s}?")).unwrap_or_default()
    )]
    UnknownKey {
        file: PathBuf,
        line: usize,
        key: String,
        expected: &'static str,
        suggestion: Option<&'static str>,
    },
    #[error(
        "{}:{line}: unknown role [roles].{role}{}",
        file.display(),
        suggestion.map_or_else(
            || "\n  the roles are listed in the built-in theme default.toml".to_owned(),
            |s| format!("\n  did you mean {s}?")
        )
    )]
    UnknownRole {
        file: PathBuf,
        line: usize,
        role: String,
        suggestion: Option<&'static str>,
    },
    #[error("{}:{line}: {key} = {value}: {problem}", file.display())]
    Invalid {
        file: PathBuf,
        line: usize,
        key: String,
        value: String,
        problem: String,
    },
    #[error("{}: roles missing: {}\n  add them under [roles], or start the file with extends = \"default\"", file.display(), roles.join(", "))]
    MissingRoles { file: PathBuf, roles: Vec<String> },
    #[error("no theme named {name:?}: use one of {}", available.join(", "))]
    UnknownTheme {
        name: String,
        available: Vec<String>,
    },
}

const TOP_KEYS: &[&str] = &["extends", "palette", "roles"];
const STYLE_KEYS: &[&str] = &[
    "fg",
    "bg",
    "bold",
    "dim",
    "italic",
    "underlined",
    "reversed",
];
const ANSI: &[(&str, Color)] = &[
    ("reset", Color::Reset),
    ("black", Color::Black),
    ("red", Color::Red),
    ("green", Color::Green),
    ("yellow", Color::Yellow),
    ("blue", Color::Blue),
    ("magenta", Color::Magenta),
    ("cyan", Color::Cyan),
    ("gray", Color::Gray),
    ("darkgray", Color::DarkGray),
    ("lightred", Color::LightRed),
    ("lightgreen", Color::LightGreen),
    ("lightyellow", Color::LightYellow),
    ("lightblue", Color::LightBlue),
    ("lightmagenta", Color::LightMagenta),
    ("lightcyan", Color::LightCyan),
    ("white", Color::White),
];
const COLOUR_FORMS: &str =
    "expected a [palette] name, an ANSI colour (red, lightred, darkgray, reset, ...), #rrggbb or a number 0-255";

impl Theme {
    /// A built-in theme by name.
    pub fn built_in(name: &str) -> Option<Theme> {
        let (name, text) = BUILT_IN.iter().find(|(n, _)| *n == name)?;
        // The built-in files are tested to parse; a broken one falls back to no styling
        // rather than taking the dashboard down.
        Theme::parse(name, text, Path::new(&format!("themes/{name}.toml")), None).ok()
    }

    /// The `mono` theme: modifiers only, no colour.
    pub fn mono() -> Theme {
        Theme::built_in("mono").unwrap_or_else(|| Theme {
            name: "mono".to_owned(),
            roles: Roles::default(),
        })
    }

    /// Parses a theme file. `base` is the theme a file with `extends` (or any file, when
    /// given) starts from; without one every role must be named.
    pub fn parse(
        name: &str,
        text: &str,
        file: &Path,
        base: Option<&Theme>,
    ) -> Result<Theme, ThemeError> {
        let entries = toml_tree::parse(text).map_err(|e| ThemeError::Syntax {
            file: file.to_owned(),
            line: e.line,
            message: e.message,
        })?;
        let mut reader = Reader {
            file,
            text,
            palette: HashMap::new(),
        };
        let mut roles = base.map(|b| b.roles.clone()).unwrap_or_default();
        let mut named: Vec<&str> = Vec::new();
        // The palette first, wherever it stands, so roles may come before it.
        for entry in &entries {
            if entry.name() == "palette" {
                reader.palette(entry)?;
            }
        }
        for entry in &entries {
            match entry.name() {
                "palette" => {}
                "extends" => {
                    if base.is_none() {
                        return Err(reader.invalid(
                            entry,
                            "extends",
                            "extends is for user themes; built-in themes name every role",
                        ));
                    }
                }
                "roles" => {
                    let Node::Table(items) = &entry.node else {
                        return Err(reader.invalid(entry, "roles", "[roles] must be a table"));
                    };
                    for item in items {
                        let style = reader.style(item)?;
                        let Some(slot) = roles.slot(item.name()) else {
                            return Err(ThemeError::UnknownRole {
                                file: file.to_owned(),
                                line: item.line(text),
                                role: printable(item.name(), ""),
                                suggestion: nearest(item.name(), ROLE_NAMES),
                            });
                        };
                        *slot = style;
                        named.push(
                            ROLE_NAMES
                                .iter()
                                .copied()
                                .find(|n| *n == item.name())
                                .unwrap_or_default(),
                        );
                    }
                }
                other => {
                    return Err(ThemeError::UnknownKey {
                        file: file.to_owned(),
                        line: entry.line(text),
                        key: printable(other, ""),
                        expected: "a theme has extends, [palette] and [roles]",
                        suggestion: nearest(other, TOP_KEYS),
                    })
                }
            }
        }
        if base.is_none() {
            let missing: Vec<String> = ROLE_NAMES
                .iter()
                .filter(|role| !named.contains(role))
                .map(|role| (*role).to_owned())
                .collect();
            if !missing.is_empty() {
                return Err(ThemeError::MissingRoles {
                    file: file.to_owned(),
                    roles: missing,
                });
            }
        }
        Ok(Theme {
            name: name.to_owned(),
            roles,
        })
    }

    /// Reads a user theme file: built on the theme its `extends` names (default `default`).
    pub fn parse_user(name: &str, text: &str, file: &Path) -> Result<Theme, ThemeError> {
        let base_name = extends_of(text).unwrap_or_else(|| "default".to_owned());
        let base = Theme::built_in(&base_name).ok_or_else(|| ThemeError::UnknownTheme {
            name: base_name.clone(),
            available: BUILT_IN.iter().map(|(n, _)| (*n).to_owned()).collect(),
        })?;
        Theme::parse(name, text, file, Some(&base))
    }
}

impl fmt::Display for Theme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Whether `NO_COLOR` (its value as the caller read it) asks for no colour: set and not empty.
pub fn no_color(value: Option<&OsStr>) -> bool {
    value.is_some_and(|v| !v.is_empty())
}

/// Chooses the theme: `requested` (from `--theme` or the config) wins; without one, `NO_COLOR`
/// means `mono`, else `default`. A file in `user_dir` overrides a built-in of the same name.
pub fn select(
    requested: Option<&str>,
    no_color: bool,
    user_dir: Option<&Path>,
) -> Result<Theme, ThemeError> {
    let name = match requested {
        Some(name) => name,
        None if no_color => "mono",
        None => "default",
    };
    if let Some(dir) = user_dir {
        let path = dir.join(format!("{name}.toml"));
        // A name is a file name, never a path: no separators, no "..".
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if plain && path.is_file() {
            let text = std::fs::read_to_string(&path).map_err(|error| ThemeError::Read {
                path: path.clone(),
                error,
            })?;
            return Theme::parse_user(name, &text, &path);
        }
    }
    Theme::built_in(name).ok_or_else(|| ThemeError::UnknownTheme {
        name: printable(name, ""),
        available: available(user_dir),
    })
}

/// Theme names: the built-ins, then the user's.
pub fn available(user_dir: Option<&Path>) -> Vec<String> {
    let mut names: Vec<String> = BUILT_IN.iter().map(|(n, _)| (*n).to_owned()).collect();
    if let Some(dir) = user_dir {
        let mut user: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let path = entry.path();
                (path.extension()? == "toml")
                    .then(|| path.file_stem()?.to_str().map(str::to_owned))
                    .flatten()
            })
            .filter(|n| !names.contains(n))
            .collect();
        user.sort();
        names.extend(user);
    }
    names
}

fn extends_of(text: &str) -> Option<String> {
    let entries = toml_tree::parse(text).ok()?;
    entries.iter().find_map(|e| match (&e.node, e.name()) {
        (Node::Value(toml::Value::String(name)), "extends") => Some(name.clone()),
        _ => None,
    })
}

struct Reader<'a> {
    file: &'a Path,
    text: &'a str,
    palette: HashMap<String, Color>,
}

impl Reader<'_> {
    fn invalid(&self, entry: &Entry, key: &str, problem: &str) -> ThemeError {
        let value = match &entry.node {
            Node::Value(v) => show_value(v),
            Node::Table(_) => "{...}".to_owned(),
        };
        ThemeError::Invalid {
            file: self.file.to_owned(),
            line: entry.line(self.text),
            key: key.to_owned(),
            value,
            problem: problem.to_owned(),
        }
    }

    fn palette(&mut self, entry: &Entry) -> Result<(), ThemeError> {
        let Node::Table(items) = &entry.node else {
            return Err(self.invalid(entry, "palette", "[palette] must be a table"));
        };
        for item in items {
            let key = format!("[palette].{}", printable(item.name(), ""));
            let colour = match &item.node {
                Node::Value(value) => plain_colour(value),
                Node::Table(_) => None,
            };
            let Some(colour) = colour else {
                return Err(self.invalid(
                    item,
                    &key,
                    "expected an ANSI colour (red, lightred, ...), #rrggbb or a number 0-255",
                ));
            };
            self.palette.insert(item.name().to_owned(), colour);
        }
        Ok(())
    }

    fn colour(&self, value: &toml::Value) -> Option<Color> {
        if let toml::Value::String(name) = value {
            if let Some(colour) = self.palette.get(name.as_str()) {
                return Some(*colour);
            }
        }
        plain_colour(value)
    }

    fn style(&self, item: &Entry) -> Result<Style, ThemeError> {
        let key = format!("[roles].{}", printable(item.name(), ""));
        match &item.node {
            Node::Value(value) => {
                let colour = self
                    .colour(value)
                    .ok_or_else(|| self.invalid(item, &key, COLOUR_FORMS))?;
                Ok(Style::new().fg(colour))
            }
            Node::Table(fields) => {
                let mut style = Style::new();
                for field in fields {
                    let field_key = format!("{key}.{}", printable(field.name(), ""));
                    let Node::Value(value) = &field.node else {
                        return Err(self.invalid(
                            field,
                            &field_key,
                            "expected a colour or true/false",
                        ));
                    };
                    match field.name() {
                        "fg" | "bg" => {
                            let colour = self
                                .colour(value)
                                .ok_or_else(|| self.invalid(field, &field_key, COLOUR_FORMS))?;
                            style = if field.name() == "fg" {
                                style.fg(colour)
                            } else {
                                style.bg(colour)
                            };
                        }
                        flag @ ("bold" | "dim" | "italic" | "underlined" | "reversed") => {
                            let toml::Value::Boolean(on) = value else {
                                return Err(self.invalid(
                                    field,
                                    &field_key,
                                    "expected true or false",
                                ));
                            };
                            let modifier = match flag {
                                "bold" => Modifier::BOLD,
                                "dim" => Modifier::DIM,
                                "italic" => Modifier::ITALIC,
                                "underlined" => Modifier::UNDERLINED,
                                _ => Modifier::REVERSED,
                            };
                            style = if *on {
                                style.add_modifier(modifier)
                            } else {
                                style.remove_modifier(modifier)
                            };
                        }
                        other => {
                            return Err(ThemeError::UnknownKey {
                                file: self.file.to_owned(),
                                line: field.line(self.text),
                                key: format!("{key}.{}", printable(other, "")),
                                expected:
                                    "a style has fg, bg, bold, dim, italic, underlined and reversed",
                                suggestion: nearest(other, STYLE_KEYS),
                            })
                        }
                    }
                }
                Ok(style)
            }
        }
    }
}

fn plain_colour(value: &toml::Value) -> Option<Color> {
    match value {
        toml::Value::Integer(n) => u8::try_from(*n).ok().map(Color::Indexed),
        toml::Value::String(text) => {
            let lower = text.to_ascii_lowercase();
            if let Some(hex) = lower.strip_prefix('#') {
                if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                let rgb = u32::from_str_radix(hex, 16).ok()?;
                let [_, r, g, b] = rgb.to_be_bytes();
                return Some(Color::Rgb(r, g, b));
            }
            let lower = lower.replace(['_', '-', ' '], "").replace("grey", "gray");
            ANSI.iter().find(|(n, _)| *n == lower).map(|(_, c)| *c)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(text: &str) -> String {
        let base = Theme::built_in("default").expect("default");
        Theme::parse("t", text, Path::new("my.toml"), Some(&base))
            .expect_err("should fail")
            .to_string()
    }

    #[test]
    fn every_built_in_theme_parses_and_names_every_role() {
        for (name, text) in BUILT_IN {
            let theme = Theme::parse(name, text, Path::new(name), None)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(theme.name, *name);
        }
    }

    #[test]
    fn the_themes_tell_states_apart() {
        for (name, _) in BUILT_IN {
            let theme = Theme::built_in(name).expect("built in");
            let r = &theme.roles;
            // States an agent must tell apart at a glance never share a style.
            let distinct = [
                ("ringing", r.ringing),
                ("active", r.active),
                ("on_hold", r.on_hold),
                ("selected", r.selected),
                ("alert", r.alert),
            ];
            for (i, (a, sa)) in distinct.iter().enumerate() {
                for (b, sb) in distinct.iter().skip(i + 1) {
                    assert_ne!(sa, sb, "{name}: {a} and {b} look the same");
                }
            }
            for (a, b) in [
                (r.agent_available, r.agent_busy),
                (r.agent_busy, r.agent_paused),
                (r.agent_ringing, r.agent_available),
                (r.sla_ok, r.sla_bad),
            ] {
                assert_ne!(a, b, "{name}: agent or SLA states look the same");
            }
        }
    }

    #[test]
    fn mono_has_no_colour_at_all() {
        let mono = Theme::mono();
        let r = &mono.roles;
        for style in [
            r.text,
            r.ringing,
            r.selected,
            r.alert,
            r.agent_busy,
            r.sla_bad,
            r.popup,
        ] {
            assert!(matches!(style.fg, None | Some(Color::Reset)), "{style:?}");
            assert!(matches!(style.bg, None | Some(Color::Reset)), "{style:?}");
        }
        assert!(r.selected.add_modifier.contains(Modifier::REVERSED));
    }

    #[test]
    fn colours_in_every_form() {
        let base = Theme::built_in("default").expect("default");
        let text = "extends = \"default\"\n[palette]\naccent = \"#FF8000\"\n[roles]\nringing = \"accent\"\non_hold = 208\nalert = { fg = \"light-red\", bg = \"black\", bold = true }\nmuted = \"Dark Grey\"\n";
        let theme = Theme::parse("mine", text, Path::new("mine.toml"), Some(&base)).expect("valid");
        assert_eq!(
            theme.roles.ringing,
            Style::new().fg(Color::Rgb(255, 128, 0))
        );
        assert_eq!(theme.roles.on_hold, Style::new().fg(Color::Indexed(208)));
        assert_eq!(
            theme.roles.alert,
            Style::new()
                .fg(Color::LightRed)
                .bg(Color::Black)
                .add_modifier(Modifier::BOLD)
        );
        assert_eq!(theme.roles.muted, Style::new().fg(Color::DarkGray));
        // Roles not named keep the base theme's.
        assert_eq!(theme.roles.active, base.roles.active);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        assert_eq!(
            parse_err("[roles]\nringing = \"yellow\"\nringin = \"red\"\n"),
            "my.toml:3: unknown role [roles].ringin\n  did you mean ringing?"
        );
        assert_eq!(
            parse_err("[roles]\n\nactive = \"yelow\"\n"),
            "my.toml:3: [roles].active = \"yelow\": expected a [palette] name, an ANSI colour (red, lightred, darkgray, reset, ...), #rrggbb or a number 0-255"
        );
        assert_eq!(
            parse_err("[roles]\nalert = { fg = \"red\", blink = true }\n"),
            "my.toml:2: unknown key [roles].alert.blink: a style has fg, bg, bold, dim, italic, underlined and reversed"
        );
        assert_eq!(
            parse_err("[roles]\nalert = { bold = \"yes\" }\n"),
            "my.toml:2: [roles].alert.bold = \"yes\": expected true or false"
        );
        assert_eq!(
            parse_err("[palete]\nx = \"red\"\n"),
            "my.toml:1: unknown key palete: a theme has extends, [palette] and [roles]\n  did you mean palette?"
        );
        assert_eq!(
            parse_err("[palette]\nx = 300\n"),
            "my.toml:2: [palette].x = 300: expected an ANSI colour (red, lightred, ...), #rrggbb or a number 0-255"
        );
        assert_eq!(
            parse_err("[roles]\nalert = \"red\"\nx = = 1\n"),
            "my.toml:3: invalid TOML: invalid string"
        );
    }

    #[test]
    fn a_built_in_style_file_must_be_complete() {
        let error = Theme::parse(
            "t",
            "[roles]\ntext = \"white\"\n",
            Path::new("t.toml"),
            None,
        )
        .expect_err("incomplete");
        let text = error.to_string();
        assert!(
            text.starts_with("t.toml: roles missing: dim, border,"),
            "{text}"
        );
    }

    #[test]
    fn selection_follows_no_color_and_explicit_names() {
        assert_eq!(select(None, false, None).expect("default").name, "default");
        assert_eq!(select(None, true, None).expect("mono").name, "mono");
        // An explicit choice wins over NO_COLOR.
        assert_eq!(
            select(Some("light"), true, None).expect("light").name,
            "light"
        );
        let error = select(Some("solarized"), false, None).expect_err("unknown");
        assert_eq!(
            error.to_string(),
            "no theme named \"solarized\": use one of default, light, high-contrast, mono"
        );
        assert!(no_color(Some(OsStr::new("1"))));
        assert!(!no_color(Some(OsStr::new(""))));
        assert!(!no_color(None));
    }

    #[test]
    fn user_dir_overrides_and_adds_themes() {
        let dir = std::env::temp_dir().join(format!("ringside-themes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(
            dir.join("default.toml"),
            "[roles]\nringing = { fg = \"magenta\", bold = true }\n",
        )
        .expect("write");
        std::fs::write(
            dir.join("ocean.toml"),
            "extends = \"light\"\n[roles]\nborder = \"blue\"\n",
        )
        .expect("write");
        std::fs::write(dir.join("broken.toml"), "[roles]\n\nborder = \"bleu\"\n").expect("write");
        let overridden = select(None, false, Some(&dir)).expect("override");
        assert_eq!(
            overridden.roles.ringing,
            Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD)
        );
        let ocean = select(Some("ocean"), false, Some(&dir)).expect("ocean");
        let light = Theme::built_in("light").expect("light");
        assert_eq!(ocean.roles.border, Style::new().fg(Color::Blue));
        assert_eq!(ocean.roles.ringing, light.roles.ringing);
        let broken = select(Some("broken"), false, Some(&dir)).expect_err("broken");
        let text = broken.to_string();
        assert!(text.ends_with("broken.toml:3: [roles].border = \"bleu\": expected a [palette] name, an ANSI colour (red, lightred, darkgray, reset, ...), #rrggbb or a number 0-255"), "{text}");
        assert_eq!(
            available(Some(&dir)),
            vec![
                "default",
                "light",
                "high-contrast",
                "mono",
                "broken",
                "ocean"
            ]
        );
        // A name is never a path.
        assert!(select(Some("../ocean"), false, Some(&dir)).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
