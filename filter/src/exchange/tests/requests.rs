//! Admission scenarios: a guardrail refusal, a budget reserved then settled, and a client that
//! disconnects mid-stream.

use super::*;
use crate::budget::WindowState;
use crate::exchange::host::Map;

const ADDRESS: &str = "10.1.2.3:4567";
const BUDGET: &str = r#"{"budgets":{"windows":[{"period":"minute","max_tokens":3000}]}}"#;

fn window(vm: &Vm, host: &FakeHost) -> WindowState {
    let user = crate::identity::address_identity(ADDRESS);
    let now_s = host.clock_ns.get() / 1_000_000_000;
    let budgets = &vm.config.budgets.as_ref().unwrap().budgets;
    budgets.snapshot(host, &user, now_s).remove(0).1
}

fn host_with_address() -> FakeHost {
    let mut host = FakeHost::new();
    host.properties
        .insert("source.address".into(), ADDRESS.as_bytes().to_vec());
    host
}

#[test]
fn a_guardrail_refusal_is_an_openai_shaped_400_at_every_chunking() {
    let config = r#"{"guardrails":{"defaults":{"max_messages":1}}}"#;
    let body = chat_body("gpt-4o-mini", false);
    for chunks in chunkings(&body) {
        let mut host = FakeHost::new();
        let vm = vm(&mut host, config);
        let mut r = Driver::new(&vm);
        r.send(&mut host, &chat_headers(&[]), &chunks);
        assert!(!r.upstream_released);
        assert_eq!(host.replies.len(), 1);
        let reply = &host.replies[0];
        assert_eq!(reply.status, 400);
        assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
        assert_eq!(reply.json()["error"]["request_id"], r.ex.request_id());
        assert_eq!(reply.header("x-request-id"), Some(r.ex.request_id()));
        r.log(&mut host);
        assert_eq!(host.metric_sum("tollgate_guardrail_rejections_total"), 1);
        assert_eq!(host.metric("tollgate_local_replies_total"), 1);
    }
}

#[test]
fn a_budget_is_reserved_then_settled_with_the_reported_usage_at_every_chunking() {
    let answer = r#"{"id":"c1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":19,"total_tokens":30}}"#;
    let body = chat_body("gpt-4o-mini", false);
    for (request_chunks, answer_chunks) in each_chunking(&body, answer.as_bytes()) {
        let mut host = host_with_address();
        let vm = vm(&mut host, BUDGET);
        let mut r = Driver::new(&vm);
        r.send(&mut host, &chat_headers(&[]), &request_chunks);
        assert!(r.upstream_released);
        let reserved = window(&vm, &host).reserved_tokens;
        assert!(
            reserved >= 50,
            "prompt estimate plus max_tokens: {reserved}"
        );
        r.respond(
            &mut host,
            &[(":status", "200"), ("content-type", "application/json")],
            &answer_chunks,
        );
        assert_eq!(
            host.get(Map::Response, "x-ratelimit-limit-tokens"),
            Some("3000")
        );
        assert_eq!(r.client, answer.as_bytes());
        r.log(&mut host);
        let w = window(&vm, &host);
        assert_eq!((w.reserved_tokens, w.used_tokens, w.requests), (0, 30, 1));
    }
}

const STREAM: &str = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello there, how are you\"}}]}\n\ndata: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";

#[test]
fn a_client_disconnecting_mid_stream_releases_its_reservation_and_pays_the_estimate() {
    let body = chat_body("gpt-4o-mini", true);
    for cut in (1..STREAM.len()).step_by(3) {
        let mut host = host_with_address();
        let vm = vm(&mut host, BUDGET);
        let mut r = Driver::new(&vm);
        r.send(&mut host, &chat_headers(&[]), &[&body]);
        r.respond_headers(
            &mut host,
            &[(":status", "200"), ("content-type", "text/event-stream")],
            false,
        );
        r.response_chunk(&mut host, &STREAM.as_bytes()[..cut], false);
        // The client goes away: Envoy ends the stream without end_of_stream, then logs.
        r.log(&mut host);
        let w = window(&vm, &host);
        assert_eq!(w.reserved_tokens, 0, "cut at {cut}");
        assert_eq!(w.requests, 1);
        if cut < STREAM.find("finish_reason").unwrap() {
            assert_eq!(
                host.property_text("tollgate_usage_complete").as_deref(),
                Some("false")
            );
        }
        let used = host
            .property_text("tollgate_total_tokens")
            .map_or(0, |t| t.parse::<u64>().unwrap());
        assert_eq!(w.used_tokens, used, "what the log says is what was charged");
    }
}

#[test]
fn the_headers_are_held_for_the_body_only_when_an_enabled_feature_reads_it() {
    let off = r#"{"usage":{"enabled":false},"masking":{"prompts":"off"}}"#;
    let needs_body = [
        r#"{"masking":{"prompts":"off"}}"#,
        r#"{"usage":{"enabled":false},"masking":{"prompts":"redact"}}"#,
        r#"{"usage":{"enabled":false},"masking":{"prompts":"off"},"budgets":{"windows":[{"period":"minute","max_tokens":3000}]}}"#,
        r#"{"usage":{"enabled":false},"masking":{"prompts":"off"},"guardrails":{"defaults":{"max_messages":100}}}"#,
    ];
    let body = chat_body("gpt-4o-mini", false);
    let len = body.len().to_string();
    let declared = chat_headers(&[("content-length", len.as_str())]);
    let mut host = host_with_address();
    let vm_off = vm(&mut host, off);
    let mut r = Driver::new(&vm_off);
    r.send_headers(&mut host, &declared, false);
    assert!(
        r.upstream_released,
        "nothing reads the body: the headers go on"
    );
    r.send_chunks(&mut host, &[&body]);
    assert_eq!(r.upstream, body, "the body streams through unchanged");
    // Without a declared size the body is held: the limit applies before anything goes on.
    let mut r = Driver::new(&vm_off);
    r.send_headers(&mut host, &chat_headers(&[]), false);
    assert!(
        !r.upstream_released,
        "no content-length: held for the size limit"
    );
    r.send_chunks(&mut host, &[&body]);
    assert!(r.upstream_released, "released with the whole body");
    for config in needs_body {
        let mut host = host_with_address();
        let vm = vm(&mut host, config);
        let mut r = Driver::new(&vm);
        r.send_headers(&mut host, &declared, false);
        assert!(!r.upstream_released, "{config}: held for the body");
        r.send_chunks(&mut host, &[&body]);
        assert!(
            r.upstream_released,
            "{config}: released with the whole body"
        );
    }
}
