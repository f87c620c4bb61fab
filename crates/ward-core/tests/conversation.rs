//! Conversations end to end on the real openmls groups and Ward's ring provider: 1:1 chats, care
//! teams, membership changes, the "epoch moved" retry, replays, padding and saved state.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{body_of, conversation_of, device, group_id, team, text, welcome_of};
use ward_core::conversation::{ConversationError, Device, GroupChange, Received, PAST_EPOCHS_KEPT};
use ward_core::identity::{AccountKey, DeviceKey};
use ward_proto::{
    AppContent, AttachmentRef, BlobId, ClientMessageId, DeviceId, FileKeyBytes, ReceiptKind,
    UserId, WireMessage,
};

fn changed(received: Received) -> GroupChange {
    match received {
        Received::Changed(change) => change,
        other => panic!("expected a group change, got {other:?}"),
    }
}

fn message_bytes(message: &WireMessage) -> &[u8] {
    match message {
        WireMessage::Application { message, .. } | WireMessage::Commit { message, .. } => message,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_one_to_one_chat_works_both_ways_and_members_agree() {
    let alice = device(1);
    let bob = device(2);
    let (mut at_alice, mut joined) =
        conversation_of(&alice, &[&bob], &team("Alice & Bob", None), group_id(9));
    let mut at_bob = joined.remove(0);

    assert_eq!(at_alice.epoch(), at_bob.epoch());
    assert_eq!(at_alice.epoch_authenticator(), at_bob.epoch_authenticator());
    assert_eq!(at_bob.group_data().unwrap().name, "Alice & Bob");
    assert_eq!(at_bob.members().unwrap().len(), 2);

    let hello = at_alice.send(&alice, &text(1, "hello Bob")).unwrap();
    match at_bob.receive(&bob, &hello).unwrap() {
        Received::Message { sender, content } => {
            assert_eq!(sender, *alice.credential());
            assert_eq!(content, text(1, "hello Bob"));
        }
        other => panic!("{other:?}"),
    }
    let reply = at_bob.send(&bob, &text(2, "hi Alice")).unwrap();
    assert_eq!(
        body_of(at_alice.receive(&alice, &reply).unwrap()),
        "hi Alice"
    );

    // Receipts, edits, deletions and attachment references travel the same way.
    let attachment = AppContent::Attachment {
        id: ClientMessageId([3; 16]),
        attachment: AttachmentRef {
            blob_id: BlobId([7; 32]),
            file_key: FileKeyBytes::from_array([8; 32]),
            ciphertext_sha256: [9; 32],
            size: 123_456,
            media_type: "application/dicom".to_owned(),
            name: "ecg.dcm".to_owned(),
        },
    };
    let others = [
        AppContent::Receipt {
            kind: ReceiptKind::Read,
            ids: vec![ClientMessageId([1; 16])],
        },
        AppContent::Edit {
            id: ClientMessageId([4; 16]),
            target: ClientMessageId([2; 16]),
            body: "hi Alice!".to_owned(),
        },
        AppContent::Delete {
            id: ClientMessageId([5; 16]),
            target: ClientMessageId([2; 16]),
        },
        attachment,
    ];
    for content in &others {
        let sent = at_bob.send(&bob, content).unwrap();
        match at_alice.receive(&alice, &sent).unwrap() {
            Received::Message { content: got, .. } => assert_eq!(&got, content),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_replayed_message_is_refused_and_a_resent_id_is_shown_once() {
    let alice = device(1);
    let bob = device(2);
    let (mut at_alice, mut joined) =
        conversation_of(&alice, &[&bob], &team("t", None), group_id(1));
    let mut at_bob = joined.remove(0);

    let message = at_alice.send(&alice, &text(1, "once")).unwrap();
    assert_eq!(body_of(at_bob.receive(&bob, &message).unwrap()), "once");
    assert!(matches!(
        at_bob.receive(&bob, &message),
        Err(ConversationError::Replayed)
    ));

    // The sender lost the relay's ack and sent the same message again: a new ciphertext with the
    // same client message id.
    let again = at_alice.send(&alice, &text(1, "once")).unwrap();
    assert!(matches!(
        at_bob.receive(&bob, &again).unwrap(),
        Received::Duplicate { id } if id == ClientMessageId([1; 16])
    ));

    // A message for another conversation, and garbage, are typed errors.
    let (mut other_conversation, _) =
        conversation_of(&alice, &[&device(3)], &team("other", None), group_id(2));
    let elsewhere = other_conversation.send(&alice, &text(9, "x")).unwrap();
    assert!(matches!(
        at_bob.receive(&bob, &elsewhere),
        Err(ConversationError::WrongConversation)
    ));
    let garbage = WireMessage::Application {
        group: group_id(1),
        epoch: 1,
        message: vec![0, 1, 2, 3],
    };
    assert!(matches!(
        at_bob.receive(&bob, &garbage),
        Err(ConversationError::Malformed)
    ));
}

#[test]
fn plaintexts_are_padded_so_short_messages_look_alike() {
    let alice = device(1);
    let bob = device(2);
    let (mut at_alice, _) = conversation_of(&alice, &[&bob], &team("t", None), group_id(1));
    let short = at_alice.send(&alice, &text(1, "k")).unwrap();
    let longer = at_alice.send(&alice, &text(2, &"x".repeat(150))).unwrap();
    assert_eq!(message_bytes(&short).len(), message_bytes(&longer).len());
    let big = at_alice.send(&alice, &text(3, &"x".repeat(300))).unwrap();
    assert!(message_bytes(&big).len() > message_bytes(&short).len());
}

#[test]
fn team_name_roles_and_patient_tag_never_travel_in_clear() {
    let alice = device(1);
    let bob = device(2);
    let carol = device(3);
    let name = "Cardiology night team";
    let patient = "MRN-48213377";
    let (mut at_alice, mut joined) =
        conversation_of(&alice, &[&bob], &team(name, Some(patient)), group_id(4));
    let mut at_bob = joined.remove(0);

    let mut seen_by_relay = Vec::new();
    let add = at_alice
        .add_members(&alice, &carol.key_packages(1).unwrap())
        .unwrap();
    at_alice.commit_accepted(&alice).unwrap();
    seen_by_relay.push(add.clone());
    let change = changed(at_bob.receive(&bob, &add).unwrap());
    assert_eq!(change.added, vec![carol.credential().clone()]);
    assert_eq!(change.group_data.patient_tag.as_deref(), Some(patient));
    let at_carol = carol.join(&welcome_of(&add)).unwrap();
    assert_eq!(at_carol.group_data().unwrap().name, name);

    let renamed = team("Cardiology day team", Some("MRN-99999999"));
    let rename = at_alice.set_group_data(&alice, renamed.clone()).unwrap();
    at_alice.commit_accepted(&alice).unwrap();
    seen_by_relay.push(rename.clone());
    assert_eq!(
        changed(at_bob.receive(&bob, &rename).unwrap()).group_data,
        renamed
    );

    for message in &seen_by_relay {
        let bytes = ward_proto::Encode::to_bytes(message).unwrap();
        for secret in [name, patient, "Cardiology day team", "MRN-99999999"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret:?} appears in clear"
            );
        }
    }
}

#[test]
fn a_care_team_adds_removes_and_updates_and_the_removed_read_nothing_new() {
    let alice = device(1);
    let bob = device(2);
    let carol = device(3);
    let (mut at_alice, mut joined) =
        conversation_of(&alice, &[&bob, &carol], &team("team", None), group_id(5));
    let mut at_carol = joined.pop().unwrap();
    let mut at_bob = joined.pop().unwrap();
    assert_eq!(at_alice.members().unwrap().len(), 3);

    // Bob refreshes his keys; everyone follows.
    let update = at_bob.self_update(&bob).unwrap();
    at_bob.commit_accepted(&bob).unwrap();
    changed(at_alice.receive(&alice, &update).unwrap());
    changed(at_carol.receive(&carol, &update).unwrap());
    assert_eq!(at_alice.epoch_authenticator(), at_bob.epoch_authenticator());

    // Alice removes Carol's user, with all her devices.
    let remove = at_alice
        .remove_users(&alice, &[carol.credential().user])
        .unwrap();
    at_alice.commit_accepted(&alice).unwrap();
    let change = changed(at_bob.receive(&bob, &remove).unwrap());
    assert_eq!(change.removed, vec![carol.credential().clone()]);
    let carol_sees = changed(at_carol.receive(&carol, &remove).unwrap());
    assert!(carol_sees.removed_self);
    assert!(!at_carol.is_active());

    let secret = at_alice.send(&alice, &text(7, "after Carol left")).unwrap();
    assert_eq!(
        body_of(at_bob.receive(&bob, &secret).unwrap()),
        "after Carol left"
    );
    assert!(at_carol.receive(&carol, &secret).is_err());
    assert!(matches!(
        at_carol.send(&carol, &text(8, "still here?")),
        Err(ConversationError::NotAMember)
    ));
}

#[test]
fn a_second_device_of_the_same_user_is_its_own_leaf() {
    let (account, _) = AccountKey::generate().unwrap();
    let user = UserId([1; 16]);
    let laptop = common::device_of(&account, user, 1);
    let desktop = common::device_of(&account, user, 2);
    let bob = device(3);
    let (mut at_laptop, mut joined) =
        conversation_of(&laptop, &[&desktop, &bob], &team("t", None), group_id(6));
    let mut at_bob = joined.pop().unwrap();
    let mut at_desktop = joined.pop().unwrap();

    let message = at_laptop.send(&laptop, &text(1, "to all devices")).unwrap();
    assert_eq!(
        body_of(at_desktop.receive(&desktop, &message).unwrap()),
        "to all devices"
    );
    assert_eq!(
        body_of(at_bob.receive(&bob, &message).unwrap()),
        "to all devices"
    );

    // A lost desktop is removed on its own; the laptop stays.
    let remove = at_laptop
        .remove_devices(&laptop, &[DeviceId([2; 16])])
        .unwrap();
    at_laptop.commit_accepted(&laptop).unwrap();
    changed(at_bob.receive(&bob, &remove).unwrap());
    assert_eq!(at_bob.members().unwrap().len(), 2);
}

#[test]
fn when_the_epoch_moves_the_loser_discards_resyncs_and_retries() {
    let alice = device(1);
    let bob = device(2);
    let carol = device(3);
    let dave = device(4);
    let (mut at_alice, mut joined) =
        conversation_of(&alice, &[&bob], &team("t", None), group_id(7));
    let mut at_bob = joined.remove(0);
    let epoch = at_alice.epoch();

    // Both commit on the same epoch; the relay accepts Alice's and tells Bob the epoch moved.
    let alice_adds_carol = at_alice
        .add_members(&alice, &carol.key_packages(1).unwrap())
        .unwrap();
    let bob_adds_dave = at_bob
        .add_members(&bob, &dave.key_packages(1).unwrap())
        .unwrap();
    for commit in [&alice_adds_carol, &bob_adds_dave] {
        assert!(matches!(commit, WireMessage::Commit { epoch: e, .. } if *e == epoch));
    }
    at_alice.commit_accepted(&alice).unwrap();
    assert!(matches!(
        at_bob.send(&bob, &text(1, "blocked while pending")),
        Err(ConversationError::ChangePending)
    ));

    let (received, retry) = at_bob
        .epoch_moved(&bob, std::slice::from_ref(&alice_adds_carol))
        .unwrap();
    assert_eq!(received.len(), 1);
    let retry = retry.expect("the add is made again");
    assert!(matches!(&retry, WireMessage::Commit { epoch: e, .. } if *e == epoch + 1));
    at_bob.commit_accepted(&bob).unwrap();
    let mut at_carol = carol.join(&welcome_of(&alice_adds_carol)).unwrap();
    changed(at_alice.receive(&alice, &retry).unwrap());
    changed(at_carol.receive(&carol, &retry).unwrap());
    let at_dave = dave.join(&welcome_of(&retry)).unwrap();

    let authenticator = at_alice.epoch_authenticator();
    for other in [&at_bob, &at_carol, &at_dave] {
        assert_eq!(other.epoch_authenticator(), authenticator);
        assert_eq!(other.members().unwrap().len(), 4);
    }
    assert!(matches!(
        at_bob.commit_accepted(&bob),
        Err(ConversationError::NothingPending)
    ));
}

#[test]
fn late_messages_decrypt_within_the_window_and_not_after_it() {
    let alice = device(1);
    let bob = device(2);
    let (mut at_alice, mut joined) =
        conversation_of(&alice, &[&bob], &team("t", None), group_id(8));
    let mut at_bob = joined.remove(0);

    let within = at_alice.send(&alice, &text(1, "within")).unwrap();
    let too_late = at_alice.send(&alice, &text(2, "too late")).unwrap();
    let mut commits = Vec::new();
    for _ in 0..=PAST_EPOCHS_KEPT {
        let update = at_alice.self_update(&alice).unwrap();
        at_alice.commit_accepted(&alice).unwrap();
        commits.push(update);
    }
    changed(at_bob.receive(&bob, &commits[0]).unwrap());
    assert_eq!(body_of(at_bob.receive(&bob, &within).unwrap()), "within");
    for commit in &commits[1..] {
        changed(at_bob.receive(&bob, commit).unwrap());
    }
    assert!(matches!(
        at_bob.receive(&bob, &too_late),
        Err(ConversationError::WrongEpoch)
    ));
}

#[test]
fn saved_state_restores_and_goes_on_decrypting() {
    let alice = device(1);
    let bob_account = AccountKey::generate().unwrap().0;
    let bob_key = DeviceKey::generate().unwrap();
    let seed = ward_core::secret::Secret32::from_slice(bob_key.seed().as_bytes()).unwrap();
    let bob_credential = bob_account.issue(UserId([2; 16]), DeviceId([2; 16]), &bob_key);
    let bob = Device::new(bob_key, bob_credential.clone()).unwrap();
    let (mut at_alice, mut joined) =
        conversation_of(&alice, &[&bob], &team("t", None), group_id(3));
    let at_bob = joined.remove(0);
    let id = at_bob.id();

    let state = bob.save_state().unwrap();
    drop(at_bob);
    drop(bob);
    let bob = Device::restore(DeviceKey::from_seed(seed).unwrap(), bob_credential, &state).unwrap();
    let mut at_bob = bob.conversation(&id).unwrap().expect("the group was saved");
    let message = at_alice.send(&alice, &text(1, "after restart")).unwrap();
    assert_eq!(
        body_of(at_bob.receive(&bob, &message).unwrap()),
        "after restart"
    );

    let mut damaged = bob.save_state().unwrap().to_vec();
    damaged.truncate(damaged.len() - 1);
    assert!(Device::restore(
        DeviceKey::generate().unwrap(),
        bob.credential().clone(),
        &damaged
    )
    .is_err());
}

#[test]
fn a_key_package_with_a_forged_credential_is_refused() {
    let alice = device(1);
    let (mallory_account, _) = AccountKey::generate().unwrap();
    let key = DeviceKey::generate().unwrap();
    let mut credential = mallory_account.issue(UserId([2; 16]), DeviceId([2; 16]), &key);
    // Claims Bob's account key without Bob's signature.
    credential.account_key = AccountKey::generate().unwrap().0.public_key();
    assert!(Device::new(key, credential).is_err());

    // A valid credential whose device key is not the leaf's signature key.
    let key = DeviceKey::generate().unwrap();
    let other = DeviceKey::generate().unwrap();
    let credential = mallory_account.issue(UserId([2; 16]), DeviceId([2; 16]), &other);
    assert!(matches!(
        Device::new(key, credential),
        Err(ConversationError::Identity(_))
    ));

    let (mut at_alice, _) = alice
        .create_conversation(group_id(1), &team("t", None), &[])
        .unwrap();
    assert!(matches!(
        at_alice.add_members(&alice, &[vec![1, 2, 3]]),
        Err(ConversationError::Malformed)
    ));
}

#[test]
fn a_pending_commit_survives_a_restart_and_is_confirmed_after_it() {
    let (account, _) = AccountKey::generate().unwrap();
    let key = DeviceKey::generate().unwrap();
    let seed = ward_core::secret::Secret32::from_slice(key.seed().as_bytes()).unwrap();
    let credential = account.issue(UserId([1; 16]), DeviceId([1; 16]), &key);
    let alice = Device::new(key, credential.clone()).unwrap();
    let bob = device(2);
    let carol = device(3);
    let (mut at_alice, mut joined) =
        conversation_of(&alice, &[&bob], &team("t", None), group_id(2));
    let mut at_bob = joined.remove(0);

    let add = at_alice
        .add_members(&alice, &carol.key_packages(1).unwrap())
        .unwrap();
    let state = alice.save_state().unwrap();
    drop(at_alice);
    drop(alice);

    // The relay accepted the commit while Alice's app was closed.
    let alice = Device::restore(DeviceKey::from_seed(seed).unwrap(), credential, &state).unwrap();
    let mut at_alice = alice.conversation(&group_id(2)).unwrap().unwrap();
    assert!(at_alice.has_pending_change());
    assert!(matches!(
        at_alice.send(&alice, &text(1, "not yet")),
        Err(ConversationError::ChangePending)
    ));
    at_alice.commit_accepted(&alice).unwrap();
    changed(at_bob.receive(&bob, &add).unwrap());
    assert_eq!(at_alice.epoch_authenticator(), at_bob.epoch_authenticator());
    let at_carol = carol.join(&welcome_of(&add)).unwrap();
    assert_eq!(at_carol.epoch_authenticator(), at_bob.epoch_authenticator());
}
