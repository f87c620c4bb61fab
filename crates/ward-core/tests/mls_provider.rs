//! Ward's ring provider against stock `openmls_rust_crypto` on identical inputs, the RFC 9420
//! crypto-basics vectors shipped by openmls, and a group whose members run different providers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use openmls::prelude::{
    tls_codec::{Deserialize as _, Serialize as _},
    BasicCredential, CredentialWithKey, KeyPackage, MlsGroup, MlsGroupCreateConfig,
    MlsGroupJoinConfig, MlsMessageBodyIn, MlsMessageIn, ProcessedMessageContent, StagedWelcome,
    PURE_CIPHERTEXT_WIRE_FORMAT_POLICY,
};
use openmls_rust_crypto::{OpenMlsRustCrypto, RustCrypto};
use openmls_traits::{
    crypto::OpenMlsCrypto,
    random::OpenMlsRand,
    types::{AeadType, Ciphersuite, HashType, HpkeCiphertext, HpkeConfig, SignatureScheme},
    OpenMlsProvider,
};
use serde::Deserialize;
use ward_core::identity::DeviceKey;
use ward_core::mls_provider::{RingCrypto, WardProvider, WARD_CIPHERSUITE};

const HASHES: [HashType; 3] = [HashType::Sha2_256, HashType::Sha2_384, HashType::Sha2_512];
const AEADS: [(AeadType, usize); 3] = [
    (AeadType::Aes128Gcm, 16),
    (AeadType::Aes256Gcm, 32),
    (AeadType::ChaCha20Poly1305, 32),
];

/// Deterministic filler, so each run sees the same inputs and a failure is reproducible.
fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn hashes_macs_and_hkdf_agree_with_rust_crypto() {
    let ring = RingCrypto::default();
    let stock = RustCrypto::default();
    for hash in HASHES {
        for len in [0, 1, 31, 64, 200, 5000] {
            let data = bytes(len as u8, len);
            assert_eq!(
                ring.hash(hash, &data).unwrap(),
                stock.hash(hash, &data).unwrap()
            );
            for key_len in [0, 16, 48, 200] {
                let key = bytes(7, key_len);
                assert_eq!(
                    ring.hmac(hash, &key, &data).unwrap().as_slice(),
                    stock.hmac(hash, &key, &data).unwrap().as_slice()
                );
                assert_eq!(
                    ring.hkdf_extract(hash, &key, &data).unwrap().as_slice(),
                    stock.hkdf_extract(hash, &key, &data).unwrap().as_slice()
                );
            }
        }
        let prk = ring.hkdf_extract(hash, b"salt", b"ikm").unwrap();
        let max = 255 * ring.hash(hash, b"").unwrap().len();
        for okm_len in [0, 1, 32, 48, 64, 100, max] {
            assert_eq!(
                ring.hkdf_expand(hash, prk.as_slice(), b"info", okm_len)
                    .unwrap()
                    .as_slice(),
                stock
                    .hkdf_expand(hash, prk.as_slice(), b"info", okm_len)
                    .unwrap()
                    .as_slice(),
                "{hash:?} {okm_len}"
            );
        }
        assert!(ring
            .hkdf_expand(hash, prk.as_slice(), b"", max + 1)
            .is_err());
        assert!(stock
            .hkdf_expand(hash, prk.as_slice(), b"", max + 1)
            .is_err());
    }
}

#[test]
fn aeads_agree_with_rust_crypto_and_open_each_others_ciphertexts() {
    let ring = RingCrypto::default();
    let stock = RustCrypto::default();
    for (aead, key_len) in AEADS {
        let key = bytes(1, key_len);
        let nonce = bytes(2, 12);
        for len in [0, 1, 15, 16, 17, 1000, 70_000] {
            let plain = bytes(3, len);
            let aad = bytes(4, len % 40);
            let ours = ring.aead_encrypt(aead, &key, &plain, &nonce, &aad).unwrap();
            let theirs = stock
                .aead_encrypt(aead, &key, &plain, &nonce, &aad)
                .unwrap();
            assert_eq!(ours, theirs, "{aead:?} {len}");
            assert_eq!(
                ring.aead_decrypt(aead, &key, &theirs, &nonce, &aad)
                    .unwrap(),
                plain
            );
            assert_eq!(
                stock.aead_decrypt(aead, &key, &ours, &nonce, &aad).unwrap(),
                plain
            );

            let mut tampered = ours.clone();
            tampered[len / 2] ^= 1;
            assert!(ring
                .aead_decrypt(aead, &key, &tampered, &nonce, &aad)
                .is_err());
            assert!(stock
                .aead_decrypt(aead, &key, &tampered, &nonce, &aad)
                .is_err());
        }
        assert!(ring
            .aead_decrypt(aead, &key, &[0; 15], &nonce, b"")
            .is_err());
        assert!(stock
            .aead_decrypt(aead, &key, &[0; 15], &nonce, b"")
            .is_err());
    }
}

#[test]
fn ed25519_agrees_with_rust_crypto_both_ways() {
    let ring = RingCrypto::default();
    let stock = RustCrypto::default();
    let scheme = SignatureScheme::ED25519;
    for (signer, verifier) in [
        (&ring as &dyn OpenMlsCrypto, &stock as &dyn OpenMlsCrypto),
        (&stock, &ring),
    ] {
        for len in [0, 1, 100, 10_000] {
            let (private, public) = signer.signature_key_gen(scheme).unwrap();
            let message = bytes(5, len);
            let signature = signer.sign(scheme, &message, &private).unwrap();
            // Ed25519 is deterministic: both libraries must give the very same bytes.
            assert_eq!(
                verifier.sign(scheme, &message, &private).unwrap(),
                signature
            );
            verifier
                .verify_signature(scheme, &message, &public, &signature)
                .unwrap();
            let mut forged = signature.clone();
            forged[10] ^= 1;
            assert!(verifier
                .verify_signature(scheme, &message, &public, &forged)
                .is_err());
            assert!(signer
                .verify_signature(scheme, &message, &public, &forged)
                .is_err());
        }
    }
    assert!(ring
        .signature_key_gen(SignatureScheme::ECDSA_SECP256R1_SHA256)
        .is_err());
}

#[test]
fn hpke_and_x_wing_interoperate_with_rust_crypto() {
    let ring = RingCrypto::default();
    let stock = RustCrypto::default();
    for suite in [
        WARD_CIPHERSUITE,
        Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
        Ciphersuite::MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519,
    ] {
        let config = || {
            HpkeConfig(
                suite.hpke_kem_algorithm(),
                suite.hpke_kdf_algorithm(),
                suite.hpke_aead_algorithm(),
            )
        };
        let ikm = bytes(9, 32);
        let ours = ring.derive_hpke_keypair(config(), &ikm).unwrap();
        let theirs = stock.derive_hpke_keypair(config(), &ikm).unwrap();
        assert_eq!(ours.public, theirs.public, "{suite:?}");

        let sealed = stock
            .hpke_seal(config(), &ours.public, b"info", b"aad", b"welcome secrets")
            .unwrap();
        assert_eq!(
            ring.hpke_open(config(), &sealed, &ours.private, b"info", b"aad")
                .unwrap(),
            b"welcome secrets"
        );
        let sealed = ring
            .hpke_seal(config(), &ours.public, b"info", b"aad", b"path secret")
            .unwrap();
        assert_eq!(
            stock
                .hpke_open(config(), &sealed, &theirs.private, b"info", b"aad")
                .unwrap(),
            b"path secret"
        );
        let mut tampered: HpkeCiphertext = sealed.clone();
        let mut ciphertext = tampered.ciphertext.as_slice().to_vec();
        ciphertext[0] ^= 1;
        tampered.ciphertext = ciphertext.into();
        assert!(ring
            .hpke_open(config(), &tampered, &ours.private, b"info", b"aad")
            .is_err());
    }
    assert!(ring.supports(WARD_CIPHERSUITE).is_ok());
    assert!(ring
        .supports(Ciphersuite::MLS_128_DHKEMP256_AES128GCM_SHA256_P256)
        .is_err());
    assert_eq!(ring.random_vec(40).unwrap().len(), 40);
    assert_ne!(ring.random_array::<32>().unwrap(), [0u8; 32]);
}

fn credential(name: &str, key: &DeviceKey) -> CredentialWithKey {
    CredentialWithKey {
        credential: BasicCredential::new(name.as_bytes().to_vec()).into(),
        signature_key: key.public_key().to_vec().into(),
    }
}

/// Alice runs Ward's provider and Bob the stock one: an MLS group between them must work, since
/// both compute the same key schedule from the same primitives.
#[test]
fn a_group_between_the_two_providers_works() {
    let alice_provider = WardProvider::default();
    let bob_provider = OpenMlsRustCrypto::default();
    let alice_key = DeviceKey::generate().unwrap();
    let bob_key = DeviceKey::generate().unwrap();

    let bob_key_package = KeyPackage::builder()
        .build(
            WARD_CIPHERSUITE,
            &bob_provider,
            &bob_key,
            credential("bob", &bob_key),
        )
        .unwrap();
    let config = MlsGroupCreateConfig::builder()
        .ciphersuite(WARD_CIPHERSUITE)
        .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .use_ratchet_tree_extension(true)
        .build();
    let mut alice = MlsGroup::new(
        &alice_provider,
        &alice_key,
        &config,
        credential("alice", &alice_key),
    )
    .unwrap();
    let (_commit, welcome, _) = alice
        .add_members(
            &alice_provider,
            &alice_key,
            &[bob_key_package.key_package().clone()],
        )
        .unwrap();
    alice.merge_pending_commit(&alice_provider).unwrap();

    let welcome =
        match MlsMessageIn::tls_deserialize_exact(welcome.tls_serialize_detached().unwrap())
            .unwrap()
            .extract()
        {
            MlsMessageBodyIn::Welcome(welcome) => welcome,
            other => panic!("expected a welcome, got {other:?}"),
        };
    let join = MlsGroupJoinConfig::builder()
        .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .use_ratchet_tree_extension(true)
        .build();
    let mut bob = StagedWelcome::new_from_welcome(&bob_provider, &join, welcome, None)
        .unwrap()
        .into_group(&bob_provider)
        .unwrap();
    assert_eq!(
        alice.epoch_authenticator().as_slice(),
        bob.epoch_authenticator().as_slice()
    );

    let from_alice = alice
        .create_message(&alice_provider, &alice_key, b"from ring")
        .unwrap()
        .tls_serialize_detached()
        .unwrap();
    assert_eq!(
        application_bytes(&bob_provider, &mut bob, &from_alice),
        b"from ring"
    );
    let from_bob = bob
        .create_message(&bob_provider, &bob_key, b"from rust crypto")
        .unwrap()
        .tls_serialize_detached()
        .unwrap();
    assert_eq!(
        application_bytes(&alice_provider, &mut alice, &from_bob),
        b"from rust crypto"
    );
}

fn application_bytes(
    provider: &impl OpenMlsProvider,
    group: &mut MlsGroup,
    bytes: &[u8],
) -> Vec<u8> {
    let message = MlsMessageIn::tls_deserialize_exact(bytes)
        .unwrap()
        .try_into_protocol_message()
        .unwrap();
    match group
        .process_message(provider, message)
        .unwrap()
        .into_content()
    {
        ProcessedMessageContent::ApplicationMessage(message) => message.into_bytes(),
        other => panic!("expected an application message, got {other:?}"),
    }
}

// RFC 9420 crypto-basics vectors, as shipped in openmls/test_vectors/crypto-basics.json.

#[derive(Deserialize)]
struct CryptoBasics {
    cipher_suite: u16,
    ref_hash: RefHash,
    expand_with_label: ExpandWithLabel,
    derive_secret: DeriveSecret,
    derive_tree_secret: DeriveTreeSecret,
    sign_with_label: SignWithLabel,
    encrypt_with_label: EncryptWithLabel,
}

#[derive(Deserialize)]
struct RefHash {
    label: String,
    value: String,
    out: String,
}

#[derive(Deserialize)]
struct ExpandWithLabel {
    secret: String,
    label: String,
    context: String,
    length: u16,
    out: String,
}

#[derive(Deserialize)]
struct DeriveSecret {
    secret: String,
    label: String,
    out: String,
}

#[derive(Deserialize)]
struct DeriveTreeSecret {
    secret: String,
    label: String,
    generation: u32,
    length: u16,
    out: String,
}

#[derive(Deserialize)]
struct SignWithLabel {
    #[serde(rename = "priv")]
    private: String,
    #[serde(rename = "pub")]
    public: String,
    content: String,
    label: String,
    signature: String,
}

#[derive(Deserialize)]
struct EncryptWithLabel {
    #[serde(rename = "priv")]
    private: String,
    label: String,
    context: String,
    plaintext: String,
    kem_output: String,
    ciphertext: String,
}

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text).unwrap()
}

/// An MLS `opaque<V>`: a QUIC variable-length integer, then the bytes (RFC 9420, 2.1.2).
fn opaque(out: &mut Vec<u8>, value: &[u8]) {
    let len = value.len();
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.extend_from_slice(&(0x4000 | len as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&(0x8000_0000 | len as u32).to_be_bytes());
    }
    out.extend_from_slice(value);
}

fn labeled(label: &str, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    opaque(&mut out, format!("MLS 1.0 {label}").as_bytes());
    opaque(&mut out, content);
    out
}

fn expand_with_label(
    crypto: &RingCrypto,
    hash: HashType,
    secret: &[u8],
    label: &str,
    context: &[u8],
    length: u16,
) -> Vec<u8> {
    let mut info = length.to_be_bytes().to_vec();
    info.extend(labeled(label, context));
    crypto
        .hkdf_expand(hash, secret, &info, length.into())
        .unwrap()
        .as_slice()
        .to_vec()
}

#[test]
fn the_rfc_9420_crypto_basics_vectors_pass_on_the_ring_provider() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/test_vectors/rfc9420/crypto-basics.json"
    );
    let vectors: Vec<CryptoBasics> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let crypto = RingCrypto::default();
    let mut checked = Vec::new();
    for vector in &vectors {
        let Ok(suite) = Ciphersuite::try_from(vector.cipher_suite) else {
            continue;
        };
        if crypto.supports(suite).is_err() {
            continue;
        }
        let hash = suite.hash_algorithm();

        let mut input = Vec::new();
        opaque(&mut input, vector.ref_hash.label.as_bytes());
        opaque(&mut input, &unhex(&vector.ref_hash.value));
        assert_eq!(
            crypto.hash(hash, &input).unwrap(),
            unhex(&vector.ref_hash.out)
        );

        let e = &vector.expand_with_label;
        assert_eq!(
            expand_with_label(
                &crypto,
                hash,
                &unhex(&e.secret),
                &e.label,
                &unhex(&e.context),
                e.length
            ),
            unhex(&e.out)
        );

        let d = &vector.derive_secret;
        let hash_len = crypto.hash(hash, b"").unwrap().len() as u16;
        assert_eq!(
            expand_with_label(&crypto, hash, &unhex(&d.secret), &d.label, b"", hash_len),
            unhex(&d.out)
        );

        let t = &vector.derive_tree_secret;
        assert_eq!(
            expand_with_label(
                &crypto,
                hash,
                &unhex(&t.secret),
                &t.label,
                &t.generation.to_be_bytes(),
                t.length
            ),
            unhex(&t.out)
        );

        let s = &vector.sign_with_label;
        let content = labeled(&s.label, &unhex(&s.content));
        let scheme = suite.signature_algorithm();
        crypto
            .verify_signature(scheme, &content, &unhex(&s.public), &unhex(&s.signature))
            .unwrap();
        assert_eq!(
            crypto.sign(scheme, &content, &unhex(&s.private)).unwrap(),
            unhex(&s.signature),
            "Ed25519 signatures are deterministic"
        );

        let x = &vector.encrypt_with_label;
        let config = HpkeConfig(
            suite.hpke_kem_algorithm(),
            suite.hpke_kdf_algorithm(),
            suite.hpke_aead_algorithm(),
        );
        let sealed = HpkeCiphertext {
            kem_output: unhex(&x.kem_output).into(),
            ciphertext: unhex(&x.ciphertext).into(),
        };
        let info = labeled(&x.label, &unhex(&x.context));
        assert_eq!(
            crypto
                .hpke_open(config, &sealed, &unhex(&x.private), &info, b"")
                .unwrap(),
            unhex(&x.plaintext)
        );
        checked.push(vector.cipher_suite);
    }
    assert_eq!(checked, vec![1, 3], "the X25519 suites our provider runs");
}
