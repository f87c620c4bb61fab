//! Ward wire v1: the binary encoding of what Ward's clients and relay exchange, shared by both.
//!
//! This crate only encodes and decodes; it does no IO and holds no keys beyond the file keys that
//! travel inside messages. There are three layers, kept apart by type:
//!
//! - [`WireMessage`]: what the relay sees and routes. It carries MLS messages as opaque bytes.
//! - [`AppContent`]: what one member sends the others (text, attachments, receipts, edits,
//!   deletions). It is padded to a size bucket ([`padding`]) and only ever sent as the plaintext of
//!   an MLS application message.
//! - [`GroupData`]: a care team's name, roles and patient tag, only ever held inside MLS as an
//!   encrypted group context extension.
//!
//! The primitives are in [`codec`]; `docs/protocol.md` describes every byte. Decoders take
//! untrusted input and must never panic, never allocate more than the input justifies, and never
//! accept two encodings of one value. Nothing here may ever print a file key, put an error's input
//! bytes in its message, or move content, names or patient tags into a relay-visible field.

pub mod codec;
pub mod content;
pub mod group_data;
pub mod ids;
pub mod padding;
pub mod relay_api;
pub mod wire;

#[doc(hidden)]
pub mod fuzzing;

pub use codec::{
    Decode, DecodeError, Encode, EncodeError, MAX_FIELD_LEN, MAX_ITEMS, MAX_LABEL_LEN, MAX_TEXT_LEN,
};
pub use content::{AppContent, AttachmentRef, FileKeyBytes, ReceiptKind};
pub use group_data::{GroupData, MemberRole};
pub use ids::{BlobId, ClientMessageId, DeviceId, GroupId, UserId};
pub use padding::{pad, padded_len, unpad};
pub use wire::{Control, WelcomeBundle, WireMessage};
