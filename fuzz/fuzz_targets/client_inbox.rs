//! An inbox page from an untrusted relay, through the client's decoding, ordering and delivery.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ward_client::fuzzing::inbox(data);
});
