//! The typed boundary between the UI and Rust: every command, event and shape the UI sees, exported
//! to `ui/src/bindings.ts` by tauri-specta. Shapes here are built from ward-client's types at the
//! boundary, so the library's types never leak into the UI's contract.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use specta::Type;
use tauri::{AppHandle, State};
use tauri_specta::{collect_commands, collect_events, Event};
use ward_client::client::{ChatSummary, Contact, ShownMessage, Verification};
use ward_client::history::SearchHit;
use ward_client::live_sync::{LiveSync, SharedClient};
use ward_client::policy::{EffectiveSettings, NotificationLevel, PolicyError, SettingSource};
use ward_client::relay_client::RelayError;
use ward_client::{
    Client, ClientError, KeychainError, OpenError, OpenedProfile, ProfileDir, StoreError,
};

/// What the first screen shows: which Ward this is, and the state of the keychain and the store.
#[derive(Debug, Clone, Serialize, Type, Event)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    /// The product name.
    pub app_name: String,
    /// The version of this build.
    pub version: String,
    /// The keychain this platform uses, in words.
    pub keychain_backend: String,
    /// The profile folder, so IT can tell two profiles apart.
    pub data_dir: String,
    /// How far opening the profile has come.
    pub profile: ProfileStatus,
    /// The settings in force and who set each; the UI marks the organization's as managed.
    pub settings: Vec<SettingView>,
    /// Minutes without input before the window hides its content; 0 never.
    pub idle_lock_minutes: u32,
    /// What the enrollment screen starts with.
    pub enrollment: EnrollmentDefaults,
}

/// What the enrollment screen starts with.
#[derive(Debug, Clone, Serialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentDefaults {
    /// The relay address to show.
    pub relay_url: Option<String>,
    /// Whether the organization set the relay, so it cannot be changed.
    pub relay_locked: bool,
    /// An invite code handed to this run (`scripts/run` does).
    pub invite: Option<String>,
}

/// The signed-in clinician.
#[derive(Debug, Clone, Serialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    /// Their name, as IT set it on the invite.
    pub name: String,
    /// Their role.
    pub role: String,
    /// The relay this device talks to.
    pub relay_url: String,
    /// Said once after enrollment when the name typed differs from the invite's.
    pub name_note: Option<String>,
}

impl AccountView {
    /// The clinician `client` is signed in as.
    pub fn of(client: &Client) -> Self {
        let account = client.account();
        AccountView {
            name: account.name.clone(),
            role: account.role.clone(),
            relay_url: account.relay_url.clone(),
            name_note: None,
        }
    }
}

/// One setting in force, as the settings screen shows it.
#[derive(Debug, Clone, Serialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct SettingView {
    /// The policy key, which the UI turns into a label.
    pub key: String,
    /// The value, in words.
    pub value: String,
    /// Whether the organization's policy set it: the clinician cannot change it.
    pub managed: bool,
}

impl SettingView {
    /// The effective settings, in the policy's key order.
    pub fn list(settings: &EffectiveSettings) -> Vec<SettingView> {
        let on_off = |on: bool| if on { "On" } else { "Off" }.to_owned();
        let or = |value: u32, zero: &str, unit: &str| {
            if value == 0 {
                zero.to_owned()
            } else {
                format!("{value} {unit}")
            }
        };
        let row = |key: &str, value: String, source: &SettingSource| SettingView {
            key: key.to_owned(),
            value,
            managed: *source == SettingSource::Policy,
        };
        let level = match settings.notification_level.value {
            NotificationLevel::None => "No notifications",
            NotificationLevel::Generic => "\"New secure message\" only",
            NotificationLevel::Sender => "Sender's name",
            NotificationLevel::Content => "Sender and message",
        };
        vec![
            row(
                "relay_url",
                settings
                    .relay_url
                    .value
                    .clone()
                    .unwrap_or_else(|| "Chosen at enrollment".to_owned()),
                &settings.relay_url.source,
            ),
            row(
                "relay_spki_sha256",
                match settings.relay_spki_sha256.value.len() {
                    0 => "Not pinned".to_owned(),
                    count => format!("{count} pinned key(s)"),
                },
                &settings.relay_spki_sha256.source,
            ),
            row(
                "notification_level",
                level.to_owned(),
                &settings.notification_level.source,
            ),
            row(
                "screen_capture_protection",
                on_off(settings.screen_capture_protection.value),
                &settings.screen_capture_protection.source,
            ),
            row(
                "idle_lock_minutes",
                or(settings.idle_lock_minutes.value, "Never", "minutes"),
                &settings.idle_lock_minutes.source,
            ),
            row(
                "attachment_max_mb",
                format!("{} MB", settings.attachment_max_mb.value),
                &settings.attachment_max_mb.source,
            ),
            row(
                "attachment_allowed_types",
                if settings.attachment_allowed_types.value.is_empty() {
                    "All".to_owned()
                } else {
                    settings.attachment_allowed_types.value.join(", ")
                },
                &settings.attachment_allowed_types.source,
            ),
            row(
                "retention_days",
                or(settings.retention_days.value, "Kept", "days"),
                &settings.retention_days.source,
            ),
            row(
                "block_changed_unverified_keys",
                on_off(settings.block_changed_unverified_keys.value),
                &settings.block_changed_unverified_keys.source,
            ),
        ]
    }
}

/// How far opening the profile has come.
#[derive(Debug, Clone, Serialize, Type)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum ProfileStatus {
    /// The keychain and store are still being opened.
    Opening,
    /// The keychain answered and the encrypted store is open.
    #[serde(rename_all = "camelCase")]
    Ready {
        /// The open store.
        store: StoreStatus,
        /// The clinician, once this profile has enrolled.
        account: Option<AccountView>,
    },
    /// The profile could not be opened; nothing was changed on disk.
    #[serde(rename_all = "camelCase")]
    Failed {
        /// What went wrong.
        error: IpcError,
        /// Whether the keychain itself could be reached; `None` when Ward stopped before asking.
        keychain_available: Option<bool>,
    },
}

/// The open encrypted store.
#[derive(Debug, Clone, Serialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct StoreStatus {
    /// The SQLCipher build that encrypts it, such as "4.6.1 community".
    pub cipher_version: String,
    /// The schema version the store is at.
    pub schema_version: u32,
    /// Whether this start created it.
    pub created: bool,
}

/// An error as the UI sees it: a stable code to branch on and a message for the clinician.
#[derive(Debug, Clone, Serialize, Type)]
pub struct IpcError {
    /// What kind of failure this is; the UI branches on it.
    pub code: ErrorCode,
    /// What went wrong and what to do, in words for a clinician.
    pub message: String,
}

/// Every failure the UI can tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No keychain service is running.
    KeychainUnavailable,
    /// The keychain is locked.
    KeychainLocked,
    /// Access to the keychain was refused.
    KeychainAccessRefused,
    /// The keychain failed in another way.
    KeychainFailed,
    /// The store exists but its key is not in the keychain.
    HistoryKeyMissing,
    /// The keychain's key does not open the store.
    HistoryKeyRejected,
    /// The store or its keychain entry is damaged.
    HistoryDamaged,
    /// The store was written by a newer Ward.
    HistoryTooNew,
    /// The profile folder could not be read or written.
    DiskFailed,
    /// The profile is still opening; try again when the status event arrives.
    NotReady,
    /// The organization's managed policy has a value Ward cannot use; only IT can fix it.
    PolicyInvalid,
    /// The profile has not enrolled yet.
    NotEnrolled,
    /// The relay could not be reached; what was sent waits in the outbox.
    RelayUnreachable,
    /// The relay refused: a used or expired invite, a revoked device.
    RelayRefused,
    /// The relay's certificate is untrusted or does not match the organization's pin.
    RelayUntrusted,
    /// The organization's policy fixes the relay address.
    ManagedRelay,
    /// A member's key changed and policy blocks sending until it is verified.
    KeyChangedUnverified,
    /// A file is too large or of a kind the organization does not allow.
    AttachmentRefused,
    /// The contact or conversation does not exist.
    NotFound,
    /// What was asked cannot be done now; the message says why.
    ActionFailed,
}

impl From<ClientError> for IpcError {
    fn from(error: ClientError) -> Self {
        if let ClientError::Open(open) = &error {
            return IpcError::from(open);
        }
        let code = match &error {
            ClientError::NotEnrolled => ErrorCode::NotEnrolled,
            ClientError::Keychain(_) | ClientError::DeviceKeyMissing => ErrorCode::KeychainFailed,
            ClientError::Relay(RelayError::Unreachable | RelayError::Busy) => {
                ErrorCode::RelayUnreachable
            }
            ClientError::Relay(RelayError::Untrusted | RelayError::PinMismatch) => {
                ErrorCode::RelayUntrusted
            }
            ClientError::Relay(RelayError::Refused { .. }) => ErrorCode::RelayRefused,
            ClientError::ManagedRelay(_) => ErrorCode::ManagedRelay,
            ClientError::ChangedKeyUnverified(_) => ErrorCode::KeyChangedUnverified,
            ClientError::AttachmentTooLarge { .. } | ClientError::AttachmentTypeNotAllowed(_) => {
                ErrorCode::AttachmentRefused
            }
            ClientError::UnknownName(_) | ClientError::UnknownMessage => ErrorCode::NotFound,
            ClientError::Policy(_) => ErrorCode::PolicyInvalid,
            ClientError::Store(_) | ClientError::Io(_) => ErrorCode::DiskFailed,
            _ => ErrorCode::ActionFailed,
        };
        // ClientError's sentences are written for clinicians and never carry message content.
        IpcError {
            code,
            message: sentence(&error.to_string()),
        }
    }
}

/// "the relay could not be reached" → "The relay could not be reached."
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

impl From<&OpenError> for IpcError {
    fn from(error: &OpenError) -> Self {
        let code = match error {
            OpenError::Keychain(KeychainError::Unavailable { .. }) => {
                ErrorCode::KeychainUnavailable
            }
            OpenError::Keychain(KeychainError::Locked) => ErrorCode::KeychainLocked,
            OpenError::Keychain(KeychainError::AccessRefused) => ErrorCode::KeychainAccessRefused,
            OpenError::Keychain(KeychainError::Failed { .. }) => ErrorCode::KeychainFailed,
            OpenError::KeyMissing => ErrorCode::HistoryKeyMissing,
            OpenError::Store(StoreError::KeyRejected) => ErrorCode::HistoryKeyRejected,
            OpenError::KeyMalformed
            | OpenError::ProfileDamaged
            | OpenError::Store(StoreError::Damaged { .. }) => ErrorCode::HistoryDamaged,
            OpenError::Store(StoreError::TooNew { .. }) => ErrorCode::HistoryTooNew,
            OpenError::Store(_) | OpenError::Io(_) => ErrorCode::DiskFailed,
        };
        IpcError {
            code,
            message: error.advice().to_owned(),
        }
    }
}

impl ProfileStatus {
    /// Ward stopped before opening anything, because the managed policy cannot be used. The
    /// message names the key and the file, which is what IT needs and holds nothing personal.
    pub fn policy_invalid(error: &PolicyError) -> Self {
        ProfileStatus::Failed {
            error: IpcError {
                code: ErrorCode::PolicyInvalid,
                message: format!(
                    "Your organization's settings for Ward have a mistake, so Ward did not start. \
                     Please tell IT what it says here: {error}."
                ),
            },
            keychain_available: None,
        }
    }

    /// The status after an attempt to open the profile.
    pub fn from_outcome(outcome: &Result<OpenedProfile, OpenError>) -> Self {
        match outcome {
            Ok(profile) => ProfileStatus::Ready {
                store: StoreStatus {
                    cipher_version: profile.store.cipher_version().to_owned(),
                    schema_version: profile.store.schema_version().unwrap_or_default(),
                    created: profile.created,
                },
                account: None,
            },
            Err(error) => ProfileStatus::Failed {
                keychain_available: Some(!matches!(
                    error,
                    OpenError::Keychain(KeychainError::Unavailable { .. })
                )),
                error: IpcError::from(error),
            },
        }
    }
}

/// What the shell keeps between commands.
pub struct ShellState {
    /// The status the UI was last told.
    pub status: Mutex<AppStatus>,
    /// The profile folder.
    pub profile_dir: Option<ProfileDir>,
    /// The opened profile while it waits for enrollment.
    pub profile: Mutex<Option<OpenedProfile>>,
    /// The signed-in client, shared with the sync loop.
    pub client: SharedClient,
    /// The sync loop, once the client is open.
    pub live: Mutex<Option<LiveSync>>,
    /// The conversation on screen, so its messages raise no notification while the window has
    /// focus.
    pub viewing: Mutex<Option<String>>,
    /// Whether the window has the keyboard focus.
    pub focused: AtomicBool,
}

impl ShellState {
    /// The conversation the clinician is looking at right now, if the window has focus.
    pub fn in_view(&self) -> Option<String> {
        if !self.focused.load(Ordering::Relaxed) {
            return None;
        }
        self.viewing.lock().ok().and_then(|viewing| viewing.clone())
    }

    /// Runs `action` on the signed-in client.
    fn with_client<T>(
        &self,
        action: impl FnOnce(&mut Client) -> Result<T, ClientError>,
    ) -> Result<T, IpcError> {
        let mut slot = self.client.lock().map_err(|_| not_ready())?;
        let client = slot.as_mut().ok_or(IpcError {
            code: ErrorCode::NotEnrolled,
            message: "Ward is not set up on this computer yet.".to_owned(),
        })?;
        action(client).map_err(IpcError::from)
    }

    /// Asks the sync loop to go round now.
    fn wake_sync(&self) {
        if let Ok(live) = self.live.lock() {
            if let Some(live) = live.as_ref() {
                live.wake();
            }
        }
    }
}

fn not_ready() -> IpcError {
    IpcError {
        code: ErrorCode::NotReady,
        message: "Ward is still starting. Wait a moment.".to_owned(),
    }
}

/// The current status of Ward: the first screen calls this, then follows `AppStatus` events.
#[tauri::command]
#[specta::specta]
pub fn app_status(state: State<'_, ShellState>) -> Result<AppStatus, IpcError> {
    crate::report_first_render();
    state
        .status
        .lock()
        .map(|status| status.clone())
        .map_err(|_| IpcError {
            code: ErrorCode::NotReady,
            message: "Ward is still starting. Wait a moment.".to_owned(),
        })
}

/// A conversation in the list.
#[derive(Debug, Clone, Serialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ChatView {
    /// Id, hex.
    pub id: String,
    /// Name; a 1:1 chat is named after the other clinician.
    pub name: String,
    /// A care team's patient tag.
    pub patient_tag: Option<String>,
    /// Whether it is a 1:1 chat.
    pub direct: bool,
    /// Whether this device is still a member.
    pub active: bool,
    /// The members' names.
    pub members: Vec<String>,
    /// The members' user ids, in the order of `members`.
    pub member_ids: Vec<String>,
    /// Messages not read yet.
    pub unread: u32,
    /// When something last happened, seconds since the epoch.
    pub last_activity: u32,
}

impl From<ChatSummary> for ChatView {
    fn from(chat: ChatSummary) -> Self {
        ChatView {
            id: chat.id,
            name: chat.name,
            patient_tag: chat.patient_tag,
            direct: chat.direct,
            active: chat.active,
            members: chat.members,
            member_ids: chat.member_ids,
            unread: chat.unread,
            last_activity: seconds(chat.last_activity),
        }
    }
}

/// A message in the chat view.
#[derive(Debug, Clone, Serialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    /// The sender's id for it, hex; unique within the conversation and sender.
    pub client_id: String,
    /// The sender's name.
    pub sender: String,
    /// The sender's user id, hex.
    pub sender_id: String,
    /// Whether this clinician sent it.
    pub mine: bool,
    /// `text` or `attachment`.
    pub kind: String,
    /// The text, or the attachment's file name.
    pub text: String,
    /// The attachment's size in bytes (the policy caps attachments far below 4 GB).
    pub size: Option<u32>,
    /// The attachment's media type.
    pub media_type: Option<String>,
    /// `sending`, `sent`, `delivered`, `read` or `received`.
    pub status: String,
    /// Whether the sender edited it.
    pub edited: bool,
    /// Whether the sender deleted it.
    pub deleted: bool,
    /// When this device stored it, seconds since the epoch.
    pub at: u32,
}

impl From<ShownMessage> for MessageView {
    fn from(message: ShownMessage) -> Self {
        MessageView {
            client_id: message.client_id,
            sender: message.sender,
            sender_id: message.sender_id,
            mine: message.mine,
            kind: message.kind,
            text: message.text,
            size: message
                .size
                .map(|size| u32::try_from(size).unwrap_or(u32::MAX)),
            media_type: message.media_type,
            status: message.status,
            edited: message.edited,
            deleted: message.deleted,
            at: seconds(message.at),
        }
    }
}

/// A clinician in the directory.
#[derive(Debug, Clone, Serialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ContactView {
    /// User id, hex.
    pub user: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Whether this is the signed-in clinician.
    pub me: bool,
    /// Whether their current key was verified.
    pub verified: bool,
    /// Whether their key changed and the new one is not verified.
    pub key_changed: bool,
}

impl From<Contact> for ContactView {
    fn from(contact: Contact) -> Self {
        ContactView {
            user: contact.user,
            name: contact.name,
            role: contact.role,
            me: contact.me,
            verified: contact.verified,
            key_changed: contact.key_changed,
        }
    }
}

/// A contact's safety number and its QR code.
#[derive(Debug, Clone, Serialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct VerificationView {
    /// User id, hex.
    pub user: String,
    /// Name.
    pub name: String,
    /// 12 groups of 5 digits.
    pub groups: Vec<String>,
    /// The QR code's side, in modules.
    pub qr_width: u32,
    /// The QR code's modules row by row; true is dark.
    pub qr_dark: Vec<bool>,
    /// Whether the current key was verified.
    pub verified: bool,
    /// Whether the key changed and the new one is not verified.
    pub key_changed: bool,
}

impl From<Verification> for VerificationView {
    fn from(verification: Verification) -> Self {
        VerificationView {
            user: verification.user,
            name: verification.name,
            groups: verification.groups,
            qr_width: u32::try_from(verification.qr_width).unwrap_or(0),
            qr_dark: verification.qr_dark,
            verified: verification.verified,
            key_changed: verification.key_changed,
        }
    }
}

/// A search result.
#[derive(Debug, Clone, Serialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct SearchHitView {
    /// The conversation's id.
    pub chat_id: String,
    /// The conversation's name.
    pub chat: String,
    /// The care team's patient tag.
    pub patient_tag: Option<String>,
    /// The message's client id.
    pub client_id: String,
    /// The sender's name.
    pub sender: String,
    /// When, seconds since the epoch.
    pub at: u32,
    /// The text around the match; matched words sit between U+0001 and U+0002.
    pub snippet: String,
}

impl From<SearchHit> for SearchHitView {
    fn from(hit: SearchHit) -> Self {
        SearchHitView {
            chat_id: hit.chat_id,
            chat: hit.chat,
            patient_tag: hit.patient_tag,
            client_id: hit.client_id,
            sender: hit.sender,
            at: seconds(hit.at),
            snippet: hit.snippet,
        }
    }
}

/// Seconds since 1970 fit a u32 until 2106; TypeScript gets a plain number, not a BigInt.
fn seconds(at: i64) -> u32 {
    u32::try_from(at.max(0)).unwrap_or(u32::MAX)
}

/// The relay connection, as the banner and the outbox count show it.
#[derive(Debug, Clone, Serialize, Deserialize, Type, Event)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStatus {
    /// Whether the relay answered the last attempt.
    pub online: bool,
    /// Messages waiting to be sent.
    pub queued: u32,
    /// A problem retrying will not fix, in words for the clinician.
    pub problem: Option<String>,
}

/// Something in the history changed: the UI reads its lists again.
#[derive(Debug, Clone, Serialize, Deserialize, Type, Event)]
#[serde(rename_all = "camelCase")]
pub struct HistoryChanged {
    /// How many new messages arrived.
    pub arrived: u32,
}

/// The clinician clicked a notification: show this conversation.
#[derive(Debug, Clone, Serialize, Deserialize, Type, Event)]
#[serde(rename_all = "camelCase")]
pub struct OpenChatRequested {
    /// The conversation's id.
    pub chat_id: String,
}

/// Enrolls this profile with the relay: keys are made here and kept in the keychain.
#[tauri::command(async)]
#[specta::specta]
pub fn enroll(
    app: AppHandle,
    state: State<'_, ShellState>,
    relay_url: String,
    invite: String,
    display_name: String,
) -> Result<AccountView, IpcError> {
    let dir = state.profile_dir.clone().ok_or_else(not_ready)?;
    let opened = state.profile.lock().map_err(|_| not_ready())?.take();
    let client = Client::enroll_opened(&dir, opened, relay_url.trim(), invite.trim(), None)?;
    let mut account = AccountView::of(&client);
    // The directory shows the name IT put on the invite, which they checked against the
    // clinician's badge; a name typed here cannot change it, as with the CLI's --name.
    let typed = display_name.trim();
    if !typed.is_empty() && !typed.eq_ignore_ascii_case(account.name.trim()) {
        account.name_note = Some(format!(
            "IT enrolled you as \u{201c}{}\u{201d}; that is the name colleagues see. Ask IT if it should change.",
            account.name
        ));
    }
    crate::signed_in(&app, client, account.clone());
    Ok(account)
}

/// The conversations, most recent first.
#[tauri::command(async)]
#[specta::specta]
pub fn list_chats(state: State<'_, ShellState>) -> Result<Vec<ChatView>, IpcError> {
    state.with_client(|client| Ok(client.chats()?.into_iter().map(ChatView::from).collect()))
}

/// The newest messages of a conversation, oldest first, and how many it holds in all.
#[derive(Debug, Clone, Serialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct MessagePage {
    /// The messages, in log order.
    pub messages: Vec<MessageView>,
    /// How many messages the conversation has.
    pub total: u32,
}

/// The newest `limit` messages of one conversation, oldest first; with `include`, enough older
/// ones to reach that message. The page asks for more as the clinician scrolls up, so a long
/// conversation is never held whole in the webview.
#[tauri::command(async)]
#[specta::specta]
pub fn chat_messages(
    state: State<'_, ShellState>,
    chat_id: String,
    limit: u32,
    include: Option<String>,
) -> Result<MessagePage, IpcError> {
    state.with_client(|client| {
        let (messages, total) =
            client.messages_page(&chat_id, limit as usize, include.as_deref())?;
        Ok(MessagePage {
            messages: messages.into_iter().map(MessageView::from).collect(),
            total: u32::try_from(total).unwrap_or(u32::MAX),
        })
    })
}

/// Records which conversation is on screen (`None`: none), and marks it read.
#[tauri::command(async)]
#[specta::specta]
pub fn view_chat(state: State<'_, ShellState>, chat_id: Option<String>) -> Result<(), IpcError> {
    if let Ok(mut viewing) = state.viewing.lock() {
        viewing.clone_from(&chat_id);
    }
    match chat_id {
        Some(chat) => state.with_client(|client| client.mark_read(&chat).map(|_| ())),
        None => Ok(()),
    }
}

/// Sends a text. It is in the outbox when this returns, sent now or when the relay is back.
#[tauri::command(async)]
#[specta::specta]
pub fn send_text(
    state: State<'_, ShellState>,
    chat_id: String,
    text: String,
) -> Result<(), IpcError> {
    let result = state.with_client(|client| client.send_text(&chat_id, &text).map(|_| ()));
    state.wake_sync();
    result
}

/// The directory, sorted by name.
#[tauri::command(async)]
#[specta::specta]
pub fn list_contacts(state: State<'_, ShellState>) -> Result<Vec<ContactView>, IpcError> {
    state.with_client(|client| {
        // A fresh directory when the relay answers; the saved one when it does not.
        let _ = client.refresh_contacts();
        Ok(client
            .contacts()?
            .into_iter()
            .map(ContactView::from)
            .collect())
    })
}

/// The 1:1 conversation with a contact, started if there is none; returns its id.
#[tauri::command(async)]
#[specta::specta]
pub fn open_direct_chat(state: State<'_, ShellState>, user_id: String) -> Result<String, IpcError> {
    let result = state.with_client(|client| Ok(hex_id(client.resolve_chat(&user_id)?.as_bytes())));
    state.wake_sync();
    result
}

/// Creates a care team; returns its id.
#[tauri::command(async)]
#[specta::specta]
pub fn create_team(
    state: State<'_, ShellState>,
    name: String,
    member_ids: Vec<String>,
    patient_tag: Option<String>,
) -> Result<String, IpcError> {
    let tag = patient_tag
        .as_deref()
        .map(str::trim)
        .filter(|tag| !tag.is_empty());
    let result = state.with_client(|client| {
        Ok(hex_id(
            client.create_chat(&name, &member_ids, tag)?.as_bytes(),
        ))
    });
    state.wake_sync();
    result
}

fn hex_id(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A contact's safety number and QR code.
#[tauri::command(async)]
#[specta::specta]
pub fn contact_verification(
    state: State<'_, ShellState>,
    user_id: String,
) -> Result<VerificationView, IpcError> {
    state.with_client(|client| Ok(client.verification(&user_id)?.into()))
}

/// Marks a contact's current key verified, after the clinician compared safety numbers.
#[tauri::command(async)]
#[specta::specta]
pub fn mark_verified(state: State<'_, ShellState>, user_id: String) -> Result<(), IpcError> {
    state.with_client(|client| client.mark_verified(&user_id))
}

/// Full-text search over this device's history, optionally for one patient tag.
#[tauri::command(async)]
#[specta::specta]
pub fn search_messages(
    state: State<'_, ShellState>,
    query: String,
    patient_tag: Option<String>,
) -> Result<Vec<SearchHitView>, IpcError> {
    state.with_client(|client| {
        Ok(client
            .search(&query, patient_tag.as_deref())?
            .into_iter()
            .map(SearchHitView::from)
            .collect())
    })
}

/// How far an upload or a download has got, for its progress bar.
#[derive(Debug, Clone, Serialize, Deserialize, Type, Event)]
#[serde(rename_all = "camelCase")]
pub struct TransferProgress {
    /// The id the UI gave the transfer.
    pub transfer: String,
    /// 0 to 100.
    pub percent: u32,
}

/// A reporter for `transfer` that emits an event only when the percentage moves.
fn transfer_progress(app: &AppHandle, transfer: &str) -> impl FnMut(u64, u64) {
    let app = app.clone();
    let transfer = transfer.to_owned();
    let mut last = None;
    move |done, total| {
        let percent = done
            .saturating_mul(100)
            .checked_div(total)
            .map_or(100, |percent| {
                u32::try_from(percent.min(100)).unwrap_or(100)
            });
        if last != Some(percent) {
            last = Some(percent);
            let _ = TransferProgress {
                transfer: transfer.clone(),
                percent,
            }
            .emit(&app);
        }
    }
}

/// The headers `send_attachment` reads; values are percent-encoded UTF-8.
const CHAT_HEADER: &str = "x-ward-chat";
const NAME_HEADER: &str = "x-ward-name";
const TRANSFER_HEADER: &str = "x-ward-transfer";

/// Sends a file the clinician picked, dropped or pasted. The body is the file's bytes, sent raw
/// (not as JSON numbers); the conversation, file name and transfer id come as headers. The
/// bytes are encrypted from memory: no plaintext copy is written.
#[tauri::command(async)]
pub fn send_attachment(
    app: AppHandle,
    state: State<'_, ShellState>,
    request: tauri::ipc::Request<'_>,
) -> Result<(), IpcError> {
    let tauri::ipc::InvokeBody::Raw(bytes) = request.body() else {
        return Err(action_failed("The file did not reach Ward. Try again."));
    };
    let header = |name: &str| -> Result<String, IpcError> {
        let value = request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| action_failed("The file did not reach Ward. Try again."))?;
        Ok(percent_encoding::percent_decode_str(value)
            .decode_utf8_lossy()
            .into_owned())
    };
    let chat = header(CHAT_HEADER)?;
    let name = header(NAME_HEADER)?;
    let transfer = header(TRANSFER_HEADER)?;
    let mut progress = transfer_progress(&app, &transfer);
    let result = state.with_client(|client| {
        client
            .send_bytes(&chat, &name, bytes, &mut progress)
            .map(|_| ())
    });
    state.wake_sync();
    result
}

/// An attachment decrypted into memory for a viewer; the page receives the bytes as an
/// ArrayBuffer. Downloads the ciphertext first when this device does not have it.
#[tauri::command(async)]
pub fn open_attachment(
    app: AppHandle,
    state: State<'_, ShellState>,
    client_id: String,
    transfer: String,
) -> Result<tauri::ipc::Response, IpcError> {
    let mut progress = transfer_progress(&app, &transfer);
    state.with_client(|client| {
        let bytes = client.attachment_bytes(&client_id, &mut progress)?;
        // The page needs its own copy; ours is wiped as it drops here.
        Ok(tauri::ipc::Response::new(bytes.to_vec()))
    })
}

/// An ECG recording, as the viewer draws it.
#[derive(Debug, Clone, Serialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct EcgView {
    /// Samples per second.
    pub sample_rate_hz: u32,
    /// The leads, in the file's order.
    pub leads: Vec<EcgLeadView>,
}

/// One lead.
#[derive(Debug, Clone, Serialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct EcgLeadView {
    /// "I", "aVR", "V1"…
    pub label: String,
    /// Microvolts per sample.
    pub microvolts: Vec<i32>,
}

/// Decodes an ECG attachment (DICOM waveform or HL7 aECG) in memory for the viewer.
#[tauri::command(async)]
#[specta::specta]
pub fn ecg_recording(
    app: AppHandle,
    state: State<'_, ShellState>,
    client_id: String,
    transfer: String,
) -> Result<EcgView, IpcError> {
    let mut progress = transfer_progress(&app, &transfer);
    state.with_client(|client| {
        let bytes = client.attachment_bytes(&client_id, &mut progress)?;
        let recording = ward_client::ecg::decode(&bytes)?;
        Ok(EcgView {
            sample_rate_hz: recording.sample_rate_hz,
            leads: recording
                .leads
                .into_iter()
                .map(|lead| EcgLeadView {
                    label: lead.label,
                    microvolts: lead.microvolts,
                })
                .collect(),
        })
    })
}

/// "Save as…": asks where with the system's dialog, then writes the decrypted file there. The
/// page has already asked the clinician to confirm. Returns false when they cancelled.
#[tauri::command(async)]
#[specta::specta]
pub fn save_attachment(
    app: AppHandle,
    state: State<'_, ShellState>,
    client_id: String,
    name: String,
) -> Result<bool, IpcError> {
    use tauri_plugin_dialog::DialogExt;
    let Some(chosen) = app
        .dialog()
        .file()
        .set_title("Save a decrypted copy")
        .set_file_name(&name)
        .blocking_save_file()
    else {
        return Ok(false);
    };
    let path = chosen
        .into_path()
        .map_err(|_| action_failed("Ward can only save to a folder on this computer."))?;
    state.with_client(|client| client.fetch_file(&client_id, &path).map(|_| true))
}

/// Replaces the text of a message this clinician sent.
#[tauri::command(async)]
#[specta::specta]
pub fn edit_message(
    state: State<'_, ShellState>,
    client_id: String,
    text: String,
) -> Result<(), IpcError> {
    let result = state.with_client(|client| client.edit_message(&client_id, &text));
    state.wake_sync();
    result
}

/// Deletes a message this clinician sent, for everyone in the conversation.
#[tauri::command(async)]
#[specta::specta]
pub fn delete_message(state: State<'_, ShellState>, client_id: String) -> Result<(), IpcError> {
    let result = state.with_client(|client| client.delete_message(&client_id));
    state.wake_sync();
    result
}

/// Adds contacts (user ids) to a care team.
#[tauri::command(async)]
#[specta::specta]
pub fn add_members(
    state: State<'_, ShellState>,
    chat_id: String,
    member_ids: Vec<String>,
) -> Result<(), IpcError> {
    let result = state.with_client(|client| client.add_members(&chat_id, &member_ids));
    state.wake_sync();
    result
}

/// Removes contacts (user ids) from a care team.
#[tauri::command(async)]
#[specta::specta]
pub fn remove_members(
    state: State<'_, ShellState>,
    chat_id: String,
    member_ids: Vec<String>,
) -> Result<(), IpcError> {
    let result = state.with_client(|client| client.remove_members(&chat_id, &member_ids));
    state.wake_sync();
    result
}

/// Saves how much notifications say: "none", "generic" or "sender".
#[tauri::command(async)]
#[specta::specta]
pub fn set_notification_level(
    app: AppHandle,
    state: State<'_, ShellState>,
    level: String,
) -> Result<(), IpcError> {
    let level = NotificationLevel::parse(&level)
        .ok_or_else(|| action_failed("Choose none, generic or sender."))?;
    state.with_client(|client| client.set_notification_level(level))?;
    crate::apply_user_settings(&app);
    Ok(())
}

fn action_failed(message: &str) -> IpcError {
    IpcError {
        code: ErrorCode::ActionFailed,
        message: message.to_owned(),
    }
}

/// Tries the relay now instead of waiting for the next retry.
#[tauri::command]
#[specta::specta]
pub fn retry_now(state: State<'_, ShellState>) {
    state.wake_sync();
}

/// Starts Ward again, so a keychain that was unlocked or started meanwhile is picked up.
#[tauri::command]
#[specta::specta]
pub fn restart_app(app: AppHandle) {
    app.restart()
}

/// The typed command and event set, shared by the running app and the bindings export.
pub fn bindings_builder() -> tauri_specta::Builder<tauri::Wry> {
    tauri_specta::Builder::<tauri::Wry>::new()
        .commands(collect_commands![
            app_status,
            restart_app,
            enroll,
            list_chats,
            chat_messages,
            view_chat,
            send_text,
            list_contacts,
            open_direct_chat,
            create_team,
            contact_verification,
            mark_verified,
            search_messages,
            retry_now,
            ecg_recording,
            save_attachment,
            edit_message,
            delete_message,
            add_members,
            remove_members,
            set_notification_level
        ])
        .events(collect_events![
            AppStatus,
            ConnectionStatus,
            HistoryChanged,
            OpenChatRequested,
            TransferProgress
        ])
}

/// The TypeScript exporter with the header the committed bindings carry.
pub fn typescript() -> specta_typescript::Typescript {
    specta_typescript::Typescript::default()
        .header("// Generated by tauri-specta from src-tauri/src/ipc.rs. Do not edit: run scripts/bindings.\n")
}
