//! The compiled layer: [`FilterConfig::from_raw`] validates the raw document section by section
//! (one function each) and builds the runtime form — header names lowercased, keys read from
//! the VM's environment, regexes and the masking engine built, routes resolved. Every error
//! names the JSON path of the offending field. It never looks at the production profile.

use std::sync::Arc;

use super::error::ConfigError;
use super::raw::{
    RawBudgets, RawConfig, RawCorrelation, RawEnvoyJwt, RawIdentity, RawMasking, RawUsage,
    RawWindow, Stage,
};
use super::{
    BudgetConfig, CorrelationConfig, EnvoyJwtConfig, FilterConfig, MaskingConfig, UsageConfig,
};
use crate::budget::{Budgets, WindowLimit};
use crate::failover::{ApiKeySource, FailoverSettings};
use crate::usage::{PriceTable, TrackerConfig};

impl FilterConfig {
    /// Validates a raw document into the runtime form, section by section.
    pub fn from_raw(raw: RawConfig) -> Result<Self, ConfigError> {
        let correlation = compile_correlation(raw.correlation)?;
        if raw.limits.max_request_bytes == 0 {
            return Err(ConfigError::new(
                "limits.max_request_bytes",
                "must be greater than 0",
            ));
        }
        let usage = compile_usage(raw.usage)?;
        let api_key_headers = compile_api_key_headers(&raw.identity)?;
        let has_prices = !usage.prices.is_empty();
        let budgets = raw
            .budgets
            .map(|b| compile_budgets(b, has_prices))
            .transpose()?;
        let jwt = match raw.jwt {
            Some(j) => Some(Arc::new(crate::jwt::compile(j, "jwt")?)),
            None => None,
        };
        let envoy_jwt = match raw.envoy_jwt {
            Some(e) => Some(compile_envoy_jwt(e, jwt.is_some())?),
            None => None,
        };
        if raw.identity.jwt_claim.is_empty() {
            return Err(ConfigError::new("identity.jwt_claim", "must not be empty"));
        }
        let failover = match raw.failover {
            Some(f) => Some(Arc::new(crate::failover::compile(f, "failover")?)),
            None => None,
        };
        if raw.stage == Stage::Downstream && raw.failover_name.is_some() {
            return Err(ConfigError::new(
                "failover_name",
                "only the upstream stage takes a catalog by name; a listener stage names its own \
                 with failover.name",
            ));
        }
        if let Some(name) = raw.failover_name.as_deref() {
            crate::failover::catalog::validate_name(name)
                .map_err(|r| ConfigError::new("failover_name", r))?;
        }
        let provider_keys = resolve_provider_keys(failover.as_deref())?;
        let masking = compile_masking(raw.masking, &provider_keys)?;
        let guardrails = match raw.guardrails.as_ref() {
            Some(g) => Some(Arc::new(crate::guardrails::compile(
                g,
                raw.limits.max_request_bytes,
                "guardrails",
            )?)),
            None => None,
        };
        let status = match raw.status.as_ref() {
            Some(s) => {
                Some(crate::status::compile(s).map_err(|r| ConfigError::new("status.path", r))?)
            }
            None => None,
        };
        let keys = match raw.keys {
            Some(k) => Some(Arc::new(crate::keys::compile(k, "keys")?)),
            None => None,
        };
        Ok(Self {
            correlation,
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
            failover_name: raw.failover_name,
            server_timing: raw.server_timing.unwrap_or(true),
            guardrails,
            environment: raw.environment,
            status,
            config_hash: crate::status::config_hash(b""),
            keys,
            cache: match raw.cache.as_ref() {
                Some(c) => Some(Arc::new(crate::cache::settings::compile(c, "cache")?)),
                None => None,
            },
        })
    }
}

/// The upstream stage's document holds `stage` and at most `failover_name`: everything else it
/// takes from the listener stage of its VM, so any other field is refused by name.
pub fn check_upstream_form(bytes: &[u8]) -> Result<(), ConfigError> {
    // A `Value`, as the usage code reads request bodies: no new deserializer in the module.
    let doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ConfigError::new(".", e.to_string()))?;
    let extra: Vec<&String> = doc
        .as_object()
        .into_iter()
        .flat_map(serde_json::Map::keys)
        .filter(|k| !matches!(k.as_str(), "stage" | "failover_name"))
        .collect();
    // The section operators most likely carry over from the full form comes first.
    let first = extra
        .iter()
        .find(|k| k.as_str() == "failover")
        .or(extra.first());
    match first {
        None => Ok(()),
        Some(k) if k.as_str() == "failover" => Err(ConfigError::new(
            "failover",
            "the upstream stage takes the provider catalog (providers, keys, models) from the \
             listener stage of its VM: remove this section and give both stages the same vm_config \
             (docs/configuration.md, \"One catalog for both stages\")",
        )),
        Some(k) => Err(ConfigError::new(
            k.as_str(),
            "the upstream stage holds only \"stage\" and \"failover_name\" and takes everything \
             else from the listener stage of its VM: remove this field",
        )),
    }
}

/// `correlation`: header names valid and distinct, `max_length` in range.
fn compile_correlation(c: RawCorrelation) -> Result<CorrelationConfig, ConfigError> {
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
    Ok(CorrelationConfig {
        request_id_header,
        aliases,
        max_length: c.max_length,
        traceparent: c.traceparent,
    })
}

/// `identity.api_key_headers`: valid header names, lowercased.
fn compile_api_key_headers(identity: &RawIdentity) -> Result<Vec<String>, ConfigError> {
    identity
        .api_key_headers
        .iter()
        .enumerate()
        .map(|(i, h)| validate_header_name(&format!("identity.api_key_headers[{i}]"), h))
        .collect()
}

/// `envoy_jwt`: exclusive with `jwt`; names non-empty; claim headers valid.
fn compile_envoy_jwt(e: RawEnvoyJwt, jwt_configured: bool) -> Result<EnvoyJwtConfig, ConfigError> {
    if jwt_configured {
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
    let mut pairs = Vec::with_capacity(e.claims_to_headers.len());
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
    Ok(EnvoyJwtConfig {
        metadata_namespace: e.metadata_namespace,
        payload_key: e.payload_key,
        claims_to_headers: pairs,
        required: e.required,
    })
}

/// `failover.providers[].api_key`: each provider's key, by index, read from the VM's
/// environment (`env`) or the document (`value`). The failover section already refused `file`.
fn resolve_provider_keys(
    failover: Option<&FailoverSettings>,
) -> Result<Vec<Option<String>>, ConfigError> {
    let Some(f) = failover else {
        return Ok(Vec::new());
    };
    let mut keys = Vec::with_capacity(f.providers.len());
    for (i, p) in f.providers.iter().enumerate() {
        keys.push(match &p.api_key {
            None => None,
            Some(ApiKeySource::Inline(v)) => Some(v.clone()),
            Some(ApiKeySource::Env(name)) => Some(non_empty_env(name).ok_or_else(|| {
                ConfigError::new(
                    format!("failover.providers[{i}].api_key.env"),
                    format!("environment variable {name:?} is not set for the VM (vm_config.environment_variables)"),
                )
            })?),
        });
    }
    Ok(keys)
}

/// `masking`: the switches, and the engine with every detector plus the known secrets (the
/// provider keys and `known_secret_env`) masked whatever their shape.
fn compile_masking(
    raw: RawMasking,
    provider_keys: &[Option<String>],
) -> Result<MaskingConfig, ConfigError> {
    let mut known: Vec<String> = provider_keys.iter().flatten().cloned().collect();
    for (i, name) in raw.known_secret_env.iter().enumerate() {
        known.push(non_empty_env(name).ok_or_else(|| {
            ConfigError::new(
                format!("masking.known_secret_env[{i}]"),
                format!("environment variable {name:?} is not set for the VM"),
            )
        })?);
    }
    let engine = crate::masking::MaskEngine::with_known_secrets(&raw.detectors, known)
        .map_err(|reason| ConfigError::new("masking.detectors", reason))?;
    Ok(MaskingConfig {
        logs: raw.logs,
        error_bodies: raw.error_bodies,
        prompts: raw.prompts,
        responses: raw.responses,
        engine: Some(Arc::new(engine)),
    })
}

/// The value of the VM environment variable `name`, when set and not empty.
fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `usage`: prices non-negative, buffer caps and the model-label count in range.
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

/// `budgets`: windows, thresholds and the mesh-wide service.
/// `has_prices`: whether `usage.prices` lists a model (cost windows need one).
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
        .transpose()?;
    let windows = compile_windows(&raw.windows, "budgets.windows")?;
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

/// Validates budget windows (the user budgets' and each virtual key's): every error names the
/// window by its JSON path under `path`, e.g. `budgets.windows[1].period`.
pub fn compile_windows(raw: &[RawWindow], path: &str) -> Result<Vec<WindowLimit>, ConfigError> {
    let mut windows = Vec::new();
    for (i, w) in raw.iter().enumerate() {
        let path = format!("{path}[{i}]");
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
    Ok(windows)
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
