//! The request pipeline: every decision one request goes through, in both stages, as pure code
//! behind the [`Host`] trait.
//!
//! An [`Exchange`] is one request seen by the listener stage. The proxy adapter (`crate::host`)
//! calls exactly one of its methods per proxy event and maps the returned [`Flow`] to the
//! proxy's action:
//!
//! | event | method | concern (module) |
//! |---|---|---|
//! | request headers | [`Exchange::on_request_headers`] | ids ([`ids`]), authentication ([`auth`]), admission ([`admission`]) |
//! | request body | [`Exchange::on_request_body`] | masking, guardrails, routing ([`route`]), `include_usage`, budget |
//! | response headers | [`Exchange::on_response_headers`] | walked adoption ([`route`]), own failover ([`failover`]), [`response`] set-up |
//! | response body | [`Exchange::on_response_body`] | usage, translation, chunk filter, masking ([`response`]) |
//! | callout answer | [`Exchange::on_callout_response`] | keys ([`auth`]) or the next provider ([`failover`]) |
//! | gRPC answer | [`Exchange::on_grpc_response`] | mesh-wide budget admission and status view ([`mesh`]) |
//! | log | [`Exchange::on_log`] | accounting and settlement ([`settle`]) |
//!
//! Where the request stands is one [`Phase`]; a response held back for failover is one
//! [`failover::Held`]. The upstream stage (one Envoy retry attempt of a walked route) is
//! [`upstream::Attempt`]; the VM-wide state and the root context's decisions are [`vm::Vm`].
//! [`fake::FakeHost`] runs all of it natively (tests, benches, fuzzing).

pub mod admission;
pub mod api_keys;
pub mod attempts;
pub mod auth;
pub mod drive;
pub mod failover;
pub mod fake;
pub mod fetch;
pub mod headers;
pub mod host;
pub mod ids;
pub mod keys;
pub mod mesh;
pub mod metrics;
pub mod replies;
pub mod response;
pub mod response_cache;
pub mod route;
pub mod settle;
pub mod status_page;
pub mod upstream;
pub mod vm;

#[cfg(test)]
mod tests;

use std::rc::Rc;

pub use host::{Body, GrpcCall, Host, HttpCall, Map, MetricId};
pub use vm::Vm;

use crate::budget::Admission;
use crate::error_reply::ErrorReply;
use crate::masking::{MaskEngine, StreamMasker};
use crate::translate::{SourceFormat, StreamTranslator};
use crate::usage::{ApiKind, RequestInfo, SseChunkFilter, UsageTracker};

/// What the proxy should do after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Let the event's data go on.
    Continue,
    /// Hold it (Envoy buffers); the pipeline resumes later or answers itself.
    Pause,
    /// A local reply was sent; the stream is held until Envoy ends it.
    Replied,
}

/// Where the request side of an exchange stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nothing decided yet (request headers not seen, or no authentication configured yet).
    Start,
    /// Waiting for the JWKS fetch this exchange dispatched.
    WaitingForKeys {
        /// The callout token.
        token: u32,
        /// Whether this wait is an unknown-`kid` refetch (done at most once per request).
        kid_refetch: bool,
    },
    /// Authenticated; the request headers are held until the whole body is in.
    HoldingBody,
    /// Authenticated and admitted (or not an LLM request): the request went on.
    Forwarded,
    /// A local reply was sent: nothing more to decide, nothing to account.
    Replied,
}

/// The provider a routed request was sent to.
#[derive(Debug, Clone)]
pub struct ActiveRoute {
    /// Index into the failover settings' providers.
    pub provider: usize,
    /// Provider name (labels, logs).
    pub name: String,
    /// The response format to translate back from (`None`: already OpenAI).
    pub translate_from: Option<SourceFormat>,
    /// The client asked for a stream.
    pub stream: bool,
    /// The client asked for `include_usage`.
    pub include_usage: bool,
    /// The model the client named (echoed in translated responses).
    pub client_model: String,
}

/// A request whose route Envoy walks (an aggregate cluster); the upstream stage rewrites each
/// attempt, and the answering provider is learnt from the response.
#[derive(Debug, Clone)]
pub struct WalkedRoute {
    /// The model the client named.
    pub client_model: String,
    /// The client asked for a stream.
    pub stream: bool,
    /// The client asked for `include_usage`.
    pub include_usage: bool,
    /// The client's request, for providers Envoy did not get to (a refused retry).
    pub request: failover::ClientRequest,
}

/// How the response is observed and rewritten on its way to the client.
#[derive(Default)]
pub struct ResponseState {
    /// Response status.
    pub status: u32,
    /// The response headers ended the stream (no body: nothing to replace).
    pub headers_end_stream: bool,
    /// Time to first token, ms.
    pub ttft_ms: Option<u64>,
    /// Observes the response for usage.
    pub tracker: Option<UsageTracker>,
    /// Drops the injected usage chunk from the client's stream.
    pub chunk_filter: Option<SseChunkFilter>,
    /// Masks error bodies (or all responses) as they stream.
    pub masker: Option<StreamMasker<std::sync::Arc<MaskEngine>>>,
    /// Translates a provider stream into OpenAI chunks.
    pub translator: Option<StreamTranslator>,
    /// Hold the whole response body to translate it (JSON responses and error bodies).
    pub buffer_for_translation: bool,
    /// An OpenAI stream: watched for its `[DONE]` terminator.
    pub openai_stream: Option<response::DoneWatch>,
}

/// One request seen by the listener stage.
pub struct Exchange {
    vm: Rc<Vm>,
    phase: Phase,
    /// The request's correlation id.
    request_id: String,
    /// Trace headers the request left with (`traceparent`, `tracestate`), for callouts.
    trace_headers: Vec<(String, String)>,
    /// Request body bytes seen so far.
    request_bytes: u64,
    /// Largest request body accepted on this request's path.
    body_limit: u64,
    /// Request start, ns since the epoch.
    started_ns: u64,
    /// The LLM API the response speaks, when the request is one.
    api: Option<ApiKind>,
    /// The client's request path (after authentication edits), set once authenticated.
    path: String,
    /// `:path` as read at the request headers, with authentication's edit applied: read once,
    /// it becomes `path` when the request is authenticated.
    arrived_path: String,
    /// The provider path the request was sent to, when tollgate rewrote it.
    upstream_path: Option<String>,
    /// What the request body said.
    info: Option<RequestInfo>,
    /// The caller.
    user: Option<String>,
    /// The virtual API key the request presented, when valid.
    key: Option<api_keys::KeyUse>,
    /// The caller's class for mesh-wide budgets (a JWT claim, an API key's team).
    class: Option<String>,
    /// The budget reservation to settle.
    admission: Option<Admission>,
    /// The mesh-wide budget: the admission call out, or what it reserved.
    mesh: Option<mesh::MeshState>,
    /// tollgate added `include_usage`: the extra usage chunk is stripped for the client.
    injected_usage: bool,
    /// Request headers ended the stream (no body).
    headers_end_stream: bool,
    /// The request declared its body's size (`content-length`): checked against the limit at
    /// the headers, so the body need not be held to enforce it.
    length_declared: bool,
    /// The whole request body arrived while authentication was waiting (its size).
    body_complete: Option<usize>,
    /// Secrets masked in this request, for the access log.
    masked_count: usize,
    /// The provider this request was routed to, when failover routing is configured.
    route: Option<ActiveRoute>,
    /// Set when Envoy walks the route's providers (aggregate cluster + upstream stage).
    walk: Option<WalkedRoute>,
    /// Failover tollgate routes itself.
    own: Option<failover::OwnFailover>,
    /// A failed response held back until its replacement is ready.
    held: Option<failover::Held>,
    /// The response.
    response: ResponseState,
    /// Time spent in this exchange's methods so far (ns): the filter's own time.
    own_ns: u64,
    /// The response cache's part of the exchange.
    cache: response_cache::CacheState,
    /// The request headers during the request-headers hook (a copy when authentication reads
    /// the whole map; read through otherwise and after the hook).
    req_headers: headers::RequestHeaders,
}

impl Exchange {
    /// Creates the exchange for one request of `vm`.
    pub fn new(vm: Rc<Vm>) -> Self {
        let body_limit = vm.config.max_request_bytes;
        Self {
            vm,
            phase: Phase::Start,
            request_id: String::new(),
            trace_headers: Vec::new(),
            request_bytes: 0,
            body_limit,
            started_ns: 0,
            api: None,
            path: String::new(),
            arrived_path: String::new(),
            upstream_path: None,
            info: None,
            user: None,
            key: None,
            class: None,
            admission: None,
            mesh: None,
            injected_usage: false,
            headers_end_stream: false,
            length_declared: false,
            body_complete: None,
            masked_count: 0,
            route: None,
            walk: None,
            own: None,
            held: None,
            response: ResponseState::default(),
            own_ns: 0,
            cache: response_cache::CacheState::default(),
            req_headers: headers::RequestHeaders::default(),
        }
    }

    /// Where the request side stands.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The request's correlation id (empty before the request headers).
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The request headers arrived.
    pub fn on_request_headers<H: Host>(&mut self, host: &mut H, end_of_stream: bool) -> Flow {
        let started = host.now_ns();
        self.started_ns = started;
        // JWT and virtual keys read the whole map: fetched once, it answers this hook's reads.
        let whole = self.vm.jwt.is_some() || self.vm.api_keys.is_some();
        self.req_headers = headers::RequestHeaders::fetch(host, whole);
        let flow = self.request_headers(host, end_of_stream);
        self.req_headers = headers::RequestHeaders::default();
        self.add_own_time(host, started);
        flow
    }

    /// A request body chunk arrived (`size`: bytes buffered so far when the pipeline paused).
    /// Only a held body is worked on; counting the bytes of a chunk that goes on is not worth
    /// the two clock reads that would time it.
    pub fn on_request_body<H: Host>(
        &mut self,
        host: &mut H,
        size: usize,
        end_of_stream: bool,
    ) -> Flow {
        if self.phase != Phase::HoldingBody {
            return self.request_body(host, size, end_of_stream);
        }
        let started = host.now_ns();
        let flow = self.request_body(host, size, end_of_stream);
        self.add_own_time(host, started);
        flow
    }

    /// The response headers arrived.
    pub fn on_response_headers<H: Host>(&mut self, host: &mut H, end_of_stream: bool) -> Flow {
        let started = host.now_ns();
        let flow = self.response_headers(host, end_of_stream);
        self.add_own_time(host, started);
        if self.vm.config.server_timing {
            let upstream = host.header(Map::Response, "x-envoy-upstream-service-time");
            let value = crate::accounting::server_timing(self.own_ns, upstream.as_deref());
            host.set_header(Map::Response, "server-timing", &value);
        }
        flow
    }

    /// A response body chunk arrived. A response nothing observes or rewrites passes untimed.
    pub fn on_response_body<H: Host>(
        &mut self,
        host: &mut H,
        size: usize,
        end_of_stream: bool,
    ) -> Flow {
        if self.response_passes_through() {
            return Flow::Continue;
        }
        let started = host.now_ns();
        let flow = self.response_body(host, size, end_of_stream);
        self.add_own_time(host, started);
        flow
    }

    /// A callout this exchange started answered (its headers and body are in the callout maps).
    pub fn on_callout_response<H: Host>(&mut self, host: &mut H, token: u32, body_size: usize) {
        let started = host.now_ns();
        self.callout_response(host, token, body_size);
        self.add_own_time(host, started);
    }

    /// The request is finished (access log time): account and settle.
    pub fn on_log<H: Host>(&mut self, host: &mut H) {
        self.log_hook(host);
        let _ = host.set_property(
            "tollgate_filter_us",
            (self.own_ns / 1_000).to_string().as_bytes(),
        );
    }

    fn add_own_time<H: Host>(&mut self, host: &H, started: u64) {
        self.own_ns = self
            .own_ns
            .saturating_add(host.now_ns().saturating_sub(started));
    }

    fn request_headers<H: Host>(&mut self, host: &mut H, end_of_stream: bool) -> Flow {
        self.vm.metrics.requests.add(host, 1);
        self.apply_correlation(host);
        let declared = self
            .req_headers
            .get(host, "content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        self.arrived_path = self.req_headers.get(host, ":path").unwrap_or_default();
        self.body_limit = self.vm.config.max_request_bytes_for(&self.arrived_path);
        self.length_declared = declared.is_some();
        if declared.is_some_and(|n| n > self.body_limit) {
            return self.reject(
                host,
                &crate::guardrails::Violation::too_large(self.body_limit),
            );
        }
        self.headers_end_stream = end_of_stream;
        if self.vm.config.failover.is_some() {
            // Only tollgate picks the provider cluster and carries attempt state: client-sent
            // copies would steer them.
            self.req_headers
                .remove(host, crate::routing::CLUSTER_HEADER);
            self.req_headers
                .remove(host, crate::failover::carry::CARRY_HEADER);
        }
        match self.authenticate(host) {
            auth::AuthStep::Proceed => {}
            auth::AuthStep::Replied => return Flow::Replied,
            auth::AuthStep::Waiting => return Flow::Pause,
        }
        // Authentication may have stripped the token from the path (and kept the edit).
        self.path = std::mem::take(&mut self.arrived_path);
        self.after_auth(host)
    }

    fn request_body<H: Host>(
        &mut self,
        host: &mut H,
        body_size: usize,
        end_of_stream: bool,
    ) -> Flow {
        // Chunked uploads carry no content-length: count what actually arrives.
        let size = u64::try_from(body_size).unwrap_or(u64::MAX);
        self.request_bytes = if self.phase == Phase::HoldingBody {
            size
        } else {
            self.request_bytes.saturating_add(size)
        };
        if self.request_bytes > self.body_limit {
            return self.reject(
                host,
                &crate::guardrails::Violation::too_large(self.body_limit),
            );
        }
        match self.phase {
            Phase::Replied => Flow::Pause,
            Phase::WaitingForKeys { .. } => {
                // Envoy buffers while we wait; remember when the whole body is in.
                if end_of_stream {
                    self.body_complete = Some(body_size);
                }
                Flow::Pause
            }
            Phase::HoldingBody if !end_of_stream => Flow::Pause,
            Phase::HoldingBody => {
                self.phase = Phase::Forwarded;
                self.on_full_request_body(host, body_size)
            }
            Phase::Start | Phase::Forwarded => Flow::Continue,
        }
    }

    fn callout_response<H: Host>(&mut self, host: &mut H, token: u32, body_size: usize) {
        if self.held.as_ref().and_then(|h| h.callout) == Some(token) {
            self.on_failover_response(host, body_size);
            return;
        }
        self.on_keys_response(host, token, body_size);
    }

    /// Logs one line carrying this request's correlation id (masked when configured).
    fn log<H: Host>(&self, host: &H, level: log::Level, message: &str) {
        let line = match (&self.vm.config.masking.engine, self.vm.config.masking.logs) {
            (Some(engine), true) => engine.mask_log_line(message),
            _ => message.to_string(),
        };
        host.log(level, &format!("tollgate [{}] {line}", self.request_id));
    }

    /// Sends a local reply in the common error shape.
    fn reply<H: Host>(&mut self, host: &mut H, reply: &ErrorReply) -> Flow {
        let corr = &self.vm.config.correlation;
        let headers = reply.all_headers(&corr.request_id_header, &self.request_id);
        let header_refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let body = reply.body(&self.request_id);
        self.vm.metrics.local_replies.add(host, 1);
        self.phase = Phase::Replied;
        self.log(
            host,
            log::Level::Info,
            &format!("local reply {} {}", reply.status, reply.code),
        );
        if !host.send_reply(reply.status, &header_refs, &body) {
            self.log(host, log::Level::Error, "host refused the local reply");
        }
        Flow::Replied
    }

    /// Adds one to a tagged counter.
    fn count<H: Host>(&self, host: &mut H, name: String) {
        self.vm.count(host, name, 1);
    }

    fn count_masked<H: Host>(&mut self, host: &mut H, kind: &str, place: &str, n: usize) {
        self.masked_count = self.masked_count.saturating_add(n);
        let name = crate::accounting::tagged_name(
            "tollgate_masked_findings_total",
            &[("kind", kind), ("place", place)],
        );
        self.vm
            .count(host, name, u64::try_from(n).unwrap_or(u64::MAX));
    }

    fn elapsed_ms<H: Host>(&self, host: &H) -> u64 {
        host.now_ns().saturating_sub(self.started_ns) / 1_000_000
    }
}
