//! The real binary's dashboard in a real terminal (tmux), keys in and screen checked:
//! against a `ringside lab` process (a PBX in another process, configured like a real one with
//! [account], [ami] and [queues]) and in the no-config demo. tmux is a Debian package that
//! scripts/test.sh installs beside the SIP peers.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ringside::store::{
    ActivityKind, CallDirection, CallFinish, CallOutcome, CallStart, CivilDate, NewActivity,
    NewContact, Store,
};
use support::{require_peer, wait_until};

/// A tmux server of our own (its own socket), killed when dropped.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn start(dir: &Path, command: &str, width: u16, height: u16) -> Tmux {
        let socket = dir.join("tmux.sock");
        let tmux = Tmux { socket };
        let status = tmux
            .cmd()
            .args(["new-session", "-d", "-s", "e2e", "-x"])
            .arg(width.to_string())
            .arg("-y")
            .arg(height.to_string())
            .arg(command)
            .status()
            .expect("tmux runs");
        assert!(status.success(), "tmux new-session failed");
        // Keep the pane after the program exits, to read its exit status.
        let _ = tmux
            .cmd()
            .args(["set-option", "-t", "e2e", "remain-on-exit", "on"])
            .status();
        tmux
    }

    fn cmd(&self) -> Command {
        let mut command = Command::new("tmux");
        command
            .arg("-S")
            .arg(&self.socket)
            .arg("-f")
            .arg("/dev/null");
        command
    }

    fn screen(&self) -> String {
        let output = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "e2e"])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let status = self
            .cmd()
            .args(["send-keys", "-t", "e2e"])
            .args(keys)
            .status()
            .expect("send-keys");
        assert!(status.success());
    }

    /// Waits until the screen satisfies `check`; panics with the screen otherwise.
    fn wait_for(&self, what: &str, timeout: Duration, check: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let found = wait_until(timeout, || {
            last = self.screen();
            check(&last)
        });
        assert!(found, "timed out waiting for {what}; the screen:\n{last}");
        last
    }

    /// q, and y when it asks (a call is up: the next caller may be ringing already); the
    /// program must then end.
    fn quit(&self) {
        self.keys(&["q"]);
        let asked = wait_until(Duration::from_secs(3), || {
            self.pane_dead() || self.screen().contains("quit and hang up")
        });
        if asked && !self.pane_dead() {
            self.keys(&["y"]);
        }
        assert!(
            wait_until(Duration::from_secs(10), || self.pane_dead()),
            "quitting did not end ringside; the screen:\n{}",
            self.screen()
        );
    }

    /// The process the pane runs (`env` execs ringside, so this is ringside).
    fn pane_pid(&self) -> u32 {
        let output = self
            .cmd()
            .args(["display-message", "-p", "-t", "e2e", "#{pane_pid}"])
            .output()
            .expect("display-message");
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("a pid")
    }

    fn pane_dead(&self) -> bool {
        let output = self
            .cmd()
            .args(["display-message", "-p", "-t", "e2e", "#{pane_dead}"])
            .output();
        output.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "1")
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

/// A `ringside lab` process, killed when dropped.
struct LabProcess {
    child: Child,
    sip: String,
    ami: String,
}

impl LabProcess {
    fn start(dir: &Path, callers_per_minute: u32) -> LabProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringside"))
            .args([
                "lab",
                "--sip",
                "127.0.0.1:0",
                "--ami",
                "127.0.0.1:0",
                "--bots",
                "0",
            ])
            .arg("--callers")
            .arg(callers_per_minute.to_string())
            .arg("--queue-log")
            .arg(dir.join("queue_log"))
            .arg("--log-file")
            .arg(dir.join("lab.log"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ringside lab starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (mut sip, mut ami) = (None, None);
        while sip.is_none() || ami.is_none() {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                panic!("the lab ended before printing its addresses");
            };
            let address = |prefix: &str| {
                line.strip_prefix(prefix)
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(str::to_owned)
            };
            sip = sip.or_else(|| address("SIP: "));
            ami = ami.or_else(|| address("AMI: "));
        }
        // Keep draining its status lines so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        LabProcess {
            child,
            sip: sip.unwrap_or_default(),
            ami: ami.unwrap_or_default(),
        }
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn work_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("work dir");
    dir
}

/// The command line of agent 101's console on `lab`, with [ami] and both queues' codes, its
/// data and config under `dir`.
fn agent_command(dir: &Path, lab: &LabProcess) -> String {
    agent_command_with(dir, lab, "", "")
}

/// [`agent_command`] with more config (`extra`, appended) and environment (`env`, `NAME=value`
/// words before the program).
fn agent_command_with(dir: &Path, lab: &LabProcess, extra: &str, env: &str) -> String {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[account]\nusername = \"101\"\npassword = \"lab101\"\ndomain = \"{sip}\"\n\
             [network]\nbind = \"127.0.0.1:0\"\n[audio]\ndevice = \"none\"\n\
             [ami]\naddress = \"{ami}\"\nuser = \"lab\"\nsecret = \"lab\"\n\
             [queues]\nsupport = {{ login = \"*600\", logout = \"*601\" }}\n\
             sales = {{ login = \"*700\", logout = \"*701\" }}\n{extra}",
            sip = lab.sip,
            ami = lab.ami
        ),
    )
    .expect("config");
    format!(
        "env XDG_CONFIG_HOME={d}/cfg XDG_DATA_HOME={d}/data {env} {bin} --config {c} --log-file {d}/ringside.log",
        d = dir.display(),
        bin = env!("CARGO_BIN_EXE_ringside"),
        c = config.display()
    )
}

/// The line of the calls pane that shows a call, if any.
fn call_line(screen: &str) -> Option<&str> {
    screen.lines().find(|l| l.contains("support: +"))
}

#[test]
fn an_agent_answers_holds_resumes_transfers_and_hangs_up_queue_calls_with_keys_alone() {
    if !require_peer("tmux") {
        return;
    }
    let dir = work_dir("e2e-agent");
    // No bots: every caller of support rings agent 101, the only agent.
    let lab = LabProcess::start(&dir, 30);
    let tmux = Tmux::start(&dir, &agent_command(&dir, &lab), 120, 32);

    tmux.wait_for("registration", Duration::from_secs(15), |s| {
        s.contains(" registered ") && s.contains("support:off")
    });
    // c: connect; two queues, so a picker asks which.
    tmux.keys(&["c"]);
    tmux.wait_for("the queue picker", Duration::from_secs(5), |s| {
        s.contains("Connect to which queue?")
    });
    tmux.keys(&["Down", "Enter"]);
    tmux.wait_for("support:on after *600", Duration::from_secs(15), |s| {
        s.contains("support:on") && s.contains("sales:off")
    });
    // A simulated caller arrives within a few seconds at 30/min.
    tmux.wait_for("the incoming-call popup", Duration::from_secs(40), |s| {
        s.contains("Incoming call") && s.contains("a  answer")
    });
    tmux.keys(&["a"]);
    let screen = tmux.wait_for("the call active", Duration::from_secs(10), |s| {
        call_line(s).is_some_and(|l| l.contains("active") && l.contains("PCMU"))
    });
    assert!(!screen.contains("Incoming call"), "{screen}");
    tmux.keys(&["h"]);
    tmux.wait_for("the call on hold", Duration::from_secs(10), |s| {
        call_line(s).is_some_and(|l| l.contains("on hold"))
    });
    tmux.keys(&["h"]);
    tmux.wait_for("the call resumed", Duration::from_secs(10), |s| {
        call_line(s).is_some_and(|l| l.contains("active"))
    });
    // m mutes: the marker shows on the call line. Ctrl-R records it.
    tmux.keys(&["m"]);
    tmux.wait_for("the mute marker", Duration::from_secs(5), |s| {
        call_line(s).is_some_and(|l| l.contains(" M "))
    });
    tmux.keys(&["C-r"]);
    tmux.wait_for("the record marker", Duration::from_secs(5), |s| {
        call_line(s).is_some_and(|l| l.contains(" M R "))
    });
    tmux.keys(&["x"]);
    // Gone from the calls pane, and in Recent as answered (the notice line may say "ended"
    // or, just after, where the recording was saved).
    tmux.wait_for("the call gone", Duration::from_secs(10), |s| {
        s.contains("No calls.")
            && s.lines()
                .any(|l| l.contains("← +32") && l.contains("answered"))
    });
    // The event stream saw the call: connected, then the agent hanging up.
    tmux.wait_for("the report events", Duration::from_secs(10), |s| {
        s.contains("connected") && s.contains("agent-hangup")
    });
    // The next caller: answered, then blind-transferred with t to an outside number, which
    // the lab PBX carries out (REFER, NOTIFY 100 then 200, BYE).
    tmux.wait_for("the next incoming call", Duration::from_secs(40), |s| {
        s.contains("Incoming call") && s.contains("a  answer")
    });
    tmux.keys(&["a"]);
    let screen = tmux.wait_for("the second call active", Duration::from_secs(10), |s| {
        call_line(s).is_some_and(|l| l.contains("active"))
    });
    let caller = call_line(&screen)
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("+32")))
        .map(str::to_owned)
        .expect("the caller's number on the call line");
    tmux.keys(&["t"]);
    tmux.wait_for("the transfer prompt", Duration::from_secs(5), |s| {
        s.contains("Transfer")
    });
    tmux.keys(&["+3225550100", "Enter"]);
    tmux.wait_for("the transferred call gone", Duration::from_secs(15), |s| {
        // The next caller may ring at once; the transferred one must be gone.
        !s.lines()
            .any(|l| l.contains(&caller) && l.contains("active"))
            && s.contains("blind-transf")
    });
    // C disconnects (a picker again? only support is connected, so no).
    tmux.keys(&["C"]);
    tmux.wait_for("support:off after *601", Duration::from_secs(15), |s| {
        s.contains("support:off")
    });
    tmux.quit();
    let log = std::fs::read_to_string(dir.join("queue_log")).unwrap_or_default();
    assert!(log.contains("|support|101|ADDMEMBER|"), "{log}");
    assert!(log.contains("|COMPLETEAGENT|"), "{log}");
    assert!(
        log.contains("|support|101|BLINDTRANSFER|+3225550100|"),
        "{log}"
    );
    assert!(log.contains("|support|101|REMOVEMEMBER|"), "{log}");
    // The calls are in the agent's history, with their outcomes; the queue codes are not.
    let mut store =
        ringside::store::Store::open_in_dir(dir.join("data/ringside")).expect("the history store");
    let calls = store.recent_calls(50, false).expect("recent calls");
    let outcomes: Vec<_> = calls
        .iter()
        .filter_map(|c| c.outcome.map(|o| (c.remote_number.clone(), o, c.duration)))
        .collect();
    // Keys go in as fast as the screen follows, so talk times here are a second or less.
    assert!(
        outcomes
            .iter()
            .any(|(n, o, d)| n.starts_with("+32") && *o == CallOutcome::Answered && d.is_some()),
        "{calls:#?}"
    );
    assert!(
        outcomes
            .iter()
            .any(|(n, o, _)| n.starts_with("+32") && *o == CallOutcome::Transferred),
        "{outcomes:?}"
    );
    assert!(
        calls.iter().all(|c| !c.remote_number.starts_with('*')),
        "queue codes are not calls: {calls:?}"
    );
    // The recorded call keeps its recording's path, and the file is there.
    let recorded: Vec<_> = calls
        .iter()
        .filter_map(|c| c.recording_path.as_deref())
        .collect();
    assert_eq!(recorded.len(), 1, "{calls:#?}");
    assert!(Path::new(recorded[0]).is_file(), "{}", recorded[0]);
    // Nothing was left open: quitting hung up and closed every row.
    assert_eq!(store.close_interrupted(0).expect("close"), 0, "{calls:?}");
}

#[test]
fn without_a_config_the_dashboard_opens_on_the_demo_lab() {
    if !require_peer("tmux") {
        return;
    }
    let dir = work_dir("e2e-demo");
    let command = format!(
        "env XDG_CONFIG_HOME={d}/cfg XDG_DATA_HOME={d}/data {bin} --log-file {d}/ringside.log",
        d = dir.display(),
        bin = env!("CARGO_BIN_EXE_ringside"),
    );
    let tmux = Tmux::start(&dir, &command, 100, 30);
    tmux.wait_for("the demo joined support", Duration::from_secs(20), |s| {
        s.contains("DEMO") && s.contains(" registered ") && s.contains("support:on")
    });
    // Once the confirmation has gone, the notice line says what the demo is.
    tmux.wait_for("the demo hint", Duration::from_secs(15), |s| {
        s.contains("DEMO on the embedded lab PBX") && s.contains("To use your PBX")
    });
    // The bots show in the agents pane, with this agent marked.
    tmux.wait_for("the agents", Duration::from_secs(10), |s| {
        s.contains("bot1") && s.contains("101 (you)")
    });
    // ? opens the help generated from the keymap; Esc closes it.
    tmux.keys(&["?"]);
    tmux.wait_for("the help", Duration::from_secs(5), |s| {
        s.contains("Keys") && s.contains("Hang up the selected call")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for("the help closed", Duration::from_secs(5), |s| {
        !s.contains("Keys ─")
    });
    tmux.quit();
}

#[test]
fn a_supervisor_watches_the_same_queues_over_ami() {
    if !require_peer("tmux") {
        return;
    }
    let dir = work_dir("e2e-supervise");
    let lab = LabProcess::start(&dir, 30);
    let command = format!(
        "env XDG_CONFIG_HOME={d}/cfg XDG_DATA_HOME={d}/data RINGSIDE_AMI_SECRET=lab {bin} supervise --ami {ami} --ami-user lab --log-file {d}/ringside.log",
        d = dir.display(),
        bin = env!("CARGO_BIN_EXE_ringside"),
        ami = lab.ami,
    );
    let tmux = Tmux::start(&dir, &command, 120, 32);
    tmux.wait_for(
        "the supervisor header and queues",
        Duration::from_secs(15),
        |s| s.contains("supervisor") && s.contains("support") && s.contains("sales"),
    );
    // Callers arrive and wait (no agent is logged in): the queue pane counts them and the
    // event stream shows them entering.
    tmux.wait_for("waiting callers", Duration::from_secs(30), |s| {
        s.contains("enter-queue") && s.contains("waiting")
    });
    tmux.quit();
}

/// The days since the epoch, in UTC, as a date: yesterday here is overdue in every time zone.
fn utc_yesterday() -> CivilDate {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    CivilDate::from_epoch_seconds(now - 86_400, 0).expect("a date")
}

#[test]
fn the_tabs_work_with_keys_alone_and_the_history_survives_a_kill_9() {
    if !require_peer("tmux") {
        return;
    }
    let dir = work_dir("e2e-desk");
    let lab = LabProcess::start(&dir, 30);
    // The agent's store before the first start: a contact (on extension 102, which nobody
    // has registered, so calling it fails fast) and an overdue call to make.
    let store_dir = dir.join("data/ringside");
    {
        let mut store = Store::open_in_dir(&store_dir).expect("store");
        let jean = store
            .add_contact(&NewContact::named("Jean Dupont").with_phone("office", "102"))
            .expect("contact");
        store
            .add_activity(&NewActivity {
                kind: ActivityKind::Call,
                summary: "Call Jean about the order".into(),
                due: utc_yesterday(),
                note: String::new(),
                linked_record: String::new(),
                assignee: "101".into(),
                contact_id: Some(jean),
            })
            .expect("activity");
    }
    let command = agent_command(&dir, &lab);
    let tmux = Tmux::start(&dir, &command, 120, 40);
    tmux.wait_for("registration", Duration::from_secs(15), |s| {
        s.contains(" registered ")
    });
    // Tab three times: Calls → Queues → Agents → the tabs; ] shows Next Activities.
    tmux.keys(&["Tab", "Tab", "Tab", "]"]);
    tmux.wait_for("the overdue activity", Duration::from_secs(5), |s| {
        s.contains("Call Jean about the order · Jean Dupont") && s.contains("1 overdue")
    });
    // Enter calls the contact; the call fails (102 is not registered), and its end asks
    // whether the activity is done.
    tmux.keys(&["Enter"]);
    tmux.wait_for("the mark-done question", Duration::from_secs(15), |s| {
        s.contains("Mark the activity done?")
    });
    tmux.keys(&["y"]);
    tmux.wait_for("the activity done", Duration::from_secs(5), |s| {
        s.contains("No upcoming activities.")
    });
    // Contacts: search as you type, then schedule a call for tomorrow.
    tmux.keys(&["]", "/"]);
    tmux.keys(&["j", "e", "a"]);
    tmux.wait_for("the search result", Duration::from_secs(5), |s| {
        s.contains("“jea”: 1 found") && s.contains("Jean Dupont")
    });
    tmux.keys(&["Enter", "s"]);
    tmux.wait_for("the schedule form", Duration::from_secs(5), |s| {
        s.contains("Schedule for Jean Dupont")
    });
    tmux.keys(&["Enter"]);
    tmux.wait_for("the scheduled notice", Duration::from_secs(5), |s| {
        s.contains("Scheduled: Call Jean Dupont")
    });
    // Recent: the failed call, with the contact's name.
    tmux.keys(&["[", "["]);
    tmux.wait_for("the call in Recent", Duration::from_secs(5), |s| {
        s.lines().any(|l| {
            l.contains("→ Jean Dupont") && (l.contains("failed") || l.contains("rejected"))
        })
    });
    // A queue call rings, and ringside dies with it (kill -9: no chance to close the row).
    tmux.keys(&["c"]);
    tmux.wait_for("the queue picker", Duration::from_secs(5), |s| {
        s.contains("Connect to which queue?")
    });
    tmux.keys(&["Down", "Enter"]);
    tmux.wait_for("a queue call ringing", Duration::from_secs(40), |s| {
        s.contains("Incoming call")
    });
    let pid = tmux.pane_pid();
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    assert!(wait_until(Duration::from_secs(5), || tmux.pane_dead()));
    {
        let store = Store::open_in_dir(&store_dir).expect("store");
        let open: Vec<_> = store
            .recent_calls(10, false)
            .expect("recent")
            .into_iter()
            .filter(|c| c.ended.is_none())
            .collect();
        assert_eq!(open.len(), 1, "the ringing call's row is written: {open:?}");
    }
    drop(tmux);
    // The next start closes the row as interrupted (the notice line says so, until the next
    // caller's ring replaces it); the rest of the history is all there.
    let tmux = Tmux::start(&dir, &command, 120, 40);
    tmux.wait_for(
        "the interrupted call in Recent",
        Duration::from_secs(15),
        |s| s.contains("interrupted") && s.contains("→ Jean Dupont"),
    );
    tmux.quit();
    let store = Store::open_in_dir(&store_dir).expect("store");
    let calls = store.recent_calls(10, false).expect("recent");
    assert!(
        calls
            .iter()
            .any(|c| c.outcome == Some(CallOutcome::Interrupted)),
        "{calls:#?}"
    );
    let jean_call = calls
        .iter()
        .find(|c| c.remote_number == "102")
        .expect("the call to Jean");
    assert!(jean_call.activity_id.is_some(), "linked to its activity");
    let planned = store
        .due_activities("101", utc_yesterday().add_days(3).expect("date"))
        .expect("activities");
    assert_eq!(
        planned
            .iter()
            .map(|a| a.summary.as_str())
            .collect::<Vec<_>>(),
        ["Call Jean Dupont"],
        "the done one is gone, the scheduled one kept"
    );
}

/// tests/peers/smtp-sink.py (Debian's aiosmtpd) on a free loopback port, storing what it
/// accepts in `store`; killed when dropped.
struct SmtpSink {
    child: Child,
    port: u16,
}

impl SmtpSink {
    fn start(dir: &Path, store: &Path) -> SmtpSink {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let log = dir.join("smtp-sink.log");
        let child = Command::new(support::DEBIAN_PYTHON)
            .arg(support::peers_dir().join("smtp-sink.py"))
            .args(["--port", &port.to_string(), "--store"])
            .arg(store)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("sink log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("smtp-sink.py starts");
        let sink = SmtpSink { child, port };
        let ready = wait_until(Duration::from_secs(15), || {
            std::fs::read_to_string(&log).is_ok_and(|t| t.lines().any(|l| l == "ready"))
        });
        assert!(ready, "smtp-sink.py did not start");
        sink
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The messages the sink stored, in arrival order.
fn stored_messages(mailbox: &Path) -> Vec<String> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(mailbox)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

#[test]
fn a_follow_up_email_goes_through_the_editor_to_a_real_smtp_server() {
    if !require_peer("tmux") || !require_peer("python3-aiosmtpd") {
        return;
    }
    let dir = work_dir("e2e-email");
    let lab = LabProcess::start(&dir, 0);
    let mailbox = dir.join("mailbox");
    let sink = SmtpSink::start(&dir, &mailbox);
    // A contact with an email and one answered call with them, in Recent.
    {
        let mut store = Store::open_in_dir(dir.join("data/ringside")).expect("store");
        store
            .add_contact(
                &NewContact::named("Chen Wei")
                    .with_phone("work", "+3225550142")
                    .with_email("chen@example.org"),
            )
            .expect("contact");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
        let row = store
            .start_call(&CallStart {
                direction: CallDirection::Inbound,
                local_number: "101".into(),
                remote_number: "+3225550142".into(),
                contact_id: None,
                queue: Some("support".into()),
                started: now - 600,
                activity_id: None,
            })
            .expect("call");
        store
            .finish_call(
                row,
                &CallFinish {
                    outcome: CallOutcome::Answered,
                    answered: Some(now - 595),
                    ended: now - 403,
                    recording_path: None,
                },
            )
            .expect("finish");
    }
    // The "editor": changes the greeting in place, as a person typing would.
    let editor = dir.join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/^thank you for your time on the phone./Thanks for the call, as promised here is the summary./' \"$1\"\n",
    )
    .expect("editor script");
    let _ = Command::new("chmod").arg("+x").arg(&editor).status();
    let email = format!(
        "[email]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\nfrom = \"Ann Agent <ann@example.com>\"\n",
        sink.port
    );
    let command = agent_command_with(&dir, &lab, &email, &format!("VISUAL={}", editor.display()));
    let tmux = Tmux::start(&dir, &command, 120, 40);
    tmux.wait_for("registration", Duration::from_secs(15), |s| {
        s.contains(" registered ")
    });
    // Tabs pane, Recent: E on the call with Chen, the editor runs, then s sends.
    tmux.keys(&["Tab", "Tab", "Tab"]);
    tmux.wait_for("the call in Recent", Duration::from_secs(5), |s| {
        s.contains("← Chen Wei")
    });
    tmux.keys(&["E"]);
    tmux.wait_for("the edited draft", Duration::from_secs(10), |s| {
        s.contains("Follow-up email")
            && s.contains("Chen Wei <chen@example.org>")
            && s.contains("Thanks for the call")
    });
    tmux.keys(&["s"]);
    tmux.wait_for("the sent notice", Duration::from_secs(10), |s| {
        s.contains("Email sent to Chen Wei <chen@example.org>")
    });
    let sent = stored_messages(&mailbox);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].contains("To: Chen Wei <chen@example.org>"),
        "{}",
        sent[0]
    );
    assert!(
        sent[0].contains("Subject: Following up on our call of"),
        "{}",
        sent[0]
    );
    // The body is quoted-printable: the edited line survives soft line breaks.
    let body = sent[0].replace("=\r\n", "");
    assert!(body.contains("Thanks for the call, as promised"), "{body}");
    assert!(body.contains("3 min 12 s"), "{body}");

    // Send later: the draft waits in Next Activities; E there sends it and marks it done.
    tmux.keys(&["E"]);
    tmux.wait_for("the second draft", Duration::from_secs(10), |s| {
        s.contains("send later")
    });
    tmux.keys(&["l"]);
    tmux.keys(&["]"]);
    tmux.wait_for("the email activity", Duration::from_secs(5), |s| {
        s.contains("Email Chen Wei <chen@example.org>: Following up")
    });
    tmux.keys(&["E"]);
    tmux.wait_for("the kept draft", Duration::from_secs(10), |s| {
        s.contains("send now")
    });
    tmux.keys(&["s"]);
    tmux.wait_for("the activity done", Duration::from_secs(10), |s| {
        s.contains("No upcoming activities.")
    });
    assert_eq!(stored_messages(&mailbox).len(), 2);
    tmux.quit();
}
