//! The per-request HTTP context: correlation ids, request limits, budget admission, usage
//! accounting of the response (streams included), and local replies. Decisions are made by the
//! pure modules; this file moves bytes and headers.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, LogLevel, MapType};

use super::auth::JwtRuntime;
use super::calls::{header, log_with_id, now_nanos, remove_header, set_header};
use super::metrics::{CoreMetrics, MetricRegistry};
use super::store::HostStore;
use crate::accounting::{self, ModelLabels, RequestRecord};
use crate::budget::{Admission, Refusal};
use crate::config::FilterConfig;
use crate::correlation::{choose_request_id, decide_trace, RequestIdSource};
use crate::error_reply::{ErrorKind, ErrorReply};
use crate::failover::carry::{Carry, CARRY_HEADER, PROVIDER_HEADER};
use crate::failover::{self, FailoverSettings};
use crate::identity::{address_identity, api_key_identity};
use crate::jwt::{self, AuthOutcome, KeyAvailability, RequestEdit};
use crate::masking::{apply_prompt_action, MaskEngine, PromptVerdict, StreamMasker};
use crate::random::IdRng;
use crate::routing::{self, CLIENT_CREDENTIAL_HEADERS, CLUSTER_HEADER};
use crate::translate::{self, SourceFormat, StreamTranslator};
use crate::usage::{
    classify_path, ensure_include_usage, ApiKind, RequestInfo, SseChunkFilter, UsageTracker,
};

mod hooks;

/// The provider a routed request was sent to.
#[derive(Debug, Clone)]
struct ActiveRoute {
    /// Index into the failover settings' providers.
    provider: usize,
    /// Provider name (labels, logs).
    name: String,
    /// The response format to translate back from (`None`: already OpenAI).
    translate_from: Option<SourceFormat>,
    /// The client asked for a stream.
    stream: bool,
    /// The client asked for `include_usage`.
    include_usage: bool,
    /// The model the client named (echoed in translated responses).
    client_model: String,
}

/// A request whose route Envoy walks (an aggregate cluster); the upstream stage rewrites each
/// attempt, and the answering provider is learnt from the response.
#[derive(Debug, Clone)]
struct WalkedRoute {
    /// The model the client named.
    client_model: String,
    /// The client asked for a stream.
    stream: bool,
    /// The client asked for `include_usage`.
    include_usage: bool,
}

/// State shared by every HTTP context of a VM: tagged metrics and bounded model labels.
#[derive(Debug, Default)]
pub struct VmShared {
    /// Tagged metrics defined so far.
    pub metrics: MetricRegistry,
    /// Model labels seen so far.
    pub models: ModelLabels,
    /// Token charges waiting for the root context to send them to the global rate limit
    /// service: (user, tokens).
    pub pending_charges: Vec<(String, u64)>,
}

/// Most charges queued between two ticks; beyond it charges are dropped (and counted).
pub const MAX_PENDING_CHARGES: usize = 10_000;

/// Where a request stands with JWT validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthState {
    /// Not decided yet (or no JWT configured).
    Pending,
    /// Waiting for a JWKS fetch this context dispatched.
    WaitingForKeys {
        /// The callout token.
        token: u32,
        /// Whether this wait is an unknown-`kid` refetch (done at most once per request).
        kid_refetch: bool,
    },
    /// Decided: the request may continue.
    Passed,
}

/// The result of one authentication attempt.
enum AuthStep {
    /// Go on with the request.
    Proceed,
    /// A local reply was sent.
    Replied,
    /// Waiting for keys.
    Waiting,
}

/// One request's state.
pub struct TollgateHttp {
    config: Rc<FilterConfig>,
    shared: Rc<RefCell<VmShared>>,
    jwt: Option<Rc<RefCell<JwtRuntime>>>,
    rng: IdRng,
    metrics: CoreMetrics,
    /// The request's correlation id, set in `on_http_request_headers`.
    request_id: String,
    /// Request body bytes seen so far.
    request_bytes: u64,
    /// Largest request body accepted on this request's path.
    body_limit: u64,
    /// Request start, ns since the epoch.
    started_ns: u64,
    /// The LLM API the request speaks, when it is one.
    api: Option<ApiKind>,
    /// The request path.
    path: String,
    /// Waiting for the whole request body before deciding (model, budget, rewrite).
    awaiting_body: bool,
    /// What the request body said.
    info: Option<RequestInfo>,
    /// The caller.
    user: Option<String>,
    /// The budget reservation to settle.
    admission: Option<Admission>,
    /// tollgate added `include_usage`: the extra usage chunk is stripped for the client.
    injected_usage: bool,
    /// Observes the response.
    tracker: Option<UsageTracker>,
    /// Drops the injected usage chunk from the client's stream.
    chunk_filter: Option<SseChunkFilter>,
    /// Response status.
    status: u32,
    /// Time to first token, ms.
    ttft_ms: Option<u64>,
    /// A local reply was sent: nothing to account.
    replied_locally: bool,
    /// JWT state.
    auth: AuthState,
    /// Request headers ended the stream (no body).
    headers_end_stream: bool,
    /// The whole request body arrived while authentication was waiting (its size).
    body_complete: Option<usize>,
    /// Masks error bodies (or all responses) as they stream.
    response_masker: Option<StreamMasker<Arc<MaskEngine>>>,
    /// Secrets masked in this request, for the access log.
    masked_count: usize,
    /// The provider this request was routed to, when failover routing is configured.
    route: Option<ActiveRoute>,
    /// Translates a provider stream into OpenAI chunks.
    translator: Option<StreamTranslator>,
    /// Hold the whole response body to translate it (JSON responses and error bodies).
    buffer_for_translation: bool,
    /// The client's request body and what it asked for, kept for failover attempts.
    client_request: Option<(Vec<u8>, bool, bool)>,
    /// Providers tried so far (index) with what happened, for the all-failed summary.
    attempts: Vec<(usize, String, u64)>,
    /// A failover callout is in flight (its token); the failed response is held meanwhile.
    failover_token: Option<u32>,
    /// The response headers ended the stream (no body to replace: no failover possible).
    response_headers_end_stream: bool,
    /// The held response's body is complete (its size).
    held_body: Option<usize>,
    /// The answer that replaces the held response: status, content type, body.
    replacement: Option<(u32, String, Vec<u8>)>,
    /// Set when Envoy walks the route's providers (aggregate cluster + upstream stage).
    walk: Option<WalkedRoute>,
    /// Time spent in this context's callbacks so far (ns): the filter's own time.
    own_ns: u64,
}

impl TollgateHttp {
    /// Creates the context for one request.
    pub fn new(
        config: Rc<FilterConfig>,
        shared: Rc<RefCell<VmShared>>,
        jwt: Option<Rc<RefCell<JwtRuntime>>>,
        rng: IdRng,
        metrics: CoreMetrics,
    ) -> Self {
        let body_limit = config.max_request_bytes;
        Self {
            config,
            shared,
            jwt,
            rng,
            metrics,
            request_id: String::new(),
            request_bytes: 0,
            body_limit,
            started_ns: 0,
            api: None,
            path: String::new(),
            awaiting_body: false,
            info: None,
            user: None,
            admission: None,
            injected_usage: false,
            tracker: None,
            chunk_filter: None,
            status: 0,
            ttft_ms: None,
            replied_locally: false,
            auth: AuthState::Pending,
            headers_end_stream: false,
            body_complete: None,
            response_masker: None,
            masked_count: 0,
            route: None,
            translator: None,
            buffer_for_translation: false,
            client_request: None,
            attempts: Vec::new(),
            failover_token: None,
            response_headers_end_stream: false,
            held_body: None,
            replacement: None,
            walk: None,
            own_ns: 0,
        }
    }

    /// The VM's masking engine.
    fn engine(&self) -> Option<Arc<MaskEngine>> {
        self.config.masking.engine.clone()
    }

    /// Logs one line carrying this request's correlation id.
    fn log(&self, level: LogLevel, message: &str) {
        match (&self.config.masking.engine, self.config.masking.logs) {
            (Some(engine), true) => {
                log_with_id(level, &self.request_id, &engine.mask_log_line(message));
            }
            _ => log_with_id(level, &self.request_id, message),
        }
    }

    /// Sends a local reply in the common error shape and stops the filter chain.
    fn reply(&mut self, reply: &ErrorReply) -> Action {
        let corr = &self.config.correlation;
        let headers = reply.all_headers(&corr.request_id_header, &self.request_id);
        let header_refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let body = reply.body(&self.request_id);
        self.metrics.local_replies.add(1);
        self.replied_locally = true;
        self.log(
            LogLevel::Info,
            &format!("local reply {} {}", reply.status, reply.code),
        );
        if hostcalls::send_http_response(reply.status, header_refs, Some(&body)).is_err() {
            self.log(LogLevel::Error, "host refused the local reply");
        }
        Action::Pause
    }

    /// Validates or creates the request id and trace context and writes them upstream.
    fn apply_correlation(&mut self) {
        let config = Rc::clone(&self.config);
        let corr = &config.correlation;
        let canonical = header(MapType::HttpRequestHeaders, &corr.request_id_header);
        let aliases: Vec<Option<String>> = corr
            .aliases
            .iter()
            .map(|name| header(MapType::HttpRequestHeaders, name))
            .collect();
        let (id, source) = choose_request_id(
            canonical.as_deref(),
            aliases.iter().map(Option::as_deref),
            corr.max_length,
            &mut self.rng,
        );
        self.request_id = id;
        // A credential sent as the request id (by mistake or to smuggle it into logs) is not an id.
        let id_is_secret = source != RequestIdSource::Generated
            && self
                .config
                .masking
                .engine
                .as_ref()
                .is_some_and(|e| !e.scan(self.request_id.as_bytes()).is_empty());
        let source = if id_is_secret {
            self.request_id = crate::correlation::uuid_v4(&mut self.rng);
            set_header(
                MapType::HttpRequestHeaders,
                &corr.request_id_header,
                &self.request_id,
            );
            RequestIdSource::Generated
        } else {
            source
        };
        if source != RequestIdSource::Canonical {
            set_header(
                MapType::HttpRequestHeaders,
                &corr.request_id_header,
                &self.request_id,
            );
        }
        if source == RequestIdSource::Generated {
            self.metrics.request_ids_generated.add(1);
            if canonical.is_some() {
                self.log(LogLevel::Debug, "replaced an invalid request id");
            }
        }
        // An alias that carried garbage must not travel upstream either.
        for (name, value) in corr.aliases.iter().zip(aliases.iter()) {
            if value.is_some() && value.as_deref() != Some(self.request_id.as_str()) {
                set_header(MapType::HttpRequestHeaders, name, &self.request_id);
            }
        }
        if corr.traceparent {
            let incoming = header(MapType::HttpRequestHeaders, "traceparent");
            let decision = decide_trace(incoming.as_deref(), &mut self.rng);
            set_header(
                MapType::HttpRequestHeaders,
                "traceparent",
                &decision.upstream.header_value(),
            );
            if !decision.continued {
                self.metrics.traces_started.add(1);
                remove_header(MapType::HttpRequestHeaders, "tracestate");
            }
        }
    }

    /// Runs JWT validation on the request headers (again, after a key fetch).
    fn authenticate(&mut self) -> AuthStep {
        if let Some(envoy_jwt) = self.config.envoy_jwt.clone() {
            return self.identity_from_envoy_jwt(&envoy_jwt);
        }
        let Some(runtime) = self.jwt.clone() else {
            self.auth = AuthState::Passed;
            return AuthStep::Proceed;
        };
        let headers = super::calls::headers(MapType::HttpRequestHeaders);
        let method = header(MapType::HttpRequestHeaders, ":method").unwrap_or_default();
        let path = header(MapType::HttpRequestHeaders, ":path").unwrap_or_default();
        let now_ms = now_nanos() / 1_000_000;
        let Ok(mut rt) = runtime.try_borrow_mut() else {
            self.auth = AuthState::Passed;
            return AuthStep::Proceed;
        };
        let availability: Vec<KeyAvailability> = rt.availability(now_ms);
        let settings = Arc::clone(&rt.settings);
        let request = jwt::RequestInfo {
            method: &method,
            path: &path,
            headers: headers.as_slice(),
        };
        let outcome = jwt::authenticate(
            &settings,
            &request,
            |p| {
                availability
                    .get(p)
                    .cloned()
                    .unwrap_or(KeyAvailability::Unavailable)
            },
            &mut rt.cache,
            now_ms / 1000,
        );
        match outcome {
            AuthOutcome::Allow {
                identity, edits, ..
            } => {
                drop(rt);
                for edit in edits {
                    match edit {
                        RequestEdit::RemoveHeader(name) => {
                            remove_header(MapType::HttpRequestHeaders, &name);
                        }
                        RequestEdit::SetHeader(name, value) => {
                            set_header(MapType::HttpRequestHeaders, &name, &value);
                        }
                        RequestEdit::SetPath(p) => {
                            set_header(MapType::HttpRequestHeaders, ":path", &p);
                        }
                    }
                }
                if let Some(identity) = identity {
                    let claim = identity
                        .claims
                        .get(&self.config.jwt_claim)
                        .and_then(|v| match v {
                            serde_json::Value::String(s) => Some(s.clone()),
                            serde_json::Value::Number(n) => Some(n.to_string()),
                            _ => None,
                        });
                    self.user = claim.or(identity.subject);
                    self.count(accounting::tagged_name(
                        "tollgate_jwt_allowed_total",
                        &[("provider", &identity.provider)],
                    ));
                }
                self.auth = AuthState::Passed;
                AuthStep::Proceed
            }
            AuthOutcome::Wait { provider, .. } => {
                let already = matches!(self.auth, AuthState::WaitingForKeys { .. });
                let token = if already {
                    None
                } else {
                    rt.dispatch(provider, now_ms)
                };
                drop(rt);
                match token {
                    Some(token) => {
                        self.auth = AuthState::WaitingForKeys {
                            token,
                            kid_refetch: false,
                        };
                        AuthStep::Waiting
                    }
                    None => self.deny_no_keys(),
                }
            }
            AuthOutcome::Deny(denial) => {
                let kid_retry = denial.unknown_kid_provider.filter(|p| {
                    !matches!(
                        self.auth,
                        AuthState::WaitingForKeys {
                            kid_refetch: true,
                            ..
                        }
                    ) && rt.unknown_kid(*p, now_ms)
                });
                if let Some(provider) = kid_retry {
                    if let Some(token) = rt.dispatch(provider, now_ms) {
                        drop(rt);
                        self.auth = AuthState::WaitingForKeys {
                            token,
                            kid_refetch: true,
                        };
                        return AuthStep::Waiting;
                    }
                }
                drop(rt);
                self.count(accounting::tagged_name(
                    "tollgate_jwt_denied_total",
                    &[("reason", denial.reason)],
                ));
                let kind = if denial.status == 401 {
                    ErrorKind::Authentication
                } else if denial.status == 403 {
                    ErrorKind::Permission
                } else {
                    ErrorKind::InvalidRequest
                };
                let message = denial
                    .error
                    .as_ref()
                    .map(|e| e.description().to_string())
                    .unwrap_or_else(|| denial.body.trim().to_string());
                let mut reply =
                    ErrorReply::new(u32::from(denial.status), kind, denial.reason, message);
                if let Some(challenge) = denial.www_authenticate {
                    reply = reply.with_header("www-authenticate", challenge);
                }
                self.reply(&reply);
                AuthStep::Replied
            }
        }
    }

    /// Envoy's `jwt_authn` verified the token: read the payload it put in dynamic metadata.
    fn identity_from_envoy_jwt(&mut self, cfg: &crate::config::EnvoyJwtConfig) -> AuthStep {
        let claim = |name: &str| -> Option<String> {
            hostcalls::get_property(vec![
                "metadata",
                "filter_metadata",
                &cfg.metadata_namespace,
                &cfg.payload_key,
                name,
            ])
            .ok()
            .flatten()
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|s| !s.is_empty())
        };
        for (_, header_name) in &cfg.claims_to_headers {
            remove_header(MapType::HttpRequestHeaders, header_name);
        }
        let user = claim(&self.config.jwt_claim);
        if user.is_none() && cfg.required {
            self.count(accounting::tagged_name(
                "tollgate_jwt_denied_total",
                &[("reason", "missing")],
            ));
            let reply = ErrorReply::new(
                401,
                ErrorKind::Authentication,
                "missing",
                "a verified bearer token is required",
            )
            .with_header("www-authenticate", "Bearer realm=\"tollgate\"");
            self.reply(&reply);
            return AuthStep::Replied;
        }
        for (claim_name, header_name) in &cfg.claims_to_headers {
            if let Some(value) = claim(claim_name) {
                set_header(MapType::HttpRequestHeaders, header_name, &value);
            }
        }
        if user.is_some() {
            self.count(accounting::tagged_name(
                "tollgate_jwt_allowed_total",
                &[("provider", "envoy_jwt_authn")],
            ));
        }
        self.user = user;
        self.auth = AuthState::Passed;
        AuthStep::Proceed
    }

    /// Keys never arrived within the bounded wait: 401 `no_keys_yet` (as a bad token would be).
    fn deny_no_keys(&mut self) -> AuthStep {
        self.count(accounting::tagged_name(
            "tollgate_jwt_denied_total",
            &[("reason", "no_keys_yet")],
        ));
        let realm = self
            .jwt
            .as_ref()
            .and_then(|j| j.try_borrow().ok().map(|r| r.settings.realm.clone()))
            .unwrap_or_default();
        let reply = ErrorReply::new(
            401,
            ErrorKind::Authentication,
            "no_keys_yet",
            "the token cannot be verified yet: signing keys are unavailable",
        )
        .with_header(
            "www-authenticate",
            format!("Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"signing keys unavailable\""),
        );
        self.reply(&reply);
        AuthStep::Replied
    }

    /// Everything after authentication on the request headers: which API, who, and whether to
    /// hold for the body.
    fn after_auth(&mut self) -> Action {
        if let Some(action) = self.serve_status() {
            return action;
        }
        self.api = classify_path(&self.path);
        if let Some(action) = self.guard_headers() {
            return action;
        }
        if self.api.is_none() {
            return Action::Continue;
        }
        if self.user.is_none() {
            self.user = self.identify();
        }
        if self.headers_end_stream {
            return self.admit();
        }
        if let Some(size) = self.body_complete.take() {
            return self.on_full_request_body(size);
        }
        // Hold the headers until the body is complete: the model, the output limit and the
        // budget decision come from it, and a rewritten body needs a new content-length.
        self.awaiting_body = true;
        Action::Pause
    }

    /// The caller: API key hash from the configured headers, else the client address.
    fn identify(&self) -> Option<String> {
        for name in &self.config.api_key_headers {
            if let Some(id) = header(MapType::HttpRequestHeaders, name)
                .as_deref()
                .and_then(api_key_identity)
            {
                return Some(id);
            }
        }
        hostcalls::get_property(vec!["source", "address"])
            .ok()
            .flatten()
            .and_then(|b| String::from_utf8(b).ok())
            .map(|a| address_identity(&a))
    }

    /// Reads the whole (buffered) request body, rewrites it if needed, and runs admission.
    fn on_full_request_body(&mut self, body_size: usize) -> Action {
        let Some(kind) = self.api else {
            return Action::Continue;
        };
        let mut body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let mut body_changed = false;
        if let Some(engine) = self.engine() {
            match apply_prompt_action(&engine, self.config.masking.prompts, &body) {
                PromptVerdict::Forward => {}
                PromptVerdict::Redacted(masked) => {
                    for f in &masked.findings {
                        self.count_masked(&f.kind, "prompt", f.count);
                    }
                    let redacted = masked.bytes.into_owned();
                    self.log(LogLevel::Info, "secrets redacted from the prompt");
                    body = redacted;
                    body_changed = true;
                }
                PromptVerdict::Blocked { kinds } => {
                    for k in &kinds {
                        self.count_masked(k, "prompt", 1);
                    }
                    let reply = ErrorReply::new(
                        400,
                        ErrorKind::InvalidRequest,
                        "secret_detected",
                        format!(
                            "the request contains credentials ({}); remove them and retry",
                            kinds.join(", ")
                        ),
                    );
                    return self.reply(&reply);
                }
            }
        }
        let info = RequestInfo::from_request(kind, &self.path, &body);
        if let Some(action) = self.guard_body(&info) {
            return action;
        }
        if let (Some(failover), ApiKind::OpenAiChat) = (self.config.failover.clone(), kind) {
            match self.route_request(&failover, &info, &body) {
                Ok(Some(routed)) => {
                    body = routed;
                    body_changed = true;
                }
                Ok(None) => {}
                Err(action) => return action,
            }
        }
        let kind = self.api.unwrap_or(kind);
        if kind == ApiKind::OpenAiChat
            && self.walk.is_none()
            && self
                .config
                .usage
                .injects_include_usage(info.streaming, info.include_usage_requested)
        {
            if let Some(rewritten) = ensure_include_usage(&body) {
                body = rewritten;
                body_changed = true;
                self.injected_usage = true;
            }
        }
        if body_changed {
            if super::abi::set_buffer(BufferType::HttpRequestBody, 0, body_size, &body) {
                set_header(
                    MapType::HttpRequestHeaders,
                    "content-length",
                    &body.len().to_string(),
                );
            } else {
                self.injected_usage = false;
                self.log(LogLevel::Warn, "host refused the request body rewrite");
            }
        }
        self.info = Some(info);
        self.admit()
    }

    /// Picks the first healthy provider for the request's model, rewrites the request for it
    /// (path, body, key, cluster) and returns the new body. `Ok(None)`: no route for this model,
    /// the request goes where Envoy's route sends it. `Err`: a local reply was sent.
    fn route_request(
        &mut self,
        failover: &FailoverSettings,
        info: &RequestInfo,
        body: &[u8],
    ) -> Result<Option<Vec<u8>>, Action> {
        let model = info.model.clone().unwrap_or_default();
        let now_ms = now_nanos() / 1_000_000;
        // A route with an aggregate cluster is walked by Envoy while every provider may be tried
        // (each attempt claims its own probe upstream); once tollgate's circuit or a back-off
        // window rules one out, tollgate routes the request itself so that provider gets no
        // traffic (an upstream filter cannot skip the host Envoy picked without resetting the
        // whole request).
        let walk_cluster = failover.envoy_cluster_for(&model).filter(|_| {
            failover::peek(failover, &model, now_ms, &HostStore)
                .is_some_and(|p| p.skipped.is_empty())
        });
        if let Some(cluster) = walk_cluster {
            set_header(MapType::HttpRequestHeaders, CLUSTER_HEADER, cluster);
            self.clear_route_cache();
            self.walk = Some(WalkedRoute {
                client_model: model,
                stream: info.streaming,
                include_usage: info.include_usage_requested,
            });
            return Ok(None);
        }
        let Some(plan) = failover::plan(failover, &model, now_ms, &HostStore) else {
            return Ok(None);
        };
        let Some(attempt) = plan.attempts.first().cloned() else {
            return Err(self.unavailable(&plan, &model, now_ms));
        };
        let Some(provider) = failover.providers.get(attempt.index) else {
            return Ok(None);
        };
        let req = match routing::upstream_request(
            provider,
            &attempt.provider_model,
            body,
            info.streaming,
            info.include_usage_requested,
        ) {
            Ok(req) => req,
            Err(e) => {
                let reply = ErrorReply::new(400, ErrorKind::InvalidRequest, e.code(), e.message());
                return Err(self.reply(&reply));
            }
        };
        for name in CLIENT_CREDENTIAL_HEADERS {
            remove_header(MapType::HttpRequestHeaders, name);
        }
        if let Some(Some(key)) = self.config.provider_keys.get(attempt.index) {
            let (name, prefix) = req.key_header;
            set_header(MapType::HttpRequestHeaders, name, &format!("{prefix}{key}"));
        }
        for (name, value) in &req.headers {
            set_header(MapType::HttpRequestHeaders, name, value);
        }
        set_header(MapType::HttpRequestHeaders, ":path", &req.path);
        if let Some(authority) = req.authority.as_deref() {
            set_header(MapType::HttpRequestHeaders, ":authority", authority);
        }
        set_header(MapType::HttpRequestHeaders, CLUSTER_HEADER, &req.cluster);
        self.clear_route_cache();
        self.path = req.path.clone();
        self.log(
            LogLevel::Debug,
            &format!("routed model {model:?} to provider {}", provider.name),
        );
        self.client_request = Some((body.to_vec(), info.streaming, info.include_usage_requested));
        self.adopt_route(attempt.index, &provider.name, &req, model);
        Ok(Some(req.body))
    }

    /// Envoy 1.40 no longer re-routes when a wasm filter edits headers: asks for it.
    fn clear_route_cache(&self) {
        if hostcalls::call_foreign_function("clear_route_cache", None).is_err() {
            self.log(
                LogLevel::Warn,
                "clear_route_cache is unavailable: the route may not follow the provider",
            );
        }
    }

    /// Refuses up front: no provider of the route can be tried now (503, or 429 with the
    /// earliest `Retry-After` when all are backing off).
    fn unavailable(&mut self, plan: &failover::Plan, model: &str, now_ms: u64) -> Action {
        let retry_after = plan
            .earliest_retry_ms()
            .map(|t| t.saturating_sub(now_ms).div_ceil(1000).max(1))
            .unwrap_or(1);
        let names: Vec<String> = plan
            .skipped
            .iter()
            .map(|(name, reason)| format!("{name}: {reason:?}"))
            .collect();
        let reply = no_provider_reply(
            plan.all_backing_off(),
            "all_providers_unavailable",
            format!("no provider can serve {model:?} now ({})", names.join("; ")),
        )
        .with_header("retry-after", retry_after.to_string());
        self.reply(&reply)
    }

    /// For a walked route: learns from the response which provider answered (named by the
    /// upstream stage) and prepares translation and usage for it; a failed final answer is
    /// replaced by the all-failed summary.
    fn adopt_walked_provider(&mut self, end_of_stream: bool) -> Option<Action> {
        let walk = self.walk.clone()?;
        let failover = self.config.failover.clone()?;
        let answered = header(MapType::HttpResponseHeaders, PROVIDER_HEADER);
        let carried = [MapType::HttpResponseHeaders, MapType::HttpRequestHeaders]
            .into_iter()
            .filter_map(|map| header(map, CARRY_HEADER).and_then(|v| Carry::decode(&v)))
            .max_by_key(|c| c.notes.len());
        remove_header(MapType::HttpResponseHeaders, PROVIDER_HEADER);
        remove_header(MapType::HttpResponseHeaders, CARRY_HEADER);
        let status = u16::try_from(self.status).ok();
        let failed = matches!(
            failover::classify(status, false, status.is_none()),
            failover::Outcome::Retryable(_)
        );
        if failed {
            let mut carry = carried.unwrap_or_default();
            if carry.notes.is_empty() {
                carry.push("the last provider", &self.status.to_string(), 0);
            }
            let reply = all_failed_reply(&carry);
            if end_of_stream {
                return Some(self.reply(&reply));
            }
            self.replacement = Some((
                reply.status,
                "application/json".into(),
                reply.body(&self.request_id),
            ));
            return Some(Action::Pause);
        }
        let index = answered
            .as_deref()
            .and_then(|n| failover.provider_index(n))?;
        let provider = failover.providers.get(index)?;
        let translate_from = routing::response_format(provider.kind);
        self.api = Some(api_kind_answering_in(translate_from));
        // The upstream stage injected include_usage for an OpenAI-kind provider by the same rule.
        self.injected_usage = translate_from.is_none()
            && self
                .config
                .usage
                .injects_include_usage(walk.stream, walk.include_usage);
        self.route = Some(ActiveRoute {
            provider: index,
            name: provider.name.clone(),
            translate_from,
            stream: walk.stream,
            include_usage: walk.include_usage,
            client_model: walk.client_model,
        });
        None
    }

    /// Makes `req` (for provider `index`) the request's route: what to translate back from and
    /// which API the usage tracker reads.
    fn adopt_route(
        &mut self,
        index: usize,
        name: &str,
        req: &routing::UpstreamRequest,
        model: String,
    ) {
        self.api = Some(api_kind_answering_in(req.translate_from));
        self.route = Some(ActiveRoute {
            provider: index,
            name: name.to_string(),
            translate_from: req.translate_from,
            stream: req.stream,
            include_usage: req.include_usage,
            client_model: model,
        });
    }

    /// Records the provider's answer for its circuit and back-off, and prepares translation.
    fn on_routed_response(&mut self) {
        let (Some(route), Some(failover)) = (self.route.clone(), self.config.failover.clone())
        else {
            return;
        };
        let Some(provider) = failover.providers.get(route.provider) else {
            return;
        };
        let now_ms = now_nanos() / 1_000_000;
        if self.walk.is_none() {
            self.record_own_attempt(&failover, &route, provider, now_ms);
            if self.failover_token.is_some() || self.replacement.is_some() {
                return;
            }
        }
        let Some(source) = route.translate_from else {
            return;
        };
        remove_header(MapType::HttpResponseHeaders, "content-length");
        if (200..300).contains(&self.status) && route.stream {
            let id = format!("chatcmpl-{}", self.request_id);
            self.translator = Some(StreamTranslator::new(
                source,
                &route.client_model,
                &id,
                now_ms / 1000,
                route.include_usage,
            ));
            set_header(
                MapType::HttpResponseHeaders,
                "content-type",
                "text/event-stream",
            );
        } else {
            self.buffer_for_translation = true;
            set_header(
                MapType::HttpResponseHeaders,
                "content-type",
                "application/json",
            );
            if self.status == 529 {
                set_header(MapType::HttpResponseHeaders, ":status", "503");
            }
        }
    }

    /// Records the answer of the provider tollgate picked itself and, when it failed before any
    /// byte reached the client, starts the next provider's callout.
    fn record_own_attempt(
        &mut self,
        failover: &FailoverSettings,
        route: &ActiveRoute,
        provider: &crate::failover::ProviderSettings,
        now_ms: u64,
    ) {
        let status = u16::try_from(self.status).ok();
        let outcome = self.record_attempt(provider, status, MapType::HttpResponseHeaders, now_ms);
        let elapsed = now_nanos().saturating_sub(self.started_ns) / 1_000_000;
        self.attempts
            .push((route.provider, format!("{}", self.status), elapsed));
        if matches!(outcome, failover::Outcome::Retryable(_)) && !self.response_headers_end_stream {
            self.count(failover::metrics::failovers_metric(
                &route.name,
                outcome.label(),
            ));
            self.start_next_attempt(failover);
        }
    }

    /// Sends the request to the next provider of the plan not tried yet, as a callout; the
    /// failed response is held until the callout answers. False when no provider is left (the
    /// summary then replaces the held response) or the callout could not start.
    fn start_next_attempt(&mut self, failover: &FailoverSettings) -> bool {
        let Some((body, streaming, include_usage)) = self.client_request.clone() else {
            return false;
        };
        let model = self
            .route
            .as_ref()
            .map(|r| r.client_model.clone())
            .unwrap_or_default();
        let now_ms = now_nanos() / 1_000_000;
        let tried: Vec<usize> = self.attempts.iter().map(|a| a.0).collect();
        let next = failover::plan(failover, &model, now_ms, &HostStore)
            .and_then(|p| p.attempts.into_iter().find(|a| !tried.contains(&a.index)));
        let Some(attempt) = next else {
            self.replacement = Some(self.all_failed_body(failover));
            self.failover_token = None;
            return self.replacement.is_some();
        };
        let Some(provider) = failover.providers.get(attempt.index) else {
            return false;
        };
        // An OpenAI-kind fallback reports a stream's usage only when asked, like the first
        // attempt; the injected chunk is dropped again before the client sees the answer.
        let injected = if self
            .config
            .usage
            .injects_include_usage(streaming, include_usage)
            && routing::response_format(provider.kind).is_none()
        {
            ensure_include_usage(&body)
        } else {
            None
        };
        let Ok(req) = routing::upstream_request(
            provider,
            &attempt.provider_model,
            injected.as_deref().unwrap_or(&body),
            streaming,
            include_usage,
        ) else {
            return false;
        };
        let key = self
            .config
            .provider_keys
            .get(attempt.index)
            .and_then(Option::as_ref)
            .map(|k| format!("{}{k}", req.key_header.1));
        let authority = req
            .authority
            .clone()
            .unwrap_or_else(|| provider.name.clone());
        let mut headers: Vec<(&str, &str)> = vec![
            (":method", "POST"),
            (":path", req.path.as_str()),
            (":authority", authority.as_str()),
            ("content-type", "application/json"),
            ("x-request-id", self.request_id.as_str()),
        ];
        if let Some(k) = key.as_deref() {
            headers.push((req.key_header.0, k));
        }
        for (k, v) in &req.headers {
            headers.push((k.as_str(), v.as_str()));
        }
        let remaining_ms = failover
            .total_deadline_ms
            .saturating_sub(now_ms.saturating_sub(self.started_ns / 1_000_000))
            .min(provider.timeout_ms)
            .max(1);
        match hostcalls::dispatch_http_call(
            &req.cluster,
            headers,
            Some(&req.body),
            vec![],
            std::time::Duration::from_millis(remaining_ms),
        ) {
            Ok(token) => {
                self.log(
                    LogLevel::Info,
                    &format!("failing over to provider {}", provider.name),
                );
                self.failover_token = Some(token);
                self.injected_usage = injected.is_some();
                self.adopt_route(attempt.index, &provider.name, &req, model);
                // The held response is replaced: nothing of it is tracked or translated.
                self.tracker = None;
                self.chunk_filter = None;
                self.translator = None;
                self.buffer_for_translation = false;
                self.response_masker = None;
                remove_header(MapType::HttpResponseHeaders, "content-length");
                true
            }
            Err(_) => false,
        }
    }

    /// The 503 (or 429 when every provider was rate limited) listing each attempt.
    fn all_failed_body(&self, failover: &FailoverSettings) -> (u32, String, Vec<u8>) {
        let mut carry = Carry::default();
        for (i, status, ms) in &self.attempts {
            let name = failover.providers.get(*i).map_or("?", |p| p.name.as_str());
            carry.push(name, status, *ms);
        }
        let reply = all_failed_reply(&carry);
        (
            reply.status,
            "application/json".into(),
            reply.body(&self.request_id),
        )
    }

    /// A failover callout answered: account it, then deliver it or try the next provider.
    fn on_failover_response(&mut self, body_size: usize) {
        self.failover_token = None;
        let (Some(failover), Some(route)) = (self.config.failover.clone(), self.route.clone())
        else {
            return;
        };
        let Some(provider) = failover.providers.get(route.provider) else {
            return;
        };
        let status =
            header(MapType::HttpCallResponseHeaders, ":status").and_then(|s| s.parse::<u16>().ok());
        let content_type = header(MapType::HttpCallResponseHeaders, "content-type");
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let now_ms = now_nanos() / 1_000_000;
        let outcome =
            self.record_attempt(provider, status, MapType::HttpCallResponseHeaders, now_ms);
        let elapsed = now_nanos().saturating_sub(self.started_ns) / 1_000_000;
        let status_text = status.map_or_else(|| "no response".to_string(), |s| s.to_string());
        self.attempts.push((route.provider, status_text, elapsed));
        if matches!(outcome, failover::Outcome::Retryable(_)) {
            self.count(failover::metrics::failovers_metric(
                &route.name,
                outcome.label(),
            ));
            if self.start_next_attempt(&failover) {
                if self.failover_token.is_some() {
                    return;
                }
                self.deliver_replacement();
                return;
            }
        }
        let status = u32::from(status.unwrap_or(502));
        self.status = status;
        if let Some(kind) = self.api {
            let mut tracker = UsageTracker::for_content_type(
                kind,
                content_type.as_deref(),
                self.info.as_ref().map_or(0, |i| i.prompt_estimate),
                self.config.usage.tracker,
            );
            if tracker.feed(&body).first_token {
                self.ttft_ms = Some(elapsed);
            }
            self.tracker = Some(tracker);
        }
        let (out, ct) = match route.translate_from {
            None if self.injected_usage => {
                let mut filter = SseChunkFilter::new(self.config.usage.tracker.max_event_bytes);
                let mut out = filter.push_dropping_injected_usage(&body);
                out.extend(filter.finish());
                (
                    out,
                    content_type.unwrap_or_else(|| "text/event-stream".into()),
                )
            }
            None => (
                body,
                content_type.unwrap_or_else(|| "application/json".into()),
            ),
            Some(source) if (200..300).contains(&status) && route.stream => {
                let id = format!("chatcmpl-{}", self.request_id);
                let mut t = StreamTranslator::new(
                    source,
                    &route.client_model,
                    &id,
                    now_ms / 1000,
                    route.include_usage,
                );
                let mut out = t.push(&body);
                out.extend(t.finish());
                (out, "text/event-stream".into())
            }
            Some(_) => (
                self.translate_whole_body(&body).unwrap_or(body),
                "application/json".into(),
            ),
        };
        let out = match (
            &self.config.masking.engine,
            status >= 400 && self.config.masking.error_bodies,
        ) {
            (Some(engine), true) => engine.mask(&out).bytes.into_owned(),
            _ => out,
        };
        self.replacement = Some((status, ct, out));
        self.deliver_replacement();
    }

    /// Replaces the held response with the failover answer once its body is complete.
    fn deliver_replacement(&mut self) {
        let Some(size) = self.held_body else {
            return;
        };
        let Some((status, content_type, body)) = self.replacement.take() else {
            return;
        };
        self.status = status;
        set_header(MapType::HttpResponseHeaders, ":status", &status.to_string());
        set_header(MapType::HttpResponseHeaders, "content-type", &content_type);
        remove_header(MapType::HttpResponseHeaders, "content-length");
        if !super::abi::set_buffer(BufferType::HttpResponseBody, 0, size, &body) {
            self.log(LogLevel::Error, "host refused the failover response body");
        }
        if hostcalls::resume_http_response().is_err() {
            self.log(LogLevel::Error, "host refused to resume the response");
        }
    }

    /// Translates a whole provider body (JSON answer or error) into the OpenAI shape.
    fn translate_whole_body(&self, body: &[u8]) -> Option<Vec<u8>> {
        let route = self.route.as_ref()?;
        let source = route.translate_from?;
        if (200..300).contains(&self.status) {
            let now_s = now_nanos() / 1_000_000_000;
            let out = match source {
                SourceFormat::Anthropic => {
                    translate::anthropic_to_openai_at(body, &route.client_model, now_s)
                }
                SourceFormat::Gemini => {
                    translate::gemini_to_openai_at(body, &route.client_model, now_s)
                }
            };
            out.ok()
        } else {
            let status = u16::try_from(self.status).unwrap_or(502);
            Some(translate::provider_error_to_openai(status, body, source))
        }
    }

    /// Budget admission: reserve the estimate or refuse with 429.
    fn admit(&mut self) -> Action {
        let Some(budget) = self.config.budgets.as_ref() else {
            return Action::Continue;
        };
        let Some(user) = self.user.clone() else {
            return Action::Continue;
        };
        let estimate = self.info.as_ref().map_or(budget.default_max_tokens, |i| {
            i.prompt_estimate
                .saturating_add(i.max_tokens.unwrap_or(budget.default_max_tokens))
        });
        let now = now_nanos() / 1_000_000_000;
        match budget.budgets.admit(&HostStore, &user, now, estimate) {
            Ok(admission) => {
                self.admission = Some(admission);
                Action::Continue
            }
            Err(refusal) => {
                self.count(accounting::tagged_name(
                    "tollgate_budget_rejections_total",
                    &[("dimension", refusal.dimension)],
                ));
                let reply = budget_reply(&refusal);
                self.reply(&reply)
            }
        }
    }

    fn count_masked(&mut self, kind: &str, place: &str, n: usize) {
        self.masked_count = self.masked_count.saturating_add(n);
        if let Ok(mut shared) = self.shared.try_borrow_mut() {
            let name = accounting::tagged_name(
                "tollgate_masked_findings_total",
                &[("kind", kind), ("place", place)],
            );
            shared
                .metrics
                .count(name, u64::try_from(n).unwrap_or(u64::MAX));
        }
    }

    /// Records one attempt's answer (`None`: no response) for the provider's circuit, back-off
    /// and metrics; `headers` is where its response headers are (the stream's or a callout's).
    fn record_attempt(
        &self,
        provider: &crate::failover::ProviderSettings,
        status: Option<u16>,
        headers: MapType,
        now_ms: u64,
    ) -> failover::Outcome {
        super::attempts::record_attempt(
            &self.shared,
            &self.request_id,
            provider,
            status,
            headers,
            now_ms,
        )
    }

    fn count(&self, name: String) {
        super::attempts::count(&self.shared, name);
    }

    /// Accounts the finished request: metrics, access-log properties, budget settlement.
    fn account(&mut self) {
        let Some(kind) = self.api else {
            return;
        };
        let Some(tracker) = self.tracker.take() else {
            self.settle(0);
            return;
        };
        let outcome = tracker.finish();
        let now = now_nanos();
        let duration_ms = now.saturating_sub(self.started_ns) / 1_000_000;
        let model_name = outcome
            .model
            .clone()
            .or_else(|| self.info.as_ref().and_then(|i| i.model.clone()))
            .unwrap_or_else(|| "unknown".to_string());
        let cost = outcome
            .usage
            .as_ref()
            .and_then(|u| self.config.usage.prices.cost(&model_name, u));
        let route_name = self.route.as_ref().map(|r| r.name.clone());
        let provider = route_name
            .as_deref()
            .unwrap_or(accounting::provider_for(kind));
        let model_label = match self.shared.try_borrow_mut() {
            Ok(mut shared) => shared.models.label(&model_name),
            Err(_) => "other".to_string(),
        };
        let user_label = if self.config.usage.user_metric_label {
            self.user.clone()
        } else {
            None
        };
        let record = RequestRecord {
            provider,
            model: &model_label,
            user_label: user_label.as_deref(),
            status: self.status,
            outcome: &outcome,
            cost_usd: cost,
            ttft_ms: self.ttft_ms,
            duration_ms,
        };
        if let Ok(mut shared) = self.shared.try_borrow_mut() {
            for sample in accounting::samples(&record) {
                shared.metrics.record(&sample);
            }
        }
        for (name, value) in accounting::access_log_fields(&record, self.user.as_deref()) {
            let _ = super::abi::set_property(name, value.as_bytes());
        }
        if !outcome.complete && (200..300).contains(&self.status) {
            self.log(
                LogLevel::Warn,
                "response ended without its terminator: usage estimated",
            );
        }
        // Provider errors without usage are not billed: charge nothing for them.
        let billed = outcome.reported_usage.is_some() || (200..300).contains(&self.status);
        let actual = outcome
            .usage
            .filter(|_| billed)
            .map_or(0, |u| u.input_tokens.saturating_add(u.output_tokens));
        self.queue_global_charge(actual);
        self.settle(actual);
    }

    /// Queues a mesh-wide charge for the root context to send.
    fn queue_global_charge(&mut self, tokens: u64) {
        let global = self.config.budgets.as_ref().and_then(|b| b.global.as_ref());
        let (Some(_), Some(user), true) = (global, self.user.clone(), tokens > 0) else {
            return;
        };
        if let Ok(mut shared) = self.shared.try_borrow_mut() {
            if shared.pending_charges.len() < MAX_PENDING_CHARGES {
                shared.pending_charges.push((user, tokens));
            } else {
                shared.metrics.count(
                    accounting::tagged_name(
                        "tollgate_global_budget_charges_total",
                        &[("outcome", "dropped")],
                    ),
                    1,
                );
            }
        }
    }

    /// Releases the reservation and charges `actual` tokens; logs crossed thresholds.
    fn settle(&mut self, actual: u64) {
        let (Some(budget), Some(admission), Some(user)) = (
            self.config.budgets.as_ref(),
            self.admission.take(),
            self.user.as_deref(),
        ) else {
            return;
        };
        let now = now_nanos() / 1_000_000_000;
        let warnings = budget
            .budgets
            .settle(&HostStore, user, now, admission.reserved, actual);
        for w in warnings {
            self.log(
                LogLevel::Warn,
                &format!(
                    "budget warning: {user} used {} of {} tokens ({}%) in the {}s window",
                    w.used,
                    w.limit,
                    (w.threshold * 100.0).round(),
                    w.period_seconds
                ),
            );
            let pct = format!("{}", (w.threshold * 100.0).round());
            self.count(accounting::tagged_name(
                "tollgate_budget_warnings_total",
                &[("threshold", &pct)],
            ));
        }
    }
}

/// The reply when no provider can answer: 429 when every one was rate limited, else 503
/// with `unavailable_code`.
/// What a client sees when every attempt failed: 503, or 429 when all were rate limited, with
/// one entry per attempt (provider, status, time).
fn all_failed_reply(attempts: &Carry) -> ErrorReply {
    let all_rate_limited =
        !attempts.notes.is_empty() && attempts.notes.iter().all(|n| n.result == "429");
    no_provider_reply(
        all_rate_limited,
        "all_providers_failed",
        format!("every provider failed: {}", attempts.summary()),
    )
}

/// The API kind whose wire format a provider answering in `format` uses.
fn api_kind_answering_in(format: Option<SourceFormat>) -> ApiKind {
    match format {
        None => ApiKind::OpenAiChat,
        Some(SourceFormat::Anthropic) => ApiKind::Anthropic,
        Some(SourceFormat::Gemini) => ApiKind::Gemini,
    }
}

fn no_provider_reply(rate_limited: bool, unavailable_code: &str, message: String) -> ErrorReply {
    if rate_limited {
        ErrorReply::new(
            429,
            ErrorKind::RateLimit,
            "all_providers_rate_limited",
            message,
        )
    } else {
        ErrorReply::new(503, ErrorKind::Upstream, unavailable_code, message)
    }
}

/// The 429 reply for a budget refusal, with `Retry-After` and the rate-limit headers.
fn budget_reply(r: &Refusal) -> ErrorReply {
    let (message, code) = if r.dimension == "tokens" {
        (
            format!(
                "token budget of {} per {}s exhausted; retry in {}s",
                r.limit, r.period_seconds, r.retry_after
            ),
            "token_budget_exceeded",
        )
    } else {
        (
            format!(
                "request limit of {} per {}s reached; retry in {}s",
                r.limit, r.period_seconds, r.retry_after
            ),
            "rate_limit_exceeded",
        )
    };
    let reply = ErrorReply::new(429, ErrorKind::RateLimit, code, message)
        .with_header("retry-after", r.retry_after.to_string());
    if r.dimension == "tokens" {
        reply
            .with_header("x-ratelimit-limit-tokens", r.limit.to_string())
            .with_header("x-ratelimit-remaining-tokens", "0")
            .with_header("x-ratelimit-reset-tokens", format!("{}s", r.retry_after))
    } else {
        reply
            .with_header("x-ratelimit-limit-requests", r.limit.to_string())
            .with_header("x-ratelimit-remaining-requests", "0")
            .with_header("x-ratelimit-reset-requests", format!("{}s", r.retry_after))
    }
}

impl TollgateHttp {
    fn call_response(&mut self, token_id: u32, body_size: usize) {
        if self.failover_token == Some(token_id) {
            self.on_failover_response(body_size);
            return;
        }
        let AuthState::WaitingForKeys { token, .. } = self.auth else {
            return;
        };
        if token != token_id {
            return;
        }
        if let Some(runtime) = self.jwt.clone() {
            if let Ok(mut rt) = runtime.try_borrow_mut() {
                rt.complete(token_id, body_size, now_nanos() / 1_000_000);
            }
        }
        let step = self.authenticate();
        let step = match step {
            // Still pending after our own fetch answered: the bounded wait is over.
            AuthStep::Waiting if matches!(self.auth, AuthState::WaitingForKeys { token: t, .. } if t == token_id) => {
                self.deny_no_keys()
            }
            other => other,
        };
        match step {
            AuthStep::Replied | AuthStep::Waiting => {}
            AuthStep::Proceed => {
                self.path = header(MapType::HttpRequestHeaders, ":path").unwrap_or_default();
                if self.after_auth() == Action::Continue
                    && hostcalls::resume_http_request().is_err()
                {
                    self.log(LogLevel::Error, "host refused to resume the request");
                }
            }
        }
    }

    fn request_headers(&mut self, end_of_stream: bool) -> Action {
        self.started_ns = now_nanos();
        self.metrics.requests.add(1);
        self.apply_correlation();
        let declared = header(MapType::HttpRequestHeaders, "content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let path = header(MapType::HttpRequestHeaders, ":path").unwrap_or_default();
        self.body_limit = self.config.max_request_bytes_for(&path);
        if declared.is_some_and(|n| n > self.body_limit) {
            return self.reject(&crate::guardrails::Violation::too_large(self.body_limit));
        }
        self.headers_end_stream = end_of_stream;
        if self.config.failover.is_some() {
            // Only tollgate picks the provider cluster and carries attempt state: client-sent
            // copies would steer them.
            remove_header(MapType::HttpRequestHeaders, CLUSTER_HEADER);
            remove_header(MapType::HttpRequestHeaders, CARRY_HEADER);
        }
        match self.authenticate() {
            AuthStep::Proceed => {}
            AuthStep::Replied | AuthStep::Waiting => return Action::Pause,
        }
        // The token may have been stripped from the path; read it after authentication.
        self.path = header(MapType::HttpRequestHeaders, ":path").unwrap_or_default();
        self.after_auth()
    }

    fn request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        // Chunked uploads carry no content-length: count what actually arrives.
        let size = u64::try_from(body_size).unwrap_or(u64::MAX);
        self.request_bytes = if self.awaiting_body {
            size
        } else {
            self.request_bytes.saturating_add(size)
        };
        if self.request_bytes > self.body_limit {
            return self.reject(&crate::guardrails::Violation::too_large(self.body_limit));
        }
        if self.replied_locally {
            return Action::Pause;
        }
        if matches!(self.auth, AuthState::WaitingForKeys { .. }) {
            // Envoy buffers while we wait; remember when the whole body is in.
            if end_of_stream {
                self.body_complete = Some(body_size);
            }
            return Action::Pause;
        }
        if !self.awaiting_body {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.awaiting_body = false;
        self.on_full_request_body(body_size)
    }

    fn response_headers(&mut self, end_of_stream: bool) -> Action {
        self.response_headers_end_stream = end_of_stream;
        if !self.request_id.is_empty() {
            let name = &self.config.correlation.request_id_header;
            set_header(MapType::HttpResponseHeaders, name, &self.request_id);
        }
        self.status = header(MapType::HttpResponseHeaders, ":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if let Some(action) = self.adopt_walked_provider(end_of_stream) {
            return action;
        }
        if let Some(h) = self.admission.as_ref().and_then(|a| a.headers) {
            set_header(
                MapType::HttpResponseHeaders,
                "x-ratelimit-limit-tokens",
                &h.limit.to_string(),
            );
            set_header(
                MapType::HttpResponseHeaders,
                "x-ratelimit-remaining-tokens",
                &h.remaining.to_string(),
            );
            set_header(
                MapType::HttpResponseHeaders,
                "x-ratelimit-reset-tokens",
                &format!("{}s", h.reset_seconds),
            );
        }
        let mask_this = (self.status >= 400 && self.config.masking.error_bodies)
            || (self.config.masking.responses && self.api.is_some());
        if mask_this {
            if let Some(engine) = self.engine() {
                self.response_masker = Some(StreamMasker::new(engine));
                remove_header(MapType::HttpResponseHeaders, "content-length");
            }
        }
        if let (Some(kind), true) = (self.api, self.config.usage.enabled) {
            let content_type = header(MapType::HttpResponseHeaders, "content-type");
            let estimate = self.info.as_ref().map_or(0, |i| i.prompt_estimate);
            let tracker = UsageTracker::for_content_type(
                kind,
                content_type.as_deref(),
                estimate,
                self.config.usage.tracker,
            );
            let is_sse = content_type
                .as_deref()
                .is_some_and(|c| c.to_ascii_lowercase().contains("text/event-stream"));
            if self.injected_usage && is_sse {
                self.chunk_filter = Some(SseChunkFilter::new(
                    self.config.usage.tracker.max_event_bytes,
                ));
                remove_header(MapType::HttpResponseHeaders, "content-length");
            }
            self.tracker = Some(tracker);
        }
        self.on_routed_response();
        if self.failover_token.is_some() || self.replacement.is_some() {
            // Hold the failed answer: the next provider's answer replaces it.
            return Action::Pause;
        }
        Action::Continue
    }

    fn response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.failover_token.is_some() || self.replacement.is_some() {
            if end_of_stream {
                self.held_body = Some(body_size);
                self.deliver_replacement();
            }
            return Action::Pause;
        }
        if self.tracker.is_none()
            && self.chunk_filter.is_none()
            && self.response_masker.is_none()
            && self.translator.is_none()
            && !self.buffer_for_translation
        {
            return Action::Continue;
        }
        if self.buffer_for_translation && !end_of_stream {
            // Envoy buffers; the whole body is handed over with end_of_stream.
            return Action::Pause;
        }
        let chunk = hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        if let Some(tracker) = self.tracker.as_mut() {
            let events = tracker.feed(&chunk);
            if events.first_token && self.ttft_ms.is_none() {
                self.ttft_ms = Some(now_nanos().saturating_sub(self.started_ns) / 1_000_000);
            }
        }
        let mut out = if self.buffer_for_translation {
            self.translate_whole_body(&chunk)
                .unwrap_or_else(|| chunk.clone())
        } else if let Some(translator) = self.translator.as_mut() {
            let mut out = translator.push(&chunk);
            if end_of_stream {
                out.extend(translator.finish());
            }
            out
        } else {
            match self.chunk_filter.as_mut() {
                Some(filter) => {
                    let mut out = filter.push_dropping_injected_usage(&chunk);
                    if end_of_stream {
                        out.extend(filter.finish());
                    }
                    out
                }
                None => chunk.clone(),
            }
        };
        if let Some(masker) = self.response_masker.as_mut() {
            let mut masked = masker.push(&out);
            if end_of_stream {
                masked.extend(masker.finish());
                let findings: Vec<(String, usize)> = masker
                    .findings()
                    .iter()
                    .map(|f| (f.kind.clone(), f.count))
                    .collect();
                let place = if self.status >= 400 {
                    "error_body"
                } else {
                    "response"
                };
                for (kind, n) in findings {
                    self.count_masked(&kind, place, n);
                }
            }
            out = masked;
        }
        if out != chunk && !super::abi::set_buffer(BufferType::HttpResponseBody, 0, body_size, &out)
        {
            self.log(LogLevel::Warn, "host refused a response body rewrite");
        }
        Action::Continue
    }

    fn log_hook(&mut self) {
        if self.masked_count > 0 {
            let _ = super::abi::set_property(
                "tollgate_masked_count",
                self.masked_count.to_string().as_bytes(),
            );
        }
        if let (Some(user), None) = (self.user.as_deref(), self.api) {
            let _ = super::abi::set_property("tollgate_user", user.as_bytes());
        }
        if self.replied_locally {
            // A refused request still releases any reservation it made.
            self.settle(0);
            return;
        }
        self.account();
    }
}

impl Context for TollgateHttp {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let started = now_nanos();
        self.call_response(token_id, body_size);
        self.own_ns = self
            .own_ns
            .saturating_add(now_nanos().saturating_sub(started));
    }
}

impl HttpContext for TollgateHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let started = now_nanos();
        let action = self.request_headers(end_of_stream);
        self.own_ns = self
            .own_ns
            .saturating_add(now_nanos().saturating_sub(started));
        action
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let started = now_nanos();
        let action = self.request_body(body_size, end_of_stream);
        self.own_ns = self
            .own_ns
            .saturating_add(now_nanos().saturating_sub(started));
        action
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let started = now_nanos();
        let action = self.response_headers(end_of_stream);
        self.own_ns = self
            .own_ns
            .saturating_add(now_nanos().saturating_sub(started));
        if self.config.server_timing {
            let upstream = header(
                MapType::HttpResponseHeaders,
                "x-envoy-upstream-service-time",
            );
            let value = crate::accounting::server_timing(self.own_ns, upstream.as_deref());
            set_header(MapType::HttpResponseHeaders, "server-timing", &value);
        }
        action
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let started = now_nanos();
        let action = self.response_body(body_size, end_of_stream);
        self.own_ns = self
            .own_ns
            .saturating_add(now_nanos().saturating_sub(started));
        action
    }

    fn on_log(&mut self) {
        self.log_hook();
        let _ = super::abi::set_property(
            "tollgate_filter_us",
            (self.own_ns / 1_000).to_string().as_bytes(),
        );
    }
}
