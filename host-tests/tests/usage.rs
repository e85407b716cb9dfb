//! Host tests for usage accounting and budgets on the real module: request inspection and
//! rewrite, response tracking (JSON and streams in arbitrary chunks), tagged metrics, access-log
//! properties, 429s with rate-limit headers, and budgets shared by several worker VMs.

use tollgate_host_tests::{Action, SharedHost, Vm};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../filter/src/usage/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn vm_with(config: &str, shared: SharedHost) -> Vm {
    let mut vm = Vm::load_shared(shared).unwrap();
    assert!(vm.configure(config).unwrap(), "{:?}", vm.logs());
    vm
}

fn vm(config: &str) -> Vm {
    vm_with(config, SharedHost::new())
}

/// Sends a request with a body through headers+body callbacks; returns the body action.
fn send_request(vm: &mut Vm, path: &str, body: &str, extra: &[(&str, &str)]) -> (u32, Action) {
    let ctx = vm.new_http();
    let len = body.len().to_string();
    let mut headers = vec![
        (":method", "POST"),
        (":path", path),
        ("content-type", "application/json"),
        ("content-length", len.as_str()),
    ];
    headers.extend_from_slice(extra);
    let h = vm.request_headers(ctx, &headers, false).unwrap();
    assert_eq!(
        h,
        Action::Pause,
        "headers wait for the body of an LLM request"
    );
    let action = vm.request_body(ctx, body.as_bytes(), true).unwrap();
    (ctx, action)
}

/// Delivers a response in chunks of `chunk` bytes.
fn respond(vm: &mut Vm, ctx: u32, content_type: &str, body: &[u8], chunk: usize) {
    vm.response_headers(
        ctx,
        &[(":status", "200"), ("content-type", content_type)],
        false,
    )
    .unwrap();
    let pieces: Vec<&[u8]> = body.chunks(chunk.max(1)).collect();
    for (i, piece) in pieces.iter().enumerate() {
        vm.response_body(ctx, piece, i + 1 == pieces.len()).unwrap();
    }
}

fn property(vm: &Vm, ctx: u32, name: &str) -> Option<String> {
    vm.property(ctx, name)
        .map(|v| String::from_utf8(v).unwrap())
}

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}"#;

#[test]
fn openai_json_usage_becomes_tagged_metrics_and_log_properties() {
    let mut vm = vm(
        r#"{"usage":{"prices":{"gpt-4o-mini":{"input_per_million":150000,"output_per_million":600000}}}}"#,
    );
    vm.state_mut()
        .properties
        .insert("source\0address".into(), b"10.0.0.7:5555".to_vec());
    let (ctx, action) = send_request(&mut vm, "/v1/chat/completions", CHAT, &[]);
    assert_eq!(action, Action::Continue);
    let body = br#"{"id":"x","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#;
    respond(&mut vm, ctx, "application/json", body, 40);
    vm.finish(ctx).unwrap();
    let m = vm.shared();
    assert_eq!(
        m.metric(
            "provider=.=openai;.;model=.=gpt-4o-mini;.;token_type=.=input;.;tollgate_tokens_total"
        ),
        Some(12)
    );
    assert_eq!(
        m.metric(
            "provider=.=openai;.;model=.=gpt-4o-mini;.;token_type=.=output;.;tollgate_tokens_total"
        ),
        Some(5)
    );
    // 12 × 0.15 + 5 × 0.6 = 4.8 USD = 4_800_000 µ$
    assert_eq!(
        m.metric("provider=.=openai;.;model=.=gpt-4o-mini;.;tollgate_cost_microdollars_total"),
        Some(4_800_000)
    );
    assert_eq!(
        m.metric("provider=.=openai;.;model=.=gpt-4o-mini;.;status_class=.=2xx;.;usage=.=reported;.;tollgate_llm_requests_total"),
        Some(1)
    );
    assert_eq!(
        property(&vm, ctx, "tollgate_input_tokens").as_deref(),
        Some("12")
    );
    assert_eq!(
        property(&vm, ctx, "tollgate_output_tokens").as_deref(),
        Some("5")
    );
    assert_eq!(
        property(&vm, ctx, "tollgate_usage_complete").as_deref(),
        Some("true")
    );
    assert_eq!(
        property(&vm, ctx, "tollgate_cost_usd").as_deref(),
        Some("4.800000")
    );
    assert_eq!(
        property(&vm, ctx, "tollgate_user").as_deref(),
        Some("ip:10.0.0.7")
    );
    assert_eq!(
        vm.stream(ctx).unwrap().forwarded_response_body,
        body.to_vec(),
        "JSON passes unchanged"
    );
}

#[test]
fn openai_stream_without_include_usage_is_rewritten_and_the_extra_chunk_stripped() {
    let mut vm = vm("{}");
    let req =
        r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hello"}]}"#;
    let (ctx, _) = send_request(&mut vm, "/v1/chat/completions", req, &[]);
    let forwarded =
        String::from_utf8(vm.stream(ctx).unwrap().forwarded_request_body.clone()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&forwarded).unwrap();
    assert_eq!(v["stream_options"]["include_usage"], true, "{forwarded}");
    assert_eq!(
        vm.request_header(ctx, "content-length"),
        Some(forwarded.len().to_string())
    );

    let stream = fixture("openai_chat_stream.sse");
    respond(&mut vm, ctx, "text/event-stream", &stream, 7);
    let to_client =
        String::from_utf8(vm.stream(ctx).unwrap().forwarded_response_body.clone()).unwrap();
    assert!(
        !to_client.contains("\"usage\":{"),
        "usage chunk must be stripped: {to_client}"
    );
    assert!(to_client.contains("Hello"));
    assert!(to_client.trim_end().ends_with("data: [DONE]"));
    vm.finish(ctx).unwrap();
    let m = vm.shared();
    assert_eq!(
        m.metric("provider=.=openai;.;model=.=o3-mini-2025-01-31;.;token_type=.=input;.;tollgate_tokens_total"),
        Some(2006)
    );
    assert_eq!(m.metric("provider=.=openai;.;model=.=o3-mini-2025-01-31;.;token_type=.=cached_input;.;tollgate_tokens_total"), Some(1920));
    assert_eq!(
        m.metric(
            "provider=.=openai;.;model=.=o3-mini-2025-01-31;.;token_type=.=reasoning;.;tollgate_tokens_total"
        ),
        Some(256)
    );
}

#[test]
fn stream_that_asked_for_usage_passes_byte_identical() {
    let mut vm = vm("{}");
    let req = r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#;
    let (ctx, _) = send_request(&mut vm, "/v1/chat/completions", req, &[]);
    assert_eq!(
        vm.stream(ctx).unwrap().forwarded_request_body,
        req.as_bytes()
    );
    let stream = fixture("openai_chat_stream.sse");
    respond(&mut vm, ctx, "text/event-stream", &stream, 13);
    assert_eq!(vm.stream(ctx).unwrap().forwarded_response_body, stream);
}

#[test]
fn anthropic_stream_in_any_chunking_counts_the_same_usage() {
    let stream = fixture("anthropic_stream.sse");
    let mut seen = Vec::new();
    for chunk in [1usize, 3, 64, 4096] {
        let mut vm = vm("{}");
        let req = r#"{"model":"claude-sonnet-4","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let (ctx, _) = send_request(&mut vm, "/v1/messages", req, &[]);
        respond(&mut vm, ctx, "text/event-stream", &stream, chunk);
        assert_eq!(vm.stream(ctx).unwrap().forwarded_response_body, stream);
        vm.finish(ctx).unwrap();
        let names = vm.shared().metric_names();
        let input = names
            .iter()
            .find(|n| {
                n.starts_with("provider=.=anthropic;.;")
                    && n.ends_with("token_type=.=input;.;tollgate_tokens_total")
            })
            .cloned()
            .unwrap_or_else(|| panic!("no anthropic input metric in {names:?}"));
        seen.push(vm.shared().metric(&input).unwrap());
        assert_eq!(
            property(&vm, ctx, "tollgate_usage_complete").as_deref(),
            Some("true")
        );
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    assert!(seen[0] > 0);
}

#[test]
fn truncated_stream_is_estimated_and_counted_as_upstream_error() {
    let mut vm = vm("{}");
    let req = r#"{"model":"claude-x","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"a long enough prompt"}]}"#;
    let (ctx, _) = send_request(&mut vm, "/v1/messages", req, &[]);
    let stream = fixture("anthropic_stream.sse");
    let cut = &stream[..stream.len() / 2];
    respond(&mut vm, ctx, "text/event-stream", cut, 100);
    vm.finish(ctx).unwrap();
    assert_eq!(
        property(&vm, ctx, "tollgate_usage_complete").as_deref(),
        Some("false")
    );
    assert_eq!(
        property(&vm, ctx, "tollgate_usage_estimated").as_deref(),
        Some("true")
    );
    assert_eq!(
        vm.shared()
            .metric("provider=.=anthropic;.;reason=.=truncated;.;tollgate_upstream_errors_total"),
        Some(1)
    );
}

#[test]
fn time_to_first_token_is_recorded() {
    let mut vm = vm("{}");
    let req = r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#;
    let (ctx, _) = send_request(&mut vm, "/v1/chat/completions", req, &[]);
    vm.response_headers(
        ctx,
        &[(":status", "200"), ("content-type", "text/event-stream")],
        false,
    )
    .unwrap();
    vm.advance_ms(250);
    let stream = fixture("openai_chat_stream.sse");
    vm.response_body(ctx, &stream, true).unwrap();
    vm.finish(ctx).unwrap();
    assert_eq!(
        property(&vm, ctx, "tollgate_ttft_ms").as_deref(),
        Some("250")
    );
    let samples = vm.shared().histogram(
        "provider=.=openai;.;model=.=o3-mini-2025-01-31;.;gen_ai_server_time_to_first_token_ms",
    );
    assert_eq!(samples, vec![250]);
}

const BUDGET: &str =
    r#"{"budgets":{"windows":[{"period":"minute","max_tokens":300}],"warn_thresholds":[0.5]}}"#;

fn small_chat(max_tokens: u32) -> String {
    format!(
        r#"{{"model":"gpt-4o-mini","max_tokens":{max_tokens},"messages":[{{"role":"user","content":"hi"}}]}}"#
    )
}

#[test]
fn budget_refuses_with_429_and_rate_limit_headers() {
    let mut vm = vm(BUDGET);
    let key = [("x-api-key", "user-key-1")];
    let (ctx, action) = send_request(&mut vm, "/v1/chat/completions", &small_chat(100), &key);
    assert_eq!(action, Action::Continue);
    vm.response_headers(
        ctx,
        &[(":status", "200"), ("content-type", "application/json")],
        false,
    )
    .unwrap();
    assert_eq!(
        vm.response_header(ctx, "x-ratelimit-limit-tokens")
            .as_deref(),
        Some("300")
    );
    assert!(vm
        .response_header(ctx, "x-ratelimit-remaining-tokens")
        .is_some());
    let body = br#"{"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":100,"completion_tokens":150,"total_tokens":250}}"#;
    vm.response_body(ctx, body, true).unwrap();
    vm.finish(ctx).unwrap();
    assert!(
        vm.logs().iter().any(|l| l.contains("budget warning")),
        "{:?}",
        vm.logs()
    );
    assert_eq!(
        vm.shared()
            .metric("threshold=.=50;.;tollgate_budget_warnings_total"),
        Some(1)
    );

    let (ctx2, action) = send_request(&mut vm, "/v1/chat/completions", &small_chat(100), &key);
    assert_eq!(action, Action::Pause);
    let reply = vm.local_reply(ctx2).expect("429").clone();
    assert_eq!(reply.status, 429);
    assert!(reply.header("retry-after").unwrap().parse::<u64>().unwrap() <= 60);
    assert_eq!(reply.header("x-ratelimit-remaining-tokens"), Some("0"));
    assert_eq!(reply.json()["error"]["code"], "token_budget_exceeded");
    assert_eq!(
        vm.shared()
            .metric("dimension=.=tokens;.;tollgate_budget_rejections_total"),
        Some(1)
    );

    // Another caller has its own budget.
    let (_, action) = send_request(
        &mut vm,
        "/v1/chat/completions",
        &small_chat(100),
        &[("x-api-key", "other")],
    );
    assert_eq!(action, Action::Continue);
}

#[test]
fn budget_window_rolls_over() {
    let mut vm = vm(BUDGET);
    vm.set_time_secs(1_800_000_020);
    let key = [("x-api-key", "roller")];
    let (ctx, _) = send_request(&mut vm, "/v1/chat/completions", &small_chat(10), &key);
    vm.response_headers(
        ctx,
        &[(":status", "200"), ("content-type", "application/json")],
        false,
    )
    .unwrap();
    vm.response_body(
        ctx,
        br#"{"usage":{"prompt_tokens":200,"completion_tokens":100}}"#,
        true,
    )
    .unwrap();
    vm.finish(ctx).unwrap();
    let (_, action) = send_request(&mut vm, "/v1/chat/completions", &small_chat(10), &key);
    assert_eq!(action, Action::Pause, "budget spent");
    vm.advance_ms(61_000);
    let (_, action) = send_request(&mut vm, "/v1/chat/completions", &small_chat(10), &key);
    assert_eq!(action, Action::Continue, "new window");
}

#[test]
fn concurrent_requests_on_several_workers_stop_at_the_budget() {
    let shared = SharedHost::new();
    let mut workers: Vec<Vm> = (0..3).map(|_| vm_with(BUDGET, shared.clone())).collect();
    let key = [("x-api-key", "racer")];
    let mut admitted = 0;
    // 12 requests in flight at once, each reserving ~1 + 50 tokens: 300 / 51 → 5 fit.
    for i in 0..12 {
        let vm = &mut workers[i % 3];
        let (_, action) = send_request(vm, "/v1/chat/completions", &small_chat(50), &key);
        if action == Action::Continue {
            admitted += 1;
        }
    }
    assert_eq!(
        admitted, 5,
        "reservations must hold concurrent requests to the budget"
    );
}

#[test]
fn requests_outside_llm_apis_are_not_held_or_accounted() {
    let mut vm = vm(BUDGET);
    let ctx = vm.new_http();
    let a = vm
        .request_headers(ctx, &[(":method", "GET"), (":path", "/healthz")], false)
        .unwrap();
    assert_eq!(a, Action::Continue);
}
