//! A mock LLM provider speaking the real wire formats of OpenAI (chat
//! completions, embeddings, Responses API), Anthropic Messages, Gemini
//! `generateContent` and Ollama `/api/chat`, with deterministic token usage,
//! fault injection (status codes, latency, TCP resets, truncated streams, key
//! echo, random failures, huge streams), a request recorder, a JWKS endpoint
//! and a control API under `/__mock/`.
//!
//! Used in-process by the tollgate end-to-end tests ([`MockProvider::start`])
//! and as the `mock-provider` binary by the demo. [`client`] is a minimal
//! HTTP/1.1 client for tests.
//!
//! Token rules: prompt tokens = `ceil(chars of all message texts / 4)` (min 1);
//! completion tokens = words of the reply `This is a mock <kind> reply to:
//! <first 40 chars of the last user message>` (plus configured reasoning tokens).

pub mod client;
mod control;
pub mod faults;
mod http;
mod providers;
mod server;
pub mod tokens;
mod util;

pub use faults::{Faults, ResetMode};
pub use server::{
    MockHandle, MockOptions, MockProvider, RecordedRequest, Stats, DEFAULT_JWKS_PATH, KEYSET_PATH,
};
pub use tokens::Usage;
