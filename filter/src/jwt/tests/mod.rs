//! End-to-end tests of the JWT module, one file per concern: published RFC example tokens
//! ([`rfc`]), tokens minted with every supported algorithm ([`algorithms`]), every rejection
//! reason ([`rejections`]) and `authenticate` decisions ([`authenticate`]). This file holds the
//! helpers they share: a provider for a JWKS and the token minting helpers.

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

mod algorithms;
mod authenticate;
mod rejections;
mod rfc;

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

/// An HS256 token for `spec`, signed with [`HS_SECRET`] under key id `hs`.
fn hs_token(spec: &Spec) -> String {
    HS256Key::from_bytes(HS_SECRET)
        .with_key_id("hs")
        .authenticate(spec.claims())
        .unwrap()
}
