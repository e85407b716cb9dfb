//! Whole-mesh simulations: several replicas (each with its own pending queue) and callers against a
//! model of envoyproxy/ratelimit's Redis backend (hits added first, then compared; over-limit hits
//! stay counted; no negative hits), with outages. They check the overshoot bound and that an
//! outage loses no charge (or reports exactly what it dropped).

use std::collections::BTreeMap;

use super::config::{compile, RawMeshBudget};
use super::pending::{PendingCharges, Queued};
use super::*;
use crate::ratelimit_rpc::{DescriptorStatus, RlsCode, RlsVerdict};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

type Entries = Vec<(String, String)>;

/// envoyproxy/ratelimit's fixed window, one window long enough for the whole run.
#[derive(Default)]
struct Service {
    counters: BTreeMap<Entries, u64>,
    /// Hits applied by completion charges, per descriptor.
    charged: BTreeMap<Entries, u64>,
    up: bool,
}

impl Service {
    /// An admission call for `plan` with `hits` per window; `None` when down.
    fn admit(&mut self, plan: &MeshPlan, hits: &[u64]) -> Option<RlsVerdict> {
        if !self.up {
            return None;
        }
        let mut statuses = Vec::new();
        for (w, h) in plan.windows.iter().zip(hits) {
            let c = self.counters.entry(w.entries.clone()).or_default();
            *c += h;
            let limit = u64::from(w.window.limit);
            let over = *c > limit;
            statuses.push(DescriptorStatus {
                code: if over {
                    RlsCode::OverLimit
                } else {
                    RlsCode::Ok
                },
                current_limit: Some(w.window.limit),
                limit_remaining: u32::try_from(limit.saturating_sub(*c)).unwrap(),
                reset_seconds: Some(60),
            });
        }
        let overall = if statuses.iter().any(|s| s.code == RlsCode::OverLimit) {
            RlsCode::OverLimit
        } else {
            RlsCode::Ok
        };
        Some(RlsVerdict { overall, statuses })
    }

    fn charge(&mut self, batch: &[Charge]) -> bool {
        if !self.up {
            return false;
        }
        for c in batch {
            *self.counters.entry(c.entries.clone()).or_default() += c.hits;
            *self.charged.entry(c.entries.clone()).or_default() += c.hits;
        }
        true
    }
}

struct InFlight {
    replica: usize,
    caller: usize,
    plan: MeshPlan,
    admission: MeshAdmission,
    actual: Use,
}

#[derive(Default, Clone, Copy)]
struct Totals {
    /// Tokens actually used by admitted requests.
    admitted_actual: u64,
    /// Hits the service recorded at admission calls it answered (admitted or refused).
    recorded_at_admission: u64,
    /// Remainders owed by admitted requests (actual − reserved, when positive).
    remainders: u64,
    /// Completion hits the service had applied when the last request was admitted.
    charged_at_last_admission: u64,
    refused: u64,
    admitted: u64,
}

struct Outcome {
    totals: Vec<Totals>,
    service: Service,
    dropped: u64,
    plans: Vec<MeshPlan>,
}

struct Scenario {
    limit: u64,
    callers: usize,
    replicas: usize,
    steps: usize,
    /// The most a request's actual use exceeds its estimate.
    max_undercount: u64,
    /// Steps during which the service is down: [from, to).
    outage: Option<(usize, usize)>,
    max_pending: usize,
    seed: u64,
}

fn run(s: &Scenario) -> Outcome {
    let raw: RawMeshBudget = serde_json::from_value(serde_json::json!({
        "cluster": "rls",
        "windows": [{"period": "day", "max_tokens": s.limit}],
        "max_pending_charges": s.max_pending,
        "retry_interval_ms": 100
    }))
    .unwrap();
    let budget = compile(raw, false).unwrap();
    let names: Vec<String> = (0..s.callers).map(|i| format!("caller-{i}")).collect();
    let plans: Vec<MeshPlan> = names
        .iter()
        .map(|n| budget.plan(&Caller { id: n, class: None }))
        .collect();
    let mut rng = Rng(s.seed);
    let mut service = Service {
        up: true,
        ..Service::default()
    };
    let mut queues: Vec<PendingCharges> = (0..s.replicas)
        .map(|_| PendingCharges::new(budget.max_pending_charges, budget.retry_interval_ms))
        .collect();
    let mut flying: Vec<InFlight> = Vec::new();
    let mut totals = vec![Totals::default(); s.callers];
    let mut dropped = 0u64;
    let now = |step: usize| step as u64 * 50;
    for step in 0..s.steps + 400 {
        let draining = step >= s.steps;
        service.up = !s.outage.is_some_and(|(a, b)| (a..b).contains(&step));
        match rng.below(3) {
            0 if !draining => {
                let caller = rng.below(s.callers as u64) as usize;
                let replica = rng.below(s.replicas as u64) as usize;
                let estimate = Use {
                    tokens: 50 + rng.below(350),
                    cost_micros: 0,
                };
                // Without undercounting, use is anything up to the estimate; with it, the
                // estimate falls short by up to `max_undercount`.
                let tokens = if s.max_undercount == 0 {
                    rng.below(estimate.tokens + 1)
                } else {
                    estimate.tokens + rng.below(s.max_undercount + 1)
                };
                let actual = Use {
                    tokens,
                    cost_micros: 0,
                };
                let plan = plans[caller].clone();
                let verdict = service.admit(&plan, &[estimate.tokens]);
                let t = &mut totals[caller];
                if verdict.is_some() {
                    t.recorded_at_admission += estimate.tokens;
                }
                let answer = match verdict.as_ref() {
                    Some(v) => ServiceAnswer::Verdict(v),
                    None => ServiceAnswer::Failed,
                };
                match plan.decide(answer, &estimate, FailureMode::Open) {
                    AdmissionDecision::Admitted(admission) => {
                        t.admitted += 1;
                        t.admitted_actual += actual.tokens;
                        t.remainders += actual.tokens.saturating_sub(admission.reserved[0]);
                        t.charged_at_last_admission = service
                            .charged
                            .get(&plan.windows[0].entries)
                            .copied()
                            .unwrap_or(0);
                        flying.push(InFlight {
                            replica,
                            caller,
                            plan,
                            admission,
                            actual,
                        });
                    }
                    AdmissionDecision::Refused { .. } => t.refused += 1,
                    AdmissionDecision::Unavailable => unreachable!("fail-open"),
                }
            }
            1 if !flying.is_empty() => {
                let i = rng.below(flying.len() as u64) as usize;
                let done = flying.swap_remove(i);
                let _ = done.caller;
                for c in done.plan.completion_charges(&done.admission, &done.actual) {
                    if let Queued::Dropped { hits, .. } = queues[done.replica].push(c) {
                        dropped += hits;
                    }
                }
            }
            _ => {
                for q in &mut queues {
                    if q.due(now(step)) {
                        let batch = q.take_batch();
                        if service.charge(&batch) {
                            q.batch_sent();
                        } else {
                            for d in q.batch_failed(now(step)) {
                                if let Queued::Dropped { hits, .. } = d {
                                    dropped += hits;
                                }
                            }
                        }
                    }
                }
            }
        }
        if draining && flying.is_empty() && queues.iter().all(|q| q.is_empty()) {
            break;
        }
    }
    // Finish whatever is still flying, then drain.
    for done in flying.drain(..) {
        for c in done.plan.completion_charges(&done.admission, &done.actual) {
            if let Queued::Dropped { hits, .. } = queues[done.replica].push(c) {
                dropped += hits;
            }
        }
    }
    service.up = true;
    for q in &mut queues {
        while !q.is_empty() {
            let batch = q.take_batch();
            assert!(service.charge(&batch));
            q.batch_sent();
        }
    }
    Outcome {
        totals,
        service,
        dropped,
        plans,
    }
}

fn counter(o: &Outcome, caller: usize) -> u64 {
    o.service.counters[&o.plans[caller].windows[0].entries]
}

#[test]
fn estimates_that_cover_use_never_let_a_caller_past_the_budget() {
    for seed in 1..=20 {
        let o = run(&Scenario {
            limit: 5_000,
            callers: 3,
            replicas: 2,
            steps: 600,
            max_undercount: 0,
            outage: None,
            max_pending: 10_000,
            seed,
        });
        for (i, t) in o.totals.iter().enumerate() {
            assert!(t.refused > 0, "seed {seed}: caller {i} reached the budget");
            assert!(
                t.admitted_actual <= 5_000,
                "seed {seed}: caller {i} used {} of 5000",
                t.admitted_actual
            );
            // Nothing lost: the service holds every reservation plus every remainder.
            assert_eq!(counter(&o, i), t.recorded_at_admission + t.remainders);
            assert_eq!(t.remainders, 0);
        }
        assert_eq!(o.dropped, 0);
    }
}

#[test]
fn undercounting_estimates_overshoot_by_at_most_the_unrecorded_remainders() {
    let mut worst = 0u64;
    for seed in 1..=20 {
        let o = run(&Scenario {
            limit: 5_000,
            callers: 3,
            replicas: 2,
            steps: 600,
            max_undercount: 200,
            outage: None,
            max_pending: 10_000,
            seed,
        });
        for (i, t) in o.totals.iter().enumerate() {
            let unrecorded = t.remainders - t.charged_at_last_admission;
            assert!(
                t.admitted_actual <= 5_000 + unrecorded,
                "seed {seed}: caller {i} used {}, bound {}",
                t.admitted_actual,
                5_000 + unrecorded
            );
            worst = worst.max(t.admitted_actual.saturating_sub(5_000));
            assert_eq!(counter(&o, i), t.recorded_at_admission + t.remainders);
        }
    }
    assert!(worst > 0, "undercounting must be able to overshoot");
}

#[test]
fn an_outage_admits_fail_open_and_loses_no_charge() {
    for seed in 1..=10 {
        let o = run(&Scenario {
            limit: 1_000_000,
            callers: 3,
            replicas: 2,
            steps: 800,
            max_undercount: 100,
            outage: Some((200, 500)),
            max_pending: 10_000,
            seed,
        });
        for (i, t) in o.totals.iter().enumerate() {
            assert_eq!(t.refused, 0);
            assert_eq!(
                counter(&o, i),
                t.recorded_at_admission + t.remainders,
                "seed {seed}: caller {i}: every admitted token is at the service"
            );
            assert!(
                counter(&o, i) >= t.admitted_actual,
                "no admitted token goes uncharged"
            );
        }
        assert_eq!(o.dropped, 0);
    }
}

#[test]
fn a_queue_too_small_for_the_outage_reports_exactly_what_it_dropped() {
    let o = run(&Scenario {
        limit: 1_000_000,
        callers: 8,
        replicas: 2,
        steps: 800,
        max_undercount: 100,
        outage: Some((100, 700)),
        max_pending: 2,
        seed: 7,
    });
    let at_service: u64 = (0..8).map(|i| counter(&o, i)).sum();
    let owed: u64 = o
        .totals
        .iter()
        .map(|t| t.recorded_at_admission + t.remainders)
        .sum();
    assert!(
        o.dropped > 0,
        "8 callers cannot fit in 2 entries per replica"
    );
    assert_eq!(at_service + o.dropped, owed);
}
