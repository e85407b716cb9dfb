//! Recording one provider attempt — circuit, provider back-off hints, attempt metrics and the
//! circuit-state gauge — shared by the listener stage (its own attempts and callouts) and the
//! upstream stage (each Envoy retry attempt).

use super::host::{Host, Map};
use super::vm::Vm;
use crate::accounting;
use crate::failover::{self, AttemptResult, ProviderSettings};

/// Records one attempt's answer (`None`: no response) for `provider`; `headers` is where its
/// response headers are (for back-off hints on 429/503). Returns how the attempt is classified.
pub fn record_attempt<H: Host>(
    vm: &Vm,
    host: &mut H,
    request_id: &str,
    provider: &ProviderSettings,
    status: Option<u16>,
    headers: Map,
    now_ms: u64,
) -> failover::Outcome {
    let outcome = failover::classify(status, false, status.is_none());
    if let Some(transition) = failover::record_result(
        &*host,
        provider,
        now_ms,
        AttemptResult::from_outcome(outcome),
    )
    .filter(|t| t.from != t.to)
    {
        host.log(
            log::Level::Warn,
            &format!(
                "tollgate [{request_id}] provider {} circuit: {:?} -> {:?}",
                provider.name, transition.from, transition.to
            ),
        );
    }
    publish_circuit(vm, host, provider, now_ms);
    if matches!(status, Some(429 | 503)) {
        let map = host.headers(headers);
        if let Some(until) = failover::parse_backoff_hint(&map, now_ms) {
            failover::record_backoff(&*host, provider, until);
        }
    }
    vm.count(
        host,
        failover::metrics::provider_attempts_metric(&provider.name, outcome.label()),
        1,
    );
    outcome
}

/// Publishes a provider's circuit state (0 closed, 1 half-open, 2 open) as a gauge.
pub fn publish_circuit<H: Host>(vm: &Vm, host: &mut H, provider: &ProviderSettings, now_ms: u64) {
    let state = failover::circuit_state(&*host, provider, now_ms);
    vm.record(
        host,
        &accounting::Sample {
            name: failover::metrics::circuit_state_metric(&provider.name),
            kind: accounting::MetricKind::Gauge,
            value: failover::metrics::circuit_state_value(state),
        },
    );
}
