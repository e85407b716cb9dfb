//! Metrics defined once per VM at configure time; recording is a no-op when the host refused
//! the definition.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

/// A counter id, or nothing when the host refused to define it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counter(Option<u32>);

impl Counter {
    /// Defines a counter with the given Envoy stat name.
    pub fn define(name: &str) -> Self {
        Self(hostcalls::define_metric(MetricType::Counter, name).ok())
    }

    /// Adds `n` to the counter.
    pub fn add(self, n: u64) {
        if let Some(id) = self.0 {
            let _ = hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

/// The filter's core counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct CoreMetrics {
    /// Requests seen by the filter.
    pub requests: Counter,
    /// Requests whose id was missing or invalid and got a generated one.
    pub request_ids_generated: Counter,
    /// Requests whose `traceparent` was missing or malformed and got a new root.
    pub traces_started: Counter,
    /// Local replies sent by the filter.
    pub local_replies: Counter,
}

impl CoreMetrics {
    /// Defines every core counter.
    pub fn define() -> Self {
        Self {
            requests: Counter::define("tollgate_requests_total"),
            request_ids_generated: Counter::define("tollgate_request_ids_generated_total"),
            traces_started: Counter::define("tollgate_traces_started_total"),
            local_replies: Counter::define("tollgate_local_replies_total"),
        }
    }
}
