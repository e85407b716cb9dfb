//! Failover settings validated: [`compile`] turns the raw section ([`super::raw`]) into the
//! runtime form ([`FailoverSettings`]): the provider catalog, model routes, deadlines and
//! back-off. Every error names the JSON path of the offending field, e.g.
//! `failover.providers[1].cluster: must not be empty`.

use std::collections::BTreeMap;
use std::fmt;

use super::raw::{ProviderKind, RawApiKey, RawBackoff, RawFailoverSettings, RawProvider};
use crate::config::{join_path, ConfigError};

/// Longest accepted timeout or deadline (one hour).
const MAX_TIMEOUT_MS: u64 = 3_600_000;
/// Most retries accepted on one provider.
const MAX_RETRIES_LIMIT: u32 = 10;
/// Highest accepted circuit failure threshold.
const MAX_FAILURE_THRESHOLD: u32 = 10_000;
/// Longest accepted circuit cooldown (one day).
const MAX_COOLDOWN_MS: u64 = 86_400_000;
/// Longest accepted retry delay (ten minutes).
const MAX_BACKOFF_DELAY_MS: u64 = 600_000;
/// Longest provider name (names appear in shared-data keys and stat names).
const MAX_PROVIDER_NAME_LEN: usize = 64;
/// Longest shared-data key prefix.
const MAX_KEY_PREFIX_LEN: usize = 128;

/// A client model pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelPattern {
    /// Matches this model only.
    Exact(String),
    /// Matches every model starting with this text (written `text*`).
    Prefix(String),
}

impl ModelPattern {
    /// Parses `name` or `prefix*`; `*` anywhere but at the end is refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("must not be empty".to_string());
        }
        if text.chars().any(char::is_control) {
            return Err("must not contain control characters".to_string());
        }
        let (body, is_prefix) = match text.strip_suffix('*') {
            Some(body) => (body, true),
            None => (text, false),
        };
        if body.contains('*') {
            return Err(format!(
                "{text:?}: `*` is only allowed once, at the end (prefix match)"
            ));
        }
        Ok(if is_prefix {
            Self::Prefix(body.to_string())
        } else {
            Self::Exact(body.to_string())
        })
    }

    /// Whether `model` matches.
    pub fn matches(&self, model: &str) -> bool {
        match self {
            Self::Exact(m) => m == model,
            Self::Prefix(p) => model.starts_with(p.as_str()),
        }
    }
}

impl fmt::Display for ModelPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(m) => f.write_str(m),
            Self::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

/// Client model → provider model mapping of one provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelMap {
    exact: BTreeMap<String, String>,
    /// (prefix, target) sorted longest prefix first.
    prefixes: Vec<(String, String)>,
}

impl ModelMap {
    /// The model name to send to the provider: an exact entry, else the longest matching
    /// prefix entry (a target ending in `*` keeps the matched suffix: `gpt-*` → `openai/gpt-*`),
    /// else the client model unchanged.
    pub fn provider_model(&self, client_model: &str) -> String {
        if let Some(target) = self.exact.get(client_model) {
            return target.clone();
        }
        for (prefix, target) in &self.prefixes {
            if let Some(rest) = client_model.strip_prefix(prefix.as_str()) {
                return match target.strip_suffix('*') {
                    Some(head) => format!("{head}{rest}"),
                    None => target.clone(),
                };
            }
        }
        client_model.to_string()
    }

    /// Whether the map has no entries (every model passes through unchanged).
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }
}

/// A validated API key source.
#[derive(Clone, PartialEq, Eq)]
pub enum ApiKeySource {
    /// Environment variable name.
    Env(String),
    /// The key itself, inline in the configuration (never printed by `Debug`).
    Inline(String),
}

impl ApiKeySource {
    /// Whether the key sits inline in the configuration.
    pub fn is_inline(&self) -> bool {
        matches!(self, Self::Inline(_))
    }
}

impl fmt::Debug for ApiKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => f.debug_tuple("Env").field(name).finish(),
            Self::Inline(_) => f.write_str("Inline(<redacted>)"),
        }
    }
}

/// Validated circuit breaker thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitSettings {
    /// Consecutive failures that open the circuit (≥ 1).
    pub failure_threshold: u32,
    /// How long the circuit stays open before a probe (ms, ≥ 1).
    pub cooldown_ms: u64,
}

/// Validated retry delay settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffSettings {
    /// Delay before the first retry.
    pub base_ms: u64,
    /// Longest delay (≥ `base_ms`).
    pub max_ms: u64,
    /// Random spread as a fraction of the delay, in `0.0..=1.0`.
    pub jitter: f64,
}

/// One validated provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSettings {
    /// Unique name (`[A-Za-z0-9_.-]`, at most 64 characters).
    pub name: String,
    /// The protocol it speaks.
    pub kind: ProviderKind,
    /// The Envoy cluster requests are dispatched to.
    pub cluster: String,
    /// API base path without a trailing slash (`/v1`; empty for the root).
    pub base_path: String,
    /// The `:authority` to send, if configured.
    pub host: Option<String>,
    /// Client model → provider model mapping.
    pub models: ModelMap,
    /// Where the API key comes from, if any.
    pub api_key: Option<ApiKeySource>,
    /// Per-attempt timeout (ms).
    pub timeout_ms: u64,
    /// Retries on this provider after its first attempt.
    pub max_retries: u32,
    /// Circuit breaker thresholds.
    pub circuit: CircuitSettings,
    /// Shared-data key of this provider's circuit record.
    pub circuit_key: String,
    /// Shared-data key of this provider's back-off window record.
    pub backoff_key: String,
}

/// One validated route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Which client models it serves.
    pub pattern: ModelPattern,
    /// Indexes into [`FailoverSettings::providers`], in try order.
    pub providers: Vec<usize>,
    /// The aggregate cluster Envoy walks per attempt (see [`RawRoute::cluster`](super::raw::RawRoute::cluster)).
    pub cluster: Option<String>,
}

/// The validated failover settings.
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverSettings {
    /// The catalog's name for the upstream stages of the VM (see [`super::catalog`]).
    pub name: Option<String>,
    /// The provider catalog, in configuration order.
    pub providers: Vec<ProviderSettings>,
    /// Routes in configuration order (lookup prefers exact, then longest prefix).
    pub routes: Vec<Route>,
    /// Provider indexes for unrouted models; `None` refuses them.
    pub default_route: Option<Vec<usize>>,
    /// Deadline for all attempts of one request together (ms).
    pub total_deadline_ms: u64,
    /// Delays between retries on the same provider.
    pub backoff: BackoffSettings,
    /// JSON paths of inline API keys, so a production profile can refuse them.
    pub inline_api_key_paths: Vec<String>,
    /// Prefix of the shared-data keys.
    pub shared_key_prefix: String,
}

impl FailoverSettings {
    /// The provider list for `client_model`: an exact route, else the longest matching prefix
    /// route, else the default route; `None` when nothing serves the model.
    pub fn route_for(&self, client_model: &str) -> Option<&[usize]> {
        match self.matching_route(client_model) {
            Some(route) => Some(&route.providers),
            None => self.default_route.as_deref(),
        }
    }

    /// The aggregate cluster serving `client_model` per attempt, when its route names one.
    pub fn envoy_cluster_for(&self, client_model: &str) -> Option<&str> {
        self.matching_route(client_model)?.cluster.as_deref()
    }

    /// The provider index called `name`.
    pub fn provider_index(&self, name: &str) -> Option<usize> {
        self.providers.iter().position(|p| p.name == name)
    }

    /// The route for `client_model`: exact first, else the longest matching prefix.
    fn matching_route(&self, client_model: &str) -> Option<&Route> {
        let exact = self
            .routes
            .iter()
            .find(|r| matches!(&r.pattern, ModelPattern::Exact(m) if m.as_str() == client_model));
        if let Some(route) = exact {
            return Some(route);
        }
        let prefix = self
            .routes
            .iter()
            .filter_map(|r| match &r.pattern {
                ModelPattern::Prefix(p) if client_model.starts_with(p.as_str()) => {
                    Some((p.len(), r))
                }
                _ => None,
            })
            .max_by_key(|(len, _)| *len);
        prefix.map(|(_, route)| route)
    }

    /// The provider called `name`.
    pub fn provider(&self, name: &str) -> Option<&ProviderSettings> {
        self.providers.iter().find(|p| p.name == name)
    }
}

/// Parses and validates a JSON `failover` section on its own; error paths start with
/// `path_prefix`. (The plugin configuration reads the section once with the rest of the
/// document and calls [`compile`].)
pub fn parse(bytes: &[u8], path_prefix: &str) -> Result<FailoverSettings, ConfigError> {
    let raw: RawFailoverSettings = crate::config::deserialize_json(bytes, path_prefix)?;
    compile(raw, path_prefix)
}

/// Validates raw settings into the runtime form; error paths start with `path_prefix`
/// (`"failover"` gives `failover.providers[1].cluster`; `""` gives `providers[1].cluster`).
pub fn compile(
    raw: RawFailoverSettings,
    path_prefix: &str,
) -> Result<FailoverSettings, ConfigError> {
    compile_relative(raw, path_prefix).map_err(|e| e.under(path_prefix))
}

fn compile_relative(
    raw: RawFailoverSettings,
    path_prefix: &str,
) -> Result<FailoverSettings, ConfigError> {
    let key_prefix = validate_key_prefix(&raw.shared_key_prefix)
        .map_err(|r| ConfigError::new("shared_key_prefix", r))?;
    if let Some(name) = raw.name.as_deref() {
        super::catalog::validate_name(name).map_err(|r| ConfigError::new("name", r))?;
    }
    let mut providers: Vec<ProviderSettings> = Vec::with_capacity(raw.providers.len());
    let mut inline_api_key_paths = Vec::new();
    for (i, p) in raw.providers.into_iter().enumerate() {
        let base = format!("providers[{i}]");
        if providers.iter().any(|q| q.name == p.name) {
            return Err(ConfigError::new(
                format!("{base}.name"),
                format!("duplicate provider name {:?}", p.name),
            ));
        }
        let provider = compile_provider(p, &base, &key_prefix)?;
        if provider
            .api_key
            .as_ref()
            .is_some_and(ApiKeySource::is_inline)
        {
            inline_api_key_paths.push(join_path(path_prefix, &format!("{base}.api_key.value")));
        }
        providers.push(provider);
    }

    let mut routes: Vec<Route> = Vec::with_capacity(raw.routes.len());
    for (i, r) in raw.routes.iter().enumerate() {
        let base = format!("routes[{i}]");
        let pattern = ModelPattern::parse(&r.model)
            .map_err(|reason| ConfigError::new(format!("{base}.model"), reason))?;
        if routes.iter().any(|existing| existing.pattern == pattern) {
            return Err(ConfigError::new(
                format!("{base}.model"),
                format!("duplicate route for {:?}", r.model),
            ));
        }
        let list = resolve_providers(&providers, &r.providers, &format!("{base}.providers"))?;
        if r.cluster.as_deref().is_some_and(str::is_empty) {
            return Err(ConfigError::new(
                format!("{base}.cluster"),
                "must not be empty",
            ));
        }
        routes.push(Route {
            pattern,
            providers: list,
            cluster: r.cluster.clone(),
        });
    }

    let default_route = match &raw.default_route {
        Some(names) => Some(resolve_providers(&providers, names, "default_route")?),
        None => None,
    };

    if !(1..=MAX_TIMEOUT_MS).contains(&raw.total_deadline_ms) {
        return Err(ConfigError::new(
            "total_deadline_ms",
            format!(
                "must be between 1 and {MAX_TIMEOUT_MS}, got {}",
                raw.total_deadline_ms
            ),
        ));
    }
    let backoff = compile_backoff(&raw.backoff)?;

    Ok(FailoverSettings {
        name: raw.name,
        providers,
        routes,
        default_route,
        total_deadline_ms: raw.total_deadline_ms,
        backoff,
        inline_api_key_paths,
        shared_key_prefix: key_prefix,
    })
}

fn compile_backoff(raw: &RawBackoff) -> Result<BackoffSettings, ConfigError> {
    if raw.max_ms > MAX_BACKOFF_DELAY_MS {
        return Err(ConfigError::new(
            "backoff.max_ms",
            format!("must be at most {MAX_BACKOFF_DELAY_MS}, got {}", raw.max_ms),
        ));
    }
    if raw.base_ms > raw.max_ms {
        return Err(ConfigError::new(
            "backoff.max_ms",
            format!(
                "must be at least base_ms ({}), got {}",
                raw.base_ms, raw.max_ms
            ),
        ));
    }
    if !(raw.jitter.is_finite() && (0.0..=1.0).contains(&raw.jitter)) {
        return Err(ConfigError::new(
            "backoff.jitter",
            format!("must be between 0.0 and 1.0, got {}", raw.jitter),
        ));
    }
    if raw.base_ms != 0 {
        return Err(ConfigError::new(
            "backoff.base_ms",
            format!(
                "must be 0, got {}: tollgate retries a provider at once (a request cannot wait \
                 inside the filter); for walked routes Envoy's retry_back_off sets the delay",
                raw.base_ms
            ),
        ));
    }
    Ok(BackoffSettings {
        base_ms: raw.base_ms,
        max_ms: raw.max_ms,
        jitter: raw.jitter,
    })
}

fn validate_key_prefix(prefix: &str) -> Result<String, String> {
    if prefix.is_empty() {
        return Err("must not be empty".to_string());
    }
    if prefix.len() > MAX_KEY_PREFIX_LEN {
        return Err(format!("must be at most {MAX_KEY_PREFIX_LEN} bytes"));
    }
    if !prefix.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".to_string());
    }
    Ok(prefix.to_string())
}

fn resolve_providers(
    providers: &[ProviderSettings],
    names: &[String],
    path: &str,
) -> Result<Vec<usize>, ConfigError> {
    if names.is_empty() {
        return Err(ConfigError::new(path, "must name at least one provider"));
    }
    let mut out: Vec<usize> = Vec::with_capacity(names.len());
    for (j, name) in names.iter().enumerate() {
        let here = format!("{path}[{j}]");
        let index = providers
            .iter()
            .position(|p| &p.name == name)
            .ok_or_else(|| ConfigError::new(&here, format!("unknown provider {name:?}")))?;
        if out.contains(&index) {
            return Err(ConfigError::new(
                here,
                format!("provider {name:?} is listed twice"),
            ));
        }
        out.push(index);
    }
    Ok(out)
}

fn compile_provider(
    p: RawProvider,
    base: &str,
    key_prefix: &str,
) -> Result<ProviderSettings, ConfigError> {
    let at = |field: &str, reason: String| ConfigError::new(format!("{base}.{field}"), reason);

    validate_provider_name(&p.name).map_err(|r| at("name", r))?;
    if p.cluster.is_empty() {
        return Err(at("cluster", "must not be empty".to_string()));
    }
    if !p.cluster.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(at(
            "cluster",
            "must be printable ASCII without spaces".to_string(),
        ));
    }
    let base_path = match &p.base_path {
        Some(path) => validate_base_path(path).map_err(|r| at("base_path", r))?,
        None => p.kind.default_base_path().to_string(),
    };
    let host = match &p.host {
        Some(h) => Some(validate_host(h).map_err(|r| at("host", r))?),
        None => None,
    };
    let models = compile_models(&p.models, &format!("{base}.models"))?;
    let api_key = match &p.api_key {
        None => None,
        Some(RawApiKey::Env(name)) => {
            validate_env_name(name).map_err(|r| at("api_key.env", r))?;
            Some(ApiKeySource::Env(name.clone()))
        }
        Some(RawApiKey::File(_)) => {
            return Err(at(
                "api_key.file",
                "is not supported: Envoy's V8 runtime gives wasm no file access; give the key as {\"env\": NAME} (vm_config.environment_variables)".to_string(),
            ));
        }
        Some(RawApiKey::Value(value)) => {
            let usable = !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic());
            if !usable {
                return Err(at(
                    "api_key.value",
                    "must be a non-empty printable ASCII value without spaces".to_string(),
                ));
            }
            Some(ApiKeySource::Inline(value.clone()))
        }
    };
    if !(1..=MAX_TIMEOUT_MS).contains(&p.timeout_ms) {
        return Err(at(
            "timeout_ms",
            format!(
                "must be between 1 and {MAX_TIMEOUT_MS}, got {}",
                p.timeout_ms
            ),
        ));
    }
    if p.max_retries > MAX_RETRIES_LIMIT {
        return Err(at(
            "max_retries",
            format!("must be at most {MAX_RETRIES_LIMIT}, got {}", p.max_retries),
        ));
    }
    if !(1..=MAX_FAILURE_THRESHOLD).contains(&p.circuit.failure_threshold) {
        return Err(at(
            "circuit.failure_threshold",
            format!(
                "must be between 1 and {MAX_FAILURE_THRESHOLD}, got {}",
                p.circuit.failure_threshold
            ),
        ));
    }
    if !(1..=MAX_COOLDOWN_MS).contains(&p.circuit.cooldown_ms) {
        return Err(at(
            "circuit.cooldown_ms",
            format!(
                "must be between 1 and {MAX_COOLDOWN_MS}, got {}",
                p.circuit.cooldown_ms
            ),
        ));
    }
    Ok(ProviderSettings {
        circuit_key: format!("{key_prefix}circuit.{}", p.name),
        backoff_key: format!("{key_prefix}backoff.{}", p.name),
        name: p.name,
        kind: p.kind,
        cluster: p.cluster,
        base_path,
        host,
        models,
        api_key,
        timeout_ms: p.timeout_ms,
        max_retries: p.max_retries,
        circuit: CircuitSettings {
            failure_threshold: p.circuit.failure_threshold,
            cooldown_ms: p.circuit.cooldown_ms,
        },
    })
}

fn validate_provider_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_string());
    }
    if name.len() > MAX_PROVIDER_NAME_LEN {
        return Err(format!(
            "must be at most {MAX_PROVIDER_NAME_LEN} characters"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(format!(
            "{name:?}: only letters, digits, `_`, `-` and `.` are allowed"
        ));
    }
    Ok(())
}

fn validate_base_path(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?}: must start with `/`"));
    }
    if !path.bytes().all(|b| b.is_ascii_graphic()) || path.contains(['?', '#']) {
        return Err(format!(
            "{path:?}: must be a plain path (printable ASCII, no spaces, query or fragment)"
        ));
    }
    Ok(path.trim_end_matches('/').to_string())
}

fn validate_host(host: &str) -> Result<String, String> {
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b'?' | b'#' | b'@'));
    if valid {
        Ok(host.to_string())
    } else {
        Err(format!(
            "{host:?}: must be an authority (`host` or `host:port`)"
        ))
    }
}

fn validate_env_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err(format!(
            "{name:?}: must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
        ))
    }
}

fn compile_models(models: &BTreeMap<String, String>, path: &str) -> Result<ModelMap, ConfigError> {
    let mut map = ModelMap::default();
    for (client, target) in models {
        let here = format!("{path}.{client}");
        let pattern = ModelPattern::parse(client).map_err(|r| ConfigError::new(&here, r))?;
        if target.is_empty() || target.chars().any(char::is_control) {
            return Err(ConfigError::new(
                &here,
                "target model must be non-empty without control characters",
            ));
        }
        let target_wildcards = target.matches('*').count();
        let target_ok = match pattern {
            ModelPattern::Exact(_) => target_wildcards == 0,
            ModelPattern::Prefix(_) => {
                target_wildcards == 0 || (target_wildcards == 1 && target.ends_with('*'))
            }
        };
        if !target_ok {
            return Err(ConfigError::new(
                &here,
                format!(
                    "target {target:?}: `*` is only allowed at the end, and only for a prefix key"
                ),
            ));
        }
        match pattern {
            ModelPattern::Exact(m) => {
                map.exact.insert(m, target.clone());
            }
            // Longest prefix first, ties in byte order: a total order over distinct prefixes,
            // kept by inserting in place (no sort instantiated for a handful of entries).
            ModelPattern::Prefix(p) => {
                let at = map.prefixes.partition_point(|(q, _)| {
                    q.len() > p.len() || (q.len() == p.len() && q.as_str() < p.as_str())
                });
                map.prefixes.insert(at, (p, target.clone()));
            }
        }
    }
    Ok(map)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
#[path = "settings_tests.rs"]
pub(crate) mod tests;
