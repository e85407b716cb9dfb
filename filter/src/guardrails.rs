//! Request guardrails: what a request must look like before it may reach a provider — its size,
//! a JSON content type, the fields its API requires, a non-empty and bounded list of messages.
//!
//! Configuration (`guardrails`): `defaults` for every path and `routes[]` (first match by
//! `path_prefix` or `path_exact` wins) overriding some of them. Checks run on plain inputs
//! ([`RequestView`]: path, API kind, content type, and the body's [`BodyShape`] read in the
//! usage parser's single pass); a refusal is a [`Violation`] with a stable reason code used as
//! the error `code` and as the `reason` label of `tollgate_guardrail_rejections_total`. The module
//! never touches the host.

use serde::Deserialize;

use crate::config::ConfigError;
use crate::error_reply::{ErrorKind, ErrorReply};
use crate::usage::{ApiKind, BodyShape, InputField, MessageList};

/// The counter of refused requests, tagged with `reason`.
pub const REJECTIONS_METRIC: &str = "tollgate_guardrail_rejections_total";
/// Default `max_messages`.
pub const DEFAULT_MAX_MESSAGES: u64 = 1000;
/// Default `max_message_chars`.
pub const DEFAULT_MAX_MESSAGE_CHARS: u64 = 1_048_576;

/// Raw `guardrails` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct RawGuardrails {
    /// Limits for every path no route matches (and inherited by routes).
    pub defaults: RawGuardrailLimits,
    /// Per-path overrides, first match wins.
    pub routes: Vec<RawGuardrailRoute>,
}

/// Raw limits; unset fields take the built-in default (or, in a route, the `defaults` value).
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct RawGuardrailLimits {
    /// Largest request body, bytes (default `limits.max_request_bytes`).
    pub max_request_bytes: Option<u64>,
    /// Refuse bodies without a JSON content type with 415 (default true, on LLM API paths).
    pub require_json_content_type: Option<bool>,
    /// Refuse requests missing the fields their API requires (default true).
    pub require_fields: Option<bool>,
    /// Most messages (`messages` or Gemini `contents`) per request (default 1000).
    pub max_messages: Option<u64>,
    /// Most characters of text in one message (default 1048576).
    pub max_message_chars: Option<u64>,
}

/// Raw route: a path matcher plus the limits it overrides.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct RawGuardrailRoute {
    /// Matches paths (query excluded) starting with this.
    pub path_prefix: Option<String>,
    /// Matches exactly this path (query excluded).
    pub path_exact: Option<String>,
    /// See [`RawGuardrailLimits::max_request_bytes`].
    pub max_request_bytes: Option<u64>,
    /// See [`RawGuardrailLimits::require_json_content_type`]; set here it applies to every
    /// path the route matches, LLM API or not.
    pub require_json_content_type: Option<bool>,
    /// See [`RawGuardrailLimits::require_fields`].
    pub require_fields: Option<bool>,
    /// See [`RawGuardrailLimits::max_messages`].
    pub max_messages: Option<u64>,
    /// See [`RawGuardrailLimits::max_message_chars`].
    pub max_message_chars: Option<u64>,
}

/// Where a JSON content type is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonContentType {
    /// On the LLM API paths tollgate recognises.
    LlmPaths,
    /// On every path the rule applies to.
    Always,
    /// Nowhere.
    Never,
}

/// Validated limits for one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardrailLimits {
    /// Largest request body, bytes.
    pub max_request_bytes: u64,
    /// Where a JSON content type is required.
    pub json_content_type: JsonContentType,
    /// Check the fields each API requires.
    pub require_fields: bool,
    /// Most messages.
    pub max_messages: u64,
    /// Most characters in one message.
    pub max_message_chars: u64,
}

/// A path matcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRule {
    /// Paths starting with this.
    Prefix(String),
    /// Exactly this path.
    Exact(String),
}

impl PathRule {
    /// Whether `path` (query excluded) matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathRule::Prefix(p) => path.starts_with(p.as_str()),
            PathRule::Exact(p) => path == p,
        }
    }
}

/// Validated guardrails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guardrails {
    /// Limits where no route matches.
    pub defaults: GuardrailLimits,
    /// Routes, first match wins.
    pub routes: Vec<(PathRule, GuardrailLimits)>,
}

/// What the checks look at, gathered by the host.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// `:path`, query included or not.
    pub path: &'a str,
    /// The LLM API the path speaks, if any.
    pub api: Option<ApiKind>,
    /// The request's `content-type`.
    pub content_type: Option<&'a str>,
    /// The request carries a body.
    pub has_body: bool,
    /// The body's structure, once the whole body is in (`None`: headers only).
    pub body: Option<&'a BodyShape>,
}

/// Why a request was refused; [`Reason::code`] is stable (error `code`, metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The body is larger than the limit (413).
    RequestTooLarge,
    /// A body without a JSON content type on a JSON route (415).
    UnsupportedContentType,
    /// The body is empty or not a JSON object (400).
    InvalidJson,
    /// A required field is absent, null or of the wrong type (400).
    MissingField,
    /// `messages` / `contents` is not an array (400).
    InvalidMessages,
    /// `messages` / `contents` / `input` is empty (400).
    EmptyMessages,
    /// More messages than allowed (400).
    TooManyMessages,
    /// A message's text is longer than allowed (400).
    MessageTooLong,
}

impl Reason {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Reason::RequestTooLarge => "request_too_large",
            Reason::UnsupportedContentType => "unsupported_content_type",
            Reason::InvalidJson => "invalid_json",
            Reason::MissingField => "missing_field",
            Reason::InvalidMessages => "invalid_messages",
            Reason::EmptyMessages => "empty_messages",
            Reason::TooManyMessages => "too_many_messages",
            Reason::MessageTooLong => "message_too_long",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> u32 {
        match self {
            Reason::RequestTooLarge => 413,
            Reason::UnsupportedContentType => 415,
            _ => 400,
        }
    }
}

/// A refused request: the reason and a message naming what is wrong (never body content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Why.
    pub reason: Reason,
    /// Human-readable detail.
    pub message: String,
}

impl Violation {
    fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }

    /// The refusal of a body larger than `limit` bytes.
    pub fn too_large(limit: u64) -> Self {
        Self::new(
            Reason::RequestTooLarge,
            format!("request body exceeds the limit of {limit} bytes"),
        )
    }

    /// The local reply, in the OpenAI error shape.
    pub fn reply(&self) -> ErrorReply {
        ErrorReply::new(
            self.reason.status(),
            ErrorKind::InvalidRequest,
            self.reason.code(),
            self.message.clone(),
        )
    }

    /// The stat name of the rejection counter for this violation.
    pub fn metric(&self) -> String {
        crate::accounting::tagged_name(REJECTIONS_METRIC, &[("reason", self.reason.code())])
    }
}

/// The path without its query string.
fn path_only(path: &str) -> &str {
    path.split(['?', '#']).next().unwrap_or(path)
}

/// Validates the raw section; `default_max_request_bytes` is `limits.max_request_bytes`.
pub fn compile(
    raw: &RawGuardrails,
    default_max_request_bytes: u64,
    path: &str,
) -> Result<Guardrails, ConfigError> {
    let err = |field: String, reason: &str| ConfigError {
        path: field,
        reason: reason.to_string(),
    };
    let d = &raw.defaults;
    let base = GuardrailLimits {
        max_request_bytes: d.max_request_bytes.unwrap_or(default_max_request_bytes),
        json_content_type: match d.require_json_content_type {
            Some(false) => JsonContentType::Never,
            _ => JsonContentType::LlmPaths,
        },
        require_fields: d.require_fields.unwrap_or(true),
        max_messages: d.max_messages.unwrap_or(DEFAULT_MAX_MESSAGES),
        max_message_chars: d.max_message_chars.unwrap_or(DEFAULT_MAX_MESSAGE_CHARS),
    };
    check_limits(&base, &format!("{path}.defaults")).map_err(|(f, r)| err(f, r))?;
    let mut routes = Vec::with_capacity(raw.routes.len());
    for (i, r) in raw.routes.iter().enumerate() {
        let at = format!("{path}.routes[{i}]");
        let rule = match (&r.path_prefix, &r.path_exact) {
            (Some(p), None) => PathRule::Prefix(p.clone()),
            (None, Some(p)) => PathRule::Exact(p.clone()),
            _ => return Err(err(at, "set exactly one of path_prefix, path_exact")),
        };
        let (PathRule::Prefix(p) | PathRule::Exact(p)) = &rule;
        if !p.starts_with('/') || p.contains(['?', '#']) {
            let field = if r.path_prefix.is_some() {
                "path_prefix"
            } else {
                "path_exact"
            };
            return Err(err(
                format!("{at}.{field}"),
                "must start with '/' and contain no query",
            ));
        }
        let limits = GuardrailLimits {
            max_request_bytes: r.max_request_bytes.unwrap_or(base.max_request_bytes),
            json_content_type: match r.require_json_content_type {
                Some(true) => JsonContentType::Always,
                Some(false) => JsonContentType::Never,
                None => base.json_content_type,
            },
            require_fields: r.require_fields.unwrap_or(base.require_fields),
            max_messages: r.max_messages.unwrap_or(base.max_messages),
            max_message_chars: r.max_message_chars.unwrap_or(base.max_message_chars),
        };
        check_limits(&limits, &at).map_err(|(f, r)| err(f, r))?;
        routes.push((rule, limits));
    }
    Ok(Guardrails {
        defaults: base,
        routes,
    })
}

fn check_limits(l: &GuardrailLimits, at: &str) -> Result<(), (String, &'static str)> {
    if l.max_request_bytes == 0 {
        return Err((format!("{at}.max_request_bytes"), "must be greater than 0"));
    }
    if l.max_messages == 0 {
        return Err((format!("{at}.max_messages"), "must be greater than 0"));
    }
    if l.max_message_chars == 0 {
        return Err((format!("{at}.max_message_chars"), "must be greater than 0"));
    }
    Ok(())
}

impl Guardrails {
    /// The limits for `path`: the first matching route's, else the defaults.
    pub fn limits_for(&self, path: &str) -> &GuardrailLimits {
        let p = path_only(path);
        self.routes
            .iter()
            .find(|(rule, _)| rule.matches(p))
            .map_or(&self.defaults, |(_, limits)| limits)
    }

    /// Checks a request: the content type (as soon as headers are in), then, when the body
    /// shape is given, the fields its API requires and the message limits. The body size is
    /// checked by the host as bytes arrive, against [`GuardrailLimits::max_request_bytes`].
    pub fn check(&self, view: &RequestView<'_>) -> Result<(), Violation> {
        let limits = self.limits_for(view.path);
        let json_route = match limits.json_content_type {
            JsonContentType::Always => true,
            JsonContentType::LlmPaths => view.api.is_some(),
            JsonContentType::Never => false,
        };
        if json_route && view.has_body && !is_json_content_type(view.content_type) {
            return Err(Violation::new(
                Reason::UnsupportedContentType,
                "the request body must have content-type application/json",
            ));
        }
        let (Some(api), Some(body)) = (view.api, view.body) else {
            return Ok(());
        };
        if limits.require_fields {
            check_required(api, view.path, body)?;
        }
        for (name, list) in [("messages", &body.messages), ("contents", &body.contents)] {
            if let Some(list) = list {
                check_messages(name, list, limits)?;
            }
        }
        Ok(())
    }
}

/// `application/json` or `application/<something>+json`, parameters allowed.
pub fn is_json_content_type(value: Option<&str>) -> bool {
    let Some(v) = value else {
        return false;
    };
    let media = v
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

/// The fields each API requires (see the README's guardrails table).
fn check_required(api: ApiKind, path: &str, body: &BodyShape) -> Result<(), Violation> {
    if !body.json_object {
        return Err(Violation::new(
            Reason::InvalidJson,
            "the request body must be a JSON object",
        ));
    }
    let missing = |field: &str, what: &str| {
        Violation::new(
            Reason::MissingField,
            format!("`{field}` is required ({what})"),
        )
    };
    let needs_model = !matches!(api, ApiKind::Gemini);
    if needs_model && !body.model {
        return Err(missing("model", "a non-empty string"));
    }
    let list_field = match api {
        ApiKind::OpenAiChat | ApiKind::Anthropic => Some(("messages", &body.messages)),
        ApiKind::OllamaChat if path_only(path).ends_with("/api/chat") => {
            Some(("messages", &body.messages))
        }
        ApiKind::Gemini => Some(("contents", &body.contents)),
        _ => None,
    };
    if let Some((name, list)) = list_field {
        match list {
            None => return Err(missing(name, "a non-empty array")),
            Some(l) if !l.is_array => {
                return Err(Violation::new(
                    Reason::InvalidMessages,
                    format!("`{name}` must be an array"),
                ))
            }
            Some(l) if l.count == 0 => {
                return Err(Violation::new(
                    Reason::EmptyMessages,
                    format!("`{name}` must not be empty"),
                ))
            }
            Some(_) => {}
        }
    }
    if api == ApiKind::Anthropic && !body.max_tokens {
        return Err(missing("max_tokens", "a non-negative integer"));
    }
    if api == ApiKind::OpenAiEmbeddings {
        match body.input {
            None => return Err(missing("input", "a non-empty string or array")),
            Some(InputField::Empty) => {
                return Err(Violation::new(
                    Reason::EmptyMessages,
                    "`input` must not be empty",
                ))
            }
            Some(InputField::Present) => {}
        }
    }
    Ok(())
}

fn check_messages(
    name: &str,
    list: &MessageList,
    limits: &GuardrailLimits,
) -> Result<(), Violation> {
    if list.count > limits.max_messages {
        return Err(Violation::new(
            Reason::TooManyMessages,
            format!(
                "`{name}` has {} entries; at most {} are allowed",
                list.count, limits.max_messages
            ),
        ));
    }
    if list.longest_chars > limits.max_message_chars {
        return Err(Violation::new(
            Reason::MessageTooLong,
            format!(
                "`{name}[{}]` has {} characters of text; at most {} are allowed",
                list.longest_index, list.longest_chars, limits.max_message_chars
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "guardrails_tests.rs"]
mod tests;
