//! Host tests for the upstream stage (`"stage": "upstream"`): the instance Envoy runs once per
//! retry attempt in an aggregate cluster's upstream filter chain. It reads the attempt's provider
//! from the endpoint metadata, rewrites the client's OpenAI request for it, notes how the attempt
//! ended for the next one (`x-tollgate-carry`) and names the provider to the listener stage. Its
//! configuration is the stage alone: the catalog is the listener stage's, another plugin of the
//! same VM.

use tollgate_host_tests::{Action, Vm};

const ANTHROPIC_KEY: &str = "sk-ant-api03-hostTestUpstreamKeyAbCdEf0123";
const PROVIDER_PROPERTY: &str = "xds\0upstream_host_metadata\0filter_metadata\0tollgate\0provider";

/// The listener stage: its failover section is the catalog both stages use.
const LISTENER: &str = r#"{"failover": {
  "providers": [
    {"name": "openai", "kind": "openai", "cluster": "openai"},
    {"name": "anthropic", "kind": "anthropic", "cluster": "anthropic",
     "api_key": {"env": "ANTHROPIC_API_KEY"}, "models": {"gpt-4o*": "claude-sonnet-4"},
     "circuit": {"failure_threshold": 2, "cooldown_ms": 60000}}
  ],
  "routes": [{"model": "gpt-4o*", "providers": ["openai", "anthropic"], "cluster": "llm"}]
}}"#;

/// The upstream stage: the stage alone.
const UPSTREAM: &str = r#"{"stage": "upstream"}"#;

const BODY: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}"#;

/// A VM running both stages as two plugins (listener first); returns the VM and the upstream
/// stage's root context.
fn vm() -> (Vm, u32) {
    let mut vm = Vm::load().unwrap();
    vm.state_mut()
        .env
        .push(("ANTHROPIC_API_KEY".into(), ANTHROPIC_KEY.into()));
    assert!(vm.configure(LISTENER).unwrap(), "{:?}", vm.logs());
    let upstream = vm.add_plugin(UPSTREAM).unwrap();
    let upstream = upstream.unwrap_or_else(|| panic!("{:?}", vm.logs()));
    (vm, upstream)
}

/// One attempt to `provider`, carrying `carry` from an earlier attempt (if any).
fn attempt(vm: &mut Vm, root: u32, provider: &str, carry: Option<&str>, path: &str) -> u32 {
    vm.state_mut()
        .properties
        .insert(PROVIDER_PROPERTY.into(), provider.as_bytes().to_vec());
    let ctx = vm.new_http_in(root);
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
    let (mut vm, up) = vm();
    let ctx = attempt(&mut vm, up, "anthropic", None, "/v1/chat/completions");
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
    let (mut vm, up) = vm();
    // The first attempt (openai) failed with 429 after rewriting nothing path-wise; a later one
    // arrives with :path rewritten by an earlier attempt and the carry naming the client's path.
    let first = attempt(&mut vm, up, "openai", None, "/v1/chat/completions");
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

    let second = attempt(&mut vm, up, "anthropic", Some(&carry), "/v1/messages");
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
    let (mut vm, up) = vm();
    for _ in 0..2 {
        let ctx = attempt(&mut vm, up, "anthropic", None, "/v1/chat/completions");
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
    let (mut vm, up) = vm();
    vm.state_mut().properties.remove(PROVIDER_PROPERTY);
    let ctx = vm.new_http_in(up);
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

#[test]
fn two_plugins_of_one_vm_share_the_catalog_whichever_is_configured_first() {
    let mut vm = Vm::load().unwrap();
    vm.state_mut()
        .env
        .push(("ANTHROPIC_API_KEY".into(), ANTHROPIC_KEY.into()));
    // The upstream stage first: it is valid alone and finds the catalog at its first attempt.
    assert!(vm.configure(UPSTREAM).unwrap(), "{:?}", vm.logs());
    let up = vm.root_id();
    let listener = vm.add_plugin(LISTENER).unwrap();
    assert!(listener.is_some(), "{:?}", vm.logs());
    let ctx = attempt(&mut vm, up, "anthropic", None, "/v1/chat/completions");
    assert_eq!(
        vm.request_header(ctx, "x-api-key").as_deref(),
        Some(ANTHROPIC_KEY),
        "the key the listener stage resolved"
    );
    let sent: serde_json::Value =
        serde_json::from_slice(&vm.stream(ctx).unwrap().forwarded_request_body).unwrap();
    assert_eq!(
        sent["model"], "claude-sonnet-4",
        "the listener's model mapping"
    );
}

#[test]
fn without_a_listener_stage_in_the_vm_an_attempt_gets_a_json_error() {
    let mut vm = Vm::load().unwrap();
    assert!(vm.configure(UPSTREAM).unwrap(), "{:?}", vm.logs());
    vm.state_mut()
        .properties
        .insert(PROVIDER_PROPERTY.into(), b"openai".to_vec());
    let ctx = vm.new_http();
    let action = vm
        .request_headers(
            ctx,
            &[
                (":method", "POST"),
                (":path", "/v1/chat/completions"),
                ("x-request-id", "req-no-catalog"),
            ],
            false,
        )
        .unwrap();
    assert_eq!(action, Action::Pause);
    let reply = vm.local_reply(ctx).expect("a local reply").clone();
    assert_eq!(reply.status, 500);
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["error"]["code"], "failover_catalog_missing");
    assert_eq!(body["error"]["request_id"], "req-no-catalog");
    assert!(
        vm.error_logs()
            .iter()
            .any(|l| l.contains("[req-no-catalog] upstream stage without a catalog")),
        "{:?}",
        vm.logs()
    );
}

#[test]
fn the_full_form_of_earlier_versions_is_refused_naming_the_field() {
    let mut vm = Vm::load().unwrap();
    let full = format!(r#"{{"stage": "upstream", {}"#, &LISTENER[1..]);
    assert!(!vm.configure(&full).unwrap());
    assert!(
        vm.error_logs()
            .iter()
            .any(|l| l.contains("invalid tollgate config: failover: the upstream stage takes")),
        "{:?}",
        vm.logs()
    );
}
