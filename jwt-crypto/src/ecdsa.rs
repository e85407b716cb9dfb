//! ECDSA signature verification (FIPS 186-4 §6.4) on short-Weierstrass curves with `a = −3`,
//! for ES256 (P-256 + SHA-256) and ES384 (P-384 + SHA-384) with IEEE P1363 `r || s` signatures
//! (RFC 7518 §3.4).
//!
//! - Points: Jacobian coordinates, `a = −3` doubling (dbl-2001-b) and mixed affine addition
//!   (madd-2007-bl) with the equal-point and infinity cases handled.
//! - u1·G + u2·Q: both scalars in width-w NAF (w = 8 for G, 6 for Q), each cut into `PARTS` = 8
//!   parts that share one pass of doublings (33 for P-256), on tables of odd multiples of
//!   2^(33·j)·G and 2^(33·j)·Q in affine form: G's once per process, Q's once per key when the
//!   JWKS loads. About 33 doublings and 65 mixed additions for P-256.
//! - The final `x(R) mod n == r` test is projective (r·Z² == X, and (r+n)·Z² when r+n < p), so a
//!   verification needs no field inversion; the one scalar inversion s⁻¹ mod n is by divsteps
//!   (`modinv.rs`).
//!
//! Not constant time: verification handles public data only.

use super::field::{add_limbs, less_than, limbs_from_be, sub_limbs, Fe, FieldParams};
use super::modinv::invert_mod;

/// A curve `y² = x³ − 3x + b` over the field of `Self`, with a generator of prime order
/// `Scalar::M` and cofactor 1.
pub trait Curve<const L: usize>: FieldParams<L> {
    /// The scalar field (modulo the group order n).
    type Scalar: FieldParams<L>;
    /// The curve coefficient b.
    const B: [u32; L];
    /// The generator's affine x.
    const GX: [u32; L];
    /// The generator's affine y.
    const GY: [u32; L];
    /// The hash of the signature scheme over `message` (its output has the bit length of n).
    fn digest(message: &[u8]) -> Vec<u8>;
    /// The generator's tables of odd multiples, built once per process.
    fn generator_table() -> Option<&'static Comb<Self, L, G_ENTRIES>>;
}

/// A point in Jacobian coordinates (x = X/Z², y = Y/Z³); Z = 0 is the point at infinity.
#[derive(Clone, Copy, Debug)]
struct Jacobian<C: Curve<L>, const L: usize> {
    x: Fe<C, L>,
    y: Fe<C, L>,
    z: Fe<C, L>,
}

/// A finite point in affine coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Affine<C: Curve<L>, const L: usize> {
    x: Fe<C, L>,
    y: Fe<C, L>,
}

impl<C: Curve<L>, const L: usize> Affine<C, L> {
    /// −self: (x, −y).
    fn negate(self) -> Self {
        Affine {
            x: self.x,
            y: Fe::ZERO.sub(self.y),
        }
    }

    /// The point (x, y) from canonical coordinates; `None` unless both are below p and the point
    /// is on the curve.
    fn new(x: &[u32; L], y: &[u32; L]) -> Option<Self> {
        let point = Affine {
            x: Fe::from_canonical(x)?,
            y: Fe::from_canonical(y)?,
        };
        let b = Fe::from_canonical(&C::B)?;
        let x3 = point.x.square().mul(point.x);
        let three_x = point.x.double().add(point.x);
        (point.y.square() == x3.sub(three_x).add(b)).then_some(point)
    }
}

impl<C: Curve<L>, const L: usize> Jacobian<C, L> {
    fn infinity() -> Self {
        Jacobian {
            x: Fe::ZERO,
            y: Fe::ZERO,
            z: Fe::ZERO,
        }
    }

    fn from_affine(p: &Affine<C, L>) -> Self {
        Jacobian {
            x: p.x,
            y: p.y,
            z: Fe::one(),
        }
    }

    fn is_infinity(&self) -> bool {
        self.z.is_zero()
    }

    /// 2·self for a = −3 (dbl-2001-b); infinity stays infinity (Z3 = 0).
    #[inline(never)]
    fn double(&self) -> Self {
        let delta = self.z.square();
        let gamma = self.y.square();
        let beta = self.x.mul(gamma);
        let t = self.x.sub(delta).mul(self.x.add(delta));
        let alpha = t.double().add(t);
        let beta4 = beta.double().double();
        let x3 = alpha.square().sub(beta4.double());
        let z3 = self.y.add(self.z).square().sub(gamma).sub(delta);
        let gamma_sq8 = gamma.square().double().double().double();
        let y3 = alpha.mul(beta4.sub(x3)).sub(gamma_sq8);
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// self + q for an affine q (madd-2007-bl), with the infinity and equal-x cases.
    #[inline(never)]
    fn add_affine(&self, q: &Affine<C, L>) -> Self {
        if self.is_infinity() {
            return Jacobian::from_affine(q);
        }
        let z1z1 = self.z.square();
        let u2 = q.x.mul(z1z1);
        let s2 = q.y.mul(self.z).mul(z1z1);
        let h = u2.sub(self.x);
        let r = s2.sub(self.y).double();
        if h.is_zero() {
            return if r.is_zero() {
                self.double()
            } else {
                Jacobian::infinity()
            };
        }
        let hh = h.square();
        let i = hh.double().double();
        let j = h.mul(i);
        let v = self.x.mul(i);
        let x3 = r.square().sub(j).sub(v.double());
        let y3 = r.mul(v.sub(x3)).sub(self.y.mul(j).double());
        let z3 = self.z.add(h).square().sub(z1z1).sub(hh);
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// The affine form; `None` at infinity.
    fn to_affine(self) -> Option<Affine<C, L>> {
        let zinv = self.z.invert()?;
        let zinv2 = zinv.square();
        Some(Affine {
            x: self.x.mul(zinv2),
            y: self.y.mul(zinv2).mul(zinv),
        })
    }
}

/// The odd multiples 1·P, 3·P, … (2N−1)·P in affine form (entry k holds (2k+1)·P): the points a
/// width-w NAF with N = 2^(w−2) adds or subtracts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table<C: Curve<L>, const L: usize, const N: usize>([Affine<C, L>; N]);

impl<C: Curve<L>, const L: usize, const N: usize> Table<C, L, N> {
    /// The table of a point of order n (no multiple below 2N is infinity): the multiples are
    /// computed in Jacobian form and brought to affine form with one inversion.
    fn of(p: Affine<C, L>) -> Option<Self> {
        let twice = Jacobian::from_affine(&p).double().to_affine()?;
        let mut jacobian = [Jacobian::from_affine(&p); N];
        let mut acc = Jacobian::from_affine(&p);
        for entry in jacobian.iter_mut().skip(1) {
            acc = acc.add_affine(&twice);
            *entry = acc;
        }
        Some(Table(to_affine_batch(&jacobian)?))
    }

    /// `digit`·P for an odd digit in ±1 ..= ±(2N−1); `None` for 0 and out-of-range digits.
    fn get(&self, digit: i8) -> Option<Affine<C, L>> {
        let index = usize::from(digit.unsigned_abs() / 2);
        if digit & 1 == 0 {
            return None;
        }
        let point = *self.0.get(index)?;
        Some(if digit < 0 { point.negate() } else { point })
    }
}

/// The affine forms of finite points with one field inversion (Montgomery's trick: invert the
/// product of all Z, then peel each Z⁻¹ off it); `None` if a point is infinity.
fn to_affine_batch<C: Curve<L>, const L: usize, const N: usize>(
    points: &[Jacobian<C, L>; N],
) -> Option<[Affine<C, L>; N]> {
    // prefix[i] = Z_0 · … · Z_i.
    let mut prefix = [Fe::<C, L>::one(); N];
    let mut running = Fe::<C, L>::one();
    for (slot, point) in prefix.iter_mut().zip(points) {
        if point.is_infinity() {
            return None;
        }
        running = running.mul(point.z);
        *slot = running;
    }
    let mut inverse = running.invert()?;
    let mut out = [Affine {
        x: Fe::ZERO,
        y: Fe::ZERO,
    }; N];
    // Walking down: inverse = (Z_0 · … · Z_i)⁻¹ on entry to step i.
    for (i, (slot, point)) in out.iter_mut().zip(points).enumerate().rev() {
        let before = i
            .checked_sub(1)
            .and_then(|j| prefix.get(j).copied())
            .unwrap_or_else(Fe::one);
        let zinv = inverse.mul(before);
        inverse = inverse.mul(point.z);
        let zinv2 = zinv.square();
        *slot = Affine {
            x: point.x.mul(zinv2),
            y: point.y.mul(zinv2).mul(zinv),
        };
    }
    Some(out)
}

/// How many parts each scalar is cut into: R = Σ_j (u1_j·(2^(j·B)·G) + u2_j·(2^(j·B)·Q)) with
/// B = ⌈(32·L + 1) / PARTS⌉ bits per part, so one pass of B doublings serves all parts (33 for
/// P-256 instead of 257), at the cost of a table per part for G and for each key.
pub const PARTS: usize = 8;

/// Bits per part of a scalar's NAF (`PARTS`).
const fn part_bits(limbs: usize) -> usize {
    (32 * limbs + 1).div_ceil(PARTS)
}

/// A point's tables for the parts of a scalar: part j holds the odd multiples of 2^(j·B)·P.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comb<C: Curve<L>, const L: usize, const N: usize>([Table<C, L, N>; PARTS]);

impl<C: Curve<L>, const L: usize, const N: usize> Comb<C, L, N> {
    /// The tables of a point of order n.
    fn of(p: Affine<C, L>) -> Option<Self> {
        let mut base = p;
        let mut tables = Vec::with_capacity(PARTS);
        for part in 0..PARTS {
            if part > 0 {
                let mut acc = Jacobian::from_affine(&base);
                for _ in 0..part_bits(L) {
                    acc = acc.double();
                }
                base = acc.to_affine()?;
            }
            tables.push(Table::of(base)?);
        }
        Some(Comb(tables.try_into().ok()?))
    }

    /// The generator's tables.
    pub fn generator() -> Option<Self> {
        Self::of(Affine::new(&C::GX, &C::GY)?)
    }

    /// ±(odd digit)·2^(part·B)·P; `None` for 0 and out-of-range digits or parts.
    fn get(&self, part: usize, digit: i8) -> Option<Affine<C, L>> {
        self.0.get(part)?.get(digit)
    }
}

/// Width-`w` NAF digits of `k` (2 ≤ w ≤ 8), least significant first: every digit is zero or odd
/// and in (−2^(w−1), 2^(w−1)), any w consecutive digits hold at most one non-zero, and
/// Σ digit_i·2^i = k. 32·L + 1 digits.
///
/// Read from k's bits without changing k: at bit i, the rest of the number is (k >> i) + carry,
/// where carry is 1 after a negative digit. When that is odd, the digit is its low w bits (odd),
/// taken as negative (with a carry) from 2^(w−1) on, and the next w − 1 digits are zero.
fn wnaf<const L: usize>(k: &[u32; L], w: u32) -> Vec<i8> {
    let bits = 32 * L + 1;
    let window = 1u32 << w;
    let mut digits = vec![0i8; bits];
    let mut carry = 0u32;
    let mut i = 0;
    while i < bits {
        let low = bits_at(k, i, w) + carry;
        if low & 1 == 0 {
            // Even: bit and carry are both 0 or both 1 (1 + 1 carries on); a zero digit.
            i += 1;
            continue;
        }
        let digit = if low >= window >> 1 {
            carry = 1;
            low as i32 - window as i32
        } else {
            carry = 0;
            low as i32
        };
        if let Some(slot) = digits.get_mut(i) {
            *slot = digit as i8;
        }
        i += w as usize;
    }
    digits
}

/// The `w` (≤ 8) bits of `k` from bit `i` on (zeros above k's top).
fn bits_at<const L: usize>(k: &[u32; L], i: usize, w: u32) -> u32 {
    let word = i / 32;
    let pair = u64::from(k.get(word).copied().unwrap_or(0))
        | u64::from(k.get(word + 1).copied().unwrap_or(0)) << 32;
    (pair >> (i % 32)) as u32 & ((1 << w) - 1)
}

/// The NAF width for u1: tables of 64 odd multiples of G per part (8 × 64 affine points: 32 KB
/// for P-256, 48 KB for P-384), built once per VM; about one addition per 9 bits of u1.
const G_WINDOW: u32 = 8;
/// Entries of each of the generator's tables, 2^(G_WINDOW − 2).
pub const G_ENTRIES: usize = 64;
/// The NAF width for u2: tables of 16 odd multiples per part (8 × 16 affine points: 8 KB per P-256
/// key, 12 KB per P-384 key), built when the key is loaded; about one addition per 7 bits of u2.
const Q_WINDOW: u32 = 6;
/// Entries of each of a key's tables, 2^(Q_WINDOW − 2).
const Q_ENTRIES: usize = 16;

/// A public key prepared for repeated verification: the point's tables of odd multiples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcPublicKey<C: Curve<L>, const L: usize> {
    table: Comb<C, L, Q_ENTRIES>,
}

impl<C: Curve<L>, const L: usize> EcPublicKey<C, L> {
    /// From the JWK coordinates (big-endian, 4·L bytes each); `None` unless a point on the curve.
    pub fn from_coordinates(x: &[u8], y: &[u8]) -> Option<Self> {
        let point = Affine::new(&limbs_from_be(x)?, &limbs_from_be(y)?)?;
        // The generator's table is built now, at key load, rather than on the first token.
        C::generator_table()?;
        Some(EcPublicKey {
            table: Comb::of(point)?,
        })
    }

    /// Verifies a P1363 signature (`r || s`, 4·L bytes each) over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verify_digest(&C::digest(message), signature)
            .unwrap_or(false)
    }

    fn verify_digest(&self, digest: &[u8], signature: &[u8]) -> Option<bool> {
        let n = &C::Scalar::M;
        let (r_bytes, s_bytes) = signature.split_at_checked(4 * L)?;
        let r = limbs_from_be::<L>(r_bytes)?;
        let s = limbs_from_be::<L>(s_bytes)?;
        let zero = [0u32; L];
        if r == zero || s == zero || !less_than(&r, n) || !less_than(&s, n) {
            return Some(false);
        }
        // z: the digest as an integer (its bit length is that of n: no truncation), mod n.
        let mut z = limbs_from_be::<L>(digest)?;
        if !less_than(&z, n) {
            z = sub_limbs(&z, n).0;
        }
        let w = Fe::<C::Scalar, L>::from_canonical(&invert_mod(&s, n)?)?;
        let u1 = Fe::<C::Scalar, L>::from_canonical(&z)?
            .mul(w)
            .to_canonical();
        let u2 = Fe::<C::Scalar, L>::from_canonical(&r)?
            .mul(w)
            .to_canonical();
        let g_table = C::generator_table()?;

        // R = u1·G + u2·Q: both scalars' NAF digits, cut into PARTS parts of B digits; one pass
        // from the most significant position down, one doubling per position shared by all.
        let g_digits = wnaf(&u1, G_WINDOW);
        let q_digits = wnaf(&u2, Q_WINDOW);
        let bits = part_bits(L);
        let mut acc = Jacobian::<C, L>::infinity();
        for position in (0..bits).rev() {
            if !acc.is_infinity() {
                acc = acc.double();
            }
            for part in 0..PARTS {
                let index = part * bits + position;
                if let Some(p) = g_digits.get(index).and_then(|d| g_table.get(part, *d)) {
                    acc = acc.add_affine(&p);
                }
                if let Some(p) = q_digits.get(index).and_then(|d| self.table.get(part, *d)) {
                    acc = acc.add_affine(&p);
                }
            }
        }
        if acc.is_infinity() {
            return Some(false);
        }
        // x(R) mod n == r without inverting Z: x(R) ∈ [0, p) and n < p, so x(R) mod n == r
        // iff x(R) == r or x(R) == r + n (the latter only when r + n < p).
        let z2 = acc.z.square();
        let matches = |candidate: &[u32; L]| {
            Fe::<C, L>::from_canonical(candidate).is_some_and(|c| c.mul(z2) == acc.x)
        };
        if matches(&r) {
            return Some(true);
        }
        let (r_plus_n, carry) = add_limbs(&r, n);
        Some(!carry && less_than(&r_plus_n, &C::M) && matches(&r_plus_n))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::super::curves::{P256, P384};
    use super::*;

    #[test]
    fn generators_are_on_their_curves_and_tables_build() {
        assert!(Affine::<P256, 8>::new(&P256::GX, &P256::GY).is_some());
        assert!(Affine::<P384, 12>::new(&P384::GX, &P384::GY).is_some());
        assert!(P256::generator_table().is_some());
        assert!(P384::generator_table().is_some());
        let mut off = P256::GY;
        off[0] ^= 1;
        assert!(Affine::<P256, 8>::new(&P256::GX, &off).is_none());
        // Coordinates ≥ p are refused even when congruent to a point's.
        assert!(Affine::<P256, 8>::new(&P256::M, &P256::GY).is_none());
    }

    #[test]
    fn doubling_and_addition_agree() {
        let g = Affine::<P256, 8>::new(&P256::GX, &P256::GY).unwrap();
        let table = Table::<P256, 8, 8>::of(g).unwrap();
        let at = |d: i8| table.get(d).unwrap();
        assert_eq!(at(1), g);
        // 2·G + 3·G == 5·G, 5·G − 3·G == 2·G, and 3·G + 3·G through addition is a doubling.
        let two = Jacobian::from_affine(&g).double();
        assert_eq!(two.add_affine(&at(3)).to_affine().unwrap(), at(5));
        let five = Jacobian::from_affine(&at(5));
        assert_eq!(five.add_affine(&at(-3)).to_affine(), two.to_affine());
        let three = Jacobian::from_affine(&at(3));
        assert_eq!(
            three.add_affine(&at(3)).to_affine(),
            three.double().to_affine()
        );
        assert!(three.add_affine(&at(-3)).is_infinity());
        assert_eq!(at(-7), at(7).negate());
        assert!(Jacobian::<P256, 8>::infinity().to_affine().is_none());
        for d in [0i8, 2, -2, 16, 17, -17, i8::MIN] {
            assert!(table.get(d).is_none(), "{d}");
        }
    }

    /// Σ digit_i·2^i modulo 2^(32·(L+1)) by Horner's rule.
    fn naf_value<const L: usize>(digits: &[i8]) -> Vec<u32> {
        let mut acc = vec![0u32; L + 1];
        for d in digits.iter().rev() {
            let mut carry = 0u64;
            for limb in acc.iter_mut() {
                let v = (u64::from(*limb) << 1) | carry;
                *limb = v as u32;
                carry = v >> 32;
            }
            let add = i64::from(*d);
            let mut c = add;
            for limb in acc.iter_mut() {
                let v = i64::from(*limb) + c;
                *limb = v as u32;
                c = v >> 32;
            }
        }
        acc
    }

    #[test]
    fn wnaf_digits_are_sparse_odd_and_sum_to_the_scalar() {
        let mut x = 0x2545f4914f6cdd1du64;
        let mut scalars: Vec<[u32; 8]> = vec![
            [0; 8],
            [1, 0, 0, 0, 0, 0, 0, 0],
            [u32::MAX; 8],
            <P256 as Curve<8>>::Scalar::M,
            [0x7f, 0, 0, 0, 0, 0, 0, 0x8000_0000],
        ];
        for _ in 0..300 {
            let mut k = [0u32; 8];
            for limb in k.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *limb = if x.is_multiple_of(4) {
                    u32::MAX
                } else {
                    (x >> 20) as u32
                };
            }
            scalars.push(k);
        }
        for k in &scalars {
            for w in [2u32, 5, 7, 8] {
                let digits = wnaf(k, w);
                assert!(digits.len() <= 8 * 32 + 1);
                let mut expected = k.to_vec();
                expected.push(0);
                assert_eq!(naf_value::<8>(&digits), expected, "{k:08x?} w={w}");
                for (i, d) in digits.iter().enumerate() {
                    assert!(i32::from(*d).abs() < 1 << (w - 1));
                    if *d != 0 {
                        assert!(d % 2 != 0);
                        let next = &digits[i + 1..digits.len().min(i + w as usize)];
                        assert!(next.iter().all(|n| *n == 0), "{k:08x?} w={w}");
                    }
                }
            }
        }
    }

    #[test]
    fn malformed_signatures_are_refused() {
        let key = EcPublicKey::<P256, 8>::from_coordinates(
            &super::super::tests::be_bytes(&P256::GX),
            &super::super::tests::be_bytes(&P256::GY),
        )
        .unwrap();
        assert!(!key.verify(b"m", &[]));
        assert!(!key.verify(b"m", &[1u8; 63]));
        assert!(!key.verify(b"m", &[1u8; 65]));
        assert!(!key.verify(b"m", &[0u8; 64]));
        let mut r_is_n = [1u8; 64];
        r_is_n[..32].copy_from_slice(&super::super::tests::be_bytes(
            &<P256 as Curve<8>>::Scalar::M,
        ));
        assert!(!key.verify(b"m", &r_is_n));
        assert!(EcPublicKey::<P256, 8>::from_coordinates(&[0u8; 32], &[0u8; 32]).is_none());
        assert!(EcPublicKey::<P256, 8>::from_coordinates(&[0u8; 31], &[0u8; 32]).is_none());
    }
}
