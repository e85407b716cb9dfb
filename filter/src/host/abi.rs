//! Raw proxy-wasm imports that never panic: header maps, body buffers, properties, stream
//! resumption, metric definitions and the clock.
//!
//! The SDK's `hostcalls::get_map_value`, `set_map_value`, `remove_map_value`, `get_map`,
//! `get_buffer`, `set_buffer`, `set_property`, `resume_http_*`, `define_metric` and
//! `get_current_time` `panic!` on any status they do not expect — Envoy answers
//! `BadArgument` when a map is not available in the current phase (e.g. request headers read while
//! encoding some responses), `NotFound` when there is no buffer or stream info — and `get_map*`
//! unwrap UTF-8; a panic kills the VM for every request on that worker. These wrappers call the
//! same imports, read the status as a plain integer and turn anything but success into
//! `None`/`false`.

use proxy_wasm::types::{BufferType, MapType, MetricType, StreamType};

#[allow(clashing_extern_declarations)]
#[link(wasm_import_module = "env")]
extern "C" {
    #[link_name = "proxy_get_header_map_value"]
    fn raw_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    #[link_name = "proxy_replace_header_map_value"]
    fn raw_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    #[link_name = "proxy_remove_header_map_value"]
    fn raw_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    #[link_name = "proxy_set_buffer_bytes"]
    fn raw_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        buffer_data: *const u8,
        buffer_size: usize,
    ) -> u32;
    #[link_name = "proxy_set_property"]
    fn raw_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    #[link_name = "proxy_get_buffer_bytes"]
    fn raw_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    #[link_name = "proxy_continue_stream"]
    fn raw_continue_stream(stream_type: u32) -> u32;
    #[link_name = "proxy_define_metric"]
    fn raw_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    #[link_name = "proxy_get_current_time_nanoseconds"]
    fn raw_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    #[link_name = "proxy_get_header_map_pairs"]
    fn raw_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
}

const STATUS_OK: u32 = 0;

/// Takes ownership of a buffer the host allocated through the module's allocator.
fn take_host_buffer(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        return Vec::new();
    }
    // SAFETY: the host filled `size` bytes it allocated with `proxy_on_memory_allocate`, which
    // the SDK implements with a `Vec<u8>` of exactly that capacity; ownership passes to us.
    unsafe { Vec::from_raw_parts(data, size, size) }
}

/// One header (or trailer) value; `None` when absent, unavailable in this phase, or not UTF-8.
pub fn map_value(map: MapType, key: &str) -> Option<String> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: plain host import; the out-pointers point at locals.
    let status = unsafe {
        raw_get_header_map_value(map as u32, key.as_ptr(), key.len(), &mut data, &mut size)
    };
    if status != STATUS_OK {
        return None;
    }
    String::from_utf8(take_host_buffer(data, size)).ok()
}

/// Sets (replaces) a header; false when the host refuses.
pub fn replace_map_value(map: MapType, key: &str, value: &str) -> bool {
    // SAFETY: plain host import reading the two slices.
    let status = unsafe {
        raw_replace_header_map_value(
            map as u32,
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
        )
    };
    status == STATUS_OK
}

/// Removes a header; false when the host refuses.
pub fn remove_map_value(map: MapType, key: &str) -> bool {
    // SAFETY: plain host import reading the key slice.
    let status = unsafe { raw_remove_header_map_value(map as u32, key.as_ptr(), key.len()) };
    status == STATUS_OK
}

/// Replaces `size` bytes at `start` of a body buffer with `data`; false when the host refuses.
pub fn set_buffer(buffer: BufferType, start: usize, size: usize, data: &[u8]) -> bool {
    // SAFETY: plain host import reading the data slice.
    let status =
        unsafe { raw_set_buffer_bytes(buffer as u32, start, size, data.as_ptr(), data.len()) };
    status == STATUS_OK
}

/// The first `max_size` bytes of a body buffer; empty when absent or refused.
pub fn buffer(buffer: BufferType, start: usize, max_size: usize) -> Vec<u8> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: plain host import; the out-pointers point at locals.
    let status =
        unsafe { raw_get_buffer_bytes(buffer as u32, start, max_size, &mut data, &mut size) };
    if status != STATUS_OK {
        return Vec::new();
    }
    take_host_buffer(data, size)
}

/// Resumes a paused stream (`StreamType` as its integer); false when refused.
pub fn continue_stream(stream: StreamType) -> bool {
    // SAFETY: plain host import.
    let status = unsafe { raw_continue_stream(stream as u32) };
    status == STATUS_OK
}

/// Defines a metric; `None` when refused.
pub fn define_metric(kind: MetricType, name: &str) -> Option<u32> {
    let mut id: u32 = 0;
    // SAFETY: plain host import reading the name slice; the out-pointer points at a local.
    let status = unsafe { raw_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) };
    (status == STATUS_OK).then_some(id)
}

/// Wall-clock time in ns since the epoch; 0 when refused.
pub fn now_nanos() -> u64 {
    let mut now: u64 = 0;
    // SAFETY: plain host import; the out-pointer points at a local.
    let status = unsafe { raw_get_current_time_nanoseconds(&mut now) };
    if status == STATUS_OK {
        now
    } else {
        0
    }
}

/// Sets a one-segment property (Envoy filter state `wasm.<name>`); false when refused.
pub fn set_property(name: &str, value: &[u8]) -> bool {
    // SAFETY: plain host import reading the two slices.
    let status =
        unsafe { raw_set_property(name.as_ptr(), name.len(), value.as_ptr(), value.len()) };
    status == STATUS_OK
}

/// Every header of a map (empty when unavailable).
pub fn map_pairs(map: MapType) -> Vec<(String, String)> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: plain host import; the out-pointers point at locals.
    let status = unsafe { raw_get_header_map_pairs(map as u32, &mut data, &mut size) };
    if status != STATUS_OK {
        return Vec::new();
    }
    decode_pairs(&take_host_buffer(data, size)).unwrap_or_default()
}

/// Decodes the proxy-wasm map serialization: a little-endian u32 count, then per pair the key
/// and value lengths (u32 each), then the keys and values, each followed by a NUL byte.
fn decode_pairs(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let u32_at = |at: usize| -> Option<usize> {
        let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(raw)).ok()
    };
    let count = u32_at(0)?;
    let mut sizes = Vec::with_capacity(count.min(1024));
    for i in 0..count {
        let at = 4usize.checked_add(i.checked_mul(8)?)?;
        sizes.push((u32_at(at)?, u32_at(at.checked_add(4)?)?));
    }
    let mut at = 4usize.checked_add(count.checked_mul(8)?)?;
    let mut out = Vec::with_capacity(sizes.len());
    for (key_len, value_len) in sizes {
        let key = bytes.get(at..at.checked_add(key_len)?)?;
        at = at.checked_add(key_len)?.checked_add(1)?;
        let value = bytes.get(at..at.checked_add(value_len)?)?;
        at = at.checked_add(value_len)?.checked_add(1)?;
        out.push((
            String::from_utf8_lossy(key).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    Some(out)
}
