//! Bounded cache of verified tokens, so a token seen again skips the signature check.
//!
//! * Key: SHA-256 over the provider index, the key-set fingerprint and the token. A 256-bit
//!   cryptographic hash makes a collision (a different token hitting another token's entry)
//!   infeasible, so no second hash is needed; on a hit the stored token length, provider and
//!   key-set fingerprint are compared as well. The token itself is not stored.
//! * Expiry: an entry is never returned at or after its token's `exp` (checked against the
//!   `now` passed in; expired entries are evicted on lookup), nor more than
//!   `MAX_ENTRY_AGE_SECONDS` after insertion (tokens without `exp`). A key rotation changes the
//!   key-set fingerprint, so entries verified with old keys miss.
//! * Eviction: CLOCK (second chance), O(1) amortised; capacity 0 disables the cache.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::verify::VerifiedToken;

/// Longest time an entry is served after insertion, seconds.
pub const MAX_ENTRY_AGE_SECONDS: u64 = 600;

type CacheKey = [u8; 32];

#[derive(Debug)]
struct Slot {
    key: CacheKey,
    token_len: usize,
    provider: usize,
    key_fingerprint: u64,
    valid_until: u64,
    referenced: bool,
    verified: VerifiedToken,
}

/// Hit and miss counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups not answered (absent, expired or mismatched).
    pub misses: u64,
    /// Entries dropped for room.
    pub evictions: u64,
}

/// The verified-token cache.
#[derive(Debug)]
pub struct VerifiedTokenCache {
    capacity: usize,
    slots: Vec<Option<Slot>>,
    index: HashMap<CacheKey, usize>,
    hand: usize,
    stats: CacheStats,
}

fn cache_key(provider: usize, key_fingerprint: u64, token: &str) -> CacheKey {
    let mut h = Sha256::new();
    h.update((provider as u64).to_be_bytes());
    h.update(key_fingerprint.to_be_bytes());
    h.update(token.as_bytes());
    let digest = h.finalize();
    let mut key = [0u8; 32];
    for (dst, src) in key.iter_mut().zip(digest.iter()) {
        *dst = *src;
    }
    key
}

impl VerifiedTokenCache {
    /// A cache holding at most `capacity` tokens (0: caches nothing).
    pub fn new(capacity: usize) -> Self {
        VerifiedTokenCache {
            capacity,
            slots: Vec::new(),
            index: HashMap::new(),
            hand: 0,
            stats: CacheStats::default(),
        }
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// False when the capacity is 0: nothing is stored, every lookup is a miss.
    pub fn is_enabled(&self) -> bool {
        self.capacity > 0
    }

    /// Hit, miss and eviction counters.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// The cached verification of `token` for `provider` under the key set with
    /// `key_fingerprint`, if present and still valid at `now_unix`.
    pub fn lookup(
        &mut self,
        provider: usize,
        key_fingerprint: u64,
        token: &str,
        now_unix: u64,
    ) -> Option<VerifiedToken> {
        if !self.is_enabled() {
            // No entry can exist: skip hashing the token.
            self.stats.misses += 1;
            return None;
        }
        let key = cache_key(provider, key_fingerprint, token);
        let Some(&slot_index) = self.index.get(&key) else {
            self.stats.misses += 1;
            return None;
        };
        let slot = self.slots.get_mut(slot_index).and_then(Option::as_mut);
        let valid = match slot {
            Some(s)
                if s.key == key
                    && s.token_len == token.len()
                    && s.provider == provider
                    && s.key_fingerprint == key_fingerprint =>
            {
                if now_unix < s.valid_until {
                    s.referenced = true;
                    self.stats.hits += 1;
                    return Some(s.verified.clone());
                }
                false
            }
            _ => false,
        };
        if !valid {
            self.remove_slot(slot_index);
        }
        self.stats.misses += 1;
        None
    }

    fn remove_slot(&mut self, slot_index: usize) {
        if let Some(slot) = self.slots.get_mut(slot_index) {
            if let Some(old) = slot.take() {
                self.index.remove(&old.key);
            }
        }
    }

    /// Stores a verification made at `now_unix`. Tokens already expired are not stored.
    pub fn insert(
        &mut self,
        provider: usize,
        key_fingerprint: u64,
        token: &str,
        verified: VerifiedToken,
        now_unix: u64,
    ) {
        if self.capacity == 0 {
            return;
        }
        let age_limit = now_unix.saturating_add(MAX_ENTRY_AGE_SECONDS);
        let valid_until = verified.exp.map_or(age_limit, |exp| exp.min(age_limit));
        if valid_until <= now_unix {
            return;
        }
        let key = cache_key(provider, key_fingerprint, token);
        let slot = Slot {
            key,
            token_len: token.len(),
            provider,
            key_fingerprint,
            valid_until,
            referenced: false,
            verified,
        };
        if let Some(&existing) = self.index.get(&key) {
            if let Some(s) = self.slots.get_mut(existing) {
                *s = Some(slot);
            }
            return;
        }
        let target = if self.slots.len() < self.capacity {
            self.slots.push(None);
            self.slots.len() - 1
        } else {
            self.evict_one(now_unix)
        };
        if let Some(s) = self.slots.get_mut(target) {
            *s = Some(slot);
            self.index.insert(key, target);
        }
    }

    /// Frees one slot with the CLOCK hand (empty or expired slots first) and returns it.
    fn evict_one(&mut self, now_unix: u64) -> usize {
        let n = self.slots.len();
        // Two full turns always find a victim: the first clears every referenced bit.
        for _ in 0..(2 * n) {
            let i = self.hand % n.max(1);
            self.hand = (i + 1) % n.max(1);
            match self.slots.get_mut(i) {
                Some(None) => return i,
                Some(Some(s)) if s.valid_until <= now_unix || !s.referenced => {
                    self.remove_slot(i);
                    self.stats.evictions += 1;
                    return i;
                }
                Some(Some(s)) => s.referenced = false,
                None => {}
            }
        }
        let i = self.hand % n.max(1);
        self.remove_slot(i);
        self.stats.evictions += 1;
        i
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn vt(sub: &str, exp: Option<u64>) -> VerifiedToken {
        let mut claims = Map::new();
        claims.insert("sub".into(), sub.into());
        VerifiedToken::for_tests(sub, exp, claims)
    }

    #[test]
    fn hit_and_miss() {
        let mut c = VerifiedTokenCache::new(10);
        assert!(c.lookup(0, 1, "a.b.c", 100).is_none());
        c.insert(0, 1, "a.b.c", vt("alice", Some(200)), 100);
        assert_eq!(
            c.lookup(0, 1, "a.b.c", 150).unwrap().subject.as_deref(),
            Some("alice")
        );
        // Other provider, other key set, other token: misses.
        assert!(c.lookup(1, 1, "a.b.c", 150).is_none());
        assert!(c.lookup(0, 2, "a.b.c", 150).is_none());
        assert!(c.lookup(0, 1, "a.b.d", 150).is_none());
        let s = c.stats();
        assert_eq!((s.hits, s.misses), (1, 4));
    }

    #[test]
    fn never_returns_expired_entry() {
        let mut c = VerifiedTokenCache::new(10);
        c.insert(0, 1, "t", vt("a", Some(200)), 100);
        assert!(c.lookup(0, 1, "t", 199).is_some());
        assert!(c.lookup(0, 1, "t", 200).is_none());
        assert_eq!(c.len(), 0, "expired entry evicted on lookup");
        // Already expired at insertion: not stored.
        c.insert(0, 1, "t", vt("a", Some(50)), 100);
        assert!(c.is_empty());
        // No exp: bounded by the maximum entry age.
        c.insert(0, 1, "u", vt("a", None), 100);
        assert!(c
            .lookup(0, 1, "u", 100 + MAX_ENTRY_AGE_SECONDS - 1)
            .is_some());
        assert!(c.lookup(0, 1, "u", 100 + MAX_ENTRY_AGE_SECONDS).is_none());
    }

    #[test]
    fn bounded_with_second_chance() {
        let mut c = VerifiedTokenCache::new(3);
        for t in ["t1", "t2", "t3"] {
            c.insert(0, 1, t, vt(t, Some(1000)), 0);
        }
        assert!(c.lookup(0, 1, "t1", 1).is_some()); // referenced: survives the next eviction
        c.insert(0, 1, "t4", vt("t4", Some(1000)), 1);
        assert_eq!(c.len(), 3);
        assert!(c.lookup(0, 1, "t1", 2).is_some());
        assert!(c.lookup(0, 1, "t2", 2).is_none());
        assert!(c.lookup(0, 1, "t4", 2).is_some());
        for i in 0..100 {
            c.insert(0, 1, &format!("x{i}"), vt("x", Some(1000)), 3);
        }
        assert_eq!(c.len(), 3);
        assert!(c.stats().evictions >= 98);
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let mut c = VerifiedTokenCache::new(0);
        assert!(!c.is_enabled());
        c.insert(0, 1, "t", vt("a", Some(200)), 100);
        assert!(c.lookup(0, 1, "t", 150).is_none());
        assert!(c.is_empty());
        assert_eq!(c.stats().misses, 1);
        assert!(VerifiedTokenCache::new(1).is_enabled());
    }
}
