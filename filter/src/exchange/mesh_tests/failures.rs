//! The mesh-wide rate limit service failing: fail-open admits and charges everything at
//! completion, fail-closed refuses with 503, failed charges are kept and sent again after the
//! retry interval, and a full queue counts the hits it drops.

use super::*;

#[test]
fn a_failing_service_admits_fail_open_and_charges_everything_at_completion() {
    // A gRPC error, a refused dispatch and an undecodable answer all count as failures.
    for case in 0..3 {
        let mut host = FakeHost::new();
        let vm = vm(&mut host, &config("open", serde_json::json!({})));
        let mut ex = vm.exchange();
        if case == 1 {
            host.refuse_calls = true;
            assert_eq!(send_request(&mut host, &mut ex, BODY, 1), Flow::Continue);
            host.refuse_calls = false;
        } else {
            assert_eq!(send_request(&mut host, &mut ex, BODY, 1), Flow::Pause);
            if case == 0 {
                answer_grpc(&mut host, &mut ex, 14, b"");
            } else {
                answer_grpc(&mut host, &mut ex, 0, b"\xff\xff");
            }
            assert_eq!(host.request_resumes, 1, "case {case}");
        }
        assert!(host.replies.is_empty(), "case {case}");
        assert_eq!(
            host.metric("outcome=.=failed_open;.;tollgate_global_budget_admissions_total"),
            1,
            "case {case}"
        );
        respond(&mut host, &mut ex, &completion(10, 5));
        // No mesh-wide view to report: the local one stays.
        assert_ne!(
            host.get(Map::Response, "x-ratelimit-limit-tokens"),
            Some("5000")
        );
        ex.on_log(&mut host);
        vm.tick(&mut host);
        let charge = host.grpc_calls.last().unwrap().clone();
        let admission = MeshAdmission {
            reserved: vec![0, 0, 0],
            view: MeshView::default(),
            reached: false,
        };
        let actual = Use {
            tokens: 15,
            cost_micros: MeshBudget::micros((10.0 + 5.0 * 2.0) / 1e6),
        };
        let mut expected = plan_of(&vm, None).completion_charges(&admission, &actual);
        expected.sort_by(|a, b| a.entries.cmp(&b.entries));
        assert_eq!(expected.len(), 3, "tokens, the request and its cost");
        assert_eq!(
            charge.message,
            encode_charges(DOMAIN, &expected),
            "case {case}"
        );
    }
}

#[test]
fn a_failing_service_refuses_fail_closed_with_503() {
    let mut host = FakeHost::new();
    let vm = vm(&mut host, &config("closed", serde_json::json!({})));
    let mut ex = vm.exchange();
    send_request(&mut host, &mut ex, BODY, 1);
    answer_grpc(&mut host, &mut ex, 4, b"");
    assert_eq!(host.request_resumes, 0);
    let reply = &host.replies[0];
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["error"]["code"], "budget_service_unavailable");
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(
        host.metric("outcome=.=failed_closed;.;tollgate_global_budget_admissions_total"),
        1
    );
}

#[test]
fn failed_charges_are_kept_and_sent_again_after_the_retry_interval() {
    let mut host = FakeHost::new();
    let vm = vm(&mut host, &config("open", serde_json::json!({})));
    let prompt = info().prompt_estimate;
    admitted(&mut host, &vm, 1, prompt, 40);
    vm.tick(&mut host);
    let first = host.grpc_calls.last().unwrap().clone();
    vm.on_grpc_response(&mut host, first.token, 14, 0);
    assert_eq!(
        host.metric("outcome=.=error;.;tollgate_global_budget_charges_total"),
        1
    );
    // A second request's remainder merges with the first's while the service is down.
    admitted(&mut host, &vm, 1, prompt, 40);
    let calls = host.grpc_calls.len();
    vm.tick(&mut host);
    assert_eq!(host.grpc_calls.len(), calls, "waits the retry interval");
    host.advance_ms(1000);
    vm.tick(&mut host);
    assert_eq!(host.grpc_calls.len(), calls + 1, "sent again");
    let again = host.grpc_calls.last().unwrap().clone();
    let plan = plan_of(&vm, None);
    let estimate = estimate();
    let admission = MeshAdmission {
        reserved: vec![estimate.tokens, 1, estimate.cost_micros],
        view: MeshView::default(),
        reached: true,
    };
    let actual = Use {
        tokens: prompt + 40,
        cost_micros: MeshBudget::micros((prompt as f64 + 80.0) / 1e6),
    };
    let mut expected = plan.completion_charges(&admission, &actual);
    for c in &mut expected {
        c.hits *= 2;
    }
    expected.sort_by(|a, b| a.entries.cmp(&b.entries));
    assert_eq!(
        again.message,
        encode_charges(DOMAIN, &expected),
        "both, merged"
    );
    let ok = rls_answer(&[(1, 5000, 1, 1), (1, 1, 1, 1)]);
    host.set_body(Body::GrpcResponse, &ok);
    vm.on_grpc_response(&mut host, again.token, 0, ok.len());
    assert_eq!(
        host.metric("outcome=.=ok;.;tollgate_global_budget_charges_total"),
        1
    );
    host.advance_ms(5000);
    vm.tick(&mut host);
    assert_eq!(host.grpc_calls.len(), calls + 1, "nothing left");
}

#[test]
fn a_full_queue_counts_the_hits_it_drops() {
    let mut host = FakeHost::new();
    let extra = serde_json::json!({});
    let json = config("open", extra).replace(
        "\"retry_interval_ms\":1000",
        "\"retry_interval_ms\":1000,\"max_pending_charges\":1",
    );
    let vm = vm(&mut host, &json);
    let prompt = info().prompt_estimate;
    admitted(&mut host, &vm, 1, prompt, 40);
    // Two descriptors (tokens, cost) for one entry: the cost charge is dropped.
    assert_eq!(
        host.metric("outcome=.=dropped;.;tollgate_global_budget_charges_total"),
        1
    );
    let estimate = estimate();
    let cost = MeshBudget::micros((prompt as f64 + 80.0) / 1e6) - estimate.cost_micros;
    let dropped = host.metric("dimension=.=cost;.;tollgate_global_budget_dropped_hits_total")
        + host.metric("dimension=.=tokens;.;tollgate_global_budget_dropped_hits_total");
    assert!(dropped == cost || dropped == 10, "dropped {dropped}");
}
