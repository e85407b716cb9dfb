//! JWT configuration validated: [`compile`] turns the raw section ([`super::raw`]) into the
//! compiled form the filter uses (`JwtSettings`). Every validation error names the JSON path of
//! the offending field, e.g. `jwt.providers[0].audiences: must not be empty`.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use super::keys::{fingerprint_of, parse_jwks_value, KeySet};
use super::raw::{
    RawJwtSettings, RawProvider, RawRemoteJwks, RawRequires, RawTokenLocation, MAX_CACHE_SIZE,
    MAX_CLOCK_SKEW_SECONDS, MAX_MAX_TOKEN_BYTES, MIN_MAX_TOKEN_BYTES,
};
use super::rules::{CompiledRule, PathMatch, Requirement};
use crate::config::ConfigError;
use crate::refresh::RemoteSource;

/// Headers a claim may never be copied into.
const RESERVED_HEADERS: [&str; 8] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "authorization",
    "cookie",
];

/// Validated JWT settings.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// Providers, referenced by index from rules.
    pub providers: Vec<CompiledProvider>,
    /// Rules, first match wins.
    pub rules: Vec<CompiledRule>,
    /// Paths that never need a token.
    pub bypass: Vec<PathMatch>,
    /// Whether unmatched requests pass.
    pub allow_unmatched: bool,
    /// Whether CORS preflights pass.
    pub bypass_cors_preflight: bool,
    /// `WWW-Authenticate` realm.
    pub realm: String,
    /// Verified-token cache size (0: no cache).
    pub cache_size: usize,
}

impl JwtSettings {
    /// The provider named `name`, with its index.
    pub fn provider_by_name(&self, name: &str) -> Option<(usize, &CompiledProvider)> {
        self.providers
            .iter()
            .enumerate()
            .find(|(_, p)| p.name == name)
    }

    /// Every claim header of every provider: remove these from every client request before
    /// anything else, so clients cannot spoof identity headers (even on bypassed paths).
    pub fn headers_to_remove(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in &self.providers {
            for c in &p.claims_to_headers {
                if !out.contains(&c.header) {
                    out.push(c.header.clone());
                }
            }
        }
        out
    }
}

/// A validated provider.
#[derive(Debug, Clone)]
pub struct CompiledProvider {
    /// Provider name.
    pub name: String,
    /// Required `iss`, if any.
    pub issuer: Option<String>,
    /// Accepted `aud` values, if checked (never empty).
    pub audiences: Option<Vec<String>>,
    /// Where the keys come from.
    pub jwks: JwksSource,
    /// Where tokens are looked for, in order.
    pub token_locations: Vec<TokenLocation>,
    /// Whether the token is passed upstream.
    pub forward: bool,
    /// Claims copied into headers.
    pub claims_to_headers: Vec<ClaimHeader>,
    /// Whether `exp` is required.
    pub require_exp: bool,
    /// Clock skew, seconds.
    pub clock_skew_seconds: u64,
    /// Longest lifetime, seconds.
    pub max_lifetime_seconds: Option<u64>,
    /// Longest token, bytes.
    pub max_token_bytes: usize,
    /// Scope claim path (dotted name split on `.`).
    pub scope_claim: Vec<String>,
}

/// Where a provider's keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// Keys given inline, parsed at configuration time.
    Local(Arc<KeySet>),
    /// Keys fetched from a cluster.
    Remote(RemoteSource),
}

/// A validated token location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLocation {
    /// A header (lowercase name) whose value starts with `prefix` (ASCII case-insensitive).
    Header {
        /// Lowercase header name.
        name: String,
        /// Prefix before the token, possibly empty.
        prefix: String,
    },
    /// A query parameter.
    Query(String),
    /// A cookie.
    Cookie(String),
}

/// A validated claim-to-header mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimHeader {
    /// The claim name as configured.
    pub claim: String,
    /// The claim path (split on `.`).
    pub claim_path: Vec<String>,
    /// Lowercase header name.
    pub header: String,
}

/// Deserializes a JSON value into `RawJwtSettings` and compiles it; serde errors carry the
/// JSON path too (e.g. `jwt.providers[0].foo: unknown field ...`). The plugin configuration
/// reads the section once with the rest of the document and calls [`compile`] instead.
pub fn from_json_value(value: Value, path_prefix: &str) -> Result<JwtSettings, ConfigError> {
    let raw: RawJwtSettings = crate::config::deserialize_value(&value, path_prefix)?;
    compile(raw, path_prefix)
}

/// Joins a JSON path prefix and a field (`a` + `b` → `a.b`; `a` + `[0]` → `a[0]`).
fn join(prefix: &str, field: &str) -> String {
    crate::config::join_path(prefix, field)
}

fn err<T>(path: String, reason: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::new(path, reason))
}

/// True for a lowercase-able HTTP token (RFC 9110 `tchar`) header name.
fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// True for a simple name: `[A-Za-z0-9_.-]`, 1..=64 chars.
fn is_simple_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// Splits a dotted claim name; every segment must be non-empty.
fn claim_path(path: String, claim: &str) -> Result<Vec<String>, ConfigError> {
    if claim.is_empty() || claim.len() > 256 {
        return err(
            path,
            "must be a non-empty claim name of at most 256 characters",
        );
    }
    let parts: Vec<String> = claim.split('.').map(str::to_string).collect();
    if parts.iter().any(String::is_empty) {
        return err(path, "must not have empty segments between dots");
    }
    Ok(parts)
}

/// Validates `raw` into `JwtSettings`; `path_prefix` (e.g. `jwt`) starts every error path.
pub fn compile(raw: RawJwtSettings, path_prefix: &str) -> Result<JwtSettings, ConfigError> {
    let p = |field: &str| join(path_prefix, field);
    if raw.providers.is_empty() {
        return err(p("providers"), "must not be empty");
    }
    let mut providers = Vec::with_capacity(raw.providers.len());
    let mut names = HashSet::new();
    for (i, rp) in raw.providers.into_iter().enumerate() {
        let ppath = p(&format!("providers[{i}]"));
        if !names.insert(rp.name.clone()) {
            return err(
                join(&ppath, "name"),
                format!("duplicate provider name \"{}\"", rp.name),
            );
        }
        providers.push(compile_provider(rp, &ppath)?);
    }
    let find = |name: &str, path: String| -> Result<usize, ConfigError> {
        providers
            .iter()
            .position(|pr| pr.name == name)
            .ok_or_else(|| ConfigError::new(path, format!("unknown provider \"{name}\"")))
    };
    let mut rules = Vec::with_capacity(raw.rules.len());
    for (i, rr) in raw.rules.into_iter().enumerate() {
        let rpath = p(&format!("rules[{i}]"));
        let path_match = compile_path_match(rr.path_prefix, rr.path_exact, &rpath)?;
        let requires = match rr.requires {
            None => Requirement::None,
            Some(RawRequires::Provider(name)) => {
                Requirement::Provider(find(&name, join(&rpath, "requires.provider"))?)
            }
            Some(RawRequires::Optional(name)) => {
                Requirement::Optional(find(&name, join(&rpath, "requires.optional"))?)
            }
            Some(RawRequires::Any(names)) => {
                let apath = join(&rpath, "requires.any");
                if names.is_empty() {
                    return err(apath, "must not be empty");
                }
                let mut idx = Vec::with_capacity(names.len());
                for (j, name) in names.iter().enumerate() {
                    let k = find(name, format!("{apath}[{j}]"))?;
                    if idx.contains(&k) {
                        return err(
                            format!("{apath}[{j}]"),
                            format!("duplicate provider \"{name}\""),
                        );
                    }
                    idx.push(k);
                }
                Requirement::Any(idx)
            }
        };
        if !rr.required_scopes.is_empty() && requires == Requirement::None {
            return err(
                join(&rpath, "required_scopes"),
                "needs [requires]: scopes can only be checked on a token",
            );
        }
        if !rr.required_scopes.is_empty() && matches!(requires, Requirement::Optional(_)) {
            return err(
                join(&rpath, "required_scopes"),
                "cannot be used with [optional]: a missing token has no scopes",
            );
        }
        for (j, s) in rr.required_scopes.iter().enumerate() {
            if s.is_empty() || s.len() > 256 || !s.bytes().all(|b| b.is_ascii_graphic()) {
                return err(
                    format!("{}[{j}]", join(&rpath, "required_scopes")),
                    "must be a non-empty scope without spaces",
                );
            }
        }
        rules.push(CompiledRule {
            path: path_match,
            requires,
            required_scopes: rr.required_scopes,
        });
    }
    let mut bypass = Vec::with_capacity(raw.bypass.len());
    for (i, b) in raw.bypass.into_iter().enumerate() {
        bypass.push(compile_path_match(
            b.path_prefix,
            b.path_exact,
            &p(&format!("bypass[{i}]")),
        )?);
    }
    if raw.realm.is_empty()
        || raw.realm.len() > 128
        || !raw
            .realm
            .bytes()
            .all(|b| (b == b' ' || b.is_ascii_graphic()) && b != b'"' && b != b'\\')
    {
        return err(
            p("realm"),
            "must be 1..=128 printable ASCII characters without quotes or backslashes",
        );
    }
    if raw.cache_size > MAX_CACHE_SIZE {
        return err(p("cache_size"), format!("must be at most {MAX_CACHE_SIZE}"));
    }
    Ok(JwtSettings {
        providers,
        rules,
        bypass,
        allow_unmatched: raw.allow_unmatched,
        bypass_cors_preflight: raw.bypass_cors_preflight,
        realm: raw.realm,
        cache_size: raw.cache_size,
    })
}

fn compile_path_match(
    prefix: Option<String>,
    exact: Option<String>,
    path: &str,
) -> Result<PathMatch, ConfigError> {
    let (m, field, value) = match (prefix, exact) {
        (Some(v), None) => (PathMatch::Prefix(v.clone()), "path_prefix", v),
        (None, Some(v)) => (PathMatch::Exact(v.clone()), "path_exact", v),
        _ => {
            return err(
                path.to_string(),
                "must have exactly one of [path_prefix] and [path_exact]",
            )
        }
    };
    if !value.starts_with('/') || value.contains('?') || value.contains('#') {
        return err(
            join(path, field),
            "must start with '/' and contain no query or fragment",
        );
    }
    Ok(m)
}

fn compile_provider(rp: RawProvider, ppath: &str) -> Result<CompiledProvider, ConfigError> {
    let f = |field: &str| join(ppath, field);
    if !is_simple_name(&rp.name) {
        return err(f("name"), "must be 1..=64 characters of [A-Za-z0-9_.-]");
    }
    if let Some(iss) = &rp.issuer {
        if iss.is_empty() {
            return err(f("issuer"), "must not be empty (omit it to skip the check)");
        }
    }
    if let Some(auds) = &rp.audiences {
        if auds.is_empty() {
            return err(f("audiences"), "must not be empty");
        }
        if let Some(j) = auds.iter().position(String::is_empty) {
            return err(format!("{}[{j}]", f("audiences")), "must not be empty");
        }
    }
    let jwks = match (rp.local_jwks, rp.remote_jwks) {
        (Some(local), None) => {
            JwksSource::Local(Arc::new(compile_local_jwks(local, &f("local_jwks"))?))
        }
        (None, Some(remote)) => JwksSource::Remote(compile_remote_jwks(remote, &f("remote_jwks"))?),
        _ => {
            return err(
                ppath.to_string(),
                "must have exactly one of [local_jwks] and [remote_jwks]",
            )
        }
    };
    let token_locations = match rp.token_locations {
        None => vec![TokenLocation::Header {
            name: "authorization".into(),
            prefix: "Bearer ".into(),
        }],
        Some(list) => {
            let lpath = f("token_locations");
            if list.is_empty() {
                return err(lpath, "must not be empty");
            }
            let mut out = Vec::with_capacity(list.len());
            for (i, l) in list.into_iter().enumerate() {
                let loc = compile_location(l, &format!("{lpath}[{i}]"))?;
                if out.contains(&loc) {
                    return err(format!("{lpath}[{i}]"), "duplicate token location");
                }
                out.push(loc);
            }
            out
        }
    };
    let mut claims_to_headers: Vec<ClaimHeader> = Vec::with_capacity(rp.claims_to_headers.len());
    for (i, c) in rp.claims_to_headers.into_iter().enumerate() {
        let cpath = format!("{}[{i}]", f("claims_to_headers"));
        let claim_path = claim_path(join(&cpath, "claim"), &c.claim)?;
        let header = c.header.to_ascii_lowercase();
        if !is_header_name(&header) {
            return err(join(&cpath, "header"), "must be a valid HTTP header name");
        }
        if RESERVED_HEADERS.contains(&header.as_str()) {
            return err(
                join(&cpath, "header"),
                format!("\"{header}\" cannot receive claims"),
            );
        }
        if token_locations
            .iter()
            .any(|l| matches!(l, TokenLocation::Header { name, .. } if *name == header))
        {
            return err(
                join(&cpath, "header"),
                "is a token location of this provider",
            );
        }
        if claims_to_headers.iter().any(|h| h.header == header) {
            return err(join(&cpath, "header"), "duplicate header");
        }
        claims_to_headers.push(ClaimHeader {
            claim: c.claim,
            claim_path,
            header,
        });
    }
    if rp.clock_skew_seconds > MAX_CLOCK_SKEW_SECONDS {
        return err(
            f("clock_skew_seconds"),
            format!("must be at most {MAX_CLOCK_SKEW_SECONDS}"),
        );
    }
    if rp.max_lifetime_seconds == Some(0) {
        return err(f("max_lifetime_seconds"), "must be greater than 0");
    }
    if !(MIN_MAX_TOKEN_BYTES..=MAX_MAX_TOKEN_BYTES).contains(&rp.max_token_bytes) {
        return err(
            f("max_token_bytes"),
            format!("must be between {MIN_MAX_TOKEN_BYTES} and {MAX_MAX_TOKEN_BYTES}"),
        );
    }
    let scope_claim = claim_path(f("scope_claim"), &rp.scope_claim)?;
    Ok(CompiledProvider {
        name: rp.name,
        issuer: rp.issuer,
        audiences: rp.audiences,
        jwks,
        token_locations,
        forward: rp.forward,
        claims_to_headers,
        require_exp: rp.require_exp,
        clock_skew_seconds: rp.clock_skew_seconds,
        max_lifetime_seconds: rp.max_lifetime_seconds,
        max_token_bytes: rp.max_token_bytes,
        scope_claim,
    })
}

fn compile_local_jwks(local: Value, path: &str) -> Result<KeySet, ConfigError> {
    let (value, fingerprint) = match local {
        Value::String(s) => {
            let v: Value = serde_json::from_slice(s.as_bytes()).map_err(|e| {
                ConfigError::new(path, format!("is not a valid JSON document: {e}"))
            })?;
            (v, fingerprint_of(s.as_bytes()))
        }
        v @ Value::Object(_) => {
            let fp = fingerprint_of(&serde_json::to_vec(&v).unwrap_or_default());
            (v, fp)
        }
        _ => return err(path.to_string(), "must be a JWKS object or a JSON string"),
    };
    let load =
        parse_jwks_value(&value, fingerprint).map_err(|e| ConfigError::new(path, e.to_string()))?;
    if let Some(s) = load.skipped.first() {
        return err(format!("{path}.keys[{}]", s.index), s.reason.clone());
    }
    if load.keys.is_empty() {
        return err(format!("{path}.keys"), "has no usable key");
    }
    Ok(load.keys)
}

pub(crate) fn compile_remote_jwks(
    r: RawRemoteJwks,
    path: &str,
) -> Result<RemoteSource, ConfigError> {
    let f = |field: &str| join(path, field);
    if r.cluster.is_empty() {
        return err(f("cluster"), "must not be empty");
    }
    let (authority, req_path) = match (r.uri, r.path) {
        (Some(uri), None) => {
            let rest = uri
                .strip_prefix("https://")
                .or_else(|| uri.strip_prefix("http://"))
                .ok_or_else(|| ConfigError::new(f("uri"), "must start with http:// or https://"))?;
            let (auth, p) = rest
                .find('/')
                .and_then(|pos| rest.split_at_checked(pos))
                .unwrap_or((rest, "/"));
            if auth.is_empty() {
                return err(f("uri"), "must name a host");
            }
            let authority = r.authority.unwrap_or_else(|| auth.to_string());
            (authority, p.to_string())
        }
        (None, Some(p)) => {
            let authority = r.authority.ok_or_else(|| {
                ConfigError::new(f("authority"), "is required when [path] is given")
            })?;
            (authority, p)
        }
        _ => {
            return err(
                path.to_string(),
                "must have exactly one of [uri] and [path]",
            )
        }
    };
    if !req_path.starts_with('/') || req_path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return err(
            f("path"),
            "must start with '/' and contain no spaces or control characters",
        );
    }
    if authority.is_empty()
        || authority
            .bytes()
            .any(|b| b <= b' ' || b == b'/' || b == 0x7f)
    {
        return err(f("authority"), "must be a non-empty host[:port]");
    }
    if !(1..=86_400).contains(&r.refresh_seconds) {
        return err(f("refresh_seconds"), "must be between 1 and 86400");
    }
    if !(1..=60_000).contains(&r.timeout_ms) {
        return err(f("timeout_ms"), "must be between 1 and 60000");
    }
    if !(1..=3_600).contains(&r.min_refetch_seconds) {
        return err(f("min_refetch_seconds"), "must be between 1 and 3600");
    }
    let initial_wait_ms = r.initial_wait_ms.unwrap_or(r.timeout_ms);
    if initial_wait_ms > 60_000 {
        return err(f("initial_wait_ms"), "must be at most 60000");
    }
    Ok(RemoteSource {
        cluster: r.cluster,
        authority,
        path: req_path,
        refresh_seconds: r.refresh_seconds,
        timeout_ms: r.timeout_ms,
        min_refetch_seconds: r.min_refetch_seconds,
        initial_wait_ms,
    })
}

fn compile_location(l: RawTokenLocation, path: &str) -> Result<TokenLocation, ConfigError> {
    let f = |field: &str| join(path, field);
    match (l.header, l.query, l.cookie) {
        (Some(h), None, None) => {
            let name = h.to_ascii_lowercase();
            if !is_header_name(&name) {
                return err(f("header"), "must be a valid HTTP header name");
            }
            let prefix = l.prefix.unwrap_or_default();
            if prefix.len() > 64 || !prefix.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
                return err(f("prefix"), "must be at most 64 printable ASCII characters");
            }
            Ok(TokenLocation::Header { name, prefix })
        }
        (None, Some(q), None) if l.prefix.is_none() => {
            if !is_simple_name(&q) {
                return err(f("query"), "must be 1..=64 characters of [A-Za-z0-9_.-]");
            }
            Ok(TokenLocation::Query(q))
        }
        (None, None, Some(c)) if l.prefix.is_none() => {
            if !is_simple_name(&c) {
                return err(f("cookie"), "must be 1..=64 characters of [A-Za-z0-9_.-]");
            }
            Ok(TokenLocation::Cookie(c))
        }
        (None, Some(_), None) | (None, None, Some(_)) => {
            err(f("prefix"), "is only allowed with [header]")
        }
        _ => err(
            path.to_string(),
            "must have exactly one of [header], [query] and [cookie]",
        ),
    }
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
