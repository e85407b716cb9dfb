//! Byte-level building blocks of the masking engine: byte sets, bounded run scanning, Shannon
//! entropy and the rough byte-commonness ranking used to pick prefilter anchor bytes.

/// A set of bytes, stored as a 256-entry membership table.
#[derive(Clone, Debug)]
pub(crate) struct ByteSet([bool; 256]);

impl ByteSet {
    /// The set of bytes for which `member` returns true.
    pub(crate) fn from_fn(member: impl Fn(u8) -> bool) -> Self {
        let mut table = [false; 256];
        for (byte, slot) in (0u8..=255).zip(table.iter_mut()) {
            *slot = member(byte);
        }
        ByteSet(table)
    }

    /// Whether `byte` is in the set.
    #[inline]
    pub(crate) fn contains(&self, byte: u8) -> bool {
        self.0.get(usize::from(byte)).copied().unwrap_or(false)
    }

    /// Adds `byte` to the set.
    pub(crate) fn insert(&mut self, byte: u8) {
        if let Some(slot) = self.0.get_mut(usize::from(byte)) {
            *slot = true;
        }
    }

    /// Whether no byte is in the set.
    pub(crate) fn is_empty(&self) -> bool {
        !self.0.iter().any(|&m| m)
    }
}

/// `[A-Za-z0-9_-]`: the base64url alphabet, used by most provider keys.
#[inline]
pub(crate) fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// `[A-Za-z0-9+/]`: the standard base64 alphabet without padding.
#[inline]
pub(crate) fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// Whether the byte before `start` (if any) is an ASCII letter or digit, i.e. `start` is not at a
/// word boundary. The `n`, `r` or `t` of a JSON escape (`\n`, `\r`, `\t`) counts as a boundary.
#[inline]
pub(crate) fn preceded_by_alnum(text: &[u8], start: usize) -> bool {
    glued_before(text, start, |b| b.is_ascii_alphanumeric())
}

/// Whether the byte before `start` is in `member`, not counting the letter of a JSON escape
/// (`\n`, `\r`, `\t`), which is a separator.
#[inline]
pub(crate) fn glued_before(text: &[u8], start: usize, member: impl Fn(u8) -> bool) -> bool {
    let Some(prev) = start.checked_sub(1).and_then(|i| text.get(i)).copied() else {
        return false;
    };
    if !member(prev) {
        return false;
    }
    let escaped = matches!(prev, b'n' | b'r' | b't')
        && start.checked_sub(2).and_then(|i| text.get(i)) == Some(&b'\\');
    !escaped
}

/// End of the run of bytes matching `member` that starts at `from`, examining at most `cap + 1`
/// bytes: a result more than `cap` past `from` means "longer than cap".
#[inline]
pub(crate) fn run_end(text: &[u8], from: usize, cap: usize, member: impl Fn(u8) -> bool) -> usize {
    let limit = from.saturating_add(cap).saturating_add(1).min(text.len());
    match text.get(from..limit) {
        Some(window) => {
            from + window
                .iter()
                .position(|&b| !member(b))
                .unwrap_or(window.len())
        }
        None => from,
    }
}

/// How a bounded run ended, from the point of view of a streaming scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunEnd {
    /// The run ended on a byte outside the set, at this index; the run is final.
    Closed(usize),
    /// The run is longer than its cap.
    TooLong,
    /// The run reaches the end of the buffer: more input could extend it.
    Open,
}

/// Like [`run_end`], but classifies the end of the run. At end of input (`eof`) a run that reaches
/// the end of the buffer is final.
#[inline]
pub(crate) fn bounded_run(
    text: &[u8],
    from: usize,
    cap: usize,
    eof: bool,
    member: impl Fn(u8) -> bool,
) -> RunEnd {
    let end = run_end(text, from, cap, member);
    if end.saturating_sub(from) > cap {
        RunEnd::TooLong
    } else if end >= text.len() && !eof {
        RunEnd::Open
    } else {
        RunEnd::Closed(end)
    }
}

/// Result of comparing an expected literal with the text at some position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LiteralMatch {
    /// The whole literal is there.
    Full,
    /// The text ends early but every byte present matches: more input could complete it.
    Partial,
    /// A byte differs.
    No,
}

/// Compares `literal` with `text` at `at`, ASCII-case-insensitively when `ignore_case`.
#[inline]
pub(crate) fn literal_at(
    text: &[u8],
    at: usize,
    literal: &[u8],
    ignore_case: bool,
) -> LiteralMatch {
    let rest = text.get(at..).unwrap_or(&[]);
    let same = |(a, b): (&u8, &u8)| {
        if ignore_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    if !rest.iter().zip(literal.iter()).all(same) {
        LiteralMatch::No
    } else if rest.len() >= literal.len() {
        LiteralMatch::Full
    } else {
        LiteralMatch::Partial
    }
}

/// Shannon entropy of `bytes` in bits per byte (0 for an empty slice).
pub(crate) fn shannon_entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        if let Some(c) = counts.get_mut(usize::from(b)) {
            *c += 1;
        }
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Rough frequency of a byte in the traffic a gateway sees (English prose, source code, JSON,
/// base64), on an arbitrary scale where higher is more common. Anchors are chosen as the least
/// common byte of a literal so that the prefilter fires rarely.
pub(crate) fn commonness(b: u8) -> u16 {
    match b {
        b' ' => 300,
        b'e' => 127,
        b't' => 91,
        b'a' => 82,
        b'o' => 75,
        b'i' => 70,
        b'n' => 67,
        b's' => 63,
        b'h' => 61,
        b'r' => 60,
        b'd' => 43,
        b'l' => 40,
        b'c' | b'u' => 28,
        b'm' | b'w' => 24,
        b'f' => 22,
        b'g' | b'y' => 20,
        b'p' => 19,
        b'b' => 15,
        b'v' => 10,
        b'k' => 8,
        b'j' | b'x' => 3,
        b'q' | b'z' => 2,
        b'A'..=b'Z' => 12 + commonness(b.to_ascii_lowercase()) / 10,
        b'0'..=b'9' => 15,
        b'"' => 30,
        b',' | b'.' | b'\n' => 20,
        b':' | b'/' | b'_' => 14,
        b'-' => 12,
        b'=' => 10,
        b'+' => 6,
        b'~' | b'^' | b'|' | b'`' => 1,
        0x80..=0xff => 25,
        _ => 5,
    }
}

/// Index and value of the least common byte among the first `limit` bytes of `literal`
/// (the first one on ties), or `None` for an empty literal.
pub(crate) fn rarest_byte(literal: &[u8], limit: usize) -> Option<(usize, u8)> {
    literal
        .iter()
        .take(limit)
        .copied()
        .enumerate()
        .min_by_key(|&(i, b)| (commonness(b), i))
}
