//! Host calls per request, pinned (issue 13): every crossing from the module into Envoy costs
//! (on V8, a trampoline and often a copy), so a change that adds one to the request path must
//! show up here and be accepted on purpose.
//!
//! Each scenario configures a VM, sends one warm-up request (one-time work such as defining
//! metrics or reading the plugin configuration is not per-request cost), then counts the host
//! calls of a second, identical request from `proxy_on_context_create` to `proxy_on_delete`:
//! headers, body, response and the log hook. The counts are compared import by import with
//! [`PINNED`]; any difference, up or down, fails with a table of what changed. When the change
//! is deliberate, update the pin in the same commit and say why in its message.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use jwt_simple::prelude::*;
use tollgate_host_tests::{HostCalls, Vm};

/// A request shape and the plugin configuration it runs under.
struct Scenario {
    /// Name used in the pin table.
    name: &'static str,
    /// Plugin configuration.
    config: &'static str,
    /// Whether the client asks for a stream (the answer is then the OpenAI SSE fixture).
    stream: bool,
    /// The request as Envoy hands it over (see [`ALL_FEATURES`]).
    as_envoy: bool,
}

/// Issue 13's "all features" (JWT ES256 with its verified-token cache, usage accounting, a token
/// budget, prompt masking), with the request as Envoy hands it over: an `x-request-id` (the
/// connection manager generates one), a bearer token, and the answer's end as an empty chunk
/// after its data. Its configuration holds a key generated per run: see [`all_features`].
const ALL_FEATURES: &str =
    "all features (JWT ES256 cached, usage, budget, masking), as Envoy delivers it";

/// The ES256 key of [`ALL_FEATURES`] and a token it signed.
fn es256() -> &'static (String, String) {
    static KEY: OnceLock<(String, String)> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = ES256KeyPair::generate().with_key_id("k1");
        let mut jwk: serde_json::Value = serde_json::from_str(&key.public_key().to_jwk()).unwrap();
        jwk["kid"] = "k1".into();
        let config = serde_json::json!({
            "jwt": {"providers": [{
                "name": "corp",
                "issuer": "https://idp.example",
                "audiences": ["tollgate"],
                "local_jwks": {"keys": [jwk]}
            }],
            "rules": [{"path_prefix": "/v1/", "requires": {"provider": "corp"}}]},
            "usage": {"enabled": true},
            "budgets": {"windows": [{"period": "minute", "max_tokens": 1_000_000}]},
            "masking": {"prompts": "redact"}
        });
        let claims = Claims::create(Duration::from_hours(1))
            .with_issuer("https://idp.example")
            .with_audience("tollgate")
            .with_subject("alice");
        (config.to_string(), key.sign(claims).unwrap())
    })
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "everything off (correlation ids only), JSON answer",
        config: r#"{"usage":{"enabled":false},"masking":{"prompts":"off"}}"#,
        stream: false,
        as_envoy: false,
    },
    Scenario {
        name: "usage accounting only, JSON answer",
        config: r#"{"masking":{"prompts":"off"}}"#,
        stream: false,
        as_envoy: false,
    },
    Scenario {
        name: "usage accounting and a token budget, JSON answer",
        config: r#"{"masking":{"prompts":"off"},"budgets":{"windows":[{"period":"minute","max_tokens":1000000}]}}"#,
        stream: false,
        as_envoy: false,
    },
    Scenario {
        name: "usage accounting only, streamed answer",
        config: r#"{"masking":{"prompts":"off"}}"#,
        stream: true,
        as_envoy: false,
    },
    Scenario {
        name: "defaults (usage accounting and prompt masking), JSON answer",
        config: "{}",
        stream: false,
        as_envoy: false,
    },
    Scenario {
        name: ALL_FEATURES,
        config: "",
        stream: false,
        as_envoy: true,
    },
];

/// The pinned host calls of one request per scenario: (scenario name, [(import, calls)]).
/// Imports not listed are called zero times. Measured after the pipeline of issue 12 (two
/// `random_get` seed the ids), then lowered for issue 13 (`:path` read once, the trace context
/// kept from what was written instead of read back, body chunks nothing works on left untimed,
/// request headers not held, nor the caller identified, for a body no enabled feature reads);
/// the stream's counts depend on the fixture cut in 512-byte chunks. The all-features scenario
/// came with the concurrency-1 latency work (issue 13) at 68 calls on the build before it; it
/// makes 60 since: the request header map JWT reads whole is fetched once at the request
/// headers and answers that hook's single reads (`x-request-id`, `traceparent`,
/// `content-length`, `:path`: −5 header reads, and `tracestate` is not removed when the map
/// shows it absent: −1), a valid request id draws nothing from the random source (−1
/// `random_get`), and the answer's empty closing chunk is not read (−1 buffer read).
const PINNED: &[(&str, &[(&str, u64)])] = &[
    (
        "everything off (correlation ids only), JSON answer",
        &[
            ("proxy_get_current_time_nanoseconds", 4),
            ("proxy_get_header_map_value", 8),
            ("proxy_increment_metric", 3),
            ("proxy_remove_header_map_value", 1),
            ("proxy_replace_header_map_value", 4),
            ("proxy_set_property", 2),
            ("random_get", 2),
        ],
    ),
    (
        "usage accounting only, JSON answer",
        &[
            ("proxy_get_buffer_bytes", 3),
            ("proxy_get_current_time_nanoseconds", 12),
            ("proxy_get_header_map_value", 9),
            ("proxy_increment_metric", 7),
            ("proxy_record_metric", 5),
            ("proxy_remove_header_map_value", 1),
            ("proxy_replace_header_map_value", 4),
            ("proxy_set_property", 12),
            ("random_get", 2),
        ],
    ),
    (
        "usage accounting and a token budget, JSON answer",
        &[
            ("proxy_get_buffer_bytes", 3),
            ("proxy_get_current_time_nanoseconds", 14),
            ("proxy_get_header_map_value", 9),
            ("proxy_get_shared_data", 2),
            ("proxy_increment_metric", 7),
            ("proxy_record_metric", 5),
            ("proxy_remove_header_map_value", 1),
            ("proxy_replace_header_map_value", 7),
            ("proxy_set_property", 12),
            ("proxy_set_shared_data", 2),
            ("random_get", 2),
        ],
    ),
    (
        "usage accounting only, streamed answer",
        &[
            ("proxy_get_buffer_bytes", 4),
            ("proxy_get_current_time_nanoseconds", 14),
            ("proxy_get_header_map_value", 9),
            ("proxy_increment_metric", 8),
            ("proxy_record_metric", 5),
            ("proxy_remove_header_map_value", 3),
            ("proxy_replace_header_map_value", 5),
            ("proxy_set_buffer_bytes", 4),
            ("proxy_set_property", 12),
            ("random_get", 2),
        ],
    ),
    (
        "defaults (usage accounting and prompt masking), JSON answer",
        &[
            ("proxy_get_buffer_bytes", 3),
            ("proxy_get_current_time_nanoseconds", 12),
            ("proxy_get_header_map_value", 9),
            ("proxy_increment_metric", 7),
            ("proxy_record_metric", 5),
            ("proxy_remove_header_map_value", 1),
            ("proxy_replace_header_map_value", 4),
            ("proxy_set_property", 12),
            ("random_get", 2),
        ],
    ),
    (
        ALL_FEATURES,
        &[
            ("proxy_get_buffer_bytes", 3),
            ("proxy_get_current_time_nanoseconds", 17),
            ("proxy_get_header_map_pairs", 1),
            ("proxy_get_header_map_value", 3),
            ("proxy_get_shared_data", 2),
            ("proxy_increment_metric", 7),
            ("proxy_record_metric", 5),
            ("proxy_remove_header_map_value", 1),
            ("proxy_replace_header_map_value", 6),
            ("proxy_set_property", 12),
            ("proxy_set_shared_data", 2),
            ("random_get", 1),
        ],
    ),
];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../filter/src/usage/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One whole request of `scenario` on `vm`: headers, body (one chunk), response headers, the
/// answer in 512-byte chunks, then `on_done` / `on_log` / `on_delete`.
fn one_request(vm: &mut Vm, scenario: &Scenario) {
    let body = format!(
        r#"{{"model":"gpt-4o-mini","stream":{},"messages":[{{"role":"user","content":"hello there"}}]}}"#,
        scenario.stream
    );
    let len = body.len().to_string();
    let ctx = vm.new_http();
    let mut headers = vec![
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "llm.example.com"),
        ("content-type", "application/json"),
        ("content-length", len.as_str()),
        ("x-api-key", "user-key-1"),
    ];
    let bearer = format!("Bearer {}", es256().1);
    if scenario.as_envoy {
        headers.push(("x-request-id", "0f8b3c2e-6d1a-4b7e-9c55-2a4d8e1f7b60"));
        headers.push(("authorization", bearer.as_str()));
    }
    vm.request_headers(ctx, &headers, false).unwrap();
    vm.request_body(ctx, body.as_bytes(), true).unwrap();
    let (content_type, answer) = if scenario.stream {
        ("text/event-stream", fixture("openai_chat_stream.sse"))
    } else {
        ("application/json", fixture("openai_chat.json"))
    };
    vm.response_headers(
        ctx,
        &[(":status", "200"), ("content-type", content_type)],
        false,
    )
    .unwrap();
    let pieces: Vec<&[u8]> = answer.chunks(512).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len();
        vm.response_body(ctx, piece, last && !scenario.as_envoy)
            .unwrap();
    }
    if scenario.as_envoy {
        vm.response_body(ctx, b"", true).unwrap();
    }
    vm.finish(ctx).unwrap();
    assert!(
        vm.local_reply(ctx).is_none(),
        "{}: the request was refused: {:?}",
        scenario.name,
        vm.local_reply(ctx)
    );
}

/// The host calls of the second of two identical requests.
fn calls_per_request(scenario: &Scenario) -> HostCalls {
    let mut vm = Vm::load().unwrap();
    vm.state_mut()
        .properties
        .insert("source\0address".into(), b"10.0.0.7:5555".to_vec());
    let config = if scenario.as_envoy {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        vm.set_time_secs(now.as_secs());
        es256().0.as_str()
    } else {
        scenario.config
    };
    assert!(
        vm.configure(config).unwrap(),
        "{}: {:?}",
        scenario.name,
        vm.logs()
    );
    one_request(&mut vm, scenario);
    vm.take_host_calls();
    one_request(&mut vm, scenario);
    let calls = vm.take_host_calls();
    assert!(
        vm.error_logs().is_empty(),
        "{}: {:?}",
        scenario.name,
        vm.error_logs()
    );
    calls
}

/// Renders the counts of every scenario as Rust source for [`PINNED`].
fn as_pin_source(measured: &[(&str, HostCalls)]) -> String {
    let mut out = String::from("const PINNED: &[(&str, &[(&str, u64)])] = &[\n");
    for (name, calls) in measured {
        out.push_str(&format!("    (\n        {name:?},\n        &[\n"));
        for (import, n) in calls.by_import() {
            out.push_str(&format!("            ({import:?}, {n}),\n"));
        }
        out.push_str("        ],\n    ),\n");
    }
    out.push_str("];\n");
    out
}

#[test]
fn host_calls_per_request_match_the_pinned_counts() {
    let measured: Vec<(&str, HostCalls)> = SCENARIOS
        .iter()
        .map(|s| (s.name, calls_per_request(s)))
        .collect();
    let mut report = String::new();
    for (name, calls) in &measured {
        let pinned: BTreeMap<&str, u64> = PINNED
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, counts)| counts.iter().copied().collect())
            .unwrap_or_default();
        let mut imports: Vec<&str> = pinned.keys().copied().collect();
        imports.extend(calls.by_import().keys().copied());
        imports.sort_unstable();
        imports.dedup();
        let changed: Vec<String> = imports
            .into_iter()
            .filter(|i| pinned.get(i).copied().unwrap_or(0) != calls.get(i))
            .map(|i| {
                format!(
                    "      {i:<40} pinned {:>3}, now {:>3}",
                    pinned.get(i).copied().unwrap_or(0),
                    calls.get(i)
                )
            })
            .collect();
        let pinned_total: u64 = pinned.values().sum();
        println!("{name}: {} host calls per request", calls.total());
        if !changed.is_empty() {
            report.push_str(&format!(
                "  {name}: {} host calls per request, pinned {pinned_total}\n{}\n",
                calls.total(),
                changed.join("\n")
            ));
        }
    }
    assert!(
        report.is_empty(),
        "\nHost calls per request changed:\n{report}\n\
         Every host call crosses from the module into Envoy and costs CPU per request (issue 13). \
         If the change is deliberate, update PINNED in host-tests/tests/host_calls.rs in the same \
         commit (and say why in its message); this is the whole table as measured now:\n\n{}",
        as_pin_source(&measured)
    );
}

#[test]
fn the_counter_sees_every_call_of_a_request() {
    // The counts come from the emulator's imports themselves: a request that is logged and
    // accounted must at least read its headers and body, set the response's correlation id and
    // write its access-log properties.
    let scenario = &SCENARIOS[1];
    let calls = calls_per_request(scenario);
    assert!(calls.get("proxy_get_header_map_value") + calls.get("proxy_get_header_map_pairs") > 0);
    assert!(calls.get("proxy_get_buffer_bytes") > 0, "{calls:?}");
    assert!(calls.get("proxy_set_property") > 0, "{calls:?}");
    assert_eq!(
        calls.total(),
        calls.by_import().values().sum::<u64>(),
        "total is the sum"
    );
}
