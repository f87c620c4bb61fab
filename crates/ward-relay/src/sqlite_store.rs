//! The embedded store: one SQLite file in WAL mode, synchronous=FULL, so every acknowledged
//! append is on disk before the relay answers. Application messages are group-committed: one
//! writer thread takes every append waiting at that moment into one transaction, so a hundred
//! concurrent senders share one fsync instead of queueing for a hundred. Schema changes are migrations numbered by
//! `user_version`; a file from a newer relay is refused, never modified.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use ward_proto::{DeviceId, GroupId, UserId};

use crate::store::{
    AppendDone, Appended, CommitUpload, Counts, DeviceRecord, EnrollError, Enrollment, EntryKind,
    InviteRecord, LogEntry, MessageUpload, NewInvite, PendingWelcome, RelayStore, StoreError,
    Timestamp, UserRecord,
};

/// The group-commit writer: takes every append waiting, runs them in one transaction (a refused
/// append writes nothing, so it does not disturb the others), commits once, then answers them
/// all. It ends when
/// the store is dropped.
fn group_commit_loop(connection: &Mutex<Connection>, jobs: &Receiver<AppendJob>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP_COMMIT {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let outcomes = commit_batch(connection, &batch);
        for (job, outcome) in batch.into_iter().zip(outcomes) {
            match job.answer {
                // A sender that went away (its request timed out) needs no answer.
                Answer::Blocking(answer) => {
                    let _ = answer.send(outcome);
                }
                Answer::Callback(done) => done(outcome),
            }
        }
    }
}

fn commit_batch(
    connection: &Mutex<Connection>,
    batch: &[AppendJob],
) -> Vec<Result<Appended, StoreError>> {
    let failed = |error: StoreError| batch.iter().map(|_| Err(error.clone())).collect();
    let Ok(mut connection) = connection.lock() else {
        return failed(StoreError::Database(
            "the store lock was poisoned".to_owned(),
        ));
    };
    let transaction = match connection.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(transaction) => transaction,
        Err(error) => return failed(db(error)),
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in batch {
        // A refusal (a stranger, a revoked device, a repeat) is decided before anything is
        // written, so it needs no savepoint; a failing write fails the whole batch, which the
        // dropped transaction rolls back.
        match append_one(&transaction, &job.upload, job.check_allowed) {
            Err(StoreError::Database(reason)) => return failed(StoreError::Database(reason)),
            outcome => outcomes.push(outcome),
        }
    }
    match transaction.commit() {
        Ok(()) => outcomes,
        Err(error) => failed(db(error)),
    }
}

fn append_one(
    t: &Connection,
    upload: &MessageUpload,
    check_allowed: bool,
) -> Result<Appended, StoreError> {
    if check_allowed && !device_allowed(t, &upload.sender)? {
        return Err(StoreError::NotAllowed);
    }
    if let Some(sequence) = already_sent(t, &upload.sender, &upload.send_id)? {
        return Ok(Appended::AlreadyStored { sequence });
    }
    if !is_member(t, &upload.group, &upload.sender)? {
        return Err(StoreError::NotAMember);
    }
    let sequence = insert_entry(
        t,
        &NewEntry {
            group: &upload.group,
            epoch: upload.epoch,
            kind: APPLICATION,
            sender: &upload.sender,
            send_id: &upload.send_id,
            body: &upload.message,
            received_at: upload.received_at,
        },
    )?;
    Ok(Appended::Accepted { sequence })
}

/// Brings the schema up to date; a file from a newer relay is refused, never modified.
pub(crate) fn migrate(connection: &Connection) -> Result<(), StoreError> {
    let version: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(db)?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(StoreError::Database(format!(
            "the database was written by a newer relay (schema {version}); refusing to touch it"
        )));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
        connection.execute_batch(migration).map_err(db)?;
        connection
            .pragma_update(None, "user_version", index + 1)
            .map_err(db)?;
    }
    Ok(())
}

/// Gives a restored database a new generation and drops the one-time key packages, which may
/// have been handed out after the backup was taken (see backup.rs). The file is left in rollback
/// mode with no WAL beside it, so it can be moved into place whole.
pub(crate) fn begin_new_generation(path: &Path) -> Result<(), StoreError> {
    let connection = Connection::open(path).map_err(db)?;
    migrate(&connection)?;
    connection
        .execute_batch(
            "BEGIN IMMEDIATE;
             UPDATE meta SET generation = randomblob(16);
             DELETE FROM key_package WHERE last_resort = 0;
             COMMIT;
             PRAGMA journal_mode = DELETE;",
        )
        .map_err(db)
}

/// Each migration takes the schema from its index to the next version.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE invite (
    id TEXT PRIMARY KEY,
    code_hash BLOB NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE user (
    id BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    account_key BLOB NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE device (
    id BLOB PRIMARY KEY,
    user_id BLOB NOT NULL REFERENCES user(id),
    credential BLOB NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE key_package (
    id INTEGER PRIMARY KEY,
    device_id BLOB NOT NULL REFERENCES device(id),
    body BLOB NOT NULL,
    last_resort INTEGER NOT NULL
);
CREATE INDEX key_package_by_device ON key_package(device_id, last_resort);
CREATE TABLE grp (
    id BLOB PRIMARY KEY,
    epoch INTEGER NOT NULL,
    next_sequence INTEGER NOT NULL
);
-- until_sequence is set when a commit removes the device: it may still read that commit.
CREATE TABLE member (
    group_id BLOB NOT NULL REFERENCES grp(id),
    device_id BLOB NOT NULL,
    cursor INTEGER NOT NULL,
    until_sequence INTEGER,
    PRIMARY KEY (group_id, device_id)
);
CREATE INDEX member_by_device ON member(device_id);
CREATE TABLE entry (
    group_id BLOB NOT NULL REFERENCES grp(id),
    sequence INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    sender BLOB NOT NULL,
    body BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, sequence)
);
CREATE INDEX entry_by_age ON entry(received_at);
-- Outlives the entries it points to, so a retry after deletion is still recognised.
CREATE TABLE sent (
    sender BLOB NOT NULL,
    send_id BLOB NOT NULL,
    group_id BLOB NOT NULL,
    sequence INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (sender, send_id)
);
CREATE TABLE welcome (
    device_id BLOB NOT NULL,
    group_id BLOB NOT NULL,
    after_sequence INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (device_id, group_id)
);
",
    r"
-- A restore from backup gives the store a new generation (see backup.rs).
CREATE TABLE meta (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    generation BLOB NOT NULL
);
INSERT INTO meta (singleton, generation) VALUES (1, randomblob(16));
",
];

const COMMIT: i64 = 1;
const APPLICATION: i64 = 2;

/// The relay's SQLite store.
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
    /// A second connection for the reads every request makes (is this device still allowed?).
    /// In WAL mode it reads the last commit while the writer holds its lock through an fsync.
    /// `None` for an in-memory store, which cannot be opened twice.
    reader: Option<Mutex<Connection>>,
    appends: Mutex<Sender<AppendJob>>,
}

/// One application message waiting for the group commit, and where its answer goes.
struct AppendJob {
    upload: MessageUpload,
    /// Whether the sending device must still be allowed (checked in the same transaction).
    check_allowed: bool,
    answer: Answer,
}

/// Where a group-committed append's outcome goes.
enum Answer {
    /// A caller blocked on a channel.
    Blocking(SyncSender<Result<Appended, StoreError>>),
    /// A callback, for callers that must not block.
    Callback(AppendDone),
}

/// The most appends one group commit takes: enough to share an fsync widely, few enough that a
/// transaction stays short for the readers in between.
const MAX_GROUP_COMMIT: usize = 512;

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

fn db(error: rusqlite::Error) -> StoreError {
    StoreError::Database(error.to_string())
}

fn id16(bytes: Vec<u8>) -> Result<[u8; 16], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Database("a stored id has the wrong length".to_owned()))
}

fn key32(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Database("a stored key has the wrong length".to_owned()))
}

fn seq(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn int(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Database("a number is out of range".to_owned()))
}

impl SqliteStore {
    /// Opens (or creates) `relay.db` in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(e.to_string()))?;
        Self::open_file(&dir.join("relay.db"))
    }

    /// Opens (or creates) the database file at `path`.
    pub fn open_file(path: &Path) -> Result<Self, StoreError> {
        let mut store = Self::from_connection(Connection::open(path).map_err(db)?)?;
        // Opened after the writer has migrated the file.
        let reader = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db)?;
        reader
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        store.reader = Some(Mutex::new(reader));
        Ok(store)
    }

    /// A store in memory, for unit tests of the HTTP layer only.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::from_connection(Connection::open_in_memory().map_err(db)?)
    }

    fn from_connection(connection: Connection) -> Result<Self, StoreError> {
        // WAL lets readers go on during a write; FULL makes each commit durable before the
        // relay acknowledges the send it carries.
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(db)?;
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        migrate(&connection)?;
        let connection = Arc::new(Mutex::new(connection));
        let (appends, jobs) = mpsc::channel();
        let writer = Arc::clone(&connection);
        std::thread::Builder::new()
            .name("ward-relay-group-commit".to_owned())
            .spawn(move || group_commit_loop(&writer, &jobs))
            .map_err(|e| StoreError::Database(e.to_string()))?;
        Ok(Self {
            connection,
            reader: None,
            appends: Mutex::new(appends),
        })
    }

    /// The schema version the file is at.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.lock()?
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(db)
    }

    fn queue(&self, job: AppendJob) -> Result<(), StoreError> {
        self.appends
            .lock()
            .map_err(|_| StoreError::Database("the append queue lock was poisoned".to_owned()))?
            .send(job)
            .map_err(|_| StoreError::Database("the group-commit writer stopped".to_owned()))
    }

    /// The read connection, or the writer's when there is no separate one.
    fn read_lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        match &self.reader {
            Some(reader) => reader
                .lock()
                .map_err(|_| StoreError::Database("the store lock was poisoned".to_owned())),
            None => self.lock(),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.connection
            .lock()
            .map_err(|_| StoreError::Database("the store lock was poisoned".to_owned()))
    }

    fn write<T>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut connection = self.lock()?;
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let value = work(&transaction)?;
        transaction.commit().map_err(db)?;
        Ok(value)
    }
}

fn device_allowed(t: &Connection, device: &DeviceId) -> Result<bool, StoreError> {
    t.prepare_cached(
        "SELECT 1 FROM device JOIN user ON user.id = device.user_id
         WHERE device.id = ?1 AND device.revoked = 0 AND user.disabled = 0",
    )
    .and_then(|mut statement| {
        statement
            .query_row(params![device.as_bytes().as_slice()], |_| Ok(()))
            .optional()
    })
    .map(|found| found.is_some())
    .map_err(db)
}

fn already_sent(
    transaction: &Connection,
    sender: &DeviceId,
    send_id: &[u8; 16],
) -> Result<Option<u64>, StoreError> {
    transaction
        .prepare_cached("SELECT sequence FROM sent WHERE sender = ?1 AND send_id = ?2")
        .and_then(|mut statement| {
            statement
                .query_row(
                    params![sender.as_bytes().as_slice(), send_id.as_slice()],
                    |row| row.get::<_, i64>(0),
                )
                .optional()
        })
        .map(|found| found.map(seq))
        .map_err(db)
}

fn is_member(
    transaction: &Connection,
    group: &GroupId,
    device: &DeviceId,
) -> Result<bool, StoreError> {
    transaction
        .prepare_cached(
            "SELECT 1 FROM member WHERE group_id = ?1 AND device_id = ?2 AND until_sequence IS NULL",
        )
        .and_then(|mut statement| {
            statement
                .query_row(
                    params![group.as_bytes().as_slice(), device.as_bytes().as_slice()],
                    |_| Ok(()),
                )
                .optional()
        })
        .map(|found| found.is_some())
        .map_err(db)
}

/// One entry to append, borrowed from a commit or a message upload.
struct NewEntry<'a> {
    group: &'a GroupId,
    epoch: u64,
    kind: i64,
    sender: &'a DeviceId,
    send_id: &'a [u8; 16],
    body: &'a [u8],
    received_at: Timestamp,
}

/// Appends at the group's next sequence and remembers the send id. Returns the sequence.
fn insert_entry(transaction: &Connection, entry: &NewEntry<'_>) -> Result<u64, StoreError> {
    let NewEntry {
        group,
        epoch,
        kind,
        sender,
        send_id,
        body,
        received_at,
    } = *entry;
    let group_bytes = group.as_bytes().as_slice();
    let (epoch, received_at) = (int(epoch)?, int(received_at)?);
    // Cached statements: these run for every message, and preparing costs more than running.
    let sequence: i64 = transaction
        .prepare_cached(
            "UPDATE grp SET next_sequence = next_sequence + 1 WHERE id = ?1
             RETURNING next_sequence - 1",
        )
        .and_then(|mut statement| statement.query_row(params![group_bytes], |row| row.get(0)))
        .map_err(db)?;
    transaction
        .prepare_cached(
            "INSERT INTO entry (group_id, sequence, epoch, kind, sender, body, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                group_bytes,
                sequence,
                epoch,
                kind,
                sender.as_bytes().as_slice(),
                body,
                received_at
            ])
        })
        .map_err(db)?;
    transaction
        .prepare_cached(
            "INSERT INTO sent (sender, send_id, group_id, sequence, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                sender.as_bytes().as_slice(),
                send_id.as_slice(),
                group_bytes,
                sequence,
                received_at
            ])
        })
        .map_err(db)?;
    Ok(seq(sequence))
}

fn read_user(transaction: &Connection, user: &[u8]) -> Result<UserRecord, StoreError> {
    let (name, role, account_key, disabled) = transaction
        .query_row(
            "SELECT name, role, account_key, disabled FROM user WHERE id = ?1",
            params![user],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                    row.get::<_, bool>(3)?,
                ))
            },
        )
        .map_err(db)?;
    let mut statement = transaction
        .prepare("SELECT id, credential, revoked FROM device WHERE user_id = ?1 ORDER BY rowid")
        .map_err(db)?;
    let rows = statement
        .query_map(params![user], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, bool>(2)?,
            ))
        })
        .map_err(db)?;
    let user_id = UserId(id16(user.to_vec())?);
    let mut devices = Vec::new();
    for row in rows {
        let (device, credential, revoked) = row.map_err(db)?;
        devices.push(DeviceRecord {
            device: DeviceId(id16(device)?),
            user: user_id,
            credential,
            revoked,
        });
    }
    Ok(UserRecord {
        user: user_id,
        name,
        role,
        account_key: key32(account_key)?,
        disabled,
        devices,
    })
}

impl RelayStore for SqliteStore {
    fn create_invite(&self, invite: &NewInvite) -> Result<(), StoreError> {
        self.write(|t| {
            t.execute(
                "INSERT INTO invite (id, code_hash, name, role, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    invite.id,
                    invite.code_hash.as_slice(),
                    invite.name,
                    invite.role,
                    int(invite.expires_at)?
                ],
            )
            .map_err(db)?;
            Ok(())
        })
    }

    fn list_invites(&self) -> Result<Vec<InviteRecord>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection
            .prepare(
                "SELECT id, name, role, expires_at, used, revoked FROM invite ORDER BY rowid DESC",
            )
            .map_err(db)?;
        let rows = statement
            .query_map([], |row| {
                Ok(InviteRecord {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    role: row.get(2)?,
                    expires_at: seq(row.get(3)?),
                    used: row.get(4)?,
                    revoked: row.get(5)?,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    fn revoke_invite(&self, id: &str) -> Result<bool, StoreError> {
        self.write(|t| {
            t.execute(
                "UPDATE invite SET revoked = 1 WHERE id = ?1 AND used = 0",
                params![id],
            )
            .map(|changed| changed > 0)
            .map_err(db)
        })
    }

    fn enroll(&self, enrollment: &Enrollment, now: Timestamp) -> Result<UserRecord, EnrollError> {
        let mut connection = self.lock()?;
        let t = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let invite = t
            .query_row(
                "SELECT id, name, role, expires_at, used, revoked FROM invite WHERE code_hash = ?1",
                params![enrollment.code_hash.as_slice()],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        seq(row.get(3)?),
                        row.get::<_, bool>(4)?,
                        row.get::<_, bool>(5)?,
                    ))
                },
            )
            .optional()
            .map_err(db)?;
        let Some((id, name, role, expires_at, used, revoked)) = invite else {
            return Err(EnrollError::UnknownInvite);
        };
        if used || revoked || now >= expires_at {
            return Err(EnrollError::InviteSpent);
        }
        t.execute("UPDATE invite SET used = 1 WHERE id = ?1", params![id])
            .map_err(db)?;
        let user = enrollment.user.as_bytes().as_slice();
        t.execute(
            "INSERT INTO user (id, name, role, account_key) VALUES (?1, ?2, ?3, ?4)",
            params![user, name, role, enrollment.account_key.as_slice()],
        )
        .map_err(db)?;
        t.execute(
            "INSERT INTO device (id, user_id, credential) VALUES (?1, ?2, ?3)",
            params![
                enrollment.device.as_bytes().as_slice(),
                user,
                enrollment.credential
            ],
        )
        .map_err(db)?;
        let record = read_user(&t, user)?;
        t.commit().map_err(db)?;
        Ok(record)
    }

    fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let connection = self.read_lock()?;
        let mut statement = connection
            .prepare("SELECT id FROM user ORDER BY name, id")
            .map_err(db)?;
        let ids = statement
            .query_map([], |row| row.get::<_, Vec<u8>>(0))
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        ids.iter().map(|id| read_user(&connection, id)).collect()
    }

    fn disable_user(&self, user: &UserId) -> Result<bool, StoreError> {
        self.write(|t| {
            t.execute(
                "UPDATE user SET disabled = 1 WHERE id = ?1",
                params![user.as_bytes().as_slice()],
            )
            .map(|changed| changed > 0)
            .map_err(db)
        })
    }

    fn revoke_device(&self, device: &DeviceId) -> Result<bool, StoreError> {
        self.write(|t| {
            let changed = t
                .execute(
                    "UPDATE device SET revoked = 1 WHERE id = ?1",
                    params![device.as_bytes().as_slice()],
                )
                .map_err(db)?;
            // A revoked device's key packages must never be handed out again.
            t.execute(
                "DELETE FROM key_package WHERE device_id = ?1",
                params![device.as_bytes().as_slice()],
            )
            .map_err(db)?;
            Ok(changed > 0)
        })
    }

    fn device(&self, device: &DeviceId) -> Result<Option<(DeviceRecord, bool)>, StoreError> {
        let connection = self.read_lock()?;
        // Cached: every authenticated request asks.
        let mut statement = connection
            .prepare_cached(
                "SELECT device.user_id, device.credential, device.revoked, user.disabled
                 FROM device JOIN user ON user.id = device.user_id WHERE device.id = ?1",
            )
            .map_err(db)?;
        let row = statement
            .query_row(params![device.as_bytes().as_slice()], |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get::<_, bool>(2)?,
                    row.get::<_, bool>(3)?,
                ))
            })
            .optional()
            .map_err(db)?;
        let Some((user, credential, revoked, disabled)) = row else {
            return Ok(None);
        };
        Ok(Some((
            DeviceRecord {
                device: *device,
                user: UserId(id16(user)?),
                credential,
                revoked,
            },
            !revoked && !disabled,
        )))
    }

    fn upload_key_packages(
        &self,
        device: &DeviceId,
        key_packages: &[Vec<u8>],
        last_resort: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let device = device.as_bytes().as_slice();
        self.write(|t| {
            for key_package in key_packages {
                t.execute(
                    "INSERT INTO key_package (device_id, body, last_resort) VALUES (?1, ?2, 0)",
                    params![device, key_package],
                )
                .map_err(db)?;
            }
            if let Some(last_resort) = last_resort {
                t.execute(
                    "DELETE FROM key_package WHERE device_id = ?1 AND last_resort = 1",
                    params![device],
                )
                .map_err(db)?;
                t.execute(
                    "INSERT INTO key_package (device_id, body, last_resort) VALUES (?1, ?2, 1)",
                    params![device, last_resort],
                )
                .map_err(db)?;
            }
            Ok(())
        })
    }

    fn claim_key_package(&self, device: &DeviceId) -> Result<Option<Vec<u8>>, StoreError> {
        let device = device.as_bytes().as_slice();
        self.write(|t| {
            let found = t
                .query_row(
                    "SELECT id, body, last_resort FROM key_package WHERE device_id = ?1
                     ORDER BY last_resort, id LIMIT 1",
                    params![device],
                    |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, Vec<u8>>(1)?,
                            row.get::<_, bool>(2)?,
                        ))
                    },
                )
                .optional()
                .map_err(db)?;
            let Some((id, body, last_resort)) = found else {
                return Ok(None);
            };
            if !last_resort {
                t.execute("DELETE FROM key_package WHERE id = ?1", params![id])
                    .map_err(db)?;
            }
            Ok(Some(body))
        })
    }

    fn key_packages_left(&self, device: &DeviceId) -> Result<u64, StoreError> {
        self.read_lock()?
            .query_row(
                "SELECT count(*) FROM key_package WHERE device_id = ?1 AND last_resort = 0",
                params![device.as_bytes().as_slice()],
                |row| row.get::<_, i64>(0),
            )
            .map(seq)
            .map_err(db)
    }

    fn append_commit(&self, upload: &CommitUpload) -> Result<Appended, StoreError> {
        self.write(|t| {
            if let Some(sequence) = already_sent(t, &upload.sender, &upload.send_id)? {
                return Ok(Appended::AlreadyStored { sequence });
            }
            let group = upload.group.as_bytes().as_slice();
            let epoch = t
                .query_row(
                    "SELECT epoch FROM grp WHERE id = ?1",
                    params![group],
                    |row| row.get::<_, i64>(0),
                )
                .optional()
                .map_err(db)?;
            match epoch {
                None if upload.epoch == 0 => {
                    t.execute(
                        "INSERT INTO grp (id, epoch, next_sequence) VALUES (?1, 0, 1)",
                        params![group],
                    )
                    .map_err(db)?;
                    t.execute(
                        "INSERT INTO member (group_id, device_id, cursor) VALUES (?1, ?2, 0)",
                        params![group, upload.sender.as_bytes().as_slice()],
                    )
                    .map_err(db)?;
                }
                None => return Err(StoreError::NotAMember),
                Some(current) if seq(current) != upload.epoch => {
                    return Ok(Appended::EpochMoved {
                        current_epoch: seq(current),
                    })
                }
                Some(_) => {}
            }
            if !is_member(t, &upload.group, &upload.sender)? {
                return Err(StoreError::NotAMember);
            }
            let sequence = insert_entry(
                t,
                &NewEntry {
                    group: &upload.group,
                    epoch: upload.epoch,
                    kind: COMMIT,
                    sender: &upload.sender,
                    send_id: &upload.send_id,
                    body: &upload.message,
                    received_at: upload.received_at,
                },
            )?;
            t.execute(
                "UPDATE grp SET epoch = epoch + 1 WHERE id = ?1",
                params![group],
            )
            .map_err(db)?;
            for removed in &upload.removed {
                t.execute(
                    "UPDATE member SET until_sequence = ?3
                     WHERE group_id = ?1 AND device_id = ?2 AND until_sequence IS NULL",
                    params![group, removed.as_bytes().as_slice(), int(sequence)?],
                )
                .map_err(db)?;
            }
            for added in &upload.added {
                // New members start after the commit that added them: they join by Welcome.
                t.execute(
                    "INSERT INTO member (group_id, device_id, cursor) VALUES (?1, ?2, ?3)
                     ON CONFLICT (group_id, device_id)
                     DO UPDATE SET cursor = excluded.cursor, until_sequence = NULL",
                    params![group, added.as_bytes().as_slice(), int(sequence)?],
                )
                .map_err(db)?;
                if let Some(welcome) = &upload.welcome {
                    t.execute(
                        "INSERT OR REPLACE INTO welcome (device_id, group_id, after_sequence, body)
                         VALUES (?1, ?2, ?3, ?4)",
                        params![added.as_bytes().as_slice(), group, int(sequence)?, welcome],
                    )
                    .map_err(db)?;
                }
            }
            Ok(Appended::Accepted { sequence })
        })
    }

    fn append_message(&self, upload: &MessageUpload) -> Result<Appended, StoreError> {
        let (answer, answered) = mpsc::sync_channel(1);
        self.queue(AppendJob {
            upload: upload.clone(),
            check_allowed: false,
            answer: Answer::Blocking(answer),
        })?;
        answered
            .recv()
            .map_err(|_| StoreError::Database("the group-commit writer stopped".to_owned()))?
    }

    fn submit_message(&self, upload: MessageUpload, done: AppendDone) {
        let job = AppendJob {
            upload,
            check_allowed: true,
            answer: Answer::Callback(done),
        };
        let sent = self.appends.lock().map_err(|_| ()).and_then(|queue| {
            queue.send(job).map_err(|error| {
                // The writer is gone: answer here, so the caller is not left waiting.
                if let Answer::Callback(done) = error.0.answer {
                    done(Err(StoreError::Database(
                        "the group-commit writer stopped".to_owned(),
                    )));
                }
            })
        });
        let _ = sent;
    }

    fn reads_group(&self, device: &DeviceId, group: &GroupId) -> Result<bool, StoreError> {
        self.read_lock()?
            .query_row(
                "SELECT 1 FROM member WHERE group_id = ?1 AND device_id = ?2",
                params![group.as_bytes().as_slice(), device.as_bytes().as_slice()],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(db)
    }

    fn welcomes(&self, device: &DeviceId) -> Result<Vec<PendingWelcome>, StoreError> {
        let connection = self.read_lock()?;
        let mut statement = connection
            .prepare(
                "SELECT group_id, after_sequence, body FROM welcome WHERE device_id = ?1
                 ORDER BY rowid",
            )
            .map_err(db)?;
        let rows = statement
            .query_map(params![device.as_bytes().as_slice()], |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(db)?;
        let mut welcomes = Vec::new();
        for row in rows {
            let (group, after, welcome) = row.map_err(db)?;
            welcomes.push(PendingWelcome {
                group: GroupId(id16(group)?),
                after_sequence: seq(after),
                welcome,
            });
        }
        Ok(welcomes)
    }

    fn read(&self, device: &DeviceId, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        let connection = self.read_lock()?;
        let mut statement = connection
            .prepare(
                "SELECT entry.group_id, entry.sequence, entry.epoch, entry.kind, entry.sender,
                        entry.body
                 FROM member JOIN entry ON entry.group_id = member.group_id
                 WHERE member.device_id = ?1 AND entry.sequence > member.cursor
                   AND (member.until_sequence IS NULL OR entry.sequence <= member.until_sequence)
                 ORDER BY entry.group_id, entry.sequence
                 LIMIT ?2",
            )
            .map_err(db)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = statement
            .query_map(params![device.as_bytes().as_slice(), limit], |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, Vec<u8>>(4)?,
                    row.get::<_, Vec<u8>>(5)?,
                ))
            })
            .map_err(db)?;
        let mut entries = Vec::new();
        for row in rows {
            let (group, sequence, epoch, kind, sender, message) = row.map_err(db)?;
            entries.push(LogEntry {
                group: GroupId(id16(group)?),
                sequence: seq(sequence),
                epoch: seq(epoch),
                kind: if kind == COMMIT {
                    EntryKind::Commit
                } else {
                    EntryKind::Application
                },
                sender: DeviceId(id16(sender)?),
                message,
            });
        }
        Ok(entries)
    }

    fn ack(&self, device: &DeviceId, group: &GroupId, sequence: u64) -> Result<(), StoreError> {
        let device = device.as_bytes().as_slice();
        let group = group.as_bytes().as_slice();
        self.write(|t| {
            let sequence = int(sequence)?;
            t.execute(
                "UPDATE member SET cursor = max(cursor, ?3) WHERE group_id = ?1 AND device_id = ?2",
                params![group, device, sequence],
            )
            .map_err(db)?;
            // A removed device that has read the commit removing it is gone for good.
            t.execute(
                "DELETE FROM member WHERE group_id = ?1 AND device_id = ?2
                 AND until_sequence IS NOT NULL AND cursor >= until_sequence",
                params![group, device],
            )
            .map_err(db)?;
            t.execute(
                "DELETE FROM welcome WHERE group_id = ?1 AND device_id = ?2",
                params![group, device],
            )
            .map_err(db)?;
            // Entries every member has read are no longer needed by anyone.
            t.execute(
                "DELETE FROM entry WHERE group_id = ?1 AND sequence <=
                 coalesce((SELECT min(cursor) FROM member WHERE group_id = ?1), 9223372036854775807)",
                params![group],
            )
            .map_err(db)?;
            Ok(())
        })
    }

    fn expire(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.write(|t| {
            let before = int(before)?;
            let deleted = t
                .execute("DELETE FROM entry WHERE received_at < ?1", params![before])
                .map_err(db)?;
            t.execute("DELETE FROM sent WHERE received_at < ?1", params![before])
                .map_err(db)?;
            Ok(u64::try_from(deleted).unwrap_or(0))
        })
    }

    fn generation(&self) -> Result<[u8; 16], StoreError> {
        let bytes: Vec<u8> = self
            .read_lock()?
            .query_row("SELECT generation FROM meta", [], |row| row.get(0))
            .map_err(db)?;
        id16(bytes)
    }

    fn counts(&self) -> Result<Counts, StoreError> {
        let connection = self.read_lock()?;
        let count = |sql: &str| -> Result<u64, StoreError> {
            connection
                .query_row(sql, [], |row| row.get::<_, i64>(0))
                .map(seq)
                .map_err(db)
        };
        Ok(Counts {
            users: count("SELECT count(*) FROM user")?,
            devices: count("SELECT count(*) FROM device WHERE revoked = 0")?,
            groups: count("SELECT count(*) FROM grp")?,
            log_entries: count("SELECT count(*) FROM entry")?,
            key_packages: count("SELECT count(*) FROM key_package WHERE last_resort = 0")?,
            open_invites: count("SELECT count(*) FROM invite WHERE used = 0 AND revoked = 0")?,
        })
    }
}
