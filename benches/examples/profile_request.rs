//! One JSON chat request, start to access log, repeated over the in-memory host: a fixed workload
//! for a native profiler (issue 13, docs/benchmarks.md "Where the time went").
//!
//! ```sh
//! cargo build --release -p tollgate-benches --example profile_request
//! valgrind --tool=callgrind target/release/examples/profile_request '{"masking":{"prompts":"off"}}' 1000
//! ```
//!
//! Arguments: the plugin configuration (default `{}`) and the number of requests (default
//! 1000). For function names, build with `CARGO_PROFILE_RELEASE_STRIP=false
//! CARGO_PROFILE_RELEASE_DEBUG=true` (and a separate `CARGO_TARGET_DIR`).

use std::rc::Rc;

use tollgate::exchange::drive::Driver;
use tollgate::exchange::fake::FakeHost;
use tollgate::exchange::Vm;

fn main() {
    let config = std::env::args().nth(1).unwrap_or_else(|| "{}".into());
    let n: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let mut host = FakeHost::new();
    host.properties
        .insert("source.address".into(), b"10.0.0.7:5100".to_vec());
    let vm = match Vm::configure(&mut host, config.as_bytes()) {
        Ok(vm) => Rc::new(vm),
        Err(e) => panic!("configuration refused: {e}"),
    };
    let body = br#"{"model":"gpt-4o-mini","stream":false,"messages":[{"role":"user","content":"hello there"}]}"#;
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../filter/src/usage/fixtures/openai_chat.json"
    );
    let answer = std::fs::read(fixture).unwrap_or_else(|e| panic!("{fixture}: {e}"));
    let len = body.len().to_string();
    let headers = [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "tollgate.bench"),
        ("content-type", "application/json"),
        ("content-length", len.as_str()),
    ];
    let response_headers = [(":status", "200"), ("content-type", "application/json")];
    let mut delivered = 0;
    for _ in 0..n {
        let mut r = Driver::new(&vm);
        r.send(&mut host, &headers, &[&body[..]]);
        r.respond(&mut host, &response_headers, &[&answer[..]]);
        r.log(&mut host);
        host.logs.borrow_mut().clear();
        host.histogram_values.clear();
        host.set_properties.clear();
        delivered += r.client.len();
    }
    assert_eq!(
        delivered,
        n * answer.len(),
        "every answer reached the client"
    );
}
