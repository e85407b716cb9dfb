//! Candidate (e), a prototype: a minimal hand-written ES256 (ECDSA P-256 + SHA-256) verify sized
//! for wasm32, where a 32×32→64-bit multiply is one `i64.mul` and no wider one exists.
//!
//! - Field: 8 × u32 limbs in Montgomery form, CIOS multiplication unrolled against the constant
//!   prime (p ≡ −1 mod 2³², so the per-limb Montgomery factor is the low limb itself, and the zero
//!   and one limbs of p fold away).
//! - Points: Jacobian coordinates, a = −3 doubling (dbl-2001-b), mixed affine addition
//!   (madd-2007-bl) with the equal-point and infinity cases handled.
//! - u1·G + u2·Q: one interleaved pass of 4-bit fixed windows over both scalars (256 doublings,
//!   ≤ 128 mixed additions) on tables of 1..15 multiples in affine form: G's once per process,
//!   Q's once per key (a filter would cache them with the key).
//! - The final `x(R) mod n == r` test is done projectively (r·Z² == X, and (r+n)·Z² when r+n < p),
//!   so no field inversion is needed per verify; the one scalar inversion s⁻¹ mod n uses
//!   crypto-bigint 0.5.
//!
//! Not constant time (verification handles public data only). Checked natively against `p256`
//! 0.13 by the tests below; a production version would also need the Wycheproof vectors.

use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::{Encoding as _, U256};
use sha2::{Digest as _, Sha256};
use wasm_crypto_bench::fixtures::P256_POINT;
use wasm_crypto_bench::{bench, es256_token};

/// A 256-bit value as 8 little-endian u32 limbs.
type Limbs = [u32; 8];

/// The field prime p = 2²⁵⁶ − 2²²⁴ + 2¹⁹² + 2⁹⁶ − 1.
const P: Limbs =
    limbs_from_be_hex("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff");
/// The group order n.
const N: Limbs =
    limbs_from_be_hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
/// The curve coefficient b (a = −3).
const B: Limbs =
    limbs_from_be_hex("5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b");
/// The generator's affine coordinates.
const GX: Limbs =
    limbs_from_be_hex("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296");
const GY: Limbs =
    limbs_from_be_hex("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5");

/// Parses 64 hex digits (big-endian) at compile time.
const fn limbs_from_be_hex(hex: &str) -> Limbs {
    let bytes = hex.as_bytes();
    let mut out = [0u32; 8];
    let mut i = 0;
    while i < 64 {
        let c = bytes[i];
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not a lower-case hex digit"),
        };
        let nibble_from_low = 63 - i;
        out[nibble_from_low / 8] |= (digit as u32) << ((nibble_from_low % 8) * 4);
        i += 1;
    }
    out
}

/// 32 big-endian bytes as limbs.
fn limbs_from_be_bytes(bytes: &[u8; 32]) -> Limbs {
    let mut out = [0u32; 8];
    for (limb, chunk) in out.iter_mut().zip(bytes.rchunks_exact(4)) {
        *limb = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    out
}

/// Limbs as 32 big-endian bytes.
fn limbs_to_be_bytes(limbs: &Limbs) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, limb) in out.rchunks_exact_mut(4).zip(limbs) {
        chunk.copy_from_slice(&limb.to_be_bytes());
    }
    out
}

/// `a < b` as integers.
fn less_than(a: &Limbs, b: &Limbs) -> bool {
    for i in (0..8).rev() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
    }
    false
}

/// `a + b` and the carry out.
fn add_limbs(a: &Limbs, b: &Limbs) -> (Limbs, bool) {
    let mut out = [0u32; 8];
    let mut carry = 0u64;
    for i in 0..8 {
        let v = u64::from(a[i]) + u64::from(b[i]) + carry;
        out[i] = v as u32;
        carry = v >> 32;
    }
    (out, carry != 0)
}

/// `a − b` and the borrow out.
fn sub_limbs(a: &Limbs, b: &Limbs) -> (Limbs, bool) {
    let mut out = [0u32; 8];
    let mut borrow = 0u64;
    for i in 0..8 {
        let v = u64::from(a[i])
            .wrapping_sub(u64::from(b[i]))
            .wrapping_sub(borrow);
        out[i] = v as u32;
        borrow = (v >> 63) & 1;
    }
    (out, borrow != 0)
}

/// A field element in Montgomery form (value · 2²⁵⁶ mod p), fully reduced.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Fe(Limbs);

impl Fe {
    const ZERO: Fe = Fe([0; 8]);

    /// Montgomery product a·b·2⁻²⁵⁶ mod p (CIOS).
    #[inline]
    fn mul(self, rhs: Fe) -> Fe {
        let (a, b) = (self.0, rhs.0);
        let mut t = [0u32; 10];
        for &bi in &b {
            let bi = u64::from(bi);
            let mut carry = 0u64;
            for j in 0..8 {
                let v = u64::from(t[j]) + u64::from(a[j]) * bi + carry;
                t[j] = v as u32;
                carry = v >> 32;
            }
            let v = u64::from(t[8]) + carry;
            t[8] = v as u32;
            t[9] = (v >> 32) as u32;
            // −p⁻¹ mod 2³² = 1, so the multiple of p that clears t[0] is t[0] itself.
            let m = u64::from(t[0]);
            let mut carry = (u64::from(t[0]) + m * u64::from(P[0])) >> 32;
            for j in 1..8 {
                let v = u64::from(t[j]) + m * u64::from(P[j]) + carry;
                t[j - 1] = v as u32;
                carry = v >> 32;
            }
            let v = u64::from(t[8]) + carry;
            t[7] = v as u32;
            t[8] = t[9] + (v >> 32) as u32;
        }
        let low: Limbs = [t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]];
        if t[8] != 0 || !less_than(&low, &P) {
            Fe(sub_limbs(&low, &P).0)
        } else {
            Fe(low)
        }
    }

    fn square(self) -> Fe {
        self.mul(self)
    }

    fn add(self, rhs: Fe) -> Fe {
        let (sum, carry) = add_limbs(&self.0, &rhs.0);
        if carry || !less_than(&sum, &P) {
            Fe(sub_limbs(&sum, &P).0)
        } else {
            Fe(sum)
        }
    }

    fn sub(self, rhs: Fe) -> Fe {
        let (diff, borrow) = sub_limbs(&self.0, &rhs.0);
        if borrow {
            Fe(add_limbs(&diff, &P).0)
        } else {
            Fe(diff)
        }
    }

    fn double(self) -> Fe {
        self.add(self)
    }

    fn is_zero(self) -> bool {
        self.0 == [0; 8]
    }

    /// 2²⁵⁶ mod p, i.e. 1 in Montgomery form.
    fn one() -> Fe {
        Fe(sub_limbs(&[0; 8], &P).0)
    }

    /// 2⁵¹² mod p, the factor that brings a plain value into Montgomery form.
    fn r_squared() -> Fe {
        let mut x = Fe::one();
        for _ in 0..256 {
            x = x.double();
        }
        x
    }

    /// Into Montgomery form; `None` when `value ≥ p`.
    fn from_canonical(value: &Limbs, r2: Fe) -> Option<Fe> {
        less_than(value, &P).then(|| Fe(*value).mul(r2))
    }

    /// Out of Montgomery form.
    #[cfg(test)]
    fn to_canonical(self) -> Limbs {
        let mut one = [0u32; 8];
        one[0] = 1;
        self.mul(Fe(one)).0
    }

    /// The inverse by Fermat (self^(p−2)); zero stays zero.
    fn invert(self) -> Fe {
        let (exponent, _) = sub_limbs(&P, &[2, 0, 0, 0, 0, 0, 0, 0]);
        let mut acc = Fe::one();
        for i in (0..256).rev() {
            acc = acc.square();
            if (exponent[i / 32] >> (i % 32)) & 1 == 1 {
                acc = acc.mul(self);
            }
        }
        acc
    }
}

/// A point in Jacobian coordinates (x = X/Z², y = Y/Z³); Z = 0 is the point at infinity.
#[derive(Clone, Copy, Debug)]
struct Jacobian {
    x: Fe,
    y: Fe,
    z: Fe,
}

/// A finite point in affine coordinates.
#[derive(Clone, Copy, Debug)]
struct Affine {
    x: Fe,
    y: Fe,
}

impl Jacobian {
    fn infinity() -> Jacobian {
        Jacobian {
            x: Fe::ZERO,
            y: Fe::ZERO,
            z: Fe::ZERO,
        }
    }

    fn from_affine(p: Affine) -> Jacobian {
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
    fn double(&self) -> Jacobian {
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
    fn add_affine(&self, q: &Affine) -> Jacobian {
        if self.is_infinity() {
            return Jacobian::from_affine(*q);
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
    fn to_affine(self) -> Option<Affine> {
        if self.is_infinity() {
            return None;
        }
        let zinv = self.z.invert();
        let zinv2 = zinv.square();
        Some(Affine {
            x: self.x.mul(zinv2),
            y: self.y.mul(zinv2).mul(zinv),
        })
    }
}

/// 1·P … 15·P in affine form (index k holds (k+1)·P); `None` if a multiple is infinity (cannot
/// happen for a point of prime order n).
fn window_table(p: Affine) -> Option<[Affine; 15]> {
    let mut table = [p; 15];
    let mut acc = Jacobian::from_affine(p);
    for entry in table.iter_mut().skip(1) {
        acc = acc.add_affine(&p);
        *entry = acc.to_affine()?;
    }
    Some(table)
}

/// Per-process constants: the Montgomery factor and G's window table.
struct Curve {
    r2: Fe,
    b: Fe,
    g_table: [Affine; 15],
    n_params: DynResidueParams<{ U256::LIMBS }>,
}

impl Curve {
    fn new() -> Option<Curve> {
        let r2 = Fe::r_squared();
        let g = Affine {
            x: Fe::from_canonical(&GX, r2)?,
            y: Fe::from_canonical(&GY, r2)?,
        };
        Some(Curve {
            r2,
            b: Fe::from_canonical(&B, r2)?,
            g_table: window_table(g)?,
            n_params: DynResidueParams::new(&U256::from_be_slice(&limbs_to_be_bytes(&N))),
        })
    }

    /// Whether (x, y) satisfies y² = x³ − 3x + b.
    fn on_curve(&self, p: &Affine) -> bool {
        let x3 = p.x.square().mul(p.x);
        let three_x = p.x.double().add(p.x);
        p.y.square() == x3.sub(three_x).add(self.b)
    }
}

/// A P-256 public key prepared for repeated verification.
struct P256Key {
    q_table: [Affine; 15],
}

impl P256Key {
    /// From SEC1 uncompressed bytes (`04 || x || y`); `None` unless a point on the curve.
    fn new(curve: &Curve, sec1: &[u8]) -> Option<P256Key> {
        let (&tag, coords) = sec1.split_first()?;
        if tag != 0x04 || coords.len() != 64 {
            return None;
        }
        let (x, y) = coords.split_at(32);
        let q = Affine {
            x: Fe::from_canonical(&limbs_from_be_bytes(x.try_into().ok()?), curve.r2)?,
            y: Fe::from_canonical(&limbs_from_be_bytes(y.try_into().ok()?), curve.r2)?,
        };
        if !curve.on_curve(&q) {
            return None;
        }
        Some(P256Key {
            q_table: window_table(q)?,
        })
    }

    /// ECDSA verification of a 64-byte `r || s` signature over SHA-256(`message`).
    fn verify_es256(&self, curve: &Curve, message: &[u8], signature: &[u8]) -> bool {
        let Some((r_bytes, s_bytes)) = signature.split_at_checked(32) else {
            return false;
        };
        let (Ok(r_bytes), Ok(s_bytes)) = (
            <&[u8; 32]>::try_from(r_bytes),
            <&[u8; 32]>::try_from(s_bytes),
        ) else {
            return false;
        };
        let (r, s) = (limbs_from_be_bytes(r_bytes), limbs_from_be_bytes(s_bytes));
        let zero = [0u32; 8];
        if r == zero || s == zero || !less_than(&r, &N) || !less_than(&s, &N) {
            return false;
        }
        // z: the digest as an integer (256 bits = the bit length of n, so no truncation), mod n.
        let digest: [u8; 32] = Sha256::digest(message).into();
        let mut z = limbs_from_be_bytes(&digest);
        if !less_than(&z, &N) {
            z = sub_limbs(&z, &N).0;
        }
        let to_residue = |v: &Limbs| {
            DynResidue::new(&U256::from_be_slice(&limbs_to_be_bytes(v)), curve.n_params)
        };
        let (w, invertible) = to_residue(&s).invert();
        if !bool::from(invertible) {
            return false;
        }
        let u1 = (to_residue(&z) * w).retrieve().to_be_bytes();
        let u2 = (to_residue(&r) * w).retrieve().to_be_bytes();

        // R = u1·G + u2·Q, 4-bit windows from the top.
        let mut acc = Jacobian::infinity();
        for (byte1, byte2) in u1.iter().zip(u2.iter()) {
            for shift in [4u32, 0] {
                if !acc.is_infinity() {
                    acc = acc.double().double().double().double();
                }
                let d1 = usize::from((byte1 >> shift) & 0x0f);
                let d2 = usize::from((byte2 >> shift) & 0x0f);
                if let Some(p) = d1.checked_sub(1).and_then(|k| curve.g_table.get(k)) {
                    acc = acc.add_affine(p);
                }
                if let Some(p) = d2.checked_sub(1).and_then(|k| self.q_table.get(k)) {
                    acc = acc.add_affine(p);
                }
            }
        }
        if acc.is_infinity() {
            return false;
        }
        // x(R) mod n == r, without inverting Z: x(R) ∈ [0, p) and n < p, so x(R) mod n == r
        // iff x(R) == r or x(R) == r + n (the latter only when r + n < p).
        let z2 = acc.z.square();
        let matches = |candidate: &Limbs| {
            Fe::from_canonical(candidate, curve.r2).is_some_and(|c| c.mul(z2) == acc.x)
        };
        if matches(&r) {
            return true;
        }
        let (r_plus_n, carry) = add_limbs(&r, &N);
        !carry && less_than(&r_plus_n, &P) && matches(&r_plus_n)
    }
}

fn main() {
    let Some(curve) = Curve::new() else {
        std::process::exit(3)
    };
    let Some(key) = P256Key::new(&curve, &P256_POINT) else {
        std::process::exit(3)
    };
    bench("ES256", "hand-p256", &es256_token(), |input, sig| {
        key.verify_es256(&curve, input, sig)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer as _;
    use p256::ecdsa::{Signature, SigningKey};
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;

    #[test]
    fn constants_match_the_p256_crate() {
        let g = p256::AffinePoint::GENERATOR.to_encoded_point(false);
        assert_eq!(g.x().unwrap()[..], limbs_to_be_bytes(&GX));
        assert_eq!(g.y().unwrap()[..], limbs_to_be_bytes(&GY));
        let curve = Curve::new().unwrap();
        assert!(curve.on_curve(&curve.g_table[0]));
        // 15·G from the table equals the p256 crate's.
        let fifteen = (p256::ProjectivePoint::GENERATOR * p256::Scalar::from(15u64)).to_affine();
        let fifteen = fifteen.to_encoded_point(false);
        let ours = curve.g_table[14];
        assert_eq!(
            fifteen.x().unwrap()[..],
            limbs_to_be_bytes(&ours.x.to_canonical())
        );
        assert_eq!(
            fifteen.y().unwrap()[..],
            limbs_to_be_bytes(&ours.y.to_canonical())
        );
    }

    #[test]
    fn field_inverse_round_trips() {
        let r2 = Fe::r_squared();
        let x = Fe::from_canonical(&GX, r2).unwrap();
        assert_eq!(x.mul(x.invert()), Fe::one());
    }

    #[test]
    fn agrees_with_the_p256_crate_on_many_signatures() {
        let curve = Curve::new().unwrap();
        for k in 1u8..=40 {
            let mut secret = [0u8; 32];
            secret[0] = 0x40;
            secret[31] = k;
            secret[7] = k.wrapping_mul(37);
            let signing = SigningKey::from_bytes(&secret.into()).unwrap();
            let point = signing.verifying_key().to_encoded_point(false);
            let key = P256Key::new(&curve, point.as_bytes()).unwrap();
            let message = vec![k; usize::from(k) * 7];
            let sig: Signature = signing.sign(&message);
            let sig = sig.to_bytes();
            assert!(key.verify_es256(&curve, &message, &sig), "key {k}");
            let mut bad = sig;
            bad[usize::from(k) % 64] ^= 0x10;
            assert!(
                !key.verify_es256(&curve, &message, &bad),
                "tampered sig {k}"
            );
            assert!(
                !key.verify_es256(&curve, b"other message", &sig),
                "other message {k}"
            );
        }
    }

    #[test]
    fn malformed_inputs_are_refused() {
        let curve = Curve::new().unwrap();
        let key = P256Key::new(&curve, &P256_POINT).unwrap();
        let token = es256_token();
        assert!(key.verify_es256(&curve, token.signing_input, &token.signature));
        assert!(!key.verify_es256(&curve, token.signing_input, &token.signature[..63]));
        assert!(!key.verify_es256(&curve, token.signing_input, &[0u8; 64]));
        let mut r_is_n = token.signature.clone();
        r_is_n[..32].copy_from_slice(&limbs_to_be_bytes(&N));
        assert!(!key.verify_es256(&curve, token.signing_input, &r_is_n));
        let mut off_curve = P256_POINT;
        off_curve[64] ^= 1;
        assert!(P256Key::new(&curve, &off_curve).is_none());
    }
}
