//! Candidate (a), the filter's current verifier: jwt-simple 0.15 `pure-rust` (RSA through
//! superboring on `rsa` 0.9, P-256 through `p256` 0.14). Times the whole `verify_token` (base64,
//! header and claims JSON, signature, time checks), with the key parsed once beforehand.

use jwt_simple::prelude::*;
use serde_json::{Map, Value};
use wasm_crypto_bench::fixtures::{P256_POINT, RSA_E, RSA_N};
use wasm_crypto_bench::{bench, es256_token, rs256_token};

/// Rebuilds the compact token from the pieces `bench` hands over (so a tampered signature is
/// really tampered); one base64 encode, negligible next to the verification.
fn token(signing_input: &[u8], signature: &[u8]) -> String {
    let input = String::from_utf8_lossy(signing_input);
    let sig = Base64UrlSafeNoPadding::encode_to_string(signature).unwrap_or_default();
    format!("{input}.{sig}")
}

fn main() {
    let Ok(rsa) = RS256PublicKey::from_components(&RSA_N, &RSA_E) else {
        std::process::exit(3)
    };
    let rs = rs256_token();
    bench("RS256", "jwt-simple", &rs, |input, sig| {
        rsa.verify_token::<Map<String, Value>>(&token(input, sig), None)
            .is_ok()
    });

    let Ok(ec) = ES256PublicKey::from_bytes(&P256_POINT) else {
        std::process::exit(3)
    };
    let es = es256_token();
    bench("ES256", "jwt-simple", &es, |input, sig| {
        ec.verify_token::<Map<String, Value>>(&token(input, sig), None)
            .is_ok()
    });
}
