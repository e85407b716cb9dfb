//! tollgate next to an ext_proc filter, with large streamed request bodies: no byte lost.
//!
//! Kuadrant reverted `allow_on_headers_stop_iteration` in its Wasm shim because a body chunk was
//! lost when an ext_proc filter in `FULL_DUPLEX_STREAMED` mode sat in the same chain. tollgate
//! needs the option (it holds an LLM request's headers until the body is complete), so this test
//! puts a real gRPC external processor (`envoy/e2e/ext_proc_server.py`, grpcio) next to it in
//! Envoy 1.40 — before and after tollgate, in `FULL_DUPLEX_STREAMED` and `BUFFERED` mode
//! (`envoy/e2e/configs/ext_proc.yaml`) — and sends chat requests whose bodies are several MiB,
//! written in small chunks with `transfer-encoding: chunked`. For each: the client gets the
//! provider's answer, the processor saw every byte once (length and SHA-256), and the provider
//! received the body byte for byte.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tollgate_e2e::mock::client::request;
use tollgate_e2e::mock::{MockOptions, MockProvider};
use tollgate_e2e::sidecar::Sidecar;
use tollgate_e2e::{free_port, template, Envoy, Vars};

/// The external processor (`ext_proc_server.py`), killed on drop (its stderr printed if the test
/// failed).
struct ExtProc {
    /// The process, stopped when the server is dropped.
    _process: Sidecar,
    grpc_port: u16,
    http_port: u16,
}

impl ExtProc {
    fn start() -> ExtProc {
        let sidecar = Sidecar::start(
            "ext_proc_server.py",
            &["--port", "0", "--http-port", "0"],
            &["ext_proc listening on ", "ext_proc http listening on "],
            Duration::from_secs(20),
            "grpcio in .venv?",
        );
        ExtProc {
            grpc_port: sidecar.port(0),
            http_port: sidecar.port(1),
            _process: sidecar,
        }
    }

    /// The finished streams, waiting until there are `n`.
    fn streams(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let r = request(self.http_port, "GET", "/streams", &[], b"").expect("GET /streams");
            let streams: Vec<Value> = serde_json::from_slice(&r.body).unwrap();
            if streams.len() >= n || Instant::now() > deadline {
                return streams;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn reset(&self) {
        request(self.http_port, "POST", "/reset", &[], b"").expect("POST /reset");
    }
}

/// A chat request of about `size` bytes: one long user message of deterministic words (nothing
/// secret-shaped, so tollgate's prompt masking leaves it byte for byte).
fn big_chat(size: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "tollgate", "envoy", "stream", "chunk", "provider", "budget", "prompt", "model", "gateway",
        "filter", "token", "usage",
    ];
    let mut text = String::with_capacity(size);
    let mut x = seed | 1;
    while text.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text.push_str(WORDS[(x % WORDS.len() as u64) as usize]);
        text.push(' ');
    }
    format!(
        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"{}"}}]}}"#,
        text.trim_end()
    )
    .into_bytes()
}

/// POSTs `body` to `port` as HTTP/1.1 with `transfer-encoding: chunked`, in 16 KiB chunks;
/// returns (status, response body).
fn post_chunked(port: u16, path: &str, mode: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: llm\r\ncontent-type: application/json\r\n\
         x-ext-proc-mode: {mode}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    for chunk in body.chunks(16 * 1024) {
        s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .unwrap();
        s.write_all(chunk).unwrap();
        s.write_all(b"\r\n").unwrap();
    }
    s.write_all(b"0\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body_at = text.find("\r\n\r\n").map_or(raw.len(), |i| i + 4);
    (status, raw[body_at..].to_vec())
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(bytes)?;
            c.wait_with_output()
        })
        .expect("sha256sum");
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn large_streamed_bodies_pass_tollgate_and_ext_proc_in_every_mode_and_order() {
    let ext_proc = ExtProc::start();
    let mock = MockProvider::start(MockOptions::default()).expect("mock starts");
    let tollgate_first = free_port();
    let buffered_first = free_port();
    let tollgate_then_buffered = free_port();
    let vars = Vars::new()
        .set("UPSTREAM_PORT", mock.port())
        .set("EXT_PROC_PORT", ext_proc.grpc_port)
        .set("TOLLGATE_FIRST_PORT", tollgate_first)
        .set("BUFFERED_FIRST_PORT", buffered_first)
        .set("TOLLGATE_THEN_BUFFERED_PORT", tollgate_then_buffered)
        .plugin_config(r#"{"masking":{"prompts":"block"}}"#);
    let envoy = Envoy::start(&template("e2e/configs/ext_proc.yaml"), vars);

    // (what, listener, ext_proc mode, body size, chunks ext_proc sees: several when it comes
    // first; one when tollgate comes first, as tollgate holds an LLM request's body until it is
    // complete and then passes it on whole).
    let cases = [
        (
            "ext_proc FULL_DUPLEX_STREAMED, then tollgate",
            envoy.port,
            "full-duplex",
            6 << 20,
            true,
        ),
        (
            "tollgate, then ext_proc FULL_DUPLEX_STREAMED",
            tollgate_first,
            "full-duplex",
            6 << 20,
            false,
        ),
        (
            "ext_proc BUFFERED, then tollgate",
            buffered_first,
            "buffered",
            3 << 20,
            false,
        ),
        (
            "tollgate, then ext_proc BUFFERED",
            tollgate_then_buffered,
            "buffered",
            3 << 20,
            false,
        ),
    ];
    for (i, (what, port, mode, size, pieces)) in cases.into_iter().enumerate() {
        ext_proc.reset();
        let before = mock.requests().len();
        let body = big_chat(size, i as u64 + 7);
        let (status, answer) = post_chunked(port, "/v1/chat/completions", mode, &body);
        assert_eq!(
            status,
            200,
            "{what}: {}\n{}",
            String::from_utf8_lossy(&answer),
            envoy.log()
        );
        let streams = ext_proc.streams(1);
        assert_eq!(streams.len(), 1, "{what}: one ext_proc stream: {streams:?}");
        let seen = &streams[0];
        assert_eq!(seen["mode"], mode, "{what}");
        assert_eq!(seen["path"], "/v1/chat/completions", "{what}");
        assert_eq!(seen["body_bytes"], body.len(), "{what}: bytes ext_proc saw");
        assert_eq!(
            seen["sha256"],
            sha256_hex(&body),
            "{what}: body ext_proc saw"
        );
        assert_eq!(seen["end_of_stream"], true, "{what}");
        let chunks = seen["chunks"].as_u64().unwrap();
        if pieces {
            assert!(
                chunks > 1,
                "{what}: the body reached ext_proc in pieces: {seen}"
            );
        } else {
            assert_eq!(chunks, 1, "{what}: the body reached ext_proc whole: {seen}");
        }
        let requests = mock.requests();
        assert_eq!(requests.len(), before + 1, "{what}: one upstream request");
        let received = requests.last().unwrap();
        assert_eq!(
            received.body.len(),
            body.len(),
            "{what}: bytes the provider received"
        );
        assert!(
            received.body.as_bytes() == body.as_slice(),
            "{what}: the provider received a different body"
        );
    }
    // tollgate accounted each request (it read the whole body: model, usage).
    let stats = envoy.admin("/stats?filter=tollgate_llm_requests_total");
    let total: u64 = stats
        .lines()
        .filter_map(|l| l.rsplit(": ").next()?.trim().parse::<u64>().ok())
        .sum();
    assert_eq!(total, 4, "{stats}");
}
