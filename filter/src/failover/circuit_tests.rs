//! Tests of the circuit breaker: its record encoding, the state machine, and the shared-store
//! races between workers (`RacingStore` runs another worker's step in the middle of a write).

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
