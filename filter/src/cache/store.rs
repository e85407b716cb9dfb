//! Entries in proxy-wasm shared data, shared by every worker of one Envoy, bounded by count and
//! bytes, with LRU eviction and a TTL.
//!
//! # Layout
//! Shared data has get, set and compare-and-swap per key, and no delete: a key once written lives
//! as long as the VM. So the cache writes a fixed set of keys and reuses them. It is
//! set-associative: `sets` sets of `ways` slots (`max_entries = sets × ways`). A key's set is
//! chosen by its hash. Per set there is:
//! - an **index** key (`…i.<set>`, 16 × 41 bytes): for each way its state, generation, the first
//!   16 bytes of the entry's key, its size, expiry and last use, plus the set's next generation;
//! - one **slot** key per way (`…s.<set>.<way>`) holding the encoded entry (or nothing).
//!
//! A lookup reads one index and one slot. Every change of a set is one CAS on its index, so the
//! index is always the truth: LRU and the byte bound (`max_bytes / sets` per set) are enforced
//! there, and the bounds hold by construction — at most `sets × ways` entries, at most
//! `sets × max_bytes / sets` bytes accounted. LRU runs within a set (a 16-way approximation of
//! a global LRU). A totals key (`…totals`) holds entries and bytes for the gauges, updated by CAS
//! with the exact delta of each committed index change.
//!
//! # Writing an entry
//! 1. CAS the index: claim a way (empty, expired, else least recently used; more ways are evicted
//!    until the set's bytes fit), give it the set's next generation, record the new key, size and
//!    expiry. On a CAS mismatch, re-read and retry (bounded).
//! 2. Write the slot: read the slot's CAS token, re-read the index to check the claim still
//!    stands (same way, same generation), then set the slot with that token. A mismatch means
//!    someone else wrote the slot in between: re-check and retry, or give up when the claim is
//!    gone.
//! 3. Blank the slots of evicted ways the same way (only while the index still shows them empty).
//!
//! # Races, and why none serves a wrong answer
//! - Readers check the slot's full key and generation against the index. A slot not yet written
//!   (between steps 1 and 2), or written by a claimant whose claim was already taken over, fails
//!   the check and reads as a miss.
//! - Two claimants of one way are ordered by the index CAS; the slot CAS plus the re-check in
//!   step 2 make the later claim's data the one that stays.
//! - Between steps 1 and 2/3 a slot still holds its previous value, so for that instant the bytes
//!   in shared data can exceed the accounted bytes by the entries being written at that moment
//!   (at most one `max_entry_bytes` per writer in flight). The accounted bytes never exceed the
//!   bound.
//! - A key that does not exist yet is created unconditionally (shared data has no
//!   create-if-absent): two workers creating one at once can lose a claim or a write, which then
//!   reads as a miss until the way is reused. [`CacheStore::initialise`] creates every index and
//!   slot key at configure time, so under traffic every write is a CAS.
//! - A hit updates the way's last use with one CAS attempt; losing it only ages that entry.
//! - A worker cut off between steps (it cannot be, inside one host callback, short of a VM crash)
//!   leaves a way whose slot reads as a miss until it is evicted.

use super::entry::{self, Entry, SlotContent};
use super::key::CacheKey;
use super::settings::Geometry;
use crate::shared_store::{cas_after_read, cas_update, SharedStore, CAS_ATTEMPTS};

const INDEX_MAGIC: &[u8; 4] = b"TGI1";
/// The value of a slot holding nothing. Not empty: the proxy-wasm SDK reads an empty value as
/// no value, and a slot that reads as absent could not be written by CAS.
const BLANK: &[u8] = b"-";
const WAY_BYTES: usize = 1 + 4 + 16 + 4 + 8 + 8;

/// One way of a set, as its index records it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Way {
    live: bool,
    generation: u32,
    key_prefix: [u8; 16],
    size: u32,
    expires_ms: u64,
    last_used_ms: u64,
}

impl Way {
    fn holds(&self, key: &CacheKey) -> bool {
        self.live && key.0.starts_with(&self.key_prefix)
    }

    fn expired(&self, now_ms: u64) -> bool {
        self.expires_ms <= now_ms
    }
}

/// The index of one set.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SetIndex {
    next_generation: u32,
    ways: Vec<Way>,
}

impl SetIndex {
    fn empty(ways: u32) -> Self {
        Self {
            next_generation: 1,
            ways: vec![Way::default(); ways as usize],
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.ways.len() * WAY_BYTES);
        out.extend_from_slice(INDEX_MAGIC);
        out.extend_from_slice(&self.next_generation.to_be_bytes());
        for w in &self.ways {
            out.push(u8::from(w.live));
            out.extend_from_slice(&w.generation.to_be_bytes());
            out.extend_from_slice(&w.key_prefix);
            out.extend_from_slice(&w.size.to_be_bytes());
            out.extend_from_slice(&w.expires_ms.to_be_bytes());
            out.extend_from_slice(&w.last_used_ms.to_be_bytes());
        }
        out
    }

    /// Decodes an index of exactly `ways` ways; anything else is `None`.
    fn decode(bytes: &[u8], ways: u32) -> Option<Self> {
        let (magic, rest) = bytes.split_first_chunk::<4>()?;
        if magic != INDEX_MAGIC {
            return None;
        }
        let (next, mut rest) = rest.split_first_chunk::<4>()?;
        if rest.len() != ways as usize * WAY_BYTES {
            return None;
        }
        let mut out = Vec::with_capacity(ways as usize);
        while let Some((w, tail)) = rest.split_first_chunk::<WAY_BYTES>() {
            rest = tail;
            let (live, w) = w.split_first_chunk::<1>()?;
            let (generation, w) = w.split_first_chunk::<4>()?;
            let (key_prefix, w) = w.split_first_chunk::<16>()?;
            let (size, w) = w.split_first_chunk::<4>()?;
            let (expires, w) = w.split_first_chunk::<8>()?;
            let (last_used, _) = w.split_first_chunk::<8>()?;
            out.push(Way {
                live: live == &[1],
                generation: u32::from_be_bytes(*generation),
                key_prefix: *key_prefix,
                size: u32::from_be_bytes(*size),
                expires_ms: u64::from_be_bytes(*expires),
                last_used_ms: u64::from_be_bytes(*last_used),
            });
        }
        Some(Self {
            next_generation: u32::from_be_bytes(*next),
            ways: out,
        })
    }

    fn live_bytes(&self) -> u64 {
        self.ways
            .iter()
            .filter(|w| w.live)
            .map(|w| u64::from(w.size))
            .sum()
    }
}

/// Entries and bytes the cache accounts (all sets together).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Entries held.
    pub entries: u64,
    /// Bytes held (encoded entries).
    pub bytes: u64,
}

/// The stored form of [`Totals`]: signed sums of every committed delta. Two workers may apply
/// their deltas in either order, so a running sum can dip below zero for a moment; it is
/// clamped only when read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RawTotals {
    entries: i64,
    bytes: i64,
}

impl RawTotals {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&self.entries.to_be_bytes());
        out.extend_from_slice(&self.bytes.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let (entries, rest) = bytes.split_first_chunk::<8>()?;
        let (bytes, _) = rest.split_first_chunk::<8>()?;
        Some(Self {
            entries: i64::from_be_bytes(*entries),
            bytes: i64::from_be_bytes(*bytes),
        })
    }

    fn clamped(&self) -> Totals {
        Totals {
            entries: u64::try_from(self.entries).unwrap_or(0),
            bytes: u64::try_from(self.bytes).unwrap_or(0),
        }
    }
}

/// Why a lookup missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissReason {
    /// No entry for the key.
    Absent,
    /// The entry's TTL has passed.
    Expired,
    /// The index names the key but the slot holds something else (a write in progress).
    InFlight,
}

/// The result of a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupOutcome {
    /// The entry, as stored.
    Hit(Entry),
    /// Nothing to serve.
    Miss(MissReason),
}

/// Why an answer was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// The encoded entry is larger than `max_entry_bytes`.
    TooLarge,
    /// A live entry for the key exists already (another request stored it first).
    AlreadyCached,
    /// The index kept changing under the writer, or the store refused a write.
    Contended,
}

impl NotStored {
    /// Stable name for metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            NotStored::TooLarge => "too_large",
            NotStored::AlreadyCached => "already_cached",
            NotStored::Contended => "contended",
        }
    }
}

/// What an insert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Stored, or why not.
    pub result: Result<(), NotStored>,
    /// Live entries evicted to make room (LRU, by count or bytes).
    pub evicted: u32,
    /// Expired entries reclaimed.
    pub expired: u32,
    /// The totals after the change, when they were updated.
    pub totals: Option<Totals>,
}

impl InsertOutcome {
    fn not_stored(why: NotStored) -> Self {
        Self {
            result: Err(why),
            evicted: 0,
            expired: 0,
            totals: None,
        }
    }
}

/// The cache over a [`SharedStore`].
pub struct CacheStore<'s> {
    store: &'s dyn SharedStore,
    geometry: Geometry,
    max_entry_bytes: u64,
    prefix: String,
}

impl<'s> CacheStore<'s> {
    /// The cache laid out by `geometry` in `store`. The geometry is part of every key name, so a
    /// configuration with another layout never reads this one's data.
    pub fn new(store: &'s dyn SharedStore, geometry: Geometry, max_entry_bytes: u64) -> Self {
        let prefix = format!(
            "tollgate.cache.v1.{}x{}x{}.",
            geometry.sets, geometry.ways, geometry.set_bytes
        );
        Self {
            store,
            geometry,
            max_entry_bytes,
            prefix,
        }
    }

    fn index_key(&self, set: u32) -> String {
        format!("{}i.{set}", self.prefix)
    }

    fn slot_key(&self, set: u32, way: usize) -> String {
        format!("{}s.{set}.{way}", self.prefix)
    }

    fn totals_key(&self) -> String {
        format!("{}totals", self.prefix)
    }

    fn read_index(&self, set: u32) -> (SetIndex, Option<u32>) {
        match self.store.get(&self.index_key(set)) {
            Some((bytes, cas)) => (
                SetIndex::decode(&bytes, self.geometry.ways)
                    .unwrap_or_else(|| SetIndex::empty(self.geometry.ways)),
                Some(cas),
            ),
            None => (SetIndex::empty(self.geometry.ways), None),
        }
    }

    /// Creates every index and slot key that does not exist yet (call once per VM at configure
    /// time): afterwards every write is a CAS, so the creation races in the module doc cannot
    /// happen under traffic.
    pub fn initialise(&self) {
        for set in 0..self.geometry.sets {
            let key = self.index_key(set);
            if self.store.get(&key).is_none() {
                let empty = SetIndex::empty(self.geometry.ways).encode();
                let _ = self.store.set(&key, &empty, None);
            }
            for way in 0..self.geometry.ways as usize {
                let slot = self.slot_key(set, way);
                if self.store.get(&slot).is_none() {
                    let _ = self.store.set(&slot, BLANK, None);
                }
            }
        }
    }

    /// The accounted totals.
    pub fn totals(&self) -> Totals {
        self.store
            .get(&self.totals_key())
            .and_then(|(b, _)| RawTotals::decode(&b))
            .unwrap_or_default()
            .clamped()
    }

    /// Looks `key` up at `now_ms`; a hit refreshes the entry's last use.
    pub fn lookup(&self, key: &CacheKey, now_ms: u64) -> LookupOutcome {
        let set = key.set_index(self.geometry.sets);
        let (mut index, cas) = self.read_index(set);
        let Some(way) = index.ways.iter().position(|w| w.holds(key)) else {
            return LookupOutcome::Miss(MissReason::Absent);
        };
        let Some(w) = index.ways.get(way).copied() else {
            return LookupOutcome::Miss(MissReason::Absent);
        };
        if w.expired(now_ms) {
            return LookupOutcome::Miss(MissReason::Expired);
        }
        let content = self
            .store
            .get(&self.slot_key(set, way))
            .and_then(|(bytes, _)| entry::decode(&bytes));
        let Some(SlotContent {
            key: stored_key,
            generation,
            entry,
        }) = content
        else {
            return LookupOutcome::Miss(MissReason::InFlight);
        };
        if stored_key != *key || generation != w.generation {
            return LookupOutcome::Miss(MissReason::InFlight);
        }
        if let (Some(slot), Some(cas)) = (index.ways.get_mut(way), cas) {
            slot.last_used_ms = now_ms;
            let _ = self
                .store
                .set(&self.index_key(set), &index.encode(), Some(cas));
        }
        LookupOutcome::Hit(entry)
    }

    /// Stores `entry` under `key` for `ttl_ms`, evicting as needed.
    pub fn insert(&self, key: &CacheKey, entry: &Entry, now_ms: u64, ttl_ms: u64) -> InsertOutcome {
        let size = entry::encoded_len(entry) as u64;
        if size > self.max_entry_bytes || size > self.geometry.set_bytes {
            return InsertOutcome::not_stored(NotStored::TooLarge);
        }
        let set = key.set_index(self.geometry.sets);
        let mut key_prefix = [0u8; 16];
        for (dst, src) in key_prefix.iter_mut().zip(key.0.iter()) {
            *dst = *src;
        }
        for _ in 0..CAS_ATTEMPTS {
            let (index, cas) = self.read_index(set);
            let plan = match plan_claim(&index, key, size, now_ms, self.geometry.set_bytes) {
                Ok(plan) => plan,
                Err(why) => return InsertOutcome::not_stored(why),
            };
            let mut next = index.clone();
            for &w in plan.expired.iter().chain(&plan.evicted) {
                if let Some(way) = next.ways.get_mut(w) {
                    *way = Way::default();
                }
            }
            let generation = next.next_generation;
            next.next_generation = generation.wrapping_add(1).max(1);
            if let Some(way) = next.ways.get_mut(plan.claim) {
                *way = Way {
                    live: true,
                    generation,
                    key_prefix,
                    size: size as u32,
                    expires_ms: now_ms.saturating_add(ttl_ms),
                    last_used_ms: now_ms,
                };
            }
            if !self
                .store
                .set(&self.index_key(set), &next.encode(), cas_after_read(cas))
            {
                continue;
            }
            let freed: Vec<&Way> = plan
                .expired
                .iter()
                .chain(&plan.evicted)
                .filter_map(|w| index.ways.get(*w))
                .collect();
            let freed_bytes: i64 = freed.iter().map(|w| i64::from(w.size)).sum();
            let freed_count = freed.len() as i64;
            // Accounted right after the commit, before the slot writes, so the totals follow
            // the indexes whatever happens to the writes.
            let totals = self.update_totals(1 - freed_count, size as i64 - freed_bytes);
            let bytes = entry::encode(key, generation, entry);
            let written = self.write_slot(set, plan.claim, generation, &bytes);
            for &w in plan.expired.iter().chain(&plan.evicted) {
                if w != plan.claim {
                    self.blank_slot(set, w);
                }
            }
            return InsertOutcome {
                result: if written {
                    Ok(())
                } else {
                    Err(NotStored::Contended)
                },
                evicted: plan.evicted.len() as u32,
                expired: plan.expired.len() as u32,
                totals,
            };
        }
        InsertOutcome::not_stored(NotStored::Contended)
    }

    /// Writes a claimed slot while the claim stands; false when it was taken over.
    fn write_slot(&self, set: u32, way: usize, generation: u32, bytes: &[u8]) -> bool {
        let slot = self.slot_key(set, way);
        for _ in 0..CAS_ATTEMPTS {
            let Some((_, cas)) = self.store.get(&slot) else {
                // Not initialised: create it blank, then write it by CAS like any other.
                let _ = self.store.set(&slot, BLANK, None);
                continue;
            };
            let (index, _) = self.read_index(set);
            let still_mine = index
                .ways
                .get(way)
                .is_some_and(|w| w.live && w.generation == generation);
            if !still_mine {
                return false;
            }
            if self.store.set(&slot, bytes, Some(cas)) {
                return true;
            }
        }
        false
    }

    /// Empties an evicted way's slot while the index still shows the way empty.
    fn blank_slot(&self, set: u32, way: usize) {
        let slot = self.slot_key(set, way);
        for _ in 0..CAS_ATTEMPTS {
            let Some((value, cas)) = self.store.get(&slot) else {
                return;
            };
            if value == BLANK {
                return;
            }
            let (index, _) = self.read_index(set);
            if index.ways.get(way).is_none_or(|w| w.live) {
                return;
            }
            if self.store.set(&slot, BLANK, Some(cas)) {
                return;
            }
        }
    }

    fn update_totals(&self, entries: i64, bytes: i64) -> Option<Totals> {
        cas_update(self.store, &self.totals_key(), |stored| {
            let current = stored.and_then(RawTotals::decode).unwrap_or_default();
            let next = RawTotals {
                entries: current.entries.saturating_add(entries),
                bytes: current.bytes.saturating_add(bytes),
            };
            (Some(next.encode()), next.clamped())
        })
    }

    /// The entries and bytes the indexes account, summed over every set (tests, status).
    pub fn scan(&self) -> Totals {
        let mut t = Totals::default();
        for set in 0..self.geometry.sets {
            let (index, _) = self.read_index(set);
            t.entries += index.ways.iter().filter(|w| w.live).count() as u64;
            t.bytes += index.live_bytes();
        }
        t
    }

    /// Bytes of entries actually held in slot values, summed over every slot (tests: the real
    /// memory; a blank slot's one byte is not counted).
    pub fn slot_bytes(&self) -> u64 {
        let mut total = 0u64;
        for set in 0..self.geometry.sets {
            for way in 0..self.geometry.ways as usize {
                if let Some((value, _)) = self.store.get(&self.slot_key(set, way)) {
                    if value != BLANK {
                        total += value.len() as u64;
                    }
                }
            }
        }
        total
    }
}

/// Which ways an insert frees and which one it claims.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClaimPlan {
    claim: usize,
    expired: Vec<usize>,
    evicted: Vec<usize>,
}

/// Plans an insert of `size` bytes into `index`: every expired way is reclaimed, then least
/// recently used live ways are evicted until a way is free and the set's bytes fit. Refused
/// when a live entry for the key exists, or when the entry cannot fit the set at all.
fn plan_claim(
    index: &SetIndex,
    key: &CacheKey,
    size: u64,
    now_ms: u64,
    set_bytes: u64,
) -> Result<ClaimPlan, NotStored> {
    if index
        .ways
        .iter()
        .any(|w| w.holds(key) && !w.expired(now_ms))
    {
        return Err(NotStored::AlreadyCached);
    }
    let mut expired = Vec::new();
    let mut live: Vec<usize> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    for (i, w) in index.ways.iter().enumerate() {
        if !w.live {
            free.push(i);
        } else if w.expired(now_ms) {
            expired.push(i);
            free.push(i);
        } else {
            // Least recently used first, ties in way order: kept so by inserting each in place
            // (a set has 16 ways; no sort instantiated for this).
            let at = live.partition_point(|j| {
                index.ways.get(*j).map_or(0, |o| o.last_used_ms) <= w.last_used_ms
            });
            live.insert(at, i);
        }
    }
    let mut bytes: u64 = live
        .iter()
        .filter_map(|i| index.ways.get(*i))
        .map(|w| u64::from(w.size))
        .sum();
    let mut evicted = Vec::new();
    let mut victims = live.into_iter();
    while free.is_empty() || bytes.saturating_add(size) > set_bytes {
        let victim = victims.next().ok_or(NotStored::TooLarge)?;
        bytes = bytes.saturating_sub(index.ways.get(victim).map_or(0, |w| u64::from(w.size)));
        evicted.push(victim);
        free.push(victim);
    }
    let claim = *free.first().ok_or(NotStored::TooLarge)?;
    Ok(ClaimPlan {
        claim,
        expired,
        evicted,
    })
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
