//! Tests of the JWT configuration: every refusal names its JSON path, and valid sections
//! compile to what the filter uses.

use super::*;
use serde_json::json;

const HS_JWKS: &str = r#"{"keys":[{"kty":"oct","kid":"k1","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]}"#;

fn base() -> Value {
    json!({
        "providers": [{"name": "corp", "issuer": "https://idp", "local_jwks": HS_JWKS}],
        "rules": [{"path_prefix": "/v1", "requires": {"provider": "corp"}}]
    })
}

/// `path: reason` of the error compiling `v` as the `jwt` section.
fn compile_err(v: Value) -> String {
    let e = from_json_value(v, "jwt").unwrap_err();
    format!("{}: {}", e.path, e.reason)
}

#[test]
fn minimal_config_compiles_with_defaults() {
    let s = from_json_value(base(), "jwt").unwrap();
    let p = &s.providers[0];
    assert!(!p.forward);
    assert!(p.require_exp);
    assert_eq!(p.clock_skew_seconds, 60);
    assert_eq!(p.max_token_bytes, 8192);
    assert_eq!(p.scope_claim, vec!["scope".to_string()]);
    assert_eq!(
        p.token_locations,
        vec![TokenLocation::Header {
            name: "authorization".into(),
            prefix: "Bearer ".into()
        }]
    );
    assert!(!s.allow_unmatched);
    assert!(s.bypass_cors_preflight);
    assert_eq!(s.cache_size, 1000);
    assert_eq!(s.realm, "tollgate");
    assert_eq!(s.rules[0].requires, Requirement::Provider(0));
}

#[test]
fn empty_audiences_error_has_path() {
    let mut v = base();
    v["providers"][0]["audiences"] = json!([]);
    assert_eq!(
        compile_err(v),
        "jwt.providers[0].audiences: must not be empty"
    );
}

#[test]
fn unknown_field_error_has_path() {
    let mut v = base();
    v["providers"][0]["issuers"] = json!("x");
    let e = compile_err(v);
    assert!(
        e.starts_with("jwt.providers[0].issuers: unknown field"),
        "{e}"
    );
}

#[test]
fn various_errors() {
    let mut v = base();
    v["rules"][0]["requires"] = json!({"provider": "nope"});
    assert_eq!(
        compile_err(v),
        "jwt.rules[0].requires.provider: unknown provider \"nope\""
    );
    let mut v = base();
    v["providers"][0]["local_jwks"] = json!({"keys":[{"kty":"oct","k":"c2hvcnQ"}]});
    let e = compile_err(v);
    assert!(
        e.starts_with("jwt.providers[0].local_jwks.keys[0]: HMAC secret is 5 bytes"),
        "{e}"
    );
    let mut v = base();
    v["providers"][0]["remote_jwks"] = json!({"cluster": "idp", "uri": "https://idp/jwks"});
    assert_eq!(
        compile_err(v),
        "jwt.providers[0]: must have exactly one of [local_jwks] and [remote_jwks]"
    );
    let mut v = base();
    v["rules"][0] = json!({"path_prefix": "/x", "required_scopes": ["a"]});
    assert!(compile_err(v).starts_with("jwt.rules[0].required_scopes: needs [requires]"));
    let mut v = base();
    v["rules"][0] = json!({"path_prefix": "/x", "path_exact": "/y"});
    assert!(compile_err(v).starts_with("jwt.rules[0]: must have exactly one"));
    let mut v = base();
    v["providers"][0]["claims_to_headers"] = json!([{"claim": "sub", "header": "Authorization"}]);
    assert!(compile_err(v).starts_with("jwt.providers[0].claims_to_headers[0].header"));
    let mut v = base();
    v["providers"][0]["claims_to_headers"] = json!([{"claim": "a..b", "header": "x-a"}]);
    assert!(compile_err(v).starts_with("jwt.providers[0].claims_to_headers[0].claim"));
    let mut v = base();
    v["providers"][0]["token_locations"] = json!([{"query": "t", "prefix": "x"}]);
    assert_eq!(
        compile_err(v),
        "jwt.providers[0].token_locations[0].prefix: is only allowed with [header]"
    );
    let mut v = base();
    v["providers"][0]["max_token_bytes"] = json!(10);
    assert!(compile_err(v).starts_with("jwt.providers[0].max_token_bytes"));
    let mut v = base();
    v["providers"] = json!([]);
    assert_eq!(compile_err(v), "jwt.providers: must not be empty");
    let mut v = base();
    v["providers"][0]["local_jwks"] = json!("{not json");
    assert!(compile_err(v).starts_with("jwt.providers[0].local_jwks: is not a valid JSON"));
}

#[test]
fn remote_jwks_uri_split() {
    let mut v = base();
    v["providers"][0]
        .as_object_mut()
        .unwrap()
        .remove("local_jwks");
    v["providers"][0]["remote_jwks"] =
        json!({"cluster": "idp", "uri": "https://login.example.com/.well-known/jwks.json"});
    let s = from_json_value(v, "jwt").unwrap();
    match &s.providers[0].jwks {
        JwksSource::Remote(r) => {
            assert_eq!(r.authority, "login.example.com");
            assert_eq!(r.path, "/.well-known/jwks.json");
            assert_eq!(r.refresh_seconds, 600);
            assert_eq!(r.min_refetch_seconds, 30);
            assert_eq!(r.initial_wait_ms, 5000);
        }
        JwksSource::Local(_) => panic!("expected remote"),
    }
}

#[test]
fn headers_to_remove_lists_claim_headers() {
    let mut v = base();
    v["providers"][0]["claims_to_headers"] =
        json!([{"claim": "sub", "header": "X-User"}, {"claim": "org.id", "header": "x-org"}]);
    let s = from_json_value(v, "jwt").unwrap();
    assert_eq!(s.headers_to_remove(), vec!["x-user", "x-org"]);
    assert_eq!(
        s.providers[0].claims_to_headers[1].claim_path,
        vec!["org".to_string(), "id".to_string()]
    );
}
