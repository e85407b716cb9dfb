//! Provider error bodies (Anthropic `{"type":"error","error":{type,message}}`, Gemini
//! `{"error":{code,message,status}}`) rewritten as OpenAI `{"error":{message,type,param,code}}`,
//! plus the in-stream error event that ends a broken stream the way OpenAI SDKs understand.

use serde::Deserialize;
use serde_json::Value;

use super::openai_out::SSE_DONE;
use super::SourceFormat;
use crate::json_build::object;

// Provider payloads: read from JSON objects only (see `crate::json_object`).
crate::json_object::object_only!(
    AnthropicErrorEnvelope,
    AnthropicErrorDetail,
    GeminiErrorEnvelope,
    GeminiErrorDetail
);

/// How much of an unparseable provider error body is quoted back to the client.
const MAX_QUOTED_BODY_CHARS: usize = 200;

/// Renders an OpenAI error body.
pub fn openai_error_body(message: &str, error_type: &str, code: &str) -> Vec<u8> {
    serde_json::to_vec(&openai_error_value(message, error_type, code)).unwrap_or_default()
}

fn openai_error_value(message: &str, error_type: &str, code: &str) -> Value {
    object([(
        "error",
        object([
            ("message", Value::from(message)),
            ("type", Value::from(error_type)),
            ("param", Value::Null),
            ("code", Value::from(code)),
        ]),
    )])
}

/// The status a client should see for a provider status: Anthropic's 529 (overloaded), which
/// OpenAI never sends, becomes 503; everything else is kept.
pub fn client_status_for_provider_status(status: u16) -> u16 {
    if status == 529 {
        503
    } else {
        status
    }
}

/// Translates a provider error response body into an OpenAI error body.
///
/// The provider's message is kept; `type` and `code` are mapped from the provider's error type
/// (or, for bodies that cannot be read, from the HTTP status).
pub fn provider_error_to_openai(status: u16, body: &[u8], provider: SourceFormat) -> Vec<u8> {
    let (message, error_type, code) = match provider {
        SourceFormat::Anthropic => read_anthropic_error(body).map(|(message, kind)| {
            let (error_type, code) = map_anthropic_error_type(&kind);
            (message, error_type, code.to_string())
        }),
        SourceFormat::Gemini => read_gemini_error(body).map(|(message, status_name)| {
            let (error_type, code) = map_gemini_status(&status_name, status);
            (message, error_type, code)
        }),
    }
    .unwrap_or_else(|| {
        let (error_type, code) = map_http_status(status);
        let quoted: String = String::from_utf8_lossy(body)
            .chars()
            .take(MAX_QUOTED_BODY_CHARS)
            .collect();
        let message = if quoted.trim().is_empty() {
            format!("{} returned HTTP {status}", provider.name())
        } else {
            format!(
                "{} returned HTTP {status}: {}",
                provider.name(),
                quoted.trim()
            )
        };
        (message, error_type, code.to_string())
    });
    openai_error_body(&message, error_type, &code)
}

/// An SSE error event followed by `data: [DONE]`, for ending a stream that broke midway:
/// `data: {"error":{"message":..,"type":"server_error","param":null,"code":..}}`.
pub fn stream_error_event(message: &str, code: &str) -> Vec<u8> {
    stream_error_event_typed(message, "server_error", code)
}

/// Like [`stream_error_event`] with an explicit OpenAI error `type`.
pub fn stream_error_event_typed(message: &str, error_type: &str, code: &str) -> Vec<u8> {
    let mut out = b"data: ".to_vec();
    out.extend_from_slice(&openai_error_body(message, error_type, code));
    out.extend_from_slice(b"\n\n");
    out.extend_from_slice(SSE_DONE);
    out
}

#[derive(Deserialize)]
#[serde(remote = "Self")]
struct AnthropicErrorEnvelope {
    error: AnthropicErrorDetail,
}

/// The `error` object of an Anthropic error body or stream `error` event.
#[derive(Deserialize)]
#[serde(remote = "Self")]
pub(crate) struct AnthropicErrorDetail {
    #[serde(rename = "type", default)]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) message: String,
}

fn read_anthropic_error(body: &[u8]) -> Option<(String, String)> {
    let envelope: AnthropicErrorEnvelope = serde_json::from_slice(body).ok()?;
    Some((envelope.error.message, envelope.error.kind))
}

#[derive(Deserialize)]
#[serde(remote = "Self")]
struct GeminiErrorEnvelope {
    error: GeminiErrorDetail,
}

#[derive(Deserialize)]
#[serde(remote = "Self")]
struct GeminiErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
}

fn read_gemini_error(body: &[u8]) -> Option<(String, String)> {
    // Streaming endpoints without `alt=sse` wrap the error in an array.
    let value: Value = serde_json::from_slice(body).ok()?;
    let object = match value {
        Value::Array(items) => items.into_iter().next()?,
        other => other,
    };
    // The configuration's reader: serde_json's own `Value` deserializer stays out of the module.
    let envelope: GeminiErrorEnvelope = crate::config::value_reader::read(&object).ok()?;
    Some((envelope.error.message, envelope.error.status))
}

/// Maps an Anthropic error type to the OpenAI error `type` and `code`.
pub(crate) fn map_anthropic_error_type(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "invalid_request_error" => ("invalid_request_error", "invalid_request_error"),
        "authentication_error" => ("authentication_error", "invalid_api_key"),
        "permission_error" => ("permission_error", "permission_denied"),
        "not_found_error" => ("invalid_request_error", "not_found"),
        "request_too_large" => ("invalid_request_error", "request_too_large"),
        "rate_limit_error" => ("rate_limit_error", "rate_limit_exceeded"),
        "overloaded_error" => ("server_error", "overloaded"),
        "timeout_error" => ("server_error", "timeout"),
        _ => ("server_error", "server_error"),
    }
}

/// Maps a Gemini (google.rpc) status to the OpenAI error `type` and `code`.
pub(crate) fn map_gemini_status(status_name: &str, http_status: u16) -> (&'static str, String) {
    let error_type = match status_name {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" | "NOT_FOUND" => {
            "invalid_request_error"
        }
        "UNAUTHENTICATED" => "authentication_error",
        "PERMISSION_DENIED" => "permission_error",
        "RESOURCE_EXHAUSTED" => "rate_limit_error",
        "" => map_http_status(http_status).0,
        _ => "server_error",
    };
    let code = match status_name {
        "UNAUTHENTICATED" => "invalid_api_key".to_string(),
        "RESOURCE_EXHAUSTED" => "rate_limit_exceeded".to_string(),
        "" => map_http_status(http_status).1.to_string(),
        other => other.to_ascii_lowercase(),
    };
    (error_type, code)
}

/// Maps an HTTP status alone to the OpenAI error `type` and `code`.
fn map_http_status(status: u16) -> (&'static str, &'static str) {
    match status {
        401 => ("authentication_error", "invalid_api_key"),
        403 => ("permission_error", "permission_denied"),
        404 => ("invalid_request_error", "not_found"),
        413 => ("invalid_request_error", "request_too_large"),
        429 => ("rate_limit_error", "rate_limit_exceeded"),
        400..=499 => ("invalid_request_error", "invalid_request_error"),
        _ => ("server_error", "server_error"),
    }
}
