//! Whole requests with virtual API keys against the fake host: the key step before JWT, every
//! refusal, the key stripped before the request leaves, the model check, the key's own budget,
//! the remote key set (waiting, refetching, rotation) and what the access log, the metrics and
//! the status endpoint show.

use std::rc::Rc;

use jwt_simple::prelude::*;
use serde_json::{json, Value};

use crate::exchange::fake::FakeHost;
use crate::exchange::{Body, Flow, Map, Vm};
use crate::keys::secret::{encode, KeyDigest};

const CHAT: &str =
    r#"{"model":"gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
const ANSWER: &str = r#"{"id":"c1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#;
const HS_SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

fn key(seed: u8) -> String {
    encode(&[seed; 32])
}

fn entry(id: &str, k: &str, extra: Value) -> Value {
    let mut e = json!({"id": id, "sha256": KeyDigest::of(k).to_hex(),
        "owner": format!("{id}-owner"), "team": "search"});
    if let (Some(e), Some(x)) = (e.as_object_mut(), extra.as_object()) {
        for (k, v) in x {
            e.insert(k.clone(), v.clone());
        }
    }
    e
}

fn vm(host: &mut FakeHost, config: Value) -> Rc<Vm> {
    Rc::new(Vm::configure(host, config.to_string().as_bytes()).expect("valid config"))
}

/// What one request did.
struct Done {
    /// The status the client got (a local reply's, or the provider's 200).
    status: u32,
    /// The local reply's body, when there was one.
    reply: Value,
}

/// Runs one chat request with `headers` through a fresh exchange of `vm`, answering 200 when it
/// reaches the provider; returns what the client got.
fn run(host: &mut FakeHost, vm: &Rc<Vm>, headers: &[(&str, &str)], body: &str) -> Done {
    let replies_before = host.replies.len();
    let mut ex = vm.exchange();
    let mut request = vec![
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        ("content-type", "application/json"),
    ];
    request.extend_from_slice(headers);
    host.set_map(Map::Request, &request);
    let mut flow = ex.on_request_headers(host, false);
    if flow == Flow::Pause {
        host.set_body(Body::Request, body.as_bytes());
        flow = ex.on_request_body(host, body.len(), true);
    }
    let status = if flow == Flow::Continue {
        host.set_map(
            Map::Response,
            &[(":status", "200"), ("content-type", "application/json")],
        );
        ex.on_response_headers(host, false);
        host.set_body(Body::Response, ANSWER.as_bytes());
        ex.on_response_body(host, ANSWER.len(), true);
        200
    } else {
        host.replies.last().map_or(0, |r| r.status)
    };
    ex.on_log(host);
    let reply = if host.replies.len() > replies_before {
        host.replies.last().map(|r| r.json()).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    Done { status, reply }
}

fn code(done: &Done) -> &str {
    done.reply["error"]["code"].as_str().unwrap_or("")
}

#[test]
fn a_valid_key_passes_and_is_stripped_before_the_request_leaves() {
    let mut host = FakeHost::new();
    let k = key(1);
    let vm = vm(
        &mut host,
        json!({"keys": {"inline": [entry("app", &k, json!({}))]}}),
    );
    let bearer = format!("Bearer {k}");
    for header in [
        ("authorization", bearer.as_str()),
        ("x-api-key", &k),
        ("x-goog-api-key", &k),
    ] {
        let done = run(&mut host, &vm, &[header], CHAT);
        assert_eq!(done.status, 200, "{header:?}: {}", done.reply);
        assert_eq!(
            host.get(Map::Request, header.0),
            None,
            "{} left with the key",
            header.0
        );
        assert!(
            host.maps[&Map::Request]
                .iter()
                .all(|(_, v)| !v.contains(&k[3..])),
            "the key left in some header"
        );
        assert_eq!(
            host.property_text("tollgate_key_id").as_deref(),
            Some("app")
        );
        assert_eq!(
            host.property_text("tollgate_team").as_deref(),
            Some("search")
        );
        assert_eq!(
            host.property_text("tollgate_user").as_deref(),
            Some("app-owner")
        );
    }
    assert_eq!(host.metric("team=.=search;.;tollgate_key_allowed_total"), 3);
    let team_requests: u64 = host
        .metric_defs
        .iter()
        .filter(|(name, _)| {
            name.ends_with("tollgate_llm_requests_total") && name.contains("team=.=search;.;")
        })
        .filter_map(|(_, (_, id))| host.metric_values.get(id))
        .sum();
    assert_eq!(team_requests, 3);
    assert_eq!(
        host.metric(
            "provider=.=openai;.;model=.=gpt-4o-mini;.;team=.=search;.;token_type=.=output;.;tollgate_tokens_total"
        ),
        21
    );
}

#[test]
fn unknown_and_one_character_off_keys_get_401_with_the_request_id_never_the_key() {
    let mut host = FakeHost::new();
    let k = key(1);
    let vm = vm(
        &mut host,
        json!({"keys": {"inline": [entry("app", &k, json!({}))]}}),
    );
    let mut off = k.clone().into_bytes();
    off[30] = if off[30] == b'z' { b'y' } else { b'z' };
    let off = String::from_utf8(off).unwrap();
    for bad in [key(2), off] {
        let done = run(&mut host, &vm, &[("x-api-key", &bad)], CHAT);
        assert_eq!((done.status, code(&done)), (401, "invalid_api_key"));
        let reply = host.replies.last().unwrap();
        assert_eq!(
            done.reply["error"]["request_id"].as_str(),
            reply.header("x-request-id")
        );
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Bearer realm=\"tollgate\"")
        );
        assert!(!String::from_utf8_lossy(&reply.body).contains(&bad[3..]));
        assert!(
            host.logged(&format!("tg-…{}", &bad[42..])),
            "the log shows the last four"
        );
        assert!(!host.logged(&bad[3..42]), "the log shows no more");
    }
    assert_eq!(
        host.metric("reason=.=invalid_api_key;.;tollgate_key_denied_total"),
        2
    );
    assert!(host.calls.is_empty(), "inline keys: nothing to fetch");
}

#[test]
fn revoked_expired_missing_and_model_refusals() {
    let mut host = FakeHost::new();
    let (a, b, c) = (key(1), key(2), key(3));
    let now_s = host.clock_ns.get() / 1_000_000_000;
    let vm = vm(
        &mut host,
        json!({"keys": {"inline": [
            entry("limited", &a, json!({"models": ["gpt-4o-mini", "claude-*"]})),
            entry("revoked", &b, json!({"revoked": true})),
            entry("expired", &c, json!({"expires_at": now_s})),
        ]}}),
    );
    let done = run(&mut host, &vm, &[("x-api-key", &b)], CHAT);
    assert_eq!((done.status, code(&done)), (401, "key_revoked"));
    let done = run(&mut host, &vm, &[("x-api-key", &c)], CHAT);
    assert_eq!((done.status, code(&done)), (401, "key_expired"));
    // No key, no JWT section, keys.required (the default): 401.
    let done = run(&mut host, &vm, &[("x-api-key", "sk-not-ours")], CHAT);
    assert_eq!((done.status, code(&done)), (401, "missing_api_key"));
    let other = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
    let done = run(&mut host, &vm, &[("x-api-key", &a)], other);
    assert_eq!((done.status, code(&done)), (403, "model_not_allowed"));
    assert_eq!(done.reply["error"]["type"], "permission_error");
    assert_eq!(run(&mut host, &vm, &[("x-api-key", &a)], CHAT).status, 200);
}

#[test]
fn without_keys_the_hashed_api_key_identity_still_applies() {
    let mut host = FakeHost::new();
    let vm = vm(&mut host, json!({}));
    let done = run(&mut host, &vm, &[("x-api-key", "sk-client-key")], CHAT);
    assert_eq!(done.status, 200);
    let user = host.property_text("tollgate_user").unwrap();
    assert!(user.starts_with("key:"), "{user}");
    assert_eq!(host.property_text("tollgate_key_id"), None);
    // keys configured but not required: a non-tollgate key keeps its hashed identity.
    let vm = self::vm(
        &mut host,
        json!({"keys": {"inline": [entry("a", &key(1), json!({}))], "required": false}}),
    );
    assert_eq!(
        run(&mut host, &vm, &[("x-api-key", "sk-client-key")], CHAT).status,
        200
    );
    assert_eq!(host.property_text("tollgate_user"), Some(user));
}

#[test]
fn a_key_over_its_own_budget_gets_429_and_settles_actual_tokens() {
    let mut host = FakeHost::new();
    let k = key(1);
    let vm = vm(
        &mut host,
        json!({"keys": {"inline": [entry("app", &k,
            json!({"budgets": [{"period": "minute", "max_requests": 2, "max_tokens": 1000}]}))]}}),
    );
    assert_eq!(run(&mut host, &vm, &[("x-api-key", &k)], CHAT).status, 200);
    assert_eq!(run(&mut host, &vm, &[("x-api-key", &k)], CHAT).status, 200);
    let done = run(&mut host, &vm, &[("x-api-key", &k)], CHAT);
    assert_eq!(done.status, 429);
    assert_eq!(done.reply["error"]["type"], "rate_limit_error");
    assert!(host.replies.last().unwrap().header("retry-after").is_some());
    let entry = vm.api_keys.as_ref().unwrap().borrow().current(0).unwrap();
    let entry = entry.by_id("app").unwrap();
    let now_s = host.clock_ns.get() / 1_000_000_000;
    let snap = entry
        .budgets
        .as_ref()
        .unwrap()
        .snapshot(&host, "app", now_s);
    assert_eq!(snap[0].1.requests, 2);
    assert_eq!(
        snap[0].1.used_tokens, 24,
        "actual usage of both requests, not estimates"
    );
    assert_eq!(snap[0].1.reserved_tokens, 0);
}

fn hs_token(sub: &str, host: &FakeHost) -> String {
    let now = host.clock_ns.get() / 1_000_000_000;
    let mut claims = Claims::create(jwt_simple::prelude::Duration::from_mins(10))
        .with_subject(sub)
        .with_issuer("https://idp.example");
    claims.issued_at = Some(UnixTimeStamp::from_secs(now));
    claims.invalid_before = Some(UnixTimeStamp::from_secs(now));
    claims.expires_at = Some(UnixTimeStamp::from_secs(now + 600));
    HS256Key::from_bytes(HS_SECRET)
        .authenticate(claims)
        .unwrap()
}

#[test]
fn with_a_key_and_a_jwt_the_key_decides() {
    let mut host = FakeHost::new();
    let k = key(1);
    let jwks = json!({"keys": [{"kty": "oct", "alg": "HS256",
        "k": base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, HS_SECRET)}]});
    let vm = vm(
        &mut host,
        json!({
            "keys": {"inline": [entry("app", &k, json!({}))]},
            "jwt": {"providers": [{"name": "idp", "issuer": "https://idp.example", "local_jwks": jwks,
                "claims_to_headers": [{"claim": "sub", "header": "x-user-id"}]}],
                "rules": [{"path_prefix": "/v1/", "requires": {"provider": "idp"}}]}
        }),
    );
    let token = format!("Bearer {}", hs_token("alice", &host));
    // A JWT alone: as without keys.
    let done = run(&mut host, &vm, &[("authorization", &token)], CHAT);
    assert_eq!(done.status, 200, "{}", done.reply);
    assert_eq!(
        host.property_text("tollgate_user").as_deref(),
        Some("alice")
    );
    // A valid JWT beside a bad key: the key decides, 401.
    let done = run(
        &mut host,
        &vm,
        &[("authorization", &token), ("x-api-key", &key(9))],
        CHAT,
    );
    assert_eq!((done.status, code(&done)), (401, "invalid_api_key"));
    // A garbage JWT beside a valid key: the key decides, 200, and no claim header is spoofable.
    let done = run(
        &mut host,
        &vm,
        &[
            ("authorization", "Bearer garbage"),
            ("x-api-key", &k),
            ("x-user-id", "mallory"),
        ],
        CHAT,
    );
    assert_eq!(done.status, 200, "{}", done.reply);
    assert_eq!(host.get(Map::Request, "x-user-id"), None);
    assert_eq!(
        host.property_text("tollgate_user").as_deref(),
        Some("app-owner")
    );
    // Neither: the JWT rules decide (missing token).
    let done = run(&mut host, &vm, &[], CHAT);
    assert_eq!((done.status, code(&done)), (401, "missing"));
}

fn keyset(entries: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "keys": entries })).unwrap()
}

#[test]
fn a_remote_key_set_is_waited_for_refetched_for_unknown_keys_and_rotated() {
    let mut host = FakeHost::new();
    let (a, b) = (key(1), key(2));
    let vm = vm(
        &mut host,
        json!({"keys": {"remote": {"cluster": "keys", "uri": "http://keys.local/keys.json",
            "refresh_seconds": 60, "initial_wait_ms": 2000, "min_refetch_seconds": 30}}}),
    );
    assert!(vm.needs_tick());
    // The first request waits for the set: it fetches it and pauses.
    let mut ex = vm.exchange();
    host.set_map(
        Map::Request,
        &[
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            ("x-api-key", &a),
        ],
    );
    assert_eq!(ex.on_request_headers(&mut host, false), Flow::Pause);
    let call = host.calls.last().unwrap().clone();
    assert_eq!(call.cluster, "keys");
    assert_eq!(call.header(":path"), Some("/keys.json"));
    assert_eq!(call.header(":authority"), Some("keys.local"));
    host.set_body(Body::Request, CHAT.as_bytes());
    assert_eq!(ex.on_request_body(&mut host, CHAT.len(), true), Flow::Pause);
    host.answer_callout(Some(200), &[], &keyset(&[entry("a", &a, json!({}))]));
    ex.on_callout_response(
        &mut host,
        call.token,
        keyset(&[entry("a", &a, json!({}))]).len(),
    );
    assert_eq!(host.request_resumes, 1, "resumed once the set arrived");
    assert_eq!(host.get(Map::Request, "x-api-key"), None);
    assert!(host.logged("key set updated (1 keys)"));
    // An unknown key triggers one early refetch; the new set knows it.
    let mut ex = vm.exchange();
    host.set_map(
        Map::Request,
        &[
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            ("x-api-key", &b),
        ],
    );
    assert_eq!(ex.on_request_headers(&mut host, false), Flow::Pause);
    let call = host.calls.last().unwrap().clone();
    let rotated = keyset(&[entry("b", &b, json!({}))]);
    host.answer_callout(Some(200), &[], &rotated);
    ex.on_callout_response(&mut host, call.token, rotated.len());
    assert_eq!(ex.phase(), crate::exchange::Phase::HoldingBody);
    // `a` was removed: refused (no second refetch within min_refetch_seconds).
    let calls = host.calls.len();
    let done = run(&mut host, &vm, &[("x-api-key", &a)], CHAT);
    assert_eq!((done.status, code(&done)), (401, "invalid_api_key"));
    assert_eq!(host.calls.len(), calls);
    // The root's refresh fails: the last good set stays.
    host.advance_ms(60_000);
    vm.tick(&mut host);
    let call = host.calls.last().unwrap().clone();
    host.answer_callout(Some(503), &[], b"");
    vm.on_callout_response(&mut host, call.token, 0);
    assert!(host.logged("keeping the last good set"));
    assert_eq!(run(&mut host, &vm, &[("x-api-key", &b)], CHAT).status, 200);
}

#[test]
fn a_remote_key_set_that_never_arrives_gets_503_after_the_bounded_wait() {
    let mut host = FakeHost::new();
    let vm = vm(
        &mut host,
        json!({"keys": {"remote": {"cluster": "keys", "uri": "http://keys.local/keys.json",
            "initial_wait_ms": 1000}}}),
    );
    let mut ex = vm.exchange();
    host.set_map(
        Map::Request,
        &[
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            ("x-api-key", &key(1)),
        ],
    );
    assert_eq!(ex.on_request_headers(&mut host, true), Flow::Pause);
    let call = host.calls.last().unwrap().clone();
    host.advance_ms(1500);
    host.answer_callout(None, &[], b"");
    ex.on_callout_response(&mut host, call.token, 0);
    let reply = host.replies.last().unwrap();
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["error"]["code"], "key_set_unavailable");
    assert_eq!(reply.header("retry-after"), Some("1"));
    // Later requests are refused at once (no wait) until a fetch succeeds.
    let done = run(&mut host, &vm, &[("x-api-key", &key(1))], CHAT);
    assert_eq!(done.status, 503);
}

#[test]
fn the_status_endpoint_shows_the_calling_key_and_its_budget() {
    let mut host = FakeHost::new();
    let k = key(1);
    let vm = vm(
        &mut host,
        json!({"keys": {"inline": [entry("app", &k,
            json!({"budgets": [{"period": "hour", "max_tokens": 500}], "labels": {"env": "ci"}}))]},
            "status": {"path": "/tollgate/status"}}),
    );
    assert_eq!(run(&mut host, &vm, &[("x-api-key", &k)], CHAT).status, 200);
    let mut ex = vm.exchange();
    host.set_map(
        Map::Request,
        &[
            (":method", "GET"),
            (":path", "/tollgate/status"),
            ("x-api-key", &k),
        ],
    );
    assert_eq!(ex.on_request_headers(&mut host, true), Flow::Replied);
    let status = host.replies.last().unwrap().json();
    assert_eq!(status["caller"], "app-owner");
    assert_eq!(status["key"]["id"], "app");
    assert_eq!(status["key"]["labels"]["env"], "ci");
    assert_eq!(status["key"]["budget"][0]["used_tokens"], 12);
    assert_eq!(status["key"]["budget"][0]["remaining_tokens"], 488);
    assert!(!status.to_string().contains(&k[3..]));
    // Without a key: 401 (keys make the endpoint authenticated).
    host.set_map(
        Map::Request,
        &[(":method", "GET"), (":path", "/tollgate/status")],
    );
    let mut ex = vm.exchange();
    assert_eq!(ex.on_request_headers(&mut host, true), Flow::Replied);
    assert_eq!(host.replies.last().unwrap().status, 401);
}

/// A chat request the cache may answer (temperature 0).
const DETERMINISTIC_CHAT: &str =
    r#"{"model":"gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"hi"}]}"#;

#[test]
fn a_team_scoped_cache_is_shared_by_the_keys_of_one_team_only() {
    let mut host = FakeHost::new();
    let (first, second, other) = (key(11), key(12), key(13));
    let vm = vm(
        &mut host,
        json!({
            "keys": {"inline": [
                entry("first", &first, json!({})),
                entry("second", &second, json!({})),
                entry("other", &other, json!({"team": "ads"})),
            ]},
            "cache": {"scope": "team", "rules": [{"path_prefix": "/v1/"}]},
        }),
    );
    let cached = |host: &mut FakeHost, k: &str| {
        let bearer = format!("Bearer {k}");
        let replies = host.replies.len();
        let done = run(
            host,
            &vm,
            &[("authorization", bearer.as_str())],
            DETERMINISTIC_CHAT,
        );
        assert_eq!(done.status, 200, "{}", done.reply);
        let status = host.property_text("tollgate_cache");
        (host.replies.len() > replies, status)
    };
    assert_eq!(cached(&mut host, &first), (false, Some("miss".into())));
    // Another key of the same team is answered from the entry the first one stored.
    assert_eq!(cached(&mut host, &second), (true, Some("hit".into())));
    // A key of another team never sees it.
    assert_eq!(cached(&mut host, &other), (false, Some("miss".into())));
}
