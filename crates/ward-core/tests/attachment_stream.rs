//! Properties of Ward stream v1: round trips at the sizes around chunk boundaries, and a typed
//! error for every way a stream can be cut, reordered, extended or changed.

// Helpers in a test file are test code too: a failed unwrap is the test failing, with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ward_core::attachment_stream::{
    decrypt_to_vec, encrypt_to_vec, Decryptor, Encryptor, FileKey, StreamError, CHUNK_SIZE,
    HEADER_LEN,
};

const RECORD: usize = CHUNK_SIZE + 16;

/// Deterministic, non-repeating test bytes.
fn plaintext(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ len as u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn key() -> FileKey {
    FileKey::generate().unwrap()
}

#[test]
fn round_trips_at_every_boundary_size() {
    for len in [
        0,
        1,
        CHUNK_SIZE - 1,
        CHUNK_SIZE,
        CHUNK_SIZE + 1,
        2 * CHUNK_SIZE,
        3 * 1024 * 1024 + 12_345,
    ] {
        let key = key();
        let data = plaintext(len);
        let stream = encrypt_to_vec(&key, &data).unwrap();
        let chunks = len / CHUNK_SIZE + usize::from(len % CHUNK_SIZE != 0 || len == 0);
        assert_eq!(stream.len(), HEADER_LEN + len + 16 * chunks, "size {len}");
        assert_eq!(decrypt_to_vec(&key, &stream).unwrap(), data, "size {len}");
    }
}

#[test]
fn streaming_in_odd_pieces_gives_the_same_bytes() {
    let key = key();
    let data = plaintext(2 * CHUNK_SIZE + 777);
    let mut encryptor = Encryptor::new(&key).unwrap();
    let mut stream = encryptor.header().to_vec();
    for piece in data.chunks(9_999) {
        encryptor.update(piece, &mut stream).unwrap();
    }
    encryptor.finish(&mut stream).unwrap();

    let mut decryptor = Decryptor::new(&key, &stream).unwrap();
    let mut out = Vec::new();
    for piece in stream[HEADER_LEN..].chunks(4_321) {
        decryptor.update(piece, &mut out).unwrap();
    }
    decryptor.finish(&mut out).unwrap();
    assert_eq!(out, data);
}

#[test]
fn the_same_file_encrypts_differently_each_time() {
    let key = key();
    let data = plaintext(100);
    assert_ne!(
        encrypt_to_vec(&key, &data).unwrap(),
        encrypt_to_vec(&key, &data).unwrap()
    );
}

/// A three-chunk stream and its parts: header, full chunk 0, full chunk 1, last chunk 2.
fn three_chunks() -> (FileKey, Vec<u8>, Vec<Vec<u8>>) {
    let key = key();
    let stream = encrypt_to_vec(&key, &plaintext(2 * CHUNK_SIZE + 100)).unwrap();
    let body = &stream[HEADER_LEN..];
    let parts = vec![
        stream[..HEADER_LEN].to_vec(),
        body[..RECORD].to_vec(),
        body[RECORD..2 * RECORD].to_vec(),
        body[2 * RECORD..].to_vec(),
    ];
    (key, stream, parts)
}

fn join(parts: &[&Vec<u8>]) -> Vec<u8> {
    parts.iter().flat_map(|part| part.iter().copied()).collect()
}

#[test]
fn every_kind_of_damage_is_a_typed_error() {
    let (key, stream, p) = three_chunks();
    let (h, c0, c1, c2) = (&p[0], &p[1], &p[2], &p[3]);
    let cases: Vec<(&str, Vec<u8>, StreamError)> = vec![
        (
            "truncated inside a chunk",
            stream[..stream.len() - 5].to_vec(),
            StreamError::ChunkRejected { index: 2 },
        ),
        (
            "truncated at a chunk boundary",
            join(&[h, c0, c1]),
            StreamError::Truncated,
        ),
        ("missing last chunk", join(&[h, c0]), StreamError::Truncated),
        ("only the header", h.clone(), StreamError::Truncated),
        (
            "reordered chunks",
            join(&[h, c1, c0, c2]),
            StreamError::ChunkRejected { index: 0 },
        ),
        (
            "duplicated chunk",
            join(&[h, c0, c0, c1, c2]),
            StreamError::ChunkRejected { index: 1 },
        ),
        (
            "dropped chunk",
            join(&[h, c0, c2]),
            StreamError::ChunkRejected { index: 1 },
        ),
        // A short last chunk and a copy of it read as one oversized record.
        (
            "extra chunk after a short end",
            join(&[h, c0, c1, c2, c2]),
            StreamError::ChunkRejected { index: 2 },
        ),
        (
            "extra byte after the end",
            [stream.clone(), vec![0]].concat(),
            StreamError::ChunkRejected { index: 2 },
        ),
    ];
    for (name, bytes, expected) in cases {
        assert_eq!(decrypt_to_vec(&key, &bytes), Err(expected), "{name}");
    }
}

#[test]
fn a_chunk_after_a_full_last_chunk_is_data_after_the_end() {
    let key = key();
    let stream = encrypt_to_vec(&key, &plaintext(2 * CHUNK_SIZE)).unwrap();
    assert_eq!(stream.len(), HEADER_LEN + 2 * RECORD);
    let last = stream[HEADER_LEN + RECORD..].to_vec();
    let extended = [stream.clone(), last].concat();
    assert_eq!(
        decrypt_to_vec(&key, &extended),
        Err(StreamError::DataAfterEnd)
    );
    assert_eq!(
        decrypt_to_vec(&key, &stream).unwrap(),
        plaintext(2 * CHUNK_SIZE)
    );
}

#[test]
fn a_flipped_header_bit_or_a_wrong_key_fails_before_any_chunk() {
    let (key, stream, _) = three_chunks();
    for bit in [0, 7 * 8, 8 * 8 + 7, 12 * 8, 44 * 8, HEADER_LEN * 8 - 1] {
        let mut changed = stream.clone();
        changed[bit / 8] ^= 1 << (bit % 8);
        let error = decrypt_to_vec(&key, &changed).unwrap_err();
        assert!(
            matches!(
                error,
                StreamError::NotAStream
                    | StreamError::UnsupportedVersion(_)
                    | StreamError::UnsupportedChunkSize
                    | StreamError::WrongKey
            ),
            "bit {bit}: {error:?}"
        );
    }
    assert_eq!(
        decrypt_to_vec(&self::key(), &stream),
        Err(StreamError::WrongKey)
    );
    assert_eq!(
        decrypt_to_vec(&key, &stream[..10]),
        Err(StreamError::ShortHeader)
    );
}

#[test]
fn a_flipped_bit_in_any_chunk_is_caught_at_that_chunk() {
    let (key, stream, _) = three_chunks();
    for (index, offset) in [(0u64, 5usize), (1, RECORD + 100), (2, 2 * RECORD + 3)] {
        let mut changed = stream.clone();
        changed[HEADER_LEN + offset] ^= 0x80;
        assert_eq!(
            decrypt_to_vec(&key, &changed),
            Err(StreamError::ChunkRejected { index })
        );
    }
}

#[test]
fn a_chunk_from_another_stream_under_the_same_key_is_rejected() {
    let key = key();
    let a = encrypt_to_vec(&key, &plaintext(100)).unwrap();
    let b = encrypt_to_vec(&key, &plaintext(100)).unwrap();
    let spliced = [&a[..HEADER_LEN], &b[HEADER_LEN..]].concat();
    assert_eq!(
        decrypt_to_vec(&key, &spliced),
        Err(StreamError::ChunkRejected { index: 0 })
    );
}

#[test]
fn sealing_whole_chunks_in_place_gives_a_stream_the_decoder_reads() {
    for len in [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE] {
        let key = key();
        let data = plaintext(len);
        let mut encryptor = Encryptor::new(&key).unwrap();
        let mut stream = encryptor.header().to_vec();
        let mut chunks: Vec<&[u8]> = data.chunks(CHUNK_SIZE).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for (i, chunk) in chunks.iter().enumerate() {
            let mut buffer = chunk.to_vec();
            encryptor
                .seal_chunk_in_place(&mut buffer, i + 1 == chunks.len())
                .unwrap();
            stream.extend_from_slice(&buffer);
        }
        assert_eq!(decrypt_to_vec(&key, &stream).unwrap(), data, "size {len}");
        // Nothing may follow the last chunk.
        assert_eq!(
            encryptor.seal_chunk_in_place(&mut vec![0; 3], true),
            Err(StreamError::BadChunkLength)
        );
    }
}

#[test]
fn only_the_last_chunk_may_be_short() {
    let mut encryptor = Encryptor::new(&key()).unwrap();
    assert_eq!(
        encryptor.seal_chunk_in_place(&mut vec![0; CHUNK_SIZE - 1], false),
        Err(StreamError::BadChunkLength)
    );
    assert_eq!(
        encryptor.seal_chunk_in_place(&mut vec![0; CHUNK_SIZE + 1], true),
        Err(StreamError::BadChunkLength)
    );
}
