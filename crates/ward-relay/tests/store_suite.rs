//! The suite every relay store must pass. It runs here on the SQLite store over a real file; a
//! PostgreSQL store will run the same functions against a real server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ward_proto::{DeviceId, GroupId, UserId};
use ward_relay::sqlite_store::SqliteStore;
use ward_relay::store::{
    Appended, CommitUpload, EnrollError, Enrollment, EntryKind, MessageUpload, NewInvite,
    RelayStore, StoreError,
};

const NOW: u64 = 1_800_000_000;

fn invite(store: &dyn RelayStore, tag: u8, expires_at: u64) -> [u8; 32] {
    let code_hash = [tag; 32];
    store
        .create_invite(&NewInvite {
            id: format!("inv{tag}"),
            code_hash,
            name: format!("Clinician {tag}"),
            role: "nurse".to_owned(),
            expires_at,
        })
        .unwrap();
    code_hash
}

/// Enrolls user `tag` with device `tag`.
fn enroll(store: &dyn RelayStore, tag: u8) -> DeviceId {
    let code_hash = invite(store, tag, NOW + 3600);
    store
        .enroll(
            &Enrollment {
                code_hash,
                user: UserId([tag; 16]),
                account_key: [tag; 32],
                device: DeviceId([tag; 16]),
                credential: vec![tag; 161],
            },
            NOW,
        )
        .unwrap();
    DeviceId([tag; 16])
}

fn commit(group: u8, epoch: u64, sender: DeviceId, send: u8) -> CommitUpload {
    CommitUpload {
        group: GroupId([group; 16]),
        epoch,
        sender,
        send_id: [send; 16],
        message: vec![0xC0, send],
        added: Vec::new(),
        removed: Vec::new(),
        welcome: None,
        received_at: NOW,
    }
}

fn message(group: u8, sender: DeviceId, send: u8) -> MessageUpload {
    MessageUpload {
        group: GroupId([group; 16]),
        epoch: 1,
        sender,
        send_id: [send; 16],
        message: vec![0xA0, send],
        received_at: NOW,
    }
}

fn accepted(appended: Appended) -> u64 {
    match appended {
        Appended::Accepted { sequence } => sequence,
        other => panic!("expected acceptance, got {other:?}"),
    }
}

fn invites_are_one_time_and_expire(store: &dyn RelayStore) {
    let code = invite(store, 1, NOW + 60);
    let enrollment = Enrollment {
        code_hash: code,
        user: UserId([1; 16]),
        account_key: [1; 32],
        device: DeviceId([1; 16]),
        credential: vec![1; 161],
    };
    let user = store.enroll(&enrollment, NOW).unwrap();
    assert_eq!(user.name, "Clinician 1");
    assert_eq!(user.devices.len(), 1);
    assert!(matches!(
        store.enroll(&enrollment, NOW),
        Err(EnrollError::InviteSpent)
    ));
    let mut unknown = enrollment.clone();
    unknown.code_hash = [0xEE; 32];
    assert!(matches!(
        store.enroll(&unknown, NOW),
        Err(EnrollError::UnknownInvite)
    ));

    let expiring = invite(store, 2, NOW + 60);
    let mut late = enrollment.clone();
    late.code_hash = expiring;
    late.user = UserId([2; 16]);
    late.device = DeviceId([2; 16]);
    assert!(matches!(
        store.enroll(&late, NOW + 60),
        Err(EnrollError::InviteSpent)
    ));

    let revoked = invite(store, 3, NOW + 60);
    assert!(store.revoke_invite("inv3").unwrap());
    let mut refused = late.clone();
    refused.code_hash = revoked;
    assert!(matches!(
        store.enroll(&refused, NOW),
        Err(EnrollError::InviteSpent)
    ));
    let listed = store.list_invites().unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().any(|i| i.id == "inv1" && i.used));
    assert!(listed.iter().any(|i| i.id == "inv3" && i.revoked));
    assert!(
        !store.revoke_invite("inv1").unwrap(),
        "a used invite stays used"
    );
}

fn the_directory_lists_and_admins_disable(store: &dyn RelayStore) {
    let a = enroll(store, 10);
    let b = enroll(store, 11);
    let users = store.users().unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0].account_key, [10; 32]);
    assert!(store.device(&a).unwrap().unwrap().1);

    assert!(store.disable_user(&UserId([10; 16])).unwrap());
    assert!(
        !store.device(&a).unwrap().unwrap().1,
        "a disabled user's device cannot connect"
    );
    store
        .upload_key_packages(&b, &[vec![1]], Some(&[9]))
        .unwrap();
    assert!(store.revoke_device(&b).unwrap());
    assert!(!store.device(&b).unwrap().unwrap().1);
    assert_eq!(
        store.claim_key_package(&b).unwrap(),
        None,
        "revoked: nothing to hand out"
    );
    assert!(store.device(&DeviceId([99; 16])).unwrap().is_none());
    assert!(!store.disable_user(&UserId([99; 16])).unwrap());
}

fn key_packages_are_claimed_once_then_the_last_resort(store: &dyn RelayStore) {
    let device = enroll(store, 20);
    store
        .upload_key_packages(&device, &[vec![1], vec![2]], Some(&[9]))
        .unwrap();
    assert_eq!(store.key_packages_left(&device).unwrap(), 2);
    let first = store.claim_key_package(&device).unwrap().unwrap();
    let second = store.claim_key_package(&device).unwrap().unwrap();
    assert_ne!(first, second);
    assert_eq!(store.claim_key_package(&device).unwrap(), Some(vec![9]));
    assert_eq!(store.claim_key_package(&device).unwrap(), Some(vec![9]));
    assert_eq!(store.key_packages_left(&device).unwrap(), 0);
    store.upload_key_packages(&device, &[], Some(&[8])).unwrap();
    assert_eq!(store.claim_key_package(&device).unwrap(), Some(vec![8]));
}

fn commits_race_by_epoch_and_the_first_wins(store: &dyn RelayStore) {
    let alice = enroll(store, 30);
    let bob = enroll(store, 31);
    let carol = enroll(store, 32);

    let mut create = commit(1, 0, alice, 1);
    create.added = vec![bob];
    create.welcome = Some(vec![0x57]);
    assert_eq!(accepted(store.append_commit(&create).unwrap()), 1);
    // A retry of the same send gets the first answer and stores nothing new.
    assert_eq!(
        store.append_commit(&create).unwrap(),
        Appended::AlreadyStored { sequence: 1 }
    );
    let welcomes = store.welcomes(&bob).unwrap();
    assert_eq!(welcomes.len(), 1);
    assert_eq!(welcomes[0].after_sequence, 1);

    // Alice and Bob both commit on epoch 1: Alice's arrives first.
    let mut alice_adds = commit(1, 1, alice, 2);
    alice_adds.added = vec![carol];
    alice_adds.welcome = Some(vec![0x58]);
    assert_eq!(accepted(store.append_commit(&alice_adds).unwrap()), 2);
    assert_eq!(
        store.append_commit(&commit(1, 1, bob, 3)).unwrap(),
        Appended::EpochMoved { current_epoch: 2 }
    );
    assert_eq!(
        accepted(store.append_commit(&commit(1, 2, bob, 3)).unwrap()),
        3
    );

    // Outsiders can neither commit nor send.
    let dave = enroll(store, 33);
    assert!(store.append_commit(&commit(1, 3, dave, 4)).is_err());
    assert!(store.append_message(&message(1, dave, 5)).is_err());
    assert!(
        store.append_commit(&commit(7, 4, dave, 6)).is_err(),
        "no such group"
    );
}

fn each_member_reads_from_its_own_cursor_and_acked_entries_go(store: &dyn RelayStore) {
    let alice = enroll(store, 40);
    let bob = enroll(store, 41);
    let mut create = commit(2, 0, alice, 1);
    create.added = vec![bob];
    create.welcome = Some(vec![1]);
    accepted(store.append_commit(&create).unwrap());
    for send in 10..15 {
        accepted(store.append_message(&message(2, alice, send)).unwrap());
    }
    // Stored once for the group, whatever the number of members.
    assert_eq!(store.counts().unwrap().log_entries, 6);
    assert_eq!(
        store.append_message(&message(2, alice, 12)).unwrap(),
        Appended::AlreadyStored { sequence: 4 }
    );

    let bob_reads = store.read(&bob, 100).unwrap();
    assert_eq!(
        bob_reads.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![2, 3, 4, 5, 6],
        "Bob starts after the commit that added him"
    );
    assert!(bob_reads.iter().all(|e| e.kind == EntryKind::Application));
    let alice_reads = store.read(&alice, 2).unwrap();
    assert_eq!(alice_reads.len(), 2);
    assert_eq!(alice_reads[0].kind, EntryKind::Commit);

    store.ack(&bob, &GroupId([2; 16]), 6).unwrap();
    assert!(
        store.welcomes(&bob).unwrap().is_empty(),
        "acked: the welcome is done"
    );
    assert!(store.read(&bob, 100).unwrap().is_empty());
    assert_eq!(
        store.counts().unwrap().log_entries,
        6,
        "Alice has not read them yet"
    );
    store.ack(&alice, &GroupId([2; 16]), 4).unwrap();
    assert_eq!(store.counts().unwrap().log_entries, 2);
    assert_eq!(store.read(&alice, 100).unwrap().len(), 2);
}

fn a_removed_member_reads_its_removal_and_nothing_after(store: &dyn RelayStore) {
    let alice = enroll(store, 50);
    let bob = enroll(store, 51);
    let mut create = commit(3, 0, alice, 1);
    create.added = vec![bob];
    accepted(store.append_commit(&create).unwrap());
    let mut remove = commit(3, 1, alice, 2);
    remove.removed = vec![bob];
    let removal = accepted(store.append_commit(&remove).unwrap());
    accepted(store.append_message(&message(3, alice, 3)).unwrap());
    assert!(store.append_message(&message(3, bob, 4)).is_err());

    let bob_reads = store.read(&bob, 100).unwrap();
    assert_eq!(bob_reads.len(), 1);
    assert_eq!(bob_reads[0].sequence, removal);
    store.ack(&bob, &GroupId([3; 16]), removal).unwrap();
    assert!(store.read(&bob, 100).unwrap().is_empty());
}

fn the_retention_limit_deletes_unread_entries(store: &dyn RelayStore) {
    let alice = enroll(store, 60);
    let bob = enroll(store, 61);
    let mut create = commit(4, 0, alice, 1);
    create.added = vec![bob];
    accepted(store.append_commit(&create).unwrap());
    let mut old = message(4, alice, 2);
    old.received_at = NOW - 100;
    accepted(store.append_message(&old).unwrap());
    let before = store.counts().unwrap().log_entries;
    assert_eq!(store.expire(NOW - 50).unwrap(), 1);
    assert_eq!(store.counts().unwrap().log_entries, before - 1);
}

fn submitted(store: &dyn RelayStore, upload: MessageUpload) -> Result<Appended, StoreError> {
    let (answer, answered) = std::sync::mpsc::channel();
    store.submit_message(
        upload,
        Box::new(move |outcome| {
            let _ = answer.send(outcome);
        }),
    );
    answered
        .recv_timeout(std::time::Duration::from_secs(30))
        .unwrap()
}

fn submitted_messages_are_checked_ordered_and_idempotent(store: &dyn RelayStore) {
    let alice = enroll(store, 60);
    let bob = enroll(store, 61);
    let mut create = commit(6, 0, alice, 1);
    create.added = vec![bob];
    accepted(store.append_commit(&create).unwrap());
    // Many at once from one thread: the answers come back with consecutive sequences.
    let (answer, answered) = std::sync::mpsc::channel();
    for send in 2..=101u8 {
        let answer = answer.clone();
        store.submit_message(
            message(6, if send % 2 == 0 { alice } else { bob }, send),
            Box::new(move |outcome| {
                let _ = answer.send((send, outcome));
            }),
        );
    }
    let mut sequences: Vec<u64> = (0..100)
        .map(|_| {
            let (_, outcome) = answered
                .recv_timeout(std::time::Duration::from_secs(30))
                .unwrap();
            accepted(outcome.unwrap())
        })
        .collect();
    sequences.sort_unstable();
    assert_eq!(sequences, (2..=101).collect::<Vec<u64>>());
    // A retry answers with the first sequence.
    assert!(matches!(
        submitted(store, message(6, alice, 2)).unwrap(),
        Appended::AlreadyStored { .. }
    ));
    // A stranger is refused, and a disabled user's device too, in the same transaction.
    let carol = enroll(store, 62);
    assert!(matches!(
        submitted(store, message(6, carol, 200)),
        Err(StoreError::NotAMember)
    ));
    assert!(store.disable_user(&UserId([61; 16])).unwrap());
    assert!(matches!(
        submitted(store, message(6, bob, 201)),
        Err(StoreError::NotAllowed)
    ));
    assert_eq!(store.read(&alice, 1000).unwrap().len(), 101);
}

/// The whole suite, each part on a fresh store from `fresh`.
fn suite(fresh: &dyn Fn() -> Box<dyn RelayStore>) {
    invites_are_one_time_and_expire(&*fresh());
    the_directory_lists_and_admins_disable(&*fresh());
    key_packages_are_claimed_once_then_the_last_resort(&*fresh());
    commits_race_by_epoch_and_the_first_wins(&*fresh());
    each_member_reads_from_its_own_cursor_and_acked_entries_go(&*fresh());
    a_removed_member_reads_its_removal_and_nothing_after(&*fresh());
    the_retention_limit_deletes_unread_entries(&*fresh());
    submitted_messages_are_checked_ordered_and_idempotent(&*fresh());
}

#[test]
fn the_sqlite_store_passes_the_suite_on_real_files() {
    let dirs = std::cell::RefCell::new(Vec::new());
    suite(&|| {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        dirs.borrow_mut().push(dir);
        Box::new(store)
    });
}

#[test]
fn the_sqlite_store_keeps_everything_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let alice;
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        alice = enroll(&store, 70);
        accepted(store.append_commit(&commit(5, 0, alice, 1)).unwrap());
        accepted(store.append_message(&message(5, alice, 2)).unwrap());
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.read(&alice, 10).unwrap().len(), 2);
    assert_eq!(
        store.append_message(&message(5, alice, 2)).unwrap(),
        Appended::AlreadyStored { sequence: 2 }
    );
    assert_eq!(store.schema_version().unwrap(), 2);
}

#[test]
fn a_backup_taken_while_open_restores_with_a_new_generation_and_no_spent_key_packages() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let alice = enroll(&store, 80);
    store
        .upload_key_packages(&alice, &[vec![1], vec![2]], Some(&[9]))
        .unwrap();
    accepted(store.append_commit(&commit(6, 0, alice, 1)).unwrap());
    accepted(store.append_message(&message(6, alice, 2)).unwrap());
    std::fs::create_dir_all(dir.path().join("blobs")).unwrap();
    std::fs::write(
        dir.path().join("blobs").join("ab".repeat(16)),
        b"ciphertext",
    )
    .unwrap();
    std::fs::write(dir.path().join("blobs").join(".partial-upload"), b"half").unwrap();
    let generation = store.generation().unwrap();

    // The store stays open, as under a running relay.
    let backup = dir.path().join("backup");
    let summary = ward_relay::backup::backup(dir.path(), &backup).unwrap();
    assert_eq!((summary.schema_version, summary.blobs), (2, 1));
    assert!(
        ward_relay::backup::backup(dir.path(), &backup).is_err(),
        "not into a used folder"
    );
    accepted(store.append_message(&message(6, alice, 3)).unwrap());

    let data = dir.path().join("restored");
    ward_relay::backup::restore(&backup, &data).unwrap();
    assert!(
        ward_relay::backup::restore(&backup, &data).is_err(),
        "not over a database"
    );
    assert!(!data.join("relay.db-wal").exists() && !data.join("relay.db.restoring").exists());
    assert!(data.join("blobs").join("ab".repeat(16)).is_file());
    assert!(!data.join("blobs").join(".partial-upload").exists());
    let restored = SqliteStore::open(&data).unwrap();
    assert_ne!(restored.generation().unwrap(), generation);
    // What came after the backup is not in it; what came before is.
    assert_eq!(restored.read(&alice, 10).unwrap().len(), 2);
    // One-time key packages may have been handed out after the backup; only the last resort stays.
    assert_eq!(restored.counts().unwrap().key_packages, 0);
    assert_eq!(restored.claim_key_package(&alice).unwrap(), Some(vec![9]));
}

#[test]
fn a_database_from_a_newer_relay_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    {
        let connection = rusqlite::Connection::open(dir.path().join("relay.db")).unwrap();
        connection.pragma_update(None, "user_version", 99).unwrap();
    }
    let before = std::fs::read(dir.path().join("relay.db")).unwrap();
    let error = SqliteStore::open(dir.path()).unwrap_err();
    assert!(error.to_string().contains("newer relay"), "{error}");
    assert_eq!(std::fs::read(dir.path().join("relay.db")).unwrap(), before);
}
