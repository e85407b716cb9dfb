//! Candidate (c): RustCrypto used directly, without jwt-simple: `rsa` 0.9 PKCS#1 v1.5 with
//! SHA-256, and `p256` 0.13 ECDSA. Keys are parsed once (a filter caches them per JWKS); the
//! signature bytes are parsed inside the timed call.

// p256 0.13 and rsa 0.9 share the `signature` 2.x `Verifier` trait.
use p256::ecdsa::signature::Verifier as _;
use rsa::pkcs1v15::{Signature as RsaSignature, VerifyingKey as RsaVerifyingKey};
use rsa::{BigUint, RsaPublicKey};
use sha2::Sha256;
use wasm_crypto_bench::fixtures::{P256_POINT, RSA_E, RSA_N};
use wasm_crypto_bench::{bench, es256_token, rs256_token};

fn main() {
    let Ok(public) = RsaPublicKey::new(
        BigUint::from_bytes_be(&RSA_N),
        BigUint::from_bytes_be(&RSA_E),
    ) else {
        std::process::exit(3)
    };
    let rsa = RsaVerifyingKey::<Sha256>::new(public);
    bench("RS256", "rsa-0.9", &rs256_token(), |input, sig| {
        RsaSignature::try_from(sig).is_ok_and(|s| rsa.verify(input, &s).is_ok())
    });

    let Ok(ec) = p256::ecdsa::VerifyingKey::from_sec1_bytes(&P256_POINT) else {
        std::process::exit(3)
    };
    bench("ES256", "p256-0.13", &es256_token(), |input, sig| {
        p256::ecdsa::Signature::from_slice(sig).is_ok_and(|s| ec.verify(input, &s).is_ok())
    });
}
