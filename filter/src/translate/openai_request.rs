//! Parsing of an OpenAI chat-completions request into a provider-neutral [`ChatRequest`].
//!
//! Both provider renderers start from this one parse, so the rules about which OpenAI fields
//! are accepted, how message content is read, and what is rejected as unsupported live here
//! once. The parse takes ownership of the JSON tree and moves strings out of it (no copies of
//! large content such as base64 images).

use serde_json::{Map, Value};

use super::TranslateError;

/// A parsed chat-completions request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    /// The `model` the client asked for.
    pub model: Option<String>,
    /// The conversation, in order.
    pub messages: Vec<ChatMessage>,
    /// `max_completion_tokens`, else `max_tokens`.
    pub max_tokens: Option<u64>,
    /// Sampling temperature (OpenAI range 0..=2).
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Stop sequences (`stop` as a string or an array), empty strings dropped.
    pub stop: Vec<String>,
    /// `stream: true`.
    pub stream: bool,
    /// `stream_options.include_usage: true`.
    pub include_usage: bool,
    /// Function tools the model may call.
    pub tools: Vec<ToolDefinition>,
    /// How the model must use the tools.
    pub tool_choice: Option<ToolChoice>,
    /// `parallel_tool_calls`.
    pub parallel_tool_calls: Option<bool>,
    /// The end-user id (`user`).
    pub user: Option<String>,
    /// Sampling seed.
    pub seed: Option<i64>,
    /// Presence penalty.
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    pub frequency_penalty: Option<f64>,
    /// Requested response format.
    pub response_format: ResponseFormat,
}

/// One conversation message.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatMessage {
    /// A `system` or `developer` message (its text).
    System(String),
    /// A `user` message.
    User(Vec<ContentPart>),
    /// An `assistant` message: its text and the tool calls it made.
    Assistant {
        /// Text parts (refusals are kept as text).
        parts: Vec<ContentPart>,
        /// Tool calls the assistant made.
        tool_calls: Vec<ToolCall>,
    },
    /// A `tool` message: the result of one tool call.
    Tool {
        /// The id of the tool call this answers.
        tool_call_id: String,
        /// The result text.
        content: String,
    },
}

/// One piece of message content.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentPart {
    /// Plain text.
    Text(String),
    /// An image.
    Image(ImageSource),
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    /// Inline bytes from a `data:<media type>;base64,<data>` URL.
    Base64 {
        /// The media type, e.g. `image/png`.
        media_type: String,
        /// The base64 payload, unchanged.
        data: String,
    },
    /// A remote URL.
    Url(String),
}

/// A tool call made by the assistant earlier in the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The call id the tool result refers to.
    pub id: String,
    /// The function name.
    pub name: String,
    /// The arguments, parsed from the OpenAI JSON string.
    pub arguments: Map<String, Value>,
}

/// A function tool offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDefinition {
    /// The function name.
    pub name: String,
    /// What the function does.
    pub description: Option<String>,
    /// The JSON Schema of the arguments object.
    pub parameters: Option<Value>,
}

/// The OpenAI `tool_choice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// The model must not call tools.
    None,
    /// The model must call some tool.
    Required,
    /// The model must call this function.
    Named(String),
}

/// The OpenAI `response_format`.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ResponseFormat {
    /// Free text (the default).
    #[default]
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching this schema.
    JsonSchema(Value),
}

fn invalid(message: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest(message.into())
}

fn unsupported(message: impl Into<String>) -> TranslateError {
    TranslateError::Unsupported(message.into())
}

impl ChatRequest {
    /// Parses a chat-completions request body.
    pub fn parse(body: &[u8]) -> Result<ChatRequest, TranslateError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| TranslateError::InvalidJson(format!("request body is not JSON: {e}")))?;
        let Value::Object(mut root) = value else {
            return Err(TranslateError::InvalidJson(
                "request body must be a JSON object".to_string(),
            ));
        };
        let mut request = ChatRequest {
            model: optional_string(&mut root, "model")?,
            ..ChatRequest::default()
        };
        let messages = match root.remove("messages") {
            Some(Value::Array(items)) => items,
            Some(_) => return Err(invalid("`messages` must be an array")),
            None => return Err(invalid("`messages` is required")),
        };
        request.messages = messages
            .into_iter()
            .enumerate()
            .map(|(index, message)| parse_message(index, message))
            .collect::<Result<_, _>>()?;
        request.max_tokens = match optional_u64(&root, "max_completion_tokens")? {
            Some(n) => Some(n),
            None => optional_u64(&root, "max_tokens")?,
        };
        request.temperature = optional_f64(&root, "temperature")?;
        request.top_p = optional_f64(&root, "top_p")?;
        request.presence_penalty = optional_f64(&root, "presence_penalty")?;
        request.frequency_penalty = optional_f64(&root, "frequency_penalty")?;
        request.seed = match root.get("seed") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_i64()
                    .ok_or_else(|| invalid("`seed` must be an integer"))?,
            ),
        };
        request.stop = parse_stop(root.remove("stop"))?;
        request.stream = optional_bool(&root, "stream")?.unwrap_or(false);
        request.include_usage = root
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if let Some(n) = optional_u64(&root, "n")? {
            if n > 1 {
                return Err(unsupported(
                    "`n` greater than 1 is not supported for this model",
                ));
            }
        }
        request.tools = match root.remove("tools") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(parse_tool_definition)
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid("`tools` must be an array")),
        };
        request.tool_choice = parse_tool_choice(root.get("tool_choice"))?;
        request.parallel_tool_calls = optional_bool(&root, "parallel_tool_calls")?;
        request.user = optional_string(&mut root, "user")?;
        request.response_format = parse_response_format(root.remove("response_format"))?;
        Ok(request)
    }
}

fn optional_string(
    root: &mut Map<String, Value>,
    key: &str,
) -> Result<Option<String>, TranslateError> {
    match root.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("`{key}` must be a string"))),
    }
}

fn optional_u64(root: &Map<String, Value>, key: &str) -> Result<Option<u64>, TranslateError> {
    match root.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| invalid(format!("`{key}` must be a non-negative integer"))),
    }
}

fn optional_f64(root: &Map<String, Value>, key: &str) -> Result<Option<f64>, TranslateError> {
    match root.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| invalid(format!("`{key}` must be a number"))),
    }
}

fn optional_bool(root: &Map<String, Value>, key: &str) -> Result<Option<bool>, TranslateError> {
    match root.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(invalid(format!("`{key}` must be a boolean"))),
    }
}

fn parse_stop(stop: Option<Value>) -> Result<Vec<String>, TranslateError> {
    match stop {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(if s.is_empty() { Vec::new() } else { vec![s] }),
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::String(s) if s.is_empty() => None,
                Value::String(s) => Some(Ok(s)),
                _ => Some(Err(invalid("`stop` entries must be strings"))),
            })
            .collect(),
        Some(_) => Err(invalid("`stop` must be a string or an array of strings")),
    }
}

fn parse_message(index: usize, message: Value) -> Result<ChatMessage, TranslateError> {
    let Value::Object(mut message) = message else {
        return Err(invalid(format!("messages[{index}] must be an object")));
    };
    let role = match message.remove("role") {
        Some(Value::String(role)) => role,
        _ => return Err(invalid(format!("messages[{index}].role is required"))),
    };
    let content = message.remove("content");
    match role.as_str() {
        "system" | "developer" => Ok(ChatMessage::System(text_only(index, content)?)),
        "user" => Ok(ChatMessage::User(user_parts(index, content)?)),
        "assistant" => {
            if message.get("function_call").is_some_and(|v| !v.is_null()) {
                return Err(unsupported(
                    "legacy `function_call` messages are not supported; use `tool_calls`",
                ));
            }
            let parts = match text_only(index, content)? {
                text if text.is_empty() => Vec::new(),
                text => vec![ContentPart::Text(text)],
            };
            let tool_calls = match message.remove("tool_calls") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(calls)) => calls
                    .into_iter()
                    .map(|call| parse_tool_call(index, call))
                    .collect::<Result<_, _>>()?,
                Some(_) => {
                    return Err(invalid(format!(
                        "messages[{index}].tool_calls must be an array"
                    )))
                }
            };
            Ok(ChatMessage::Assistant { parts, tool_calls })
        }
        "tool" => {
            let tool_call_id = match message.remove("tool_call_id") {
                Some(Value::String(id)) => id,
                _ => {
                    return Err(invalid(format!(
                        "messages[{index}].tool_call_id is required"
                    )))
                }
            };
            Ok(ChatMessage::Tool {
                tool_call_id,
                content: text_only(index, content)?,
            })
        }
        "function" => Err(unsupported(
            "legacy `function` role messages are not supported; use `tool`",
        )),
        other => Err(invalid(format!(
            "messages[{index}].role `{other}` is not a known role"
        ))),
    }
}

/// Reads content that may only hold text: a string, null, or an array of text/refusal parts
/// (joined without separator, as OpenAI concatenates them).
fn text_only(index: usize, content: Option<Value>) -> Result<String, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for part in parts {
                match parse_part(index, part)? {
                    ContentPart::Text(t) => text.push_str(&t),
                    ContentPart::Image(_) => {
                        return Err(unsupported(format!(
                            "messages[{index}]: images are only supported in user messages"
                        )))
                    }
                }
            }
            Ok(text)
        }
        Some(_) => Err(invalid(format!(
            "messages[{index}].content must be a string or an array"
        ))),
    }
}

fn user_parts(index: usize, content: Option<Value>) -> Result<Vec<ContentPart>, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![ContentPart::Text(s)]),
        Some(Value::Array(parts)) => parts
            .into_iter()
            .map(|part| parse_part(index, part))
            .filter(|part| !matches!(part, Ok(ContentPart::Text(t)) if t.is_empty()))
            .collect(),
        Some(_) => Err(invalid(format!(
            "messages[{index}].content must be a string or an array"
        ))),
    }
}

fn parse_part(index: usize, part: Value) -> Result<ContentPart, TranslateError> {
    let Value::Object(mut part) = part else {
        return Err(invalid(format!(
            "messages[{index}].content parts must be objects"
        )));
    };
    let kind = part
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("text")
        .to_string();
    match kind.as_str() {
        "text" | "refusal" => match part.remove(kind.as_str()) {
            Some(Value::String(text)) => Ok(ContentPart::Text(text)),
            _ => Err(invalid(format!(
                "messages[{index}]: a `{kind}` part needs a `{kind}` string"
            ))),
        },
        "image_url" => {
            let url = match part.remove("image_url") {
                Some(Value::String(url)) => url,
                Some(Value::Object(mut image)) => match image.remove("url") {
                    Some(Value::String(url)) => url,
                    _ => {
                        return Err(invalid(format!(
                            "messages[{index}]: image_url.url is required"
                        )))
                    }
                },
                _ => return Err(invalid(format!("messages[{index}]: image_url is required"))),
            };
            Ok(ContentPart::Image(parse_image_url(index, url)?))
        }
        other => Err(unsupported(format!(
            "messages[{index}]: content parts of type `{other}` are not supported for this model"
        ))),
    }
}

/// Splits `data:<media>;base64,<payload>` into its parts; any other URL is kept as a URL.
fn parse_image_url(index: usize, url: String) -> Result<ImageSource, TranslateError> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Ok(ImageSource::Url(url));
    };
    let Some((meta, data)) = rest.split_once(',') else {
        return Err(invalid(format!("messages[{index}]: malformed data URL")));
    };
    let Some(media_type) = meta.strip_suffix(";base64") else {
        return Err(unsupported(format!(
            "messages[{index}]: only base64 data URLs are supported"
        )));
    };
    let media_type = if media_type.is_empty() {
        "application/octet-stream"
    } else {
        media_type
    };
    Ok(ImageSource::Base64 {
        media_type: media_type.to_string(),
        data: data.to_string(),
    })
}

fn parse_tool_call(index: usize, call: Value) -> Result<ToolCall, TranslateError> {
    let Value::Object(mut call) = call else {
        return Err(invalid(format!(
            "messages[{index}].tool_calls entries must be objects"
        )));
    };
    let id = match call.remove("id") {
        Some(Value::String(id)) => id,
        _ => {
            return Err(invalid(format!(
                "messages[{index}].tool_calls[].id is required"
            )))
        }
    };
    if let Some(kind) = call.get("type").and_then(Value::as_str) {
        if kind != "function" {
            return Err(unsupported(format!(
                "tool calls of type `{kind}` are not supported"
            )));
        }
    }
    let Some(Value::Object(mut function)) = call.remove("function") else {
        return Err(invalid(format!(
            "messages[{index}].tool_calls[].function is required"
        )));
    };
    let name = match function.remove("name") {
        Some(Value::String(name)) => name,
        _ => {
            return Err(invalid(format!(
                "messages[{index}].tool_calls[].function.name is required"
            )))
        }
    };
    let arguments = match function.remove("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::String(text)) if text.trim().is_empty() => Map::new(),
        Some(Value::String(text)) => match serde_json::from_slice::<Value>(text.as_bytes()) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(invalid(format!(
                    "messages[{index}]: tool call `{id}` arguments must be a JSON object string"
                )))
            }
        },
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(invalid(format!(
                "messages[{index}]: tool call arguments must be a string"
            )))
        }
    };
    Ok(ToolCall {
        id,
        name,
        arguments,
    })
}

fn parse_tool_definition(tool: Value) -> Result<ToolDefinition, TranslateError> {
    let Value::Object(mut tool) = tool else {
        return Err(invalid("`tools` entries must be objects"));
    };
    match tool.get("type").and_then(Value::as_str) {
        Some("function") | None => {}
        Some(other) => {
            return Err(unsupported(format!(
                "tools of type `{other}` are not supported"
            )))
        }
    }
    let Some(Value::Object(mut function)) = tool.remove("function") else {
        return Err(invalid("`tools[].function` is required"));
    };
    let name = match function.remove("name") {
        Some(Value::String(name)) if !name.is_empty() => name,
        _ => return Err(invalid("`tools[].function.name` is required")),
    };
    let description = match function.remove("description") {
        Some(Value::String(d)) => Some(d),
        _ => None,
    };
    let parameters = match function.remove("parameters") {
        None | Some(Value::Null) => None,
        Some(schema @ Value::Object(_)) => Some(schema),
        Some(_) => return Err(invalid("`tools[].function.parameters` must be an object")),
    };
    Ok(ToolDefinition {
        name,
        description,
        parameters,
    })
}

fn parse_tool_choice(choice: Option<&Value>) -> Result<Option<ToolChoice>, TranslateError> {
    match choice {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Ok(Some(ToolChoice::Auto)),
            "none" => Ok(Some(ToolChoice::None)),
            "required" => Ok(Some(ToolChoice::Required)),
            other => Err(invalid(format!(
                "`tool_choice` value `{other}` is not known"
            ))),
        },
        Some(Value::Object(obj)) => obj
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(|name| Some(ToolChoice::Named(name.to_string())))
            .ok_or_else(|| invalid("`tool_choice.function.name` is required")),
        Some(_) => Err(invalid("`tool_choice` must be a string or an object")),
    }
}

fn parse_response_format(format: Option<Value>) -> Result<ResponseFormat, TranslateError> {
    let Some(Value::Object(mut format)) = format else {
        return Ok(ResponseFormat::Text);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        Some("json_schema") => match format.remove("json_schema") {
            Some(Value::Object(mut spec)) => Ok(match spec.remove("schema") {
                Some(schema @ Value::Object(_)) => ResponseFormat::JsonSchema(schema),
                _ => ResponseFormat::JsonObject,
            }),
            _ => Err(invalid("`response_format.json_schema` is required")),
        },
        _ => Ok(ResponseFormat::Text),
    }
}
