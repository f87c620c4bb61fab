//! Replays the checked-in fuzz corpus through the same entry points the fuzz targets call, so a
//! crash the fuzzer once found stays fixed in every `cargo test`.

// Helpers in a test file are test code too: a failed unwrap is the test failing, with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

/// Feeds every file of `fuzz/corpus/TARGET` to `entry`; there must be at least `at_least`.
fn replay(target: &str, entry: fn(&[u8]), at_least: usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut replayed = 0;
    for file in std::fs::read_dir(&dir).unwrap() {
        entry(&std::fs::read(file.unwrap().path()).unwrap());
        replayed += 1;
    }
    assert!(
        replayed >= at_least,
        "only {replayed} corpus files in {}",
        dir.display()
    );
}

#[test]
fn the_mls_incoming_corpus_replays_without_a_panic() {
    replay("mls_incoming", ward_core::fuzzing::mls_incoming, 5);
}

#[test]
fn the_attachment_stream_corpus_replays_without_a_panic() {
    replay(
        "attachment_stream",
        ward_core::fuzzing::attachment_stream,
        8,
    );
}

/// Writes the MLS seed corpus, and cut and bit-flipped copies of each seed. Run by hand:
/// `cargo test -p ward-core --test fuzz_corpus -- --ignored write_mls_seed_corpus`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand after a format change"]
fn write_mls_seed_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/mls_incoming");
    std::fs::create_dir_all(&dir).unwrap();
    let seeds = ward_core::fuzzing::mls_seed_corpus();
    assert_eq!(seeds.len(), 5);
    for (name, bytes) in seeds {
        let cut = bytes.len() / 2;
        let mut flipped = bytes.clone();
        flipped[cut] ^= 0x10;
        std::fs::write(dir.join(format!("seed-{name}-cut{cut}")), &bytes[..cut]).unwrap();
        std::fs::write(dir.join(format!("seed-{name}-flip{cut}")), flipped).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
}

/// Writes the seed corpus: valid streams under the fuzz key at the boundary sizes, and the
/// malformed shapes the decoder must refuse. Run by hand after a format change:
/// `cargo test -p ward-core --test fuzz_corpus -- --ignored write_seed_corpus`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand after a format change"]
fn write_seed_corpus() {
    use ward_core::attachment_stream::{encrypt_to_vec, FileKey, CHUNK_SIZE, HEADER_LEN};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/attachment_stream");
    std::fs::create_dir_all(&dir).unwrap();
    let key = FileKey::from_slice(&ward_core::fuzzing::FUZZ_KEY).unwrap();
    let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();
    for (name, len) in [
        ("empty", 0),
        ("one-byte", 1),
        ("small", 1000),
        ("two-chunks", CHUNK_SIZE + 1),
    ] {
        seeds.push((name, encrypt_to_vec(&key, &vec![0x61; len]).unwrap()));
    }
    let small = encrypt_to_vec(&key, b"seed").unwrap();
    seeds.push(("header-only", small[..HEADER_LEN].to_vec()));
    seeds.push(("short-header", small[..20].to_vec()));
    seeds.push(("truncated-tag", small[..small.len() - 3].to_vec()));
    let mut magic = small.clone();
    magic[0] ^= 1;
    seeds.push(("bad-magic", magic));
    let mut version = small.clone();
    version[7] = 2;
    seeds.push(("version-2", version));
    let mut tag = small.clone();
    let last = tag.len() - 1;
    tag[last] ^= 1;
    seeds.push(("bad-tag", tag));
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
