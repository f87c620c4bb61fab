//! What the relay keeps, behind a trait: invites, the directory, key packages and the group logs.
//!
//! Every backend passes the same suite (`tests/store_suite.rs`). The store sees only what the
//! relay may see: opaque ids, public keys, credentials and ciphertext. Invite codes are kept as
//! SHA-256 hashes, so a copy of the database cannot be used to enroll.

use ward_proto::{DeviceId, GroupId, UserId};

/// Seconds since the Unix epoch, as the relay stores time.
pub type Timestamp = u64;

/// A one-time enrollment invite, as an admin lists it. The code itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRecord {
    /// Short public id, for `invite revoke`.
    pub id: String,
    /// The display name the clinician will have.
    pub name: String,
    /// Their role, such as "nurse" or "physician".
    pub role: String,
    /// When the invite stops working.
    pub expires_at: Timestamp,
    /// Whether it was used.
    pub used: bool,
    /// Whether an admin revoked it.
    pub revoked: bool,
}

/// A new invite; `code_hash` is the SHA-256 of the code handed to the clinician.
#[derive(Debug, Clone)]
pub struct NewInvite {
    /// Short public id.
    pub id: String,
    /// SHA-256 of the invite code.
    pub code_hash: [u8; 32],
    /// Display name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Expiry.
    pub expires_at: Timestamp,
}

/// An enrollment request, after the relay has checked the credential's signature.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// SHA-256 of the invite code presented.
    pub code_hash: [u8; 32],
    /// The new user's id, chosen by the relay.
    pub user: UserId,
    /// Their account key.
    pub account_key: [u8; 32],
    /// Their first device.
    pub device: DeviceId,
    /// That device's credential, signed by the account key.
    pub credential: Vec<u8>,
}

/// One clinician in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Opaque id.
    pub user: UserId,
    /// Display name, from the invite.
    pub name: String,
    /// Role, from the invite.
    pub role: String,
    /// Account key, which safety numbers are computed over.
    pub account_key: [u8; 32],
    /// An admin disabled the account: it can no longer connect.
    pub disabled: bool,
    /// The user's devices, revoked ones included.
    pub devices: Vec<DeviceRecord>,
}

/// One device of a clinician.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Opaque id.
    pub device: DeviceId,
    /// Whose device it is.
    pub user: UserId,
    /// Its credential, signed by the user's account key.
    pub credential: Vec<u8>,
    /// An admin revoked it: it can no longer connect.
    pub revoked: bool,
}

/// What kind of entry a group log holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A commit: it moved the group to the next epoch.
    Commit,
    /// An application message.
    Application,
}

/// One entry of a group's log, as a member device reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The group.
    pub group: GroupId,
    /// Position in the group's log, from 1, without gaps.
    pub sequence: u64,
    /// The epoch the entry was sent in.
    pub epoch: u64,
    /// Commit or application message.
    pub kind: EntryKind,
    /// The sending device.
    pub sender: DeviceId,
    /// The MLS message, opaque.
    pub message: Vec<u8>,
}

/// A Welcome waiting for a device that was added to a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingWelcome {
    /// The group it invites to.
    pub group: GroupId,
    /// The sequence of the commit that added the device; the device reads the log after it.
    pub after_sequence: u64,
    /// The MLS Welcome, opaque.
    pub welcome: Vec<u8>,
}

/// A commit, with the routing facts the relay needs and cannot read from the encrypted commit.
#[derive(Debug, Clone)]
pub struct CommitUpload {
    /// The group.
    pub group: GroupId,
    /// The epoch the commit was built on; it is accepted only if this is the group's epoch.
    pub epoch: u64,
    /// The committing device.
    pub sender: DeviceId,
    /// The sender's idempotency key: a retry with the same key gets the first answer.
    pub send_id: [u8; 16],
    /// The MLS commit, opaque.
    pub message: Vec<u8>,
    /// Devices the commit adds, who get `welcome`.
    pub added: Vec<DeviceId>,
    /// Devices the commit removes.
    pub removed: Vec<DeviceId>,
    /// The Welcome for the added devices.
    pub welcome: Option<Vec<u8>>,
    /// When the relay received it, for the retention limit.
    pub received_at: Timestamp,
}

/// An application message for a group.
#[derive(Debug, Clone)]
pub struct MessageUpload {
    /// The group.
    pub group: GroupId,
    /// The epoch it was encrypted in.
    pub epoch: u64,
    /// The sending device.
    pub sender: DeviceId,
    /// The sender's idempotency key.
    pub send_id: [u8; 16],
    /// The MLS message, opaque.
    pub message: Vec<u8>,
    /// When the relay received it, for the retention limit.
    pub received_at: Timestamp,
}

/// The answer to an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored, durably, at this sequence.
    Accepted {
        /// Its place in the group's log.
        sequence: u64,
    },
    /// The same send id was stored before, at this sequence; nothing new was stored.
    AlreadyStored {
        /// Where the first copy is.
        sequence: u64,
    },
    /// Another commit won this epoch: the sender must read the log and retry.
    EpochMoved {
        /// The group's epoch now.
        current_epoch: u64,
    },
}

/// Why the store failed. The text never reaches a client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database error: {0}")]
    Database(String),
    /// The sender is not a member of the group, or the device is unknown.
    #[error("the device is not a member of that group")]
    NotAMember,
    /// The sending device was revoked, or its user disabled.
    #[error("the device or its user has been disabled")]
    NotAllowed,
}

/// Why an enrollment was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// No invite has this code.
    #[error("the invite code is not valid")]
    UnknownInvite,
    /// The invite was used, revoked or has expired.
    #[error("the invite has been used, revoked or has expired")]
    InviteSpent,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Receives the outcome of [`RelayStore::submit_message`].
pub type AppendDone = Box<dyn FnOnce(Result<Appended, StoreError>) + Send>;

/// Everything the relay stores. Implementations must make each call atomic, and durable before
/// it returns: the relay acknowledges a send only after `append_*` has returned.
pub trait RelayStore: Send + Sync {
    /// Records a new invite.
    fn create_invite(&self, invite: &NewInvite) -> Result<(), StoreError>;
    /// Every invite, newest first.
    fn list_invites(&self) -> Result<Vec<InviteRecord>, StoreError>;
    /// Revokes an unused invite; false if there is none with that id.
    fn revoke_invite(&self, id: &str) -> Result<bool, StoreError>;
    /// Spends the invite and creates the user and device, all at once.
    fn enroll(&self, enrollment: &Enrollment, now: Timestamp) -> Result<UserRecord, EnrollError>;

    /// The directory: every user with their devices.
    fn users(&self) -> Result<Vec<UserRecord>, StoreError>;
    /// Disables a user; false if unknown.
    fn disable_user(&self, user: &UserId) -> Result<bool, StoreError>;
    /// Revokes a device; false if unknown.
    fn revoke_device(&self, device: &DeviceId) -> Result<bool, StoreError>;
    /// One device, with whether it and its user may still connect.
    fn device(&self, device: &DeviceId) -> Result<Option<(DeviceRecord, bool)>, StoreError>;

    /// Stores a batch of one-time key packages, and replaces the last-resort one if given.
    fn upload_key_packages(
        &self,
        device: &DeviceId,
        key_packages: &[Vec<u8>],
        last_resort: Option<&[u8]>,
    ) -> Result<(), StoreError>;
    /// Hands out one key package of `device`: a one-time one, which is deleted, or else the
    /// last-resort one, which stays.
    fn claim_key_package(&self, device: &DeviceId) -> Result<Option<Vec<u8>>, StoreError>;
    /// How many one-time key packages `device` has left.
    fn key_packages_left(&self, device: &DeviceId) -> Result<u64, StoreError>;

    /// Appends a commit if `upload.epoch` is the group's epoch (compare-and-swap), updates the
    /// membership and queues the Welcome. A group's first commit, at epoch 0, creates it with the
    /// sender as its first member.
    fn append_commit(&self, upload: &CommitUpload) -> Result<Appended, StoreError>;
    /// Appends an application message like [`RelayStore::append_message`], after checking that
    /// the sending device is still allowed, without blocking the caller: `done` gets the outcome,
    /// on whatever thread the store writes from. The relay's async handlers call this; it must
    /// return at once.
    fn submit_message(&self, upload: MessageUpload, done: AppendDone);
    /// Appends an application message, once per group whatever the number of members.
    fn append_message(&self, upload: &MessageUpload) -> Result<Appended, StoreError>;
    /// Whether `device` reads `group`'s log (members, and removed devices until they have read
    /// their removal).
    fn reads_group(&self, device: &DeviceId, group: &GroupId) -> Result<bool, StoreError>;
    /// Welcomes waiting for `device`. They stay until acknowledged.
    fn welcomes(&self, device: &DeviceId) -> Result<Vec<PendingWelcome>, StoreError>;
    /// Entries of the groups `device` belongs to, after its cursor in each, at most `limit`.
    fn read(&self, device: &DeviceId, limit: usize) -> Result<Vec<LogEntry>, StoreError>;
    /// Moves `device`'s cursor in `group` to `sequence`, and deletes the entries every member has
    /// acknowledged. Acknowledging a Welcome's group also drops the Welcome.
    fn ack(&self, device: &DeviceId, group: &GroupId, sequence: u64) -> Result<(), StoreError>;
    /// Deletes entries older than `before`, whether acknowledged or not. Returns how many.
    fn expire(&self, before: Timestamp) -> Result<u64, StoreError>;
    /// Counts for `/metrics` and `ward-relay status`.
    fn counts(&self) -> Result<Counts, StoreError>;
    /// This store's generation: random, and new after each restore from a backup, so clients
    /// learn that the relay went back in time.
    fn generation(&self) -> Result<[u8; 16], StoreError>;
}

/// Numbers only: what `/metrics` may show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Enrolled users.
    pub users: u64,
    /// Devices not revoked.
    pub devices: u64,
    /// Groups.
    pub groups: u64,
    /// Log entries not yet deleted.
    pub log_entries: u64,
    /// Unused one-time key packages.
    pub key_packages: u64,
    /// Invites neither used, revoked nor expired.
    pub open_invites: u64,
}
