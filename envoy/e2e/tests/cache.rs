//! The response cache on a real Envoy 1.40: a repeated deterministic request is answered from
//! proxy-wasm shared data without calling the provider (the mock counts every request it gets),
//! a stored stream is replayed as a stream the official OpenAI Python SDK reads, another caller
//! (scope `user`) misses, `Cache-Control: no-cache` bypasses, errors are never stored, and under
//! load the entries and bytes gauges never exceed the configured bounds.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tollgate_e2e::mock::client::{request, Response};
use tollgate_e2e::mock::{Faults, MockHandle, MockOptions, MockProvider};
use tollgate_e2e::{repo_root, template, Envoy, Vars};

const CHAT: &str = "/v1/chat/completions";

fn start(cache: Value) -> (MockHandle, Envoy) {
    let mock = MockProvider::start(MockOptions::default()).unwrap();
    let envoy = Envoy::start(
        &template("e2e/configs/basic.yaml"),
        Vars::new()
            .set("UPSTREAM_PORT", mock.port())
            .plugin_config(&json!({ "cache": cache }).to_string()),
    );
    (mock, envoy)
}

fn default_cache() -> Value {
    json!({ "rules": [{ "path_prefix": "/v1/" }], "scope": "user" })
}

fn body(content: &str, extra: Value) -> String {
    let mut b = json!({
        "model": "gpt-4o-mini",
        "temperature": 0,
        "messages": [{ "role": "user", "content": content }],
    });
    if let (Some(b), Some(extra)) = (b.as_object_mut(), extra.as_object()) {
        b.extend(extra.clone());
    }
    b.to_string()
}

fn chat(envoy: &Envoy, key: &str, body: &str, headers: &[(&str, &str)]) -> Response {
    let auth = format!("Bearer {key}");
    let mut all = vec![
        ("content-type", "application/json"),
        ("authorization", auth.as_str()),
    ];
    all.extend_from_slice(headers);
    request(envoy.port, "POST", CHAT, &all, body.as_bytes()).unwrap()
}

fn cache_header(r: &Response) -> Option<&str> {
    r.header("x-tollgate-cache")
}

/// A `tollgate_*` stat's value from `/stats` (0 when absent).
fn stat(envoy: &Envoy, name: &str) -> u64 {
    let stats = envoy.admin("/stats?filter=tollgate_cache");
    stats
        .lines()
        .find_map(|l| {
            let (n, v) = l.rsplit_once(": ")?;
            n.ends_with(name).then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// The Python with the OpenAI SDK: `TOLLGATE_E2E_PYTHON`, else the project venv (`make setup`
/// installs the SDK there).
fn sdk_python() -> std::path::PathBuf {
    std::env::var_os("TOLLGATE_E2E_PYTHON")
        .map(Into::into)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"))
}

/// Runs one request through the official OpenAI SDK; what it read, as JSON.
fn sdk_chat(envoy: &Envoy, key: &str, request: &Value, stream: bool) -> Value {
    let mut cmd = Command::new(sdk_python());
    cmd.arg(repo_root().join("envoy/e2e/openai_sdk_chat.py"))
        .arg(format!("http://127.0.0.1:{}/v1", envoy.port))
        .arg(key)
        .arg(request.to_string());
    if stream {
        cmd.arg("stream");
    }
    let out = cmd
        .output()
        .expect("run the OpenAI SDK script (make setup installs it)");
    assert!(
        out.status.success(),
        "the OpenAI SDK failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        envoy
            .log()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

#[test]
fn a_second_identical_request_is_served_from_the_cache_without_a_provider_call() {
    let (mock, envoy) = start(default_cache());
    let b = body("What is a toll road?", json!({}));
    let first = chat(&envoy, "alice-key", &b, &[]);
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(cache_header(&first), Some("miss"));
    assert_eq!(mock.stats().requests, 1);
    // Key order and whitespace do not matter.
    let reordered = r#"{ "messages": [{"content": "What is a toll road?", "role": "user"}], "temperature": 0.0, "model": "gpt-4o-mini" }"#;
    let second = chat(&envoy, "alice-key", reordered, &[]);
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(cache_header(&second), Some("hit"));
    assert_eq!(mock.stats().requests, 1, "a hit calls no provider");
    assert_eq!(second.body, first.body, "the client gets the stored answer");
    assert!(second.header("age").is_some());
    assert!(second.header("x-request-id").is_some());
    assert_eq!(stat(&envoy, "tollgate_cache_hits_total"), 1);
    assert_eq!(stat(&envoy, "tollgate_cache_misses_total"), 1);
    assert!(stat(&envoy, "tollgate_cache_bytes") > 0);
    assert_eq!(stat(&envoy, "tollgate_cache_entries"), 1);
    let stats = envoy.admin("/stats?filter=tollgate_llm_requests_total");
    assert!(
        stats.contains("provider=.=cache;.;"),
        "the hit is accounted under provider cache:\n{stats}"
    );
}

#[test]
fn a_stored_stream_is_replayed_as_a_stream_the_openai_sdk_reads() {
    let (mock, envoy) = start(default_cache());
    let req = json!({
        "model": "gpt-4o-mini",
        "temperature": 0,
        "messages": [{ "role": "user", "content": "Tell me about toll roads in one line" }],
    });
    let first = sdk_chat(&envoy, "alice-key", &req, true);
    assert_eq!(first["cache"], "miss");
    assert_eq!(mock.stats().requests, 1);
    let content = first["content"].as_str().unwrap().to_string();
    assert!(content.contains("mock"), "{first}");
    let second = sdk_chat(&envoy, "alice-key", &req, true);
    assert_eq!(second["cache"], "hit");
    assert_eq!(mock.stats().requests, 1, "the replay calls no provider");
    assert_eq!(second["content"], content);
    assert_eq!(second["finish_reason"], "stop");
    assert_eq!(
        second["usage"]["total_tokens"],
        first["usage"]["total_tokens"]
    );
    assert!(second["usage"]["total_tokens"].as_u64().unwrap() > 0);
    // A JSON client gets the assembled answer.
    let json_client = sdk_chat(&envoy, "alice-key", &req, false);
    assert_eq!(json_client["cache"], "hit");
    assert_eq!(json_client["content"], content);
    assert_eq!(
        json_client["usage"]["total_tokens"],
        first["usage"]["total_tokens"]
    );
    assert_eq!(mock.stats().requests, 1);
}

#[test]
fn another_caller_misses_and_the_client_can_bypass() {
    let (mock, envoy) = start(default_cache());
    let b = body("Who pays for roads?", json!({}));
    assert_eq!(
        cache_header(&chat(&envoy, "alice-key", &b, &[])),
        Some("miss")
    );
    let bob = chat(&envoy, "bob-key", &b, &[]);
    assert_eq!(
        cache_header(&bob),
        Some("miss"),
        "never served to another scope"
    );
    assert_eq!(mock.stats().requests, 2);
    assert_eq!(
        cache_header(&chat(&envoy, "alice-key", &b, &[])),
        Some("hit")
    );
    let refused = chat(&envoy, "alice-key", &b, &[("cache-control", "no-cache")]);
    assert_eq!(cache_header(&refused), Some("bypass"));
    assert_eq!(mock.stats().requests, 3);
    let random = body("Who pays for roads?", json!({ "temperature": 0.9 }));
    assert_eq!(
        cache_header(&chat(&envoy, "alice-key", &random, &[])),
        Some("bypass")
    );
    let opted_in = chat(
        &envoy,
        "alice-key",
        &random,
        &[("x-tollgate-cache-opt-in", "true")],
    );
    assert_eq!(cache_header(&opted_in), Some("miss"));
    assert_eq!(mock.stats().requests, 5);
}

#[test]
fn errors_are_never_stored() {
    let (mock, envoy) = start(default_cache());
    mock.set_faults(Faults {
        status: Some(500),
        count: Some(1),
        ..Faults::default()
    });
    let b = body("Is this cached?", json!({}));
    let failed = chat(&envoy, "alice-key", &b, &[]);
    assert_eq!(failed.status, 500);
    assert_eq!(cache_header(&failed), Some("miss"));
    let retried = chat(&envoy, "alice-key", &b, &[]);
    assert_eq!(retried.status, 200);
    assert_eq!(
        cache_header(&retried),
        Some("miss"),
        "the error was not stored"
    );
    assert_eq!(
        cache_header(&chat(&envoy, "alice-key", &b, &[])),
        Some("hit")
    );
    assert_eq!(mock.stats().requests, 2);
}

#[test]
fn the_memory_bound_holds_under_load() {
    // 64 entries in 4 sets of 16; 8 KiB in all, so 2 KiB per set: the byte bound binds first.
    let (mock, envoy) = start(json!({
        "rules": [{ "path_prefix": "/v1/" }],
        "scope": "shared",
        "max_entries": 64,
        "max_bytes": 8192,
        "max_entry_bytes": 2048,
    }));
    let done = Arc::new(AtomicBool::new(false));
    // Samples taken: the clients keep loading until the sampler has seen the cache under load.
    let sampled = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let done = Arc::clone(&done);
        let sampled = Arc::clone(&sampled);
        let admin = envoy.admin_port;
        std::thread::spawn(move || {
            let mut max = (0u64, 0u64);
            let mut samples = 0;
            while !done.load(Ordering::Relaxed) {
                if let Ok(r) = request(admin, "GET", "/stats?filter=tollgate_cache_", &[], b"") {
                    let text = String::from_utf8_lossy(&r.body).into_owned();
                    let read = |name: &str| {
                        text.lines()
                            .find_map(|l| {
                                let (n, v) = l.rsplit_once(": ")?;
                                n.ends_with(name).then(|| v.trim().parse::<u64>().ok())?
                            })
                            .unwrap_or(0)
                    };
                    max.0 = max.0.max(read("tollgate_cache_entries"));
                    max.1 = max.1.max(read("tollgate_cache_bytes"));
                    samples += 1;
                    sampled.store(samples, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (max, samples)
        })
    };
    let port = envoy.port;
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let sampled = Arc::clone(&sampled);
            std::thread::spawn(move || {
                let mut i = 0;
                // At least 60 distinct requests each, and on until the sampler saw the load.
                while i < 60 || sampled.load(Ordering::Relaxed) < 6 {
                    i += 1;
                    let b = body(&format!("load {c} {i}"), json!({ "seed": c * 1000 + i }));
                    let r = request(
                        port,
                        "POST",
                        CHAT,
                        &[("content-type", "application/json")],
                        b.as_bytes(),
                    )
                    .unwrap();
                    assert_eq!(r.status, 200);
                }
                i
            })
        })
        .collect();
    let mut sent = 0;
    for c in clients {
        sent += c.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let ((max_entries, max_bytes), samples) = sampler.join().unwrap();
    let entries = stat(&envoy, "tollgate_cache_entries");
    let bytes = stat(&envoy, "tollgate_cache_bytes");
    let evicted = stat(&envoy, "reason=.=lru;.;tollgate_cache_evictions_total");
    eprintln!(
        "after {sent} distinct requests: {entries} entries, {bytes} bytes, {evicted} evictions; \
         max seen over {samples} samples: {max_entries} entries, {max_bytes} bytes"
    );
    assert!(samples > 5);
    assert!(max_entries <= 64 && entries <= 64);
    assert!(max_bytes <= 8192 && bytes <= 8192);
    assert!(evicted > 100, "the load must evict: {evicted}");
    assert!(entries > 0 && bytes > 2048, "the cache stays in use");
    assert_eq!(mock.stats().requests, sent as u64);
}
