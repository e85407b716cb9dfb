//! Host tests for the response cache on the real module: an answer stored by one worker VM is
//! served by another (shared data is per process), as JSON and replayed as a stream, with no
//! request reaching a provider; another caller and an error are not served from it.

use tollgate_host_tests::{Action, SharedHost, Vm};

const CONFIG: &str = r#"{"cache":{"rules":[{"path_prefix":"/v1/"}],"scope":"user"}}"#;
const ANSWER: &[u8] = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Toll roads pay for themselves."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#;

fn worker(shared: &SharedHost) -> Vm {
    let mut vm = Vm::load_shared(shared.clone()).unwrap();
    assert!(vm.configure(CONFIG).unwrap(), "{:?}", vm.logs());
    vm
}

fn request(vm: &mut Vm, key: &str, stream: bool, extra: &[(&str, &str)]) -> (u32, Action) {
    let body = format!(
        r#"{{"model":"gpt-4o-mini","temperature":0,"stream":{stream},"messages":[{{"role":"user","content":"why tolls?"}}]}}"#
    );
    let ctx = vm.new_http();
    let len = body.len().to_string();
    let auth = format!("Bearer {key}");
    let mut headers = vec![
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        ("content-type", "application/json"),
        ("content-length", len.as_str()),
        ("authorization", auth.as_str()),
    ];
    headers.extend_from_slice(extra);
    assert_eq!(
        vm.request_headers(ctx, &headers, false).unwrap(),
        Action::Pause
    );
    let action = vm.request_body(ctx, body.as_bytes(), true).unwrap();
    (ctx, action)
}

fn respond(vm: &mut Vm, ctx: u32, status: &str, body: &[u8]) {
    vm.response_headers(
        ctx,
        &[(":status", status), ("content-type", "application/json")],
        false,
    )
    .unwrap();
    for (i, piece) in body.chunks(37).enumerate() {
        let last = (i + 1) * 37 >= body.len();
        vm.response_body(ctx, piece, last).unwrap();
    }
    vm.finish(ctx).unwrap();
}

#[test]
fn an_answer_stored_by_one_worker_is_served_by_another() {
    let shared = SharedHost::new();
    let mut a = worker(&shared);
    let mut b = worker(&shared);
    let (ctx, action) = request(&mut a, "alice", false, &[]);
    assert_eq!(action, Action::Continue, "a miss goes to the provider");
    respond(&mut a, ctx, "200", ANSWER);
    assert_eq!(
        a.response_header(ctx, "x-tollgate-cache").as_deref(),
        Some("miss")
    );

    let (ctx, action) = request(&mut b, "alice", false, &[]);
    assert_eq!(action, Action::Pause, "a hit is answered locally");
    let reply = b.local_reply(ctx).expect("the cached reply").clone();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, ANSWER);
    assert_eq!(reply.header("x-tollgate-cache"), Some("hit"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    b.finish(ctx).unwrap();
    assert_eq!(shared.metric("tollgate_cache_hits_total"), Some(1));
    assert_eq!(shared.metric("tollgate_cache_entries"), Some(1));

    // The same request asked as a stream is replayed as one.
    let (ctx, action) = request(&mut b, "alice", true, &[]);
    assert_eq!(action, Action::Pause);
    let reply = b.local_reply(ctx).expect("the replayed stream").clone();
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let text = String::from_utf8(reply.body).unwrap();
    assert!(
        text.contains("\"object\":\"chat.completion.chunk\""),
        "{text}"
    );
    assert!(text.contains("Toll roads pay for themselves."), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
}

#[test]
fn another_caller_and_errors_are_not_served_from_the_cache() {
    let shared = SharedHost::new();
    let mut a = worker(&shared);
    let (ctx, _) = request(&mut a, "alice", false, &[]);
    respond(&mut a, ctx, "503", br#"{"error":{"message":"busy"}}"#);
    let (ctx, action) = request(&mut a, "alice", false, &[]);
    assert_eq!(action, Action::Continue, "the error was not stored");
    respond(&mut a, ctx, "200", ANSWER);
    let (ctx, action) = request(&mut a, "bob", false, &[]);
    assert_eq!(action, Action::Continue, "bob has his own entries");
    assert!(a.local_reply(ctx).is_none());
    let (ctx, action) = request(&mut a, "alice", false, &[("cache-control", "no-cache")]);
    assert_eq!(action, Action::Continue, "no-cache bypasses");
    assert!(a.local_reply(ctx).is_none());
    let (_, action) = request(&mut a, "alice", false, &[]);
    assert_eq!(action, Action::Pause, "alice's entry is there");
}
