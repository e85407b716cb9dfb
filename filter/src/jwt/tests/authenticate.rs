//! `authenticate` decisions: allowed requests and their edits, denials, `any`/optional rules,
//! bypasses, remote key states and the verified-token cache.

use super::*;

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
