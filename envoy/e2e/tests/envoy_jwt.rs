//! `envoy_jwt` mode on a real Envoy 1.40: Envoy's native `jwt_authn` verifies the signature and
//! tollgate takes the identity and claims from the payload `jwt_authn` puts in dynamic metadata.

use jwt_simple::prelude::*;
use tollgate_e2e::base64url;
use tollgate_e2e::mock::client::request;
use tollgate_e2e::mock::{MockOptions, MockProvider};
use tollgate_e2e::{template, Envoy, Vars};

const SECRET: &[u8] = b"an-hs256-demo-secret-of-32-bytes!!";
const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

fn token(sub: &str, team: &str) -> String {
    let key = HS256Key::from_bytes(SECRET).with_key_id("k1");
    let claims =
        Claims::with_custom_claims(serde_json::json!({ "team": team }), Duration::from_mins(10))
            .with_issuer("https://issuer.test")
            .with_audience("tollgate")
            .with_subject(sub);
    key.authenticate(claims).expect("token signs")
}

fn start(plugin: &str) -> (tollgate_e2e::mock::MockHandle, Envoy) {
    let mock = MockProvider::start(MockOptions::default()).unwrap();
    let jwks = format!(
        r#"{{"keys":[{{"kty":"oct","kid":"k1","alg":"HS256","k":"{}"}}]}}"#,
        base64url(SECRET)
    );
    let envoy = Envoy::start(
        &template("e2e/configs/envoy_jwt.yaml"),
        Vars::new()
            .set("UPSTREAM_PORT", mock.port())
            .set("JWKS", jwks)
            .plugin_config(plugin),
    );
    (mock, envoy)
}

const PLUGIN: &str = r#"{
  "envoy_jwt": {"payload_key": "jwt_payload", "claims_to_headers": [{"claim": "team", "header": "x-team"}]},
  "budgets": {"windows": [{"period": "minute", "max_requests": 2}]}
}"#;

#[test]
fn identity_and_claims_come_from_jwt_authn_metadata() {
    let (mock, envoy) = start(PLUGIN);
    let auth = format!("Bearer {}", token("alice", "research"));
    let resp = request(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &[("authorization", auth.as_str()), ("x-team", "spoofed")],
        CHAT.as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let up = mock.requests().pop().unwrap();
    assert_eq!(
        up.header("x-team"),
        Some("research"),
        "claim copied, spoofed value replaced"
    );
    let stats = envoy.prometheus();
    assert!(stats.contains("tollgate_jwt_allowed_total"), "{stats}");
}

#[test]
fn jwt_authn_refuses_bad_tokens_before_tollgate() {
    let (mock, envoy) = start(PLUGIN);
    let resp = request(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer not.a.jwt")],
        CHAT.as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.status, 401);
    assert!(mock.requests().is_empty());
}

#[test]
fn budgets_follow_the_jwt_subject() {
    let (_mock, envoy) = start(PLUGIN);
    let alice = format!("Bearer {}", token("alice", "a"));
    let bob = format!("Bearer {}", token("bob", "b"));
    let send = |auth: &str| {
        request(
            envoy.port,
            "POST",
            "/v1/chat/completions",
            &[("authorization", auth)],
            CHAT.as_bytes(),
        )
        .unwrap()
        .status
    };
    assert_eq!(send(&alice), 200);
    assert_eq!(send(&alice), 200);
    assert_eq!(
        send(&alice),
        429,
        "alice's third request in the minute is over her budget"
    );
    assert_eq!(send(&bob), 200, "bob has his own budget");
}
