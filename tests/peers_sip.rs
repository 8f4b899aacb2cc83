//! ringside's SIP core against software nobody here wrote: SIPp scenarios, Kamailio as
//! registrar and proxy with digest auth, and baresip as the far end and the transfer target.
//! Each test drives the real binary through `ringside shell --json`, as scripts do.
//! Peers run on fixed ports; scripts/test.sh runs the tests in a private network namespace.

mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{require_peers, PeerWorkspace, ShellProcess};

const RINGSIDE_PORT: u16 = 5090;
const QUICK: Duration = Duration::from_secs(10);
const SIPP_DONE: Duration = Duration::from_secs(20);

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ringside"))
}

/// The account config for ringside as `user` at 127.0.0.1 (Kamailio's users, or SIPp's).
fn config(ws: &PeerWorkspace, user: &str, password: &str, extra: &str) -> PathBuf {
    ws.write_config(
        &format!("ringside-{user}.toml"),
        &format!(
            "[account]\nusername = \"{user}\"\npassword = \"{password}\"\ndomain = \"127.0.0.1\"\n{extra}\n\
             [network]\nbind = \"127.0.0.1:{RINGSIDE_PORT}\"\n"
        ),
    )
}

/// Start `ringside shell --json`, registering or not, logging into the work dir.
fn shell(ws: &PeerWorkspace, config: &Path, register: bool) -> ShellProcess {
    let log = ws.path("ringside.log");
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("--log-file"),
        log.as_os_str(),
        OsStr::new("--config"),
        config.as_os_str(),
        OsStr::new("shell"),
        OsStr::new("--json"),
    ];
    if !register {
        args.push(OsStr::new("--no-register"));
    }
    let mut shell = ShellProcess::spawn(&exe(), &args).expect("ringside starts");
    shell.expect("ready", QUICK);
    shell
}

/// SIPp exits 0 only when every call of its scenario went as scripted.
fn assert_sipp_succeeded(run: &support::SippRun) {
    assert_eq!(
        run.wait(SIPP_DONE).expect("sipp ends"),
        0,
        "{}",
        run.report()
    );
}

fn call_of(event: &Value) -> u64 {
    event["call"].as_u64().expect("event names its call")
}

#[test]
fn dials_a_sipp_uas_and_hangs_up() {
    if !require_peers(&["sipp"]) {
        return;
    }
    let ws = PeerWorkspace::new("dials_a_sipp_uas_and_hangs_up");
    let uas = ws
        .start_sipp("uas", 5070, "uas_answer_rtp", &["-m", "1"])
        .expect("sipp");
    let mut rs = shell(&ws, &config(&ws, "alice", "alice123", ""), false);
    rs.send("dial sip:bob@127.0.0.1:5070");
    rs.expect("ringing", QUICK);
    let answered = rs.expect("answered", QUICK);
    assert_eq!(answered["codec"], "PCMU");
    let media = rs.expect("media", QUICK);
    assert_eq!(
        media["remote"], "127.0.0.1:6000",
        "SIPp's RTP address from its SDP"
    );
    rs.send("calls");
    let calls = rs.expect("calls", QUICK);
    assert_eq!(calls["calls"][0]["state"], "active");
    rs.send("hangup");
    let ended = rs.expect("call_ended", QUICK);
    assert_eq!(ended["by"], "local");
    assert_sipp_succeeded(&uas);
    rs.quit(QUICK);
}

#[test]
fn answers_a_call_from_sipp_and_sees_the_remote_hangup() {
    if !require_peers(&["sipp"]) {
        return;
    }
    let ws = PeerWorkspace::new("answers_a_call_from_sipp_and_sees_the_remote_hangup");
    let mut rs = shell(&ws, &config(&ws, "alice", "alice123", ""), false);
    let target = format!("127.0.0.1:{RINGSIDE_PORT}");
    let uac = ws
        .start_sipp(
            "uac",
            5071,
            "uac_call",
            &[&target, "-key", "caller", "sipp", "-s", "alice", "-m", "1"],
        )
        .expect("sipp");
    let incoming = rs.expect("incoming_call", QUICK);
    assert!(
        incoming["from"]
            .as_str()
            .unwrap_or_default()
            .starts_with("sip:sipp@"),
        "{incoming}"
    );
    rs.send(&format!("answer {}", call_of(&incoming)));
    rs.expect("answered", QUICK);
    // uac_call streams 5 s of RTP, then hangs up.
    let ended = rs.expect("call_ended", Duration::from_secs(15));
    assert_eq!(ended["by"], "remote");
    assert_sipp_succeeded(&uac);
    rs.quit(QUICK);
}

#[test]
fn registers_with_a_sipp_registrar_that_verifies_md5_digest() {
    if !require_peers(&["sipp"]) {
        return;
    }
    let ws = PeerWorkspace::new("registers_with_a_sipp_registrar_that_verifies_md5_digest");
    let registrar = ws
        .start_sipp("reg", 5074, "uas_register_auth", &["-m", "1"])
        .expect("sipp");
    let cfg = config(
        &ws,
        "alice",
        "alice123",
        "registrar = \"sip:127.0.0.1:5074\"",
    );
    let mut rs = shell(&ws, &cfg, true);
    let registered = rs.expect("registered", QUICK);
    assert_eq!(registered["aor"], "sip:alice@127.0.0.1");
    rs.send("unregister");
    rs.expect("unregistered", QUICK);
    assert_sipp_succeeded(&registrar);
    let messages = registrar.messages();
    assert!(
        messages.contains("Authorization: Digest username=\"alice\""),
        "credentials were sent"
    );
    assert!(messages.contains("Expires: 0"), "the binding was removed");
    rs.quit(QUICK);
}

#[test]
fn blind_transfer_through_a_sipp_refer_uas() {
    if !require_peers(&["sipp"]) {
        return;
    }
    let ws = PeerWorkspace::new("blind_transfer_through_a_sipp_refer_uas");
    let uas = ws
        .start_sipp("refer", 5072, "uas_refer", &["-m", "1"])
        .expect("sipp");
    let mut rs = shell(&ws, &config(&ws, "alice", "alice123", ""), false);
    rs.send("dial sip:bob@127.0.0.1:5072");
    rs.expect("answered", QUICK);
    rs.send("transfer carol");
    rs.expect_where("transfer_progress", |e| e["code"] == 202, QUICK);
    rs.expect_where("transfer_progress", |e| e["code"] == 100, QUICK);
    let done = rs.expect("transfer_done", QUICK);
    assert_eq!(done["success"], true, "{done}");
    let ended = rs.expect("call_ended", QUICK);
    assert_eq!(ended["reason"], "transferred");
    assert_sipp_succeeded(&uas);
    let messages = uas.messages();
    assert!(
        messages.contains("Refer-To: <sip:carol@127.0.0.1>"),
        "Refer-To names the target"
    );
    assert!(messages.contains("Referred-By: <sip:alice@127.0.0.1>"));
    rs.quit(QUICK);
}

#[test]
fn hold_and_resume_with_a_sipp_uas_checking_directions() {
    if !require_peers(&["sipp"]) {
        return;
    }
    let ws = PeerWorkspace::new("hold_and_resume_with_a_sipp_uas_checking_directions");
    let uas = ws
        .start_sipp("hold", 5076, "uas_hold", &["-m", "1"])
        .expect("sipp");
    let mut rs = shell(&ws, &config(&ws, "alice", "alice123", ""), false);
    rs.send("dial sip:bob@127.0.0.1:5076");
    rs.expect("answered", QUICK);
    rs.send("hold");
    rs.expect("held", QUICK);
    let media = rs.expect("media", QUICK);
    assert_eq!(media["sending"], true, "on hold we send (sendonly) ...");
    assert_eq!(media["receiving"], false, "... and do not receive");
    rs.send("resume");
    rs.expect("resumed", QUICK);
    rs.send("hangup");
    rs.expect("call_ended", QUICK);
    assert_sipp_succeeded(&uas);
    rs.quit(QUICK);
}

#[test]
fn kamailio_registration_right_and_wrong_password_and_a_proxied_call() {
    if !require_peers(&["kamailio", "sipp"]) {
        return;
    }
    let ws =
        PeerWorkspace::new("kamailio_registration_right_and_wrong_password_and_a_proxied_call");
    ws.start_kamailio(5060, &[]).expect("kamailio");

    // `ringside check` with a wrong password: a diagnosis naming the user and the keys.
    let bad = config(&ws, "alice", "WRONG", "");
    let out = Command::new(exe())
        .arg("--log-file")
        .arg(ws.path("check.log"))
        .arg("--config")
        .arg(&bad)
        .arg("check")
        .output()
        .expect("check runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("the PBX rejected the password for user alice"),
        "{text}"
    );
    assert!(!text.contains("WRONG"), "the password is never printed");

    // Bob is a SIPp UAS registered at Kamailio; ringside registers and calls him by name.
    let rc = ws
        .run_sipp_fg(
            "reg-bob",
            5072,
            "uac_register",
            &["127.0.0.1:5060", "-s", "bob", "-ap", "bob123", "-m", "1"],
        )
        .expect("sipp");
    assert_eq!(rc, 0, "bob registers");
    let uas = ws
        .start_sipp("bob", 5072, "uas_hold", &["-m", "1"])
        .expect("sipp");
    let mut rs = shell(&ws, &config(&ws, "alice", "alice123", ""), true);
    rs.expect("registered", QUICK);
    rs.send("dial bob");
    rs.expect("answered", QUICK);
    // The re-INVITEs follow the route set through Kamailio; SIPp checks their directions.
    rs.send("hold");
    rs.expect("held", QUICK);
    rs.send("resume");
    rs.expect("resumed", QUICK);
    rs.send("hangup");
    rs.expect("call_ended", QUICK);
    assert_sipp_succeeded(&uas);
    let log = support::read_text(&ws.kamailio_log());
    assert!(
        log.contains("REQ INVITE sip:bob@127.0.0.1 from 127.0.0.1:5090"),
        "through the proxy"
    );
    assert!(log.contains("REQ BYE"), "the BYE followed the route set");
    rs.send("quit");
    rs.expect("unregistered", QUICK);
    rs.quit(QUICK);
}

#[test]
fn baresip_calls_ringside_through_kamailio() {
    if !require_peers(&["kamailio", "baresip"]) {
        return;
    }
    let ws = PeerWorkspace::new("baresip_calls_ringside_through_kamailio");
    ws.start_kamailio(5060, &[]).expect("kamailio");
    let bob = ws
        .start_baresip("bob", 5080, "bob", "bob123", &[])
        .expect("baresip");
    let mut rs = shell(&ws, &config(&ws, "alice", "alice123", ""), true);
    rs.expect("registered", QUICK);
    let mut ctl = bob.connect();
    ctl.command("dial", "sip:alice@127.0.0.1");
    let incoming = rs.expect("incoming_call", QUICK);
    assert!(
        incoming["from"]
            .as_str()
            .unwrap_or_default()
            .contains("bob@127.0.0.1"),
        "{incoming}"
    );
    rs.send("answer");
    rs.expect("answered", QUICK);
    ctl.wait_event("CALL_ESTABLISHED", QUICK);
    rs.send("hangup");
    rs.expect("call_ended", QUICK);
    ctl.wait_event("CALL_CLOSED", QUICK);
    rs.quit(QUICK);
}

#[test]
fn blind_transfer_hands_baresip_to_another_baresip() {
    if !require_peers(&["kamailio", "baresip"]) {
        return;
    }
    let ws = PeerWorkspace::new("blind_transfer_hands_baresip_to_another_baresip");
    ws.start_kamailio(5060, &[]).expect("kamailio");
    let bob = ws
        .start_baresip("bob", 5080, "bob", "bob123", &[])
        .expect("baresip");
    let carol = ws
        .start_baresip("carol", 5082, "agent1", "agent1pw", &[])
        .expect("baresip");
    let mut bob_ctl = bob.connect();
    let mut carol_ctl = carol.connect();
    let mut rs = shell(&ws, &config(&ws, "alice", "alice123", ""), true);
    rs.expect("registered", QUICK);
    rs.send("dial bob");
    rs.expect("answered", QUICK);
    bob_ctl.wait_event("CALL_ESTABLISHED", QUICK);
    rs.send("transfer agent1");
    let done = rs.expect("transfer_done", Duration::from_secs(15));
    assert_eq!(done["success"], true, "{done}");
    rs.expect("call_ended", QUICK);
    // Bob now talks to the transfer target.
    carol_ctl.wait_event("CALL_ESTABLISHED", QUICK);
    rs.quit(QUICK);
}

#[test]
fn attended_transfer_hands_a_ringside_caller_to_baresip() {
    if !require_peers(&["kamailio", "baresip"]) {
        return;
    }
    // baresip 1.0 does not act on a Refer-To carrying Replaces (it never sends the INVITE), so
    // the transferee is a second ringside; baresip is the transfer target, whose consultation
    // call the transferee's INVITE with Replaces takes over.
    let ws = PeerWorkspace::new("attended_transfer_hands_a_ringside_caller_to_baresip");
    ws.start_kamailio(5060, &[]).expect("kamailio");
    let carol = ws
        .start_baresip("carol", 5082, "agent1", "agent1pw", &[])
        .expect("baresip");
    let mut carol_ctl = carol.connect();
    let bob_cfg = ws.write_config(
        "ringside-bob.toml",
        "[account]\nusername = \"bob\"\npassword = \"bob123\"\ndomain = \"127.0.0.1\"\n\
         [network]\nbind = \"127.0.0.1:5092\"\n",
    );
    let mut bob = shell(&ws, &bob_cfg, true);
    bob.expect("registered", QUICK);
    let mut alice = shell(&ws, &config(&ws, "alice", "alice123", ""), true);
    alice.expect("registered", QUICK);

    alice.send("dial bob");
    let incoming = bob.expect("incoming_call", QUICK);
    bob.send(&format!("answer {}", call_of(&incoming)));
    let first = alice.expect("answered", QUICK);
    bob.expect("answered", QUICK);

    alice.send("atransfer agent1");
    alice.expect_where("held", |e| e["call"] == first["call"], QUICK);
    bob.expect("remote_hold", QUICK);
    alice.expect_where("answered", |e| e["call"] != first["call"], QUICK);
    carol_ctl.wait_event("CALL_ESTABLISHED", QUICK);

    alice.send("atransfer complete");
    let done = alice.expect("transfer_done", Duration::from_secs(15));
    assert_eq!(done["success"], true, "{done}");
    alice.expect("call_ended", QUICK);
    alice.expect("call_ended", QUICK);
    // Bob was asked to call carol, with Replaces naming alice's consultation dialog.
    let requested = bob.expect("transfer_requested", QUICK);
    assert!(
        requested["target"]
            .as_str()
            .unwrap_or_default()
            .starts_with("sip:agent1@"),
        "{requested}"
    );
    bob.expect_where("answered", |e| e["call"] == requested["new_call"], QUICK);
    carol_ctl.wait_event("CALL_ESTABLISHED", QUICK);
    let log = support::read_text(&ws.kamailio_log());
    assert!(
        log.contains("REQ INVITE sip:agent1@127.0.0.1 from 127.0.0.1:5092"),
        "bob called the target"
    );
    bob.send("hangup");
    bob.expect("call_ended", QUICK);
    alice.quit(QUICK);
    bob.quit(QUICK);
}

#[test]
fn carries_out_a_transfer_requested_by_sipp() {
    if !require_peers(&["sipp", "baresip"]) {
        return;
    }
    // SIPp calls us and REFERs us to sip:carol@<our address>, port 5060: a baresip answers
    // there. SIPp checks our 202 and that the final NOTIFY says 200 OK.
    let ws = PeerWorkspace::new("carries_out_a_transfer_requested_by_sipp");
    let carol = ws
        .start_baresip("carol", 5060, "carol", "x", &["--no-register"])
        .expect("baresip");
    let mut carol_ctl = carol.connect();
    let mut rs = shell(
        &ws,
        &config(&ws, "alice", "alice123", "auto_answer = 1"),
        false,
    );
    let target = format!("127.0.0.1:{RINGSIDE_PORT}");
    let uac = ws
        .start_sipp(
            "referrer",
            5073,
            "uac_refer",
            &[&target, "-key", "caller", "sipp", "-s", "alice", "-m", "1"],
        )
        .expect("sipp");
    rs.expect("answered", QUICK);
    let requested = rs.expect("transfer_requested", QUICK);
    assert_eq!(requested["target"], "sip:carol@127.0.0.1");
    carol_ctl.wait_event("CALL_ESTABLISHED", QUICK);
    assert_sipp_succeeded(&uac);
    rs.quit(QUICK);
}

#[test]
fn registers_and_calls_over_tcp_through_kamailio() {
    if !require_peers(&["kamailio", "sipp", "baresip"]) {
        return;
    }
    let ws = PeerWorkspace::new("registers_and_calls_over_tcp_through_kamailio");
    ws.start_kamailio(5060, &[]).expect("kamailio");
    let bob = ws
        .start_baresip("bob", 5080, "bob", "bob123", &[])
        .expect("baresip");
    let mut bob_ctl = bob.connect();
    let cfg = config(&ws, "alice", "alice123", "transport = \"tcp\"");
    let mut rs = shell(&ws, &cfg, true);
    let registered = rs.expect("registered", QUICK);
    assert!(
        registered["contact"]
            .as_str()
            .unwrap_or_default()
            .ends_with(";transport=tcp"),
        "{registered}"
    );
    // Out over TCP ...
    rs.send("dial bob");
    rs.expect("answered", QUICK);
    bob_ctl.wait_event("CALL_ESTABLISHED", QUICK);
    rs.send("hangup");
    rs.expect("call_ended", QUICK);
    bob_ctl.wait_event("CALL_CLOSED", QUICK);
    // ... and in: Kamailio reaches us over the connection we registered on.
    bob_ctl.command("dial", "sip:alice@127.0.0.1");
    rs.expect("incoming_call", QUICK);
    rs.send("answer");
    rs.expect("answered", QUICK);
    bob_ctl.wait_event("CALL_ESTABLISHED", QUICK);
    rs.send("hangup");
    rs.expect("call_ended", QUICK);
    let log = support::read_text(&ws.kamailio_log());
    assert!(
        log.contains("REQ REGISTER sip:127.0.0.1;transport=tcp from 127.0.0.1:"),
        "REGISTER came over TCP"
    );
    assert!(log.contains("(tcp)"), "kamailio saw TCP traffic");
    rs.quit(QUICK);
}

#[test]
fn registration_comes_back_after_a_pbx_restart_over_tcp() {
    if !require_peers(&["kamailio"]) {
        return;
    }
    let ws = PeerWorkspace::new("registration_comes_back_after_a_pbx_restart_over_tcp");
    ws.start_kamailio(5060, &[]).expect("kamailio");
    let cfg = config(&ws, "alice", "alice123", "transport = \"tcp\"");
    let mut rs = shell(&ws, &cfg, true);
    rs.expect("registered", QUICK);
    // The PBX goes away: the TCP connection closes and the console says so at once.
    ws.stop(&["kamailio"]);
    let lost = rs.expect("registration_failed", QUICK);
    let message = lost["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("connection to the PBX lost"),
        "{message}"
    );
    // It comes back (with qop=auth challenges this time): ringside registers by itself.
    ws.start_kamailio(5060, &["--qop"])
        .expect("kamailio restarts");
    let again = rs.expect("registered", Duration::from_secs(30));
    assert_eq!(again["aor"], "sip:alice@127.0.0.1");
    rs.quit(QUICK);
}

#[test]
fn message_waiting_from_a_sipp_notifier_after_subscribing() {
    if !require_peers(&["sipp"]) {
        return;
    }
    let ws = PeerWorkspace::new("message_waiting_from_a_sipp_notifier_after_subscribing");
    let pbx = ws
        .start_sipp("mwi", 5078, "uas_mwi", &["-m", "2"])
        .expect("sipp");
    let cfg = config(
        &ws,
        "alice",
        "alice123",
        "registrar = \"sip:127.0.0.1:5078\"",
    );
    let mut rs = shell(&ws, &cfg, true);
    rs.expect("registered", QUICK);
    let voicemail = rs.expect("voicemail", QUICK);
    assert_eq!(voicemail["waiting"], true, "{voicemail}");
    assert_eq!(voicemail["new"], 2, "{voicemail}");
    assert_eq!(voicemail["old"], 8, "{voicemail}");
    rs.send("unregister");
    rs.expect("unregistered", QUICK);
    assert_sipp_succeeded(&pbx);
    let messages = pbx.messages();
    assert!(
        messages.contains("SUBSCRIBE sip:alice@127.0.0.1 SIP/2.0"),
        "the mailbox was subscribed to"
    );
    assert!(messages.contains("Expires: 3600"));
    rs.quit(QUICK);
}
