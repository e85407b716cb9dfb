//! A proxy-wasm host on wasmtime that loads the real `tollgate.wasm` and drives it through the
//! ABI the Rust SDK uses, so tests exercise the module exactly as Envoy would load it.
//!
//! The emulator keeps all state in the wasmtime `Store` (tests run in parallel); state meant to
//! be shared between VMs, as Envoy shares it between worker threads (shared data, metrics), lives
//! in a [`SharedHost`] that several [`Vm`]s can hold. Every `env` import the SDK declares is
//! linked; the ones a test cannot meaningfully use trap with their name.
//!
//! Typical use:
//! ```no_run
//! use tollgate_host_tests::Vm;
//! let mut vm = Vm::load().unwrap();
//! assert!(vm.configure(r#"{}"#).unwrap());
//! let ctx = vm.new_http();
//! vm.request_headers(ctx, &[(":path", "/v1/chat/completions")], false).unwrap();
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use wasmtime::{Caller, Engine, Extern, Instance, Linker, Module, Store};

/// Proxy-wasm status codes (as the SDK's `Status` enum).
pub mod status {
    /// Success.
    pub const OK: i32 = 0;
    /// The item does not exist.
    pub const NOT_FOUND: i32 = 1;
    /// An argument was invalid.
    pub const BAD_ARGUMENT: i32 = 2;
    /// A compare-and-swap failed.
    pub const CAS_MISMATCH: i32 = 8;
}

/// The filter's answer to a header/body callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Let the stream continue.
    Continue,
    /// Stop iteration (buffer, or wait for a local reply / callout).
    Pause,
}

/// Header map type codes (proxy-wasm `MapType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapKind {
    /// Request headers.
    RequestHeaders,
    /// Request trailers.
    RequestTrailers,
    /// Response headers.
    ResponseHeaders,
    /// Response trailers.
    ResponseTrailers,
    /// Headers of an HTTP callout's response.
    CallResponseHeaders,
    /// Trailers of an HTTP callout's response.
    CallResponseTrailers,
}

impl MapKind {
    fn from_code(code: i32) -> Option<Self> {
        Some(match code {
            0 => Self::RequestHeaders,
            1 => Self::RequestTrailers,
            2 => Self::ResponseHeaders,
            3 => Self::ResponseTrailers,
            6 => Self::CallResponseHeaders,
            7 => Self::CallResponseTrailers,
            _ => return None,
        })
    }
}

/// A header list in order, names as given.
pub type Headers = Vec<(String, String)>;

/// A local reply the filter sent with `proxy_send_local_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status code.
    pub status: u32,
    /// Response headers.
    pub headers: Headers,
    /// Response body.
    pub body: Vec<u8>,
}

impl LocalReply {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body parsed as JSON (panics in tests when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("local reply body is JSON")
    }
}

/// An HTTP callout the filter dispatched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    /// Token returned to the filter.
    pub token: u32,
    /// The context that dispatched it.
    pub context_id: u32,
    /// Target cluster.
    pub upstream: String,
    /// Request headers (including pseudo-headers).
    pub headers: Headers,
    /// Request body.
    pub body: Vec<u8>,
    /// Timeout in milliseconds.
    pub timeout_ms: u32,
}

/// A gRPC callout the filter dispatched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCall {
    /// Token returned to the filter.
    pub token: u32,
    /// The context that dispatched it.
    pub context_id: u32,
    /// Target cluster.
    pub upstream: String,
    /// Service name.
    pub service: String,
    /// Method name.
    pub method: String,
    /// Serialized request message.
    pub message: Vec<u8>,
}

/// A metric the filter defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    /// Stat name.
    pub name: String,
    /// 0 counter, 1 gauge, 2 histogram.
    pub kind: i32,
    /// Current value (counters and gauges); last recorded value for histograms.
    pub value: i64,
    /// Every value recorded into a histogram.
    pub samples: Vec<u64>,
}

/// State Envoy shares between the worker VMs of one process: shared data and metrics.
#[derive(Debug, Default)]
pub struct SharedState {
    /// Shared data: key → (value, cas).
    pub data: HashMap<String, (Vec<u8>, u32)>,
    /// Metrics by id; ids are global so VMs defining the same name share it.
    pub metrics: Vec<Metric>,
    /// Next cas value.
    pub next_cas: u32,
}

/// A handle to [`SharedState`] that several VMs hold.
#[derive(Debug, Default, Clone)]
pub struct SharedHost(Arc<Mutex<SharedState>>);

impl SharedHost {
    /// Creates empty shared state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Locks the state (recovering from a poisoned lock).
    pub fn lock(&self) -> MutexGuard<'_, SharedState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Value of the metric named `name` (summed over definitions), if defined.
    pub fn metric(&self, name: &str) -> Option<i64> {
        let state = self.lock();
        let mut found = None;
        for m in state.metrics.iter().filter(|m| m.name == name) {
            found = Some(found.unwrap_or(0) + m.value);
        }
        found
    }

    /// Samples recorded into the histogram named `name`.
    pub fn histogram(&self, name: &str) -> Vec<u64> {
        let state = self.lock();
        state
            .metrics
            .iter()
            .filter(|m| m.name == name)
            .flat_map(|m| m.samples.iter().copied())
            .collect()
    }

    /// Names of every defined metric.
    pub fn metric_names(&self) -> Vec<String> {
        self.lock().metrics.iter().map(|m| m.name.clone()).collect()
    }
}

/// Per-HTTP-context state.
#[derive(Debug, Default, Clone)]
pub struct StreamState {
    /// Maps by kind.
    pub maps: HashMap<MapKind, Headers>,
    /// Current request body buffer (what the filter sees in `on_request_body`).
    pub request_body: Vec<u8>,
    /// Current response body buffer.
    pub response_body: Vec<u8>,
    /// Request body bytes the filter let through.
    pub forwarded_request_body: Vec<u8>,
    /// Response body bytes the filter let through.
    pub forwarded_response_body: Vec<u8>,
    /// The local reply, if one was sent.
    pub local_reply: Option<LocalReply>,
    /// Times the filter resumed the request.
    pub resumed_request: u32,
    /// Times the filter resumed the response.
    pub resumed_response: u32,
    /// Properties set by the filter for this stream.
    pub set_properties: HashMap<String, Vec<u8>>,
    /// Whether the request body callback last returned `Pause` (Envoy then buffers).
    request_buffering: bool,
    /// Whether the response body callback last returned `Pause`.
    response_buffering: bool,
}

/// Everything the emulator keeps, stored in the wasmtime `Store`.
#[derive(Debug, Default)]
pub struct HostState {
    /// Plugin configuration bytes.
    pub plugin_config: Vec<u8>,
    /// VM configuration bytes.
    pub vm_config: Vec<u8>,
    /// Log lines (level, message).
    pub logs: Vec<(i32, String)>,
    /// Per-context stream state.
    pub streams: HashMap<u32, StreamState>,
    /// Properties readable by the filter: `\0`-joined path → value.
    pub properties: HashMap<String, Vec<u8>>,
    /// Properties set outside a stream (root context).
    pub root_properties: HashMap<String, Vec<u8>>,
    /// Shared between VMs.
    pub shared: SharedHost,
    /// Dispatched HTTP callouts.
    pub http_calls: Vec<HttpCall>,
    /// Dispatched gRPC callouts.
    pub grpc_calls: Vec<GrpcCall>,
    /// The callout response being delivered: headers, body, trailers.
    pub call_response: (Headers, Vec<u8>, Headers),
    /// The gRPC message being delivered.
    pub grpc_receive: Vec<u8>,
    /// Tick period requested by the filter, in ms.
    pub tick_period_ms: u32,
    /// Clock in ns since the epoch.
    pub now_nanos: u64,
    /// Environment variables visible through WASI.
    pub env: Vec<(String, String)>,
    /// The context the host is currently calling into.
    pub current_context: u32,
    /// Next callout token.
    next_token: u32,
}

impl HostState {
    fn stream(&mut self) -> &mut StreamState {
        let ctx = self.current_context;
        self.streams.entry(ctx).or_default()
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Serializes a header map in the proxy-wasm wire format.
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

/// Parses a header map in the proxy-wasm wire format (`None` when malformed).
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

type C<'a> = Caller<'a, HostState>;

fn memory(caller: &mut C<'_>) -> wasmtime::Result<wasmtime::Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => Err(wasmtime::Error::msg("module exports no memory")),
    }
}

fn read_bytes(caller: &mut C<'_>, ptr: i32, len: i32) -> wasmtime::Result<Vec<u8>> {
    let mem = memory(caller)?;
    let mut buf = vec![0u8; len as u32 as usize];
    mem.read(&*caller, ptr as u32 as usize, &mut buf)?;
    Ok(buf)
}

fn read_string(caller: &mut C<'_>, ptr: i32, len: i32) -> wasmtime::Result<String> {
    Ok(String::from_utf8_lossy(&read_bytes(caller, ptr, len)?).into_owned())
}

fn write_u32(caller: &mut C<'_>, ptr: i32, value: u32) -> wasmtime::Result<()> {
    let mem = memory(caller)?;
    mem.write(&mut *caller, ptr as u32 as usize, &value.to_le_bytes())?;
    Ok(())
}

/// Copies `data` into guest memory allocated by the guest, and writes pointer and size.
fn return_bytes(
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

fn link_imports(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    // ---- logging, time, ticks ----
    linker.func_wrap(
        "env",
        "proxy_log",
        |mut c: C<'_>, level: i32, ptr: i32, len: i32| {
            let msg = read_string(&mut c, ptr, len)?;
            c.data_mut().logs.push((level, msg));
            Ok(status::OK)
        },
    )?;
    linker.func_wrap("env", "proxy_get_log_level", |mut c: C<'_>, ret: i32| {
        write_u32(&mut c, ret, 0)?;
        Ok(status::OK)
    })?;
    linker.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: C<'_>, ret: i32| {
            let now = c.data().now_nanos;
            let mem = memory(&mut c)?;
            mem.write(&mut c, ret as u32 as usize, &now.to_le_bytes())?;
            Ok(status::OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: C<'_>, period: i32| {
            c.data_mut().tick_period_ms = period as u32;
            Ok(status::OK)
        },
    )?;

    // ---- buffers ----
    linker.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: C<'_>, kind: i32, start: i32, max: i32, ret_ptr: i32, ret_size: i32| {
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
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: C<'_>, kind: i32, start: i32, size: i32, ptr: i32, len: i32| {
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
        },
    )?;

    // ---- header maps ----
    linker.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: C<'_>, kind: i32, ret_ptr: i32, ret_size: i32| {
            let Some(kind) = MapKind::from_code(kind) else {
                return Ok(status::BAD_ARGUMENT);
            };
            let map = get_map(c.data_mut(), kind);
            let bytes = if map.is_empty() {
                Vec::new()
            } else {
                serialize_map(&map)
            };
            return_bytes(&mut c, &bytes, ret_ptr, ret_size)?;
            Ok(status::OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut c: C<'_>, kind: i32, ptr: i32, len: i32| {
            let Some(kind) = MapKind::from_code(kind) else {
                return Ok(status::BAD_ARGUMENT);
            };
            let bytes = read_bytes(&mut c, ptr, len)?;
            let Some(map) = deserialize_map(&bytes) else {
                return Ok(status::BAD_ARGUMENT);
            };
            c.data_mut().stream().maps.insert(kind, map);
            Ok(status::OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: C<'_>, kind: i32, kp: i32, kl: i32, ret_ptr: i32, ret_size: i32| {
            let Some(kind) = MapKind::from_code(kind) else {
                return Ok(status::BAD_ARGUMENT);
            };
            let key = read_string(&mut c, kp, kl)?;
            let map = get_map(c.data_mut(), kind);
            match find_header(&map, &key) {
                Some(v) => {
                    let v = v.as_bytes().to_vec();
                    return_bytes(&mut c, &v, ret_ptr, ret_size)?;
                    Ok(status::OK)
                }
                None => Ok(status::NOT_FOUND),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut c: C<'_>, kind: i32, kp: i32, kl: i32, vp: i32, vl: i32| {
            let Some(kind) = MapKind::from_code(kind) else {
                return Ok(status::BAD_ARGUMENT);
            };
            let key = read_string(&mut c, kp, kl)?;
            let value = read_string(&mut c, vp, vl)?;
            let map = c.data_mut().stream().maps.entry(kind).or_default();
            map.retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
            map.push((key.to_ascii_lowercase(), value));
            Ok(status::OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut c: C<'_>, kind: i32, kp: i32, kl: i32, vp: i32, vl: i32| {
            let Some(kind) = MapKind::from_code(kind) else {
                return Ok(status::BAD_ARGUMENT);
            };
            let key = read_string(&mut c, kp, kl)?;
            let value = read_string(&mut c, vp, vl)?;
            c.data_mut()
                .stream()
                .maps
                .entry(kind)
                .or_default()
                .push((key.to_ascii_lowercase(), value));
            Ok(status::OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut c: C<'_>, kind: i32, kp: i32, kl: i32| {
            let Some(kind) = MapKind::from_code(kind) else {
                return Ok(status::BAD_ARGUMENT);
            };
            let key = read_string(&mut c, kp, kl)?;
            c.data_mut()
                .stream()
                .maps
                .entry(kind)
                .or_default()
                .retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
            Ok(status::OK)
        },
    )?;

    // ---- properties ----
    linker.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: C<'_>, pp: i32, pl: i32, ret_ptr: i32, ret_size: i32| {
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
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_property",
        |mut c: C<'_>, pp: i32, pl: i32, vp: i32, vl: i32| {
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
        },
    )?;

    // ---- shared data ----
    linker.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: C<'_>, kp: i32, kl: i32, ret_ptr: i32, ret_size: i32, ret_cas: i32| {
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
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_shared_data",
        |mut c: C<'_>, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32| {
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
        },
    )?;

    // ---- streams and local replies ----
    linker.func_wrap("env", "proxy_continue_stream", |mut c: C<'_>, kind: i32| {
        let s = c.data_mut().stream();
        match kind {
            0 => s.resumed_request += 1,
            1 => s.resumed_response += 1,
            _ => return Ok(status::BAD_ARGUMENT),
        }
        Ok(status::OK)
    })?;
    linker.func_wrap("env", "proxy_close_stream", |_c: C<'_>, _kind: i32| {
        Ok(status::OK)
    })?;
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: C<'_>,
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
        },
    )?;

    // ---- callouts ----
    linker.func_wrap(
        "env",
        "proxy_http_call",
        |mut c: C<'_>,
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
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_call",
        |mut c: C<'_>,
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
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_status",
        |mut c: C<'_>, code: i32, mp: i32, ms: i32| {
            write_u32(&mut c, code, 0)?;
            return_bytes(&mut c, b"", mp, ms)?;
            Ok(status::OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_effective_context",
        |mut c: C<'_>, ctx: i32| {
            c.data_mut().current_context = ctx as u32;
            Ok(status::OK)
        },
    )?;
    linker.func_wrap("env", "proxy_done", |_c: C<'_>| Ok(status::OK))?;
    // Foreign functions: `clear_route_cache` (Envoy re-picks the route after header edits) is
    // accepted and does nothing here; any other name is unknown, as in Envoy.
    linker.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |mut c: C<'_>, np: i32, nl: i32, _ap: i32, _al: i32, _rp: i32, _rl: i32| {
            let name = read_string(&mut c, np, nl)?;
            Ok(if name == "clear_route_cache" {
                status::OK
            } else {
                status::NOT_FOUND
            })
        },
    )?;

    // ---- metrics ----
    linker.func_wrap(
        "env",
        "proxy_define_metric",
        |mut c: C<'_>, kind: i32, np: i32, nl: i32, ret_id: i32| {
            let name = read_string(&mut c, np, nl)?;
            let id = {
                let shared = c.data().shared.clone();
                let mut st = shared.lock();
                match st.metrics.iter().position(|m| m.name == name) {
                    Some(i) => i,
                    None => {
                        st.metrics.push(Metric {
                            name,
                            kind,
                            value: 0,
                            samples: Vec::new(),
                        });
                        st.metrics.len() - 1
                    }
                }
            };
            write_u32(&mut c, ret_id, id as u32)?;
            Ok(status::OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_increment_metric",
        |c: C<'_>, id: i32, offset: i64| {
            let shared = c.data().shared.clone();
            let mut st = shared.lock();
            match st.metrics.get_mut(id as u32 as usize) {
                Some(m) => {
                    m.value += offset;
                    Ok(status::OK)
                }
                None => Ok(status::NOT_FOUND),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_record_metric",
        |c: C<'_>, id: i32, value: i64| {
            let shared = c.data().shared.clone();
            let mut st = shared.lock();
            match st.metrics.get_mut(id as u32 as usize) {
                Some(m) => {
                    m.value = value;
                    if m.kind == 2 {
                        m.samples.push(value as u64);
                    }
                    Ok(status::OK)
                }
                None => Ok(status::NOT_FOUND),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_metric",
        |mut c: C<'_>, id: i32, ret: i32| {
            let value = {
                let shared = c.data().shared.clone();
                let st = shared.lock();
                st.metrics.get(id as u32 as usize).map(|m| m.value)
            };
            match value {
                Some(v) => {
                    let mem = memory(&mut c)?;
                    mem.write(&mut c, ret as u32 as usize, &(v as u64).to_le_bytes())?;
                    Ok(status::OK)
                }
                None => Ok(status::NOT_FOUND),
            }
        },
    )?;

    // ---- WASI (preview 1) subset ----
    let wasi = "wasi_snapshot_preview1";
    linker.func_wrap(
        wasi,
        "environ_sizes_get",
        |mut c: C<'_>, count_ptr: i32, size_ptr: i32| {
            let env = c.data().env.clone();
            let size: usize = env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
            write_u32(&mut c, count_ptr, env.len() as u32)?;
            write_u32(&mut c, size_ptr, size as u32)?;
            Ok(0i32)
        },
    )?;
    linker.func_wrap(wasi, "environ_get", |mut c: C<'_>, ptrs: i32, buf: i32| {
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
    linker.func_wrap(
        wasi,
        "fd_write",
        |mut c: C<'_>, fd: i32, iovs: i32, iovs_len: i32, ret_written: i32| {
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
        },
    )?;
    linker.func_wrap(wasi, "random_get", |mut c: C<'_>, ptr: i32, len: i32| {
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
    linker.func_wrap(
        wasi,
        "clock_time_get",
        |mut c: C<'_>, _id: i32, _prec: i64, ret: i32| {
            let now = c.data().now_nanos;
            let mem = memory(&mut c)?;
            mem.write(&mut c, ret as u32 as usize, &now.to_le_bytes())?;
            Ok(0i32)
        },
    )?;
    linker.func_wrap(
        wasi,
        "proc_exit",
        |_c: C<'_>, code: i32| -> wasmtime::Result<()> {
            Err(wasmtime::Error::msg(format!("proc_exit({code})")))
        },
    )?;
    Ok(())
}

fn get_map(st: &mut HostState, kind: MapKind) -> Headers {
    match kind {
        MapKind::CallResponseHeaders => st.call_response.0.clone(),
        MapKind::CallResponseTrailers => st.call_response.2.clone(),
        _ => st.stream().maps.get(&kind).cloned().unwrap_or_default(),
    }
}

/// Where the built module is: `$TOLLGATE_WASM`, else `target/tollgate.wasm` at the workspace root.
pub fn wasm_path() -> PathBuf {
    if let Ok(p) = std::env::var("TOLLGATE_WASM") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tollgate.wasm")
}

fn compiled_module(engine: &Engine) -> wasmtime::Result<Module> {
    let path = wasm_path();
    Module::from_file(engine, &path).map_err(|e| {
        e.context(format!(
            "loading {} (run `make build` first)",
            path.display()
        ))
    })
}

/// One VM: a module instance with its root context, as one Envoy worker holds it.
pub struct Vm {
    store: Store<HostState>,
    instance: Instance,
    root_id: u32,
    next_context: u32,
}

/// The root context id every VM uses.
pub const ROOT_CONTEXT_ID: u32 = 1;

impl Vm {
    /// Loads the module with fresh shared state.
    pub fn load() -> wasmtime::Result<Self> {
        Self::load_shared(SharedHost::new())
    }

    /// Loads the module sharing `shared` with other VMs (as Envoy workers share it).
    pub fn load_shared(shared: SharedHost) -> wasmtime::Result<Self> {
        use std::sync::OnceLock;
        static ENGINE: OnceLock<(Engine, Module)> = OnceLock::new();
        let (engine, module) = match ENGINE.get() {
            Some(pair) => pair.clone(),
            None => {
                let engine = Engine::default();
                let module = compiled_module(&engine)?;
                let _ = ENGINE.set((engine.clone(), module.clone()));
                (engine, module)
            }
        };
        let mut linker = Linker::new(&engine);
        link_imports(&mut linker)?;
        linker.define_unknown_imports_as_traps(&module)?;
        let state = HostState {
            shared,
            now_nanos: 1_750_000_000_000_000_000,
            ..HostState::default()
        };
        let mut store = Store::new(&engine, state);
        let instance = linker.instantiate(&mut store, &module)?;
        if let Ok(init) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
            init.call(&mut store, ())?;
        }
        Ok(Self {
            store,
            instance,
            root_id: ROOT_CONTEXT_ID,
            next_context: ROOT_CONTEXT_ID + 1,
        })
    }

    /// Host state, for assertions.
    pub fn state(&self) -> &HostState {
        self.store.data()
    }

    /// Host state, for setup (properties, env, clock).
    pub fn state_mut(&mut self) -> &mut HostState {
        self.store.data_mut()
    }

    /// Shared state handle (metrics, shared data).
    pub fn shared(&self) -> SharedHost {
        self.store.data().shared.clone()
    }

    /// Sets the clock.
    pub fn set_time_secs(&mut self, secs: u64) {
        self.store.data_mut().now_nanos = secs * 1_000_000_000;
    }

    /// Advances the clock.
    pub fn advance_ms(&mut self, ms: u64) {
        self.store.data_mut().now_nanos += ms * 1_000_000;
    }

    /// Log lines so far, as one string per line.
    pub fn logs(&self) -> Vec<String> {
        self.store
            .data()
            .logs
            .iter()
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// Log lines at error level or above.
    pub fn error_logs(&self) -> Vec<String> {
        self.store
            .data()
            .logs
            .iter()
            .filter(|(l, _)| *l >= 4)
            .map(|(_, m)| m.clone())
            .collect()
    }

    fn call<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
        &mut self,
        context: u32,
        name: &str,
        params: P,
    ) -> wasmtime::Result<R> {
        self.store.data_mut().current_context = context;
        let f = self
            .instance
            .get_typed_func::<P, R>(&mut self.store, name)?;
        f.call(&mut self.store, params)
    }

    /// Creates the root context, starts the VM and configures the plugin with `config`.
    /// Returns what `on_configure` returned.
    pub fn configure(&mut self, config: &str) -> wasmtime::Result<bool> {
        self.store.data_mut().plugin_config = config.as_bytes().to_vec();
        let root = self.root_id;
        self.call::<(i32, i32), ()>(root, "proxy_on_context_create", (root as i32, 0))?;
        let vm_len = self.store.data().vm_config.len() as i32;
        let started: i32 = self.call(root, "proxy_on_vm_start", (root as i32, vm_len))?;
        if started == 0 {
            return Ok(false);
        }
        let ok: i32 = self.call(
            root,
            "proxy_on_configure",
            (root as i32, config.len() as i32),
        )?;
        Ok(ok != 0)
    }

    /// Delivers a timer tick to the root context.
    pub fn tick(&mut self) -> wasmtime::Result<()> {
        let root = self.root_id;
        self.call::<i32, ()>(root, "proxy_on_tick", root as i32)
    }

    /// Creates a new HTTP context (one request) and returns its id.
    pub fn new_http(&mut self) -> u32 {
        let id = self.next_context;
        self.next_context += 1;
        self.store
            .data_mut()
            .streams
            .insert(id, StreamState::default());
        let root = self.root_id;
        // A trap here surfaces on the next call; creation itself cannot fail in the SDK.
        let _ =
            self.call::<(i32, i32), ()>(id, "proxy_on_context_create", (id as i32, root as i32));
        id
    }

    fn set_map(&mut self, ctx: u32, kind: MapKind, headers: &[(&str, &str)]) {
        let map = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.store
            .data_mut()
            .streams
            .entry(ctx)
            .or_default()
            .maps
            .insert(kind, map);
    }

    fn action(code: i32) -> Action {
        if code == 0 {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    /// Delivers request headers.
    pub fn request_headers(
        &mut self,
        ctx: u32,
        headers: &[(&str, &str)],
        eos: bool,
    ) -> wasmtime::Result<Action> {
        self.set_map(ctx, MapKind::RequestHeaders, headers);
        let r: i32 = self.call(
            ctx,
            "proxy_on_request_headers",
            (ctx as i32, headers.len() as i32, eos as i32),
        )?;
        Ok(Self::action(r))
    }

    /// Delivers a request body chunk, with Envoy's buffering semantics: after a `Pause` the next
    /// call sees everything buffered so far; on `Continue` the buffer is forwarded.
    pub fn request_body(&mut self, ctx: u32, chunk: &[u8], eos: bool) -> wasmtime::Result<Action> {
        let s = self.store.data_mut().streams.entry(ctx).or_default();
        if s.request_buffering {
            s.request_body.extend_from_slice(chunk);
        } else {
            s.request_body = chunk.to_vec();
        }
        let size = s.request_body.len() as i32;
        let r: i32 = self.call(ctx, "proxy_on_request_body", (ctx as i32, size, eos as i32))?;
        let s = self.store.data_mut().streams.entry(ctx).or_default();
        let action = Self::action(r);
        if action == Action::Continue {
            let body = std::mem::take(&mut s.request_body);
            s.forwarded_request_body.extend(body);
            s.request_buffering = false;
        } else {
            s.request_buffering = true;
        }
        Ok(action)
    }

    /// Delivers response headers.
    pub fn response_headers(
        &mut self,
        ctx: u32,
        headers: &[(&str, &str)],
        eos: bool,
    ) -> wasmtime::Result<Action> {
        self.set_map(ctx, MapKind::ResponseHeaders, headers);
        let r: i32 = self.call(
            ctx,
            "proxy_on_response_headers",
            (ctx as i32, headers.len() as i32, eos as i32),
        )?;
        Ok(Self::action(r))
    }

    /// Delivers a response body chunk (same buffering semantics as [`Vm::request_body`]).
    pub fn response_body(&mut self, ctx: u32, chunk: &[u8], eos: bool) -> wasmtime::Result<Action> {
        let s = self.store.data_mut().streams.entry(ctx).or_default();
        if s.response_buffering {
            s.response_body.extend_from_slice(chunk);
        } else {
            s.response_body = chunk.to_vec();
        }
        let size = s.response_body.len() as i32;
        let r: i32 = self.call(
            ctx,
            "proxy_on_response_body",
            (ctx as i32, size, eos as i32),
        )?;
        let s = self.store.data_mut().streams.entry(ctx).or_default();
        let action = Self::action(r);
        if action == Action::Continue {
            let body = std::mem::take(&mut s.response_body);
            s.forwarded_response_body.extend(body);
            s.response_buffering = false;
        } else {
            s.response_buffering = true;
        }
        Ok(action)
    }

    /// Ends the stream: `on_done`, `on_log`, `on_delete`.
    pub fn finish(&mut self, ctx: u32) -> wasmtime::Result<()> {
        let _: i32 = self.call(ctx, "proxy_on_done", ctx as i32)?;
        self.call::<i32, ()>(ctx, "proxy_on_log", ctx as i32)?;
        self.call::<i32, ()>(ctx, "proxy_on_delete", ctx as i32)?;
        Ok(())
    }

    /// Delivers an HTTP callout response to the context that dispatched `token`.
    pub fn http_call_response(
        &mut self,
        token: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> wasmtime::Result<()> {
        let ctx = self
            .store
            .data()
            .http_calls
            .iter()
            .find(|c| c.token == token)
            .map(|c| c.context_id)
            .unwrap_or(self.root_id);
        let headers: Headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let n = headers.len() as i32;
        self.store.data_mut().call_response = (headers, body.to_vec(), Vec::new());
        self.call::<(i32, i32, i32, i32, i32), ()>(
            ctx,
            "proxy_on_http_call_response",
            (ctx as i32, token as i32, n, body.len() as i32, 0),
        )
    }

    /// Delivers a gRPC callout's answer to the context that dispatched `token`: `status` 0 with
    /// `message` (`proxy_on_grpc_receive`), otherwise the call's failure with that gRPC status
    /// (`proxy_on_grpc_close`, as Envoy reports errors and timeouts).
    pub fn grpc_call_response(
        &mut self,
        token: u32,
        status: u32,
        message: &[u8],
    ) -> wasmtime::Result<()> {
        let ctx = self
            .store
            .data()
            .grpc_calls
            .iter()
            .find(|c| c.token == token)
            .map(|c| c.context_id)
            .unwrap_or(self.root_id);
        if status == 0 {
            self.store.data_mut().grpc_receive = message.to_vec();
            self.call::<(i32, i32, i32), ()>(
                ctx,
                "proxy_on_grpc_receive",
                (ctx as i32, token as i32, message.len() as i32),
            )
        } else {
            self.call::<(i32, i32, i32), ()>(
                ctx,
                "proxy_on_grpc_close",
                (ctx as i32, token as i32, status as i32),
            )
        }
    }

    /// The root context's id (callouts it dispatched carry it).
    pub fn root_id(&self) -> u32 {
        self.root_id
    }

    /// A header of the request as the filter left it.
    pub fn request_header(&self, ctx: u32, name: &str) -> Option<String> {
        self.stream(ctx)
            .and_then(|s| s.maps.get(&MapKind::RequestHeaders))
            .and_then(|m| find_header(m, name).map(str::to_string))
    }

    /// A header of the response as the filter left it.
    pub fn response_header(&self, ctx: u32, name: &str) -> Option<String> {
        self.stream(ctx)
            .and_then(|s| s.maps.get(&MapKind::ResponseHeaders))
            .and_then(|m| find_header(m, name).map(str::to_string))
    }

    /// The stream state of a context.
    pub fn stream(&self, ctx: u32) -> Option<&StreamState> {
        self.store.data().streams.get(&ctx)
    }

    /// The local reply the filter sent on this context, if any.
    pub fn local_reply(&self, ctx: u32) -> Option<&LocalReply> {
        self.stream(ctx).and_then(|s| s.local_reply.as_ref())
    }

    /// A property the filter set on this context.
    pub fn property(&self, ctx: u32, path: &str) -> Option<Vec<u8>> {
        self.stream(ctx)
            .and_then(|s| s.set_properties.get(path).cloned())
    }
}
