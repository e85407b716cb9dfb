//! Section `latency`: the added latency at concurrency 1, feature by feature. One request at a
//! time, alternating request by request between the mock directly, plain Envoy and tollgate
//! with everything off, with usage accounting alone and with all features (issue 13's row 16:
//! JWT ES256 cached, usage, budget, prompt masking); with `BENCH_WASM_B`, each tollgate row runs
//! a second time with the other build in the same loop (here `BENCH_WASM_B` may name several
//! builds, comma-separated; `BENCH_LATENCY_ROWS=off,usage,all` selects the tollgate rows). Each row: p25/p50/p75 of the whole
//! request, what its p50 adds over the mock directly and over plain Envoy, and the Envoy CPU per
//! request at concurrency 1.

use crate::loops::{cpu_cell, run_loops, start_envoy, LoopScenario};
use crate::table::{alone, budget_section, jwt_section};
use crate::{template_file, tokens, Settings, AUDIENCE, ISSUER, MODEL};
use tollgate_benches::{chat_body, format_delta_us, format_us, percentile};
use tollgate_e2e::mock::MockHandle;
use tollgate_e2e::{template, Vars};

/// One tollgate configuration measured at concurrency 1.
struct Row {
    /// Its name in `BENCH_LATENCY_ROWS`.
    key: &'static str,
    name: &'static str,
    plugin: String,
    /// Sends the ES256 token.
    bearer: bool,
}

pub(crate) fn latency(section: usize, settings: &Settings, mock: &MockHandle) {
    let keys = tokens::Keys::generate();
    let jwks = keys.jwks();
    let token = keys.es256(ISSUER, AUDIENCE);
    let upstream = mock.port();
    let body = chat_body(MODEL, "hello there", false);
    let rows = [
        Row {
            key: "off",
            name: "tollgate, everything off (correlation ids only)",
            plugin: alone(serde_json::json!({})),
            bearer: false,
        },
        Row {
            key: "usage",
            name: "tollgate, usage accounting alone",
            plugin: r#"{"masking":{"prompts":"off"}}"#.to_string(),
            bearer: false,
        },
        Row {
            key: "all",
            name: "tollgate, all features (JWT ES256 cached, usage, budget, prompt masking)",
            plugin: serde_json::json!({
                "jwt": jwt_section(&jwks, None),
                "usage": {"enabled": true},
                "budgets": budget_section(),
                "masking": {"prompts": "redact"}
            })
            .to_string(),
            bearer: true,
        },
    ];
    let basic = template("e2e/configs/basic.yaml");
    let mut builds = vec![(String::new(), basic.clone())];
    for b in std::env::var("BENCH_WASM_B")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        builds.push((format!(" [B: {b}]"), basic.replace("{{WASM}}", b)));
    }
    let wanted = std::env::var("BENCH_LATENCY_ROWS").unwrap_or_default();
    let wanted: Vec<&str> = wanted
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    let mut scenarios = vec![LoopScenario::new(
        "mock provider directly",
        upstream,
        None,
        body.clone(),
        false,
    )];
    if let Some(plain) = start_envoy(
        "plain Envoy (concurrency 1)",
        &template_file("benches/plain.yaml"),
        Vars::new().set("UPSTREAM_PORT", upstream),
    ) {
        scenarios.push(LoopScenario::new(
            "plain Envoy",
            plain.port,
            Some(plain),
            body.clone(),
            false,
        ));
    }
    for row in rows
        .iter()
        .filter(|r| wanted.is_empty() || wanted.contains(&r.key))
    {
        for (suffix, config) in &builds {
            let name = format!("{}{suffix}", row.name);
            let vars = Vars::new()
                .set("UPSTREAM_PORT", upstream)
                .plugin_config(&row.plugin);
            let Some(envoy) = start_envoy(&name, config, vars) else {
                continue;
            };
            let headers = if row.bearer {
                vec![("Authorization".to_string(), format!("Bearer {token}"))]
            } else {
                Vec::new()
            };
            scenarios.push(
                LoopScenario::new(&name, envoy.port, Some(envoy), body.clone(), false)
                    .with_headers(headers),
            );
        }
    }
    eprintln!(
        "latency at concurrency 1: {} requests per scenario…",
        settings.samples
    );
    let expect = vec![200; scenarios.len()];
    run_loops(&mut scenarios, &expect, settings.samples);
    let at = |s: &LoopScenario, q: f64| {
        percentile(&s.samples.iter().map(|x| x.total_us).collect::<Vec<_>>(), q)
    };
    let direct = scenarios.first().map_or(0.0, |s| at(s, 0.5));
    let plain = scenarios
        .iter()
        .find(|s| s.name == "plain Envoy")
        .map(|s| at(s, 0.5));
    let plain_cpu = scenarios
        .iter()
        .find(|s| s.name == "plain Envoy")
        .map(cpu_per_request);
    println!(
        "\n#### {section}. Added latency at concurrency 1, feature by feature (one request at a time, alternating, {} each, JSON answer)\n",
        settings.samples
    );
    println!("| scenario | p25 | p50 | p75 | added p50 over the mock | over plain Envoy | Envoy CPU µs/req | over plain | errors |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for s in &scenarios {
        let proxied = s.envoy.is_some();
        let p50 = at(s, 0.5);
        let over = |base: Option<f64>, value: f64| match base {
            Some(b) if proxied && s.name != "plain Envoy" => format_delta_us(value - b),
            _ => "–".into(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.name,
            format_us(at(s, 0.25)),
            format_us(p50),
            format_us(at(s, 0.75)),
            if proxied {
                format_delta_us(p50 - direct)
            } else {
                "–".into()
            },
            over(plain, p50),
            cpu_cell(s),
            over(plain_cpu, cpu_per_request(s)),
            s.errors
        );
    }
}

fn cpu_per_request(s: &LoopScenario) -> f64 {
    s.cpu_us as f64 / (s.samples.len() as u64 + s.errors).max(1) as f64
}
