//! Key material held by value: 32 bytes on the heap, wiped on drop, never printed. Each kind of
//! key wraps it in its own type, so a store key can never be passed where a file key belongs.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::{fill_random, CryptoError};

/// Length of a [`Secret32`] in bytes.
pub const SECRET_LEN: usize = 32;

/// 32 secret bytes, zeroized on drop, with no `Debug` that shows them and no `Serialize`.
pub struct Secret32(Box<[u8; SECRET_LEN]>);

impl Secret32 {
    /// Fresh bytes from the operating system's random number generator.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = Box::new([0u8; SECRET_LEN]);
        fill_random(bytes.as_mut_slice())?;
        Ok(Self(bytes))
    }

    /// A copy of `bytes`; `None` unless there are exactly 32. The bytes go straight to their heap
    /// home, so no stray copy is left on the stack.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != SECRET_LEN {
            return None;
        }
        let mut secret = Box::new([0u8; SECRET_LEN]);
        secret.copy_from_slice(bytes);
        Some(Self(secret))
    }

    /// The bytes, for a cipher or the keychain.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_slice()
    }
}

impl Drop for Secret32 {
    fn drop(&mut self) {
        self.0.as_mut_slice().zeroize();
    }
}

impl ZeroizeOnDrop for Secret32 {}

impl fmt::Debug for Secret32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret32(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_no_bytes_and_take_exactly_32() {
        let secret = Secret32::from_slice(&[0xAB; SECRET_LEN]).unwrap();
        assert_eq!(format!("{secret:?}"), "Secret32(<redacted>)");
        assert!(Secret32::from_slice(&[0; 31]).is_none());
        assert!(Secret32::from_slice(&[0; 33]).is_none());
        assert_ne!(
            Secret32::generate().unwrap().as_bytes(),
            Secret32::generate().unwrap().as_bytes()
        );
    }
}
