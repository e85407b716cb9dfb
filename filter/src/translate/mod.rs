//! Cross-provider translation: clients always speak the OpenAI chat-completions API, and this
//! module lets tollgate send their request to Anthropic Messages or Gemini `generateContent`
//! instead, then turn the provider's answer (plain JSON, error bodies and SSE streams) back into
//! the OpenAI shape so the client never notices.
//!
//! Everything here is pure: bytes in, bytes out, plus a bounded streaming state machine. The
//! host picks the provider, calls the request translator, forwards the body to the returned
//! path, and pipes the response through [`anthropic_to_openai`] / [`gemini_to_openai`],
//! [`provider_error_to_openai`] or a [`StreamTranslator`].
//!
//! Layout: [`openai_request`] parses the client request once into a provider-neutral form that
//! [`to_anthropic`] and [`to_gemini`] render; [`from_anthropic`] and [`from_gemini`] translate
//! whole responses; [`stream`] (with the shared [`crate::sse`] parser, `stream_anthropic`,
//! `stream_gemini` and the OpenAI writer `stream_out`) translates event streams; [`openai_out`] owns the OpenAI output shapes; [`provider_error`] maps error
//! bodies; [`tool_ids`] names tool calls; [`model_map`] maps client model names.

pub mod from_anthropic;
pub mod from_gemini;
pub mod model_map;
pub mod openai_out;
pub mod openai_request;
pub mod provider_error;
pub mod stream;
mod stream_anthropic;
mod stream_gemini;
mod stream_out;
pub mod to_anthropic;
pub mod to_gemini;
pub mod tool_ids;

#[cfg(test)]
mod tests;

use std::fmt;

pub use from_anthropic::{anthropic_to_openai, anthropic_to_openai_at};
pub use from_gemini::{gemini_to_openai, gemini_to_openai_at};
pub use model_map::map_model;
pub use openai_out::TokenUsage;
pub use provider_error::{
    client_status_for_provider_status, provider_error_to_openai, stream_error_event,
};
pub use stream::StreamTranslator;
pub use to_anthropic::{openai_to_anthropic, AnthropicOptions, ANTHROPIC_VERSION};
pub use to_gemini::{openai_to_gemini, GeminiOptions};

/// The provider wire format a response (or stream) arrives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// Anthropic Messages API (`/v1/messages`).
    Anthropic,
    /// Google Gemini `generateContent` / `streamGenerateContent?alt=sse`.
    Gemini,
}

impl SourceFormat {
    /// A short lower-case provider name, for logs and error messages.
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Anthropic => "anthropic",
            SourceFormat::Gemini => "gemini",
        }
    }
}

/// A request body rewritten for another provider, with where to send it.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    /// The provider request body (JSON).
    pub body: Vec<u8>,
    /// The request path (and query) on the provider, e.g. `/v1/messages`.
    pub path: String,
    /// The client asked for a stream (`"stream": true`); the response will be SSE.
    pub stream: bool,
    /// The client asked for `stream_options.include_usage`; pass it to [`StreamTranslator::new`].
    pub include_usage: bool,
    /// The provider model the request was rendered for (after any override).
    pub model: String,
}

/// Why a request could not be translated; every variant is the client's fault (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranslateError {
    /// The body is not a JSON object.
    InvalidJson(String),
    /// The body is JSON but not a well-formed chat-completions request.
    InvalidRequest(String),
    /// The request uses a feature the target provider has no equivalent for.
    Unsupported(String),
}

impl TranslateError {
    /// The human-readable reason, suitable for the client.
    pub fn message(&self) -> &str {
        match self {
            TranslateError::InvalidJson(m)
            | TranslateError::InvalidRequest(m)
            | TranslateError::Unsupported(m) => m,
        }
    }

    /// A short machine-readable code for the OpenAI error `code` field.
    pub fn code(&self) -> &'static str {
        match self {
            TranslateError::InvalidJson(_) => "invalid_json",
            TranslateError::InvalidRequest(_) => "invalid_request",
            TranslateError::Unsupported(_) => "unsupported_parameter",
        }
    }

    /// The OpenAI error body (`{"error":{...}}`) a client should receive, with status 400.
    pub fn to_openai_error_body(&self) -> Vec<u8> {
        provider_error::openai_error_body(self.message(), "invalid_request_error", self.code())
    }
}

impl fmt::Display for TranslateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for TranslateError {}
