//! The NIST curves P-256 (secp256r1) and P-384 (secp384r1) for `ecdsa.rs`: field and group
//! constants (SEC 2 / FIPS 186-4 values as little-endian u32 limbs) and the per-curve parts of the
//! verifier (hash, generator table). `a = −3` on both curves; both primes end in the limb
//! `0xffffffff`, so −p⁻¹ mod 2³² = 1. The tests below check every constant against its definition.

use std::sync::OnceLock;

use sha2::{Digest as _, Sha256, Sha384};

use super::ecdsa::{Comb, Curve, G_ENTRIES};
use super::field::FieldParams;
use super::p256;

/// p.
const P256_P: [u32; 8] = p256::P;

/// n, the group order.
const P256_N: [u32; 8] = [
    0xfc632551, 0xf3b9cac2, 0xa7179e84, 0xbce6faad, 0xffffffff, 0xffffffff, 0x00000000, 0xffffffff,
];

/// 2^(512) mod n.
const P256_N_R2: [u32; 8] = [
    0xbe79eea2, 0x83244c95, 0x49bd6fa6, 0x4699799c, 0x2b6bec59, 0x2845b239, 0xf3d95620, 0x66e12d94,
];

/// b in y² = x³ − 3x + b.
const P256_B: [u32; 8] = [
    0x27d2604b, 0x3bce3c3e, 0xcc53b0f6, 0x651d06b0, 0x769886bc, 0xb3ebbd55, 0xaa3a93e7, 0x5ac635d8,
];

/// The generator's x.
const P256_GX: [u32; 8] = [
    0xd898c296, 0xf4a13945, 0x2deb33a0, 0x77037d81, 0x63a440f2, 0xf8bce6e5, 0xe12c4247, 0x6b17d1f2,
];

/// The generator's y.
const P256_GY: [u32; 8] = [
    0x37bf51f5, 0xcbb64068, 0x6b315ece, 0x2bce3357, 0x7c0f9e16, 0x8ee7eb4a, 0xfe1a7f9b, 0x4fe342e2,
];

/// P-256's base field and curve.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct P256;

/// P-256's scalar field (integers modulo n).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct P256Scalar;

/// Elements are plain values below p with the special-form reduction of `p256.rs` (faster in
/// wasm32 than the Montgomery product); `R2` = 1 makes `from_canonical` the identity.
impl FieldParams<8> for P256 {
    const M: [u32; 8] = P256_P;
    const M0_INV: u32 = 0x00000001;
    const R2: [u32; 8] = [1, 0, 0, 0, 0, 0, 0, 0];

    #[inline]
    fn mul(a: &[u32; 8], b: &[u32; 8]) -> [u32; 8] {
        p256::mul(a, b)
    }

    #[inline]
    fn square(a: &[u32; 8]) -> [u32; 8] {
        p256::square(a)
    }
}

impl FieldParams<8> for P256Scalar {
    const M: [u32; 8] = P256_N;
    const M0_INV: u32 = 0xee00bc4f;
    const R2: [u32; 8] = P256_N_R2;
}

impl Curve<8> for P256 {
    type Scalar = P256Scalar;
    const B: [u32; 8] = P256_B;
    const GX: [u32; 8] = P256_GX;
    const GY: [u32; 8] = P256_GY;

    fn digest(message: &[u8]) -> Vec<u8> {
        Sha256::digest(message).to_vec()
    }

    fn generator_table() -> Option<&'static Comb<Self, 8, G_ENTRIES>> {
        static TABLE: OnceLock<Option<Comb<P256, 8, G_ENTRIES>>> = OnceLock::new();
        TABLE.get_or_init(Comb::generator).as_ref()
    }
}

/// p.
const P384_P: [u32; 12] = [
    0xffffffff, 0x00000000, 0x00000000, 0xffffffff, 0xfffffffe, 0xffffffff, 0xffffffff, 0xffffffff,
    0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
];

/// 2^(768) mod p.
const P384_P_R2: [u32; 12] = [
    0x00000001, 0xfffffffe, 0x00000000, 0x00000002, 0x00000000, 0xfffffffe, 0x00000000, 0x00000002,
    0x00000001, 0x00000000, 0x00000000, 0x00000000,
];

/// n, the group order.
const P384_N: [u32; 12] = [
    0xccc52973, 0xecec196a, 0x48b0a77a, 0x581a0db2, 0xf4372ddf, 0xc7634d81, 0xffffffff, 0xffffffff,
    0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
];

/// 2^(768) mod n.
const P384_N_R2: [u32; 12] = [
    0x19b409a9, 0x2d319b24, 0xdf1aa419, 0xff3d81e5, 0xfcb82947, 0xbc3e483a, 0x4aab1cc5, 0xd40d4917,
    0x28266895, 0x3fb05b7a, 0x2b39bf21, 0x0c84ee01,
];

/// b in y² = x³ − 3x + b.
const P384_B: [u32; 12] = [
    0xd3ec2aef, 0x2a85c8ed, 0x8a2ed19d, 0xc656398d, 0x5013875a, 0x0314088f, 0xfe814112, 0x181d9c6e,
    0xe3f82d19, 0x988e056b, 0xe23ee7e4, 0xb3312fa7,
];

/// The generator's x.
const P384_GX: [u32; 12] = [
    0x72760ab7, 0x3a545e38, 0xbf55296c, 0x5502f25d, 0x82542a38, 0x59f741e0, 0x8ba79b98, 0x6e1d3b62,
    0xf320ad74, 0x8eb1c71e, 0xbe8b0537, 0xaa87ca22,
];

/// The generator's y.
const P384_GY: [u32; 12] = [
    0x90ea0e5f, 0x7a431d7c, 0x1d7e819d, 0x0a60b1ce, 0xb5f0b8c0, 0xe9da3113, 0x289a147c, 0xf8f41dbd,
    0x9292dc29, 0x5d9e98bf, 0x96262c6f, 0x3617de4a,
];

/// P-384's base field and curve.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct P384;

/// P-384's scalar field (integers modulo n).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct P384Scalar;

impl FieldParams<12> for P384 {
    const M: [u32; 12] = P384_P;
    const M0_INV: u32 = 0x00000001;
    const R2: [u32; 12] = P384_P_R2;
}

impl FieldParams<12> for P384Scalar {
    const M: [u32; 12] = P384_N;
    const M0_INV: u32 = 0xe88fdc45;
    const R2: [u32; 12] = P384_N_R2;
}

impl Curve<12> for P384 {
    type Scalar = P384Scalar;
    const B: [u32; 12] = P384_B;
    const GX: [u32; 12] = P384_GX;
    const GY: [u32; 12] = P384_GY;

    fn digest(message: &[u8]) -> Vec<u8> {
        Sha384::digest(message).to_vec()
    }

    fn generator_table() -> Option<&'static Comb<Self, 12, G_ENTRIES>> {
        static TABLE: OnceLock<Option<Comb<P384, 12, G_ENTRIES>>> = OnceLock::new();
        TABLE.get_or_init(Comb::generator).as_ref()
    }
}
