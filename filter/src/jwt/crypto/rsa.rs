//! RSA signature verification (RFC 8017): RSASSA-PKCS1-v1_5 (RS256/384/512) and RSASSA-PSS with
//! MGF1 of the same hash and a salt as long as the hash (PS256/384/512, RFC 7518 §3.5).
//!
//! The public operation `s^e mod n` runs on crypto-bigint's fixed-size integers in Montgomery
//! form (32-bit limbs on wasm32), sized to the next of 2048, 3072 or 4096 bits; the Montgomery
//! parameters of `n` are computed once, when the JWKS loads. PKCS#1 v1.5 compares the whole
//! encoded message with the one expected (`00 01 FF… 00 DigestInfo H`) instead of parsing it,
//! which rules out the classic parsing flaws. Not constant time: public data only.

use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::{Uint, Word, U2048, U3072, U4096};

use super::HashAlg;

/// Smallest modulus handled, in bytes (2048 bits).
const MIN_MODULUS_BYTES: usize = 256;
/// Largest modulus handled, in bytes (4096 bits).
const MAX_MODULUS_BYTES: usize = 512;

/// Big-endian bytes as an integer of `LIMBS` words; `None` when they do not fit.
fn uint_from_be<const LIMBS: usize>(bytes: &[u8]) -> Option<Uint<LIMBS>> {
    let word_bytes = std::mem::size_of::<Word>();
    if bytes.len() > LIMBS * word_bytes {
        return None;
    }
    let mut words = [0 as Word; LIMBS];
    for (word, chunk) in words.iter_mut().zip(bytes.rchunks(word_bytes)) {
        *word = chunk
            .iter()
            .fold(0 as Word, |acc, b| (acc << 8) | Word::from(*b));
    }
    Some(Uint::from_words(words))
}

/// A modulus of one integer size with its Montgomery parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Prepared<const LIMBS: usize> {
    n: Uint<LIMBS>,
    params: DynResidueParams<LIMBS>,
}

impl<const LIMBS: usize> Prepared<LIMBS> {
    fn new(n: &[u8]) -> Option<Self> {
        // `DynResidueParams::new` requires an odd modulus.
        if n.last().is_none_or(|low| low & 1 == 0) {
            return None;
        }
        let n = uint_from_be::<LIMBS>(n)?;
        let params = DynResidueParams::new(&n);
        Some(Prepared { n, params })
    }

    /// `s^e mod n` as big-endian bytes of the last `k` bytes of the integer; `None` when `s ≥ n`.
    fn public_op(&self, signature: &[u8], e: u32, k: usize) -> Option<Vec<u8>> {
        let s = uint_from_be::<LIMBS>(signature)?;
        if s >= self.n {
            return None;
        }
        let base = DynResidue::new(&s, self.params);
        let mut acc = base;
        // Left-to-right square-and-multiply over the bits of e below its top bit.
        let top = 31u32.checked_sub(e.leading_zeros())?;
        for bit in (0..top).rev() {
            acc = acc.square();
            if (e >> bit) & 1 == 1 {
                acc *= base;
            }
        }
        let bytes: Vec<u8> = acc
            .retrieve()
            .as_words()
            .iter()
            .rev()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        let skip = bytes.len().checked_sub(k)?;
        // The integer is below n, so the bytes above k are zero.
        Some(bytes.get(skip..)?.to_vec())
    }
}

/// The modulus in the smallest of the three integer sizes that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Modulus {
    B2048(Prepared<{ U2048::LIMBS }>),
    B3072(Prepared<{ U3072::LIMBS }>),
    B4096(Prepared<{ U4096::LIMBS }>),
}

/// An RSA public key prepared for repeated verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RsaPublicKey {
    modulus: Modulus,
    exponent: u32,
    /// The modulus length in bytes (signatures have exactly this length).
    k: usize,
    /// The modulus length in bits.
    bits: usize,
}

impl RsaPublicKey {
    /// Prepares `(n, e)` (big-endian; leading zero bytes allowed). Refuses moduli outside
    /// 2048..=4096 bits or even, and exponents that are even, below 3 or above 32 bits.
    pub(crate) fn new(n: &[u8], e: &[u8]) -> Result<Self, String> {
        let n = trim_leading_zeros(n);
        let e = trim_leading_zeros(e);
        let k = n.len();
        let bits = match n.first() {
            Some(top) => 8 * k - top.leading_zeros() as usize,
            None => 0,
        };
        if !(8 * MIN_MODULUS_BYTES..=8 * MAX_MODULUS_BYTES).contains(&bits) {
            return Err(format!("RSA modulus of {bits} bits is not supported"));
        }
        if e.len() > 4 {
            return Err("RSA exponent is too large".into());
        }
        let exponent = e.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        if exponent < 3 || exponent & 1 == 0 {
            return Err("RSA exponent must be odd and at least 3".into());
        }
        let even = "RSA modulus is even".to_string();
        let modulus = if k <= 256 {
            Modulus::B2048(Prepared::new(n).ok_or(even)?)
        } else if k <= 384 {
            Modulus::B3072(Prepared::new(n).ok_or(even)?)
        } else {
            Modulus::B4096(Prepared::new(n).ok_or(even)?)
        };
        Ok(RsaPublicKey {
            modulus,
            exponent,
            k,
            bits,
        })
    }

    /// `signature^e mod n` as `k` big-endian bytes; `None` unless the signature is `k` bytes and
    /// below `n`.
    fn public_op(&self, signature: &[u8]) -> Option<Vec<u8>> {
        if signature.len() != self.k {
            return None;
        }
        let (e, k) = (self.exponent, self.k);
        match &self.modulus {
            Modulus::B2048(m) => m.public_op(signature, e, k),
            Modulus::B3072(m) => m.public_op(signature, e, k),
            Modulus::B4096(m) => m.public_op(signature, e, k),
        }
    }

    /// RSASSA-PKCS1-v1_5 verification (RFC 8017 §8.2.2).
    pub(crate) fn verify_pkcs1v15(&self, hash: HashAlg, message: &[u8], signature: &[u8]) -> bool {
        let Some(em) = self.public_op(signature) else {
            return false;
        };
        let prefix = hash.digest_info_prefix();
        let digest = hash.digest(&[message]);
        // 00 01 PS 00 T with |PS| = k − |T| − 3 ≥ 8.
        let Some(padding) = self
            .k
            .checked_sub(prefix.len() + digest.len() + 3)
            .filter(|p| *p >= 8)
        else {
            return false;
        };
        let mut expected = Vec::with_capacity(self.k);
        expected.extend_from_slice(&[0x00, 0x01]);
        expected.resize(2 + padding, 0xff);
        expected.push(0x00);
        expected.extend_from_slice(prefix);
        expected.extend_from_slice(&digest);
        em == expected
    }

    /// RSASSA-PSS verification (RFC 8017 §8.1.2, EMSA-PSS-VERIFY §9.1.2) with MGF1 of `hash` and
    /// a salt of the hash's length.
    pub(crate) fn verify_pss(&self, hash: HashAlg, message: &[u8], signature: &[u8]) -> bool {
        self.public_op(signature)
            .and_then(|m| self.emsa_pss_verify(hash, message, &m))
            .unwrap_or(false)
    }

    fn emsa_pss_verify(&self, hash: HashAlg, message: &[u8], m: &[u8]) -> Option<bool> {
        let em_bits = self.bits.checked_sub(1)?;
        let em_len = em_bits.div_ceil(8);
        // I2OSP(m, emLen): when emLen < k the leading byte must be zero.
        let em = match self.k.checked_sub(em_len)? {
            0 => m,
            1 => match m.split_first()? {
                (0, rest) => rest,
                _ => return Some(false),
            },
            _ => return None,
        };
        let h_len = hash.len();
        let s_len = h_len;
        if em_len < h_len + s_len + 2 {
            return Some(false);
        }
        let (masked_db, tail) = em.split_at_checked(em_len - h_len - 1)?;
        let (h, trailer) = tail.split_at_checked(h_len)?;
        if trailer != [0xbc] {
            return Some(false);
        }
        // The leftmost 8·emLen − emBits bits of the masked DB must be zero.
        let unused_bits = 8 * em_len - em_bits;
        let top_mask = 0xffu8.checked_shr(unused_bits as u32).unwrap_or(0);
        if masked_db.first().is_some_and(|b| b & !top_mask != 0) {
            return Some(false);
        }
        let mask = mgf1(hash, h, masked_db.len());
        let mut db: Vec<u8> = masked_db.iter().zip(&mask).map(|(a, b)| a ^ b).collect();
        if let Some(first) = db.first_mut() {
            *first &= top_mask;
        }
        // DB = PS (zeros) || 0x01 || salt.
        let (ps_and_one, salt) = db.split_at_checked(db.len().checked_sub(s_len)?)?;
        let (one, ps) = ps_and_one.split_last()?;
        if *one != 0x01 || ps.iter().any(|b| *b != 0) {
            return Some(false);
        }
        let m_hash = hash.digest(&[message]);
        let h_prime = hash.digest(&[&[0u8; 8], &m_hash, salt]);
        Some(h_prime == h)
    }
}

/// MGF1 (RFC 8017 §B.2.1) of `seed`, `len` bytes.
fn mgf1(hash: HashAlg, seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + hash.len());
    let mut counter = 0u32;
    while out.len() < len {
        out.extend_from_slice(&hash.digest(&[seed, &counter.to_be_bytes()]));
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

fn trim_leading_zeros(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.get(zeros..).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn refuses_unusable_keys() {
        let mut n = vec![0xc5u8; 256];
        n[255] |= 1;
        assert!(RsaPublicKey::new(&n, &[1, 0, 1]).is_ok());
        assert!(RsaPublicKey::new(&n[1..], &[1, 0, 1]).is_err());
        assert!(RsaPublicKey::new(&[0xc5u8; 513], &[1, 0, 1]).is_err());
        assert!(RsaPublicKey::new(&n, &[1]).is_err());
        assert!(RsaPublicKey::new(&n, &[2, 0, 0]).is_err());
        assert!(RsaPublicKey::new(&n, &[1, 0, 0, 0, 1]).is_err());
        let mut even = n.clone();
        even[255] &= 0xfe;
        assert!(RsaPublicKey::new(&even, &[1, 0, 1]).is_err());
        // Leading zero bytes do not count toward the size.
        let mut padded = vec![0u8];
        padded.extend_from_slice(&n);
        assert_eq!(RsaPublicKey::new(&padded, &[0, 1, 0, 1]).unwrap().k, 256);
    }

    #[test]
    fn signatures_of_the_wrong_length_or_not_below_n_are_refused() {
        let mut n = vec![0xc5u8; 256];
        n[255] |= 1;
        let key = RsaPublicKey::new(&n, &[1, 0, 1]).unwrap();
        assert!(key.public_op(&[1u8; 255]).is_none());
        assert!(key.public_op(&[1u8; 257]).is_none());
        assert!(key.public_op(&n).is_none());
        assert!(key.public_op(&[0xffu8; 256]).is_none());
        // 2^65537 mod n is computed and has k bytes.
        let mut two = vec![0u8; 256];
        two[255] = 2;
        assert_eq!(key.public_op(&two).unwrap().len(), 256);
        assert!(!key.verify_pkcs1v15(HashAlg::Sha256, b"m", &two));
        assert!(!key.verify_pss(HashAlg::Sha256, b"m", &two));
    }

    #[test]
    fn mgf1_matches_its_definition() {
        let out = mgf1(HashAlg::Sha256, b"seed", 40);
        let first = HashAlg::Sha256.digest(&[b"seed", &[0, 0, 0, 0]]);
        let second = HashAlg::Sha256.digest(&[b"seed", &[0, 0, 0, 1]]);
        assert_eq!(&out[..32], &first[..]);
        assert_eq!(&out[32..], &second[..8]);
    }
}
