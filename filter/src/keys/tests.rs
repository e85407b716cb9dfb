//! `authenticate` and the refusals, over inline and remote key sets.

use super::*;
use crate::budget::WindowState;
use crate::keys::secret::encode;
use crate::refresh::Fetcher;
use crate::shared_store::MemoryStore;
use crate::status::KeyStatus;

const NOW: u64 = 1_800_000_000;

fn key(seed: u8) -> String {
    encode(&[seed; 32])
}

fn settings(entries: serde_json::Value) -> KeySettings {
    let raw: RawKeys = serde_json::from_value(serde_json::json!({ "inline": entries })).unwrap();
    compile(raw, "keys").unwrap()
}

fn entry(id: &str, k: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut e = serde_json::json!({"id": id, "sha256": KeyDigest::of(k).to_hex(),
        "owner": format!("{id}-owner"), "team": "search"});
    if let (Some(e), Some(x)) = (e.as_object_mut(), extra.as_object()) {
        for (k, v) in x {
            e.insert(k.clone(), v.clone());
        }
    }
    e
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn decide(s: &KeySettings, h: &[(&str, &str)]) -> KeyOutcome {
    authenticate(s, &headers(h), &inline_availability(s).unwrap(), NOW)
}

fn denied(outcome: KeyOutcome) -> KeyDenial {
    match outcome {
        KeyOutcome::Deny(d) => d,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn allowed(outcome: KeyOutcome) -> KeyCaller {
    match outcome {
        KeyOutcome::Allow(c) => c,
        other => panic!("expected an allow, got {other:?}"),
    }
}

#[test]
fn each_sdk_header_carries_a_key_and_the_key_is_stripped() {
    let k = key(1);
    let s = settings(serde_json::json!([entry("app", &k, serde_json::json!({}))]));
    let bearer = format!("Bearer {k}");
    for (name, value) in [
        ("authorization", bearer.as_str()),
        ("Authorization", &format!("bearer  {k} ")),
        ("x-api-key", k.as_str()),
        ("x-goog-api-key", k.as_str()),
    ] {
        let c = allowed(decide(&s, &[(name, value), ("content-type", "x")]));
        assert_eq!(c.entry.id, "app");
        assert_eq!(c.user(), "app-owner");
        assert_eq!(
            c.edits,
            vec![RequestEdit::RemoveHeader(name.to_ascii_lowercase())]
        );
    }
    // The same key in two headers (some clients send both) is one credential; both are stripped.
    let c = allowed(decide(&s, &[("authorization", &bearer), ("x-api-key", &k)]));
    assert_eq!(c.edits.len(), 2);
}

#[test]
fn an_unknown_key_is_refused_with_401_and_never_echoed() {
    let k = key(1);
    let s = settings(serde_json::json!([entry("app", &k, serde_json::json!({}))]));
    let other = key(2);
    let d = denied(decide(&s, &[("x-api-key", &other)]));
    assert_eq!(d.reply.status, 401);
    assert_eq!(d.reason, "invalid_api_key");
    assert!(!d.unknown_remote, "inline keys: nothing to refetch");
    let body = String::from_utf8(d.reply.body("rid-7")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");
    assert_eq!(v["error"]["code"], "invalid_api_key");
    assert_eq!(v["error"]["request_id"], "rid-7");
    assert!(!body.contains(&other[3..]), "{body}");
    assert!(d
        .reply
        .headers
        .contains(&("www-authenticate".into(), CHALLENGE.into())));
    // The log shows at most the last four characters.
    assert_eq!(
        d.log_line(),
        format!("API key refused (invalid_api_key): tg-…{}", &other[42..])
    );
}

#[test]
fn a_key_one_character_off_is_refused_everywhere_in_the_key() {
    let k = key(1);
    let s = settings(serde_json::json!([entry("app", &k, serde_json::json!({}))]));
    for pos in 0..k.len() {
        let mut bytes = k.clone().into_bytes();
        bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
        let off = String::from_utf8(bytes).unwrap();
        let outcome = decide(&s, &[("x-api-key", &off)]);
        if pos < 3 {
            // The prefix changed: not presented as a tollgate key (left to JWT/required).
            assert_eq!(outcome, KeyOutcome::Absent, "pos {pos}");
        } else {
            assert_eq!(denied(outcome).reply.status, 401, "pos {pos}");
        }
    }
    // Truncated, extended, or a character outside the alphabet: refused before hashing.
    for bad in [&k[..45], &format!("{k}x"), &k.replacen('A', "+", 1)] {
        assert_eq!(
            denied(decide(&s, &[("x-api-key", bad)])).reason,
            "invalid_api_key"
        );
    }
}

#[test]
fn revoked_and_expired_keys_are_refused_with_their_reason() {
    let (a, b, c) = (key(1), key(2), key(3));
    let s = settings(serde_json::json!([
        entry("revoked", &a, serde_json::json!({"revoked": true})),
        entry("expired", &b, serde_json::json!({"expires_at": NOW})),
        entry("later", &c, serde_json::json!({"expires_at": NOW + 1})),
    ]));
    let d = denied(decide(&s, &[("x-api-key", &a)]));
    assert_eq!((d.reply.status, d.reason), (401, "key_revoked"));
    let d = denied(decide(&s, &[("x-api-key", &b)]));
    assert_eq!((d.reply.status, d.reason), (401, "key_expired"));
    allowed(decide(&s, &[("x-api-key", &c)]));
}

#[test]
fn two_different_keys_are_refused() {
    let (a, b) = (key(1), key(2));
    let s = settings(serde_json::json!([
        entry("a", &a, serde_json::json!({})),
        entry("b", &b, serde_json::json!({}))
    ]));
    let d = denied(decide(
        &s,
        &[("authorization", &format!("Bearer {a}")), ("x-api-key", &b)],
    ));
    assert_eq!(d.reason, "multiple_api_keys");
}

#[test]
fn values_without_the_prefix_are_not_keys() {
    let s = settings(serde_json::json!([entry(
        "a",
        &key(1),
        serde_json::json!({})
    )]));
    for h in [
        ("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"),
        ("authorization", "Basic dGc6eA=="),
        ("authorization", &format!("Basic {}", key(1))),
        ("x-api-key", "sk-ant-passthrough"),
        ("x-other", &key(1)),
    ] {
        assert_eq!(decide(&s, &[h]), KeyOutcome::Absent, "{h:?}");
    }
    let r = missing_reply(&s);
    assert_eq!(r.status, 401);
    assert!(r.message.contains("x-api-key"), "{}", r.message);
}

#[test]
fn a_model_outside_the_list_gets_403() {
    let k = key(1);
    let s = settings(serde_json::json!([entry(
        "a",
        &k,
        serde_json::json!({"models": ["gpt-4o-mini", "claude-*"]})
    )]));
    let c = allowed(decide(&s, &[("x-api-key", &k)]));
    assert!(c.check_model("gpt-4o-mini").is_ok());
    assert!(c.check_model("claude-3-5-haiku").is_ok());
    let r = c.check_model("gpt-4o").unwrap_err();
    assert_eq!(r.status, 403);
    assert_eq!(r.kind, ErrorKind::Permission);
    assert_eq!(r.code, "model_not_allowed");
}

#[test]
fn a_remote_set_waits_then_refuses_then_serves() {
    let k = key(1);
    let raw: RawKeys = serde_json::from_value(serde_json::json!({
        "remote": {"cluster": "keys", "uri": "http://keys/k.json", "initial_wait_ms": 500}
    }))
    .unwrap();
    let s = compile(raw, "keys").unwrap();
    assert!(inline_availability(&s).is_none());
    let KeySource::Remote(source) = &s.source else {
        panic!("remote")
    };
    let mut f = Fetcher::<ApiKeySet>::new(source.clone(), 0);
    let h = headers(&[("x-api-key", &k)]);
    assert_eq!(
        authenticate(&s, &h, &f.availability(100), NOW),
        KeyOutcome::Wait { until_ms: 500 }
    );
    let d = denied(authenticate(&s, &h, &f.availability(500), NOW));
    assert_eq!((d.reply.status, d.reason), (503, "key_set_unavailable"));
    let doc = serde_json::json!({"keys": [entry("a", &key(2), serde_json::json!({}))]});
    f.on_fetch_result(600, Ok(&serde_json::to_vec(&doc).unwrap()));
    let d = denied(authenticate(&s, &h, &f.availability(700), NOW));
    assert!(
        d.unknown_remote,
        "an unknown key may trigger an early refetch"
    );
    let doc = serde_json::json!({"keys": [entry("a", &k, serde_json::json!({}))]});
    f.on_fetch_result(800, Ok(&serde_json::to_vec(&doc).unwrap()));
    allowed(authenticate(&s, &h, &f.availability(900), NOW));
}

#[test]
fn status_shows_the_key_and_its_budgets_but_not_the_key() {
    let k = key(1);
    let s = settings(serde_json::json!([entry(
        "app",
        &k,
        serde_json::json!({"budgets": [{"period": "minute", "max_tokens": 100}],
            "labels": {"env": "ci"}, "models": ["gpt-*"]})
    )]));
    let c = allowed(decide(&s, &[("x-api-key", &k)]));
    let budgets = c.entry.budgets.as_ref().unwrap();
    let store = MemoryStore::default();
    let a = budgets.admit(&store, &c.entry.id, NOW, 30).unwrap();
    budgets.settle(&store, &c.entry.id, NOW, a.reserved, 40);
    let snap = budgets.snapshot(&store, &c.entry.id, NOW);
    let status = KeyStatus::new(&c.entry, &snap, NOW);
    let v = serde_json::to_value(&status).unwrap();
    assert_eq!(v["id"], "app");
    assert_eq!(v["team"], "search");
    assert_eq!(v["models"], serde_json::json!(["gpt-*"]));
    assert_eq!(v["labels"]["env"], "ci");
    assert_eq!(v["budget"][0]["used_tokens"], 40);
    assert_eq!(v["budget"][0]["remaining_tokens"], 60);
    let text = v.to_string();
    assert!(!text.contains(&k[3..]) && !text.contains(&KeyDigest::of(&k).to_hex()));
    // Without budgets: no windows.
    let plain = settings(serde_json::json!([entry("p", &k, serde_json::json!({}))]));
    let c = allowed(decide(&plain, &[("x-api-key", &k)]));
    let v = serde_json::to_value(KeyStatus::new(
        &c.entry,
        &[(60, WindowState::default())],
        NOW,
    ))
    .unwrap();
    assert_eq!(v["budget"], serde_json::Value::Null);
}

#[test]
fn access_log_fields_name_the_key_id_and_team() {
    let k = key(1);
    let s = settings(serde_json::json!([entry("app", &k, serde_json::json!({}))]));
    let c = allowed(decide(&s, &[("x-api-key", &k)]));
    assert_eq!(
        c.access_log_fields(),
        vec![
            ("tollgate_key_id", "app".to_string()),
            ("tollgate_team", "search".to_string())
        ]
    );
    let mut teams = TeamLabels::new(1);
    assert_eq!(teams.label("search"), "search");
    assert_eq!(teams.label("ads"), "other");
}
