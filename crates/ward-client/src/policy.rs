//! Managed policy: the settings hospital IT locks on every desktop.
//!
//! Policy is read from the place each OS keeps machine policy: `/etc/ward/policy.toml` on Linux,
//! `HKLM\Software\Policies\Ward` on Windows, and the managed preferences for `org.ward.desktop` on
//! macOS. The key names are the same everywhere. Reading is strict, because a policy that is
//! silently half-applied is worse than none: an unknown key is a warning (a newer template on an
//! older Ward), but a value Ward cannot honour stops startup with an error naming the key and where
//! it was read. Policy beats the user's own settings, and every effective setting says where its
//! value came from, so IT can check a rollout with `ward-desktop --print-policy`.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde::Serialize;

/// Where Linux desktops read policy.
pub const LINUX_POLICY_FILE: &str = "/etc/ward/policy.toml";
/// Where Windows desktops read policy (values named like the keys below).
pub const WINDOWS_POLICY_KEY: &str = r"HKLM\Software\Policies\Ward";
/// Where macOS keeps the managed preferences a configuration profile installs.
pub const MACOS_POLICY_FILE: &str = "/Library/Managed Preferences/org.ward.desktop.plist";

/// Every key a policy may set, in the order `--print-policy` shows them.
pub const POLICY_KEYS: [&str; 10] = [
    "relay_url",
    "relay_spki_sha256",
    "notification_level",
    "screen_capture_protection",
    "idle_lock_minutes",
    "attachment_max_mb",
    "attachment_allowed_types",
    "retention_days",
    "block_changed_unverified_keys",
    "compliance_archive",
];

/// The largest attachment the relay stores (2 GiB), in MB.
pub const MAX_ATTACHMENT_MB: u32 = 2048;

/// A policy Ward cannot run under. Each names where the policy was read, so IT can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The policy exists but could not be read.
    #[error("the policy at {location} could not be read: {reason}")]
    Unreadable {
        /// The file or registry key.
        location: String,
        /// What the OS said.
        reason: String,
    },
    /// The policy file is not valid TOML or plist.
    #[error("the policy at {location} is not well-formed: {reason}")]
    Malformed {
        /// The file.
        location: String,
        /// What the parser said, with the line where it has one.
        reason: String,
    },
    /// A key has a value Ward cannot honour.
    #[error("the policy at {location} sets {key} to a value Ward cannot use: {reason}")]
    Invalid {
        /// The file or registry key.
        location: String,
        /// The policy key.
        key: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
}

/// How much a notification may say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationLevel {
    /// No notifications.
    None,
    /// "New secure message" only.
    Generic,
    /// The sender's name, never the text.
    Sender,
    /// The sender and the text; only a policy can choose this.
    Content,
}

impl NotificationLevel {
    /// The level named as policy files and the settings screen name it.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "none" => Some(Self::None),
            "generic" => Some(Self::Generic),
            "sender" => Some(Self::Sender),
            "content" => Some(Self::Content),
            _ => None,
        }
    }

    /// The level's name, as [`NotificationLevel::parse`] reads it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Generic => "generic",
            Self::Sender => "sender",
            Self::Content => "content",
        }
    }
}

/// A value as the policy store holds it, before it is checked against its key.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    /// A string (REG_SZ, a TOML or plist string).
    Text(String),
    /// A number (REG_DWORD, a TOML or plist integer).
    Integer(i64),
    /// A boolean (TOML or plist; the registry uses 0 and 1).
    Bool(bool),
    /// A list of strings (REG_MULTI_SZ, a TOML or plist array).
    List(Vec<String>),
    /// Anything else, named for the error message.
    Other(&'static str),
}

/// What a machine's policy sets. `None` leaves the setting to the user or the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Where it was read; `None` when this machine has no policy.
    pub location: Option<String>,
    /// The only relay this device may enroll with and talk to.
    pub relay_url: Option<String>,
    /// SHA-256 of the relay certificate's SubjectPublicKeyInfo; one must match.
    pub relay_spki_sha256: Option<Vec<[u8; 32]>>,
    /// How much notifications may say.
    pub notification_level: Option<NotificationLevel>,
    /// Whether the window is kept out of screenshots and screen sharing.
    pub screen_capture_protection: Option<bool>,
    /// Minutes without input before the window locks; 0 never locks.
    pub idle_lock_minutes: Option<u32>,
    /// The largest attachment a user may send, in MB.
    pub attachment_max_mb: Option<u32>,
    /// The media types a user may send (`image/*` style wildcards allowed).
    pub attachment_allowed_types: Option<Vec<String>>,
    /// Days a message is kept on this device; 0 keeps it.
    pub retention_days: Option<u32>,
    /// Whether sending to a contact whose key changed waits until the new key is verified.
    pub block_changed_unverified_keys: Option<bool>,
    /// Keys this Ward does not know, each with where it was found.
    pub warnings: Vec<String>,
}

impl Policy {
    /// Reads this machine's policy from where its OS keeps it. A machine without policy gets the
    /// empty policy.
    ///
    /// Debug builds (tests) may point `WARD_POLICY_FILE` at a TOML file instead; release builds
    /// ignore it, so a user cannot slip past IT's policy with an environment variable.
    pub fn load_machine() -> Result<Self, PolicyError> {
        if cfg!(debug_assertions) {
            if let Some(path) = std::env::var_os("WARD_POLICY_FILE") {
                return Self::load_toml_file(Path::new(&path));
            }
        }
        Self::load_platform()
    }

    #[cfg(target_os = "windows")]
    fn load_platform() -> Result<Self, PolicyError> {
        windows_registry::load()
    }

    #[cfg(target_os = "macos")]
    fn load_platform() -> Result<Self, PolicyError> {
        Self::load_plist_file(Path::new(MACOS_POLICY_FILE))
    }

    #[cfg(not(any(target_os = "windows", target_os = "macos")))]
    fn load_platform() -> Result<Self, PolicyError> {
        Self::load_toml_file(Path::new(LINUX_POLICY_FILE))
    }

    /// Reads a TOML policy file; a missing file is the empty policy.
    pub fn load_toml_file(path: &Path) -> Result<Self, PolicyError> {
        let location = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_toml(&text, &location),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(PolicyError::Unreadable {
                location,
                reason: error.to_string(),
            }),
        }
    }

    /// Reads a managed-preferences plist; a missing file is the empty policy.
    pub fn load_plist_file(path: &Path) -> Result<Self, PolicyError> {
        let location = path.display().to_string();
        if !path.exists() {
            return Ok(Self::default());
        }
        let value = plist::Value::from_file(path).map_err(|error| PolicyError::Malformed {
            location: location.clone(),
            reason: error.to_string(),
        })?;
        let dictionary = value
            .as_dictionary()
            .ok_or_else(|| PolicyError::Malformed {
                location: location.clone(),
                reason: "the top level is not a dictionary".to_owned(),
            })?;
        Self::from_plist(dictionary, &location)
    }

    /// Parses the TOML form (`/etc/ward/policy.toml`).
    pub fn from_toml(text: &str, location: &str) -> Result<Self, PolicyError> {
        let table: toml::Table =
            text.parse()
                .map_err(|error: toml::de::Error| PolicyError::Malformed {
                    location: location.to_owned(),
                    reason: error.message().to_owned()
                        + &line_of(text, error.span().map(|span| span.start)),
                })?;
        let values = table
            .into_iter()
            .map(|(key, value)| {
                let raw = match value {
                    toml::Value::String(text) => RawValue::Text(text),
                    toml::Value::Integer(number) => RawValue::Integer(number),
                    toml::Value::Boolean(flag) => RawValue::Bool(flag),
                    toml::Value::Array(items) => list_of(items.iter().map(|item| match item {
                        toml::Value::String(text) => Some(text.clone()),
                        _ => None,
                    })),
                    toml::Value::Float(_) => RawValue::Other("a decimal number"),
                    toml::Value::Datetime(_) => RawValue::Other("a date"),
                    toml::Value::Table(_) => RawValue::Other("a table"),
                };
                (key, raw)
            })
            .collect();
        Self::from_values(values, location)
    }

    /// Parses the managed-preferences form (a plist dictionary).
    pub fn from_plist(dictionary: &plist::Dictionary, location: &str) -> Result<Self, PolicyError> {
        let values = dictionary
            .iter()
            // A configuration profile's own bookkeeping keys travel with the settings.
            .filter(|(key, _)| !key.starts_with("Payload"))
            .map(|(key, value)| {
                let raw = match value {
                    plist::Value::String(text) => RawValue::Text(text.clone()),
                    plist::Value::Integer(number) => number
                        .as_signed()
                        .map_or(RawValue::Other("a number out of range"), RawValue::Integer),
                    plist::Value::Boolean(flag) => RawValue::Bool(*flag),
                    plist::Value::Array(items) => {
                        list_of(items.iter().map(|item| item.as_string().map(str::to_owned)))
                    }
                    _ => RawValue::Other("a value of another kind"),
                };
                (key.clone(), raw)
            })
            .collect();
        Self::from_values(values, location)
    }

    /// Checks every value against its key. This is where all three forms meet.
    pub fn from_values(
        values: BTreeMap<String, RawValue>,
        location: &str,
    ) -> Result<Self, PolicyError> {
        let mut policy = Policy {
            location: Some(location.to_owned()),
            ..Policy::default()
        };
        for (key, value) in values {
            let invalid = |reason: String| PolicyError::Invalid {
                location: location.to_owned(),
                key: key.clone(),
                reason,
            };
            match key.as_str() {
                "relay_url" => {
                    let text = text_value(&value).map_err(invalid)?;
                    let url = crate::relay_client::check_relay_url(&text)
                        .map_err(|error| invalid(error.to_string()))?;
                    policy.relay_url = Some(url);
                }
                "relay_spki_sha256" => {
                    let items = list_value(&value).map_err(invalid)?;
                    if items.is_empty() {
                        return Err(invalid("the list of pins is empty".to_owned()));
                    }
                    let pins = items
                        .iter()
                        .map(|item| spki_pin(item))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(invalid)?;
                    policy.relay_spki_sha256 = Some(pins);
                }
                "notification_level" => {
                    let text = text_value(&value).map_err(invalid)?;
                    let level = NotificationLevel::parse(&text).ok_or_else(|| {
                        invalid(format!(
                            "{text:?} is not one of none, generic, sender or content"
                        ))
                    })?;
                    policy.notification_level = Some(level);
                }
                "screen_capture_protection" => {
                    policy.screen_capture_protection = Some(bool_value(&value).map_err(invalid)?);
                }
                "idle_lock_minutes" => {
                    policy.idle_lock_minutes = Some(
                        number_in(&value, 0, 1440, "minutes (0 never locks)").map_err(invalid)?,
                    );
                }
                "attachment_max_mb" => {
                    policy.attachment_max_mb =
                        Some(number_in(&value, 1, MAX_ATTACHMENT_MB, "MB").map_err(invalid)?);
                }
                "attachment_allowed_types" => {
                    let items = list_value(&value).map_err(invalid)?;
                    for item in &items {
                        check_media_type(item).map_err(invalid)?;
                    }
                    policy.attachment_allowed_types =
                        Some(items.iter().map(|item| item.to_ascii_lowercase()).collect());
                }
                "retention_days" => {
                    policy.retention_days = Some(
                        number_in(&value, 0, 36_500, "days (0 keeps messages)").map_err(invalid)?,
                    );
                }
                "block_changed_unverified_keys" => {
                    policy.block_changed_unverified_keys =
                        Some(bool_value(&value).map_err(invalid)?);
                }
                "compliance_archive" => {
                    // Reserved: an archive IT believes is on but is not would be worse than an error.
                    if bool_value(&value).map_err(invalid)? {
                        return Err(invalid(
                            "the compliance archive is reserved and not available in this version \
                             of Ward; remove the key or set it to false"
                                .to_owned(),
                        ));
                    }
                }
                _ => policy.warnings.push(format!(
                    "the policy at {location} sets {key}, which this version of Ward does not \
                     know; it is ignored"
                )),
            }
        }
        Ok(policy)
    }

    /// Whether a media type may be sent. Without a list, every type may.
    pub fn allows_media_type(&self, media_type: &str) -> bool {
        let Some(allowed) = &self.attachment_allowed_types else {
            return true;
        };
        let media_type = media_type.to_ascii_lowercase();
        let major = media_type.split('/').next().unwrap_or_default();
        allowed
            .iter()
            .any(|pattern| match pattern.strip_suffix("/*") {
                Some(prefix) => prefix == major || prefix == "*",
                None => *pattern == media_type,
            })
    }

    /// Whether this device must use `url` as its relay.
    pub fn allows_relay_url(&self, url: &str) -> bool {
        match &self.relay_url {
            Some(managed) => managed.trim_end_matches('/') == url.trim().trim_end_matches('/'),
            None => true,
        }
    }
}

fn line_of(text: &str, offset: Option<usize>) -> String {
    match offset {
        Some(offset) => {
            let line = text
                .get(..offset)
                .map_or(0, |before| before.matches('\n').count());
            format!(" (line {})", line + 1)
        }
        None => String::new(),
    }
}

fn list_of(items: impl Iterator<Item = Option<String>>) -> RawValue {
    match items.collect::<Option<Vec<_>>>() {
        Some(list) => RawValue::List(list),
        None => RawValue::Other("a list with something other than text in it"),
    }
}

fn kind(value: &RawValue) -> &'static str {
    match value {
        RawValue::Text(_) => "text",
        RawValue::Integer(_) => "a number",
        RawValue::Bool(_) => "true or false",
        RawValue::List(_) => "a list",
        RawValue::Other(kind) => kind,
    }
}

fn text_value(value: &RawValue) -> Result<String, String> {
    match value {
        RawValue::Text(text) => Ok(text.clone()),
        other => Err(format!("it must be text, not {}", kind(other))),
    }
}

/// Lists are lists, but a single string is taken as a list of one: a REG_SZ where IT meant a
/// one-line REG_MULTI_SZ is an honest mistake with one meaning.
fn list_value(value: &RawValue) -> Result<Vec<String>, String> {
    match value {
        RawValue::List(items) => Ok(items.clone()),
        RawValue::Text(text) => Ok(vec![text.clone()]),
        other => Err(format!("it must be a list of text, not {}", kind(other))),
    }
}

/// The registry has no booleans: a DWORD of 0 or 1 stands for one.
fn bool_value(value: &RawValue) -> Result<bool, String> {
    match value {
        RawValue::Bool(flag) => Ok(*flag),
        RawValue::Integer(0) => Ok(false),
        RawValue::Integer(1) => Ok(true),
        RawValue::Integer(other) => Err(format!("it must be true or false (1 or 0), not {other}")),
        other => Err(format!("it must be true or false, not {}", kind(other))),
    }
}

fn number_in(value: &RawValue, low: u32, high: u32, unit: &str) -> Result<u32, String> {
    match value {
        RawValue::Integer(number) => u32::try_from(*number)
            .ok()
            .filter(|number| (low..=high).contains(number))
            .ok_or_else(|| format!("{number} is outside {low} to {high} {unit}")),
        other => Err(format!(
            "it must be a whole number of {unit}, not {}",
            kind(other)
        )),
    }
}

/// A pin as `openssl … | openssl dgst -sha256 -binary | base64` prints it (44 characters), or as
/// 64 hex digits. Both are common in the tools IT uses.
fn spki_pin(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    let text = text.strip_prefix("sha256/").unwrap_or(text);
    let bytes = if text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        hex::decode(text).ok()
    } else {
        base64::engine::general_purpose::STANDARD.decode(text).ok()
    };
    bytes
        .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
        .ok_or_else(|| {
            format!(
                "{text:?} is not a SHA-256 pin (44 characters of base64 or 64 hex digits of the \
                 certificate's public key hash)"
            )
        })
}

fn check_media_type(text: &str) -> Result<(), String> {
    let valid_part = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    };
    let fine = match text.split_once('/') {
        Some(("*", "*")) => true,
        Some((major, "*")) => valid_part(major),
        Some((major, minor)) => valid_part(major) && valid_part(minor),
        None => false,
    };
    if fine {
        Ok(())
    } else {
        Err(format!(
            "{text:?} is not a media type such as application/pdf or image/*"
        ))
    }
}

/// The settings a clinician may choose for themselves, where policy leaves them free.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserSettings {
    /// How much notifications say.
    pub notification_level: Option<NotificationLevel>,
    /// Whether the window is kept out of screenshots.
    pub screen_capture_protection: Option<bool>,
    /// Minutes before the idle lock.
    pub idle_lock_minutes: Option<u32>,
}

/// Where an effective setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingSource {
    /// The organization's policy; the UI shows "Managed by your organization".
    Policy,
    /// The clinician chose it.
    User,
    /// Nobody set it.
    Default,
}

/// One effective setting and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting<T> {
    /// The value in force.
    pub value: T,
    /// Who set it.
    pub source: SettingSource,
}

/// The settings in force: policy first, then the user's choice, then Ward's default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectiveSettings {
    /// Where the policy was read, if this machine has one.
    pub policy_location: Option<String>,
    /// The relay, when policy fixes it.
    pub relay_url: Setting<Option<String>>,
    /// The pinned relay keys (base64), when policy pins them.
    pub relay_spki_sha256: Setting<Vec<String>>,
    /// How much notifications say.
    pub notification_level: Setting<NotificationLevel>,
    /// Whether the window is kept out of screenshots.
    pub screen_capture_protection: Setting<bool>,
    /// Minutes before the idle lock; 0 never locks.
    pub idle_lock_minutes: Setting<u32>,
    /// The largest attachment, in MB.
    pub attachment_max_mb: Setting<u32>,
    /// The media types that may be sent; empty allows every type.
    pub attachment_allowed_types: Setting<Vec<String>>,
    /// Days messages stay on this device; 0 keeps them.
    pub retention_days: Setting<u32>,
    /// Whether changed, unverified keys block sending.
    pub block_changed_unverified_keys: Setting<bool>,
    /// Unknown keys in the policy.
    pub warnings: Vec<String>,
}

fn pick<T: Clone>(policy: Option<T>, user: Option<T>, default: T) -> Setting<T> {
    match (policy, user) {
        (Some(value), _) => Setting {
            value,
            source: SettingSource::Policy,
        },
        (None, Some(value)) => Setting {
            value,
            source: SettingSource::User,
        },
        (None, None) => Setting {
            value: default,
            source: SettingSource::Default,
        },
    }
}

impl EffectiveSettings {
    /// Combines the policy with the user's settings. A user may never choose `content`
    /// notifications: message text on a lock screen is a decision for the organization.
    pub fn resolve(policy: &Policy, user: &UserSettings) -> Self {
        let user_level = user
            .notification_level
            .map(|level| level.min(NotificationLevel::Sender));
        Self {
            policy_location: policy.location.clone(),
            relay_url: pick(policy.relay_url.clone().map(Some), None, None),
            relay_spki_sha256: pick(
                policy.relay_spki_sha256.as_ref().map(|pins| {
                    pins.iter()
                        .map(|pin| base64::engine::general_purpose::STANDARD.encode(pin))
                        .collect()
                }),
                None,
                Vec::new(),
            ),
            notification_level: pick(
                policy.notification_level,
                user_level,
                NotificationLevel::Generic,
            ),
            screen_capture_protection: pick(
                policy.screen_capture_protection,
                user.screen_capture_protection,
                true,
            ),
            idle_lock_minutes: pick(policy.idle_lock_minutes, user.idle_lock_minutes, 0),
            attachment_max_mb: pick(policy.attachment_max_mb, None, MAX_ATTACHMENT_MB),
            attachment_allowed_types: pick(
                policy.attachment_allowed_types.clone(),
                None,
                Vec::new(),
            ),
            retention_days: pick(policy.retention_days, None, 0),
            block_changed_unverified_keys: pick(policy.block_changed_unverified_keys, None, false),
            warnings: policy.warnings.clone(),
        }
    }
}

#[cfg(target_os = "windows")]
mod windows_registry {
    //! `HKLM\Software\Policies\Ward`: REG_SZ for text, REG_DWORD for numbers and booleans,
    //! REG_MULTI_SZ for lists, as the ADMX template in packaging/policy/windows writes them.
    use std::collections::BTreeMap;

    use winreg::enums::{RegType, HKEY_LOCAL_MACHINE, KEY_READ};
    use winreg::types::FromRegValue;
    use winreg::RegKey;

    use super::{Policy, PolicyError, RawValue, WINDOWS_POLICY_KEY};

    pub(super) fn load() -> Result<Policy, PolicyError> {
        let unreadable = |error: std::io::Error| PolicyError::Unreadable {
            location: WINDOWS_POLICY_KEY.to_owned(),
            reason: error.to_string(),
        };
        let key = match RegKey::predef(HKEY_LOCAL_MACHINE)
            .open_subkey_with_flags(r"Software\Policies\Ward", KEY_READ)
        {
            Ok(key) => key,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Policy::default())
            }
            Err(error) => return Err(unreadable(error)),
        };
        let mut values = BTreeMap::new();
        for item in key.enum_values() {
            let (name, value) = item.map_err(unreadable)?;
            let raw = match value.vtype {
                RegType::REG_SZ | RegType::REG_EXPAND_SZ => String::from_reg_value(&value)
                    .map_or(RawValue::Other("unreadable text"), RawValue::Text),
                RegType::REG_DWORD => u32::from_reg_value(&value)
                    .map_or(RawValue::Other("an unreadable number"), |number| {
                        RawValue::Integer(i64::from(number))
                    }),
                RegType::REG_MULTI_SZ => Vec::<String>::from_reg_value(&value)
                    .map_or(RawValue::Other("an unreadable list"), RawValue::List),
                _ => {
                    RawValue::Other("a registry type other than REG_SZ, REG_DWORD or REG_MULTI_SZ")
                }
            };
            values.insert(name, raw);
        }
        Policy::from_values(values, WINDOWS_POLICY_KEY)
    }
}
