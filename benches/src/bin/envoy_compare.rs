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
//! `table,jwt,ttfb,masking,failover,cache,mesh`; default `table,mesh`), `BENCH_ROWS` (comma-separated
//! row numbers of the `table` section to run, with their baseline rows; then the table only),
//! `BENCH_WASM_B` (a second `.wasm`: each selected tollgate row runs again with it, in the same
//! rounds, appended as "[B]" rows — two builds compared within one run).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[path = "envoy_compare/cache.rs"]
mod cache;

use tollgate_benches::{
    chat_body, cpu_model, fake_secrets, format_delta_us, format_us, parse_wrk, percentile,
    process_cpu_us, prompt_text, summarize_wrk, wrk_post_script, LoadResult, WrkSummary,
};
use tollgate_e2e::mock::client::{Connection, Response};
use tollgate_e2e::mock::{Faults, MockHandle, MockOptions, MockProvider};
use tollgate_e2e::{envoy_binary, repo_root, temp_dir, template, wasm_path, Envoy, Vars};

#[path = "envoy_compare/mesh.rs"]
mod mesh;

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
        one_table(section, &settings, &mock, &work);
    }
    if settings.wants("jwt") {
        section += 1;
        overhead_and_jwt(section, &settings, &mock, &work);
    }
    if settings.wants("ttfb") {
        section += 1;
        streaming_ttfb(section, &settings, &mock);
    }
    if settings.wants("masking") {
        section += 1;
        masking(section, &settings, &mock, &work);
    }
    if settings.wants("failover") {
        section += 1;
        failover(section, &settings, &mock);
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

// ---------------------------------------------------------------------------------------------
// wrk scenarios

/// What a scenario's single check request must show before load is applied.
#[derive(Clone)]
enum Check {
    /// Status 200.
    Ok,
    /// Status 200 and the request the provider received contains this text.
    UpstreamContains(&'static str),
    /// Status 200 and the request the provider received does not contain this text.
    UpstreamLacks(&'static str),
}

/// A wrk scenario to start.
struct WrkSpec {
    name: String,
    config: String,
    vars: Vars,
    body: String,
    headers: Vec<(String, String)>,
    /// Row number (1-based) whose CPU per request this row is compared with.
    base: Option<usize>,
    check: Check,
}

/// A started wrk scenario and its rounds.
struct WrkScenario {
    name: String,
    envoy: Option<Envoy>,
    script: PathBuf,
    base: Option<usize>,
    runs: Vec<(LoadResult, u64)>,
    problem: Option<String>,
}

fn start_wrk_scenarios(
    specs: Vec<WrkSpec>,
    rows: &[usize],
    mock: &MockHandle,
    dir: &Path,
) -> Vec<WrkScenario> {
    let wanted = |row: usize| {
        rows.is_empty()
            || rows.contains(&row)
            || specs
                .iter()
                .enumerate()
                .any(|(i, s)| rows.contains(&(i + 1)) && s.base == Some(row))
    };
    let wanted: Vec<bool> = (1..=specs.len()).map(wanted).collect();
    specs
        .into_iter()
        .enumerate()
        .map(|(i, spec)| {
            if !wanted.get(i).copied().unwrap_or(true) {
                return WrkScenario {
                    name: spec.name,
                    envoy: None,
                    script: PathBuf::new(),
                    base: spec.base,
                    runs: Vec::new(),
                    problem: Some("not run (`BENCH_ROWS`)".into()),
                };
            }
            eprintln!("starting Envoy: {}", spec.name);
            let body_file = dir.join(format!("body-{i}.json"));
            let script = dir.join(format!("load-{i}.lua"));
            std::fs::write(&body_file, &spec.body).expect("write the request body");
            std::fs::write(&script, wrk_post_script(&body_file, &spec.headers))
                .expect("write the wrk script");
            let (envoy, problem) = match Envoy::try_start(&spec.config, spec.vars) {
                Ok(envoy) => {
                    let problem = check_once(&envoy, mock, &spec.body, &spec.headers, &spec.check);
                    (Some(envoy), problem)
                }
                Err(e) => {
                    let tail: String = e.log.lines().rev().take(15).collect::<Vec<_>>().join("\n");
                    eprintln!("Envoy for {:?} did not start:\n{tail}", spec.name);
                    (None, Some("Envoy did not start".into()))
                }
            };
            if let Some(p) = &problem {
                eprintln!("  check failed: {p}");
            }
            WrkScenario {
                name: spec.name,
                envoy,
                script,
                base: spec.base,
                runs: Vec::new(),
                problem,
            }
        })
        .collect()
}

/// With `BENCH_WASM_B=<path>`: every selected tollgate row again, with that module instead of
/// `target/tollgate.wasm` (`TOLLGATE_WASM`), appended to the table and run in the same rounds, so
/// two builds are compared within one run. Returns the specs and the rows to run.
fn with_module_b(mut specs: Vec<WrkSpec>, rows: &[usize]) -> (Vec<WrkSpec>, Vec<usize>) {
    let Some(b) = std::env::var("BENCH_WASM_B").ok().filter(|p| !p.is_empty()) else {
        return (specs, rows.to_vec());
    };
    let mut rows = rows.to_vec();
    let selected: Vec<usize> = (1..=specs.len())
        .filter(|r| rows.is_empty() || rows.contains(r))
        .collect();
    if rows.is_empty() {
        rows = selected.clone();
    }
    for r in selected {
        let Some(spec) = specs.get(r - 1) else {
            continue;
        };
        if !spec.config.contains("{{WASM}}") {
            continue;
        }
        let copy = WrkSpec {
            name: format!("{} [B: {b}]", spec.name),
            config: spec.config.replace("{{WASM}}", &b),
            vars: spec.vars.clone(),
            body: spec.body.clone(),
            headers: spec.headers.clone(),
            base: spec.base,
            check: spec.check.clone(),
        };
        specs.push(copy);
        rows.push(specs.len());
    }
    (specs, rows)
}

/// Sends one request as wrk will and checks the outcome; returns what is wrong, if anything.
fn check_once(
    envoy: &Envoy,
    mock: &MockHandle,
    body: &str,
    headers: &[(String, String)],
    check: &Check,
) -> Option<String> {
    let mut all: Vec<(&str, &str)> = vec![("content-type", "application/json")];
    all.extend(headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let resp = match tollgate_e2e::mock::client::request(
        envoy.port,
        "POST",
        CHAT_PATH,
        &all,
        body.as_bytes(),
    ) {
        Ok(r) => r,
        Err(e) => return Some(format!("request failed: {e}")),
    };
    if resp.status != 200 {
        let text = resp.text();
        return Some(format!(
            "status {} ({})",
            resp.status,
            text.get(..text.len().min(300)).unwrap_or("")
        ));
    }
    let upstream = mock.requests().pop().map(|r| r.body).unwrap_or_default();
    match check {
        Check::Ok => None,
        Check::UpstreamContains(text) if !upstream.contains(text) => {
            Some(format!("the provider's request lacks {text:?}"))
        }
        Check::UpstreamLacks(text) if upstream.contains(text) => {
            Some(format!("the provider's request contains {text:?}"))
        }
        _ => None,
    }
}

fn run_wrk(port: u16, script: &Path, seconds: u64, connections: u64) -> String {
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--timeout",
            "10s",
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}{CHAT_PATH}"))
        .output()
        .expect("run wrk (make setup installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_wrk_rounds(scenarios: &mut [WrkScenario], settings: &Settings) {
    eprintln!("warming up…");
    for s in scenarios.iter() {
        if let Some(envoy) = &s.envoy {
            let _ = run_wrk(envoy.port, &s.script, 1, settings.connections);
        }
    }
    for round in 0..settings.rounds {
        for s in scenarios.iter_mut() {
            let Some(envoy) = &s.envoy else { continue };
            let pid = envoy.pid().unwrap_or(0);
            let cpu_before = process_cpu_us(pid).unwrap_or(0);
            let out = run_wrk(
                envoy.port,
                &s.script,
                settings.seconds,
                settings.connections,
            );
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
}

fn print_wrk_table(scenarios: &[WrkScenario]) -> Vec<WrkSummary> {
    let summaries: Vec<_> = scenarios.iter().map(|s| summarize_wrk(&s.runs)).collect();
    println!(
        "\n| # | scenario | req/s | × base req/s | p50 | p99 | Envoy CPU µs/req | added CPU µs/req | × base CPU | added p50 | vs # | non-2xx |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, (s, sum)) in scenarios.iter().zip(&summaries).enumerate() {
        let name = match &s.problem {
            Some(p) => format!("{} ⚠ {p}", s.name),
            None => s.name.clone(),
        };
        if s.runs.is_empty() {
            println!(
                "| {} | {name} | – | – | – | – | – | – | – | – | – | – |",
                i + 1
            );
            continue;
        }
        let (ratio, delta, cpu_ratio, delta_p50, vs) = match s
            .base
            .and_then(|b| summaries.get(b - 1).map(|base| (b, base)))
        {
            Some((b, base)) if base.requests > 0 => (
                format!("{:.2}×", sum.rps / base.rps),
                format!("{:+.1}", sum.cpu_us_per_request - base.cpu_us_per_request),
                format!("{:.2}×", sum.cpu_us_per_request / base.cpu_us_per_request),
                format_delta_us(sum.p50_us - base.p50_us),
                b.to_string(),
            ),
            _ => ("–".into(), "–".into(), "–".into(), "–".into(), "–".into()),
        };
        println!(
            "| {} | {name} | {:.0} | {ratio} | {} | {} | {:.1} | {delta} | {cpu_ratio} | {delta_p50} | {vs} | {} |",
            i + 1,
            sum.rps,
            format_us(sum.p50_us),
            format_us(sum.p99_us),
            sum.cpu_us_per_request,
            sum.non_2xx
        );
    }
    summaries
}

// ---------------------------------------------------------------------------------------------
// 1. Overhead and JWT

mod tokens {
    //! ES256 and RS256 (2048-bit) keys generated for the run, their JWKS, and tokens.

    use jwt_simple::prelude::*;
    use serde_json::{json, Value};

    /// Key ids in the JWKS and token headers.
    pub const ES_KID: &str = "bench-es256";
    /// Key id of the RSA key.
    pub const RS_KID: &str = "bench-rs256";

    /// The run's keys.
    pub struct Keys {
        es: ES256KeyPair,
        rs: RS256KeyPair,
    }

    impl Keys {
        /// Fresh keys.
        pub fn generate() -> Keys {
            Keys {
                es: ES256KeyPair::generate().with_key_id(ES_KID),
                rs: RS256KeyPair::generate(2048)
                    .expect("generate an RSA key")
                    .with_key_id(RS_KID),
            }
        }

        /// The JWKS publishing both public keys.
        pub fn jwks(&self) -> Value {
            let mut es: Value =
                serde_json::from_str(&self.es.public_key().to_jwk()).expect("EC JWK is JSON");
            if let Some(obj) = es.as_object_mut() {
                obj.retain(|k, _| matches!(k.as_str(), "kty" | "crv" | "x" | "y"));
                obj.insert("kid".into(), json!(ES_KID));
                obj.insert("alg".into(), json!("ES256"));
                obj.insert("use".into(), json!("sig"));
            }
            let c = self.rs.public_key().to_components();
            let b64 = |b: &[u8]| Base64UrlSafeNoPadding::encode_to_string(b).expect("base64");
            let rs = json!({"kty": "RSA", "n": b64(&c.n), "e": b64(&c.e), "kid": RS_KID, "alg": "RS256", "use": "sig"});
            json!({ "keys": [es, rs] })
        }

        fn claims(issuer: &str, audience: &str) -> JWTClaims<NoCustomClaims> {
            Claims::create(Duration::from_hours(2))
                .with_issuer(issuer)
                .with_audience(audience)
                .with_subject("bench-user")
        }

        /// An ES256 token valid for two hours.
        pub fn es256(&self, issuer: &str, audience: &str) -> String {
            self.es
                .sign(Self::claims(issuer, audience))
                .expect("sign ES256")
        }

        /// An RS256 token valid for two hours.
        pub fn rs256(&self, issuer: &str, audience: &str) -> String {
            self.rs
                .sign(Self::claims(issuer, audience))
                .expect("sign RS256")
        }
    }
}

fn tollgate_jwt_config(jwks: &serde_json::Value, cache_size: Option<usize>) -> String {
    let mut jwt = serde_json::json!({
        "providers": [{
            "name": "bench",
            "issuer": ISSUER,
            "audiences": [AUDIENCE],
            "local_jwks": jwks,
        }],
        "rules": [{"path_prefix": "/v1/", "requires": {"provider": "bench"}}],
    });
    if let Some(size) = cache_size {
        jwt["cache_size"] = serde_json::json!(size);
    }
    serde_json::json!({ "jwt": jwt }).to_string()
}

fn overhead_and_jwt(section: usize, settings: &Settings, mock: &MockHandle, dir: &Path) {
    eprintln!("generating ES256 and RS256 (2048-bit) keys…");
    let keys = tokens::Keys::generate();
    let jwks = keys.jwks();
    let jwks_text = jwks.to_string();
    let chat = chat_body(MODEL, "hello there", false);
    let plain = template_file("benches/plain.yaml");
    let basic = template("e2e/configs/basic.yaml");
    let native = template_file("benches/jwt_authn.yaml");
    let envoy_jwt = template("e2e/configs/envoy_jwt.yaml");
    let upstream = mock.port();
    let bearer = |token: String| vec![("Authorization".to_string(), format!("Bearer {token}"))];
    let spec = |name: &str, config: &str, vars: Vars, headers, base| WrkSpec {
        name: name.to_string(),
        config: config.to_string(),
        vars: vars.set("UPSTREAM_PORT", upstream),
        body: chat.clone(),
        headers,
        base,
        check: Check::Ok,
    };
    let mut specs = vec![
        spec("plain Envoy", &plain, Vars::new(), vec![], None),
        spec(
            "Envoy + tollgate, defaults `{}` (correlation, usage, prompt masking)",
            &basic,
            Vars::new().plugin_config("{}"),
            vec![],
            Some(1),
        ),
    ];
    for alg in ["ES256", "RS256"] {
        let token = if alg == "ES256" {
            keys.es256(ISSUER, AUDIENCE)
        } else {
            keys.rs256(ISSUER, AUDIENCE)
        };
        specs.push(spec(
            &format!("tollgate JWT {alg}, cached (same token every request)"),
            &basic,
            Vars::new().plugin_config(&tollgate_jwt_config(&jwks, None)),
            bearer(token.clone()),
            Some(2),
        ));
        specs.push(spec(
            &format!("tollgate JWT {alg}, cold (`cache_size: 0`, verifies every request)"),
            &basic,
            Vars::new().plugin_config(&tollgate_jwt_config(&jwks, Some(0))),
            bearer(token.clone()),
            Some(2),
        ));
        specs.push(spec(
            &format!("native `jwt_authn` {alg}, no tollgate, no cache"),
            &native,
            Vars::new()
                .set("JWKS", &jwks_text)
                .set("JWT_CACHE", "# no jwt_cache_config: every request verifies"),
            bearer(token.clone()),
            Some(1),
        ));
        specs.push(spec(
            &format!("native `jwt_authn` {alg}, no tollgate, `jwt_cache_config`"),
            &native,
            Vars::new()
                .set("JWKS", &jwks_text)
                .set("JWT_CACHE", "jwt_cache_config: { jwt_cache_size: 1000 }"),
            bearer(token.clone()),
            Some(1),
        ));
        specs.push(spec(
            &format!(
                "`envoy_jwt` mode {alg}: `jwt_authn` (no cache) + tollgate reading its metadata"
            ),
            &envoy_jwt,
            Vars::new()
                .set("JWKS", &jwks_text)
                .plugin_config(r#"{"envoy_jwt":{"payload_key":"jwt_payload"}}"#),
            bearer(token),
            Some(2),
        ));
    }
    specs.push(virtual_key_spec(&basic, upstream, &chat));
    let mut scenarios = start_wrk_scenarios(specs, &[], mock, dir);
    run_wrk_rounds(&mut scenarios, settings);
    println!(
        "\n#### {section}. Per-request overhead and JWT verification (wrk, small chat request)"
    );
    print_wrk_table(&scenarios);
    println!(
        "\nΔ CPU is this row's Envoy CPU per request minus row \"vs #\"'s: tollgate's JWT rows are compared with tollgate's defaults (#2), so Δ is the JWT work alone, like the native rows against plain Envoy (#1)."
    );
}

/// The virtual-key row (docs/keys.md): 1,000 inline keys, the request's key in `x-api-key`; per
/// request one SHA-256, one map lookup and a constant-time compare. Compared with the defaults
/// (#2) like the JWT rows, so its Δ CPU sits next to the cached-JWT rows'.
fn virtual_key_spec(basic: &str, upstream: u16, chat: &str) -> WrkSpec {
    use tollgate::keys::secret::{encode, KeyDigest};
    let keys: Vec<String> = (0..1000u32)
        .map(|i| {
            let mut bytes = [0u8; 32];
            bytes.copy_from_slice(&KeyDigest::of(&format!("bench-key-{i}")).0);
            encode(&bytes)
        })
        .collect();
    let entries: Vec<serde_json::Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            serde_json::json!({"id": format!("app-{i}"), "sha256": KeyDigest::of(k).to_hex(),
                "owner": format!("owner-{i}"), "team": format!("team-{}", i % 10)})
        })
        .collect();
    let config = serde_json::json!({ "keys": { "inline": entries } }).to_string();
    WrkSpec {
        name: "tollgate virtual API key (1,000 inline keys, `x-api-key`)".into(),
        config: basic.to_string(),
        vars: Vars::new()
            .plugin_config(&config)
            .set("UPSTREAM_PORT", upstream),
        body: chat.to_string(),
        headers: vec![(
            "x-api-key".into(),
            keys.get(500).cloned().unwrap_or_default(),
        )],
        base: Some(2),
        check: Check::Ok,
    }
}

fn template_file(relative_to_root: &str) -> String {
    let path = repo_root().join(relative_to_root);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Client loops (2. streaming TTFB, 4. failover)

/// One request's timings, microseconds from just before the request was written.
#[derive(Debug, Clone, Copy)]
struct Sample {
    head_us: f64,
    first_chunk_us: f64,
    total_us: f64,
}

/// A scenario driven by the sequential client loop.
struct LoopScenario {
    name: String,
    port: u16,
    envoy: Option<Envoy>,
    body: String,
    /// Request headers beyond `content-type` (e.g. a bearer token).
    headers: Vec<(String, String)>,
    stream: bool,
    conn: Option<Connection>,
    samples: Vec<Sample>,
    errors: u64,
    /// Requests sent, warm-up included.
    sent: u64,
    cpu_us: u64,
    last_error: Option<String>,
}

impl LoopScenario {
    fn new(name: &str, port: u16, envoy: Option<Envoy>, body: String, stream: bool) -> Self {
        LoopScenario {
            name: name.to_string(),
            port,
            envoy,
            body,
            headers: Vec::new(),
            stream,
            conn: None,
            samples: Vec::new(),
            errors: 0,
            sent: 0,
            cpu_us: 0,
            last_error: None,
        }
    }

    /// Adds request headers.
    fn with_headers(mut self, headers: Vec<(String, String)>) -> Self {
        self.headers = headers;
        self
    }

    fn pid(&self) -> Option<u32> {
        self.envoy.as_ref().and_then(Envoy::pid)
    }

    /// One request on the kept-alive connection (reopened once if the server closed it).
    fn request_once(&mut self) -> io::Result<(u16, Sample)> {
        for attempt in 0..2 {
            let conn = match self.conn.take() {
                Some(c) => c,
                None => Connection::open(self.port)?,
            };
            match self.exchange(conn) {
                Ok(r) => return Ok(r),
                Err(e) if attempt == 0 => self.last_error = Some(e.to_string()),
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("unreachable retry loop"))
    }

    fn exchange(&mut self, mut conn: Connection) -> io::Result<(u16, Sample)> {
        let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
        headers.extend(self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let t0 = Instant::now();
        if self.stream {
            let mut s = conn.stream("POST", CHAT_PATH, &headers, self.body.as_bytes())?;
            let head_us = micros(t0);
            let _first = s.next_chunk()?;
            let first_chunk_us = micros(t0);
            let _rest = s.read_to_end()?;
            let total_us = micros(t0);
            let status = s.status;
            let keep = !s
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
            if keep {
                self.conn = Some(s.into_connection());
            }
            Ok((
                status,
                Sample {
                    head_us,
                    first_chunk_us,
                    total_us,
                },
            ))
        } else {
            let resp: Response = conn.request("POST", CHAT_PATH, &headers, self.body.as_bytes())?;
            let total_us = micros(t0);
            if !resp
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"))
            {
                self.conn = Some(conn);
            }
            Ok((
                resp.status,
                Sample {
                    head_us: total_us,
                    first_chunk_us: total_us,
                    total_us,
                },
            ))
        }
    }

    /// Runs one request and records it: `expect` is the status that counts as success.
    fn measure(&mut self, expect: u16) {
        self.sent += 1;
        match self.request_once() {
            Ok((status, sample)) if status == expect => self.samples.push(sample),
            Ok((status, _)) => {
                self.errors += 1;
                self.last_error = Some(format!("status {status}"));
            }
            Err(e) => {
                self.errors += 1;
                self.last_error = Some(e.to_string());
                self.conn = None;
            }
        }
    }
}

fn micros(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1e6
}

/// Warms every scenario up, then sends `samples` requests to each, one scenario after the other
/// request by request, recording Envoy CPU over the measured part. `expect[i]` is the status
/// scenario `i` should answer.
fn run_loops(scenarios: &mut [LoopScenario], expect: &[u16], samples: usize) {
    let warmup = 30.min(samples);
    for _ in 0..warmup {
        for (s, status) in scenarios.iter_mut().zip(expect) {
            s.measure(*status);
        }
    }
    for s in scenarios.iter_mut() {
        s.samples.clear();
        s.errors = 0;
    }
    let cpu_before: Vec<u64> = scenarios
        .iter()
        .map(|s| s.pid().and_then(process_cpu_us).unwrap_or(0))
        .collect();
    for _ in 0..samples {
        for (s, status) in scenarios.iter_mut().zip(expect) {
            s.measure(*status);
        }
    }
    for (s, before) in scenarios.iter_mut().zip(cpu_before) {
        let after = s.pid().and_then(process_cpu_us).unwrap_or(0);
        s.cpu_us = after.saturating_sub(before);
        if let Some(e) = &s.last_error {
            if s.errors > 0 {
                eprintln!("{}: {} errors, last: {e}", s.name, s.errors);
            }
        }
    }
}

fn cpu_cell(s: &LoopScenario) -> String {
    if s.envoy.is_none() || s.samples.is_empty() {
        "–".into()
    } else {
        format!(
            "{:.1}",
            s.cpu_us as f64 / (s.samples.len() as u64 + s.errors) as f64
        )
    }
}

fn start_envoy(name: &str, config: &str, vars: Vars) -> Option<Envoy> {
    eprintln!("starting Envoy: {name}");
    match Envoy::try_start(config, vars) {
        Ok(e) => Some(e),
        Err(e) => {
            let tail: String = e.log.lines().rev().take(15).collect::<Vec<_>>().join("\n");
            eprintln!("Envoy for {name:?} did not start:\n{tail}");
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Streaming time to first byte

fn streaming_ttfb(section: usize, settings: &Settings, mock: &MockHandle) {
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

// ---------------------------------------------------------------------------------------------
// 3. Masking

fn masking(section: usize, settings: &Settings, mock: &MockHandle, dir: &Path) {
    let secrets = fake_secrets(2024);
    let secret_values: Vec<String> = secrets.iter().map(|(_, s)| s.clone()).collect();
    let clean = chat_body(MODEL, &prompt_text(PROMPT_BYTES, &[], 11), false);
    let dirty = chat_body(MODEL, &prompt_text(PROMPT_BYTES, &secret_values, 11), false);
    let plain = template_file("benches/plain.yaml");
    let basic = template("e2e/configs/basic.yaml");
    let upstream = mock.port();
    let spec = |name: &str, config: &str, plugin: Option<&str>, body: &str, base, check| {
        let vars = Vars::new().set("UPSTREAM_PORT", upstream);
        WrkSpec {
            name: name.to_string(),
            config: config.to_string(),
            vars: match plugin {
                Some(p) => vars.plugin_config(p),
                None => vars,
            },
            body: body.to_string(),
            headers: vec![],
            base,
            check,
        }
    };
    let kinds: Vec<&str> = secrets.iter().map(|(k, _)| *k).collect();
    let specs = vec![
        spec(
            "plain Envoy, 64 KiB prompt",
            &plain,
            None,
            &clean,
            None,
            Check::Ok,
        ),
        spec(
            "tollgate, `prompts: off`, 64 KiB prompt",
            &basic,
            Some(r#"{"masking":{"prompts":"off"}}"#),
            &clean,
            Some(1),
            Check::Ok,
        ),
        spec(
            "tollgate, `prompts: redact`, 64 KiB prompt, no secrets",
            &basic,
            Some(r#"{"masking":{"prompts":"redact"}}"#),
            &clean,
            Some(2),
            Check::UpstreamLacks("[REDACTED"),
        ),
        spec(
            &format!(
                "tollgate, `prompts: redact`, 64 KiB prompt, {} fake secrets ({})",
                kinds.len(),
                kinds.join(", ")
            ),
            &basic,
            Some(r#"{"masking":{"prompts":"redact"}}"#),
            &dirty,
            Some(2),
            Check::UpstreamContains("[REDACTED"),
        ),
    ];
    let mut scenarios = start_wrk_scenarios(specs, &[], mock, dir);
    run_wrk_rounds(&mut scenarios, settings);
    println!(
        "\n#### {section}. Masking a 64 KiB prompt (wrk, POST {CHAT_PATH}, body {} bytes)",
        clean.len()
    );
    print_wrk_table(&scenarios);
    println!(
        "\nΔ CPU of the redact rows is against `prompts: off` (#2): the cost of scanning (and rewriting) the 64 KiB body alone."
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Failover

fn failover_config() -> String {
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
fn walk_failover_config() -> String {
    let mut v: serde_json::Value = serde_json::from_str(&failover_config()).unwrap_or_default();
    v["failover"]["routes"][0]["cluster"] = serde_json::json!("llm");
    v.to_string()
}

/// The upstream stage's configuration for `benches/routing_walk.yaml`.
fn walk_upstream_config() -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(&walk_failover_config()).unwrap_or_default();
    v["stage"] = serde_json::json!("upstream");
    v.to_string()
}

fn failover(section: usize, settings: &Settings, mock: &MockHandle) {
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
            .set(
                "UPSTREAM_PLUGIN_CONFIG",
                serde_json::to_string(&walk_upstream_config()).unwrap_or_default(),
            )
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

// ---------------------------------------------------------------------------------------------
// The one table (default)

/// tollgate's configuration with usage accounting and prompt masking switched off, plus `extra`
/// (merged at the top level): one feature alone.
fn alone(extra: serde_json::Value) -> String {
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

fn jwt_section(jwks: &serde_json::Value, cache_size: Option<usize>) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(&tollgate_jwt_config(jwks, cache_size))
        .map(|v| v["jwt"].clone())
        .unwrap_or_default()
}

/// A per-user token budget far above what a run spends: the reservation and settlement work
/// happens on every request, and nothing is refused.
fn budget_section() -> serde_json::Value {
    serde_json::json!({"windows": [{"period": "minute", "max_tokens": 1_000_000_000_u64}]})
}

/// Routing with `primary` and `secondary` (both OpenAI-kind): the `failover` section.
fn failover_section() -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(&failover_config())
        .map(|v| v["failover"].clone())
        .unwrap_or_default()
}

/// Envoy's RSS and the wasm VMs' linear memory, after some load.
#[derive(Debug, Clone, Copy, Default)]
struct Footprint {
    rss_kib: f64,
    wasm_vms: usize,
    wasm_committed_kib: f64,
}

fn footprint(pid: u32) -> Footprint {
    let wasm = tollgate_e2e::wasm_memory(pid);
    Footprint {
        rss_kib: tollgate_e2e::rss_kib(pid),
        wasm_vms: wasm.vms,
        wasm_committed_kib: wasm.committed_kib,
    }
}

/// Starts `config` `starts` times at `--concurrency workers`; returns the median time to
/// `/ready` and the footprint of the last start after one second of load with `script`.
fn start_and_measure(
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

fn one_table(section: usize, settings: &Settings, mock: &MockHandle, dir: &Path) {
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

fn wasm_size() -> u64 {
    std::fs::metadata(wasm_path()).map(|m| m.len()).unwrap_or(0)
}

/// p50 latencies (µs) of one request at a time: the mock directly, through plain Envoy, through
/// Envoy + tollgate with all features.
#[derive(Debug, Clone, Copy)]
struct SerialLatency {
    direct_us: f64,
    plain_us: f64,
    tollgate_us: f64,
}

/// Sends one request at a time (concurrency 1), alternating between the mock directly, plain
/// Envoy and Envoy + tollgate with `all_features`; prints their p50 and what each proxy adds.
fn latency_at_concurrency_one(
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

/// Row numbers (1-based) of the one table that the targets read.
mod row {
    pub const PLAIN_JSON: usize = 1;
    pub const EVERYTHING_OFF: usize = 4;
    pub const USAGE_ONLY: usize = 5;
    pub const ES256_COLD: usize = 9;
    pub const RS256_COLD: usize = 11;
    pub const NATIVE_ES256: usize = 12;
    pub const NATIVE_RS256: usize = 13;
    pub const ENVOY_JWT: usize = 14;
    pub const ALL_FEATURES: usize = 16;
}

/// Issue 13's targets, each with what this run measured.
fn print_targets(
    summaries: &[WrkSummary],
    latency: Option<SerialLatency>,
    start_ms: Option<f64>,
    wasm_bytes: u64,
) {
    let cpu = |r: usize| {
        summaries
            .get(r - 1)
            .filter(|s| s.requests > 0)
            .map(|s| s.cpu_us_per_request)
    };
    let rps = |r: usize| {
        summaries
            .get(r - 1)
            .filter(|s| s.requests > 0)
            .map(|s| s.rps)
    };
    let added = |r: usize| Some(cpu(r)? - cpu(row::PLAIN_JSON)?);
    let verdict = |ok: Option<bool>| match ok {
        Some(true) => "met",
        Some(false) => "not met",
        None => "–",
    };
    let us = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:+.0} µs"));
    let ratio = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.2}×"));
    println!("\n**Issue 13 targets** (this run; CPU is Envoy CPU per request added over plain Envoy, row 1):\n");
    println!("| target | measured | goal | |");
    println!("|---|---:|---:|---|");
    let line = |what: &str, measured: String, goal: &str, ok: Option<bool>| {
        println!("| {what} | {measured} | {goal} | {} |", verdict(ok));
    };
    let off = added(row::EVERYTHING_OFF);
    line(
        "everything off (row 4)",
        us(off),
        "≤ +45 µs",
        off.map(|v| v <= 45.0),
    );
    let usage = added(row::USAGE_ONLY);
    line(
        "usage accounting only (row 5)",
        us(usage),
        "≤ +80 µs",
        usage.map(|v| v <= 80.0),
    );
    let all = added(row::ALL_FEATURES);
    line(
        "all features, cached ES256 (row 16)",
        us(all),
        "≤ +100 µs",
        all.map(|v| v <= 100.0),
    );
    let tput = rps(row::ALL_FEATURES)
        .zip(rps(row::PLAIN_JSON))
        .map(|(a, p)| a / p);
    line(
        "all features: throughput vs plain Envoy",
        ratio(tput),
        "≥ 0.60×",
        tput.map(|v| v >= 0.6),
    );
    let envoy_jwt = added(row::ENVOY_JWT);
    line(
        "`envoy_jwt` mode (row 14) vs all features (row 16)",
        format!("{} vs {}", us(envoy_jwt), us(all)),
        "≤ row 16",
        envoy_jwt.zip(all).map(|(e, a)| e <= a),
    );
    for (name, ours, native) in [
        (
            "ES256 cache off (row 9) vs native `jwt_authn` (row 12)",
            row::ES256_COLD,
            row::NATIVE_ES256,
        ),
        (
            "RS256 cache off (row 11) vs native `jwt_authn` (row 13)",
            row::RS256_COLD,
            row::NATIVE_RS256,
        ),
    ] {
        let r = added(ours).zip(added(native)).map(|(o, n)| o / n);
        line(
            name,
            format!(
                "{} vs {} = {}",
                us(added(ours)),
                us(added(native)),
                ratio(r)
            ),
            "≤ 2× (moonshot 1.5×)",
            r.map(|v| v <= 2.0),
        );
    }
    let serial = latency.map(|l| (l.tollgate_us - l.direct_us, l.plain_us - l.direct_us));
    line(
        "added p50 at concurrency 1: tollgate all features vs plain Envoy",
        serial.map_or("–".into(), |(t, p)| {
            format!("{} vs {}", format_delta_us(t), format_delta_us(p))
        }),
        "≤ plain + 0.1 ms",
        serial.map(|(t, p)| t <= p + 100.0),
    );
    line(
        "`.wasm` size",
        format!("{:.2} MB", wasm_bytes as f64 / 1e6),
        "≤ 1 MB",
        Some(wasm_bytes <= 1_000_000),
    );
    line(
        "Envoy start with the module vs without",
        start_ms.map_or("–".into(), |v| format!("{v:+.0} ms")),
        "≤ +1.5 s",
        start_ms.map(|v| v <= 1500.0),
    );
}
