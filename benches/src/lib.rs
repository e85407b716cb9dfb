//! Shared helpers for tollgate's benchmarks: the Envoy-level comparison lives in
//! `src/bin/envoy_compare.rs`, the criterion benches in `benches/`.

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

/// CPU time (user + system) a process has used, in microseconds, from `/proc/<pid>/stat`.
pub fn process_cpu_us(pid: u32) -> Option<u64> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
