//! The binary's user-facing errors: config problems name the file, line and key; `check`
//! diagnoses what it cannot reach. Secrets never appear.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ringside(dir: &Path, config: &str, args: &[&str]) -> Output {
    let path = dir.join("config.toml");
    std::fs::write(&path, config).expect("write config");
    Command::new(env!("CARGO_BIN_EXE_ringside"))
        .arg("--log-file")
        .arg(dir.join("ringside.log"))
        .arg("--config")
        .arg(&path)
        .args(args)
        .output()
        .expect("ringside runs")
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[test]
fn a_missing_parameter_is_named_with_its_file_and_line() {
    let dir = scratch("missing_parameter");
    let out = ringside(
        &dir,
        "# agent\n[account]\nusername = \"101\"\npassword = \"hunter2\"\n",
        &["check"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("config.toml:2: Missing parameter: [account].domain"),
        "{err}"
    );
    assert!(!err.contains("hunter2"));
}

#[test]
fn a_bad_value_says_what_is_allowed() {
    let dir = scratch("bad_value");
    let out = ringside(
        &dir,
        "[account]\nusername = \"101\"\npassword = \"hunter2\"\ndomain = \"pbx\"\ntransport = \"sctp\"\n",
        &["shell"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("config.toml:5: [account].transport = \"sctp\": allowed values are udp, tcp"),
        "{err}"
    );
    assert!(!err.contains("hunter2"));
}

#[test]
fn check_reports_a_name_that_does_not_resolve() {
    let dir = scratch("dns");
    let out = ringside(
        &dir,
        "[account]\nusername = \"101\"\npassword = \"hunter2\"\ndomain = \"pbx.invalid\"\n",
        &["check"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("FAILED: [account].registrar: cannot resolve pbx.invalid"),
        "{text}"
    );
}

#[test]
fn without_a_config_it_runs_the_demo_on_the_embedded_lab() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let data = tmp.join("demo-xdg-data");
    let _ = std::fs::remove_dir_all(&data);
    // stdin closed: the shell carries out its startup (register, *600) and then quits.
    let out = Command::new(env!("CARGO_BIN_EXE_ringside"))
        .env("XDG_CONFIG_HOME", tmp.join("empty-xdg"))
        .env("XDG_DATA_HOME", &data)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("DEMO: no SIP account is configured"),
        "{text}"
    );
    assert!(
        text.contains("To use your PBX instead: copy config.example.toml"),
        "{text}"
    );
    assert!(text.contains("registered as sip:101@127.0.0.1:"), "{text}");
    assert!(text.contains("dialing sip:*600@127.0.0.1:"), "{text}");
    // The lab logged agent 101 into support.
    let log = std::fs::read_to_string(data.join("ringside/lab-queue_log")).unwrap_or_default();
    assert!(log.contains("|support|101|ADDMEMBER|"), "{log}");
}

fn fixture_log() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/asterisk/queue_log/full.log")
}

fn run_bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringside"))
        .args(args)
        .output()
        .expect("ringside runs")
}

#[test]
fn report_over_the_real_asterisk_queue_log() {
    let log = fixture_log();
    let log = log.to_str().expect("utf-8 path");
    let table = run_bin(&["report", "--queue-log", log]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    assert!(
        text.contains(
            "11:13:11 no-answer               support agent1 caller1            rang 15.0s"
        ),
        "{text}"
    );
    assert!(
        text.lines().all(|l| l.chars().count() <= 80),
        "fits 80 columns"
    );

    let stats = run_bin(&["report", "--queue-log", log, "--stats"]);
    let text = String::from_utf8_lossy(&stats.stdout);
    assert!(
        text.contains("support        9         5          3        1      0     0     33.3%"),
        "{text}"
    );

    let csv = run_bin(&[
        "report",
        "--queue-log",
        log,
        "--event",
        "caller-quit",
        "--format",
        "csv",
    ]);
    let text = String::from_utf8_lossy(&csv.stdout);
    assert_eq!(
        text.lines().count(),
        4,
        "header and three caller-quit rows: {text}"
    );
    assert!(text.starts_with("Date,Event type,Event,Queue,Call ID,Agent,Caller,Wait (s)"));

    let bad = run_bin(&["report", "--queue-log", log, "--event", "bogus"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown event kind \"bogus\""));
}

#[test]
fn events_streams_json_lines() {
    let log = fixture_log();
    let out = run_bin(&["events", "--queue-log", log.to_str().expect("utf-8 path")]);
    let text = String::from_utf8_lossy(&out.stdout);
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(events.len(), 48);
    assert_eq!(events[0]["event"], "agent-connect");
    assert!(events
        .iter()
        .any(|e| e["event"] == "exit-timeout" && e["wait_s"] == 10));
}

#[test]
fn lab_runs_a_simulated_call_center_into_a_queue_log() {
    let dir = scratch("lab");
    let log = dir.join("queue_log");
    let out = run_bin(&[
        "--log-file",
        dir.join("ringside.log").to_str().expect("utf-8"),
        "lab",
        "--queue-log",
        log.to_str().expect("utf-8"),
        "--callers",
        "120",
        "--bots",
        "2",
        "--duration",
        "4",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("queue support on 600 (*600/*601, rrmemory"),
        "{text}"
    );
    // Four seconds at 120 callers/min per queue: several callers entered, bots logged in.
    let events = run_bin(&["events", "--queue-log", log.to_str().expect("utf-8")]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&events.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert!(
        lines
            .iter()
            .filter(|e| e["event"] == "agent-connect")
            .count()
            >= 4,
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|e| e["event"] == "enter-queue"),
        "{lines:?}"
    );
}

#[test]
fn report_over_an_exported_csv() {
    let dir = scratch("report_csv");
    let log = fixture_log();
    let log = log.to_str().expect("utf-8 path");
    let from_log = run_bin(&["report", "--queue-log", log, "--stats"]);
    assert!(from_log.status.success());

    // Our own export reads back to the same statistics, without a warning.
    let export = run_bin(&["report", "--queue-log", log, "--format", "csv"]);
    let csv = dir.join("export.csv");
    std::fs::write(&csv, &export.stdout).expect("write");
    let csv = csv.to_str().expect("utf-8 path");
    let from_csv = run_bin(&["report", "--csv", csv, "--stats"]);
    assert!(
        from_csv.status.success(),
        "{}",
        String::from_utf8_lossy(&from_csv.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&from_csv.stdout),
        String::from_utf8_lossy(&from_log.stdout)
    );
    assert_eq!(String::from_utf8_lossy(&from_csv.stderr), "");

    // The hosted PBX's export: local time, `;`, the report's labels, mm:ss, newest first.
    let hosted = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hosted-queue-report.csv");
    let hosted = hosted.to_str().expect("utf-8 path");
    let out = run_bin(&[
        "report",
        "--csv",
        hosted,
        "--utc-offset",
        "+01:00",
        "--stats",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&from_log.stdout)
    );
    assert!(
        err.contains("warning: CSV line 7: unknown event type \"The caller was put on hold\""),
        "{err}"
    );
    assert_eq!(err.lines().count(), 3, "{err}");

    let table = run_bin(&[
        "report",
        "--csv",
        hosted,
        "--utc-offset=-05:00",
        "--event",
        "caller-quit",
    ]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("17:14:00 caller-quit support"), "{text}");
    assert!(
        text.ends_with("3 event(s); 50 CSV row(s) read, 2 skipped\n"),
        "{text}"
    );

    let both = run_bin(&["report", "--csv", hosted, "--queue-log", log]);
    assert_eq!(both.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&both.stderr)
        .contains("'--csv <FILE>' cannot be used with '--queue-log <FILE>'"));
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "Date,Agent\n2026-11-21 10:00:00,a\n").expect("write");
    let out = run_bin(&["report", "--csv", bad.to_str().expect("utf-8"), "--stats"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("bad.csv: the CSV header has no event type column"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
