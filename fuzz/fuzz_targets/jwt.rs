//! JWT parsing, verification and claims checks, and `authenticate` over a whole request.
//!
//! Selector (first byte, modulo 3):
//! * 0: the rest is a token, verified against a fixed key set (HMAC, RSA, EC, Ed25519). Property:
//!   only a JWS-shaped token can verify.
//! * 1: the rest is a claims payload (byte 1 picks the header), signed with the key set's HMAC
//!   secret, so verification reaches the claims checks. Properties: a correctly signed token is
//!   never reported as a bad signature; an accepted token has the configured issuer and audience
//!   and is not expired.
//! * 2: the rest is a request (first line the path, then `name: value` header lines) given to
//!   `authenticate`.

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use tollgate::jwt::settings::{CompiledProvider, JwksSource};
use tollgate::jwt::{
    authenticate, from_json_value, verify, JwtError, JwtSettings, KeySet, VerifiedTokenCache,
};
use tollgate::jwt::{is_jwt_shaped, RequestInfo};
use tollgate::refresh::Availability;
use tollgate_fuzz::{b64url, hmac_sha256};

/// "Now" for every check, seconds since the epoch.
const NOW: u64 = 1_700_000_000;
/// The HMAC secret of the `hs` key (RFC 7515 A.1), base64url.
const HMAC_SECRET_B64: &str =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "api";

struct Fixture {
    settings: JwtSettings,
    provider: CompiledProvider,
    keys: Arc<KeySet>,
    secret: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let jwks = json!({"keys": [
            {"kty": "oct", "kid": "hs", "k": HMAC_SECRET_B64},
            {"kty": "EC", "kid": "ec", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "RSA", "kid": "rs", "e": "AQAB",
             "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"}
        ]});
        let config = json!({
            "providers": [{
                "name": "p",
                "issuer": ISSUER,
                "audiences": [AUDIENCE],
                "local_jwks": jwks.to_string(),
                "max_lifetime_seconds": 86400,
                "token_locations": [
                    {"header": "authorization", "prefix": "Bearer "},
                    {"query": "access_token"},
                    {"cookie": "session"}
                ],
                "claims_to_headers": [
                    {"claim": "sub", "header": "x-user"},
                    {"claim": "org.team", "header": "x-team"}
                ]
            }],
            "rules": [
                {"path_prefix": "/v1/admin", "requires": {"provider": "p"}, "required_scopes": ["admin"]},
                {"path_prefix": "/v1", "requires": {"provider": "p"}},
                {"path_prefix": "/open", "requires": {"optional": "p"}}
            ],
            "bypass": [{"path_exact": "/health"}]
        });
        let settings = match from_json_value(config, "jwt") {
            Ok(settings) => settings,
            Err(e) => panic!("fixture config refused: {e}"),
        };
        let provider = settings.providers[0].clone();
        let keys = match &provider.jwks {
            JwksSource::Local(keys) => Arc::clone(keys),
            JwksSource::Remote(_) => panic!("fixture uses local keys"),
        };
        let secret = {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(HMAC_SECRET_B64)
                .unwrap_or_default()
        };
        Fixture {
            settings,
            provider,
            keys,
            secret,
        }
    })
}

fn raw_token(f: &Fixture, bytes: &[u8]) {
    let token = String::from_utf8_lossy(bytes);
    if let Ok(verified) = verify(&token, &f.provider, &f.keys, NOW) {
        assert!(is_jwt_shaped(&token), "accepted a non-JWS token {token:?}");
        assert_eq!(verified.issuer.as_deref(), Some(ISSUER));
    }
}

fn signed_claims(f: &Fixture, bytes: &[u8]) {
    let (variant, payload) = bytes.split_first().unwrap_or((&0, &[]));
    let header = match variant % 4 {
        0 => json!({"alg": "HS256", "kid": "hs"}),
        1 => json!({"alg": "HS256", "kid": "hs", "typ": "JWT"}),
        2 => json!({"alg": "HS256"}),
        _ => json!({"alg": "HS256", "kid": "hs", "typ": "at+jwt"}),
    };
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(payload)
    );
    let signature = hmac_sha256(&f.secret, signing_input.as_bytes());
    let token = format!("{signing_input}.{}", b64url(&signature));
    match verify(&token, &f.provider, &f.keys, NOW) {
        Err(JwtError::BadSignature) => panic!(
            "correctly signed token reported as bad signature; payload {:?}",
            String::from_utf8_lossy(payload)
        ),
        Err(_) => {}
        Ok(verified) => {
            assert_eq!(verified.issuer.as_deref(), Some(ISSUER));
            let claims: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
            let aud_ok = match &claims["aud"] {
                Value::String(a) => a == AUDIENCE,
                Value::Array(list) => list.iter().any(|a| a == AUDIENCE),
                _ => false,
            };
            assert!(aud_ok, "accepted without the audience: {claims}");
            let exp = verified.exp.unwrap_or(0);
            assert!(
                exp.saturating_add(f.provider.clock_skew_seconds) >= NOW,
                "accepted an expired token: {claims}"
            );
        }
    }
}

fn request(f: &Fixture, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or("");
    let (method, path) = first.split_once(' ').unwrap_or(("GET", first));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let request = RequestInfo {
        method,
        path,
        headers: &headers,
    };
    let mut cache = VerifiedTokenCache::new(4);
    for _ in 0..2 {
        // The second pass may come from the cache and must decide the same way.
        let _ = authenticate(
            &f.settings,
            &request,
            |_| Availability::Ready(Arc::clone(&f.keys)),
            &mut cache,
            NOW,
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => raw_token(f, rest),
        1 => signed_claims(f, rest),
        _ => request(f, rest),
    }
});
