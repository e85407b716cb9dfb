//! The one seam between the request pipeline and the proxy: [`Host`].
//!
//! Everything a request needs from Envoy goes through this trait: header maps, body buffers,
//! properties, HTTP and gRPC callouts, local replies, time, randomness, shared data (the
//! [`SharedStore`] supertrait) and metrics by handle. `crate::host` implements it over the raw
//! proxy-wasm hostcalls; [`super::fake::FakeHost`] implements it in memory for native tests,
//! benches and fuzzing. The trait owns no decisions: every method is one host call, and a
//! refused call is `None`/`false`, never a panic.

use std::time::Duration;

use crate::accounting::MetricKind;
use crate::shared_store::SharedStore;

/// A header map of the current stream (or of a callout's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Map {
    /// The request headers (pseudo-headers `:path`, `:method`, `:authority` included).
    Request,
    /// The response headers (`:status` included).
    Response,
    /// The headers of the callout answer being delivered.
    CalloutResponse,
}

/// A body buffer of the current stream (or of a callout's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Body {
    /// The request body (the current chunk, or everything held so far).
    Request,
    /// The response body (the current chunk, or everything held so far).
    Response,
    /// The body of the callout answer being delivered.
    CalloutResponse,
    /// The message of the gRPC answer being delivered.
    GrpcResponse,
}

/// An HTTP callout to send (`dispatch_http_call`).
#[derive(Debug, Clone, Copy)]
pub struct HttpCall<'a> {
    /// The Envoy cluster to send it to.
    pub cluster: &'a str,
    /// Request headers, pseudo-headers included.
    pub headers: &'a [(&'a str, &'a str)],
    /// Request body.
    pub body: Option<&'a [u8]>,
    /// How long Envoy waits for the answer.
    pub timeout: Duration,
}

/// A gRPC callout to send (`dispatch_grpc_call`).
#[derive(Debug, Clone, Copy)]
pub struct GrpcCall<'a> {
    /// The Envoy cluster to send it to.
    pub cluster: &'a str,
    /// The fully qualified service name.
    pub service: &'a str,
    /// The method name.
    pub method: &'a str,
    /// The encoded request message.
    pub message: &'a [u8],
    /// How long Envoy waits for the answer.
    pub timeout: Duration,
}

/// A metric defined with the host; recording with it needs no lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MetricId(pub u32);

/// Everything the pipeline needs from the proxy. Reads take `&self`; anything that changes the
/// stream, sends something or records something takes `&mut self`.
pub trait Host: SharedStore {
    /// One header value; `None` when absent, unavailable in this phase, or not UTF-8.
    fn header(&self, map: Map, name: &str) -> Option<String>;
    /// Every header of a map (empty when unavailable).
    fn headers(&self, map: Map) -> Vec<(String, String)>;
    /// Sets (replaces) a header; false when refused.
    fn set_header(&mut self, map: Map, name: &str, value: &str) -> bool;
    /// Removes a header; false when refused.
    fn remove_header(&mut self, map: Map, name: &str) -> bool;

    /// The first `size` bytes of a body buffer (empty when unavailable).
    fn body(&self, body: Body, size: usize) -> Vec<u8>;
    /// Replaces the first `size` bytes of a body buffer with `data`; false when refused.
    fn replace_body(&mut self, body: Body, size: usize, data: &[u8]) -> bool;

    /// A property (`["source", "address"]`, endpoint metadata, …); `None` when absent.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    /// Sets a one-segment property (Envoy filter state, read by the access log).
    fn set_property(&mut self, name: &str, value: &[u8]) -> bool;

    /// Starts an HTTP callout; its token, or `None` when the host refused it.
    fn http_call(&mut self, call: &HttpCall<'_>) -> Option<u32>;
    /// Starts a gRPC callout; its token, or `None` when the host refused it.
    fn grpc_call(&mut self, call: &GrpcCall<'_>) -> Option<u32>;

    /// Answers the client locally; false when refused.
    fn send_reply(&mut self, status: u32, headers: &[(&str, &str)], body: &[u8]) -> bool;
    /// Resumes a request the pipeline paused; false when refused.
    fn resume_request(&mut self) -> bool;
    /// Resumes a response the pipeline paused; false when refused.
    fn resume_response(&mut self) -> bool;
    /// Asks the router to pick the route again (headers that select it changed).
    fn clear_route_cache(&mut self) -> bool;

    /// Wall-clock time, ns since the Unix epoch (0 when refused).
    fn now_ns(&self) -> u64;
    /// 64 bits from the host's random source.
    fn random_u64(&mut self) -> u64;

    /// Defines a metric; `None` when refused (recording with nothing is then a no-op).
    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<MetricId>;
    /// Adds `n` to a counter.
    fn increment_metric(&mut self, id: MetricId, n: u64);
    /// Records a histogram value or sets a gauge.
    fn record_metric(&mut self, id: MetricId, value: u64);

    /// Writes one log line.
    fn log(&self, level: log::Level, message: &str);
}

/// Milliseconds since the epoch, from the host clock.
pub fn now_ms<H: Host>(host: &H) -> u64 {
    host.now_ns() / 1_000_000
}
