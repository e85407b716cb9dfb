//! `StreamMasker`: masks a body that arrives in chunks, forwarding each byte as soon as no
//! secret can still cover it.
//!
//! Bound on what is held back: the last [`MaskEngine::max_lead`]-ish bytes (≤ 25: a prefix
//! whose anchor byte has not arrived), plus, while a possible secret is still open at the end of
//! the buffer, everything from that secret's start. Every detector's window is capped, so the
//! hold-back never exceeds [`MaskEngine::max_holdback`] (≈ 8 KiB, set by the PEM block cap;
//! other shapes need ≤ 6.2 KiB for a JWT, ≤ 4.1 KiB for a `Bearer` token, a few hundred bytes
//! otherwise). On top of that the masker keeps [`STREAM_CONTEXT`] bytes of already-forwarded
//! input as left context, so its buffer never exceeds `context + hold-back + chunk`.
//!
//! Every detector decides from a bounded window and reports "pending" when that window runs
//! past the buffer end, so the concatenated output equals `mask(whole input)` for any chunking.

use std::borrow::Borrow;

use super::engine::{FindingSummary, MaskEngine, STREAM_CONTEXT};

/// Incremental masker over one body. `E` is anything that borrows an engine: `&MaskEngine`,
/// `Rc<MaskEngine>`, `Arc<MaskEngine>` or an owned engine.
#[derive(Debug)]
pub struct StreamMasker<E: Borrow<MaskEngine>> {
    engine: E,
    /// Left context (already forwarded) followed by held-back bytes.
    buffer: Vec<u8>,
    /// Index in `buffer` of the first byte not forwarded yet.
    forwarded: usize,
    summary: Vec<FindingSummary>,
}

impl<E: Borrow<MaskEngine>> StreamMasker<E> {
    /// A masker for a new body.
    pub fn new(engine: E) -> Self {
        StreamMasker {
            engine,
            buffer: Vec::new(),
            forwarded: 0,
            summary: Vec::new(),
        }
    }

    /// Takes the next chunk; returns the bytes that are safe to forward now (masked).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.buffer.extend_from_slice(chunk);
        self.drain(false)
    }

    /// Ends the body: returns everything still held back, masked. The masker is then empty and
    /// may be reused for another body (the summary keeps accumulating).
    pub fn finish(&mut self) -> Vec<u8> {
        let out = self.drain(true);
        self.buffer.clear();
        self.forwarded = 0;
        out
    }

    /// Counts per kind of everything masked so far.
    pub fn findings(&self) -> &[FindingSummary] {
        &self.summary
    }

    /// Bytes received but not forwarded yet.
    pub fn held_back(&self) -> usize {
        self.buffer.len().saturating_sub(self.forwarded)
    }

    /// Bytes currently buffered (left context plus held-back bytes).
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    fn drain(&mut self, eof: bool) -> Vec<u8> {
        let engine: &MaskEngine = self.engine.borrow();
        let outcome = engine.scan_raw(&self.buffer, eof);
        let len = self.buffer.len();
        let mut cut = if eof {
            len
        } else {
            len.saturating_sub(engine.max_lead())
                .min(outcome.pending_from)
        };
        cut = cut.max(self.forwarded);
        // Never split a finding that is not forwarded yet: hold it back whole. A finding may
        // start inside the left context (its head was masked as part of an earlier finding that
        // has since left the context); only its part past `forwarded` is still to be sent, and
        // it is held back from there, or its marker would be rendered once per drain.
        if let Some(crossing) = outcome
            .findings
            .iter()
            .find(|f| f.start < cut && f.end > cut && f.end > self.forwarded)
        {
            cut = crossing.start.max(self.forwarded);
        }
        let mut out = Vec::with_capacity(cut - self.forwarded + 64);
        engine.render(
            &self.buffer,
            self.forwarded,
            cut,
            &outcome.findings,
            &mut out,
            &mut self.summary,
        );
        let keep_from = cut.saturating_sub(STREAM_CONTEXT);
        self.buffer.drain(..keep_from);
        self.forwarded = cut - keep_from;
        out
    }
}
