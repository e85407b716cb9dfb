//! The walked-failover stack (`envoy/e2e/configs/routing_walk.yaml`): the three mock
//! [`Providers`] behind one Envoy whose route targets
//! an aggregate cluster of them; tollgate runs in the listener stage (with the failover section)
//! and in the aggregate cluster's upstream stage (`{"stage": "upstream"}` in the template: it
//! takes the listener stage's catalog from their shared VM). Shared by `tests/routing_walk.rs`
//! (behaviour) and `tests/walked_load.rs` (concurrent load).

use crate::mock::{MockHandle, MockOptions};
use crate::providers::Providers;
use crate::{template, Envoy};

/// The listener stage's failover section (the catalog both stages use): `gpt-4o-mini` walks openai → anthropic → gemini
/// through the `llm` aggregate cluster, each provider's circuit opening after `threshold`
/// failures for `cooldown_ms`.
pub fn failover_section(threshold: u32, cooldown_ms: u64) -> String {
    format!(
        r#""failover": {{
    "providers": [
      {{"name": "openai", "kind": "openai", "cluster": "openai", "api_key": {{"env": "OPENAI_API_KEY"}},
        "circuit": {{"failure_threshold": {threshold}, "cooldown_ms": {cooldown_ms}}}}},
      {{"name": "anthropic", "kind": "anthropic", "cluster": "anthropic", "api_key": {{"env": "ANTHROPIC_API_KEY"}},
        "models": {{"gpt-4o-mini": "claude-sonnet-4"}}, "circuit": {{"failure_threshold": {threshold}, "cooldown_ms": {cooldown_ms}}}}},
      {{"name": "gemini", "kind": "gemini", "cluster": "gemini", "api_key": {{"env": "GEMINI_API_KEY"}},
        "models": {{"gpt-4o-mini": "gemini-2.0-flash"}}, "circuit": {{"failure_threshold": {threshold}, "cooldown_ms": {cooldown_ms}}}}}
    ],
    "routes": [{{"model": "gpt-4o-mini", "providers": ["openai", "anthropic", "gemini"], "cluster": "llm"}}]
  }}"#
    )
}

/// The running stack. Field order is drop order: Envoy stops before its providers.
pub struct WalkedStack {
    /// Envoy with tollgate in both stages.
    pub envoy: Envoy,
    /// The primary provider.
    pub openai: MockHandle,
    /// The first fallback.
    pub anthropic: MockHandle,
    /// The second fallback.
    pub gemini: MockHandle,
}

impl WalkedStack {
    /// Starts the stack with [`failover_section`]`(threshold, cooldown_ms)`; the mocks start
    /// from `options` ([`Providers::start`]).
    pub fn start(threshold: u32, cooldown_ms: u64, options: &MockOptions) -> WalkedStack {
        Self::start_from(
            &template("e2e/configs/routing_walk.yaml"),
            threshold,
            cooldown_ms,
            options,
        )
    }

    /// Like [`WalkedStack::start`] with the Envoy configuration `config` (a variant of
    /// `routing_walk.yaml`, with the same placeholders).
    pub fn start_from(
        config: &str,
        threshold: u32,
        cooldown_ms: u64,
        options: &MockOptions,
    ) -> WalkedStack {
        let providers = Providers::start(options);
        let section = failover_section(threshold, cooldown_ms);
        let envoy = Envoy::start(
            config,
            providers.vars().plugin_config(&format!("{{{section}}}")),
        );
        let Providers {
            openai,
            anthropic,
            gemini,
        } = providers;
        WalkedStack {
            envoy,
            openai,
            anthropic,
            gemini,
        }
    }
}
