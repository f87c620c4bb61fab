//! Backups IT takes while the relay runs, and restoring one onto a stopped relay.
//!
//! A backup is a folder: `relay.db`, a consistent copy of the database made with `VACUUM INTO`
//! (one read transaction, so the running relay's writer is never blocked), and `blobs/`, the
//! encrypted files, copied after the database so every file the copy refers to is in it.
//!
//! A restored relay is behind its clients: what was sent after the backup is gone from it, and
//! its sequence numbers start again from the backup's. Restoring therefore gives the store a new
//! *generation*, which every inbox answer carries. A client that sees the generation change sends
//! again what it sent recently (the relay drops what it still has) and stops trusting its old
//! sequence numbers. One-time key packages handed out after the backup would be handed out twice,
//! so they are deleted: clients upload fresh ones when they notice, and the last-resort package
//! covers the moments in between.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

/// The database file inside a data folder and a backup.
const DATABASE: &str = "relay.db";
/// The encrypted files inside a data folder and a backup.
const BLOBS: &str = "blobs";

/// Why a backup or restore did not happen. Shown to IT as is.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The source has no relay database.
    #[error("{0} holds no relay database (relay.db)")]
    NoDatabase(PathBuf),
    /// The destination already holds something.
    #[error("{0} is not empty; give a new folder, so nothing is overwritten")]
    NotEmpty(PathBuf),
    /// The data folder already has a database: the relay may be running, or the old data would be
    /// lost.
    #[error(
        "{0} already holds a relay database; stop the relay and move that folder away before \
         restoring into it"
    )]
    DataPresent(PathBuf),
    /// The copied database failed SQLite's integrity check.
    #[error("the backup's database failed its integrity check: {0}")]
    Damaged(String),
    /// SQLite failed.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// The store refused the restored database.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupSummary {
    /// The schema version of the copied database.
    pub schema_version: i64,
    /// Encrypted files copied.
    pub blobs: u64,
    /// Their bytes.
    pub blob_bytes: u64,
}

/// Copies the relay in `data_dir` to the new folder `to`, while the relay runs.
pub fn backup(data_dir: &Path, to: &Path) -> Result<BackupSummary, BackupError> {
    let database = data_dir.join(DATABASE);
    if !database.is_file() {
        return Err(BackupError::NoDatabase(data_dir.to_owned()));
    }
    if to.exists() && std::fs::read_dir(to).map_err(io(to))?.next().is_some() {
        return Err(BackupError::NotEmpty(to.to_owned()));
    }
    std::fs::create_dir_all(to).map_err(io(to))?;
    let copy = to.join(DATABASE);
    {
        let source = Connection::open_with_flags(
            &database,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        source.busy_timeout(std::time::Duration::from_secs(30))?;
        source.execute("VACUUM INTO ?1", [copy.to_string_lossy()])?;
    }
    let schema_version = check(&copy)?;
    let (blobs, blob_bytes) = copy_blobs(&data_dir.join(BLOBS), &to.join(BLOBS))?;
    sync_dir(to)?;
    Ok(BackupSummary {
        schema_version,
        blobs,
        blob_bytes,
    })
}

/// Restores the backup in `from` into `data_dir`, which must hold no database (the relay is
/// stopped, and the damaged data was moved away). The restored store gets a new generation.
pub fn restore(from: &Path, data_dir: &Path) -> Result<BackupSummary, BackupError> {
    let source = from.join(DATABASE);
    if !source.is_file() {
        return Err(BackupError::NoDatabase(from.to_owned()));
    }
    let target = data_dir.join(DATABASE);
    if target.exists() {
        return Err(BackupError::DataPresent(data_dir.to_owned()));
    }
    let schema_version = check(&source)?;
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let (blobs, blob_bytes) = copy_blobs(&from.join(BLOBS), &data_dir.join(BLOBS))?;
    // Copied under a temporary name and renamed last: a restore cut short leaves no database
    // that the relay would start on.
    let partial = data_dir.join("relay.db.restoring");
    std::fs::copy(&source, &partial).map_err(io(&partial))?;
    // An older backup's schema is brought up to date first.
    crate::sqlite_store::begin_new_generation(&partial)?;
    std::fs::rename(&partial, &target).map_err(io(&target))?;
    sync_dir(data_dir)?;
    Ok(BackupSummary {
        schema_version,
        blobs,
        blob_bytes,
    })
}

/// Runs SQLite's integrity check on a copy and returns its schema version.
fn check(database: &Path) -> Result<i64, BackupError> {
    let connection = Connection::open_with_flags(database, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let verdict: String = connection.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
    if verdict != "ok" {
        return Err(BackupError::Damaged(verdict));
    }
    Ok(connection.query_row("PRAGMA user_version", [], |row| row.get(0))?)
}

/// Copies every complete encrypted file; uploads still in progress (`.partial-…`) are left out,
/// as no message can refer to them yet.
fn copy_blobs(from: &Path, to: &Path) -> Result<(u64, u64), BackupError> {
    std::fs::create_dir_all(to).map_err(io(to))?;
    let entries = match std::fs::read_dir(from) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(error) => return Err(io(from)(error)),
    };
    let (mut count, mut bytes) = (0u64, 0u64);
    for entry in entries {
        let entry = entry.map_err(io(from))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') || !entry.path().is_file() {
            continue;
        }
        let target = to.join(&name);
        let copied = match std::fs::copy(entry.path(), &target) {
            Ok(copied) => copied,
            // Deleted by retention between listing and copying: nothing refers to it any more.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(io(&target)(error)),
        };
        std::fs::File::open(&target)
            .and_then(|file| file.sync_all())
            .map_err(io(&target))?;
        count += 1;
        bytes += copied;
    }
    sync_dir(to)?;
    Ok((count, bytes))
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|folder| folder.sync_all())
        .map_err(io(dir))
}
