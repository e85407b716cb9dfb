//! Section `table` (the default): plain Envoy, then tollgate with each feature alone and with all
//! of them, in one wrk table; below it the added latency at concurrency 1, the VM's memory per
//! worker, the `.wasm` size and the VM start time.

use crate::failover::failover_config;
use crate::jwt::tollgate_jwt_config;
use crate::loops::{run_loops, start_envoy, LoopScenario};
use crate::targets::print_targets;
use crate::wrk::{
    print_wrk_table, run_wrk, run_wrk_rounds, start_wrk_scenarios, with_module_b, Check, WrkSpec,
};
use crate::{
    display_relative, template_file, tokens, Settings, AUDIENCE, CHAT_PATH, ISSUER, MODEL,
    PROMPT_BYTES,
};
use std::path::Path;
use std::time::Instant;
use tollgate_benches::{
    chat_body, fake_secrets, format_delta_us, format_us, percentile, prompt_text, wrk_post_script,
};
use tollgate_e2e::mock::{Faults, MockHandle, MockOptions, MockProvider};
use tollgate_e2e::{template, wasm_path, Envoy, Vars};

/// tollgate's configuration with usage accounting and prompt masking switched off, plus `extra`
/// (merged at the top level): one feature alone.
pub(crate) fn alone(extra: serde_json::Value) -> String {
    let mut config = serde_json::json!({
        "usage": {"enabled": false},
        "masking": {"prompts": "off"}
    });
    if let (Some(obj), Some(more)) = (config.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            obj.insert(k.clone(), v.clone());
        }
    }
    config.to_string()
}

pub(crate) fn jwt_section(
    jwks: &serde_json::Value,
    cache_size: Option<usize>,
) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(&tollgate_jwt_config(jwks, cache_size))
        .map(|v| v["jwt"].clone())
        .unwrap_or_default()
}

/// A per-user token budget far above what a run spends: the reservation and settlement work
/// happens on every request, and nothing is refused.
pub(crate) fn budget_section() -> serde_json::Value {
    serde_json::json!({"windows": [{"period": "minute", "max_tokens": 1_000_000_000_u64}]})
}

/// Routing with `primary` and `secondary` (both OpenAI-kind): the `failover` section.
pub(crate) fn failover_section() -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(&failover_config())
        .map(|v| v["failover"].clone())
        .unwrap_or_default()
}

/// Envoy's RSS and the wasm VMs' linear memory, after some load.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Footprint {
    pub(crate) rss_kib: f64,
    pub(crate) wasm_vms: usize,
    pub(crate) wasm_committed_kib: f64,
}

pub(crate) fn footprint(pid: u32) -> Footprint {
    let wasm = tollgate_e2e::wasm_memory(pid);
    Footprint {
        rss_kib: tollgate_e2e::rss_kib(pid),
        wasm_vms: wasm.vms,
        wasm_committed_kib: wasm.committed_kib,
    }
}

/// Starts `config` `starts` times at `--concurrency workers`; returns the median time to
/// `/ready` and the footprint of the last start after one second of load with `script`.
pub(crate) fn start_and_measure(
    name: &str,
    config: &str,
    vars: &Vars,
    workers: u32,
    starts: usize,
    script: &Path,
) -> Option<(f64, Footprint)> {
    std::env::set_var("ENVOY_CONCURRENCY", workers.to_string());
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..starts.max(1) {
        drop(last.take());
        let t0 = Instant::now();
        match Envoy::try_start(config, vars.clone()) {
            Ok(envoy) => {
                times.push(t0.elapsed().as_secs_f64() * 1e3);
                last = Some(envoy);
            }
            Err(e) => {
                let tail: String = e.log.lines().rev().take(10).collect::<Vec<_>>().join("\n");
                eprintln!("Envoy for {name} did not start:\n{tail}");
                std::env::remove_var("ENVOY_CONCURRENCY");
                return None;
            }
        }
    }
    std::env::remove_var("ENVOY_CONCURRENCY");
    let envoy = last?;
    let _ = run_wrk(envoy.port, script, 1, 8);
    let _ = run_wrk(envoy.port, script, 1, 8);
    let fp = footprint(envoy.pid()?);
    Some((tollgate_benches::median(&times), fp))
}

pub(crate) fn one_table(section: usize, settings: &Settings, mock: &MockHandle, dir: &Path) {
    eprintln!("generating ES256 and RS256 (2048-bit) keys…");
    let keys = tokens::Keys::generate();
    let jwks = keys.jwks();
    let jwks_text = jwks.to_string();
    let es = keys.es256(ISSUER, AUDIENCE);
    let rs = keys.rs256(ISSUER, AUDIENCE);
    let bearer = |token: &str| vec![("Authorization".to_string(), format!("Bearer {token}"))];
    let json = chat_body(MODEL, "hello there", false);
    let stream = chat_body(MODEL, "Why do toll roads exist? Answer briefly.", true);
    let secrets: Vec<String> = fake_secrets(2024).into_iter().map(|(_, s)| s).collect();
    let big = chat_body(MODEL, &prompt_text(PROMPT_BYTES, &secrets, 11), false);
    let plain = template_file("benches/plain.yaml");
    let basic = template("e2e/configs/basic.yaml");
    let native = template_file("benches/jwt_authn.yaml");
    let routing = template_file("benches/routing.yaml");
    // The failover rows' primary fails 99% of requests with a 500: every such request fails over
    // within the request, and the 1% it serves keeps its circuit closed for the whole run.
    let failing = MockProvider::start(MockOptions {
        max_recorded: 16,
        faults: Faults {
            fail_rate: Some(0.99),
            seed: Some(7),
            ..Faults::default()
        },
        ..MockOptions::default()
    })
    .expect("start the failing mock provider");
    let upstream = mock.port();
    let routing_vars = |primary: u16, plugin: &str| {
        Vars::new()
            .set("PRIMARY_PORT", primary)
            .set("SECONDARY_PORT", upstream)
            .set("PRIMARY_KEY", "sk-bench-primary-key-0123456789abcdef")
            .set("SECONDARY_KEY", "sk-bench-secondary-key-0123456789abcdef")
            .plugin_config(plugin)
    };
    let spec = |name: &str, config: &str, vars: Vars, body: &str, headers, base, check| WrkSpec {
        name: name.to_string(),
        config: config.to_string(),
        vars: vars.set("UPSTREAM_PORT", upstream),
        body: body.to_string(),
        headers,
        base,
        check,
    };
    let all_together = {
        let mut v = serde_json::json!({
            "jwt": jwt_section(&jwks, None),
            "failover": failover_section(),
            "masking": {"prompts": "redact"}
        });
        v["usage"] = serde_json::json!({"enabled": true});
        v.to_string()
    };
    // Issue 13's "all features": JWT ES256 (cached), usage accounting, a token budget and prompt
    // masking; and the same work with Envoy's `jwt_authn` verifying the token (`envoy_jwt`).
    let all_features = serde_json::json!({
        "jwt": jwt_section(&jwks, None),
        "usage": {"enabled": true},
        "budgets": budget_section(),
        "masking": {"prompts": "redact"}
    })
    .to_string();
    let envoy_jwt_features = serde_json::json!({
        "envoy_jwt": {"payload_key": "jwt_payload"},
        "usage": {"enabled": true},
        "budgets": budget_section(),
        "masking": {"prompts": "redact"}
    })
    .to_string();
    let envoy_jwt = template("e2e/configs/envoy_jwt.yaml");
    // The same with `jwt_authn`'s own verified-token cache: the counterpart of tollgate's
    // cached-token row (issue 13 compares the two).
    let anchor = "payload_in_metadata: jwt_payload";
    assert!(
        envoy_jwt.contains(anchor),
        "envoy_jwt.yaml: no `{anchor}` line"
    );
    let envoy_jwt_cached = envoy_jwt.replacen(
        anchor,
        &format!("{anchor}\n                  jwt_cache_config: {{ jwt_cache_size: 1000 }}"),
        1,
    );
    let specs = vec![
        // 1–3: baselines.
        spec("plain Envoy, JSON answer", &plain, Vars::new(), &json, vec![], None, Check::Ok),
        spec("plain Envoy, streamed answer (SSE)", &plain, Vars::new(), &stream, vec![], None, Check::Ok),
        spec(
            &format!("plain Envoy, 64 KiB prompt ({} secrets in it)", secrets.len()),
            &plain, Vars::new(), &big, vec![], None, Check::Ok,
        ),
        // 4: everything optional off.
        spec(
            "tollgate, everything off (correlation ids only), JSON answer",
            &basic,
            Vars::new().plugin_config(&alone(serde_json::json!({}))),
            &json, vec![], Some(1), Check::Ok,
        ),
        // 5–7: usage accounting and masking alone.
        spec(
            "tollgate usage accounting alone, JSON answer",
            &basic,
            Vars::new().plugin_config(r#"{"masking":{"prompts":"off"}}"#),
            &json, vec![], Some(1), Check::Ok,
        ),
        spec(
            "tollgate usage accounting alone, streamed answer (`include_usage` injected, its chunk dropped)",
            &basic,
            Vars::new().plugin_config(r#"{"masking":{"prompts":"off"}}"#),
            &stream, vec![], Some(2), Check::UpstreamContains("include_usage"),
        ),
        spec(
            "tollgate prompt masking alone (`redact`), 64 KiB prompt",
            &basic,
            Vars::new().plugin_config(r#"{"usage":{"enabled":false},"masking":{"prompts":"redact"}}"#),
            &big, vec![], Some(3), Check::UpstreamContains("[REDACTED"),
        ),
        // 8–11: tollgate's JWT alone.
        spec(
            "tollgate JWT ES256 alone, cached (same token every request)",
            &basic,
            Vars::new().plugin_config(&alone(serde_json::json!({"jwt": jwt_section(&jwks, None)}))),
            &json, bearer(&es), Some(1), Check::Ok,
        ),
        spec(
            "tollgate JWT ES256 alone, cache off (`cache_size: 0`: verified every request)",
            &basic,
            Vars::new().plugin_config(&alone(serde_json::json!({"jwt": jwt_section(&jwks, Some(0))}))),
            &json, bearer(&es), Some(1), Check::Ok,
        ),
        spec(
            "tollgate JWT RS256 alone, cached",
            &basic,
            Vars::new().plugin_config(&alone(serde_json::json!({"jwt": jwt_section(&jwks, None)}))),
            &json, bearer(&rs), Some(1), Check::Ok,
        ),
        spec(
            "tollgate JWT RS256 alone, cache off (verified every request)",
            &basic,
            Vars::new().plugin_config(&alone(serde_json::json!({"jwt": jwt_section(&jwks, Some(0))}))),
            &json, bearer(&rs), Some(1), Check::Ok,
        ),
        // 12–13: Envoy's native jwt_authn, no tollgate.
        spec(
            "native `jwt_authn` ES256 (no tollgate; no cache: verified every request)",
            &native,
            Vars::new().set("JWKS", &jwks_text).set("JWT_CACHE", "# no jwt_cache_config"),
            &json, bearer(&es), Some(1), Check::Ok,
        ),
        spec(
            "native `jwt_authn` RS256 (no tollgate; no cache)",
            &native,
            Vars::new().set("JWKS", &jwks_text).set("JWT_CACHE", "# no jwt_cache_config"),
            &json, bearer(&rs), Some(1), Check::Ok,
        ),
        // 14: jwt_authn (its cache on, as tollgate's in row 16) + tollgate in envoy_jwt mode.
        spec(
            "`jwt_authn` ES256 (`jwt_cache_config`) + tollgate in `envoy_jwt` mode: usage, budget, prompt masking",
            &envoy_jwt_cached,
            Vars::new().set("JWKS", &jwks_text).plugin_config(&envoy_jwt_features),
            &json, bearer(&es), Some(1), Check::Ok,
        ),
        // 15: failover alone.
        spec(
            "tollgate failover alone: primary answers 500 (99%), the secondary answers through a callout",
            &routing,
            routing_vars(failing.port(), &alone(serde_json::json!({"failover": failover_section()}))),
            &json, vec![], Some(1), Check::Ok,
        ),
        // 16: all features (issue 13).
        spec(
            "tollgate, all features: JWT ES256 (cached) + usage + budget + prompt masking",
            &basic,
            Vars::new().plugin_config(&all_features),
            &json, bearer(&es), Some(1), Check::Ok,
        ),
        // 17: everything, routing included.
        spec(
            "tollgate, all together: JWT ES256 (cached) + routing (healthy primary) + usage + prompt masking",
            &routing,
            routing_vars(upstream, &all_together),
            &json, bearer(&es), Some(1), Check::Ok,
        ),
        // 18: row 14 with jwt_authn verifying every token (no cache).
        spec(
            "`jwt_authn` ES256 (no cache) + tollgate in `envoy_jwt` mode: usage, budget, prompt masking",
            &envoy_jwt,
            Vars::new().set("JWKS", &jwks_text).plugin_config(&envoy_jwt_features),
            &json, bearer(&es), Some(1), Check::Ok,
        ),
        // 19: jwt_authn ES256 with its cache, no tollgate (row 14's Envoy part).
        spec(
            "native `jwt_authn` ES256 with `jwt_cache_config` (no tollgate)",
            &native,
            Vars::new()
                .set("JWKS", &jwks_text)
                .set("JWT_CACHE", "jwt_cache_config: { jwt_cache_size: 1000 }"),
            &json, bearer(&es), Some(1), Check::Ok,
        ),
    ];
    let (specs, rows) = with_module_b(specs, &settings.rows);
    let mut scenarios = start_wrk_scenarios(specs, &rows, mock, dir);
    run_wrk_rounds(&mut scenarios, settings);
    println!(
        "\n#### {section}. Plain Envoy vs Envoy + tollgate, feature by feature (wrk; POST {CHAT_PATH})"
    );
    let summaries = print_wrk_table(&scenarios);
    println!(
        "\n\"added\" is this row minus row \"vs #\": its baseline without the feature (plain Envoy with the same request). Usage accounting rows include correlation ids, which are always on. A cold JWT row verifies the signature on every request; \"cached\" reuses tollgate's per-worker verified-token cache."
    );
    drop(scenarios);
    if !settings.rows.is_empty() {
        println!("\n_Rows limited by `BENCH_ROWS`: latency, memory and start time not measured._");
        return;
    }
    let latency = latency_at_concurrency_one(settings, mock, &all_features, &es);

    // VM memory and start time.
    let json_file = dir.join("vm-body.json");
    std::fs::write(&json_file, &json).expect("write the body");
    let plain_script = dir.join("vm-plain.lua");
    let all_script = dir.join("vm-all.lua");
    std::fs::write(&plain_script, wrk_post_script(&json_file, &[])).expect("write a script");
    std::fs::write(&all_script, wrk_post_script(&json_file, &bearer(&es))).expect("write a script");
    let plain_vars = Vars::new().set("UPSTREAM_PORT", upstream);
    let all_vars = routing_vars(upstream, &all_together);
    eprintln!("timing Envoy starts and measuring memory…");
    const MORE_WORKERS: u32 = 4;
    let measured = (
        start_and_measure(
            "plain, 1 worker",
            &plain,
            &plain_vars,
            1,
            settings.starts,
            &plain_script,
        ),
        start_and_measure(
            "tollgate, 1 worker",
            &routing,
            &all_vars,
            1,
            settings.starts,
            &all_script,
        ),
        start_and_measure(
            "plain, more workers",
            &plain,
            &plain_vars,
            MORE_WORKERS,
            1,
            &plain_script,
        ),
        start_and_measure(
            "tollgate, more workers",
            &routing,
            &all_vars,
            MORE_WORKERS,
            1,
            &all_script,
        ),
    );
    let (Some(p1), Some(t1), Some(pn), Some(tn)) = measured else {
        println!("\nVM memory and start time: skipped (an Envoy did not start)");
        print_targets(&summaries, latency, None, wasm_size());
        return;
    };
    let mib = |kib: f64| kib / 1024.0;
    let extra_workers = f64::from(MORE_WORKERS - 1);
    let per_worker =
        ((tn.1.rss_kib - t1.1.rss_kib) - (pn.1.rss_kib - p1.1.rss_kib)) / extra_workers;
    let per_vm = if tn.1.wasm_vms > 0 {
        tn.1.wasm_committed_kib / tn.1.wasm_vms as f64
    } else {
        0.0
    };
    println!(
        "\n- **wasm VM memory per worker: {:+.1} MiB** of Envoy RSS, ((tollgate at `--concurrency {MORE_WORKERS}` − at 1) − (plain Envoy at {MORE_WORKERS} − at 1)) / {}, each after 2 s of load with the all-together configuration (tollgate {:.1} → {:.1} MiB, plain {:.1} → {:.1} MiB); each VM's linear memory is {:.0} KiB (`memory.size` from `/proc/<envoy>/smaps`: the read-write mapping in front of V8's guard region; {} VMs at `--concurrency {MORE_WORKERS}`, {} at 1). **Loading the module costs {:+.1} MiB once** (at `--concurrency 1`: {:.1} MiB with tollgate, {:.1} MiB plain): V8's compiled code and heap, shared by the workers.",
        mib(per_worker),
        MORE_WORKERS - 1,
        mib(t1.1.rss_kib), mib(tn.1.rss_kib), mib(p1.1.rss_kib), mib(pn.1.rss_kib),
        per_vm,
        tn.1.wasm_vms,
        t1.1.wasm_vms,
        mib(t1.1.rss_kib - p1.1.rss_kib),
        mib(t1.1.rss_kib), mib(p1.1.rss_kib),
    );
    let wasm = wasm_path();
    let size = std::fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0);
    println!(
        "- **`.wasm` size: {size} bytes ({:.2} MiB)**, `{}`.",
        size as f64 / 1048576.0,
        display_relative(&wasm)
    );
    println!(
        "- **VM start: {:+.0} ms** — Envoy process start to `/ready`, median of {} starts at `--concurrency 1`: {:.0} ms with tollgate (V8 compiles the module, then one VM per worker plus the main thread's runs `on_configure`), {:.0} ms plain; at `--concurrency {MORE_WORKERS}`: {:.0} ms vs {:.0} ms (one start).",
        t1.0 - p1.0,
        settings.starts.max(1),
        t1.0, p1.0, tn.0, pn.0
    );
    print_targets(&summaries, latency, Some(t1.0 - p1.0), size);
    drop(failing);
}

pub(crate) fn wasm_size() -> u64 {
    std::fs::metadata(wasm_path()).map(|m| m.len()).unwrap_or(0)
}

/// p50 latencies (µs) of one request at a time: the mock directly, through plain Envoy, through
/// Envoy + tollgate with all features.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SerialLatency {
    pub(crate) direct_us: f64,
    pub(crate) plain_us: f64,
    pub(crate) tollgate_us: f64,
}

/// Sends one request at a time (concurrency 1), alternating between the mock directly, plain
/// Envoy and Envoy + tollgate with `all_features`; prints their p50 and what each proxy adds.
pub(crate) fn latency_at_concurrency_one(
    settings: &Settings,
    mock: &MockHandle,
    all_features: &str,
    token: &str,
) -> Option<SerialLatency> {
    let upstream = mock.port();
    let plain = start_envoy(
        "plain Envoy (concurrency 1)",
        &template_file("benches/plain.yaml"),
        Vars::new().set("UPSTREAM_PORT", upstream),
    );
    let tollgate = start_envoy(
        "tollgate all features (concurrency 1)",
        &template("e2e/configs/basic.yaml"),
        Vars::new()
            .set("UPSTREAM_PORT", upstream)
            .plugin_config(all_features),
    );
    let (Some(plain), Some(tollgate)) = (plain, tollgate) else {
        println!("\nAdded latency at concurrency 1: skipped (an Envoy did not start)");
        return None;
    };
    let body = chat_body(MODEL, "hello there", false);
    let mut scenarios = vec![
        LoopScenario::new(
            "mock provider directly",
            upstream,
            None,
            body.clone(),
            false,
        ),
        LoopScenario::new("plain Envoy", plain.port, Some(plain), body.clone(), false),
        LoopScenario::new(
            "Envoy + tollgate, all features (JWT ES256 cached, usage, budget, prompt masking)",
            tollgate.port,
            Some(tollgate),
            body,
            false,
        )
        .with_headers(vec![(
            "Authorization".to_string(),
            format!("Bearer {token}"),
        )]),
    ];
    eprintln!("concurrency 1: {} requests per scenario…", settings.samples);
    run_loops(&mut scenarios, &[200, 200, 200], settings.samples);
    let p50 = |s: &LoopScenario| {
        percentile(
            &s.samples.iter().map(|x| x.total_us).collect::<Vec<_>>(),
            0.5,
        )
    };
    let [direct, plain, tollgate] = [0, 1, 2].map(|i| scenarios.get(i).map(p50).unwrap_or(0.0));
    println!("\n**Added latency at concurrency 1** (one request at a time, alternating, {} each, JSON answer):\n", settings.samples);
    println!("| scenario | p50 | added p50 over the mock directly | errors |");
    println!("|---|---:|---:|---:|");
    for s in &scenarios {
        println!(
            "| {} | {} | {} | {} |",
            s.name,
            format_us(p50(s)),
            if s.envoy.is_some() {
                format_delta_us(p50(s) - direct)
            } else {
                "–".into()
            },
            s.errors
        );
    }
    Some(SerialLatency {
        direct_us: direct,
        plain_us: plain,
        tollgate_us: tollgate,
    })
}
