//! End-to-end tests of the JWT module: published RFC example tokens, tokens minted with every
//! supported algorithm, every rejection reason, and `authenticate` decisions.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_simple::prelude::*;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::extract::RequestEdit;
use super::keys::{parse_jwks, parse_jwks_value, KeySet, Verifier};
use super::settings::{from_json_value, CompiledProvider, JwtSettings};
use super::verify::verify_signature;
use super::*;
use crate::refresh::Availability;

// ---------------------------------------------------------------- RFC examples

const RFC_EXP: u64 = 1_300_819_380;
const BEFORE_RFC_EXP: u64 = 1_300_819_000;

const A1_TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const A1_JWKS: &str = r#"{"keys":[{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]}"#;

const A2_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
const A2_JWKS: &str = r#"{"keys":[{"kty":"RSA","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ","e":"AQAB"}]}"#;

const A3_TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
const A3_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

const RFC8037_TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
const RFC8037_JWKS: &str =
    r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

/// A provider for `jwks` with the given extra provider fields.
fn provider_with(jwks: &str, extra: Value) -> (CompiledProvider, Arc<KeySet>) {
    let mut p = json!({"name": "p", "local_jwks": jwks});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    let settings = from_json_value(json!({"providers": [p]}), "jwt").unwrap();
    let provider = settings.providers[0].clone();
    let keys = match &provider.jwks {
        settings::JwksSource::Local(k) => Arc::clone(k),
        settings::JwksSource::Remote(_) => panic!("local expected"),
    };
    (provider, keys)
}

fn rfc_check(token: &str, jwks: &str) {
    let (p, keys) = provider_with(jwks, json!({"issuer": "joe"}));
    let v = verify(token, &p, &keys, BEFORE_RFC_EXP).unwrap();
    assert_eq!(v.issuer.as_deref(), Some("joe"));
    assert_eq!(v.exp, Some(RFC_EXP));
    assert_eq!(v.claims["http://example.com/is_root"], json!(true));
    // Still valid within the clock skew, expired after it.
    assert!(verify(token, &p, &keys, RFC_EXP + 60).is_ok());
    assert_eq!(
        verify(token, &p, &keys, RFC_EXP + 61).unwrap_err(),
        JwtError::Expired
    );
    // Tampered signature.
    let mut bad = token.to_string();
    let last = bad.pop().unwrap();
    bad.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(
        verify(&bad, &p, &keys, BEFORE_RFC_EXP).unwrap_err(),
        JwtError::BadSignature
    );
}

#[test]
fn rfc7515_a1_hs256() {
    rfc_check(A1_TOKEN, A1_JWKS);
}

#[test]
fn rfc7515_a2_rs256() {
    rfc_check(A2_TOKEN, A2_JWKS);
}

#[test]
fn rfc7515_a3_es256() {
    rfc_check(A3_TOKEN, A3_JWKS);
}

#[test]
fn rfc8037_a4_ed25519() {
    // The example payload is plain text, not a claims object: the signature verifies but the
    // token is not a JWT, so `verify` refuses it as malformed.
    let keys = parse_jwks(RFC8037_JWKS).unwrap().keys;
    let key = &keys.keys()[0];
    let verifier = key.verifier(super::keys::Algorithm::EdDsa).unwrap();
    assert!(matches!(verifier, Verifier::EdDsa(_)));
    let (input, sig) = RFC8037_TOKEN.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    // The signature itself verifies (the payload is not a claims object).
    assert!(verify_signature(verifier, input, &sig));
    // Tampered signature or input: refused.
    let mut tampered = sig.clone();
    tampered[7] ^= 0x04;
    assert!(!verify_signature(verifier, input, &tampered));
    assert!(!verify_signature(verifier, &input.replace('e', "f"), &sig));
    let (p, keys) = provider_with(RFC8037_JWKS, json!({}));
    assert_eq!(
        verify(RFC8037_TOKEN, &p, &keys, BEFORE_RFC_EXP).unwrap_err(),
        JwtError::Malformed
    );
}

// ---------------------------------------------------------------- minting helpers

const NOW: u64 = 1_700_000_000;
const HS_SECRET: &[u8; 48] = b"0123456789abcdef0123456789abcdef0123456789abcdef";

fn rsa_pair() -> &'static RS256KeyPair {
    static PAIR: OnceLock<RS256KeyPair> = OnceLock::new();
    PAIR.get_or_init(|| RS256KeyPair::generate(2048).unwrap())
}

fn rsa_components() -> (String, String) {
    let c = rsa_pair().public_key().to_components();
    (URL_SAFE_NO_PAD.encode(&c.n), URL_SAFE_NO_PAD.encode(&c.e))
}

/// Claims with full control over the registered ones (times in seconds).
#[derive(Clone)]
struct Spec {
    iat: Option<u64>,
    exp: Option<u64>,
    nbf: Option<u64>,
    iss: Option<&'static str>,
    aud: Option<&'static str>,
    custom: Map<String, Value>,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            iat: Some(NOW - 10),
            exp: Some(NOW + 300),
            nbf: None,
            iss: Some("https://idp.example"),
            aud: Some("tollgate"),
            custom: json!({"sub": "alice", "scope": "chat models"})
                .as_object()
                .unwrap()
                .clone(),
        }
    }
}

impl Spec {
    fn claims(&self) -> JWTClaims<Map<String, Value>> {
        let mut custom = self.custom.clone();
        let sub = custom.remove("sub");
        let mut c = Claims::with_custom_claims(custom, Duration::from_secs(1));
        c.issued_at = self.iat.map(UnixTimeStamp::from_secs);
        c.expires_at = self.exp.map(UnixTimeStamp::from_secs);
        c.invalid_before = self.nbf.map(UnixTimeStamp::from_secs);
        c.issuer = self.iss.map(str::to_string);
        c.audiences = self.aud.map(|a| Audiences::AsString(a.to_string()));
        c.subject = sub.and_then(|s| s.as_str().map(str::to_string));
        c
    }

    /// The payload JSON object, for hand-made tokens.
    fn payload(&self) -> Value {
        let mut m = self.custom.clone();
        if let Some(v) = self.iat {
            m.insert("iat".into(), v.into());
        }
        if let Some(v) = self.exp {
            m.insert("exp".into(), v.into());
        }
        if let Some(v) = self.nbf {
            m.insert("nbf".into(), v.into());
        }
        if let Some(v) = self.iss {
            m.insert("iss".into(), v.into());
        }
        if let Some(v) = self.aud {
            m.insert("aud".into(), v.into());
        }
        Value::Object(m)
    }
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// A hand-made HS256 token with any header and payload text.
fn craft_hs256(header: &str, payload: &str, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = hmac_sha256(secret, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn hs_jwks() -> String {
    json!({"keys":[{"kty":"oct","kid":"hs","k": URL_SAFE_NO_PAD.encode(HS_SECRET)}]}).to_string()
}

fn rsa_jwks(alg: Option<&str>) -> String {
    let (n, e) = rsa_components();
    let mut k = json!({"kty":"RSA","kid":"rsa","n": n,"e": e});
    if let Some(a) = alg {
        k["alg"] = json!(a);
    }
    json!({ "keys": [k] }).to_string()
}

fn strict_provider(jwks: &str) -> (CompiledProvider, Arc<KeySet>) {
    provider_with(
        jwks,
        json!({"issuer": "https://idp.example", "audiences": ["other", "tollgate"]}),
    )
}

/// A JWKS document from a jwt-simple public key's JWK export, with `kid`.
fn exported_jwks(jwk: &str, kid: &str) -> String {
    let mut v: Value = serde_json::from_str(jwk).unwrap();
    v["kid"] = json!(kid);
    json!({ "keys": [v] }).to_string()
}

// ---------------------------------------------------------------- every algorithm

#[test]
fn every_rsa_algorithm_verifies_with_one_key_without_alg() {
    let spec = Spec::default();
    let der = rsa_pair().to_der().unwrap();
    let tokens = vec![
        rsa_pair()
            .clone()
            .with_key_id("rsa")
            .sign(spec.claims())
            .unwrap(),
        RS384KeyPair::from_der(&der)
            .unwrap()
            .with_key_id("rsa")
            .sign(spec.claims())
            .unwrap(),
        RS512KeyPair::from_der(&der)
            .unwrap()
            .with_key_id("rsa")
            .sign(spec.claims())
            .unwrap(),
        PS256KeyPair::from_der(&der)
            .unwrap()
            .with_key_id("rsa")
            .sign(spec.claims())
            .unwrap(),
        PS384KeyPair::from_der(&der)
            .unwrap()
            .with_key_id("rsa")
            .sign(spec.claims())
            .unwrap(),
        PS512KeyPair::from_der(&der)
            .unwrap()
            .with_key_id("rsa")
            .sign(spec.claims())
            .unwrap(),
    ];
    let (p, keys) = strict_provider(&rsa_jwks(None));
    for t in &tokens {
        let v = verify(t, &p, &keys, NOW).unwrap();
        assert_eq!(v.subject.as_deref(), Some("alice"));
        assert_eq!(v.scopes, vec!["chat", "models"]);
    }
    // A JWK `alg` restricts the key to that algorithm.
    let (p, keys) = strict_provider(&rsa_jwks(Some("RS256")));
    assert!(verify(&tokens[0], &p, &keys, NOW).is_ok());
    assert_eq!(
        verify(&tokens[3], &p, &keys, NOW).unwrap_err(),
        JwtError::AlgNotAllowed
    );
}

#[test]
fn ecdsa_and_eddsa_verify() {
    let spec = Spec::default();
    let es256 = ES256KeyPair::generate().with_key_id("e1");
    let es384 = ES384KeyPair::generate().with_key_id("e2");
    let ed = Ed25519KeyPair::generate().with_key_id("e3");
    let cases = vec![
        (
            es256.sign(spec.claims()).unwrap(),
            exported_jwks(&es256.public_key().to_jwk(), "e1"),
        ),
        (
            es384.sign(spec.claims()).unwrap(),
            exported_jwks(&es384.public_key().to_jwk(), "e2"),
        ),
        (
            ed.sign(spec.claims()).unwrap(),
            exported_jwks(&ed.public_key().to_jwk(), "e3"),
        ),
    ];
    for (token, jwks) in &cases {
        let (p, keys) = strict_provider(jwks);
        let v = verify(token, &p, &keys, NOW).unwrap();
        assert_eq!(v.subject.as_deref(), Some("alice"));
    }
    // An ES256 token against the ES384 key: algorithm not allowed by the key.
    let (p, keys) = strict_provider(&cases[1].1);
    let es256_with_kid_e2 = ES256KeyPair::generate()
        .with_key_id("e2")
        .sign(spec.claims())
        .unwrap();
    assert_eq!(
        verify(&es256_with_kid_e2, &p, &keys, NOW).unwrap_err(),
        JwtError::AlgNotAllowed
    );
}

#[test]
fn every_hmac_algorithm_verifies() {
    let spec = Spec::default();
    let tokens = vec![
        HS256Key::from_bytes(HS_SECRET)
            .with_key_id("hs")
            .authenticate(spec.claims())
            .unwrap(),
        HS384Key::from_bytes(HS_SECRET)
            .with_key_id("hs")
            .authenticate(spec.claims())
            .unwrap(),
        HS512Key::from_bytes(HS_SECRET)
            .with_key_id("hs")
            .authenticate(spec.claims())
            .unwrap(),
    ];
    let (p, keys) = strict_provider(&hs_jwks());
    for t in &tokens {
        assert!(verify(t, &p, &keys, NOW).is_ok());
    }
    let other = HS256Key::from_bytes(b"another secret of at least thirty-two bytes!")
        .with_key_id("hs")
        .authenticate(spec.claims())
        .unwrap();
    assert_eq!(
        verify(&other, &p, &keys, NOW).unwrap_err(),
        JwtError::BadSignature
    );
}

// ---------------------------------------------------------------- rejections

fn hs_token(spec: &Spec) -> String {
    HS256Key::from_bytes(HS_SECRET)
        .with_key_id("hs")
        .authenticate(spec.claims())
        .unwrap()
}

fn hs_err(token: &str) -> JwtError {
    let (p, keys) = strict_provider(&hs_jwks());
    verify(token, &p, &keys, NOW).unwrap_err()
}

#[test]
fn alg_none_is_refused_in_any_case() {
    let payload = Spec::default().payload().to_string();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = format!(r#"{{"alg":"{alg}","kid":"hs"}}"#);
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(&header),
            URL_SAFE_NO_PAD.encode(&payload)
        );
        // Without a signature segment the token is malformed; with any signature the alg is
        // refused.
        assert_eq!(hs_err(&unsigned), JwtError::Malformed);
        assert_eq!(hs_err(&format!("{unsigned}AAAA")), JwtError::AlgNotAllowed);
        // Even HMAC-signed with the real secret.
        let signed = craft_hs256(&header, &payload, HS_SECRET);
        assert_eq!(hs_err(&signed), JwtError::AlgNotAllowed);
    }
    let unknown = craft_hs256(r#"{"alg":"ES512"}"#, &payload, HS_SECRET);
    assert_eq!(hs_err(&unknown), JwtError::AlgNotAllowed);
}

#[test]
fn hs_rs_confusion_is_refused() {
    let spec = Spec::default();
    let (p, keys) = strict_provider(&rsa_jwks(None));
    let pk = rsa_pair().public_key();
    let secrets = [
        pk.to_pem().unwrap().into_bytes(),
        pk.to_der().unwrap(),
        rsa_jwks(None).into_bytes(),
    ];
    for secret in secrets {
        let token = HS256Key::from_bytes(&secret)
            .with_key_id("rsa")
            .authenticate(spec.claims())
            .unwrap();
        assert_eq!(
            verify(&token, &p, &keys, NOW).unwrap_err(),
            JwtError::AlgNotAllowed
        );
        // Without kid too.
        let token = HS256Key::from_bytes(&secret)
            .authenticate(spec.claims())
            .unwrap();
        assert_eq!(
            verify(&token, &p, &keys, NOW).unwrap_err(),
            JwtError::AlgNotAllowed
        );
    }
}

#[test]
fn time_rejections() {
    let expired = Spec {
        iat: Some(NOW - 1000),
        exp: Some(NOW - 61),
        ..Spec::default()
    };
    assert_eq!(hs_err(&hs_token(&expired)), JwtError::Expired);
    let within_skew = Spec {
        exp: Some(NOW - 60),
        ..expired.clone()
    };
    let (p, keys) = strict_provider(&hs_jwks());
    assert!(verify(&hs_token(&within_skew), &p, &keys, NOW).is_ok());
    let nbf = Spec {
        nbf: Some(NOW + 61),
        ..Spec::default()
    };
    assert_eq!(hs_err(&hs_token(&nbf)), JwtError::NotYetValid);
    let nbf_ok = Spec {
        nbf: Some(NOW + 60),
        ..Spec::default()
    };
    assert!(verify(&hs_token(&nbf_ok), &p, &keys, NOW).is_ok());
    let future_iat = Spec {
        iat: Some(NOW + 120),
        ..Spec::default()
    };
    assert_eq!(hs_err(&hs_token(&future_iat)), JwtError::IssuedInFuture);
    let no_exp = Spec {
        exp: None,
        ..Spec::default()
    };
    assert_eq!(hs_err(&hs_token(&no_exp)), JwtError::MissingExp);
    let (lenient, lkeys) = provider_with(&hs_jwks(), json!({"require_exp": false}));
    assert!(verify(&hs_token(&no_exp), &lenient, &lkeys, NOW).is_ok());
}

#[test]
fn own_clock_is_used_not_the_system_clock() {
    // A token valid in 2001 verifies with a 2001 `now`, whatever the system clock says.
    let old = Spec {
        iat: Some(1_000_000_000),
        exp: Some(1_000_000_300),
        ..Spec::default()
    };
    let (p, keys) = strict_provider(&hs_jwks());
    assert!(verify(&hs_token(&old), &p, &keys, 1_000_000_100).is_ok());
    assert_eq!(
        verify(&hs_token(&Spec::default()), &p, &keys, 1_000_000_100).unwrap_err(),
        JwtError::IssuedInFuture
    );
}

#[test]
fn lifetime_limit() {
    let (p, keys) = provider_with(&hs_jwks(), json!({"max_lifetime_seconds": 3600}));
    let ok = Spec {
        iat: Some(NOW),
        exp: Some(NOW + 3600),
        ..Spec::default()
    };
    assert!(verify(&hs_token(&ok), &p, &keys, NOW).is_ok());
    let long = Spec {
        iat: Some(NOW),
        exp: Some(NOW + 3601),
        ..Spec::default()
    };
    assert_eq!(
        verify(&hs_token(&long), &p, &keys, NOW).unwrap_err(),
        JwtError::LifetimeTooLong
    );
    // Old iat but long total lifetime.
    let total = Spec {
        iat: Some(NOW - 86_400),
        exp: Some(NOW + 10),
        ..Spec::default()
    };
    assert_eq!(
        verify(&hs_token(&total), &p, &keys, NOW).unwrap_err(),
        JwtError::LifetimeTooLong
    );
}

#[test]
fn issuer_and_audience() {
    let wrong_iss = Spec {
        iss: Some("https://evil.example"),
        ..Spec::default()
    };
    assert_eq!(hs_err(&hs_token(&wrong_iss)), JwtError::WrongIssuer);
    let no_iss = Spec {
        iss: None,
        ..Spec::default()
    };
    assert_eq!(hs_err(&hs_token(&no_iss)), JwtError::WrongIssuer);
    let wrong_aud = Spec {
        aud: Some("someone-else"),
        ..Spec::default()
    };
    assert_eq!(hs_err(&hs_token(&wrong_aud)), JwtError::WrongAudience);
    let no_aud = Spec {
        aud: None,
        ..Spec::default()
    };
    assert_eq!(hs_err(&hs_token(&no_aud)), JwtError::WrongAudience);
    // Array aud: any match passes.
    let mut payload = Spec::default().payload();
    payload["aud"] = json!(["x", "tollgate"]);
    let t = craft_hs256(
        r#"{"alg":"HS256","kid":"hs"}"#,
        &payload.to_string(),
        HS_SECRET,
    );
    let (p, keys) = strict_provider(&hs_jwks());
    assert!(verify(&t, &p, &keys, NOW).is_ok());
    payload["aud"] = json!(["x", "y"]);
    let t = craft_hs256(
        r#"{"alg":"HS256","kid":"hs"}"#,
        &payload.to_string(),
        HS_SECRET,
    );
    assert_eq!(
        verify(&t, &p, &keys, NOW).unwrap_err(),
        JwtError::WrongAudience
    );
    // Wrong audience is a 401 invalid_token.
    assert_eq!(JwtError::WrongAudience.status(), 401);
}

#[test]
fn signature_tampering() {
    let token = hs_token(&Spec::default());
    let (head, sig) = token.rsplit_once('.').unwrap();
    // Flipped character.
    let mut flipped: Vec<char> = sig.chars().collect();
    flipped[3] = if flipped[3] == 'a' { 'b' } else { 'a' };
    let flipped: String = flipped.into_iter().collect();
    assert_eq!(hs_err(&format!("{head}.{flipped}")), JwtError::BadSignature);
    // Truncated.
    assert_eq!(
        hs_err(&format!("{head}.{}", &sig[..20])),
        JwtError::BadSignature
    );
    // Stripped.
    assert_eq!(hs_err(&format!("{head}.")), JwtError::Malformed);
    assert_eq!(hs_err(head), JwtError::Malformed);
    // Payload swapped under the same signature.
    let (h, _) = head.split_once('.').unwrap();
    let mut other = Spec::default().payload();
    other["sub"] = json!("mallory");
    let forged = format!("{h}.{}.{sig}", URL_SAFE_NO_PAD.encode(other.to_string()));
    assert_eq!(hs_err(&forged), JwtError::BadSignature);
    // RSA: truncated signature.
    let rs = rsa_pair()
        .clone()
        .with_key_id("rsa")
        .sign(Spec::default().claims())
        .unwrap();
    let (p, keys) = strict_provider(&rsa_jwks(None));
    assert_eq!(
        verify(&rs[..rs.len() - 10], &p, &keys, NOW).unwrap_err(),
        JwtError::BadSignature
    );
}

#[test]
fn malformed_tokens() {
    let good = hs_token(&Spec::default());
    let parts: Vec<&str> = good.split('.').collect();
    let cases = vec![
        "".to_string(),
        "abc".to_string(),
        "a.b".to_string(),
        format!("{good}.extra"),
        format!(".{good}"),
        format!("{}.{}!.{}", parts[0], parts[1], parts[2]),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", "e30", parts[1], parts[2]), // header {} (no alg)
        craft_hs256(
            "not json",
            &Spec::default().payload().to_string(),
            HS_SECRET,
        ),
        craft_hs256(r#"{"alg":"HS256"}"#, "not json", HS_SECRET),
        craft_hs256(r#"{"alg":"HS256"}"#, "[1,2]", HS_SECRET),
        craft_hs256(r#"{"alg":5}"#, "{}", HS_SECRET),
        craft_hs256(r#"{"alg":"HS256","kid":5}"#, "{}", HS_SECRET),
    ];
    for c in cases {
        assert_eq!(hs_err(&c), JwtError::Malformed, "{c}");
    }
    // Claims of the wrong type are malformed, even with a good signature.
    for (claim, value) in [
        ("exp", json!("1700000300")),
        ("exp", json!(-5)),
        ("nbf", json!(true)),
        ("iat", json!([1])),
        ("iss", json!(5)),
        ("sub", json!({"a": 1})),
        ("aud", json!(5)),
        ("aud", json!(["ok", 5])),
    ] {
        let mut payload = Spec::default().payload();
        payload[claim] = value;
        let t = craft_hs256(
            r#"{"alg":"HS256","kid":"hs"}"#,
            &payload.to_string(),
            HS_SECRET,
        );
        assert_eq!(hs_err(&t), JwtError::Malformed, "{claim}");
    }
    // A fractional exp is read as its integer part (as Envoy).
    let mut payload = Spec::default().payload();
    payload["exp"] = json!((NOW + 300) as f64 + 0.75);
    let t = craft_hs256(
        r#"{"alg":"HS256","kid":"hs"}"#,
        &payload.to_string(),
        HS_SECRET,
    );
    let (p, keys) = strict_provider(&hs_jwks());
    assert_eq!(verify(&t, &p, &keys, NOW).unwrap().exp, Some(NOW + 300));
}

#[test]
fn unknown_kid_and_kidless_selection() {
    let spec = Spec::default();
    let t = HS256Key::from_bytes(HS_SECRET)
        .with_key_id("nope")
        .authenticate(spec.claims())
        .unwrap();
    assert_eq!(hs_err(&t), JwtError::UnknownKid);
    // No kid in the token: every compatible key is tried.
    let second = b"a second secret that is long enough!!";
    let jwks = json!({"keys":[
        {"kty":"oct","kid":"one","k": URL_SAFE_NO_PAD.encode(HS_SECRET)},
        {"kty":"oct","kid":"two","k": URL_SAFE_NO_PAD.encode(second)},
    ]})
    .to_string();
    let (p, keys) = strict_provider(&jwks);
    let t = HS256Key::from_bytes(second)
        .authenticate(spec.claims())
        .unwrap();
    assert!(verify(&t, &p, &keys, NOW).is_ok());
    // A key without kid matches a token with any kid (Envoy behaviour).
    let jwks = json!({"keys":[{"kty":"oct","k": URL_SAFE_NO_PAD.encode(HS_SECRET)}]}).to_string();
    let (p, keys) = strict_provider(&jwks);
    let t = HS256Key::from_bytes(HS_SECRET)
        .with_key_id("whatever")
        .authenticate(spec.claims())
        .unwrap();
    assert!(verify(&t, &p, &keys, NOW).is_ok());
    // No keys at all.
    let empty = parse_jwks_value(&json!({"keys": []}), 0).unwrap().keys;
    let (p, _) = strict_provider(&hs_jwks());
    assert_eq!(
        verify(&t, &p, &empty, NOW).unwrap_err(),
        JwtError::NoKeysYet
    );
}

#[test]
fn crit_header_and_typ() {
    let payload = Spec::default().payload().to_string();
    let t = craft_hs256(
        r#"{"alg":"HS256","kid":"hs","crit":["exp"],"exp":1}"#,
        &payload,
        HS_SECRET,
    );
    assert_eq!(hs_err(&t), JwtError::CritHeader);
    let t = craft_hs256(
        r#"{"alg":"HS256","kid":"hs","crit":[]}"#,
        &payload,
        HS_SECRET,
    );
    assert_eq!(hs_err(&t), JwtError::CritHeader);
    // typ is not checked (as Envoy): at+jwt and JOSE both pass.
    let (p, keys) = strict_provider(&hs_jwks());
    for typ in ["JWT", "at+jwt", "JOSE"] {
        let t = craft_hs256(
            &format!(r#"{{"alg":"HS256","kid":"hs","typ":"{typ}"}}"#),
            &payload,
            HS_SECRET,
        );
        assert!(verify(&t, &p, &keys, NOW).is_ok(), "{typ}");
    }
}

#[test]
fn oversized_token_refused_before_decoding() {
    let mut spec = Spec::default();
    spec.custom.insert("pad".into(), json!("x".repeat(9000)));
    assert_eq!(hs_err(&hs_token(&spec)), JwtError::TooLarge);
    // Garbage that is too large is refused as too large, not malformed.
    assert_eq!(hs_err(&"!".repeat(9000)), JwtError::TooLarge);
    let (p, keys) = provider_with(&hs_jwks(), json!({"max_token_bytes": 65536}));
    assert!(verify(&hs_token(&spec), &p, &keys, NOW).is_ok());
}

#[test]
fn claim_headers_and_scopes() {
    let (p, keys) = provider_with(
        &hs_jwks(),
        json!({
            "claims_to_headers": [
                {"claim": "sub", "header": "x-user"},
                {"claim": "org.id", "header": "x-org"},
                {"claim": "org.tier", "header": "x-tier"},
                {"claim": "admin", "header": "x-admin"},
                {"claim": "groups", "header": "x-groups"},
                {"claim": "evil", "header": "x-evil"},
                {"claim": "missing", "header": "x-missing"}
            ],
            "scope_claim": "realm.roles"
        }),
    );
    let mut spec = Spec::default();
    spec.custom
        .insert("org".into(), json!({"id": "acme", "tier": 3}));
    spec.custom.insert("admin".into(), json!(true));
    spec.custom.insert("groups".into(), json!(["a", "b"]));
    spec.custom
        .insert("evil".into(), json!("a\r\nx-injected: 1"));
    spec.custom
        .insert("realm".into(), json!({"roles": ["chat", "admin"]}));
    let v = verify(&hs_token(&spec), &p, &keys, NOW).unwrap();
    assert_eq!(
        v.claim_headers(),
        vec![
            ("x-user".to_string(), "alice".to_string()),
            ("x-org".to_string(), "acme".to_string()),
            ("x-tier".to_string(), "3".to_string()),
            ("x-admin".to_string(), "true".to_string()),
        ]
    );
    assert_eq!(v.scopes, vec!["chat", "admin"]);
    assert!(v.has_scopes(&["admin".to_string()]));
    assert_eq!(
        v.check_scopes(&["root".to_string()]),
        Err(JwtError::InsufficientScope {
            required: vec!["root".to_string()]
        })
    );
}

// ---------------------------------------------------------------- authenticate

fn settings(extra_rules: Value) -> JwtSettings {
    from_json_value(
        json!({
            "providers": [
                {
                    "name": "corp",
                    "issuer": "https://idp.example",
                    "audiences": ["tollgate"],
                    "local_jwks": hs_jwks(),
                    "claims_to_headers": [{"claim": "sub", "header": "x-user"}]
                },
                {
                    "name": "partner",
                    "local_jwks": rsa_jwks(None),
                    "token_locations": [{"query": "access_token"}, {"cookie": "session"}],
                    "forward": true
                },
                {
                    "name": "remote",
                    "remote_jwks": {"cluster": "idp", "uri": "https://idp.example/jwks"}
                }
            ],
            "bypass": [{"path_exact": "/healthz"}],
            "rules": extra_rules,
            "realm": "api"
        }),
        "jwt",
    )
    .unwrap()
}

fn default_rules() -> Value {
    json!([
        {"path_prefix": "/v1/admin", "requires": {"provider": "corp"}, "required_scopes": ["admin"]},
        {"path_prefix": "/v1/", "requires": {"any": ["corp", "partner"]}},
        {"path_prefix": "/public/", "requires": {"optional": "corp"}},
        {"path_prefix": "/remote/", "requires": {"provider": "remote"}},
        {"path_prefix": "/open/"}
    ])
}

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn run(
    s: &JwtSettings,
    cache: &mut VerifiedTokenCache,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    remote: Availability<KeySet>,
) -> AuthOutcome {
    let req = RequestInfo {
        method,
        path,
        headers,
    };
    authenticate(
        s,
        &req,
        |i| local_keys(&s.providers[i]).unwrap_or_else(|| remote.clone()),
        cache,
        NOW,
    )
}

fn denial(o: AuthOutcome) -> Denial {
    match o {
        AuthOutcome::Deny(d) => d,
        other => panic!("expected deny, got {other:?}"),
    }
}

#[test]
fn authenticate_allows_and_edits_request() {
    let s = settings(default_rules());
    let mut cache = VerifiedTokenCache::new(s.cache_size);
    let token = hs_token(&Spec::default());
    let headers = h(&[
        ("authorization", &format!("Bearer {token}")),
        ("x-user", "spoofed"),
    ]);
    let out = run(
        &s,
        &mut cache,
        "POST",
        "/v1/chat/completions",
        &headers,
        Availability::Unavailable,
    );
    match out {
        AuthOutcome::Allow {
            identity,
            edits,
            bypass,
            cache_hit,
        } => {
            assert_eq!(identity.unwrap().provider, "corp");
            assert_eq!(bypass, None);
            assert!(!cache_hit);
            assert_eq!(
                edits,
                vec![
                    RequestEdit::RemoveHeader("x-user".into()),
                    RequestEdit::SetHeader("x-user".into(), "alice".into()),
                    RequestEdit::RemoveHeader("authorization".into()),
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    // Second time: from the cache.
    let out = run(
        &s,
        &mut cache,
        "POST",
        "/v1/chat/completions",
        &headers,
        Availability::Unavailable,
    );
    assert!(matches!(
        out,
        AuthOutcome::Allow {
            cache_hit: true,
            ..
        }
    ));
    assert_eq!(cache.stats().hits, 1);
}

#[test]
fn authenticate_denials() {
    let s = settings(default_rules());
    let mut cache = VerifiedTokenCache::new(10);
    let none = h(&[]);
    // Missing token: 401 without error attribute.
    let d = denial(run(
        &s,
        &mut cache,
        "GET",
        "/v1/models",
        &none,
        Availability::Unavailable,
    ));
    assert_eq!(d.status, 401);
    assert_eq!(d.www_authenticate.as_deref(), Some("Bearer realm=\"api\""));
    // Expired token: invalid_token.
    let expired = hs_token(&Spec {
        exp: Some(NOW - 100),
        iat: Some(NOW - 200),
        ..Spec::default()
    });
    let d = denial(run(
        &s,
        &mut cache,
        "GET",
        "/v1/models",
        &h(&[("authorization", &format!("Bearer {expired}"))]),
        Availability::Unavailable,
    ));
    assert_eq!(d.reason, "expired");
    assert!(d
        .www_authenticate
        .unwrap()
        .contains("error=\"invalid_token\""));
    assert!(!d.body.contains(&expired));
    // Valid token without the admin scope: 403 insufficient_scope.
    let token = hs_token(&Spec::default());
    let auth = h(&[("authorization", &format!("Bearer {token}"))]);
    let d = denial(run(
        &s,
        &mut cache,
        "GET",
        "/v1/admin/users",
        &auth,
        Availability::Unavailable,
    ));
    assert_eq!(d.status, 403);
    assert_eq!(
        d.www_authenticate.as_deref(),
        Some("Bearer realm=\"api\", error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"admin\"")
    );
    // Unmatched path: 403 without challenge; ambiguous path: 400.
    let d = denial(run(
        &s,
        &mut cache,
        "GET",
        "/elsewhere",
        &auth,
        Availability::Unavailable,
    ));
    assert_eq!((d.status, d.reason), (403, "unmatched_path"));
    let d = denial(run(
        &s,
        &mut cache,
        "GET",
        "/v1/%2f",
        &auth,
        Availability::Unavailable,
    ));
    assert_eq!((d.status, d.reason), (400, "ambiguous_path"));
    // A provider API key sent as a bearer token is malformed.
    let d = denial(run(
        &s,
        &mut cache,
        "GET",
        "/v1/models",
        &h(&[("authorization", "Bearer sk-proj-abcdef")]),
        Availability::Unavailable,
    ));
    assert_eq!(d.reason, "malformed");
    // Two different tokens under `any`: refused.
    let rs = rsa_pair()
        .clone()
        .with_key_id("rsa")
        .sign(Spec::default().claims())
        .unwrap();
    let d = denial(run(
        &s,
        &mut cache,
        "GET",
        &format!("/v1/models?access_token={rs}"),
        &auth,
        Availability::Unavailable,
    ));
    assert_eq!(d.reason, "multiple_tokens");
    // Unknown kid names the provider for a refetch.
    let t = HS256Key::from_bytes(HS_SECRET)
        .with_key_id("rotated")
        .authenticate(Spec::default().claims())
        .unwrap();
    let d = denial(run(
        &s,
        &mut cache,
        "GET",
        "/v1/admin/x",
        &h(&[("authorization", &format!("Bearer {t}"))]),
        Availability::Unavailable,
    ));
    assert_eq!((d.reason, d.unknown_kid_provider), ("unknown_kid", Some(0)));
}

#[test]
fn authenticate_any_optional_bypass_and_remote_states() {
    let s = settings(default_rules());
    let mut cache = VerifiedTokenCache::new(10);
    let none = h(&[]);
    // `any`: the partner token in a query parameter; forward: true keeps it.
    let rs = rsa_pair()
        .clone()
        .with_key_id("rsa")
        .sign(Spec::default().claims())
        .unwrap();
    let out = run(
        &s,
        &mut cache,
        "GET",
        &format!("/v1/models?access_token={rs}"),
        &none,
        Availability::Unavailable,
    );
    match out {
        AuthOutcome::Allow {
            identity, edits, ..
        } => {
            assert_eq!(identity.unwrap().provider, "partner");
            assert_eq!(edits, vec![RequestEdit::RemoveHeader("x-user".into())]);
        }
        other => panic!("{other:?}"),
    }
    // Optional: missing passes, invalid fails.
    assert!(matches!(
        run(
            &s,
            &mut cache,
            "GET",
            "/public/x",
            &none,
            Availability::Unavailable
        ),
        AuthOutcome::Allow {
            identity: None,
            bypass: None,
            ..
        }
    ));
    let bad = h(&[("authorization", "Bearer a.b.c")]);
    assert_eq!(
        denial(run(
            &s,
            &mut cache,
            "GET",
            "/public/x",
            &bad,
            Availability::Unavailable
        ))
        .reason,
        "malformed"
    );
    // Bypass paths and rules without requirement still drop spoofed claim headers.
    for path in ["/healthz", "/open/x"] {
        match run(
            &s,
            &mut cache,
            "GET",
            path,
            &none,
            Availability::Unavailable,
        ) {
            AuthOutcome::Allow { bypass, edits, .. } => {
                assert!(bypass.is_some());
                assert_eq!(edits, vec![RequestEdit::RemoveHeader("x-user".into())]);
            }
            other => panic!("{other:?}"),
        }
    }
    // CORS preflight.
    let preflight = h(&[
        ("origin", "https://app"),
        ("access-control-request-method", "POST"),
    ]);
    assert!(matches!(
        run(
            &s,
            &mut cache,
            "OPTIONS",
            "/v1/chat",
            &preflight,
            Availability::Unavailable
        ),
        AuthOutcome::Allow {
            bypass: Some(BypassReason::CorsPreflight),
            ..
        }
    ));
    // Remote provider: pending keys → wait; unavailable → no_keys_yet.
    let token = hs_token(&Spec::default());
    let auth = h(&[("authorization", &format!("Bearer {token}"))]);
    assert_eq!(
        run(
            &s,
            &mut cache,
            "GET",
            "/remote/x",
            &auth,
            Availability::Pending { wait_until_ms: 9 }
        ),
        AuthOutcome::Wait {
            provider: 2,
            until_ms: 9
        }
    );
    assert_eq!(
        denial(run(
            &s,
            &mut cache,
            "GET",
            "/remote/x",
            &auth,
            Availability::Unavailable
        ))
        .reason,
        "no_keys_yet"
    );
    let ready = Availability::Ready(Arc::new(parse_jwks(&hs_jwks()).unwrap().keys));
    assert!(matches!(
        run(&s, &mut cache, "GET", "/remote/x", &auth, ready),
        AuthOutcome::Allow { .. }
    ));
}

#[test]
fn cached_result_respects_expiry_and_key_rotation() {
    let (p, keys) = strict_provider(&hs_jwks());
    let mut cache = VerifiedTokenCache::new(10);
    let t = hs_token(&Spec {
        exp: Some(NOW + 100),
        ..Spec::default()
    });
    let (_, hit) = verify_with_cache(0, &p, &t, &keys, &mut cache, NOW).unwrap();
    assert!(!hit);
    let (_, hit) = verify_with_cache(0, &p, &t, &keys, &mut cache, NOW + 50).unwrap();
    assert!(hit);
    // At exp the cache misses; verification then still passes within the skew.
    let (_, hit) = verify_with_cache(0, &p, &t, &keys, &mut cache, NOW + 100).unwrap();
    assert!(!hit);
    assert_eq!(
        verify_with_cache(0, &p, &t, &keys, &mut cache, NOW + 161).unwrap_err(),
        JwtError::Expired
    );
    // Other key set (rotation): miss, and the old token no longer verifies.
    let rotated = json!({"keys":[{"kty":"oct","kid":"hs","k": URL_SAFE_NO_PAD.encode([9u8; 32])}]});
    let rotated = parse_jwks(&rotated.to_string()).unwrap().keys;
    assert_eq!(
        verify_with_cache(0, &p, &t, &rotated, &mut cache, NOW + 10).unwrap_err(),
        JwtError::BadSignature
    );
}
