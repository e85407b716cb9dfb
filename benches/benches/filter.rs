//! Criterion benches of tollgate's pure logic, natively: what each request pays for in the
//! filter before any host call. Whole-system numbers come from `envoy-compare`, not from here.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use tollgate::config::FilterConfig;
use tollgate::correlation::{choose_request_id, decide_trace};
use tollgate::random::IdRng;

fn correlation(c: &mut Criterion) {
    let mut g = c.benchmark_group("correlation");
    let mut rng = IdRng::new(1);
    g.bench_function("keep_valid_request_id", |b| {
        b.iter(|| {
            choose_request_id(
                black_box(Some("8f14e45f-ceea-467f-a0e6-a1b2c3d4e5f6")),
                [],
                128,
                &mut rng,
            )
        })
    });
    g.bench_function("generate_request_id", |b| {
        b.iter(|| choose_request_id(black_box(None), [], 128, &mut rng))
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

criterion_group!(benches, correlation, config);
criterion_main!(benches);
