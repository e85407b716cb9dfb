//! The filter's whole cold verification of a token (`tollgate::jwt::verify`: size, split,
//! base64, header and claims JSON, key selection, signature, claim checks, the verified token
//! with its scopes and claim headers), as a request with the verified-token cache off does it.
//! Set beside `tollgate_verifiers` (the signature check alone), the difference is the rest of the
//! cold path in V8. Each call first re-encodes the signature into the token (the harness hands
//! the signing input and signature apart, and flips a signature bit for its negative check):
//! under 1 µs for ES256, about 1 µs for RS256.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::json;
use tollgate::jwt::{from_json_value, local_keys, verify};
use tollgate::refresh::Availability;
use wasm_crypto_bench::fixtures::{P256_POINT, RSA_E, RSA_N};
use wasm_crypto_bench::{bench, es256_token, rs256_token};

/// A time inside the fixture tokens' validity.
const NOW: u64 = 1_750_000_100;

fn main() {
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let (x, y) = P256_POINT[1..].split_at(32);
    let settings = json!({
        "providers": [{
            "name": "bench",
            "issuer": "https://idp.example.com/realms/tollgate",
            "audiences": ["tollgate"],
            "local_jwks": {"keys": [
                {"kty": "RSA", "kid": "rsa-2025-06", "n": b64(&RSA_N), "e": b64(&RSA_E)},
                {"kty": "EC", "kid": "ec-2025-06", "crv": "P-256", "x": b64(x), "y": b64(y)},
            ]},
        }],
        "rules": [{"path_prefix": "/", "requires": {"provider": "bench"}}],
    });
    let Ok(settings) = from_json_value(settings, "jwt") else {
        std::process::exit(3)
    };
    let Some(provider) = settings.providers.first() else {
        std::process::exit(3)
    };
    let Some(Availability::Ready(keys)) = local_keys(provider) else {
        std::process::exit(3)
    };
    let whole = |input: &[u8], sig: &[u8]| {
        let token = format!("{}.{}", String::from_utf8_lossy(input), b64(sig));
        verify(&token, provider, &keys, NOW).is_ok()
    };
    bench("RS256", "tollgate-token", &rs256_token(), whole);
    bench("ES256", "tollgate-token", &es256_token(), whole);
}
