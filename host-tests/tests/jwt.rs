//! Host tests for JWT validation on the real module: every algorithm accepted, every refusal
//! answered with the right status, `WWW-Authenticate`, body code and request id; claim headers
//! set and spoofed copies removed; the token stripped before upstream; bypass, CORS preflight and
//! unmatched paths; metrics; the user identity in the access log; and remote JWKS fetched through
//! the emulator's HTTP callouts (first fetch, requests held for keys, failures keeping the last
//! good keys, unknown-`kid` refetch after a key rotation).
//!
//! Tokens are minted here with `jwt-simple`; hand-made tokens (forged headers, `alg: none`,
//! HS/RS confusion) are assembled byte by byte and HMAC-signed with `MACLike::authentication_tag`.

use std::sync::OnceLock;

use jwt_simple::prelude::*;
use serde_json::{json, Map, Value};
use tollgate_host_tests::{Action, Vm};

/// The emulator clock during these tests (seconds since the epoch).
const NOW: u64 = 1_750_000_000;
const ISS: &str = "https://idp.example";
const AUD: &str = "tollgate";
const HS_SECRET: &[u8; 40] = b"0123456789abcdef0123456789abcdef-hs-key!";

/// A fixed RSA-2048 test key (generating one in an unoptimised test build takes seconds).
const RSA_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQClM/WIORRgeWLs
JXB2tyzktiJc5d/Hd8LI3ulr5Nd7bmFvBzRRvpYbbLCOZ0RO0aiUtj+aeV6H90zN
ok6UL21iaiuAwUaDm3doyNaVf6KIqAh446kniVW1Ntlpukkj+Nku+SrZ2OHZnfXC
Lrksy1YiZqZ/YPCH2L+y7TKTZvTnuQFjBTtoPWT609A/TBRjLHCqzDQa5wEhNGAn
8WzJcStlO4wMqS4DrKCMQbiHHj0V5u432cx+ae3Tg5eyOJp6b1knipdb+3m2mS6i
m99I6dNrqhmTYJXlYwLB8CUIXlX23PLlPnpiTH6NisyPxqbt1y+87tTRW0pVbDhY
fyKMxjNlAgMBAAECggEAF6PBxMZ2Nf/oueX5m+NGV0wAys5SIVbv1pKfUEMk2pLG
+n5LbE8bZ7073oTEb4rs1qrlmxM3BbnLkbliCS5oNqb+pqQBlR+QDLyAiFAFUAzL
eZEKSZALZaz9m3V+tdkMKv6YtSel2eASpMDO2qwWHUIXHS8f/DB17gKnNBSNgwLp
N7klE+0FR64YsCly6rzTXRpWlyW0U2A68ZC7YFy1K9QJqcv13nmnnESFbaUGpeoP
rB/eQtufeSMiz72NGVop11TPYp94sxzC3zOPFPePCMbmiV94RMGd7qFuJ4wd0XXK
nS1JLPBI5soYWpXpw/U6tom0TYejGHXLXEqDPakAGQKBgQDekFByq5eqF5LrGT66
LL+jzuaJY+BLiG36wqj9Up+bL0WlK5Srf2eA6ZcY9/uw/Gfx6GPz4yFPXBXCEJBv
tKL9WFWNUlAbfyUaqCKoGBeCIxFl9yDUOQ+FQ2xfknYBcvF++T8swoT3FsQu1NyS
LzJJ8fKHwBYtQ8dbOm7f30e2uwKBgQC+BZRjDNiUmM1AQxfqH0iLumInXxBxGqSz
oxglnuPBqPYGYrNykBNiaISv/OoyQ4P3EGom7ounWEry+ulG62FfbTCY7j0oUIcT
7MIX5JaW8FEXL4xrPeG/jGZEpGpzC8PQb3eDgQ6CFZFolvumvNC4RC1OIC0g/0aG
6IIpA0/sXwKBgHwVRWTJGgNwpS6BoqE1dZqkLY+HqXMzGu3lPUYOnIFud4vAomCC
5XfPw7fd+esQrfsGr0M37EhMdKz/gydkNEK+zuO9coACAPO9raS92c1qM7b/csQf
E/IeRvt5smTYap954qjXwj3n6XSapGaz/XuQcsEQbMzLrwfDqjESUO8lAoGAZ5YH
FA/WqPq7OQLaMIipNXJ/O1M5VU7e5gZMjYWWRuXiaAy6IgOkbYroej93M7tWXwKV
u29itfENunNJY53A0RJm4ZdNw4JSgGwaSogUB2gt7GPBOlzbiV3yCg1O8jRBpIh/
MDLUQ9maENftizF23lxcDjDAKTK/sZ9iBRWHJiUCgYEAt2ffihFNUd/jKk8D0A84
DgrMNptalxzV7FHVhoeyw8HDttsMSIxgdwNTDDFaWVJm47wP+IHlNtCBLwj2Qo6l
/LYjDR+Jaj0pmxiQaXpEtSzDHb5TWI5tfwAsWI+FqZIWjUkCnjBz+/OMMHuEvbIM
LMEr7s5pu4FI+ke/nCEe+EU=
-----END PRIVATE KEY-----";

// ------------------------------------------------------------------------------ keys and tokens

/// The signing keys of these tests (EC and Ed25519 keys are generated once per run).
struct Signers {
    rsa_der: Vec<u8>,
    es256: ES256KeyPair,
    es384: ES384KeyPair,
    ed: Ed25519KeyPair,
}

fn signers() -> &'static Signers {
    static SIGNERS: OnceLock<Signers> = OnceLock::new();
    SIGNERS.get_or_init(|| Signers {
        rsa_der: RS256KeyPair::from_pem(RSA_PEM).unwrap().to_der().unwrap(),
        es256: ES256KeyPair::generate(),
        es384: ES384KeyPair::generate(),
        ed: Ed25519KeyPair::generate(),
    })
}

fn b64(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap()
}

/// A public JWK exported by jwt-simple, with a `kid`.
fn jwk_with_kid(exported: String, kid: &str) -> Value {
    let mut v: Value = serde_json::from_str(&exported).unwrap();
    v["kid"] = json!(kid);
    v
}

fn rsa_jwk(kid: &str) -> Value {
    let c = RS256KeyPair::from_der(&signers().rsa_der)
        .unwrap()
        .public_key()
        .to_components();
    json!({"kty": "RSA", "kid": kid, "n": b64(&c.n), "e": b64(&c.e)})
}

fn es256_jwk(key: &ES256KeyPair, kid: &str) -> Value {
    jwk_with_kid(key.public_key().to_jwk(), kid)
}

/// One key of every type: `hs` (oct), `rsa` (RSA, no `alg`: RS* and PS*), `es256`, `es384`, `ed`.
fn all_keys_jwks() -> Value {
    let s = signers();
    json!({"keys": [
        {"kty": "oct", "kid": "hs", "k": b64(HS_SECRET)},
        rsa_jwk("rsa"),
        es256_jwk(&s.es256, "es256"),
        jwk_with_kid(s.es384.public_key().to_jwk(), "es384"),
        jwk_with_kid(s.ed.public_key().to_jwk(), "ed"),
    ]})
}

/// Claims with full control over the registered ones.
#[derive(Clone)]
struct Spec {
    iat: Option<u64>,
    exp: Option<u64>,
    nbf: Option<u64>,
    iss: Option<String>,
    aud: Option<String>,
    /// Everything else, `sub` included.
    extra: Map<String, Value>,
}

impl Spec {
    /// Valid at `now` for 10 minutes: alice, scopes `chat models`, org acme.
    fn at(now: u64) -> Spec {
        Spec {
            iat: Some(now - 10),
            exp: Some(now + 600),
            nbf: None,
            iss: Some(ISS.into()),
            aud: Some(AUD.into()),
            extra: json!({
                "sub": "alice",
                "scope": "chat models",
                "org": {"id": "acme"},
                "email": "alice@example.com"
            })
            .as_object()
            .unwrap()
            .clone(),
        }
    }

    fn valid() -> Spec {
        Spec::at(NOW)
    }

    fn with(mut self, name: &str, value: Value) -> Spec {
        self.extra.insert(name.into(), value);
        self
    }

    fn claims(&self) -> JWTClaims<Map<String, Value>> {
        let mut custom = self.extra.clone();
        let sub = custom.remove("sub");
        let mut c = Claims::with_custom_claims(custom, Duration::from_secs(1));
        c.issued_at = self.iat.map(UnixTimeStamp::from_secs);
        c.expires_at = self.exp.map(UnixTimeStamp::from_secs);
        c.invalid_before = self.nbf.map(UnixTimeStamp::from_secs);
        c.issuer = self.iss.clone();
        c.audiences = self.aud.clone().map(Audiences::AsString);
        c.subject = sub.and_then(|s| s.as_str().map(str::to_string));
        c
    }

    /// The payload as JSON, for hand-made tokens.
    fn payload(&self) -> Value {
        let mut m = self.extra.clone();
        for (name, v) in [("iat", self.iat), ("exp", self.exp), ("nbf", self.nbf)] {
            if let Some(v) = v {
                m.insert(name.into(), v.into());
            }
        }
        if let Some(v) = &self.iss {
            m.insert("iss".into(), v.clone().into());
        }
        if let Some(v) = &self.aud {
            m.insert("aud".into(), v.clone().into());
        }
        Value::Object(m)
    }
}

/// Signs `spec` with algorithm `alg`, using the test key of that family and `kid`.
fn sign(alg: &str, kid: &str, spec: &Spec) -> String {
    let s = signers();
    let c = spec.claims();
    let der = &s.rsa_der;
    match alg {
        "HS256" => HS256Key::from_bytes(HS_SECRET)
            .with_key_id(kid)
            .authenticate(c),
        "HS384" => HS384Key::from_bytes(HS_SECRET)
            .with_key_id(kid)
            .authenticate(c),
        "HS512" => HS512Key::from_bytes(HS_SECRET)
            .with_key_id(kid)
            .authenticate(c),
        "RS256" => RS256KeyPair::from_der(der)
            .unwrap()
            .with_key_id(kid)
            .sign(c),
        "RS384" => RS384KeyPair::from_der(der)
            .unwrap()
            .with_key_id(kid)
            .sign(c),
        "RS512" => RS512KeyPair::from_der(der)
            .unwrap()
            .with_key_id(kid)
            .sign(c),
        "PS256" => PS256KeyPair::from_der(der)
            .unwrap()
            .with_key_id(kid)
            .sign(c),
        "PS384" => PS384KeyPair::from_der(der)
            .unwrap()
            .with_key_id(kid)
            .sign(c),
        "PS512" => PS512KeyPair::from_der(der)
            .unwrap()
            .with_key_id(kid)
            .sign(c),
        "ES256" => ES256KeyPair::from_bytes(&s.es256.to_bytes())
            .unwrap()
            .with_key_id(kid)
            .sign(c),
        "ES384" => ES384KeyPair::from_bytes(&s.es384.to_bytes())
            .unwrap()
            .with_key_id(kid)
            .sign(c),
        "EdDSA" => s.ed.clone().with_key_id(kid).sign(c),
        other => panic!("no test key for {other}"),
    }
    .unwrap()
}

/// A valid ES256 token for `spec` (kid `es256`).
fn es256(spec: &Spec) -> String {
    sign("ES256", "es256", spec)
}

/// A hand-made token: any header and payload JSON, HMAC-SHA256-signed with `secret`.
fn craft_hs256(header: &Value, payload: &Value, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let tag = HS256Key::from_bytes(secret).authentication_tag(input.as_bytes());
    format!("{input}.{}", b64(&tag))
}

/// `token` with about half of its signature cut off, at a 4-character boundary so the rest is
/// still canonical base64url (the outcome does not depend on the signature's random bits).
fn truncate_signature(token: &str) -> String {
    let (head, sig) = token.rsplit_once('.').unwrap();
    format!("{head}.{}", &sig[..sig.len() / 2 / 4 * 4])
}

/// `token` with the character at `index` of its signature segment changed.
fn tamper_signature(token: &str, index: usize) -> String {
    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut chars: Vec<char> = sig.chars().collect();
    chars[index] = if chars[index] == 'A' { 'B' } else { 'A' };
    format!("{head}.{}", chars.into_iter().collect::<String>())
}

// ------------------------------------------------------------------------------ configuration

/// A `jwt` section with one provider `corp` (given its key source), claim headers, a scoped
/// `/admin` rule, a `/v1/` rule, and a `/health` bypass. `provider_extra` and `jwt_extra` are
/// merged over the defaults.
fn jwt_section(keys: Value, provider_extra: Value, jwt_extra: Value) -> Value {
    let mut provider = json!({
        "name": "corp",
        "issuer": ISS,
        "audiences": [AUD],
        "claims_to_headers": [
            {"claim": "sub", "header": "x-user-id"},
            {"claim": "org.id", "header": "X-Org-Id"}
        ]
    });
    merge(&mut provider, keys);
    merge(&mut provider, provider_extra);
    let mut jwt = json!({
        "providers": [provider],
        "rules": [
            {"path_prefix": "/admin", "requires": {"provider": "corp"}, "required_scopes": ["admin"]},
            {"path_prefix": "/v1/", "requires": {"provider": "corp"}, "required_scopes": ["chat"]}
        ],
        "bypass": [{"path_exact": "/health"}]
    });
    merge(&mut jwt, jwt_extra);
    jwt
}

fn merge(into: &mut Value, from: Value) {
    for (k, v) in from.as_object().unwrap() {
        into[k] = v.clone();
    }
}

fn local(provider_extra: Value, jwt_extra: Value) -> String {
    json!({"jwt": jwt_section(json!({"local_jwks": all_keys_jwks()}), provider_extra, jwt_extra)})
        .to_string()
}

/// A provider whose keys come from cluster `jwks` (refresh every 60 s).
fn remote(provider_extra: Value) -> String {
    let keys = json!({"remote_jwks": {
        "cluster": "jwks",
        "uri": "https://idp.example/.well-known/jwks.json",
        "timeout_ms": 2000,
        "refresh_seconds": 60
    }});
    json!({"jwt": jwt_section(keys, provider_extra, json!({}))}).to_string()
}

fn vm(config: &str) -> Vm {
    let mut vm = Vm::load().unwrap();
    vm.set_time_secs(NOW);
    assert!(vm.configure(config).unwrap(), "{:?}", vm.logs());
    vm
}

// ------------------------------------------------------------------------------ requests

/// A body-less request; returns the context and the headers action.
fn send(vm: &mut Vm, method: &str, path: &str, extra: &[(&str, &str)]) -> (u32, Action) {
    let ctx = vm.new_http();
    let mut headers = vec![
        (":method", method),
        (":path", path),
        (":authority", "tollgate.test"),
        (":scheme", "https"),
    ];
    headers.extend_from_slice(extra);
    let action = vm.request_headers(ctx, &headers, true).unwrap();
    (ctx, action)
}

fn get(vm: &mut Vm, path: &str, extra: &[(&str, &str)]) -> (u32, Action) {
    send(vm, "GET", path, extra)
}

/// `GET /v1/models` with `Authorization: Bearer <token>`.
fn with_token(vm: &mut Vm, token: &str) -> (u32, Action) {
    let auth = format!("Bearer {token}");
    get(vm, "/v1/models", &[("authorization", auth.as_str())])
}

/// Asserts the request went on upstream untouched by a local reply.
#[track_caller]
fn assert_passed(vm: &Vm, ctx: u32, action: Action) {
    assert!(
        vm.local_reply(ctx).is_none(),
        "refused: {:?}\nlogs: {:#?}",
        vm.local_reply(ctx)
            .map(|r| String::from_utf8_lossy(&r.body).into_owned()),
        vm.logs()
    );
    assert_eq!(action, Action::Continue);
}

/// Asserts a local reply with `status`, `WWW-Authenticate` and error `code`, the OpenAI error
/// shape, and the request's correlation id in both the body and the `x-request-id` header.
#[track_caller]
fn assert_refused(vm: &Vm, ctx: u32, status: u32, code: &str, www: Option<&str>) {
    let reply = vm
        .local_reply(ctx)
        .unwrap_or_else(|| panic!("expected a {status} {code}; logs: {:#?}", vm.logs()));
    let body = reply.json();
    assert_eq!(reply.status, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(reply.header("www-authenticate"), www, "{body}");
    let kind = match status {
        401 => "authentication_error",
        403 => "permission_error",
        _ => "invalid_request_error",
    };
    assert_eq!(body["error"]["type"], kind);
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let id = reply
        .header("x-request-id")
        .expect("reply carries x-request-id");
    assert!(!id.is_empty());
    assert_eq!(body["error"]["request_id"], id);
    assert_eq!(vm.request_header(ctx, "x-request-id").as_deref(), Some(id));
}

/// The challenge for an invalid token (RFC 6750).
fn invalid_token(description: &str) -> String {
    format!(
        "Bearer realm=\"tollgate\", error=\"invalid_token\", error_description=\"{description}\""
    )
}

// ------------------------------------------------------------------------------ local keys

#[test]
fn every_algorithm_is_accepted() {
    let mut vm = vm(&local(json!({}), json!({})));
    let cases = [
        ("RS256", "rsa"),
        ("RS384", "rsa"),
        ("RS512", "rsa"),
        ("PS256", "rsa"),
        ("PS384", "rsa"),
        ("PS512", "rsa"),
        ("ES256", "es256"),
        ("ES384", "es384"),
        ("EdDSA", "ed"),
        ("HS256", "hs"),
        ("HS384", "hs"),
        ("HS512", "hs"),
    ];
    for (alg, kid) in cases {
        let token = sign(alg, kid, &Spec::valid());
        let header: Value = serde_json::from_slice(
            &Base64UrlSafeNoPadding::decode_to_vec(token.split('.').next().unwrap(), None).unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], alg);
        let (ctx, action) = with_token(&mut vm, &token);
        assert_passed(&vm, ctx, action);
        assert_eq!(
            vm.request_header(ctx, "x-user-id").as_deref(),
            Some("alice"),
            "{alg}"
        );
        assert_eq!(vm.request_header(ctx, "authorization"), None, "{alg}");
    }
    assert_eq!(
        vm.shared()
            .metric("provider=.=corp;.;tollgate_jwt_allowed_total"),
        Some(cases.len() as i64)
    );
    assert!(vm.error_logs().is_empty(), "{:?}", vm.error_logs());
}

#[test]
fn every_rejection_has_its_status_challenge_code_and_request_id() {
    let mut vm = vm(&local(json!({}), json!({})));
    let valid = Spec::valid();
    let payload = valid.payload();
    let good = es256(&valid);
    let (good_head, good_sig) = good.rsplit_once('.').unwrap();
    let rsa_public_pem = RS256KeyPair::from_der(&signers().rsa_der)
        .unwrap()
        .public_key()
        .to_pem()
        .unwrap();
    let mut huge = String::from("eyJhbGciOiJFUzI1NiJ9.");
    huge.push_str(&"A".repeat(9000));
    huge.push_str(".AAAA");
    let mut no_exp = valid.clone();
    no_exp.exp = None;

    struct Case {
        name: &'static str,
        token: String,
        code: &'static str,
        description: &'static str,
    }
    let case = |name, token, code, description| Case {
        name,
        token,
        code,
        description,
    };
    let cases = vec![
        case(
            "alg none, unsigned",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"JWT"}"#),
                b64(payload.to_string().as_bytes())
            ),
            "malformed",
            "the token is malformed",
        ),
        case(
            "alg none, with a signature",
            craft_hs256(&json!({"alg": "none", "kid": "hs"}), &payload, HS_SECRET),
            "alg_not_allowed",
            "the token algorithm is not allowed",
        ),
        case(
            "HS256 signed with the RSA public key (alg confusion)",
            craft_hs256(
                &json!({"alg": "HS256", "kid": "rsa"}),
                &payload,
                rsa_public_pem.as_bytes(),
            ),
            "alg_not_allowed",
            "the token algorithm is not allowed",
        ),
        case(
            "ES256 token presented for the HMAC key",
            sign("ES256", "hs", &valid),
            "alg_not_allowed",
            "the token algorithm is not allowed",
        ),
        case(
            "expired beyond the skew",
            es256(&Spec {
                iat: Some(NOW - 700),
                exp: Some(NOW - 61),
                ..valid.clone()
            }),
            "expired",
            "the token has expired",
        ),
        case(
            "nbf in the future",
            es256(&Spec {
                nbf: Some(NOW + 300),
                ..valid.clone()
            }),
            "not_yet_valid",
            "the token is not valid yet",
        ),
        case(
            "iat in the future",
            es256(&Spec {
                iat: Some(NOW + 300),
                ..valid.clone()
            }),
            "issued_in_future",
            "the token was issued in the future",
        ),
        case(
            "wrong issuer",
            es256(&Spec {
                iss: Some("https://evil.example".into()),
                ..valid.clone()
            }),
            "wrong_issuer",
            "the token issuer is not accepted",
        ),
        case(
            "wrong audience",
            es256(&Spec {
                aud: Some("someone-else".into()),
                ..valid.clone()
            }),
            "wrong_audience",
            "the token audience is not accepted",
        ),
        case(
            "missing exp",
            es256(&no_exp),
            "missing_exp",
            "the token has no expiration time",
        ),
        case(
            "tampered signature",
            tamper_signature(&good, 10),
            "bad_signature",
            "the token signature is invalid",
        ),
        case(
            "signature of another key with the same kid",
            ES256KeyPair::generate()
                .with_key_id("es256")
                .sign(valid.claims())
                .unwrap(),
            "bad_signature",
            "the token signature is invalid",
        ),
        // A signature of the wrong length: `bad_signature`, or `malformed` for the key types
        // whose signature parser fails outside jwt-simple's error type (EdDSA today); both are
        // 401 invalid_token, the loop below accepts either.
        case(
            "truncated ES256 signature",
            truncate_signature(&good),
            "bad_signature",
            "the token signature is invalid",
        ),
        case(
            "truncated RS256 signature",
            truncate_signature(&sign("RS256", "rsa", &valid)),
            "bad_signature",
            "the token signature is invalid",
        ),
        case(
            "truncated HS256 signature",
            truncate_signature(&sign("HS256", "hs", &valid)),
            "bad_signature",
            "the token signature is invalid",
        ),
        case(
            "truncated EdDSA signature",
            truncate_signature(&sign("EdDSA", "ed", &valid)),
            "bad_signature",
            "the token signature is invalid",
        ),
        case(
            "signature with non-canonical trailing base64 bits",
            {
                let mut chars: Vec<char> = good.chars().collect();
                let last = chars.pop().unwrap();
                let alphabet: Vec<char> =
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                        .chars()
                        .collect();
                let index = alphabet.iter().position(|c| *c == last).unwrap();
                // 64 signature bytes leave the 4 low bits of the last character unused.
                chars.push(alphabet[index ^ 1]);
                chars.into_iter().collect()
            },
            "malformed",
            "the token is malformed",
        ),
        case(
            "stripped signature",
            format!("{good_head}."),
            "malformed",
            "the token is malformed",
        ),
        case(
            "payload swapped under a valid signature",
            format!(
                "{}.{}.{good_sig}",
                good_head.split('.').next().unwrap(),
                b64(valid
                    .clone()
                    .with("sub", json!("mallory"))
                    .payload()
                    .to_string()
                    .as_bytes())
            ),
            "bad_signature",
            "the token signature is invalid",
        ),
        case(
            "two segments",
            good_head.to_string(),
            "malformed",
            "the token is malformed",
        ),
        case(
            "padded base64",
            format!("{good_head}=.{good_sig}"),
            "malformed",
            "the token is malformed",
        ),
        case(
            "standard (not url-safe) base64",
            format!("{}+/.{good_sig}", good_head),
            "malformed",
            "the token is malformed",
        ),
        case(
            "header is not JSON",
            format!(
                "{}.{}.{good_sig}",
                b64(b"{not json"),
                good_head.split('.').nth(1).unwrap()
            ),
            "malformed",
            "the token is malformed",
        ),
        case(
            "payload is a JSON array",
            craft_hs256(
                &json!({"alg": "HS256", "kid": "hs"}),
                &json!([1, 2]),
                HS_SECRET,
            ),
            "malformed",
            "the token is malformed",
        ),
        case(
            "exp is a string",
            craft_hs256(
                &json!({"alg": "HS256", "kid": "hs"}),
                &{
                    let mut p = valid.payload();
                    p["exp"] = json!("tomorrow");
                    p
                },
                HS_SECRET,
            ),
            "malformed",
            "the token is malformed",
        ),
        case(
            "unknown kid",
            sign("ES256", "nope", &valid),
            "unknown_kid",
            "the token signing key is unknown",
        ),
        case(
            "crit header",
            craft_hs256(
                &json!({"alg": "HS256", "kid": "hs", "crit": ["exp"]}),
                &payload,
                HS_SECRET,
            ),
            "crit_header",
            "the token has unsupported critical header parameters",
        ),
        case(
            "oversized token",
            huge,
            "too_large",
            "the token is too large",
        ),
    ];
    // The control: the untampered token and a hand-made HS256 token pass.
    let (ctx, action) = with_token(&mut vm, &good);
    assert_passed(&vm, ctx, action);
    let crafted = craft_hs256(&json!({"alg": "HS256", "kid": "hs"}), &payload, HS_SECRET);
    let (ctx, action) = with_token(&mut vm, &crafted);
    assert_passed(&vm, ctx, action);

    let mut wrong = Vec::new();
    let mut observed: Vec<&str> = Vec::new();
    for c in &cases {
        let (ctx, action) = with_token(&mut vm, &c.token);
        assert_eq!(action, Action::Pause, "{}", c.name);
        let got = vm
            .local_reply(ctx)
            .map(|r| r.json()["error"]["code"].as_str().unwrap_or("").to_string());
        let (code, description) =
            if c.name.starts_with("truncated") && got.as_deref() == Some("malformed") {
                ("malformed", "the token is malformed")
            } else {
                (c.code, c.description)
            };
        if got.as_deref() != Some(code) {
            wrong.push(format!("{}: expected {}, got {got:?}", c.name, c.code));
            continue;
        }
        observed.push(code);
        assert_refused(
            &vm,
            ctx,
            401,
            code,
            Some(invalid_token(description).as_str()),
        );
        let reply = vm.local_reply(ctx).unwrap();
        let body = String::from_utf8_lossy(&reply.body);
        assert!(
            !body.contains(&c.token),
            "{}: the reply echoes the token",
            c.name
        );
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    for code in [
        "malformed",
        "alg_not_allowed",
        "bad_signature",
        "expired",
        "unknown_kid",
    ] {
        let expected = observed.iter().filter(|c| **c == code).count() as i64;
        assert_eq!(
            vm.shared()
                .metric(&format!("reason=.={code};.;tollgate_jwt_denied_total")),
            Some(expected),
            "{code}"
        );
    }
    assert_eq!(
        vm.shared()
            .metric("provider=.=corp;.;tollgate_jwt_allowed_total"),
        Some(2)
    );
}

#[test]
fn missing_token_challenge_has_no_error_attribute() {
    let mut vm = vm(&local(json!({}), json!({})));
    let (ctx, action) = get(&mut vm, "/v1/models", &[]);
    assert_eq!(action, Action::Pause);
    assert_refused(&vm, ctx, 401, "missing", Some("Bearer realm=\"tollgate\""));
    // An empty bearer token is refused as malformed, not as missing.
    let (ctx, _) = get(&mut vm, "/v1/models", &[("authorization", "Bearer   ")]);
    assert_refused(
        &vm,
        ctx,
        401,
        "malformed",
        Some(invalid_token("the token is malformed").as_str()),
    );
    // So is an Authorization of another scheme (stricter than Envoy's jwt_authn, which treats a
    // prefix mismatch as a missing token): a Basic credential never falls through as "no token".
    let (ctx, _) = get(&mut vm, "/v1/models", &[("authorization", "Basic YTpi")]);
    assert_refused(
        &vm,
        ctx,
        401,
        "malformed",
        Some(invalid_token("the token is malformed").as_str()),
    );
    assert_eq!(
        vm.shared()
            .metric("reason=.=missing;.;tollgate_jwt_denied_total"),
        Some(1)
    );
    // The realm is configurable.
    let mut vm2 = self::vm(&local(json!({}), json!({"realm": "llm-gateway"})));
    let (ctx, _) = get(&mut vm2, "/v1/models", &[]);
    assert_refused(
        &vm2,
        ctx,
        401,
        "missing",
        Some("Bearer realm=\"llm-gateway\""),
    );
}

#[test]
fn missing_scope_is_403_insufficient_scope() {
    let mut vm = vm(&local(json!({}), json!({})));
    let token = es256(&Spec::valid());
    let auth = format!("Bearer {token}");
    let (ctx, action) = get(&mut vm, "/admin/users", &[("authorization", auth.as_str())]);
    assert_eq!(action, Action::Pause);
    assert_refused(
        &vm,
        ctx,
        403,
        "insufficient_scope",
        Some(
            "Bearer realm=\"tollgate\", error=\"insufficient_scope\", \
             error_description=\"the token lacks a required scope\", scope=\"admin\"",
        ),
    );
    assert_eq!(
        vm.shared()
            .metric("reason=.=insufficient_scope;.;tollgate_jwt_denied_total"),
        Some(1)
    );
    // With the scope (as an array claim too), the same path passes.
    for scope in [json!("chat admin"), json!(["admin", "chat"])] {
        let token = es256(&Spec::valid().with("scope", scope));
        let auth = format!("Bearer {token}");
        let (ctx, action) = get(&mut vm, "/admin/users", &[("authorization", auth.as_str())]);
        assert_passed(&vm, ctx, action);
    }
    // `/v1/` requires `chat`: a token with only `models` is refused there.
    let token = es256(&Spec::valid().with("scope", json!("models")));
    let (ctx, _) = with_token(&mut vm, &token);
    assert_refused(
        &vm,
        ctx,
        403,
        "insufficient_scope",
        Some(
            "Bearer realm=\"tollgate\", error=\"insufficient_scope\", \
             error_description=\"the token lacks a required scope\", scope=\"chat\"",
        ),
    );
}

#[test]
fn tokens_in_two_places_are_refused() {
    let mut vm = vm(&local(json!({}), json!({})));
    let a = format!("Bearer {}", es256(&Spec::valid()));
    let b = format!("Bearer {}", sign("HS256", "hs", &Spec::valid()));
    let (ctx, _) = get(
        &mut vm,
        "/v1/models",
        &[("authorization", a.as_str()), ("authorization", b.as_str())],
    );
    assert_refused(
        &vm,
        ctx,
        401,
        "multiple_tokens",
        Some(invalid_token("more than one token was presented").as_str()),
    );
}

#[test]
fn claim_headers_are_set_and_spoofed_copies_removed() {
    let mut vm = vm(&local(json!({}), json!({})));
    let token = es256(&Spec::valid());
    let auth = format!("Bearer {token}");
    let (ctx, action) = get(
        &mut vm,
        "/v1/models",
        &[
            ("x-user-id", "mallory"),
            ("X-Org-Id", "evil"),
            ("authorization", auth.as_str()),
            ("x-user-id", "mallory-again"),
        ],
    );
    assert_passed(&vm, ctx, action);
    let headers = &vm.stream(ctx).unwrap().maps[&tollgate_host_tests::MapKind::RequestHeaders];
    let values = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(values("x-user-id"), vec!["alice"]);
    assert_eq!(values("x-org-id"), vec!["acme"]);

    // A token without the claim: the spoofed header is removed, not passed on.
    let mut spec = Spec::valid();
    spec.extra.remove("org");
    let auth = format!("Bearer {}", es256(&spec));
    let (ctx, action) = get(
        &mut vm,
        "/v1/models",
        &[("x-org-id", "evil"), ("authorization", auth.as_str())],
    );
    assert_passed(&vm, ctx, action);
    assert_eq!(vm.request_header(ctx, "x-org-id"), None);
    assert_eq!(
        vm.request_header(ctx, "x-user-id").as_deref(),
        Some("alice")
    );

    // Bypassed paths carry no identity either: spoofed headers go there too.
    let (ctx, action) = get(&mut vm, "/health", &[("x-user-id", "mallory")]);
    assert_passed(&vm, ctx, action);
    assert_eq!(vm.request_header(ctx, "x-user-id"), None);

    // A claim value with a control character is not copied.
    let auth = format!(
        "Bearer {}",
        es256(&Spec::valid().with("sub", json!("alice\r\nx-admin: 1")))
    );
    let (ctx, action) = get(
        &mut vm,
        "/v1/models",
        &[("x-user-id", "mallory"), ("authorization", auth.as_str())],
    );
    assert_passed(&vm, ctx, action);
    assert_eq!(vm.request_header(ctx, "x-user-id"), None);
}

#[test]
fn token_is_stripped_before_upstream_unless_forwarded() {
    let token = es256(&Spec::valid());
    let auth = format!("Bearer {token}");
    let mut vm1 = vm(&local(json!({}), json!({})));
    let (ctx, action) = get(&mut vm1, "/v1/models", &[("authorization", auth.as_str())]);
    assert_passed(&vm1, ctx, action);
    assert_eq!(vm1.request_header(ctx, "authorization"), None);

    let mut vm2 = vm(&local(json!({"forward": true}), json!({})));
    let (ctx, action) = get(&mut vm2, "/v1/models", &[("authorization", auth.as_str())]);
    assert_passed(&vm2, ctx, action);
    assert_eq!(
        vm2.request_header(ctx, "authorization").as_deref(),
        Some(auth.as_str())
    );

    // A query-parameter token is removed from the path; other parameters stay.
    let mut vm3 = vm(&local(
        json!({"token_locations": [{"header": "authorization", "prefix": "Bearer "}, {"query": "access_token"}]}),
        json!({}),
    ));
    let path = format!("/v1/models?limit=5&access_token={token}&order=asc");
    let (ctx, action) = get(&mut vm3, &path, &[]);
    assert_passed(&vm3, ctx, action);
    assert_eq!(
        vm3.request_header(ctx, ":path").as_deref(),
        Some("/v1/models?limit=5&order=asc")
    );
    assert_eq!(
        vm3.request_header(ctx, "x-user-id").as_deref(),
        Some("alice")
    );
}

#[test]
fn bypass_path_and_cors_preflight_pass_without_a_token() {
    let mut vm = vm(&local(json!({}), json!({})));
    let (ctx, action) = get(&mut vm, "/health", &[]);
    assert_passed(&vm, ctx, action);
    let preflight = [
        ("origin", "https://app.example"),
        ("access-control-request-method", "POST"),
    ];
    let (ctx, action) = send(&mut vm, "OPTIONS", "/v1/chat/completions", &preflight);
    assert_passed(&vm, ctx, action);
    // An OPTIONS that is not a preflight needs a token like any request.
    let (ctx, _) = send(&mut vm, "OPTIONS", "/v1/chat/completions", &[]);
    assert_refused(&vm, ctx, 401, "missing", Some("Bearer realm=\"tollgate\""));
    // Near-misses of the bypass path do not bypass.
    for (path, status, code) in [
        ("/health/x", 403, "unmatched_path"),
        ("/healthz", 403, "unmatched_path"),
        ("/health%2Fx", 400, "ambiguous_path"),
        ("/health/%2e%2e/v1/models", 401, "missing"),
    ] {
        let (ctx, action) = get(&mut vm, path, &[]);
        assert_eq!(action, Action::Pause, "{path}");
        let reply = vm
            .local_reply(ctx)
            .unwrap_or_else(|| panic!("{path} passed"));
        assert_eq!(reply.status, status, "{path}");
        assert_eq!(reply.json()["error"]["code"], code, "{path}");
    }
    // A dot-segment path is matched as the upstream will resolve it.
    let (ctx, action) = get(&mut vm, "/v1/../health", &[]);
    assert_passed(&vm, ctx, action);
    // Preflights can be made to need a token too.
    let mut strict = self::vm(&local(json!({}), json!({"bypass_cors_preflight": false})));
    let (ctx, _) = send(&mut strict, "OPTIONS", "/v1/chat/completions", &preflight);
    assert_refused(
        &strict,
        ctx,
        401,
        "missing",
        Some("Bearer realm=\"tollgate\""),
    );
}

#[test]
fn unmatched_paths_are_refused_by_default() {
    let mut vm = vm(&local(json!({}), json!({})));
    let token = es256(&Spec::valid());
    let auth = format!("Bearer {token}");
    // Even with a valid token: no rule, no entry.
    let (ctx, action) = get(&mut vm, "/other", &[("authorization", auth.as_str())]);
    assert_eq!(action, Action::Pause);
    assert_refused(&vm, ctx, 403, "unmatched_path", None);
    assert_eq!(
        vm.shared()
            .metric("reason=.=unmatched_path;.;tollgate_jwt_denied_total"),
        Some(1)
    );
    let mut open = self::vm(&local(json!({}), json!({"allow_unmatched": true})));
    let (ctx, action) = get(&mut open, "/other", &[]);
    assert_passed(&open, ctx, action);
}

#[test]
fn jwt_metrics_count_each_outcome() {
    let mut vm = vm(&local(json!({}), json!({})));
    let token = es256(&Spec::valid());
    for _ in 0..3 {
        let (ctx, action) = with_token(&mut vm, &token);
        assert_passed(&vm, ctx, action);
    }
    get(&mut vm, "/v1/models", &[]);
    with_token(&mut vm, "not-a-jwt");
    with_token(&mut vm, &tamper_signature(&token, 5));
    let m = vm.shared();
    assert_eq!(
        m.metric("provider=.=corp;.;tollgate_jwt_allowed_total"),
        Some(3)
    );
    assert_eq!(
        m.metric("reason=.=missing;.;tollgate_jwt_denied_total"),
        Some(1)
    );
    assert_eq!(
        m.metric("reason=.=malformed;.;tollgate_jwt_denied_total"),
        Some(1)
    );
    assert_eq!(
        m.metric("reason=.=bad_signature;.;tollgate_jwt_denied_total"),
        Some(1)
    );
    assert_eq!(m.metric("tollgate_local_replies_total"), Some(3));
}

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}"#;
const COMPLETION: &str = r#"{"id":"x","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#;

/// Sends a chat completion with `token` (headers then body) and returns the context and the
/// headers action.
fn chat_request(vm: &mut Vm, token: &str) -> (u32, Action) {
    let ctx = vm.new_http();
    let auth = format!("Bearer {token}");
    let len = CHAT.len().to_string();
    let headers = [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "tollgate.test"),
        ("content-type", "application/json"),
        ("content-length", len.as_str()),
        ("authorization", auth.as_str()),
    ];
    let action = vm.request_headers(ctx, &headers, false).unwrap();
    (ctx, action)
}

/// Answers a chat completion and ends the stream.
fn complete_chat(vm: &mut Vm, ctx: u32) {
    vm.response_headers(
        ctx,
        &[(":status", "200"), ("content-type", "application/json")],
        false,
    )
    .unwrap();
    vm.response_body(ctx, COMPLETION.as_bytes(), true).unwrap();
    vm.finish(ctx).unwrap();
}

fn property(vm: &Vm, ctx: u32, name: &str) -> Option<String> {
    vm.property(ctx, name)
        .map(|v| String::from_utf8(v).unwrap())
}

#[test]
fn the_sub_claim_is_the_user_in_the_access_log() {
    let mut vm = vm(&local(json!({}), json!({})));
    vm.state_mut()
        .properties
        .insert("source\0address".into(), b"10.0.0.7:5555".to_vec());
    let (ctx, action) = chat_request(&mut vm, &es256(&Spec::valid()));
    assert_eq!(action, Action::Pause, "an LLM request waits for its body");
    assert!(vm.local_reply(ctx).is_none());
    let action = vm.request_body(ctx, CHAT.as_bytes(), true).unwrap();
    assert_eq!(action, Action::Continue);
    assert_eq!(vm.request_header(ctx, "authorization"), None);
    complete_chat(&mut vm, ctx);
    assert_eq!(
        property(&vm, ctx, "tollgate_user").as_deref(),
        Some("alice")
    );
    assert_eq!(
        property(&vm, ctx, "tollgate_input_tokens").as_deref(),
        Some("12")
    );

    // `identity.jwt_claim` picks another claim.
    let mut config: Value = serde_json::from_str(&local(json!({}), json!({}))).unwrap();
    config["identity"] = json!({"jwt_claim": "email"});
    let mut vm = self::vm(&config.to_string());
    let (ctx, _) = chat_request(&mut vm, &es256(&Spec::valid()));
    vm.request_body(ctx, CHAT.as_bytes(), true).unwrap();
    complete_chat(&mut vm, ctx);
    assert_eq!(
        property(&vm, ctx, "tollgate_user").as_deref(),
        Some("alice@example.com")
    );
}

#[test]
fn cached_verification_gives_the_same_result() {
    let mut vm = vm(&local(json!({}), json!({})));
    let token = es256(&Spec::valid());
    for _ in 0..3 {
        let (ctx, action) = with_token(&mut vm, &token);
        assert_passed(&vm, ctx, action);
        assert_eq!(
            vm.request_header(ctx, "x-user-id").as_deref(),
            Some("alice")
        );
        assert_eq!(vm.request_header(ctx, "x-org-id").as_deref(), Some("acme"));
    }
    // A cached token still expires on time.
    vm.set_time_secs(NOW + 600 + 61);
    let (ctx, _) = with_token(&mut vm, &token);
    assert_refused(
        &vm,
        ctx,
        401,
        "expired",
        Some(invalid_token("the token has expired").as_str()),
    );
}

// ------------------------------------------------------------------------------ remote JWKS

/// A JWKS document with the ES256 keys `keys` as `(key, kid)`.
fn es256_jwks(keys: &[(&ES256KeyPair, &str)]) -> String {
    let keys: Vec<Value> = keys.iter().map(|(k, kid)| es256_jwk(k, kid)).collect();
    json!({ "keys": keys }).to_string()
}

/// Callout response headers.
type Headers = &'static [(&'static str, &'static str)];

const OK: Headers = &[(":status", "200"), ("content-type", "application/json")];

/// The callouts dispatched so far, as `(token, context id)`.
fn calls(vm: &Vm) -> Vec<(u32, u32)> {
    vm.state()
        .http_calls
        .iter()
        .map(|c| (c.token, c.context_id))
        .collect()
}

/// The single callout dispatched since `before` callouts.
#[track_caller]
fn new_call(vm: &Vm, before: usize) -> u32 {
    let calls = calls(vm);
    assert_eq!(calls.len(), before + 1, "expected one new JWKS fetch");
    calls[before].0
}

/// A signed ES256 token with `kid`, valid at the VM's current time.
fn es256_now(vm: &Vm, key: &ES256KeyPair, kid: &str) -> String {
    let now = vm.state().now_nanos / 1_000_000_000;
    ES256KeyPair::from_bytes(&key.to_bytes())
        .unwrap()
        .with_key_id(kid)
        .sign(Spec::at(now).claims())
        .unwrap()
}

#[test]
fn remote_jwks_is_fetched_on_tick_and_then_verifies() {
    let mut vm = vm(&remote(json!({})));
    let period = vm.state().tick_period_ms;
    assert!((1..=1000).contains(&period), "tick period {period} ms");
    assert!(vm.state().http_calls.is_empty());
    vm.tick().unwrap();
    let call = vm.state().http_calls[0].clone();
    assert_eq!(call.upstream, "jwks");
    assert_eq!(call.context_id, tollgate_host_tests::ROOT_CONTEXT_ID);
    assert_eq!(call.timeout_ms, 2000);
    let h = |name: &str| {
        call.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(h(":method").as_deref(), Some("GET"));
    assert_eq!(h(":path").as_deref(), Some("/.well-known/jwks.json"));
    assert_eq!(h(":authority").as_deref(), Some("idp.example"));
    // No second fetch while the first is in flight.
    vm.advance_ms(500);
    vm.tick().unwrap();
    assert_eq!(vm.state().http_calls.len(), 1);

    let key = ES256KeyPair::generate();
    let jwks = es256_jwks(&[(&key, "k1")]);
    vm.http_call_response(call.token, OK, jwks.as_bytes())
        .unwrap();
    assert!(
        vm.logs()
            .iter()
            .any(|l| l.contains("JWKS of provider corp updated")),
        "{:?}",
        vm.logs()
    );
    let token = es256_now(&vm, &key, "k1");
    let (ctx, action) = with_token(&mut vm, &token);
    assert_passed(&vm, ctx, action);
    assert_eq!(
        vm.request_header(ctx, "x-user-id").as_deref(),
        Some("alice")
    );
    // Keys are fresh: no fetch until the refresh period is over.
    vm.advance_ms(30_000);
    vm.tick().unwrap();
    assert_eq!(vm.state().http_calls.len(), 1);
    vm.advance_ms(31_000);
    vm.tick().unwrap();
    assert_eq!(vm.state().http_calls.len(), 2, "refresh after 60 s");
}

#[test]
fn request_before_keys_waits_for_its_own_fetch_and_resumes() {
    let mut vm = vm(&remote(json!({})));
    let key = ES256KeyPair::generate();
    let token = es256_now(&vm, &key, "k1");
    let (ctx, action) = with_token(&mut vm, &token);
    assert_eq!(action, Action::Pause, "held until keys arrive");
    assert!(vm.local_reply(ctx).is_none());
    let call = new_call(&vm, 0);
    assert_eq!(calls(&vm)[0].1, ctx, "the request dispatched the fetch");
    assert_eq!(vm.stream(ctx).unwrap().resumed_request, 0);

    vm.advance_ms(40);
    vm.http_call_response(call, OK, es256_jwks(&[(&key, "k1")]).as_bytes())
        .unwrap();
    assert!(vm.local_reply(ctx).is_none(), "{:?}", vm.logs());
    assert_eq!(vm.stream(ctx).unwrap().resumed_request, 1);
    assert_eq!(
        vm.request_header(ctx, "x-user-id").as_deref(),
        Some("alice")
    );
    assert_eq!(vm.request_header(ctx, "authorization"), None);
    assert_eq!(
        vm.shared()
            .metric("provider=.=corp;.;tollgate_jwt_allowed_total"),
        Some(1)
    );
    // The keys serve later requests directly.
    let (ctx, action) = with_token(&mut vm, &token);
    assert_passed(&vm, ctx, action);
    assert_eq!(calls(&vm).len(), 1);
}

#[test]
fn llm_request_with_body_waiting_for_keys_resumes_and_is_accounted() {
    let mut vm = vm(&remote(json!({})));
    let key = ES256KeyPair::generate();
    let token = es256_now(&vm, &key, "k1");
    let (ctx, action) = chat_request(&mut vm, &token);
    assert_eq!(action, Action::Pause);
    // The body arrives while the fetch is in flight: held.
    assert_eq!(
        vm.request_body(ctx, CHAT.as_bytes(), true).unwrap(),
        Action::Pause
    );
    let call = new_call(&vm, 0);
    vm.http_call_response(call, OK, es256_jwks(&[(&key, "k1")]).as_bytes())
        .unwrap();
    assert!(vm.local_reply(ctx).is_none(), "{:?}", vm.logs());
    assert_eq!(vm.stream(ctx).unwrap().resumed_request, 1);
    complete_chat(&mut vm, ctx);
    assert_eq!(
        property(&vm, ctx, "tollgate_user").as_deref(),
        Some("alice")
    );
}

#[test]
fn request_waiting_for_keys_gets_401_when_the_fetch_fails() {
    for (headers, body) in [
        (&[(":status", "503")][..], &b"upstream down"[..]),
        (&[][..], &b""[..]), // timeout / reset: no response headers at all
        (OK, &b"{\"keys\": 7}"[..]),
    ] {
        let mut vm = vm(&remote(json!({})));
        let key = ES256KeyPair::generate();
        let token = es256_now(&vm, &key, "k1");
        let (ctx, action) = with_token(&mut vm, &token);
        assert_eq!(action, Action::Pause);
        let call = new_call(&vm, 0);
        vm.http_call_response(call, headers, body).unwrap();
        let reply = vm.local_reply(ctx).expect("refused");
        assert_eq!(reply.status, 401);
        assert_eq!(reply.json()["error"]["code"], "no_keys_yet");
        assert!(reply
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer realm=\"tollgate\", error=\"invalid_token\""));
        assert_eq!(vm.stream(ctx).unwrap().resumed_request, 0);
        assert_eq!(
            vm.shared()
                .metric("reason=.=no_keys_yet;.;tollgate_jwt_denied_total"),
            Some(1)
        );
    }
}

#[test]
fn failed_first_fetch_refuses_then_a_retry_brings_the_keys() {
    let mut vm = vm(&remote(json!({})));
    let key = ES256KeyPair::generate();
    vm.tick().unwrap();
    vm.http_call_response(new_call(&vm, 0), &[(":status", "503")], b"")
        .unwrap();
    // No keys and the first fetch failed: refused at once, no fetch per request.
    let token = es256_now(&vm, &key, "k1");
    let (ctx, _) = with_token(&mut vm, &token);
    assert_eq!(
        vm.local_reply(ctx).unwrap().json()["error"]["code"],
        "no_keys_yet"
    );
    assert_eq!(calls(&vm).len(), 1);
    // Retried with backoff (1 s after the first failure).
    vm.advance_ms(500);
    vm.tick().unwrap();
    assert_eq!(calls(&vm).len(), 1, "backoff not over yet");
    vm.advance_ms(600);
    vm.tick().unwrap();
    let retry = new_call(&vm, 1);
    vm.http_call_response(retry, OK, es256_jwks(&[(&key, "k1")]).as_bytes())
        .unwrap();
    let token = es256_now(&vm, &key, "k1");
    let (ctx, action) = with_token(&mut vm, &token);
    assert_passed(&vm, ctx, action);
}

#[test]
fn failed_refresh_keeps_the_last_good_keys() {
    let mut vm = vm(&remote(json!({})));
    let key = ES256KeyPair::generate();
    vm.tick().unwrap();
    vm.http_call_response(new_call(&vm, 0), OK, es256_jwks(&[(&key, "k1")]).as_bytes())
        .unwrap();
    let failures: [(Headers, &[u8]); 4] = [
        (&[(":status", "503")], b"down"),
        (&[], b""),
        (OK, b"<html>not json</html>"),
        (OK, br#"{"keys":[{"kty":"oct","k":"c2hvcnQ"}]}"#),
    ];
    for (i, (headers, body)) in failures.iter().enumerate() {
        // Next fetch: the 60 s refresh, then the backoff after each failure.
        vm.advance_ms(61_000);
        vm.tick().unwrap();
        let call = new_call(&vm, i + 1);
        vm.http_call_response(call, headers, body).unwrap();
        let token = es256_now(&vm, &key, "k1");
        let (ctx, action) = with_token(&mut vm, &token);
        assert_passed(&vm, ctx, action);
        assert_eq!(
            vm.request_header(ctx, "x-user-id").as_deref(),
            Some("alice"),
            "failure {i}"
        );
    }
    assert!(
        vm.logs()
            .iter()
            .filter(|l| l.contains("keeping the last good keys"))
            .count()
            >= failures.len(),
        "{:#?}",
        vm.logs()
    );
}

#[test]
fn unknown_kid_triggers_a_refetch_and_a_rotated_key_passes() {
    let mut vm = vm(&remote(json!({})));
    let old = ES256KeyPair::generate();
    let new = ES256KeyPair::generate();
    vm.tick().unwrap();
    vm.http_call_response(new_call(&vm, 0), OK, es256_jwks(&[(&old, "k1")]).as_bytes())
        .unwrap();
    let old_token = es256_now(&vm, &old, "k1");
    let (ctx, action) = with_token(&mut vm, &old_token);
    assert_passed(&vm, ctx, action);

    // The IdP rotates: a token signed with the new key arrives before the next refresh.
    vm.advance_ms(5_000);
    let new_token = es256_now(&vm, &new, "k2");
    let (ctx, action) = with_token(&mut vm, &new_token);
    assert_eq!(action, Action::Pause, "held for the refetch");
    assert!(vm.local_reply(ctx).is_none());
    let refetch = new_call(&vm, 1);
    assert_eq!(calls(&vm)[1].1, ctx);
    vm.http_call_response(refetch, OK, es256_jwks(&[(&new, "k2")]).as_bytes())
        .unwrap();
    assert!(vm.local_reply(ctx).is_none(), "{:?}", vm.logs());
    assert_eq!(vm.stream(ctx).unwrap().resumed_request, 1);
    assert_eq!(
        vm.request_header(ctx, "x-user-id").as_deref(),
        Some("alice")
    );
    assert_eq!(vm.request_header(ctx, "authorization"), None);

    // The old key is gone (the cached verification does not outlive it).
    let (ctx, _) = with_token(&mut vm, &old_token);
    assert_refused(
        &vm,
        ctx,
        401,
        "unknown_kid",
        Some(invalid_token("the token signing key is unknown").as_str()),
    );
    // Unknown-kid refetches are rate-limited: that refusal dispatched nothing.
    assert_eq!(calls(&vm).len(), 2);
    let stranger = ES256KeyPair::generate();
    let token = es256_now(&vm, &stranger, "k3");
    let (ctx, _) = with_token(&mut vm, &token);
    assert_eq!(
        vm.local_reply(ctx).unwrap().json()["error"]["code"],
        "unknown_kid"
    );
    assert_eq!(calls(&vm).len(), 2);
}

#[test]
fn unknown_kid_still_unknown_after_the_refetch_is_refused() {
    let mut vm = vm(&remote(json!({})));
    let key = ES256KeyPair::generate();
    vm.tick().unwrap();
    let jwks = es256_jwks(&[(&key, "k1")]);
    vm.http_call_response(new_call(&vm, 0), OK, jwks.as_bytes())
        .unwrap();
    let token = es256_now(&vm, &key, "k9");
    let (ctx, action) = with_token(&mut vm, &token);
    assert_eq!(action, Action::Pause);
    vm.http_call_response(new_call(&vm, 1), OK, jwks.as_bytes())
        .unwrap();
    assert_refused(
        &vm,
        ctx,
        401,
        "unknown_kid",
        Some(invalid_token("the token signing key is unknown").as_str()),
    );
    assert_eq!(calls(&vm).len(), 2, "one refetch per request at most");
}

#[test]
fn failed_unknown_kid_refetch_refuses_and_keeps_the_keys() {
    let mut vm = vm(&remote(json!({})));
    let key = ES256KeyPair::generate();
    vm.tick().unwrap();
    vm.http_call_response(new_call(&vm, 0), OK, es256_jwks(&[(&key, "k1")]).as_bytes())
        .unwrap();
    let stranger = ES256KeyPair::generate();
    let token = es256_now(&vm, &stranger, "k2");
    let (ctx, action) = with_token(&mut vm, &token);
    assert_eq!(action, Action::Pause);
    vm.http_call_response(new_call(&vm, 1), &[(":status", "500")], b"oops")
        .unwrap();
    assert_refused(
        &vm,
        ctx,
        401,
        "unknown_kid",
        Some(invalid_token("the token signing key is unknown").as_str()),
    );
    let token = es256_now(&vm, &key, "k1");
    let (ctx, action) = with_token(&mut vm, &token);
    assert_passed(&vm, ctx, action);
}

#[test]
fn llm_body_split_around_the_key_fetch_is_forwarded_whole() {
    let mut vm = vm(&remote(json!({})));
    let key = ES256KeyPair::generate();
    let token = es256_now(&vm, &key, "k1");
    let (ctx, action) = chat_request(&mut vm, &token);
    assert_eq!(action, Action::Pause);
    let (first, rest) = CHAT.as_bytes().split_at(20);
    assert_eq!(vm.request_body(ctx, first, false).unwrap(), Action::Pause);
    vm.http_call_response(new_call(&vm, 0), OK, es256_jwks(&[(&key, "k1")]).as_bytes())
        .unwrap();
    assert!(vm.local_reply(ctx).is_none(), "{:?}", vm.logs());
    // Keys are in, but the body is not complete yet: still held, not resumed.
    assert_eq!(vm.stream(ctx).unwrap().resumed_request, 0);
    assert_eq!(vm.request_body(ctx, rest, true).unwrap(), Action::Continue);
    assert_eq!(
        vm.stream(ctx).unwrap().forwarded_request_body,
        CHAT.as_bytes()
    );
    complete_chat(&mut vm, ctx);
    assert_eq!(
        property(&vm, ctx, "tollgate_user").as_deref(),
        Some("alice")
    );
}

// A request arriving before a remote provider's first keys dispatches its own JWKS fetch and
// waits for it (proxy-wasm can only wake a held request through a callout it made itself); the
// window is the first fetch after configure. A value that cannot be a JWT never waits or fetches.

#[test]
fn garbage_token_before_the_first_keys_is_refused_at_once() {
    let mut vm = vm(&remote(json!({})));
    let (ctx, _) = with_token(&mut vm, "not-a-jwt");
    assert_eq!(
        vm.local_reply(ctx)
            .map(|r| r.json()["error"]["code"].clone()),
        Some(json!("malformed"))
    );
    assert!(
        calls(&vm).is_empty(),
        "no JWKS fetch for a token that cannot verify"
    );
}
