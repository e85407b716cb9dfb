//! Section `failover` (4. One failover, own client loop): routing to a healthy primary vs a
//! primary that always answers 500, so every request fails over within the request to the
//! secondary; tollgate's own callout against Envoy walking the route.

use crate::loops::{cpu_cell, run_loops, start_envoy, LoopScenario};
use crate::{template_file, Settings, FAILURE_THRESHOLD, MODEL};
use tollgate_benches::{chat_body, format_delta_us, format_us, percentile};
use tollgate_e2e::mock::{Faults, MockHandle, MockOptions, MockProvider};
use tollgate_e2e::Vars;

pub(crate) fn failover_config() -> String {
    let provider = |name: &str, env: &str| {
        serde_json::json!({
            "name": name, "kind": "openai", "cluster": name,
            "api_key": {"env": env},
            "max_retries": 0,
            "circuit": {"failure_threshold": FAILURE_THRESHOLD, "cooldown_ms": 60000}
        })
    };
    serde_json::json!({"failover": {
        "providers": [provider("primary", "PRIMARY_API_KEY"), provider("secondary", "SECONDARY_API_KEY")],
        "routes": [{"model": MODEL, "providers": ["primary", "secondary"]}]
    }})
    .to_string()
}

/// The same routing walked by Envoy: the route names the aggregate cluster `llm`.
pub(crate) fn walk_failover_config() -> String {
    let mut v: serde_json::Value = serde_json::from_str(&failover_config()).unwrap_or_default();
    v["failover"]["routes"][0]["cluster"] = serde_json::json!("llm");
    v.to_string()
}

pub(crate) fn failover(section: usize, settings: &Settings, mock: &MockHandle) {
    let failing = MockProvider::start(MockOptions {
        max_recorded: 16,
        faults: Faults {
            status: Some(500),
            ..Faults::default()
        },
        ..MockOptions::default()
    })
    .expect("start the failing mock provider");
    let config = template_file("benches/routing.yaml");
    let vars = |primary: u16| {
        Vars::new()
            .set("PRIMARY_PORT", primary)
            .set("SECONDARY_PORT", mock.port())
            .set("PRIMARY_KEY", "sk-bench-primary-key-0123456789abcdef")
            .set("SECONDARY_KEY", "sk-bench-secondary-key-0123456789abcdef")
            .plugin_config(&failover_config())
    };
    let walk_config = template_file("benches/routing_walk.yaml");
    let walk_vars = |primary: u16| {
        Vars::new()
            .set("PRIMARY_PORT", primary)
            .set("SECONDARY_PORT", mock.port())
            .set("PRIMARY_KEY", "sk-bench-primary-key-0123456789abcdef")
            .set("SECONDARY_KEY", "sk-bench-secondary-key-0123456789abcdef")
            .plugin_config(&walk_failover_config())
    };
    let a = start_envoy("failover A (primary healthy)", &config, vars(mock.port()));
    let b = start_envoy("failover B (primary 500)", &config, vars(failing.port()));
    let c = start_envoy(
        "failover C (walked, primary healthy)",
        &walk_config,
        walk_vars(mock.port()),
    );
    let d = start_envoy(
        "failover D (walked, primary 500)",
        &walk_config,
        walk_vars(failing.port()),
    );
    let (Some(a), Some(b), Some(c), Some(d)) = (a, b, c, d) else {
        println!("\n#### {section}. One failover\n\nskipped: an Envoy did not start");
        return;
    };
    // Every B request fails on the primary once; stay below the circuit threshold.
    let samples = settings.samples.min(FAILURE_THRESHOLD / 2);
    let body = chat_body(MODEL, "hello there", false);
    let mut scenarios = vec![
        LoopScenario::new(
            "mock provider directly, 200 (reference)",
            mock.port(),
            None,
            body.clone(),
            false,
        ),
        LoopScenario::new(
            "mock provider directly, 500 (reference: the failed exchange alone)",
            failing.port(),
            None,
            body.clone(),
            false,
        ),
        LoopScenario::new(
            "A: tollgate routing, primary healthy",
            a.port,
            Some(a),
            body.clone(),
            false,
        ),
        LoopScenario::new(
            "B: tollgate routing, primary always 500 → in-request failover to the secondary",
            b.port,
            Some(b),
            body.clone(),
            false,
        ),
        LoopScenario::new(
            "C: walked by Envoy (aggregate cluster + upstream stage), primary healthy",
            c.port,
            Some(c),
            body.clone(),
            false,
        ),
        LoopScenario::new(
            "D: walked by Envoy, primary always 500 → Envoy's retry to the secondary",
            d.port,
            Some(d),
            body,
            false,
        ),
    ];
    let failed_before = failing.stats().responses_error;
    eprintln!("failover: {samples} requests per scenario…");
    run_loops(&mut scenarios, &[200, 500, 200, 200, 200, 200], samples);
    let primary_failures = failing.stats().responses_error - failed_before;

    let p = |s: &LoopScenario, q: f64| {
        percentile(&s.samples.iter().map(|x| x.total_us).collect::<Vec<_>>(), q)
    };
    let a_p50 = scenarios.get(2).map(|s| p(s, 0.5)).unwrap_or(0.0);
    println!("\n#### {section}. One failover (client loop, non-streamed chat request)");
    println!(
        "\n| scenario | requests | p50 | p90 | p99 | Envoy CPU µs/req | Δ p50 vs A | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (i, s) in scenarios.iter().enumerate() {
        let c_p50 = scenarios.get(4).map(|s| p(s, 0.5)).unwrap_or(0.0);
        let delta = if i == 3 {
            format_delta_us(p(s, 0.5) - a_p50)
        } else if i == 5 {
            format!("{} (vs C)", format_delta_us(p(s, 0.5) - c_p50))
        } else {
            "–".into()
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {delta} | {} |",
            s.name,
            s.samples.len(),
            format_us(p(s, 0.5)),
            format_us(p(s, 0.9)),
            format_us(p(s, 0.99)),
            cpu_cell(s),
            s.errors
        );
    }
    let (Some(direct_500), Some(b)) = (scenarios.get(1), scenarios.get(3)) else {
        return;
    };
    let added = p(b, 0.5) - a_p50;
    let failed_exchange = p(direct_500, 0.5);
    let walked_sent = scenarios.get(5).map_or(0, |d| d.sent);
    let b_failures = primary_failures
        .saturating_sub(direct_500.sent)
        .saturating_sub(walked_sent);
    println!(
        "\nOne failover adds **{}** at p50 (B − A). B pays for the failed exchange with the primary (about {} when the mock is called directly) plus tollgate holding the 500, picking the secondary and sending the request again as a callout; beyond the failed attempt, the failover itself costs about **{}** (B − A − direct 500). The primary's circuit stays closed (`failure_threshold` {FAILURE_THRESHOLD}, `max_retries` 0): it answered {b_failures} of B's {} requests (warm-up included) with 500, one failed attempt per request.",
        format_delta_us(added),
        format_us(failed_exchange),
        format_delta_us(added - failed_exchange),
        b.sent,
    );
    if let (Some(c), Some(d)) = (scenarios.get(4), scenarios.get(5)) {
        let walked = p(d, 0.5) - p(c, 0.5);
        println!(
            "\nWalked by Envoy, one failover adds **{}** at p50 (D − C), about **{}** beyond the failed exchange: no callout, but Envoy's retry waits for its back-off timer (`base_interval` 1 ms here; Envoy schedules retries in whole milliseconds, so shorter settings measured the same) and the upstream stage runs a second time.",
            format_delta_us(walked),
            format_delta_us(walked - failed_exchange),
        );
    }
    drop(scenarios);
    drop(failing);
}
