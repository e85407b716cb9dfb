//! The upstream stage: tollgate in an aggregate cluster's upstream filter chain, run by Envoy
//! once per retry attempt. Envoy picks the provider (the aggregate cluster's next member, with
//! Envoy's retry back-off and outlier detection); an [`Attempt`] rewrites the request for it —
//! path, key, body translated from the client's OpenAI request — and records how it ended for
//! the circuit, the metrics and the next attempt ([`Carry`]).
//!
//! The provider is named by the endpoint's metadata `filter_metadata.tollgate.provider`; the
//! catalog (providers, keys, model mappings) is the listener stage's, looked up in the VM at
//! each attempt ([`crate::failover::catalog`]). Without one the attempt answers a JSON error.

use std::rc::Rc;

use super::attempts::record_attempt;
use super::host::{now_ms, Body, Host, Map};
use super::vm::Vm;
use super::Flow;
use crate::error_reply::{ErrorKind, ErrorReply};
use crate::failover::carry::{Carry, CARRY_HEADER, PROVIDER_HEADER};
use crate::failover::catalog::{self, Catalog, CatalogError, STAGE_ERROR_HEADER};
use crate::failover::{self, ProviderKind};
use crate::routing::{self, CLIENT_CREDENTIAL_HEADERS};
use crate::usage::{classify_path, ensure_include_usage, ApiKind, RequestInfo};

/// The endpoint metadata path naming an attempt's provider.
pub const PROVIDER_METADATA: [&str; 5] = [
    "xds",
    "upstream_host_metadata",
    "filter_metadata",
    "tollgate",
    "provider",
];

/// One attempt of one request.
pub struct Attempt {
    vm: Rc<Vm>,
    /// The listener stage's catalog, resolved when the attempt starts.
    catalog: Option<Rc<Catalog>>,
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

impl Attempt {
    /// Creates the pipeline of one attempt.
    pub fn new(vm: Rc<Vm>) -> Self {
        Self {
            vm,
            catalog: None,
            request_id: String::new(),
            provider: None,
            carry: Carry::default(),
            started_ns: 0,
            rewriting_body: false,
            recorded: false,
        }
    }

    fn log<H: Host>(&self, host: &H, level: log::Level, message: &str) {
        host.log(level, &format!("tollgate [{}] {message}", self.request_id));
    }

    /// Notes the attempt's end and hands the carry to the next attempt.
    fn note<H: Host>(&mut self, host: &mut H, result: &str) {
        let name = self
            .provider
            .and_then(|i| self.catalog.as_ref()?.failover.providers.get(i))
            .map_or_else(|| "?".to_string(), |p| p.name.clone());
        let elapsed = host.now_ns().saturating_sub(self.started_ns) / 1_000_000;
        self.carry.push(&name, result, elapsed);
        self.recorded = true;
        host.set_header(Map::Request, CARRY_HEADER, &self.carry.encode());
    }

    /// Removes client credentials and earlier attempts' keys, then sets this provider's key.
    fn set_key<H: Host>(&self, host: &mut H, index: usize, kind: ProviderKind) {
        for name in CLIENT_CREDENTIAL_HEADERS {
            host.remove_header(Map::Request, name);
        }
        let key = self
            .catalog
            .as_ref()
            .and_then(|c| c.provider_keys.get(index));
        if let Some(Some(key)) = key {
            let (name, prefix) = routing::key_header(kind);
            host.set_header(Map::Request, name, &format!("{prefix}{key}"));
        }
    }

    /// The attempt's request headers.
    pub fn on_request_headers<H: Host>(&mut self, host: &mut H, end_of_stream: bool) -> Flow {
        self.started_ns = host.now_ns();
        let resolved = catalog::resolve(self.vm.config.failover_name.as_deref());
        let id_header = resolved
            .as_ref()
            .map_or(&self.vm.config.correlation.request_id_header, |c| {
                &c.request_id_header
            });
        self.request_id = host.header(Map::Request, id_header).unwrap_or_default();
        let catalog = match resolved {
            Ok(catalog) => catalog,
            Err(e) => return self.refuse(host, &e),
        };
        self.catalog = Some(Rc::clone(&catalog));
        // Envoy keeps header edits across attempts: the first attempt saves the client's path.
        self.carry = host
            .header(Map::Request, CARRY_HEADER)
            .and_then(|v| Carry::decode(&v))
            .unwrap_or_else(|| Carry::new(&host.header(Map::Request, ":path").unwrap_or_default()));
        host.remove_header(Map::Request, CARRY_HEADER);
        let failover = &catalog.failover;
        let name = host
            .property(&PROVIDER_METADATA)
            .and_then(|b| String::from_utf8(b).ok());
        let Some((index, provider)) = name.as_deref().and_then(|n| {
            let i = failover.provider_index(n)?;
            Some((i, failover.providers.get(i)?))
        }) else {
            self.log(
                host,
                log::Level::Warn,
                "attempt to a host without a known tollgate.provider endpoint metadata: passed through",
            );
            // Keep the carry for later attempts even though this one is not ours.
            host.set_header(Map::Request, CARRY_HEADER, &self.carry.encode());
            self.recorded = true;
            return Flow::Continue;
        };
        self.provider = Some(index);
        // The downstream stage only lets Envoy walk when every provider may be tried; this claims
        // the half-open probe when one is due. A circuit that opened meanwhile cannot be honoured
        // here: resetting the attempt from a filter resets the whole request on Envoy 1.40.
        let now = now_ms(host);
        if let Err(reason) = failover::attempt_allowed(&*host, provider, now) {
            self.log(
                host,
                log::Level::Debug,
                &format!(
                    "provider {} is {} but Envoy chose it",
                    provider.name,
                    reason.label()
                ),
            );
        }
        self.set_key(host, index, provider.kind);
        let chat = classify_path(&self.carry.original_path) == Some(ApiKind::OpenAiChat);
        if chat && !end_of_stream {
            self.rewriting_body = true;
            host.remove_header(Map::Request, "content-length");
            return Flow::Pause;
        }
        Flow::Continue
    }

    /// Answers the attempt with a JSON error when there is no catalog: a configuration error,
    /// logged with the reason; the listener stage passes the reply on as it is.
    fn refuse<H: Host>(&mut self, host: &mut H, error: &CatalogError) -> Flow {
        self.recorded = true;
        self.log(
            host,
            log::Level::Error,
            &format!("upstream stage without a catalog: {error}"),
        );
        let reply = ErrorReply::new(
            500,
            ErrorKind::Internal,
            error.code(),
            "tollgate is misconfigured: its upstream stage has no provider catalog from a listener \
             stage (the log names the cause)",
        )
        .with_header(STAGE_ERROR_HEADER, error.code());
        let headers = reply.all_headers(
            &self.vm.config.correlation.request_id_header,
            &self.request_id,
        );
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if !host.send_reply(reply.status, &refs, &reply.body(&self.request_id)) {
            self.log(host, log::Level::Error, "host refused the local reply");
        }
        Flow::Replied
    }

    /// A chunk of the attempt's request body (Envoy replays the client's body each attempt).
    pub fn on_request_body<H: Host>(
        &mut self,
        host: &mut H,
        body_size: usize,
        end_of_stream: bool,
    ) -> Flow {
        if !self.rewriting_body {
            return Flow::Continue;
        }
        if !end_of_stream {
            return Flow::Pause;
        }
        self.rewriting_body = false;
        self.rewrite_body(host, body_size);
        Flow::Continue
    }

    /// Rewrites the held OpenAI chat request for the provider.
    fn rewrite_body<H: Host>(&mut self, host: &mut H, body_size: usize) {
        let (Some(index), Some(catalog)) = (self.provider, self.catalog.clone()) else {
            return;
        };
        let Some(provider) = catalog.failover.providers.get(index) else {
            return;
        };
        let mut body = host.body(Body::Request, body_size);
        let info = RequestInfo::from_request(ApiKind::OpenAiChat, &self.carry.original_path, &body);
        let client_model = info.model.clone().unwrap_or_default();
        let openai_kind = matches!(
            provider.kind,
            ProviderKind::Openai | ProviderKind::OpenaiCompatible
        );
        // Same rule as the listener stage, which strips the injected chunk again.
        if openai_kind
            && catalog
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
                    host,
                    log::Level::Info,
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
        host.remove_header(Map::Request, "anthropic-version");
        for (name, value) in &req.headers {
            host.set_header(Map::Request, name, value);
        }
        host.set_header(Map::Request, ":path", &req.path);
        if let Some(authority) = req.authority.as_deref() {
            host.set_header(Map::Request, ":authority", authority);
        }
        if host.replace_body(Body::Request, body_size, &req.body) {
            host.set_header(Map::Request, "content-length", &req.body.len().to_string());
        } else {
            self.log(
                host,
                log::Level::Warn,
                "host refused the attempt's body rewrite",
            );
        }
    }

    /// The attempt's response headers: record the answer, name the provider to the listener.
    pub fn on_response_headers<H: Host>(&mut self, host: &mut H) -> Flow {
        let vm = Rc::clone(&self.vm);
        let (Some(index), Some(catalog)) = (self.provider, self.catalog.clone()) else {
            return Flow::Continue;
        };
        let Some(provider) = catalog.failover.providers.get(index) else {
            return Flow::Continue;
        };
        let status = host
            .header(Map::Response, ":status")
            .and_then(|s| s.parse().ok());
        let now = now_ms(host);
        let outcome = record_attempt(
            &vm,
            host,
            &self.request_id,
            provider,
            status,
            Map::Response,
            now,
        );
        if matches!(outcome, failover::Outcome::Retryable(_)) {
            vm.count(
                host,
                failover::metrics::failovers_metric(&provider.name, outcome.label()),
                1,
            );
        }
        if status == Some(429) {
            // Envoy's retry policy moves on for `5xx`; a route-wide `retriable-status-codes: 429`
            // would also retry a rate-limited provider that tollgate routed to directly. The
            // carry keeps the real status for the all-failed reply.
            host.set_header(Map::Response, ":status", "503");
        }
        let result = status.map_or_else(|| "no status".to_string(), |s| s.to_string());
        self.note(host, &result);
        host.set_header(Map::Response, PROVIDER_HEADER, &provider.name);
        host.set_header(Map::Response, CARRY_HEADER, &self.carry.encode());
        Flow::Continue
    }

    /// The attempt is over. Reset, timed out or cancelled before any response: Envoy's retry
    /// policy decides what follows; the circuit and the next attempt learn that this one got
    /// no answer.
    pub fn on_done<H: Host>(&mut self, host: &mut H) {
        if self.recorded {
            return;
        }
        let vm = Rc::clone(&self.vm);
        if let (Some(index), Some(catalog)) = (self.provider, self.catalog.clone()) {
            if let Some(provider) = catalog.failover.providers.get(index) {
                let now = now_ms(host);
                record_attempt(
                    &vm,
                    host,
                    &self.request_id,
                    provider,
                    None,
                    Map::Response,
                    now,
                );
                vm.count(
                    host,
                    failover::metrics::failovers_metric(&provider.name, "no_response"),
                    1,
                );
            }
            self.note(host, "no_response");
        }
    }
}
