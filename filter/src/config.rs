//! Plugin configuration: the JSON document Envoy passes as `plugin_config`.
//!
//! Two phases: serde reads the raw document (unknown fields rejected, defaults explicit), then
//! [`FilterConfig::from_raw`] validates every value and compiles the runtime form. Every error
//! names the JSON path of the offending field, e.g. `correlation.max_length: must be 1..=1024`.

use std::fmt;

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::budget::{Budgets, WindowLimit};
use crate::correlation::DEFAULT_MAX_REQUEST_ID_LEN;
use crate::usage::{ModelPrice, PriceTable, TrackerConfig};

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
    /// Token-usage accounting.
    pub usage: RawUsage,
    /// How the caller is identified for budgets, logs and metrics.
    pub identity: RawIdentity,
    /// Per-user token budgets and request rates (off when absent).
    pub budgets: Option<RawBudgets>,
    /// JWT validation (off when absent); see [`crate::jwt::RawJwtSettings`].
    pub jwt: Option<serde_json::Value>,
    /// Secret masking in logs, error bodies, prompts and responses.
    pub masking: RawMasking,
    /// Take the identity from Envoy's native `jwt_authn` filter instead of verifying tokens here.
    pub envoy_jwt: Option<RawEnvoyJwt>,
    /// Provider catalog and routes (see [`crate::failover::RawFailoverSettings`]).
    pub failover: Option<serde_json::Value>,
    /// Where this instance runs: the listener's filter chain or a cluster's upstream chain.
    pub stage: Stage,
    /// Add a `Server-Timing` header (tollgate's own time, the upstream's) to responses
    /// (default true).
    pub server_timing: Option<bool>,
    /// Request guardrails (off when absent; see [`crate::guardrails`]).
    pub guardrails: Option<crate::guardrails::RawGuardrails>,
    /// `development` (default) or `production` (see [`crate::profile`]).
    pub environment: crate::profile::Environment,
    /// The status endpoint (off when absent; see [`crate::status`]).
    pub status: Option<crate::status::RawStatus>,
}

/// Where a tollgate instance sits in Envoy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
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
    /// Largest SSE event / NDJSON line parsed (default 1 MiB).
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
#[derive(Debug, Clone)]
pub struct FilterConfig {
    /// Correlation id settings.
    pub correlation: CorrelationConfig,
    /// Largest request body accepted, in bytes.
    pub max_request_bytes: u64,
    /// Usage accounting settings.
    pub usage: UsageConfig,
    /// Lowercased API-key headers used as identity.
    pub api_key_headers: Vec<String>,
    /// Budgets, when configured.
    pub budgets: Option<BudgetConfig>,
    /// The JWT claim naming the caller.
    pub jwt_claim: String,
    /// JWT validation, when configured.
    pub jwt: Option<std::sync::Arc<crate::jwt::JwtSettings>>,
    /// Masking switches and the compiled settings.
    pub masking: MaskingConfig,
    /// Identity from Envoy's `jwt_authn`, when configured.
    pub envoy_jwt: Option<EnvoyJwtConfig>,
    /// Provider routing, when configured.
    pub failover: Option<std::sync::Arc<crate::failover::FailoverSettings>>,
    /// Resolved provider API keys, by provider index (`None`: the provider takes no key).
    pub provider_keys: Vec<Option<String>>,
    /// Where this instance runs.
    pub stage: Stage,
    /// Add the `Server-Timing` response header.
    pub server_timing: bool,
    /// Request guardrails, when configured.
    pub guardrails: Option<std::sync::Arc<crate::guardrails::Guardrails>>,
    /// Where tollgate runs.
    pub environment: crate::profile::Environment,
    /// The status endpoint, when configured.
    pub status: Option<crate::status::StatusConfig>,
    /// [`crate::status::config_hash`] of the plugin configuration bytes.
    pub config_hash: String,
}

impl FilterConfig {
    /// The largest request body accepted on `path`: the guardrail route's limit, else
    /// `limits.max_request_bytes`.
    pub fn max_request_bytes_for(&self, path: &str) -> u64 {
        self.guardrails
            .as_ref()
            .map_or(self.max_request_bytes, |g| {
                g.limits_for(path).max_request_bytes
            })
    }
}

/// Validated `envoy_jwt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyJwtConfig {
    /// Metadata namespace.
    pub metadata_namespace: String,
    /// Payload key.
    pub payload_key: String,
    /// (claim, lowercased header) pairs.
    pub claims_to_headers: Vec<(String, String)>,
    /// Refuse requests without a payload.
    pub required: bool,
}

/// Validated masking settings (the engine itself is built by the host with the injected keys).
#[derive(Debug, Clone)]
pub struct MaskingConfig {
    /// Mask log lines.
    pub logs: bool,
    /// Mask non-2xx provider bodies.
    pub error_bodies: bool,
    /// Prompt policy.
    pub prompts: crate::masking::PromptAction,
    /// Mask successful responses (streaming-safe).
    pub responses: bool,
    /// The engine, compiled once per VM (`None` only in the unreachable fallback default).
    pub engine: Option<std::sync::Arc<crate::masking::MaskEngine>>,
}

impl PartialEq for MaskingConfig {
    fn eq(&self, other: &Self) -> bool {
        self.logs == other.logs
            && self.error_bodies == other.error_bodies
            && self.prompts == other.prompts
            && self.responses == other.responses
    }
}

/// Validated usage settings.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageConfig {
    /// Accounting on.
    pub enabled: bool,
    /// Inject `include_usage` into OpenAI chat streams.
    pub inject_include_usage: bool,
    /// Prices.
    pub prices: PriceTable,
    /// User as a metric label.
    pub user_metric_label: bool,
    /// Distinct model labels before `other`.
    pub max_models: usize,
    /// Tracker buffer caps.
    pub tracker: TrackerConfig,
}

impl UsageConfig {
    /// Whether tollgate asks an OpenAI-kind provider for a stream's usage the client did not
    /// request (the injected chunk is dropped again before the client sees the stream).
    pub fn injects_include_usage(&self, streaming: bool, include_usage_requested: bool) -> bool {
        streaming && !include_usage_requested && self.enabled && self.inject_include_usage
    }
}

/// Validated budgets.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetConfig {
    /// The windows and thresholds.
    pub budgets: Budgets,
    /// Output tokens reserved when a request names no limit.
    pub default_max_tokens: u64,
    /// Mesh-wide budgets, when configured.
    pub global: Option<crate::mesh_budget::MeshBudget>,
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
        // Production refusals are collected all at once, before the first-error validation.
        let issues = crate::profile::check(&raw);
        if !issues.is_empty() {
            return Err(ConfigError::new(
                "environment",
                crate::profile::summarize(&issues),
            ));
        }
        let mut config = Self::from_raw(raw)?;
        config.config_hash = crate::status::config_hash(bytes);
        Ok(config)
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
        let usage = compile_usage(raw.usage)?;
        let mut api_key_headers = Vec::new();
        for (i, h) in raw.identity.api_key_headers.iter().enumerate() {
            api_key_headers.push(validate_header_name(
                &format!("identity.api_key_headers[{i}]"),
                h,
            )?);
        }
        let has_prices = !usage.prices.is_empty();
        let budgets = raw
            .budgets
            .map(|b| compile_budgets(b, has_prices))
            .transpose()?;
        let jwt = match raw.jwt {
            Some(value) => Some(std::sync::Arc::new(
                crate::jwt::from_json_value(value, "jwt")
                    .map_err(|e| ConfigError::new(e.path, e.reason))?,
            )),
            None => None,
        };
        let envoy_jwt = match raw.envoy_jwt {
            Some(e) => {
                if jwt.is_some() {
                    return Err(ConfigError::new(
                        "envoy_jwt",
                        "cannot be combined with jwt: choose tollgate's validation or Envoy's",
                    ));
                }
                if e.payload_key.is_empty() || e.metadata_namespace.is_empty() {
                    return Err(ConfigError::new(
                        "envoy_jwt.payload_key",
                        "must not be empty",
                    ));
                }
                let mut pairs = Vec::new();
                for (i, c) in e.claims_to_headers.iter().enumerate() {
                    let header = validate_header_name(
                        &format!("envoy_jwt.claims_to_headers[{i}].header"),
                        &c.header,
                    )?;
                    if c.claim.is_empty() {
                        return Err(ConfigError::new(
                            format!("envoy_jwt.claims_to_headers[{i}].claim"),
                            "must not be empty",
                        ));
                    }
                    pairs.push((c.claim.clone(), header));
                }
                Some(EnvoyJwtConfig {
                    metadata_namespace: e.metadata_namespace,
                    payload_key: e.payload_key,
                    claims_to_headers: pairs,
                    required: e.required,
                })
            }
            None => None,
        };
        if raw.identity.jwt_claim.is_empty() {
            return Err(ConfigError::new("identity.jwt_claim", "must not be empty"));
        }
        let failover = match raw.failover {
            Some(value) => {
                let bytes = serde_json::to_vec(&value)
                    .map_err(|e| ConfigError::new("failover", e.to_string()))?;
                Some(std::sync::Arc::new(
                    crate::failover::parse(&bytes, "failover")
                        .map_err(|e| ConfigError::new(e.path, e.reason))?,
                ))
            }
            None => None,
        };
        if raw.stage == Stage::Upstream && failover.is_none() {
            return Err(ConfigError::new(
                "stage",
                "\"upstream\" needs the failover section (the providers it rewrites attempts for)",
            ));
        }
        let mut provider_keys = Vec::new();
        if let Some(f) = failover.as_ref() {
            for (i, p) in f.providers.iter().enumerate() {
                let key = match &p.api_key {
                    None => None,
                    Some(crate::failover::ApiKeySource::Inline(v)) => Some(v.clone()),
                    Some(crate::failover::ApiKeySource::Env(name)) => match std::env::var(name) {
                        Ok(v) if !v.is_empty() => Some(v),
                        _ => {
                            return Err(ConfigError::new(
                                format!("failover.providers[{i}].api_key.env"),
                                format!("environment variable {name:?} is not set for the VM (vm_config.environment_variables)"),
                            ))
                        }
                    },
                    Some(crate::failover::ApiKeySource::File(path)) => {
                        match std::fs::read_to_string(path) {
                            Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
                            _ => {
                                return Err(ConfigError::new(
                                    format!("failover.providers[{i}].api_key.file"),
                                    format!("cannot read {path:?} from the VM (Envoy's V8 runtime gives wasm no file access: use env)"),
                                ))
                            }
                        }
                    }
                };
                provider_keys.push(key);
            }
        }
        let mut known: Vec<String> = provider_keys.iter().flatten().cloned().collect();
        for (i, name) in raw.masking.known_secret_env.iter().enumerate() {
            match std::env::var(name) {
                Ok(value) if !value.is_empty() => known.push(value),
                _ => {
                    return Err(ConfigError::new(
                        format!("masking.known_secret_env[{i}]"),
                        format!("environment variable {name:?} is not set for the VM"),
                    ))
                }
            }
        }
        let guardrails = match raw.guardrails.as_ref() {
            Some(g) => Some(std::sync::Arc::new(
                crate::guardrails::compile(g, raw.limits.max_request_bytes, "guardrails")
                    .map_err(|e| ConfigError::new(e.path, e.reason))?,
            )),
            None => None,
        };
        let status = match raw.status.as_ref() {
            Some(s) => {
                Some(crate::status::compile(s).map_err(|r| ConfigError::new("status.path", r))?)
            }
            None => None,
        };
        let engine = crate::masking::MaskEngine::with_known_secrets(&raw.masking.detectors, known)
            .map_err(|reason| ConfigError::new("masking.detectors", reason))?;
        let masking = MaskingConfig {
            logs: raw.masking.logs,
            error_bodies: raw.masking.error_bodies,
            prompts: raw.masking.prompts,
            responses: raw.masking.responses,
            engine: Some(std::sync::Arc::new(engine)),
        };
        Ok(Self {
            correlation: CorrelationConfig {
                request_id_header,
                aliases,
                max_length: c.max_length,
                traceparent: c.traceparent,
            },
            max_request_bytes: raw.limits.max_request_bytes,
            usage,
            api_key_headers,
            budgets,
            jwt_claim: raw.identity.jwt_claim,
            jwt,
            masking,
            envoy_jwt,
            failover,
            provider_keys,
            stage: raw.stage,
            server_timing: raw.server_timing.unwrap_or(true),
            guardrails,
            environment: raw.environment,
            status,
            config_hash: crate::status::config_hash(b""),
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
            usage: UsageConfig {
                enabled: true,
                inject_include_usage: true,
                prices: PriceTable::new(),
                user_metric_label: false,
                max_models: 100,
                tracker: TrackerConfig::default(),
            },
            api_key_headers: Vec::new(),
            budgets: None,
            jwt_claim: "sub".into(),
            jwt: None,
            masking: MaskingConfig {
                logs: true,
                error_bodies: true,
                prompts: crate::masking::PromptAction::Off,
                responses: false,
                engine: None,
            },
            envoy_jwt: None,
            failover: None,
            provider_keys: Vec::new(),
            stage: Stage::Downstream,
            server_timing: true,
            guardrails: None,
            environment: crate::profile::Environment::Development,
            status: None,
            config_hash: String::new(),
        })
    }
}

fn compile_usage(raw: RawUsage) -> Result<UsageConfig, ConfigError> {
    let mut prices = PriceTable::new();
    for (model, price) in raw.prices {
        let fields = [
            ("input_per_million", Some(price.input_per_million)),
            ("output_per_million", Some(price.output_per_million)),
            ("cached_input_per_million", price.cached_input_per_million),
            ("cache_write_per_million", price.cache_write_per_million),
        ];
        for (name, value) in fields {
            if value.is_some_and(|v| !v.is_finite() || v < 0.0) {
                return Err(ConfigError::new(
                    format!("usage.prices.{model}.{name}"),
                    "must be a non-negative number",
                ));
            }
        }
        if model.is_empty() {
            return Err(ConfigError::new(
                "usage.prices",
                "model name must not be empty",
            ));
        }
        prices.insert(model, price);
    }
    for (name, value) in [
        ("usage.max_json_body_bytes", raw.max_json_body_bytes),
        ("usage.max_event_bytes", raw.max_event_bytes),
    ] {
        if !(1024..=64 * 1024 * 1024).contains(&value) {
            return Err(ConfigError::new(name, "must be between 1024 and 67108864"));
        }
    }
    if raw.max_models == 0 || raw.max_models > 10_000 {
        return Err(ConfigError::new(
            "usage.max_models",
            "must be between 1 and 10000",
        ));
    }
    Ok(UsageConfig {
        enabled: raw.enabled,
        inject_include_usage: raw.inject_include_usage,
        prices,
        user_metric_label: raw.user_metric_label,
        max_models: raw.max_models,
        tracker: TrackerConfig {
            max_event_bytes: raw.max_event_bytes,
            max_json_body_bytes: raw.max_json_body_bytes,
        },
    })
}

fn compile_budgets(raw: RawBudgets, has_prices: bool) -> Result<BudgetConfig, ConfigError> {
    if raw.windows.is_empty() && raw.global.is_none() {
        return Err(ConfigError::new(
            "budgets.windows",
            "must not be empty (unless budgets.global is set)",
        ));
    }
    let global = raw
        .global
        .map(|g| crate::mesh_budget::config::compile(g, has_prices))
        .transpose()
        .map_err(|e| ConfigError::new(e.path, e.reason))?;
    let mut windows = Vec::new();
    for (i, w) in raw.windows.iter().enumerate() {
        let path = format!("budgets.windows[{i}]");
        let period = match &w.period {
            serde_json::Value::String(s) => match s.as_str() {
                "second" => 1,
                "minute" => 60,
                "hour" => 3600,
                "day" => 86400,
                other => {
                    return Err(ConfigError::new(
                        format!("{path}.period"),
                        format!("expected second, minute, hour, day or seconds, got {other:?}"),
                    ))
                }
            },
            serde_json::Value::Number(n) => n.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                ConfigError::new(format!("{path}.period"), "must be a positive integer")
            })?,
            _ => {
                return Err(ConfigError::new(
                    format!("{path}.period"),
                    "expected a string or a number of seconds",
                ))
            }
        };
        if w.max_tokens.is_none() && w.max_requests.is_none() {
            return Err(ConfigError::new(
                path,
                "set max_tokens, max_requests or both",
            ));
        }
        if windows
            .iter()
            .any(|x: &WindowLimit| x.period_seconds == period)
        {
            return Err(ConfigError::new(
                format!("{path}.period"),
                "duplicate period",
            ));
        }
        windows.push(WindowLimit {
            period_seconds: period,
            max_tokens: w.max_tokens,
            max_requests: w.max_requests,
        });
    }
    let mut thresholds = raw.warn_thresholds.clone();
    for (i, t) in thresholds.iter().enumerate() {
        if !(t.is_finite() && *t > 0.0 && *t <= 1.0) {
            return Err(ConfigError::new(
                format!("budgets.warn_thresholds[{i}]"),
                "must be in (0, 1]",
            ));
        }
    }
    if thresholds.len() > 16 {
        return Err(ConfigError::new(
            "budgets.warn_thresholds",
            "at most 16 thresholds",
        ));
    }
    thresholds.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    Ok(BudgetConfig {
        budgets: Budgets {
            windows,
            warn_thresholds: thresholds,
            key_prefix: "tollgate:budget:".into(),
        },
        default_max_tokens: raw.default_max_tokens,
        global,
    })
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
        assert_eq!(a.correlation, b.correlation);
        assert_eq!(a.max_request_bytes, b.max_request_bytes);
        assert_eq!(a.correlation.request_id_header, "x-request-id");
        assert_eq!(a.correlation.aliases, vec!["x-correlation-id"]);
    }

    #[test]
    fn upstream_stage_needs_providers_and_routes_may_name_an_aggregate_cluster() {
        let e = FilterConfig::parse(br#"{"stage":"upstream"}"#).unwrap_err();
        assert_eq!(e.path, "stage");
        let e = FilterConfig::parse(br#"{"stage":"sideways"}"#).unwrap_err();
        assert_eq!(e.path, "stage");
        let doc = br#"{"stage":"upstream","failover":{"providers":[{"name":"a","kind":"openai","cluster":"a"},{"name":"b","kind":"anthropic","cluster":"b"}],"routes":[{"model":"m*","providers":["a","b"],"cluster":"llm"}]}}"#;
        let c = FilterConfig::parse(doc).unwrap();
        assert_eq!(c.stage, Stage::Upstream);
        let f = c.failover.unwrap();
        assert_eq!(f.envoy_cluster_for("m1"), Some("llm"));
        assert_eq!(f.envoy_cluster_for("x"), None);
        let e = FilterConfig::parse(br#"{"failover":{"providers":[{"name":"a","kind":"openai","cluster":"a"}],"routes":[{"model":"m","providers":["a"],"cluster":""}]}}"#).unwrap_err();
        assert_eq!(e.path, "failover.routes[0].cluster");
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
    fn budgets_and_prices_are_validated_with_paths() {
        let e =
            FilterConfig::parse(br#"{"budgets":{"windows":[{"period":"week","max_tokens":1}]}}"#)
                .unwrap_err();
        assert_eq!(e.path, "budgets.windows[0].period");
        let e = FilterConfig::parse(br#"{"budgets":{"windows":[{"period":60}]}}"#).unwrap_err();
        assert_eq!(e.path, "budgets.windows[0]");
        let e = FilterConfig::parse(
            br#"{"usage":{"prices":{"gpt-4o":{"input_per_million":-1,"output_per_million":1}}}}"#,
        )
        .unwrap_err();
        assert_eq!(e.path, "usage.prices.gpt-4o.input_per_million");
        let ok = FilterConfig::parse(
            br#"{"budgets":{"windows":[{"period":"minute","max_tokens":1000},{"period":"day","max_requests":5}]}}"#,
        )
        .unwrap();
        assert_eq!(ok.budgets.unwrap().budgets.windows.len(), 2);
    }

    #[test]
    fn malformed_json_is_refused() {
        assert!(FilterConfig::parse(b"{not json").is_err());
    }
}
