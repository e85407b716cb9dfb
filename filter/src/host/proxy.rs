//! [`Host`] over the proxy-wasm hostcalls of the current context. Every refused call becomes
//! `None`/`false`/empty; the calls whose SDK wrappers panic on unexpected statuses go through
//! [`super::abi`] instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType, StreamType};

use super::abi;
use crate::accounting::MetricKind;
use crate::exchange::host::{Body, GrpcCall, Host, HttpCall, Map, MetricId};
use crate::shared_store::SharedStore;

/// Values drawn from [`ProxyHost::random_u64`] in this VM.
static DRAWS: AtomicU64 = AtomicU64::new(0);

/// The proxy, as seen from whichever context is current. Zero-sized: every hook makes one.
pub struct ProxyHost;

fn map_type(map: Map) -> MapType {
    match map {
        Map::Request => MapType::HttpRequestHeaders,
        Map::Response => MapType::HttpResponseHeaders,
        Map::CalloutResponse => MapType::HttpCallResponseHeaders,
    }
}

fn buffer_type(body: Body) -> BufferType {
    match body {
        Body::Request => BufferType::HttpRequestBody,
        Body::Response => BufferType::HttpResponseBody,
        Body::CalloutResponse => BufferType::HttpCallResponseBody,
        Body::GrpcResponse => BufferType::GrpcReceiveBuffer,
    }
}

/// The proxy's log level for a `log` level.
pub fn log_level(level: log::Level) -> LogLevel {
    match level {
        log::Level::Error => LogLevel::Error,
        log::Level::Warn => LogLevel::Warn,
        log::Level::Info => LogLevel::Info,
        log::Level::Debug => LogLevel::Debug,
        log::Level::Trace => LogLevel::Trace,
    }
}

impl SharedStore for ProxyHost {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(value), Some(cas))) => Some((value, cas)),
            Ok((Some(value), None)) => Some((value, 0)),
            _ => None,
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        hostcalls::set_shared_data(key, Some(value), cas).is_ok()
    }
}

impl Host for ProxyHost {
    fn header(&self, map: Map, name: &str) -> Option<String> {
        abi::map_value(map_type(map), name)
    }

    fn headers(&self, map: Map) -> Vec<(String, String)> {
        abi::map_pairs(map_type(map))
    }

    fn set_header(&mut self, map: Map, name: &str, value: &str) -> bool {
        abi::replace_map_value(map_type(map), name, value)
    }

    fn remove_header(&mut self, map: Map, name: &str) -> bool {
        abi::remove_map_value(map_type(map), name)
    }

    fn body(&self, body: Body, size: usize) -> Vec<u8> {
        abi::buffer(buffer_type(body), 0, size)
    }

    fn replace_body(&mut self, body: Body, size: usize, data: &[u8]) -> bool {
        abi::set_buffer(buffer_type(body), 0, size, data)
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        hostcalls::get_property(path.to_vec()).ok().flatten()
    }

    fn set_property(&mut self, name: &str, value: &[u8]) -> bool {
        abi::set_property(name, value)
    }

    fn http_call(&mut self, call: &HttpCall<'_>) -> Option<u32> {
        hostcalls::dispatch_http_call(
            call.cluster,
            call.headers.to_vec(),
            call.body,
            Vec::new(),
            call.timeout,
        )
        .ok()
    }

    fn grpc_call(&mut self, call: &GrpcCall<'_>) -> Option<u32> {
        hostcalls::dispatch_grpc_call(
            call.cluster,
            call.service,
            call.method,
            Vec::new(),
            Some(call.message),
            call.timeout,
        )
        .ok()
    }

    fn send_reply(&mut self, status: u32, headers: &[(&str, &str)], body: &[u8]) -> bool {
        hostcalls::send_http_response(status, headers.to_vec(), Some(body)).is_ok()
    }

    fn resume_request(&mut self) -> bool {
        abi::continue_stream(StreamType::HttpRequest)
    }

    fn resume_response(&mut self) -> bool {
        abi::continue_stream(StreamType::HttpResponse)
    }

    fn clear_route_cache(&mut self) -> bool {
        hostcalls::call_foreign_function("clear_route_cache", None).is_ok()
    }

    fn now_ns(&self) -> u64 {
        abi::now_nanos()
    }

    fn random_u64(&mut self) -> u64 {
        // A VM-local count spread by SplitMix keeps successive values distinct even if the
        // host's entropy repeats (or is refused, when the clock stands in for it).
        let n = DRAWS.fetch_add(1, Ordering::Relaxed);
        let distinct = crate::random::IdRng::new(n).next_u64();
        let mut seed = [0u8; 8];
        let entropy = if getrandom::fill(&mut seed).is_ok() {
            u64::from_le_bytes(seed)
        } else {
            abi::now_nanos()
        };
        entropy ^ distinct
    }

    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<MetricId> {
        let kind = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Histogram => MetricType::Histogram,
            MetricKind::Gauge => MetricType::Gauge,
        };
        abi::define_metric(kind, name).map(MetricId)
    }

    fn increment_metric(&mut self, id: MetricId, n: u64) {
        let _ = hostcalls::increment_metric(id.0, i64::try_from(n).unwrap_or(i64::MAX));
    }

    fn record_metric(&mut self, id: MetricId, value: u64) {
        let _ = hostcalls::record_metric(id.0, value);
    }

    fn log(&self, level: log::Level, message: &str) {
        let _ = hostcalls::log(log_level(level), message);
    }
}

/// The `log` crate's records (from the pure modules) go to Envoy's log.
pub struct HostLogger;

/// The VM-wide logger instance.
pub static HOST_LOGGER: HostLogger = HostLogger;

impl log::Log for HostLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let _ = hostcalls::log(
            log_level(record.level()),
            &format!("tollgate: {}", record.args()),
        );
    }

    fn flush(&self) {}
}

/// How long Envoy waits between root ticks when the VM has periodic work.
pub fn set_tick(period: Duration) {
    let _ = hostcalls::set_tick_period(period);
}
