//! The mock server itself: options, shared state (recorded requests, faults,
//! JWKS, stats), the accept loop and per-connection threads, and the dispatch
//! of each request to health / JWKS / control API / provider handling,
//! including fault application and the streaming driver.

use crate::faults::{Faults, Prng, ResetMode};
use crate::http::{HttpConn, ReadError, Request};
use crate::providers::{self, ErrorCause, Exchange, Provider, Route, StreamFormat};
use crate::tokens::{reply_text, Usage};
use crate::util::{js, sleep_ms};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Default path the JWKS is served at.
pub const DEFAULT_JWKS_PATH: &str = "/.well-known/jwks.json";
/// Where the tollgate virtual key set is served (see `MockOptions::keyset_file`).
pub const KEYSET_PATH: &str = "/tollgate/keys.json";

/// How a mock instance behaves. `Default` gives an open (no key) server on 127.0.0.1 with a random port.
#[derive(Clone, Debug)]
pub struct MockOptions {
    /// Address to bind (default `127.0.0.1`).
    pub host: String,
    /// Port to bind (0 = pick a free one).
    pub port: u16,
    /// When set, requests must carry this key (Bearer / `x-api-key` + `anthropic-version` /
    /// `x-goog-api-key` or `?key=`) or get a 401 in the provider's error shape.
    pub required_api_key: Option<String>,
    /// vLLM continuous usage: with `include_usage`, every chat chunk carries cumulative `usage`.
    pub usage_in_every_chunk: bool,
    /// Fraction of requests answered with a 500 (seeded, reproducible).
    pub fail_rate: Option<f64>,
    /// Seed of the `fail_rate` PRNG.
    pub seed: u64,
    /// Instance faults active from the start (and restored by `reset`).
    pub faults: Faults,
    /// Initial JWKS body.
    pub jwks: String,
    /// A tollgate key set document served at [`KEYSET_PATH`], read from this file on every
    /// fetch (so keys added to it, e.g. by `make key`, are served at once); a missing file serves
    /// `{"keys":[]}`. Without a file, the body set through `PUT /__mock/keyset` is served.
    pub keyset_file: Option<std::path::PathBuf>,
    /// Prompt tokens reported as cached (clamped to the prompt).
    pub cached_tokens: u64,
    /// Prompt tokens reported as written to cache (Anthropic `cache_creation_input_tokens`).
    pub cache_creation_tokens: u64,
    /// Reasoning tokens added to every completion.
    pub reasoning_tokens: u64,
    /// At most this many requests are kept by the recorder (oldest dropped first).
    pub max_recorded: usize,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            host: "127.0.0.1".into(),
            port: 0,
            required_api_key: None,
            usage_in_every_chunk: false,
            fail_rate: None,
            seed: 1,
            faults: Faults::default(),
            jwks: "{\"keys\":[]}".into(),
            keyset_file: None,
            cached_tokens: 0,
            cache_creation_tokens: 0,
            reasoning_tokens: 0,
            max_recorded: 10_000,
        }
    }
}

impl MockOptions {
    /// Default options requiring `key`.
    pub fn with_api_key(key: &str) -> MockOptions {
        MockOptions {
            required_api_key: Some(key.to_string()),
            ..MockOptions::default()
        }
    }

    /// The instance faults at start: `faults` plus `fail_rate`/`seed`.
    fn initial_faults(&self) -> Faults {
        let mut f = self.faults.clone();
        if f.fail_rate.is_none() {
            f.fail_rate = self.fail_rate;
        }
        if f.seed.is_none() && f.fail_rate.is_some() {
            f.seed = Some(self.seed);
        }
        f
    }
}

/// One request the mock received (provider API calls and unknown paths; not
/// `/__mock/*`, `/health` or JWKS fetches).
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path including the query string.
    pub path: String,
    /// All headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body as (lossy) UTF-8.
    pub body: String,
}

impl RecordedRequest {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// JSON form used by `GET /__mock/requests` (headers as an object; repeated names joined by ", ").
    pub fn to_json(&self) -> Value {
        let mut headers = serde_json::Map::new();
        for (n, v) in &self.headers {
            match headers.get_mut(n) {
                Some(Value::String(prev)) => {
                    prev.push_str(", ");
                    prev.push_str(v);
                }
                _ => {
                    headers.insert(n.clone(), Value::String(v.clone()));
                }
            }
        }
        json!({"method": self.method, "path": self.path, "headers": headers, "body": self.body})
    }
}

/// Counters since start (or the last reset).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests to provider APIs (and unknown paths), i.e. the recorded ones.
    pub requests: u64,
    /// Successful provider responses completed (JSON sent, or stream finished incl. truncated).
    pub responses_ok: u64,
    /// Error responses sent (injected, auth, bad request, unknown path).
    pub responses_error: u64,
    /// Connections reset on purpose.
    pub resets: u64,
    /// Streams started.
    pub streams: u64,
    /// Streams ended by the `truncate` fault.
    pub truncated: u64,
    /// Sum of prompt tokens reported in complete responses (Anthropic: input + cache read + cache creation).
    pub prompt_tokens: u64,
    /// Sum of completion tokens reported in complete responses (visible + reasoning).
    pub completion_tokens: u64,
    /// JWKS fetches served.
    pub jwks_requests: u64,
    /// Key set fetches served.
    pub keyset_requests: u64,
}

impl Stats {
    /// JSON form used by `GET /__mock/stats` (adds `total_tokens`).
    pub fn to_json(&self) -> Value {
        json!({
            "requests": self.requests,
            "responses_ok": self.responses_ok,
            "responses_error": self.responses_error,
            "resets": self.resets,
            "streams": self.streams,
            "truncated": self.truncated,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "jwks_requests": self.jwks_requests,
            "keyset_requests": self.keyset_requests,
        })
    }
}

pub(crate) struct State {
    pub records: VecDeque<RecordedRequest>,
    pub faults: Faults,
    pub prng: Prng,
    pub jwks: String,
    pub jwks_paths: Vec<String>,
    pub keyset: String,
    pub stats: Stats,
}

pub(crate) struct Shared {
    pub opts: MockOptions,
    state: Mutex<State>,
    pub shutdown: Arc<AtomicBool>,
    seq: AtomicU64,
    active: AtomicUsize,
}

impl Shared {
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_faults(&self, faults: Faults) {
        let mut st = self.state();
        st.prng = Prng::new(faults.seed.unwrap_or(self.opts.seed));
        st.faults = if faults.count == Some(0) {
            Faults::default()
        } else {
            faults
        };
    }

    pub fn reset(&self) {
        let initial = self.opts.initial_faults();
        {
            let mut st = self.state();
            st.records.clear();
            st.stats = Stats::default();
        }
        self.set_faults(initial);
    }

    /// The instance faults for request `path` (consuming `count`) and whether `fail_rate` hit.
    fn take_instance_faults(&self, path: &str) -> (Faults, bool) {
        let mut st = self.state();
        let faults = st.faults.clone();
        if faults
            .path_prefix
            .as_deref()
            .is_some_and(|p| !path.starts_with(p))
        {
            return (Faults::default(), false);
        }
        let failed = match faults.fail_rate {
            Some(rate) => st.prng.next_f64() < rate,
            None => false,
        };
        match faults.count {
            Some(c) if c <= 1 => st.faults = Faults::default(),
            Some(c) => st.faults.count = Some(c - 1),
            None => {}
        }
        (faults, failed)
    }

    fn stat(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.state().stats);
    }
}

/// Entry point: `MockProvider::start(options)`.
pub struct MockProvider;

impl MockProvider {
    /// Binds `options.host:options.port` and serves on background threads until the handle is dropped.
    pub fn start(options: MockOptions) -> io::Result<MockHandle> {
        let addr = (options.host.as_str(), options.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address for host"))?;
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let initial = options.initial_faults();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                records: VecDeque::new(),
                faults: Faults::default(),
                prng: Prng::new(options.seed),
                jwks: options.jwks.clone(),
                jwks_paths: vec![DEFAULT_JWKS_PATH.to_string()],
                keyset: "{\"keys\":[]}".into(),
                stats: Stats::default(),
            }),
            opts: options,
            shutdown: Arc::new(AtomicBool::new(false)),
            seq: AtomicU64::new(1),
            active: AtomicUsize::new(0),
        });
        shared.set_faults(initial);
        let accept_shared = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name(format!("mock-accept-{}", local.port()))
            .spawn(move || accept_loop(listener, accept_shared))?;
        Ok(MockHandle {
            shared,
            addr: local,
            accept: Some(accept),
        })
    }
}

/// A running mock; dropping it stops the server (accept loop and connection threads).
pub struct MockHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl MockHandle {
    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://host:port` of the server (127.0.0.1 when bound to the unspecified address).
    pub fn url(&self) -> String {
        let ip = if self.addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            self.addr.ip().to_string()
        };
        format!("http://{ip}:{}", self.addr.port())
    }

    /// Requests received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().records.iter().cloned().collect()
    }

    /// Waits until at least `n` requests were recorded (or `timeout` passed) and returns them.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let records = self.requests();
            if records.len() >= n || Instant::now() >= deadline {
                return records;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Replaces the instance faults (and reseeds the `fail_rate` PRNG with `faults.seed`).
    pub fn set_faults(&self, faults: Faults) {
        self.shared.set_faults(faults);
    }

    /// The instance faults currently active.
    pub fn faults(&self) -> Faults {
        self.shared.state().faults.clone()
    }

    /// Replaces the JWKS body.
    pub fn set_jwks(&self, jwks: String) {
        self.shared.state().jwks = jwks;
    }

    /// Replaces the key set body served at [`KEYSET_PATH`] (when no `keyset_file` is set).
    pub fn set_keyset(&self, keyset: String) {
        self.shared.state().keyset = keyset;
    }

    /// Serves the JWKS at `path` as well.
    pub fn add_jwks_path(&self, path: &str) {
        let mut st = self.shared.state();
        if !st.jwks_paths.iter().any(|p| p == path) {
            st.jwks_paths.push(path.to_string());
        }
    }

    /// Clears recorded requests and stats and restores the start-up faults.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Counters since start or the last reset.
    pub fn stats(&self) -> Stats {
        self.shared.state().stats
    }

    /// Blocks until the server stops (it never does on its own: for binaries).
    pub fn wait(mut self) {
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }

    /// Stops the server now (same as dropping the handle).
    pub fn stop(self) {}
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        // Connection threads notice the flag within ~100 ms.
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.shared.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

struct ActiveGuard(Arc<Shared>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.shutdown.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                shared.active.fetch_add(1, Ordering::SeqCst);
                let guard = ActiveGuard(Arc::clone(&shared));
                let spawned =
                    std::thread::Builder::new()
                        .name("mock-conn".into())
                        .spawn(move || {
                            let guard = guard;
                            serve_connection(&guard.0, stream);
                        });
                if spawned.is_err() {
                    // The guard was dropped with the closure; the stream is closed.
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// What to do with the connection after a response.
enum Next {
    KeepAlive,
    Close,
    Reset,
}

fn serve_connection(shared: &Arc<Shared>, stream: TcpStream) {
    let Ok(mut conn) = HttpConn::new(stream, Arc::clone(&shared.shutdown)) else {
        return;
    };
    loop {
        let req = match conn.read_request() {
            Ok(r) => r,
            Err(ReadError::Closed) => return,
            Err(ReadError::Bad(status, message)) => {
                let body = format!(
                    "{{\"error\":{{\"message\":{},\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}}}",
                    js(&message)
                );
                let headers = vec![("content-type".to_string(), "application/json".to_string())];
                let _ = conn.send_response(status, &headers, body.as_bytes(), false);
                return;
            }
        };
        let keep_alive = req.keep_alive();
        match handle(shared, &mut conn, &req, keep_alive) {
            Next::KeepAlive if keep_alive => continue,
            Next::Reset => {
                conn.reset();
                return;
            }
            _ => return,
        }
    }
}

fn json_headers(extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut h = vec![("content-type".to_string(), "application/json".to_string())];
    h.extend_from_slice(extra);
    h
}

fn send(
    conn: &mut HttpConn,
    status: u16,
    headers: &[(String, String)],
    body: &str,
    keep_alive: bool,
) -> Next {
    match conn.send_response(status, headers, body.as_bytes(), keep_alive) {
        Ok(()) if keep_alive => Next::KeepAlive,
        _ => Next::Close,
    }
}

fn handle(shared: &Arc<Shared>, conn: &mut HttpConn, req: &Request, keep_alive: bool) -> Next {
    let path = req.path().to_string();
    if path == "/__mock" || path.starts_with("/__mock/") {
        let (status, body) = crate::control::handle(shared, req);
        return send(conn, status, &json_headers(&[]), &body, keep_alive);
    }
    if req.method == "GET" && (path == "/health" || path == "/healthz") {
        return send(
            conn,
            200,
            &json_headers(&[]),
            "{\"status\":\"ok\"}",
            keep_alive,
        );
    }
    if req.method == "GET" {
        let jwks = {
            let mut st = shared.state();
            if st.jwks_paths.contains(&path) {
                st.stats.jwks_requests += 1;
                Some(st.jwks.clone())
            } else {
                None
            }
        };
        if let Some(jwks) = jwks {
            return send(conn, 200, &json_headers(&[]), &jwks, keep_alive);
        }
        if path == KEYSET_PATH {
            let body = match &shared.opts.keyset_file {
                Some(file) => {
                    std::fs::read_to_string(file).unwrap_or_else(|_| "{\"keys\":[]}".into())
                }
                None => shared.state().keyset.clone(),
            };
            shared.state().stats.keyset_requests += 1;
            return send(conn, 200, &json_headers(&[]), &body, keep_alive);
        }
    }

    {
        let mut st = shared.state();
        if st.records.len() >= shared.opts.max_recorded.max(1) {
            st.records.pop_front();
        }
        st.records.push_back(RecordedRequest {
            method: req.method.clone(),
            path: req.target.clone(),
            headers: req.headers.clone(),
            body: String::from_utf8_lossy(&req.body).into_owned(),
        });
        st.stats.requests += 1;
    }

    let Some(route) = Route::detect(&req.method, &path) else {
        shared.stat(|s| s.responses_error += 1);
        let body = providers::openai::error_json(
            404,
            &ErrorCause::BadRequest(format!("Unknown route: {} {}", req.method, path)),
            None,
        );
        return send(conn, 404, &json_headers(&[]), &body, keep_alive);
    };
    provider_request(shared, conn, req, route, keep_alive)
}

/// The API key the request presents in `provider`'s style.
fn presented_key(provider: Provider, req: &Request) -> Option<String> {
    let bearer = || {
        req.header("authorization").and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_string())
        })
    };
    match provider {
        Provider::OpenAi => bearer().or_else(|| req.header("api-key").map(str::to_string)),
        Provider::Ollama => bearer(),
        Provider::Anthropic => req.header("x-api-key").map(str::to_string),
        Provider::Gemini => req
            .header("x-goog-api-key")
            .map(str::to_string)
            .or_else(|| req.query_param("key")),
    }
}

/// Per-request usage overrides from `x-mock-usage: cached_tokens=N; reasoning_tokens=N; cache_creation_tokens=N`.
fn usage_overrides(spec: &str, base: (u64, u64, u64)) -> Result<(u64, u64, u64), String> {
    let (mut cached, mut creation, mut reasoning) = base;
    for item in spec
        .split([';', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("x-mock-usage item `{item}` needs key=value"))?;
        let n: u64 = v
            .trim()
            .parse()
            .map_err(|_| format!("x-mock-usage `{k}` needs an integer"))?;
        match k.trim() {
            "cached_tokens" => cached = n,
            "cache_creation_tokens" => creation = n,
            "reasoning_tokens" => reasoning = n,
            other => return Err(format!("unknown x-mock-usage key `{other}`")),
        }
    }
    Ok((cached, creation, reasoning))
}

struct Ctx<'a> {
    shared: &'a Arc<Shared>,
    provider: Provider,
    request_id: String,
    keep_alive: bool,
}

impl Ctx<'_> {
    fn id_headers(&self) -> Vec<(String, String)> {
        match self.provider {
            Provider::OpenAi => vec![
                ("x-request-id".into(), self.request_id.clone()),
                ("openai-processing-ms".into(), "7".into()),
                ("openai-version".into(), "2020-10-01".into()),
            ],
            Provider::Anthropic => vec![("request-id".into(), self.request_id.clone())],
            Provider::Gemini => vec![("server".into(), "scaffolding on HTTPServer2".into())],
            Provider::Ollama => Vec::new(),
        }
    }

    fn json_content_type(&self) -> &'static str {
        match self.provider {
            Provider::Gemini => "application/json; charset=UTF-8",
            Provider::Ollama => "application/json; charset=utf-8",
            _ => "application/json",
        }
    }

    fn error(
        &self,
        conn: &mut HttpConn,
        status: u16,
        cause: ErrorCause,
        echo_key: Option<&str>,
        faults: &Faults,
    ) -> Next {
        self.shared.stat(|s| s.responses_error += 1);
        let body = providers::error_body(self.provider, status, &cause, echo_key, &self.request_id);
        let mut headers = vec![(
            "content-type".to_string(),
            self.json_content_type().to_string(),
        )];
        headers.extend(self.id_headers());
        if let Some(secs) = faults.retry_after {
            headers.push(("retry-after".into(), secs.to_string()));
        }
        if let Some(ms) = faults.retry_after_ms {
            headers.push(("retry-after-ms".into(), ms.to_string()));
        }
        if self.provider == Provider::Anthropic {
            headers.push((
                "x-should-retry".into(),
                matches!(status, 408 | 409 | 429 | 500..=599).to_string(),
            ));
        }
        send(conn, status, &headers, &body, self.keep_alive)
    }
}

fn provider_request(
    shared: &Arc<Shared>,
    conn: &mut HttpConn,
    req: &Request,
    route: Route,
    keep_alive: bool,
) -> Next {
    let seq = shared.seq.fetch_add(1, Ordering::SeqCst);
    let provider = route.provider();
    let ctx = Ctx {
        shared,
        provider,
        request_id: format!("req_mock{seq:010}"),
        keep_alive,
    };
    let no_faults = Faults::default();

    let header_faults = match req.header("x-mock-fault").map(Faults::parse_header) {
        None => Faults::default(),
        Some(Ok(f)) => f,
        Some(Err(e)) => {
            return ctx.error(
                conn,
                400,
                ErrorCause::BadRequest(format!("x-mock-fault: {e}")),
                None,
                &no_faults,
            )
        }
    };
    let (instance, fail_hit) = shared.take_instance_faults(req.path());
    let mut faults = instance.overridden_by(&header_faults);
    if fail_hit && faults.status.is_none() {
        faults.status = Some(500);
    }

    if let Some(ms) = faults.latency_ms {
        if !sleep_ms(ms, &shared.shutdown) {
            return Next::Close;
        }
    }
    if faults.reset == Some(ResetMode::BeforeResponse) {
        shared.stat(|s| s.resets += 1);
        return Next::Reset;
    }

    let key = presented_key(provider, req);
    let echo = if faults.echo_key {
        Some(key.clone().unwrap_or_default())
    } else {
        None
    };
    match faults.status {
        Some(status) if status >= 400 => {
            return ctx.error(conn, status, ErrorCause::Injected, echo.as_deref(), &faults)
        }
        _ if faults.echo_key => {
            return ctx.error(conn, 401, ErrorCause::Injected, echo.as_deref(), &faults)
        }
        _ => {}
    }

    if let Some(required) = &shared.opts.required_api_key {
        match &key {
            None => return ctx.error(conn, 401, ErrorCause::MissingKey, None, &no_faults),
            Some(k) if k != required => {
                return ctx.error(conn, 401, ErrorCause::WrongKey, None, &no_faults)
            }
            Some(_) => {}
        }
        if provider == Provider::Anthropic && req.header("anthropic-version").is_none() {
            return ctx.error(conn, 400, ErrorCause::MissingVersion, None, &no_faults);
        }
    }

    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            let msg = format!("We could not parse the JSON body of your request. ({e})");
            return ctx.error(conn, 400, ErrorCause::BadRequest(msg), None, &no_faults);
        }
    };
    let gemini_sse = req.query_param("alt").as_deref() == Some("sse");
    let mut x = match Exchange::parse(route.clone(), &body, seq, gemini_sse) {
        Ok(x) => x,
        Err(e) => return ctx.error(conn, 400, ErrorCause::BadRequest(e), None, &no_faults),
    };
    x.continuous_usage |= shared.opts.usage_in_every_chunk;

    let opts = &shared.opts;
    let base = (
        opts.cached_tokens,
        opts.cache_creation_tokens,
        opts.reasoning_tokens,
    );
    let (cached, creation, reasoning) = match req
        .header("x-mock-usage")
        .map(|s| usage_overrides(s, base))
    {
        None => base,
        Some(Ok(v)) => v,
        Some(Err(e)) => return ctx.error(conn, 400, ErrorCause::BadRequest(e), None, &no_faults),
    };
    let text = reply_text(route.kind(), &x.prompt.last_user);
    let words: Vec<String> = text.split(' ').map(str::to_string).collect();
    let reasoning = if matches!(route, Route::Embeddings | Route::CountTokens) {
        0
    } else {
        reasoning
    };
    let mut usage = Usage::new(
        x.prompt.tokens(),
        words.len() as u64,
        reasoning,
        cached,
        creation,
    );
    if matches!(route, Route::Embeddings | Route::CountTokens) {
        usage.output = 0;
    }

    if x.stream && !matches!(route, Route::Embeddings | Route::CountTokens) {
        let format = providers::stream_format(&x, &usage);
        return run_stream(&ctx, conn, format, &words, usage, &faults);
    }

    let body = providers::json_body(&x, &text, &usage);
    let mut headers = vec![(
        "content-type".to_string(),
        ctx.json_content_type().to_string(),
    )];
    headers.extend(ctx.id_headers());
    if faults.reset == Some(ResetMode::MidStream) {
        let _ = conn.send_partial_response(200, &headers, body.as_bytes(), body.len() / 2);
        sleep_ms(50, &shared.shutdown);
        shared.stat(|s| s.resets += 1);
        return Next::Reset;
    }
    if faults.truncate {
        let cut = body.len() / 2;
        let cut = (0..=cut)
            .rev()
            .find(|i| body.is_char_boundary(*i))
            .unwrap_or(0);
        shared.stat(|s| {
            s.truncated += 1;
            s.responses_ok += 1;
        });
        return send(conn, 200, &headers, &body[..cut], keep_alive);
    }
    shared.stat(|s| {
        s.responses_ok += 1;
        if route != Route::CountTokens {
            s.prompt_tokens += usage.prompt;
            s.completion_tokens += usage.completion();
        }
    });
    send(conn, 200, &headers, &body, keep_alive)
}

/// Buffers stream events and writes them: one HTTP chunk per event, or
/// coalesced into ~32 KiB chunks for `stream_bytes` streams without delay.
struct EventWriter<'a> {
    conn: &'a mut HttpConn,
    shutdown: &'a AtomicBool,
    delay_ms: u64,
    coalesce: bool,
    pending: Vec<u8>,
    events: u64,
    bytes: u64,
}

impl EventWriter<'_> {
    fn emit(&mut self, event: &str) -> io::Result<()> {
        if self.events > 0 && self.delay_ms > 0 && !sleep_ms(self.delay_ms, self.shutdown) {
            return Err(io::ErrorKind::ConnectionAborted.into());
        }
        self.events += 1;
        self.bytes += event.len() as u64;
        if self.coalesce {
            self.pending.extend_from_slice(event.as_bytes());
            if self.pending.len() >= 32 * 1024 {
                self.flush()?;
            }
            Ok(())
        } else {
            self.conn.send_chunk(event.as_bytes())
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        self.conn.send_chunk(&pending)
    }
}

fn run_stream(
    ctx: &Ctx<'_>,
    conn: &mut HttpConn,
    mut format: Box<dyn StreamFormat + Send>,
    words: &[String],
    mut usage: Usage,
    faults: &Faults,
) -> Next {
    let shared = ctx.shared;
    let mut headers = vec![
        (
            "content-type".to_string(),
            format.content_type().to_string(),
        ),
        ("cache-control".to_string(), "no-cache".to_string()),
    ];
    headers.extend(ctx.id_headers());
    if conn.start_chunked(200, &headers, ctx.keep_alive).is_err() {
        return Next::Close;
    }
    shared.stat(|s| s.streams += 1);
    let mut w = EventWriter {
        conn,
        shutdown: &shared.shutdown,
        delay_ms: faults.chunk_delay_ms.unwrap_or(0),
        coalesce: faults.stream_bytes.is_some() && faults.chunk_delay_ms.unwrap_or(0) == 0,
        pending: Vec::new(),
        events: 0,
        bytes: 0,
    };
    let reset_mid = faults.reset == Some(ResetMode::MidStream);
    let result = (|| -> io::Result<Next> {
        for event in format.head() {
            w.emit(&event)?;
        }
        let mut full_text = String::new();
        let mut pieces = 0usize;
        let word_count = words.len().max(1);
        loop {
            let done = match faults.stream_bytes {
                None => pieces >= words.len(),
                Some(target) => pieces >= words.len() && w.bytes >= target,
            };
            if done {
                break;
            }
            if reset_mid {
                let half_reached = match faults.stream_bytes {
                    None => pieces >= word_count.div_ceil(2),
                    Some(target) => w.bytes >= target / 2 && pieces > 0,
                };
                if half_reached {
                    w.flush()?;
                    sleep_ms(50, &shared.shutdown);
                    return Ok(Next::Reset);
                }
            }
            let word = words
                .get(pieces % word_count)
                .map(String::as_str)
                .unwrap_or("");
            let piece = if pieces == 0 {
                word.to_string()
            } else {
                format!(" {word}")
            };
            full_text.push_str(&piece);
            pieces += 1;
            let event = format.piece(&piece, pieces as u64);
            w.emit(&event)?;
        }
        usage.output = pieces as u64;
        // Stats are updated before the terminating chunk so that a client that
        // saw the end of the body also sees the stats.
        if faults.truncate {
            w.flush()?;
            shared.stat(|s| {
                s.truncated += 1;
                s.responses_ok += 1;
            });
            w.conn.finish_chunked()?;
            return Ok(Next::KeepAlive);
        }
        for event in format.tail(&full_text, &usage) {
            w.emit(&event)?;
        }
        w.flush()?;
        shared.stat(|s| {
            s.responses_ok += 1;
            if format.reports_usage() {
                s.prompt_tokens += usage.prompt;
                s.completion_tokens += usage.completion();
            }
        });
        w.conn.finish_chunked()?;
        Ok(Next::KeepAlive)
    })();
    match result {
        Ok(Next::Reset) => {
            shared.stat(|s| s.resets += 1);
            Next::Reset
        }
        Ok(Next::KeepAlive) if ctx.keep_alive => Next::KeepAlive,
        _ => Next::Close,
    }
}
