//! openmls on ring: the crypto provider every Ward group runs on.
//!
//! ring does the symmetric work (AES-GCM and ChaCha20-Poly1305, HKDF and HMAC, SHA-2), Ed25519
//! signatures and randomness. HPKE, and with it the X-Wing hybrid KEM of Ward's default suite,
//! stays with hpke-rs through `openmls_rust_crypto`, because ring has no HPKE and no ML-KEM.
//! `tests/mls_provider.rs` runs this provider against stock `openmls_rust_crypto` on the same
//! inputs. The provider must never accept a suite it cannot run entirely, and never log a key.

use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::{
    crypto::OpenMlsCrypto,
    random::OpenMlsRand,
    types::{
        AeadType, Ciphersuite, CryptoError, ExporterSecret, HashType, HpkeCiphertext, HpkeConfig,
        HpkeKeyPair, SignatureScheme,
    },
    OpenMlsProvider,
};
use std::sync::Mutex;

use ring::{aead, digest, hkdf, hmac, rand::SecureRandom, signature};
use subtle::ConstantTimeEq;
use tls_codec::SecretVLBytes;
use zeroize::Zeroizing;

/// Ward's default suite: X-Wing (ML-KEM-768 + X25519), AES-256-GCM, SHA-384, Ed25519. It is an
/// IETF draft suite (0x004E); docs/decisions/0003 records the draft status and how to migrate.
pub const WARD_CIPHERSUITE: Ciphersuite =
    Ciphersuite::MLS_128_MLKEM768X25519_AES256GCM_SHA384_Ed25519;

/// The suites this provider runs end to end. The two classic X25519 suites are here for the
/// RFC 9420 test vectors; Ward's groups use [`WARD_CIPHERSUITE`].
const SUPPORTED: [Ciphersuite; 3] = [
    WARD_CIPHERSUITE,
    Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
    Ciphersuite::MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519,
];

/// Length of an Ed25519 private key as openmls stores it: the 32-byte seed.
pub const ED25519_SEED_LEN: usize = 32;

/// The crypto half of Ward's openmls provider.
pub struct RingCrypto {
    /// HPKE only: every other call goes to ring.
    hpke: RustCrypto,
    rng: ring::rand::SystemRandom,
    /// The last signing key, expanded. openmls passes the raw seed on every call, and expanding it
    /// costs as much as the signature itself; a device signs with one key almost always.
    signing: Mutex<Option<SigningKey>>,
}

struct SigningKey {
    seed: Zeroizing<[u8; ED25519_SEED_LEN]>,
    pair: signature::Ed25519KeyPair,
}

impl Default for RingCrypto {
    fn default() -> Self {
        Self {
            hpke: RustCrypto::default(),
            rng: ring::rand::SystemRandom::new(),
            signing: Mutex::new(None),
        }
    }
}

impl std::fmt::Debug for RingCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RingCrypto")
    }
}

/// The operating system's random number generator did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomnessUnavailable;

fn hmac_algorithm(hash: HashType) -> hmac::Algorithm {
    match hash {
        HashType::Sha2_256 => hmac::HMAC_SHA256,
        HashType::Sha2_384 => hmac::HMAC_SHA384,
        HashType::Sha2_512 => hmac::HMAC_SHA512,
    }
}

fn hkdf_algorithm(hash: HashType) -> hkdf::Algorithm {
    match hash {
        HashType::Sha2_256 => hkdf::HKDF_SHA256,
        HashType::Sha2_384 => hkdf::HKDF_SHA384,
        HashType::Sha2_512 => hkdf::HKDF_SHA512,
    }
}

fn digest_algorithm(hash: HashType) -> &'static digest::Algorithm {
    match hash {
        HashType::Sha2_256 => &digest::SHA256,
        HashType::Sha2_384 => &digest::SHA384,
        HashType::Sha2_512 => &digest::SHA512,
    }
}

fn aead_key(alg: AeadType, key: &[u8]) -> Result<aead::LessSafeKey, CryptoError> {
    let algorithm = match alg {
        AeadType::Aes128Gcm => &aead::AES_128_GCM,
        AeadType::Aes256Gcm => &aead::AES_256_GCM,
        AeadType::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
    };
    aead::UnboundKey::new(algorithm, key)
        .map(aead::LessSafeKey::new)
        .map_err(|_| CryptoError::InvalidLength)
}

fn aead_nonce(nonce: &[u8]) -> Result<aead::Nonce, CryptoError> {
    aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::InvalidLength)
}

/// An HKDF output length for ring, which asks for it as a key type.
struct OutputLen(usize);

impl hkdf::KeyType for OutputLen {
    fn len(&self) -> usize {
        self.0
    }
}

fn ed25519_from_seed(seed: &[u8]) -> Result<signature::Ed25519KeyPair, CryptoError> {
    signature::Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| CryptoError::InvalidLength)
}

impl OpenMlsCrypto for RingCrypto {
    fn supports(&self, ciphersuite: Ciphersuite) -> Result<(), CryptoError> {
        if SUPPORTED.contains(&ciphersuite) {
            Ok(())
        } else {
            Err(CryptoError::UnsupportedCiphersuite)
        }
    }

    fn supported_ciphersuites(&self) -> Vec<Ciphersuite> {
        SUPPORTED.to_vec()
    }

    fn hkdf_extract(
        &self,
        hash_type: HashType,
        salt: &[u8],
        ikm: &[u8],
    ) -> Result<SecretVLBytes, CryptoError> {
        // HKDF-Extract is HMAC(salt, ikm); ring keeps its PRK opaque, so compute it directly.
        self.hmac(hash_type, salt, ikm)
    }

    fn hmac(
        &self,
        hash_type: HashType,
        key: &[u8],
        message: &[u8],
    ) -> Result<SecretVLBytes, CryptoError> {
        let tag = hmac::sign(&hmac::Key::new(hmac_algorithm(hash_type), key), message);
        Ok(tag.as_ref().into())
    }

    fn hkdf_expand(
        &self,
        hash_type: HashType,
        prk: &[u8],
        info: &[u8],
        okm_len: usize,
    ) -> Result<SecretVLBytes, CryptoError> {
        let prk = hkdf::Prk::new_less_safe(hkdf_algorithm(hash_type), prk);
        let info = [info];
        let okm = prk
            .expand(&info, OutputLen(okm_len))
            .map_err(|_| CryptoError::HkdfOutputLengthInvalid)?;
        let mut out = Zeroizing::new(vec![0u8; okm_len]);
        okm.fill(&mut out)
            .map_err(|_| CryptoError::HkdfOutputLengthInvalid)?;
        Ok(out.as_slice().into())
    }

    fn hash(&self, hash_type: HashType, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Ok(digest::digest(digest_algorithm(hash_type), data)
            .as_ref()
            .to_vec())
    }

    fn aead_encrypt(
        &self,
        alg: AeadType,
        key: &[u8],
        data: &[u8],
        nonce: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let key = aead_key(alg, key)?;
        let mut out = Vec::with_capacity(data.len() + alg.tag_size());
        out.extend_from_slice(data);
        key.seal_in_place_append_tag(aead_nonce(nonce)?, aead::Aad::from(aad), &mut out)
            .map_err(|_| CryptoError::CryptoLibraryError)?;
        Ok(out)
    }

    fn aead_decrypt(
        &self,
        alg: AeadType,
        key: &[u8],
        ct_tag: &[u8],
        nonce: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let key = aead_key(alg, key)?;
        let mut buffer = ct_tag.to_vec();
        let plain_len = key
            .open_in_place(aead_nonce(nonce)?, aead::Aad::from(aad), &mut buffer)
            .map_err(|_| CryptoError::AeadDecryptionError)?
            .len();
        buffer.truncate(plain_len);
        Ok(buffer)
    }

    fn signature_key_gen(&self, alg: SignatureScheme) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
        if alg != SignatureScheme::ED25519 {
            return Err(CryptoError::UnsupportedSignatureScheme);
        }
        let mut seed = Zeroizing::new([0u8; ED25519_SEED_LEN]);
        self.rng
            .fill(seed.as_mut_slice())
            .map_err(|_| CryptoError::InsufficientRandomness)?;
        let pair = ed25519_from_seed(seed.as_slice())?;
        use signature::KeyPair;
        Ok((seed.to_vec(), pair.public_key().as_ref().to_vec()))
    }

    fn verify_signature(
        &self,
        alg: SignatureScheme,
        data: &[u8],
        pk: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError> {
        if alg != SignatureScheme::ED25519 {
            return Err(CryptoError::UnsupportedSignatureScheme);
        }
        signature::UnparsedPublicKey::new(&signature::ED25519, pk)
            .verify(data, signature)
            .map_err(|_| CryptoError::InvalidSignature)
    }

    fn sign(&self, alg: SignatureScheme, data: &[u8], key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if alg != SignatureScheme::ED25519 {
            return Err(CryptoError::UnsupportedSignatureScheme);
        }
        let seed: &[u8; ED25519_SEED_LEN] =
            key.try_into().map_err(|_| CryptoError::InvalidLength)?;
        let mut cache = self
            .signing
            .lock()
            .map_err(|_| CryptoError::CryptoLibraryError)?;
        let cached = cache
            .as_ref()
            .is_some_and(|cached| bool::from(cached.seed.as_slice().ct_eq(seed)));
        if !cached {
            *cache = Some(SigningKey {
                seed: Zeroizing::new(*seed),
                pair: ed25519_from_seed(seed)?,
            });
        }
        let pair = &cache.as_ref().ok_or(CryptoError::CryptoLibraryError)?.pair;
        Ok(pair.sign(data).as_ref().to_vec())
    }

    fn hpke_seal(
        &self,
        config: HpkeConfig,
        pk_r: &[u8],
        info: &[u8],
        aad: &[u8],
        ptxt: &[u8],
    ) -> Result<HpkeCiphertext, CryptoError> {
        self.hpke.hpke_seal(config, pk_r, info, aad, ptxt)
    }

    fn hpke_open(
        &self,
        config: HpkeConfig,
        input: &HpkeCiphertext,
        sk_r: &[u8],
        info: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.hpke.hpke_open(config, input, sk_r, info, aad)
    }

    fn hpke_setup_sender_and_export(
        &self,
        config: HpkeConfig,
        pk_r: &[u8],
        info: &[u8],
        exporter_context: &[u8],
        exporter_length: usize,
    ) -> Result<(Vec<u8>, ExporterSecret), CryptoError> {
        self.hpke.hpke_setup_sender_and_export(
            config,
            pk_r,
            info,
            exporter_context,
            exporter_length,
        )
    }

    fn hpke_setup_receiver_and_export(
        &self,
        config: HpkeConfig,
        enc: &[u8],
        sk_r: &[u8],
        info: &[u8],
        exporter_context: &[u8],
        exporter_length: usize,
    ) -> Result<ExporterSecret, CryptoError> {
        self.hpke.hpke_setup_receiver_and_export(
            config,
            enc,
            sk_r,
            info,
            exporter_context,
            exporter_length,
        )
    }

    fn derive_hpke_keypair(
        &self,
        config: HpkeConfig,
        ikm: &[u8],
    ) -> Result<HpkeKeyPair, CryptoError> {
        self.hpke.derive_hpke_keypair(config, ikm)
    }
}

impl OpenMlsRand for RingCrypto {
    type Error = RandomnessUnavailable;

    fn random_array<const N: usize>(&self) -> Result<[u8; N], Self::Error> {
        let mut out = [0u8; N];
        self.rng.fill(&mut out).map_err(|_| RandomnessUnavailable)?;
        Ok(out)
    }

    fn random_vec(&self, len: usize) -> Result<Vec<u8>, Self::Error> {
        let mut out = vec![0u8; len];
        self.rng.fill(&mut out).map_err(|_| RandomnessUnavailable)?;
        Ok(out)
    }
}

/// Everything openmls needs for one device: [`RingCrypto`] and the device's MLS state.
///
/// The state sits in openmls' in-memory store; [`WardProvider::save_state`] hands the caller its
/// bytes to keep in the encrypted local store, and [`WardProvider::load_state`] brings them back.
#[derive(Default)]
pub struct WardProvider {
    crypto: RingCrypto,
    storage: MemoryStorage,
}

impl std::fmt::Debug for WardProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WardProvider(<state redacted>)")
    }
}

/// The saved MLS state could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("the saved group state is damaged and cannot be read")]
pub struct StateDamaged;

/// First bytes of a saved state, so a future layout can be told apart and migrated.
const STATE_MAGIC: &[u8; 8] = b"WARDMLS1";

impl WardProvider {
    /// The device's MLS state as bytes, secret keys included: the caller must keep them only in
    /// the encrypted store. Entries are sorted, so the same state always saves to the same bytes.
    ///
    /// Layout: `WARDMLS1`, then per entry a big-endian u32 key length, the key, a u32 value
    /// length and the value.
    pub fn save_state(&self) -> Result<Zeroizing<Vec<u8>>, StateDamaged> {
        let values = self.storage.values.read().map_err(|_| StateDamaged)?;
        let mut entries: Vec<(&Vec<u8>, &Vec<u8>)> = values.iter().collect();
        entries.sort();
        let mut out = Zeroizing::new(Vec::from(STATE_MAGIC.as_slice()));
        for (key, value) in entries {
            for field in [key, value] {
                let len = u32::try_from(field.len()).map_err(|_| StateDamaged)?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(field);
            }
        }
        Ok(out)
    }

    /// A provider holding the state [`WardProvider::save_state`] returned.
    pub fn load_state(bytes: &[u8]) -> Result<Self, StateDamaged> {
        let mut rest = bytes
            .strip_prefix(STATE_MAGIC.as_slice())
            .ok_or(StateDamaged)?;
        let take = |rest: &mut &[u8]| -> Result<Vec<u8>, StateDamaged> {
            let (len, tail) = rest.split_first_chunk::<4>().ok_or(StateDamaged)?;
            let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| StateDamaged)?;
            if tail.len() < len {
                return Err(StateDamaged);
            }
            let (field, tail) = tail.split_at(len);
            *rest = tail;
            Ok(field.to_vec())
        };
        let mut values = std::collections::HashMap::new();
        while !rest.is_empty() {
            let key = take(&mut rest)?;
            let value = take(&mut rest)?;
            if values.insert(key, value).is_some() {
                return Err(StateDamaged);
            }
        }
        let storage = MemoryStorage::default();
        *storage.values.write().map_err(|_| StateDamaged)? = values;
        Ok(Self {
            crypto: RingCrypto::default(),
            storage,
        })
    }
}

impl OpenMlsProvider for WardProvider {
    type CryptoProvider = RingCrypto;
    type RandProvider = RingCrypto;
    type StorageProvider = MemoryStorage;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        &self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        &self.crypto
    }
}
