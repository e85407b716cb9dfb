//! Host call wrappers that never panic on an unexpected status: failures are logged and turned
//! into `None`/`false`, so a refused host call degrades one feature instead of killing the VM.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, MapType};

/// Logger that forwards `log` records to Envoy, ignoring host failures.
pub struct HostLogger;

/// The VM-wide logger instance.
pub static HOST_LOGGER: HostLogger = HostLogger;

impl log::Log for HostLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = match record.level() {
            log::Level::Error => LogLevel::Error,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Info => LogLevel::Info,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Trace => LogLevel::Trace,
        };
        let _ = hostcalls::log(level, &format!("tollgate: {}", record.args()));
    }

    fn flush(&self) {}
}

/// Writes one log line prefixed with the correlation id.
pub fn log_with_id(level: LogLevel, request_id: &str, message: &str) {
    let _ = hostcalls::log(level, &format!("tollgate [{request_id}] {message}"));
}

/// Reads one header (or trailer) value; `None` when absent or unavailable.
pub fn header(map: MapType, name: &str) -> Option<String> {
    super::abi::map_value(map, name)
}

/// Sets (replaces) a header; logs and returns false when the host refuses.
pub fn set_header(map: MapType, name: &str, value: &str) -> bool {
    super::abi::replace_map_value(map, name, value)
}

/// Removes a header; returns false when the host refuses.
pub fn remove_header(map: MapType, name: &str) -> bool {
    super::abi::remove_map_value(map, name)
}

/// Every header of a map (empty when the host refuses).
pub fn headers(map: MapType) -> Vec<(String, String)> {
    super::abi::map_pairs(map)
}

/// Current wall-clock time in nanoseconds since the Unix epoch (0 if the host refuses).
pub fn now_nanos() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
