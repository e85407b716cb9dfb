//! Failover tollgate routes itself: the first attempt went through Envoy's router; when it fails
//! before any byte reached the client, the failed response is held and the next attempt is an
//! HTTP callout whose answer replaces it. Which provider, how often and until when is decided by
//! the one failover engine, [`AttemptTracker`]; this module sends what it asks for and builds
//! the replacement (usage, translation, masking) or the all-failed reply.

use std::time::Duration;

use super::host::{now_ms, Body, Host, HttpCall, Map};
use super::{replies, Exchange};
use crate::error_reply::ErrorReply;
use crate::failover::{self, AfterAttempt, AttemptTracker, FailoverSettings, NextStep, Plan};
use crate::routing;
use crate::translate::StreamTranslator;
use crate::usage::{ensure_include_usage, SseChunkFilter, UsageTracker};

/// The client's request as it arrived, kept to write each attempt from it.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    /// The OpenAI chat request body (after prompt masking).
    pub body: Vec<u8>,
    /// The client asked for a stream.
    pub streaming: bool,
    /// The client asked for `include_usage`.
    pub include_usage: bool,
    /// The model the client named.
    pub model: String,
}

/// A provider the client's request could not be written for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untranslatable {
    /// Provider name.
    pub provider: String,
    /// The translation error's code.
    pub code: String,
    /// The translation error's message.
    pub message: String,
}

/// The state of failover that tollgate routes itself.
#[derive(Debug, Clone)]
pub struct OwnFailover {
    /// The one failover engine: which provider next, retries, deadline.
    pub tracker: AttemptTracker,
    /// The client's request.
    pub request: ClientRequest,
    /// Providers skipped because the request could not be written for them.
    pub untranslatable: Vec<Untranslatable>,
}

impl OwnFailover {
    /// Starts failover for `plan` at `now_ms`.
    pub fn new(
        settings: &FailoverSettings,
        plan: &Plan,
        now_ms: u64,
        request: ClientRequest,
    ) -> Self {
        Self {
            tracker: AttemptTracker::new(settings, plan, now_ms),
            request,
            untranslatable: Vec::new(),
        }
    }

    /// Notes a provider skipped because the request could not be written for it.
    pub fn not_translatable(&mut self, provider: &str, code: &str, message: &str) {
        self.untranslatable.push(Untranslatable {
            provider: provider.to_string(),
            code: code.to_string(),
            message: message.to_string(),
        });
    }

    /// The all-failed reply at `now_ms`.
    fn failure_reply(&self, now_ms: u64) -> ErrorReply {
        let mut failed = self.tracker.failure_reply(now_ms);
        for u in &self.untranslatable {
            failed.message.push_str(&format!(
                "; {}: request not translatable ({})",
                u.provider, u.message
            ));
        }
        replies::all_failed_reply(&failed)
    }
}

/// The answer that replaces a held response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    /// Status.
    pub status: u32,
    /// Content type.
    pub content_type: String,
    /// Body.
    pub body: Vec<u8>,
}

impl Replacement {
    /// An error reply as a replacement.
    pub fn error(reply: &ErrorReply, request_id: &str) -> Self {
        Self {
            status: reply.status,
            content_type: "application/json".into(),
            body: reply.body(request_id),
        }
    }
}

/// A failed response held back until its replacement is ready and its own body is complete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    /// The failover callout in flight.
    pub callout: Option<u32>,
    /// The held response's body is complete (its size).
    pub body_size: Option<usize>,
    /// The answer that replaces it, once known.
    pub replacement: Option<Replacement>,
}

impl Exchange {
    /// Records the answer of the provider tollgate picked itself and, when it failed before any
    /// byte reached the client, starts the next attempt.
    pub(super) fn record_own_attempt<H: Host>(&mut self, host: &mut H) {
        let vm = std::rc::Rc::clone(&self.vm);
        let (Some(route), Some(failover)) = (self.route.clone(), vm.config.failover.as_ref())
        else {
            return;
        };
        let Some(provider) = failover.providers.get(route.provider) else {
            return;
        };
        let now_ms = now_ms(host);
        let status = u16::try_from(self.response.status).ok();
        let outcome = self.record_attempt(host, provider, status, Map::Response, now_ms);
        let after = match self.own.as_mut() {
            Some(own) => own.tracker.record(now_ms, status, outcome),
            None => return,
        };
        if after == AfterAttempt::TryNext && !self.response.headers_end_stream {
            self.count(
                host,
                failover::metrics::failovers_metric(&route.name, outcome.label()),
            );
            self.start_next_attempt(host, failover);
        }
    }

    /// Sends the next attempt the tracker asks for as a callout and holds the failed response
    /// meanwhile; when the tracker stops, the all-failed reply becomes the replacement. False
    /// when nothing is held (the failed response then goes to the client as it is).
    pub(super) fn start_next_attempt<H: Host>(
        &mut self,
        host: &mut H,
        failover: &FailoverSettings,
    ) -> bool {
        let Some(mut own) = self.own.take() else {
            return false;
        };
        let started = self.start_attempt_with(host, failover, &mut own);
        self.own = Some(own);
        started
    }

    fn start_attempt_with<H: Host>(
        &mut self,
        host: &mut H,
        failover: &FailoverSettings,
        own: &mut OwnFailover,
    ) -> bool {
        let vm = std::rc::Rc::clone(&self.vm);
        loop {
            let now_ms = now_ms(host);
            let rand = host.random_u64();
            let attempt = match own.tracker.next_attempt(failover, &*host, now_ms, rand) {
                NextStep::Attempt(attempt) => attempt,
                NextStep::Stop(_) => {
                    let reply = own.failure_reply(now_ms);
                    let held = self.held.get_or_insert_with(Held::default);
                    held.callout = None;
                    held.replacement = Some(Replacement::error(&reply, &self.request_id));
                    return true;
                }
            };
            let Some(provider) = failover.providers.get(attempt.index) else {
                own.tracker.abandon_current("unknown_provider");
                continue;
            };
            let request = &own.request;
            // An OpenAI-kind fallback reports a stream's usage only when asked, like the first
            // attempt; the injected chunk is dropped again before the client sees the answer.
            let injected = if vm
                .config
                .usage
                .injects_include_usage(request.streaming, request.include_usage)
                && routing::response_format(provider.kind).is_none()
            {
                ensure_include_usage(&request.body)
            } else {
                None
            };
            let req = match routing::upstream_request(
                provider,
                &attempt.provider_model,
                injected.as_deref().unwrap_or(&request.body),
                request.streaming,
                request.include_usage,
            ) {
                Ok(req) => req,
                Err(e) => {
                    // The next provider may take what this one cannot.
                    self.log(
                        host,
                        log::Level::Info,
                        &format!(
                            "request not translatable for {}: {}",
                            provider.name,
                            e.message()
                        ),
                    );
                    own.not_translatable(&provider.name, e.code(), e.message());
                    own.tracker.abandon_current("not_translatable");
                    continue;
                }
            };
            let key = vm
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
                (
                    vm.config.correlation.request_id_header.as_str(),
                    self.request_id.as_str(),
                ),
            ];
            for (name, value) in &self.trace_headers {
                headers.push((name.as_str(), value.as_str()));
            }
            if let Some(k) = key.as_deref() {
                headers.push((req.key_header.0, k));
            }
            for (k, v) in &req.headers {
                headers.push((k.as_str(), v.as_str()));
            }
            let call = HttpCall {
                cluster: &req.cluster,
                headers: &headers,
                body: Some(&req.body),
                timeout: Duration::from_millis(attempt.timeout_ms.max(1)),
            };
            let Some(token) = host.http_call(&call) else {
                return false;
            };
            self.log(
                host,
                log::Level::Info,
                &format!("failing over to provider {}", provider.name),
            );
            let held = self.held.get_or_insert_with(Held::default);
            held.callout = Some(token);
            self.injected_usage = injected.is_some();
            self.upstream_path = Some(req.path.clone());
            let model = request.model.clone();
            self.adopt_route(attempt.index, &provider.name, &req, model);
            // The held response is replaced: nothing of it is tracked or translated.
            self.response.tracker = None;
            self.response.chunk_filter = None;
            self.response.translator = None;
            self.response.buffer_for_translation = false;
            self.response.masker = None;
            self.response.openai_stream = None;
            host.remove_header(Map::Response, "content-length");
            return true;
        }
    }

    /// A failover callout answered: account it, then deliver it or try the next provider.
    pub(super) fn on_failover_response<H: Host>(&mut self, host: &mut H, body_size: usize) {
        if let Some(held) = self.held.as_mut() {
            held.callout = None;
        }
        let vm = std::rc::Rc::clone(&self.vm);
        let (Some(failover), Some(route)) = (vm.config.failover.as_ref(), self.route.clone())
        else {
            return;
        };
        let Some(provider) = failover.providers.get(route.provider) else {
            return;
        };
        let status = host
            .header(Map::CalloutResponse, ":status")
            .and_then(|s| s.parse::<u16>().ok());
        let content_type = host.header(Map::CalloutResponse, "content-type");
        let body = host.body(Body::CalloutResponse, body_size);
        let now_ms = now_ms(host);
        let outcome = self.record_attempt(host, provider, status, Map::CalloutResponse, now_ms);
        let after = self
            .own
            .as_mut()
            .map(|own| own.tracker.record(now_ms, status, outcome));
        if after == Some(AfterAttempt::TryNext) {
            self.count(
                host,
                failover::metrics::failovers_metric(&route.name, outcome.label()),
            );
            if self.start_next_attempt(host, failover) {
                if self.held.as_ref().is_some_and(|h| h.callout.is_some()) {
                    return;
                }
                self.deliver_replacement(host);
                return;
            }
        }
        let status = u32::from(status.unwrap_or(502));
        self.response.status = status;
        let elapsed = self.elapsed_ms(host);
        if let Some(kind) = self.api {
            let mut tracker = UsageTracker::for_content_type(
                kind,
                content_type.as_deref(),
                self.info.as_ref().map_or(0, |i| i.prompt_estimate),
                vm.config.usage.tracker,
            );
            if tracker.feed(&body).first_token {
                self.response.ttft_ms = Some(elapsed);
            }
            self.response.tracker = Some(tracker);
        }
        let (out, ct) = match route.translate_from {
            None if self.injected_usage => {
                let mut filter = SseChunkFilter::new(vm.config.usage.tracker.max_event_bytes);
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
                    vm.config.usage.tracker.max_event_bytes,
                );
                let mut out = t.push(&body);
                out.extend(t.finish());
                (out, "text/event-stream".into())
            }
            Some(_) => (
                self.translate_whole_body(host, &body).unwrap_or(body),
                "application/json".into(),
            ),
        };
        let out = match (
            &vm.config.masking.engine,
            status >= 400 && vm.config.masking.error_bodies,
        ) {
            (Some(engine), true) => engine.mask(&out).bytes.into_owned(),
            _ => out,
        };
        let held = self.held.get_or_insert_with(Held::default);
        held.replacement = Some(Replacement {
            status,
            content_type: ct,
            body: out,
        });
        self.deliver_replacement(host);
    }

    /// Replaces the held response with its replacement once the held body is complete, from a
    /// callout answer: the response is resumed.
    pub(super) fn deliver_replacement<H: Host>(&mut self, host: &mut H) {
        if self.apply_replacement(host) && !host.resume_response() {
            self.log(
                host,
                log::Level::Error,
                "host refused to resume the response",
            );
        }
    }

    /// Writes the replacement over the held response (status, content type, body) when both are
    /// ready; true when written. From the held body's last event the response then simply
    /// continues: resuming from inside that event loses the body of Envoy's own local replies.
    pub(super) fn apply_replacement<H: Host>(&mut self, host: &mut H) -> bool {
        let Some(held) = self.held.as_mut() else {
            return false;
        };
        let Some(size) = held.body_size else {
            return false;
        };
        let Some(replacement) = held.replacement.take() else {
            return false;
        };
        self.held = None;
        self.response.status = replacement.status;
        host.set_header(Map::Response, ":status", &replacement.status.to_string());
        host.set_header(Map::Response, "content-type", &replacement.content_type);
        host.remove_header(Map::Response, "content-length");
        if !host.replace_body(Body::Response, size, &replacement.body) {
            self.log(
                host,
                log::Level::Error,
                "host refused the failover response body",
            );
        }
        self.cache_replacement(
            host,
            replacement.status,
            &replacement.content_type,
            &replacement.body,
        );
        true
    }

    /// Records one attempt's answer (`None`: no response) for the provider's circuit, back-off
    /// and metrics; `headers` is where its response headers are (the stream's or a callout's).
    pub(super) fn record_attempt<H: Host>(
        &self,
        host: &mut H,
        provider: &crate::failover::ProviderSettings,
        status: Option<u16>,
        headers: Map,
        now_ms: u64,
    ) -> failover::Outcome {
        super::attempts::record_attempt(
            &self.vm,
            host,
            &self.request_id,
            provider,
            status,
            headers,
            now_ms,
        )
    }
}
