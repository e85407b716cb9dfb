//! The WASI preview 1 subset the Rust standard library calls in `wasm32-wasip1`: environment
//! variables (from [`HostState::env`]), `fd_write` (stdout/stderr become log lines at info and
//! error level: panic messages arrive here), deterministic pseudo-random bytes, the clock, and
//! `proc_exit` as a trap.

use wasmtime::Linker;

use crate::link;
use crate::state::HostState;
use crate::util::{memory, read_bytes, write_u32, write_u64};

/// The WASI import module.
const WASI: &str = "wasi_snapshot_preview1";

pub(super) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link!(linker, WASI, "environ_sizes_get", |c, count_ptr: i32, size_ptr: i32| {
        let env = c.data().env.clone();
        let size: usize = env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        write_u32(&mut c, count_ptr, env.len() as u32)?;
        write_u32(&mut c, size_ptr, size as u32)?;
        Ok(0i32)
    })?;
    link!(linker, WASI, "environ_get", |c, ptrs: i32, buf: i32| {
        let env = c.data().env.clone();
        let mem = memory(&mut c)?;
        let mut at = buf as u32 as usize;
        for (i, (k, v)) in env.iter().enumerate() {
            let entry = format!("{k}={v}\0");
            mem.write(&mut c, at, entry.as_bytes())?;
            mem.write(
                &mut c,
                ptrs as u32 as usize + i * 4,
                &(at as u32).to_le_bytes(),
            )?;
            at += entry.len();
        }
        Ok(0i32)
    })?;
    link!(
        linker,
        WASI,
        "fd_write",
        |c, fd: i32, iovs: i32, iovs_len: i32, ret_written: i32| {
            let mut total = 0u32;
            let mut text = Vec::new();
            for i in 0..iovs_len {
                let iov = read_bytes(&mut c, iovs + i * 8, 8)?;
                let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
                let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
                text.extend(read_bytes(&mut c, ptr, len)?);
                total += len as u32;
            }
            let level = if fd == 2 { 4 } else { 2 };
            c.data_mut()
                .logs
                .push((level, String::from_utf8_lossy(&text).into_owned()));
            write_u32(&mut c, ret_written, total)?;
            Ok(0i32)
        }
    )?;
    link!(linker, WASI, "random_get", |c, ptr: i32, len: i32| {
        let mut seed = c.data().now_nanos ^ 0x5DEE_CE66_D1CE_4E5B ^ (ptr as u64) << 17;
        let mut bytes = vec![0u8; len as u32 as usize];
        for b in bytes.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *b = seed as u8;
        }
        let mem = memory(&mut c)?;
        mem.write(&mut c, ptr as u32 as usize, &bytes)?;
        Ok(0i32)
    })?;
    link!(linker, WASI, "clock_time_get", |c, _id: i32, _prec: i64, ret: i32| {
        let now = c.data().now_nanos;
        write_u64(&mut c, ret, now)?;
        Ok(0i32)
    })?;
    link!(linker, WASI, "proc_exit", |c, code: i32| {
        Err::<(), _>(wasmtime::Error::msg(format!("proc_exit({code})")))
    })?;
    Ok(())
}
