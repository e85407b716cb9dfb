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
#[path = "schedule_tests.rs"]
mod tests;
