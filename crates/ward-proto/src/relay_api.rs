//! The relay's HTTP API as JSON bodies, shared by the relay and its clients so the two cannot
//! drift apart. Bytes travel as lowercase hex. Requests refuse unknown fields; the relay decodes
//! and checks every field before it acts (`ward_relay::request`).
//!
//! The endpoints, their authentication and their answers are described in `docs/protocol.md`.

use serde::{Deserialize, Serialize};

/// Domain separation for the sign-in signature: a device signs this label and then the challenge.
pub const AUTH_LABEL: &[u8] = b"Ward relay sign-in v1\0";

/// The body of every error answer. `code` is stable and meant for programs; `message` is fixed
/// text for people and never carries internal detail.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable code such as `epoch_moved` or `invite_spent`.
    pub code: String,
    /// A sentence a clinician can read.
    pub message: String,
    /// With `epoch_moved`: the group's epoch now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_epoch: Option<u64>,
}

/// `POST /v1/enroll`: a one-time invite code and the first device's credential.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The code an admin printed with `ward-relay invite create`.
    pub invite: String,
    /// The device credential, hex; it names the user id, device id and account key.
    pub credential: String,
}

/// The answer to an enrollment.
#[derive(Debug, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// The display name IT gave the clinician.
    pub name: String,
    /// Their role.
    pub role: String,
}

/// `POST /v1/auth/challenge` and the first half of `POST /v1/auth/session`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// The device that wants a session, hex.
    pub device: String,
}

/// A challenge to sign.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChallengeResponse {
    /// 32 random bytes, hex.
    pub challenge: String,
}

/// `POST /v1/auth/session`: the device's signature over the label and the challenge.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// The device, hex.
    pub device: String,
    /// The challenge it was given, hex.
    pub challenge: String,
    /// Ed25519 signature by the device key over [`AUTH_LABEL`] and the challenge, hex.
    pub signature: String,
}

/// A session token for `Authorization: Bearer`.
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionResponse {
    /// 32 random bytes, hex.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// One user in the directory.
#[derive(Debug, Serialize, Deserialize)]
pub struct DirectoryUser {
    /// User id, hex.
    pub user: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Account key, hex.
    pub account_key: String,
    /// Credentials of the devices that may connect, hex.
    pub devices: Vec<String>,
}

/// `POST /v1/key-packages`: a batch of one-time key packages and maybe a last-resort one.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPackagesRequest {
    /// TLS-encoded MLS key packages, hex.
    pub key_packages: Vec<String>,
    /// The last-resort key package, hex.
    pub last_resort: Option<String>,
}

/// `POST /v1/key-packages/claim`: one key package of another device.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// The device whose key package is wanted, hex.
    pub device: String,
}

/// A claimed key package, or none when the device has none at all.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClaimResponse {
    /// TLS-encoded MLS key package, hex.
    pub key_package: Option<String>,
}

/// `POST /v1/commit`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    /// Group id, hex.
    pub group: String,
    /// The epoch the commit was built on.
    pub epoch: u64,
    /// Idempotency key, hex (16 bytes).
    pub send_id: String,
    /// The MLS commit, hex.
    pub message: String,
    /// Devices the commit adds, hex.
    #[serde(default)]
    pub added: Vec<String>,
    /// Devices the commit removes, hex.
    #[serde(default)]
    pub removed: Vec<String>,
    /// The Welcome for the added devices, hex.
    pub welcome: Option<String>,
}

/// Where an upload landed in the group's log.
#[derive(Debug, Serialize, Deserialize)]
pub struct Sequenced {
    /// Its sequence.
    pub sequence: u64,
}

/// `POST /v1/message`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    /// Group id, hex.
    pub group: String,
    /// The epoch it was encrypted in.
    pub epoch: u64,
    /// Idempotency key, hex (16 bytes).
    pub send_id: String,
    /// The MLS application message, hex.
    pub message: String,
}

/// What waits for a device.
#[derive(Debug, Serialize, Deserialize)]
pub struct Inbox {
    /// The relay store's generation, hex: it changes when the relay is restored from a backup,
    /// which tells the client to send its recent messages again and renumber. Empty from a relay
    /// that predates it.
    #[serde(default)]
    pub generation: String,
    /// Welcomes to groups it was added to.
    pub welcomes: Vec<InboxWelcome>,
    /// Log entries after its cursors, in sequence order per group.
    pub entries: Vec<InboxEntry>,
}

/// A Welcome in the inbox.
#[derive(Debug, Serialize, Deserialize)]
pub struct InboxWelcome {
    /// Group id, hex.
    pub group: String,
    /// The sequence of the commit that added the device.
    pub after_sequence: u64,
    /// The MLS Welcome, hex.
    pub welcome: String,
}

/// A log entry in the inbox.
#[derive(Debug, Serialize, Deserialize)]
pub struct InboxEntry {
    /// Group id, hex.
    pub group: String,
    /// Its sequence in the group.
    pub sequence: u64,
    /// The epoch it was sent in.
    pub epoch: u64,
    /// Whether it is a commit (otherwise an application message).
    pub commit: bool,
    /// The sending device, hex.
    pub sender: String,
    /// The MLS message, hex.
    pub message: String,
}

/// `POST /v1/ack`: the device has durably processed its log up to `sequence`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// Group id, hex.
    pub group: String,
    /// The last sequence processed.
    pub sequence: u64,
}

/// The stored size of an uploaded blob.
#[derive(Debug, Serialize, Deserialize)]
pub struct BlobStored {
    /// Bytes stored; absent when a blob with this id was already complete.
    pub size: Option<u64>,
}
