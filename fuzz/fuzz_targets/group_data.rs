//! A group context extension from another member as the team's group data.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ward_proto::fuzzing::group_data(data);
});
