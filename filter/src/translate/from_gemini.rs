//! Translation of a complete Gemini `generateContent` response into an OpenAI `chat.completion`.

use serde::Deserialize;
use serde_json::Value;

use super::openai_out::{
    chat_completion, gemini_finish_reason, CompletedChoice, CompletedToolCall, GeminiUsage,
    TokenUsage,
};
use super::tool_ids::{gemini_tool_call_id, short_digest};
use super::TranslateError;

// Provider payloads: read from JSON objects only (see `crate::json_object`).
crate::json_object::object_only!(
    GeminiResponse,
    Candidate,
    Content,
    Part,
    FunctionCall,
    PromptFeedback
);

/// A `GenerateContentResponse` (also one streamed chunk of it).
#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(rename_all = "camelCase")]
pub(crate) struct GeminiResponse {
    #[serde(default)]
    pub(crate) candidates: Vec<Candidate>,
    #[serde(default)]
    pub(crate) usage_metadata: Option<GeminiUsage>,
    #[serde(default)]
    pub(crate) prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    pub(crate) response_id: Option<String>,
    #[serde(default)]
    pub(crate) error: Option<Value>,
}

/// One generated candidate.
#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(rename_all = "camelCase")]
pub(crate) struct Candidate {
    #[serde(default)]
    pub(crate) content: Option<Content>,
    #[serde(default)]
    pub(crate) finish_reason: Option<String>,
    #[serde(default)]
    pub(crate) index: Option<u64>,
}

/// A candidate's content.
#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
pub(crate) struct Content {
    #[serde(default)]
    pub(crate) parts: Vec<Part>,
}

/// One content part: text (maybe a thought) or a function call.
#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(rename_all = "camelCase")]
pub(crate) struct Part {
    #[serde(default)]
    pub(crate) text: Option<String>,
    #[serde(default)]
    pub(crate) thought: Option<bool>,
    #[serde(default)]
    pub(crate) function_call: Option<FunctionCall>,
    #[serde(default)]
    pub(crate) thought_signature: Option<String>,
}

/// A `functionCall` part.
#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
pub(crate) struct FunctionCall {
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) args: Option<Value>,
}

/// Why the prompt was blocked, if it was.
#[derive(Deserialize, Default)]
#[serde(remote = "Self")]
#[serde(rename_all = "camelCase")]
pub(crate) struct PromptFeedback {
    #[serde(default)]
    pub(crate) block_reason: Option<String>,
}

impl FunctionCall {
    /// The arguments as the OpenAI JSON string (`{}` when Gemini sent none).
    pub(crate) fn arguments_json(&self) -> String {
        match &self.args {
            // `to_string` of a `Value` would compile its `Display` (compact and pretty) too.
            Some(args) if !args.is_null() => serde_json::to_string(args).unwrap_or_default(),
            _ => "{}".to_string(),
        }
    }
}

impl Part {
    /// The visible text of this part (thought summaries are not part of the answer).
    pub(crate) fn answer_text(&self) -> Option<&str> {
        if self.thought == Some(true) {
            return None;
        }
        self.text.as_deref()
    }
}

/// Translates a Gemini `generateContent` response body into an OpenAI `chat.completion` body,
/// with `created` set to 0 (see [`gemini_to_openai_at`]).
pub fn gemini_to_openai(body: &[u8], model_for_client: &str) -> Result<Vec<u8>, TranslateError> {
    gemini_to_openai_at(body, model_for_client, 0)
}

/// Translates a Gemini `generateContent` response body into an OpenAI `chat.completion` body.
///
/// Each candidate becomes a choice; text parts (not thoughts) are concatenated, `functionCall`
/// parts become `tool_calls` with generated ids (`call_<responseId>_<n>`, carrying any thought
/// signature, see [`super::tool_ids`]). A prompt blocked before generation yields one empty
/// choice with `finish_reason: content_filter`.
pub fn gemini_to_openai_at(
    body: &[u8],
    model_for_client: &str,
    created: u64,
) -> Result<Vec<u8>, TranslateError> {
    let response: GeminiResponse = serde_json::from_slice(body).map_err(|e| {
        TranslateError::InvalidJson(format!(
            "gemini response is not a GenerateContentResponse: {e}"
        ))
    })?;
    if response.error.is_some() {
        return Err(TranslateError::InvalidRequest(
            "gemini response is an error body".to_string(),
        ));
    }
    let id_base = match &response.response_id {
        Some(id) if !id.is_empty() => id.clone(),
        _ => short_digest(body),
    };
    let mut tool_ordinal = 0usize;
    let mut choices: Vec<CompletedChoice> = Vec::new();
    for (position, candidate) in response.candidates.into_iter().enumerate() {
        let mut text: Option<String> = None;
        let mut tool_calls = Vec::new();
        for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
            if let Some(call) = &part.function_call {
                tool_calls.push(CompletedToolCall {
                    id: gemini_tool_call_id(
                        &id_base,
                        tool_ordinal,
                        call.id.as_deref(),
                        part.thought_signature.as_deref(),
                    ),
                    name: call.name.clone(),
                    arguments: call.arguments_json(),
                });
                tool_ordinal += 1;
            } else if let Some(fragment) = part.answer_text() {
                text.get_or_insert_with(String::new).push_str(fragment);
            }
        }
        // OpenAI sends an empty string, not null, for an empty answer without tool calls.
        if tool_calls.is_empty() && text.is_none() {
            text = Some(String::new());
        }
        let finish_reason = match candidate.finish_reason.as_deref() {
            _ if !tool_calls.is_empty() => "tool_calls",
            Some(reason) => gemini_finish_reason(reason),
            None => "stop",
        };
        choices.push(CompletedChoice {
            index: candidate.index.unwrap_or(position as u64),
            content: text,
            tool_calls,
            finish_reason,
        });
    }
    if choices.is_empty() {
        let blocked = response
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_ref())
            .is_some();
        choices.push(CompletedChoice {
            index: 0,
            content: None,
            tool_calls: Vec::new(),
            finish_reason: if blocked { "content_filter" } else { "stop" },
        });
    }
    let usage = response
        .usage_metadata
        .as_ref()
        .map(TokenUsage::from_gemini)
        .unwrap_or_default();
    let id = format!("chatcmpl-{id_base}");
    let completion = chat_completion(&id, created, model_for_client, choices, &usage);
    serde_json::to_vec(&completion)
        .map_err(|e| TranslateError::InvalidJson(format!("cannot encode response: {e}")))
}
