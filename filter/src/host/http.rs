//! The per-request HTTP context: correlation ids in, correlation ids out, and local replies.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel, MapType};

use super::calls::{header, log_with_id, remove_header, set_header};
use super::metrics::CoreMetrics;
use crate::config::FilterConfig;
use crate::correlation::{choose_request_id, decide_trace, RequestIdSource};
use crate::error_reply::{ErrorKind, ErrorReply};
use crate::random::IdRng;

/// One request's state.
pub struct TollgateHttp {
    config: Rc<FilterConfig>,
    rng: IdRng,
    metrics: CoreMetrics,
    /// The request's correlation id, set in `on_http_request_headers`.
    request_id: String,
    /// Request body bytes seen so far.
    request_bytes: u64,
}

impl TollgateHttp {
    /// Creates the context for one request.
    pub fn new(config: Rc<FilterConfig>, rng: IdRng, metrics: CoreMetrics) -> Self {
        Self {
            config,
            rng,
            metrics,
            request_id: String::new(),
            request_bytes: 0,
        }
    }

    /// Logs one line carrying this request's correlation id.
    fn log(&self, level: LogLevel, message: &str) {
        log_with_id(level, &self.request_id, message);
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
        let corr = Rc::clone(&self.config);
        let corr = &corr.correlation;
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
}

/// The 413 reply for an oversized request.
fn too_large(limit: u64) -> ErrorReply {
    ErrorReply::new(
        413,
        ErrorKind::InvalidRequest,
        "request_too_large",
        format!("request body exceeds the limit of {limit} bytes"),
    )
}

impl Context for TollgateHttp {}

impl HttpContext for TollgateHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.metrics.requests.add(1);
        self.apply_correlation();
        let declared = header(MapType::HttpRequestHeaders, "content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.config.max_request_bytes) {
            return self.reply(&too_large(self.config.max_request_bytes));
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        // Chunked uploads carry no content-length: count what actually arrives.
        self.request_bytes = self
            .request_bytes
            .saturating_add(u64::try_from(body_size).unwrap_or(u64::MAX));
        if self.request_bytes > self.config.max_request_bytes {
            return self.reply(&too_large(self.config.max_request_bytes));
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if !self.request_id.is_empty() {
            let name = &self.config.correlation.request_id_header;
            set_header(MapType::HttpResponseHeaders, name, &self.request_id);
        }
        Action::Continue
    }
}
