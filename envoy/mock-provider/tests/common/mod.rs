//! Helpers shared by the integration tests.
#![allow(dead_code)]

use serde_json::Value;
use tollgate_mock_provider::client::{self, Response};
use tollgate_mock_provider::{MockHandle, MockOptions, MockProvider};

pub fn start() -> MockHandle {
    MockProvider::start(MockOptions::default()).unwrap()
}

pub fn start_with(opts: MockOptions) -> MockHandle {
    MockProvider::start(opts).unwrap()
}

pub fn post_json(port: u16, path: &str, headers: &[(&str, &str)], body: &Value) -> Response {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    client::request(port, "POST", path, &h, body.to_string()).unwrap()
}

/// Concatenated `choices[0].delta.content` of OpenAI chunks.
pub fn openai_stream_text(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect()
}

pub const SYSTEM: &str = "You are helpful."; // 16 chars
pub const USER: &str = "Hello there, mock!"; // 18 chars -> 34 chars total -> 9 tokens
pub const PROMPT_TOKENS: u64 = 9;
/// "This is a mock <kind> reply to: Hello there, mock!" has 10 words.
pub const COMPLETION_TOKENS: u64 = 10;

pub fn reply(kind: &str) -> String {
    format!("This is a mock {kind} reply to: {USER}")
}

pub fn chat_body(stream: bool, include_usage: bool) -> Value {
    let mut b = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": USER}
        ],
        "stream": stream,
    });
    if include_usage {
        b["stream_options"] = serde_json::json!({"include_usage": true});
    }
    b
}
