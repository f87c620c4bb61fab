//! Ward's relay: the delivery service a hospital's IT runs.
//!
//! It enrolls clinicians by one-time invite, keeps the directory of account keys and device
//! credentials, hands out key packages, and keeps one ordered log per group, in which a commit is
//! accepted only for the group's current epoch. It stores and forwards ciphertext and must never
//! be able to read it: no content, names of care teams or patient tags ever reach it, and its logs
//! and metrics carry opaque ids and counts only.

pub mod admin;
pub mod api;
pub mod backup;
pub mod blobs;
pub mod config;
pub mod request;
pub mod serve;
pub mod sqlite_store;
pub mod store;
pub mod tls;

#[doc(hidden)]
pub mod fuzzing;
