//! Mesh-wide budgets: admission against a global rate limit service shared by every Envoy
//! replica (`envoy.service.ratelimit.v3`, envoyproxy/ratelimit + Redis in production).
//!
//! A request's life against the service:
//!
//! 1. **Plan** ([`MeshBudget::plan`]): the caller's class picks its windows (`classes`, else
//!    `windows`); each window × measure (tokens, requests, cost) becomes one descriptor
//!    `[(descriptor_key, caller) | (class, name), (window, unit), (measure, what)]` carrying its
//!    limit as a `RateLimitOverride`, so tollgate's config is the one place limits live.
//! 2. **Admission** ([`MeshPlan::admission_request`], [`MeshPlan::decide`]): one call reserves the
//!    estimate (prompt estimate + `max_tokens`, its price, one request) in every window. The service
//!    adds hits first and compares after, atomically per descriptor, so concurrent admissions on
//!    any number of replicas cannot together reserve more than the limit. An over-limit answer
//!    refuses the request before any provider is called.
//! 3. **Completion** ([`MeshPlan::completion_charges`]): the remainder (actual − reserved, when
//!    positive) is charged. There are no refunds: envoyproxy/ratelimit's Redis backend ignores
//!    negative hits, so a request that used less than its estimate keeps its whole reservation
//!    charged.
//! 4. **Failed charges** ([`pending::PendingCharges`]): kept, merged per descriptor, re-sent when
//!    the service answers again.
//!
//! **Overshoot bound.** Per window, what the service admits is at most the limit in reserved hits.
//! Actual use exceeds the limit only by the remainders of requests whose actual use exceeded
//! their estimate: at most Σ over those in-flight (or queued) requests of (actual − estimate).
//! With `max_tokens` set and a prompt estimate that does not undercount, that is 0; with a
//! missing `max_tokens` it is at most the output beyond `budgets.default_max_tokens` per request.
//! Lagging charges do not weaken this: admissions never wait for completions, the reservation
//! is taken before the request proceeds.

pub mod config;
pub mod pending;
mod plan;
mod view;

use std::collections::BTreeMap;

pub use plan::{
    encode_charges, AdmissionDecision, Caller, Charge, MeshAdmission, MeshPlan, PlannedWindow,
    ServiceAnswer, Use,
};
pub use view::{MeshView, MeshWindowView};

use crate::ratelimit_rpc::RlsUnit;

/// What a window counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Measure {
    /// Input + output tokens.
    Tokens,
    /// Requests.
    Requests,
    /// Cost in micro-dollars, from the price table.
    Cost,
}

impl Measure {
    /// The descriptor value (`measure` entry) and metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Tokens => "tokens",
            Self::Requests => "requests",
            Self::Cost => "cost_usd_micros",
        }
    }

    /// The refusal dimension (as local budgets name theirs).
    pub fn dimension(self) -> &'static str {
        match self {
            Self::Tokens => "tokens",
            Self::Requests => "requests",
            Self::Cost => "cost",
        }
    }
}

/// Whose window it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Each caller has its own counter.
    Caller,
    /// One counter shared by every caller of the class (a team budget).
    Class,
}

/// One limit of a class: a window, what it counts, and how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeshWindow {
    /// The window.
    pub unit: RlsUnit,
    /// What it counts.
    pub measure: Measure,
    /// Hits allowed per window.
    pub limit: u32,
    /// Whose window.
    pub scope: Scope,
}

/// What admission does when the service fails, times out or answers nonsense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Admit (local budgets still apply); the request is charged in full at completion.
    Open,
    /// Refuse with 503.
    Closed,
}

impl FailureMode {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Open => "failed_open",
            Self::Closed => "failed_closed",
        }
    }
}

/// Validated `budgets.global`.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshBudget {
    /// Rate limit service cluster.
    pub cluster: String,
    /// Rate limit domain.
    pub domain: String,
    /// Descriptor key for the caller.
    pub descriptor_key: String,
    /// Admission call timeout, ms.
    pub timeout_ms: u64,
    /// What admission does when the service fails.
    pub failure_mode: FailureMode,
    /// JWT claim naming the caller's class.
    pub class_claim: Option<String>,
    /// Windows of callers without a listed class.
    pub windows: Vec<MeshWindow>,
    /// Windows per class.
    pub classes: BTreeMap<String, Vec<MeshWindow>>,
    /// Distinct failed charges kept.
    pub max_pending_charges: usize,
    /// Pause after a failed re-send, ms.
    pub retry_interval_ms: u64,
}

/// The class name of callers whose class is not listed.
pub const DEFAULT_CLASS: &str = "default";

impl MeshBudget {
    /// The class that applies to `class` and its windows: a listed class, else the default.
    pub fn class_windows<'a>(&'a self, class: Option<&'a str>) -> (&'a str, &'a [MeshWindow]) {
        match class.and_then(|c| self.classes.get_key_value(c)) {
            Some((name, windows)) => (name.as_str(), windows.as_slice()),
            None => (DEFAULT_CLASS, self.windows.as_slice()),
        }
    }

    /// Micro-dollars for a cost in dollars, rounded up (a charge never undercounts).
    pub fn micros(cost_usd: f64) -> u64 {
        if cost_usd.is_finite() && cost_usd > 0.0 {
            (cost_usd * config::MICROS_PER_USD).ceil() as u64
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod simulation;
