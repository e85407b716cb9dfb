//! Stat names for failover metrics, with tags encoded as `base.tag.value.tag.value` for Envoy's
//! tag extractors (tag values sanitized to `[A-Za-z0-9_-]`, at most 64 characters).

use super::circuit::CircuitState;

/// Counter: attempts per provider and outcome.
pub const PROVIDER_ATTEMPTS_TOTAL: &str = "tollgate_provider_attempts_total";
/// Counter: moves from one provider to the next, per provider given up on and reason.
pub const FAILOVERS_TOTAL: &str = "tollgate_failovers_total";
/// Gauge: circuit state per provider (0 closed, 1 half-open, 2 open).
pub const CIRCUIT_STATE: &str = "tollgate_circuit_state";
/// Tag names used by these metrics (each needs a tag extractor in the Envoy stats config).
pub const FAILOVER_TAG_NAMES: &[&str] = &["provider", "outcome", "reason"];

/// Makes a tag value safe inside a dot-separated stat name: `[A-Za-z0-9_-]` (others become
/// `_`), at most 64 characters, `unknown` when empty.
pub fn sanitize_tag_value(value: &str) -> String {
    crate::accounting::sanitize_tag_value(value)
}

/// Builds `base.tag1.value1.tag2.value2…` with sanitized values.
fn tagged(base: &str, tags: &[(&str, &str)]) -> String {
    crate::accounting::tagged_name(base, tags)
}

/// `tollgate_provider_attempts_total.provider.<provider>.outcome.<outcome>`.
pub fn provider_attempts_metric(provider: &str, outcome: &str) -> String {
    tagged(
        PROVIDER_ATTEMPTS_TOTAL,
        &[("provider", provider), ("outcome", outcome)],
    )
}

/// `tollgate_failovers_total.provider.<from provider>.reason.<reason>`.
pub fn failovers_metric(from_provider: &str, reason: &str) -> String {
    tagged(
        FAILOVERS_TOTAL,
        &[("provider", from_provider), ("reason", reason)],
    )
}

/// `tollgate_circuit_state.provider.<provider>`.
pub fn circuit_state_metric(provider: &str) -> String {
    tagged(CIRCUIT_STATE, &[("provider", provider)])
}

/// The gauge value for a circuit state: 0 closed, 1 half-open, 2 open.
pub fn circuit_state_value(state: CircuitState) -> u64 {
    state.gauge_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_built_and_sanitized() {
        assert_eq!(
            provider_attempts_metric("openai", "status_5xx"),
            "tollgate_provider_attempts_total.provider.openai.outcome.status_5xx"
        );
        assert_eq!(
            failovers_metric("azure.east", "timeout"),
            "tollgate_failovers_total.provider.azure_east.reason.timeout"
        );
        assert_eq!(
            circuit_state_metric("my provider/1"),
            "tollgate_circuit_state.provider.my_provider_1"
        );
        assert_eq!(
            circuit_state_metric(""),
            "tollgate_circuit_state.provider.unknown"
        );
        assert_eq!(sanitize_tag_value(&"é".repeat(100)), "_".repeat(64));
        assert_eq!(circuit_state_value(CircuitState::Open), 2);
        assert_eq!(circuit_state_value(CircuitState::HalfOpen), 1);
        assert_eq!(circuit_state_value(CircuitState::Closed), 0);
    }
}
