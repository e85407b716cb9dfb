//! Real Envoy 1.40 + tollgate.wasm with virtual API keys (`configs/keys.yaml`):
//!
//! - the official OpenAI and Anthropic Python SDKs authenticate with a key, and the key never
//!   reaches the provider;
//! - refusals (unknown, one character off, revoked, expired, model not allowed, over budget), the
//!   JWT + key precedence, the status endpoint, the access log and the `team` metric label;
//! - the remote key set: requests wait (boundedly) for the first set, a removed key stops working
//!   within one refresh, and a key server that goes away leaves the last good set in force.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tollgate::keys::secret::{encode, KeyDigest};
use tollgate_e2e::mock::client::{request, Response};
use tollgate_e2e::mock::{MockHandle, MockOptions, MockProvider};
use tollgate_e2e::{repo_root, template, validate, Envoy, Vars};

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

/// A fresh key (random, like `make key`).
fn new_key() -> String {
    let mut bytes = [0u8; 32];
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let digest = KeyDigest::of(&format!("{nanos}-{:?}", std::thread::current().id()));
    bytes.copy_from_slice(&digest.0);
    encode(&bytes)
}

fn entry(id: &str, key: &str, team: &str, extra: Value) -> Value {
    let mut e = json!({"id": id, "sha256": KeyDigest::of(key).to_hex(),
        "owner": format!("{id}@example.com"), "team": team});
    if let (Some(e), Some(x)) = (e.as_object_mut(), extra.as_object()) {
        for (k, v) in x {
            e.insert(k.clone(), v.clone());
        }
    }
    e
}

fn keyset(entries: &[Value]) -> String {
    json!({ "keys": entries }).to_string()
}

fn remote_keys(refresh_seconds: u64, initial_wait_ms: u64) -> Value {
    json!({"remote": {"cluster": "keyset", "uri": "http://keys.local/tollgate/keys.json",
        "refresh_seconds": refresh_seconds, "timeout_ms": 500,
        "initial_wait_ms": initial_wait_ms, "min_refetch_seconds": 1}})
}

fn start(upstream: &MockHandle, keyset_port: u16, plugin: &Value) -> Envoy {
    Envoy::start(
        &template("e2e/configs/keys.yaml"),
        Vars::new()
            .set("UPSTREAM_PORT", upstream.port())
            .set("KEYSET_PORT", keyset_port)
            .plugin_config(&plugin.to_string()),
    )
}

fn mock() -> MockHandle {
    MockProvider::start(MockOptions::default()).expect("mock starts")
}

fn post(envoy: &Envoy, body: &str, headers: &[(&str, &str)]) -> Response {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    request(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &all,
        body.as_bytes(),
    )
    .expect("request through envoy")
}

fn code(resp: &Response) -> String {
    resp.json()
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("<{}: {}>", resp.status, resp.text()))
}

/// Polls `f` until it returns true or `limit` passes; returns the time it took.
fn within(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if f() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn keys_config_validates() {
    let yaml = Vars::new()
        .set("LISTENER_PORT", 10000)
        .set("ADMIN_PORT", 9901)
        .set("UPSTREAM_PORT", 8081)
        .set("KEYSET_PORT", 8082)
        .set("WASM", tollgate_e2e::wasm_path().display())
        .set("ACCESS_LOG", "/dev/null")
        .set("ROOT", repo_root().display())
        .plugin_config(&json!({ "keys": remote_keys(60, 1000) }).to_string())
        .render(&template("e2e/configs/keys.yaml"));
    let (ok, out) = validate(&yaml);
    assert!(ok, "{out}");
}

const SDK_SCRIPT: &str = r#"
import json, os, sys
import anthropic, openai
base, key, bad = os.environ["BASE"], os.environ["TG_KEY"], os.environ["BAD_KEY"]
out = {}
o = openai.OpenAI(api_key=key, base_url=base + "/v1", max_retries=0)
r = o.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
out["openai"] = {"content": r.choices[0].message.content, "tokens": r.usage.total_tokens}
a = anthropic.Anthropic(api_key=key, base_url=base, max_retries=0)
m = a.messages.create(model="claude-3-5-haiku-latest", max_tokens=16,
                      messages=[{"role": "user", "content": "hi"}])
out["anthropic"] = {"content": m.content[0].text, "tokens": m.usage.input_tokens + m.usage.output_tokens}
try:
    openai.OpenAI(api_key=bad, base_url=base + "/v1", max_retries=0).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    out["openai_bad"] = "accepted"
except openai.AuthenticationError as e:
    out["openai_bad"] = {"status": e.status_code, "body": e.body}
try:
    anthropic.Anthropic(api_key=bad, base_url=base, max_retries=0).messages.create(
        model="claude-3-5-haiku-latest", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    out["anthropic_bad"] = "accepted"
except anthropic.AuthenticationError as e:
    out["anthropic_bad"] = {"status": e.status_code, "body": e.body}
print(json.dumps(out))
"#;

#[test]
fn the_openai_and_anthropic_sdks_authenticate_with_a_key_that_never_reaches_the_provider() {
    let upstream = mock();
    let key = new_key();
    upstream.set_keyset(keyset(&[entry("sdk-app", &key, "platform", json!({}))]));
    let envoy = start(
        &upstream,
        upstream.port(),
        &json!({ "keys": remote_keys(60, 3000) }),
    );
    // One character off the valid key: the SDKs must see a 401 AuthenticationError.
    let mut bad = key.clone().into_bytes();
    bad[20] = if bad[20] == b'x' { b'y' } else { b'x' };
    let bad = String::from_utf8(bad).unwrap();
    let out = Command::new(repo_root().join(".venv/bin/python"))
        .args(["-c", SDK_SCRIPT])
        .env("BASE", format!("http://127.0.0.1:{}", envoy.port))
        .env("TG_KEY", &key)
        .env("BAD_KEY", &bad)
        .output()
        .expect("run python (make setup installs openai and anthropic into .venv)");
    assert!(
        out.status.success(),
        "SDK script failed:\n{}\nenvoy log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        envoy.log()
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(result["openai"]["tokens"].as_u64().unwrap() > 0, "{result}");
    assert!(
        result["anthropic"]["tokens"].as_u64().unwrap() > 0,
        "{result}"
    );
    for sdk in ["openai_bad", "anthropic_bad"] {
        assert_eq!(result[sdk]["status"], 401, "{sdk}: {result}");
        let body = result[sdk]["body"].to_string();
        assert!(body.contains("invalid_api_key"), "{sdk}: {body}");
        assert!(!body.contains(&bad[3..]), "the key is never echoed: {body}");
    }
    // The provider saw both requests, and neither carried the key in any header.
    let seen = upstream.requests();
    let paths: Vec<&str> = seen.iter().map(|r| r.path.as_str()).collect();
    assert!(paths.contains(&"/v1/chat/completions"), "{paths:?}");
    assert!(paths.contains(&"/v1/messages"), "{paths:?}");
    for r in &seen {
        for (name, value) in &r.headers {
            assert!(
                !value.contains(&key[3..]),
                "{name} carried the key upstream"
            );
        }
    }
    assert!(
        !envoy.log().contains(&key[3..]),
        "the key reached Envoy's log"
    );
}

#[test]
fn refusals_precedence_budgets_status_and_observability() {
    let upstream = mock();
    upstream
        .set_jwks(std::fs::read_to_string(repo_root().join("envoy/demo/keys/jwks.json")).unwrap());
    let (good, revoked, expired) = (new_key(), new_key(), new_key());
    let plugin = json!({
        "keys": {"inline": [
            entry("search-app", &good, "search",
                json!({"models": ["gpt-4o-mini"], "budgets": [{"period": "minute", "max_requests": 3}]})),
            entry("old-app", &revoked, "ads", json!({"revoked": true})),
            entry("temp-app", &expired, "ads", json!({"expires_at": "2020-01-01T00:00:00Z"})),
        ]},
        "jwt": {"providers": [{"name": "demo", "issuer": "https://demo.tollgate.local",
            "audiences": ["tollgate-demo"],
            "remote_jwks": {"cluster": "jwks", "uri": "http://idp.local/.well-known/jwks.json"}}],
            "rules": [{"path_prefix": "/v1/", "requires": {"provider": "demo"}}],
            "allow_unmatched": true},
        "status": {"path": "/tollgate/status"},
    });
    let envoy = start(&upstream, upstream.port(), &plugin);
    let bearer = |k: &str| format!("Bearer {k}");
    let token = String::from_utf8(
        Command::new(env!("CARGO_BIN_EXE_mint_token"))
            .args([
                "--key",
                &repo_root()
                    .join("envoy/demo/keys/demo-es256.pem")
                    .display()
                    .to_string(),
                "--kid",
                "tollgate-demo-1",
                "--sub",
                "jwt-user",
                "--iss",
                "https://demo.tollgate.local",
                "--aud",
                "tollgate-demo",
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();

    // A valid key (as the OpenAI SDK sends it): the first of its 3 requests a minute.
    let r = post(&envoy, CHAT, &[("authorization", &bearer(&good))]);
    assert_eq!(r.status, 200, "{}", r.text());
    // One character off, anywhere in the body: 401 with the request id, never the key.
    for pos in [3, 24, 45] {
        let mut off = good.clone().into_bytes();
        off[pos] = if off[pos] == b'Q' { b'R' } else { b'Q' };
        let off = String::from_utf8(off).unwrap();
        let r = post(&envoy, CHAT, &[("x-api-key", &off)]);
        assert_eq!((r.status, code(&r)), (401, "invalid_api_key".into()));
        let body = r.json().unwrap();
        assert_eq!(
            body["error"]["request_id"].as_str(),
            r.header("x-request-id"),
            "{body}"
        );
        assert!(!r.text().contains(&off[3..]));
        assert!(r.header("www-authenticate").is_some());
    }
    let r = post(&envoy, CHAT, &[("x-api-key", &revoked)]);
    assert_eq!((r.status, code(&r)), (401, "key_revoked".into()));
    let r = post(&envoy, CHAT, &[("x-goog-api-key", &expired)]);
    assert_eq!((r.status, code(&r)), (401, "key_expired".into()));
    // A model the key may not use: 403, and it is not charged to the key's budget.
    let r = post(
        &envoy,
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#,
        &[("x-api-key", &good)],
    );
    assert_eq!((r.status, code(&r)), (403, "model_not_allowed".into()));
    // Key and JWT together: the key decides. A bad key beside a valid token is refused…
    let r = post(
        &envoy,
        CHAT,
        &[("authorization", &bearer(&token)), ("x-api-key", &revoked)],
    );
    assert_eq!((r.status, code(&r)), (401, "key_revoked".into()));
    // …and a valid key beside a garbage token is allowed (request 2 of 3).
    let r = post(
        &envoy,
        CHAT,
        &[("authorization", "Bearer not.a.jwt"), ("x-api-key", &good)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Without a key, the JWT decides as before.
    assert_eq!(
        post(&envoy, CHAT, &[("authorization", &bearer(&token))]).status,
        200
    );
    assert_eq!(code(&post(&envoy, CHAT, &[])), "missing");
    // Request 3 of 3, then the key's own budget refuses with 429.
    assert_eq!(post(&envoy, CHAT, &[("x-api-key", &good)]).status, 200);
    let r = post(&envoy, CHAT, &[("x-api-key", &good)]);
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    // The status endpoint shows the calling key and its budget.
    let r = request(
        envoy.port,
        "GET",
        "/tollgate/status",
        &[("x-api-key", &good)],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let status = r.json().unwrap();
    assert_eq!(status["caller"], "search-app@example.com", "{status}");
    assert_eq!(status["key"]["id"], "search-app", "{status}");
    assert_eq!(status["key"]["team"], "search", "{status}");
    assert_eq!(status["key"]["budget"][0]["requests"], 3, "{status}");
    assert_eq!(
        status["key"]["budget"][0]["remaining_requests"], 0,
        "{status}"
    );
    assert!(!r.text().contains(&good[3..]));
    // Access log: key id and team on key requests; metrics: the team label.
    let lines = envoy.wait_access_log(14);
    let entries: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let keyed: Vec<&Value> = entries
        .iter()
        .filter(|e| {
            e["key_id"] == "search-app" && e["status"] == 200 && e["path"] == "/v1/chat/completions"
        })
        .collect();
    assert_eq!(keyed.len(), 3, "{lines:#?}");
    assert!(keyed
        .iter()
        .all(|e| e["team"] == "search" && e["user"] == "search-app@example.com"));
    // Refusals of a valid key carry its id too (403 model, 429 budget); unknown keys none.
    let refused: Vec<u64> = entries
        .iter()
        .filter(|e| e["key_id"] == "search-app" && e["status"] != 200)
        .filter_map(|e| e["status"].as_u64())
        .collect();
    assert_eq!(refused, vec![403, 429], "{lines:#?}");
    let prom = envoy.prometheus();
    assert!(
        prom.lines().any(|l| l.starts_with("tollgate_llm_requests_total{")
            && l.contains("team=\"search\"")),
        "{}",
        prom.lines()
            .filter(|l| l.contains("tollgate_llm_requests_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        !envoy.log().contains(&good[3..]),
        "the key reached Envoy's log"
    );
}

#[test]
fn key_rotation_through_the_remote_key_set() {
    let upstream = mock();
    let (first, second) = (new_key(), new_key());
    // The key server is not answering at start (a listener that never accepts holds the port):
    // requests wait (boundedly) for the first set, then 503.
    let placeholder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let keyset_port = placeholder.local_addr().unwrap().port();
    let envoy = start(
        &upstream,
        keyset_port,
        &json!({ "keys": remote_keys(1, 700) }),
    );
    let started = Instant::now();
    let r = post(&envoy, CHAT, &[("x-api-key", &first)]);
    assert_eq!((r.status, code(&r)), (503, "key_set_unavailable".into()));
    assert!(started.elapsed() < Duration::from_secs(5));
    // The key server comes up: the retried fetch brings the set.
    drop(placeholder);
    let keys = MockProvider::start(MockOptions {
        port: keyset_port,
        ..MockOptions::default()
    })
    .expect("key server starts");
    keys.set_keyset(keyset(&[entry("first", &first, "t", json!({}))]));
    let took = within(Duration::from_secs(10), || {
        post(&envoy, CHAT, &[("x-api-key", &first)]).status == 200
    });
    assert!(
        took.is_some(),
        "the key set never arrived:\n{}",
        envoy.log()
    );
    // Rotation: `second` replaces `first`; `first` stops within one refresh (1 s) plus a fetch.
    keys.set_keyset(keyset(&[entry("second", &second, "t", json!({}))]));
    let took = within(Duration::from_secs(5), || {
        code(&post(&envoy, CHAT, &[("x-api-key", &first)])) == "invalid_api_key"
    })
    .expect("the removed key kept working");
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    assert_eq!(post(&envoy, CHAT, &[("x-api-key", &second)]).status, 200);
    // The key server goes away: the last good set stays in force.
    drop(keys);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(post(&envoy, CHAT, &[("x-api-key", &second)]).status, 200);
    assert_eq!(
        code(&post(&envoy, CHAT, &[("x-api-key", &first)])),
        "invalid_api_key"
    );
    assert!(
        envoy.log().contains("keeping the last good"),
        "{}",
        envoy.log()
    );
}
