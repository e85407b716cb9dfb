//! Virtual API keys (pure): keys an operator issues to teams and apps, each with an owner, a
//! team, the models it may use, its own budgets, an expiry and labels. The configuration holds
//! only each key's SHA-256; a request's key is hashed once and compared in constant time.
//!
//! * [`secret`]: the key format (`tg-` + 32 random bytes, base64url), hashing, log redaction;
//! * [`set`]: key entries and the lookup;
//! * [`settings`]: the `keys` configuration section;
//! * [`fetcher`]: the remote key set, refreshed through the shared [`crate::refresh`] machine;
//! * this file: [`authenticate`], which turns a request's headers into a decision, and the
//!   refusals.
//!
//! **Which credential is checked.** A request *presents a key* when one of `keys.headers`
//! carries a value starting with `tg-` (`Authorization: Bearer tg-…`, `x-api-key: tg-…`,
//! `x-goog-api-key: tg-…`). When it does, the key alone decides: a valid key is allowed, an
//! unknown, revoked, expired or malformed one is refused, and a JWT in the same request is not
//! verified (so a key never waits for JWT signing keys). When it does not, a configured `jwt`
//! section decides exactly as without keys; with no `jwt`, `keys.required` refuses the request.
//! Values without the prefix are not tollgate keys: they are left alone, so a provider key a
//! client passes through still works, and today's hashed `x-api-key` identity still applies.
//!
//! This module never touches the proxy; the host applies the edits and sends the replies.

pub mod fetcher;
pub mod secret;
pub mod set;
pub mod settings;

use std::sync::Arc;

pub use fetcher::SkippedEntry;
pub use secret::KeyDigest;
pub use set::{ApiKeySet, KeyEntry, RawKeyEntry};
pub use settings::{compile, KeySettings, KeySource, RawKeys};

use crate::accounting::ModelLabels;
use crate::error_reply::{ErrorKind, ErrorReply};
use crate::jwt::{HeaderLookup, RequestEdit};
use crate::refresh::Availability;

/// `WWW-Authenticate` challenge on key refusals.
pub const CHALLENGE: &str = "Bearer realm=\"tollgate\"";

/// Team metric labels, bounded like model labels (`keys.max_teams`; later teams are `other`).
pub type TeamLabels = ModelLabels;

/// A request that presented a valid key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyCaller {
    /// The key's entry.
    pub entry: Arc<KeyEntry>,
    /// The key as logs may show it (`tg-…abcd`).
    pub shown: String,
    /// Edits that strip the key before the request leaves.
    pub edits: Vec<RequestEdit>,
}

impl KeyCaller {
    /// The caller as user budgets, logs and metrics know it: the key's owner.
    pub fn user(&self) -> &str {
        &self.entry.owner
    }

    /// Access-log properties: the key id and the team (never the key).
    pub fn access_log_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("tollgate_key_id", self.entry.id.clone()),
            ("tollgate_team", self.entry.team.clone()),
        ]
    }

    /// Whether the key may use `model`; a 403 when it may not.
    pub fn check_model(&self, model: &str) -> Result<(), ErrorReply> {
        if self.entry.allows_model(model) {
            return Ok(());
        }
        let shown: String = model.chars().take(100).collect();
        Err(ErrorReply::new(
            403,
            ErrorKind::Permission,
            "model_not_allowed",
            format!("this API key may not use the model {shown:?}"),
        ))
    }
}

/// A refused key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyDenial {
    /// The reply to send (never contains the key).
    pub reply: ErrorReply,
    /// Stable reason for logs and metrics (`invalid_api_key`, `key_revoked`, …).
    pub reason: &'static str,
    /// The key as logs may show it.
    pub shown: String,
    /// True when the key was not in a fetched set: the host may refetch early (rate-limited by
    /// [`crate::refresh::Fetcher::on_demand`]) and decide again.
    pub unknown_remote: bool,
}

impl KeyDenial {
    /// The log line for this refusal.
    pub fn log_line(&self) -> String {
        format!("API key refused ({}): {}", self.reason, self.shown)
    }
}

/// The key decision for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyOutcome {
    /// The request presents no tollgate key: JWT (when configured) or `keys.required` decide.
    Absent,
    /// A valid key.
    Allow(KeyCaller),
    /// A refused key.
    Deny(KeyDenial),
    /// The key set has not arrived yet: hold the request and decide again when the first fetch
    /// completes, or at `until_ms` at the latest.
    Wait {
        /// Hold at most until this time (ms).
        until_ms: u64,
    },
}

/// Every key value the request presents, with the header carrying it.
fn presented<H: HeaderLookup + ?Sized>(
    settings: &KeySettings,
    headers: &H,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in &settings.headers {
        for value in headers.values(name) {
            let value = value.trim();
            let candidate = if name == "authorization" {
                match value.split_once(' ') {
                    Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
                    _ => continue,
                }
            } else {
                value
            };
            if secret::is_presented(candidate) {
                out.push((name.clone(), candidate.to_string()));
            }
        }
    }
    out
}

/// The 503 for a remote key set that has not arrived (the SDKs retry it: `Retry-After: 1`).
pub fn unavailable_reply() -> ErrorReply {
    ErrorReply::new(
        503,
        ErrorKind::Upstream,
        "key_set_unavailable",
        "API keys cannot be checked yet: the key set is unavailable",
    )
    .with_header("retry-after", "1")
}

/// A 401 refusal of a presented key.
fn deny(reason: &'static str, message: &str, shown: String) -> KeyOutcome {
    let reply = ErrorReply::new(401, ErrorKind::Authentication, reason, message)
        .with_header("www-authenticate", CHALLENGE);
    KeyOutcome::Deny(KeyDenial {
        reply,
        reason,
        shown,
        unknown_remote: false,
    })
}

/// Decides the key part of one request. `keys` is the key set's availability (always `Ready` for
/// inline keys: see [`inline_availability`]); `now_unix` is seconds since the epoch.
pub fn authenticate<H: HeaderLookup + ?Sized>(
    settings: &KeySettings,
    headers: &H,
    keys: &Availability<ApiKeySet>,
    now_unix: u64,
) -> KeyOutcome {
    let found = presented(settings, headers);
    let Some((_, key)) = <[_]>::first(&found) else {
        return KeyOutcome::Absent;
    };
    let shown = secret::redact(key);
    if found.iter().any(|(_, other)| other != key) {
        return deny(
            "multiple_api_keys",
            "the request carries more than one different API key",
            shown,
        );
    }
    if !secret::is_well_formed(key) {
        return deny("invalid_api_key", "Incorrect API key provided.", shown);
    }
    let set = match keys {
        Availability::Ready(set) => set,
        Availability::Pending { wait_until_ms } => {
            return KeyOutcome::Wait {
                until_ms: *wait_until_ms,
            }
        }
        Availability::Unavailable => {
            return KeyOutcome::Deny(KeyDenial {
                reply: unavailable_reply(),
                reason: "key_set_unavailable",
                shown,
                unknown_remote: false,
            })
        }
    };
    let digest = KeyDigest::of(key);
    let Some(entry) = set.lookup(&digest) else {
        let remote = matches!(settings.source, KeySource::Remote(_));
        let mut outcome = deny("invalid_api_key", "Incorrect API key provided.", shown);
        if let KeyOutcome::Deny(d) = &mut outcome {
            d.unknown_remote = remote;
        }
        return outcome;
    };
    if entry.revoked {
        return deny("key_revoked", "This API key has been revoked.", shown);
    }
    if entry.is_expired(now_unix) {
        return deny("key_expired", "This API key has expired.", shown);
    }
    let mut edits: Vec<RequestEdit> = Vec::new();
    for (name, _) in &found {
        let edit = RequestEdit::RemoveHeader(name.clone());
        if !edits.contains(&edit) {
            edits.push(edit);
        }
    }
    KeyOutcome::Allow(KeyCaller {
        entry: Arc::clone(entry),
        shown,
        edits,
    })
}

/// The availability of inline keys (`None` for a remote key set, whose fetcher knows).
pub fn inline_availability(settings: &KeySettings) -> Option<Availability<ApiKeySet>> {
    match &settings.source {
        KeySource::Inline(set) => Some(Availability::Ready(Arc::clone(set))),
        KeySource::Remote(_) => None,
    }
}

/// The refusal of a request that presents no credential where one is required.
pub fn missing_reply(settings: &KeySettings) -> ErrorReply {
    let mut where_: Vec<String> = Vec::new();
    for h in &settings.headers {
        where_.push(if h == "authorization" {
            "Authorization: Bearer tg-…".to_string()
        } else {
            h.clone()
        });
    }
    ErrorReply::new(
        401,
        ErrorKind::Authentication,
        "missing_api_key",
        format!("an API key is required ({})", where_.join(", ")),
    )
    .with_header("www-authenticate", CHALLENGE)
}

#[cfg(test)]
mod tests;
