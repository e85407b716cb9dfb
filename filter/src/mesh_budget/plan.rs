//! One request's descriptors, admission call, decision and completion charges.

use super::view::MeshView;
use super::{FailureMode, Measure, MeshBudget, MeshWindow, Scope};
use crate::budget::Refusal;
use crate::ratelimit_rpc::{
    encode_limited_request, Descriptor, LimitOverride, LimitedDescriptor, RlsCode, RlsVerdict,
};

/// Who is asking: the caller's identity and, when known, its class (a JWT claim or an API key's
/// team).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller<'a> {
    /// The identity budgets use (`sub`, `key:<hash>`, `ip:…`).
    pub id: &'a str,
    /// The class, if any.
    pub class: Option<&'a str>,
}

/// An amount of use, in each measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Use {
    /// Tokens (input + output).
    pub tokens: u64,
    /// Cost in micro-dollars (0 when the model has no price).
    pub cost_micros: u64,
}

/// One window of a plan with its descriptor entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedWindow {
    /// The window.
    pub window: MeshWindow,
    /// The descriptor entries counting it.
    pub entries: Vec<(String, String)>,
}

impl PlannedWindow {
    fn limit(&self) -> LimitOverride {
        LimitOverride {
            requests_per_unit: self.window.limit,
            unit: self.window.unit,
        }
    }

    /// The hits `amount` is worth in this window; `request` counts the request itself.
    fn hits(&self, amount: &Use, request: bool) -> u64 {
        match self.window.measure {
            Measure::Tokens => amount.tokens,
            Measure::Requests => u64::from(request),
            Measure::Cost => amount.cost_micros,
        }
    }

    fn descriptor(&self, hits: u64) -> LimitedDescriptor {
        LimitedDescriptor {
            descriptor: Descriptor {
                entries: self.entries.clone(),
                hits_addend: Some(hits),
            },
            limit: Some(self.limit()),
        }
    }
}

/// A request's windows, in config order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshPlan {
    /// The class that applied (`default` for callers without a listed class).
    pub class: String,
    /// The windows.
    pub windows: Vec<PlannedWindow>,
}

/// Hits to add to one descriptor: a completion remainder or a queued charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The descriptor entries.
    pub entries: Vec<(String, String)>,
    /// The limit it is counted under.
    pub limit: LimitOverride,
    /// What it counts (for metrics).
    pub measure: Measure,
    /// Hits (> 0).
    pub hits: u64,
}

/// Encodes charges as one `RateLimitRequest`.
pub fn encode_charges(domain: &str, charges: &[Charge]) -> Vec<u8> {
    let descriptors: Vec<LimitedDescriptor> = charges
        .iter()
        .map(|c| LimitedDescriptor {
            descriptor: Descriptor {
                entries: c.entries.clone(),
                hits_addend: Some(c.hits),
            },
            limit: Some(c.limit),
        })
        .collect();
    encode_limited_request(domain, &descriptors, 0)
}

/// What the service said to an admission call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceAnswer<'a> {
    /// A decoded answer.
    Verdict(&'a RlsVerdict),
    /// No usable answer: a gRPC error, a timeout, a refused dispatch or undecodable bytes.
    Failed,
}

/// An admitted request's state at the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshAdmission {
    /// Hits the service recorded per window (plan order); all 0 when it was not reached.
    pub reserved: Vec<u64>,
    /// The mesh-wide view after the reservation (empty when the service was not reached).
    pub view: MeshView,
    /// Whether the service answered (false: admitted by `failure_mode: open`).
    pub reached: bool,
}

/// The admission decision.
#[derive(Debug, Clone, PartialEq)]
pub enum AdmissionDecision {
    /// Go ahead; settle with [`MeshPlan::completion_charges`] when the request ends.
    Admitted(MeshAdmission),
    /// Over a mesh-wide window: answer 429 with this refusal.
    Refused {
        /// The window that refused (its limit, reset and dimension).
        refusal: Refusal,
        /// The mesh-wide view, for the rate-limit headers.
        view: MeshView,
    },
    /// The service failed and `failure_mode` is `closed`: answer 503.
    Unavailable,
}

impl MeshBudget {
    /// The plan for `caller`: its class's windows with their descriptor entries.
    pub fn plan(&self, caller: &Caller<'_>) -> MeshPlan {
        let (class, windows) = self.class_windows(caller.class);
        let windows = windows
            .iter()
            .map(|w| {
                let who = match w.scope {
                    Scope::Caller => (self.descriptor_key.clone(), caller.id.to_string()),
                    Scope::Class => ("class".to_string(), class.to_string()),
                };
                PlannedWindow {
                    window: *w,
                    entries: vec![
                        who,
                        ("window".to_string(), unit_label(w.unit).to_string()),
                        ("measure".to_string(), w.measure.label().to_string()),
                    ],
                }
            })
            .collect();
        MeshPlan {
            class: class.to_string(),
            windows,
        }
    }
}

/// The `window` descriptor value of a unit.
pub fn unit_label(unit: crate::ratelimit_rpc::RlsUnit) -> &'static str {
    use crate::ratelimit_rpc::RlsUnit;
    match unit {
        RlsUnit::Second => "second",
        RlsUnit::Minute => "minute",
        RlsUnit::Hour => "hour",
        RlsUnit::Day => "day",
    }
}

impl MeshPlan {
    /// The admission call: reserve `estimate` (and one request) in every window.
    pub fn admission_request(&self, domain: &str, estimate: &Use) -> Vec<u8> {
        let descriptors: Vec<LimitedDescriptor> = self
            .windows
            .iter()
            .map(|w| w.descriptor(w.hits(estimate, true)))
            .collect();
        encode_limited_request(domain, &descriptors, 0)
    }

    /// A check that charges nothing (hits 0 everywhere): the status endpoint's mesh-wide view.
    pub fn status_request(&self, domain: &str) -> Vec<u8> {
        let descriptors: Vec<LimitedDescriptor> =
            self.windows.iter().map(|w| w.descriptor(0)).collect();
        encode_limited_request(domain, &descriptors, 0)
    }

    /// Decides admission from the service's answer to [`MeshPlan::admission_request`].
    pub fn decide(
        &self,
        answer: ServiceAnswer<'_>,
        estimate: &Use,
        mode: FailureMode,
    ) -> AdmissionDecision {
        let verdict = match answer {
            ServiceAnswer::Verdict(v) if v.overall != RlsCode::Unknown => v,
            _ => {
                return match mode {
                    FailureMode::Open => AdmissionDecision::Admitted(MeshAdmission {
                        reserved: vec![0; self.windows.len()],
                        view: MeshView::default(),
                        reached: false,
                    }),
                    FailureMode::Closed => AdmissionDecision::Unavailable,
                }
            }
        };
        let view = MeshView::from_verdict(self, verdict);
        if verdict.is_over_limit() {
            let over = self
                .windows
                .iter()
                .zip(verdict.statuses.iter())
                .find(|(_, s)| s.code == RlsCode::OverLimit);
            let refusal = match over {
                Some((w, s)) => Refusal {
                    dimension: w.window.measure.dimension(),
                    period_seconds: w.window.unit.seconds(),
                    retry_after: s.reset_seconds.unwrap_or(w.window.unit.seconds()).max(1),
                    limit: u64::from(s.current_limit.unwrap_or(w.window.limit)),
                },
                // Over the limit without saying where: the tightest window of the plan.
                None => self.fallback_refusal(),
            };
            return AdmissionDecision::Refused { refusal, view };
        }
        AdmissionDecision::Admitted(MeshAdmission {
            reserved: self
                .windows
                .iter()
                .map(|w| w.hits(estimate, true))
                .collect(),
            view,
            reached: true,
        })
    }

    fn fallback_refusal(&self) -> Refusal {
        let first = self.windows.first();
        Refusal {
            dimension: first.map_or("tokens", |w| w.window.measure.dimension()),
            period_seconds: first.map_or(60, |w| w.window.unit.seconds()),
            retry_after: first.map_or(60, |w| w.window.unit.seconds()),
            limit: first.map_or(0, |w| u64::from(w.window.limit)),
        }
    }

    /// What to charge when the request ends with `actual` use: per window, what the service has
    /// not recorded yet (actual − reserved), when positive. A request admitted without the
    /// service (`reached: false`) is charged in full, its request included.
    pub fn completion_charges(&self, admission: &MeshAdmission, actual: &Use) -> Vec<Charge> {
        self.windows
            .iter()
            .enumerate()
            .filter_map(|(i, w)| {
                let reserved = admission.reserved.get(i).copied().unwrap_or(0);
                let hits = w.hits(actual, true).saturating_sub(reserved);
                (hits > 0).then(|| Charge {
                    entries: w.entries.clone(),
                    limit: w.limit(),
                    measure: w.window.measure,
                    hits,
                })
            })
            .collect()
    }
}
