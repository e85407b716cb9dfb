//! ECDSA signature verification (FIPS 186-4 §6.4) on short-Weierstrass curves with `a = −3`,
//! for ES256 (P-256 + SHA-256) and ES384 (P-384 + SHA-384) with IEEE P1363 `r || s` signatures
//! (RFC 7518 §3.4).
//!
//! - Points: Jacobian coordinates, `a = −3` doubling (dbl-2001-b) and mixed affine addition
//!   (madd-2007-bl) with the equal-point and infinity cases handled.
//! - u1·G + u2·Q: one interleaved pass of 4-bit fixed windows over both scalars on tables of
//!   1·P … 15·P in affine form: G's once per process, Q's once per key when the JWKS loads.
//! - The final `x(R) mod n == r` test is projective (r·Z² == X, and (r+n)·Z² when r+n < p), so a
//!   verification needs no field inversion; the one scalar inversion s⁻¹ mod n is a binary
//!   extended Euclid.
//!
//! Not constant time: verification handles public data only.

use super::field::{add_limbs, invert_mod, less_than, limbs_from_be, sub_limbs, Fe, FieldParams};

/// A curve `y² = x³ − 3x + b` over the field of `Self`, with a generator of prime order
/// `Scalar::M` and cofactor 1.
pub(crate) trait Curve<const L: usize>: FieldParams<L> {
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
    /// The generator's window table, built once per process.
    fn generator_table() -> Option<&'static Table<Self, L>>;
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
pub(crate) struct Affine<C: Curve<L>, const L: usize> {
    x: Fe<C, L>,
    y: Fe<C, L>,
}

impl<C: Curve<L>, const L: usize> Affine<C, L> {
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

/// 1·P … 15·P in affine form (entry k holds (k+1)·P).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Table<C: Curve<L>, const L: usize>([Affine<C, L>; 15]);

impl<C: Curve<L>, const L: usize> Table<C, L> {
    /// The table of a point of order n (no multiple below 16 is infinity).
    fn of(p: Affine<C, L>) -> Option<Self> {
        let mut table = [p; 15];
        let mut acc = Jacobian::from_affine(&p);
        for entry in table.iter_mut().skip(1) {
            acc = acc.add_affine(&p);
            *entry = acc.to_affine()?;
        }
        Some(Table(table))
    }

    /// The generator's table.
    pub(crate) fn generator() -> Option<Self> {
        Self::of(Affine::new(&C::GX, &C::GY)?)
    }

    /// `digit`·P for a digit 1..=15; `None` for 0.
    fn get(&self, digit: u32) -> Option<&Affine<C, L>> {
        let index = usize::try_from(digit).ok()?.checked_sub(1)?;
        self.0.get(index)
    }
}

/// A public key prepared for repeated verification: the point's window table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EcPublicKey<C: Curve<L>, const L: usize> {
    table: Table<C, L>,
}

impl<C: Curve<L>, const L: usize> EcPublicKey<C, L> {
    /// From the JWK coordinates (big-endian, 4·L bytes each); `None` unless a point on the curve.
    pub(crate) fn from_coordinates(x: &[u8], y: &[u8]) -> Option<Self> {
        let point = Affine::new(&limbs_from_be(x)?, &limbs_from_be(y)?)?;
        Some(EcPublicKey {
            table: Table::of(point)?,
        })
    }

    /// Verifies a P1363 signature (`r || s`, 4·L bytes each) over `message`.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
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

        // R = u1·G + u2·Q, 4-bit windows from the most significant end.
        let mut acc = Jacobian::<C, L>::infinity();
        for (limb1, limb2) in u1.iter().rev().zip(u2.iter().rev()) {
            for shift in [28u32, 24, 20, 16, 12, 8, 4, 0] {
                if !acc.is_infinity() {
                    acc = acc.double().double().double().double();
                }
                if let Some(p) = g_table.get((limb1 >> shift) & 0x0f) {
                    acc = acc.add_affine(p);
                }
                if let Some(p) = self.table.get((limb2 >> shift) & 0x0f) {
                    acc = acc.add_affine(p);
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
        let table = Table::of(g).unwrap();
        // 2·(4·G) through doubling equals 8·G from the table (built by repeated addition).
        let four = Jacobian::from_affine(table.get(4).unwrap());
        assert_eq!(four.double().to_affine().unwrap(), *table.get(8).unwrap());
        // 8·G + 7·G == 15·G, and P + P through addition is a doubling.
        let eight = Jacobian::from_affine(table.get(8).unwrap());
        let sum = eight.add_affine(table.get(7).unwrap()).to_affine().unwrap();
        assert_eq!(sum, *table.get(15).unwrap());
        let twice = eight.add_affine(table.get(8).unwrap()).to_affine().unwrap();
        assert_eq!(twice, eight.double().to_affine().unwrap());
        assert!(Jacobian::<P256, 8>::infinity().to_affine().is_none());
        assert!(table.get(0).is_none() && table.get(16).is_none());
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
