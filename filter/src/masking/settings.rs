//! The user-facing masking configuration (`MaskSettings`, `CustomPattern`) and the validation
//! that turns it into compiled parts: custom pattern charsets, the allow-list, the template.

use serde::{Deserialize, Serialize};

use super::bytes::ByteSet;
use super::detectors::{BUILTIN_KINDS, GENERIC_KIND, KNOWN_SECRET_KIND};
use super::generic::DEFAULT_ENTROPY_THRESHOLD;
use super::template::DEFAULT_TEMPLATE;

/// Longest custom pattern prefix, in bytes.
pub const MAX_CUSTOM_PREFIX: usize = 32;
/// Largest custom pattern `max_len`, in bytes.
pub const MAX_CUSTOM_LEN: usize = 1024;
/// Shortest literal secret accepted (shorter ones would mask ordinary words).
pub const MIN_KNOWN_SECRET_LEN: usize = 8;
/// Longest literal secret accepted.
pub const MAX_KNOWN_SECRET_LEN: usize = 1024;

/// Configuration of the masking engine. Every field has a default, so `{}` is a valid config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct MaskSettings {
    /// Replacement template; `{kind}` and `{last4}` are substituted. Must not contain `"`, `\`
    /// or control characters. Default: `[REDACTED:{kind} …{last4}]`.
    pub template: String,
    /// Extra token shapes to mask.
    pub custom_patterns: Vec<CustomPattern>,
    /// Exact values never masked (e.g. documented example keys). Known secrets ignore this.
    pub allow_values: Vec<String>,
    /// Value prefixes never masked (e.g. `sk-test-doc-`). Known secrets ignore this.
    pub allow_prefixes: Vec<String>,
    /// Built-in detector kinds to turn off (e.g. `["bearer_token"]`).
    pub disabled_detectors: Vec<String>,
    /// Minimum Shannon entropy (bits per byte) of a `generic_assignment` value; see the
    /// `generic` module for the full rule. Default 3.0.
    pub generic_entropy_threshold: f64,
}

impl Default for MaskSettings {
    fn default() -> Self {
        MaskSettings {
            template: DEFAULT_TEMPLATE.to_owned(),
            custom_patterns: Vec::new(),
            allow_values: Vec::new(),
            allow_prefixes: Vec::new(),
            disabled_detectors: Vec::new(),
            generic_entropy_threshold: DEFAULT_ENTROPY_THRESHOLD,
        }
    }
}

/// A custom token shape, matched in linear time: `prefix`, then a run of bytes from `charset`
/// whose length is within `min_len..=max_len`, not glued to a letter or digit on either side
/// (a longer run is not a match).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CustomPattern {
    /// Kind name reported for matches: lower-case snake_case, 1–32 bytes, not a built-in name.
    pub name: String,
    /// Literal prefix, 1–32 printable ASCII bytes, case-sensitive (e.g. `acme_live_`).
    pub prefix: String,
    /// Allowed bytes after the prefix: a class name (`alnum`, `alpha`, `digit`, `hex`,
    /// `hex_lower`, `upper_alnum`, `lower_alnum`, `base64`, `base64url`, `word`) or a bracket-free
    /// set of characters and ranges such as `A-Za-z0-9_-` (a `-` first or last is literal).
    pub charset: String,
    /// Minimum number of charset bytes after the prefix (at least 1).
    pub min_len: usize,
    /// Maximum number of charset bytes after the prefix (at most 1024).
    pub max_len: usize,
}

/// Parses a custom pattern charset (see [`CustomPattern::charset`]).
pub(crate) fn parse_charset(spec: &str) -> Result<ByteSet, String> {
    let named: Option<fn(u8) -> bool> = match spec {
        "alnum" => Some(|b: u8| b.is_ascii_alphanumeric()),
        "alpha" => Some(|b: u8| b.is_ascii_alphabetic()),
        "digit" => Some(|b: u8| b.is_ascii_digit()),
        "hex" => Some(|b: u8| b.is_ascii_hexdigit()),
        "hex_lower" => Some(|b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "upper_alnum" => Some(|b: u8| b.is_ascii_uppercase() || b.is_ascii_digit()),
        "lower_alnum" => Some(|b: u8| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "base64" => Some(|b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'),
        "base64url" => Some(|b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "word" => Some(|b: u8| b.is_ascii_alphanumeric() || b == b'_'),
        _ => None,
    };
    if let Some(member) = named {
        return Ok(ByteSet::from_fn(member));
    }
    let bytes = spec.as_bytes();
    if let Some(bad) = bytes.iter().find(|b| !b.is_ascii_graphic()) {
        return Err(format!(
            "charset {spec:?} has a non-printable or non-ASCII byte 0x{bad:02x}"
        ));
    }
    let mut set = ByteSet::from_fn(|_| false);
    let mut i = 0;
    while let Some(&first) = bytes.get(i) {
        match (bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(b'-'), Some(&last)) => {
                if last < first {
                    return Err(format!(
                        "charset {spec:?} has a reversed range {}-{}",
                        char::from(first),
                        char::from(last)
                    ));
                }
                for b in first..=last {
                    set.insert(b);
                }
                i += 3;
            }
            _ => {
                set.insert(first);
                i += 1;
            }
        }
    }
    if set.is_empty() {
        return Err("charset must not be empty".to_owned());
    }
    Ok(set)
}

/// Checks a kind name: lower-case snake_case, 1–32 bytes, starting with a letter.
pub(crate) fn validate_kind_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(format!(
            "custom pattern name {name:?} must be lower-case snake_case, 1-32 bytes, starting with a letter"
        ));
    }
    if name == KNOWN_SECRET_KIND || name == GENERIC_KIND || BUILTIN_KINDS.contains(&name) {
        return Err(format!(
            "custom pattern name {name:?} is a built-in detector name"
        ));
    }
    Ok(())
}

/// Checks the non-charset fields of a custom pattern.
pub(crate) fn validate_custom(pattern: &CustomPattern) -> Result<(), String> {
    validate_kind_name(&pattern.name)?;
    let prefix = pattern.prefix.as_bytes();
    if prefix.is_empty()
        || prefix.len() > MAX_CUSTOM_PREFIX
        || !prefix.iter().all(u8::is_ascii_graphic)
    {
        return Err(format!(
            "custom pattern {:?}: prefix must be 1-{MAX_CUSTOM_PREFIX} printable ASCII bytes",
            pattern.name
        ));
    }
    if pattern.min_len == 0 || pattern.min_len > pattern.max_len || pattern.max_len > MAX_CUSTOM_LEN
    {
        return Err(format!(
            "custom pattern {:?}: need 1 <= min_len <= max_len <= {MAX_CUSTOM_LEN}",
            pattern.name
        ));
    }
    Ok(())
}

/// Checks a built-in detector name given in `disabled_detectors`.
pub(crate) fn validate_disabled(name: &str) -> Result<(), String> {
    if name == GENERIC_KIND || BUILTIN_KINDS.contains(&name) {
        Ok(())
    } else {
        Err(format!(
            "disabled_detectors: unknown detector {name:?} (known: {}, {GENERIC_KIND})",
            BUILTIN_KINDS.join(", ")
        ))
    }
}
