//! Route decisions: which JWT requirement applies to a request, from the CORS-preflight bypass,
//! the `bypass` paths and the first matching rule (or the `allow_unmatched` fallback).
//!
//! Paths are matched after normalisation (query and fragment removed, percent-encoded
//! unreserved characters decoded, repeated slashes merged, `.`/`..` segments resolved), so
//! `/public/../v1/chat` cannot reach `/v1` under a `/public` bypass. Paths that cannot be
//! normalised without guessing how the upstream reads them (encoded `/` or `\`, a backslash,
//! `%00`, control characters, `..;` segments, `..` above the root) are refused outright.

/// How a rule or bypass entry matches a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// The normalised path starts with this string.
    Prefix(String),
    /// The normalised path equals this string.
    Exact(String),
}

impl PathMatch {
    /// True when the normalised `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::Exact(p) => path == p,
        }
    }
}

/// What a matched rule needs. Providers are indexes into `JwtSettings::providers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// No token is needed.
    None,
    /// A valid token of this provider.
    Provider(usize),
    /// A valid token of any of these providers.
    Any(Vec<usize>),
    /// No token passes; a present token must be valid for this provider.
    Optional(usize),
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledRule {
    /// Which paths it matches.
    pub path: PathMatch,
    /// What it needs.
    pub requires: Requirement,
    /// Scopes the token must all carry.
    pub required_scopes: Vec<String>,
}

/// Why a request needs no token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BypassReason {
    /// A CORS preflight.
    CorsPreflight,
    /// A `bypass` path.
    BypassPath,
    /// A rule without `requires`.
    RuleWithoutRequirement,
    /// No rule matched and `allow_unmatched` is on.
    UnmatchedAllowed,
}

/// The route decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteDecision<'a> {
    /// No token is needed.
    Bypass(BypassReason),
    /// The rule at `rule_index` applies.
    Require {
        /// Index of the matched rule.
        rule_index: usize,
        /// The matched rule.
        rule: &'a CompiledRule,
    },
    /// No rule matched and unmatched requests are refused (reply 401 `missing`-style).
    RejectUnmatched,
    /// The path is ambiguous and is refused (reply 400).
    RejectAmbiguousPath,
}

/// True for a CORS preflight: `OPTIONS` with non-empty `Origin` and
/// `Access-Control-Request-Method`.
pub fn is_cors_preflight(method: &str, origin: Option<&str>, request_method: Option<&str>) -> bool {
    method.eq_ignore_ascii_case("OPTIONS")
        && origin.is_some_and(|o| !o.is_empty())
        && request_method.is_some_and(|m| !m.is_empty())
}

/// Decides which requirement applies. `path` is the raw `:path` (query allowed).
pub fn route<'a>(
    rules: &'a [CompiledRule],
    bypass: &[PathMatch],
    allow_unmatched: bool,
    cors_preflight: bool,
    path: &str,
) -> RouteDecision<'a> {
    if cors_preflight {
        return RouteDecision::Bypass(BypassReason::CorsPreflight);
    }
    let Some(normalised) = normalize_path(path) else {
        return RouteDecision::RejectAmbiguousPath;
    };
    if bypass.iter().any(|b| b.matches(&normalised)) {
        return RouteDecision::Bypass(BypassReason::BypassPath);
    }
    for (rule_index, rule) in rules.iter().enumerate() {
        if rule.path.matches(&normalised) {
            if rule.requires == Requirement::None {
                return RouteDecision::Bypass(BypassReason::RuleWithoutRequirement);
            }
            return RouteDecision::Require { rule_index, rule };
        }
    }
    if allow_unmatched {
        RouteDecision::Bypass(BypassReason::UnmatchedAllowed)
    } else {
        RouteDecision::RejectUnmatched
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Normalises a request path for matching, or `None` when it is ambiguous (see module doc).
pub fn normalize_path(raw: &str) -> Option<String> {
    let path = raw.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') || path.len() > 8192 {
        return None;
    }
    // Decode percent-encoded unreserved characters; refuse encoded separators and NUL.
    let bytes = path.as_bytes();
    let mut decoded: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' || b < 0x20 || b == 0x7f {
            return None;
        }
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value)?;
            let lo = bytes.get(i + 2).copied().and_then(hex_value)?;
            let c = hi * 16 + lo;
            if c == b'/' || c == b'\\' || c < 0x20 || c == 0x7f || c == b'%' {
                return None;
            }
            if c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_' || c == b'~' {
                decoded.push(c);
            } else {
                // Keep other encodings as written (uppercase hex for a canonical form).
                decoded.push(b'%');
                decoded.extend(format!("{c:02X}").bytes());
            }
            i += 3;
            continue;
        }
        decoded.push(b);
        i += 1;
    }
    let decoded = String::from_utf8(decoded).ok()?;
    let mut segments: Vec<&str> = Vec::new();
    let ends_with_slash =
        decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    for seg in decoded.split('/') {
        let base = seg.split(';').next().unwrap_or("");
        if seg.contains(';') && (base == "." || base == "..") {
            return None;
        }
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || ends_with_slash {
        out.push('/');
    }
    Some(out)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;

    fn rules() -> Vec<CompiledRule> {
        vec![
            CompiledRule {
                path: PathMatch::Exact("/v1/models".into()),
                requires: Requirement::None,
                required_scopes: vec![],
            },
            CompiledRule {
                path: PathMatch::Prefix("/v1/admin".into()),
                requires: Requirement::Provider(1),
                required_scopes: vec!["admin".into()],
            },
            CompiledRule {
                path: PathMatch::Prefix("/v1/".into()),
                requires: Requirement::Any(vec![0, 1]),
                required_scopes: vec![],
            },
        ]
    }

    fn decide(path: &str, allow_unmatched: bool) -> RouteDecision<'static> {
        let rules: &'static [CompiledRule] = Box::leak(rules().into_boxed_slice());
        let bypass = vec![PathMatch::Prefix("/health".into())];
        route(rules, &bypass, allow_unmatched, false, path)
    }

    fn rule_index(d: RouteDecision<'_>) -> Option<usize> {
        match d {
            RouteDecision::Require { rule_index, .. } => Some(rule_index),
            _ => None,
        }
    }

    #[test]
    fn first_match_wins() {
        assert_eq!(
            decide("/v1/models", false),
            RouteDecision::Bypass(BypassReason::RuleWithoutRequirement)
        );
        assert_eq!(rule_index(decide("/v1/models/x", false)), Some(2));
        assert_eq!(rule_index(decide("/v1/admin/users", false)), Some(1));
        assert_eq!(
            rule_index(decide("/v1/chat/completions?x=1", false)),
            Some(2)
        );
        assert_eq!(
            decide("/healthz", false),
            RouteDecision::Bypass(BypassReason::BypassPath)
        );
    }

    #[test]
    fn unmatched_refused_unless_allowed() {
        assert_eq!(decide("/other", false), RouteDecision::RejectUnmatched);
        assert_eq!(
            decide("/other", true),
            RouteDecision::Bypass(BypassReason::UnmatchedAllowed)
        );
    }

    #[test]
    fn cors_preflight_bypasses() {
        assert!(is_cors_preflight(
            "OPTIONS",
            Some("https://a"),
            Some("POST")
        ));
        assert!(!is_cors_preflight("OPTIONS", Some("https://a"), None));
        assert!(!is_cors_preflight("OPTIONS", Some(""), Some("POST")));
        assert!(!is_cors_preflight("GET", Some("https://a"), Some("POST")));
        let r = rules();
        assert_eq!(
            route(&r, &[], false, true, "/v1/chat"),
            RouteDecision::Bypass(BypassReason::CorsPreflight)
        );
    }

    #[test]
    fn traversal_cannot_escape_rules() {
        // Would match the /v1/models bypass rule literally, but resolves to /v1/admin.
        assert_eq!(rule_index(decide("/v1/models/../admin/x", false)), Some(1));
        assert_eq!(rule_index(decide("/health/../v1/chat", false)), Some(2));
        assert_eq!(rule_index(decide("//v1//admin", false)), Some(1));
        assert_eq!(rule_index(decide("/v1/%61dmin", false)), Some(1));
        assert_eq!(
            rule_index(decide("/v1/models/%2e%2e/admin", false)),
            Some(1)
        );
        for bad in [
            "/v1/models%2f..%2fadmin",
            "/v1\\admin",
            "/../v1",
            "/v1/models/..;/admin",
            "/v1/%00",
            "/v1/%zz",
            "v1/chat",
        ] {
            assert_eq!(
                decide(bad, true),
                RouteDecision::RejectAmbiguousPath,
                "{bad}"
            );
        }
    }

    #[test]
    fn normalisation_examples() {
        assert_eq!(normalize_path("/").unwrap(), "/");
        assert_eq!(normalize_path("/a/./b/").unwrap(), "/a/b/");
        assert_eq!(normalize_path("/a/b/..").unwrap(), "/a/");
        assert_eq!(normalize_path("/a%20b").unwrap(), "/a%20b");
        assert_eq!(normalize_path("/a?x=/../y").unwrap(), "/a");
    }
}
