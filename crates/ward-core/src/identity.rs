//! Who is speaking: a clinician's Ed25519 account key, and the device keys it vouches for.
//!
//! The account key is made on the clinician's device with ring; its PKCS#8 bytes go to the caller
//! for the keychain and never to a file. Each device has its own Ed25519 key, which signs that
//! device's MLS messages, and a [`DeviceCredential`]: the account key's signature over the user,
//! the device and the device key. The credential travels as the MLS basic credential, so every
//! member can check the chain from a leaf's signature key up to the account key that the
//! directory and the safety number show. Nothing here prints key bytes.

use std::fmt;

use openmls_traits::{
    signatures::{Signer, SignerError},
    types::SignatureScheme,
};
use ring::signature::{self, Ed25519KeyPair, KeyPair};
use ward_proto::{DeviceId, UserId};
use zeroize::Zeroizing;

use crate::secret::Secret32;

/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// What went wrong with a key or a credential. No variant carries key bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The system random number generator failed, so no key could be made.
    #[error("the system random number generator failed")]
    Randomness,
    /// The keychain returned bytes that are not a Ward account key.
    #[error("the stored account key is not a valid Ed25519 key")]
    BadAccountKey,
    /// A credential's bytes have the wrong length or version.
    #[error("the device credential is malformed")]
    MalformedCredential,
    /// A credential's signature does not verify under its account key.
    #[error("the device credential is not signed by its account key")]
    BadCredentialSignature,
    /// A device key or credential belongs to some other device.
    #[error("the device key does not match its credential")]
    KeyMismatch,
}

/// The PKCS#8 document of an account key, for the keychain only. Wiped on drop, never printed.
pub struct AccountKeyPkcs8(Zeroizing<Vec<u8>>);

impl AccountKeyPkcs8 {
    /// The bytes to store in the keychain.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for AccountKeyPkcs8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountKeyPkcs8(<redacted>)")
    }
}

/// A clinician's long-term Ed25519 key. It signs device credentials and nothing else.
pub struct AccountKey(Ed25519KeyPair);

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountKey(public {})", hex_prefix(self.public_key()))
    }
}

/// The first bytes of a public key in hex: enough to tell keys apart in a debugger.
fn hex_prefix(public: [u8; PUBLIC_KEY_LEN]) -> String {
    public[..4].iter().map(|b| format!("{b:02x}")).collect()
}

impl AccountKey {
    /// A new account key, and its PKCS#8 bytes for the keychain.
    pub fn generate() -> Result<(Self, AccountKeyPkcs8), IdentityError> {
        let document = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .map_err(|_| IdentityError::Randomness)?;
        let pkcs8 = AccountKeyPkcs8(Zeroizing::new(document.as_ref().to_vec()));
        Ok((Self::from_pkcs8(pkcs8.as_bytes())?, pkcs8))
    }

    /// The account key kept in the keychain as PKCS#8.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, IdentityError> {
        Ed25519KeyPair::from_pkcs8(pkcs8)
            .map(Self)
            .map_err(|_| IdentityError::BadAccountKey)
    }

    /// The public half, as the directory and safety numbers show it.
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        let mut public = [0u8; PUBLIC_KEY_LEN];
        public.copy_from_slice(self.0.public_key().as_ref());
        public
    }

    /// Vouches for `device_key` as device `device` of user `user`.
    pub fn issue(
        &self,
        user: UserId,
        device: DeviceId,
        device_key: &DeviceKey,
    ) -> DeviceCredential {
        let account_key = self.public_key();
        let device_key = device_key.public_key();
        let message = credential_message(&user, &device, &account_key, &device_key);
        let mut signature = [0u8; SIGNATURE_LEN];
        signature.copy_from_slice(self.0.sign(&message).as_ref());
        DeviceCredential {
            user,
            device,
            account_key,
            device_key,
            signature,
        }
    }
}

/// A device's Ed25519 key: it signs the device's MLS key packages, commits and messages.
pub struct DeviceKey {
    seed: Secret32,
    /// Expanded once: expanding per signature would double what each message costs to sign.
    pair: Ed25519KeyPair,
    public: [u8; PUBLIC_KEY_LEN],
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceKey(public {})", hex_prefix(self.public))
    }
}

impl DeviceKey {
    /// A new device key.
    pub fn generate() -> Result<Self, IdentityError> {
        Self::from_seed(Secret32::generate().map_err(|_| IdentityError::Randomness)?)
    }

    /// The device key whose 32-byte seed the keychain holds.
    pub fn from_seed(seed: Secret32) -> Result<Self, IdentityError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed.as_bytes())
            .map_err(|_| IdentityError::BadAccountKey)?;
        let mut public = [0u8; PUBLIC_KEY_LEN];
        public.copy_from_slice(pair.public_key().as_ref());
        Ok(Self { seed, pair, public })
    }

    /// The seed, for the keychain.
    pub fn seed(&self) -> &Secret32 {
        &self.seed
    }

    /// The public half: the MLS leaf's signature key.
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.public
    }
}

impl Signer for DeviceKey {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        Ok(self.pair.sign(payload).as_ref().to_vec())
    }

    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

/// Version byte of the credential layout below.
const CREDENTIAL_VERSION: u8 = 1;
/// Domain separation, so an account signature over a credential can never be read as anything else.
const CREDENTIAL_LABEL: &[u8] = b"Ward device credential v1\0";
/// Encoded length: version, user, device, account key, device key, signature.
pub const CREDENTIAL_LEN: usize = 1 + 16 + 16 + PUBLIC_KEY_LEN + PUBLIC_KEY_LEN + SIGNATURE_LEN;

fn credential_message(
    user: &UserId,
    device: &DeviceId,
    account_key: &[u8; PUBLIC_KEY_LEN],
    device_key: &[u8; PUBLIC_KEY_LEN],
) -> Vec<u8> {
    let mut message = Vec::with_capacity(CREDENTIAL_LABEL.len() + 96);
    message.extend_from_slice(CREDENTIAL_LABEL);
    message.extend_from_slice(user.as_bytes());
    message.extend_from_slice(device.as_bytes());
    message.extend_from_slice(account_key);
    message.extend_from_slice(device_key);
    message
}

/// An account key's statement that a device key belongs to one of its user's devices.
///
/// Encoded as a fixed 161 bytes: version 1, user id (16), device id (16), account key (32),
/// device key (32), Ed25519 signature (64) over `"Ward device credential v1\0"` and the four
/// fields before it.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceCredential {
    /// The clinician.
    pub user: UserId,
    /// This device of theirs.
    pub device: DeviceId,
    /// The clinician's account key, which signed this credential.
    pub account_key: [u8; PUBLIC_KEY_LEN],
    /// The device's MLS signature key.
    pub device_key: [u8; PUBLIC_KEY_LEN],
    /// The account key's signature.
    pub signature: [u8; SIGNATURE_LEN],
}

impl fmt::Debug for DeviceCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCredential")
            .field("user", &self.user)
            .field("device", &self.device)
            .field("account_key", &hex_prefix(self.account_key))
            .finish_non_exhaustive()
    }
}

impl DeviceCredential {
    /// The 161-byte encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CREDENTIAL_LEN);
        out.push(CREDENTIAL_VERSION);
        out.extend_from_slice(self.user.as_bytes());
        out.extend_from_slice(self.device.as_bytes());
        out.extend_from_slice(&self.account_key);
        out.extend_from_slice(&self.device_key);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Parses and verifies a credential from untrusted bytes.
    pub fn decode_verified(bytes: &[u8]) -> Result<Self, IdentityError> {
        let credential = Self::decode(bytes)?;
        credential.verify()?;
        Ok(credential)
    }

    /// Parses a credential without checking its signature; [`DeviceCredential::verify`] must
    /// follow before anything trusts it.
    pub fn decode(bytes: &[u8]) -> Result<Self, IdentityError> {
        let bytes: &[u8; CREDENTIAL_LEN] = bytes
            .try_into()
            .map_err(|_| IdentityError::MalformedCredential)?;
        let (version, rest) = bytes.split_at(1);
        if version != [CREDENTIAL_VERSION] {
            return Err(IdentityError::MalformedCredential);
        }
        let (user, rest) = rest.split_at(16);
        let (device, rest) = rest.split_at(16);
        let (account_key, rest) = rest.split_at(PUBLIC_KEY_LEN);
        let (device_key, signature) = rest.split_at(PUBLIC_KEY_LEN);
        let malformed = |_| IdentityError::MalformedCredential;
        Ok(Self {
            user: UserId(user.try_into().map_err(malformed)?),
            device: DeviceId(device.try_into().map_err(malformed)?),
            account_key: account_key.try_into().map_err(malformed)?,
            device_key: device_key.try_into().map_err(malformed)?,
            signature: signature
                .try_into()
                .map_err(|_| IdentityError::MalformedCredential)?,
        })
    }

    /// Checks the account key's signature.
    pub fn verify(&self) -> Result<(), IdentityError> {
        let message = credential_message(
            &self.user,
            &self.device,
            &self.account_key,
            &self.device_key,
        );
        signature::UnparsedPublicKey::new(&signature::ED25519, self.account_key)
            .verify(&message, &self.signature)
            .map_err(|_| IdentityError::BadCredentialSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (UserId, DeviceId) {
        (UserId([1; 16]), DeviceId([2; 16]))
    }

    #[test]
    fn a_credential_round_trips_and_verifies() {
        let (account, pkcs8) = AccountKey::generate().unwrap();
        let device_key = DeviceKey::generate().unwrap();
        let (user, device) = ids();
        let credential = account.issue(user, device, &device_key);
        let bytes = credential.encode();
        assert_eq!(bytes.len(), CREDENTIAL_LEN);
        assert_eq!(
            DeviceCredential::decode_verified(&bytes).unwrap(),
            credential
        );
        assert_eq!(credential.device_key, device_key.public_key());

        let reloaded = AccountKey::from_pkcs8(pkcs8.as_bytes()).unwrap();
        assert_eq!(reloaded.public_key(), account.public_key());
    }

    #[test]
    fn a_tampered_or_foreign_credential_is_refused() {
        let (account, _) = AccountKey::generate().unwrap();
        let (other, _) = AccountKey::generate().unwrap();
        let device_key = DeviceKey::generate().unwrap();
        let (user, device) = ids();
        let credential = account.issue(user, device, &device_key);

        for index in 0..CREDENTIAL_LEN {
            let mut bytes = credential.encode();
            bytes[index] ^= 0x01;
            assert!(
                DeviceCredential::decode_verified(&bytes).is_err(),
                "byte {index}"
            );
        }
        let mut swapped = credential.clone();
        swapped.account_key = other.public_key();
        assert_eq!(swapped.verify(), Err(IdentityError::BadCredentialSignature));
        assert_eq!(
            DeviceCredential::decode(&credential.encode()[..CREDENTIAL_LEN - 1]),
            Err(IdentityError::MalformedCredential)
        );
    }

    #[test]
    fn keys_print_no_secret_bytes() {
        let (account, pkcs8) = AccountKey::generate().unwrap();
        assert_eq!(format!("{pkcs8:?}"), "AccountKeyPkcs8(<redacted>)");
        let shown = format!("{account:?}");
        assert!(shown.starts_with("AccountKey(public "), "{shown}");
        let device_key = DeviceKey::generate().unwrap();
        let seed_hex: String = device_key
            .seed()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let shown = format!("{device_key:?}");
        assert!(!shown.contains(&seed_hex[..8]), "{shown}");
    }

    #[test]
    fn the_device_key_signs_for_mls_and_verifies_under_its_public_key() {
        let device_key = DeviceKey::generate().unwrap();
        let signature = Signer::sign(&device_key, b"payload").unwrap();
        signature::UnparsedPublicKey::new(&signature::ED25519, device_key.public_key())
            .verify(b"payload", &signature)
            .unwrap();
        let again =
            DeviceKey::from_seed(Secret32::from_slice(device_key.seed().as_bytes()).unwrap())
                .unwrap();
        assert_eq!(again.public_key(), device_key.public_key());
    }
}
