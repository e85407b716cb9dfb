//! Size reference: the timing harness and fixtures with a verifier that checks nothing useful
//! (a byte comparison), so `.wasm` size minus this one is what a candidate's crypto adds.

use wasm_crypto_bench::{bench, es256_token, rs256_token};

fn main() {
    let rs = rs256_token();
    let expected = rs.signature.clone();
    bench("RS256", "harness", &rs, |_, sig| sig == expected.as_slice());
    let es = es256_token();
    let expected = es.signature.clone();
    bench("ES256", "harness", &es, |_, sig| sig == expected.as_slice());
}
