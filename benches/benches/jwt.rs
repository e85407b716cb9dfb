//! Criterion benches of JWT verification, natively through `tollgate::jwt`'s public API: per
//! algorithm, a cold verification (empty cache: full parse, signature and claim checks, then the
//! cache insert) against a cached one (cache hit: one SHA-256 of the token and a map lookup), plus
//! the whole `authenticate` decision for one request on a warm cache. `jwt_signature_only` times
//! the signature check alone (the key's prepared verifier on the signing input and the decoded
//! signature), so cold minus signature is the rest of the cold path (split, base64, header and
//! claims JSON, key lookup, claim checks, cache insert).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use jwt_simple::prelude::*;
use serde_json::{json, Map, Value};
use tollgate::jwt::keys::{parse_jwk, Algorithm};
use tollgate::jwt::{
    authenticate, from_json_value, local_keys, verify_with_cache, AuthOutcome, CompiledProvider,
    JwtSettings, KeySet, RequestInfo, VerifiedTokenCache,
};
use tollgate::refresh::Availability;

/// The verification time (seconds since the epoch).
const NOW: u64 = 1_750_000_000;
const HS_SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

fn b64(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).expect("base64")
}

fn claims() -> JWTClaims<Map<String, Value>> {
    let custom = json!({"scope": "chat models", "org": {"id": "acme"}})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut c = Claims::with_custom_claims(custom, Duration::from_secs(1))
        .with_subject("alice")
        .with_issuer("https://idp.example")
        .with_audience("tollgate");
    c.issued_at = Some(UnixTimeStamp::from_secs(NOW - 10));
    c.invalid_before = None;
    c.expires_at = Some(UnixTimeStamp::from_secs(NOW + 3600));
    c
}

fn jwk(exported: String, kid: &str) -> Value {
    let mut v: Value = serde_json::from_str(&exported).expect("exported JWK");
    v["kid"] = json!(kid);
    v
}

/// One token per algorithm and the JWKS verifying all of them.
fn tokens_and_jwks() -> (Vec<(&'static str, String)>, Value) {
    let rsa = RS256KeyPair::generate(2048).expect("RSA key");
    let der = rsa.to_der().expect("RSA DER");
    let components = rsa.public_key().to_components();
    let es256 = ES256KeyPair::generate();
    let es384 = ES384KeyPair::generate();
    let ed = Ed25519KeyPair::generate();
    let sign_rsa = |alg: &str| -> String {
        let c = claims();
        match alg {
            "RS256" => RS256KeyPair::from_der(&der).map(|k| k.with_key_id("rsa").sign(c)),
            "RS384" => RS384KeyPair::from_der(&der).map(|k| k.with_key_id("rsa").sign(c)),
            "RS512" => RS512KeyPair::from_der(&der).map(|k| k.with_key_id("rsa").sign(c)),
            _ => PS256KeyPair::from_der(&der).map(|k| k.with_key_id("rsa").sign(c)),
        }
        .and_then(|r| r)
        .expect("RSA token")
    };
    let tokens = vec![
        (
            "HS256",
            HS256Key::from_bytes(HS_SECRET)
                .with_key_id("hs")
                .authenticate(claims())
                .expect("HS256 token"),
        ),
        ("RS256", sign_rsa("RS256")),
        ("RS384", sign_rsa("RS384")),
        ("RS512", sign_rsa("RS512")),
        ("PS256", sign_rsa("PS256")),
        (
            "ES256",
            ES256KeyPair::from_bytes(&es256.to_bytes())
                .expect("ES256 key")
                .with_key_id("es256")
                .sign(claims())
                .expect("ES256 token"),
        ),
        (
            "ES384",
            ES384KeyPair::from_bytes(&es384.to_bytes())
                .expect("ES384 key")
                .with_key_id("es384")
                .sign(claims())
                .expect("ES384 token"),
        ),
        (
            "EdDSA",
            ed.clone()
                .with_key_id("ed")
                .sign(claims())
                .expect("EdDSA token"),
        ),
    ];
    let jwks = json!({"keys": [
        {"kty": "oct", "kid": "hs", "k": b64(HS_SECRET)},
        {"kty": "RSA", "kid": "rsa", "n": b64(&components.n), "e": b64(&components.e)},
        jwk(es256.public_key().to_jwk(), "es256"),
        jwk(es384.public_key().to_jwk(), "es384"),
        jwk(ed.public_key().to_jwk(), "ed"),
    ]});
    (tokens, jwks)
}

fn settings(jwks: Value) -> JwtSettings {
    from_json_value(
        json!({
            "providers": [{
                "name": "corp",
                "issuer": "https://idp.example",
                "audiences": ["tollgate"],
                "local_jwks": jwks,
                "claims_to_headers": [
                    {"claim": "sub", "header": "x-user-id"},
                    {"claim": "org.id", "header": "x-org-id"}
                ]
            }],
            "rules": [{"path_prefix": "/v1/", "requires": {"provider": "corp"}, "required_scopes": ["chat"]}]
        }),
        "jwt",
    )
    .expect("valid settings")
}

fn provider_keys(provider: &CompiledProvider) -> Arc<KeySet> {
    match local_keys(provider) {
        Some(Availability::Ready(keys)) => keys,
        _ => panic!("local keys expected"),
    }
}

fn verification(c: &mut Criterion) {
    let (tokens, jwks) = tokens_and_jwks();
    let settings = settings(jwks.clone());
    let provider = &settings.providers[0];
    let keys = provider_keys(provider);
    for (alg, token) in &tokens {
        // Sanity: every token verifies before it is measured.
        let mut check = VerifiedTokenCache::new(16);
        let (v, hit) = verify_with_cache(0, provider, token, &keys, &mut check, NOW)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert!(!hit);
        assert_eq!(v.subject.as_deref(), Some("alice"));
    }

    let mut cold = c.benchmark_group("jwt_verify_cold");
    for (alg, token) in &tokens {
        cold.bench_function(*alg, |b| {
            b.iter_batched_ref(
                || VerifiedTokenCache::new(1000),
                |cache| {
                    verify_with_cache(0, provider, black_box(token), &keys, cache, NOW)
                        .map(|(_, hit)| hit)
                },
                BatchSize::SmallInput,
            )
        });
    }
    cold.finish();

    let mut cached = c.benchmark_group("jwt_verify_cached");
    for (alg, token) in &tokens {
        let mut cache = VerifiedTokenCache::new(1000);
        let _ = verify_with_cache(0, provider, token, &keys, &mut cache, NOW);
        cached.bench_function(*alg, |b| {
            b.iter(|| {
                let (_, hit) =
                    verify_with_cache(0, provider, black_box(token), &keys, &mut cache, NOW)
                        .expect("cached token verifies");
                assert!(hit);
            })
        });
    }
    cached.finish();

    let mut signature_only = c.benchmark_group("jwt_signature_only");
    for (alg, token) in &tokens {
        let kid = match *alg {
            "HS256" => "hs",
            "ES256" => "es256",
            "ES384" => "es384",
            "EdDSA" => "ed",
            _ => "rsa",
        };
        let jwk = jwks["keys"]
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
            .expect("the token's JWK");
        let key = parse_jwk(jwk).expect("JWK");
        let algorithm = Algorithm::from_name(alg).expect("known algorithm");
        let (signing_input, sig_b64) = token.rsplit_once('.').expect("three parts");
        let signature = Base64UrlSafeNoPadding::decode_to_vec(sig_b64, None).expect("signature");
        assert!(key.verify_signature(algorithm, signing_input.as_bytes(), &signature));
        signature_only.bench_function(*alg, |b| {
            b.iter(|| {
                key.verify_signature(
                    algorithm,
                    black_box(signing_input.as_bytes()),
                    black_box(&signature),
                )
            })
        });
    }
    signature_only.finish();

    // The whole per-request decision (route, extract, cache hit, scopes, header edits).
    let (_, es256) = tokens
        .iter()
        .find(|(alg, _)| *alg == "ES256")
        .expect("ES256 token");
    let auth = format!("Bearer {es256}");
    let headers: Vec<(String, String)> = vec![
        ("content-type".into(), "application/json".into()),
        ("authorization".into(), auth),
        ("x-user-id".into(), "spoofed".into()),
    ];
    let request = RequestInfo {
        method: "POST",
        path: "/v1/chat/completions",
        headers: &headers,
    };
    let mut cache = VerifiedTokenCache::new(1000);
    c.bench_function("jwt_authenticate/es256_cached", |b| {
        b.iter(|| {
            let outcome = authenticate(
                &settings,
                black_box(&request),
                |_| Availability::Ready(Arc::clone(&keys)),
                &mut cache,
                NOW,
            );
            assert!(matches!(outcome, AuthOutcome::Allow { .. }));
        })
    });
}

criterion_group!(benches, verification);
criterion_main!(benches);
