//! Mesh-wide budgets end to end (docs/budgets.md): two real Envoy replicas with tollgate share one
//! budget in a real rate limit service (`envoy/e2e/ratelimit_service.py`: Envoy's RLS gRPC API on
//! the `limits` library's fixed windows in Debian's `redis-server`).
//!
//! - Several callers send concurrently to both replicas; per caller the tokens admitted across
//!   the mesh stop at the budget plus at most one reservation (the measured overshoot is printed),
//!   and the refusals are the same 429 as a local budget's.
//! - Consecutive responses from different replicas report the mesh-wide remaining budget.
//! - Redis stops mid-run: the fail-open replicas serve (counted `failed_open`), the fail-closed
//!   one refuses with 503 (counted `failed_closed`), the failed charges are counted as errors and
//!   no VM dies. Redis starts again: the queued charges land and enforcement resumes, counting
//!   what was used during the outage.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tollgate_e2e::mock::client::{request, Response};
use tollgate_e2e::mock::{MockOptions, MockProvider};
use tollgate_e2e::ratelimit::{RateLimitService, RedisServer};
use tollgate_e2e::{template, Envoy, Vars};

/// Tokens per caller per minute, mesh-wide.
const BUDGET: u64 = 2000;
/// `max_tokens` of every request: the output is at most this, so the reservation covers it.
const MAX_TOKENS: u64 = 40;
/// Requests the outage caller sends while Redis is down (alternating replicas).
const OUTAGE_REQUESTS: usize = 30;

fn plugin_config(failure_mode: &str) -> String {
    serde_json::json!({
        "budgets": {
            // Local windows far above the mesh budget: only the mesh budget refuses here.
            "windows": [{"period": "day", "max_tokens": 100_000_000u64}],
            "global": {
                "cluster": "ratelimit",
                "timeout_ms": 500,
                "failure_mode": failure_mode,
                "retry_interval_ms": 200,
                "windows": [{"period": "minute", "max_tokens": BUDGET, "max_requests": 1000}]
            }
        }
    })
    .to_string()
}

fn start_replica(upstream: u16, rls: u16, failure_mode: &str) -> Envoy {
    Envoy::start(
        &template("e2e/configs/global_budget.yaml"),
        Vars::new()
            .set("UPSTREAM_PORT", upstream)
            .set("RLS_PORT", rls)
            .plugin_config(&plugin_config(failure_mode)),
    )
}

fn chat(text: &str) -> String {
    serde_json::json!({
        "model": "gpt-4o-mini",
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": text}],
    })
    .to_string()
}

fn send(port: u16, key: &str, text: &str) -> Response {
    request(
        port,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json"), ("x-api-key", key)],
        chat(text).as_bytes(),
    )
    .expect("request through envoy")
}

fn total_tokens(r: &Response) -> u64 {
    let body: Value = r.json().expect("JSON completion");
    body["usage"]["total_tokens"]
        .as_u64()
        .unwrap_or_else(|| panic!("usage.total_tokens in {body}"))
}

/// An upper bound of the reservation tollgate makes for `text`: its prompt estimate (about a
/// token per 4 characters of the message, plus a few for the role) and `max_tokens`.
fn reservation(text: &str) -> u64 {
    text.chars().count().div_ceil(4) as u64 + 8 + MAX_TOKENS
}

/// A lower bound of the same reservation: the message alone is at least a token per 4 characters.
fn reservation_floor(text: &str) -> u64 {
    text.chars().count() as u64 / 4 + MAX_TOKENS
}

fn header_u64(r: &Response, name: &str) -> u64 {
    r.header(name)
        .and_then(|v| v.trim_end_matches('s').parse().ok())
        .unwrap_or_else(|| panic!("{name} in {:?}", r.headers))
}

fn assert_budget_refusal(r: &Response) {
    assert_eq!(r.status, 429, "{}", r.text());
    let body: Value = r.json().expect("JSON error");
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    assert_eq!(body["error"]["code"], "token_budget_exceeded", "{body}");
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        header_u64(r, "x-ratelimit-limit-tokens"),
        BUDGET,
        "{:?} {}",
        r.headers,
        r.text()
    );
    assert_eq!(header_u64(r, "x-ratelimit-remaining-tokens"), 0);
    assert!(r.header("x-ratelimit-reset-tokens").is_some());
}

#[derive(Default, Debug, Clone)]
struct CallerTally {
    admitted_tokens: u64,
    admitted: u64,
    refused: u64,
    largest_reservation: u64,
    /// Σ reservation floors of the admitted requests.
    reserved_at_least: u64,
}

/// Drives `threads_per_replica` threads per replica for `key` until the caller has been refused
/// on both replicas several times in a row (or `deadline`).
fn load(key: &str, replicas: &[u16], threads_per_replica: usize, deadline: Instant) -> CallerTally {
    let tally = Arc::new(Mutex::new(CallerTally::default()));
    let done = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for (r, port) in replicas.iter().enumerate() {
        for t in 0..threads_per_replica {
            let (tally, done, key, port) = (
                Arc::clone(&tally),
                Arc::clone(&done),
                key.to_string(),
                *port,
            );
            handles.push(std::thread::spawn(move || {
                let mut refused_in_a_row = 0;
                let mut i = 0;
                while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                    i += 1;
                    let text = format!("caller {key} replica {r} thread {t} asks question {i}");
                    let resp = send(port, &key, &text);
                    let mut tally = tally.lock().unwrap();
                    match resp.status {
                        200 => {
                            refused_in_a_row = 0;
                            tally.admitted += 1;
                            tally.admitted_tokens += total_tokens(&resp);
                            tally.largest_reservation =
                                tally.largest_reservation.max(reservation(&text));
                            tally.reserved_at_least += reservation_floor(&text);
                        }
                        429 => {
                            assert_budget_refusal(&resp);
                            tally.refused += 1;
                            refused_in_a_row += 1;
                            if refused_in_a_row >= 3 {
                                break;
                            }
                        }
                        other => panic!("unexpected status {other}: {}", resp.text()),
                    }
                }
            }));
        }
    }
    for h in handles {
        h.join().expect("load thread");
    }
    done.store(true, Ordering::Relaxed);
    let t = tally.lock().unwrap().clone();
    t
}

#[test]
fn two_replicas_share_one_budget_and_an_outage_loses_no_charge() {
    let started = Instant::now();
    let mut redis = RedisServer::start();
    let service = RateLimitService::start(&redis.url());
    let mock = MockProvider::start(MockOptions::default()).expect("mock provider");
    let a = start_replica(mock.port(), service.port, "open");
    let b = start_replica(mock.port(), service.port, "open");
    let closed = start_replica(mock.port(), service.port, "closed");
    let replicas = [a.port, b.port];

    // The mesh-wide view: a response from B reports what A's request already took.
    let first = send(a.port, "viewer", "how much is left?");
    assert_eq!(first.status, 200, "{}", first.text());
    let second = send(b.port, "viewer", "and now?");
    assert_eq!(second.status, 200, "{}", second.text());
    let left_a = header_u64(&first, "x-ratelimit-remaining-tokens");
    let left_b = header_u64(&second, "x-ratelimit-remaining-tokens");
    assert_eq!(header_u64(&second, "x-ratelimit-limit-tokens"), BUDGET);
    // A local view on B would not know A's reservation: B would report more than A did.
    let taken_by_b = left_a.checked_sub(left_b).unwrap_or_else(|| {
        panic!("B's view ({left_b}) must include A's reservation (A saw {left_a})")
    });
    assert!(
        (MAX_TOKENS..=reservation("and now?")).contains(&taken_by_b),
        "B reported {left_b} after A's {left_a}: its own reservation is {taken_by_b}"
    );

    // Concurrent load: three callers, two threads per replica each.
    let deadline = Instant::now() + Duration::from_secs(20);
    let callers = ["caller-1", "caller-2", "caller-3"];
    let tallies: Vec<(String, CallerTally)> = std::thread::scope(|s| {
        let handles: Vec<_> = callers
            .iter()
            .map(|key| s.spawn(move || (key.to_string(), load(key, &replicas, 2, deadline))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (key, t) in &tallies {
        let overshoot = t.admitted_tokens as i64 - BUDGET as i64;
        println!(
            "{key}: admitted {} requests, {} tokens across both replicas (budget {BUDGET}, \
             overshoot {overshoot:+}; reservations granted ≥ {}, largest {}); refused {}",
            t.admitted, t.admitted_tokens, t.reserved_at_least, t.largest_reservation, t.refused
        );
        assert!(t.refused >= 3, "{key} was never stopped: {t:?}");
        assert!(
            t.admitted_tokens <= BUDGET + t.largest_reservation,
            "{key}: {} tokens admitted, more than the budget plus one reservation",
            t.admitted_tokens
        );
        // Each reservation is at least MAX_TOKENS and the granted ones never add up to more
        // than the budget; the budget is used up before refusals start.
        assert!(
            t.reserved_at_least <= BUDGET,
            "{key}: the reservations granted ({} at least) exceed the budget",
            t.reserved_at_least
        );
        assert!(
            (t.admitted + 1) * t.largest_reservation >= BUDGET,
            "{key}: refused before the budget was reserved: {t:?}"
        );
    }
    for envoy in [&a, &b] {
        assert!(
            envoy.stat_sum(
                "tollgate_global_budget_admissions_total",
                "outcome=.=over_limit;.;"
            ) > 0
        );
    }

    // Outage: Redis stops. The fail-open replicas serve, the fail-closed one refuses.
    redis.stop();
    let outage_caller = "outage-caller";
    let mut used_during_outage = 0;
    let mut largest = 0;
    for i in 0..OUTAGE_REQUESTS {
        let port = replicas[i % 2];
        let text = format!("during the outage, question {i}");
        let r = send(port, outage_caller, &text);
        assert_eq!(r.status, 200, "fail-open serves: {}", r.text());
        used_during_outage += total_tokens(&r);
        largest = largest.max(reservation(&text));
    }
    let r = send(
        closed.port,
        outage_caller,
        "refused while the store is down",
    );
    assert_eq!(r.status, 503, "{}", r.text());
    let body: Value = r.json().expect("JSON error");
    assert_eq!(
        body["error"]["code"], "budget_service_unavailable",
        "{body}"
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(
        closed.stat_sum(
            "tollgate_global_budget_admissions_total",
            "outcome=.=failed_closed;.;"
        ) >= 1
    );
    let failed_open: u64 = [&a, &b]
        .iter()
        .map(|e| {
            e.stat_sum(
                "tollgate_global_budget_admissions_total",
                "outcome=.=failed_open;.;",
            )
        })
        .sum();
    assert!(
        failed_open >= OUTAGE_REQUESTS as u64,
        "failed_open {failed_open}"
    );
    // The completion charges of the outage requests fail and are counted as errors.
    let wait = Instant::now() + Duration::from_secs(5);
    let errors = || -> u64 {
        [&a, &b]
            .iter()
            .map(|e| e.stat_sum("tollgate_global_budget_charges_total", "outcome=.=error;.;"))
            .sum()
    };
    while errors() == 0 && Instant::now() < wait {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(errors() > 0, "failed charges are counted as errors");

    // Redis is back (empty: it keeps nothing on disk). The queued charges land, and the outage
    // caller's use during the outage counts against its budget.
    redis.restart();
    // Both replicas held charges of the outage caller: wait until each has sent them. The rate
    // limit service reconnects to Redis first; on a loaded machine (CI, tests in parallel) that
    // has taken more than 10 s, so the bound is generous and the loop ends as soon as both sent.
    let wait = Instant::now() + Duration::from_secs(30);
    let ok_charges =
        |e: &Envoy| e.stat_sum("tollgate_global_budget_charges_total", "outcome=.=ok;.;");
    let before = [ok_charges(&a), ok_charges(&b)];
    while (ok_charges(&a) == before[0] || ok_charges(&b) == before[1]) && Instant::now() < wait {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        ok_charges(&a) > before[0] && ok_charges(&b) > before[1],
        "queued charges were re-sent by both replicas"
    );
    let after = load(
        outage_caller,
        &replicas,
        1,
        Instant::now() + Duration::from_secs(15),
    );
    let total = used_during_outage + after.admitted_tokens;
    println!(
        "{outage_caller}: {used_during_outage} tokens during the outage, {} after it ({} \
         admissions, reservations ≥ {}), {total} in all (budget {BUDGET}); refused {} after the \
         restart",
        after.admitted_tokens, after.admitted, after.reserved_at_least, after.refused
    );
    assert!(after.refused >= 3, "enforcement resumed: {after:?}");
    assert!(
        total <= BUDGET + largest.max(after.largest_reservation),
        "{total} tokens in all"
    );
    // The outage's use was charged: what was reserved after the restart (each admission at
    // least MAX_TOKENS) fits in what the outage left. Had the charges been lost, the caller
    // would have been granted the whole budget again.
    assert!(
        after.reserved_at_least + used_during_outage <= BUDGET,
        "{} admissions after the restart on top of {used_during_outage} tokens used during the \
         outage: its charges were lost",
        after.admitted
    );

    for envoy in [&a, &b, &closed] {
        let log = envoy.log();
        assert!(!log.contains("panicked"), "a VM panicked:\n{log}");
        assert!(!log.contains("Wasm VM failed"), "{log}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    drop(service);
}
