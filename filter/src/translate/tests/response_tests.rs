//! Whole-response and error-body translation.

use serde_json::{json, Value};

use crate::translate::{
    anthropic_to_openai, anthropic_to_openai_at, client_status_for_provider_status,
    gemini_to_openai, gemini_to_openai_at, provider_error_to_openai, stream_error_event,
    SourceFormat,
};

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn anthropic_tool_use_response() {
    let body = include_bytes!("../fixtures/anthropic_message_tool.json");
    let out = parse(&anthropic_to_openai_at(body, "gpt-4o", 1_700_000_000).unwrap());
    assert_eq!(
        out,
        json!({
            "id": "chatcmpl-msg_01Aq9w938a90dw8q",
            "object": "chat.completion",
            "created": 1_700_000_000u64,
            "model": "gpt-4o",
            "system_fingerprint": null,
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "I'll check the weather for you.",
                    "refusal": null,
                    "tool_calls": [{
                        "id": "toolu_01A09q90qw90lq917835lq9",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"location\":\"San Francisco, CA\",\"unit\":\"celsius\"}"}
                    }]
                },
                "logprobs": null,
                "finish_reason": "tool_calls"
            }],
            "usage": {
                "prompt_tokens": 3195,
                "completion_tokens": 503,
                "total_tokens": 3698,
                "prompt_tokens_details": {"cached_tokens": 1000},
                "completion_tokens_details": {"reasoning_tokens": 0}
            }
        })
    );
}

#[test]
fn anthropic_finish_reasons_and_text_only() {
    let reply = |stop: &str| {
        let body = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "text", "text": "Hi"}],
            "stop_reason": stop, "stop_sequence": null,
            "usage": {"input_tokens": 3, "output_tokens": 1}
        });
        parse(&anthropic_to_openai(body.to_string().as_bytes(), "m").unwrap())
    };
    let out = reply("end_turn");
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    assert_eq!(out["choices"][0]["message"]["content"], "Hi");
    assert!(out["choices"][0]["message"].get("tool_calls").is_none());
    assert_eq!(out["usage"]["total_tokens"], 4);
    assert_eq!(
        reply("stop_sequence")["choices"][0]["finish_reason"],
        "stop"
    );
    assert_eq!(reply("max_tokens")["choices"][0]["finish_reason"], "length");
    assert_eq!(
        reply("tool_use")["choices"][0]["finish_reason"],
        "tool_calls"
    );
    assert_eq!(
        reply("refusal")["choices"][0]["finish_reason"],
        "content_filter"
    );
    assert!(anthropic_to_openai(b"garbage", "m").is_err());
    assert!(anthropic_to_openai(
        br#"{"type":"error","error":{"type":"api_error","message":"x"}}"#,
        "m"
    )
    .is_err());
}

#[test]
fn gemini_tool_response() {
    let body = include_bytes!("../fixtures/gemini_response_tool.json");
    let out = parse(&gemini_to_openai_at(body, "gpt-4o", 42).unwrap());
    assert_eq!(
        out,
        json!({
            "id": "chatcmpl-abcResp42",
            "object": "chat.completion",
            "created": 42,
            "model": "gpt-4o",
            "system_fingerprint": null,
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Checking both cities.",
                    "refusal": null,
                    "tool_calls": [
                        {"id": "call_abcResp42_0__thought__CiQB0e2Kb+sig/A==", "type": "function",
                         "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}},
                        {"id": "call_abcResp42_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": "{\"location\":\"London\"}"}}
                    ]
                },
                "logprobs": null,
                "finish_reason": "tool_calls"
            }],
            "usage": {
                "prompt_tokens": 70,
                "completion_tokens": 70,
                "total_tokens": 140,
                "prompt_tokens_details": {"cached_tokens": 32},
                "completion_tokens_details": {"reasoning_tokens": 50}
            }
        })
    );
}

#[test]
fn gemini_finish_reasons_and_blocked_prompt() {
    let reply = |reason: &str| {
        let body = json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": "abc"}]}, "finishReason": reason}],
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7}
        });
        parse(&gemini_to_openai(body.to_string().as_bytes(), "m").unwrap())
    };
    assert_eq!(reply("STOP")["choices"][0]["finish_reason"], "stop");
    assert_eq!(reply("MAX_TOKENS")["choices"][0]["finish_reason"], "length");
    assert_eq!(
        reply("SAFETY")["choices"][0]["finish_reason"],
        "content_filter"
    );
    assert_eq!(
        reply("RECITATION")["choices"][0]["finish_reason"],
        "content_filter"
    );
    assert_eq!(reply("STOP")["usage"]["total_tokens"], 7);
    // Without responseId the id is a digest, stable for the same body.
    assert_eq!(reply("STOP")["id"], reply("STOP")["id"]);

    let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 8}});
    let out = parse(&gemini_to_openai(blocked.to_string().as_bytes(), "m").unwrap());
    assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(out["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(out["usage"]["prompt_tokens"], 8);
    assert!(gemini_to_openai(b"[", "m").is_err());
}

#[test]
fn provider_errors_map_to_openai_errors() {
    let anthropic = parse(&provider_error_to_openai(
        429,
        br#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#,
        SourceFormat::Anthropic,
    ));
    assert_eq!(
        anthropic,
        json!({"error": {
            "message": "Number of request tokens has exceeded your per-minute rate limit",
            "type": "rate_limit_error", "param": null, "code": "rate_limit_exceeded"
        }})
    );
    let overloaded = parse(&provider_error_to_openai(
        529,
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#,
        SourceFormat::Anthropic,
    ));
    assert_eq!(overloaded["error"]["type"], "server_error");
    assert_eq!(overloaded["error"]["code"], "overloaded");
    assert_eq!(client_status_for_provider_status(529), 503);
    assert_eq!(client_status_for_provider_status(429), 429);

    let gemini = parse(&provider_error_to_openai(
        400,
        br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#,
        SourceFormat::Gemini,
    ));
    assert_eq!(
        gemini,
        json!({"error": {
            "message": "API key not valid. Please pass a valid API key.",
            "type": "invalid_request_error", "param": null, "code": "invalid_argument"
        }})
    );
    let gemini_array = parse(&provider_error_to_openai(
        429,
        br#"[{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}]"#,
        SourceFormat::Gemini,
    ));
    assert_eq!(gemini_array["error"]["type"], "rate_limit_error");
    assert_eq!(gemini_array["error"]["code"], "rate_limit_exceeded");

    let html = parse(&provider_error_to_openai(
        502,
        b"<html>Bad Gateway</html>",
        SourceFormat::Gemini,
    ));
    assert_eq!(html["error"]["type"], "server_error");
    assert_eq!(
        html["error"]["message"],
        "gemini returned HTTP 502: <html>Bad Gateway</html>"
    );
    let empty = parse(&provider_error_to_openai(401, b"", SourceFormat::Anthropic));
    assert_eq!(empty["error"]["code"], "invalid_api_key");
    assert_eq!(empty["error"]["message"], "anthropic returned HTTP 401");
}

#[test]
fn stream_error_event_is_an_sse_error_then_done() {
    let bytes = stream_error_event("upstream timed out", "upstream_timeout");
    let text = String::from_utf8(bytes).unwrap();
    let events: Vec<&str> = text.split_terminator("\n\n").collect();
    assert_eq!(events.len(), 2);
    let error: Value = serde_json::from_str(events[0].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(
        error,
        json!({"error": {"message": "upstream timed out", "type": "server_error", "param": null, "code": "upstream_timeout"}})
    );
    assert_eq!(events[1], "data: [DONE]");
}

#[test]
fn empty_answers_have_empty_string_content() {
    let anthropic = json!({"id": "msg_2", "type": "message", "role": "assistant", "content": [],
        "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 0}});
    let out = parse(&anthropic_to_openai(anthropic.to_string().as_bytes(), "m").unwrap());
    assert_eq!(out["choices"][0]["message"]["content"], "");
    let gemini = json!({"candidates": [{"content": {"role": "model", "parts": []}, "finishReason": "STOP"}]});
    let out = parse(&gemini_to_openai(gemini.to_string().as_bytes(), "m").unwrap());
    assert_eq!(out["choices"][0]["message"]["content"], "");
    assert_eq!(out["usage"]["total_tokens"], 0);
}
