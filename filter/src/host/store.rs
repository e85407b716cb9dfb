//! Proxy-wasm shared data behind the pure [`SharedStore`] trait.

use proxy_wasm::hostcalls;

use crate::shared_store::SharedStore;

/// Shared data of this Envoy process (shared by every worker VM with the same `vm_id`).
pub struct HostStore;

impl SharedStore for HostStore {
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
