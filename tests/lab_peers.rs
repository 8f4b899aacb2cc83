//! The lab PBX between real peers on loopback: SIPp callers into a queue answered by a baresip
//! agent and by a SIPp agent, hold and resume through the lab's B2BUA, and transfers made by
//! baresip. Audio is checked where it lands: baresip's recordings, ringside's file device, and
//! a packet capture of what the lab sent SIPp (SIPp records nothing itself).

mod support;

use std::path::Path;
use std::process::Command as Process;
use std::time::Duration;

use ringside::lab::config::LabConfig;
use ringside::media::codec::g711::{alaw_to_linear, ulaw_to_linear};
use support::lab::{lines_with, peak_power, read_wav, received_recordings, RunningLab};
use support::{read_text, require_peers, tail, wait_until, PeerWorkspace};

/// A lab with no simulated traffic: only the test's peers call.
fn quiet_lab() -> LabConfig {
    let mut config = LabConfig::default();
    config.simulation.bots = 0;
    config.simulation.callers_per_minute = 0.0;
    config
}

/// The audio carried in the RTP packets sent to UDP port `port` in `pcap`, decoded (PCMU or
/// PCMA), in capture order.
fn rtp_audio_to(pcap: &Path, port: u16) -> Vec<i16> {
    let output = Process::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-d", &format!("udp.port=={port},rtp")])
        .args(["-Y", &format!("rtp && udp.dstport=={port}")])
        .args(["-T", "fields", "-e", "rtp.p_type", "-e", "rtp.payload"])
        .output()
        .expect("tshark runs");
    assert!(
        output.status.success(),
        "tshark on {}: {}",
        pcap.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut samples = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let mut fields = line.split('\t');
        let (Some(payload_type), Some(hex)) = (fields.next(), fields.next()) else {
            continue;
        };
        let hex: Vec<u8> = hex.bytes().filter(|b| *b != b':').collect();
        let bytes = hex
            .chunks(2)
            .filter_map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok());
        match payload_type {
            "0" => samples.extend(bytes.map(ulaw_to_linear)),
            "8" => samples.extend(bytes.map(alaw_to_linear)),
            _ => {}
        }
    }
    samples
}

/// SIPp arguments of a queue caller (account 105) into extension `service` of the lab at
/// `target`, signing the digest for the Request-URI as the lab wants.
fn caller_args(target: &str, user: &str, service: &str) -> Vec<String> {
    [
        target,
        "-key",
        "caller",
        user,
        "-s",
        service,
        "-au",
        user,
        "-ap",
        &format!("lab{user}"),
        "-auth_uri",
        &format!("{service}@{target}"),
        "-m",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn str_args(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A SIPp caller (105, 440 Hz) dials the support queue; baresip agent 102 has logged in with
/// *600 and auto-answers the queue call. baresip records SIPp's 440 Hz; the capture of what
/// the lab sent SIPp holds baresip's 660 Hz. SIPp hangs up after 8 s and exits 0; queue_log
/// has ENTERQUEUE, CONNECT and COMPLETECALLER for 102.
#[test]
fn a_sipp_caller_talks_to_a_baresip_agent_both_ways() {
    if !require_peers(&["sipp", "baresip", "dumpcap", "tshark"]) {
        return;
    }
    let ws = PeerWorkspace::new("lab_peers_baresip_agent");
    let queue_log = ws.path("queue_log");
    let lab = RunningLab::start(quiet_lab(), queue_log.clone());
    let diagnose = |what: &str| {
        format!(
            "{what}\n--- lab printed:\n{}\n--- queue_log:\n{}",
            tail(&lab.printed.text(), 40),
            read_text(&queue_log)
        )
    };
    let target = lab.sip.to_string();
    // SIPp's RTP port: start-sipp.sh gives SIP port 5075 the media port 6050.
    let pcap = ws
        .start_capture("capture", "udp dst port 6050")
        .expect("dumpcap starts");
    let baresip = ws
        .start_baresip(
            "agent",
            5082,
            "102",
            "lab102",
            &["--registrar", &target, "--freq", "660"],
        )
        .expect("baresip starts");
    let mut ctl = baresip.connect();
    assert!(
        wait_until(Duration::from_secs(10), || lab
            .printed
            .text()
            .contains("SIP: 102 registered")),
        "{}",
        diagnose("baresip did not register")
    );
    ctl.command_wait(
        "dial",
        &format!("sip:*600@{target}"),
        "CALL_ESTABLISHED",
        Duration::from_secs(10),
    );
    ctl.wait_event("CALL_CLOSED", Duration::from_secs(10));
    assert!(
        wait_until(Duration::from_secs(5), || !lines_with(
            &read_text(&queue_log),
            "|support|102|ADDMEMBER|"
        )
        .is_empty()),
        "{}",
        diagnose("no ADDMEMBER for 102")
    );

    let args = caller_args(&target, "105", "600");
    let sipp = ws
        .start_sipp("caller", 5075, "uac_queue_call", &str_args(&args))
        .expect("sipp starts");
    let answered = ctl.wait_event("CALL_ESTABLISHED", Duration::from_secs(10));
    assert_eq!(answered["direction"], "incoming", "{answered}");
    assert_eq!(answered["peeruri"], "sip:105@lab", "{answered}");
    // SIPp hangs up 8 s after the lab answered it; the lab hangs up baresip.
    ctl.wait_event("CALL_CLOSED", Duration::from_secs(15));
    let code = sipp.wait(Duration::from_secs(10)).expect("sipp ends");
    assert_eq!(code, 0, "sipp failed its call:\n{}", sipp.report());
    ws.stop(&["capture"]);

    let log = read_text(&queue_log);
    let entered = lines_with(&log, "|support|NONE|ENTERQUEUE||105|");
    assert_eq!(entered.len(), 1, "{}", diagnose("one ENTERQUEUE"));
    let call_id = entered[0].split('|').nth(1).unwrap_or_default();
    for event in ["CONNECT", "COMPLETECALLER"] {
        assert_eq!(
            lines_with(&log, &format!("|{call_id}|support|102|{event}|")).len(),
            1,
            "{}",
            diagnose(&format!("no {event} for 102"))
        );
    }

    // baresip heard SIPp's 440 Hz (its first recording is the *600 call's).
    let recordings = received_recordings(&baresip.rec_dir);
    assert!(recordings.len() >= 2, "{recordings:?}");
    let (rate, heard) = read_wav(&recordings[1]);
    assert!(heard.len() > rate as usize * 5, "{} samples", heard.len());
    let tone = peak_power(&heard, rate, 440.0);
    let other = peak_power(&heard, rate, 660.0).max(peak_power(&heard, rate, 1000.0));
    assert!(
        tone > 5.0e6 && tone > 20.0 * other,
        "SIPp's 440 Hz at baresip: {tone:.0}, 660/1000 Hz {other:.0}"
    );

    // SIPp was sent baresip's 660 Hz, not its own tone back.
    let sent = rtp_audio_to(&pcap, 6050);
    assert!(
        sent.len() > 8000 * 5,
        "{} samples of RTP to SIPp in {}",
        sent.len(),
        pcap.display()
    );
    let voice = peak_power(&sent, 8000, 660.0);
    let echo = peak_power(&sent, 8000, 440.0).max(peak_power(&sent, 8000, 1000.0));
    assert!(
        voice > 5.0e6 && voice > 20.0 * echo,
        "baresip's 660 Hz at SIPp: {voice:.0}, 440/1000 Hz {echo:.0}"
    );
    eprintln!(
        "lab_peers baresip agent: 440 Hz at baresip {tone:.0} (other {other:.0}); 660 Hz at SIPp {voice:.0} (other {echo:.0}); {} samples to SIPp",
        sent.len()
    );
    drop(ctl);
}

/// A SIPp agent: SIPp registers 103 (digest) from port 5077, logs it in by calling *600 (the
/// lab answers, beeps, hangs up), then a SIPp UAS on 5077 — where the lab rings 103 — answers
/// the queue call of a SIPp caller (105). Every SIPp run exits 0, and queue_log has
/// ENTERQUEUE, CONNECT and COMPLETECALLER with 103 as the agent.
#[test]
fn a_sipp_caller_is_answered_by_a_sipp_agent() {
    if !require_peers(&["sipp"]) {
        return;
    }
    let ws = PeerWorkspace::new("lab_peers_sipp_agent");
    let queue_log = ws.path("queue_log");
    let lab = RunningLab::start(quiet_lab(), queue_log.clone());
    let diagnose = |what: &str| {
        format!(
            "{what}\n--- lab printed:\n{}\n--- queue_log:\n{}",
            tail(&lab.printed.text(), 40),
            read_text(&queue_log)
        )
    };
    let target = lab.sip.to_string();
    let register = [
        target.as_str(),
        "-s",
        "103",
        "-au",
        "103",
        "-ap",
        "lab103",
        "-m",
        "1",
    ];
    let code = ws
        .run_sipp_fg("register", 5077, "uac_register", &register)
        .expect("sipp runs");
    assert_eq!(
        code,
        0,
        "REGISTER:\n{}\n{}",
        ws.sipp("register").report(),
        diagnose("")
    );
    // The login call comes from another port: the lab rings 103 where it registered from.
    let login = caller_args(&target, "103", "*600");
    let code = ws
        .run_sipp_fg("login", 5078, "uac_queue_call", &str_args(&login))
        .expect("sipp runs");
    assert_eq!(code, 0, "*600:\n{}", ws.sipp("login").report());
    assert!(
        wait_until(Duration::from_secs(5), || !lines_with(
            &read_text(&queue_log),
            "|support|103|ADDMEMBER|"
        )
        .is_empty()),
        "{}",
        diagnose("no ADDMEMBER for 103")
    );

    let agent = ws
        .start_sipp("agent", 5077, "uas_answer_rtp", &["-m", "1"])
        .expect("sipp agent starts");
    let args = caller_args(&target, "105", "600");
    let caller = ws
        .start_sipp("caller", 5075, "uac_queue_call", &str_args(&args))
        .expect("sipp caller starts");
    let caller_code = caller.wait(Duration::from_secs(15)).expect("caller ends");
    assert_eq!(caller_code, 0, "caller:\n{}", caller.report());
    let agent_code = agent.wait(Duration::from_secs(10)).expect("agent ends");
    assert_eq!(
        agent_code,
        0,
        "agent:\n{}\n{}",
        agent.report(),
        diagnose("")
    );
    let invite = agent.messages();
    assert!(
        invite.contains("From: \"support: 105\" <sip:105@lab>"),
        "the lab rang the SIPp agent with the caller's ID:\n{}",
        tail(&invite, 40)
    );

    let log = read_text(&queue_log);
    let entered = lines_with(&log, "|support|NONE|ENTERQUEUE||105|");
    assert_eq!(entered.len(), 1, "{}", diagnose("one ENTERQUEUE"));
    let call_id = entered[0].split('|').nth(1).unwrap_or_default();
    for event in ["CONNECT", "COMPLETECALLER"] {
        assert_eq!(
            lines_with(&log, &format!("|{call_id}|support|103|{event}|")).len(),
            1,
            "{}",
            diagnose(&format!("no {event} for 103"))
        );
    }
    assert!(lines_with(&log, "|ABANDON|").is_empty(), "{log}");
    eprintln!(
        "lab_peers SIPp agent: {:?}",
        lines_with(&log, &format!("|{call_id}|"))
    );
}
