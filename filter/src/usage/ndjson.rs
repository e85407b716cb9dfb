//! Incremental newline-delimited JSON splitter (Ollama native streaming, `application/x-ndjson`).
//!
//! It observes a copy of each chunk and yields complete lines; it does not parse JSON. Lines end
//! at LF (a trailing CR is trimmed); whitespace-only lines are skipped. Memory is bounded by a
//! configurable maximum line size: a longer line is discarded and counted.

/// Default maximum size of one NDJSON line (1 MiB).
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;

/// Incremental NDJSON line splitter with a bounded buffer.
#[derive(Debug, Clone)]
pub struct NdjsonParser {
    max_line_bytes: usize,
    line: Vec<u8>,
    overflow: bool,
    dropped_lines: u64,
}

impl Default for NdjsonParser {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINE_BYTES)
    }
}

impl NdjsonParser {
    /// Creates a splitter that drops lines longer than `max_line_bytes`.
    pub fn new(max_line_bytes: usize) -> Self {
        Self {
            max_line_bytes: max_line_bytes.max(1),
            line: Vec::new(),
            overflow: false,
            dropped_lines: 0,
        }
    }

    /// Number of lines dropped because they exceeded the cap.
    pub fn dropped_lines(&self) -> u64 {
        self.dropped_lines
    }

    /// Bytes currently held for the unfinished line.
    pub fn buffered_bytes(&self) -> usize {
        self.line.len()
    }

    /// Feeds one chunk; `on_line` is called with every complete non-blank line (without its
    /// terminator).
    pub fn feed(&mut self, chunk: &[u8], mut on_line: impl FnMut(&[u8])) {
        let mut rest = chunk;
        while let Some(eol) = rest.iter().position(|&b| b == b'\n') {
            let (content, after) = rest.split_at(eol);
            rest = after.get(1..).unwrap_or_default();
            if self.line.is_empty() && !self.overflow {
                if content.len() > self.max_line_bytes {
                    self.dropped_lines += 1;
                } else {
                    emit(content, &mut on_line);
                }
            } else {
                self.append(content);
                self.end_line(&mut on_line);
            }
        }
        self.append(rest);
    }

    /// Ends the stream, emitting a final line that had no terminator.
    pub fn finish(&mut self, mut on_line: impl FnMut(&[u8])) {
        if !self.line.is_empty() || self.overflow {
            self.end_line(&mut on_line);
        }
    }

    fn append(&mut self, bytes: &[u8]) {
        if self.overflow || bytes.is_empty() {
            return;
        }
        if self.line.len().saturating_add(bytes.len()) > self.max_line_bytes {
            self.overflow = true;
            self.line.clear();
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self, on_line: &mut impl FnMut(&[u8])) {
        if self.overflow {
            self.overflow = false;
            self.dropped_lines += 1;
        } else {
            emit(&self.line, on_line);
        }
        self.line.clear();
    }
}

fn emit(line: &[u8], on_line: &mut impl FnMut(&[u8])) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if !line.iter().all(u8::is_ascii_whitespace) {
        on_line(line);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn lines(p: &mut NdjsonParser, chunks: &[&[u8]]) -> Vec<String> {
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, |l| out.push(String::from_utf8(l.to_vec()).unwrap()));
        }
        p.finish(|l| out.push(String::from_utf8(l.to_vec()).unwrap()));
        out
    }

    #[test]
    fn splits_lines_at_any_boundary() {
        let input = b"{\"a\":1}\r\n\n  \n{\"b\":2}\n{\"c\":3}";
        let expected = vec!["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"];
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            assert_eq!(lines(&mut NdjsonParser::default(), &[a, b]), expected);
        }
    }

    #[test]
    fn oversized_line_is_dropped() {
        let big = "x".repeat(300);
        let input = format!("{{\"a\":1}}\n{big}\n{{\"b\":2}}\n");
        let mut p = NdjsonParser::new(100);
        let chunks: Vec<&[u8]> = input.as_bytes().chunks(9).collect();
        assert_eq!(lines(&mut p, &chunks), vec!["{\"a\":1}", "{\"b\":2}"]);
        assert_eq!(p.dropped_lines(), 1);
    }
}
