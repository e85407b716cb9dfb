//! Helpers every import family uses: reading and writing guest memory (pointers and lengths
//! arrive as `i32` and are reinterpreted as unsigned, as the ABI intends), handing bytes back to
//! the guest through its own allocator, the proxy-wasm header-map wire format, and the
//! [`link!`](crate::link) macro that registers an import and counts its calls.
//!
//! Nothing here knows what an import means; that is the job of [`crate::imports`].

use wasmtime::{Caller, Extern};

use crate::state::{HostState, Headers};

/// The caller handle every host function receives: the guest instance plus our [`HostState`].
pub type C<'a> = Caller<'a, HostState>;

/// Links the host function `$name` of module `$module` and counts each of its calls in
/// [`HostState::host_calls`] before running the body. The closure's first parameter is the
/// caller (always mutable); the rest are the import's parameters with their wasm types.
///
/// ```text
/// link!(linker, "env", "proxy_done", |c| Ok(status::OK));
/// ```
#[macro_export]
#[doc(hidden)]
macro_rules! link {
    ($linker:expr, $module:expr, $name:literal, |$c:ident $(, $arg:ident : $ty:ty)* $(,)?| $body:expr) => {
        $linker.func_wrap(
            $module,
            $name,
            move |mut $c: $crate::util::C<'_> $(, $arg: $ty)*| {
                $c.data_mut().host_calls.record($name);
                $body
            },
        )
    };
}

/// The first header with this name (ASCII case-insensitive), as Envoy's header maps match.
pub fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Serializes a header map in the proxy-wasm wire format: a `u32` count, a `u32` key and value
/// length per pair, then each key and value followed by a NUL byte (all little-endian).
pub fn serialize_map(map: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(map.len() as u32).to_le_bytes());
    for (k, v) in map {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in map {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// Parses a header map in the proxy-wasm wire format (`None` when malformed; empty bytes are an
/// empty map).
pub fn deserialize_map(bytes: &[u8]) -> Option<Headers> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let read_u32 = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let count = read_u32(0)?;
    let mut sizes = Vec::with_capacity(count);
    for i in 0..count {
        sizes.push((read_u32(4 + i * 8)?, read_u32(8 + i * 8)?));
    }
    let mut at = 4 + count * 8;
    let mut out = Vec::with_capacity(count);
    for (ks, vs) in sizes {
        let k = String::from_utf8_lossy(bytes.get(at..at + ks)?).into_owned();
        at += ks + 1;
        let v = String::from_utf8_lossy(bytes.get(at..at + vs)?).into_owned();
        at += vs + 1;
        out.push((k, v));
    }
    Some(out)
}

/// The guest's exported linear memory.
pub fn memory(caller: &mut C<'_>) -> wasmtime::Result<wasmtime::Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => Err(wasmtime::Error::msg("module exports no memory")),
    }
}

/// Copies `len` bytes at `ptr` out of guest memory (a trap when out of bounds).
pub fn read_bytes(caller: &mut C<'_>, ptr: i32, len: i32) -> wasmtime::Result<Vec<u8>> {
    let mem = memory(caller)?;
    let mut buf = vec![0u8; len as u32 as usize];
    mem.read(&*caller, ptr as u32 as usize, &mut buf)?;
    Ok(buf)
}

/// [`read_bytes`] as text (invalid UTF-8 replaced).
pub fn read_string(caller: &mut C<'_>, ptr: i32, len: i32) -> wasmtime::Result<String> {
    Ok(String::from_utf8_lossy(&read_bytes(caller, ptr, len)?).into_owned())
}

/// Writes a little-endian `u32` to guest memory (a returned size, id or token).
pub fn write_u32(caller: &mut C<'_>, ptr: i32, value: u32) -> wasmtime::Result<()> {
    let mem = memory(caller)?;
    mem.write(&mut *caller, ptr as u32 as usize, &value.to_le_bytes())?;
    Ok(())
}

/// Writes a little-endian `u64` to guest memory (a time or a metric value).
pub fn write_u64(caller: &mut C<'_>, ptr: i32, value: u64) -> wasmtime::Result<()> {
    let mem = memory(caller)?;
    mem.write(&mut *caller, ptr as u32 as usize, &value.to_le_bytes())?;
    Ok(())
}

/// Copies `data` into guest memory allocated by the guest (`proxy_on_memory_allocate`), and
/// writes its pointer and size to `ret_ptr` / `ret_size`, as every proxy-wasm getter returns.
pub fn return_bytes(
    caller: &mut C<'_>,
    data: &[u8],
    ret_ptr: i32,
    ret_size: i32,
) -> wasmtime::Result<()> {
    let alloc = caller
        .get_export("proxy_on_memory_allocate")
        .and_then(Extern::into_func)
        .ok_or_else(|| wasmtime::Error::msg("no proxy_on_memory_allocate"))?
        .typed::<i32, i32>(&*caller)?;
    let ptr = alloc.call(&mut *caller, data.len() as i32)?;
    let mem = memory(caller)?;
    mem.write(&mut *caller, ptr as u32 as usize, data)?;
    write_u32(caller, ret_ptr, ptr as u32)?;
    write_u32(caller, ret_size, data.len() as u32)?;
    Ok(())
}
