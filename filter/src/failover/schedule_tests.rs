//! Tests of the per-request attempt schedule: back-off, retries then failover, rate limits,
//! deadlines, providers failing meanwhile, circuit probes, and the all-failed reply.

use super::*;
use crate::failover::backoff_hint::record_backoff;
use crate::failover::circuit::{read_circuit, CircuitRecord};
use crate::failover::classify::classify;
use crate::failover::plan::plan;
use crate::failover::settings::tests::sample;
use crate::shared_store::MemoryStore;

const B: BackoffSettings = BackoffSettings {
    base_ms: 100,
    max_ms: 5_000,
    jitter: 0.2,
};
const MID: u64 = 1 << 63;

fn expect_attempt(step: NextStep) -> Attempt {
    match step {
        NextStep::Attempt(a) => a,
        other => panic!("expected an attempt, got {other:?}"),
    }
}

fn summary(provider: &str, status: Option<u16>, reason: Outcome) -> AttemptSummary {
    AttemptSummary {
        provider: provider.to_string(),
        status,
        reason,
        elapsed_ms: 10,
    }
}

#[test]
fn backoff_is_exponential_capped_and_jittered() {
    let none = BackoffSettings { jitter: 0.0, ..B };
    let delays: Vec<u64> = (0..8).map(|i| backoff_delay_ms(i, &none, 0)).collect();
    assert_eq!(delays, [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000]);
    assert_eq!(backoff_delay_ms(u32::MAX, &none, 0), 5_000);
    assert_eq!(backoff_delay_ms(0, &B, MID), 100);
    assert_eq!(backoff_delay_ms(0, &B, 0), 80);
    assert_eq!(backoff_delay_ms(0, &B, u64::MAX), 120);
    assert_eq!(backoff_delay_ms(3, &B, 0), 640);
    // Jitter never exceeds the cap.
    assert_eq!(backoff_delay_ms(10, &B, u64::MAX), 5_000);
    let mut x = 0x1234_5678_9abc_def0u64;
    for _ in 0..1_000 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let d = backoff_delay_ms(2, &B, x);
        assert!((320..=480).contains(&d), "{d}");
    }
    let weird = BackoffSettings {
        jitter: f64::NAN,
        ..B
    };
    assert_eq!(backoff_delay_ms(0, &weird, 0), 100);
    let zero = BackoffSettings {
        base_ms: 0,
        max_ms: 0,
        jitter: 1.0,
    };
    assert_eq!(backoff_delay_ms(5, &zero, u64::MAX), 0);
}

#[test]
fn retries_same_provider_then_fails_over() {
    // The tracker can space retries; the configuration refuses a delay today (see
    // `backoff.base_ms`), so the delay is set here.
    let mut s = sample(); // openai: 1 retry; azure: 0 retries, 5000 ms timeout
    s.backoff = B;
    let store = MemoryStore::default();
    let p = plan(&s, "gpt-4.1", 0, &store).unwrap();
    let mut t = AttemptTracker::new(&s, &p, 0);
    assert_eq!(t.deadline_ms(), 30_000);

    let a = expect_attempt(t.next_attempt(&s, &store, 0, MID));
    assert_eq!((a.provider.as_str(), a.retry, a.delay_ms), ("openai", 0, 0));
    assert_eq!(a.timeout_ms, 30_000);
    assert!(a.failover_from.is_none());
    assert_eq!(
        t.record(50, Some(502), classify(Some(502), false, false)),
        AfterAttempt::TryNext
    );

    let a = expect_attempt(t.next_attempt(&s, &store, 50, MID));
    assert_eq!(
        (a.provider.as_str(), a.retry, a.delay_ms),
        ("openai", 1, 100)
    );
    assert_eq!(a.timeout_ms, 30_000 - 150);
    t.record(1_000, None, classify(None, false, true));

    let a = expect_attempt(t.next_attempt(&s, &store, 1_000, MID));
    assert_eq!((a.provider.as_str(), a.retry, a.delay_ms), ("azure", 0, 0));
    assert_eq!(a.provider_model, "azure-gpt-4.1");
    assert_eq!(a.timeout_ms, 5_000);
    assert_eq!(
        a.failover_from,
        Some(Failover {
            from_provider: "openai".to_string(),
            reason: "timeout"
        })
    );
    t.record(1_200, Some(503), classify(Some(503), false, false));
    assert_eq!(
        t.next_attempt(&s, &store, 1_200, MID),
        NextStep::Stop(StopReason::Exhausted)
    );
    assert_eq!(
        t.next_attempt(&s, &store, 1_300, MID),
        NextStep::Stop(StopReason::Exhausted)
    );
    let summaries = t.summaries();
    assert_eq!(summaries.len(), 3);
    assert_eq!(summaries[1].elapsed_ms, 850);
    let reply = t.failure_reply(1_200);
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.message,
        "every provider failed: openai: 502 after 50 ms; \
         openai: timeout after 850 ms; azure: 503 after 200 ms"
    );
    assert_eq!(reply.retry_after_s, None);
}

#[test]
fn success_and_client_errors_are_delivered() {
    let s = sample();
    let store = MemoryStore::default();
    let p = plan(&s, "gpt-4o", 0, &store).unwrap();
    let mut t = AttemptTracker::new(&s, &p, 0);
    expect_attempt(t.next_attempt(&s, &store, 0, 0));
    assert_eq!(
        t.record(10, Some(200), Outcome::Success),
        AfterAttempt::Deliver
    );
    assert_eq!(
        t.next_attempt(&s, &store, 10, 0),
        NextStep::Stop(StopReason::Delivered)
    );
    let mut t = AttemptTracker::new(&s, &p, 0);
    expect_attempt(t.next_attempt(&s, &store, 0, 0));
    assert_eq!(
        t.record(10, Some(400), classify(Some(400), false, false)),
        AfterAttempt::Deliver
    );
}

#[test]
fn rate_limit_fails_over_immediately() {
    let s = sample();
    let store = MemoryStore::default();
    let p = plan(&s, "gpt-4.1", 0, &store).unwrap();
    let mut t = AttemptTracker::new(&s, &p, 0);
    expect_attempt(t.next_attempt(&s, &store, 0, 0));
    t.record(5, Some(429), classify(Some(429), false, false));
    let a = expect_attempt(t.next_attempt(&s, &store, 5, 0));
    assert_eq!(a.provider, "azure");
    assert_eq!(a.failover_from.unwrap().reason, "rate_limited");
    t.record(9, Some(429), classify(Some(429), false, false));
    assert_eq!(
        t.next_attempt(&s, &store, 9, 0),
        NextStep::Stop(StopReason::Exhausted)
    );
    assert_eq!(t.failure_reply(9).status, 429);
}

#[test]
fn deadline_stops_attempts_and_shortens_timeouts() {
    let mut s = sample(); // total deadline 30 s
    s.backoff = B;
    let store = MemoryStore::default();
    let p = plan(&s, "gpt-4.1", 0, &store).unwrap();
    let mut t = AttemptTracker::new(&s, &p, 0);
    expect_attempt(t.next_attempt(&s, &store, 0, MID));
    t.record(
        29_950,
        Some(500),
        Outcome::Retryable(FailureKind::Status5xx(500)),
    );
    // A retry on openai would start after the deadline (100 ms delay): fail over instead.
    let a = expect_attempt(t.next_attempt(&s, &store, 29_950, MID));
    assert_eq!(a.provider, "azure");
    assert_eq!(a.delay_ms, 0);
    assert_eq!(a.timeout_ms, 50);
    t.record(30_000, None, Outcome::Retryable(FailureKind::Timeout));
    assert_eq!(
        t.next_attempt(&s, &store, 30_000, MID),
        NextStep::Stop(StopReason::DeadlineExceeded)
    );
    let reply = t.failure_reply(30_000);
    assert_eq!(reply.status, 503);
    assert!(
        reply
            .message
            .ends_with("; total deadline of 30000 ms exceeded"),
        "{}",
        reply.message
    );
}

#[test]
fn deadline_already_past_stops_at_once() {
    let s = sample();
    let store = MemoryStore::default();
    let p = plan(&s, "gpt-4o", 0, &store).unwrap();
    let mut t = AttemptTracker::new(&s, &p, 0);
    assert_eq!(
        t.next_attempt(&s, &store, 30_000, 0),
        NextStep::Stop(StopReason::DeadlineExceeded)
    );
    assert!(t.summaries().is_empty());
}

#[test]
fn providers_failing_meanwhile_are_skipped_when_reached() {
    let s = sample();
    let store = MemoryStore::default();
    let p = plan(&s, "gpt-4.1", 0, &store).unwrap();
    let mut t = AttemptTracker::new(&s, &p, 0);
    expect_attempt(t.next_attempt(&s, &store, 0, 0));
    t.record(10, None, Outcome::Retryable(FailureKind::Reset));
    // Another worker opens azure's circuit and records a back-off for openai.
    store.set(
        &s.providers[1].circuit_key,
        &CircuitRecord::Open { until_ms: 60_000 }.encode(),
        None,
    );
    record_backoff(&store, &s.providers[0], 4_000);
    assert_eq!(
        t.next_attempt(&s, &store, 10, 0),
        NextStep::Stop(StopReason::Exhausted)
    );
    assert_eq!(
        t.skipped(),
        &[
            (
                "openai".to_string(),
                SkipReason::BackingOff { until_ms: 4_000 }
            ),
            (
                "azure".to_string(),
                SkipReason::CircuitOpen { until_ms: 60_000 }
            )
        ]
    );
    let reply = t.failure_reply(10);
    assert_eq!(reply.status, 503);
    assert_eq!(reply.retry_after_s, Some(4));
    assert!(reply
        .message
        .ends_with("skipped: openai (backing_off), azure (circuit_open)"));
}

#[test]
fn probe_gets_one_attempt() {
    let s = sample();
    let store = MemoryStore::default();
    store.set(
        &s.providers[0].circuit_key,
        &CircuitRecord::Open { until_ms: 100 }.encode(),
        None,
    );
    let p = plan(&s, "gpt-4.1", 200, &store).unwrap();
    assert!(p.attempts[0].probe);
    let mut t = AttemptTracker::new(&s, &p, 200);
    let a = expect_attempt(t.next_attempt(&s, &store, 200, 0));
    assert!(a.probe);
    t.record(
        300,
        Some(500),
        Outcome::Retryable(FailureKind::Status5xx(500)),
    );
    let a = expect_attempt(t.next_attempt(&s, &store, 300, 0));
    assert_eq!(a.provider, "azure");
    assert!(!a.probe);
}

#[test]
fn later_probe_is_claimed_only_when_reached() {
    let s = sample();
    let store = MemoryStore::default();
    store.set(
        &s.providers[1].circuit_key,
        &CircuitRecord::Open { until_ms: 100 }.encode(),
        None,
    );
    let p = plan(&s, "gpt-4.1", 200, &store).unwrap();
    assert_eq!(p.attempts.len(), 2);
    assert!(!p.attempts[1].probe);
    assert_eq!(
        read_circuit(&store, &s.providers[1]),
        CircuitRecord::Open { until_ms: 100 }
    );
    let mut t = AttemptTracker::new(&s, &p, 200);
    expect_attempt(t.next_attempt(&s, &store, 200, 0));
    t.record(210, Some(429), Outcome::Retryable(FailureKind::RateLimited));
    let a = expect_attempt(t.next_attempt(&s, &store, 210, 0));
    assert_eq!(a.provider, "azure");
    assert!(a.probe);
    assert!(matches!(
        read_circuit(&store, &s.providers[1]),
        CircuitRecord::HalfOpen { .. }
    ));
    // A second request reaching azure meanwhile must not probe it too.
    let mut other = AttemptTracker::new(&s, &p, 200);
    expect_attempt(other.next_attempt(&s, &store, 220, 0));
    other.record(230, Some(429), Outcome::Retryable(FailureKind::RateLimited));
    assert_eq!(
        other.next_attempt(&s, &store, 230, 0),
        NextStep::Stop(StopReason::Exhausted)
    );
    assert!(matches!(
        other.skipped()[0].1,
        SkipReason::ProbeInFlight { .. }
    ));
}

#[test]
fn empty_plan_replies_503_or_429() {
    let s = sample();
    let store = MemoryStore::default();
    store.set(
        &s.providers[0].circuit_key,
        &CircuitRecord::Open { until_ms: 2_500 }.encode(),
        None,
    );
    record_backoff(&store, &s.providers[1], 9_000);
    let p = plan(&s, "gpt-4o", 1_000, &store).unwrap();
    let mut t = AttemptTracker::new(&s, &p, 1_000);
    assert_eq!(
        t.next_attempt(&s, &store, 1_000, 0),
        NextStep::Stop(StopReason::Exhausted)
    );
    let reply = t.failure_reply(1_000);
    assert_eq!(reply.status, 503);
    assert_eq!(reply.retry_after_s, Some(2));
    assert!(reply
        .message
        .starts_with("no upstream provider was available"));

    record_backoff(&store, &s.providers[0], 3_000);
    let p = plan(&s, "gpt-4o", 2_600, &store).unwrap();
    let t = AttemptTracker::new(&s, &p, 2_600);
    assert_eq!(t.failure_reply(2_600).status, 429);
    assert_eq!(t.failure_reply(2_600).retry_after_s, Some(1));
}

#[test]
fn all_failed_reply_status_and_message() {
    let limited = Outcome::Retryable(FailureKind::RateLimited);
    let reply = all_failed_reply(&[
        summary("openai", Some(429), limited),
        summary("azure", Some(429), limited),
    ]);
    assert_eq!(reply.status, 429);
    assert_eq!(
        reply.message,
        "every provider failed: openai: 429 after 10 ms; azure: 429 after 10 ms"
    );
    let reply = all_failed_reply(&[
        summary("openai", Some(429), limited),
        summary(
            "azure",
            None,
            Outcome::Retryable(FailureKind::ConnectFailure),
        ),
    ]);
    assert_eq!(reply.status, 503);
    assert!(reply.message.ends_with("azure: no response after 10 ms"));
    assert_eq!(all_failed_reply(&[]).status, 503);
}

#[test]
fn record_without_attempt_does_not_panic() {
    let s = sample();
    let store = MemoryStore::default();
    let p = plan(&s, "gpt-4o", 0, &store).unwrap();
    let mut t = AttemptTracker::new(&s, &p, 0);
    t.record(5, None, Outcome::Retryable(FailureKind::Reset));
    assert_eq!(t.summaries()[0].elapsed_ms, 0);
    let mut empty = AttemptTracker::new(&s, &Plan::default(), 0);
    empty.record(5, None, Outcome::Retryable(FailureKind::Reset));
    assert_eq!(empty.summaries()[0].provider, "");
    assert_eq!(
        empty.next_attempt(&s, &store, 5, 0),
        NextStep::Stop(StopReason::Exhausted)
    );
}

#[test]
fn stale_plan_after_reconfiguration_skips_missing_providers() {
    let s = sample();
    let store = MemoryStore::default();
    let p = plan(&s, "claude-2", 0, &store).unwrap();
    let mut smaller = s.clone();
    smaller.providers.truncate(1);
    let mut t = AttemptTracker::new(&smaller, &p, 0);
    let a = expect_attempt(t.next_attempt(&smaller, &store, 0, 0));
    assert_eq!(a.provider, "openai");
}
