//! Stream control: resuming a paused request or response (counted in
//! [`StreamState`](crate::StreamState)), closing, sending a local reply (recorded as
//! [`LocalReply`]), switching the effective context after a callout, and `proxy_done`.

use wasmtime::Linker;

use super::ENV;
use crate::link;
use crate::state::{status, HostState, LocalReply};
use crate::util::{deserialize_map, read_bytes};

pub(super) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link!(linker, ENV, "proxy_continue_stream", |c, kind: i32| {
        let s = c.data_mut().stream();
        match kind {
            0 => s.resumed_request += 1,
            1 => s.resumed_response += 1,
            _ => return Ok(status::BAD_ARGUMENT),
        }
        Ok(status::OK)
    })?;
    link!(linker, ENV, "proxy_close_stream", |c, _kind: i32| {
        Ok(status::OK)
    })?;
    link!(
        linker,
        ENV,
        "proxy_send_local_response",
        |c,
         code: i32,
         _dp: i32,
         _dl: i32,
         bp: i32,
         bl: i32,
         hp: i32,
         hl: i32,
         _grpc: i32| {
            let body = read_bytes(&mut c, bp, bl)?;
            let hbytes = read_bytes(&mut c, hp, hl)?;
            let headers = deserialize_map(&hbytes).unwrap_or_default();
            c.data_mut().stream().local_reply = Some(LocalReply {
                status: code as u32,
                headers,
                body,
            });
            Ok(status::OK)
        }
    )?;
    link!(linker, ENV, "proxy_set_effective_context", |c, ctx: i32| {
        c.data_mut().current_context = ctx as u32;
        Ok(status::OK)
    })?;
    link!(linker, ENV, "proxy_done", |c| {
        Ok(status::OK)
    })?;
    Ok(())
}
