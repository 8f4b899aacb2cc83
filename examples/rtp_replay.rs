//! Plays a captured RTP stream through ringside's receive path (jitter buffer, loss
//! concealment, Opus FEC, decoder) with the capture's own arrival times, and writes what a
//! ringside user would hear to a WAV file. benches/audio_quality.sh uses it to score ringside
//! and baresip on the very same impaired packets.
//!
//! Input: one packet per line, `<arrival seconds> <RTP packet as hex>` (tshark's
//! `-T fields -e frame.time_relative -e udp.payload`).
//!
//! Usage: rtp_replay PACKETS.txt CODEC PAYLOAD_TYPE OUT.wav [PTIME_MS]

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use core::net::SocketAddr;
use ringside::media::session::{MediaParams, MediaSession};

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b':').collect();
    digits
        .chunks(2)
        .map(|pair| {
            let [high, low] = *pair else {
                return None; // an odd number of digits
            };
            let high = char::from(high).to_digit(16)?;
            let low = char::from(low).to_digit(16)?;
            u8::try_from(high * 16 + low).ok()
        })
        .collect()
}

/// (arrival since the first packet, datagram) in file order.
fn read_packets(path: &str) -> Result<Vec<(Duration, Vec<u8>)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let mut packets = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let mut fields = line.split_whitespace();
        let (Some(time), Some(hex)) = (fields.next(), fields.next()) else {
            continue;
        };
        let seconds: f64 = time
            .parse()
            .with_context(|| format!("{path}:{}: bad time {time:?}", number + 1))?;
        let bytes =
            parse_hex(hex).with_context(|| format!("{path}:{}: bad hex payload", number + 1))?;
        packets.push((Duration::from_secs_f64(seconds.max(0.0)), bytes));
    }
    let Some(first) = packets.first().map(|(at, _)| *at) else {
        bail!("{path} has no packets: was the capture filter right?");
    };
    for (at, _) in &mut packets {
        *at = at.saturating_sub(first);
    }
    Ok(packets)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, packets_path, codec, payload_type, out_path, rest @ ..] = args.as_slice() else {
        bail!("usage: rtp_replay PACKETS.txt CODEC PAYLOAD_TYPE OUT.wav [PTIME_MS]");
    };
    let payload_type: u8 = payload_type.parse().context("PAYLOAD_TYPE")?;
    let ptime_ms: u32 = match rest.first() {
        Some(p) => p.parse().context("PTIME_MS")?,
        None => 20,
    };
    let packets = read_packets(packets_path)?;
    let peer = SocketAddr::from(([127, 0, 0, 1], 9));
    let params = MediaParams {
        remote: peer,
        codec: codec.clone(),
        payload_type,
        telephone_event: None,
        telephone_event_clock: 8000,
        sending: false,
        receiving: true,
        ptime_ms,
    };
    let start = Instant::now();
    let mut session =
        MediaSession::new(params, 1, start, Duration::ZERO).map_err(|e| anyhow::anyhow!("{e}"))?;
    let tick = session.packet_time();
    let silence = vec![0i16; session.frame_samples()];
    let end = packets.last().map(|(at, _)| *at).unwrap_or_default() + Duration::from_millis(500);
    let mut heard = Vec::new();
    let mut speaker = Vec::new();
    let mut next = packets.iter().peekable();
    let mut now = Duration::ZERO;
    // The device clock ticks every packet time; packets are handed over as they arrive.
    while now <= end {
        while let Some((_, bytes)) = next.next_if(|(at, _)| *at <= now) {
            session.handle_rtp(start + now, peer, bytes);
        }
        session.tick(start + now, &silence, &mut speaker);
        while session.poll_transmit().is_some() {}
        heard.extend_from_slice(&speaker);
        now += tick;
    }
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: session.sample_rate(),
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer =
        hound::WavWriter::create(out_path, spec).with_context(|| format!("creating {out_path}"))?;
    for sample in heard {
        writer.write_sample(sample)?;
    }
    writer.finalize()?;
    let stats = session.stats();
    println!(
        "{} packets in, {} received, {} lost, {} concealed",
        packets.len(),
        stats.packets_received,
        stats.packets_lost,
        stats.concealed
    );
    Ok(())
}
