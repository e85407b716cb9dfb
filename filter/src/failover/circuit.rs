//! The per-provider circuit breaker, kept in proxy-wasm shared data so every worker of an Envoy
//! process sees the same state, and updated with compare-and-swap (bounded retries).
//!
//! Closed → (consecutive failures ≥ threshold) → Open until `now + cooldown` → once the cooldown
//! has elapsed, the first worker that CAS-claims the probe moves it to HalfOpen (other workers
//! keep skipping it) → the probe's success closes the circuit and resets the failure count, its
//! failure opens it for another cooldown. A probe claim that is never settled (the request was
//! cancelled) expires after the provider's attempt timeout, so the circuit cannot stick.
//!
//! Rate limiting is not an outage: a 429 leaves the failure count unchanged and settles a probe
//! as healthy (the provider answers); the back-off window (see `backoff_hint`) handles it.

use crate::shared_store::SharedStore;

use super::classify::{FailureKind, Outcome};
use super::settings::ProviderSettings;
use crate::shared_store::cas_update;

/// A circuit record as stored in shared data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitRecord {
    /// Traffic flows; `failures` consecutive failures so far.
    Closed {
        /// Consecutive failures since the last success.
        failures: u32,
    },
    /// Traffic is refused until `until_ms`; then a probe may be claimed.
    Open {
        /// End of the cooldown (Unix ms).
        until_ms: u64,
    },
    /// One worker holds the probe until `probe_until_ms` (after that it may be claimed again).
    HalfOpen {
        /// Expiry of the probe claim (Unix ms).
        probe_until_ms: u64,
    },
}

impl Default for CircuitRecord {
    fn default() -> Self {
        Self::Closed { failures: 0 }
    }
}

/// The circuit as reported in gauges and status pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Traffic flows.
    Closed,
    /// Cooldown elapsed (a probe may go) or a probe is in flight.
    HalfOpen,
    /// Cooling down; traffic is refused.
    Open,
}

impl CircuitState {
    /// Gauge value: 0 closed, 1 half-open, 2 open.
    pub fn gauge_value(self) -> u64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }

    /// Lowercase label for logs and status pages.
    pub fn label(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }
}

/// What an attempt did, as the circuit breaker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// The provider answered usefully (a client error counts too: the provider is up).
    Success,
    /// The attempt failed.
    Failure(FailureKind),
}

impl AttemptResult {
    /// The circuit's view of a classified outcome.
    pub fn from_outcome(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Success | Outcome::ClientError(_) => Self::Success,
            Outcome::Retryable(kind) => Self::Failure(kind),
        }
    }
}

/// A state change caused by [`record_result`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitTransition {
    /// State before the update.
    pub from: CircuitState,
    /// State after the update.
    pub to: CircuitState,
}

impl CircuitTransition {
    /// Whether the reported state changed.
    pub fn changed(&self) -> bool {
        self.from != self.to
    }
}

/// The result of trying to claim the half-open probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeClaim {
    /// This caller holds the probe until `probe_until_ms`: send exactly one attempt.
    Won {
        /// Expiry of the claim.
        probe_until_ms: u64,
    },
    /// The circuit is closed: no probe needed, send normally.
    Closed,
    /// Still cooling down until `until_ms`.
    Open {
        /// End of the cooldown.
        until_ms: u64,
    },
    /// Another worker holds the probe until `probe_until_ms`.
    InFlight {
        /// Expiry of the other worker's claim.
        probe_until_ms: u64,
    },
    /// Every CAS attempt lost the race; treat as not claimed.
    Contended,
}

impl CircuitRecord {
    /// Encodes as `c <failures>`, `o <until_ms>` or `h <probe_until_ms>` (ASCII).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Closed { failures } => format!("c {failures}"),
            Self::Open { until_ms } => format!("o {until_ms}"),
            Self::HalfOpen { probe_until_ms } => format!("h {probe_until_ms}"),
        }
        .into_bytes()
    }

    /// Decodes [`CircuitRecord::encode`]'s format; `None` when malformed.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (tag, number) = text.split_once(' ')?;
        match tag {
            "c" => Some(Self::Closed {
                failures: number.parse().ok()?,
            }),
            "o" => Some(Self::Open {
                until_ms: number.parse().ok()?,
            }),
            "h" => Some(Self::HalfOpen {
                probe_until_ms: number.parse().ok()?,
            }),
            _ => None,
        }
    }

    /// Decodes a stored value; absent or malformed records read as closed (fail open).
    fn from_stored(bytes: Option<&[u8]>) -> Self {
        bytes.and_then(Self::decode).unwrap_or_default()
    }

    /// The reported state at `now_ms`.
    pub fn state_at(&self, now_ms: u64) -> CircuitState {
        match self {
            Self::Closed { .. } => CircuitState::Closed,
            Self::Open { until_ms } if *until_ms > now_ms => CircuitState::Open,
            Self::Open { .. } | Self::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Whether a probe may be claimed at `now_ms` (cooldown over, no live claim).
    pub fn probe_claimable(&self, now_ms: u64) -> bool {
        match self {
            Self::Closed { .. } => false,
            Self::Open { until_ms } => *until_ms <= now_ms,
            Self::HalfOpen { probe_until_ms } => *probe_until_ms <= now_ms,
        }
    }

    /// The record after `result` at `now_ms` (pure transition function).
    pub fn apply(
        self,
        result: AttemptResult,
        now_ms: u64,
        settings: &super::settings::CircuitSettings,
    ) -> Self {
        let reopen = Self::Open {
            until_ms: now_ms.saturating_add(settings.cooldown_ms),
        };
        match (self, result) {
            (Self::Closed { .. }, AttemptResult::Success) => Self::Closed { failures: 0 },
            (Self::Closed { failures }, AttemptResult::Failure(FailureKind::RateLimited)) => {
                Self::Closed { failures }
            }
            (Self::Closed { failures }, AttemptResult::Failure(_)) => {
                let failures = failures.saturating_add(1);
                if failures >= settings.failure_threshold {
                    reopen
                } else {
                    Self::Closed { failures }
                }
            }
            (Self::HalfOpen { .. }, AttemptResult::Success)
            | (Self::HalfOpen { .. }, AttemptResult::Failure(FailureKind::RateLimited)) => {
                Self::Closed { failures: 0 }
            }
            (Self::HalfOpen { .. }, AttemptResult::Failure(_)) => reopen,
            // Results arriving while open come from requests sent before the circuit opened:
            // stale evidence either way, so the cooldown runs its course.
            (Self::Open { until_ms }, _) => Self::Open { until_ms },
        }
    }
}

/// Reads a provider's circuit record (closed when absent or malformed).
pub fn read_circuit<S: SharedStore + ?Sized>(
    store: &S,
    provider: &ProviderSettings,
) -> CircuitRecord {
    let stored = store.get(&provider.circuit_key);
    CircuitRecord::from_stored(stored.as_ref().map(|(bytes, _)| bytes.as_slice()))
}

/// The provider's circuit state at `now_ms`, for gauges and status pages.
pub fn circuit_state<S: SharedStore + ?Sized>(
    store: &S,
    provider: &ProviderSettings,
    now_ms: u64,
) -> CircuitState {
    read_circuit(store, provider).state_at(now_ms)
}

/// Records an attempt's result in the provider's circuit (CAS, bounded retries). Returns the
/// state before and after, or `None` when every CAS attempt lost the race (the result is then
/// dropped, which only delays a trip by one failure).
pub fn record_result<S: SharedStore + ?Sized>(
    store: &S,
    provider: &ProviderSettings,
    now_ms: u64,
    result: AttemptResult,
) -> Option<CircuitTransition> {
    cas_update(store, &provider.circuit_key, |stored| {
        let before = CircuitRecord::from_stored(stored);
        let after = before.apply(result, now_ms, &provider.circuit);
        let transition = CircuitTransition {
            from: before.state_at(now_ms),
            to: after.state_at(now_ms),
        };
        let write = (after != before).then(|| after.encode());
        (write, transition)
    })
}

/// Tries to claim the half-open probe: succeeds for exactly one caller once the cooldown has
/// elapsed (or a previous claim expired). The claim lasts the provider's attempt timeout.
pub fn try_claim_probe<S: SharedStore + ?Sized>(
    store: &S,
    provider: &ProviderSettings,
    now_ms: u64,
) -> ProbeClaim {
    let probe_until_ms = now_ms.saturating_add(provider.timeout_ms);
    let claimed = cas_update(store, &provider.circuit_key, |stored| {
        let record = CircuitRecord::from_stored(stored);
        if record.probe_claimable(now_ms) {
            let claim = CircuitRecord::HalfOpen { probe_until_ms };
            return (Some(claim.encode()), ProbeClaim::Won { probe_until_ms });
        }
        let outcome = match record {
            CircuitRecord::Closed { .. } => ProbeClaim::Closed,
            CircuitRecord::Open { until_ms } => ProbeClaim::Open { until_ms },
            CircuitRecord::HalfOpen { probe_until_ms } => ProbeClaim::InFlight { probe_until_ms },
        };
        (None, outcome)
    });
    claimed.unwrap_or(ProbeClaim::Contended)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
#[path = "circuit_tests.rs"]
pub(crate) mod tests;
