//! The lab's SIP side against a real phone: baresip registers to the lab as agent 101 (digest
//! MD5), dials the connection code *600 (hears the 425 Hz confirmation, the lab hangs up,
//! queue_log gets ADDMEMBER), then auto-answers a simulated queue call presented with the
//! caller's number: it hears the caller's 400/800 Hz voice, the caller hangs up (the lab's
//! BYE), and queue_log has CONNECT and COMPLETECALLER for 101.
//!
//! Transfers, with ringside's own UA (through `net::sip`) on both phones: agent 101 answers a
//! queue call and blind-transfers it to 102, which is rung with the caller, answers, keeps
//! getting the caller's audio, and queue_log has BLINDTRANSFER.

mod support;

use std::time::Duration;

use ringside::config::{AudioConfig, AudioDeviceChoice};
use ringside::lab::config::LabConfig;
use ringside::lab::pbx::{CALLER_VOICE_HZ, CONFIRMATION_HZ};
use ringside::sip::ua::{Command, UaEvent};
use support::lab::{
    baresip_joins_support, incoming_call, lines_with, peak_power, read_wav, received_recordings,
    wait_async, RingsidePhone, RunningLab,
};
use support::{read_text, require_peers, tail, wait_until, PeerWorkspace};

#[test]
fn baresip_registers_logs_in_with_the_code_and_takes_a_queue_call() {
    if !require_peers(&["baresip"]) {
        return;
    }
    let ws = PeerWorkspace::new("lab_sip_baresip");
    let queue_log = ws.path("queue_log");
    let mut config = LabConfig::default();
    config.simulation.bots = 0;
    config.simulation.callers_per_minute = 30.0;
    config.simulation.patience_mean = Duration::from_secs(3600);
    config.simulation.talk_mean = Duration::from_secs(4);
    for queue in &mut config.queues {
        if queue.queue.name != "support" {
            queue.callers_per_minute = Some(0.0);
        }
    }
    let lab = RunningLab::start(config, queue_log.clone());
    let diagnose = |what: &str| lab.diagnose(&queue_log, what);

    let registrar = format!("127.0.0.1:{}", lab.sip.port());
    let baresip = ws
        .start_baresip("agent", 5080, "101", "lab101", &["--registrar", &registrar])
        .expect("baresip starts");
    let mut ctl = baresip.connect();
    assert!(
        wait_until(Duration::from_secs(10), || lab
            .printed
            .text()
            .contains("SIP: 101 registered")),
        "{}\n--- baresip:\n{}",
        diagnose("baresip did not register"),
        tail(&baresip.log_text(), 30)
    );

    // The connection code: answered, ~2 s of beeps, then the lab hangs up.
    baresip_joins_support(&mut ctl, &lab, &queue_log, "101", &registrar);

    // Callers have been waiting: one rings baresip, which answers by itself (baresip 1.0
    // reports an auto-answered call as CALL_ESTABLISHED without a CALL_INCOMING first).
    let incoming = ctl.wait_event("CALL_ESTABLISHED", Duration::from_secs(20));
    assert_eq!(incoming["direction"], "incoming", "{incoming}");
    let peer = incoming["peeruri"].as_str().unwrap_or_default();
    let number = peer
        .strip_prefix("sip:")
        .and_then(|p| p.strip_suffix("@lab"))
        .unwrap_or_default();
    assert!(
        number.starts_with("+32255501"),
        "caller ID in From: {incoming}"
    );
    assert_eq!(
        incoming["peerdisplayname"],
        format!("support: {number}").as_str(),
        "{incoming}"
    );
    // The virtual caller talks ~4 s (log-normal), then hangs up: the lab sends BYE.
    ctl.wait_event("CALL_CLOSED", Duration::from_secs(40));
    assert!(
        wait_until(Duration::from_secs(5), || {
            let log = read_text(&queue_log);
            !lines_with(&log, "|support|101|CONNECT|").is_empty()
                && !lines_with(&log, "|support|101|COMPLETECALLER|").is_empty()
        }),
        "{}",
        diagnose("no CONNECT / COMPLETECALLER for 101")
    );
    let log = read_text(&queue_log);
    let connect = lines_with(&log, "|support|101|CONNECT|");
    assert!(
        connect[0].contains("@ringside-lab"),
        "the agent leg id is the lab's Call-ID: {}",
        connect[0]
    );

    // What baresip heard: the confirmation on the first call, the caller's voice on the second.
    let recordings = received_recordings(&baresip.rec_dir);
    assert!(
        recordings.len() >= 2,
        "two recordings in {}: {recordings:?}",
        baresip.rec_dir.display()
    );
    let (rate, code_call) = read_wav(&recordings[0]);
    let beep = peak_power(&code_call, rate, CONFIRMATION_HZ);
    assert!(
        beep > 5.0e6 && beep > 20.0 * peak_power(&code_call, rate, 1000.0),
        "425 Hz confirmation power {beep:.0} in {}",
        recordings[0].display()
    );
    // Later queue calls may be under way: the first one is closed, its file complete.
    let (rate, queue_call) = read_wav(&recordings[1]);
    assert!(
        queue_call.len() > rate as usize,
        "{} samples",
        queue_call.len()
    );
    let low = peak_power(&queue_call, rate, CALLER_VOICE_HZ[0]);
    let high = peak_power(&queue_call, rate, CALLER_VOICE_HZ[1]);
    let other = peak_power(&queue_call, rate, 1000.0).max(peak_power(&queue_call, rate, 660.0));
    assert!(
        low > 5.0e6 && high > 5.0e6 && low.min(high) > 20.0 * other,
        "caller voice: 400 Hz {low:.0}, 800 Hz {high:.0}, other {other:.0}"
    );
    eprintln!(
        "lab_sip: 425 Hz {beep:.0}, 400 Hz {low:.0}, 800 Hz {high:.0}, other {other:.0}; {connect:?}"
    );
    drop(ctl);
}

/// Agent 101 (ringside) answers a queue call and blind-transfers it to 102 (ringside too):
/// the lab accepts the REFER, rings 102 with the caller, reports 200 by NOTIFY, 101's leg
/// ends, 102 keeps receiving the caller's audio, and queue_log has BLINDTRANSFER.
#[test]
fn a_ringside_agent_blind_transfers_a_queue_call_to_another_ringside_phone() {
    let ws = PeerWorkspace::new("lab_sip_blind_transfer");
    let queue_log = ws.path("queue_log");
    let mut config = LabConfig::default();
    config.simulation.bots = 0;
    config.simulation.callers_per_minute = 30.0;
    config.simulation.patience_mean = Duration::from_secs(3600);
    config.simulation.talk_mean = Duration::from_secs(30);
    for queue in &mut config.queues {
        if queue.queue.name != "support" {
            queue.callers_per_minute = Some(0.0);
        }
    }
    let lab = RunningLab::start(config, queue_log.clone());
    let diagnose = |what: &str| lab.diagnose(&queue_log, what);
    let recording = ws.path("colleague.wav");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (transferred, received) = runtime.block_on(async {
        let quiet = AudioConfig {
            device: AudioDeviceChoice::None,
            ..AudioConfig::default()
        };
        let recorded = AudioConfig {
            device: AudioDeviceChoice::File,
            file_out: Some(recording.clone()),
            ..AudioConfig::default()
        };
        let mut agent = RingsidePhone::start("101", lab.sip, quiet, (31_000, 31_098)).await;
        let mut colleague = RingsidePhone::start("102", lab.sip, recorded, (31_100, 31_198)).await;
        for phone in [&mut agent, &mut colleague] {
            phone.command(Command::Register);
            phone
                .wait_for(Duration::from_secs(10), |e| {
                    matches!(e, UaEvent::Registered { .. })
                })
                .await;
        }
        agent.command(Command::Dial {
            target: "*600".into(),
        });
        agent
            .wait_for(Duration::from_secs(10), |e| {
                matches!(e, UaEvent::CallEnded { .. })
            })
            .await;

        // A waiting caller rings 101, which answers by itself and talks for 2 s.
        let UaEvent::IncomingCall { call, from, .. } = agent
            .wait_for(Duration::from_secs(20), |e| incoming_call(e).is_some())
            .await
        else {
            unreachable!("matched");
        };
        assert!(from.starts_with("sip:+32255501"), "{from}");
        agent
            .wait_for(
                Duration::from_secs(5),
                |e| matches!(e, UaEvent::Answered { call: c, .. } if *c == call),
            )
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        agent.command(Command::Transfer {
            call,
            target: "102".into(),
        });

        // 102 is rung with the caller's number and answers; 101 hears "200 OK" and leaves.
        let UaEvent::IncomingCall {
            call: transferred,
            from: offered,
            ..
        } = colleague
            .wait_for(Duration::from_secs(10), |e| incoming_call(e).is_some())
            .await
        else {
            unreachable!("matched");
        };
        assert_eq!(offered, from, "102 is offered the caller, not the agent");
        colleague
            .wait_for(
                Duration::from_secs(5),
                |e| matches!(e, UaEvent::Answered { call: c, .. } if *c == transferred),
            )
            .await;
        let done = agent
            .wait_for(Duration::from_secs(10), |e| {
                matches!(e, UaEvent::TransferDone { .. })
            })
            .await;
        assert!(
            matches!(done, UaEvent::TransferDone { success: true, .. }),
            "{done:?}"
        );
        agent
            .wait_for(
                Duration::from_secs(10),
                |e| matches!(e, UaEvent::CallEnded { call: c, .. } if *c == call),
            )
            .await;
        assert!(
            agent
                .events
                .iter()
                .any(|e| matches!(e, UaEvent::TransferProgress { code: 100, .. })),
            "the NOTIFY 100 Trying reached 101: {:#?}",
            agent.events
        );

        // The caller's audio keeps flowing to 102 after 101 is gone (the media task
        // reports its counters every 2 s, so measure over a longer span).
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let before = colleague.media_stats(transferred).await;
        tokio::time::sleep(Duration::from_millis(4500)).await;
        let after = colleague.media_stats(transferred).await;
        let received = after
            .packets_received
            .saturating_sub(before.packets_received);
        colleague.command(Command::Hangup { call: transferred });
        colleague
            .wait_for(
                Duration::from_secs(10),
                |e| matches!(e, UaEvent::CallEnded { call: c, .. } if *c == transferred),
            )
            .await;
        // The media task closes the recording once the call is over.
        tokio::time::sleep(Duration::from_millis(500)).await;
        (transferred, received)
    });
    // 20 ms packets: 50 a second; the counters cover at least 2.5 s of the 4.5 s.
    assert!(
        received >= 125,
        "RTP packets at 102 in 4.5 s after the transfer: {received}"
    );

    assert!(
        wait_until(Duration::from_secs(5), || !lines_with(
            &read_text(&queue_log),
            "|support|101|BLINDTRANSFER|102|lab|"
        )
        .is_empty()),
        "{}",
        diagnose("no BLINDTRANSFER to 102 for 101")
    );
    let log = read_text(&queue_log);
    let blind = lines_with(&log, "|BLINDTRANSFER|")[0];
    let fields: Vec<&str> = blind.split('|').collect();
    assert_eq!(fields.len(), 10, "{blind}");
    assert_eq!(fields[9], "1", "original position: {blind}");
    let talk: u64 = fields[8].parse().expect("talk time");
    assert!((2..=4).contains(&talk), "talk time in s: {blind}");
    assert!(
        lines_with(&log, "|COMPLETEAGENT|").is_empty()
            && lines_with(&log, "|COMPLETECALLER|").is_empty(),
        "{log}"
    );
    assert!(
        lab.printed
            .text()
            .contains("SIP: 101 transferred ringside-sim-"),
        "{}",
        lab.printed.text()
    );

    // What 102 heard: the caller's two pitches.
    let (rate, heard) = read_wav(&recording);
    assert!(heard.len() > rate as usize * 2, "{} samples", heard.len());
    let low = peak_power(&heard, rate, CALLER_VOICE_HZ[0]);
    let high = peak_power(&heard, rate, CALLER_VOICE_HZ[1]);
    assert!(
        low > 5.0e6 && high > 5.0e6,
        "caller voice at 102: 400 Hz {low:.0}, 800 Hz {high:.0}"
    );
    eprintln!(
        "lab_sip transfer: call {transferred:?} at 102: {received} RTP packets counted in 4.5 s, 400 Hz {low:.0}, 800 Hz {high:.0}; {blind}"
    );
}

/// A SIPp caller (account 105, digest auth) dials the support queue's extension 600 and
/// streams a 440 Hz tone: the lab answers at once with hold music and queues it. Ringside agent
/// 101 logs in with *600 while the caller waits, is rung with the caller's number, answers by
/// itself and records what it hears: SIPp's tone, no hold music. SIPp hangs up after 8 s, so
/// queue_log has ENTERQUEUE, CONNECT and COMPLETECALLER, and SIPp counts its call successful.
#[test]
fn a_sipp_caller_waits_in_a_queue_then_talks_to_a_ringside_agent() {
    if !require_peers(&["sipp"]) {
        return;
    }
    let ws = PeerWorkspace::new("lab_sip_queue_caller");
    let queue_log = ws.path("queue_log");
    let mut config = LabConfig::default();
    config.simulation.bots = 0;
    config.simulation.callers_per_minute = 0.0;
    let lab = RunningLab::start(config, queue_log.clone());
    let diagnose = |what: &str| lab.diagnose(&queue_log, what);
    let recording = ws.path("agent.wav");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let target = lab.sip.to_string();
    // SIPp signs "sip:HOST:PORT" unless told; the lab wants the Request-URI, as RFC 2617 says.
    let auth_uri = format!("600@{target}");
    let sipp = runtime.block_on(async {
        let recorded = AudioConfig {
            device: AudioDeviceChoice::File,
            file_out: Some(recording.clone()),
            ..AudioConfig::default()
        };
        let mut agent = RingsidePhone::start("101", lab.sip, recorded, (31_200, 31_298)).await;
        agent.command(Command::Register);
        agent
            .wait_for(Duration::from_secs(10), |e| {
                matches!(e, UaEvent::Registered { .. })
            })
            .await;

        let sipp = ws
            .start_sipp(
                "caller",
                5075,
                "uac_queue_call",
                &[
                    &target,
                    "-key",
                    "caller",
                    "105",
                    "-s",
                    "600",
                    "-au",
                    "105",
                    "-ap",
                    "lab105",
                    "-auth_uri",
                    &auth_uri,
                    "-m",
                    "1",
                ],
            )
            .expect("sipp starts");
        let entered = wait_async(Duration::from_secs(10), || {
            !lines_with(&read_text(&queue_log), "|support|NONE|ENTERQUEUE||105|1").is_empty()
        })
        .await;
        assert!(
            entered,
            "{}",
            diagnose("the SIPp caller did not enter support")
        );
        // The caller waits a moment with the music, then the agent logs in.
        tokio::time::sleep(Duration::from_secs(1)).await;
        agent.command(Command::Dial {
            target: "*600".into(),
        });
        agent
            .wait_for(Duration::from_secs(10), |e| {
                matches!(e, UaEvent::CallEnded { .. })
            })
            .await;
        let UaEvent::IncomingCall { call, from, name } = agent
            .wait_for(Duration::from_secs(10), |e| incoming_call(e).is_some())
            .await
        else {
            unreachable!("matched");
        };
        assert_eq!(from, "sip:105@lab");
        assert_eq!(name.as_deref(), Some("support: 105"));
        agent
            .wait_for(
                Duration::from_secs(5),
                |e| matches!(e, UaEvent::Answered { call: c, .. } if *c == call),
            )
            .await;
        // SIPp hangs up 8 s after the lab answered it; the lab hangs up the agent.
        agent
            .wait_for(
                Duration::from_secs(15),
                |e| matches!(e, UaEvent::CallEnded { call: c, .. } if *c == call),
            )
            .await;
        // The media task closes the recording once the call is over.
        tokio::time::sleep(Duration::from_millis(500)).await;
        sipp
    });
    let code = sipp.wait(Duration::from_secs(10)).expect("sipp ends");
    assert_eq!(code, 0, "sipp failed a call:\n{}", sipp.report());

    let log = read_text(&queue_log);
    let entered = lines_with(&log, "|ENTERQUEUE|");
    assert_eq!(entered.len(), 1, "{log}");
    let call_id = entered[0].split('|').nth(1).unwrap_or_default().to_owned();
    assert!(
        sipp.messages().contains(&format!("Call-ID: {call_id}")),
        "the queue call id is SIPp's Call-ID: {call_id}"
    );
    for event in ["CONNECT", "COMPLETECALLER"] {
        assert_eq!(
            lines_with(&log, &format!("|{call_id}|support|101|{event}|")).len(),
            1,
            "{}",
            diagnose(&format!("no {event} for the SIPp caller"))
        );
    }
    assert!(lines_with(&log, "|ABANDON|").is_empty(), "{log}");

    // What 101 heard on its second call (the file device numbers the calls after the first):
    // SIPp's 440 Hz, and none of the hold music's C major notes.
    let (rate, heard) = read_wav(&ws.path("agent-2.wav"));
    assert!(
        heard.len() > rate as usize * 3 / 2,
        "{} samples at {rate} Hz\n{}",
        heard.len(),
        diagnose("a short recording")
    );
    let tone = peak_power(&heard, rate, 440.0);
    let music = peak_power(&heard, rate, 261.63).max(peak_power(&heard, rate, 329.63));
    assert!(
        tone > 5.0e6 && tone > 50.0 * music,
        "the caller's 440 Hz at the agent: {tone:.0}, hold music {music:.0}"
    );
    eprintln!("lab_sip queue caller: 440 Hz {tone:.0}, music {music:.0}; {call_id}");
}

/// Ends that close a caller's ENTERQUEUE in queue_log.
const QUEUE_CALL_ENDS: [&str; 7] = [
    "COMPLETEAGENT",
    "COMPLETECALLER",
    "ABANDON",
    "EXITWITHTIMEOUT",
    "EXITEMPTY",
    "BLINDTRANSFER",
    "ATTENDEDTRANSFER",
];

/// 20 SIPp callers a second for 10 s into support, answered by 100 bots: SIPp fails no call,
/// and every ENTERQUEUE in queue_log has its end (a bot's COMPLETE*, or ABANDON when SIPp
/// hung up first). The long version is benches/lab_load.sh.
#[test]
fn sipp_callers_at_20_a_second_into_a_queue_with_bots_are_all_carried_and_ended() {
    if !require_peers(&["sipp"]) {
        return;
    }
    let ws = PeerWorkspace::new("lab_sip_queue_load");
    let queue_log = ws.path("queue_log");
    let mut config = LabConfig::default();
    config.simulation.bots = 100;
    config.simulation.callers_per_minute = 0.0;
    // Quick bots, so the run ends soon after the last arrival.
    config.simulation.talk_mean = Duration::from_secs(1);
    config.simulation.answer_delay_min = Duration::from_millis(200);
    config.simulation.answer_delay_max = Duration::from_secs(1);
    config.simulation.no_answer_pct = 0.0;
    for queue in &mut config.queues {
        queue.queue.wrapup = Duration::ZERO;
    }
    let lab = RunningLab::start(config, queue_log.clone());
    let target = lab.sip.to_string();
    let auth_uri = format!("600@{target}");
    let calls = 200;
    let sipp = ws
        .start_sipp(
            "load",
            5076,
            "uac_queue_call",
            &[
                &target,
                "-key",
                "caller",
                "105",
                "-s",
                "600",
                "-au",
                "105",
                "-ap",
                "lab105",
                "-auth_uri",
                &auth_uri,
                "-r",
                "20",
                "-m",
                "200",
            ],
        )
        .expect("sipp starts");
    let code = sipp.wait(Duration::from_secs(40)).expect("sipp ends");
    let log = read_text(&queue_log);
    assert_eq!(
        code,
        0,
        "sipp failed calls:\n{}\n--- lab printed:\n{}",
        sipp.report(),
        tail(&lab.printed.text(), 40)
    );
    // The last ends reach the file after SIPp's last 200 OK.
    let mut open: Vec<String> = Vec::new();
    let mut entered = 0;
    wait_until(Duration::from_secs(5), || {
        let log = read_text(&queue_log);
        let mut waiting = std::collections::BTreeSet::new();
        entered = 0;
        for line in log.lines() {
            let fields: Vec<&str> = line.split('|').collect();
            let (Some(call), Some(event)) = (fields.get(1), fields.get(4)) else {
                continue;
            };
            if *event == "ENTERQUEUE" {
                entered += 1;
                waiting.insert((*call).to_owned());
            } else if QUEUE_CALL_ENDS.contains(event) {
                waiting.remove(*call);
            }
        }
        open = waiting.into_iter().collect();
        open.is_empty()
    });
    assert_eq!(entered, calls, "{}", tail(&log, 20));
    assert!(open.is_empty(), "calls without an end: {open:?}");
    let log = read_text(&queue_log);
    let connected = lines_with(&log, "|CONNECT|").len();
    let completed =
        lines_with(&log, "|COMPLETEAGENT|").len() + lines_with(&log, "|COMPLETECALLER|").len();
    assert!(
        connected >= calls / 2,
        "bots answered {connected} of {calls}"
    );
    assert_eq!(completed, connected, "every connected call completed");
    eprintln!(
        "lab_sip load: {calls} SIPp calls at 20/s, {connected} answered by bots, {} abandoned",
        lines_with(&log, "|ABANDON|").len()
    );
}
