//! The proxy-wasm layer: the only code that talks to Envoy.
//!
//! It owns the VM entry point, the root context (configuration, shared state, metrics) and the
//! per-request HTTP context. It moves headers and bodies between Envoy and the pure modules and
//! makes no decisions of its own. Every host call goes through `proxy_wasm::hostcalls` with its
//! `Result` handled, never through the SDK's panicking trait conveniences.

mod abi;
mod attempts;
mod auth;
mod calls;
mod http;
mod metrics;
mod root;
mod store;
mod upstream;

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    // Route the `log` crate (used by the pure modules) to Envoy's log, and panics to Envoy's log
    // at critical level before the VM aborts.
    let _ = log::set_logger(&calls::HOST_LOGGER);
    log::set_max_level(log::LevelFilter::Trace);
    std::panic::set_hook(Box::new(|info| {
        let _ = proxy_wasm::hostcalls::log(LogLevel::Critical, &format!("tollgate panic: {info}"));
    }));
    proxy_wasm::set_root_context(|context_id| Box::new(root::TollgateRoot::new(context_id)));
}}
