//! Replays `fuzz/corpus/client_inbox` through the entry point the fuzz target calls.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/client_inbox")
}

#[test]
fn the_client_inbox_corpus_replays_without_a_panic() {
    let mut replayed = 0;
    for file in std::fs::read_dir(dir()).unwrap() {
        ward_client::fuzzing::inbox(&std::fs::read(file.unwrap().path()).unwrap());
        replayed += 1;
    }
    assert!(replayed >= 6, "only {replayed} corpus files");
}

/// Writes seed inbox pages: real MLS messages from another run (so they parse and then fail to
/// decrypt, as an attacker's would), out of order, with gaps, bad hex and a Welcome. Run by hand:
/// `cargo test -p ward-client --test fuzz_corpus -- --ignored write_seed_corpus`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand"]
fn write_seed_corpus() {
    let group = hex::encode(ward_core::fuzzing::FUZZ_GROUP);
    let other = "07".repeat(16);
    let seeds = ward_core::fuzzing::mls_seed_corpus();
    let body = |selector: u8| {
        seeds
            .iter()
            .find(|(_, bytes)| bytes.first() == Some(&selector))
            .map(|(_, bytes)| hex::encode(&bytes[1..]))
            .unwrap()
    };
    let entry = |group: &str, sequence: u64, commit: bool, message: &str| {
        format!(
            r#"{{"group":"{group}","sequence":{sequence},"epoch":1,"commit":{commit},"sender":"{}","message":"{message}"}}"#,
            "01".repeat(16)
        )
    };
    let pages = [
        ("empty", r#"{"welcomes":[],"entries":[]}"#.to_owned()),
        (
            "application",
            format!(
                r#"{{"welcomes":[],"entries":[{}]}}"#,
                entry(&group, 3, false, &body(0))
            ),
        ),
        (
            "reordered-with-commit",
            format!(
                r#"{{"welcomes":[],"entries":[{},{},{}]}}"#,
                entry(&group, 5, false, &body(0)),
                entry(&group, 4, true, &body(1)),
                entry(&other, 1, false, "00")
            ),
        ),
        (
            "welcome",
            format!(
                r#"{{"welcomes":[{{"group":"{group}","after_sequence":2,"welcome":"{}"}}],"entries":[]}}"#,
                body(2)
            ),
        ),
        (
            "bad-hex",
            format!(
                r#"{{"welcomes":[],"entries":[{}]}}"#,
                entry("zz", 1, false, "not hex")
            ),
        ),
        ("not-an-inbox", r#"{"entries":7}"#.to_owned()),
    ];
    std::fs::create_dir_all(dir()).unwrap();
    for (name, json) in pages {
        std::fs::write(dir().join(format!("seed-{name}")), json.as_bytes()).unwrap();
        let cut = json.len() / 2;
        std::fs::write(
            dir().join(format!("seed-{name}-cut{cut}")),
            &json.as_bytes()[..cut],
        )
        .unwrap();
    }
}

#[test]
fn the_ecg_corpus_replays_without_a_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/ecg");
    let mut replayed = 0;
    for file in std::fs::read_dir(dir).unwrap() {
        ward_client::fuzzing::ecg(&std::fs::read(file.unwrap().path()).unwrap());
        replayed += 1;
    }
    assert!(replayed >= 4, "only {replayed} corpus files");
}
