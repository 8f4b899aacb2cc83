//! A loopback AMI server that replays real Asterisk 22 captures (`tests/fixtures/asterisk/ami`).
//!
//! It is a replay of captured bytes, not a hand-written fake: everything it sends is a message
//! of a fixture's `*.server.txt`, byte for byte, except the `ActionID:` line, which is
//! rewritten to the id the client under test chose (or added, for the one capture whose client
//! sent none). Nothing is invented: an action the loaded captures have no answer for is
//! recorded in [`ReplayLog::unanswered`] and left unanswered, as a dead PBX would.
//!
//! How a capture is cut up: each `Response` belongs to the client action with its ActionID
//! (or, without one, to the next action without one, in order). List events carrying an
//! ActionID go with that action's answer. Events without one that follow a Login answer are
//! the live stream; those that follow any other answer were caused by that action (a
//! `QueueMemberAdded` after `QueueAdd`) and are sent right after its answer. A capture whose
//! server closed the connection after an answer (a rejected Login, Logoff's Goodbye) makes the
//! replay close it there too.
//!
//! A connection: the banner; then every action is answered with the next unused answer for
//! that action name (the n-th `QueueAdd` of the connection gets the capture's n-th); once a
//! Login succeeds, the live stream plays with its original pacing (from the events'
//! `Timestamp`s) divided by `speed`. Each new connection starts the script afresh.
//! `stop` closes the listener and every connection at once, like a killed PBX; `start_on`
//! the same address brings it back.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringside::queue::ami::{AmiFramer, AmiItem, AmiKind, AmiMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/asterisk/ami")
        .join(name)
}

fn read_text(name: &str) -> String {
    let bytes = std::fs::read(fixture_path(name)).expect("fixture");
    String::from_utf8(bytes).expect("fixtures are UTF-8")
}

fn parse(raw: &str) -> AmiMessage {
    let mut framer = AmiFramer::from_client();
    framer.push(raw.as_bytes());
    match framer.next_item() {
        Ok(Some(AmiItem::Message(message))) => message,
        other => panic!("fixture message does not frame: {other:?}"),
    }
}

fn name_of(message: &AmiMessage) -> String {
    match message.kind() {
        AmiKind::Action(name) | AmiKind::Response(name) | AmiKind::Event(name) => {
            name.to_ascii_lowercase()
        }
        AmiKind::Other => String::new(),
    }
}

/// One captured answer: the response and what it brought along.
#[derive(Debug, Clone)]
struct Answer {
    /// The action name, lowercase.
    action: String,
    /// The capture's own action, for comparison by tests.
    captured_action: AmiMessage,
    /// Raw captured messages, the response first.
    messages: Vec<String>,
    success: bool,
    /// The capture's server closed the connection after this answer.
    closes: bool,
}

/// One live event: the raw captured bytes and its `Timestamp` in µs.
#[derive(Debug, Clone)]
struct LiveEvent {
    raw: String,
    at_micros: Option<u128>,
}

struct Capture {
    banner: String,
    answers: Vec<Answer>,
    live: Vec<LiveEvent>,
}

fn timestamp_micros(message: &AmiMessage) -> Option<u128> {
    let text = message.get("Timestamp")?;
    let (secs, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let secs: u128 = secs.parse().ok()?;
    let mut fraction = fraction.to_owned();
    fraction.truncate(6);
    while fraction.len() < 6 {
        fraction.push('0');
    }
    Some(secs * 1_000_000 + fraction.parse::<u128>().ok()?)
}

fn cut(name: &str) -> Capture {
    let server = read_text(&format!("{name}.server.txt"));
    let client = read_text(&format!("{name}.client.txt"));
    let (banner, rest) = server.split_once("\r\n").expect("banner line");
    let actions: Vec<AmiMessage> = client.split_inclusive("\r\n\r\n").map(parse).collect();
    let raw_messages: Vec<&str> = rest.split_inclusive("\r\n\r\n").collect();
    let mut without_id = actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.action_id().is_none())
        .map(|(index, _)| index)
        .collect::<Vec<_>>()
        .into_iter();
    let mut answers: Vec<Answer> = Vec::new();
    let mut answer_of_id: HashMap<String, usize> = HashMap::new();
    let mut live = Vec::new();
    // The answer unsolicited events belong to; None (or a login) means the live stream.
    let mut current: Option<usize> = None;
    for (position, raw) in raw_messages.iter().enumerate() {
        let message = parse(raw);
        match message.kind() {
            AmiKind::Response(status) => {
                let action_index = match message.action_id() {
                    Some(id) => actions
                        .iter()
                        .position(|a| a.action_id() == Some(id))
                        .unwrap_or_else(|| panic!("{name}: no action with ActionID {id}")),
                    None => without_id
                        .next()
                        .unwrap_or_else(|| panic!("{name}: a response without an action")),
                };
                let action = &actions[action_index];
                if let Some(id) = action.action_id() {
                    answer_of_id.insert(id.to_owned(), answers.len());
                }
                current = Some(answers.len());
                answers.push(Answer {
                    action: name_of(action),
                    captured_action: action.clone(),
                    messages: vec![(*raw).to_owned()],
                    success: status.eq_ignore_ascii_case("Success")
                        || status.eq_ignore_ascii_case("Goodbye"),
                    closes: position + 1 == raw_messages.len(),
                });
            }
            AmiKind::Event(_) => {
                let listed = message.action_id().and_then(|id| answer_of_id.get(id));
                match (listed, current) {
                    (Some(&index), _) => answers[index].messages.push((*raw).to_owned()),
                    (None, Some(index)) if answers[index].action != "login" => {
                        answers[index].messages.push((*raw).to_owned())
                    }
                    _ => live.push(LiveEvent {
                        raw: (*raw).to_owned(),
                        at_micros: timestamp_micros(&message),
                    }),
                }
            }
            _ => panic!("{name}: unexpected message from the server: {raw}"),
        }
    }
    Capture {
        banner: format!("{banner}\r\n"),
        answers,
        live,
    }
}

/// What the server answers and streams.
#[derive(Clone)]
pub struct Script {
    banner: String,
    answers: Vec<Answer>,
    live: Vec<LiveEvent>,
    speed: f64,
}

impl Default for Script {
    fn default() -> Self {
        Self::new()
    }
}

impl Script {
    pub fn new() -> Self {
        Self {
            banner: String::new(),
            answers: Vec::new(),
            live: Vec::new(),
            speed: 100.0,
        }
    }

    /// Every answer of a capture (its live events are left out).
    pub fn answers(mut self, capture: &str) -> Self {
        let capture = cut(capture);
        if self.banner.is_empty() {
            self.banner = capture.banner;
        }
        self.answers.extend(capture.answers);
        self
    }

    /// A capture's live stream, plus the answers to its actions other than the login ones
    /// (so actions the scenario sent bring their captured events along).
    pub fn live(mut self, capture: &str) -> Self {
        let capture = cut(capture);
        if self.banner.is_empty() {
            self.banner = capture.banner;
        }
        self.answers.extend(
            capture
                .answers
                .into_iter()
                .filter(|a| !matches!(a.action.as_str(), "login" | "challenge" | "logoff")),
        );
        self.live.extend(capture.live);
        self
    }

    /// Plays the live stream `speed` times faster than captured.
    pub fn speed(mut self, speed: f64) -> Self {
        self.speed = speed;
        self
    }

    /// The captured action of the n-th answer for `action` (lowercase), for comparison.
    pub fn captured_action(&self, action: &str, nth: usize) -> Option<AmiMessage> {
        self.answers
            .iter()
            .filter(|a| a.action == action)
            .nth(nth)
            .map(|a| a.captured_action.clone())
    }

    /// Drops the first answer for `action` (lowercase), so the next one answers first.
    pub fn without_first(mut self, action: &str) -> Self {
        if let Some(index) = self.answers.iter().position(|a| a.action == action) {
            self.answers.remove(index);
        }
        self
    }

    pub fn live_len(&self) -> usize {
        self.live.len()
    }
}

/// What the server saw, over all connections.
#[derive(Debug, Default, Clone)]
pub struct ReplayLog {
    pub connections: usize,
    /// Every action received, per connection.
    pub received: Vec<Vec<AmiMessage>>,
    /// Actions no loaded capture answers.
    pub unanswered: Vec<AmiMessage>,
    /// Live events sent, over all connections.
    pub live_sent: usize,
}

pub struct ReplayServer {
    pub addr: SocketAddr,
    log: Arc<Mutex<ReplayLog>>,
    task: JoinHandle<()>,
}

impl ReplayServer {
    /// Listens on 127.0.0.1 on a free port.
    pub async fn start(script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::serve(listener, script)
    }

    /// Listens on `addr` again (after [`ReplayServer::stop`]), retrying for up to 2 s while
    /// the port is still being released.
    pub async fn start_on(addr: SocketAddr, script: Script) -> Self {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match TcpListener::bind(addr).await {
                Ok(listener) => return Self::serve(listener, script),
                Err(error) if Instant::now() < deadline => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => panic!("cannot listen on {addr} again: {error}"),
            }
        }
    }

    fn serve(listener: TcpListener, script: Script) -> Self {
        let addr = listener.local_addr().expect("local addr");
        let log = Arc::new(Mutex::new(ReplayLog::default()));
        let script = Arc::new(script);
        let task_log = Arc::clone(&log);
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every connection.
            let mut connections = JoinSet::new();
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    break;
                };
                let index = {
                    let mut log = task_log.lock().expect("log");
                    log.connections += 1;
                    log.received.push(Vec::new());
                    log.received.len() - 1
                };
                connections.spawn(connection(
                    socket,
                    Arc::clone(&script),
                    Arc::clone(&task_log),
                    index,
                ));
            }
        });
        Self { addr, log, task }
    }

    /// The shared log, for watching it from another task.
    pub fn log_handle(&self) -> Arc<Mutex<ReplayLog>> {
        Arc::clone(&self.log)
    }

    pub fn log(&self) -> ReplayLog {
        self.log.lock().expect("log").clone()
    }

    /// Kills the server: the listener and every connection close at once.
    pub async fn stop(self) -> ReplayLog {
        self.task.abort();
        let _ = self.task.await;
        let log = self.log.lock().expect("log").clone();
        log
    }
}

/// `raw` with its ActionID line set to `id` (added after the first line of a response that has
/// none), or removed when the client sent no id.
fn rewrite_action_id(raw: &str, id: Option<&str>) -> String {
    let add_to_response = raw.starts_with("Response:") && !raw.contains("\r\nActionID:");
    let mut out = String::with_capacity(raw.len() + 32);
    for (index, line) in raw.split_inclusive("\r\n").enumerate() {
        if !line.starts_with("ActionID:") {
            out.push_str(line);
        }
        let replace_here = line.starts_with("ActionID:") || (index == 0 && add_to_response);
        if let (true, Some(id)) = (replace_here, id) {
            out.push_str(&format!("ActionID: {id}\r\n"));
        }
    }
    out
}

async fn connection(
    mut socket: TcpStream,
    script: Arc<Script>,
    log: Arc<Mutex<ReplayLog>>,
    index: usize,
) {
    if socket.write_all(script.banner.as_bytes()).await.is_err() {
        return;
    }
    let mut framer = AmiFramer::from_client();
    let mut used: HashMap<String, usize> = HashMap::new();
    let mut buffer = vec![0u8; 8192];
    let mut live_started: Option<Instant> = None;
    let mut next_live = 0usize;
    let first_stamp = script.live.iter().find_map(|e| e.at_micros);
    let mut last_due = Instant::now();
    loop {
        let due = live_started.and_then(|started| {
            let event = script.live.get(next_live)?;
            let offset = match (event.at_micros, first_stamp) {
                (Some(at), Some(first)) => {
                    let micros = at.saturating_sub(first) as f64 / script.speed;
                    started + Duration::from_micros(micros as u64)
                }
                _ => last_due,
            };
            Some(offset.max(last_due))
        });
        let sleep = tokio::time::sleep_until(
            due.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)),
        );
        tokio::select! {
            read = socket.read(&mut buffer) => {
                let Ok(read) = read else { return };
                if read == 0 {
                    return;
                }
                framer.push(&buffer[..read]);
                while let Ok(Some(item)) = framer.next_item() {
                    let AmiItem::Message(action) = item else { continue };
                    log.lock().expect("log").received[index].push(action.clone());
                    let name = name_of(&action);
                    let nth = used.entry(name.clone()).or_insert(0);
                    let Some(answer) = script.answers.iter().filter(|a| a.action == name).nth(*nth) else {
                        log.lock().expect("log").unanswered.push(action);
                        continue;
                    };
                    *nth += 1;
                    let mut bytes = String::new();
                    for raw in &answer.messages {
                        let list_or_response = raw.starts_with("Response:") || raw.contains("\r\nActionID:");
                        if list_or_response {
                            bytes.push_str(&rewrite_action_id(raw, action.action_id()));
                        } else {
                            bytes.push_str(raw);
                        }
                    }
                    if socket.write_all(bytes.as_bytes()).await.is_err() {
                        return;
                    }
                    if answer.closes {
                        let _ = socket.shutdown().await;
                        return;
                    }
                    if answer.action == "login" && answer.success && live_started.is_none() {
                        live_started = Some(Instant::now());
                        last_due = Instant::now();
                    }
                }
            }
            () = sleep, if due.is_some() => {
                let Some(event) = script.live.get(next_live) else { continue };
                if socket.write_all(event.raw.as_bytes()).await.is_err() {
                    return;
                }
                next_live += 1;
                last_due = due.unwrap_or(last_due);
                log.lock().expect("log").live_sent += 1;
            }
        }
    }
}
