//! Stream translation: whole realistic provider streams, fed at every split point and byte by
//! byte, must give identical, valid OpenAI chunk streams.

use serde_json::{json, Value};

use crate::sse::DEFAULT_MAX_EVENT_BYTES;
use crate::translate::{SourceFormat, StreamTranslator, TokenUsage};

const ANTHROPIC_TEXT: &[u8] = include_bytes!("../fixtures/anthropic_stream_text.sse");
const ANTHROPIC_TOOL: &[u8] = include_bytes!("../fixtures/anthropic_stream_tool.sse");
const ANTHROPIC_ERROR: &[u8] = include_bytes!("../fixtures/anthropic_stream_error.sse");
const GEMINI_TEXT: &[u8] = include_bytes!("../fixtures/gemini_stream_text.sse");
const GEMINI_TOOL: &[u8] = include_bytes!("../fixtures/gemini_stream_tool.sse");

const ID: &str = "chatcmpl-tg123";
const CREATED: u64 = 1_730_000_000;

fn translator(source: SourceFormat, include_usage: bool) -> StreamTranslator {
    capped_translator(source, include_usage, DEFAULT_MAX_EVENT_BYTES)
}

fn capped_translator(source: SourceFormat, include_usage: bool, cap: usize) -> StreamTranslator {
    StreamTranslator::new(source, "gpt-4o", ID, CREATED, include_usage, cap)
}

fn run_chunks(source: SourceFormat, chunks: &[&[u8]], include_usage: bool) -> Vec<u8> {
    let mut t = translator(source, include_usage);
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(t.push(chunk));
    }
    out.extend(t.finish());
    assert!(t.is_done());
    assert!(t.finish().is_empty(), "finish is idempotent");
    out
}

/// What a client would assemble from the stream.
#[derive(Debug, Default, PartialEq)]
struct Assembled {
    content: String,
    tool_calls: Vec<(String, String, String)>,
    finish_reason: Option<String>,
    usage: Option<Value>,
    error: Option<Value>,
}

/// Parses an OpenAI SSE stream strictly: every event is `data: <json>\n\n`, chunks are well
/// formed, the first chunk carries the role, and the stream ends with exactly one `[DONE]`.
fn parse_openai_stream(bytes: &[u8], include_usage: bool) -> Assembled {
    let text = std::str::from_utf8(bytes).expect("utf-8 output");
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "ends with [DONE]: {text}"
    );
    let events: Vec<&str> = text.split_terminator("\n\n").collect();
    let mut assembled = Assembled::default();
    let mut saw_role = false;
    for (i, event) in events.iter().enumerate() {
        let payload = event.strip_prefix("data: ").expect("data field");
        assert!(!payload.contains('\n'), "one line per event");
        if payload == "[DONE]" {
            assert_eq!(i, events.len() - 1, "[DONE] is last");
            continue;
        }
        let value: Value = serde_json::from_str(payload).expect("valid JSON");
        if let Some(error) = value.get("error") {
            assert!(error["message"].is_string() && error["type"].is_string());
            assert_eq!(i, events.len() - 2, "error is followed only by [DONE]");
            assembled.error = Some(error.clone());
            continue;
        }
        assert_eq!(value["object"], "chat.completion.chunk");
        assert_eq!(value["id"], ID);
        assert_eq!(value["created"], CREATED);
        assert_eq!(value["model"], "gpt-4o");
        assert_eq!(value.get("usage").is_some(), include_usage);
        let choices = value["choices"].as_array().expect("choices array");
        if choices.is_empty() {
            assert!(include_usage, "usage chunk only when requested");
            assert!(assembled.usage.is_none());
            assembled.usage = Some(value["usage"].clone());
            continue;
        }
        assert_eq!(choices.len(), 1);
        let choice = &choices[0];
        assert_eq!(choice["index"], 0);
        let delta = choice["delta"].as_object().expect("delta object");
        if i == 0 {
            assert_eq!(delta["role"], "assistant", "first chunk carries the role");
            saw_role = true;
        } else {
            assert!(!delta.contains_key("role"), "role only once");
        }
        if let Some(content) = delta.get("content") {
            assembled.content.push_str(content.as_str().unwrap());
        }
        if let Some(calls) = delta.get("tool_calls") {
            for call in calls.as_array().unwrap() {
                let index = call["index"].as_u64().unwrap() as usize;
                if let Some(id) = call.get("id") {
                    assert_eq!(index, assembled.tool_calls.len(), "tool indexes are dense");
                    assert_eq!(call["type"], "function");
                    assembled.tool_calls.push((
                        id.as_str().unwrap().to_string(),
                        call["function"]["name"].as_str().unwrap().to_string(),
                        String::new(),
                    ));
                }
                if let Some(arguments) = call["function"].get("arguments") {
                    assembled.tool_calls[index]
                        .2
                        .push_str(arguments.as_str().unwrap());
                }
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            assert!(assembled.finish_reason.is_none(), "one finish chunk");
            assembled.finish_reason = Some(reason.to_string());
        } else {
            assert!(choice["finish_reason"].is_null());
            assert!(
                assembled.finish_reason.is_none(),
                "nothing after the finish chunk"
            );
        }
    }
    if assembled.error.is_none() {
        assert!(saw_role);
    }
    assembled
}

/// Feeds the stream whole, split at every byte offset, and byte by byte; all must agree.
fn translate_every_way(source: SourceFormat, input: &[u8], include_usage: bool) -> Vec<u8> {
    let whole = run_chunks(source, &[input], include_usage);
    for split in 0..=input.len() {
        let (a, b) = input.split_at(split);
        assert_eq!(
            run_chunks(source, &[a, b], include_usage),
            whole,
            "split at byte {split}"
        );
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(
        run_chunks(source, &bytes, include_usage),
        whole,
        "byte by byte"
    );
    for size in [2, 3, 7, 64, 333] {
        let chunks: Vec<&[u8]> = input.chunks(size).collect();
        assert_eq!(
            run_chunks(source, &chunks, include_usage),
            whole,
            "chunks of {size}"
        );
    }
    whole
}

fn usage_json(prompt: u64, completion: u64, cached: u64, reasoning: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning}
    })
}

#[test]
fn anthropic_text_stream() {
    for include_usage in [false, true] {
        let out = translate_every_way(SourceFormat::Anthropic, ANTHROPIC_TEXT, include_usage);
        let assembled = parse_openai_stream(&out, include_usage);
        assert_eq!(
            assembled,
            Assembled {
                content:
                    "Hello! Here is a \"quoted\" line,\nünïcødé and an emoji 🚀. Anything else?"
                        .to_string(),
                finish_reason: Some("stop".to_string()),
                usage: include_usage.then(|| usage_json(130, 15, 100, 0)),
                ..Assembled::default()
            }
        );
    }
}

#[test]
fn anthropic_text_stream_exact_bytes() {
    let out = run_chunks(SourceFormat::Anthropic, &[ANTHROPIC_TEXT], false);
    let text = String::from_utf8(out).unwrap();
    let events: Vec<&str> = text.split_terminator("\n\n").collect();
    assert_eq!(
        events[0],
        r#"data: {"id":"chatcmpl-tg123","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#
    );
    assert_eq!(
        events[1],
        r#"data: {"id":"chatcmpl-tg123","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}"#
    );
    assert_eq!(
        events[events.len() - 2],
        r#"data: {"id":"chatcmpl-tg123","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}"#
    );
    assert_eq!(events.len(), 6);
}

#[test]
fn anthropic_output_is_incremental() {
    let mut t = translator(SourceFormat::Anthropic, true);
    let first_event_end = ANTHROPIC_TEXT
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap()
        + 2;
    let (first, rest) = ANTHROPIC_TEXT.split_at(first_event_end);
    // An incomplete event produces nothing yet.
    assert!(t.push(&first[..first.len() - 1]).is_empty());
    assert!(t.buffered_bytes() > 0);
    let out = t.push(&first[first.len() - 1..]);
    assert!(String::from_utf8(out)
        .unwrap()
        .contains(r#""role":"assistant""#));
    assert_eq!(t.buffered_bytes(), 0);
    assert_eq!(t.usage().unwrap().input_tokens, 130);
    let out = t.push(rest);
    assert!(String::from_utf8(out)
        .unwrap()
        .ends_with("data: [DONE]\n\n"));
    assert!(t.is_done());
    assert_eq!(t.finish_reason(), Some("stop"));
    assert_eq!(
        t.usage(),
        Some(TokenUsage {
            input_tokens: 130,
            output_tokens: 15,
            cached_input_tokens: 100,
            cache_creation_input_tokens: 5,
            reasoning_tokens: 0,
        })
    );
    assert!(t.finish().is_empty());
    assert!(
        t.push(b"data: {}\n\n").is_empty(),
        "input after [DONE] is ignored"
    );
}

#[test]
fn anthropic_tool_stream() {
    let out = translate_every_way(SourceFormat::Anthropic, ANTHROPIC_TOOL, true);
    let assembled = parse_openai_stream(&out, true);
    assert_eq!(
        assembled,
        Assembled {
            content: "Okay, let's check the weather for San Francisco, CA:".to_string(),
            tool_calls: vec![
                (
                    "toolu_01T1x1fJ34qAmk2tNTrN7Up6".to_string(),
                    "get_weather".to_string(),
                    r#"{"location": "San Francisco, CA", "unit": "fahrenheit"}"#.to_string()
                ),
                (
                    "toolu_02ABCdefGHIjklMNOpqrSTUv".to_string(),
                    "get_time".to_string(),
                    r#"{"tz": "America/Los_Angeles"}"#.to_string()
                ),
            ],
            finish_reason: Some("tool_calls".to_string()),
            usage: Some(usage_json(472, 89, 0, 0)),
            error: None,
        }
    );
    // The tool call opens with id, type, name and empty arguments, as OpenAI streams do.
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(r#""tool_calls":[{"index":0,"id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","type":"function","function":{"name":"get_weather","arguments":""}}]"#));
    assert!(text.contains(
        r#""tool_calls":[{"index":1,"function":{"arguments":"{\"tz\": \"America/Los_Angeles\"}"}}]"#
    ));
}

#[test]
fn anthropic_error_mid_stream() {
    let out = translate_every_way(SourceFormat::Anthropic, ANTHROPIC_ERROR, false);
    let assembled = parse_openai_stream(&out, false);
    assert_eq!(assembled.content, "Partial ans");
    assert_eq!(assembled.finish_reason, None);
    assert_eq!(
        assembled.error,
        Some(
            json!({"message": "Overloaded", "type": "server_error", "param": null, "code": "overloaded"})
        )
    );
}

#[test]
fn gemini_text_stream() {
    for include_usage in [false, true] {
        let out = translate_every_way(SourceFormat::Gemini, GEMINI_TEXT, include_usage);
        let assembled = parse_openai_stream(&out, include_usage);
        assert_eq!(
            assembled,
            Assembled {
                content: "The quick brown fox jumps over\nthe \"lazy\" dög 🐕.".to_string(),
                finish_reason: Some("stop".to_string()),
                usage: include_usage.then(|| usage_json(9, 35, 4, 20)),
                ..Assembled::default()
            }
        );
    }
    let mut t = translator(SourceFormat::Gemini, false);
    t.push(GEMINI_TEXT);
    assert_eq!(t.usage().unwrap().output_tokens, 35);
    assert_eq!(t.finish_reason(), Some("stop"));
}

#[test]
fn gemini_tool_stream() {
    let out = translate_every_way(SourceFormat::Gemini, GEMINI_TOOL, true);
    let assembled = parse_openai_stream(&out, true);
    assert_eq!(
        assembled,
        Assembled {
            content: "Let me look that up.".to_string(),
            tool_calls: vec![
                (
                    "call_resp-tool-1_0__thought__CiQB0e2Kb+sig/A==".to_string(),
                    "get_weather".to_string(),
                    r#"{"location":"Paris","unit":"celsius"}"#.to_string()
                ),
                (
                    "call_resp-tool-1_1".to_string(),
                    "get_time".to_string(),
                    r#"{"tz":"Europe/Paris"}"#.to_string()
                ),
            ],
            finish_reason: Some("tool_calls".to_string()),
            usage: Some(usage_json(120, 70, 0, 40)),
            error: None,
        }
    );
}

#[test]
fn gemini_error_event_and_blocked_prompt() {
    let input = b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}],\"role\":\"model\"}}]}\r\n\r\ndata: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n";
    let out = translate_every_way(SourceFormat::Gemini, input, false);
    let assembled = parse_openai_stream(&out, false);
    assert_eq!(assembled.content, "Hi");
    assert_eq!(
        assembled.error.unwrap()["message"],
        "The model is overloaded."
    );

    let blocked = b"data: {\"promptFeedback\":{\"blockReason\":\"PROHIBITED_CONTENT\"},\"usageMetadata\":{\"promptTokenCount\":5}}\n\n";
    let out = translate_every_way(SourceFormat::Gemini, blocked, false);
    let assembled = parse_openai_stream(&out, false);
    assert_eq!(assembled.finish_reason.as_deref(), Some("content_filter"));
}

#[test]
fn truncated_streams_end_with_an_error() {
    let cut = &ANTHROPIC_TEXT[..ANTHROPIC_TEXT.len() / 2];
    let out = run_chunks(SourceFormat::Anthropic, &[cut], true);
    let assembled = parse_openai_stream(&out, true);
    assert_eq!(assembled.error.unwrap()["code"], "incomplete_stream");
    let out = run_chunks(SourceFormat::Gemini, &[b""], false);
    let assembled = parse_openai_stream(&out, false);
    assert_eq!(assembled.error.unwrap()["code"], "incomplete_stream");
}

#[test]
fn stream_without_final_blank_line_still_completes() {
    let trimmed = GEMINI_TEXT.strip_suffix(b"\r\n\r\n").unwrap();
    let out = run_chunks(SourceFormat::Gemini, &[trimmed], false);
    let assembled = parse_openai_stream(&out, false);
    assert_eq!(assembled.finish_reason.as_deref(), Some("stop"));
    assert!(assembled.content.ends_with('.'));
}

#[test]
fn oversized_event_ends_the_stream_with_an_error() {
    let mut t = capped_translator(SourceFormat::Anthropic, false, 256);
    let mut out = t.push(&ANTHROPIC_TEXT[..200]);
    let huge = format!(
        "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{}\"}}}}\n\n",
        "x".repeat(1000)
    );
    for byte in ANTHROPIC_TEXT[200..].iter().chain(huge.as_bytes()) {
        out.extend(t.push(std::slice::from_ref(byte)));
        assert!(t.buffered_bytes() <= 256);
    }
    out.extend(t.finish());
    let assembled = parse_openai_stream(&out, false);
    assert_eq!(assembled.error.unwrap()["code"], "upstream_event_too_large");
}

#[test]
fn malformed_event_and_host_failure() {
    let out = run_chunks(
        SourceFormat::Anthropic,
        &[b"event: message_start\ndata: {not json\n\n"],
        false,
    );
    assert_eq!(
        parse_openai_stream(&out, false).error.unwrap()["code"],
        "bad_upstream_event"
    );

    let mut t = translator(SourceFormat::Gemini, false);
    let mut out = t.push(&GEMINI_TEXT[..GEMINI_TEXT.len() / 2]);
    out.extend(t.fail("upstream connection reset", "upstream_reset"));
    assert!(t.is_done());
    assert!(t.fail("again", "x").is_empty());
    assert!(t.finish().is_empty());
    let assembled = parse_openai_stream(&out, false);
    assert_eq!(assembled.error.unwrap()["code"], "upstream_reset");
    assert_eq!(assembled.content, "The quick brown");
}

#[test]
fn every_prefix_of_a_stream_still_yields_a_valid_openai_stream() {
    for (source, input) in [
        (SourceFormat::Anthropic, ANTHROPIC_TEXT),
        (SourceFormat::Anthropic, ANTHROPIC_TOOL),
        (SourceFormat::Anthropic, ANTHROPIC_ERROR),
        (SourceFormat::Gemini, GEMINI_TEXT),
        (SourceFormat::Gemini, GEMINI_TOOL),
    ] {
        for end in 0..=input.len() {
            for include_usage in [false, true] {
                let out = run_chunks(source, &[&input[..end]], include_usage);
                let assembled = parse_openai_stream(&out, include_usage);
                assert!(
                    assembled.finish_reason.is_some() || assembled.error.is_some(),
                    "prefix {end} ends with a finish or an error"
                );
            }
        }
    }
}

#[test]
fn garbage_input_never_panics() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet: &[u8] =
        b"data: event:{}[]\"\\\n\r:,0123456789abcdeftype_message_startcontent_block_delta\xff\xfe";
    for _ in 0..300 {
        let len = (next() % 400) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        for source in [SourceFormat::Anthropic, SourceFormat::Gemini] {
            let mut t = capped_translator(source, true, 128);
            let mut out = Vec::new();
            for chunk in bytes.chunks(1 + (next() % 17) as usize) {
                out.extend(t.push(chunk));
            }
            out.extend(t.finish());
            parse_openai_stream(&out, true);
        }
        let _ = crate::translate::anthropic_to_openai(&bytes, "m");
        let _ = crate::translate::gemini_to_openai(&bytes, "m");
        let _ = crate::translate::provider_error_to_openai(500, &bytes, SourceFormat::Gemini);
        let _ = crate::translate::openai_to_anthropic(&bytes, &Default::default());
        let _ = crate::translate::openai_to_gemini(&bytes, &Default::default());
    }
}
