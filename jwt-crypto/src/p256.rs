//! P-256's base field product without Montgomery reduction: the 512-bit product (or square, with
//! each cross product computed once) reduced with the prime's special form
//! p = 2²⁵⁶ − 2²²⁴ + 2¹⁹² + 2⁹⁶ − 1 (FIPS 186-4 D.2.3, "fast reduction modulo p256"), which needs
//! additions and subtractions of the product's 32-bit words only. That halves the multiplications
//! of the generic Montgomery product (`field.rs`), the bulk of an ES256 verify in wasm32.
//! Elements are kept as plain values in [0, p) (the field's `R2` is 1).

use super::field::{less_than, sub_limbs};

/// p.
pub const P: [u32; 8] = [
    0xffffffff, 0xffffffff, 0xffffffff, 0x00000000, 0x00000000, 0x00000000, 0x00000001, 0xffffffff,
];

/// a·b as 16 little-endian limbs, product scanning: column k sums the low and the high halves
/// of the products a_i·b_j (i + j = k) in two accumulators, so no product waits for the carry
/// of the one before (the carry moves once per column). In V8 47 → 37 ns against operand
/// scanning with a carry per product; the same for the square gained nothing.
#[inline(always)]
fn mul_wide(a: &[u32; 8], b: &[u32; 8]) -> [u32; 16] {
    let [a0, a1, a2, a3, a4, a5, a6, a7] = a.map(u64::from);
    let [b0, b1, b2, b3, b4, b5, b6, b7] = b.map(u64::from);
    let mut t = [0u32; 16];
    let mut lo = 0u64;
    let mut hi;
    // Column k: lo adds the low halves of the products a_i·b_j with i + j = k (each below 2³²)
    // to the carry from column k − 1, hi sums their high halves. With at most 8 products, lo stays
    // below 17·2³² and the carry out, (lo >> 32) + hi, below 9·2³²: nothing overflows.
    macro_rules! column {
        ($k:expr; $(($x:ident, $y:ident)),+) => {
            hi = 0u64;
            $(
                let p = $x * $y;
                lo += p & 0xffff_ffff;
                hi += p >> 32;
            )+
            t[$k] = lo as u32;
            lo = (lo >> 32) + hi;
        };
    }
    column!(0; (a0, b0));
    column!(1; (a0, b1), (a1, b0));
    column!(2; (a0, b2), (a1, b1), (a2, b0));
    column!(3; (a0, b3), (a1, b2), (a2, b1), (a3, b0));
    column!(4; (a0, b4), (a1, b3), (a2, b2), (a3, b1), (a4, b0));
    column!(5; (a0, b5), (a1, b4), (a2, b3), (a3, b2), (a4, b1), (a5, b0));
    column!(6; (a0, b6), (a1, b5), (a2, b4), (a3, b3), (a4, b2), (a5, b1), (a6, b0));
    column!(7; (a0, b7), (a1, b6), (a2, b5), (a3, b4), (a4, b3), (a5, b2), (a6, b1), (a7, b0));
    column!(8; (a1, b7), (a2, b6), (a3, b5), (a4, b4), (a5, b3), (a6, b2), (a7, b1));
    column!(9; (a2, b7), (a3, b6), (a4, b5), (a5, b4), (a6, b3), (a7, b2));
    column!(10; (a3, b7), (a4, b6), (a5, b5), (a6, b4), (a7, b3));
    column!(11; (a4, b7), (a5, b6), (a6, b5), (a7, b4));
    column!(12; (a5, b7), (a6, b6), (a7, b5));
    column!(13; (a6, b7), (a7, b6));
    column!(14; (a7, b7));
    t[15] = lo as u32;
    t
}

/// a² as 16 little-endian limbs: the products a_i·a_j (i < j) once, doubled, plus the squares.
#[inline(always)]
fn square_wide(a: &[u32; 8]) -> [u32; 16] {
    let mut t = [0u32; 16];
    for (i, ai) in a.iter().enumerate() {
        let ai = u64::from(*ai);
        let mut carry = 0u64;
        for (tj, aj) in t.iter_mut().skip(2 * i + 1).zip(a.iter().skip(i + 1)) {
            let v = u64::from(*tj) + ai * u64::from(*aj) + carry;
            *tj = v as u32;
            carry = v >> 32;
        }
        if let Some(top) = t.get_mut(i + 8) {
            *top = carry as u32;
        }
    }
    // Double the cross products (their sum is below 2⁵¹¹: no bit is lost) and add a_i² at 2i.
    let mut shifted_in = 0u32;
    for limb in t.iter_mut() {
        let next = *limb >> 31;
        *limb = (*limb << 1) | shifted_in;
        shifted_in = next;
    }
    let (pairs, _) = t.as_chunks_mut::<2>();
    let mut carry = 0u64;
    for ([lo, hi], ai) in pairs.iter_mut().zip(a) {
        let sq = u64::from(*ai) * u64::from(*ai);
        let v = u64::from(*lo) + (sq & 0xffff_ffff) + carry;
        *lo = v as u32;
        let v = u64::from(*hi) + (sq >> 32) + (v >> 32);
        *hi = v as u32;
        carry = v >> 32;
    }
    t
}

/// Signed per-limb sums to limbs: the low 32 bits of each and the signed carry out of the top.
#[inline(always)]
fn propagate(acc: [i64; 8]) -> ([u32; 8], i64) {
    let mut out = [0u32; 8];
    let mut carry = 0i64;
    for (o, a) in out.iter_mut().zip(acc) {
        let v = a + carry;
        *o = v as u32;
        // Arithmetic shift: v = carry·2³² + (v mod 2³²), also for negative v.
        carry = v >> 32;
    }
    (out, carry)
}

/// The 512-bit `c` modulo p, fully reduced.
#[inline(always)]
fn reduce(c: [u32; 16]) -> [u32; 8] {
    let [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15] = c.map(i64::from);
    // s1 + 2·s2 + 2·s3 + s4 + s5 − s6 − s7 − s8 − s9 of FIPS 186-4 D.2.3, limb by limb. Each sum
    // lies in (−5·2³², 8·2³²): no overflow in i64.
    let acc = [
        c0 + c8 + c9 - c11 - c12 - c13 - c14,
        c1 + c9 + c10 - c12 - c13 - c14 - c15,
        c2 + c10 + c11 - c13 - c14 - c15,
        c3 + 2 * (c11 + c12) + c13 - c15 - c8 - c9,
        c4 + 2 * (c12 + c13) + c14 - c9 - c10,
        c5 + 2 * (c13 + c14) + c15 - c10 - c11,
        c6 + 3 * c14 + 2 * c15 + c13 - c8 - c9,
        c7 + 3 * c15 + c8 - c10 - c11 - c12 - c13,
    ];
    let (mut limbs, mut top) = propagate(acc);
    // value = limbs + top·2²⁵⁶ with top in [−5, 7]; fold 2²⁵⁶ ≡ 2²²⁴ − 2¹⁹² − 2⁹⁶ + 1 (mod p).
    // The first fold leaves a carry of −1, 0 or 1 and the second none (the sum then lies in
    // [0, 2²⁵⁶)); the bound only keeps the loop visibly finite.
    for _ in 0..4 {
        if top == 0 {
            break;
        }
        let [l0, l1, l2, l3, l4, l5, l6, l7] = limbs.map(i64::from);
        (limbs, top) = propagate([l0 + top, l1, l2, l3 - top, l4, l5, l6 - top, l7 + top]);
    }
    // Below 2²⁵⁶ < 2p: at most one subtraction.
    if less_than(&limbs, &P) {
        limbs
    } else {
        sub_limbs(&limbs, &P).0
    }
}

/// a·b mod p for a, b < p. (Out of line, as `square`: one copy of the unrolled product instead of
/// one in every caller, 3.4 KB of `.wasm`, at the same speed in V8.)
#[inline(never)]
pub fn mul(a: &[u32; 8], b: &[u32; 8]) -> [u32; 8] {
    reduce(mul_wide(a, b))
}

/// a² mod p for a < p.
#[inline(never)]
pub fn square(a: &[u32; 8]) -> [u32; 8] {
    reduce(square_wide(a))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::super::field::{mont_mul, FieldParams};
    use super::*;

    /// P-256's base field in Montgomery form, as before this module: the reference.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    struct MontP256;
    impl FieldParams<8> for MontP256 {
        const M: [u32; 8] = P;
        const M0_INV: u32 = 1;
        const R2: [u32; 8] = [
            0x00000003, 0x00000000, 0xffffffff, 0xfffffffb, 0xfffffffe, 0xffffffff, 0xfffffffd,
            0x00000004,
        ];
    }

    /// a·b mod p through the Montgomery reference: a·R² into form gives a·R, and the Montgomery
    /// product of a·R with b is a·b.
    fn reference(a: &[u32; 8], b: &[u32; 8]) -> [u32; 8] {
        let a_mont = mont_mul::<MontP256, 8>(a, &MontP256::R2);
        mont_mul::<MontP256, 8>(&a_mont, b)
    }

    /// A deterministic stream of field elements with many extreme limbs.
    fn samples() -> Vec<[u32; 8]> {
        let p_minus = |k: u32| sub_limbs(&P, &[k, 0, 0, 0, 0, 0, 0, 0]).0;
        let mut out = vec![
            [0; 8],
            [1, 0, 0, 0, 0, 0, 0, 0],
            [2, 0, 0, 0, 0, 0, 0, 0],
            p_minus(1),
            p_minus(2),
            [0xffffffff, 0xffffffff, 0xffffffff, 0, 0, 0, 0, 0xffffffff],
            [0, 0, 0, 0xffffffff, 0xffffffff, 0xffffffff, 0, 0xfffffffe],
            [
                0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
                0x7fffffff,
            ],
            [0, 0, 0, 0, 0, 0, 0, 0x80000000],
            [0, 0, 0, 1, 0, 0, 0xffffffff, 0xfffffffe],
        ];
        let mut x = 0x9e3779b97f4a7c15u64;
        for _ in 0..400 {
            let mut limbs = [0u32; 8];
            for limb in limbs.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *limb = match x % 5 {
                    0 => 0xffffffff,
                    1 => 0,
                    _ => (x >> 16) as u32,
                };
            }
            if less_than(&limbs, &P) {
                out.push(limbs);
            }
        }
        out
    }

    #[test]
    fn product_and_square_agree_with_montgomery() {
        let values = samples();
        for a in &values {
            assert_eq!(square(a), reference(a, a), "{a:08x?}");
            for b in values.iter().step_by(7) {
                assert_eq!(mul(a, b), reference(a, b), "{a:08x?} {b:08x?}");
            }
        }
    }

    /// The 512-bit product against a plain schoolbook in u128, also for operands that are not
    /// field elements: all limbs 2³² − 1 give every column its largest sum and carry.
    #[test]
    fn wide_product_matches_schoolbook() {
        let reference = |a: &[u32; 8], b: &[u32; 8]| {
            let mut t = [0u128; 17];
            for (i, x) in a.iter().enumerate() {
                for (j, y) in b.iter().enumerate() {
                    t[i + j] += u128::from(*x) * u128::from(*y);
                }
            }
            let mut out = [0u32; 16];
            let mut carry = 0u128;
            for (o, v) in out.iter_mut().zip(t) {
                let v = v + carry;
                *o = v as u32;
                carry = v >> 32;
            }
            out
        };
        let mut values = samples();
        values.push([u32::MAX; 8]);
        values.push([u32::MAX, 0, u32::MAX, 0, u32::MAX, 0, u32::MAX, 0]);
        for a in &values {
            assert_eq!(mul_wide(a, a), reference(a, a), "{a:08x?}");
            assert_eq!(mul_wide(a, &[u32::MAX; 8]), reference(a, &[u32::MAX; 8]));
            for b in values.iter().step_by(13) {
                assert_eq!(mul_wide(a, b), reference(a, b), "{a:08x?} {b:08x?}");
            }
        }
    }

    #[test]
    fn results_are_fully_reduced() {
        let p_minus_1 = sub_limbs(&P, &[1, 0, 0, 0, 0, 0, 0, 0]).0;
        // (p−1)² = 1 and (p−1)·1 = p−1.
        assert_eq!(square(&p_minus_1), [1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(mul(&p_minus_1, &[1, 0, 0, 0, 0, 0, 0, 0]), p_minus_1);
        for a in samples() {
            assert!(less_than(&mul(&a, &p_minus_1), &P));
            assert!(less_than(&square(&a), &P));
        }
    }
}
