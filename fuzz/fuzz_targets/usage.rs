//! Usage accounting: each provider's usage extractor through the `UsageTracker`, and the
//! request-side readers.
//!
//! Selector (first byte): modulo 6 picks the API kind (OpenAI chat, OpenAI Responses, OpenAI
//! embeddings, Anthropic, Gemini, Ollama); (selector / 6) modulo 3 the framing (SSE, NDJSON,
//! JSON); bit 7 a small size cap (64-byte events, 256-byte JSON body) so the over-cap paths run.
//!
//! Properties: the outcome does not depend on how the body was split (differential against the
//! unsplit feed); `first_token` and `completed` fire at most once; usage adds up; the
//! `include_usage` request rewrite is idempotent and keeps the body valid JSON.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::usage::{
    ensure_include_usage, estimate_prompt_tokens, is_streaming_request, request_model,
    requested_max_tokens, ApiKind, BodyFraming, TrackerConfig, UsageOutcome, UsageTracker,
};
use tollgate_fuzz::SplitInput;

const KINDS: [ApiKind; 6] = [
    ApiKind::OpenAiChat,
    ApiKind::OpenAiResponses,
    ApiKind::OpenAiEmbeddings,
    ApiKind::Anthropic,
    ApiKind::Gemini,
    ApiKind::OllamaChat,
];
const FRAMINGS: [BodyFraming; 3] = [BodyFraming::Sse, BodyFraming::Ndjson, BodyFraming::Json];

fn track(
    kind: ApiKind,
    framing: BodyFraming,
    config: TrackerConfig,
    pieces: &[&[u8]],
) -> UsageOutcome {
    let mut tracker = UsageTracker::new(kind, framing, 7, config);
    let (mut first_tokens, mut completions) = (0, 0);
    for piece in pieces {
        let events = tracker.feed(piece);
        first_tokens += usize::from(events.first_token);
        completions += usize::from(events.completed);
    }
    assert!(first_tokens <= 1, "first_token fired {first_tokens} times");
    assert!(completions <= 1, "completed fired {completions} times");
    tracker.finish()
}

fn request_side(body: &[u8]) {
    let _ = estimate_prompt_tokens(body);
    let _ = requested_max_tokens(body);
    let _ = request_model(body);
    let streaming = is_streaming_request(body);
    if let Some(rewritten) = ensure_include_usage(body) {
        assert!(streaming, "rewrote a request that does not stream");
        assert!(
            serde_json::from_slice::<serde_json::Value>(&rewritten).is_ok(),
            "rewrite produced invalid JSON: {}",
            String::from_utf8_lossy(&rewritten)
        );
        assert_eq!(
            ensure_include_usage(&rewritten),
            None,
            "rewrite is not idempotent"
        );
        assert_eq!(request_model(&rewritten), request_model(body));
    }
}

fuzz_target!(|data: &[u8]| {
    let input = SplitInput::decode(data);
    let kind = KINDS[usize::from(input.selector % 6)];
    let framing = FRAMINGS[usize::from(input.selector / 6 % 3)];
    let config = if input.selector & 0x80 != 0 {
        TrackerConfig {
            max_event_bytes: 64,
            max_json_body_bytes: 256,
        }
    } else {
        TrackerConfig::default()
    };
    let whole = track(kind, framing, config, &[input.payload]);
    let split = track(kind, framing, config, &input.pieces());
    assert_eq!(
        whole, split,
        "split at {:?} changed the outcome",
        input.cuts
    );
    if let Some(usage) = &whole.usage {
        let _ = usage.uncached_input_tokens();
    }
    request_side(input.payload);
});
