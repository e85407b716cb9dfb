//! The mesh-wide view of a caller's windows, from the service's `DescriptorStatus`es: what the
//! `x-ratelimit-*` headers and the status endpoint report when the mesh budget is on.

use serde::Serialize;

use super::plan::{unit_label, MeshPlan};
use super::{Measure, Scope};
use crate::ratelimit_rpc::{RlsCode, RlsVerdict};

/// One window as the service reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeshWindowView {
    /// `second`, `minute`, `hour` or `day`.
    pub period: &'static str,
    /// Window length in seconds.
    pub period_seconds: u64,
    /// `tokens`, `requests` or `cost_usd_micros`.
    pub measure: &'static str,
    /// `caller` or `class`.
    pub per: &'static str,
    /// The limit.
    pub limit: u64,
    /// What is left across the mesh (0 when over).
    pub remaining: u64,
    /// Seconds until the window resets.
    pub reset_seconds: u64,
    /// Whether the window is over its limit.
    pub over_limit: bool,
    #[serde(skip)]
    kind: Measure,
}

/// Every window of a plan as the service reported it (windows it said nothing about are left
/// out).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct MeshView {
    /// The windows, in plan order.
    pub windows: Vec<MeshWindowView>,
}

impl MeshView {
    /// Pairs each planned window with the status the service returned for it.
    pub fn from_verdict(plan: &MeshPlan, verdict: &RlsVerdict) -> Self {
        let windows = plan
            .windows
            .iter()
            .zip(verdict.statuses.iter())
            .map(|(w, s)| {
                let over = s.code == RlsCode::OverLimit;
                MeshWindowView {
                    period: unit_label(w.window.unit),
                    period_seconds: w.window.unit.seconds(),
                    measure: w.window.measure.label(),
                    per: match w.window.scope {
                        Scope::Caller => "caller",
                        Scope::Class => "class",
                    },
                    limit: u64::from(s.current_limit.unwrap_or(w.window.limit)),
                    remaining: if over {
                        0
                    } else {
                        u64::from(s.limit_remaining)
                    },
                    reset_seconds: s.reset_seconds.unwrap_or(w.window.unit.seconds()),
                    over_limit: over,
                    kind: w.window.measure,
                }
            })
            .collect();
        Self { windows }
    }

    /// The window of `measure` with the least left (ties: the shorter window).
    pub fn tightest(&self, measure: Measure) -> Option<&MeshWindowView> {
        self.windows
            .iter()
            .filter(|w| w.kind == measure)
            .min_by_key(|w| (w.remaining, w.period_seconds))
    }

    /// The OpenAI-style rate-limit headers for tokens and requests, from the tightest window of
    /// each (cost windows appear in the status endpoint only).
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (measure, suffix) in [(Measure::Requests, "requests"), (Measure::Tokens, "tokens")] {
            if let Some(w) = self.tightest(measure) {
                out.push((format!("x-ratelimit-limit-{suffix}"), w.limit.to_string()));
                out.push((
                    format!("x-ratelimit-remaining-{suffix}"),
                    w.remaining.to_string(),
                ));
                out.push((
                    format!("x-ratelimit-reset-{suffix}"),
                    format!("{}s", w.reset_seconds),
                ));
            }
        }
        out
    }
}
