//! Properties: `proxy_get_property` answers from what the filter set on this stream, then from
//! [`HostState::properties`] (what a test provides, keyed by the `\0`-joined path);
//! `proxy_set_property` records into the stream (or the root, outside a stream), where tests
//! read access-log values back.

use wasmtime::Linker;

use super::ENV;
use crate::link;
use crate::state::{status, HostState};
use crate::util::{read_bytes, read_string, return_bytes};

pub(super) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link!(
        linker,
        ENV,
        "proxy_get_property",
        |c, pp: i32, pl: i32, ret_ptr: i32, ret_size: i32| {
            let path = read_string(&mut c, pp, pl)?;
            let path = path.trim_end_matches('\0').to_string();
            let value = {
                let st = c.data_mut();
                let ctx = st.current_context;
                st.streams
                    .get(&ctx)
                    .and_then(|s| s.set_properties.get(&path).cloned())
                    .or_else(|| st.properties.get(&path).cloned())
            };
            match value {
                Some(v) => {
                    return_bytes(&mut c, &v, ret_ptr, ret_size)?;
                    Ok(status::OK)
                }
                None => Ok(status::NOT_FOUND),
            }
        }
    )?;
    link!(
        linker,
        ENV,
        "proxy_set_property",
        |c, pp: i32, pl: i32, vp: i32, vl: i32| {
            let path = read_string(&mut c, pp, pl)?;
            let path = path.trim_end_matches('\0').to_string();
            let value = read_bytes(&mut c, vp, vl)?;
            let st = c.data_mut();
            if st.streams.contains_key(&st.current_context) {
                st.stream().set_properties.insert(path, value);
            } else {
                st.root_properties.insert(path, value);
            }
            Ok(status::OK)
        }
    )?;
    Ok(())
}
