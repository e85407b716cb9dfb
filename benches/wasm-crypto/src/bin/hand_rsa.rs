//! Candidate (d''): a hand-written RS256 verify with no big-integer crate at all — u32 limbs
//! (one `i64.mul` per limb product in wasm32), CIOS Montgomery multiplication over a slice, so
//! one code path serves any modulus from 2048 to 4096 bits. Per key, once: −n⁻¹ mod 2³² (Newton)
//! and R² mod n (by doubling). Per verify: into Montgomery form (1 product), 16 squarings and
//! 1 multiplication for e = 65537, out of Montgomery form (1 product), then the
//! EMSA-PKCS1-v1_5 comparison. Not constant time (public data only). RS256 only.

use wasm_crypto_bench::fixtures::{RSA_E, RSA_N};
use wasm_crypto_bench::{bench, emsa_pkcs1_sha256_matches, rs256_token};

/// An RSA public key prepared for repeated verification.
struct RsaKey {
    /// The modulus, little-endian u32 limbs.
    n: Vec<u32>,
    /// −n⁻¹ mod 2³².
    n0_inv: u32,
    /// R² mod n with R = 2^(32·limbs), to enter Montgomery form.
    r2: Vec<u32>,
    exponent: u64,
    modulus_bytes: usize,
}

/// Big-endian bytes (length a multiple of 4) as little-endian limbs.
fn limbs_from_be(bytes: &[u8]) -> Vec<u32> {
    bytes
        .rchunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `a ≥ b` for equal-length limb slices.
fn ge(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x > y;
        }
    }
    true
}

/// `a −= b` in place (the caller knows a ≥ b, or wants the wrap-around); returns the borrow.
fn sub_in_place(a: &mut [u32], b: &[u32]) -> bool {
    let mut borrow = 0u64;
    for (x, y) in a.iter_mut().zip(b) {
        let v = u64::from(*x)
            .wrapping_sub(u64::from(*y))
            .wrapping_sub(borrow);
        *x = v as u32;
        borrow = (v >> 63) & 1;
    }
    borrow != 0
}

impl RsaKey {
    /// Prepares a key of 2048 to 4096 bits (a multiple of 32); `None` for another size, an even
    /// modulus or an exponent that is empty, wider than 64 bits or below 3.
    fn new(n: &[u8], e: &[u8]) -> Option<Self> {
        let n = n.strip_prefix(&[0u8]).unwrap_or(n);
        if !(256..=512).contains(&n.len())
            || !n.len().is_multiple_of(4)
            || e.is_empty()
            || e.len() > 8
        {
            return None;
        }
        let exponent = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let limbs = limbs_from_be(n);
        let n0 = *limbs.first()?;
        if exponent < 3 || n0 & 1 == 0 || limbs.last().is_some_and(|top| *top == 0) {
            return None;
        }
        // Newton: x ← x·(2 − n0·x) doubles the correct low bits; 5 steps from 1 bit reach 32.
        let mut inv = 1u32;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inv)));
        }
        // R² mod n: start from 1 and double 2·32·limbs times, reducing each time.
        let mut r2 = vec![0u32; limbs.len()];
        r2[0] = 1;
        for _ in 0..2 * 32 * limbs.len() {
            let mut carry = 0u32;
            for x in r2.iter_mut() {
                let next = *x >> 31;
                *x = (*x << 1) | carry;
                carry = next;
            }
            if carry == 1 || ge(&r2, &limbs) {
                sub_in_place(&mut r2, &limbs);
            }
        }
        Some(Self {
            n: limbs,
            n0_inv: inv.wrapping_neg(),
            r2,
            exponent,
            modulus_bytes: n.len(),
        })
    }

    /// Montgomery product a·b·R⁻¹ mod n (CIOS), written into `out`; `t` is scratch of
    /// limbs + 2.
    fn mont_mul(&self, a: &[u32], b: &[u32], t: &mut [u32], out: &mut [u32]) {
        let n = self.n.as_slice();
        let len = n.len();
        // Re-slicing to exact lengths lets the compiler drop the bounds checks in the loops.
        let (t, a, out) = (&mut t[..len + 2], &a[..len], &mut out[..len]);
        let n0 = u64::from(n[0]);
        t.fill(0);
        for &bi in b {
            let bi = u64::from(bi);
            let mut carry = 0u64;
            for (tj, aj) in t.iter_mut().zip(a) {
                let v = u64::from(*tj) + u64::from(*aj) * bi + carry;
                *tj = v as u32;
                carry = v >> 32;
            }
            let v = u64::from(t[len]) + carry;
            t[len] = v as u32;
            t[len + 1] = (v >> 32) as u32;

            let m = u64::from(t[0].wrapping_mul(self.n0_inv));
            let mut carry = (u64::from(t[0]) + m * n0) >> 32;
            for j in 1..len {
                let v = u64::from(t[j]) + m * u64::from(n[j]) + carry;
                t[j - 1] = v as u32;
                carry = v >> 32;
            }
            let v = u64::from(t[len]) + carry;
            t[len - 1] = v as u32;
            t[len] = t[len + 1] + (v >> 32) as u32;
        }
        out.copy_from_slice(&t[..len]);
        if t[len] != 0 || ge(out, n) {
            sub_in_place(out, n);
        }
    }

    /// `signature^e mod n` as big-endian bytes of the modulus's length; `None` when the signature
    /// is not an integer below `n` of that length.
    fn public_op(&self, signature: &[u8]) -> Option<Vec<u8>> {
        if signature.len() != self.modulus_bytes {
            return None;
        }
        let s = limbs_from_be(signature);
        if ge(&s, &self.n) {
            return None;
        }
        let len = self.n.len();
        let mut t = vec![0u32; len + 2];
        let mut base = vec![0u32; len];
        self.mont_mul(&s, &self.r2, &mut t, &mut base);
        let mut acc = base.clone();
        let mut tmp = vec![0u32; len];
        let top = 63 - self.exponent.leading_zeros();
        for bit in (0..top).rev() {
            self.mont_mul(&acc, &acc, &mut t, &mut tmp);
            std::mem::swap(&mut acc, &mut tmp);
            if (self.exponent >> bit) & 1 == 1 {
                self.mont_mul(&acc, &base, &mut t, &mut tmp);
                std::mem::swap(&mut acc, &mut tmp);
            }
        }
        let mut one = vec![0u32; len];
        one[0] = 1;
        self.mont_mul(&acc, &one, &mut t, &mut tmp);
        Some(
            tmp.iter()
                .rev()
                .flat_map(|limb| limb.to_be_bytes())
                .collect(),
        )
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
    bench("RS256", "hand-rsa", &rs256_token(), |input, sig| {
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

    #[test]
    fn public_op_matches_crypto_bigint_on_other_inputs() {
        use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
        use crypto_bigint::{Encoding as _, U2048};
        let key = RsaKey::new(&RSA_N, &RSA_E).unwrap();
        let params = DynResidueParams::new(&U2048::from_be_slice(&RSA_N));
        for k in 1u8..=20 {
            let mut s = [k; 256];
            s[0] = k % 0x7f;
            let ours = key.public_op(&s).unwrap();
            let x = DynResidue::new(&U2048::from_be_slice(&s), params);
            let theirs = x.pow(&U2048::from_u32(65_537)).retrieve().to_be_bytes();
            assert_eq!(ours, theirs.to_vec(), "input {k}");
        }
    }
}
