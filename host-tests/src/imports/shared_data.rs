//! Shared data, as Envoy shares it between the worker VMs of one process: key → (value, cas) in
//! the [`SharedHost`](crate::SharedHost) several [`crate::Vm`]s hold. A write with a non-zero cas
//! that no longer matches fails with `CAS_MISMATCH`. Shared queues are not emulated (their
//! imports trap with their name).

use wasmtime::Linker;

use super::ENV;
use crate::link;
use crate::state::{status, HostState};
use crate::util::{read_bytes, read_string, return_bytes, write_u32};

pub(super) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link!(
        linker,
        ENV,
        "proxy_get_shared_data",
        |c, kp: i32, kl: i32, ret_ptr: i32, ret_size: i32, ret_cas: i32| {
            let key = read_string(&mut c, kp, kl)?;
            let found = c.data().shared.lock().data.get(&key).cloned();
            match found {
                Some((value, cas)) => {
                    return_bytes(&mut c, &value, ret_ptr, ret_size)?;
                    write_u32(&mut c, ret_cas, cas)?;
                    Ok(status::OK)
                }
                None => Ok(status::NOT_FOUND),
            }
        }
    )?;
    link!(
        linker,
        ENV,
        "proxy_set_shared_data",
        |c, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32| {
            let key = read_string(&mut c, kp, kl)?;
            let value = read_bytes(&mut c, vp, vl)?;
            let shared = c.data().shared.clone();
            let mut st = shared.lock();
            let current = st.data.get(&key).map(|(_, c)| *c);
            if cas != 0 && current.is_some_and(|cur| cur != cas as u32) {
                return Ok(status::CAS_MISMATCH);
            }
            st.next_cas = st.next_cas.wrapping_add(1).max(1);
            let next = st.next_cas;
            st.data.insert(key, (value, next));
            Ok(status::OK)
        }
    )?;
    Ok(())
}
