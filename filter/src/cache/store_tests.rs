//! Tests of the shared-data layout: hits, TTL, LRU by count and by bytes, the bounds under a
//! random load, and the races described in `store.rs` replayed with a store that runs another
//! worker's step in the middle of a write.

use std::cell::RefCell;

use super::*;
use crate::cache::entry::EntryFormat;
use crate::shared_store::MemoryStore;

fn geometry(sets: u32, ways: u32, set_bytes: u64) -> Geometry {
    Geometry {
        sets,
        ways,
        set_bytes,
    }
}

fn key(n: u32) -> CacheKey {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 32];
    k.copy_from_slice(&Sha256::digest(n.to_be_bytes()));
    CacheKey(k)
}

fn entry(body_len: usize) -> Entry {
    Entry {
        format: EntryFormat::Verbatim,
        status: 200,
        provider: "openai".into(),
        model: "m".into(),
        content_type: "application/json".into(),
        usage: None,
        stored_at_ms: 0,
        body: vec![b'x'; body_len],
    }
}

fn size_of(body_len: usize) -> u64 {
    entry::encoded_len(&entry(body_len)) as u64
}

fn hit(store: &CacheStore<'_>, k: &CacheKey, now: u64) -> bool {
    matches!(store.lookup(k, now), LookupOutcome::Hit(_))
}

/// The accounted state matches the slots and the totals, and stays within the bounds.
fn assert_consistent(store: &CacheStore<'_>, g: Geometry) {
    let scan = store.scan();
    assert!(scan.entries <= g.capacity(), "{scan:?}");
    assert!(scan.bytes <= g.byte_capacity(), "{scan:?}");
    assert_eq!(store.totals(), scan, "totals follow the indexes");
    assert_eq!(
        store.slot_bytes(),
        scan.bytes,
        "slots hold what is accounted"
    );
}

#[test]
fn an_entry_is_found_under_its_key_only() {
    let mem = MemoryStore::default();
    let g = geometry(4, 4, 1 << 20);
    let store = CacheStore::new(&mem, g, 1 << 20);
    store.initialise();
    let out = store.insert(&key(1), &entry(100), 1_000, 60_000);
    assert_eq!(out.result, Ok(()));
    match store.lookup(&key(1), 2_000) {
        LookupOutcome::Hit(e) => assert_eq!(e, entry(100)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.lookup(&key(2), 2_000),
        LookupOutcome::Miss(MissReason::Absent)
    );
    assert_eq!(
        store.insert(&key(1), &entry(5), 1_500, 60_000).result,
        Err(NotStored::AlreadyCached)
    );
    assert_eq!(
        store.totals(),
        Totals {
            entries: 1,
            bytes: size_of(100)
        }
    );
    assert_consistent(&store, g);
}

/// Shared data as the proxy-wasm SDK shows it: an empty value reads as no value.
#[derive(Default)]
struct SdkLikeStore(MemoryStore);

impl SharedStore for SdkLikeStore {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.0.get(key).filter(|(v, _)| !v.is_empty())
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        self.0.set(key, value, cas)
    }
}

#[test]
fn regression_slots_are_written_where_an_empty_value_reads_as_absent() {
    // Blank slots were once empty values: under the SDK they read as absent, so every slot
    // write was refused as contended and nothing was ever stored.
    let mem = SdkLikeStore::default();
    let g = geometry(1, 2, 1 << 20);
    let store = CacheStore::new(&mem, g, 1 << 20);
    store.initialise();
    for n in 0..4 {
        assert_eq!(
            store
                .insert(&key(n), &entry(10), u64::from(n), 60_000)
                .result,
            Ok(())
        );
        assert!(hit(&store, &key(n), 10), "key {n}");
    }
    assert_consistent(&store, g);
}

#[test]
fn entries_expire_and_their_space_is_reclaimed() {
    let mem = MemoryStore::default();
    let g = geometry(1, 4, 1 << 20);
    let store = CacheStore::new(&mem, g, 1 << 20);
    store.insert(&key(1), &entry(10), 1_000, 500);
    assert!(hit(&store, &key(1), 1_499));
    assert_eq!(
        store.lookup(&key(1), 1_500),
        LookupOutcome::Miss(MissReason::Expired)
    );
    // The expired key can be stored again; the old way is reclaimed in the same step.
    let out = store.insert(&key(1), &entry(20), 2_000, 500);
    assert_eq!((out.result, out.expired, out.evicted), (Ok(()), 1, 0));
    assert!(hit(&store, &key(1), 2_100));
    assert_eq!(store.totals().entries, 1);
    assert_consistent(&store, g);
}

#[test]
fn lru_by_count_evicts_the_least_recently_used() {
    let mem = MemoryStore::default();
    let g = geometry(1, 4, 1 << 20);
    let store = CacheStore::new(&mem, g, 1 << 20);
    for n in 0..4 {
        store.insert(&key(n), &entry(10), 100 + u64::from(n), 60_000);
    }
    // Key 0 is used again, so key 1 is now the least recently used.
    assert!(hit(&store, &key(0), 200));
    let out = store.insert(&key(9), &entry(10), 300, 60_000);
    assert_eq!((out.result, out.evicted), (Ok(()), 1));
    assert!(hit(&store, &key(0), 301));
    assert!(!hit(&store, &key(1), 301), "the LRU entry was evicted");
    assert!(hit(&store, &key(2), 301));
    assert!(hit(&store, &key(9), 301));
    assert_eq!(store.totals().entries, 4);
    assert_consistent(&store, g);
}

#[test]
fn lru_by_bytes_evicts_until_the_new_entry_fits() {
    let mem = MemoryStore::default();
    let per = size_of(1000);
    let g = geometry(1, 16, 3 * per);
    let store = CacheStore::new(&mem, g, 3 * per);
    for n in 0..3 {
        assert_eq!(
            store
                .insert(&key(n), &entry(1000), 100 + u64::from(n), 60_000)
                .result,
            Ok(())
        );
    }
    assert_eq!(store.totals().bytes, 3 * per);
    // Twice the size: the two least recently used go.
    let out = store.insert(&key(7), &entry(2000), 200, 60_000);
    assert_eq!((out.result, out.evicted), (Ok(()), 2));
    assert!(!hit(&store, &key(0), 201));
    assert!(!hit(&store, &key(1), 201));
    assert!(hit(&store, &key(2), 201));
    assert!(hit(&store, &key(7), 201));
    assert!(store.totals().bytes <= 3 * per);
    assert_consistent(&store, g);
}

#[test]
fn an_entry_over_the_size_limit_is_not_stored() {
    let mem = MemoryStore::default();
    let g = geometry(2, 4, 10_000);
    let store = CacheStore::new(&mem, g, 2_000);
    assert_eq!(
        store.insert(&key(1), &entry(5_000), 0, 1_000).result,
        Err(NotStored::TooLarge)
    );
    assert_eq!(store.totals(), Totals::default());
    assert_eq!(store.slot_bytes(), 0);
}

#[test]
fn bounds_hold_under_a_random_load() {
    let mem = MemoryStore::default();
    let g = geometry(8, 16, 40_000);
    let store = CacheStore::new(&mem, g, 20_000);
    store.initialise();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut evictions = 0u32;
    for step in 0..3_000u64 {
        let r = next();
        let k = key((r % 600) as u32);
        let now = step * 10;
        if r % 3 == 0 {
            let _ = store.lookup(&k, now);
        } else {
            let len = (next() % 8_000) as usize;
            let out = store.insert(&k, &entry(len), now, 5_000 + (r % 20_000));
            evictions += out.evicted;
        }
        if step % 100 == 0 {
            assert_consistent(&store, g);
        }
    }
    assert_consistent(&store, g);
    assert!(
        evictions > 100,
        "the load must exercise eviction: {evictions}"
    );
    assert!(store.totals().bytes > g.byte_capacity() / 2);
}

#[test]
fn a_garbage_index_reads_as_empty_and_is_rebuilt() {
    let mem = MemoryStore::default();
    let g = geometry(1, 4, 1 << 20);
    let store = CacheStore::new(&mem, g, 1 << 20);
    let index_key = store.index_key(0);
    mem.set(&index_key, b"garbage", None);
    assert_eq!(
        store.lookup(&key(1), 0),
        LookupOutcome::Miss(MissReason::Absent)
    );
    assert_eq!(store.insert(&key(1), &entry(1), 0, 1_000).result, Ok(()));
    assert!(hit(&store, &key(1), 1));
}

#[test]
fn another_layout_never_reads_this_ones_entries() {
    let mem = MemoryStore::default();
    let a = CacheStore::new(&mem, geometry(1, 4, 1 << 20), 1 << 20);
    a.insert(&key(1), &entry(10), 0, 1_000);
    let b = CacheStore::new(&mem, geometry(1, 8, 1 << 20), 1 << 20);
    assert!(!hit(&b, &key(1), 1));
}

/// Another worker's step, run in the middle of a write.
type Hook<'h> = Box<dyn FnOnce(&MemoryStore) + 'h>;

/// A store that runs `hook` (another worker's step) once, just before the first `set` of a key
/// containing `trigger` after [`Interleaved::arm`].
struct Interleaved<'h> {
    inner: MemoryStore,
    trigger: String,
    armed: std::cell::Cell<bool>,
    hook: RefCell<Option<Hook<'h>>>,
}

impl<'h> Interleaved<'h> {
    fn new(trigger: &str, hook: impl FnOnce(&MemoryStore) + 'h) -> Self {
        Self {
            inner: MemoryStore::default(),
            trigger: trigger.into(),
            armed: std::cell::Cell::new(false),
            hook: RefCell::new(Some(Box::new(hook))),
        }
    }

    fn arm(&self) {
        self.armed.set(true);
    }
}

impl SharedStore for Interleaved<'_> {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.inner.get(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        if self.armed.get() && key.contains(&self.trigger) {
            let hook = self.hook.borrow_mut().take();
            if let Some(hook) = hook {
                hook(&self.inner);
            }
        }
        self.inner.set(key, value, cas)
    }
}

const G: Geometry = Geometry {
    sets: 1,
    ways: 4,
    set_bytes: 1 << 20,
};

#[test]
fn race_a_reader_between_claim_and_write_misses_instead_of_reading_the_old_slot() {
    let seen = RefCell::new(None);
    let mem = Interleaved::new(".s.0.", |inner| {
        // The index already names key 2 in a way whose slot still holds nothing.
        let other = CacheStore::new(inner, G, 1 << 20);
        *seen.borrow_mut() = Some(other.lookup(&key(2), 10));
    });
    let store = CacheStore::new(&mem, G, 1 << 20);
    store.initialise();
    mem.arm();
    assert_eq!(store.insert(&key(2), &entry(10), 0, 1_000).result, Ok(()));
    assert_eq!(
        seen.borrow().clone(),
        Some(LookupOutcome::Miss(MissReason::InFlight))
    );
    assert!(hit(&store, &key(2), 11));
}

#[test]
fn race_an_index_change_between_read_and_claim_is_retried() {
    let mem = Interleaved::new(".i.0", |inner| {
        let other = CacheStore::new(inner, G, 1 << 20);
        assert_eq!(other.insert(&key(5), &entry(10), 0, 1_000).result, Ok(()));
    });
    let store = CacheStore::new(&mem, G, 1 << 20);
    store.initialise();
    mem.arm();
    assert_eq!(store.insert(&key(6), &entry(20), 1, 1_000).result, Ok(()));
    assert!(hit(&store, &key(5), 2));
    assert!(hit(&store, &key(6), 2));
    assert_eq!(store.totals().entries, 2);
    assert_consistent(&store, G);
}

#[test]
fn race_a_claim_taken_over_before_its_write_gives_way_to_the_newer_one() {
    // While writer A (key 1) is between its claim and its slot write, other workers fill the
    // set and evict A's way, and the last of them reuses it.
    let mem = Interleaved::new(".s.0.", |inner| {
        let other = CacheStore::new(inner, G, 1 << 20);
        for n in 10..14 {
            let _ = other.insert(&key(n), &entry(10), 5 + u64::from(n), 1_000);
        }
    });
    let store = CacheStore::new(&mem, G, 1 << 20);
    store.initialise();
    mem.arm();
    let out = store.insert(&key(1), &entry(10), 0, 1_000);
    assert_eq!(out.result, Err(NotStored::Contended));
    assert!(!hit(&store, &key(1), 50), "A's answer is not served");
    for n in 10..14 {
        assert!(hit(&store, &key(n), 50), "key {n}");
    }
    assert_consistent(&store, G);
}

#[test]
fn race_two_claims_of_one_way_keep_the_later_writers_data() {
    // A claims way 0; before A writes, B evicts nothing but claims way 1, and C reclaims A's way
    // after A's entry expired. The slot must end with C's entry, whatever order they write in.
    let g = Geometry {
        sets: 1,
        ways: 1,
        set_bytes: 1 << 20,
    };
    let mem = Interleaved::new(".s.0.0", |inner| {
        let other = CacheStore::new(inner, g, 1 << 20);
        // A's entry (ttl 1) has expired at t=5: C reclaims the only way and writes first.
        assert_eq!(other.insert(&key(3), &entry(30), 5, 1_000).result, Ok(()));
    });
    let store = CacheStore::new(&mem, g, 1 << 20);
    store.initialise();
    mem.arm();
    let out = store.insert(&key(1), &entry(10), 0, 1);
    assert_eq!(out.result, Err(NotStored::Contended));
    assert!(hit(&store, &key(3), 6));
    assert_eq!(store.slot_bytes(), size_of(30));
    assert_consistent(&store, g);
}

#[test]
fn the_claim_evicts_least_recently_used_first_and_ties_in_way_order() {
    let way = |n: u8, last_used_ms: u64, size: u32| Way {
        live: true,
        generation: u32::from(n) + 1,
        key_prefix: [n; 16],
        size,
        expires_ms: u64::MAX,
        last_used_ms,
    };
    let index = SetIndex {
        next_generation: 9,
        ways: vec![
            way(1, 50, 10),
            way(2, 20, 10),
            way(3, 50, 10),
            way(4, 20, 10),
        ],
    };
    // Room for the new entry means evicting three: the two used at 20 (ways 1 and 3, in way
    // order), then the first of the two used at 50.
    let plan = plan_claim(&index, &key(99), 25, 1000, 40).unwrap();
    assert_eq!(plan.evicted, [1, 3, 0]);
    assert_eq!(plan.claim, 1);
    assert!(plan.expired.is_empty());
}
