//! Whole-request scenarios against the fake host, each run at every chunking of its bodies.
//!
//! [`Req`] plays Envoy around one [`Exchange`]: it delivers headers and body chunks, buffers
//! what the pipeline pauses (a paused body event sees everything buffered so far, as Envoy's
//! `StopIterationAndBuffer` does), releases buffered data when the pipeline resumes, and keeps
//! what reached the upstream and the client.

mod auth;
mod failover;
mod ids;
mod requests;
mod responses;
mod upstream;

use std::rc::Rc;

use super::fake::FakeHost;
use super::host::{Body, Host, Map};
use super::{Exchange, Flow, Vm};

/// The configuration `json` loaded into a VM of `host`.
pub fn vm(host: &mut FakeHost, json: &str) -> Rc<Vm> {
    match Vm::configure(host, json.as_bytes()) {
        Ok(vm) => Rc::new(vm),
        Err(e) => panic!("config refused: {e}"),
    }
}

/// Every way to cut `body` the scenarios try: whole, at every single split point, and one byte
/// at a time. An empty body is one empty list (no body events).
pub fn chunkings(body: &[u8]) -> Vec<Vec<&[u8]>> {
    if body.is_empty() {
        return vec![Vec::new()];
    }
    let mut out = vec![vec![body]];
    for i in 1..body.len() {
        out.push(vec![&body[..i], &body[i..]]);
    }
    if body.len() > 2 {
        out.push(body.chunks(1).collect());
    }
    out
}

/// One way to cut a request body and a response body.
pub type Cuts<'a> = (Vec<&'a [u8]>, Vec<&'a [u8]>);

/// Every chunking of `request` with `response` whole, then every chunking of `response` with
/// `request` whole: each body is cut everywhere without running the product of both.
pub fn each_chunking<'a>(request: &'a [u8], response: &'a [u8]) -> Vec<Cuts<'a>> {
    let mut out: Vec<Cuts<'a>> = chunkings(request)
        .into_iter()
        .map(|r| (r, vec![response]))
        .collect();
    out.extend(
        chunkings(response)
            .into_iter()
            .skip(1)
            .map(|c| (vec![request], c)),
    );
    out
}

/// A coarser set for long bodies: whole, every `step`-th split point, and 7-byte pieces.
pub fn some_chunkings(body: &[u8], step: usize) -> Vec<Vec<&[u8]>> {
    let mut out = vec![vec![body]];
    for i in (1..body.len()).step_by(step.max(1)) {
        out.push(vec![&body[..i], &body[i..]]);
    }
    out.push(body.chunks(7).collect());
    out
}

/// One request as Envoy would drive it.
pub struct Req {
    /// The pipeline under test.
    pub ex: Exchange,
    /// The request body the upstream received.
    pub upstream: Vec<u8>,
    /// The request was released upstream (headers continued or resumed).
    pub upstream_released: bool,
    /// The response body the client received.
    pub client: Vec<u8>,
    /// The response headers were released to the client.
    pub client_released: bool,
    request_paused: bool,
    response_paused: bool,
    request_resumes: usize,
    response_resumes: usize,
}

impl Req {
    /// A new request of `vm`.
    pub fn new(vm: &Rc<Vm>) -> Self {
        Self {
            ex: vm.exchange(),
            upstream: Vec::new(),
            upstream_released: false,
            client: Vec::new(),
            client_released: false,
            request_paused: false,
            response_paused: false,
            request_resumes: 0,
            response_resumes: 0,
        }
    }

    /// Sends the request headers and body chunks (stops after a local reply).
    pub fn send(&mut self, host: &mut FakeHost, headers: &[(&str, &str)], chunks: &[&[u8]]) {
        self.send_headers(host, headers, chunks.is_empty());
        self.send_chunks(host, chunks);
    }

    /// Sends the request headers only.
    pub fn send_headers(
        &mut self,
        host: &mut FakeHost,
        headers: &[(&str, &str)],
        end_of_stream: bool,
    ) {
        host.set_map(Map::Request, headers);
        host.set_body(Body::Request, b"");
        let flow = self.ex.on_request_headers(host, end_of_stream);
        self.upstream_released = flow == Flow::Continue;
        self.sync(host);
    }

    /// Sends request body chunks, the last one ending the request (stops after a local reply).
    pub fn send_chunks(&mut self, host: &mut FakeHost, chunks: &[&[u8]]) {
        for (i, chunk) in chunks.iter().enumerate() {
            if self.replied(host) {
                return;
            }
            self.request_chunk(host, chunk, i + 1 == chunks.len());
        }
    }

    fn replied(&self, host: &FakeHost) -> bool {
        !host.replies.is_empty()
    }

    fn request_chunk(&mut self, host: &mut FakeHost, chunk: &[u8], last: bool) {
        let buffer = host.bodies.entry(Body::Request).or_default();
        if !self.request_paused {
            buffer.clear();
        }
        buffer.extend_from_slice(chunk);
        let size = buffer.len();
        match self.ex.on_request_body(host, size, last) {
            Flow::Continue => {
                self.upstream_released = true;
                self.upstream.extend(host.body(Body::Request, usize::MAX));
                self.request_paused = false;
            }
            Flow::Pause | Flow::Replied => self.request_paused = true,
        }
        self.sync(host);
    }

    /// Delivers the response headers (with `:status`) and body chunks.
    pub fn respond(&mut self, host: &mut FakeHost, headers: &[(&str, &str)], chunks: &[&[u8]]) {
        self.respond_headers(host, headers, chunks.is_empty());
        for (i, chunk) in chunks.iter().enumerate() {
            self.response_chunk(host, chunk, i + 1 == chunks.len());
        }
    }

    /// Delivers the response headers only.
    pub fn respond_headers(
        &mut self,
        host: &mut FakeHost,
        headers: &[(&str, &str)],
        end_of_stream: bool,
    ) {
        host.set_map(Map::Response, headers);
        host.set_body(Body::Response, b"");
        let flow = self.ex.on_response_headers(host, end_of_stream);
        self.client_released = flow == Flow::Continue;
        self.sync(host);
    }

    /// Delivers response body chunks after the headers (a stream the client reads).
    pub fn response_chunk(&mut self, host: &mut FakeHost, chunk: &[u8], last: bool) {
        let buffer = host.bodies.entry(Body::Response).or_default();
        if !self.response_paused {
            buffer.clear();
        }
        buffer.extend_from_slice(chunk);
        let size = buffer.len();
        match self.ex.on_response_body(host, size, last) {
            Flow::Continue => {
                self.client.extend(host.body(Body::Response, usize::MAX));
                self.response_paused = false;
            }
            Flow::Pause | Flow::Replied => self.response_paused = true,
        }
        self.sync(host);
    }

    /// Answers callout `token` (`None` status: no response).
    pub fn answer(
        &mut self,
        host: &mut FakeHost,
        token: u32,
        status: Option<u16>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) {
        host.answer_callout(status, headers, body);
        self.ex.on_callout_response(host, token, body.len());
        self.sync(host);
    }

    /// The access-log hook.
    pub fn log(&mut self, host: &mut FakeHost) {
        self.ex.on_log(host);
    }

    /// Releases what the pipeline resumed.
    fn sync(&mut self, host: &mut FakeHost) {
        if host.request_resumes > self.request_resumes {
            self.request_resumes = host.request_resumes;
            self.upstream_released = true;
            self.upstream.extend(host.body(Body::Request, usize::MAX));
            self.request_paused = false;
        }
        if host.response_resumes > self.response_resumes {
            self.response_resumes = host.response_resumes;
            self.client_released = true;
            self.client.extend(host.body(Body::Response, usize::MAX));
            self.response_paused = false;
        }
    }

    /// The client's view of the response body as text.
    pub fn client_text(&self) -> String {
        String::from_utf8_lossy(&self.client).into_owned()
    }

    /// The upstream request body as JSON.
    pub fn upstream_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.upstream).unwrap_or(serde_json::Value::Null)
    }
}

/// The request headers of an OpenAI chat request with `extra` headers.
pub fn chat_headers<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "tollgate.test"),
        ("content-type", "application/json"),
    ];
    h.extend_from_slice(extra);
    h
}

/// An OpenAI chat request body.
pub fn chat_body(model: &str, stream: bool) -> Vec<u8> {
    format!(
        r#"{{"model":"{model}","stream":{stream},"max_tokens":50,"messages":[{{"role":"system","content":"be brief"}},{{"role":"user","content":"hello there"}}]}}"#
    )
    .into_bytes()
}
