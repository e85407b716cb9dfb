//! The response cache as pipeline steps: after admission a covered request is looked up and a
//! hit answered locally (no provider call); on a miss the answer is captured as the client
//! receives it and stored once it has arrived whole; in the log hook a hit is accounted under
//! provider `cache` at zero cost and charges budgets `cache.budget_fraction` of its tokens.
//! What is cached, the key and the storage are decided by `crate::cache`.

use super::host::{now_ms, Host, Map};
use super::{Exchange, Flow, Phase};
use crate::accounting::{self, RequestRecord};
use crate::cache::flow::{cache_store, gauges, store_answer, Hit, Step, Stored};
use crate::cache::key::{mapped_model, Caller, Lookup, RequestView};
use crate::cache::{budget_charge, look_up, CacheStatus, Recorder, ResponseEnd, ResponseHead};
use crate::usage::{ApiKind, Usage, UsageOutcome};

/// What the cache knows about one exchange.
#[derive(Debug, Default)]
pub struct CacheState {
    /// What the cache did (the `x-tollgate-cache` value); `None`: not covered.
    pub status: Option<CacheStatus>,
    /// A miss's lookup, until the response starts.
    lookup: Option<Lookup>,
    /// A miss's answer being captured.
    recorder: Option<Recorder>,
    /// A hit to account in the log hook.
    hit: Option<HitRecord>,
    /// The lookup waiting for the mesh-wide admission to answer.
    deferred: Option<DeferredLookup>,
}

/// A lookup put off while the request waits for an admission callout.
#[derive(Debug)]
struct DeferredLookup {
    kind: ApiKind,
    body: Vec<u8>,
}

/// What a hit leaves for the log hook.
#[derive(Debug, Clone)]
struct HitRecord {
    usage: Option<Usage>,
    model: String,
}

impl Exchange {
    /// After admission: looks the request up now (`admitted` is `Continue`), or once the admission
    /// callout answers (`Pause`; see [`Exchange::deferred_cache_lookup`]).
    pub(super) fn cache_after_admission<H: Host>(
        &mut self,
        host: &mut H,
        admitted: Flow,
        kind: ApiKind,
        body: Vec<u8>,
    ) -> Flow {
        match admitted {
            Flow::Continue => self.cache_lookup(host, kind, &body),
            Flow::Pause => {
                self.cache.deferred = Some(DeferredLookup { kind, body });
                Flow::Pause
            }
            other => other,
        }
    }

    /// The admission callout admitted the request: the lookup it put off, if any.
    pub(super) fn deferred_cache_lookup<H: Host>(&mut self, host: &mut H) -> Flow {
        match self.cache.deferred.take() {
            Some(DeferredLookup { kind, body }) => self.cache_lookup(host, kind, &body),
            None => Flow::Continue,
        }
    }

    /// Looks the request up; a hit is answered here. `body` is the request
    /// body as it goes to the provider (after prompt masking, before any translation).
    fn cache_lookup<H: Host>(&mut self, host: &mut H, kind: ApiKind, body: &[u8]) -> Flow {
        let vm = std::rc::Rc::clone(&self.vm);
        let Some(settings) = vm.config.cache.as_deref() else {
            return Flow::Continue;
        };
        let client_model = self
            .info
            .as_ref()
            .and_then(|i| i.model.clone())
            .unwrap_or_default();
        let mapped = mapped_model(vm.config.failover.as_deref(), &client_model);
        let cache_control = host.header(Map::Request, "cache-control");
        let opt_in = host.header(Map::Request, &settings.opt_in_header);
        let view = RequestView {
            path: &self.path,
            api: Some(kind),
            model: &client_model,
            mapped_model: &mapped,
            body,
            cache_control: cache_control.as_deref(),
            opt_in: opt_in.as_deref(),
            caller: Caller {
                user: self.user.as_deref(),
                team: self.key.as_ref().map(|k| k.caller.entry.team.as_str()),
            },
        };
        let step = look_up(settings, &*host, &view, now_ms(host));
        for sample in step.samples() {
            vm.record(host, &sample);
        }
        self.cache.status = step.status();
        match step {
            Step::Hit(hit) => self.serve_hit(host, *hit),
            Step::Miss(lookup) => {
                self.cache.lookup = Some(lookup);
                Flow::Continue
            }
            Step::Bypass(_) | Step::NotCovered => Flow::Continue,
        }
    }

    /// Answers from the cache.
    fn serve_hit<H: Host>(&mut self, host: &mut H, hit: Hit) -> Flow {
        let id_header = self.vm.config.correlation.request_id_header.clone();
        let mut headers: Vec<(&str, String)> = hit.headers();
        headers.push((id_header.as_str(), self.request_id.clone()));
        let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if !host.send_reply(hit.reply.status, &refs, &hit.reply.body) {
            // Without the local reply the provider answers, as on a miss (not stored).
            self.log(host, log::Level::Error, "host refused the cached reply");
            self.cache.status = Some(CacheStatus::Miss);
            return Flow::Continue;
        }
        self.log(
            host,
            log::Level::Debug,
            &format!("served from the cache ({} s old)", hit.age_seconds),
        );
        self.cache.hit = Some(HitRecord {
            usage: hit.usage,
            model: hit.model,
        });
        self.phase = Phase::Replied;
        Flow::Replied
    }

    /// Response headers: names what the cache did and starts capturing a miss's answer (after
    /// translation set the content type the client gets).
    pub(super) fn cache_response_headers<H: Host>(&mut self, host: &mut H) {
        let Some(status) = self.cache.status else {
            return;
        };
        host.set_header(Map::Response, crate::cache::STATUS_HEADER, status.as_str());
        let (Some(lookup), Some(settings)) =
            (self.cache.lookup.take(), self.vm.config.cache.as_deref())
        else {
            return;
        };
        let content_type = host.header(Map::Response, "content-type");
        let content_encoding = host.header(Map::Response, "content-encoding");
        let head = ResponseHead {
            status: self.response.status,
            content_type: content_type.as_deref(),
            content_encoding: content_encoding.as_deref(),
        };
        self.cache.recorder = Some(Recorder::start(lookup, &head, settings.max_entry_bytes));
    }

    /// Whether a miss's answer is being captured (the body hook must then observe it).
    pub(super) fn cache_capturing(&self) -> bool {
        self.cache.recorder.is_some()
    }

    /// Observes the bytes the client receives; at the end of the body, stores the answer.
    pub(super) fn cache_observe<H: Host>(&mut self, host: &mut H, out: &[u8], end_of_stream: bool) {
        let Some(recorder) = self.cache.recorder.as_mut() else {
            return;
        };
        recorder.feed(out);
        if end_of_stream {
            self.cache_store(host);
        }
    }

    /// A held response was replaced by another provider's whole answer: capture that instead.
    pub(super) fn cache_replacement<H: Host>(
        &mut self,
        host: &mut H,
        status: u32,
        content_type: &str,
        body: &[u8],
    ) {
        let Some(settings) = self.vm.config.cache.as_deref() else {
            return;
        };
        let Some(lookup) = self.cache.recorder.take().map(|r| r.lookup().clone()) else {
            return;
        };
        let head = ResponseHead {
            status,
            content_type: Some(content_type),
            content_encoding: None,
        };
        let mut recorder = Recorder::start(lookup, &head, settings.max_entry_bytes);
        recorder.feed(body);
        self.cache.recorder = Some(recorder);
        self.cache_store(host);
    }

    /// The answer is complete: stores it when it qualifies.
    fn cache_store<H: Host>(&mut self, host: &mut H) {
        let vm = std::rc::Rc::clone(&self.vm);
        let (Some(recorder), Some(settings)) =
            (self.cache.recorder.take(), vm.config.cache.as_deref())
        else {
            return;
        };
        let stored = match recorder.skipped() {
            Some(skip) => Stored::Skipped(skip),
            None => {
                // The tracker's view so far; it keeps observing for the log hook.
                let outcome: Option<UsageOutcome> =
                    self.response.tracker.as_ref().map(|t| t.clone().finish());
                let model = outcome
                    .as_ref()
                    .and_then(|o| o.model.clone())
                    .or_else(|| self.info.as_ref().and_then(|i| i.model.clone()))
                    .unwrap_or_default();
                let provider = self.route.as_ref().map_or_else(
                    || {
                        self.api
                            .map_or("unknown", accounting::provider_for)
                            .to_string()
                    },
                    |r| r.name.clone(),
                );
                let end = ResponseEnd {
                    complete: outcome.as_ref().is_none_or(|o| o.complete),
                    usage: outcome.as_ref().and_then(|o| o.reported_usage),
                    provider: &provider,
                    model: &model,
                    now_ms: now_ms(host),
                };
                store_answer(settings, &*host, recorder, &end)
            }
        };
        if let Stored::Skipped(skip) = &stored {
            self.log(
                host,
                log::Level::Debug,
                &format!("answer not cached: {}", skip.as_str()),
            );
        }
        for sample in stored.samples() {
            vm.record(host, &sample);
        }
    }

    /// Log hook: accounts a hit (provider `cache`, no cost) and settles its budget charge.
    /// False when the request was not a hit.
    pub(super) fn account_cache_hit<H: Host>(&mut self, host: &mut H) -> bool {
        let Some(hit) = self.cache.hit.take() else {
            return false;
        };
        let vm = std::rc::Rc::clone(&self.vm);
        let outcome = UsageOutcome {
            usage: hit.usage,
            reported_usage: hit.usage,
            model: Some(hit.model.clone()),
            complete: true,
            ..UsageOutcome::default()
        };
        let model_label = vm.model_label(&hit.model);
        let user_label = self.user_metric_label();
        let team_label = self.team_label();
        let record = RequestRecord {
            provider: "cache",
            model: &model_label,
            user_label: user_label.as_deref(),
            team_label: team_label.as_deref(),
            status: 200,
            outcome: &outcome,
            cost_usd: None,
            ttft_ms: None,
            duration_ms: self.elapsed_ms(host),
        };
        self.publish_record(host, &record);
        let fraction = vm
            .config
            .cache
            .as_deref()
            .map_or(0.0, |c| c.budget_fraction);
        let charge = budget_charge(fraction, hit.usage.as_ref());
        // A hit costs the provider nothing: the mesh-wide budget is charged the same fraction.
        self.charge_mesh(
            host,
            crate::mesh_budget::Use {
                tokens: charge,
                cost_micros: 0,
            },
        );
        self.settle(host, charge);
        true
    }

    /// Log hook: the `tollgate_cache` access-log property.
    pub(super) fn cache_log_property<H: Host>(&self, host: &mut H) {
        if let Some(status) = self.cache.status {
            let _ = host.set_property("tollgate_cache", status.as_str().as_bytes());
        }
    }
}

/// Configure time: creates the cache's shared-data keys (the missing ones) and sets the gauges.
pub fn initialise_cache<H: Host>(vm: &super::Vm, host: &mut H) {
    let Some(settings) = vm.config.cache.as_deref() else {
        return;
    };
    let store = cache_store(settings, &*host);
    store.initialise();
    let totals = store.totals();
    for sample in gauges(totals) {
        vm.record(host, &sample);
    }
}

#[cfg(test)]
#[path = "response_cache_tests.rs"]
mod tests;
