//! The IO around Ward's protocol core: the OS keychain, the SQLCipher history store, opening a
//! clinician's profile from the two, the relay connection ([`relay_client`]) and sync
//! ([`client`]).
//!
//! Both the desktop app and the headless CLI stand on this crate, so every rule about where secrets
//! may live is enforced here once. Keys live only in the OS keychain ([`keychain`]); history lives
//! only in an encrypted SQLCipher file ([`store`]); [`profile`] opens the two together and refuses,
//! rather than guesses, whenever they disagree. This crate must never write a key to a file, fall
//! back to an unencrypted store, or touch an existing history file it cannot open.

pub mod attachment_file;
pub mod client;
pub mod ecg;
pub mod history;
pub mod keychain;
pub mod live_sync;
pub mod notification;
pub mod pinned_tls;
pub mod policy;
pub mod profile;
pub mod relay_client;
pub mod store;

#[doc(hidden)]
pub mod fuzzing;

pub use client::{Client, ClientError, SyncReport};
pub use keychain::{Keychain, KeychainError};
pub use policy::{EffectiveSettings, Policy, PolicyError};
pub use profile::{open_profile, OpenError, OpenedProfile, ProfileDir, ProfileId};
pub use store::{Store, StoreError, StoreKey};
