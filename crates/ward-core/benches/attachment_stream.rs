//! Attachment stream against raw ring, side by side in one run: `scripts/bench`.
//! Prints ratios (ours ÷ baseline, higher is better) with the absolute throughputs beside them.
//! Not a test: nothing here fails on a slow machine.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ward_core::attachment_stream::{Decryptor, Encryptor, FileKey, CHUNK_SIZE, HEADER_LEN};

const TOTAL: usize = 256 * 1024 * 1024;
const ROUNDS: usize = 5;

fn mib_per_s(bytes: usize, time: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / time.as_secs_f64()
}

fn main() {
    let data: Vec<u8> = (0..TOTAL).map(|i| (i * 131 % 251) as u8).collect();
    let key = FileKey::generate().unwrap();
    let raw_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).unwrap());

    // Raw ring: seal_in_place over 64 KiB chunks, the floor any chunked format pays.
    let mut raw_buffer = data.clone();
    let mut raw_seal = || {
        let start = Instant::now();
        for (i, chunk) in raw_buffer.chunks_mut(CHUNK_SIZE).enumerate() {
            let mut nonce = [0u8; 12];
            nonce[4..12].copy_from_slice(&(i as u64).to_be_bytes());
            let tag = raw_key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(&[0u8; 76]),
                    chunk,
                )
                .unwrap();
            let _ = std::hint::black_box(tag);
        }
        start.elapsed()
    };
    // Ward stream: the same bytes fed in 64 KiB pieces, output drained after each piece.
    let stream_seal = || {
        let start = Instant::now();
        let mut encryptor = Encryptor::new(&key).unwrap();
        let mut out = Vec::with_capacity(2 * (CHUNK_SIZE + 16));
        for piece in data.chunks(CHUNK_SIZE) {
            encryptor.update(piece, &mut out).unwrap();
            std::hint::black_box(&out);
            out.clear();
        }
        encryptor.finish(&mut out).unwrap();
        start.elapsed()
    };
    // Ward stream, whole chunks sealed in place (what encrypt_file does), in buffers made once.
    let mut chunks: Vec<Vec<u8>> = data
        .chunks(CHUNK_SIZE)
        .map(|chunk| {
            let mut buffer = Vec::with_capacity(CHUNK_SIZE + 16);
            buffer.extend_from_slice(chunk);
            buffer
        })
        .collect();
    let mut in_place_seal = || {
        let start = Instant::now();
        let mut encryptor = Encryptor::new(&key).unwrap();
        let count = chunks.len();
        for (i, buffer) in chunks.iter_mut().enumerate() {
            buffer.truncate(CHUNK_SIZE);
            encryptor
                .seal_chunk_in_place(buffer, i + 1 == count)
                .unwrap();
        }
        start.elapsed()
    };
    // The best of several rounds, alternating the sides so machine noise hits all alike.
    let (mut raw, mut ours, mut in_place) = (Duration::MAX, Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        raw = raw.min(raw_seal());
        ours = ours.min(stream_seal());
        in_place = in_place.min(in_place_seal());
    }

    // Decryption of a whole stream, against raw ring open_in_place of the same chunks.
    let mut stream = Vec::with_capacity(TOTAL + TOTAL / CHUNK_SIZE * 16 + 200);
    let mut encryptor = Encryptor::new(&key).unwrap();
    stream.extend_from_slice(encryptor.header());
    encryptor.update(&data, &mut stream).unwrap();
    encryptor.finish(&mut stream).unwrap();
    let mut raw_sealed: Vec<Vec<u8>> = data
        .chunks(CHUNK_SIZE)
        .enumerate()
        .map(|(i, chunk)| {
            let mut sealed = chunk.to_vec();
            let mut nonce = [0u8; 12];
            nonce[4..12].copy_from_slice(&(i as u64).to_be_bytes());
            raw_key
                .seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(&[0u8; 76]),
                    &mut sealed,
                )
                .unwrap();
            sealed
        })
        .collect();
    let mut raw_open = || {
        let start = Instant::now();
        for (i, sealed) in raw_sealed.iter_mut().enumerate() {
            let mut nonce = [0u8; 12];
            nonce[4..12].copy_from_slice(&(i as u64).to_be_bytes());
            let mut copy = sealed.clone();
            let plain = raw_key
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(&[0u8; 76]),
                    &mut copy,
                )
                .unwrap();
            std::hint::black_box(plain);
        }
        start.elapsed()
    };
    let stream_open = || {
        let start = Instant::now();
        let mut decryptor = Decryptor::new(&key, &stream).unwrap();
        let mut out = Vec::with_capacity(2 * (CHUNK_SIZE + 16));
        for piece in stream[HEADER_LEN..].chunks(CHUNK_SIZE + 16) {
            decryptor.update(piece, &mut out).unwrap();
            std::hint::black_box(&out);
            out.clear();
        }
        decryptor.finish(&mut out).unwrap();
        start.elapsed()
    };
    let (mut raw_o, mut ours_o) = (Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        raw_o = raw_o.min(raw_open());
        ours_o = ours_o.min(stream_open());
    }

    println!(
        "attachment stream v1, {} MiB, best of {ROUNDS} alternating rounds",
        TOTAL >> 20
    );
    println!(
        "encrypt: stream in place / raw ring seal_in_place = {:.3}  (stream {:.0} MiB/s, raw {:.0} MiB/s; goal >= 0.90)",
        raw.as_secs_f64() / in_place.as_secs_f64(),
        mib_per_s(TOTAL, in_place),
        mib_per_s(TOTAL, raw)
    );
    println!(
        "encrypt: stream update (copies into its output) / raw ring seal_in_place = {:.3}  (stream {:.0} MiB/s)",
        raw.as_secs_f64() / ours.as_secs_f64(),
        mib_per_s(TOTAL, ours)
    );
    println!(
        "decrypt: stream / raw ring open_in_place (with the copy it needs) = {:.3}  (stream {:.0} MiB/s, raw {:.0} MiB/s)",
        raw_o.as_secs_f64() / ours_o.as_secs_f64(),
        mib_per_s(TOTAL, ours_o),
        mib_per_s(TOTAL, raw_o)
    );
}
