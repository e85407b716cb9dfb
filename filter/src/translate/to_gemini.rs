//! Rendering of a chat-completions request as a Gemini `generateContent` request.
//!
//! The model travels in the path, the system prompt in `systemInstruction`, the assistant role
//! is `model`, sampling settings live in `generationConfig`, tools are `functionDeclarations`
//! (with the OpenAI JSON Schema passed as `parametersJsonSchema`), assistant tool calls are
//! `functionCall` parts and tool results are `functionResponse` parts that name the function
//! (looked up from the call id).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::openai_request::{
    ChatMessage, ChatRequest, ContentPart, ImageSource, ResponseFormat, ToolChoice,
};
use super::tool_ids::split_thought_signature;
use super::{TranslateError, Translated};
use crate::json_build::object;

/// Options for [`openai_to_gemini`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeminiOptions {
    /// Send this model instead of the client's `model`.
    pub model_override: Option<String>,
}

/// Translates an OpenAI chat-completions request body into a Gemini request.
///
/// The path is `/v1beta/models/{model}:generateContent`, or
/// `/v1beta/models/{model}:streamGenerateContent?alt=sse` when the client asked for a stream.
/// `response_format` maps to `responseMimeType` (and `responseJsonSchema`); `user` is ignored.
pub fn openai_to_gemini(body: &[u8], opts: &GeminiOptions) -> Result<Translated, TranslateError> {
    let mut request = ChatRequest::parse(body)?;
    let model = opts
        .model_override
        .clone()
        .or(request.model.take())
        .ok_or_else(|| TranslateError::InvalidRequest("`model` is required".to_string()))?;
    let model = model.strip_prefix("models/").unwrap_or(&model).to_string();
    if model.is_empty()
        || !model
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(TranslateError::InvalidRequest(format!(
            "model `{model}` is not a valid Gemini model name"
        )));
    }

    let mut system = Vec::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut call_names: HashMap<String, String> = HashMap::new();
    for message in std::mem::take(&mut request.messages) {
        let (role, parts) = match message {
            ChatMessage::System(text) => {
                if !text.is_empty() {
                    system.push(object([("text", Value::from(text))]));
                }
                continue;
            }
            ChatMessage::User(parts) => ("user", parts.into_iter().map(content_part).collect()),
            ChatMessage::Assistant { parts, tool_calls } => {
                let mut rendered: Vec<Value> = parts.into_iter().map(content_part).collect();
                for call in tool_calls {
                    let (plain_id, signature) = split_thought_signature(&call.id);
                    call_names.insert(plain_id.to_string(), call.name.clone());
                    let mut part = Map::new();
                    part.insert(
                        "functionCall".into(),
                        object([
                            ("name", Value::from(call.name)),
                            ("args", Value::Object(call.arguments)),
                        ]),
                    );
                    if let Some(signature) = signature {
                        part.insert("thoughtSignature".into(), Value::String(signature.into()));
                    }
                    rendered.push(Value::Object(part));
                }
                ("model", rendered)
            }
            ChatMessage::Tool {
                tool_call_id,
                content,
            } => {
                let (plain_id, _) = split_thought_signature(&tool_call_id);
                let Some(name) = call_names.get(plain_id) else {
                    return Err(TranslateError::InvalidRequest(format!(
                        "tool message answers unknown tool_call_id `{tool_call_id}`"
                    )));
                };
                let response = match serde_json::from_slice::<Value>(content.as_bytes()) {
                    Ok(object @ Value::Object(_)) => object,
                    Ok(other) => object([("output", other)]),
                    Err(_) => object([("output", Value::from(content))]),
                };
                (
                    "user",
                    vec![object([(
                        "functionResponse",
                        object([("name", Value::from(name.as_str())), ("response", response)]),
                    )])],
                )
            }
        };
        let parts: Vec<Value> = parts
            .into_iter()
            .filter(|p| p.get("text").and_then(Value::as_str) != Some(""))
            .collect();
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some((last_role, last_parts)) if *last_role == role => last_parts.extend(parts),
            _ => contents.push((role, parts)),
        }
    }

    let mut out = Map::new();
    out.insert(
        "contents".into(),
        Value::Array(
            contents
                .into_iter()
                .map(|(role, parts)| {
                    object([("role", Value::from(role)), ("parts", Value::Array(parts))])
                })
                .collect(),
        ),
    );
    if !system.is_empty() {
        out.insert(
            "systemInstruction".into(),
            object([("parts", Value::Array(system))]),
        );
    }
    let config = generation_config(&mut request);
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    if !request.tools.is_empty() {
        let declarations: Vec<Value> = request
            .tools
            .drain(..)
            .map(|tool| {
                let mut declaration = Map::new();
                declaration.insert("name".into(), Value::String(tool.name));
                if let Some(description) = tool.description {
                    declaration.insert("description".into(), Value::String(description));
                }
                if let Some(parameters) = tool.parameters {
                    declaration.insert("parametersJsonSchema".into(), parameters);
                }
                Value::Object(declaration)
            })
            .collect();
        out.insert(
            "tools".into(),
            Value::Array(vec![object([(
                "functionDeclarations",
                Value::Array(declarations),
            )])]),
        );
        if let Some(choice) = request.tool_choice.take() {
            let config = match choice {
                ToolChoice::Auto => object([("mode", Value::from("AUTO"))]),
                ToolChoice::None => object([("mode", Value::from("NONE"))]),
                ToolChoice::Required => object([("mode", Value::from("ANY"))]),
                ToolChoice::Named(name) => object([
                    ("mode", Value::from("ANY")),
                    (
                        "allowedFunctionNames",
                        Value::Array(vec![Value::from(name)]),
                    ),
                ]),
            };
            out.insert(
                "toolConfig".into(),
                object([("functionCallingConfig", config)]),
            );
        }
    }

    let body = serde_json::to_vec(&Value::Object(out))
        .map_err(|e| TranslateError::InvalidRequest(format!("cannot encode request: {e}")))?;
    let path = if request.stream {
        format!("/v1beta/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("/v1beta/models/{model}:generateContent")
    };
    Ok(Translated {
        body,
        path,
        stream: request.stream,
        include_usage: request.include_usage,
        model,
    })
}

/// The `generationConfig` object: sampling settings and the response format.
fn generation_config(request: &mut ChatRequest) -> Map<String, Value> {
    let mut config = Map::new();
    if let Some(max) = request.max_tokens {
        config.insert("maxOutputTokens".into(), Value::from(max));
    }
    if let Some(t) = request.temperature {
        config.insert("temperature".into(), Value::from(t));
    }
    if let Some(p) = request.top_p {
        config.insert("topP".into(), Value::from(p));
    }
    if !request.stop.is_empty() {
        config.insert(
            "stopSequences".into(),
            Value::from(std::mem::take(&mut request.stop)),
        );
    }
    if let Some(seed) = request.seed {
        config.insert("seed".into(), Value::from(seed));
    }
    if let Some(p) = request.presence_penalty {
        config.insert("presencePenalty".into(), Value::from(p));
    }
    if let Some(p) = request.frequency_penalty {
        config.insert("frequencyPenalty".into(), Value::from(p));
    }
    match std::mem::take(&mut request.response_format) {
        ResponseFormat::Text => {}
        ResponseFormat::JsonObject => {
            config.insert("responseMimeType".into(), "application/json".into());
        }
        ResponseFormat::JsonSchema(schema) => {
            config.insert("responseMimeType".into(), "application/json".into());
            config.insert("responseJsonSchema".into(), schema);
        }
    }
    config
}

fn content_part(part: ContentPart) -> Value {
    match part {
        ContentPart::Text(text) => object([("text", Value::from(text))]),
        ContentPart::Image(ImageSource::Base64 { media_type, data }) => object([(
            "inlineData",
            object([
                ("mimeType", Value::from(media_type)),
                ("data", Value::from(data)),
            ]),
        )]),
        ContentPart::Image(ImageSource::Url(url)) => {
            let mut file = Map::new();
            if let Some(mime) = mime_from_extension(&url) {
                file.insert("mimeType".into(), Value::String(mime.to_string()));
            }
            file.insert("fileUri".into(), Value::String(url));
            object([("fileData", Value::Object(file))])
        }
    }
}

/// Guesses an image media type from a URL's file extension (Gemini wants one for `fileData`).
fn mime_from_extension(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let extension = path
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())?;
    match extension.as_str() {
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "gif" => Some("image/gif"),
        "webp" => Some("image/webp"),
        "heic" => Some("image/heic"),
        "heif" => Some("image/heif"),
        _ => None,
    }
}
