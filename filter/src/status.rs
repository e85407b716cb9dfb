//! The status endpoint (`status: { "path": "/tollgate/status" }`): a local JSON answer — never
//! forwarded upstream — with the filter version, a hash of the plugin configuration, the
//! environment, each provider's circuit and back-off, and the caller's budget use per window.
//!
//! This module validates the section and renders the document from plain inputs; the host
//! gathers those inputs (read-only: circuits and budgets are read, never reserved or changed)
//! and decides who may ask (the request is authenticated like any other).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::budget::{WindowLimit, WindowState};
use crate::failover::CircuitState;

/// Raw `status` section.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawStatus {
    /// The path answered locally (query ignored), e.g. `/tollgate/status`.
    pub path: String,
}

/// Validated `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusConfig {
    /// The path answered locally.
    pub path: String,
}

/// Validates `status.path`: starts with `/`, no query or fragment, at most 256 bytes, printable.
pub fn compile(raw: &RawStatus) -> Result<StatusConfig, String> {
    let p = &raw.path;
    let ok = p.starts_with('/')
        && p.len() <= 256
        && !p.contains(['?', '#'])
        && p.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(StatusConfig { path: p.clone() })
    } else {
        Err(format!(
            "must be an absolute path without query (at most 256 printable characters), got {p:?}"
        ))
    }
}

impl StatusConfig {
    /// Whether a request `:path` (query ignored) asks for the status.
    pub fn matches(&self, request_path: &str) -> bool {
        request_path.split(['?', '#']).next() == Some(self.path.as_str())
    }
}

/// `sha256:<hex>` of the plugin configuration bytes, as the status endpoint reports it (so an
/// operator can tell which configuration each Envoy runs).
pub fn config_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// One provider's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderStatus {
    /// Provider name.
    pub name: String,
    /// Its protocol (`openai`, `anthropic`, …).
    pub kind: String,
    /// Circuit state now.
    pub circuit: CircuitState,
    /// Milliseconds left of a provider-announced back-off, if one is running.
    pub backoff_remaining_ms: Option<u64>,
}

/// One budget window as the caller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowStatus {
    /// Window length in seconds.
    pub period_seconds: u64,
    /// Token limit, if any.
    pub max_tokens: Option<u64>,
    /// Tokens charged in this window.
    pub used_tokens: u64,
    /// Tokens reserved by requests in flight.
    pub reserved_tokens: u64,
    /// Tokens still available (limit − used − reserved), if limited.
    pub remaining_tokens: Option<u64>,
    /// Request limit, if any.
    pub max_requests: Option<u64>,
    /// Requests admitted in this window.
    pub requests: u64,
    /// Requests still available, if limited.
    pub remaining_requests: Option<u64>,
    /// Seconds until the window resets.
    pub reset_seconds: u64,
}

impl WindowStatus {
    /// The caller's view of `state` (already rolled to `now`) under `limit`.
    pub fn new(limit: &WindowLimit, state: &WindowState, now: u64) -> Self {
        let committed = state.used_tokens.saturating_add(state.reserved_tokens);
        Self {
            period_seconds: limit.period_seconds,
            max_tokens: limit.max_tokens,
            used_tokens: state.used_tokens,
            reserved_tokens: state.reserved_tokens,
            remaining_tokens: limit.max_tokens.map(|m| m.saturating_sub(committed)),
            max_requests: limit.max_requests,
            requests: state.requests,
            remaining_requests: limit.max_requests.map(|m| m.saturating_sub(state.requests)),
            reset_seconds: state
                .window_start
                .saturating_add(limit.period_seconds)
                .saturating_sub(now),
        }
    }
}

/// The calling key, as the status endpoint shows it (never the key or its hash).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyStatus<'a> {
    /// Key id.
    pub id: &'a str,
    /// Owner.
    pub owner: &'a str,
    /// Team.
    pub team: &'a str,
    /// Allowed model patterns (`None`: every model).
    pub models: Option<Vec<String>>,
    /// Expiry, Unix seconds.
    pub expires_at: Option<u64>,
    /// Labels.
    pub labels: &'a std::collections::BTreeMap<String, String>,
    /// The key's own budget windows (`None` without key budgets).
    pub budget: Option<Vec<WindowStatus>>,
}

impl<'a> KeyStatus<'a> {
    /// The status of `entry`, with its windows' states (`(period, state)` from
    /// [`crate::budget::Budgets::snapshot`]) at `now_unix`.
    pub fn new(
        entry: &'a crate::keys::KeyEntry,
        states: &[(u64, crate::budget::WindowState)],
        now_unix: u64,
    ) -> Self {
        let budget = entry.budgets.as_ref().map(|b| {
            b.windows
                .iter()
                .map(|w| {
                    let state = states
                        .iter()
                        .find(|(p, _)| *p == w.period_seconds)
                        .map(|(_, s)| *s)
                        .unwrap_or_default();
                    WindowStatus::new(w, &state, now_unix)
                })
                .collect()
        });
        Self {
            id: &entry.id,
            owner: &entry.owner,
            team: &entry.team,
            models: entry
                .models
                .as_ref()
                .map(|m| m.iter().map(ToString::to_string).collect()),
            expires_at: entry.expires_at,
            labels: &entry.labels,
            budget,
        }
    }
}

/// Everything the status document says.
#[derive(Debug, Clone)]
pub struct StatusInputs<'a> {
    /// Filter version.
    pub version: &'a str,
    /// [`config_hash`] of the plugin configuration.
    pub config_hash: &'a str,
    /// `development` or `production`.
    pub environment: &'a str,
    /// The request's correlation id.
    pub request_id: &'a str,
    /// The caller as budgets and logs know it (a JWT claim, `key:<hash>` or `ip:…`; never a key).
    pub caller: Option<&'a str>,
    /// Providers in catalog order (empty without `failover`).
    pub providers: Vec<ProviderStatus>,
    /// The caller's windows (`None` without budgets or without a caller).
    pub budget: Option<Vec<WindowStatus>>,
    /// The calling virtual API key and its own budget (`None` without a key).
    pub key: Option<KeyStatus<'a>>,
    /// The caller's mesh-wide windows as the rate limit service reported them (`None` without
    /// `budgets.global`, or when the service did not answer).
    pub mesh_budget: Option<&'a crate::mesh_budget::MeshView>,
}

#[derive(Serialize)]
struct Document<'a> {
    version: &'a str,
    config_hash: &'a str,
    environment: &'a str,
    request_id: &'a str,
    caller: Option<&'a str>,
    providers: Vec<ProviderJson<'a>>,
    budget: Option<BudgetJson<'a>>,
    key: Option<&'a KeyStatus<'a>>,
    mesh_budget: Option<&'a crate::mesh_budget::MeshView>,
}

#[derive(Serialize)]
struct ProviderJson<'a> {
    name: &'a str,
    kind: &'a str,
    circuit: &'static str,
    backoff_remaining_ms: Option<u64>,
}

#[derive(Serialize)]
struct BudgetJson<'a> {
    windows: &'a [WindowStatus],
}

/// The status document as JSON bytes.
pub fn render(inputs: &StatusInputs<'_>) -> Vec<u8> {
    let doc = Document {
        version: inputs.version,
        config_hash: inputs.config_hash,
        environment: inputs.environment,
        request_id: inputs.request_id,
        caller: inputs.caller,
        providers: inputs
            .providers
            .iter()
            .map(|p| ProviderJson {
                name: &p.name,
                kind: &p.kind,
                circuit: p.circuit.label(),
                backoff_remaining_ms: p.backoff_remaining_ms,
            })
            .collect(),
        budget: inputs
            .budget
            .as_deref()
            .map(|windows| BudgetJson { windows }),
        key: inputs.key.as_ref(),
        mesh_budget: inputs.mesh_budget,
    };
    serde_json::to_vec(&doc).unwrap_or_else(|_| b"{}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_is_validated_and_matched_without_query() {
        let ok = compile(&RawStatus {
            path: "/tollgate/status".into(),
        })
        .unwrap();
        assert!(ok.matches("/tollgate/status"));
        assert!(ok.matches("/tollgate/status?x=1"));
        assert!(!ok.matches("/tollgate/status/x"));
        assert!(!ok.matches("/tollgate/statu"));
        for bad in ["status", "/a?b", "/a b", ""] {
            assert!(compile(&RawStatus { path: bad.into() }).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_hash_is_stable_sha256() {
        assert_eq!(
            config_hash(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(config_hash(b"{}"), config_hash(b"{ }"));
    }

    #[test]
    fn window_status_computes_remaining_and_reset() {
        let limit = WindowLimit {
            period_seconds: 60,
            max_tokens: Some(1000),
            max_requests: Some(10),
        };
        let state = WindowState {
            window_start: 120,
            used_tokens: 300,
            reserved_tokens: 200,
            requests: 4,
            warned: 0,
        };
        let w = WindowStatus::new(&limit, &state, 150);
        assert_eq!(w.remaining_tokens, Some(500));
        assert_eq!(w.remaining_requests, Some(6));
        assert_eq!(w.reset_seconds, 30);
        let unlimited = WindowLimit {
            period_seconds: 60,
            max_tokens: None,
            max_requests: Some(1),
        };
        let w = WindowStatus::new(&unlimited, &WindowState::default(), 10);
        assert_eq!(w.remaining_tokens, None);
        assert_eq!(w.reset_seconds, 50);
    }

    #[test]
    fn document_has_every_section() {
        let inputs = StatusInputs {
            version: "1.2.3",
            config_hash: "sha256:ab",
            environment: "production",
            request_id: "rid-1",
            caller: Some("key:0123456789abcdef"),
            providers: vec![
                ProviderStatus {
                    name: "openai".into(),
                    kind: "openai".into(),
                    circuit: CircuitState::Open,
                    backoff_remaining_ms: None,
                },
                ProviderStatus {
                    name: "claude".into(),
                    kind: "anthropic".into(),
                    circuit: CircuitState::Closed,
                    backoff_remaining_ms: Some(1500),
                },
            ],
            budget: Some(vec![WindowStatus::new(
                &WindowLimit {
                    period_seconds: 60,
                    max_tokens: Some(100),
                    max_requests: None,
                },
                &WindowState {
                    window_start: 0,
                    used_tokens: 40,
                    reserved_tokens: 0,
                    requests: 2,
                    warned: 0,
                },
                10,
            )]),
            key: None,
            mesh_budget: None,
        };
        let v: serde_json::Value = serde_json::from_slice(&render(&inputs)).unwrap();
        assert_eq!(v["version"], "1.2.3");
        assert_eq!(v["config_hash"], "sha256:ab");
        assert_eq!(v["environment"], "production");
        assert_eq!(v["request_id"], "rid-1");
        assert_eq!(v["caller"], "key:0123456789abcdef");
        assert_eq!(v["providers"][0]["circuit"], "open");
        assert_eq!(v["providers"][1]["kind"], "anthropic");
        assert_eq!(v["providers"][1]["backoff_remaining_ms"], 1500);
        assert_eq!(v["budget"]["windows"][0]["remaining_tokens"], 60);
        assert_eq!(
            v["budget"]["windows"][0]["max_requests"],
            serde_json::Value::Null
        );
        let empty = StatusInputs {
            providers: vec![],
            budget: None,
            caller: None,
            ..inputs
        };
        let v: serde_json::Value = serde_json::from_slice(&render(&empty)).unwrap();
        assert_eq!(v["providers"], serde_json::json!([]));
        assert_eq!(v["budget"], serde_json::Value::Null);
    }
}
