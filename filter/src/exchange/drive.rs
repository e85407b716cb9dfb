//! A request driven the way Envoy drives it, over the [`FakeHost`]: for tests, benches and
//! fuzzing.
//!
//! [`Driver`] delivers headers and body chunks to one [`Exchange`], buffers what the pipeline
//! pauses (a paused body event sees everything buffered so far, as Envoy's
//! `StopIterationAndBuffer` does), releases buffered data when the pipeline resumes, and keeps
//! what reached the upstream and the client.

use std::rc::Rc;

use super::fake::FakeHost;
use super::host::{Body, Host, Map};
use super::{Exchange, Flow, Vm};

/// One request as Envoy would drive it.
pub struct Driver {
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

impl Driver {
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
                // A body event that continues releases headers held before it too.
                self.client_released = true;
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

    /// Answers gRPC call `token` with `status_code` (0: OK) and `body` (a protobuf message).
    pub fn answer_grpc(&mut self, host: &mut FakeHost, token: u32, status_code: u32, body: &[u8]) {
        host.set_body(Body::GrpcResponse, body);
        self.ex
            .on_grpc_response(host, token, status_code, body.len());
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
