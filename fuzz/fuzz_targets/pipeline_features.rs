//! The request pipeline with virtual API keys, the response cache and the mesh-wide budget,
//! against the in-memory fake host: the same request sent twice (so the second may be a cache
//! hit), with a fuzzed credential, body, answer, chunking and rate limit service answer.
//!
//! Selector (first byte): bits 0–1 the features (keys; cache; mesh budget; all three), bits 2–3
//! the answer's status (200, 500, 429, 401), bit 4 the answer's content type (JSON or SSE), bits
//! 5–6 the credential (the valid key, the key one character off, none, the fuzzed answer's first
//! line), bit 7 how the rate limit service answers (the fuzzed answer as its protobuf reply, or a
//! failed call). The payload's first cut separates the request body from the answer; the other
//! cuts chunk both.
//!
//! Properties beyond "no panic": each request gets at most one local reply; every gRPC call is
//! answered; after the access log no local or key budget reservation is left.

#![no_main]

use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use tollgate::exchange::drive::Driver;
use tollgate::exchange::fake::FakeHost;
use tollgate::exchange::Vm;
use tollgate::keys::secret::{encode, KeyDigest};
use tollgate_fuzz::{pieces, SplitInput};

const ADDRESS: &str = "10.9.8.7:6543";
const BUDGET: &str = r#""windows":[{"period":"minute","max_tokens":100000}]"#;

fn config(selector: u8, key: &str) -> String {
    let keys = format!(
        r#""keys":{{"inline":[{{"id":"app","sha256":"{}","owner":"app-owner","team":"search",
            "budgets":[{{"period":"minute","max_tokens":50000}}]}}]}}"#,
        KeyDigest::of(key).to_hex()
    );
    let cache = r#""cache":{"scope":"user","rules":[{"path_prefix":"/v1/"}]}"#;
    let mesh = r#""global":{"cluster":"ratelimit","failure_mode":"open",
        "windows":[{"period":"minute","max_tokens":5000,"max_requests":100}]}"#;
    match selector & 3 {
        0 => format!(r#"{{{keys},"budgets":{{{BUDGET}}}}}"#),
        1 => format!(r#"{{{cache},"budgets":{{{BUDGET}}}}}"#),
        2 => format!(r#"{{"budgets":{{{BUDGET},{mesh}}}}}"#),
        _ => format!(r#"{{{keys},{cache},"budgets":{{{BUDGET},{mesh}}}}}"#),
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

    let key = encode(&[7; 32]);
    let mut host = FakeHost::new();
    host.properties
        .insert("source.address".into(), ADDRESS.as_bytes().to_vec());
    let Ok(vm) = Vm::configure(&mut host, config(selector, &key).as_bytes()) else {
        panic!("fixed configs load");
    };
    let vm = Rc::new(vm);

    let mut off_by_one = key.clone();
    off_by_one.pop();
    off_by_one.push(if key.ends_with('A') { 'B' } else { 'A' });
    let fuzzed_line =
        String::from_utf8_lossy(answer.split(|b| *b == b'\n').next().unwrap_or(b"")).into_owned();
    let credential = match (selector >> 5) & 3 {
        0 => Some(format!("Bearer {key}")),
        1 => Some(format!("Bearer {off_by_one}")),
        2 => None,
        _ => Some(fuzzed_line),
    };
    let mut headers = vec![
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        ("content-type", "application/json"),
    ];
    if let Some(c) = credential.as_deref() {
        headers.push(("authorization", c));
    }
    let status = ["200", "500", "429", "401"][usize::from((selector >> 2) & 3)];
    let content_type = if selector & 0x10 == 0 {
        "application/json"
    } else {
        "text/event-stream"
    };
    let grpc_status = if selector & 0x80 == 0 { 0 } else { 14 };

    for _ in 0..2 {
        let replies_before = host.replies.len();
        let grpc_before = host.grpc_calls.len();
        let mut r = Driver::new(&vm);
        r.send(&mut host, &headers, &pieces(request, &request_cuts));
        // The admission call (the only one an exchange makes before its answer).
        let mut answered = grpc_before;
        while let Some(call) = host.grpc_calls.get(answered).cloned() {
            r.answer_grpc(&mut host, call.token, grpc_status, answer);
            answered += 1;
            assert!(
                answered - grpc_before <= 2,
                "one admission call per request"
            );
        }
        if host.replies.len() == replies_before && r.upstream_released {
            r.respond(
                &mut host,
                &[(":status", status), ("content-type", content_type)],
                &pieces(answer, &answer_cuts),
            );
        }
        r.log(&mut host);
        assert!(
            host.replies.len() <= replies_before + 1,
            "one local reply at most"
        );
    }

    let now_s = host.clock_ns.get() / 1_000_000_000;
    if let Some(budget) = vm.config.budgets.as_ref() {
        for user in [
            tollgate::identity::address_identity(ADDRESS),
            "app-owner".to_string(),
        ] {
            for (_, window) in budget.budgets.snapshot(&host, &user, now_s) {
                assert_eq!(
                    window.reserved_tokens, 0,
                    "a reservation outlived its request"
                );
            }
        }
    }
    let inline = vm.config.keys.as_ref().and_then(|k| match &k.source {
        tollgate::keys::settings::KeySource::Inline(set) => set.by_id("app").cloned(),
        tollgate::keys::settings::KeySource::Remote(_) => None,
    });
    if let Some(entry) = inline {
        if let Some(budgets) = entry.budgets.as_ref() {
            for (_, window) in budgets.snapshot(&host, &entry.id, now_s) {
                assert_eq!(
                    window.reserved_tokens, 0,
                    "a key reservation outlived its request"
                );
            }
        }
    }
});
