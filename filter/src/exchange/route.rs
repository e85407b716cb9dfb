//! Routing: which design serves the request (Envoy walks an aggregate cluster, or tollgate picks
//! the provider itself), the rewrite of the request for the provider tollgate picked, and, for a
//! walked route, learning from the response which provider answered.

use super::failover::{ClientRequest, Held, OwnFailover, Replacement};
use super::host::{now_ms, Host, Map};
use super::{replies, ActiveRoute, Exchange, Flow, WalkedRoute};
use crate::error_reply::{ErrorKind, ErrorReply};
use crate::failover::carry::{Carry, CARRY_HEADER, PROVIDER_HEADER};
use crate::failover::catalog::STAGE_ERROR_HEADER;
use crate::failover::{self, FailoverSettings, NextStep};
use crate::routing::{self, CLIENT_CREDENTIAL_HEADERS, CLUSTER_HEADER};
use crate::translate::SourceFormat;
use crate::usage::{ApiKind, RequestInfo};

/// The API kind whose wire format a provider answering in `format` uses.
pub fn api_kind_answering_in(format: Option<SourceFormat>) -> ApiKind {
    match format {
        None => ApiKind::OpenAiChat,
        Some(SourceFormat::Anthropic) => ApiKind::Anthropic,
        Some(SourceFormat::Gemini) => ApiKind::Gemini,
    }
}

impl Exchange {
    /// Picks the first healthy provider for the request's model, rewrites the request for it
    /// (path, body, key, cluster) and returns the new body. `Ok(None)`: no route for this model
    /// (the request goes where Envoy's route sends it) or Envoy walks the route. `Err`: a local
    /// reply was sent.
    pub(super) fn route_request<H: Host>(
        &mut self,
        host: &mut H,
        failover: &FailoverSettings,
        info: &RequestInfo,
        body: &[u8],
    ) -> Result<Option<Vec<u8>>, Flow> {
        let model = info.model.clone().unwrap_or_default();
        let now_ms = now_ms(host);
        // A route with an aggregate cluster is walked by Envoy while every provider may be tried
        // (each attempt claims its own probe upstream); once tollgate's circuit or a back-off
        // window rules one out, tollgate routes the request itself so that provider gets no
        // traffic (an upstream filter cannot skip the host Envoy picked without resetting the
        // whole request).
        let walk_cluster = failover.envoy_cluster_for(&model).filter(|_| {
            failover::peek(failover, &model, now_ms, &*host).is_some_and(|p| p.skipped.is_empty())
        });
        if let Some(cluster) = walk_cluster {
            host.set_header(Map::Request, CLUSTER_HEADER, cluster);
            self.clear_route_cache(host);
            self.walk = Some(WalkedRoute {
                client_model: model.clone(),
                stream: info.streaming,
                include_usage: info.include_usage_requested,
                request: ClientRequest {
                    body: body.to_vec(),
                    streaming: info.streaming,
                    include_usage: info.include_usage_requested,
                    model,
                },
            });
            return Ok(None);
        }
        let Some(plan) = failover::plan(failover, &model, now_ms, &*host) else {
            return Ok(None);
        };
        if plan.attempts.is_empty() {
            let reply = replies::unavailable_reply(&plan, &model, now_ms);
            return Err(self.reply(host, &reply));
        }
        let mut own = OwnFailover::new(
            failover,
            &plan,
            now_ms,
            ClientRequest {
                body: body.to_vec(),
                streaming: info.streaming,
                include_usage: info.include_usage_requested,
                model: model.clone(),
            },
        );
        loop {
            let rand = host.random_u64();
            let attempt = match own.tracker.next_attempt(failover, &*host, now_ms, rand) {
                NextStep::Attempt(attempt) => attempt,
                NextStep::Stop(_) => {
                    // Nothing could be sent: the client's request fits no provider, or every
                    // provider was ruled out meanwhile.
                    let reply = match own.untranslatable.first() {
                        Some(e) => ErrorReply::new(
                            400,
                            ErrorKind::InvalidRequest,
                            &e.code,
                            e.message.clone(),
                        ),
                        None => {
                            let left = failover::Plan {
                                attempts: Vec::new(),
                                skipped: own.tracker.skipped().to_vec(),
                            };
                            replies::unavailable_reply(&left, &model, now_ms)
                        }
                    };
                    return Err(self.reply(host, &reply));
                }
            };
            let Some(provider) = failover.providers.get(attempt.index) else {
                own.tracker.abandon_current("unknown_provider");
                continue;
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
                    own.not_translatable(&provider.name, e.code(), e.message());
                    own.tracker.abandon_current("not_translatable");
                    continue;
                }
            };
            for name in CLIENT_CREDENTIAL_HEADERS {
                host.remove_header(Map::Request, name);
            }
            if let Some(Some(key)) = self.vm.config.provider_keys.get(attempt.index) {
                let (name, prefix) = req.key_header;
                host.set_header(Map::Request, name, &format!("{prefix}{key}"));
            }
            for (name, value) in &req.headers {
                host.set_header(Map::Request, name, value);
            }
            host.set_header(Map::Request, ":path", &req.path);
            if let Some(authority) = req.authority.as_deref() {
                host.set_header(Map::Request, ":authority", authority);
            }
            host.set_header(Map::Request, CLUSTER_HEADER, &req.cluster);
            self.clear_route_cache(host);
            self.upstream_path = Some(req.path.clone());
            self.log(
                host,
                log::Level::Debug,
                &format!("routed model {model:?} to provider {}", provider.name),
            );
            self.own = Some(own);
            self.adopt_route(attempt.index, &provider.name, &req, model);
            return Ok(Some(req.body));
        }
    }

    /// Envoy 1.40 no longer re-routes when a wasm filter edits headers: asks for it.
    fn clear_route_cache<H: Host>(&self, host: &mut H) {
        if !host.clear_route_cache() {
            self.log(
                host,
                log::Level::Warn,
                "clear_route_cache is unavailable: the route may not follow the provider",
            );
        }
    }

    /// Envoy stopped walking with providers of the route never tried (its retry circuit breaker
    /// overflowed, or its retries ran out): tollgate sends the request to the next healthy one
    /// itself, as it does for routes it routes. False when no untried provider can be tried.
    fn take_over_walk<H: Host>(
        &mut self,
        host: &mut H,
        failover: &FailoverSettings,
        walk: &WalkedRoute,
        carry: &Carry,
    ) -> bool {
        let now_ms = now_ms(host);
        let Some(mut plan) = failover::plan(failover, &walk.client_model, now_ms, &*host) else {
            return false;
        };
        plan.attempts
            .retain(|a| !carry.notes.iter().any(|n| n.provider == a.name));
        if plan.attempts.is_empty() {
            return false;
        }
        let mut own = OwnFailover::new(failover, &plan, now_ms, walk.request.clone());
        own.tracker.add_earlier(replies::carry_summaries(carry));
        self.log(
            host,
            log::Level::Warn,
            &format!(
                "Envoy stopped after {} attempt(s) with providers left untried: tollgate tries them",
                carry.notes.len()
            ),
        );
        self.walk = None;
        self.own = Some(own);
        self.held = Some(Held::default());
        if self.start_next_attempt(host, failover) {
            return true;
        }
        self.held = None;
        self.own = None;
        false
    }

    /// Makes `req` (for provider `index`) the request's route: what to translate back from and
    /// which API the usage tracker reads.
    pub(super) fn adopt_route(
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

    /// For a walked route: learns from the response which provider answered (named by the
    /// upstream stage) and prepares translation and usage for it; a failed final answer is
    /// replaced by the all-failed summary. `Some`: the response is answered or held.
    pub(super) fn adopt_walked_provider<H: Host>(
        &mut self,
        host: &mut H,
        end_of_stream: bool,
    ) -> Option<Flow> {
        let walk = self.walk.clone()?;
        if host.header(Map::Response, STAGE_ERROR_HEADER).is_some() {
            // The upstream stage's own error (no catalog): a misconfiguration, not a provider
            // failure to walk past; the client gets it as it is.
            host.remove_header(Map::Response, STAGE_ERROR_HEADER);
            return None;
        }
        let vm = std::rc::Rc::clone(&self.vm);
        let failover = vm.config.failover.as_ref()?;
        let answered = host.header(Map::Response, PROVIDER_HEADER);
        let carried = [Map::Response, Map::Request]
            .into_iter()
            .filter_map(|map| {
                host.header(map, CARRY_HEADER)
                    .and_then(|v| Carry::decode(&v))
            })
            .max_by_key(|c| c.notes.len());
        host.remove_header(Map::Response, PROVIDER_HEADER);
        host.remove_header(Map::Response, CARRY_HEADER);
        let status = u16::try_from(self.response.status).ok();
        let failed = matches!(
            failover::classify(status, false, status.is_none()),
            failover::Outcome::Retryable(_)
        );
        if failed {
            let mut carry = carried.unwrap_or_default();
            if carry.notes.is_empty() {
                carry.push("the last provider", &self.response.status.to_string(), 0);
            }
            if !end_of_stream && self.take_over_walk(host, failover, &walk, &carry) {
                return Some(Flow::Pause);
            }
            let failed = failover::all_failed_reply(&replies::carry_summaries(&carry));
            let reply = replies::all_failed_reply(&failed);
            if end_of_stream {
                return Some(self.reply(host, &reply));
            }
            self.held = Some(Held {
                callout: None,
                body_size: None,
                replacement: Some(Replacement::error(&reply, &self.request_id)),
            });
            return Some(Flow::Pause);
        }
        let index = answered
            .as_deref()
            .and_then(|n| failover.provider_index(n))?;
        let provider = failover.providers.get(index)?;
        let translate_from = routing::response_format(provider.kind);
        self.api = Some(api_kind_answering_in(translate_from));
        // The upstream stage injected include_usage for an OpenAI-kind provider by the same rule.
        self.injected_usage = translate_from.is_none()
            && vm
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
}
