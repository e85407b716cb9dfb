//! The state of one scan over a buffer: the candidate findings detectors report, and the
//! earliest position whose verdict still depends on bytes not received yet (for streaming).

/// Index of a finding kind in the engine's kind table; lower means higher priority when two
/// findings overlap.
pub(crate) type KindId = u16;

/// A byte range a detector flagged, before allow-listing and merging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// First byte of the secret.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
    /// What it is.
    pub kind: KindId,
}

/// Mutable state shared by the detectors during one pass over `text`.
pub(crate) struct ScanState<'t> {
    /// The buffer being scanned.
    pub text: &'t [u8],
    /// True when `text` is the whole input; false when more bytes may follow (streaming).
    pub eof: bool,
    /// Candidates found so far, in detection order.
    pub candidates: Vec<Candidate>,
    /// Earliest start of a possible secret whose verdict needs more input (`usize::MAX` if none).
    pub pending_from: usize,
    /// Bytes before this index are known to hold no `-----END` marker past the last PEM header
    /// searched; keeps repeated unterminated PEM headers linear.
    pub pem_searched_until: usize,
}

impl<'t> ScanState<'t> {
    /// A fresh scan of `text`.
    pub(crate) fn new(text: &'t [u8], eof: bool) -> Self {
        ScanState {
            text,
            eof,
            candidates: Vec::new(),
            pending_from: usize::MAX,
            pem_searched_until: 0,
        }
    }

    /// Records a finding over `start..end`.
    #[inline]
    pub(crate) fn found(&mut self, start: usize, end: usize, kind: KindId) {
        if start < end {
            self.candidates.push(Candidate { start, end, kind });
        }
    }

    /// Records that a secret may start at `start` but the verdict needs bytes past the end of
    /// the buffer. Ignored at end of input, where a cut-off match is simply no match.
    #[inline]
    pub(crate) fn pending(&mut self, start: usize) {
        if !self.eof {
            self.pending_from = self.pending_from.min(start);
        }
    }
}
