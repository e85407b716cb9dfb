//! A proxy-wasm host on wasmtime that loads the real `tollgate.wasm` and drives it through the
//! ABI the Rust SDK uses, so tests exercise the module exactly as Envoy would load it.
//!
//! The emulator keeps all state in the wasmtime `Store` (tests run in parallel); state meant to
//! be shared between VMs, as Envoy shares it between worker threads (shared data, metrics), lives
//! in a [`SharedHost`] that several [`Vm`]s can hold. Every `env` import the SDK declares is
//! linked; the ones a test cannot meaningfully use trap with their name.
//!
//! Layout:
//! - [`state`]: what the host keeps and records ([`HostState`], [`StreamState`],
//!   [`SharedHost`], [`HostCalls`], …);
//! - `imports`: one module per import family (logging and time, buffers, header maps,
//!   properties, shared data, stream control, HTTP callouts, gRPC, metrics, WASI), each
//!   registered with [`link!`] so every call is counted;
//! - [`util`]: guest-memory helpers and the header-map wire format, shared by the families;
//! - [`Vm`] (in `vm`): loads the module and calls its exports as Envoy does.
//!
//! Typical use:
//! ```no_run
//! use tollgate_host_tests::Vm;
//! let mut vm = Vm::load().unwrap();
//! assert!(vm.configure(r#"{}"#).unwrap());
//! let ctx = vm.new_http();
//! vm.request_headers(ctx, &[(":path", "/v1/chat/completions")], false).unwrap();
//! ```

pub mod util;

mod imports;
pub mod state;
mod vm;

pub use state::{
    status, Action, GrpcCall, Headers, HostCalls, HostState, HttpCall, LocalReply, MapKind, Metric,
    SharedHost, SharedState, StreamState,
};
pub use util::{deserialize_map, serialize_map};
pub use vm::{wasm_path, Vm, ROOT_CONTEXT_ID};
