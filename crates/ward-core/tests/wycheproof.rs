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

#[test]
fn ed25519_verification_on_the_ring_provider_matches_every_wycheproof_verdict() {
    use openmls_traits::{crypto::OpenMlsCrypto, types::SignatureScheme};
    let provider = ward_core::mls_provider::RingCrypto::default();
    let set = wycheproof::eddsa::TestSet::load(wycheproof::eddsa::TestName::Ed25519).unwrap();
    let mut checked = 0;
    for group in &set.test_groups {
        for test in &group.tests {
            let verdict = provider.verify_signature(
                SignatureScheme::ED25519,
                &test.msg,
                &group.key.pk,
                &test.sig,
            );
            match test.result {
                TestResult::Valid => {
                    assert!(verdict.is_ok(), "tc {} ({})", test.tc_id, test.comment)
                }
                TestResult::Invalid => {
                    assert!(verdict.is_err(), "tc {} ({})", test.tc_id, test.comment)
                }
                TestResult::Acceptable => {}
            }
            checked += 1;
        }
    }
    assert!(checked >= 140, "only {checked} Ed25519 vectors applied");
}

/// X25519 runs in hpke-rs, the HPKE backend of Ward's provider (alone, and inside X-Wing).
#[test]
fn x25519_in_the_hpke_backend_matches_every_wycheproof_verdict() {
    use hpke_rs_crypto::{types::KemAlgorithm, HpkeCrypto};
    use hpke_rs_rust_crypto::HpkeRustCrypto;
    let set = wycheproof::xdh::TestSet::load(wycheproof::xdh::TestName::X25519).unwrap();
    let mut checked = 0;
    for group in &set.test_groups {
        for test in &group.tests {
            let shared = HpkeRustCrypto::dh(
                KemAlgorithm::DhKem25519,
                &test.public_key,
                &test.private_key,
            );
            match test.result {
                TestResult::Valid => {
                    assert_eq!(
                        shared.as_deref().ok(),
                        Some(test.shared_secret.as_ref()),
                        "tc {} ({})",
                        test.tc_id,
                        test.comment
                    )
                }
                TestResult::Invalid => {
                    assert!(shared.is_err(), "tc {} ({})", test.tc_id, test.comment)
                }
                // Low-order and twist points: HPKE must refuse an all-zero secret, and may
                // compute the rest; whatever it computes must be the right value.
                TestResult::Acceptable => match shared {
                    Ok(shared) => {
                        assert_ne!(shared, [0u8; 32], "tc {}", test.tc_id);
                        assert_eq!(shared, test.shared_secret.as_ref(), "tc {}", test.tc_id);
                    }
                    Err(_) => assert_eq!(
                        test.shared_secret.as_ref(),
                        [0u8; 32],
                        "tc {} refused a nonzero secret",
                        test.tc_id
                    ),
                },
            }
            checked += 1;
        }
    }
    assert!(checked >= 500, "only {checked} X25519 vectors applied");
}

/// ML-KEM-768 is the post-quantum half of X-Wing in Ward's default suite.
#[test]
fn ml_kem_768_in_the_hpke_backend_matches_every_wycheproof_verdict() {
    use hpke_rs_crypto::{types::KemAlgorithm, HpkeCrypto};
    use hpke_rs_rust_crypto::HpkeRustCrypto;
    let set = wycheproof::mlkem::TestSet::load(wycheproof::mlkem::TestName::MlKem768).unwrap();
    let mut checked = 0;
    for group in &set.test_groups {
        for test in &group.tests {
            let seed: &[u8] = test.seed.as_ref().map_or(&[], |seed| seed.as_ref());
            let ciphertext: &[u8] = test.ct.as_ref().map_or(&[], |ct| ct.as_ref());
            let keys = HpkeRustCrypto::kem_key_gen_derand(KemAlgorithm::MlKem768, seed);
            let shared = keys.as_ref().map_err(|_| ()).and_then(|(_, private)| {
                HpkeRustCrypto::kem_decaps(KemAlgorithm::MlKem768, ciphertext, private)
                    .map_err(|_| ())
            });
            match test.result {
                TestResult::Valid => {
                    let (public, _) = keys.as_ref().unwrap();
                    if let Some(expected) = &test.encaps_key {
                        assert_eq!(public.as_slice(), expected.as_ref(), "tc {}", test.tc_id);
                    }
                    assert_eq!(
                        shared.as_deref().ok(),
                        test.shared_secret.as_ref().map(|k| k.as_ref()),
                        "tc {} ({})",
                        test.tc_id,
                        test.comment
                    );
                }
                TestResult::Invalid => {
                    assert!(shared.is_err(), "tc {} ({})", test.tc_id, test.comment)
                }
                TestResult::Acceptable => {}
            }
            checked += 1;
        }
    }
    assert!(checked >= 200, "only {checked} ML-KEM-768 vectors applied");
}
