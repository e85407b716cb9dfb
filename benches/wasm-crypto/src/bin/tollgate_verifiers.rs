//! The verifiers now in the filter (`tollgate::jwt`, `filter/src/jwt/crypto/`), through the
//! filter's public API: keys loaded from JWKs once (prepared at load), then
//! `VerificationKey::verify_signature` per token. Times the signature check only, like the
//! hand-written candidates (d) and (e) it grew from.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::json;
use tollgate::jwt::keys::{parse_jwk, Algorithm};
use wasm_crypto_bench::fixtures::{P256_POINT, RSA_E, RSA_N};
use wasm_crypto_bench::{bench, es256_token, rs256_token};

fn main() {
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let Ok(rsa) = parse_jwk(&json!({"kty": "RSA", "n": b64(&RSA_N), "e": b64(&RSA_E)})) else {
        std::process::exit(3)
    };
    bench("RS256", "tollgate", &rs256_token(), |input, sig| {
        rsa.verify_signature(Algorithm::Rs256, input, sig)
    });
    let (x, y) = P256_POINT[1..].split_at(32);
    let Ok(ec) = parse_jwk(&json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)})) else {
        std::process::exit(3)
    };
    bench("ES256", "tollgate", &es256_token(), |input, sig| {
        ec.verify_signature(Algorithm::Es256, input, sig)
    });
}
