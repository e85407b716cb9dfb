//! A minimal blocking HTTP/1.1 client for tests (this crate's and the Envoy
//! end-to-end tests): one-shot [`request`], a streaming reader ([`stream`],
//! [`StreamingResponse::next_chunk`]) that yields chunked-body chunks as they
//! arrive, keep-alive [`Connection`]s, and SSE / NDJSON parsers.
//!
//! Connection problems (refused, reset, EOF before the response completed)
//! are returned as `io::Error`s, so a test can assert that a reset happened.
//! A request header `transfer-encoding: chunked` makes the body go out chunked.

use serde_json::Value;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Default read/write timeout of connections made by this module.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A complete response.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body with the transfer encoding removed.
    pub body: Vec<u8>,
}

impl Response {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Body parsed as JSON.
    pub fn json(&self) -> serde_json::Result<Value> {
        serde_json::from_slice(&self.body)
    }

    /// Body parsed as server-sent events.
    pub fn sse_events(&self) -> Vec<SseEvent> {
        parse_sse(&self.text())
    }

    /// Body parsed as newline-delimited JSON (blank lines skipped).
    pub fn ndjson(&self) -> serde_json::Result<Vec<Value>> {
        parse_ndjson(&self.text())
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// One server-sent event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

impl SseEvent {
    /// `data` parsed as JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.data).ok()
    }
}

/// Parses an SSE body (LF or CRLF line ends; comments and unknown fields ignored).
pub fn parse_sse(text: &str) -> Vec<SseEvent> {
    let mut events = Vec::new();
    let mut current = SseEvent::default();
    let mut has_data = false;
    for line in text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
        if line.is_empty() {
            if has_data || current.event.is_some() {
                events.push(std::mem::take(&mut current));
                has_data = false;
            }
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => current.event = Some(value.to_string()),
            "data" => {
                if has_data {
                    current.data.push('\n');
                }
                current.data.push_str(value);
                has_data = true;
            }
            _ => {}
        }
    }
    if has_data || current.event.is_some() {
        events.push(current);
    }
    events
}

/// Parses newline-delimited JSON (blank lines skipped).
pub fn parse_ndjson(text: &str) -> serde_json::Result<Vec<Value>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(serde_json::from_str)
        .collect()
}

/// Sends one request on a new connection to `127.0.0.1:port` and reads the whole response.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl AsRef<[u8]>,
) -> io::Result<Response> {
    Connection::open(port)?.request(method, path, headers, body.as_ref())
}

/// Sends one request on a new connection and returns once the response head arrived;
/// read the body incrementally from the returned [`StreamingResponse`].
pub fn stream(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl AsRef<[u8]>,
) -> io::Result<StreamingResponse> {
    Connection::open(port)?.stream(method, path, headers, body.as_ref())
}

/// A client connection that can carry several requests (keep-alive).
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    host: String,
}

/// Status, headers and body framing of a response head.
type Head = (u16, Vec<(String, String)>, Framing);

/// How a response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
    Empty,
}

impl Connection {
    /// Connects to `127.0.0.1:port`.
    pub fn open(port: u16) -> io::Result<Connection> {
        Connection::connect(("127.0.0.1", port))
    }

    /// Connects to `addr`.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<Connection> {
        let stream = TcpStream::connect(addr)?;
        let peer = stream.peer_addr()?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(DEFAULT_TIMEOUT))?;
        stream.set_write_timeout(Some(DEFAULT_TIMEOUT))?;
        Ok(Connection {
            stream,
            buf: Vec::new(),
            host: peer.to_string(),
        })
    }

    /// Sets the read and write timeout (`None` = block forever).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)?;
        self.stream.set_write_timeout(timeout)
    }

    /// Writes a request. Adds `host` and `content-length` unless given (or chunked is asked for).
    pub fn send_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<()> {
        let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        let chunked = headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        });
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        if !has("host") {
            head.push_str(&format!("host: {}\r\n", self.host));
        }
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if !chunked
            && !has("content-length")
            && (!body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH"))
        {
            head.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        if chunked {
            if !body.is_empty() {
                out.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
                out.extend_from_slice(body);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        } else {
            out.extend_from_slice(body);
        }
        self.stream.write_all(&out)?;
        self.stream.flush()
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 64 * 1024];
        let n = self.stream.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    fn fill_or_eof(&mut self, what: &str) -> io::Result<()> {
        if self.fill()? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("connection closed while reading {what}"),
            ));
        }
        Ok(())
    }

    fn read_line(&mut self) -> io::Result<String> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line);
                return Ok(line.trim_end_matches(['\r', '\n']).to_string());
            }
            self.fill_or_eof("a line")?;
        }
    }

    /// Reads a response head (skipping 1xx interim responses).
    fn read_head(&mut self, method: &str) -> io::Result<Head> {
        loop {
            let status_line = self.read_line()?;
            let mut parts = status_line.splitn(3, ' ');
            let version = parts.next().unwrap_or("");
            let status: u16 = parts
                .next()
                .and_then(|s| s.parse().ok())
                .filter(|_| version.starts_with("HTTP/"))
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("bad status line: {status_line:?}"),
                    )
                })?;
            let mut headers = Vec::new();
            loop {
                let line = self.read_line()?;
                if line.is_empty() {
                    break;
                }
                if let Some((n, v)) = line.split_once(':') {
                    headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            if (100..200).contains(&status) {
                continue;
            }
            let framing = if method == "HEAD" || status == 204 || status == 304 {
                Framing::Empty
            } else if find_header(&headers, "transfer-encoding")
                .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
            {
                Framing::Chunked
            } else if let Some(len) = find_header(&headers, "content-length") {
                Framing::Length(len.trim().parse().map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, "bad content-length")
                })?)
            } else {
                Framing::UntilClose
            };
            return Ok((status, headers, framing));
        }
    }

    /// Sends a request and reads the whole response on this connection.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        self.send_request(method, path, headers, body)?;
        let (status, headers, framing) = self.read_head(method)?;
        let mut body_reader = BodyReader::new(framing);
        let mut body = Vec::new();
        while let Some(chunk) = body_reader.next(self)? {
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Sends a request and returns after the response head; the body is read incrementally.
    pub fn stream(
        mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<StreamingResponse> {
        self.send_request(method, path, headers, body)?;
        let (status, headers, framing) = self.read_head(method)?;
        Ok(StreamingResponse {
            status,
            headers,
            conn: self,
            reader: BodyReader::new(framing),
        })
    }
}

/// Incremental body decoder.
#[derive(Debug)]
struct BodyReader {
    framing: Framing,
    remaining: u64,
    done: bool,
}

impl BodyReader {
    fn new(framing: Framing) -> BodyReader {
        let remaining = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        BodyReader {
            framing,
            remaining,
            done: matches!(framing, Framing::Empty | Framing::Length(0)),
        }
    }

    /// The next piece of body, or `None` at the (clean) end.
    fn next(&mut self, conn: &mut Connection) -> io::Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        match self.framing {
            Framing::Empty => Ok(None),
            Framing::Length(_) => {
                if conn.buf.is_empty() {
                    conn.fill_or_eof("the body")?;
                }
                let take = (conn.buf.len() as u64).min(self.remaining) as usize;
                let piece: Vec<u8> = conn.buf.drain(..take).collect();
                self.remaining -= take as u64;
                self.done = self.remaining == 0;
                Ok(Some(piece))
            }
            Framing::UntilClose => {
                if conn.buf.is_empty() && conn.fill()? == 0 {
                    self.done = true;
                    return Ok(None);
                }
                Ok(Some(std::mem::take(&mut conn.buf)))
            }
            Framing::Chunked => {
                let line = conn.read_line()?;
                let size_text = line.split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(size_text, 16).map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("bad chunk size {line:?}"),
                    )
                })? as usize;
                if size == 0 {
                    while !conn.read_line()?.is_empty() {}
                    self.done = true;
                    return Ok(None);
                }
                while conn.buf.len() < size + 2 {
                    conn.fill_or_eof("a chunk")?;
                }
                let piece: Vec<u8> = conn.buf.drain(..size).collect();
                conn.buf.drain(..2);
                Ok(Some(piece))
            }
        }
    }
}

/// A response whose body is read as it arrives.
#[derive(Debug)]
pub struct StreamingResponse {
    /// Status code.
    pub status: u16,
    /// Headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
    conn: Connection,
    reader: BodyReader,
}

impl StreamingResponse {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The next body piece (one HTTP chunk for chunked bodies), `None` at the clean end,
    /// an error when the connection broke first.
    pub fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.reader.next(&mut self.conn)
    }

    /// True once the body ended cleanly (chunked terminator / full length / close).
    pub fn is_complete(&self) -> bool {
        self.reader.done
    }

    /// Sets the read timeout for the rest of the body.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.conn.set_timeout(timeout)
    }

    /// Reads the rest of the body.
    pub fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        while let Some(chunk) = self.next_chunk()? {
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Reads the rest and returns the whole [`Response`].
    pub fn into_response(mut self) -> io::Result<Response> {
        let body = self.read_to_end()?;
        Ok(Response {
            status: self.status,
            headers: self.headers,
            body,
        })
    }

    /// The connection, for another request after the body was read completely.
    pub fn into_connection(self) -> Connection {
        self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sse() {
        let ev = parse_sse("event: a\ndata: {\"x\":1}\n\n: comment\ndata: one\r\ndata: two\r\n\r\ndata: [DONE]\n\n");
        assert_eq!(ev.len(), 3);
        assert_eq!(ev[0].event.as_deref(), Some("a"));
        assert_eq!(ev[0].json().unwrap()["x"], 1);
        assert_eq!(ev[1].data, "one\ntwo");
        assert_eq!(ev[2].data, "[DONE]");
    }

    #[test]
    fn parses_ndjson() {
        assert_eq!(parse_ndjson("{\"a\":1}\n\n{\"a\":2}\n").unwrap().len(), 2);
        assert!(parse_ndjson("{").is_err());
    }
}
