//! Section `ttfb` (2. Streaming time to first byte): an OpenAI stream through plain Envoy and
//! through Envoy + tollgate (usage accounting on), alternating request by request.

use crate::loops::{cpu_cell, run_loops, start_envoy, LoopScenario, Sample};
use crate::{template_file, Settings, MODEL};
use tollgate_benches::{chat_body, format_delta_us, format_us, percentile};
use tollgate_e2e::mock::MockHandle;
use tollgate_e2e::{template, Vars};

pub(crate) fn streaming_ttfb(section: usize, settings: &Settings, mock: &MockHandle) {
    let upstream = mock.port();
    let body = chat_body(MODEL, "Why do toll roads exist? Answer briefly.", true);
    let plain = start_envoy(
        "plain Envoy (stream)",
        &template_file("benches/plain.yaml"),
        Vars::new().set("UPSTREAM_PORT", upstream),
    );
    let with_filter = start_envoy(
        "Envoy + tollgate (stream)",
        &template("e2e/configs/basic.yaml"),
        Vars::new()
            .set("UPSTREAM_PORT", upstream)
            .plugin_config("{}"),
    );
    let (Some(plain), Some(with_filter)) = (plain, with_filter) else {
        println!(
            "\n#### {section}. Streaming time to first byte\n\nskipped: an Envoy did not start"
        );
        return;
    };
    let mut scenarios = vec![
        LoopScenario::new("plain Envoy", plain.port, Some(plain), body.clone(), true),
        LoopScenario::new(
            "Envoy + tollgate, defaults `{}` (usage accounting of the stream, `include_usage` injected and its chunk stripped)",
            with_filter.port,
            Some(with_filter),
            body,
            true,
        ),
    ];
    eprintln!(
        "streaming TTFB: {} requests per scenario…",
        settings.samples
    );
    run_loops(&mut scenarios, &[200, 200], settings.samples);

    let first_p50 = |s: &LoopScenario| {
        percentile(
            &s.samples
                .iter()
                .map(|x| x.first_chunk_us)
                .collect::<Vec<_>>(),
            0.5,
        )
    };
    let base = scenarios.first().map(first_p50).unwrap_or(0.0);
    println!(
        "\n#### {section}. Streaming: time to first byte of an OpenAI chat stream (client loop)"
    );
    println!(
        "\n| scenario | requests | headers p50 | first chunk p50 | first chunk p90 | first chunk p99 | whole stream p50 | Envoy CPU µs/req | Δ first chunk p50 | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, s) in scenarios.iter().enumerate() {
        let col = |f: fn(&Sample) -> f64| s.samples.iter().map(f).collect::<Vec<_>>();
        let first = col(|x| x.first_chunk_us);
        let delta = if i == 0 {
            "–".into()
        } else {
            format_delta_us(first_p50(s) - base)
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {delta} | {} |",
            s.name,
            s.samples.len(),
            format_us(percentile(&col(|x| x.head_us), 0.5)),
            format_us(percentile(&first, 0.5)),
            format_us(percentile(&first, 0.9)),
            format_us(percentile(&first, 0.99)),
            format_us(percentile(&col(|x| x.total_us), 0.5)),
            cpu_cell(s),
            s.errors
        );
    }
    if let Some(s) = scenarios.get(1) {
        let added = first_p50(s) - base;
        println!(
            "\nAdded time to first byte at p50: **{}** (target < 1 ms: {}). Measured from writing the request to receiving the first body chunk of the stream.",
            format_delta_us(added),
            if added < 1000.0 { "met" } else { "NOT met" }
        );
    }
}
