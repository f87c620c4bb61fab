//! Decoding of the JSON request bodies (`ward_proto::relay_api`) into what the store takes. Every
//! byte here comes from an unauthenticated or untrusted client, so each function returns
//! `BadRequest` rather than panicking; the `relay_request` fuzz target holds them to that.

use ward_core::identity::DeviceCredential;
use ward_proto::relay_api::{
    CommitRequest, EnrollRequest, KeyPackagesRequest, MessageRequest, SessionRequest,
};
use ward_proto::{DeviceId, GroupId};

use crate::api::ApiError;
use crate::store::{CommitUpload, MessageUpload};

pub(crate) fn unhex<const N: usize>(text: &str) -> Result<[u8; N], ApiError> {
    hex::decode(text)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(ApiError::BadRequest)
}

pub(crate) fn unhex_vec(text: &str) -> Result<Vec<u8>, ApiError> {
    hex::decode(text).map_err(|_| ApiError::BadRequest)
}

/// The verified credential of an enrollment, and its bytes as they will be stored.
pub fn enroll_credential(request: &EnrollRequest) -> Result<(DeviceCredential, Vec<u8>), ApiError> {
    let bytes = unhex_vec(&request.credential)?;
    let credential = DeviceCredential::decode_verified(&bytes).map_err(|_| ApiError::BadRequest)?;
    Ok((credential, bytes))
}

/// The device, the challenge and the signature of a sign-in.
pub fn session_parts(request: &SessionRequest) -> Result<(DeviceId, [u8; 32], [u8; 64]), ApiError> {
    Ok((
        DeviceId(unhex(&request.device)?),
        unhex(&request.challenge)?,
        unhex(&request.signature)?,
    ))
}

/// One-time key packages, and maybe a last-resort one, as bytes.
pub type KeyPackageBatch = (Vec<Vec<u8>>, Option<Vec<u8>>);

/// The key packages and the last-resort one of an upload.
pub fn key_package_batch(request: &KeyPackagesRequest) -> Result<KeyPackageBatch, ApiError> {
    let key_packages = request
        .key_packages
        .iter()
        .map(|text| unhex_vec(text))
        .collect::<Result<Vec<_>, _>>()?;
    let last_resort = request.last_resort.as_deref().map(unhex_vec).transpose()?;
    Ok((key_packages, last_resort))
}

/// The commit upload a request asks for.
pub fn commit_upload(
    request: CommitRequest,
    sender: DeviceId,
    received_at: u64,
) -> Result<CommitUpload, ApiError> {
    let devices = |list: &[String]| {
        list.iter()
            .map(|text| unhex(text).map(DeviceId))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(CommitUpload {
        group: GroupId(unhex(&request.group)?),
        epoch: request.epoch,
        sender,
        send_id: unhex(&request.send_id)?,
        message: unhex_vec(&request.message)?,
        added: devices(&request.added)?,
        removed: devices(&request.removed)?,
        welcome: request.welcome.as_deref().map(unhex_vec).transpose()?,
        received_at,
    })
}

/// The message upload a request asks for.
pub fn message_upload(
    request: MessageRequest,
    sender: DeviceId,
    received_at: u64,
) -> Result<MessageUpload, ApiError> {
    Ok(MessageUpload {
        group: GroupId(unhex(&request.group)?),
        epoch: request.epoch,
        sender,
        send_id: unhex(&request.send_id)?,
        message: unhex_vec(&request.message)?,
        received_at,
    })
}
