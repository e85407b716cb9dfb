//! Whole-request scenarios of the mesh-wide budget against the fake host: admission paused on
//! the callout, refusals before any provider is called, the mesh-wide headers, completion
//! charges (streams and disconnects included) sent by the root context, the caller's class, and
//! the status endpoint; the service failing is in [`failures`].

use std::rc::Rc;

use super::super::fake::FakeHost;
use super::super::{Body, Exchange, Flow, Map, Vm};
use crate::mesh_budget::{
    encode_charges, Caller, MeshAdmission, MeshBudget, MeshPlan, MeshView, Use,
};

mod failures;

const DOMAIN: &str = "mesh";

fn config(failure_mode: &str, extra: serde_json::Value) -> String {
    let mut v = serde_json::json!({
        "usage": {"prices": {"gpt-4o-mini": {"input_per_million": 1.0, "output_per_million": 2.0}}},
        "budgets": {
            "windows": [{"period": "day", "max_tokens": 1_000_000}],
            "default_max_tokens": 50,
            "global": {
                "cluster": "ratelimit",
                "domain": DOMAIN,
                "timeout_ms": 300,
                "failure_mode": failure_mode,
                "retry_interval_ms": 1000,
                "windows": [{"period": "minute", "max_tokens": 5000, "max_requests": 100},
                            {"period": "day", "max_cost_usd": 1.0}],
                "classes": {"pro": [{"period": "minute", "max_tokens": 90000}]},
                "class_claim": "tier"
            }
        }
    });
    if let (Some(base), Some(more)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in more {
            base.insert(k.clone(), val.clone());
        }
    }
    v.to_string()
}

fn vm(host: &mut FakeHost, json: &str) -> Rc<Vm> {
    Rc::new(Vm::configure(host, json.as_bytes()).expect("config"))
}

const BODY: &str = r#"{"model":"gpt-4o-mini","max_tokens":30,"messages":[{"role":"user","content":"hello there"}]}"#;

/// Sends the request headers and `body` in `chunks` pieces; returns the last flow.
fn send_request(host: &mut FakeHost, ex: &mut Exchange, body: &str, chunks: usize) -> Flow {
    host.set_map(
        Map::Request,
        &[
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            ("content-type", "application/json"),
            ("x-api-key", "k-alice"),
        ],
    );
    host.properties
        .insert("source.address".into(), b"10.0.0.1:5555".to_vec());
    assert_eq!(ex.on_request_headers(host, false), Flow::Pause);
    host.set_body(Body::Request, body.as_bytes());
    let len = body.len();
    let step = len.div_ceil(chunks.max(1));
    let mut sent = 0;
    loop {
        sent = (sent + step).min(len);
        let flow = ex.on_request_body(host, sent, sent == len);
        if sent == len {
            return flow;
        }
        assert_eq!(flow, Flow::Pause, "the body is held until complete");
    }
}

/// Protobuf bytes of a `RateLimitResponse` with one status per (code, limit, remaining, reset).
fn rls_answer(statuses: &[(u64, u64, u64, u64)]) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn field(out: &mut Vec<u8>, tag: u64, v: u64) {
        varint(out, tag << 3);
        varint(out, v);
    }
    fn message(out: &mut Vec<u8>, tag: u64, body: &[u8]) {
        varint(out, (tag << 3) | 2);
        varint(out, body.len() as u64);
        out.extend_from_slice(body);
    }
    let overall = if statuses.iter().any(|s| s.0 == 2) {
        2
    } else {
        1
    };
    let mut out = Vec::new();
    field(&mut out, 1, overall);
    for &(code, limit, remaining, reset) in statuses {
        let mut s = Vec::new();
        field(&mut s, 1, code);
        let mut l = Vec::new();
        field(&mut l, 1, limit);
        field(&mut l, 2, 2);
        message(&mut s, 2, &l);
        field(&mut s, 3, remaining);
        let mut d = Vec::new();
        field(&mut d, 1, reset);
        message(&mut s, 4, &d);
        message(&mut out, 2, &s);
    }
    out
}

fn answer_grpc(host: &mut FakeHost, ex: &mut Exchange, status: u32, body: &[u8]) {
    let token = host.grpc_calls.last().expect("a gRPC call").token;
    host.set_body(Body::GrpcResponse, body);
    ex.on_grpc_response(host, token, status, body.len());
}

fn respond(host: &mut FakeHost, ex: &mut Exchange, body: &str) {
    host.set_map(
        Map::Response,
        &[(":status", "200"), ("content-type", "application/json")],
    );
    let _ = ex.on_response_headers(host, false);
    host.set_body(Body::Response, body.as_bytes());
    let _ = ex.on_response_body(host, body.len(), true);
}

fn completion(prompt: u64, completion: u64) -> String {
    serde_json::json!({
        "id": "c1", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    })
    .to_string()
}

fn info() -> crate::usage::RequestInfo {
    crate::usage::RequestInfo::from_request(
        crate::usage::ApiKind::OpenAiChat,
        "/v1/chat/completions",
        BODY.as_bytes(),
    )
}

/// What the request asks the service for: the local estimate (prompt estimate + `max_tokens`
/// 30), its price (input $1, output $2 per million), one request.
fn estimate() -> Use {
    let i = info();
    Use {
        tokens: i.prompt_estimate + 30,
        cost_micros: MeshBudget::micros((i.prompt_estimate as f64 + 30.0 * 2.0) / 1e6),
    }
}

fn alice() -> String {
    crate::identity::api_key_identity("k-alice").unwrap()
}

fn plan_of(vm: &Vm, class: Option<&str>) -> MeshPlan {
    let budget = vm.config.budgets.as_ref().unwrap().global.as_ref().unwrap();
    budget.plan(&Caller {
        id: &alice(),
        class,
    })
}

fn ok_answer() -> Vec<u8> {
    rls_answer(&[
        (1, 5000, 4100, 42),
        (1, 100, 97, 42),
        (1, 1_000_000, 999_000, 800),
    ])
}

/// An admitted request that used `prompt` + `completion` tokens, settled and logged.
fn admitted(host: &mut FakeHost, vm: &Rc<Vm>, chunks: usize, prompt: u64, completion_tokens: u64) {
    let mut ex = vm.exchange();
    assert_eq!(send_request(host, &mut ex, BODY, chunks), Flow::Pause);
    answer_grpc(host, &mut ex, 0, &ok_answer());
    respond(host, &mut ex, &completion(prompt, completion_tokens));
    ex.on_log(host);
}

#[test]
fn an_admitted_request_waits_for_the_service_then_carries_the_mesh_view_and_charges_the_rest() {
    for chunks in 1..=4 {
        let mut host = FakeHost::new();
        let vm = vm(&mut host, &config("open", serde_json::json!({})));
        let mut ex = vm.exchange();
        assert_eq!(send_request(&mut host, &mut ex, BODY, chunks), Flow::Pause);
        assert_eq!(host.grpc_calls.len(), 1, "one admission call");
        let call = host.grpc_calls[0].clone();
        assert_eq!(call.cluster, "ratelimit");
        assert_eq!(
            call.method,
            "envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"
        );
        let plan = plan_of(&vm, None);
        let estimate = estimate();
        assert_eq!(call.message, plan.admission_request(DOMAIN, &estimate));
        assert_eq!(host.request_resumes, 0, "paused until the service answers");

        answer_grpc(&mut host, &mut ex, 0, &ok_answer());
        assert_eq!(host.request_resumes, 1);
        assert!(host.replies.is_empty());
        assert_eq!(
            host.metric("outcome=.=ok;.;tollgate_global_budget_admissions_total"),
            1
        );
        // The answer used 40 output tokens, more than the 30 reserved: the remainder is queued,
        // the root context sends it on its tick.
        let prompt = info().prompt_estimate;
        respond(&mut host, &mut ex, &completion(prompt, 40));
        assert_eq!(
            host.get(Map::Response, "x-ratelimit-remaining-tokens"),
            Some("4100")
        );
        assert_eq!(
            host.get(Map::Response, "x-ratelimit-limit-tokens"),
            Some("5000")
        );
        assert_eq!(
            host.get(Map::Response, "x-ratelimit-remaining-requests"),
            Some("97")
        );
        assert_eq!(
            host.get(Map::Response, "x-ratelimit-reset-tokens"),
            Some("42s")
        );
        ex.on_log(&mut host);
        assert_eq!(
            host.grpc_calls.len(),
            1,
            "charges leave from the root context"
        );
        vm.tick(&mut host);
        assert_eq!(host.grpc_calls.len(), 2, "one charge call");
        let charge = host.grpc_calls[1].clone();
        let actual = Use {
            tokens: prompt + 40,
            cost_micros: MeshBudget::micros((prompt as f64 + 40.0 * 2.0) / 1e6),
        };
        let admission = MeshAdmission {
            reserved: vec![estimate.tokens, 1, estimate.cost_micros],
            view: MeshView::default(),
            reached: true,
        };
        let mut expected = plan.completion_charges(&admission, &actual);
        expected.sort_by(|a, b| a.entries.cmp(&b.entries));
        assert_eq!(expected.len(), 2, "tokens and cost, not the request");
        assert_eq!(expected[1].hits, 10, "40 − 30 tokens");
        assert_eq!(charge.message, encode_charges(DOMAIN, &expected));
        assert_eq!(
            host.metric("outcome=.=sent;.;tollgate_global_budget_charges_total"),
            1
        );
        host.set_body(Body::GrpcResponse, &rls_answer(&[(1, 5000, 4000, 40)]));
        vm.on_grpc_response(
            &mut host,
            charge.token,
            0,
            rls_answer(&[(1, 5000, 4000, 40)]).len(),
        );
        assert_eq!(
            host.metric("outcome=.=ok;.;tollgate_global_budget_charges_total"),
            1
        );
        vm.tick(&mut host);
        assert_eq!(host.grpc_calls.len(), 2, "nothing left to send");
    }
}

#[test]
fn over_the_mesh_budget_the_caller_gets_the_local_budgets_429_before_any_provider() {
    let mut host = FakeHost::new();
    let vm = vm(&mut host, &config("open", serde_json::json!({})));
    let mut ex = vm.exchange();
    assert_eq!(send_request(&mut host, &mut ex, BODY, 2), Flow::Pause);
    answer_grpc(
        &mut host,
        &mut ex,
        0,
        &rls_answer(&[(2, 5000, 0, 17), (1, 100, 50, 17), (1, 1_000_000, 5, 600)]),
    );
    assert_eq!(host.request_resumes, 0, "never forwarded");
    assert_eq!(host.replies.len(), 1);
    let reply = &host.replies[0];
    assert_eq!(reply.status, 429);
    assert_eq!(reply.json()["error"]["type"], "rate_limit_error");
    assert_eq!(reply.json()["error"]["code"], "token_budget_exceeded");
    assert_eq!(reply.header("retry-after"), Some("17"));
    assert_eq!(reply.header("x-ratelimit-limit-tokens"), Some("5000"));
    assert_eq!(reply.header("x-ratelimit-remaining-tokens"), Some("0"));
    assert_eq!(reply.header("x-ratelimit-reset-tokens"), Some("17s"));
    assert_eq!(
        host.metric("outcome=.=over_limit;.;tollgate_global_budget_admissions_total"),
        1
    );
    assert_eq!(
        host.metric("dimension=.=tokens;.;tollgate_budget_rejections_total"),
        1
    );
    ex.on_log(&mut host);
    // The local reservation is released, and nothing is charged for a refused request.
    let b = vm.config.budgets.as_ref().unwrap();
    let now = host.clock_ns.get() / 1_000_000_000;
    let snap = b.budgets.snapshot(&host, &alice(), now);
    assert_eq!(snap[0].1.reserved_tokens, 0);
    vm.tick(&mut host);
    assert_eq!(host.grpc_calls.len(), 1, "no charge call");
}

#[test]
fn a_cost_window_refuses_in_dollars() {
    let mut host = FakeHost::new();
    let vm = vm(&mut host, &config("open", serde_json::json!({})));
    let mut ex = vm.exchange();
    send_request(&mut host, &mut ex, BODY, 1);
    answer_grpc(
        &mut host,
        &mut ex,
        0,
        &rls_answer(&[(1, 5000, 10, 17), (1, 100, 50, 17), (2, 1_000_000, 0, 600)]),
    );
    let reply = &host.replies[0];
    assert_eq!(reply.status, 429);
    assert_eq!(reply.json()["error"]["code"], "cost_budget_exceeded");
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("$1.00 per 86400s"), "{message}");
    assert_eq!(reply.header("retry-after"), Some("600"));
}

#[test]
fn a_client_that_disconnects_mid_stream_is_charged_for_what_was_streamed() {
    let mut host = FakeHost::new();
    let vm = vm(&mut host, &config("open", serde_json::json!({})));
    let mut ex = vm.exchange();
    let body = BODY.replace("\"max_tokens\":30", "\"max_tokens\":1,\"stream\":true");
    send_request(&mut host, &mut ex, &body, 3);
    answer_grpc(&mut host, &mut ex, 0, &ok_answer());
    host.set_map(
        Map::Response,
        &[(":status", "200"), ("content-type", "text/event-stream")],
    );
    let _ = ex.on_response_headers(&mut host, false);
    let chunk = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a long answer that goes on and on and on and on and on\"}}]}\n\n";
    host.set_body(Body::Response, chunk.as_bytes());
    let _ = ex.on_response_body(&mut host, chunk.len(), false);
    // The client goes away: no terminator, no usage. Usage is estimated from what streamed.
    ex.on_log(&mut host);
    vm.tick(&mut host);
    assert_eq!(
        host.grpc_calls.len(),
        2,
        "the estimated remainder is charged"
    );
    let charge = String::from_utf8_lossy(&host.grpc_calls[1].message).into_owned();
    assert!(charge.contains("tokens"), "{charge:?}");
}

#[test]
fn a_jwt_class_claim_picks_the_class_windows() {
    let mut host = FakeHost::new();
    let json = config(
        "open",
        serde_json::json!({"envoy_jwt": {"payload_key": "payload", "required": true}}),
    );
    let vm = vm(&mut host, &json);
    let ns = "metadata.filter_metadata.envoy.filters.http.jwt_authn.payload";
    host.properties
        .insert(format!("{ns}.sub"), b"alice".to_vec());
    host.properties
        .insert(format!("{ns}.tier"), b"pro".to_vec());
    let mut ex = vm.exchange();
    send_request(&mut host, &mut ex, BODY, 1);
    let budget = vm.config.budgets.as_ref().unwrap().global.as_ref().unwrap();
    let plan = budget.plan(&Caller {
        id: "alice",
        class: Some("pro"),
    });
    assert_eq!(plan.class, "pro");
    assert_eq!(plan.windows.len(), 1);
    let estimate = estimate();
    assert_eq!(
        host.grpc_calls[0].message,
        plan.admission_request(DOMAIN, &estimate)
    );
}

#[test]
fn the_status_endpoint_reports_the_mesh_wide_windows() {
    let mut host = FakeHost::new();
    let vm = vm(
        &mut host,
        &config(
            "open",
            serde_json::json!({"status": {"path": "/tollgate/status"}}),
        ),
    );
    let mut ex = vm.exchange();
    host.set_map(
        Map::Request,
        &[
            (":method", "GET"),
            (":path", "/tollgate/status"),
            ("x-api-key", "k-alice"),
        ],
    );
    assert_eq!(ex.on_request_headers(&mut host, true), Flow::Pause);
    let plan = plan_of(&vm, None);
    assert_eq!(host.grpc_calls[0].message, plan.status_request(DOMAIN));
    assert!(host.replies.is_empty());
    answer_grpc(&mut host, &mut ex, 0, &ok_answer());
    let reply = &host.replies[0];
    assert_eq!(reply.status, 200);
    let doc = reply.json();
    assert_eq!(doc["mesh_budget"]["windows"][0]["remaining"], 4100);
    assert_eq!(doc["mesh_budget"]["windows"][0]["limit"], 5000);
    assert_eq!(
        doc["mesh_budget"]["windows"][2]["measure"],
        "cost_usd_micros"
    );
    // The service down: the document still comes, without the mesh-wide view.
    let mut ex = vm.exchange();
    assert_eq!(ex.on_request_headers(&mut host, true), Flow::Pause);
    answer_grpc(&mut host, &mut ex, 14, b"");
    let reply = host.replies.last().unwrap();
    assert_eq!(reply.status, 200);
    assert!(reply.json()["mesh_budget"].is_null());
    assert!(reply.json()["budget"]["windows"].is_array());
}

/// Sends `body` whole with `headers` added to a chat request; returns the flow.
fn send_with(host: &mut FakeHost, ex: &mut Exchange, headers: &[(&str, &str)], body: &str) -> Flow {
    let mut request = vec![
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        ("content-type", "application/json"),
    ];
    request.extend_from_slice(headers);
    host.set_map(Map::Request, &request);
    assert_eq!(ex.on_request_headers(host, false), Flow::Pause);
    host.set_body(Body::Request, body.as_bytes());
    ex.on_request_body(host, body.len(), true)
}

#[test]
fn a_virtual_keys_team_is_the_callers_class() {
    use crate::keys::secret::{encode, KeyDigest};
    let key = encode(&[7; 32]);
    let mut host = FakeHost::new();
    let json = config(
        "open",
        serde_json::json!({"keys": {"inline": [{
            "id": "app", "sha256": KeyDigest::of(&key).to_hex(), "owner": "app-owner", "team": "pro"
        }]}}),
    );
    let vm = vm(&mut host, &json);
    let mut ex = vm.exchange();
    let bearer = format!("Bearer {key}");
    let flow = send_with(&mut host, &mut ex, &[("authorization", &bearer)], BODY);
    assert_eq!(flow, Flow::Pause, "waiting for the admission call");
    let budget = vm.config.budgets.as_ref().unwrap().global.as_ref().unwrap();
    let plan = budget.plan(&Caller {
        id: "app-owner",
        class: Some("pro"),
    });
    assert_eq!(
        plan.windows.len(),
        1,
        "the class's windows, not the default two"
    );
    assert_eq!(
        host.grpc_calls[0].message,
        plan.admission_request(DOMAIN, &estimate())
    );
}

#[test]
fn a_cache_hit_is_looked_up_once_the_mesh_wide_admission_answers() {
    const DETERMINISTIC: &str = r#"{"model":"gpt-4o-mini","temperature":0,"max_tokens":30,"messages":[{"role":"user","content":"hello there"}]}"#;
    let mut host = FakeHost::new();
    let json = config(
        "open",
        serde_json::json!({"cache": {"scope": "user", "rules": [{"path_prefix": "/v1/"}]}}),
    );
    let vm = vm(&mut host, &json);
    let key = [("x-api-key", "k-alice")];
    // The first request is admitted, answered by the provider and stored.
    let mut first = vm.exchange();
    assert_eq!(
        send_with(&mut host, &mut first, &key, DETERMINISTIC),
        Flow::Pause
    );
    answer_grpc(&mut host, &mut first, 0, &ok_answer());
    assert_eq!(host.request_resumes, 1);
    respond(&mut host, &mut first, &completion(9, 5));
    first.on_log(&mut host);
    // The repeat waits for admission too, then is answered from the cache, never resumed.
    let replies = host.replies.len();
    let mut second = vm.exchange();
    assert_eq!(
        send_with(&mut host, &mut second, &key, DETERMINISTIC),
        Flow::Pause
    );
    assert_eq!(host.replies.len(), replies, "no answer before admission");
    answer_grpc(&mut host, &mut second, 0, &ok_answer());
    assert_eq!(host.replies.len(), replies + 1, "the hit answered locally");
    assert_eq!(host.replies[replies].status, 200);
    assert_eq!(host.request_resumes, 1, "the provider is never asked");
    second.on_log(&mut host);
    assert_eq!(host.property_text("tollgate_cache").as_deref(), Some("hit"));
}
