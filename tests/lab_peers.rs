//! The lab PBX between real peers on loopback: SIPp callers into a queue answered by a baresip
//! agent and by a SIPp agent, hold and resume through the lab's B2BUA, and transfers made by
//! baresip. Audio is checked where it lands: baresip's recordings, ringside's file device, and
//! a packet capture of what the lab sent SIPp (SIPp records nothing itself).

mod support;

use std::path::Path;
use std::process::Command as Process;
use std::time::Duration;

use ringside::config::{AudioConfig, AudioDeviceChoice};
use ringside::lab::config::LabConfig;
use ringside::lab::pbx::HOLD_MUSIC_CHORDS;
use ringside::media::codec::g711::{alaw_to_linear, ulaw_to_linear};
use ringside::sip::ua::{Command, UaEvent};
use support::lab::{
    baresip_joins_support, incoming_call, lines_with, peak_power, read_wav, received_recordings,
    wait_async, RingsidePhone, RunningLab,
};
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
    let diagnose = |what: &str| lab.diagnose(&queue_log, what);
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
    baresip_joins_support(&mut ctl, &lab, &queue_log, "102", &target);

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
    ws.stop(&["baresip-agent"]);
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
    let diagnose = |what: &str| lab.diagnose(&queue_log, what);
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

/// What a recording holds, 200 ms at a time: for each window the label of the sound (a set of
/// frequencies) that dominates it tenfold, or '.' when none does; runs shorter than 600 ms
/// are dropped and repeats merged, so "MTMT" reads "music, talk, music, talk".
fn timeline(samples: &[i16], rate: u32, sounds: &[(char, &[f64])]) -> String {
    let window = (rate / 5) as usize;
    let labels: Vec<char> = samples
        .chunks_exact(window.max(1))
        .map(|w| {
            let powers: Vec<f64> = sounds
                .iter()
                .map(|(_, freqs)| {
                    freqs
                        .iter()
                        .map(|f| support::lab::peak_power(w, rate, *f))
                        .fold(0.0, f64::max)
                })
                .collect();
            sounds
                .iter()
                .zip(&powers)
                .find(|(_, p)| {
                    **p > 1.0e6
                        && powers
                            .iter()
                            .all(|other| *other == **p || **p > 10.0 * other)
                })
                .map_or('.', |((label, _), _)| *label)
        })
        .collect();
    let mut runs: Vec<(char, usize)> = Vec::new();
    for label in labels {
        match runs.last_mut() {
            Some((last, n)) if *last == label => *n += 1,
            _ => runs.push((label, 1)),
        }
    }
    let mut merged = String::new();
    for (label, n) in runs {
        if n >= 3 && !merged.ends_with(label) {
            merged.push(label);
        }
    }
    merged
}

/// Every note of the hold music.
fn music_notes() -> Vec<f64> {
    let mut notes: Vec<f64> = HOLD_MUSIC_CHORDS.iter().flatten().copied().collect();
    notes.sort_by(f64::total_cmp);
    notes.dedup();
    notes
}

/// 1 s of `hz` (8 kHz mono, -6 dBFS), which ringside's file device plays in a loop.
fn write_tone(path: &Path, hz: f64) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).expect("a WAV file");
    for n in 0..8000 {
        let t = f64::from(n) / 8000.0;
        let sample = (16_000.0 * (std::f64::consts::TAU * hz * t).sin()).round() as i16;
        writer.write_sample(sample).expect("written");
    }
    writer.finalize().expect("finished");
}

const AGENT_TONE_HZ: f64 = 1000.0;

/// baresip (105, 660 Hz) calls the support queue and waits with the music; ringside agent 101
/// (1000 Hz) logs in, answers, puts the caller on hold, resumes after 3 s and hangs up 3 s
/// later. The lab answers the hold re-INVITE with the RFC 3264 direction; baresip hears
/// music, the agent, music on hold, the agent again; the agent hears baresip, nothing while
/// it holds, baresip again.
#[test]
fn a_ringside_agent_holds_and_resumes_a_baresip_caller_through_the_lab() {
    if !require_peers(&["baresip"]) {
        return;
    }
    let ws = PeerWorkspace::new("lab_peers_hold");
    let queue_log = ws.path("queue_log");
    let lab = RunningLab::start(quiet_lab(), queue_log.clone());
    let diagnose = |what: &str| lab.diagnose(&queue_log, what);
    let target = lab.sip.to_string();
    let tone = ws.path("agent-in.wav");
    write_tone(&tone, AGENT_TONE_HZ);
    let recording = ws.path("agent.wav");
    let baresip = ws
        .start_baresip(
            "caller",
            5084,
            "105",
            "lab105",
            &["--registrar", &target, "--freq", "660"],
        )
        .expect("baresip starts");
    let mut ctl = baresip.connect();
    assert!(
        wait_until(Duration::from_secs(10), || lab
            .printed
            .text()
            .contains("SIP: 105 registered")),
        "{}",
        diagnose("baresip did not register")
    );
    ctl.command_wait(
        "dial",
        &format!("sip:600@{target}"),
        "CALL_ESTABLISHED",
        Duration::from_secs(10),
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let re_invites = runtime.block_on(async {
        let audio = AudioConfig {
            device: AudioDeviceChoice::File,
            file_in: Some(tone.clone()),
            file_out: Some(recording.clone()),
            ..AudioConfig::default()
        };
        let mut agent = RingsidePhone::start("101", lab.sip, audio, (31_300, 31_398)).await;
        agent.command(Command::Register);
        agent
            .wait_for(Duration::from_secs(10), |e| {
                matches!(e, UaEvent::Registered { .. })
            })
            .await;
        // The caller has the music for a while first.
        tokio::time::sleep(Duration::from_secs(1)).await;
        agent.command(Command::Dial {
            target: "*600".into(),
        });
        agent
            .wait_for(Duration::from_secs(10), |e| {
                matches!(e, UaEvent::CallEnded { .. })
            })
            .await;
        let call = agent
            .wait_for(Duration::from_secs(10), |e| incoming_call(e).is_some())
            .await;
        let call = incoming_call(&call).expect("matched");
        agent
            .wait_for(
                Duration::from_secs(5),
                |e| matches!(e, UaEvent::Answered { call: c, .. } if *c == call),
            )
            .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        agent.command(Command::Hold { call });
        agent
            .wait_for(
                Duration::from_secs(5),
                |e| matches!(e, UaEvent::Held { call: c } if *c == call),
            )
            .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        agent.command(Command::Resume { call });
        agent
            .wait_for(
                Duration::from_secs(5),
                |e| matches!(e, UaEvent::Resumed { call: c } if *c == call),
            )
            .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        agent.command(Command::Hangup { call });
        agent
            .wait_for(
                Duration::from_secs(5),
                |e| matches!(e, UaEvent::CallEnded { call: c, .. } if *c == call),
            )
            .await;
        // The media task closes the recording once the call is over.
        wait_async(Duration::from_millis(500), || false).await;
        lab.printed.text()
    });
    ctl.wait_event("CALL_CLOSED", Duration::from_secs(10));
    let log = read_text(&queue_log);
    assert_eq!(
        lines_with(&log, "|support|101|COMPLETEAGENT|").len(),
        1,
        "{}",
        diagnose("no COMPLETEAGENT")
    );

    let notes = music_notes();
    let recordings = received_recordings(&baresip.rec_dir);
    assert!(!recordings.is_empty(), "{}", baresip.rec_dir.display());
    let (rate, heard) = read_wav(&recordings[0]);
    let caller_heard = timeline(&heard, rate, &[('M', &notes), ('T', &[AGENT_TONE_HZ])]);
    assert!(
        caller_heard.contains("MTMT"),
        "baresip heard {caller_heard:?} (M music, T the agent)\n{re_invites}"
    );

    let (rate, heard) = read_wav(&ws.path("agent-2.wav"));
    let agent_heard = timeline(&heard, rate, &[('C', &[660.0]), ('M', &notes)]);
    assert!(
        agent_heard.contains("C.C"),
        "the agent heard {agent_heard:?} (C the caller, . nothing)"
    );
    eprintln!("lab_peers hold: baresip heard {caller_heard}, the agent {agent_heard}");
    drop(ctl);
    ws.stop(&["baresip-caller"]);
}

/// baresip agent 102 answers a SIPp caller's queue call (440 Hz) and blind-transfers it with
/// its `transfer` command to 103, a second baresip: the lab accepts the REFER, rings 103 with
/// the caller's ID, 103 answers and records SIPp's tone, 102's leg ends, SIPp exits 0 after
/// its 8 s, and queue_log has BLINDTRANSFER to 103 (and no COMPLETE* for 102).
#[test]
fn a_baresip_agent_blind_transfers_a_sipp_caller_to_another_baresip() {
    if !require_peers(&["sipp", "baresip"]) {
        return;
    }
    let ws = PeerWorkspace::new("lab_peers_baresip_transfer");
    let queue_log = ws.path("queue_log");
    let lab = RunningLab::start(quiet_lab(), queue_log.clone());
    let diagnose = |what: &str| lab.diagnose(&queue_log, what);
    let target = lab.sip.to_string();
    let agent = ws
        .start_baresip(
            "agent",
            5082,
            "102",
            "lab102",
            &["--registrar", &target, "--freq", "660"],
        )
        .expect("baresip agent starts");
    let colleague = ws
        .start_baresip(
            "colleague",
            5086,
            "103",
            "lab103",
            &["--registrar", &target, "--freq", "880"],
        )
        .expect("baresip colleague starts");
    let mut agent_ctl = agent.connect();
    let mut colleague_ctl = colleague.connect();
    assert!(
        wait_until(Duration::from_secs(10), || {
            let printed = lab.printed.text();
            printed.contains("SIP: 102 registered") && printed.contains("SIP: 103 registered")
        }),
        "{}",
        diagnose("the baresips did not register")
    );
    baresip_joins_support(&mut agent_ctl, &lab, &queue_log, "102", &target);

    let args = caller_args(&target, "105", "600");
    let sipp = ws
        .start_sipp("caller", 5075, "uac_queue_call", &str_args(&args))
        .expect("sipp starts");
    let answered = agent_ctl.wait_event("CALL_ESTABLISHED", Duration::from_secs(10));
    assert_eq!(answered["peeruri"], "sip:105@lab", "{answered}");
    std::thread::sleep(Duration::from_secs(2));
    agent_ctl.command("transfer", &format!("sip:103@{target}"));

    let offered = colleague_ctl.wait_event("CALL_ESTABLISHED", Duration::from_secs(10));
    assert_eq!(offered["direction"], "incoming", "{offered}");
    assert_eq!(
        offered["peeruri"], "sip:105@lab",
        "the caller, not the agent: {offered}"
    );
    agent_ctl.wait_event("CALL_CLOSED", Duration::from_secs(10));
    // SIPp hangs up 8 s after the lab answered it; the lab hangs up 103.
    colleague_ctl.wait_event("CALL_CLOSED", Duration::from_secs(15));
    let code = sipp.wait(Duration::from_secs(10)).expect("sipp ends");
    assert_eq!(code, 0, "sipp failed its call:\n{}", sipp.report());

    assert!(
        wait_until(Duration::from_secs(5), || !lines_with(
            &read_text(&queue_log),
            "|support|102|BLINDTRANSFER|103|lab|"
        )
        .is_empty()),
        "{}",
        diagnose("no BLINDTRANSFER to 103")
    );
    let log = read_text(&queue_log);
    assert!(
        lines_with(&log, "|COMPLETEAGENT|").is_empty()
            && lines_with(&log, "|COMPLETECALLER|").is_empty(),
        "{log}"
    );

    // 103 heard SIPp's 440 Hz, not the agent's 660 Hz.
    let recordings = received_recordings(&colleague.rec_dir);
    assert!(!recordings.is_empty(), "{}", colleague.rec_dir.display());
    let (rate, heard) = read_wav(&recordings[0]);
    assert!(heard.len() > rate as usize * 3, "{} samples", heard.len());
    let tone = peak_power(&heard, rate, 440.0);
    let other = peak_power(&heard, rate, 660.0).max(peak_power(&heard, rate, 1000.0));
    assert!(
        tone > 5.0e6 && tone > 20.0 * other,
        "SIPp's 440 Hz at 103: {tone:.0}, 660/1000 Hz {other:.0}"
    );
    eprintln!(
        "lab_peers baresip transfer: 440 Hz at 103 {tone:.0} (other {other:.0}); {:?}",
        lines_with(&log, "|BLINDTRANSFER|")
    );
    // baresip unregisters as it stops: while the lab still answers, not into a 5 s wait.
    ws.stop(&["baresip-agent", "baresip-colleague"]);
}

/// Phone-to-phone through the lab with three baresips: 105 (440 Hz) calls 102, which
/// blind-transfers the call to 103 with its `transfer` command; 103 is rung as 105, answers
/// and records 105's tone; 102's call ends, 105's goes on until it hangs up, which ends 103's.
#[test]
fn a_baresip_phone_blind_transfers_its_phone_to_phone_call_to_a_third_baresip() {
    if !require_peers(&["baresip"]) {
        return;
    }
    let ws = PeerWorkspace::new("lab_peers_phone_transfer");
    let queue_log = ws.path("queue_log");
    let lab = RunningLab::start(quiet_lab(), queue_log.clone());
    let diagnose = |what: &str| {
        format!(
            "{what}\n--- lab printed:\n{}",
            tail(&lab.printed.text(), 40)
        )
    };
    let target = lab.sip.to_string();
    let registrar = ["--registrar", target.as_str()];
    let start = |name: &str, port: u16, user: &str, hz: &str| {
        let mut args = registrar.to_vec();
        args.extend(["--freq", hz]);
        ws.start_baresip(name, port, user, &format!("lab{user}"), &args)
            .expect("baresip starts")
    };
    let caller = start("caller", 5082, "105", "440");
    let callee = start("callee", 5084, "102", "660");
    let third = start("third", 5086, "103", "880");
    assert!(
        wait_until(Duration::from_secs(10), || {
            let printed = lab.printed.text();
            ["105", "102", "103"]
                .iter()
                .all(|user| printed.contains(&format!("SIP: {user} registered")))
        }),
        "{}",
        diagnose("the baresips did not register")
    );
    let mut caller_ctl = caller.connect();
    let mut callee_ctl = callee.connect();
    let mut third_ctl = third.connect();
    caller_ctl.command_wait(
        "dial",
        &format!("sip:102@{target}"),
        "CALL_ESTABLISHED",
        Duration::from_secs(10),
    );
    callee_ctl.wait_event("CALL_ESTABLISHED", Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(1));
    callee_ctl.command("transfer", &format!("sip:103@{target}"));
    let offered = third_ctl.wait_event("CALL_ESTABLISHED", Duration::from_secs(10));
    assert_eq!(
        offered["peeruri"], "sip:105@lab",
        "rung as the transferee: {offered}"
    );
    callee_ctl.wait_event("CALL_CLOSED", Duration::from_secs(10));
    assert!(
        wait_until(Duration::from_secs(5), || lab
            .printed
            .text()
            .contains("SIP: 102 transferred 105 to 103")),
        "{}",
        diagnose("no transfer reported")
    );
    std::thread::sleep(Duration::from_secs(3));
    caller_ctl.command("hangup", "");
    caller_ctl.wait_event("CALL_CLOSED", Duration::from_secs(5));
    third_ctl.wait_event("CALL_CLOSED", Duration::from_secs(5));
    assert!(
        read_text(&queue_log)
            .lines()
            .all(|l| !l.contains("TRANSFER")),
        "a phone call is none of queue_log's business"
    );

    let recordings = received_recordings(&third.rec_dir);
    assert!(!recordings.is_empty(), "{}", third.rec_dir.display());
    let (rate, heard) = read_wav(&recordings[0]);
    assert!(heard.len() > rate as usize * 2, "{} samples", heard.len());
    let voice = peak_power(&heard, rate, 440.0);
    let other = peak_power(&heard, rate, 660.0).max(peak_power(&heard, rate, 1000.0));
    assert!(
        voice > 5.0e6 && voice > 20.0 * other,
        "105's 440 Hz at 103: {voice:.0}, 660/1000 Hz {other:.0}"
    );
    eprintln!("lab_peers phone transfer: 440 Hz at 103 {voice:.0} (other {other:.0})");
    drop((caller_ctl, callee_ctl, third_ctl));
    ws.stop(&["baresip-caller", "baresip-callee", "baresip-third"]);
}
