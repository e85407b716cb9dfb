//! `tollgate-check`: checks an Envoy bootstrap that loads tollgate before it ships.
//!
//! It finds every tollgate Wasm filter (listener HTTP filter chains and cluster upstream filter
//! chains), validates each one's JSON with the code the filter itself runs
//! ([`tollgate::config::FilterConfig::parse`], with the VM's environment variables as Envoy
//! would give them), and cross-checks the JSON against the bootstrap: the clusters it names exist,
//! the `cluster_header` route exists, walked routes have an aggregate cluster whose members, order
//! and endpoint metadata match, the upstream stage is there with the same catalog and VM id,
//! retries can reach every provider and are not refused by the retry circuit breaker, and the Wasm
//! options tollgate needs are set. Every finding names the file, the line and the field.

pub mod bootstrap;
mod checks;
pub mod jsonpos;
pub mod schema;
pub mod yaml;

use std::fmt;
use std::path::Path;

pub use checks::check_bootstrap;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Works, but not as recommended (fails the check with `--deny-warnings`).
    Warning,
    /// Refused by Envoy or tollgate, or broken at run time.
    Error,
}

/// Which check produced a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The file is not YAML/JSON or not an Envoy bootstrap.
    Parse,
    /// The plugin configuration, validated by the filter's own code.
    PluginConfig,
    /// `allow_on_headers_stop_iteration` on the Wasm filter.
    StopIteration,
    /// `failure_policy` / `fail_open` on the Wasm filter.
    FailurePolicy,
    /// `stage` matches where the filter sits.
    Stage,
    /// A cluster the configuration names exists.
    ClusterExists,
    /// A route takes its cluster from tollgate's `cluster_header`.
    ClusterHeaderRoute,
    /// The cluster_header route's retry policy walks every provider.
    RetryPolicy,
    /// A walked route's aggregate cluster lists the route's providers in order.
    AggregateOrder,
    /// Provider endpoints carry `filter_metadata.tollgate.provider`.
    EndpointMetadata,
    /// The aggregate cluster runs tollgate's upstream stage in the listener stage's VM (same
    /// `vm_config`), where it finds that listener stage's catalog.
    UpstreamStage,
    /// The aggregate cluster's retry circuit breaker admits every retry.
    RetryBreaker,
    /// The bootstrap turns tollgate's metric names into labels.
    StatsTags,
    /// The listener's buffer limit holds the largest request body tollgate accepts.
    BufferLimit,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// Which check.
    pub check: Check,
    /// The file (as given).
    pub file: String,
    /// Line in the file (1-based).
    pub line: usize,
    /// The field: where in the bootstrap, then the JSON path inside the plugin configuration.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}: {severity}: {}: {}",
            self.file, self.line, self.field, self.message
        )
    }
}

/// The findings for one file.
#[derive(Debug, Default)]
pub struct Report {
    /// Every finding, in file order.
    pub findings: Vec<Finding>,
    /// How many tollgate filters were checked.
    pub filters: usize,
}

impl Report {
    /// Findings of `severity` or worse.
    pub fn at_least(&self, severity: Severity) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.severity >= severity)
    }

    /// Whether the report passes: no errors, and no warnings when `deny_warnings`.
    pub fn passes(&self, deny_warnings: bool) -> bool {
        let floor = if deny_warnings {
            Severity::Warning
        } else {
            Severity::Error
        };
        self.at_least(floor).next().is_none()
    }
}

/// Checks the bootstrap in `text` (YAML or JSON); `file` names it in the findings.
pub fn check_text(file: &str, text: &str) -> Report {
    match yaml::load(text) {
        Err(e) => Report {
            findings: vec![Finding {
                severity: Severity::Error,
                check: Check::Parse,
                file: file.to_string(),
                line: e
                    .strip_prefix("line ")
                    .and_then(|r| r.split(':').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1),
                field: "(document)".into(),
                message: format!("not valid YAML or JSON: {e}"),
            }],
            filters: 0,
        },
        Ok(docs) => match docs.as_slice() {
            [root] => check_bootstrap(file, root),
            _ => Report {
                findings: vec![Finding {
                    severity: Severity::Error,
                    check: Check::Parse,
                    file: file.to_string(),
                    line: 1,
                    field: "(document)".into(),
                    message: format!("an Envoy bootstrap is one document, found {}", docs.len()),
                }],
                filters: 0,
            },
        },
    }
}

/// Checks the bootstrap file at `path`.
pub fn check_file(path: &Path) -> Report {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => check_text(&file, &text),
        Err(e) => Report {
            findings: vec![Finding {
                severity: Severity::Error,
                check: Check::Parse,
                file,
                line: 0,
                field: "(file)".into(),
                message: format!("cannot read: {e}"),
            }],
            filters: 0,
        },
    }
}
