//! Decrypted bytes from another member as app content, bare and padded.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ward_proto::fuzzing::app_content(data);
});
