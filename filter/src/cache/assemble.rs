//! Assembles an OpenAI `chat.completion.chunk` stream, as the client received it, into the
//! `chat.completion` object it amounts to — the form a stored stream takes.
//!
//! Strict on purpose: an entry is only worth storing if replaying it gives the client the same
//! answer, so the assembler refuses what it cannot reproduce — an error event, a delta field it
//! does not know (`audio`, the legacy `function_call`), data after `[DONE]`, an event over the
//! size cap, a stream without `[DONE]` or with a choice that never finished. Memory is bounded
//! by the entry limit: past it the stream is abandoned and its buffers freed.

use crate::json_build::object;
use crate::vec_map::VecMap;

use serde_json::{Map, Value};

use crate::sse::{OversizedEvent, SseParser};

/// Why a stream cannot be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssemblyError {
    /// The stream carried an error event.
    ErrorEvent,
    /// A delta field the replay cannot reproduce.
    Unsupported,
    /// An event that is not a JSON chunk, or was dropped for its size.
    Unreadable,
    /// Larger than the entry limit.
    TooLarge,
    /// No `[DONE]`, no choice, or a choice without `finish_reason`.
    Incomplete,
}

impl AssemblyError {
    /// Stable name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            AssemblyError::ErrorEvent => "error_event",
            AssemblyError::Unsupported => "unsupported",
            AssemblyError::Unreadable => "unreadable",
            AssemblyError::TooLarge => "too_large",
            AssemblyError::Incomplete => "incomplete",
        }
    }
}

#[derive(Debug, Clone, Default)]
struct ToolCall {
    id: Option<String>,
    kind: Option<String>,
    name: String,
    arguments: String,
}

#[derive(Debug, Clone, Default)]
struct Choice {
    role: Option<String>,
    content: Option<String>,
    refusal: Option<String>,
    reasoning_content: Option<String>,
    tool_calls: VecMap<u64, ToolCall>,
    logprobs_content: Option<Vec<Value>>,
    logprobs_refusal: Option<Vec<Value>>,
    finish_reason: Option<String>,
}

/// Top-level chunk fields copied into the assembled object (first value seen wins, except
/// `system_fingerprint`, `service_tier` and `usage`, which keep the last non-null value).
const CARRIED: [&str; 5] = [
    "id",
    "created",
    "model",
    "system_fingerprint",
    "service_tier",
];

/// Incremental assembler; feed it the client's bytes, then [`ChatAssembler::finish`].
#[derive(Debug, Clone)]
pub struct ChatAssembler {
    parser: SseParser,
    limit: usize,
    held: usize,
    top: Map<String, Value>,
    usage: Option<Value>,
    choices: VecMap<u64, Choice>,
    done: bool,
    failed: Option<AssemblyError>,
}

fn append(slot: &mut Option<String>, text: &str) -> usize {
    slot.get_or_insert_with(String::new).push_str(text);
    text.len()
}

impl ChatAssembler {
    /// An assembler that gives up past `limit` bytes of assembled content.
    pub fn new(limit: usize) -> Self {
        Self {
            // An event over the entry limit is an answer over it: stop parsing at once.
            parser: SseParser::new(limit.max(1), OversizedEvent::Fail),
            limit,
            held: 0,
            top: Map::new(),
            usage: None,
            choices: VecMap::new(),
            done: false,
            failed: None,
        }
    }

    /// The first reason this stream cannot be stored, if one was met already.
    pub fn failure(&self) -> Option<AssemblyError> {
        self.failed
    }

    fn fail(&mut self, why: AssemblyError) {
        if self.failed.is_none() {
            self.failed = Some(why);
        }
        // Nothing held is needed any more.
        self.choices.clear();
        self.top.clear();
        self.usage = None;
    }

    /// Feeds bytes exactly as the client received them.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        let mut events: Vec<Vec<u8>> = Vec::new();
        self.parser.feed(chunk, |e| events.push(e.data.to_vec()));
        for data in events {
            self.event(&data);
        }
        if self.parser.failure().is_some() {
            self.fail(AssemblyError::TooLarge);
        }
    }

    fn event(&mut self, data: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if data.trim_ascii() == b"[DONE]" {
            if self.done {
                self.fail(AssemblyError::Unreadable);
            }
            self.done = true;
            return;
        }
        if self.done {
            // Anything after the terminator is not part of the answer the client accepted.
            self.fail(AssemblyError::Unreadable);
            return;
        }
        let Ok(Value::Object(chunk)) = serde_json::from_slice::<Value>(data) else {
            self.fail(AssemblyError::Unreadable);
            return;
        };
        if chunk.get("error").is_some_and(|e| !e.is_null()) {
            self.fail(AssemblyError::ErrorEvent);
            return;
        }
        for name in CARRIED {
            if let Some(v) = chunk.get(name).filter(|v| !v.is_null()) {
                let keep_last = matches!(name, "system_fingerprint" | "service_tier");
                if keep_last || !self.top.contains_key(name) {
                    self.top.insert(name.to_string(), v.clone());
                }
            }
        }
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(u.clone());
        }
        let choices = match chunk.get("choices") {
            None | Some(Value::Null) => return,
            Some(Value::Array(c)) => c,
            Some(_) => {
                self.fail(AssemblyError::Unreadable);
                return;
            }
        };
        let mut added = 0usize;
        for c in choices {
            match self.choice(c) {
                Ok(n) => added += n,
                Err(why) => {
                    self.fail(why);
                    return;
                }
            }
        }
        self.held = self.held.saturating_add(added);
        if self.held > self.limit {
            self.fail(AssemblyError::TooLarge);
        }
    }

    fn choice(&mut self, c: &Value) -> Result<usize, AssemblyError> {
        let c = c.as_object().ok_or(AssemblyError::Unreadable)?;
        let index = match c.get("index") {
            None => 0,
            Some(i) => i.as_u64().ok_or(AssemblyError::Unreadable)?,
        };
        let acc = self
            .choices
            .get_or_default(index)
            .ok_or(AssemblyError::Unreadable)?;
        let mut added = 0usize;
        if let Some(delta) = c.get("delta").filter(|d| !d.is_null()) {
            let delta = delta.as_object().ok_or(AssemblyError::Unreadable)?;
            for (name, value) in delta {
                if value.is_null() {
                    continue;
                }
                match name.as_str() {
                    "role" => {
                        acc.role = Some(value.as_str().ok_or(AssemblyError::Unreadable)?.into())
                    }
                    "content" => {
                        added += append(
                            &mut acc.content,
                            value.as_str().ok_or(AssemblyError::Unreadable)?,
                        );
                    }
                    "refusal" => {
                        added += append(
                            &mut acc.refusal,
                            value.as_str().ok_or(AssemblyError::Unreadable)?,
                        );
                    }
                    "reasoning_content" => {
                        added += append(
                            &mut acc.reasoning_content,
                            value.as_str().ok_or(AssemblyError::Unreadable)?,
                        );
                    }
                    "tool_calls" => {
                        let calls = value.as_array().ok_or(AssemblyError::Unreadable)?;
                        for call in calls {
                            added += tool_call_delta(&mut acc.tool_calls, call)?;
                        }
                    }
                    // An empty value carries nothing to replay (`"annotations": []`).
                    _ if is_empty(value) => {}
                    _ => return Err(AssemblyError::Unsupported),
                }
            }
        }
        if let Some(lp) = c.get("logprobs").filter(|l| !l.is_null()) {
            let lp = lp.as_object().ok_or(AssemblyError::Unreadable)?;
            for (name, slot) in [
                ("content", &mut acc.logprobs_content),
                ("refusal", &mut acc.logprobs_refusal),
            ] {
                if let Some(items) = lp.get(name).filter(|v| !v.is_null()) {
                    let items = items.as_array().ok_or(AssemblyError::Unreadable)?;
                    added += items
                        .iter()
                        .map(|v| serde_json::to_vec(v).map_or(0, |t| t.len()))
                        .sum::<usize>();
                    slot.get_or_insert_with(Vec::new)
                        .extend(items.iter().cloned());
                }
            }
        }
        if let Some(reason) = c.get("finish_reason").filter(|f| !f.is_null()) {
            acc.finish_reason = Some(reason.as_str().ok_or(AssemblyError::Unreadable)?.into());
        }
        Ok(added)
    }

    /// Ends the stream: the assembled `chat.completion`, or why it cannot be stored.
    pub fn finish(mut self) -> Result<Value, AssemblyError> {
        if let Some(why) = self.failed {
            return Err(why);
        }
        let mut tail: Vec<Vec<u8>> = Vec::new();
        self.parser.finish(|e| tail.push(e.data.to_vec()));
        for data in tail {
            if !self.done && data.trim_ascii() != b"[DONE]" {
                // An unterminated last event is a cut stream, not an answer.
                return Err(AssemblyError::Incomplete);
            }
            self.event(&data);
        }
        if let Some(why) = self.failed {
            return Err(why);
        }
        let finished =
            !self.choices.is_empty() && self.choices.values().all(|c| c.finish_reason.is_some());
        if !self.done || !finished {
            return Err(AssemblyError::Incomplete);
        }
        let mut out = Map::new();
        out.insert("id".into(), self.top.remove("id").unwrap_or(Value::Null));
        out.insert("object".into(), Value::from("chat.completion"));
        for name in ["created", "model", "system_fingerprint", "service_tier"] {
            if let Some(v) = self.top.remove(name) {
                out.insert(name.into(), v);
            }
        }
        let choices: Vec<Value> = self
            .choices
            .into_iter()
            .map(|(index, c)| assembled_choice(index, c))
            .collect();
        out.insert("choices".into(), Value::Array(choices));
        if let Some(u) = self.usage {
            out.insert("usage".into(), u);
        }
        Ok(Value::Object(out))
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

fn tool_call_delta(
    calls: &mut VecMap<u64, ToolCall>,
    call: &Value,
) -> Result<usize, AssemblyError> {
    let call = call.as_object().ok_or(AssemblyError::Unreadable)?;
    let index = call
        .get("index")
        .and_then(Value::as_u64)
        .ok_or(AssemblyError::Unreadable)?;
    let acc = calls
        .get_or_default(index)
        .ok_or(AssemblyError::Unreadable)?;
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .ok_or(AssemblyError::Unreadable)
    };
    if let Some(id) = call.get("id").filter(|v| !v.is_null()) {
        acc.id = Some(text(id)?);
    }
    if let Some(kind) = call.get("type").filter(|v| !v.is_null()) {
        acc.kind = Some(text(kind)?);
    }
    let mut added = 0;
    if let Some(f) = call.get("function").filter(|v| !v.is_null()) {
        let f = f.as_object().ok_or(AssemblyError::Unreadable)?;
        if let Some(name) = f.get("name").filter(|v| !v.is_null()) {
            let name = text(name)?;
            added += name.len();
            acc.name.push_str(&name);
        }
        if let Some(args) = f.get("arguments").filter(|v| !v.is_null()) {
            let args = text(args)?;
            added += args.len();
            acc.arguments.push_str(&args);
        }
    }
    for key in call.keys() {
        if !matches!(key.as_str(), "index" | "id" | "type" | "function") {
            return Err(AssemblyError::Unsupported);
        }
    }
    Ok(added)
}

fn assembled_choice(index: u64, c: Choice) -> Value {
    let mut message = Map::new();
    message.insert(
        "role".into(),
        Value::from(c.role.unwrap_or_else(|| "assistant".into())),
    );
    message.insert("content".into(), c.content.map_or(Value::Null, Value::from));
    if let Some(r) = c.refusal {
        message.insert("refusal".into(), Value::from(r));
    }
    if let Some(r) = c.reasoning_content {
        message.insert("reasoning_content".into(), Value::from(r));
    }
    if !c.tool_calls.is_empty() {
        let calls: Vec<Value> = c
            .tool_calls
            .into_values()
            .map(|t| {
                object([
                    ("id", Value::from(t.id)),
                    (
                        "type",
                        Value::from(t.kind.unwrap_or_else(|| "function".into())),
                    ),
                    (
                        "function",
                        object([
                            ("name", Value::from(t.name)),
                            ("arguments", Value::from(t.arguments)),
                        ]),
                    ),
                ])
            })
            .collect();
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    let logprobs = if c.logprobs_content.is_some() || c.logprobs_refusal.is_some() {
        object([
            ("content", Value::from(c.logprobs_content)),
            ("refusal", Value::from(c.logprobs_refusal)),
        ])
    } else {
        Value::Null
    };
    object([
        ("index", Value::from(index)),
        ("message", Value::Object(message)),
        ("logprobs", logprobs),
        ("finish_reason", Value::from(c.finish_reason)),
    ])
}
