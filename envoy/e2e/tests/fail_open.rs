//! What a client sees when the filter's wasm VM dies, under each Envoy failure policy.
//!
//! The crash filter (`envoy/e2e/crash-filter`, built here for wasm32) traps on a request carrying
//! `x-crash`, the way a Rust panic does under `panic = "abort"`. Each test runs it in a real
//! Envoy 1.40 (one worker, so the next request hits the same dead VM) and asserts the status of
//! a healthy request, of the crashing request, and of the requests after it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tollgate_e2e::mock::client::{request, Response};
use tollgate_e2e::mock::{MockHandle, MockOptions, MockProvider};
use tollgate_e2e::{repo_root, template, Envoy, Vars};

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

/// Builds the crash filter once (into its own target dir) and returns the module path.
fn crash_wasm() -> &'static PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target"))
            .join("crash-filter");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip1",
                "--manifest-path",
            ])
            .arg(repo_root().join("envoy/e2e/crash-filter/Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target_dir)
            .status()
            .expect("run cargo for the crash filter");
        assert!(status.success(), "crash filter build failed");
        target_dir.join("wasm32-wasip1/release/tollgate_crash_filter.wasm")
    })
}

/// Envoy with the crash filter under `policy` (a line of the wasm `PluginConfig`).
fn start(policy: &str) -> (MockHandle, Envoy) {
    let mock = MockProvider::start(MockOptions::default()).expect("mock starts");
    // The template names the module `{{WASM}}` (so the repo-wide validation fills it with
    // tollgate's); here it is the crash filter.
    let config = template("e2e/configs/fail_open.yaml")
        .replace("{{WASM}}", &crash_wasm().display().to_string());
    let envoy = Envoy::start(
        &config,
        Vars::new()
            .set("UPSTREAM_PORT", mock.port())
            .set("FAILURE_POLICY", policy),
    );
    (mock, envoy)
}

fn chat(envoy: &Envoy, crash: bool) -> Response {
    let mut headers = vec![("content-type", "application/json")];
    if crash {
        headers.push(("x-crash", "1"));
    }
    request(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &headers,
        CHAT.as_bytes(),
    )
    .expect("Envoy answers")
}

/// The filter ran on this response (it adds `x-crash-filter: alive`).
fn filtered(response: &Response) -> bool {
    response.header("x-crash-filter") == Some("alive")
}

/// A healthy request goes through the filter; then the crashing one is sent.
fn healthy_then_crash(envoy: &Envoy, mock: &MockHandle) -> Response {
    let ok = chat(envoy, false);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(filtered(&ok), "the filter runs while its VM is alive");
    let before = mock.requests().len();
    let crashed = chat(envoy, true);
    assert_eq!(
        mock.requests().len() > before,
        crashed.status == 200,
        "only a request that reached the provider may succeed"
    );
    crashed
}

fn assert_vm_failed_reply(response: &Response, what: &str) {
    assert_eq!(response.status, 503, "{what}: {}", response.text());
}

/// Default (no policy, same as `fail_open: false` and `FAIL_CLOSED`): the crashing request gets
/// a 503, and so does every later request on that worker: the VM stays dead until Envoy
/// restarts or the listener's filter config is replaced.
#[test]
fn fail_closed_by_default_every_request_after_the_crash_fails() {
    for policy in ["", "failure_policy: FAIL_CLOSED", "fail_open: false"] {
        let (mock, envoy) = start(policy);
        let crashed = healthy_then_crash(&envoy, &mock);
        assert_vm_failed_reply(&crashed, &format!("crashing request ({policy:?})"));
        let provider_calls = mock.requests().len();
        for n in 0..3 {
            let next = chat(&envoy, false);
            assert_vm_failed_reply(&next, &format!("request {n} after the crash ({policy:?})"));
        }
        assert_eq!(
            mock.requests().len(),
            provider_calls,
            "nothing reaches the provider once the VM is dead ({policy:?})"
        );
        assert!(
            envoy.log().contains("unreachable"),
            "Envoy logs the trap ({policy:?})"
        );
    }
}

/// `FAIL_OPEN`: the crashing request itself still fails with a 503 (the VM died in the middle
/// of it), and every later one goes to the provider *without the filter*: no auth, budgets,
/// masking or accounting. The deprecated `fail_open: true` differs on the crashing request: it
/// is forwarded to the provider too (unfiltered).
#[test]
fn fail_open_later_requests_bypass_the_filter() {
    for (policy, crashing_status) in [("failure_policy: FAIL_OPEN", 503), ("fail_open: true", 200)]
    {
        let (mock, envoy) = start(policy);
        let crashed = healthy_then_crash(&envoy, &mock);
        assert_eq!(
            crashed.status,
            crashing_status,
            "crashing request ({policy}): {}",
            crashed.text()
        );
        assert!(
            !filtered(&crashed),
            "the crashed VM did not answer ({policy})"
        );
        for n in 0..3 {
            let before = mock.requests().len();
            let next = chat(&envoy, false);
            assert_eq!(next.status, 200, "request {n} after the crash ({policy})");
            assert_eq!(mock.requests().len(), before + 1, "it reached the provider");
            assert!(
                !filtered(&next),
                "request {n} after the crash bypassed the filter ({policy})"
            );
        }
    }
}

/// `FAIL_RELOAD`: the crashing request fails with a 503; the VM is then reloaded (after a
/// backoff of about a second by default), and later requests go through the filter again.
#[test]
fn fail_reload_brings_the_filter_back() {
    let (mock, envoy) = start("failure_policy: FAIL_RELOAD");
    let crashed = healthy_then_crash(&envoy, &mock);
    assert_vm_failed_reply(&crashed, "crashing request");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        let next = chat(&envoy, false);
        seen.push(next.status);
        if next.status == 200 {
            assert!(filtered(&next), "the reloaded VM runs the filter");
            break;
        }
        assert_vm_failed_reply(&next, "request before the reload");
        assert!(
            Instant::now() < deadline,
            "the VM was not reloaded: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The reload is counted per plugin (`wasm.<plugin name>.vm_reload_success`): alert on it.
    let stats = envoy.admin("/stats");
    assert!(
        stats
            .lines()
            .any(|l| l == "wasm.crash.vm_reload_success: 1"),
        "reload counter: {stats}"
    );
    // Crashing again works the same way: the reload is not a one-off.
    let again = chat(&envoy, true);
    assert_vm_failed_reply(&again, "second crash");
}
