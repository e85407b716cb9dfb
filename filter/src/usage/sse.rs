//! Incremental Server-Sent Events parser (WHATWG `text/event-stream` rules).
//!
//! It observes a copy of each body chunk (`&[u8]`) and never owns or changes the body. Chunks may
//! split events, lines and even CRLF pairs at any byte. Memory is bounded by a configurable
//! maximum event size: an event whose raw bytes exceed it is discarded (and counted) and parsing
//! resumes at the next event.

/// Default maximum raw size of one event (1 MiB: an OpenAI Responses `response.completed` event
/// repeats the whole generated output, so events can be large).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

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
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseParser {
    /// Creates a parser that drops events whose raw size exceeds `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            max_event_bytes: max_event_bytes.max(1),
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
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Vec<OwnedSseEvent> {
        let mut p = SseParser::default();
        let mut out = p.feed_collect(input);
        p.finish(|e| out.push(e.into()));
        out
    }

    fn ev(event: &str, data: &str) -> (String, String) {
        (event.to_string(), data.to_string())
    }

    fn simple(events: &[OwnedSseEvent]) -> Vec<(String, String)> {
        events
            .iter()
            .map(|e| (e.event.clone(), String::from_utf8(e.data.clone()).unwrap()))
            .collect()
    }

    const SAMPLE: &str =
        ": comment\nevent: a\ndata: one\ndata:two\nid: 7\n\ndata: x\n\n\n\nevent: b\ndata\n\n";

    #[test]
    fn parses_fields_comments_and_multiline_data() {
        let events = parse_all(SAMPLE.as_bytes());
        assert_eq!(
            simple(&events),
            vec![ev("a", "one\ntwo"), ev("message", "x"), ev("b", "")]
        );
        assert_eq!(events[0].id, b"7");
        assert_eq!(events[1].id, b"7", "id persists");
    }

    #[test]
    fn all_line_endings_and_every_split_agree() {
        let lf = SAMPLE.to_string();
        let expected = simple(&parse_all(lf.as_bytes()));
        for variant in [lf.clone(), lf.replace('\n', "\r\n"), lf.replace('\n', "\r")] {
            let bytes = variant.as_bytes();
            assert_eq!(simple(&parse_all(bytes)), expected, "{variant:?}");
            for split in 0..=bytes.len() {
                let mut p = SseParser::default();
                let (a, b) = bytes.split_at(split);
                let mut out = p.feed_collect(a);
                out.extend(p.feed_collect(b));
                p.finish(|e| out.push(e.into()));
                assert_eq!(simple(&out), expected, "split {split} of {variant:?}");
            }
            let mut p = SseParser::default();
            let mut out = Vec::new();
            for b in bytes {
                out.extend(p.feed_collect(std::slice::from_ref(b)));
            }
            p.finish(|e| out.push(e.into()));
            assert_eq!(simple(&out), expected);
        }
    }

    #[test]
    fn event_without_data_is_not_dispatched_and_bom_is_stripped() {
        let events = parse_all(b"\xEF\xBB\xBFdata: a\n\nevent: only\n\n");
        assert_eq!(simple(&events), vec![ev("message", "a")]);
    }

    #[test]
    fn oversized_event_is_dropped_and_parsing_continues() {
        let big = "x".repeat(5000);
        let input = format!("data: small\n\ndata: {big}\ndata: more\n\ndata: after\n\n");
        for chunk_size in [1usize, 7, 100, 10_000] {
            let mut p = SseParser::new(1024);
            let mut out = Vec::new();
            for c in input.as_bytes().chunks(chunk_size) {
                out.extend(p.feed_collect(c));
                assert!(p.buffered_bytes() <= 1024 + 16);
            }
            assert_eq!(
                simple(&out),
                vec![ev("message", "small"), ev("message", "after")]
            );
            assert_eq!(p.dropped_events(), 1);
            assert_eq!(p.dispatched_events(), 2);
        }
    }

    #[test]
    fn boundaries_report_offsets_after_blank_lines() {
        let mut p = SseParser::default();
        let mut seen = Vec::new();
        p.feed_with_boundaries(b": ping\n\ndata: a\r\n\r\nda", |e, at| {
            seen.push((e.map(|e| e.data.to_vec()), at));
        });
        assert_eq!(seen, vec![(None, 8), (Some(b"a".to_vec()), 19)]);
    }

    #[test]
    fn finish_dispatches_unterminated_event() {
        let mut p = SseParser::default();
        let mut out = p.feed_collect(b"data: [DONE]");
        assert!(out.is_empty());
        p.finish(|e| out.push(e.into()));
        assert_eq!(simple(&out), vec![ev("message", "[DONE]")]);
    }
}
