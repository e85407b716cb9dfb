//! `envoy/production/envoy.yaml` on a real Envoy 1.40, over real TLS on both sides.
//!
//! The gateway runs the production file itself, rendered by `tollgate_e2e::production::render`
//! with only addresses, ports and file paths swapped (module, gateway certificate, CA bundle,
//! `host:443` → a local port): the clusters, SNI, certificate checks, timeouts, circuit breakers,
//! JWT, masking and failover settings are the ones operators copy.
//!
//! The providers are the real mock provider behind a **TLS front**: a second Envoy
//! (`envoy/e2e/configs/tls_front.yaml`) that terminates TLS for the providers' host names, one
//! filter chain per SNI, and forwards plain HTTP to one mock per provider, adding the SNI it saw
//! as `x-front-sni`. That is the simplest real option: no TLS code is added to the mock (rustls
//! would bring `ring`/`aws-lc-rs` C builds into every test build), the handshake is a real
//! BoringSSL one, and an SNI that matches no chain gets no certificate at all. The certificates
//! come from test CAs made at test time with the `openssl` CLI (`tollgate_e2e::tls`):
//!
//! | SNI | certificate | expected |
//! |---|---|---|
//! | `api.openai.com` | trusted test CA, right name | completion delivered |
//! | `api.anthropic.com` | trusted test CA, issued for `wrong.example.com` | refused: name mismatch |
//! | `generativelanguage.googleapis.com` | right name, CA not in the bundle | refused: untrusted |
//! | `login.example.com` | trusted test CA, right name | the JWKS tollgate fetches |
//!
//! The client is `curl` over TLS (trusting only the test CA) with a JWT signed by the demo key,
//! which the test's identity provider publishes.

use std::path::{Path, PathBuf};
use std::process::Command;

use tollgate_e2e::mock::{MockHandle, MockOptions, MockProvider};
use tollgate_e2e::production::{self, TestSubstitutions, KEY_ENV};
use tollgate_e2e::tls::TestCa;
use tollgate_e2e::{read, repo_root, temp_dir, template, wasm_path, Envoy, Vars};

const OPENAI_KEY: &str = "sk-proj-prodTlsOpenAiKeyAbCdEfGhIjKlMnOpQr0123";
const ANTHROPIC_KEY: &str = "sk-ant-api03-prodTlsAnthropicKeyAbCdEfGhIjKl-0123";
const GEMINI_KEY: &str = "AIzaSyProdTlsGeminiKeyAbCdEfGhIjKlMnOpQ";
/// The gateway's name in its certificate; the client resolves it to 127.0.0.1.
const GATEWAY_NAME: &str = "llm-gateway.test";

/// Everything one scenario runs: two Envoys, four mocks, the CA the client trusts.
struct Setup {
    dir: PathBuf,
    ca: TestCa,
    openai: MockHandle,
    anthropic: MockHandle,
    gemini: MockHandle,
    _idp: MockHandle,
    front: Envoy,
    gateway: Envoy,
}

fn setup() -> Setup {
    let dir = temp_dir("production-tls");
    let trusted = TestCa::new(&dir, "trusted-ca");
    let rogue = TestCa::new(&dir, "rogue-ca");

    let tls_dir = dir.join("gateway-tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    trusted.issue(&tls_dir, "tls", GATEWAY_NAME);

    let front_certs = dir.join("front-certs");
    std::fs::create_dir_all(&front_certs).unwrap();
    trusted.issue(&front_certs, "openai", "api.openai.com");
    trusted.issue(&front_certs, "anthropic", "wrong.example.com");
    rogue.issue(&front_certs, "gemini", "generativelanguage.googleapis.com");
    trusted.issue(&front_certs, "idp", "login.example.com");

    let openai = MockProvider::start(MockOptions::with_api_key(OPENAI_KEY)).unwrap();
    let anthropic = MockProvider::start(MockOptions::with_api_key(ANTHROPIC_KEY)).unwrap();
    let gemini = MockProvider::start(MockOptions::with_api_key(GEMINI_KEY)).unwrap();
    let idp = MockProvider::start(MockOptions::default()).unwrap();
    idp.set_jwks(read(&repo_root().join("envoy/demo/keys/jwks.json")));

    let front = Envoy::start(
        &template("e2e/configs/tls_front.yaml"),
        Vars::new()
            .set("CERT_DIR", front_certs.display())
            .set("OPENAI_PORT", openai.port())
            .set("ANTHROPIC_PORT", anthropic.port())
            .set("GEMINI_PORT", gemini.port())
            .set("IDP_PORT", idp.port()),
    );
    let wasm = wasm_path();
    let gateway_yaml = production::render(&TestSubstitutions {
        module: &wasm,
        tls_dir: &tls_dir,
        ca_bundle: trusted.cert(),
        upstream_port: Some(front.port),
    });
    let env = [
        (KEY_ENV[0], OPENAI_KEY),
        (KEY_ENV[1], ANTHROPIC_KEY),
        (KEY_ENV[2], GEMINI_KEY),
    ];
    let gateway = Envoy::start_with_env(&gateway_yaml, Vars::new(), &env);
    Setup {
        dir,
        ca: trusted,
        openai,
        anthropic,
        gemini,
        _idp: idp,
        front,
        gateway,
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A token the production config accepts: its issuer and audience, signed by the demo key the
/// test's identity provider publishes.
fn token() -> String {
    use jwt_simple::prelude::*;
    let pem = read(&repo_root().join("envoy/demo/keys/demo-es256.pem"));
    let key = ES256KeyPair::from_pem(&pem)
        .unwrap()
        .with_key_id("tollgate-demo-1");
    let claims = Claims::create(Duration::from_mins(10))
        .with_issuer("https://login.example.com/")
        .with_audience("llm-gateway")
        .with_subject("alice");
    key.sign(claims).unwrap()
}

/// What `curl` got.
#[derive(Debug)]
struct CurlResult {
    /// curl's exit code (0 on a completed exchange; 60 = server certificate not trusted).
    exit: i32,
    status: u16,
    http_version: String,
    headers: Vec<(String, String)>,
    body: String,
    stderr: String,
}

impl CurlResult {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// POSTs `body` to the gateway's `/v1/chat/completions` over TLS as `https://llm-gateway.test`,
/// trusting `ca` (or curl's default bundle when `None`).
fn curl_chat(s: &Setup, ca: Option<&Path>, body: &str) -> CurlResult {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let head_file = s.dir.join(format!("curl-{n}.head"));
    let body_file = s.dir.join(format!("curl-{n}.body"));
    let port = s.gateway.port;
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "--resolve"])
        .arg(format!("{GATEWAY_NAME}:{port}:127.0.0.1"))
        .arg("-D")
        .arg(&head_file)
        .arg("-o")
        .arg(&body_file)
        .args(["-w", "%{http_code} %{http_version}"])
        .args(["-H", "content-type: application/json"])
        .arg("-H")
        .arg(format!("authorization: Bearer {}", token()))
        .args(["--data-binary", body]);
    if let Some(ca) = ca {
        cmd.arg("--cacert").arg(ca);
    }
    cmd.arg(format!("https://{GATEWAY_NAME}:{port}/v1/chat/completions"));
    let out = cmd.output().expect("run curl (install Debian's `curl`)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut parts = stdout.split_whitespace();
    let status = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    let http_version = parts.next().unwrap_or_default().to_string();
    let headers = std::fs::read_to_string(&head_file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    CurlResult {
        exit: out.status.code().unwrap_or(-1),
        status,
        http_version,
        headers,
        body: std::fs::read_to_string(&body_file).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The value of an Envoy counter from the admin `/stats` text (0 when absent).
fn counter(envoy: &Envoy, name: &str) -> u64 {
    envoy
        .admin(&format!("/stats?filter=^{}$", name.replace('.', "\\.")))
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_tls_client_gets_a_completion_from_a_tls_provider_with_sni_and_the_env_key() {
    let s = setup();
    let resp = curl_chat(
        &s,
        Some(s.ca.cert()),
        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello over tls"}]}"#,
    );
    assert_eq!(resp.exit, 0, "curl failed: {}", resp.stderr);
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.http_version, "2",
        "ALPN negotiates HTTP/2 with the gateway"
    );
    let completion: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
    assert_eq!(completion["object"], "chat.completion");
    assert!(completion["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("hello over tls"));
    assert!(resp.header("x-request-id").is_some());
    assert_eq!(
        resp.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    assert!(
        resp.header("x-envoy-upstream-service-time").is_none(),
        "suppress_envoy_headers keeps Envoy's internals private"
    );

    let seen = s.openai.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let up = &seen[0];
    assert_eq!(
        up.header("x-front-sni"),
        Some("api.openai.com"),
        "the provider's TLS server saw the provider's name as SNI"
    );
    assert_eq!(up.header("host"), Some("api.openai.com"));
    assert_eq!(
        up.header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str()),
        "the key from Envoy's environment reached the provider"
    );
    assert_eq!(
        up.header("x-user-id"),
        Some("alice"),
        "the JWT was verified"
    );
    let front_log = s.front.wait_access_log(2);
    let provider_line = front_log
        .iter()
        .find(|l| l.contains("/v1/chat/completions"))
        .unwrap_or_else(|| panic!("{front_log:?}"));
    assert!(
        provider_line.contains(r#""protocol":"HTTP/2""#),
        "auto_config picked HTTP/2 by ALPN upstream: {provider_line}"
    );
    assert!(
        front_log
            .iter()
            .any(|l| l.contains(r#""sni":"login.example.com""#)),
        "the JWKS came through the TLS idp cluster: {front_log:?}"
    );
    assert!(
        counter(&s.gateway, "cluster.openai.ssl.handshake") >= 1,
        "{}",
        s.gateway.admin("/stats?filter=cluster.openai.ssl")
    );

    // A client that does not trust the test CA refuses the gateway's certificate.
    let untrusting = curl_chat(&s, None, r#"{"model":"gpt-4o-mini","messages":[]}"#);
    assert_eq!(
        untrusting.exit, 60,
        "curl must reject the gateway's certificate: {untrusting:?}"
    );
}

#[test]
fn upstream_certificates_are_verified_by_name_and_by_ca() {
    let s = setup();

    // api.anthropic.com presents a certificate from the trusted CA, but for another name.
    let wrong_name = curl_chat(
        &s,
        Some(s.ca.cert()),
        r#"{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(wrong_name.exit, 0, "{}", wrong_name.stderr);
    assert_eq!(wrong_name.status, 503, "{}", wrong_name.body);
    assert!(
        s.anthropic.requests().is_empty(),
        "a provider with the wrong certificate name must receive nothing"
    );
    assert!(
        counter(&s.gateway, "cluster.anthropic.ssl.fail_verify_san") >= 1,
        "{}",
        s.gateway.admin("/stats?filter=cluster.anthropic.ssl")
    );
    assert_eq!(
        wrong_name.header("content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'"),
        "tollgate's 503 carries the security headers too"
    );

    // generativelanguage.googleapis.com has the right name, signed by a CA nobody trusts.
    let untrusted = curl_chat(
        &s,
        Some(s.ca.cert()),
        r#"{"model":"gemini-2.0-flash","messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(untrusted.exit, 0, "{}", untrusted.stderr);
    assert_eq!(untrusted.status, 503, "{}", untrusted.body);
    assert!(
        s.gemini.requests().is_empty(),
        "a provider with an untrusted certificate must receive nothing"
    );
    assert!(
        counter(&s.gateway, "cluster.gemini.ssl.fail_verify_error") >= 1,
        "{}",
        s.gateway.admin("/stats?filter=cluster.gemini.ssl")
    );
    assert!(
        s.openai.requests().is_empty(),
        "claude-* and gemini-* route to their own provider only"
    );
    assert!(
        !s.front
            .access_log()
            .iter()
            .any(|l| l.contains("api.anthropic.com") || l.contains("generativelanguage")),
        "no HTTP request crossed a refused handshake: {:?}",
        s.front.access_log()
    );
}

#[test]
fn the_production_config_keeps_what_operators_rely_on() {
    let yaml = template(production::CONFIG);
    let stats_block = |text: &str| -> String {
        let mut out = Vec::new();
        let mut inside = false;
        for line in text.lines() {
            if line.starts_with("stats_config:") {
                inside = true;
            } else if inside && !line.starts_with(' ') && !line.is_empty() {
                break;
            }
            if inside {
                out.push(line);
            }
        }
        out.join("\n")
    };
    let shipped = read(&repo_root().join("envoy/observability/stats-tags.yaml"));
    assert!(stats_block(&shipped).contains("tag_name: provider"));
    assert_eq!(
        stats_block(&yaml).trim_end(),
        stats_block(&shipped).trim_end(),
        "production/envoy.yaml must carry envoy/observability/stats-tags.yaml verbatim"
    );
    assert!(yaml.contains(production::ADMIN), "admin on loopback");
    assert!(yaml.contains("allow_on_headers_stop_iteration: true"));
    assert!(yaml.contains("host_env_keys: [OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY]"));
    for host in production::UPSTREAM_HOSTS {
        assert!(yaml.contains(&format!("sni: {host}\n")), "{host}: SNI");
        assert!(
            yaml.contains(&format!("matcher: {{ exact: {host} }}")),
            "{host}: certificate name check"
        );
    }
    for cluster in ["openai", "anthropic", "gemini"] {
        let start = yaml
            .find(&format!("  - name: {cluster}\n    type: LOGICAL_DNS"))
            .unwrap_or_else(|| panic!("cluster {cluster}"));
        let rest = &yaml[start + 4..];
        let block = &rest[..rest.find("\n  - name:").unwrap_or(rest.len())];
        for needle in [
            "circuit_breakers:",
            "outlier_detection:",
            "connect_timeout:",
            "trusted_ca: { filename: /etc/ssl/certs/ca-certificates.crt }",
        ] {
            assert!(block.contains(needle), "cluster {cluster} lacks {needle}");
        }
    }
}
