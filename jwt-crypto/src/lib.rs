//! JWS signature verification (RFC 7518 §3, RFC 8037) over the signing input and the decoded
//! signature, with keys prepared once when the JWKS loads.
//!
//! - RS256/384/512 and PS256/384/512: `rsa.rs` (crypto-bigint Montgomery exponentiation);
//! - ES256 and ES384: `ecdsa.rs` on 32-bit-limb field arithmetic (`field.rs`, `curves.rs`,
//!   `p256.rs`; inversions in `modinv.rs`);
//! - EdDSA (Ed25519): `ed25519-compact`;
//! - HS256/384/512: `hmac` over `sha2`, compared in constant time.
//!
//! A crate of its own so that it is built at `opt-level = 3` while the rest of the module is built
//! for size (docs/module-size.md). It knows nothing of tokens: the filter's `jwt/verify.rs`
//! parses them and `jwt/keys.rs` builds the keys.
//! Each verifier is checked against the Wycheproof vectors (`wycheproof_tests.rs`) and fuzzed
//! differentially against RustCrypto (`fuzz/fuzz_targets/jwt_verify_diff.rs`).

mod curves;
mod ecdsa;
mod field;
mod modinv;
mod p256;
mod rsa;
#[cfg(test)]
pub mod tests;
#[cfg(test)]
mod wycheproof_tests;

use std::sync::Arc;

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Sha256, Sha384, Sha512};

pub use curves::{P256, P384};
pub use ecdsa::EcPublicKey;
pub use ed25519_compact::PublicKey as Ed25519PublicKey;
pub use rsa::RsaPublicKey;

/// A hash of the SHA-2 family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// The hash of the concatenation of `parts`.
    pub fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: sha2::Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut h = D::new();
            for p in parts {
                h.update(p);
            }
            h.finalize().to_vec()
        }
        match self {
            HashAlg::Sha256 => run::<Sha256>(parts),
            HashAlg::Sha384 => run::<Sha384>(parts),
            HashAlg::Sha512 => run::<Sha512>(parts),
        }
    }

    /// The DER `DigestInfo` header that precedes the digest in PKCS#1 v1.5 (RFC 8017 §9.2 note 1).
    pub fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            HashAlg::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            HashAlg::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            HashAlg::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}

/// An HMAC key with the secret already absorbed (the inner and outer pads are hashed once).
#[derive(Clone)]
pub enum HmacKey {
    /// HS256.
    Sha256(Hmac<Sha256>),
    /// HS384.
    Sha384(Hmac<Sha384>),
    /// HS512.
    Sha512(Hmac<Sha512>),
}

impl HmacKey {
    /// The key for `hash` and `secret` (any length is accepted by HMAC; `keys.rs` sets a floor).
    pub fn new(hash: HashAlg, secret: &[u8]) -> Option<Self> {
        Some(match hash {
            HashAlg::Sha256 => HmacKey::Sha256(Hmac::new_from_slice(secret).ok()?),
            HashAlg::Sha384 => HmacKey::Sha384(Hmac::new_from_slice(secret).ok()?),
            HashAlg::Sha512 => HmacKey::Sha512(Hmac::new_from_slice(secret).ok()?),
        })
    }

    /// Whether `tag` is the MAC of `message` (constant-time comparison, exact length).
    pub fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        match self {
            HmacKey::Sha256(k) => k.clone().chain_update(message).verify_slice(tag).is_ok(),
            HmacKey::Sha384(k) => k.clone().chain_update(message).verify_slice(tag).is_ok(),
            HmacKey::Sha512(k) => k.clone().chain_update(message).verify_slice(tag).is_ok(),
        }
    }
}

/// Verifies Ed25519 (`EdDSA`) signatures.
pub fn ed25519_verify(key: &ed25519_compact::PublicKey, message: &[u8], signature: &[u8]) -> bool {
    ed25519_compact::Signature::from_slice(signature)
        .is_ok_and(|sig| key.verify(message, &sig).is_ok())
}

/// The verifier of one key for one algorithm, prepared when the JWKS loads. RSA keys are shared
/// between the algorithms one key allows.
#[derive(Clone)]
pub enum Verifier {
    /// HS256/384/512.
    Hmac(Box<HmacKey>),
    /// RS256/384/512.
    RsaPkcs1(Arc<RsaPublicKey>, HashAlg),
    /// PS256/384/512.
    RsaPss(Arc<RsaPublicKey>, HashAlg),
    /// ES256.
    Es256(Box<EcPublicKey<P256, 8>>),
    /// ES384.
    Es384(Box<EcPublicKey<P384, 12>>),
    /// EdDSA with Ed25519.
    EdDsa(ed25519_compact::PublicKey),
}

impl Verifier {
    /// Whether `signature` (decoded from base64url) signs `signing_input` (`header.payload`).
    pub fn verify(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        match self {
            Verifier::Hmac(k) => k.verify(signing_input, signature),
            Verifier::RsaPkcs1(k, h) => k.verify_pkcs1v15(*h, signing_input, signature),
            Verifier::RsaPss(k, h) => k.verify_pss(*h, signing_input, signature),
            Verifier::Es256(k) => k.verify(signing_input, signature),
            Verifier::Es384(k) => k.verify(signing_input, signature),
            Verifier::EdDsa(k) => ed25519_verify(k, signing_input, signature),
        }
    }
}
