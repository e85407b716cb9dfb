//! Per-user token budgets and request rates, shared by every worker of an Envoy process.
//!
//! Each (user, window) pair is one record in proxy-wasm shared data, updated with
//! compare-and-swap so concurrent workers never lose an update. Admission *reserves* an estimate
//! (prompt estimate + requested `max_tokens`) up front; when the request completes, the
//! reservation is released and the actual usage charged. So concurrent requests cannot overshoot
//! a budget by more than one reservation's estimation error, unlike charge-after-the-fact schemes
//! that let the request crossing the budget through.
//!
//! The module is pure: shared data is reached through the [`SharedStore`] trait, implemented by
//! the host layer over proxy-wasm and by [`MemoryStore`](crate::shared_store::MemoryStore) in tests.

use crate::shared_store::{cas_update, SharedStore};

/// One budget window as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowLimit {
    /// Window length in seconds (60 = per minute, 86400 = per day).
    pub period_seconds: u64,
    /// Token budget in the window (input + output), if limited.
    pub max_tokens: Option<u64>,
    /// Request budget in the window, if limited.
    pub max_requests: Option<u64>,
}

/// The state of one (user, window) record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowState {
    /// Start of the current window (Unix seconds, aligned to the period).
    pub window_start: u64,
    /// Tokens charged in this window.
    pub used_tokens: u64,
    /// Tokens reserved by requests in flight.
    pub reserved_tokens: u64,
    /// Requests admitted in this window.
    pub requests: u64,
    /// Warning thresholds already reported in this window (bit i = threshold i).
    pub warned: u32,
}

impl WindowState {
    /// Encodes as `start used reserved requests warned` (ASCII, stable across versions).
    pub fn encode(&self) -> Vec<u8> {
        format!(
            "{} {} {} {} {}",
            self.window_start, self.used_tokens, self.reserved_tokens, self.requests, self.warned
        )
        .into_bytes()
    }

    /// Decodes [`WindowState::encode`]'s format; `None` when malformed.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut it = text.split(' ').map(|p| p.parse::<u64>().ok());
        let state = Self {
            window_start: it.next()??,
            used_tokens: it.next()??,
            reserved_tokens: it.next()??,
            requests: it.next()??,
            warned: u32::try_from(it.next()??).ok()?,
        };
        Some(state)
    }

    /// The state as seen at `now`: reset when the window rolled over.
    fn current(self, now: u64, period: u64) -> Self {
        let start = window_start(now, period);
        if self.window_start == start {
            self
        } else {
            Self {
                window_start: start,
                ..Self::default()
            }
        }
    }
}

/// Aligns `now` down to the start of its window.
pub fn window_start(now: u64, period: u64) -> u64 {
    if period == 0 {
        now
    } else {
        now - now % period
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `tokens` or `requests`.
    pub dimension: &'static str,
    /// The window's length in seconds.
    pub period_seconds: u64,
    /// Seconds until the window resets.
    pub retry_after: u64,
    /// The limit that would be exceeded.
    pub limit: u64,
}

/// The rate-limit headers' content for the tightest token window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenHeaders {
    /// The token limit.
    pub limit: u64,
    /// Tokens still available (after reservations).
    pub remaining: u64,
    /// Seconds until the window resets.
    pub reset_seconds: u64,
}

/// A successful admission: what to release and charge when the request completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// Tokens reserved in each window (same order as the limits).
    pub reserved: u64,
    /// Headers for the response.
    pub headers: Option<TokenHeaders>,
}

/// A warning threshold crossed by a charge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Warning {
    /// The threshold, e.g. 0.8.
    pub threshold: f64,
    /// The window's length in seconds.
    pub period_seconds: u64,
    /// Tokens used after the charge.
    pub used: u64,
    /// The window's token limit.
    pub limit: u64,
}

/// Budget checks for one configured set of windows.
#[derive(Debug, Clone, PartialEq)]
pub struct Budgets {
    /// The windows, each applied independently.
    pub windows: Vec<WindowLimit>,
    /// Fractions of a token budget at which to warn once per window, ascending.
    pub warn_thresholds: Vec<f64>,
    /// Key prefix in shared data.
    pub key_prefix: String,
}

impl Budgets {
    fn key(&self, user: &str, period: u64) -> String {
        format!("{}{}:{}", self.key_prefix, period, user)
    }

    /// Applies `update` to the (user, window) record under CAS ([`cas_update`]). Returns the new
    /// state, or the update's refusal. Gives up (returns `Ok(None)`, failing open for that
    /// window) when the store keeps refusing.
    fn update<T>(
        &self,
        store: &dyn SharedStore,
        key: &str,
        now: u64,
        period: u64,
        mut update: impl FnMut(&mut WindowState) -> Result<T, Refusal>,
    ) -> Result<Option<(WindowState, T)>, Refusal> {
        cas_update(store, key, |stored| {
            let state = stored.and_then(WindowState::decode).unwrap_or_default();
            let mut next = state.current(now, period);
            match update(&mut next) {
                Ok(out) => (Some(next.encode()), Ok((next, out))),
                Err(refusal) => (None, Err(refusal)),
            }
        })
        .transpose()
    }

    /// Admits a request for `user` at `now`, reserving `estimate` tokens in every window, or
    /// refuses it. A refusal in a later window releases reservations made in earlier ones.
    pub fn admit(
        &self,
        store: &dyn SharedStore,
        user: &str,
        now: u64,
        estimate: u64,
    ) -> Result<Admission, Refusal> {
        let mut done: Vec<u64> = Vec::new();
        let mut headers: Option<TokenHeaders> = None;
        for w in &self.windows {
            let key = self.key(user, w.period_seconds);
            let result = self.update(store, &key, now, w.period_seconds, |s| {
                let retry_after = (s.window_start + w.period_seconds)
                    .saturating_sub(now)
                    .max(1);
                if let Some(max) = w.max_requests {
                    if s.requests + 1 > max {
                        return Err(Refusal {
                            dimension: "requests",
                            period_seconds: w.period_seconds,
                            retry_after,
                            limit: max,
                        });
                    }
                }
                if let Some(max) = w.max_tokens {
                    let committed = s.used_tokens.saturating_add(s.reserved_tokens);
                    // Like OpenAI's own limits, a request's reservation (prompt + max_tokens)
                    // must fit in what is left: that is what bounds concurrent overshoot.
                    if committed >= max {
                        return Err(Refusal {
                            dimension: "tokens",
                            period_seconds: w.period_seconds,
                            retry_after,
                            limit: max,
                        });
                    }
                    if committed.saturating_add(estimate) > max && estimate > 0 {
                        let available = max - committed;
                        if estimate > available {
                            return Err(Refusal {
                                dimension: "tokens",
                                period_seconds: w.period_seconds,
                                retry_after,
                                limit: max,
                            });
                        }
                    }
                }
                s.requests += 1;
                s.reserved_tokens = s.reserved_tokens.saturating_add(estimate);
                Ok(())
            });
            match result {
                Ok(Some((state, ()))) => {
                    done.push(w.period_seconds);
                    if let Some(max) = w.max_tokens {
                        let remaining = max.saturating_sub(
                            state.used_tokens.saturating_add(state.reserved_tokens),
                        );
                        let reset = (state.window_start + w.period_seconds).saturating_sub(now);
                        let tighter = headers.is_none_or(|h| remaining < h.remaining);
                        if tighter {
                            headers = Some(TokenHeaders {
                                limit: max,
                                remaining,
                                reset_seconds: reset,
                            });
                        }
                    }
                }
                Ok(None) => {}
                Err(refusal) => {
                    for period in done {
                        let key = self.key(user, period);
                        let _ = self.update(store, &key, now, period, |s| {
                            s.reserved_tokens = s.reserved_tokens.saturating_sub(estimate);
                            s.requests = s.requests.saturating_sub(1);
                            Ok(())
                        });
                    }
                    return Err(refusal);
                }
            }
        }
        Ok(Admission {
            reserved: estimate,
            headers,
        })
    }

    /// Releases a reservation and charges the actual tokens. Returns thresholds crossed now
    /// (each reported once per window).
    pub fn settle(
        &self,
        store: &dyn SharedStore,
        user: &str,
        now: u64,
        reserved: u64,
        actual: u64,
    ) -> Vec<Warning> {
        let mut warnings = Vec::new();
        for w in &self.windows {
            let key = self.key(user, w.period_seconds);
            let mut crossed: Vec<Warning> = Vec::new();
            let _ = self.update(store, &key, now, w.period_seconds, |s| {
                crossed.clear();
                s.reserved_tokens = s.reserved_tokens.saturating_sub(reserved);
                s.used_tokens = s.used_tokens.saturating_add(actual);
                if let Some(max) = w.max_tokens.filter(|m| *m > 0) {
                    for (i, t) in self.warn_thresholds.iter().enumerate() {
                        let bit = 1u32 << (i.min(31) as u32);
                        let reached = s.used_tokens as f64 >= t * max as f64;
                        if reached && s.warned & bit == 0 {
                            s.warned |= bit;
                            crossed.push(Warning {
                                threshold: *t,
                                period_seconds: w.period_seconds,
                                used: s.used_tokens,
                                limit: max,
                            });
                        }
                    }
                }
                Ok(())
            });
            warnings.extend(crossed);
        }
        warnings
    }

    /// The current state of every window for `user` (status endpoint, tests).
    pub fn snapshot(
        &self,
        store: &dyn SharedStore,
        user: &str,
        now: u64,
    ) -> Vec<(u64, WindowState)> {
        self.windows
            .iter()
            .map(|w| {
                let state = store
                    .get(&self.key(user, w.period_seconds))
                    .and_then(|(b, _)| WindowState::decode(&b))
                    .unwrap_or_default()
                    .current(now, w.period_seconds);
                (w.period_seconds, state)
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::shared_store::MemoryStore;

    fn budgets(max_tokens: u64) -> Budgets {
        Budgets {
            windows: vec![WindowLimit {
                period_seconds: 60,
                max_tokens: Some(max_tokens),
                max_requests: None,
            }],
            warn_thresholds: vec![0.5, 0.8],
            key_prefix: "b:".into(),
        }
    }

    #[test]
    fn state_round_trips() {
        let s = WindowState {
            window_start: 60,
            used_tokens: 5,
            reserved_tokens: 7,
            requests: 2,
            warned: 3,
        };
        assert_eq!(WindowState::decode(&s.encode()), Some(s));
        assert_eq!(WindowState::decode(b"garbage"), None);
    }

    #[test]
    fn reservations_stop_concurrent_requests_at_the_budget() {
        let store = MemoryStore::default();
        let b = budgets(1000);
        let mut admitted = 0;
        for _ in 0..10 {
            if b.admit(&store, "alice", 120, 300).is_ok() {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 3, "3 × 300 fit in 1000, the 4th does not");
    }

    /// Another worker's first admission lands between this one's read (key absent) and write:
    /// both reservations must count. (Seen in Envoy with two workers: 10 admitted where 9 fit.)
    #[test]
    fn two_workers_creating_the_same_window_both_reserve() {
        struct Racing<'a> {
            inner: &'a MemoryStore,
            rival: std::cell::Cell<Option<(&'a Budgets, u64)>>,
        }
        impl SharedStore for Racing<'_> {
            fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
                self.inner.get(key)
            }
            fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
                if let Some((budgets, estimate)) = self.rival.take() {
                    budgets.admit(self.inner, "alice", 120, estimate).unwrap();
                }
                self.inner.set(key, value, cas)
            }
        }
        let store = MemoryStore::default();
        let b = budgets(1000);
        let racing = Racing {
            inner: &store,
            rival: std::cell::Cell::new(Some((&b, 300))),
        };
        b.admit(&racing, "alice", 120, 200).unwrap();
        assert_eq!(b.snapshot(&store, "alice", 120)[0].1.reserved_tokens, 500);
    }

    #[test]
    fn settle_releases_reservation_and_charges_actual() {
        let store = MemoryStore::default();
        let b = budgets(1000);
        let a = b.admit(&store, "bob", 120, 400).unwrap();
        b.settle(&store, "bob", 121, a.reserved, 100);
        let snap = b.snapshot(&store, "bob", 121);
        assert_eq!(snap[0].1.used_tokens, 100);
        assert_eq!(snap[0].1.reserved_tokens, 0);
    }

    #[test]
    fn budget_exhausted_refuses_with_retry_after() {
        let store = MemoryStore::default();
        let b = budgets(100);
        let a = b.admit(&store, "c", 130, 10).unwrap();
        b.settle(&store, "c", 131, a.reserved, 150);
        let r = b.admit(&store, "c", 135, 10).unwrap_err();
        assert_eq!(r.dimension, "tokens");
        assert_eq!(r.retry_after, 180 - 135);
    }

    #[test]
    fn window_rolls_over() {
        let store = MemoryStore::default();
        let b = budgets(100);
        let a = b.admit(&store, "d", 10, 10).unwrap();
        b.settle(&store, "d", 11, a.reserved, 100);
        assert!(b.admit(&store, "d", 30, 10).is_err());
        assert!(b.admit(&store, "d", 61, 10).is_ok());
    }

    #[test]
    fn warnings_fire_once_per_window() {
        let store = MemoryStore::default();
        let b = budgets(100);
        let a = b.admit(&store, "e", 0, 1).unwrap();
        let w = b.settle(&store, "e", 1, a.reserved, 60);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].threshold, 0.5);
        let a = b.admit(&store, "e", 2, 1).unwrap();
        let w = b.settle(&store, "e", 3, a.reserved, 1);
        assert!(w.is_empty());
        let a = b.admit(&store, "e", 4, 1).unwrap();
        let w = b.settle(&store, "e", 5, a.reserved, 30);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].threshold, 0.8);
    }

    #[test]
    fn request_rate_limit() {
        let store = MemoryStore::default();
        let b = Budgets {
            windows: vec![WindowLimit {
                period_seconds: 60,
                max_tokens: None,
                max_requests: Some(2),
            }],
            warn_thresholds: vec![],
            key_prefix: "r:".into(),
        };
        assert!(b.admit(&store, "f", 0, 0).is_ok());
        assert!(b.admit(&store, "f", 0, 0).is_ok());
        assert_eq!(
            b.admit(&store, "f", 0, 0).unwrap_err().dimension,
            "requests"
        );
    }

    #[test]
    fn refusal_in_a_later_window_releases_earlier_reservations() {
        let store = MemoryStore::default();
        let b = Budgets {
            windows: vec![
                WindowLimit {
                    period_seconds: 60,
                    max_tokens: Some(1000),
                    max_requests: None,
                },
                WindowLimit {
                    period_seconds: 86400,
                    max_tokens: Some(50),
                    max_requests: None,
                },
            ],
            warn_thresholds: vec![],
            key_prefix: "m:".into(),
        };
        assert!(b.admit(&store, "g", 100, 100).is_err());
        let snap = b.snapshot(&store, "g", 100);
        assert_eq!(snap[0].1.reserved_tokens, 0);
        assert_eq!(snap[0].1.requests, 0);
    }

    #[test]
    fn headers_report_the_tightest_window() {
        let store = MemoryStore::default();
        let b = budgets(1000);
        let a = b.admit(&store, "h", 90, 200).unwrap();
        let h = a.headers.unwrap();
        assert_eq!((h.limit, h.remaining, h.reset_seconds), (1000, 800, 30));
    }
}
