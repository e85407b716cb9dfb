//! The one incremental Server-Sent Events parser (WHATWG `text/event-stream` rules), shared by
//! usage accounting ([`crate::usage`]) and provider stream translation ([`crate::translate`]).
//!
//! It observes a copy of each body chunk (`&[u8]`) and never owns or changes the body. Chunks may
//! split events, lines and even CRLF pairs at any byte. Memory is bounded by a maximum event
//! size; what happens to an event whose raw bytes exceed it is the caller's explicit
//! [`OversizedEvent`] policy:
//! * [`OversizedEvent::Skip`] (usage accounting, which only observes): the event is discarded,
//!   counted, and parsing resumes at the next event;
//! * [`OversizedEvent::Fail`] (translation, which cannot drop provider events without
//!   corrupting the answer): parsing stops for good and [`SseParser::failure`] reports it.
//!
//! It must not touch the host, and it never interprets event payloads.

/// Default maximum raw size of one event (1 MiB: an OpenAI Responses `response.completed` event
/// repeats the whole generated output, so events can be large).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What the parser does with an event larger than its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OversizedEvent {
    /// Discard the event, count it ([`SseParser::dropped_events`]) and go on with the next one.
    Skip,
    /// Stop parsing: no further event is dispatched and [`SseParser::failure`] says why.
    Fail,
}

/// Parsing stopped because an event outgrew the cap (only under [`OversizedEvent::Fail`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTooLarge {
    /// The configured maximum event size in bytes.
    pub max_event_bytes: usize,
}

/// One dispatched event; the slices borrow the parser's buffers until the callback returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` field, or `"message"` when the event named none (or it was not UTF-8).
    pub event: &'a str,
    /// The `data:` lines joined with `\n`.
    pub data: &'a [u8],
    /// The last event id seen on the stream so far (`id:` persists across events).
    pub id: &'a [u8],
}

/// An owned copy of an [`SseEvent`], for callers that collect events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedSseEvent {
    /// The event name (`"message"` by default).
    pub event: String,
    /// The joined data.
    pub data: Vec<u8>,
    /// The last event id.
    pub id: Vec<u8>,
}

impl From<&SseEvent<'_>> for OwnedSseEvent {
    fn from(e: &SseEvent<'_>) -> Self {
        Self {
            event: e.event.to_string(),
            data: e.data.to_vec(),
            id: e.id.to_vec(),
        }
    }
}

/// Incremental SSE parser with a bounded buffer.
#[derive(Debug, Clone)]
pub struct SseParser {
    max_event_bytes: usize,
    policy: OversizedEvent,
    /// Set once under [`OversizedEvent::Fail`]: every later input is ignored.
    failure: Option<EventTooLarge>,
    /// Bytes of a line not yet terminated in the chunks seen so far.
    line: Vec<u8>,
    /// The unterminated line outgrew the cap; its bytes are not kept.
    line_overflow: bool,
    /// The previous chunk ended with CR: a leading LF in the next chunk completes that CRLF.
    pending_cr: bool,
    /// No line has been completed yet (a leading BOM is still to be stripped).
    at_stream_start: bool,
    event_type: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    last_event_id: Vec<u8>,
    /// Raw bytes of the current event so far (complete lines plus terminators).
    event_bytes: usize,
    /// The current event outgrew the cap and will be dropped at its end.
    oversized: bool,
    dropped_events: u64,
    dispatched_events: u64,
}

impl Default for SseParser {
    /// A 1 MiB cap, skipping larger events.
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENT_BYTES, OversizedEvent::Skip)
    }
}

impl SseParser {
    /// Creates a parser that holds at most `max_event_bytes` of one event and treats a larger
    /// event as `policy` says.
    pub fn new(max_event_bytes: usize, policy: OversizedEvent) -> Self {
        Self {
            max_event_bytes: max_event_bytes.max(1),
            policy,
            failure: None,
            line: Vec::new(),
            line_overflow: false,
            pending_cr: false,
            at_stream_start: true,
            event_type: Vec::new(),
            data: Vec::new(),
            has_data: false,
            last_event_id: Vec::new(),
            event_bytes: 0,
            oversized: false,
            dropped_events: 0,
            dispatched_events: 0,
        }
    }

    /// The policy for oversized events.
    pub fn policy(&self) -> OversizedEvent {
        self.policy
    }

    /// Why parsing stopped, under [`OversizedEvent::Fail`] (`None` while it goes on).
    pub fn failure(&self) -> Option<EventTooLarge> {
        self.failure
    }

    /// Number of events dropped because they exceeded the size cap.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    /// Number of events dispatched so far.
    pub fn dispatched_events(&self) -> u64 {
        self.dispatched_events
    }

    /// Bytes currently held for the unfinished event (always about `max_event_bytes` or less).
    pub fn buffered_bytes(&self) -> usize {
        self.line.len() + self.data.len() + self.event_type.len() + self.last_event_id.len()
    }

    /// True when the last chunk ended with a CR whose possible LF has not arrived yet.
    pub fn pending_cr(&self) -> bool {
        self.pending_cr
    }

    /// Feeds one chunk; `on_event` is called for every event the chunk completes.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(&SseEvent<'_>)) {
        self.feed_with_boundaries(chunk, |event, _| {
            if let Some(e) = event {
                on_event(e);
            }
        });
    }

    /// Feeds one chunk and returns owned copies of the events it completes (convenience for
    /// tests and benches; [`SseParser::feed`] avoids the copies).
    pub fn feed_collect(&mut self, chunk: &[u8]) -> Vec<OwnedSseEvent> {
        let mut out = Vec::new();
        self.feed(chunk, |e| out.push(OwnedSseEvent::from(e)));
        out
    }

    /// Ends the stream. The spec discards an unterminated final event; this parser is lenient
    /// and dispatches it when it holds data, because some servers end without the blank line.
    pub fn finish(&mut self, mut on_event: impl FnMut(&SseEvent<'_>)) {
        self.pending_cr = false;
        if self.failure.is_some() {
            return;
        }
        if !self.line.is_empty() || self.line_overflow {
            self.complete_line(&[]);
        }
        self.end_event(
            |event, _| {
                if let Some(e) = event {
                    on_event(e);
                }
            },
            0,
        );
    }

    /// Feeds one chunk; `on_boundary` is called at every blank line (event boundary) with the
    /// dispatched event, if any, and the offset in `chunk` just past the blank line.
    pub fn feed_with_boundaries(
        &mut self,
        chunk: &[u8],
        mut on_boundary: impl FnMut(Option<&SseEvent<'_>>, usize),
    ) {
        if self.failure.is_some() {
            return;
        }
        let mut pos = 0usize;
        if self.pending_cr {
            self.pending_cr = false;
            if chunk.first() == Some(&b'\n') {
                pos = 1;
            }
        }
        while let Some(rest) = chunk.get(pos..) {
            if rest.is_empty() {
                break;
            }
            let Some(eol) = find_line_end(rest) else {
                self.append_partial(rest);
                if self.failure.is_some() {
                    return;
                }
                break;
            };
            let (content, terminator) = rest.split_at(eol);
            let mut consumed = eol + 1;
            if terminator.first() == Some(&b'\r') {
                match terminator.get(1) {
                    Some(b'\n') => consumed += 1,
                    Some(_) => {}
                    None => self.pending_cr = true,
                }
            }
            pos += consumed;
            let blank = self.complete_line(content);
            if self.failure.is_some() {
                return;
            }
            if blank {
                self.end_event(&mut on_boundary, pos);
            }
        }
    }

    /// Adds bytes of an unterminated line to the line buffer, respecting the cap.
    fn append_partial(&mut self, bytes: &[u8]) {
        if self.line_overflow {
            return;
        }
        let needed = self
            .event_bytes
            .saturating_add(self.line.len())
            .saturating_add(bytes.len());
        if needed > self.max_event_bytes {
            self.line_overflow = true;
            self.line.clear();
            self.mark_oversized();
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    /// Completes a line whose last part is `tail`; returns true when the line is blank.
    fn complete_line(&mut self, tail: &[u8]) -> bool {
        if self.line_overflow {
            self.line_overflow = false;
            self.at_stream_start = false;
            self.event_bytes = self.event_bytes.saturating_add(tail.len() + 1);
            return false;
        }
        if self.line.is_empty() {
            return self.process_line(tail);
        }
        self.append_partial(tail);
        if self.failure.is_some() {
            return false;
        }
        if self.line_overflow {
            self.line_overflow = false;
            self.at_stream_start = false;
            return false;
        }
        let line = std::mem::take(&mut self.line);
        let blank = self.process_line(&line);
        self.line = line;
        self.line.clear();
        blank
    }

    /// Interprets one complete line; returns true when it is blank (an event boundary).
    fn process_line(&mut self, mut line: &[u8]) -> bool {
        if self.at_stream_start {
            self.at_stream_start = false;
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        if line.is_empty() {
            return true;
        }
        self.event_bytes = self.event_bytes.saturating_add(line.len() + 1);
        if self.event_bytes > self.max_event_bytes {
            self.mark_oversized();
        }
        if self.oversized || line.first() == Some(&b':') {
            return false;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let (field, rest) = line.split_at(colon);
                let value = rest.get(1..).unwrap_or_default();
                (field, value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                self.event_type.clear();
                self.event_type.extend_from_slice(value);
            }
            b"id" if !value.contains(&0) => {
                self.last_event_id.clear();
                self.last_event_id.extend_from_slice(value);
            }
            _ => {}
        }
        false
    }

    fn mark_oversized(&mut self) {
        self.oversized = true;
        self.data.clear();
        self.event_type.clear();
        self.has_data = false;
        if self.policy == OversizedEvent::Fail {
            self.failure = Some(EventTooLarge {
                max_event_bytes: self.max_event_bytes,
            });
            self.line.clear();
            self.line_overflow = false;
        }
    }

    /// Handles a blank line: dispatches or drops the current event and resets for the next.
    fn end_event(&mut self, mut on_boundary: impl FnMut(Option<&SseEvent<'_>>, usize), at: usize) {
        if self.oversized {
            self.dropped_events += 1;
            on_boundary(None, at);
        } else if self.has_data {
            self.dispatched_events += 1;
            let name = std::str::from_utf8(&self.event_type).unwrap_or_default();
            let event = SseEvent {
                event: if name.is_empty() { "message" } else { name },
                data: &self.data,
                id: &self.last_event_id,
            };
            on_boundary(Some(&event), at);
        } else {
            on_boundary(None, at);
        }
        self.oversized = false;
        self.has_data = false;
        self.data.clear();
        self.event_type.clear();
        self.event_bytes = 0;
    }
}

/// Position of the first CR or LF in `bytes`.
#[inline]
fn find_line_end(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n' || b == b'\r')
}

#[cfg(test)]
mod tests;
