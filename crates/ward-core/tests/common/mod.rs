//! Test parts shared by the conversation tests: devices with real keys and credentials, and a
//! relay stand-in that orders commits by compare-and-swap on the epoch, as the real relay does.

#![allow(dead_code)]

use ward_core::conversation::{Conversation, Device};
use ward_core::identity::{AccountKey, DeviceKey};
use ward_proto::{
    AppContent, ClientMessageId, DeviceId, GroupData, GroupId, MemberRole, UserId, WireMessage,
};

/// A device of a fresh user whose ids start with `tag`.
pub fn device(tag: u8) -> Device {
    let (account, _pkcs8) = AccountKey::generate().unwrap();
    let key = DeviceKey::generate().unwrap();
    let credential = account.issue(UserId([tag; 16]), DeviceId([tag; 16]), &key);
    Device::new(key, credential).unwrap()
}

/// A second device of the same user as `account`.
pub fn device_of(account: &AccountKey, user: UserId, device_tag: u8) -> Device {
    let key = DeviceKey::generate().unwrap();
    let credential = account.issue(user, DeviceId([device_tag; 16]), &key);
    Device::new(key, credential).unwrap()
}

pub fn team(name: &str, tag: Option<&str>) -> GroupData {
    GroupData {
        name: name.to_owned(),
        patient_tag: tag.map(str::to_owned),
        roles: vec![(UserId([1; 16]), MemberRole::Admin)],
    }
}

pub fn text(id: u8, body: &str) -> AppContent {
    AppContent::Text {
        id: ClientMessageId([id; 16]),
        body: body.to_owned(),
    }
}

pub fn group_id(tag: u8) -> GroupId {
    GroupId([tag; 16])
}

/// The Welcome bytes inside a commit, for the devices it adds.
pub fn welcome_of(commit: &WireMessage) -> Vec<u8> {
    match commit {
        WireMessage::Commit {
            welcome: Some(bundle),
            ..
        } => bundle.welcome.clone(),
        other => panic!("expected a commit with a welcome, got {other:?}"),
    }
}

/// Creates a conversation of `creator` with `others`, and lets every other device join.
pub fn conversation_of(
    creator: &Device,
    others: &[&Device],
    data: &GroupData,
    id: GroupId,
) -> (Conversation, Vec<Conversation>) {
    let key_packages: Vec<Vec<u8>> = others
        .iter()
        .map(|device| device.key_packages(1).unwrap().remove(0))
        .collect();
    let (mut created, commit) = creator
        .create_conversation(id, data, &key_packages)
        .unwrap();
    let joined = match commit {
        Some(commit) => {
            created.commit_accepted(creator).unwrap();
            let welcome = welcome_of(&commit);
            others
                .iter()
                .map(|device| device.join(&welcome).unwrap())
                .collect()
        }
        None => Vec::new(),
    };
    (created, joined)
}

/// The body of a text message, or a panic naming what arrived instead.
pub fn body_of(received: ward_core::conversation::Received) -> String {
    match received {
        ward_core::conversation::Received::Message {
            content: AppContent::Text { body, .. },
            ..
        } => body,
        other => panic!("expected a text message, got {other:?}"),
    }
}
