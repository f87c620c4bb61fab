//! The store on real SQLCipher files: what reaches the disk, and what a wrong key or a damaged file
//! does to it (nothing).

// Helpers in a test file are test code too: a failed unwrap is the test failing, with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

mod common;
use common::{contains, snapshot};

use ward_client::store::SCHEMA_VERSION;
use ward_client::{Store, StoreError, StoreKey};

const SENTINEL: &str = "SENTINEL-7f3a9c-patient-Jane-Doe-MRN-0042";

/// The needle as UTF-8 and as UTF-16 in both byte orders, the encodings SQLite can store text in.
fn encodings(text: &str) -> Vec<Vec<u8>> {
    let utf16: Vec<u16> = text.encode_utf16().collect();
    vec![
        text.as_bytes().to_vec(),
        utf16.iter().flat_map(|u| u.to_le_bytes()).collect(),
        utf16.iter().flat_map(|u| u.to_be_bytes()).collect(),
    ]
}

fn assert_absent(files: &BTreeMap<String, Vec<u8>>, needle: &[u8], what: &str) {
    for (name, bytes) in files {
        assert!(!contains(bytes, needle), "{what} found in {name}");
    }
}

fn store_with_rows(path: &Path, key: &StoreKey, rows: usize) -> Store {
    let store = Store::create(path, key).unwrap();
    for row in 0..rows {
        store
            .set_setting(&format!("note-{row}"), &format!("{SENTINEL} #{row}"))
            .unwrap();
    }
    store
}

#[test]
fn a_sentinel_never_reaches_the_db_wal_or_shm_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ward.db");
    let key = StoreKey::generate().unwrap();
    let store = store_with_rows(&path, &key, 200);

    // While the store is open the rows are still in the write-ahead log.
    let open_files = snapshot(dir.path());
    assert!(
        open_files.contains_key("ward.db-wal"),
        "{:?}",
        open_files.keys()
    );
    for needle in encodings(SENTINEL) {
        assert_absent(&open_files, &needle, "the sentinel");
    }
    assert_eq!(
        store.setting("note-7").unwrap().as_deref(),
        Some(format!("{SENTINEL} #7").as_str())
    );
    drop(store);

    let closed_files = snapshot(dir.path());
    for needle in encodings(SENTINEL) {
        assert_absent(&closed_files, &needle, "the sentinel");
    }
    let db = &closed_files["ward.db"];
    assert!(
        !db.starts_with(b"SQLite format 3\0"),
        "the file has a plaintext SQLite header"
    );
    assert_absent(&closed_files, b"device_setting", "the schema");
}

#[test]
fn the_raw_key_appears_nowhere_in_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ward.db");
    let key = StoreKey::generate().unwrap();
    let store = store_with_rows(&path, &key, 20);
    let open_files = snapshot(dir.path());
    drop(store);
    let closed_files = snapshot(dir.path());

    let lower = hex::encode(key.as_bytes());
    let upper = lower.to_uppercase();
    for files in [&open_files, &closed_files] {
        assert_absent(files, key.as_bytes(), "the raw key");
        assert_absent(files, lower.as_bytes(), "the key in hex");
        assert_absent(files, upper.as_bytes(), "the key in upper-case hex");
    }
}

#[test]
fn a_wrong_key_fails_clearly_and_leaves_the_folder_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ward.db");
    let key = StoreKey::generate().unwrap();
    drop(store_with_rows(&path, &key, 50));
    let before = snapshot(dir.path());

    let wrong = StoreKey::generate().unwrap();
    let error = Store::open(&path, &wrong).unwrap_err();
    assert!(matches!(error, StoreError::KeyRejected), "{error:?}");
    assert_eq!(error.to_string(), "the key does not open this history file");
    assert_eq!(snapshot(dir.path()), before);

    // And the right key still opens it: the failed attempt damaged nothing.
    let store = Store::open(&path, &key).unwrap();
    assert_eq!(
        store.setting("note-3").unwrap().as_deref(),
        Some(format!("{SENTINEL} #3").as_str())
    );
}

#[test]
fn a_file_that_is_not_a_store_is_rejected_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ward.db");
    let bytes: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    let before = snapshot(dir.path());

    let error = Store::open(&path, &StoreKey::generate().unwrap()).unwrap_err();
    assert!(matches!(error, StoreError::KeyRejected), "{error:?}");
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn a_damaged_page_is_reported_and_the_file_is_not_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ward.db");
    let key = StoreKey::generate().unwrap();
    drop(store_with_rows(&path, &key, 400));
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(
        bytes.len() > 4 * 4096,
        "the store should span several pages"
    );
    // A byte in the middle of the third page: page 1 still decrypts, the page HMAC does not.
    bytes[2 * 4096 + 1000] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();

    let error = Store::open(&path, &key).unwrap_err();
    assert!(matches!(error, StoreError::Damaged { .. }), "{error:?}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn a_store_from_a_newer_ward_is_refused_without_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ward.db");
    let key = StoreKey::generate().unwrap();
    drop(store_with_rows(&path, &key, 5));
    {
        // Stand in for a newer Ward by raising the schema version with the same raw key.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA key = \"x'{}'\"; PRAGMA user_version = {};",
            hex::encode(key.as_bytes()),
            SCHEMA_VERSION + 1
        ))
        .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let error = Store::open(&path, &key).unwrap_err();
    assert!(
        matches!(error, StoreError::TooNew { found, supported } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{error:?}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn reopening_keeps_data_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ward.db");
    let key = StoreKey::generate().unwrap();
    drop(store_with_rows(&path, &key, 3));
    let store = Store::open(&path, &key).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(
        store.setting("note-2").unwrap().as_deref(),
        Some(format!("{SENTINEL} #2").as_str())
    );
}
