//! A document fetched through an Envoy cluster and kept fresh: when to fetch, what a fetch result
//! does to the document in force, and whether requests should wait, fail, or proceed. Pure: the
//! host makes the HTTP call ([`Fetcher::request`]), runs the timers, and reports results back.
//!
//! One state machine serves every remote document: the JWT key set (`jwt::fetcher`) and the
//! virtual API key set (`keys::fetcher`). The document type decides only how a body is parsed.
//!
//! * Before the first fetch completes, the document is `Pending` until `initial_wait_ms` after
//!   creation, so the host may hold early requests (bounded); afterwards `Unavailable`.
//! * A successful fetch replaces the document and schedules the next refresh
//!   `refresh_seconds` later. Refused entries are reported, not fatal.
//! * A failed fetch (status, transport, bad body, a document its type refuses) keeps the last
//!   good document and retries with backoff: 1 s, 2 s, 4 s … capped at 60 s and at the refresh
//!   period.
//! * A request naming something the document lacks (an unknown `kid`, an unknown key) may
//!   trigger an early refetch at most once per `min_refetch_seconds`.
//! * A fetch that never reports back is considered lost after `timeout_ms` + 1 s.

use std::sync::Arc;

/// First retry delay after a failed fetch, milliseconds.
pub const RETRY_BASE_MS: u64 = 1000;
/// Largest retry delay, milliseconds.
pub const RETRY_MAX_MS: u64 = 60_000;
/// Extra time beyond the fetch timeout before an unanswered fetch is considered lost.
pub const LOST_FETCH_GRACE_MS: u64 = 1000;

/// Where a remote document comes from and how often it is refreshed (validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSource {
    /// Envoy cluster.
    pub cluster: String,
    /// `:authority` of the fetch.
    pub authority: String,
    /// `:path` of the fetch.
    pub path: String,
    /// Refresh period, seconds.
    pub refresh_seconds: u64,
    /// Fetch timeout, milliseconds.
    pub timeout_ms: u64,
    /// Minimum seconds between refetches triggered by a request.
    pub min_refetch_seconds: u64,
    /// How long requests may wait for the first fetch, milliseconds.
    pub initial_wait_ms: u64,
}

/// A document type that can be fetched: how a 200 body becomes a document.
pub trait Document: Sized {
    /// An entry of the body that was refused (reported, not fatal).
    type Skipped;
    /// What the document is called in messages, e.g. `JWKS`.
    const NAME: &'static str;
    /// Parses a 200 body: the document and its refused entries, or why the body is refused as a
    /// whole (the last good document then stays in force).
    fn parse(body: &[u8]) -> Result<Parsed<Self>, String>;
    /// A value that differs when the document's content differs.
    fn fingerprint(&self) -> u64;
}

/// The outcome of parsing a body.
#[derive(Debug)]
pub struct Parsed<D: Document> {
    /// The document, when the body is acceptable.
    pub document: Option<D>,
    /// Entries refused on the way (also when the body as a whole is refused).
    pub skipped: Vec<D::Skipped>,
    /// Why the body is refused as a whole, when `document` is `None`.
    pub refusal: Option<String>,
}

/// The HTTP request the host sends to fetch the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
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
pub struct FetchReport<S> {
    /// True when the key set in force was replaced by a different one (both documents fetched
    /// today are key sets).
    pub keys_changed: bool,
    /// Entries of the new body that were refused.
    pub skipped: Vec<S>,
    /// Why the fetch counts as failed, if it does.
    pub error: Option<String>,
}

/// Whether requests can be decided now.
#[derive(Debug)]
pub enum Availability<D> {
    /// The document is available.
    Ready(Arc<D>),
    /// No document yet; the first fetch may still bring it until `wait_until_ms`.
    Pending {
        /// Hold requests at most until this time (ms).
        wait_until_ms: u64,
    },
    /// No document, and the initial wait is over.
    Unavailable,
}

impl<D> Clone for Availability<D> {
    fn clone(&self) -> Self {
        match self {
            Self::Ready(d) => Self::Ready(Arc::clone(d)),
            Self::Pending { wait_until_ms } => Self::Pending {
                wait_until_ms: *wait_until_ms,
            },
            Self::Unavailable => Self::Unavailable,
        }
    }
}

/// Fetch state of one remote document.
#[derive(Debug)]
pub struct Fetcher<D> {
    config: RemoteSource,
    document: Option<Arc<D>>,
    fingerprint: Option<u64>,
    created_at_ms: u64,
    in_flight_since_ms: Option<u64>,
    next_fetch_at_ms: u64,
    consecutive_failures: u32,
    last_demand_refetch_ms: Option<u64>,
    last_error: Option<String>,
}

impl<D: Document> Fetcher<D> {
    /// A fetcher created at `now_ms`; it wants its first fetch immediately.
    pub fn new(config: RemoteSource, now_ms: u64) -> Self {
        Fetcher {
            config,
            document: None,
            fingerprint: None,
            created_at_ms: now_ms,
            in_flight_since_ms: None,
            next_fetch_at_ms: now_ms,
            consecutive_failures: 0,
            last_demand_refetch_ms: None,
            last_error: None,
        }
    }

    /// The request to send.
    pub fn request(&self) -> FetchRequest {
        FetchRequest {
            cluster: self.config.cluster.clone(),
            authority: self.config.authority.clone(),
            path: self.config.path.clone(),
            timeout_ms: self.config.timeout_ms,
        }
    }

    /// True when the host should start a fetch now (none in flight, or the one in flight is
    /// lost, and the next fetch time has come).
    pub fn needs_fetch(&self, now_ms: u64) -> bool {
        now_ms >= self.next_check_at_ms()
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
    ) -> FetchReport<D::Skipped> {
        self.in_flight_since_ms = None;
        let name = D::NAME;
        let parsed = match result {
            Err(FetchFailure::Status(code)) => {
                return self.fail(
                    now_ms,
                    format!("{name} fetch returned status {code}"),
                    vec![],
                )
            }
            Err(FetchFailure::Transport(reason)) => {
                let reason: String = reason.chars().take(200).collect();
                return self.fail(now_ms, format!("{name} fetch failed: {reason}"), vec![]);
            }
            Ok(body) => match D::parse(body) {
                Ok(parsed) => parsed,
                Err(reason) => return self.fail(now_ms, reason, vec![]),
            },
        };
        let Some(document) = parsed.document else {
            let reason = parsed
                .refusal
                .unwrap_or_else(|| format!("the {name} document was refused"));
            return self.fail(now_ms, reason, parsed.skipped);
        };
        let fingerprint = document.fingerprint();
        let changed = self.fingerprint != Some(fingerprint);
        if changed {
            self.document = Some(Arc::new(document));
            self.fingerprint = Some(fingerprint);
        }
        self.consecutive_failures = 0;
        self.last_error = None;
        self.next_fetch_at_ms =
            now_ms.saturating_add(self.config.refresh_seconds.saturating_mul(1000));
        FetchReport {
            keys_changed: changed,
            skipped: parsed.skipped,
            error: None,
        }
    }

    fn fail(
        &mut self,
        now_ms: u64,
        reason: String,
        skipped: Vec<D::Skipped>,
    ) -> FetchReport<D::Skipped> {
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

    /// Called when a request names something the document lacks, at `now_ms`. Returns true
    /// when a refetch is now due (at most once per `min_refetch_seconds`, never while one is
    /// in flight).
    pub fn on_demand(&mut self, now_ms: u64) -> bool {
        if self.in_flight_since_ms.is_some() {
            return false;
        }
        let min_gap = self.config.min_refetch_seconds.saturating_mul(1000);
        if let Some(last) = self.last_demand_refetch_ms {
            if now_ms < last.saturating_add(min_gap) {
                return false;
            }
        }
        self.last_demand_refetch_ms = Some(now_ms);
        self.next_fetch_at_ms = self.next_fetch_at_ms.min(now_ms);
        true
    }

    /// Whether requests can be decided at `now_ms`.
    pub fn availability(&self, now_ms: u64) -> Availability<D> {
        if let Some(document) = &self.document {
            return Availability::Ready(Arc::clone(document));
        }
        let wait_until_ms = self
            .created_at_ms
            .saturating_add(self.config.initial_wait_ms);
        if self.consecutive_failures == 0 && now_ms < wait_until_ms {
            Availability::Pending { wait_until_ms }
        } else {
            Availability::Unavailable
        }
    }

    /// The current document, if any fetch succeeded.
    pub fn document(&self) -> Option<Arc<D>> {
        self.document.clone()
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
