//! Ward's protocol core, without IO: bytes and keys go in, bytes and typed errors come out.
//!
//! The core never opens a socket, a file or a keychain; `ward-client` does the IO around it. Today
//! it holds the symmetric primitives on ring ([`crypto`]), the attachment stream format
//! ([`attachment_stream`]) and safety numbers ([`safety_number`]). It must never hand out
//! plaintext as verified before it has verified it, and never print a key.

pub mod attachment_stream;
pub mod conversation;
pub mod crypto;
pub mod identity;
pub mod mls_provider;
pub mod safety_number;
pub mod secret;

#[doc(hidden)]
pub mod fuzzing;
