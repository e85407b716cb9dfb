//! Response scenarios: a translated stream with usage and masking, a masked provider error body,
//! and an OpenAI stream that ends without its terminator.

use super::*;
use crate::exchange::host::Map;

const ANTHROPIC_KEY: &str = "sk-ant-api03-TestAnthropicKeyAbCdEfGhIjKlMnOpQr-0123";
const OPENAI_KEY: &str = "sk-proj-TestOpenAiKeyAbCdEfGhIjKlMnOpQrStUv0123";
const AWS_KEY: &str = "AKIAIOSFODNN7REALKEY";

/// An Anthropic stream saying "Here: " then an AWS key, 12 tokens in, 7 out.
fn anthropic_stream() -> String {
    let events = [
        ("message_start", r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4","content":[],"usage":{"input_tokens":12,"output_tokens":1}}}"#.to_string()),
        ("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#.to_string()),
        ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Here: "}}"#.to_string()),
        ("content_block_delta", format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{AWS_KEY}"}}}}"#)),
        ("content_block_stop", r#"{"type":"content_block_stop","index":0}"#.to_string()),
        ("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}}"#.to_string()),
        ("message_stop", r#"{"type":"message_stop"}"#.to_string()),
    ];
    events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

fn anthropic_only(extra: &str) -> String {
    format!(
        r#"{{"failover":{{"providers":[
            {{"name":"anthropic","kind":"anthropic","cluster":"anthropic","api_key":{{"value":"{ANTHROPIC_KEY}"}},
              "models":{{"gpt-4o-mini":"claude-sonnet-4"}}}}],
          "routes":[{{"model":"gpt-4o-mini","providers":["anthropic"]}}]}}{extra}}}"#
    )
}

/// The `data:` payloads of an SSE text, `[DONE]` included.
fn data_events(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(str::to_string)
        .collect()
}

/// The `delta.content` of the chunks among `events`, joined.
fn delta_content(events: &[String]) -> String {
    events
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

/// A VM of `config` whose client sends a streamed chat request cut as `request` and whose
/// provider answers 200 with the SSE `stream` cut as `stream`.
fn stream_through(config: &str, request: &[&[u8]], stream: &[&[u8]]) -> (FakeHost, Driver) {
    let mut host = FakeHost::new();
    let vm = vm(&mut host, config);
    let mut r = Driver::new(&vm);
    r.send(&mut host, &chat_headers(&[]), request);
    r.respond(
        &mut host,
        &[(":status", "200"), ("content-type", "text/event-stream")],
        stream,
    );
    (host, r)
}

#[test]
fn a_translated_stream_reports_usage_and_is_masked_at_every_chunking() {
    let stream = anthropic_stream();
    let config = anthropic_only(r#","masking":{"responses":true}"#);
    let body = chat_body("gpt-4o-mini", true);
    for (request_chunks, stream_chunks) in each_chunking(&body, stream.as_bytes()) {
        let (mut host, mut r) = stream_through(&config, &request_chunks, &stream_chunks);
        let sent = r.upstream_json();
        assert_eq!(sent["model"], "claude-sonnet-4");
        assert_eq!(sent["stream"], true);
        assert_eq!(
            host.get(Map::Response, "content-type"),
            Some("text/event-stream")
        );
        let text = r.client_text();
        assert!(
            !text.contains(AWS_KEY),
            "the key reached the client: {text}"
        );
        assert!(text.contains("[REDACTED:"), "{text}");
        let events = data_events(&text);
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
        let content = delta_content(&events);
        assert!(content.starts_with("Here: [REDACTED:"), "{content}");
        r.log(&mut host);
        assert_eq!(
            host.property_text("tollgate_input_tokens").as_deref(),
            Some("12")
        );
        assert_eq!(
            host.property_text("tollgate_output_tokens").as_deref(),
            Some("7")
        );
        assert_eq!(
            host.property_text("tollgate_usage_complete").as_deref(),
            Some("true")
        );
        assert_eq!(
            host.property_text("tollgate_masked_count").as_deref(),
            Some("1")
        );
        // Behaviour 8: the access log shows the client's path and the provider's apart.
        assert_eq!(
            host.property_text("tollgate_path").as_deref(),
            Some("/v1/chat/completions")
        );
        assert_eq!(
            host.property_text("tollgate_provider_path").as_deref(),
            Some("/v1/messages")
        );
    }
}

/// An Anthropic stream whose second text delta is `big` (an event of about 100 + `big.len()`
/// bytes) and whose other events are small.
fn anthropic_stream_with_delta(big: &str) -> String {
    anthropic_stream().replace(AWS_KEY, big)
}

#[test]
fn an_oversized_event_ends_a_translated_stream_at_every_chunking() {
    // `usage.max_event_bytes` is 1024 (its floor): the 1,100-byte delta is over it, every other
    // event is under.
    let big = "y".repeat(1100);
    let stream = anthropic_stream_with_delta(&big);
    let config = anthropic_only(r#","usage":{"max_event_bytes":1024}"#);
    let body = chat_body("gpt-4o-mini", true);
    for (request_chunks, stream_chunks) in each_chunking(&body, stream.as_bytes()) {
        let (_, r) = stream_through(&config, &request_chunks, &stream_chunks);
        let text = r.client_text();
        assert!(
            !text.contains("yyyy"),
            "the oversized event was translated: {text}"
        );
        let events = data_events(&text);
        assert_eq!(delta_content(&events), "Here: ", "{text}");
        let error = events
            .iter()
            .filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok())
            .find(|v| v.get("error").is_some());
        assert_eq!(
            error.as_ref().map(|v| v["error"]["code"].clone()),
            Some(serde_json::json!("upstream_event_too_large")),
            "{text}"
        );
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
        assert_eq!(
            events.iter().filter(|e| *e == "[DONE]").count(),
            1,
            "{text}"
        );
    }
}

#[test]
fn a_translated_stream_under_max_event_bytes_is_translated_whole() {
    // The same stream with a cap above its largest event: nothing is cut.
    let big = "y".repeat(1100);
    let stream = anthropic_stream_with_delta(&big);
    let config = anthropic_only(r#","usage":{"max_event_bytes":2048}"#);
    let body = chat_body("gpt-4o-mini", true);
    for stream_chunks in some_chunkings(stream.as_bytes(), 97) {
        let (_, r) = stream_through(&config, &[&body], &stream_chunks);
        let text = r.client_text();
        assert!(text.contains(&big), "{text}");
        assert!(!text.contains("upstream_event_too_large"), "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    }
}

#[test]
fn a_provider_error_echoing_the_key_reaches_the_client_masked_at_every_chunking() {
    let config = format!(
        r#"{{"failover":{{"providers":[
            {{"name":"openai","kind":"openai","cluster":"openai","api_key":{{"value":"{OPENAI_KEY}"}}}}],
          "routes":[{{"model":"gpt-4o-mini","providers":["openai"]}}]}}}}"#
    );
    let error = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {OPENAI_KEY}","type":"invalid_request_error","code":"invalid_api_key"}}}}"#
    );
    let body = chat_body("gpt-4o-mini", false);
    for (request_chunks, error_chunks) in each_chunking(&body, error.as_bytes()) {
        let mut host = FakeHost::new();
        let vm = vm(&mut host, &config);
        let mut r = Driver::new(&vm);
        r.send(&mut host, &chat_headers(&[]), &request_chunks);
        r.respond(
            &mut host,
            &[(":status", "401"), ("content-type", "application/json")],
            &error_chunks,
        );
        assert!(r.client_released);
        let text = r.client_text();
        assert!(!text.contains(OPENAI_KEY), "{text}");
        assert!(text.contains("[REDACTED:"), "{text}");
        assert!(
            serde_json::from_slice::<serde_json::Value>(&r.client).is_ok(),
            "{text}"
        );
        r.log(&mut host);
        assert_eq!(
            host.metric(
                "kind=.=known_secret;.;place=.=error_body;.;tollgate_masked_findings_total"
            ),
            1,
            "{:?}",
            host.metric_defs.keys().collect::<Vec<_>>()
        );
    }
}

const OPENAI_STREAM_NO_DONE: &str = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n";

#[test]
fn an_openai_stream_ending_without_done_is_ended_with_an_error_event_at_every_chunking() {
    // Behaviour 2: the client received it as if it were complete.
    for chunks in chunkings(OPENAI_STREAM_NO_DONE.as_bytes()) {
        let mut host = FakeHost::new();
        let vm = vm(&mut host, "{}");
        let mut r = Driver::new(&vm);
        r.send(
            &mut host,
            &chat_headers(&[]),
            &[&chat_body("gpt-4o-mini", true)],
        );
        r.respond(
            &mut host,
            &[(":status", "200"), ("content-type", "text/event-stream")],
            &chunks,
        );
        let text = r.client_text();
        assert!(text.starts_with(OPENAI_STREAM_NO_DONE), "{text}");
        let events = data_events(&text);
        assert_eq!(events.len(), 4, "{text}");
        let error: serde_json::Value = serde_json::from_str(&events[2]).unwrap();
        assert_eq!(error["error"]["code"], "incomplete_stream");
        assert_eq!(events[3], "[DONE]");
    }
}

#[test]
fn a_complete_openai_stream_is_left_as_it_is() {
    let complete = format!("{OPENAI_STREAM_NO_DONE}data: [DONE]\n\n");
    for chunks in chunkings(complete.as_bytes()) {
        let mut host = FakeHost::new();
        let vm = vm(&mut host, "{}");
        let mut r = Driver::new(&vm);
        r.send(
            &mut host,
            &chat_headers(&[]),
            &[&chat_body("gpt-4o-mini", true)],
        );
        r.respond(
            &mut host,
            &[(":status", "200"), ("content-type", "text/event-stream")],
            &chunks,
        );
        assert_eq!(r.client_text(), complete);
    }
}
