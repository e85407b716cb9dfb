//! Provider failover: which upstream providers a request tries, in what order, how often, and
//! when a provider is left alone — all as pure logic over the [`SharedStore`] abstraction, so
//! every Envoy worker (a separate wasm VM) sees the same circuit and back-off state.
//!
//! * [`settings`]: the provider catalog and routes, parsed and validated with JSON-path errors.
//! * [`plan`](mod@plan): route selection honouring circuits and back-off windows.
//! * [`circuit`]: the per-provider circuit breaker in shared data (CAS, one half-open probe).
//! * [`classify`](mod@classify): what an attempt's status/reset/timeout means.
//! * [`backoff_hint`]: provider-announced back-off windows from response headers.
//! * [`http_date`]: the three HTTP-date forms of `Retry-After`.
//! * [`schedule`]: retry delays, the per-request [`AttemptTracker`], the all-failed reply.
//! * [`carry`]: what one Envoy retry attempt tells the next (original path, attempt notes).
//! * [`catalog`]: the catalog a listener stage shares with the upstream stage of its VM.
//! * [`metrics`]: stat names for attempts, failovers and circuit state.
//!
//! Typical use by the host layer: `plan` → `AttemptTracker::new` → loop { `next_attempt` →
//! dispatch → `classify` → `record_result` (+ `parse_backoff_hint`/`record_backoff` on 429/503)
//! → `AttemptTracker::record` } → deliver, or reply with `failure_reply`.
//!
//! [`SharedStore`]: crate::shared_store::SharedStore

pub mod backoff_hint;
pub mod carry;
pub mod catalog;
pub mod circuit;
pub mod classify;
pub mod http_date;
pub mod metrics;
pub mod plan;
pub mod raw;
pub mod schedule;
pub mod settings;
pub mod timefmt;

pub use backoff_hint::{backoff_until, parse_backoff_hint, record_backoff, MAX_BACKOFF_HINT_MS};
pub use circuit::{
    circuit_state, read_circuit, record_result, try_claim_probe, AttemptResult, CircuitRecord,
    CircuitState, CircuitTransition, ProbeClaim,
};
pub use classify::{classify, FailureKind, Outcome};
pub use plan::{attempt_allowed, peek, plan, Plan, PlannedProvider, SkipReason};
pub use raw::{
    ProviderKind, RawApiKey, RawBackoff, RawCircuit, RawFailoverSettings, RawProvider, RawRoute,
};
pub use schedule::{
    all_failed_reply, backoff_delay_ms, AfterAttempt, Attempt, AttemptSummary, AttemptTracker,
    FailedReply, Failover, NextStep, StopReason,
};
pub use settings::{
    compile, parse, ApiKeySource, BackoffSettings, CircuitSettings, FailoverSettings, ModelMap,
    ModelPattern, ProviderSettings, Route,
};
