//! Section `cache` of `envoy-compare`: the latency and Envoy CPU of a response-cache hit against
//! a miss and against tollgate without a cache, for a JSON answer and a replayed stream. Each
//! scenario has its own Envoy (`--concurrency 1`), so CPU per request is that scenario's alone;
//! requests alternate between scenarios one by one (own client loop, one kept-alive connection
//! each). A miss sends a deterministic request with a seed never used before (so it is looked
//! up, sent to the provider and stored); a hit repeats one request that was stored during the
//! warm-up. Every answer's `x-tollgate-cache` header is checked against the scenario.

use crate::loops::start_envoy;
use crate::{Settings, CHAT_PATH, MODEL};
use tollgate_benches::{format_delta_us, format_us, percentile, process_cpu_us};
use tollgate_e2e::mock::client::Connection;
use tollgate_e2e::mock::MockHandle;
use tollgate_e2e::{template, Envoy, Vars};

/// A scenario to start.
struct Spec {
    name: &'static str,
    /// With the `cache` section.
    cache: bool,
    stream: bool,
    fresh_seed: Option<u64>,
    expect: Option<&'static str>,
}

/// One scenario of the section.
struct CacheScenario {
    name: &'static str,
    envoy: Envoy,
    stream: bool,
    /// `Some(n)`: every request gets a fresh seed (a miss); `None`: the same request (a hit).
    fresh_seed: Option<u64>,
    /// The `x-tollgate-cache` value every answer must carry (`None`: no header).
    expect: Option<&'static str>,
    conn: Option<Connection>,
    total_us: Vec<f64>,
    errors: u64,
    last_error: Option<String>,
    cpu_us: u64,
}

impl CacheScenario {
    fn body(&mut self) -> String {
        let seed = match self.fresh_seed.as_mut() {
            Some(n) => {
                *n += 1;
                *n
            }
            None => 7,
        };
        let mut body = serde_json::json!({
            "model": MODEL,
            "temperature": 0,
            "seed": seed,
            "messages": [{"role": "user", "content": "Why do toll roads exist? Answer briefly."}],
        });
        if self.stream {
            body["stream"] = serde_json::Value::Bool(true);
        }
        body.to_string()
    }

    fn once(&mut self) -> Result<(f64, Option<String>), String> {
        let body = self.body();
        let headers = [("content-type", "application/json")];
        let conn = match self.conn.take() {
            Some(c) => c,
            None => Connection::open(self.envoy.port).map_err(|e| e.to_string())?,
        };
        let t0 = std::time::Instant::now();
        let (status, cache, conn) = if self.stream {
            let mut s = conn
                .stream("POST", CHAT_PATH, &headers, body.as_bytes())
                .map_err(|e| e.to_string())?;
            s.read_to_end().map_err(|e| e.to_string())?;
            let cache = s.header("x-tollgate-cache").map(str::to_string);
            (s.status, cache, s.into_connection())
        } else {
            let mut conn = conn;
            let r = conn
                .request("POST", CHAT_PATH, &headers, body.as_bytes())
                .map_err(|e| e.to_string())?;
            (
                r.status,
                r.header("x-tollgate-cache").map(str::to_string),
                conn,
            )
        };
        let us = t0.elapsed().as_secs_f64() * 1e6;
        self.conn = Some(conn);
        if status != 200 {
            return Err(format!("status {status}"));
        }
        Ok((us, cache))
    }

    fn measure(&mut self, record: bool) {
        match self.once() {
            Ok((us, cache)) if cache.as_deref() == self.expect => {
                if record {
                    self.total_us.push(us);
                }
            }
            Ok((_, cache)) => {
                self.errors += 1;
                self.last_error = Some(format!(
                    "x-tollgate-cache {cache:?}, expected {:?}",
                    self.expect
                ));
            }
            Err(e) => {
                self.errors += 1;
                self.last_error = Some(e);
                self.conn = None;
            }
        }
    }
}

fn plugin(cache: bool) -> String {
    let mut config = serde_json::json!({});
    if cache {
        config["cache"] = serde_json::json!({
            "rules": [{ "path_prefix": CHAT_PATH }],
            "scope": "shared",
            "max_entries": 16384,
            "max_bytes": 256 * 1024 * 1024,
        });
    }
    config.to_string()
}

/// Runs the section and prints its table.
pub(super) fn cache(section: usize, settings: &Settings, mock: &MockHandle) {
    let basic = template("e2e/configs/basic.yaml");
    let start = |name: &str, cache: bool| {
        start_envoy(
            name,
            &basic,
            Vars::new()
                .set("UPSTREAM_PORT", mock.port())
                .plugin_config(&plugin(cache)),
        )
    };
    let spec = |name, cache, stream, fresh_seed, expect| Spec {
        name,
        cache,
        stream,
        fresh_seed,
        expect,
    };
    let specs = [
        spec("tollgate without cache, JSON", false, false, None, None),
        spec(
            "tollgate + cache, miss (new seed each request), JSON",
            true,
            false,
            Some(1_000),
            Some("miss"),
        ),
        spec(
            "tollgate + cache, hit, JSON",
            true,
            false,
            None,
            Some("hit"),
        ),
        spec("tollgate without cache, stream", false, true, None, None),
        spec(
            "tollgate + cache, hit replayed as a stream",
            true,
            true,
            None,
            Some("hit"),
        ),
    ];
    let mut scenarios = Vec::new();
    for Spec {
        name,
        cache,
        stream,
        fresh_seed,
        expect,
    } in specs
    {
        let Some(envoy) = start(name, cache) else {
            println!("\n#### {section}. Response cache\n\nskipped: an Envoy did not start");
            return;
        };
        scenarios.push(CacheScenario {
            name,
            envoy,
            stream,
            fresh_seed,
            expect,
            conn: None,
            total_us: Vec::new(),
            errors: 0,
            last_error: None,
            cpu_us: 0,
        });
    }
    // Warm-up: fills the hit scenarios' entries (their first request is a miss).
    for s in scenarios.iter_mut() {
        if s.expect == Some("hit") {
            let expect = s.expect.take();
            s.measure(false);
            s.expect = expect;
        }
    }
    let warmup = 30.min(settings.samples);
    for _ in 0..warmup {
        for s in scenarios.iter_mut() {
            s.measure(false);
        }
    }
    for s in scenarios.iter_mut() {
        s.errors = 0;
    }
    let before: Vec<u64> = scenarios
        .iter()
        .map(|s| s.envoy.pid().and_then(process_cpu_us).unwrap_or(0))
        .collect();
    eprintln!("cache: {} requests per scenario…", settings.samples);
    for _ in 0..settings.samples {
        for s in scenarios.iter_mut() {
            s.measure(true);
        }
    }
    for (s, before) in scenarios.iter_mut().zip(before) {
        let after = s.envoy.pid().and_then(process_cpu_us).unwrap_or(0);
        s.cpu_us = after.saturating_sub(before);
        if let (true, Some(e)) = (s.errors > 0, &s.last_error) {
            eprintln!("{}: {} errors, last: {e}", s.name, s.errors);
        }
    }
    let p50 = |s: &CacheScenario| percentile(&s.total_us, 0.5);
    let cpu = |s: &CacheScenario| s.cpu_us as f64 / settings.samples.max(1) as f64;
    println!(
        "\n#### {section}. Response cache: a hit against a miss (client loop, POST {CHAT_PATH})"
    );
    println!(
        "\n| scenario | requests | p50 | p99 | Envoy CPU µs/req | Δ p50 vs no cache | Δ CPU vs no cache | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for s in &scenarios {
        let base = scenarios
            .iter()
            .find(|b| b.expect.is_none() && b.stream == s.stream)
            .map_or((0.0, 0.0), |b| (p50(b), cpu(b)));
        let (dp, dc) = if s.expect.is_none() {
            ("–".to_string(), "–".to_string())
        } else {
            (
                format_delta_us(p50(s) - base.0),
                format!("{:+.1}", cpu(s) - base.1),
            )
        };
        println!(
            "| {} | {} | {} | {} | {:.1} | {dp} | {dc} | {} |",
            s.name,
            s.total_us.len(),
            format_us(p50(s)),
            format_us(percentile(&s.total_us, 0.99)),
            cpu(s),
            s.errors
        );
    }
    println!(
        "\nA hit answers from shared data after admission: no provider call, no upstream connection. A miss pays the lookup, the provider call and, at the end, the copy and store of the answer."
    );
}
