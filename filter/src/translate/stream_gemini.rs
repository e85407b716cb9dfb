//! Gemini `streamGenerateContent?alt=sse` events mapped onto OpenAI chunk emissions.
//!
//! Every Gemini event is a whole `GenerateContentResponse` holding the next parts: text parts
//! become content deltas, each `functionCall` part becomes one complete tool-call delta, the
//! cumulative `usageMetadata` is kept, and the `finishReason` is remembered and emitted by
//! `finish` (Gemini has no end-of-stream event, and may still send usage after it).

use super::from_gemini::GeminiResponse;
use super::openai_out::{gemini_finish_reason, TokenUsage};
use super::provider_error::map_gemini_status;
use super::stream_out::StreamOut;
use super::tool_ids::gemini_tool_call_id;

/// Gemini-specific stream state.
#[derive(Debug, Clone, Default)]
pub(crate) struct GeminiStreamState {
    /// The base for generated tool-call ids (the first `responseId`, else the stream id).
    id_base: Option<String>,
}

impl GeminiStreamState {
    /// Handles one Gemini SSE event.
    pub(crate) fn handle_event(&mut self, state: &mut StreamOut, data: &[u8], out: &mut Vec<u8>) {
        let response: GeminiResponse = match serde_json::from_slice(data) {
            Ok(response) => response,
            Err(_) => {
                state.emit_malformed_event(out);
                return;
            }
        };
        if let Some(error) = &response.error {
            let message = error
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("upstream stream error");
            let status = error.get("status").and_then(|s| s.as_str()).unwrap_or("");
            let (error_type, code) = map_gemini_status(status, 500);
            state.emit_error(out, message, error_type, &code);
            return;
        }
        state.emit_role(out);
        if let Some(usage) = &response.usage_metadata {
            state.usage = Some(TokenUsage::from_gemini(usage));
        }
        if self.id_base.is_none() {
            self.id_base = Some(match &response.response_id {
                Some(id) if !id.is_empty() => id.clone(),
                _ => state.id.clone(),
            });
        }
        for candidate in &response.candidates {
            for part in candidate.content.iter().flat_map(|c| c.parts.iter()) {
                if let Some(call) = &part.function_call {
                    let id = gemini_tool_call_id(
                        self.id_base.as_deref().unwrap_or_default(),
                        usize::try_from(state.tool_call_count).unwrap_or(usize::MAX),
                        call.id.as_deref(),
                        part.thought_signature.as_deref(),
                    );
                    state.emit_tool_call_start(out, &id, &call.name, &call.arguments_json());
                } else if let Some(text) = part.answer_text() {
                    state.emit_content(out, text);
                }
            }
            if let Some(reason) = candidate.finish_reason.as_deref() {
                let mapped = gemini_finish_reason(reason);
                state.finish_reason = Some(if mapped == "stop" && state.tool_call_count > 0 {
                    "tool_calls"
                } else {
                    mapped
                });
            }
        }
        let blocked = response
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_ref())
            .is_some();
        if response.candidates.is_empty() && blocked {
            state.finish_reason = Some("content_filter");
        }
    }
}
