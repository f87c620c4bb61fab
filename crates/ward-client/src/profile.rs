//! A clinician's profile: a data folder holding the encrypted store, and the keychain entries that
//! unlock it.
//!
//! Opening is ordered so that failure leaves no trace: the keychain is checked before the disk is
//! touched, the store key is safely in the keychain before a store exists to need it, and an
//! existing store is never created anew, whatever is missing.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::keychain::{Keychain, KeychainError, KEYCHAIN_SERVICE};
use crate::store::{Store, StoreError, StoreKey};

/// The store's file name inside a profile folder.
pub const STORE_FILE: &str = "ward.db";
/// The file naming the profile's keychain namespace. It holds no secret.
pub const PROFILE_ID_FILE: &str = "profile-id";
/// The keychain entry holding the store key.
const STORE_KEY_ENTRY: &str = "store-key";
/// The folder under the user's data directory that holds the default profile.
const DEFAULT_FOLDER: &str = "org.ward.desktop";

/// A profile's data folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileDir {
    root: PathBuf,
}

impl ProfileDir {
    /// The profile kept in `root`. A relative path is taken from the current directory, so the
    /// profile stays the same if the process later changes directory.
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        let root = if root.is_absolute() {
            root
        } else {
            std::env::current_dir()?.join(root)
        };
        Ok(Self { root })
    }

    /// The default profile in the user's data directory, such as
    /// `~/.local/share/org.ward.desktop/profile` on Linux.
    pub fn default_location() -> Option<Self> {
        let base = dirs::data_local_dir()?;
        Some(Self {
            root: base.join(DEFAULT_FOLDER).join("profile"),
        })
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the encrypted store lives.
    pub fn store_path(&self) -> PathBuf {
        self.root.join(STORE_FILE)
    }

    fn id_path(&self) -> PathBuf {
        self.root.join(PROFILE_ID_FILE)
    }

    fn read_id(&self) -> Result<Option<ProfileId>, OpenError> {
        match fs::read_to_string(self.id_path()) {
            Ok(text) => ProfileId::parse(text.trim())
                .map(Some)
                .ok_or(OpenError::ProfileDamaged),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(OpenError::Io(err)),
        }
    }

    fn create_folder(&self) -> std::io::Result<()> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&self.root)
    }

    /// Writes the id through a temporary file and a rename, so a crash leaves the old id or the
    /// new one, never half of one.
    fn write_id(&self, id: &ProfileId) -> std::io::Result<()> {
        let temporary = self.root.join(format!("{PROFILE_ID_FILE}.tmp"));
        let mut file = fs::File::create(&temporary)?;
        file.write_all(id.as_str().as_bytes())?;
        file.sync_all()?;
        fs::rename(&temporary, self.id_path())
    }
}

/// The random name of a profile's keychain namespace: 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileId(String);

impl ProfileId {
    /// A fresh random id.
    pub fn generate() -> Result<Self, OpenError> {
        let mut bytes = [0u8; 16];
        ward_core::crypto::fill_random(&mut bytes)
            .map_err(|_| OpenError::Store(StoreError::NoRandomness))?;
        Ok(Self(hex::encode(bytes)))
    }

    /// Parses an id; `None` unless it is 32 lowercase hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        let valid = text.len() == 32
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| Self(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A profile whose store is open.
#[derive(Debug)]
pub struct OpenedProfile {
    /// The unlocked store.
    pub store: Store,
    /// The profile's keychain namespace.
    pub id: ProfileId,
    /// Whether this call created the store (the profile's first run).
    pub created: bool,
}

/// Why a profile could not be opened. Nothing on disk was changed when one of these is returned,
/// except for the first-run folder when the error came after the key was safely stored.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The keychain could not be used.
    #[error(transparent)]
    Keychain(#[from] KeychainError),
    /// A store exists but the keychain has no key for it.
    #[error("the key for this profile's history is not in the keychain")]
    KeyMissing,
    /// The keychain entry for the store key does not hold a key.
    #[error("the keychain entry for this profile's history is not a key")]
    KeyMalformed,
    /// The profile folder's id file is unreadable, so its keychain entries cannot be found.
    #[error("the profile folder's id file is damaged")]
    ProfileDamaged,
    /// The store could not be created or opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The profile folder could not be read or written.
    #[error("the profile folder could not be used: {0}")]
    Io(#[from] std::io::Error),
}

impl OpenError {
    /// What went wrong and what to do about it, in words for a clinician.
    pub fn advice(&self) -> &'static str {
        match self {
            OpenError::Keychain(KeychainError::Unavailable { .. }) => {
                "Ward can't reach this computer's keychain, where it keeps your encryption keys. \
                 Sign out of the computer and back in. If this message stays, ask IT to check that \
                 the keychain service (GNOME Keyring or KWallet) is running."
            }
            OpenError::Keychain(KeychainError::Locked) => {
                "This computer's keychain is locked, so Ward can't get your encryption keys. \
                 Unlock it (usually by signing in to the computer again), then choose Try again."
            }
            OpenError::Keychain(KeychainError::AccessRefused) => {
                "Ward could not open this computer's keychain, where it keeps your encryption keys: \
                 the request to unlock it, or to allow Ward, was dismissed. Choose Try again, then \
                 unlock the keychain or allow Ward when the computer asks."
            }
            OpenError::Keychain(KeychainError::Failed { .. }) => {
                "This computer's keychain reported an error, so Ward can't get your encryption \
                 keys. Choose Try again. If it happens again, ask IT for help."
            }
            OpenError::KeyMissing => {
                "The key that unlocks your message history on this computer is not in the \
                 keychain. Ward has not changed anything. If the keychain is locked, unlock it and \
                 choose Try again; otherwise ask IT for help, and do not delete Ward's folder."
            }
            OpenError::KeyMalformed | OpenError::ProfileDamaged => {
                "Ward's key for your message history on this computer is damaged. Ward has not \
                 changed anything. Ask IT for help, and do not delete Ward's folder."
            }
            OpenError::Store(StoreError::KeyRejected) => {
                "The key in this computer's keychain does not open your message history. Ward has \
                 not changed anything. Ask IT for help, and do not delete Ward's folder."
            }
            OpenError::Store(StoreError::Damaged { .. }) => {
                "Your message history file on this computer is damaged. Ward has not changed it. \
                 Ask IT for help, and do not delete Ward's folder."
            }
            OpenError::Store(StoreError::TooNew { .. }) => {
                "Your message history was saved by a newer version of Ward. Ask IT to update Ward \
                 on this computer."
            }
            OpenError::Store(_) | OpenError::Io(_) => {
                "Ward could not read or write its folder on this computer. Check that the disk is \
                 not full, then choose Try again. If it happens again, ask IT for help."
            }
        }
    }
}

/// Opens the profile in `dir`, creating it on first run, with keys under Ward's keychain service.
pub fn open_profile(dir: &ProfileDir) -> Result<OpenedProfile, OpenError> {
    open_profile_with_service(dir, KEYCHAIN_SERVICE)
}

/// [`open_profile`] with the keychain entries under another service name, so tests never touch a
/// real Ward entry.
pub fn open_profile_with_service(
    dir: &ProfileDir,
    service: &str,
) -> Result<OpenedProfile, OpenError> {
    Keychain::check_available()?;

    let store_path = dir.store_path();
    let store_exists = store_path.try_exists()?;
    let (id, id_saved) = match dir.read_id()? {
        Some(id) => (id, true),
        // Without its id, an existing store's key cannot be found; a new id would orphan it.
        None if store_exists => return Err(OpenError::KeyMissing),
        None => (ProfileId::generate()?, false),
    };
    let keychain = Keychain::with_service(service, &id);
    let stored_key = keychain.read_secret(STORE_KEY_ENTRY)?;

    if store_exists {
        let bytes = stored_key.ok_or(OpenError::KeyMissing)?;
        let key = StoreKey::from_slice(&bytes).ok_or(OpenError::KeyMalformed)?;
        let store = Store::open(&store_path, &key)?;
        return Ok(OpenedProfile {
            store,
            id,
            created: false,
        });
    }

    // No store yet: a first run, or one interrupted after the key was stored. With no history to
    // lose, a key that is there is reused and a malformed one replaced.
    let key = match stored_key
        .as_deref()
        .and_then(|bytes| StoreKey::from_slice(bytes))
    {
        Some(key) => key,
        None => store_new_key(&keychain)?,
    };
    dir.create_folder()?;
    if !id_saved {
        dir.write_id(&id)?;
    }
    let store = Store::create(&store_path, &key)?;
    Ok(OpenedProfile {
        store,
        id,
        created: true,
    })
}

/// Makes a key and stores it, then reads it back: a keychain that accepts a key and does not keep
/// it would make the history unreadable at the next start.
fn store_new_key(keychain: &Keychain) -> Result<StoreKey, OpenError> {
    let key = StoreKey::generate()?;
    keychain.write_secret(STORE_KEY_ENTRY, key.as_bytes())?;
    let kept = keychain.read_secret(STORE_KEY_ENTRY)?;
    if kept.as_deref().map(Vec::as_slice) != Some(key.as_bytes()) {
        return Err(OpenError::Keychain(KeychainError::Failed {
            detail: "the keychain did not keep the new key".to_owned(),
        }));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_ids_are_32_lowercase_hex_digits() {
        let id = ProfileId::generate().unwrap();
        assert_eq!(ProfileId::parse(id.as_str()), Some(id.clone()));
        assert_ne!(ProfileId::generate().unwrap(), id);
        assert!(ProfileId::parse("0123456789abcdef0123456789abcdef").is_some());
        assert!(ProfileId::parse("0123456789ABCDEF0123456789ABCDEF").is_none());
        assert!(ProfileId::parse("0123456789abcdef").is_none());
        assert!(ProfileId::parse("../../etc/passwd/0123456789abcdef").is_none());
    }

    #[test]
    fn relative_data_dirs_are_made_absolute() {
        let dir = ProfileDir::new("some/profile").unwrap();
        assert!(dir.root().is_absolute());
        assert!(dir.store_path().ends_with("some/profile/ward.db"));
    }

    #[test]
    fn every_error_has_advice_that_says_what_to_do() {
        let errors = [
            OpenError::Keychain(KeychainError::Unavailable {
                detail: String::new(),
            }),
            OpenError::Keychain(KeychainError::Locked),
            OpenError::Keychain(KeychainError::AccessRefused),
            OpenError::Keychain(KeychainError::Failed {
                detail: String::new(),
            }),
            OpenError::KeyMissing,
            OpenError::KeyMalformed,
            OpenError::ProfileDamaged,
            OpenError::Store(StoreError::KeyRejected),
            OpenError::Store(StoreError::Damaged { damaged_pages: 1 }),
            OpenError::Store(StoreError::TooNew {
                found: 9,
                supported: 1,
            }),
            OpenError::Io(std::io::Error::other("disk full")),
        ];
        for error in errors {
            let advice = error.advice();
            assert!(
                advice.contains("Try again") || advice.contains("IT"),
                "{advice}"
            );
        }
    }
}
