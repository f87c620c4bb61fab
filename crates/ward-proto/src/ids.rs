//! The fixed-size ids Ward's messages name things by. They are opaque random bytes, not secrets,
//! so `Debug` prints them in hex; on the wire they are their raw bytes, without a length.

use std::fmt;

use crate::codec::{Decode, DecodeError, Encode, EncodeError, Reader, Writer};

macro_rules! fixed_id {
    ($(#[$doc:meta])* $name:ident, $len:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// The id's bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "("))?;
                for byte in &self.0 {
                    write!(f, "{byte:02x}")?;
                }
                f.write_str(")")
            }
        }

        impl Encode for $name {
            fn encode(&self, writer: &mut Writer) -> Result<(), EncodeError> {
                writer.raw(&self.0);
                Ok(())
            }
        }

        impl Decode for $name {
            fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
                reader.array().map(Self)
            }
        }
    };
}

fixed_id!(
    /// A Ward account: one clinician, across all their devices.
    UserId,
    16
);
fixed_id!(
    /// One device of an account; MLS leaves, key packages and welcomes belong to devices.
    DeviceId,
    16
);
fixed_id!(
    /// A care-team conversation: one MLS group.
    GroupId,
    16
);
fixed_id!(
    /// Chosen by the sender for each message, so a message delivered twice is shown once and a
    /// receipt, edit or delete can name it.
    ClientMessageId,
    16
);
fixed_id!(
    /// An encrypted attachment in the relay's blob store.
    BlobId,
    32
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_as_hex() {
        let mut bytes = [0u8; 16];
        bytes[0] = 0xab;
        bytes[15] = 0x01;
        assert_eq!(
            format!("{:?}", GroupId(bytes)),
            "GroupId(ab000000000000000000000000000001)"
        );
        assert_eq!(
            format!("{:?}", BlobId([0xff; 32])),
            format!("BlobId({})", "ff".repeat(32))
        );
    }

    #[test]
    fn ids_are_their_raw_bytes() {
        let id = UserId([7; 16]);
        assert_eq!(id.to_bytes().unwrap(), [7; 16]);
        assert_eq!(UserId::from_bytes(&[7; 16]), Ok(id));
        assert_eq!(UserId::from_bytes(&[7; 15]), Err(DecodeError::Truncated));
        assert_eq!(
            UserId::from_bytes(&[7; 17]),
            Err(DecodeError::TrailingBytes)
        );
    }
}
