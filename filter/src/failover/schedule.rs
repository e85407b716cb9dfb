//! The retry schedule of one request: exponential back-off with jitter between retries, the
//! [`AttemptTracker`] that walks a [`Plan`] (same provider up to its retries, then the next
//! provider, never past the total deadline), and the client reply when every attempt failed.

use std::fmt::Write as _;

use crate::shared_store::SharedStore;

use super::circuit::{try_claim_probe, ProbeClaim};
use super::classify::{FailureKind, Outcome};
use super::plan::{
    availability, claim_skip_reason, Availability, Plan, PlannedProvider, SkipReason,
};
use super::settings::{BackoffSettings, FailoverSettings};

/// The delay before retry number `attempt` (0 = first retry) on the same provider:
/// `base · 2^attempt`, capped at `max`, spread by ±`jitter` using `rand_u64`, never above `max`.
pub fn backoff_delay_ms(attempt: u32, backoff: &BackoffSettings, rand_u64: u64) -> u64 {
    let nominal = backoff
        .base_ms
        .saturating_mul(2u64.saturating_pow(attempt))
        .min(backoff.max_ms);
    let jitter = if backoff.jitter.is_finite() {
        backoff.jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    // 53 random bits → a uniform fraction in [0, 1).
    let unit = (rand_u64 >> 11) as f64 / (1u64 << 53) as f64;
    let spread = nominal as f64 * jitter;
    let jittered = nominal as f64 - spread + 2.0 * spread * unit;
    (jittered.round().max(0.0) as u64).min(backoff.max_ms)
}

/// What happened in one attempt, for logs and the all-failed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptSummary {
    /// Provider name.
    pub provider: String,
    /// HTTP status received, if any.
    pub status: Option<u16>,
    /// How the attempt was classified.
    pub reason: Outcome,
    /// Time from sending to the result (ms).
    pub elapsed_ms: u64,
}

/// Leaving a provider for the next one (for `tollgate_failovers_total`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    /// The provider given up on.
    pub from_provider: String,
    /// Its last failure's label (`timeout`, `status_5xx`, `rate_limited`, …).
    pub reason: &'static str,
}

/// One attempt to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Provider name.
    pub provider: String,
    /// Index into [`FailoverSettings::providers`].
    pub index: usize,
    /// Model name to send.
    pub provider_model: String,
    /// Wait this long before sending (0 for a provider's first attempt).
    pub delay_ms: u64,
    /// Attempt timeout: the provider's, shortened to what the deadline leaves.
    pub timeout_ms: u64,
    /// This attempt is the circuit's half-open probe: record its result.
    pub probe: bool,
    /// 0 for the provider's first attempt, then 1, 2, … for retries.
    pub retry: u32,
    /// Set on the first attempt after leaving a failed provider.
    pub failover_from: Option<Failover>,
}

/// Why no further attempt will be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A response was delivered to the client.
    Delivered,
    /// Every planned provider was tried or skipped.
    Exhausted,
    /// The total deadline has passed.
    DeadlineExceeded,
}

/// What the tracker wants next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// Send this attempt (after its delay).
    Attempt(Attempt),
    /// Stop; unless delivered, reply with [`AttemptTracker::failure_reply`].
    Stop(StopReason),
}

/// What to do with an attempt's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    /// Hand this response to the client.
    Deliver,
    /// Drop it and ask [`AttemptTracker::next_attempt`] for the next step.
    TryNext,
}

/// The reply for a request no provider served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedReply {
    /// 429 when every attempt (or skip) was rate limiting, else 503.
    pub status: u16,
    /// Provider names, statuses and times; never keys or provider bodies.
    pub message: String,
    /// Seconds until a skipped provider may be tried again, for `Retry-After`.
    pub retry_after_s: Option<u64>,
}

/// One attempt described for a message: `openai: 503 after 120 ms`, `anthropic: timeout after
/// 3000 ms`, `gemini: no response after 2 ms` (the same words the walked design's carry uses).
fn describe(summary: &AttemptSummary) -> String {
    let what = match (summary.status, summary.reason) {
        (Some(status), _) => status.to_string(),
        (None, Outcome::Retryable(FailureKind::ConnectFailure)) => "no response".to_string(),
        (None, reason) => reason.label().to_string(),
    };
    format!(
        "{}: {what} after {} ms",
        summary.provider, summary.elapsed_ms
    )
}

/// The client reply when every attempt failed: 429 if all were rate limited, else 503, with a
/// message listing each attempt's provider, status and time.
pub fn all_failed_reply(attempts: &[AttemptSummary]) -> FailedReply {
    let all_limited = !attempts.is_empty()
        && attempts
            .iter()
            .all(|a| a.reason == Outcome::Retryable(FailureKind::RateLimited));
    let message = if attempts.is_empty() {
        "no upstream provider was available".to_string()
    } else {
        let list: Vec<String> = attempts.iter().map(describe).collect();
        format!("every provider failed: {}", list.join("; "))
    };
    FailedReply {
        status: if all_limited { 429 } else { 503 },
        message,
        retry_after_s: None,
    }
}

/// Walks a [`Plan`] for one request: each provider up to `1 + max_retries` attempts (one for a
/// half-open probe, and a 429 moves on at once), then the next provider; nothing starts after
/// the total deadline. Before each attempt the provider's circuit and back-off window are read
/// again, so providers that failed meanwhile (in any worker) are skipped, and a provider whose
/// cooldown elapsed is attempted only if this worker claims its probe.
#[derive(Debug, Clone)]
pub struct AttemptTracker {
    candidates: Vec<PlannedProvider>,
    skipped: Vec<(String, SkipReason)>,
    position: usize,
    tries_on_current: u32,
    claimed_probe: bool,
    last_failure: Option<&'static str>,
    pending_failover: Option<Failover>,
    in_flight_since: Option<u64>,
    deadline_ms: u64,
    total_deadline_ms: u64,
    backoff: BackoffSettings,
    summaries: Vec<AttemptSummary>,
    stopped: Option<StopReason>,
}

impl AttemptTracker {
    /// Starts tracking `plan` for a request that began at `now_ms`.
    pub fn new(settings: &FailoverSettings, plan: &Plan, now_ms: u64) -> Self {
        Self {
            candidates: plan.attempts.clone(),
            skipped: plan.skipped.clone(),
            position: 0,
            tries_on_current: 0,
            claimed_probe: false,
            last_failure: None,
            pending_failover: None,
            in_flight_since: None,
            deadline_ms: now_ms.saturating_add(settings.total_deadline_ms),
            total_deadline_ms: settings.total_deadline_ms,
            backoff: settings.backoff,
            summaries: Vec::new(),
            stopped: None,
        }
    }

    /// The deadline for the whole request (Unix ms).
    pub fn deadline_ms(&self) -> u64 {
        self.deadline_ms
    }

    /// Attempts recorded so far, in order.
    pub fn summaries(&self) -> &[AttemptSummary] {
        &self.summaries
    }

    /// Providers left out (by the plan or when reached), in order.
    pub fn skipped(&self) -> &[(String, SkipReason)] {
        &self.skipped
    }

    /// Moves to the next candidate, remembering a failover if this one was attempted.
    fn advance(&mut self) {
        if self.tries_on_current > 0 {
            if let Some(c) = self.candidates.get(self.position) {
                self.pending_failover = Some(Failover {
                    from_provider: c.name.clone(),
                    reason: self.last_failure.unwrap_or("unknown"),
                });
            }
        }
        self.position += 1;
        self.tries_on_current = 0;
        self.claimed_probe = false;
        self.last_failure = None;
    }

    fn stop(&mut self, reason: StopReason) -> NextStep {
        self.stopped = Some(reason);
        self.in_flight_since = None;
        NextStep::Stop(reason)
    }

    /// The next attempt to send at `now_ms`, or why to stop. `rand_u64` feeds the jitter;
    /// `store` is read for circuit and back-off state (and written to claim a probe).
    pub fn next_attempt<S: SharedStore + ?Sized>(
        &mut self,
        settings: &FailoverSettings,
        store: &S,
        now_ms: u64,
        rand_u64: u64,
    ) -> NextStep {
        if let Some(reason) = self.stopped {
            return NextStep::Stop(reason);
        }
        loop {
            if now_ms >= self.deadline_ms {
                return self.stop(StopReason::DeadlineExceeded);
            }
            let Some(candidate) = self.candidates.get(self.position) else {
                return self.stop(StopReason::Exhausted);
            };
            let provider = settings
                .providers
                .get(candidate.index)
                .filter(|p| p.name == candidate.name);
            let Some(provider) = provider else {
                // The configuration changed under this request: the provider is gone.
                self.advance();
                continue;
            };
            let holds_probe = candidate.probe || self.claimed_probe;
            let max_tries = if holds_probe {
                1
            } else {
                provider.max_retries.saturating_add(1)
            };
            if self.tries_on_current >= max_tries {
                self.advance();
                continue;
            }
            if !holds_probe {
                let skip = match availability(store, provider, now_ms) {
                    Availability::Ready => None,
                    Availability::Skip(reason) => Some(reason),
                    Availability::NeedsProbe => {
                        let claim = try_claim_probe(store, provider, now_ms);
                        self.claimed_probe = matches!(claim, ProbeClaim::Won { .. });
                        claim_skip_reason(claim, now_ms)
                    }
                };
                if let Some(reason) = skip {
                    self.skipped.push((candidate.name.clone(), reason));
                    self.advance();
                    continue;
                }
            }
            let delay_ms = match self.tries_on_current.checked_sub(1) {
                Some(retry_index) => backoff_delay_ms(retry_index, &self.backoff, rand_u64),
                None => 0,
            };
            let start = now_ms.saturating_add(delay_ms);
            if start >= self.deadline_ms {
                // No time to wait for a retry here: try the next provider at once instead.
                self.advance();
                continue;
            }
            let attempt = Attempt {
                provider: candidate.name.clone(),
                index: candidate.index,
                provider_model: candidate.provider_model.clone(),
                delay_ms,
                timeout_ms: provider.timeout_ms.min(self.deadline_ms - start),
                probe: candidate.probe || self.claimed_probe,
                retry: self.tries_on_current,
                failover_from: self.pending_failover.take(),
            };
            self.tries_on_current += 1;
            self.in_flight_since = Some(start);
            return NextStep::Attempt(attempt);
        }
    }

    /// Adds attempts made before this tracker took over (a walked route's Envoy attempts), so
    /// the all-failed reply lists them first.
    pub fn add_earlier(&mut self, earlier: Vec<AttemptSummary>) {
        let mine = std::mem::replace(&mut self.summaries, earlier);
        self.summaries.extend(mine);
    }

    /// Gives up on the provider of the attempt last returned by
    /// [`AttemptTracker::next_attempt`] without sending it (its request cannot be written for
    /// that provider): the next call moves on to the next provider.
    pub fn abandon_current(&mut self, reason: &'static str) {
        self.in_flight_since = None;
        self.last_failure = Some(reason);
        self.advance();
    }

    /// Records the result of the attempt last returned by [`AttemptTracker::next_attempt`],
    /// received at `now_ms`. Success and client errors are delivered; retryable failures are
    /// dropped (a 429 or a failed probe moves on to the next provider immediately).
    pub fn record(&mut self, now_ms: u64, status: Option<u16>, outcome: Outcome) -> AfterAttempt {
        let started = self.in_flight_since.take().unwrap_or(now_ms);
        let provider = self
            .candidates
            .get(self.position)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        self.summaries.push(AttemptSummary {
            provider,
            status,
            reason: outcome,
            elapsed_ms: now_ms.saturating_sub(started),
        });
        match outcome {
            Outcome::Success | Outcome::ClientError(_) => {
                self.stopped = Some(StopReason::Delivered);
                AfterAttempt::Deliver
            }
            Outcome::Retryable(kind) => {
                self.last_failure = Some(kind.label());
                let holds_probe = self.claimed_probe
                    || self.candidates.get(self.position).is_some_and(|c| c.probe);
                if kind == FailureKind::RateLimited || holds_probe {
                    self.advance();
                }
                AfterAttempt::TryNext
            }
        }
    }

    /// The client reply once the tracker stopped without delivering: the attempts (429 when
    /// all were rate limited, or when nothing was attempted and every provider was backing
    /// off; else 503), skipped providers, a deadline note, and `Retry-After` from the earliest
    /// skipped provider.
    pub fn failure_reply(&self, now_ms: u64) -> FailedReply {
        let mut reply = all_failed_reply(&self.summaries);
        if self.summaries.is_empty() {
            let all_backing_off = !self.skipped.is_empty()
                && self
                    .skipped
                    .iter()
                    .all(|(_, r)| matches!(r, SkipReason::BackingOff { .. }));
            if all_backing_off {
                reply.status = 429;
            }
        }
        if !self.skipped.is_empty() {
            let list: Vec<String> = self
                .skipped
                .iter()
                .map(|(name, reason)| format!("{name} ({})", reason.label()))
                .collect();
            let _ = write!(reply.message, "; skipped: {}", list.join(", "));
        }
        if self.stopped == Some(StopReason::DeadlineExceeded) {
            let _ = write!(
                reply.message,
                "; total deadline of {} ms exceeded",
                self.total_deadline_ms
            );
        }
        reply.retry_after_s = self
            .skipped
            .iter()
            .map(|(_, r)| r.until_ms())
            .filter(|until| *until > now_ms)
            .min()
            .map(|until| (until - now_ms).div_ceil(1_000).max(1));
        reply
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
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
}
