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

/// Makes a tag value safe inside a stat name (see [`crate::accounting::sanitize_tag_value`]).
pub fn sanitize_tag_value(value: &str) -> String {
    crate::accounting::sanitize_tag_value(value)
}

/// Builds the tagged stat name (see [`crate::accounting::tagged_name`]).
fn tagged(base: &str, tags: &[(&str, &str)]) -> String {
    crate::accounting::tagged_name(base, tags)
}

/// `provider=.=<provider>;.;outcome=.=<outcome>;.;tollgate_provider_attempts_total`.
pub fn provider_attempts_metric(provider: &str, outcome: &str) -> String {
    tagged(
        PROVIDER_ATTEMPTS_TOTAL,
        &[("provider", provider), ("outcome", outcome)],
    )
}

/// `provider=.=<from provider>;.;reason=.=<reason>;.;tollgate_failovers_total`.
pub fn failovers_metric(from_provider: &str, reason: &str) -> String {
    tagged(
        FAILOVERS_TOTAL,
        &[("provider", from_provider), ("reason", reason)],
    )
}

/// `provider=.=<provider>;.;tollgate_circuit_state`.
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
            "provider=.=openai;.;outcome=.=status_5xx;.;tollgate_provider_attempts_total"
        );
        assert_eq!(
            failovers_metric("azure.east", "timeout"),
            "provider=.=azure.east;.;reason=.=timeout;.;tollgate_failovers_total"
        );
        assert_eq!(
            circuit_state_metric("my provider;1"),
            "provider=.=my_provider_1;.;tollgate_circuit_state"
        );
        assert_eq!(
            circuit_state_metric(""),
            "provider=.=unknown;.;tollgate_circuit_state"
        );
        assert_eq!(sanitize_tag_value(&"é".repeat(100)), "_".repeat(64));
        assert_eq!(circuit_state_value(CircuitState::Open), 2);
        assert_eq!(circuit_state_value(CircuitState::HalfOpen), 1);
        assert_eq!(circuit_state_value(CircuitState::Closed), 0);
    }
}
