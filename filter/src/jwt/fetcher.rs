//! Remote JWKS state machine for one provider: when to fetch, what a fetch result does to the
//! keys, and whether requests should wait, fail, or proceed. Pure: the host layer makes the
//! HTTP call (`JwksFetcher::request`), runs the timers, and reports results back.
//!
//! * Before the first fetch completes, keys are `Pending` until `initial_wait_ms` after
//!   creation, so the host may hold early requests (bounded); afterwards `Unavailable`.
//! * A successful fetch with at least one usable key replaces the keys and schedules the next
//!   refresh `refresh_seconds` later. Refused keys are reported, not fatal.
//! * A failed fetch (status, transport, bad body, no usable key) keeps the last good keys and
//!   retries with backoff: 1 s, 2 s, 4 s … capped at 60 s and at the refresh period.
//! * An unknown `kid` may trigger an early refetch at most once per `min_refetch_seconds`.
//! * A fetch that never reports back is considered lost after `timeout_ms` + 1 s.

use std::sync::Arc;

use super::keys::{parse_jwks_bytes, KeySet, SkippedKey};
use super::settings::RemoteJwksConfig;

/// First retry delay after a failed fetch, milliseconds.
pub const RETRY_BASE_MS: u64 = 1000;
/// Largest retry delay, milliseconds.
pub const RETRY_MAX_MS: u64 = 60_000;
/// Extra time beyond the fetch timeout before an unanswered fetch is considered lost.
pub const LOST_FETCH_GRACE_MS: u64 = 1000;

/// The HTTP request the host sends to fetch the key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksRequest {
    /// Envoy cluster.
    pub cluster: String,
    /// `:authority`.
    pub authority: String,
    /// `:path`.
    pub path: String,
    /// Timeout, milliseconds.
    pub timeout_ms: u64,
}

/// Why a fetch failed, as the host saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchFailure {
    /// The response status was not 200.
    Status(u16),
    /// No response (reset, timeout, cluster missing…), with the host's description.
    Transport(String),
}

/// What a fetch result changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchReport {
    /// True when the keys were replaced by a different key set.
    pub keys_changed: bool,
    /// Keys of the new document that were refused.
    pub skipped: Vec<SkippedKey>,
    /// Why the fetch counts as failed, if it does.
    pub error: Option<String>,
}

/// Whether requests can be verified now.
#[derive(Debug, Clone)]
pub enum KeyAvailability {
    /// Keys are available.
    Ready(Arc<KeySet>),
    /// No keys yet; the first fetch may still bring them until `wait_until_ms`.
    Pending {
        /// Hold requests at most until this time (ms).
        wait_until_ms: u64,
    },
    /// No keys, and the initial wait is over: refuse with `no_keys_yet`.
    Unavailable,
}

/// Fetch state of one provider's remote key set.
#[derive(Debug)]
pub struct JwksFetcher {
    config: RemoteJwksConfig,
    keys: Option<Arc<KeySet>>,
    created_at_ms: u64,
    in_flight_since_ms: Option<u64>,
    next_fetch_at_ms: u64,
    consecutive_failures: u32,
    last_unknown_kid_refetch_ms: Option<u64>,
    last_error: Option<String>,
}

impl JwksFetcher {
    /// A fetcher created at `now_ms`; it wants its first fetch immediately.
    pub fn new(config: RemoteJwksConfig, now_ms: u64) -> Self {
        JwksFetcher {
            config,
            keys: None,
            created_at_ms: now_ms,
            in_flight_since_ms: None,
            next_fetch_at_ms: now_ms,
            consecutive_failures: 0,
            last_unknown_kid_refetch_ms: None,
            last_error: None,
        }
    }

    /// The request to send.
    pub fn request(&self) -> JwksRequest {
        JwksRequest {
            cluster: self.config.cluster.clone(),
            authority: self.config.authority.clone(),
            path: self.config.path.clone(),
            timeout_ms: self.config.timeout_ms,
        }
    }

    /// True when the host should start a fetch now (none in flight, or the one in flight is
    /// lost, and the next fetch time has come).
    pub fn needs_fetch(&self, now_ms: u64) -> bool {
        match self.in_flight_since_ms {
            Some(since) => {
                now_ms
                    >= since
                        .saturating_add(self.config.timeout_ms)
                        .saturating_add(LOST_FETCH_GRACE_MS)
            }
            None => now_ms >= self.next_fetch_at_ms,
        }
    }

    /// Records that the host started a fetch at `now_ms`.
    pub fn on_fetch_started(&mut self, now_ms: u64) {
        self.in_flight_since_ms = Some(now_ms);
    }

    /// True while a fetch is in flight.
    pub fn is_fetching(&self) -> bool {
        self.in_flight_since_ms.is_some()
    }

    /// Applies a fetch result received at `now_ms`: `Ok(body)` for a 200 response.
    pub fn on_fetch_result(
        &mut self,
        now_ms: u64,
        result: Result<&[u8], FetchFailure>,
    ) -> FetchReport {
        self.in_flight_since_ms = None;
        let outcome = match result {
            Err(FetchFailure::Status(code)) => Err(format!("JWKS fetch returned status {code}")),
            Err(FetchFailure::Transport(reason)) => Err(format!(
                "JWKS fetch failed: {}",
                reason.chars().take(200).collect::<String>()
            )),
            Ok(body) => match parse_jwks_bytes(body) {
                Err(e) => Err(e.to_string()),
                Ok(load) if load.keys.is_empty() => {
                    return self.fail(
                        now_ms,
                        "the JWKS document has no usable key".into(),
                        load.skipped,
                    )
                }
                Ok(load) => Ok(load),
            },
        };
        match outcome {
            Err(reason) => self.fail(now_ms, reason, Vec::new()),
            Ok(load) => {
                let changed = self
                    .keys
                    .as_ref()
                    .is_none_or(|k| k.fingerprint() != load.keys.fingerprint());
                if changed {
                    self.keys = Some(Arc::new(load.keys));
                }
                self.consecutive_failures = 0;
                self.last_error = None;
                self.next_fetch_at_ms =
                    now_ms.saturating_add(self.config.refresh_seconds.saturating_mul(1000));
                FetchReport {
                    keys_changed: changed,
                    skipped: load.skipped,
                    error: None,
                }
            }
        }
    }

    fn fail(&mut self, now_ms: u64, reason: String, skipped: Vec<SkippedKey>) -> FetchReport {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let shift = self.consecutive_failures.saturating_sub(1).min(16);
        let delay = RETRY_BASE_MS
            .saturating_mul(1u64 << shift)
            .min(RETRY_MAX_MS)
            .min(self.config.refresh_seconds.saturating_mul(1000));
        self.next_fetch_at_ms = now_ms.saturating_add(delay);
        self.last_error = Some(reason.clone());
        FetchReport {
            keys_changed: false,
            skipped,
            error: Some(reason),
        }
    }

    /// Called when a token's `kid` is unknown at `now_ms`. Returns true when a refetch is
    /// now due (at most once per `min_refetch_seconds`, never while one is in flight).
    pub fn on_unknown_kid(&mut self, now_ms: u64) -> bool {
        if self.in_flight_since_ms.is_some() {
            return false;
        }
        let min_gap = self.config.min_refetch_seconds.saturating_mul(1000);
        if let Some(last) = self.last_unknown_kid_refetch_ms {
            if now_ms < last.saturating_add(min_gap) {
                return false;
            }
        }
        self.last_unknown_kid_refetch_ms = Some(now_ms);
        self.next_fetch_at_ms = self.next_fetch_at_ms.min(now_ms);
        true
    }

    /// Whether requests can be verified at `now_ms`.
    pub fn availability(&self, now_ms: u64) -> KeyAvailability {
        if let Some(keys) = &self.keys {
            return KeyAvailability::Ready(Arc::clone(keys));
        }
        let wait_until_ms = self
            .created_at_ms
            .saturating_add(self.config.initial_wait_ms);
        if self.consecutive_failures == 0 && now_ms < wait_until_ms {
            KeyAvailability::Pending { wait_until_ms }
        } else {
            KeyAvailability::Unavailable
        }
    }

    /// The current keys, if any fetch succeeded.
    pub fn keys(&self) -> Option<Arc<KeySet>> {
        self.keys.clone()
    }

    /// When the host should next call `needs_fetch` (ms): the next fetch time, or the time an
    /// in-flight fetch is considered lost.
    pub fn next_check_at_ms(&self) -> u64 {
        match self.in_flight_since_ms {
            Some(since) => since
                .saturating_add(self.config.timeout_ms)
                .saturating_add(LOST_FETCH_GRACE_MS),
            None => self.next_fetch_at_ms,
        }
    }

    /// The reason of the last failure, cleared by a success.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Failures since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"keys":[{"kty":"oct","kid":"a","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]}"#;
    const GOOD2: &str = r#"{"keys":[{"kty":"oct","kid":"b","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]}"#;

    fn config() -> RemoteJwksConfig {
        RemoteJwksConfig {
            cluster: "idp".into(),
            authority: "idp.example".into(),
            path: "/jwks".into(),
            refresh_seconds: 600,
            timeout_ms: 2000,
            min_refetch_seconds: 30,
            initial_wait_ms: 3000,
        }
    }

    #[test]
    fn first_fetch_pending_then_ready() {
        let mut f = JwksFetcher::new(config(), 1000);
        assert!(f.needs_fetch(1000));
        assert!(matches!(
            f.availability(1000),
            KeyAvailability::Pending {
                wait_until_ms: 4000
            }
        ));
        f.on_fetch_started(1000);
        assert!(!f.needs_fetch(1500));
        assert!(matches!(f.availability(4000), KeyAvailability::Unavailable));
        let r = f.on_fetch_result(1200, Ok(GOOD.as_bytes()));
        assert!(r.keys_changed && r.error.is_none());
        assert!(matches!(f.availability(1200), KeyAvailability::Ready(_)));
        assert!(!f.needs_fetch(1200 + 599_999));
        assert!(f.needs_fetch(1200 + 600_000));
        assert_eq!(f.request().path, "/jwks");
    }

    #[test]
    fn failure_keeps_last_good_keys_and_backs_off() {
        let mut f = JwksFetcher::new(config(), 0);
        f.on_fetch_started(0);
        f.on_fetch_result(10, Ok(GOOD.as_bytes()));
        let fp = f.keys().unwrap().fingerprint();
        // Refresh fails three ways; keys stay.
        let r = f.on_fetch_result(600_010, Err(FetchFailure::Status(503)));
        assert_eq!(r.error.as_deref(), Some("JWKS fetch returned status 503"));
        assert_eq!(f.next_check_at_ms(), 601_010);
        f.on_fetch_result(601_010, Ok(b"not json"));
        assert_eq!(f.next_check_at_ms(), 603_010);
        f.on_fetch_result(603_010, Ok(br#"{"keys":[{"kty":"oct","k":"c2hvcnQ"}]}"#));
        assert_eq!(f.next_check_at_ms(), 607_010);
        assert_eq!(f.consecutive_failures(), 3);
        assert_eq!(f.keys().unwrap().fingerprint(), fp);
        assert!(matches!(f.availability(607_010), KeyAvailability::Ready(_)));
        // Success resets.
        let r = f.on_fetch_result(607_020, Ok(GOOD2.as_bytes()));
        assert!(r.keys_changed);
        assert_eq!(f.consecutive_failures(), 0);
        assert!(f.last_error().is_none());
        // Same document again: not a change.
        let r = f.on_fetch_result(607_030, Ok(GOOD2.as_bytes()));
        assert!(!r.keys_changed);
    }

    #[test]
    fn backoff_is_capped() {
        let mut f = JwksFetcher::new(config(), 0);
        for _ in 0..30 {
            f.on_fetch_result(0, Err(FetchFailure::Transport("reset".into())));
        }
        assert_eq!(f.next_check_at_ms(), RETRY_MAX_MS);
        assert!(matches!(f.availability(1), KeyAvailability::Unavailable));
    }

    #[test]
    fn unknown_kid_refetch_is_rate_limited() {
        let mut f = JwksFetcher::new(config(), 0);
        f.on_fetch_result(0, Ok(GOOD.as_bytes()));
        assert!(!f.needs_fetch(5_000));
        assert!(f.on_unknown_kid(5_000));
        assert!(f.needs_fetch(5_000));
        f.on_fetch_started(5_000);
        assert!(!f.on_unknown_kid(5_100), "in flight");
        f.on_fetch_result(5_200, Ok(GOOD.as_bytes()));
        assert!(!f.on_unknown_kid(20_000), "within 30 s");
        assert!(!f.needs_fetch(20_000));
        assert!(f.on_unknown_kid(35_000));
    }

    #[test]
    fn lost_fetch_is_retried() {
        let mut f = JwksFetcher::new(config(), 0);
        f.on_fetch_started(0);
        assert!(!f.needs_fetch(2_999));
        assert!(f.needs_fetch(3_000));
    }
}
