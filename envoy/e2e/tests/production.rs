//! The production profile and the status endpoint on a real Envoy 1.40: Envoy refuses an
//! insecure production config with every reason in one log line; the status endpoint answers
//! locally with circuits and budget use after traffic, and refuses anonymous callers.

use jwt_simple::prelude::*;
use tollgate_e2e::mock::client::request;
use tollgate_e2e::mock::{Faults, MockOptions, MockProvider};
use tollgate_e2e::providers::{Providers, OPENAI_KEY};
use tollgate_e2e::{base64url, template, Envoy, Vars};

const HS_SECRET: &[u8] = b"e2e-status-secret-0123456789abcdef";

#[test]
fn envoy_refuses_an_insecure_production_config_listing_every_reason() {
    let mock = MockProvider::start(MockOptions::default()).unwrap();
    let config = r#"{
      "environment": "production",
      "masking": { "logs": false, "error_bodies": false, "prompts": "off" },
      "status": { "path": "/tollgate/status" },
      "failover": {
        "providers": [ { "name": "openai", "kind": "openai", "cluster": "provider",
                         "api_key": { "value": "sk-inline-e2e-0123456789" } } ],
        "routes": [ { "model": "*", "providers": ["openai"] } ]
      }
    }"#;
    let result = Envoy::try_start(
        &template("e2e/configs/basic.yaml"),
        Vars::new()
            .set("UPSTREAM_PORT", mock.port())
            .plugin_config(config),
    );
    let err = match result {
        Ok(_) => panic!("envoy accepted an insecure production config"),
        Err(e) => e,
    };
    let line = err
        .log
        .lines()
        .find(|l| l.contains("production profile"))
        .unwrap_or_else(|| panic!("no production-profile line in:\n{}", err.log));
    for path in [
        "jwt:",
        "status.path:",
        "masking.logs:",
        "masking.error_bodies:",
        "masking.prompts:",
        "failover.providers[0].api_key.value:",
    ] {
        assert!(line.contains(path), "{path} missing in: {line}");
    }
    assert!(
        !err.log.contains("sk-inline-e2e"),
        "the inline key was logged"
    );
}

fn plugin() -> String {
    let k = base64url(HS_SECRET);
    format!(
        r#"{{
  "jwt": {{
    "providers": [ {{ "name": "corp", "issuer": "https://idp.e2e",
                      "local_jwks": {{ "keys": [ {{ "kty": "oct", "k": "{k}" }} ] }} }} ],
    "rules": [ {{ "path_prefix": "/", "requires": {{ "provider": "corp" }} }} ]
  }},
  "budgets": {{ "windows": [ {{ "period": "hour", "max_tokens": 1000000, "max_requests": 1000 }} ] }},
  "status": {{ "path": "/tollgate/status" }},
  "failover": {{
    "providers": [
      {{ "name": "anthropic", "kind": "anthropic", "cluster": "anthropic", "api_key": {{ "env": "ANTHROPIC_API_KEY" }},
         "models": {{ "gpt-4o-mini": "claude-sonnet-4" }}, "circuit": {{ "failure_threshold": 2, "cooldown_ms": 60000 }} }},
      {{ "name": "openai", "kind": "openai", "cluster": "openai", "api_key": {{ "env": "OPENAI_API_KEY" }} }},
      {{ "name": "gemini", "kind": "gemini", "cluster": "gemini", "api_key": {{ "env": "GEMINI_API_KEY" }} }}
    ],
    "routes": [ {{ "model": "gpt-4o-mini", "providers": ["anthropic", "openai"] }} ]
  }}
}}"#
    )
}

fn token(sub: &str) -> String {
    let claims = Claims::create(Duration::from_mins(10))
        .with_issuer("https://idp.e2e")
        .with_subject(sub);
    HS256Key::from_bytes(HS_SECRET)
        .authenticate(claims)
        .unwrap()
}

#[test]
fn status_reports_circuits_and_budget_after_traffic_and_refuses_anonymous_callers() {
    let providers = Providers::start(&MockOptions::default());
    providers.anthropic.set_faults(Faults {
        status: Some(500),
        ..Faults::default()
    });
    let envoy = Envoy::start(
        &template("e2e/configs/routing.yaml"),
        providers.vars().plugin_config(&plugin()),
    );
    let Providers {
        openai,
        anthropic,
        gemini,
    } = &providers;
    let bearer = format!("Bearer {}", token("alice"));
    let chat = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there"}]}"#;
    for _ in 0..3 {
        let resp = request(
            envoy.port,
            "POST",
            "/v1/chat/completions",
            &[
                ("content-type", "application/json"),
                ("authorization", &bearer),
            ],
            chat.as_bytes(),
        )
        .unwrap();
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    }
    let seen = (
        openai.requests().len(),
        anthropic.requests().len(),
        gemini.requests().len(),
    );
    assert_eq!(
        seen,
        (3, 2, 0),
        "anthropic failed twice, then its circuit opened"
    );

    // Anonymous: 401 in the OpenAI shape with the request id.
    let resp = request(
        envoy.port,
        "GET",
        "/tollgate/status",
        &[("x-request-id", "rid-anon")],
        b"",
    )
    .unwrap();
    assert_eq!(resp.status, 401, "{}", String::from_utf8_lossy(&resp.body));
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(v["error"]["request_id"], "rid-anon");
    assert_eq!(v["error"]["type"], "authentication_error");

    // Settlement runs in the log hook, just after the client got its answer: poll briefly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let (text, v) = loop {
        let resp = request(
            envoy.port,
            "GET",
            "/tollgate/status",
            &[("authorization", &bearer), ("x-request-id", "rid-status")],
            b"",
        )
        .unwrap();
        let text = String::from_utf8_lossy(&resp.body).into_owned();
        assert_eq!(resp.status, 200, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let settled = v["budget"]["windows"][0]["reserved_tokens"] == 0;
        if settled || std::time::Instant::now() > deadline {
            break (text, v);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(v["request_id"], "rid-status");
    assert_eq!(v["environment"], "development");
    assert!(v["config_hash"].as_str().unwrap().starts_with("sha256:"));
    assert!(!v["version"].as_str().unwrap().is_empty());
    assert_eq!(v["caller"], "alice");
    let circuits: Vec<(String, String)> = v["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["circuit"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        circuits,
        vec![
            ("anthropic".to_string(), "open".to_string()),
            ("openai".to_string(), "closed".to_string()),
            ("gemini".to_string(), "closed".to_string()),
        ],
        "{text}"
    );
    let w = &v["budget"]["windows"][0];
    assert_eq!(w["period_seconds"], 3600, "{text}");
    assert_eq!(w["requests"], 3, "{text}");
    let used = w["used_tokens"].as_u64().unwrap();
    assert!(used > 0, "{text}");
    assert_eq!(w["reserved_tokens"], 0, "{text}");
    assert_eq!(w["remaining_tokens"].as_u64().unwrap(), 1_000_000 - used);
    assert!(!text.contains(OPENAI_KEY) && !text.contains(&bearer[7..]));
    // Answered locally: no provider saw the status requests.
    assert_eq!(
        (
            openai.requests().len(),
            anthropic.requests().len(),
            gemini.requests().len()
        ),
        seen
    );
}
