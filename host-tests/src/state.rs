//! What the emulated host keeps: status codes, the recorded effects of the filter (local
//! replies, callouts, metrics, properties, logs), per-stream buffers and header maps, the state
//! Envoy shares between worker VMs, and the per-import call counts. No import logic lives here
//! (that is [`crate::imports`]); this module only defines the data the imports read and write.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::util::find_header;

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
    /// The kind for a proxy-wasm `MapType` code; `None` for codes the emulator does not model.
    pub(crate) fn from_code(code: i32) -> Option<Self> {
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
    pub(crate) request_buffering: bool,
    /// Whether the response body callback last returned `Pause`.
    pub(crate) response_buffering: bool,
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
    pub(crate) next_token: u32,
    /// How often the filter called each host import (see [`HostCalls`]).
    pub host_calls: HostCalls,
}

impl HostState {
    /// The stream state of the context the host is calling into (created when missing).
    pub(crate) fn stream(&mut self) -> &mut StreamState {
        let ctx = self.current_context;
        self.streams.entry(ctx).or_default()
    }
}


/// How many times the filter called each host import, by import name (`proxy_get_property`,
/// `fd_write`, …). Every linked import counts itself (see [`crate::imports`]); tests take the
/// counts around a request to pin what one request costs in host calls.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HostCalls(BTreeMap<&'static str, u64>);

impl HostCalls {
    /// Counts one call to `import`.
    pub fn record(&mut self, import: &'static str) {
        *self.0.entry(import).or_default() += 1;
    }

    /// Calls to `import` so far.
    pub fn get(&self, import: &str) -> u64 {
        self.0.get(import).copied().unwrap_or(0)
    }

    /// Calls to every import together.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// The counts by import name, in name order (imports never called are absent).
    pub fn by_import(&self) -> &BTreeMap<&'static str, u64> {
        &self.0
    }
}
