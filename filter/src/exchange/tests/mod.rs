//! Whole-request scenarios against the fake host, each run at every chunking of its bodies.
//!
//! [`Driver`] plays Envoy around one exchange.

mod api_keys;
mod auth;
mod failover;
mod ids;
mod requests;
mod responses;
mod upstream;

use std::rc::Rc;

pub use super::drive::Driver;
use super::fake::FakeHost;
use super::host::{Body, Host};
use super::{Flow, Vm};

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
