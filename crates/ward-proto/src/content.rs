//! What clinicians send each other: the plaintext of an MLS application message. It only ever
//! travels padded (see [`crate::padding`]) and encrypted, never in a [`crate::WireMessage`] field
//! of its own, and the file keys it carries are never printed.
//!
//! Every encoding starts with the content version, a `u8` that is 1 here, then a `u8` kind tag.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::codec::{
    Decode, DecodeError, Encode, EncodeError, Reader, Writer, MAX_LABEL_LEN, MAX_TEXT_LEN,
};
use crate::ids::{BlobId, ClientMessageId};
use crate::padding::{pad_with, unpad};

/// The version every [`AppContent`] starts with.
pub const CONTENT_VERSION: u8 = 1;

/// Length of an attachment's file key.
pub const FILE_KEY_LEN: usize = 32;

const TEXT: u8 = 1;
const ATTACHMENT: u8 = 2;
const RECEIPT: u8 = 3;
const EDIT: u8 = 4;
const DELETE: u8 = 5;

const DELIVERED: u8 = 1;
const READ: u8 = 2;

/// One message's content.
#[derive(Debug, PartialEq, Eq)]
pub enum AppContent {
    /// A text message.
    Text {
        /// The sender's id for this message.
        id: ClientMessageId,
        /// The text, at most [`MAX_TEXT_LEN`] bytes.
        body: String,
    },
    /// An attachment, stored encrypted in the relay's blob store.
    Attachment {
        /// The sender's id for this message.
        id: ClientMessageId,
        /// Where the attachment is and how to open it.
        attachment: AttachmentRef,
    },
    /// Receipts for earlier messages.
    Receipt {
        /// Delivered or read.
        kind: ReceiptKind,
        /// The messages, at most [`crate::MAX_ITEMS`].
        ids: Vec<ClientMessageId>,
    },
    /// A new text for an earlier message of the same sender.
    Edit {
        /// The sender's id for this edit.
        id: ClientMessageId,
        /// The message edited.
        target: ClientMessageId,
        /// The new text, at most [`MAX_TEXT_LEN`] bytes.
        body: String,
    },
    /// The withdrawal of an earlier message of the same sender.
    Delete {
        /// The sender's id for this deletion.
        id: ClientMessageId,
        /// The message deleted.
        target: ClientMessageId,
    },
}

/// Which receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReceiptKind {
    /// The messages reached the device.
    Delivered,
    /// The messages were shown to the clinician.
    Read,
}

/// An encrypted attachment (Ward stream v1) and what is needed to fetch, check and open it.
#[derive(Debug, PartialEq, Eq)]
pub struct AttachmentRef {
    /// The blob holding the encrypted stream.
    pub blob_id: BlobId,
    /// The stream's key.
    pub file_key: FileKeyBytes,
    /// SHA-256 of the whole encrypted stream, checked before it is opened.
    pub ciphertext_sha256: [u8; 32],
    /// The plaintext size in bytes.
    pub size: u64,
    /// The media type, such as `application/pdf`; at most [`MAX_LABEL_LEN`] bytes.
    pub media_type: String,
    /// The file name to offer when saving; at most [`MAX_LABEL_LEN`] bytes.
    pub name: String,
}

/// An attachment's 256-bit file key as it travels in a message: on the heap, zeroized on drop,
/// never printed and never serialized except into the encrypted message.
pub struct FileKeyBytes(Box<[u8; FILE_KEY_LEN]>);

impl FileKeyBytes {
    /// Takes the key from `bytes` and wipes that copy. The caller's own copies (arrays are `Copy`)
    /// remain theirs to wipe.
    pub fn from_array(mut bytes: [u8; FILE_KEY_LEN]) -> Self {
        let key = Self::copied(&bytes);
        bytes.zeroize();
        key
    }

    /// A copy of `bytes`; `None` unless there are exactly 32.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == FILE_KEY_LEN).then(|| Self::copied(bytes))
    }

    /// The key bytes, for the stream decryptor.
    pub fn as_bytes(&self) -> &[u8; FILE_KEY_LEN] {
        &self.0
    }

    /// Copies straight into the heap, so no stray copy is left on the stack.
    fn copied(bytes: &[u8]) -> Self {
        let mut key = Box::new([0u8; FILE_KEY_LEN]);
        key.copy_from_slice(bytes);
        Self(key)
    }
}

impl Drop for FileKeyBytes {
    fn drop(&mut self) {
        self.0.as_mut_slice().zeroize();
    }
}

impl ZeroizeOnDrop for FileKeyBytes {}

impl fmt::Debug for FileKeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileKeyBytes(<redacted>)")
    }
}

impl PartialEq for FileKeyBytes {
    /// Compares without an early exit, so the time taken does not say where two keys differ.
    fn eq(&self, other: &Self) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }
}

impl Eq for FileKeyBytes {}

impl Encode for ReceiptKind {
    fn encode(&self, writer: &mut Writer) -> Result<(), EncodeError> {
        writer.u8(match self {
            Self::Delivered => DELIVERED,
            Self::Read => READ,
        });
        Ok(())
    }
}

impl Decode for ReceiptKind {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match reader.u8()? {
            DELIVERED => Ok(Self::Delivered),
            READ => Ok(Self::Read),
            tag => Err(DecodeError::UnknownTag {
                what: "receipt kind",
                tag,
            }),
        }
    }
}

impl Encode for AttachmentRef {
    fn encode(&self, writer: &mut Writer) -> Result<(), EncodeError> {
        self.blob_id.encode(writer)?;
        writer.raw(self.file_key.as_bytes());
        writer.raw(&self.ciphertext_sha256);
        writer.u64(self.size);
        writer.string("media type", &self.media_type, MAX_LABEL_LEN)?;
        writer.string("attachment name", &self.name, MAX_LABEL_LEN)
    }

    fn size_hint(&self) -> usize {
        // Fixed fields, then each string behind a length of at most four bytes.
        BlobId::LEN + FILE_KEY_LEN + 32 + 8 + 4 + self.media_type.len() + 4 + self.name.len()
    }
}

impl Decode for AttachmentRef {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            blob_id: BlobId::decode(reader)?,
            // Straight from the input into the key's heap box: no copy on the stack.
            file_key: FileKeyBytes::copied(reader.take(FILE_KEY_LEN)?),
            ciphertext_sha256: reader.array()?,
            size: reader.u64()?,
            media_type: reader.string("media type", MAX_LABEL_LEN)?.to_owned(),
            name: reader.string("attachment name", MAX_LABEL_LEN)?.to_owned(),
        })
    }
}

impl Encode for AppContent {
    fn encode(&self, writer: &mut Writer) -> Result<(), EncodeError> {
        writer.u8(CONTENT_VERSION);
        match self {
            Self::Text { id, body } => {
                writer.u8(TEXT);
                id.encode(writer)?;
                writer.string("body", body, MAX_TEXT_LEN)
            }
            Self::Attachment { id, attachment } => {
                writer.u8(ATTACHMENT);
                id.encode(writer)?;
                attachment.encode(writer)
            }
            Self::Receipt { kind, ids } => {
                writer.u8(RECEIPT);
                kind.encode(writer)?;
                writer.vector("receipt ids", ids, |writer, id| id.encode(writer))
            }
            Self::Edit { id, target, body } => {
                writer.u8(EDIT);
                id.encode(writer)?;
                target.encode(writer)?;
                writer.string("body", body, MAX_TEXT_LEN)
            }
            Self::Delete { id, target } => {
                writer.u8(DELETE);
                id.encode(writer)?;
                target.encode(writer)
            }
        }
    }

    fn size_hint(&self) -> usize {
        let id = ClientMessageId::LEN;
        2 + match self {
            Self::Text { body, .. } => id + 4 + body.len(),
            Self::Attachment { attachment, .. } => id + attachment.size_hint(),
            Self::Receipt { ids, .. } => 1 + 4 + id * ids.len(),
            Self::Edit { body, .. } => 2 * id + 4 + body.len(),
            Self::Delete { .. } => 2 * id,
        }
    }
}

impl Decode for AppContent {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = reader.u8()?;
        if version != CONTENT_VERSION {
            return Err(DecodeError::UnknownVersion(version.into()));
        }
        match reader.u8()? {
            TEXT => Ok(Self::Text {
                id: ClientMessageId::decode(reader)?,
                body: reader.string("body", MAX_TEXT_LEN)?.to_owned(),
            }),
            ATTACHMENT => Ok(Self::Attachment {
                id: ClientMessageId::decode(reader)?,
                attachment: AttachmentRef::decode(reader)?,
            }),
            RECEIPT => Ok(Self::Receipt {
                kind: ReceiptKind::decode(reader)?,
                ids: reader.vector("receipt ids", ClientMessageId::decode)?,
            }),
            EDIT => Ok(Self::Edit {
                id: ClientMessageId::decode(reader)?,
                target: ClientMessageId::decode(reader)?,
                body: reader.string("body", MAX_TEXT_LEN)?.to_owned(),
            }),
            DELETE => Ok(Self::Delete {
                id: ClientMessageId::decode(reader)?,
                target: ClientMessageId::decode(reader)?,
            }),
            tag => Err(DecodeError::UnknownTag {
                what: "content",
                tag,
            }),
        }
    }
}

impl AppContent {
    /// The encoding, padded to its size bucket: the plaintext of an MLS application message.
    pub fn to_padded(&self) -> Result<Vec<u8>, EncodeError> {
        pad_with(self.size_hint(), |writer| self.encode(writer))
    }

    /// Content from the plaintext of an MLS application message: padding checked, then decoded.
    pub fn from_padded(padded: &[u8]) -> Result<Self, DecodeError> {
        Self::from_bytes(unpad(padded)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment() -> AppContent {
        AppContent::Attachment {
            id: ClientMessageId([1; 16]),
            attachment: AttachmentRef {
                blob_id: BlobId([2; 32]),
                file_key: FileKeyBytes::from_array([0xab; 32]),
                ciphertext_sha256: [3; 32],
                size: 1234,
                media_type: "image/png".to_owned(),
                name: "x-ray.png".to_owned(),
            },
        }
    }

    #[test]
    fn file_keys_print_no_bytes_and_take_exactly_32() {
        let key = FileKeyBytes::from_slice(&[0xab; 32]).unwrap();
        assert_eq!(format!("{key:?}"), "FileKeyBytes(<redacted>)");
        assert_eq!(key.as_bytes(), &[0xab; 32]);
        assert!(FileKeyBytes::from_slice(&[0; 31]).is_none());
        assert!(FileKeyBytes::from_slice(&[0; 33]).is_none());
        assert_eq!(key, FileKeyBytes::from_array([0xab; 32]));
        assert_ne!(key, FileKeyBytes::from_array([0xac; 32]));
    }

    #[test]
    fn attachment_debug_hides_the_key() {
        let printed = format!("{:?}", attachment());
        assert!(!printed.contains(&"ab".repeat(32)), "{printed}");
        assert!(!printed.contains("171, 171"), "{printed}");
        assert!(printed.contains("FileKeyBytes(<redacted>)"), "{printed}");
    }

    #[test]
    fn size_hints_bound_the_encoding() {
        let long = "é".repeat(MAX_TEXT_LEN / 2);
        for content in [
            attachment(),
            AppContent::Text {
                id: ClientMessageId([0; 16]),
                body: long.clone(),
            },
            AppContent::Edit {
                id: ClientMessageId([0; 16]),
                target: ClientMessageId([1; 16]),
                body: long,
            },
            AppContent::Receipt {
                kind: ReceiptKind::Read,
                ids: vec![ClientMessageId([4; 16]); 1000],
            },
            AppContent::Delete {
                id: ClientMessageId([0; 16]),
                target: ClientMessageId([1; 16]),
            },
        ] {
            let bytes = content.to_bytes().unwrap();
            assert!(bytes.len() <= content.size_hint(), "{content:?}");
            assert_eq!(AppContent::from_bytes(&bytes).unwrap(), content);
        }
    }

    #[test]
    fn padded_content_round_trips_and_is_bucketed() {
        let padded = attachment().to_padded().unwrap();
        assert_eq!(padded.len(), 256);
        assert_eq!(AppContent::from_padded(&padded).unwrap(), attachment());
    }

    #[test]
    fn text_over_the_limit_is_neither_written_nor_read() {
        let body = "a".repeat(MAX_TEXT_LEN + 1);
        let content = AppContent::Text {
            id: ClientMessageId([0; 16]),
            body,
        };
        assert_eq!(
            content.to_bytes(),
            Err(EncodeError::TooLong { what: "body" })
        );
        assert_eq!(
            content.to_padded(),
            Err(EncodeError::TooLong { what: "body" })
        );
        let mut bytes = vec![CONTENT_VERSION, TEXT];
        bytes.extend_from_slice(&[0; 16]);
        bytes.extend_from_slice(&(0x8000_0000u32 | (MAX_TEXT_LEN as u32 + 1)).to_be_bytes());
        bytes.resize(bytes.len() + MAX_TEXT_LEN + 1, b'a');
        assert_eq!(
            AppContent::from_bytes(&bytes),
            Err(DecodeError::TooLong { what: "body" })
        );
    }

    #[test]
    fn other_versions_and_tags_are_refused() {
        assert_eq!(
            AppContent::from_bytes(&[2, TEXT]),
            Err(DecodeError::UnknownVersion(2))
        );
        assert_eq!(
            AppContent::from_bytes(&[CONTENT_VERSION, 6]),
            Err(DecodeError::UnknownTag {
                what: "content",
                tag: 6
            })
        );
        assert_eq!(
            AppContent::from_bytes(&[CONTENT_VERSION, RECEIPT, 3, 0]),
            Err(DecodeError::UnknownTag {
                what: "receipt kind",
                tag: 3
            })
        );
    }

    #[test]
    fn invalid_utf8_in_a_body_is_refused() {
        let mut bytes = vec![CONTENT_VERSION, TEXT];
        bytes.extend_from_slice(&[0; 16]);
        bytes.extend_from_slice(&[2, 0xff, 0xfe]);
        assert_eq!(
            AppContent::from_bytes(&bytes),
            Err(DecodeError::InvalidUtf8 { what: "body" })
        );
    }
}
