//! The OpenAI side of a translated stream: `chat.completion.chunk` events written in protocol
//! order (role chunk first, content and tool-call deltas, one finish chunk, the optional usage
//! chunk, `data: [DONE]`, or an error event instead).
//!
//! It knows no provider: `stream_anthropic` and `stream_gemini` decide what to emit through it,
//! and [`super::stream`] drives both. It must not parse provider events.

use super::openai_out::{
    write_sse_json, Chunk, ChunkChoice, Delta, FunctionDelta, TokenUsage, ToolCallDelta, SSE_DONE,
};
use super::provider_error::stream_error_event_typed;

/// What the translator has written of the OpenAI stream so far, and the output primitives.
#[derive(Debug, Clone)]
pub(crate) struct StreamOut {
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
}

impl StreamOut {
    /// Nothing written yet; `model`, `id` and `created` go into every chunk.
    pub(crate) fn new(model: &str, id: &str, created: u64, include_usage: bool) -> StreamOut {
        StreamOut {
            model: model.to_string(),
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
