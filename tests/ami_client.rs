//! The AMI client and its tokio driver against a loopback server replaying the real Asterisk 22
//! captures (see `support/ami_replay.rs`): login (MD5, plain, refused), the QueueStatus /
//! QueueSummary snapshot, live events into the report, supervisor actions with the PBX's
//! errors, keepalive, and reconnect with a full resync after the server is killed mid-stream.
//! Everything runs on 127.0.0.1 and every test is bounded in time.

#[path = "support/ami_replay.rs"]
mod ami_replay;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use ami_replay::{fixture_path, ReplayServer, Script};
use ringside::cli::report::{
    run_events_ami_with, run_report_ami_at, AmiCredentials, ReportArgs, ReportFormat,
};
use ringside::config::Secret;
use ringside::net::ami::{run_queue_action_with, spawn, AmiConfig, AmiError, AmiHandle};
use ringside::queue::ami::{AmiFramer, AmiItem, AmiKind, AmiMessage, QueueAmiEvent};
use ringside::queue::ami_client::{
    AmiAction, AmiClientEvent, AmiClientOptions, EventsFilter, LoginMethod, QueueMonitor,
};
use ringside::queue::model::QueueState;
use ringside::queue::queue_log::lines_ref;
use ringside::queue::report::{QueueLogReport, ReportEvent, ReportKind};

/// When the queuestatus capture was taken (epoch s): the clock for waits.
const SNAPSHOT_AT: u64 = 1_795_259_649;
const LIMIT: Duration = Duration::from_secs(20);

async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("the test finishes within its time limit")
}

fn config(addr: SocketAddr) -> AmiConfig {
    let mut config = AmiConfig::new(
        addr.to_string(),
        "console",
        Secret::new("console-ami-secret"),
    );
    config.connect_timeout = Duration::from_secs(1);
    config.backoff_initial = Duration::from_millis(50);
    config.backoff_max = Duration::from_millis(400);
    config
}

/// A PBX with the login, QueueStatus and QueueSummary answers, and `live`'s events.
fn pbx(live: Option<&str>) -> Script {
    let script = Script::new()
        .answers("login-md5")
        .answers("queuestatus")
        .answers("queuesummary");
    match live {
        Some(capture) => script.live(capture),
        None => script,
    }
}

/// Events until `wanted` matches one (returned with those before it).
async fn until(
    handle: &mut AmiHandle,
    wanted: impl Fn(&AmiClientEvent) -> bool,
) -> Vec<AmiClientEvent> {
    let mut seen = Vec::new();
    while let Some(event) = handle.next_event().await {
        let done = wanted(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
    panic!("the driver stopped first: {seen:?}");
}

fn without_action_id(message: &AmiMessage) -> Vec<(String, String)> {
    message
        .fields
        .iter()
        .filter(|(key, _)| !key.eq_ignore_ascii_case("ActionID"))
        .cloned()
        .collect()
}

fn action_names(received: &[AmiMessage]) -> Vec<String> {
    received
        .iter()
        .map(|m| match m.kind() {
            AmiKind::Action(name) => name.to_owned(),
            _ => "?".to_owned(),
        })
        .collect()
}

/// The model straight from the queuestatus capture, without any client.
fn queuestatus_model() -> QueueState {
    let bytes = std::fs::read(fixture_path("queuestatus.server.txt")).expect("fixture");
    let mut framer = AmiFramer::from_server();
    framer.push(&bytes);
    let mut state = QueueState::new();
    while let Some(item) = framer.next_item().expect("frames") {
        if let AmiItem::Message(message) = item {
            if let Some(event) = QueueAmiEvent::from_message(&message).expect("typed") {
                state.apply(&event, SNAPSHOT_AT);
            }
        }
    }
    state
}

#[tokio::test]
async fn md5_login_then_the_snapshot_then_logoff() {
    bounded(async {
        let script = pbx(None);
        let captured_login = script.captured_action("login", 0).expect("login");
        let server = ReplayServer::start(script).await;
        let mut handle = spawn(config(server.addr));
        let seen = until(&mut handle, |e| matches!(e, AmiClientEvent::Snapshot(_))).await;
        assert_eq!(
            seen[..2],
            [
                AmiClientEvent::Connected {
                    banner: "Asterisk Call Manager/11.0.0".into()
                },
                AmiClientEvent::LoggedIn
            ]
        );
        handle.shutdown().await.expect("clean logoff");
        let log = server.stop().await;
        assert_eq!(log.connections, 1);
        let received = &log.received[0];
        assert_eq!(
            action_names(received),
            [
                "Challenge",
                "Login",
                "QueueStatus",
                "QueueSummary",
                "Logoff"
            ]
        );
        // The Login Asterisk accepted in the capture, Key included, but for the ActionID.
        assert_eq!(
            without_action_id(&received[1]),
            without_action_id(&captured_login)
        );
        assert_eq!(
            received[1].get("Key"),
            Some("384faa4f1c0dba84da6662b7a532d779")
        );
        assert!(log.unanswered.is_empty(), "{:?}", log.unanswered);
    })
    .await;
}

#[tokio::test]
async fn plain_login_and_a_ping_answered_by_the_capture() {
    bounded(async {
        let script = Script::new().answers("login-plain");
        let captured_login = script.captured_action("login", 0).expect("login");
        let server = ReplayServer::start(script).await;
        let mut config = config(server.addr);
        config.events = EventsFilter::Off;
        config.options = AmiClientOptions {
            login: LoginMethod::Plain,
            snapshot: false,
            ping_interval: Duration::from_millis(100),
            ping_timeout: Duration::from_secs(1),
            ..AmiClientOptions::default()
        };
        let mut handle = spawn(config);
        until(&mut handle, |e| *e == AmiClientEvent::LoggedIn).await;
        // Three ping intervals with answers: no disconnect.
        let quiet = tokio::time::timeout(Duration::from_millis(350), handle.next_event()).await;
        assert!(quiet.is_err(), "nothing happens: {quiet:?}");
        handle.shutdown().await.expect("logoff");
        let log = server.stop().await;
        let received = &log.received[0];
        assert_eq!(
            without_action_id(&received[0]),
            without_action_id(&captured_login)
        );
        let pings = action_names(received)
            .iter()
            .filter(|n| *n == "Ping")
            .count();
        assert!(pings >= 2, "{:?}", action_names(received));
        assert_eq!(log.connections, 1);
    })
    .await;
}

#[tokio::test]
async fn an_unanswered_ping_reconnects() {
    bounded(async {
        // login-md5 has no Ping answer: the replay stays silent like a hung PBX.
        let server = ReplayServer::start(Script::new().answers("login-md5")).await;
        let mut config = config(server.addr);
        config.options.snapshot = false;
        config.options.ping_interval = Duration::from_millis(50);
        config.options.ping_timeout = Duration::from_millis(100);
        let mut handle = spawn(config);
        let seen = until(&mut handle, |e| {
            matches!(e, AmiClientEvent::Retrying { .. })
        })
        .await;
        assert!(seen.contains(&AmiClientEvent::Disconnected {
            reason: "the AMI did not answer a Ping within 0.1 s (the PBX or the network is down)"
                .into()
        }));
        until(&mut handle, |e| *e == AmiClientEvent::LoggedIn).await;
        handle.shutdown().await.expect("logoff");
        let log = server.stop().await;
        assert_eq!(log.connections, 2);
        assert_eq!(
            action_names(&log.unanswered),
            ["Ping"],
            "one ping per connection"
        );
    })
    .await;
}

#[tokio::test]
async fn a_rejected_login_ends_the_driver_without_retrying() {
    bounded(async {
        let server = ReplayServer::start(Script::new().answers("login-failed")).await;
        let mut config = config(server.addr);
        config.secret = Secret::new("wrong-secret");
        config.options.login = LoginMethod::Plain;
        let mut handle = spawn(config.clone());
        let seen = until(&mut handle, |e| {
            matches!(e, AmiClientEvent::LoginFailed { .. })
        })
        .await;
        let Some(AmiClientEvent::LoginFailed { message }) = seen.last() else {
            panic!("{seen:?}");
        };
        assert_eq!(
            message,
            "the AMI rejected user console (plain login: \"Authentication failed\"): check the AMI user and secret (manager.conf) and the permit/deny lists"
        );
        assert_eq!(handle.next_event().await, None, "no retry");
        let error = handle.join().await.expect_err("rejected");
        assert!(matches!(error, AmiError::LoginRejected { .. }));
        assert_eq!(
            error.to_string(),
            format!("AMI at {}: {message}", server.addr)
        );
        // The one-shot action says the same.
        let action = AmiAction::QueueRemove {
            queue: "support".into(),
            interface: "PJSIP/agent1".into(),
        };
        let error = run_queue_action_with(config, action, Duration::from_secs(5))
            .await
            .expect_err("rejected");
        assert!(matches!(error, AmiError::LoginRejected { .. }), "{error}");
        let log = server.stop().await;
        assert_eq!(log.connections, 2, "one per attempt, no retries");
        let login = &log.received[0][0];
        assert_eq!(login.get("Secret"), Some("wrong-secret"));
    })
    .await;
}

#[tokio::test]
async fn the_snapshot_gives_the_queuestatus_model() {
    bounded(async {
        let server = ReplayServer::start(pbx(None)).await;
        let mut handle = spawn(config(server.addr));
        let seen = until(&mut handle, |e| matches!(e, AmiClientEvent::Snapshot(_))).await;
        let mut monitor = QueueMonitor::new();
        for event in &seen {
            monitor.handle(SNAPSHOT_AT, event).expect("well formed");
        }
        assert_eq!(monitor.state(), &queuestatus_model());
        let summary: Vec<String> = monitor
            .summaries()
            .iter()
            .map(|s| {
                format!(
                    "{} {:?} {:?} {:?}",
                    s.queue, s.logged_in, s.available, s.callers
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                "support Some(2) Some(0) Some(1)",
                "sales Some(1) Some(1) Some(0)",
                "empty Some(0) Some(0) Some(0)"
            ]
        );
        handle.shutdown().await.expect("logoff");
        server.stop().await;
    })
    .await;
}

fn credentials() -> AmiCredentials {
    AmiCredentials::resolve(Some("console"), Some("console-ami-secret")).expect("given")
}

async fn report(args: ReportArgs) -> String {
    let mut out = Vec::new();
    run_report_ami_at(&args, &credentials(), SNAPSHOT_AT, &mut out)
        .await
        .expect("report");
    String::from_utf8(out).expect("utf-8")
}

#[tokio::test]
async fn report_ami_prints_the_queues_callers_and_agents_now() {
    bounded(async {
        let server = ReplayServer::start(pbx(None)).await;
        let args = ReportArgs {
            ami: Some(server.addr.to_string()),
            ..ReportArgs::default()
        };
        let table = report(args.clone()).await;
        assert_eq!(
            table,
            "Queues at 2026-11-21 11:14:09 (UTC)\n\
             QUEUE    STRATEGY  WAITING  LONGEST  MEMBERS  COMPLETED  ABANDONED   SL\n\
             empty    ringall         0       0s        0          0          0  60s\n\
             sales    ringall         0       0s        1          0          0  60s\n\
             support  rrmemory        1       2s        2          5          1  60s\n\
             \n\
             QUEUE    POS  CALLER   NAME        WAIT  CALL ID\n\
             support    1  caller1  Caller One    2s  ringside-lab-1795259646.22\n\
             \n\
             AGENT   INTERFACE     STATE                  QUEUES   MEMBER   CALLS  LAST CALL\n\
             agent1  PJSIP/agent1  ringing                support  dynamic      4  2026-11-21 11:13:44\n\
             agent2  PJSIP/agent2  paused (coffee-break)  support  dynamic      0\n\
             agent3  PJSIP/agent3  available              sales    static       0\n"
        );
        let stats = report(ReportArgs {
            stats: true,
            queue: Some("support".into()),
            format: ReportFormat::Csv,
            ..args.clone()
        })
        .await;
        assert_eq!(
            stats,
            "QUEUE,LOGGED IN,AVAILABLE,CALLERS,AVG HOLD,AVG TALK,LONGEST HOLD,COMPLETED,ABANDONED,SL,SL%\r\n\
             support,2,0,1,2,2,2,5,1,60,100.0\r\n"
        );
        let json = report(ReportArgs {
            format: ReportFormat::Json,
            queue: Some("sales".into()),
            ..args.clone()
        })
        .await;
        let value: serde_json::Value = serde_json::from_str(&json).expect("one JSON object");
        assert_eq!(
            value,
            serde_json::json!({
                "time": SNAPSHOT_AT,
                "queues": [{"queue": "sales", "strategy": "ringall", "max_callers": 10,
                    "service_level_s": 60, "completed": 0, "abandoned": 0,
                    "members": ["PJSIP/agent3"], "callers": []}],
                "agents": [{"agent": "agent3", "interface": "PJSIP/agent3", "state": "available",
                    "pause_reason": null, "static": true, "queues": ["sales"], "calls_taken": 0,
                    "last_call": null, "login_time": 1_795_259_540u64}]
            })
        );
        let log = server.stop().await;
        assert_eq!(log.connections, 3);
        for received in &log.received {
            assert_eq!(
                action_names(received),
                ["Challenge", "Login", "QueueStatus", "QueueSummary", "Logoff"]
            );
            assert_eq!(received[1].get("Events"), Some("off"));
        }
    })
    .await;
}

/// The queue_log's report events, by line number (1-based), as `ringside report` makes them.
fn queue_log_events() -> HashMap<usize, ReportEvent> {
    let path = fixture_path("../queue_log/full.log");
    let text = std::fs::read_to_string(path).expect("full.log");
    let mut report = QueueLogReport::new();
    lines_ref(&text)
        .filter_map(|(number, line)| {
            let line = line.expect("well formed");
            report.handle_line(&line).map(|event| (number, event))
        })
        .collect()
}

/// AMI knows no login call for member events, and measures a cancelled ring itself.
fn comparable(mut event: ReportEvent) -> ReportEvent {
    if matches!(
        event.kind,
        ReportKind::AgentConnect | ReportKind::AgentDisconnect
    ) {
        event.call_id = None;
    }
    if event.kind == ReportKind::NoAnswerCallerHangup {
        event.ring_ms = event.ring_ms.map(|ms| ms / 10);
    }
    event
}

/// Which capture gives which queue_log lines (the fixtures README), and the actions the
/// capture's client sent.
fn scenarios() -> Vec<(&'static str, Vec<usize>, Vec<AmiAction>)> {
    let pause = |queue: Option<&str>, interface: &str, paused: bool, reason: Option<&str>| {
        AmiAction::QueuePause {
            queue: queue.map(str::to_owned),
            interface: interface.into(),
            paused,
            reason: reason.map(str::to_owned),
        }
    };
    let add = AmiAction::QueueAdd {
        queue: "support".into(),
        interface: "PJSIP/agent2".into(),
        member_name: Some("agent2".into()),
        paused: false,
    };
    let remove = AmiAction::QueueRemove {
        queue: "support".into(),
        interface: "PJSIP/agent2".into(),
    };
    vec![
        ("events-a-login-logout", vec![2, 3], vec![]),
        ("events-b-completecaller", vec![5, 6, 7], vec![]),
        ("events-c-completeagent", vec![8, 9, 10], vec![]),
        ("events-d-ringnoanswer", vec![12, 13, 14, 15], vec![]),
        ("events-e-abandon", vec![34, 35], vec![]),
        ("events-f-ringcanceled-abandon", vec![23, 24, 25], vec![]),
        ("events-g-exitwithtimeout", vec![36, 37], vec![]),
        ("events-h-exitempty", vec![38, 39], vec![]),
        ("events-i-blindtransfer", vec![17, 18, 19], vec![]),
        ("events-j-attendedtransfer", vec![20, 21, 22], vec![]),
        ("events-k1-pause-featurecodes", vec![42, 44], vec![]),
        (
            "events-k2-pause-ami",
            vec![45, 47],
            vec![
                pause(Some("support"), "PJSIP/agent1", true, Some("lunch")),
                pause(None, "PJSIP/agent1", false, None),
            ],
        ),
        (
            "events-l-ami-member-actions",
            vec![48, 49, 50, 51],
            vec![
                add.clone(),
                add,
                pause(
                    Some("support"),
                    "PJSIP/agent2",
                    true,
                    Some("supervisor-hold"),
                ),
                pause(Some("support"), "PJSIP/agent2", false, None),
                remove.clone(),
                remove,
                pause(Some("support"), "PJSIP/nobody", true, None),
            ],
        ),
    ]
}

/// Runs one capture through the driver and the monitor: its report events and action results.
async fn replay_scenario(
    capture: &str,
    expected_events: usize,
    actions: &[AmiAction],
) -> (Vec<ReportEvent>, Vec<(bool, String)>, ami_replay::ReplayLog) {
    let script = pbx(Some(capture)).speed(200.0);
    let live = script.live_len();
    let server = ReplayServer::start(script).await;
    let mut handle = spawn(config(server.addr));
    let mut monitor = QueueMonitor::new();
    let mut reports = Vec::new();
    let mut ids = Vec::new();
    for action in actions {
        // Given before the login: they wait for it, then go out in order.
        ids.push(handle.command(action.clone()).await.expect("driver runs"));
    }
    let mut results: HashMap<String, (bool, String)> = HashMap::new();
    let mut events_seen = 0usize;
    while reports.len() < expected_events || results.len() < actions.len() || events_seen < live {
        let event = handle.next_event().await.expect("driver runs");
        match &event {
            AmiClientEvent::ActionResult {
                action_id,
                success,
                message,
            } => {
                results.insert(action_id.clone(), (*success, message.clone()));
            }
            AmiClientEvent::Event(_) => events_seen += 1,
            AmiClientEvent::Disconnected { reason } => panic!("{capture}: {reason}"),
            _ => {}
        }
        monitor.handle(SNAPSHOT_AT, &event).expect("well formed");
        while let Some(report) = monitor.poll_report() {
            reports.push(report);
        }
    }
    handle.shutdown().await.expect("logoff");
    let log = server.stop().await;
    let results = ids
        .iter()
        .map(|id| results.remove(id).expect("answered"))
        .collect();
    (reports, results, log)
}

#[tokio::test]
async fn live_events_give_the_queue_log_report_for_every_capture() {
    bounded(async {
        let by_line = queue_log_events();
        let mut kinds = std::collections::BTreeSet::new();
        for (capture, lines, actions) in scenarios() {
            let (from_ami, _, log) = replay_scenario(capture, lines.len(), &actions).await;
            let from_ami: Vec<ReportEvent> = from_ami.into_iter().map(comparable).collect();
            let mut from_log: Vec<ReportEvent> = lines
                .iter()
                .map(|line| comparable(by_line[line].clone()))
                .collect();
            // queue_log's clock can lag the AMI Timestamp by a second.
            for (log_event, ami_event) in from_log.iter_mut().zip(&from_ami) {
                assert!(
                    log_event.time.abs_diff(ami_event.time) <= 1,
                    "{capture}: {log_event:?} vs {ami_event:?}"
                );
                log_event.time = ami_event.time;
            }
            assert_eq!(from_ami, from_log, "{capture}");
            assert!(log.unanswered.is_empty(), "{capture}: {:?}", log.unanswered);
            kinds.extend(from_ami.iter().map(|e| e.kind));
        }
        assert_eq!(kinds.len(), 15, "every kind, pause and unpause included");
    })
    .await;
}

#[tokio::test]
async fn supervisor_actions_report_the_pbx_answers_and_errors() {
    bounded(async {
        let (_, lines, actions) = scenarios().pop().expect("scenario l");
        let (_, results, log) =
            replay_scenario("events-l-ami-member-actions", lines.len(), &actions).await;
        let results: Vec<(bool, &str)> = results
            .iter()
            .map(|(success, message)| (*success, message.as_str()))
            .collect();
        assert_eq!(
            results,
            [
                (true, "Added interface to queue"),
                (false, "Unable to add interface: Already there"),
                (true, "Interface paused successfully"),
                (true, "Interface unpaused successfully"),
                (true, "Removed interface from queue"),
                (false, "Unable to remove interface: Not there"),
                (false, "Interface not found"),
            ]
        );
        // The first QueueAdd and the pauses are the capture's own actions, field for field.
        let script = Script::new().live("events-l-ami-member-actions");
        let received: Vec<&AmiMessage> = log.received[0]
            .iter()
            .filter(|m| {
                !matches!(
                    m.kind(),
                    AmiKind::Action(
                        "Challenge" | "Login" | "QueueStatus" | "QueueSummary" | "Logoff"
                    )
                )
            })
            .collect();
        assert_eq!(
            without_action_id(received[0]),
            without_action_id(&script.captured_action("queueadd", 0).expect("captured"))
        );
        for nth in 0..3 {
            let sent = received
                .iter()
                .filter(|m| m.kind() == AmiKind::Action("QueuePause"))
                .nth(nth)
                .expect("sent");
            assert_eq!(
                without_action_id(sent),
                without_action_id(&script.captured_action("queuepause", nth).expect("captured"))
            );
        }

        // One-shot, as `ringside queue add` runs it: the answer with its context.
        let server = ReplayServer::start(pbx(Some("events-l-ami-member-actions"))).await;
        let add = AmiAction::QueueAdd {
            queue: "support".into(),
            interface: "PJSIP/agent2".into(),
            member_name: Some("agent2".into()),
            paused: false,
        };
        let mut one_shot = config(server.addr);
        one_shot.reconnect = false;
        one_shot.options.snapshot = false;
        one_shot.events = EventsFilter::Off;
        let answer = run_queue_action_with(one_shot.clone(), add.clone(), Duration::from_secs(5))
            .await
            .expect("added");
        assert_eq!(
            answer,
            "QueueAdd support PJSIP/agent2: Added interface to queue"
        );
        let log = server.stop().await;
        assert_eq!(
            action_names(&log.received[0]),
            ["Challenge", "Login", "QueueAdd", "Logoff"]
        );
        // The PBX that already has agent2 (the capture's second answer).
        let server =
            ReplayServer::start(pbx(Some("events-l-ami-member-actions")).without_first("queueadd"))
                .await;
        one_shot.addr = server.addr.to_string();
        let error = run_queue_action_with(one_shot, add, Duration::from_secs(5))
            .await
            .expect_err("already there");
        assert!(matches!(error, AmiError::ActionFailed { .. }));
        assert_eq!(
            error.to_string(),
            "QueueAdd support PJSIP/agent2: Unable to add interface: Already there"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_killed_server_means_reconnect_and_a_full_resync() {
    bounded(async {
        let server = ReplayServer::start(pbx(Some("events-d-ringnoanswer")).speed(50.0)).await;
        let addr = server.addr;
        let mut handle = spawn(config(addr));
        let mut monitor = QueueMonitor::new();
        let mut reports = Vec::new();
        // Until agent2 answers in scenario d (18 s into it, 0.36 s here).
        loop {
            let event = handle.next_event().await.expect("driver runs");
            monitor.handle(SNAPSHOT_AT, &event).expect("well formed");
            while let Some(report) = monitor.poll_report() {
                reports.push(report);
            }
            if reports.iter().any(|r| r.kind == ReportKind::Connected) {
                break;
            }
        }
        let snapshot_model = queuestatus_model();
        assert_ne!(
            monitor.state(),
            &snapshot_model,
            "live events moved the model"
        );
        assert!(monitor
            .state()
            .agent("agent2")
            .is_some_and(|a| a.talking_to.is_some()));

        let first = server.stop().await;
        assert_eq!(first.connections, 1);
        let mut retries = Vec::new();
        let seen = until(&mut handle, |e| {
            matches!(e, AmiClientEvent::Retrying { .. })
        })
        .await;
        assert!(
            seen.iter()
                .any(|e| matches!(e, AmiClientEvent::Disconnected { .. })),
            "{seen:?}"
        );
        if let Some(AmiClientEvent::Retrying { after, .. }) = seen.last() {
            retries.push(*after);
        }
        // While it is down, attempts are refused and the backoff doubles.
        let seen = until(&mut handle, |e| {
            matches!(e, AmiClientEvent::Retrying { .. })
        })
        .await;
        if let Some(AmiClientEvent::Retrying { after, reason }) = seen.last() {
            assert!(
                reason.starts_with(&format!("cannot connect to the AMI at {addr}: ")),
                "{reason}"
            );
            retries.push(*after);
        }
        assert_eq!(
            retries,
            [Duration::from_millis(50), Duration::from_millis(100)]
        );

        let server = ReplayServer::start_on(addr, pbx(Some("events-e-abandon")).speed(50.0)).await;
        loop {
            let event = handle.next_event().await.expect("driver runs");
            let is_snapshot = matches!(event, AmiClientEvent::Snapshot(_));
            monitor.handle(SNAPSHOT_AT, &event).expect("well formed");
            if is_snapshot {
                break;
            }
        }
        assert_eq!(monitor.snapshots(), 2);
        assert_eq!(
            monitor.state(),
            &snapshot_model,
            "the resync replaced the model"
        );
        // Live events go on from the new connection.
        let mut after = Vec::new();
        while after.len() < 2 {
            let event = handle.next_event().await.expect("driver runs");
            monitor.handle(SNAPSHOT_AT, &event).expect("well formed");
            while let Some(report) = monitor.poll_report() {
                after.push(report.kind);
            }
        }
        assert_eq!(after, [ReportKind::EnterQueue, ReportKind::CallerQuit]);
        handle.shutdown().await.expect("logoff");
        let second = server.stop().await;
        assert_eq!(second.connections, 1);
        assert_eq!(
            action_names(&second.received[0]),
            [
                "Challenge",
                "Login",
                "QueueStatus",
                "QueueSummary",
                "Logoff"
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn events_ami_streams_json_lines_until_stopped() {
    bounded(async {
        let server = ReplayServer::start(pbx(Some("events-b-completecaller"))).await;
        let mut out = Vec::new();
        let mut warn = Vec::new();
        // Stop once the replay has sent the whole capture (5 s of it, 50 ms at this speed),
        // and the client has had a moment to read it.
        let live = pbx(Some("events-b-completecaller")).live_len();
        let sent_all = server.log_handle();
        let stop = async move {
            while sent_all.lock().expect("log").live_sent < live {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let summary = run_events_ami_with(config(server.addr), &mut out, &mut warn, stop)
            .await
            .expect("streams");
        let lines: Vec<ReportEvent> = String::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(|line| serde_json::from_str(line).expect("a report event"))
            .collect();
        let by_line = queue_log_events();
        let kinds: Vec<ReportKind> = lines.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                ReportKind::EnterQueue,
                ReportKind::Connected,
                ReportKind::CallerHangup
            ]
        );
        assert_eq!(lines[2].talk_s, by_line[&7].talk_s);
        assert_eq!(lines[0].call_id, by_line[&5].call_id);
        assert_eq!(summary.events, 3);
        assert_eq!(summary.reopened, 0);
        let warn = String::from_utf8(warn).expect("utf-8");
        assert_eq!(
            warn,
            format!(
                "AMI {}: connected (Asterisk Call Manager/11.0.0)\n",
                server.addr
            )
        );
        let log = server.stop().await;
        assert_eq!(
            action_names(&log.received[0]),
            [
                "Challenge",
                "Login",
                "QueueStatus",
                "QueueSummary",
                "Logoff"
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_ami_says_where_and_what_to_check() {
    bounded(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let args = ReportArgs {
            ami: Some(addr.to_string()),
            ..ReportArgs::default()
        };
        let error = run_report_ami_at(&args, &credentials(), SNAPSHOT_AT, &mut Vec::new())
            .await
            .expect_err("refused");
        let text = error.to_string();
        assert!(
            text.starts_with(&format!("cannot connect to the AMI at {addr}: ")),
            "{text}"
        );
        assert!(text.contains("manager.conf"), "{text}");
        let action = AmiAction::QueueRemove {
            queue: "support".into(),
            interface: "PJSIP/agent1".into(),
        };
        let error = ringside::net::ami::run_queue_action(
            &addr.to_string(),
            "console",
            Secret::new("console-ami-secret"),
            action,
        )
        .await
        .expect_err("refused");
        assert!(matches!(error, AmiError::Connect { .. }), "{error}");
    })
    .await;
}
