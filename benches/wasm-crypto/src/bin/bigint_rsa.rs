//! Candidate (d): a minimal hand-written RS256 verify. The public operation `s^e mod n` runs on
//! crypto-bigint 0.5's fixed-size, stack-allocated `U2048` in Montgomery form (left-to-right square-and-multiply:
//! 16 squarings and 1 multiplication for e = 65537; the Montgomery parameters of `n` are computed
//! once per key), then the result is compared with the expected EMSA-PKCS1-v1_5 encoding of the
//! SHA-256 digest (RFC 8017 §9.2). RS256 only.

use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::{Encoding as _, U2048};
use wasm_crypto_bench::fixtures::{RSA_E, RSA_N};
use wasm_crypto_bench::{bench, emsa_pkcs1_sha256_matches, rs256_token};

/// The modulus size in bytes this verifier handles.
const MODULUS_BYTES: usize = 256;

/// An RSA public key prepared for repeated verification.
struct RsaKey {
    params: DynResidueParams<{ U2048::LIMBS }>,
    modulus: U2048,
    exponent: u64,
}

impl RsaKey {
    /// Prepares a 2048-bit key; `None` for another size, an even modulus or an exponent that is
    /// empty, wider than 64 bits or below 3.
    fn new(n: &[u8], e: &[u8]) -> Option<Self> {
        if n.len() != MODULUS_BYTES || e.is_empty() || e.len() > 8 {
            return None;
        }
        let modulus = U2048::from_be_slice(n);
        let exponent = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let odd = n.last().is_some_and(|b| b & 1 == 1);
        if exponent < 3 || !odd {
            return None;
        }
        let params = DynResidueParams::new(&modulus);
        Some(Self {
            params,
            modulus,
            exponent,
        })
    }

    /// `signature^e mod n` as 256 big-endian bytes; `None` when the signature is not an integer
    /// below `n` of the modulus's length.
    fn public_op(&self, signature: &[u8]) -> Option<[u8; MODULUS_BYTES]> {
        if signature.len() != MODULUS_BYTES {
            return None;
        }
        let s = U2048::from_be_slice(signature);
        if s >= self.modulus {
            return None;
        }
        let base = DynResidue::new(&s, self.params);
        let top = 63 - self.exponent.leading_zeros();
        let mut acc = base;
        for bit in (0..top).rev() {
            acc = acc.square();
            if (self.exponent >> bit) & 1 == 1 {
                acc *= base;
            }
        }
        Some(acc.retrieve().to_be_bytes())
    }

    /// RSASSA-PKCS1-v1_5 verification with SHA-256.
    fn verify_rs256(&self, message: &[u8], signature: &[u8]) -> bool {
        self.public_op(signature)
            .is_some_and(|encoded| emsa_pkcs1_sha256_matches(&encoded, message))
    }
}

fn main() {
    let Some(key) = RsaKey::new(&RSA_N, &RSA_E) else {
        std::process::exit(3)
    };
    bench("RS256", "hand+cbi-0.5", &rs256_token(), |input, sig| {
        key.verify_rs256(input, sig)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_fixture_and_refuses_malformed_signatures() {
        let key = RsaKey::new(&RSA_N, &RSA_E).unwrap();
        let token = rs256_token();
        assert!(key.verify_rs256(token.signing_input, &token.signature));
        assert!(!key.verify_rs256(b"other input", &token.signature));
        assert!(!key.verify_rs256(token.signing_input, &token.signature[1..]));
        assert!(!key.verify_rs256(token.signing_input, &[0u8; 256]));
        assert!(!key.verify_rs256(token.signing_input, &RSA_N));
        assert!(!key.verify_rs256(token.signing_input, &[0xffu8; 256]));
        let mut bad = token.signature.clone();
        bad[100] ^= 0x01;
        assert!(!key.verify_rs256(token.signing_input, &bad));
    }

    #[test]
    fn refuses_unusable_keys() {
        assert!(RsaKey::new(&RSA_N[1..], &RSA_E).is_none());
        assert!(RsaKey::new(&RSA_N, &[1]).is_none());
        assert!(RsaKey::new(&RSA_N, &[]).is_none());
        let mut even = RSA_N;
        even[255] &= 0xfe;
        assert!(RsaKey::new(&even, &RSA_E).is_none());
    }
}
