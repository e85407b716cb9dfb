//! The compare-and-swap store abstraction over proxy-wasm shared data, so budget and circuit
//! state logic stays pure: the host layer implements [`SharedStore`] with host calls, tests and
//! benches use [`MemoryStore`].

use std::collections::HashMap;

/// A compare-and-swap key-value store (proxy-wasm shared data semantics).
pub trait SharedStore {
    /// Reads a value and its CAS token; `None` when the key is absent.
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Writes a value if `cas` still matches (`None` writes unconditionally); false on mismatch
    /// or refusal. As in Envoy, an absent key is created whatever `cas` is.
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool;
}

/// The CAS a read-modify-write passes to [`SharedStore::set`] after reading `read` (the entry's
/// CAS token, or `None` when the key was absent).
///
/// An absent key is written with a non-zero token, never unconditionally: Envoy creates an absent
/// key whatever the token, but checks a non-zero token against a key that exists. So when two
/// workers both read "absent", the second writer gets a mismatch and reads again, where an
/// unconditional write would overwrite the first one's update (a lost budget reservation). The
/// token only fails to protect if it equals the live entry's; Envoy's CAS counter is process-wide
/// and counts up from 1, so `u32::MAX` comes up once in about 4.3 billion shared-data writes.
pub fn cas_after_read(read: Option<u32>) -> Option<u32> {
    Some(read.unwrap_or(u32::MAX))
}

/// How many times a read-modify-write is tried before it gives up on contention.
pub const CAS_ATTEMPTS: usize = 16;

/// The read-modify-write of one key, shared by budgets, circuit and back-off records and the
/// cache's totals: reads `key`, lets `update` compute the new value from the current one (`None`
/// when absent), and writes it back under CAS ([`cas_after_read`]), trying again from the read
/// when another worker wrote in between, up to [`CAS_ATTEMPTS`] times.
///
/// `update` returns the value to write (`None` writes nothing) and a result for the caller.
/// Returns `None` only when every attempt lost the race.
pub fn cas_update<S, T, F>(store: &S, key: &str, mut update: F) -> Option<T>
where
    S: SharedStore + ?Sized,
    F: FnMut(Option<&[u8]>) -> (Option<Vec<u8>>, T),
{
    for _ in 0..CAS_ATTEMPTS {
        let current = store.get(key);
        let (bytes, cas) = match &current {
            Some((bytes, cas)) => (Some(bytes.as_slice()), Some(*cas)),
            None => (None, None),
        };
        let (next, result) = update(bytes);
        match next {
            None => return Some(result),
            Some(value) => {
                if store.set(key, &value, cas_after_read(cas)) {
                    return Some(result);
                }
            }
        }
    }
    None
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_that_read_absent_does_not_overwrite_another_workers_creation() {
        let store = MemoryStore::default();
        // Both workers read the key as absent; the first one creates it.
        let (first, second) = (store.get("k"), store.get("k"));
        assert!(first.is_none() && second.is_none());
        assert!(store.set("k", b"first", cas_after_read(first.map(|(_, c)| c))));
        // The second one's write is refused, so it reads again instead of overwriting.
        assert!(!store.set("k", b"second", cas_after_read(second.map(|(_, c)| c))));
        assert_eq!(store.get("k").unwrap().0, b"first");
        // What an unconditional write would have done.
        assert!(store.set("k", b"second", None));
        assert_eq!(store.get("k").unwrap().0, b"second");
    }
}
