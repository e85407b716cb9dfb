//! The remote key set: the document type of the shared fetch state machine
//! ([`crate::refresh`]). The document is `{"keys": [entry, …]}` with entries exactly as written
//! inline (`keys.inline[]`).
//!
//! * A body that is not such a document counts as a failed fetch: the last good set stays.
//! * An invalid or conflicting entry is skipped and reported; the others are used.
//! * An empty `keys` array is a valid set: every key stops working (a mass revocation).
//! * A key removed from the document stops working when the next fetch succeeds, that is
//!   within one `refresh_seconds`.

use super::set::{compile_entry, ApiKeySet, RawKeyEntry, MAX_KEYS};
use crate::refresh::{Document, Parsed};

/// Largest key set document accepted, in bytes (10,000 keys of ~400 bytes).
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;

/// An entry of a fetched document that was refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEntry {
    /// Position of the entry in the `keys` array.
    pub index: usize,
    /// The entry's id, when it had a readable one.
    pub id: Option<String>,
    /// Why it was refused (names the field).
    pub reason: String,
}

impl Document for ApiKeySet {
    type Skipped = SkippedEntry;
    const NAME: &'static str = "key set";

    fn parse(body: &[u8]) -> Result<Parsed<Self>, String> {
        parse_document(body)
    }

    fn fingerprint(&self) -> u64 {
        ApiKeySet::fingerprint(self)
    }
}

/// Parses a fetched key set document.
pub fn parse_document(body: &[u8]) -> Result<Parsed<ApiKeySet>, String> {
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(format!(
            "the key set document is larger than {MAX_DOCUMENT_BYTES} bytes"
        ));
    }
    // An object with a `keys` array, nothing else: a derived struct would also read `[[…]]`.
    let entries = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut doc)) => match doc.remove("keys") {
            Some(serde_json::Value::Array(entries)) => Some(entries),
            _ => None,
        },
        _ => None,
    }
    .ok_or_else(|| "the key set document is not {\"keys\": [...]}".to_string())?;
    let mut set = ApiKeySet::with_fingerprint(crate::jwt::keys::fingerprint_of(body));
    let mut skipped = Vec::new();
    for (index, value) in entries.into_iter().enumerate() {
        let id = value
            .get("id")
            .and_then(serde_json::Value::as_str)
            .map(|s| s.chars().take(64).collect::<String>());
        let path = format!("keys[{index}]");
        if index >= MAX_KEYS {
            skipped.push(SkippedEntry {
                index,
                id,
                reason: format!("{path}: more than {MAX_KEYS} keys"),
            });
            continue;
        }
        // The reader the plugin configuration's inline keys go through: one instantiation.
        let compiled = crate::config::value_reader::read::<RawKeyEntry>(&value)
            .map_err(|e| format!("{path}: {}", e.message()))
            .and_then(|raw| {
                compile_entry(raw, &path).map_err(|e| format!("{}: {}", e.path, e.reason))
            })
            .and_then(|entry| {
                set.insert(entry)
                    .map_err(|c| format!("{path}: {}", c.reason()))
            });
        if let Err(reason) = compiled {
            skipped.push(SkippedEntry { index, id, reason });
        }
    }
    Ok(Parsed {
        document: Some(set),
        skipped,
        refusal: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::secret::{encode, KeyDigest};
    use crate::refresh::{Availability, FetchFailure, Fetcher, RemoteSource};

    fn source() -> RemoteSource {
        RemoteSource {
            cluster: "keys".into(),
            authority: "keys.internal".into(),
            path: "/keys.json".into(),
            refresh_seconds: 10,
            timeout_ms: 1000,
            min_refetch_seconds: 5,
            initial_wait_ms: 2000,
        }
    }

    fn doc(entries: &[(&str, &str)]) -> Vec<u8> {
        let keys: Vec<_> = entries
            .iter()
            .map(|(id, key)| {
                serde_json::json!({"id": id, "sha256": KeyDigest::of(key).to_hex(),
                    "owner": "o", "team": "t"})
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap()
    }

    fn knows(f: &Fetcher<ApiKeySet>, key: &str) -> bool {
        f.document()
            .is_some_and(|s| s.lookup(&KeyDigest::of(key)).is_some())
    }

    #[test]
    fn a_removed_key_stops_working_within_one_refresh() {
        let (a, b) = (encode(&[1; 32]), encode(&[2; 32]));
        let mut f = Fetcher::<ApiKeySet>::new(source(), 0);
        assert!(matches!(
            f.availability(0),
            Availability::Pending {
                wait_until_ms: 2000
            }
        ));
        f.on_fetch_started(0);
        let r = f.on_fetch_result(100, Ok(&doc(&[("a", &a), ("b", &b)])));
        assert!(r.keys_changed && r.error.is_none());
        assert!(knows(&f, &a) && knows(&f, &b));
        // The operator removes b; the next refresh is due one period after the last success.
        assert!(!f.needs_fetch(10_099));
        assert!(f.needs_fetch(10_100));
        f.on_fetch_started(10_100);
        let r = f.on_fetch_result(10_150, Ok(&doc(&[("a", &a)])));
        assert!(r.keys_changed);
        assert!(knows(&f, &a) && !knows(&f, &b));
    }

    #[test]
    fn a_failed_fetch_keeps_the_last_good_set() {
        let a = encode(&[1; 32]);
        let mut f = Fetcher::<ApiKeySet>::new(source(), 0);
        f.on_fetch_result(0, Ok(&doc(&[("a", &a)])));
        for bad in [
            Err(FetchFailure::Status(503)),
            Err(FetchFailure::Transport("reset".into())),
            Ok(&b"<html>"[..]),
            Ok(&br#"{"keys": 5}"#[..]),
        ] {
            let r = f.on_fetch_result(20_000, bad);
            assert!(r.error.is_some());
            assert!(knows(&f, &a));
        }
        assert_eq!(f.consecutive_failures(), 4);
        assert_eq!(
            f.on_fetch_result(30_000, Err(FetchFailure::Status(500)))
                .error
                .as_deref(),
            Some("key set fetch returned status 500")
        );
    }

    #[test]
    fn the_first_set_is_waited_for_a_bounded_time() {
        let mut f = Fetcher::<ApiKeySet>::new(source(), 1_000);
        f.on_fetch_started(1_000);
        assert!(matches!(
            f.availability(2_999),
            Availability::Pending { .. }
        ));
        assert!(matches!(f.availability(3_000), Availability::Unavailable));
        f.on_fetch_result(3_500, Ok(&doc(&[])));
        // An empty set is a valid set: ready, and it knows no key.
        assert!(matches!(f.availability(3_500), Availability::Ready(s) if s.is_empty()));
    }

    /// Found by the `key_set` fuzz target: a derived document struct also read `[[]]` (serde's
    /// struct-as-array form) as an empty set, that is a mass revocation.
    #[test]
    fn only_an_object_with_a_keys_array_is_a_document() {
        for body in [
            &b"[[]]"[..],
            b"[]",
            b"{}",
            b"{\"keys\": {}}",
            b"{\"keys\": null}",
            b"\"keys\"",
            b"not json",
        ] {
            let refused = parse_document(body).err();
            assert_eq!(
                refused.as_deref(),
                Some("the key set document is not {\"keys\": [...]}"),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let parsed = parse_document(b"{\"keys\": [], \"generated_at\": 1}").unwrap();
        assert_eq!(parsed.document.map(|s| s.len()), Some(0));
    }

    #[test]
    fn bad_entries_are_skipped_and_named_the_rest_serve() {
        let a = encode(&[1; 32]);
        let body = serde_json::to_vec(&serde_json::json!({"keys": [
            {"id": "a", "sha256": KeyDigest::of(&a).to_hex(), "owner": "o", "team": "t"},
            {"id": "b", "sha256": "nothex", "owner": "o", "team": "t"},
            {"id": "a", "sha256": KeyDigest::of(&encode(&[9; 32])).to_hex(), "owner": "o", "team": "t"},
            {"id": "c", "sha256": KeyDigest::of(&a).to_hex(), "owner": "o", "team": "t", "extra": 1}
        ]}))
        .unwrap();
        let parsed = parse_document(&body).unwrap();
        let set = parsed.document.unwrap();
        assert_eq!(set.len(), 1);
        let reasons: Vec<_> = parsed.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert!(reasons[0].starts_with("keys[1].sha256"), "{reasons:?}");
        assert_eq!(reasons[1], "keys[2]: duplicate id");
        assert!(
            reasons[2].starts_with("keys[3]: unknown field"),
            "{reasons:?}"
        );
        assert_eq!(parsed.skipped[1].id.as_deref(), Some("a"));
    }

    #[test]
    fn an_unknown_key_may_trigger_an_early_refetch_rate_limited() {
        let mut f = Fetcher::<ApiKeySet>::new(source(), 0);
        f.on_fetch_result(0, Ok(&doc(&[])));
        assert!(!f.needs_fetch(1_000));
        assert!(f.on_demand(1_000));
        assert!(f.needs_fetch(1_000));
        f.on_fetch_started(1_000);
        f.on_fetch_result(1_100, Ok(&doc(&[])));
        assert!(!f.on_demand(3_000), "within min_refetch_seconds");
        assert!(f.on_demand(6_000));
    }
}
