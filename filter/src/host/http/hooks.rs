//! Request guardrails and the status endpoint, as hooks the HTTP context calls: each gathers
//! plain inputs from the host, asks the pure module ([`crate::guardrails`], [`crate::status`])
//! and sends the local reply. A child of `http` so it reaches the request state directly.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{Action, LogLevel, MapType};

use super::TollgateHttp;
use crate::error_reply::{ErrorKind, ErrorReply};
use crate::failover;
use crate::guardrails::{RequestView, Violation};
use crate::host::calls::{header, now_nanos};
use crate::host::store::HostStore;
use crate::status::{self, ProviderStatus, StatusInputs, WindowStatus};
use crate::usage::{BodyShape, RequestInfo};

impl TollgateHttp {
    /// Refuses the request for `violation`: counts it by reason and sends the OpenAI-shaped reply.
    pub(super) fn reject(&mut self, violation: &Violation) -> Action {
        self.count(violation.metric());
        self.reply(&violation.reply())
    }

    /// Guardrails on the request headers (content type; the fields of a body-less request).
    /// `Some`: the request was refused.
    pub(super) fn guard_headers(&mut self) -> Option<Action> {
        let guardrails = self.config.guardrails.clone()?;
        let content_type = header(MapType::HttpRequestHeaders, "content-type");
        let empty = BodyShape::default();
        let view = RequestView {
            path: &self.path,
            api: self.api,
            content_type: content_type.as_deref(),
            has_body: !self.headers_end_stream,
            body: self.headers_end_stream.then_some(&empty),
        };
        let verdict = guardrails.check(&view);
        verdict.err().map(|v| self.reject(&v))
    }

    /// Guardrails on the whole request body, read from the usage parser's single pass.
    /// `Some`: the request was refused.
    pub(super) fn guard_body(&mut self, info: &RequestInfo) -> Option<Action> {
        let guardrails = self.config.guardrails.clone()?;
        let content_type = header(MapType::HttpRequestHeaders, "content-type");
        let view = RequestView {
            path: &self.path,
            api: self.api,
            content_type: content_type.as_deref(),
            has_body: true,
            body: Some(&info.shape),
        };
        let verdict = guardrails.check(&view);
        verdict.err().map(|v| self.reject(&v))
    }

    /// Answers the status endpoint locally when the request asks for it. `Some`: answered (or
    /// refused: with authentication configured, only an authenticated caller gets it).
    pub(super) fn serve_status(&mut self) -> Option<Action> {
        let config = std::rc::Rc::clone(&self.config);
        let status_config = config.status.as_ref()?;
        if !status_config.matches(&self.path) {
            return None;
        }
        let auth_configured = config.jwt.is_some() || config.envoy_jwt.is_some();
        if auth_configured && self.user.is_none() {
            let realm = config.jwt.as_ref().map_or("tollgate", |j| j.realm.as_str());
            let reply = ErrorReply::new(
                401,
                ErrorKind::Authentication,
                "missing",
                "the status endpoint needs an authenticated caller",
            )
            .with_header("www-authenticate", format!("Bearer realm=\"{realm}\""));
            return Some(self.reply(&reply));
        }
        let caller = self.user.clone().or_else(|| self.identify());
        let now_ms = now_nanos() / 1_000_000;
        let providers = config
            .failover
            .as_ref()
            .map(|f| {
                f.providers
                    .iter()
                    .map(|p| ProviderStatus {
                        name: p.name.clone(),
                        kind: p.kind.as_str().to_string(),
                        circuit: failover::circuit_state(&HostStore, p, now_ms),
                        backoff_remaining_ms: failover::backoff_until(&HostStore, p, now_ms)
                            .map(|until| until.saturating_sub(now_ms)),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let now_s = now_ms / 1000;
        let budget = match (config.budgets.as_ref(), caller.as_deref()) {
            (Some(b), Some(user)) => Some(
                b.budgets
                    .windows
                    .iter()
                    .zip(b.budgets.snapshot(&HostStore, user, now_s))
                    .map(|(limit, (_, state))| WindowStatus::new(limit, &state, now_s))
                    .collect(),
            ),
            _ => None,
        };
        let body = status::render(&StatusInputs {
            version: crate::VERSION,
            config_hash: &config.config_hash,
            environment: config.environment.as_str(),
            request_id: &self.request_id,
            caller: caller.as_deref(),
            providers,
            budget,
        });
        let headers = [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
            (
                config.correlation.request_id_header.as_str(),
                self.request_id.as_str(),
            ),
        ];
        self.replied_locally = true;
        self.metrics.local_replies.add(1);
        if hostcalls::send_http_response(200, headers.to_vec(), Some(&body)).is_err() {
            self.log(LogLevel::Error, "host refused the status reply");
        }
        Some(Action::Pause)
    }
}
