//! The `jwt` configuration section as operators write it: the serde shape (`RawJwtSettings`,
//! unknown fields refused, every default explicit) and the defaults and bounds of its fields.
//! [`super::settings`] validates it into the compiled form.

use serde::Deserialize;
use serde_json::Value;
/// Default `WWW-Authenticate` realm.
pub const DEFAULT_REALM: &str = "tollgate";
/// Default number of verified tokens kept in the cache.
pub const DEFAULT_CACHE_SIZE: usize = 1000;
/// Largest accepted `cache_size`.
pub const MAX_CACHE_SIZE: usize = 100_000;
/// Default clock skew tolerance, seconds (as Envoy).
pub const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 60;
/// Largest accepted clock skew, seconds.
pub const MAX_CLOCK_SKEW_SECONDS: u64 = 600;
/// Default largest token accepted, bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;
/// Smallest accepted `max_token_bytes`.
pub const MIN_MAX_TOKEN_BYTES: usize = 256;
/// Largest accepted `max_token_bytes`.
pub const MAX_MAX_TOKEN_BYTES: usize = 65536;
/// Default remote JWKS refresh period, seconds (Envoy's `cache_duration` default).
pub const DEFAULT_REFRESH_SECONDS: u64 = 600;
/// Default remote JWKS fetch timeout, milliseconds.
pub const DEFAULT_FETCH_TIMEOUT_MS: u64 = 5000;
/// Default minimum interval between refetches triggered by an unknown `kid`, seconds.
pub const DEFAULT_MIN_REFETCH_SECONDS: u64 = 30;
/// Default scope claim.
pub const DEFAULT_SCOPE_CLAIM: &str = "scope";

fn default_true() -> bool {
    true
}
fn default_realm() -> String {
    DEFAULT_REALM.to_string()
}
fn default_cache_size() -> usize {
    DEFAULT_CACHE_SIZE
}
fn default_clock_skew() -> u64 {
    DEFAULT_CLOCK_SKEW_SECONDS
}
fn default_max_token_bytes() -> usize {
    DEFAULT_MAX_TOKEN_BYTES
}
fn default_scope_claim() -> String {
    DEFAULT_SCOPE_CLAIM.to_string()
}
fn default_refresh_seconds() -> u64 {
    DEFAULT_REFRESH_SECONDS
}
fn default_timeout_ms() -> u64 {
    DEFAULT_FETCH_TIMEOUT_MS
}
fn default_min_refetch_seconds() -> u64 {
    DEFAULT_MIN_REFETCH_SECONDS
}

/// The `jwt` configuration section as written by operators.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawJwtSettings {
    /// Token issuers and how to verify their tokens. At least one.
    #[serde(default)]
    pub providers: Vec<RawProvider>,
    /// Path rules; the first matching rule wins.
    #[serde(default)]
    pub rules: Vec<RawRule>,
    /// Paths that never need a token (checked before `rules`).
    #[serde(default)]
    pub bypass: Vec<RawPathMatch>,
    /// Whether a request matching no rule passes without a token. Default false: refused.
    #[serde(default)]
    pub allow_unmatched: bool,
    /// Whether CORS preflights (OPTIONS with `Origin` and `Access-Control-Request-Method`)
    /// pass without a token. Default true.
    #[serde(default = "default_true")]
    pub bypass_cors_preflight: bool,
    /// Realm of the `WWW-Authenticate` challenge. Default `tollgate`.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// Number of verified tokens cached (0 disables the cache). Default 1000.
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
}

/// One provider as written by operators.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// Name referenced by rules; `[A-Za-z0-9_.-]`, unique.
    pub name: String,
    /// Required `iss` value; unset means `iss` is not checked.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted `aud` values (any match); unset means `aud` is not checked; never empty.
    #[serde(default)]
    pub audiences: Option<Vec<String>>,
    /// Inline JWKS: a JSON string or a JSON object.
    #[serde(default)]
    pub local_jwks: Option<Value>,
    /// JWKS fetched from an Envoy cluster.
    #[serde(default)]
    pub remote_jwks: Option<RawRemoteJwks>,
    /// Where the token is looked for. Default: `Authorization: Bearer <token>`.
    #[serde(default)]
    pub token_locations: Option<Vec<RawTokenLocation>>,
    /// Whether the token is passed upstream. Default false: it is stripped.
    #[serde(default)]
    pub forward: bool,
    /// Claims copied into request headers after successful verification.
    #[serde(default)]
    pub claims_to_headers: Vec<RawClaimHeader>,
    /// Whether `exp` is required. Default true.
    #[serde(default = "default_true")]
    pub require_exp: bool,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, seconds. Default 60.
    #[serde(default = "default_clock_skew")]
    pub clock_skew_seconds: u64,
    /// Longest accepted token lifetime, seconds. Unset: no limit.
    #[serde(default)]
    pub max_lifetime_seconds: Option<u64>,
    /// Longest accepted token, bytes, checked before any decoding. Default 8192.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Claim holding scopes (space-separated string or array), dotted for nested claims,
    /// e.g. `scp` or `realm_access.roles`. Default `scope`.
    #[serde(default = "default_scope_claim")]
    pub scope_claim: String,
}

/// A remote JWKS source as written by operators.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawRemoteJwks {
    /// Envoy cluster the fetch is sent to.
    pub cluster: String,
    /// Full `http(s)://authority/path` URL; or give `path` (and `authority`).
    #[serde(default)]
    pub uri: Option<String>,
    /// Request path, starting with `/`; requires `authority`.
    #[serde(default)]
    pub path: Option<String>,
    /// `:authority` of the fetch; taken from `uri` when unset.
    #[serde(default)]
    pub authority: Option<String>,
    /// Refresh period, seconds. Default 600.
    #[serde(default = "default_refresh_seconds")]
    pub refresh_seconds: u64,
    /// Fetch timeout, milliseconds. Default 5000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Minimum seconds between refetches triggered by an unknown `kid`. Default 30.
    #[serde(default = "default_min_refetch_seconds")]
    pub min_refetch_seconds: u64,
    /// How long requests may wait for the first fetch, milliseconds. Default `timeout_ms`.
    #[serde(default)]
    pub initial_wait_ms: Option<u64>,
}

/// A token location as written by operators: exactly one of `header`, `query`, `cookie`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawTokenLocation {
    /// Header name.
    #[serde(default)]
    pub header: Option<String>,
    /// Prefix before the token in the header value (ASCII case-insensitive), e.g. `Bearer `.
    /// Default empty.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Query parameter name.
    #[serde(default)]
    pub query: Option<String>,
    /// Cookie name.
    #[serde(default)]
    pub cookie: Option<String>,
}

/// A claim-to-header mapping as written by operators.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawClaimHeader {
    /// Claim name; dots reach nested claims (`realm.team`).
    pub claim: String,
    /// Request header the value is written to.
    pub header: String,
}

/// A path matcher as written by operators: exactly one of `path_prefix`, `path_exact`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawPathMatch {
    /// Matches paths starting with this string.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Matches exactly this path.
    #[serde(default)]
    pub path_exact: Option<String>,
}

/// A rule's requirement as written by operators.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum RawRequires {
    /// A valid token of this provider is required.
    Provider(String),
    /// A valid token of any of these providers is required.
    Any(Vec<String>),
    /// A missing token passes; a present token must be valid for this provider.
    Optional(String),
}

/// A rule as written by operators.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Matches paths starting with this string.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Matches exactly this path.
    #[serde(default)]
    pub path_exact: Option<String>,
    /// What the matched request needs; unset means no token is needed.
    #[serde(default)]
    pub requires: Option<RawRequires>,
    /// Scopes the token must all carry (needs `requires`).
    #[serde(default)]
    pub required_scopes: Vec<String>,
}
