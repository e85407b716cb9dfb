//! JWT keys of one VM: remote JWKS fetched through an Envoy cluster with an HTTP callout,
//! refreshed from the root context's tick, plus the per-worker verified-token cache. When to
//! fetch, which keys serve and what a token is worth are decided by `crate::jwt`; this module
//! sends the fetches through the [`Host`] and hands the answers back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::host::{Body, Host, HttpCall, Map};

use crate::jwt::settings::JwksSource;
use crate::jwt::{JwtSettings, KeySet, VerifiedTokenCache};
use crate::refresh::{Availability, FetchFailure, Fetcher};

/// JWT state of one VM (one Envoy worker).
pub struct JwtRuntime {
    /// The validated settings.
    pub settings: Arc<JwtSettings>,
    /// One fetcher per provider with a remote JWKS (`None` for local keys).
    fetchers: Vec<Option<Fetcher<KeySet>>>,
    /// Verified tokens of this worker.
    pub cache: VerifiedTokenCache,
    /// Fetches in flight: callout token → provider index.
    in_flight: HashMap<u32, usize>,
}

impl JwtRuntime {
    /// Creates the runtime; remote providers start with no keys.
    pub fn new(settings: Arc<JwtSettings>, now_ms: u64) -> Self {
        let fetchers = settings
            .providers
            .iter()
            .map(|p| match &p.jwks {
                JwksSource::Remote(remote) => Some(Fetcher::new(remote.clone(), now_ms)),
                JwksSource::Local(_) => None,
            })
            .collect();
        let cache = VerifiedTokenCache::new(settings.cache_size);
        Self {
            settings,
            fetchers,
            cache,
            in_flight: HashMap::new(),
        }
    }

    /// True when some provider fetches its keys remotely (the root then needs a tick).
    pub fn has_remote(&self) -> bool {
        self.fetchers.iter().any(Option::is_some)
    }

    /// Key availability of every provider, in provider order.
    pub fn availability(&self, now_ms: u64) -> Vec<Availability<KeySet>> {
        self.settings
            .providers
            .iter()
            .zip(self.fetchers.iter())
            .map(|(p, f)| match (&p.jwks, f) {
                (JwksSource::Local(keys), _) => Availability::Ready(Arc::clone(keys)),
                (JwksSource::Remote(_), Some(fetcher)) => fetcher.availability(now_ms),
                (JwksSource::Remote(_), None) => Availability::Unavailable,
            })
            .collect()
    }

    /// Starts a fetch of `provider`'s key set from the current context. Returns the callout
    /// token, or `None` when the provider has local keys or the host refused the call.
    pub fn dispatch<H: Host>(&mut self, host: &mut H, provider: usize, now_ms: u64) -> Option<u32> {
        let fetcher = self.fetchers.get_mut(provider)?.as_mut()?;
        let req = fetcher.request();
        let headers = [
            (":method", "GET"),
            (":path", req.path.as_str()),
            (":authority", req.authority.as_str()),
            ("accept", "application/json"),
        ];
        match host.http_call(&HttpCall {
            cluster: &req.cluster,
            headers: &headers,
            body: None,
            timeout: Duration::from_millis(req.timeout_ms),
        }) {
            Some(token) => {
                fetcher.on_fetch_started(now_ms);
                self.in_flight.insert(token, provider);
                Some(token)
            }
            None => {
                let _ = fetcher.on_fetch_result(
                    now_ms,
                    Err(FetchFailure::Transport("dispatch refused".into())),
                );
                host.log(
                    log::Level::Warn,
                    &format!(
                        "tollgate: JWKS fetch for cluster {} refused by the host",
                        req.cluster
                    ),
                );
                None
            }
        }
    }

    /// Applies the response of callout `token` (read from the host). Returns the provider it
    /// was for, or `None` when the token is not a JWKS fetch.
    pub fn complete<H: Host>(
        &mut self,
        host: &mut H,
        token: u32,
        body_size: usize,
        now_ms: u64,
    ) -> Option<usize> {
        let provider = self.in_flight.remove(&token)?;
        let status = host
            .header(Map::CalloutResponse, ":status")
            .and_then(|s| s.parse::<u16>().ok());
        let body = host.body(Body::CalloutResponse, body_size);
        let result = match status {
            Some(200) => Ok(body.as_slice()),
            Some(code) => Err(FetchFailure::Status(code)),
            None => Err(FetchFailure::Transport(
                "no response (timeout or reset)".into(),
            )),
        };
        let name = self
            .settings
            .providers
            .get(provider)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        if let Some(fetcher) = self.fetchers.get_mut(provider).and_then(Option::as_mut) {
            let report = fetcher.on_fetch_result(now_ms, result);
            let line = match (&report.error, report.keys_changed) {
                (Some(err), _) => {
                    format!("tollgate: JWKS of provider {name}: {err}; keeping the last good keys")
                }
                (None, true) => format!("tollgate: JWKS of provider {name} updated"),
                (None, false) => String::new(),
            };
            if !line.is_empty() {
                let level = if report.error.is_some() {
                    log::Level::Warn
                } else {
                    log::Level::Info
                };
                host.log(level, &line);
            }
            for skipped in report.skipped {
                host.log(
                    log::Level::Warn,
                    &format!(
                        "tollgate: JWKS of provider {name}: key {} skipped: {}",
                        skipped.index, skipped.reason
                    ),
                );
            }
        }
        Some(provider)
    }

    /// Rate-limited refetch after a token named an unknown `kid`; true when a fetch may start.
    pub fn unknown_kid(&mut self, provider: usize, now_ms: u64) -> bool {
        self.fetchers
            .get_mut(provider)
            .and_then(Option::as_mut)
            .is_some_and(|f| !f.is_fetching() && f.on_unknown_kid(now_ms))
    }

    /// Periodic work from the root context: start the fetches that are due.
    pub fn tick<H: Host>(&mut self, host: &mut H, now_ms: u64) {
        let due: Vec<usize> = self
            .fetchers
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.as_ref().filter(|f| f.needs_fetch(now_ms)).map(|_| i))
            .collect();
        for provider in due {
            let _ = self.dispatch(host, provider, now_ms);
        }
    }
}
