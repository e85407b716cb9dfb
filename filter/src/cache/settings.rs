//! The `cache` configuration section: raw serde form and its validation into [`CacheSettings`].
//! Every refusal names the JSON path of the field, e.g. `cache.rules[1].ttl_seconds: must be
//! between 1 and 604800`.

use serde::Deserialize;

use crate::config::ConfigError;
use crate::failover::ModelPattern;
use crate::guardrails::PathRule;

/// Ways (slots) per set of the shared-data layout: a set's index is read on every lookup, so it
/// stays small (16 × 56 bytes), and LRU runs within a set.
pub const WAYS_PER_SET: u32 = 16;

/// Longest TTL accepted: one week.
pub const MAX_TTL_SECONDS: u64 = 7 * 24 * 3600;

/// Most entries accepted: keys in shared data are never deleted, and every worker creates the
/// missing ones at configure time, so this bounds both.
pub const MAX_ENTRIES_LIMIT: u32 = 1 << 16;

/// Whose entries a request may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    /// Each caller (the identity budgets use) has its own entries.
    User,
    /// Callers of one team share entries; a request with no team is not cached.
    Team,
    /// Every caller shares the entries.
    Shared,
}

impl ScopeKind {
    /// The name used in logs and in the key.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::User => "user",
            ScopeKind::Team => "team",
            ScopeKind::Shared => "shared",
        }
    }
}

/// Raw `cache` section.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    /// Which requests are cached: first matching rule wins; none matching means not cached.
    pub rules: Vec<RawCacheRule>,
    /// Default scope of an entry (default `user`).
    #[serde(default = "default_scope")]
    pub scope: ScopeKind,
    /// Default time to live of an entry, seconds (default 3600).
    #[serde(default = "default_ttl")]
    pub ttl_seconds: u64,
    /// Most entries held (default 1024; rounded down to a multiple of 16).
    #[serde(default = "default_max_entries")]
    pub max_entries: u32,
    /// Most bytes held in entries (default 32 MiB).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Largest single entry (default 256 KiB); larger answers are not stored.
    #[serde(default = "default_max_entry_bytes")]
    pub max_entry_bytes: u64,
    /// Fraction of a hit's tokens charged to budgets, 0.0..=1.0 (default 0).
    #[serde(default)]
    pub budget_fraction: f64,
    /// Request header with which a client opts a non-deterministic request in (default
    /// `x-tollgate-cache-opt-in`; values `1`/`true`).
    #[serde(default = "default_opt_in_header")]
    pub opt_in_header: String,
}

/// Raw `cache.rules[]` entry: a route (path) and/or a model; both must match when both are set.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawCacheRule {
    /// Paths starting with this.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Exactly this path (query excluded).
    #[serde(default)]
    pub path_exact: Option<String>,
    /// The model the client names: a name, or a prefix written `name*`.
    #[serde(default)]
    pub model: Option<String>,
    /// Scope for this rule (default: the section's `scope`).
    #[serde(default)]
    pub scope: Option<ScopeKind>,
    /// TTL for this rule (default: the section's `ttl_seconds`).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

fn default_scope() -> ScopeKind {
    ScopeKind::User
}
fn default_ttl() -> u64 {
    3600
}
fn default_max_entries() -> u32 {
    1024
}
fn default_max_bytes() -> u64 {
    32 * 1024 * 1024
}
fn default_max_entry_bytes() -> u64 {
    256 * 1024
}
fn default_opt_in_header() -> String {
    "x-tollgate-cache-opt-in".into()
}

/// One validated rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRule {
    /// The path the rule applies to (`None`: any).
    pub path: Option<PathRule>,
    /// The model the rule applies to (`None`: any).
    pub model: Option<ModelPattern>,
    /// Scope of its entries.
    pub scope: ScopeKind,
    /// Time to live of its entries, ms.
    pub ttl_ms: u64,
}

impl CacheRule {
    /// Whether a request on `path` (query excluded) for `model` matches.
    pub fn matches(&self, path: &str, model: &str) -> bool {
        self.path.as_ref().is_none_or(|p| p.matches(path))
            && self.model.as_ref().is_none_or(|m| m.matches(model))
    }
}

/// How the shared-data slots are laid out: `sets` sets of `ways` slots each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Number of sets (a key's set is chosen by its hash).
    pub sets: u32,
    /// Slots per set.
    pub ways: u32,
    /// Bytes one set may hold (`max_bytes / sets`).
    pub set_bytes: u64,
}

impl Geometry {
    /// Entries the cache can hold.
    pub fn capacity(&self) -> u64 {
        u64::from(self.sets) * u64::from(self.ways)
    }

    /// Bytes the cache can hold.
    pub fn byte_capacity(&self) -> u64 {
        u64::from(self.sets) * self.set_bytes
    }
}

/// The validated `cache` section.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    /// Rules, first match wins.
    pub rules: Vec<CacheRule>,
    /// Slot layout and bounds.
    pub geometry: Geometry,
    /// Largest entry stored, bytes (encoded entry, header included).
    pub max_entry_bytes: u64,
    /// Fraction of a hit's tokens charged to budgets.
    pub budget_fraction: f64,
    /// Lowercased opt-in header name.
    pub opt_in_header: String,
}

impl CacheSettings {
    /// The first rule matching a request, if any.
    pub fn rule_for(&self, path: &str, model: &str) -> Option<&CacheRule> {
        self.rules.iter().find(|r| r.matches(path, model))
    }
}

fn ttl_ms(path: &str, seconds: u64) -> Result<u64, ConfigError> {
    if !(1..=MAX_TTL_SECONDS).contains(&seconds) {
        return Err(ConfigError::new(
            path,
            format!("must be between 1 and {MAX_TTL_SECONDS}, got {seconds}"),
        ));
    }
    Ok(seconds * 1000)
}

fn path_rule(path: &str, value: &str, exact: bool) -> Result<PathRule, ConfigError> {
    if !value.starts_with('/') {
        return Err(ConfigError::new(path, "must start with '/'"));
    }
    Ok(if exact {
        PathRule::Exact(value.to_string())
    } else {
        PathRule::Prefix(value.to_string())
    })
}

/// Validates the raw section found at JSON path `at` (normally `cache`).
pub fn compile(raw: &RawCache, at: &str) -> Result<CacheSettings, ConfigError> {
    let default_ttl = ttl_ms(&format!("{at}.ttl_seconds"), raw.ttl_seconds)?;
    if raw.rules.is_empty() {
        return Err(ConfigError::new(
            format!("{at}.rules"),
            "must name at least one route or model to cache (the cache is opt-in)",
        ));
    }
    let mut rules = Vec::with_capacity(raw.rules.len());
    for (i, r) in raw.rules.iter().enumerate() {
        let here = format!("{at}.rules[{i}]");
        let path = match (&r.path_prefix, &r.path_exact) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    format!("{here}.path_exact"),
                    "set path_prefix or path_exact, not both",
                ))
            }
            (Some(p), None) => Some(path_rule(&format!("{here}.path_prefix"), p, false)?),
            (None, Some(p)) => Some(path_rule(&format!("{here}.path_exact"), p, true)?),
            (None, None) => None,
        };
        let model = match &r.model {
            Some(m) => Some(
                ModelPattern::parse(m)
                    .map_err(|reason| ConfigError::new(format!("{here}.model"), reason))?,
            ),
            None => None,
        };
        if path.is_none() && model.is_none() {
            return Err(ConfigError::new(
                here,
                "needs path_prefix, path_exact or model (a rule matching everything must say so: \"path_prefix\": \"/\")",
            ));
        }
        let ttl = match r.ttl_seconds {
            Some(s) => ttl_ms(&format!("{here}.ttl_seconds"), s)?,
            None => default_ttl,
        };
        rules.push(CacheRule {
            path,
            model,
            scope: r.scope.unwrap_or(raw.scope),
            ttl_ms: ttl,
        });
    }
    if !(WAYS_PER_SET..=MAX_ENTRIES_LIMIT).contains(&raw.max_entries) {
        return Err(ConfigError::new(
            format!("{at}.max_entries"),
            format!(
                "must be between {WAYS_PER_SET} and {MAX_ENTRIES_LIMIT}, got {}",
                raw.max_entries
            ),
        ));
    }
    let sets = raw.max_entries / WAYS_PER_SET;
    if raw.max_entry_bytes < 1024 {
        return Err(ConfigError::new(
            format!("{at}.max_entry_bytes"),
            format!("must be at least 1024, got {}", raw.max_entry_bytes),
        ));
    }
    let set_bytes = raw.max_bytes / u64::from(sets);
    if raw.max_entry_bytes > set_bytes {
        return Err(ConfigError::new(
            format!("{at}.max_entry_bytes"),
            format!(
                "must be at most max_bytes / (max_entries / {WAYS_PER_SET}) = {set_bytes}: \
                 entries live in {sets} sets of {WAYS_PER_SET} slots, each holding max_bytes / {sets} \
                 bytes (raise max_bytes or lower max_entries)"
            ),
        ));
    }
    if !(0.0..=1.0).contains(&raw.budget_fraction) {
        return Err(ConfigError::new(
            format!("{at}.budget_fraction"),
            format!("must be between 0 and 1, got {}", raw.budget_fraction),
        ));
    }
    let header = raw.opt_in_header.trim().to_ascii_lowercase();
    let valid_header = !header.is_empty()
        && header
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid_header {
        return Err(ConfigError::new(
            format!("{at}.opt_in_header"),
            format!("not a valid header name: {:?}", raw.opt_in_header),
        ));
    }
    Ok(CacheSettings {
        rules,
        geometry: Geometry {
            sets,
            ways: WAYS_PER_SET,
            set_bytes,
        },
        max_entry_bytes: raw.max_entry_bytes,
        budget_fraction: raw.budget_fraction,
        opt_in_header: header,
    })
}

/// Parses and validates a `cache` section from JSON (tests and tools).
pub fn parse(json: &[u8], at: &str) -> Result<CacheSettings, ConfigError> {
    let raw: RawCache = crate::config::deserialize_json(json, at)?;
    compile(&raw, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> ConfigError {
        parse(json.as_bytes(), "cache").unwrap_err()
    }

    #[test]
    fn defaults_give_64_sets_of_16_and_32_mib() {
        let s = parse(br#"{"rules":[{"path_prefix":"/v1/embeddings"}]}"#, "cache").unwrap();
        assert_eq!(s.geometry.sets, 64);
        assert_eq!(s.geometry.ways, 16);
        assert_eq!(s.geometry.capacity(), 1024);
        assert_eq!(s.geometry.byte_capacity(), 32 * 1024 * 1024);
        assert_eq!(s.max_entry_bytes, 256 * 1024);
        assert_eq!(s.rules[0].scope, ScopeKind::User);
        assert_eq!(s.rules[0].ttl_ms, 3_600_000);
        assert_eq!(s.opt_in_header, "x-tollgate-cache-opt-in");
    }

    #[test]
    fn rules_match_path_and_model_and_the_first_wins() {
        let s = parse(
            br#"{"scope":"team","rules":[
                {"path_prefix":"/v1/embeddings","scope":"shared","ttl_seconds":60},
                {"model":"gpt-4o*"},
                {"path_exact":"/v1/chat/completions","model":"llama3"}]}"#,
            "cache",
        )
        .unwrap();
        let r = s
            .rule_for("/v1/embeddings", "text-embedding-3-small")
            .unwrap();
        assert_eq!((r.scope, r.ttl_ms), (ScopeKind::Shared, 60_000));
        let r = s.rule_for("/v1/chat/completions", "gpt-4o-mini").unwrap();
        assert_eq!(r.scope, ScopeKind::Team);
        assert!(s.rule_for("/v1/chat/completions", "llama3").is_some());
        assert!(s.rule_for("/v1/chat/completions/x", "llama3").is_none());
        assert!(s.rule_for("/v1/chat/completions", "claude").is_none());
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (r#"{"rules":[]}"#, "cache.rules"),
            (r#"{"rules":[{}]}"#, "cache.rules[0]"),
            (r#"{"rules":[{"model":"a*b"}]}"#, "cache.rules[0].model"),
            (
                r#"{"rules":[{"path_prefix":"v1"}]}"#,
                "cache.rules[0].path_prefix",
            ),
            (
                r#"{"rules":[{"path_prefix":"/a","path_exact":"/a"}]}"#,
                "cache.rules[0].path_exact",
            ),
            (
                r#"{"rules":[{"model":"m","ttl_seconds":0}]}"#,
                "cache.rules[0].ttl_seconds",
            ),
            (
                r#"{"rules":[{"model":"m"}],"ttl_seconds":0}"#,
                "cache.ttl_seconds",
            ),
            (
                r#"{"rules":[{"model":"m"}],"max_entries":8}"#,
                "cache.max_entries",
            ),
            (
                r#"{"rules":[{"model":"m"}],"max_bytes":1048576}"#,
                "cache.max_entry_bytes",
            ),
            (
                r#"{"rules":[{"model":"m"}],"max_entry_bytes":10}"#,
                "cache.max_entry_bytes",
            ),
            (
                r#"{"rules":[{"model":"m"}],"budget_fraction":1.5}"#,
                "cache.budget_fraction",
            ),
            (
                r#"{"rules":[{"model":"m"}],"opt_in_header":"bad header"}"#,
                "cache.opt_in_header",
            ),
            (r#"{"rules":[{"model":"m"}],"bogus":1}"#, "cache.bogus"),
            (
                r#"{"rules":[{"model":"m","scope":"world"}]}"#,
                "cache.rules[0].scope",
            ),
        ];
        for (json, path) in cases {
            let e = err(json);
            assert_eq!(e.path, path, "{json}: {e}");
        }
    }

    #[test]
    fn the_plugin_config_carries_the_section_and_names_its_fields() {
        use crate::config::FilterConfig;
        let c = FilterConfig::parse(br#"{"cache":{"rules":[{"model":"gpt-4o*"}]}}"#).unwrap();
        assert_eq!(c.cache.unwrap().geometry.sets, 64);
        assert!(FilterConfig::parse(b"{}").unwrap().cache.is_none());
        let e = FilterConfig::parse(br#"{"cache":{"rules":[{"model":"m"}],"max_entries":8}}"#)
            .unwrap_err();
        assert_eq!(e.path, "cache.max_entries");
        let e = FilterConfig::parse(br#"{"cache":{"rules":[{"modle":"m"}]}}"#).unwrap_err();
        assert_eq!(e.path, "cache.rules[0].modle");
    }

    #[test]
    fn the_entry_bound_message_says_how_to_fix_it() {
        let e = err(r#"{"rules":[{"model":"m"}],"max_bytes":1048576}"#);
        assert!(e.reason.contains("16384"), "{}", e.reason);
        assert!(e.reason.contains("raise max_bytes"), "{}", e.reason);
    }
}
