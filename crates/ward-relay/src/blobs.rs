//! Attachment blobs: ciphertext streamed to a file and back, never inspected.
//!
//! An upload goes to a temporary file beside its final name and is renamed into place only when
//! complete and within the size limit, after an fsync; so a blob is whole or absent. Ids are the
//! clients' random 32 bytes, and the first complete upload of an id wins: a second upload of the
//! same id changes nothing, which makes a retry after a lost answer safe.

use std::path::{Path, PathBuf};

use axum::body::{Body, BodyDataStream};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use ward_proto::BlobId;

/// Where blobs live, and how large one may be.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
    max_bytes: u64,
}

/// Why a blob could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The upload is over the size limit; nothing was kept.
    #[error("the blob is larger than the relay allows")]
    TooLarge,
    /// No blob has that id.
    #[error("no such blob")]
    NotFound,
    /// The upload was cut off; nothing was kept.
    #[error("the upload did not complete")]
    Incomplete,
    /// The disk failed.
    #[error("blob storage failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The blob is new, with this many bytes.
    New(u64),
    /// A blob with this id was already complete; the upload was discarded.
    AlreadyPresent,
}

impl BlobStore {
    /// Blobs under `dir`, at most `max_bytes` each.
    pub fn new(dir: &Path, max_bytes: u64) -> Self {
        Self {
            dir: dir.to_owned(),
            max_bytes,
        }
    }

    fn path(&self, id: &BlobId) -> PathBuf {
        self.dir.join(hex::encode(id.as_bytes()))
    }

    /// Streams `body` into the blob `id`.
    pub async fn put(&self, id: &BlobId, mut body: BodyDataStream) -> Result<Stored, BlobError> {
        let destination = self.path(id);
        if tokio::fs::try_exists(&destination).await? {
            return Ok(Stored::AlreadyPresent);
        }
        tokio::fs::create_dir_all(&self.dir).await?;
        let mut suffix = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut suffix)
            .map_err(|_| std::io::Error::other("the random number generator failed"))?;
        let partial = self.dir.join(format!(
            ".partial-{}-{}",
            hex::encode(id.as_bytes()),
            hex::encode(suffix)
        ));
        let result = self.write(&partial, &mut body).await;
        match result {
            Ok(written) => {
                if tokio::fs::try_exists(&destination).await? {
                    tokio::fs::remove_file(&partial).await?;
                    return Ok(Stored::AlreadyPresent);
                }
                tokio::fs::rename(&partial, &destination).await?;
                Ok(Stored::New(written))
            }
            Err(error) => {
                let _ = tokio::fs::remove_file(&partial).await;
                Err(error)
            }
        }
    }

    async fn write(&self, partial: &Path, body: &mut BodyDataStream) -> Result<u64, BlobError> {
        let mut file = tokio::fs::File::create(partial).await?;
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|_| BlobError::Incomplete)?;
            written = written.saturating_add(chunk.len() as u64);
            if written > self.max_bytes {
                return Err(BlobError::TooLarge);
            }
            file.write_all(&chunk).await?;
        }
        file.sync_all().await?;
        Ok(written)
    }

    /// The blob `id` as a streaming body, with its length.
    pub async fn get(&self, id: &BlobId) -> Result<(Body, u64), BlobError> {
        let file = match tokio::fs::File::open(self.path(id)).await {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(BlobError::NotFound)
            }
            Err(error) => return Err(error.into()),
        };
        let len = file.metadata().await?.len();
        Ok((
            Body::from_stream(tokio_util::io::ReaderStream::new(file)),
            len,
        ))
    }
}
