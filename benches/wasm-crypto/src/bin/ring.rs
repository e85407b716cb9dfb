//! Candidate (b): ring 0.17 (C, built for wasm32 with clang; native builds add ring's assembly).
//! ring has no pre-parsed public key type for verification, so each call parses the key too, as
//! a filter using ring would.

use ring::signature::{
    RsaPublicKeyComponents, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256,
};
use wasm_crypto_bench::fixtures::{P256_POINT, RSA_E, RSA_N};
use wasm_crypto_bench::{bench, es256_token, rs256_token};

fn main() {
    let rsa = RsaPublicKeyComponents {
        n: &RSA_N[..],
        e: &RSA_E[..],
    };
    bench("RS256", "ring", &rs256_token(), |input, sig| {
        rsa.verify(&RSA_PKCS1_2048_8192_SHA256, input, sig).is_ok()
    });

    let ec = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &P256_POINT[..]);
    bench("ES256", "ring", &es256_token(), |input, sig| {
        ec.verify(input, sig).is_ok()
    });
}
