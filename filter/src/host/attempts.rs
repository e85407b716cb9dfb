//! Recording one provider attempt — circuit, provider back-off hints, attempt metrics and the
//! circuit-state gauge — shared by the downstream stage (its own attempts and callouts) and the
//! upstream stage (each Envoy retry attempt).

use std::cell::RefCell;

use proxy_wasm::types::{LogLevel, MapType};

use super::calls::log_with_id;
use super::http::VmShared;
use super::store::HostStore;
use crate::accounting;
use crate::failover::{self, AttemptResult, ProviderSettings};

/// Records one attempt's answer (`None`: no response) for `provider`; `headers` is where its
/// response headers are (for back-off hints on 429/503). Returns how the attempt is classified.
pub fn record_attempt(
    shared: &RefCell<VmShared>,
    request_id: &str,
    provider: &ProviderSettings,
    status: Option<u16>,
    headers: MapType,
    now_ms: u64,
) -> failover::Outcome {
    let outcome = failover::classify(status, false, status.is_none());
    if let Some(transition) = failover::record_result(
        &HostStore,
        provider,
        now_ms,
        AttemptResult::from_outcome(outcome),
    )
    .filter(|t| t.from != t.to)
    {
        log_with_id(
            LogLevel::Warn,
            request_id,
            &format!("provider {} circuit: {transition:?}", provider.name),
        );
    }
    publish_circuit(shared, provider, now_ms);
    if matches!(status, Some(429 | 503)) {
        let map = super::calls::headers(headers);
        if let Some(until) = failover::parse_backoff_hint(&map, now_ms) {
            failover::record_backoff(&HostStore, provider, until);
        }
    }
    count(
        shared,
        failover::metrics::provider_attempts_metric(&provider.name, outcome.label()),
    );
    outcome
}

/// Publishes a provider's circuit state (0 closed, 1 half-open, 2 open) as a gauge.
pub fn publish_circuit(shared: &RefCell<VmShared>, provider: &ProviderSettings, now_ms: u64) {
    let state = failover::circuit_state(&HostStore, provider, now_ms);
    if let Ok(mut shared) = shared.try_borrow_mut() {
        shared.metrics.record(&accounting::Sample {
            name: failover::metrics::circuit_state_metric(&provider.name),
            kind: accounting::MetricKind::Gauge,
            value: failover::metrics::circuit_state_value(state),
        });
    }
}

/// Adds one to a tagged counter.
pub fn count(shared: &RefCell<VmShared>, name: String) {
    if let Ok(mut shared) = shared.try_borrow_mut() {
        shared.metrics.count(name, 1);
    }
}
