//! One clinician's device, signed in to its relay: enrollment, contacts, conversations, sending
//! through a persisted outbox, and sync. The CLI and the desktop app both drive this type.
//!
//! The rules that keep history whole:
//! - Anything encrypted is saved, together with the MLS state that encrypted it, in one SQLCipher
//!   transaction before it is sent. A crash never re-encrypts under a used ratchet key, and the
//!   outbox re-sends the same bytes with the same send id, which the relay stores once.
//! - A page of the inbox is applied, with the MLS state and the cursors, in one transaction; only
//!   then is it acknowledged. A crash before the ack means the page is read again and skipped by
//!   the local cursors, so nothing acked is missing and nothing is stored twice.
//! - Messages are ordered by their group sequence, the relay's log position, never by arrival.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use ward_core::attachment_stream::FileKey;
use ward_core::conversation::{Conversation, ConversationError, Device, Received};
use ward_core::identity::{AccountKey, DeviceCredential, DeviceKey, IdentityError};
use ward_core::safety_number::{Party, SafetyNumber};
use ward_core::secret::Secret32;
use ward_proto::content::{AppContent, AttachmentRef, FileKeyBytes, ReceiptKind};
use ward_proto::group_data::{GroupData, MemberRole};
use ward_proto::relay_api::{CommitRequest, Inbox, InboxEntry, MessageRequest};
use ward_proto::{BlobId, ClientMessageId, DeviceId, GroupId, UserId, WireMessage};

use crate::attachment_file::{
    decrypt_file, decrypt_to_memory, encrypt_file, encrypt_reader, AttachmentFileError,
    EncryptedFile,
};
use crate::history::SearchHit;
use crate::keychain::{Keychain, KeychainError};
use crate::policy::{NotificationLevel, Policy, PolicyError, UserSettings};
use crate::profile::{open_profile, OpenError, OpenedProfile, ProfileDir};
use crate::relay_client::{check_relay_url, RelayClient, RelayError};
use crate::store::{Store, StoreError};

/// Keychain entry of the account key (PKCS#8).
const ACCOUNT_KEY_ENTRY: &str = "account-key";
/// Keychain entry of the device key's seed.
const DEVICE_KEY_ENTRY: &str = "device-key";
/// The device setting holding the relay's CA certificates (PEM), when enrollment named them.
const RELAY_CA_SETTING: &str = "relay_ca_pem";
/// One-time key packages uploaded at enrollment; the last-resort one covers a run on them.
const KEY_PACKAGE_BATCH: usize = 100;
/// Outbox-and-inbox rounds in one sync: each lost commit race needs one more.
const SYNC_ROUNDS: usize = 8;
/// Inbox pages read in one sync, so a relay that keeps answering cannot hold a client forever.
const MAX_INBOX_PAGES: usize = 10_000;
/// Sent messages recorded per transaction while the outbox drains.
const SENT_BATCH: usize = 200;
/// How often one log entry may be refused before the device moves past it.
const REFUSALS_BEFORE_SKIPPING: i64 = 3;
/// The most search results shown at once.
const SEARCH_LIMIT: usize = 200;
/// Where received and sent attachment ciphertext is kept, inside the profile folder.
const ATTACHMENT_FOLDER: &str = "attachments";
/// The device setting holding the clinician's notification level.
const NOTIFICATION_LEVEL_SETTING: &str = "user.notification_level";

/// Why a client operation failed. `Display` is a sentence for the clinician; none carries
/// message content or keys.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The profile could not be opened; [`OpenError::advice`] says what to do.
    #[error("{}", .0.advice())]
    Open(#[from] OpenError),
    /// The keychain failed while reading or writing Ward's keys.
    #[error("this computer's keychain could not be used: {0}")]
    Keychain(#[from] KeychainError),
    /// This profile has not enrolled yet.
    #[error("this Ward profile is not enrolled yet; run `ward enroll` first")]
    NotEnrolled,
    /// This profile has enrolled already.
    #[error("this Ward profile is already enrolled")]
    AlreadyEnrolled,
    /// The device's keys are missing from the keychain though its history exists.
    #[error("Ward's device key is not in this computer's keychain; ask IT for help")]
    DeviceKeyMissing,
    /// No contact or conversation has that name.
    #[error("no contact or conversation is called \"{0}\"")]
    UnknownName(String),
    /// Several conversations have that name.
    #[error("several conversations are called \"{0}\"; use a more specific name")]
    Ambiguous(String),
    /// A change to the conversation is waiting for the relay.
    #[error("a change to this conversation is still waiting for the relay; try again when online")]
    ChangePending,
    /// A member's device has no key package on the relay.
    #[error("{0} cannot be added yet: their device has not finished enrolling")]
    NoKeyPackage(String),
    /// No message has that id.
    #[error("no message has that id")]
    UnknownMessage,
    /// The message has no attachment.
    #[error("that message has no attachment")]
    NoAttachment,
    /// The relay failed or refused.
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// The protocol core refused.
    #[error(transparent)]
    Conversation(#[from] ConversationError),
    /// The identity keys failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// An attachment could not be encrypted, checked or decrypted.
    #[error(transparent)]
    Attachment(#[from] AttachmentFileError),
    /// The downloaded attachment is not the one the message named.
    #[error("the downloaded file does not match the message; it was not opened")]
    AttachmentMismatch,
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file system failed.
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    NoRandomness,
    /// This computer's managed policy cannot be used.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The organization's policy names another relay.
    #[error(
        "your organization has set Ward's relay to {0}; it cannot be changed on this computer"
    )]
    ManagedRelay(String),
    /// The attachment is larger than the organization allows.
    #[error("the file is {size_mb} MB; your organization allows attachments up to {limit_mb} MB")]
    AttachmentTooLarge {
        /// The file's size, rounded up.
        size_mb: u64,
        /// The policy's limit.
        limit_mb: u32,
    },
    /// The organization's policy does not allow this kind of file.
    #[error("your organization does not allow sending {0} files")]
    AttachmentTypeNotAllowed(String),
    /// A member's key changed and policy blocks sending until it is verified.
    #[error(
        "{0}'s security key has changed; compare safety numbers with them and mark them verified \
         before sending (your organization requires this)"
    )]
    ChangedKeyUnverified(String),
    /// The organization decides this setting, or the value is theirs alone to choose.
    #[error("your organization manages this setting")]
    SettingManaged,
    /// The attachment could not be read as an ECG.
    #[error(transparent)]
    Ecg(#[from] crate::ecg::EcgError),
}

impl From<rusqlite::Error> for ClientError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Store(StoreError::Sqlite(error))
    }
}

type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Who this device is.
#[derive(Debug, Clone)]
pub struct Account {
    /// The relay's base URL.
    pub relay_url: String,
    /// The clinician's name, as IT set it on the invite.
    pub name: String,
    /// Their role.
    pub role: String,
    /// This device's credential: user id, device id and account key.
    pub credential: DeviceCredential,
}

/// A clinician in the directory.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Contact {
    /// User id, hex.
    pub user: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Whether this is the signed-in clinician.
    pub me: bool,
    /// Number of devices.
    pub devices: usize,
    /// Whether the safety number was marked verified for the current account key.
    pub verified: bool,
    /// Whether the account key changed since it was first seen and the new one is not verified:
    /// the conversation shows a warning, and policy may block sending.
    pub key_changed: bool,
}

/// A message as shown to the clinician.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShownMessage {
    /// The conversation's id, hex.
    pub chat_id: String,
    /// The conversation's name (a 1:1 chat is named after the other clinician).
    pub chat: String,
    /// The sender's name.
    pub sender: String,
    /// The sender's user id, hex.
    pub sender_id: String,
    /// The sender's id for the message, hex; `ward fetch-file` takes it.
    pub client_id: String,
    /// The position in the conversation's log on the relay.
    pub sequence: Option<u64>,
    /// `text` or `attachment`.
    pub kind: String,
    /// The text, or the attachment's file name.
    pub text: String,
    /// The attachment's size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// `sending`, `sent`, `delivered`, `read` or `received`.
    pub status: String,
    /// Whether the sender edited it.
    pub edited: bool,
    /// Whether the sender deleted it.
    pub deleted: bool,
    /// Whether this clinician sent it.
    pub mine: bool,
    /// When this device stored it, seconds since the epoch.
    pub at: i64,
    /// The attachment's media type, which picks its viewer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The store's row, which [`Client::mark_shown`] updates.
    #[serde(skip)]
    pub(crate) row: i64,
}

/// A contact's safety number, as the verification screen shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verification {
    /// User id, hex.
    pub user: String,
    /// Display name.
    pub name: String,
    /// The 60 digits in 12 groups of 5; both clinicians see the same.
    pub groups: Vec<String>,
    /// The QR code's side, in modules.
    pub qr_width: usize,
    /// The QR code's modules, row by row; true is dark.
    pub qr_dark: Vec<bool>,
    /// Whether the current key was marked verified.
    pub verified: bool,
    /// Whether the key changed since it was first seen and is not verified.
    pub key_changed: bool,
}

/// A conversation in the list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChatSummary {
    /// Id, hex.
    pub id: String,
    /// Name (a 1:1 chat is named after the other clinician).
    pub name: String,
    /// The patient tag of a care team.
    pub patient_tag: Option<String>,
    /// Whether it is a 1:1 chat.
    pub direct: bool,
    /// Whether this device is still a member.
    pub active: bool,
    /// The members' names.
    pub members: Vec<String>,
    /// The members' user ids, hex, in the order of `members`.
    pub member_ids: Vec<String>,
    /// The MLS epoch this device is in.
    pub epoch: u64,
    /// The epoch authenticator, hex: members in the same state show the same value.
    pub epoch_authenticator: String,
    /// Messages received and not yet read on this device.
    pub unread: u32,
    /// When something last happened in it, seconds since the epoch.
    pub last_activity: i64,
}

/// What a sync did.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Messages sent from the outbox.
    pub sent: usize,
    /// Messages and changes received.
    pub received: usize,
    /// Conversations joined.
    pub joined: usize,
    /// Messages still in the outbox.
    pub queued: usize,
    /// Entries refused as tampered, replayed or undecryptable, each described without content.
    pub rejected: Vec<String>,
    /// Additions that lost a commit race after a restart, to be made again with new key packages.
    redo_adds: Vec<(GroupId, Vec<DeviceId>)>,
    /// A message came from someone the contacts do not know yet.
    unknown_sender: bool,
    /// The relay was restored from a backup during this sync: what it lost is queued again.
    pub relay_restored: bool,
}

/// The signed-in device.
pub struct Client {
    dir: ProfileDir,
    store: Store,
    account: Account,
    device: Device,
    relay: RelayClient,
    conversations: HashMap<GroupId, Conversation>,
    /// This computer's managed policy, read when the profile was opened.
    policy: Policy,
    /// When retention is next applied (seconds since the epoch).
    retention_due: i64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("profile", &self.dir.root())
            .field("device", &self.account.credential.device)
            .finish_non_exhaustive()
    }
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ClientError::NoRandomness)?;
    Ok(bytes)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

fn id16(bytes: &[u8]) -> Option<[u8; 16]> {
    bytes.try_into().ok()
}

fn save_mls(tx: &Connection, device: &Device) -> Result<()> {
    let state = device.save_state()?;
    tx.execute(
        "INSERT INTO mls_state (singleton, state) VALUES (1, ?1)
         ON CONFLICT (singleton) DO UPDATE SET state = excluded.state",
        params![state.as_slice()],
    )?;
    Ok(())
}

fn device_list(devices: &[DeviceId]) -> Vec<u8> {
    devices.iter().flat_map(|device| device.0).collect()
}

fn hex_devices(bytes: &[u8]) -> Vec<String> {
    bytes.chunks_exact(16).map(hex::encode).collect()
}

/// Loads a conversation into the cache once; later calls reuse it, so a pending change (kept in
/// memory by the core) survives between calls.
fn cached<'a>(
    conversations: &'a mut HashMap<GroupId, Conversation>,
    device: &Device,
    group: &GroupId,
) -> Result<Option<&'a mut Conversation>> {
    if !conversations.contains_key(group) {
        match device.conversation(group)? {
            Some(conversation) => {
                conversations.insert(*group, conversation);
            }
            None => return Ok(None),
        }
    }
    Ok(conversations.get_mut(group))
}

impl Client {
    /// Enrolls a new profile in `dir` with an invite: makes the keys on this device, keeps them in
    /// the keychain, registers the device credential and uploads key packages.
    /// `relay_ca` (PEM) replaces this computer's trust store for the relay's certificate, and is
    /// kept for later runs.
    pub fn enroll(
        dir: &ProfileDir,
        relay_url: &str,
        invite: &str,
        relay_ca: Option<&str>,
    ) -> Result<Self> {
        Self::enroll_opened(dir, None, relay_url, invite, relay_ca)
    }

    /// [`Client::enroll`] on a profile the caller has opened already (the desktop app opens it
    /// at start, before the clinician has an invite); `None` opens it here.
    pub fn enroll_opened(
        dir: &ProfileDir,
        opened: Option<OpenedProfile>,
        relay_url: &str,
        invite: &str,
        relay_ca: Option<&str>,
    ) -> Result<Self> {
        let policy = Policy::load_machine()?;
        let relay_url = check_relay_url(relay_url)?;
        if let Some(managed) = policy
            .relay_url
            .as_ref()
            .filter(|_| !policy.allows_relay_url(&relay_url))
        {
            return Err(ClientError::ManagedRelay(managed.clone()));
        }
        let opened = match opened {
            Some(opened) => opened,
            None => open_profile(dir)?,
        };
        if read_account(opened.store.connection())?.is_some() {
            return Err(ClientError::AlreadyEnrolled);
        }
        let keychain = Keychain::for_profile(&opened.id);
        let (account_key, pkcs8) = AccountKey::generate()?;
        let device_key = DeviceKey::generate()?;
        keychain.write_secret(ACCOUNT_KEY_ENTRY, pkcs8.as_bytes())?;
        keychain.write_secret(DEVICE_KEY_ENTRY, device_key.seed().as_bytes())?;
        let credential = account_key.issue(UserId(random()?), DeviceId(random()?), &device_key);
        let mut relay = RelayClient::with_trust(
            &relay_url,
            credential.device,
            relay_ca.map(str::as_bytes),
            policy.relay_spki_sha256.as_deref(),
        )?;
        let enrolled = relay.enroll(invite, &credential)?;

        let device = Device::new(device_key, credential.clone())?;
        let key_packages = device.key_packages(KEY_PACKAGE_BATCH)?;
        let last_resort = device.last_resort_key_package()?;
        let mut store = opened.store;
        {
            let tx = store.connection_mut().transaction()?;
            tx.execute(
                "INSERT INTO account (singleton, relay_url, user_id, device_id, name, role,
                                      credential, enrolled)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    relay_url,
                    credential.user.as_bytes().as_slice(),
                    credential.device.as_bytes().as_slice(),
                    enrolled.name,
                    enrolled.role,
                    credential.encode(),
                    now()
                ],
            )?;
            save_mls(&tx, &device)?;
            tx.commit()?;
        }
        if let Some(pem) = relay_ca {
            store.set_setting(RELAY_CA_SETTING, pem)?;
        }
        relay.upload_key_packages(device.key(), &key_packages, Some(&last_resort))?;
        store.set_setting("key_packages_uploaded", "1")?;
        let mut client = Self {
            dir: dir.clone(),
            store,
            account: Account {
                relay_url,
                name: enrolled.name,
                role: enrolled.role,
                credential,
            },
            device,
            relay,
            conversations: HashMap::new(),
            policy,
            retention_due: 0,
        };
        // The directory is best fetched now, but enrollment has succeeded whatever happens here.
        let _ = client.refresh_contacts();
        Ok(client)
    }

    /// Opens the enrolled profile in `dir`.
    pub fn open(dir: &ProfileDir) -> Result<Self> {
        Self::open_via(dir, None)
    }

    /// Opens the enrolled profile in `dir`, reaching the relay at `relay_url` instead of the
    /// address it enrolled with (a relay that moved, or a proxy IT puts in front of it).
    /// A relay the organization's policy names beats both.
    pub fn open_via(dir: &ProfileDir, relay_url: Option<&str>) -> Result<Self> {
        Self::resume(dir, open_profile(dir)?, relay_url)
    }

    /// Whether the profile whose store is `store` has enrolled.
    pub fn is_enrolled(store: &Store) -> Result<bool> {
        Ok(read_account(store.connection())?.is_some())
    }

    /// [`Client::open_via`] on a profile the caller has opened already.
    pub fn resume(
        dir: &ProfileDir,
        opened: OpenedProfile,
        relay_url: Option<&str>,
    ) -> Result<Self> {
        let policy = Policy::load_machine()?;
        let mut account =
            read_account(opened.store.connection())?.ok_or(ClientError::NotEnrolled)?;
        if let Some(url) = relay_url {
            account.relay_url = check_relay_url(url)?;
        }
        if let Some(managed) = &policy.relay_url {
            if relay_url.is_some() && !policy.allows_relay_url(&account.relay_url) {
                return Err(ClientError::ManagedRelay(managed.clone()));
            }
            // IT moved the relay: every device follows the policy without enrolling again.
            account.relay_url = managed.clone();
        }
        let keychain = Keychain::for_profile(&opened.id);
        let seed = keychain
            .read_secret(DEVICE_KEY_ENTRY)?
            .and_then(|bytes| Secret32::from_slice(&bytes))
            .ok_or(ClientError::DeviceKeyMissing)?;
        let key = DeviceKey::from_seed(seed)?;
        let state: Vec<u8> = opened.store.connection().query_row(
            "SELECT state FROM mls_state WHERE singleton = 1",
            [],
            |row| row.get(0),
        )?;
        let state = zeroize::Zeroizing::new(state);
        let device = Device::restore(key, account.credential.clone(), &state)?;
        let relay_ca = opened.store.setting(RELAY_CA_SETTING)?;
        let mut relay = RelayClient::with_trust(
            &account.relay_url,
            account.credential.device,
            relay_ca.as_deref().map(str::as_bytes),
            policy.relay_spki_sha256.as_deref(),
        )?;
        if opened.store.setting("key_packages_uploaded")?.is_none() {
            // Enrollment stopped before its key packages reached the relay: send a new batch.
            let key_packages = device.key_packages(KEY_PACKAGE_BATCH)?;
            let last_resort = device.last_resort_key_package()?;
            let mut store = opened.store;
            {
                let tx = store.connection_mut().transaction()?;
                save_mls(&tx, &device)?;
                tx.commit()?;
            }
            relay.upload_key_packages(device.key(), &key_packages, Some(&last_resort))?;
            store.set_setting("key_packages_uploaded", "1")?;
            return Self::assemble(dir, store, account, device, relay, policy);
        }
        Self::assemble(dir, opened.store, account, device, relay, policy)
    }

    fn assemble(
        dir: &ProfileDir,
        store: Store,
        account: Account,
        device: Device,
        relay: RelayClient,
        policy: Policy,
    ) -> Result<Self> {
        let mut client = Self {
            dir: dir.clone(),
            store,
            account,
            device,
            relay,
            conversations: HashMap::new(),
            policy,
            retention_due: now().saturating_add(3_600),
        };
        client.apply_retention()?;
        Ok(client)
    }

    /// The managed policy this client runs under.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Deletes what the organization's retention period has passed: messages (never one still
    /// waiting to be sent) and their attachment ciphertext. Returns how many messages went.
    pub fn apply_retention(&mut self) -> Result<usize> {
        let days = match self.policy.retention_days {
            Some(days) if days > 0 => i64::from(days),
            _ => return Ok(0),
        };
        let cutoff = now().saturating_sub(days.saturating_mul(86_400));
        let folder = self.dir.root().join(ATTACHMENT_FOLDER);
        let (deleted, blobs) = self.store.delete_messages_before(cutoff)?;
        // The rows went first: a crash here leaves unreferenced ciphertext, never a row whose file
        // is gone. The ciphertext is useless without the key that went with the row.
        for blob in blobs {
            let _ = fs::remove_file(folder.join(hex::encode(blob)));
        }
        Ok(deleted)
    }

    /// What this clinician chose in the app's settings, saved with the history. Policy still
    /// comes first: see [`crate::policy::EffectiveSettings::resolve`].
    pub fn user_settings(&self) -> Result<UserSettings> {
        let level = self
            .store
            .setting(NOTIFICATION_LEVEL_SETTING)?
            .as_deref()
            .and_then(NotificationLevel::parse);
        Ok(UserSettings {
            notification_level: level,
            ..UserSettings::default()
        })
    }

    /// Saves how much this clinician's notifications say. `content` is the organization's
    /// decision alone, so it is refused here.
    pub fn set_notification_level(&mut self, level: NotificationLevel) -> Result<()> {
        if level > NotificationLevel::Sender {
            return Err(ClientError::SettingManaged);
        }
        if self.policy.notification_level.is_some() {
            return Err(ClientError::SettingManaged);
        }
        self.store
            .set_setting(NOTIFICATION_LEVEL_SETTING, level.as_str())?;
        Ok(())
    }

    /// Who this device is.
    pub fn account(&self) -> &Account {
        &self.account
    }

    /// The open store, for status screens.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn me(&self) -> UserId {
        self.account.credential.user
    }

    /// Fetches the directory and updates the contacts.
    pub fn refresh_contacts(&mut self) -> Result<()> {
        let users = self.relay.directory(self.device.key())?;
        let tx = self.store.connection_mut().transaction()?;
        for user in users {
            let (Ok(user_id), Ok(account_key)) =
                (hex::decode(&user.user), hex::decode(&user.account_key))
            else {
                continue;
            };
            tx.execute(
                "INSERT INTO contact (user_id, name, role, account_key) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (user_id) DO UPDATE SET name = excluded.name, role = excluded.role,
                     key_changed = key_changed OR account_key != excluded.account_key,
                     account_key = excluded.account_key",
                params![user_id, user.name, user.role, account_key],
            )?;
            tx.execute(
                "DELETE FROM contact_device WHERE user_id = ?1",
                params![user_id],
            )?;
            for credential in &user.devices {
                // The directory is the relay's word: only credentials the account key signed, for
                // this user, are kept.
                let Some(credential) = hex::decode(credential)
                    .ok()
                    .and_then(|bytes| DeviceCredential::decode_verified(&bytes).ok())
                else {
                    continue;
                };
                if credential.user.as_bytes().as_slice() != user_id.as_slice()
                    || credential.account_key.as_slice() != account_key.as_slice()
                {
                    continue;
                }
                tx.execute(
                    "INSERT OR REPLACE INTO contact_device (device_id, user_id, credential)
                     VALUES (?1, ?2, ?3)",
                    params![
                        credential.device.as_bytes().as_slice(),
                        user_id,
                        credential.encode()
                    ],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The contacts, sorted by name.
    pub fn contacts(&self) -> Result<Vec<Contact>> {
        let me = self.me();
        let connection = self.store.connection();
        let mut statement = connection.prepare(
            "SELECT user_id, name, role, account_key, verified_key,
                    (SELECT count(*) FROM contact_device WHERE contact_device.user_id = contact.user_id),
                    key_changed
             FROM contact ORDER BY name COLLATE NOCASE, user_id",
        )?;
        let rows = statement.query_map([], |row| {
            let user: Vec<u8> = row.get(0)?;
            let key: Vec<u8> = row.get(3)?;
            let verified: Option<Vec<u8>> = row.get(4)?;
            Ok(Contact {
                me: user.as_slice() == me.as_bytes().as_slice(),
                user: hex::encode(&user),
                name: row.get(1)?,
                role: row.get(2)?,
                devices: row.get::<_, i64>(5)?.try_into().unwrap_or(0),
                verified: verified.as_deref() == Some(key.as_slice()),
                key_changed: row.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn contact_by_name(&self, name: &str) -> Result<Option<(UserId, String)>> {
        let found: Option<(Vec<u8>, String)> = self
            .store
            .connection()
            .query_row(
                "SELECT user_id, name FROM contact
                 WHERE name = ?1 COLLATE NOCASE OR hex(user_id) = upper(?1)
                 ORDER BY hex(user_id) = upper(?1) DESC LIMIT 1",
                params![name.trim()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        Ok(found.and_then(|(user, name)| id16(&user).map(|user| (UserId(user), name))))
    }

    fn contact_by_name_refreshing(&mut self, name: &str) -> Result<(UserId, String)> {
        if let Some(found) = self.contact_by_name(name)? {
            return Ok(found);
        }
        self.refresh_contacts()?;
        self.contact_by_name(name)?
            .ok_or_else(|| ClientError::UnknownName(name.to_owned()))
    }

    fn devices_of(&self, user: &UserId) -> Result<Vec<DeviceId>> {
        let connection = self.store.connection();
        let mut statement = connection.prepare(
            "SELECT device_id FROM contact_device WHERE user_id = ?1 ORDER BY device_id",
        )?;
        let rows = statement.query_map(params![user.as_bytes().as_slice()], |row| {
            row.get::<_, Vec<u8>>(0)
        })?;
        let mut devices = Vec::new();
        for row in rows {
            if let Some(id) = id16(&row?) {
                devices.push(DeviceId(id));
            }
        }
        Ok(devices)
    }

    fn user_name(connection: &Connection, user: &[u8]) -> Result<String> {
        Ok(connection
            .query_row(
                "SELECT name FROM contact WHERE user_id = ?1",
                params![user],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or_else(|| {
                format!(
                    "unknown clinician {}",
                    hex::encode(&user[..4.min(user.len())])
                )
            }))
    }

    /// The safety number with the contact called `name`, in 12 groups of 5 digits.
    pub fn safety_number(&mut self, name: &str) -> Result<Vec<String>> {
        let (_, number) = self.safety_number_with(name)?;
        Ok(number.grouped().into_iter().map(str::to_owned).collect())
    }

    /// What the verification screen shows for the contact `name` (or user id in hex): the
    /// safety number, its QR code, and whether it was verified.
    pub fn verification(&mut self, name: &str) -> Result<Verification> {
        let ((user, name), number) = self.safety_number_with(name)?;
        let code = qrcode::QrCode::new(number.qr_payload())
            .map_err(|_| ClientError::Conversation(ConversationError::Malformed))?;
        let contact = self
            .contacts()?
            .into_iter()
            .find(|contact| contact.user == hex::encode(user.as_bytes()));
        Ok(Verification {
            user: hex::encode(user.as_bytes()),
            name,
            groups: number.grouped().into_iter().map(str::to_owned).collect(),
            qr_width: code.width(),
            qr_dark: code
                .to_colors()
                .into_iter()
                .map(|color| color == qrcode::Color::Dark)
                .collect(),
            verified: contact.as_ref().is_some_and(|contact| contact.verified),
            key_changed: contact.is_some_and(|contact| contact.key_changed),
        })
    }

    fn safety_number_with(&mut self, name: &str) -> Result<((UserId, String), SafetyNumber)> {
        let (user, name) = self.contact_by_name_refreshing(name)?;
        let key: Vec<u8> = self.store.connection().query_row(
            "SELECT account_key FROM contact WHERE user_id = ?1",
            params![user.as_bytes().as_slice()],
            |row| row.get(0),
        )?;
        let mine = &self.account.credential;
        let number = SafetyNumber::new(
            Party {
                id: mine.user.as_bytes(),
                key: &mine.account_key,
            },
            Party {
                id: user.as_bytes(),
                key: &key,
            },
        );
        Ok(((user, name), number))
    }

    /// Marks the contact's current account key as verified.
    pub fn mark_verified(&mut self, name: &str) -> Result<()> {
        let (user, _) = self.contact_by_name_refreshing(name)?;
        self.store.connection().execute(
            "UPDATE contact SET verified_key = account_key, key_changed = 0 WHERE user_id = ?1",
            params![user.as_bytes().as_slice()],
        )?;
        Ok(())
    }

    /// The conversations, most recent first.
    pub fn chats(&self) -> Result<Vec<ChatSummary>> {
        let connection = self.store.connection();
        let mut statement = connection.prepare(
            "SELECT group_id, name, patient_tag, direct, active, last_activity,
                    (SELECT count(*) FROM message
                     WHERE message.group_id = conversation.group_id AND unread = 1)
             FROM conversation
             ORDER BY last_activity DESC, group_id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, bool>(3)?,
                row.get::<_, bool>(4)?,
                row.get::<_, i64>(5)?,
                row.get::<_, i64>(6)?,
            ))
        })?;
        let mut chats = Vec::new();
        for row in rows {
            let (group, name, patient_tag, direct, active, last_activity, unread) = row?;
            let (members, member_ids) = self.member_names(&group)?;
            let state = id16(&group)
                .map(|id| self.device.conversation(&GroupId(id)))
                .transpose()?
                .flatten();
            chats.push(ChatSummary {
                epoch: state.as_ref().map_or(0, Conversation::epoch),
                epoch_authenticator: state
                    .as_ref()
                    .map(|conversation| hex::encode(conversation.epoch_authenticator()))
                    .unwrap_or_default(),
                id: hex::encode(&group),
                name: self.display_name(&group, &name, direct)?,
                patient_tag,
                direct,
                active,
                members,
                member_ids,
                unread: u32::try_from(unread).unwrap_or(u32::MAX),
                last_activity,
            });
        }
        Ok(chats)
    }

    /// The members' names and user ids (hex), by name.
    fn member_names(&self, group: &[u8]) -> Result<(Vec<String>, Vec<String>)> {
        let connection = self.store.connection();
        let mut statement = connection.prepare_cached(
            "SELECT coalesce(contact.name, hex(conversation_member.user_id)),
                    lower(hex(conversation_member.user_id))
             FROM conversation_member LEFT JOIN contact USING (user_id)
             WHERE group_id = ?1 ORDER BY 1, 2",
        )?;
        let rows = statement.query_map(params![group], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?.into_iter().unzip())
    }

    /// The users in `group`, this clinician included.
    fn member_users(&self, group: &GroupId) -> Result<Vec<UserId>> {
        let connection = self.store.connection();
        let mut statement = connection
            .prepare_cached("SELECT user_id FROM conversation_member WHERE group_id = ?1")?;
        let rows = statement.query_map(params![group.as_bytes().as_slice()], |row| {
            row.get::<_, Vec<u8>>(0)
        })?;
        let mut users = Vec::new();
        for row in rows {
            users.extend(id16(&row?).map(UserId));
        }
        Ok(users)
    }

    /// A 1:1 chat is shown under the other clinician's name.
    fn display_name(&self, group: &[u8], name: &str, direct: bool) -> Result<String> {
        if !direct {
            return Ok(name.to_owned());
        }
        let other: Option<Vec<u8>> = self
            .store
            .connection()
            .query_row(
                "SELECT user_id FROM conversation_member WHERE group_id = ?1 AND user_id != ?2",
                params![group, self.me().as_bytes().as_slice()],
                |row| row.get(0),
            )
            .optional()?;
        match other {
            Some(user) => Self::user_name(self.store.connection(), &user),
            None => Ok(name.to_owned()),
        }
    }

    /// The active care team called `target` (or with that id in hex), if exactly one is.
    fn team_named(&self, target: &str) -> Result<Option<GroupId>> {
        let teams: Vec<Vec<u8>> = {
            let connection = self.store.connection();
            let mut statement = connection.prepare(
                "SELECT group_id FROM conversation
                 WHERE direct = 0 AND active = 1 AND (name = ?1 COLLATE NOCASE OR hex(group_id) = upper(?1))",
            )?;
            let rows = statement.query_map(params![target.trim()], |row| row.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        match teams.as_slice() {
            [one] => Ok(id16(one).map(GroupId)),
            [] => Ok(None),
            _ => Err(ClientError::Ambiguous(target.to_owned())),
        }
    }

    /// Finds the conversation `target` names: a care team by name, or the 1:1 chat with a contact,
    /// which is created when there is none yet.
    pub fn resolve_chat(&mut self, target: &str) -> Result<GroupId> {
        if let Some(group) = self.chat_with_id(target)? {
            return Ok(group);
        }
        if let Some(group) = self.team_named(target)? {
            return Ok(group);
        }
        if self.contact_by_name(target)?.is_none() {
            // Perhaps a team this device was invited to and has not synced yet.
            self.flush_or_queue()?;
            if let Some(group) = self.team_named(target)? {
                return Ok(group);
            }
        }
        let (user, _) = self.contact_by_name_refreshing(target)?;
        if let Some(group) = self.direct_chat_with(&user)? {
            return Ok(group);
        }
        // The other clinician may have started the chat already: look again after a sync rather
        // than start a second one.
        self.flush_or_queue()?;
        if let Some(group) = self.direct_chat_with(&user)? {
            return Ok(group);
        }
        self.create(String::new(), None, &[user], true)
    }

    /// The conversation whose id is `target` in hex, as the app's list hands it back.
    fn chat_with_id(&self, target: &str) -> Result<Option<GroupId>> {
        let Some(id) = hex::decode(target.trim()).ok().as_deref().and_then(id16) else {
            return Ok(None);
        };
        let found: Option<i64> = self
            .store
            .connection()
            .query_row(
                "SELECT 1 FROM conversation WHERE group_id = ?1",
                params![id.as_slice()],
                |row| row.get(0),
            )
            .optional()?;
        Ok(found.map(|_| GroupId(id)))
    }

    fn direct_chat_with(&self, user: &UserId) -> Result<Option<GroupId>> {
        let existing: Option<Vec<u8>> = self
            .store
            .connection()
            .query_row(
                "SELECT conversation.group_id FROM conversation
                 JOIN conversation_member USING (group_id)
                 WHERE conversation.direct = 1 AND conversation.active = 1
                   AND conversation_member.user_id = ?1
                 ORDER BY conversation.last_activity DESC LIMIT 1",
                params![user.as_bytes().as_slice()],
                |row| row.get(0),
            )
            .optional()?;
        Ok(existing.as_deref().and_then(id16).map(GroupId))
    }

    /// Creates a care team with the contacts named in `members`.
    pub fn create_chat(
        &mut self,
        name: &str,
        members: &[String],
        patient_tag: Option<&str>,
    ) -> Result<GroupId> {
        let mut users = Vec::new();
        for member in members {
            let (user, _) = self.contact_by_name_refreshing(member)?;
            if user != self.me() && !users.contains(&user) {
                users.push(user);
            }
        }
        self.create(
            name.trim().to_owned(),
            patient_tag.map(|tag| tag.trim().to_owned()),
            &users,
            false,
        )
    }

    /// Claims one key package for every device of `users`, except this one.
    fn claim_key_packages(&mut self, users: &[UserId]) -> Result<(Vec<Vec<u8>>, Vec<DeviceId>)> {
        let mut key_packages = Vec::new();
        let mut devices = Vec::new();
        for user in users {
            let user_devices = self.devices_of(user)?;
            let name = Self::user_name(self.store.connection(), user.as_bytes())?;
            if user_devices.is_empty() {
                return Err(ClientError::NoKeyPackage(name));
            }
            for device in user_devices {
                if device == self.account.credential.device {
                    continue;
                }
                let key_package = self
                    .relay
                    .claim_key_package(self.device.key(), &device)?
                    .ok_or_else(|| ClientError::NoKeyPackage(name.clone()))?;
                key_packages.push(key_package);
                devices.push(device);
            }
        }
        Ok((key_packages, devices))
    }

    fn create(
        &mut self,
        name: String,
        patient_tag: Option<String>,
        users: &[UserId],
        direct: bool,
    ) -> Result<GroupId> {
        let me = self.me();
        let (key_packages, _) = self.claim_key_packages(users)?;
        let mut roles = vec![(me, MemberRole::Admin)];
        roles.extend(users.iter().map(|user| {
            (
                *user,
                if direct {
                    MemberRole::Admin
                } else {
                    MemberRole::Member
                },
            )
        }));
        let data = GroupData {
            name: name.clone(),
            patient_tag: patient_tag.clone(),
            roles,
        };
        let group = GroupId(random()?);
        let (conversation, commit) =
            self.device
                .create_conversation(group, &data, &key_packages)?;
        self.conversations.insert(group, conversation);
        {
            let tx = self.store.connection_mut().transaction()?;
            tx.execute(
                "INSERT INTO conversation (group_id, name, patient_tag, direct, active, cursor,
                                           last_activity)
                 VALUES (?1, ?2, ?3, ?4, 1, 0, ?5)",
                params![
                    group.as_bytes().as_slice(),
                    name,
                    patient_tag,
                    direct,
                    now()
                ],
            )?;
            for user in std::iter::once(&me).chain(users) {
                tx.execute(
                    "INSERT OR IGNORE INTO conversation_member (group_id, user_id) VALUES (?1, ?2)",
                    params![group.as_bytes().as_slice(), user.as_bytes().as_slice()],
                )?;
            }
            if let Some(commit) = commit {
                queue_commit(&tx, &commit, &[], Intent::Add)?;
            }
            save_mls(&tx, &self.device)?;
            tx.commit()?;
        }
        self.flush_or_queue()?;
        Ok(group)
    }

    /// Adds the contacts named in `members` to the care team `chat`.
    pub fn add_members(&mut self, chat: &str, members: &[String]) -> Result<()> {
        let group = self.resolve_chat(chat)?;
        self.settle(&group)?;
        let mut users = Vec::new();
        for member in members {
            users.push(self.contact_by_name_refreshing(member)?.0);
        }
        self.refuse_changed_keys(&users)?;
        let (key_packages, _) = self.claim_key_packages(&users)?;
        let conversation = cached(&mut self.conversations, &self.device, &group)?
            .ok_or(ClientError::UnknownMessage)?;
        let commit = conversation.add_members(&self.device, &key_packages)?;
        self.queue_member_change(&group, &commit, &[], Intent::Add, &users)
    }

    /// Saves a membership commit in the outbox with the MLS state and the member list it leads
    /// to, then sends it.
    fn queue_member_change(
        &mut self,
        group: &GroupId,
        commit: &WireMessage,
        removed: &[DeviceId],
        intent: Intent,
        users: &[UserId],
    ) -> Result<()> {
        let member_change = if intent == Intent::Remove {
            "DELETE FROM conversation_member WHERE group_id = ?1 AND user_id = ?2"
        } else {
            "INSERT OR IGNORE INTO conversation_member (group_id, user_id) VALUES (?1, ?2)"
        };
        let tx = self.store.connection_mut().transaction()?;
        queue_commit(&tx, commit, removed, intent)?;
        for user in users {
            tx.execute(
                member_change,
                params![group.as_bytes().as_slice(), user.as_bytes().as_slice()],
            )?;
        }
        save_mls(&tx, &self.device)?;
        tx.commit()?;
        self.flush_or_queue()
    }

    /// Adds `devices` again after their first addition lost a commit race: new key packages, a
    /// new commit. Devices that joined meanwhile are left out.
    fn add_devices(&mut self, group: &GroupId, devices: &[DeviceId]) -> Result<()> {
        let Some(conversation) = cached(&mut self.conversations, &self.device, group)? else {
            return Ok(());
        };
        let members: HashSet<DeviceId> = conversation
            .members()?
            .into_iter()
            .map(|member| member.device)
            .collect();
        let mut key_packages = Vec::new();
        for device in devices.iter().filter(|device| !members.contains(device)) {
            if let Some(key_package) = self.relay.claim_key_package(self.device.key(), device)? {
                key_packages.push(key_package);
            }
        }
        if key_packages.is_empty() {
            return Ok(());
        }
        let conversation = cached(&mut self.conversations, &self.device, group)?
            .ok_or(ClientError::UnknownMessage)?;
        let commit = conversation.add_members(&self.device, &key_packages)?;
        let tx = self.store.connection_mut().transaction()?;
        queue_commit(&tx, &commit, &[], Intent::Add)?;
        save_mls(&tx, &self.device)?;
        tx.commit()?;
        Ok(())
    }

    /// Replaces this device's keys in the care team `chat`, for post-compromise security.
    pub fn update_keys(&mut self, chat: &str) -> Result<()> {
        let group = self.resolve_chat(chat)?;
        self.settle(&group)?;
        let conversation = cached(&mut self.conversations, &self.device, &group)?
            .ok_or(ClientError::UnknownMessage)?;
        let commit = conversation.self_update(&self.device)?;
        self.queue_member_change(&group, &commit, &[], Intent::Update, &[])
    }

    /// Removes the contacts named in `members` from the care team `chat`.
    pub fn remove_members(&mut self, chat: &str, members: &[String]) -> Result<()> {
        let group = self.resolve_chat(chat)?;
        self.settle(&group)?;
        let mut users = Vec::new();
        for member in members {
            users.push(self.contact_by_name_refreshing(member)?.0);
        }
        let conversation = cached(&mut self.conversations, &self.device, &group)?
            .ok_or(ClientError::UnknownMessage)?;
        let removed: Vec<DeviceId> = conversation
            .members()?
            .into_iter()
            .filter(|member| users.contains(&member.user))
            .map(|member| member.device)
            .collect();
        let commit = conversation.remove_users(&self.device, &users)?;
        self.queue_member_change(&group, &commit, &removed, Intent::Remove, &users)
    }

    /// Syncs until the conversation has no change waiting for the relay.
    fn settle(&mut self, group: &GroupId) -> Result<()> {
        let pending = cached(&mut self.conversations, &self.device, group)?
            .is_some_and(|conversation| conversation.has_pending_change());
        if pending {
            self.sync()?;
            let still = cached(&mut self.conversations, &self.device, group)?
                .is_some_and(|conversation| conversation.has_pending_change());
            if still {
                return Err(ClientError::ChangePending);
            }
        }
        Ok(())
    }

    /// Sends a text to `target` (a care team or a contact's name). The message is in the outbox
    /// before this returns; it is sent now when the relay is reachable, later otherwise.
    pub fn send_text(&mut self, target: &str, text: &str) -> Result<ClientMessageId> {
        let ids = self.send_texts(target, &[text.to_owned()])?;
        ids.into_iter().next().ok_or(ClientError::UnknownMessage)
    }

    /// Sends several texts to `target`, in order. They are encrypted and put in the outbox in one
    /// transaction, then sent.
    pub fn send_texts(&mut self, target: &str, texts: &[String]) -> Result<Vec<ClientMessageId>> {
        let group = self.resolve_chat(target)?;
        let mut contents = Vec::with_capacity(texts.len());
        let mut ids = Vec::with_capacity(texts.len());
        for text in texts {
            let id = ClientMessageId(random()?);
            ids.push(id);
            contents.push(AppContent::Text {
                id,
                body: text.clone(),
            });
        }
        self.send_contents(&group, contents, None)?;
        Ok(ids)
    }

    /// Encrypts `contents` in order, saves them with the MLS state and the outbox in one
    /// transaction, then sends the outbox.
    fn send_contents(
        &mut self,
        group: &GroupId,
        contents: Vec<AppContent>,
        attachment: Option<&AttachmentRow<'_>>,
    ) -> Result<()> {
        self.refuse_changed_keys(&self.member_users(group)?)?;
        self.settle(group)?;
        let me = self.account.credential.clone();
        let Self {
            store,
            device,
            conversations,
            ..
        } = self;
        let conversation =
            cached(conversations, device, group)?.ok_or(ClientError::UnknownMessage)?;
        let tx = store.connection_mut().transaction()?;
        for content in &contents {
            let wire = conversation.send(device, content)?;
            let WireMessage::Application { epoch, message, .. } = &wire else {
                return Err(ClientError::Conversation(ConversationError::Malformed));
            };
            let shown = match content {
                AppContent::Text { id, body } => Some((*id, "text", body.clone())),
                AppContent::Attachment { id, attachment } => {
                    Some((*id, "attachment", attachment.name.clone()))
                }
                // Applied here as every other member applies them on receipt.
                AppContent::Edit { target, body, .. } => {
                    tx.execute(
                        "UPDATE message SET body = ?3, edited = 1
                         WHERE group_id = ?1 AND client_id = ?2",
                        params![
                            group.as_bytes().as_slice(),
                            target.as_bytes().as_slice(),
                            body
                        ],
                    )?;
                    None
                }
                AppContent::Delete { target, .. } => {
                    forget_message(&tx, group, &me.user, target)?;
                    None
                }
                AppContent::Receipt { .. } => None,
            };
            let row = match shown {
                Some((id, kind, body)) => {
                    tx.execute(
                        "INSERT INTO message (group_id, sender_user, sender_device, client_id,
                                              sequence, kind, body, status, at)
                         VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6, 'sending', ?7)",
                        params![
                            group.as_bytes().as_slice(),
                            me.user.as_bytes().as_slice(),
                            me.device.as_bytes().as_slice(),
                            id.as_bytes().as_slice(),
                            kind,
                            body,
                            now()
                        ],
                    )?;
                    let row = tx.last_insert_rowid();
                    if let (Some(attachment), AppContent::Attachment { .. }) = (attachment, content)
                    {
                        attachment.insert(&tx, row, true)?;
                    }
                    Some(row)
                }
                None => None,
            };
            tx.execute(
                "INSERT INTO outbox (group_id, is_commit, send_id, epoch, body, added, removed,
                                     intent, message_id)
                 VALUES (?1, 0, ?2, ?3, ?4, x'', x'', 'message', ?5)",
                params![
                    group.as_bytes().as_slice(),
                    random::<16>()?.as_slice(),
                    i64::try_from(*epoch).unwrap_or(i64::MAX),
                    message,
                    row
                ],
            )?;
        }
        let receipts_only = contents
            .iter()
            .all(|content| matches!(content, AppContent::Receipt { .. }));
        if !receipts_only {
            tx.execute(
                "UPDATE conversation SET last_activity = ?2 WHERE group_id = ?1",
                params![group.as_bytes().as_slice(), now()],
            )?;
        }
        save_mls(&tx, device)?;
        tx.commit()?;
        self.send_outbox()
    }

    /// Replaces the text of a message this clinician sent, for every member.
    pub fn edit_message(&mut self, client_id: &str, text: &str) -> Result<()> {
        let (group, target, kind) = self.own_message(client_id)?;
        if kind != "text" {
            return Err(ClientError::UnknownMessage);
        }
        let id = ClientMessageId(random()?);
        self.send_contents(
            &group,
            vec![AppContent::Edit {
                id,
                target,
                body: text.to_owned(),
            }],
            None,
        )
    }

    /// Deletes a message this clinician sent, for every member: its text, or its attachment's
    /// key and local ciphertext, are gone from every device that applies it.
    pub fn delete_message(&mut self, client_id: &str) -> Result<()> {
        let (group, target, _) = self.own_message(client_id)?;
        let id = ClientMessageId(random()?);
        self.send_contents(&group, vec![AppContent::Delete { id, target }], None)?;
        self.remove_deleted_ciphertexts()
    }

    /// The conversation, id and kind of a message this clinician sent and has not deleted.
    fn own_message(&self, client_id: &str) -> Result<(GroupId, ClientMessageId, String)> {
        let bytes = hex::decode(client_id.trim()).map_err(|_| ClientError::UnknownMessage)?;
        let target = ClientMessageId(
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| ClientError::UnknownMessage)?,
        );
        let found: Option<(Vec<u8>, String)> = self
            .store
            .connection()
            .query_row(
                "SELECT group_id, kind FROM message
                 WHERE client_id = ?1 AND sender_user = ?2 AND deleted = 0",
                params![bytes, self.me().as_bytes().as_slice()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let (group, kind) = found.ok_or(ClientError::UnknownMessage)?;
        let group = GroupId(
            group
                .as_slice()
                .try_into()
                .map_err(|_| ClientError::UnknownMessage)?,
        );
        Ok((group, target, kind))
    }

    /// Removes the local ciphertext of attachments whose message was deleted: with the key gone
    /// it is noise, and it should not take up the ward PC's disk.
    fn remove_deleted_ciphertexts(&mut self) -> Result<()> {
        let blobs: Vec<Vec<u8>> = {
            let connection = self.store.connection();
            let mut statement = connection.prepare(
                "SELECT attachment.blob_id FROM attachment JOIN message
                     ON message.id = attachment.message_id
                 WHERE message.deleted = 1 AND attachment.stored = 1",
            )?;
            let rows = statement.query_map([], |row| row.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let folder = self.attachment_folder()?;
        for blob in blobs {
            match fs::remove_file(folder.join(hex::encode(&blob))) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(error.into()),
            }
            self.store.connection().execute(
                "UPDATE attachment SET stored = 0 WHERE blob_id = ?1",
                params![blob],
            )?;
        }
        Ok(())
    }

    /// Tells each conversation's members which of their messages reached this device. The app
    /// calls it after each sync; a relay that cannot be reached leaves them for the next one.
    pub fn send_delivery_receipts(&mut self) -> Result<()> {
        self.send_receipts(None, ReceiptKind::Delivered)
    }

    /// Sends receipts of `kind` for received messages whose furthest receipt is short of it, in
    /// `only` or in every conversation.
    fn send_receipts(&mut self, only: Option<&GroupId>, kind: ReceiptKind) -> Result<()> {
        let (level, filter) = match kind {
            ReceiptKind::Delivered => ("delivered", "receipt IS NULL"),
            ReceiptKind::Read => ("read", "(receipt IS NULL OR receipt = 'delivered')"),
        };
        let pending: Vec<(Vec<u8>, Vec<u8>)> = {
            let connection = self.store.connection();
            let mut statement = connection.prepare(&format!(
                "SELECT group_id, client_id FROM message
                 WHERE status = 'received' AND deleted = 0 AND {filter}
                   AND (?1 IS NULL OR group_id = ?1)
                 ORDER BY group_id, id"
            ))?;
            let rows = statement.query_map(
                params![only.map(|group| group.as_bytes().to_vec())],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut by_group: BTreeMap<Vec<u8>, Vec<ClientMessageId>> = BTreeMap::new();
        for (group, id) in pending {
            if let Ok(id) = id.as_slice().try_into() {
                by_group.entry(group).or_default().push(ClientMessageId(id));
            }
        }
        for (group_bytes, ids) in by_group {
            let Ok(group) = group_bytes.as_slice().try_into().map(GroupId) else {
                continue;
            };
            let contents = ids
                .chunks(RECEIPT_IDS_PER_MESSAGE)
                .map(|chunk| AppContent::Receipt {
                    kind,
                    ids: chunk.to_vec(),
                })
                .collect();
            match self.send_contents(&group, contents, None) {
                Ok(()) => {}
                // A receipt is a courtesy: a changed key waiting for verification, or a
                // conversation this device has left, must not stop anything else.
                Err(ClientError::ChangedKeyUnverified(_) | ClientError::UnknownMessage) => {}
                Err(error) => return Err(error),
            }
            let tx = self.store.connection_mut().transaction()?;
            for id in &ids {
                tx.execute(
                    "UPDATE message SET receipt = ?3 WHERE group_id = ?1 AND client_id = ?2",
                    params![group_bytes, id.as_bytes().as_slice(), level],
                )?;
            }
            tx.commit()?;
        }
        Ok(())
    }

    /// Refuses a new key exchange with any of `users` while their key changed unverified, when
    /// policy says so: sending to them, or adding them to a conversation.
    fn refuse_changed_keys(&self, users: &[UserId]) -> Result<()> {
        if self.policy.block_changed_unverified_keys != Some(true) {
            return Ok(());
        }
        let mut changed = self
            .store
            .connection()
            .prepare_cached("SELECT name FROM contact WHERE user_id = ?1 AND key_changed")?;
        for user in users {
            let name: Option<String> = changed
                .query_row(params![user.as_bytes().as_slice()], |row| row.get(0))
                .optional()?;
            if let Some(name) = name {
                return Err(ClientError::ChangedKeyUnverified(name));
            }
        }
        Ok(())
    }

    /// Sends what the outbox holds without reading the inbox, unless a commit lost a race and
    /// the inbox holds what it lost to. A relay that cannot be reached leaves it queued.
    fn send_outbox(&mut self) -> Result<()> {
        let mut report = SyncReport::default();
        match self.flush_outbox(&mut report) {
            Ok(false) => Ok(()),
            Ok(true) => self.flush_or_queue(),
            Err(ClientError::Relay(error)) if error.is_transient() => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Encrypts the file at `path`, uploads the ciphertext and sends it to `target`. The
    /// ciphertext stays in the profile folder; the plaintext is never copied.
    pub fn send_file(&mut self, target: &str, path: &Path) -> Result<ClientMessageId> {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "attachment".to_owned());
        let size = fs::metadata(path)?.len();
        self.send_attachment(
            target,
            &name,
            size,
            |key, stored| encrypt_file(key, path, stored),
            &mut |_, _| {},
        )
    }

    /// Sends `bytes` as an attachment named `name`: a file the clinician picked, dropped or
    /// pasted into the app. The bytes are encrypted straight from memory; `progress` hears how
    /// much of the ciphertext has been uploaded.
    pub fn send_bytes(
        &mut self,
        target: &str,
        name: &str,
        bytes: &[u8],
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<ClientMessageId> {
        let name = attachment_name(name);
        self.send_attachment(
            target,
            &name,
            bytes.len() as u64,
            |key, stored| encrypt_reader(key, bytes, stored),
            progress,
        )
    }

    fn send_attachment(
        &mut self,
        target: &str,
        name: &str,
        size: u64,
        encrypt: impl FnOnce(&FileKey, &Path) -> std::result::Result<EncryptedFile, AttachmentFileError>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<ClientMessageId> {
        let group = self.resolve_chat(target)?;
        let media_type = media_type_of(name).to_owned();
        if !self.policy.allows_media_type(&media_type) {
            return Err(ClientError::AttachmentTypeNotAllowed(media_type));
        }
        if let Some(limit_mb) = self.policy.attachment_max_mb {
            if size > u64::from(limit_mb) * 1_000_000 {
                return Err(ClientError::AttachmentTooLarge {
                    size_mb: size.div_ceil(1_000_000),
                    limit_mb,
                });
            }
        }
        // Refused before the upload, not after it: the clinician learns at once.
        self.refuse_changed_keys(&self.member_users(&group)?)?;
        let folder = self.attachment_folder()?;
        let blob_id = BlobId(random()?);
        let stored = folder.join(hex::encode(blob_id.as_bytes()));
        let partial = stored.with_extension("part");
        let key = FileKey::generate().map_err(AttachmentFileError::from)?;
        let encrypted = encrypt(&key, &partial)?;
        let uploaded = self
            .relay
            .put_blob(self.device.key(), &blob_id, &partial, progress);
        if let Err(error) = uploaded {
            let _ = fs::remove_file(&partial);
            return Err(error.into());
        }
        fs::rename(&partial, &stored)?;
        let id = ClientMessageId(random()?);
        let file_key = FileKeyBytes::from_slice(key.as_bytes()).ok_or(ClientError::NoRandomness)?;
        let row = AttachmentRow {
            blob_id,
            file_key: key.as_bytes(),
            ciphertext_sha256: encrypted.ciphertext_sha256,
            size: encrypted.plaintext_len,
            media_type: &media_type,
            name,
        };
        self.send_contents(
            &group,
            vec![AppContent::Attachment {
                id,
                attachment: AttachmentRef {
                    blob_id,
                    file_key,
                    ciphertext_sha256: encrypted.ciphertext_sha256,
                    size: encrypted.plaintext_len,
                    media_type: media_type.clone(),
                    name: name.to_owned(),
                },
            }],
            Some(&row),
        )?;
        Ok(id)
    }

    fn attachment_folder(&self) -> Result<PathBuf> {
        let folder = self.dir.root().join(ATTACHMENT_FOLDER);
        fs::create_dir_all(&folder)?;
        Ok(folder)
    }

    /// Decrypts the attachment of the message whose client id is `client_id` (hex) into a new
    /// file at `out`, downloading the ciphertext first if this device does not have it yet. This
    /// is the "Save as…" path: the only way a plaintext file reaches disk.
    pub fn fetch_file(&mut self, client_id: &str, out: &Path) -> Result<u64> {
        let (path, key, _) = self.stored_attachment(client_id, &mut |_, _| {})?;
        Ok(decrypt_file(&key, &path, out)?)
    }

    /// Decrypts the attachment of the message `client_id` (hex) into memory for a viewer,
    /// downloading the ciphertext first if needed; `progress` hears how much has arrived. The
    /// returned buffer wipes itself on drop.
    pub fn attachment_bytes(
        &mut self,
        client_id: &str,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let (path, key, size) = self.stored_attachment(client_id, progress)?;
        Ok(decrypt_to_memory(&key, &path, size)?)
    }

    /// The local ciphertext file of a message's attachment, its key and its announced plaintext
    /// size; the ciphertext is downloaded and checked first when this device does not have it.
    fn stored_attachment(
        &mut self,
        client_id: &str,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(PathBuf, FileKey, u64)> {
        let client_id = hex::decode(client_id.trim()).map_err(|_| ClientError::UnknownMessage)?;
        let found: Option<StoredAttachment> = self
            .store
            .connection()
            .query_row(
                "SELECT attachment.blob_id, attachment.file_key, attachment.ciphertext_sha256,
                        attachment.stored, attachment.size
                 FROM message JOIN attachment ON attachment.message_id = message.id
                 WHERE message.client_id = ?1 AND message.deleted = 0",
                params![client_id],
                |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                },
            )
            .optional()?;
        let Some((blob, file_key, sha256, stored, size)) = found else {
            let exists: bool = self.store.connection().query_row(
                "SELECT count(*) > 0 FROM message WHERE client_id = ?1",
                params![client_id],
                |row| row.get(0),
            )?;
            return Err(if exists {
                ClientError::NoAttachment
            } else {
                ClientError::UnknownMessage
            });
        };
        let file_key = zeroize::Zeroizing::new(file_key);
        let size = u64::try_from(size).map_err(|_| ClientError::AttachmentMismatch)?;
        let blob_id = BlobId(
            blob.as_slice()
                .try_into()
                .map_err(|_| ClientError::UnknownMessage)?,
        );
        let path = self.attachment_folder()?.join(hex::encode(&blob));
        if !stored || !path.exists() {
            let partial = path.with_extension("part");
            let file = fs::File::create(&partial)?;
            // The ciphertext is the plaintext plus one tag per chunk: close enough for a bar.
            let mut counted = CountingWriter {
                inner: file,
                done: 0,
                total: size,
                progress,
            };
            let fetched = self
                .relay
                .get_blob(self.device.key(), &blob_id, &mut counted);
            let file = counted.inner;
            if let Err(error) = fetched {
                drop(file);
                let _ = fs::remove_file(&partial);
                return Err(error.into());
            }
            file.sync_all()?;
            drop(file);
            if sha256_of_file(&partial)?.as_slice() != sha256.as_slice() {
                fs::remove_file(&partial)?;
                return Err(ClientError::AttachmentMismatch);
            }
            fs::rename(&partial, &path)?;
            self.store.connection().execute(
                "UPDATE attachment SET stored = 1 WHERE blob_id = ?1",
                params![blob],
            )?;
        }
        let key = FileKey::from_slice(&file_key).ok_or(ClientError::AttachmentMismatch)?;
        Ok((path, key, size))
    }

    /// Messages received and not shown yet, in each conversation's log order. They are marked
    /// shown by [`Client::mark_shown`], after the caller has shown them.
    pub fn unshown_messages(&self) -> Result<Vec<ShownMessage>> {
        self.query_messages(
            "WHERE message.displayed = 0 AND message.status = 'received'
             ORDER BY message.group_id, message.sequence",
            params![],
        )
    }

    /// The messages of one conversation in log order; unsent ones last.
    pub fn messages(&mut self, chat: &str) -> Result<Vec<ShownMessage>> {
        let group = self.resolve_chat(chat)?;
        self.query_messages(
            "WHERE message.group_id = ?1
             ORDER BY message.sequence IS NULL, message.sequence, message.id",
            params![group.as_bytes().as_slice()],
        )
    }

    /// The newest `limit` messages of one conversation in log order, and how many it has in all.
    /// With `include` (a client id, hex), enough older ones are added to reach that message, so
    /// a search result can be shown in place.
    pub fn messages_page(
        &mut self,
        chat: &str,
        limit: usize,
        include: Option<&str>,
    ) -> Result<(Vec<ShownMessage>, usize)> {
        let group = self.resolve_chat(chat)?;
        let group = group.as_bytes().as_slice();
        let connection = self.store.connection();
        // One key orders the log: sent and received by sequence, unsent ones last by row.
        const KEY: &str = "(sequence IS NULL, coalesce(sequence, 0), id)";
        let total: i64 = connection.query_row(
            "SELECT count(*) FROM message WHERE group_id = ?1",
            params![group],
            |row| row.get(0),
        )?;
        let mut wanted = i64::try_from(limit).unwrap_or(i64::MAX);
        if let Some(include) = include.and_then(|id| hex::decode(id.trim()).ok()) {
            let from_it: Option<i64> = connection
                .query_row(
                    &format!(
                        "SELECT (SELECT count(*) FROM message AS later
                                 WHERE later.group_id = ?1
                                   AND (later.sequence IS NULL, coalesce(later.sequence, 0),
                                        later.id) >= {KEY})
                         FROM message WHERE group_id = ?1 AND client_id = ?2"
                    ),
                    params![group, include],
                    |row| row.get(0),
                )
                .optional()?;
            wanted = wanted.max(from_it.unwrap_or(0));
        }
        let messages = self.query_messages(
            "WHERE message.id IN (SELECT id FROM message WHERE group_id = ?1
                                  ORDER BY sequence IS NULL DESC,
                                           coalesce(sequence, 0) DESC, id DESC
                                  LIMIT ?2)
             ORDER BY message.sequence IS NULL, message.sequence, message.id",
            params![group, wanted],
        )?;
        Ok((messages, usize::try_from(total).unwrap_or(0)))
    }

    fn query_messages(
        &self,
        filter: &str,
        arguments: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<ShownMessage>> {
        let connection = self.store.connection();
        let sql = format!(
            "SELECT message.id, message.group_id, conversation.name, conversation.direct,
                    message.sender_user, message.client_id, message.sequence, message.kind,
                    message.body, message.status, message.edited, message.deleted, attachment.size,
                    message.at, attachment.media_type
             FROM message JOIN conversation USING (group_id)
             LEFT JOIN attachment ON attachment.message_id = message.id
             {filter}"
        );
        let mut statement = connection.prepare(&sql)?;
        let rows = statement.query_map(arguments, |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, bool>(3)?,
                row.get::<_, Vec<u8>>(4)?,
                row.get::<_, Vec<u8>>(5)?,
                row.get::<_, Option<i64>>(6)?,
                row.get::<_, String>(7)?,
                row.get::<_, String>(8)?,
                row.get::<_, String>(9)?,
                row.get::<_, bool>(10)?,
                row.get::<_, bool>(11)?,
                row.get::<_, Option<i64>>(12)?,
                row.get::<_, i64>(13)?,
                row.get::<_, Option<String>>(14)?,
            ))
        })?;
        let me = self.me().as_bytes().to_vec();
        let mut names: HashMap<(Vec<u8>, bool), String> = HashMap::new();
        let mut messages = Vec::new();
        for row in rows {
            let (
                row,
                group,
                chat,
                direct,
                sender,
                client_id,
                sequence,
                kind,
                text,
                status,
                edited,
                deleted,
                size,
                at,
                media_type,
            ) = row?;
            let chat = match names.get(&(group.clone(), direct)) {
                Some(name) => name.clone(),
                None => {
                    let name = self.display_name(&group, &chat, direct)?;
                    names.insert((group.clone(), direct), name.clone());
                    name
                }
            };
            messages.push(ShownMessage {
                chat_id: hex::encode(&group),
                chat,
                sender: Self::user_name(connection, &sender)?,
                sender_id: hex::encode(&sender),
                client_id: hex::encode(&client_id),
                sequence: sequence.and_then(|sequence| u64::try_from(sequence).ok()),
                kind,
                text: if deleted { String::new() } else { text },
                size: size.and_then(|size| u64::try_from(size).ok()),
                status,
                edited,
                deleted,
                mine: sender == me,
                at,
                media_type,
                row,
            });
        }
        Ok(messages)
    }

    /// Records that these messages were shown.
    pub fn mark_shown(&mut self, messages: &[ShownMessage]) -> Result<()> {
        let tx = self.store.connection_mut().transaction()?;
        for message in messages {
            tx.execute(
                "UPDATE message SET displayed = 1 WHERE id = ?1",
                params![message.row],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Marks every message in `chat` read on this device; returns how many were unread.
    /// Read receipts go to the senders; a relay that cannot be reached leaves them queued.
    pub fn mark_read(&mut self, chat: &str) -> Result<usize> {
        let group = self
            .chat_with_id(chat)?
            .ok_or_else(|| ClientError::UnknownName(chat.to_owned()))?;
        let read = self.store.connection().execute(
            "UPDATE message SET unread = 0 WHERE group_id = ?1 AND unread = 1",
            params![group.as_bytes().as_slice()],
        )?;
        self.send_receipts(Some(&group), ReceiptKind::Read)?;
        Ok(read)
    }

    /// Finds messages whose text holds every word of `query` (each as a word prefix, so "pota"
    /// finds "potassium"), newest first; `patient_tag` keeps only that patient's care teams.
    pub fn search(&self, query: &str, patient_tag: Option<&str>) -> Result<Vec<SearchHit>> {
        Ok(crate::history::search(
            self.store.connection(),
            self.me().as_bytes(),
            query,
            patient_tag,
            SEARCH_LIMIT,
        )?)
    }

    /// How many messages and changes wait in the outbox; receipts are not counted, as no one
    /// waits for them.
    pub fn queued(&self) -> Result<usize> {
        let count: i64 = self.store.connection().query_row(
            "SELECT count(*) FROM outbox WHERE message_id IS NOT NULL OR is_commit = 1",
            [],
            |row| row.get(0),
        )?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    /// Sends what the outbox holds; a relay that cannot be reached leaves it there.
    fn flush_or_queue(&mut self) -> Result<()> {
        match self.sync() {
            Ok(_) => Ok(()),
            Err(ClientError::Relay(error)) if error.is_transient() => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Sends the outbox and applies the inbox until both are done, or a commit race needs more
    /// rounds than [`SYNC_ROUNDS`].
    pub fn sync(&mut self) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        for _ in 0..SYNC_ROUNDS {
            let raced = self.flush_outbox(&mut report)?;
            let restored_before = report.relay_restored;
            self.pull_inbox(&mut report)?;
            let redo = std::mem::take(&mut report.redo_adds);
            for (group, devices) in &redo {
                self.add_devices(group, devices)?;
            }
            let just_restored = report.relay_restored && !restored_before;
            if !raced && redo.is_empty() && !just_restored {
                break;
            }
        }
        report.queued = self.queued()?;
        if now() >= self.retention_due {
            self.apply_retention()?;
            self.store.connection().execute(
                "DELETE FROM sent_log WHERE sent_at < ?1",
                params![now().saturating_sub(SENT_LOG_SECONDS)],
            )?;
            // An hour is well inside any retention period IT can set (a day at least).
            self.retention_due = now().saturating_add(3_600);
        }
        // New senders are noted as their messages are stored; members are few, so checked whole.
        let unknown_members: bool = self.store.connection().query_row(
            "SELECT EXISTS (SELECT 1 FROM conversation_member
                            WHERE user_id NOT IN (SELECT user_id FROM contact))",
            [],
            |row| row.get(0),
        )?;
        if report.unknown_sender || unknown_members {
            // Someone enrolled after the directory was last read; names are nice to have, so a
            // failure here is not the sync's.
            let _ = self.refresh_contacts();
        }
        Ok(report)
    }

    /// Sends outbox rows in order, per conversation. Returns whether a commit lost its race, in
    /// which case the inbox holds the winner and the change is made again from there.
    fn flush_outbox(&mut self, report: &mut SyncReport) -> Result<bool> {
        let rows = outbox_rows(self.store.connection())?;
        let mut blocked: HashSet<GroupId> = HashSet::new();
        let mut raced = false;
        let mut sent = Vec::new();
        let outcome = self.flush_rows(rows, &mut blocked, &mut raced, &mut sent, report);
        // What the relay stored is recorded even when a later row failed.
        self.record_sent(&mut sent, report)?;
        outcome.map(|()| raced)
    }

    /// Marks messages the relay stored as sent, in one transaction. A crash before this only
    /// means they are sent again, and the relay answers a repeated send id with the first
    /// sequence.
    fn record_sent(&mut self, sent: &mut Vec<SentRow>, report: &mut SyncReport) -> Result<()> {
        if sent.is_empty() {
            return Ok(());
        }
        let tx = self.store.connection_mut().transaction()?;
        for (outbox, message, sequence) in sent.drain(..) {
            log_sent(&tx, "id = ?1", params![outbox])?;
            tx.execute("DELETE FROM outbox WHERE id = ?1", params![outbox])?;
            if let Some(message) = message {
                tx.execute(
                    "UPDATE message SET sequence = ?2 + (SELECT sequence_offset FROM conversation
                                                         WHERE group_id = message.group_id),
                         status = CASE status WHEN 'sending' THEN 'sent' ELSE status END
                     WHERE id = ?1",
                    params![message, i64::try_from(sequence).unwrap_or(i64::MAX)],
                )?;
                report.sent += 1;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn flush_rows(
        &mut self,
        rows: Vec<OutboxRow>,
        blocked: &mut HashSet<GroupId>,
        raced: &mut bool,
        sent: &mut Vec<SentRow>,
        report: &mut SyncReport,
    ) -> Result<()> {
        for row in rows {
            if blocked.contains(&row.group) {
                continue;
            }
            let epoch = u64::try_from(row.epoch).unwrap_or(0);
            let outcome = if row.is_commit {
                self.relay.commit(
                    self.device.key(),
                    &CommitRequest {
                        group: hex::encode(row.group.as_bytes()),
                        epoch,
                        send_id: hex::encode(&row.send_id),
                        message: hex::encode(&row.body),
                        added: hex_devices(&row.added),
                        removed: hex_devices(&row.removed),
                        welcome: row.welcome.as_ref().map(hex::encode),
                    },
                )
            } else {
                self.relay.message(
                    self.device.key(),
                    &MessageRequest {
                        group: hex::encode(row.group.as_bytes()),
                        epoch,
                        send_id: hex::encode(&row.send_id),
                        message: hex::encode(&row.body),
                    },
                )
            };
            match outcome {
                Ok(sequence) if !row.is_commit => {
                    sent.push((row.id, row.message_id, sequence));
                    if sent.len() >= SENT_BATCH {
                        self.record_sent(sent, report)?;
                    }
                }
                Ok(_) => {
                    self.record_sent(sent, report)?;
                    if let Some(conversation) =
                        cached(&mut self.conversations, &self.device, &row.group)?
                    {
                        // A commit sent again after a restore was applied long ago; a change
                        // pending now is another one.
                        if conversation.has_pending_change() && !row.replay {
                            conversation.commit_accepted(&self.device)?;
                        }
                    }
                    let tx = self.store.connection_mut().transaction()?;
                    log_sent(&tx, "id = ?1", params![row.id])?;
                    tx.execute("DELETE FROM outbox WHERE id = ?1", params![row.id])?;
                    if let Some(conversation) = self.conversations.get(&row.group) {
                        record_members(&tx, conversation)?;
                    }
                    save_mls(&tx, &self.device)?;
                    tx.commit()?;
                }
                Err(RelayError::EpochMoved { current_epoch }) if row.replay => {
                    if current_epoch > epoch {
                        // The restored relay moved on without it: nothing is left to send.
                        self.store
                            .connection()
                            .execute("DELETE FROM outbox WHERE id = ?1", params![row.id])?;
                    } else {
                        // Another member's lost commit comes first; it is sent again by them.
                        blocked.insert(row.group);
                    }
                }
                Err(RelayError::EpochMoved { .. }) => {
                    blocked.insert(row.group);
                    *raced = true;
                }
                Err(error) if row.replay && error.code() == Some("not_a_member") => {
                    // Sent before, and shown as sent: only the copy for the restored relay goes.
                    self.store
                        .connection()
                        .execute("DELETE FROM outbox WHERE id = ?1", params![row.id])?;
                    blocked.insert(row.group);
                }
                Err(error) if error.is_transient() => return Err(error.into()),
                Err(error) if error.code() == Some("not_a_member") => {
                    // Removed from the conversation while this waited: it can never be sent.
                    let tx = self.store.connection_mut().transaction()?;
                    tx.execute("DELETE FROM outbox WHERE id = ?1", params![row.id])?;
                    if let Some(message) = row.message_id {
                        tx.execute(
                            "UPDATE message SET status = 'failed' WHERE id = ?1",
                            params![message],
                        )?;
                    }
                    tx.commit()?;
                    blocked.insert(row.group);
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// Applies the inbox, a page per transaction, acknowledging each page once it is saved.
    fn pull_inbox(&mut self, report: &mut SyncReport) -> Result<()> {
        for _ in 0..MAX_INBOX_PAGES {
            let inbox = self.relay.inbox(self.device.key())?;
            self.note_generation(&inbox.generation, report)?;
            if inbox.welcomes.is_empty() && inbox.entries.is_empty() {
                return Ok(());
            }
            let mut acks: BTreeMap<GroupId, u64> = BTreeMap::new();
            let mut progressed = false;
            {
                let me = self.account.credential.clone();
                let Self {
                    store,
                    device,
                    conversations,
                    ..
                } = self;
                let tx = store.connection_mut().transaction()?;
                for welcome in &inbox.welcomes {
                    let Some(group) = hex::decode(&welcome.group).ok().as_deref().and_then(id16)
                    else {
                        continue;
                    };
                    let group = GroupId(group);
                    acks.insert(group, welcome.after_sequence);
                    if conversation_cursor(&tx, &group)?.is_some() {
                        continue;
                    }
                    let Ok(bytes) = hex::decode(&welcome.welcome) else {
                        report
                            .rejected
                            .push("a malformed invitation was ignored".to_owned());
                        continue;
                    };
                    match device.join(&bytes) {
                        Ok(conversation) if conversation.id() == group => {
                            record_joined(&tx, &conversation, welcome.after_sequence, &me.user)?;
                            conversations.insert(group, conversation);
                            report.joined += 1;
                            progressed = true;
                        }
                        Ok(_) | Err(_) => report
                            .rejected
                            .push("an invitation to a conversation could not be opened".to_owned()),
                    }
                }
                // The relay sends each group's entries in order; a relay that does not is
                // not trusted to, so the page is put in order here.
                let entries = page_in_order(&inbox);
                let mut stopped: HashSet<GroupId> = HashSet::new();
                for (group, entry) in entries {
                    if stopped.contains(&group) {
                        continue;
                    }
                    let Some(cursor) = conversation_cursor(&tx, &group)? else {
                        // Not a conversation this device knows: nothing it could read.
                        acks.insert(group, entry.sequence);
                        progressed = true;
                        continue;
                    };
                    // After a restore the relay numbers afresh: its entries are taken as they come
                    // until one applies, and repeats of what was applied are recognised by MLS.
                    let resync = in_resync(&tx, &group)?;
                    if entry.sequence <= cursor && !resync {
                        // Applied before, and its ack lost: acknowledging it again is progress.
                        acks.entry(group).or_insert(cursor);
                        progressed = true;
                        continue;
                    }
                    if entry.sequence > cursor + 1 && !resync && !give_up(&tx, &group, cursor + 1)?
                    {
                        report.rejected.push(format!(
                            "the relay left out entries {} to {} of a conversation; they are asked \
                             for again at the next sync",
                            cursor + 1,
                            entry.sequence - 1
                        ));
                        stopped.insert(group);
                        continue;
                    }
                    let applied =
                        apply_entry(&tx, device, conversations, &me, &group, entry, report)?;
                    if applied == Applied::Done && resync {
                        tx.execute(
                            "UPDATE conversation SET resync = 0 WHERE group_id = ?1",
                            params![group.as_bytes().as_slice()],
                        )?;
                    }
                    if let Applied::Refused(reason) = applied {
                        if !give_up(&tx, &group, entry.sequence)? {
                            report.rejected.push(format!(
                                "entry {} of a conversation was refused ({reason}); it is asked \
                                 for again at the next sync",
                                entry.sequence
                            ));
                            stopped.insert(group);
                            continue;
                        }
                        report.rejected.push(format!(
                            "entry {} of a conversation was refused {REFUSALS_BEFORE_SKIPPING} \
                             times ({reason}) and is skipped",
                            entry.sequence
                        ));
                    }
                    tx.execute(
                        "UPDATE conversation SET cursor = ?2 WHERE group_id = ?1",
                        params![
                            group.as_bytes().as_slice(),
                            i64::try_from(entry.sequence).unwrap_or(i64::MAX)
                        ],
                    )?;
                    acks.insert(group, entry.sequence);
                    progressed = true;
                }
                for (group, sequence) in &acks {
                    // Refusal counts behind the cursor are settled.
                    tx.execute(
                        "DELETE FROM refused_entry WHERE group_id = ?1 AND sequence <= ?2",
                        params![
                            group.as_bytes().as_slice(),
                            i64::try_from(*sequence).unwrap_or(i64::MAX)
                        ],
                    )?;
                }
                save_mls(&tx, device)?;
                tx.commit()?;
            }
            for (group, sequence) in acks {
                self.relay.ack(self.device.key(), &group, sequence)?;
            }
            if !progressed {
                // Everything left is refused for now; reading the same page again would only
                // refuse it again.
                return Ok(());
            }
        }
        Ok(())
    }

    /// Compares the relay's generation with the last one seen. A new one means the relay was
    /// restored from a backup and lost what came after it: everything sent since is queued to be
    /// sent again (the relay keeps one copy of what it still has), the conversations take the
    /// relay's new numbering, and fresh key packages replace the ones it may hand out twice.
    fn note_generation(&mut self, generation: &str, report: &mut SyncReport) -> Result<()> {
        const SETTING: &str = "relay_generation";
        if generation.is_empty() {
            return Ok(());
        }
        match self.store.setting(SETTING)? {
            Some(known) if known == generation => return Ok(()),
            None => return Ok(self.store.set_setting(SETTING, generation)?),
            Some(_) => {}
        }
        let key_packages = self.device.key_packages(KEY_PACKAGE_BATCH)?;
        {
            let tx = self.store.connection_mut().transaction()?;
            tx.execute_batch(
                "INSERT INTO outbox (group_id, is_commit, send_id, epoch, body, added, removed,
                                     welcome, intent, message_id)
                 SELECT group_id, is_commit, send_id, epoch, body, added, removed, welcome,
                        'replay', message_id
                 FROM sent_log WHERE send_id NOT IN (SELECT send_id FROM outbox) ORDER BY id;
                 DELETE FROM sent_log;
                 DELETE FROM refused_entry;
                 UPDATE conversation SET resync = 1,
                     sequence_offset = max(sequence_offset, coalesce(
                         (SELECT max(sequence) FROM message
                          WHERE message.group_id = conversation.group_id), 0));",
            )?;
            crate::store::write_setting(&tx, SETTING, generation)?;
            save_mls(&tx, &self.device)?;
            tx.commit()?;
        }
        self.relay
            .upload_key_packages(self.device.key(), &key_packages, None)?;
        report.relay_restored = true;
        report.rejected.push(
            "the relay was restored from a backup; messages it lost are being sent again"
                .to_owned(),
        );
        Ok(())
    }

    /// Opens the relay's push socket, for waiting on new messages.
    pub fn push_socket(&mut self) -> Result<crate::relay_client::PushSocket> {
        Ok(self.relay.push_socket(self.device.key())?)
    }
}

/// How long what the relay accepted is kept for sending again after a restore: the relay's
/// default retention, after which it would have deleted the entries anyway.
const SENT_LOG_SECONDS: i64 = 30 * 86_400;

/// Copies the outbox rows `filter` selects into the sent log, before they leave the outbox.
fn log_sent(tx: &Connection, filter: &str, parameters: impl rusqlite::Params) -> Result<()> {
    tx.execute(
        &format!(
            "INSERT OR IGNORE INTO sent_log (group_id, is_commit, send_id, epoch, body, added,
                                             removed, welcome, message_id, sent_at)
             SELECT group_id, is_commit, send_id, epoch, body, added, removed, welcome,
                    message_id, {}
             FROM outbox WHERE {filter} ORDER BY id",
            now()
        ),
        parameters,
    )?;
    Ok(())
}

/// Whether `group` waits for its first entry since the relay was restored.
fn in_resync(tx: &Connection, group: &GroupId) -> Result<bool> {
    Ok(tx
        .prepare_cached("SELECT resync FROM conversation WHERE group_id = ?1")?
        .query_row(params![group.as_bytes().as_slice()], |row| row.get(0))
        .optional()?
        .unwrap_or(false))
}

/// An outbox row the relay stored: its id, its message, and the sequence it was given.
type SentRow = (i64, Option<i64>, u64);

/// Blob id, file key, ciphertext SHA-256, and whether the ciphertext is in the profile folder.
type StoredAttachment = (Vec<u8>, Vec<u8>, Vec<u8>, bool, i64);

/// An attachment's row, written with the message that announces it.
struct AttachmentRow<'a> {
    blob_id: BlobId,
    file_key: &'a [u8],
    ciphertext_sha256: [u8; 32],
    size: u64,
    media_type: &'a str,
    name: &'a str,
}

impl AttachmentRow<'_> {
    fn insert(&self, tx: &Connection, message: i64, stored: bool) -> Result<()> {
        tx.execute(
            "INSERT OR IGNORE INTO attachment (message_id, blob_id, file_key, ciphertext_sha256,
                                               size, media_type, name, stored)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                message,
                self.blob_id.as_bytes().as_slice(),
                self.file_key,
                self.ciphertext_sha256.as_slice(),
                i64::try_from(self.size).unwrap_or(i64::MAX),
                self.media_type,
                self.name,
                stored
            ],
        )?;
        Ok(())
    }
}

struct OutboxRow {
    id: i64,
    group: GroupId,
    is_commit: bool,
    send_id: Vec<u8>,
    epoch: i64,
    body: Vec<u8>,
    added: Vec<u8>,
    removed: Vec<u8>,
    welcome: Option<Vec<u8>>,
    message_id: Option<i64>,
    /// Sent before, and sent again because the relay was restored from a backup.
    replay: bool,
}

fn outbox_rows(connection: &Connection) -> Result<Vec<OutboxRow>> {
    let mut statement = connection.prepare(
        "SELECT id, group_id, is_commit, send_id, epoch, body, added, removed, welcome, message_id,
                intent = 'replay'
         FROM outbox ORDER BY id",
    )?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, Vec<u8>>(1)?,
            OutboxRow {
                id: row.get(0)?,
                group: GroupId([0; 16]),
                is_commit: row.get(2)?,
                send_id: row.get(3)?,
                epoch: row.get(4)?,
                body: row.get(5)?,
                added: row.get(6)?,
                removed: row.get(7)?,
                welcome: row.get(8)?,
                message_id: row.get(9)?,
                replay: row.get(10)?,
            },
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (_, group, mut outbox) = row?;
        if let Some(group) = id16(&group) {
            outbox.group = GroupId(group);
            out.push(outbox);
        }
    }
    Ok(out)
}

/// Puts a commit in the outbox, with the routing facts the relay needs.
/// What a queued commit was for, so it can be made again when it loses the race for an epoch
/// after the process that made it has exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intent {
    Add,
    Remove,
    Update,
}

impl Intent {
    fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Remove => "remove",
            Self::Update => "update",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "add" => Some(Self::Add),
            "remove" => Some(Self::Remove),
            "update" => Some(Self::Update),
            _ => None,
        }
    }
}

fn queue_commit(
    tx: &Connection,
    commit: &WireMessage,
    removed: &[DeviceId],
    intent: Intent,
) -> Result<()> {
    let WireMessage::Commit {
        group,
        epoch,
        message,
        welcome,
    } = commit
    else {
        return Err(ClientError::Conversation(ConversationError::Malformed));
    };
    let added = welcome
        .as_ref()
        .map(|bundle| device_list(&bundle.recipients))
        .unwrap_or_default();
    tx.execute(
        "INSERT INTO outbox (group_id, is_commit, send_id, epoch, body, added, removed, welcome,
                             intent)
         VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            group.as_bytes().as_slice(),
            random::<16>()?.as_slice(),
            i64::try_from(*epoch).unwrap_or(i64::MAX),
            message,
            added,
            device_list(removed),
            welcome.as_ref().map(|bundle| bundle.welcome.clone()),
            intent.as_str()
        ],
    )?;
    Ok(())
}

fn conversation_cursor(tx: &Connection, group: &GroupId) -> Result<Option<u64>> {
    Ok(tx
        .query_row(
            "SELECT cursor FROM conversation WHERE group_id = ?1",
            params![group.as_bytes().as_slice()],
            |row| row.get::<_, i64>(0),
        )
        .optional()?
        .map(|cursor| u64::try_from(cursor).unwrap_or(0)))
}

fn record_joined(
    tx: &Transaction<'_>,
    conversation: &Conversation,
    after_sequence: u64,
    me: &UserId,
) -> Result<()> {
    let data = conversation.group_data()?;
    let group = conversation.id();
    let members = conversation.members()?;
    let direct = data.name.is_empty();
    tx.execute(
        "INSERT INTO conversation (group_id, name, patient_tag, direct, active, cursor,
                                   last_activity)
         VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6)",
        params![
            group.as_bytes().as_slice(),
            data.name,
            data.patient_tag,
            direct,
            i64::try_from(after_sequence).unwrap_or(i64::MAX),
            now()
        ],
    )?;
    for member in members
        .iter()
        .map(|member| member.user)
        .chain(std::iter::once(*me))
    {
        tx.execute(
            "INSERT OR IGNORE INTO conversation_member (group_id, user_id) VALUES (?1, ?2)",
            params![group.as_bytes().as_slice(), member.as_bytes().as_slice()],
        )?;
    }
    Ok(())
}

fn record_members(tx: &Connection, conversation: &Conversation) -> Result<()> {
    let group = conversation.id();
    let data = conversation.group_data()?;
    tx.execute(
        "UPDATE conversation SET name = ?2, patient_tag = ?3, active = ?4 WHERE group_id = ?1",
        params![
            group.as_bytes().as_slice(),
            data.name,
            data.patient_tag,
            conversation.is_active()
        ],
    )?;
    if conversation.is_active() {
        tx.execute(
            "DELETE FROM conversation_member WHERE group_id = ?1",
            params![group.as_bytes().as_slice()],
        )?;
        for member in conversation.members()? {
            tx.execute(
                "INSERT OR IGNORE INTO conversation_member (group_id, user_id) VALUES (?1, ?2)",
                params![
                    group.as_bytes().as_slice(),
                    member.user.as_bytes().as_slice()
                ],
            )?;
        }
    }
    Ok(())
}

/// Applies one log entry of a known conversation.
fn apply_entry(
    tx: &Transaction<'_>,
    device: &Device,
    conversations: &mut HashMap<GroupId, Conversation>,
    me: &DeviceCredential,
    group: &GroupId,
    entry: &InboxEntry,
    report: &mut SyncReport,
) -> Result<Applied> {
    let Some(conversation) = cached(conversations, device, group)? else {
        return Ok(Applied::Done);
    };
    let resync = in_resync(tx, group)?;
    if resync && entry.commit && entry.epoch < conversation.epoch() {
        // A commit this device applied before the relay was restored.
        return Ok(Applied::Repeat);
    }
    let Some(wire) = entry_message(group, entry) else {
        return Ok(Applied::Refused("malformed".to_owned()));
    };
    let from_me =
        hex::decode(&entry.sender).ok().as_deref() == Some(me.device.as_bytes().as_slice());
    if from_me {
        // This device's own entries: a commit it may not have heard was accepted, or a message
        // it already shows.
        if entry.commit && conversation.has_pending_change() && entry.epoch == conversation.epoch()
        {
            conversation.commit_accepted(device)?;
            let pending = "group_id = ?1 AND is_commit = 1 AND intent != 'replay'";
            log_sent(tx, pending, params![group.as_bytes().as_slice()])?;
            tx.execute(
                &format!("DELETE FROM outbox WHERE {pending}"),
                params![group.as_bytes().as_slice()],
            )?;
            record_members(tx, conversation)?;
        }
        // Its own entries say nothing about whether the relay's repeats are over.
        return Ok(if resync {
            Applied::Repeat
        } else {
            Applied::Done
        });
    }
    if entry.commit && conversation.has_pending_change() {
        // Another member's commit won the epoch this device's change was built on.
        let previous: Option<(Vec<u8>, Vec<u8>, String)> = tx
            .query_row(
                "SELECT added, removed, intent FROM outbox
                 WHERE group_id = ?1 AND is_commit = 1 AND intent != 'replay'
                 ORDER BY id LIMIT 1",
                params![group.as_bytes().as_slice()],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        tx.execute(
            "DELETE FROM outbox WHERE group_id = ?1 AND is_commit = 1 AND intent != 'replay'",
            params![group.as_bytes().as_slice()],
        )?;
        let (received, retry) = match conversation.epoch_moved(device, std::slice::from_ref(&wire))
        {
            Ok(outcome) => outcome,
            Err(error) => return Ok(Applied::Refused(error.to_string())),
        };
        report.received += received.len();
        let (added, removed, intent) = previous.unwrap_or_default();
        let devices = |bytes: &[u8]| -> Vec<DeviceId> {
            bytes
                .chunks_exact(16)
                .filter_map(|chunk| id16(chunk).map(DeviceId))
                .collect()
        };
        let removed = devices(&removed);
        let intent = Intent::parse(&intent);
        match (retry, intent) {
            (Some(retry), Some(intent)) => queue_commit(tx, &retry, &removed, intent)?,
            // The process that made the change has exited, so the core no longer knows it:
            // it is made again from what the outbox recorded.
            (None, Some(Intent::Update)) if conversation.is_active() => {
                let retry = conversation.self_update(device)?;
                queue_commit(tx, &retry, &[], Intent::Update)?;
            }
            (None, Some(Intent::Remove)) if conversation.is_active() => {
                let members: HashSet<DeviceId> = conversation
                    .members()?
                    .into_iter()
                    .map(|member| member.device)
                    .collect();
                let still: Vec<DeviceId> = removed
                    .into_iter()
                    .filter(|device| members.contains(device))
                    .collect();
                if !still.is_empty() {
                    let retry = conversation.remove_devices(device, &still)?;
                    queue_commit(tx, &retry, &still, Intent::Remove)?;
                }
            }
            (None, Some(Intent::Add)) if conversation.is_active() => {
                // New key packages are needed, which takes the relay: after this page.
                report.redo_adds.push((*group, devices(&added)));
            }
            _ => {}
        }
        record_members(tx, conversation)?;
        return Ok(Applied::Done);
    }
    match conversation.receive(device, &wire) {
        Ok(Received::Message { sender, content }) => {
            store_content(tx, group, &sender, entry.sequence, content, me)?;
            report.received += 1;
            report.unknown_sender |= !tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM contact WHERE user_id = ?1)")?
                .query_row(params![sender.user.as_bytes().as_slice()], |row| {
                    row.get::<_, bool>(0)
                })?;
        }
        Ok(Received::Duplicate { .. }) => {}
        Ok(Received::Changed(_)) => {
            record_members(tx, conversation)?;
            report.received += 1;
        }
        Err(ConversationError::Replayed | ConversationError::WrongEpoch) if resync => {
            return Ok(Applied::Repeat)
        }
        Err(error) => return Ok(Applied::Refused(error.to_string())),
    }
    Ok(Applied::Done)
}

/// An inbox page's entries with their decoded groups, in (group, sequence) order: a relay that
/// sends them in another order is not trusted to have meant it. Entries naming no valid group
/// are left out.
pub(crate) fn page_in_order(inbox: &Inbox) -> Vec<(GroupId, &InboxEntry)> {
    let mut entries: Vec<(GroupId, &InboxEntry)> = inbox
        .entries
        .iter()
        .filter_map(|entry| {
            let group = hex::decode(&entry.group).ok()?;
            Some((GroupId(id16(&group)?), entry))
        })
        .collect();
    entries.sort_by_key(|(group, entry)| (*group, entry.sequence));
    entries
}

/// The MLS message a log entry carries, as the core takes it; `None` when it is not hex.
pub(crate) fn entry_message(group: &GroupId, entry: &InboxEntry) -> Option<WireMessage> {
    let message = hex::decode(&entry.message).ok()?;
    Some(if entry.commit {
        WireMessage::Commit {
            group: *group,
            epoch: entry.epoch,
            message,
            welcome: None,
        }
    } else {
        WireMessage::Application {
            group: *group,
            epoch: entry.epoch,
            message,
        }
    })
}

/// What became of one log entry.
#[derive(Debug, PartialEq, Eq)]
enum Applied {
    /// It was applied, or it was this device's own and needed nothing.
    Done,
    /// After a restore of the relay: this device applied it before.
    Repeat,
    /// It was refused: tampered, replayed, or not decryptable.
    Refused(String),
}

/// Counts one more refusal of `group`'s entry `sequence`; true once it has been refused
/// [`REFUSALS_BEFORE_SKIPPING`] times and the device should move past it. A relay that damaged an
/// entry in passing gets to deliver it again; one that keeps damaging it cannot stall the
/// conversation.
fn give_up(tx: &Connection, group: &GroupId, sequence: u64) -> Result<bool> {
    let attempts: i64 = tx.query_row(
        "INSERT INTO refused_entry (group_id, sequence, attempts) VALUES (?1, ?2, 1)
         ON CONFLICT (group_id, sequence) DO UPDATE SET attempts = attempts + 1
         RETURNING attempts",
        params![
            group.as_bytes().as_slice(),
            i64::try_from(sequence).unwrap_or(i64::MAX)
        ],
        |row| row.get(0),
    )?;
    Ok(attempts >= REFUSALS_BEFORE_SKIPPING)
}

fn store_content(
    tx: &Transaction<'_>,
    group: &GroupId,
    sender: &DeviceCredential,
    sequence: u64,
    content: AppContent,
    me: &DeviceCredential,
) -> Result<()> {
    let group_bytes = group.as_bytes().as_slice();
    let sender_user = sender.user.as_bytes().as_slice();
    let sequence = i64::try_from(sequence).unwrap_or(i64::MAX);
    let insert = |id: &ClientMessageId, kind: &str, body: &str| -> Result<Option<i64>> {
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO message (group_id, sender_user, sender_device, client_id,
                                            sequence, kind, body, status, at, unread)
             VALUES (?1, ?2, ?3, ?4,
                     ?5 + (SELECT sequence_offset FROM conversation WHERE group_id = ?1),
                     ?6, ?7, 'received', ?8, ?9)",
            params![
                group_bytes,
                sender_user,
                sender.device.as_bytes().as_slice(),
                id.as_bytes().as_slice(),
                sequence,
                kind,
                body,
                now(),
                // What this clinician sent from another device is not news to them.
                sender.user != me.user
            ],
        )?;
        Ok((inserted > 0).then(|| tx.last_insert_rowid()))
    };
    match content {
        AppContent::Text { id, body } => {
            insert(&id, "text", &body)?;
        }
        AppContent::Attachment { id, attachment } => {
            if let Some(row) = insert(&id, "attachment", &attachment.name)? {
                AttachmentRow {
                    blob_id: attachment.blob_id,
                    file_key: attachment.file_key.as_bytes(),
                    ciphertext_sha256: attachment.ciphertext_sha256,
                    size: attachment.size,
                    media_type: &attachment.media_type,
                    name: &attachment.name,
                }
                .insert(tx, row, false)?;
            }
        }
        AppContent::Edit { target, body, .. } => {
            tx.execute(
                "UPDATE message SET body = ?4, edited = 1
                 WHERE group_id = ?1 AND sender_user = ?2 AND client_id = ?3 AND deleted = 0",
                params![group_bytes, sender_user, target.as_bytes().as_slice(), body],
            )?;
        }
        AppContent::Delete { target, .. } => {
            forget_message(tx, group, &sender.user, &target)?;
        }
        AppContent::Receipt { kind, ids } => {
            let status = match kind {
                ReceiptKind::Delivered => "delivered",
                ReceiptKind::Read => "read",
            };
            for id in ids {
                tx.execute(
                    "UPDATE message SET status = ?4
                     WHERE group_id = ?1 AND sender_user = ?2 AND client_id = ?3
                       AND (status IN ('sent', 'delivered') AND ?4 != status)",
                    params![
                        group_bytes,
                        me.user.as_bytes().as_slice(),
                        id.as_bytes().as_slice(),
                        status
                    ],
                )?;
            }
            // A receipt is not activity: it must not move the conversation up the list.
            return Ok(());
        }
    }
    tx.execute(
        "UPDATE conversation SET last_activity = ?2 WHERE group_id = ?1",
        params![group_bytes, now()],
    )?;
    Ok(())
}

/// Applies a deletion by `sender` of their message `target`: the text is wiped and an
/// attachment's key is overwritten, so what stays on disk is ciphertext no one can open.
fn forget_message(
    tx: &Transaction<'_>,
    group: &GroupId,
    sender: &UserId,
    target: &ClientMessageId,
) -> Result<()> {
    let group = group.as_bytes().as_slice();
    let sender = sender.as_bytes().as_slice();
    let target = target.as_bytes().as_slice();
    tx.execute(
        "UPDATE message SET body = '', deleted = 1, unread = 0
         WHERE group_id = ?1 AND sender_user = ?2 AND client_id = ?3",
        params![group, sender, target],
    )?;
    tx.execute(
        "UPDATE attachment SET file_key = zeroblob(32)
         WHERE message_id IN (SELECT id FROM message WHERE group_id = ?1
                              AND sender_user = ?2 AND client_id = ?3)",
        params![group, sender, target],
    )?;
    Ok(())
}

fn read_account(connection: &Connection) -> Result<Option<Account>> {
    let row: Option<(String, String, String, Vec<u8>)> = connection
        .query_row(
            "SELECT relay_url, name, role, credential FROM account WHERE singleton = 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()?;
    let Some((relay_url, name, role, credential)) = row else {
        return Ok(None);
    };
    Ok(Some(Account {
        relay_url,
        name,
        role,
        credential: DeviceCredential::decode_verified(&credential)?,
    }))
}

fn sha256_of_file(path: &Path) -> Result<[u8; 32]> {
    use std::io::Read;
    let mut file = fs::File::open(path)?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        context.update(&buffer[..read]);
    }
    let mut digest = [0u8; 32];
    digest.copy_from_slice(context.finish().as_ref());
    Ok(digest)
}

/// The name an attachment is sent under: what the clinician's file was called, without any
/// folder, control characters or runaway length, since every recipient sees it and "Save as…"
/// offers it.
fn attachment_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|character| !character.is_control())
        .take(MAX_ATTACHMENT_NAME_CHARS)
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        "attachment".to_owned()
    } else {
        cleaned.to_owned()
    }
}

/// Ids per receipt message: a screenful of messages read at once fits in one.
const RECEIPT_IDS_PER_MESSAGE: usize = 500;

/// Long enough for any real file name; short enough to show in one line.
const MAX_ATTACHMENT_NAME_CHARS: usize = 120;

/// A writer that reports how far it has got, for the app's download progress bar.
struct CountingWriter<'a, W> {
    inner: W,
    done: u64,
    total: u64,
    progress: &'a mut dyn FnMut(u64, u64),
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(data)?;
        self.done += written as u64;
        (self.progress)(self.done.min(self.total), self.total);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The media type the viewers choose by; anything unknown is opaque bytes.
fn media_type_of(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "dcm" => "application/dicom",
        "xml" => "application/xml",
        "txt" => "text/plain",
        _ => "application/octet-stream",
    }
}
