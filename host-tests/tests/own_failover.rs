//! Host tests for failover that tollgate routes itself (a route without an Envoy aggregate
//! cluster), on the real `.wasm`: the first attempt goes through Envoy's router, a failed answer
//! is held, the next provider is asked by an HTTP callout, and its answer — translated back to
//! OpenAI — replaces the held one, whichever of the held body and the callout answer comes first.

use tollgate_host_tests::{Action, Vm};

const OPENAI_KEY: &str = "sk-proj-hostTestOwnFailoverOpenAiKeyAbCdEf0123";
const ANTHROPIC_KEY: &str = "sk-ant-api03-hostTestOwnFailoverKeyAbCdEf0123";

const CONFIG: &str = r#"{"correlation": {"request_id_header": "x-trace-id"}, "failover": {
  "providers": [
    {"name": "openai", "kind": "openai", "cluster": "openai", "api_key": {"env": "OPENAI_API_KEY"}},
    {"name": "anthropic", "kind": "anthropic", "cluster": "anthropic",
     "api_key": {"env": "ANTHROPIC_API_KEY"}, "models": {"gpt-4o*": "claude-sonnet-4"}}
  ],
  "routes": [{"model": "gpt-4o*", "providers": ["openai", "anthropic"]}]
}}"#;

const BODY: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}"#;
const FAILED: &str = r#"{"error":{"message":"overloaded","type":"server_error"}}"#;
const ANSWER: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4","content":[{"type":"text","text":"Hello from Anthropic"}],"stop_reason":"end_turn","usage":{"input_tokens":9,"output_tokens":4}}"#;

fn vm() -> Vm {
    let mut vm = Vm::load().unwrap();
    vm.state_mut()
        .env
        .push(("OPENAI_API_KEY".into(), OPENAI_KEY.into()));
    vm.state_mut()
        .env
        .push(("ANTHROPIC_API_KEY".into(), ANTHROPIC_KEY.into()));
    assert!(vm.configure(CONFIG).unwrap(), "{:?}", vm.logs());
    vm
}

/// A request routed to OpenAI whose answer is a 500 (headers only so far): returns the context.
fn failed_primary(vm: &mut Vm) -> u32 {
    let ctx = vm.new_http();
    let headers = [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "gateway"),
        ("content-type", "application/json"),
        ("x-trace-id", "own-failover-1"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    ];
    assert_eq!(
        vm.request_headers(ctx, &headers, false).unwrap(),
        Action::Pause
    );
    assert_eq!(
        vm.request_body(ctx, BODY.as_bytes(), true).unwrap(),
        Action::Continue
    );
    assert_eq!(
        vm.request_header(ctx, "x-tollgate-cluster").as_deref(),
        Some("openai")
    );
    let response = [(":status", "500"), ("content-type", "application/json")];
    assert_eq!(
        vm.response_headers(ctx, &response, false).unwrap(),
        Action::Pause,
        "the failed answer is held"
    );
    ctx
}

/// The callout the failed primary started.
fn the_callout(vm: &Vm) -> tollgate_host_tests::HttpCall {
    let calls = &vm.state().http_calls;
    assert_eq!(calls.len(), 1, "{calls:?}");
    calls[0].clone()
}

fn header<'a>(call: &'a tollgate_host_tests::HttpCall, name: &str) -> Option<&'a str> {
    call.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn assert_translated(body: &[u8]) {
    let answer: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)));
    assert_eq!(answer["object"], "chat.completion", "{answer}");
    assert_eq!(answer["model"], "gpt-4o-mini");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Hello from Anthropic"
    );
}

#[test]
fn the_fallbacks_answer_replaces_a_held_500_that_ended_first() {
    let mut vm = vm();
    let ctx = failed_primary(&mut vm);
    assert_eq!(
        vm.response_body(ctx, FAILED.as_bytes(), true).unwrap(),
        Action::Pause
    );
    let call = the_callout(&vm);
    assert_eq!(call.upstream, "anthropic");
    assert_eq!(header(&call, ":path"), Some("/v1/messages"));
    assert_eq!(header(&call, "x-api-key"), Some(ANTHROPIC_KEY));
    // The configured request-id header and the request's trace travel with the callout.
    assert_eq!(header(&call, "x-trace-id"), Some("own-failover-1"));
    assert!(header(&call, "traceparent")
        .is_some_and(|t| t.contains("4bf92f3577b34da6a3ce929d0e0e4736")));
    vm.http_call_response(
        call.token,
        &[(":status", "200"), ("content-type", "application/json")],
        ANSWER.as_bytes(),
    )
    .unwrap();
    let stream = vm.stream(ctx).unwrap();
    assert_eq!(stream.resumed_response, 1, "the held response is resumed");
    assert_eq!(vm.response_header(ctx, ":status").as_deref(), Some("200"));
    assert_translated(&vm.stream(ctx).unwrap().response_body);
    vm.finish(ctx).unwrap();
    assert_eq!(
        vm.property(ctx, "tollgate_provider").as_deref(),
        Some(&b"anthropic"[..])
    );
}

#[test]
fn the_fallbacks_answer_replaces_a_held_500_that_ends_after_it() {
    let mut vm = vm();
    let ctx = failed_primary(&mut vm);
    let call = the_callout(&vm);
    vm.http_call_response(
        call.token,
        &[(":status", "200"), ("content-type", "application/json")],
        ANSWER.as_bytes(),
    )
    .unwrap();
    assert_eq!(
        vm.response_body(ctx, FAILED.as_bytes(), true).unwrap(),
        Action::Continue,
        "written in place and continued"
    );
    assert_eq!(vm.response_header(ctx, ":status").as_deref(), Some("200"));
    assert_translated(&vm.stream(ctx).unwrap().forwarded_response_body);
}

#[test]
fn every_provider_failing_gives_the_summary_with_the_request_id() {
    let mut vm = vm();
    let ctx = failed_primary(&mut vm);
    vm.response_body(ctx, FAILED.as_bytes(), true).unwrap();
    let call = the_callout(&vm);
    vm.http_call_response(
        call.token,
        &[(":status", "529"), ("content-type", "application/json")],
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    )
    .unwrap();
    assert_eq!(vm.state().http_calls.len(), 1, "no provider left");
    assert_eq!(vm.response_header(ctx, ":status").as_deref(), Some("503"));
    let body: serde_json::Value =
        serde_json::from_slice(&vm.stream(ctx).unwrap().response_body).unwrap();
    assert_eq!(body["error"]["code"], "all_providers_failed");
    assert_eq!(body["error"]["request_id"], "own-failover-1");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("every provider failed: openai: 500 after")
            && message.contains("anthropic: 529 after"),
        "{message}"
    );
    assert!(!message.contains(OPENAI_KEY) && !message.contains(ANTHROPIC_KEY));
}
