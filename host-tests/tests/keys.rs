//! Host tests for virtual API keys on the real module: a valid key passes and is stripped, an
//! unknown or one-character-off key gets the OpenAI-shaped 401 with the request id, a model
//! outside the key's list gets 403, and a remote key set is fetched through the emulator's HTTP
//! callouts (a request held for the first set, then resumed).

use serde_json::json;
use sha2::{Digest, Sha256};
use tollgate_host_tests::{Action, Vm};

const CHAT: &[u8] = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

/// A well-formed key: `tg-` and 43 base64url characters (fixed, for reproducible tests).
fn key(c: char) -> String {
    format!("tg-{}", std::iter::repeat_n(c, 43).collect::<String>())
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn entry(id: &str, k: &str, models: Option<&[&str]>) -> serde_json::Value {
    let mut e = json!({"id": id, "sha256": sha256_hex(k), "owner": format!("{id}-owner"),
        "team": "search"});
    if let Some(m) = models {
        e["models"] = json!(m);
    }
    e
}

fn configured(config: serde_json::Value) -> Vm {
    let mut vm = Vm::load().expect("module loads");
    assert!(
        vm.configure(&config.to_string()).expect("configure runs"),
        "config refused: {:?}",
        vm.logs()
    );
    vm
}

fn chat_headers<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "localhost"),
        ("content-type", "application/json"),
    ];
    h.extend_from_slice(extra);
    h
}

#[test]
fn a_valid_key_passes_and_leaves_without_its_header() {
    let k = key('A');
    let mut vm = configured(json!({"keys": {"inline": [entry("app", &k, None)]}}));
    let ctx = vm.new_http();
    let bearer = format!("Bearer {k}");
    let action = vm
        .request_headers(ctx, &chat_headers(&[("authorization", &bearer)]), false)
        .unwrap();
    assert_eq!(action, Action::Pause, "held for the body");
    assert_eq!(vm.request_body(ctx, CHAT, true).unwrap(), Action::Continue);
    assert!(vm.local_reply(ctx).is_none());
    assert_eq!(vm.request_header(ctx, "authorization"), None);
    vm.finish(ctx).unwrap();
    assert_eq!(
        vm.property(ctx, "tollgate_key_id").as_deref(),
        Some(&b"app"[..])
    );
}

#[test]
fn unknown_and_one_character_off_keys_get_401_with_the_request_id() {
    let k = key('A');
    let mut vm = configured(json!({"keys": {"inline": [entry("app", &k, None)]}}));
    let mut off = k.clone();
    off.replace_range(20..21, "B");
    for bad in [key('Z'), off] {
        let ctx = vm.new_http();
        let action = vm
            .request_headers(ctx, &chat_headers(&[("x-api-key", &bad)]), false)
            .unwrap();
        assert_eq!(action, Action::Pause);
        let reply = vm.local_reply(ctx).expect("a local reply").clone();
        assert_eq!(reply.status, 401);
        let body = reply.json();
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert_eq!(
            body["error"]["request_id"].as_str(),
            reply.header("x-request-id")
        );
        assert!(!String::from_utf8_lossy(&reply.body).contains(&bad[3..]));
        vm.finish(ctx).unwrap();
    }
    assert!(
        vm.logs().iter().all(|l| !l.contains(&key('Z')[3..])),
        "the key reached the log"
    );
}

#[test]
fn a_model_outside_the_key_list_gets_403() {
    let k = key('A');
    let mut vm = configured(json!({"keys": {"inline": [entry("app", &k, Some(&["claude-*"]))]}}));
    let ctx = vm.new_http();
    vm.request_headers(ctx, &chat_headers(&[("x-api-key", &k)]), false)
        .unwrap();
    vm.request_body(ctx, CHAT, true).unwrap();
    let reply = vm.local_reply(ctx).expect("a local reply");
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json()["error"]["code"], "model_not_allowed");
}

#[test]
fn a_remote_key_set_is_fetched_and_a_waiting_request_resumes() {
    let k = key('A');
    let mut vm = configured(json!({"keys": {"remote": {"cluster": "keys",
        "uri": "http://keys.local/tollgate/keys.json", "initial_wait_ms": 3000}}}));
    let ctx = vm.new_http();
    let action = vm
        .request_headers(ctx, &chat_headers(&[("x-api-key", &k)]), false)
        .unwrap();
    assert_eq!(action, Action::Pause, "waiting for the key set");
    let call = vm
        .state()
        .http_calls
        .last()
        .expect("a key set fetch")
        .clone();
    assert_eq!(call.upstream, "keys");
    assert!(call
        .headers
        .iter()
        .any(|(n, v)| n == ":path" && v == "/tollgate/keys.json"));
    vm.request_body(ctx, CHAT, true).unwrap();
    let doc = json!({"keys": [entry("app", &k, None)]}).to_string();
    vm.http_call_response(call.token, &[(":status", "200")], doc.as_bytes())
        .unwrap();
    assert!(vm.local_reply(ctx).is_none(), "{:?}", vm.local_reply(ctx));
    assert_eq!(vm.stream(ctx).map(|s| s.resumed_request), Some(1));
    assert_eq!(vm.request_header(ctx, "x-api-key"), None);
    // The root's tick refreshes the set later; a body that is not a key set keeps the last one.
    vm.advance_ms(601_000);
    vm.tick().unwrap();
    let refresh = vm.state().http_calls.last().unwrap().clone();
    assert_ne!(refresh.token, call.token, "a refresh was dispatched");
    vm.http_call_response(refresh.token, &[(":status", "200")], b"<html>")
        .unwrap();
    assert!(vm
        .logs()
        .iter()
        .any(|l| l.contains("keeping the last good set")));
    let ctx = vm.new_http();
    vm.request_headers(ctx, &chat_headers(&[("x-api-key", &k)]), false)
        .unwrap();
    assert_eq!(vm.request_body(ctx, CHAT, true).unwrap(), Action::Continue);
}
