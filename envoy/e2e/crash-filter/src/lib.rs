//! A filter that kills its own VM: a request carrying `x-crash` makes `on_http_request_headers`
//! execute a wasm `unreachable` (a trap, exactly what a Rust panic becomes under
//! `panic = "abort"`). Every response it sees gets `x-crash-filter: alive`, so a test can tell
//! whether the filter still ran. Used only by `envoy/e2e/tests/fail_open.rs`.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(CrashRoot) });
}}

struct CrashRoot;

impl Context for CrashRoot {}

impl RootContext for CrashRoot {
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(CrashRequest))
    }
}

struct CrashRequest;

impl Context for CrashRequest {}

impl HttpContext for CrashRequest {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        if let Ok(Some(_)) = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, "x-crash")
        {
            core::arch::wasm32::unreachable();
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let _ = hostcalls::set_map_value(
            MapType::HttpResponseHeaders,
            "x-crash-filter",
            Some("alive"),
        );
        Action::Continue
    }
}
