//! tollgate: a proxy-wasm filter that makes LLM traffic through Envoy production-ready.
//!
//! The crate has two halves. The pure modules below (`config`, `correlation`, `error_reply`,
//! `random`) hold every decision and never touch the proxy-wasm host; they compile natively and
//! are unit-tested and benchmarked there. The `host` module, compiled only for `wasm32`, is the
//! thin proxy-wasm layer that moves headers and bodies between Envoy and that logic.

// Tests may unwrap and index; production code is linted without this allowance.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

pub mod accounting;
pub mod budget;
pub mod cache;
pub mod config;
pub mod correlation;
pub mod error_reply;
pub mod exchange;
pub mod failover;
pub mod guardrails;
pub mod identity;
pub mod json_build;
pub mod json_object;
pub mod jwt;
pub mod keys;
pub mod masking;
pub mod mesh_budget;
pub mod profile;
pub mod random;
pub mod ratelimit_rpc;
pub mod refresh;
pub mod routing;
pub mod shared_store;
pub mod sse;
pub mod status;
pub mod translate;
pub mod usage;
pub mod vec_map;

#[cfg(target_arch = "wasm32")]
mod host;

// A panic must abort the VM, never unwind through the host: `wasm32-wasip1` aborts by default
// and the workspace's release profile must not change that (see the root `Cargo.toml`).
#[cfg(all(target_arch = "wasm32", not(panic = "abort")))]
compile_error!("tollgate.wasm must be built with panic = \"abort\"");

/// The crate version, reported in the VM start banner and the status endpoint.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
