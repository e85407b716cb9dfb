//! Request guardrails on a real Envoy 1.40: each refusal reaches the client as an OpenAI-shaped
//! JSON error with the request id, is counted by reason, and the provider receives nothing.

use tollgate_e2e::mock::client::request;
use tollgate_e2e::mock::{MockHandle, MockOptions, MockProvider};
use tollgate_e2e::{template, Envoy, Vars};

const CONFIG: &str = r#"{
  "guardrails": {
    "defaults": { "max_messages": 3, "max_message_chars": 20 },
    "routes": [ { "path_prefix": "/v1/embeddings", "max_request_bytes": 64 } ]
  }
}"#;

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
fn every_guardrail_refusal_reaches_the_client_openai_shaped_and_nothing_reaches_the_provider() {
    let (mock, envoy) = start(CONFIG);
    let long = "x".repeat(21);
    let too_long = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"text","text":"{long}"}}]}}]}}"#
    );
    let four = r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"role":"user","content":"c"},{"role":"user","content":"d"}]}"#;
    let big_embedding = format!(r#"{{"model":"m","input":"{}"}}"#, "y".repeat(80));
    let json = "application/json";
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "/v1/chat/completions",
            "text/plain",
            CHAT.into(),
            415,
            "unsupported_content_type",
        ),
        (
            "/v1/chat/completions",
            json,
            r#"{"messages":[{"role":"user","content":"hi"}]}"#.into(),
            400,
            "missing_field",
        ),
        (
            "/v1/chat/completions",
            json,
            r#"{"model":"m"}"#.into(),
            400,
            "missing_field",
        ),
        (
            "/v1/chat/completions",
            json,
            r#"{"model":"m","messages":[]}"#.into(),
            400,
            "empty_messages",
        ),
        (
            "/v1/chat/completions",
            json,
            "{not json".into(),
            400,
            "invalid_json",
        ),
        (
            "/v1/chat/completions",
            json,
            too_long,
            400,
            "message_too_long",
        ),
        (
            "/v1/chat/completions",
            json,
            four.into(),
            400,
            "too_many_messages",
        ),
        (
            "/v1/messages",
            json,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#.into(),
            400,
            "missing_field",
        ),
        (
            "/v1/embeddings",
            json,
            r#"{"model":"m","input":[]}"#.into(),
            400,
            "empty_messages",
        ),
        (
            "/v1/embeddings",
            json,
            big_embedding,
            413,
            "request_too_large",
        ),
    ];
    for (i, (path, ct, body, status, code)) in cases.iter().enumerate() {
        let rid = format!("rid-e2e-guard-{i}");
        let resp = request(
            envoy.port,
            "POST",
            path,
            &[("content-type", ct), ("x-request-id", &rid)],
            body.as_bytes(),
        )
        .expect("request through envoy");
        let text = String::from_utf8_lossy(&resp.body).into_owned();
        assert_eq!(resp.status, *status, "{code}: {text}");
        assert_eq!(
            header(&resp.headers, "x-request-id"),
            Some(rid.as_str()),
            "{code}"
        );
        assert_eq!(
            header(&resp.headers, "content-type"),
            Some("application/json"),
            "{code}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON error body");
        assert_eq!(v["error"]["code"], *code, "{text}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{text}");
        assert_eq!(v["error"]["request_id"], rid.as_str(), "{text}");
        assert!(
            mock.requests().is_empty(),
            "{code}: the provider received a refused request"
        );
    }
    let stats = envoy.admin("/stats?filter=guardrail");
    for (code, n) in [
        ("unsupported_content_type", 1),
        ("missing_field", 3),
        ("empty_messages", 2),
        ("invalid_json", 1),
        ("message_too_long", 1),
        ("too_many_messages", 1),
        ("request_too_large", 1),
    ] {
        let line = format!("reason=.={code};.;tollgate_guardrail_rejections_total: {n}");
        assert!(stats.contains(&line), "{line} missing in:\n{stats}");
    }

    // A valid request still goes through.
    let resp = request(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        CHAT.as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(mock.requests().len(), 1);
}
