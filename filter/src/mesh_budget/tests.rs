//! Tests of mesh-wide budgets: plans, admission decisions, completion charges, the pending queue,
//! and whole-mesh simulations against a model of envoyproxy/ratelimit's Redis backend.

use std::collections::BTreeMap;

use super::config::{compile, RawMeshBudget};
use super::pending::{PendingCharges, Queued, MAX_BATCH};
use super::*;
use crate::ratelimit_rpc::{DescriptorStatus, RlsCode, RlsUnit, RlsVerdict};

fn budget(json: serde_json::Value) -> MeshBudget {
    let raw: RawMeshBudget = serde_json::from_value(json).unwrap();
    compile(raw, true).unwrap()
}

fn tokens_per_minute(limit: u64) -> MeshBudget {
    budget(serde_json::json!({
        "cluster": "rls",
        "windows": [{"period": "minute", "max_tokens": limit}]
    }))
}

fn caller(id: &str) -> Caller<'_> {
    Caller { id, class: None }
}

fn ok(remaining: u32, limit: u32, reset: u64) -> DescriptorStatus {
    DescriptorStatus {
        code: RlsCode::Ok,
        current_limit: Some(limit),
        limit_remaining: remaining,
        reset_seconds: Some(reset),
    }
}

fn over(limit: u32, reset: u64) -> DescriptorStatus {
    DescriptorStatus {
        code: RlsCode::OverLimit,
        current_limit: Some(limit),
        limit_remaining: 0,
        reset_seconds: Some(reset),
    }
}

fn verdict(statuses: Vec<DescriptorStatus>) -> RlsVerdict {
    let overall = if statuses.iter().any(|s| s.code == RlsCode::OverLimit) {
        RlsCode::OverLimit
    } else {
        RlsCode::Ok
    };
    RlsVerdict { overall, statuses }
}

// ---- plans ----

#[test]
fn a_class_picks_its_windows_and_unknown_classes_get_the_default() {
    let b = budget(serde_json::json!({
        "cluster": "rls",
        "descriptor_key": "subject",
        "windows": [{"period": "minute", "max_tokens": 100}],
        "classes": {
            "pro": [
                {"period": "minute", "max_tokens": 1000, "max_requests": 5},
                {"period": "day", "max_cost_usd": 2.5, "per": "class"}
            ]
        }
    }));
    let pro = b.plan(&Caller {
        id: "alice",
        class: Some("pro"),
    });
    assert_eq!(pro.class, "pro");
    let entries: Vec<Vec<(String, String)>> =
        pro.windows.iter().map(|w| w.entries.clone()).collect();
    let e = |k: &str, v: &str| (k.to_string(), v.to_string());
    assert_eq!(
        entries,
        vec![
            vec![
                e("subject", "alice"),
                e("window", "minute"),
                e("measure", "tokens")
            ],
            vec![
                e("subject", "alice"),
                e("window", "minute"),
                e("measure", "requests")
            ],
            vec![
                e("class", "pro"),
                e("window", "day"),
                e("measure", "cost_usd_micros")
            ],
        ]
    );
    for class in [None, Some("free"), Some("")] {
        let plan = b.plan(&Caller { id: "bob", class });
        assert_eq!(plan.class, DEFAULT_CLASS);
        assert_eq!(plan.windows.len(), 1);
        assert_eq!(plan.windows[0].window.limit, 100);
    }
}

#[test]
fn the_admission_call_reserves_the_estimate_in_every_window_with_its_limit() {
    let b = budget(serde_json::json!({
        "cluster": "rls",
        "domain": "mesh",
        "windows": [{"period": "minute", "max_tokens": 2000, "max_requests": 7},
                    {"period": "day", "max_cost_usd": 1.0}]
    }));
    let plan = b.plan(&caller("key:ab"));
    let estimate = Use {
        tokens: 350,
        cost_micros: 42,
    };
    let bytes = plan.admission_request("mesh", &estimate);
    let expected = crate::ratelimit_rpc::encode_limited_request(
        "mesh",
        &[
            limited(&plan.windows[0].entries, 350, 2000, RlsUnit::Minute),
            limited(&plan.windows[1].entries, 1, 7, RlsUnit::Minute),
            limited(&plan.windows[2].entries, 42, 1_000_000, RlsUnit::Day),
        ],
        0,
    );
    assert_eq!(bytes, expected);
    // The status check charges nothing.
    let status = plan.status_request("mesh");
    let expected = crate::ratelimit_rpc::encode_limited_request(
        "mesh",
        &[
            limited(&plan.windows[0].entries, 0, 2000, RlsUnit::Minute),
            limited(&plan.windows[1].entries, 0, 7, RlsUnit::Minute),
            limited(&plan.windows[2].entries, 0, 1_000_000, RlsUnit::Day),
        ],
        0,
    );
    assert_eq!(status, expected);
}

fn limited(
    entries: &[(String, String)],
    hits: u64,
    limit: u32,
    unit: RlsUnit,
) -> crate::ratelimit_rpc::LimitedDescriptor {
    crate::ratelimit_rpc::LimitedDescriptor {
        descriptor: crate::ratelimit_rpc::Descriptor {
            entries: entries.to_vec(),
            hits_addend: Some(hits),
        },
        limit: Some(crate::ratelimit_rpc::LimitOverride {
            requests_per_unit: limit,
            unit,
        }),
    }
}

// ---- decisions ----

#[test]
fn an_ok_answer_admits_and_records_the_reservation_and_mesh_view() {
    let b = budget(serde_json::json!({
        "cluster": "rls",
        "windows": [{"period": "minute", "max_tokens": 2000, "max_requests": 7},
                    {"period": "hour", "max_tokens": 50000}]
    }));
    let plan = b.plan(&caller("u"));
    let estimate = Use {
        tokens: 300,
        cost_micros: 0,
    };
    let v = verdict(vec![
        ok(1200, 2000, 40),
        ok(4, 7, 40),
        ok(30000, 50000, 1800),
    ]);
    let AdmissionDecision::Admitted(a) =
        plan.decide(ServiceAnswer::Verdict(&v), &estimate, FailureMode::Closed)
    else {
        panic!("admitted expected");
    };
    assert!(a.reached);
    assert_eq!(a.reserved, vec![300, 1, 300]);
    let headers: BTreeMap<String, String> = a.view.headers().into_iter().collect();
    assert_eq!(headers["x-ratelimit-limit-tokens"], "2000");
    assert_eq!(headers["x-ratelimit-remaining-tokens"], "1200");
    assert_eq!(headers["x-ratelimit-reset-tokens"], "40s");
    assert_eq!(headers["x-ratelimit-limit-requests"], "7");
    assert_eq!(headers["x-ratelimit-remaining-requests"], "4");
    let json: serde_json::Value = serde_json::to_value(&a.view).unwrap();
    assert_eq!(json["windows"][2]["period"], "hour");
    assert_eq!(json["windows"][2]["remaining"], 30000);
    assert_eq!(json["windows"][1]["measure"], "requests");
    assert_eq!(json["windows"][0]["per"], "caller");
}

#[test]
fn an_over_limit_answer_refuses_with_that_windows_reset_and_limit() {
    let b = budget(serde_json::json!({
        "cluster": "rls",
        "windows": [{"period": "minute", "max_tokens": 2000},
                    {"period": "day", "max_cost_usd": 3.0}]
    }));
    let plan = b.plan(&caller("u"));
    let v = verdict(vec![ok(10, 2000, 12), over(3_000_000, 7200)]);
    let decision = plan.decide(
        ServiceAnswer::Verdict(&v),
        &Use::default(),
        FailureMode::Open,
    );
    let AdmissionDecision::Refused { refusal, view } = decision else {
        panic!("refused expected: {decision:?}");
    };
    assert_eq!(refusal.dimension, "cost");
    assert_eq!(refusal.period_seconds, 86_400);
    assert_eq!(refusal.retry_after, 7200);
    assert_eq!(refusal.limit, 3_000_000);
    assert_eq!(view.windows[1].remaining, 0);
    assert!(view.windows[1].over_limit);
    // Reset 0 still means "retry in a second", never "retry now".
    let v = verdict(vec![over(2000, 0), ok(1, 1, 1)]);
    let AdmissionDecision::Refused { refusal, .. } = plan.decide(
        ServiceAnswer::Verdict(&v),
        &Use::default(),
        FailureMode::Open,
    ) else {
        panic!()
    };
    assert_eq!((refusal.dimension, refusal.retry_after), ("tokens", 1));
    // OVER_LIMIT overall with no statuses: the plan's first window answers.
    let v = RlsVerdict {
        overall: RlsCode::OverLimit,
        statuses: vec![],
    };
    let AdmissionDecision::Refused { refusal, view } = plan.decide(
        ServiceAnswer::Verdict(&v),
        &Use::default(),
        FailureMode::Open,
    ) else {
        panic!()
    };
    assert_eq!((refusal.limit, refusal.retry_after), (2000, 60));
    assert!(view.windows.is_empty());
}

#[test]
fn failures_follow_the_failure_mode() {
    let plan = tokens_per_minute(100).plan(&caller("u"));
    let estimate = Use {
        tokens: 40,
        cost_micros: 0,
    };
    let unknown = RlsVerdict::default();
    for answer in [ServiceAnswer::Failed, ServiceAnswer::Verdict(&unknown)] {
        let AdmissionDecision::Admitted(a) = plan.decide(answer, &estimate, FailureMode::Open)
        else {
            panic!("fail-open admits");
        };
        assert!(!a.reached);
        assert_eq!(a.reserved, vec![0]);
        assert!(a.view.headers().is_empty());
        assert_eq!(
            plan.decide(answer, &estimate, FailureMode::Closed),
            AdmissionDecision::Unavailable
        );
    }
    assert_eq!(FailureMode::Open.label(), "failed_open");
    assert_eq!(FailureMode::Closed.label(), "failed_closed");
}

// ---- completion ----

#[test]
fn completion_charges_only_what_the_reservation_did_not_cover() {
    let b = budget(serde_json::json!({
        "cluster": "rls",
        "windows": [{"period": "minute", "max_tokens": 2000, "max_requests": 9, "max_cost_usd": 1.0}]
    }));
    let plan = b.plan(&caller("u"));
    let reached = MeshAdmission {
        reserved: vec![500, 1, 80],
        view: MeshView::default(),
        reached: true,
    };
    // Used less than reserved: nothing to charge, and no refund either.
    let less = Use {
        tokens: 120,
        cost_micros: 10,
    };
    assert!(plan.completion_charges(&reached, &less).is_empty());
    // Used more: only the remainder.
    let more = Use {
        tokens: 650,
        cost_micros: 95,
    };
    let charges = plan.completion_charges(&reached, &more);
    let hits: Vec<(Measure, u64)> = charges.iter().map(|c| (c.measure, c.hits)).collect();
    assert_eq!(hits, vec![(Measure::Tokens, 150), (Measure::Cost, 15)]);
    assert_eq!(charges[0].limit.requests_per_unit, 2000);
    assert_eq!(charges[1].limit.requests_per_unit, 1_000_000);
    // Admitted without the service: everything, the request included.
    let unreached = MeshAdmission {
        reserved: vec![0, 0, 0],
        view: MeshView::default(),
        reached: false,
    };
    let hits: Vec<u64> = plan
        .completion_charges(&unreached, &less)
        .iter()
        .map(|c| c.hits)
        .collect();
    assert_eq!(hits, vec![120, 1, 10]);
}

#[test]
fn micros_round_up_and_ignore_nonsense() {
    assert_eq!(MeshBudget::micros(0.0000011), 2);
    assert_eq!(MeshBudget::micros(1.5), 1_500_000);
    assert_eq!(MeshBudget::micros(-1.0), 0);
    assert_eq!(MeshBudget::micros(f64::NAN), 0);
}

// ---- the pending queue ----

fn charge(who: &str, hits: u64) -> Charge {
    let plan = tokens_per_minute(1000).plan(&caller(who));
    let w = &plan.windows[0];
    Charge {
        entries: w.entries.clone(),
        limit: crate::ratelimit_rpc::LimitOverride {
            requests_per_unit: 1000,
            unit: RlsUnit::Minute,
        },
        measure: Measure::Tokens,
        hits,
    }
}

#[test]
fn charges_to_one_descriptor_merge_and_a_full_queue_reports_what_it_drops() {
    let mut q = PendingCharges::new(2, 1000);
    assert_eq!(q.push(charge("a", 10)), Queued::Waiting);
    assert_eq!(q.push(charge("a", 5)), Queued::Waiting);
    assert_eq!(q.push(charge("b", 7)), Queued::Waiting);
    assert_eq!(q.len(), 2);
    assert_eq!(
        q.push(charge("c", 9)),
        Queued::Dropped {
            measure: Measure::Tokens,
            hits: 9
        }
    );
    // A charge to a waiting descriptor still merges when full.
    assert_eq!(q.push(charge("b", 1)), Queued::Waiting);
    assert_eq!(q.hits(Measure::Tokens), 23);
    assert_eq!(q.hits(Measure::Cost), 0);
    assert_eq!(q.push(charge("z", 0)), Queued::Waiting, "nothing to keep");
    assert_eq!(q.len(), 2);
}

#[test]
fn a_failed_batch_waits_the_retry_interval_and_comes_back_merged() {
    let mut q = PendingCharges::new(100, 1000);
    assert!(!q.due(0), "empty");
    q.push(charge("a", 10));
    q.push(charge("b", 20));
    assert!(q.due(0));
    let batch = q.take_batch();
    assert_eq!(batch.len(), 2);
    assert!(q.in_flight());
    assert!(!q.due(0), "one batch at a time");
    // Meanwhile another charge to "a" arrives.
    q.push(charge("a", 1));
    assert_eq!(q.hits(Measure::Tokens), 31, "in flight counts as pending");
    assert!(q.batch_failed(5000).is_empty());
    assert!(!q.due(5999));
    assert!(q.due(6000));
    let batch = q.take_batch();
    let hits: BTreeMap<String, u64> = batch
        .iter()
        .map(|c| (c.entries[0].1.clone(), c.hits))
        .collect();
    assert_eq!(hits, BTreeMap::from([("a".into(), 11), ("b".into(), 20)]));
    q.batch_sent();
    assert!(q.is_empty());
    assert!(!q.in_flight());
    assert_eq!(q.hits(Measure::Tokens), 0);
}

#[test]
fn batches_are_bounded_and_a_failure_into_a_full_queue_reports_drops() {
    let mut q = PendingCharges::new(MAX_BATCH + 10, 100);
    for i in 0..MAX_BATCH + 10 {
        q.push(charge(&format!("c{i:03}"), 1));
    }
    let first = q.take_batch();
    assert_eq!(first.len(), MAX_BATCH);
    assert_eq!(q.len(), 10);
    // While the batch flies, the queue fills with other callers.
    for i in 0..MAX_BATCH {
        q.push(charge(&format!("d{i:03}"), 1));
    }
    assert_eq!(q.len(), MAX_BATCH + 10);
    let dropped = q.batch_failed(0);
    assert_eq!(dropped.len(), MAX_BATCH);
    assert!(dropped.iter().all(|d| *d
        == Queued::Dropped {
            measure: Measure::Tokens,
            hits: 1
        }));
}
