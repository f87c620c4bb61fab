//! The OS keychain, through keyring 4: Secret Service on Linux, Keychain Services on macOS and the
//! Credential Manager on Windows.
//!
//! Entries are namespaced by app (the keyring "service") and by profile (a prefix of the keyring
//! "user"), so two clinicians on one machine, or two test profiles, never see each other's keys.
//! Failures are sorted into the few cases a clinician can act on. There is deliberately no file
//! fallback: a machine without a working keychain cannot run Ward.

use zeroize::Zeroizing;

use crate::profile::ProfileId;

/// The keyring service name under which every Ward entry is stored.
pub const KEYCHAIN_SERVICE: &str = "org.ward.desktop";

/// Why the keychain could not be used. Each variant is a case a clinician or IT can act on; none of
/// them carries secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeychainError {
    /// No keychain service answers: there is no session bus, or no Secret Service provider on it.
    #[error("no keychain service is running ({detail})")]
    Unavailable {
        /// What the platform said, for logs and support; it names no secret.
        detail: String,
    },
    /// The keychain exists but is locked, so nothing can be read from or written to it.
    #[error("the keychain is locked")]
    Locked,
    /// Ward was refused access: an unlock or access prompt was dismissed or denied.
    #[error("access to the keychain was refused")]
    AccessRefused,
    /// Any other failure of the keychain service.
    #[error("the keychain failed ({detail})")]
    Failed {
        /// What the platform said, for logs and support; it names no secret.
        detail: String,
    },
}

/// One profile's view of the OS keychain.
#[derive(Debug, Clone)]
pub struct Keychain {
    service: String,
    profile: String,
}

impl Keychain {
    /// The keychain namespace of one profile under Ward's service name.
    pub fn for_profile(profile: &ProfileId) -> Self {
        Self::with_service(KEYCHAIN_SERVICE, profile)
    }

    /// The keychain namespace of one profile under another service name. Tests use this so they
    /// never touch a real Ward entry.
    pub fn with_service(service: &str, profile: &ProfileId) -> Self {
        Self {
            service: service.to_owned(),
            profile: profile.as_str().to_owned(),
        }
    }

    /// Whether a keychain service can be reached at all. It creates and reads nothing, so start-up
    /// calls it before it touches the disk.
    pub fn check_available() -> Result<(), KeychainError> {
        match keyring::Entry::store_status() {
            Ok(()) => Ok(()),
            Err(err) => Err(KeychainError::Unavailable {
                detail: platform_detail(err),
            }),
        }
    }

    /// The secret stored under `name`, or `None` when this profile has no such entry.
    pub fn read_secret(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, KeychainError> {
        match self.entry(name)?.get_secret() {
            Ok(secret) => Ok(Some(Zeroizing::new(secret))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(err) => Err(classify(err)),
        }
    }

    /// Stores `secret` under `name`, replacing any earlier value.
    pub fn write_secret(&self, name: &str, secret: &[u8]) -> Result<(), KeychainError> {
        self.entry(name)?.set_secret(secret).map_err(classify)
    }

    /// Deletes the entry `name`. Returns whether there was one.
    pub fn delete_secret(&self, name: &str) -> Result<bool, KeychainError> {
        match self.entry(name)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(err) => Err(classify(err)),
        }
    }

    fn entry(&self, name: &str) -> Result<keyring::Entry, KeychainError> {
        let user = format!("{}:{name}", self.profile);
        keyring::Entry::new(&self.service, &user).map_err(classify)
    }
}

fn classify(err: keyring::Error) -> KeychainError {
    match err {
        keyring::Error::NoDefaultStore => match keyring::Entry::store_status() {
            Err(cause) => KeychainError::Unavailable {
                detail: platform_detail(cause),
            },
            Ok(()) => KeychainError::Failed {
                detail: "the keychain store was not initialised".to_owned(),
            },
        },
        keyring::Error::NoStorageAccess(inner) => classify_no_access(inner.as_ref()),
        keyring::Error::PlatformFailure(inner) => classify_platform_failure(inner.as_ref()),
        // The remaining variants can carry secret bytes (BadEncoding, BadDataFormat) or other
        // entries (Ambiguous), so only a fixed description leaves this function.
        keyring::Error::Ambiguous(_) => KeychainError::Failed {
            detail: "more than one keychain entry matches".to_owned(),
        },
        keyring::Error::BadEncoding(_) | keyring::Error::BadDataFormat(..) => {
            KeychainError::Failed {
                detail: "the keychain entry is not in the expected format".to_owned(),
            }
        }
        keyring::Error::NoEntry => KeychainError::Failed {
            detail: "the keychain entry is missing".to_owned(),
        },
        _ => KeychainError::Failed {
            detail: "the keychain rejected the request".to_owned(),
        },
    }
}

/// A description of a store initialisation error for logs: Ward only ever passes service and entry
/// names to the keychain, so these messages name no secret.
fn platform_detail(err: &keyring::Error) -> String {
    match err {
        keyring::Error::PlatformFailure(inner) | keyring::Error::NoStorageAccess(inner) => {
            inner.to_string()
        }
        other => other.to_string(),
    }
}

#[cfg(all(
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
))]
fn classify_no_access(inner: &(dyn std::error::Error + Send + Sync + 'static)) -> KeychainError {
    use secret_service::Error as SsError;
    match inner.downcast_ref::<SsError>() {
        Some(SsError::Prompt | SsError::PromptDisconnected) => KeychainError::AccessRefused,
        // gnome-keyring answers a write to a locked collection with "no result", and a read with
        // "locked"; both mean the same to a clinician.
        _ => KeychainError::Locked,
    }
}

#[cfg(not(all(
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
)))]
fn classify_no_access(_inner: &(dyn std::error::Error + Send + Sync + 'static)) -> KeychainError {
    // Keychain Services and the Credential Manager report a denied or cancelled prompt this way.
    KeychainError::AccessRefused
}

#[cfg(all(
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
))]
fn classify_platform_failure(
    inner: &(dyn std::error::Error + Send + Sync + 'static),
) -> KeychainError {
    use secret_service::Error as SsError;
    match inner.downcast_ref::<SsError>() {
        Some(SsError::Unavailable) => KeychainError::Unavailable {
            detail: inner.to_string(),
        },
        // The provider vanished after start-up (the daemon was killed or the session ended).
        Some(SsError::Zbus(zbus::Error::MethodError(name, ..)))
            if name.as_str() == "org.freedesktop.DBus.Error.ServiceUnknown" =>
        {
            KeychainError::Unavailable {
                detail: inner.to_string(),
            }
        }
        _ => KeychainError::Failed {
            detail: inner.to_string(),
        },
    }
}

#[cfg(not(all(
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
)))]
fn classify_platform_failure(
    inner: &(dyn std::error::Error + Send + Sync + 'static),
) -> KeychainError {
    KeychainError::Failed {
        detail: inner.to_string(),
    }
}

#[cfg(all(
    test,
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
))]
mod tests {
    use super::*;
    use secret_service::Error as SsError;

    fn no_access(error: SsError) -> keyring::Error {
        keyring::Error::NoStorageAccess(Box::new(error))
    }

    // The live tests in tests/keychain_live.rs show what gnome-keyring answers in each situation;
    // these pin how each Secret Service answer is sorted, including those a test cannot provoke.
    #[test]
    fn secret_service_answers_are_sorted_into_what_a_clinician_can_act_on() {
        assert_eq!(classify(no_access(SsError::Locked)), KeychainError::Locked);
        assert_eq!(
            classify(no_access(SsError::NoResult)),
            KeychainError::Locked
        );
        assert_eq!(
            classify(no_access(SsError::Prompt)),
            KeychainError::AccessRefused
        );
        assert_eq!(
            classify(no_access(SsError::PromptDisconnected)),
            KeychainError::AccessRefused
        );
        assert!(matches!(
            classify(keyring::Error::PlatformFailure(Box::new(
                SsError::Unavailable
            ))),
            KeychainError::Unavailable { .. }
        ));
        assert!(matches!(
            classify(keyring::Error::PlatformFailure(Box::new(SsError::Crypto(
                "x"
            )))),
            KeychainError::Failed { .. }
        ));
    }

    #[test]
    fn secret_bytes_never_reach_an_error_message() {
        let secret = b"not-for-logs".to_vec();
        for error in [
            keyring::Error::BadEncoding(secret.clone()),
            keyring::Error::BadDataFormat(secret.clone(), Box::new(SsError::NoResult)),
        ] {
            let classified = classify(error);
            assert!(!format!("{classified} {classified:?}").contains("not-for-logs"));
        }
    }
}
