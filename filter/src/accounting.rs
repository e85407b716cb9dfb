//! What one finished LLM request reports: metric samples (with tags encoded in the stat name
//! for Envoy's tag extractors) and access-log fields. Pure: the host layer defines and records
//! the metrics and sets the properties.
//!
//! Stat names carry their tags in Istio's encoding, tags first:
//! `provider=.=openai;.;model=.=gemini-2.0-flash;.;token_type=.=input;.;tollgate_tokens_total`.
//! One extractor per tag name, `(<tag>=\.=(.*?);\.;)` — exactly what Istio generates for
//! `extraStatTags` — removes each `<tag>=.=<value>;.;` from the name and makes the value a label,
//! so `/stats/prometheus` shows
//! `tollgate_tokens_total{provider="openai",model="gemini-2.0-flash",token_type="input"}`: the
//! value keeps its dots (`envoy/observability/stats-tags.yaml` has the extractors).

use crate::usage::{ApiKind, UsageOutcome};

/// A metric kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// Monotonic counter.
    Counter,
    /// Histogram of recorded values.
    Histogram,
    /// A value that goes up and down (set, not added).
    Gauge,
}

/// One value to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Full stat name including encoded tags.
    pub name: String,
    /// Counter or histogram.
    pub kind: MetricKind,
    /// The increment (counter) or recorded value (histogram).
    pub value: u64,
}

/// Tag names used in stat names; `stats-tags.yaml` has one extractor per name (Envoy gives each
/// extractor one tag name), and Istio's `extraStatTags` lists the same names.
pub const TAG_NAMES: &[&str] = &[
    "provider",
    "model",
    "token_type",
    "status_class",
    "usage",
    "user",
    "reason",
    "dimension",
    "threshold",
    "kind",
    "place",
    "outcome",
    "team",
];

/// Makes a tag value safe inside a stat name while keeping it readable: printable ASCII (dots,
/// colons and slashes included, so `gpt-4.1`, `llama3:8b` and `openai/gpt-4o` stay as they are)
/// except `;`, which ends a tag in the encoding; anything else becomes `_`. At most 64
/// characters; empty becomes `unknown`.
pub fn sanitize_tag_value(value: &str) -> String {
    // The common case (a clean, short value) is one copy: this runs for every tag of every
    // request metric defined and for every model label.
    if !value.is_empty()
        && value.len() <= 64
        && value.bytes().all(|b| b.is_ascii_graphic() && b != b';')
    {
        return value.to_string();
    }
    let mut out: String = value
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_graphic() && c != ';' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        out.push_str("unknown");
    }
    out
}

/// Builds `tag1=.=value1;.;tag2=.=value2;.;base` (Istio's tag encoding, tags first so that the
/// name left after extraction is exactly `base`).
pub fn tagged_name(base: &str, tags: &[(&str, &str)]) -> String {
    let mut name = String::with_capacity(base.len() + tags.len() * 24);
    for (k, v) in tags {
        name.push_str(k);
        name.push_str("=.=");
        name.push_str(&sanitize_tag_value(v));
        name.push_str(";.;");
    }
    name.push_str(base);
    name
}

/// `2xx`, `4xx`, `5xx`… for a status code (`none` when no response was received).
pub fn status_class(status: u32) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}

/// The provider family an API kind belongs to (when no failover route names one).
pub fn provider_for(kind: ApiKind) -> &'static str {
    match kind {
        ApiKind::OpenAiChat | ApiKind::OpenAiResponses | ApiKind::OpenAiEmbeddings => "openai",
        ApiKind::Anthropic => "anthropic",
        ApiKind::Gemini => "gemini",
        ApiKind::OllamaChat => "ollama",
    }
}

/// Bounds the number of distinct model labels; later models are reported as `other`.
#[derive(Debug, Clone, Default)]
pub struct ModelLabels {
    /// Sorted, for a binary search per request; a label is inserted at most `cap` times per VM.
    seen: Vec<String>,
    cap: usize,
}

impl ModelLabels {
    /// Allows up to `cap` distinct model labels.
    pub fn new(cap: usize) -> Self {
        Self {
            seen: Vec::new(),
            cap,
        }
    }

    /// The label to use for `model`.
    pub fn label(&mut self, model: &str) -> String {
        let clean = sanitize_tag_value(model);
        match self.seen.binary_search(&clean) {
            Ok(_) => clean,
            Err(at) if self.seen.len() < self.cap => {
                self.seen.insert(at, clean.clone());
                clean
            }
            Err(_) => "other".to_string(),
        }
    }
}

/// Everything known about one finished LLM request.
#[derive(Debug, Clone)]
pub struct RequestRecord<'a> {
    /// Provider name (label).
    pub provider: &'a str,
    /// Model label (already bounded by [`ModelLabels`]).
    pub model: &'a str,
    /// The caller, when it is to be a label.
    pub user_label: Option<&'a str>,
    /// The team of the request's virtual API key (already bounded by `keys.max_teams`).
    pub team_label: Option<&'a str>,
    /// Response status (0 when none).
    pub status: u32,
    /// Usage outcome.
    pub outcome: &'a UsageOutcome,
    /// Cost in USD, when priced.
    pub cost_usd: Option<f64>,
    /// Time to first token in ms, when seen.
    pub ttft_ms: Option<u64>,
    /// Request duration in ms.
    pub duration_ms: u64,
}

/// The tags every metric of one request carries: its label set. The VM keeps the handles of
/// each label set's metrics, so a request whose label set was seen before builds no stat name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Labels<'a> {
    /// Provider name.
    pub provider: &'a str,
    /// Model label.
    pub model: &'a str,
    /// The caller, when it is a label.
    pub user: Option<&'a str>,
    /// The team, when it is a label.
    pub team: Option<&'a str>,
}

impl Labels<'_> {
    fn tags(&self) -> Vec<(&str, &str)> {
        let mut tags = vec![("provider", self.provider), ("model", self.model)];
        if let Some(user) = self.user {
            tags.push(("user", user));
        }
        if let Some(team) = self.team {
            tags.push(("team", team));
        }
        tags
    }

    /// A key naming this label set exactly (each part length-prefixed).
    pub fn key(&self) -> String {
        let mut key = String::with_capacity(64);
        for part in [Some(self.provider), Some(self.model), self.user, self.team] {
            match part {
                Some(p) => {
                    key.push_str(&p.len().to_string());
                    key.push(':');
                    key.push_str(p);
                }
                None => key.push('-'),
            }
        }
        key
    }
}

/// One metric of a request: a base name and up to two tags of its own after the label set's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestMetric {
    /// The stat name left after tag extraction.
    pub base: &'static str,
    /// The metric's own tags.
    pub tags: [Option<(&'static str, &'static str)>; 2],
    /// Counter or histogram.
    pub kind: MetricKind,
}

impl RequestMetric {
    /// The full stat name under `labels`.
    pub fn name(&self, labels: &Labels<'_>) -> String {
        let mut tags = labels.tags();
        tags.extend(self.tags.iter().flatten().copied());
        tagged_name(self.base, &tags)
    }
}

/// One value of a request metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestSample {
    /// Which metric.
    pub metric: RequestMetric,
    /// The increment (counter) or recorded value (histogram).
    pub value: u64,
}

impl RequestRecord<'_> {
    /// The label set of this request's metrics.
    pub fn labels(&self) -> Labels<'_> {
        Labels {
            provider: self.provider,
            model: self.model,
            user: self.user_label,
            team: self.team_label,
        }
    }
}

/// The samples for one finished request, by name ([`request_samples`] and the truncation
/// counter).
pub fn samples(r: &RequestRecord<'_>) -> Vec<Sample> {
    let labels = r.labels();
    let mut out: Vec<Sample> = request_samples(r)
        .into_iter()
        .map(|s| Sample {
            name: s.metric.name(&labels),
            kind: s.metric.kind,
            value: s.value,
        })
        .collect();
    out.extend(truncation_sample(r));
    out
}

/// The samples of one finished request under its label set ([`RequestRecord::labels`]).
pub fn request_samples(r: &RequestRecord<'_>) -> Vec<RequestSample> {
    let sample = |base: &'static str,
                  kind: MetricKind,
                  tags: [Option<(&'static str, &'static str)>; 2],
                  value: u64| RequestSample {
        metric: RequestMetric { base, tags, kind },
        value,
    };
    let counter = MetricKind::Counter;
    let histogram = MetricKind::Histogram;
    // A provider error carries no usage and is not billed: count it, not its estimate.
    let unbilled_error = r.outcome.reported_usage.is_none() && !(200..300).contains(&r.status);
    let usage_kind = if unbilled_error {
        "none"
    } else if r.outcome.estimated {
        "estimated"
    } else {
        "reported"
    };
    let mut out = Vec::with_capacity(12);
    out.push(sample(
        "tollgate_llm_requests_total",
        counter,
        [
            Some(("status_class", status_class(r.status))),
            Some(("usage", usage_kind)),
        ],
        1,
    ));
    if let (Some(u), false) = (r.outcome.usage, unbilled_error) {
        let types = [
            ("input", u.input_tokens),
            ("output", u.output_tokens),
            ("cached_input", u.cached_input_tokens),
            ("cache_creation_input", u.cache_creation_input_tokens),
            ("reasoning", u.reasoning_tokens),
        ];
        for (ty, n) in types {
            if n > 0 || ty == "input" || ty == "output" {
                out.push(sample(
                    "tollgate_tokens_total",
                    counter,
                    [Some(("token_type", ty)), None],
                    n,
                ));
            }
        }
        for (ty, n) in [("input", u.input_tokens), ("output", u.output_tokens)] {
            out.push(sample(
                "gen_ai_client_token_usage",
                histogram,
                [Some(("token_type", ty)), None],
                n,
            ));
        }
        if let (Some(ttft), true) = (r.ttft_ms, u.output_tokens > 1) {
            let generation_ms = r.duration_ms.saturating_sub(ttft);
            let per_token_us = generation_ms.saturating_mul(1000) / (u.output_tokens - 1);
            out.push(sample(
                "gen_ai_server_time_per_output_token_us",
                histogram,
                [None, None],
                per_token_us,
            ));
        }
    }
    if let Some(cost) = r.cost_usd {
        let micro = (cost * 1_000_000.0).round();
        if micro.is_finite() && micro >= 0.0 {
            out.push(sample(
                "tollgate_cost_microdollars_total",
                counter,
                [None, None],
                micro as u64,
            ));
        }
    }
    if let Some(ttft) = r.ttft_ms {
        out.push(sample(
            "gen_ai_server_time_to_first_token_ms",
            histogram,
            [None, None],
            ttft,
        ));
    }
    out.push(sample(
        "gen_ai_client_operation_duration_ms",
        histogram,
        [None, None],
        r.duration_ms,
    ));
    out
}

/// The counter of a successful response that ended without its terminator (tagged by provider
/// only, so not under the request's label set).
pub fn truncation_sample(r: &RequestRecord<'_>) -> Option<Sample> {
    (!r.outcome.complete && (200..300).contains(&r.status)).then(|| Sample {
        name: tagged_name(
            "tollgate_upstream_errors_total",
            &[("provider", r.provider), ("reason", "truncated")],
        ),
        kind: MetricKind::Counter,
        value: 1,
    })
}

/// Access-log properties (name → value); each becomes `%FILTER_STATE(wasm.<name>:PLAIN)%`.
pub fn access_log_fields(r: &RequestRecord<'_>, user: Option<&str>) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("tollgate_provider", r.provider.to_string()),
        ("tollgate_model", r.model.to_string()),
        ("tollgate_usage_complete", r.outcome.complete.to_string()),
        ("tollgate_usage_estimated", r.outcome.estimated.to_string()),
    ];
    if let Some(user) = user {
        f.push(("tollgate_user", user.to_string()));
    }
    if let Some(u) = r.outcome.usage {
        f.push(("tollgate_input_tokens", u.input_tokens.to_string()));
        f.push(("tollgate_output_tokens", u.output_tokens.to_string()));
        f.push(("tollgate_cached_tokens", u.cached_input_tokens.to_string()));
        f.push(("tollgate_total_tokens", u.total_tokens.to_string()));
    }
    if let Some(cost) = r.cost_usd {
        f.push(("tollgate_cost_usd", format!("{cost:.6}")));
    }
    if let Some(ttft) = r.ttft_ms {
        f.push(("tollgate_ttft_ms", ttft.to_string()));
    }
    f
}

/// The `Server-Timing` header value: tollgate's own time in its callbacks so far (`own_ns`) and,
/// when Envoy's router reported it (`x-envoy-upstream-service-time`, ms), the upstream's:
/// `tollgate;dur=0.123;desc="filter", upstream;dur=42`.
pub fn server_timing(own_ns: u64, upstream_ms: Option<&str>) -> String {
    let micros = own_ns / 1_000;
    let mut value = format!(
        "tollgate;dur={}.{:03};desc=\"filter\"",
        micros / 1_000,
        micros % 1_000
    );
    if let Some(ms) = upstream_ms
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
    {
        value.push_str(", upstream;dur=");
        value.push_str(ms);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_timing_reports_own_time_in_ms_and_a_clean_upstream_time() {
        assert_eq!(
            server_timing(1_234_567, Some("42")),
            "tollgate;dur=1.234;desc=\"filter\", upstream;dur=42"
        );
        assert_eq!(
            server_timing(999, None),
            "tollgate;dur=0.000;desc=\"filter\""
        );
        assert_eq!(
            server_timing(5_000_000, Some("4, 2")),
            "tollgate;dur=5.000;desc=\"filter\"",
            "a malformed upstream value is left out, not echoed"
        );
    }
    use crate::usage::Usage;

    fn outcome(estimated: bool, complete: bool) -> UsageOutcome {
        UsageOutcome {
            usage: Some(Usage {
                input_tokens: 10,
                output_tokens: 21,
                total_tokens: 31,
                ..Usage::default()
            }),
            complete,
            estimated,
            ..UsageOutcome::default()
        }
    }

    #[test]
    fn tag_values_are_sanitized() {
        assert_eq!(sanitize_tag_value("gpt-4.1/mini"), "gpt-4.1/mini");
        assert_eq!(sanitize_tag_value("gemini-2.0-flash"), "gemini-2.0-flash");
        assert_eq!(sanitize_tag_value("llama3:8b"), "llama3:8b");
        assert_eq!(sanitize_tag_value("a;.;b c\u{e9}"), "a_._b_c_");
        assert_eq!(sanitize_tag_value(""), "unknown");
        assert_eq!(sanitize_tag_value(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn tags_use_istios_encoding_with_the_name_last() {
        assert_eq!(
            tagged_name("tollgate_requests_total", &[]),
            "tollgate_requests_total"
        );
        assert_eq!(
            tagged_name("m", &[("provider", "openai"), ("model", "gpt-4.1")]),
            "provider=.=openai;.;model=.=gpt-4.1;.;m"
        );
        // A value cannot end its tag early.
        assert_eq!(
            tagged_name("m", &[("model", "x;.;provider=.=y")]),
            "model=.=x_._provider=.=y;.;m"
        );
    }

    #[test]
    fn token_counters_carry_provider_model_and_type() {
        let o = outcome(false, true);
        let r = RequestRecord {
            provider: "openai",
            model: "gpt-4o-mini",
            user_label: None,
            team_label: None,
            status: 200,
            outcome: &o,
            cost_usd: Some(0.0123),
            ttft_ms: Some(40),
            duration_ms: 240,
        };
        let s = samples(&r);
        let find = |n: &str| s.iter().find(|x| x.name == n).map(|x| x.value);
        assert_eq!(
            find("provider=.=openai;.;model=.=gpt-4o-mini;.;token_type=.=input;.;tollgate_tokens_total"),
            Some(10)
        );
        assert_eq!(
            find("provider=.=openai;.;model=.=gpt-4o-mini;.;token_type=.=output;.;tollgate_tokens_total"),
            Some(21)
        );
        assert_eq!(
            find("provider=.=openai;.;model=.=gpt-4o-mini;.;tollgate_cost_microdollars_total"),
            Some(12300)
        );
        assert_eq!(
            find("provider=.=openai;.;model=.=gpt-4o-mini;.;gen_ai_server_time_to_first_token_ms"),
            Some(40)
        );
        assert_eq!(
            find(
                "provider=.=openai;.;model=.=gpt-4o-mini;.;gen_ai_server_time_per_output_token_us"
            ),
            Some(10_000)
        );
        assert_eq!(
            find("provider=.=openai;.;model=.=gpt-4o-mini;.;status_class=.=2xx;.;usage=.=reported;.;tollgate_llm_requests_total"),
            Some(1)
        );
        assert!(
            find("provider=.=openai;.;reason=.=truncated;.;tollgate_upstream_errors_total")
                .is_none()
        );
    }

    #[test]
    fn truncated_stream_counts_an_upstream_error_and_estimate() {
        let o = outcome(true, false);
        let r = RequestRecord {
            provider: "anthropic",
            model: "claude",
            user_label: Some("alice"),
            team_label: Some("search"),
            status: 200,
            outcome: &o,
            cost_usd: None,
            ttft_ms: None,
            duration_ms: 5,
        };
        let s = samples(&r);
        assert!(s.iter().any(|x| x.name
            == "provider=.=anthropic;.;reason=.=truncated;.;tollgate_upstream_errors_total"));
        assert!(s.iter().any(|x| x.name
            == "provider=.=anthropic;.;model=.=claude;.;user=.=alice;.;team=.=search;.;status_class=.=2xx;.;usage=.=estimated;.;tollgate_llm_requests_total"));
        assert!(s
            .iter()
            .filter(|x| x.name.ends_with("tollgate_tokens_total"))
            .all(|x| x.name.contains("team=.=search;.;")));
        let f = access_log_fields(&r, Some("alice"));
        assert!(f.contains(&("tollgate_usage_complete", "false".to_string())));
        assert!(f.contains(&("tollgate_user", "alice".to_string())));
    }

    #[test]
    fn provider_errors_count_as_requests_without_tokens() {
        let o = UsageOutcome {
            usage: Some(Usage {
                input_tokens: 9,
                ..Usage::default()
            }),
            estimated: true,
            ..UsageOutcome::default()
        };
        let r = RequestRecord {
            provider: "openai",
            model: "m",
            user_label: None,
            team_label: None,
            status: 500,
            outcome: &o,
            cost_usd: None,
            ttft_ms: None,
            duration_ms: 3,
        };
        let s = samples(&r);
        assert!(s.iter().any(|x| x
            .name
            .ends_with("status_class=.=5xx;.;usage=.=none;.;tollgate_llm_requests_total")));
        assert!(!s.iter().any(|x| x.name.ends_with("tollgate_tokens_total")));
    }

    #[test]
    fn model_labels_are_bounded() {
        let mut m = ModelLabels::new(2);
        assert_eq!(m.label("a"), "a");
        assert_eq!(m.label("b"), "b");
        assert_eq!(m.label("c"), "other");
        assert_eq!(m.label("a"), "a");
    }
}
