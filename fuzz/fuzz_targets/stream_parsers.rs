//! The incremental stream parsers, split at fuzz-chosen offsets.
//!
//! Selector (first byte): low 2 bits pick the parser, bits 2-3 its size cap (16, 64, 4096 bytes
//! or 1 MiB) so the oversize paths are reached too.
//! * 0: `sse::SseParser` skipping oversized events (events and dropped-event count)
//! * 1: `usage::NdjsonParser` (lines and dropped-line count)
//! * 2: `sse::SseParser` failing on oversized events, as translation uses it (events, and
//!   whether an event was too large)
//! * 3: `usage::SseChunkFilter` dropping injected usage chunks (forwarded bytes)
//!
//! Property (differential): the result of feeding the pieces equals the result of feeding the
//! whole payload in one chunk.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::sse::{EventTooLarge, OversizedEvent, OwnedSseEvent, SseParser};
use tollgate::usage::{NdjsonParser, SseChunkFilter};
use tollgate_fuzz::SplitInput;

const CAPS: [usize; 4] = [16, 64, 4096, 1024 * 1024];

#[derive(Debug, PartialEq)]
enum Outcome {
    Sse(Vec<OwnedSseEvent>, u64),
    Ndjson(Vec<Vec<u8>>, u64),
    Failing(Vec<OwnedSseEvent>, Option<EventTooLarge>),
    Filtered(Vec<u8>, u64),
}

fn run(parser: u8, cap: usize, pieces: &[&[u8]]) -> Outcome {
    match parser {
        0 => {
            let mut p = SseParser::new(cap, OversizedEvent::Skip);
            let mut events = Vec::new();
            for piece in pieces {
                p.feed(piece, |e| events.push(OwnedSseEvent::from(e)));
            }
            p.finish(|e| events.push(OwnedSseEvent::from(e)));
            Outcome::Sse(events, p.dropped_events())
        }
        1 => {
            let mut p = NdjsonParser::new(cap);
            let mut lines = Vec::new();
            for piece in pieces {
                p.feed(piece, |line| lines.push(line.to_vec()));
            }
            p.finish(|line| lines.push(line.to_vec()));
            Outcome::Ndjson(lines, p.dropped_lines())
        }
        2 => {
            let mut p = SseParser::new(cap, OversizedEvent::Fail);
            let mut events = Vec::new();
            for piece in pieces {
                p.feed(piece, |e| events.push(OwnedSseEvent::from(e)));
            }
            p.finish(|e| events.push(OwnedSseEvent::from(e)));
            Outcome::Failing(events, p.failure())
        }
        _ => {
            let mut p = SseChunkFilter::new(cap);
            let mut out = Vec::new();
            for piece in pieces {
                out.extend(p.push_dropping_injected_usage(piece));
            }
            out.extend(p.finish());
            Outcome::Filtered(out, p.dropped_events())
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let input = SplitInput::decode(data);
    let parser = input.selector & 3;
    let cap = CAPS[usize::from((input.selector >> 2) & 3)];
    let whole = run(parser, cap, &[input.payload]);
    let split = run(parser, cap, &input.pieces());
    assert_eq!(whole, split, "split at {:?} changed the result", input.cuts);
});
