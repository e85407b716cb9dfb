//! The wire protocol of mesh-wide budgets against a recording stub (docs/budgets.md): real Envoy
//! 1.40 + tollgate.wasm call `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit` over
//! gRPC (HTTP/2) at admission and for remainders. The service here is `envoy/e2e/rls_server.py`
//! (grpcio, hand-coded protobuf), which records every call and serves them as JSON on its HTTP
//! port and can be told to fail or to be slow: the corner cases of the protocol. The real
//! service on Redis, shared by two replicas, is tests/mesh_budget.rs.

use std::process::Command;
use std::time::{Duration, Instant};
use tollgate_e2e::base64url;

use serde_json::Value;
use tollgate_e2e::mock::client::{request, Response};
use tollgate_e2e::mock::{MockHandle, MockOptions, MockProvider};
use tollgate_e2e::sidecar::Sidecar;
use tollgate_e2e::{repo_root, template, Envoy, Vars};

/// The identity tollgate derives from an API key: `key:` + FNV-1a 64 of the key, in hex.
fn key_identity(key: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("key:{hash:016x}")
}

/// The RLS test server (`rls_server.py`), killed on drop (printing its stderr if the test
/// failed).
struct RlsServer {
    /// The process, stopped when the server is dropped.
    _process: Sidecar,
    grpc_port: u16,
    http_port: u16,
}

impl RlsServer {
    /// Starts `rls_server.py` from the project venv on OS-chosen ports.
    fn start(limit: u64) -> RlsServer {
        let limit = limit.to_string();
        let sidecar = Sidecar::start(
            "rls_server.py",
            &["--port", "0", "--http-port", "0", "--limit", &limit],
            &["rls listening on ", "rls http listening on "],
            Duration::from_secs(20),
            "is grpcio installed in .venv?",
        );
        RlsServer {
            grpc_port: sidecar.port(0),
            http_port: sidecar.port(1),
            _process: sidecar,
        }
    }

    /// Every `ShouldRateLimit` call so far.
    fn calls(&self) -> Vec<Value> {
        let r = request(self.http_port, "GET", "/calls", &[], b"").expect("GET /calls");
        assert_eq!(r.status, 200);
        match serde_json::from_slice(&r.body).expect("calls JSON") {
            Value::Array(calls) => calls,
            other => panic!("calls is not an array: {other}"),
        }
    }

    /// Polls until at least `n` calls arrived (10 s at most), then returns all of them.
    fn wait_calls(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let calls = self.calls();
            if calls.len() >= n || Instant::now() > deadline {
                return calls;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Changes the server's behaviour (`limit`, `delay_ms`, `fail_status`).
    fn configure(&self, settings: &str) {
        let r = request(
            self.http_port,
            "POST",
            "/config",
            &[("content-type", "application/json")],
            settings.as_bytes(),
        )
        .expect("POST /config");
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

/// Plugin config: a large local window and mesh-wide windows on the `ratelimit` cluster.
fn plugin_config(global: Value) -> String {
    serde_json::json!({
        "budgets": {
            "windows": [{"period": "day", "max_tokens": 100_000_000u64}],
            "default_max_tokens": 1,
            "global": global
        }
    })
    .to_string()
}

fn global(extra: Value) -> Value {
    let mut g = serde_json::json!({
        "cluster": "ratelimit",
        "timeout_ms": 1000,
        "windows": [{"period": "minute", "max_tokens": 5000, "max_requests": 50}]
    });
    if let (Some(g), Some(extra)) = (g.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            g.insert(k.clone(), v.clone());
        }
    }
    g
}

struct Stack {
    // Field order is drop order: Envoy stops before its upstreams.
    envoy: Envoy,
    mock: MockHandle,
    rls: RlsServer,
}

fn start_with(rls_limit: u64, plugin: &str) -> Stack {
    let rls = RlsServer::start(rls_limit);
    let mock = MockProvider::start(MockOptions::default()).expect("mock starts");
    let envoy = Envoy::start(
        &template("e2e/configs/global_budget.yaml"),
        Vars::new()
            .set("UPSTREAM_PORT", mock.port())
            .set("RLS_PORT", rls.grpc_port)
            .plugin_config(plugin),
    );
    Stack { envoy, mock, rls }
}

fn chat(text: &str, max_tokens: Option<u64>) -> String {
    let mut v = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": text}],
    });
    if let Some(n) = max_tokens {
        v["max_tokens"] = n.into();
    }
    v.to_string()
}

fn post(stack: &Stack, headers: &[(&str, &str)], body: &str) -> Response {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    request(
        stack.envoy.port,
        "POST",
        "/v1/chat/completions",
        &all,
        body.as_bytes(),
    )
    .expect("request through envoy")
}

fn total_tokens(r: &Response) -> u64 {
    let body = r.json().expect("JSON completion");
    body["usage"]["total_tokens"]
        .as_u64()
        .unwrap_or_else(|| panic!("usage.total_tokens in {body}"))
}

/// One descriptor as the stub recorded it.
#[derive(Debug)]
struct Recorded {
    entries: Vec<(String, String)>,
    /// The descriptor's own `hits_addend`.
    hits: Option<u64>,
    /// Its `RateLimitOverride` as (requests_per_unit, unit).
    limit: Option<(u64, u64)>,
}

fn descriptors(call: &Value) -> Vec<Recorded> {
    call["descriptors"]
        .as_array()
        .expect("descriptors array")
        .iter()
        .map(|d| {
            let entries = d["entries"]
                .as_array()
                .expect("entries")
                .iter()
                .map(|e| {
                    (
                        e[0].as_str().expect("key").to_string(),
                        e[1].as_str().expect("value").to_string(),
                    )
                })
                .collect();
            let limit = d["limit"]
                .as_array()
                .map(|l| (l[0].as_u64().expect("rpu"), l[1].as_u64().expect("unit")));
            Recorded {
                entries,
                hits: d["hits_addend"].as_u64(),
                limit,
            }
        })
        .collect()
}

fn e(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

#[test]
fn admission_reserves_every_window_with_its_limit_and_only_a_remainder_is_charged_later() {
    let stack = start_with(1_000_000, &plugin_config(global(serde_json::json!({}))));
    let user = key_identity("k1");

    // With max_tokens the reservation covers the answer: one call, at admission.
    let r = post(
        &stack,
        &[("x-api-key", "k1")],
        &chat("hello there", Some(50)),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let calls = stack.rls.wait_calls(1);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(stack.rls.calls().len(), 1, "nothing left to charge");
    let call = &calls[0];
    assert_eq!(call["domain"], "tollgate");
    assert_eq!(call["overall"], "OK", "{call}");
    let d = descriptors(call);
    assert_eq!(d.len(), 2, "{call}");
    assert_eq!(
        d[0].entries,
        vec![
            e("user", &user),
            e("window", "minute"),
            e("measure", "tokens")
        ]
    );
    assert_eq!(
        d[0].limit,
        Some((5000, 2)),
        "the window's limit rides along"
    );
    let reserved = d[0].hits.expect("hits_addend");
    assert!(reserved >= 50, "prompt estimate + max_tokens: {reserved}");
    assert_eq!(
        d[1].entries,
        vec![
            e("user", &user),
            e("window", "minute"),
            e("measure", "requests")
        ]
    );
    assert_eq!((d[1].hits, d[1].limit), (Some(1), Some((50, 2))));
    assert!(total_tokens(&r) <= reserved);
    assert!(r.header("x-ratelimit-remaining-tokens").is_some());

    // Without max_tokens (default 1) the answer outgrows the reservation: the remainder follows.
    let r = post(
        &stack,
        &[("x-api-key", "k1")],
        &chat("a question with a longer answer", None),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let calls = stack.rls.wait_calls(3);
    assert_eq!(calls.len(), 3, "{calls:#?}");
    let reserved = descriptors(&calls[1])[0].hits.expect("hits");
    let remainder = descriptors(&calls[2]);
    assert_eq!(remainder.len(), 1, "tokens only: {:?}", calls[2]);
    assert_eq!(remainder[0].entries[2], e("measure", "tokens"));
    assert_eq!(remainder[0].limit, Some((5000, 2)));
    assert_eq!(
        remainder[0].hits,
        Some(total_tokens(&r) - reserved),
        "actual − reserved"
    );
    let stats = stack.mock.stats();
    assert_eq!(stats.requests, 2);
}

#[test]
fn a_jwt_caller_is_counted_under_its_subject_in_its_class() {
    let secret = [42u8; 32];
    let issuer = "https://issuer.tollgate.test";
    let config = serde_json::json!({
        "budgets": {
            "windows": [{"period": "day", "max_tokens": 100_000_000u64}],
            "global": {
                "cluster": "ratelimit", "domain": "mesh", "descriptor_key": "subject",
                "class_claim": "tier",
                "windows": [{"period": "minute", "max_tokens": 100}],
                "classes": {"gold": [{"period": "hour", "max_tokens": 90000},
                                     {"period": "day", "max_requests": 500, "per": "class"}]}
            }
        },
        "jwt": {
            "providers": [{
                "name": "test",
                "issuer": issuer,
                "local_jwks": {"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": base64url(&secret)}]}
            }],
            "rules": [{"path_prefix": "/v1/", "requires": {"provider": "test"}}]
        }
    })
    .to_string();
    let stack = start_with(1_000_000, &config);
    let token = hs256_token(&secret, "alice", issuer, "gold");
    let auth = format!("Bearer {token}");
    let r = post(
        &stack,
        &[("authorization", &auth)],
        &chat("hello from alice", Some(10)),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let calls = stack.rls.wait_calls(1);
    assert_eq!(calls[0]["domain"], "mesh");
    let d = descriptors(&calls[0]);
    assert_eq!(
        d[0].entries,
        vec![
            e("subject", "alice"),
            e("window", "hour"),
            e("measure", "tokens")
        ]
    );
    assert_eq!(d[0].limit, Some((90000, 3)));
    assert_eq!(
        d[1].entries,
        vec![
            e("class", "gold"),
            e("window", "day"),
            e("measure", "requests")
        ]
    );
    assert_eq!(d[1].limit, Some((500, 4)));
}

#[test]
fn a_caller_without_a_key_is_counted_by_address() {
    let stack = start_with(1_000_000, &plugin_config(global(serde_json::json!({}))));
    let r = post(&stack, &[], &chat("anonymous", Some(20)));
    assert_eq!(r.status, 200, "{}", r.text());
    let calls = stack.rls.wait_calls(1);
    assert_eq!(
        descriptors(&calls[0])[0].entries[0],
        e("user", "ip:127.0.0.1")
    );
}

#[test]
fn over_limit_refuses_and_errors_and_slowness_follow_failure_mode() {
    // The stub counts descriptors against its own limit of 1 when told: everything is over.
    let stack = start_with(
        1_000_000,
        &plugin_config(global(serde_json::json!({"timeout_ms": 300}))),
    );
    stack.rls.configure(r#"{"limit": 1}"#);
    let r = post(&stack, &[("x-api-key", "k9")], &chat("over", Some(20)));
    assert_eq!(r.status, 429, "{}", r.text());
    let body = r.json().expect("JSON");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(r.header("retry-after").is_some());
    assert_eq!(stack.mock.stats().requests, 0, "no provider was called");

    // gRPC UNAVAILABLE: served (fail-open), counted.
    stack
        .rls
        .configure(r#"{"limit": 1000000, "fail_status": 14}"#);
    let r = post(
        &stack,
        &[("x-api-key", "k9")],
        &chat("unavailable", Some(20)),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Slower than timeout_ms (300): served once the timeout passed, not after the 3 s delay.
    stack
        .rls
        .configure(r#"{"fail_status": null, "delay_ms": 3000}"#);
    let started = Instant::now();
    let r = post(&stack, &[("x-api-key", "k9")], &chat("slow", Some(20)));
    assert_eq!(r.status, 200, "{}", r.text());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(2500),
        "waited {waited:?}"
    );
    assert_eq!(
        stack.envoy.stat_sum(
            "tollgate_global_budget_admissions_total",
            "outcome=.=failed_open;.;"
        ),
        2
    );
    assert_eq!(
        stack.envoy.stat_sum(
            "tollgate_global_budget_admissions_total",
            "outcome=.=over_limit;.;"
        ),
        1
    );
}

#[test]
fn a_global_budget_naming_a_cluster_envoy_lacks_never_kills_the_vm() {
    let mock = MockProvider::start(MockOptions::default()).expect("mock starts");
    let config = plugin_config(global(serde_json::json!({"cluster": "no_such_cluster"})));
    let envoy = Envoy::start(
        &template("e2e/configs/global_budget.yaml"),
        Vars::new()
            .set("UPSTREAM_PORT", mock.port())
            .set("RLS_PORT", 1)
            .plugin_config(&config),
    );
    for i in 0..4 {
        let resp = request(
            envoy.port,
            "POST",
            "/v1/chat/completions",
            &[
                ("content-type", "application/json"),
                ("x-api-key", "k-missing"),
            ],
            chat(&format!("hello {i}"), None).as_bytes(),
        )
        .expect("request through envoy");
        assert_eq!(resp.status, 200, "request {i}: {}", resp.text());
        // Let the root context's tick try to send the charge.
        std::thread::sleep(std::time::Duration::from_millis(400));
    }
    let log = envoy.log();
    assert!(!log.contains("tollgate panic"), "{log}");
    assert_eq!(
        envoy.stat_sum(
            "tollgate_global_budget_admissions_total",
            "outcome=.=failed_open;.;"
        ),
        4,
        "Envoy refuses the call at once: each admission fails open"
    );
    assert!(
        envoy.stat_sum("tollgate_global_budget_charges_total", "outcome=.=error;.;") > 0,
        "each refused charge is counted as an error"
    );
    assert_eq!(
        envoy.stat_sum("tollgate_global_budget_charges_total", "outcome=.=sent;.;"),
        0
    );
}

/// An HS256 JWT minted with the venv's Python standard library (hmac + hashlib).
fn hs256_token(secret: &[u8], sub: &str, issuer: &str, tier: &str) -> String {
    let script = r#"
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
secret, sub, iss, tier = bytes.fromhex(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
now = int(time.time())
head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
body = b64(json.dumps({"sub": sub, "iss": iss, "tier": tier, "iat": now, "exp": now + 600}).encode())
sig = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
"#;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let out = Command::new(repo_root().join(".venv/bin/python"))
        .args(["-c", script, &hex, sub, issuer, tier])
        .output()
        .expect("run python to mint a token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 token")
        .trim()
        .to_string()
}
