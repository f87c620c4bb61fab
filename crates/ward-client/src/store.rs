//! The encrypted history store: one SQLCipher file per profile.
//!
//! The key is 32 random bytes passed as a raw key, so opening costs no KDF; it comes from the
//! keychain and is never written anywhere else. Opening verifies the key and the file's page HMACs
//! before it changes anything, so a wrong key or a damaged file leaves the file exactly as it was.

use std::fmt;
use std::fs::OpenOptions;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use ward_core::secret::{Secret32, SECRET_LEN};
use zeroize::Zeroizing;

/// Length in bytes of a store key.
pub const STORE_KEY_LEN: usize = SECRET_LEN;

/// The schema migrations, in order; the schema version of a store is the number it has applied.
/// A released migration is never edited: a change to the schema is a new entry at the end.
const MIGRATIONS: &[&str] = &[
    // 1: settings that belong to this device and profile, such as the notification level.
    "CREATE TABLE device_setting (
        name  TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
    ) STRICT;",
    // 2: the account, its MLS state, contacts, conversations, messages, attachments and the outbox.
    // Rows that hold keys (mls_state, attachment.file_key) are as safe as the file: SQLCipher.
    "CREATE TABLE account (
        singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
        relay_url   TEXT NOT NULL,
        user_id     BLOB NOT NULL,
        device_id   BLOB NOT NULL,
        name        TEXT NOT NULL,
        role        TEXT NOT NULL,
        credential  BLOB NOT NULL,
        enrolled    INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE mls_state (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        state     BLOB NOT NULL
    ) STRICT;
    CREATE TABLE contact (
        user_id      BLOB PRIMARY KEY NOT NULL,
        name         TEXT NOT NULL,
        role         TEXT NOT NULL,
        account_key  BLOB NOT NULL,
        verified_key BLOB
    ) STRICT;
    CREATE TABLE contact_device (
        device_id  BLOB PRIMARY KEY NOT NULL,
        user_id    BLOB NOT NULL REFERENCES contact (user_id),
        credential BLOB NOT NULL
    ) STRICT;
    CREATE TABLE conversation (
        group_id      BLOB PRIMARY KEY NOT NULL,
        name          TEXT NOT NULL,
        patient_tag   TEXT,
        direct        INTEGER NOT NULL,
        active        INTEGER NOT NULL,
        cursor        INTEGER NOT NULL,
        last_activity INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE conversation_member (
        group_id BLOB NOT NULL REFERENCES conversation (group_id),
        user_id  BLOB NOT NULL,
        PRIMARY KEY (group_id, user_id)
    ) STRICT;
    CREATE TABLE message (
        id            INTEGER PRIMARY KEY,
        group_id      BLOB NOT NULL REFERENCES conversation (group_id),
        sender_user   BLOB NOT NULL,
        sender_device BLOB NOT NULL,
        client_id     BLOB NOT NULL,
        sequence      INTEGER,
        kind          TEXT NOT NULL,
        body          TEXT NOT NULL,
        status        TEXT NOT NULL,
        at            INTEGER NOT NULL,
        displayed     INTEGER NOT NULL DEFAULT 0,
        edited        INTEGER NOT NULL DEFAULT 0,
        deleted       INTEGER NOT NULL DEFAULT 0,
        UNIQUE (group_id, sender_user, client_id)
    ) STRICT;
    CREATE INDEX message_in_order ON message (group_id, sequence);
    CREATE INDEX message_undisplayed ON message (displayed) WHERE displayed = 0;
    CREATE TABLE attachment (
        message_id        INTEGER PRIMARY KEY NOT NULL REFERENCES message (id),
        blob_id           BLOB NOT NULL,
        file_key          BLOB NOT NULL,
        ciphertext_sha256 BLOB NOT NULL,
        size              INTEGER NOT NULL,
        media_type        TEXT NOT NULL,
        name              TEXT NOT NULL,
        stored            INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE outbox (
        id         INTEGER PRIMARY KEY,
        group_id   BLOB NOT NULL,
        is_commit  INTEGER NOT NULL,
        send_id    BLOB NOT NULL UNIQUE,
        epoch      INTEGER NOT NULL,
        body       BLOB NOT NULL,
        added      BLOB NOT NULL,
        removed    BLOB NOT NULL,
        welcome    BLOB,
        intent     TEXT NOT NULL,
        message_id INTEGER REFERENCES message (id)
    ) STRICT;
    CREATE TABLE refused_entry (
        group_id BLOB NOT NULL,
        sequence INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        PRIMARY KEY (group_id, sequence)
    ) STRICT;",
    // 3: a contact's account key that changed after it was first seen stays flagged until the
    // clinician verifies the new one.
    "ALTER TABLE contact ADD COLUMN key_changed INTEGER NOT NULL DEFAULT 0;",
    // 4: what the relay accepted is kept for a while, so it can be sent again after the relay is
    // restored from a backup; local sequences get an offset so the relay's renumbering after a
    // restore sorts after what was shown before, and `resync` marks conversations whose next
    // entries may repeat what this device already applied.
    "CREATE TABLE sent_log (
        id         INTEGER PRIMARY KEY,
        group_id   BLOB NOT NULL,
        is_commit  INTEGER NOT NULL,
        send_id    BLOB NOT NULL UNIQUE,
        epoch      INTEGER NOT NULL,
        body       BLOB NOT NULL,
        added      BLOB NOT NULL,
        removed    BLOB NOT NULL,
        welcome    BLOB,
        message_id INTEGER,
        sent_at    INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX sent_log_by_age ON sent_log (sent_at);
    ALTER TABLE conversation ADD COLUMN resync INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE conversation ADD COLUMN sequence_offset INTEGER NOT NULL DEFAULT 0;",
    // 5: unread messages, counted per conversation for the list; and a full-text index over
    // message text. The index lives in this encrypted file like the messages it points at, and
    // triggers keep it in step with every insert, edit, delete and retention sweep.
    "ALTER TABLE message ADD COLUMN unread INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX message_unread ON message (group_id) WHERE unread = 1;
    CREATE VIRTUAL TABLE message_search USING fts5(
        body, content = 'message', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2'
    );
    INSERT INTO message_search (rowid, body) SELECT id, body FROM message WHERE kind = 'text';
    CREATE TRIGGER message_search_insert AFTER INSERT ON message WHEN new.kind = 'text' BEGIN
        INSERT INTO message_search (rowid, body) VALUES (new.id, new.body);
    END;
    CREATE TRIGGER message_search_delete AFTER DELETE ON message WHEN old.kind = 'text' BEGIN
        INSERT INTO message_search (message_search, rowid, body) VALUES ('delete', old.id, old.body);
    END;
    CREATE TRIGGER message_search_update AFTER UPDATE OF body ON message WHEN old.kind = 'text' BEGIN
        INSERT INTO message_search (message_search, rowid, body) VALUES ('delete', old.id, old.body);
        INSERT INTO message_search (rowid, body) VALUES (new.id, new.body);
    END;",
    // 6: the furthest receipt this device has sent for a received message: NULL, 'delivered' or
    // 'read'. History from before receipts is taken as read, so an upgrade sends no flood.
    "ALTER TABLE message ADD COLUMN receipt TEXT;
    UPDATE message SET receipt = 'read' WHERE status = 'received';
    CREATE INDEX message_receipt ON message (group_id)
        WHERE status = 'received' AND receipt IS NULL;",
];

/// Saves a device setting on `connection`, which may be a transaction that must include it.
pub(crate) fn write_setting(
    connection: &Connection,
    name: &str,
    value: &str,
) -> Result<(), StoreError> {
    connection.execute(
        "INSERT INTO device_setting (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (name, value),
    )?;
    Ok(())
}

/// The newest schema version this build understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The raw SQLCipher key of one store. It is zeroized on drop and never printed.
pub struct StoreKey(Secret32);

impl StoreKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<Self, StoreError> {
        Secret32::generate()
            .map(Self)
            .map_err(|_| StoreError::NoRandomness)
    }

    /// A key from the bytes kept in the keychain; `None` unless there are exactly 32 of them.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        Secret32::from_slice(bytes).map(Self)
    }

    /// The key bytes, for handing to the keychain.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    fn pragma(&self) -> Zeroizing<String> {
        let hex = Zeroizing::new(hex::encode(self.as_bytes()));
        Zeroizing::new(format!("PRAGMA key = \"x'{}'\";", hex.as_str()))
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey(<redacted>)")
    }
}

/// Why the store could not be created or opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key does not decrypt the file: it is the wrong key, or the file is not a Ward store.
    #[error("the key does not open this history file")]
    KeyRejected,
    /// SQLCipher's integrity check found pages whose authentication failed.
    #[error("the history file is damaged ({damaged_pages} pages failed their integrity check)")]
    Damaged {
        /// How many problems the integrity check reported.
        damaged_pages: usize,
    },
    /// The file was written by a newer version of Ward.
    #[error(
        "the history file has schema version {found}; this Ward understands up to {supported}"
    )]
    TooNew {
        /// The schema version found in the file.
        found: u32,
        /// The newest schema version this build understands.
        supported: u32,
    },
    /// Creating a store where a file already exists; Ward never overwrites history.
    #[error("a history file already exists")]
    AlreadyExists,
    /// Opening a store whose file does not exist.
    #[error("the history file does not exist")]
    Missing,
    /// SQLite refused to switch the file to write-ahead logging, which durability relies on.
    #[error("the history file could not be switched to write-ahead logging")]
    NoWriteAheadLog,
    /// The operating system could not supply random bytes for a key.
    #[error("the operating system's random number generator failed")]
    NoRandomness,
    /// SQLite or SQLCipher failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file system failed.
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
}

/// An open, unlocked history store.
pub struct Store {
    conn: Connection,
    cipher_version: String,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("cipher_version", &self.cipher_version)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Creates a new store at `path`, which must not exist yet.
    pub fn create(path: &Path, key: &StoreKey) -> Result<Self, StoreError> {
        // create_new makes "never overwrite history" a property of the file system call itself.
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StoreError::AlreadyExists)
            }
            Err(err) => return Err(err.into()),
        }
        Self::open_existing(path, key)
    }

    /// Opens the existing store at `path` with `key`. A wrong key, a damaged file or a file from a
    /// newer Ward is reported before anything is written to it.
    pub fn open(path: &Path, key: &StoreKey) -> Result<Self, StoreError> {
        if !path.try_exists()? {
            return Err(StoreError::Missing);
        }
        Self::open_existing(path, key)
    }

    fn open_existing(path: &Path, key: &StoreKey) -> Result<Self, StoreError> {
        // Without SQLITE_OPEN_CREATE, a file that vanished in between is an error, not a new store.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.execute_batch(key.pragma().as_str())?;

        // The first read decrypts page 1; with a wrong key it fails before anything is written.
        let schema_version: u32 = match conn.query_row("PRAGMA user_version", [], |row| row.get(0))
        {
            Ok(version) => version,
            Err(err) if is_not_a_database(&err) => return Err(StoreError::KeyRejected),
            Err(err) => return Err(err.into()),
        };
        let mut check = conn.prepare("PRAGMA cipher_integrity_check")?;
        let damaged_pages = check.query_map([], |_| Ok(()))?.count();
        drop(check);
        if damaged_pages > 0 {
            return Err(StoreError::Damaged { damaged_pages });
        }
        if schema_version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found: schema_version,
                supported: SCHEMA_VERSION,
            });
        }

        // Deleted rows are overwritten with zeros rather than left in free pages.
        conn.pragma_update(None, "secure_delete", "ON")?;
        let journal: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !journal.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NoWriteAheadLog);
        }
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let cipher_version: String = conn
            .query_row("PRAGMA cipher_version", [], |row| row.get(0))
            .optional()?
            .unwrap_or_default();

        let mut store = Self {
            conn,
            cipher_version,
        };
        store.migrate(schema_version)?;
        Ok(store)
    }

    fn migrate(&mut self, from: u32) -> Result<(), StoreError> {
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", index as u32 + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// The SQLCipher version linked into this build, such as "4.6.1 community".
    pub fn cipher_version(&self) -> &str {
        &self.cipher_version
    }

    /// The SQLite connection, for the history queries in this crate.
    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The SQLite connection, for transactions in this crate.
    pub(crate) fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The schema version of the open store.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))?)
    }

    /// Saves a device setting.
    pub fn set_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        write_setting(&self.conn, name, value)
    }

    /// Deletes messages from before `cutoff` (seconds since the epoch) with their attachment
    /// rows, except those still waiting to be sent. Returns how many went and the blob ids whose
    /// ciphertext the caller deletes next.
    pub fn delete_messages_before(
        &mut self,
        cutoff: i64,
    ) -> Result<(usize, Vec<Vec<u8>>), StoreError> {
        let tx = self.conn.transaction()?;
        let old = "SELECT id FROM message WHERE at < ?1 AND status != 'sending'
                   AND id NOT IN (SELECT message_id FROM outbox WHERE message_id IS NOT NULL)";
        let blobs: Vec<Vec<u8>> = {
            let mut statement = tx.prepare(&format!(
                "SELECT blob_id FROM attachment WHERE message_id IN ({old})"
            ))?;
            let rows = statement.query_map([cutoff], |row| row.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        tx.execute(
            &format!("DELETE FROM attachment WHERE message_id IN ({old})"),
            [cutoff],
        )?;
        let deleted = tx.execute(
            &format!("DELETE FROM message WHERE id IN ({old})"),
            [cutoff],
        )?;
        tx.commit()?;
        Ok((deleted, blobs))
    }

    /// Reads a device setting.
    pub fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM device_setting WHERE name = ?1",
                [name],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Removes a device setting. Returns whether it existed.
    pub fn delete_setting(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM device_setting WHERE name = ?1", [name])?
            > 0)
    }
}

fn is_not_a_database(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::NotADatabase
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_of_a_key_is_redacted() {
        let key = StoreKey::from_slice(&[0xAB; STORE_KEY_LEN]).unwrap();
        assert_eq!(format!("{key:?}"), "StoreKey(<redacted>)");
        assert_eq!(format!("{key:#?}"), "StoreKey(<redacted>)");
    }

    #[test]
    fn keys_of_the_wrong_length_are_refused() {
        assert!(StoreKey::from_slice(&[1; 31]).is_none());
        assert!(StoreKey::from_slice(&[1; 33]).is_none());
        assert!(StoreKey::from_slice(&[]).is_none());
    }

    #[test]
    fn generated_keys_differ() {
        let a = StoreKey::generate().unwrap();
        let b = StoreKey::generate().unwrap();
        assert_ne!(a.as_bytes(), b.as_bytes());
        assert_eq!(a.as_bytes().len(), STORE_KEY_LEN);
    }

    #[test]
    fn the_key_pragma_is_a_raw_key() {
        let key = StoreKey::from_slice(&[0x0F; STORE_KEY_LEN]).unwrap();
        let pragma = key.pragma();
        assert_eq!(
            pragma.as_str(),
            format!("PRAGMA key = \"x'{}'\";", "0f".repeat(STORE_KEY_LEN))
        );
    }

    #[test]
    fn retention_deletes_old_messages_and_their_attachments_but_never_unsent_ones() {
        let dir = tempfile::tempdir().unwrap();
        let key = StoreKey::generate().unwrap();
        let mut store = Store::create(&dir.path().join("ward.db"), &key).unwrap();
        store
            .conn
            .execute_batch(
                "INSERT INTO conversation (group_id, name, direct, active, cursor, last_activity)
                     VALUES (x'01', 'Ward 7', 0, 1, 0, 0);
                 INSERT INTO message (id, group_id, sender_user, sender_device, client_id, kind,
                                      body, status, at)
                 VALUES (1, x'01', x'aa', x'bb', x'01', 'text', 'old', 'sent', 100),
                        (2, x'01', x'aa', x'bb', x'02', 'attachment', 'old.pdf', 'sent', 100),
                        (3, x'01', x'aa', x'bb', x'03', 'text', 'old, unsent', 'sending', 100),
                        (4, x'01', x'aa', x'bb', x'04', 'text', 'old, queued', 'failed', 100),
                        (5, x'01', x'aa', x'bb', x'05', 'text', 'new', 'sent', 900);
                 INSERT INTO attachment (message_id, blob_id, file_key, ciphertext_sha256, size,
                                         media_type, name, stored)
                 VALUES (2, x'b10b', x'00', x'00', 1, 'application/pdf', 'old.pdf', 1);
                 INSERT INTO outbox (group_id, is_commit, send_id, epoch, body, added, removed,
                                     intent, message_id)
                 VALUES (x'01', 0, x'5e', 1, x'00', x'', x'', 'message', 4);",
            )
            .unwrap();
        let (deleted, blobs) = store.delete_messages_before(500).unwrap();
        assert_eq!(deleted, 2);
        assert_eq!(blobs, vec![vec![0xb1, 0x0b]]);
        let left: Vec<String> = store
            .conn
            .prepare("SELECT body FROM message ORDER BY id")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(left, ["old, unsent", "old, queued", "new"]);
        let attachments: i64 = store
            .conn
            .query_row("SELECT count(*) FROM attachment", [], |row| row.get(0))
            .unwrap();
        assert_eq!(attachments, 0);
    }

    #[test]
    fn settings_round_trip_and_migrations_record_their_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ward.db");
        let key = StoreKey::generate().unwrap();
        let store = Store::create(&path, &key).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        assert!(store.cipher_version().contains("community"));
        assert_eq!(store.setting("notifications").unwrap(), None);
        store.set_setting("notifications", "generic").unwrap();
        store.set_setting("notifications", "sender").unwrap();
        assert_eq!(
            store.setting("notifications").unwrap().as_deref(),
            Some("sender")
        );
        assert!(store.delete_setting("notifications").unwrap());
        assert!(!store.delete_setting("notifications").unwrap());
    }

    #[test]
    fn create_never_overwrites_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ward.db");
        std::fs::write(&path, b"someone else's bytes").unwrap();
        let key = StoreKey::generate().unwrap();
        assert!(matches!(
            Store::create(&path, &key),
            Err(StoreError::AlreadyExists)
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"someone else's bytes");
    }

    #[test]
    fn open_does_not_create_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ward.db");
        let key = StoreKey::generate().unwrap();
        assert!(matches!(Store::open(&path, &key), Err(StoreError::Missing)));
        assert!(!path.exists());
    }
}
