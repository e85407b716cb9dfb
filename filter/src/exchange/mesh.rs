//! Mesh-wide budgets in the pipeline (docs/budgets.md): the admission callout after the local
//! budget admitted the request (the request waits for the answer), the mesh-wide rate-limit
//! headers, the completion charges queued for the root context, and the status endpoint's
//! mesh-wide view. Every decision is [`crate::mesh_budget`]'s; this module moves its inputs and
//! outputs between the host and the exchange.

use std::time::Duration;

use super::host::{Body, GrpcCall, Host, Map};
use super::{replies, Exchange, Flow};
use crate::accounting::tagged_name;
use crate::mesh_budget::{
    AdmissionDecision, Caller, MeshAdmission, MeshBudget, MeshPlan, MeshView, ServiceAnswer, Use,
};
use crate::ratelimit_rpc::{decode_response, GRPC_METHOD, GRPC_SERVICE};

/// Where a request stands with the mesh-wide budget.
#[derive(Debug, Clone)]
pub enum MeshState {
    /// The admission call is out; the request waits.
    Waiting {
        /// The gRPC callout token.
        token: u32,
        /// The request's windows.
        plan: MeshPlan,
        /// What was asked for.
        estimate: Use,
    },
    /// Admitted: what the service recorded, settled when the request ends.
    Admitted {
        /// The request's windows.
        plan: MeshPlan,
        /// The reservation and the mesh-wide view.
        admission: MeshAdmission,
    },
    /// The status endpoint's check is out; the reply waits.
    StatusWaiting {
        /// The gRPC callout token.
        token: u32,
        /// The caller's windows.
        plan: MeshPlan,
        /// The caller asking.
        caller: Option<String>,
    },
}

impl Exchange {
    fn mesh_budget(&self) -> Option<&MeshBudget> {
        self.vm
            .config
            .budgets
            .as_ref()
            .and_then(|b| b.global.as_ref())
    }

    /// The caller's plan, when the mesh budget is on and the caller is known.
    fn mesh_plan(&self, caller: Option<&str>) -> Option<MeshPlan> {
        let budget = self.mesh_budget()?;
        Some(budget.plan(&Caller {
            id: caller?,
            class: self.class.as_deref(),
        }))
    }

    /// What admission asks the service for: the local budget's token estimate, its price.
    fn mesh_estimate(&self, tokens: u64) -> Use {
        let vm = &self.vm;
        let cost = self.info.as_ref().and_then(|i| {
            let model = i.model.as_deref()?;
            let max_tokens = i
                .max_tokens
                .or_else(|| vm.config.budgets.as_ref().map(|b| b.default_max_tokens))?;
            let usage = crate::usage::Usage {
                input_tokens: i.prompt_estimate,
                output_tokens: max_tokens,
                total_tokens: i.prompt_estimate.saturating_add(max_tokens),
                ..crate::usage::Usage::default()
            };
            vm.config.usage.prices.cost(model, &usage)
        });
        Use {
            tokens,
            cost_micros: cost.map_or(0, MeshBudget::micros),
        }
    }

    /// After the local budget admitted the request: ask the service to reserve `tokens` (and
    /// their price, and one request) in every mesh-wide window. `Pause` until it answers.
    pub(super) fn admit_mesh<H: Host>(&mut self, host: &mut H, tokens: u64) -> Flow {
        let Some(plan) = self.mesh_plan(self.user.as_deref()) else {
            return Flow::Continue;
        };
        let vm = std::rc::Rc::clone(&self.vm);
        let Some(budget) = vm.config.budgets.as_ref().and_then(|b| b.global.as_ref()) else {
            return Flow::Continue;
        };
        let estimate = self.mesh_estimate(tokens);
        let message = plan.admission_request(&budget.domain, &estimate);
        let token = host.grpc_call(&GrpcCall {
            cluster: &budget.cluster,
            service: GRPC_SERVICE,
            method: GRPC_METHOD,
            message: &message,
            timeout: Duration::from_millis(budget.timeout_ms),
        });
        match token {
            Some(token) => {
                self.mesh = Some(MeshState::Waiting {
                    token,
                    plan,
                    estimate,
                });
                Flow::Pause
            }
            // Envoy refused the call (an unknown cluster, say): no answer will come.
            None => self.decide_mesh(host, plan, estimate, ServiceAnswer::Failed),
        }
    }

    /// A gRPC callout of this exchange answered (`status_code` 0: OK).
    pub fn on_grpc_response<H: Host>(
        &mut self,
        host: &mut H,
        token: u32,
        status_code: u32,
        size: usize,
    ) {
        let started = host.now_ns();
        match self.mesh.take() {
            Some(MeshState::Waiting {
                token: t,
                plan,
                estimate,
            }) if t == token => {
                let verdict = (status_code == 0)
                    .then(|| decode_response(&host.body(Body::GrpcResponse, size)))
                    .flatten();
                let answer = verdict
                    .as_ref()
                    .map_or(ServiceAnswer::Failed, ServiceAnswer::Verdict);
                let mut flow = self.decide_mesh(host, plan, estimate, answer);
                if flow == Flow::Continue {
                    // Admitted: a cache hit now answers without the provider.
                    flow = self.deferred_cache_lookup(host);
                }
                if flow == Flow::Continue && !host.resume_request() {
                    self.log(
                        host,
                        log::Level::Error,
                        "host refused to resume the request",
                    );
                }
            }
            Some(MeshState::StatusWaiting {
                token: t,
                plan,
                caller,
            }) if t == token => {
                let view = (status_code == 0)
                    .then(|| decode_response(&host.body(Body::GrpcResponse, size)))
                    .flatten()
                    .map(|v| MeshView::from_verdict(&plan, &v));
                if view.is_none() {
                    self.log(
                        host,
                        log::Level::Warn,
                        "the rate limit service did not answer the status check",
                    );
                }
                self.send_status(host, caller, view.as_ref());
            }
            other => self.mesh = other,
        }
        self.add_own_time(host, started);
    }

    /// Applies the admission decision: `Continue` when admitted, `Replied` otherwise.
    fn decide_mesh<H: Host>(
        &mut self,
        host: &mut H,
        plan: MeshPlan,
        estimate: Use,
        answer: ServiceAnswer<'_>,
    ) -> Flow {
        let vm = std::rc::Rc::clone(&self.vm);
        let Some(budget) = vm.config.budgets.as_ref().and_then(|b| b.global.as_ref()) else {
            return Flow::Continue;
        };
        let count = |me: &Self, host: &mut H, outcome: &str| {
            me.count(
                host,
                tagged_name(
                    "tollgate_global_budget_admissions_total",
                    &[("outcome", outcome)],
                ),
            );
        };
        match plan.decide(answer, &estimate, budget.failure_mode) {
            AdmissionDecision::Admitted(admission) => {
                let outcome = if admission.reached {
                    "ok"
                } else {
                    budget.failure_mode.label()
                };
                count(self, host, outcome);
                if !admission.reached {
                    self.log(
                        host,
                        log::Level::Warn,
                        "rate limit service unavailable: admitted without the mesh-wide budget",
                    );
                }
                self.mesh = Some(MeshState::Admitted { plan, admission });
                Flow::Continue
            }
            AdmissionDecision::Refused { refusal, .. } => {
                count(self, host, "over_limit");
                self.count(
                    host,
                    tagged_name(
                        "tollgate_budget_rejections_total",
                        &[("dimension", refusal.dimension)],
                    ),
                );
                // Release the local reservation now: the reply carries the mesh-wide headers only.
                self.settle(host, 0);
                let reply = replies::budget_reply(&refusal);
                self.reply(host, &reply)
            }
            AdmissionDecision::Unavailable => {
                count(self, host, budget.failure_mode.label());
                self.settle(host, 0);
                let reply = replies::budget_unavailable_reply();
                self.reply(host, &reply)
            }
        }
    }

    /// Replaces the local budget's rate-limit headers with the mesh-wide view, when there is one.
    pub(super) fn set_mesh_headers<H: Host>(&self, host: &mut H) {
        if let Some(MeshState::Admitted { admission, .. }) = self.mesh.as_ref() {
            for (name, value) in admission.view.headers() {
                host.set_header(Map::Response, &name, &value);
            }
        }
    }

    /// The request ended having used `actual`: queue what its reservation did not cover.
    pub(super) fn charge_mesh<H: Host>(&mut self, host: &mut H, actual: Use) {
        let Some(MeshState::Admitted { plan, admission }) = self.mesh.take() else {
            return;
        };
        for charge in plan.completion_charges(&admission, &actual) {
            self.vm.queue_charge(host, charge);
        }
    }

    /// The status endpoint with the mesh budget on: ask the service for the caller's windows
    /// (charging nothing), answer when it replies. `None`: no mesh budget, answer right away.
    pub(super) fn mesh_status<H: Host>(
        &mut self,
        host: &mut H,
        caller: Option<String>,
    ) -> Option<Flow> {
        let plan = self.mesh_plan(caller.as_deref())?;
        let budget = self.mesh_budget()?;
        let message = plan.status_request(&budget.domain);
        let call = GrpcCall {
            cluster: &budget.cluster,
            service: GRPC_SERVICE,
            method: GRPC_METHOD,
            message: &message,
            timeout: Duration::from_millis(budget.timeout_ms),
        };
        let token = host.grpc_call(&call)?;
        // Nothing of this request goes upstream: whatever else arrives is held until the reply.
        self.phase = super::Phase::Replied;
        self.mesh = Some(MeshState::StatusWaiting {
            token,
            plan,
            caller,
        });
        Some(Flow::Pause)
    }
}

#[cfg(test)]
#[path = "mesh_tests/mod.rs"]
mod tests;
