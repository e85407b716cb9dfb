//! The one configuration error type and the one JSON-path helper every section uses (the
//! document, `jwt`, `failover`, `guardrails`, the production profile).
//!
//! An error names the JSON path of the offending field and says why, e.g.
//! `jwt.providers[0].audiences: must not be empty`. This module is a leaf: it knows no section.

use std::fmt;

use serde::de::DeserializeOwned;

/// A configuration error: where (JSON path) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// JSON path of the offending field, e.g. `correlation.aliases[1]`; `.` for the document.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// Creates an error for the field at `path`.
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// The same error with `prefix` put in front of its path (see [`join_path`]).
    pub fn under(self, prefix: &str) -> Self {
        Self {
            path: join_path(prefix, &self.path),
            reason: self.reason,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid tollgate config: {}: {}", self.path, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Joins a JSON path and a relative one: `a` + `b` → `a.b`, `a` + `[0]` → `a[0]`; an empty
/// prefix gives the relative path, and a relative path of `.` (the value itself) or nothing
/// gives the prefix (`.` when both are empty).
pub fn join_path(prefix: &str, rest: &str) -> String {
    match (prefix.is_empty(), rest.is_empty() || rest == ".") {
        (true, true) => ".".to_string(),
        (true, false) => rest.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) if rest.starts_with('[') => format!("{prefix}{rest}"),
        (false, false) => format!("{prefix}.{rest}"),
    }
}

/// Reads a JSON document as `T` (trailing data refused); an error names the path of the field
/// serde stopped at, under `prefix` (`""` for the whole plugin configuration). The document is
/// parsed into a `Value` first, so every configuration type is deserialized by one path-tracking
/// deserializer ([`super::value_reader`]) in the module, not by a second one over bytes.
pub fn deserialize_json<T: DeserializeOwned>(bytes: &[u8], prefix: &str) -> Result<T, ConfigError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ConfigError::new(prefix, strip_position(&e.to_string())).under(""))?;
    deserialize_value(&value, prefix)
}

/// Reads an already parsed JSON value as `T`, naming the failing path under `prefix`.
pub fn deserialize_value<T: DeserializeOwned>(
    value: &serde_json::Value,
    prefix: &str,
) -> Result<T, ConfigError> {
    super::value_reader::read(value)
        .map_err(|e| ConfigError::new(e.path(), strip_position(e.message())).under(prefix))
}

/// serde_json appends " at line L column C"; the path already says where.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg.get(..i).unwrap_or(msg).to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_members_and_indexes() {
        assert_eq!(join_path("jwt", "providers[0]"), "jwt.providers[0]");
        assert_eq!(join_path("jwt.providers", "[0]"), "jwt.providers[0]");
        assert_eq!(join_path("", "routes[1]"), "routes[1]");
        assert_eq!(join_path("failover", "."), "failover");
        assert_eq!(join_path("", "."), ".");
    }

    #[test]
    fn serde_errors_name_the_path_without_the_position() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Section {
            #[allow(dead_code)]
            items: Vec<u32>,
        }
        let e = deserialize_json::<Section>(br#"{"items":[1,"x"]}"#, "sec").unwrap_err();
        assert_eq!(e.path, "sec.items[1]");
        assert!(!e.reason.contains(" at line "), "{e}");
        let e = deserialize_json::<Section>(br#"{"items":[]} x"#, "sec").unwrap_err();
        assert_eq!(e.path, "sec");
        assert!(e.reason.contains("trailing"), "{e}");
        let e = deserialize_value::<Section>(&serde_json::json!({"bogus": 1}), "").unwrap_err();
        assert_eq!(e.path, "bogus");
        assert_eq!(
            ConfigError::new("jwt.providers[0].audiences", "must not be empty").to_string(),
            "invalid tollgate config: jwt.providers[0].audiences: must not be empty"
        );
    }
}
