//! Reference for candidate (a): `p256` 0.14 (jwt-simple 0.15's curve code, on crypto-bigint 0.7)
//! called directly, to tell the curve arithmetic from jwt-simple's own per-token work. ES256 only.

use p256_014::ecdsa::signature::Verifier as _;
use p256_014::ecdsa::{Signature, VerifyingKey};
use wasm_crypto_bench::bench;
use wasm_crypto_bench::es256_token;
use wasm_crypto_bench::fixtures::P256_POINT;

fn main() {
    let Ok(ec) = VerifyingKey::from_sec1_bytes(&P256_POINT) else {
        std::process::exit(3)
    };
    bench("ES256", "p256-0.14", &es256_token(), |input, sig| {
        Signature::from_slice(sig).is_ok_and(|s| ec.verify(input, &s).is_ok())
    });
}
