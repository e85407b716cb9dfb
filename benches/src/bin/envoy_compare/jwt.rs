//! Section `jwt` (1. Overhead and JWT, wrk): plain Envoy, tollgate with defaults, tollgate
//! verifying ES256/RS256 tokens with and without its verified-token cache, Envoy's native
//! `jwt_authn`, `envoy_jwt` mode, and a virtual API key.

use crate::wrk::{print_wrk_table, run_wrk_rounds, start_wrk_scenarios, Check, WrkSpec};
use crate::{template_file, tokens, Settings, AUDIENCE, ISSUER, MODEL};
use std::path::Path;
use tollgate_benches::chat_body;
use tollgate_e2e::mock::MockHandle;
use tollgate_e2e::{template, Vars};

pub(crate) fn tollgate_jwt_config(jwks: &serde_json::Value, cache_size: Option<usize>) -> String {
    let mut jwt = serde_json::json!({
        "providers": [{
            "name": "bench",
            "issuer": ISSUER,
            "audiences": [AUDIENCE],
            "local_jwks": jwks,
        }],
        "rules": [{"path_prefix": "/v1/", "requires": {"provider": "bench"}}],
    });
    if let Some(size) = cache_size {
        jwt["cache_size"] = serde_json::json!(size);
    }
    serde_json::json!({ "jwt": jwt }).to_string()
}

pub(crate) fn overhead_and_jwt(section: usize, settings: &Settings, mock: &MockHandle, dir: &Path) {
    eprintln!("generating ES256 and RS256 (2048-bit) keys…");
    let keys = tokens::Keys::generate();
    let jwks = keys.jwks();
    let jwks_text = jwks.to_string();
    let chat = chat_body(MODEL, "hello there", false);
    let plain = template_file("benches/plain.yaml");
    let basic = template("e2e/configs/basic.yaml");
    let native = template_file("benches/jwt_authn.yaml");
    let envoy_jwt = template("e2e/configs/envoy_jwt.yaml");
    let upstream = mock.port();
    let bearer = |token: String| vec![("Authorization".to_string(), format!("Bearer {token}"))];
    let spec = |name: &str, config: &str, vars: Vars, headers, base| WrkSpec {
        name: name.to_string(),
        config: config.to_string(),
        vars: vars.set("UPSTREAM_PORT", upstream),
        body: chat.clone(),
        headers,
        base,
        check: Check::Ok,
    };
    let mut specs = vec![
        spec("plain Envoy", &plain, Vars::new(), vec![], None),
        spec(
            "Envoy + tollgate, defaults `{}` (correlation, usage, prompt masking)",
            &basic,
            Vars::new().plugin_config("{}"),
            vec![],
            Some(1),
        ),
    ];
    for alg in ["ES256", "RS256"] {
        let token = if alg == "ES256" {
            keys.es256(ISSUER, AUDIENCE)
        } else {
            keys.rs256(ISSUER, AUDIENCE)
        };
        specs.push(spec(
            &format!("tollgate JWT {alg}, cached (same token every request)"),
            &basic,
            Vars::new().plugin_config(&tollgate_jwt_config(&jwks, None)),
            bearer(token.clone()),
            Some(2),
        ));
        specs.push(spec(
            &format!("tollgate JWT {alg}, cold (`cache_size: 0`, verifies every request)"),
            &basic,
            Vars::new().plugin_config(&tollgate_jwt_config(&jwks, Some(0))),
            bearer(token.clone()),
            Some(2),
        ));
        specs.push(spec(
            &format!("native `jwt_authn` {alg}, no tollgate, no cache"),
            &native,
            Vars::new()
                .set("JWKS", &jwks_text)
                .set("JWT_CACHE", "# no jwt_cache_config: every request verifies"),
            bearer(token.clone()),
            Some(1),
        ));
        specs.push(spec(
            &format!("native `jwt_authn` {alg}, no tollgate, `jwt_cache_config`"),
            &native,
            Vars::new()
                .set("JWKS", &jwks_text)
                .set("JWT_CACHE", "jwt_cache_config: { jwt_cache_size: 1000 }"),
            bearer(token.clone()),
            Some(1),
        ));
        specs.push(spec(
            &format!(
                "`envoy_jwt` mode {alg}: `jwt_authn` (no cache) + tollgate reading its metadata"
            ),
            &envoy_jwt,
            Vars::new()
                .set("JWKS", &jwks_text)
                .plugin_config(r#"{"envoy_jwt":{"payload_key":"jwt_payload"}}"#),
            bearer(token),
            Some(2),
        ));
    }
    specs.push(virtual_key_spec(&basic, upstream, &chat));
    let mut scenarios = start_wrk_scenarios(specs, &[], mock, dir);
    run_wrk_rounds(&mut scenarios, settings);
    println!(
        "\n#### {section}. Per-request overhead and JWT verification (wrk, small chat request)"
    );
    print_wrk_table(&scenarios);
    println!(
        "\nΔ CPU is this row's Envoy CPU per request minus row \"vs #\"'s: tollgate's JWT rows are compared with tollgate's defaults (#2), so Δ is the JWT work alone, like the native rows against plain Envoy (#1)."
    );
}

/// The virtual-key row (docs/keys.md): 1,000 inline keys, the request's key in `x-api-key`; per
/// request one SHA-256, one map lookup and a constant-time compare. Compared with the defaults
/// (#2) like the JWT rows, so its Δ CPU sits next to the cached-JWT rows'.
pub(crate) fn virtual_key_spec(basic: &str, upstream: u16, chat: &str) -> WrkSpec {
    use tollgate::keys::secret::{encode, KeyDigest};
    let keys: Vec<String> = (0..1000u32)
        .map(|i| {
            let mut bytes = [0u8; 32];
            bytes.copy_from_slice(&KeyDigest::of(&format!("bench-key-{i}")).0);
            encode(&bytes)
        })
        .collect();
    let entries: Vec<serde_json::Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            serde_json::json!({"id": format!("app-{i}"), "sha256": KeyDigest::of(k).to_hex(),
                "owner": format!("owner-{i}"), "team": format!("team-{}", i % 10)})
        })
        .collect();
    let config = serde_json::json!({ "keys": { "inline": entries } }).to_string();
    WrkSpec {
        name: "tollgate virtual API key (1,000 inline keys, `x-api-key`)".into(),
        config: basic.to_string(),
        vars: Vars::new()
            .plugin_config(&config)
            .set("UPSTREAM_PORT", upstream),
        body: chat.to_string(),
        headers: vec![(
            "x-api-key".into(),
            keys.get(500).cloned().unwrap_or_default(),
        )],
        base: Some(2),
        check: Check::Ok,
    }
}
