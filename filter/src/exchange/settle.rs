//! The end of a request (access-log time): usage metrics and access-log properties, the billing
//! rule, budget settlement of the reservation, and the mesh-wide remainder queued for the root.

use super::host::Host;
use super::{Exchange, Phase};
use crate::accounting::{self, RequestRecord};

impl Exchange {
    pub(super) fn log_hook<H: Host>(&mut self, host: &mut H) {
        if self.masked_count > 0 {
            let _ = host.set_property(
                "tollgate_masked_count",
                self.masked_count.to_string().as_bytes(),
            );
        }
        if !self.path.is_empty() {
            // The client's path; the access log's `%REQ(:PATH)%` shows the provider's when
            // tollgate rewrote it.
            let _ = host.set_property("tollgate_path", self.path.as_bytes());
        }
        if let Some(upstream) = self.upstream_path.as_deref() {
            let _ = host.set_property("tollgate_provider_path", upstream.as_bytes());
        }
        if let (Some(user), None) = (self.user.as_deref(), self.api) {
            let _ = host.set_property("tollgate_user", user.as_bytes());
        }
        self.key_log_fields(host);
        self.cache_log_property(host);
        if self.phase == Phase::Replied {
            if self.account_cache_hit(host) {
                return;
            }
            // A refused request still releases any reservation it made.
            self.settle(host, 0);
            return;
        }
        self.account(host);
    }

    /// Accounts the finished request: metrics, access-log properties, budget settlement.
    fn account<H: Host>(&mut self, host: &mut H) {
        let Some(kind) = self.api else {
            return;
        };
        let Some(tracker) = self.response.tracker.take() else {
            // No response was observed: the request is charged what nothing used.
            self.charge_mesh(host, crate::mesh_budget::Use::default());
            self.settle(host, 0);
            return;
        };
        let vm = std::rc::Rc::clone(&self.vm);
        let outcome = tracker.finish();
        let duration_ms = self.elapsed_ms(host);
        let model_name = outcome
            .model
            .clone()
            .or_else(|| self.info.as_ref().and_then(|i| i.model.clone()))
            .unwrap_or_else(|| "unknown".to_string());
        let cost = outcome
            .usage
            .as_ref()
            .and_then(|u| vm.config.usage.prices.cost(&model_name, u));
        let route_name = self.route.as_ref().map(|r| r.name.clone());
        let provider = route_name
            .as_deref()
            .unwrap_or(accounting::provider_for(kind));
        let model_label = vm.model_label(&model_name);
        let user_label = self.user_metric_label();
        let team_label = self.team_label();
        let record = RequestRecord {
            provider,
            model: &model_label,
            user_label: user_label.as_deref(),
            team_label: team_label.as_deref(),
            status: self.response.status,
            outcome: &outcome,
            cost_usd: cost,
            ttft_ms: self.response.ttft_ms,
            duration_ms,
        };
        self.publish_record(host, &record);
        if !outcome.complete && (200..300).contains(&self.response.status) {
            self.log(
                host,
                log::Level::Warn,
                "response ended without its terminator: usage estimated",
            );
        }
        // Provider errors without usage are not billed: charge nothing for them.
        let billed = outcome.reported_usage.is_some() || (200..300).contains(&self.response.status);
        let actual = outcome
            .usage
            .filter(|_| billed)
            .map_or(0, |u| u.input_tokens.saturating_add(u.output_tokens));
        let cost_micros = cost
            .filter(|_| billed)
            .map_or(0, crate::mesh_budget::MeshBudget::micros);
        self.charge_mesh(
            host,
            crate::mesh_budget::Use {
                tokens: actual,
                cost_micros,
            },
        );
        self.settle(host, actual);
    }

    /// The caller as a metric label, when `usage.user_metric_label` allows it.
    pub(super) fn user_metric_label(&self) -> Option<String> {
        self.user
            .clone()
            .filter(|_| self.vm.config.usage.user_metric_label)
    }

    /// A finished request's metrics (by label set), truncation count and access-log fields.
    pub(super) fn publish_record<H: Host>(&self, host: &mut H, record: &RequestRecord<'_>) {
        let vm = &self.vm;
        vm.record_request(host, &record.labels(), &accounting::request_samples(record));
        if let Some(sample) = accounting::truncation_sample(record) {
            vm.record(host, &sample);
        }
        for (name, value) in accounting::access_log_fields(record, self.user.as_deref()) {
            let _ = host.set_property(name, value.as_bytes());
        }
    }

    /// Releases the reservation and charges `actual` tokens; logs crossed thresholds.
    pub(super) fn settle<H: Host>(&mut self, host: &mut H, actual: u64) {
        self.settle_key(host, actual);
        let vm = std::rc::Rc::clone(&self.vm);
        let (Some(budget), Some(admission), Some(user)) = (
            vm.config.budgets.as_ref(),
            self.admission.take(),
            self.user.clone(),
        ) else {
            return;
        };
        let now = host.now_ns() / 1_000_000_000;
        let warnings = budget
            .budgets
            .settle(&*host, &user, now, admission.reserved, actual);
        for w in warnings {
            self.log(
                host,
                log::Level::Warn,
                &format!(
                    "budget warning: {user} used {} of {} tokens ({}%) in the {}s window",
                    w.used,
                    w.limit,
                    (w.threshold * 100.0).round(),
                    w.period_seconds
                ),
            );
            let pct = format!("{}", (w.threshold * 100.0).round());
            self.count(
                host,
                accounting::tagged_name("tollgate_budget_warnings_total", &[("threshold", &pct)]),
            );
        }
    }
}
