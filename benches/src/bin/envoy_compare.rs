//! The Envoy-level comparison behind `make bench`: the same mock upstream reached through plain
//! Envoy and through Envoy + tollgate, in one run, alternating rounds, load from `wrk` on
//! 127.0.0.1. Prints requests/s, p50/p99 latency and Envoy CPU microseconds per request (from
//! `/proc/<pid>/stat`) for each, and the ratios, as a Markdown table for the README.
//!
//! Environment: `BENCH_SECONDS` (per round, default 5), `BENCH_ROUNDS` (default 3),
//! `BENCH_CONNECTIONS` (default 16).

use std::process::Command;

use tollgate_benches::{parse_wrk, process_cpu_us, LoadResult};
use tollgate_e2e::mock::{MockOptions, MockProvider};
use tollgate_e2e::{repo_root, temp_dir, template, Envoy, Vars};

struct Scenario {
    name: &'static str,
    envoy: Envoy,
    path: &'static str,
    body: &'static str,
    runs: Vec<(LoadResult, u64)>,
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run_wrk(port: u16, path: &str, body: &str, seconds: u64, connections: u64) -> String {
    let dir = temp_dir("wrk");
    let script = dir.join("post.lua");
    let lua = format!(
        "wrk.method = \"POST\"\nwrk.body = {}\nwrk.headers[\"Content-Type\"] = \"application/json\"\n",
        serde_json::to_string(body).unwrap_or_default()
    );
    std::fs::write(&script, lua).expect("write wrk script");
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("run wrk (make setup installs it)");
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn main() {
    let seconds = env_num("BENCH_SECONDS", 5);
    let rounds = env_num("BENCH_ROUNDS", 3);
    let connections = env_num("BENCH_CONNECTIONS", 16);
    let mock = MockProvider::start(MockOptions::default()).expect("start mock provider");
    let upstream = mock.port();
    let chat = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there"}]}"#;

    let plain =
        std::fs::read_to_string(repo_root().join("benches/plain.yaml")).expect("plain.yaml");
    let with_filter = template("e2e/configs/basic.yaml");
    let mut scenarios = vec![
        Scenario {
            name: "plain Envoy",
            envoy: Envoy::start(&plain, Vars::new().set("UPSTREAM_PORT", upstream)),
            path: "/v1/chat/completions",
            body: chat,
            runs: Vec::new(),
        },
        Scenario {
            name: "Envoy + tollgate (correlation ids)",
            envoy: Envoy::start(
                &with_filter,
                Vars::new()
                    .set("UPSTREAM_PORT", upstream)
                    .plugin_config("{}"),
            ),
            path: "/v1/chat/completions",
            body: chat,
            runs: Vec::new(),
        },
    ];

    eprintln!("warming up…");
    for s in &scenarios {
        let _ = run_wrk(s.envoy.port, s.path, s.body, 1, connections);
    }
    for round in 0..rounds {
        for s in scenarios.iter_mut() {
            let pid = s.envoy.pid().expect("envoy running");
            let cpu_before = process_cpu_us(pid).unwrap_or(0);
            let out = run_wrk(s.envoy.port, s.path, s.body, seconds, connections);
            let cpu_after = process_cpu_us(pid).unwrap_or(0);
            match parse_wrk(&out) {
                Some(r) => {
                    eprintln!("round {} {}: {:.0} req/s", round + 1, s.name, r.rps);
                    s.runs.push((r, cpu_after.saturating_sub(cpu_before)));
                }
                None => eprintln!(
                    "round {} {}: unparseable wrk output:\n{out}",
                    round + 1,
                    s.name
                ),
            }
        }
    }

    let summary: Vec<(String, f64, f64, f64, f64, u64)> = scenarios
        .iter()
        .map(|s| {
            let n = s.runs.len().max(1) as f64;
            let rps = s.runs.iter().map(|(r, _)| r.rps).sum::<f64>() / n;
            let p50 = median(s.runs.iter().map(|(r, _)| r.p50_us).collect());
            let p99 = median(s.runs.iter().map(|(r, _)| r.p99_us).collect());
            let reqs: u64 = s.runs.iter().map(|(r, _)| r.requests).sum();
            let cpu: u64 = s.runs.iter().map(|(_, c)| *c).sum();
            let errors: u64 = s.runs.iter().map(|(r, _)| r.non_2xx).sum();
            let cpu_per_req = if reqs > 0 {
                cpu as f64 / reqs as f64
            } else {
                0.0
            };
            (s.name.to_string(), rps, p50, p99, cpu_per_req, errors)
        })
        .collect();
    let base = summary.first().cloned();
    println!(
        "\nEnvoy 1.40.0 (V8), --concurrency 1, wrk -t1 -c{connections}, {rounds} alternating rounds of {seconds}s, {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!("\n| scenario | req/s | p50 | p99 | Envoy CPU µs/req | non-2xx | req/s ratio | CPU ratio | added CPU µs/req |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, rps, p50, p99, cpu, errors) in &summary {
        let (rr, cr, added) = match &base {
            Some(b) if b.1 > 0.0 && b.4 > 0.0 => (rps / b.1, cpu / b.4, cpu - b.4),
            _ => (1.0, 1.0, 0.0),
        };
        println!(
            "| {name} | {rps:.0} | {:.0} µs | {:.0} µs | {cpu:.1} | {errors} | {rr:.2} | {cr:.2} | {added:+.1} |",
            p50, p99
        );
    }
    drop(scenarios);
    drop(mock);
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}
