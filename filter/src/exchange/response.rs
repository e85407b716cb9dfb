//! The response on its way to the client: rate-limit headers from the reservation, the usage
//! tracker, translation back to OpenAI (streams incrementally, whole bodies at once), the
//! injected-usage chunk filter, masking, and the end of an OpenAI stream that lost its `[DONE]`.

use super::host::{now_ms, Body, Host, Map};
use super::{Exchange, Flow};
use crate::masking::StreamMasker;
use crate::translate::{self, SourceFormat, StreamTranslator};
use crate::usage::{ApiKind, SseChunkFilter, UsageTracker};

/// The bytes an OpenAI stream's last event ends with.
const DONE_EVENT: &[u8] = b"[DONE]";
/// Longest tail kept to recognise the terminator across chunk boundaries.
const TAIL_BYTES: usize = 32;

/// Watches an OpenAI stream for its `data: [DONE]` terminator (the last event of a complete
/// stream), keeping only the last few bytes.
#[derive(Debug, Clone, Default)]
pub struct DoneWatch {
    tail: Vec<u8>,
}

impl DoneWatch {
    /// Notes bytes the client receives.
    pub fn push(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
        let excess = self.tail.len().saturating_sub(TAIL_BYTES);
        if excess > 0 {
            self.tail.drain(..excess);
        }
    }

    /// Whether the stream so far ends with `data: [DONE]` (blank lines after it allowed).
    pub fn ended(&self) -> bool {
        let end = self
            .tail
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i.saturating_add(1));
        let Some(text) = self.tail.get(..end) else {
            return false;
        };
        let Some(before) = text.strip_suffix(DONE_EVENT) else {
            return false;
        };
        let before = before.strip_suffix(b" ").unwrap_or(before);
        before.ends_with(b"\ndata:") || before.ends_with(b"\rdata:") || before == b"data:"
    }
}

impl Exchange {
    pub(super) fn response_headers<H: Host>(&mut self, host: &mut H, end_of_stream: bool) -> Flow {
        let vm = std::rc::Rc::clone(&self.vm);
        self.response.headers_end_stream = end_of_stream;
        if !self.request_id.is_empty() {
            let name = &vm.config.correlation.request_id_header;
            host.set_header(Map::Response, name, &self.request_id);
        }
        self.response.status = host
            .header(Map::Response, ":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if let Some(flow) = self.adopt_walked_provider(host, end_of_stream) {
            return flow;
        }
        if let Some(h) = self.admission.as_ref().and_then(|a| a.headers) {
            host.set_header(
                Map::Response,
                "x-ratelimit-limit-tokens",
                &h.limit.to_string(),
            );
            host.set_header(
                Map::Response,
                "x-ratelimit-remaining-tokens",
                &h.remaining.to_string(),
            );
            host.set_header(
                Map::Response,
                "x-ratelimit-reset-tokens",
                &format!("{}s", h.reset_seconds),
            );
        }
        self.set_mesh_headers(host);
        let status = self.response.status;
        let mask_this = (status >= 400 && vm.config.masking.error_bodies)
            || (vm.config.masking.responses && self.api.is_some());
        if mask_this {
            if let Some(engine) = vm.config.masking.engine.clone() {
                self.response.masker = Some(StreamMasker::new(engine));
                host.remove_header(Map::Response, "content-length");
            }
        }
        let content_type = host.header(Map::Response, "content-type");
        let is_sse = content_type
            .as_deref()
            .is_some_and(|c| c.to_ascii_lowercase().contains("text/event-stream"));
        if let (Some(kind), true) = (self.api, vm.config.usage.enabled) {
            let estimate = self.info.as_ref().map_or(0, |i| i.prompt_estimate);
            let tracker = UsageTracker::for_content_type(
                kind,
                content_type.as_deref(),
                estimate,
                vm.config.usage.tracker,
            );
            if self.injected_usage && is_sse {
                self.response.chunk_filter =
                    Some(SseChunkFilter::new(vm.config.usage.tracker.max_event_bytes));
                host.remove_header(Map::Response, "content-length");
            }
            self.response.tracker = Some(tracker);
        }
        let untranslated = self
            .route
            .as_ref()
            .is_none_or(|r| r.translate_from.is_none());
        if self.api == Some(ApiKind::OpenAiChat)
            && untranslated
            && is_sse
            && (200..300).contains(&status)
            && !end_of_stream
        {
            self.response.openai_stream = Some(DoneWatch::default());
            host.remove_header(Map::Response, "content-length");
        }
        self.on_routed_response(host);
        self.cache_response_headers(host);
        if self.held.is_some() {
            // Hold the failed answer: the next provider's answer replaces it.
            return Flow::Pause;
        }
        Flow::Continue
    }

    /// Records the provider's answer (own routing) and prepares translation.
    fn on_routed_response<H: Host>(&mut self, host: &mut H) {
        let Some(route) = self.route.clone() else {
            return;
        };
        if self.walk.is_none() {
            self.record_own_attempt(host);
            if self.held.is_some() {
                return;
            }
        }
        let Some(source) = route.translate_from else {
            return;
        };
        host.remove_header(Map::Response, "content-length");
        if (200..300).contains(&self.response.status) && route.stream {
            let id = format!("chatcmpl-{}", self.request_id);
            self.response.translator = Some(StreamTranslator::new(
                source,
                &route.client_model,
                &id,
                now_ms(host) / 1000,
                route.include_usage,
                self.vm.config.usage.tracker.max_event_bytes,
            ));
            host.set_header(Map::Response, "content-type", "text/event-stream");
        } else {
            self.response.buffer_for_translation = true;
            host.set_header(Map::Response, "content-type", "application/json");
            if self.response.status == 529 {
                host.set_header(Map::Response, ":status", "503");
            }
        }
    }

    /// Nothing observes, holds or rewrites the response body: its chunks pass as they are.
    pub(super) fn response_passes_through(&self) -> bool {
        let r = &self.response;
        self.held.is_none()
            && r.tracker.is_none()
            && r.chunk_filter.is_none()
            && r.masker.is_none()
            && r.translator.is_none()
            && r.openai_stream.is_none()
            && !r.buffer_for_translation
            && !self.cache_capturing()
    }

    pub(super) fn response_body<H: Host>(
        &mut self,
        host: &mut H,
        body_size: usize,
        end_of_stream: bool,
    ) -> Flow {
        if let Some(held) = self.held.as_mut() {
            if end_of_stream {
                held.body_size = Some(body_size);
                if self.apply_replacement(host) {
                    return Flow::Continue;
                }
            }
            return Flow::Pause;
        }
        if self.response_passes_through() {
            return Flow::Continue;
        }
        if self.response.buffer_for_translation && !end_of_stream {
            // Envoy buffers; the whole body is handed over with end_of_stream.
            return Flow::Pause;
        }
        // The end of a stream often comes as an empty chunk: nothing to read from the host.
        let chunk = if body_size == 0 {
            Vec::new()
        } else {
            host.body(Body::Response, body_size)
        };
        if let Some(tracker) = self.response.tracker.as_mut() {
            let events = tracker.feed(&chunk);
            if events.first_token && self.response.ttft_ms.is_none() {
                self.response.ttft_ms = Some(self.elapsed_ms(host));
            }
        }
        let mut out = if self.response.buffer_for_translation {
            self.translate_whole_body(host, &chunk)
                .unwrap_or_else(|| chunk.clone())
        } else if let Some(translator) = self.response.translator.as_mut() {
            let mut out = translator.push(&chunk);
            if end_of_stream {
                out.extend(translator.finish());
            }
            out
        } else {
            match self.response.chunk_filter.as_mut() {
                Some(filter) => {
                    let mut out = filter.push_dropping_injected_usage(&chunk);
                    if end_of_stream {
                        out.extend(filter.finish());
                    }
                    out
                }
                None => chunk.clone(),
            }
        };
        if let Some(watch) = self.response.openai_stream.as_mut() {
            watch.push(&out);
            if end_of_stream && !watch.ended() {
                // Ended cleanly but without its terminator: the client must see it is cut.
                out.extend(translate::stream_error_event(
                    "upstream stream ended before the response was complete",
                    "incomplete_stream",
                ));
                self.log(
                    host,
                    log::Level::Warn,
                    "OpenAI stream ended without [DONE]: ended with an error event",
                );
            }
        }
        if let Some(masker) = self.response.masker.as_mut() {
            let mut masked = masker.push(&out);
            if end_of_stream {
                masked.extend(masker.finish());
                let findings: Vec<(String, usize)> = masker
                    .findings()
                    .iter()
                    .map(|f| (f.kind.clone(), f.count))
                    .collect();
                let place = if self.response.status >= 400 {
                    "error_body"
                } else {
                    "response"
                };
                for (kind, n) in findings {
                    self.count_masked(host, &kind, place, n);
                }
            }
            out = masked;
        }
        self.cache_observe(host, &out, end_of_stream);
        if out != chunk && !host.replace_body(Body::Response, body_size, &out) {
            self.log(
                host,
                log::Level::Warn,
                "host refused a response body rewrite",
            );
        }
        Flow::Continue
    }

    /// Translates a whole provider body (JSON answer or error) into the OpenAI shape.
    pub(super) fn translate_whole_body<H: Host>(&self, host: &H, body: &[u8]) -> Option<Vec<u8>> {
        let route = self.route.as_ref()?;
        let source = route.translate_from?;
        if (200..300).contains(&self.response.status) {
            let now_s = host.now_ns() / 1_000_000_000;
            let out = match source {
                SourceFormat::Anthropic => {
                    translate::anthropic_to_openai_at(body, &route.client_model, now_s)
                }
                SourceFormat::Gemini => {
                    translate::gemini_to_openai_at(body, &route.client_model, now_s)
                }
            };
            out.ok()
        } else {
            let status = u16::try_from(self.response.status).unwrap_or(502);
            Some(translate::provider_error_to_openai(status, body, source))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DoneWatch;

    fn ended(chunks: &[&str]) -> bool {
        let mut w = DoneWatch::default();
        for c in chunks {
            w.push(c.as_bytes());
        }
        w.ended()
    }

    #[test]
    fn done_is_seen_across_chunk_boundaries() {
        assert!(ended(&["data: {}\n\ndata: [DO", "NE]\n\n"]));
        assert!(ended(&["data: [DONE]"]));
        assert!(ended(&["data:[DONE]\r\n\r\n"]));
    }

    #[test]
    fn a_stream_without_done_or_with_done_inside_content_has_not_ended() {
        assert!(!ended(&["data: {\"x\":1}\n\n"]));
        assert!(!ended(&["data: {\"content\":\"data: [DONE]\"}\n\n"]));
        assert!(!ended(&[]));
    }
}
