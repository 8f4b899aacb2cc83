//! Real two-way audio and DTMF against baresip: a tone sent by each side is detected at the
//! other at the right frequency and level (Goertzel), for every codec both support (PCMU,
//! PCMA, G.722, and Opus in builds with the `opus` feature), and RFC 4733 digits cross both
//! ways.

mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ringside::media::tones::goertzel;
use support::{require_peers, PeerWorkspace, ShellProcess};

const QUICK: Duration = Duration::from_secs(10);
const RINGSIDE_TONE: f64 = 1000.0;
const BARESIP_TONE: f64 = 660.0;

fn write_tone(path: &Path, freq: f64) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create tone");
    // 1 s exactly: a whole number of cycles, so the looped file has no click.
    for i in 0..8000 {
        let s = 12_000.0 * (2.0 * std::f64::consts::PI * freq * f64::from(i) / 8000.0).sin();
        w.write_sample(s as i16).expect("sample");
    }
    w.finalize().expect("finalize");
}

/// (rate, samples) of a mono or stereo WAV, mixed to mono.
fn read_wav(path: &Path) -> (u32, Vec<i16>) {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = r.spec();
    let samples: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap_or(0)).collect();
    let channels = usize::from(spec.channels.max(1));
    let mono = samples
        .chunks(channels)
        .map(|c| (c.iter().map(|s| i32::from(*s)).sum::<i32>() / c.len() as i32) as i16)
        .collect();
    (spec.sample_rate, mono)
}

/// The tone's power must dominate: at least 20× any other probe frequency, and loud.
fn assert_tone(what: &str, path: &Path, freq: f64) {
    let (rate, samples) = read_wav(path);
    assert!(
        samples.len() > rate as usize * 2,
        "{what}: only {} samples in {}",
        samples.len(),
        path.display()
    );
    // Skip the first half second (call setup, jitter buffer fill).
    let body = &samples[(rate / 2) as usize..];
    let at = goertzel(body, rate, freq);
    for other in [440.0, 660.0, 1000.0, 1400.0, 2000.0] {
        if (other - freq).abs() < 1.0 {
            continue;
        }
        let off = goertzel(body, rate, other);
        assert!(
            at > 20.0 * off,
            "{what}: {freq} Hz power {at:.0} vs {other} Hz {off:.0}"
        );
    }
    // A sine of amplitude A has Goertzel power A²/2; our 12000-amplitude tone through G.711
    // (and baresip's 0.5 full scale) must arrive at least at a quarter of that amplitude.
    assert!(
        at > (3000.0f64 * 3000.0) / 2.0,
        "{what}: {freq} Hz too quiet: {at:.0}"
    );
}

/// baresip's newest recording whose name contains `marker` ("-dec": what it received).
/// baresip builds the path in a fixed-size buffer, so under a long work dir the ".wav" is cut
/// off; the file is still a complete WAV. It is finished when the call closes.
fn newest(dir: &Path, marker: &str) -> PathBuf {
    let matches = |p: &Path| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().contains(marker))
    };
    support::wait_until(Duration::from_secs(5), || {
        std::fs::read_dir(dir)
            .map(|d| d.flatten().any(|e| matches(&e.path())))
            .unwrap_or(false)
    });
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| matches(p))
        .collect();
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("no recording named *{marker}* in {}", dir.display()))
}

fn shell(ws: &PeerWorkspace, codec: &str, extra: &str) -> (ShellProcess, PathBuf) {
    let tone = ws.path("ringside-tone.wav");
    write_tone(&tone, RINGSIDE_TONE);
    let rec = ws.path(&format!("ringside-heard-{codec}.wav"));
    let config = ws.write_config(
        &format!("ringside-{codec}.toml"),
        &format!(
            "[account]\nusername = \"alice\"\npassword = \"alice123\"\ndomain = \"127.0.0.1\"\n{extra}\n\
             [network]\nbind = \"127.0.0.1:5090\"\n\
             [audio]\ndevice = \"file\"\nfile_in = \"{}\"\nfile_out = \"{}\"\ncodecs = [\"{codec}\"]\n",
            tone.display(),
            rec.display()
        ),
    );
    let log = ws.path("ringside.log");
    let args: Vec<&OsStr> = vec![
        OsStr::new("--log-file"),
        log.as_os_str(),
        OsStr::new("--config"),
        config.as_os_str(),
        OsStr::new("shell"),
        OsStr::new("--json"),
        OsStr::new("--no-register"),
    ];
    let mut rs =
        ShellProcess::spawn(Path::new(env!("CARGO_BIN_EXE_ringside")), &args).expect("ringside");
    rs.expect("ready", QUICK);
    (rs, rec)
}

#[test]
fn ringside_calls_baresip_audio_and_dtmf_both_ways() {
    if !require_peers(&["baresip"]) {
        return;
    }
    let mut codecs = vec![
        ("PCMU", "PCMU/8000/1"),
        ("PCMA", "PCMA/8000/1"),
        ("G722", "G722/16000/1"),
    ];
    if cfg!(feature = "opus") {
        codecs.push(("opus", "opus/48000/2"));
    }
    for (codec, baresip_codec) in codecs {
        let ws = PeerWorkspace::new(&format!("media_out_{codec}"));
        let bob = ws
            .start_baresip(
                "bob",
                5080,
                "bob",
                "bob123",
                &["--no-register", "--freq", "660", "--codecs", baresip_codec],
            )
            .expect("baresip");
        let mut ctl = bob.connect();
        let (mut rs, heard) = shell(&ws, codec, "");
        rs.send("dial sip:bob@127.0.0.1:5080");
        let answered = rs.expect("answered", QUICK);
        assert_eq!(answered["codec"], codec);
        let media = rs.expect("media", QUICK);
        // baresip answers with telephone-event/8000 only, even beside Opus (whose 48000 Hz
        // events we offer too); both sides count durations on the stream's clock anyway.
        assert_eq!(media["telephone_event"], 101, "{media}");
        assert_eq!(media["telephone_event_clock"], 8000, "{media}");
        ctl.wait_event("CALL_ESTABLISHED", QUICK);
        std::thread::sleep(Duration::from_millis(1500));
        // Ours to baresip, as RFC 4733 events.
        rs.send("dtmf 19#");
        for key in ["1", "9", "#"] {
            let e = ctl.wait_event("CALL_DTMF_START", QUICK);
            assert_eq!(e["param"], key, "{e}");
        }
        // baresip's to us.
        ctl.command("sndcode", "47*");
        for key in ["4", "7", "*"] {
            let e = rs.expect("dtmf", QUICK);
            assert_eq!(e["digit"], key, "{e}");
            // Durations on the stream's clock, as baresip counts them, read right for every
            // codec, Opus (48 kHz beside telephone-event/8000) included.
            let ms = e["duration_ms"].as_u64().unwrap_or(0);
            assert!((40..=400).contains(&ms), "{codec}: {e}");
        }
        rs.send("stats");
        let stats = rs.expect("calls", QUICK);
        let media = &stats["calls"][0]["media"];
        assert!(
            media["packets_received"].as_u64().unwrap_or(0) > 50,
            "{stats}"
        );
        assert!(
            media["mos"].as_f64().unwrap_or(0.0) > 4.0,
            "a clean loopback call: {stats}"
        );
        std::thread::sleep(Duration::from_millis(1000));
        rs.send("hangup");
        rs.expect("call_ended", QUICK);
        ctl.wait_event("CALL_CLOSED", QUICK);
        rs.quit(QUICK);
        assert_tone(
            &format!("{codec}: ringside heard baresip"),
            &heard,
            BARESIP_TONE,
        );
        let dec = newest(&bob.rec_dir, "-dec");
        assert_tone(
            &format!("{codec}: baresip heard ringside"),
            &dec,
            RINGSIDE_TONE,
        );
    }
}

#[test]
fn baresip_calls_ringside_and_audio_flows_both_ways() {
    if !require_peers(&["baresip"]) {
        return;
    }
    // baresip offers all of these; ringside answers with the one its config allows.
    let offer = "opus/48000/2,G722/16000/1,PCMU/8000/1,PCMA/8000/1";
    let mut codecs = vec!["PCMU"];
    if cfg!(feature = "opus") {
        codecs.push("opus");
    }
    for codec in codecs {
        let ws = PeerWorkspace::new(&format!("media_in_{codec}"));
        let bob = ws
            .start_baresip(
                "bob",
                5080,
                "bob",
                "bob123",
                &["--no-register", "--freq", "660", "--codecs", offer],
            )
            .expect("baresip");
        let mut ctl = bob.connect();
        let (mut rs, heard) = shell(&ws, codec, "auto_answer = 1");
        ctl.command("dial", "sip:alice@127.0.0.1:5090");
        rs.expect("incoming_call", QUICK);
        let answered = rs.expect("answered", QUICK);
        assert_eq!(answered["codec"], codec, "{answered}");
        ctl.wait_event("CALL_ESTABLISHED", QUICK);
        std::thread::sleep(Duration::from_millis(3000));
        ctl.command("hangup", "");
        rs.expect("call_ended", QUICK);
        ctl.wait_event("CALL_CLOSED", QUICK);
        rs.quit(QUICK);
        assert_tone(
            &format!("{codec}: ringside heard baresip"),
            &heard,
            BARESIP_TONE,
        );
        let dec = newest(&bob.rec_dir, "-dec");
        assert_tone(
            &format!("{codec}: baresip heard ringside"),
            &dec,
            RINGSIDE_TONE,
        );
    }
}

/// Power at `freq` in `samples[from..to]` seconds of a mono signal.
fn power(samples: &[i16], rate: u32, from_s: f64, to_s: f64, freq: f64) -> f64 {
    let a = ((from_s * f64::from(rate)) as usize).min(samples.len());
    let b = ((to_s * f64::from(rate)) as usize).min(samples.len());
    goertzel(&samples[a..b], rate, freq)
}

#[test]
fn ringback_recording_and_busy_tone() {
    if !require_peers(&["baresip"]) {
        return;
    }
    let ws = PeerWorkspace::new("media_tones");
    let bob = ws
        .start_baresip(
            "bob",
            5080,
            "bob",
            "bob123",
            &["--no-register", "--freq", "660", "--answer", "manual"],
        )
        .expect("baresip");
    let mut ctl = bob.connect();
    let (mut rs, heard) = shell(&ws, "PCMU", "");
    rs.send("dial sip:bob@127.0.0.1:5080");
    rs.expect("ringing", QUICK);
    ctl.wait_event("CALL_INCOMING", QUICK);
    // Let the (US) ringback play: 440 + 480 Hz, 2 s on.
    std::thread::sleep(Duration::from_millis(1500));
    ctl.command("accept", "");
    rs.expect("answered", QUICK);
    rs.send("record");
    let started = rs.expect_where(
        "notice",
        |e| {
            e["message"]
                .as_str()
                .unwrap_or_default()
                .contains("recording to")
        },
        QUICK,
    );
    std::thread::sleep(Duration::from_millis(2000));
    rs.send("hangup");
    rs.expect("call_ended", QUICK);
    let saved = rs.expect_where(
        "notice",
        |e| {
            e["message"]
                .as_str()
                .unwrap_or_default()
                .contains("recording saved to")
        },
        QUICK,
    );
    let path = saved["message"]
        .as_str()
        .and_then(|m| m.split("recording saved to ").nth(1))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no path in {saved} (started: {started})"));

    // The recording: left = what we sent (1 kHz), right = what we heard (660 Hz).
    let mut reader = hound::WavReader::open(&path).expect("recording");
    let spec = reader.spec();
    assert_eq!(spec.channels, 2);
    let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap_or(0)).collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    let rate = spec.sample_rate;
    assert!(
        goertzel(&left, rate, 1000.0) > 20.0 * goertzel(&left, rate, 660.0),
        "left is the agent"
    );
    assert!(
        goertzel(&right, rate, 660.0) > 20.0 * goertzel(&right, rate, 1000.0),
        "right is the far end"
    );

    // What the agent heard before the answer: ringback, not silence.
    std::thread::sleep(Duration::from_millis(500));
    let (hrate, heard_samples) = read_wav(&heard);
    let ring = power(&heard_samples, hrate, 0.1, 1.2, 440.0)
        + power(&heard_samples, hrate, 0.1, 1.2, 480.0);
    let none = power(&heard_samples, hrate, 0.1, 1.2, 1000.0);
    assert!(
        ring > 1.0e5 && ring > 20.0 * none,
        "ringback {ring:.0} vs {none:.0}"
    );

    // Second call, refused by baresip: the busy tone (480 + 620 Hz) plays for 3 s.
    let busy_file = ws.path("ringside-heard-PCMU-2.wav");
    rs.send("dial sip:bob@127.0.0.1:5080");
    ctl.wait_event("CALL_INCOMING", QUICK);
    ctl.command("hangup", "");
    let ended = rs.expect("call_ended", QUICK);
    assert!(ended["code"].as_u64().is_some_and(|c| c >= 400), "{ended}");
    std::thread::sleep(Duration::from_millis(3800));
    let (brate, busy) = read_wav(&busy_file);
    let tail = busy.len() as f64 / f64::from(brate);
    let busy_power =
        power(&busy, brate, tail - 2.5, tail, 480.0) + power(&busy, brate, tail - 2.5, tail, 620.0);
    assert!(
        busy_power > 1.0e5,
        "busy tone after a {ended}: {busy_power:.0}"
    );
    rs.quit(QUICK);
}

/// SIPp answers with `a=ptime:40` and an RTP address the test listens on: ringside must frame
/// its PCMU in 40 ms packets (320 bytes, timestamps 320 apart, 25 a second), as the SDP asks.
#[test]
fn sends_the_packet_time_the_peer_asks_for() {
    if !require_peers(&["sipp"]) {
        return;
    }
    let ws = PeerWorkspace::new("media_ptime_40");
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").expect("RTP listener");
    rtp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let rtp_port = rtp.local_addr().expect("RTP address").port();
    // The stock answering scenario, but quiet, on our port, at 40 ms.
    let stock = support::peers_dir().join("sipp/uas_answer_rtp.xml");
    let scenario_text = std::fs::read_to_string(&stock)
        .unwrap_or_else(|e| panic!("{}: {e}", stock.display()))
        .replace(
            "m=audio [media_port] RTP/AVP",
            &format!("m=audio {rtp_port} RTP/AVP"),
        )
        .replace("a=ptime:20", "a=ptime:40")
        .replace("<exec rtp_stream=\"tone_pcmu.raw,-1,0\"/>", "")
        .replace("<exec rtp_stream=\"pause\"/>", "");
    assert!(scenario_text.contains("a=ptime:40") && scenario_text.contains(&rtp_port.to_string()));
    let scenario = ws.path("uas_answer_ptime40.xml");
    std::fs::write(&scenario, scenario_text).expect("write scenario");
    let uas = ws
        .start_sipp("uas", 5070, &scenario.to_string_lossy(), &["-m", "1"])
        .expect("sipp");
    let (mut rs, _heard) = shell(&ws, "PCMU", "");
    rs.send("dial sip:bob@127.0.0.1:5070");
    rs.expect("answered", QUICK);
    let media = rs.expect("media", QUICK);
    assert_eq!(media["ptime_ms"], 40, "{media}");

    let mut packets: Vec<(std::time::Instant, u32, usize)> = Vec::new();
    let mut buf = [0u8; 2048];
    while packets.len() < 30 {
        let (n, _) = rtp.recv_from(&mut buf).expect("ringside's RTP");
        let Some(header) = buf.get(..n.min(12)).filter(|h| h.len() == 12) else {
            continue;
        };
        if header[1] & 0x7f != 0 {
            continue; // RTCP or DTMF
        }
        let timestamp = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        packets.push((std::time::Instant::now(), timestamp, n - 12));
    }
    rs.send("hangup");
    rs.expect("call_ended", QUICK);
    assert_eq!(
        uas.wait(Duration::from_secs(20)).expect("sipp ends"),
        0,
        "{}",
        uas.report()
    );
    rs.quit(QUICK);

    for pair in packets.windows(2) {
        assert_eq!(pair[1].2, 320, "40 ms of PCMU is 320 bytes");
        assert_eq!(
            pair[1].1.wrapping_sub(pair[0].1),
            320,
            "timestamps step by 40 ms at 8 kHz"
        );
    }
    let (first, last) = (packets[0].0, packets[packets.len() - 1].0);
    let spacing = last.duration_since(first) / (packets.len() as u32 - 1);
    assert!(
        spacing > Duration::from_millis(32) && spacing < Duration::from_millis(48),
        "packets {spacing:?} apart"
    );
}
