//! Virtual API keys in the pipeline: the VM's key set (inline, or fetched through a cluster and
//! kept fresh from the root's tick) and the steps a request with a key goes through —
//! authentication before JWT, the model check on the body, the key's own budget next to the
//! user budgets, the access-log fields, the `team` label and the status section. What a key is
//! worth is decided by [`crate::keys`]; this module applies it through the [`Host`].

use std::sync::Arc;

use super::auth::AuthStep;
use super::host::{now_ms, Host};
use super::{Exchange, Flow, Phase};
use crate::accounting::tagged_name;
use crate::budget::Admission;
use crate::jwt::RequestEdit;
use crate::keys::{self, ApiKeySet, KeyCaller, KeyOutcome, KeySettings, KeySource, TeamLabels};
use crate::refresh::{Availability, Fetcher};
use crate::status::KeyStatus;
use crate::usage::RequestInfo;

/// Output tokens reserved against a key budget when neither the request nor `budgets` names a
/// limit (the `budgets.default_max_tokens` default).
pub const DEFAULT_MAX_TOKENS: u64 = 1024;

/// The key set of one VM.
pub struct KeySetRuntime {
    /// The validated settings.
    pub settings: Arc<KeySettings>,
    /// The remote set's fetch state (`None` for inline keys).
    fetcher: Option<Fetcher<ApiKeySet>>,
    /// Fetches in flight (callout tokens; one or two at a time, so a `Vec`: a `BTreeSet<u32>`
    /// compiled 7 KB of `.wasm` for this alone).
    in_flight: Vec<u32>,
    /// Team metric labels seen so far.
    teams: TeamLabels,
}

impl KeySetRuntime {
    /// Creates the runtime at `now_ms`; a remote set starts empty and wants a fetch at once.
    pub fn new(settings: Arc<KeySettings>, now_ms: u64) -> Self {
        let fetcher = match &settings.source {
            KeySource::Remote(source) => Some(Fetcher::new(source.clone(), now_ms)),
            KeySource::Inline(_) => None,
        };
        let teams = TeamLabels::new(settings.max_teams);
        Self {
            settings,
            fetcher,
            in_flight: Vec::new(),
            teams,
        }
    }

    /// True for a remote set (the root then needs its tick).
    pub fn has_remote(&self) -> bool {
        self.fetcher.is_some()
    }

    /// Whether keys can be checked at `now_ms`.
    pub fn availability(&self, now_ms: u64) -> Availability<ApiKeySet> {
        match (&self.settings.source, &self.fetcher) {
            (KeySource::Inline(set), _) => Availability::Ready(Arc::clone(set)),
            (KeySource::Remote(_), Some(f)) => f.availability(now_ms),
            (KeySource::Remote(_), None) => Availability::Unavailable,
        }
    }

    /// The key set in force, if any.
    pub fn current(&self, now_ms: u64) -> Option<Arc<ApiKeySet>> {
        match self.availability(now_ms) {
            Availability::Ready(set) => Some(set),
            _ => None,
        }
    }

    /// The bounded metric label of `team`.
    pub fn team_label(&mut self, team: &str) -> String {
        self.teams.label(team)
    }

    /// Starts a fetch of the remote set from the current context: the callout token, or
    /// `None` for inline keys or when the host refused the call.
    pub fn dispatch<H: Host>(&mut self, host: &mut H, now_ms: u64) -> Option<u32> {
        let token = super::fetch::dispatch(host, self.fetcher.as_mut()?, now_ms)?;
        if !self.in_flight.contains(&token) {
            self.in_flight.push(token);
        }
        Some(token)
    }

    /// Applies the answer of callout `token` when it is a key set fetch; true when it was.
    pub fn complete<H: Host>(
        &mut self,
        host: &mut H,
        token: u32,
        body_size: usize,
        now_ms: u64,
    ) -> bool {
        let Some(at) = self.in_flight.iter().position(|t| *t == token) else {
            return false;
        };
        self.in_flight.swap_remove(at);
        let Some(fetcher) = self.fetcher.as_mut() else {
            return true;
        };
        let answer = super::fetch::answer(&*host, body_size);
        let report = fetcher.on_fetch_result(now_ms, answer.as_deref().map_err(Clone::clone));
        match (&report.error, report.keys_changed) {
            (Some(err), _) => host.log(
                log::Level::Warn,
                &format!("tollgate: key set: {err}; keeping the last good set"),
            ),
            (None, true) => {
                let count = fetcher.document().map_or(0, |s| s.len());
                host.log(
                    log::Level::Info,
                    &format!("tollgate: key set updated ({count} keys)"),
                );
            }
            (None, false) => {}
        }
        for skipped in report.skipped {
            host.log(
                log::Level::Warn,
                &format!("tollgate: key set: entry skipped: {}", skipped.reason),
            );
        }
        true
    }

    /// An unknown key was presented at `now_ms`: true when an early refetch may start.
    pub fn on_unknown_key(&mut self, now_ms: u64) -> bool {
        self.fetcher
            .as_mut()
            .is_some_and(|f| !f.is_fetching() && f.on_demand(now_ms))
    }

    /// Periodic work from the root context: start the fetch when it is due.
    pub fn tick<H: Host>(&mut self, host: &mut H, now_ms: u64) {
        if self.fetcher.as_ref().is_some_and(|f| f.needs_fetch(now_ms)) {
            let _ = self.dispatch(host, now_ms);
        }
    }
}

/// A request's key: the caller and the reservation against the key's own budget.
#[derive(Debug, Clone)]
pub struct KeyUse {
    /// The key and its entry.
    pub caller: KeyCaller,
    /// The reservation to settle, when the key has budgets.
    pub admission: Option<Admission>,
}

impl Exchange {
    /// The key step of authentication, run before JWT. `None`: the request presents no key
    /// (or keys are off): JWT or Envoy's `jwt_authn` decide as without keys.
    pub(super) fn authenticate_key<H: Host>(&mut self, host: &mut H) -> Option<AuthStep> {
        let vm = std::rc::Rc::clone(&self.vm);
        let runtime = vm.api_keys.as_ref()?;
        let headers = self.req_headers.all(host);
        let now = now_ms(host);
        let (outcome, settings) = {
            let rt = runtime.try_borrow().ok()?;
            let outcome = keys::authenticate(
                &rt.settings,
                headers.as_ref(),
                &rt.availability(now),
                now / 1000,
            );
            (outcome, Arc::clone(&rt.settings))
        };
        match outcome {
            KeyOutcome::Absent => {
                let other_auth = vm.config.jwt.is_some() || vm.config.envoy_jwt.is_some();
                if other_auth || !settings.required {
                    return None;
                }
                self.count(
                    host,
                    tagged_name(
                        "tollgate_key_denied_total",
                        &[("reason", "missing_api_key")],
                    ),
                );
                self.reply(host, &keys::missing_reply(&settings));
                Some(AuthStep::Replied)
            }
            KeyOutcome::Allow(caller) => {
                // Claim headers a JWT would set are the client's to spoof here: remove them.
                let mut edits: Vec<RequestEdit> = vm
                    .config
                    .jwt
                    .as_ref()
                    .map(|j| {
                        j.headers_to_remove()
                            .into_iter()
                            .map(RequestEdit::RemoveHeader)
                            .collect()
                    })
                    .unwrap_or_default();
                if let Some(e) = vm.config.envoy_jwt.as_ref() {
                    for (_, header) in &e.claims_to_headers {
                        edits.push(RequestEdit::RemoveHeader(header.clone()));
                    }
                }
                edits.extend(caller.edits.iter().cloned());
                for edit in edits {
                    if let RequestEdit::RemoveHeader(name) = edit {
                        self.req_headers.remove(host, &name);
                    }
                }
                let team = runtime
                    .try_borrow_mut()
                    .map(|mut rt| rt.team_label(&caller.entry.team))
                    .unwrap_or_else(|_| "other".into());
                self.count(
                    host,
                    tagged_name("tollgate_key_allowed_total", &[("team", &team)]),
                );
                self.user = Some(caller.user().to_string());
                // The key's team is the caller's class for mesh-wide budgets.
                self.class = Some(caller.entry.team.clone()).filter(|t| !t.is_empty());
                self.key = Some(KeyUse {
                    caller,
                    admission: None,
                });
                self.phase = Phase::Forwarded;
                Some(AuthStep::Proceed)
            }
            KeyOutcome::Wait { .. } => {
                let token = if matches!(self.phase, Phase::WaitingForKeys { .. }) {
                    None
                } else {
                    runtime
                        .try_borrow_mut()
                        .ok()
                        .and_then(|mut rt| rt.dispatch(host, now))
                };
                match token {
                    Some(token) => {
                        self.phase = Phase::WaitingForKeys {
                            token,
                            kid_refetch: false,
                        };
                        Some(AuthStep::Waiting)
                    }
                    None => {
                        let reply = keys::unavailable_reply();
                        Some(self.deny_key(host, "key_set_unavailable", "", &reply))
                    }
                }
            }
            KeyOutcome::Deny(denial) => {
                let refetched = matches!(
                    self.phase,
                    Phase::WaitingForKeys {
                        kid_refetch: true,
                        ..
                    }
                );
                if denial.unknown_remote && !refetched {
                    let token = runtime.try_borrow_mut().ok().and_then(|mut rt| {
                        if rt.on_unknown_key(now) {
                            rt.dispatch(host, now)
                        } else {
                            None
                        }
                    });
                    if let Some(token) = token {
                        self.phase = Phase::WaitingForKeys {
                            token,
                            kid_refetch: true,
                        };
                        return Some(AuthStep::Waiting);
                    }
                }
                Some(self.deny_key(host, denial.reason, &denial.shown, &denial.reply))
            }
        }
    }

    fn deny_key<H: Host>(
        &mut self,
        host: &mut H,
        reason: &str,
        shown: &str,
        reply: &crate::error_reply::ErrorReply,
    ) -> AuthStep {
        self.count(
            host,
            tagged_name("tollgate_key_denied_total", &[("reason", reason)]),
        );
        if !shown.is_empty() {
            self.log(
                host,
                log::Level::Info,
                &format!("API key refused ({reason}): {shown}"),
            );
        }
        self.reply(host, reply);
        AuthStep::Replied
    }

    /// A key fetch this exchange started answered: apply it (the caller authenticates again).
    pub(super) fn complete_key_fetch<H: Host>(&mut self, host: &mut H, token: u32, size: usize) {
        if let Some(runtime) = self.vm.api_keys.as_ref() {
            if let Ok(mut rt) = runtime.try_borrow_mut() {
                let now = now_ms(host);
                rt.complete(host, token, size, now);
            }
        }
    }

    /// The model check on the request body: `Some` when the key may not use the model (403).
    pub(super) fn check_key_model<H: Host>(
        &mut self,
        host: &mut H,
        info: &RequestInfo,
    ) -> Option<Flow> {
        let key = self.key.as_ref()?;
        let model = info.model.as_deref()?;
        let reply = key.caller.check_model(model).err()?;
        self.count(
            host,
            tagged_name(
                "tollgate_key_denied_total",
                &[("reason", "model_not_allowed")],
            ),
        );
        Some(self.reply(host, &reply))
    }

    /// Reserves the estimate against the key's own budget: `Some` when it refuses (429).
    pub(super) fn admit_key<H: Host>(&mut self, host: &mut H) -> Option<Flow> {
        let key = self.key.as_ref()?;
        let budgets = key.caller.entry.budgets.as_ref()?;
        let default_max = self
            .vm
            .config
            .budgets
            .as_ref()
            .map_or(DEFAULT_MAX_TOKENS, |b| b.default_max_tokens);
        let estimate = self.info.as_ref().map_or(default_max, |i| {
            i.prompt_estimate
                .saturating_add(i.max_tokens.unwrap_or(default_max))
        });
        let now = host.now_ns() / 1_000_000_000;
        match budgets.admit(&*host, &key.caller.entry.id, now, estimate) {
            Ok(admission) => {
                if let Some(k) = self.key.as_mut() {
                    k.admission = Some(admission);
                }
                None
            }
            Err(refusal) => Some(self.refuse_over_budget(host, &refusal)),
        }
    }

    /// Settles the key's reservation with `actual` tokens.
    pub(super) fn settle_key<H: Host>(&mut self, host: &mut H, actual: u64) {
        let Some(key) = self.key.as_mut() else {
            return;
        };
        let (Some(budgets), Some(admission)) =
            (key.caller.entry.budgets.as_ref(), key.admission.take())
        else {
            return;
        };
        let now = host.now_ns() / 1_000_000_000;
        let _ = budgets.settle(
            &*host,
            &key.caller.entry.id,
            now,
            admission.reserved,
            actual,
        );
    }

    /// The key's access-log properties (`tollgate_key_id`, `tollgate_team`).
    pub(super) fn key_log_fields<H: Host>(&self, host: &mut H) {
        if let Some(key) = self.key.as_ref() {
            for (name, value) in key.caller.access_log_fields() {
                let _ = host.set_property(name, value.as_bytes());
            }
        }
    }

    /// The `team` metric label of this request's key (bounded by `keys.max_teams`).
    pub(super) fn team_label(&self) -> Option<String> {
        let key = self.key.as_ref()?;
        let runtime = self.vm.api_keys.as_ref()?;
        let label = runtime
            .try_borrow_mut()
            .map(|mut rt| rt.team_label(&key.caller.entry.team))
            .unwrap_or_else(|_| "other".into());
        Some(label)
    }

    /// The calling key for the status endpoint, with its budget windows at `now_s`.
    pub(super) fn key_status<'a, H: Host>(&'a self, host: &H, now_s: u64) -> Option<KeyStatus<'a>> {
        let entry = &self.key.as_ref()?.caller.entry;
        let states = entry
            .budgets
            .as_ref()
            .map(|b| b.snapshot(host, &entry.id, now_s))
            .unwrap_or_default();
        Some(KeyStatus::new(entry, &states, now_s))
    }
}
