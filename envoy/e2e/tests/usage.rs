//! Real Envoy 1.40 + tollgate.wasm in front of the mock provider: token-usage accounting end to
//! end. Streams pass through unchanged (or with only the injected usage chunk removed), usage and
//! cost reach `/stats/prometheus` as labelled metrics and the JSON access log, truncated streams
//! are flagged, a 50 MB stream runs in flat memory, budgets stop one user's concurrent and
//! sequential requests, and Ollama NDJSON and Gemini SSE are counted under their providers.
//!
//! Envoy runs with `envoy/e2e/configs/usage.yaml`, which carries the `stats_config` of
//! `envoy/observability/stats-tags.yaml`; the first tests check those files agree with the
//! filter's tag names.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tollgate_e2e::mock::client::{self, request, Response};
use tollgate_e2e::mock::{MockHandle, MockOptions, MockProvider};
use tollgate_e2e::{read, repo_root, template, Envoy, Vars};

/// Prices of the model most tests use, per million tokens.
const INPUT_PER_MILLION: f64 = 0.15;
const OUTPUT_PER_MILLION: f64 = 0.6;
const PRICES: &str =
    r#"{"usage":{"prices":{"gpt-4o-mini":{"input_per_million":0.15,"output_per_million":0.6}}}}"#;

/// Serializes Envoy start-ups: the concurrency test sets `ENVOY_CONCURRENCY`, which the harness
/// reads while starting, and no other test may read the environment meanwhile.
static START_LOCK: Mutex<()> = Mutex::new(());

/// A mock provider and Envoy (with `usage.yaml`) in front of it.
fn start(plugin_config: &str) -> (MockHandle, Envoy) {
    start_with_workers(plugin_config, None)
}

/// Like [`start`], with `workers` Envoy worker threads instead of `$ENVOY_CONCURRENCY` (default 1).
fn start_with_workers(plugin_config: &str, workers: Option<u32>) -> (MockHandle, Envoy) {
    let mock = MockProvider::start(MockOptions::default()).expect("mock starts");
    let vars = Vars::new()
        .set("UPSTREAM_PORT", mock.port())
        .plugin_config(plugin_config);
    let _guard = START_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let envoy = match workers {
        None => Envoy::start(&template("e2e/configs/usage.yaml"), vars),
        Some(n) => {
            let previous = std::env::var_os("ENVOY_CONCURRENCY");
            std::env::set_var("ENVOY_CONCURRENCY", n.to_string());
            let started = std::panic::catch_unwind(|| {
                Envoy::start(&template("e2e/configs/usage.yaml"), vars)
            });
            match previous {
                Some(v) => std::env::set_var("ENVOY_CONCURRENCY", v),
                None => std::env::remove_var("ENVOY_CONCURRENCY"),
            }
            started.unwrap_or_else(|p| std::panic::resume_unwind(p))
        }
    };
    (mock, envoy)
}

fn post(port: u16, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    request(port, "POST", path, &all, body.as_bytes())
        .unwrap_or_else(|e| panic!("POST {path} on port {port}: {e}"))
}

/// The body with every `"created":<digits>` (the mock's Unix-seconds timestamp) zeroed.
fn without_timestamps(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let key = "\"created\":";
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_ref();
    while let Some(i) = rest.find(key) {
        out.push_str(&rest[..i + key.len()]);
        rest = rest[i + key.len()..].trim_start_matches(|c: char| c.is_ascii_digit());
        out.push('0');
    }
    out.push_str(rest);
    out
}

/// Value of the Prometheus sample `name{labels}` whose label set is exactly `labels`.
fn prom_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeSet<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value) = if let Some(r) = rest.strip_prefix('{') {
            let Some(end) = r.find('}') else { continue };
            (&r[..end], r[end + 1..].trim())
        } else if rest.starts_with(' ') {
            ("", rest.trim())
        } else {
            continue;
        };
        let got: BTreeSet<(String, String)> = label_text
            .split(',')
            .filter(|p| !p.is_empty())
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k.to_string(), v.trim_matches('"').to_string()))
            })
            .collect();
        if got == want {
            return value.parse().ok();
        }
    }
    None
}

/// Polls `/stats/prometheus` until `name{labels}` satisfies `ok` (histograms appear only after
/// a stats flush); panics with the whole exposition after 10 s.
fn wait_metric(
    envoy: &Envoy,
    name: &str,
    labels: &[(&str, &str)],
    ok: impl Fn(f64) -> bool,
) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = envoy.prometheus();
        if let Some(v) = prom_value(&text, name, labels) {
            if ok(v) {
                return v;
            }
        }
        if Instant::now() > deadline {
            panic!(
                "{name}{labels:?} = {:?}, not as expected; exposition:\n{text}",
                prom_value(&text, name, labels)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Asserts `name{labels}` becomes exactly `expected`.
fn assert_metric(envoy: &Envoy, name: &str, labels: &[(&str, &str)], expected: u64) {
    let v = wait_metric(envoy, name, labels, |v| v == expected as f64);
    assert_eq!(v, expected as f64);
}

/// The access-log entry of the request with `x-request-id: id`, waiting for it to be flushed.
fn access_entry(envoy: &Envoy, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for line in envoy.access_log() {
            let entry: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("access log line is not JSON ({e}): {line}"));
            if entry["request_id"] == id {
                return entry;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no access-log entry for {id}: {:?}",
            envoy.access_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// FNV-1a 64, as the filter hashes API keys into identities.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The microdollars the filter charges for one request (rounded per request).
fn micro_cost(input: u64, output: u64) -> u64 {
    let usd = input as f64 * INPUT_PER_MILLION / 1e6 + output as f64 * OUTPUT_PER_MILLION / 1e6;
    (usd * 1e6).round() as u64
}

fn chat(content: &str, extra: &str) -> String {
    format!(
        r#"{{"model":"gpt-4o-mini"{extra},"messages":[{{"role":"user","content":{}}}]}}"#,
        serde_json::to_string(content).unwrap()
    )
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

// ---------------------------------------------------------------------------------------------
// The stats_config files.

/// The `stats_config:` block of a YAML file (from that line to the end of its indented body).
fn stats_config_block(yaml: &str) -> String {
    let mut out = Vec::new();
    let mut inside = false;
    for line in yaml.lines() {
        if line.starts_with("stats_config:") {
            inside = true;
        } else if inside && !line.starts_with(' ') && !line.is_empty() {
            break;
        }
        if inside {
            out.push(line);
        }
    }
    out.join("\n")
}

#[test]
fn stats_tags_cover_exactly_the_filter_tag_names() {
    let accounting = read(&repo_root().join("filter/src/accounting.rs"));
    let start = accounting
        .find("pub const TAG_NAMES: &[&str] = &[")
        .expect("TAG_NAMES in accounting.rs");
    let end = start + accounting[start..].find("];").expect("end of TAG_NAMES");
    let filter_tags: Vec<String> = accounting[start..end]
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert!(filter_tags.len() >= 3, "{filter_tags:?}");

    let snippet = read(&repo_root().join("envoy/observability/stats-tags.yaml"));
    let block = stats_config_block(&snippet);
    let yaml_tags: Vec<String> = block
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- tag_name:"))
        .map(|t| t.trim().to_string())
        .collect();
    assert_eq!(yaml_tags, filter_tags, "stats-tags.yaml vs TAG_NAMES");
    for tag in &filter_tags {
        let regex = format!(r"regex: '(\.{tag}\.([A-Za-z0-9_-]+))(?:$|\.(?:");
        assert!(block.contains(&regex), "no extractor for {tag}:\n{block}");
        let alternatives = format!("(?:{})\\.)'", filter_tags.join("|"));
        assert!(block.contains(&alternatives), "{block}");
    }

    let usage_yaml = template("e2e/configs/usage.yaml");
    assert_eq!(
        stats_config_block(&usage_yaml),
        block,
        "usage.yaml must carry the stats_config of envoy/observability/stats-tags.yaml"
    );
}

// ---------------------------------------------------------------------------------------------
// 1. Streams through Envoy are byte-identical to the provider's.

#[test]
fn openai_stream_with_include_usage_is_byte_identical_to_the_direct_one() {
    let direct_mock = MockProvider::start(MockOptions::default()).unwrap();
    let (mock, envoy) = start(PRICES);
    let body = chat(
        "Tell me about toll roads in three words",
        r#","stream":true,"stream_options":{"include_usage":true}"#,
    );
    let direct = post(direct_mock.port(), "/v1/chat/completions", &[], &body);
    let proxied = post(envoy.port, "/v1/chat/completions", &[], &body);
    assert_eq!(direct.status, 200);
    assert_eq!(proxied.status, 200, "{}", proxied.text());
    assert_eq!(
        proxied.header("content-type"),
        direct.header("content-type")
    );
    // Both mocks number their first response 1; only the Unix-seconds `created` may differ.
    assert_eq!(
        without_timestamps(&proxied.body),
        without_timestamps(&direct.body),
        "the stream changed on its way through Envoy"
    );
    let events = proxied.sse_events();
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
    let usage_chunk = events
        .iter()
        .filter_map(|e| e.json())
        .find(|j| j["usage"].is_object())
        .expect("the client asked for the usage chunk and must get it");
    assert_eq!(
        usage_chunk["choices"].as_array().map(Vec::len),
        Some(0),
        "{usage_chunk}"
    );
    // The mock's recorded body is exactly what the client sent (nothing injected).
    assert_eq!(mock.requests().last().unwrap().body, body);
    let stats = mock.stats();
    let labels = |t| {
        [
            ("provider", "openai"),
            ("model", "gpt-4o-mini"),
            ("token_type", t),
        ]
    };
    assert_metric(
        &envoy,
        "tollgate_tokens_total",
        &labels("input"),
        stats.prompt_tokens,
    );
    assert_metric(
        &envoy,
        "tollgate_tokens_total",
        &labels("output"),
        stats.completion_tokens,
    );
}

#[test]
fn anthropic_stream_is_byte_identical_to_the_direct_one() {
    let direct_mock = MockProvider::start(MockOptions::default()).unwrap();
    let (mock, envoy) = start("{}");
    let body = r#"{"model":"claude-sonnet-4-5","max_tokens":256,"stream":true,"system":"Be brief.","messages":[{"role":"user","content":"Why do toll roads exist?"}]}"#;
    let headers = [("anthropic-version", "2023-06-01")];
    let direct = post(direct_mock.port(), "/v1/messages", &headers, body);
    let proxied = post(envoy.port, "/v1/messages", &headers, body);
    assert_eq!(direct.status, 200);
    assert_eq!(proxied.status, 200, "{}", proxied.text());
    assert_eq!(
        proxied.header("content-type"),
        direct.header("content-type")
    );
    assert_eq!(
        String::from_utf8_lossy(&proxied.body),
        String::from_utf8_lossy(&direct.body),
        "the Anthropic stream changed on its way through Envoy"
    );
    let events = proxied.sse_events();
    assert_eq!(
        events.first().and_then(|e| e.event.as_deref()),
        Some("message_start")
    );
    assert_eq!(
        events.last().and_then(|e| e.event.as_deref()),
        Some("message_stop")
    );
    assert_eq!(mock.requests().last().unwrap().body, body);
    let stats = mock.stats();
    let labels = |t| {
        [
            ("provider", "anthropic"),
            ("model", "claude-sonnet-4-5"),
            ("token_type", t),
        ]
    };
    assert_metric(
        &envoy,
        "tollgate_tokens_total",
        &labels("input"),
        stats.prompt_tokens,
    );
    assert_metric(
        &envoy,
        "tollgate_tokens_total",
        &labels("output"),
        stats.completion_tokens,
    );
}

// ---------------------------------------------------------------------------------------------
// 2. include_usage injection.

#[test]
fn openai_stream_without_include_usage_gets_no_usage_chunk_yet_is_counted() {
    let direct_mock = MockProvider::start(MockOptions::default()).unwrap();
    let (mock, envoy) = start(PRICES);
    let body = chat("Count the toll booths on the way", r#","stream":true"#);
    let proxied = post(envoy.port, "/v1/chat/completions", &[], &body);
    assert_eq!(proxied.status, 200, "{}", proxied.text());

    // The provider was asked for usage...
    let upstream = mock.requests().pop().expect("provider saw the request");
    let sent: Value = serde_json::from_str(&upstream.body).expect("JSON upstream body");
    assert_eq!(sent["stream_options"]["include_usage"], true, "{sent}");
    assert_eq!(
        upstream.header("content-length"),
        Some(upstream.body.len().to_string().as_str())
    );

    // ...but the client sees the stream it asked for: no usage-only chunk, [DONE] last, and the
    // same events and text as without tollgate.
    let events = proxied.sse_events();
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
    let chunks: Vec<Value> = events.iter().filter_map(|e| e.json()).collect();
    for c in &chunks {
        assert!(
            !c["usage"].is_object(),
            "usage chunk leaked to the client: {c}"
        );
        assert_ne!(
            c["choices"].as_array().map(Vec::len),
            Some(0),
            "choices:[] chunk leaked: {c}"
        );
    }
    let direct = post(direct_mock.port(), "/v1/chat/completions", &[], &body);
    let direct_events = direct.sse_events();
    assert_eq!(events.len(), direct_events.len(), "event count differs");
    let text = |evs: &[client::SseEvent]| -> String {
        evs.iter()
            .filter_map(|e| e.json())
            .filter_map(|j| {
                j["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect()
    };
    assert_eq!(text(&events), text(&direct_events));
    assert!(
        text(&events).starts_with("This is a mock"),
        "{}",
        text(&events)
    );

    // The usage the client never saw is still counted.
    let stats = mock.stats();
    assert!(
        stats.prompt_tokens > 0 && stats.completion_tokens > 0,
        "{stats:?}"
    );
    let labels = |t| {
        [
            ("provider", "openai"),
            ("model", "gpt-4o-mini"),
            ("token_type", t),
        ]
    };
    assert_metric(
        &envoy,
        "tollgate_tokens_total",
        &labels("input"),
        stats.prompt_tokens,
    );
    assert_metric(
        &envoy,
        "tollgate_tokens_total",
        &labels("output"),
        stats.completion_tokens,
    );
    assert_metric(
        &envoy,
        "tollgate_llm_requests_total",
        &[
            ("provider", "openai"),
            ("model", "gpt-4o-mini"),
            ("status_class", "2xx"),
            ("usage", "reported"),
        ],
        1,
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Prometheus labels and values.

#[test]
fn usage_and_cost_are_labelled_prometheus_metrics_equal_to_the_provider_report() {
    let (mock, envoy) = start(PRICES);
    let non_stream = chat("What does a toll gate cost to run per year?", "");
    let stream = chat(
        "What does a toll gate cost to run per year?",
        r#","stream":true,"stream_options":{"include_usage":true}"#,
    );
    for body in [&non_stream, &stream, &non_stream, &stream] {
        let r = post(envoy.port, "/v1/chat/completions", &[], body);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let stats = mock.stats();
    let n = 4u64;
    assert_eq!(stats.responses_ok, n);
    assert_eq!(stats.prompt_tokens % n, 0, "identical prompts: {stats:?}");
    assert_eq!(
        stats.completion_tokens % n,
        0,
        "identical replies: {stats:?}"
    );
    let (p, c) = (stats.prompt_tokens / n, stats.completion_tokens / n);

    let base = [("provider", "openai"), ("model", "gpt-4o-mini")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut v = base.to_vec();
        v.extend_from_slice(extra);
        v
    };
    assert_metric(
        &envoy,
        "tollgate_tokens_total",
        &with(&[("token_type", "input")]),
        stats.prompt_tokens,
    );
    assert_metric(
        &envoy,
        "tollgate_tokens_total",
        &with(&[("token_type", "output")]),
        stats.completion_tokens,
    );
    assert_metric(
        &envoy,
        "tollgate_llm_requests_total",
        &with(&[("status_class", "2xx"), ("usage", "reported")]),
        n,
    );
    assert_metric(
        &envoy,
        "tollgate_cost_microdollars_total",
        &base,
        n * micro_cost(p, c),
    );
    // Histograms (after a flush): one sample per request, sums close to the counters (Envoy's
    // histogram sums are bucket approximations).
    for (t, total) in [
        ("input", stats.prompt_tokens),
        ("output", stats.completion_tokens),
    ] {
        assert_metric(
            &envoy,
            "gen_ai_client_token_usage_count",
            &with(&[("token_type", t)]),
            n,
        );
        let sum = wait_metric(
            &envoy,
            "gen_ai_client_token_usage_sum",
            &with(&[("token_type", t)]),
            |_| true,
        );
        assert!(
            (sum - total as f64).abs() <= total as f64 * 0.05 + 0.5,
            "{t}: histogram sum {sum} vs {total}"
        );
    }
    assert_metric(
        &envoy,
        "gen_ai_client_operation_duration_ms_count",
        &base,
        n,
    );
    assert_metric(
        &envoy,
        "gen_ai_server_time_to_first_token_ms_count",
        &base,
        n,
    );

    // Every tagged name was turned into labels: no `_provider_` left in a metric name.
    let text = envoy.prometheus();
    let leftovers: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(['{', ' ']).next().unwrap_or(""))
        .filter(|name| name.contains("_provider_") || name.contains("_model_"))
        .collect();
    assert!(leftovers.is_empty(), "untagged names: {leftovers:?}");
}

#[test]
fn model_names_that_spell_tag_names_keep_correct_labels() {
    let (mock, envoy) = start("{}");
    for model in ["usage", "status_class"] {
        let body = format!(
            r#"{{"model":"{model}","messages":[{{"role":"user","content":"hello there"}}]}}"#
        );
        let r = post(envoy.port, "/v1/chat/completions", &[], &body);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let per_request = mock.stats().prompt_tokens / 2;
    for model in ["usage", "status_class"] {
        assert_metric(
            &envoy,
            "tollgate_llm_requests_total",
            &[
                ("provider", "openai"),
                ("model", model),
                ("status_class", "2xx"),
                ("usage", "reported"),
            ],
            1,
        );
        assert_metric(
            &envoy,
            "tollgate_tokens_total",
            &[
                ("provider", "openai"),
                ("model", model),
                ("token_type", "input"),
            ],
            per_request,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Access log.

#[test]
fn access_log_carries_tokens_model_user_cost_and_completeness_with_the_request_id() {
    let (mock, envoy) = start(PRICES);
    let body = chat(
        "Log this toll please",
        r#","stream":true,"stream_options":{"include_usage":true}"#,
    );
    let r = post(
        envoy.port,
        "/v1/chat/completions",
        &[
            ("x-request-id", "usage-log-1"),
            ("x-api-key", "sk-test-usage-123"),
        ],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let stats = mock.stats();
    let (p, c) = (stats.prompt_tokens, stats.completion_tokens);
    let entry = access_entry(&envoy, "usage-log-1");
    let field = |k: &str| entry[k].as_str().map(str::to_string);
    assert_eq!(field("status"), None, "status is a number: {entry}");
    assert_eq!(entry["status"], 200);
    assert_eq!(field("provider").as_deref(), Some("openai"), "{entry}");
    assert_eq!(field("model").as_deref(), Some("gpt-4o-mini"), "{entry}");
    let user = format!("key:{:016x}", fnv1a64(b"sk-test-usage-123"));
    assert_eq!(field("user"), Some(user), "{entry}");
    assert!(
        !entry.to_string().contains("sk-test-usage-123"),
        "the API key itself must not be logged: {entry}"
    );
    assert_eq!(field("input_tokens"), Some(p.to_string()), "{entry}");
    assert_eq!(field("output_tokens"), Some(c.to_string()), "{entry}");
    assert_eq!(field("cached_tokens").as_deref(), Some("0"), "{entry}");
    assert_eq!(field("total_tokens"), Some((p + c).to_string()), "{entry}");
    let cost = p as f64 * INPUT_PER_MILLION / 1e6 + c as f64 * OUTPUT_PER_MILLION / 1e6;
    assert_eq!(field("cost_usd"), Some(format!("{cost:.6}")), "{entry}");
    assert_eq!(field("usage_complete").as_deref(), Some("true"), "{entry}");
    assert_eq!(
        field("usage_estimated").as_deref(),
        Some("false"),
        "{entry}"
    );
    let ttft: u64 = field("ttft_ms")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("ttft_ms missing: {entry}"));
    assert!(ttft < 10_000, "{entry}");
}

// ---------------------------------------------------------------------------------------------
// 5. Truncated stream.

#[test]
fn truncated_stream_is_logged_incomplete_and_counted_as_an_upstream_error() {
    let (mock, envoy) = start(PRICES);
    let body = chat(
        "This answer will be cut short",
        r#","stream":true,"stream_options":{"include_usage":true}"#,
    );
    let r = post(
        envoy.port,
        "/v1/chat/completions",
        &[
            ("x-request-id", "usage-trunc-1"),
            ("x-mock-fault", "truncate"),
        ],
        &body,
    );
    assert_eq!(r.status, 200);
    assert_eq!(mock.stats().truncated, 1);
    let events = r.sse_events();
    assert!(events.len() > 2, "some of the stream arrived");
    // The mock cut the terminator; tollgate ends the stream for the client the way a
    // translated stream is ended: an OpenAI-shaped error event, then `[DONE]`.
    let (provider_events, ending) = events.split_at(events.len() - 2);
    assert!(
        provider_events.iter().all(|e| e.data != "[DONE]"),
        "the mock cut the terminator"
    );
    let error: serde_json::Value = serde_json::from_str(&ending[0].data).unwrap();
    assert_eq!(error["error"]["code"], "incomplete_stream", "{error}");
    assert_eq!(ending[1].data, "[DONE]");
    let entry = access_entry(&envoy, "usage-trunc-1");
    assert_eq!(entry["usage_complete"], "false", "{entry}");
    assert_eq!(entry["usage_estimated"], "true", "{entry}");
    assert_eq!(entry["provider"], "openai", "{entry}");
    assert_metric(
        &envoy,
        "tollgate_upstream_errors_total",
        &[("provider", "openai"), ("reason", "truncated")],
        1,
    );
    assert_metric(
        &envoy,
        "tollgate_llm_requests_total",
        &[
            ("provider", "openai"),
            ("model", "gpt-4o-mini"),
            ("status_class", "2xx"),
            ("usage", "estimated"),
        ],
        1,
    );
    assert!(
        envoy
            .log()
            .contains("[usage-trunc-1] response ended without its terminator"),
        "filter warning missing"
    );

    // A complete stream afterwards does not count as an error.
    let ok = post(envoy.port, "/v1/chat/completions", &[], &body);
    assert_eq!(ok.status, 200);
    assert_metric(
        &envoy,
        "tollgate_llm_requests_total",
        &[
            ("provider", "openai"),
            ("model", "gpt-4o-mini"),
            ("status_class", "2xx"),
            ("usage", "reported"),
        ],
        1,
    );
    assert_metric(
        &envoy,
        "tollgate_upstream_errors_total",
        &[("provider", "openai"), ("reason", "truncated")],
        1,
    );
}

// ---------------------------------------------------------------------------------------------
// 6. A 50 MB stream in flat memory.

/// Streams `bytes` through Envoy (no include_usage: the chunk filter is active) and returns
/// (bytes received, the last 64 bytes).
fn stream_through(envoy: &Envoy, bytes: u64) -> (u64, Vec<u8>) {
    let body = chat("Stream a lot of tolls", r#","stream":true"#);
    let fault = format!("stream_bytes={bytes}");
    let mut s = client::stream(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &[
            ("content-type", "application/json"),
            ("x-mock-fault", &fault),
        ],
        body.as_bytes(),
    )
    .expect("stream through envoy");
    assert_eq!(s.status, 200);
    let mut total = 0u64;
    let mut tail: Vec<u8> = Vec::new();
    while let Some(chunk) = s.next_chunk().expect("stream breaks off") {
        total += chunk.len() as u64;
        tail.extend_from_slice(&chunk);
        if tail.len() > 64 {
            tail.drain(..tail.len() - 64);
        }
    }
    (total, tail)
}

#[test]
fn fifty_megabyte_stream_passes_in_flat_memory() {
    let (mock, envoy) = start(PRICES);
    let pid = envoy.pid().expect("envoy pid");
    let started = Instant::now();
    // Warm up: V8 tiers, buffers and the usage parser reach their steady state.
    let (warm, _) = stream_through(&envoy, 5_000_000);
    assert!(warm >= 5_000_000);
    let before = rss_kib(pid);
    let (total, tail) = stream_through(&envoy, 50_000_000);
    let after = rss_kib(pid);
    let elapsed = started.elapsed();
    eprintln!(
        "50 MB stream: {total} bytes, Envoy RSS {before} KiB -> {after} KiB, {elapsed:?} in all"
    );
    assert!(
        (50_000_000..51_000_000).contains(&total),
        "received {total} bytes"
    );
    assert!(
        tail.ends_with(b"data: [DONE]\n\n"),
        "{:?}",
        String::from_utf8_lossy(&tail)
    );
    assert!(
        after.saturating_sub(before) < 20 * 1024,
        "Envoy RSS grew {} KiB over a 50 MB stream ({before} -> {after})",
        after.saturating_sub(before)
    );
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    // Both streams were accounted with the provider's numbers.
    let stats = mock.stats();
    let labels = |t| {
        [
            ("provider", "openai"),
            ("model", "gpt-4o-mini"),
            ("token_type", t),
        ]
    };
    // ~225 bytes per one-word chunk: about 220 000 output tokens in 55 MB.
    assert!(stats.completion_tokens > 100_000, "{stats:?}");
    assert_metric(
        &envoy,
        "tollgate_tokens_total",
        &labels("output"),
        stats.completion_tokens,
    );
    assert_metric(
        &envoy,
        "tollgate_tokens_total",
        &labels("input"),
        stats.prompt_tokens,
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Budgets.

#[test]
fn concurrent_requests_from_one_user_stop_at_the_budget() {
    // An hour window: a minute boundary in mid-test would reset the window and admit more.
    let limit = 2000u64;
    let config = format!(
        r#"{{"budgets":{{"windows":[{{"period":"hour","max_tokens":{limit}}}],"warn_thresholds":[0.5,0.8],"default_max_tokens":1024}}}}"#
    );
    // Two workers: admissions race across VMs through shared data.
    let (mock, envoy) = start_with_workers(&config, Some(2));
    let body =
        r#"{"model":"gpt-4o-mini","max_tokens":200,"messages":[{"role":"user","content":"hi"}]}"#;
    let parallel = 20usize;
    let barrier = Arc::new(Barrier::new(parallel));
    let port = envoy.port;
    let threads: Vec<_> = (0..parallel)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                // Every admitted request stays in flight until all were admitted or refused.
                post(
                    port,
                    "/v1/chat/completions",
                    &[
                        ("x-api-key", "sk-one-user"),
                        ("x-mock-fault", "latency_ms=1500"),
                    ],
                    body,
                )
            })
        })
        .collect();
    let responses: Vec<Response> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let ok: Vec<&Response> = responses.iter().filter(|r| r.status == 200).collect();
    let refused: Vec<&Response> = responses.iter().filter(|r| r.status == 429).collect();
    assert_eq!(
        ok.len() + refused.len(),
        parallel,
        "statuses: {:?}",
        responses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(!ok.is_empty(), "nothing admitted");
    // Each admission reports what is left after its reservation: with every request in flight
    // together, the k-th admitted sees `limit - k * reservation`.
    let mut remaining: Vec<u64> = ok
        .iter()
        .map(|r| {
            assert_eq!(r.header("x-ratelimit-limit-tokens"), Some("2000"));
            assert!(r.header("x-ratelimit-reset-tokens").is_some());
            r.header("x-ratelimit-remaining-tokens")
                .and_then(|v| v.parse().ok())
                .expect("x-ratelimit-remaining-tokens on a 200")
        })
        .collect();
    remaining.sort_unstable_by(|a, b| b.cmp(a));
    let reservation = limit - remaining[0];
    assert!(
        (200..=210).contains(&reservation),
        "reservation {reservation} = prompt estimate + max_tokens 200"
    );
    let capacity = limit / reservation;
    assert!(
        ok.len() as u64 <= capacity,
        "{} admitted, but only {capacity} reservations of {reservation} fit in {limit}",
        ok.len()
    );
    assert_eq!(
        ok.len() as u64,
        capacity,
        "all {parallel} were in flight together: exactly {capacity} reservations fit"
    );
    let expected: Vec<u64> = (1..=capacity).map(|k| limit - k * reservation).collect();
    assert_eq!(remaining, expected, "each admission reserved once");
    assert_eq!(
        mock.stats().requests,
        ok.len() as u64,
        "refused requests reached the provider"
    );
    for r in &refused {
        let retry: u64 = r
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("429 without Retry-After: {:?}", r.headers));
        assert!((1..=3600).contains(&retry), "{retry}");
        assert_eq!(r.header("x-ratelimit-limit-tokens"), Some("2000"));
        assert_eq!(r.header("x-ratelimit-remaining-tokens"), Some("0"));
        let j = r.json().expect("JSON 429 body");
        assert_eq!(j["error"]["code"], "token_budget_exceeded", "{j}");
        assert_eq!(j["error"]["type"], "rate_limit_error", "{j}");
    }
    assert_metric(
        &envoy,
        "tollgate_budget_rejections_total",
        &[("dimension", "tokens")],
        refused.len() as u64,
    );
}

#[test]
fn sequential_requests_succeed_until_usage_exhausts_the_budget() {
    let limit = 100u64;
    let config = format!(
        r#"{{"budgets":{{"windows":[{{"period":"hour","max_tokens":{limit}}}],"warn_thresholds":[0.5,0.8],"default_max_tokens":1024}}}}"#
    );
    let (mock, envoy) = start(&config);
    let body = r#"{"model":"gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":"hello there"}]}"#;
    let send = || {
        post(
            envoy.port,
            "/v1/chat/completions",
            &[("authorization", "Bearer sk-sequential")],
            body,
        )
    };
    // The reservation is the filter's prompt estimate plus max_tokens; the first answer's
    // headers tell it (nothing is used yet).
    let first = send();
    assert_eq!(first.status, 200, "{}", first.text());
    let remaining: u64 = first
        .header("x-ratelimit-remaining-tokens")
        .and_then(|v| v.parse().ok())
        .expect("x-ratelimit-remaining-tokens");
    assert_eq!(first.header("x-ratelimit-limit-tokens"), Some("100"));
    let estimate = limit - remaining;
    assert!((10..=20).contains(&estimate), "reservation {estimate}");
    let stats = mock.stats();
    let mut used = stats.prompt_tokens + stats.completion_tokens;
    let mut admitted = 1u64;
    let mut refused = 0u64;
    for i in 1..20 {
        let r = send();
        if used + estimate <= limit {
            assert_eq!(r.status, 200, "request {i}: {used} used, {}", r.text());
            // Remaining = limit - (charged usage + this request's reservation).
            let remaining = limit - used - estimate;
            assert_eq!(
                r.header("x-ratelimit-remaining-tokens"),
                Some(remaining.to_string().as_str()),
                "request {i}: {used} used"
            );
            let stats = mock.stats();
            used = stats.prompt_tokens + stats.completion_tokens;
            admitted += 1;
        } else {
            assert_eq!(r.status, 429, "request {i}: {used} used: {}", r.text());
            assert!(r.header("retry-after").is_some());
            refused += 1;
            if refused == 2 {
                break;
            }
        }
    }
    assert!(admitted >= 2, "{admitted}");
    assert_eq!(refused, 2);
    assert_eq!(mock.stats().requests, admitted);
    assert_metric(
        &envoy,
        "tollgate_budget_rejections_total",
        &[("dimension", "tokens")],
        2,
    );
    assert_metric(
        &envoy,
        "tollgate_budget_warnings_total",
        &[("threshold", "50")],
        1,
    );
    assert_metric(
        &envoy,
        "tollgate_budget_warnings_total",
        &[("threshold", "80")],
        1,
    );
    assert!(envoy.log().contains("budget warning"), "warning not logged");
}

// ---------------------------------------------------------------------------------------------
// 8. Ollama NDJSON and Gemini SSE.

#[test]
fn ollama_ndjson_stream_is_counted_under_ollama() {
    let (mock, envoy) = start("{}");
    let body =
        r#"{"model":"llama3.2","messages":[{"role":"user","content":"hello from ollama land"}]}"#;
    let r = post(
        envoy.port,
        "/api/chat",
        &[("x-request-id", "usage-ollama")],
        body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let lines = r.ndjson().expect("NDJSON stream");
    assert!(lines.len() > 2, "{lines:?}");
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true, "{last}");
    let stats = mock.stats();
    assert_eq!(last["prompt_eval_count"], stats.prompt_tokens);
    assert_eq!(last["eval_count"], stats.completion_tokens);
    // `llama3.2`: the dot becomes `_` in the label.
    let labels = |t| {
        [
            ("provider", "ollama"),
            ("model", "llama3_2"),
            ("token_type", t),
        ]
    };
    assert_metric(
        &envoy,
        "tollgate_tokens_total",
        &labels("input"),
        stats.prompt_tokens,
    );
    assert_metric(
        &envoy,
        "tollgate_tokens_total",
        &labels("output"),
        stats.completion_tokens,
    );
    let entry = access_entry(&envoy, "usage-ollama");
    assert_eq!(entry["provider"], "ollama", "{entry}");
    assert_eq!(entry["usage_complete"], "true", "{entry}");
    assert_eq!(
        entry["total_tokens"],
        (stats.prompt_tokens + stats.completion_tokens).to_string()
    );
}

#[test]
fn gemini_sse_stream_is_counted_under_gemini() {
    let (mock, envoy) = start("{}");
    let body = r#"{"contents":[{"role":"user","parts":[{"text":"hello from the gemini side"}]}]}"#;
    let r = post(
        envoy.port,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        &[("x-request-id", "usage-gemini")],
        body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let events = r.sse_events();
    assert!(events.len() > 2, "{events:?}");
    let last = events.last().and_then(|e| e.json()).expect("JSON event");
    let stats = mock.stats();
    assert_eq!(
        last["usageMetadata"]["promptTokenCount"],
        stats.prompt_tokens
    );
    let labels = |t| {
        [
            ("provider", "gemini"),
            ("model", "gemini-2_0-flash"),
            ("token_type", t),
        ]
    };
    assert_metric(
        &envoy,
        "tollgate_tokens_total",
        &labels("input"),
        stats.prompt_tokens,
    );
    assert_metric(
        &envoy,
        "tollgate_tokens_total",
        &labels("output"),
        stats.completion_tokens,
    );
    let entry = access_entry(&envoy, "usage-gemini");
    assert_eq!(entry["provider"], "gemini", "{entry}");
    assert_eq!(entry["model"], "gemini-2_0-flash", "{entry}");
    assert_eq!(entry["usage_complete"], "true", "{entry}");
}
