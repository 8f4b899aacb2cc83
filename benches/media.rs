//! Media costs per 20 ms frame: encode and decode per codec, and a jitter-buffer put + pop.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringside::media::codec;
use ringside::media::jitter::{JitterBuffer, JitterConfig};

fn speech_like(samples: usize) -> Vec<i16> {
    (0..samples)
        .map(|i| {
            let t = i as f64 / 8000.0;
            (6000.0 * (2.0 * std::f64::consts::PI * 220.0 * t).sin()
                + 3000.0 * (2.0 * std::f64::consts::PI * 1330.0 * t).sin()) as i16
        })
        .collect()
}

fn codecs(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec_20ms_frame");
    group.throughput(Throughput::Elements(1));
    for (name, pcm_rate) in [("PCMU", 8000usize), ("PCMA", 8000), ("G722", 16000)] {
        let Some((mut encoder, mut decoder)) = codec::for_name(name, 8000) else {
            continue;
        };
        let frame = speech_like(pcm_rate / 50);
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

criterion_group!(benches, codecs, jitter);
criterion_main!(benches);
