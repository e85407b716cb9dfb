//! The OpenAI output shapes tollgate produces from provider responses: `chat.completion`
//! objects, `chat.completion.chunk` SSE events, the `usage` object, and the mapping of provider
//! stop reasons to OpenAI `finish_reason` values.

use crate::json_build::object;
use serde::Serialize;
use serde_json::Value;

// Provider payloads: read from JSON objects only (see `crate::json_object`).
crate::json_object::object_only!(AnthropicUsage, GeminiUsage);

/// Token counts seen in a provider response, in OpenAI terms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// All prompt tokens, cached ones included (OpenAI `prompt_tokens`).
    pub input_tokens: u64,
    /// All generated tokens, reasoning included (OpenAI `completion_tokens`).
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache (`cached_tokens`).
    pub cached_input_tokens: u64,
    /// Prompt tokens written to the provider's cache (Anthropic only).
    pub cache_creation_input_tokens: u64,
    /// Generated tokens spent on reasoning (`reasoning_tokens`).
    pub reasoning_tokens: u64,
}

impl TokenUsage {
    /// `input_tokens + output_tokens`.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }

    /// The OpenAI `usage` object.
    pub fn to_openai(&self) -> OpenAiUsage {
        OpenAiUsage {
            prompt_tokens: self.input_tokens,
            completion_tokens: self.output_tokens,
            total_tokens: self.total_tokens(),
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: self.cached_input_tokens,
            },
            completion_tokens_details: CompletionTokensDetails {
                reasoning_tokens: self.reasoning_tokens,
            },
        }
    }

    /// Converts Anthropic usage: the prompt is uncached + cache-read + cache-write tokens.
    pub fn from_anthropic(usage: &AnthropicUsage) -> TokenUsage {
        let cached = usage.cache_read_input_tokens.unwrap_or(0);
        let cache_creation = usage.cache_creation_input_tokens.unwrap_or(0);
        TokenUsage {
            input_tokens: usage
                .input_tokens
                .unwrap_or(0)
                .saturating_add(cached)
                .saturating_add(cache_creation),
            output_tokens: usage.output_tokens.unwrap_or(0),
            cached_input_tokens: cached,
            cache_creation_input_tokens: cache_creation,
            reasoning_tokens: 0,
        }
    }

    /// Converts Gemini `usageMetadata`: completion tokens are answer + thought tokens.
    pub fn from_gemini(usage: &GeminiUsage) -> TokenUsage {
        let reasoning = usage.thoughts_token_count.unwrap_or(0);
        TokenUsage {
            input_tokens: usage
                .prompt_token_count
                .unwrap_or(0)
                .saturating_add(usage.tool_use_prompt_token_count.unwrap_or(0)),
            output_tokens: usage
                .candidates_token_count
                .unwrap_or(0)
                .saturating_add(reasoning),
            cached_input_tokens: usage.cached_content_token_count.unwrap_or(0),
            cache_creation_input_tokens: 0,
            reasoning_tokens: reasoning,
        }
    }
}

/// The Anthropic `usage` fields tollgate reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(remote = "Self")]
pub struct AnthropicUsage {
    /// Uncached prompt tokens.
    pub input_tokens: Option<u64>,
    /// Generated tokens (cumulative).
    pub output_tokens: Option<u64>,
    /// Prompt tokens read from the cache.
    pub cache_read_input_tokens: Option<u64>,
    /// Prompt tokens written to the cache.
    pub cache_creation_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Overwrites the counts `newer` carries (`message_delta` repeats cumulative counts).
    pub fn merge(&mut self, newer: &AnthropicUsage) {
        self.input_tokens = newer.input_tokens.or(self.input_tokens);
        self.output_tokens = newer.output_tokens.or(self.output_tokens);
        self.cache_read_input_tokens = newer
            .cache_read_input_tokens
            .or(self.cache_read_input_tokens);
        self.cache_creation_input_tokens = newer
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
    }
}

/// The Gemini `usageMetadata` fields tollgate reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(remote = "Self")]
#[serde(rename_all = "camelCase")]
pub struct GeminiUsage {
    /// Prompt tokens (cached included).
    pub prompt_token_count: Option<u64>,
    /// Generated answer tokens.
    pub candidates_token_count: Option<u64>,
    /// Reasoning tokens.
    pub thoughts_token_count: Option<u64>,
    /// Prompt tokens served from cached content.
    pub cached_content_token_count: Option<u64>,
    /// Prompt tokens of tool-use results.
    pub tool_use_prompt_token_count: Option<u64>,
}

/// The OpenAI `usage` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OpenAiUsage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Their sum.
    pub total_tokens: u64,
    /// Prompt breakdown.
    pub prompt_tokens_details: PromptTokensDetails,
    /// Completion breakdown.
    pub completion_tokens_details: CompletionTokensDetails,
}

impl OpenAiUsage {
    /// The object as a `Value` (what serializing it writes).
    pub fn to_value(&self) -> Value {
        object([
            ("prompt_tokens", Value::from(self.prompt_tokens)),
            ("completion_tokens", Value::from(self.completion_tokens)),
            ("total_tokens", Value::from(self.total_tokens)),
            (
                "prompt_tokens_details",
                object([(
                    "cached_tokens",
                    Value::from(self.prompt_tokens_details.cached_tokens),
                )]),
            ),
            (
                "completion_tokens_details",
                object([(
                    "reasoning_tokens",
                    Value::from(self.completion_tokens_details.reasoning_tokens),
                )]),
            ),
        ])
    }
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PromptTokensDetails {
    /// Prompt tokens served from cache.
    pub cached_tokens: u64,
}

/// `usage.completion_tokens_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CompletionTokensDetails {
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
}

/// Maps an Anthropic `stop_reason` to an OpenAI `finish_reason`.
pub fn anthropic_finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Maps a Gemini `finishReason` to an OpenAI `finish_reason`.
pub fn gemini_finish_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => "content_filter",
        _ => "stop",
    }
}

/// One tool call of a complete assistant message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedToolCall {
    /// The call id.
    pub id: String,
    /// The function name.
    pub name: String,
    /// The arguments as a JSON string.
    pub arguments: String,
}

/// One choice of a `chat.completion`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedChoice {
    /// The choice index.
    pub index: u64,
    /// The text, `None` when the model produced only tool calls (or nothing).
    pub content: Option<String>,
    /// Tool calls, in order.
    pub tool_calls: Vec<CompletedToolCall>,
    /// The OpenAI finish reason.
    pub finish_reason: &'static str,
}

/// Renders a `chat.completion` object.
pub fn chat_completion(
    id: &str,
    created: u64,
    model: &str,
    choices: Vec<CompletedChoice>,
    usage: &TokenUsage,
) -> Value {
    let choices: Vec<Value> = choices
        .into_iter()
        .map(|choice| {
            let mut message = object([
                ("role", Value::from("assistant")),
                ("content", Value::from(choice.content)),
                ("refusal", Value::Null),
            ]);
            if !choice.tool_calls.is_empty() {
                let calls: Vec<Value> = choice
                    .tool_calls
                    .into_iter()
                    .map(|call| {
                        object([
                            ("id", Value::from(call.id)),
                            ("type", Value::from("function")),
                            (
                                "function",
                                object([
                                    ("name", Value::from(call.name)),
                                    ("arguments", Value::from(call.arguments)),
                                ]),
                            ),
                        ])
                    })
                    .collect();
                if let Some(obj) = message.as_object_mut() {
                    obj.insert("tool_calls".into(), Value::Array(calls));
                }
            }
            object([
                ("index", Value::from(choice.index)),
                ("message", message),
                ("logprobs", Value::Null),
                ("finish_reason", Value::from(choice.finish_reason)),
            ])
        })
        .collect();
    object([
        ("id", Value::from(id)),
        ("object", Value::from("chat.completion")),
        ("created", Value::from(created)),
        ("model", Value::from(model)),
        ("choices", Value::Array(choices)),
        ("usage", usage.to_openai().to_value()),
        ("system_fingerprint", Value::Null),
    ])
}

/// A `chat.completion.chunk` event.
#[derive(Debug, Serialize)]
pub struct Chunk<'a> {
    /// The completion id (the same on every chunk).
    pub id: &'a str,
    /// Always `chat.completion.chunk`.
    pub object: &'static str,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// The model name the client asked for.
    pub model: &'a str,
    /// Zero or one choice.
    pub choices: Vec<ChunkChoice<'a>>,
    /// Absent unless the client asked for usage; then `null` except on the usage chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<OpenAiUsage>>,
}

/// One choice of a chunk.
#[derive(Debug, Serialize)]
pub struct ChunkChoice<'a> {
    /// The choice index.
    pub index: u64,
    /// What changed.
    pub delta: Delta<'a>,
    /// Always `null`.
    pub logprobs: Option<()>,
    /// Set on the last chunk of the choice.
    pub finish_reason: Option<&'static str>,
}

/// The `delta` of a chunk choice.
#[derive(Debug, Default, Serialize)]
pub struct Delta<'a> {
    /// `assistant` on the first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// A text fragment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    /// Tool-call fragments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta<'a>>>,
}

/// A fragment of one tool call.
#[derive(Debug, Serialize)]
pub struct ToolCallDelta<'a> {
    /// The tool call's position among the message's tool calls.
    pub index: u64,
    /// The call id (first fragment only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    /// `function` (first fragment only).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// Name and/or argument text.
    pub function: FunctionDelta<'a>,
}

/// The function part of a tool-call fragment.
#[derive(Debug, Serialize)]
pub struct FunctionDelta<'a> {
    /// The function name (first fragment only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    /// A fragment of the JSON arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<&'a str>,
}

/// Appends `data: <json>\n\n` to `out`.
pub fn write_sse_json<T: Serialize>(out: &mut Vec<u8>, value: &T) {
    let start = out.len();
    out.extend_from_slice(b"data: ");
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.truncate(start);
        return;
    }
    out.extend_from_slice(b"\n\n");
}

/// The stream terminator, `data: [DONE]\n\n`.
pub const SSE_DONE: &[u8] = b"data: [DONE]\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usage_value_is_what_serializing_the_usage_writes() {
        let usage = TokenUsage {
            input_tokens: 12,
            output_tokens: 30,
            cached_input_tokens: 4,
            cache_creation_input_tokens: 2,
            reasoning_tokens: 9,
        }
        .to_openai();
        assert_eq!(usage.to_value(), serde_json::to_value(usage).unwrap());
    }
}
