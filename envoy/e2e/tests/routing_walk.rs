//! Failover walked by Envoy on a real Envoy 1.40: the route targets an aggregate cluster of
//! providers, Envoy's retry policy moves each retry to the next member, and tollgate's upstream
//! stage (the same `.wasm` in the aggregate cluster's upstream filter chain) rewrites every attempt
//! for the provider Envoy picked. Unlike the callout path, a failed-over stream reaches the client
//! incrementally, as the fallback produces it.

use std::time::{Duration, Instant};

use tollgate_e2e::mock::client::{request, stream};
use tollgate_e2e::mock::{Faults, MockOptions, ResetMode};
use tollgate_e2e::providers::{ANTHROPIC_KEY, GEMINI_KEY, OPENAI_KEY};
use tollgate_e2e::walk::WalkedStack;
use tollgate_e2e::Envoy;

fn setup(threshold: u32) -> WalkedStack {
    setup_with(threshold, 60_000)
}

fn setup_with(threshold: u32, cooldown_ms: u64) -> WalkedStack {
    WalkedStack::start(threshold, cooldown_ms, &MockOptions::default())
}

fn body(stream: bool) -> String {
    format!(
        r#"{{"model":"gpt-4o-mini","stream":{stream},"messages":[{{"role":"system","content":"be brief"}},{{"role":"user","content":"hello there"}}]}}"#
    )
}

const CLIENT_AUTH: (&str, &str) = ("authorization", "Bearer client-key-must-not-travel");

fn chat(envoy: &Envoy, stream: bool) -> tollgate_e2e::mock::client::Response {
    request(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &[CLIENT_AUTH],
        body(stream).as_bytes(),
    )
    .unwrap()
}

fn fail(status: u16) -> Faults {
    Faults {
        status: Some(status),
        ..Faults::default()
    }
}

#[test]
fn primary_500_is_answered_by_the_next_provider_rewritten_per_attempt() {
    let s = setup(100);
    s.openai.set_faults(fail(500));
    let resp = chat(&s.envoy, false);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let answer: serde_json::Value = resp.json().unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], "gpt-4o-mini");
    assert!(answer["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(resp.header("x-tollgate-provider").is_none());
    let timing = resp
        .header("server-timing")
        .expect("Server-Timing on every response");
    assert!(
        timing.starts_with("tollgate;dur=") && timing.contains(", upstream;dur="),
        "{timing}"
    );
    assert!(resp.header("x-tollgate-carry").is_none());

    let first = s.openai.requests().pop().expect("openai tried first");
    assert_eq!(first.path, "/v1/chat/completions");
    assert_eq!(
        first.header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );
    let second = s.anthropic.requests().pop().expect("anthropic answered");
    assert_eq!(second.path, "/v1/messages");
    assert_eq!(second.header("x-api-key"), Some(ANTHROPIC_KEY));
    assert!(
        second.header("authorization").is_none(),
        "neither the client's key nor openai's travels to anthropic"
    );
    assert!(second.header("x-tollgate-carry").is_none());
    let sent: serde_json::Value = serde_json::from_str(&second.body).unwrap();
    assert_eq!(sent["model"], "claude-sonnet-4");
    assert_eq!(sent["system"], "be brief");
    assert!(s.gemini.requests().is_empty());

    let stats = s.envoy.prometheus();
    assert!(
        stats.contains("tollgate_provider_attempts_total"),
        "{stats}"
    );
    assert!(stats.contains("tollgate_failovers_total"), "{stats}");
    assert!(stats.contains("tollgate_tokens_total"), "{stats}");
}

#[test]
fn a_failed_over_stream_arrives_incrementally() {
    let s = setup(100);
    s.openai.set_faults(fail(503));
    s.anthropic.set_faults(Faults {
        chunk_delay_ms: Some(250),
        ..Faults::default()
    });
    let started = Instant::now();
    let mut resp = stream(
        s.envoy.port,
        "POST",
        "/v1/chat/completions",
        &[CLIENT_AUTH],
        body(true).as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.status, 200);
    let mut text = String::new();
    let mut first_chunk_at = None;
    while let Some(piece) = resp.next_chunk().unwrap() {
        text.push_str(&String::from_utf8_lossy(&piece));
        if first_chunk_at.is_none() && text.contains("chat.completion.chunk") {
            first_chunk_at = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    let first = first_chunk_at.expect("a chunk arrived");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(!text.contains("message_start"), "{text}");
    assert!(
        total >= Duration::from_millis(1000),
        "the fallback stream is slow: {total:?}"
    );
    assert!(
        first + Duration::from_millis(700) < total,
        "the first chunk ({first:?}) came well before the end ({total:?}): not buffered"
    );
    assert_eq!(s.openai.requests().len(), 1);
    assert_eq!(s.anthropic.requests().len(), 1);
}

#[test]
fn reset_and_timeout_move_on_to_the_next_provider() {
    let s = setup(100);
    s.openai.set_faults(Faults {
        reset: Some(ResetMode::BeforeResponse),
        ..Faults::default()
    });
    s.anthropic.set_faults(Faults {
        latency_ms: Some(3_000),
        ..Faults::default()
    });
    let resp = chat(&s.envoy, false);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json().unwrap()["object"], "chat.completion");
    let third = s.gemini.requests().pop().expect("gemini answered");
    assert!(third.path.contains("gemini-2.0-flash"), "{}", third.path);
    assert_eq!(third.header("x-goog-api-key"), Some(GEMINI_KEY));
    assert!(third.header("x-api-key").is_none());
}

#[test]
fn all_down_gives_503_with_every_attempt_and_no_secrets() {
    let s = setup(100);
    s.openai.set_faults(fail(500));
    s.anthropic.set_faults(fail(500));
    s.gemini.set_faults(Faults {
        status: Some(500),
        echo_key: true,
        ..Faults::default()
    });
    let resp = chat(&s.envoy, false);
    assert_eq!(resp.status, 503, "{}", resp.text());
    let text = resp.text();
    for part in ["openai: 500", "anthropic: 500", "gemini: 500", "request_id"] {
        assert!(text.contains(part), "{part} in {text}");
    }
    for key in [OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY] {
        assert!(!text.contains(key), "{text}");
    }
}

#[test]
fn every_provider_resetting_gives_the_openai_shaped_summary_with_the_request_id() {
    // Regression: when every attempt reset, Envoy's own 503 reached the client with an empty
    // body instead of the documented error.
    let s = setup(100);
    for mock in [&s.openai, &s.anthropic, &s.gemini] {
        mock.set_faults(Faults {
            reset: Some(ResetMode::BeforeResponse),
            ..Faults::default()
        });
    }
    let resp = request(
        s.envoy.port,
        "POST",
        "/v1/chat/completions",
        &[CLIENT_AUTH, ("x-request-id", "walk-all-reset-1")],
        body(false).as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.status, 503, "{}", resp.text());
    let answer: serde_json::Value = resp
        .json()
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", resp.text()));
    assert_eq!(answer["error"]["code"], "all_providers_failed", "{answer}");
    assert_eq!(
        answer["error"]["request_id"], "walk-all-reset-1",
        "{answer}"
    );
    let message = answer["error"]["message"].as_str().unwrap();
    for provider in ["openai", "anthropic", "gemini"] {
        assert!(
            message.contains(&format!("{provider}: no response")),
            "{message}"
        );
    }
}

#[test]
fn open_circuit_is_skipped_without_traffic_then_rate_limit_hint_honoured() {
    let s = setup(2);
    s.openai.set_faults(fail(500));
    for _ in 0..5 {
        let resp = chat(&s.envoy, false);
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    assert_eq!(
        s.openai.requests().len(),
        2,
        "threshold 2: no traffic to openai during the cooldown"
    );
    assert_eq!(s.anthropic.requests().len(), 5);

    s.anthropic.set_faults(Faults {
        status: Some(429),
        retry_after: Some(30),
        count: Some(1),
        ..Faults::default()
    });
    assert_eq!(chat(&s.envoy, false).status, 200, "gemini answers");
    assert_eq!(chat(&s.envoy, false).status, 200);
    assert_eq!(
        s.anthropic.requests().len(),
        6,
        "anthropic is skipped while its Retry-After runs"
    );
    assert_eq!(s.gemini.requests().len(), 2);
    let stats = s.envoy.admin("/stats");
    assert!(
        stats.contains("provider=.=openai;.;tollgate_circuit_state: 2"),
        "{stats}"
    );
}

#[test]
fn a_stream_that_breaks_after_its_first_byte_ends_with_an_error_event() {
    let s = setup(100);
    s.openai.set_faults(fail(500));
    s.anthropic.set_faults(Faults {
        truncate: true,
        ..Faults::default()
    });
    let resp = chat(&s.envoy, true);
    assert_eq!(resp.status, 200);
    let text = resp.text();
    assert!(text.contains("\"error\""), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
}

#[test]
fn every_provider_rate_limited_gives_429() {
    let s = setup(100);
    for mock in [&s.openai, &s.anthropic, &s.gemini] {
        mock.set_faults(Faults {
            status: Some(429),
            retry_after: Some(1),
            ..Faults::default()
        });
    }
    let resp = chat(&s.envoy, false);
    assert_eq!(resp.status, 429, "{}", resp.text());
    let text = resp.text();
    assert!(
        text.contains("openai: 429") && text.contains("gemini: 429"),
        "{text}"
    );
}

#[test]
fn chaos_three_hundred_requests_with_thirty_percent_primary_faults_all_succeed() {
    let s = setup(10_000);
    s.openai.set_faults(Faults {
        fail_rate: Some(0.3),
        seed: Some(7),
        ..Faults::default()
    });
    let mut failed = 0;
    for i in 0..300 {
        let resp = chat(&s.envoy, i % 3 == 0);
        if resp.status != 200 {
            failed += 1;
        }
    }
    println!(
        "walked chaos: 300 requests, {} served by the fallback, {failed} failed at the client",
        s.anthropic.requests().len()
    );
    assert_eq!(failed, 0);
    assert!(
        s.anthropic.requests().len() > 50,
        "about 30% fail over: {}",
        s.anthropic.requests().len()
    );
    assert_eq!(
        s.openai.requests().len(),
        300,
        "every request tried the primary exactly once"
    );
}

#[test]
fn a_back_off_hint_is_honoured_until_it_passes_and_an_open_circuit_is_probed_once() {
    let s = setup_with(2, 800);
    s.openai.set_faults(Faults {
        status: Some(429),
        retry_after_ms: Some(700),
        count: Some(1),
        ..Faults::default()
    });
    assert_eq!(chat(&s.envoy, false).status, 200, "anthropic answers");
    assert_eq!(chat(&s.envoy, false).status, 200);
    assert_eq!(
        s.openai.requests().len(),
        1,
        "openai skipped during its hint"
    );
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(chat(&s.envoy, false).status, 200);
    assert_eq!(
        s.openai.requests().len(),
        2,
        "openai back once the hint passed"
    );

    // Two failures open openai's circuit (cooldown 800 ms); after it, one probe closes it.
    s.openai.set_faults(fail(500));
    chat(&s.envoy, false);
    chat(&s.envoy, false);
    let tried = s.openai.requests().len();
    assert_eq!(chat(&s.envoy, false).status, 200);
    assert_eq!(s.openai.requests().len(), tried, "no traffic while open");
    s.openai.set_faults(Faults::default());
    std::thread::sleep(Duration::from_millis(900));
    for _ in 0..3 {
        assert_eq!(chat(&s.envoy, false).status, 200);
    }
    assert_eq!(
        s.openai.requests().len(),
        tried + 3,
        "the probe succeeded and closed the circuit: openai serves again"
    );
}

/// The upstream stage's `vm_config` of `e2e/configs/routing_walk.yaml` replaced by `vm_config`.
fn with_upstream_vm(vm_config: &str) -> String {
    let config = tollgate_e2e::template("e2e/configs/routing_walk.yaml");
    assert_eq!(config.matches("vm_config: *tollgate_vm").count(), 1);
    config.replacen("vm_config: *tollgate_vm", vm_config, 1)
}

#[test]
fn an_upstream_stage_outside_the_listener_stages_vm_answers_the_catalog_error() {
    // Envoy runs the upstream stage in a VM of its own when its vm_config differs — another
    // vm_id, and (Envoy 1.40) also the same vm_id and code with other environment variables —
    // where no listener stage published a catalog. The attempt answers the documented error;
    // the listener stage passes it on instead of failing over, and no provider is called.
    let wasm = r#"code: { local: { filename: "{{WASM}}" } }"#;
    for (case, vm_config) in [
        (
            "another vm_id",
            format!("vm_config: {{ vm_id: elsewhere, runtime: envoy.wasm.runtime.v8, {wasm} }}"),
        ),
        (
            "same vm_id and code, no environment variables",
            format!("vm_config: {{ vm_id: tollgate, runtime: envoy.wasm.runtime.v8, {wasm} }}"),
        ),
    ] {
        let s = WalkedStack::start_from(
            &with_upstream_vm(&vm_config),
            100,
            60_000,
            &MockOptions::default(),
        );
        let resp = request(
            s.envoy.port,
            "POST",
            "/v1/chat/completions",
            &[CLIENT_AUTH, ("x-request-id", "walk-no-catalog-1")],
            body(false).as_bytes(),
        )
        .unwrap();
        assert_eq!(resp.status, 500, "{case}: {}", resp.text());
        let answer: serde_json::Value = resp.json().unwrap();
        assert_eq!(
            answer["error"]["code"], "failover_catalog_missing",
            "{case}: {answer}"
        );
        assert_eq!(answer["error"]["request_id"], "walk-no-catalog-1");
        assert!(resp.header("x-tollgate-stage-error").is_none());
        for mock in [&s.openai, &s.anthropic, &s.gemini] {
            assert!(mock.requests().is_empty(), "{case}: no provider is called");
        }
        assert!(
            s.envoy
                .log()
                .contains("[walk-no-catalog-1] upstream stage without a catalog"),
            "{case}: the cause is logged"
        );
    }
}
