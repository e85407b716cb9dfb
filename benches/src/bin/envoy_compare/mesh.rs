//! Mesh-wide budgets (`BENCH_SECTIONS=mesh`): what a global admission check adds to a request,
//! and the two designs measured side by side against the same real rate limit service
//! (`envoy/e2e/ratelimit_service.py`: the `limits` library's fixed windows in Debian's
//! `redis-server`): tollgate's own `ShouldRateLimit` call at admission (`budgets.global`) and
//! Envoy's native rate limit filter (a descriptor per request, plus `apply_on_stream_done`).
//! Then each design with the store down (the service answers UNAVAILABLE), the service gone
//! (connection refused), and a service slower than the 250 ms timeout. docs/budgets.md reads it.

use tollgate_benches::{chat_body, format_delta_us, format_us, percentile};
use tollgate_e2e::mock::MockHandle;
use tollgate_e2e::ratelimit::{RateLimitService, RedisServer};
use tollgate_e2e::{repo_root, template, Vars};

use crate::loops::{run_loops, start_envoy, LoopScenario};
use crate::{template_file, Settings, MODEL};

/// Local budget only: the baseline every row is compared with.
const LOCAL_ONLY: &str = r#"{"budgets":{"windows":[{"period":"day","max_tokens":4000000000}]}}"#;

/// Local budget plus tollgate's mesh budget (a limit no run reaches), failing open.
fn mesh_config(failure_mode: &str) -> String {
    serde_json::json!({
        "budgets": {
            "windows": [{"period": "day", "max_tokens": 4_000_000_000u64}],
            "global": {
                "cluster": "ratelimit",
                "timeout_ms": 250,
                "failure_mode": failure_mode,
                "windows": [{"period": "minute", "max_tokens": 4_000_000_000u64}]
            }
        }
    })
    .to_string()
}

/// The slow stub: `rls_server.py` answering after `delay_ms`.
struct SlowStub {
    child: std::process::Child,
    port: u16,
}

impl SlowStub {
    fn start(delay_ms: u64) -> Option<SlowStub> {
        use std::io::BufRead;
        let mut child = std::process::Command::new(repo_root().join(".venv/bin/python"))
            .arg(repo_root().join("envoy/e2e/rls_server.py"))
            .args(["--port", "0", "--http-port", "0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let stdout = child.stdout.take()?;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let (mut grpc, mut http) = (0u16, 0u16);
        while grpc == 0 || http == 0 {
            let line = lines.next()?.ok()?;
            let port = line.rsplit(' ').next().and_then(|p| p.parse().ok());
            if line.starts_with("rls http listening on ") {
                http = port?;
            } else if line.starts_with("rls listening on ") {
                grpc = port?;
            }
        }
        let body = format!("{{\"delay_ms\": {delay_ms}}}");
        let _ = tollgate_e2e::mock::client::request(
            http,
            "POST",
            "/config",
            &[("content-type", "application/json")],
            body.as_bytes(),
        );
        Some(SlowStub { child, port: grpc })
    }
}

impl Drop for SlowStub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn p50(s: &LoopScenario) -> f64 {
    let v: Vec<f64> = s.samples.iter().map(|x| x.total_us).collect();
    percentile(&v, 0.5)
}

fn p90(s: &LoopScenario) -> f64 {
    let v: Vec<f64> = s.samples.iter().map(|x| x.total_us).collect();
    percentile(&v, 0.9)
}

fn cpu_per_request(s: &LoopScenario) -> Option<f64> {
    let n = s.samples.len() as u64 + s.errors;
    (s.envoy.is_some() && n > 0).then(|| s.cpu_us as f64 / n as f64)
}

fn print_rows(scenarios: &[LoopScenario], base: usize) {
    println!(
        "| # | scenario | p50 | p90 | Δ p50 vs #{} | Envoy CPU / request | Δ CPU | errors |",
        base + 1
    );
    println!("|---|---|---|---|---|---|---|---|");
    let base_p50 = scenarios.get(base).map(p50).unwrap_or(0.0);
    let base_cpu = scenarios.get(base).and_then(cpu_per_request);
    for (i, s) in scenarios.iter().enumerate() {
        if s.samples.is_empty() {
            println!(
                "| {} | {} | – | – | – | – | – | {} |",
                i + 1,
                s.name,
                s.errors
            );
            continue;
        }
        let cpu = cpu_per_request(s);
        let delta_cpu = match (cpu, base_cpu) {
            (Some(c), Some(b)) if i != base => format_delta_us(c - b),
            _ => "–".into(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            s.name,
            format_us(p50(s)),
            format_us(p90(s)),
            if i == base {
                "–".into()
            } else {
                format_delta_us(p50(s) - base_p50)
            },
            cpu.map_or("–".into(), format_us),
            delta_cpu,
            s.errors
        );
    }
}

/// The section.
pub(super) fn mesh_budget(section: usize, settings: &Settings, mock: &MockHandle) {
    let upstream = mock.port();
    let body = chat_body(MODEL, "hello there", false);
    let mut redis = RedisServer::start();
    let service =
        RateLimitService::start_with(&redis.url(), &["--limit", "4000000000", "--unit", "minute"]);
    let own = template("e2e/configs/global_budget.yaml");
    let native = template_file("benches/native_ratelimit.yaml");
    let vars = |rls: u16, plugin: &str| {
        Vars::new()
            .set("UPSTREAM_PORT", upstream)
            .set("RLS_PORT", rls)
            .plugin_config(plugin)
    };
    let healthy = |name: &str, config: &str, plugin: &str| {
        let envoy = start_envoy(name, config, vars(service.port, plugin));
        let port = envoy.as_ref().map_or(0, |e| e.port);
        LoopScenario::new(name, port, envoy, body.clone(), false)
    };
    let mut scenarios = vec![
        healthy("tollgate, local budget only", &own, LOCAL_ONLY),
        healthy(
            "tollgate mesh budget: its own admission call (`budgets.global`), remainder charged from the VM queue",
            &own,
            &mesh_config("open"),
        ),
        healthy(
            "tollgate local budget + Envoy's native rate limit filter (admission + `apply_on_stream_done`)",
            &native,
            LOCAL_ONLY,
        ),
    ];
    run_loops(&mut scenarios, &[200, 200, 200], settings.samples);
    println!("\n#### {section}. Mesh-wide budget admission (sequential client, POST /v1/chat/completions, real rate limit service on Redis)");
    print_rows(&scenarios, 0);
    drop(scenarios);

    // Failures: the store down, the service gone, the service slow. Fail-open everywhere (the
    // request is served); what differs is how long it waits.
    let samples = if settings.quick { 10 } else { 40 };
    redis.stop();
    let gone = tollgate_e2e::free_port();
    let slow = SlowStub::start(1000);
    let slow_port = slow.as_ref().map_or(gone, |s| s.port);
    let failing = |name: &str, config: &str, plugin: &str, rls: u16| {
        let envoy = start_envoy(name, config, vars(rls, plugin));
        let port = envoy.as_ref().map_or(0, |e| e.port);
        LoopScenario::new(name, port, envoy, body.clone(), false)
    };
    let open = mesh_config("open");
    let mut scenarios = vec![
        failing(
            "tollgate, local budget only",
            &own,
            LOCAL_ONLY,
            service.port,
        ),
        failing(
            "tollgate mesh budget, Redis down (service answers UNAVAILABLE)",
            &own,
            &open,
            service.port,
        ),
        failing(
            "native filter, Redis down",
            &native,
            LOCAL_ONLY,
            service.port,
        ),
        failing(
            "tollgate mesh budget, service gone (connection refused)",
            &own,
            &open,
            gone,
        ),
        failing("native filter, service gone", &native, LOCAL_ONLY, gone),
        failing(
            "tollgate mesh budget, service answers after 1 s (timeout 250 ms)",
            &own,
            &open,
            slow_port,
        ),
        failing(
            "native filter, service answers after 1 s (timeout 250 ms)",
            &native,
            LOCAL_ONLY,
            slow_port,
        ),
    ];
    let expect = vec![200; scenarios.len()];
    run_loops(&mut scenarios, &expect, samples);
    println!(
        "\n#### {section}b. The same with the service failing (fail-open: every request is served)"
    );
    print_rows(&scenarios, 0);
    println!(
        "\nTimeouts are 250 ms in both designs. \"Δ\" is against row 1 (no mesh budget). Rows 2–3 of the first table charge the same descriptors of the same service; the service's own time is in both."
    );
    drop(scenarios);
    drop(slow);
    drop(service);
}
