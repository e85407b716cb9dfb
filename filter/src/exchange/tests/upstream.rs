//! The upstream stage: one Envoy retry attempt of a walked route, rewritten for the provider the
//! endpoint metadata names.

use super::*;
use crate::exchange::host::Map;
use crate::exchange::upstream::PROVIDER_METADATA;
use crate::failover::carry::Carry;

const ANTHROPIC_KEY: &str = "sk-ant-api03-TestAnthropicKeyAbCdEfGhIjKlMnOpQr-0123";

fn config() -> String {
    format!(
        r#"{{"stage":"upstream","failover":{{"providers":[
            {{"name":"openai","kind":"openai","cluster":"openai"}},
            {{"name":"anthropic","kind":"anthropic","cluster":"anthropic","api_key":{{"value":"{ANTHROPIC_KEY}"}},
              "models":{{"gpt-4o-mini":"claude-sonnet-4"}}}}],
          "routes":[{{"model":"gpt-4o-mini","providers":["openai","anthropic"],"cluster":"llm"}}]}}}}"#
    )
}

#[test]
fn an_attempt_is_rewritten_for_its_provider_at_every_chunking() {
    let body = chat_body("gpt-4o-mini", false);
    for chunks in chunkings(&body) {
        let mut host = FakeHost::new();
        let vm = vm(&mut host, &config());
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
                ("x-request-id", "rid-7"),
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
    let vm = vm(&mut host, &config());
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
        host.metric("tollgate_failovers_total.provider.openai.reason.no_response"),
        1
    );
}
