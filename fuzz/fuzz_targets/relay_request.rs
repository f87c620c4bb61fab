//! An untrusted client request body for one of the relay's JSON endpoints.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ward_relay::fuzzing::request(data);
});
