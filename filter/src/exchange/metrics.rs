//! Metrics by handle: the core counters are defined once at configure time and recorded through
//! their [`MetricId`]; tagged metrics (provider, model, reason, …) are defined on first use and
//! kept by name in the VM's [`MetricRegistry`]. Recording is a no-op when the host refused a
//! definition.

use std::collections::HashMap;

use super::host::{Host, MetricId};
use crate::accounting::{MetricKind, Sample};

/// A counter handle, or nothing when the host refused to define it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter(Option<MetricId>);

impl Counter {
    /// Defines a counter with the given stat name.
    pub fn define<H: Host>(host: &mut H, name: &str) -> Self {
        Self(host.define_metric(MetricKind::Counter, name))
    }

    /// Adds `n`.
    pub fn add<H: Host>(self, host: &mut H, n: u64) {
        if let Some(id) = self.0 {
            host.increment_metric(id, n);
        }
    }
}

/// The filter's core counters, defined once per configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
    pub fn define<H: Host>(host: &mut H) -> Self {
        Self {
            requests: Counter::define(host, "tollgate_requests_total"),
            request_ids_generated: Counter::define(host, "tollgate_request_ids_generated_total"),
            traces_started: Counter::define(host, "tollgate_traces_started_total"),
            local_replies: Counter::define(host, "tollgate_local_replies_total"),
        }
    }
}

/// Upper bound on distinct tagged stat names per VM, a guard against label explosions.
pub const MAX_TAGGED_METRICS: usize = 20_000;

/// Tagged metrics defined on first use (bounded: tag values are bounded by the caller).
#[derive(Debug, Default)]
pub struct MetricRegistry {
    ids: HashMap<String, Option<MetricId>>,
}

impl MetricRegistry {
    fn id<H: Host>(&mut self, host: &mut H, name: &str, kind: MetricKind) -> Option<MetricId> {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        if self.ids.len() >= MAX_TAGGED_METRICS {
            return None;
        }
        let id = host.define_metric(kind, name);
        self.ids.insert(name.to_string(), id);
        id
    }

    /// Records one sample.
    pub fn record<H: Host>(&mut self, host: &mut H, sample: &Sample) {
        let Some(id) = self.id(host, &sample.name, sample.kind) else {
            return;
        };
        match sample.kind {
            MetricKind::Counter => host.increment_metric(id, sample.value),
            MetricKind::Histogram | MetricKind::Gauge => host.record_metric(id, sample.value),
        }
    }

    /// Adds `n` to a tagged counter.
    pub fn count<H: Host>(&mut self, host: &mut H, name: String, n: u64) {
        self.record(
            host,
            &Sample {
                name,
                kind: MetricKind::Counter,
                value: n,
            },
        );
    }
}
