//! The replies the pipeline writes itself when no provider answers: budget refusals, the
//! up-front refusal when no provider can be tried, and the one all-failed reply (both failover
//! designs). Messages are for people: provider names, what happened, when to come back.

use crate::budget::Refusal;
use crate::error_reply::{ErrorKind, ErrorReply};
use crate::failover::carry::Carry;
use crate::failover::{classify, AttemptSummary, FailedReply, Plan, SkipReason};

/// 429 when `rate_limited`, else 503 with `unavailable_code`.
fn no_provider_reply(rate_limited: bool, unavailable_code: &str, message: String) -> ErrorReply {
    if rate_limited {
        ErrorReply::new(
            429,
            ErrorKind::RateLimit,
            "all_providers_rate_limited",
            message,
        )
    } else {
        ErrorReply::new(503, ErrorKind::Upstream, unavailable_code, message)
    }
}

/// The one reply for a request every provider failed: 503 (`all_providers_failed`), or 429
/// when every attempt was rate limited, with the attempt summary and `Retry-After` when a
/// skipped provider comes back.
pub fn all_failed_reply(failed: &FailedReply) -> ErrorReply {
    let reply = no_provider_reply(
        failed.status == 429,
        "all_providers_failed",
        failed.message.clone(),
    );
    match failed.retry_after_s {
        Some(s) => reply.with_header("retry-after", s.to_string()),
        None => reply,
    }
}

/// The attempts a walked route's carry reports, as summaries for [`all_failed_reply`].
pub fn carry_summaries(carry: &Carry) -> Vec<AttemptSummary> {
    carry
        .notes
        .iter()
        .map(|note| {
            let status = note.result.parse::<u16>().ok();
            AttemptSummary {
                provider: note.provider.clone(),
                status,
                reason: classify(status, false, false),
                elapsed_ms: note.elapsed_ms,
            }
        })
        .collect()
}

/// Why a provider is left out, in words, with how long it stays so.
pub fn describe_skip(name: &str, reason: SkipReason, now_ms: u64) -> String {
    let wait_s = reason
        .until_ms()
        .saturating_sub(now_ms)
        .div_ceil(1000)
        .max(1);
    match reason {
        SkipReason::CircuitOpen { .. } => {
            format!("{name} failed repeatedly and is paused for {wait_s} s")
        }
        SkipReason::ProbeInFlight { .. } => {
            format!("{name} is being tested after failures (about {wait_s} s)")
        }
        SkipReason::BackingOff { .. } => {
            format!("{name} asked for no traffic for {wait_s} s")
        }
    }
}

/// The refusal when no provider of the route can be tried now: 503, or 429 when every one is
/// backing off, with the earliest `Retry-After`.
pub fn unavailable_reply(plan: &Plan, model: &str, now_ms: u64) -> ErrorReply {
    let retry_after = plan
        .earliest_retry_ms()
        .map(|t| t.saturating_sub(now_ms).div_ceil(1000).max(1))
        .unwrap_or(1);
    let reasons: Vec<String> = plan
        .skipped
        .iter()
        .map(|(name, reason)| describe_skip(name, *reason, now_ms))
        .collect();
    no_provider_reply(
        plan.all_backing_off(),
        "all_providers_unavailable",
        format!(
            "no provider can serve model {model:?} right now: {}; retry in {retry_after} s",
            reasons.join("; ")
        ),
    )
    .with_header("retry-after", retry_after.to_string())
}

/// The 503 reply when the mesh-wide budget cannot be checked and `failure_mode` is `closed`.
pub fn budget_unavailable_reply() -> ErrorReply {
    ErrorReply::new(
        503,
        ErrorKind::Upstream,
        "budget_service_unavailable",
        "the budget service did not answer; retry in 1 s",
    )
    .with_header("retry-after", "1")
}

/// The 429 reply for a budget refusal, with `Retry-After` and the rate-limit headers.
pub fn budget_reply(r: &Refusal) -> ErrorReply {
    if r.dimension == "cost" {
        // Cost windows count micro-dollars.
        let message = format!(
            "cost budget of ${:.2} per {}s exhausted; retry in {}s",
            r.limit as f64 / 1_000_000.0,
            r.period_seconds,
            r.retry_after
        );
        return ErrorReply::new(429, ErrorKind::RateLimit, "cost_budget_exceeded", message)
            .with_header("retry-after", r.retry_after.to_string());
    }
    let (message, code) = if r.dimension == "tokens" {
        (
            format!(
                "token budget of {} per {}s exhausted; retry in {}s",
                r.limit, r.period_seconds, r.retry_after
            ),
            "token_budget_exceeded",
        )
    } else {
        (
            format!(
                "request limit of {} per {}s reached; retry in {}s",
                r.limit, r.period_seconds, r.retry_after
            ),
            "rate_limit_exceeded",
        )
    };
    let reply = ErrorReply::new(429, ErrorKind::RateLimit, code, message)
        .with_header("retry-after", r.retry_after.to_string());
    if r.dimension == "tokens" {
        reply
            .with_header("x-ratelimit-limit-tokens", r.limit.to_string())
            .with_header("x-ratelimit-remaining-tokens", "0")
            .with_header("x-ratelimit-reset-tokens", format!("{}s", r.retry_after))
    } else {
        reply
            .with_header("x-ratelimit-limit-requests", r.limit.to_string())
            .with_header("x-ratelimit-remaining-requests", "0")
            .with_header("x-ratelimit-reset-requests", format!("{}s", r.retry_after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_up_front_refusal_speaks_words_not_debug_output() {
        // Behaviour 4: the message printed `CircuitOpen { until_ms: … }`.
        let plan = Plan {
            attempts: Vec::new(),
            skipped: vec![
                (
                    "openai".into(),
                    SkipReason::CircuitOpen { until_ms: 12_500 },
                ),
                (
                    "anthropic".into(),
                    SkipReason::BackingOff { until_ms: 3_000 },
                ),
            ],
        };
        let reply = unavailable_reply(&plan, "gpt-4o", 1_000);
        assert_eq!(reply.status, 503);
        assert_eq!(reply.code, "all_providers_unavailable");
        assert!(!reply.message.contains('{'), "{}", reply.message);
        assert!(!reply.message.contains("until_ms"), "{}", reply.message);
        assert_eq!(
            reply.message,
            "no provider can serve model \"gpt-4o\" right now: openai failed repeatedly and is \
             paused for 12 s; anthropic asked for no traffic for 2 s; retry in 2 s"
        );
    }

    #[test]
    fn all_backing_off_is_429() {
        let plan = Plan {
            attempts: Vec::new(),
            skipped: vec![("openai".into(), SkipReason::BackingOff { until_ms: 3_000 })],
        };
        let reply = unavailable_reply(&plan, "m", 1_000);
        assert_eq!(reply.status, 429);
        assert!(reply
            .headers
            .contains(&("retry-after".to_string(), "2".to_string())));
    }

    #[test]
    fn carry_notes_become_summaries_in_the_same_words() {
        let mut carry = Carry::new("/v1/chat/completions");
        carry.push("openai", "no_response", 3);
        carry.push("anthropic", "500", 7);
        let failed = crate::failover::all_failed_reply(&carry_summaries(&carry));
        assert_eq!(
            failed.message,
            "every provider failed: openai: no response after 3 ms; anthropic: 500 after 7 ms"
        );
        let reply = all_failed_reply(&failed);
        assert_eq!(
            (reply.status, reply.code.as_str()),
            (503, "all_providers_failed")
        );
    }
}
