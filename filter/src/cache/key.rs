//! Whether a request is served from the cache, and under which key.
//!
//! The key is SHA-256 over, each length-prefixed: a format version, the scope (kind and the
//! caller's user or team), the API the path speaks, the model after mapping, and the canonical
//! JSON of the request body without `model` (the mapped one stands in for it), `stream` and
//! `stream_options` (they choose the framing of the answer, not the answer: a stored stream
//! serves a JSON client and the other way round). Everything else in the body — messages,
//! tools, parameters, `user`, `metadata` — is part of the key, so two requests share an entry
//! only when the provider would have seen the same request.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::canonical::write_canonical;
use super::settings::{CacheSettings, ScopeKind};
use crate::usage::ApiKind;

/// Version of the key derivation; bump it when the key's inputs change.
const KEY_VERSION: &[u8] = b"tollgate-cache-key-v1";

/// A cache key: SHA-256 of everything that determines the answer, scope included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// Which of `sets` sets holds the key.
    pub fn set_index(&self, sets: u32) -> u32 {
        let mut head = [0u8; 8];
        for (dst, src) in head.iter_mut().zip(self.0.iter()) {
            *dst = *src;
        }
        (u64::from_be_bytes(head) % u64::from(sets.max(1))) as u32
    }

    /// The first 8 bytes in hex, for logs.
    pub fn short_hex(&self) -> String {
        self.0.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// Who is asking: the identity budgets use, and the caller's team when one is known.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller<'a> {
    /// The caller (JWT subject, API-key hash or address).
    pub user: Option<&'a str>,
    /// The caller's team, when the identity names one.
    pub team: Option<&'a str>,
}

/// What the cache looks at in a request, gathered by the pipeline after admission.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The client's `:path` (query included or not).
    pub path: &'a str,
    /// The API the path speaks (`None`: not an LLM call).
    pub api: Option<ApiKind>,
    /// The model the client named (rules match it; empty when the request names none).
    pub model: &'a str,
    /// The model after mapping ([`mapped_model`]): part of the key.
    pub mapped_model: &'a str,
    /// The request body as it goes to the provider (after prompt masking).
    pub body: &'a [u8],
    /// The client's `cache-control` header.
    pub cache_control: Option<&'a str>,
    /// The value of the configured opt-in header.
    pub opt_in: Option<&'a str>,
    /// Who is asking.
    pub caller: Caller<'a>,
}

/// Why a request on a cached route neither reads nor writes the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BypassReason {
    /// The client sent `cache-control: no-cache` or `no-store`.
    ClientNoCache,
    /// Not deterministic: no `temperature` 0, no `seed`, no opt-in header.
    NotDeterministic,
    /// A stream in a format whose replay is not implemented (only OpenAI chat streams are).
    StreamFormat,
    /// The scope needs a user or team the request does not have.
    NoScope,
    /// The body is not a JSON object.
    UnreadableBody,
}

impl BypassReason {
    /// Stable name for metric labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            BypassReason::ClientNoCache => "client_no_cache",
            BypassReason::NotDeterministic => "not_deterministic",
            BypassReason::StreamFormat => "stream_format",
            BypassReason::NoScope => "no_scope",
            BypassReason::UnreadableBody => "unreadable_body",
        }
    }
}

/// How a cached answer is given to this client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyShape {
    /// OpenAI chat completions: a `chat.completion` object, or replayed as a
    /// `chat.completion.chunk` stream (with a usage chunk when the client asked for one).
    OpenAiChat {
        /// The client asked for a stream.
        stream: bool,
        /// The client asked for `stream_options.include_usage`.
        include_usage: bool,
    },
    /// Any other API, non-streamed: the stored JSON body as the client first received it.
    Verbatim,
}

/// A request the cache serves: its key, how long an answer lives, how a hit is shaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The key (scope included).
    pub key: CacheKey,
    /// Time to live of an entry stored for it, ms.
    pub ttl_ms: u64,
    /// How a hit is given to the client.
    pub reply: ReplyShape,
    /// The API the request speaks.
    pub api: ApiKind,
}

/// The cache's decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No rule covers the request: the cache is not involved (no `x-tollgate-cache` header).
    NotCovered,
    /// A rule covers it, but this request neither reads nor writes the cache.
    Bypass(BypassReason),
    /// Look the key up; on a miss, store the answer.
    Lookup(Lookup),
}

/// The model a client model is answered by, as the key names it: with failover routing, the
/// first provider of the model's route and that provider's model for it (`anthropic/claude-…`),
/// so a changed mapping never serves answers of the old model; otherwise the client's model.
pub fn mapped_model(
    failover: Option<&crate::failover::FailoverSettings>,
    client_model: &str,
) -> String {
    let first = failover.and_then(|f| {
        let index = *f.route_for(client_model)?.first()?;
        f.providers.get(index)
    });
    match first {
        Some(p) => format!("{}/{}", p.name, p.models.provider_model(client_model)),
        None => client_model.to_string(),
    }
}

/// True when a `cache-control` value carries `no-cache` or `no-store`.
pub fn client_refuses_cache(cache_control: &str) -> bool {
    cache_control.split(',').any(|d| {
        let name = d.split('=').next().unwrap_or_default().trim();
        name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store")
    })
}

fn opted_in(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        let v = v.trim();
        v == "1" || v.eq_ignore_ascii_case("true")
    })
}

fn is_zero(value: Option<&Value>) -> bool {
    value.and_then(Value::as_f64).is_some_and(|t| t == 0.0)
}

fn is_set(value: Option<&Value>) -> bool {
    value.is_some_and(|v| !v.is_null())
}

/// Where an API keeps its sampling parameters: top level, Gemini's `generationConfig`, or
/// Ollama's `options`.
fn sampling(api: ApiKind, body: &Map<String, Value>) -> Option<&Map<String, Value>> {
    match api {
        ApiKind::Gemini => body
            .get("generationConfig")
            .or_else(|| body.get("generation_config"))
            .and_then(Value::as_object),
        ApiKind::OllamaChat => body.get("options").and_then(Value::as_object),
        _ => Some(body),
    }
}

/// True when the request's answer is repeatable: embeddings, `temperature` 0 or a `seed`.
pub fn is_deterministic(api: ApiKind, body: &Map<String, Value>) -> bool {
    if api == ApiKind::OpenAiEmbeddings {
        return true;
    }
    sampling(api, body).is_some_and(|p| is_zero(p.get("temperature")) || is_set(p.get("seed")))
}

/// True when the request asks for a streamed answer.
pub fn wants_stream(api: ApiKind, path: &str, body: &Map<String, Value>) -> bool {
    match api {
        ApiKind::Gemini => crate::usage::is_gemini_stream_path(path),
        // Ollama streams unless told not to.
        ApiKind::OllamaChat => body.get("stream").and_then(Value::as_bool) != Some(false),
        _ => body.get("stream").and_then(Value::as_bool) == Some(true),
    }
}

fn include_usage(body: &Map<String, Value>) -> bool {
    body.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        == Some(true)
}

fn put(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// The key of a request body (already parsed) for a scope, API and mapped model.
pub fn derive_key(
    scope: ScopeKind,
    scope_id: &str,
    api: ApiKind,
    model: &str,
    body: &Map<String, Value>,
) -> CacheKey {
    let mut rest = body.clone();
    for framing in ["model", "stream", "stream_options"] {
        rest.remove(framing);
    }
    let mut canonical = Vec::new();
    write_canonical(&Value::Object(rest), &mut canonical);
    let mut h = Sha256::new();
    put(&mut h, KEY_VERSION);
    put(&mut h, scope.as_str().as_bytes());
    put(&mut h, scope_id.as_bytes());
    put(&mut h, api.as_str().as_bytes());
    put(&mut h, model.as_bytes());
    put(&mut h, &canonical);
    let digest = h.finalize();
    let mut key = [0u8; 32];
    for (dst, src) in key.iter_mut().zip(digest.iter()) {
        *dst = *src;
    }
    CacheKey(key)
}

/// Decides what the cache does with a request.
pub fn decide(settings: &CacheSettings, req: &RequestView<'_>) -> Decision {
    let Some(api) = req.api else {
        return Decision::NotCovered;
    };
    let path = req.path.split(['?', '#']).next().unwrap_or(req.path);
    let Some(rule) = settings.rule_for(path, req.model) else {
        return Decision::NotCovered;
    };
    if req.cache_control.is_some_and(client_refuses_cache) {
        return Decision::Bypass(BypassReason::ClientNoCache);
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(req.body) else {
        return Decision::Bypass(BypassReason::UnreadableBody);
    };
    if !is_deterministic(api, &body) && !opted_in(req.opt_in) {
        return Decision::Bypass(BypassReason::NotDeterministic);
    }
    let stream = wants_stream(api, req.path, &body);
    let reply = match (api, stream) {
        (ApiKind::OpenAiChat, stream) => ReplyShape::OpenAiChat {
            stream,
            include_usage: stream && include_usage(&body),
        },
        (_, false) => ReplyShape::Verbatim,
        (_, true) => return Decision::Bypass(BypassReason::StreamFormat),
    };
    let scope_id = match rule.scope {
        ScopeKind::User => req.caller.user,
        ScopeKind::Team => req.caller.team,
        ScopeKind::Shared => Some(""),
    };
    let Some(scope_id) = scope_id.filter(|s| rule.scope == ScopeKind::Shared || !s.is_empty())
    else {
        return Decision::Bypass(BypassReason::NoScope);
    };
    Decision::Lookup(Lookup {
        key: derive_key(rule.scope, scope_id, api, req.mapped_model, &body),
        ttl_ms: rule.ttl_ms,
        reply,
        api,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::settings::parse;

    fn settings(scope: &str) -> CacheSettings {
        parse(
            format!(
                r#"{{"scope":"{scope}","rules":[{{"path_prefix":"/v1/"}},{{"path_prefix":"/api/"}},{{"model":"gemini*"}}]}}"#
            )
            .as_bytes(),
            "cache",
        )
        .unwrap()
    }

    fn view<'a>(path: &'a str, body: &'a str) -> RequestView<'a> {
        RequestView {
            path,
            api: crate::usage::classify_path(path),
            model: "gpt-4o",
            mapped_model: "gpt-4o",
            body: body.as_bytes(),
            cache_control: None,
            opt_in: None,
            caller: Caller {
                user: Some("alice"),
                team: Some("red"),
            },
        }
    }

    fn key_of(d: Decision) -> CacheKey {
        match d {
            Decision::Lookup(l) => l.key,
            other => panic!("expected a lookup, got {other:?}"),
        }
    }

    const CHAT: &str = "/v1/chat/completions";

    #[test]
    fn key_ignores_order_whitespace_and_framing() {
        let s = settings("user");
        let a = key_of(decide(
            &s,
            &view(
                CHAT,
                r#"{"model":"gpt-4o","temperature":0,"messages":[{"role":"user","content":"hi"}]}"#,
            ),
        ));
        let b = key_of(decide(
            &s,
            &view(
                CHAT,
                r#"{ "messages" : [ {"content":"hi","role":"user"} ], "temperature":0.0,
                    "stream": true, "stream_options": {"include_usage": true}, "model":"gpt-4o-alias" }"#,
            ),
        ));
        assert_eq!(a, b);
    }

    #[test]
    fn key_changes_with_everything_that_determines_the_answer() {
        let s = settings("user");
        let base = r#"{"temperature":0,"messages":[{"role":"user","content":"hi"}]}"#;
        let k = key_of(decide(&s, &view(CHAT, base)));
        let variants = [
            r#"{"temperature":0,"messages":[{"role":"user","content":"hi!"}]}"#,
            r#"{"temperature":0,"messages":[{"role":"system","content":"hi"}]}"#,
            r#"{"temperature":0,"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
            r#"{"temperature":0,"tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"user","content":"hi"}]}"#,
            r#"{"temperature":0,"seed":1,"messages":[{"role":"user","content":"hi"}]}"#,
        ];
        for v in variants {
            assert_ne!(k, key_of(decide(&s, &view(CHAT, v))), "{v}");
        }
        let mut other_model = view(CHAT, base);
        other_model.mapped_model = "gpt-4o-mini";
        assert_ne!(k, key_of(decide(&s, &other_model)));
        let other_api = view(
            "/v1/responses",
            r#"{"temperature":0,"messages":[{"role":"user","content":"hi"}]}"#,
        );
        assert_ne!(k, key_of(decide(&s, &other_api)));
    }

    #[test]
    fn scopes_isolate_callers() {
        let body = r#"{"temperature":0,"messages":[]}"#;
        for scope in ["user", "team", "shared"] {
            let s = settings(scope);
            let alice = key_of(decide(&s, &view(CHAT, body)));
            let mut bob = view(CHAT, body);
            bob.caller.user = Some("bob");
            let bob = key_of(decide(&s, &bob));
            let mut blue = view(CHAT, body);
            blue.caller.team = Some("blue");
            let blue = key_of(decide(&s, &blue));
            match scope {
                "user" => {
                    assert_ne!(alice, bob);
                    assert_eq!(alice, blue);
                }
                "team" => {
                    assert_eq!(alice, bob);
                    assert_ne!(alice, blue);
                }
                _ => {
                    assert_eq!(alice, bob);
                    assert_eq!(alice, blue);
                }
            }
        }
        // The same id under different scope kinds is a different key.
        let user = key_of(decide(&settings("user"), &view(CHAT, body)));
        let mut v = view(CHAT, body);
        v.caller.team = Some("alice");
        let team = key_of(decide(&settings("team"), &v));
        assert_ne!(user, team);
    }

    #[test]
    fn a_team_scope_without_a_team_bypasses_never_falls_back_to_shared() {
        let mut v = view(CHAT, r#"{"temperature":0}"#);
        v.caller.team = None;
        assert_eq!(
            decide(&settings("team"), &v),
            Decision::Bypass(BypassReason::NoScope)
        );
        v.caller.team = Some("");
        assert_eq!(
            decide(&settings("team"), &v),
            Decision::Bypass(BypassReason::NoScope)
        );
    }

    #[test]
    fn only_deterministic_requests_by_default() {
        let s = settings("user");
        let no = [
            r#"{"messages":[]}"#,
            r#"{"temperature":0.2,"messages":[]}"#,
            r#"{"seed":null,"messages":[]}"#,
        ];
        for body in no {
            assert_eq!(
                decide(&s, &view(CHAT, body)),
                Decision::Bypass(BypassReason::NotDeterministic),
                "{body}"
            );
        }
        let mut opted = view(CHAT, r#"{"temperature":1}"#);
        opted.opt_in = Some("true");
        assert!(matches!(decide(&s, &opted), Decision::Lookup(_)));
        opted.opt_in = Some("no");
        assert!(matches!(decide(&s, &opted), Decision::Bypass(_)));
        for body in [r#"{"seed":7}"#, r#"{"temperature":0}"#] {
            assert!(matches!(decide(&s, &view(CHAT, body)), Decision::Lookup(_)));
        }
        // Embeddings are always cacheable.
        assert!(matches!(
            decide(&s, &view("/v1/embeddings", r#"{"input":"x"}"#)),
            Decision::Lookup(_)
        ));
        // Gemini and Ollama keep their sampling parameters nested.
        let mut g = view(
            "/v1beta/models/gemini-2.0-flash:generateContent",
            r#"{"generationConfig":{"temperature":0},"contents":[]}"#,
        );
        g.model = "gemini-2.0-flash";
        assert!(matches!(decide(&s, &g), Decision::Lookup(_)));
        let o = view(
            "/api/chat",
            r#"{"options":{"seed":3},"stream":false,"messages":[]}"#,
        );
        assert!(matches!(decide(&s, &o), Decision::Lookup(_)));
    }

    #[test]
    fn client_no_cache_and_no_store_bypass() {
        let s = settings("user");
        for cc in [
            "no-cache",
            "No-Store",
            "max-age=0, no-cache",
            "no-cache=\"x\"",
        ] {
            let mut v = view(CHAT, r#"{"temperature":0}"#);
            v.cache_control = Some(cc);
            assert_eq!(
                decide(&s, &v),
                Decision::Bypass(BypassReason::ClientNoCache),
                "{cc}"
            );
        }
        let mut v = view(CHAT, r#"{"temperature":0}"#);
        v.cache_control = Some("max-age=60");
        assert!(matches!(decide(&s, &v), Decision::Lookup(_)));
    }

    #[test]
    fn streams_replay_only_for_openai_chat() {
        let s = settings("user");
        match decide(
            &s,
            &view(
                CHAT,
                r#"{"temperature":0,"stream":true,"stream_options":{"include_usage":true}}"#,
            ),
        ) {
            Decision::Lookup(l) => assert_eq!(
                l.reply,
                ReplyShape::OpenAiChat {
                    stream: true,
                    include_usage: true
                }
            ),
            other => panic!("{other:?}"),
        }
        let anthropic_stream = view("/v1/messages", r#"{"temperature":0,"stream":true}"#);
        assert_eq!(
            decide(&s, &anthropic_stream),
            Decision::Bypass(BypassReason::StreamFormat)
        );
        let anthropic_json = view("/v1/messages", r#"{"temperature":0}"#);
        match decide(&s, &anthropic_json) {
            Decision::Lookup(l) => assert_eq!(l.reply, ReplyShape::Verbatim),
            other => panic!("{other:?}"),
        }
        let mut gemini_stream = view(
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
            r#"{"generationConfig":{"temperature":0}}"#,
        );
        gemini_stream.model = "gemini-2.0-flash";
        assert_eq!(
            decide(&s, &gemini_stream),
            Decision::Bypass(BypassReason::StreamFormat)
        );
        let ollama_default_stream = view("/api/chat", r#"{"options":{"temperature":0}}"#);
        assert_eq!(
            decide(&s, &ollama_default_stream),
            Decision::Bypass(BypassReason::StreamFormat)
        );
    }

    #[test]
    fn uncovered_and_unreadable_requests() {
        let s = settings("user");
        let mut v = view("/other", "{}");
        v.model = "llama";
        assert_eq!(decide(&s, &v), Decision::NotCovered);
        assert_eq!(
            decide(&s, &view(CHAT, "not json")),
            Decision::Bypass(BypassReason::UnreadableBody)
        );
        assert_eq!(
            decide(&s, &view(CHAT, "[1]")),
            Decision::Bypass(BypassReason::UnreadableBody)
        );
    }

    #[test]
    fn the_mapped_model_names_the_routes_first_provider_and_its_model() {
        let failover = crate::failover::parse(
            br#"{"providers":[
                {"name":"anthropic","kind":"anthropic","cluster":"a","models":{"gpt-4o*":"claude-sonnet-4"}},
                {"name":"openai","kind":"openai","cluster":"o"}],
              "routes":[{"model":"gpt-4o*","providers":["anthropic","openai"]}]}"#,
            "failover",
        )
        .unwrap();
        assert_eq!(
            mapped_model(Some(&failover), "gpt-4o-mini"),
            "anthropic/claude-sonnet-4"
        );
        assert_eq!(mapped_model(Some(&failover), "llama3"), "llama3");
        assert_eq!(mapped_model(None, "gpt-4o-mini"), "gpt-4o-mini");
    }

    #[test]
    fn set_index_is_within_bounds() {
        let k = CacheKey([0xff; 32]);
        assert!(k.set_index(64) < 64);
        assert_eq!(k.set_index(0), 0);
        assert_eq!(k.short_hex(), "ffffffffffffffff");
    }
}
