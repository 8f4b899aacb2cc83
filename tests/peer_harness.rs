//! Proves the peer harness (tests/support) and our SIPp scenarios without ringside:
//! kamailio + SIPp registration and a proxied call, and `uas_hold` against two independent
//! holders (SIPp `uac_hold` and baresip's hold/resume commands).

mod support;

use std::time::Duration;

use support::{require_peers, PeerWorkspace};

const SIPP_DONE: Duration = Duration::from_secs(20);

#[test]
fn kamailio_registers_sipp_users_and_proxies_their_call() {
    if !require_peers(&["kamailio", "sipp"]) {
        return;
    }
    let ws = PeerWorkspace::new("kamailio_registers_sipp_users_and_proxies_their_call");
    ws.start_kamailio(5060, &[]).expect("kamailio starts");

    let rc = ws
        .run_sipp_fg(
            "reg-alice",
            5071,
            "uac_register",
            &[
                "127.0.0.1:5060",
                "-s",
                "alice",
                "-ap",
                "alice123",
                "-m",
                "1",
            ],
        )
        .expect("sipp runs");
    assert_eq!(
        rc,
        0,
        "alice's REGISTER (401, then 200)\n{}",
        ws.sipp("reg-alice").report()
    );

    // uac_register_badpw succeeds only when kamailio refuses the wrong password.
    let rc = ws
        .run_sipp_fg(
            "badpw",
            5071,
            "uac_register_badpw",
            &["127.0.0.1:5060", "-s", "alice", "-ap", "wrong", "-m", "1"],
        )
        .expect("sipp runs");
    assert_eq!(
        rc,
        0,
        "a wrong password must get 403\n{}",
        ws.sipp("badpw").report()
    );

    let rc = ws
        .run_sipp_fg(
            "reg-bob",
            5072,
            "uac_register",
            &["127.0.0.1:5060", "-s", "bob", "-ap", "bob123", "-m", "1"],
        )
        .expect("sipp runs");
    assert_eq!(rc, 0, "bob's REGISTER\n{}", ws.sipp("reg-bob").report());

    // bob's registered contact is 127.0.0.1:5072, where this UAS answers.
    let uas = ws
        .start_sipp("uas-bob", 5072, "uas_answer_rtp", &["-m", "1"])
        .expect("sipp UAS starts");
    let rc = ws
        .run_sipp_fg(
            "call",
            5071,
            "uac_call",
            &[
                "127.0.0.1:5060",
                "-key",
                "caller",
                "alice",
                "-s",
                "bob",
                "-au",
                "alice",
                "-ap",
                "alice123",
                "-m",
                "1",
            ],
        )
        .expect("sipp runs");
    assert_eq!(
        rc,
        0,
        "alice calls bob through kamailio\n{}",
        ws.sipp("call").report()
    );
    assert_eq!(
        uas.wait(SIPP_DONE).expect("UAS ends"),
        0,
        "{}",
        uas.report()
    );

    // The call really went through the proxy: the caller was challenged, and bob's UAS saw
    // kamailio's Record-Route on the INVITE.
    let caller = ws.sipp("call").messages();
    assert!(
        caller.contains("SIP/2.0 407"),
        "no 407 challenge:\n{caller}"
    );
    let callee = uas.messages();
    assert!(
        callee.contains("INVITE sip:bob@127.0.0.1:5072"),
        "INVITE not retargeted to bob's contact:\n{callee}"
    );
    assert!(
        callee.contains("Record-Route: <sip:127.0.0.1;lr"),
        "no kamailio Record-Route:\n{callee}"
    );
    let proxy_log = support::read_text(&ws.kamailio_log());
    assert!(
        proxy_log.contains("REQ BYE"),
        "kamailio did not route the BYE:\n{proxy_log}"
    );
}

#[test]
fn uas_hold_accepts_hold_and_resume_from_sipp() {
    if !require_peers(&["sipp"]) {
        return;
    }
    let ws = PeerWorkspace::new("uas_hold_accepts_hold_and_resume_from_sipp");
    let uas = ws
        .start_sipp("uas", 5070, "uas_hold", &["-m", "1"])
        .expect("sipp UAS starts");
    let rc = ws
        .run_sipp_fg(
            "uac",
            5071,
            "uac_hold",
            &[
                "127.0.0.1:5070",
                "-key",
                "caller",
                "alice",
                "-s",
                "bob",
                "-m",
                "1",
            ],
        )
        .expect("sipp runs");
    let uac = ws.sipp("uac");
    assert_eq!(rc, 0, "uac_hold\n{}", uac.report());
    assert_eq!(
        uas.wait(SIPP_DONE).expect("UAS ends"),
        0,
        "{}",
        uas.report()
    );

    assert_eq!(
        uas.logs().lines().collect::<Vec<_>>(),
        [
            "hold re-INVITE direction: a=sendonly",
            "resume re-INVITE direction: a=sendrecv"
        ]
    );
    assert!(
        uac.logs().contains("hold answered with a=recvonly"),
        "{}",
        uac.logs()
    );
    // Two re-INVITEs in the dialog after the initial one.
    let messages = uac.messages();
    for cseq in [
        "CSeq: 1 INVITE",
        "CSeq: 2 INVITE",
        "CSeq: 3 INVITE",
        "CSeq: 4 BYE",
    ] {
        assert!(messages.contains(cseq), "missing {cseq} in:\n{messages}");
    }
}

#[test]
fn uas_hold_fails_a_hold_offer_that_is_not_sendonly() {
    if !require_peers(&["sipp"]) {
        return;
    }
    let ws = PeerWorkspace::new("uas_hold_fails_a_hold_offer_that_is_not_sendonly");
    let good =
        std::fs::read_to_string(ws.peers_dir().join("sipp/uac_hold.xml")).expect("uac_hold.xml");
    // The SDP line of the hold re-INVITE (the header comment mentions it too).
    let hold_line = "      a=sendonly\n";
    assert_eq!(good.matches(hold_line).count(), 1);
    let bad = ws.path("uac_hold_inactive.xml");
    std::fs::write(&bad, good.replace(hold_line, "      a=inactive\n")).expect("write scenario");

    let uas = ws
        .start_sipp("uas", 5070, "uas_hold", &["-m", "1"])
        .expect("sipp UAS starts");
    let bad = bad.to_string_lossy();
    ws.start_sipp(
        "uac",
        5071,
        &bad,
        &[
            "127.0.0.1:5070",
            "-key",
            "caller",
            "alice",
            "-s",
            "bob",
            "-m",
            "1",
        ],
    )
    .expect("sipp UAC starts");
    assert_eq!(
        uas.wait(SIPP_DONE).expect("UAS ends"),
        1,
        "{}",
        uas.report()
    );
    let errors = support::read_text(uas.errors_log());
    assert!(errors.contains("with regexp 'a=sendonly'"), "{errors}");
}

#[test]
fn uas_hold_accepts_hold_and_resume_from_baresip() {
    if !require_peers(&["sipp", "baresip"]) {
        return;
    }
    let ws = PeerWorkspace::new("uas_hold_accepts_hold_and_resume_from_baresip");
    let uas = ws
        .start_sipp("uas", 5070, "uas_hold", &["-m", "1"])
        .expect("sipp UAS starts");
    let alice = ws
        .start_baresip("a", 5080, "alice", "alice123", &["--no-register"])
        .expect("baresip starts");
    let mut ctl = alice.connect();
    let wait = Duration::from_secs(10);

    let established = ctl.command_wait("dial", "sip:bob@127.0.0.1:5070", "CALL_ESTABLISHED", wait);
    assert_eq!(
        established["peeruri"],
        "sip:bob@127.0.0.1:5070;transport=udp"
    );
    // baresip applies the SDP answer of each re-INVITE: CALL_REMOTE_SDP "answer".
    ctl.try_wait_event("CALL_REMOTE_SDP", Duration::ZERO);
    let held = ctl.command_wait("hold", "", "CALL_REMOTE_SDP", wait);
    assert_eq!(held["param"], "answer");
    let resumed = ctl.command_wait("resume", "", "CALL_REMOTE_SDP", wait);
    assert_eq!(resumed["param"], "answer");
    ctl.command_wait("hangup", "", "CALL_CLOSED", wait);

    assert_eq!(
        uas.wait(SIPP_DONE).expect("UAS ends"),
        0,
        "{}",
        uas.report()
    );
    assert_eq!(
        uas.logs().lines().collect::<Vec<_>>(),
        [
            "hold re-INVITE direction: a=sendonly",
            "resume re-INVITE direction: a=sendrecv"
        ],
        "{}",
        uas.report()
    );
}
