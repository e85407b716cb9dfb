//! `make soak`: Envoy 1.40 (V8) + the real `tollgate.wasm` in front of nine mock providers, under
//! mixed traffic with injected faults for `SOAK_SECONDS` (default 600), then a verdict.
//!
//! Traffic (paced to `SOAK_RPS` over `SOAK_CLIENTS` threads, all on 127.0.0.1): OpenAI chat
//! requests, streamed and not, through tollgate's failover routes to OpenAI, Anthropic and Gemini
//! (translated) and an OpenAI-compatible (Ollama-style) server; native Ollama `/api/chat`; valid,
//! freshly minted (cold verification), expired, forged and missing JWTs; prompts carrying a
//! secret (masked); the first provider of a request failing with 429 (+ back-off hint), 500, 503,
//! a connection reset or answering slowly (per-request `x-mock-fault`, which only the first
//! attempt carries: tollgate's failover callouts do not copy client headers), one provider failing
//! 5% of everything it gets; a provider slower than the route timeout; clients aborting streams;
//! streams truncated or reset mid-way; and a route whose providers are all down.
//!
//! Verdict (exit status 1 on any failure), written to `target/soak/summary.md` with
//! `samples.csv`, `memory.png` and the tail of Envoy's log:
//!
//! - Envoy alive, the V8 VMs neither recreated nor reloaded (`wasm.*` stats), no panic / VM
//!   failure in Envoy's log;
//! - every 5xx the client saw is on the all-down route; every request a healthy provider could
//!   serve got a complete answer (status, body shape, stream terminator);
//! - memory flat after warm-up: least-squares slopes of Envoy's RSS and of the wasm VMs' linear
//!   memory under the thresholds below;
//! - tollgate's `tollgate_tokens_total` per provider equals what that mock provider reported for
//!   the responses it completed, for every provider whose responses are never cut
//!   (aborted/truncated/reset streams are confined to their own provider, `fragile`, whose
//!   requests must each be accounted exactly once).
//!
//! Wasm VM memory: Envoy 1.40 exposes no V8 memory stat, so it is read from
//! `/proc/<envoy>/smaps`: V8 reserves each wasm memory with a guard region of several GiB
//! (`---p`); the read-write mapping that ends where that guard begins is the VM's committed
//! linear memory (`memory.size`; it only grows, so a leak shows as steps) and its `Rss` the
//! touched part.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jwt_simple::prelude::Duration as JwtDuration;
use jwt_simple::prelude::*;
use tollgate_e2e::mock::client;
use tollgate_e2e::mock::{Faults, MockHandle, MockOptions, MockProvider};
use tollgate_e2e::{repo_root, template, Envoy, Vars};

const OPENAI_KEY: &str = "sk-proj-soakOpenAiKeyAbCdEfGhIjKlMnOpQrStUv012345";
const ANTHROPIC_KEY: &str = "sk-ant-api03-soakAnthropicKeyAbCdEfGhIjKlMnOpQr-0123";
const GEMINI_KEY: &str = "AIzaSySoakGeminiKeyAbCdEfGhIjKlMnOpQrSt";
const ISSUER: &str = "https://soak.tollgate.test";
const AUDIENCE: &str = "tollgate-soak";
const KID: &str = "soak-es256";
/// Envoy RSS may grow at most this much per minute after warm-up.
const MAX_RSS_SLOPE_KIB_PER_MIN: f64 = 1024.0;
/// The wasm VMs' linear memory (all VMs together) may grow at most this much per minute after
/// warm-up: one 64 KiB page. A leak of 32 bytes per request at 34 req/s is 64 KiB/min.
const MAX_WASM_SLOPE_KIB_PER_MIN: f64 = 64.0;
/// Healthy routes: the client model and its providers in order.
const HEALTHY_ROUTES: &[(&str, &[&str])] = &[
    (
        "soak-a",
        &["anthropic", "openai", "gemini", "ollama-compat"],
    ),
    (
        "soak-g",
        &["gemini", "anthropic", "ollama-compat", "openai"],
    ),
    (
        "soak-o",
        &["openai", "gemini", "anthropic", "ollama-compat"],
    ),
    (
        "soak-l",
        &["ollama-compat", "anthropic", "openai", "gemini"],
    ),
];
/// Faults a healthy route's first attempt may get (tollgate fails over from each of them).
const FIRST_ATTEMPT_FAULTS: &[&str] = &[
    "status=500",
    "status=503",
    "status=429; retry_after_ms=100",
    "reset=before",
    "latency_ms=250",
];
/// Providers whose every completed response reaches tollgate whole: their token counters must
/// equal the mock's exactly.
const EXACT_PROVIDERS: &[&str] = &[
    "openai",
    "anthropic",
    "gemini",
    "ollama-compat",
    "ollama",
    "steady",
];

// ---------------------------------------------------------------------------------------------
// Settings

/// Run settings from the environment.
#[derive(Debug, Clone)]
struct Settings {
    seconds: u64,
    rps: f64,
    clients: usize,
    workers: u32,
    out: PathBuf,
    seed: u64,
}

impl Settings {
    fn from_env() -> Settings {
        let num = |name: &str, default: f64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|n| *n > 0.0)
                .unwrap_or(default)
        };
        Settings {
            seconds: num("SOAK_SECONDS", 600.0) as u64,
            rps: num("SOAK_RPS", 40.0),
            clients: num("SOAK_CLIENTS", 8.0) as usize,
            workers: num("SOAK_WORKERS", 2.0) as u32,
            out: std::env::var_os("SOAK_OUT")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join("target/soak")),
            seed: num("SOAK_SEED", 1.0) as u64,
        }
    }

    /// Seconds of warm-up excluded from the memory fit: a quarter of the run, at most 2 minutes.
    fn warmup_seconds(&self) -> f64 {
        (self.seconds as f64 / 4.0).min(120.0)
    }

    fn sample_every(&self) -> Duration {
        Duration::from_secs((self.seconds / 120).clamp(1, 5))
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic randomness

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens

/// The JWT material of the run.
struct Tokens {
    key: ES256KeyPair,
    /// Pre-minted valid tokens (verified once per worker, then cached).
    valid: Vec<String>,
    expired: String,
    /// Signed by another key under the same `kid`.
    forged: String,
    minted: AtomicU64,
}

impl Tokens {
    fn generate() -> Tokens {
        let key = ES256KeyPair::generate().with_key_id(KID);
        let valid = (0..16)
            .map(|i| Self::sign(&key, &format!("user-{i}"), JwtDuration::from_hours(4), 0))
            .collect();
        let expired = {
            let mut claims = Self::claims("user-expired", JwtDuration::from_hours(1));
            let now = Clock::now_since_epoch().as_secs();
            claims.issued_at = Some(JwtDuration::from_secs(now - 7200));
            claims.invalid_before = Some(JwtDuration::from_secs(now - 7200));
            claims.expires_at = Some(JwtDuration::from_secs(now - 3600));
            key.sign(claims).expect("sign the expired token")
        };
        let impostor = ES256KeyPair::generate().with_key_id(KID);
        let forged = Self::sign(&impostor, "user-forged", JwtDuration::from_hours(4), 0);
        Tokens {
            key,
            valid,
            expired,
            forged,
            minted: AtomicU64::new(0),
        }
    }

    fn claims(sub: &str, ttl: JwtDuration) -> JWTClaims<NoCustomClaims> {
        Claims::create(ttl)
            .with_issuer(ISSUER)
            .with_audience(AUDIENCE)
            .with_subject(sub)
    }

    fn sign(key: &ES256KeyPair, sub: &str, ttl: JwtDuration, nonce: u64) -> String {
        let claims = Self::claims(sub, ttl).with_jwt_id(format!("jti-{nonce}"));
        key.sign(claims).expect("sign a token")
    }

    /// A token never seen before: tollgate must verify its signature.
    fn fresh(&self) -> String {
        let n = self.minted.fetch_add(1, Ordering::Relaxed);
        Self::sign(
            &self.key,
            &format!("fresh-{}", n % 64),
            JwtDuration::from_hours(1),
            n,
        )
    }

    fn jwks(&self) -> serde_json::Value {
        let mut jwk: serde_json::Value =
            serde_json::from_str(&self.key.public_key().to_jwk()).expect("JWK is JSON");
        if let Some(obj) = jwk.as_object_mut() {
            obj.retain(|k, _| matches!(k.as_str(), "kty" | "crv" | "x" | "y"));
            obj.insert("kid".into(), KID.into());
            obj.insert("alg".into(), "ES256".into());
        }
        serde_json::json!({ "keys": [jwk] })
    }
}

// ---------------------------------------------------------------------------------------------
// Providers and tollgate's configuration

/// The mock providers, by tollgate provider name (`ollama` is the native-API one).
struct Mocks(BTreeMap<&'static str, MockHandle>);

impl Mocks {
    fn start(seed: u64) -> Mocks {
        let mut m = BTreeMap::new();
        let keyed = |key: &str| MockOptions {
            max_recorded: 64,
            ..MockOptions::with_api_key(key)
        };
        let open = |faults: Faults| MockOptions {
            max_recorded: 64,
            faults,
            ..MockOptions::default()
        };
        let start = |o: MockOptions| MockProvider::start(o).expect("start a mock provider");
        m.insert("openai", start(keyed(OPENAI_KEY)));
        m.insert("anthropic", start(keyed(ANTHROPIC_KEY)));
        m.insert(
            "gemini",
            start(MockOptions {
                faults: Faults {
                    fail_rate: Some(0.05),
                    seed: Some(seed),
                    ..Faults::default()
                },
                ..keyed(GEMINI_KEY)
            }),
        );
        m.insert("ollama-compat", start(open(Faults::default())));
        m.insert("ollama", start(open(Faults::default())));
        m.insert("fragile", start(open(Faults::default())));
        m.insert("steady", start(open(Faults::default())));
        m.insert(
            "slow",
            start(open(Faults {
                latency_ms: Some(3_500),
                ..Faults::default()
            })),
        );
        m.insert(
            "down-a",
            start(open(Faults {
                status: Some(500),
                ..Faults::default()
            })),
        );
        m.insert(
            "down-b",
            start(open(Faults {
                status: Some(503),
                ..Faults::default()
            })),
        );
        Mocks(m)
    }

    fn port(&self, name: &str) -> u16 {
        self.0.get(name).map(MockHandle::port).unwrap_or(0)
    }
}

fn plugin_config(tokens: &Tokens) -> String {
    let provider = |name: &str, kind: &str, cluster: &str, threshold: u32, cooldown_ms: u64| {
        let mut p = serde_json::json!({
            "name": name, "kind": kind, "cluster": cluster, "max_retries": 0,
            "circuit": {"failure_threshold": threshold, "cooldown_ms": cooldown_ms}
        });
        match kind {
            "anthropic" => {
                p["api_key"] = serde_json::json!({"env": "ANTHROPIC_API_KEY"});
                p["models"] = serde_json::json!({"soak-*": "claude-sonnet-4"});
            }
            "gemini" => {
                p["api_key"] = serde_json::json!({"env": "GEMINI_API_KEY"});
                p["models"] = serde_json::json!({"soak-*": "gemini-2.0-flash"});
            }
            _ if name == "openai" => p["api_key"] = serde_json::json!({"env": "OPENAI_API_KEY"}),
            _ => {}
        }
        p
    };
    let mut routes: Vec<serde_json::Value> = HEALTHY_ROUTES
        .iter()
        .map(|(model, providers)| serde_json::json!({"model": model, "providers": providers}))
        .collect();
    routes.push(serde_json::json!({"model": "soak-fragile", "providers": ["fragile"]}));
    routes.push(serde_json::json!({"model": "soak-slow", "providers": ["slow", "steady"]}));
    routes.push(serde_json::json!({"model": "soak-down", "providers": ["down-a", "down-b"]}));
    serde_json::json!({
        "jwt": {
            "providers": [{
                "name": "soak", "issuer": ISSUER, "audiences": [AUDIENCE],
                "local_jwks": tokens.jwks(),
                "claims_to_headers": [{"claim": "sub", "header": "x-user-id"}]
            }],
            "rules": [{"path_prefix": "/", "requires": {"provider": "soak"}}],
            // Small, so that the verified-token cache (fresh tokens arrive about once a second)
            // is full before the warm-up ends: growth after it is then not the cache filling.
            "cache_size": 32
        },
        "failover": {
            "providers": [
                provider("openai", "openai", "openai", 5, 1000),
                provider("anthropic", "anthropic", "anthropic", 5, 1000),
                provider("gemini", "gemini", "gemini", 5, 1000),
                provider("ollama-compat", "openai-compatible", "ollama", 5, 1000),
                // Broken streams are not failures to fail over from: keep its circuit closed.
                provider("fragile", "openai", "fragile", 10_000, 1000),
                provider("slow", "openai", "slow", 2, 5000),
                provider("steady", "openai", "steady", 5, 1000),
                provider("down-a", "openai", "down_a", 3, 2000),
                provider("down-b", "openai", "down_b", 3, 2000),
            ],
            "routes": routes
        }
    })
    .to_string()
}

// ---------------------------------------------------------------------------------------------
// Traffic

/// What one request is and what it must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    /// Healthy route, JSON answer; the first attempt may be faulted.
    RoutedJson,
    /// Healthy route, streamed answer; the first attempt may be faulted.
    RoutedStream,
    /// Native Ollama `/api/chat` (not routed; usage from NDJSON or JSON).
    OllamaNative,
    /// The primary is slower than the route timeout: answered by the fallback.
    SlowPrimary,
    /// Expired token: 401.
    ExpiredToken,
    /// Bad signature: 401.
    ForgedToken,
    /// No token: 401.
    MissingToken,
    /// The client reads two stream events, then closes the connection.
    ClientAbort,
    /// The provider ends the stream without its usage and terminator.
    Truncated,
    /// The provider resets the connection half-way through the stream.
    MidStreamReset,
    /// Every provider of the route is down: 503, the one 5xx the client may see.
    AllDown,
}

impl Class {
    const ALL: [(Class, u32); 11] = [
        (Class::RoutedJson, 30),
        (Class::RoutedStream, 26),
        (Class::OllamaNative, 6),
        (Class::SlowPrimary, 2),
        (Class::ExpiredToken, 7),
        (Class::ForgedToken, 6),
        (Class::MissingToken, 2),
        (Class::ClientAbort, 9),
        (Class::Truncated, 4),
        (Class::MidStreamReset, 4),
        (Class::AllDown, 4),
    ];

    fn pick(rng: &mut Rng) -> Class {
        let total: u32 = Self::ALL.iter().map(|(_, w)| w).sum();
        let mut r = (rng.next_u64() % u64::from(total)) as u32;
        for (class, weight) in Self::ALL {
            if r < weight {
                return class;
            }
            r -= weight;
        }
        Class::RoutedJson
    }

    fn describe(self) -> &'static str {
        match self {
            Class::RoutedJson => "routed chat, JSON (healthy route; 20% first attempts faulted)",
            Class::RoutedStream => {
                "routed chat, stream (healthy route; 20% first attempts faulted)"
            }
            Class::OllamaNative => "native Ollama /api/chat (NDJSON or JSON)",
            Class::SlowPrimary => "primary slower than the route timeout → fallback",
            Class::ExpiredToken => "expired JWT → 401",
            Class::ForgedToken => "forged JWT (other key, same kid) → 401",
            Class::MissingToken => "no JWT → 401",
            Class::ClientAbort => "client aborts a stream after 2 events (`fragile`)",
            Class::Truncated => "stream truncated by the provider (`fragile`)",
            Class::MidStreamReset => "provider resets mid-stream (`fragile`)",
            Class::AllDown => "all providers of the route down → 503 (forced)",
        }
    }

    /// The requests tollgate sends to the `fragile` provider.
    fn is_fragile(self) -> bool {
        matches!(
            self,
            Class::ClientAbort | Class::Truncated | Class::MidStreamReset
        )
    }
}

/// Per-class outcome counters.
#[derive(Debug, Default, Clone)]
struct ClassStats {
    sent: u64,
    ok: u64,
    statuses: BTreeMap<u16, u64>,
    io_errors: u64,
    failures: u64,
    examples: Vec<String>,
    faulted_first_attempts: u64,
    fresh_tokens: u64,
    five_xx: u64,
}

/// Everything the clients observed.
#[derive(Default)]
struct Observed {
    classes: BTreeMap<Class, ClassStats>,
}

/// How one request went: the status seen (0: none), and what is wrong, if anything.
struct Outcome {
    status: u16,
    problem: Option<String>,
    io_error: bool,
}

impl Outcome {
    fn ok(status: u16) -> Outcome {
        Outcome {
            status,
            problem: None,
            io_error: false,
        }
    }

    fn bad(status: u16, problem: String) -> Outcome {
        Outcome {
            status,
            problem: Some(problem),
            io_error: false,
        }
    }

    fn io(problem: String) -> Outcome {
        Outcome {
            status: 0,
            problem: Some(problem),
            io_error: true,
        }
    }
}

const SECRET: &str = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd";

fn chat_body(rng: &mut Rng, model: &str, stream: bool, include_usage: bool) -> String {
    let topics = [
        "summarise the plot of a short novel about lighthouse keepers",
        "explain backpressure in stream processing",
        "write a haiku about proxies",
        "list three uses of a token bucket",
        "what is a circuit breaker in distributed systems?",
    ];
    let mut content = topics[rng.below(topics.len())].to_string();
    for _ in 0..rng.below(4) {
        content.push_str(" and then elaborate a little further on the previous point");
    }
    if rng.chance(0.1) {
        content.push_str(&format!(" (my key is {SECRET}, keep it safe)"));
    }
    let mut body = serde_json::json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": content}
        ],
        "max_tokens": 64
    });
    if stream {
        body["stream"] = true.into();
        if include_usage {
            body["stream_options"] = serde_json::json!({"include_usage": true});
        }
    }
    body.to_string()
}

/// Checks an OpenAI `chat.completion` JSON answer.
fn check_chat_json(resp: &client::Response) -> Option<String> {
    let Ok(v) = resp.json() else {
        return Some(format!("not JSON: {}", snippet(&resp.text())));
    };
    let content = v["choices"][0]["message"]["content"].as_str().unwrap_or("");
    if v["object"] != "chat.completion" || content.is_empty() {
        return Some(format!("not a chat.completion: {}", snippet(&resp.text())));
    }
    if v["usage"]["prompt_tokens"].as_u64().unwrap_or(0) == 0 {
        return Some(format!("no usage: {}", snippet(&resp.text())));
    }
    None
}

/// Checks an OpenAI chat stream: chunks, no error event, `[DONE]`, usage when asked for.
fn check_chat_stream(text: &str, include_usage: bool) -> Option<String> {
    if !text.contains("chat.completion.chunk") {
        return Some(format!("no chunks: {}", snippet(text)));
    }
    if text.contains("\"error\"") {
        return Some(format!("error event: {}", snippet(text)));
    }
    if !text.trim_end().ends_with("data: [DONE]") {
        return Some(format!("no [DONE]: {}", snippet(text)));
    }
    if include_usage && !text.contains("\"prompt_tokens\"") {
        return Some(format!("usage asked for, none sent: {}", snippet(text)));
    }
    None
}

fn snippet(text: &str) -> String {
    let cut: String = text.chars().take(240).collect();
    cut.replace('\n', "\\n")
}

/// Shared by the client threads.
struct Client {
    port: u16,
    tokens: Arc<Tokens>,
    observed: Arc<Mutex<Observed>>,
}

impl Client {
    fn run(&self, rng: &mut Rng) {
        let class = Class::pick(rng);
        let mut faulted = false;
        let mut fresh = false;
        let outcome = match class {
            Class::RoutedJson | Class::RoutedStream => {
                let stream = class == Class::RoutedStream;
                let model = HEALTHY_ROUTES[rng.below(HEALTHY_ROUTES.len())].0;
                let token = if rng.chance(0.05) {
                    fresh = true;
                    self.tokens.fresh()
                } else {
                    self.tokens.valid[rng.below(self.tokens.valid.len())].clone()
                };
                let fault = rng
                    .chance(0.2)
                    .then(|| FIRST_ATTEMPT_FAULTS[rng.below(FIRST_ATTEMPT_FAULTS.len())]);
                faulted = fault.is_some();
                let include_usage = stream && rng.chance(0.5);
                let body = chat_body(rng, model, stream, include_usage);
                self.chat(&token, &body, fault, stream, include_usage)
            }
            Class::SlowPrimary => {
                let body = chat_body(rng, "soak-slow", false, false);
                self.chat(&self.valid(rng), &body, None, false, false)
            }
            Class::OllamaNative => self.ollama(rng),
            Class::ExpiredToken | Class::ForgedToken | Class::MissingToken => {
                let token = match class {
                    Class::ExpiredToken => Some(self.tokens.expired.clone()),
                    Class::ForgedToken => Some(self.tokens.forged.clone()),
                    _ => None,
                };
                let stream = rng.chance(0.5);
                let body = chat_body(rng, "soak-o", stream, false);
                self.unauthorized(token.as_deref(), &body)
            }
            Class::ClientAbort => {
                let body = chat_body(rng, "soak-fragile", true, false);
                self.abort(&self.valid(rng), &body)
            }
            Class::Truncated | Class::MidStreamReset => {
                let fault = if class == Class::Truncated {
                    "truncate"
                } else {
                    "reset=mid"
                };
                let body = chat_body(rng, "soak-fragile", true, false);
                self.broken(&self.valid(rng), &body, fault)
            }
            Class::AllDown => {
                let stream = rng.chance(0.5);
                let body = chat_body(rng, "soak-down", stream, false);
                self.all_down(&self.valid(rng), &body)
            }
        };
        let mut observed = self.observed.lock().unwrap_or_else(|e| e.into_inner());
        let s = observed.classes.entry(class).or_default();
        s.sent += 1;
        s.faulted_first_attempts += u64::from(faulted);
        s.fresh_tokens += u64::from(fresh);
        if outcome.status != 0 {
            *s.statuses.entry(outcome.status).or_default() += 1;
        }
        if outcome.status >= 500 {
            s.five_xx += 1;
        }
        s.io_errors += u64::from(outcome.io_error);
        match outcome.problem {
            None => s.ok += 1,
            Some(p) => {
                s.failures += 1;
                if s.examples.len() < 5 {
                    s.examples.push(p);
                }
            }
        }
    }

    fn valid(&self, rng: &mut Rng) -> String {
        self.tokens.valid[rng.below(self.tokens.valid.len())].clone()
    }

    fn chat(
        &self,
        token: &str,
        body: &str,
        fault: Option<&str>,
        stream: bool,
        include_usage: bool,
    ) -> Outcome {
        let bearer = format!("Bearer {token}");
        let mut headers = vec![
            ("authorization", bearer.as_str()),
            ("content-type", "application/json"),
        ];
        if let Some(f) = fault {
            headers.push(("x-mock-fault", f));
        }
        let what = fault.unwrap_or("no fault");
        if stream {
            let resp =
                match client::stream(self.port, "POST", "/v1/chat/completions", &headers, body)
                    .and_then(|s| s.into_response())
                {
                    Ok(r) => r,
                    Err(e) => return Outcome::io(format!("stream ({what}): {e}")),
                };
            if resp.status != 200 {
                return Outcome::bad(
                    resp.status,
                    format!("stream ({what}): {} {}", resp.status, snippet(&resp.text())),
                );
            }
            match check_chat_stream(&resp.text(), include_usage) {
                None => Outcome::ok(200),
                Some(p) => Outcome::bad(200, format!("stream ({what}): {p}")),
            }
        } else {
            let resp =
                match client::request(self.port, "POST", "/v1/chat/completions", &headers, body) {
                    Ok(r) => r,
                    Err(e) => return Outcome::io(format!("json ({what}): {e}")),
                };
            if resp.status != 200 {
                return Outcome::bad(
                    resp.status,
                    format!("json ({what}): {} {}", resp.status, snippet(&resp.text())),
                );
            }
            match check_chat_json(&resp) {
                None => Outcome::ok(200),
                Some(p) => Outcome::bad(200, format!("json ({what}): {p}")),
            }
        }
    }

    fn ollama(&self, rng: &mut Rng) -> Outcome {
        let stream = rng.chance(0.5);
        let body = serde_json::json!({
            "model": "llama3.2",
            "messages": [{"role": "user", "content": "why is the sky blue? answer in one line"}],
            "stream": stream
        })
        .to_string();
        let bearer = format!("Bearer {}", self.valid(rng));
        let headers = [
            ("authorization", bearer.as_str()),
            ("content-type", "application/json"),
        ];
        let resp = match client::request(self.port, "POST", "/api/chat", &headers, &body) {
            Ok(r) => r,
            Err(e) => return Outcome::io(format!("ollama: {e}")),
        };
        if resp.status != 200 {
            return Outcome::bad(
                resp.status,
                format!("ollama: {} {}", resp.status, snippet(&resp.text())),
            );
        }
        let last_done = resp
            .ndjson()
            .ok()
            .and_then(|lines| lines.last().map(|l| l["done"] == true))
            .unwrap_or(false);
        if last_done {
            Outcome::ok(200)
        } else {
            Outcome::bad(200, format!("ollama: not done: {}", snippet(&resp.text())))
        }
    }

    fn unauthorized(&self, token: Option<&str>, body: &str) -> Outcome {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(b) = bearer.as_deref() {
            headers.push(("authorization", b));
        }
        match client::request(self.port, "POST", "/v1/chat/completions", &headers, body) {
            Ok(r) if r.status == 401 && r.header("www-authenticate").is_some() => Outcome::ok(401),
            Ok(r) => Outcome::bad(
                r.status,
                format!("expected 401, got {} {}", r.status, snippet(&r.text())),
            ),
            Err(e) => Outcome::io(format!("unauthorized: {e}")),
        }
    }

    fn abort(&self, token: &str, body: &str) -> Outcome {
        let bearer = format!("Bearer {token}");
        let headers = [
            ("authorization", bearer.as_str()),
            ("content-type", "application/json"),
            ("x-mock-fault", "chunk_delay_ms=40"),
        ];
        let mut s = match client::stream(self.port, "POST", "/v1/chat/completions", &headers, body)
        {
            Ok(s) => s,
            Err(e) => return Outcome::io(format!("abort: {e}")),
        };
        if s.status != 200 {
            return Outcome::bad(s.status, format!("abort: status {}", s.status));
        }
        for _ in 0..2 {
            if let Err(e) = s.next_chunk() {
                return Outcome::io(format!("abort: before the abort: {e}"));
            }
        }
        drop(s); // closes the connection mid-stream
        Outcome::ok(200)
    }

    fn broken(&self, token: &str, body: &str, fault: &str) -> Outcome {
        let bearer = format!("Bearer {token}");
        let headers = [
            ("authorization", bearer.as_str()),
            ("content-type", "application/json"),
            ("x-mock-fault", fault),
        ];
        match client::stream(self.port, "POST", "/v1/chat/completions", &headers, body) {
            Ok(s) if s.status == 200 => {
                // A truncated stream ends cleanly, a reset one with an error: both are expected.
                let _ = s.into_response();
                Outcome::ok(200)
            }
            Ok(s) => Outcome::bad(s.status, format!("{fault}: status {}", s.status)),
            Err(e) => Outcome::io(format!("{fault}: {e}")),
        }
    }

    fn all_down(&self, token: &str, body: &str) -> Outcome {
        let bearer = format!("Bearer {token}");
        let headers = [
            ("authorization", bearer.as_str()),
            ("content-type", "application/json"),
        ];
        match client::request(self.port, "POST", "/v1/chat/completions", &headers, body) {
            Ok(r) if r.status == 503 && r.text().contains("request_id") => Outcome::ok(503),
            Ok(r) => Outcome::bad(
                r.status,
                format!("expected 503, got {} {}", r.status, snippet(&r.text())),
            ),
            Err(e) => Outcome::io(format!("all-down: {e}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Memory

/// One memory sample.
#[derive(Debug, Clone, Copy, Default)]
struct MemSample {
    seconds: f64,
    envoy_rss_kib: f64,
    wasm_committed_kib: f64,
    wasm_rss_kib: f64,
    wasm_vms: usize,
    tcmalloc_allocated_kib: f64,
    requests: u64,
}

fn tcmalloc_allocated_kib(envoy: &Envoy) -> f64 {
    serde_json::from_str::<serde_json::Value>(&envoy.admin("/memory"))
        .ok()
        .and_then(|v| v["allocated"].as_str().and_then(|s| s.parse::<f64>().ok()))
        .map(|b| b / 1024.0)
        .unwrap_or(0.0)
}

/// Least-squares slope (per minute) of `value` over the samples at or after `from_seconds`.
fn slope_per_minute(samples: &[MemSample], from_seconds: f64, value: fn(&MemSample) -> f64) -> f64 {
    let pts: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.seconds >= from_seconds)
        .map(|s| (s.seconds / 60.0, value(s)))
        .collect();
    let n = pts.len() as f64;
    if pts.len() < 2 {
        return 0.0;
    }
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        return 0.0;
    }
    pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / sxx
}

// ---------------------------------------------------------------------------------------------
// Stats

/// `/stats` (text) as name → value (counters and gauges only).
fn plain_stats(envoy: &Envoy) -> BTreeMap<String, u64> {
    envoy
        .admin("/stats")
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(": ")?;
            Some((name.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Sums of a Prometheus counter by the values of `label`, other labels fixed by `filter`.
fn prom_sum_by(
    text: &str,
    metric: &str,
    label: &str,
    filter: &[(&str, &str)],
) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        let Some(rest) = rest.strip_prefix('{') else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let labels: BTreeMap<&str, &str> = labels
            .split(',')
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k, v.trim_matches('"')))
            })
            .collect();
        if filter.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            continue;
        }
        let Some(key) = labels.get(label) else {
            continue;
        };
        let n = value.trim().parse::<f64>().unwrap_or(0.0) as u64;
        *out.entry(key.to_string()).or_insert(0) += n;
    }
    out
}

/// Per provider, from the access log: (requests with `usage_estimated` true, their input
/// tokens, their output tokens).
fn estimated_by_provider(lines: &[String]) -> BTreeMap<String, (u64, u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for line in lines {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["usage_estimated"].as_str() != Some("true") {
            continue;
        }
        let num = |k: &str| {
            v[k].as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let provider = v["provider"].as_str().unwrap_or("-").to_string();
        let e = out.entry(provider).or_default();
        e.0 += 1;
        e.1 += num("input_tokens");
        e.2 += num("output_tokens");
    }
    out
}

/// The log lines that mean a VM crashed or Envoy hit a critical error.
fn crash_lines(log: &str) -> Vec<String> {
    const MARKERS: &[&str] = &[
        "panicked",
        "Uncaught",
        "RuntimeError",
        "VM failed",
        "vm failed",
        "fail_stream",
        "[critical]",
    ];
    log.lines()
        .filter(|l| MARKERS.iter().any(|m| l.contains(m)))
        .map(|l| l.chars().take(400).collect())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Main

/// One check of the verdict.
struct Check {
    name: String,
    passed: bool,
    detail: String,
}

fn check(checks: &mut Vec<Check>, name: &str, passed: bool, detail: String) {
    println!("{} {name}: {detail}", if passed { "PASS" } else { "FAIL" });
    checks.push(Check {
        name: name.to_string(),
        passed,
        detail,
    });
}

fn main() -> ExitCode {
    let settings = Settings::from_env();
    fs::create_dir_all(&settings.out).expect("create the output directory");
    println!(
        "soak: {} s, {} req/s over {} clients, Envoy --concurrency {}, output {}",
        settings.seconds,
        settings.rps,
        settings.clients,
        settings.workers,
        settings.out.display()
    );
    std::env::set_var("ENVOY_CONCURRENCY", settings.workers.to_string());
    if std::env::var_os("ENVOY_COMPONENT_LOG_LEVEL").is_none() {
        std::env::set_var("ENVOY_COMPONENT_LOG_LEVEL", "wasm:info");
    }
    let tokens = Arc::new(Tokens::generate());
    let mocks = Mocks::start(settings.seed);
    let vars = Vars::new()
        .set("OPENAI_PORT", mocks.port("openai"))
        .set("ANTHROPIC_PORT", mocks.port("anthropic"))
        .set("GEMINI_PORT", mocks.port("gemini"))
        .set("OLLAMA_PORT", mocks.port("ollama-compat"))
        .set("OLLAMA_NATIVE_PORT", mocks.port("ollama"))
        .set("FRAGILE_PORT", mocks.port("fragile"))
        .set("SLOW_PORT", mocks.port("slow"))
        .set("DOWN_A_PORT", mocks.port("down-a"))
        .set("DOWN_B_PORT", mocks.port("down-b"))
        .set("STEADY_PORT", mocks.port("steady"))
        .set("OPENAI_KEY", OPENAI_KEY)
        .set("ANTHROPIC_KEY", ANTHROPIC_KEY)
        .set("GEMINI_KEY", GEMINI_KEY)
        .plugin_config(&plugin_config(&tokens));
    let envoy = Envoy::start(&template("e2e/configs/soak.yaml"), vars);
    let pid = envoy.pid().expect("Envoy's pid");
    let stats_at_start = plain_stats(&envoy);

    let observed = Arc::new(Mutex::new(Observed::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let interval = Duration::from_secs_f64(settings.clients as f64 / settings.rps);
    let threads: Vec<_> = (0..settings.clients)
        .map(|i| {
            let client = Client {
                port: envoy.port,
                tokens: Arc::clone(&tokens),
                observed: Arc::clone(&observed),
            };
            let stop = Arc::clone(&stop);
            let sent = Arc::clone(&sent);
            let mut rng = Rng(settings.seed.wrapping_mul(1000).wrapping_add(i as u64));
            std::thread::spawn(move || {
                // Spread the clients' first requests over one interval.
                let mut due = Instant::now() + interval.mul_f64(i as f64 / 8.0);
                while !stop.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    due = due.max(Instant::now() - interval) + interval;
                    client.run(&mut rng);
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let mut samples: Vec<MemSample> = Vec::new();
    let duration = Duration::from_secs(settings.seconds);
    let mut next_sample = Instant::now();
    let mut stats_after_warmup: Option<BTreeMap<String, u64>> = None;
    while started.elapsed() < duration {
        let now = Instant::now();
        if now >= next_sample {
            let wasm = tollgate_e2e::wasm_memory(pid);
            let (vms, committed, resident) = (wasm.vms, wasm.committed_kib, wasm.resident_kib);
            let sample = MemSample {
                seconds: started.elapsed().as_secs_f64(),
                envoy_rss_kib: tollgate_e2e::rss_kib(pid),
                wasm_committed_kib: committed,
                wasm_rss_kib: resident,
                wasm_vms: vms,
                tcmalloc_allocated_kib: tcmalloc_allocated_kib(&envoy),
                requests: sent.load(Ordering::Relaxed),
            };
            if samples.len().is_multiple_of(12) {
                println!(
                    "t={:>4.0}s requests={} envoy_rss={:.1} MiB wasm={} VMs {:.0} KiB committed",
                    sample.seconds,
                    sample.requests,
                    sample.envoy_rss_kib / 1024.0,
                    vms,
                    committed
                );
            }
            samples.push(sample);
            if stats_after_warmup.is_none() && sample.seconds >= settings.warmup_seconds() {
                stats_after_warmup = Some(plain_stats(&envoy));
            }
            next_sample += settings.sample_every();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total_sent = sent.load(Ordering::Relaxed);
    println!("traffic stopped after {elapsed:.0} s, {total_sent} requests; settling…");

    // Wait until tollgate has logged every request (aborted streams included).
    let settle_deadline = Instant::now() + Duration::from_secs(15);
    let mut tollgate_requests = 0;
    while Instant::now() < settle_deadline {
        let stats = plain_stats(&envoy);
        tollgate_requests = stats
            .get("wasmcustom.tollgate_requests_total")
            .copied()
            .unwrap_or(0);
        let llm: u64 = stats
            .iter()
            .filter(|(k, _)| is_tagged(k, "tollgate_llm_requests_total"))
            .map(|(_, v)| v)
            .sum();
        let active = stats
            .get("http.ingress.downstream_rq_active")
            .copied()
            .unwrap_or(0);
        if tollgate_requests >= total_sent && active == 0 && llm > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_millis(500));

    let mut checks = Vec::new();
    let observed = observed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .classes
        .clone();
    let stats_end = plain_stats(&envoy);
    let prom = envoy.prometheus();
    let log = envoy.log();

    // 1. Envoy and the VMs are alive.
    let state = fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next().map(str::to_string))
        })
        .unwrap_or_else(|| "gone".into());
    check(
        &mut checks,
        "Envoy alive",
        state != "gone" && state != "Z",
        format!("pid {pid} state {state}"),
    );
    let wasm_stat = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    let baseline = stats_after_warmup.as_ref().unwrap_or(&stats_at_start);
    let vm_keys = [
        "wasm.envoy.wasm.runtime.v8.created",
        "wasm.envoy.wasm.runtime.v8.active",
        "wasm.wasm_vm_count",
    ];
    let vm_changes: Vec<String> = vm_keys
        .iter()
        .filter(|k| wasm_stat(baseline, k) != wasm_stat(&stats_end, k))
        .map(|k| {
            format!(
                "{k} {} → {}",
                wasm_stat(baseline, k),
                wasm_stat(&stats_end, k)
            )
        })
        .collect();
    let reloads: u64 = stats_end
        .iter()
        .filter(|(k, _)| k.starts_with("wasm.") && k.contains("vm_reload"))
        .map(|(_, v)| v)
        .sum();
    check(
        &mut checks,
        "wasm VMs neither recreated nor reloaded",
        vm_changes.is_empty() && reloads == 0,
        format!(
            "{} (start: created {}, active {}); vm_reload* total {reloads}{}",
            vm_keys
                .iter()
                .map(|k| format!("{k} = {}", wasm_stat(&stats_end, k)))
                .collect::<Vec<_>>()
                .join(", "),
            wasm_stat(&stats_at_start, vm_keys[0]),
            wasm_stat(&stats_at_start, vm_keys[1]),
            if vm_changes.is_empty() {
                String::new()
            } else {
                format!("; changed after warm-up: {}", vm_changes.join(", "))
            }
        ),
    );
    let crashes = crash_lines(&log);
    check(
        &mut checks,
        "no panic or VM failure in Envoy's log",
        crashes.is_empty(),
        if crashes.is_empty() {
            format!("{} log lines scanned", log.lines().count())
        } else {
            format!("{} lines, first: {}", crashes.len(), crashes[0])
        },
    );

    // 2. Every request got what it should; 5xx only where forced.
    let unexpected_5xx: u64 = observed
        .iter()
        .filter(|(c, _)| **c != Class::AllDown)
        .map(|(_, s)| s.five_xx)
        .sum();
    let forced_5xx = observed.get(&Class::AllDown).map_or(0, |s| s.five_xx);
    check(
        &mut checks,
        "no unexpected 5xx",
        unexpected_5xx == 0,
        format!("{unexpected_5xx} outside the all-down route; {forced_5xx} on it (forced)"),
    );
    let failures: Vec<(Class, &ClassStats)> = observed
        .iter()
        .filter(|(_, s)| s.failures > 0)
        .map(|(c, s)| (*c, s))
        .collect();
    let healthy_served: u64 = observed
        .iter()
        .filter(|(c, _)| {
            matches!(
                c,
                Class::RoutedJson | Class::RoutedStream | Class::OllamaNative | Class::SlowPrimary
            )
        })
        .map(|(_, s)| s.ok)
        .sum();
    check(
        &mut checks,
        "every request answered as expected (none a healthy provider could serve was lost)",
        failures.is_empty(),
        if failures.is_empty() {
            format!("{total_sent} requests, {healthy_served} served by a healthy provider")
        } else {
            failures
                .iter()
                .map(|(c, s)| format!("{c:?}: {} failed, e.g. {}", s.failures, s.examples[0]))
                .collect::<Vec<_>>()
                .join("; ")
        },
    );
    check(
        &mut checks,
        "tollgate saw every request once",
        tollgate_requests == total_sent,
        format!("tollgate_requests_total {tollgate_requests}, client requests {total_sent}"),
    );

    // 3. Memory.
    let warmup = settings.warmup_seconds();
    let rss_slope = slope_per_minute(&samples, warmup, |s| s.envoy_rss_kib);
    let wasm_slope = slope_per_minute(&samples, warmup, |s| s.wasm_committed_kib);
    let wasm_rss_slope = slope_per_minute(&samples, warmup, |s| s.wasm_rss_kib);
    let tc_slope = slope_per_minute(&samples, warmup, |s| s.tcmalloc_allocated_kib);
    let post: Vec<&MemSample> = samples.iter().filter(|s| s.seconds >= warmup).collect();
    let (first, last) = (
        post.first().copied().copied().unwrap_or_default(),
        post.last().copied().copied().unwrap_or_default(),
    );
    check(
        &mut checks,
        "Envoy RSS flat after warm-up",
        post.len() >= 3 && rss_slope <= MAX_RSS_SLOPE_KIB_PER_MIN,
        format!(
            "slope {:+.1} KiB/min (limit {MAX_RSS_SLOPE_KIB_PER_MIN}), {:.1} → {:.1} MiB over {} samples; tcmalloc allocated slope {:+.1} KiB/min",
            rss_slope,
            first.envoy_rss_kib / 1024.0,
            last.envoy_rss_kib / 1024.0,
            post.len(),
            tc_slope
        ),
    );
    check(
        &mut checks,
        "wasm VM memory flat after warm-up",
        post.len() >= 3 && last.wasm_vms > 0 && wasm_slope <= MAX_WASM_SLOPE_KIB_PER_MIN,
        format!(
            "{} VMs; linear memory slope {:+.1} KiB/min (limit {MAX_WASM_SLOPE_KIB_PER_MIN}), {:.0} → {:.0} KiB committed; resident slope {:+.1} KiB/min",
            last.wasm_vms, wasm_slope, first.wasm_committed_kib, last.wasm_committed_kib, wasm_rss_slope
        ),
    );

    // 4. Usage: tollgate's counters against what the providers reported.
    let input = prom_sum_by(
        &prom,
        "tollgate_tokens_total",
        "provider",
        &[("token_type", "input")],
    );
    let output = prom_sum_by(
        &prom,
        "tollgate_tokens_total",
        "provider",
        &[("token_type", "output")],
    );
    let access_log = envoy.wait_access_log(total_sent as usize);
    let estimated = estimated_by_provider(&access_log);
    let mut usage_rows = Vec::new();
    let mut usage_mismatch = Vec::new();
    let mut estimated_on_exact = Vec::new();
    for name in EXACT_PROVIDERS {
        let mock = mocks.0.get(name).map(MockHandle::stats).unwrap_or_default();
        let est = estimated.get(*name).copied().unwrap_or_default();
        let got = (
            input.get(*name).copied().unwrap_or(0),
            output.get(*name).copied().unwrap_or(0),
        );
        let reported = (got.0.saturating_sub(est.1), got.1.saturating_sub(est.2));
        let want = (mock.prompt_tokens, mock.completion_tokens);
        usage_rows.push(format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} / {} |",
            mock.responses_ok, want.0, got.0, want.1, got.1, est.0, est.1, est.2
        ));
        if reported != want {
            usage_mismatch.push(format!(
                "{name}: input {} (of which estimated {}) vs mock {}, output {} (estimated {}) vs mock {}",
                got.0, est.1, want.0, got.1, est.2, want.1
            ));
        }
        if est.0 > 0 {
            estimated_on_exact.push(format!("{name}: {} requests", est.0));
        }
    }
    let exact_total: u64 = EXACT_PROVIDERS
        .iter()
        .map(|n| input.get(*n).copied().unwrap_or(0) + output.get(*n).copied().unwrap_or(0))
        .sum();
    check(
        &mut checks,
        "tollgate token counters equal the providers' reported usage (+ the estimates tollgate flagged)",
        usage_mismatch.is_empty() && exact_total > 0,
        if usage_mismatch.is_empty() {
            format!(
                "{exact_total} tokens over {} providers, exact",
                EXACT_PROVIDERS.len()
            )
        } else {
            usage_mismatch.join("; ")
        },
    );
    check(
        &mut checks,
        "no estimated usage for responses the providers completed",
        estimated_on_exact.is_empty(),
        if estimated_on_exact.is_empty() {
            "every completed response's usage was the provider's own".into()
        } else {
            format!(
                "usage_estimated=true in the access log for {} (streams the provider finished, yet tollgate had no usage to read)",
                estimated_on_exact.join(", ")
            )
        },
    );
    let slow_tokens =
        input.get("slow").copied().unwrap_or(0) + output.get("slow").copied().unwrap_or(0);
    check(
        &mut checks,
        "no tokens counted for answers that came after the route timeout",
        slow_tokens == 0,
        format!(
            "tollgate counted {slow_tokens} for `slow`; the mock wrote {} late answers nobody read",
            mocks.0.get("slow").map_or(0, |m| m.stats().responses_ok)
        ),
    );
    let fragile_sent: u64 = observed
        .iter()
        .filter(|(c, _)| c.is_fragile())
        .map(|(_, s)| s.sent)
        .sum();
    let fragile_by_usage = prom_sum_by(
        &prom,
        "tollgate_llm_requests_total",
        "usage",
        &[("provider", "fragile")],
    );
    let fragile_accounted: u64 = fragile_by_usage.values().sum();
    check(
        &mut checks,
        "every cut stream accounted once",
        fragile_accounted == fragile_sent,
        format!(
            "{fragile_sent} aborted/truncated/reset streams sent to `fragile`; tollgate_llm_requests_total by usage: {fragile_by_usage:?}"
        ),
    );

    // Artifacts.
    let csv_path = settings.out.join("samples.csv");
    let mut csv = String::from(
        "seconds,envoy_rss_kib,wasm_committed_kib,wasm_rss_kib,tcmalloc_allocated_kib,requests\n",
    );
    for s in &samples {
        csv.push_str(&format!(
            "{:.1},{:.0},{:.0},{:.0},{:.0},{}\n",
            s.seconds,
            s.envoy_rss_kib,
            s.wasm_committed_kib,
            s.wasm_rss_kib,
            s.tcmalloc_allocated_kib,
            s.requests
        ));
    }
    fs::write(&csv_path, csv).expect("write samples.csv");
    let png = settings.out.join("memory.png");
    let plotted = plot(&csv_path, &png, warmup);
    check(
        &mut checks,
        "memory plot written",
        plotted.is_ok(),
        match &plotted {
            Ok(()) => png.display().to_string(),
            Err(e) => e.clone(),
        },
    );
    let tail: Vec<&str> = log.lines().rev().take(300).collect();
    let mut log_out = crashes.join("\n");
    log_out.push_str("\n---- last 300 lines ----\n");
    log_out.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    let _ = fs::write(settings.out.join("envoy-log-tail.txt"), log_out);

    let passed = checks.iter().all(|c| c.passed);
    let summary = summary_markdown(&SummaryInput {
        settings: &settings,
        elapsed,
        total_sent,
        observed: &observed,
        checks: &checks,
        usage_rows: &usage_rows,
        fragile_by_usage: &fragile_by_usage,
        mocks: &mocks,
        stats_end: &stats_end,
        passed,
    });
    fs::write(settings.out.join("summary.md"), &summary).expect("write summary.md");
    println!(
        "\n{}: summary in {}",
        if passed { "SOAK PASSED" } else { "SOAK FAILED" },
        settings.out.join("summary.md").display()
    );
    drop(envoy);
    drop(mocks);
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Renders the PNG with the project venv's matplotlib (`envoy/e2e/soak_plot.py`).
fn plot(csv: &Path, png: &Path, warmup: f64) -> Result<(), String> {
    let venv_python = repo_root().join(".venv/bin/python");
    let python = if venv_python.exists() {
        venv_python
    } else {
        PathBuf::from("python3")
    };
    let out = Command::new(&python)
        .arg(repo_root().join("envoy/e2e/soak_plot.py"))
        .arg(csv)
        .arg(png)
        .arg(format!("{warmup}"))
        .output()
        .map_err(|e| format!("run {}: {e}", python.display()))?;
    if out.status.success() && png.exists() {
        Ok(())
    } else {
        Err(format!(
            "plotting failed (`make soak` installs matplotlib into .venv): {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ))
    }
}

struct SummaryInput<'a> {
    settings: &'a Settings,
    elapsed: f64,
    total_sent: u64,
    observed: &'a BTreeMap<Class, ClassStats>,
    checks: &'a [Check],
    usage_rows: &'a [String],
    fragile_by_usage: &'a BTreeMap<String, u64>,
    mocks: &'a Mocks,
    stats_end: &'a BTreeMap<String, u64>,
    passed: bool,
}

fn summary_markdown(i: &SummaryInput<'_>) -> String {
    let mut md = String::new();
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    md.push_str(&format!(
        "# tollgate soak: {}\n\n{:.0} s of traffic, {} requests ({:.1} req/s, {} client threads), Envoy 1.40 `--concurrency {}` with `{}`; {} cores, {cpu}. Warm-up {:.0} s excluded from the memory fit.\n\n",
        if i.passed { "PASSED" } else { "FAILED" },
        i.elapsed,
        i.total_sent,
        i.total_sent as f64 / i.elapsed.max(1.0),
        i.settings.clients,
        i.settings.workers,
        tollgate_e2e::wasm_path().display(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        i.settings.warmup_seconds(),
    ));
    md.push_str("## Checks\n\n| check | result | detail |\n|---|---|---|\n");
    for c in i.checks {
        md.push_str(&format!(
            "| {} | {} | {} |\n",
            c.name,
            if c.passed { "pass" } else { "**FAIL**" },
            c.detail.replace('|', "\\|")
        ));
    }
    md.push_str("\n## Traffic\n\n| class | sent | as expected | statuses | first attempt faulted | fresh tokens | failures |\n|---|---:|---:|---|---:|---:|---:|\n");
    for (class, s) in i.observed {
        let statuses: Vec<String> = s.statuses.iter().map(|(k, v)| format!("{k}×{v}")).collect();
        md.push_str(&format!(
            "| {} | {} | {} | {}{} | {} | {} | {} |\n",
            class.describe(),
            s.sent,
            s.ok,
            statuses.join(" "),
            if s.io_errors > 0 {
                format!(" io-error×{}", s.io_errors)
            } else {
                String::new()
            },
            s.faulted_first_attempts,
            s.fresh_tokens,
            s.failures
        ));
    }
    let examples: Vec<String> = i
        .observed
        .iter()
        .flat_map(|(c, s)| s.examples.iter().map(move |e| format!("- {c:?}: {e}")))
        .collect();
    if !examples.is_empty() {
        md.push_str(&format!(
            "\nFailures (first few):\n\n{}\n",
            examples.join("\n")
        ));
    }
    md.push_str("\n## Usage: tollgate vs the providers\n\n| provider | completed responses (mock) | input tokens (mock) | input (tollgate) | output (mock) | output (tollgate) | estimated requests (access log) | their input / output |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for row in i.usage_rows {
        md.push_str(row);
        md.push('\n');
    }
    md.push_str(&format!(
        "\n`fragile` (aborted, truncated and reset streams; tollgate counts a stream without its terminator as an estimate): tollgate_llm_requests_total by usage {:?}.\n",
        i.fragile_by_usage
    ));
    md.push_str("\n## Providers (mock counters)\n\n| provider | requests | ok | errors | resets | streams |\n|---|---:|---:|---:|---:|---:|\n");
    for (name, m) in &i.mocks.0 {
        let s = m.stats();
        md.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} |\n",
            s.requests, s.responses_ok, s.responses_error, s.resets, s.streams
        ));
    }
    let failovers: u64 = i
        .stats_end
        .iter()
        .filter(|(k, _)| is_tagged(k, "tollgate_failovers_total"))
        .map(|(_, v)| v)
        .sum();
    let denied: u64 = i
        .stats_end
        .iter()
        .filter(|(k, _)| is_tagged(k, "tollgate_jwt_denied_total"))
        .map(|(_, v)| v)
        .sum();
    let masked: u64 = i
        .stats_end
        .iter()
        .filter(|(k, _)| is_tagged(k, "tollgate_masked_findings_total"))
        .map(|(_, v)| v)
        .sum();
    md.push_str(&format!(
        "\ntollgate: {failovers} failovers, {denied} JWT denials, {masked} masked findings.\n\nArtifacts: `memory.png` (Envoy RSS, tcmalloc, wasm linear memory), `samples.csv`, `envoy-log-tail.txt`.\n"
    ));
    md
}

/// Whether `stat` (as `/stats` prints it) is a tagged sample of tollgate's metric `name`:
/// `wasmcustom.<tag>=.=<value>;.;…;.;<name>`.
fn is_tagged(stat: &str, name: &str) -> bool {
    stat.starts_with("wasmcustom.") && stat.ends_with(&format!(";.;{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seconds: f64, rss: f64) -> MemSample {
        MemSample {
            seconds,
            envoy_rss_kib: rss,
            ..MemSample::default()
        }
    }

    #[test]
    fn slope_is_fitted_after_the_warm_up_only() {
        // Growth during the first minute (warm-up), then 10 KiB per minute.
        let mut samples = vec![sample(0.0, 0.0), sample(30.0, 5000.0)];
        samples.extend((0..10).map(|m| sample(60.0 + 60.0 * m as f64, 6000.0 + 10.0 * m as f64)));
        let slope = slope_per_minute(&samples, 60.0, |s| s.envoy_rss_kib);
        assert!((slope - 10.0).abs() < 1e-9, "{slope}");
        assert_eq!(slope_per_minute(&samples, 1e9, |s| s.envoy_rss_kib), 0.0);
    }

    #[test]
    fn prometheus_counters_are_summed_by_one_label() {
        let text = "# TYPE tollgate_tokens_total counter\n\
            tollgate_tokens_total{provider=\"openai\",model=\"a\",token_type=\"input\"} 10\n\
            tollgate_tokens_total{provider=\"openai\",model=\"b\",token_type=\"input\"} 5\n\
            tollgate_tokens_total{provider=\"openai\",model=\"a\",token_type=\"output\"} 7\n\
            tollgate_tokens_total{provider=\"gemini\",model=\"a\",token_type=\"input\"} 3\n\
            tollgate_tokens_total_other{provider=\"x\",token_type=\"input\"} 99\n";
        let by = prom_sum_by(
            text,
            "tollgate_tokens_total",
            "provider",
            &[("token_type", "input")],
        );
        assert_eq!(by.get("openai"), Some(&15));
        assert_eq!(by.get("gemini"), Some(&3));
        assert_eq!(by.len(), 2, "{by:?}");
    }

    #[test]
    fn flagged_estimates_are_read_from_the_access_log() {
        let lines = vec![
            r#"{"provider":"openai","input_tokens":"12","output_tokens":"4","usage_estimated":"true"}"#.to_string(),
            r#"{"provider":"openai","input_tokens":"30","output_tokens":"9","usage_estimated":"false"}"#.to_string(),
            r#"{"provider":"fragile","input_tokens":"8","output_tokens":"2","usage_estimated":"true"}"#.to_string(),
            "not json".to_string(),
        ];
        let est = estimated_by_provider(&lines);
        assert_eq!(est.get("openai"), Some(&(1, 12, 4)));
        assert_eq!(est.get("fragile"), Some(&(1, 8, 2)));
    }

    #[test]
    fn crash_markers_are_found_and_failover_lines_are_not() {
        let log = "[info][wasm] tollgate [id] failing over to provider openai\n\
            [error][wasm] Function: proxy_on_request_body failed: Uncaught RuntimeError: unreachable\n\
            [critical][wasm] wasm log tollgate: panicked at src/lib.rs:1:1\n";
        assert_eq!(crash_lines(log).len(), 2);
        assert!(
            crash_lines("[info][wasm] routed model \"soak-a\" to provider anthropic").is_empty()
        );
    }

    #[test]
    fn class_weights_pick_every_class() {
        let mut rng = Rng(3);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..5000 {
            seen.insert(Class::pick(&mut rng));
        }
        assert_eq!(seen.len(), Class::ALL.len());
    }
}
