//! Entry points for the fuzz targets in `fuzz/`, kept here so `cargo test` replays the checked-in
//! corpus through exactly the code the fuzzer ran. Not part of Ward's API.

use crate::attachment_stream::{decrypt_to_vec, Decryptor, FileKey, HEADER_LEN};

/// The key the fuzz corpus was encrypted under; fuzzing only ever sees test data.
pub const FUZZ_KEY: [u8; 32] = [0x42; 32];

/// Decodes `data` as an attachment stream under [`FUZZ_KEY`], feeding the body in pieces whose
/// sizes the first byte chooses. It must return, never panic, whatever the bytes; and the
/// streaming and whole-buffer decoders must agree.
pub fn attachment_stream(data: &[u8]) {
    let Some(key) = FileKey::from_slice(&FUZZ_KEY) else {
        return;
    };
    let piece = 1 + usize::from(data.first().copied().unwrap_or(0)) * 97;
    let whole = decrypt_to_vec(&key, data);

    let streamed = Decryptor::new(&key, data).and_then(|mut decryptor| {
        let mut out = Vec::new();
        for chunk in data.get(HEADER_LEN..).unwrap_or_default().chunks(piece) {
            decryptor.update(chunk, &mut out)?;
        }
        decryptor.finish(&mut out)?;
        Ok(out)
    });
    assert_eq!(
        whole, streamed,
        "the streaming and whole-buffer decoders disagree"
    );
}
