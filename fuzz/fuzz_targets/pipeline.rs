//! The whole request pipeline (`tollgate::exchange`) against the in-memory fake host: one
//! request from headers to access log, with a fuzzed body, a fuzzed answer, fuzzed chunking and
//! fuzzed callout answers.
//!
//! Selector (first byte): bits 0–1 the configuration (budget only; budget + response masking;
//! own-routed failover OpenAI → Anthropic with a budget; a walked route), bits 2–3 the answer's
//! status (200, 500, 429, 401), bit 4 the answer's content type (JSON or SSE), bits 5–6 how
//! failover callouts answer (200, 500, no answer, 429), bit 7 whether the request asks to
//! stream. The payload's first cut separates the request body from the answer; the other cuts
//! chunk both.
//!
//! Properties beyond "no panic": after the access log no budget reservation is left; what was
//! charged is at most what the access log reports (input + output tokens), and nothing when the
//! request was answered locally; at most one local reply; no callout is left unanswered.

#![no_main]

use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use tollgate::exchange::drive::Driver;
use tollgate::exchange::fake::FakeHost;
use tollgate::exchange::Vm;
use tollgate_fuzz::{pieces, SplitInput};

const ADDRESS: &str = "10.9.8.7:6543";
const BUDGET: &str = r#""budgets":{"windows":[{"period":"minute","max_tokens":100000}]}"#;

fn config(selector: u8) -> String {
    let providers = r#""providers":[
        {"name":"openai","kind":"openai","cluster":"openai","max_retries":1},
        {"name":"anthropic","kind":"anthropic","cluster":"anthropic","models":{"gpt-4o-mini":"claude-sonnet-4"}},
        {"name":"gemini","kind":"gemini","cluster":"gemini","models":{"gpt-4o-mini":"gemini-2.0-flash"}}]"#;
    match selector & 3 {
        0 => format!("{{{BUDGET}}}"),
        1 => format!(r#"{{{BUDGET},"masking":{{"responses":true}}}}"#),
        2 => format!(
            r#"{{{BUDGET},"failover":{{{providers},"routes":[{{"model":"gpt-4o-mini","providers":["openai","anthropic","gemini"]}}]}}}}"#
        ),
        _ => format!(
            r#"{{{BUDGET},"failover":{{{providers},"routes":[{{"model":"gpt-4o-mini","providers":["openai","anthropic","gemini"],"cluster":"llm"}}]}}}}"#
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let input = SplitInput::decode(data);
    let selector = input.selector;
    let tollgate_fuzz::Exchange {
        request,
        request_cuts,
        answer,
        answer_cuts,
    } = input.exchange();

    let mut host = FakeHost::new();
    host.properties
        .insert("source.address".into(), ADDRESS.as_bytes().to_vec());
    let Ok(vm) = Vm::configure(&mut host, config(selector).as_bytes()) else {
        panic!("fixed configs load");
    };
    let vm = Rc::new(vm);
    let mut r = Driver::new(&vm);
    let headers = [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        ("content-type", "application/json"),
    ];
    r.send(&mut host, &headers, &pieces(request, &request_cuts));

    let status = ["200", "500", "429", "401"][usize::from((selector >> 2) & 3)];
    let content_type = if selector & 0x10 == 0 {
        "application/json"
    } else {
        "text/event-stream"
    };
    let walked = selector & 3 == 3;
    let mut response_headers = vec![(":status", status), ("content-type", content_type)];
    if walked {
        response_headers.push(("x-tollgate-provider", "openai"));
        response_headers.push(("x-tollgate-carry", "p=/v1/chat/completions;a=openai,500,3"));
    }
    if host.replies.is_empty() {
        r.respond(&mut host, &response_headers, &pieces(answer, &answer_cuts));
    }
    // Answer every callout the pipeline starts (bounded: each answer may start another).
    let callout_status = [Some(200), Some(500), None, Some(429)][usize::from((selector >> 5) & 3)];
    let mut answered = 0;
    while let Some(call) = host.calls.get(answered).cloned() {
        if call.cluster == "jwks" {
            break;
        }
        r.answer(
            &mut host,
            call.token,
            callout_status,
            &[("content-type", content_type)],
            answer,
        );
        answered += 1;
        assert!(answered <= 8, "failover stops");
    }
    assert_eq!(answered, host.calls.len(), "no callout left unanswered");
    r.log(&mut host);

    assert!(host.replies.len() <= 1, "one local reply at most");
    let user = tollgate::identity::address_identity(ADDRESS);
    let now_s = host.clock_ns.get() / 1_000_000_000;
    let Some(budget) = vm.config.budgets.as_ref() else {
        panic!("every config has a budget");
    };
    for (_, window) in budget.budgets.snapshot(&host, &user, now_s) {
        assert_eq!(
            window.reserved_tokens, 0,
            "a reservation outlived its request"
        );
        let logged = ["tollgate_input_tokens", "tollgate_output_tokens"]
            .iter()
            .filter_map(|p| host.property_text(p)?.parse::<u64>().ok())
            .fold(0u64, u64::saturating_add);
        assert!(
            window.used_tokens <= logged,
            "charged {} but the log says {logged}",
            window.used_tokens
        );
        if !host.replies.is_empty() {
            assert_eq!(window.used_tokens, 0, "a local reply is not billed");
        }
    }
});
