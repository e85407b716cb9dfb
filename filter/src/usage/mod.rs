//! Token-usage accounting for LLM responses: pure parsing and state machines, no host calls.
//!
//! The module owns everything between "here is a request path/body" and "here is the usage and
//! cost of the response":
//! - [`api_kind`]: which API a request speaks (from its path) and how its response is framed
//!   (from the content type).
//! - [`request`]: model, streaming flag, output limit and prompt-size estimate of a request.
//! - [`stream_rewrite`]: adding `stream_options.include_usage` to OpenAI chat streams and
//!   stripping the extra usage-only chunk the client did not ask for.
//! - [`ndjson`]: the bounded incremental NDJSON parser (SSE is [`crate::sse`], shared with
//!   translation).
//! - [`extract`]: each provider's usage, model and terminator rules.
//! - [`record`]: the canonical [`Usage`] record and the per-provider meaning of its fields.
//! - [`text`]: the one definition of a message's text (prompt estimate and guardrails).
//! - [`tracker`]: the per-response state machine ([`UsageTracker`]) the host feeds.
//! - [`price`]: per-model prices and cost.
//!
//! Typical host flow: `classify_path` → `RequestInfo::from_request` (and `ensure_include_usage`
//! for OpenAI chat streams) → on response headers `UsageTracker::for_content_type` → `feed`
//! every chunk (timestamp `first_token`) → `finish` → `PriceTable::cost`.

pub mod api_kind;
pub mod extract;
pub mod lenient;
pub mod ndjson;
pub mod price;
pub mod record;
pub mod request;
pub mod shape;
pub mod stream_rewrite;
pub mod text;
pub mod tracker;

pub use api_kind::{
    classify_path, gemini_model_from_path, is_gemini_stream_path, ApiKind, BodyFraming,
};
pub use ndjson::NdjsonParser;
pub use price::{ModelPrice, PriceTable};
pub use record::{tokens_from_chars, Usage};
pub use request::{
    estimate_prompt_tokens, is_streaming_request, request_model, requested_max_tokens, RequestInfo,
};
pub use shape::{BodyShape, InputField, MessageList};
pub use stream_rewrite::{ensure_include_usage, is_injected_usage_chunk, SseChunkFilter};
pub use text::MessageText;
pub use tracker::{FeedEvents, TrackerConfig, UsageOutcome, UsageTracker};

#[cfg(test)]
mod golden_tests;
