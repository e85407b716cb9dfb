//! Translation of a complete Anthropic Messages response into an OpenAI `chat.completion`.

use serde::Deserialize;
use serde_json::Value;

use super::openai_out::{
    anthropic_finish_reason, chat_completion, AnthropicUsage, CompletedChoice, CompletedToolCall,
    TokenUsage,
};
use super::TranslateError;

// Provider payloads: read from JSON objects only (see `crate::json_object`).
crate::json_object::object_only!(Message, Block);

#[derive(Deserialize)]
#[serde(remote = "Self")]
struct Message {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: AnthropicUsage,
}

#[derive(Deserialize)]
#[serde(remote = "Self")]
struct Block {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    input: Option<Value>,
}

/// Translates an Anthropic Messages response body into an OpenAI `chat.completion` body, with
/// `created` set to 0 (see [`anthropic_to_openai_at`]).
pub fn anthropic_to_openai(body: &[u8], model_for_client: &str) -> Result<Vec<u8>, TranslateError> {
    anthropic_to_openai_at(body, model_for_client, 0)
}

/// Translates an Anthropic Messages response body into an OpenAI `chat.completion` body.
///
/// Text blocks are concatenated into `content`, `tool_use` blocks become `tool_calls` (their
/// `input` re-encoded as the `arguments` string), thinking and server-tool blocks are dropped.
/// `created` is the Unix time to report.
pub fn anthropic_to_openai_at(
    body: &[u8],
    model_for_client: &str,
    created: u64,
) -> Result<Vec<u8>, TranslateError> {
    let message: Message = serde_json::from_slice(body).map_err(|e| {
        TranslateError::InvalidJson(format!("anthropic response is not a message: {e}"))
    })?;
    if message.kind == "error" {
        return Err(TranslateError::InvalidRequest(
            "anthropic response is an error body".to_string(),
        ));
    }
    let mut text: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in message.content {
        match block.kind.as_str() {
            "text" => text.get_or_insert_with(String::new).push_str(&block.text),
            "tool_use" => tool_calls.push(CompletedToolCall {
                id: block.id,
                name: block.name,
                arguments: match block.input {
                    Some(input) => serde_json::to_string(&input).unwrap_or_default(),
                    None => "{}".to_string(),
                },
            }),
            _ => {}
        }
    }
    // OpenAI sends an empty string, not null, for an empty answer without tool calls.
    if tool_calls.is_empty() && text.is_none() {
        text = Some(String::new());
    }
    let finish_reason = match message.stop_reason.as_deref() {
        Some(reason) => anthropic_finish_reason(reason),
        None if !tool_calls.is_empty() => "tool_calls",
        None => "stop",
    };
    let usage = TokenUsage::from_anthropic(&message.usage);
    let id = format!("chatcmpl-{}", message.id);
    let completion = chat_completion(
        &id,
        created,
        model_for_client,
        vec![CompletedChoice {
            index: 0,
            content: text,
            tool_calls,
            finish_reason,
        }],
        &usage,
    );
    serde_json::to_vec(&completion)
        .map_err(|e| TranslateError::InvalidJson(format!("cannot encode response: {e}")))
}
