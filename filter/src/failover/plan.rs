//! Route selection: which providers one request will try, in order, given each provider's
//! circuit and back-off window in shared data.
//!
//! Closed circuits outside a back-off window are candidates. Open circuits still cooling down,
//! probes held by another worker and providers inside a provider-announced back-off window are
//! skipped. A provider whose cooldown has elapsed needs a half-open probe, which exactly one
//! worker may take (CAS-claimed): when it is the first candidate (every provider before it was
//! skipped, the all-skipped case included) the probe is claimed here, since it will be attempted
//! at once; later in the list it stays a candidate and the attempt tracker claims the probe only
//! if the request actually reaches it.

use crate::shared_store::SharedStore;

use super::backoff_hint::backoff_until;
use super::circuit::{read_circuit, try_claim_probe, CircuitRecord, ProbeClaim};
use super::settings::{FailoverSettings, ProviderSettings};

/// A provider the request will try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedProvider {
    /// Provider name.
    pub name: String,
    /// Index into [`FailoverSettings::providers`].
    pub index: usize,
    /// Model name to send to this provider.
    pub provider_model: String,
    /// This worker holds the half-open probe: send exactly one attempt and record its result.
    pub probe: bool,
}

/// Why a provider is left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Its circuit is open until `until_ms`.
    CircuitOpen {
        /// End of the cooldown (Unix ms).
        until_ms: u64,
    },
    /// Another worker is probing it; the claim expires at `until_ms`.
    ProbeInFlight {
        /// Expiry of the probe claim (Unix ms).
        until_ms: u64,
    },
    /// The provider asked for no traffic before `until_ms`.
    BackingOff {
        /// End of the back-off window (Unix ms).
        until_ms: u64,
    },
}

impl SkipReason {
    /// When the provider may be tried again (Unix ms).
    pub fn until_ms(self) -> u64 {
        match self {
            Self::CircuitOpen { until_ms }
            | Self::ProbeInFlight { until_ms }
            | Self::BackingOff { until_ms } => until_ms,
        }
    }

    /// Stable snake_case label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::CircuitOpen { .. } => "circuit_open",
            Self::ProbeInFlight { .. } => "probe_in_flight",
            Self::BackingOff { .. } => "backing_off",
        }
    }
}

/// The providers one request will try, and those left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Providers to try, in order.
    pub attempts: Vec<PlannedProvider>,
    /// Providers left out, with why, in route order.
    pub skipped: Vec<(String, SkipReason)>,
}

impl Plan {
    /// The earliest time a skipped provider may be tried again (for `Retry-After`).
    pub fn earliest_retry_ms(&self) -> Option<u64> {
        self.skipped.iter().map(|(_, r)| r.until_ms()).min()
    }

    /// Whether nothing can be tried and every provider is in a provider-announced back-off
    /// window (the client should see 429 rather than 503).
    pub fn all_backing_off(&self) -> bool {
        self.attempts.is_empty()
            && !self.skipped.is_empty()
            && self
                .skipped
                .iter()
                .all(|(_, r)| matches!(r, SkipReason::BackingOff { .. }))
    }
}

/// Whether a provider can be attempted at `now_ms`, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Availability {
    /// Send normally.
    Ready,
    /// Cooldown over: a probe must be claimed first.
    NeedsProbe,
    /// Leave it out.
    Skip(SkipReason),
}

/// Reads a provider's circuit and back-off window at `now_ms`.
pub(crate) fn availability<S: SharedStore + ?Sized>(
    store: &S,
    provider: &ProviderSettings,
    now_ms: u64,
) -> Availability {
    let record = read_circuit(store, provider);
    match record {
        CircuitRecord::Open { until_ms } if until_ms > now_ms => {
            return Availability::Skip(SkipReason::CircuitOpen { until_ms });
        }
        CircuitRecord::HalfOpen { probe_until_ms } if probe_until_ms > now_ms => {
            return Availability::Skip(SkipReason::ProbeInFlight {
                until_ms: probe_until_ms,
            });
        }
        _ => {}
    }
    if let Some(until_ms) = backoff_until(store, provider, now_ms) {
        return Availability::Skip(SkipReason::BackingOff { until_ms });
    }
    if record.probe_claimable(now_ms) {
        Availability::NeedsProbe
    } else {
        Availability::Ready
    }
}

/// Converts a failed probe claim into a skip reason (`None` when the circuit closed meanwhile).
pub(crate) fn claim_skip_reason(claim: ProbeClaim, now_ms: u64) -> Option<SkipReason> {
    match claim {
        ProbeClaim::Won { .. } | ProbeClaim::Closed => None,
        ProbeClaim::Open { until_ms } => Some(SkipReason::CircuitOpen { until_ms }),
        ProbeClaim::InFlight { probe_until_ms } => Some(SkipReason::ProbeInFlight {
            until_ms: probe_until_ms,
        }),
        ProbeClaim::Contended => Some(SkipReason::ProbeInFlight { until_ms: now_ms }),
    }
}

/// Whether one attempt may go to `provider` now (Envoy chose it, tollgate's upstream stage
/// asks): `Ok(true)` when this attempt is the half-open probe (claimed here), `Ok(false)` for a
/// normal attempt, `Err` with the reason to skip it.
pub fn attempt_allowed<S: SharedStore + ?Sized>(
    store: &S,
    provider: &ProviderSettings,
    now_ms: u64,
) -> Result<bool, SkipReason> {
    match availability(store, provider, now_ms) {
        Availability::Ready => Ok(false),
        Availability::Skip(reason) => Err(reason),
        Availability::NeedsProbe => {
            let claim = try_claim_probe(store, provider, now_ms);
            match claim_skip_reason(claim, now_ms) {
                None => Ok(matches!(claim, ProbeClaim::Won { .. })),
                Some(reason) => Err(reason),
            }
        }
    }
}

/// Plans the attempts for `client_model` at `now_ms`; `None` when no route (and no default
/// route) serves the model. An empty `attempts` list means every provider was skipped.
pub fn plan<S: SharedStore + ?Sized>(
    settings: &FailoverSettings,
    client_model: &str,
    now_ms: u64,
    store: &S,
) -> Option<Plan> {
    plan_with(settings, client_model, now_ms, store, true)
}

/// Like [`plan`] but claims no probe: for routes Envoy walks, where each attempt claims its own
/// probe in the upstream stage ([`attempt_allowed`]); used to refuse up front when nothing can
/// be tried.
pub fn peek<S: SharedStore + ?Sized>(
    settings: &FailoverSettings,
    client_model: &str,
    now_ms: u64,
    store: &S,
) -> Option<Plan> {
    plan_with(settings, client_model, now_ms, store, false)
}

fn plan_with<S: SharedStore + ?Sized>(
    settings: &FailoverSettings,
    client_model: &str,
    now_ms: u64,
    store: &S,
    claim_probes: bool,
) -> Option<Plan> {
    let route = settings.route_for(client_model)?;
    let mut out = Plan::default();
    for &index in route {
        let Some(provider) = settings.providers.get(index) else {
            continue;
        };
        let planned = |probe| PlannedProvider {
            name: provider.name.clone(),
            index,
            provider_model: provider.models.provider_model(client_model),
            probe,
        };
        match availability(store, provider, now_ms) {
            Availability::Ready => out.attempts.push(planned(false)),
            Availability::Skip(reason) => out.skipped.push((provider.name.clone(), reason)),
            Availability::NeedsProbe if !out.attempts.is_empty() || !claim_probes => {
                // Claimed later by the tracker, only if the request gets this far.
                out.attempts.push(planned(false));
            }
            Availability::NeedsProbe => {
                let claim = try_claim_probe(store, provider, now_ms);
                match claim_skip_reason(claim, now_ms) {
                    None => out
                        .attempts
                        .push(planned(matches!(claim, ProbeClaim::Won { .. }))),
                    Some(reason) => out.skipped.push((provider.name.clone(), reason)),
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::failover::backoff_hint::record_backoff;
    use crate::failover::circuit::{record_result, AttemptResult};
    use crate::failover::classify::FailureKind;
    use crate::failover::settings::tests::sample;
    use crate::shared_store::MemoryStore;

    #[test]
    fn peek_claims_no_probe() {
        let settings = sample();
        let store = MemoryStore::default();
        let p = &settings.providers[0];
        open(&store, p, 5_000);
        let peeked = peek(&settings, "gpt-4o", 6_000, &store).unwrap();
        assert_eq!(peeked.attempts.first().map(|a| a.probe), Some(false));
        // The probe is still there for the attempt that reaches the provider.
        assert_eq!(attempt_allowed(&store, p, 6_000), Ok(true));
    }

    #[test]
    fn attempt_allowed_skips_open_circuits_and_claims_one_probe() {
        let settings = sample();
        let store = MemoryStore::default();
        let p = &settings.providers[0];
        assert_eq!(attempt_allowed(&store, p, 1_000), Ok(false));
        open(&store, p, 5_000);
        assert!(matches!(
            attempt_allowed(&store, p, 2_000),
            Err(SkipReason::CircuitOpen { until_ms: 5_000 })
        ));
        // Cooldown over: the first attempt is the probe, the next one is skipped while it runs.
        assert_eq!(attempt_allowed(&store, p, 6_000), Ok(true));
        assert!(matches!(
            attempt_allowed(&store, p, 6_001),
            Err(SkipReason::ProbeInFlight { .. })
        ));
        record_backoff(&store, &settings.providers[1], 9_000);
        assert!(matches!(
            attempt_allowed(&store, &settings.providers[1], 8_000),
            Err(SkipReason::BackingOff { until_ms: 9_000 })
        ));
    }

    fn open(store: &MemoryStore, p: &ProviderSettings, until_ms: u64) {
        store.set(
            &p.circuit_key,
            &CircuitRecord::Open { until_ms }.encode(),
            None,
        );
    }

    fn names(plan: &Plan) -> Vec<&str> {
        plan.attempts.iter().map(|a| a.name.as_str()).collect()
    }

    #[test]
    fn healthy_route_in_order_with_model_mapping() {
        let s = sample();
        let store = MemoryStore::default();
        let p = plan(&s, "gpt-4o", 0, &store).unwrap();
        assert_eq!(names(&p), ["openai", "azure"]);
        assert_eq!(p.attempts[0].provider_model, "gpt-4o-2024-08-06");
        assert_eq!(p.attempts[1].provider_model, "azure-4o");
        assert_eq!(p.attempts[1].index, 1);
        assert!(p.attempts.iter().all(|a| !a.probe));
        assert!(p.skipped.is_empty());
        assert!(plan(&s, "llama3", 0, &store).is_none());
    }

    #[test]
    fn open_circuit_is_skipped() {
        let s = sample();
        let store = MemoryStore::default();
        open(&store, &s.providers[0], 1_000);
        let p = plan(&s, "gpt-4o", 500, &store).unwrap();
        assert_eq!(names(&p), ["azure"]);
        assert_eq!(
            p.skipped,
            vec![(
                "openai".to_string(),
                SkipReason::CircuitOpen { until_ms: 1_000 }
            )]
        );
        assert_eq!(p.earliest_retry_ms(), Some(1_000));
    }

    #[test]
    fn tripped_by_failures_then_skipped() {
        let s = sample();
        let store = MemoryStore::default();
        let fail = AttemptResult::Failure(FailureKind::ConnectFailure);
        record_result(&store, &s.providers[0], 0, fail);
        assert_eq!(
            names(&plan(&s, "gpt-4o", 1, &store).unwrap()),
            ["openai", "azure"]
        );
        record_result(&store, &s.providers[0], 1, fail);
        assert_eq!(names(&plan(&s, "gpt-4o", 2, &store).unwrap()), ["azure"]);
    }

    #[test]
    fn backing_off_provider_is_skipped() {
        let s = sample();
        let store = MemoryStore::default();
        record_backoff(&store, &s.providers[0], 2_000);
        let p = plan(&s, "gpt-4o", 1_000, &store).unwrap();
        assert_eq!(names(&p), ["azure"]);
        assert_eq!(p.skipped[0].1, SkipReason::BackingOff { until_ms: 2_000 });
        assert!(!p.all_backing_off());
        let p = plan(&s, "gpt-4o", 2_000, &store).unwrap();
        assert_eq!(names(&p), ["openai", "azure"]);
    }

    #[test]
    fn all_backing_off_is_reported() {
        let s = sample();
        let store = MemoryStore::default();
        record_backoff(&store, &s.providers[0], 2_000);
        record_backoff(&store, &s.providers[1], 3_000);
        let p = plan(&s, "gpt-4o", 1_000, &store).unwrap();
        assert!(p.attempts.is_empty());
        assert!(p.all_backing_off());
        assert_eq!(p.earliest_retry_ms(), Some(2_000));
    }

    #[test]
    fn all_open_before_cooldown_skips_everything() {
        let s = sample();
        let store = MemoryStore::default();
        open(&store, &s.providers[0], 1_000);
        open(&store, &s.providers[1], 1_500);
        let p = plan(&s, "gpt-4o", 900, &store).unwrap();
        assert!(p.attempts.is_empty());
        assert_eq!(p.skipped.len(), 2);
        assert!(!p.all_backing_off());
        assert_eq!(p.earliest_retry_ms(), Some(1_000));
    }

    #[test]
    fn all_skipped_then_exactly_one_worker_probes() {
        let s = sample();
        let store = MemoryStore::default();
        open(&store, &s.providers[0], 1_000);
        open(&store, &s.providers[1], 1_000);
        // Worker 1 after the cooldown: claims the first provider's probe.
        let w1 = plan(&s, "gpt-4o", 1_000, &store).unwrap();
        assert_eq!(w1.attempts.len(), 2);
        assert!(w1.attempts[0].probe);
        assert_eq!(w1.attempts[0].name, "openai");
        // Its second candidate's probe is not claimed yet.
        assert!(!w1.attempts[1].probe);
        // Worker 2 at the same moment: openai's probe is taken, so it probes azure instead.
        let w2 = plan(&s, "gpt-4o", 1_000, &store).unwrap();
        assert_eq!(names(&w2), ["azure"]);
        assert!(w2.attempts[0].probe);
        assert!(matches!(w2.skipped[0].1, SkipReason::ProbeInFlight { .. }));
        // Worker 3: both probes are taken.
        let w3 = plan(&s, "gpt-4o", 1_001, &store).unwrap();
        assert!(w3.attempts.is_empty());
        assert_eq!(w3.skipped.len(), 2);
    }

    #[test]
    fn interleaved_plans_race_for_the_probe_exactly_one_wins() {
        use crate::failover::circuit::tests::RacingStore;
        let s = sample();
        let shared = MemoryStore::default();
        // claude-3* routes to anthropic only.
        open(&shared, &s.providers[2], 1_000);
        let mut worker_b = None;
        let worker_a_plan = {
            let worker_a = RacingStore {
                inner: &shared,
                interloper: std::cell::RefCell::new(Some(|store: &MemoryStore| {
                    worker_b = plan(&s, "claude-3-opus", 1_000, store);
                })),
            };
            plan(&s, "claude-3-opus", 1_000, &worker_a).unwrap()
        };
        let worker_b_plan = worker_b.unwrap();
        // Worker B slipped in between A's read and A's CAS: B probes, A skips.
        assert_eq!(names(&worker_b_plan), ["anthropic"]);
        assert!(worker_b_plan.attempts[0].probe);
        assert!(worker_a_plan.attempts.is_empty());
        assert!(matches!(
            worker_a_plan.skipped[0].1,
            SkipReason::ProbeInFlight { .. }
        ));
    }

    #[test]
    fn recovered_probe_first_in_route_is_claimed() {
        let s = sample();
        let store = MemoryStore::default();
        open(&store, &s.providers[0], 1_000);
        let p = plan(&s, "gpt-4o", 5_000, &store).unwrap();
        assert_eq!(names(&p), ["openai", "azure"]);
        assert!(p.attempts[0].probe);
        record_result(&store, &s.providers[0], 5_100, AttemptResult::Success);
        let p = plan(&s, "gpt-4o", 5_200, &store).unwrap();
        assert!(p.attempts.iter().all(|a| !a.probe));
    }

    #[test]
    fn probe_eligible_but_backing_off_is_skipped_without_claim() {
        let s = sample();
        let store = MemoryStore::default();
        open(&store, &s.providers[0], 1_000);
        record_backoff(&store, &s.providers[0], 9_000);
        let p = plan(&s, "gpt-4o", 2_000, &store).unwrap();
        assert_eq!(names(&p), ["azure"]);
        assert_eq!(
            read_circuit(&store, &s.providers[0]),
            CircuitRecord::Open { until_ms: 1_000 }
        );
    }

    #[test]
    fn default_route_is_planned() {
        let json = crate::failover::settings::tests::SAMPLE.replace(
            r#""total_deadline_ms": 30000"#,
            r#""default_route": ["anthropic"]"#,
        );
        let s = crate::failover::settings::parse(json.as_bytes(), "").unwrap();
        let p = plan(&s, "mistral-large", 0, &MemoryStore::default()).unwrap();
        assert_eq!(names(&p), ["anthropic"]);
        assert_eq!(p.attempts[0].provider_model, "mistral-large");
    }
}
