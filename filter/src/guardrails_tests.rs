//! Tests of the request guardrails: valid requests of every API pass, required fields, content
//! types, message limits, route matching, configuration refusals and the refusal reply.

use super::*;
use crate::usage::{classify_path, RequestInfo};

fn guardrails(json: &str) -> Result<Guardrails, ConfigError> {
    let raw: RawGuardrails = serde_json::from_str(json).unwrap();
    compile(&raw, 1 << 20, "guardrails")
}

/// Checks a full request the way the host does: headers view, then the body shape.
fn check(g: &Guardrails, path: &str, content_type: Option<&str>, body: &str) -> Result<(), Reason> {
    let api = classify_path(path);
    let info = api.map(|k| RequestInfo::from_request(k, path, body.as_bytes()));
    let view = RequestView {
        path,
        api,
        content_type,
        has_body: !body.is_empty(),
        body: info.as_ref().map(|i| &i.shape),
    };
    g.check(&view).map_err(|v| v.reason)
}

const JSON: Option<&str> = Some("application/json");

#[test]
fn valid_requests_of_every_api_pass() {
    let g = guardrails("{}").unwrap();
    let ok = [
        (
            "/v1/chat/completions",
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        ),
        (
            "/v1/messages",
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
        ),
        ("/v1/embeddings", r#"{"model":"m","input":"hi"}"#),
        ("/v1/responses", r#"{"model":"m","input":"hi"}"#),
        (
            "/v1beta/models/gemini-2.0-flash:generateContent",
            r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#,
        ),
        (
            "/api/chat",
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        ),
        ("/api/generate", r#"{"model":"m","prompt":"hi"}"#),
    ];
    for (path, body) in ok {
        assert_eq!(check(&g, path, JSON, body), Ok(()), "{path}");
    }
}

#[test]
fn each_api_requires_its_fields() {
    let g = guardrails("{}").unwrap();
    let cases = [
        (
            "/v1/chat/completions",
            r#"{"messages":[{"role":"user","content":"hi"}]}"#,
            Reason::MissingField,
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"","messages":[{"role":"user","content":"hi"}]}"#,
            Reason::MissingField,
        ),
        (
            "/v1/chat/completions",
            r#"{"model":7,"messages":[{"role":"user","content":"hi"}]}"#,
            Reason::MissingField,
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"m"}"#,
            Reason::MissingField,
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"m","messages":null}"#,
            Reason::MissingField,
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"m","messages":[]}"#,
            Reason::EmptyMessages,
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"m","messages":"hi"}"#,
            Reason::InvalidMessages,
        ),
        (
            "/v1/messages",
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
            Reason::MissingField,
        ),
        ("/v1/embeddings", r#"{"model":"m"}"#, Reason::MissingField),
        (
            "/v1/embeddings",
            r#"{"model":"m","input":[]}"#,
            Reason::EmptyMessages,
        ),
        (
            "/v1beta/models/g:generateContent",
            r#"{"contents":[]}"#,
            Reason::EmptyMessages,
        ),
        ("/v1/chat/completions", "not json", Reason::InvalidJson),
        ("/v1/chat/completions", "[1,2]", Reason::InvalidJson),
    ];
    for (path, body, want) in cases {
        assert_eq!(check(&g, path, JSON, body), Err(want), "{path} {body}");
    }
}

#[test]
fn empty_body_on_an_llm_path_is_invalid_json() {
    let g = guardrails("{}").unwrap();
    assert_eq!(
        check(&g, "/v1/chat/completions", None, ""),
        Err(Reason::InvalidJson)
    );
}

#[test]
fn content_type_is_required_on_llm_paths_only_by_default() {
    let g = guardrails("{}").unwrap();
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        assert_eq!(
            check(&g, "/v1/chat/completions", ct, body),
            Err(Reason::UnsupportedContentType),
            "{ct:?}"
        );
    }
    for ct in [
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.api+json",
    ] {
        assert_eq!(
            check(&g, "/v1/chat/completions", Some(ct), body),
            Ok(()),
            "{ct}"
        );
    }
    assert_eq!(check(&g, "/upload", Some("text/plain"), "abc"), Ok(()));
}

#[test]
fn a_route_can_require_json_on_any_path_or_switch_it_off() {
    let g = guardrails(
        r#"{"routes":[{"path_prefix":"/internal/","require_json_content_type":true},
                      {"path_exact":"/v1/chat/completions","require_json_content_type":false}]}"#,
    )
    .unwrap();
    assert_eq!(
        check(&g, "/internal/x?y=1", Some("text/plain"), "abc"),
        Err(Reason::UnsupportedContentType)
    );
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    assert_eq!(check(&g, "/v1/chat/completions", None, body), Ok(()));
}

#[test]
fn message_count_and_length_limits_count_text_parts() {
    let g = guardrails(
        r#"{"defaults":{"max_messages":2,"max_message_chars":5},
            "routes":[{"path_prefix":"/big/","max_messages":10,"max_message_chars":100}]}"#,
    )
    .unwrap();
    let three = r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"role":"user","content":"c"}]}"#;
    assert_eq!(
        check(&g, "/v1/chat/completions", JSON, three),
        Err(Reason::TooManyMessages)
    );
    assert_eq!(check(&g, "/big/v1/chat/completions", JSON, three), Ok(()));
    let parts = r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"abc"},{"type":"text","text":"def"}]}]}"#;
    assert_eq!(
        check(&g, "/v1/chat/completions", JSON, parts),
        Err(Reason::MessageTooLong)
    );
    let five = r#"{"model":"m","messages":[{"role":"user","content":"héllo"}]}"#;
    assert_eq!(check(&g, "/v1/chat/completions", JSON, five), Ok(()));
    let gemini = r#"{"contents":[{"parts":[{"text":"abcdef"}]}]}"#;
    assert_eq!(
        check(&g, "/v1beta/models/g:generateContent", JSON, gemini),
        Err(Reason::MessageTooLong)
    );
}

#[test]
fn require_fields_off_keeps_the_message_limits() {
    let g = guardrails(r#"{"defaults":{"require_fields":false,"max_messages":1}}"#).unwrap();
    assert_eq!(
        check(&g, "/v1/chat/completions", JSON, r#"{"messages":[]}"#),
        Ok(())
    );
    assert_eq!(
        check(&g, "/v1/chat/completions", JSON, r#"{"messages":[{},{}]}"#),
        Err(Reason::TooManyMessages)
    );
}

#[test]
fn first_matching_route_wins_and_inherits_defaults() {
    let g = guardrails(
        r#"{"defaults":{"max_request_bytes":100,"max_messages":3},
            "routes":[{"path_exact":"/v1/embeddings","max_request_bytes":10},
                      {"path_prefix":"/v1/","max_request_bytes":50},
                      {"path_prefix":"/v1/embeddings","max_request_bytes":5}]}"#,
    )
    .unwrap();
    assert_eq!(g.limits_for("/v1/embeddings").max_request_bytes, 10);
    assert_eq!(g.limits_for("/v1/embeddings?x=1").max_request_bytes, 10);
    assert_eq!(g.limits_for("/v1/chat/completions").max_request_bytes, 50);
    assert_eq!(g.limits_for("/v1/chat/completions").max_messages, 3);
    assert_eq!(g.limits_for("/other").max_request_bytes, 100);
    let d = guardrails("{}").unwrap();
    assert_eq!(d.limits_for("/x").max_request_bytes, 1 << 20);
}

#[test]
fn bad_config_names_the_field() {
    let e = guardrails(r#"{"routes":[{"max_messages":1}]}"#).unwrap_err();
    assert_eq!(e.path, "guardrails.routes[0]");
    let e = guardrails(r#"{"routes":[{"path_prefix":"v1"}]}"#).unwrap_err();
    assert_eq!(e.path, "guardrails.routes[0].path_prefix");
    let e = guardrails(r#"{"routes":[{"path_prefix":"/a"},{"path_exact":"/b","max_messages":0}]}"#)
        .unwrap_err();
    assert_eq!(e.path, "guardrails.routes[1].max_messages");
    let e = guardrails(r#"{"defaults":{"max_message_chars":0}}"#).unwrap_err();
    assert_eq!(e.path, "guardrails.defaults.max_message_chars");
}

#[test]
fn violation_reply_is_openai_shaped_with_stable_codes() {
    let v = Violation::too_large(10);
    let r = v.reply();
    assert_eq!(r.status, 413);
    assert_eq!(r.code, "request_too_large");
    let body: serde_json::Value = serde_json::from_slice(&r.body("rid")).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["request_id"], "rid");
    assert_eq!(
        v.metric(),
        "reason=.=request_too_large;.;tollgate_guardrail_rejections_total"
    );
    assert_eq!(Reason::UnsupportedContentType.status(), 415);
}
