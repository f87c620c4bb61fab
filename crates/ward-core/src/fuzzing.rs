//! Entry points for the fuzz targets in `fuzz/`, kept here so `cargo test` replays the checked-in
//! corpus through exactly the code the fuzzer ran. Not part of Ward's API.

use crate::attachment_stream::{decrypt_to_vec, Decryptor, FileKey, HEADER_LEN};

/// The key the fuzz corpus was encrypted under; fuzzing only ever sees test data.
pub const FUZZ_KEY: [u8; 32] = [0x42; 32];

/// Decodes `data` as an attachment stream under [`FUZZ_KEY`], feeding the body in pieces whose
/// sizes the first byte chooses. It must return, never panic, whatever the bytes; and the
/// streaming and whole-buffer decoders must agree.
pub fn attachment_stream(data: &[u8]) {
    let Some(key) = FileKey::from_slice(&FUZZ_KEY) else {
        return;
    };
    let piece = 1 + usize::from(data.first().copied().unwrap_or(0)) * 97;
    let whole = decrypt_to_vec(&key, data);

    let streamed = Decryptor::new(&key, data).and_then(|mut decryptor| {
        let mut out = Vec::new();
        for chunk in data.get(HEADER_LEN..).unwrap_or_default().chunks(piece) {
            decryptor.update(chunk, &mut out)?;
        }
        decryptor.finish(&mut out)?;
        Ok(out)
    });
    assert_eq!(
        whole, streamed,
        "the streaming and whole-buffer decoders disagree"
    );
}

/// The conversation every [`mls_incoming`] input is fed to: Alice created it and added Bob.
struct Scene {
    alice: crate::conversation::Device,
    at_alice: crate::conversation::Conversation,
    bob: crate::conversation::Device,
    at_bob: crate::conversation::Conversation,
}

/// The group id of the fuzzed conversation; inputs that name it get past the routing check.
pub const FUZZ_GROUP: [u8; 16] = [0x42; 16];

impl Scene {
    fn new() -> Option<Self> {
        use crate::conversation::Device;
        use crate::identity::{AccountKey, DeviceKey};
        use ward_proto::{DeviceId, GroupData, GroupId, UserId};
        let device = |tag: u8| -> Option<Device> {
            let (account, _) = AccountKey::generate().ok()?;
            let key = DeviceKey::generate().ok()?;
            let credential = account.issue(UserId([tag; 16]), DeviceId([tag; 16]), &key);
            Device::new(key, credential).ok()
        };
        let alice = device(1)?;
        let bob = device(2)?;
        let data = GroupData {
            name: "fuzz".to_owned(),
            patient_tag: None,
            roles: Vec::new(),
        };
        let key_package = bob.key_packages(1).ok()?;
        let (mut at_alice, commit) = alice
            .create_conversation(GroupId(FUZZ_GROUP), &data, &key_package)
            .ok()?;
        at_alice.commit_accepted(&alice).ok()?;
        let ward_proto::WireMessage::Commit {
            welcome: Some(welcome),
            ..
        } = commit?
        else {
            return None;
        };
        let at_bob = bob.join(&welcome.welcome).ok()?;
        Some(Self {
            alice,
            at_alice,
            bob,
            at_bob,
        })
    }
}

/// Feeds `data` to a fresh two-member conversation. The first byte chooses what the rest is
/// taken for: an application message or a commit for Bob, a Welcome for Bob, a KeyPackage that
/// Alice adds, or a device credential. Whatever the bytes, the answer must be a typed result.
pub fn mls_incoming(data: &[u8]) {
    use ward_proto::{GroupId, WireMessage};
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let Some(mut scene) = Scene::new() else {
        return;
    };
    let group = GroupId(FUZZ_GROUP);
    let epoch = scene.at_bob.epoch();
    match selector % 5 {
        0 => {
            let message = WireMessage::Application {
                group,
                epoch,
                message: body.to_vec(),
            };
            let _ = scene.at_bob.receive(&scene.bob, &message);
        }
        1 => {
            let message = WireMessage::Commit {
                group,
                epoch,
                message: body.to_vec(),
                welcome: None,
            };
            let _ = scene.at_bob.receive(&scene.bob, &message);
        }
        2 => {
            let _ = scene.bob.join(body);
        }
        3 => {
            let _ = scene.at_alice.add_members(&scene.alice, &[body.to_vec()]);
        }
        _ => {
            let _ = crate::identity::DeviceCredential::decode_verified(body);
        }
    }
}

/// Delivers relay-decoded messages and Welcomes, in order, to Bob in a fresh two-member
/// conversation, as a client applies an inbox page. Every outcome must be a typed result.
pub fn deliver(messages: &[ward_proto::WireMessage], welcomes: &[Vec<u8>]) {
    let Some(mut scene) = Scene::new() else {
        return;
    };
    for welcome in welcomes {
        let _ = scene.bob.join(welcome);
    }
    for message in messages {
        let _ = scene.at_bob.receive(&scene.bob, message);
    }
}

/// Real messages of each kind [`mls_incoming`] takes, prefixed with their selector byte: the
/// seed corpus. They come from another run's keys, so they parse fully and then fail to decrypt
/// or verify, which is the path an attacker's bytes take too.
pub fn mls_seed_corpus() -> Vec<(&'static str, Vec<u8>)> {
    use ward_proto::{AppContent, ClientMessageId, WireMessage};
    let Some(mut scene) = Scene::new() else {
        return Vec::new();
    };
    let mut seeds = Vec::new();
    let text = AppContent::Text {
        id: ClientMessageId([7; 16]),
        body: "seed".to_owned(),
    };
    if let Ok(WireMessage::Application { message, .. }) = scene.at_alice.send(&scene.alice, &text) {
        seeds.push(("application", [&[0u8][..], &message].concat()));
    }
    if let Ok(WireMessage::Commit { message, .. }) = scene.at_alice.self_update(&scene.alice) {
        seeds.push(("commit", [&[1u8][..], &message].concat()));
    }
    let newcomer = Scene::new().map(|other| other.bob);
    if let Some(newcomer) = newcomer {
        if let Ok(key_packages) = newcomer.key_packages(1) {
            if let Some(key_package) = key_packages.first() {
                seeds.push(("key-package", [&[3u8][..], key_package].concat()));
            }
            let _ = scene.at_alice.commit_accepted(&scene.alice);
            if let Ok(WireMessage::Commit {
                welcome: Some(welcome),
                ..
            }) = scene.at_alice.add_members(&scene.alice, &key_packages)
            {
                seeds.push(("welcome", [&[2u8][..], &welcome.welcome].concat()));
            }
        }
        seeds.push((
            "credential",
            [&[4u8][..], &newcomer.credential().encode()].concat(),
        ));
    }
    seeds
}
