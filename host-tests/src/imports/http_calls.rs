//! HTTP callouts and foreign functions: `proxy_http_call` records an [`HttpCall`] and returns a
//! fresh token (tests answer it with [`crate::Vm::http_call_response`]);
//! `proxy_call_foreign_function` accepts `clear_route_cache` (Envoy re-picks the route after
//! header edits; a no-op here) and answers `NOT_FOUND` for any other name, as Envoy does.

use wasmtime::Linker;

use super::ENV;
use crate::link;
use crate::state::{status, HostState, HttpCall};
use crate::util::{deserialize_map, read_bytes, read_string, write_u32};

pub(super) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link!(
        linker,
        ENV,
        "proxy_http_call",
        |c,
         up: i32,
         ul: i32,
         hp: i32,
         hl: i32,
         bp: i32,
         bl: i32,
         _tp: i32,
         _tl: i32,
         timeout: i32,
         ret_token: i32| {
            let upstream = read_string(&mut c, up, ul)?;
            let headers = deserialize_map(&read_bytes(&mut c, hp, hl)?).unwrap_or_default();
            let body = read_bytes(&mut c, bp, bl)?;
            let st = c.data_mut();
            st.next_token += 1;
            let token = st.next_token;
            let context_id = st.current_context;
            st.http_calls.push(HttpCall {
                token,
                context_id,
                upstream,
                headers,
                body,
                timeout_ms: timeout as u32,
            });
            write_u32(&mut c, ret_token, token)?;
            Ok(status::OK)
        }
    )?;
    link!(
        linker,
        ENV,
        "proxy_call_foreign_function",
        |c, np: i32, nl: i32, _ap: i32, _al: i32, _rp: i32, _rl: i32| {
            let name = read_string(&mut c, np, nl)?;
            Ok(if name == "clear_route_cache" {
                status::OK
            } else {
                status::NOT_FOUND
            })
        }
    )?;
    Ok(())
}
