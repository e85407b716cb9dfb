//! The exact-match response cache: answers to repeated deterministic requests served from
//! proxy-wasm shared data without calling a provider.
//!
//! Pure, like every decision module: the pipeline calls it with what it read from the host and
//! a [`crate::shared_store::SharedStore`].
//! - [`settings`]: the `cache` section (rules per route or model, scope, TTL, bounds).
//! - [`key`]: whether a request is cached, and its key (canonical JSON + scope, SHA-256).
//! - [`store`]: the set-associative layout in shared data (LRU, TTL, count and byte bounds; its
//!   module doc describes the design and its races).
//! - [`entry`]: one stored answer and its encoding.
//! - [`record`]: captures a miss's answer as the client receives it; [`assemble`] turns an
//!   OpenAI chat stream into the `chat.completion` it amounts to.
//! - [`replay`]: gives an entry back, as JSON or replayed as a well-formed stream.
//! - [`flow`]: the two calls the pipeline makes ([`flow::look_up`] after admission,
//!   [`flow::store_answer`] at the end of a miss) and their metrics.
//!
//! It must not touch the proxy or decide anything about routing, budgets or accounting: it
//! reports what happened and the pipeline acts on it. `docs/cache.md` is the operator's view.

pub mod assemble;
pub mod canonical;
pub mod entry;
pub mod flow;
pub mod key;
pub mod record;
pub mod replay;
pub mod settings;
pub mod store;

#[cfg(test)]
mod stream_tests;

pub use entry::{Entry, EntryFormat};
pub use flow::{budget_charge, look_up, store_answer, CacheStatus, Hit, Step, Stored};
pub use key::{decide, BypassReason, CacheKey, Caller, Decision, Lookup, ReplyShape, RequestView};
pub use record::{Recorder, ResponseEnd, ResponseHead, Skip};
pub use replay::{render, Rendered};
pub use settings::{CacheSettings, Geometry, RawCache, ScopeKind};
pub use store::{CacheStore, InsertOutcome, LookupOutcome, MissReason, NotStored, Totals};

/// The response header naming what the cache did: `hit`, `miss` or `bypass`.
pub const STATUS_HEADER: &str = "x-tollgate-cache";
