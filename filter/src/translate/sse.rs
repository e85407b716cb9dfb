//! A small incremental Server-Sent Events splitter for provider streams.
//!
//! Chunks may cut lines, events and CRLF pairs anywhere. Only the incomplete trailing event is
//! held (its unterminated line plus the data lines seen so far), and that is capped: an event
//! larger than the cap is an error, because a translated stream cannot skip provider events
//! without corrupting the answer. Lines end at LF, CR or CRLF; `event:` and `data:` fields are
//! kept (several `data:` lines join with `\n`), comments and other fields are ignored, and a
//! blank line dispatches the event if it has data.

/// The event held when the cap was exceeded was larger than the configured maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTooLarge {
    /// The configured maximum event size in bytes.
    pub max_event_bytes: usize,
}

/// Incremental SSE splitter with a bounded buffer.
#[derive(Debug, Clone)]
pub struct SseSplitter {
    max_event_bytes: usize,
    /// Bytes of a line not yet terminated.
    line: Vec<u8>,
    /// The previous chunk ended with CR; a leading LF completes that CRLF.
    pending_cr: bool,
    /// No line has completed yet (a leading UTF-8 BOM is still to be stripped).
    at_start: bool,
    event_name: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
}

impl SseSplitter {
    /// A splitter that holds at most `max_event_bytes` of one event.
    pub fn new(max_event_bytes: usize) -> SseSplitter {
        SseSplitter {
            max_event_bytes,
            line: Vec::new(),
            pending_cr: false,
            at_start: true,
            event_name: Vec::new(),
            data: Vec::new(),
            has_data: false,
        }
    }

    /// Bytes currently held for the incomplete trailing event.
    pub fn buffered_bytes(&self) -> usize {
        self.line.len() + self.data.len() + self.event_name.len()
    }

    /// Feeds a chunk; `on_event(name, data)` runs for every event completed by it, in order
    /// (`name` is empty when the event named none).
    pub fn push<F>(&mut self, chunk: &[u8], on_event: &mut F) -> Result<(), EventTooLarge>
    where
        F: FnMut(&[u8], &[u8]),
    {
        let mut rest = chunk;
        if self.pending_cr {
            self.pending_cr = false;
            if let Some(after_lf) = rest.strip_prefix(b"\n") {
                rest = after_lf;
            }
        }
        while let Some((line, after)) = rest
            .iter()
            .position(|b| *b == b'\n' || *b == b'\r')
            .and_then(|end| rest.split_at_checked(end))
        {
            let terminator_is_cr = after.first() == Some(&b'\r');
            let mut after = after.get(1..).unwrap_or_default();
            if terminator_is_cr {
                match after.first() {
                    Some(b'\n') => after = after.get(1..).unwrap_or_default(),
                    Some(_) => {}
                    None => self.pending_cr = true,
                }
            }
            self.check_size(line.len())?;
            if self.line.is_empty() {
                self.process_line(line, on_event);
            } else {
                let mut whole = std::mem::take(&mut self.line);
                whole.extend_from_slice(line);
                self.process_line(&whole, on_event);
                whole.clear();
                self.line = whole;
            }
            rest = after;
        }
        if !rest.is_empty() {
            self.check_size(rest.len())?;
            self.line.extend_from_slice(rest);
        }
        Ok(())
    }

    /// Ends the stream: an event left without its closing blank line is dispatched anyway
    /// (providers sometimes omit the last one).
    pub fn finish<F>(&mut self, on_event: &mut F)
    where
        F: FnMut(&[u8], &[u8]),
    {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, on_event);
        }
        self.process_line(b"", on_event);
        self.pending_cr = false;
    }

    fn check_size(&self, incoming: usize) -> Result<(), EventTooLarge> {
        if self.buffered_bytes().saturating_add(incoming) > self.max_event_bytes {
            Err(EventTooLarge {
                max_event_bytes: self.max_event_bytes,
            })
        } else {
            Ok(())
        }
    }

    fn process_line<F>(&mut self, line: &[u8], on_event: &mut F)
    where
        F: FnMut(&[u8], &[u8]),
    {
        let line = if self.at_start {
            self.at_start = false;
            line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
        } else {
            line
        };
        if line.is_empty() {
            if self.has_data {
                on_event(&self.event_name, &self.data);
            }
            self.event_name.clear();
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line.first() == Some(&b':') {
            return;
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(colon) => {
                let (field, value) = line.split_at(colon);
                let value = value.get(1..).unwrap_or_default();
                (field, value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"event" => {
                self.event_name.clear();
                self.event_name.extend_from_slice(value);
            }
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            _ => {}
        }
    }
}
