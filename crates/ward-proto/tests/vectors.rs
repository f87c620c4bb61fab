//! Freezes Ward wire v1. `test_vectors/wire-v1.json` holds the encoding of fixed values, one for
//! every message kind; each must decode to exactly the value built here and re-encode to exactly
//! its bytes. A change to the code or to the file, however small, fails here. Regenerate the file
//! only for a deliberate format change, which also needs a new version number:
//! `WARD_UPDATE_VECTORS=1 cargo test -p ward-proto --test vectors -- --ignored write_vectors`.

// Helpers in a test file are test code too: a failed unwrap is the test failing, with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use ward_proto::{
    fuzzing, AppContent, AttachmentRef, BlobId, ClientMessageId, Control, Decode, DeviceId, Encode,
    FileKeyBytes, GroupData, GroupId, MemberRole, ReceiptKind, UserId, WelcomeBundle, WireMessage,
};

#[derive(Debug, Serialize, Deserialize)]
struct Vector {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    hex: String,
}

/// A value the file must hold the encoding of, under the decoder that reads it.
enum Expected {
    Wire(WireMessage),
    App(AppContent),
    Group(GroupData),
    Padded(AppContent),
}

impl Expected {
    fn kind(&self) -> &'static str {
        match self {
            Self::Wire(_) => "wire_message",
            Self::App(_) => "app_content",
            Self::Group(_) => "group_data",
            Self::Padded(_) => "padded",
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Self::Wire(message) => message.to_bytes().unwrap(),
            Self::App(content) => content.to_bytes().unwrap(),
            Self::Group(data) => data.to_bytes().unwrap(),
            Self::Padded(content) => content.to_padded().unwrap(),
        }
    }

    /// Decodes `bytes` with this value's decoder; `Err` carries the error's text.
    fn decodes_to_self(&self, bytes: &[u8]) -> Result<bool, String> {
        let text = |error: ward_proto::DecodeError| error.to_string();
        Ok(match self {
            Self::Wire(message) => WireMessage::from_bytes(bytes).map_err(text)? == *message,
            Self::App(content) => AppContent::from_bytes(bytes).map_err(text)? == *content,
            Self::Group(data) => GroupData::from_bytes(bytes).map_err(text)? == *data,
            Self::Padded(content) => AppContent::from_padded(bytes).map_err(text)? == *content,
        })
    }

    /// The fuzz entry point for this value's decoder.
    fn fuzz(&self, bytes: &[u8]) {
        match self {
            Self::Wire(_) => fuzzing::wire_message(bytes),
            Self::App(_) | Self::Padded(_) => fuzzing::app_content(bytes),
            Self::Group(_) => fuzzing::group_data(bytes),
        }
    }
}

/// `N` bytes counting up from `first`, so every id in the vectors is distinct and recognizable.
fn counting<const N: usize>(first: u8) -> [u8; N] {
    std::array::from_fn(|i| first.wrapping_add(i as u8))
}

/// `len` bytes of a fixed pattern standing in for a TLS-serialized MLS message.
fn mls_bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add((i * 7) as u8)).collect()
}

fn message_id(first: u8) -> ClientMessageId {
    ClientMessageId(counting(first))
}

const GROUP: GroupId = GroupId([
    0x67, 0x72, 0x6f, 0x75, 0x70, 0x2d, 0x34, 0x62, 0x2d, 0x6e, 0x69, 0x67, 0x68, 0x74, 0x00, 0x01,
]);
const EPOCH: u64 = 0x0102_0304_0506_0708;

fn attachment() -> AttachmentRef {
    AttachmentRef {
        blob_id: BlobId(counting(0xb0)),
        file_key: FileKeyBytes::from_array(counting(0x40)),
        ciphertext_sha256: counting(0xc0),
        size: 1_048_577,
        media_type: "application/pdf".to_owned(),
        name: "EKG 2024-03-01 07:45.pdf".to_owned(),
    }
}

/// Every vector, by name. The names are the file's keys and the fuzz corpus's file names.
fn expected() -> Vec<(&'static str, Expected)> {
    use Expected::{App, Group, Padded, Wire};
    vec![
        (
            "key_package_upload",
            Wire(WireMessage::KeyPackageUpload {
                device: DeviceId(counting(0x10)),
                key_packages: vec![mls_bytes(40, 1), mls_bytes(41, 2)],
                last_resort: Some(mls_bytes(42, 3)),
            }),
        ),
        (
            "key_package_upload_empty",
            Wire(WireMessage::KeyPackageUpload {
                device: DeviceId(counting(0x10)),
                key_packages: vec![],
                last_resort: None,
            }),
        ),
        (
            "commit_with_welcome",
            Wire(WireMessage::Commit {
                group: GROUP,
                epoch: EPOCH,
                message: mls_bytes(48, 4),
                welcome: Some(WelcomeBundle {
                    recipients: vec![DeviceId(counting(0x20)), DeviceId(counting(0x30))],
                    welcome: mls_bytes(50, 5),
                }),
            }),
        ),
        (
            "commit",
            Wire(WireMessage::Commit {
                group: GROUP,
                epoch: 0,
                message: mls_bytes(20, 6),
                welcome: None,
            }),
        ),
        (
            "proposal",
            Wire(WireMessage::Proposal {
                group: GROUP,
                epoch: EPOCH,
                message: mls_bytes(30, 7),
            }),
        ),
        (
            "application",
            Wire(WireMessage::Application {
                group: GROUP,
                epoch: EPOCH,
                message: mls_bytes(63, 8),
            }),
        ),
        (
            "application_2_byte_length",
            Wire(WireMessage::Application {
                group: GROUP,
                epoch: u64::MAX,
                message: mls_bytes(64, 9),
            }),
        ),
        (
            "application_4_byte_length",
            Wire(WireMessage::Application {
                group: GROUP,
                epoch: 1,
                message: mls_bytes(16_384, 10),
            }),
        ),
        (
            "welcome",
            Wire(WireMessage::Welcome {
                group: GROUP,
                welcome: mls_bytes(50, 5),
            }),
        ),
        (
            "control_epoch_moved",
            Wire(WireMessage::Control(Control::EpochMoved {
                group: GROUP,
                current_epoch: EPOCH,
            })),
        ),
        (
            "control_ack",
            Wire(WireMessage::Control(Control::Ack {
                group: GROUP,
                sequence: 0x00ff_00ff,
            })),
        ),
        (
            "text",
            App(AppContent::Text {
                id: message_id(0x50),
                body: "Bed 12: K+ 6.1, repeat in 1 h".to_owned(),
            }),
        ),
        (
            "text_empty",
            App(AppContent::Text {
                id: message_id(0x51),
                body: String::new(),
            }),
        ),
        (
            "text_unicode",
            App(AppContent::Text {
                id: message_id(0x52),
                body: "SpO₂ 91 % → O₂ 2 l/min, Zimmer 3 🫁".to_owned(),
            }),
        ),
        (
            "attachment",
            App(AppContent::Attachment {
                id: message_id(0x53),
                attachment: attachment(),
            }),
        ),
        (
            "receipt_delivered",
            App(AppContent::Receipt {
                kind: ReceiptKind::Delivered,
                ids: vec![message_id(0x50)],
            }),
        ),
        (
            "receipt_read",
            App(AppContent::Receipt {
                kind: ReceiptKind::Read,
                ids: vec![message_id(0x50), message_id(0x52), message_id(0x53)],
            }),
        ),
        (
            "edit",
            App(AppContent::Edit {
                id: message_id(0x54),
                target: message_id(0x50),
                body: "Bed 12: K+ 6.1, repeat in 2 h".to_owned(),
            }),
        ),
        (
            "delete",
            App(AppContent::Delete {
                id: message_id(0x55),
                target: message_id(0x54),
            }),
        ),
        (
            "group_data",
            Group(GroupData {
                name: "Ward 4B night".to_owned(),
                patient_tag: Some("MRN 0012345".to_owned()),
                roles: vec![
                    (UserId(counting(0x70)), MemberRole::Admin),
                    (UserId(counting(0x80)), MemberRole::Member),
                ],
            }),
        ),
        (
            "group_data_minimal",
            Group(GroupData {
                name: "On call".to_owned(),
                patient_tag: None,
                roles: vec![],
            }),
        ),
        (
            "padded_text",
            Padded(AppContent::Text {
                id: message_id(0x50),
                body: "Bed 12: K+ 6.1, repeat in 1 h".to_owned(),
            }),
        ),
        (
            "padded_text_512",
            Padded(AppContent::Text {
                id: message_id(0x56),
                body: "x".repeat(300),
            }),
        ),
        (
            "padded_attachment",
            Padded(AppContent::Attachment {
                id: message_id(0x53),
                attachment: attachment(),
            }),
        ),
    ]
}

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test_vectors/wire-v1.json")
}

fn load() -> Vec<Vector> {
    let text = std::fs::read_to_string(vectors_path()).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn vectors_decode_to_the_expected_values_and_re_encode_byte_for_byte() {
    let file = load();
    let expected = expected();
    let file_names: Vec<&str> = file.iter().map(|vector| vector.name.as_str()).collect();
    let expected_names: Vec<&str> = expected.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        file_names, expected_names,
        "the file and the test list differ"
    );

    for (vector, (name, value)) in file.iter().zip(&expected) {
        assert_eq!(vector.kind, value.kind(), "{name}");
        let bytes = hex::decode(&vector.hex).unwrap();
        assert_eq!(
            value.decodes_to_self(&bytes),
            Ok(true),
            "{name} decodes to another value"
        );
        assert_eq!(
            hex::encode(value.encode()),
            vector.hex,
            "{name} encodes to other bytes"
        );
    }
}

#[test]
fn every_message_kind_has_a_vector() {
    // Exhaustive matches: a new variant fails to compile here until it has a name, and then
    // fails the test until it has a vector.
    fn wire(message: &WireMessage) -> &'static str {
        match message {
            WireMessage::KeyPackageUpload { .. } => "key package upload",
            WireMessage::Commit { welcome: None, .. } => "commit",
            WireMessage::Commit {
                welcome: Some(_), ..
            } => "commit with welcome",
            WireMessage::Proposal { .. } => "proposal",
            WireMessage::Application { .. } => "application",
            WireMessage::Welcome { .. } => "welcome",
            WireMessage::Control(Control::EpochMoved { .. }) => "epoch moved",
            WireMessage::Control(Control::Ack { .. }) => "ack",
        }
    }
    fn app(content: &AppContent) -> &'static str {
        match content {
            AppContent::Text { .. } => "text",
            AppContent::Attachment { .. } => "attachment",
            AppContent::Receipt {
                kind: ReceiptKind::Delivered,
                ..
            } => "delivered",
            AppContent::Receipt {
                kind: ReceiptKind::Read,
                ..
            } => "read",
            AppContent::Edit { .. } => "edit",
            AppContent::Delete { .. } => "delete",
        }
    }
    fn roles(data: &GroupData) -> Vec<&'static str> {
        data.roles
            .iter()
            .map(|(_, role)| match role {
                MemberRole::Admin => "admin",
                MemberRole::Member => "member",
            })
            .collect()
    }

    let mut covered = BTreeSet::new();
    for (_, value) in expected() {
        match value {
            Expected::Wire(message) => {
                covered.insert(wire(&message));
            }
            Expected::App(content) | Expected::Padded(content) => {
                covered.insert(app(&content));
            }
            Expected::Group(data) => {
                covered.extend(roles(&data));
                covered.insert(if data.patient_tag.is_some() {
                    "patient tag"
                } else {
                    "no patient tag"
                });
            }
        }
    }
    let all = BTreeSet::from([
        "key package upload",
        "commit",
        "commit with welcome",
        "proposal",
        "application",
        "welcome",
        "epoch moved",
        "ack",
        "text",
        "attachment",
        "delivered",
        "read",
        "edit",
        "delete",
        "admin",
        "member",
        "patient tag",
        "no patient tag",
    ]);
    assert_eq!(covered, all);
}

#[test]
fn no_truncation_or_bit_flip_of_a_vector_panics() {
    for (name, value) in expected() {
        let bytes = value.encode();
        for len in 0..bytes.len() {
            let cut = &bytes[..len];
            value.fuzz(cut);
            // Every encoding is self-delimiting, so no proper prefix of one is another.
            assert!(
                value.decodes_to_self(cut).is_err(),
                "{name} cut to {len} bytes still decodes"
            );
        }
        let mut flipped = bytes.clone();
        for bit in 0..bytes.len() * 8 {
            flipped[bit / 8] ^= 1 << (bit % 8);
            value.fuzz(&flipped);
            flipped[bit / 8] ^= 1 << (bit % 8);
        }
    }
}

/// Rewrites `test_vectors/wire-v1.json` from the values above. It writes nothing unless
/// `WARD_UPDATE_VECTORS=1` is set, so `--ignored` runs cannot change the frozen format by accident.
#[test]
#[ignore = "rewrites the frozen vectors; run by hand with WARD_UPDATE_VECTORS=1"]
fn write_vectors() {
    if std::env::var_os("WARD_UPDATE_VECTORS").is_none_or(|value| value != "1") {
        eprintln!("WARD_UPDATE_VECTORS=1 is not set; nothing written");
        return;
    }
    let vectors: Vec<Vector> = expected()
        .into_iter()
        .map(|(name, value)| Vector {
            name: name.to_owned(),
            kind: value.kind().to_owned(),
            hex: hex::encode(value.encode()),
        })
        .collect();
    let mut json = serde_json::to_string_pretty(&vectors).unwrap();
    json.push('\n');
    std::fs::write(vectors_path(), json).unwrap();
}
