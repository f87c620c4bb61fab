//! Attachment files on real disk: encrypted files round-trip, and a damaged, cut or foreign stream
//! leaves no plaintext file behind, whole or partial, and never touches an existing file.

// Helpers in a test file are test code too: a failed unwrap is the test failing, with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use ring::digest;
use ward_client::attachment_file::{decrypt_file, encrypt_file, AttachmentFileError};
use ward_core::attachment_stream::{FileKey, StreamError, CHUNK_SIZE, HEADER_LEN};

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn files_round_trip_and_the_summary_describes_the_ciphertext() {
    let dir = tempfile::tempdir().unwrap();
    for len in [
        0,
        1,
        CHUNK_SIZE - 1,
        CHUNK_SIZE,
        CHUNK_SIZE + 1,
        3 * 1024 * 1024 + 7,
    ] {
        let key = FileKey::generate().unwrap();
        let (plain, sealed, opened) = (
            dir.path().join(format!("ekg-{len}.dcm")),
            dir.path().join(format!("ekg-{len}.ward")),
            dir.path().join(format!("ekg-{len}-saved.dcm")),
        );
        std::fs::write(&plain, bytes(len)).unwrap();
        let summary = encrypt_file(&key, &plain, &sealed).unwrap();
        let stream = std::fs::read(&sealed).unwrap();
        assert_eq!(summary.plaintext_len, len as u64);
        assert_eq!(summary.ciphertext_len, stream.len() as u64);
        assert_eq!(
            summary.ciphertext_sha256.as_slice(),
            digest::digest(&digest::SHA256, &stream).as_ref()
        );
        if len >= 16 {
            let needle = &bytes(len)[..16];
            assert!(!stream.windows(16).any(|window| window == needle));
        }

        assert_eq!(decrypt_file(&key, &sealed, &opened).unwrap(), len as u64);
        assert_eq!(std::fs::read(&opened).unwrap(), bytes(len));
    }
    assert!(!names(dir.path())
        .iter()
        .any(|name| name.contains(".ward-partial-")));
}

#[test]
fn a_bad_stream_leaves_no_file_and_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = FileKey::generate().unwrap();
    let plain = dir.path().join("report.pdf");
    let sealed = dir.path().join("report.ward");
    std::fs::write(&plain, bytes(2 * CHUNK_SIZE + 500)).unwrap();
    encrypt_file(&key, &plain, &sealed).unwrap();
    let stream = std::fs::read(&sealed).unwrap();

    let mut flipped = stream.clone();
    flipped[HEADER_LEN + CHUNK_SIZE + 40] ^= 1;
    let cases: Vec<(&str, Vec<u8>, FileKey, StreamError)> = vec![
        (
            "cut at the first chunk",
            stream[..HEADER_LEN + CHUNK_SIZE + 16].to_vec(),
            FileKey::from_slice(key.as_bytes()).unwrap(),
            StreamError::Truncated,
        ),
        (
            "cut mid-chunk",
            stream[..stream.len() - 1].to_vec(),
            FileKey::from_slice(key.as_bytes()).unwrap(),
            StreamError::ChunkRejected { index: 2 },
        ),
        (
            "flipped bit",
            flipped,
            FileKey::from_slice(key.as_bytes()).unwrap(),
            StreamError::ChunkRejected { index: 1 },
        ),
        (
            "wrong key",
            stream.clone(),
            FileKey::generate().unwrap(),
            StreamError::WrongKey,
        ),
        (
            "header only",
            stream[..HEADER_LEN].to_vec(),
            FileKey::from_slice(key.as_bytes()).unwrap(),
            StreamError::Truncated,
        ),
        (
            "too short",
            stream[..10].to_vec(),
            FileKey::from_slice(key.as_bytes()).unwrap(),
            StreamError::ShortHeader,
        ),
    ];
    for (name, damaged, key, expected) in cases {
        let source = dir.path().join("damaged.ward");
        std::fs::write(&source, &damaged).unwrap();
        let before = names(dir.path());
        let destination = dir.path().join("saved.pdf");
        let error = decrypt_file(&key, &source, &destination).unwrap_err();
        assert!(
            matches!(&error, AttachmentFileError::Stream(e) if *e == expected),
            "{name}: {error:?}"
        );
        assert!(!destination.exists(), "{name}: a file was left behind");
        assert_eq!(names(dir.path()), before, "{name}: the folder changed");
    }

    // An existing file at the destination is left exactly as it was.
    let destination = dir.path().join("keep.pdf");
    std::fs::write(&destination, b"the clinician's own file").unwrap();
    let source = dir.path().join("damaged.ward");
    std::fs::write(&source, &stream[..stream.len() - 1]).unwrap();
    assert!(decrypt_file(&key, &source, &destination).is_err());
    assert_eq!(
        std::fs::read(&destination).unwrap(),
        b"the clinician's own file"
    );
}
