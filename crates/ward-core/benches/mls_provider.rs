//! Ward's ring provider against stock openmls_rust_crypto, side by side in one run:
//! `scripts/bench`. Prints ratios (ours ÷ stock time, lower is better) with absolute times beside
//! them. Both sides run the same suite (0x004E), the same group shapes and the same signer code.
//! Not a test: nothing here fails on a slow machine.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use openmls::prelude::{
    tls_codec::{Deserialize as _, Serialize as _},
    BasicCredential, CredentialWithKey, KeyPackage, MlsGroup, MlsGroupCreateConfig, MlsMessageIn,
    ProcessedMessageContent, PURE_CIPHERTEXT_WIRE_FORMAT_POLICY,
};
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::{
    crypto::OpenMlsCrypto,
    signatures::{Signer, SignerError},
    types::SignatureScheme,
    OpenMlsProvider,
};
use ward_core::mls_provider::{WardProvider, WARD_CIPHERSUITE};

const ROUNDS: usize = 7;
const MESSAGES_PER_ROUND: usize = 300;
const GROUP_SIZE: usize = 100;
const ADDS_PER_ROUND: usize = 10;

/// Signs with the provider's own Ed25519, so each side pays its own library's signing cost.
struct ProviderSigner<'a, C: OpenMlsCrypto> {
    crypto: &'a C,
    private: Vec<u8>,
    public: Vec<u8>,
}

impl<'a, C: OpenMlsCrypto> ProviderSigner<'a, C> {
    fn new(crypto: &'a C) -> Self {
        let (private, public) = crypto.signature_key_gen(SignatureScheme::ED25519).unwrap();
        Self {
            crypto,
            private,
            public,
        }
    }

    fn credential(&self, name: String) -> CredentialWithKey {
        CredentialWithKey {
            credential: BasicCredential::new(name.into_bytes()).into(),
            signature_key: self.public.clone().into(),
        }
    }
}

impl<C: OpenMlsCrypto> Signer for ProviderSigner<'_, C> {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        self.crypto
            .sign(SignatureScheme::ED25519, payload, &self.private)
            .map_err(SignerError::CryptoError)
    }

    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

fn key_package<P: OpenMlsProvider>(provider: &P, name: String) -> KeyPackage {
    let signer = ProviderSigner::new(provider.crypto());
    KeyPackage::builder()
        .build(WARD_CIPHERSUITE, provider, &signer, signer.credential(name))
        .unwrap()
        .key_package()
        .clone()
}

fn config() -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(WARD_CIPHERSUITE)
        .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .use_ratchet_tree_extension(true)
        .build()
}

/// A group of `size` members on provider `P`, as its creator sees it, plus one joined member to
/// receive messages.
struct Bench<'a, P: OpenMlsProvider> {
    provider: &'a P,
    signer: ProviderSigner<'a, P::CryptoProvider>,
    group: MlsGroup,
}

fn group_of<P: OpenMlsProvider>(provider: &P, size: usize) -> Bench<'_, P> {
    let signer = ProviderSigner::new(provider.crypto());
    let mut group = MlsGroup::new(
        provider,
        &signer,
        &config(),
        signer.credential("creator".to_owned()),
    )
    .unwrap();
    // The other members' key packages come from a scratch provider of the same kind: only the
    // creator's side is measured.
    let members: Vec<KeyPackage> = (1..size)
        .map(|i| key_package(provider, format!("member {i}")))
        .collect();
    if !members.is_empty() {
        group.add_members(provider, &signer, &members).unwrap();
        group.merge_pending_commit(provider).unwrap();
    }
    Bench {
        provider,
        signer,
        group,
    }
}

/// Alice encrypts, Bob decrypts: `MESSAGES_PER_ROUND` 1 KiB application messages.
fn messages<P: OpenMlsProvider + Default>(alice_provider: &P, bob_provider: &P) -> Duration {
    let alice_signer = ProviderSigner::new(alice_provider.crypto());
    let mut alice = MlsGroup::new(
        alice_provider,
        &alice_signer,
        &config(),
        alice_signer.credential("alice".to_owned()),
    )
    .unwrap();
    let bob_signer = ProviderSigner::new(bob_provider.crypto());
    let bob_kp = KeyPackage::builder()
        .build(
            WARD_CIPHERSUITE,
            bob_provider,
            &bob_signer,
            bob_signer.credential("bob".to_owned()),
        )
        .unwrap();
    let (_, welcome, _) = alice
        .add_members(
            alice_provider,
            &alice_signer,
            &[bob_kp.key_package().clone()],
        )
        .unwrap();
    alice.merge_pending_commit(alice_provider).unwrap();
    let welcome =
        match MlsMessageIn::tls_deserialize_exact(welcome.tls_serialize_detached().unwrap())
            .unwrap()
            .extract()
        {
            openmls::prelude::MlsMessageBodyIn::Welcome(welcome) => welcome,
            _ => panic!("not a welcome"),
        };
    let mut bob = openmls::prelude::StagedWelcome::new_from_welcome(
        bob_provider,
        alice.configuration(),
        welcome,
        None,
    )
    .unwrap()
    .into_group(bob_provider)
    .unwrap();

    let payload = vec![0x5a; 1024];
    let start = Instant::now();
    for _ in 0..MESSAGES_PER_ROUND {
        let out = alice
            .create_message(alice_provider, &alice_signer, &payload)
            .unwrap()
            .tls_serialize_detached()
            .unwrap();
        let message = MlsMessageIn::tls_deserialize_exact(out)
            .unwrap()
            .try_into_protocol_message()
            .unwrap();
        match bob
            .process_message(bob_provider, message)
            .unwrap()
            .into_content()
        {
            ProcessedMessageContent::ApplicationMessage(m) => {
                std::hint::black_box(m.into_bytes());
            }
            _ => panic!("not an application message"),
        }
    }
    start.elapsed()
}

/// The creator of a `GROUP_SIZE` group builds the commit that adds one member, `ADDS_PER_ROUND`
/// times; each pending commit is discarded, so every add starts from the same group.
fn adds<P: OpenMlsProvider>(bench: &mut Bench<'_, P>, newcomers: &[KeyPackage]) -> Duration {
    let start = Instant::now();
    for newcomer in newcomers {
        let (commit, welcome, _) = bench
            .group
            .add_members(
                bench.provider,
                &bench.signer,
                std::slice::from_ref(newcomer),
            )
            .unwrap();
        std::hint::black_box((commit, welcome));
        bench
            .group
            .clear_pending_commit(bench.provider.storage())
            .unwrap();
    }
    start.elapsed()
}

fn per_op(time: Duration, ops: usize) -> f64 {
    time.as_secs_f64() * 1e6 / ops as f64
}

/// Best-of-rounds time of `op` on each provider, alternating, per call.
fn primitive(
    name: &str,
    calls: usize,
    mut op: impl FnMut(&dyn OpenMlsCrypto),
    ours: &dyn OpenMlsCrypto,
    stock: &dyn OpenMlsCrypto,
) {
    let mut best = [Duration::MAX; 2];
    for _ in 0..ROUNDS {
        for (slot, crypto) in [ours, stock].into_iter().enumerate() {
            let start = Instant::now();
            for _ in 0..calls {
                op(crypto);
            }
            best[slot] = best[slot].min(start.elapsed());
        }
    }
    println!(
        "  {name}: {:.3} (ours {:.2} µs, stock {:.2} µs)",
        best[0].as_secs_f64() / best[1].as_secs_f64(),
        per_op(best[0], calls),
        per_op(best[1], calls),
    );
}

fn primitives() {
    use openmls_traits::types::{AeadType, HashType};
    let ours = ward_core::mls_provider::RingCrypto::default();
    let stock = openmls_rust_crypto::RustCrypto::default();
    let (private, public) = ours.signature_key_gen(SignatureScheme::ED25519).unwrap();
    let message = vec![0x33; 200];
    let signature = ours
        .sign(SignatureScheme::ED25519, &message, &private)
        .unwrap();
    let key = [7u8; 32];
    let nonce = [9u8; 12];
    let payload = vec![0x5a; 1100];
    let sealed = ours
        .aead_encrypt(AeadType::Aes256Gcm, &key, &payload, &nonce, b"aad")
        .unwrap();
    println!("primitives, ring provider ÷ openmls_rust_crypto (lower is better):");
    primitive(
        "Ed25519 sign",
        2000,
        |c| {
            std::hint::black_box(
                c.sign(SignatureScheme::ED25519, &message, &private)
                    .unwrap(),
            );
        },
        &ours,
        &stock,
    );
    primitive(
        "Ed25519 verify",
        2000,
        |c| {
            c.verify_signature(SignatureScheme::ED25519, &message, &public, &signature)
                .unwrap();
        },
        &ours,
        &stock,
    );
    primitive(
        "AES-256-GCM seal, 1.1 KB",
        20_000,
        |c| {
            std::hint::black_box(
                c.aead_encrypt(AeadType::Aes256Gcm, &key, &payload, &nonce, b"aad")
                    .unwrap(),
            );
        },
        &ours,
        &stock,
    );
    primitive(
        "AES-256-GCM open, 1.1 KB",
        20_000,
        |c| {
            std::hint::black_box(
                c.aead_decrypt(AeadType::Aes256Gcm, &key, &sealed, &nonce, b"aad")
                    .unwrap(),
            );
        },
        &ours,
        &stock,
    );
    primitive(
        "HKDF-SHA384 expand, 48 bytes",
        20_000,
        |c| {
            std::hint::black_box(
                c.hkdf_expand(HashType::Sha2_384, &[7; 48], b"info", 48)
                    .unwrap(),
            );
        },
        &ours,
        &stock,
    );
    primitive(
        "HMAC-SHA384, 64 bytes",
        20_000,
        |c| {
            std::hint::black_box(c.hmac(HashType::Sha2_384, &key, &payload[..64]).unwrap());
        },
        &ours,
        &stock,
    );
}

fn main() {
    primitives();
    // Application messages, alternating providers each round; best round of each.
    let mut ours = Duration::MAX;
    let mut stock = Duration::MAX;
    for _ in 0..ROUNDS {
        ours = ours.min(messages(&WardProvider::default(), &WardProvider::default()));
        stock = stock.min(messages(
            &OpenMlsRustCrypto::default(),
            &OpenMlsRustCrypto::default(),
        ));
    }
    println!(
        "application message, 1 KiB, encrypt + decrypt: ring provider ÷ openmls_rust_crypto = {:.3} \
         (ours {:.1} µs, stock {:.1} µs per message; lower is better)",
        ours.as_secs_f64() / stock.as_secs_f64(),
        per_op(ours, MESSAGES_PER_ROUND),
        per_op(stock, MESSAGES_PER_ROUND),
    );

    let ward_provider = WardProvider::default();
    let stock_provider = OpenMlsRustCrypto::default();
    let mut ward_group = group_of(&ward_provider, GROUP_SIZE);
    let mut stock_group = group_of(&stock_provider, GROUP_SIZE);
    let ward_newcomers: Vec<KeyPackage> = (0..ADDS_PER_ROUND)
        .map(|i| key_package(&ward_provider, format!("newcomer {i}")))
        .collect();
    let stock_newcomers: Vec<KeyPackage> = (0..ADDS_PER_ROUND)
        .map(|i| key_package(&stock_provider, format!("newcomer {i}")))
        .collect();
    let mut ours = Duration::MAX;
    let mut stock = Duration::MAX;
    for _ in 0..ROUNDS {
        ours = ours.min(adds(&mut ward_group, &ward_newcomers));
        stock = stock.min(adds(&mut stock_group, &stock_newcomers));
    }
    println!(
        "add one member to a {GROUP_SIZE}-member group (commit + welcome): ring provider ÷ \
         openmls_rust_crypto = {:.3} (ours {:.2} ms, stock {:.2} ms per add; lower is better)",
        ours.as_secs_f64() / stock.as_secs_f64(),
        per_op(ours, ADDS_PER_ROUND) / 1000.0,
        per_op(stock, ADDS_PER_ROUND) / 1000.0,
    );
}
