//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) through the same entry points the
//! fuzz targets call, so an input that once crashed a decoder, or decoded to a value that
//! re-encodes differently, stays fixed in every `cargo test`.

// Helpers in a test file are test code too: a failed unwrap is the test failing, with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use serde::Deserialize;
use ward_proto::fuzzing;

/// A fuzz target: its corpus directory, its entry point, and the vector types that seed it.
struct Target {
    name: &'static str,
    entry_point: fn(&[u8]),
    seeded_by: &'static [&'static str],
}

const TARGETS: [Target; 3] = [
    Target {
        name: "wire_message",
        entry_point: fuzzing::wire_message,
        seeded_by: &["wire_message"],
    },
    Target {
        name: "app_content",
        entry_point: fuzzing::app_content,
        seeded_by: &["app_content", "padded"],
    },
    Target {
        name: "group_data",
        entry_point: fuzzing::group_data,
        seeded_by: &["group_data"],
    },
];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

#[test]
fn the_corpus_replays_without_a_panic() {
    for target in TARGETS {
        let dir = corpus_dir(target.name);
        let mut replayed = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            (target.entry_point)(&data);
            replayed += 1;
        }
        assert!(
            replayed >= 5,
            "only {replayed} corpus files in {}",
            dir.display()
        );
    }
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    hex: String,
}

/// Where the seed corpus flips a bit in the first vector of each type: the version, the kind tag
/// (or a length) and the last byte.
fn flip_positions(kind: &str, len: usize) -> [usize; 3] {
    match kind {
        "wire_message" => [1, 2, len - 1],
        // Inside the length prefix, on the content's kind tag, and in the padding.
        "padded" => [3, 5, len - 1],
        _ => [0, 1, len - 1],
    }
}

/// Writes the seed corpus from the frozen vectors: each vector whole and cut in half, and the
/// first vector of each type with single bits flipped (see [`flip_positions`]). Earlier seeds are replaced; files the fuzzer added are kept. Run by hand after
/// a format change: `cargo test -p ward-proto --test fuzz_corpus -- --ignored write_seed_corpus`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand after a format change"]
fn write_seed_corpus() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_vectors/wire-v1.json");
    let vectors: Vec<Vector> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for target in TARGETS {
        let dir = corpus_dir(target.name);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("seed-"))
            {
                std::fs::remove_file(path).unwrap();
            }
        }
        let mut flipped_kinds = Vec::new();
        for vector in vectors
            .iter()
            .filter(|v| target.seeded_by.contains(&v.kind.as_str()))
        {
            let bytes = hex::decode(&vector.hex).unwrap();
            let name = &vector.name;
            std::fs::write(dir.join(format!("seed-{name}")), &bytes).unwrap();
            let cut = bytes.len() / 2;
            std::fs::write(dir.join(format!("seed-{name}-cut{cut}")), &bytes[..cut]).unwrap();
            if !flipped_kinds.contains(&vector.kind) {
                flipped_kinds.push(vector.kind.clone());
                for at in flip_positions(&vector.kind, bytes.len()) {
                    let mut flipped = bytes.clone();
                    flipped[at] ^= 1;
                    std::fs::write(dir.join(format!("seed-{name}-flip{at}")), flipped).unwrap();
                }
            }
        }
    }
}
