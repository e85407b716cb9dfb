//! The proxy-wasm contexts: the root context (one per VM) and the two per-request contexts
//! (listener stage and upstream attempt). Each hook makes a [`ProxyHost`] and calls one method
//! of the pure pipeline.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel};

use super::proxy::{set_tick, ProxyHost};
use crate::exchange::upstream::Attempt;
use crate::exchange::vm::TICK_PERIOD;
use crate::exchange::{Exchange, Flow, Vm};

fn action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Pause | Flow::Replied => Action::Pause,
    }
}

/// The root context: holds the VM under its current configuration.
#[derive(Default)]
pub struct Root {
    vm: Rc<Vm>,
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        self.vm
            .on_callout_response(&mut ProxyHost, token, body_size);
    }

    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        self.vm
            .on_grpc_response(&mut ProxyHost, token_id, status_code, response_size);
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        let _ = proxy_wasm::hostcalls::log(
            LogLevel::Info,
            &format!("tollgate {} VM started", crate::VERSION),
        );
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes =
            match proxy_wasm::hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            {
                Ok(bytes) => bytes.unwrap_or_default(),
                Err(status) => {
                    let _ = proxy_wasm::hostcalls::log(
                        LogLevel::Error,
                        &format!(
                        "invalid tollgate config: .: cannot read plugin configuration ({status:?})"
                    ),
                    );
                    return false;
                }
            };
        match Vm::configure(&mut ProxyHost, &bytes) {
            Ok(vm) => {
                if vm.needs_tick() {
                    // Fetch keys right away (from the first tick) and keep them fresh; send
                    // queued mesh-wide charges.
                    set_tick(TICK_PERIOD);
                }
                self.vm = Rc::new(vm);
                let _ = proxy_wasm::hostcalls::log(LogLevel::Info, "tollgate configured");
                true
            }
            Err(message) => {
                let _ = proxy_wasm::hostcalls::log(LogLevel::Error, &message);
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        match self.vm.attempt() {
            Some(attempt) => Some(Box::new(UpstreamContext(attempt))),
            None => Some(Box::new(ListenerContext(self.vm.exchange()))),
        }
    }

    fn on_tick(&mut self) {
        self.vm.tick(&mut ProxyHost);
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One request in the listener stage.
struct ListenerContext(Exchange);

impl Context for ListenerContext {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        self.0.on_callout_response(&mut ProxyHost, token, body_size);
    }

    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        self.0
            .on_grpc_response(&mut ProxyHost, token_id, status_code, response_size);
    }
}

impl HttpContext for ListenerContext {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        action(self.0.on_request_headers(&mut ProxyHost, end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(
            self.0
                .on_request_body(&mut ProxyHost, body_size, end_of_stream),
        )
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        action(self.0.on_response_headers(&mut ProxyHost, end_of_stream))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(
            self.0
                .on_response_body(&mut ProxyHost, body_size, end_of_stream),
        )
    }

    fn on_log(&mut self) {
        self.0.on_log(&mut ProxyHost);
    }
}

/// One Envoy retry attempt in the upstream stage.
struct UpstreamContext(Attempt);

impl Context for UpstreamContext {
    fn on_done(&mut self) -> bool {
        self.0.on_done(&mut ProxyHost);
        true
    }
}

impl HttpContext for UpstreamContext {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        action(self.0.on_request_headers(&mut ProxyHost, end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(
            self.0
                .on_request_body(&mut ProxyHost, body_size, end_of_stream),
        )
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        action(self.0.on_response_headers(&mut ProxyHost))
    }
}
