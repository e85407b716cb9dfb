//! Fault-injection tests: each fault kind, per request (`x-mock-fault`) and
//! per instance (Rust API and control API), observed by a real TCP client.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tollgate_mock_provider::client;
use tollgate_mock_provider::{Faults, MockOptions, ResetMode};

const CHAT: &str = "/v1/chat/completions";

#[test]
fn status_429_with_retry_after_in_each_provider_shape() {
    let mock = start();
    let port = mock.port();
    let fault = [(
        "x-mock-fault",
        "status=429; retry_after=2; retry_after_ms=1500",
    )];
    let r = post_json(port, CHAT, &fault, &chat_body(false, false));
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("2"));
    assert_eq!(r.header("retry-after-ms"), Some("1500"));
    let e = r.json().unwrap();
    assert_eq!(e["error"]["code"], "rate_limit_exceeded");

    let r = post_json(port, "/v1/messages", &fault, &json!({"messages":[]}));
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("2"));
    assert_eq!(r.json().unwrap()["error"]["type"], "rate_limit_error");

    let r = post_json(
        port,
        "/v1beta/models/g:generateContent",
        &fault,
        &json!({"contents":[]}),
    );
    assert_eq!(r.json().unwrap()["error"]["status"], "RESOURCE_EXHAUSTED");

    let r = post_json(
        port,
        "/api/chat",
        &[("x-mock-fault", "status=503")],
        &json!({"messages":[]}),
    );
    assert_eq!(r.status, 503);
    assert!(r.json().unwrap()["error"].is_string());
    assert!(r.header("retry-after").is_none());
    let s = mock.stats();
    assert_eq!((s.requests, s.responses_error, s.prompt_tokens), (4, 4, 0));
}

#[test]
fn reset_before_response_is_a_connection_error() {
    let mock = start();
    let err = client::request(
        mock.port(),
        "POST",
        CHAT,
        &[("x-mock-fault", "reset=before")],
        chat_body(false, false).to_string(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
        ),
        "{err:?}"
    );
    assert_eq!(
        mock.requests().len(),
        1,
        "the request was read and recorded"
    );
    assert_eq!(mock.stats().resets, 1);
}

#[test]
fn reset_mid_stream_sends_some_events_then_breaks() {
    let mock = start();
    let mut s = client::stream(
        mock.port(),
        "POST",
        CHAT,
        &[("x-mock-fault", "reset=mid")],
        chat_body(true, true).to_string(),
    )
    .unwrap();
    assert_eq!(s.status, 200);
    let mut got = Vec::new();
    let err = loop {
        match s.next_chunk() {
            Ok(Some(c)) => got.push(String::from_utf8(c).unwrap()),
            Ok(None) => panic!("stream ended cleanly: {got:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err:?}");
    assert!(got.len() >= 2, "role chunk and some content first: {got:?}");
    assert!(!got.iter().any(|c| c.contains("[DONE]")));
    assert_eq!(mock.stats().resets, 1);
    assert_eq!(mock.stats().completion_tokens, 0);
}

#[test]
fn reset_mid_on_json_response_breaks_the_body() {
    let mock = start();
    mock.set_faults(Faults {
        reset: Some(ResetMode::MidStream),
        count: Some(1),
        ..Faults::default()
    });
    let err = client::request(
        mock.port(),
        "POST",
        CHAT,
        &[],
        chat_body(false, false).to_string(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
        ),
        "{err:?}"
    );
    // count=1: the next request is fine.
    let ok = post_json(mock.port(), CHAT, &[], &chat_body(false, false));
    assert_eq!(ok.status, 200);
}

#[test]
fn truncate_ends_cleanly_without_terminators() {
    let mock = start();
    let port = mock.port();
    let t = [("x-mock-fault", "truncate")];

    let mut s = client::stream(port, "POST", CHAT, &t, chat_body(true, true).to_string()).unwrap();
    let body = String::from_utf8(s.read_to_end().unwrap()).unwrap();
    assert!(s.is_complete(), "chunked terminator was sent");
    assert!(body.contains("\"content\":\"This\""));
    assert!(!body.contains("[DONE]"));
    assert!(!body.contains("\"usage\":{"));

    let r = post_json(
        port,
        "/v1/messages",
        &t,
        &json!({"stream":true,"messages":[{"role":"user","content":"hi"}]}),
    );
    let kinds: Vec<String> = r.sse_events().into_iter().filter_map(|e| e.event).collect();
    assert!(kinds.contains(&"content_block_delta".to_string()));
    assert!(!kinds
        .iter()
        .any(|k| k == "message_stop" || k == "message_delta"));

    let r = post_json(
        port,
        "/api/chat",
        &t,
        &json!({"messages":[{"role":"user","content":"hi"}]}),
    );
    let lines = r.ndjson().unwrap();
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|l| l["done"] == false));

    let r = post_json(
        port,
        "/v1beta/models/g:streamGenerateContent?alt=sse",
        &t,
        &json!({"contents":[{"parts":[{"text":"hi"}]}]}),
    );
    assert!(r
        .sse_events()
        .iter()
        .all(|e| !e.data.contains("finishReason")));

    let r = post_json(
        port,
        "/v1/responses",
        &t,
        &json!({"stream":true,"input":"hi"}),
    );
    assert!(r
        .sse_events()
        .iter()
        .all(|e| e.event.as_deref() != Some("response.completed")));

    let s = mock.stats();
    assert_eq!((s.truncated, s.completion_tokens), (5, 0));
}

#[test]
fn echo_key_puts_the_full_key_in_the_error() {
    let mock = start_with(MockOptions::with_api_key("sk-good"));
    let port = mock.port();
    let key = "sk-abc1234567890xyz";
    let auth = format!("Bearer {key}");
    let r = post_json(
        port,
        CHAT,
        &[("authorization", &auth), ("x-mock-fault", "echo_key")],
        &chat_body(false, false),
    );
    assert_eq!(r.status, 401);
    let msg = r.json().unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.starts_with(&format!("Incorrect API key provided: {key}")),
        "{msg}"
    );

    let r = post_json(
        port,
        CHAT,
        &[
            ("authorization", &auth),
            ("x-mock-fault", "status=500; echo_key"),
        ],
        &chat_body(false, false),
    );
    assert_eq!(r.status, 500);
    assert!(r.text().contains(key));

    let r = post_json(
        port,
        "/v1/messages",
        &[("x-api-key", key), ("x-mock-fault", "echo_key")],
        &json!({"messages":[]}),
    );
    assert_eq!(r.status, 401);
    assert!(r.text().contains(key));

    let r = post_json(
        port,
        &format!("/v1beta/models/g:generateContent?key={key}"),
        &[("x-mock-fault", "echo_key")],
        &json!({"contents":[]}),
    );
    assert!(r.text().contains(key));
}

#[test]
fn latency_delays_the_response_headers() {
    let mock = start();
    let t = Instant::now();
    let r = post_json(
        mock.port(),
        CHAT,
        &[("x-mock-fault", "latency_ms=300")],
        &chat_body(false, false),
    );
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[test]
fn chunk_delay_spaces_the_events() {
    let mock = start();
    let t = Instant::now();
    let mut s = client::stream(
        mock.port(),
        "POST",
        CHAT,
        &[("x-mock-fault", "chunk_delay_ms=20")],
        chat_body(true, false).to_string(),
    )
    .unwrap();
    let head_at = t.elapsed();
    let mut events = 0;
    while s.next_chunk().unwrap().is_some() {
        events += 1;
    }
    assert_eq!(events, 13);
    assert!(head_at < Duration::from_millis(200), "headers come first");
    assert!(
        t.elapsed() >= Duration::from_millis(20 * 12),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn instance_faults_with_count_via_control_api() {
    let mock = start();
    let port = mock.port();
    let r = client::request(
        port,
        "POST",
        "/__mock/faults",
        &[],
        r#"{"status":500,"count":3}"#,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let statuses: Vec<u16> = (0..5)
        .map(|_| post_json(port, CHAT, &[], &chat_body(false, false)).status)
        .collect();
    assert_eq!(statuses, vec![500, 500, 500, 200, 200]);
    let e = client::request(port, "POST", "/__mock/faults", &[], r#"{"status":"abc"}"#).unwrap();
    assert_eq!(e.status, 400);
    // header faults override instance faults
    mock.set_faults(Faults {
        status: Some(503),
        ..Faults::default()
    });
    let r = post_json(
        port,
        CHAT,
        &[("x-mock-fault", "status=429")],
        &chat_body(false, false),
    );
    assert_eq!(r.status, 429);
    let r = client::request(port, "DELETE", "/__mock/faults", &[], "").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        post_json(port, CHAT, &[], &chat_body(false, false)).status,
        200
    );
}

#[test]
fn instance_faults_scoped_to_one_api_path_leave_the_others_alone() {
    let mock = start();
    let port = mock.port();
    let r = client::request(
        port,
        "POST",
        "/__mock/faults",
        &[],
        r#"{"status":500,"path_prefix":"/v1/chat/completions"}"#,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        post_json(port, CHAT, &[], &chat_body(false, false)).status,
        500
    );
    let anthropic = post_json(
        port,
        "/v1/messages",
        &[],
        &json!({"model":"claude-sonnet-4","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}),
    );
    assert_eq!(anthropic.status, 200, "{}", anthropic.text());
    assert_eq!(
        post_json(port, CHAT, &[], &chat_body(false, false)).status,
        500
    );
    let bad = client::request(
        port,
        "POST",
        "/__mock/faults",
        &[],
        r#"{"path_prefix":"v1"}"#,
    )
    .unwrap();
    assert_eq!(bad.status, 400);
}

fn fail_pattern(port: u16, n: usize) -> Vec<u16> {
    (0..n)
        .map(|_| post_json(port, CHAT, &[], &chat_body(false, false)).status)
        .collect()
}

#[test]
fn fail_rate_is_seeded_and_reproducible() {
    let mock = start_with(MockOptions {
        fail_rate: Some(0.3),
        seed: 42,
        ..MockOptions::default()
    });
    let port = mock.port();
    let first = fail_pattern(port, 60);
    let failures = first.iter().filter(|s| **s == 500).count();
    assert!((8..=30).contains(&failures), "{failures} of 60");
    mock.reset();
    assert_eq!(fail_pattern(port, 60), first, "same seed, same pattern");
    let r = client::request(
        port,
        "POST",
        "/__mock/faults",
        &[],
        r#"{"fail_rate":0.3,"seed":42}"#,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(fail_pattern(port, 60), first);
    let stats = client::request(port, "GET", "/__mock/stats", &[], "")
        .unwrap()
        .json()
        .unwrap();
    // reset() cleared the stats before the second and third rounds.
    assert_eq!(stats["responses_error"], 2 * failures as u64);
    assert_eq!(stats["requests"], 120);
}

#[test]
fn stream_bytes_produces_a_large_stream_that_still_ends_with_usage() {
    let mock = start();
    let target = 2_000_000u64;
    let fault = format!("stream_bytes={target}");
    let mut s = client::stream(
        mock.port(),
        "POST",
        CHAT,
        &[("x-mock-fault", &fault)],
        chat_body(true, true).to_string(),
    )
    .unwrap();
    let body = String::from_utf8(s.read_to_end().unwrap()).unwrap();
    assert!(
        body.len() as u64 >= target && (body.len() as u64) < target + 10_000,
        "{}",
        body.len()
    );
    let events = client::parse_sse(&body);
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| e.json().unwrap())
        .collect();
    let content_chunks = chunks
        .iter()
        .filter(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        })
        .count() as u64;
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"].as_u64().unwrap(), content_chunks);
    assert!(openai_stream_text(&chunks).starts_with(&reply("openai")));
    assert_eq!(mock.stats().completion_tokens, content_chunks);
}

#[test]
fn bad_fault_header_is_a_400() {
    let mock = start();
    let r = post_json(
        mock.port(),
        CHAT,
        &[("x-mock-fault", "explode=1")],
        &chat_body(false, false),
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("explode"));
}
