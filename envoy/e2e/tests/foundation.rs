//! Real Envoy 1.40 + tollgate.wasm in front of the mock provider: correlation ids end to end,
//! local replies, refused configs, and every Envoy config in the repo validated.

use tollgate_e2e::mock::client::request;
use tollgate_e2e::mock::{MockHandle, MockOptions, MockProvider};
use tollgate_e2e::{repo_root, template, Envoy, Vars};

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

fn start(plugin_config: &str) -> (MockHandle, Envoy) {
    let mock = MockProvider::start(MockOptions::default()).expect("mock starts");
    let envoy = Envoy::start(
        &template("e2e/configs/basic.yaml"),
        Vars::new()
            .set("UPSTREAM_PORT", mock.port())
            .plugin_config(plugin_config),
    );
    (mock, envoy)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn request_reaches_the_provider_with_correlation_headers() {
    let (mock, envoy) = start("{}");
    let resp = request(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        CHAT.as_bytes(),
    )
    .expect("request through envoy");
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let body: serde_json::Value = serde_json::from_slice(&resp.body).expect("JSON completion");
    assert_eq!(body["object"], "chat.completion");
    let echoed = header(&resp.headers, "x-request-id")
        .expect("x-request-id echoed")
        .to_string();

    let seen = mock.requests();
    let upstream = seen.last().expect("provider saw the request");
    assert_eq!(
        header(&upstream.headers, "x-request-id"),
        Some(echoed.as_str())
    );
    let tp = header(&upstream.headers, "traceparent").expect("traceparent sent upstream");
    assert_eq!(tp.len(), 55, "{tp}");
    assert!(tp.starts_with("00-"));

    let log = envoy.wait_access_log(1);
    assert!(
        log.iter().any(|l| l.contains(&echoed)),
        "access log lacks the id: {log:?}"
    );
}

#[test]
fn client_request_id_and_trace_survive_end_to_end() {
    let (mock, envoy) = start("{}");
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let resp = request(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &[("x-request-id", "client-id-42"), ("traceparent", tp)],
        CHAT.as_bytes(),
    )
    .unwrap();
    assert_eq!(header(&resp.headers, "x-request-id"), Some("client-id-42"));
    let up = mock.requests().pop().unwrap();
    assert_eq!(header(&up.headers, "x-request-id"), Some("client-id-42"));
    let sent = header(&up.headers, "traceparent").unwrap();
    assert!(
        sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{sent}"
    );
    assert!(
        !sent.contains("00f067aa0ba902b7"),
        "child span expected: {sent}"
    );
}

#[test]
fn malformed_traceparent_and_oversized_id_are_replaced_not_forwarded() {
    let (mock, envoy) = start("{}");
    let long_id = "x".repeat(300);
    let resp = request(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &[
            ("x-request-id", &long_id),
            ("traceparent", "00-not-a-trace-01"),
        ],
        CHAT.as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.status, 200);
    let up = mock.requests().pop().unwrap();
    let id = header(&up.headers, "x-request-id").unwrap();
    assert_ne!(id, long_id);
    assert!(id.len() <= 128, "{id}");
    assert_eq!(header(&resp.headers, "x-request-id"), Some(id));
    let tp = header(&up.headers, "traceparent").unwrap();
    assert_ne!(tp, "00-not-a-trace-01");
    assert_eq!(tp.len(), 55);
}

#[test]
fn garbage_in_an_alias_header_is_not_forwarded() {
    let (mock, envoy) = start("{}");
    let resp = request(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &[
            ("x-request-id", "rid-alias"),
            ("x-correlation-id", "bad id <with> spaces"),
        ],
        CHAT.as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.status, 200);
    let up = mock.requests().pop().unwrap();
    assert_eq!(header(&up.headers, "x-request-id"), Some("rid-alias"));
    assert_eq!(header(&up.headers, "x-correlation-id"), Some("rid-alias"));
}

#[test]
fn local_reply_is_openai_shaped_with_the_request_id() {
    let (mock, envoy) = start(r#"{"limits":{"max_request_bytes":16}}"#);
    let resp = request(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &[("x-request-id", "rid-big")],
        CHAT.as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.status, 413);
    assert_eq!(header(&resp.headers, "x-request-id"), Some("rid-big"));
    assert_eq!(
        header(&resp.headers, "content-type"),
        Some("application/json")
    );
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body["error"]["code"], "request_too_large");
    assert_eq!(body["error"]["request_id"], "rid-big");
    assert!(
        mock.requests().is_empty(),
        "the provider must not see a refused request"
    );
    assert!(
        envoy.log().contains("[rid-big]"),
        "filter log lines carry the id"
    );
}

#[test]
fn filter_counters_appear_in_prometheus_stats() {
    let (_mock, envoy) = start("{}");
    for _ in 0..3 {
        request(
            envoy.port,
            "POST",
            "/v1/chat/completions",
            &[],
            CHAT.as_bytes(),
        )
        .unwrap();
    }
    let stats = envoy.prometheus();
    let line = stats
        .lines()
        .find(|l| l.starts_with("tollgate_requests_total"))
        .unwrap_or_else(|| panic!("no tollgate_requests_total in:\n{stats}"));
    let value: f64 = line.split_whitespace().last().unwrap().parse().unwrap();
    assert!(value >= 3.0, "{line}");
}

#[test]
fn invalid_plugin_config_is_refused_naming_the_field() {
    let mock = MockProvider::start(MockOptions::default()).unwrap();
    let result = Envoy::try_start(
        &template("e2e/configs/basic.yaml"),
        Vars::new()
            .set("UPSTREAM_PORT", mock.port())
            .plugin_config(r#"{"correlation":{"max_length":0}}"#),
    );
    let err = match result {
        Ok(_) => panic!("envoy accepted an invalid tollgate config"),
        Err(e) => e,
    };
    assert!(
        err.log.contains("correlation.max_length"),
        "log lacks the field name:\n{}",
        err.log
    );
}

/// The demo config with its fixed ports moved to free ones and the module path made absolute.
fn demo_yaml(listener: u16, admin: u16, upstream: u16) -> String {
    let wasm = tollgate_e2e::wasm_path();
    std::fs::read_to_string(repo_root().join("envoy/demo/envoy.yaml"))
        .unwrap()
        .replace("port_value: 10000", &format!("port_value: {listener}"))
        .replace("port_value: 9901", &format!("port_value: {admin}"))
        .replace("port_value: 8081", &format!("port_value: {upstream}"))
        .replace(
            "\"target/tollgate.wasm\"",
            &format!("{:?}", wasm.display().to_string()),
        )
}

/// A token signed with the demo key (envoy/demo/keys), as `make token` prints.
fn demo_token(sub: &str) -> String {
    use jwt_simple::prelude::*;
    let pem = std::fs::read_to_string(repo_root().join("envoy/demo/keys/demo-es256.pem")).unwrap();
    let key = ES256KeyPair::from_pem(&pem)
        .unwrap()
        .with_key_id("tollgate-demo-1");
    let claims = Claims::create(Duration::from_mins(10))
        .with_issuer("https://demo.tollgate.local")
        .with_audience("tollgate-demo")
        .with_subject(sub);
    key.sign(claims).unwrap()
}

#[test]
fn demo_config_answers_the_readme_request() {
    let mock = MockProvider::start(MockOptions::default()).unwrap();
    mock.set_jwks(std::fs::read_to_string(repo_root().join("envoy/demo/keys/jwks.json")).unwrap());
    // Envoy::start fills LISTENER_PORT/ADMIN_PORT; route the demo's fixed ports through them.
    let yaml = demo_yaml(0, 0, mock.port())
        .replace("port_value: 0 }", "port_value: {{LISTENER_PORT}} }")
        .replacen(
            "port_value: {{LISTENER_PORT}} }",
            "port_value: {{ADMIN_PORT}} }",
            1,
        );
    let envoy = Envoy::start(&yaml, Vars::new());

    let unauthenticated = request(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &[],
        CHAT.as_bytes(),
    )
    .unwrap();
    assert_eq!(
        unauthenticated.status, 401,
        "the demo requires a JWT on /v1/"
    );
    assert!(header(&unauthenticated.headers, "www-authenticate").is_some());

    let auth = format!("Bearer {}", demo_token("demo-user"));
    let resp = request(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &[("authorization", auth.as_str())],
        CHAT.as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert!(header(&resp.headers, "x-request-id").is_some());
    assert!(header(&resp.headers, "x-ratelimit-remaining-tokens").is_some());
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert!(body["choices"][0]["message"]["content"].is_string());
    let up = mock.requests().pop().unwrap();
    assert_eq!(up.header("x-user-id"), Some("demo-user"));
    assert_eq!(
        up.header("authorization"),
        Some("Bearer sk-proj-demoOpenAiKey0123456789abcdefABCDEF"),
        "the provider gets the gateway's key, never the client's JWT"
    );

    // The demo's documented failure: OpenAI's API fails, Anthropic answers (translated back).
    let fail = request(
        mock.port(),
        "POST",
        "/__mock/faults",
        &[],
        br#"{"status":500,"path_prefix":"/v1/chat/completions"}"#.as_slice(),
    )
    .unwrap();
    assert_eq!(fail.status, 200);
    let resp = request(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &[("authorization", auth.as_str())],
        CHAT.as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body["object"], "chat.completion", "OpenAI's shape: {body}");
    let paths: Vec<String> = mock.requests().iter().map(|r| r.path.clone()).collect();
    let n = paths.len();
    assert_eq!(
        paths[n - 2..],
        ["/v1/chat/completions", "/v1/messages"],
        "OpenAI tried, Anthropic answered: {paths:?}"
    );
    let fallback = mock.requests().pop().unwrap();
    assert_eq!(
        fallback.header("x-api-key"),
        Some("sk-ant-api03-demoAnthropicKey0123456789abcdef")
    );
}

/// Gives scenario-specific placeholders (`{{RLS_PORT}}`, `{{JWKS}}`…) valid dummy values.
fn fill_other_placeholders(text: &str) -> String {
    let known = [
        "LISTENER_PORT",
        "ADMIN_PORT",
        "UPSTREAM_PORT",
        "WASM",
        "ACCESS_LOG",
        "ROOT",
        "PLUGIN_CONFIG",
    ];
    let mut out = String::new();
    let mut rest = text;
    let mut next_port = 20000;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        let name = &rest[start + 2..start + len];
        out.push_str(&rest[..start]);
        if known.contains(&name) {
            out.push_str(&rest[start..start + len + 2]);
        } else if name.ends_with("PORT") {
            next_port += 1;
            out.push_str(&next_port.to_string());
        } else if name.ends_with("PLUGIN_CONFIG") {
            // Another tollgate instance (e.g. the upstream stage): the default config.
            out.push_str(r#""{}""#);
        } else if name.contains("JWKS") {
            out.push_str(r#"{"keys":[{"kty":"oct","kid":"k1","alg":"HS256","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]}"#);
        } else if out.ends_with([' ', '\n'])
            && out.rsplit('\n').next().is_some_and(|l| l.trim().is_empty())
            && rest[start + len + 2..].starts_with('\n')
        {
            // A placeholder alone on its line stands for an optional block: leave it out.
            out.push_str("# placeholder");
        } else {
            out.push_str("placeholder");
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// Stand-in provider keys for validating the production config (tollgate refuses to configure
/// without them).
const PRODUCTION_KEYS: [(&str, &str); 3] = [
    ("OPENAI_API_KEY", "sk-proj-validateOnlyKeyAbCdEfGhIjKl0123"),
    (
        "ANTHROPIC_API_KEY",
        "sk-ant-api03-validateOnlyKeyAbCdEfGh-0123",
    ),
    ("GEMINI_API_KEY", "AIzaSyValidateOnlyKeyAbCdEfGhIjKlMnO"),
];

/// `envoy/production/envoy.yaml` with only its file paths swapped: the module, a gateway
/// certificate and a CA bundle made by a test CA (Envoy reads them while validating).
fn production_yaml_with_test_files(dir: &std::path::Path) -> String {
    let ca = tollgate_e2e::tls::TestCa::new(dir, "validate-ca");
    ca.issue(dir, "tls", "llm-gateway.test");
    let wasm = tollgate_e2e::wasm_path();
    tollgate_e2e::production::render(&tollgate_e2e::production::TestSubstitutions {
        module: &wasm,
        tls_dir: dir,
        ca_bundle: ca.cert(),
        upstream_port: None,
    })
}

/// Test configs that serve TLS name their files `{{CERT_DIR}}/<stem>.crt|key`: give them a
/// directory (under `scratch`) holding a test certificate for every stem they name.
fn fill_certificate_dir(text: &str, scratch: &std::path::Path) -> String {
    const PLACEHOLDER: &str = "{{CERT_DIR}}/";
    if !text.contains(PLACEHOLDER) {
        return text.to_string();
    }
    let dir = scratch.join("certs");
    std::fs::create_dir_all(&dir).unwrap();
    let ca = tollgate_e2e::tls::TestCa::new(&dir, "validate-ca");
    let mut stems: Vec<&str> = text
        .split(PLACEHOLDER)
        .skip(1)
        .filter_map(|rest| rest.split_once('.').map(|(stem, _)| stem))
        .collect();
    stems.sort_unstable();
    stems.dedup();
    for stem in stems {
        ca.issue(&dir, stem, &format!("{stem}.test"));
    }
    text.replace("{{CERT_DIR}}", &dir.display().to_string())
}

#[test]
fn every_envoy_config_in_the_repo_validates() {
    let dummy = Vars::new()
        .set("LISTENER_PORT", 10000)
        .set("ADMIN_PORT", 9901)
        .set("UPSTREAM_PORT", 8081)
        .set("WASM", tollgate_e2e::wasm_path().display())
        .set("ACCESS_LOG", "/dev/null")
        .set("ROOT", repo_root().display())
        .plugin_config("{}");
    let mut checked = 0;
    let mut production_checked = false;
    // Certificates and keys made for the configs that read them; removed at the end.
    let scratch = tollgate_e2e::temp_dir("validate-files");
    let mut failures = Vec::new();
    let mut stack = vec![repo_root().join("envoy"), repo_root().join("benches")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if !path.ends_with("target") {
                    stack.push(path);
                }
                continue;
            }
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !(name.ends_with(".yaml")
                && std::fs::read_to_string(&path)
                    .unwrap()
                    .contains("static_resources"))
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let mut env: Vec<(&str, &str)> = Vec::new();
            let yaml = if path.ends_with("demo/envoy.yaml") {
                demo_yaml(10000, 9901, 8081)
            } else if path.ends_with(tollgate_e2e::production::CONFIG) {
                production_checked = true;
                // The production file as shipped, with its certificate files and module
                // present and its provider keys in the environment.
                env = PRODUCTION_KEYS.to_vec();
                production_yaml_with_test_files(&scratch)
            } else {
                dummy.render(&fill_other_placeholders(&fill_certificate_dir(
                    &text, &scratch,
                )))
            };
            let (ok, out) = tollgate_e2e::validate_with_env(&yaml, &env);
            checked += 1;
            if !ok {
                failures.push(format!("{}:\n{out}", path.display()));
            }
        }
    }
    assert!(
        checked >= 3,
        "expected to validate several configs, found {checked}"
    );
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(
        production_checked,
        "envoy/production/envoy.yaml was not validated"
    );
    assert!(
        failures.is_empty(),
        "configs failing `envoy --mode validate`:\n{}",
        failures.join("\n")
    );
}
