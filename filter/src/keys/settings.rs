//! The `keys` configuration section: where keys are read from in a request, whether one is
//! required, and where the key set comes from (inline, or fetched through an Envoy cluster).

use std::sync::Arc;

use serde::Deserialize;

use super::set::{compile_entry, ApiKeySet, RawKeyEntry, MAX_KEYS};
use crate::config::{validate_header_name, ConfigError};
use crate::jwt::raw::RawRemoteJwks;
use crate::refresh::RemoteSource;

/// Default headers a key is read from, in order.
pub const DEFAULT_HEADERS: [&str; 3] = ["authorization", "x-api-key", "x-goog-api-key"];
/// Default `keys.max_teams`.
pub const DEFAULT_MAX_TEAMS: usize = 100;

fn default_headers() -> Vec<String> {
    DEFAULT_HEADERS.iter().map(|h| h.to_string()).collect()
}

fn default_true() -> bool {
    true
}

fn default_max_teams() -> usize {
    DEFAULT_MAX_TEAMS
}

/// Raw `keys` section.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawKeys {
    /// Headers a key is read from (default `authorization` as `Bearer tg-…`, `x-api-key`,
    /// `x-goog-api-key`).
    #[serde(default = "default_headers")]
    pub headers: Vec<String>,
    /// Refuse requests that present neither a key nor (when `jwt` is configured) a token
    /// (default true).
    #[serde(default = "default_true")]
    pub required: bool,
    /// The keys, written in the configuration (exactly one of `inline` and `remote`).
    #[serde(default)]
    pub inline: Option<Vec<RawKeyEntry>>,
    /// The key set, fetched through an Envoy cluster and refreshed (same fields as
    /// `jwt.providers[].remote_jwks`).
    #[serde(default)]
    pub remote: Option<RawRemoteJwks>,
    /// Distinct teams given their own metric label; others are counted as `other`.
    #[serde(default = "default_max_teams")]
    pub max_teams: usize,
}

/// Where the key set comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Written in the configuration.
    Inline(Arc<ApiKeySet>),
    /// Fetched and refreshed.
    Remote(RemoteSource),
}

/// Validated `keys`.
#[derive(Debug, Clone)]
pub struct KeySettings {
    /// Lowercased headers a key is read from, in order.
    pub headers: Vec<String>,
    /// Refuse requests without a credential.
    pub required: bool,
    /// The key set's source.
    pub source: KeySource,
    /// Team label cap.
    pub max_teams: usize,
}

/// Validates the section found at `path` (normally `keys`).
pub fn compile(raw: RawKeys, path: &str) -> Result<KeySettings, ConfigError> {
    let f = |field: &str| format!("{path}.{field}");
    if raw.headers.is_empty() {
        return Err(ConfigError::new(f("headers"), "must not be empty"));
    }
    let mut headers = Vec::with_capacity(raw.headers.len());
    for (i, h) in raw.headers.iter().enumerate() {
        let name = validate_header_name(&format!("{path}.headers[{i}]"), h)?;
        if headers.contains(&name) {
            return Err(ConfigError::new(
                format!("{path}.headers[{i}]"),
                format!("duplicate header name {name:?}"),
            ));
        }
        headers.push(name);
    }
    if raw.max_teams == 0 || raw.max_teams > 10_000 {
        return Err(ConfigError::new(
            f("max_teams"),
            "must be between 1 and 10000",
        ));
    }
    let source = match (raw.inline, raw.remote) {
        (Some(entries), None) => {
            if entries.len() > MAX_KEYS {
                return Err(ConfigError::new(
                    f("inline"),
                    format!("at most {MAX_KEYS} keys"),
                ));
            }
            let mut set = ApiKeySet::default();
            for (i, raw_entry) in entries.into_iter().enumerate() {
                let entry_path = format!("{path}.inline[{i}]");
                let entry = compile_entry(raw_entry, &entry_path)?;
                set.insert(entry)
                    .map_err(|c| ConfigError::new(entry_path, c.reason()))?;
            }
            KeySource::Inline(Arc::new(set))
        }
        (None, Some(remote)) => KeySource::Remote(crate::jwt::settings::compile_remote_jwks(
            remote,
            &f("remote"),
        )?),
        _ => {
            return Err(ConfigError::new(
                path,
                "must have exactly one of [inline] and [remote]",
            ))
        }
    };
    Ok(KeySettings {
        headers,
        required: raw.required,
        source,
        max_teams: raw.max_teams,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::secret::{encode, KeyDigest};

    fn parse(json: serde_json::Value) -> Result<KeySettings, ConfigError> {
        let raw: RawKeys = serde_json::from_value(json).unwrap();
        compile(raw, "keys")
    }

    fn entry(id: &str, seed: u8) -> serde_json::Value {
        serde_json::json!({"id": id, "sha256": KeyDigest::of(&encode(&[seed; 32])).to_hex(),
            "owner": "o", "team": "t"})
    }

    #[test]
    fn inline_keys_compile_with_default_headers() {
        let s = parse(serde_json::json!({"inline": [entry("a", 1), entry("b", 2)]})).unwrap();
        assert_eq!(s.headers, DEFAULT_HEADERS);
        assert!(s.required);
        assert_eq!(s.max_teams, DEFAULT_MAX_TEAMS);
        let KeySource::Inline(set) = s.source else {
            panic!("inline expected")
        };
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn remote_keys_reuse_the_remote_document_settings() {
        let s = parse(serde_json::json!({"remote": {"cluster": "keys",
            "uri": "http://keys.internal/v1/keys.json", "refresh_seconds": 30}}))
        .unwrap();
        let KeySource::Remote(r) = s.source else {
            panic!("remote expected")
        };
        assert_eq!(
            (r.cluster.as_str(), r.authority.as_str(), r.path.as_str()),
            ("keys", "keys.internal", "/v1/keys.json")
        );
        assert_eq!(r.refresh_seconds, 30);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (serde_json::json!({}), "keys"),
            (
                serde_json::json!({"inline": [], "remote": {"cluster": "k", "uri": "http://k/"}}),
                "keys",
            ),
            (
                serde_json::json!({"inline": [], "headers": ["x-api-key", "X-API-Key"]}),
                "keys.headers[1]",
            ),
            (
                serde_json::json!({"inline": [], "headers": []}),
                "keys.headers",
            ),
            (
                serde_json::json!({"inline": [], "max_teams": 0}),
                "keys.max_teams",
            ),
            (
                serde_json::json!({"inline": [entry("a", 1), entry("a", 2)]}),
                "keys.inline[1]",
            ),
            (
                serde_json::json!({"inline": [entry("a", 1), entry("b", 1)]}),
                "keys.inline[1]",
            ),
            (
                serde_json::json!({"remote": {"cluster": "k", "uri": "http://k/", "refresh_seconds": 0}}),
                "keys.remote.refresh_seconds",
            ),
        ];
        for (doc, path) in cases {
            let e = parse(doc.clone()).unwrap_err();
            assert_eq!(e.path, path, "{doc}: {e}");
        }
    }
}
