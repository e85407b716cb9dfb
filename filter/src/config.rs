//! Plugin configuration: the JSON document Envoy passes as `plugin_config`.
//!
//! Two phases: serde reads the raw document (unknown fields rejected, defaults explicit), then
//! [`FilterConfig::from_raw`] validates every value and compiles the runtime form. Every error
//! names the JSON path of the offending field, e.g. `correlation.max_length: must be 1..=1024`.

use std::fmt;

use serde::Deserialize;

use crate::correlation::DEFAULT_MAX_REQUEST_ID_LEN;

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
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid tollgate config: {}: {}", self.path, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// The raw document as serde reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// Correlation id settings.
    pub correlation: RawCorrelation,
    /// Request size limits.
    pub limits: RawLimits,
}

/// Raw `limits` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    /// Largest request body accepted, in bytes (default 16 MiB).
    pub max_request_bytes: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        }
    }
}

/// Default `limits.max_request_bytes`: 16 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 16 * 1024 * 1024;

/// Raw `correlation` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCorrelation {
    /// The canonical request id header (default `x-request-id`).
    pub request_id_header: String,
    /// Other headers a client may carry its id in (default `["x-correlation-id"]`).
    pub aliases: Vec<String>,
    /// Longest id accepted before it is replaced (default 128).
    pub max_length: usize,
    /// Whether to manage W3C `traceparent` (default true).
    pub traceparent: bool,
}

impl Default for RawCorrelation {
    fn default() -> Self {
        Self {
            request_id_header: "x-request-id".to_string(),
            aliases: vec!["x-correlation-id".to_string()],
            max_length: DEFAULT_MAX_REQUEST_ID_LEN,
            traceparent: true,
        }
    }
}

/// The validated configuration the filter runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterConfig {
    /// Correlation id settings.
    pub correlation: CorrelationConfig,
    /// Largest request body accepted, in bytes.
    pub max_request_bytes: u64,
}

/// Validated correlation settings (header names lowercased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationConfig {
    /// The canonical request id header.
    pub request_id_header: String,
    /// Alias headers, in lookup order.
    pub aliases: Vec<String>,
    /// Longest accepted id.
    pub max_length: usize,
    /// Whether `traceparent` is managed.
    pub traceparent: bool,
}

impl FilterConfig {
    /// Parses and validates the plugin configuration. Empty input means all defaults.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let trimmed = bytes.iter().all(|b| b.is_ascii_whitespace());
        let raw: RawConfig = if trimmed {
            RawConfig::default()
        } else {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let path = e.path().to_string();
                ConfigError::new(path, strip_position(&e.into_inner().to_string()))
            })?
        };
        Self::from_raw(raw)
    }

    /// Validates a raw document into the runtime form.
    pub fn from_raw(raw: RawConfig) -> Result<Self, ConfigError> {
        let c = raw.correlation;
        let request_id_header =
            validate_header_name("correlation.request_id_header", &c.request_id_header)?;
        let mut aliases = Vec::with_capacity(c.aliases.len());
        for (i, alias) in c.aliases.iter().enumerate() {
            let path = format!("correlation.aliases[{i}]");
            let name = validate_header_name(&path, alias)?;
            if name == request_id_header || aliases.contains(&name) {
                return Err(ConfigError::new(
                    path,
                    format!("duplicate header name {name:?}"),
                ));
            }
            aliases.push(name);
        }
        if !(1..=1024).contains(&c.max_length) {
            return Err(ConfigError::new(
                "correlation.max_length",
                format!("must be between 1 and 1024, got {}", c.max_length),
            ));
        }
        if raw.limits.max_request_bytes == 0 {
            return Err(ConfigError::new(
                "limits.max_request_bytes",
                "must be greater than 0",
            ));
        }
        Ok(Self {
            correlation: CorrelationConfig {
                request_id_header,
                aliases,
                max_length: c.max_length,
                traceparent: c.traceparent,
            },
            max_request_bytes: raw.limits.max_request_bytes,
        })
    }
}

impl Default for FilterConfig {
    fn default() -> Self {
        // The defaults are valid by construction; fall back to the same values field by field.
        Self::from_raw(RawConfig::default()).unwrap_or(Self {
            correlation: CorrelationConfig {
                request_id_header: "x-request-id".into(),
                aliases: Vec::new(),
                max_length: DEFAULT_MAX_REQUEST_ID_LEN,
                traceparent: true,
            },
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        })
    }
}

/// Checks an HTTP header name (RFC 9110 token, not a pseudo-header) and lowercases it.
pub fn validate_header_name(path: &str, name: &str) -> Result<String, ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(ConfigError::new(
            path,
            format!("not a valid HTTP header name: {name:?}"),
        ))
    }
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
    fn empty_and_empty_object_are_valid_defaults() {
        let a = FilterConfig::parse(b"").unwrap();
        let b = FilterConfig::parse(b"{}").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.correlation.request_id_header, "x-request-id");
        assert_eq!(a.correlation.aliases, vec!["x-correlation-id"]);
    }

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let e = FilterConfig::parse(br#"{"correlation":{"bogus":1}}"#).unwrap_err();
        assert_eq!(e.path, "correlation.bogus");
        assert!(e.reason.contains("unknown field"), "{e}");
    }

    #[test]
    fn wrong_type_is_named() {
        let e = FilterConfig::parse(br#"{"correlation":{"max_length":"big"}}"#).unwrap_err();
        assert_eq!(e.path, "correlation.max_length");
    }

    #[test]
    fn out_of_range_value_is_named() {
        let e = FilterConfig::parse(br#"{"correlation":{"max_length":0}}"#).unwrap_err();
        assert_eq!(e.path, "correlation.max_length");
        assert!(e.to_string().contains("between 1 and 1024"));
    }

    #[test]
    fn bad_alias_is_named_by_index() {
        let e =
            FilterConfig::parse(br#"{"correlation":{"aliases":["ok","bad header"]}}"#).unwrap_err();
        assert_eq!(e.path, "correlation.aliases[1]");
    }

    #[test]
    fn header_names_are_lowercased() {
        let c =
            FilterConfig::parse(br#"{"correlation":{"request_id_header":"X-Req-ID"}}"#).unwrap();
        assert_eq!(c.correlation.request_id_header, "x-req-id");
    }

    #[test]
    fn malformed_json_is_refused() {
        assert!(FilterConfig::parse(b"{not json").is_err());
    }
}
