//! The root context: reads and validates the plugin configuration once per VM and creates one
//! HTTP context per request.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};

use super::auth::JwtRuntime;
use super::http::{TollgateHttp, VmShared};
use super::metrics::CoreMetrics;
use crate::accounting::ModelLabels;
use crate::config::FilterConfig;
use crate::random::IdRng;
use crate::ratelimit_rpc::{decode_response, encode_request, Descriptor, RlsCode};

/// Root context: owns the validated config and the VM's id generator.
pub struct TollgateRoot {
    config: Rc<FilterConfig>,
    /// Seed stream for per-request id generators (a `Cell`: `create_http_context` takes `&self`).
    next_seed: Cell<u64>,
    metrics: CoreMetrics,
    /// Tagged metrics and model labels shared by this VM's HTTP contexts.
    shared: Rc<RefCell<VmShared>>,
    /// JWT keys and cache of this VM, when JWT is configured.
    jwt: Option<Rc<RefCell<JwtRuntime>>>,
}

impl TollgateRoot {
    /// Creates the root context with default config until `on_configure` runs.
    pub fn new(_context_id: u32) -> Self {
        let mut seed = [0u8; 8];
        if getrandom::fill(&mut seed).is_err() {
            seed = super::calls::now_nanos().to_le_bytes();
        }
        Self {
            config: Rc::new(FilterConfig::default()),
            next_seed: Cell::new(u64::from_le_bytes(seed)),
            metrics: CoreMetrics::default(),
            shared: Rc::new(RefCell::new(VmShared::default())),
            jwt: None,
        }
    }
}

impl TollgateRoot {
    /// Sends the queued token charges to the global rate limit service (`ShouldRateLimit` with
    /// `hits_addend` = tokens), one call per finished request.
    fn send_global_charges(&mut self) {
        let Some(global) = self.config.budgets.as_ref().and_then(|b| b.global.clone()) else {
            return;
        };
        let charges = match self.shared.try_borrow_mut() {
            Ok(mut shared) => std::mem::take(&mut shared.pending_charges),
            Err(_) => return,
        };
        for (user, tokens) in charges {
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
            let sent = hostcalls::dispatch_grpc_call(
                &global.cluster,
                crate::ratelimit_rpc::GRPC_SERVICE,
                crate::ratelimit_rpc::GRPC_METHOD,
                vec![],
                Some(&message),
                std::time::Duration::from_millis(global.timeout_ms),
            );
            let outcome = if sent.is_ok() { "sent" } else { "error" };
            self.count_global(outcome);
        }
    }

    fn count_global(&self, outcome: &str) {
        if let Ok(mut shared) = self.shared.try_borrow_mut() {
            shared.metrics.count(
                crate::accounting::tagged_name(
                    "tollgate_global_budget_charges_total",
                    &[("outcome", outcome)],
                ),
                1,
            );
        }
    }
}

impl Context for TollgateRoot {
    fn on_grpc_call_response(&mut self, _token_id: u32, status_code: u32, response_size: usize) {
        if status_code != 0 {
            self.count_global("error");
            return;
        }
        let body = hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, response_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        match decode_response(&body).map(|v| v.overall) {
            Some(RlsCode::OverLimit) => self.count_global("over_limit"),
            Some(_) => self.count_global("ok"),
            None => self.count_global("error"),
        }
    }

    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        if let Some(jwt) = self.jwt.as_ref() {
            if let Ok(mut rt) = jwt.try_borrow_mut() {
                rt.complete(token, body_size, super::calls::now_nanos() / 1_000_000);
            }
        }
    }
}

impl RootContext for TollgateRoot {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        let _ = hostcalls::log(
            LogLevel::Info,
            &format!("tollgate {} VM started", crate::VERSION),
        );
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => Vec::new(),
            Err(status) => {
                let _ = hostcalls::log(
                    LogLevel::Error,
                    &format!(
                        "invalid tollgate config: .: cannot read plugin configuration ({status:?})"
                    ),
                );
                return false;
            }
        };
        match FilterConfig::parse(&bytes) {
            Ok(config) => {
                self.shared = Rc::new(RefCell::new(VmShared {
                    models: ModelLabels::new(config.usage.max_models),
                    ..VmShared::default()
                }));
                let now_ms = super::calls::now_nanos() / 1_000_000;
                self.jwt = config.jwt.as_ref().map(|s| {
                    Rc::new(RefCell::new(JwtRuntime::new(
                        std::sync::Arc::clone(s),
                        now_ms,
                    )))
                });
                let remote = self
                    .jwt
                    .as_ref()
                    .is_some_and(|j| j.try_borrow().is_ok_and(|r| r.has_remote()));
                let global = config.budgets.as_ref().is_some_and(|b| b.global.is_some());
                if remote || global {
                    // Fetch keys right away (from the first tick) and keep them fresh; send
                    // queued mesh-wide charges.
                    let _ = hostcalls::set_tick_period(std::time::Duration::from_millis(250));
                }
                self.config = Rc::new(config);
                self.metrics = CoreMetrics::define();
                let _ = hostcalls::log(LogLevel::Info, "tollgate configured");
                true
            }
            Err(err) => {
                let _ = hostcalls::log(LogLevel::Error, &err.to_string());
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        if self.config.stage == crate::config::Stage::Upstream {
            return Some(Box::new(super::upstream::UpstreamAttempt::new(
                Rc::clone(&self.config),
                Rc::clone(&self.shared),
            )));
        }
        // Each request gets its own generator, seeded from the root's stream.
        let seed = IdRng::new(self.next_seed.get()).next_u64();
        self.next_seed.set(seed);
        Some(Box::new(TollgateHttp::new(
            Rc::clone(&self.config),
            Rc::clone(&self.shared),
            self.jwt.clone(),
            IdRng::new(seed),
            self.metrics,
        )))
    }

    fn on_tick(&mut self) {
        if let Some(jwt) = self.jwt.as_ref() {
            if let Ok(mut rt) = jwt.try_borrow_mut() {
                rt.tick(super::calls::now_nanos() / 1_000_000);
            }
        }
        self.send_global_charges();
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
