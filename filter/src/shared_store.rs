//! The compare-and-swap store abstraction over proxy-wasm shared data, so budget and circuit
//! state logic stays pure: the host layer implements [`SharedStore`] with host calls, tests and
//! benches use [`MemoryStore`].

use std::collections::HashMap;

/// A compare-and-swap key-value store (proxy-wasm shared data semantics).
pub trait SharedStore {
    /// Reads a value and its CAS token; `None` when the key is absent.
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Writes a value if `cas` still matches (`None` writes unconditionally); false on mismatch
    /// or refusal.
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool;
}

/// An in-memory [`SharedStore`] for tests and benches.
#[derive(Debug, Default)]
pub struct MemoryStore {
    data: std::cell::RefCell<HashMap<String, (Vec<u8>, u32)>>,
    next_cas: std::cell::Cell<u32>,
}

impl SharedStore for MemoryStore {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.data.try_borrow().ok()?.get(key).cloned()
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        let Ok(mut data) = self.data.try_borrow_mut() else {
            return false;
        };
        if let (Some(expected), Some((_, current))) = (cas, data.get(key)) {
            if expected != *current {
                return false;
            }
        }
        let next = self.next_cas.get().wrapping_add(1).max(1);
        self.next_cas.set(next);
        data.insert(key.to_string(), (value.to_vec(), next));
        true
    }
}
