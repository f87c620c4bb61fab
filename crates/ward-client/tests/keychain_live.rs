//! The keychain and profile opening against a real Secret Service (gnome-keyring-daemon) on a real
//! D-Bus session. Each scenario needs its own session, so these tests are ignored in a plain
//! `cargo test` and run by `scripts/test-keychain`, one scenario prefix per session:
//!
//! - `open_keyring_`: gnome-keyring running with an unlocked login keyring;
//! - `locked_keyring_`: the same, but the test locks the keyring first;
//! - `no_service_`: a session bus with no Secret Service provider and no way to activate one;
//! - `no_bus_`: no session bus at all.
//!
//! Entries use a test service name, so they can never touch a real Ward profile's keys.

// Helpers in a test file are test code too: a failed unwrap is the test failing, with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg(all(
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
))]

use std::path::Path;

mod common;
use common::{contains, snapshot};

use ward_client::profile::open_profile_with_service;
use ward_client::{Keychain, KeychainError, OpenError, ProfileDir, ProfileId, StoreError};

const SERVICE: &str = "org.ward.desktop.test";
const SENTINEL: &str = "SENTINEL-keychain-live-Jane-Doe";

fn profile_keychain(dir: &Path) -> Keychain {
    let id = std::fs::read_to_string(dir.join("profile-id")).unwrap();
    Keychain::with_service(SERVICE, &ProfileId::parse(id.trim()).unwrap())
}

/// Creates a profile with some history and returns its folder.
fn profile_with_history(root: &Path) -> ProfileDir {
    let dir = ProfileDir::new(root.join("profile")).unwrap();
    let opened = open_profile_with_service(&dir, SERVICE).unwrap();
    assert!(opened.created);
    opened.store.set_setting("note", SENTINEL).unwrap();
    dir
}

#[test]
#[ignore = "needs an unlocked gnome-keyring; run by scripts/test-keychain"]
fn open_keyring_secrets_round_trip_and_absent_entries_read_as_none() {
    Keychain::check_available().unwrap();
    let keychain = Keychain::with_service(SERVICE, &ProfileId::generate().unwrap());
    assert_eq!(keychain.read_secret("absent").unwrap(), None);
    assert!(!keychain.delete_secret("absent").unwrap());

    keychain.write_secret("entry", &[0, 1, 2, 255]).unwrap();
    assert_eq!(
        keychain.read_secret("entry").unwrap().as_deref(),
        Some(&vec![0, 1, 2, 255])
    );
    keychain.write_secret("entry", b"replaced").unwrap();
    assert_eq!(
        keychain.read_secret("entry").unwrap().as_deref(),
        Some(&b"replaced".to_vec())
    );
    assert!(keychain.delete_secret("entry").unwrap());
    assert_eq!(keychain.read_secret("entry").unwrap(), None);
}

#[test]
#[ignore = "needs an unlocked gnome-keyring; run by scripts/test-keychain"]
fn open_keyring_profiles_are_separate_namespaces() {
    let alice = Keychain::with_service(SERVICE, &ProfileId::generate().unwrap());
    let bob = Keychain::with_service(SERVICE, &ProfileId::generate().unwrap());
    alice.write_secret("store-key", b"alice").unwrap();
    assert_eq!(bob.read_secret("store-key").unwrap(), None);
    bob.write_secret("store-key", b"bob").unwrap();
    assert_eq!(
        alice.read_secret("store-key").unwrap().as_deref(),
        Some(&b"alice".to_vec())
    );
    alice.delete_secret("store-key").unwrap();
    bob.delete_secret("store-key").unwrap();
}

#[test]
#[ignore = "needs an unlocked gnome-keyring; run by scripts/test-keychain"]
fn open_keyring_first_run_keeps_the_key_only_in_the_keychain() {
    let root = tempfile::tempdir().unwrap();
    let dir = profile_with_history(root.path());
    let files = snapshot(dir.root());
    assert!(files.contains_key("ward.db"));
    assert!(!files["ward.db"].starts_with(b"SQLite format 3\0"));

    let key = profile_keychain(dir.root())
        .read_secret("store-key")
        .unwrap()
        .expect("the store key is in the keychain");
    assert_eq!(key.len(), 32);
    let lower = hex::encode(key.as_slice());
    for (name, bytes) in &files {
        assert!(!contains(bytes, &key), "raw key in {name}");
        assert!(!contains(bytes, lower.as_bytes()), "hex key in {name}");
        assert!(
            !contains(bytes, lower.to_uppercase().as_bytes()),
            "hex key in {name}"
        );
        assert!(!contains(bytes, SENTINEL.as_bytes()), "sentinel in {name}");
    }

    // The second start opens the same history with the same key.
    let reopened = open_profile_with_service(&dir, SERVICE).unwrap();
    assert!(!reopened.created);
    assert_eq!(
        reopened.store.setting("note").unwrap().as_deref(),
        Some(SENTINEL)
    );
}

#[test]
#[ignore = "needs an unlocked gnome-keyring; run by scripts/test-keychain"]
fn open_keyring_a_missing_key_is_an_error_and_the_history_is_untouched() {
    let root = tempfile::tempdir().unwrap();
    let dir = profile_with_history(root.path());
    assert!(profile_keychain(dir.root())
        .delete_secret("store-key")
        .unwrap());
    let before = snapshot(dir.root());

    let error = open_profile_with_service(&dir, SERVICE).unwrap_err();
    assert!(matches!(error, OpenError::KeyMissing), "{error:?}");
    assert!(error.advice().contains("has not changed anything"));
    assert_eq!(snapshot(dir.root()), before);
}

#[test]
#[ignore = "needs an unlocked gnome-keyring; run by scripts/test-keychain"]
fn open_keyring_a_wrong_key_is_an_error_and_the_history_is_byte_identical() {
    let root = tempfile::tempdir().unwrap();
    let dir = profile_with_history(root.path());
    profile_keychain(dir.root())
        .write_secret("store-key", &[0x42; 32])
        .unwrap();
    let before = snapshot(dir.root());

    let error = open_profile_with_service(&dir, SERVICE).unwrap_err();
    assert!(
        matches!(error, OpenError::Store(StoreError::KeyRejected)),
        "{error:?}"
    );
    assert_eq!(snapshot(dir.root()), before);
}

#[test]
#[ignore = "needs an unlocked gnome-keyring; run by scripts/test-keychain"]
fn open_keyring_a_history_without_its_profile_id_is_never_recreated() {
    let root = tempfile::tempdir().unwrap();
    let dir = profile_with_history(root.path());
    std::fs::remove_file(dir.root().join("profile-id")).unwrap();
    let before = snapshot(dir.root());

    let error = open_profile_with_service(&dir, SERVICE).unwrap_err();
    assert!(matches!(error, OpenError::KeyMissing), "{error:?}");
    assert_eq!(snapshot(dir.root()), before);
}

/// Locks every collection through the Secret Service API, as a screen lock or a timeout would.
fn lock_the_keyring() {
    use secret_service::blocking::SecretService;
    use secret_service::EncryptionType;
    let service = SecretService::connect(EncryptionType::Dh).unwrap();
    for collection in service.get_all_collections().unwrap() {
        collection.lock().unwrap();
    }
}

#[test]
#[ignore = "needs an unlocked gnome-keyring that the test then locks; run by scripts/test-keychain"]
fn locked_keyring_is_reported_and_a_first_run_creates_nothing() {
    // A profile made while unlocked, so there is an entry behind the lock.
    let root = tempfile::tempdir().unwrap();
    let existing = profile_with_history(root.path());
    let before = snapshot(existing.root());
    lock_the_keyring();

    // gnome-keyring answers anything behind the lock with an unlock prompt. With no display the
    // prompt cannot be answered, which it reports as a dismissed prompt.
    let keychain = Keychain::with_service(SERVICE, &ProfileId::generate().unwrap());
    assert_eq!(
        keychain.write_secret("store-key", &[7; 32]),
        Err(KeychainError::AccessRefused)
    );
    assert_eq!(
        profile_keychain(existing.root()).read_secret("store-key"),
        Err(KeychainError::AccessRefused)
    );
    // "Not found" stays distinct: an entry that does not exist is not behind the lock.
    assert_eq!(keychain.read_secret("store-key"), Ok(None));

    let fresh = ProfileDir::new(root.path().join("fresh")).unwrap();
    let error = open_profile_with_service(&fresh, SERVICE).unwrap_err();
    assert!(
        matches!(error, OpenError::Keychain(KeychainError::AccessRefused)),
        "{error:?}"
    );
    assert!(error.advice().contains("unlock"));
    assert!(!fresh.root().exists(), "a locked first run created files");

    // Behind the lock, the existing history is refused, not recreated.
    let error = open_profile_with_service(&existing, SERVICE).unwrap_err();
    assert!(
        matches!(error, OpenError::Keychain(KeychainError::AccessRefused)),
        "{error:?}"
    );
    assert_eq!(snapshot(existing.root()), before);
}

fn assert_unavailable_and_nothing_created() {
    let error = Keychain::check_available().unwrap_err();
    assert!(
        matches!(error, KeychainError::Unavailable { .. }),
        "{error:?}"
    );
    let root = tempfile::tempdir().unwrap();
    let dir = ProfileDir::new(root.path().join("profile")).unwrap();
    let error = open_profile_with_service(&dir, SERVICE).unwrap_err();
    assert!(
        matches!(
            error,
            OpenError::Keychain(KeychainError::Unavailable { .. })
        ),
        "{error:?}"
    );
    assert!(error.advice().contains("keychain"));
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
}

#[test]
#[ignore = "needs a session bus without a Secret Service; run by scripts/test-keychain"]
fn no_service_is_reported_as_unavailable_and_nothing_is_created() {
    assert_unavailable_and_nothing_created();
}

#[test]
#[ignore = "needs a process with no session bus; run by scripts/test-keychain"]
fn no_bus_is_reported_as_unavailable_and_nothing_is_created() {
    assert_unavailable_and_nothing_created();
}
