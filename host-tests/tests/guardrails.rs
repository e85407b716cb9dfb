//! Host tests for request guardrails on the real module: every refusal is an OpenAI-shaped local
//! reply carrying the correlation id, counted by reason, and the request never continues.

use tollgate_host_tests::{Action, Vm};

const CONFIG: &str = r#"{
  "guardrails": {
    "defaults": { "max_messages": 3, "max_message_chars": 20 },
    "routes": [
      { "path_prefix": "/v1/embeddings", "max_request_bytes": 64 },
      { "path_exact": "/internal/json", "require_json_content_type": true }
    ]
  }
}"#;

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

fn configured(config: &str) -> Vm {
    let mut vm = Vm::load().expect("module loads");
    assert!(
        vm.configure(config).expect("configure runs"),
        "config refused: {:?}",
        vm.logs()
    );
    vm
}

/// Sends a POST with `body` (content-length set) and returns the context and the action of the
/// last callback the filter saw (headers when it replied there, else the body).
fn post(
    vm: &mut Vm,
    path: &str,
    content_type: Option<&str>,
    body: &str,
    rid: &str,
) -> (u32, Action) {
    let ctx = vm.new_http();
    let len = body.len().to_string();
    let mut headers = vec![
        (":method", "POST"),
        (":path", path),
        (":authority", "localhost"),
        ("content-length", len.as_str()),
        ("x-request-id", rid),
    ];
    if let Some(ct) = content_type {
        headers.push(("content-type", ct));
    }
    let action = vm.request_headers(ctx, &headers, body.is_empty()).unwrap();
    if vm.local_reply(ctx).is_some() || body.is_empty() {
        return (ctx, action);
    }
    let action = vm.request_body(ctx, body.as_bytes(), true).unwrap();
    (ctx, action)
}

/// Asserts the context was refused with `status` and `code`, the OpenAI error shape, the
/// request id in header and body, and nothing forwarded.
fn assert_refused(vm: &Vm, ctx: u32, action: Action, status: u32, code: &str, rid: &str) {
    assert_eq!(
        action,
        Action::Pause,
        "{code}: the request must not continue"
    );
    let reply = vm
        .local_reply(ctx)
        .unwrap_or_else(|| panic!("{code}: no local reply; logs: {:?}", vm.logs()));
    assert_eq!(
        reply.status,
        status,
        "{code}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("x-request-id"), Some(rid));
    let body = reply.json();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert_eq!(body["error"]["request_id"], rid, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    let stream = vm.stream(ctx).unwrap();
    assert!(
        stream.forwarded_request_body.is_empty(),
        "{code}: body forwarded upstream"
    );
    assert_eq!(stream.resumed_request, 0, "{code}: request resumed");
}

fn rejections(vm: &Vm, reason: &str) -> i64 {
    vm.shared()
        .metric(&format!(
            "reason=.={reason};.;tollgate_guardrail_rejections_total"
        ))
        .unwrap_or(0)
}

#[test]
fn each_violation_is_refused_openai_shaped_with_the_request_id_and_counted() {
    let mut vm = configured(CONFIG);
    let long = "x".repeat(21);
    let too_long = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"text","text":"{long}"}}]}}]}}"#
    );
    let four = r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"role":"user","content":"c"},{"role":"user","content":"d"}]}"#;
    let big_embedding = format!(r#"{{"model":"m","input":"{}"}}"#, "y".repeat(80));
    let cases: Vec<(&str, Option<&str>, String, u32, &str)> = vec![
        (
            "/v1/chat/completions",
            Some("text/plain"),
            CHAT.into(),
            415,
            "unsupported_content_type",
        ),
        (
            "/v1/chat/completions",
            None,
            CHAT.into(),
            415,
            "unsupported_content_type",
        ),
        (
            "/internal/json",
            Some("text/plain"),
            "abc".into(),
            415,
            "unsupported_content_type",
        ),
        (
            "/v1/chat/completions",
            Some("application/json"),
            r#"{"messages":[{"role":"user","content":"hi"}]}"#.into(),
            400,
            "missing_field",
        ),
        (
            "/v1/chat/completions",
            Some("application/json"),
            r#"{"model":"m"}"#.into(),
            400,
            "missing_field",
        ),
        (
            "/v1/chat/completions",
            Some("application/json"),
            r#"{"model":"m","messages":[]}"#.into(),
            400,
            "empty_messages",
        ),
        (
            "/v1/chat/completions",
            Some("application/json"),
            "{not json".into(),
            400,
            "invalid_json",
        ),
        (
            "/v1/chat/completions",
            Some("application/json"),
            too_long,
            400,
            "message_too_long",
        ),
        (
            "/v1/chat/completions",
            Some("application/json"),
            four.into(),
            400,
            "too_many_messages",
        ),
        (
            "/v1/messages",
            Some("application/json"),
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#.into(),
            400,
            "missing_field",
        ),
        (
            "/v1/embeddings",
            Some("application/json"),
            r#"{"model":"m"}"#.into(),
            400,
            "missing_field",
        ),
        (
            "/v1/embeddings",
            Some("application/json"),
            big_embedding,
            413,
            "request_too_large",
        ),
    ];
    for (i, (path, ct, body, status, code)) in cases.iter().enumerate() {
        let rid = format!("rid-guard-{i}");
        let before = rejections(&vm, code);
        let (ctx, action) = post(&mut vm, path, *ct, body, &rid);
        assert_refused(&vm, ctx, action, *status, code, &rid);
        assert_eq!(rejections(&vm, code), before + 1, "{code} counted once");
        vm.finish(ctx).unwrap();
    }
}

#[test]
fn valid_requests_pass_untouched() {
    let mut vm = configured(CONFIG);
    for (path, body) in [
        ("/v1/chat/completions", CHAT),
        ("/v1/embeddings", r#"{"model":"m","input":"short"}"#),
        (
            "/v1/messages",
            r#"{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}"#,
        ),
    ] {
        let (ctx, action) = post(
            &mut vm,
            path,
            Some("application/json; charset=utf-8"),
            body,
            "rid-ok",
        );
        assert_eq!(action, Action::Continue, "{path}: {:?}", vm.logs());
        assert!(vm.local_reply(ctx).is_none(), "{path}");
    }
    // Non-LLM paths without a route: no content-type check.
    let (ctx, action) = post(&mut vm, "/upload", Some("text/plain"), "abc", "rid-up");
    assert_eq!(action, Action::Continue);
    assert!(vm.local_reply(ctx).is_none());
}

#[test]
fn chunked_body_over_the_route_limit_is_refused_when_counted() {
    let mut vm = configured(CONFIG);
    let ctx = vm.new_http();
    let headers = [
        (":method", "POST"),
        (":path", "/v1/embeddings"),
        ("content-type", "application/json"),
        ("x-request-id", "rid-chunked"),
    ];
    assert_eq!(
        vm.request_headers(ctx, &headers, false).unwrap(),
        Action::Pause
    );
    let first = format!(r#"{{"model":"m","input":"{}"#, "z".repeat(40));
    vm.request_body(ctx, first.as_bytes(), false).unwrap();
    assert!(vm.local_reply(ctx).is_none(), "under the limit so far");
    let action = vm
        .request_body(ctx, "z".repeat(40).as_bytes(), false)
        .unwrap();
    assert_refused(&vm, ctx, action, 413, "request_too_large", "rid-chunked");
}

#[test]
fn body_less_llm_request_is_refused() {
    let mut vm = configured(CONFIG);
    let (ctx, action) = post(&mut vm, "/v1/chat/completions", None, "", "rid-empty");
    assert_refused(&vm, ctx, action, 400, "invalid_json", "rid-empty");
}

#[test]
fn without_guardrails_only_the_size_limit_applies_and_is_counted() {
    let mut vm = configured(r#"{"limits":{"max_request_bytes":32}}"#);
    let (ctx, action) = post(
        &mut vm,
        "/v1/chat/completions",
        None,
        r#"{"model":"m"}"#,
        "rid-a",
    );
    assert_eq!(action, Action::Continue);
    assert!(vm.local_reply(ctx).is_none());
    let (ctx, action) = post(
        &mut vm,
        "/v1/chat/completions",
        Some("application/json"),
        CHAT,
        "rid-b",
    );
    assert_refused(&vm, ctx, action, 413, "request_too_large", "rid-b");
    assert_eq!(rejections(&vm, "request_too_large"), 1);
}

#[test]
fn bad_guardrail_config_is_refused_naming_the_field() {
    let mut vm = Vm::load().unwrap();
    let ok = vm
        .configure(r#"{"guardrails":{"routes":[{"path_prefix":"/v1/","max_messages":0}]}}"#)
        .unwrap();
    assert!(!ok);
    let errors = vm.error_logs();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("guardrails.routes[0].max_messages"),
        "{errors:?}"
    );
}
