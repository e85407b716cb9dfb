//! Criterion benches of tollgate's pure logic, natively: what each request pays for in the
//! filter before any host call. Whole-system numbers come from `envoy-compare`, not from here.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use tollgate::config::FilterConfig;
use tollgate::correlation::{choose_request_id, decide_trace};
use tollgate::random::IdRng;
use tollgate::sse::{OversizedEvent, SseParser};
use tollgate::usage::{ApiKind, TrackerConfig, UsageTracker};

/// A realistic OpenAI chat stream of about `target` bytes, ending with usage and `[DONE]`.
fn openai_stream(target: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(target + 512);
    let mut i = 0u64;
    while out.len() < target {
        out.extend_from_slice(format!(
            "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token{i} \"}},\"finish_reason\":null}}],\"usage\":null}}\n\n"
        ).as_bytes());
        i += 1;
    }
    out.extend_from_slice(b"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":20,\"total_tokens\":30}}\n\ndata: [DONE]\n\n");
    out
}

/// A realistic Anthropic Messages stream of about `target` bytes.
fn anthropic_stream(target: usize) -> Vec<u8> {
    let mut out = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-sonnet-4\",\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n".to_vec();
    while out.len() < target {
        out.extend_from_slice(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello there \"}}\n\n");
    }
    out.extend_from_slice(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":500}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    out
}

/// SSE scanning alone and full usage tracking, per format, fed in 16 KiB chunks.
fn usage(c: &mut Criterion) {
    let mut g = c.benchmark_group("usage");
    let openai = openai_stream(4 * 1024 * 1024);
    let anthropic = anthropic_stream(4 * 1024 * 1024);
    g.throughput(criterion::Throughput::Bytes(openai.len() as u64));
    g.bench_function("sse_scan_openai_4MiB", |b| {
        b.iter(|| {
            let mut p = SseParser::new(1024 * 1024, OversizedEvent::Skip);
            let mut n = 0usize;
            for chunk in openai.chunks(16 * 1024) {
                p.feed(chunk, |_| n += 1);
            }
            n
        })
    });
    g.bench_function("track_openai_4MiB", |b| {
        b.iter(|| {
            let mut t = UsageTracker::for_content_type(
                ApiKind::OpenAiChat,
                Some("text/event-stream"),
                10,
                TrackerConfig::default(),
            );
            for chunk in openai.chunks(16 * 1024) {
                t.feed(chunk);
            }
            t.finish()
        })
    });
    g.throughput(criterion::Throughput::Bytes(anthropic.len() as u64));
    g.bench_function("track_anthropic_4MiB", |b| {
        b.iter(|| {
            let mut t = UsageTracker::for_content_type(
                ApiKind::Anthropic,
                Some("text/event-stream"),
                10,
                TrackerConfig::default(),
            );
            for chunk in anthropic.chunks(16 * 1024) {
                t.feed(chunk);
            }
            t.finish()
        })
    });
    g.finish();
}

fn correlation(c: &mut Criterion) {
    let mut g = c.benchmark_group("correlation");
    let mut rng = IdRng::new(1);
    g.bench_function("keep_valid_request_id", |b| {
        b.iter(|| {
            choose_request_id(
                black_box(Some("8f14e45f-ceea-467f-a0e6-a1b2c3d4e5f6")),
                [],
                128,
                || IdRng::new(1),
            )
        })
    });
    g.bench_function("generate_request_id", |b| {
        b.iter(|| choose_request_id(black_box(None), [], 128, || rng.clone()))
    });
    g.bench_function("continue_traceparent", |b| {
        b.iter(|| {
            decide_trace(
                black_box(Some(
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )),
                &mut rng,
            )
        })
    });
    g.finish();
}

fn config(c: &mut Criterion) {
    let doc = br#"{"correlation":{"aliases":["x-correlation-id"],"max_length":128},"limits":{"max_request_bytes":1048576}}"#;
    c.bench_function("config/parse", |b| {
        b.iter(|| FilterConfig::parse(black_box(doc)))
    });
}

criterion_group!(benches, correlation, config, usage);
criterion_main!(benches);
