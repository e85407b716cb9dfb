//! The proxy-wasm adapter: the only code that talks to Envoy, and it decides nothing.
//!
//! [`proxy::ProxyHost`] implements the pipeline's [`Host`](crate::exchange::Host) trait over
//! the raw hostcalls (never the SDK's panicking conveniences, see [`abi`]); the contexts below
//! forward each proxy-wasm hook to exactly one method of the pure pipeline
//! ([`crate::exchange`]) and map its [`Flow`](crate::exchange::Flow) to an `Action`.

mod abi;
mod contexts;
mod proxy;

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    // Route the `log` crate (used by the pure modules) to Envoy's log, and panics to Envoy's log
    // at critical level before the VM aborts.
    let _ = log::set_logger(&proxy::HOST_LOGGER);
    log::set_max_level(log::LevelFilter::Trace);
    std::panic::set_hook(Box::new(|info| {
        let _ = proxy_wasm::hostcalls::log(LogLevel::Critical, &format!("tollgate panic: {info}"));
    }));
    proxy_wasm::set_root_context(|_| Box::new(contexts::Root::default()));
}}
