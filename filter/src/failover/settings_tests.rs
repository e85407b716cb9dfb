//! Tests of the failover configuration: a sample catalog (shared with the other failover tests
//! as `sample`/`SAMPLE`), model maps, and every refusal naming its JSON path.

use super::*;
use crate::failover::raw::{
    DEFAULT_COOLDOWN_MS, DEFAULT_FAILURE_THRESHOLD, DEFAULT_MAX_RETRIES,
    DEFAULT_PROVIDER_TIMEOUT_MS, DEFAULT_SHARED_KEY_PREFIX, DEFAULT_TOTAL_DEADLINE_MS,
};

/// A catalog of three providers routed for `gpt-*` and `claude-*`.
pub(crate) const SAMPLE: &str = r#"{
    "providers": [
        {"name": "openai", "kind": "openai", "cluster": "openai_cluster",
         "host": "api.openai.com", "api_key": {"env": "OPENAI_API_KEY"},
         "models": {"gpt-4o": "gpt-4o-2024-08-06"}, "max_retries": 1,
         "circuit": {"failure_threshold": 2, "cooldown_ms": 1000}},
        {"name": "azure", "kind": "openai-compatible", "cluster": "azure", "base_path": "/openai/v1/",
         "models": {"gpt-*": "azure-gpt-*", "gpt-4o*": "azure-4o"}, "max_retries": 0,
         "timeout_ms": 5000, "api_key": {"env": "AZURE_KEY"}},
        {"name": "anthropic", "kind": "anthropic", "cluster": "anthropic",
         "api_key": {"value": "sk-ant-secret"}, "models": {"claude-*": "claude-*"}}
    ],
    "routes": [
        {"model": "gpt-*", "providers": ["openai", "azure"]},
        {"model": "gpt-4o-mini", "providers": ["azure"]},
        {"model": "claude-*", "providers": ["anthropic", "openai"]},
        {"model": "claude-3*", "providers": ["anthropic"]}
    ],
    "total_deadline_ms": 30000
}"#;

pub(crate) fn sample() -> FailoverSettings {
    parse(SAMPLE.as_bytes(), "failover").unwrap()
}

fn err(json: &str) -> ConfigError {
    parse(json.as_bytes(), "failover").unwrap_err()
}

#[test]
fn sample_compiles_with_defaults() {
    let s = sample();
    assert_eq!(s.providers.len(), 3);
    let openai = &s.providers[0];
    assert_eq!(openai.base_path, "/v1");
    assert_eq!(openai.timeout_ms, DEFAULT_PROVIDER_TIMEOUT_MS);
    assert_eq!(openai.max_retries, 1);
    assert_eq!(s.providers[2].max_retries, DEFAULT_MAX_RETRIES);
    assert_eq!(openai.host.as_deref(), Some("api.openai.com"));
    assert_eq!(openai.circuit_key, "tollgate.failover.circuit.openai");
    assert_eq!(openai.backoff_key, "tollgate.failover.backoff.openai");
    let azure = &s.providers[1];
    assert_eq!(azure.base_path, "/openai/v1");
    assert_eq!(azure.max_retries, 0);
    assert_eq!(
        azure.circuit,
        CircuitSettings {
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            cooldown_ms: DEFAULT_COOLDOWN_MS
        }
    );
    assert_eq!(s.total_deadline_ms, 30_000);
    assert_eq!(
        s.backoff,
        BackoffSettings {
            base_ms: 0,
            max_ms: 5000,
            jitter: 0.2
        }
    );
    assert_eq!(
        s.inline_api_key_paths,
        vec!["failover.providers[2].api_key.value"]
    );
    assert!(s.default_route.is_none());
}

#[test]
fn default_base_paths_per_kind() {
    for (kind, path) in [
        ("openai", "/v1"),
        ("anthropic", "/v1"),
        ("gemini", "/v1beta"),
        ("openai-compatible", "/v1"),
    ] {
        let json = format!(r#"{{"providers":[{{"name":"p","kind":"{kind}","cluster":"c"}}]}}"#);
        let s = parse(json.as_bytes(), "").unwrap();
        assert_eq!(s.providers[0].base_path, path);
        assert_eq!(s.providers[0].kind.as_str(), kind);
    }
    let s = parse(
        br#"{"providers":[{"name":"p","kind":"openai","cluster":"c","base_path":"/"}]}"#,
        "",
    )
    .unwrap();
    assert_eq!(s.providers[0].base_path, "");
}

#[test]
fn empty_document_is_valid() {
    let s = parse(b"{}", "failover").unwrap();
    assert!(s.providers.is_empty());
    assert_eq!(s.total_deadline_ms, DEFAULT_TOTAL_DEADLINE_MS);
    assert_eq!(s.shared_key_prefix, DEFAULT_SHARED_KEY_PREFIX);
    assert_eq!(compile(RawFailoverSettings::default(), "").unwrap(), s);
}

#[test]
fn model_mapping() {
    let s = sample();
    let openai = &s.providers[0];
    assert_eq!(openai.models.provider_model("gpt-4o"), "gpt-4o-2024-08-06");
    assert_eq!(openai.models.provider_model("gpt-4.1"), "gpt-4.1");
    let azure = &s.providers[1];
    assert_eq!(azure.models.provider_model("gpt-4o-mini"), "azure-4o");
    assert_eq!(azure.models.provider_model("gpt-3.5"), "azure-gpt-3.5");
    assert_eq!(azure.models.provider_model("o1"), "o1");
    let anthropic = &s.providers[2];
    assert_eq!(
        anthropic.models.provider_model("claude-3-5-sonnet"),
        "claude-3-5-sonnet"
    );
    assert!(!anthropic.models.is_empty());
    assert!(ModelMap::default().is_empty());
}

#[test]
fn prefix_entries_are_kept_longest_first_then_in_byte_order() {
    // Key order ("a!*" < "a*" < "ab*" < "b*" < "bc-*") differs from the prefixes' order.
    let models: BTreeMap<String, String> = [("a*", "1"), ("a!*", "2"), ("bc-*", "3"), ("b*", "4")]
        .into_iter()
        .chain([("ab*", "5"), ("x", "6")])
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let map = compile_models(&models, "m").unwrap();
    let order: Vec<&str> = map.prefixes.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(order, ["bc-", "a!", "ab", "a", "b"]);
    assert_eq!(map.provider_model("abc"), "5");
    assert_eq!(map.provider_model("a!c"), "2");
    assert_eq!(map.provider_model("x"), "6");
}

#[test]
fn route_lookup_prefers_exact_then_longest_prefix_then_default() {
    let s = sample();
    assert_eq!(s.route_for("gpt-4o-mini"), Some(&[1usize][..]));
    assert_eq!(s.route_for("gpt-4o"), Some(&[0usize, 1][..]));
    assert_eq!(s.route_for("claude-3-opus"), Some(&[2usize][..]));
    assert_eq!(s.route_for("claude-2"), Some(&[2usize, 0][..]));
    assert_eq!(s.route_for("llama3"), None);
    let with_default = SAMPLE.replace(
        r#""total_deadline_ms": 30000"#,
        r#""total_deadline_ms": 30000, "default_route": ["azure"]"#,
    );
    let s = parse(with_default.as_bytes(), "").unwrap();
    assert_eq!(s.route_for("llama3"), Some(&[1usize][..]));
    assert_eq!(s.provider("azure").unwrap().name, "azure");
    assert!(s.provider("nope").is_none());
}

#[test]
fn validation_errors_name_json_paths() {
    let e = err(
        r#"{"providers":[{"name":"a","kind":"openai","cluster":"a"},{"name":"b","kind":"openai","cluster":""}]}"#,
    );
    assert_eq!(e.path, "failover.providers[1].cluster");
    assert_eq!(e.reason, "must not be empty");
    assert_eq!(
        e.to_string(),
        "invalid tollgate config: failover.providers[1].cluster: must not be empty"
    );

    let e = err(
        r#"{"providers":[{"name":"a","kind":"openai","cluster":"a"}],"routes":[{"model":"m","providers":["a","a"]}]}"#,
    );
    assert_eq!(e.path, "failover.routes[0].providers[1]");

    let e = err(
        r#"{"providers":[{"name":"a","kind":"openai","cluster":"a"}],"routes":[{"model":"m","providers":["a","b","x"]}]}"#,
    );
    assert_eq!(e.path, "failover.routes[0].providers[1]");
    assert_eq!(e.reason, "unknown provider \"b\"");

    let cases: &[(&str, &str)] = &[
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a"},{"name":"a","kind":"openai","cluster":"b"}]}"#,
            "failover.providers[1].name",
        ),
        (
            r#"{"providers":[{"name":"","kind":"openai","cluster":"a"}]}"#,
            "failover.providers[0].name",
        ),
        (
            r#"{"providers":[{"name":"a b","kind":"openai","cluster":"a"}]}"#,
            "failover.providers[0].name",
        ),
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a b"}]}"#,
            "failover.providers[0].cluster",
        ),
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a","base_path":"v1"}]}"#,
            "failover.providers[0].base_path",
        ),
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a","base_path":"/v1?x"}]}"#,
            "failover.providers[0].base_path",
        ),
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a","host":"a/b"}]}"#,
            "failover.providers[0].host",
        ),
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a","host":""}]}"#,
            "failover.providers[0].host",
        ),
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a","api_key":{"env":"1BAD"}}]}"#,
            "failover.providers[0].api_key.env",
        ),
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a","api_key":{"file":""}}]}"#,
            "failover.providers[0].api_key.file",
        ),
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a","api_key":{"value":"a b"}}]}"#,
            "failover.providers[0].api_key.value",
        ),
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a","timeout_ms":0}]}"#,
            "failover.providers[0].timeout_ms",
        ),
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a","max_retries":11}]}"#,
            "failover.providers[0].max_retries",
        ),
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a","circuit":{"failure_threshold":0}}]}"#,
            "failover.providers[0].circuit.failure_threshold",
        ),
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a","circuit":{"cooldown_ms":0}}]}"#,
            "failover.providers[0].circuit.cooldown_ms",
        ),
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a","models":{"g*x":"y"}}]}"#,
            "failover.providers[0].models.g*x",
        ),
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a","models":{"g":"y*"}}]}"#,
            "failover.providers[0].models.g",
        ),
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a","models":{"g*":"*y"}}]}"#,
            "failover.providers[0].models.g*",
        ),
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a","models":{"g":""}}]}"#,
            "failover.providers[0].models.g",
        ),
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a"}],"routes":[{"model":"","providers":["a"]}]}"#,
            "failover.routes[0].model",
        ),
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a"}],"routes":[{"model":"*x*","providers":["a"]}]}"#,
            "failover.routes[0].model",
        ),
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a"}],"routes":[{"model":"m","providers":["a"]},{"model":"m","providers":["a"]}]}"#,
            "failover.routes[1].model",
        ),
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a"}],"routes":[{"model":"m","providers":[]}]}"#,
            "failover.routes[0].providers",
        ),
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a"}],"default_route":[]}"#,
            "failover.default_route",
        ),
        (
            r#"{"providers":[{"name":"a","kind":"openai","cluster":"a"}],"default_route":["a","zz"]}"#,
            "failover.default_route[1]",
        ),
        (r#"{"total_deadline_ms":0}"#, "failover.total_deadline_ms"),
        (
            r#"{"backoff":{"base_ms":10,"max_ms":5}}"#,
            "failover.backoff.max_ms",
        ),
        (
            r#"{"backoff":{"max_ms":600001}}"#,
            "failover.backoff.max_ms",
        ),
        (r#"{"backoff":{"jitter":1.5}}"#, "failover.backoff.jitter"),
        (r#"{"backoff":{"jitter":-0.1}}"#, "failover.backoff.jitter"),
        (r#"{"backoff":{"base_ms":100}}"#, "failover.backoff.base_ms"),
        (r#"{"shared_key_prefix":""}"#, "failover.shared_key_prefix"),
        (
            r#"{"shared_key_prefix":"a b"}"#,
            "failover.shared_key_prefix",
        ),
    ];
    for (json, path) in cases {
        assert_eq!(err(json).path, *path, "{json}");
    }
}

#[test]
fn serde_errors_name_json_paths() {
    let e = err(r#"{"providers":[{"name":"a","kind":"openai","cluster":"a","bogus":1}]}"#);
    assert_eq!(e.path, "failover.providers[0].bogus");
    let e = err(r#"{"providers":[{"name":"a","kind":"cohere","cluster":"a"}]}"#);
    assert_eq!(e.path, "failover.providers[0].kind");
    assert!(!e.reason.contains("line"));
    let e = err(r#"{"providers":[{"name":"a","kind":"openai"}]}"#);
    assert_eq!(e.path, "failover.providers[0]");
    assert!(e.reason.contains("cluster"));
    let e = err(
        r#"{"providers":[{"name":"a","kind":"openai","cluster":"c","api_key":{"vault":"x"}}]}"#,
    );
    assert_eq!(e.path, "failover.providers[0].api_key");
    let e = err(
        r#"{"providers":[{"name":"a","kind":"openai","cluster":"c","api_key":{"env":"A","file":"b"}}]}"#,
    );
    assert!(e.path.starts_with("failover.providers[0].api_key"), "{e}");
    let e = err(r#"{"routes":[{"model":"m","providers":["a"],"x":1}]}"#);
    assert_eq!(e.path, "failover.routes[0].x");
    let e = err(r#"{"circuit":{}}"#);
    assert_eq!(e.path, "failover.circuit");
    let e = err(r#"{} trailing"#);
    assert_eq!(e.path, "failover");
    let e = parse(b"[", "").unwrap_err();
    assert_eq!(e.path, ".");
}

#[test]
fn secrets_are_not_printed() {
    let s = sample();
    let debug = format!("{s:?}");
    assert!(!debug.contains("sk-ant-secret"));
    assert!(debug.contains("Inline(<redacted>)"));
    let raw: RawFailoverSettings = serde_json::from_str(SAMPLE).unwrap();
    assert!(!format!("{raw:?}").contains("sk-ant-secret"));
    assert!(s.providers[2].api_key.as_ref().unwrap().is_inline());
    assert!(!s.providers[0].api_key.as_ref().unwrap().is_inline());
}

#[test]
fn custom_key_prefix_shapes_keys() {
    let s = parse(
        br#"{"shared_key_prefix":"tg/fo/","providers":[{"name":"p","kind":"gemini","cluster":"c"}]}"#,
        "",
    )
    .unwrap();
    assert_eq!(s.providers[0].circuit_key, "tg/fo/circuit.p");
    assert_eq!(s.providers[0].backoff_key, "tg/fo/backoff.p");
}

#[test]
fn path_joining() {
    assert_eq!(join_path("", "a.b"), "a.b");
    assert_eq!(join_path("", "."), ".");
    assert_eq!(join_path("x", "."), "x");
    assert_eq!(join_path("x", "[0]"), "x[0]");
    assert_eq!(join_path("x", "a"), "x.a");
}
