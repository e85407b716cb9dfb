//! Tests of JWK parsing: algorithm names, keys refused at load (weak RSA, short HMAC secrets,
//! curve and algorithm mismatches, private material), document errors and fingerprints.

use super::*;
use jwt_simple::prelude::*;
use serde_json::json;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn algorithm_names_round_trip_and_none_is_refused() {
    for a in RSA_FAMILY.iter().chain(HMAC_FAMILY.iter()) {
        assert_eq!(Algorithm::from_name(a.name()), Some(*a));
    }
    for n in ["none", "None", "NONE", "ES512", "hs256", ""] {
        assert_eq!(Algorithm::from_name(n), None, "{n}");
    }
}

#[test]
fn rsa_1024_refused_at_load() {
    let kp = RS256KeyPair::generate(2048).unwrap();
    let c = kp.public_key().to_components();
    // Build a 1024-bit modulus by truncating (value need not be a real key: size check first).
    let mut n = c.n.clone();
    n.truncate(128);
    let jwk = json!({"kty":"RSA","n": b64(&n),"e": b64(&c.e)});
    let err = parse_jwk(&jwk).unwrap_err();
    assert!(err.contains("1024 bits"), "{err}");
    // And a full document reports it as skipped while keeping other keys.
    let doc = json!({"keys":[jwk, {"kty":"RSA","kid":"good","n": b64(&c.n),"e": b64(&c.e)}]});
    let load = parse_jwks(&doc.to_string()).unwrap();
    assert_eq!(load.keys.keys().len(), 1);
    assert_eq!(load.skipped.len(), 1);
    assert_eq!(load.skipped[0].index, 0);
}

#[test]
fn rsa_key_without_alg_allows_rsa_family_only() {
    let kp = RS256KeyPair::generate(2048).unwrap();
    let c = kp.public_key().to_components();
    let key = parse_jwk(&json!({"kty":"RSA","n": b64(&c.n),"e": b64(&c.e)})).unwrap();
    assert_eq!(key.algorithms(), RSA_FAMILY.to_vec());
    let key = parse_jwk(&json!({"kty":"RSA","alg":"PS384","n": b64(&c.n),"e": b64(&c.e)})).unwrap();
    assert_eq!(key.algorithms(), vec![Algorithm::Ps384]);
    let err =
        parse_jwk(&json!({"kty":"RSA","alg":"HS256","n": b64(&c.n),"e": b64(&c.e)})).unwrap_err();
    assert!(err.contains("not an RSA algorithm"));
}

#[test]
fn short_hmac_secret_refused() {
    let err = parse_jwk(&json!({"kty":"oct","k": b64(&[7u8; 31])})).unwrap_err();
    assert!(err.contains("at least 32 bytes"), "{err}");
    let key = parse_jwk(&json!({"kty":"oct","k": b64(&[7u8; 32])})).unwrap();
    assert_eq!(key.algorithms(), HMAC_FAMILY.to_vec());
    let err = parse_jwk(&json!({"kty":"oct","alg":"RS256","k": b64(&[7u8; 32])})).unwrap_err();
    assert!(err.contains("not an HMAC algorithm"));
}

#[test]
fn ec_curve_and_alg_must_agree() {
    let kp = ES256KeyPair::generate();
    let exported: Value = serde_json::from_str(&kp.public_key().to_jwk()).unwrap();
    let x = URL_SAFE_NO_PAD
        .decode(exported["x"].as_str().unwrap())
        .unwrap();
    let y = URL_SAFE_NO_PAD
        .decode(exported["y"].as_str().unwrap())
        .unwrap();
    let (x, y) = (&x[..], &y[..]);
    let ok = parse_jwk(&json!({"kty":"EC","crv":"P-256","x": b64(x),"y": b64(y)})).unwrap();
    assert_eq!(ok.algorithms(), vec![Algorithm::Es256]);
    assert!(
        parse_jwk(&json!({"kty":"EC","crv":"P-256","alg":"ES384","x": b64(x),"y": b64(y)}))
            .is_err()
    );
    assert!(
        parse_jwk(&json!({"kty":"EC","crv":"P-521","x": b64(x),"y": b64(y)}))
            .unwrap_err()
            .contains("P-521")
    );
    // Off-curve point.
    let mut bad_y = y.to_vec();
    bad_y[31] ^= 1;
    assert!(parse_jwk(&json!({"kty":"EC","crv":"P-256","x": b64(x),"y": b64(&bad_y)})).is_err());
}

#[test]
fn private_material_use_and_key_ops_refused() {
    let kp = Ed25519KeyPair::generate();
    let x = kp.public_key().to_bytes();
    let base = json!({"kty":"OKP","crv":"Ed25519","x": b64(&x)});
    assert!(parse_jwk(&base).is_ok());
    let mut with_d = base.clone();
    with_d["d"] = json!(b64(&[1u8; 32]));
    assert!(parse_jwk(&with_d).unwrap_err().contains("private"));
    let mut enc = base.clone();
    enc["use"] = json!("enc");
    assert!(parse_jwk(&enc).is_err());
    let mut ops = base.clone();
    ops["key_ops"] = json!(["sign"]);
    assert!(parse_jwk(&ops).is_err());
    ops["key_ops"] = json!(["verify"]);
    assert!(parse_jwk(&ops).is_ok());
    let mut wrong_alg = base.clone();
    wrong_alg["alg"] = json!("ES256");
    assert!(parse_jwk(&wrong_alg).is_err());
}

#[test]
fn document_errors() {
    assert_eq!(parse_jwks("not json").unwrap_err(), JwksError::InvalidJson);
    assert_eq!(parse_jwks("{}").unwrap_err(), JwksError::NoKeysArray);
    assert_eq!(parse_jwks("[]").unwrap_err(), JwksError::NoKeysArray);
    let big = format!("{{\"keys\":[],\"pad\":\"{}\"}}", "a".repeat(MAX_JWKS_BYTES));
    assert_eq!(parse_jwks(&big).unwrap_err(), JwksError::TooLarge);
    let load = parse_jwks(r#"{"keys":[{"kty":"XYZ"},{"kty":5},7]}"#).unwrap();
    assert!(load.keys.is_empty());
    assert_eq!(load.skipped.len(), 3);
}

#[test]
fn fingerprint_differs_per_document() {
    let a = parse_jwks(r#"{"keys":[]}"#).unwrap().keys.fingerprint();
    let b = parse_jwks(r#"{"keys": []}"#).unwrap().keys.fingerprint();
    assert_ne!(a, b);
}
