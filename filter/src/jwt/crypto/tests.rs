//! The verifiers against tokens signed by an independent implementation (jwt-simple, i.e.
//! RustCrypto `rsa`, `p256`, `p384`, and `ed25519-compact`): many keys, every algorithm, then
//! tampered signatures and messages. Wycheproof's edge cases are in `wycheproof_tests.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_simple::prelude::*;

use super::{EcPublicKey, HashAlg, HmacKey, RsaPublicKey, Verifier, P256, P384};

/// Little-endian limbs as big-endian bytes.
pub(crate) fn be_bytes<const L: usize>(limbs: &[u32; L]) -> Vec<u8> {
    limbs.iter().rev().flat_map(|l| l.to_be_bytes()).collect()
}

/// A token's signing input and decoded signature.
fn split(token: &str) -> (Vec<u8>, Vec<u8>) {
    let (input, sig) = token.rsplit_once('.').unwrap();
    (
        input.as_bytes().to_vec(),
        URL_SAFE_NO_PAD.decode(sig).unwrap(),
    )
}

/// Checks that `verifier` accepts the token and refuses a flipped signature bit and another
/// signing input.
fn accepts_only_the_genuine(verifier: &Verifier, token: &str, seed: usize) {
    let (input, sig) = split(token);
    assert!(verifier.verify(&input, &sig), "genuine signature refused");
    let mut bad = sig.clone();
    bad[seed % sig.len()] ^= 1 << (seed % 8);
    assert!(
        !verifier.verify(&input, &bad),
        "tampered signature accepted"
    );
    let mut other = input.clone();
    other[seed % input.len()] ^= 0x20;
    assert!(!verifier.verify(&other, &sig), "other message accepted");
    assert!(
        !verifier.verify(&input, &sig[..sig.len() - 1]),
        "short signature accepted"
    );
}

fn claims(i: usize) -> JWTClaims<NoCustomClaims> {
    Claims::create(Duration::from_secs(60)).with_subject(format!("user-{i}"))
}

fn coordinates(jwk: &str) -> (Vec<u8>, Vec<u8>) {
    let v: serde_json::Value = serde_json::from_str(jwk).unwrap();
    let get = |k: &str| URL_SAFE_NO_PAD.decode(v[k].as_str().unwrap()).unwrap();
    (get("x"), get("y"))
}

#[test]
fn es256_and_es384_agree_with_rustcrypto() {
    for i in 0..24 {
        let kp = ES256KeyPair::generate();
        let (x, y) = coordinates(&kp.public_key().to_jwk());
        let key = EcPublicKey::<P256, 8>::from_coordinates(&x, &y).unwrap();
        let token = kp.sign(claims(i)).unwrap();
        accepts_only_the_genuine(&Verifier::Es256(Box::new(key)), &token, i * 7 + 3);
    }
    for i in 0..6 {
        let kp = ES384KeyPair::generate();
        let (x, y) = coordinates(&kp.public_key().to_jwk());
        let key = EcPublicKey::<P384, 12>::from_coordinates(&x, &y).unwrap();
        let token = kp.sign(claims(i)).unwrap();
        accepts_only_the_genuine(&Verifier::Es384(Box::new(key)), &token, i * 11 + 5);
    }
}

#[test]
fn rsa_pkcs1_and_pss_agree_with_rustcrypto() {
    for (i, bits) in [2048usize, 3072].into_iter().enumerate() {
        let kp = RS256KeyPair::generate(bits).unwrap();
        let der = kp.to_der().unwrap();
        let c = kp.public_key().to_components();
        let key = Arc::new(RsaPublicKey::new(&c.n, &c.e).unwrap());
        let pkcs1 = |h| Verifier::RsaPkcs1(key.clone(), h);
        let pss = |h| Verifier::RsaPss(key.clone(), h);
        let cases = [
            (pkcs1(HashAlg::Sha256), kp.sign(claims(i)).unwrap()),
            (
                pkcs1(HashAlg::Sha384),
                RS384KeyPair::from_der(&der)
                    .unwrap()
                    .sign(claims(i))
                    .unwrap(),
            ),
            (
                pkcs1(HashAlg::Sha512),
                RS512KeyPair::from_der(&der)
                    .unwrap()
                    .sign(claims(i))
                    .unwrap(),
            ),
            (
                pss(HashAlg::Sha256),
                PS256KeyPair::from_der(&der)
                    .unwrap()
                    .sign(claims(i))
                    .unwrap(),
            ),
            (
                pss(HashAlg::Sha384),
                PS384KeyPair::from_der(&der)
                    .unwrap()
                    .sign(claims(i))
                    .unwrap(),
            ),
            (
                pss(HashAlg::Sha512),
                PS512KeyPair::from_der(&der)
                    .unwrap()
                    .sign(claims(i))
                    .unwrap(),
            ),
        ];
        for (j, (verifier, token)) in cases.iter().enumerate() {
            accepts_only_the_genuine(verifier, token, i * 31 + j * 5);
        }
        // PKCS#1 v1.5 and PSS signatures are not interchangeable, nor are the hashes.
        let (input, sig) = split(&cases[0].1);
        assert!(!pss(HashAlg::Sha256).verify(&input, &sig));
        assert!(!pkcs1(HashAlg::Sha384).verify(&input, &sig));
        let (input, sig) = split(&cases[3].1);
        assert!(!pkcs1(HashAlg::Sha256).verify(&input, &sig));
        assert!(!pss(HashAlg::Sha512).verify(&input, &sig));
    }
}

#[test]
fn eddsa_and_hmac_agree_with_the_reference() {
    for i in 0..8 {
        let kp = Ed25519KeyPair::generate();
        let key = ed25519_compact::PublicKey::from_slice(&kp.public_key().to_bytes()).unwrap();
        accepts_only_the_genuine(&Verifier::EdDsa(key), &kp.sign(claims(i)).unwrap(), i);
    }
    let secret = [0x5au8; 40];
    let cases = [
        (
            HashAlg::Sha256,
            HS256Key::from_bytes(&secret).authenticate(claims(1)),
        ),
        (
            HashAlg::Sha384,
            HS384Key::from_bytes(&secret).authenticate(claims(2)),
        ),
        (
            HashAlg::Sha512,
            HS512Key::from_bytes(&secret).authenticate(claims(3)),
        ),
    ];
    for (i, (hash, token)) in cases.into_iter().enumerate() {
        let verifier = Verifier::Hmac(HmacKey::new(hash, &secret).unwrap());
        accepts_only_the_genuine(&verifier, &token.unwrap(), i * 13 + 1);
        let other = Verifier::Hmac(HmacKey::new(hash, &[0x5bu8; 40]).unwrap());
        let (input, sig) = split(&cases_token(hash, &secret));
        assert!(!other.verify(&input, &sig));
    }
}

fn cases_token(hash: HashAlg, secret: &[u8]) -> String {
    match hash {
        HashAlg::Sha256 => HS256Key::from_bytes(secret).authenticate(claims(9)),
        HashAlg::Sha384 => HS384Key::from_bytes(secret).authenticate(claims(9)),
        HashAlg::Sha512 => HS512Key::from_bytes(secret).authenticate(claims(9)),
    }
    .unwrap()
}
