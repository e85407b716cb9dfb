//! Server side of the minimal HTTP/1.1 implementation: reading requests
//! (content-length or chunked bodies, `Expect: 100-continue`, pipelining,
//! keep-alive) from a connection, writing fixed-length and chunked responses,
//! and aborting a connection with a TCP RST. Every blocking call wakes up
//! periodically so that a shutdown flag is honoured.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Largest accepted request head (request line + headers).
const MAX_HEAD: usize = 64 * 1024;
/// Largest accepted request body.
const MAX_BODY: usize = 256 * 1024 * 1024;
/// How often blocked reads/writes wake up to look at the shutdown flag.
const POLL: Duration = Duration::from_millis(100);

/// One parsed request.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub method: String,
    /// Request target as sent: path plus query.
    pub target: String,
    /// True for HTTP/1.1, false for HTTP/1.0.
    pub http11: bool,
    /// Headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// First value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path without the query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// Value of query parameter `name` (percent-decoded), if present.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
    }

    /// Whether the client wants the connection kept open after this exchange.
    pub fn keep_alive(&self) -> bool {
        let conn = self.header("connection").unwrap_or("").to_ascii_lowercase();
        if self.http11 {
            !conn.split(',').any(|t| t.trim() == "close")
        } else {
            conn.split(',').any(|t| t.trim() == "keep-alive")
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why no request could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed (or reset) the connection, or the server is shutting down.
    Closed,
    /// The bytes were not acceptable HTTP: answer with this status and close.
    Bad(u16, String),
}

/// The standard reason phrase of `status`.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        529 => "Site Overloaded",
        _ => "Unknown",
    }
}

/// A server-side connection.
pub(crate) struct HttpConn {
    stream: TcpStream,
    buf: Vec<u8>,
    shutdown: Arc<AtomicBool>,
}

impl HttpConn {
    pub fn new(stream: TcpStream, shutdown: Arc<AtomicBool>) -> io::Result<HttpConn> {
        stream.set_nonblocking(false)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(POLL))?;
        stream.set_write_timeout(Some(POLL))?;
        Ok(HttpConn {
            stream,
            buf: Vec::new(),
            shutdown,
        })
    }

    fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }

    /// Reads more bytes into the buffer.
    fn fill(&mut self) -> Result<(), ReadError> {
        let mut tmp = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(0) => return Err(ReadError::Closed),
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    if self.stopping() {
                        return Err(ReadError::Closed);
                    }
                }
                Err(_) => return Err(ReadError::Closed),
            }
        }
    }

    /// Takes one CRLF- (or LF-) terminated line out of the buffer.
    fn read_line(&mut self, limit: usize) -> Result<Vec<u8>, ReadError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.buf.len() > limit {
                return Err(ReadError::Bad(400, "line too long".into()));
            }
            self.fill()?;
        }
    }

    /// Takes exactly `n` bytes out of the buffer.
    fn read_exact_bytes(&mut self, n: usize) -> Result<Vec<u8>, ReadError> {
        while self.buf.len() < n {
            self.fill()?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads the next request. `Closed` when the peer went away between requests.
    pub fn read_request(&mut self) -> Result<Request, ReadError> {
        // Tolerate empty lines before a request line (RFC 9112 2.2).
        loop {
            let blank = self
                .buf
                .iter()
                .take_while(|b| **b == b'\r' || **b == b'\n')
                .count();
            self.buf.drain(..blank);
            if !self.buf.is_empty() {
                break;
            }
            self.fill()?;
        }
        let head_end = loop {
            let crlf = find(&self.buf, b"\r\n\r\n").map(|p| p + 4);
            let lf = find(&self.buf, b"\n\n").map(|p| p + 2);
            if let Some(end) = match (crlf, lf) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            } {
                break end;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(ReadError::Bad(431, "request head too large".into()));
            }
            self.fill()?;
        };
        let head: Vec<u8> = self.buf.drain(..head_end).collect();
        let head = std::str::from_utf8(&head)
            .map_err(|_| ReadError::Bad(400, "request head is not UTF-8".into()))?;
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let request_line = lines.next().unwrap_or("");
        let mut parts = request_line.split(' ');
        let (method, target, version) =
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(m), Some(t), Some(v), None) => (m, t, v),
                _ => return Err(ReadError::Bad(400, "malformed request line".into())),
            };
        if method.is_empty() || !method.bytes().all(is_token_byte) {
            return Err(ReadError::Bad(400, "malformed method".into()));
        }
        if target.is_empty() || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(ReadError::Bad(400, "malformed request target".into()));
        }
        let http11 = match version {
            "HTTP/1.1" => true,
            "HTTP/1.0" => false,
            v if v.starts_with("HTTP/") => {
                return Err(ReadError::Bad(505, "unsupported HTTP version".into()))
            }
            _ => return Err(ReadError::Bad(400, "malformed HTTP version".into())),
        };
        let mut headers = Vec::new();
        for line in lines {
            if line.is_empty() {
                continue;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| ReadError::Bad(400, "malformed header line".into()))?;
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(ReadError::Bad(400, "malformed header name".into()));
            }
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
        let mut req = Request {
            method: method.to_string(),
            target: target.to_string(),
            http11,
            headers,
            body: Vec::new(),
        };

        let chunked = match req.header("transfer-encoding") {
            Some(te) => {
                let last = te
                    .rsplit(',')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                if last != "chunked" {
                    return Err(ReadError::Bad(400, "unsupported transfer-encoding".into()));
                }
                true
            }
            None => false,
        };
        let content_length = if chunked {
            None
        } else {
            let mut found: Option<usize> = None;
            for (_, v) in req.headers.iter().filter(|(n, _)| n == "content-length") {
                let n: usize = v
                    .parse()
                    .map_err(|_| ReadError::Bad(400, "malformed content-length".into()))?;
                if found.is_some_and(|f| f != n) {
                    return Err(ReadError::Bad(400, "conflicting content-length".into()));
                }
                found = Some(n);
            }
            found
        };
        if content_length.is_some_and(|n| n > MAX_BODY) {
            return Err(ReadError::Bad(413, "request body too large".into()));
        }
        let has_body = chunked || content_length.is_some_and(|n| n > 0);
        if has_body
            && req
                .header("expect")
                .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
            && self.buf.is_empty()
        {
            self.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .map_err(|_| ReadError::Closed)?;
        }
        if chunked {
            req.body = self.read_chunked_body()?;
        } else if let Some(n) = content_length {
            req.body = self.read_exact_bytes(n)?;
        }
        Ok(req)
    }

    fn read_chunked_body(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line(4096)?;
            let line = String::from_utf8_lossy(&line);
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| ReadError::Bad(400, "malformed chunk size".into()))?;
            if size == 0 {
                // Trailers until the empty line.
                loop {
                    if self.read_line(MAX_HEAD)?.is_empty() {
                        return Ok(body);
                    }
                }
            }
            if body.len().saturating_add(size) > MAX_BODY {
                return Err(ReadError::Bad(413, "request body too large".into()));
            }
            let data = self.read_exact_bytes(size)?;
            body.extend_from_slice(&data);
            if !self.read_line(2)?.is_empty() {
                return Err(ReadError::Bad(400, "chunk not followed by CRLF".into()));
            }
        }
    }

    /// Writes everything, waking periodically to honour the shutdown flag.
    pub fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match self.stream.write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => data = &data[n..],
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    if self.stopping() {
                        return Err(io::ErrorKind::ConnectionAborted.into());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn head(status: u16, headers: &[(String, String)], keep_alive: bool) -> String {
        let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
        head.push_str(&format!("date: {}\r\n", crate::util::http_date()));
        for (n, v) in headers {
            head.push_str(n);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        if !keep_alive {
            head.push_str("connection: close\r\n");
        }
        head
    }

    /// Sends a complete response with a content-length.
    pub fn send_response(
        &mut self,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
        keep_alive: bool,
    ) -> io::Result<()> {
        let mut out = Self::head(status, headers, keep_alive).into_bytes();
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
        self.write_all(&out)
    }

    /// Sends the head of a response with a content-length but only `partial` of the body.
    pub fn send_partial_response(
        &mut self,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
        partial: usize,
    ) -> io::Result<()> {
        let mut out = Self::head(status, headers, true).into_bytes();
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(&body[..partial.min(body.len())]);
        self.write_all(&out)
    }

    /// Sends the head of a chunked (streamed) response.
    pub fn start_chunked(
        &mut self,
        status: u16,
        headers: &[(String, String)],
        keep_alive: bool,
    ) -> io::Result<()> {
        let mut head = Self::head(status, headers, keep_alive);
        head.push_str("transfer-encoding: chunked\r\n\r\n");
        self.write_all(head.as_bytes())
    }

    /// Sends one chunk (no-op for empty data, which would terminate the body).
    pub fn send_chunk(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let mut out = format!("{:x}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        self.write_all(&out)
    }

    /// Sends the last-chunk marker that ends a chunked body.
    pub fn finish_chunked(&mut self) -> io::Result<()> {
        self.write_all(b"0\r\n\r\n")
    }

    /// Aborts the connection with a TCP RST (SO_LINGER 0, then close).
    pub fn reset(self) {
        let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        drop(self.stream);
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent() {
        assert_eq!(percent_decode("a%20b+c%zz"), "a b c%zz");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("x%41"), "xA");
    }
}
