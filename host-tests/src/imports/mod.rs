//! Every import tollgate's module may call, one file per family of the proxy-wasm ABI (see
//! `/work/shared/reference/proxy-wasm-abi.md`): what each import reads from and writes to
//! [`HostState`](crate::HostState), with Envoy's semantics where tests depend on them.
//!
//! Each import is registered with [`link!`](crate::link), which counts its calls in
//! [`HostState::host_calls`](crate::HostState::host_calls). Imports the SDK declares but no
//! family links (for example the shared queues) are defined by the [`crate::Vm`] loader as traps
//! that name the import, so a test fails loudly instead of the module seeing a fake success.

use wasmtime::Linker;

use crate::state::HostState;

mod buffers;
mod grpc;
mod headers;
mod http_calls;
mod logging;
mod metrics;
mod properties;
mod shared_data;
mod stream;
mod wasi;

/// The proxy-wasm import module.
const ENV: &str = "env";

/// Links every family's imports.
pub(crate) fn link_all(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    logging::link(linker)?;
    buffers::link(linker)?;
    headers::link(linker)?;
    properties::link(linker)?;
    shared_data::link(linker)?;
    stream::link(linker)?;
    http_calls::link(linker)?;
    grpc::link(linker)?;
    metrics::link(linker)?;
    wasi::link(linker)?;
    Ok(())
}
