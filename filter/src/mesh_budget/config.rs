//! `budgets.global`: the raw section and its validation into [`MeshBudget`]. Every refusal names
//! the field by its JSON path; `docs/budgets.md` documents each field.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{FailureMode, Measure, MeshBudget, MeshWindow, Scope};
use crate::config::ConfigError;
use crate::ratelimit_rpc::RlsUnit;

/// Raw `budgets.global`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawMeshBudget {
    /// The Envoy cluster (HTTP/2) of the rate limit service.
    pub cluster: String,
    /// The rate limit domain (default `tollgate`).
    #[serde(default = "default_domain")]
    pub domain: String,
    /// The descriptor key carrying the caller (default `user`).
    #[serde(default = "default_descriptor_key")]
    pub descriptor_key: String,
    /// How long admission waits for the service, in ms (default 250).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// `open` (admit) or `closed` (refuse with 503) when the service fails or is slow.
    #[serde(default = "default_failure_mode")]
    pub failure_mode: String,
    /// The JWT claim naming a caller's class (absent: classes come only from API keys' teams).
    #[serde(default)]
    pub class_claim: Option<String>,
    /// Windows for callers whose class is not in `classes`.
    #[serde(default)]
    pub windows: Vec<RawMeshWindow>,
    /// Windows per class, replacing `windows` for callers of that class.
    #[serde(default)]
    pub classes: BTreeMap<String, Vec<RawMeshWindow>>,
    /// Distinct failed charges kept for re-sending (default 10000).
    #[serde(default = "default_max_pending")]
    pub max_pending_charges: u64,
    /// Pause after a failed re-send before the next, in ms (default 1000).
    #[serde(default = "default_retry_interval_ms")]
    pub retry_interval_ms: u64,
}

/// Raw mesh window.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawMeshWindow {
    /// `second`, `minute`, `hour` or `day`.
    pub period: String,
    /// Tokens (input + output) per window.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Requests per window.
    #[serde(default)]
    pub max_requests: Option<u64>,
    /// Money per window in US dollars, priced by `usage.prices`.
    #[serde(default)]
    pub max_cost_usd: Option<f64>,
    /// `caller` (each caller has the window to itself, default) or `class` (one shared window).
    #[serde(default)]
    pub per: Option<String>,
}

fn default_domain() -> String {
    "tollgate".into()
}

fn default_descriptor_key() -> String {
    "user".into()
}

fn default_timeout_ms() -> u64 {
    250
}

fn default_failure_mode() -> String {
    "open".into()
}

fn default_max_pending() -> u64 {
    10_000
}

fn default_retry_interval_ms() -> u64 {
    1000
}

/// Micro-dollars per dollar: cost windows count micro-dollars.
pub const MICROS_PER_USD: f64 = 1_000_000.0;

/// Longest class name.
const MAX_CLASS_NAME: usize = 64;

/// Validates `budgets.global`; `has_prices` says whether `usage.prices` lists any model.
pub fn compile(raw: RawMeshBudget, has_prices: bool) -> Result<MeshBudget, ConfigError> {
    const P: &str = "budgets.global";
    for (field, value) in [
        ("cluster", &raw.cluster),
        ("domain", &raw.domain),
        ("descriptor_key", &raw.descriptor_key),
    ] {
        if value.is_empty() {
            return Err(ConfigError::new(
                format!("{P}.{field}"),
                "must not be empty",
            ));
        }
    }
    if matches!(raw.descriptor_key.as_str(), "class" | "window" | "measure") {
        return Err(ConfigError::new(
            format!("{P}.descriptor_key"),
            "must not be class, window or measure (tollgate's own descriptor keys)",
        ));
    }
    if !(1..=60_000).contains(&raw.timeout_ms) {
        return Err(ConfigError::new(
            format!("{P}.timeout_ms"),
            "must be between 1 and 60000",
        ));
    }
    let failure_mode = match raw.failure_mode.as_str() {
        "open" => FailureMode::Open,
        "closed" => FailureMode::Closed,
        other => {
            return Err(ConfigError::new(
                format!("{P}.failure_mode"),
                format!("expected open or closed, got {other:?}"),
            ))
        }
    };
    if raw.class_claim.as_deref() == Some("") {
        return Err(ConfigError::new(
            format!("{P}.class_claim"),
            "must not be empty",
        ));
    }
    if raw.windows.is_empty() {
        return Err(ConfigError::new(
            format!("{P}.windows"),
            "must not be empty: the windows of callers without a class in budgets.global.classes",
        ));
    }
    let windows = compile_windows(&format!("{P}.windows"), &raw.windows, has_prices)?;
    let mut classes = BTreeMap::new();
    for (name, list) in &raw.classes {
        let path = format!("{P}.classes.{name}");
        let printable = name.bytes().all(|b| b.is_ascii_graphic());
        if name.is_empty() || name.len() > MAX_CLASS_NAME || !printable {
            return Err(ConfigError::new(
                path,
                "class names are 1 to 64 printable characters without spaces",
            ));
        }
        if list.is_empty() {
            return Err(ConfigError::new(path, "must not be empty"));
        }
        classes.insert(name.clone(), compile_windows(&path, list, has_prices)?);
    }
    if !(1..=100_000).contains(&raw.max_pending_charges) {
        return Err(ConfigError::new(
            format!("{P}.max_pending_charges"),
            "must be between 1 and 100000",
        ));
    }
    if !(100..=600_000).contains(&raw.retry_interval_ms) {
        return Err(ConfigError::new(
            format!("{P}.retry_interval_ms"),
            "must be between 100 and 600000",
        ));
    }
    Ok(MeshBudget {
        cluster: raw.cluster,
        domain: raw.domain,
        descriptor_key: raw.descriptor_key,
        timeout_ms: raw.timeout_ms,
        failure_mode,
        class_claim: raw.class_claim,
        windows,
        classes,
        max_pending_charges: usize::try_from(raw.max_pending_charges).unwrap_or(100_000),
        retry_interval_ms: raw.retry_interval_ms,
    })
}

/// A 32-bit limit (the service's `requests_per_unit` is a `uint32`).
fn limit32(path: String, value: u64) -> Result<u32, ConfigError> {
    u32::try_from(value).ok().filter(|v| *v > 0).ok_or_else(|| {
        ConfigError::new(
            path,
            "must be between 1 and 4294967295 (the service's limits are 32-bit)",
        )
    })
}

fn compile_windows(
    path: &str,
    raw: &[RawMeshWindow],
    has_prices: bool,
) -> Result<Vec<MeshWindow>, ConfigError> {
    let mut out: Vec<MeshWindow> = Vec::new();
    let mut seen: Vec<(RlsUnit, Scope)> = Vec::new();
    for (i, w) in raw.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let unit = match w.period.as_str() {
            "second" => RlsUnit::Second,
            "minute" => RlsUnit::Minute,
            "hour" => RlsUnit::Hour,
            "day" => RlsUnit::Day,
            other => {
                return Err(ConfigError::new(
                    format!("{at}.period"),
                    format!(
                        "expected second, minute, hour or day (the rate limit service's units), got {other:?}"
                    ),
                ))
            }
        };
        let scope = match w.per.as_deref() {
            None | Some("caller") => Scope::Caller,
            Some("class") => Scope::Class,
            Some(other) => {
                return Err(ConfigError::new(
                    format!("{at}.per"),
                    format!("expected caller or class, got {other:?}"),
                ))
            }
        };
        if seen.contains(&(unit, scope)) {
            return Err(ConfigError::new(
                format!("{at}.period"),
                "duplicate period (for the same per)",
            ));
        }
        seen.push((unit, scope));
        if w.max_tokens.is_none() && w.max_requests.is_none() && w.max_cost_usd.is_none() {
            return Err(ConfigError::new(
                at,
                "set max_tokens, max_requests, max_cost_usd or several",
            ));
        }
        let mut push = |measure: Measure, limit: u32| {
            out.push(MeshWindow {
                unit,
                measure,
                limit,
                scope,
            })
        };
        if let Some(n) = w.max_tokens {
            push(Measure::Tokens, limit32(format!("{at}.max_tokens"), n)?);
        }
        if let Some(n) = w.max_requests {
            push(Measure::Requests, limit32(format!("{at}.max_requests"), n)?);
        }
        if let Some(usd) = w.max_cost_usd {
            let field = format!("{at}.max_cost_usd");
            let micros = usd * MICROS_PER_USD;
            if !(usd.is_finite() && micros >= 1.0 && micros <= f64::from(u32::MAX)) {
                return Err(ConfigError::new(
                    field,
                    "must be at least 0.000001 and at most 4294.967295 (micro-dollars are counted in 32 bits)",
                ));
            }
            if !has_prices {
                return Err(ConfigError::new(
                    field,
                    "needs usage.prices: a request's cost comes from the price table",
                ));
            }
            push(Measure::Cost, micros.round() as u32);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: serde_json::Value) -> RawMeshBudget {
        serde_json::from_value(json).unwrap()
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "cluster": "ratelimit",
            "windows": [{"period": "minute", "max_tokens": 2000}]
        })
    }

    fn with(mut v: serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
        v[key] = value;
        v
    }

    fn error(v: serde_json::Value) -> ConfigError {
        compile(raw(v), true).unwrap_err()
    }

    #[test]
    fn defaults_and_expansion_of_a_window_into_measures() {
        let c = compile(
            raw(with(
                base(),
                "windows",
                serde_json::json!([
                    {"period": "minute", "max_tokens": 2000, "max_requests": 10},
                    {"period": "day", "max_cost_usd": 1.5, "per": "class"}
                ]),
            )),
            true,
        )
        .unwrap();
        assert_eq!(c.domain, "tollgate");
        assert_eq!(c.descriptor_key, "user");
        assert_eq!(c.timeout_ms, 250);
        assert_eq!(c.failure_mode, FailureMode::Open);
        assert_eq!(c.max_pending_charges, 10_000);
        assert_eq!(c.retry_interval_ms, 1000);
        assert_eq!(
            c.windows,
            vec![
                MeshWindow {
                    unit: RlsUnit::Minute,
                    measure: Measure::Tokens,
                    limit: 2000,
                    scope: Scope::Caller
                },
                MeshWindow {
                    unit: RlsUnit::Minute,
                    measure: Measure::Requests,
                    limit: 10,
                    scope: Scope::Caller
                },
                MeshWindow {
                    unit: RlsUnit::Day,
                    measure: Measure::Cost,
                    limit: 1_500_000,
                    scope: Scope::Class
                },
            ]
        );
    }

    #[test]
    fn classes_compile_with_their_own_windows() {
        let c = compile(
            raw(with(
                with(base(), "class_claim", serde_json::json!("tier")),
                "classes",
                serde_json::json!({"pro": [{"period": "hour", "max_tokens": 90000}]}),
            )),
            false,
        )
        .unwrap();
        assert_eq!(c.class_claim.as_deref(), Some("tier"));
        assert_eq!(c.classes["pro"][0].limit, 90_000);
        assert_eq!(c.classes["pro"][0].unit, RlsUnit::Hour);
    }

    #[test]
    fn every_refusal_names_its_field() {
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (with(base(), "cluster", "".into()), "budgets.global.cluster"),
            (with(base(), "domain", "".into()), "budgets.global.domain"),
            (
                with(base(), "descriptor_key", "window".into()),
                "budgets.global.descriptor_key",
            ),
            (
                with(base(), "timeout_ms", 0.into()),
                "budgets.global.timeout_ms",
            ),
            (
                with(base(), "timeout_ms", 60_001.into()),
                "budgets.global.timeout_ms",
            ),
            (
                with(base(), "failure_mode", "maybe".into()),
                "budgets.global.failure_mode",
            ),
            (
                with(base(), "class_claim", "".into()),
                "budgets.global.class_claim",
            ),
            (
                with(base(), "windows", serde_json::json!([])),
                "budgets.global.windows",
            ),
            (
                with(
                    base(),
                    "windows",
                    serde_json::json!([{"period": "week", "max_tokens": 1}]),
                ),
                "budgets.global.windows[0].period",
            ),
            (
                with(
                    base(),
                    "windows",
                    serde_json::json!([{"period": "minute", "max_tokens": 1, "per": "team"}]),
                ),
                "budgets.global.windows[0].per",
            ),
            (
                with(
                    base(),
                    "windows",
                    serde_json::json!([{"period": "minute", "max_tokens": 1},
                                       {"period": "minute", "max_requests": 1}]),
                ),
                "budgets.global.windows[1].period",
            ),
            (
                with(base(), "windows", serde_json::json!([{"period": "minute"}])),
                "budgets.global.windows[0]",
            ),
            (
                with(
                    base(),
                    "windows",
                    serde_json::json!([{"period": "minute", "max_tokens": 0}]),
                ),
                "budgets.global.windows[0].max_tokens",
            ),
            (
                with(
                    base(),
                    "windows",
                    serde_json::json!([{"period": "minute", "max_requests": 4_294_967_296u64}]),
                ),
                "budgets.global.windows[0].max_requests",
            ),
            (
                with(
                    base(),
                    "windows",
                    serde_json::json!([{"period": "day", "max_cost_usd": 5000.0}]),
                ),
                "budgets.global.windows[0].max_cost_usd",
            ),
            (
                with(
                    base(),
                    "windows",
                    serde_json::json!([{"period": "day", "max_cost_usd": -1.0}]),
                ),
                "budgets.global.windows[0].max_cost_usd",
            ),
            (
                with(base(), "classes", serde_json::json!({"pro": []})),
                "budgets.global.classes.pro",
            ),
            (
                with(
                    base(),
                    "classes",
                    serde_json::json!({"a b": [{"period": "minute", "max_tokens": 1}]}),
                ),
                "budgets.global.classes.a b",
            ),
            (
                with(
                    base(),
                    "classes",
                    serde_json::json!({"pro": [{"period": "fortnight", "max_tokens": 1}]}),
                ),
                "budgets.global.classes.pro[0].period",
            ),
            (
                with(base(), "max_pending_charges", 0.into()),
                "budgets.global.max_pending_charges",
            ),
            (
                with(base(), "retry_interval_ms", 99.into()),
                "budgets.global.retry_interval_ms",
            ),
        ];
        for (value, path) in cases {
            let e = error(value.clone());
            assert_eq!(e.path, path, "{value}: {}", e.reason);
            assert!(!e.reason.is_empty());
        }
    }

    #[test]
    fn a_cost_window_needs_prices() {
        let v = with(
            base(),
            "windows",
            serde_json::json!([{"period": "day", "max_cost_usd": 2.0}]),
        );
        let e = compile(raw(v), false).unwrap_err();
        assert_eq!(e.path, "budgets.global.windows[0].max_cost_usd");
        assert!(e.reason.contains("usage.prices"), "{}", e.reason);
    }

    #[test]
    fn unknown_fields_are_refused_by_the_parser() {
        let v = with(base(), "refunds", true.into());
        assert!(serde_json::from_value::<RawMeshBudget>(v).is_err());
    }
}
