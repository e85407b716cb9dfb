//! Shared helpers for tollgate's benchmarks (the Envoy-level comparison lives in
//! `src/bin/envoy_compare/`, the criterion benches in `benches/`): parsing wrk's output,
//! reading a process's CPU time, folding rounds into table rows, percentiles, formatting, wrk
//! Lua scripts, and deterministic bench inputs (prose prompts, fake secrets).

/// One load run's result as wrk reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadResult {
    /// Requests completed.
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    /// Median latency in microseconds.
    pub p50_us: f64,
    /// 99th percentile latency in microseconds.
    pub p99_us: f64,
    /// Non-2xx/3xx responses.
    pub non_2xx: u64,
}

/// Parses a wrk duration such as `1.23ms`, `850.00us`, `2.01s` into microseconds.
pub fn parse_wrk_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mult) = if let Some(v) = s.strip_suffix("us") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1_000.0)
    } else if let Some(v) = s.strip_suffix('m') {
        (v, 60_000_000.0)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1_000_000.0)
    } else {
        return None;
    };
    num.trim().parse::<f64>().ok().map(|n| n * mult)
}

/// Parses `wrk --latency` output.
pub fn parse_wrk(output: &str) -> Option<LoadResult> {
    let mut r = LoadResult::default();
    for line in output.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("50%") {
            r.p50_us = parse_wrk_duration(rest)?;
        } else if let Some(rest) = t.strip_prefix("99%") {
            r.p99_us = parse_wrk_duration(rest)?;
        } else if let Some(rest) = t.strip_prefix("Requests/sec:") {
            r.rps = rest.trim().parse().ok()?;
        } else if t.contains(" requests in ") {
            r.requests = t.split_whitespace().next()?.parse().ok()?;
        } else if let Some(rest) = t.strip_prefix("Non-2xx or 3xx responses:") {
            r.non_2xx = rest.trim().parse().ok()?;
        }
    }
    (r.requests > 0).then_some(r)
}

/// CPU time a process has used, in microseconds: the nanosecond run times of its threads
/// (`/proc/<pid>/task/*/schedstat`) when the kernel keeps them, else user + system time from
/// `/proc/<pid>/stat` (clock-tick resolution, typically 10 ms).
pub fn process_cpu_us(pid: u32) -> Option<u64> {
    process_cpu_ns_schedstat(pid)
        .map(|ns| ns / 1_000)
        .or_else(|| process_cpu_us_stat(pid))
}

/// The summed on-CPU nanoseconds of a process's live threads, from their `schedstat`.
fn process_cpu_ns_schedstat(pid: u32) -> Option<u64> {
    let mut total = 0u64;
    let mut threads = 0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let text = std::fs::read_to_string(entry.path().join("schedstat")).ok()?;
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
        threads += 1;
    }
    (threads > 0).then_some(total)
}

/// CPU time (user + system) from `/proc/<pid>/stat`, in microseconds.
fn process_cpu_us_stat(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = clock_ticks_per_second();
    Some((utime + stime) * 1_000_000 / ticks)
}

fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// A wrk scenario's rounds folded into one row of a table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WrkSummary {
    /// Mean requests per second over the rounds.
    pub rps: f64,
    /// Median over the rounds of each round's p50 latency, microseconds.
    pub p50_us: f64,
    /// Median over the rounds of each round's p99 latency, microseconds.
    pub p99_us: f64,
    /// Requests completed over all rounds.
    pub requests: u64,
    /// Envoy CPU time over all rounds divided by the requests, microseconds.
    pub cpu_us_per_request: f64,
    /// Non-2xx/3xx responses over all rounds.
    pub non_2xx: u64,
}

/// Folds rounds of (wrk result, Envoy CPU microseconds used during that round) into a summary.
pub fn summarize_wrk(runs: &[(LoadResult, u64)]) -> WrkSummary {
    if runs.is_empty() {
        return WrkSummary::default();
    }
    let n = runs.len() as f64;
    let requests: u64 = runs.iter().map(|(r, _)| r.requests).sum();
    let cpu: u64 = runs.iter().map(|(_, c)| *c).sum();
    WrkSummary {
        rps: runs.iter().map(|(r, _)| r.rps).sum::<f64>() / n,
        p50_us: median(&runs.iter().map(|(r, _)| r.p50_us).collect::<Vec<_>>()),
        p99_us: median(&runs.iter().map(|(r, _)| r.p99_us).collect::<Vec<_>>()),
        requests,
        cpu_us_per_request: if requests > 0 {
            cpu as f64 / requests as f64
        } else {
            0.0
        },
        non_2xx: runs.iter().map(|(r, _)| r.non_2xx).sum(),
    }
}

/// The `q` quantile (0.0..=1.0) of `values` by nearest rank; 0 for no values.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len() - 1))
        .copied()
        .unwrap_or(0.0)
}

/// The median of `values` (upper median for an even count); 0 for no values.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// A latency for a table cell: `734 µs` below 10 ms, else `12.3 ms`.
pub fn format_us(us: f64) -> String {
    if us.abs() < 10_000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.1} ms", us / 1_000.0)
    }
}

/// A signed latency difference for a table cell: `+734 µs`, `-12 µs`, `+12.3 ms`.
pub fn format_delta_us(us: f64) -> String {
    if us.abs() < 10_000.0 {
        format!("{us:+.0} µs")
    } else {
        format!("{:+.1} ms", us / 1_000.0)
    }
}

/// The CPU model named by `/proc/cpuinfo` text (`model name`, else `Hardware`/`cpu model`).
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Hardware", "cpu model"]
        .iter()
        .find_map(|key| {
            cpuinfo.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                (name.trim() == *key && !value.trim().is_empty()).then(|| value.trim().to_string())
            })
        })
}

/// `s` as a double-quoted Lua string literal.
pub fn lua_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\{:03}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A wrk Lua script that POSTs the bytes of `body_file` (read once at start, so bodies of any
/// size and content work) as JSON with the extra `headers`.
pub fn wrk_post_script(body_file: &std::path::Path, headers: &[(String, String)]) -> String {
    let mut lua = format!(
        "local f = assert(io.open({}, \"rb\"))\nwrk.body = f:read(\"*a\")\nf:close()\nwrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n",
        lua_quote(&body_file.display().to_string())
    );
    for (name, value) in headers {
        lua.push_str(&format!(
            "wrk.headers[{}] = {}\n",
            lua_quote(name),
            lua_quote(value)
        ));
    }
    lua
}

/// An OpenAI chat completions request body with one user message.
pub fn chat_body(model: &str, content: &str, stream: bool) -> String {
    let mut body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": content}],
    });
    if stream {
        body["stream"] = serde_json::Value::Bool(true);
    }
    body.to_string()
}

/// SplitMix64: a tiny deterministic generator for bench inputs (not for anything secret).
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniformly chosen element of the non-empty `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            return None;
        }
        items.get((self.next_u64() % items.len() as u64) as usize)
    }

    fn string(&mut self, charset: &[u8], len: usize) -> String {
        (0..len)
            .filter_map(|_| self.pick(charset).map(|b| char::from(*b)))
            .collect()
    }

    /// `len` characters of `charset` with an upper-case letter, a lower-case letter and a
    /// digit, starting and ending alphanumeric (the shape real keys have).
    fn mixed(&mut self, charset: &[u8], len: usize) -> String {
        loop {
            let s = self.string(charset, len);
            let b = s.as_bytes();
            if b.iter().any(u8::is_ascii_uppercase)
                && b.iter().any(u8::is_ascii_lowercase)
                && b.iter().any(u8::is_ascii_digit)
                && b.first().is_some_and(u8::is_ascii_alphanumeric)
                && b.last().is_some_and(u8::is_ascii_alphanumeric)
            {
                return s;
            }
        }
    }
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Fake secrets with realistic shapes, as (kind, value): an OpenAI project key, an Anthropic
/// key, a Google API key, an AWS access key id and a GitHub token.
pub fn fake_secrets(seed: u64) -> Vec<(&'static str, String)> {
    let mut rng = SplitMix64(seed);
    vec![
        (
            "openai_key",
            format!("sk-proj-{}", rng.mixed(BASE64URL, 156)),
        ),
        (
            "anthropic_key",
            format!("sk-ant-api03-{}AA", rng.mixed(BASE64URL, 93)),
        ),
        (
            "google_api_key",
            format!("AIza{}", rng.mixed(BASE64URL, 35)),
        ),
        (
            "aws_access_key_id",
            format!("AKIA{}", rng.string(UPPER_DIGITS, 16)),
        ),
        ("github_token", format!("ghp_{}", rng.mixed(ALNUM, 36))),
    ]
}

const WORDS: &[&str] = &[
    "the",
    "toll",
    "road",
    "gate",
    "summary",
    "please",
    "review",
    "this",
    "report",
    "about",
    "traffic",
    "on",
    "bridge",
    "during",
    "morning",
    "hours",
    "and",
    "explain",
    "why",
    "queues",
    "grow",
    "when",
    "lanes",
    "close",
    "for",
    "maintenance",
    "drivers",
    "pay",
    "at",
    "booth",
    "river",
    "north",
    "south",
    "weekly",
    "numbers",
    "show",
    "steady",
    "growth",
    "in",
    "trucks",
    "cars",
    "buses",
    "with",
    "a",
    "few",
    "spikes",
    "after",
    "holidays",
    "we",
    "need",
    "short",
    "answer",
    "that",
    "lists",
    "causes",
    "effects",
    "options",
    "costs",
    "benefits",
    "risks",
];

/// Prose-like ASCII text of exactly `len` bytes (for `len` ≥ the secrets' total) with each of
/// `secrets` embedded once, spread evenly, as `… my key is <secret> …`.
pub fn prompt_text(len: usize, secrets: &[String], seed: u64) -> String {
    let mut rng = SplitMix64(seed);
    let mut filler = |n: usize| -> String {
        let mut s = String::with_capacity(n + 16);
        let mut words_in_sentence = 0;
        while s.len() < n {
            let word = rng.pick(WORDS).copied().unwrap_or("toll");
            s.push_str(word);
            words_in_sentence += 1;
            if words_in_sentence >= 12 {
                s.push_str(". ");
                words_in_sentence = 0;
            } else {
                s.push(' ');
            }
        }
        s.truncate(n);
        s
    };
    let pieces: Vec<String> = secrets
        .iter()
        .map(|secret| format!(" my key is {secret} "))
        .collect();
    let secret_bytes: usize = pieces.iter().map(String::len).sum();
    let gaps = pieces.len() + 1;
    let filler_total = len.saturating_sub(secret_bytes);
    let mut out = String::with_capacity(len);
    for (i, piece) in pieces.iter().enumerate() {
        let gap = filler_total / gaps + usize::from(i < filler_total % gaps);
        out.push_str(&filler(gap));
        out.push_str(piece);
    }
    let rest = len.saturating_sub(out.len());
    out.push_str(&filler(rest));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression test for issue 13's "`make bench` fails on a fresh machine": a `panic` setting
    /// in the root `[profile.release]` (inherited by the bench profile) made `cargo bench` build
    /// the filter's rlib twice to one unhashed path (`cdylib` + `rlib`), abort for the
    /// `envoy-compare` binary and unwind for the bench harnesses, and the benches stopped linking
    /// ("the crate `aead` requires panic strategy `abort`…"). The wasm build aborts anyway (its
    /// target's default, enforced in `filter/src/lib.rs`).
    #[test]
    fn the_release_profile_leaves_the_panic_strategy_to_the_target() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
        let manifest = std::fs::read_to_string(path).expect("read the root Cargo.toml");
        let mut section = String::new();
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_string();
            } else if section == "[profile.release]" || section == "[profile.bench]" {
                assert!(
                    !line.starts_with("panic"),
                    "{section} sets `{line}`: `cargo bench` then builds the filter twice with \
                     different panic strategies to the same file and the benches fail to link; \
                     leave the panic strategy to the target (wasm32-wasip1 aborts)"
                );
            }
        }
        assert!(
            manifest.contains("[profile.release]"),
            "the wasm release profile is there"
        );
    }

    #[test]
    fn parses_wrk_output() {
        let out = "Running 5s test @ http://127.0.0.1:1/\n  1 threads and 8 connections\n  Latency Distribution\n     50%  512.00us\n     75%  1.00ms\n     90%  1.50ms\n     99%    2.25ms\n  12345 requests in 5.00s, 1.00MB read\nRequests/sec:   2469.00\n";
        let r = parse_wrk(out).unwrap();
        assert_eq!(r.requests, 12345);
        assert_eq!(r.p50_us, 512.0);
        assert_eq!(r.p99_us, 2250.0);
        assert_eq!(r.rps, 2469.0);
    }

    #[test]
    fn cpu_of_self_is_readable() {
        assert!(process_cpu_us(std::process::id()).is_some());
        assert!(process_cpu_us_stat(std::process::id()).is_some());
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }

    #[test]
    fn summary_divides_cpu_by_all_requests() {
        let r = |requests, rps, p50| LoadResult {
            requests,
            rps,
            p50_us: p50,
            p99_us: p50 * 2.0,
            non_2xx: 1,
        };
        let s = summarize_wrk(&[(r(100, 10.0, 5.0), 1000), (r(300, 30.0, 7.0), 3000)]);
        assert_eq!(s.requests, 400);
        assert_eq!(s.rps, 20.0);
        assert_eq!(s.cpu_us_per_request, 10.0);
        assert_eq!(s.non_2xx, 2);
        assert_eq!(s.p50_us, 7.0);
        assert_eq!(summarize_wrk(&[]), WrkSummary::default());
    }

    #[test]
    fn formats_latencies() {
        assert_eq!(format_us(734.4), "734 µs");
        assert_eq!(format_us(12_345.0), "12.3 ms");
        assert_eq!(format_delta_us(-12.0), "-12 µs");
        assert_eq!(format_delta_us(250.0), "+250 µs");
    }

    #[test]
    fn reads_the_cpu_model() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model(info).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model("nothing"), None);
    }

    #[test]
    fn lua_strings_are_quoted() {
        assert_eq!(lua_quote(r#"a"b\c"#), r#""a\"b\\c""#);
        let script = wrk_post_script(
            std::path::Path::new("/tmp/x.json"),
            &[("Authorization".into(), "Bearer a.b.c".into())],
        );
        assert!(
            script.contains(r#"io.open("/tmp/x.json", "rb")"#),
            "{script}"
        );
        assert!(script.contains(r#"wrk.headers["Authorization"] = "Bearer a.b.c""#));
    }

    #[test]
    fn prompt_has_the_exact_length_and_every_secret() {
        let secrets: Vec<String> = fake_secrets(7).into_iter().map(|(_, s)| s).collect();
        let text = prompt_text(64 * 1024, &secrets, 1);
        assert_eq!(text.len(), 64 * 1024);
        for s in &secrets {
            assert_eq!(text.matches(s.as_str()).count(), 1, "{s}");
        }
        let clean = prompt_text(64 * 1024, &[], 1);
        assert_eq!(clean.len(), 64 * 1024);
        assert!(clean.is_ascii());
        let body: serde_json::Value = serde_json::from_str(&chat_body("m", &clean, true)).unwrap();
        assert_eq!(body["stream"], true);
        assert_eq!(
            body["messages"][0]["content"].as_str().unwrap().len(),
            64 * 1024
        );
    }
}
