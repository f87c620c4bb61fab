//! File-to-file encryption of a 1 GiB attachment against its two floors, side by side in one run
//! (`scripts/bench`): raw ring sealing the same bytes in memory, and a plain file copy. Also the
//! resident memory encryption adds. Prints ratios with the absolute figures; fails on nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]
#![allow(missing_docs)]

use std::io::Write;
use std::time::{Duration, Instant};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ward_client::attachment_file::encrypt_file;
use ward_core::attachment_stream::{FileKey, CHUNK_SIZE};

const TOTAL: usize = 1024 * 1024 * 1024;
const ROUNDS: usize = 3;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn mib_per_s(time: Duration) -> f64 {
    TOTAL as f64 / (1024.0 * 1024.0) / time.as_secs_f64()
}

fn main() {
    // The 1 GiB files go under the workspace's target/ unless WARD_BENCH_DIR says otherwise.
    let dir = match std::env::var_os("WARD_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target")),
    }
    .unwrap();
    let source = dir.path().join("scan.bin");
    {
        let pattern: Vec<u8> = (0..1024 * 1024)
            .map(|i: usize| (i * 131 % 251) as u8)
            .collect();
        let mut file = std::fs::File::create(&source).unwrap();
        for _ in 0..TOTAL / pattern.len() {
            file.write_all(&pattern).unwrap();
        }
    }
    let key = FileKey::generate().unwrap();
    let sealed = dir.path().join("scan.ward");

    // Memory first, before anything else is allocated: reset the peak, encrypt, read the peak.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status_kib("VmRSS:");
    encrypt_file(&key, &source, &sealed).unwrap();
    let added_mib = (status_kib("VmHWM:").saturating_sub(before)) as f64 / 1024.0;

    let raw_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).unwrap());
    let mut buffer = vec![0u8; 64 * 1024 * 1024];
    let (mut ours, mut raw, mut copy, mut durable_copy) =
        (Duration::MAX, Duration::MAX, Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        encrypt_file(&key, &source, &sealed).unwrap();
        ours = ours.min(start.elapsed());

        // Raw ring over the same number of bytes, 64 KiB at a time, in a reused buffer.
        let start = Instant::now();
        let mut index = 0u64;
        for _ in 0..TOTAL / buffer.len() {
            for chunk in buffer.chunks_mut(CHUNK_SIZE) {
                let mut nonce = [0u8; 12];
                nonce[4..12].copy_from_slice(&index.to_be_bytes());
                index += 1;
                let tag = raw_key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::empty(),
                        chunk,
                    )
                    .unwrap();
                let _ = std::hint::black_box(tag);
            }
        }
        raw = raw.min(start.elapsed());

        let start = Instant::now();
        std::fs::copy(&source, dir.path().join("copy.bin")).unwrap();
        copy = copy.min(start.elapsed());

        // encrypt_file makes its output durable before renaming it into place; so does this copy.
        let start = Instant::now();
        let target = dir.path().join("durable-copy.bin");
        std::fs::copy(&source, &target).unwrap();
        std::fs::File::open(&target).unwrap().sync_all().unwrap();
        durable_copy = durable_copy.min(start.elapsed());
    }
    let durable_floor = raw.max(durable_copy);
    let floor = raw.max(copy);
    println!("attachment file, 1 GiB, best of {ROUNDS} alternating rounds");
    println!(
        "file-to-file / min(raw ring, plain copy) = {:.3}  (ours {:.0} MiB/s; raw ring {:.0} MiB/s; copy {:.0} MiB/s; goal >= 0.80)",
        floor.as_secs_f64() / ours.as_secs_f64(),
        mib_per_s(ours),
        mib_per_s(raw),
        mib_per_s(copy)
    );
    println!(
        "file-to-file / min(raw ring, copy + fsync) = {:.3}  (copy + fsync {:.0} MiB/s)",
        durable_floor.as_secs_f64() / ours.as_secs_f64(),
        mib_per_s(durable_copy)
    );
    // The message needs the ciphertext's SHA-256, so encrypt_file hashes every byte it writes.
    let sha_input = vec![0u8; 64 * 1024 * 1024];
    let start = Instant::now();
    for _ in 0..TOTAL / sha_input.len() {
        std::hint::black_box(ring::digest::digest(&ring::digest::SHA256, &sha_input));
    }
    println!("SHA-256 alone: {:.0} MiB/s", mib_per_s(start.elapsed()));
    println!("RSS added while encrypting 1 GiB = {added_mib:.1} MiB  (goal <= 64 MiB)");
}
