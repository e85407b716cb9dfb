//! The upstream stage: one Envoy retry attempt of a walked route, rewritten for the provider the
//! endpoint metadata names.

use super::*;
use crate::exchange::host::Map;
use crate::exchange::upstream::PROVIDER_METADATA;
use crate::failover::carry::Carry;

const ANTHROPIC_KEY: &str = "sk-ant-api03-TestAnthropicKeyAbCdEfGhIjKlMnOpQr-0123";

/// The listener stage's configuration: it publishes the catalog the upstream stage uses.
fn listener_config() -> String {
    format!(
        r#"{{"correlation":{{"request_id_header":"x-corr"}},"failover":{{"providers":[
            {{"name":"openai","kind":"openai","cluster":"openai"}},
            {{"name":"anthropic","kind":"anthropic","cluster":"anthropic","api_key":{{"value":"{ANTHROPIC_KEY}"}},
              "models":{{"gpt-4o-mini":"claude-sonnet-4"}}}}],
          "routes":[{{"model":"gpt-4o-mini","providers":["openai","anthropic"],"cluster":"llm"}}]}}}}"#
    )
}

/// A listener stage and an upstream stage configured in one VM (this thread); the listener
/// stage is returned so its catalog stays published.
fn stages(host: &mut FakeHost, upstream: &str) -> (Rc<Vm>, Rc<Vm>) {
    let listener = vm(host, &listener_config());
    (listener, vm(host, upstream))
}

#[test]
fn an_attempt_is_rewritten_for_its_provider_at_every_chunking() {
    let body = chat_body("gpt-4o-mini", false);
    for chunks in chunkings(&body) {
        let mut host = FakeHost::new();
        let (_listener, vm) = stages(&mut host, r#"{"stage":"upstream"}"#);
        host.properties
            .insert(PROVIDER_METADATA.join("."), b"anthropic".to_vec());
        let mut attempt = vm.attempt().expect("the upstream stage");
        // An earlier attempt (to openai) left its note and its rewrite behind.
        let mut carry = Carry::new("/v1/chat/completions");
        carry.push("openai", "500", 12);
        host.set_map(
            Map::Request,
            &[
                (":method", "POST"),
                (":path", "/v1/chat/completions"),
                ("authorization", "Bearer client-key"),
                ("x-corr", "rid-7"),
                ("x-tollgate-carry", &carry.encode()),
                ("content-length", &body.len().to_string()),
            ],
        );
        assert_eq!(attempt.on_request_headers(&mut host, false), Flow::Pause);
        assert_eq!(host.get(Map::Request, "authorization"), None);
        assert_eq!(host.get(Map::Request, "x-api-key"), Some(ANTHROPIC_KEY));
        assert_eq!(
            host.get(Map::Request, "x-tollgate-carry"),
            None,
            "never sent to a provider"
        );
        let mut buffered = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            buffered.extend_from_slice(chunk);
            host.set_body(Body::Request, &buffered);
            let last = i + 1 == chunks.len();
            let flow = attempt.on_request_body(&mut host, buffered.len(), last);
            assert_eq!(flow, if last { Flow::Continue } else { Flow::Pause });
        }
        assert_eq!(host.get(Map::Request, ":path"), Some("/v1/messages"));
        assert_eq!(
            host.get(Map::Request, "anthropic-version"),
            Some("2023-06-01")
        );
        let sent: serde_json::Value =
            serde_json::from_slice(&host.body(Body::Request, usize::MAX)).unwrap();
        assert_eq!(sent["model"], "claude-sonnet-4");
        assert_eq!(sent["system"], "be brief");
        let length = host
            .get(Map::Request, "content-length")
            .unwrap()
            .to_string();
        assert_eq!(
            length,
            host.body(Body::Request, usize::MAX).len().to_string()
        );
        // The answer: the provider is named to the listener and the carry has both attempts.
        host.set_map(Map::Response, &[(":status", "200")]);
        attempt.on_response_headers(&mut host);
        assert_eq!(
            host.get(Map::Response, "x-tollgate-provider"),
            Some("anthropic")
        );
        let carried = Carry::decode(host.get(Map::Response, "x-tollgate-carry").unwrap()).unwrap();
        assert_eq!(carried.notes.len(), 2);
        assert_eq!(carried.notes[1].provider, "anthropic");
        assert_eq!(carried.notes[1].result, "200");
    }
}

#[test]
fn an_attempt_that_gets_no_answer_tells_the_next_one() {
    let mut host = FakeHost::new();
    let (_listener, vm) = stages(&mut host, r#"{"stage":"upstream"}"#);
    host.properties
        .insert(PROVIDER_METADATA.join("."), b"openai".to_vec());
    let mut attempt = vm.attempt().unwrap();
    host.set_map(Map::Request, &[(":path", "/v1/chat/completions")]);
    attempt.on_request_headers(&mut host, true);
    attempt.on_done(&mut host);
    let carried = Carry::decode(host.get(Map::Request, "x-tollgate-carry").unwrap()).unwrap();
    assert_eq!(carried.notes[0].provider, "openai");
    assert_eq!(carried.notes[0].result, "no_response");
    assert_eq!(
        host.metric("provider=.=openai;.;reason=.=no_response;.;tollgate_failovers_total"),
        1
    );
}

#[test]
fn the_upstream_stage_configured_first_finds_the_catalog_at_its_first_attempt() {
    let mut host = FakeHost::new();
    // Envoy configures plugins in no guaranteed order: the upstream stage comes first here.
    let upstream = vm(
        &mut host,
        r#"{"stage":"upstream","failover_name":"egress"}"#,
    );
    let listener = vm(
        &mut host,
        &listener_config().replacen(r#""failover":{"#, r#""failover":{"name":"egress","#, 1),
    );
    host.properties
        .insert(PROVIDER_METADATA.join("."), b"anthropic".to_vec());
    host.set_map(
        Map::Request,
        &[
            (":method", "GET"),
            (":path", "/v1/models"),
            ("x-corr", "rid-1"),
        ],
    );
    let mut attempt = upstream.attempt().unwrap();
    assert_eq!(attempt.on_request_headers(&mut host, true), Flow::Continue);
    assert_eq!(host.get(Map::Request, "x-api-key"), Some(ANTHROPIC_KEY));
    drop(listener);
}

#[test]
fn without_a_catalog_the_attempt_answers_a_json_error_with_the_correlation_id() {
    for (listener, upstream, code) in [
        (None, r#"{"stage":"upstream"}"#, "failover_catalog_missing"),
        (
            Some(listener_config()),
            r#"{"stage":"upstream","failover_name":"egress"}"#,
            "failover_catalog_not_found",
        ),
    ] {
        let mut host = FakeHost::new();
        let _listener = listener.map(|c| vm(&mut host, &c));
        let vm = vm(&mut host, upstream);
        host.properties
            .insert(PROVIDER_METADATA.join("."), b"openai".to_vec());
        host.set_map(
            Map::Request,
            &[
                (":path", "/v1/chat/completions"),
                ("x-request-id", "rid-9"),
                ("authorization", "Bearer client-key"),
            ],
        );
        let mut attempt = vm.attempt().unwrap();
        assert_eq!(attempt.on_request_headers(&mut host, false), Flow::Replied);
        assert_eq!(host.replies.len(), 1, "one local reply");
        let reply = host.replies[0].clone();
        assert_eq!(reply.status, 500);
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["error"]["code"], code);
        assert_eq!(body["error"]["request_id"], "rid-9");
        assert_eq!(reply.header("x-tollgate-stage-error"), Some(code));
        assert_eq!(reply.header("x-request-id"), Some("rid-9"));
        assert!(
            host.logs
                .borrow()
                .iter()
                .any(|(level, l)| *level == log::Level::Error
                    && l.contains("[rid-9] upstream stage without a catalog")),
            "the cause is logged"
        );
        // Nothing of the attempt reaches a provider and nothing is counted for one.
        attempt.on_done(&mut host);
        assert_eq!(host.get(Map::Request, "x-tollgate-carry"), None);
    }
}
