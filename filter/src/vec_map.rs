//! A small ordered map: a `Vec` of `(key, value)` pairs kept sorted by key.
//!
//! For maps that hold a handful of entries (a streamed completion's choices and tool calls). It
//! iterates in the same order as a `BTreeMap` and finds a key by binary search too, but it is one
//! `Vec` instead of `BTreeMap`'s node code: each `BTreeMap<K, V>` key/value pair compiles 5–10 KB
//! of `.wasm` of its own (docs/module-size.md §7). Inserting shifts the entries after the key,
//! which is cheap at the sizes these maps have (a few; indexes arrive in order, so each insert
//! lands at the end). Pure.

/// A map ordered by key (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<K: Ord, V> VecMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    fn find(&self, key: &K) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.cmp(key))
    }

    /// The value of `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        let at = self.find(key).ok()?;
        self.entries.get(at).map(|(_, v)| v)
    }

    /// The value of `key`, to change.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let at = self.find(key).ok()?;
        self.entries.get_mut(at).map(|(_, v)| v)
    }

    /// The value of `key`, inserted first as `V::default()` when absent (`entry().or_default()`).
    /// Always `Some`: the slot was found or just filled (an `Option` only because the filter
    /// indexes nothing unchecked).
    pub fn get_or_default(&mut self, key: K) -> Option<&mut V>
    where
        V: Default,
    {
        let at = match self.find(&key) {
            Ok(at) => at,
            Err(at) => {
                self.entries.insert(at, (key, V::default()));
                at
            }
        };
        self.entries.get_mut(at).map(|(_, v)| v)
    }

    /// Sets `key` to `value`; the old value, if there was one.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(at) => self
                .entries
                .get_mut(at)
                .map(|(_, v)| std::mem::replace(v, value)),
            Err(at) => {
                self.entries.insert(at, (key, value));
                None
            }
        }
    }

    /// Removes and returns the entry with the smallest key.
    pub fn pop_first(&mut self) -> Option<(K, V)> {
        (!self.entries.is_empty()).then(|| self.entries.remove(0))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// The values in key order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The values in key order, taken.
    pub fn into_values(self) -> impl Iterator<Item = V> {
        self.entries.into_iter().map(|(_, v)| v)
    }
}

impl<K, V> IntoIterator for VecMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;

    /// The entries in key order, taken.
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// xorshift64*: a fixed sequence, so failures reproduce.
    fn sequence(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn behaves_like_a_btree_map_under_random_operations() {
        let mut next = sequence(7);
        let mut ours: VecMap<u64, u64> = VecMap::new();
        let mut reference: BTreeMap<u64, u64> = BTreeMap::new();
        for step in 0..20_000u64 {
            let key = next() % 64;
            match next() % 6 {
                0 => assert_eq!(ours.insert(key, step), reference.insert(key, step)),
                1 => {
                    *ours.get_or_default(key).unwrap() += step;
                    *reference.entry(key).or_default() += step;
                }
                2 => {
                    if let (Some(a), Some(b)) = (ours.get_mut(&key), reference.get_mut(&key)) {
                        *a += 1;
                        *b += 1;
                    }
                }
                3 => assert_eq!(ours.pop_first(), reference.pop_first()),
                4 => assert_eq!(ours.get(&key), reference.get(&key)),
                _ if step % 1000 == 0 => {
                    ours.clear();
                    reference.clear();
                }
                _ => {}
            }
            assert_eq!(ours.len(), reference.len());
            assert_eq!(ours.is_empty(), reference.is_empty());
        }
        assert!(ours.iter().eq(reference.iter()));
        assert!(ours.values().eq(reference.values()));
        assert!(ours
            .clone()
            .into_values()
            .eq(reference.clone().into_values()));
        assert!(ours.into_iter().eq(reference));
    }
}
