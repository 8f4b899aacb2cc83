//! The fuzz targets (fuzz/fuzz_targets/checks.rs) run on stable: over the seed corpus (the 49
//! RFC 4475 torture messages) and over 20,000 seeded random mutations of it. Not coverage-guided like `cargo fuzz`, but it runs in every `cargo test`
//! and replays any crash input saved under fuzz/artifacts.

#[path = "../fuzz/fuzz_targets/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

fn files_in(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == extension) || extension.is_empty())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn seed_corpus() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeds: Vec<Vec<u8>> = files_in(&root.join("tests/fixtures/rfc4475"), "dat")
        .iter()
        .map(|p| std::fs::read(p).expect("seed"))
        .collect();
    assert_eq!(seeds.len(), 49, "the RFC 4475 seed corpus is missing");
    seeds
}

/// Crash inputs cargo-fuzz saved, if any: once fixed they must stay fixed.
fn saved_artifacts() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/artifacts");
    ["sip_message", "sip_stream"]
        .iter()
        .flat_map(|target| {
            files_in(&root.join(target), "")
                .into_iter()
                .map(|p| (target.to_string(), std::fs::read(&p).unwrap_or_default()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// xorshift64*: reproducible mutations without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const DICTIONARY: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"\r\n ",
    b" ",
    b"\t",
    b":",
    b";",
    b",",
    b"\"",
    b"\\",
    b"<",
    b">",
    b"@",
    b"%",
    b"%00",
    b"?",
    b"=",
    b"/",
    b"\0",
    b"\xff",
    b"\xc3",
    b"SIP/2.0",
    b"SIP/2.0 200 OK",
    b"INVITE ",
    b"sip:",
    b"sips:",
    b"tel:",
    b"[::1]",
    b":65536",
    b"99999999999999999999",
    b"-1",
    b"Content-Length: 0\r\n",
    b"l: 18446744073709551616\r\n",
    b"Via: SIP/2.0/UDP h;branch=z9hG4bK",
    b"Require: x\r\n",
    b"Content-Type: multipart/mixed;boundary=b\r\n",
    b"--b\r\n",
    b"--b--",
    b"Content-Encoding: gzip\r\n",
    b"Accept: \r\n",
];

fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if at < out.len() => out[at] ^= 1 << rng.below(8),
            1 if at < out.len() => {
                let end = (at + 1 + rng.below(32)).min(out.len());
                out.drain(at..end);
            }
            2 => {
                let piece = DICTIONARY[rng.below(DICTIONARY.len())];
                out.splice(at..at, piece.iter().copied());
            }
            3 if at < out.len() => {
                let end = (at + 1 + rng.below(64)).min(out.len());
                let copy = out[at..end].to_vec();
                let to = rng.below(out.len() + 1);
                out.splice(to..to, copy);
            }
            4 if !other.is_empty() => {
                // Splice in a piece of another seed: a header line from a different message.
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(80)).min(other.len());
                out.splice(at..at, other[from..end].iter().copied());
            }
            5 => out.truncate(at),
            _ => {
                let piece = DICTIONARY[rng.below(DICTIONARY.len())];
                let end = (at + piece.len()).min(out.len());
                out.splice(at..end, piece.iter().copied());
            }
        }
    }
    out
}

#[test]
fn fuzz_targets_pass_on_the_seed_corpus() {
    for seed in seed_corpus() {
        checks::sip_message(&seed);
        checks::sip_stream(&seed);
        // The stream target reads its first 8 bytes as chunk sizes; give it the seed whole too.
        let mut sized = vec![1, 2, 3, 5, 8, 13, 21, 34];
        sized.extend_from_slice(&seed);
        checks::sip_stream(&sized);
    }
}

#[test]
fn fuzz_targets_pass_on_saved_crash_inputs() {
    for (target, input) in saved_artifacts() {
        match target.as_str() {
            "sip_message" => checks::sip_message(&input),
            _ => checks::sip_stream(&input),
        }
    }
}

#[test]
fn fuzz_targets_pass_on_20k_seeded_mutations() {
    let corpus = seed_corpus();
    let mut rng = Rng(0x5EED_4475_D00D_F00D);
    for round in 0..20_000 {
        let input = &corpus[rng.below(corpus.len())];
        let other = &corpus[rng.below(corpus.len())];
        let mutated = mutate(&mut rng, input, other);
        let outcome = std::panic::catch_unwind(|| {
            checks::sip_message(&mutated);
            checks::sip_stream(&mutated);
        });
        if outcome.is_err() {
            panic!(
                "round {round}: fuzz target failed on input {:?}",
                String::from_utf8_lossy(&mutated)
            );
        }
    }
}
