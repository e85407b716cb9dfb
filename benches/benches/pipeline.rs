//! Criterion benches of one whole request through tollgate's pipeline, natively: the same code
//! the `.wasm` runs per request (`tollgate::exchange`), driven the way Envoy drives it over the
//! in-memory `FakeHost` — request headers, body, response headers, body in 1 KiB chunks, the
//! access-log hook. What is measured is the filter's own work per request (ids, admission,
//! budget reservation and settlement, usage accounting, translation, masking); Envoy's own cost
//! and the hostcall boundary come from the Envoy-level bench (`envoy-compare`).
//!
//! * `pipeline/json`: an OpenAI JSON request and answer, with budgets, masking of responses and
//!   usage accounting on.
//! * `pipeline/translated_stream`: an OpenAI streaming request routed to Anthropic, its SSE
//!   answer translated back chunk by chunk and masked.

use std::hint::black_box;
use std::rc::Rc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tollgate::exchange::drive::Driver;
use tollgate::exchange::fake::FakeHost;
use tollgate::exchange::Vm;

const HEADERS: &[(&str, &str)] = &[
    (":method", "POST"),
    (":path", "/v1/chat/completions"),
    (":authority", "tollgate.bench"),
    ("content-type", "application/json"),
    ("authorization", "Bearer sk-client-key-for-the-bench"),
];

/// A chat request of eight turns.
fn chat_request(stream: bool) -> Vec<u8> {
    let mut messages = vec![serde_json::json!({"role": "system", "content": "Answer briefly."})];
    for i in 0..8 {
        messages.push(serde_json::json!({
            "role": if i % 2 == 0 { "user" } else { "assistant" },
            "content": format!("Turn {i}: {}", "the quarterly report mentions toll revenue and staffing. ".repeat(4))
        }));
    }
    serde_json::json!({"model": "gpt-4o-mini", "stream": stream, "max_tokens": 256, "messages": messages})
        .to_string()
        .into_bytes()
}

fn openai_answer() -> Vec<u8> {
    let content = "The report lists revenue, maintenance and staffing costs. ".repeat(20);
    serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 420, "completion_tokens": 240, "total_tokens": 660}
    })
    .to_string()
    .into_bytes()
}

fn anthropic_stream() -> Vec<u8> {
    let mut out = String::from(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4\",\"content\":[],\"usage\":{\"input_tokens\":420,\"output_tokens\":1}}}\n\n\
         event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    );
    for i in 0..120 {
        out.push_str(&format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"word{i} \"}}}}\n\n"
        ));
    }
    out.push_str(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
         event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":240}}\n\n\
         event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    out.into_bytes()
}

fn vm(host: &mut FakeHost, config: &str) -> Rc<Vm> {
    match Vm::configure(host, config.as_bytes()) {
        Ok(vm) => Rc::new(vm),
        Err(e) => panic!("bench config refused: {e}"),
    }
}

/// One request, start to access log; returns the bytes the client got.
fn one_request(
    host: &mut FakeHost,
    vm: &Rc<Vm>,
    request: &[u8],
    response_headers: &[(&str, &str)],
    response: &[u8],
) -> usize {
    let mut r = Driver::new(vm);
    r.send(host, HEADERS, &[request]);
    let chunks: Vec<&[u8]> = response.chunks(1024).collect();
    r.respond(host, response_headers, &chunks);
    r.log(host);
    host.logs.borrow_mut().clear();
    host.histogram_values.clear();
    r.client.len()
}

fn pipeline(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline");

    let mut host = FakeHost::new();
    host.properties
        .insert("source.address".into(), b"10.0.0.7:5100".to_vec());
    let json_vm = vm(
        &mut host,
        r#"{"budgets":{"windows":[{"period":"minute","max_tokens":1000000000}]},"masking":{"responses":true}}"#,
    );
    let request = chat_request(false);
    let answer = openai_answer();
    let json_headers = [(":status", "200"), ("content-type", "application/json")];
    assert_eq!(
        one_request(&mut host, &json_vm, &request, &json_headers, &answer),
        answer.len(),
        "the answer reaches the client whole"
    );
    assert!(host.replies.is_empty());
    group.throughput(Throughput::Bytes((request.len() + answer.len()) as u64));
    group.bench_function("json", |b| {
        b.iter(|| {
            one_request(
                &mut host,
                &json_vm,
                black_box(&request),
                &json_headers,
                &answer,
            )
        })
    });

    let mut host = FakeHost::new();
    let stream_vm = vm(
        &mut host,
        r#"{"masking":{"responses":true},"failover":{"providers":[
            {"name":"anthropic","kind":"anthropic","cluster":"anthropic","api_key":{"value":"sk-ant-api03-BenchKeyAbCdEfGhIjKlMnOpQrStUvWx-0123"},
             "models":{"gpt-4o-mini":"claude-sonnet-4"}}],
          "routes":[{"model":"gpt-4o-mini","providers":["anthropic"]}]}}"#,
    );
    let request = chat_request(true);
    let stream = anthropic_stream();
    let sse_headers = [(":status", "200"), ("content-type", "text/event-stream")];
    assert!(one_request(&mut host, &stream_vm, &request, &sse_headers, &stream) > 0);
    assert!(host.replies.is_empty());
    group.throughput(Throughput::Bytes((request.len() + stream.len()) as u64));
    group.bench_function("translated_stream", |b| {
        b.iter(|| {
            one_request(
                &mut host,
                &stream_vm,
                black_box(&request),
                &sse_headers,
                &stream,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
