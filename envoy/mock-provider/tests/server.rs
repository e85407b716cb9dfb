//! Server tests: control API, JWKS, health, HTTP/1.1 handling (keep-alive,
//! chunked request bodies, 100-continue, HTTP/1.0, garbage input), shutdown
//! on drop, and the `mock-provider` binary.

mod common;

use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use tollgate_mock_provider::client::{self, Connection};
use tollgate_mock_provider::{MockOptions, DEFAULT_JWKS_PATH, KEYSET_PATH};

#[test]
fn control_api_records_requests_and_stats() {
    let mock = start();
    let port = mock.port();
    let body = chat_body(false, false);
    post_json(
        port,
        "/v1/chat/completions?x=1",
        &[("X-Custom", "Yes"), ("authorization", "Bearer k")],
        &body,
    );
    client::request(port, "GET", "/health", &[], "").unwrap();
    let recorded = mock.wait_for_requests(1, Duration::from_secs(1));
    assert_eq!(
        recorded.len(),
        1,
        "health and control calls are not recorded"
    );
    let r = &recorded[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/chat/completions?x=1");
    assert_eq!(r.header("x-custom"), Some("Yes"));
    assert_eq!(r.header("Authorization"), Some("Bearer k"));
    assert!(r.headers.iter().all(|(n, _)| *n == n.to_ascii_lowercase()));
    assert_eq!(r.json().unwrap(), body);

    let list = client::request(port, "GET", "/__mock/requests", &[], "")
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(list[0]["method"], "POST");
    assert_eq!(list[0]["path"], "/v1/chat/completions?x=1");
    assert_eq!(list[0]["headers"]["x-custom"], "Yes");
    assert_eq!(list[0]["body"], body.to_string());

    let stats = client::request(port, "GET", "/__mock/stats", &[], "")
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(stats["requests"], 1);
    assert_eq!(stats["prompt_tokens"], PROMPT_TOKENS);
    assert_eq!(stats["completion_tokens"], COMPLETION_TOKENS);
    assert_eq!(stats["total_tokens"], PROMPT_TOKENS + COMPLETION_TOKENS);

    let r = client::request(port, "POST", "/__mock/reset", &[], "").unwrap();
    assert_eq!(r.status, 200);
    assert!(mock.requests().is_empty());
    assert_eq!(mock.stats(), Default::default());
    assert_eq!(
        client::request(port, "GET", "/__mock/nope", &[], "")
            .unwrap()
            .status,
        404
    );
}

#[test]
fn jwks_is_served_and_settable() {
    let mock = start();
    let port = mock.port();
    let r = client::request(port, "GET", DEFAULT_JWKS_PATH, &[], "").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json().unwrap(), json!({"keys": []}));
    let jwks = r#"{"keys":[{"kty":"oct","kid":"k1","k":"c2VjcmV0"}]}"#;
    let put = client::request(port, "PUT", "/__mock/jwks?path=/auth/keys", &[], jwks).unwrap();
    assert_eq!(put.status, 200);
    assert_eq!(
        client::request(port, "GET", "/auth/keys", &[], "")
            .unwrap()
            .text(),
        jwks
    );
    assert_eq!(
        client::request(port, "GET", DEFAULT_JWKS_PATH, &[], "")
            .unwrap()
            .text(),
        jwks
    );
    mock.set_jwks("{\"keys\":[1]}".into());
    mock.add_jwks_path("/other.json");
    assert_eq!(
        client::request(port, "GET", "/other.json", &[], "")
            .unwrap()
            .text(),
        "{\"keys\":[1]}"
    );
    assert_eq!(
        client::request(port, "PUT", "/__mock/jwks", &[], "not json")
            .unwrap()
            .status,
        400
    );
    assert_eq!(mock.stats().jwks_requests, 4);
    assert!(mock.requests().is_empty());
}

#[test]
fn key_set_is_served_from_the_control_api_or_a_file_read_per_fetch() {
    let mock = start();
    let port = mock.port();
    let get = || client::request(port, "GET", KEYSET_PATH, &[], "").unwrap();
    assert_eq!(get().json().unwrap(), json!({"keys": []}));
    let doc = r#"{"keys":[{"id":"a"}]}"#;
    let put = client::request(port, "PUT", "/__mock/keyset", &[], doc).unwrap();
    assert_eq!(put.status, 200);
    assert_eq!(get().text(), doc);
    mock.set_keyset("{\"keys\":[]}".into());
    assert_eq!(get().text(), "{\"keys\":[]}");
    assert_eq!(
        client::request(port, "PUT", "/__mock/keyset", &[], "nope")
            .unwrap()
            .status,
        400
    );
    assert_eq!(mock.stats().keyset_requests, 3);
    // From a file: every fetch reads it again, a missing file serves an empty set.
    let file = std::env::temp_dir().join(format!("mock-keyset-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let mock = start_with(MockOptions {
        keyset_file: Some(file.clone()),
        ..MockOptions::default()
    });
    let get = || {
        client::request(mock.port(), "GET", KEYSET_PATH, &[], "")
            .unwrap()
            .text()
    };
    assert_eq!(get(), "{\"keys\":[]}");
    std::fs::write(&file, doc).unwrap();
    assert_eq!(get(), doc);
    std::fs::write(&file, "{\"keys\":[{\"id\":\"b\"}]}").unwrap();
    assert_eq!(get(), "{\"keys\":[{\"id\":\"b\"}]}");
    let _ = std::fs::remove_file(&file);
}

#[test]
fn health() {
    let mock = start();
    let r = client::request(mock.port(), "GET", "/health", &[], "").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json().unwrap()["status"], "ok");
}

#[test]
fn keep_alive_and_chunked_request_bodies() {
    let mock = start();
    let mut conn = Connection::open(mock.port()).unwrap();
    let body = chat_body(false, false).to_string();
    let a = conn
        .request("POST", "/v1/chat/completions", &[], body.as_bytes())
        .unwrap();
    let b = conn
        .request(
            "POST",
            "/v1/chat/completions",
            &[("transfer-encoding", "chunked")],
            body.as_bytes(),
        )
        .unwrap();
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(mock.requests()[1].body, body);
    // A stream on the same connection, then another request after it.
    let mut s = conn
        .stream(
            "POST",
            "/v1/chat/completions",
            &[],
            chat_body(true, true).to_string().as_bytes(),
        )
        .unwrap();
    s.read_to_end().unwrap();
    let mut conn = s.into_connection();
    let c = conn.request("GET", "/health", &[], b"").unwrap();
    assert_eq!(c.status, 200);
}

#[test]
fn expect_continue_and_http10() {
    let mock = start();
    let body = chat_body(false, false).to_string();
    let mut raw = TcpStream::connect(("127.0.0.1", mock.port())).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(raw, "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n", body.len()).unwrap();
    let mut buf = [0u8; 64];
    let n = raw.read(&mut buf).unwrap();
    assert!(std::str::from_utf8(&buf[..n])
        .unwrap()
        .starts_with("HTTP/1.1 100 Continue"));
    raw.write_all(body.as_bytes()).unwrap();
    let mut reader = BufReader::new(raw);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");

    let mut raw = TcpStream::connect(("127.0.0.1", mock.port())).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(b"GET /health HTTP/1.0\r\n\r\n").unwrap();
    let mut all = String::new();
    raw.read_to_string(&mut all).unwrap(); // returns because the server closes
    assert!(all.starts_with("HTTP/1.1 200"));
    assert!(all.contains("connection: close"));
}

#[test]
fn garbage_input_gets_400_and_the_server_survives() {
    let mock = start();
    let port = mock.port();
    let inputs: Vec<&[u8]> = vec![
        b"\x00\x01\x02garbage\r\n\r\n",
        b"GET\r\n\r\n",
        b"POST / HTTP/1.1\r\ncontent-length: nope\r\n\r\n",
        b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nbad header\r\n\r\n",
        b"\xff\xfe / HTTP/1.1\r\n\r\n",
    ];
    for input in inputs {
        let mut raw = TcpStream::connect(("127.0.0.1", port)).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        raw.write_all(input).unwrap();
        let mut out = String::new();
        let _ = raw.read_to_string(&mut out);
        assert!(
            out.starts_with("HTTP/1.1 400") || out.starts_with("HTTP/1.1 505"),
            "{input:?} -> {out:?}"
        );
    }
    // Oversized head.
    let mut raw = TcpStream::connect(("127.0.0.1", port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let big = format!("GET / HTTP/1.1\r\nx: {}\r\n", "a".repeat(70_000));
    let _ = raw.write_all(big.as_bytes());
    let mut out = String::new();
    let _ = raw.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 431"), "{out:.40}");
    // A client that disconnects mid-request.
    let mut raw = TcpStream::connect(("127.0.0.1", port)).unwrap();
    raw.write_all(b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: 100\r\n\r\n{")
        .unwrap();
    drop(raw);

    let bad_json = client::request(port, "POST", "/v1/chat/completions", &[], "{not json").unwrap();
    assert_eq!(bad_json.status, 400);
    assert_eq!(
        bad_json.json().unwrap()["error"]["type"],
        "invalid_request_error"
    );
    let missing = post_json(port, "/v1/messages", &[], &json!({"model":"x"}));
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json().unwrap()["type"], "error");
    let unknown = client::request(port, "POST", "/v2/unknown", &[], "{}").unwrap();
    assert_eq!(unknown.status, 404);
    assert_eq!(
        post_json(port, "/v1/chat/completions", &[], &chat_body(false, false)).status,
        200
    );
}

#[test]
fn drop_stops_the_server() {
    let mock = start();
    let port = mock.port();
    let idle = Connection::open(port).unwrap(); // an idle keep-alive connection
    let t = std::time::Instant::now();
    drop(mock);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(client::request(port, "GET", "/health", &[], "").is_err());
    drop(idle);
}

#[test]
fn concurrent_clients() {
    let mock = start_with(MockOptions::default());
    let port = mock.port();
    let threads: Vec<_> = (0..16)
        .map(|i| {
            std::thread::spawn(move || {
                for _ in 0..10 {
                    let stream = i % 2 == 0;
                    let r = post_json(port, "/v1/chat/completions", &[], &chat_body(stream, true));
                    assert_eq!(r.status, 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = mock.stats();
    assert_eq!(s.requests, 160);
    assert_eq!(s.prompt_tokens, 160 * PROMPT_TOKENS);
    assert_eq!(s.completion_tokens, 160 * COMPLETION_TOKENS);
}

#[test]
fn binary_serves_until_killed() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mock-provider"))
        .args([
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--api-key",
            "sk-bin",
            "--fail-rate",
            "0",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("mock-provider listening on 127.0.0.1:")
        .unwrap_or_else(|| panic!("{line:?}"))
        .parse()
        .unwrap();
    let r = post_json(
        port,
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-bin")],
        &chat_body(false, false),
    );
    let no_key = post_json(port, "/v1/chat/completions", &[], &chat_body(false, false));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(no_key.status, 401);

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_mock-provider"))
        .args(["--bogus"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
