//! Every rejection reason: `alg: none`, algorithm confusion, time, lifetime, issuer and
//! audience, tampering, malformed tokens, unknown keys, `crit`/`typ`, size, claims and scopes.

use super::*;

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
