//! Whole-request cache scenarios against the fake host: a miss stored and the repeat answered
//! locally with no provider involved, at every chunking of the provider's answer; a stored stream
//! replayed to a stream client and assembled for a JSON client; another caller missing; errors
//! and cut streams never stored; a hit accounted under provider `cache` and charged the
//! configured budget fraction.

use std::rc::Rc;

use crate::exchange::fake::{FakeHost, SentReply};
use crate::exchange::host::{Body, Host, Map};
use crate::exchange::{Flow, Vm};
use crate::sse::{OversizedEvent, SseParser};

const CHAT: &str = "/v1/chat/completions";
const ANSWER: &str = include_str!("../usage/fixtures/openai_chat.json");
const STREAM: &str = include_str!("../usage/fixtures/openai_chat_stream.sse");

/// Sum of the samples of `metric` whose name carries every one of `tags` (`tag=.=value`).
fn tagged_sum(host: &FakeHost, metric: &str, tags: &[&str]) -> u64 {
    let tail = format!(";.;{metric}");
    host.metric_defs
        .iter()
        .filter(|(name, _)| name.ends_with(&tail))
        .filter(|(name, _)| tags.iter().all(|t| name.contains(&format!("{t};.;"))))
        .filter_map(|(_, (_, id))| host.metric_values.get(id))
        .sum()
}

struct Rig {
    host: FakeHost,
    vm: Rc<Vm>,
}

fn rig(config: &str) -> Rig {
    let mut host = FakeHost::new();
    let vm = Rc::new(Vm::configure(&mut host, config.as_bytes()).unwrap());
    Rig { host, vm }
}

fn cache_config() -> String {
    r#"{"cache":{"rules":[{"path_prefix":"/v1/"}],"scope":"user"}}"#.to_string()
}

fn chat_body(stream: bool) -> String {
    format!(
        r#"{{"model":"gpt-4o","temperature":0,"stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
    )
}

/// What one request got.
struct Outcome {
    /// The local reply's status, headers and body when the cache answered.
    reply: Option<SentReply>,
    /// The response headers the client got (when the provider answered).
    cache_header: Option<String>,
    /// The bytes the client got (when the provider answered).
    body: Vec<u8>,
}

/// What the provider answers when a request reaches it, and where its body is cut in two.
struct Answer<'a> {
    status: u16,
    content_type: &'a str,
    body: &'a [u8],
    cut: usize,
}

/// Never used: the request is expected to be answered from the cache.
const UNUSED: Answer<'static> = Answer {
    status: 200,
    content_type: "",
    body: b"",
    cut: 0,
};

/// Runs one request as `key`; when it goes to the provider, the provider gives `answer`.
fn exchange(
    rig: &mut Rig,
    key: &str,
    request: &str,
    extra: &[(&str, &str)],
    answer: Answer<'_>,
) -> Outcome {
    let Answer {
        status,
        content_type,
        body: answer,
        cut,
    } = answer;
    let h = &mut rig.host;
    let auth = format!("Bearer {key}");
    let mut headers = vec![
        (":method", "POST"),
        (":path", CHAT),
        ("content-type", "application/json"),
        ("authorization", auth.as_str()),
    ];
    headers.extend_from_slice(extra);
    h.set_map(Map::Request, &headers);
    h.maps.remove(&Map::Response);
    let replies_before = h.replies.len();
    let mut ex = rig.vm.exchange();
    assert_eq!(ex.on_request_headers(h, false), Flow::Pause);
    h.set_body(Body::Request, request.as_bytes());
    let flow = ex.on_request_body(h, request.len(), true);
    if flow == Flow::Replied {
        let reply = h.replies.get(replies_before).cloned();
        ex.on_log(h);
        return Outcome {
            reply,
            cache_header: None,
            body: Vec::new(),
        };
    }
    assert_eq!(flow, Flow::Continue);
    h.set_map(
        Map::Response,
        &[
            (":status", &status.to_string()),
            ("content-type", content_type),
        ],
    );
    ex.on_response_headers(h, false);
    let cache_header = h.get(Map::Response, "x-tollgate-cache").map(str::to_string);
    let (a, b) = answer.split_at(cut.min(answer.len()));
    let mut body = Vec::new();
    for (piece, end) in [(a, false), (b, true)] {
        h.set_body(Body::Response, piece);
        ex.on_response_body(h, piece.len(), end);
        body.extend(h.body(Body::Response, usize::MAX));
    }
    ex.on_log(h);
    Outcome {
        reply: None,
        cache_header,
        body,
    }
}

fn json_answer(rig: &mut Rig, key: &str, cut: usize) -> Outcome {
    exchange(
        rig,
        key,
        &chat_body(false),
        &[],
        Answer {
            status: 200,
            content_type: "application/json",
            body: ANSWER.as_bytes(),
            cut,
        },
    )
}

#[test]
fn a_repeated_request_is_answered_from_the_cache_at_every_chunking() {
    // One VM; each cut is another caller, so each has its own entry (scope `user`).
    let mut r = rig(&cache_config());
    for cut in 0..=ANSWER.len() {
        let caller = format!("caller-{cut}");
        let first = json_answer(&mut r, &caller, cut);
        assert_eq!(first.cache_header.as_deref(), Some("miss"), "cut {cut}");
        assert_eq!(first.body, ANSWER.as_bytes());
        let second = json_answer(&mut r, &caller, cut);
        let reply = second.reply.unwrap_or_else(|| panic!("a hit at cut {cut}"));
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, ANSWER.as_bytes());
        assert_eq!(reply.header("x-tollgate-cache"), Some("hit"));
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert!(reply.header("x-request-id").is_some());
    }
    let n = ANSWER.len() as u64 + 1;
    assert_eq!(r.host.metric("tollgate_cache_hits_total"), n);
    assert_eq!(r.host.metric("tollgate_cache_misses_total"), n);
    // 885 entries in 64 sets of 16: the fuller sets evicted their least recently used.
    let evicted = r
        .host
        .metric("reason=.=lru;.;tollgate_cache_evictions_total");
    assert_eq!(r.host.metric("tollgate_cache_entries") + evicted, n);
    assert!(r.host.metric("tollgate_cache_entries") <= 1024);
}

#[test]
fn a_hit_is_accounted_under_provider_cache_at_zero_cost() {
    let mut r = rig(r#"{"cache":{"rules":[{"path_prefix":"/v1/"}]},
            "usage":{"prices":{"gpt-4o":{"input_per_million":2.5,"output_per_million":10}}}}"#);
    json_answer(&mut r, "alice", 0);
    let cost_before = r.host.metric_sum("tollgate_cost_microdollars_total");
    assert!(cost_before > 0, "the miss is priced");
    json_answer(&mut r, "alice", 0);
    assert_eq!(
        tagged_sum(
            &r.host,
            "tollgate_llm_requests_total",
            &["provider=.=cache"]
        ),
        1
    );
    assert_eq!(
        tagged_sum(
            &r.host,
            "tollgate_tokens_total",
            &["provider=.=cache", "token_type=.=input"]
        ),
        1117
    );
    assert_eq!(
        r.host.metric_sum("tollgate_cost_microdollars_total"),
        cost_before,
        "a hit costs nothing"
    );
    assert_eq!(
        r.host.property_text("tollgate_provider").as_deref(),
        Some("cache")
    );
    assert_eq!(
        r.host.property_text("tollgate_cache").as_deref(),
        Some("hit")
    );
}

#[test]
fn a_hit_charges_the_budget_fraction() {
    let mut r = rig(
        r#"{"cache":{"rules":[{"path_prefix":"/v1/"}],"budget_fraction":0.5},
            "budgets":{"windows":[{"period":"day","max_tokens":100000}]}}"#,
    );
    json_answer(&mut r, "alice", 0);
    let vm = Rc::clone(&r.vm);
    let budgets = &vm.config.budgets.as_ref().unwrap().budgets;
    let now = r.host.clock_ns.get() / 1_000_000_000;
    let user = crate::identity::api_key_identity("Bearer alice").unwrap();
    let used = |r: &Rig| budgets.snapshot(&r.host.store, &user, now)[0].1.used_tokens;
    let after_miss = used(&r);
    assert_eq!(after_miss, 1117 + 46);
    json_answer(&mut r, "alice", 0);
    let snapshot = budgets.snapshot(&r.host.store, &user, now);
    assert_eq!(
        snapshot[0].1.used_tokens,
        after_miss + (1117u64 + 46).div_ceil(2)
    );
    assert_eq!(
        snapshot[0].1.reserved_tokens, 0,
        "the hit's reservation is released"
    );
}

/// Parses a replayed stream: its events' JSON (the final `[DONE]` checked and left out).
fn events(body: &[u8]) -> Vec<serde_json::Value> {
    let mut p = SseParser::new(1 << 20, OversizedEvent::Skip);
    let mut out = p.feed_collect(body);
    let done = out.pop().unwrap();
    assert_eq!(done.data, b"[DONE]");
    out.iter()
        .map(|e| serde_json::from_slice(&e.data).unwrap())
        .collect()
}

#[test]
fn a_stored_stream_replays_to_stream_clients_and_assembles_for_json_clients() {
    for cut in (0..=STREAM.len()).step_by(7) {
        let mut r = rig(&cache_config());
        let stream_req = chat_body(true);
        let first = exchange(
            &mut r,
            "alice",
            &stream_req,
            &[],
            Answer {
                status: 200,
                content_type: "text/event-stream",
                body: STREAM.as_bytes(),
                cut,
            },
        );
        assert_eq!(first.cache_header.as_deref(), Some("miss"));
        // include_usage was injected and its chunk stripped for this client.
        assert!(!String::from_utf8_lossy(&first.body).contains("\"choices\":[],"));
        let again = exchange(&mut r, "alice", &stream_req, &[], UNUSED);
        let reply = again.reply.unwrap_or_else(|| panic!("a hit at cut {cut}"));
        assert_eq!(reply.header("content-type"), Some("text/event-stream"));
        let chunks = events(&reply.body);
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Hello world, ça va?");
        assert!(
            chunks.iter().all(|c| c.get("usage").is_none()),
            "not asked for"
        );
        let with_usage = r#"{"model":"gpt-4o","temperature":0,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
        let usage_reply = exchange(&mut r, "alice", with_usage, &[], UNUSED)
            .reply
            .unwrap();
        let chunks = events(&usage_reply.body);
        assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 2306);
        let json = exchange(&mut r, "alice", &chat_body(false), &[], UNUSED)
            .reply
            .unwrap();
        let completion: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
        assert_eq!(completion["object"], "chat.completion");
        assert_eq!(
            completion["choices"][0]["message"]["content"],
            "Hello world, ça va?"
        );
        assert_eq!(completion["usage"]["total_tokens"], 2306);
    }
}

#[test]
fn another_caller_misses_and_no_cache_bypasses() {
    let mut r = rig(&cache_config());
    json_answer(&mut r, "alice", 0);
    let bob = json_answer(&mut r, "bob", 0);
    assert_eq!(bob.cache_header.as_deref(), Some("miss"));
    let refused = exchange(
        &mut r,
        "alice",
        &chat_body(false),
        &[("cache-control", "no-cache")],
        Answer {
            status: 200,
            content_type: "application/json",
            body: ANSWER.as_bytes(),
            cut: 0,
        },
    );
    assert_eq!(refused.cache_header.as_deref(), Some("bypass"));
    assert_eq!(
        r.host
            .metric("reason=.=client_no_cache;.;tollgate_cache_bypasses_total"),
        1
    );
}

#[test]
fn errors_and_cut_streams_are_never_stored() {
    let mut r = rig(&cache_config());
    let error = br#"{"error":{"message":"overloaded","type":"server_error"}}"#;
    let failed = exchange(
        &mut r,
        "alice",
        &chat_body(false),
        &[],
        Answer {
            status: 500,
            content_type: "application/json",
            body: error,
            cut: 3,
        },
    );
    assert_eq!(failed.cache_header.as_deref(), Some("miss"));
    assert_eq!(
        r.host
            .metric("outcome=.=status;.;tollgate_cache_writes_total"),
        1
    );
    assert!(
        json_answer(&mut r, "alice", 0).reply.is_none(),
        "still a miss"
    );
    // A stream that ends without [DONE]: tollgate ends it with an error event; not stored.
    let cut_stream = STREAM.replace("data: [DONE]\n\n", "");
    let mut r = rig(&cache_config());
    let first = exchange(
        &mut r,
        "alice",
        &chat_body(true),
        &[],
        Answer {
            status: 200,
            content_type: "text/event-stream",
            body: cut_stream.as_bytes(),
            cut: 40,
        },
    );
    assert_eq!(first.cache_header.as_deref(), Some("miss"));
    assert_eq!(r.host.metric("tollgate_cache_entries"), 0);
    assert_eq!(
        r.host
            .metric("outcome=.=stored;.;tollgate_cache_writes_total"),
        0
    );
    let again = exchange(
        &mut r,
        "alice",
        &chat_body(true),
        &[],
        Answer {
            status: 200,
            content_type: "text/event-stream",
            body: STREAM.as_bytes(),
            cut: 0,
        },
    );
    assert_eq!(again.cache_header.as_deref(), Some("miss"));
}
