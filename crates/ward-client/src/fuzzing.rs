//! Entry points for the client's fuzz targets, kept here so `cargo test` replays the checked-in
//! corpus through exactly the code the fuzzer ran. Not part of the client's API.

use ward_proto::relay_api::Inbox;
use ward_proto::GroupId;

use crate::client::{entry_message, page_in_order};

/// An inbox page as an untrusted relay might answer it: JSON, then the client's ordering and
/// hex decoding, then delivery to a live conversation when an entry names the fuzzed group.
/// Whatever the bytes, this must return, never panic.
pub fn inbox(data: &[u8]) {
    let Ok(page) = serde_json::from_slice::<Inbox>(data) else {
        return;
    };
    let fuzzed = GroupId(ward_core::fuzzing::FUZZ_GROUP);
    let messages: Vec<_> = page_in_order(&page)
        .into_iter()
        .filter_map(|(group, entry)| entry_message(&group, entry).filter(|_| group == fuzzed))
        .collect();
    let welcomes: Vec<Vec<u8>> = page
        .welcomes
        .iter()
        .filter_map(|welcome| hex::decode(&welcome.welcome).ok())
        .collect();
    if !messages.is_empty() || !welcomes.is_empty() {
        ward_core::fuzzing::deliver(&messages, &welcomes);
    }
}

/// An attachment opened in the ECG viewer: DICOM or HL7 aECG bytes from another device.
pub fn ecg(data: &[u8]) {
    let _ = crate::ecg::decode(data);
}
