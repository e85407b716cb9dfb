//! Admission: after authentication, which API the request speaks and who sends it; on the whole
//! body, prompt masking, guardrails, routing, `include_usage` injection and the budget
//! reservation. Each refusal is an OpenAI-shaped local reply.

use super::host::{Body, Host, Map};
use super::{replies, Exchange, Flow, Phase};
use crate::accounting::tagged_name;
use crate::budget::Refusal;
use crate::error_reply::{ErrorKind, ErrorReply};
use crate::guardrails::{RequestView, Violation};
use crate::identity::{address_identity, api_key_identity};
use crate::masking::{apply_prompt_action, PromptVerdict};
use crate::usage::{classify_path, ensure_include_usage, ApiKind, BodyShape, RequestInfo};

impl Exchange {
    /// Everything after authentication on the request headers: which API, who, and whether to
    /// hold for the body.
    pub(super) fn after_auth<H: Host>(&mut self, host: &mut H) -> Flow {
        if let Some(flow) = self.serve_status(host) {
            return flow;
        }
        self.api = classify_path(&self.path);
        if let Some(flow) = self.guard_headers(host) {
            return flow;
        }
        if self.api.is_none() {
            self.phase = Phase::Forwarded;
            return Flow::Continue;
        }
        // Who sends it matters to what reads the body (usage, budgets, the cache, a key): with
        // none of them on, the caller is not looked up.
        let body_needed = self.body_needed();
        if self.user.is_none() && body_needed {
            self.user = self.identify(host);
        }
        if self.headers_end_stream || !body_needed {
            // No body, or nothing enabled reads it: the body streams through unheld.
            self.phase = Phase::Forwarded;
            return self.admit(host);
        }
        if let Some(size) = self.body_complete.take() {
            self.phase = Phase::Forwarded;
            return self.on_full_request_body(host, size);
        }
        // Hold the headers until the body is complete: the model, the output limit and the
        // budget decision come from it, and a rewritten body needs a new content-length.
        self.phase = Phase::HoldingBody;
        Flow::Pause
    }

    /// Whether anything enabled for this request works on its whole body: usage accounting (the
    /// prompt estimate, `include_usage`), prompt masking, guardrails, routing, the response
    /// cache, budgets (the estimate) or the presented virtual key (its models and budgets) — or
    /// the body's size is undeclared, so the size limit is enforced before anything goes
    /// upstream. Otherwise the headers are not held for it, the body is never read and the
    /// caller is not identified.
    fn body_needed(&self) -> bool {
        let c = &self.vm.config;
        !self.length_declared
            || c.usage.enabled
            || (c.masking.prompts != crate::masking::PromptAction::Off
                && c.masking.engine.is_some())
            || c.guardrails.is_some()
            || c.failover.is_some()
            || c.cache.is_some()
            || c.budgets.is_some()
            || self.key.is_some()
    }

    /// The caller: API key hash from the configured headers, else the client address.
    pub(super) fn identify<H: Host>(&self, host: &H) -> Option<String> {
        for name in &self.vm.config.api_key_headers {
            if let Some(id) = host
                .header(Map::Request, name)
                .as_deref()
                .and_then(api_key_identity)
            {
                return Some(id);
            }
        }
        host.property(&["source", "address"])
            .and_then(|b| String::from_utf8(b).ok())
            .map(|a| address_identity(&a))
    }

    /// Reads the whole (buffered) request body, rewrites it if needed, and runs admission.
    pub(super) fn on_full_request_body<H: Host>(&mut self, host: &mut H, body_size: usize) -> Flow {
        let Some(kind) = self.api else {
            return Flow::Continue;
        };
        let vm = std::rc::Rc::clone(&self.vm);
        let mut body = host.body(Body::Request, body_size);
        let mut body_changed = false;
        if let Some(engine) = vm.config.masking.engine.as_ref() {
            match apply_prompt_action(engine, vm.config.masking.prompts, &body) {
                PromptVerdict::Forward => {}
                PromptVerdict::Redacted(masked) => {
                    for f in &masked.findings {
                        self.count_masked(host, &f.kind, "prompt", f.count);
                    }
                    let redacted = masked.bytes.into_owned();
                    self.log(host, log::Level::Info, "secrets redacted from the prompt");
                    body = redacted;
                    body_changed = true;
                }
                PromptVerdict::Blocked { kinds } => {
                    for k in &kinds {
                        self.count_masked(host, k, "prompt", 1);
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
                    return self.reply(host, &reply);
                }
            }
        }
        let info = RequestInfo::from_request(kind, &self.path, &body);
        if let Some(flow) = self.check_key_model(host, &info) {
            return flow;
        }
        if let Some(flow) = self.guard_body(host, &info) {
            return flow;
        }
        // `body` stays as the client's API has it (masked, not yet translated): the cache keys
        // on it. What goes upstream instead, when routing or `include_usage` rewrites it:
        let mut upstream: Option<Vec<u8>> = None;
        if let (Some(failover), ApiKind::OpenAiChat) = (vm.config.failover.as_ref(), kind) {
            match self.route_request(host, failover, &info, &body) {
                Ok(routed) => upstream = routed,
                Err(flow) => return flow,
            }
        }
        let kind = self.api.unwrap_or(kind);
        if kind == ApiKind::OpenAiChat
            && self.walk.is_none()
            && vm
                .config
                .usage
                .injects_include_usage(info.streaming, info.include_usage_requested)
        {
            if let Some(rewritten) = ensure_include_usage(upstream.as_deref().unwrap_or(&body)) {
                upstream = Some(rewritten);
                self.injected_usage = true;
            }
        }
        if body_changed || upstream.is_some() {
            let sent = upstream.as_deref().unwrap_or(&body);
            if host.replace_body(Body::Request, body_size, sent) {
                host.set_header(Map::Request, "content-length", &sent.len().to_string());
            } else {
                self.injected_usage = false;
                self.log(
                    host,
                    log::Level::Warn,
                    "host refused the request body rewrite",
                );
            }
        }
        self.info = Some(info);
        let flow = self.admit(host);
        if vm.config.cache.is_some() {
            self.cache_after_admission(host, flow, kind, body)
        } else {
            flow
        }
    }

    /// Budget admission: reserve the estimate or refuse with 429.
    pub(super) fn admit<H: Host>(&mut self, host: &mut H) -> Flow {
        if let Some(flow) = self.admit_key(host) {
            return flow;
        }
        let vm = std::rc::Rc::clone(&self.vm);
        let Some(budget) = vm.config.budgets.as_ref() else {
            return Flow::Continue;
        };
        let Some(user) = self.user.clone() else {
            return Flow::Continue;
        };
        let estimate = self.info.as_ref().map_or(budget.default_max_tokens, |i| {
            i.prompt_estimate
                .saturating_add(i.max_tokens.unwrap_or(budget.default_max_tokens))
        });
        let now = host.now_ns() / 1_000_000_000;
        match budget.budgets.admit(&*host, &user, now, estimate) {
            Ok(admission) => {
                self.admission = Some(admission);
                // Admitted locally: now the mesh-wide budget, when there is one.
                self.admit_mesh(host, estimate)
            }
            Err(refusal) => self.refuse_over_budget(host, &refusal),
        }
    }

    /// Refuses the request over a budget window (the caller's, its key's or the mesh-wide one):
    /// counts it by dimension and sends the 429 naming the window.
    pub(super) fn refuse_over_budget<H: Host>(&mut self, host: &mut H, refusal: &Refusal) -> Flow {
        self.count(
            host,
            tagged_name(
                "tollgate_budget_rejections_total",
                &[("dimension", refusal.dimension)],
            ),
        );
        self.reply(host, &replies::budget_reply(refusal))
    }

    /// Refuses the request for `violation`: counts it by reason and sends the OpenAI-shaped reply.
    pub(super) fn reject<H: Host>(&mut self, host: &mut H, violation: &Violation) -> Flow {
        self.count(host, violation.metric());
        self.reply(host, &violation.reply())
    }

    /// Guardrails on the request headers (content type; the fields of a body-less request).
    /// `Some`: the request was refused.
    fn guard_headers<H: Host>(&mut self, host: &mut H) -> Option<Flow> {
        let guardrails = self.vm.config.guardrails.clone()?;
        let content_type = host.header(Map::Request, "content-type");
        let empty = BodyShape::default();
        let view = RequestView {
            path: &self.path,
            api: self.api,
            content_type: content_type.as_deref(),
            has_body: !self.headers_end_stream,
            body: self.headers_end_stream.then_some(&empty),
        };
        let verdict = guardrails.check(&view);
        verdict.err().map(|v| self.reject(host, &v))
    }

    /// Guardrails on the whole request body, read from the usage parser's single pass.
    /// `Some`: the request was refused.
    fn guard_body<H: Host>(&mut self, host: &mut H, info: &RequestInfo) -> Option<Flow> {
        let guardrails = self.vm.config.guardrails.clone()?;
        let content_type = host.header(Map::Request, "content-type");
        let view = RequestView {
            path: &self.path,
            api: self.api,
            content_type: content_type.as_deref(),
            has_body: true,
            body: Some(&info.shape),
        };
        let verdict = guardrails.check(&view);
        verdict.err().map(|v| self.reject(host, &v))
    }
}
