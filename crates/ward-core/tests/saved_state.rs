//! MLS state saved by an earlier version of Ward must still load: a frozen device state, and a
//! message encrypted for it, both written by `write_state_vector` and never rewritten unless the
//! format is deliberately migrated.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use ward_core::conversation::{Device, Received};
use ward_core::identity::{DeviceCredential, DeviceKey};
use ward_core::secret::Secret32;
use ward_proto::{AppContent, Decode, Encode, GroupId, WireMessage};

/// What the frozen state is checked against. The device seed is test data, made for this file.
#[derive(Serialize, Deserialize)]
struct StateVector {
    device_seed: String,
    credential: String,
    group: String,
    message: String,
    body: String,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test_vectors/state")
}

#[test]
fn a_device_state_saved_by_wire_version_1_still_loads_and_decrypts() {
    let vector: StateVector =
        serde_json::from_str(&std::fs::read_to_string(dir().join("v1.json")).unwrap()).unwrap();
    let state = std::fs::read(dir().join("v1-device-state.bin")).unwrap();
    let seed = Secret32::from_slice(&hex::decode(&vector.device_seed).unwrap()).unwrap();
    let credential =
        DeviceCredential::decode_verified(&hex::decode(&vector.credential).unwrap()).unwrap();
    let device = Device::restore(DeviceKey::from_seed(seed).unwrap(), credential, &state).unwrap();
    let group = GroupId(hex::decode(&vector.group).unwrap().try_into().unwrap());
    let mut conversation = device.conversation(&group).unwrap().expect("saved group");
    assert_eq!(conversation.group_data().unwrap().name, "frozen team");

    let message = WireMessage::from_bytes(&hex::decode(&vector.message).unwrap()).unwrap();
    match conversation.receive(&device, &message).unwrap() {
        Received::Message {
            content: AppContent::Text { body, .. },
            ..
        } => assert_eq!(body, vector.body),
        other => panic!("{other:?}"),
    }
}

/// Freezes a new state vector. Only for a deliberate format change, with a migration for the old:
/// `WARD_UPDATE_VECTORS=1 cargo test -p ward-core --test saved_state -- --ignored`.
#[test]
#[ignore = "rewrites test_vectors/state; run by hand"]
fn write_state_vector() {
    if std::env::var_os("WARD_UPDATE_VECTORS").is_none() {
        return;
    }
    let alice = common::device(1);
    let (account, _) = ward_core::identity::AccountKey::generate().unwrap();
    let key = DeviceKey::generate().unwrap();
    let seed = hex::encode(key.seed().as_bytes());
    let credential = account.issue(
        ward_proto::UserId([2; 16]),
        ward_proto::DeviceId([2; 16]),
        &key,
    );
    let bob = Device::new(key, credential.clone()).unwrap();
    let (mut at_alice, _) = common::conversation_of(
        &alice,
        &[&bob],
        &common::team("frozen team", Some("MRN-0001")),
        common::group_id(0x5e),
    );
    let state = bob.save_state().unwrap();
    let body = "decrypted by a state saved by Ward wire version 1";
    let message = at_alice.send(&alice, &common::text(1, body)).unwrap();
    std::fs::create_dir_all(dir()).unwrap();
    std::fs::write(dir().join("v1-device-state.bin"), &*state).unwrap();
    let vector = StateVector {
        device_seed: seed,
        credential: hex::encode(credential.encode()),
        group: hex::encode(common::group_id(0x5e).as_bytes()),
        message: hex::encode(message.to_bytes().unwrap()),
        body: body.to_owned(),
    };
    std::fs::write(
        dir().join("v1.json"),
        serde_json::to_string_pretty(&vector).unwrap() + "\n",
    )
    .unwrap();
}
