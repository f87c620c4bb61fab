//! Attachment files on disk: the IO around `ward_core::attachment_stream`.
//!
//! Encrypting reads a plaintext file and writes the stream the relay and every device keep.
//! Decrypting to a file happens only for "Save as…", after the clinician has chosen where: it
//! writes to a temporary file beside the destination and renames it into place only after the last
//! chunk has verified, so a damaged or cut attachment never leaves a file behind, whole or partial.
//! Both run in constant memory: a few 64 KiB chunks at a time.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use ring::digest;
use ward_core::attachment_stream::{
    Decryptor, Encryptor, FileKey, StreamError, CHUNK_SIZE, HEADER_LEN,
};
use ward_core::crypto::AES_GCM_TAG_LEN;
use zeroize::{Zeroize, Zeroizing};

/// What the message announcing an encrypted attachment carries about its ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedFile {
    /// SHA-256 of the whole stream, header included, as stored on the relay.
    pub ciphertext_sha256: [u8; 32],
    /// Length of the stream in bytes.
    pub ciphertext_len: u64,
    /// Length of the plaintext in bytes.
    pub plaintext_len: u64,
}

/// Why an attachment file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum AttachmentFileError {
    /// The stream is damaged, cut, or not for this key.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The file system failed.
    #[error("file error: {0}")]
    Io(#[from] io::Error),
}

/// How many chunks may wait between two of the three threads: enough to keep them all busy, few
/// enough that memory stays constant (at most 3 × 8 chunks of 64 KiB).
const CHUNKS_IN_FLIGHT: usize = 8;

/// A chunk buffer, wiped on drop: on an error path it may still hold plaintext.
type ChunkBuffer = Zeroizing<Vec<u8>>;

/// Encrypts the file at `source` under `key` into a new stream file at `destination`.
///
/// Three threads share the work, because SHA-256 of the ciphertext costs several times what
/// AES-GCM does: this one reads and seals, a second hashes, a third writes. Sealed chunks pass
/// down bounded channels, and the emptied buffers come back to be filled again.
pub fn encrypt_file(
    key: &FileKey,
    source: &Path,
    destination: &Path,
) -> Result<EncryptedFile, AttachmentFileError> {
    encrypt_reader(key, File::open(source)?, destination)
}

/// Encrypts what `input` yields, as [`encrypt_file`] does a file: the app's attachments arrive as
/// bytes in memory (picked, dropped or pasted) and must not be written out as plaintext first.
pub fn encrypt_reader(
    key: &FileKey,
    mut input: impl Read,
    destination: &Path,
) -> Result<EncryptedFile, AttachmentFileError> {
    write_atomically(destination, |output| {
        let mut encryptor = Encryptor::new(key)?;
        let header = encryptor.header().to_vec();
        let (sealed_tx, sealed_rx) = mpsc::sync_channel::<ChunkBuffer>(CHUNKS_IN_FLIGHT);
        let (hashed_tx, hashed_rx) = mpsc::sync_channel::<ChunkBuffer>(CHUNKS_IN_FLIGHT);
        let (empty_tx, empty_rx) = mpsc::channel::<ChunkBuffer>();
        std::thread::scope(|scope| {
            let hasher = scope.spawn(|| hash_chunks(&header, sealed_rx, hashed_tx));
            let writer = scope.spawn(|| write_chunks(&header, output, hashed_rx, empty_tx));
            let sealed = seal_chunks(&mut input, &mut encryptor, &sealed_tx, &empty_rx);
            // Closing the channel tells the others the stream is complete (or abandoned).
            drop(sealed_tx);
            let panicked = |_| io::Error::other("an attachment thread panicked");
            let hashed = hasher.join().map_err(panicked)?;
            let written = writer.join().map_err(panicked)?;
            // The writer's error comes first: when it fails, the others only see it stop.
            let ciphertext_len = written?;
            let ciphertext_sha256 = hashed?;
            let plaintext_len = sealed?;
            Ok(EncryptedFile {
                ciphertext_sha256,
                ciphertext_len,
                plaintext_len,
            })
        })
    })
}

/// Reads `input` a chunk at a time, seals each chunk in place and passes it on. Returns the
/// plaintext length.
fn seal_chunks(
    input: &mut impl Read,
    encryptor: &mut Encryptor,
    sealed: &mpsc::SyncSender<ChunkBuffer>,
    empty: &mpsc::Receiver<ChunkBuffer>,
) -> Result<u64, AttachmentFileError> {
    let buffer = || -> ChunkBuffer {
        empty
            .try_recv()
            .unwrap_or_else(|_| Zeroizing::new(Vec::with_capacity(CHUNK_SIZE + AES_GCM_TAG_LEN)))
    };
    let stopped = || io::Error::other("the attachment writer stopped");
    let mut plaintext_len = 0u64;
    // One chunk of lookahead tells whether the current chunk is the last.
    let mut current = buffer();
    read_chunk(input, &mut current)?;
    loop {
        let mut next = buffer();
        read_chunk(input, &mut next)?;
        let last = next.is_empty();
        plaintext_len += current.len() as u64;
        encryptor.seal_chunk_in_place(&mut current, last)?;
        sealed.send(current).map_err(|_| stopped())?;
        if last {
            return Ok(plaintext_len);
        }
        current = next;
    }
}

/// Hashes the header and every sealed chunk, passing each on to the writer. Returns the SHA-256
/// of the whole stream, or an error if the writer stopped first.
fn hash_chunks(
    header: &[u8],
    sealed: mpsc::Receiver<ChunkBuffer>,
    hashed: mpsc::SyncSender<ChunkBuffer>,
) -> io::Result<[u8; 32]> {
    let mut hash = digest::Context::new(&digest::SHA256);
    hash.update(header);
    for chunk in sealed {
        hash.update(&chunk);
        hashed
            .send(chunk)
            .map_err(|_| io::Error::other("the attachment writer stopped"))?;
    }
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(hash.finish().as_ref());
    Ok(sha256)
}

/// Writes the header and every hashed chunk, returning each emptied buffer for reuse. Returns the
/// length of the whole stream.
fn write_chunks(
    header: &[u8],
    output: &mut File,
    hashed: mpsc::Receiver<ChunkBuffer>,
    empty: mpsc::Sender<ChunkBuffer>,
) -> io::Result<u64> {
    output.write_all(header)?;
    let mut written = header.len() as u64;
    for chunk in hashed {
        output.write_all(&chunk)?;
        written += chunk.len() as u64;
        // The sealer may be done already; a buffer it no longer wants is simply dropped.
        let _ = empty.send(chunk);
    }
    Ok(written)
}

/// Replaces `chunk` with up to one chunk (64 KiB) of the input; empty at its end. It reads into
/// the buffer's spare capacity, so nothing is zero-filled first.
fn read_chunk(input: &mut impl Read, chunk: &mut Vec<u8>) -> io::Result<()> {
    chunk.clear();
    input.take(CHUNK_SIZE as u64).read_to_end(chunk)?;
    Ok(())
}

/// Decrypts the stream file at `source` into a plaintext file at `destination`, which appears only
/// if the whole stream verified. Returns the plaintext length.
pub fn decrypt_file(
    key: &FileKey,
    source: &Path,
    destination: &Path,
) -> Result<u64, AttachmentFileError> {
    let mut input = File::open(source)?;
    let decryptor = open_stream(key, &mut input)?;
    write_atomically(destination, |output| {
        decrypt_chunks(decryptor, &mut input, output)
    })
}

/// Decrypts the stream file at `source` into memory, for the app's viewers: the plaintext lives
/// only in the returned buffer, which wipes itself on drop. A stream whose plaintext would pass
/// `limit` bytes is refused before it grows past it.
pub fn decrypt_to_memory(
    key: &FileKey,
    source: &Path,
    limit: u64,
) -> Result<Zeroizing<Vec<u8>>, AttachmentFileError> {
    let mut input = File::open(source)?;
    let decryptor = open_stream(key, &mut input)?;
    let mut output = BoundedBuffer {
        bytes: Zeroizing::new(Vec::new()),
        limit,
    };
    decrypt_chunks(decryptor, &mut input, &mut output)?;
    Ok(output.bytes)
}

/// Plaintext collected in memory, refusing to grow past its limit.
struct BoundedBuffer {
    bytes: Zeroizing<Vec<u8>>,
    limit: u64,
}

impl Write for BoundedBuffer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if (self.bytes.len() + data.len()) as u64 > self.limit {
            return Err(io::Error::other("the attachment is larger than announced"));
        }
        // Growing by hand: a reallocation must not leave an unwiped copy behind.
        if self.bytes.capacity() < self.bytes.len() + data.len() {
            let wanted = (self.bytes.len() + data.len()).max(self.bytes.capacity() * 2);
            let mut grown = Zeroizing::new(Vec::with_capacity(wanted));
            grown.extend_from_slice(&self.bytes);
            self.bytes = grown;
        }
        self.bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn open_stream(key: &FileKey, input: &mut File) -> Result<Decryptor, AttachmentFileError> {
    let mut header = Vec::with_capacity(HEADER_LEN);
    input.take(HEADER_LEN as u64).read_to_end(&mut header)?;
    if header.len() < HEADER_LEN {
        return Err(StreamError::ShortHeader.into());
    }
    Ok(Decryptor::new(key, &header)?)
}

/// Decrypts the rest of `input` chunk by chunk into `output`; returns the plaintext length.
fn decrypt_chunks(
    mut decryptor: Decryptor,
    input: &mut File,
    output: &mut impl Write,
) -> Result<u64, AttachmentFileError> {
    let mut buffer = Vec::with_capacity(CHUNK_SIZE);
    let mut plaintext = Zeroizing::new(Vec::with_capacity(CHUNK_SIZE + AES_GCM_TAG_LEN));
    let mut written = 0u64;
    loop {
        read_chunk(input, &mut buffer)?;
        if buffer.is_empty() {
            break;
        }
        decryptor.update(&buffer, &mut plaintext)?;
        written += drain_into(&mut plaintext, output)?;
    }
    decryptor.finish(&mut plaintext)?;
    written += drain_into(&mut plaintext, output)?;
    Ok(written)
}

/// Writes `plaintext` out and wipes it; returns how many bytes were written.
fn drain_into(plaintext: &mut Vec<u8>, output: &mut impl Write) -> io::Result<u64> {
    output.write_all(plaintext)?;
    let len = plaintext.len() as u64;
    plaintext.zeroize();
    Ok(len)
}

/// Runs `write` against a new temporary file beside `destination`, then makes it durable and
/// renames it into place. On any error the temporary file is removed and `destination` is left as
/// it was.
fn write_atomically<T>(
    destination: &Path,
    write: impl FnOnce(&mut File) -> Result<T, AttachmentFileError>,
) -> Result<T, AttachmentFileError> {
    let temporary = temporary_path(destination)?;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary)?;
    let result = write(&mut file)
        .and_then(|value| file.sync_all().map(|()| value).map_err(Into::into))
        .and_then(|value| {
            fs::rename(&temporary, destination)
                .map(|()| value)
                .map_err(Into::into)
        });
    if result.is_err() {
        drop(file);
        // The temporary file holds at most provisional plaintext; it must not outlive the error.
        let _ = fs::remove_file(&temporary);
    }
    result
}

fn temporary_path(destination: &Path) -> io::Result<PathBuf> {
    let name = destination
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "destination has no name"))?;
    let mut random = [0u8; 8];
    ward_core::crypto::fill_random(&mut random)
        .map_err(|_| io::Error::other("the random number generator failed"))?;
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let mut temporary = name.to_os_string();
    temporary.push(format!(".ward-partial-{suffix}"));
    Ok(destination.with_file_name(temporary))
}
