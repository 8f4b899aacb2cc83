//! Keys to actions: the default bindings, the user's TOML overrides, the conditions under which
//! an action applies, clash detection, and the bottom bar generated from all of that.
//!
//! A key may be bound to several actions; the first (in [`Action::ALL`] order) whose condition
//! holds wins. `T` starts an attended transfer, and completes it once the consultation is up:
//! the two conditions never hold together, so that is not a clash. Two actions on one key whose
//! conditions can hold together are reported at start.
//!
//! Override file (`keymap.toml` in the config directory):
//!
//! ```toml
//! [keys]
//! answer = ["a", "enter"]   # replaces answer's default keys
//! record_toggle = "ctrl-r"
//! redial = []               # unbinds
//! ```
//!
//! Key names: a single character (`a`, `T`, `?`, `*`), `space`, `enter`, `esc`, `tab`,
//! `backtab`, `backspace`, `delete`, `insert`, `up`, `down`, `left`, `right`, `home`, `end`,
//! `pageup`, `pagedown`, `f1`-`f12`, with `ctrl-` or `alt-` before any of them.

use std::fmt;
use std::path::{Path, PathBuf};

use super::app::{App, Modal, PromptPurpose, Tab};
use super::toml_tree::{self, Node};
use crate::toml_check::{nearest, printable, show_value};

/// A key code, independent of the terminal library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyCode {
    Char(char),
    Enter,
    Esc,
    Tab,
    BackTab,
    Backspace,
    Delete,
    Insert,
    Up,
    Down,
    Left,
    Right,
    Home,
    End,
    PageUp,
    PageDown,
    F(u8),
}

/// A key press. Shift is part of the character (`T`) or of the code (`BackTab`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
    pub alt: bool,
}

impl Key {
    pub const fn plain(code: KeyCode) -> Key {
        Key {
            code,
            ctrl: false,
            alt: false,
        }
    }

    pub const fn char(c: char) -> Key {
        Key::plain(KeyCode::Char(c))
    }

    pub const fn ctrl(c: char) -> Key {
        Key {
            code: KeyCode::Char(c),
            ctrl: true,
            alt: false,
        }
    }

    /// The character a plain key types, if any (for prompts and DTMF).
    pub fn typed(&self) -> Option<char> {
        match self.code {
            KeyCode::Char(c) if !self.ctrl && !self.alt => Some(c),
            _ => None,
        }
    }

    /// Reads a key name (`ctrl-r`, `T`, `pagedown`); `None` for names we do not know.
    pub fn parse(text: &str) -> Option<Key> {
        let mut rest = text;
        let mut key = Key::plain(KeyCode::Esc);
        loop {
            let lower = rest.to_ascii_lowercase();
            if rest.chars().count() > 1 && (lower.starts_with("ctrl-") || lower.starts_with("c-")) {
                key.ctrl = true;
                rest = &rest[rest.find('-').map_or(0, |i| i + 1)..];
            } else if rest.chars().count() > 1
                && (lower.starts_with("alt-") || lower.starts_with("m-"))
            {
                key.alt = true;
                rest = &rest[rest.find('-').map_or(0, |i| i + 1)..];
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) if !c.is_control() => {
                // ctrl-R and ctrl-r are the same key to a terminal.
                KeyCode::Char(if key.ctrl { c.to_ascii_lowercase() } else { c })
            }
            _ => match rest.to_ascii_lowercase().as_str() {
                "space" => KeyCode::Char(' '),
                "enter" | "return" => KeyCode::Enter,
                "esc" | "escape" => KeyCode::Esc,
                "tab" => KeyCode::Tab,
                "backtab" | "shift-tab" => KeyCode::BackTab,
                "backspace" => KeyCode::Backspace,
                "delete" | "del" => KeyCode::Delete,
                "insert" | "ins" => KeyCode::Insert,
                "up" => KeyCode::Up,
                "down" => KeyCode::Down,
                "left" => KeyCode::Left,
                "right" => KeyCode::Right,
                "home" => KeyCode::Home,
                "end" => KeyCode::End,
                "pageup" | "pgup" => KeyCode::PageUp,
                "pagedown" | "pgdn" => KeyCode::PageDown,
                other => {
                    let n: u8 = other.strip_prefix('f')?.parse().ok()?;
                    if !(1..=12).contains(&n) {
                        return None;
                    }
                    KeyCode::F(n)
                }
            },
        };
        key.code = code;
        Some(key)
    }

    /// The short form for the bar and help (`^R`, `Esc`, `↑`).
    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCode::Char(' ') => "Space".to_owned(),
            KeyCode::Char(c) if self.ctrl => c.to_ascii_uppercase().to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Enter => "Enter".to_owned(),
            KeyCode::Esc => "Esc".to_owned(),
            KeyCode::Tab => "Tab".to_owned(),
            KeyCode::BackTab => "S-Tab".to_owned(),
            KeyCode::Backspace => "Bksp".to_owned(),
            KeyCode::Delete => "Del".to_owned(),
            KeyCode::Insert => "Ins".to_owned(),
            KeyCode::Up => "↑".to_owned(),
            KeyCode::Down => "↓".to_owned(),
            KeyCode::Left => "←".to_owned(),
            KeyCode::Right => "→".to_owned(),
            KeyCode::Home => "Home".to_owned(),
            KeyCode::End => "End".to_owned(),
            KeyCode::PageUp => "PgUp".to_owned(),
            KeyCode::PageDown => "PgDn".to_owned(),
            KeyCode::F(n) => format!("F{n}"),
        };
        match (self.ctrl, self.alt) {
            (true, _) => format!("^{base}"),
            (false, true) => format!("M-{base}"),
            _ => base,
        }
    }

    /// Converts a crossterm key event; releases (and repeats of modifier keys) give `None`.
    pub fn from_crossterm(event: &ratatui::crossterm::event::KeyEvent) -> Option<Key> {
        use ratatui::crossterm::event::{KeyCode as C, KeyEventKind, KeyModifiers as M};
        if event.kind == KeyEventKind::Release {
            return None;
        }
        let code = match event.code {
            C::Char(c) => KeyCode::Char(c),
            C::Enter => KeyCode::Enter,
            C::Esc => KeyCode::Esc,
            C::Tab if event.modifiers.contains(M::SHIFT) => KeyCode::BackTab,
            C::Tab => KeyCode::Tab,
            C::BackTab => KeyCode::BackTab,
            C::Backspace => KeyCode::Backspace,
            C::Delete => KeyCode::Delete,
            C::Insert => KeyCode::Insert,
            C::Up => KeyCode::Up,
            C::Down => KeyCode::Down,
            C::Left => KeyCode::Left,
            C::Right => KeyCode::Right,
            C::Home => KeyCode::Home,
            C::End => KeyCode::End,
            C::PageUp => KeyCode::PageUp,
            C::PageDown => KeyCode::PageDown,
            C::F(n) => KeyCode::F(n),
            _ => return None,
        };
        let ctrl = event.modifiers.contains(M::CONTROL);
        let code = match code {
            KeyCode::Char(c) if ctrl => KeyCode::Char(c.to_ascii_lowercase()),
            other => other,
        };
        Some(Key {
            code,
            ctrl,
            alt: event.modifiers.contains(M::ALT),
        })
    }
}

impl fmt::Display for Key {
    /// The form the keymap file uses (`ctrl-r`, `space`, `T`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("ctrl-")?;
        }
        if self.alt {
            f.write_str("alt-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("enter"),
            KeyCode::Esc => f.write_str("esc"),
            KeyCode::Tab => f.write_str("tab"),
            KeyCode::BackTab => f.write_str("backtab"),
            KeyCode::Backspace => f.write_str("backspace"),
            KeyCode::Delete => f.write_str("delete"),
            KeyCode::Insert => f.write_str("insert"),
            KeyCode::Up => f.write_str("up"),
            KeyCode::Down => f.write_str("down"),
            KeyCode::Left => f.write_str("left"),
            KeyCode::Right => f.write_str("right"),
            KeyCode::Home => f.write_str("home"),
            KeyCode::End => f.write_str("end"),
            KeyCode::PageUp => f.write_str("pageup"),
            KeyCode::PageDown => f.write_str("pagedown"),
            KeyCode::F(n) => write!(f, "f{n}"),
        }
    }
}

/// What the dashboard knows right now that decides which actions apply. The app computes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Facts {
    /// A SIP account is in use (not supervisor mode).
    pub sip: bool,
    /// An incoming call rings.
    pub incoming: bool,
    /// Any call exists.
    pub call: bool,
    /// A call is answered (in conversation or on hold).
    pub answered: bool,
    /// An attended transfer's consultation call exists.
    pub consulting: bool,
    /// Some queue can be joined (a code to dial, or a supervisor action).
    pub can_connect: bool,
    pub can_disconnect: bool,
    pub can_pause: bool,
    pub redial: bool,
    pub queues_focused: bool,
    pub events_focused: bool,
    /// The tabs pane has the focus; which tab shows.
    pub tab: Option<Tab>,
    /// The shown tab's list has a selected row.
    pub tab_row: bool,
}

/// When an action applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    Always,
    Sip,
    Incoming,
    AnyCall,
    Answered,
    /// An answered call and no consultation yet.
    CanConsult,
    Consulting,
    CanConnect,
    CanDisconnect,
    CanPause,
    HasRedial,
    QueuesFocused,
    EventsFocused,
    /// The tabs pane has the focus and its list a selected row.
    TabRow,
    /// The Recent tab has the focus.
    RecentTab,
    /// The Next Activities tab has the focus and an activity is selected.
    ActivityRow,
    /// The Contacts tab has the focus and a contact is selected.
    ContactRow,
}

impl Condition {
    pub fn holds(self, facts: &Facts) -> bool {
        match self {
            Condition::Always => true,
            Condition::Sip => facts.sip,
            Condition::Incoming => facts.incoming,
            Condition::AnyCall => facts.call,
            Condition::Answered => facts.answered,
            Condition::CanConsult => facts.answered && !facts.consulting,
            Condition::Consulting => facts.consulting,
            Condition::CanConnect => facts.can_connect,
            Condition::CanDisconnect => facts.can_disconnect,
            Condition::CanPause => facts.can_pause,
            Condition::HasRedial => facts.sip && facts.redial,
            Condition::QueuesFocused => facts.queues_focused,
            Condition::EventsFocused => facts.events_focused,
            Condition::TabRow => facts.tab.is_some() && facts.tab_row,
            Condition::RecentTab => facts.tab == Some(Tab::Recent),
            Condition::ActivityRow => facts.tab == Some(Tab::NextActivities) && facts.tab_row,
            Condition::ContactRow => facts.tab == Some(Tab::Contacts) && facts.tab_row,
        }
    }

    /// Whether the two can never hold at once (so one key may serve both).
    pub fn excludes(self, other: Condition) -> bool {
        use Condition::*;
        // Each pane's (and tab's) keys hold only while it has the focus.
        let place = |c: Condition| match c {
            QueuesFocused => Some(0),
            EventsFocused => Some(1),
            RecentTab => Some(2),
            ActivityRow => Some(3),
            ContactRow => Some(4),
            _ => None,
        };
        let tabs = |c: Condition| matches!(c, TabRow | RecentTab | ActivityRow | ContactRow);
        matches!(
            (self, other),
            (CanConsult, Consulting) | (Consulting, CanConsult)
        ) || matches!((place(self), place(other)), (Some(a), Some(b)) if a != b)
            || (tabs(self) && matches!(other, QueuesFocused | EventsFocused))
            || (tabs(other) && matches!(self, QueuesFocused | EventsFocused))
    }

    /// Why an action is not available, for the notice line.
    pub fn unmet(self) -> &'static str {
        match self {
            Condition::Always => "",
            Condition::Sip => "needs a SIP account (not in supervisor mode)",
            Condition::Incoming => "needs an incoming call",
            Condition::AnyCall => "needs a call",
            Condition::Answered => "needs an answered call",
            Condition::CanConsult => "needs an answered call and no transfer in progress",
            Condition::Consulting => "needs an attended transfer in progress",
            Condition::CanConnect => "no queue to connect to",
            Condition::CanDisconnect => "not connected to any queue",
            Condition::CanPause => "pausing needs a queue membership and an AMI connection",
            Condition::HasRedial => "nothing dialled yet",
            Condition::QueuesFocused => "works in the Queues pane",
            Condition::EventsFocused => "works in the Events pane",
            Condition::TabRow => "works on a row of the Recent, Next Activities or Contacts tab",
            Condition::RecentTab => "works in the Recent tab",
            Condition::ActivityRow => "works on an activity of the Next Activities tab",
            Condition::ContactRow => "works on a contact of the Contacts tab",
        }
    }
}

/// Where help lists an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Calls,
    Queues,
    Events,
    Desk,
    Moving,
    General,
}

impl Group {
    pub const ALL: [Group; 6] = [
        Group::Calls,
        Group::Queues,
        Group::Events,
        Group::Desk,
        Group::Moving,
        Group::General,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Group::Calls => "Calls",
            Group::Queues => "Queues",
            Group::Events => "Event stream",
            Group::Desk => "Recent, Next Activities, Contacts",
            Group::Moving => "Moving around",
            Group::General => "General",
        }
    }
}

macro_rules! actions {
    ($( $variant:ident = $name:literal, $label:literal, $condition:ident, $group:ident, $bar:literal, [$($key:expr),*], $help:literal; )*) => {
        /// Everything a key can do, by its snake_case name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action { $( $variant, )* }

        impl Action {
            /// Every action, in priority order (a key bound to two applies the first that can).
            pub const ALL: &'static [Action] = &[ $( Action::$variant, )* ];
            /// The names, in the same order.
            pub const NAMES: &'static [&'static str] = &[ $( $name, )* ];

            pub fn name(self) -> &'static str {
                match self { $( Action::$variant => $name, )* }
            }

            /// The bottom bar's word for it.
            pub fn label(self) -> &'static str {
                match self { $( Action::$variant => $label, )* }
            }

            /// One sentence for help and the command palette.
            pub fn help(self) -> &'static str {
                match self { $( Action::$variant => $help, )* }
            }

            pub fn condition(self) -> Condition {
                match self { $( Action::$variant => Condition::$condition, )* }
            }

            pub fn group(self) -> Group {
                match self { $( Action::$variant => Group::$group, )* }
            }

            /// Whether the bottom bar shows it when it applies (moving keys are left to help).
            pub fn in_bar(self) -> bool {
                match self { $( Action::$variant => $bar, )* }
            }

            fn default_keys(self) -> Vec<Key> {
                match self { $( Action::$variant => vec![$($key),*], )* }
            }

            pub fn from_name(name: &str) -> Option<Action> {
                Action::ALL.iter().copied().find(|a| a.name() == name)
            }
        }
    };
}

const fn k(c: char) -> Key {
    Key::char(c)
}

const fn code(code: KeyCode) -> Key {
    Key::plain(code)
}

// Defaults follow baresip/pjsua habits where they exist. The order is the bar's order and the
// priority between actions sharing a key.
actions! {
    Answer = "answer", "answer", Incoming, Calls, true, [k('a')], "Answer the ringing call";
    Reject = "reject", "reject", Incoming, Calls, true, [k('r')], "Reject the ringing call (busy)";
    AttendedComplete = "attended_complete", "complete transfer", Consulting, Calls, true, [k('T')], "Join the held caller with the person you consulted";
    AttendedAbort = "attended_abort", "abort transfer", Consulting, Calls, true, [k('X')], "Hang up the consultation and return to the held caller";
    Hangup = "hangup", "hang up", AnyCall, Calls, true, [k('x'), code(KeyCode::Esc)], "Hang up the selected call (rejects it if it rings)";
    HoldToggle = "hold_toggle", "hold", Answered, Calls, true, [k('h')], "Put the selected call on hold, or resume it";
    MuteToggle = "mute_toggle", "mute", Answered, Calls, true, [k('m')], "Mute or unmute your microphone on the selected call";
    BlindTransfer = "blind_transfer", "transfer", Answered, Calls, true, [k('t')], "Transfer the selected call to an extension";
    AttendedTransfer = "attended_transfer", "consult", CanConsult, Calls, true, [k('T')], "Hold the call and call someone first, then complete or abort";
    Forward = "forward", "forward", Answered, Calls, true, [k('f')], "Send the selected call on to a phone number";
    Dtmf = "dtmf", "DTMF", Answered, Calls, true, [k('0'), k('1'), k('2'), k('3'), k('4'), k('5'), k('6'), k('7'), k('8'), k('9'), k('*'), k('#')], "Send the key's digit as DTMF";
    RecordToggle = "record_toggle", "record", Answered, Calls, false, [Key::ctrl('r')], "Start or stop recording the selected call";
    Dial = "dial", "dial", Sip, Calls, true, [k('d')], "Dial a number, an extension or a SIP address";
    Redial = "redial", "redial", HasRedial, Calls, true, [k('R')], "Dial the last number again";
    QueueConnect = "queue_connect", "connect", CanConnect, Queues, true, [k('c')], "Connect to a queue (dials its login code)";
    QueueDisconnect = "queue_disconnect", "disconnect", CanDisconnect, Queues, true, [k('C')], "Disconnect from a queue (dials its logout code)";
    PauseToggle = "pause_toggle", "pause", CanPause, Queues, true, [k('p')], "Pause or unpause in your queues";
    Expand = "expand", "callers", QueuesFocused, Queues, true, [code(KeyCode::Enter)], "Show or hide the selected queue's waiting callers";
    StreamPause = "stream_pause", "freeze", EventsFocused, Events, true, [k(' ')], "Stop or restart the event stream's scrolling";
    FilterKind = "filter_kind", "kind", EventsFocused, Events, true, [k('e')], "Show one event kind at a time (cycles; all at the end)";
    FilterQueue = "filter_queue", "queue", EventsFocused, Events, true, [k('Q')], "Show one queue's events at a time (cycles; all at the end)";
    CallSelected = "call_selected", "call", TabRow, Desk, true, [code(KeyCode::Enter)], "Call the selected row back: the caller, the activity's contact, the contact";
    MarkDone = "activity_done", "done", ActivityRow, Desk, true, [k('D')], "Mark the selected activity done";
    EditActivity = "activity_edit", "edit", ActivityRow, Desk, true, [k('e')], "Edit the selected activity (summary, due date, note)";
    CancelActivity = "activity_cancel", "cancel", ActivityRow, Desk, true, [code(KeyCode::Delete)], "Cancel the selected activity";
    Schedule = "schedule", "schedule", TabRow, Desk, true, [k('s')], "Schedule an activity for the selected row's contact (a call tomorrow unless changed)";
    FollowUpEmail = "follow_up_email", "email", TabRow, Desk, true, [k('E')], "Compose a follow-up email to the selected row's contact in $EDITOR";
    ContactCard = "contact_card", "card", ContactRow, Desk, true, [k('i')], "Show the selected contact's card";
    FilterMissed = "filter_missed", "missed", RecentTab, Desk, true, [k('M')], "Show only missed calls, or every call again";
    Search = "search", "search", Always, General, true, [k('/')], "Filter queues, agents and events by text (in Contacts: search contacts as you type)";
    CommandPalette = "command_palette", "commands", Always, General, false, [k(':')], "Run any action by name";
    Help = "help", "help", Always, General, true, [k('?'), code(KeyCode::F(1))], "Show every key";
    NextPane = "next_pane", "pane", Always, Moving, true, [code(KeyCode::Tab)], "Move to the next pane";
    PrevPane = "prev_pane", "previous pane", Always, Moving, false, [code(KeyCode::BackTab)], "Move to the previous pane";
    Up = "up", "up", Always, Moving, false, [code(KeyCode::Up)], "Select the row above (scrolls the event stream back)";
    Down = "down", "down", Always, Moving, false, [code(KeyCode::Down)], "Select the row below";
    PageUp = "page_up", "page up", Always, Moving, false, [code(KeyCode::PageUp)], "Move a page up";
    PageDown = "page_down", "page down", Always, Moving, false, [code(KeyCode::PageDown)], "Move a page down";
    Top = "top", "top", Always, Moving, false, [code(KeyCode::Home)], "Go to the first row";
    Bottom = "bottom", "bottom", Always, Moving, false, [code(KeyCode::End)], "Go to the last row (the event stream follows again)";
    NextTab = "next_tab", "next tab", Always, Moving, false, [k(']')], "Show the next tab (Recent, Next Activities, Contacts)";
    PrevTab = "prev_tab", "previous tab", Always, Moving, false, [k('[')], "Show the previous tab";
    Quit = "quit", "quit", Always, General, true, [k('q')], "Quit (asks first when a call is up)";
}

/// One key bound to one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub key: Key,
    pub action: Action,
}

/// The active bindings, in priority order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keymap {
    bindings: Vec<Binding>,
    /// For each action overridden by a file, the line it was set on (clash reports name it).
    lines: Vec<(Action, usize)>,
    file: Option<PathBuf>,
}

impl Default for Keymap {
    fn default() -> Self {
        let bindings = Action::ALL
            .iter()
            .flat_map(|&action| {
                action
                    .default_keys()
                    .into_iter()
                    .map(move |key| Binding { key, action })
            })
            .collect();
        Keymap {
            bindings,
            lines: Vec::new(),
            file: None,
        }
    }
}

/// Two actions on one key that can apply at the same time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clash {
    pub key: Key,
    /// The action that wins.
    pub first: Action,
    pub second: Action,
    /// File and line of the override that made the clash, when a file did.
    pub place: Option<(PathBuf, usize)>,
}

impl fmt::Display for Clash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((file, line)) = &self.place {
            write!(f, "{}:{line}: ", file.display())?;
        }
        write!(
            f,
            "key {} is bound to both {} and {}, which can apply at the same time: {} wins",
            self.key,
            self.first.name(),
            self.second.name(),
            self.first.name()
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeymapError {
    #[error("{}: cannot read the keymap: {error}", path.display())]
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
    #[error("{}:{line}: {name} is not a section of the keymap: write the bindings under one [keys] table", file.display())]
    UnknownSection {
        file: PathBuf,
        line: usize,
        name: String,
    },
    #[error(
        "{}:{line}: unknown action [keys].{name}{}",
        file.display(),
        suggestion.map_or_else(
            || "\n  `ringside keys` or ? in the dashboard lists the actions".to_owned(),
            |s| format!("\n  did you mean {s}?")
        )
    )]
    UnknownAction {
        file: PathBuf,
        line: usize,
        name: String,
        suggestion: Option<&'static str>,
    },
    #[error("{}:{line}: [keys].{action} = {value}: {problem}", file.display())]
    BadKey {
        file: PathBuf,
        line: usize,
        action: &'static str,
        value: String,
        problem: String,
    },
}

const KEY_FORMS: &str =
    "expected a key such as \"a\", \"T\", \"ctrl-r\", \"enter\", \"f1\" or a list of them";

impl Keymap {
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// The keys bound to `action`, in order.
    pub fn keys_of(&self, action: Action) -> impl Iterator<Item = Key> + '_ {
        self.bindings
            .iter()
            .filter(move |b| b.action == action)
            .map(|b| b.key)
    }

    /// The action `key` triggers now, if any.
    pub fn resolve(&self, key: Key, facts: &Facts) -> Option<Action> {
        self.bindings
            .iter()
            .find(|b| b.key == key && b.action.condition().holds(facts))
            .map(|b| b.action)
    }

    /// Every action bound to `key`, whatever the conditions (help, tests).
    pub fn actions_of(&self, key: Key) -> Vec<Action> {
        self.bindings
            .iter()
            .filter(|b| b.key == key)
            .map(|b| b.action)
            .collect()
    }

    /// The defaults with the file's overrides applied. Clashes are not errors: see
    /// [`Keymap::clashes`].
    pub fn from_toml(text: &str, file: &Path) -> Result<Keymap, KeymapError> {
        let entries = toml_tree::parse(text).map_err(|e| KeymapError::Syntax {
            file: file.to_owned(),
            line: e.line,
            message: e.message,
        })?;
        let mut overrides: Vec<(Action, Vec<Key>, usize)> = Vec::new();
        for entry in &entries {
            let items = match (&entry.node, entry.name()) {
                (Node::Table(items), "keys") => items,
                _ => {
                    return Err(KeymapError::UnknownSection {
                        file: file.to_owned(),
                        line: entry.line(text),
                        name: printable(entry.name(), ""),
                    })
                }
            };
            for item in items {
                let line = item.line(text);
                let Some(action) = Action::from_name(item.name()) else {
                    return Err(KeymapError::UnknownAction {
                        file: file.to_owned(),
                        line,
                        name: printable(item.name(), ""),
                        suggestion: nearest(item.name(), Action::NAMES),
                    });
                };
                let bad = |value: String, problem: &str| KeymapError::BadKey {
                    file: file.to_owned(),
                    line,
                    action: action.name(),
                    value,
                    problem: problem.to_owned(),
                };
                let Node::Value(value) = &item.node else {
                    return Err(bad("{...}".to_owned(), KEY_FORMS));
                };
                let texts: Vec<&toml::Value> = match value {
                    toml::Value::Array(items) => items.iter().collect(),
                    other => vec![other],
                };
                let mut keys = Vec::new();
                for text_value in texts {
                    let toml::Value::String(name) = text_value else {
                        return Err(bad(show_value(text_value), KEY_FORMS));
                    };
                    let Some(key) = Key::parse(name) else {
                        return Err(bad(show_value(text_value), KEY_FORMS));
                    };
                    if !keys.contains(&key) {
                        keys.push(key);
                    }
                }
                overrides.retain(|(a, _, _)| *a != action);
                overrides.push((action, keys, line));
            }
        }
        let mut lines = Vec::new();
        let mut bindings = Vec::new();
        for &action in Action::ALL {
            match overrides.iter().find(|(a, _, _)| *a == action) {
                Some((_, keys, line)) => {
                    lines.push((action, *line));
                    bindings.extend(keys.iter().map(|&key| Binding { key, action }));
                }
                None => bindings.extend(
                    action
                        .default_keys()
                        .into_iter()
                        .map(|key| Binding { key, action }),
                ),
            }
        }
        Ok(Keymap {
            bindings,
            lines,
            file: Some(file.to_owned()),
        })
    }

    /// Reads `path` if it exists; the defaults otherwise.
    pub fn load(path: &Path) -> Result<Keymap, KeymapError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Keymap::from_toml(&text, path),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Keymap::default()),
            Err(error) => Err(KeymapError::Read {
                path: path.to_owned(),
                error,
            }),
        }
    }

    /// Keys bound to two actions that can apply at once. Report these at start.
    pub fn clashes(&self) -> Vec<Clash> {
        let mut clashes = Vec::new();
        for (i, first) in self.bindings.iter().enumerate() {
            for second in &self.bindings[i + 1..] {
                if first.key != second.key || first.action == second.action {
                    continue;
                }
                let (a, b) = (first.action.condition(), second.action.condition());
                if a.excludes(b) {
                    continue;
                }
                let line = self
                    .lines
                    .iter()
                    .filter(|(action, _)| *action == first.action || *action == second.action)
                    .map(|(_, line)| *line)
                    .max();
                clashes.push(Clash {
                    key: first.key,
                    first: first.action,
                    second: second.action,
                    place: self.file.clone().zip(line),
                });
            }
        }
        clashes
    }

    /// The bar's entries for the actions that apply now: key label and action label. DTMF
    /// keys that are all digits, `*` and `#` show as one entry.
    pub fn bar(&self, facts: &Facts) -> Vec<(String, &'static str)> {
        let mut items = Vec::new();
        for &action in Action::ALL {
            if !action.in_bar() || !action.condition().holds(facts) {
                continue;
            }
            let keys: Vec<Key> = self.keys_of(action).collect();
            // The key a person sees must trigger this action now, not another one.
            let usable: Vec<Key> = keys
                .into_iter()
                .filter(|key| self.resolve(*key, facts) == Some(action))
                .collect();
            let Some(first) = usable.first() else {
                continue;
            };
            let label = if action == Action::Dtmf && usable.len() > 1 {
                compact_digits(&usable).unwrap_or_else(|| first.label())
            } else {
                first.label()
            };
            items.push((label, action.label()));
        }
        items
    }

    /// The keys of `action` as help shows them (`x, Esc`).
    pub fn keys_text(&self, action: Action) -> String {
        let keys: Vec<Key> = self.keys_of(action).collect();
        if action == Action::Dtmf {
            if let Some(text) = compact_digits(&keys) {
                return text;
            }
        }
        keys.iter().map(Key::label).collect::<Vec<_>>().join(", ")
    }
}

/// The bottom bar for the app as it is: the keymap's actions that apply now, or, while a
/// popup is open, the popup's own keys (those are fixed: Enter, Esc, arrows).
pub fn bar(app: &App) -> Vec<(String, &'static str)> {
    let fixed = |items: &[(&str, &'static str)]| {
        items
            .iter()
            .map(|(key, label)| ((*key).to_owned(), *label))
            .collect()
    };
    match &app.modal {
        None => app.keymap.bar(&app.facts()),
        Some(Modal::Prompt(prompt)) => {
            let enter = match prompt.purpose {
                PromptPurpose::Dial => "dial",
                PromptPurpose::BlindTransfer(_) => "transfer",
                PromptPurpose::Forward(_) => "forward",
                PromptPurpose::AttendedTransfer(_) => "call",
                PromptPurpose::Dtmf(_) => "send",
                PromptPurpose::Search => "keep filter",
                PromptPurpose::ContactSearch => "keep",
            };
            match prompt.purpose {
                PromptPurpose::Search | PromptPurpose::ContactSearch => {
                    fixed(&[("Enter", enter), ("Esc", "clear")])
                }
                PromptPurpose::Dial if !prompt.suggestions.is_empty() => fixed(&[
                    ("Enter", enter),
                    ("↓", "contacts"),
                    ("Tab", "complete"),
                    ("Esc", "cancel"),
                    ("^U", "clear"),
                ]),
                PromptPurpose::Dtmf(_) => fixed(&[("Enter", enter), ("Esc", "cancel")]),
                _ => fixed(&[
                    ("Enter", enter),
                    ("Esc", "cancel"),
                    ("↑↓", "history"),
                    ("Tab", "complete"),
                    ("^U", "clear"),
                ]),
            }
        }
        Some(Modal::Pick(_)) => fixed(&[
            ("↑↓", "choose"),
            ("1-9", "pick"),
            ("Enter", "confirm"),
            ("Esc", "cancel"),
        ]),
        Some(Modal::Help { .. }) => fixed(&[("↑↓", "scroll"), ("Esc", "close")]),
        Some(Modal::Palette { .. }) => fixed(&[
            ("abc", "filter"),
            ("↑↓", "choose"),
            ("Enter", "run"),
            ("Esc", "close"),
        ]),
        Some(Modal::ConfirmQuit) => fixed(&[("y", "quit and hang up"), ("n", "stay")]),
        Some(Modal::Form(_)) => fixed(&[
            ("Tab", "next field"),
            ("←→", "type"),
            ("Enter", "save"),
            ("Esc", "cancel"),
        ]),
        Some(Modal::Card { .. }) => fixed(&[
            ("Enter", "call"),
            ("E", "email"),
            ("s", "schedule"),
            ("Esc", "close"),
        ]),
        Some(Modal::ConfirmDone { .. }) => fixed(&[("y", "mark done"), ("n", "keep it planned")]),
        Some(Modal::SendChoice(draft)) if draft.problem.is_some() => fixed(&[
            ("e", "edit again"),
            ("l", "keep for later"),
            ("Esc", "discard"),
        ]),
        Some(Modal::SendChoice(_)) => fixed(&[
            ("s", "send now"),
            ("l", "send later"),
            ("e", "edit again"),
            ("Esc", "discard"),
        ]),
    }
}

/// `0-9*#` when the keys are exactly the DTMF keypad.
fn compact_digits(keys: &[Key]) -> Option<String> {
    let mut chars: Vec<char> = keys.iter().filter_map(Key::typed).collect();
    if chars.len() != keys.len() {
        return None;
    }
    chars.sort_unstable();
    let keypad: Vec<char> = "#*0123456789".chars().collect();
    (chars == keypad).then(|| "0-9*#".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            sip: true,
            ..Facts::default()
        }
    }

    #[test]
    fn key_names_round_trip() {
        for text in [
            "a",
            "T",
            "?",
            "*",
            "#",
            "space",
            "ctrl-r",
            "alt-x",
            "enter",
            "esc",
            "tab",
            "backtab",
            "pageup",
            "f1",
            "f12",
            "ctrl-alt-d",
            "-",
        ] {
            let key = Key::parse(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(key.to_string(), text);
        }
        assert_eq!(Key::parse("Ctrl-R"), Some(Key::ctrl('r')));
        assert_eq!(Key::parse("C-r"), Some(Key::ctrl('r')));
        assert_eq!(Key::parse("Escape"), Some(Key::plain(KeyCode::Esc)));
        for bad in ["", "ctrl-", "f13", "f0", "hello", "\u{7}"] {
            assert_eq!(Key::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Key::ctrl('r').label(), "^R");
        assert_eq!(Key::plain(KeyCode::Up).label(), "↑");
    }

    #[test]
    fn crossterm_events_convert() {
        use ratatui::crossterm::event::{KeyCode as C, KeyEvent, KeyEventKind, KeyModifiers as M};
        let press = |code, mods| KeyEvent::new(code, mods);
        assert_eq!(
            Key::from_crossterm(&press(C::Char('T'), M::SHIFT)),
            Some(Key::char('T'))
        );
        assert_eq!(
            Key::from_crossterm(&press(C::Char('R'), M::CONTROL | M::SHIFT)),
            Some(Key::ctrl('r'))
        );
        assert_eq!(
            Key::from_crossterm(&press(C::Tab, M::SHIFT)),
            Some(Key::plain(KeyCode::BackTab))
        );
        let mut release = press(C::Char('a'), M::NONE);
        release.kind = KeyEventKind::Release;
        assert_eq!(Key::from_crossterm(&release), None);
    }

    #[test]
    fn conditions_decide_what_a_key_does() {
        let keymap = Keymap::default();
        let a = Key::char('a');
        assert_eq!(keymap.resolve(a, &facts()), None, "nothing rings");
        let ringing = Facts {
            incoming: true,
            call: true,
            ..facts()
        };
        assert_eq!(keymap.resolve(a, &ringing), Some(Action::Answer));
        // T: consult while talking, complete once the consultation is up.
        let talking = Facts {
            call: true,
            answered: true,
            ..facts()
        };
        assert_eq!(
            keymap.resolve(Key::char('T'), &talking),
            Some(Action::AttendedTransfer)
        );
        let consulting = Facts {
            consulting: true,
            ..talking
        };
        assert_eq!(
            keymap.resolve(Key::char('T'), &consulting),
            Some(Action::AttendedComplete)
        );
        assert_eq!(keymap.resolve(Key::char('5'), &talking), Some(Action::Dtmf));
        assert_eq!(keymap.resolve(Key::char('5'), &ringing), None);
        assert_eq!(
            keymap.resolve(Key::plain(KeyCode::Esc), &talking),
            Some(Action::Hangup)
        );
        // Supervisors have no SIP account: no dialling.
        let supervisor = Facts::default();
        assert_eq!(keymap.resolve(Key::char('d'), &supervisor), None);
        assert_eq!(
            keymap.resolve(Key::char('q'), &supervisor),
            Some(Action::Quit)
        );
    }

    #[test]
    fn the_defaults_do_not_clash() {
        assert_eq!(Keymap::default().clashes(), Vec::new());
    }

    #[test]
    fn the_bar_lists_what_applies_now() {
        let keymap = Keymap::default();
        let idle: Vec<String> = keymap
            .bar(&facts())
            .into_iter()
            .map(|(k, l)| format!("{k} {l}"))
            .collect();
        assert_eq!(idle, ["d dial", "/ search", "? help", "Tab pane", "q quit"]);
        let ringing = Facts {
            incoming: true,
            call: true,
            ..facts()
        };
        let bar: Vec<String> = keymap
            .bar(&ringing)
            .into_iter()
            .map(|(k, l)| format!("{k} {l}"))
            .collect();
        assert_eq!(
            bar,
            [
                "a answer",
                "r reject",
                "x hang up",
                "d dial",
                "/ search",
                "? help",
                "Tab pane",
                "q quit"
            ]
        );
        let talking = Facts {
            call: true,
            answered: true,
            redial: true,
            ..facts()
        };
        let bar: Vec<String> = keymap
            .bar(&talking)
            .into_iter()
            .map(|(k, l)| format!("{k} {l}"))
            .collect();
        assert_eq!(
            bar,
            [
                "x hang up",
                "h hold",
                "m mute",
                "t transfer",
                "T consult",
                "f forward",
                "0-9*# DTMF",
                "d dial",
                "R redial",
                "/ search",
                "? help",
                "Tab pane",
                "q quit"
            ]
        );
    }

    #[test]
    fn the_bar_follows_the_users_keys() {
        let keymap = Keymap::from_toml(
            "[keys]\nanswer = [\"enter\", \"a\"]\nhelp = \"f1\"\ndtmf = [\"1\", \"2\"]\n",
            Path::new("keymap.toml"),
        )
        .expect("valid");
        let ringing = Facts {
            incoming: true,
            call: true,
            answered: true,
            ..facts()
        };
        let bar = keymap.bar(&ringing);
        assert_eq!(bar[0], ("Enter".to_owned(), "answer"));
        assert!(bar.contains(&("F1".to_owned(), "help")));
        assert!(bar.contains(&("1".to_owned(), "DTMF")));
        assert_eq!(keymap.keys_text(Action::Dtmf), "1, 2");
        assert_eq!(Keymap::default().keys_text(Action::Dtmf), "0-9*#");
        assert_eq!(Keymap::default().keys_text(Action::Hangup), "x, Esc");
    }

    #[test]
    fn overrides_replace_and_unbind() {
        let keymap = Keymap::from_toml(
            "# mine\n[keys]\nredial = []\nrecord_toggle = \"ctrl-o\"\n",
            Path::new("keymap.toml"),
        )
        .expect("valid");
        assert_eq!(keymap.keys_of(Action::Redial).count(), 0);
        assert_eq!(
            keymap.keys_of(Action::RecordToggle).collect::<Vec<_>>(),
            vec![Key::ctrl('o')]
        );
        assert_eq!(
            keymap.keys_of(Action::Hangup).collect::<Vec<_>>(),
            vec![Key::char('x'), Key::plain(KeyCode::Esc)]
        );
    }

    #[test]
    fn clashes_name_the_file_line_and_winner() {
        let keymap = Keymap::from_toml(
            "[keys]\n\nhold_toggle = [\"h\", \"a\"]\n",
            Path::new("keymap.toml"),
        )
        .expect("valid");
        let clashes: Vec<String> = keymap.clashes().iter().map(ToString::to_string).collect();
        assert_eq!(
            clashes,
            ["keymap.toml:3: key a is bound to both answer and hold_toggle, which can apply at the same time: answer wins"]
        );
        // A digit taken from DTMF by an action that applies during calls clashes too.
        let keymap =
            Keymap::from_toml("[keys]\nmute_toggle = \"5\"\n", Path::new("k.toml")).expect("ok");
        assert_eq!(keymap.clashes().len(), 1);
        assert_eq!(keymap.clashes()[0].first, Action::MuteToggle);
        // Exclusive conditions share keys freely.
        let keymap =
            Keymap::from_toml("[keys]\nattended_abort = \"T\"\n", Path::new("k.toml")).expect("ok");
        let names: Vec<(Action, Action)> = keymap
            .clashes()
            .iter()
            .map(|c| (c.first, c.second))
            .collect();
        assert_eq!(
            names,
            vec![(Action::AttendedComplete, Action::AttendedAbort)]
        );
    }

    #[test]
    fn bad_files_say_file_line_and_key() {
        let error = |text: &str| {
            Keymap::from_toml(text, Path::new("keymap.toml"))
                .expect_err("bad")
                .to_string()
        };
        assert_eq!(
            error("[keys]\nanswer = \"a\"\nansewr = \"b\"\n"),
            "keymap.toml:3: unknown action [keys].ansewr\n  did you mean answer?"
        );
        assert_eq!(
            error("[keys]\n\n\nhangup = [\"x\", \"ctrl-\"]\n"),
            "keymap.toml:4: [keys].hangup = \"ctrl-\": expected a key such as \"a\", \"T\", \"ctrl-r\", \"enter\", \"f1\" or a list of them"
        );
        assert_eq!(
            error("[keys]\nquit = 5\n"),
            "keymap.toml:2: [keys].quit = 5: expected a key such as \"a\", \"T\", \"ctrl-r\", \"enter\", \"f1\" or a list of them"
        );
        assert_eq!(
            error("[bindings]\nquit = \"q\"\n"),
            "keymap.toml:1: bindings is not a section of the keymap: write the bindings under one [keys] table"
        );
        assert_eq!(
            error("[keys]\nquit = \"q\n"),
            "keymap.toml:2: invalid TOML: invalid basic string"
        );
        assert!(error("[keys]\nzzzzzzzz = \"q\"\n").contains("lists the actions"));
    }

    #[test]
    fn action_names_are_snake_case_and_unique() {
        for (i, name) in Action::NAMES.iter().enumerate() {
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
            assert!(!Action::NAMES[i + 1..].contains(name), "{name} twice");
            assert_eq!(Action::from_name(name).map(Action::name), Some(*name));
        }
    }
}
