//! Streaming translation: an Anthropic or Gemini SSE stream rendered as an OpenAI chunk stream,
//! fed in fuzz-chosen pieces.
//!
//! Selector (first byte): bit 0 picks the source (Anthropic, Gemini), bit 1 `include_usage`,
//! bit 2 a 64-byte event cap (the oversize path).
//!
//! Properties: the concatenated output, the usage, the finish reason and the done state do not
//! depend on how the input was split (differential against the unsplit feed); every output event
//! is `data: ` + a JSON object or `[DONE]`; the stream always ends with `data: [DONE]`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::sse::DEFAULT_MAX_EVENT_BYTES;
use tollgate::translate::{SourceFormat, StreamTranslator, TokenUsage};
use tollgate_fuzz::SplitInput;

#[derive(Debug, PartialEq)]
struct Run {
    output: Vec<u8>,
    usage: Option<TokenUsage>,
    finish_reason: Option<&'static str>,
}

fn run(selector: u8, pieces: &[&[u8]]) -> Run {
    let source = if selector & 1 == 0 {
        SourceFormat::Anthropic
    } else {
        SourceFormat::Gemini
    };
    let mut translator = StreamTranslator::new(
        source,
        "client-model",
        "chatcmpl-fuzz",
        1_700_000_000,
        selector & 2 != 0,
        if selector & 4 != 0 {
            64
        } else {
            DEFAULT_MAX_EVENT_BYTES
        },
    );
    let mut output = Vec::new();
    for piece in pieces {
        output.extend(translator.push(piece));
    }
    output.extend(translator.finish());
    assert!(translator.is_done(), "not done after finish");
    Run {
        output,
        usage: translator.usage(),
        finish_reason: translator.finish_reason(),
    }
}

fn check_events(output: &[u8]) {
    let text = std::str::from_utf8(output).unwrap_or_else(|e| panic!("output is not UTF-8: {e}"));
    let body = text
        .strip_suffix("\n\n")
        .unwrap_or_else(|| panic!("output does not end with a blank line: {text:?}"));
    let events: Vec<&str> = body.split("\n\n").collect();
    assert_eq!(
        events.last(),
        Some(&"data: [DONE]"),
        "no final [DONE]: {text:?}"
    );
    for event in &events[..events.len() - 1] {
        let json = event
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("event without data: {event:?}"));
        let value: serde_json::Value = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("event is not JSON ({e}): {json:?}"));
        assert!(value.is_object(), "event is not an object: {json:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let input = SplitInput::decode(data);
    let whole = run(input.selector, &[input.payload]);
    let split = run(input.selector, &input.pieces());
    assert_eq!(whole, split, "split at {:?} changed the stream", input.cuts);
    check_events(&whole.output);
});
