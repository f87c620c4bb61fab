//! Incoming MLS bytes for a live two-member conversation: application messages, commits,
//! welcomes, key packages and credentials.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ward_core::fuzzing::mls_incoming(data);
});
