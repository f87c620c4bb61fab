//! Safety numbers: what two clinicians compare, aloud or by scanning a QR code, to know that the
//! keys their apps use are really each other's.
//!
//! The algorithm is libsignal's numeric fingerprint: for each party,
//! `h = SHA-512(version || key || stable id || key)`, then `iterations − 1` more rounds of
//! `h = SHA-512(h || key)`. The first 30 bytes of `h` become six 5-digit groups (each 5 bytes,
//! big-endian, mod 100 000), and the two parties' 30 digits are joined lower first, so both see the
//! same 60 digits. With libsignal's version bytes (0, 0) it reproduces libsignal's published vector;
//! Ward uses its own version bytes ("W1") so a Ward number can never be mistaken for another app's.

use ring::digest;
use subtle::ConstantTimeEq;

/// The version bytes of libsignal's fingerprint format, for the test vector.
pub const LIBSIGNAL_VERSION: [u8; 2] = [0, 0];
/// Ward's version bytes: "W1".
pub const WARD_VERSION: [u8; 2] = *b"W1";
/// Hash rounds, as in libsignal.
pub const ITERATIONS: u32 = 5200;
/// The QR payload's magic and format version.
const QR_MAGIC: &[u8; 4] = b"WSN\x01";
const HASH_PREFIX: usize = 32;
/// Length of the QR payload.
pub const QR_PAYLOAD_LEN: usize = QR_MAGIC.len() + 2 * HASH_PREFIX;

/// One party's identity as the safety number sees it.
#[derive(Debug, Clone, Copy)]
pub struct Party<'a> {
    /// A stable id: Ward's user id.
    pub id: &'a [u8],
    /// The party's public account key.
    pub key: &'a [u8],
}

/// The safety number between "me" and one contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyNumber {
    digits: String,
    local: [u8; HASH_PREFIX],
    remote: [u8; HASH_PREFIX],
}

/// Why a scanned code could not be compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// The code is not a Ward safety-number code, or of a version this Ward does not read.
    #[error("this is not a Ward safety number code")]
    NotASafetyNumber,
}

impl SafetyNumber {
    /// The safety number between `local` and `remote`, with Ward's version bytes.
    pub fn new(local: Party<'_>, remote: Party<'_>) -> Self {
        Self::with_version(WARD_VERSION, ITERATIONS, local, remote)
    }

    /// The safety number with explicit version bytes and rounds (libsignal's vector uses
    /// [`LIBSIGNAL_VERSION`]).
    pub fn with_version(
        version: [u8; 2],
        iterations: u32,
        local: Party<'_>,
        remote: Party<'_>,
    ) -> Self {
        let local_hash = party_hash(version, iterations, local);
        let remote_hash = party_hash(version, iterations, remote);
        let (local_digits, remote_digits) = (digits(&local_hash), digits(&remote_hash));
        let digits = if local_digits <= remote_digits {
            local_digits + &remote_digits
        } else {
            remote_digits + &local_digits
        };
        let mut local = [0u8; HASH_PREFIX];
        local.copy_from_slice(&local_hash.as_ref()[..HASH_PREFIX]);
        let mut remote = [0u8; HASH_PREFIX];
        remote.copy_from_slice(&remote_hash.as_ref()[..HASH_PREFIX]);
        Self {
            digits,
            local,
            remote,
        }
    }

    /// The 60 digits.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// The 60 digits in 12 groups of 5, as the contact view shows them.
    pub fn grouped(&self) -> Vec<&str> {
        (0..12)
            .filter_map(|group| self.digits.get(group * 5..group * 5 + 5))
            .collect()
    }

    /// The bytes this side shows as a QR code: magic, my hash prefix, the contact's.
    pub fn qr_payload(&self) -> [u8; QR_PAYLOAD_LEN] {
        let mut payload = [0u8; QR_PAYLOAD_LEN];
        payload[..4].copy_from_slice(QR_MAGIC);
        payload[4..4 + HASH_PREFIX].copy_from_slice(&self.local);
        payload[4 + HASH_PREFIX..].copy_from_slice(&self.remote);
        payload
    }

    /// Whether a code scanned from the contact's screen shows the same keys: their "local" must be
    /// my "remote" and the other way round. The comparison takes the same time wherever the bytes
    /// differ.
    pub fn matches_scanned(&self, scanned: &[u8]) -> Result<bool, ScanError> {
        if scanned.len() != QR_PAYLOAD_LEN || &scanned[..4] != QR_MAGIC {
            return Err(ScanError::NotASafetyNumber);
        }
        let mut expected = [0u8; 2 * HASH_PREFIX];
        expected[..HASH_PREFIX].copy_from_slice(&self.remote);
        expected[HASH_PREFIX..].copy_from_slice(&self.local);
        Ok(bool::from(expected.ct_eq(&scanned[4..])))
    }
}

fn party_hash(version: [u8; 2], iterations: u32, party: Party<'_>) -> digest::Digest {
    let mut context = digest::Context::new(&digest::SHA512);
    context.update(&version);
    context.update(party.key);
    context.update(party.id);
    context.update(party.key);
    let mut hash = context.finish();
    for _ in 1..iterations {
        let mut context = digest::Context::new(&digest::SHA512);
        context.update(hash.as_ref());
        context.update(party.key);
        hash = context.finish();
    }
    hash
}

fn digits(hash: &digest::Digest) -> String {
    hash.as_ref()[..30]
        .chunks(5)
        .map(|chunk| {
            let value = chunk
                .iter()
                .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
            format!("{:05}", value % 100_000)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// libsignal's published vector (fingerprint tests, version 1): two 33-byte identity keys, two
    /// phone numbers as stable ids, 5200 rounds.
    #[test]
    fn reproduces_libsignals_published_vector() {
        let alice_key = hex("0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868");
        let bob_key = hex("05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b");
        let alice = Party {
            id: b"+14152222222",
            key: &alice_key,
        };
        let bob = Party {
            id: b"+14153333333",
            key: &bob_key,
        };
        let expected = "300354477692869396892869876765458257569162576843440918079131";

        let from_alice = SafetyNumber::with_version(LIBSIGNAL_VERSION, 5200, alice, bob);
        let from_bob = SafetyNumber::with_version(LIBSIGNAL_VERSION, 5200, bob, alice);
        assert_eq!(from_alice.digits(), expected);
        assert_eq!(from_bob.digits(), expected);
        // The per-party hash prefixes libsignal's scannable fingerprint carries.
        assert_eq!(
            from_alice.local.to_vec(),
            hex("1e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df")
        );
        assert_eq!(
            from_alice.remote.to_vec(),
            hex("d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d")
        );
    }

    #[test]
    fn both_sides_agree_and_scanning_each_other_matches() {
        let (alice_key, bob_key, mallory_key) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        let alice = Party {
            id: b"u-alice",
            key: &alice_key,
        };
        let bob = Party {
            id: b"u-bob",
            key: &bob_key,
        };
        let on_alice = SafetyNumber::new(alice, bob);
        let on_bob = SafetyNumber::new(bob, alice);
        assert_eq!(on_alice.digits(), on_bob.digits());
        assert_eq!(on_alice.digits().len(), 60);
        assert_eq!(on_alice.grouped().len(), 12);
        assert!(on_alice.grouped().iter().all(|group| group.len() == 5));
        assert_eq!(on_alice.matches_scanned(&on_bob.qr_payload()), Ok(true));
        assert_eq!(on_bob.matches_scanned(&on_alice.qr_payload()), Ok(true));
        // Scanning one's own code is not verification.
        assert_eq!(on_alice.matches_scanned(&on_alice.qr_payload()), Ok(false));

        // A swapped key for Bob changes the number and fails the scan.
        let mallory = Party {
            id: b"u-bob",
            key: &mallory_key,
        };
        let swapped = SafetyNumber::new(mallory, alice);
        assert_ne!(swapped.digits(), on_alice.digits());
        assert_eq!(on_alice.matches_scanned(&swapped.qr_payload()), Ok(false));
        assert_eq!(
            on_alice.matches_scanned(b"not a code"),
            Err(ScanError::NotASafetyNumber)
        );
    }

    #[test]
    fn wards_numbers_differ_from_libsignals_for_the_same_keys() {
        let key = [7u8; 32];
        let party = Party {
            id: b"u-1",
            key: &key,
        };
        let other_key = [8u8; 32];
        let other = Party {
            id: b"u-2",
            key: &other_key,
        };
        assert_ne!(
            SafetyNumber::new(party, other).digits(),
            SafetyNumber::with_version(LIBSIGNAL_VERSION, ITERATIONS, party, other).digits()
        );
    }
}
