//! Media costs per 20 ms frame: encode and decode per codec (Opus in builds with the `opus`
//! feature), a jitter-buffer put + pop, resampling between a 48 kHz sound card and the codec
//! rates, and the lock-free sample ring a sound-card callback uses.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringside::media::codec;
use ringside::media::jitter::{JitterBuffer, JitterConfig};
use ringside::media::resample::StreamResampler;
use ringside::media::ring::sample_ring;

fn speech_like(samples: usize, rate: usize) -> Vec<i16> {
    (0..samples)
        .map(|i| {
            let t = i as f64 / rate as f64;
            (6000.0 * (2.0 * std::f64::consts::PI * 220.0 * t).sin()
                + 3000.0 * (2.0 * std::f64::consts::PI * 1330.0 * t).sin()) as i16
        })
        .collect()
}

fn codecs(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec_20ms_frame");
    group.throughput(Throughput::Elements(1));
    for (name, pcm_rate) in [
        ("PCMU", 8000usize),
        ("PCMA", 8000),
        ("G722", 16000),
        ("opus", 48000),
    ] {
        let Some((mut encoder, mut decoder)) = codec::by_name(name) else {
            continue;
        };
        let frame = speech_like(pcm_rate / 50, pcm_rate);
        let mut payload = Vec::with_capacity(320);
        encoder.encode(&frame, &mut payload);
        group.bench_function(format!("{name}_encode"), |b| {
            b.iter(|| {
                payload.clear();
                encoder.encode(black_box(&frame), &mut payload);
            })
        });
        let mut pcm = Vec::with_capacity(pcm_rate / 50);
        group.bench_function(format!("{name}_decode"), |b| {
            b.iter(|| {
                pcm.clear();
                decoder.decode(black_box(&payload), &mut pcm);
            })
        });
    }
    group.finish();
}

fn jitter(c: &mut Criterion) {
    let mut group = c.benchmark_group("jitter_buffer");
    group.throughput(Throughput::Elements(1));
    group.bench_function("put_pop_20ms_frame", |b| {
        let mut buffer = JitterBuffer::new(JitterConfig::default());
        let payload = [0x55u8; 160];
        let mut n: u32 = 0;
        b.iter(|| {
            let now = Duration::from_millis(20 * u64::from(n));
            buffer.put(now, n as u16, n.wrapping_mul(160), black_box(&payload));
            black_box(buffer.pop(now));
            n = n.wrapping_add(1);
        })
    });
    group.finish();
}

fn resampling(c: &mut Criterion) {
    let mut group = c.benchmark_group("resample_20ms_frame");
    group.throughput(Throughput::Elements(1));
    for (from, to) in [
        (48_000u32, 8_000u32),
        (8_000, 48_000),
        (48_000, 16_000),
        (44_100, 48_000),
    ] {
        let Ok(mut resampler) = StreamResampler::new(from, to, 20) else {
            continue;
        };
        let frame = speech_like(from as usize / 50, from as usize);
        let mut out = Vec::with_capacity(to as usize / 50);
        group.bench_function(format!("{from}_to_{to}"), |b| {
            b.iter(|| {
                resampler.push(black_box(&frame));
                out.clear();
                resampler.pull(to as usize / 50, &mut out);
            })
        });
    }
    group.finish();
}

fn ring(c: &mut Criterion) {
    let mut group = c.benchmark_group("sample_ring");
    // One 10 ms callback's worth at 48 kHz through the ring and out again.
    group.throughput(Throughput::Elements(480));
    group.bench_function("push_pop_480_samples", |b| {
        let (mut writer, mut reader) = sample_ring(9600);
        let frame = speech_like(480, 48_000);
        let mut out = vec![0i16; 480];
        b.iter(|| {
            writer.push(black_box(&frame).iter().copied());
            reader.pop_into(&mut out);
            black_box(&out);
        })
    });
    group.finish();
}

criterion_group!(benches, codecs, jitter, resampling, ring);
criterion_main!(benches);
