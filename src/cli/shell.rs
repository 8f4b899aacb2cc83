//! `ringside shell`: a line-mode console. Interactive on a terminal (rustyline: history, tab
//! completion), scriptable otherwise: commands are read line by line, `--json` prints one JSON
//! object per event, and `wait EVENT [TIMEOUT]` / `sleep SECS` make scripts deterministic.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::net::sip::{DriverCommand, DriverHandle, DriverOutput};
use crate::sip::ua::{CallDirection, CallId, CallState, Command, EndedBy, UaEvent};

/// Every command, for help and tab completion.
pub const COMMANDS: &[(&str, &str)] = &[
    ("register", "register with the PBX"),
    ("unregister", "remove the registration"),
    ("dial", "dial NUMBER|EXTENSION|sip:URI — place a call"),
    ("answer", "answer [CALL] — answer the ringing call"),
    ("reject", "reject [CALL] — decline the ringing call (603)"),
    ("hangup", "hangup [CALL] — end or cancel a call"),
    ("hold", "hold [CALL] — put the call on hold"),
    ("resume", "resume [CALL] — take the call off hold"),
    ("transfer", "transfer EXTENSION [CALL] — blind transfer"),
    (
        "forward",
        "forward NUMBER [CALL] — hand the call to a full number",
    ),
    (
        "atransfer",
        "atransfer TARGET | complete | abort — attended transfer",
    ),
    ("dtmf", "dtmf DIGITS [CALL] — send keypad digits"),
    (
        "mute",
        "mute [CALL] — stop sending your voice (silence keeps flowing)",
    ),
    ("unmute", "unmute [CALL]"),
    ("stats", "calls with their media counters and MOS"),
    (
        "record",
        "record [CALL] — start or stop recording the call (two-channel WAV)",
    ),
    ("calls", "list calls"),
    ("status", "registration and calls"),
    (
        "wait",
        "wait EVENT [SECONDS] — block until an event (scripts)",
    ),
    ("sleep", "sleep SECONDS"),
    ("help", "this list"),
    ("quit", "hang up, unregister and leave"),
];

/// The stable name of an event, as printed in JSON and matched by `wait`.
pub fn event_name(event: &UaEvent) -> &'static str {
    match event {
        UaEvent::Registered { .. } => "registered",
        UaEvent::RegistrationFailed { .. } => "registration_failed",
        UaEvent::Unregistered => "unregistered",
        UaEvent::IncomingCall { .. } => "incoming_call",
        UaEvent::Dialing { .. } => "dialing",
        UaEvent::Ringing { .. } => "ringing",
        UaEvent::Answered { .. } => "answered",
        UaEvent::CallEnded { .. } => "call_ended",
        UaEvent::Held { .. } => "held",
        UaEvent::Resumed { .. } => "resumed",
        UaEvent::RemoteHold { .. } => "remote_hold",
        UaEvent::RemoteResume { .. } => "remote_resume",
        UaEvent::HoldFailed { .. } => "hold_failed",
        UaEvent::RemotePartyChanged { .. } => "remote_party_changed",
        UaEvent::TransferProgress { .. } => "transfer_progress",
        UaEvent::TransferDone { .. } => "transfer_done",
        UaEvent::TransferRequested { .. } => "transfer_requested",
        UaEvent::DtmfReceived { .. } => "dtmf",
        UaEvent::Media { .. } => "media",
        UaEvent::SendDtmfRtp { .. } => "dtmf_rtp",
        UaEvent::Notice { .. } => "notice",
        UaEvent::Voicemail { .. } => "voicemail",
    }
}

pub fn event_json(event: &UaEvent) -> Value {
    let mut v = match event {
        UaEvent::Registered {
            aor,
            contact,
            expires,
        } => json!({"aor": aor, "contact": contact, "expires": expires}),
        UaEvent::RegistrationFailed {
            code,
            message,
            retry_in,
        } => json!({"code": code, "message": message, "retry_in": retry_in.map(|d| d.as_secs())}),
        UaEvent::Unregistered => json!({}),
        UaEvent::IncomingCall { call, from, name } => {
            json!({"call": call.0, "from": from, "name": name})
        }
        UaEvent::Dialing { call, to } => json!({"call": call.0, "to": to}),
        UaEvent::Ringing { call, early_media } => {
            json!({"call": call.0, "early_media": early_media})
        }
        UaEvent::Answered { call, codec } => json!({"call": call.0, "codec": codec}),
        UaEvent::CallEnded {
            call,
            code,
            reason,
            by,
        } => json!({"call": call.0, "code": code, "reason": reason, "by": ended_by(*by)}),
        UaEvent::Held { call }
        | UaEvent::Resumed { call }
        | UaEvent::RemoteHold { call }
        | UaEvent::RemoteResume { call } => json!({"call": call.0}),
        UaEvent::HoldFailed { call, code, reason } => {
            json!({"call": call.0, "code": code, "reason": reason})
        }
        UaEvent::RemotePartyChanged { call, name, uri } => {
            json!({"call": call.0, "name": name, "uri": uri})
        }
        UaEvent::TransferProgress { call, code, reason } => {
            json!({"call": call.0, "code": code, "reason": reason})
        }
        UaEvent::TransferDone {
            call,
            success,
            reason,
        } => json!({"call": call.0, "success": success, "reason": reason}),
        UaEvent::TransferRequested {
            call,
            target,
            new_call,
        } => json!({"call": call.0, "target": target, "new_call": new_call.0}),
        UaEvent::DtmfReceived {
            call,
            digit,
            duration_ms,
        } => json!({"call": call.0, "digit": digit.to_string(), "duration_ms": duration_ms}),
        UaEvent::Media {
            call,
            local_port,
            remote,
            codec,
            payload_type,
            telephone_event,
            telephone_event_clock,
            sending,
            receiving,
            ptime_ms,
        } => json!({
            "call": call.0, "local_port": local_port, "remote": remote.map(|r| r.to_string()),
            "codec": codec, "payload_type": payload_type, "telephone_event": telephone_event,
            "telephone_event_clock": telephone_event_clock,
            "sending": sending, "receiving": receiving, "ptime_ms": ptime_ms,
        }),
        UaEvent::SendDtmfRtp { call, digits } => json!({"call": call.0, "digits": digits}),
        UaEvent::Notice { message } => json!({"message": message}),
        UaEvent::Voicemail { waiting, new, old } => {
            json!({"waiting": waiting, "new": new, "old": old})
        }
    };
    if let Value::Object(map) = &mut v {
        map.insert("event".into(), Value::String(event_name(event).into()));
    }
    v
}

fn ended_by(by: EndedBy) -> &'static str {
    match by {
        EndedBy::Local => "local",
        EndedBy::Remote => "remote",
        EndedBy::Network => "network",
    }
}

/// One human line per event.
pub fn event_line(event: &UaEvent) -> String {
    match event {
        UaEvent::Registered { aor, expires, .. } => {
            format!("registered as {aor} (expires in {expires} s)")
        }
        UaEvent::RegistrationFailed { message, .. } => format!("registration: {message}"),
        UaEvent::Unregistered => "unregistered".into(),
        UaEvent::IncomingCall { call, from, name } => match name {
            Some(n) => {
                format!("call {call}: incoming call from {n} <{from}> — 'answer' or 'reject'")
            }
            None => format!("call {call}: incoming call from {from} — 'answer' or 'reject'"),
        },
        UaEvent::Dialing { call, to } => format!("call {call}: dialing {to}"),
        UaEvent::Ringing { call, early_media } => {
            if *early_media {
                format!("call {call}: ringing (early media)")
            } else {
                format!("call {call}: ringing")
            }
        }
        UaEvent::Answered { call, codec } => match codec {
            Some(c) => format!("call {call}: answered ({c})"),
            None => format!("call {call}: answered"),
        },
        UaEvent::CallEnded {
            call, code, reason, ..
        } => match code {
            Some(c) => format!("call {call}: ended — {reason} ({c})"),
            None => format!("call {call}: ended — {reason}"),
        },
        UaEvent::Held { call } => format!("call {call}: on hold"),
        UaEvent::Resumed { call } => format!("call {call}: resumed"),
        UaEvent::RemoteHold { call } => format!("call {call}: the other party put you on hold"),
        UaEvent::RemoteResume { call } => format!("call {call}: the other party resumed"),
        UaEvent::HoldFailed { call, reason, .. } => format!("call {call}: {reason}"),
        UaEvent::RemotePartyChanged { call, name, uri } => match name {
            Some(n) => format!("call {call}: now talking to {n} <{uri}>"),
            None => format!("call {call}: now talking to {uri}"),
        },
        UaEvent::TransferProgress { call, code, reason } => {
            format!("call {call}: transfer progress {code} {reason}")
        }
        UaEvent::TransferDone { call, reason, .. } => format!("call {call}: {reason}"),
        UaEvent::TransferRequested {
            call,
            target,
            new_call,
        } => format!("call {call}: asked to transfer to {target}; calling on call {new_call}"),
        UaEvent::DtmfReceived { call, digit, .. } => format!("call {call}: DTMF {digit}"),
        UaEvent::Media {
            call,
            codec,
            remote,
            ..
        } => format!(
            "call {call}: media {} with {}",
            codec.as_deref().unwrap_or("none"),
            remote
                .map(|r| r.to_string())
                .unwrap_or_else(|| "nobody".into())
        ),
        UaEvent::SendDtmfRtp { call, digits } => format!("call {call}: sending DTMF {digits}"),
        UaEvent::Notice { message } => message.clone(),
        UaEvent::Voicemail { new, old, .. } => format!("voicemail: {new} new, {old} old"),
    }
}

/// Prints event lines above the prompt while rustyline is reading (interactive mode only).
type LinePrinter = Box<dyn FnMut(String) + Send>;

struct Shell {
    json: bool,
    printer: Option<LinePrinter>,
    driver: DriverHandle,
    /// What we know of each call from its events, to pick the call a bare command means.
    calls: BTreeMap<CallId, (CallState, CallDirection, bool)>,
    /// Events since the last completed `wait`, so a wait finds what happened before it was read.
    backlog: VecDeque<UaEvent>,
    stopped: bool,
}

/// Why the shell exits with an error code.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("{0}")]
    WaitTimedOut(String),
}

impl Shell {
    fn print_json(&self, value: Value) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
        let _ = out.flush();
    }

    fn say(&mut self, event: &str, message: &str) {
        if self.json {
            self.print_json(json!({"event": event, "message": message}));
        } else {
            self.print_line(message.to_string());
        }
    }

    fn print_line(&mut self, line: String) {
        match self.printer.as_mut() {
            Some(print) => print(line),
            None => println!("{line}"),
        }
    }

    fn print_event(&mut self, event: &UaEvent) {
        if self.json {
            self.print_json(event_json(event));
        } else if !matches!(event, UaEvent::Media { .. }) {
            // Media details are for programs (JSON); people see the codec in `answered`.
            self.print_line(event_line(event));
        }
    }

    fn track(&mut self, event: &UaEvent) {
        match event {
            UaEvent::IncomingCall { call, .. } => {
                self.calls
                    .insert(*call, (CallState::Incoming, CallDirection::Incoming, false));
            }
            UaEvent::Dialing { call, .. } => {
                self.calls
                    .insert(*call, (CallState::Dialing, CallDirection::Outgoing, false));
            }
            UaEvent::Ringing { call, .. } => {
                if let Some(c) = self.calls.get_mut(call) {
                    c.0 = CallState::Ringing;
                }
            }
            UaEvent::Answered { call, .. } => {
                if let Some(c) = self.calls.get_mut(call) {
                    c.0 = CallState::Active;
                }
            }
            UaEvent::Held { call } => {
                if let Some(c) = self.calls.get_mut(call) {
                    c.2 = true;
                }
            }
            UaEvent::Resumed { call } => {
                if let Some(c) = self.calls.get_mut(call) {
                    c.2 = false;
                }
            }
            UaEvent::CallEnded { call, .. } => {
                self.calls.remove(call);
            }
            _ => {}
        }
    }

    fn on_output(&mut self, output: DriverOutput) {
        match output {
            DriverOutput::Event(event) => {
                self.track(&event);
                self.print_event(&event);
                self.backlog.push_back(event);
                if self.backlog.len() > 1000 {
                    self.backlog.pop_front();
                }
            }
            DriverOutput::CommandFailed(error) => self.say("error", &error.to_string()),
            DriverOutput::Warning(message) => self.say("warning", &message),
            // The notice that follows says where.
            DriverOutput::Recording { .. } => {}
            DriverOutput::Snapshot {
                calls,
                registered,
                media,
            } => {
                let media_of = |id: CallId| media.iter().find(|(c, _, _)| *c == id);
                if self.json {
                    let list: Vec<Value> = calls
                        .iter()
                        .map(|c| {
                            json!({
                                "call": c.id.0, "state": c.state.as_str(),
                                "direction": if c.direction == CallDirection::Incoming { "in" } else { "out" },
                                "remote": c.remote_uri, "name": c.remote_name,
                                "on_hold": c.on_hold, "remote_hold": c.remote_hold,
                                "codec": c.codec, "duration_s": c.duration.as_secs(),
                                "media": media_of(c.id).map(|(_, s, mos)| json!({
                                    "packets_sent": s.packets_sent, "packets_received": s.packets_received,
                                    "packets_lost": s.packets_lost, "concealed": s.concealed,
                                    "jitter_ms": s.jitter_ms, "rtt_ms": s.round_trip.map(|r| r.as_secs_f64() * 1000.0),
                                    "mos": mos,
                                })),
                            })
                        })
                        .collect();
                    self.print_json(
                        json!({"event": "calls", "registered": registered, "calls": list}),
                    );
                } else {
                    let mut lines = vec![if registered {
                        "registered"
                    } else {
                        "not registered"
                    }
                    .to_string()];
                    if calls.is_empty() {
                        lines.push("no calls".into());
                    }
                    for c in calls {
                        let mut flags = Vec::new();
                        if c.on_hold {
                            flags.push("on hold");
                        }
                        if c.remote_hold {
                            flags.push("held by far end");
                        }
                        if c.transferring {
                            flags.push("transferring");
                        }
                        let who = match c.remote_name.as_deref() {
                            Some(n) => format!("{n} <{}>", c.remote_uri),
                            None => c.remote_uri.clone(),
                        };
                        let quality = match media_of(c.id) {
                            Some((_, st, mos)) => format!(
                                " | rtp {} out {} in, {} lost, jitter {:.1} ms, MOS {:.2}",
                                st.packets_sent,
                                st.packets_received,
                                st.packets_lost,
                                st.jitter_ms,
                                mos
                            ),
                            None => String::new(),
                        };
                        lines.push(format!(
                            "  call {} {} {} {} {}s {} {}{quality}",
                            c.id,
                            if c.direction == CallDirection::Incoming {
                                "in "
                            } else {
                                "out"
                            },
                            c.state.as_str(),
                            who,
                            c.duration.as_secs(),
                            c.codec.as_deref().unwrap_or(""),
                            flags.join(", ")
                        ));
                    }
                    for line in lines {
                        self.print_line(line.trim_end().to_string());
                    }
                }
            }
            DriverOutput::Stopped => self.stopped = true,
        }
    }

    /// The call a command without a number means: the newest one that fits.
    fn pick(&self, want: &[CallState], held: Option<bool>) -> Option<CallId> {
        self.calls
            .iter()
            .rev()
            .find(|(_, (state, _, on_hold))| {
                want.contains(state) && held.is_none_or(|h| h == *on_hold)
            })
            .map(|(id, _)| *id)
    }

    fn send(&self, command: Command) {
        let _ = self.driver.commands.send(DriverCommand::Ua(command));
    }

    /// Run one command line. Returns false on quit.
    async fn run_line(&mut self, line: &str) -> Result<bool, ShellError> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&verb, args)) = words.split_first() else {
            return Ok(true);
        };
        if verb.starts_with('#') {
            return Ok(true);
        }
        let call_arg = |index: usize| -> Option<CallId> {
            args.get(index)
                .and_then(|a| a.parse::<u32>().ok())
                .map(CallId)
        };
        let active = [CallState::Active];
        let any = [
            CallState::Active,
            CallState::Connecting,
            CallState::Ringing,
            CallState::Dialing,
            CallState::Incoming,
        ];
        let missing = |what: &str| format!("{verb}: {what}");
        match verb {
            "register" => self.send(Command::Register),
            "unregister" => self.send(Command::Unregister),
            "dial" | "call" => {
                if args.is_empty() {
                    self.say("error", &missing("give a number, extension or sip: URI"));
                } else {
                    // Numbers are often typed with spaces: "+32 2 555 12 34".
                    self.send(Command::Dial {
                        target: args.join(" "),
                    });
                }
            }
            "answer" | "reject" => {
                match call_arg(0).or_else(|| self.pick(&[CallState::Incoming], None)) {
                    Some(call) if verb == "answer" => self.send(Command::Answer { call }),
                    Some(call) => self.send(Command::Reject { call }),
                    None => self.say("error", &missing("no call is ringing")),
                }
            }
            "hangup" | "bye" => match call_arg(0).or_else(|| self.pick(&any, None)) {
                Some(call) => self.send(Command::Hangup { call }),
                None => self.say("error", &missing("no call to hang up")),
            },
            "hold" => match call_arg(0).or_else(|| self.pick(&active, Some(false))) {
                Some(call) => self.send(Command::Hold { call }),
                None => self.say("error", &missing("no active call")),
            },
            "resume" | "unhold" => match call_arg(0).or_else(|| self.pick(&active, Some(true))) {
                Some(call) => self.send(Command::Resume { call }),
                None => self.say("error", &missing("no call on hold")),
            },
            "transfer" | "forward" => match args.first() {
                Some(target) => match call_arg(1).or_else(|| self.pick(&active, None)) {
                    Some(call) => self.send(Command::Transfer {
                        call,
                        target: target.to_string(),
                    }),
                    None => self.say("error", &missing("no active call")),
                },
                None => self.say(
                    "error",
                    &missing("give the extension or number to transfer to"),
                ),
            },
            "atransfer" => match args.first().copied() {
                Some("complete") | Some("abort") => {
                    let call = call_arg(1).or_else(|| self.pick(&any, None));
                    match call {
                        Some(call) if args.first() == Some(&"complete") => {
                            self.send(Command::AttendedComplete { call })
                        }
                        Some(call) => self.send(Command::AttendedAbort { call }),
                        None => self.say("error", &missing("no attended transfer in progress")),
                    }
                }
                Some(target) => match call_arg(1).or_else(|| self.pick(&active, Some(false))) {
                    Some(call) => self.send(Command::AttendedStart {
                        call,
                        target: target.to_string(),
                    }),
                    None => self.say("error", &missing("no active call to transfer")),
                },
                None => self.say("error", &missing("give TARGET, 'complete' or 'abort'")),
            },
            "dtmf" => match args.first() {
                Some(digits) => match call_arg(1).or_else(|| self.pick(&active, None)) {
                    Some(call) => self.send(Command::Dtmf {
                        call,
                        digits: digits.to_string(),
                    }),
                    None => self.say("error", &missing("no active call")),
                },
                None => self.say("error", &missing("give the digits")),
            },
            "mute" | "unmute" => match call_arg(0).or_else(|| self.pick(&active, None)) {
                Some(call) => {
                    let _ = self.driver.commands.send(DriverCommand::Mute {
                        call,
                        muted: verb == "mute",
                    });
                }
                None => self.say("error", &missing("no active call")),
            },
            "record" => match call_arg(0).or_else(|| self.pick(&active, None)) {
                Some(call) => {
                    let _ = self.driver.commands.send(DriverCommand::Record { call });
                }
                None => self.say("error", &missing("no active call")),
            },
            "calls" | "status" | "stats" => {
                let _ = self.driver.commands.send(DriverCommand::Snapshot);
            }
            "wait" => {
                let Some(name) = args.first() else {
                    self.say(
                        "error",
                        &missing("give an event name, e.g. 'wait answered 10'"),
                    );
                    return Ok(true);
                };
                let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(30.0);
                self.wait_for(name, Duration::from_secs_f64(secs.clamp(0.0, 86_400.0)))
                    .await?;
            }
            "sleep" => {
                let secs: f64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(1.0);
                let deadline = tokio::time::Instant::now()
                    + Duration::from_secs_f64(secs.clamp(0.0, 86_400.0));
                loop {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => break,
                        Some(output) = self.driver.outputs.recv() => self.on_output(output),
                    }
                }
            }
            "help" | "?" => {
                for (name, what) in COMMANDS {
                    if self.json {
                        self.print_json(json!({"event": "help", "command": name, "usage": what}));
                    } else {
                        println!("  {name:<11} {what}");
                    }
                }
            }
            "quit" | "exit" => return Ok(false),
            other => self.say(
                "error",
                &format!("unknown command {other:?}: type 'help' for the list"),
            ),
        }
        Ok(true)
    }

    async fn wait_for(&mut self, name: &str, timeout: Duration) -> Result<(), ShellError> {
        // First what already happened since the last wait, then what comes.
        while let Some(event) = self.backlog.pop_front() {
            if event_name(&event) == name {
                return Ok(());
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    let message = format!("timed out after {} s waiting for {name}", timeout.as_secs_f64());
                    self.say("error", &message);
                    return Err(ShellError::WaitTimedOut(message));
                }
                output = self.driver.outputs.recv() => match output {
                    Some(output) => {
                        self.on_output(output);
                        while let Some(event) = self.backlog.pop_front() {
                            if event_name(&event) == name {
                                return Ok(());
                            }
                        }
                    }
                    None => return Err(ShellError::WaitTimedOut(format!("the SIP driver stopped while waiting for {name}"))),
                },
            }
        }
    }
}

/// Read input lines on a blocking thread: rustyline on a terminal, plain lines otherwise.
/// Interactive mode also hands back a printer that writes above the prompt.
fn spawn_input(history: Option<PathBuf>) -> (mpsc::UnboundedReceiver<String>, Option<LinePrinter>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let interactive = std::io::stdin().is_terminal();
    let (printer_tx, printer_rx) = std::sync::mpsc::channel::<LinePrinter>();
    std::thread::spawn(move || {
        if interactive {
            read_interactive(tx, history, printer_tx);
        } else {
            for line in std::io::stdin().lock().lines() {
                match line {
                    Ok(line) => {
                        if tx.send(line).is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            let _ = tx.send("quit".into());
        }
    });
    let printer = if interactive {
        printer_rx.recv_timeout(Duration::from_secs(2)).ok()
    } else {
        None
    };
    (rx, printer)
}

mod completion {
    use rustyline::completion::{Completer, Pair};
    use rustyline::Context;

    #[derive(Default)]
    pub struct CommandCompleter;

    impl Completer for CommandCompleter {
        type Candidate = Pair;
        fn complete(
            &self,
            line: &str,
            pos: usize,
            _ctx: &Context<'_>,
        ) -> rustyline::Result<(usize, Vec<Pair>)> {
            let head = &line[..pos.min(line.len())];
            if head.contains(' ') {
                let words: Vec<&str> = head.split_whitespace().collect();
                if words.first() == Some(&"atransfer") && words.len() <= 2 {
                    let start = head.rfind(' ').map(|i| i + 1).unwrap_or(0);
                    let word = &head[start..];
                    let pairs = ["complete", "abort"]
                        .iter()
                        .filter(|c| c.starts_with(word))
                        .map(|c| Pair {
                            display: c.to_string(),
                            replacement: c.to_string(),
                        })
                        .collect();
                    return Ok((start, pairs));
                }
                return Ok((pos, Vec::new()));
            }
            let pairs = super::COMMANDS
                .iter()
                .filter(|(name, _)| name.starts_with(head))
                .map(|(name, _)| Pair {
                    display: name.to_string(),
                    replacement: format!("{name} "),
                })
                .collect();
            Ok((0, pairs))
        }
    }
    impl rustyline::hint::Hinter for CommandCompleter {
        type Hint = String;
    }
    impl rustyline::highlight::Highlighter for CommandCompleter {}
    impl rustyline::validate::Validator for CommandCompleter {}
    impl rustyline::Helper for CommandCompleter {}
}

fn read_interactive(
    tx: mpsc::UnboundedSender<String>,
    history: Option<PathBuf>,
    printer_tx: std::sync::mpsc::Sender<LinePrinter>,
) {
    let Ok(mut editor) =
        rustyline::Editor::<completion::CommandCompleter, rustyline::history::DefaultHistory>::new(
        )
    else {
        let _ = tx.send("quit".into());
        return;
    };
    editor.set_helper(Some(completion::CommandCompleter));
    if let Ok(mut printer) = editor.create_external_printer() {
        use rustyline::ExternalPrinter as _;
        let _ = printer_tx.send(Box::new(move |line: String| {
            let _ = printer.print(format!("{line}\n"));
        }));
    }
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    loop {
        match editor.readline("ringside> ") {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
            Err(_) => {
                let _ = tx.send("quit".into());
                break;
            }
        }
    }
    if let Some(path) = &history {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = editor.save_history(path);
    }
}

/// Run the shell until `quit` or end of input. Returns the process exit code.
pub async fn run(
    driver: DriverHandle,
    json: bool,
    auto_register: bool,
    history: Option<PathBuf>,
) -> i32 {
    run_with_startup(driver, json, auto_register, history, &[]).await
}

/// `run`, first carrying out `startup` commands as if typed (the demo logs into a queue this
/// way). A startup `wait` that times out is reported and the shell goes on.
pub async fn run_with_startup(
    driver: DriverHandle,
    json: bool,
    auto_register: bool,
    history: Option<PathBuf>,
    startup: &[&str],
) -> i32 {
    let (mut lines, printer) = spawn_input(history);
    let mut shell = Shell {
        json,
        printer,
        driver,
        calls: BTreeMap::new(),
        backlog: VecDeque::new(),
        stopped: false,
    };
    if json {
        shell.print_json(json!({"event": "ready", "local": shell.driver.local.to_string()}));
    } else {
        println!(
            "ringside shell on {} — type 'help' for commands",
            shell.driver.local
        );
    }
    if auto_register {
        shell.send(Command::Register);
    }
    for line in startup {
        match shell.run_line(line).await {
            Ok(true) | Err(_) => {}
            Ok(false) => break,
        }
    }
    let mut code = 0;
    loop {
        tokio::select! {
            line = lines.recv() => {
                let line = line.unwrap_or_else(|| "quit".into());
                match shell.run_line(line.trim()).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(ShellError::WaitTimedOut(_)) => {
                        // A script waited for something that never came: stop with an error so
                        // the script (or test) fails visibly.
                        if !std::io::stdin().is_terminal() {
                            code = 3;
                            break;
                        }
                    }
                }
            }
            output = shell.driver.outputs.recv() => match output {
                Some(output) => shell.on_output(output),
                None => break,
            },
        }
    }
    let _ = shell.driver.commands.send(DriverCommand::Shutdown {
        grace: Duration::from_secs(3),
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !shell.stopped {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => break,
            output = shell.driver.outputs.recv() => match output {
                Some(output) => shell.on_output(output),
                None => break,
            },
        }
    }
    code
}
