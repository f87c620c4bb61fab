//! The ECG decoder against a real DICOM file from pydicom and an HL7 aECG sample.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use ward_client::ecg::{decode, EcgError};

fn data(name: &str) -> Vec<u8> {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn pydicoms_twelve_lead_file_decodes_to_the_values_pydicom_reads() {
    let recording = decode(&data("waveform_ecg.dcm")).unwrap();
    assert_eq!(recording.sample_rate_hz, 1000);
    let labels: Vec<&str> = recording
        .leads
        .iter()
        .map(|lead| lead.label.as_str())
        .collect();
    assert_eq!(
        labels,
        ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    );
    assert!(recording
        .leads
        .iter()
        .all(|lead| lead.microvolts.len() == 10_000));
    // pydicom: waveform_array(0)[sample, lead], in microvolts; rounded half away from zero.
    let at = |lead: usize, sample: usize| recording.leads[lead].microvolts[sample];
    assert_eq!([at(0, 0), at(1, 0), at(2, 0)], [100, 113, 13]);
    assert_eq!([at(0, 1), at(1, 1), at(2, 1)], [81, 106, 25]);
    assert_eq!([at(0, 1000), at(1, 1000), at(2, 1000)], [71, 41, -30]);
    assert_eq!([at(0, 9999), at(1, 9999), at(2, 9999)], [25, 138, 113]);
    let lead_two = &recording.leads[1].microvolts;
    assert_eq!(lead_two.iter().min(), Some(&-209));
    assert_eq!(lead_two.iter().max(), Some(&1138));
    // Einthoven: III = II - I, to the rounding of each.
    for sample in 0..10_000 {
        assert!((at(2, sample) - (at(1, sample) - at(0, sample))).abs() <= 2);
    }
}

#[test]
fn an_aecg_file_gives_its_rhythm_leads_in_microvolts_and_skips_derived_beats() {
    let recording = decode(&data("aecg-three-leads.xml")).unwrap();
    assert_eq!(recording.sample_rate_hz, 500);
    let labels: Vec<&str> = recording
        .leads
        .iter()
        .map(|lead| lead.label.as_str())
        .collect();
    assert_eq!(labels, ["I", "II", "aVR"]);
    assert_eq!(
        recording.leads[0].microvolts,
        [0, 10, 20, 100, 1000, 200, -50, 0]
    );
    // Origin 0.01 mV is 10 µV; the scale is 2.5 µV; digits run across a line break.
    assert_eq!(
        recording.leads[1].microvolts,
        [10, 13, 15, 18, 20, 23, 25, 28]
    );
    assert_eq!(
        recording.leads[2].microvolts,
        [-1000, 0, 1000, 0, -1000, 0, 1000, 0]
    );
}

#[test]
fn damaged_and_foreign_files_are_refused_without_a_panic() {
    let real = data("waveform_ecg.dcm");
    for cut in [132, 200, 1_000, real.len() / 2, real.len() - 1] {
        assert!(decode(&real[..cut]).is_err(), "cut at {cut}");
    }
    assert_eq!(decode(b"%PDF-1.7 not an ecg"), Err(EcgError::NotAnEcg));
    assert_eq!(decode(&[0xff; 4096]), Err(EcgError::NotAnEcg));
    // The same file declared big endian, which Ward does not read.
    let explicit = b"1.2.840.10008.1.2.1\0";
    let at = real
        .windows(explicit.len())
        .position(|window| window == explicit)
        .unwrap();
    let mut big_endian = real.clone();
    big_endian[at..at + explicit.len()].copy_from_slice(b"1.2.840.10008.1.2.2\0");
    assert_eq!(decode(&big_endian), Err(EcgError::UnsupportedEncoding));
    let aecg = String::from_utf8(data("aecg-three-leads.xml")).unwrap();
    let unknown_unit = aecg.replace(
        r#"<scale value="5" unit="uV"/>"#,
        r#"<scale value="5" unit="furlong"/>"#,
    );
    assert_eq!(
        decode(unknown_unit.as_bytes()),
        Err(EcgError::UnsupportedEncoding)
    );
    let no_time = aecg.replace("TIME_ABSOLUTE", "SOMETHING_ELSE");
    assert_eq!(decode(no_time.as_bytes()), Err(EcgError::NotAnEcg));
}
