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

use super::cas::cas_update;
use super::classify::{FailureKind, Outcome};
use super::settings::ProviderSettings;

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
pub(crate) mod tests {
    use super::*;
    use crate::failover::settings::tests::sample;
    use crate::failover::settings::CircuitSettings;
    use crate::shared_store::MemoryStore;

    const FAIL: AttemptResult = AttemptResult::Failure(FailureKind::Status5xx(503));
    const LIMITED: AttemptResult = AttemptResult::Failure(FailureKind::RateLimited);
    const SETTINGS: CircuitSettings = CircuitSettings {
        failure_threshold: 3,
        cooldown_ms: 1_000,
    };

    #[test]
    fn encode_decode_roundtrip_and_malformed() {
        for r in [
            CircuitRecord::Closed { failures: 7 },
            CircuitRecord::Open { until_ms: 123 },
            CircuitRecord::HalfOpen {
                probe_until_ms: u64::MAX,
            },
        ] {
            assert_eq!(CircuitRecord::decode(&r.encode()), Some(r));
        }
        for bad in [
            &b""[..],
            b"c",
            b"c x",
            b"x 1",
            b"o -1",
            b"\xff\xfe",
            b"c 1 2",
        ] {
            assert_eq!(CircuitRecord::decode(bad), None);
        }
        assert_eq!(
            CircuitRecord::from_stored(Some(b"garbage")),
            CircuitRecord::Closed { failures: 0 }
        );
    }

    #[test]
    fn closed_counts_consecutive_failures_and_trips() {
        let r = CircuitRecord::default();
        let r = r.apply(FAIL, 10, &SETTINGS);
        assert_eq!(r, CircuitRecord::Closed { failures: 1 });
        let r = r.apply(FAIL, 20, &SETTINGS);
        assert_eq!(r, CircuitRecord::Closed { failures: 2 });
        let reset = r.apply(AttemptResult::Success, 25, &SETTINGS);
        assert_eq!(reset, CircuitRecord::Closed { failures: 0 });
        let r = r.apply(FAIL, 30, &SETTINGS);
        assert_eq!(r, CircuitRecord::Open { until_ms: 1_030 });
        assert_eq!(r.state_at(30), CircuitState::Open);
        assert_eq!(r.state_at(1_029), CircuitState::Open);
        assert_eq!(r.state_at(1_030), CircuitState::HalfOpen);
    }

    #[test]
    fn rate_limits_do_not_trip() {
        let mut r = CircuitRecord::Closed { failures: 2 };
        for _ in 0..10 {
            r = r.apply(LIMITED, 0, &SETTINGS);
        }
        assert_eq!(r, CircuitRecord::Closed { failures: 2 });
        let probe = CircuitRecord::HalfOpen { probe_until_ms: 5 };
        assert_eq!(
            probe.apply(LIMITED, 0, &SETTINGS),
            CircuitRecord::Closed { failures: 0 }
        );
    }

    #[test]
    fn half_open_probe_settles() {
        let probe = CircuitRecord::HalfOpen {
            probe_until_ms: 5_000,
        };
        assert_eq!(probe.state_at(0), CircuitState::HalfOpen);
        assert_eq!(
            probe.apply(AttemptResult::Success, 100, &SETTINGS),
            CircuitRecord::Closed { failures: 0 }
        );
        assert_eq!(
            probe.apply(AttemptResult::Failure(FailureKind::Timeout), 100, &SETTINGS),
            CircuitRecord::Open { until_ms: 1_100 }
        );
    }

    #[test]
    fn open_ignores_stale_results() {
        let open = CircuitRecord::Open { until_ms: 900 };
        assert_eq!(open.apply(AttemptResult::Success, 100, &SETTINGS), open);
        assert_eq!(open.apply(FAIL, 100, &SETTINGS), open);
        assert_eq!(open.apply(FAIL, 2_000, &SETTINGS), open);
    }

    #[test]
    fn probe_claimability() {
        assert!(!CircuitRecord::Closed { failures: 9 }.probe_claimable(0));
        assert!(!CircuitRecord::Open { until_ms: 10 }.probe_claimable(9));
        assert!(CircuitRecord::Open { until_ms: 10 }.probe_claimable(10));
        assert!(!CircuitRecord::HalfOpen { probe_until_ms: 10 }.probe_claimable(9));
        assert!(CircuitRecord::HalfOpen { probe_until_ms: 10 }.probe_claimable(10));
    }

    #[test]
    fn full_cycle_through_the_store() {
        let s = sample();
        let p = &s.providers[0]; // threshold 2, cooldown 1000, timeout 60000
        let store = MemoryStore::default();
        assert_eq!(circuit_state(&store, p, 0), CircuitState::Closed);
        assert_eq!(try_claim_probe(&store, p, 0), ProbeClaim::Closed);

        let t = record_result(&store, p, 0, FAIL).unwrap();
        assert!(!t.changed());
        let t = record_result(&store, p, 10, FAIL).unwrap();
        assert_eq!(
            t,
            CircuitTransition {
                from: CircuitState::Closed,
                to: CircuitState::Open
            }
        );
        assert_eq!(circuit_state(&store, p, 500), CircuitState::Open);
        assert_eq!(
            try_claim_probe(&store, p, 500),
            ProbeClaim::Open { until_ms: 1_010 }
        );
        assert_eq!(circuit_state(&store, p, 1_010), CircuitState::HalfOpen);

        assert_eq!(
            try_claim_probe(&store, p, 1_010),
            ProbeClaim::Won {
                probe_until_ms: 61_010
            }
        );
        assert_eq!(
            try_claim_probe(&store, p, 1_011),
            ProbeClaim::InFlight {
                probe_until_ms: 61_010
            }
        );
        // Probe fails: open again for a full cooldown.
        let t = record_result(&store, p, 2_000, FAIL).unwrap();
        assert_eq!(t.from, CircuitState::HalfOpen);
        assert_eq!(t.to, CircuitState::Open);
        assert_eq!(
            read_circuit(&store, p),
            CircuitRecord::Open { until_ms: 3_000 }
        );
        // Next probe succeeds: closed, failures reset.
        assert!(matches!(
            try_claim_probe(&store, p, 3_000),
            ProbeClaim::Won { .. }
        ));
        let t = record_result(&store, p, 3_100, AttemptResult::Success).unwrap();
        assert_eq!(t.to, CircuitState::Closed);
        assert_eq!(
            read_circuit(&store, p),
            CircuitRecord::Closed { failures: 0 }
        );
    }

    #[test]
    fn abandoned_probe_claim_expires() {
        let s = sample();
        let p = &s.providers[1]; // timeout 5000
        let store = MemoryStore::default();
        store.set(
            &p.circuit_key,
            &CircuitRecord::Open { until_ms: 100 }.encode(),
            None,
        );
        assert_eq!(
            try_claim_probe(&store, p, 100),
            ProbeClaim::Won {
                probe_until_ms: 5_100
            }
        );
        assert!(matches!(
            try_claim_probe(&store, p, 5_099),
            ProbeClaim::InFlight { .. }
        ));
        assert!(matches!(
            try_claim_probe(&store, p, 5_100),
            ProbeClaim::Won { .. }
        ));
    }

    /// A store that lets another "worker" act between this worker's read and its CAS write.
    pub(crate) struct RacingStore<'a, F: FnMut(&MemoryStore)> {
        pub(crate) inner: &'a MemoryStore,
        pub(crate) interloper: std::cell::RefCell<Option<F>>,
    }

    impl<F: FnMut(&MemoryStore)> SharedStore for RacingStore<'_, F> {
        fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
            self.inner.get(key)
        }
        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
            if let Some(mut other) = self.interloper.borrow_mut().take() {
                other(self.inner);
            }
            self.inner.set(key, value, cas)
        }
    }

    #[test]
    fn two_workers_race_for_the_probe_exactly_one_wins() {
        let s = sample();
        let p = &s.providers[0];
        let shared = MemoryStore::default();
        shared.set(
            &p.circuit_key,
            &CircuitRecord::Open { until_ms: 100 }.encode(),
            None,
        );
        let mut other_result = None;
        {
            // Worker A reads the open record; before its CAS lands, worker B claims the probe.
            let worker_a = RacingStore {
                inner: &shared,
                interloper: std::cell::RefCell::new(Some(|store: &MemoryStore| {
                    other_result = Some(try_claim_probe(store, p, 150));
                })),
            };
            let a = try_claim_probe(&worker_a, p, 150);
            assert_eq!(
                a,
                ProbeClaim::InFlight {
                    probe_until_ms: 60_150
                }
            );
        }
        assert_eq!(
            other_result,
            Some(ProbeClaim::Won {
                probe_until_ms: 60_150
            })
        );
    }

    #[test]
    fn many_workers_one_probe() {
        let s = sample();
        let p = &s.providers[0];
        let shared = MemoryStore::default();
        shared.set(
            &p.circuit_key,
            &CircuitRecord::Open { until_ms: 100 }.encode(),
            None,
        );
        let wins = (0..16)
            .filter(|i| matches!(try_claim_probe(&shared, p, 100 + i), ProbeClaim::Won { .. }))
            .count();
        assert_eq!(wins, 1);
    }

    #[test]
    fn concurrent_failures_are_not_lost() {
        let s = sample();
        let p = &s.providers[1]; // threshold 5
        let shared = MemoryStore::default();
        record_result(&shared, p, 0, FAIL).unwrap();
        // Worker A's failure races with worker B's failure: both must count.
        let worker_a = RacingStore {
            inner: &shared,
            interloper: std::cell::RefCell::new(Some(|store: &MemoryStore| {
                record_result(store, p, 1, FAIL).unwrap();
            })),
        };
        record_result(&worker_a, p, 1, FAIL).unwrap();
        assert_eq!(
            read_circuit(&shared, p),
            CircuitRecord::Closed { failures: 3 }
        );
    }

    /// A store where every CAS write fails.
    struct AlwaysContended(MemoryStore);

    impl SharedStore for AlwaysContended {
        fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
            self.0.get(key)
        }
        fn set(&self, _: &str, _: &[u8], _: Option<u32>) -> bool {
            false
        }
    }

    #[test]
    fn contention_is_bounded() {
        let s = sample();
        let p = &s.providers[0];
        let store = AlwaysContended(MemoryStore::default());
        store.0.set(
            &p.circuit_key,
            &CircuitRecord::Open { until_ms: 0 }.encode(),
            None,
        );
        assert_eq!(try_claim_probe(&store, p, 10), ProbeClaim::Contended);
        assert_eq!(
            record_result(&store, p, 10, FAIL),
            Some(CircuitTransition {
                from: CircuitState::HalfOpen,
                to: CircuitState::HalfOpen
            })
        );
        let fresh = AlwaysContended(MemoryStore::default());
        assert_eq!(record_result(&fresh, p, 10, FAIL), None);
    }

    #[test]
    fn gauge_values_and_outcome_mapping() {
        assert_eq!(CircuitState::Closed.gauge_value(), 0);
        assert_eq!(CircuitState::HalfOpen.gauge_value(), 1);
        assert_eq!(CircuitState::Open.gauge_value(), 2);
        assert_eq!(CircuitState::HalfOpen.label(), "half_open");
        assert_eq!(
            AttemptResult::from_outcome(Outcome::ClientError(400)),
            AttemptResult::Success
        );
        assert_eq!(
            AttemptResult::from_outcome(Outcome::Retryable(FailureKind::Reset)),
            AttemptResult::Failure(FailureKind::Reset)
        );
    }
}
