//! Host tests for the foundation: configuration errors, correlation ids, local replies.

use tollgate_host_tests::{Action, Vm};

const VALID_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn configured(config: &str) -> Vm {
    let mut vm = Vm::load().expect("module loads");
    assert!(
        vm.configure(config).expect("configure runs"),
        "config refused: {:?}",
        vm.logs()
    );
    vm
}

fn chat_request<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![
        (":method", "POST"),
        (":path", "/v1/models"),
        (":authority", "localhost"),
        ("content-type", "application/json"),
    ];
    h.extend_from_slice(extra);
    h
}

#[test]
fn empty_config_is_accepted() {
    configured("");
    configured("{}");
}

#[test]
fn vm_start_logs_a_version_banner() {
    let vm = configured("{}");
    assert!(vm
        .logs()
        .iter()
        .any(|l| l.contains("tollgate") && l.contains("VM started")));
}

#[test]
fn unknown_field_is_refused_naming_the_field() {
    let mut vm = Vm::load().unwrap();
    assert!(!vm.configure(r#"{"correlation":{"header":"x"}}"#).unwrap());
    let errors = vm.error_logs();
    assert_eq!(errors.len(), 1, "one error line expected: {errors:?}");
    assert!(errors[0].contains("correlation.header"), "{errors:?}");
    assert!(errors[0].contains("unknown field"), "{errors:?}");
}

#[test]
fn invalid_value_is_refused_naming_the_field() {
    let mut vm = Vm::load().unwrap();
    assert!(!vm.configure(r#"{"correlation":{"max_length":0}}"#).unwrap());
    assert!(vm.error_logs()[0].contains("correlation.max_length"));
}

#[test]
fn malformed_json_is_refused() {
    let mut vm = Vm::load().unwrap();
    assert!(!vm.configure("{not json").unwrap());
    assert_eq!(vm.error_logs().len(), 1);
}

#[test]
fn valid_request_id_is_kept_and_echoed() {
    let mut vm = configured("{}");
    let ctx = vm.new_http();
    let action = vm
        .request_headers(
            ctx,
            &chat_request(&[("x-request-id", "req-abc-123")]),
            false,
        )
        .unwrap();
    assert_eq!(action, Action::Continue);
    assert_eq!(
        vm.request_header(ctx, "x-request-id").as_deref(),
        Some("req-abc-123")
    );
    vm.response_headers(ctx, &[(":status", "200")], false)
        .unwrap();
    assert_eq!(
        vm.response_header(ctx, "x-request-id").as_deref(),
        Some("req-abc-123")
    );
    vm.finish(ctx).unwrap();
}

#[test]
fn missing_request_id_gets_a_uuid_v4() {
    let mut vm = configured("{}");
    let ctx = vm.new_http();
    vm.request_headers(ctx, &chat_request(&[]), false).unwrap();
    let id = vm
        .request_header(ctx, "x-request-id")
        .expect("id set upstream");
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(&id[14..15], "4", "{id}");
    assert_eq!(
        vm.shared().metric("tollgate_request_ids_generated_total"),
        Some(1)
    );
}

#[test]
fn oversized_request_id_is_replaced_not_forwarded() {
    let mut vm = configured("{}");
    let ctx = vm.new_http();
    let long = "a".repeat(500);
    vm.request_headers(ctx, &chat_request(&[("x-request-id", &long)]), false)
        .unwrap();
    let id = vm.request_header(ctx, "x-request-id").unwrap();
    assert_ne!(id, long);
    assert_eq!(id.len(), 36);
}

#[test]
fn garbage_request_id_is_replaced() {
    let mut vm = configured("{}");
    let ctx = vm.new_http();
    vm.request_headers(
        ctx,
        &chat_request(&[("x-request-id", "<script>alert(1)</script>")]),
        false,
    )
    .unwrap();
    let id = vm.request_header(ctx, "x-request-id").unwrap();
    assert!(!id.contains('<'), "{id}");
}

#[test]
fn alias_header_supplies_the_id() {
    let mut vm = configured("{}");
    let ctx = vm.new_http();
    vm.request_headers(
        ctx,
        &chat_request(&[("x-correlation-id", "corr-77")]),
        false,
    )
    .unwrap();
    assert_eq!(
        vm.request_header(ctx, "x-request-id").as_deref(),
        Some("corr-77")
    );
}

#[test]
fn configured_alias_is_used() {
    let mut vm = configured(r#"{"correlation":{"aliases":["x-trace-key"]}}"#);
    let ctx = vm.new_http();
    vm.request_headers(ctx, &chat_request(&[("x-trace-key", "tk-1")]), false)
        .unwrap();
    assert_eq!(
        vm.request_header(ctx, "x-request-id").as_deref(),
        Some("tk-1")
    );
}

#[test]
fn valid_traceparent_continues_with_a_child_span() {
    let mut vm = configured("{}");
    let ctx = vm.new_http();
    vm.request_headers(
        ctx,
        &chat_request(&[("traceparent", VALID_TRACEPARENT), ("tracestate", "a=b")]),
        false,
    )
    .unwrap();
    let tp = vm.request_header(ctx, "traceparent").unwrap();
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{tp}"
    );
    assert!(
        !tp.contains("00f067aa0ba902b7"),
        "parent span must be replaced by a child: {tp}"
    );
    assert!(tp.ends_with("-01"));
    assert_eq!(vm.request_header(ctx, "tracestate").as_deref(), Some("a=b"));
}

#[test]
fn malformed_traceparent_is_replaced_and_tracestate_dropped() {
    let mut vm = configured("{}");
    let ctx = vm.new_http();
    vm.request_headers(
        ctx,
        &chat_request(&[("traceparent", "00-bogus-01"), ("tracestate", "a=b")]),
        false,
    )
    .unwrap();
    let tp = vm.request_header(ctx, "traceparent").unwrap();
    assert_eq!(tp.len(), 55, "{tp}");
    assert_ne!(tp, "00-bogus-01");
    assert_eq!(vm.request_header(ctx, "tracestate"), None);
}

#[test]
fn missing_traceparent_is_created() {
    let mut vm = configured("{}");
    let ctx = vm.new_http();
    vm.request_headers(ctx, &chat_request(&[]), false).unwrap();
    assert_eq!(vm.request_header(ctx, "traceparent").unwrap().len(), 55);
}

#[test]
fn traceparent_untouched_when_disabled() {
    let mut vm = configured(r#"{"correlation":{"traceparent":false}}"#);
    let ctx = vm.new_http();
    vm.request_headers(ctx, &chat_request(&[("traceparent", "00-bogus-01")]), false)
        .unwrap();
    assert_eq!(
        vm.request_header(ctx, "traceparent").as_deref(),
        Some("00-bogus-01")
    );
}

#[test]
fn ids_differ_between_requests() {
    let mut vm = configured("{}");
    let a = vm.new_http();
    vm.request_headers(a, &chat_request(&[]), false).unwrap();
    let b = vm.new_http();
    vm.request_headers(b, &chat_request(&[]), false).unwrap();
    assert_ne!(
        vm.request_header(a, "x-request-id"),
        vm.request_header(b, "x-request-id")
    );
}

#[test]
fn oversized_body_gets_an_openai_shaped_413_with_the_id() {
    let mut vm = configured(r#"{"limits":{"max_request_bytes":10}}"#);
    let ctx = vm.new_http();
    let action = vm
        .request_headers(
            ctx,
            &chat_request(&[("x-request-id", "rid-413"), ("content-length", "11")]),
            false,
        )
        .unwrap();
    assert_eq!(action, Action::Pause);
    let reply = vm.local_reply(ctx).expect("local reply sent").clone();
    assert_eq!(reply.status, 413);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("x-request-id"), Some("rid-413"));
    let body = reply.json();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["code"], "request_too_large");
    assert_eq!(body["error"]["request_id"], "rid-413");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("10 bytes"));
    assert!(vm
        .logs()
        .iter()
        .any(|l| l.contains("[rid-413]") && l.contains("413")));
    assert_eq!(vm.shared().metric("tollgate_local_replies_total"), Some(1));
}

#[test]
fn chunked_body_over_the_limit_is_refused() {
    let mut vm = configured(r#"{"limits":{"max_request_bytes":10}}"#);
    let ctx = vm.new_http();
    vm.request_headers(ctx, &chat_request(&[]), false).unwrap();
    assert_eq!(
        vm.request_body(ctx, b"12345", false).unwrap(),
        Action::Continue
    );
    assert_eq!(
        vm.request_body(ctx, b"678901", true).unwrap(),
        Action::Pause
    );
    assert_eq!(vm.local_reply(ctx).unwrap().status, 413);
}

#[test]
fn every_log_line_of_a_request_carries_its_id() {
    let mut vm = configured(r#"{"limits":{"max_request_bytes":1}}"#);
    let before = vm.logs().len();
    let ctx = vm.new_http();
    vm.request_headers(
        ctx,
        &chat_request(&[("x-request-id", "rid-log"), ("content-length", "5")]),
        false,
    )
    .unwrap();
    let lines = &vm.logs()[before..];
    assert!(!lines.is_empty());
    for line in lines {
        assert!(line.contains("[rid-log]"), "line without id: {line}");
    }
}
