//! Logging, the clock and the tick timer: `proxy_log` records `(level, message)` in
//! [`HostState::logs`], the log level is always trace, time is [`HostState::now_nanos`] (tests
//! move it), and the tick period is recorded for [`crate::Vm::tick`] callers to read.

use wasmtime::Linker;

use super::ENV;
use crate::link;
use crate::state::{status, HostState};
use crate::util::{read_string, write_u32, write_u64};

pub(super) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link!(linker, ENV, "proxy_log", |c, level: i32, ptr: i32, len: i32| {
        let msg = read_string(&mut c, ptr, len)?;
        c.data_mut().logs.push((level, msg));
        Ok(status::OK)
    })?;
    link!(linker, ENV, "proxy_get_log_level", |c, ret: i32| {
        write_u32(&mut c, ret, 0)?;
        Ok(status::OK)
    })?;
    link!(linker, ENV, "proxy_get_current_time_nanoseconds", |c, ret: i32| {
        let now = c.data().now_nanos;
        write_u64(&mut c, ret, now)?;
        Ok(status::OK)
    })?;
    link!(linker, ENV, "proxy_set_tick_period_milliseconds", |c, period: i32| {
        c.data_mut().tick_period_ms = period as u32;
        Ok(status::OK)
    })?;
    Ok(())
}
