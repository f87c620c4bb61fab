//! The admin subcommands hospital IT runs on the relay host: invites, users, devices, status.
//! Each works on the same SQLite file as a running relay (WAL lets both at once).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::rand::SecureRandom;
use ward_proto::{DeviceId, UserId};

use crate::store::{NewInvite, RelayStore, StoreError};

/// Crockford's base32: no I, L, O or U, so a code read over the phone is not misheard.
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// What went wrong in an admin command; shown to IT as is.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Randomness,
    /// An id on the command line is not 32 hex digits.
    #[error("{0} is not an id (32 hex digits, as `ward-relay user list` shows them)")]
    BadId(String),
    /// Nothing has that id.
    #[error("no {what} has the id {id}")]
    NotFound {
        /// Invite, user or device.
        what: &'static str,
        /// The id given.
        id: String,
    },
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// Creates an invite and returns its code, `XXXX-XXXX-XXXX-XXXX` (80 random bits).
pub fn create_invite(
    store: &dyn RelayStore,
    name: &str,
    role: &str,
    lifetime: Duration,
) -> Result<String, AdminError> {
    let rng = ring::rand::SystemRandom::new();
    let mut random = [0u8; 16];
    rng.fill(&mut random).map_err(|_| AdminError::Randomness)?;
    let code: String = random
        .iter()
        .map(|byte| char::from(CODE_ALPHABET[usize::from(byte & 31)]))
        .collect::<Vec<_>>()
        .chunks(4)
        .map(|group| group.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-");
    let mut code_hash = [0u8; 32];
    code_hash
        .copy_from_slice(ring::digest::digest(&ring::digest::SHA256, code.as_bytes()).as_ref());
    let mut id = [0u8; 4];
    rng.fill(&mut id).map_err(|_| AdminError::Randomness)?;
    store.create_invite(&NewInvite {
        id: hex::encode(id),
        code_hash,
        name: name.to_owned(),
        role: role.to_owned(),
        expires_at: now().saturating_add(lifetime.as_secs()),
    })?;
    Ok(code)
}

/// The invites, one per line: id, state, expiry, role and name.
pub fn list_invites(store: &dyn RelayStore) -> Result<String, AdminError> {
    let now = now();
    let mut out = String::new();
    for invite in store.list_invites()? {
        let state = if invite.used {
            "used"
        } else if invite.revoked {
            "revoked"
        } else if invite.expires_at <= now {
            "expired"
        } else {
            "open"
        };
        let _ = writeln!(
            out,
            "{}\t{state}\texpires {}\t{}\t{}",
            invite.id, invite.expires_at, invite.role, invite.name
        );
    }
    Ok(out)
}

/// Revokes an unused invite.
pub fn revoke_invite(store: &dyn RelayStore, id: &str) -> Result<(), AdminError> {
    if store.revoke_invite(id)? {
        Ok(())
    } else {
        Err(AdminError::NotFound {
            what: "unused invite",
            id: id.to_owned(),
        })
    }
}

/// The users, one per line with their devices: id, state, role, name.
pub fn list_users(store: &dyn RelayStore) -> Result<String, AdminError> {
    let mut out = String::new();
    for user in store.users()? {
        let state = if user.disabled { "disabled" } else { "active" };
        let _ = writeln!(
            out,
            "{}\t{state}\t{}\t{}",
            hex::encode(user.user.as_bytes()),
            user.role,
            user.name
        );
        for device in user.devices {
            let state = if device.revoked { "revoked" } else { "active" };
            let _ = writeln!(
                out,
                "  device {}\t{state}",
                hex::encode(device.device.as_bytes())
            );
        }
    }
    Ok(out)
}

fn parse_id(text: &str) -> Result<[u8; 16], AdminError> {
    hex::decode(text.trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| AdminError::BadId(text.to_owned()))
}

/// Disables a user: none of their devices can connect any more.
pub fn disable_user(store: &dyn RelayStore, id: &str) -> Result<(), AdminError> {
    if store.disable_user(&UserId(parse_id(id)?))? {
        Ok(())
    } else {
        Err(AdminError::NotFound {
            what: "user",
            id: id.to_owned(),
        })
    }
}

/// Revokes one device, for a lost or stolen machine.
pub fn revoke_device(store: &dyn RelayStore, id: &str) -> Result<(), AdminError> {
    if store.revoke_device(&DeviceId(parse_id(id)?))? {
        Ok(())
    } else {
        Err(AdminError::NotFound {
            what: "device",
            id: id.to_owned(),
        })
    }
}

/// A short health summary: counts only, the schema version, and the store's generation (which
/// changes with each restore from a backup).
pub fn status(store: &dyn RelayStore, schema_version: i64) -> Result<String, AdminError> {
    let counts = store.counts()?;
    Ok(format!(
        "store: ok\nschema version: {schema_version}\ngeneration: {}\nusers: {}\ndevices: {}\n\
         groups: {}\nqueued log entries: {}\none-time key packages: {}\nopen invites: {}\n",
        hex::encode(store.generation()?),
        counts.users,
        counts.devices,
        counts.groups,
        counts.log_entries,
        counts.key_packages,
        counts.open_invites
    ))
}
