//! Body and configuration buffers: `proxy_get_buffer_bytes` reads the request or response body
//! of the current stream, a callout's response body, a gRPC message, or the VM / plugin
//! configuration; `proxy_set_buffer_bytes` replaces a range of a body, as Envoy does.

use wasmtime::Linker;

use super::ENV;
use crate::link;
use crate::state::{status, HostState};
use crate::util::{read_bytes, return_bytes};

pub(super) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link!(
        linker,
        ENV,
        "proxy_get_buffer_bytes",
        |c, kind: i32, start: i32, max: i32, ret_ptr: i32, ret_size: i32| {
            let data = {
                let st = c.data_mut();
                match kind {
                    0 => st.stream().request_body.clone(),
                    1 => st.stream().response_body.clone(),
                    4 => st.call_response.1.clone(),
                    5 => st.grpc_receive.clone(),
                    6 => st.vm_config.clone(),
                    7 => st.plugin_config.clone(),
                    _ => return Ok(status::NOT_FOUND),
                }
            };
            let start = (start as u32 as usize).min(data.len());
            let end = start.saturating_add(max as u32 as usize).min(data.len());
            if data.is_empty() {
                return Ok(status::NOT_FOUND);
            }
            let slice = data[start..end].to_vec();
            return_bytes(&mut c, &slice, ret_ptr, ret_size)?;
            Ok(status::OK)
        }
    )?;
    link!(
        linker,
        ENV,
        "proxy_set_buffer_bytes",
        |c, kind: i32, start: i32, size: i32, ptr: i32, len: i32| {
            let data = read_bytes(&mut c, ptr, len)?;
            let st = c.data_mut();
            let buf = match kind {
                0 => &mut st.stream().request_body,
                1 => &mut st.stream().response_body,
                _ => return Ok(status::BAD_ARGUMENT),
            };
            // Envoy semantics: replace [start, start+size) with data.
            let start = (start as u32 as usize).min(buf.len());
            let end = start.saturating_add(size as u32 as usize).min(buf.len());
            buf.splice(start..end, data);
            Ok(status::OK)
        }
    )?;
    Ok(())
}
