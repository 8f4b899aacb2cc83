//! The sound card device on a machine without a sound card (CI, this one): opening fails with a
//! clear error, ALSA's complaints never reach stderr, and ALSA's `null` device carries real
//! streams through the lock-free rings.
#![cfg(feature = "sound-card")]

use std::process::Command;
use std::time::{Duration, Instant};

use ringside::media::device::AudioDevice;
use ringside::media::sound_card::{list_devices, SoundCard, SoundCardChoice};

const CHILD: &str = "RINGSIDE_SOUND_CARD_CHILD";

/// Runs one test of this file in a child process and returns its stderr: ALSA writes to the
/// file descriptor directly, so only another process can see what reached it.
fn stderr_of(test: &str) -> String {
    let exe = std::env::current_exe().expect("test binary");
    let output = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("run child");
    assert!(output.status.success(), "{test} failed: {output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn in_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

fn no_card_here() -> bool {
    !std::path::Path::new("/proc/asound/cards").exists()
        || std::fs::read_to_string("/proc/asound/cards")
            .map(|t| t.contains("no soundcards"))
            .unwrap_or(true)
}

#[test]
fn child_opens_the_default_card_through_ringside() {
    if !in_child() {
        return;
    }
    let error = SoundCard::open(&SoundCardChoice::default()).err();
    eprintln!(
        "child: ringside said {}",
        error.map(|e| e.to_string()).unwrap_or_default()
    );
}

#[test]
fn child_opens_the_default_card_through_cpal_directly() {
    if !in_child() {
        return;
    }
    use cpal::traits::{DeviceTrait, HostTrait};
    if let Some(device) = cpal::default_host().default_output_device() {
        let _ = device.default_output_config();
    }
}

#[test]
fn alsa_noise_goes_to_the_log_not_stderr() {
    if in_child() || !no_card_here() {
        return;
    }
    // The control: cpal on its own prints ALSA's "Unknown PCM default" here, so the check below
    // can fail.
    let loud = stderr_of("child_opens_the_default_card_through_cpal_directly");
    assert!(
        loud.contains("ALSA lib"),
        "expected ALSA noise from bare cpal: {loud:?}"
    );
    let quiet = stderr_of("child_opens_the_default_card_through_ringside");
    assert!(
        !quiet.contains("ALSA lib"),
        "ALSA noise reached stderr: {quiet}"
    );
    assert!(quiet.contains("child: ringside said"), "{quiet}");
}

#[test]
fn no_sound_card_is_a_clear_error_not_a_panic() {
    if in_child() || !no_card_here() {
        return;
    }
    let text = SoundCard::open(&SoundCardChoice::default())
        .err()
        .map(|e| e.to_string())
        .expect("no card here, so opening the default must fail");
    assert!(
        text.contains("speaker") && text.contains("[audio] device = \"none\""),
        "{text}"
    );
    let text = SoundCard::open(&SoundCardChoice {
        input: Some("USB Headset".into()),
        output: None,
    })
    .err()
    .map(|e| e.to_string())
    .expect("no such card");
    assert!(
        text.contains("\"USB Headset\"") && text.contains("ringside devices"),
        "{text}"
    );
}

/// ALSA's `null` device: capture gives zeros, playback discards, and neither is paced. Real
/// cpal streams, real callbacks: the rings must move both ways.
#[test]
fn the_null_device_runs_real_streams_through_the_rings() {
    if in_child() {
        return;
    }
    let listed = list_devices().expect("list");
    if !listed.iter().any(|d| d.id == "alsa:null") {
        eprintln!("SKIPPED: no ALSA null device");
        return;
    }
    let choice = SoundCardChoice {
        input: Some("null".into()),
        output: Some("null".into()),
    };
    let mut card = SoundCard::open(&choice).expect("ALSA null opens");
    let rate = card.sample_rate();
    assert!(rate >= 8000, "{rate}");
    let frame = rate as usize / 50;
    // Playback: what we queue is taken by the callback.
    card.write_frame(&vec![1000; frame]);
    assert!(
        card.output_delay() > Duration::from_millis(20),
        "{:?}",
        card.output_delay()
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while card.output_delay() > Duration::ZERO && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        card.output_delay(),
        Duration::ZERO,
        "the playback callback never ran"
    );
    // Capture: the callback filled the ring with null's zeros; a read takes a whole frame.
    std::thread::sleep(Duration::from_millis(50));
    let mut mic = vec![7i16; frame];
    card.read_frame(&mut mic);
    assert!(mic.iter().all(|&s| s == 0), "null captures silence");
    let (capture_dropped, _) = card.dropouts();
    // Unpaced capture overflows the 200 ms ring at once; the excess is counted, not queued.
    assert!(
        capture_dropped > 0,
        "an unpaced capture must show as dropped samples"
    );
    card.finish().expect("finish");
}
