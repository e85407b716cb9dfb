//! Metrics by handle: the core counters are defined once at configure time and recorded through
//! their [`MetricId`]; tagged metrics (provider, model, reason, …) are defined on first use and
//! kept by name in the VM's [`MetricRegistry`]; a finished request's metrics are kept by label
//! set ([`MetricRegistry::record_request`]), so a request whose provider, model, user and team
//! were seen before builds no stat name and looks up one key. Recording is a no-op when the host
//! refused a definition.

use rustc_hash::FxHashMap;

use super::host::{Host, MetricId};
use crate::accounting::{Labels, MetricKind, RequestMetric, RequestSample, Sample};

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

/// Upper bound on label sets whose request metric handles are kept (beyond it, a request's
/// metrics are looked up by name).
pub const MAX_LABEL_SETS: usize = 2_000;

/// Tagged metrics defined on first use (bounded: tag values are bounded by the caller).
#[derive(Debug, Default)]
pub struct MetricRegistry {
    ids: FxHashMap<String, Option<MetricId>>,
    /// Request metric handles by label set ([`Labels::key`]).
    label_sets: FxHashMap<String, FxHashMap<RequestMetric, Option<MetricId>>>,
}

impl MetricRegistry {
    fn id<H: Host>(&mut self, host: &mut H, name: &str, kind: MetricKind) -> Option<MetricId> {
        named_id(&mut self.ids, host, name, kind)
    }

    /// Records a finished request's samples under its label set, defining each metric the first
    /// time its label set uses it.
    pub fn record_request<H: Host>(
        &mut self,
        host: &mut H,
        labels: &Labels<'_>,
        samples: &[RequestSample],
    ) {
        let key = labels.key();
        if !self.label_sets.contains_key(&key) && self.label_sets.len() >= MAX_LABEL_SETS {
            for s in samples {
                let name = s.metric.name(labels);
                if let Some(id) = self.id(host, &name, s.metric.kind) {
                    put(host, id, s.metric.kind, s.value);
                }
            }
            return;
        }
        let handles = self.label_sets.entry(key).or_default();
        for s in samples {
            let id = match handles.get(&s.metric) {
                Some(id) => *id,
                None => {
                    let id = named_id(&mut self.ids, host, &s.metric.name(labels), s.metric.kind);
                    handles.insert(s.metric, id);
                    id
                }
            };
            if let Some(id) = id {
                put(host, id, s.metric.kind, s.value);
            }
        }
    }

    /// Records one sample.
    pub fn record<H: Host>(&mut self, host: &mut H, sample: &Sample) {
        if let Some(id) = self.id(host, &sample.name, sample.kind) {
            put(host, id, sample.kind, sample.value);
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

/// Adds to a counter, records a histogram value or sets a gauge.
fn put<H: Host>(host: &mut H, id: MetricId, kind: MetricKind, value: u64) {
    match kind {
        MetricKind::Counter => host.increment_metric(id, value),
        MetricKind::Histogram | MetricKind::Gauge => host.record_metric(id, value),
    }
}

/// The handle of a tagged metric by name, defined on first use (none beyond the bound).
fn named_id<H: Host>(
    ids: &mut FxHashMap<String, Option<MetricId>>,
    host: &mut H,
    name: &str,
    kind: MetricKind,
) -> Option<MetricId> {
    if let Some(id) = ids.get(name) {
        return *id;
    }
    if ids.len() >= MAX_TAGGED_METRICS {
        return None;
    }
    let id = host.define_metric(kind, name);
    ids.insert(name.to_string(), id);
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::{self, RequestRecord};
    use crate::exchange::fake::FakeHost;
    use crate::usage::{Usage, UsageOutcome};

    fn outcome() -> UsageOutcome {
        UsageOutcome {
            usage: Some(Usage {
                input_tokens: 10,
                output_tokens: 21,
                total_tokens: 31,
                ..Usage::default()
            }),
            reported_usage: None,
            complete: true,
            ..UsageOutcome::default()
        }
    }

    fn record<'a>(model: &'a str, o: &'a UsageOutcome) -> RequestRecord<'a> {
        RequestRecord {
            provider: "openai",
            model,
            user_label: Some("alice"),
            team_label: None,
            status: 200,
            outcome: o,
            cost_usd: Some(0.5),
            ttft_ms: Some(40),
            duration_ms: 240,
        }
    }

    #[test]
    fn a_label_set_defines_its_metrics_once_under_the_same_names_as_samples() {
        let mut host = FakeHost::new();
        let mut registry = MetricRegistry::default();
        let o = outcome();
        let r = record("gpt-4o", &o);
        registry.record_request(&mut host, &r.labels(), &accounting::request_samples(&r));
        let defined = host.metric_defs.len();
        let mut expected: Vec<String> = accounting::samples(&r)
            .into_iter()
            .map(|s| s.name)
            .collect();
        let mut names: Vec<String> = host.metric_defs.keys().cloned().collect();
        expected.sort();
        names.sort();
        assert_eq!(names, expected);
        registry.record_request(&mut host, &r.labels(), &accounting::request_samples(&r));
        assert_eq!(
            host.metric_defs.len(),
            defined,
            "no new definition for a seen label set"
        );
        let tokens = "provider=.=openai;.;model=.=gpt-4o;.;user=.=alice;.;token_type=.=input;.;tollgate_tokens_total";
        let id = host.metric_defs.get(tokens).map(|(_, id)| *id);
        assert_eq!(
            id.and_then(|id| host.metric_values.get(&id).copied()),
            Some(20)
        );

        let other = record("gpt-4.1", &o);
        registry.record_request(
            &mut host,
            &other.labels(),
            &accounting::request_samples(&other),
        );
        assert_eq!(
            host.metric_defs.len(),
            2 * defined,
            "a new label set defines its own"
        );
    }

    #[test]
    fn label_set_keys_do_not_collide_across_parts() {
        let a = Labels {
            provider: "a",
            model: "b",
            user: Some("c"),
            team: None,
        };
        let b = Labels {
            provider: "a",
            model: "b",
            user: None,
            team: Some("c"),
        };
        let c = Labels {
            provider: "ab",
            model: "",
            user: Some("c"),
            team: None,
        };
        assert_ne!(a.key(), b.key());
        assert_ne!(a.key(), c.key());
    }
}
