//! Host tests for the production profile (every refusal reason in one log line) and the status
//! endpoint (circuits and budget use after traffic, identity hashed, anonymous callers refused).

use jwt_simple::prelude::*;
use tollgate_host_tests::{Action, Vm};

const NOW: u64 = 1_750_000_000;
const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
const COMPLETION: &str = r#"{"id":"x","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#;
const CLIENT_KEY: &str = "client-secret-key-123456";
const HS_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-status";

/// Unpadded base64url.
fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// An HS256 token for `sub`, valid for ten minutes from [`NOW`].
fn token(sub: &str) -> String {
    let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = b64(format!(
        r#"{{"iss":"https://idp","sub":"{sub}","exp":{}}}"#,
        NOW + 600
    )
    .as_bytes());
    let input = format!("{header}.{payload}");
    let tag = HS256Key::from_bytes(HS_SECRET).authentication_tag(input.as_bytes());
    format!("{input}.{}", b64(&tag))
}

fn configured(config: &str, env: &[(&str, &str)]) -> Vm {
    let mut vm = Vm::load().expect("module loads");
    for (k, v) in env {
        vm.state_mut().env.push((k.to_string(), v.to_string()));
    }
    vm.set_time_secs(NOW);
    assert!(
        vm.configure(config).expect("configure runs"),
        "config refused: {:?}",
        vm.logs()
    );
    vm
}

fn get_status(vm: &mut Vm, extra: &[(&str, &str)]) -> u32 {
    let ctx = vm.new_http();
    let mut headers = vec![
        (":method", "GET"),
        (":path", "/tollgate/status?verbose=1"),
        (":authority", "localhost"),
        ("x-request-id", "rid-status"),
    ];
    headers.extend_from_slice(extra);
    let action = vm.request_headers(ctx, &headers, true).unwrap();
    assert_eq!(action, Action::Pause, "the status is answered locally");
    ctx
}

#[test]
fn production_config_is_refused_with_every_reason_in_one_line() {
    let mut vm = Vm::load().unwrap();
    let config = r#"{
      "environment": "production",
      "masking": { "logs": false, "error_bodies": false, "prompts": "off" },
      "status": { "path": "/tollgate/status" },
      "failover": {
        "providers": [ { "name": "openai", "kind": "openai", "cluster": "openai",
                         "api_key": { "value": "sk-inline-key-0123456789" } } ],
        "routes": [ { "model": "*", "providers": ["openai"] } ]
      }
    }"#;
    assert!(
        !vm.configure(config).unwrap(),
        "production refusal expected"
    );
    let errors = vm.error_logs();
    assert_eq!(errors.len(), 1, "one line with every reason: {errors:?}");
    let line = &errors[0];
    for path in [
        "jwt:",
        "status.path:",
        "masking.logs:",
        "masking.error_bodies:",
        "masking.prompts:",
        "failover.providers[0].api_key.value:",
    ] {
        assert!(line.contains(path), "{path} missing in {line}");
    }
    assert!(line.contains("6 problems"), "{line}");
    assert!(
        !line.contains("sk-inline-key"),
        "the inline key must not be logged: {line}"
    );
}

#[test]
fn production_config_with_auth_and_masking_is_accepted() {
    let k = b64(HS_SECRET);
    // HS keys inline are refused in production; an ES/RS remote JWKS is the production shape.
    let config = r#"{
      "environment": "production",
      "jwt": { "providers": [ { "name": "corp", "issuer": "https://idp",
               "remote_jwks": { "cluster": "idp", "path": "/jwks", "authority": "idp" } } ],
               "rules": [ { "path_prefix": "/", "requires": { "provider": "corp" } } ] },
      "status": { "path": "/tollgate/status" }
    }"#;
    configured(config, &[]);
    let mut vm = Vm::load().unwrap();
    let inline = format!(
        r#"{{"environment":"production","jwt":{{"providers":[{{"name":"corp","issuer":"https://idp","local_jwks":{{"keys":[{{"kty":"oct","k":"{k}"}}]}}}}],"rules":[{{"path_prefix":"/","requires":{{"provider":"corp"}}}}]}}}}"#
    );
    assert!(!vm.configure(&inline).unwrap());
    assert!(
        vm.error_logs()[0].contains("jwt.providers[0].local_jwks.keys[0].k"),
        "{:?}",
        vm.error_logs()
    );
}

#[test]
fn status_reports_circuits_and_budget_after_traffic() {
    let config = r#"{
      "failover": {
        "providers": [ { "name": "openai", "kind": "openai", "cluster": "openai",
                         "api_key": { "env": "OPENAI_KEY" },
                         "circuit": { "failure_threshold": 1, "cooldown_ms": 60000 } } ],
        "routes": [ { "model": "gpt-4o-mini", "providers": ["openai"] } ]
      },
      "budgets": { "windows": [ { "period": "minute", "max_tokens": 10000, "max_requests": 100 } ] },
      "status": { "path": "/tollgate/status" }
    }"#;
    let mut vm = configured(
        config,
        &[("OPENAI_KEY", "sk-proj-hostTestKeyAbCdEfGhIjKlMnOpQr0123")],
    );
    let len = CHAT.len().to_string();
    let headers = [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "localhost"),
        ("content-type", "application/json"),
        ("content-length", len.as_str()),
        ("x-api-key", CLIENT_KEY),
    ];
    // One success with usage, then a 500 that opens the circuit (threshold 1).
    for (status, body) in [
        ("200", COMPLETION),
        ("500", r#"{"error":{"message":"boom"}}"#),
    ] {
        let ctx = vm.new_http();
        vm.request_headers(ctx, &headers, false).unwrap();
        let action = vm.request_body(ctx, CHAT.as_bytes(), true).unwrap();
        assert_eq!(action, Action::Continue, "{:?}", vm.logs());
        vm.response_headers(
            ctx,
            &[(":status", status), ("content-type", "application/json")],
            false,
        )
        .unwrap();
        vm.response_body(ctx, body.as_bytes(), true).unwrap();
        vm.finish(ctx).unwrap();
    }

    let ctx = get_status(&mut vm, &[("x-api-key", CLIENT_KEY)]);
    let reply = vm.local_reply(ctx).expect("status reply").clone();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("x-request-id"), Some("rid-status"));
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    assert!(!text.contains(CLIENT_KEY), "raw key in the status: {text}");
    let v = reply.json();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        v["config_hash"].as_str().unwrap().starts_with("sha256:"),
        "{v}"
    );
    assert_eq!(v["config_hash"].as_str().unwrap().len(), 7 + 64);
    assert_eq!(v["environment"], "development");
    assert_eq!(v["request_id"], "rid-status");
    let caller = v["caller"].as_str().unwrap();
    assert!(caller.starts_with("key:") && caller.len() == 20, "{caller}");
    assert_eq!(v["providers"][0]["name"], "openai");
    assert_eq!(v["providers"][0]["circuit"], "open", "{v}");
    let w = &v["budget"]["windows"][0];
    assert_eq!(w["period_seconds"], 60);
    assert_eq!(w["used_tokens"], 17, "{v}");
    assert_eq!(w["reserved_tokens"], 0, "{v}");
    assert_eq!(w["remaining_tokens"], 9983, "{v}");
    assert_eq!(w["requests"], 2, "{v}");
    assert_eq!(w["remaining_requests"], 98, "{v}");

    // Reading the status reserved nothing and changed nothing.
    let ctx = get_status(&mut vm, &[("x-api-key", CLIENT_KEY)]);
    let again = vm.local_reply(ctx).unwrap().json();
    assert_eq!(again["budget"], v["budget"]);
    assert!(vm.stream(ctx).unwrap().forwarded_request_body.is_empty());
}

#[test]
fn status_needs_an_authenticated_caller_when_jwt_is_configured() {
    let k = b64(HS_SECRET);
    let config = format!(
        r#"{{
      "jwt": {{ "providers": [ {{ "name": "corp", "issuer": "https://idp",
                 "local_jwks": {{ "keys": [ {{ "kty": "oct", "k": "{k}" }} ] }} }} ],
               "rules": [ {{ "path_prefix": "/v1/", "requires": {{ "provider": "corp" }} }},
                          {{ "path_prefix": "/tollgate/", "requires": {{ "optional": "corp" }} }} ] }},
      "status": {{ "path": "/tollgate/status" }}
    }}"#
    );
    let mut vm = configured(&config, &[]);
    // The jwt rules let an anonymous request through; the status endpoint still refuses it.
    let ctx = get_status(&mut vm, &[("x-api-key", CLIENT_KEY)]);
    let reply = vm.local_reply(ctx).expect("refusal").clone();
    assert_eq!(
        reply.status,
        401,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(reply.header("www-authenticate").is_some());
    assert_eq!(reply.json()["error"]["request_id"], "rid-status");

    let bearer = format!("Bearer {}", token("alice"));
    let ctx = get_status(&mut vm, &[("authorization", bearer.as_str())]);
    let reply = vm.local_reply(ctx).expect("status").clone();
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json()["caller"], "alice");
}
