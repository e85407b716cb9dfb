//! One VM's state and the root context's decisions: the validated configuration, the core
//! metric handles (defined once), tagged metrics and model labels shared by every request of
//! the VM, the JWT keys, and the mesh-wide charges waiting to be sent. The root context calls
//! [`Vm::configure`] once, [`Vm::tick`] on its timer, and [`Vm::exchange`] per request.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use super::host::{now_ms, Body, GrpcCall, Host};
use super::keys::JwtRuntime;
use super::metrics::{CoreMetrics, MetricRegistry};
use super::upstream::Attempt;
use super::Exchange;
use crate::accounting::{self, ModelLabels, Sample};
use crate::config::{FilterConfig, Stage};
use crate::ratelimit_rpc::{decode_response, encode_request, Descriptor, RlsCode};

/// Most charges queued between two ticks; beyond it charges are dropped (and counted).
pub const MAX_PENDING_CHARGES: usize = 10_000;

/// The root context's timer period when it has periodic work (key refresh, charges).
pub const TICK_PERIOD: Duration = Duration::from_millis(250);

/// Tokens to charge a caller against the mesh-wide budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The caller.
    pub user: String,
    /// Tokens used.
    pub tokens: u64,
}

/// State shared by every request of a VM.
#[derive(Debug, Default)]
pub struct VmShared {
    /// Tagged metrics defined so far.
    pub metrics: MetricRegistry,
    /// Model labels seen so far.
    pub models: ModelLabels,
    /// Charges waiting for the next tick.
    pub pending_charges: Vec<Charge>,
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
        Self {
            shared: RefCell::new(VmShared {
                models: ModelLabels::new(config.usage.max_models),
                ..VmShared::default()
            }),
            config,
            metrics,
            jwt,
        }
    }

    /// Parses and validates the plugin configuration and defines the core metrics. `Err`: the
    /// one-line message naming the failing field.
    pub fn configure<H: Host>(host: &mut H, bytes: &[u8]) -> Result<Self, String> {
        let config = FilterConfig::parse(bytes).map_err(|e| e.to_string())?;
        let metrics = CoreMetrics::define(host);
        Ok(Self::new(config, metrics, now_ms(host)))
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
        remote || global
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
    }

    /// A mesh-wide charge's answer from the rate limit service (`status_code` 0: OK).
    pub fn on_grpc_response<H: Host>(&self, host: &mut H, status_code: u32, size: usize) {
        if status_code != 0 {
            self.count_global(host, "error");
            return;
        }
        let body = host.body(Body::GrpcResponse, size);
        match decode_response(&body).map(|v| v.overall) {
            Some(RlsCode::OverLimit) => self.count_global(host, "over_limit"),
            Some(_) => self.count_global(host, "ok"),
            None => self.count_global(host, "error"),
        }
    }

    /// Sends the queued token charges to the global rate limit service (`ShouldRateLimit` with
    /// `hits_addend` = tokens), one call per finished request.
    fn send_global_charges<H: Host>(&self, host: &mut H) {
        let Some(global) = self.config.budgets.as_ref().and_then(|b| b.global.as_ref()) else {
            return;
        };
        let charges = match self.shared.try_borrow_mut() {
            Ok(mut shared) => std::mem::take(&mut shared.pending_charges),
            Err(_) => return,
        };
        for Charge { user, tokens } in charges {
            let descriptor = Descriptor {
                entries: vec![(global.descriptor_key.clone(), user)],
                hits_addend: Some(tokens),
            };
            // Newer rate limit services read the descriptor's hits_addend; older ones only the
            // request's: set both.
            let message = encode_request(
                &global.domain,
                &[descriptor],
                u32::try_from(tokens).unwrap_or(u32::MAX),
            );
            let sent = host.grpc_call(&GrpcCall {
                cluster: &global.cluster,
                service: crate::ratelimit_rpc::GRPC_SERVICE,
                method: crate::ratelimit_rpc::GRPC_METHOD,
                message: &message,
                timeout: Duration::from_millis(global.timeout_ms),
            });
            let outcome = if sent.is_some() { "sent" } else { "error" };
            self.count_global(host, outcome);
        }
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

    /// Queues a mesh-wide charge for the next tick (dropped and counted past the bound).
    pub fn queue_charge<H: Host>(&self, host: &mut H, charge: Charge) {
        let queued = match self.shared.try_borrow_mut() {
            Ok(mut shared) if shared.pending_charges.len() < MAX_PENDING_CHARGES => {
                shared.pending_charges.push(charge);
                true
            }
            _ => false,
        };
        if !queued {
            self.count_global(host, "dropped");
        }
    }

    /// Adds `n` to a tagged counter.
    pub fn count<H: Host>(&self, host: &mut H, name: String, n: u64) {
        if let Ok(mut shared) = self.shared.try_borrow_mut() {
            shared.metrics.count(host, name, n);
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
