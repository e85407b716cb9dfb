//! The raw plugin configuration: the JSON document as serde reads it, each section read once
//! into its own raw type (unknown fields refused, every default explicit). Nothing here
//! validates; [`super::compile`] turns this into the runtime form and [`crate::profile`] checks
//! it against the production rules.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::correlation::DEFAULT_MAX_REQUEST_ID_LEN;
use crate::failover::RawFailoverSettings;
use crate::jwt::RawJwtSettings;
use crate::usage::ModelPrice;

/// The raw document as serde reads it.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// Correlation id settings.
    pub correlation: RawCorrelation,
    /// Request size limits.
    pub limits: RawLimits,
    /// Token-usage accounting.
    pub usage: RawUsage,
    /// How the caller is identified for budgets, logs and metrics.
    pub identity: RawIdentity,
    /// Per-user token budgets and request rates (off when absent).
    pub budgets: Option<RawBudgets>,
    /// JWT validation (off when absent).
    pub jwt: Option<RawJwtSettings>,
    /// Secret masking in logs, error bodies, prompts and responses.
    pub masking: RawMasking,
    /// Take the identity from Envoy's native `jwt_authn` filter instead of verifying tokens here.
    pub envoy_jwt: Option<RawEnvoyJwt>,
    /// Provider catalog and routes (off when absent).
    pub failover: Option<RawFailoverSettings>,
    /// Where this instance runs: the listener's filter chain or a cluster's upstream chain.
    pub stage: Stage,
    /// Upstream stage only: the `failover.name` of the listener stage (same VM) whose catalog
    /// this stage uses; needed only when several listener stages of the VM have one.
    pub failover_name: Option<String>,
    /// Add a `Server-Timing` header (tollgate's own time, the upstream's) to responses
    /// (default true).
    pub server_timing: Option<bool>,
    /// Request guardrails (off when absent; see [`crate::guardrails`]).
    pub guardrails: Option<crate::guardrails::RawGuardrails>,
    /// `development` (default) or `production` (see [`crate::profile`]).
    pub environment: Environment,
    /// The status endpoint (off when absent; see [`crate::status`]).
    pub status: Option<crate::status::RawStatus>,
    /// Virtual API keys (off when absent; see [`crate::keys`]).
    pub keys: Option<crate::keys::RawKeys>,
    /// The response cache (off when absent; see [`crate::cache`]).
    pub cache: Option<crate::cache::RawCache>,
}

/// Where tollgate runs: `development` (default) or `production` (the production profile,
/// [`crate::profile`], applies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Every valid configuration is accepted.
    #[default]
    Development,
    /// Insecure configurations are refused.
    Production,
}

impl Environment {
    /// `development` or `production`.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Production => "production",
        }
    }
}

/// Where a tollgate instance sits in Envoy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The listener's HTTP filter chain: everything but per-attempt rewriting.
    #[default]
    Downstream,
    /// An aggregate cluster's upstream filter chain: rewrites each Envoy retry attempt for the
    /// provider Envoy picked (path, key, translated body) and records its outcome.
    Upstream,
}

/// Raw `envoy_jwt`: read the payload Envoy's `jwt_authn` verified (its `payload_in_metadata`).
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawEnvoyJwt {
    /// Dynamic metadata namespace (default `envoy.filters.http.jwt_authn`).
    #[serde(default = "default_jwt_authn_namespace")]
    pub metadata_namespace: String,
    /// The `payload_in_metadata` key configured on `jwt_authn`.
    pub payload_key: String,
    /// Claims (string-valued) copied into request headers; client copies are removed first.
    #[serde(default)]
    pub claims_to_headers: Vec<RawClaimToHeader>,
    /// Refuse requests without a verified payload (default true).
    #[serde(default = "default_true")]
    pub required: bool,
}

/// One claim → header copy.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawClaimToHeader {
    /// Claim name (top level).
    pub claim: String,
    /// Header to set.
    pub header: String,
}

fn default_jwt_authn_namespace() -> String {
    "envoy.filters.http.jwt_authn".into()
}

fn default_true() -> bool {
    true
}

/// Raw `masking` section.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct RawMasking {
    /// Mask secrets in the log lines tollgate writes (default true).
    pub logs: bool,
    /// Mask secrets in non-2xx response bodies from providers (default true).
    pub error_bodies: bool,
    /// What to do with secrets in request bodies bound for providers (default `redact`).
    pub prompts: crate::masking::PromptAction,
    /// Mask secrets in successful response bodies too, streaming-safe (default false).
    pub responses: bool,
    /// Detector settings: mask template, custom patterns, allow-list, disabled detectors.
    pub detectors: crate::masking::MaskSettings,
    /// Environment variables (exposed to the VM through `vm_config.environment_variables`)
    /// holding secrets tollgate itself handles, e.g. provider API keys: their values are always
    /// masked wherever they appear, whatever their shape.
    pub known_secret_env: Vec<String>,
}

impl Default for RawMasking {
    fn default() -> Self {
        Self {
            logs: true,
            error_bodies: true,
            prompts: crate::masking::PromptAction::Redact,
            responses: false,
            detectors: crate::masking::MaskSettings::default(),
            known_secret_env: Vec::new(),
        }
    }
}

/// Raw `usage` section.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct RawUsage {
    /// Account token usage of LLM responses (default true).
    pub enabled: bool,
    /// Add `stream_options.include_usage` to OpenAI chat streams that lack it, and strip the
    /// extra usage chunk from what the client receives (default true).
    pub inject_include_usage: bool,
    /// Prices per model name (exact, else longest prefix), per million tokens.
    pub prices: BTreeMap<String, ModelPrice>,
    /// Add the user as a metric label (default false: user ids are high-cardinality).
    pub user_metric_label: bool,
    /// Distinct model names given their own metric labels; others are counted as `other`.
    pub max_models: usize,
    /// Largest non-streamed response body kept in memory for parsing (default 1 MiB).
    pub max_json_body_bytes: usize,
    /// Largest SSE event / NDJSON line parsed (default 1 MiB). A larger event passes through
    /// uncounted; in a translated stream it ends the stream with an error event
    /// (`upstream_event_too_large`) and `[DONE]`.
    pub max_event_bytes: usize,
}

impl Default for RawUsage {
    fn default() -> Self {
        Self {
            enabled: true,
            inject_include_usage: true,
            prices: BTreeMap::new(),
            user_metric_label: false,
            max_models: 100,
            max_json_body_bytes: 1024 * 1024,
            max_event_bytes: 1024 * 1024,
        }
    }
}

/// Raw `identity` section.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct RawIdentity {
    /// Headers carrying a caller's API key, tried in order after a verified JWT; the value is
    /// hashed, never stored or logged (default `["x-api-key", "authorization"]`).
    pub api_key_headers: Vec<String>,
    /// The JWT claim naming the caller (default `sub`).
    pub jwt_claim: String,
}

impl Default for RawIdentity {
    fn default() -> Self {
        Self {
            api_key_headers: vec!["x-api-key".into(), "authorization".into()],
            jwt_claim: "sub".into(),
        }
    }
}

/// Raw `budgets` section.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawBudgets {
    /// Windows applied independently, e.g. per minute and per day.
    pub windows: Vec<RawWindow>,
    /// Fractions of a token budget at which to log and count a warning once per window.
    #[serde(default = "default_warn_thresholds")]
    pub warn_thresholds: Vec<f64>,
    /// Output tokens reserved when a request names no `max_tokens` (default 1024).
    #[serde(default = "default_reserved_output")]
    pub default_max_tokens: u64,
    /// Mesh-wide budgets: admission against a global rate limit service shared by every replica.
    #[serde(default)]
    pub global: Option<crate::mesh_budget::config::RawMeshBudget>,
}

/// Raw budget window.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    /// `minute`, `hour`, `day`, or a number of seconds.
    pub period: serde_json::Value,
    /// Tokens (input + output) allowed per window.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Requests allowed per window.
    #[serde(default)]
    pub max_requests: Option<u64>,
}

fn default_warn_thresholds() -> Vec<f64> {
    vec![0.5, 0.8]
}

fn default_reserved_output() -> u64 {
    1024
}

/// Raw `limits` section.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
