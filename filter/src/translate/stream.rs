//! [`StreamTranslator`]: turns an Anthropic or Gemini SSE response stream into an OpenAI
//! `chat.completion.chunk` stream, incrementally and with bounded memory.
//!
//! The output protocol lives in `stream_out` (which knows no provider); the per-provider event
//! handlers in `stream_anthropic` / `stream_gemini` only decide what to emit. A translator holds
//! the state of its own provider only (`ProviderStream`).

use super::openai_out::TokenUsage;
use super::stream_anthropic::AnthropicStreamState;
use super::stream_gemini::GeminiStreamState;
use super::stream_out::StreamOut;
use super::SourceFormat;
use crate::sse::{OversizedEvent, SseParser};

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
    state: StreamOut,
    provider: ProviderStream,
}

/// The provider-specific state of one stream: only the provider it reads from.
#[derive(Debug, Clone)]
enum ProviderStream {
    /// An Anthropic Messages stream.
    Anthropic(AnthropicStreamState),
    /// A Gemini `streamGenerateContent?alt=sse` stream.
    Gemini(GeminiStreamState),
}

impl ProviderStream {
    fn new(source: SourceFormat) -> ProviderStream {
        match source {
            SourceFormat::Anthropic => ProviderStream::Anthropic(AnthropicStreamState::default()),
            SourceFormat::Gemini => ProviderStream::Gemini(GeminiStreamState::default()),
        }
    }

    /// Handles one provider event (`name` is its `event:` field).
    fn handle_event(&mut self, state: &mut StreamOut, name: &str, data: &[u8], out: &mut Vec<u8>) {
        if state.done || data == b"[DONE]" {
            return;
        }
        match self {
            ProviderStream::Anthropic(a) => a.handle_event(state, name, data, out),
            ProviderStream::Gemini(g) => g.handle_event(state, data, out),
        }
    }
}

impl StreamTranslator {
    /// A translator for a stream in `source` format.
    ///
    /// `model_for_client`, `id` and `created` are copied into every chunk; `include_usage` adds
    /// `"usage": null` to every chunk and a final usage chunk, as OpenAI does for
    /// `stream_options.include_usage`.
    ///
    /// `max_event_bytes` (`usage.max_event_bytes`) is the largest provider event held while
    /// incomplete. A larger one cannot be skipped (the answer would be corrupted) nor passed
    /// through (the client speaks OpenAI): it ends the stream with an error event (code
    /// `upstream_event_too_large`) and `data: [DONE]`.
    pub fn new(
        source: SourceFormat,
        model_for_client: &str,
        id: &str,
        created: u64,
        include_usage: bool,
        max_event_bytes: usize,
    ) -> StreamTranslator {
        StreamTranslator {
            sse: SseParser::new(max_event_bytes, OversizedEvent::Fail),
            state: StreamOut::new(model_for_client, id, created, include_usage),
            provider: ProviderStream::new(source),
        }
    }

    /// Feeds one chunk of the provider body; returns the OpenAI SSE bytes it completes.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.state.done {
            return out;
        }
        let (state, provider) = (&mut self.state, &mut self.provider);
        self.sse.feed(chunk, |event| {
            provider.handle_event(state, event.event, event.data, &mut out);
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
        let (state, provider) = (&mut self.state, &mut self.provider);
        self.sse.finish(|event| {
            provider.handle_event(state, event.event, event.data, &mut out);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_translator_holds_only_its_own_providers_state() {
        let anthropic = StreamTranslator::new(SourceFormat::Anthropic, "m", "id", 0, false, 64);
        assert!(matches!(anthropic.provider, ProviderStream::Anthropic(_)));
        let gemini = StreamTranslator::new(SourceFormat::Gemini, "m", "id", 0, false, 64);
        assert!(matches!(gemini.provider, ProviderStream::Gemini(_)));
    }

    #[test]
    fn an_oversized_provider_event_ends_the_translated_stream_with_an_error() {
        let mut t = StreamTranslator::new(SourceFormat::Gemini, "m", "id", 0, false, 64);
        let ok = br#"data: {"candidates":[{"content":{"parts":[{"text":"hi"}]}}]}"#;
        let mut out = t.push(ok);
        out.extend(t.push(b"\n\n"));
        let big = format!("data: {}\n\n", "x".repeat(100));
        for byte in big.as_bytes() {
            out.extend(t.push(std::slice::from_ref(byte)));
        }
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\"hi\""), "{text}");
        assert!(text.contains("upstream_event_too_large"), "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        assert!(t.is_done());
        assert!(t.finish().is_empty());
    }
}
