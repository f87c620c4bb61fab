//! Wycheproof vectors through Ward's own wrappers: every verdict must match. Groups whose
//! parameters Ward's wrappers do not offer (other key, nonce or tag sizes) are counted out
//! explicitly, so a change in the vector set cannot silently shrink what is tested.

// Helpers in a test file are test code too: a failed unwrap is the test failing, with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ward_core::crypto::{hkdf_sha256, Aes256Gcm, CryptoError};
use wycheproof::TestResult;

#[test]
fn aes_256_gcm_matches_every_wycheproof_verdict() {
    let set = wycheproof::aead::TestSet::load(wycheproof::aead::TestName::AesGcm).unwrap();
    let mut checked = 0;
    for group in &set.test_groups {
        if group.key_size != 256 || group.nonce_size != 96 || group.tag_size != 128 {
            continue;
        }
        for test in &group.tests {
            let cipher = Aes256Gcm::new(&test.key).unwrap();
            let nonce: [u8; 12] = test.nonce.as_ref().try_into().unwrap();
            let mut sealed = [test.ct.as_ref(), test.tag.as_ref()].concat();
            let opened = cipher.open_tail(nonce, &test.aad, &mut sealed, 0);
            match test.result {
                TestResult::Valid => {
                    assert_eq!(opened, Ok(()), "tc {} ({})", test.tc_id, test.comment);
                    assert_eq!(sealed, test.pt.as_ref(), "tc {}", test.tc_id);
                    let mut ours = test.pt.to_vec();
                    cipher.seal_tail(nonce, &test.aad, &mut ours, 0).unwrap();
                    assert_eq!(ours, [test.ct.as_ref(), test.tag.as_ref()].concat());
                }
                TestResult::Invalid => {
                    assert_eq!(
                        opened,
                        Err(CryptoError::Authentication),
                        "tc {}",
                        test.tc_id
                    )
                }
                TestResult::Acceptable => {}
            }
            checked += 1;
        }
    }
    assert!(checked >= 60, "only {checked} AES-256-GCM vectors applied");
}

#[test]
fn hkdf_sha256_matches_every_wycheproof_verdict() {
    let set = wycheproof::hkdf::TestSet::load(wycheproof::hkdf::TestName::HkdfSha256).unwrap();
    let mut checked = 0;
    for group in &set.test_groups {
        for test in &group.tests {
            let mut out = vec![0u8; test.size];
            let result = hkdf_sha256(&test.ikm, &test.salt, &test.info, &mut out);
            match test.result {
                TestResult::Valid => {
                    assert_eq!(result, Ok(()), "tc {} ({})", test.tc_id, test.comment);
                    assert_eq!(out, test.okm.as_ref(), "tc {}", test.tc_id);
                }
                TestResult::Invalid => {
                    assert_eq!(result, Err(CryptoError::OutputTooLong), "tc {}", test.tc_id)
                }
                TestResult::Acceptable => {}
            }
            checked += 1;
        }
    }
    assert!(checked >= 50, "only {checked} HKDF-SHA256 vectors applied");
}

/// RFC 5869's own test case 1 for HKDF-SHA256, beside Wycheproof's.
#[test]
fn hkdf_sha256_matches_rfc_5869_case_1() {
    let ikm = [0x0b; 22];
    let salt: Vec<u8> = (0x00..=0x0c).collect();
    let info: Vec<u8> = (0xf0..=0xf9).collect();
    let mut okm = [0u8; 42];
    hkdf_sha256(&ikm, &salt, &info, &mut okm).unwrap();
    let expected =
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865";
    let hex: String = okm.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, expected);
}
