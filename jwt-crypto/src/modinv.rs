//! Inversion modulo an odd modulus by divsteps (Bernstein and Yang, "Fast constant-time gcd
//! computation and modular inversion", 2019), in the variable-time form: verification handles
//! public data only (s⁻¹ mod n of a signature, Z⁻¹ mod p when a key's tables are built).
//!
//! A divstep maps (δ, f, g) with f odd to
//! - (δ + 1, f, g/2) when g is even,
//! - (1 − δ, g, (g − f)/2) when g is odd and δ > 0,
//! - (δ + 1, f, (g + f)/2) when g is odd and δ ≤ 0.
//!
//! From (1, m, a), g reaches 0 within ⌊(49·d + 80)/17⌋ steps for d-bit inputs (the paper's
//! bound for f² + 4g² ≤ 5·2^(2d)), and f is then ±gcd(m, a). The steps are taken 30 at a time: the decisions of 30
//! steps depend on the low 30 bits of f and g only, so they are made on one word each and
//! collected in a 2×2 matrix T (entries scaled by 2³⁰, |u| + |v| ≤ 2³⁰ per row), which is then
//! applied once to the multi-limb f and g: (f, g) ← T·(f, g) / 2³⁰, exact. Within a batch,
//! trailing zeros of g are removed at once, and while δ stays ≤ 0 several "add f if odd, halve"
//! steps are merged into one addition of w·f (w = −g·f⁻¹ mod 2^k).
//!
//! The same matrix carries the coefficients d, e with f ≡ d·a and g ≡ e·a (mod m) from (0, 1):
//! (d, e) ← T·(d, e) / 2³⁰ mod m, where the division is exact after adding the multiple of m
//! that clears the low 30 bits. At the end f = ±1 and a⁻¹ = ±d.
//!
//! Numbers are signed, in base 2³⁰ (`K` limbs of `i32`: every limb but the top one in
//! [0, 2³⁰), the top one signed), so that a limb times a matrix entry fits in 61 bits and two
//! such products plus a carry fit an `i64`: wasm32's fastest product is 32×32→64 bits.

use super::field::less_than;

/// Divsteps per batch, and bits per limb.
const SHIFT: u32 = 30;
/// The low `SHIFT` bits.
const MASK: i64 = (1 << SHIFT) - 1;

/// The transition matrix of one batch of `SHIFT` divsteps, scaled by 2^SHIFT:
/// 2^SHIFT·(f', g') = (u·f + v·g, q·f + r·g).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Transition {
    u: i64,
    v: i64,
    q: i64,
    r: i64,
}

/// `SHIFT` divsteps from `delta` on the low bits of f (odd) and g; the new δ and the matrix.
/// (Out of line: one copy for every modulus size.)
#[inline(never)]
fn divsteps(mut delta: i32, f0: u32, g0: u32) -> (i32, Transition) {
    // f and g hold the low bits of the current f and g; after j steps, bits 0 .. SHIFT − j of
    // both are exact, and that is all the remaining steps look at. u, v, q, r: the matrix so far,
    // scaled by 2^j. Every row keeps |u| + |v| ≤ 2^j ≤ 2^SHIFT, so nothing below overflows an
    // i32 (the wrapping operations only spare debug builds a check). Each pass but the first
    // removes at least one zero (the addition clears bit 0 of g), so the loop ends.
    let (mut f, mut g) = (f0, g0);
    let (mut u, mut v, mut q, mut r) = (1i32, 0i32, 0i32, 1i32);
    let mut left = SHIFT;
    loop {
        // Trailing zeros of g (at most the steps left): each is a step g ← g/2, which in the
        // scaled matrix doubles f's row.
        let zeros = (g | (u32::MAX << left)).trailing_zeros();
        g >>= zeros;
        u = u.wrapping_shl(zeros);
        v = v.wrapping_shl(zeros);
        delta = delta.wrapping_add(zeros as i32);
        left -= zeros;
        if left == 0 {
            break;
        }
        // g is odd. With δ > 0 the step is (1 − δ, g, (g − f)/2): swap f and −g, negate δ, and
        // what follows is the δ ≤ 0 step (g + f)/2 with δ + 1.
        if delta > 0 {
            delta = delta.wrapping_neg();
            (f, g) = (g, f.wrapping_neg());
            (u, v, q, r) = (q, r, u.wrapping_neg(), v.wrapping_neg());
        }
        // While δ ≤ 0, each step adds f when g is odd and halves: k = min(1 − δ, left, 12) such
        // steps add w·f with w = −g·f⁻¹ mod 2^k (which clears the low k bits of g); the halvings
        // are the next pass's trailing zeros. f⁻¹ mod 2¹²: f·f ≡ 1 mod 8, and each Newton step
        // x·(2 − f·x) doubles the correct bits.
        let k = (1i32.wrapping_sub(delta) as u32).min(left).min(12);
        let mut inverse = f;
        inverse = inverse.wrapping_mul(2u32.wrapping_sub(f.wrapping_mul(inverse)));
        inverse = inverse.wrapping_mul(2u32.wrapping_sub(f.wrapping_mul(inverse)));
        let w = g.wrapping_mul(inverse).wrapping_neg() & (u32::MAX >> (32 - k));
        g = g.wrapping_add(f.wrapping_mul(w));
        q = q.wrapping_add(u.wrapping_mul(w as i32));
        r = r.wrapping_add(v.wrapping_mul(w as i32));
    }
    (
        delta,
        Transition {
            u: i64::from(u),
            v: i64::from(v),
            q: i64::from(q),
            r: i64::from(r),
        },
    )
}

/// A signed integer in base 2^SHIFT, `K` limbs, little-endian: every limb but the top one in
/// [0, 2^SHIFT), the top one signed.
type Signed<const K: usize> = [i32; K];

fn is_negative<const K: usize>(x: &Signed<K>) -> bool {
    x.last().is_some_and(|top| *top < 0)
}

/// The low limb as a word (its bits are those of the number's low 30 bits, also when negative).
fn low<const K: usize>(x: &Signed<K>) -> i64 {
    x.first().copied().map_or(0, i64::from)
}

/// (a·x + b·y) / 2^SHIFT, for an exact division: 2^SHIFT divides the sum.
/// (Out of line, as `combine_mod`: each is called twice per batch.)
#[inline(never)]
fn combine<const K: usize>(x: &Signed<K>, y: &Signed<K>, a: i64, b: i64) -> Signed<K> {
    let mut out = [0i32; K];
    let mut acc = (a * low(x) + b * low(y)) >> SHIFT;
    for (slot, (xi, yi)) in out.iter_mut().zip(x.iter().zip(y).skip(1)) {
        acc += a * i64::from(*xi) + b * i64::from(*yi);
        *slot = (acc & MASK) as i32;
        acc >>= SHIFT;
    }
    if let Some(top) = out.last_mut() {
        *top = acc as i32;
    }
    out
}

/// (a·x + b·y + c·m) / 2^SHIFT with c chosen so that the division is exact, for x, y in
/// (−2m, m): the result is in (−2m, m) again. Adding m to a negative x or y (through c) puts
/// both in (−m, m), so that a·x + b·y is in (−2^SHIFT·m, 2^SHIFT·m) as |a| + |b| ≤ 2^SHIFT;
/// the multiple of m that clears the low bits is then subtracted, between 0 and 2^SHIFT − 1
/// times m: the sum is in (−2^(SHIFT+1)·m, 2^SHIFT·m).
#[inline(never)]
fn combine_mod<const K: usize>(
    x: &Signed<K>,
    y: &Signed<K>,
    a: i64,
    b: i64,
    m: &Signed<K>,
    m_inv: u32,
) -> Signed<K> {
    let mut c = 0i64;
    if is_negative(x) {
        c += a;
    }
    if is_negative(y) {
        c += b;
    }
    let low_sum = a * low(x) + b * low(y) + c * low(m);
    // Subtract k·m with k ≡ low_sum·m⁻¹ (mod 2^SHIFT), computed in wrapping 32-bit arithmetic
    // (2^SHIFT divides 2³²).
    let k = (low_sum as u32).wrapping_mul(m_inv) & (MASK as u32);
    c -= i64::from(k);
    let mut out = [0i32; K];
    let mut acc = (low_sum - i64::from(k) * low(m)) >> SHIFT;
    for (slot, ((xi, yi), mi)) in out.iter_mut().zip(x.iter().zip(y).zip(m).skip(1)) {
        acc += a * i64::from(*xi) + b * i64::from(*yi) + c * i64::from(*mi);
        *slot = (acc & MASK) as i32;
        acc >>= SHIFT;
    }
    if let Some(top) = out.last_mut() {
        *top = acc as i32;
    }
    out
}

/// x + c·m, for c in {−1, 1}.
fn add_multiple<const K: usize>(x: &Signed<K>, m: &Signed<K>, c: i64) -> Signed<K> {
    let mut out = [0i32; K];
    let mut acc = 0i64;
    for (i, (slot, (xi, mi))) in out.iter_mut().zip(x.iter().zip(m)).enumerate() {
        acc += i64::from(*xi) + c * i64::from(*mi);
        if i + 1 == K {
            *slot = acc as i32;
        } else {
            *slot = (acc & MASK) as i32;
            acc >>= SHIFT;
        }
    }
    out
}

fn is_zero<const K: usize>(x: &Signed<K>) -> bool {
    x.iter().all(|limb| *limb == 0)
}

/// ±1: `Some(true)` for 1, `Some(false)` for −1, `None` otherwise.
fn unit_sign<const K: usize>(x: &Signed<K>) -> Option<bool> {
    let (first, rest) = x.split_first()?;
    let (top, middle) = rest.split_last()?;
    if *first == 1 && rest.iter().all(|l| *l == 0) {
        Some(true)
    } else if *first == MASK as i32 && middle.iter().all(|l| *l == MASK as i32) && *top == -1 {
        Some(false)
    } else {
        None
    }
}

/// Little-endian 32-bit limbs as `K` limbs of 30 bits (non-negative); `None` if they do not fit.
fn to_signed<const L: usize, const K: usize>(x: &[u32; L]) -> Option<Signed<K>> {
    let mut out = [0i32; K];
    let mut bits = 0u64;
    let mut held = 0u32;
    let mut words = x.iter();
    for slot in out.iter_mut() {
        if held < SHIFT {
            if let Some(word) = words.next() {
                bits |= u64::from(*word) << held;
                held += 32;
            }
        }
        *slot = (bits & MASK as u64) as i32;
        bits >>= SHIFT;
        held = held.saturating_sub(SHIFT);
    }
    // Nothing left over.
    (bits == 0 && words.all(|w| *w == 0)).then_some(out)
}

/// `K` limbs of 30 bits (non-negative, below 2^(32·L)) as little-endian 32-bit limbs.
fn from_signed<const L: usize, const K: usize>(x: &Signed<K>) -> [u32; L] {
    let mut out = [0u32; L];
    let mut bits = 0u64;
    let mut held = 0u32;
    let mut limbs = x.iter();
    for slot in out.iter_mut() {
        while held < 32 {
            let Some(limb) = limbs.next() else { break };
            bits |= u64::from(*limb as u32) << held;
            held += SHIFT;
        }
        *slot = bits as u32;
        bits >>= 32;
        held = held.saturating_sub(32);
    }
    out
}

/// m⁻¹ mod 2^SHIFT for an odd m (Newton's iteration from the 3 bits of m⁻¹ ≡ m mod 8).
fn inverse_mod_word(m0: u32) -> u32 {
    let mut x = m0;
    for _ in 0..4 {
        x = x.wrapping_mul(2u32.wrapping_sub(m0.wrapping_mul(x)));
    }
    x & (MASK as u32)
}

/// The inverse of `a` modulo the odd `m`, for `0 < a < m` with gcd(a, m) = 1; `None` otherwise.
/// `K` limbs of 30 bits must hold 32·L + 2 bits (checked: `None` otherwise).
fn invert<const L: usize, const K: usize>(a: &[u32; L], m: &[u32; L]) -> Option<[u32; L]> {
    if SHIFT as usize * K < 32 * L + 2 {
        return None;
    }
    let m_limbs = to_signed::<L, K>(m)?;
    let mut g = to_signed::<L, K>(a)?;
    if is_zero(&g) || !less_than(a, m) || low(&m_limbs) & 1 == 0 {
        return None;
    }
    let m_inv = inverse_mod_word(low(&m_limbs) as u32);
    let mut f = m_limbs;
    let mut d = [0i32; K];
    let mut e = [0i32; K];
    if let Some(first) = e.first_mut() {
        *first = 1;
    }
    let mut delta = 1i32;
    // The paper's bound on the steps for 32·L-bit inputs, in batches.
    let batches = (49 * 32 * L + 80) / 17 / SHIFT as usize + 1;
    for _ in 0..batches {
        if is_zero(&g) {
            break;
        }
        let t;
        (delta, t) = divsteps(delta, low(&f) as u32, low(&g) as u32);
        (d, e) = (
            combine_mod(&d, &e, t.u, t.v, &m_limbs, m_inv),
            combine_mod(&d, &e, t.q, t.r, &m_limbs, m_inv),
        );
        (f, g) = (combine(&f, &g, t.u, t.v), combine(&f, &g, t.q, t.r));
    }
    if !is_zero(&g) {
        return None;
    }
    // f = ±1 (else a and m share a factor), and a⁻¹ ≡ f·d with d in (−2m, m).
    if !unit_sign(&f)? {
        d = add_multiple(&[0i32; K], &d, -1);
    }
    // Now in (−2m, 2m): at most two additions or one subtraction of m.
    for _ in 0..2 {
        if is_negative(&d) {
            d = add_multiple(&d, &m_limbs, 1);
        }
    }
    let reduced = add_multiple(&d, &m_limbs, -1);
    if !is_negative(&reduced) {
        d = reduced;
    }
    Some(from_signed(&d))
}

/// The inverse of `a` modulo the odd `m`, for `0 < a < m` with gcd(a, m) = 1 (divsteps,
/// variable time); `None` when there is none or the arguments are out of range. Up to 12 limbs
/// (P-384).
pub fn invert_mod<const L: usize>(a: &[u32; L], m: &[u32; L]) -> Option<[u32; L]> {
    // 13 limbs of 30 bits hold 32·L + 2 bits up to P-384. P-256 would need 9 only: that is
    // 0.3 µs faster in V8, but a second copy of the code costs 1.3 KB of `.wasm`.
    invert::<L, 13>(a, m)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use crypto_bigint::{Encoding as _, U256, U384};

    use super::super::curves::{P256Scalar, P384Scalar, P256, P384};
    use super::super::field::{sub_limbs, FieldParams};
    use super::*;

    /// A xorshift stream.
    fn stream(seed: u64) -> impl FnMut() -> u32 {
        let mut x = seed;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as u32
        }
    }

    /// One divstep on exact integers.
    fn divstep(delta: i32, f: i128, g: i128) -> (i32, i128, i128) {
        if g & 1 == 0 {
            (delta + 1, f, g / 2)
        } else if delta > 0 {
            (1 - delta, g, (g - f) / 2)
        } else {
            (delta + 1, f, (g + f) / 2)
        }
    }

    /// A batch's matrix and δ are those of 30 single divsteps: 2³⁰·(f₃₀, g₃₀) = T·(f, g), on
    /// 62-bit values (whose 30 steps stay exact in i128) with δ from −40 to 40.
    #[test]
    fn a_batch_is_thirty_divsteps() {
        let mut next = stream(0x6a09e667f3bcc909);
        for round in 0..4000 {
            let wide = |n: &mut dyn FnMut() -> u32| (i128::from(n()) << 32 | i128::from(n())) >> 2;
            let mut f0 = wide(&mut next) | 1;
            let mut g0 = wide(&mut next);
            // Runs of zero bits in g and f's low bits, and negative values.
            if round % 5 == 0 {
                g0 &= !0xffff;
            }
            if round % 7 == 0 {
                g0 <<= 20;
                g0 &= (1 << 62) - 1;
            }
            if round % 3 == 0 {
                f0 = -f0;
            }
            if round % 11 == 0 {
                g0 = -g0;
            }
            let delta0 = (next() % 81) as i32 - 40;
            let (mut delta, mut f, mut g) = (delta0, f0, g0);
            for _ in 0..SHIFT {
                (delta, f, g) = divstep(delta, f, g);
            }
            let (got_delta, t) = divsteps(delta0, f0 as u32, g0 as u32);
            assert_eq!(got_delta, delta, "{f0} {g0} {delta0}");
            let (u, v, q, r) = (
                i128::from(t.u),
                i128::from(t.v),
                i128::from(t.q),
                i128::from(t.r),
            );
            assert_eq!(u * f0 + v * g0, f << SHIFT, "{f0} {g0} {delta0}");
            assert_eq!(q * f0 + r * g0, g << SHIFT, "{f0} {g0} {delta0}");
            assert!(u.abs() + v.abs() <= 1 << SHIFT && q.abs() + r.abs() <= 1 << SHIFT);
        }
    }

    #[test]
    fn limb_conversions_round_trip() {
        let mut next = stream(0xbb67ae8584caa73b);
        for _ in 0..200 {
            let mut x = [0u32; 8];
            x.iter_mut().for_each(|l| *l = next());
            let s = to_signed::<8, 9>(&x).unwrap();
            assert!(s.iter().all(|l| (0..1 << SHIFT).contains(l)));
            assert_eq!(from_signed::<8, 9>(&s), x);
            let mut y = [0u32; 12];
            y.iter_mut().for_each(|l| *l = next());
            assert_eq!(from_signed::<12, 13>(&to_signed::<12, 13>(&y).unwrap()), y);
        }
        // 9 limbs of 30 bits hold 270 bits, not 12 limbs of 32.
        assert!(to_signed::<12, 9>(&[u32::MAX; 12]).is_none());
        assert_eq!(
            unit_sign(&to_signed::<8, 9>(&[1, 0, 0, 0, 0, 0, 0, 0]).unwrap()),
            Some(true)
        );
        let minus_one = add_multiple(
            &[0i32; 9],
            &to_signed::<8, 9>(&[1, 0, 0, 0, 0, 0, 0, 0]).unwrap(),
            -1,
        );
        assert_eq!(unit_sign(&minus_one), Some(false));
        assert!(is_negative(&minus_one));
    }

    #[test]
    fn invert_mod_refuses_non_invertible_and_out_of_range() {
        assert_eq!(invert_mod(&[0u32, 0], &[7, 0]), None);
        assert_eq!(invert_mod(&[7u32, 0], &[7, 0]), None);
        assert_eq!(invert_mod(&[8u32, 0], &[7, 0]), None);
        assert_eq!(invert_mod(&[3u32, 0], &[9, 0]), None);
        assert_eq!(invert_mod(&[3u32, 0], &[8, 0]), None);
        assert_eq!(invert_mod(&[3u32, 0], &[7, 0]), Some([5, 0]));
        // 2⁶⁴ + 1 has no inverse of its factor 274177.
        assert_eq!(invert_mod(&[274177u32, 0, 0], &[1, 0, 1]), None);
        // Nor n·k modulo 3·n, and nothing of n itself.
        let n = P256Scalar::M;
        assert_eq!(invert_mod(&n, &n), None);
        assert_eq!(
            invert_mod(&[3, 0, 0, 0, 0, 0, 0, 0], &[3, 0, 0, 0, 0, 0, 0, 0]),
            None
        );
        assert_eq!(invert_mod(&[0u32; 8], &n), None);
        assert_eq!(invert_mod(&[1u32; 13], &[u32::MAX; 13]), None);
    }
    /// a·b mod m for a, b < m, bit by bit (a reference that shares no code with the field).
    fn mul_mod(a: &[u32], b: &[u32], m: &[u32]) -> Vec<u32> {
        // Bit-serial: r = 2r + bit·a mod m, from b's top bit.
        let mut r = vec![0u32; m.len()];
        let add_mod = |x: &[u32], y: &[u32]| -> Vec<u32> {
            let mut out = vec![0u32; m.len() + 1];
            let mut carry = 0u64;
            for i in 0..m.len() {
                let v = u64::from(x[i]) + u64::from(y[i]) + carry;
                out[i] = v as u32;
                carry = v >> 32;
            }
            out[m.len()] = carry as u32;
            // Subtract m when out ≥ m.
            let mut m_ext = m.to_vec();
            m_ext.push(0);
            let ge = out
                .iter()
                .rev()
                .zip(m_ext.iter().rev())
                .find(|(a, b)| a != b)
                .is_none_or(|(a, b)| a > b);
            if ge {
                let mut borrow = 0i64;
                for i in 0..out.len() {
                    let v = i64::from(out[i]) - i64::from(m_ext[i]) - borrow;
                    out[i] = v as u32;
                    borrow = i64::from(v < 0);
                }
            }
            out.truncate(m.len());
            out
        };
        for limb in b.iter().rev() {
            for bit in (0..32).rev() {
                r = add_mod(&r, &r);
                if (limb >> bit) & 1 == 1 {
                    r = add_mod(&r, a);
                }
            }
        }
        r
    }

    /// a · invert_mod(a) ≡ 1 modulo odd moduli of 1 to 12 limbs (a product of two big-integer
    /// values reduced by long division, independent of the Montgomery code).
    #[test]
    fn invert_mod_inverts() {
        let mut x = 0x853c49e6748fea9bu64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as u32
        };
        fn check<const L: usize>(next: &mut impl FnMut() -> u32) {
            let mut inverted = 0;
            for _ in 0..40 {
                let mut m = [0u32; L];
                m.iter_mut().for_each(|l| *l = next());
                m[0] |= 1;
                m[L - 1] |= 0x8000_0000;
                let mut a = [0u32; L];
                a.iter_mut().for_each(|l| *l = next());
                a[L - 1] &= 0x7fff_ffff;
                if a.iter().all(|l| *l == 0) {
                    continue;
                }
                if let Some(inv) = invert_mod(&a, &m) {
                    inverted += 1;
                    assert!(less_than(&inv, &m));
                    let mut one = vec![0u32; L];
                    one[0] = 1;
                    assert_eq!(mul_mod(&a, &inv, &m), one, "{a:08x?} {m:08x?}");
                }
            }
            // Random moduli are mostly coprime to random values.
            assert!(inverted > 20, "{inverted} of 40");
        }
        check::<1>(&mut next);
        check::<2>(&mut next);
        check::<3>(&mut next);
        check::<8>(&mut next);
        check::<11>(&mut next);
        check::<12>(&mut next);
    }

    /// Values with long runs of zero or one bits, small and near m, and pseudo-random ones.
    fn samples<const L: usize>(m: &[u32; L], seed: u64) -> Vec<[u32; L]> {
        let mut out = Vec::new();
        let small = |v: u32| {
            let mut x = [0u32; L];
            x[0] = v;
            x
        };
        for k in [1u32, 2, 3, 4, 5, 0x3fff_ffff, 0x4000_0000, u32::MAX] {
            out.push(small(k));
            out.push(sub_limbs(m, &small(k)).0);
        }
        // Single bits, 2^i − 1 and 2^i + 1 at every position.
        for i in 0..32 * L - 1 {
            let mut x = [0u32; L];
            x[i / 32] = 1 << (i % 32);
            out.push(x);
            let (below, _) = sub_limbs(&x, &small(1));
            if below != [0; L] {
                out.push(below);
            }
            let mut above = x;
            above[0] |= 1;
            out.push(above);
        }
        // The top limb alone, the bottom and top limbs, and half of m.
        let mut top = [0u32; L];
        top[L - 1] = m[L - 1] >> 1;
        out.push(top);
        top[0] = 1;
        out.push(top);
        let mut half = *m;
        for i in 0..L {
            half[i] = (m[i] >> 1) | m.get(i + 1).map_or(0, |n| n << 31);
        }
        out.push(half);
        let mut next = stream(seed);
        for round in 0..600 {
            let mut x = [0u32; L];
            x.iter_mut().for_each(|l| {
                *l = match next() % 6 {
                    0 if round % 2 == 0 => 0,
                    1 if round % 3 == 0 => u32::MAX,
                    _ => next(),
                }
            });
            out.push(x);
        }
        out.retain(|x| *x != [0; L] && less_than(x, m));
        out
    }

    /// a·x ≡ 1 (mod m), and x equal to crypto-bigint's inverse (its constant-time binary
    /// algorithm, `inv_odd_mod`) for P-256's and P-384's n and p.
    #[test]
    fn inverses_agree_with_crypto_bigint() {
        fn one<const L: usize>() -> Vec<u32> {
            let mut x = vec![0u32; L];
            x[0] = 1;
            x
        }
        for (m, seed) in [(P256Scalar::M, 1u64), (P256::M, 2)] {
            let reference = U256::from_be_slice(&super::super::tests::be_bytes(&m));
            for a in samples(&m, seed) {
                let x = invert_mod(&a, &m).unwrap();
                assert!(less_than(&x, &m));
                assert_eq!(mul_mod(&a, &x, &m), one::<8>(), "{a:08x?}");
                let (expected, ok) =
                    U256::from_be_slice(&super::super::tests::be_bytes(&a)).inv_odd_mod(&reference);
                assert!(bool::from(ok));
                assert_eq!(
                    super::super::tests::be_bytes(&x),
                    expected.to_be_bytes().to_vec()
                );
            }
        }
        for (m, seed) in [(P384Scalar::M, 3u64), (P384::M, 4)] {
            let reference = U384::from_be_slice(&super::super::tests::be_bytes(&m));
            for a in samples(&m, seed).into_iter().step_by(2) {
                let x = invert_mod(&a, &m).unwrap();
                assert_eq!(mul_mod(&a, &x, &m), one::<12>(), "{a:08x?}");
                let (expected, ok) =
                    U384::from_be_slice(&super::super::tests::be_bytes(&a)).inv_odd_mod(&reference);
                assert!(bool::from(ok));
                assert_eq!(
                    super::super::tests::be_bytes(&x),
                    expected.to_be_bytes().to_vec()
                );
            }
        }
    }
}
