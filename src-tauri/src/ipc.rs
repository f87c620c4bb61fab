//! The typed boundary between the UI and Rust: every command, event and shape the UI sees, exported
//! to `ui/src/bindings.ts` by tauri-specta. Shapes here are built from ward-client's types at the
//! boundary, so the library's types never leak into the UI's contract.

use std::sync::Mutex;

use serde::Serialize;
use specta::Type;
use tauri::{AppHandle, State};
use tauri_specta::{collect_commands, collect_events, Event};
use ward_client::policy::{EffectiveSettings, NotificationLevel, PolicyError, SettingSource};
use ward_client::{KeychainError, OpenError, OpenedProfile, StoreError};

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
    /// The open profile, once opening succeeded.
    pub profile: Mutex<Option<OpenedProfile>>,
}

/// The current status of Ward: the first screen calls this, then follows `AppStatus` events.
#[tauri::command]
#[specta::specta]
pub fn app_status(state: State<'_, ShellState>) -> Result<AppStatus, IpcError> {
    state
        .status
        .lock()
        .map(|status| status.clone())
        .map_err(|_| IpcError {
            code: ErrorCode::NotReady,
            message: "Ward is still starting. Wait a moment.".to_owned(),
        })
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
        .commands(collect_commands![app_status, restart_app])
        .events(collect_events![AppStatus])
}

/// The TypeScript exporter with the header the committed bindings carry.
pub fn typescript() -> specta_typescript::Typescript {
    specta_typescript::Typescript::default()
        .header("// Generated by tauri-specta from src-tauri/src/ipc.rs. Do not edit: run scripts/bindings.\n")
}
