//! Issue 13's targets, each with what this run of the one table measured.

use crate::table::SerialLatency;
use tollgate_benches::{format_delta_us, WrkSummary};

/// Row numbers (1-based) of the one table that the targets read.
pub(crate) mod row {
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
pub(crate) fn print_targets(
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
    // Rows whose added CPU has a ceiling.
    for (what, r, ceiling_us) in [
        ("everything off (row 4)", row::EVERYTHING_OFF, 45.0),
        ("usage accounting only (row 5)", row::USAGE_ONLY, 80.0),
        (
            "all features, cached ES256 (row 16)",
            row::ALL_FEATURES,
            100.0,
        ),
    ] {
        let v = added(r);
        line(
            what,
            us(v),
            &format!("≤ +{ceiling_us:.0} µs"),
            v.map(|v| v <= ceiling_us),
        );
    }
    let all = added(row::ALL_FEATURES);
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
