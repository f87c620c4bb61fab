//! Entry points for cargo-fuzz targets, kept here so `cargo test` replays the checked-in corpus
//! (`fuzz/corpus/`) through exactly the code the fuzzer ran. Not part of Ward's API.
//!
//! Each decodes untrusted bytes and must return, never panic. When the bytes decode, they must be
//! the canonical encoding of what they decoded to: re-encoding gives them back byte for byte.

use crate::{AppContent, Decode, Encode, GroupData, WireMessage};

fn assert_canonical<T: Decode + Encode>(data: &[u8]) {
    if let Ok(value) = T::from_bytes(data) {
        assert_eq!(
            value.to_bytes().as_deref(),
            Ok(data),
            "a decoded value re-encodes to other bytes"
        );
    }
}

/// Bytes from the relay, as a [`WireMessage`].
pub fn wire_message(data: &[u8]) {
    assert_canonical::<WireMessage>(data);
}

/// Decrypted bytes from another member, as an [`AppContent`], both bare and padded.
pub fn app_content(data: &[u8]) {
    assert_canonical::<AppContent>(data);
    if let Ok(content) = AppContent::from_padded(data) {
        assert_eq!(
            content.to_padded().as_deref(),
            Ok(data),
            "decoded padded content re-pads to other bytes"
        );
    }
}

/// A group context extension from another member, as [`GroupData`].
pub fn group_data(data: &[u8]) {
    assert_canonical::<GroupData>(data);
}
