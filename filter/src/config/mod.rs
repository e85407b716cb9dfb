//! Plugin configuration: the JSON document Envoy passes as `plugin_config`, in layers.
//!
//! 1. [`raw`]: serde reads the document, each section once into its raw type (unknown fields
//!    rejected, defaults explicit).
//! 2. [`crate::profile`]: with `"environment": "production"`, insecure settings of the raw
//!    document are refused, every reason at once.
//! 3. [`compile`]: [`FilterConfig::from_raw`] validates section by section and builds the
//!    runtime form this module defines.
//!
//! [`error`] holds the one error type and JSON-path helper all sections use: every error names
//! the JSON path of the offending field, e.g. `correlation.max_length: must be 1..=1024`.
//! `raw` and `error` import nothing from this module or the profile, so the layers have no cycle.

pub mod compile;
pub mod error;
pub mod raw;
pub mod value_reader;

pub use compile::{compile_windows, validate_header_name};
pub use error::{deserialize_json, deserialize_value, join_path, ConfigError};
pub use raw::*;

use crate::budget::Budgets;
use crate::correlation::DEFAULT_MAX_REQUEST_ID_LEN;
use crate::usage::{PriceTable, TrackerConfig};

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
    /// Upstream stage: the name of the listener stage's catalog it uses (see
    /// [`crate::failover::catalog`]).
    pub failover_name: Option<String>,
    /// Add the `Server-Timing` response header.
    pub server_timing: bool,
    /// Request guardrails, when configured.
    pub guardrails: Option<std::sync::Arc<crate::guardrails::Guardrails>>,
    /// Where tollgate runs.
    pub environment: Environment,
    /// The status endpoint, when configured.
    pub status: Option<crate::status::StatusConfig>,
    /// [`crate::status::config_hash`] of the plugin configuration bytes.
    pub config_hash: String,
    /// Virtual API keys, when configured.
    pub keys: Option<std::sync::Arc<crate::keys::KeySettings>>,
    /// The response cache, when configured.
    pub cache: Option<std::sync::Arc<crate::cache::CacheSettings>>,
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
    ///
    /// raw document → production profile → compiled form.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let trimmed = bytes.iter().all(|b| b.is_ascii_whitespace());
        // Layer 1: the raw document, each section read once.
        let raw: RawConfig = if trimmed {
            RawConfig::default()
        } else {
            deserialize_json(bytes, "")?
        };
        if raw.stage == Stage::Upstream {
            compile::check_upstream_form(bytes)?;
        }
        // The production profile: every refusal at once, before the first-error validation.
        let issues = crate::profile::check(&raw);
        if !issues.is_empty() {
            return Err(ConfigError::new(
                "environment",
                crate::profile::summarize(&issues),
            ));
        }
        // Layer 2: the compiled runtime form.
        let mut config = Self::from_raw(raw)?;
        config.config_hash = crate::status::config_hash(bytes);
        Ok(config)
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
            failover_name: None,
            server_timing: true,
            guardrails: None,
            environment: Environment::Development,
            status: None,
            config_hash: String::new(),
            keys: None,
            cache: None,
        })
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod value_reader_tests;
