//! The Envoy-level comparison behind `make bench`: the same in-process mock provider reached
//! through plain Envoy and through Envoy + tollgate in several configurations, in one run, each
//! scenario its own Envoy (`--concurrency 1`), all load on 127.0.0.1 and bounded in time.
//! Prints Markdown for the README: a header naming the machine, Envoy and the `.wasm` size,
//! then one table per section:
//!
//! 1. **Overhead and JWT** (wrk): plain Envoy; tollgate with defaults; tollgate verifying ES256
//!    and RS256 tokens (`local_jwks`) with its verified-token cache ("cached": the same token
//!    every request) and without it (`cache_size: 0`, "cold": every request verifies the
//!    signature); Envoy's native `jwt_authn` with the same keys, without and with its
//!    `jwt_cache_config`; and `envoy_jwt` mode (`jwt_authn` + tollgate reading its metadata).
//! 2. **Streaming time to first byte** (own client loop): an OpenAI stream through plain Envoy
//!    and through Envoy + tollgate (usage accounting on), alternating request by request.
//! 3. **Masking a 64 KiB prompt** (wrk): prompts `off` vs `redact`, with a prompt free of
//!    secrets and one carrying five fake ones.
//! 4. **One failover** (own client loop): routing to a healthy primary vs a primary that always
//!    answers 500, so every request fails over within the request to the secondary.
//!
//! **Latency at concurrency 1** (`latency`, `envoy_compare/latency.rs`): one request at a time
//! through plain Envoy and tollgate with everything off, usage alone and all features (and the
//! `BENCH_WASM_B` build of each), p50 and Envoy CPU per request at concurrency 1.
//!
//! 5. **Response cache** (own client loop, `envoy_compare/cache.rs`): a cache hit against a miss
//!    and against tollgate without a cache, JSON and a stream replayed from the cache.
//!
//! wrk scenarios run in alternating rounds (every scenario once per round) so that drift on a
//! shared machine spreads over all of them; Envoy CPU time per request comes from
//! `/proc/<pid>/stat`.
//!
//! By default (`BENCH_SECTIONS=table,mesh`) it prints **one table**: plain Envoy, then tollgate with
//! everything optional off (correlation ids only), with each feature alone (usage accounting on a
//! JSON and on a streamed answer, masking a 64 KiB prompt, JWT ES256/RS256 cached and with the
//! cache off, one failover per request), Envoy's native `jwt_authn` ES256/RS256, `jwt_authn` +
//! tollgate in `envoy_jwt` mode, and all features (JWT ES256 cached, usage, budget, prompt
//! masking; then with routing too); each row with its throughput and its ratio to the baseline
//! row's, p50, p99, Envoy CPU per request and what it adds over the baseline (plain Envoy with
//! the same request, in the same run). Below it: the added p50 at concurrency 1 (the mock
//! directly, plain Envoy, tollgate with all features, alternating request by request), the wasm
//! VM's memory per worker (Envoy RSS and the VM's linear memory, with vs without the module,
//! `--concurrency 1`, after the load), the `.wasm` size, the VM start time (Envoy start to
//! `/ready`, with vs without the module), and issue 13's targets against what this run measured.
//! Then (`mesh`) what a mesh-wide budget's admission check adds to a request (p50 and Envoy CPU
//! in a client loop, against a real rate limit service on Redis), beside Envoy's native rate limit
//! filter, and both with the service failing (`envoy_compare/mesh.rs`, docs/budgets.md).
//! The sections below are still available by name.
//!
//! Environment: `BENCH_QUICK=1` (1 round of 1 s, one start: a fast check that every scenario
//! works), `BENCH_SECONDS` (per wrk round, default 4), `BENCH_ROUNDS` (default 3),
//! `BENCH_CONNECTIONS` (wrk connections, default 16), `BENCH_SAMPLES` (requests per scenario in
//! the client loops, default 300), `BENCH_STARTS` (Envoy starts per configuration when timing VM
//! start, default 5), `BENCH_SECTIONS` (comma-separated subset of
//! `table,jwt,latency,ttfb,masking,failover,cache,mesh`; default `table,mesh`), `BENCH_ROWS` (comma-separated
//! row numbers of the `table` section to run, with their baseline rows; then the table only),
//! `BENCH_WASM_B` (a second `.wasm`: each selected tollgate row runs again with it, in the same
//! rounds, appended as "[B]" rows — two builds compared within one run).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use tollgate_benches::cpu_model;
use tollgate_e2e::mock::{MockOptions, MockProvider};
use tollgate_e2e::{envoy_binary, repo_root, temp_dir, wasm_path};

mod cache;
mod failover;
mod jwt;
mod latency;
mod loops;
mod masking;
mod mesh;
mod table;
mod targets;
mod tokens;
mod ttfb;
mod wrk;

const CHAT_PATH: &str = "/v1/chat/completions";
const MODEL: &str = "gpt-4o-mini";
const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "tollgate";
const PROMPT_BYTES: usize = 64 * 1024;
/// The primary's circuit threshold in the failover section: high enough that it never opens.
const FAILURE_THRESHOLD: usize = 10_000;

/// Run-wide settings from the environment.
struct Settings {
    seconds: u64,
    rounds: u64,
    connections: u64,
    samples: usize,
    /// Envoy starts per configuration when timing VM start.
    starts: usize,
    quick: bool,
    sections: Vec<String>,
    /// Rows of the `table` section to run (1-based; empty: all). Their baseline rows run too.
    rows: Vec<usize>,
}

impl Settings {
    fn from_env() -> Settings {
        let num = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .filter(|n| *n > 0)
                .unwrap_or(default)
        };
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        Settings {
            seconds: num("BENCH_SECONDS", if quick { 1 } else { 4 }),
            rounds: num("BENCH_ROUNDS", if quick { 1 } else { 3 }),
            connections: num("BENCH_CONNECTIONS", 16),
            samples: num("BENCH_SAMPLES", if quick { 50 } else { 300 }) as usize,
            starts: num("BENCH_STARTS", if quick { 1 } else { 5 }) as usize,
            quick,
            sections: std::env::var("BENCH_SECTIONS")
                .unwrap_or_else(|_| "table,mesh".into())
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
            rows: std::env::var("BENCH_ROWS")
                .unwrap_or_default()
                .split(',')
                .filter_map(|r| r.trim().parse().ok())
                .collect(),
        }
    }

    fn wants(&self, section: &str) -> bool {
        self.sections.iter().any(|s| s == section)
    }
}

fn main() {
    let started = Instant::now();
    let settings = Settings::from_env();
    let work = temp_dir("bench");
    print_header(&settings);
    let mock = MockProvider::start(MockOptions {
        // Every request is recorded; 64 KiB prompts make a long record costly.
        max_recorded: 16,
        ..MockOptions::default()
    })
    .expect("start the mock provider");

    let mut section = 0;
    if settings.wants("table") {
        section += 1;
        table::one_table(section, &settings, &mock, &work);
    }
    if settings.wants("jwt") {
        section += 1;
        jwt::overhead_and_jwt(section, &settings, &mock, &work);
    }
    if settings.wants("latency") {
        section += 1;
        latency::latency(section, &settings, &mock);
    }
    if settings.wants("ttfb") {
        section += 1;
        ttfb::streaming_ttfb(section, &settings, &mock);
    }
    if settings.wants("masking") {
        section += 1;
        masking::masking(section, &settings, &mock, &work);
    }
    if settings.wants("failover") {
        section += 1;
        failover::failover(section, &settings, &mock);
    }
    if settings.wants("cache") {
        section += 1;
        cache::cache(section, &settings, &mock);
    }
    if settings.wants("mesh") {
        section += 1;
        mesh::mesh_budget(section, &settings, &mock);
    }
    println!(
        "\n_Whole run: {:.0} s._",
        started.elapsed().as_secs_f64().round()
    );
    drop(mock);
    let _ = std::fs::remove_dir_all(&work);
}

// ---------------------------------------------------------------------------------------------
// Header

fn print_header(settings: &Settings) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpu_model(&cpuinfo).unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    let wasm = wasm_path();
    let wasm_size = std::fs::metadata(&wasm)
        .map(|m| format!("{} bytes ({:.2} MiB)", m.len(), m.len() as f64 / 1048576.0))
        .unwrap_or_else(|_| "missing (run `make build`)".into());
    println!(
        "### Envoy-level benchmarks (`make bench`{})\n",
        if settings.quick {
            ", `BENCH_QUICK=1`: short rounds, numbers indicative only"
        } else {
            ""
        }
    );
    println!("- Machine: {cores} cores (nproc), {cpu}; load average {load} at start (a shared machine: other work ran alongside, so read ratios between rows, not absolutes)");
    println!(
        "- Envoy: {}, `--concurrency 1` per scenario, V8 runtime",
        envoy_version()
    );
    println!("- tollgate: `{}` {wasm_size}", display_relative(&wasm));
    let loops = if settings.wants("ttfb") || settings.wants("failover") {
        format!(
            "; client loops: {} requests per scenario, alternating request by request, one keep-alive connection each",
            settings.samples
        )
    } else {
        String::new()
    };
    println!(
        "- Load: wrk `-t1 -c{}`, {} alternating rounds of {} s per scenario (after a 1 s warm-up){loops}; all on 127.0.0.1 against the in-process mock provider",
        settings.connections, settings.rounds, settings.seconds
    );
    println!(
        "- Envoy CPU µs/req: on-CPU time of the Envoy process (all threads, `/proc/<pid>/task/*/schedstat`) over the measured requests, divided by them"
    );
}

fn envoy_version() -> String {
    Command::new(envoy_binary())
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.split('/')
                .find(|part| {
                    part.split('.').count() == 3
                        && part.chars().all(|c| c.is_ascii_digit() || c == '.')
                })
                .map(str::to_string)
        })
        .unwrap_or_else(|| "version unknown".into())
}

fn display_relative(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

fn template_file(relative_to_root: &str) -> String {
    let path = repo_root().join(relative_to_root);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}
