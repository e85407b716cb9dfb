//! The SSE parser: WHATWG framing at every chunking, and both oversized-event policies.

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
        let mut p = SseParser::new(1024, OversizedEvent::Skip);
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

/// Every way of cutting `input` the tests use: every two-piece split, then every fixed chunk size.
fn chunkings(input: &[u8]) -> Vec<Vec<&[u8]>> {
    let mut all = Vec::new();
    for split in 0..=input.len() {
        let (a, b) = input.split_at(split);
        all.push(vec![a, b]);
    }
    for size in 1..=input.len().max(1) {
        all.push(input.chunks(size).collect());
    }
    all
}

/// Feeds `chunks` to a parser with `policy` and cap `max`; returns the events (name, data), then
/// the failure, the dropped count, and the most bytes held between chunks.
fn run(
    chunks: &[&[u8]],
    max: usize,
    policy: OversizedEvent,
) -> (Vec<(String, String)>, Option<EventTooLarge>, u64, usize) {
    let mut p = SseParser::new(max, policy);
    let mut out = Vec::new();
    let mut most_held = 0;
    for chunk in chunks {
        out.extend(p.feed_collect(chunk));
        most_held = most_held.max(p.buffered_bytes());
    }
    p.finish(|e| out.push(e.into()));
    (simple(&out), p.failure(), p.dropped_events(), most_held)
}

const WITH_OVERSIZED: &str = "data: small\n\nevent: big\ndata: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\ndata: more\n\ndata: after\n\n";

#[test]
fn skip_policy_drops_the_oversized_event_at_every_chunking() {
    for variant in [
        WITH_OVERSIZED.to_string(),
        WITH_OVERSIZED.replace('\n', "\r\n"),
    ] {
        for chunks in chunkings(variant.as_bytes()) {
            let (events, failure, dropped, held) = run(&chunks, 32, OversizedEvent::Skip);
            assert_eq!(
                events,
                vec![ev("message", "small"), ev("message", "after")],
                "{chunks:?}"
            );
            assert_eq!(failure, None);
            assert_eq!(dropped, 1, "{chunks:?}");
            assert!(held <= 32, "held {held} bytes for {chunks:?}");
        }
    }
}

#[test]
fn fail_policy_stops_at_the_oversized_event_at_every_chunking() {
    for variant in [
        WITH_OVERSIZED.to_string(),
        WITH_OVERSIZED.replace('\n', "\r"),
    ] {
        for chunks in chunkings(variant.as_bytes()) {
            let (events, failure, dropped, held) = run(&chunks, 32, OversizedEvent::Fail);
            assert_eq!(events, vec![ev("message", "small")], "{chunks:?}");
            assert_eq!(
                failure,
                Some(EventTooLarge {
                    max_event_bytes: 32
                }),
                "{chunks:?}"
            );
            assert_eq!(dropped, 0);
            assert!(held <= 32, "held {held} bytes for {chunks:?}");
        }
    }
}

#[test]
fn both_policies_agree_on_streams_without_an_oversized_event() {
    for chunks in chunkings(SAMPLE.as_bytes()) {
        let skip = run(&chunks, 64, OversizedEvent::Skip);
        let fail = run(&chunks, 64, OversizedEvent::Fail);
        assert_eq!(skip, fail, "{chunks:?}");
        assert_eq!(skip.0.len(), 3);
        assert_eq!(skip.1, None);
    }
}

#[test]
fn fail_policy_ignores_everything_after_the_failure() {
    let mut p = SseParser::new(16, OversizedEvent::Fail);
    assert!(p.feed_collect(b"data: 0123456789abcdef\n").is_empty());
    assert!(p.failure().is_some());
    assert!(p.feed_collect(b"\ndata: later\n\n").is_empty());
    let mut after = Vec::new();
    p.finish(|e| after.push(OwnedSseEvent::from(e)));
    assert!(after.is_empty());
    assert_eq!(p.buffered_bytes(), 0);
}

#[test]
fn many_data_lines_count_toward_the_cap() {
    let lines = "data: 0123456789\n".repeat(10);
    let mut p = SseParser::new(64, OversizedEvent::Fail);
    p.feed_collect(lines.as_bytes());
    assert_eq!(
        p.failure(),
        Some(EventTooLarge {
            max_event_bytes: 64
        })
    );
    let mut p = SseParser::new(64, OversizedEvent::Skip);
    let mut out = p.feed_collect(lines.as_bytes());
    out.extend(p.feed_collect(b"\ndata: next\n\n"));
    assert_eq!(simple(&out), vec![ev("message", "next")]);
    assert_eq!(p.dropped_events(), 1);
}

#[test]
fn crlf_cr_lf_comments_retry_and_unnamed_events() {
    let input: &[u8] =
        b"\xEF\xBB\xBF: comment\r\nevent: a\r\ndata: one\r\ndata:two\r\nid: 7\r\nretry: 5\r\n\r\nevent:b\rdata: x\r\rdata: y\n\n";
    let expected = vec![ev("a", "one\ntwo"), ev("b", "x"), ev("message", "y")];
    for chunks in chunkings(input) {
        assert_eq!(
            run(&chunks, 1024, OversizedEvent::Fail).0,
            expected,
            "{chunks:?}"
        );
    }
}
