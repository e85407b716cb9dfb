//! One VM's state and the root context's decisions: the validated configuration, the core
//! metric handles (defined once), tagged metrics and model labels shared by every request of
//! the VM, the JWT keys, and the mesh-wide charges waiting to be sent. The root context calls
//! [`Vm::configure`] once, [`Vm::tick`] on its timer, and [`Vm::exchange`] per request.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use super::api_keys::KeySetRuntime;
use super::host::{now_ms, Body, GrpcCall, Host};
use super::keys::JwtRuntime;
use super::metrics::{CoreMetrics, MetricRegistry};
use super::upstream::Attempt;
use super::Exchange;
use crate::accounting::{self, ModelLabels, Sample};
use crate::config::{FilterConfig, Stage};
use crate::failover::catalog::{self, Catalog};
use crate::mesh_budget::pending::{PendingCharges, Queued};
use crate::mesh_budget::{encode_charges, Charge};
use crate::ratelimit_rpc::{decode_response, RlsCode};

/// The root context's timer period when it has periodic work (key refresh, charges).
pub const TICK_PERIOD: Duration = Duration::from_millis(250);

/// State shared by every request of a VM.
#[derive(Debug, Default)]
pub struct VmShared {
    /// Tagged metrics defined so far.
    pub metrics: MetricRegistry,
    /// Model labels seen so far.
    pub models: ModelLabels,
    /// Mesh-wide completion charges waiting to be sent, and the failed ones (`budgets.global`).
    pub pending_charges: Option<PendingCharges>,
    /// The callout token of the batch of charges in flight.
    pub charge_call: Option<u32>,
}

/// One VM under one configuration.
pub struct Vm {
    /// The validated configuration.
    pub config: FilterConfig,
    /// The core counters.
    pub metrics: CoreMetrics,
    /// Tagged metrics, model labels, pending charges.
    pub shared: RefCell<VmShared>,
    /// JWT keys and the verified-token cache, when JWT is configured.
    pub jwt: Option<RefCell<JwtRuntime>>,
    /// The virtual API key set, when keys are configured.
    pub api_keys: Option<RefCell<KeySetRuntime>>,
    /// The catalog a listener stage with failover shares with the upstream stage of its VM.
    pub catalog: Option<Rc<Catalog>>,
}

impl Default for Vm {
    fn default() -> Self {
        Self::new(FilterConfig::default(), CoreMetrics::default(), 0)
    }
}

impl Vm {
    /// A VM for `config` (already validated) at `now_ms`.
    pub fn new(config: FilterConfig, metrics: CoreMetrics, now_ms: u64) -> Self {
        let jwt = config
            .jwt
            .as_ref()
            .map(|s| RefCell::new(JwtRuntime::new(std::sync::Arc::clone(s), now_ms)));
        let pending_charges = config
            .budgets
            .as_ref()
            .and_then(|b| b.global.as_ref())
            .map(|g| PendingCharges::new(g.max_pending_charges, g.retry_interval_ms));
        let api_keys = config
            .keys
            .as_ref()
            .map(|k| RefCell::new(KeySetRuntime::new(std::sync::Arc::clone(k), now_ms)));
        let catalog = Catalog::of(&config).map(Rc::new);
        Self {
            api_keys,
            catalog,
            shared: RefCell::new(VmShared {
                models: ModelLabels::new(config.usage.max_models),
                pending_charges,
                ..VmShared::default()
            }),
            config,
            metrics,
            jwt,
        }
    }

    /// Parses and validates the plugin configuration and defines the core metrics; a listener
    /// stage with failover publishes its catalog to the VM. `Err`: the one-line message naming
    /// the failing field.
    pub fn configure<H: Host>(host: &mut H, bytes: &[u8]) -> Result<Self, String> {
        let config = FilterConfig::parse(bytes).map_err(|e| e.to_string())?;
        let metrics = CoreMetrics::define(host);
        let vm = Self::new(config, metrics, now_ms(host));
        if let Some(catalog) = vm.catalog.as_ref() {
            catalog::publish(catalog);
        }
        super::response_cache::initialise_cache(&vm, host);
        Ok(vm)
    }

    /// Whether the root context needs its timer: remote keys to fetch and keep fresh, or
    /// mesh-wide charges to send.
    pub fn needs_tick(&self) -> bool {
        let remote = self
            .jwt
            .as_ref()
            .is_some_and(|j| j.try_borrow().is_ok_and(|r| r.has_remote()));
        let global = self
            .config
            .budgets
            .as_ref()
            .is_some_and(|b| b.global.is_some());
        let remote_keys = self
            .api_keys
            .as_ref()
            .is_some_and(|k| k.try_borrow().is_ok_and(|r| r.has_remote()));
        remote || remote_keys || global
    }

    /// The pipeline of one request of the listener stage.
    pub fn exchange(self: &Rc<Self>) -> Exchange {
        Exchange::new(Rc::clone(self))
    }

    /// The pipeline of one attempt of the upstream stage; `None` in the listener stage.
    pub fn attempt(self: &Rc<Self>) -> Option<Attempt> {
        (self.config.stage == Stage::Upstream).then(|| Attempt::new(Rc::clone(self)))
    }

    /// Periodic work: start the key fetches that are due, send the queued charges.
    pub fn tick<H: Host>(&self, host: &mut H) {
        if let Some(jwt) = self.jwt.as_ref() {
            if let Ok(mut rt) = jwt.try_borrow_mut() {
                let now = now_ms(host);
                rt.tick(host, now);
            }
        }
        if let Some(keys) = self.api_keys.as_ref() {
            if let Ok(mut rt) = keys.try_borrow_mut() {
                let now = now_ms(host);
                rt.tick(host, now);
            }
        }
        self.send_global_charges(host);
    }

    /// A callout the root context started answered (a key fetch).
    pub fn on_callout_response<H: Host>(&self, host: &mut H, token: u32, body_size: usize) {
        if let Some(jwt) = self.jwt.as_ref() {
            if let Ok(mut rt) = jwt.try_borrow_mut() {
                let now = now_ms(host);
                rt.complete(host, token, body_size, now);
            }
        }
        if let Some(keys) = self.api_keys.as_ref() {
            if let Ok(mut rt) = keys.try_borrow_mut() {
                let now = now_ms(host);
                rt.complete(host, token, body_size, now);
            }
        }
    }

    /// A gRPC callout the root context started answered (`status_code` 0: OK): the batch of
    /// mesh-wide charges in flight, applied or back into the queue.
    pub fn on_grpc_response<H: Host>(
        &self,
        host: &mut H,
        token: u32,
        status_code: u32,
        size: usize,
    ) {
        let ours = self
            .shared
            .try_borrow()
            .is_ok_and(|s| s.charge_call == Some(token));
        if !ours {
            return;
        }
        let verdict = (status_code == 0)
            .then(|| decode_response(&host.body(Body::GrpcResponse, size)))
            .flatten()
            .filter(|v| v.overall != RlsCode::Unknown);
        let outcome = match verdict.as_ref().map(|v| v.overall) {
            Some(RlsCode::OverLimit) => "over_limit",
            Some(_) => "ok",
            None => "error",
        };
        let now = now_ms(host);
        let dropped = match self.shared.try_borrow_mut() {
            Ok(mut shared) => {
                shared.charge_call = None;
                match shared.pending_charges.as_mut() {
                    Some(q) if verdict.is_some() => {
                        q.batch_sent();
                        Vec::new()
                    }
                    Some(q) => q.batch_failed(now),
                    None => Vec::new(),
                }
            }
            Err(_) => Vec::new(),
        };
        self.count_global(host, outcome);
        self.count_dropped(host, &dropped);
    }

    /// Sends the next batch of queued mesh-wide charges when one is due (one batch in flight).
    fn send_global_charges<H: Host>(&self, host: &mut H) {
        let Some(global) = self.config.budgets.as_ref().and_then(|b| b.global.as_ref()) else {
            return;
        };
        let now = now_ms(host);
        let batch = match self.shared.try_borrow_mut() {
            Ok(mut shared) => match shared.pending_charges.as_mut() {
                Some(q) if q.due(now) => q.take_batch(),
                _ => return,
            },
            Err(_) => return,
        };
        let message = encode_charges(&global.domain, &batch);
        let token = host.grpc_call(&GrpcCall {
            cluster: &global.cluster,
            service: crate::ratelimit_rpc::GRPC_SERVICE,
            method: crate::ratelimit_rpc::GRPC_METHOD,
            message: &message,
            timeout: Duration::from_millis(global.timeout_ms),
        });
        let dropped = match self.shared.try_borrow_mut() {
            Ok(mut shared) => {
                shared.charge_call = token;
                match (token, shared.pending_charges.as_mut()) {
                    (None, Some(q)) => q.batch_failed(now),
                    _ => Vec::new(),
                }
            }
            Err(_) => Vec::new(),
        };
        self.count_global(host, if token.is_some() { "sent" } else { "error" });
        self.count_dropped(host, &dropped);
    }

    fn count_global<H: Host>(&self, host: &mut H, outcome: &str) {
        self.count(
            host,
            accounting::tagged_name(
                "tollgate_global_budget_charges_total",
                &[("outcome", outcome)],
            ),
            1,
        );
    }

    /// Counts charges the full queue could not keep: the calls (`dropped`) and their hits.
    fn count_dropped<H: Host>(&self, host: &mut H, dropped: &[Queued]) {
        for d in dropped {
            if let Queued::Dropped { measure, hits } = d {
                self.count_global(host, "dropped");
                self.count(
                    host,
                    accounting::tagged_name(
                        "tollgate_global_budget_dropped_hits_total",
                        &[("dimension", measure.dimension())],
                    ),
                    *hits,
                );
            }
        }
    }

    /// Queues a mesh-wide completion charge for the root context to send.
    pub fn queue_charge<H: Host>(&self, host: &mut H, charge: Charge) {
        let queued = match self.shared.try_borrow_mut() {
            Ok(mut shared) => match shared.pending_charges.as_mut() {
                Some(q) => q.push(charge),
                None => return,
            },
            Err(_) => Queued::Dropped {
                measure: charge.measure,
                hits: charge.hits,
            },
        };
        self.count_dropped(host, &[queued]);
    }

    /// Adds `n` to a tagged counter.
    pub fn count<H: Host>(&self, host: &mut H, name: String, n: u64) {
        if let Ok(mut shared) = self.shared.try_borrow_mut() {
            shared.metrics.count(host, name, n);
        }
    }

    /// Records a finished request's samples under its label set.
    pub fn record_request<H: Host>(
        &self,
        host: &mut H,
        labels: &accounting::Labels<'_>,
        samples: &[accounting::RequestSample],
    ) {
        if let Ok(mut shared) = self.shared.try_borrow_mut() {
            shared.metrics.record_request(host, labels, samples);
        }
    }

    /// Records one tagged sample.
    pub fn record<H: Host>(&self, host: &mut H, sample: &Sample) {
        if let Ok(mut shared) = self.shared.try_borrow_mut() {
            shared.metrics.record(host, sample);
        }
    }

    /// The bounded metric label for a model name.
    pub fn model_label(&self, model: &str) -> String {
        match self.shared.try_borrow_mut() {
            Ok(mut shared) => shared.models.label(model),
            Err(_) => "other".to_string(),
        }
    }
}
