//! The outer messages: what a device sends to the relay and the relay delivers, so everything here
//! is visible to the relay. The MLS messages inside are opaque bytes, and nothing here may ever
//! carry content, a group's name, roles or patient tag; those travel only inside MLS encryption
//! (see [`crate::content`] and [`crate::group_data`]).
//!
//! Every encoding starts with the format version, a `u16` that is 1 here, then a `u8` kind tag.

use crate::codec::{Decode, DecodeError, Encode, EncodeError, Reader, Writer, MAX_FIELD_LEN};
use crate::ids::{DeviceId, GroupId};

/// The version every [`WireMessage`] starts with.
pub const WIRE_VERSION: u16 = 1;

const KEY_PACKAGE_UPLOAD: u8 = 1;
const COMMIT: u8 = 2;
const PROPOSAL: u8 = 3;
const APPLICATION: u8 = 4;
const WELCOME: u8 = 5;
const CONTROL: u8 = 6;

const EPOCH_MOVED: u8 = 1;
const ACK: u8 = 2;

/// One relay-visible message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireMessage {
    /// A device publishes key packages so others can add it to groups.
    KeyPackageUpload {
        /// The device the key packages belong to.
        device: DeviceId,
        /// TLS-serialized MLS KeyPackages, each used once.
        key_packages: Vec<Vec<u8>>,
        /// A key package handed out when the others run out, replacing any earlier one.
        last_resort: Option<Vec<u8>>,
    },
    /// An MLS commit moving `group` from `epoch` to the next.
    Commit {
        /// The group.
        group: GroupId,
        /// The epoch the commit was made in; the relay accepts one commit per epoch.
        epoch: u64,
        /// The TLS-serialized MLS commit.
        message: Vec<u8>,
        /// The Welcome for members this commit adds; the relay queues it only once it has
        /// accepted the commit.
        welcome: Option<WelcomeBundle>,
    },
    /// An MLS proposal in `group` at `epoch`.
    Proposal {
        /// The group.
        group: GroupId,
        /// The epoch the proposal was made in.
        epoch: u64,
        /// The TLS-serialized MLS proposal.
        message: Vec<u8>,
    },
    /// An MLS application message (a PrivateMessage) in `group` at `epoch`.
    Application {
        /// The group.
        group: GroupId,
        /// The epoch the message was encrypted in.
        epoch: u64,
        /// The TLS-serialized MLS PrivateMessage; its plaintext is a padded [`crate::AppContent`].
        message: Vec<u8>,
    },
    /// A Welcome, as the relay delivers it to one added device.
    Welcome {
        /// The group the device was added to.
        group: GroupId,
        /// The TLS-serialized MLS Welcome.
        welcome: Vec<u8>,
    },
    /// Relay bookkeeping, with no MLS content.
    Control(Control),
}

/// A Welcome sent alongside the commit that adds its recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WelcomeBundle {
    /// The devices the commit adds, which each receive [`WireMessage::Welcome`].
    pub recipients: Vec<DeviceId>,
    /// The TLS-serialized MLS Welcome.
    pub welcome: Vec<u8>,
}

/// Relay bookkeeping messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// The relay tells a device that `group` has moved to `current_epoch`, for instance after
    /// refusing something sent in an older epoch.
    EpochMoved {
        /// The group.
        group: GroupId,
        /// The epoch the relay holds as current.
        current_epoch: u64,
    },
    /// A device acknowledges everything in `group` up to `sequence`, which the relay need no
    /// longer keep for it.
    Ack {
        /// The group.
        group: GroupId,
        /// The relay's sequence number of the last message the device has.
        sequence: u64,
    },
}

fn opaque(writer: &mut Writer, what: &'static str, bytes: &[u8]) -> Result<(), EncodeError> {
    writer.opaque(what, bytes, MAX_FIELD_LEN)
}

fn read_opaque(reader: &mut Reader<'_>, what: &'static str) -> Result<Vec<u8>, DecodeError> {
    reader.opaque(what, MAX_FIELD_LEN).map(<[u8]>::to_vec)
}

impl Encode for WelcomeBundle {
    fn encode(&self, writer: &mut Writer) -> Result<(), EncodeError> {
        writer.vector("welcome recipients", &self.recipients, |writer, device| {
            device.encode(writer)
        })?;
        opaque(writer, "welcome", &self.welcome)
    }
}

impl Decode for WelcomeBundle {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            recipients: reader.vector("welcome recipients", DeviceId::decode)?,
            welcome: read_opaque(reader, "welcome")?,
        })
    }
}

impl Encode for Control {
    fn encode(&self, writer: &mut Writer) -> Result<(), EncodeError> {
        let (tag, group, number) = match self {
            Self::EpochMoved {
                group,
                current_epoch,
            } => (EPOCH_MOVED, group, current_epoch),
            Self::Ack { group, sequence } => (ACK, group, sequence),
        };
        writer.u8(tag);
        group.encode(writer)?;
        writer.u64(*number);
        Ok(())
    }
}

impl Decode for Control {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match reader.u8()? {
            EPOCH_MOVED => Ok(Self::EpochMoved {
                group: GroupId::decode(reader)?,
                current_epoch: reader.u64()?,
            }),
            ACK => Ok(Self::Ack {
                group: GroupId::decode(reader)?,
                sequence: reader.u64()?,
            }),
            tag => Err(DecodeError::UnknownTag {
                what: "control",
                tag,
            }),
        }
    }
}

impl Encode for WireMessage {
    fn encode(&self, writer: &mut Writer) -> Result<(), EncodeError> {
        writer.u16(WIRE_VERSION);
        match self {
            Self::KeyPackageUpload {
                device,
                key_packages,
                last_resort,
            } => {
                writer.u8(KEY_PACKAGE_UPLOAD);
                device.encode(writer)?;
                writer.vector("key packages", key_packages, |writer, package| {
                    opaque(writer, "key package", package)
                })?;
                writer.option(last_resort.as_ref(), |writer, package| {
                    opaque(writer, "last resort key package", package)
                })
            }
            Self::Commit {
                group,
                epoch,
                message,
                welcome,
            } => {
                writer.u8(COMMIT);
                group.encode(writer)?;
                writer.u64(*epoch);
                opaque(writer, "commit", message)?;
                writer.option(welcome.as_ref(), |writer, bundle| bundle.encode(writer))
            }
            Self::Proposal {
                group,
                epoch,
                message,
            } => {
                writer.u8(PROPOSAL);
                group.encode(writer)?;
                writer.u64(*epoch);
                opaque(writer, "proposal", message)
            }
            Self::Application {
                group,
                epoch,
                message,
            } => {
                writer.u8(APPLICATION);
                group.encode(writer)?;
                writer.u64(*epoch);
                opaque(writer, "application message", message)
            }
            Self::Welcome { group, welcome } => {
                writer.u8(WELCOME);
                group.encode(writer)?;
                opaque(writer, "welcome", welcome)
            }
            Self::Control(control) => {
                writer.u8(CONTROL);
                control.encode(writer)
            }
        }
    }
}

impl Decode for WireMessage {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = reader.u16()?;
        if version != WIRE_VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        match reader.u8()? {
            KEY_PACKAGE_UPLOAD => Ok(Self::KeyPackageUpload {
                device: DeviceId::decode(reader)?,
                key_packages: reader
                    .vector("key packages", |reader| read_opaque(reader, "key package"))?,
                last_resort: reader
                    .option(|reader| read_opaque(reader, "last resort key package"))?,
            }),
            COMMIT => Ok(Self::Commit {
                group: GroupId::decode(reader)?,
                epoch: reader.u64()?,
                message: read_opaque(reader, "commit")?,
                welcome: reader.option(WelcomeBundle::decode)?,
            }),
            PROPOSAL => Ok(Self::Proposal {
                group: GroupId::decode(reader)?,
                epoch: reader.u64()?,
                message: read_opaque(reader, "proposal")?,
            }),
            APPLICATION => Ok(Self::Application {
                group: GroupId::decode(reader)?,
                epoch: reader.u64()?,
                message: read_opaque(reader, "application message")?,
            }),
            WELCOME => Ok(Self::Welcome {
                group: GroupId::decode(reader)?,
                welcome: read_opaque(reader, "welcome")?,
            }),
            CONTROL => Control::decode(reader).map(Self::Control),
            tag => Err(DecodeError::UnknownTag {
                what: "wire message",
                tag,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_versions_and_kinds_are_refused() {
        assert_eq!(
            WireMessage::from_bytes(&[0, 2, 6, 2]),
            Err(DecodeError::UnknownVersion(2))
        );
        for tag in [0, 7, 0xff] {
            assert_eq!(
                WireMessage::from_bytes(&[0, 1, tag]),
                Err(DecodeError::UnknownTag {
                    what: "wire message",
                    tag
                })
            );
        }
        assert_eq!(
            WireMessage::from_bytes(&[0, 1, CONTROL, 3]),
            Err(DecodeError::UnknownTag {
                what: "control",
                tag: 3
            })
        );
    }

    #[test]
    fn a_message_over_the_field_limit_is_neither_written_nor_read() {
        let message = WireMessage::Application {
            group: GroupId([1; 16]),
            epoch: 1,
            message: vec![0; MAX_FIELD_LEN + 1],
        };
        assert_eq!(
            message.to_bytes(),
            Err(EncodeError::TooLong {
                what: "application message"
            })
        );
        let mut bytes = vec![0, 1, APPLICATION];
        bytes.extend_from_slice(&[1; 16]);
        bytes.extend_from_slice(&1u64.to_be_bytes());
        bytes.extend_from_slice(&(0x8000_0000u32 | (MAX_FIELD_LEN as u32 + 1)).to_be_bytes());
        bytes.resize(bytes.len() + MAX_FIELD_LEN + 1, 0);
        assert_eq!(
            WireMessage::from_bytes(&bytes),
            Err(DecodeError::TooLong {
                what: "application message"
            })
        );
    }

    #[test]
    fn a_byte_after_the_message_is_refused() {
        let mut bytes = WireMessage::Control(Control::Ack {
            group: GroupId([2; 16]),
            sequence: 9,
        })
        .to_bytes()
        .unwrap();
        bytes.push(0);
        assert_eq!(
            WireMessage::from_bytes(&bytes),
            Err(DecodeError::TrailingBytes)
        );
    }
}
