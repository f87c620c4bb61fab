//! Attachment bytes opened in the ECG viewer: the DICOM and HL7 aECG decoder.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ward_client::fuzzing::ecg(data);
});
