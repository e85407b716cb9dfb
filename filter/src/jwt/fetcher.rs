//! Remote JWKS for one provider: the JWKS document type of the shared fetch state machine
//! ([`crate::refresh`]), which decides when to fetch, what a result does to the keys, and whether
//! requests should wait, fail, or proceed. The host makes the HTTP call and reports back.
//!
//! A JWKS body with no usable key counts as a failed fetch (the last good keys stay), and an
//! unknown `kid` may trigger an early refetch at most once per `min_refetch_seconds`.

use std::sync::Arc;

use super::keys::{parse_jwks_bytes, KeySet, SkippedKey};
use crate::refresh::{Document, Fetcher, Parsed};

impl Document for KeySet {
    type Skipped = SkippedKey;
    const NAME: &'static str = "JWKS";

    fn parse(body: &[u8]) -> Result<Parsed<Self>, String> {
        let load = parse_jwks_bytes(body).map_err(|e| e.to_string())?;
        if load.keys.is_empty() {
            return Ok(Parsed {
                document: None,
                skipped: load.skipped,
                refusal: Some("the JWKS document has no usable key".into()),
            });
        }
        Ok(Parsed {
            document: Some(load.keys),
            skipped: load.skipped,
            refusal: None,
        })
    }

    fn fingerprint(&self) -> u64 {
        KeySet::fingerprint(self)
    }
}

impl Fetcher<KeySet> {
    /// Called when a token's `kid` is unknown at `now_ms`. Returns true when a refetch is
    /// now due (at most once per `min_refetch_seconds`, never while one is in flight).
    pub fn on_unknown_kid(&mut self, now_ms: u64) -> bool {
        self.on_demand(now_ms)
    }

    /// The current keys, if any fetch succeeded.
    pub fn keys(&self) -> Option<Arc<KeySet>> {
        self.document()
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
    use crate::refresh::{Availability, FetchFailure, RemoteSource, RETRY_MAX_MS};

    const GOOD: &str = r#"{"keys":[{"kty":"oct","kid":"a","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]}"#;
    const GOOD2: &str = r#"{"keys":[{"kty":"oct","kid":"b","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]}"#;

    fn config() -> RemoteSource {
        RemoteSource {
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
        let mut f = Fetcher::<KeySet>::new(config(), 1000);
        assert!(f.needs_fetch(1000));
        assert!(matches!(
            f.availability(1000),
            Availability::Pending {
                wait_until_ms: 4000
            }
        ));
        f.on_fetch_started(1000);
        assert!(!f.needs_fetch(1500));
        assert!(matches!(f.availability(4000), Availability::Unavailable));
        let r = f.on_fetch_result(1200, Ok(GOOD.as_bytes()));
        assert!(r.keys_changed && r.error.is_none());
        assert!(matches!(f.availability(1200), Availability::Ready(_)));
        assert!(!f.needs_fetch(1200 + 599_999));
        assert!(f.needs_fetch(1200 + 600_000));
        assert_eq!(f.request().path, "/jwks");
    }

    #[test]
    fn failure_keeps_last_good_keys_and_backs_off() {
        let mut f = Fetcher::<KeySet>::new(config(), 0);
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
        assert!(matches!(f.availability(607_010), Availability::Ready(_)));
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
        let mut f = Fetcher::<KeySet>::new(config(), 0);
        for _ in 0..30 {
            f.on_fetch_result(0, Err(FetchFailure::Transport("reset".into())));
        }
        assert_eq!(f.next_check_at_ms(), RETRY_MAX_MS);
        assert!(matches!(f.availability(1), Availability::Unavailable));
    }

    #[test]
    fn unknown_kid_refetch_is_rate_limited() {
        let mut f = Fetcher::<KeySet>::new(config(), 0);
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
        let mut f = Fetcher::<KeySet>::new(config(), 0);
        f.on_fetch_started(0);
        assert!(!f.needs_fetch(2_999));
        assert!(f.needs_fetch(3_000));
    }
}
