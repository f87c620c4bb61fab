//! Untrusted attachment bytes from the relay: header and chunks, split at arbitrary points.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ward_core::fuzzing::attachment_stream(data);
});
