//! The pure per-request payload paths, repeated: usage extraction from every provider's answers
//! and streams, translation of requests, answers and streams to and from Anthropic and Gemini,
//! and the response cache's assembly and replay of a streamed answer. A fixed workload for
//! counting instructions before and after a change to those paths (docs/module-size.md §7):
//!
//! ```sh
//! cargo build --release -p tollgate-benches --example payload_paths
//! valgrind --tool=callgrind target/release/examples/payload_paths usage 1000
//! ```
//!
//! Arguments: the path (`usage`, `translate_request`, `translate_response`, `translate_stream`,
//! `cache`, or `all`, the default) and the number of rounds (default 1000). Prints a checksum of
//! the outputs, so two builds can be compared for the same work.

use std::hint::black_box;

use tollgate::cache::assemble::ChatAssembler;
use tollgate::cache::replay::replay_stream;
use tollgate::sse::DEFAULT_MAX_EVENT_BYTES;
use tollgate::translate::provider_error::provider_error_to_openai;
use tollgate::translate::{
    anthropic_to_openai_at, gemini_to_openai_at, openai_to_anthropic, openai_to_gemini,
    AnthropicOptions, GeminiOptions, SourceFormat, StreamTranslator,
};
use tollgate::usage::extract::{observe_body, observe_stream_payload, Observed};
use tollgate::usage::ApiKind;

fn read(dir: &str, name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../filter/src/{dir}/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One SSE event of a fixture: its `event:` name and its `data:` payload.
struct SseEvent {
    name: Option<String>,
    data: Vec<u8>,
}

/// A provider's stream, as the usage extractor sees it.
struct Stream {
    kind: ApiKind,
    events: Vec<SseEvent>,
}

/// A measured path: its name and one round of it (returns a size, for the checksum).
struct Path {
    name: &'static str,
    run: fn(&Inputs) -> usize,
}

/// The `data:` payloads of an SSE fixture, with their `event:` names.
fn sse_events(text: &[u8]) -> Vec<SseEvent> {
    let text = String::from_utf8_lossy(text);
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut name = None;
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        if !data.is_empty() {
            out.push(SseEvent {
                name,
                data: data.into_bytes(),
            });
        }
    }
    out
}

struct Inputs {
    bodies: Vec<(ApiKind, Vec<u8>)>,
    streams: Vec<Stream>,
    request: Vec<u8>,
    anthropic_answer: Vec<u8>,
    gemini_answer: Vec<u8>,
    anthropic_error: Vec<u8>,
    anthropic_sse: Vec<u8>,
    gemini_sse: Vec<u8>,
    openai_sse: Vec<u8>,
}

fn inputs() -> Inputs {
    let u = |n| read("usage", n);
    let t = |n| read("translate", n);
    Inputs {
        bodies: vec![
            (ApiKind::OpenAiChat, u("openai_chat.json")),
            (ApiKind::OpenAiResponses, u("openai_responses.json")),
            (ApiKind::Anthropic, u("anthropic_message.json")),
            (ApiKind::Gemini, u("gemini.json")),
            (ApiKind::Gemini, u("gemini_stream_array.json")),
            (ApiKind::OllamaChat, u("ollama_generate.json")),
        ],
        streams: vec![
            (ApiKind::OpenAiChat, "openai_chat_stream.sse"),
            (ApiKind::OpenAiResponses, "openai_responses_stream.sse"),
            (ApiKind::Anthropic, "anthropic_stream.sse"),
            (ApiKind::Gemini, "gemini_stream.sse"),
        ]
        .into_iter()
        .map(|(kind, name)| Stream {
            kind,
            events: sse_events(&u(name)),
        })
        .collect(),
        request: t("openai_request_agent.json"),
        anthropic_answer: t("anthropic_message_tool.json"),
        gemini_answer: t("gemini_response_tool.json"),
        anthropic_error:
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
                .to_vec(),
        anthropic_sse: [
            t("anthropic_stream_tool.sse"),
            t("anthropic_stream_text.sse"),
        ]
        .concat(),
        gemini_sse: [t("gemini_stream_tool.sse"), t("gemini_stream_text.sse")].concat(),
        openai_sse: u("openai_chat_stream.sse"),
    }
}

fn usage(i: &Inputs) -> usize {
    let mut sum = 0;
    for (kind, body) in &i.bodies {
        let mut obs = Observed::default();
        observe_body(*kind, body, &mut obs);
        sum += obs.output_chars as usize + obs.usage.map_or(0, |u| u.total_tokens as usize);
    }
    for stream in &i.streams {
        let mut obs = Observed::default();
        for e in &stream.events {
            observe_stream_payload(stream.kind, e.name.as_deref(), &e.data, &mut obs);
        }
        sum += obs.output_chars as usize + obs.usage.map_or(0, |u| u.total_tokens as usize);
    }
    sum
}

fn translate_request(i: &Inputs) -> usize {
    let a =
        openai_to_anthropic(&i.request, &AnthropicOptions::default()).map_or(0, |t| t.body.len());
    let g = openai_to_gemini(&i.request, &GeminiOptions::default()).map_or(0, |t| t.body.len());
    a + g
}

fn translate_response(i: &Inputs) -> usize {
    let a = anthropic_to_openai_at(&i.anthropic_answer, "gpt-4o", 1).map_or(0, |b| b.len());
    let g = gemini_to_openai_at(&i.gemini_answer, "gpt-4o", 1).map_or(0, |b| b.len());
    let e = provider_error_to_openai(529, &i.anthropic_error, SourceFormat::Anthropic).len();
    a + g + e
}

fn translate_stream(i: &Inputs) -> usize {
    let mut sum = 0;
    for (source, stream) in [
        (SourceFormat::Anthropic, &i.anthropic_sse),
        (SourceFormat::Gemini, &i.gemini_sse),
    ] {
        let mut t = StreamTranslator::new(
            source,
            "gpt-4o",
            "chatcmpl-x",
            1,
            true,
            DEFAULT_MAX_EVENT_BYTES,
        );
        for piece in stream.chunks(512) {
            sum += t.push(piece).len();
        }
        sum += t.finish().len();
    }
    sum
}

fn cache(i: &Inputs) -> usize {
    let mut a = ChatAssembler::new(1 << 20);
    for piece in i.openai_sse.chunks(512) {
        a.feed(piece);
    }
    match a.finish() {
        Ok(completion) => replay_stream(&completion, true).map_or(1, |r| r.len()),
        Err(_) => 0,
    }
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let rounds: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let i = inputs();
    let paths = [
        Path {
            name: "usage",
            run: usage,
        },
        Path {
            name: "translate_request",
            run: translate_request,
        },
        Path {
            name: "translate_response",
            run: translate_response,
        },
        Path {
            name: "translate_stream",
            run: translate_stream,
        },
        Path {
            name: "cache",
            run: cache,
        },
    ];
    let mut checksum = 0usize;
    for Path { name, run: f } in paths {
        if which != "all" && which != name {
            continue;
        }
        let once = f(&i);
        assert!(once > 0, "{name}: nothing was produced");
        for _ in 0..rounds {
            checksum = checksum.wrapping_add(black_box(f(black_box(&i))));
        }
        println!("{name}: {once} per round");
    }
    println!("checksum {checksum}");
}
