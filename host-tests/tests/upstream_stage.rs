//! Host tests for the upstream stage (`"stage": "upstream"`): the instance Envoy runs once per
//! retry attempt in an aggregate cluster's upstream filter chain. It reads the attempt's provider
//! from the endpoint metadata, rewrites the client's OpenAI request for it, notes how the attempt
//! ended for the next one (`x-tollgate-carry`) and names the provider to the listener stage.

use tollgate_host_tests::{Action, Vm};

const ANTHROPIC_KEY: &str = "sk-ant-api03-hostTestUpstreamKeyAbCdEf0123";
const PROVIDER_PROPERTY: &str = "xds\0upstream_host_metadata\0filter_metadata\0tollgate\0provider";

const CONFIG: &str = r#"{"stage": "upstream", "failover": {
  "providers": [
    {"name": "openai", "kind": "openai", "cluster": "openai"},
    {"name": "anthropic", "kind": "anthropic", "cluster": "anthropic",
     "api_key": {"env": "ANTHROPIC_API_KEY"}, "models": {"gpt-4o*": "claude-sonnet-4"},
     "circuit": {"failure_threshold": 2, "cooldown_ms": 60000}}
  ],
  "routes": [{"model": "gpt-4o*", "providers": ["openai", "anthropic"], "cluster": "llm"}]
}}"#;

const BODY: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}"#;

fn vm() -> Vm {
    let mut vm = Vm::load().unwrap();
    vm.state_mut()
        .env
        .push(("ANTHROPIC_API_KEY".into(), ANTHROPIC_KEY.into()));
    assert!(vm.configure(CONFIG).unwrap(), "{:?}", vm.logs());
    vm
}

/// One attempt to `provider`, carrying `carry` from an earlier attempt (if any).
fn attempt(vm: &mut Vm, provider: &str, carry: Option<&str>, path: &str) -> u32 {
    vm.state_mut()
        .properties
        .insert(PROVIDER_PROPERTY.into(), provider.as_bytes().to_vec());
    let ctx = vm.new_http();
    let len = BODY.len().to_string();
    let mut headers = vec![
        (":method", "POST"),
        (":path", path),
        (":authority", "gateway"),
        ("content-type", "application/json"),
        ("content-length", len.as_str()),
        (
            "authorization",
            "Bearer sk-proj-aKeyAnEarlierAttemptInjected0123",
        ),
        ("x-request-id", "req-upstream-1"),
    ];
    if let Some(c) = carry {
        headers.push(("x-tollgate-carry", c));
    }
    assert_eq!(
        vm.request_headers(ctx, &headers, false).unwrap(),
        Action::Pause,
        "a chat request is held until its body is in"
    );
    assert_eq!(
        vm.request_body(ctx, BODY.as_bytes(), true).unwrap(),
        Action::Continue
    );
    ctx
}

#[test]
fn an_attempt_is_rewritten_for_the_provider_envoy_picked() {
    let mut vm = vm();
    let ctx = attempt(&mut vm, "anthropic", None, "/v1/chat/completions");
    assert_eq!(
        vm.request_header(ctx, ":path").as_deref(),
        Some("/v1/messages")
    );
    assert_eq!(
        vm.request_header(ctx, "x-api-key").as_deref(),
        Some(ANTHROPIC_KEY)
    );
    assert!(
        vm.request_header(ctx, "authorization").is_none(),
        "an earlier attempt's (or the client's) credential is removed"
    );
    assert!(vm.request_header(ctx, "anthropic-version").is_some());
    assert!(vm.request_header(ctx, "x-tollgate-carry").is_none());
    let sent: serde_json::Value =
        serde_json::from_slice(&vm.stream(ctx).unwrap().forwarded_request_body).unwrap();
    assert_eq!(sent["model"], "claude-sonnet-4");
    assert_eq!(sent["system"], "be brief");
    assert_eq!(
        vm.request_header(ctx, "content-length"),
        Some(
            vm.stream(ctx)
                .unwrap()
                .forwarded_request_body
                .len()
                .to_string()
        )
    );

    vm.response_headers(ctx, &[(":status", "200")], false)
        .unwrap();
    assert_eq!(
        vm.response_header(ctx, "x-tollgate-provider").as_deref(),
        Some("anthropic")
    );
    let carry = vm.response_header(ctx, "x-tollgate-carry").unwrap();
    assert!(
        carry.starts_with("p=/v1/chat/completions;a=anthropic,200,"),
        "{carry}"
    );
}

#[test]
fn later_attempts_use_the_carried_path_and_history() {
    let mut vm = vm();
    // The first attempt (openai) failed with 429 after rewriting nothing path-wise; a later one
    // arrives with :path rewritten by an earlier attempt and the carry naming the client's path.
    let first = attempt(&mut vm, "openai", None, "/v1/chat/completions");
    vm.response_headers(first, &[(":status", "429"), ("retry-after", "30")], false)
        .unwrap();
    assert_eq!(
        vm.response_header(first, ":status").as_deref(),
        Some("503"),
        "reported to Envoy's router as 503 so `retry_on: 5xx` moves on"
    );
    let carry = vm.request_header(first, "x-tollgate-carry").unwrap();
    assert!(carry.contains("a=openai,429,"), "{carry}");
    vm.finish(first).unwrap();

    let second = attempt(&mut vm, "anthropic", Some(&carry), "/v1/messages");
    assert_eq!(
        vm.request_header(second, ":path").as_deref(),
        Some("/v1/messages")
    );
    let sent: serde_json::Value =
        serde_json::from_slice(&vm.stream(second).unwrap().forwarded_request_body).unwrap();
    assert_eq!(
        sent["model"], "claude-sonnet-4",
        "translated from the original body"
    );
    vm.response_headers(second, &[(":status", "500")], false)
        .unwrap();
    let history = vm.response_header(second, "x-tollgate-carry").unwrap();
    assert!(
        history.contains("a=openai,429,") && history.contains("|anthropic,500,"),
        "{history}"
    );
    assert_eq!(
        vm.shared().metric(
            "provider=.=openai;.;outcome=.=rate_limited;.;tollgate_provider_attempts_total"
        ),
        Some(1),
        "{:?}",
        vm.shared().metric_names()
    );
}

#[test]
fn an_attempt_without_an_answer_is_noted_and_counts_for_the_circuit() {
    let mut vm = vm();
    for _ in 0..2 {
        let ctx = attempt(&mut vm, "anthropic", None, "/v1/chat/completions");
        // Reset or per-try timeout: Envoy ends the attempt without response headers.
        vm.finish(ctx).unwrap();
        let carry = vm.request_header(ctx, "x-tollgate-carry").unwrap();
        assert!(carry.contains("anthropic,no_response,"), "{carry}");
    }
    let gauge = vm
        .shared()
        .metric("provider=.=anthropic;.;tollgate_circuit_state");
    assert_eq!(gauge, Some(2), "threshold 2: the circuit is open");
}

#[test]
fn a_host_without_provider_metadata_is_passed_through_untouched() {
    let mut vm = vm();
    vm.state_mut().properties.remove(PROVIDER_PROPERTY);
    let ctx = vm.new_http();
    let action = vm
        .request_headers(
            ctx,
            &[
                (":method", "POST"),
                (":path", "/v1/chat/completions"),
                ("authorization", "Bearer x"),
            ],
            false,
        )
        .unwrap();
    assert_eq!(action, Action::Continue);
    assert_eq!(
        vm.request_header(ctx, "authorization").as_deref(),
        Some("Bearer x")
    );
    assert!(
        vm.logs().iter().any(|l| l.contains("tollgate.provider")),
        "{:?}",
        vm.logs()
    );
}
