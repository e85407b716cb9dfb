//! Authentication: JWT validation with the VM's keys (waiting, boundedly, for keys still being
//! fetched, and refetching once for an unknown `kid`), or the identity Envoy's `jwt_authn` put
//! in dynamic metadata. Denials become OpenAI-shaped 401/403 replies with `WWW-Authenticate`.

use std::sync::Arc;

use super::host::{now_ms, Host};
use super::{Exchange, Flow, Phase};
use crate::accounting::tagged_name;
use crate::config::EnvoyJwtConfig;
use crate::error_reply::{ErrorKind, ErrorReply};
use crate::jwt::{self, AuthOutcome, KeySet, RequestEdit};
use crate::refresh::Availability;

/// The result of one authentication attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStep {
    /// Go on with the request.
    Proceed,
    /// A local reply was sent.
    Replied,
    /// Waiting for keys.
    Waiting,
}

impl Exchange {
    /// Runs authentication on the request headers (again, after a key fetch).
    pub(super) fn authenticate<H: Host>(&mut self, host: &mut H) -> AuthStep {
        // A presented virtual API key decides alone (see `crate::keys`).
        if let Some(step) = self.authenticate_key(host) {
            return step;
        }
        let vm = std::rc::Rc::clone(&self.vm);
        if let Some(envoy_jwt) = vm.config.envoy_jwt.as_ref() {
            return self.identity_from_envoy_jwt(host, envoy_jwt);
        }
        let Some(runtime) = vm.jwt.as_ref() else {
            self.phase = Phase::Forwarded;
            return AuthStep::Proceed;
        };
        let headers = self.req_headers.all(host);
        // `:method` is in the map; `:path` was read at the request headers.
        let method = headers
            .iter()
            .find(|(name, _)| name == ":method")
            .map(|(_, value)| value.clone())
            .unwrap_or_default();
        let path = self.arrived_path.clone();
        let now_ms = now_ms(host);
        let Ok(mut rt) = runtime.try_borrow_mut() else {
            self.phase = Phase::Forwarded;
            return AuthStep::Proceed;
        };
        let availability: Vec<Availability<KeySet>> = rt.availability(now_ms);
        let settings = Arc::clone(&rt.settings);
        let request = jwt::RequestInfo {
            method: &method,
            path: &path,
            headers: headers.as_ref(),
        };
        let outcome = jwt::authenticate(
            &settings,
            &request,
            |p| {
                availability
                    .get(p)
                    .cloned()
                    .unwrap_or(Availability::Unavailable)
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
                            self.req_headers.remove(host, &name);
                        }
                        RequestEdit::SetHeader(name, value) => {
                            self.req_headers.set(host, &name, &value);
                        }
                        RequestEdit::SetPath(p) => {
                            self.req_headers.set(host, ":path", &p);
                            self.arrived_path = p;
                        }
                    }
                }
                if let Some(identity) = identity {
                    let claim = identity
                        .claims
                        .get(&vm.config.jwt_claim)
                        .and_then(|v| match v {
                            serde_json::Value::String(s) => Some(s.clone()),
                            serde_json::Value::Number(n) => Some(n.to_string()),
                            _ => None,
                        });
                    self.user = claim.or(identity.subject);
                    self.class =
                        class_claim(&vm.config).and_then(|name| claim_text(&identity.claims, name));
                    self.count(
                        host,
                        tagged_name(
                            "tollgate_jwt_allowed_total",
                            &[("provider", &identity.provider)],
                        ),
                    );
                }
                self.phase = Phase::Forwarded;
                AuthStep::Proceed
            }
            AuthOutcome::Wait { provider, .. } => {
                let already = matches!(self.phase, Phase::WaitingForKeys { .. });
                let token = if already {
                    None
                } else {
                    rt.dispatch(host, provider, now_ms)
                };
                drop(rt);
                match token {
                    Some(token) => {
                        self.phase = Phase::WaitingForKeys {
                            token,
                            kid_refetch: false,
                        };
                        AuthStep::Waiting
                    }
                    None => self.deny_no_keys(host),
                }
            }
            AuthOutcome::Deny(denial) => {
                let kid_retry = denial.unknown_kid_provider.filter(|p| {
                    !matches!(
                        self.phase,
                        Phase::WaitingForKeys {
                            kid_refetch: true,
                            ..
                        }
                    ) && rt.unknown_kid(*p, now_ms)
                });
                if let Some(provider) = kid_retry {
                    if let Some(token) = rt.dispatch(host, provider, now_ms) {
                        drop(rt);
                        self.phase = Phase::WaitingForKeys {
                            token,
                            kid_refetch: true,
                        };
                        return AuthStep::Waiting;
                    }
                }
                drop(rt);
                self.count(
                    host,
                    tagged_name("tollgate_jwt_denied_total", &[("reason", denial.reason)]),
                );
                let kind = match denial.status {
                    401 => ErrorKind::Authentication,
                    403 => ErrorKind::Permission,
                    _ => ErrorKind::InvalidRequest,
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
                self.reply(host, &reply);
                AuthStep::Replied
            }
        }
    }

    /// Envoy's `jwt_authn` verified the token: read the payload it put in dynamic metadata.
    fn identity_from_envoy_jwt<H: Host>(&mut self, host: &mut H, cfg: &EnvoyJwtConfig) -> AuthStep {
        let claim = |host: &H, name: &str| -> Option<String> {
            host.property(&[
                "metadata",
                "filter_metadata",
                &cfg.metadata_namespace,
                &cfg.payload_key,
                name,
            ])
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|s| !s.is_empty())
        };
        for (_, header_name) in &cfg.claims_to_headers {
            self.req_headers.remove(host, header_name);
        }
        let user = claim(host, &self.vm.config.jwt_claim);
        if user.is_none() && cfg.required {
            self.count(
                host,
                tagged_name("tollgate_jwt_denied_total", &[("reason", "missing")]),
            );
            let reply = ErrorReply::new(
                401,
                ErrorKind::Authentication,
                "missing",
                "a verified bearer token is required",
            )
            .with_header("www-authenticate", "Bearer realm=\"tollgate\"");
            self.reply(host, &reply);
            return AuthStep::Replied;
        }
        for (claim_name, header_name) in &cfg.claims_to_headers {
            if let Some(value) = claim(host, claim_name) {
                self.req_headers.set(host, header_name, &value);
            }
        }
        if user.is_some() {
            self.count(
                host,
                tagged_name(
                    "tollgate_jwt_allowed_total",
                    &[("provider", "envoy_jwt_authn")],
                ),
            );
        }
        self.user = user;
        self.class = class_claim(&self.vm.config).and_then(|name| claim(host, name));
        self.phase = Phase::Forwarded;
        AuthStep::Proceed
    }

    /// Keys never arrived within the bounded wait: 401 `no_keys_yet` (as a bad token would be).
    fn deny_no_keys<H: Host>(&mut self, host: &mut H) -> AuthStep {
        self.count(
            host,
            tagged_name("tollgate_jwt_denied_total", &[("reason", "no_keys_yet")]),
        );
        let realm = self
            .vm
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
        self.reply(host, &reply);
        AuthStep::Replied
    }

    /// A callout answered that may be this request's key fetch: apply it and authenticate again.
    pub(super) fn on_keys_response<H: Host>(
        &mut self,
        host: &mut H,
        token_id: u32,
        body_size: usize,
    ) {
        let Phase::WaitingForKeys { token, .. } = self.phase else {
            return;
        };
        if token != token_id {
            return;
        }
        if let Some(runtime) = self.vm.jwt.as_ref() {
            if let Ok(mut rt) = runtime.try_borrow_mut() {
                let now = now_ms(host);
                rt.complete(host, token_id, body_size, now);
            }
        }
        self.complete_key_fetch(host, token_id, body_size);
        let step = match self.authenticate(host) {
            // Still pending after our own fetch answered: the bounded wait is over.
            AuthStep::Waiting if matches!(self.phase, Phase::WaitingForKeys { token: t, .. } if t == token_id) => {
                self.deny_no_keys(host)
            }
            other => other,
        };
        if step == AuthStep::Proceed {
            self.path = std::mem::take(&mut self.arrived_path);
            if self.after_auth(host) == Flow::Continue && !host.resume_request() {
                self.log(
                    host,
                    log::Level::Error,
                    "host refused to resume the request",
                );
            }
        }
    }
}

/// The claim naming a caller's class for mesh-wide budgets (`budgets.global.class_claim`).
fn class_claim(config: &crate::config::FilterConfig) -> Option<&str> {
    config
        .budgets
        .as_ref()
        .and_then(|b| b.global.as_ref())
        .and_then(|g| g.class_claim.as_deref())
}

/// A claim's value as text (strings and numbers); dots reach nested claims (`realm.tier`).
fn claim_text(claims: &serde_json::Map<String, serde_json::Value>, name: &str) -> Option<String> {
    let value = match claims.get(name) {
        Some(v) => v,
        None => {
            let mut parts = name.split('.');
            let mut v = claims.get(parts.next()?)?;
            for part in parts {
                v = v.as_object()?.get(part)?;
            }
            v
        }
    };
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
