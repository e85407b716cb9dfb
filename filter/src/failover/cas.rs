//! Bounded compare-and-swap read-modify-write over a [`SharedStore`] key, shared by the circuit
//! breaker and the back-off window records.

use crate::shared_store::{cas_after_read, SharedStore};

/// How many times a read-modify-write is retried when another worker wins the CAS race.
pub const MAX_CAS_ATTEMPTS: usize = 8;

/// Reads `key`, lets `update` compute a new value from the current one (`None` when absent),
/// and writes it back under CAS, retrying up to [`MAX_CAS_ATTEMPTS`] times on contention.
///
/// `update` returns the value to write (`None` leaves the record untouched) and a result for
/// the caller. Returns `None` only when every attempt lost the race.
pub fn cas_update<S, T, F>(store: &S, key: &str, mut update: F) -> Option<T>
where
    S: SharedStore + ?Sized,
    F: FnMut(Option<&[u8]>) -> (Option<Vec<u8>>, T),
{
    for _ in 0..MAX_CAS_ATTEMPTS {
        let current = store.get(key);
        let (bytes, token) = match &current {
            Some((bytes, token)) => (Some(bytes.as_slice()), Some(*token)),
            None => (None, None),
        };
        let token = cas_after_read(token);
        let (next, result) = update(bytes);
        match next {
            None => return Some(result),
            Some(value) => {
                if store.set(key, &value, token) {
                    return Some(result);
                }
            }
        }
    }
    None
}
