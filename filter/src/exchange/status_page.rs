//! The status endpoint, answered locally: version, configuration hash, provider circuits and
//! back-off windows, and the caller's budget windows ([`crate::status`] renders it).

use super::host::{now_ms, Host};
use super::{Exchange, Flow, Phase};
use crate::error_reply::{ErrorKind, ErrorReply};
use crate::failover;
use crate::status::{self, ProviderStatus, StatusInputs, WindowStatus};

impl Exchange {
    /// Answers the status endpoint when the request asks for it. `Some`: answered (or refused:
    /// with authentication configured, only an authenticated caller gets it).
    pub(super) fn serve_status<H: Host>(&mut self, host: &mut H) -> Option<Flow> {
        let vm = std::rc::Rc::clone(&self.vm);
        let config = &vm.config;
        let status_config = config.status.as_ref()?;
        if !status_config.matches(&self.path) {
            return None;
        }
        let auth_configured =
            config.jwt.is_some() || config.envoy_jwt.is_some() || config.keys.is_some();
        if auth_configured && self.user.is_none() {
            let realm = config.jwt.as_ref().map_or("tollgate", |j| j.realm.as_str());
            let reply = ErrorReply::new(
                401,
                ErrorKind::Authentication,
                "missing",
                "the status endpoint needs an authenticated caller",
            )
            .with_header("www-authenticate", format!("Bearer realm=\"{realm}\""));
            return Some(self.reply(host, &reply));
        }
        let caller = self.user.clone().or_else(|| self.identify(host));
        // With the mesh budget on, the caller's windows come from the rate limit service.
        if let Some(flow) = self.mesh_status(host, caller.clone()) {
            return Some(flow);
        }
        self.send_status(host, caller, None);
        Some(Flow::Replied)
    }

    /// Renders and sends the status document; `mesh` is the mesh-wide view when there is one.
    pub(super) fn send_status<H: Host>(
        &mut self,
        host: &mut H,
        caller: Option<String>,
        mesh: Option<&crate::mesh_budget::MeshView>,
    ) {
        let vm = std::rc::Rc::clone(&self.vm);
        let config = &vm.config;
        let now_ms = now_ms(host);
        let providers = config
            .failover
            .as_ref()
            .map(|f| {
                f.providers
                    .iter()
                    .map(|p| ProviderStatus {
                        name: p.name.clone(),
                        kind: p.kind.as_str().to_string(),
                        circuit: failover::circuit_state(&*host, p, now_ms),
                        backoff_remaining_ms: failover::backoff_until(&*host, p, now_ms)
                            .map(|until| until.saturating_sub(now_ms)),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let now_s = now_ms / 1000;
        let budget = match (config.budgets.as_ref(), caller.as_deref()) {
            (Some(b), Some(user)) => Some(
                b.budgets
                    .windows
                    .iter()
                    .zip(b.budgets.snapshot(&*host, user, now_s))
                    .map(|(limit, (_, state))| WindowStatus::new(limit, &state, now_s))
                    .collect(),
            ),
            _ => None,
        };
        let body = status::render(&StatusInputs {
            version: crate::VERSION,
            config_hash: &config.config_hash,
            environment: config.environment.as_str(),
            request_id: &self.request_id,
            caller: caller.as_deref(),
            providers,
            budget,
            key: self.key_status(&*host, now_s),
            mesh_budget: mesh,
        });
        let headers = [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
            (
                config.correlation.request_id_header.as_str(),
                self.request_id.as_str(),
            ),
        ];
        self.phase = Phase::Replied;
        vm.metrics.local_replies.add(host, 1);
        if !host.send_reply(200, &headers, &body) {
            self.log(host, log::Level::Error, "host refused the status reply");
        }
    }
}
