//! [`StreamTranslator`]: turns an Anthropic or Gemini SSE response stream into an OpenAI
//! `chat.completion.chunk` stream, incrementally and with bounded memory.
//!
//! The translator owns the output protocol (role chunk first, content and tool-call deltas,
//! one finish chunk, the optional usage chunk, `data: [DONE]`, or an error event instead); the
//! per-provider event handlers in `stream_anthropic` / `stream_gemini` only decide what to emit.

use super::openai_out::{
    write_sse_json, Chunk, ChunkChoice, Delta, FunctionDelta, TokenUsage, ToolCallDelta, SSE_DONE,
};
use super::provider_error::stream_error_event_typed;
use super::{stream_anthropic, stream_gemini, SourceFormat};
use crate::sse::{OversizedEvent, SseParser};

/// Default cap on the size of one provider event held while incomplete (1 MiB).
pub const DEFAULT_MAX_STREAM_EVENT_BYTES: usize = 1024 * 1024;

/// Translates one provider SSE stream into an OpenAI chat-completions SSE stream.
///
/// Feed every response body chunk to [`push`](Self::push) and send what it returns; at the end
/// of the body call [`finish`](Self::finish). Concatenated outputs do not depend on how the
/// input was chunked.
#[derive(Debug, Clone)]
pub struct StreamTranslator {
    /// Fails on an oversized event: a translated stream cannot skip a provider event without
    /// corrupting the answer.
    sse: SseParser,
    state: StreamState,
}

impl StreamTranslator {
    /// A translator for a stream in `source` format.
    ///
    /// `model_for_client`, `id` and `created` are copied into every chunk; `include_usage` adds
    /// `"usage": null` to every chunk and a final usage chunk, as OpenAI does for
    /// `stream_options.include_usage`.
    pub fn new(
        source: SourceFormat,
        model_for_client: &str,
        id: &str,
        created: u64,
        include_usage: bool,
    ) -> StreamTranslator {
        StreamTranslator {
            sse: SseParser::with_policy(DEFAULT_MAX_STREAM_EVENT_BYTES, OversizedEvent::Fail),
            state: StreamState {
                source,
                model: model_for_client.to_string(),
                id: id.to_string(),
                created,
                include_usage,
                role_sent: false,
                finish_sent: false,
                done: false,
                draining: false,
                finish_reason: None,
                tool_call_count: 0,
                usage: None,
                anthropic: stream_anthropic::AnthropicStreamState::default(),
                gemini: stream_gemini::GeminiStreamState::default(),
            },
        }
    }

    /// Sets the largest provider event that may be held while incomplete; a larger one ends
    /// the stream with an error event.
    pub fn with_max_event_bytes(mut self, max_event_bytes: usize) -> StreamTranslator {
        self.sse = SseParser::with_policy(max_event_bytes, OversizedEvent::Fail);
        self
    }

    /// Feeds one chunk of the provider body; returns the OpenAI SSE bytes it completes.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.state.done {
            return out;
        }
        let state = &mut self.state;
        self.sse.feed(chunk, |event| {
            state.handle_event(event.event.as_bytes(), event.data, &mut out);
        });
        if let Some(too_large) = self.sse.failure() {
            self.state.emit_error(
                &mut out,
                &format!(
                    "upstream stream event exceeded {} bytes",
                    too_large.max_event_bytes
                ),
                "server_error",
                "upstream_event_too_large",
            );
        }
        out
    }

    /// Ends the stream: emits the finish chunk if not yet sent, the usage chunk when requested,
    /// and `data: [DONE]`. A stream that ended before the provider said it was complete ends
    /// with an error event (code `incomplete_stream`) instead, so the truncation is visible.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.state.done {
            return out;
        }
        self.state.draining = true;
        let state = &mut self.state;
        self.sse.finish(|event| {
            state.handle_event(event.event.as_bytes(), event.data, &mut out);
        });
        if self.state.done {
            return out;
        }
        match self.state.finish_reason {
            Some(reason) => {
                self.state.emit_finish(&mut out, reason);
                self.state.emit_end(&mut out);
            }
            None => self.state.emit_error(
                &mut out,
                "upstream stream ended before the response was complete",
                "server_error",
                "incomplete_stream",
            ),
        }
        out
    }

    /// Ends the stream early with an error event and `data: [DONE]` (for example when the
    /// upstream connection broke); returns nothing if the stream already ended.
    pub fn fail(&mut self, message: &str, code: &str) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.state.done {
            self.state
                .emit_error(&mut out, message, "server_error", code);
        }
        out
    }

    /// The token usage reported by the provider so far (`None` if it reported none).
    pub fn usage(&self) -> Option<TokenUsage> {
        self.state.usage
    }

    /// The OpenAI finish reason, once the provider has given one.
    pub fn finish_reason(&self) -> Option<&'static str> {
        self.state.finish_reason
    }

    /// `data: [DONE]` has been emitted; further input is ignored.
    pub fn is_done(&self) -> bool {
        self.state.done
    }

    /// Bytes currently held for an incomplete provider event.
    pub fn buffered_bytes(&self) -> usize {
        self.sse.buffered_bytes()
    }
}

/// Everything the translator knows about the stream so far, and the output primitives.
#[derive(Debug, Clone)]
pub(crate) struct StreamState {
    source: SourceFormat,
    model: String,
    pub(crate) id: String,
    created: u64,
    include_usage: bool,
    role_sent: bool,
    finish_sent: bool,
    pub(crate) done: bool,
    /// `finish` is dispatching an event left without its closing blank line; if it does not
    /// parse, the stream was cut mid-event (reported as truncation, not as a bad event).
    pub(crate) draining: bool,
    /// The OpenAI finish reason once known (emitted at the latest by `finish`).
    pub(crate) finish_reason: Option<&'static str>,
    /// Tool calls started so far (the next tool call's index).
    pub(crate) tool_call_count: u64,
    pub(crate) usage: Option<TokenUsage>,
    pub(crate) anthropic: stream_anthropic::AnthropicStreamState,
    pub(crate) gemini: stream_gemini::GeminiStreamState,
}

impl StreamState {
    fn handle_event(&mut self, name: &[u8], data: &[u8], out: &mut Vec<u8>) {
        if self.done || data == b"[DONE]" {
            return;
        }
        match self.source {
            SourceFormat::Anthropic => stream_anthropic::handle_event(self, name, data, out),
            SourceFormat::Gemini => stream_gemini::handle_event(self, data, out),
        }
    }

    fn write_chunk(
        &self,
        out: &mut Vec<u8>,
        delta: Delta<'_>,
        finish_reason: Option<&'static str>,
    ) {
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason,
            }],
            usage: self.include_usage.then_some(None),
        };
        write_sse_json(out, &chunk);
    }

    /// Emits the first chunk (`role: assistant`, empty content) unless already sent.
    pub(crate) fn emit_role(&mut self, out: &mut Vec<u8>) {
        if self.role_sent {
            return;
        }
        self.role_sent = true;
        let delta = Delta {
            role: Some("assistant"),
            content: Some(""),
            tool_calls: None,
        };
        self.write_chunk(out, delta, None);
    }

    /// Emits a text fragment.
    pub(crate) fn emit_content(&mut self, out: &mut Vec<u8>, text: &str) {
        if text.is_empty() {
            return;
        }
        self.emit_role(out);
        let delta = Delta {
            content: Some(text),
            ..Delta::default()
        };
        self.write_chunk(out, delta, None);
    }

    /// Starts a tool call (id, type, name) with its first argument text, and returns its index.
    pub(crate) fn emit_tool_call_start(
        &mut self,
        out: &mut Vec<u8>,
        id: &str,
        name: &str,
        arguments: &str,
    ) -> u64 {
        self.emit_role(out);
        let index = self.tool_call_count;
        self.tool_call_count = self.tool_call_count.saturating_add(1);
        let delta = Delta {
            tool_calls: Some(vec![ToolCallDelta {
                index,
                id: Some(id),
                kind: Some("function"),
                function: FunctionDelta {
                    name: Some(name),
                    arguments: Some(arguments),
                },
            }]),
            ..Delta::default()
        };
        self.write_chunk(out, delta, None);
        index
    }

    /// Emits a fragment of a tool call's arguments.
    pub(crate) fn emit_tool_arguments(&mut self, out: &mut Vec<u8>, index: u64, fragment: &str) {
        if fragment.is_empty() {
            return;
        }
        let delta = Delta {
            tool_calls: Some(vec![ToolCallDelta {
                index,
                id: None,
                kind: None,
                function: FunctionDelta {
                    name: None,
                    arguments: Some(fragment),
                },
            }]),
            ..Delta::default()
        };
        self.write_chunk(out, delta, None);
    }

    /// Emits the finish chunk (empty delta, `finish_reason`) unless already sent.
    pub(crate) fn emit_finish(&mut self, out: &mut Vec<u8>, reason: &'static str) {
        self.finish_reason = Some(reason);
        if self.finish_sent {
            return;
        }
        self.emit_role(out);
        self.finish_sent = true;
        self.write_chunk(out, Delta::default(), Some(reason));
    }

    /// Emits the usage chunk (when requested) and `data: [DONE]`; the stream is then over.
    pub(crate) fn emit_end(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if self.include_usage {
            let usage = self.usage.unwrap_or_default().to_openai();
            let chunk = Chunk {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                choices: Vec::new(),
                usage: Some(Some(usage)),
            };
            write_sse_json(out, &chunk);
        }
        out.extend_from_slice(SSE_DONE);
        self.done = true;
    }

    /// Reports an event that did not parse: an error, unless it is the cut-off tail of a
    /// truncated stream (then `finish` reports the truncation).
    pub(crate) fn emit_malformed_event(&mut self, out: &mut Vec<u8>) {
        if !self.draining {
            self.emit_error(
                out,
                "upstream sent a malformed stream event",
                "server_error",
                "bad_upstream_event",
            );
        }
    }

    /// Emits an OpenAI error event and `data: [DONE]`; the stream is then over.
    pub(crate) fn emit_error(
        &mut self,
        out: &mut Vec<u8>,
        message: &str,
        error_type: &str,
        code: &str,
    ) {
        if self.done {
            return;
        }
        out.extend_from_slice(&stream_error_event_typed(message, error_type, code));
        self.done = true;
    }
}
