//! Mesh-wide budgets on the real module (docs/budgets.md): the request waits for the admission
//! callout (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit` on the configured
//! cluster), resumes with the mesh-wide headers, or gets the 429/503 as a local reply; the
//! remainder leaves from the root context on its tick.

use tollgate_host_tests::{Action, SharedHost, Vm};

const BODY: &str =
    r#"{"model":"gpt-4o-mini","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;

fn config(failure_mode: &str) -> String {
    serde_json::json!({
        "budgets": {
            "windows": [{"period": "day", "max_tokens": 1_000_000}],
            "global": {
                "cluster": "ratelimit",
                "timeout_ms": 200,
                "failure_mode": failure_mode,
                "windows": [{"period": "minute", "max_tokens": 3000}]
            }
        }
    })
    .to_string()
}

fn vm(failure_mode: &str) -> Vm {
    let mut vm = Vm::load_shared(SharedHost::new()).unwrap();
    assert!(
        vm.configure(&config(failure_mode)).unwrap(),
        "{:?}",
        vm.logs()
    );
    vm
}

fn send(vm: &mut Vm) -> (u32, Action) {
    let ctx = vm.new_http();
    let len = BODY.len().to_string();
    let headers = [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        ("content-type", "application/json"),
        ("content-length", len.as_str()),
        ("x-api-key", "k-host"),
    ];
    assert_eq!(
        vm.request_headers(ctx, &headers, false).unwrap(),
        Action::Pause
    );
    let action = vm.request_body(ctx, BODY.as_bytes(), true).unwrap();
    (ctx, action)
}

/// A `RateLimitResponse` with one status: (code, limit, remaining, reset seconds).
fn answer(code: u8, limit: u16, remaining: u16, reset: u8) -> Vec<u8> {
    let varint = |v: u16| -> Vec<u8> {
        if v < 0x80 {
            vec![v as u8]
        } else {
            vec![(v as u8) | 0x80, (v >> 7) as u8]
        }
    };
    let mut limit_msg = vec![0x08];
    limit_msg.extend(varint(limit));
    limit_msg.extend([0x10, 0x02]);
    let mut status = vec![0x08, code, 0x12, limit_msg.len() as u8];
    status.extend(limit_msg);
    status.push(0x18);
    status.extend(varint(remaining));
    status.extend([0x22, 0x02, 0x08, reset]);
    let mut out = vec![0x08, code, 0x12, status.len() as u8];
    out.extend(status);
    out
}

#[test]
fn the_request_waits_for_the_service_and_carries_the_mesh_view() {
    let mut vm = vm("open");
    let (ctx, action) = send(&mut vm);
    assert_eq!(action, Action::Pause, "waits for the admission answer");
    let call = vm
        .state()
        .grpc_calls
        .last()
        .cloned()
        .expect("an admission call");
    assert_eq!(call.upstream, "ratelimit");
    assert_eq!(call.service, "envoy.service.ratelimit.v3.RateLimitService");
    assert_eq!(call.method, "ShouldRateLimit");
    assert_eq!(call.context_id, ctx, "the stream's own callout");
    let text = String::from_utf8_lossy(&call.message).into_owned();
    assert!(text.contains("tollgate") && text.contains("window") && text.contains("minute"));
    assert_eq!(vm.stream(ctx).unwrap().resumed_request, 0);

    vm.grpc_call_response(call.token, 0, &answer(1, 3000, 2900, 30))
        .unwrap();
    assert_eq!(vm.stream(ctx).unwrap().resumed_request, 1);
    assert!(vm.local_reply(ctx).is_none());
    vm.response_headers(
        ctx,
        &[(":status", "200"), ("content-type", "application/json")],
        false,
    )
    .unwrap();
    assert_eq!(
        vm.response_header(ctx, "x-ratelimit-remaining-tokens")
            .as_deref(),
        Some("2900")
    );
    assert_eq!(
        vm.response_header(ctx, "x-ratelimit-limit-tokens")
            .as_deref(),
        Some("3000")
    );
    let completion = r#"{"id":"c","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"a long one"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":200,"total_tokens":205}}"#;
    vm.response_body(ctx, completion.as_bytes(), true).unwrap();
    vm.finish(ctx).unwrap();
    // 200 output tokens on a reservation of 8: the remainder leaves from the root context.
    let before = vm.state().grpc_calls.len();
    vm.tick().unwrap();
    let charge = vm.state().grpc_calls.last().cloned().unwrap();
    assert_eq!(vm.state().grpc_calls.len(), before + 1);
    assert_eq!(charge.context_id, vm.root_id());
    vm.grpc_call_response(charge.token, 0, &answer(1, 3000, 2700, 30))
        .unwrap();
    assert!(vm.error_logs().is_empty(), "{:?}", vm.error_logs());
}

#[test]
fn over_the_limit_is_a_429_and_a_failing_service_follows_failure_mode() {
    let mut vm1 = vm("open");
    let (ctx, _) = send(&mut vm1);
    let token = vm1.state().grpc_calls.last().unwrap().token;
    vm1.grpc_call_response(token, 0, &answer(2, 3000, 0, 25))
        .unwrap();
    let reply = vm1.local_reply(ctx).expect("refused");
    assert_eq!(reply.status, 429);
    assert_eq!(reply.header("retry-after"), Some("25"));
    assert_eq!(vm1.stream(ctx).unwrap().resumed_request, 0);

    // gRPC UNAVAILABLE: fail-open resumes, fail-closed answers 503.
    let (ctx, _) = send(&mut vm1);
    let token = vm1.state().grpc_calls.last().unwrap().token;
    vm1.grpc_call_response(token, 14, b"").unwrap();
    assert_eq!(vm1.stream(ctx).unwrap().resumed_request, 1);
    assert!(vm1.local_reply(ctx).is_none());

    let mut vm2 = vm("closed");
    let (ctx, _) = send(&mut vm2);
    let token = vm2.state().grpc_calls.last().unwrap().token;
    vm2.grpc_call_response(token, 4, b"").unwrap();
    let reply = vm2.local_reply(ctx).expect("refused");
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after"), Some("1"));
}
