//! wrk scenarios: each scenario its own Envoy, one check request before load, then `wrk` in
//! alternating rounds (every scenario once per round, so drift on a shared machine spreads over
//! all of them), and the Markdown table of their results.

use crate::{Settings, CHAT_PATH};
use std::path::{Path, PathBuf};
use std::process::Command;
use tollgate_benches::{
    format_delta_us, format_us, parse_wrk, process_cpu_us, summarize_wrk, wrk_post_script,
    LoadResult, WrkSummary,
};
use tollgate_e2e::mock::MockHandle;
use tollgate_e2e::{Envoy, Vars};

/// What a scenario's single check request must show before load is applied.
#[derive(Clone)]
pub(crate) enum Check {
    /// Status 200.
    Ok,
    /// Status 200 and the request the provider received contains this text.
    UpstreamContains(&'static str),
    /// Status 200 and the request the provider received does not contain this text.
    UpstreamLacks(&'static str),
}

/// A wrk scenario to start.
pub(crate) struct WrkSpec {
    pub(crate) name: String,
    pub(crate) config: String,
    pub(crate) vars: Vars,
    pub(crate) body: String,
    pub(crate) headers: Vec<(String, String)>,
    /// Row number (1-based) whose CPU per request this row is compared with.
    pub(crate) base: Option<usize>,
    pub(crate) check: Check,
}

/// A started wrk scenario and its rounds.
pub(crate) struct WrkScenario {
    pub(crate) name: String,
    pub(crate) envoy: Option<Envoy>,
    pub(crate) script: PathBuf,
    pub(crate) base: Option<usize>,
    pub(crate) runs: Vec<(LoadResult, u64)>,
    pub(crate) problem: Option<String>,
}

/// Starts every scenario of `specs` whose row (1-based) is in `rows` or is the baseline of one
/// that is (all of them when `rows` is empty); the others keep their row, marked not run.
pub(crate) fn start_wrk_scenarios(
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
pub(crate) fn with_module_b(mut specs: Vec<WrkSpec>, rows: &[usize]) -> (Vec<WrkSpec>, Vec<usize>) {
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
pub(crate) fn check_once(
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

pub(crate) fn run_wrk(port: u16, script: &Path, seconds: u64, connections: u64) -> String {
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

pub(crate) fn run_wrk_rounds(scenarios: &mut [WrkScenario], settings: &Settings) {
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

pub(crate) fn print_wrk_table(scenarios: &[WrkScenario]) -> Vec<WrkSummary> {
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
