//! Provider routing on a real Envoy 1.40: tollgate picks the first healthy provider for the
//! client's model, translates OpenAI chat requests for Anthropic and Gemini (streams included),
//! injects the provider's key (never the client's), and opens a provider's circuit after
//! consecutive failures so later requests go to the next provider.

use tollgate_e2e::mock::client::request;
use tollgate_e2e::mock::{Faults, MockHandle, MockOptions, ResetMode};
use tollgate_e2e::providers::{Providers, ANTHROPIC_KEY, GEMINI_KEY, OPENAI_KEY};
use tollgate_e2e::{template, Envoy};

/// Field order is drop order: Envoy stops before its providers.
struct Setup {
    envoy: Envoy,
    openai: MockHandle,
    anthropic: MockHandle,
    gemini: MockHandle,
}

fn plugin(primary: &str, secondary: &str, threshold: u32) -> String {
    format!(
        r#"{{
  "failover": {{
    "providers": [
      {{"name": "openai", "kind": "openai", "cluster": "openai", "api_key": {{"env": "OPENAI_API_KEY"}},
        "circuit": {{"failure_threshold": {threshold}, "cooldown_ms": 60000}}}},
      {{"name": "anthropic", "kind": "anthropic", "cluster": "anthropic", "api_key": {{"env": "ANTHROPIC_API_KEY"}},
        "models": {{"gpt-4o-mini": "claude-sonnet-4"}}, "circuit": {{"failure_threshold": {threshold}, "cooldown_ms": 60000}}}},
      {{"name": "gemini", "kind": "gemini", "cluster": "gemini", "api_key": {{"env": "GEMINI_API_KEY"}},
        "models": {{"gpt-4o-mini": "gemini-2.0-flash"}}, "circuit": {{"failure_threshold": {threshold}, "cooldown_ms": 60000}}}}
    ],
    "routes": [{{"model": "gpt-4o-mini", "providers": ["{primary}", "{secondary}"]}}]
  }}
}}"#
    )
}

fn setup(primary: &str, secondary: &str) -> Setup {
    setup_with(primary, secondary, 2)
}

fn setup_with(primary: &str, secondary: &str, threshold: u32) -> Setup {
    let providers = Providers::start(&MockOptions::default());
    let envoy = Envoy::start(
        &template("e2e/configs/routing.yaml"),
        providers
            .vars()
            .plugin_config(&plugin(primary, secondary, threshold)),
    );
    let Providers {
        openai,
        anthropic,
        gemini,
    } = providers;
    Setup {
        envoy,
        openai,
        anthropic,
        gemini,
    }
}

fn chat(envoy: &Envoy, stream: bool) -> tollgate_e2e::mock::client::Response {
    let body = format!(
        r#"{{"model":"gpt-4o-mini","stream":{stream},"messages":[{{"role":"system","content":"be brief"}},{{"role":"user","content":"hello there"}}]}}"#
    );
    request(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer client-key-must-not-travel")],
        body.as_bytes(),
    )
    .unwrap()
}

#[test]
fn anthropic_answers_an_openai_request_translated_both_ways() {
    let s = setup("anthropic", "openai");
    let resp = chat(&s.envoy, false);
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["model"], "gpt-4o-mini",
        "the client sees the model it asked for"
    );
    assert!(body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("mock"));
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let up = s
        .anthropic
        .requests()
        .pop()
        .expect("anthropic got the request");
    assert_eq!(up.path, "/v1/messages");
    assert_eq!(up.header("x-api-key"), Some(ANTHROPIC_KEY));
    assert!(
        up.header("authorization").is_none(),
        "the client's key never reaches a provider"
    );
    let sent: serde_json::Value = serde_json::from_str(&up.body).unwrap();
    assert_eq!(sent["model"], "claude-sonnet-4");
    assert_eq!(sent["system"], "be brief");
    assert!(s.openai.requests().is_empty());
    let stats = s.envoy.prometheus();
    assert!(
        stats.contains("tollgate_tokens_total"),
        "usage is counted for routed requests"
    );
}

#[test]
fn anthropic_stream_reaches_the_client_as_openai_chunks() {
    let s = setup("anthropic", "openai");
    let resp = chat(&s.envoy, true);
    assert_eq!(resp.status, 200);
    let text = String::from_utf8_lossy(&resp.body).to_string();
    assert!(text.contains("chat.completion.chunk"), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(
        !text.contains("message_start"),
        "no Anthropic event leaks through: {text}"
    );
}

#[test]
fn gemini_answers_too() {
    let s = setup("gemini", "openai");
    let resp = chat(&s.envoy, false);
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body["object"], "chat.completion");
    let up = s.gemini.requests().pop().unwrap();
    assert!(
        up.path
            .starts_with("/v1beta/models/gemini-2.0-flash:generateContent"),
        "{}",
        up.path
    );
    assert_eq!(up.header("x-goog-api-key"), Some(GEMINI_KEY));
}

#[test]
fn failing_primary_fails_over_within_the_request_then_its_circuit_opens() {
    let s = setup("anthropic", "openai");
    s.anthropic.set_faults(Faults {
        status: Some(500),
        ..Faults::default()
    });
    for _ in 0..7 {
        let resp = chat(&s.envoy, false);
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
        let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(body["object"], "chat.completion");
    }
    assert_eq!(
        s.anthropic.requests().len(),
        2,
        "threshold 2: then no traffic during the cooldown"
    );
    assert_eq!(s.openai.requests().len(), 7);
    assert_eq!(
        s.openai.requests()[0].header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );
    let stats = s.envoy.prometheus();
    assert!(stats.contains("tollgate_failovers_total"), "{stats}");
}

#[test]
fn connection_reset_by_the_primary_fails_over() {
    let s = setup("anthropic", "openai");
    s.anthropic.set_faults(Faults {
        reset: Some(ResetMode::BeforeResponse),
        ..Faults::default()
    });
    let resp = chat(&s.envoy, false);
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(s.openai.requests().len(), 1);
}

#[test]
fn primary_timeout_fails_over() {
    // The route timeout is 3 s; the primary answers after 5 s.
    let s = setup("anthropic", "openai");
    s.anthropic.set_faults(Faults {
        latency_ms: Some(5_000),
        ..Faults::default()
    });
    let resp = chat(&s.envoy, false);
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(s.openai.requests().len(), 1);
}

#[test]
fn a_translated_stream_that_breaks_ends_with_an_error_event_and_done() {
    let s = setup("anthropic", "openai");
    s.anthropic.set_faults(Faults {
        truncate: true,
        ..Faults::default()
    });
    let resp = chat(&s.envoy, true);
    assert_eq!(resp.status, 200);
    let text = String::from_utf8_lossy(&resp.body).to_string();
    assert!(
        text.contains("\"error\""),
        "an error event the OpenAI SDK raises: {text}"
    );
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
}

#[test]
fn circuit_state_is_a_gauge_per_provider() {
    let s = setup("anthropic", "openai");
    s.anthropic.set_faults(Faults {
        status: Some(500),
        ..Faults::default()
    });
    for _ in 0..3 {
        chat(&s.envoy, false);
    }
    let stats = s.envoy.admin("/stats");
    let line = stats
        .lines()
        .find(|l| l.contains("provider=.=anthropic;.;tollgate_circuit_state"))
        .unwrap_or_else(|| panic!("no circuit gauge in:\n{stats}"));
    assert!(
        line.trim_end().ends_with(": 2"),
        "open circuit reads 2: {line}"
    );
}

#[test]
fn streaming_request_fails_over_to_a_translated_stream() {
    let s = setup("openai", "anthropic");
    s.openai.set_faults(Faults {
        status: Some(503),
        ..Faults::default()
    });
    let resp = chat(&s.envoy, true);
    assert_eq!(resp.status, 200);
    let text = String::from_utf8_lossy(&resp.body).to_string();
    assert!(text.contains("chat.completion.chunk"), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert_eq!(s.anthropic.requests().len(), 1);
}

#[test]
fn rate_limited_primary_is_skipped_until_its_retry_after_passes() {
    let s = setup("anthropic", "openai");
    s.anthropic.set_faults(Faults {
        status: Some(429),
        retry_after: Some(30),
        count: Some(1),
        ..Faults::default()
    });
    assert_eq!(
        chat(&s.envoy, false).status,
        200,
        "answered by the secondary"
    );
    assert_eq!(chat(&s.envoy, false).status, 200);
    assert_eq!(
        s.anthropic.requests().len(),
        1,
        "the primary is skipped while its Retry-After runs"
    );
    assert_eq!(s.openai.requests().len(), 2);
}

#[test]
fn all_providers_down_gives_503_with_a_summary_and_no_secrets() {
    let s = setup("anthropic", "openai");
    s.anthropic.set_faults(Faults {
        status: Some(500),
        ..Faults::default()
    });
    s.openai.set_faults(Faults {
        status: Some(500),
        ..Faults::default()
    });
    let resp = chat(&s.envoy, false);
    assert_eq!(resp.status, 503, "{}", String::from_utf8_lossy(&resp.body));
    let text = String::from_utf8_lossy(&resp.body).to_string();
    assert!(
        text.contains("anthropic: 500") && text.contains("openai: 500"),
        "{text}"
    );
    assert!(text.contains("request_id"));
    for key in [OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY] {
        assert!(!text.contains(key));
    }
    // Once both circuits are open, requests are refused up front.
    chat(&s.envoy, false);
    let resp = chat(&s.envoy, false);
    assert_eq!(resp.status, 503);
    assert!(String::from_utf8_lossy(&resp.body).contains("all_providers_unavailable"));
}

#[test]
fn chaos_thousand_requests_with_thirty_percent_primary_faults_all_succeed() {
    // A high threshold keeps the primary's circuit closed: every fault is met inside its request.
    let s = setup_with("anthropic", "openai", 10_000);
    s.anthropic.set_faults(Faults {
        fail_rate: Some(0.3),
        seed: Some(7),
        ..Faults::default()
    });
    let mut failed = 0;
    let total = 1000;
    for _ in 0..total {
        if chat(&s.envoy, false).status != 200 {
            failed += 1;
        }
    }
    let primary = s.anthropic.stats();
    println!(
        "chaos: {total} requests, primary served {} and failed {}, fallback served {}, client failures {failed}",
        primary.responses_ok,
        primary.responses_error,
        s.openai.stats().responses_ok
    );
    assert_eq!(failed, 0, "every request must be served by some provider");
    assert!(
        primary.responses_error > 200,
        "the faults really happened: {}",
        primary.responses_error
    );
}

#[test]
fn a_provider_error_echoing_the_injected_key_reaches_the_client_masked() {
    let s = setup("openai", "anthropic");
    s.openai.set_faults(Faults {
        echo_key: true,
        status: Some(401),
        ..Faults::default()
    });
    let resp = chat(&s.envoy, false);
    let text = String::from_utf8_lossy(&resp.body).to_string();
    assert!(!text.contains(OPENAI_KEY), "injected key leaked: {text}");
    assert!(text.contains("REDACTED"), "{text}");
    assert!(
        !s.envoy.log().contains(OPENAI_KEY),
        "Envoy's log never carries the key"
    );
}

#[test]
fn a_stream_failed_over_to_openai_still_reports_its_usage_without_showing_it() {
    // Regression (found by `make soak`): the callout to an OpenAI-kind fallback lacked
    // include_usage, so the stream's usage was estimated instead of reported.
    let s = setup("anthropic", "openai");
    s.anthropic.set_faults(Faults {
        status: Some(500),
        ..Faults::default()
    });
    let resp = chat(&s.envoy, true);
    assert_eq!(resp.status, 200);
    let text = String::from_utf8_lossy(&resp.body).to_string();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(
        !text.contains("\"prompt_tokens\""),
        "the client did not ask for usage: {text}"
    );
    let sent: serde_json::Value =
        serde_json::from_str(&s.openai.requests().pop().unwrap().body).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    let stats = s.envoy.admin("/stats");
    assert!(
        stats.lines().any(|l| l.contains("provider=.=openai;.;")
            && l.contains("usage=.=reported;.;tollgate_llm_requests_total")
            && l.trim_end().ends_with(": 1")),
        "{stats}"
    );
}

#[test]
fn the_access_log_shows_the_clients_path_and_the_providers_path_apart() {
    // Regression: for a translated request the log's `path` was the provider's path.
    let s = setup("anthropic", "openai");
    let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let resp = request(
        s.envoy.port,
        "POST",
        "/v1/chat/completions",
        &[("x-request-id", "routing-path-1")],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let entry = loop {
        let found = s.envoy.access_log().into_iter().find_map(|line| {
            let v: serde_json::Value = serde_json::from_str(&line).ok()?;
            (v["request_id"] == "routing-path-1").then_some(v)
        });
        if let Some(v) = found {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "no access-log entry");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(entry["path"], "/v1/chat/completions", "{entry}");
    assert_eq!(entry["provider_path"], "/v1/messages", "{entry}");
}
