//! Rendering of a chat-completions request as an Anthropic Messages API request.
//!
//! Anthropic differs from OpenAI in ways that matter here: the system prompt is a top-level
//! field, `max_tokens` is required, roles must alternate (so consecutive same-role messages are
//! merged), tool results are `tool_result` blocks inside a user message, assistant tool calls
//! are `tool_use` blocks with a parsed `input` object, and `temperature` only goes up to 1.

use serde_json::{Map, Value};

use super::openai_request::{ChatMessage, ChatRequest, ContentPart, ImageSource, ToolChoice};
use super::tool_ids::anthropic_safe_id;
use super::{TranslateError, Translated};
use crate::json_build::object;

/// The `anthropic-version` header value the rendered requests are written for.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The Messages API path.
pub const ANTHROPIC_MESSAGES_PATH: &str = "/v1/messages";

/// Options for [`openai_to_anthropic`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnthropicOptions {
    /// `max_tokens` to send when the client set neither `max_tokens` nor
    /// `max_completion_tokens` (Anthropic requires one).
    pub default_max_tokens: u64,
    /// Send this model instead of the client's `model`.
    pub model_override: Option<String>,
}

impl Default for AnthropicOptions {
    fn default() -> Self {
        AnthropicOptions {
            default_max_tokens: 4096,
            model_override: None,
        }
    }
}

/// Translates an OpenAI chat-completions request body into an Anthropic Messages request.
///
/// System and developer messages become the top-level `system`; `temperature` is clamped to
/// Anthropic's 0..=1 and `top_p` is dropped when `temperature` is also set (recent Claude models
/// reject both together). `response_format`, `seed` and the penalties have no Anthropic
/// equivalent and are ignored.
pub fn openai_to_anthropic(
    body: &[u8],
    opts: &AnthropicOptions,
) -> Result<Translated, TranslateError> {
    let request = ChatRequest::parse(body)?;
    let model = opts
        .model_override
        .clone()
        .or(request.model)
        .ok_or_else(|| TranslateError::InvalidRequest("`model` is required".to_string()))?;

    let mut system = Vec::new();
    let mut conversation = Conversation::default();
    for message in request.messages {
        match message {
            ChatMessage::System(text) => {
                if !text.is_empty() {
                    system.push(text);
                }
            }
            ChatMessage::User(parts) => {
                conversation.push("user", parts.into_iter().map(content_block).collect())
            }
            ChatMessage::Assistant { parts, tool_calls } => {
                let mut blocks: Vec<Value> = parts.into_iter().map(content_block).collect();
                blocks.extend(tool_calls.into_iter().map(|call| {
                    object([
                        ("type", Value::from("tool_use")),
                        ("id", Value::from(anthropic_safe_id(&call.id))),
                        ("name", Value::from(call.name)),
                        ("input", Value::Object(call.arguments)),
                    ])
                }));
                conversation.push("assistant", blocks);
            }
            ChatMessage::Tool {
                tool_call_id,
                content,
            } => conversation.push(
                "user",
                vec![object([
                    ("type", Value::from("tool_result")),
                    ("tool_use_id", Value::from(anthropic_safe_id(&tool_call_id))),
                    ("content", Value::from(content)),
                ])],
            ),
        }
    }

    let mut out = Map::new();
    out.insert("model".into(), Value::String(model.clone()));
    out.insert("messages".into(), conversation.into_json());
    out.insert(
        "max_tokens".into(),
        Value::from(request.max_tokens.unwrap_or(opts.default_max_tokens)),
    );
    if !system.is_empty() {
        out.insert("system".into(), Value::String(system.join("\n\n")));
    }
    if let Some(temperature) = request.temperature {
        out.insert(
            "temperature".into(),
            Value::from(temperature.clamp(0.0, 1.0)),
        );
    } else if let Some(top_p) = request.top_p {
        out.insert("top_p".into(), Value::from(top_p));
    }
    if !request.stop.is_empty() {
        out.insert("stop_sequences".into(), Value::from(request.stop));
    }
    if request.stream {
        out.insert("stream".into(), Value::Bool(true));
    }
    let has_tools = !request.tools.is_empty();
    if has_tools {
        let tools = request
            .tools
            .into_iter()
            .map(|tool| {
                let mut rendered = Map::new();
                rendered.insert("name".into(), Value::String(tool.name));
                if let Some(description) = tool.description {
                    rendered.insert("description".into(), Value::String(description));
                }
                rendered.insert(
                    "input_schema".into(),
                    tool.parameters.unwrap_or_else(|| {
                        object([
                            ("type", Value::from("object")),
                            ("properties", Value::Object(Map::new())),
                        ])
                    }),
                );
                Value::Object(rendered)
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
        let disable_parallel = request.parallel_tool_calls == Some(false);
        let choice = match request.tool_choice {
            // Anthropic defaults to `auto`; say so only to carry `disable_parallel_tool_use`.
            None if disable_parallel => Some(object([("type", Value::from("auto"))])),
            None => None,
            Some(ToolChoice::Auto) => Some(object([("type", Value::from("auto"))])),
            Some(ToolChoice::None) => Some(object([("type", Value::from("none"))])),
            Some(ToolChoice::Required) => Some(object([("type", Value::from("any"))])),
            Some(ToolChoice::Named(name)) => Some(object([
                ("type", Value::from("tool")),
                ("name", Value::from(name)),
            ])),
        };
        if let Some(mut choice) = choice {
            if let Some(obj) = choice.as_object_mut() {
                let is_none = obj.get("type").and_then(Value::as_str) == Some("none");
                if disable_parallel && !is_none {
                    obj.insert("disable_parallel_tool_use".into(), Value::Bool(true));
                }
            }
            out.insert("tool_choice".into(), choice);
        }
    }
    if let Some(user) = request.user {
        out.insert("metadata".into(), object([("user_id", Value::from(user))]));
    }

    let body = serde_json::to_vec(&Value::Object(out))
        .map_err(|e| TranslateError::InvalidRequest(format!("cannot encode request: {e}")))?;
    Ok(Translated {
        body,
        path: ANTHROPIC_MESSAGES_PATH.to_string(),
        stream: request.stream,
        include_usage: request.include_usage,
        model,
    })
}

fn content_block(part: ContentPart) -> Value {
    match part {
        ContentPart::Text(text) => {
            object([("type", Value::from("text")), ("text", Value::from(text))])
        }
        ContentPart::Image(ImageSource::Base64 { media_type, data }) => object([
            ("type", Value::from("image")),
            (
                "source",
                object([
                    ("type", Value::from("base64")),
                    ("media_type", Value::from(media_type)),
                    ("data", Value::from(data)),
                ]),
            ),
        ]),
        ContentPart::Image(ImageSource::Url(url)) => object([
            ("type", Value::from("image")),
            (
                "source",
                object([("type", Value::from("url")), ("url", Value::from(url))]),
            ),
        ]),
    }
}

/// Messages under construction, merging consecutive same-role turns.
#[derive(Default)]
struct Conversation {
    turns: Vec<(&'static str, Vec<Value>)>,
}

impl Conversation {
    fn push(&mut self, role: &'static str, blocks: Vec<Value>) {
        let blocks: Vec<Value> = blocks
            .into_iter()
            .filter(|b| b.get("text").and_then(Value::as_str) != Some(""))
            .collect();
        if blocks.is_empty() {
            return;
        }
        match self.turns.last_mut() {
            Some((last_role, last_blocks)) if *last_role == role => {
                // Anthropic wants tool results first in a user turn.
                let (mut results, others): (Vec<Value>, Vec<Value>) = std::mem::take(last_blocks)
                    .into_iter()
                    .chain(blocks)
                    .partition(is_tool_result);
                results.extend(others);
                *last_blocks = results;
            }
            _ => self.turns.push((role, blocks)),
        }
    }

    fn into_json(self) -> Value {
        Value::Array(
            self.turns
                .into_iter()
                .map(|(role, mut blocks)| {
                    let content = match blocks.as_slice() {
                        [only] if only.get("type").and_then(Value::as_str) == Some("text") => {
                            match blocks.pop() {
                                Some(Value::Object(mut block)) => {
                                    block.remove("text").unwrap_or(Value::Null)
                                }
                                _ => Value::Null,
                            }
                        }
                        _ => Value::Array(blocks),
                    };
                    object([("role", Value::from(role)), ("content", content)])
                })
                .collect(),
        )
    }
}

fn is_tool_result(block: &Value) -> bool {
    block.get("type").and_then(Value::as_str) == Some("tool_result")
}
