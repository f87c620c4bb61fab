//! Ward stream v1: how an attachment is encrypted on the sender's device, stored on the relay and
//! kept at rest on every device that receives it.
//!
//! ```text
//! header  = magic "WARDATT" (7) || version 0x01 (1) || chunk size u32 BE (4)
//!           || salt (32) || key commitment (32)                          76 bytes
//! chunk i = AES-256-GCM(chunk key, nonce_i, aad = header, plaintext_i)   ≤ 64 KiB + 16
//! nonce_i = i as 88-bit big-endian counter (11) || 0x01 on the last chunk, else 0x00 (1)
//! chunk key || commitment = HKDF-SHA256(ikm = file key, salt, info = "ward stream v1 …")
//! ```
//!
//! Every chunk but the last holds exactly 64 KiB of plaintext; the last holds 0 to 64 KiB and is
//! the only one sealed with the last-chunk flag. So truncation (at or between chunks), a dropped,
//! duplicated, reordered or extra chunk, a missing last chunk and any change to the header all
//! fail authentication, and the key commitment makes a wrong key fail before any chunk is read.
//!
//! [`Encryptor`] and [`Decryptor`] are state machines over byte slices that hold one chunk at a
//! time, so memory stays constant whatever the file size. Plaintext that [`Decryptor::update`]
//! hands out is authentic chunk by chunk, but it is only the whole file once
//! [`Decryptor::finish`] returns `Ok`; [`decrypt_to_vec`] returns nothing before that.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::crypto::{fill_random, hkdf_sha256, Aes256Gcm, AES_GCM_TAG_LEN};
use crate::secret::Secret32;

/// The stream's magic bytes.
pub const MAGIC: &[u8; 7] = b"WARDATT";
/// The format version this module writes and reads.
pub const VERSION: u8 = 1;
/// Plaintext bytes per chunk in version 1.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// Header length in bytes.
pub const HEADER_LEN: usize = 7 + 1 + 4 + SALT_LEN + COMMITMENT_LEN;
/// Length of a file key.
pub const FILE_KEY_LEN: usize = crate::secret::SECRET_LEN;

const SALT_LEN: usize = 32;
const COMMITMENT_LEN: usize = 32;
const RECORD_LEN: usize = CHUNK_SIZE + AES_GCM_TAG_LEN;
const CHUNK_KEY_INFO: &[u8] = b"ward stream v1 chunk key";
const COMMITMENT_INFO: &[u8] = b"ward stream v1 key commitment";
/// The counter has 88 bits; a stream never gets near that, but the bound is enforced.
const MAX_CHUNKS: u64 = u64::MAX;

/// The random 256-bit key of one attachment. It travels inside the MLS message, is zeroized on
/// drop and never printed.
pub struct FileKey(Secret32);

impl FileKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, StreamError> {
        Secret32::generate()
            .map(Self)
            .map_err(|_| StreamError::NoRandomness)
    }

    /// A key received in a message; `None` unless there are exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        Secret32::from_slice(bytes).map(Self)
    }

    /// The key bytes, for the message that carries them.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileKey(<redacted>)")
    }
}

/// Why a stream was refused. Each is final: nothing of a refused stream is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// Fewer bytes than a header.
    #[error("the attachment is too short to be a Ward stream")]
    ShortHeader,
    /// The bytes do not start with Ward's magic.
    #[error("the attachment is not a Ward stream")]
    NotAStream,
    /// A format version this build does not read.
    #[error("the attachment uses stream version {0}, which this Ward cannot read")]
    UnsupportedVersion(u8),
    /// A chunk size other than version 1's.
    #[error("the attachment declares an unsupported chunk size")]
    UnsupportedChunkSize,
    /// The key does not match the header's commitment: the wrong key, or a changed header.
    #[error("the key does not match this attachment")]
    WrongKey,
    /// A chunk failed authentication: changed, reordered, duplicated, or from another stream.
    #[error("chunk {index} of the attachment failed authentication")]
    ChunkRejected {
        /// The position the chunk was read at, from 0.
        index: u64,
    },
    /// The stream ended without its last chunk: it was truncated, or the last chunk was dropped.
    #[error("the attachment is truncated")]
    Truncated,
    /// Bytes follow the last chunk.
    #[error("the attachment has data after its last chunk")]
    DataAfterEnd,
    /// More chunks than the nonce counter allows.
    #[error("the attachment is too long")]
    TooLong,
    /// The operating system's random number generator failed.
    #[error("the random number generator failed")]
    NoRandomness,
    /// The chunk key or the commitment could not be derived from the file key.
    #[error("the attachment keys could not be derived")]
    KeyDerivation,
    /// A chunk handed to [`Encryptor::seal_chunk_in_place`] has the wrong length, follows the
    /// last chunk, or is mixed with [`Encryptor::update`].
    #[error("a chunk of the wrong length was handed to the encryptor")]
    BadChunkLength,
}

/// The parsed, checked header of a stream.
struct Keys {
    cipher: Aes256Gcm,
    commitment: [u8; COMMITMENT_LEN],
}

fn derive_keys(key: &FileKey, salt: &[u8]) -> Result<Keys, StreamError> {
    let mut chunk_key = [0u8; 32];
    let mut commitment = [0u8; COMMITMENT_LEN];
    let cipher = hkdf_sha256(key.as_bytes(), salt, CHUNK_KEY_INFO, &mut chunk_key)
        .and_then(|()| hkdf_sha256(key.as_bytes(), salt, COMMITMENT_INFO, &mut commitment))
        .and_then(|()| Aes256Gcm::new(&chunk_key));
    chunk_key.zeroize();
    Ok(Keys {
        cipher: cipher.map_err(|_| StreamError::KeyDerivation)?,
        commitment,
    })
}

fn nonce(index: u64, last: bool) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[3..11].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(last);
    nonce
}

/// Encrypts one attachment, chunk by chunk.
pub struct Encryptor {
    cipher: Aes256Gcm,
    header: [u8; HEADER_LEN],
    index: u64,
    pending: Vec<u8>,
    sealed_last: bool,
}

impl fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryptor")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    /// Starts a stream under `key` with a fresh random salt.
    pub fn new(key: &FileKey) -> Result<Self, StreamError> {
        let mut salt = [0u8; SALT_LEN];
        fill_random(&mut salt).map_err(|_| StreamError::NoRandomness)?;
        Self::with_salt(key, salt)
    }

    /// Starts a stream with a given salt. Only for test vectors: a salt must never repeat under
    /// one key.
    pub fn with_salt(key: &FileKey, salt: [u8; SALT_LEN]) -> Result<Self, StreamError> {
        let keys = derive_keys(key, &salt)?;
        let mut header = [0u8; HEADER_LEN];
        header[..7].copy_from_slice(MAGIC);
        header[7] = VERSION;
        header[8..12].copy_from_slice(&(CHUNK_SIZE as u32).to_be_bytes());
        header[12..12 + SALT_LEN].copy_from_slice(&salt);
        header[12 + SALT_LEN..].copy_from_slice(&keys.commitment);
        Ok(Self {
            cipher: keys.cipher,
            header,
            index: 0,
            pending: Vec::with_capacity(CHUNK_SIZE),
            sealed_last: false,
        })
    }

    /// The header, which goes first in the stream.
    pub fn header(&self) -> &[u8; HEADER_LEN] {
        &self.header
    }

    /// Encrypts `input`, appending every chunk it completes to `out`. A full chunk is only sealed
    /// once more input arrives, because the last chunk may be full too.
    pub fn update(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        if self.sealed_last {
            return Err(StreamError::BadChunkLength);
        }
        while !input.is_empty() {
            if self.pending.len() == CHUNK_SIZE {
                let pending = std::mem::take(&mut self.pending);
                self.seal(&pending, false, out)?;
                self.pending = pending;
                self.pending.clear();
            }
            if self.pending.is_empty() && input.len() > CHUNK_SIZE {
                // Whole chunks with more to follow go straight from the input to the output.
                let (chunk, rest) = input.split_at(CHUNK_SIZE);
                self.seal(chunk, false, out)?;
                input = rest;
                continue;
            }
            let take = (CHUNK_SIZE - self.pending.len()).min(input.len());
            let (head, rest) = input.split_at(take);
            self.pending.extend_from_slice(head);
            input = rest;
        }
        Ok(())
    }

    /// Seals one whole chunk in place, for callers that read whole chunks and know which is last:
    /// `chunk` holds exactly 64 KiB of plaintext (the last chunk: 0 to 64 KiB) and is replaced by
    /// the sealed chunk. This saves the copy [`Encryptor::update`] makes. It cannot be mixed with
    /// `update`, and nothing may follow the last chunk.
    pub fn seal_chunk_in_place(
        &mut self,
        chunk: &mut Vec<u8>,
        last: bool,
    ) -> Result<(), StreamError> {
        let fits = if last {
            chunk.len() <= CHUNK_SIZE
        } else {
            chunk.len() == CHUNK_SIZE
        };
        if !fits || !self.pending.is_empty() || self.sealed_last {
            return Err(StreamError::BadChunkLength);
        }
        self.seal_tail(chunk, 0, last)?;
        self.sealed_last = last;
        Ok(())
    }

    /// Seals the last chunk (0 to 64 KiB) and ends the stream.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), StreamError> {
        if self.sealed_last {
            return Err(StreamError::BadChunkLength);
        }
        let pending = std::mem::take(&mut self.pending);
        self.seal(&pending, true, out)
    }

    fn seal(&mut self, chunk: &[u8], last: bool, out: &mut Vec<u8>) -> Result<(), StreamError> {
        let start = out.len();
        out.extend_from_slice(chunk);
        self.seal_tail(out, start, last)
    }

    /// Seals `buffer[start..]` in place as the next chunk and appends its tag.
    fn seal_tail(
        &mut self,
        buffer: &mut Vec<u8>,
        start: usize,
        last: bool,
    ) -> Result<(), StreamError> {
        if self.index == MAX_CHUNKS {
            return Err(StreamError::TooLong);
        }
        self.cipher
            .seal_tail(nonce(self.index, last), &self.header, buffer, start)
            .map_err(|_| StreamError::TooLong)?;
        self.index += 1;
        Ok(())
    }
}

/// Decrypts one attachment, chunk by chunk.
pub struct Decryptor {
    cipher: Aes256Gcm,
    header: [u8; HEADER_LEN],
    index: u64,
    pending: Vec<u8>,
}

impl fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decryptor")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Decryptor {
    /// Checks the header against `key`. `header` must be the stream's first [`HEADER_LEN`] bytes.
    pub fn new(key: &FileKey, header: &[u8]) -> Result<Self, StreamError> {
        let header: [u8; HEADER_LEN] = header
            .get(..HEADER_LEN)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(StreamError::ShortHeader)?;
        if &header[..7] != MAGIC {
            return Err(StreamError::NotAStream);
        }
        if header[7] != VERSION {
            return Err(StreamError::UnsupportedVersion(header[7]));
        }
        if header[8..12] != (CHUNK_SIZE as u32).to_be_bytes() {
            return Err(StreamError::UnsupportedChunkSize);
        }
        let keys = derive_keys(key, &header[12..12 + SALT_LEN])?;
        if !bool::from(keys.commitment.ct_eq(&header[12 + SALT_LEN..])) {
            return Err(StreamError::WrongKey);
        }
        Ok(Self {
            cipher: keys.cipher,
            header,
            index: 0,
            pending: Vec::with_capacity(RECORD_LEN),
        })
    }

    /// Decrypts `input` (the bytes after the header, in any pieces), appending the plaintext of
    /// each chunk that authenticated to `out`. That plaintext is provisional: it is not known to be
    /// the whole file until [`Decryptor::finish`] returns `Ok`, so it must not be shown or kept as
    /// the attachment before then.
    pub fn update(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        while !input.is_empty() {
            if self.pending.len() == RECORD_LEN {
                // More bytes follow, so this record must be a non-last chunk.
                self.open_pending(false, out)?;
            }
            let take = (RECORD_LEN - self.pending.len()).min(input.len());
            let (head, rest) = input.split_at(take);
            self.pending.extend_from_slice(head);
            input = rest;
        }
        Ok(())
    }

    /// Decrypts the last chunk. `Ok` means the whole stream, from header to last chunk, is
    /// authentic and complete.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), StreamError> {
        if self.pending.len() < AES_GCM_TAG_LEN {
            return Err(StreamError::Truncated);
        }
        self.open_pending(true, out)
    }

    fn open_pending(&mut self, last: bool, out: &mut Vec<u8>) -> Result<(), StreamError> {
        if self.index == MAX_CHUNKS {
            return Err(StreamError::TooLong);
        }
        // Decrypt in the output's tail: one copy, and `pending` stays intact for the error path.
        let start = out.len();
        out.extend_from_slice(&self.pending);
        let opened = self
            .cipher
            .open_tail(nonce(self.index, last), &self.header, out, start);
        if opened.is_ok() {
            self.pending.clear();
            self.index += 1;
            return Ok(());
        }
        // Tell the cases a person can act on apart: a record that opens with the other flag is an
        // intact chunk in the wrong place.
        let mut probe = self.pending.clone();
        let error = if self
            .cipher
            .open_tail(nonce(self.index, !last), &self.header, &mut probe, 0)
            .is_ok()
        {
            if last {
                StreamError::Truncated
            } else {
                StreamError::DataAfterEnd
            }
        } else {
            StreamError::ChunkRejected { index: self.index }
        };
        probe.zeroize();
        Err(error)
    }
}

/// Encrypts a whole attachment held in memory: header followed by chunks.
pub fn encrypt_to_vec(key: &FileKey, plaintext: &[u8]) -> Result<Vec<u8>, StreamError> {
    let mut encryptor = Encryptor::new(key)?;
    let chunks = plaintext.len() / CHUNK_SIZE + 1;
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + chunks * AES_GCM_TAG_LEN);
    out.extend_from_slice(encryptor.header());
    encryptor.update(plaintext, &mut out)?;
    encryptor.finish(&mut out)?;
    Ok(out)
}

/// Decrypts a whole attachment into memory, for the viewers. It returns the plaintext only once
/// the last chunk has verified; on any failure the partial plaintext is wiped.
pub fn decrypt_to_vec(key: &FileKey, stream: &[u8]) -> Result<Vec<u8>, StreamError> {
    let mut decryptor = Decryptor::new(key, stream)?;
    let body = stream.get(HEADER_LEN..).unwrap_or_default();
    let mut out = Vec::with_capacity(body.len());
    let result = decryptor
        .update(body, &mut out)
        .and_then(|()| decryptor.finish(&mut out));
    match result {
        Ok(()) => Ok(out),
        Err(error) => {
            out.zeroize();
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_key_prints_no_bytes() {
        let key = FileKey::from_slice(&[0x5A; FILE_KEY_LEN]).unwrap();
        assert_eq!(format!("{key:?}"), "FileKey(<redacted>)");
        assert!(FileKey::from_slice(&[0; 31]).is_none());
    }

    #[test]
    fn the_nonce_is_a_big_endian_counter_and_a_last_chunk_flag() {
        assert_eq!(nonce(0, false), [0; 12]);
        assert_eq!(nonce(1, true), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
        assert_eq!(
            nonce(0x0102_0304_0506_0708, false),
            [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0]
        );
    }

    #[test]
    fn the_header_is_laid_out_as_documented() {
        let key = FileKey::from_slice(&[1; FILE_KEY_LEN]).unwrap();
        let encryptor = Encryptor::with_salt(&key, [2; SALT_LEN]).unwrap();
        let header = encryptor.header();
        assert_eq!(HEADER_LEN, 76);
        assert_eq!(&header[..7], b"WARDATT");
        assert_eq!(header[7], 1);
        assert_eq!(header[8..12], [0, 1, 0, 0]);
        assert_eq!(header[12..44], [2; 32]);
        assert!(Decryptor::new(&key, header).is_ok());
    }
}
