//! Gives a stored entry back to a client: as stored, or — for an OpenAI chat client that asked
//! for a stream — replayed as a well-formed `chat.completion.chunk` stream: per choice a chunk
//! with the whole message (role, content or refusal, tool calls, logprobs) and a chunk with its
//! `finish_reason`, then the usage chunk when the client asked for `include_usage` (with
//! `"usage": null` on the other chunks, as OpenAI sends them), then `data: [DONE]`.

use serde_json::{Map, Value};

use super::entry::{Entry, EntryFormat};
use super::key::ReplyShape;
use crate::json_build::object;

/// A cached answer ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Status (the stored 2xx).
    pub status: u32,
    /// `content-type` of the body.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

/// Content type of a replayed stream.
pub const SSE_CONTENT_TYPE: &str = "text/event-stream";

/// The answer for a client asking in `shape`; `None` when this entry cannot be given in that
/// shape (the caller treats it as a miss).
pub fn render(entry: &Entry, shape: ReplyShape) -> Option<Rendered> {
    let status = u32::from(entry.status);
    match (entry.format, shape) {
        (
            EntryFormat::OpenAiChat,
            ReplyShape::OpenAiChat {
                stream: true,
                include_usage,
            },
        ) => {
            let completion: Value = serde_json::from_slice(&entry.body).ok()?;
            Some(Rendered {
                status,
                content_type: SSE_CONTENT_TYPE.into(),
                body: replay_stream(&completion, include_usage)?,
            })
        }
        (EntryFormat::OpenAiChat, ReplyShape::OpenAiChat { stream: false, .. })
        | (EntryFormat::Verbatim, ReplyShape::Verbatim) => Some(Rendered {
            status,
            content_type: entry.content_type.clone(),
            body: entry.body.clone(),
        }),
        _ => None,
    }
}

fn event(out: &mut Vec<u8>, chunk: &Value) {
    out.extend_from_slice(b"data: ");
    // A `Value` always serialises.
    let _ = serde_json::to_writer(&mut *out, chunk);
    out.extend_from_slice(b"\n\n");
}

/// The SSE body replaying a `chat.completion`; `None` when it is not one (no `choices` array
/// of objects with a `message`).
pub fn replay_stream(completion: &Value, include_usage: bool) -> Option<Vec<u8>> {
    let obj = completion.as_object()?;
    let mut head = Map::new();
    for name in [
        "id",
        "created",
        "model",
        "system_fingerprint",
        "service_tier",
    ] {
        if let Some(v) = obj.get(name) {
            head.insert(name.into(), v.clone());
        }
    }
    head.insert("object".into(), Value::from("chat.completion.chunk"));
    if include_usage {
        head.insert("usage".into(), Value::Null);
    }
    let chunk = |choices: Value| {
        let mut c = head.clone();
        c.insert("choices".into(), choices);
        Value::Object(c)
    };
    let mut out = Vec::new();
    for choice in obj.get("choices")?.as_array()? {
        let choice = choice.as_object()?;
        let index = choice.get("index").cloned().unwrap_or(Value::from(0));
        let message = choice.get("message")?.as_object()?;
        let mut delta = Map::new();
        delta.insert(
            "role".into(),
            message
                .get("role")
                .cloned()
                .unwrap_or(Value::from("assistant")),
        );
        delta.insert(
            "content".into(),
            message.get("content").cloned().unwrap_or(Value::Null),
        );
        for name in ["refusal", "reasoning_content"] {
            if let Some(v) = message.get(name).filter(|v| !v.is_null()) {
                delta.insert(name.into(), v.clone());
            }
        }
        if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
            let calls: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(i, call)| {
                    let mut c = call.as_object().cloned().unwrap_or_default();
                    c.insert("index".into(), Value::from(i));
                    Value::Object(c)
                })
                .collect();
            delta.insert("tool_calls".into(), Value::Array(calls));
        }
        let logprobs = choice.get("logprobs").cloned().unwrap_or(Value::Null);
        event(
            &mut out,
            &chunk(Value::Array(vec![object([
                ("index", index.clone()),
                ("delta", Value::Object(delta)),
                ("logprobs", logprobs),
                ("finish_reason", Value::Null),
            ])])),
        );
        event(
            &mut out,
            &chunk(Value::Array(vec![object([
                ("index", index),
                ("delta", Value::Object(Map::new())),
                ("logprobs", Value::Null),
                (
                    "finish_reason",
                    choice.get("finish_reason").cloned().unwrap_or(Value::Null),
                ),
            ])])),
        );
    }
    if include_usage {
        if let Some(usage) = obj.get("usage").filter(|u| !u.is_null()) {
            let mut c = head.clone();
            c.insert("choices".into(), Value::Array(Vec::new()));
            c.insert("usage".into(), usage.clone());
            event(&mut out, &Value::Object(c));
        }
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    Some(out)
}
