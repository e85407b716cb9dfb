//! Captures the answer of a cache miss, as the client receives it (translated and masked), and
//! turns it into an [`Entry`] once it is complete — or says why it must not be stored.
//!
//! Only a 2xx answer with an identity encoding is captured; a JSON answer whole, an OpenAI chat
//! stream through the [`ChatAssembler`]. Capture memory is bounded by `max_entry_bytes`: past it
//! the capture is dropped and its buffer freed, and the answer passes through untouched either
//! way (the recorder only observes copies).

use serde_json::{Map, Value};

use super::assemble::{AssemblyError, ChatAssembler};
use super::entry::{Entry, EntryFormat};
use super::key::{Lookup, ReplyShape};
use crate::json_build::object;
use crate::usage::{BodyFraming, Usage};

/// Why an answer was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not a 2xx status.
    Status,
    /// Compressed (`content-encoding` other than identity).
    Encoded,
    /// A framing the request's shape cannot be served from (e.g. a stream for a JSON-only API).
    Framing,
    /// Larger than `max_entry_bytes`.
    TooLarge,
    /// The answer did not end normally (reset, disconnect, truncated stream, no `[DONE]`).
    Incomplete,
    /// Not the JSON or stream it should be.
    Unreadable,
    /// A stream with parts the replay cannot reproduce.
    Unsupported,
    /// A stream that carried an error event.
    ErrorEvent,
}

impl Skip {
    /// Stable name for metric labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Status => "status",
            Skip::Encoded => "encoded",
            Skip::Framing => "framing",
            Skip::TooLarge => "too_large",
            Skip::Incomplete => "incomplete",
            Skip::Unreadable => "unreadable",
            Skip::Unsupported => "unsupported",
            Skip::ErrorEvent => "error_event",
        }
    }
}

impl From<AssemblyError> for Skip {
    fn from(e: AssemblyError) -> Self {
        match e {
            AssemblyError::ErrorEvent => Skip::ErrorEvent,
            AssemblyError::Unsupported => Skip::Unsupported,
            AssemblyError::Unreadable => Skip::Unreadable,
            AssemblyError::TooLarge => Skip::TooLarge,
            AssemblyError::Incomplete => Skip::Incomplete,
        }
    }
}

/// The response head as the client receives it.
#[derive(Debug, Clone, Copy)]
pub struct ResponseHead<'a> {
    /// `:status`.
    pub status: u32,
    /// `content-type`.
    pub content_type: Option<&'a str>,
    /// `content-encoding`.
    pub content_encoding: Option<&'a str>,
}

/// How the response ended, and what accounting learnt from it.
#[derive(Debug, Clone, Copy)]
pub struct ResponseEnd<'a> {
    /// The body ended normally and usage accounting saw it complete (terminator, parsed JSON).
    pub complete: bool,
    /// The usage the provider reported, if any (added to an assembled answer without one).
    pub usage: Option<Usage>,
    /// The provider that answered.
    pub provider: &'a str,
    /// The model the answer named (or the request's).
    pub model: &'a str,
    /// Now, ms since the epoch.
    pub now_ms: u64,
}

#[derive(Debug, Clone)]
enum Capture {
    Json(Vec<u8>),
    Stream(Box<ChatAssembler>),
    Dropped(Skip),
}

/// Observes one miss's answer.
#[derive(Debug, Clone)]
pub struct Recorder {
    lookup: Lookup,
    status: u16,
    content_type: String,
    limit: usize,
    capture: Capture,
}

impl Recorder {
    /// Starts capturing the answer to `lookup` whose head is `head`.
    pub fn start(lookup: Lookup, head: &ResponseHead<'_>, max_entry_bytes: u64) -> Self {
        let limit = usize::try_from(max_entry_bytes).unwrap_or(usize::MAX);
        let framing = BodyFraming::from_content_type(head.content_type);
        let identity = head
            .content_encoding
            .is_none_or(|e| e.trim().is_empty() || e.trim().eq_ignore_ascii_case("identity"));
        let capture = if !(200..300).contains(&head.status) {
            Capture::Dropped(Skip::Status)
        } else if !identity {
            Capture::Dropped(Skip::Encoded)
        } else {
            match (framing, lookup.reply) {
                (BodyFraming::Json, _) => Capture::Json(Vec::new()),
                (BodyFraming::Sse, ReplyShape::OpenAiChat { .. }) => {
                    Capture::Stream(Box::new(ChatAssembler::new(limit)))
                }
                _ => Capture::Dropped(Skip::Framing),
            }
        };
        Self {
            lookup,
            status: u16::try_from(head.status).unwrap_or(200),
            content_type: head.content_type.unwrap_or("application/json").to_string(),
            limit,
            capture,
        }
    }

    /// The lookup this answer is for.
    pub fn lookup(&self) -> &Lookup {
        &self.lookup
    }

    /// Why the answer will not be stored, when that is already known.
    pub fn skipped(&self) -> Option<Skip> {
        match &self.capture {
            Capture::Dropped(why) => Some(*why),
            Capture::Stream(a) => a.failure().map(Skip::from),
            Capture::Json(_) => None,
        }
    }

    /// Observes the next bytes the client receives.
    pub fn feed(&mut self, chunk: &[u8]) {
        match &mut self.capture {
            Capture::Json(buf) => {
                if buf.len().saturating_add(chunk.len()) > self.limit {
                    self.capture = Capture::Dropped(Skip::TooLarge);
                } else {
                    buf.extend_from_slice(chunk);
                }
            }
            Capture::Stream(a) => {
                a.feed(chunk);
                if let Some(why) = a.failure() {
                    self.capture = Capture::Dropped(why.into());
                }
            }
            Capture::Dropped(_) => {}
        }
    }

    /// Ends the capture: the entry to store, or why not.
    pub fn finish(self, end: &ResponseEnd<'_>) -> Result<Entry, Skip> {
        if !end.complete {
            return Err(Skip::Incomplete);
        }
        let (format, content_type, body) = match (self.capture, self.lookup.reply) {
            (Capture::Dropped(why), _) => return Err(why),
            (Capture::Json(body), ReplyShape::OpenAiChat { .. }) => {
                let completion: Value =
                    serde_json::from_slice(&body).map_err(|_| Skip::Unreadable)?;
                if !is_chat_completion(&completion) {
                    return Err(Skip::Unreadable);
                }
                let body = match with_usage(completion, end.usage) {
                    Some(filled) => serde_json::to_vec(&filled).map_err(|_| Skip::Unreadable)?,
                    None => body,
                };
                (EntryFormat::OpenAiChat, self.content_type, body)
            }
            (Capture::Json(body), ReplyShape::Verbatim) => {
                serde_json::from_slice::<serde::de::IgnoredAny>(&body)
                    .map_err(|_| Skip::Unreadable)?;
                (EntryFormat::Verbatim, self.content_type, body)
            }
            (Capture::Stream(a), _) => {
                let completion = a.finish()?;
                let completion = with_usage(completion.clone(), end.usage).unwrap_or(completion);
                let body = serde_json::to_vec(&completion).map_err(|_| Skip::Unreadable)?;
                (
                    EntryFormat::OpenAiChat,
                    "application/json".to_string(),
                    body,
                )
            }
        };
        if body.len() > self.limit {
            return Err(Skip::TooLarge);
        }
        Ok(Entry {
            format,
            status: self.status,
            provider: end.provider.to_string(),
            model: end.model.to_string(),
            content_type,
            usage: end.usage,
            stored_at_ms: end.now_ms,
            body,
        })
    }
}

/// True for an object with a `choices` array whose every element has a `message` object.
fn is_chat_completion(v: &Value) -> bool {
    v.get("choices").and_then(Value::as_array).is_some_and(|c| {
        c.iter()
            .all(|c| c.get("message").is_some_and(Value::is_object))
    })
}

/// The completion with an OpenAI `usage` object built from `usage` when it has none; `None`
/// when nothing changes.
fn with_usage(completion: Value, usage: Option<Usage>) -> Option<Value> {
    let u = usage?;
    let Value::Object(mut obj) = completion else {
        return None;
    };
    if obj.get("usage").is_some_and(|u| !u.is_null()) {
        return None;
    }
    let mut usage = Map::new();
    usage.insert("prompt_tokens".into(), Value::from(u.input_tokens));
    usage.insert("completion_tokens".into(), Value::from(u.output_tokens));
    usage.insert("total_tokens".into(), Value::from(u.total_tokens));
    usage.insert(
        "prompt_tokens_details".into(),
        object([("cached_tokens", Value::from(u.cached_input_tokens))]),
    );
    usage.insert(
        "completion_tokens_details".into(),
        object([("reasoning_tokens", Value::from(u.reasoning_tokens))]),
    );
    obj.insert("usage".into(), Value::Object(usage));
    Some(Value::Object(obj))
}
