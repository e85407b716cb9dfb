//! Arithmetic modulo a constant odd modulus of `L` 32-bit limbs, in Montgomery form unless the
//! field brings its own product (P-256's base field, `p256.rs`): the base fields and scalar
//! fields of P-256 and P-384 for the ECDSA verifier (`ecdsa.rs`).
//!
//! Sized for wasm32: a 32×32→64-bit product is one `i64.mul` there and no wider multiply exists,
//! so the limbs are `u32` and every product fits a `u64`. The modulus is a trait constant, so each
//! field is compiled against its own prime. Not constant time: verification handles public data
//! only (keys, signatures, messages).

use std::fmt::Debug;
use std::marker::PhantomData;

use super::modinv::invert_mod;

/// A constant odd modulus, the form its elements are kept in, and their product.
///
/// By default elements are in Montgomery form (value · R mod M with R = 2^(32·L)) and the product
/// is a Montgomery product. A field with a faster reduction of its own (P-256's base field,
/// `p256.rs`) overrides `mul` and `square` with the plain product mod M and sets `R2` to 1.
pub trait FieldParams<const L: usize>: Copy + Eq + Debug + 'static {
    /// The modulus, little-endian limbs.
    const M: [u32; L];
    /// −M⁻¹ mod 2³² (used by the Montgomery product only).
    const M0_INV: u32;
    /// The factor that brings a canonical value into the internal form through `mul`: R² mod M
    /// for Montgomery form, 1 for a field that keeps values as they are.
    const R2: [u32; L];

    /// The product of two fully reduced elements, fully reduced: a·b·R⁻¹ mod M by default.
    #[inline]
    fn mul(a: &[u32; L], b: &[u32; L]) -> [u32; L] {
        mont_mul::<Self, L>(a, b)
    }

    /// The square of a fully reduced element (the product with itself by default).
    #[inline]
    fn square(a: &[u32; L]) -> [u32; L] {
        Self::mul(a, a)
    }
}

/// `a < b` as integers (little-endian limbs).
pub fn less_than<const L: usize>(a: &[u32; L], b: &[u32; L]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// `a + b` and the carry out.
pub fn add_limbs<const L: usize>(a: &[u32; L], b: &[u32; L]) -> ([u32; L], bool) {
    let mut out = [0u32; L];
    let mut carry = 0u64;
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        let v = u64::from(*x) + u64::from(*y) + carry;
        *o = v as u32;
        carry = v >> 32;
    }
    (out, carry != 0)
}

/// `a − b` (wrapping) and the borrow out.
pub fn sub_limbs<const L: usize>(a: &[u32; L], b: &[u32; L]) -> ([u32; L], bool) {
    let mut out = [0u32; L];
    let mut borrow = 0u64;
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        let v = u64::from(*x)
            .wrapping_sub(u64::from(*y))
            .wrapping_sub(borrow);
        *o = v as u32;
        borrow = (v >> 63) & 1;
    }
    (out, borrow != 0)
}

fn is_zero<const L: usize>(a: &[u32; L]) -> bool {
    a.iter().all(|x| *x == 0)
}

/// Big-endian bytes (exactly 4·L of them) as little-endian limbs; `None` for another length.
pub fn limbs_from_be<const L: usize>(bytes: &[u8]) -> Option<[u32; L]> {
    if bytes.len() != 4 * L {
        return None;
    }
    let mut out = [0u32; L];
    for (limb, chunk) in out.iter_mut().zip(bytes.rchunks_exact(4)) {
        let mut word = [0u8; 4];
        word.copy_from_slice(chunk);
        *limb = u32::from_be_bytes(word);
    }
    Some(out)
}

/// Montgomery product a·b·R⁻¹ mod M of fully reduced `a`, `b` (CIOS: interleaved multiply and
/// reduce), fully reduced.
#[inline]
pub fn mont_mul<F: FieldParams<L>, const L: usize>(a: &[u32; L], b: &[u32; L]) -> [u32; L] {
    let m0 = u64::from(F::M.first().copied().unwrap_or(1));
    let mut t = [0u32; L];
    let mut t_hi = 0u32;
    for bi in b.iter() {
        let bi = u64::from(*bi);
        let mut carry = 0u64;
        for (tj, aj) in t.iter_mut().zip(a) {
            let v = u64::from(*tj) + u64::from(*aj) * bi + carry;
            *tj = v as u32;
            carry = v >> 32;
        }
        let v = u64::from(t_hi) + carry;
        t_hi = v as u32;
        let t_top = (v >> 32) as u32;
        // Add the multiple of M that clears the low limb, and drop that limb.
        let t0 = t.first().copied().unwrap_or(0);
        let q = u64::from(t0.wrapping_mul(F::M0_INV));
        let mut carry = (u64::from(t0) + q * m0) >> 32;
        let mut next = [0u32; L];
        for (dst, (tj, mj)) in next.iter_mut().zip(t.iter().zip(F::M.iter()).skip(1)) {
            let v = u64::from(*tj) + q * u64::from(*mj) + carry;
            *dst = v as u32;
            carry = v >> 32;
        }
        let v = u64::from(t_hi) + carry;
        if let Some(last) = next.last_mut() {
            *last = v as u32;
        }
        t_hi = t_top + (v >> 32) as u32;
        t = next;
    }
    if t_hi != 0 || !less_than(&t, &F::M) {
        sub_limbs(&t, &F::M).0
    } else {
        t
    }
}

/// An element of the field of `F` in the field's form (Montgomery: value · R mod M), fully
/// reduced.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Fe<F: FieldParams<L>, const L: usize>([u32; L], PhantomData<F>);

impl<F: FieldParams<L>, const L: usize> Fe<F, L> {
    /// Zero.
    pub const ZERO: Self = Fe([0; L], PhantomData);

    /// The field product (`FieldParams::mul`).
    #[inline]
    pub fn mul(self, rhs: Self) -> Self {
        Fe(F::mul(&self.0, &rhs.0), PhantomData)
    }

    /// self².
    #[inline]
    pub fn square(self) -> Self {
        Fe(F::square(&self.0), PhantomData)
    }

    /// self + rhs.
    #[inline]
    pub fn add(self, rhs: Self) -> Self {
        let (sum, carry) = add_limbs(&self.0, &rhs.0);
        if carry || !less_than(&sum, &F::M) {
            Fe(sub_limbs(&sum, &F::M).0, PhantomData)
        } else {
            Fe(sum, PhantomData)
        }
    }

    /// self − rhs.
    #[inline]
    pub fn sub(self, rhs: Self) -> Self {
        let (diff, borrow) = sub_limbs(&self.0, &rhs.0);
        if borrow {
            Fe(add_limbs(&diff, &F::M).0, PhantomData)
        } else {
            Fe(diff, PhantomData)
        }
    }

    /// 2·self.
    #[inline]
    pub fn double(self) -> Self {
        self.add(self)
    }

    /// Whether self is zero.
    pub fn is_zero(self) -> bool {
        is_zero(&self.0)
    }

    /// One (in the internal form: R mod M for Montgomery form).
    pub fn one() -> Self {
        let mut one = [0u32; L];
        if let Some(first) = one.first_mut() {
            *first = 1;
        }
        Fe(F::mul(&one, &F::R2), PhantomData)
    }

    /// A canonical value into the field's form; `None` when `value ≥ M`.
    pub fn from_canonical(value: &[u32; L]) -> Option<Self> {
        less_than(value, &F::M).then(|| Fe(*value, PhantomData).mul(Fe(F::R2, PhantomData)))
    }

    /// Out of the field's form: the canonical value.
    pub fn to_canonical(self) -> [u32; L] {
        let mut one = [0u32; L];
        if let Some(first) = one.first_mut() {
            *first = 1;
        }
        self.mul(Fe(one, PhantomData)).0
    }

    /// The inverse (zero has none).
    pub fn invert(self) -> Option<Self> {
        let inverse = invert_mod(&self.to_canonical(), &F::M)?;
        Self::from_canonical(&inverse)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// 2³¹ − 1 as a one-limb field (a small prime for exhaustive-ish checks).
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    struct Small;
    impl FieldParams<1> for Small {
        const M: [u32; 1] = [0x7fff_ffff];
        const M0_INV: u32 = 0x8000_0001;
        const R2: [u32; 1] = [4];
    }

    #[test]
    fn small_field_agrees_with_u64_arithmetic() {
        let m = 0x7fff_ffffu64;
        assert_eq!(Small::M0_INV.wrapping_mul(Small::M[0]), u32::MAX);
        assert_eq!((1u64 << 32) % m * ((1u64 << 32) % m) % m, 4);
        for (a, b) in [
            (1u64, 2u64),
            (12345, 67890),
            (m - 1, m - 1),
            (0, 5),
            (1 << 30, 3),
        ] {
            let x = Fe::<Small, 1>::from_canonical(&[a as u32]).unwrap();
            let y = Fe::<Small, 1>::from_canonical(&[b as u32]).unwrap();
            assert_eq!(x.mul(y).to_canonical()[0] as u64, a * b % m);
            assert_eq!(x.add(y).to_canonical()[0] as u64, (a + b) % m);
            assert_eq!(x.sub(y).to_canonical()[0] as u64, (a + m - b) % m);
            if a != 0 {
                let inv = x.invert().unwrap().to_canonical()[0] as u64;
                assert_eq!(inv * a % m, 1, "{a}");
            }
        }
        assert!(Fe::<Small, 1>::from_canonical(&[0x7fff_ffff]).is_none());
        assert!(Fe::<Small, 1>::ZERO.invert().is_none());
    }
}
