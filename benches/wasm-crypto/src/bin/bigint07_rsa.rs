//! Candidate (d'), the same hand-written RS256 verify as `bigint_rsa` on crypto-bigint 0.7 — the
//! version already in the filter's dependency graph (through jwt-simple → p256 0.14) — with its
//! heap-allocated `BoxedUint`/`BoxedMontyForm`, so one code path serves any modulus size
//! (2048 to 4096 bits) as a filter needs. RS256 only.

use crypto_bigint_07::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint_07::{BoxedUint, Odd};
use wasm_crypto_bench::fixtures::{RSA_E, RSA_N};
use wasm_crypto_bench::{bench, emsa_pkcs1_sha256_matches, rs256_token};

/// An RSA public key prepared for repeated verification.
struct RsaKey {
    params: BoxedMontyParams,
    modulus: BoxedUint,
    modulus_bytes: usize,
    exponent: u64,
}

impl RsaKey {
    /// Prepares a key of 2048 to 4096 bits; `None` for another size, an even modulus or an
    /// exponent that is empty, wider than 64 bits or below 3.
    fn new(n: &[u8], e: &[u8]) -> Option<Self> {
        let n = n.strip_prefix(&[0u8]).unwrap_or(n);
        if !(256..=512).contains(&n.len()) || e.is_empty() || e.len() > 8 {
            return None;
        }
        let exponent = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        if exponent < 3 {
            return None;
        }
        let bits = u32::try_from(n.len() * 8).ok()?;
        let modulus = BoxedUint::from_be_slice(n, bits).ok()?;
        let odd = Option::<Odd<BoxedUint>>::from(Odd::new(modulus.clone()))?;
        Some(Self {
            params: BoxedMontyParams::new_vartime(odd),
            modulus,
            modulus_bytes: n.len(),
            exponent,
        })
    }

    /// `signature^e mod n` as big-endian bytes of the modulus's length; `None` when the signature
    /// is not an integer below `n` of that length.
    fn public_op(&self, signature: &[u8]) -> Option<Box<[u8]>> {
        if signature.len() != self.modulus_bytes {
            return None;
        }
        let s = BoxedUint::from_be_slice(signature, self.modulus.bits_precision()).ok()?;
        if s >= self.modulus {
            return None;
        }
        let base = BoxedMontyForm::new(s, &self.params);
        let top = 63 - self.exponent.leading_zeros();
        let mut acc = base.clone();
        for bit in (0..top).rev() {
            acc = acc.square();
            if (self.exponent >> bit) & 1 == 1 {
                acc = &acc * &base;
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
    bench("RS256", "hand+cbi-0.7", &rs256_token(), |input, sig| {
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
