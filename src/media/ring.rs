//! A single-producer single-consumer ring of samples between a sound card's callback and the
//! media task. Lock-free and wait-free on both sides: a callback that pushes or pops never
//! blocks, locks or allocates (the storage is allocated once, here). Safe Rust: every slot is
//! an atomic, and the two counters publish what was written or read.
//!
//! A full ring drops the newest samples (counted as overruns); an empty one reads silence
//! (counted as underruns).

use std::sync::atomic::{AtomicI16, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

struct Shared {
    slots: Box<[AtomicI16]>,
    /// Samples ever read; only the reader stores it.
    read: AtomicUsize,
    /// Samples ever written; only the writer stores it.
    written: AtomicUsize,
    overruns: AtomicU64,
    underruns: AtomicU64,
}

/// The producing half (a capture callback, or the media task toward playback).
pub struct RingWriter {
    shared: Arc<Shared>,
}

/// The consuming half (the media task from capture, or a playback callback).
pub struct RingReader {
    shared: Arc<Shared>,
}

/// Counters shared by both halves, readable from anywhere.
#[derive(Clone)]
pub struct RingCounters {
    shared: Arc<Shared>,
}

/// A ring holding up to `capacity` samples (at least 1).
pub fn sample_ring(capacity: usize) -> (RingWriter, RingReader) {
    let slots: Box<[AtomicI16]> = (0..capacity.max(1)).map(|_| AtomicI16::new(0)).collect();
    let shared = Arc::new(Shared {
        slots,
        read: AtomicUsize::new(0),
        written: AtomicUsize::new(0),
        overruns: AtomicU64::new(0),
        underruns: AtomicU64::new(0),
    });
    (
        RingWriter {
            shared: Arc::clone(&shared),
        },
        RingReader { shared },
    )
}

impl Shared {
    fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn slot(&self, position: usize) -> Option<&AtomicI16> {
        self.slots.get(position % self.capacity())
    }
}

impl RingWriter {
    /// Writes as many of `samples` as fit; the rest are dropped and counted. Returns how many
    /// were written.
    pub fn push(&mut self, samples: impl IntoIterator<Item = i16>) -> usize {
        let shared = &*self.shared;
        let written = shared.written.load(Ordering::Relaxed);
        let read = shared.read.load(Ordering::Acquire);
        let free = shared.capacity().saturating_sub(written.wrapping_sub(read));
        let mut samples = samples.into_iter();
        let mut count = 0;
        for sample in samples.by_ref().take(free) {
            if let Some(slot) = shared.slot(written.wrapping_add(count)) {
                slot.store(sample, Ordering::Relaxed);
            }
            count += 1;
        }
        shared
            .written
            .store(written.wrapping_add(count), Ordering::Release);
        let dropped = samples.count() as u64;
        if dropped > 0 {
            shared.overruns.fetch_add(dropped, Ordering::Relaxed);
        }
        count
    }

    /// Samples waiting for the reader.
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn counters(&self) -> RingCounters {
        RingCounters {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Shared {
    fn len(&self) -> usize {
        let written = self.written.load(Ordering::Acquire);
        let read = self.read.load(Ordering::Acquire);
        written.wrapping_sub(read).min(self.capacity())
    }
}

impl RingReader {
    /// Fills `out` in order with what was written (through `each`, which may convert or spread
    /// a sample over channels); what is missing is silence (0), counted as underrun. Returns
    /// how many real samples were read.
    pub fn pop_each(&mut self, count: usize, mut each: impl FnMut(i16)) -> usize {
        let shared = &*self.shared;
        let read = shared.read.load(Ordering::Relaxed);
        let written = shared.written.load(Ordering::Acquire);
        let available = written.wrapping_sub(read).min(shared.capacity());
        let real = count.min(available);
        for offset in 0..real {
            let sample = shared
                .slot(read.wrapping_add(offset))
                .map_or(0, |slot| slot.load(Ordering::Relaxed));
            each(sample);
        }
        shared
            .read
            .store(read.wrapping_add(real), Ordering::Release);
        let missing = count - real;
        for _ in 0..missing {
            each(0);
        }
        if missing > 0 {
            shared
                .underruns
                .fetch_add(missing as u64, Ordering::Relaxed);
        }
        real
    }

    /// Fills `out` from the ring (silence where it runs dry).
    pub fn pop_into(&mut self, out: &mut [i16]) -> usize {
        let mut slots = out.iter_mut();
        self.pop_each(slots.len(), |sample| {
            if let Some(slot) = slots.next() {
                *slot = sample;
            }
        })
    }

    /// Throws away the oldest samples so that at most `keep` remain (a capture ring that a
    /// faster sound-card clock filled up), counting them as overruns. Returns how many went.
    pub fn discard_to(&mut self, keep: usize) -> usize {
        let shared = &*self.shared;
        let read = shared.read.load(Ordering::Relaxed);
        let written = shared.written.load(Ordering::Acquire);
        let excess = written
            .wrapping_sub(read)
            .min(shared.capacity())
            .saturating_sub(keep);
        if excess > 0 {
            shared
                .read
                .store(read.wrapping_add(excess), Ordering::Release);
            shared.overruns.fetch_add(excess as u64, Ordering::Relaxed);
        }
        excess
    }

    pub fn len(&self) -> usize {
        self.shared.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn counters(&self) -> RingCounters {
        RingCounters {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl RingCounters {
    /// Samples dropped because the ring was full (or discarded as too old).
    pub fn overruns(&self) -> u64 {
        self.shared.overruns.load(Ordering::Relaxed)
    }

    /// Silent samples read because the ring was empty.
    pub fn underruns(&self) -> u64 {
        self.shared.underruns.load(Ordering::Relaxed)
    }

    /// Samples in the ring now.
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_come_out_in_order_across_the_wrap() {
        let (mut writer, mut reader) = sample_ring(5);
        let mut out = [0i16; 3];
        for round in 0..10i16 {
            assert_eq!(writer.push([round * 3, round * 3 + 1, round * 3 + 2]), 3);
            assert_eq!(reader.len(), 3);
            assert_eq!(reader.pop_into(&mut out), 3);
            assert_eq!(out, [round * 3, round * 3 + 1, round * 3 + 2]);
        }
        assert_eq!(writer.counters().overruns(), 0);
        assert_eq!(reader.counters().underruns(), 0);
    }

    #[test]
    fn full_drops_the_newest_and_empty_reads_silence_both_counted() {
        let (mut writer, mut reader) = sample_ring(4);
        assert_eq!(writer.push([1, 2, 3, 4, 5, 6]), 4);
        assert_eq!(writer.counters().overruns(), 2);
        let mut out = [9i16; 6];
        assert_eq!(reader.pop_into(&mut out), 4);
        assert_eq!(out, [1, 2, 3, 4, 0, 0]);
        assert_eq!(reader.counters().underruns(), 2);
        assert!(reader.is_empty());
    }

    #[test]
    fn discard_keeps_the_newest() {
        let (mut writer, mut reader) = sample_ring(8);
        writer.push(1..=8);
        assert_eq!(reader.discard_to(3), 5);
        let mut out = [0i16; 3];
        reader.pop_into(&mut out);
        assert_eq!(out, [6, 7, 8]);
        assert_eq!(reader.counters().overruns(), 5);
    }

    #[test]
    fn two_threads_see_every_sample_once_in_order() {
        let (mut writer, mut reader) = sample_ring(64);
        let total = 200_000usize;
        let producer = std::thread::spawn(move || {
            let mut next = 0usize;
            while next < total {
                let end = (next + 17).min(total);
                let wrote = writer.push((next..end).map(|v| (v % 30_000) as i16));
                next += wrote;
                if wrote == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let mut expected = 0usize;
        let mut buffer = Vec::with_capacity(32);
        while expected < total {
            let ready = reader.len().min(32);
            if ready == 0 {
                std::thread::yield_now();
                continue;
            }
            buffer.clear();
            reader.pop_each(ready, |s| buffer.push(s));
            for &sample in &buffer {
                assert_eq!(sample, (expected % 30_000) as i16, "at {expected}");
                expected += 1;
            }
        }
        producer.join().expect("producer");
        assert_eq!(reader.counters().underruns(), 0);
    }
}
