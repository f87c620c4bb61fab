//! Entry points for the relay's fuzz targets, kept here so `cargo test` replays the checked-in
//! corpus through exactly the code the fuzzer ran. Not part of the relay's API.

use serde::de::DeserializeOwned;
use ward_proto::DeviceId;

use ward_proto::relay_api::{
    AckRequest, ChallengeRequest, ClaimRequest, CommitRequest, EnrollRequest, KeyPackagesRequest,
    MessageRequest, SessionRequest,
};

use crate::request::{
    commit_upload, enroll_credential, key_package_batch, message_upload, session_parts,
};

fn parse<T: DeserializeOwned>(json: &[u8]) -> Option<T> {
    serde_json::from_slice(json).ok()
}

/// A request body from an untrusted client. The first byte chooses the endpoint; the rest is its
/// JSON. Parsing and decoding must return, never panic, whatever the bytes.
pub fn request(data: &[u8]) {
    let Some((&selector, json)) = data.split_first() else {
        return;
    };
    let sender = DeviceId([7; 16]);
    match selector % 8 {
        0 => {
            if let Some(request) = parse::<CommitRequest>(json) {
                let _ = commit_upload(request, sender, 0);
            }
        }
        1 => {
            if let Some(request) = parse::<MessageRequest>(json) {
                let _ = message_upload(request, sender, 0);
            }
        }
        2 => {
            if let Some(request) = parse::<EnrollRequest>(json) {
                let _ = enroll_credential(&request);
            }
        }
        3 => {
            if let Some(request) = parse::<SessionRequest>(json) {
                let _ = session_parts(&request);
            }
        }
        4 => {
            if let Some(request) = parse::<KeyPackagesRequest>(json) {
                let _ = key_package_batch(&request);
            }
        }
        5 => {
            let _ = parse::<ChallengeRequest>(json);
        }
        6 => {
            let _ = parse::<ClaimRequest>(json);
        }
        _ => {
            let _ = parse::<AckRequest>(json);
        }
    }
}
