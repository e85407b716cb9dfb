//! The `failover` configuration section as operators write it: the provider catalog, model
//! routes, deadlines and back-off as serde reads them ([`RawFailoverSettings`], unknown fields
//! rejected, defaults explicit). [`super::settings`] validates it into the runtime form.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// Default per-attempt timeout.
pub const DEFAULT_PROVIDER_TIMEOUT_MS: u64 = 60_000;
/// Default retries on the same provider after its first attempt.
pub const DEFAULT_MAX_RETRIES: u32 = 0;
/// Default consecutive failures that open a provider's circuit.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
/// Default time an open circuit waits before a probe.
pub const DEFAULT_COOLDOWN_MS: u64 = 30_000;
/// Default deadline for all attempts of one request together.
pub const DEFAULT_TOTAL_DEADLINE_MS: u64 = 120_000;
/// Default first retry delay: none. A proxy-wasm request cannot wait (no per-request timer), so
/// tollgate sends a retry at once; any other value is refused at load.
pub const DEFAULT_BACKOFF_BASE_MS: u64 = 0;
/// Default longest retry delay.
pub const DEFAULT_BACKOFF_MAX_MS: u64 = 5_000;
/// Default jitter fraction applied to retry delays.
pub const DEFAULT_BACKOFF_JITTER: f64 = 0.2;
/// Default prefix of the shared-data keys holding circuit and back-off records.
pub const DEFAULT_SHARED_KEY_PREFIX: &str = "tollgate.failover.";

/// The wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// OpenAI's API.
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
    /// Google's Gemini API.
    Gemini,
    /// A server speaking OpenAI's API (Ollama, vLLM, …).
    OpenaiCompatible,
}

impl ProviderKind {
    /// The API base path used when the provider sets none.
    pub fn default_base_path(self) -> &'static str {
        match self {
            Self::Openai | Self::Anthropic | Self::OpenaiCompatible => "/v1",
            Self::Gemini => "/v1beta",
        }
    }

    /// The configuration spelling of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::OpenaiCompatible => "openai-compatible",
        }
    }
}

/// Raw `failover` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct RawFailoverSettings {
    /// Names this catalog for the upstream stages of the VM (their `failover_name`); needed
    /// only when several listener stages with a failover section share one VM.
    pub name: Option<String>,
    /// The provider catalog.
    pub providers: Vec<RawProvider>,
    /// Client model (or `prefix*`) → ordered provider names.
    pub routes: Vec<RawRoute>,
    /// Providers for models no route matches; such models are refused when absent.
    pub default_route: Option<Vec<String>>,
    /// Deadline for all attempts of one request together.
    pub total_deadline_ms: u64,
    /// Delays between retries on the same provider.
    pub backoff: RawBackoff,
    /// Prefix of the shared-data keys holding circuit and back-off records.
    pub shared_key_prefix: String,
}

impl Default for RawFailoverSettings {
    fn default() -> Self {
        Self {
            name: None,
            providers: Vec::new(),
            routes: Vec::new(),
            default_route: None,
            total_deadline_ms: DEFAULT_TOTAL_DEADLINE_MS,
            backoff: RawBackoff::default(),
            shared_key_prefix: DEFAULT_SHARED_KEY_PREFIX.to_string(),
        }
    }
}

/// Raw provider entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// Unique name used by routes, metrics and shared-data keys.
    pub name: String,
    /// The protocol it speaks.
    pub kind: ProviderKind,
    /// The Envoy cluster requests are dispatched to.
    pub cluster: String,
    /// API base path; per-kind default when absent.
    #[serde(default)]
    pub base_path: Option<String>,
    /// The `:authority` to send; the cluster's default when absent.
    #[serde(default)]
    pub host: Option<String>,
    /// Client model → provider model; keys may end in `*` to match a prefix.
    #[serde(default)]
    pub models: BTreeMap<String, String>,
    /// Where the provider's API key comes from; none for keyless servers.
    #[serde(default)]
    pub api_key: Option<RawApiKey>,
    /// Per-attempt timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Retries on this provider after its first attempt, before failing over.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Circuit breaker thresholds.
    #[serde(default)]
    pub circuit: RawCircuit,
}

fn default_timeout_ms() -> u64 {
    DEFAULT_PROVIDER_TIMEOUT_MS
}

fn default_max_retries() -> u32 {
    DEFAULT_MAX_RETRIES
}

/// Raw API key source: exactly one of `{"env": NAME}` or `{"value": "..."}`. `{"file": PATH}`
/// is read only to be refused by name: Envoy's V8 runtime gives wasm no file access.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum RawApiKey {
    /// An environment variable of the Envoy process.
    Env(String),
    /// A file: refused at load (`api_key.file`), since the VM cannot read files.
    File(String),
    /// The key inline in the configuration (discouraged; production profiles may refuse it).
    Value(String),
}

impl fmt::Debug for RawApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => f.debug_tuple("Env").field(name).finish(),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::Value(_) => f.write_str("Value(<redacted>)"),
        }
    }
}

/// Raw circuit breaker thresholds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct RawCircuit {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open before a probe.
    pub cooldown_ms: u64,
}

impl Default for RawCircuit {
    fn default() -> Self {
        Self {
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            cooldown_ms: DEFAULT_COOLDOWN_MS,
        }
    }
}

/// Raw route entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// An exact client model, or a prefix ending in `*` (`gpt-*`).
    pub model: String,
    /// Provider names in the order they are tried.
    pub providers: Vec<String>,
    /// An Envoy aggregate cluster whose member clusters are these providers in this order: Envoy's
    /// retries walk it and tollgate's upstream stage rewrites each attempt for its provider
    /// (streams fail over before their first byte). Absent: tollgate routes and fails over itself.
    #[serde(default)]
    pub cluster: Option<String>,
}

/// Raw retry delay settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct RawBackoff {
    /// Delay before the first retry.
    pub base_ms: u64,
    /// Longest delay.
    pub max_ms: u64,
    /// Random spread as a fraction of the delay (0.2 = ±20 %).
    pub jitter: f64,
}

impl Default for RawBackoff {
    fn default() -> Self {
        Self {
            base_ms: DEFAULT_BACKOFF_BASE_MS,
            max_ms: DEFAULT_BACKOFF_MAX_MS,
            jitter: DEFAULT_BACKOFF_JITTER,
        }
    }
}
