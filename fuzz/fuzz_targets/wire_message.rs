//! Untrusted relay bytes as a Ward wire message: decode, and re-encode canonically.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ward_proto::fuzzing::wire_message(data);
});
