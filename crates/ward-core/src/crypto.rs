//! The symmetric primitives Ward runs, on ring: AES-256-GCM and HKDF-SHA256. Everything above goes
//! through these wrappers, so the Wycheproof vectors in `tests/wycheproof.rs` test exactly the code
//! Ward runs, not ring on its own.

use std::fmt;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::hkdf;
use zeroize::Zeroize;

/// AES-256 key length in bytes.
pub const AES_256_KEY_LEN: usize = 32;
/// AES-GCM nonce length in bytes.
pub const AES_GCM_NONCE_LEN: usize = 12;
/// AES-GCM tag length in bytes.
pub const AES_GCM_TAG_LEN: usize = 16;

/// Why a primitive refused its input. None of these carries key or plaintext bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The ciphertext, its tag or its associated data failed authentication.
    #[error("authentication failed")]
    Authentication,
    /// A key has the wrong length.
    #[error("the key has the wrong length")]
    KeyLength,
    /// HKDF-SHA256 cannot produce that much output (at most 255 × 32 bytes).
    #[error("the requested HKDF output is too long")]
    OutputTooLong,
    /// The input is too long for AES-GCM.
    #[error("the input is too long for AES-GCM")]
    InputTooLong,
    /// The operating system's random number generator failed.
    #[error("the random number generator failed")]
    NoRandomness,
}

/// An AES-256-GCM key with 16-byte tags and 12-byte nonces.
pub struct Aes256Gcm(LessSafeKey);

impl Aes256Gcm {
    /// The cipher for a 32-byte key.
    pub fn new(key: &[u8]) -> Result<Self, CryptoError> {
        UnboundKey::new(&AES_256_GCM, key)
            .map(|key| Self(LessSafeKey::new(key)))
            .map_err(|_| CryptoError::KeyLength)
    }

    /// Encrypts `in_out[start..]` in place and appends the tag. The bytes before `start` are left as
    /// they are, so a caller can seal straight into the end of an output buffer.
    pub fn seal_tail(
        &self,
        nonce: [u8; AES_GCM_NONCE_LEN],
        aad: &[u8],
        in_out: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), CryptoError> {
        let plaintext = in_out.get_mut(start..).ok_or(CryptoError::InputTooLong)?;
        let tag = self
            .0
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                plaintext,
            )
            .map_err(|_| CryptoError::InputTooLong)?;
        in_out.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Decrypts `ciphertext || tag` held in `in_out[start..]` in place, leaving the plaintext
    /// there. On failure the tail is wiped and cut off, so no unauthenticated bytes remain.
    pub fn open_tail(
        &self,
        nonce: [u8; AES_GCM_NONCE_LEN],
        aad: &[u8],
        in_out: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), CryptoError> {
        let sealed = in_out.get_mut(start..).ok_or(CryptoError::Authentication)?;
        match self
            .0
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), sealed)
        {
            Ok(plaintext) => {
                let len = plaintext.len();
                in_out.truncate(start + len);
                Ok(())
            }
            Err(_) => {
                in_out[start..].zeroize();
                in_out.truncate(start);
                Err(CryptoError::Authentication)
            }
        }
    }
}

impl fmt::Debug for Aes256Gcm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Aes256Gcm(<redacted>)")
    }
}

/// HKDF-SHA256 (RFC 5869): extract with `salt`, then expand with `info` into all of `out`.
pub fn hkdf_sha256(
    ikm: &[u8],
    salt: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let info = [info];
    let okm = prk
        .expand(&info, Len(out.len()))
        .map_err(|_| CryptoError::OutputTooLong)?;
    okm.fill(out).map_err(|_| CryptoError::OutputTooLong)
}

/// Fills `out` from the operating system's random number generator.
pub fn fill_random(out: &mut [u8]) -> Result<(), CryptoError> {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new()
        .fill(out)
        .map_err(|_| CryptoError::NoRandomness)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cipher_prints_no_key() {
        let cipher = Aes256Gcm::new(&[9; AES_256_KEY_LEN]).unwrap();
        assert_eq!(format!("{cipher:?}"), "Aes256Gcm(<redacted>)");
    }

    #[test]
    fn seal_tail_leaves_the_prefix_alone_and_open_reverses_it() {
        let cipher = Aes256Gcm::new(&[1; AES_256_KEY_LEN]).unwrap();
        let mut buffer = b"prefix".to_vec();
        buffer.extend_from_slice(b"secret");
        cipher.seal_tail([2; 12], b"aad", &mut buffer, 6).unwrap();
        assert_eq!(&buffer[..6], b"prefix");
        assert_eq!(buffer.len(), 6 + 6 + AES_GCM_TAG_LEN);
        let mut sealed = buffer[6..].to_vec();
        cipher.open_tail([2; 12], b"aad", &mut sealed, 0).unwrap();
        assert_eq!(sealed, b"secret");
        let mut sealed = buffer.clone();
        assert_eq!(
            cipher.open_tail([2; 12], b"other aad", &mut sealed, 6),
            Err(CryptoError::Authentication)
        );
        assert_eq!(sealed, b"prefix");
    }

    #[test]
    fn keys_of_the_wrong_length_are_refused() {
        assert_eq!(Aes256Gcm::new(&[0; 16]).err(), Some(CryptoError::KeyLength));
    }
}
