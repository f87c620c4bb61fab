//! Replays `fuzz/corpus/relay_request` through the entry point the fuzz target calls.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/relay_request")
}

#[test]
fn the_relay_request_corpus_replays_without_a_panic() {
    let mut replayed = 0;
    for file in std::fs::read_dir(dir()).unwrap() {
        ward_relay::fuzzing::request(&std::fs::read(file.unwrap().path()).unwrap());
        replayed += 1;
    }
    assert!(replayed >= 8, "only {replayed} corpus files");
}

/// Writes one well-formed and one malformed body per endpoint. Run by hand:
/// `cargo test -p ward-relay --test fuzz_corpus -- --ignored write_seed_corpus`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand"]
fn write_seed_corpus() {
    let id = "07".repeat(16);
    let seeds: [(u8, &str, String); 9] = [
        (
            0,
            "commit",
            format!(
                r#"{{"group":"{id}","epoch":3,"send_id":"{id}","message":"c0ff","added":["{id}"],"removed":[],"welcome":"57"}}"#
            ),
        ),
        (
            1,
            "message",
            format!(r#"{{"group":"{id}","epoch":3,"send_id":"{id}","message":"a0"}}"#),
        ),
        (
            2,
            "enroll",
            format!(
                r#"{{"invite":"ABCD-EFGH-JKMN-PQRS","credential":"01{}"}}"#,
                "00".repeat(160)
            ),
        ),
        (
            3,
            "session",
            format!(
                r#"{{"device":"{id}","challenge":"{}","signature":"{}"}}"#,
                "11".repeat(32),
                "22".repeat(64)
            ),
        ),
        (
            4,
            "key-packages",
            r#"{"key_packages":["aa","bb"],"last_resort":"ff"}"#.to_owned(),
        ),
        (5, "challenge", format!(r#"{{"device":"{id}"}}"#)),
        (6, "claim", format!(r#"{{"device":"{id}"}}"#)),
        (7, "ack", format!(r#"{{"group":"{id}","sequence":9}}"#)),
        (
            0,
            "commit-bad-hex",
            r#"{"group":"zz","epoch":-1,"send_id":"","message":"c"}"#.to_owned(),
        ),
    ];
    std::fs::create_dir_all(dir()).unwrap();
    for (selector, name, json) in seeds {
        let mut bytes = vec![selector];
        bytes.extend_from_slice(json.as_bytes());
        std::fs::write(dir().join(format!("seed-{name}")), &bytes).unwrap();
        let cut = bytes.len() / 2;
        std::fs::write(dir().join(format!("seed-{name}-cut{cut}")), &bytes[..cut]).unwrap();
    }
}
