//! Tests of stored streams: assembling a client's stream at every chunking, replaying an entry
//! as a stream that parses back to the same answer at every chunking, and the recorder's
//! refusals (errors, partial streams, oversized answers, compressed bodies).

use serde_json::{json, Value};

use super::assemble::{AssemblyError, ChatAssembler};
use super::entry::{Entry, EntryFormat};
use super::key::{CacheKey, Lookup, ReplyShape};
use super::record::{Recorder, ResponseEnd, ResponseHead, Skip};
use super::replay::{render, replay_stream};
use crate::sse::{OversizedEvent, SseParser};
use crate::usage::{ApiKind, Usage};

const OPENAI_STREAM: &str = include_str!("../usage/fixtures/openai_chat_stream.sse");
const VLLM_STREAM: &str = include_str!("../usage/fixtures/vllm_chat_stream.sse");
const OPENAI_JSON: &str = include_str!("../usage/fixtures/openai_chat.json");

const TOOL_STREAM: &str = concat!(
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",",
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":",
    "[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},",
    "\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",",
    "\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]},",
    "\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",",
    "\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}},",
    "{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"now\",\"arguments\":\"{}\"}}]},",
    "\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",",
    "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: [DONE]\n\n",
);

/// Feeds `bytes` to a fresh assembler cut at `cut` (and at every later multiple of `cut` when
/// `every` is set).
fn assemble(bytes: &[u8], cut: usize, every: bool) -> Result<Value, AssemblyError> {
    let mut a = ChatAssembler::new(1 << 20);
    if every {
        for piece in bytes.chunks(cut.max(1)) {
            a.feed(piece);
        }
    } else {
        let (head, tail) = bytes.split_at(cut.min(bytes.len()));
        a.feed(head);
        a.feed(tail);
    }
    a.finish()
}

/// Assembles at every single cut point and every fixed chunk size up to 64, asserting one
/// result; returns it.
fn assemble_everywhere(bytes: &[u8]) -> Result<Value, AssemblyError> {
    let whole = assemble(bytes, bytes.len(), false);
    for cut in 0..=bytes.len() {
        assert_eq!(assemble(bytes, cut, false), whole, "cut at {cut}");
    }
    for size in 1..=64 {
        assert_eq!(assemble(bytes, size, true), whole, "chunks of {size}");
    }
    whole
}

#[test]
fn an_openai_stream_assembles_to_its_completion_at_every_chunking() {
    let c = assemble_everywhere(OPENAI_STREAM.as_bytes()).unwrap();
    assert_eq!(
        c,
        json!({
            "id": "chatcmpl-123",
            "object": "chat.completion",
            "created": 1694268190,
            "model": "o3-mini-2025-01-31",
            "system_fingerprint": "fp_44709d6fcb",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "Hello world, ça va?"},
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": {"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,
                "prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},
                "completion_tokens_details":{"reasoning_tokens":256,"audio_tokens":0,
                    "accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},
        })
    );
}

#[test]
fn a_vllm_stream_with_per_chunk_usage_keeps_the_last_usage() {
    let c = assemble_everywhere(VLLM_STREAM.as_bytes()).unwrap();
    assert_eq!(
        c["choices"][0]["message"]["content"],
        "Paris is the capital."
    );
    assert_eq!(c["usage"]["completion_tokens"], 6);
}

#[test]
fn tool_calls_assemble_by_index() {
    let c = assemble_everywhere(TOOL_STREAM.as_bytes()).unwrap();
    let m = &c["choices"][0]["message"];
    assert_eq!(m["content"], Value::Null);
    assert_eq!(m["tool_calls"][0]["id"], "call_a");
    assert_eq!(m["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(
        m["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(m["tool_calls"][1]["function"]["name"], "now");
    assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn streams_that_must_not_be_stored_are_refused() {
    let without_done = OPENAI_STREAM.replace("data: [DONE]\n\n", "");
    assert_eq!(
        assemble_everywhere(without_done.as_bytes()),
        Err(AssemblyError::Incomplete)
    );
    let unfinished = OPENAI_STREAM.replace("\"finish_reason\":\"stop\"", "\"finish_reason\":null");
    assert_eq!(
        assemble_everywhere(unfinished.as_bytes()),
        Err(AssemblyError::Incomplete)
    );
    // tollgate's own ending of a broken stream: an error event, then [DONE].
    let broken = format!(
        "{}data: {{\"error\":{{\"message\":\"upstream reset\",\"type\":\"upstream_error\"}}}}\n\ndata: [DONE]\n\n",
        OPENAI_STREAM.split("data: {\"id\":\"chatcmpl-123\"").take(3).collect::<Vec<_>>().join("data: {\"id\":\"chatcmpl-123\"")
    );
    assert_eq!(
        assemble_everywhere(broken.as_bytes()),
        Err(AssemblyError::ErrorEvent)
    );
    let audio = OPENAI_STREAM.replace(
        "{\"content\":\"Hello\"}",
        "{\"audio\":{\"id\":\"a\",\"data\":\"UklG\"}}",
    );
    assert_eq!(
        assemble_everywhere(audio.as_bytes()),
        Err(AssemblyError::Unsupported)
    );
    let after_done = format!("{OPENAI_STREAM}data: {{\"choices\":[]}}\n\n");
    assert_eq!(
        assemble_everywhere(after_done.as_bytes()),
        Err(AssemblyError::Unreadable)
    );
    let not_json = OPENAI_STREAM.replace("{\"content\":\"Hello\"}", "{\"content\":Hello}");
    assert_eq!(
        assemble_everywhere(not_json.as_bytes()),
        Err(AssemblyError::Unreadable)
    );
    let mut small = ChatAssembler::new(8);
    small.feed(OPENAI_STREAM.as_bytes());
    assert_eq!(small.failure(), Some(AssemblyError::TooLarge));
}

/// Parses a replayed body at every cut point, checking each event is a JSON chunk (or the
/// final `[DONE]`), and assembles it back.
fn assert_well_formed(body: &[u8]) -> Value {
    let text = std::str::from_utf8(body).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    for cut in 0..=body.len() {
        let mut p = SseParser::new(1 << 20, OversizedEvent::Skip);
        let mut events = p.feed_collect(&body[..cut]);
        events.extend(p.feed_collect(&body[cut..]));
        assert_eq!(p.dropped_events(), 0);
        let (last, chunks) = events.split_last().unwrap();
        assert_eq!(last.data, b"[DONE]", "cut at {cut}");
        for e in chunks {
            let v: Value = serde_json::from_slice(&e.data).unwrap();
            assert_eq!(v["object"], "chat.completion.chunk");
            assert!(v["choices"].is_array());
        }
    }
    assemble_everywhere(body).unwrap()
}

#[test]
fn a_replay_is_well_formed_at_every_chunking_and_gives_back_the_answer() {
    for source in [OPENAI_STREAM, VLLM_STREAM, TOOL_STREAM] {
        let completion = assemble(source.as_bytes(), 0, false).unwrap();
        let with_usage = replay_stream(&completion, true).unwrap();
        assert_eq!(assert_well_formed(&with_usage), completion);
        let without = replay_stream(&completion, false).unwrap();
        let back = assert_well_formed(&without);
        let mut expected = completion.clone();
        expected.as_object_mut().unwrap().remove("usage");
        assert_eq!(back, expected, "no usage chunk unless asked for");
        assert!(!String::from_utf8(without).unwrap().contains("\"usage\""));
    }
    // A non-streamed answer replays as a stream too.
    let json: Value = serde_json::from_str(OPENAI_JSON).unwrap();
    let back = assert_well_formed(&replay_stream(&json, true).unwrap());
    assert_eq!(
        back["choices"][0]["message"]["content"],
        json["choices"][0]["message"]["content"]
    );
    assert_eq!(back["usage"], json["usage"]);
    assert_eq!(back["id"], json["id"]);
}

#[test]
fn a_replay_follows_openais_include_usage_convention() {
    let completion = assemble(OPENAI_STREAM.as_bytes(), 0, false).unwrap();
    let body = String::from_utf8(replay_stream(&completion, true).unwrap()).unwrap();
    let events: Vec<Value> = body
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let (usage_chunk, others) = events.split_last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["total_tokens"], 2306);
    for e in others {
        assert_eq!(e["usage"], Value::Null);
        assert!(e.as_object().unwrap().contains_key("usage"));
    }
    assert_eq!(others[0]["choices"][0]["delta"]["role"], "assistant");
}

fn lookup(reply: ReplyShape) -> Lookup {
    Lookup {
        key: CacheKey([3; 32]),
        ttl_ms: 60_000,
        reply,
        api: ApiKind::OpenAiChat,
    }
}

const CHAT_JSON: ReplyShape = ReplyShape::OpenAiChat {
    stream: false,
    include_usage: false,
};
const CHAT_STREAM: ReplyShape = ReplyShape::OpenAiChat {
    stream: true,
    include_usage: false,
};

fn head(status: u32, content_type: &str) -> ResponseHead<'static> {
    ResponseHead {
        status,
        content_type: Some(if content_type == "sse" {
            "text/event-stream; charset=utf-8"
        } else {
            "application/json"
        }),
        content_encoding: None,
    }
}

fn end(complete: bool, usage: Option<Usage>) -> ResponseEnd<'static> {
    ResponseEnd {
        complete,
        usage,
        provider: "openai",
        model: "gpt-4o",
        now_ms: 5,
    }
}

fn record(
    reply: ReplyShape,
    head: ResponseHead<'_>,
    body: &[u8],
    end: ResponseEnd<'_>,
) -> Result<Entry, Skip> {
    let mut r = Recorder::start(lookup(reply), &head, 64 * 1024);
    for piece in body.chunks(7) {
        r.feed(piece);
    }
    r.finish(&end)
}

#[test]
fn the_recorder_stores_complete_2xx_answers_only() {
    let usage = Some(Usage::from_openai_chat(3, 4, None, 0, 0));
    let stream = OPENAI_STREAM.as_bytes();
    let e = record(CHAT_STREAM, head(200, "sse"), stream, end(true, usage)).unwrap();
    assert_eq!(e.format, EntryFormat::OpenAiChat);
    assert_eq!(e.content_type, "application/json");
    let c: Value = serde_json::from_slice(&e.body).unwrap();
    assert_eq!(
        c["usage"]["total_tokens"], 2306,
        "the stream's own usage is kept"
    );
    assert_eq!(
        record(CHAT_STREAM, head(500, "sse"), stream, end(true, usage)),
        Err(Skip::Status)
    );
    assert_eq!(
        record(CHAT_STREAM, head(200, "sse"), stream, end(false, usage)),
        Err(Skip::Incomplete),
        "a stream the client did not receive whole"
    );
    let partial = &stream[..stream.len() / 2];
    assert_eq!(
        record(CHAT_STREAM, head(200, "sse"), partial, end(true, usage)),
        Err(Skip::Incomplete)
    );
    let mut gz = head(200, "json");
    gz.content_encoding = Some("gzip");
    assert_eq!(
        record(CHAT_JSON, gz, OPENAI_JSON.as_bytes(), end(true, usage)),
        Err(Skip::Encoded)
    );
    let big = format!("{{\"choices\":[],\"pad\":\"{}\"}}", "x".repeat(70_000));
    assert_eq!(
        record(
            CHAT_JSON,
            head(200, "json"),
            big.as_bytes(),
            end(true, usage)
        ),
        Err(Skip::TooLarge)
    );
    assert_eq!(
        record(
            CHAT_JSON,
            head(200, "json"),
            b"{\"error\":{}}",
            end(true, usage)
        ),
        Err(Skip::Unreadable),
        "a 2xx that is not a completion"
    );
    assert_eq!(
        record(
            ReplyShape::Verbatim,
            head(200, "sse"),
            stream,
            end(true, usage)
        ),
        Err(Skip::Framing)
    );
}

#[test]
fn a_stream_without_usage_gets_the_reported_usage_for_json_clients() {
    // The client did not ask for include_usage: tollgate stripped the injected usage chunk, and
    // the usage tracker saw it before that.
    let stripped: String = OPENAI_STREAM
        .split("\n\n")
        .filter(|e| !e.contains("\"choices\":[],\"usage\""))
        .map(|e| format!("{e}\n\n"))
        .collect::<String>();
    let usage = Usage::from_openai_chat(2006, 300, Some(2306), 1920, 256);
    let e = record(
        CHAT_STREAM,
        head(200, "sse"),
        stripped.trim_end().as_bytes(),
        end(true, Some(usage)),
    )
    .unwrap();
    let c: Value = serde_json::from_slice(&e.body).unwrap();
    assert_eq!(c["usage"]["prompt_tokens"], 2006);
    assert_eq!(c["usage"]["prompt_tokens_details"]["cached_tokens"], 1920);
    assert_eq!(e.usage, Some(usage));
}

#[test]
fn entries_render_in_the_shape_the_client_asked_for() {
    let usage = Some(Usage::from_openai_chat(1, 2, None, 0, 0));
    let from_stream = record(
        CHAT_STREAM,
        head(200, "sse"),
        OPENAI_STREAM.as_bytes(),
        end(true, usage),
    )
    .unwrap();
    let as_json = render(&from_stream, CHAT_JSON).unwrap();
    assert_eq!(as_json.content_type, "application/json");
    let c: Value = serde_json::from_slice(&as_json.body).unwrap();
    assert_eq!(c["object"], "chat.completion");
    assert_eq!(c["choices"][0]["message"]["content"], "Hello world, ça va?");
    let as_stream = render(
        &from_stream,
        ReplyShape::OpenAiChat {
            stream: true,
            include_usage: true,
        },
    )
    .unwrap();
    assert_eq!(as_stream.content_type, "text/event-stream");
    assert_eq!(assert_well_formed(&as_stream.body), c);

    let from_json = record(
        CHAT_JSON,
        head(200, "json"),
        OPENAI_JSON.as_bytes(),
        end(true, usage),
    )
    .unwrap();
    assert_eq!(from_json.body, OPENAI_JSON.as_bytes(), "stored as received");
    let replayed = render(&from_json, CHAT_STREAM).unwrap();
    assert_well_formed(&replayed.body);

    let verbatim = record(
        ReplyShape::Verbatim,
        head(200, "json"),
        br#"{"data":[{"embedding":[0.1]}]}"#,
        end(true, None),
    )
    .unwrap();
    assert_eq!(
        render(&verbatim, ReplyShape::Verbatim).unwrap().body,
        verbatim.body
    );
    assert_eq!(render(&verbatim, CHAT_STREAM), None);
}
