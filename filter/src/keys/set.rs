//! Key entries and the key set: what the operator says about each key (by its hash), how an
//! entry is validated, and how a presented key is found.
//!
//! Lookup costs one SHA-256 of the presented key, then a `BTreeMap` lookup by the digest's first
//! eight bytes, then a constant-time comparison of the whole digest with each entry in that
//! bucket (almost always one). Timing can reveal at most whether the *digest* of a guess shares
//! a prefix with a stored digest, which does not help find a key (a SHA-256 preimage problem);
//! the comparison that decides is constant-time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Deserialize;

use super::secret::KeyDigest;
use crate::budget::Budgets;
use crate::config::{compile_windows, ConfigError, RawWindow};
use crate::failover::ModelPattern;

/// Largest number of entries in one key set (inline or fetched).
pub const MAX_KEYS: usize = 10_000;
/// Largest number of labels on one key.
pub const MAX_LABELS: usize = 16;
/// Shared-data prefix of per-key budget records (`tollgate:key:<period>:<id>`).
pub const BUDGET_PREFIX: &str = "tollgate:key:";

/// One key as the operator writes it (inline, or in a fetched key set).
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawKeyEntry {
    /// Stable name of the key: logs, access logs, budgets and the status endpoint use it.
    pub id: String,
    /// SHA-256 of the whole key (`tg-…`), 64 hex digits. The key itself is never configured.
    pub sha256: String,
    /// Who holds the key (a person or an app); becomes the caller for user budgets and logs.
    pub owner: String,
    /// The team the key belongs to: a metric label (bounded by `keys.max_teams`).
    pub team: String,
    /// Models the key may use: exact names or `prefix*` (absent: every model).
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// The key's own budget windows, same form as `budgets.windows` (absent: none).
    #[serde(default)]
    pub budgets: Vec<RawWindow>,
    /// When the key stops working: RFC 3339 (`2027-01-01T00:00:00Z`) or Unix seconds.
    #[serde(default)]
    pub expires_at: Option<serde_json::Value>,
    /// Free-form labels shown by the status endpoint (not metric labels).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// A revoked key is refused like an unknown one (kept so refusals can say why).
    #[serde(default)]
    pub revoked: bool,
}

/// A validated key entry.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyEntry {
    /// Stable name of the key.
    pub id: String,
    /// SHA-256 of the key.
    pub digest: KeyDigest,
    /// Who holds it.
    pub owner: String,
    /// Its team.
    pub team: String,
    /// Allowed models (`None`: every model).
    pub models: Option<Vec<ModelPattern>>,
    /// The key's own budgets (`None`: no windows).
    pub budgets: Option<Budgets>,
    /// Expiry, Unix seconds.
    pub expires_at: Option<u64>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Revoked.
    pub revoked: bool,
}

impl KeyEntry {
    /// Whether the key may use `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|patterns| patterns.iter().any(|p| p.matches(model)))
    }

    /// Whether the key has expired at `now_unix`.
    pub fn is_expired(&self, now_unix: u64) -> bool {
        self.expires_at.is_some_and(|at| now_unix >= at)
    }
}

fn check_name(path: String, value: &str, max: usize) -> Result<(), ConfigError> {
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(ConfigError::new(
            path,
            format!("must be 1 to {max} characters without control characters"),
        ));
    }
    Ok(())
}

/// Validates one entry; errors name the field under `path` (e.g. `keys.inline[2].sha256`).
pub fn compile_entry(raw: RawKeyEntry, path: &str) -> Result<KeyEntry, ConfigError> {
    let f = |field: &str| format!("{path}.{field}");
    let id_ok = !raw.id.is_empty()
        && raw.id.len() <= 64
        && raw
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !id_ok {
        return Err(ConfigError::new(
            f("id"),
            "must be 1 to 64 characters from A-Z a-z 0-9 - _ .",
        ));
    }
    let digest = KeyDigest::from_hex(&raw.sha256).ok_or_else(|| {
        ConfigError::new(
            f("sha256"),
            "must be the key's SHA-256 as 64 hex digits (never the key itself; see `make key`)",
        )
    })?;
    check_name(f("owner"), &raw.owner, 128)?;
    check_name(f("team"), &raw.team, 128)?;
    let models = match raw.models {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(ConfigError::new(
                f("models"),
                "must not be empty (leave it out to allow every model)",
            ))
        }
        Some(list) => {
            let mut patterns = Vec::with_capacity(list.len());
            for (i, m) in list.iter().enumerate() {
                patterns.push(
                    ModelPattern::parse(m)
                        .map_err(|r| ConfigError::new(format!("{path}.models[{i}]"), r))?,
                );
            }
            Some(patterns)
        }
    };
    let windows = compile_windows(&raw.budgets, &f("budgets"))?;
    let budgets = (!windows.is_empty()).then(|| Budgets {
        windows,
        warn_thresholds: Vec::new(),
        key_prefix: BUDGET_PREFIX.into(),
    });
    let expires_at = match raw.expires_at {
        None => None,
        Some(serde_json::Value::Number(n)) => Some(n.as_u64().ok_or_else(|| {
            ConfigError::new(f("expires_at"), "must be non-negative Unix seconds")
        })?),
        Some(serde_json::Value::String(s)) => {
            let ms = crate::failover::timefmt::parse_rfc3339_ms(&s)
                .and_then(|ms| u64::try_from(ms).ok())
                .ok_or_else(|| {
                    ConfigError::new(
                        f("expires_at"),
                        format!("expected RFC 3339 like 2027-01-01T00:00:00Z, got {s:?}"),
                    )
                })?;
            Some(ms / 1000)
        }
        Some(_) => {
            return Err(ConfigError::new(
                f("expires_at"),
                "expected an RFC 3339 string or Unix seconds",
            ))
        }
    };
    if raw.labels.len() > MAX_LABELS {
        return Err(ConfigError::new(
            f("labels"),
            format!("at most {MAX_LABELS} labels"),
        ));
    }
    for (name, value) in &raw.labels {
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            return Err(ConfigError::new(
                f("labels"),
                format!("label name {name:?}: 1 to 64 characters from A-Z a-z 0-9 - _ ."),
            ));
        }
        if value.chars().count() > 256 || value.chars().any(char::is_control) {
            return Err(ConfigError::new(
                format!("{path}.labels.{name}"),
                "at most 256 characters without control characters",
            ));
        }
    }
    Ok(KeyEntry {
        id: raw.id,
        digest,
        owner: raw.owner,
        team: raw.team,
        models,
        budgets,
        expires_at,
        labels: raw.labels,
        revoked: raw.revoked,
    })
}

/// A set of keys, looked up by digest.
#[derive(Debug, Clone, Default)]
pub struct ApiKeySet {
    entries: Vec<Arc<KeyEntry>>,
    buckets: BTreeMap<u64, Vec<usize>>,
    fingerprint: u64,
}

/// Why an entry could not join a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// Another entry has the same id.
    DuplicateId,
    /// Another entry has the same hash.
    DuplicateHash,
    /// The set is full.
    TooMany,
}

impl Conflict {
    /// A message for the configuration error or the fetch report.
    pub fn reason(&self) -> String {
        match self {
            Conflict::DuplicateId => "duplicate id".into(),
            Conflict::DuplicateHash => "duplicate sha256 (two entries for one key)".into(),
            Conflict::TooMany => format!("more than {MAX_KEYS} keys"),
        }
    }
}

impl ApiKeySet {
    /// An empty set with this fingerprint (a hash of the document it comes from).
    pub fn with_fingerprint(fingerprint: u64) -> Self {
        Self {
            fingerprint,
            ..Self::default()
        }
    }

    /// Adds an entry unless it conflicts with one already in the set.
    pub fn insert(&mut self, entry: KeyEntry) -> Result<(), Conflict> {
        if self.entries.len() >= MAX_KEYS {
            return Err(Conflict::TooMany);
        }
        if self.entries.iter().any(|e| e.id == entry.id) {
            return Err(Conflict::DuplicateId);
        }
        if self.lookup(&entry.digest).is_some() {
            return Err(Conflict::DuplicateHash);
        }
        let index = self.entries.len();
        self.buckets
            .entry(entry.digest.bucket())
            .or_default()
            .push(index);
        self.entries.push(Arc::new(entry));
        Ok(())
    }

    /// The entry whose digest is `digest` (constant-time comparison of the whole digest).
    pub fn lookup(&self, digest: &KeyDigest) -> Option<&Arc<KeyEntry>> {
        let candidates = self.buckets.get(&digest.bucket())?;
        let mut found = None;
        for &i in candidates {
            if let Some(entry) = self.entries.get(i) {
                if entry.digest.ct_eq(digest) {
                    found = Some(entry);
                }
            }
        }
        found
    }

    /// The entry named `id`.
    pub fn by_id(&self, id: &str) -> Option<&Arc<KeyEntry>> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the set has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A hash of the document the set comes from.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The distinct teams of the set, sorted.
    pub fn teams(&self) -> BTreeSet<&str> {
        self.entries.iter().map(|e| e.team.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::secret::encode;

    pub(crate) fn raw(id: &str, key: &str) -> RawKeyEntry {
        serde_json::from_value(serde_json::json!({
            "id": id, "sha256": KeyDigest::of(key).to_hex(), "owner": "alice", "team": "search"
        }))
        .unwrap()
    }

    fn entry_from(json: serde_json::Value) -> Result<KeyEntry, ConfigError> {
        let raw: RawKeyEntry = serde_json::from_value(json).unwrap();
        compile_entry(raw, "keys.inline[0]")
    }

    #[test]
    fn an_entry_compiles_every_field() {
        let key = encode(&[3u8; 32]);
        let e = entry_from(serde_json::json!({
            "id": "ci-bot", "sha256": KeyDigest::of(&key).to_hex(), "owner": "ci@example.com",
            "team": "search", "models": ["gpt-4o*", "claude-3-5-haiku"],
            "budgets": [{"period": "day", "max_tokens": 1000}, {"period": 60, "max_requests": 5}],
            "expires_at": "2027-01-01T00:00:00Z", "labels": {"env": "ci"}
        }))
        .unwrap();
        assert!(e.allows_model("gpt-4o-mini"));
        assert!(e.allows_model("claude-3-5-haiku"));
        assert!(!e.allows_model("claude-3-5-haiku-latest"));
        assert!(!e.allows_model("gpt-4"));
        assert_eq!(e.expires_at, Some(1_798_761_600));
        assert!(!e.is_expired(1_798_761_599));
        assert!(e.is_expired(1_798_761_600));
        let b = e.budgets.unwrap();
        assert_eq!(b.windows.len(), 2);
        assert_eq!(b.key_prefix, BUDGET_PREFIX);
        assert_eq!(e.labels.get("env").map(String::as_str), Some("ci"));
    }

    #[test]
    fn every_bad_field_is_named() {
        let good =
            || serde_json::json!({"id": "a", "sha256": "ab".repeat(32), "owner": "o", "team": "t"});
        let cases: Vec<(&str, serde_json::Value, &str)> = vec![
            ("id", serde_json::json!("has space"), "keys.inline[0].id"),
            (
                "sha256",
                serde_json::json!("tg-abc"),
                "keys.inline[0].sha256",
            ),
            ("owner", serde_json::json!(""), "keys.inline[0].owner"),
            ("team", serde_json::json!("a\nb"), "keys.inline[0].team"),
            ("models", serde_json::json!([]), "keys.inline[0].models"),
            (
                "models",
                serde_json::json!(["a*b"]),
                "keys.inline[0].models[0]",
            ),
            (
                "budgets",
                serde_json::json!([{"period": "week", "max_tokens": 1}]),
                "keys.inline[0].budgets[0].period",
            ),
            (
                "expires_at",
                serde_json::json!("tomorrow"),
                "keys.inline[0].expires_at",
            ),
            (
                "expires_at",
                serde_json::json!(-5),
                "keys.inline[0].expires_at",
            ),
            (
                "labels",
                serde_json::json!({"bad name": "x"}),
                "keys.inline[0].labels",
            ),
        ];
        for (field, value, path) in cases {
            let mut doc = good();
            doc[field] = value;
            let e = entry_from(doc).unwrap_err();
            assert_eq!(e.path, path, "{field}: {e}");
        }
        assert!(entry_from(good()).is_ok());
    }

    #[test]
    fn lookup_finds_only_the_exact_key() {
        let key = encode(&[5u8; 32]);
        let mut set = ApiKeySet::default();
        set.insert(compile_entry(raw("a", &key), "k").unwrap())
            .unwrap();
        set.insert(compile_entry(raw("b", &encode(&[6u8; 32])), "k").unwrap())
            .unwrap();
        assert_eq!(set.lookup(&KeyDigest::of(&key)).unwrap().id, "a");
        // Every single-character change of the key misses.
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for pos in 3..key.len() {
            for &c in alphabet {
                let mut bytes = key.clone().into_bytes();
                if bytes[pos] == c {
                    continue;
                }
                bytes[pos] = c;
                let other = String::from_utf8(bytes).unwrap();
                assert!(set.lookup(&KeyDigest::of(&other)).is_none(), "{other}");
            }
        }
    }

    #[test]
    fn duplicates_are_refused() {
        let key = encode(&[5u8; 32]);
        let mut set = ApiKeySet::default();
        set.insert(compile_entry(raw("a", &key), "k").unwrap())
            .unwrap();
        assert_eq!(
            set.insert(compile_entry(raw("a", &encode(&[1u8; 32])), "k").unwrap()),
            Err(Conflict::DuplicateId)
        );
        assert_eq!(
            set.insert(compile_entry(raw("b", &key), "k").unwrap()),
            Err(Conflict::DuplicateHash)
        );
        assert_eq!(set.len(), 1);
    }
}
