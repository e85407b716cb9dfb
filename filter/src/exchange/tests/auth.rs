//! Authentication scenarios: a request arriving while the keys are still being fetched, a
//! refused token, and a token the cache already verified.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_simple::prelude::*;

use super::*;
use crate::exchange::host::Map;

const SECRET: &[u8] = b"a-shared-secret-of-at-least-32-bytes!!";
const ISS: &str = "https://idp.example";
const AUD: &str = "tollgate";

fn config() -> String {
    r#"{"jwt":{"providers":[{"name":"corp","issuer":"https://idp.example","audiences":["tollgate"],
        "remote_jwks":{"cluster":"jwks","uri":"https://idp.example/jwks.json","timeout_ms":2000}}],
      "rules":[{"path_prefix":"/v1/","requires":{"provider":"corp"}}]}}"#
        .to_string()
}

fn jwks() -> String {
    serde_json::json!({"keys":[{"kty":"oct","kid":"k1","alg":"HS256","k": URL_SAFE_NO_PAD.encode(SECRET)}]})
        .to_string()
}

/// A host whose clock is the system's (tokens are minted with the system clock).
fn host_now() -> FakeHost {
    let host = FakeHost::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    host.clock_ns.set(u64::try_from(now.as_nanos()).unwrap());
    host
}

fn token(secret: &[u8], subject: &str) -> String {
    let key = HS256Key::from_bytes(secret).with_key_id("k1");
    let claims = Claims::create(jwt_simple::prelude::Duration::from_mins(10))
        .with_issuer(ISS)
        .with_audience(AUD)
        .with_subject(subject);
    key.authenticate(claims).unwrap()
}

#[test]
fn a_request_waits_for_the_keys_then_goes_on_at_every_chunking() {
    let body = chat_body("gpt-4o-mini", false);
    let bearer = format!("Bearer {}", token(SECRET, "alice"));
    for chunks in chunkings(&body) {
        for keys_after_body in [false, true] {
            let mut host = host_now();
            let vm = vm(&mut host, &config());
            let mut r = Driver::new(&vm);
            let headers = chat_headers(&[("authorization", bearer.as_str())]);
            r.send_headers(&mut host, &headers, false);
            if keys_after_body {
                r.send_chunks(&mut host, &chunks);
            }
            assert!(!r.upstream_released, "held while the keys load");
            assert_eq!(host.calls.len(), 1);
            assert_eq!(host.calls[0].cluster, "jwks");
            let token = host.calls[0].token;
            r.answer(&mut host, token, Some(200), &[], jwks().as_bytes());
            if !keys_after_body {
                r.send_chunks(&mut host, &chunks);
            }
            assert!(host.replies.is_empty(), "{:?}", host.replies);
            assert!(r.upstream_released);
            assert_eq!(r.upstream, body, "the body reaches the upstream whole");
            r.log(&mut host);
            assert_eq!(
                host.metric("provider=.=corp;.;tollgate_jwt_allowed_total"),
                1
            );
        }
    }
}

#[test]
fn a_refused_token_gets_a_401_with_a_challenge() {
    let mut host = host_now();
    let vm = vm(&mut host, &config());
    let mut r = Driver::new(&vm);
    let bearer = format!(
        "Bearer {}",
        token(b"another-secret-of-at-least-32-bytes!!!", "mallory")
    );
    r.send(
        &mut host,
        &chat_headers(&[("authorization", bearer.as_str())]),
        &[&chat_body("m", false)],
    );
    let token_id = host.calls[0].token;
    r.answer(&mut host, token_id, Some(200), &[], jwks().as_bytes());
    assert_eq!(host.replies.len(), 1);
    let reply = &host.replies[0];
    assert_eq!(reply.status, 401);
    assert!(reply
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer"));
    assert_eq!(reply.json()["error"]["type"], "authentication_error");
    assert_eq!(reply.json()["error"]["request_id"], r.ex.request_id());
    assert!(!r.upstream_released);
    r.log(&mut host);
    assert_eq!(host.metric_sum("tollgate_jwt_denied_total"), 1);
}

#[test]
fn keys_that_never_come_refuse_with_no_keys_yet() {
    let mut host = host_now();
    let vm = vm(&mut host, &config());
    let mut r = Driver::new(&vm);
    let bearer = format!("Bearer {}", token(SECRET, "alice"));
    r.send(
        &mut host,
        &chat_headers(&[("authorization", bearer.as_str())]),
        &[],
    );
    let token_id = host.calls[0].token;
    r.answer(&mut host, token_id, None, &[], b"");
    assert_eq!(host.replies.len(), 1);
    assert_eq!(host.replies[0].status, 401);
    assert_eq!(host.replies[0].json()["error"]["code"], "no_keys_yet");
}

#[test]
fn a_cached_token_passes_without_verifying_again() {
    let mut host = host_now();
    let vm = vm(&mut host, &config());
    let bearer = format!("Bearer {}", token(SECRET, "alice"));
    let headers = chat_headers(&[("authorization", bearer.as_str())]);
    let mut first = Driver::new(&vm);
    first.send(&mut host, &headers, &[&chat_body("m", false)]);
    let token_id = host.calls[0].token;
    first.answer(&mut host, token_id, Some(200), &[], jwks().as_bytes());
    assert!(first.upstream_released);
    let hits_before = vm.jwt.as_ref().map(|j| j.borrow().cache.len()).unwrap();
    assert_eq!(hits_before, 1, "the verified token is cached");
    for _ in 0..3 {
        let mut next = Driver::new(&vm);
        next.send(&mut host, &headers, &[&chat_body("m", false)]);
        assert!(next.upstream_released);
        assert_eq!(
            host.get(Map::Request, "authorization"),
            None,
            "the token is not forwarded"
        );
    }
    assert_eq!(host.calls.len(), 1, "no fetch for cached tokens");
    assert!(host.replies.is_empty());
    assert_eq!(
        host.metric("provider=.=corp;.;tollgate_jwt_allowed_total"),
        4
    );
}
