//! What one Envoy retry attempt tells the next when Envoy walks an aggregate cluster of
//! providers and tollgate's upstream stage rewrites each attempt.
//!
//! Envoy replays the original request body for every attempt but keeps header edits, so the
//! upstream stage cannot rely on `:path` (an earlier attempt rewrote it) and has nowhere else to
//! note how earlier attempts ended. It keeps both in one request header, [`CARRY_HEADER`]: read and
//! removed before an attempt leaves (the provider never sees it), written back when the attempt
//! ends. The downstream stage reads the final value to report every attempt when all failed.
//!
//! Encoding: `p=<path>;a=<provider>,<result>,<ms>|<provider>,<result>,<ms>…` with `%XX` escapes
//! for the separators, `%` and anything outside visible ASCII. Bounded: at most
//! [`MAX_NOTES`] notes, each field at most [`MAX_FIELD_BYTES`] bytes.

/// The request header carrying the state between attempts.
pub const CARRY_HEADER: &str = "x-tollgate-carry";

/// The response header naming the provider that answered (set by the upstream stage, read and
/// removed by the downstream stage).
pub const PROVIDER_HEADER: &str = "x-tollgate-provider";

/// Most attempt notes kept; later ones replace the newest.
pub const MAX_NOTES: usize = 16;

/// Longest field kept, in bytes (longer ones are cut).
pub const MAX_FIELD_BYTES: usize = 256;

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptNote {
    /// Provider name.
    pub provider: String,
    /// Status code, or a word: `reset` (no response), a skip reason (`circuit_open`, …).
    pub result: String,
    /// How long the attempt took (ms).
    pub elapsed_ms: u64,
}

/// The state carried between attempts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carry {
    /// The client's `:path`, before any attempt rewrote it.
    pub original_path: String,
    /// Attempts so far, oldest first.
    pub notes: Vec<AttemptNote>,
}

impl Carry {
    /// Starts the carry for a request whose client path is `path`.
    pub fn new(path: &str) -> Self {
        Self {
            original_path: cut(path).to_string(),
            notes: Vec::new(),
        }
    }

    /// Adds a note (bounded: past [`MAX_NOTES`] the newest note is replaced).
    pub fn push(&mut self, provider: &str, result: &str, elapsed_ms: u64) {
        let note = AttemptNote {
            provider: cut(provider).to_string(),
            result: cut(result).to_string(),
            elapsed_ms,
        };
        if self.notes.len() >= MAX_NOTES {
            self.notes.pop();
        }
        self.notes.push(note);
    }

    /// The header value.
    pub fn encode(&self) -> String {
        let mut out = String::from("p=");
        escape_into(&self.original_path, &mut out);
        out.push_str(";a=");
        for (i, note) in self.notes.iter().enumerate() {
            if i > 0 {
                out.push('|');
            }
            escape_into(&note.provider, &mut out);
            out.push(',');
            escape_into(&note.result, &mut out);
            out.push(',');
            out.push_str(&note.elapsed_ms.to_string());
        }
        out
    }

    /// Reads a header value; `None` when it is not a carry this module wrote.
    pub fn decode(value: &str) -> Option<Self> {
        let rest = value.strip_prefix("p=")?;
        let (path, notes) = rest.split_once(";a=")?;
        let mut carry = Self {
            original_path: unescape(path)?,
            notes: Vec::new(),
        };
        if notes.is_empty() {
            return Some(carry);
        }
        for note in notes.split('|').take(MAX_NOTES) {
            let mut fields = note.split(',');
            let provider = unescape(fields.next()?)?;
            let result = unescape(fields.next()?)?;
            let elapsed_ms = fields.next()?.parse().ok()?;
            if fields.next().is_some() {
                return None;
            }
            carry.push(&provider, &result, elapsed_ms);
        }
        Some(carry)
    }

    /// One line per attempt for an error message: `openai: 500 after 12 ms; anthropic: reset …`.
    pub fn summary(&self) -> String {
        self.notes
            .iter()
            .map(|n| format!("{}: {} after {} ms", n.provider, n.result, n.elapsed_ms))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// `text` cut to [`MAX_FIELD_BYTES`] on a character boundary.
fn cut(text: &str) -> &str {
    if text.len() <= MAX_FIELD_BYTES {
        return text;
    }
    let mut end = MAX_FIELD_BYTES;
    while !text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    text.get(..end).unwrap_or_default()
}

fn escape_into(text: &str, out: &mut String) {
    for b in text.bytes() {
        let plain = b.is_ascii_graphic() && !matches!(b, b'%' | b';' | b'|' | b',' | b'=');
        if plain {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fn unescape(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut iter = text.bytes();
    while let Some(b) = iter.next() {
        if b == b'%' {
            let hi = char::from(iter.next()?).to_digit(16)?;
            let lo = char::from(iter.next()?).to_digit(16)?;
            bytes.push(u8::try_from(hi * 16 + lo).ok()?);
        } else {
            bytes.push(b);
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_paths_and_notes_with_separators() {
        let mut c = Carry::new("/v1/chat/completions?a=1;b=2|x,%");
        c.push("open,ai", "500", 12);
        c.push("anthropic", "reset", 3000);
        c.push("gemini", "circuit_open", 0);
        let encoded = c.encode();
        assert!(encoded.is_ascii());
        assert_eq!(Carry::decode(&encoded), Some(c.clone()));
        assert_eq!(
            c.summary(),
            "open,ai: 500 after 12 ms; anthropic: reset after 3000 ms; gemini: circuit_open after 0 ms"
        );
    }

    #[test]
    fn empty_notes_and_non_ascii_round_trip() {
        let c = Carry::new("/v1/chat/ü");
        assert_eq!(Carry::decode(&c.encode()), Some(c));
    }

    #[test]
    fn garbage_is_refused_not_misread() {
        for bad in [
            "",
            "p=/x",
            "x=/x;a=",
            "p=/x;a=a,500",
            "p=/x;a=a,500,notanumber",
            "p=/x;a=a,500,1,extra",
            "p=%zz;a=",
            "p=%4;a=",
            "p=%FF;a=",
        ] {
            assert_eq!(Carry::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn stays_bounded() {
        let mut c = Carry::new(&"p".repeat(10_000));
        for i in 0..100 {
            c.push(&"n".repeat(1000), "500", i);
        }
        assert_eq!(c.notes.len(), MAX_NOTES);
        assert_eq!(c.notes.last().unwrap().elapsed_ms, 99);
        assert_eq!(c.original_path.len(), MAX_FIELD_BYTES);
        let encoded = c.encode();
        assert!(encoded.len() < 8 * 1024, "{}", encoded.len());
        assert_eq!(Carry::decode(&encoded), Some(c));
    }
}
