//! Failover scenarios: tollgate routing itself (held answer replaced by a callout's), every
//! provider failing, retries on one provider, fallbacks the request cannot be written for, and
//! a walked route whose retry Envoy refused.

use super::*;
use crate::exchange::host::Map;

const OPENAI_KEY: &str = "sk-proj-TestOpenAiKeyAbCdEfGhIjKlMnOpQrStUv0123";
const ANTHROPIC_KEY: &str = "sk-ant-api03-TestAnthropicKeyAbCdEfGhIjKlMnOpQr-0123";

/// Two providers for `gpt-4o-mini`, OpenAI first; `openai_retries` retries on OpenAI.
fn config(openai_retries: u32, extra: &str) -> String {
    format!(
        r#"{{"failover":{{"providers":[
            {{"name":"openai","kind":"openai","cluster":"openai","api_key":{{"value":"{OPENAI_KEY}"}},"max_retries":{openai_retries}}},
            {{"name":"anthropic","kind":"anthropic","cluster":"anthropic","api_key":{{"value":"{ANTHROPIC_KEY}"}},
              "models":{{"gpt-4o-mini":"claude-sonnet-4"}},"max_retries":0}}],
          "routes":[{{"model":"gpt-4o-mini","providers":["openai","anthropic"]}}]}}{extra}}}"#
    )
}

pub const ANTHROPIC_ANSWER: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4","content":[{"type":"text","text":"Hi there"}],"stop_reason":"end_turn","usage":{"input_tokens":12,"output_tokens":5}}"#;

const OPENAI_500: &str = r#"{"error":{"message":"boom","type":"server_error"}}"#;

#[test]
fn own_routed_500_fails_over_to_a_translated_answer_at_every_chunking() {
    let body = chat_body("gpt-4o-mini", false);
    for (request_chunks, error_chunks) in each_chunking(&body, OPENAI_500.as_bytes()) {
        {
            for callout_first in [true, false] {
                let mut host = FakeHost::new();
                let vm = super::vm(&mut host, &config(0, ""));
                let mut r = Driver::new(&vm);
                r.send(
                    &mut host,
                    &chat_headers(&[("authorization", "Bearer client")]),
                    &request_chunks,
                );
                assert!(r.upstream_released);
                assert_eq!(host.get(Map::Request, "x-tollgate-cluster"), Some("openai"));
                assert_eq!(
                    host.get(Map::Request, "authorization"),
                    Some(format!("Bearer {OPENAI_KEY}").as_str())
                );
                assert_eq!(r.upstream_json()["model"], "gpt-4o-mini");
                // The primary answers 500: held, and the fallback is asked by callout.
                let headers = [(":status", "500"), ("content-type", "application/json")];
                if callout_first {
                    r.respond_headers(&mut host, &headers, false);
                } else {
                    r.respond(&mut host, &headers, &error_chunks);
                }
                assert!(!r.client_released, "the failed answer is held");
                assert_eq!(host.calls.len(), 1);
                let call = host.calls[0].clone();
                assert_eq!(call.cluster, "anthropic");
                assert_eq!(call.header(":path"), Some("/v1/messages"));
                assert_eq!(call.header("x-api-key"), Some(ANTHROPIC_KEY));
                let sent: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
                assert_eq!(sent["model"], "claude-sonnet-4");
                r.answer(
                    &mut host,
                    call.token,
                    Some(200),
                    &[("content-type", "application/json")],
                    ANTHROPIC_ANSWER.as_bytes(),
                );
                if callout_first {
                    for (i, c) in error_chunks.iter().enumerate() {
                        r.response_chunk(&mut host, c, i + 1 == error_chunks.len());
                    }
                }
                assert!(r.client_released);
                assert_eq!(host.get(Map::Response, ":status"), Some("200"));
                let answer: serde_json::Value = serde_json::from_slice(&r.client).unwrap();
                assert_eq!(answer["object"], "chat.completion");
                assert_eq!(answer["model"], "gpt-4o-mini");
                assert_eq!(answer["choices"][0]["message"]["content"], "Hi there");
                r.log(&mut host);
                assert_eq!(
                    host.property_text("tollgate_provider").as_deref(),
                    Some("anthropic")
                );
                assert_eq!(
                    host.property_text("tollgate_input_tokens").as_deref(),
                    Some("12")
                );
                assert_eq!(host.metric_sum("tollgate_failovers_total"), 1);
            }
        }
    }
}

#[test]
fn an_oversized_event_in_a_failover_stream_ends_it_at_every_chunking() {
    // The fallback's stream (a callout answer) is translated under `usage.max_event_bytes` too.
    let big = "y".repeat(1100);
    let stream: String = [
        ("message_start", r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4","content":[],"usage":{"input_tokens":12,"output_tokens":1}}}"#.to_string()),
        ("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#.to_string()),
        ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi "}}"#.to_string()),
        ("content_block_delta", format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{big}"}}}}"#)),
        ("message_stop", r#"{"type":"message_stop"}"#.to_string()),
    ]
    .iter()
    .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
    .collect();
    let config = config(0, r#","usage":{"max_event_bytes":1024}"#);
    let body = chat_body("gpt-4o-mini", true);
    for request_chunks in chunkings(&body) {
        let mut host = FakeHost::new();
        let vm = super::vm(&mut host, &config);
        let mut r = Driver::new(&vm);
        r.send(&mut host, &chat_headers(&[]), &request_chunks);
        r.respond(
            &mut host,
            &[(":status", "500"), ("content-type", "application/json")],
            &[OPENAI_500.as_bytes()],
        );
        let token = host
            .calls
            .first()
            .map(|c| c.token)
            .expect("a fallback callout");
        r.answer(
            &mut host,
            token,
            Some(200),
            &[("content-type", "text/event-stream")],
            stream.as_bytes(),
        );
        assert!(r.client_released);
        let text = r.client_text();
        assert!(text.contains(r#""content":"Hi ""#), "{text}");
        assert!(
            !text.contains("yyyy"),
            "the oversized event was translated: {text}"
        );
        assert!(text.contains("upstream_event_too_large"), "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    }
}

/// Runs a request whose primary answers 500 and then answers each callout with `answers`.
fn fail_every_callout(config: &str, answers: &[Option<u16>]) -> (FakeHost, Driver) {
    let mut host = FakeHost::new();
    let vm = super::vm(&mut host, config);
    let mut r = Driver::new(&vm);
    r.send(
        &mut host,
        &chat_headers(&[]),
        &[&chat_body("gpt-4o-mini", false)],
    );
    host.advance_ms(40);
    r.respond(
        &mut host,
        &[(":status", "500"), ("content-type", "application/json")],
        &[OPENAI_500.as_bytes()],
    );
    for (i, status) in answers.iter().enumerate() {
        let token = host
            .calls
            .get(i)
            .map(|c| c.token)
            .expect("a callout per failed attempt");
        host.advance_ms(10);
        let body = if status.is_some() {
            OPENAI_500.as_bytes()
        } else {
            b""
        };
        r.answer(
            &mut host,
            token,
            *status,
            &[("content-type", "application/json")],
            body,
        );
    }
    (host, r)
}

#[test]
fn every_provider_failing_gives_the_one_all_failed_reply() {
    let (host, r) = fail_every_callout(&config(0, ""), &[Some(503)]);
    assert_eq!(
        host.calls.len(),
        1,
        "no provider is left after the fallback"
    );
    assert!(r.client_released);
    assert_eq!(host.get(Map::Response, ":status"), Some("503"));
    let reply: serde_json::Value = serde_json::from_slice(&r.client).unwrap();
    assert_eq!(reply["error"]["code"], "all_providers_failed");
    assert_eq!(reply["error"]["request_id"], r.ex.request_id());
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "every provider failed: openai: 500 after 40 ms; anthropic: 503 after 10 ms"
        ),
        "{message}"
    );
    assert!(!r.client_text().contains(OPENAI_KEY) && !r.client_text().contains(ANTHROPIC_KEY));
}

#[test]
fn max_retries_retries_the_same_provider_before_failing_over() {
    let (host, r) = fail_every_callout(&config(1, ""), &[None, Some(500)]);
    let clusters: Vec<&str> = host.calls.iter().map(|c| c.cluster.as_str()).collect();
    assert_eq!(
        clusters,
        ["openai", "anthropic"],
        "one retry on openai, then anthropic"
    );
    let reply: serde_json::Value = serde_json::from_slice(&r.client).unwrap();
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("openai: 500 after 40 ms; openai: timeout after 10 ms; anthropic: 500"),
        "{message}"
    );
}

#[test]
fn a_fallback_the_request_cannot_be_written_for_is_skipped() {
    // Behaviour 5: `n: 2` has no Anthropic equivalent; failover used to stop there.
    let config = r#"{"failover":{"providers":[
            {"name":"openai","kind":"openai","cluster":"openai","max_retries":0},
            {"name":"anthropic","kind":"anthropic","cluster":"anthropic","max_retries":0},
            {"name":"backup","kind":"openai-compatible","cluster":"backup","max_retries":0}],
          "routes":[{"model":"gpt-4o-mini","providers":["openai","anthropic","backup"]}]}}"#;
    let body = br#"{"model":"gpt-4o-mini","n":2,"messages":[{"role":"user","content":"hi"}]}"#;
    for chunks in chunkings(body) {
        let mut host = FakeHost::new();
        let vm = super::vm(&mut host, config);
        let mut r = Driver::new(&vm);
        r.send(&mut host, &chat_headers(&[]), &chunks);
        r.respond(&mut host, &[(":status", "502")], &[b"bad gateway"]);
        assert_eq!(host.calls.len(), 1);
        assert_eq!(
            host.calls[0].cluster, "backup",
            "anthropic skipped, backup asked"
        );
        let token = host.calls[0].token;
        r.answer(
            &mut host,
            token,
            Some(200),
            &[("content-type", "application/json")],
            br#"{"id":"x","object":"chat.completion","choices":[]}"#,
        );
        assert_eq!(host.get(Map::Response, ":status"), Some("200"));
        assert!(r.client_text().contains("chat.completion"));
    }
}

#[test]
fn a_primary_the_request_cannot_be_written_for_is_skipped_too() {
    let config = r#"{"failover":{"providers":[
            {"name":"anthropic","kind":"anthropic","cluster":"anthropic"},
            {"name":"openai","kind":"openai","cluster":"openai"}],
          "routes":[{"model":"m","providers":["anthropic","openai"]}]}}"#;
    let mut host = FakeHost::new();
    let vm = super::vm(&mut host, config);
    let mut r = Driver::new(&vm);
    r.send(
        &mut host,
        &chat_headers(&[]),
        &[br#"{"model":"m","n":2,"messages":[]}"#],
    );
    assert!(host.replies.is_empty());
    assert_eq!(host.get(Map::Request, "x-tollgate-cluster"), Some("openai"));
    // Nothing can take it: the client's mistake is a 400 naming it.
    let config = r#"{"failover":{"providers":[{"name":"anthropic","kind":"anthropic","cluster":"anthropic"}],
          "routes":[{"model":"m","providers":["anthropic"]}]}}"#;
    let mut host = FakeHost::new();
    let vm = super::vm(&mut host, config);
    let mut r = Driver::new(&vm);
    r.send(
        &mut host,
        &chat_headers(&[]),
        &[br#"{"model":"m","n":2,"messages":[]}"#],
    );
    assert_eq!(host.replies.len(), 1);
    assert_eq!(host.replies[0].status, 400);
    assert_eq!(
        host.replies[0].json()["error"]["code"],
        "unsupported_parameter"
    );
}

#[test]
fn failover_callouts_carry_the_configured_request_id_header_and_the_trace() {
    // Behaviour 6: the callout sent a hard-coded `x-request-id` and no `traceparent`.
    let extra = r#","correlation":{"request_id_header":"x-tollgate-id"}"#;
    let mut host = FakeHost::new();
    let vm = super::vm(&mut host, &config(0, extra));
    let mut r = Driver::new(&vm);
    let trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    r.send(
        &mut host,
        &chat_headers(&[
            ("x-tollgate-id", "abc-123"),
            ("traceparent", trace),
            ("tracestate", "k=v"),
        ]),
        &[&chat_body("gpt-4o-mini", false)],
    );
    let upstream_trace = host.get(Map::Request, "traceparent").unwrap().to_string();
    r.respond(&mut host, &[(":status", "500")], &[b"x"]);
    let call = &host.calls[0];
    assert_eq!(call.header("x-tollgate-id"), Some("abc-123"));
    assert_eq!(call.header("x-request-id"), None);
    assert_eq!(call.header("traceparent"), Some(upstream_trace.as_str()));
    assert!(upstream_trace.contains("0af7651916cd43dd8448eb211c80319c"));
    assert_eq!(call.header("tracestate"), Some("k=v"));
}

#[test]
fn the_up_front_refusal_names_the_reasons_in_words() {
    // Behaviour 4: the 503 printed `CircuitOpen { until_ms: … }`.
    let config = r#"{"failover":{"providers":[
            {"name":"openai","kind":"openai","cluster":"openai","max_retries":0,"circuit":{"failure_threshold":1,"cooldown_ms":30000}}],
          "routes":[{"model":"gpt-4o-mini","providers":["openai"]}]}}"#;
    let mut host = FakeHost::new();
    let vm = super::vm(&mut host, config);
    let (mut first, mut second) = (Driver::new(&vm), Driver::new(&vm));
    first.send(
        &mut host,
        &chat_headers(&[]),
        &[&chat_body("gpt-4o-mini", false)],
    );
    first.respond(&mut host, &[(":status", "500")], &[b"x"]);
    first.log(&mut host);
    second.send(
        &mut host,
        &chat_headers(&[]),
        &[&chat_body("gpt-4o-mini", false)],
    );
    let reply = host.replies.last().unwrap();
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after"), Some("30"));
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        message,
        "no provider can serve model \"gpt-4o-mini\" right now: openai failed repeatedly and is paused for 30 s; retry in 30 s"
    );
}

/// A walked route over three providers (Envoy's aggregate cluster `llm`).
fn walked_config() -> String {
    r#"{"failover":{"providers":[
        {"name":"openai","kind":"openai","cluster":"openai"},
        {"name":"anthropic","kind":"anthropic","cluster":"anthropic","models":{"gpt-4o-mini":"claude-sonnet-4"}},
        {"name":"backup","kind":"openai-compatible","cluster":"backup"}],
      "routes":[{"model":"gpt-4o-mini","providers":["openai","anthropic","backup"],"cluster":"llm"}]}}"#
        .to_string()
}

#[test]
fn walked_route_whose_retry_envoy_refused_goes_to_the_next_untried_provider() {
    // Behaviour 3: Envoy's retry circuit breaker overflowed after the first attempt; the
    // listener used to answer "every provider failed" with two providers never tried.
    let body = chat_body("gpt-4o-mini", false);
    for chunks in some_chunkings(OPENAI_500.as_bytes(), 5) {
        let mut host = FakeHost::new();
        let vm = super::vm(&mut host, &walked_config());
        let mut r = Driver::new(&vm);
        r.send(&mut host, &chat_headers(&[]), &[&body]);
        assert_eq!(host.get(Map::Request, "x-tollgate-cluster"), Some("llm"));
        r.respond(
            &mut host,
            &[
                (":status", "500"),
                ("content-type", "application/json"),
                ("x-tollgate-provider", "openai"),
                ("x-tollgate-carry", "p=/v1/chat/completions;a=openai,500,20"),
            ],
            &chunks,
        );
        assert!(!r.client_released);
        assert_eq!(host.calls.len(), 1);
        assert_eq!(host.calls[0].cluster, "anthropic");
        let token = host.calls[0].token;
        r.answer(
            &mut host,
            token,
            Some(200),
            &[("content-type", "application/json")],
            ANTHROPIC_ANSWER.as_bytes(),
        );
        assert_eq!(host.get(Map::Response, ":status"), Some("200"));
        assert_eq!(host.get(Map::Response, "x-tollgate-provider"), None);
        let answer: serde_json::Value = serde_json::from_slice(&r.client).unwrap();
        assert_eq!(answer["choices"][0]["message"]["content"], "Hi there");
    }
}

#[test]
fn walked_route_where_every_provider_reset_gets_the_openai_shaped_summary() {
    // Behaviour 1: every attempt reset (Envoy's own 503, no provider named); the client got a
    // 503 with an empty body.
    let mut host = FakeHost::new();
    let vm = super::vm(&mut host, &walked_config());
    let mut r = Driver::new(&vm);
    r.send(
        &mut host,
        &chat_headers(&[]),
        &[&chat_body("gpt-4o-mini", false)],
    );
    host.set_map(
        Map::Request,
        &[("x-tollgate-carry", "p=/v1/chat/completions;a=openai,no_response,3|anthropic,no_response,4|backup,no_response,2")],
    );
    r.respond(
        &mut host,
        &[(":status", "503"), ("content-type", "text/plain")],
        &[b"upstream connect error or disconnect/reset before headers"],
    );
    assert!(host.calls.is_empty(), "every provider was tried");
    assert!(r.client_released);
    assert_eq!(host.get(Map::Response, ":status"), Some("503"));
    assert_eq!(
        host.get(Map::Response, "content-type"),
        Some("application/json")
    );
    let reply: serde_json::Value = serde_json::from_slice(&r.client).unwrap();
    assert_eq!(reply["error"]["code"], "all_providers_failed");
    assert_eq!(reply["error"]["request_id"], r.ex.request_id());
    assert_eq!(
        reply["error"]["message"],
        "every provider failed: openai: no response after 3 ms; anthropic: no response after 4 ms; backup: no response after 2 ms"
    );
}

#[test]
fn the_upstream_stages_catalog_error_reaches_the_client_as_it_is() {
    // A 500 from the upstream stage itself (no catalog) is a misconfiguration: not taken over
    // nor summarised as "every provider failed".
    let mut host = FakeHost::new();
    let vm = super::vm(&mut host, &walked_config());
    let mut r = Driver::new(&vm);
    r.send(
        &mut host,
        &chat_headers(&[]),
        &[&chat_body("gpt-4o-mini", false)],
    );
    let error = br#"{"error":{"message":"tollgate is misconfigured","type":"internal_error","code":"failover_catalog_missing","request_id":"x"}}"#;
    r.respond(
        &mut host,
        &[
            (":status", "500"),
            ("content-type", "application/json"),
            ("x-tollgate-stage-error", "failover_catalog_missing"),
        ],
        &[error],
    );
    assert!(
        host.calls.is_empty(),
        "no provider is called by the listener"
    );
    assert_eq!(host.get(Map::Response, ":status"), Some("500"));
    assert_eq!(host.get(Map::Response, "x-tollgate-stage-error"), None);
    let reply: serde_json::Value = serde_json::from_slice(&r.client).unwrap();
    assert_eq!(reply["error"]["code"], "failover_catalog_missing");
}
