//! Metrics: fixed counters defined once at configure time, and tagged metrics defined on first
//! use and cached by name. Recording is a no-op when the host refused a definition.

use std::collections::HashMap;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use crate::accounting::{MetricKind, Sample};

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

/// Tagged metrics defined on first use (bounded: tag values are bounded by the caller).
#[derive(Debug, Default)]
pub struct MetricRegistry {
    ids: HashMap<String, Option<u32>>,
}

/// Upper bound on distinct tagged stat names per VM, a guard against label explosions.
const MAX_TAGGED_METRICS: usize = 20_000;

impl MetricRegistry {
    fn id(&mut self, name: &str, kind: MetricKind) -> Option<u32> {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        if self.ids.len() >= MAX_TAGGED_METRICS {
            return None;
        }
        let host_kind = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Histogram => MetricType::Histogram,
            MetricKind::Gauge => MetricType::Gauge,
        };
        let id = hostcalls::define_metric(host_kind, name).ok();
        self.ids.insert(name.to_string(), id);
        id
    }

    /// Records one sample.
    pub fn record(&mut self, sample: &Sample) {
        let Some(id) = self.id(&sample.name, sample.kind) else {
            return;
        };
        let _ = match sample.kind {
            MetricKind::Counter => {
                hostcalls::increment_metric(id, i64::try_from(sample.value).unwrap_or(i64::MAX))
            }
            MetricKind::Histogram | MetricKind::Gauge => hostcalls::record_metric(id, sample.value),
        };
    }

    /// Adds `n` to a tagged counter.
    pub fn count(&mut self, name: String, n: u64) {
        self.record(&Sample {
            name,
            kind: MetricKind::Counter,
            value: n,
        });
    }
}
