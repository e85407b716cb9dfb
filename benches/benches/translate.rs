//! Criterion benches of provider translation, natively through `tollgate::translate`: an
//! OpenAI chat request (multi-turn, a system prompt, a tool) rewritten for Anthropic and Gemini,
//! their JSON answers translated back, and their SSE streams re-emitted as OpenAI
//! `chat.completion.chunk` events, fed in 1 KiB chunks — what routing to a non-OpenAI provider
//! costs per byte.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tollgate::sse::DEFAULT_MAX_EVENT_BYTES;
use tollgate::translate::{
    anthropic_to_openai_at, gemini_to_openai_at, openai_to_anthropic, openai_to_gemini,
    AnthropicOptions, GeminiOptions, SourceFormat, StreamTranslator,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../filter/src/usage/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A realistic chat request: a system prompt, eight turns and one tool.
fn chat_request() -> Vec<u8> {
    let mut messages = vec![serde_json::json!({
        "role": "system",
        "content": "You are a careful assistant. Answer briefly and cite the documents you used."
    })];
    for i in 0..8 {
        messages.push(serde_json::json!({
            "role": if i % 2 == 0 { "user" } else { "assistant" },
            "content": format!("Turn {i}: {}", "the quarterly report mentions toll revenue, maintenance and staffing costs. ".repeat(4))
        }));
    }
    serde_json::json!({
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "max_tokens": 512,
        "stream": false,
        "messages": messages,
        "tools": [{"type": "function", "function": {
            "name": "lookup_document",
            "description": "Fetch a document by id",
            "parameters": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}
        }}]
    })
    .to_string()
    .into_bytes()
}

/// Translates a whole stream fed in `chunk`-byte pieces; returns the output length.
fn translate_stream(source: SourceFormat, stream: &[u8], chunk: usize) -> usize {
    let mut t = StreamTranslator::new(
        source,
        "gpt-4o-mini",
        "chatcmpl-bench",
        1_700_000_000,
        true,
        DEFAULT_MAX_EVENT_BYTES,
    );
    let mut out = 0;
    for piece in stream.chunks(chunk) {
        out += t.push(piece).len();
    }
    out + t.finish().len()
}

fn bench_translate(c: &mut Criterion) {
    let request = chat_request();
    let anthropic_options = AnthropicOptions {
        default_max_tokens: 4096,
        model_override: Some("claude-sonnet-4".into()),
    };
    let gemini_options = GeminiOptions {
        model_override: Some("gemini-2.0-flash".into()),
    };
    let mut g = c.benchmark_group("translate_request");
    g.throughput(Throughput::Bytes(request.len() as u64));
    g.bench_function("openai_to_anthropic", |b| {
        b.iter(|| {
            openai_to_anthropic(black_box(&request), &anthropic_options).map(|t| t.body.len())
        })
    });
    g.bench_function("openai_to_gemini", |b| {
        b.iter(|| openai_to_gemini(black_box(&request), &gemini_options).map(|t| t.body.len()))
    });
    // An agent turn: tool calls whose arguments, and tool answers whose content, are JSON
    // documents in strings, parsed again for the provider.
    let agent = std::fs::read(format!(
        "{}/../filter/src/translate/fixtures/openai_request_agent.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("openai_request_agent.json: {e}"));
    g.throughput(Throughput::Bytes(agent.len() as u64));
    g.bench_function("agent_openai_to_anthropic", |b| {
        b.iter(|| openai_to_anthropic(black_box(&agent), &anthropic_options).map(|t| t.body.len()))
    });
    g.bench_function("agent_openai_to_gemini", |b| {
        b.iter(|| openai_to_gemini(black_box(&agent), &gemini_options).map(|t| t.body.len()))
    });
    g.finish();

    let anthropic_json = fixture("anthropic_message.json");
    let gemini_json = fixture("gemini.json");
    let mut g = c.benchmark_group("translate_response");
    g.throughput(Throughput::Bytes(anthropic_json.len() as u64));
    g.bench_function("anthropic_to_openai", |b| {
        b.iter(|| anthropic_to_openai_at(black_box(&anthropic_json), "gpt-4o-mini", 1_700_000_000))
    });
    g.throughput(Throughput::Bytes(gemini_json.len() as u64));
    g.bench_function("gemini_to_openai", |b| {
        b.iter(|| gemini_to_openai_at(black_box(&gemini_json), "gpt-4o-mini", 1_700_000_000))
    });
    g.finish();

    // The recorded streams as they are: short answers, so per-stream setup is in the figure.
    let anthropic_stream = fixture("anthropic_stream.sse");
    let gemini_stream = fixture("gemini_stream.sse");
    let mut g = c.benchmark_group("translate_stream");
    g.throughput(Throughput::Bytes(anthropic_stream.len() as u64));
    g.bench_function("anthropic_sse_to_openai_chunks", |b| {
        b.iter(|| translate_stream(SourceFormat::Anthropic, black_box(&anthropic_stream), 1024))
    });
    g.throughput(Throughput::Bytes(gemini_stream.len() as u64));
    g.bench_function("gemini_sse_to_openai_chunks", |b| {
        b.iter(|| translate_stream(SourceFormat::Gemini, black_box(&gemini_stream), 1024))
    });
    g.finish();
}

criterion_group!(benches, bench_translate);
criterion_main!(benches);
