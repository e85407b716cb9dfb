//! gRPC callouts: `proxy_grpc_call` records a [`GrpcCall`] and returns a fresh token; the
//! message a test delivers is read through the buffer family (`GrpcReceiveBuffer`), and
//! `proxy_get_status` always reports status 0 with an empty message.

use wasmtime::Linker;

use super::ENV;
use crate::link;
use crate::state::{status, GrpcCall, HostState};
use crate::util::{read_bytes, read_string, return_bytes, write_u32};

pub(super) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link!(
        linker,
        ENV,
        "proxy_grpc_call",
        |c,
         up: i32,
         ul: i32,
         sp: i32,
         sl: i32,
         mp: i32,
         ml: i32,
         _ip: i32,
         _il: i32,
         msgp: i32,
         msgl: i32,
         _timeout: i32,
         ret_token: i32| {
            let upstream = read_string(&mut c, up, ul)?;
            let service = read_string(&mut c, sp, sl)?;
            let method = read_string(&mut c, mp, ml)?;
            let message = read_bytes(&mut c, msgp, msgl)?;
            let st = c.data_mut();
            st.next_token += 1;
            let token = st.next_token;
            let context_id = st.current_context;
            st.grpc_calls.push(GrpcCall {
                token,
                context_id,
                upstream,
                service,
                method,
                message,
            });
            write_u32(&mut c, ret_token, token)?;
            Ok(status::OK)
        }
    )?;
    link!(linker, ENV, "proxy_get_status", |c, code: i32, mp: i32, ms: i32| {
        write_u32(&mut c, code, 0)?;
        return_bytes(&mut c, b"", mp, ms)?;
        Ok(status::OK)
    })?;
    Ok(())
}
