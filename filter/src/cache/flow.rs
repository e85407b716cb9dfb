//! The cache's two moments in a request, as the pipeline calls them: [`look_up`] after admission
//! (answer locally on a hit) and [`store_answer`] when the miss's answer is complete — plus the
//! metric samples, headers and budget charge that go with them. Pure: shared data comes in as a
//! [`SharedStore`], metrics go out as [`Sample`]s.

use super::key::{decide, BypassReason, Decision, Lookup, RequestView};
use super::record::{Recorder, ResponseEnd, Skip};
use super::replay::{render, Rendered};
use super::settings::CacheSettings;
use super::store::{CacheStore, InsertOutcome, LookupOutcome, NotStored, Totals};
use crate::accounting::{tagged_name, MetricKind, Sample};
use crate::shared_store::SharedStore;
use crate::usage::Usage;

/// What the cache did, as the `x-tollgate-cache` header says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from the cache; no provider was called.
    Hit,
    /// Looked up and not found; the answer is stored when it qualifies.
    Miss,
    /// A cached route, but this request neither read nor wrote the cache.
    Bypass,
}

impl CacheStatus {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
        }
    }
}

/// A hit: the reply to send and what to account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Status, content type and body.
    pub reply: Rendered,
    /// Seconds since the entry was stored (the `age` header).
    pub age_seconds: u64,
    /// The usage of the request that filled the entry.
    pub usage: Option<Usage>,
    /// The model the stored answer named.
    pub model: String,
    /// The provider that gave the stored answer.
    pub provider: String,
}

impl Hit {
    /// The reply's headers (besides the correlation id the pipeline adds).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("content-type", self.reply.content_type.clone()),
            (super::STATUS_HEADER, CacheStatus::Hit.as_str().to_string()),
            ("age", self.age_seconds.to_string()),
        ]
    }
}

/// The result of [`look_up`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No rule covers the request.
    NotCovered,
    /// Covered, but not read nor written.
    Bypass(BypassReason),
    /// Answer locally.
    Hit(Box<Hit>),
    /// Go to the provider; capture the answer for this lookup.
    Miss(Lookup),
}

impl Step {
    /// The `x-tollgate-cache` value (`None`: no header).
    pub fn status(&self) -> Option<CacheStatus> {
        match self {
            Step::NotCovered => None,
            Step::Bypass(_) => Some(CacheStatus::Bypass),
            Step::Hit(_) => Some(CacheStatus::Hit),
            Step::Miss(_) => Some(CacheStatus::Miss),
        }
    }

    /// Metric samples for this step.
    pub fn samples(&self) -> Vec<Sample> {
        let counter = |name: String| Sample {
            name,
            kind: MetricKind::Counter,
            value: 1,
        };
        match self {
            Step::NotCovered => Vec::new(),
            Step::Bypass(reason) => vec![counter(tagged_name(
                "tollgate_cache_bypasses_total",
                &[("reason", reason.as_str())],
            ))],
            Step::Hit(_) => vec![counter("tollgate_cache_hits_total".into())],
            Step::Miss(_) => vec![counter("tollgate_cache_misses_total".into())],
        }
    }
}

/// The store over `store` as `settings` lay it out.
pub fn cache_store<'s>(settings: &CacheSettings, store: &'s dyn SharedStore) -> CacheStore<'s> {
    CacheStore::new(store, settings.geometry, settings.max_entry_bytes)
}

/// Decides and, when the request is cacheable, looks it up.
pub fn look_up(
    settings: &CacheSettings,
    store: &dyn SharedStore,
    view: &RequestView<'_>,
    now_ms: u64,
) -> Step {
    let lookup = match decide(settings, view) {
        Decision::NotCovered => return Step::NotCovered,
        Decision::Bypass(reason) => return Step::Bypass(reason),
        Decision::Lookup(lookup) => lookup,
    };
    let LookupOutcome::Hit(entry) = cache_store(settings, store).lookup(&lookup.key, now_ms) else {
        return Step::Miss(lookup);
    };
    match render(&entry, lookup.reply) {
        Some(reply) => Step::Hit(Box::new(Hit {
            reply,
            age_seconds: now_ms.saturating_sub(entry.stored_at_ms) / 1000,
            usage: entry.usage,
            model: entry.model,
            provider: entry.provider,
        })),
        // Stored in a shape this client cannot be given: go to the provider.
        None => Step::Miss(lookup),
    }
}

/// What [`store_answer`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Stored.
    Yes(InsertOutcome),
    /// The answer does not qualify.
    Skipped(Skip),
    /// The store did not take it.
    Refused(InsertOutcome),
}

impl Stored {
    /// The metric outcome label.
    pub fn outcome(&self) -> &'static str {
        match self {
            Stored::Yes(_) => "stored",
            Stored::Skipped(skip) => skip.as_str(),
            Stored::Refused(out) => out.result.err().map_or("stored", NotStored::as_str),
        }
    }

    /// Metric samples: the write outcome, evictions, and the gauges when the totals changed.
    pub fn samples(&self) -> Vec<Sample> {
        let mut out = vec![Sample {
            name: tagged_name(
                "tollgate_cache_writes_total",
                &[("outcome", self.outcome())],
            ),
            kind: MetricKind::Counter,
            value: 1,
        }];
        let insert = match self {
            Stored::Yes(i) | Stored::Refused(i) => i,
            Stored::Skipped(_) => return out,
        };
        for (reason, n) in [("lru", insert.evicted), ("expired", insert.expired)] {
            if n > 0 {
                out.push(Sample {
                    name: tagged_name("tollgate_cache_evictions_total", &[("reason", reason)]),
                    kind: MetricKind::Counter,
                    value: u64::from(n),
                });
            }
        }
        if let Some(t) = insert.totals {
            out.extend(gauges(t));
        }
        out
    }
}

/// The entries and bytes gauges for `totals`.
pub fn gauges(totals: Totals) -> [Sample; 2] {
    [
        Sample {
            name: "tollgate_cache_entries".into(),
            kind: MetricKind::Gauge,
            value: totals.entries,
        },
        Sample {
            name: "tollgate_cache_bytes".into(),
            kind: MetricKind::Gauge,
            value: totals.bytes,
        },
    ]
}

/// Ends a miss: stores its answer when it qualifies.
pub fn store_answer(
    settings: &CacheSettings,
    store: &dyn SharedStore,
    recorder: Recorder,
    end: &ResponseEnd<'_>,
) -> Stored {
    let lookup = recorder.lookup().clone();
    let entry = match recorder.finish(end) {
        Ok(entry) => entry,
        Err(skip) => return Stored::Skipped(skip),
    };
    let out = cache_store(settings, store).insert(&lookup.key, &entry, end.now_ms, lookup.ttl_ms);
    if out.result.is_ok() {
        Stored::Yes(out)
    } else {
        Stored::Refused(out)
    }
}

/// Tokens a hit charges to budgets: `fraction` of the stored request's input and output,
/// rounded up (0 when the fraction is 0 or the usage is unknown).
pub fn budget_charge(fraction: f64, usage: Option<&Usage>) -> u64 {
    let Some(u) = usage else {
        return 0;
    };
    let tokens = u.input_tokens.saturating_add(u.output_tokens) as f64;
    let charge = (tokens * fraction).ceil();
    if charge.is_finite() && charge > 0.0 {
        charge as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::key::Caller;
    use crate::cache::record::ResponseHead;
    use crate::cache::settings::parse;
    use crate::shared_store::MemoryStore;
    use crate::usage::classify_path;

    const CHAT: &str = "/v1/chat/completions";
    const ANSWER: &str = include_str!("../usage/fixtures/openai_chat.json");

    fn settings() -> CacheSettings {
        parse(
            br#"{"rules":[{"path_prefix":"/v1/"}],"ttl_seconds":60}"#,
            "cache",
        )
        .unwrap()
    }

    fn view<'a>(body: &'a str, user: &'a str) -> RequestView<'a> {
        RequestView {
            path: CHAT,
            api: classify_path(CHAT),
            model: "gpt-4o",
            mapped_model: "gpt-4o",
            body: body.as_bytes(),
            cache_control: None,
            opt_in: None,
            caller: Caller {
                user: Some(user),
                team: None,
            },
        }
    }

    fn fill(store: &MemoryStore, s: &CacheSettings, lookup: Lookup, now_ms: u64) -> Stored {
        let head = ResponseHead {
            status: 200,
            content_type: Some("application/json"),
            content_encoding: None,
        };
        let mut r = Recorder::start(lookup, &head, s.max_entry_bytes);
        r.feed(ANSWER.as_bytes());
        let end = ResponseEnd {
            complete: true,
            usage: Some(Usage::from_openai_chat(1117, 46, Some(1163), 1024, 0)),
            provider: "openai",
            model: "gpt-4o-2024-08-06",
            now_ms,
        };
        store_answer(s, store, r, &end)
    }

    #[test]
    fn a_second_identical_request_is_a_hit_for_the_same_scope_only() {
        let s = settings();
        let store = MemoryStore::default();
        let body =
            r#"{"model":"gpt-4o","temperature":0,"messages":[{"role":"user","content":"hi"}]}"#;
        let Step::Miss(lookup) = look_up(&s, &store, &view(body, "alice"), 1_000) else {
            panic!("first request misses");
        };
        let stored = fill(&store, &s, lookup, 2_000);
        assert_eq!(stored.outcome(), "stored");
        let samples = stored.samples();
        assert!(samples
            .iter()
            .any(|x| x.name == "tollgate_cache_bytes" && x.value > 0));
        let Step::Hit(hit) = look_up(&s, &store, &view(body, "alice"), 5_500) else {
            panic!("second request hits");
        };
        assert_eq!(hit.reply.body, ANSWER.as_bytes());
        assert_eq!(hit.age_seconds, 3);
        assert_eq!(hit.provider, "openai");
        assert_eq!(hit.usage.unwrap().total_tokens, 1163);
        assert!(hit
            .headers()
            .contains(&("x-tollgate-cache", "hit".to_string())));
        assert!(matches!(
            look_up(&s, &store, &view(body, "bob"), 5_500),
            Step::Miss(_)
        ));
        // After the TTL it is gone.
        assert!(matches!(
            look_up(&s, &store, &view(body, "alice"), 62_001),
            Step::Miss(_)
        ));
    }

    #[test]
    fn steps_name_their_header_and_metrics() {
        assert_eq!(Step::NotCovered.status(), None);
        assert!(Step::NotCovered.samples().is_empty());
        let bypass = Step::Bypass(BypassReason::ClientNoCache);
        assert_eq!(bypass.status(), Some(CacheStatus::Bypass));
        assert_eq!(
            bypass.samples()[0].name,
            "reason=.=client_no_cache;.;tollgate_cache_bypasses_total"
        );
        assert_eq!(
            Stored::Skipped(Skip::Incomplete).samples()[0].name,
            "outcome=.=incomplete;.;tollgate_cache_writes_total"
        );
    }

    #[test]
    fn a_hit_charges_the_configured_fraction() {
        let u = Usage::from_openai_chat(100, 50, None, 0, 0);
        assert_eq!(budget_charge(0.0, Some(&u)), 0);
        assert_eq!(budget_charge(0.1, Some(&u)), 15);
        assert_eq!(budget_charge(0.01, Some(&u)), 2, "rounded up");
        assert_eq!(budget_charge(1.0, Some(&u)), 150);
        assert_eq!(budget_charge(1.0, None), 0);
    }
}
