//! The lab's AMI server over real TCP on 127.0.0.1, read by ringside's own AMI client (the one
//! proven against the Asterisk 22 captures): MD5 login, the QueueStatus / QueueSummary snapshot,
//! live events whose keys come in the captured order, report events equal to those of the
//! lab's own queue_log, supervisor actions with Asterisk's error texts, a refused login, and a
//! stalled client that is cut off at the send limit while the others are served. Every test
//! runs a lab that stops by itself and is bounded in time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ringside::config::Secret;
use ringside::lab::config::LabConfig;
use ringside::net::ami::{
    run_queue_action, run_queue_action_with, spawn, AmiConfig, AmiError, AmiHandle,
};
use ringside::net::lab::{start, AmiServerStats, LabOptions};
use ringside::queue::ami::{AmiFramer, AmiItem, AmiKind, AmiMessage, QueueAmiEvent};
use ringside::queue::ami_client::{AmiAction, AmiClientEvent, QueueMonitor};
use ringside::queue::queue_log::lines_ref;
use ringside::queue::report::{QueueLogReport, ReportEvent, ReportKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(60);

async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("the test finishes within its time limit")
}

fn epoch_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringside-lab-ami-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

/// A lab with no traffic of its own: only what the test does happens.
fn quiet_config() -> LabConfig {
    let mut config = LabConfig::default();
    config.simulation.callers_per_minute = 0.0;
    config.simulation.bots = 0;
    config
}

/// A busy lab: callers every second or so into `support` (maximum wait 4 s) and `sales`, and
/// a few into `empty`, a queue nobody serves that sends callers away at once (the captures'
/// scenario h). Bots answer fast, let some rings run out, pause, log out and transfer; callers
/// are impatient.
fn busy_config() -> LabConfig {
    let mut config = LabConfig::default();
    let sim = &mut config.simulation;
    sim.callers_per_minute = 60.0;
    sim.bots = 6;
    sim.bot_queues = Some(vec!["support".into(), "sales".into()]);
    sim.answer_delay_min = Duration::from_millis(500);
    sim.answer_delay_max = Duration::from_millis(1500);
    sim.no_answer_pct = 25.0;
    sim.talk_mean = Duration::from_millis(1500);
    sim.patience_mean = Duration::from_secs(8);
    sim.pauses_per_hour = 900.0;
    sim.pause_mean = Duration::from_secs(2);
    sim.logouts_per_hour = 400.0;
    sim.logout_mean = Duration::from_secs(2);
    sim.blind_transfer_pct = 25.0;
    sim.attended_transfer_pct = 25.0;
    for queue in &mut config.queues {
        let q = &mut queue.queue;
        q.ring_timeout = Duration::from_secs(2);
        q.retry = Duration::from_millis(500);
        q.wrapup = Duration::from_millis(500);
        q.max_wait = (q.name == "support").then(|| Duration::from_secs(4));
    }
    let mut empty = config.queues[1].clone();
    empty.queue.name = "empty".into();
    empty.queue.leave_when_empty = true;
    empty.extension = "800".into();
    empty.login_code = "*800".into();
    empty.logout_code = "*801".into();
    empty.callers_per_minute = Some(12.0);
    config.queues.push(empty);
    config
}

/// Runs a lab (AMI on 127.0.0.1:0) for at most `duration` next to `body`, which gets the AMI
/// address and the server's counters. The lab stops by itself when `duration` is over; `body`
/// may finish first, which ends the lab too. Returns what `body` returned and the queue_log.
async fn with_lab<T, F, Fut>(
    name: &str,
    config: LabConfig,
    duration: Duration,
    send_limit: Option<usize>,
    body: F,
) -> (T, String)
where
    F: FnOnce(SocketAddr, Arc<AmiServerStats>) -> Fut,
    Fut: Future<Output = T>,
{
    let queue_log = scratch(name);
    let options = LabOptions {
        config,
        queue_log: queue_log.clone(),
        duration: Some(duration),
        status_every: Duration::from_secs(3600),
        seed: 11,
        ami: Some("127.0.0.1:0".parse().expect("address")),
    };
    let mut lab = start(options).await.expect("the lab starts");
    if let Some(limit) = send_limit {
        lab.set_ami_send_limit(limit);
    }
    let addr = lab.ami_addr().expect("AMI bound");
    assert_ne!(addr.port(), 0, "the real port is exposed");
    let stats = lab.ami_stats();
    let mut sink = std::io::sink();
    let lab_run = lab.run(&mut sink);
    let body = body(addr, stats);
    tokio::pin!(lab_run);
    tokio::pin!(body);
    let mut lab_done = false;
    let output = loop {
        tokio::select! {
            result = &mut lab_run, if !lab_done => {
                result.expect("the lab runs");
                lab_done = true;
            }
            output = &mut body => break output,
        }
    };
    let text = std::fs::read_to_string(&queue_log).expect("queue_log written");
    (output, text)
}

fn client(addr: SocketAddr) -> AmiConfig {
    let mut config = AmiConfig::new(addr.to_string(), "lab", Secret::new("lab"));
    config.reconnect = false;
    config.connect_timeout = Duration::from_secs(2);
    config
}

/// Key order of every event in the Asterisk captures, by event name (some events come in
/// two variants, e.g. HangupRequest with and without Cause).
fn captured_key_orders() -> HashMap<String, BTreeSet<Vec<String>>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/asterisk/ami");
    let mut orders: HashMap<String, BTreeSet<Vec<String>>> = HashMap::new();
    for entry in std::fs::read_dir(dir).expect("fixtures") {
        let path = entry.expect("entry").path();
        let is_server = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".server.txt"));
        if !is_server {
            continue;
        }
        let mut framer = AmiFramer::from_server();
        framer.push(&std::fs::read(&path).expect("fixture"));
        while let Some(item) = framer.next_item().expect("captures frame") {
            if let AmiItem::Message(message) = item {
                if let AmiKind::Event(name) = message.kind() {
                    orders
                        .entry(name.to_owned())
                        .or_default()
                        .insert(key_order(&message));
                }
            }
        }
    }
    orders
}

fn key_order(message: &AmiMessage) -> Vec<String> {
    message.fields.iter().map(|(key, _)| key.clone()).collect()
}

/// What a live client saw.
#[derive(Default)]
struct Seen {
    messages: Vec<AmiMessage>,
    reports: Vec<ReportEvent>,
    /// Epoch second when the snapshot arrived: report events from here on are complete.
    snapshot_at: Option<u64>,
    monitor: QueueMonitor,
    snapshot_agents: Vec<(String, String)>,
    snapshot_queues: Vec<String>,
    action_results: Vec<(bool, String)>,
}

/// Feeds `handle`'s events to a monitor until the driver stops (the lab closed the
/// connection) or `stop` says so.
async fn watch(handle: &mut AmiHandle, seen: &mut Seen, stop: impl Fn(&Seen) -> bool) {
    while let Some(event) = handle.next_event().await {
        note(seen, &event);
        if stop(seen) {
            return;
        }
    }
}

fn note(seen: &mut Seen, event: &AmiClientEvent) {
    let now = epoch_now();
    match event {
        AmiClientEvent::Snapshot(messages) => {
            seen.messages.extend(messages.iter().cloned());
            seen.monitor.handle(now, event).expect("snapshot parses");
            if seen.snapshot_at.is_none() {
                seen.snapshot_at = Some(now);
                let state = seen.monitor.state();
                seen.snapshot_queues = state.queues().map(|q| q.name.clone()).collect();
                seen.snapshot_agents = state
                    .agents()
                    .map(|a| (a.name.clone(), a.interface.clone()))
                    .collect();
            }
            // Report events from the snapshot (members, callers) are not live ones.
            while seen.monitor.poll_report().is_some() {}
        }
        AmiClientEvent::Event(message) => {
            seen.messages.push(message.clone());
            seen.monitor.handle(now, event).expect("live event parses");
            while let Some(report) = seen.monitor.poll_report() {
                seen.reports.push(report);
            }
        }
        AmiClientEvent::ActionResult {
            success, message, ..
        } => seen.action_results.push((*success, message.clone())),
        _ => {}
    }
}

fn is_terminal(kind: ReportKind) -> bool {
    matches!(
        kind,
        ReportKind::CallerQuit
            | ReportKind::ExitEmpty
            | ReportKind::ExitTimeout
            | ReportKind::AgentHangup
            | ReportKind::CallerHangup
            | ReportKind::Transfer
            | ReportKind::BlindTransfer
    )
}

fn queue_log_reports(text: &str) -> Vec<ReportEvent> {
    let mut report = QueueLogReport::new();
    lines_ref(text)
        .filter_map(|(_, line)| line.ok())
        .filter_map(|line| report.handle_line(&line))
        .collect()
}

/// (kind, agent) of each event, with its time.
fn outline(events: &[&ReportEvent]) -> Vec<(ReportKind, Option<String>, u64)> {
    events
        .iter()
        .map(|e| (e.kind, e.agent.clone(), e.time))
        .collect()
}

#[tokio::test]
async fn the_ami_stream_has_asterisk_shapes_and_tells_what_queue_log_tells() {
    bounded(async {
        let (seen, queue_log) = with_lab(
            "busy-queue_log",
            busy_config(),
            Duration::from_secs(16),
            None,
            |addr, _stats| async move {
                let mut handle = spawn(client(addr));
                // An agent who never pauses keeps `support` staffed, so its timeouts cannot
                // look like empty-queue exits (AMI alone cannot tell those apart when nobody is
                // available: see the captures' README).
                handle
                    .command(AmiAction::QueueAdd {
                        queue: "support".into(),
                        interface: "PJSIP/101".into(),
                        member_name: Some("101".into()),
                        paused: false,
                    })
                    .await
                    .expect("queued");
                // A supervisor logs 102 in and out of `sales` and pauses it, every 2 s, so
                // every member event shows up whatever the bots do.
                let cycle = [
                    AmiAction::QueueAdd {
                        queue: "sales".into(),
                        interface: "PJSIP/102".into(),
                        member_name: Some("102".into()),
                        paused: false,
                    },
                    AmiAction::QueuePause {
                        queue: Some("sales".into()),
                        interface: "PJSIP/102".into(),
                        paused: true,
                        reason: Some("coaching".into()),
                    },
                    AmiAction::QueuePause {
                        queue: None,
                        interface: "PJSIP/102".into(),
                        paused: false,
                        reason: None,
                    },
                    AmiAction::QueueRemove {
                        queue: "sales".into(),
                        interface: "PJSIP/102".into(),
                    },
                ];
                let mut seen = Seen::default();
                let mut tick = tokio::time::interval(Duration::from_secs(2));
                let mut step = 0usize;
                loop {
                    tokio::select! {
                        event = handle.next_event() => match event {
                            Some(event) => note(&mut seen, &event),
                            None => break,
                        },
                        _ = tick.tick(), if seen.snapshot_at.is_some() => {
                            let action = cycle[step % cycle.len()].clone();
                            step += 1;
                            if handle.command(action).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let ended = handle.join().await;
                assert!(
                    matches!(ended, Err(AmiError::Lost { .. })),
                    "the lab closed the connection: {ended:?}"
                );
                seen
            },
        )
        .await;

        assert!(
            seen.action_results.iter().filter(|(ok, _)| *ok).count() >= 5,
            "{:?}",
            seen.action_results
        );
        for (ok, message) in &seen.action_results {
            assert!(
                *ok || message.contains("lost before it answered"),
                "{message}"
            );
        }

        // The model knows the lab's queues and its bots, named as the lab names them.
        let mut queues = seen.snapshot_queues.clone();
        queues.sort();
        assert_eq!(queues, ["empty", "sales", "support"]);
        for n in 1..=3 {
            let bot = format!("bot{n}");
            assert!(
                seen.snapshot_agents
                    .iter()
                    .any(|(name, interface)| *name == bot && *interface == format!("Local/{bot}")),
                "{bot} in {:?}",
                seen.snapshot_agents
            );
        }

        // (b) Every message parses as a typed event, with the keys of the captures in their
        // order.
        let captured = captured_key_orders();
        let mut names = BTreeSet::new();
        for message in &seen.messages {
            let AmiKind::Event(name) = message.kind() else {
                panic!("not an event: {message}");
            };
            let variants = captured
                .get(name)
                .unwrap_or_else(|| panic!("Asterisk never sent a {name}"));
            assert!(
                variants.contains(&key_order(message)),
                "{name} keys {:?} are none of the captured {variants:?}",
                key_order(message)
            );
            let typed = QueueAmiEvent::from_message(message)
                .unwrap_or_else(|error| panic!("{error}: {message}"));
            let untyped = ["HangupRequest", "BlindTransfer", "AttendedTransfer"];
            assert!(typed.is_some() || untyped.contains(&name), "{name} untyped");
            names.insert(name.to_owned());
        }
        for name in [
            "FullyBooted",
            "QueueParams",
            "QueueMember",
            "QueueSummary",
            "QueueCallerJoin",
            "QueueCallerLeave",
            "QueueCallerAbandon",
            "AgentCalled",
            "AgentConnect",
            "AgentComplete",
            "AgentRingNoAnswer",
            "QueueMemberAdded",
            "QueueMemberRemoved",
            "QueueMemberPause",
            "QueueMemberStatus",
            "HangupRequest",
            "BlindTransfer",
            "AttendedTransfer",
        ] {
            assert!(names.contains(name), "no {name} in {names:?}");
        }

        // (a) The report from AMI equals the report from queue_log, call by call.
        let from_log = queue_log_reports(&queue_log);
        let start = seen.snapshot_at.expect("snapshot taken");
        let mut calls: BTreeMap<&str, Vec<&ReportEvent>> = BTreeMap::new();
        for event in &seen.reports {
            if let Some(call) = event.call_id.as_deref() {
                calls.entry(call).or_default().push(event);
            }
        }
        let mut compared = 0;
        let mut kinds = BTreeSet::new();
        for (call, ami) in &calls {
            if ami.first().map(|e| e.kind) != Some(ReportKind::EnterQueue) {
                continue; // joined before the snapshot
            }
            let log: Vec<&ReportEvent> = from_log
                .iter()
                .filter(|e| e.call_id.as_deref() == Some(*call))
                .collect();
            let (ami, log) = (outline(ami), outline(&log));
            let finished = ami.last().is_some_and(|(kind, _, _)| is_terminal(*kind));
            let expected = if finished {
                &log[..]
            } else {
                log.get(..ami.len()).unwrap_or(&log[..])
            };
            let strip = |v: &[(ReportKind, Option<String>, u64)]| {
                v.iter()
                    .map(|(kind, agent, _)| (*kind, agent.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(strip(&ami), strip(expected), "call {call}");
            for ((_, _, a), (_, _, l)) in ami.iter().zip(expected) {
                assert!(a.abs_diff(*l) <= 1, "call {call}: AMI {a} vs queue_log {l}");
            }
            kinds.extend(ami.iter().map(|(kind, _, _)| *kind));
            compared += 1;
        }
        assert!(compared >= 10, "only {compared} calls compared");
        // Member events, away from the edges of the interval.
        let end = seen.reports.iter().map(|e| e.time).max().unwrap_or(start);
        let members = |events: &[ReportEvent]| -> Vec<(ReportKind, String, String, u64)> {
            events
                .iter()
                .filter(|e| e.call_id.is_none() || !is_call_kind(e.kind))
                .filter(|e| !is_call_kind(e.kind))
                .filter(|e| e.time >= start + 2 && e.time + 2 <= end)
                .map(|e| {
                    (
                        e.kind,
                        e.queue.clone(),
                        e.agent.clone().unwrap_or_default(),
                        e.time,
                    )
                })
                .collect()
        };
        let ami_members = members(&seen.reports);
        let log_members = members(&from_log);
        let key = |v: &[(ReportKind, String, String, u64)]| {
            let mut keys: Vec<_> = v
                .iter()
                .map(|(k, q, a, _)| (*k, q.clone(), a.clone()))
                .collect();
            keys.sort();
            keys
        };
        assert_eq!(key(&ami_members), key(&log_members));
        kinds.extend(ami_members.iter().map(|(kind, _, _, _)| *kind));
        for kind in [
            ReportKind::EnterQueue,
            ReportKind::Connected,
            ReportKind::NoAnswer,
            ReportKind::CallerQuit,
            ReportKind::ExitTimeout,
            ReportKind::ExitEmpty,
            ReportKind::AgentHangup,
            ReportKind::CallerHangup,
            ReportKind::BlindTransfer,
            ReportKind::Transfer,
            ReportKind::Pause,
            ReportKind::Unpause,
            ReportKind::AgentConnect,
            ReportKind::AgentDisconnect,
        ] {
            assert!(kinds.contains(&kind), "no {kind} compared: {kinds:?}");
        }
    })
    .await;
}

/// Report kinds that belong to one call (the others are member changes).
fn is_call_kind(kind: ReportKind) -> bool {
    !matches!(
        kind,
        ReportKind::AgentConnect
            | ReportKind::AgentDisconnect
            | ReportKind::Pause
            | ReportKind::Unpause
    )
}

#[tokio::test]
async fn supervisor_actions_work_and_fail_with_asterisk_texts() {
    bounded(async {
        let (results, queue_log) = with_lab(
            "actions-queue_log",
            quiet_config(),
            Duration::from_secs(30),
            None,
            |addr, _stats| async move {
                // A live client watches the member events the actions cause.
                let mut handle = spawn(client(addr));
                let mut seen = Seen::default();
                watch(&mut handle, &mut seen, |s| s.snapshot_at.is_some()).await;
                let addr = addr.to_string();
                let secret = || Secret::new("lab");
                let add = |queue: &str| AmiAction::QueueAdd {
                    queue: queue.into(),
                    interface: "PJSIP/102".into(),
                    member_name: Some("102".into()),
                    paused: false,
                };
                let pause = |interface: &str, paused: bool| AmiAction::QueuePause {
                    queue: Some("support".into()),
                    interface: interface.into(),
                    paused,
                    reason: paused.then(|| "supervisor-hold".to_owned()),
                };
                let remove = AmiAction::QueueRemove {
                    queue: "support".into(),
                    interface: "PJSIP/102".into(),
                };
                let mut results = Vec::new();
                for action in [
                    add("support"),
                    add("support"),
                    pause("PJSIP/102", true),
                    pause("PJSIP/102", false),
                    remove.clone(),
                    remove,
                    pause("PJSIP/nobody", true),
                    add("nosuch"),
                ] {
                    let result = run_queue_action(&addr, "lab", secret(), action).await;
                    results.push(match result {
                        Ok(text) => Ok(text),
                        Err(AmiError::ActionFailed { context, message }) => {
                            Err(format!("{context}: {message}"))
                        }
                        Err(other) => panic!("{other}"),
                    });
                }
                // The member events reach the live client, in order.
                watch(&mut handle, &mut seen, |s| {
                    s.messages
                        .iter()
                        .any(|m| m.get("Event") == Some("QueueMemberRemoved"))
                })
                .await;
                let events: Vec<String> = seen
                    .messages
                    .iter()
                    .filter(|m| m.get("MemberName") == Some("102"))
                    .filter_map(|m| {
                        Some(format!(
                            "{} {}",
                            m.get("Event")?,
                            m.get("Paused").unwrap_or_default()
                        ))
                    })
                    .collect();
                handle.shutdown().await.expect("logoff");
                (results, events)
            },
        )
        .await;
        let (results, events) = results;
        assert_eq!(
            results,
            [
                Ok("QueueAdd support PJSIP/102: Added interface to queue".to_owned()),
                Err("QueueAdd support PJSIP/102: Unable to add interface: Already there".into()),
                Ok("QueuePause support PJSIP/102 (pause): Interface paused successfully".into()),
                Ok(
                    "QueuePause support PJSIP/102 (unpause): Interface unpaused successfully"
                        .into()
                ),
                Ok("QueueRemove support PJSIP/102: Removed interface from queue".into()),
                Err("QueueRemove support PJSIP/102: Unable to remove interface: Not there".into()),
                Err("QueuePause support PJSIP/nobody (pause): Interface not found".into()),
                Err(
                    "QueueAdd nosuch PJSIP/102: Unable to add interface to queue: No such queue"
                        .into()
                ),
            ]
        );
        assert_eq!(
            events,
            [
                "QueueMemberAdded 0",
                "QueueMemberPause 1",
                "QueueMemberPause 0",
                "QueueMemberRemoved 0"
            ]
        );
        // queue_log names AMI as the source of the membership changes, as Asterisk does.
        let verbs: Vec<String> = queue_log
            .lines()
            .filter(|l| l.contains("|102|"))
            .map(|l| l.split('|').skip(1).collect::<Vec<_>>().join("|"))
            .collect();
        assert_eq!(
            verbs,
            [
                "MANAGER|support|102|ADDMEMBER|",
                "NONE|support|102|PAUSE|supervisor-hold",
                "NONE|support|102|UNPAUSE|",
                "MANAGER|support|102|REMOVEMEMBER|",
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn a_wrong_secret_gets_authentication_failed_after_a_second() {
    bounded(async {
        with_lab(
            "refused-queue_log",
            quiet_config(),
            Duration::from_secs(30),
            None,
            |addr, _stats| async move {
                // The client's view: a final LoginFailed with Asterisk's text.
                let started = Instant::now();
                let mut config = client(addr);
                config.secret = Secret::new("wrong-secret");
                let mut handle = spawn(config);
                let mut failed = None;
                while let Some(event) = handle.next_event().await {
                    if let AmiClientEvent::LoginFailed { message } = event {
                        failed = Some(message);
                    }
                }
                let message = failed.expect("LoginFailed");
                assert!(message.contains("\"Authentication failed\""), "{message}");
                assert!(
                    started.elapsed() >= Duration::from_secs(1),
                    "the 1 s penalty"
                );
                assert!(matches!(
                    handle.join().await,
                    Err(AmiError::LoginRejected { .. })
                ));
                let error = run_queue_action(
                    &addr.to_string(),
                    "lab",
                    Secret::new("nope"),
                    AmiAction::QueuePause {
                        queue: None,
                        interface: "PJSIP/101".into(),
                        paused: true,
                        reason: None,
                    },
                )
                .await
                .expect_err("refused");
                assert!(
                    error.to_string().contains("Authentication failed"),
                    "{error}"
                );

                // On the wire: the captured client bytes get the captured answer, then EOF.
                let fixtures =
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/asterisk/ami");
                let request = std::fs::read(fixtures.join("login-failed.client.txt"))
                    .expect("fixture")
                    .into_iter()
                    .collect::<Vec<u8>>();
                let request = String::from_utf8(request)
                    .expect("text")
                    .replace("Username: console", "Username: lab");
                let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
                stream.write_all(request.as_bytes()).await.expect("send");
                let mut received = Vec::new();
                stream
                    .read_to_end(&mut received)
                    .await
                    .expect("the lab closes the connection");
                let expected =
                    std::fs::read(fixtures.join("login-failed.server.txt")).expect("fixture");
                assert_eq!(
                    String::from_utf8_lossy(&received),
                    String::from_utf8_lossy(&expected)
                );
            },
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_stalled_client_is_cut_off_at_the_limit_and_the_others_are_served() {
    const SEND_LIMIT: usize = 32 * 1024;
    bounded(async {
        let mut config = busy_config();
        config.simulation.callers_per_minute = 600.0;
        let ((), _) = with_lab(
            "stalled-queue_log",
            config,
            Duration::from_secs(40),
            Some(SEND_LIMIT),
            |addr, stats| async move {
                // A client that logs in with every event and then never reads, with a tiny
                // receive window so the kernel cannot hide the backlog for long.
                let socket = tokio::net::TcpSocket::new_v4().expect("socket");
                socket.set_recv_buffer_size(4096).expect("small buffer");
                let mut stalled = socket.connect(addr).await.expect("connect");
                stalled
                    .write_all(
                        b"Action: Login\r\nUsername: lab\r\nSecret: lab\r\nEvents: on\r\n\r\n",
                    )
                    .await
                    .expect("login");

                let mut handle = spawn(client(addr));
                let mut seen = Seen::default();
                watch(&mut handle, &mut seen, |s| s.snapshot_at.is_some()).await;
                let started = Instant::now();
                while stats.slow_disconnects.load(Ordering::Relaxed) == 0 {
                    assert!(
                        started.elapsed() < Duration::from_secs(30),
                        "the stalled client was never cut off (peak {} bytes, {} events seen)",
                        stats.peak_pending_bytes.load(Ordering::Relaxed),
                        seen.messages.len()
                    );
                    let wait = tokio::time::sleep(Duration::from_millis(100));
                    tokio::pin!(wait);
                    // Keep the good client reading meanwhile.
                    tokio::select! {
                        () = &mut wait => {}
                        event = handle.next_event() => {
                            if let Some(AmiClientEvent::Event(message)) = event {
                                seen.messages.push(message);
                            }
                        }
                    }
                }
                let cut_after = started.elapsed();
                let peak = stats.peak_pending_bytes.load(Ordering::Relaxed);
                assert!(peak <= SEND_LIMIT, "{peak} bytes waited for one client");
                assert_eq!(
                    stats.open.load(Ordering::Relaxed),
                    1,
                    "only the good client"
                );

                // The good client keeps receiving live events.
                let before = seen.messages.len();
                let deadline = Instant::now() + Duration::from_secs(3);
                watch(&mut handle, &mut seen, |s| {
                    s.messages.len() >= before + 20 || Instant::now() > deadline
                })
                .await;
                assert!(
                    seen.messages.len() >= before + 20,
                    "the good client starved"
                );

                // The stalled client got at most what the kernel held plus the limit, then
                // the end of the connection.
                let mut received = Vec::new();
                let read = tokio::time::timeout(
                    Duration::from_secs(5),
                    stalled.read_to_end(&mut received),
                )
                .await
                .expect("the connection ends");
                assert!(read.is_ok() || !received.is_empty(), "{read:?}");
                assert!(received.starts_with(b"Asterisk Call Manager/11.0.0\r\n"));
                assert!(received.len() < 8 * 1024 * 1024, "{} bytes", received.len());
                eprintln!(
                    "stalled client cut off after {:?}: peak {peak} bytes queued, {} bytes reached it",
                    cut_after,
                    received.len()
                );
                handle.shutdown().await.expect("logoff");
            },
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_client_that_closes_mid_session_leaves_the_server_clean() {
    bounded(async {
        with_lab(
            "closing-queue_log",
            quiet_config(),
            Duration::from_secs(30),
            None,
            |addr, stats| async move {
                for _ in 0..5 {
                    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
                    stream
                        .write_all(b"Action: Login\r\nUsername: lab\r\nSecret: lab\r\n\r\nAction: Ping\r\n")
                        .await
                        .expect("send");
                    drop(stream);
                }
                let config = client(addr);
                let answer = run_queue_action_with(
                    config,
                    AmiAction::QueuePause {
                        queue: None,
                        interface: "PJSIP/101".into(),
                        paused: true,
                        reason: None,
                    },
                    Duration::from_secs(5),
                )
                .await
                .expect_err("101 is in no queue");
                assert!(answer.to_string().ends_with("Interface not found"), "{answer}");
                let started = Instant::now();
                while stats.open.load(Ordering::Relaxed) > 0 {
                    assert!(started.elapsed() < Duration::from_secs(5), "connections leak");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                assert_eq!(stats.accepted.load(Ordering::Relaxed), 6);
            },
        )
        .await;
    })
    .await;
}
