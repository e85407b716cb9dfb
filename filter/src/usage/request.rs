//! Request-side reading for usage accounting: the requested model, streaming flag and output
//! limit, and a cheap prompt-size estimate, all from one lenient pass over the request body.

use super::api_kind::{gemini_model_from_path, is_gemini_stream_path, ApiKind};
use super::lenient::{Count, Flag, Text};
use super::record::tokens_from_chars;
use super::shape::{BodyShape, InputValue, MessageList};
use super::text::MessageText;
use serde::Deserialize;

// Provider payloads: read from JSON objects only (see `crate::json_object`).
crate::json_object::object_only!(
    GenerationConfig,
    OllamaOptions,
    StreamOptions,
    RequestFields
);

#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(default)]
struct GenerationConfig {
    #[serde(rename = "maxOutputTokens", alias = "max_output_tokens")]
    max_output_tokens: Count,
}

#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(default)]
struct OllamaOptions {
    num_predict: Count,
}

#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(default)]
struct StreamOptions {
    include_usage: Flag,
}

/// The request fields this module reads; unknown fields are skipped without allocation.
#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(default)]
struct RequestFields {
    model: Text,
    stream: Flag,
    max_tokens: Count,
    max_completion_tokens: Count,
    max_output_tokens: Count,
    #[serde(rename = "generationConfig", alias = "generation_config")]
    generation_config: Option<GenerationConfig>,
    options: Option<OllamaOptions>,
    stream_options: Option<StreamOptions>,
    messages: Option<MessageList>,
    contents: Option<MessageList>,
    input: Option<InputValue>,
    system: MessageText,
    prompt: MessageText,
    instructions: MessageText,
    #[serde(rename = "systemInstruction", alias = "system_instruction")]
    system_instruction: MessageText,
}

impl RequestFields {
    fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice(body).ok()
    }

    fn max_tokens(&self) -> Option<u64> {
        self.max_completion_tokens
            .0
            .or(self.max_tokens.0)
            .or(self.max_output_tokens.0)
            .or(self
                .generation_config
                .as_ref()
                .and_then(|g| g.max_output_tokens.0))
            // Ollama: -1 (unbounded) and -2 (fill context) read as absent.
            .or(self.options.as_ref().and_then(|o| o.num_predict.0))
    }

    /// Characters of prompt text: every message's text (see [`super::text`]) plus the text of
    /// the system prompt, instructions, `prompt` and `input`.
    fn prompt_chars(&self) -> u64 {
        let list = |l: &Option<MessageList>| l.as_ref().map_or(0, |l| l.total_chars);
        [
            list(&self.messages),
            list(&self.contents),
            self.input.as_ref().map_or(0, |i| i.chars),
            self.system.0,
            self.prompt.0,
            self.instructions.0,
            self.system_instruction.0,
        ]
        .into_iter()
        .fold(0u64, u64::saturating_add)
    }
}

/// The prompt estimate of a body that parsed (`fields`) or did not (bytes / 4).
fn prompt_estimate(fields: Option<&RequestFields>, body: &[u8]) -> u64 {
    tokens_from_chars(fields.map_or(body.len() as u64, RequestFields::prompt_chars))
}

/// Estimates the prompt tokens of a request body: characters of its text (each message's text
/// as [`super::text`] defines it — the same text the guardrails measure — plus `system`,
/// `systemInstruction`, `instructions`, `prompt` and `input`) divided by 4. A body that is not
/// JSON is estimated as bytes / 4.
pub fn estimate_prompt_tokens(body: &[u8]) -> u64 {
    prompt_estimate(RequestFields::parse(body).as_ref(), body)
}

/// The output limit the request asks for: `max_completion_tokens`, `max_tokens`,
/// `max_output_tokens`, `generationConfig.maxOutputTokens` or Ollama `options.num_predict`.
pub fn requested_max_tokens(body: &[u8]) -> Option<u64> {
    RequestFields::parse(body)?.max_tokens()
}

/// The top-level `model` of the request body (Gemini names the model in the path instead; see
/// [`gemini_model_from_path`]).
pub fn request_model(body: &[u8]) -> Option<String> {
    RequestFields::parse(body)?
        .model
        .0
        .filter(|m| !m.is_empty())
}

/// True when the body has `"stream": true`. Ollama native streams when `stream` is absent and
/// Gemini streams by path; [`RequestInfo::from_request`] applies those defaults.
pub fn is_streaming_request(body: &[u8]) -> bool {
    RequestFields::parse(body).is_some_and(|f| f.stream.0 == Some(true))
}

/// Everything the usage accounting needs from a request, read in one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// The model requested (body `model`, or the Gemini path's model).
    pub model: Option<String>,
    /// The client asked for a streamed response.
    pub streaming: bool,
    /// The output limit asked for.
    pub max_tokens: Option<u64>,
    /// The prompt-size estimate, in tokens.
    pub prompt_estimate: u64,
    /// The client set `stream_options.include_usage: true` itself.
    pub include_usage_requested: bool,
    /// The body's structure, for request guardrails (read in the same pass).
    pub shape: BodyShape,
}

impl RequestInfo {
    /// Reads a request of `kind` sent to `path`, applying each API's defaults (Ollama native
    /// streams unless `"stream": false`; Gemini streams on `:streamGenerateContent`).
    pub fn from_request(kind: ApiKind, path: &str, body: &[u8]) -> Self {
        let parsed = RequestFields::parse(body);
        // serde reads a struct from an array too: only an object counts.
        let starts_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let json_object = parsed.is_some() && starts_object;
        let prompt_estimate = prompt_estimate(parsed.as_ref(), body);
        let fields = parsed.unwrap_or_default();
        let explicit_stream = fields.stream.0;
        let streaming = match kind {
            ApiKind::Gemini => is_gemini_stream_path(path),
            ApiKind::OllamaChat => explicit_stream != Some(false),
            _ => explicit_stream == Some(true),
        };
        let model = match kind {
            ApiKind::Gemini => gemini_model_from_path(path).map(str::to_string),
            _ => None,
        }
        .or_else(|| fields.model.0.clone().filter(|m| !m.is_empty()));
        Self {
            model,
            streaming,
            max_tokens: fields.max_tokens(),
            prompt_estimate,
            include_usage_requested: fields
                .stream_options
                .as_ref()
                .is_some_and(|o| o.include_usage.0 == Some(true)),
            shape: BodyShape {
                json_object,
                model: fields.model.as_deref().is_some_and(|m| !m.is_empty()),
                messages: fields.messages,
                contents: fields.contents,
                input: fields.input.map(|i| i.field),
                max_tokens: fields.max_tokens.0.is_some(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_max_tokens_from_every_api() {
        let cases: [(&str, Option<u64>); 7] = [
            (r#"{"max_tokens":100}"#, Some(100)),
            (r#"{"max_tokens":100,"max_completion_tokens":50}"#, Some(50)),
            (r#"{"max_output_tokens":70}"#, Some(70)),
            (r#"{"generationConfig":{"maxOutputTokens":64}}"#, Some(64)),
            (r#"{"options":{"num_predict":32}}"#, Some(32)),
            (r#"{"options":{"num_predict":-1}}"#, None),
            ("not json", None),
        ];
        for (body, want) in cases {
            assert_eq!(requested_max_tokens(body.as_bytes()), want, "{body}");
        }
    }

    #[test]
    fn reads_model_and_stream() {
        let body = br#"{"model":"gpt-4o","stream":true,"messages":[]}"#;
        assert_eq!(request_model(body).as_deref(), Some("gpt-4o"));
        assert!(is_streaming_request(body));
        assert!(!is_streaming_request(br#"{"stream":"yes"}"#));
        assert!(!is_streaming_request(b"{}"));
    }

    #[test]
    fn request_info_applies_api_defaults() {
        let ollama = RequestInfo::from_request(
            ApiKind::OllamaChat,
            "/api/chat",
            br#"{"model":"llama3","messages":[{"role":"user","content":"hello there"}]}"#,
        );
        assert!(ollama.streaming);
        assert_eq!(ollama.model.as_deref(), Some("llama3"));
        assert_eq!(ollama.prompt_estimate, 3, "hello there = 11 chars");

        let gemini = RequestInfo::from_request(
            ApiKind::Gemini,
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
            br#"{"contents":[{"parts":[{"text":"hi"}]}]}"#,
        );
        assert!(gemini.streaming);
        assert_eq!(gemini.model.as_deref(), Some("gemini-2.0-flash"));

        let openai = RequestInfo::from_request(
            ApiKind::OpenAiChat,
            "/v1/chat/completions",
            br#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#,
        );
        assert!(openai.streaming && openai.include_usage_requested);
    }

    #[test]
    fn estimate_and_guardrails_measure_the_same_message_text() {
        let body = br#"{"model":"m","system":"be brief","messages":[
            {"role":"user","content":[{"type":"text","text":"abcdefgh"},{"type":"image_url","image_url":{"url":"data:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}]},
            {"role":"assistant","content":"ijkl","tool_calls":[{"function":{"arguments":"{}"}}]}]}"#;
        let info = RequestInfo::from_request(ApiKind::OpenAiChat, "/v1/chat/completions", body);
        let messages = info.shape.messages.unwrap();
        // The guardrails see 8 and 4 characters; the estimate counts those 12 plus the system
        // prompt's 8, and nothing of roles, type tags, the image or the tool call.
        assert_eq!((messages.longest_chars, messages.total_chars), (8, 12));
        assert_eq!(info.prompt_estimate, tokens_from_chars(12 + 8));
        assert_eq!(estimate_prompt_tokens(body), info.prompt_estimate);
        let gemini = br#"{"systemInstruction":{"parts":[{"text":"abcd"}]},"contents":[{"role":"user","parts":[{"text":"abcdefgh"}]}]}"#;
        let info =
            RequestInfo::from_request(ApiKind::Gemini, "/v1beta/models/g:generateContent", gemini);
        assert_eq!(info.shape.contents.unwrap().longest_chars, 8);
        assert_eq!(info.prompt_estimate, tokens_from_chars(8 + 4));
        let embeddings = br#"{"model":"e","input":["abcd","efgh"]}"#;
        assert_eq!(estimate_prompt_tokens(embeddings), tokens_from_chars(8));
    }

    #[test]
    fn prompt_estimate_falls_back_to_bytes() {
        assert_eq!(estimate_prompt_tokens(b"not json"), 2);
        assert_eq!(estimate_prompt_tokens(b""), 0);
    }
}
