//! Per-response usage state machine: observes every response body chunk, and at the end of the
//! response reports the usage (reported or estimated), the model, and whether the provider's
//! terminator arrived.
//!
//! It never holds the streamed text: streamed bodies go through the bounded SSE / NDJSON
//! parsers and only counters are kept; a non-streamed JSON body is buffered up to a cap and read
//! at the end (over the cap, the usage is estimated).

use super::api_kind::{ApiKind, BodyFraming};
use super::extract::{observe_body, observe_stream_payload, observe_usage_tail, Observed};
use super::ndjson::NdjsonParser;
use super::record::{tokens_from_chars, Usage};
use crate::sse::{OversizedEvent, SseParser, DEFAULT_MAX_EVENT_BYTES};

/// Default cap on a buffered non-streamed JSON body (1 MiB).
pub const DEFAULT_MAX_JSON_BODY_BYTES: usize = 1024 * 1024;

/// Bytes kept from the end of a JSON body over the cap, where providers put the usage object.
const JSON_TAIL_BYTES: usize = 8 * 1024;

/// Limits of a [`UsageTracker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Largest SSE event / NDJSON line kept; larger ones are dropped and counted.
    pub max_event_bytes: usize,
    /// Largest non-streamed JSON body buffered; a larger body's usage is estimated.
    pub max_json_body_bytes: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_json_body_bytes: DEFAULT_MAX_JSON_BODY_BYTES,
        }
    }
}

/// What one [`UsageTracker::feed`] call noticed, for the host to timestamp.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedEvents {
    /// This chunk carried the first generated text of the response (time to first token). For a
    /// non-streamed JSON body it is the first non-empty chunk.
    pub first_token: bool,
    /// This chunk carried the provider's terminator.
    pub completed: bool,
}

/// The result of a response's accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageOutcome {
    /// Usage to account: the provider's report, or an estimate when `estimated` is set. `None`
    /// only when there was nothing to estimate from (no prompt estimate and no output).
    pub usage: Option<Usage>,
    /// The usage exactly as the provider reported it (canonical form), if it reported any.
    pub reported_usage: Option<Usage>,
    /// The model as the response named it.
    pub model: Option<String>,
    /// The last finish / stop reason seen (`stop`, `length`, `end_turn`, `STOP`, ...).
    pub finish_reason: Option<String>,
    /// The provider's terminator was seen (streams) or the body parsed (JSON). False means the
    /// response was truncated or unreadable.
    pub complete: bool,
    /// `usage` is (partly) estimated: no usage was reported, or the stream was incomplete.
    pub estimated: bool,
    /// Some generated text was seen.
    pub first_token_seen: bool,
    /// Characters of generated text seen (the base of the output estimate).
    pub output_chars: u64,
    /// SSE events / NDJSON lines dropped for exceeding the size cap.
    pub dropped_events: u64,
    /// Payloads that were not the expected JSON.
    pub unreadable_payloads: u64,
    /// The non-streamed body exceeded the buffer cap: only its last bytes were read, for the
    /// usage object (OpenAI, Anthropic, Gemini); failing that, usage is estimated.
    pub body_over_cap: bool,
}

/// Observes one response and accounts its usage.
#[derive(Debug, Clone)]
pub struct UsageTracker {
    kind: ApiKind,
    framing: BodyFraming,
    prompt_estimate: u64,
    max_json_body_bytes: usize,
    sse: SseParser,
    ndjson: NdjsonParser,
    json: Vec<u8>,
    json_over_cap: bool,
    body_started: bool,
    first_token_seen: bool,
    observed: Observed,
}

impl UsageTracker {
    /// Creates a tracker for a response of `kind` framed as `framing`. `prompt_estimate` is the
    /// caller's estimate of the prompt tokens, used only when the provider reports none.
    pub fn new(
        kind: ApiKind,
        framing: BodyFraming,
        prompt_estimate: u64,
        config: TrackerConfig,
    ) -> Self {
        Self {
            kind,
            framing,
            prompt_estimate,
            max_json_body_bytes: config.max_json_body_bytes,
            // Accounting only observes: an event too large to parse is skipped and counted.
            sse: SseParser::new(config.max_event_bytes, OversizedEvent::Skip),
            ndjson: NdjsonParser::new(config.max_event_bytes),
            json: Vec::new(),
            json_over_cap: false,
            body_started: false,
            first_token_seen: false,
            observed: Observed::default(),
        }
    }

    /// Creates a tracker whose framing is decided from the response `content-type`.
    pub fn for_content_type(
        kind: ApiKind,
        content_type: Option<&str>,
        prompt_estimate: u64,
        config: TrackerConfig,
    ) -> Self {
        Self::new(
            kind,
            BodyFraming::from_content_type(content_type),
            prompt_estimate,
            config,
        )
    }

    /// The API kind this tracker reads.
    pub fn kind(&self) -> ApiKind {
        self.kind
    }

    /// The framing this tracker reads.
    pub fn framing(&self) -> BodyFraming {
        self.framing
    }

    /// Observes one body chunk (the body itself is not modified).
    pub fn feed(&mut self, chunk: &[u8]) -> FeedEvents {
        let was_complete = self.observed.complete;
        let kind = self.kind;
        let observed = &mut self.observed;
        match self.framing {
            BodyFraming::Sse => self.sse.feed(chunk, |event| {
                observe_stream_payload(kind, Some(event.event), event.data, observed)
            }),
            BodyFraming::Ndjson => self.ndjson.feed(chunk, |line| {
                observe_stream_payload(kind, None, line, observed)
            }),
            BodyFraming::Json => self.buffer_json(chunk),
        }
        FeedEvents {
            first_token: self.note_first_token(!chunk.is_empty()),
            completed: !was_complete && self.observed.complete,
        }
    }

    /// Ends the response and returns its accounting.
    pub fn finish(mut self) -> UsageOutcome {
        let kind = self.kind;
        let observed = &mut self.observed;
        match self.framing {
            BodyFraming::Sse => self.sse.finish(|event| {
                observe_stream_payload(kind, Some(event.event), event.data, observed)
            }),
            BodyFraming::Ndjson => self
                .ndjson
                .finish(|line| observe_stream_payload(kind, None, line, observed)),
            BodyFraming::Json => {
                if self.json_over_cap {
                    // The tail holds the end of the body: if usage is there, it is final.
                    if observe_usage_tail(kind, &self.json, observed) {
                        observed.complete = true;
                    }
                } else if !self.json.is_empty() {
                    observe_body(kind, &self.json, observed);
                }
            }
        }
        self.note_first_token(false);
        self.outcome()
    }

    fn buffer_json(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        if !self.json_over_cap
            && self.json.len().saturating_add(chunk.len()) > self.max_json_body_bytes
        {
            self.json_over_cap = true;
        }
        self.json.extend_from_slice(chunk);
        if self.json_over_cap {
            // Keep only the last JSON_TAIL_BYTES.
            let excess = self.json.len().saturating_sub(JSON_TAIL_BYTES);
            self.json.drain(..excess);
        }
    }

    /// Flips `first_token_seen` once; returns true on the flip.
    fn note_first_token(&mut self, non_empty_chunk: bool) -> bool {
        if self.first_token_seen {
            return false;
        }
        let seen = match self.framing {
            BodyFraming::Json => {
                let first = non_empty_chunk && !self.body_started;
                self.body_started |= non_empty_chunk;
                first
            }
            _ => self.observed.output_chars > 0,
        };
        self.first_token_seen = seen;
        seen
    }

    fn outcome(self) -> UsageOutcome {
        let obs = self.observed;
        let output_estimate = if self.kind == ApiKind::OpenAiEmbeddings {
            0
        } else {
            tokens_from_chars(obs.output_chars)
        };
        let (usage, estimated) = match obs.usage {
            Some(reported) if obs.complete => (Some(reported), false),
            Some(mut partial) => {
                // Truncated: the reported counters may predate the end of generation.
                if output_estimate > partial.output_tokens {
                    partial.output_tokens = output_estimate;
                    partial.total_tokens = partial
                        .total_tokens
                        .max(partial.input_tokens.saturating_add(output_estimate));
                }
                (Some(partial), true)
            }
            None if self.prompt_estimate == 0 && output_estimate == 0 => (None, true),
            None => (
                Some(Usage::estimated(self.prompt_estimate, output_estimate)),
                true,
            ),
        };
        UsageOutcome {
            usage,
            reported_usage: obs.usage,
            model: obs.model,
            finish_reason: obs.finish_reason,
            complete: obs.complete,
            estimated,
            first_token_seen: self.first_token_seen,
            output_chars: obs.output_chars,
            dropped_events: self.sse.dropped_events() + self.ndjson.dropped_lines(),
            unreadable_payloads: obs.unreadable_payloads,
            body_over_cap: self.json_over_cap,
        }
    }
}
