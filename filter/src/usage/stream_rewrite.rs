//! Making OpenAI chat streams report usage without the client noticing.
//!
//! An OpenAI Chat Completions stream carries usage only when the request sets
//! `stream_options.include_usage: true`. When the client did not set it, the filter adds it to
//! the request ([`ensure_include_usage`]) so the usage can be accounted. The provider then sends
//! one extra chunk before `data: [DONE]` with `choices: []` and the `usage`. Decision: since the
//! client did not ask for that chunk, the filter strips it ([`SseChunkFilter`] with
//! [`is_injected_usage_chunk`]) so the client sees exactly the events it expected. (The other
//! chunks then carry `"usage": null`, which is part of the documented chunk schema and left
//! untouched.) The usage tracker observes the upstream bytes before filtering, so it still sees
//! the usage chunk.

use crate::sse::{OversizedEvent, SseEvent, SseParser, DEFAULT_MAX_EVENT_BYTES};
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::ops::Range;

/// For an OpenAI Chat Completions request body with `"stream": true` that does not already set
/// `stream_options.include_usage: true`, returns the body rewritten to set it; `None` when no
/// rewrite is needed or the body is not a JSON object.
///
/// The rewrite is a byte splice: every other byte of the body (field order, number formatting,
/// whitespace) is preserved. Call it only for [`super::ApiKind::OpenAiChat`] requests.
pub fn ensure_include_usage(body: &[u8]) -> Option<Vec<u8>> {
    let open = first_non_ws(body, 0)?;
    if body.get(open) != Some(&b'{') {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    if object.get("stream").and_then(serde_json::Value::as_bool) != Some(true) {
        return None;
    }
    let requested = object
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(serde_json::Value::as_bool)
        == Some(true);
    if requested {
        return None;
    }
    let (members, _) = object_members(body, open)?;
    let splice = match last_member(&members, body, b"stream_options") {
        None => insert_member(body, open, !members.is_empty(), INCLUDE_USAGE_MEMBER),
        Some(options) => {
            let value_start = options.value.start;
            if body.get(value_start) == Some(&b'{') {
                let (inner, _) = object_members(body, value_start)?;
                match last_member(&inner, body, b"include_usage") {
                    Some(flag) => replace_span(body, flag.value.clone(), b"true"),
                    None => {
                        insert_member(body, value_start, !inner.is_empty(), INCLUDE_USAGE_FIELD)
                    }
                }
            } else {
                replace_span(body, options.value.clone(), INCLUDE_USAGE_OBJECT)
            }
        }
    };
    Some(splice)
}

const INCLUDE_USAGE_MEMBER: &[u8] = br#""stream_options":{"include_usage":true}"#;
const INCLUDE_USAGE_FIELD: &[u8] = br#""include_usage":true"#;
const INCLUDE_USAGE_OBJECT: &[u8] = br#"{"include_usage":true}"#;

/// Whether a streamed chunk's data is the usage-only chunk (`choices` empty or absent, `usage`
/// present) that `include_usage` adds. Use it to drop that chunk when the filter, not the
/// client, asked for it. A chunk whose `choices` carry anything is never matched, so vLLM's
/// per-chunk usage (`continuous_usage_stats`) is left alone.
pub fn is_injected_usage_chunk(data: &[u8]) -> bool {
    #[derive(Deserialize, Default)]
    #[serde(remote = "Self")]
    #[serde(default)]
    struct Probe {
        choices: Option<Vec<IgnoredAny>>,
        usage: Option<IgnoredAny>,
    }
    crate::json_object::object_only!(Probe);
    let data = data.trim_ascii();
    if data.first() != Some(&b'{') {
        return false;
    }
    match serde_json::from_slice::<Probe>(data) {
        Ok(p) => p.usage.is_some() && p.choices.is_none_or(|c| c.is_empty()),
        Err(_) => false,
    }
}

/// SSE-aware pass-through that can drop whole events.
///
/// Every byte is forwarded unchanged except the bytes of the events the predicate drops (from
/// the previous event boundary through the dropping blank line). Only an incomplete trailing
/// event is held back between chunks; if it grows past the cap it is forwarded as is and that
/// event can no longer be dropped, so memory stays bounded.
#[derive(Debug, Clone)]
pub struct SseChunkFilter {
    parser: SseParser,
    held: Vec<u8>,
    max_held_bytes: usize,
    passthrough: bool,
    /// The last boundary ended with a CR at a chunk's end; a leading LF in the next chunk
    /// completes it and goes where that event went (`Some(true)`: dropped).
    boundary_lf: Option<bool>,
    dropped_events: u64,
}

impl Default for SseChunkFilter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseChunkFilter {
    /// Creates a filter holding back at most `max_event_bytes` of an unfinished event.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            // An event too large to judge is forwarded as is (see `passthrough`), never failed.
            parser: SseParser::new(max_event_bytes, OversizedEvent::Skip),
            held: Vec::new(),
            max_held_bytes: max_event_bytes,
            passthrough: false,
            boundary_lf: None,
            dropped_events: 0,
        }
    }

    /// Number of events dropped so far.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    /// Bytes currently held back (an unfinished event).
    pub fn held_bytes(&self) -> usize {
        self.held.len()
    }

    /// Takes one upstream chunk and returns the bytes to forward now; `should_drop` decides for
    /// each complete event.
    pub fn push(
        &mut self,
        chunk: &[u8],
        mut should_drop: impl FnMut(&SseEvent<'_>) -> bool,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.held.len() + chunk.len());
        let mut segment_start = 0usize;
        if let Some(dropped) = self.boundary_lf.take() {
            if chunk.first() == Some(&b'\n') {
                segment_start = 1;
                if !dropped {
                    out.push(b'\n');
                }
            }
        }
        let mut last_dropped = false;
        let mut boundary_seen = false;
        let Self {
            parser,
            held,
            passthrough,
            dropped_events,
            ..
        } = self;
        parser.feed_with_boundaries(chunk, |event, end| {
            let drop = !*passthrough && event.is_some_and(&mut should_drop);
            if drop {
                *dropped_events += 1;
            } else {
                out.extend_from_slice(held);
                out.extend_from_slice(chunk.get(segment_start..end).unwrap_or_default());
            }
            held.clear();
            *passthrough = false;
            segment_start = end;
            last_dropped = drop;
            boundary_seen = true;
        });
        // An event ending in a CR at the chunk's end: its LF may open the next chunk.
        if segment_start == chunk.len() && self.parser.pending_cr() && boundary_seen {
            self.boundary_lf = Some(last_dropped);
        }
        let rest = chunk.get(segment_start..).unwrap_or_default();
        if self.passthrough {
            out.extend_from_slice(rest);
        } else {
            self.held.extend_from_slice(rest);
            if self.held.len() > self.max_held_bytes {
                out.append(&mut self.held);
                self.passthrough = true;
            }
        }
        out
    }

    /// [`SseChunkFilter::push`] with the predicate that drops the usage-only chunk added by
    /// [`ensure_include_usage`].
    pub fn push_dropping_injected_usage(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.push(chunk, |event| is_injected_usage_chunk(event.data))
    }

    /// Ends the stream: returns the held-back bytes of an unterminated final event, unchanged.
    pub fn finish(&mut self) -> Vec<u8> {
        self.passthrough = false;
        std::mem::take(&mut self.held)
    }
}

/// One object member: the key's raw bytes (between the quotes) and the value's span.
struct Member {
    key: Range<usize>,
    value: Range<usize>,
}

fn last_member<'m>(members: &'m [Member], json: &[u8], key: &[u8]) -> Option<&'m Member> {
    members
        .iter()
        .rev()
        .find(|m| json.get(m.key.clone()) == Some(key))
}

fn insert_member(json: &[u8], open_brace: usize, has_members: bool, member: &[u8]) -> Vec<u8> {
    let (head, tail) = json.split_at_checked(open_brace + 1).unwrap_or((json, &[]));
    let mut out = Vec::with_capacity(json.len() + member.len() + 1);
    out.extend_from_slice(head);
    out.extend_from_slice(member);
    if has_members {
        out.push(b',');
    }
    out.extend_from_slice(tail);
    out
}

fn replace_span(json: &[u8], span: Range<usize>, with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + with.len());
    out.extend_from_slice(json.get(..span.start).unwrap_or_default());
    out.extend_from_slice(with);
    out.extend_from_slice(json.get(span.end..).unwrap_or_default());
    out
}

fn first_non_ws(json: &[u8], from: usize) -> Option<usize> {
    json.get(from..)?
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| from + i)
}

/// End (exclusive) of the string starting with the quote at `at`.
fn string_end(json: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    loop {
        match json.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// End (exclusive) of the JSON value starting at `at` (the JSON is known to be valid).
fn value_end(json: &[u8], at: usize) -> Option<usize> {
    match json.get(at)? {
        b'"' => string_end(json, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            loop {
                match json.get(i)? {
                    b'"' => {
                        i = string_end(json, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let rest = json.get(at..)?;
            let len = rest
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                .unwrap_or(rest.len());
            Some(at + len)
        }
    }
}

/// The members of the object whose `{` is at `open`, and the index of its `}`.
fn object_members(json: &[u8], open: usize) -> Option<(Vec<Member>, usize)> {
    let mut members = Vec::new();
    let mut i = first_non_ws(json, open + 1)?;
    if json.get(i) == Some(&b'}') {
        return Some((members, i));
    }
    loop {
        if json.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(json, i)?;
        let colon = first_non_ws(json, key_end)?;
        if json.get(colon) != Some(&b':') {
            return None;
        }
        let value_start = first_non_ws(json, colon + 1)?;
        let value_stop = value_end(json, value_start)?;
        members.push(Member {
            key: i + 1..key_end - 1,
            value: value_start..value_stop,
        });
        let next = first_non_ws(json, value_stop)?;
        match json.get(next)? {
            b',' => i = first_non_ws(json, next + 1)?,
            b'}' => return Some((members, next)),
            _ => return None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn rewrite(body: &str) -> Option<String> {
        ensure_include_usage(body.as_bytes()).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn adds_stream_options_preserving_bytes() {
        let body = r#" { "model": "gpt-4o", "stream": true, "temperature": 0.10, "messages": [{"role":"user","content":"a \"}\" b"}] }"#;
        let out = rewrite(body).unwrap();
        assert_eq!(
            out,
            r#" {"stream_options":{"include_usage":true}, "model": "gpt-4o", "stream": true, "temperature": 0.10, "messages": [{"role":"user","content":"a \"}\" b"}] }"#
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
    }

    #[test]
    fn edits_existing_stream_options() {
        assert_eq!(
            rewrite(r#"{"stream":true,"stream_options":{"include_usage":false}}"#).unwrap(),
            r#"{"stream":true,"stream_options":{"include_usage":true}}"#
        );
        assert_eq!(
            rewrite(r#"{"stream":true,"stream_options":{"continuous_usage_stats":true}}"#).unwrap(),
            r#"{"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}"#
        );
        assert_eq!(
            rewrite(r#"{"stream":true,"stream_options":{ }}"#).unwrap(),
            r#"{"stream":true,"stream_options":{"include_usage":true }}"#
        );
        assert_eq!(
            rewrite(r#"{"stream":true,"stream_options":null}"#).unwrap(),
            r#"{"stream":true,"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn leaves_other_requests_alone() {
        assert_eq!(rewrite(r#"{"stream":false}"#), None);
        assert_eq!(rewrite(r#"{"model":"m"}"#), None);
        assert_eq!(
            rewrite(r#"{"stream":true,"stream_options":{"include_usage":true}}"#),
            None
        );
        assert_eq!(rewrite(r#"[{"stream":true}]"#), None);
        assert_eq!(rewrite("not json"), None);
        assert_eq!(rewrite(r#"{"stream":true"#), None);
    }

    #[test]
    fn recognises_the_usage_only_chunk() {
        assert!(is_injected_usage_chunk(
            br#"{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#
        ));
        assert!(!is_injected_usage_chunk(
            br#"{"choices":[{"index":0,"delta":{"content":"x"}}],"usage":{"prompt_tokens":1}}"#
        ));
        assert!(!is_injected_usage_chunk(
            br#"{"choices":[],"usage":null,"prompt_filter_results":[]}"#
        ));
        assert!(!is_injected_usage_chunk(b"[DONE]"));
    }

    const STREAM: &str = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
        ": keepalive\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6}}\n\n",
        "data: [DONE]\n\n",
    );

    fn expected(stream: &str, sep: &str) -> String {
        let usage_event = format!(
            "data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6}}}}{sep}{sep}"
        );
        stream.replacen(&usage_event, "", 1)
    }

    #[test]
    fn chunk_filter_drops_only_the_usage_event_at_every_split() {
        for sep in ["\n", "\r\n", "\r"] {
            let stream = STREAM.replace('\n', sep);
            let want = expected(&stream, sep);
            assert_ne!(want, stream);
            let bytes = stream.as_bytes();
            for split in 0..=bytes.len() {
                let (a, b) = bytes.split_at(split);
                let mut f = SseChunkFilter::default();
                let mut out = f.push_dropping_injected_usage(a);
                out.extend(f.push_dropping_injected_usage(b));
                out.extend(f.finish());
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    want,
                    "split {split} {sep:?}"
                );
                assert_eq!(f.dropped_events(), 1);
            }
            let mut f = SseChunkFilter::default();
            let mut out = Vec::new();
            for b in bytes {
                out.extend(f.push_dropping_injected_usage(std::slice::from_ref(b)));
            }
            out.extend(f.finish());
            assert_eq!(String::from_utf8(out).unwrap(), want, "bytewise {sep:?}");
        }
    }

    #[test]
    fn chunk_filter_forwards_oversized_events_unchanged() {
        let big = "x".repeat(500);
        let stream = format!("data: {big}\n\ndata: {{\"choices\":[],\"usage\":{{}}}}\n\n");
        let mut f = SseChunkFilter::new(100);
        let mut out = Vec::new();
        for c in stream.as_bytes().chunks(30) {
            out.extend(f.push_dropping_injected_usage(c));
            assert!(f.held_bytes() <= 130);
        }
        out.extend(f.finish());
        assert_eq!(String::from_utf8(out).unwrap(), format!("data: {big}\n\n"));
    }
}
