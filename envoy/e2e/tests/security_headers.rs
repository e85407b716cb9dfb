//! The security headers of `envoy/demo/envoy.yaml` (the virtual host's `response_headers_to_add`)
//! on a real Envoy 1.40: on a completion from the provider, on a streamed response, and on
//! tollgate's own local replies, which the HTTP connection manager also passes through the
//! virtual host's header rules. `envoy/production/envoy.yaml` carries the same block
//! (tests/production_tls.rs checks a TLS response and a tollgate 503 there).

use tollgate_e2e::mock::client::{request, stream};
use tollgate_e2e::mock::{MockOptions, MockProvider};
use tollgate_e2e::{read, repo_root, wasm_path, Envoy, Vars};

/// What every response must carry.
const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "strict-transport-security",
        "max-age=31536000; includeSubDomains",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("cache-control", "no-store"),
];

/// The demo config on free ports, the mock on its own port, the module path absolute.
fn demo_template(upstream: u16) -> String {
    read(&repo_root().join("envoy/demo/envoy.yaml"))
        .replacen("port_value: 9901 ", "port_value: {{ADMIN_PORT}} ", 1)
        .replacen("port_value: 10000 ", "port_value: {{LISTENER_PORT}} ", 1)
        .replace("port_value: 8081 ", &format!("port_value: {upstream} "))
        .replace("\"target/tollgate.wasm\"", "\"{{WASM}}\"")
}

/// A token signed with the demo key (envoy/demo/keys), as `make token` prints.
fn demo_token() -> String {
    use jwt_simple::prelude::*;
    let pem = read(&repo_root().join("envoy/demo/keys/demo-es256.pem"));
    let key = ES256KeyPair::from_pem(&pem)
        .unwrap()
        .with_key_id("tollgate-demo-1");
    let claims = Claims::create(Duration::from_mins(10))
        .with_issuer("https://demo.tollgate.local")
        .with_audience("tollgate-demo")
        .with_subject("header-tester");
    key.sign(claims).unwrap()
}

/// Asserts every security header, exactly once, with its value.
fn assert_security_headers(what: &str, headers: &[(String, String)]) {
    for (name, value) in SECURITY_HEADERS {
        let got: Vec<&str> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(got, vec![value], "{what}: header {name} in {headers:?}");
    }
}

#[test]
fn completions_streams_and_tollgate_replies_carry_the_security_headers() {
    assert!(wasm_path().exists(), "run `make build` first");
    let mock = MockProvider::start(MockOptions::default()).unwrap();
    mock.set_jwks(read(&repo_root().join("envoy/demo/keys/jwks.json")));
    let envoy = Envoy::start(&demo_template(mock.port()), Vars::new());
    let auth = format!("Bearer {}", demo_token());

    // A completion from the provider.
    let completion = request(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ],
        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .unwrap();
    assert_eq!(completion.status, 200, "{}", completion.text());
    assert_security_headers("completion", &completion.headers);

    // A stream: the headers arrive with the response head, before the first event.
    let mut streamed = stream(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ],
        r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .unwrap();
    assert_eq!(streamed.status, 200);
    assert!(
        streamed
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream")),
        "{:?}",
        streamed.headers
    );
    assert_security_headers("stream", &streamed.headers);
    let body = String::from_utf8(streamed.read_to_end().unwrap()).unwrap();
    assert!(body.contains("data: [DONE]"), "{body}");

    // tollgate's own local reply: no token → 401 from the filter, never seen by the provider.
    let before = mock.requests().len();
    let refused = request(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .unwrap();
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert!(refused.header("www-authenticate").is_some());
    assert_eq!(refused.json().unwrap()["error"]["code"], "missing");
    assert_security_headers("tollgate 401", &refused.headers);
    assert_eq!(mock.requests().len(), before, "the 401 came from tollgate");
}
