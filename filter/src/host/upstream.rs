//! The upstream stage: tollgate in an aggregate cluster's upstream filter chain, run by Envoy
//! once per retry attempt. Envoy picks the provider (the aggregate cluster's next member, with
//! Envoy's retry back-off and outlier detection); this context rewrites the attempt for it —
//! path, key, body translated from the client's OpenAI request — skips it (resetting the attempt,
//! so Envoy moves on) when tollgate's shared circuit or a provider back-off window says so, and
//! records how it ended for the circuit, the metrics and the next attempt ([`Carry`]).
//!
//! The provider is named by the endpoint's metadata `filter_metadata.tollgate.provider`.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, LogLevel, MapType};

use super::attempts::{count, record_attempt};
use super::calls::{header, log_with_id, now_nanos, remove_header, set_header};
use super::http::VmShared;
use super::store::HostStore;
use crate::config::FilterConfig;
use crate::failover::carry::{Carry, CARRY_HEADER, PROVIDER_HEADER};
use crate::failover::{self, ProviderKind};
use crate::routing::{self, CLIENT_CREDENTIAL_HEADERS};
use crate::usage::{classify_path, ensure_include_usage, ApiKind, RequestInfo};

/// The endpoint metadata path naming an attempt's provider.
const PROVIDER_METADATA: [&str; 5] = [
    "xds",
    "upstream_host_metadata",
    "filter_metadata",
    "tollgate",
    "provider",
];

/// One attempt of one request.
pub struct UpstreamAttempt {
    config: Rc<FilterConfig>,
    shared: Rc<RefCell<VmShared>>,
    request_id: String,
    /// Index of the provider this attempt goes to.
    provider: Option<usize>,
    carry: Carry,
    started_ns: u64,
    /// The request body is held to be translated.
    rewriting_body: bool,
    /// The attempt's end is recorded (answered or skipped).
    recorded: bool,
}

impl UpstreamAttempt {
    /// Creates the context for one attempt.
    pub fn new(config: Rc<FilterConfig>, shared: Rc<RefCell<VmShared>>) -> Self {
        Self {
            config,
            shared,
            request_id: String::new(),
            provider: None,
            carry: Carry::default(),
            started_ns: 0,
            rewriting_body: false,
            recorded: false,
        }
    }

    fn log(&self, level: LogLevel, message: &str) {
        log_with_id(level, &self.request_id, message);
    }

    fn elapsed_ms(&self) -> u64 {
        now_nanos().saturating_sub(self.started_ns) / 1_000_000
    }

    /// Notes the attempt's end and hands the carry to the next attempt.
    fn note(&mut self, result: &str) {
        let name = self
            .provider
            .and_then(|i| self.config.failover.as_ref()?.providers.get(i))
            .map_or_else(|| "?".to_string(), |p| p.name.clone());
        self.carry.push(&name, result, self.elapsed_ms());
        self.recorded = true;
        set_header(
            MapType::HttpRequestHeaders,
            CARRY_HEADER,
            &self.carry.encode(),
        );
    }

    /// Removes client credentials and earlier attempts' keys, then sets this provider's key.
    fn set_key(&self, index: usize, kind: ProviderKind) {
        for name in CLIENT_CREDENTIAL_HEADERS {
            remove_header(MapType::HttpRequestHeaders, name);
        }
        if let Some(Some(key)) = self.config.provider_keys.get(index) {
            let (name, prefix) = routing::key_header(kind);
            set_header(MapType::HttpRequestHeaders, name, &format!("{prefix}{key}"));
        }
    }

    /// Rewrites the held OpenAI chat request for the provider.
    fn rewrite_body(&mut self, body_size: usize) {
        let (Some(index), Some(failover)) = (self.provider, self.config.failover.clone()) else {
            return;
        };
        let Some(provider) = failover.providers.get(index) else {
            return;
        };
        let mut body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let info = RequestInfo::from_request(ApiKind::OpenAiChat, &self.carry.original_path, &body);
        let client_model = info.model.clone().unwrap_or_default();
        let openai_kind = matches!(
            provider.kind,
            ProviderKind::Openai | ProviderKind::OpenaiCompatible
        );
        // Same rule as the downstream stage, which strips the injected chunk again.
        if openai_kind
            && self
                .config
                .usage
                .injects_include_usage(info.streaming, info.include_usage_requested)
        {
            if let Some(rewritten) = ensure_include_usage(&body) {
                body = rewritten;
            }
        }
        let req = match routing::upstream_request(
            provider,
            &provider.models.provider_model(&client_model),
            &body,
            info.streaming,
            info.include_usage_requested,
        ) {
            Ok(req) => req,
            Err(e) => {
                // Not this provider's fault: the body goes as it is and the provider's 4xx returns.
                self.log(
                    LogLevel::Info,
                    &format!(
                        "request not translatable for {}: {}",
                        provider.name,
                        e.message()
                    ),
                );
                return;
            }
        };
        // An earlier attempt's provider headers (Envoy keeps header edits across attempts).
        remove_header(MapType::HttpRequestHeaders, "anthropic-version");
        for (name, value) in &req.headers {
            set_header(MapType::HttpRequestHeaders, name, value);
        }
        set_header(MapType::HttpRequestHeaders, ":path", &req.path);
        if let Some(authority) = req.authority.as_deref() {
            set_header(MapType::HttpRequestHeaders, ":authority", authority);
        }
        if super::abi::set_buffer(BufferType::HttpRequestBody, 0, body_size, &req.body) {
            set_header(
                MapType::HttpRequestHeaders,
                "content-length",
                &req.body.len().to_string(),
            );
        } else {
            self.log(LogLevel::Warn, "host refused the attempt's body rewrite");
        }
    }
}

impl Context for UpstreamAttempt {
    fn on_done(&mut self) -> bool {
        // Reset, timed out or cancelled before any response: Envoy's retry policy decides what
        // follows; the circuit and the next attempt learn that this one got no answer.
        if !self.recorded {
            if let (Some(index), Some(failover)) = (self.provider, self.config.failover.clone()) {
                if let Some(provider) = failover.providers.get(index) {
                    let now_ms = now_nanos() / 1_000_000;
                    record_attempt(
                        &self.shared,
                        &self.request_id,
                        provider,
                        None,
                        MapType::HttpResponseHeaders,
                        now_ms,
                    );
                    count(
                        &self.shared,
                        failover::metrics::failovers_metric(&provider.name, "no_response"),
                    );
                }
                self.note("no_response");
            }
        }
        true
    }
}

impl HttpContext for UpstreamAttempt {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.started_ns = now_nanos();
        self.request_id = header(
            MapType::HttpRequestHeaders,
            &self.config.correlation.request_id_header,
        )
        .unwrap_or_default();
        // Envoy keeps header edits across attempts: the first attempt saves the client's path.
        self.carry = header(MapType::HttpRequestHeaders, CARRY_HEADER)
            .and_then(|v| Carry::decode(&v))
            .unwrap_or_else(|| {
                Carry::new(&header(MapType::HttpRequestHeaders, ":path").unwrap_or_default())
            });
        remove_header(MapType::HttpRequestHeaders, CARRY_HEADER);
        let Some(failover) = self.config.failover.clone() else {
            return Action::Continue;
        };
        let name = hostcalls::get_property(PROVIDER_METADATA.to_vec())
            .ok()
            .flatten()
            .and_then(|b| String::from_utf8(b).ok());
        let Some((index, provider)) = name.as_deref().and_then(|n| {
            let i = failover.provider_index(n)?;
            Some((i, failover.providers.get(i)?))
        }) else {
            self.log(
                LogLevel::Warn,
                "attempt to a host without a known tollgate.provider endpoint metadata: passed through",
            );
            // Keep the carry for later attempts even though this one is not ours.
            set_header(
                MapType::HttpRequestHeaders,
                CARRY_HEADER,
                &self.carry.encode(),
            );
            self.recorded = true;
            return Action::Continue;
        };
        self.provider = Some(index);
        // The downstream stage only lets Envoy walk when every provider may be tried; this claims
        // the half-open probe when one is due. A circuit that opened meanwhile cannot be honoured
        // here: resetting the attempt from a filter resets the whole request on Envoy 1.40.
        let now_ms = now_nanos() / 1_000_000;
        if let Err(reason) = failover::attempt_allowed(&HostStore, provider, now_ms) {
            self.log(
                LogLevel::Debug,
                &format!(
                    "provider {} is {} but Envoy chose it",
                    provider.name,
                    reason.label()
                ),
            );
        }
        self.set_key(index, provider.kind);
        let chat = classify_path(&self.carry.original_path) == Some(ApiKind::OpenAiChat);
        if chat && !end_of_stream {
            self.rewriting_body = true;
            remove_header(MapType::HttpRequestHeaders, "content-length");
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.rewriting_body {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.rewriting_body = false;
        self.rewrite_body(body_size);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let (Some(index), Some(failover)) = (self.provider, self.config.failover.clone()) else {
            return Action::Continue;
        };
        let Some(provider) = failover.providers.get(index) else {
            return Action::Continue;
        };
        let status = header(MapType::HttpResponseHeaders, ":status").and_then(|s| s.parse().ok());
        let now_ms = now_nanos() / 1_000_000;
        let outcome = record_attempt(
            &self.shared,
            &self.request_id,
            provider,
            status,
            MapType::HttpResponseHeaders,
            now_ms,
        );
        if matches!(outcome, failover::Outcome::Retryable(_)) {
            count(
                &self.shared,
                failover::metrics::failovers_metric(&provider.name, outcome.label()),
            );
        }
        if status == Some(429) {
            // Envoy's retry policy moves on for `5xx`; a route-wide `retriable-status-codes: 429`
            // would also retry a rate-limited provider that tollgate routed to directly. The
            // carry keeps the real status for the all-failed reply.
            set_header(MapType::HttpResponseHeaders, ":status", "503");
        }
        let result = status.map_or_else(|| "no status".to_string(), |s| s.to_string());
        self.note(&result);
        set_header(
            MapType::HttpResponseHeaders,
            PROVIDER_HEADER,
            &provider.name,
        );
        set_header(
            MapType::HttpResponseHeaders,
            CARRY_HEADER,
            &self.carry.encode(),
        );
        Action::Continue
    }
}
