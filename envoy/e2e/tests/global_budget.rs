//! Mesh-wide token budgets end to end: real Envoy 1.40 + tollgate.wasm charge every finished
//! LLM request's tokens to a global rate limit service speaking
//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit` over gRPC (HTTP/2). The service
//! is `envoy/e2e/rls_server.py` (grpcio, hand-coded protobuf), which records every call and
//! serves them as JSON on its HTTP port, so the tests can check what was charged.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tollgate_e2e::base64url;

use serde_json::Value;
use tollgate_e2e::mock::client::request;
use tollgate_e2e::mock::{MockHandle, MockOptions, MockProvider};
use tollgate_e2e::{repo_root, temp_dir, template, Envoy, Vars};

/// The identity tollgate derives from an API key: `key:` + FNV-1a 64 of the key, in hex.
fn key_identity(key: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("key:{hash:016x}")
}

/// The RLS test server, killed on drop (printing its stderr if the test failed).
struct RlsServer {
    child: Option<Child>,
    grpc_port: u16,
    http_port: u16,
    stderr_path: PathBuf,
}

impl RlsServer {
    /// Starts `rls_server.py` from the project venv on OS-chosen ports.
    fn start(limit: u64) -> RlsServer {
        let python = repo_root().join(".venv/bin/python");
        let script = repo_root().join("envoy/e2e/rls_server.py");
        let dir = temp_dir("rls");
        let stderr_path = dir.join("rls.stderr");
        let mut child = Command::new(&python)
            .arg(&script)
            .args(["--port", "0", "--http-port", "0", "--limit"])
            .arg(limit.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                fs::File::create(&stderr_path).expect("create rls stderr file"),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} {}: {e}", python.display(), script.display()));
        let stdout = child.stdout.take().expect("rls stdout piped");
        let mut server = RlsServer {
            child: Some(child),
            grpc_port: 0,
            http_port: 0,
            stderr_path,
        };
        // The server prints `rls listening on <grpc>` then `rls http listening on <http>`.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while server.grpc_port == 0 || server.http_port == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "rls server did not report its ports (is grpcio installed in .venv?):\n{}",
                    server.stderr()
                )
            });
            let port = line.rsplit(' ').next().and_then(|p| p.parse().ok());
            if line.starts_with("rls http listening on ") {
                server.http_port = port.expect("http port");
            } else if line.starts_with("rls listening on ") {
                server.grpc_port = port.expect("grpc port");
            }
        }
        server
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
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

impl Drop for RlsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- rls server stderr ----\n{}", self.stderr());
        }
    }
}

/// Plugin config with a large local window and the global budget on the `ratelimit` cluster.
const PLUGIN_CONFIG: &str = r#"{
  "budgets": {
    "windows": [{"period": "day", "max_tokens": 100000000}],
    "global": {"cluster": "ratelimit", "domain": "tollgate", "descriptor_key": "user", "timeout_ms": 1000}
  }
}"#;

struct Stack {
    // Field order is drop order: Envoy stops before its upstreams.
    envoy: Envoy,
    mock: MockHandle,
    rls: RlsServer,
}

fn start(rls_limit: u64) -> Stack {
    let rls = RlsServer::start(rls_limit);
    let mock = MockProvider::start(MockOptions::default()).expect("mock starts");
    let envoy = Envoy::start(
        &template("e2e/configs/global_budget.yaml"),
        Vars::new()
            .set("UPSTREAM_PORT", mock.port())
            .set("RLS_PORT", rls.grpc_port)
            .plugin_config(PLUGIN_CONFIG),
    );
    Stack { envoy, mock, rls }
}

fn chat(text: &str) -> String {
    serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": text}],
    })
    .to_string()
}

/// Sends one chat completion with `x-api-key: key`; returns the usage total the provider reported.
fn send_chat(stack: &Stack, key: &str, text: &str) -> u64 {
    let resp = request(
        stack.envoy.port,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json"), ("x-api-key", key)],
        chat(text).as_bytes(),
    )
    .expect("request through envoy");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.json().expect("JSON completion");
    body["usage"]["total_tokens"]
        .as_u64()
        .unwrap_or_else(|| panic!("usage.total_tokens in {body}"))
}

/// The single descriptor of a call: (entries, charged hits).
fn descriptor(call: &Value) -> (Vec<(String, String)>, u64) {
    let descriptors = call["descriptors"].as_array().expect("descriptors array");
    assert_eq!(descriptors.len(), 1, "one descriptor per call: {call}");
    let d = &descriptors[0];
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
    (entries, d["hits"].as_u64().expect("hits"))
}

fn is_key_identity(value: &str) -> bool {
    value
        .strip_prefix("key:")
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn every_finished_request_charges_its_tokens_to_the_global_service() {
    let stack = start(1_000_000);
    let texts = [
        "hi",
        "a somewhat longer question about token budgets",
        "x",
        "what is the capital of France? answer briefly please, thanks",
        "one more",
    ];
    let mut per_request: Vec<u64> = texts.iter().map(|t| send_chat(&stack, "k1", t)).collect();

    let calls = stack.rls.wait_calls(texts.len());
    // Let any stray extra call arrive before counting.
    std::thread::sleep(Duration::from_millis(700));
    let calls_after = stack.rls.calls();
    assert_eq!(
        calls_after.len(),
        texts.len(),
        "one charge per finished request: {calls_after:#?}"
    );
    assert_eq!(calls.len(), calls_after.len());

    let user = key_identity("k1");
    let mut charged = Vec::new();
    for call in &calls_after {
        assert_eq!(call["domain"], "tollgate", "{call}");
        assert!(call["error"].is_null(), "{call}");
        assert_eq!(call["overall"], "OK", "{call}");
        let (entries, hits) = descriptor(call);
        assert_eq!(entries.len(), 1, "{call}");
        assert_eq!(entries[0].0, "user", "{call}");
        assert!(is_key_identity(&entries[0].1), "{call}");
        assert_eq!(entries[0].1, user, "hashed x-api-key, never the key itself");
        assert!(
            call["descriptors"][0]["hits_addend"].as_u64().is_some(),
            "tokens are charged through the descriptor's hits_addend: {call}"
        );
        charged.push(hits);
    }

    let stats = stack.mock.stats();
    let reported = stats.prompt_tokens + stats.completion_tokens;
    assert_eq!(charged.iter().sum::<u64>(), reported, "sum of hits_addend");
    assert_eq!(per_request.iter().sum::<u64>(), reported);
    // Each call charges exactly one request's total (order of arrival may differ).
    charged.sort_unstable();
    per_request.sort_unstable();
    assert_eq!(charged, per_request);

    let prom = stack.envoy.prometheus();
    assert!(
        prom.contains("tollgate_global_budget_charges_total"),
        "charge counter missing:\n{prom}"
    );
}

#[test]
fn each_api_key_is_charged_to_its_own_descriptor() {
    let stack = start(1_000_000);
    let a = send_chat(&stack, "k1", "first user asks something") + send_chat(&stack, "k1", "again");
    let b = send_chat(&stack, "k2", "second user asks something else entirely");

    let calls = stack.rls.wait_calls(3);
    assert_eq!(calls.len(), 3, "{calls:#?}");
    let mut per_user = std::collections::BTreeMap::<String, u64>::new();
    for call in &calls {
        let (entries, hits) = descriptor(call);
        *per_user.entry(entries[0].1.clone()).or_default() += hits;
    }
    assert_eq!(per_user.len(), 2, "{per_user:?}");
    assert_eq!(per_user.get(&key_identity("k1")), Some(&a));
    assert_eq!(per_user.get(&key_identity("k2")), Some(&b));
}

#[test]
fn charging_is_not_admission_over_limit_and_failing_service_do_not_block_requests() {
    // A limit of 1 token: every charge is OVER_LIMIT, yet requests keep being served, because the
    // filter only charges after the fact (it does not ask before admitting).
    let stack = start(1);
    send_chat(&stack, "k1", "hello there");
    send_chat(&stack, "k1", "hello again");
    let calls = stack.rls.wait_calls(2);
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert!(
        calls.iter().all(|c| c["overall"] == "OVER_LIMIT"),
        "{calls:#?}"
    );

    // The service now fails every call (gRPC UNAVAILABLE): requests are still served.
    stack.rls.configure(r#"{"fail_status": 14}"#);
    send_chat(&stack, "k1", "still served");
    let calls = stack.rls.wait_calls(3);
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert_eq!(calls[2]["overall"], "ERROR");

    // And when it is slower than the call timeout (1 s): still served, and promptly.
    stack
        .rls
        .configure(r#"{"fail_status": null, "delay_ms": 3000}"#);
    let started = Instant::now();
    send_chat(&stack, "k1", "slow service");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "request waited for the rate limit service: {:?}",
        started.elapsed()
    );
    let calls = stack.rls.wait_calls(4);
    assert_eq!(calls.len(), 4, "{calls:#?}");
}

#[test]
fn a_caller_without_a_key_is_charged_to_its_address() {
    let stack = start(1_000_000);
    let resp = request(
        stack.envoy.port,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        chat("anonymous").as_bytes(),
    )
    .expect("request through envoy");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let total = resp.json().expect("JSON")["usage"]["total_tokens"]
        .as_u64()
        .expect("usage");
    let calls = stack.rls.wait_calls(1);
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let (entries, hits) = descriptor(&calls[0]);
    assert_eq!(
        entries,
        vec![("user".to_string(), "ip:127.0.0.1".to_string())]
    );
    assert_eq!(hits, total);
}

/// An HS256 JWT minted with the venv's Python standard library (hmac + hashlib).
fn hs256_token(secret: &[u8], sub: &str, issuer: &str) -> String {
    let script = r#"
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
secret, sub, iss = bytes.fromhex(sys.argv[1]), sys.argv[2], sys.argv[3]
now = int(time.time())
head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
body = b64(json.dumps({"sub": sub, "iss": iss, "iat": now, "exp": now + 600}).encode())
sig = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
"#;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let out = Command::new(repo_root().join(".venv/bin/python"))
        .args(["-c", script, &hex, sub, issuer])
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

#[test]
fn a_jwt_caller_is_charged_to_its_subject() {
    let secret = [42u8; 32];
    let issuer = "https://issuer.tollgate.test";
    let config = serde_json::json!({
        "budgets": {
            "windows": [{"period": "day", "max_tokens": 100_000_000u64}],
            "global": {"cluster": "ratelimit", "domain": "mesh", "descriptor_key": "subject"}
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
    let rls = RlsServer::start(1_000_000);
    let mock = MockProvider::start(MockOptions::default()).expect("mock starts");
    let envoy = Envoy::start(
        &template("e2e/configs/global_budget.yaml"),
        Vars::new()
            .set("UPSTREAM_PORT", mock.port())
            .set("RLS_PORT", rls.grpc_port)
            .plugin_config(&config),
    );
    let token = hs256_token(&secret, "alice", issuer);
    let resp = request(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &[
            ("content-type", "application/json"),
            ("authorization", &format!("Bearer {token}")),
        ],
        chat("hello from alice").as_bytes(),
    )
    .expect("request through envoy");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let total = resp.json().expect("JSON")["usage"]["total_tokens"]
        .as_u64()
        .expect("usage");

    let calls = rls.wait_calls(1);
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0]["domain"], "mesh");
    let (entries, hits) = descriptor(&calls[0]);
    assert_eq!(entries, vec![("subject".to_string(), "alice".to_string())]);
    assert_eq!(hits, total);
    let stats = mock.stats();
    assert_eq!(hits, stats.prompt_tokens + stats.completion_tokens);
    drop(envoy);
}

#[test]
fn a_global_budget_naming_a_cluster_envoy_lacks_never_kills_the_vm() {
    let mock = MockProvider::start(MockOptions::default()).expect("mock starts");
    let config = PLUGIN_CONFIG.replace(
        "\"cluster\": \"ratelimit\"",
        "\"cluster\": \"no_such_cluster\"",
    );
    assert!(config.contains("no_such_cluster"));
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
            chat(&format!("hello {i}")).as_bytes(),
        )
        .expect("request through envoy");
        assert_eq!(resp.status, 200, "request {i}: {}", resp.text());
        // Let the root context's tick try to send the charge.
        std::thread::sleep(std::time::Duration::from_millis(400));
    }
    let log = envoy.log();
    assert!(!log.contains("tollgate panic"), "{log}");
    let stats = envoy.admin("/stats");
    let charges: Vec<&str> = stats
        .lines()
        .filter(|l| l.contains("tollgate_global_budget_charges_total"))
        .collect();
    assert!(
        charges.iter().any(|l| l
            .contains("outcome=.=error;.;tollgate_global_budget_charges_total: ")
            && !l.ends_with(": 0")),
        "each refused charge is counted as an error: {charges:?}"
    );
    assert!(
        !charges
            .iter()
            .any(|l| l.contains("outcome=.=sent;.;tollgate_global_budget_charges_total:")),
        "{charges:?}"
    );
}
