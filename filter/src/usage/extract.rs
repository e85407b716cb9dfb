//! Reads usage, model, finish reason, terminator and generated-text size out of each provider's
//! response payloads (one streamed event or line, or one whole JSON body) into [`Observed`].
//!
//! Rules that matter for correctness:
//! - OpenAI / vLLM chat: the last `usage` seen wins (vLLM's `continuous_usage_stats` repeats it
//!   in every chunk); the terminator is `data: [DONE]`.
//! - OpenAI Responses: usage comes in `response.completed` (also `response.incomplete` and
//!   `response.failed`, which are terminal too) at `response.usage`.
//! - Anthropic: `message_start` carries input and cache counters; every `message_delta` carries
//!   CUMULATIVE counters, so the latest value of each field wins and nothing is summed; the
//!   terminator is `message_stop`.
//! - Gemini: the last `usageMetadata` seen wins; a candidate with a `finishReason` (or a blocked
//!   prompt) ends the stream.
//! - Ollama native: the object with `"done": true` carries the counters and ends the stream.

use super::api_kind::ApiKind;
use super::lenient::{Count, Flag, Text, TextLen};
use super::record::Usage;
use serde::Deserialize;

// Provider payloads: read from JSON objects only (see `crate::json_object`).
crate::json_object::object_only!(
    OpenAiUsage,
    TokenDetails,
    ChatBody,
    ChatChoice,
    ResponseObject,
    ResponsesEvent,
    AnthropicUsage,
    AnthropicMessage,
    AnthropicDelta,
    AnthropicEvent,
    GeminiUsage,
    GeminiCandidate,
    GeminiPromptFeedback,
    GeminiResponse,
    OllamaChunk
);

/// What has been learned from a response so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The latest usage the provider reported, in canonical form.
    pub usage: Option<Usage>,
    /// The model as the response names it.
    pub model: Option<String>,
    /// The latest finish / stop reason.
    pub finish_reason: Option<String>,
    /// The provider's terminator was seen.
    pub complete: bool,
    /// Characters of generated text (content, reasoning, tool arguments) seen so far.
    pub output_chars: u64,
    /// Payloads that could not be read as the expected JSON.
    pub unreadable_payloads: u64,
    /// Anthropic's raw counters, merged field by field as events arrive.
    anthropic: AnthropicCounters,
}

impl Observed {
    fn set_model(&mut self, model: Text) {
        if let Some(m) = model.0.filter(|m| !m.is_empty()) {
            if self.model.as_deref() != Some(m.as_str()) {
                self.model = Some(m);
            }
        }
    }

    fn set_finish_reason(&mut self, reason: Text) {
        if let Some(r) = reason.0.filter(|r| !r.is_empty()) {
            self.finish_reason = Some(r);
        }
    }

    fn add_chars(&mut self, n: TextLen) {
        self.output_chars = self.output_chars.saturating_add(n.0);
    }
}

/// Reads one streamed payload (an SSE event's data or an NDJSON line). `event_name` is the SSE
/// `event:` field, used when the JSON carries no `type`.
pub fn observe_stream_payload(
    kind: ApiKind,
    event_name: Option<&str>,
    payload: &[u8],
    obs: &mut Observed,
) {
    let trimmed = payload.trim_ascii();
    if trimmed == b"[DONE]" {
        obs.complete = true;
        return;
    }
    if trimmed.is_empty() {
        return;
    }
    let ok = match kind {
        ApiKind::OpenAiChat | ApiKind::OpenAiEmbeddings => observe_openai_chat(trimmed, obs),
        ApiKind::OpenAiResponses => observe_responses_event(trimmed, event_name, obs),
        ApiKind::Anthropic => observe_anthropic_event(trimmed, event_name, obs),
        ApiKind::Gemini => observe_gemini(trimmed, obs),
        ApiKind::OllamaChat => observe_ollama(trimmed, obs),
    };
    if !ok {
        obs.unreadable_payloads += 1;
    }
}

/// Reads a whole non-streamed JSON body. A body that parses is complete.
pub fn observe_body(kind: ApiKind, body: &[u8], obs: &mut Observed) {
    let body = body.trim_ascii();
    let ok = match kind {
        ApiKind::OpenAiChat | ApiKind::OpenAiEmbeddings => observe_openai_chat(body, obs),
        ApiKind::OpenAiResponses => observe_responses_body(body, obs),
        ApiKind::Anthropic => observe_anthropic_body(body, obs),
        ApiKind::Gemini if body.first() == Some(&b'[') => observe_gemini_array(body, obs),
        ApiKind::Gemini => observe_gemini(body, obs),
        ApiKind::OllamaChat => observe_ollama(body, obs),
    };
    if ok {
        obs.complete = true;
    } else {
        obs.unreadable_payloads += 1;
    }
}

/// Reads the usage object from the last bytes of a JSON body too large to buffer whole (the
/// providers serialise usage after the generated content). Returns true when usage was found;
/// the model, text and finish reason of such a body stay unknown.
pub fn observe_usage_tail(kind: ApiKind, tail: &[u8], obs: &mut Observed) -> bool {
    let key: &[u8] = match kind {
        ApiKind::Gemini => b"\"usageMetadata\"",
        ApiKind::OllamaChat => return false,
        _ => b"\"usage\"",
    };
    let Some(at) = tail.windows(key.len()).rposition(|w| w == key) else {
        return false;
    };
    let after_key = tail
        .get(at + key.len()..)
        .unwrap_or_default()
        .trim_ascii_start();
    let Some(value) = after_key.strip_prefix(b":") else {
        return false;
    };
    let mut de = serde_json::Deserializer::from_slice(value.trim_ascii_start());
    let usage = match kind {
        ApiKind::Anthropic => AnthropicUsage::deserialize(&mut de).ok().map(|u| {
            obs.anthropic.merge(&u);
            obs.anthropic.to_usage()
        }),
        ApiKind::Gemini => GeminiUsage::deserialize(&mut de)
            .ok()
            .and_then(|u| u.to_usage()),
        _ => OpenAiUsage::deserialize(&mut de)
            .ok()
            .and_then(|u| u.to_usage()),
    };
    if usage.is_some() {
        obs.usage = usage;
    }
    usage.is_some()
}

// ---- OpenAI Chat Completions / Embeddings -------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(default)]
struct OpenAiUsage {
    prompt_tokens: Count,
    completion_tokens: Count,
    input_tokens: Count,
    output_tokens: Count,
    total_tokens: Count,
    prompt_tokens_details: Option<TokenDetails>,
    completion_tokens_details: Option<TokenDetails>,
    input_tokens_details: Option<TokenDetails>,
    output_tokens_details: Option<TokenDetails>,
}

#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(default)]
struct TokenDetails {
    cached_tokens: Count,
    reasoning_tokens: Count,
}

impl OpenAiUsage {
    /// Canonical usage, reading either the Chat (`prompt_tokens`) or the Responses
    /// (`input_tokens`) field names; `None` when no counter is present.
    fn to_usage(&self) -> Option<Usage> {
        let input = self.prompt_tokens.0.or(self.input_tokens.0);
        let output = self.completion_tokens.0.or(self.output_tokens.0);
        if input.is_none() && output.is_none() && self.total_tokens.0.is_none() {
            return None;
        }
        let prompt_details = self
            .prompt_tokens_details
            .as_ref()
            .or(self.input_tokens_details.as_ref());
        let completion_details = self
            .completion_tokens_details
            .as_ref()
            .or(self.output_tokens_details.as_ref());
        Some(Usage::from_openai_chat(
            input.unwrap_or(0),
            output.unwrap_or(0),
            self.total_tokens.0,
            prompt_details.map_or(0, |d| d.cached_tokens.or_zero()),
            completion_details.map_or(0, |d| d.reasoning_tokens.or_zero()),
        ))
    }
}

#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(default)]
struct ChatBody {
    model: Text,
    choices: Option<Vec<ChatChoice>>,
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(default)]
struct ChatChoice {
    delta: TextLen,
    message: TextLen,
    text: TextLen,
    finish_reason: Text,
}

fn observe_openai_chat(json: &[u8], obs: &mut Observed) -> bool {
    let Ok(body) = serde_json::from_slice::<ChatBody>(json) else {
        return false;
    };
    obs.set_model(body.model);
    for choice in body.choices.into_iter().flatten() {
        obs.add_chars(choice.delta);
        obs.add_chars(choice.message);
        obs.add_chars(choice.text);
        obs.set_finish_reason(choice.finish_reason);
    }
    if let Some(u) = body.usage.as_ref().and_then(OpenAiUsage::to_usage) {
        obs.usage = Some(u);
    }
    true
}

// ---- OpenAI Responses -----------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(default)]
struct ResponseObject {
    model: Text,
    status: Text,
    usage: Option<OpenAiUsage>,
    output: TextLen,
}

#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(default)]
struct ResponsesEvent {
    #[serde(rename = "type")]
    kind: Text,
    delta: TextLen,
    response: Option<ResponseObject>,
}

fn observe_response_object(response: ResponseObject, obs: &mut Observed) {
    obs.set_model(response.model);
    if let Some(u) = response.usage.as_ref().and_then(OpenAiUsage::to_usage) {
        obs.usage = Some(u);
    }
    obs.set_finish_reason(response.status);
}

fn observe_responses_event(json: &[u8], event_name: Option<&str>, obs: &mut Observed) -> bool {
    let Ok(event) = serde_json::from_slice::<ResponsesEvent>(json) else {
        return false;
    };
    let kind = event.kind.as_deref().or(event_name).unwrap_or_default();
    if kind.ends_with(".delta") && !kind.contains("audio") && !kind.contains("image") {
        obs.add_chars(event.delta);
    }
    let terminal = matches!(
        kind,
        "response.completed" | "response.incomplete" | "response.failed"
    );
    if let Some(mut response) = event.response {
        if !terminal {
            // Only a terminal event's status ("completed", "incomplete", "failed") is final.
            response.status = Text(None);
        }
        observe_response_object(response, obs);
    }
    if terminal {
        obs.complete = true;
    }
    true
}

fn observe_responses_body(json: &[u8], obs: &mut Observed) -> bool {
    let Ok(response) = serde_json::from_slice::<ResponseObject>(json) else {
        return false;
    };
    obs.add_chars(response.output);
    observe_response_object(response, obs);
    true
}

// ---- Anthropic Messages ---------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(default)]
struct AnthropicUsage {
    input_tokens: Count,
    output_tokens: Count,
    cache_read_input_tokens: Count,
    cache_creation_input_tokens: Count,
}

/// Anthropic's raw counters; each event overrides the fields it carries (they are cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct AnthropicCounters {
    input: Option<u64>,
    output: Option<u64>,
    cache_read: Option<u64>,
    cache_creation: Option<u64>,
}

impl AnthropicCounters {
    fn merge(&mut self, u: &AnthropicUsage) -> bool {
        let mut any = false;
        for (slot, value) in [
            (&mut self.input, u.input_tokens.0),
            (&mut self.output, u.output_tokens.0),
            (&mut self.cache_read, u.cache_read_input_tokens.0),
            (&mut self.cache_creation, u.cache_creation_input_tokens.0),
        ] {
            if value.is_some() {
                *slot = value;
                any = true;
            }
        }
        any
    }

    fn to_usage(self) -> Usage {
        Usage::from_anthropic(
            self.input.unwrap_or(0),
            self.output.unwrap_or(0),
            self.cache_read.unwrap_or(0),
            self.cache_creation.unwrap_or(0),
        )
    }
}

#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(default)]
struct AnthropicMessage {
    #[serde(rename = "type")]
    kind: Text,
    model: Text,
    usage: Option<AnthropicUsage>,
    content: TextLen,
    stop_reason: Text,
}

#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(default)]
struct AnthropicDelta {
    text: TextLen,
    thinking: TextLen,
    partial_json: TextLen,
    stop_reason: Text,
}

#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(default)]
struct AnthropicEvent {
    #[serde(rename = "type")]
    kind: Text,
    message: Option<AnthropicMessage>,
    usage: Option<AnthropicUsage>,
    delta: Option<AnthropicDelta>,
    content_block: TextLen,
}

fn merge_anthropic_usage(usage: Option<&AnthropicUsage>, obs: &mut Observed) {
    if let Some(u) = usage {
        if obs.anthropic.merge(u) {
            obs.usage = Some(obs.anthropic.to_usage());
        }
    }
}

fn observe_anthropic_event(json: &[u8], event_name: Option<&str>, obs: &mut Observed) -> bool {
    let Ok(event) = serde_json::from_slice::<AnthropicEvent>(json) else {
        return false;
    };
    let kind = event.kind.as_deref().or(event_name).unwrap_or_default();
    if kind == "message_stop" {
        obs.complete = true;
    }
    if let Some(message) = event.message {
        obs.set_model(message.model);
        obs.add_chars(message.content);
        obs.set_finish_reason(message.stop_reason);
        merge_anthropic_usage(message.usage.as_ref(), obs);
    }
    merge_anthropic_usage(event.usage.as_ref(), obs);
    if let Some(delta) = event.delta {
        obs.add_chars(delta.text);
        obs.add_chars(delta.thinking);
        obs.add_chars(delta.partial_json);
        obs.set_finish_reason(delta.stop_reason);
    }
    obs.add_chars(event.content_block);
    true
}

fn observe_anthropic_body(json: &[u8], obs: &mut Observed) -> bool {
    let Ok(message) = serde_json::from_slice::<AnthropicMessage>(json) else {
        return false;
    };
    if message.kind.as_deref() == Some("error") {
        return true;
    }
    obs.set_model(message.model);
    obs.add_chars(message.content);
    obs.set_finish_reason(message.stop_reason);
    merge_anthropic_usage(message.usage.as_ref(), obs);
    true
}

// ---- Gemini ---------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(default)]
struct GeminiUsage {
    #[serde(rename = "promptTokenCount", alias = "prompt_token_count")]
    prompt: Count,
    #[serde(rename = "candidatesTokenCount", alias = "candidates_token_count")]
    candidates: Count,
    #[serde(rename = "thoughtsTokenCount", alias = "thoughts_token_count")]
    thoughts: Count,
    #[serde(
        rename = "toolUsePromptTokenCount",
        alias = "tool_use_prompt_token_count"
    )]
    tool_use_prompt: Count,
    #[serde(
        rename = "cachedContentTokenCount",
        alias = "cached_content_token_count"
    )]
    cached: Count,
    #[serde(rename = "totalTokenCount", alias = "total_token_count")]
    total: Count,
}

impl GeminiUsage {
    /// Canonical usage; `None` when no counter is present.
    fn to_usage(&self) -> Option<Usage> {
        [self.prompt, self.candidates, self.thoughts, self.total]
            .iter()
            .any(|c| c.0.is_some())
            .then(|| {
                Usage::from_gemini(
                    self.prompt.or_zero(),
                    self.candidates.or_zero(),
                    self.thoughts.or_zero(),
                    self.tool_use_prompt.or_zero(),
                    self.cached.or_zero(),
                    self.total.0,
                )
            })
    }
}

#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(default)]
struct GeminiCandidate {
    content: TextLen,
    #[serde(rename = "finishReason", alias = "finish_reason")]
    finish_reason: Text,
}

#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(default)]
struct GeminiPromptFeedback {
    #[serde(rename = "blockReason", alias = "block_reason")]
    block_reason: Text,
}

#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(default)]
struct GeminiResponse {
    candidates: Option<Vec<GeminiCandidate>>,
    #[serde(rename = "usageMetadata", alias = "usage_metadata")]
    usage: Option<GeminiUsage>,
    #[serde(rename = "modelVersion", alias = "model_version")]
    model_version: Text,
    #[serde(rename = "promptFeedback", alias = "prompt_feedback")]
    prompt_feedback: Option<GeminiPromptFeedback>,
}

fn apply_gemini(response: GeminiResponse, obs: &mut Observed) {
    obs.set_model(response.model_version);
    for candidate in response.candidates.into_iter().flatten() {
        obs.add_chars(candidate.content);
        let finished = candidate
            .finish_reason
            .as_deref()
            .is_some_and(|r| !r.is_empty() && r != "FINISH_REASON_UNSPECIFIED");
        if finished {
            obs.complete = true;
        }
        obs.set_finish_reason(candidate.finish_reason);
    }
    if let Some(feedback) = response.prompt_feedback {
        if let Some(reason) = feedback.block_reason.0.filter(|r| !r.is_empty()) {
            obs.complete = true;
            obs.finish_reason = Some(reason);
        }
    }
    if let Some(u) = response.usage.as_ref().and_then(GeminiUsage::to_usage) {
        obs.usage = Some(u);
    }
}

fn observe_gemini(json: &[u8], obs: &mut Observed) -> bool {
    match serde_json::from_slice::<GeminiResponse>(json) {
        Ok(response) => {
            apply_gemini(response, obs);
            true
        }
        Err(_) => false,
    }
}

fn observe_gemini_array(json: &[u8], obs: &mut Observed) -> bool {
    match serde_json::from_slice::<Vec<GeminiResponse>>(json) {
        Ok(responses) => {
            for r in responses {
                apply_gemini(r, obs);
            }
            true
        }
        Err(_) => false,
    }
}

// ---- Ollama native --------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(default)]
struct OllamaChunk {
    model: Text,
    message: TextLen,
    response: TextLen,
    thinking: TextLen,
    done: Flag,
    done_reason: Text,
    prompt_eval_count: Count,
    eval_count: Count,
}

fn observe_ollama(json: &[u8], obs: &mut Observed) -> bool {
    let Ok(chunk) = serde_json::from_slice::<OllamaChunk>(json) else {
        return false;
    };
    obs.set_model(chunk.model);
    obs.add_chars(chunk.message);
    obs.add_chars(chunk.response);
    obs.add_chars(chunk.thinking);
    obs.set_finish_reason(chunk.done_reason);
    if chunk.prompt_eval_count.0.is_some() || chunk.eval_count.0.is_some() {
        obs.usage = Some(Usage::from_ollama(
            chunk.prompt_eval_count.or_zero(),
            chunk.eval_count.or_zero(),
        ));
    }
    if chunk.done.0 == Some(true) {
        obs.complete = true;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_message_delta_overrides_instead_of_summing() {
        let mut obs = Observed::default();
        let events: [&[u8]; 3] = [
            br#"{"type":"message_start","message":{"model":"claude","usage":{"input_tokens":10,"cache_read_input_tokens":100,"output_tokens":1}}}"#,
            br#"{"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":20}}"#,
            br#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":35,"input_tokens":12}}"#,
        ];
        for e in events {
            observe_stream_payload(ApiKind::Anthropic, None, e, &mut obs);
        }
        assert_eq!(obs.usage, Some(Usage::from_anthropic(12, 35, 100, 0)));
        assert_eq!(obs.finish_reason.as_deref(), Some("end_turn"));
        assert!(!obs.complete);
    }

    #[test]
    fn unreadable_payloads_are_counted_not_fatal() {
        let mut obs = Observed::default();
        observe_stream_payload(ApiKind::OpenAiChat, None, b"{oops", &mut obs);
        observe_stream_payload(ApiKind::OpenAiChat, None, b" [DONE] ", &mut obs);
        assert_eq!(obs.unreadable_payloads, 1);
        assert!(obs.complete);
    }

    #[test]
    fn gemini_usage_with_only_prompt_is_still_recorded() {
        let mut obs = Observed::default();
        observe_stream_payload(
            ApiKind::Gemini,
            None,
            br#"{"candidates":[{"content":{"parts":[{"text":"Hi"}]}}],"usageMetadata":{"promptTokenCount":5}}"#,
            &mut obs,
        );
        assert_eq!(obs.usage.map(|u| u.input_tokens), Some(5));
        assert_eq!(obs.output_chars, 2);
        assert!(!obs.complete);
    }
}
