//! Wire-format tests: every provider endpoint over real TCP, parsed as the
//! provider's clients would, with the usage numbers checked.

mod common;

use common::*;
use serde_json::{json, Value};
use tollgate_mock_provider::client;
use tollgate_mock_provider::MockOptions;

#[test]
fn openai_chat_json() {
    let mock = start();
    let r = post_json(
        mock.port(),
        "/v1/chat/completions",
        &[],
        &chat_body(false, false),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("content-length").is_some());
    let v = r.json().unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(v["model"], "gpt-4o-mini");
    assert_eq!(v["choices"][0]["index"], 0);
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], reply("openai"));
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let u = &v["usage"];
    assert_eq!(u["prompt_tokens"], PROMPT_TOKENS);
    assert_eq!(u["completion_tokens"], COMPLETION_TOKENS);
    assert_eq!(u["total_tokens"], PROMPT_TOKENS + COMPLETION_TOKENS);
    assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(u["completion_tokens_details"]["reasoning_tokens"], 0);
    let s = mock.stats();
    assert_eq!(
        (s.requests, s.prompt_tokens, s.completion_tokens),
        (1, 9, 10)
    );
}

#[test]
fn openai_chat_accepts_any_chat_completions_path_and_parts() {
    let mock = start();
    let body = json!({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"abcd"},{"type":"text","text":"efgh"}]}]});
    let r = post_json(
        mock.port(),
        "/openai/deployments/x/chat/completions?api-version=1",
        &[],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().unwrap();
    assert_eq!(v["usage"]["prompt_tokens"], 2);
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "This is a mock openai reply to: abcdefgh"
    );
}

#[test]
fn openai_chat_stream_with_usage() {
    let mock = start();
    let r = post_json(
        mock.port(),
        "/v1/chat/completions",
        &[],
        &chat_body(true, true),
    );
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    let events = r.sse_events();
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| e.json().unwrap())
        .collect();
    // role chunk + one per word + finish chunk + usage chunk
    assert_eq!(chunks.len(), 1 + COMPLETION_TOKENS as usize + 2);
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(openai_stream_text(&chunks), reply("openai"));
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    for c in &chunks[..chunks.len() - 1] {
        assert!(c.get("usage").unwrap().is_null(), "{c}");
    }
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], PROMPT_TOKENS);
    assert_eq!(last["usage"]["completion_tokens"], COMPLETION_TOKENS);
    assert_eq!(
        last["usage"]["total_tokens"],
        PROMPT_TOKENS + COMPLETION_TOKENS
    );
    assert_eq!(mock.stats().completion_tokens, COMPLETION_TOKENS);
}

#[test]
fn openai_chat_stream_without_usage_has_no_usage_field() {
    let mock = start();
    let r = post_json(
        mock.port(),
        "/v1/chat/completions",
        &[],
        &chat_body(true, false),
    );
    let events = r.sse_events();
    assert_eq!(events.last().unwrap().data, "[DONE]");
    for e in &events[..events.len() - 1] {
        let v = e.json().unwrap();
        assert!(v.get("usage").is_none(), "{v}");
    }
    assert_eq!(mock.stats().completion_tokens, 0, "nothing was reported");
    assert_eq!(mock.stats().responses_ok, 1);
}

#[test]
fn stream_events_arrive_one_chunk_per_event() {
    let mock = start();
    let mut s = client::stream(
        mock.port(),
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        chat_body(true, true).to_string(),
    )
    .unwrap();
    let mut chunks = Vec::new();
    while let Some(c) = s.next_chunk().unwrap() {
        chunks.push(String::from_utf8(c).unwrap());
    }
    assert!(s.is_complete());
    assert_eq!(chunks.len(), 1 + COMPLETION_TOKENS as usize + 3);
    assert!(chunks
        .iter()
        .all(|c| c.starts_with("data: ") && c.ends_with("\n\n")));
}

#[test]
fn vllm_usage_in_every_chunk() {
    let mock = start_with(MockOptions {
        usage_in_every_chunk: true,
        ..MockOptions::default()
    });
    let r = post_json(
        mock.port(),
        "/v1/chat/completions",
        &[],
        &chat_body(true, true),
    );
    let events = r.sse_events();
    let chunks: Vec<Value> = events.iter().filter_map(|e| e.json()).collect();
    let mut last_completion = 0;
    for c in &chunks {
        let u = &c["usage"];
        assert_eq!(u["prompt_tokens"], PROMPT_TOKENS, "{c}");
        let completion = u["completion_tokens"].as_u64().unwrap();
        assert!(completion >= last_completion);
        last_completion = completion;
        assert_eq!(
            u["total_tokens"].as_u64().unwrap(),
            PROMPT_TOKENS + completion
        );
    }
    assert_eq!(last_completion, COMPLETION_TOKENS);
    assert_eq!(chunks.last().unwrap()["choices"], json!([]));
}

#[test]
fn openai_embeddings() {
    let mock = start();
    let body = json!({"model":"text-embedding-3-small","input":["abcdefgh","ijkl"],"dimensions":8});
    let v = post_json(mock.port(), "/v1/embeddings", &[], &body)
        .json()
        .unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["data"][0]["object"], "embedding");
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 8);
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    assert_eq!(v["usage"]["total_tokens"], 3);
    let b64 = json!({"model":"m","input":"x","encoding_format":"base64","dimensions":4});
    let v = post_json(mock.port(), "/v1/embeddings", &[], &b64)
        .json()
        .unwrap();
    assert_eq!(v["data"][0]["embedding"].as_str().unwrap().len(), 24); // 16 bytes
    assert_eq!(mock.stats().completion_tokens, 0);
}

#[test]
fn openai_responses_json_and_stream() {
    let mock = start();
    let body = json!({"model":"gpt-4.1","instructions":SYSTEM,"input":[{"role":"user","content":[{"type":"input_text","text":USER}]}]});
    let v = post_json(mock.port(), "/v1/responses", &[], &body)
        .json()
        .unwrap();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(v["output"][0]["content"][0]["text"], reply("responses"));
    assert_eq!(v["usage"]["input_tokens"], PROMPT_TOKENS);
    assert_eq!(v["usage"]["output_tokens"], COMPLETION_TOKENS);
    assert_eq!(
        v["usage"]["total_tokens"],
        PROMPT_TOKENS + COMPLETION_TOKENS
    );
    assert_eq!(v["usage"]["input_tokens_details"]["cached_tokens"], 0);
    assert_eq!(v["usage"]["output_tokens_details"]["reasoning_tokens"], 0);

    let mut body = body;
    body["stream"] = json!(true);
    let r = post_json(
        mock.port(),
        "/v1/responses",
        &[("x-mock-usage", "cached_tokens=4; reasoning_tokens=3")],
        &body,
    );
    let events = r.sse_events();
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(kinds[0], "response.created");
    assert_eq!(kinds[1], "response.in_progress");
    assert_eq!(*kinds.last().unwrap(), "response.completed");
    let mut text = String::new();
    for (i, e) in events.iter().enumerate() {
        let d = e.json().unwrap();
        assert_eq!(d["type"], e.event.as_deref().unwrap());
        assert_eq!(d["sequence_number"], i);
        if d["type"] == "response.output_text.delta" {
            text.push_str(d["delta"].as_str().unwrap());
        }
    }
    assert_eq!(text, reply("responses"));
    let done = events.last().unwrap().json().unwrap();
    let u = &done["response"]["usage"];
    assert_eq!(u["input_tokens"], PROMPT_TOKENS);
    assert_eq!(u["output_tokens"], COMPLETION_TOKENS + 3);
    assert_eq!(u["input_tokens_details"]["cached_tokens"], 4);
    assert_eq!(u["output_tokens_details"]["reasoning_tokens"], 3);
    assert_eq!(u["total_tokens"], PROMPT_TOKENS + COMPLETION_TOKENS + 3);
}

fn anthropic_body(stream: bool) -> Value {
    json!({"model":"claude-sonnet-4-5","max_tokens":100,"system":SYSTEM,"stream":stream,
           "messages":[{"role":"user","content":[{"type":"text","text":USER}]}]})
}

#[test]
fn anthropic_messages_json() {
    let mock = start();
    let r = post_json(
        mock.port(),
        "/v1/messages",
        &[("x-mock-usage", "cached_tokens=3; cache_creation_tokens=2")],
        &anthropic_body(false),
    );
    assert_eq!(r.status, 200);
    assert!(r.header("request-id").is_some());
    let v = r.json().unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["content"][0]["type"], "text");
    assert_eq!(v["content"][0]["text"], reply("anthropic"));
    assert_eq!(v["stop_reason"], "end_turn");
    let u = &v["usage"];
    assert_eq!(u["input_tokens"], PROMPT_TOKENS - 5);
    assert_eq!(u["cache_read_input_tokens"], 3);
    assert_eq!(u["cache_creation_input_tokens"], 2);
    assert_eq!(u["output_tokens"], COMPLETION_TOKENS);
    assert_eq!(mock.stats().prompt_tokens, PROMPT_TOKENS);
}

#[test]
fn anthropic_messages_stream() {
    let mock = start_with(MockOptions {
        cached_tokens: 4,
        ..MockOptions::default()
    });
    let r = post_json(mock.port(), "/v1/messages", &[], &anthropic_body(true));
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let events = r.sse_events();
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    let words = COMPLETION_TOKENS as usize;
    assert_eq!(
        &kinds[..3],
        &["message_start", "content_block_start", "ping"]
    );
    assert!(kinds[3..3 + words]
        .iter()
        .all(|k| *k == "content_block_delta"));
    assert_eq!(
        &kinds[3 + words..],
        &["content_block_stop", "message_delta", "message_stop"]
    );
    for e in &events {
        assert_eq!(e.json().unwrap()["type"], e.event.as_deref().unwrap());
    }
    let start = events[0].json().unwrap();
    let u = &start["message"]["usage"];
    assert_eq!(u["input_tokens"], PROMPT_TOKENS - 4);
    assert_eq!(u["cache_read_input_tokens"], 4);
    assert_eq!(u["cache_creation_input_tokens"], 0);
    assert_eq!(u["output_tokens"], 1);
    let text: String = events
        .iter()
        .filter_map(|e| e.json())
        .filter(|d| d["type"] == "content_block_delta")
        .map(|d| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(text, reply("anthropic"));
    let delta = events[events.len() - 2].json().unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], COMPLETION_TOKENS);
}

#[test]
fn anthropic_auth() {
    let mock = start_with(MockOptions::with_api_key("sk-ant-good"));
    let port = mock.port();
    let b = anthropic_body(false);
    let missing = post_json(
        port,
        "/v1/messages",
        &[("anthropic-version", "2023-06-01")],
        &b,
    );
    assert_eq!(missing.status, 401);
    let e = missing.json().unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "authentication_error");
    let wrong = post_json(
        port,
        "/v1/messages",
        &[
            ("x-api-key", "sk-ant-bad"),
            ("anthropic-version", "2023-06-01"),
        ],
        &b,
    );
    assert_eq!(wrong.status, 401);
    assert!(!wrong.text().contains("sk-ant-bad"));
    let no_version = post_json(port, "/v1/messages", &[("x-api-key", "sk-ant-good")], &b);
    assert_eq!(no_version.status, 400);
    assert_eq!(
        no_version.json().unwrap()["error"]["type"],
        "invalid_request_error"
    );
    let bearer = post_json(
        port,
        "/v1/messages",
        &[
            ("authorization", "Bearer sk-ant-good"),
            ("anthropic-version", "2023-06-01"),
        ],
        &b,
    );
    assert_eq!(bearer.status, 401);
    let ok = post_json(
        port,
        "/v1/messages",
        &[
            ("x-api-key", "sk-ant-good"),
            ("anthropic-version", "2023-06-01"),
        ],
        &b,
    );
    assert_eq!(ok.status, 200);
    let s = mock.stats();
    assert_eq!((s.requests, s.responses_error, s.responses_ok), (5, 4, 1));
}

#[test]
fn openai_auth() {
    let mock = start_with(MockOptions::with_api_key("sk-good"));
    let port = mock.port();
    let b = chat_body(false, false);
    let missing = post_json(port, "/v1/chat/completions", &[], &b);
    assert_eq!(missing.status, 401);
    let e = missing.json().unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("didn't provide an API key"));
    let wrong = post_json(
        port,
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-bad-123")],
        &b,
    );
    assert_eq!(wrong.status, 401);
    let e = wrong.json().unwrap();
    assert_eq!(e["error"]["code"], "invalid_api_key");
    assert!(e["error"].get("param").is_some());
    assert!(!wrong.text().contains("sk-bad-123"), "no echo unless asked");
    let ok = post_json(
        port,
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-good")],
        &b,
    );
    assert_eq!(ok.status, 200);
    let ollama = post_json(
        port,
        "/api/chat",
        &[("authorization", "Bearer nope")],
        &json!({"model":"m","messages":[]}),
    );
    assert_eq!(ollama.status, 401);
    assert_eq!(ollama.json().unwrap()["error"], "unauthorized");
}

fn gemini_body() -> Value {
    json!({"systemInstruction":{"parts":[{"text":SYSTEM}]},
           "contents":[{"role":"user","parts":[{"text":USER}]}]})
}

#[test]
fn gemini_generate_content() {
    let mock = start_with(MockOptions::with_api_key("AIza-good"));
    let port = mock.port();
    let path = "/v1beta/models/gemini-2.0-flash:generateContent";
    let r = post_json(
        port,
        path,
        &[("x-goog-api-key", "AIza-good")],
        &gemini_body(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().unwrap();
    let c = &v["candidates"][0];
    assert_eq!(c["content"]["role"], "model");
    assert_eq!(c["content"]["parts"][0]["text"], reply("gemini"));
    assert_eq!(c["finishReason"], "STOP");
    assert_eq!(v["modelVersion"], "gemini-2.0-flash");
    let u = &v["usageMetadata"];
    assert_eq!(u["promptTokenCount"], PROMPT_TOKENS);
    assert_eq!(u["candidatesTokenCount"], COMPLETION_TOKENS);
    assert_eq!(u["totalTokenCount"], PROMPT_TOKENS + COMPLETION_TOKENS);
    assert!(u.get("thoughtsTokenCount").is_none());
    assert!(u.get("cachedContentTokenCount").is_none());

    let q = post_json(
        port,
        &format!("{path}?key=AIza-good"),
        &[("x-mock-usage", "reasoning_tokens=7; cached_tokens=2")],
        &gemini_body(),
    );
    assert_eq!(q.status, 200);
    let u = q.json().unwrap()["usageMetadata"].clone();
    assert_eq!(u["thoughtsTokenCount"], 7);
    assert_eq!(u["cachedContentTokenCount"], 2);
    assert_eq!(u["totalTokenCount"], PROMPT_TOKENS + COMPLETION_TOKENS + 7);

    let bad = post_json(port, &format!("{path}?key=AIza-bad"), &[], &gemini_body());
    assert_eq!(bad.status, 401);
    let e = bad.json().unwrap();
    assert_eq!(e["error"]["code"], 401);
    assert_eq!(e["error"]["status"], "UNAUTHENTICATED");
}

#[test]
fn gemini_stream_sse_and_json_array() {
    let mock = start();
    let port = mock.port();
    let r = post_json(
        port,
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
        &[],
        &gemini_body(),
    );
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert!(
        r.text().contains("\r\n\r\n"),
        "Google separates SSE events with CRLF CRLF"
    );
    let chunks: Vec<Value> = r.sse_events().iter().map(|e| e.json().unwrap()).collect();
    assert_eq!(chunks.len(), COMPLETION_TOKENS as usize + 1);
    let text: String = chunks
        .iter()
        .map(|c| {
            c["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(text, reply("gemini"));
    for c in &chunks[..chunks.len() - 1] {
        assert!(c["candidates"][0].get("finishReason").is_none());
        assert_eq!(c["usageMetadata"]["promptTokenCount"], PROMPT_TOKENS);
    }
    let last = chunks.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        last["usageMetadata"]["candidatesTokenCount"],
        COMPLETION_TOKENS
    );
    assert_eq!(
        last["usageMetadata"]["totalTokenCount"],
        PROMPT_TOKENS + COMPLETION_TOKENS
    );

    let arr = post_json(
        port,
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
        &[],
        &gemini_body(),
    );
    let v = arr.json().unwrap();
    assert_eq!(v.as_array().unwrap().len(), COMPLETION_TOKENS as usize + 1);
    assert_eq!(mock.stats().completion_tokens, 2 * COMPLETION_TOKENS);
}

fn ollama_body(stream: Option<bool>) -> Value {
    let mut b = json!({"model":"llama3.2","messages":[{"role":"system","content":SYSTEM},{"role":"user","content":USER}]});
    if let Some(s) = stream {
        b["stream"] = json!(s);
    }
    b
}

#[test]
fn ollama_chat_streams_ndjson_by_default() {
    let mock = start();
    let r = post_json(mock.port(), "/api/chat", &[], &ollama_body(None));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let lines = r.ndjson().unwrap();
    assert_eq!(lines.len(), COMPLETION_TOKENS as usize + 1);
    let text: String = lines
        .iter()
        .map(|l| l["message"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, reply("ollama"));
    for l in &lines[..lines.len() - 1] {
        assert_eq!(l["done"], false);
        assert_eq!(l["model"], "llama3.2");
        assert!(l["created_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(l["message"]["role"], "assistant");
    }
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true);
    assert_eq!(last["done_reason"], "stop");
    assert_eq!(last["prompt_eval_count"], PROMPT_TOKENS);
    assert_eq!(last["eval_count"], COMPLETION_TOKENS);
    for k in [
        "total_duration",
        "load_duration",
        "prompt_eval_duration",
        "eval_duration",
    ] {
        assert!(last[k].as_u64().unwrap() > 0, "{k}");
    }
}

#[test]
fn ollama_chat_json_when_not_streaming() {
    let mock = start();
    let r = post_json(mock.port(), "/api/chat", &[], &ollama_body(Some(false)));
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let v = r.json().unwrap();
    assert_eq!(v["done"], true);
    assert_eq!(v["message"]["content"], reply("ollama"));
    assert_eq!(v["prompt_eval_count"], PROMPT_TOKENS);
    assert_eq!(v["eval_count"], COMPLETION_TOKENS);
    let g = post_json(
        mock.port(),
        "/api/generate",
        &[],
        &json!({"model":"m","prompt":USER,"stream":false}),
    );
    assert_eq!(g.json().unwrap()["response"], reply("ollama"));
}
