//! The remote key set document (`keys.remote`): arbitrary bytes must give a set plus the entries
//! it skipped, or a refusal of the whole body, never a panic. Every entry goes through the
//! configuration's path-tracking reader (`config::value_reader`) and `compile_entry`, as inline
//! keys do.
//!
//! Properties: an accepted body is a JSON object whose `keys` array has exactly as many entries as
//! the set holds plus those skipped; skipped entries are named by their index, in order, and their
//! reason starts with that index's path; every entry used can be found by its id; parsing is
//! deterministic (same fingerprint, same skipped entries).

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tollgate::keys::fetcher::parse_document;

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = parse_document(data) else {
        return;
    };
    let set = parsed.document.expect("an accepted body has a set");
    assert!(parsed.refusal.is_none());
    let doc: Value = serde_json::from_slice(data).expect("an accepted body is JSON");
    let entries = doc["keys"].as_array().expect("an accepted body has a `keys` array");
    assert_eq!(
        set.len() + parsed.skipped.len(),
        entries.len(),
        "an entry was neither used nor skipped"
    );
    let mut last = None;
    for skipped in &parsed.skipped {
        assert!(last < Some(skipped.index), "skipped entries out of order");
        last = Some(skipped.index);
        let path = format!("keys[{}]", skipped.index);
        assert!(
            skipped.reason.starts_with(&path),
            "reason does not name {path}: {}",
            skipped.reason
        );
    }
    for (index, entry) in entries.iter().enumerate() {
        if parsed.skipped.iter().any(|s| s.index == index) {
            continue;
        }
        let id = entry["id"].as_str().expect("a used entry has a string id");
        assert!(set.by_id(id).is_some(), "used entry {id} not found by id");
    }
    let again = parse_document(data).expect("deterministic");
    assert_eq!(again.skipped, parsed.skipped);
    assert_eq!(
        again.document.map(|s| s.fingerprint()),
        Some(set.fingerprint())
    );
});
