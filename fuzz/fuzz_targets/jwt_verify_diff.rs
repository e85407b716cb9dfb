//! Differential fuzzing of the JWT signature verifiers (`tollgate::jwt` keys, i.e. the filter's
//! own RSA, ECDSA, Ed25519 and HMAC code) against RustCrypto (`rsa`, `p256`, `p384`,
//! `ed25519-dalek`, `hmac`), natively.
//!
//! Input layout:
//!
//! ```text
//! byte 0   algorithm (modulo 12: HS256/384/512, RS256/384/512, PS256/384/512, ES256, ES384, EdDSA)
//! byte 1   mode: bit 0–1 = 0 sign with the reference then apply the edits, 1 raw signature from
//!          the input, 2 fuzzed EC point (x || y) checked at key load; bit 7 picks the second key
//! byte 2   number of edits (modulo 5) in mode 0, or the raw signature length in mode 1
//! 3 bytes  per edit: position (u16 LE, modulo the signature length) and an XOR byte
//! rest     the message (signing input)
//! ```
//!
//! Properties: both sides give the same verdict on every signature; an unedited reference
//! signature verifies; an EC point loads exactly when the reference accepts it.

#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use rand_chacha::rand_core::SeedableRng as _;
use rand_chacha::ChaCha20Rng;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _, Signer as _, Verifier as _};
use rsa::traits::PublicKeyParts as _;
use serde_json::json;
use tollgate::jwt::keys::{parse_jwk, Algorithm, VerificationKey};

const ALGORITHMS: [Algorithm; 12] = [
    Algorithm::Hs256,
    Algorithm::Hs384,
    Algorithm::Hs512,
    Algorithm::Rs256,
    Algorithm::Rs384,
    Algorithm::Rs512,
    Algorithm::Ps256,
    Algorithm::Ps384,
    Algorithm::Ps512,
    Algorithm::Es256,
    Algorithm::Es384,
    Algorithm::EdDsa,
];

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Reference private keys with the filter's prepared public keys.
struct Keys {
    hmac: Vec<(Vec<u8>, VerificationKey)>,
    rsa: Vec<(rsa::RsaPrivateKey, VerificationKey)>,
    p256: Vec<(p256::ecdsa::SigningKey, VerificationKey)>,
    p384: Vec<(p384::ecdsa::SigningKey, VerificationKey)>,
    ed: Vec<(ed25519_dalek::SigningKey, VerificationKey)>,
}

fn load(jwk: serde_json::Value) -> VerificationKey {
    match parse_jwk(&jwk) {
        Ok(k) => k,
        Err(e) => panic!("reference key refused: {e}"),
    }
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let hmac = [[0x42u8; 32].to_vec(), (0u8..64).collect()]
            .into_iter()
            .map(|k| {
                let v = load(json!({"kty": "oct", "k": b64(&k)}));
                (k, v)
            })
            .collect();
        // Fixed test keys (fuzz/keys/, made with `openssl genpkey` for this target only):
        // generating RSA keys here would take longer than libFuzzer's per-input timeout.
        let rsa = [
            include_str!("../keys/rsa2048.pem"),
            include_str!("../keys/rsa3072.pem"),
        ]
        .into_iter()
        .map(|pem| {
            let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem).expect("RSA test key");
            let v = load(json!({"kty": "RSA",
                "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be())}));
            (key, v)
        })
        .collect();
        let p256 = [1u8, 2]
            .into_iter()
            .map(|seed| {
                let key = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).expect("P-256 key");
                let point = key.verifying_key().to_encoded_point(false);
                let v = load(json!({"kty": "EC", "crv": "P-256",
                    "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y"))}));
                (key, v)
            })
            .collect();
        let p384 = [3u8, 4]
            .into_iter()
            .map(|seed| {
                let key = p384::ecdsa::SigningKey::from_slice(&[seed; 48]).expect("P-384 key");
                let point = key.verifying_key().to_encoded_point(false);
                let v = load(json!({"kty": "EC", "crv": "P-384",
                    "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y"))}));
                (key, v)
            })
            .collect();
        let ed = [5u8, 6]
            .into_iter()
            .map(|seed| {
                let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
                let v = load(json!({"kty": "OKP", "crv": "Ed25519",
                    "x": b64(key.verifying_key().as_bytes())}));
                (key, v)
            })
            .collect();
        Keys {
            hmac,
            rsa,
            p256,
            p384,
            ed,
        }
    })
}

/// The reference HMAC (`hmac` 0.12 over `sha2` 0.10) for algorithm index 0, 1 or 2.
fn hmac_tag(alg: usize, key: &[u8], message: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac as _};
    use sha2_010::{Sha256, Sha384, Sha512};
    match alg {
        0 => Hmac::<Sha256>::new_from_slice(key)
            .expect("any key length")
            .chain_update(message)
            .finalize()
            .into_bytes()
            .to_vec(),
        1 => Hmac::<Sha384>::new_from_slice(key)
            .expect("any key length")
            .chain_update(message)
            .finalize()
            .into_bytes()
            .to_vec(),
        _ => Hmac::<Sha512>::new_from_slice(key)
            .expect("any key length")
            .chain_update(message)
            .finalize()
            .into_bytes()
            .to_vec(),
    }
}

/// The reference's signature of `message` with key `which` for algorithm index `alg`.
fn reference_sign(alg: usize, which: usize, message: &[u8]) -> Vec<u8> {
    use sha2_010::{Sha256, Sha384, Sha512};
    let k = keys();
    let mut rng = ChaCha20Rng::seed_from_u64(message.len() as u64);
    match alg {
        0..=2 => hmac_tag(alg, &k.hmac[which].0, message),
        3..=5 => {
            let key = k.rsa[which].0.clone();
            match alg {
                3 => rsa::pkcs1v15::SigningKey::<Sha256>::new(key)
                    .sign(message)
                    .to_vec(),
                4 => rsa::pkcs1v15::SigningKey::<Sha384>::new(key)
                    .sign(message)
                    .to_vec(),
                _ => rsa::pkcs1v15::SigningKey::<Sha512>::new(key)
                    .sign(message)
                    .to_vec(),
            }
        }
        6..=8 => {
            let key = k.rsa[which].0.clone();
            match alg {
                6 => rsa::pss::BlindedSigningKey::<Sha256>::new(key)
                    .sign_with_rng(&mut rng, message)
                    .to_vec(),
                7 => rsa::pss::BlindedSigningKey::<Sha384>::new(key)
                    .sign_with_rng(&mut rng, message)
                    .to_vec(),
                _ => rsa::pss::BlindedSigningKey::<Sha512>::new(key)
                    .sign_with_rng(&mut rng, message)
                    .to_vec(),
            }
        }
        9 => {
            let sig: p256::ecdsa::Signature = k.p256[which].0.sign(message);
            sig.to_bytes().to_vec()
        }
        10 => {
            let sig: p384::ecdsa::Signature = k.p384[which].0.sign(message);
            sig.to_bytes().to_vec()
        }
        _ => {
            use ed25519_dalek::Signer as _;
            k.ed[which].0.sign(message).to_bytes().to_vec()
        }
    }
}

/// The reference's verdict.
fn reference_verify(alg: usize, which: usize, message: &[u8], sig: &[u8]) -> bool {
    use sha2_010::{Sha256, Sha384, Sha512};
    let k = keys();
    match alg {
        0..=2 => hmac_tag(alg, &k.hmac[which].0, message) == sig,
        3..=8 => {
            let public = k.rsa[which].0.to_public_key();
            if alg <= 5 {
                let Ok(s) = rsa::pkcs1v15::Signature::try_from(sig) else {
                    return false;
                };
                match alg {
                    3 => rsa::pkcs1v15::VerifyingKey::<Sha256>::new(public).verify(message, &s),
                    4 => rsa::pkcs1v15::VerifyingKey::<Sha384>::new(public).verify(message, &s),
                    _ => rsa::pkcs1v15::VerifyingKey::<Sha512>::new(public).verify(message, &s),
                }
                .is_ok()
            } else {
                let Ok(s) = rsa::pss::Signature::try_from(sig) else {
                    return false;
                };
                match alg {
                    6 => rsa::pss::VerifyingKey::<Sha256>::new(public).verify(message, &s),
                    7 => rsa::pss::VerifyingKey::<Sha384>::new(public).verify(message, &s),
                    _ => rsa::pss::VerifyingKey::<Sha512>::new(public).verify(message, &s),
                }
                .is_ok()
            }
        }
        9 => p256::ecdsa::Signature::from_slice(sig)
            .is_ok_and(|s| k.p256[which].0.verifying_key().verify(message, &s).is_ok()),
        10 => p384::ecdsa::Signature::from_slice(sig)
            .is_ok_and(|s| k.p384[which].0.verifying_key().verify(message, &s).is_ok()),
        _ => ed25519_dalek::Signature::from_slice(sig)
            .is_ok_and(|s| k.ed[which].0.verifying_key().verify(message, &s).is_ok()),
    }
}

fn ours(alg: usize, which: usize) -> &'static VerificationKey {
    let k = keys();
    match alg {
        0..=2 => &k.hmac[which].1,
        3..=8 => &k.rsa[which].1,
        9 => &k.p256[which].1,
        10 => &k.p384[which].1,
        _ => &k.ed[which].1,
    }
}

/// Mode 2: a fuzzed point loads as a key exactly when the reference accepts it.
fn point_check(alg: usize, data: &[u8]) {
    let (crv, len) = if alg % 2 == 0 {
        ("P-256", 32)
    } else {
        ("P-384", 48)
    };
    let Some(coords) = data.get(..2 * len) else {
        return;
    };
    let (x, y) = coords.split_at(len);
    let ours = parse_jwk(&json!({"kty": "EC", "crv": crv, "x": b64(x), "y": b64(y)})).is_ok();
    let mut sec1 = vec![0x04];
    sec1.extend_from_slice(coords);
    let reference = if len == 32 {
        p256::PublicKey::from_sec1_bytes(&sec1).is_ok()
    } else {
        p384::PublicKey::from_sec1_bytes(&sec1).is_ok()
    };
    assert_eq!(ours, reference, "{crv} point {}", b64(coords));
}

fuzz_target!(|data: &[u8]| {
    let [alg, mode, count, rest @ ..] = data else {
        return;
    };
    let alg = usize::from(*alg) % ALGORITHMS.len();
    let which = usize::from(mode >> 7);
    let algorithm = ALGORITHMS[alg];
    match mode & 0x03 {
        0 => {
            let edits = usize::from(*count) % 5;
            let Some((edit_bytes, message)) = rest.split_at_checked(3 * edits) else {
                return;
            };
            let mut sig = reference_sign(alg, which, message);
            let genuine = sig.clone();
            for e in edit_bytes.chunks_exact(3) {
                let pos = usize::from(u16::from_le_bytes([e[0], e[1]]));
                // Positions past the end truncate the signature instead.
                let len = sig.len();
                if pos >= len + 8 {
                    sig.truncate(pos % (len + 1));
                } else if let Some(b) = sig.get_mut(pos % len.max(1)) {
                    *b ^= e[2];
                }
            }
            let reference = reference_verify(alg, which, message, &sig);
            let got = ours(alg, which).verify_signature(algorithm, message, &sig);
            if sig == genuine {
                assert!(
                    got && reference,
                    "{algorithm:?}: a genuine signature was refused"
                );
            }
            assert_eq!(
                got,
                reference,
                "{algorithm:?} verdicts differ on {}",
                b64(&sig)
            );
        }
        1 => {
            let len = usize::from(*count).min(rest.len());
            let (sig, message) = rest.split_at(len);
            let reference = reference_verify(alg, which, message, sig);
            let got = ours(alg, which).verify_signature(algorithm, message, sig);
            assert_eq!(
                got,
                reference,
                "{algorithm:?} verdicts differ on {}",
                b64(sig)
            );
        }
        _ => point_check(alg, rest),
    }
});
