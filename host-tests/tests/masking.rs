//! Host tests for secret masking as wired in the real module: prompt redaction and blocking,
//! error bodies masked whatever the chunking, successful responses masked when enabled, the
//! tagged counters and the `tollgate_masked_count` access-log property, and log lines that never
//! carry a planted secret.
//!
//! Every secret is generated here by a small deterministic PRNG with the real shape of its kind
//! (prefix, charset, length), so no real credential is ever in the repository.

use tollgate_host_tests::{Action, Vm};

// ---------------------------------------------------------------------------------------------
// Fake secrets
// ---------------------------------------------------------------------------------------------

/// SplitMix64: deterministic, seedable, good enough to draw characters.
struct Prng(u64);

const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const DIGITS: &[u8] = b"0123456789";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

impl Prng {
    fn new(seed: u64) -> Self {
        Prng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick(&mut self, charset: &[u8]) -> char {
        char::from(charset[(self.next() % charset.len() as u64) as usize])
    }

    fn string(&mut self, charset: &[u8], len: usize) -> String {
        (0..len).map(|_| self.pick(charset)).collect()
    }

    /// A string from `charset` that has an upper-case letter, a lower-case letter and a digit,
    /// and starts and ends with a letter or digit (as real keys almost always do).
    fn mixed(&mut self, charset: &[u8], len: usize) -> String {
        loop {
            let s = self.string(charset, len);
            let b = s.as_bytes();
            if b.iter().any(u8::is_ascii_uppercase)
                && b.iter().any(u8::is_ascii_lowercase)
                && b.iter().any(u8::is_ascii_digit)
                && b[0].is_ascii_alphanumeric()
                && b[len - 1].is_ascii_alphanumeric()
            {
                return s;
            }
        }
    }
}

/// Unpadded base64url of `bytes`.
fn base64url(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(char::from(BASE64URL[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// One planted secret: its detector kind and its exact text.
#[derive(Clone, Debug)]
struct Secret {
    kind: &'static str,
    value: String,
}

fn openai_project_key(rng: &mut Prng) -> String {
    format!("sk-proj-{}", rng.mixed(BASE64URL, 156))
}

fn anthropic_key(rng: &mut Prng) -> String {
    format!("sk-ant-api03-{}AA", rng.mixed(BASE64URL, 93))
}

fn google_api_key(rng: &mut Prng) -> String {
    format!("AIza{}", rng.mixed(BASE64URL, 35))
}

fn aws_access_key_id(rng: &mut Prng) -> String {
    format!("AKIA{}", rng.string(UPPER_DIGITS, 16))
}

fn github_classic_token(rng: &mut Prng) -> String {
    format!("ghp_{}", rng.mixed(ALNUM, 36))
}

fn github_fine_grained_token(rng: &mut Prng) -> String {
    format!(
        "github_pat_{}_{}",
        rng.mixed(ALNUM, 22),
        rng.mixed(ALNUM, 59)
    )
}

fn slack_bot_token(rng: &mut Prng) -> String {
    format!(
        "xoxb-{}-{}-{}",
        rng.string(DIGITS, 12),
        rng.string(DIGITS, 13),
        rng.mixed(ALNUM, 24)
    )
}

fn stripe_live_key(rng: &mut Prng) -> String {
    format!("sk_live_{}", rng.mixed(ALNUM, 99))
}

fn jwt(rng: &mut Prng) -> String {
    let header = base64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = format!(
        r#"{{"sub":"user-{}","name":"{}","iat":1750000000,"exp":1750003600}}"#,
        rng.string(DIGITS, 6),
        rng.string(LOWER, 8)
    );
    let signature: Vec<u8> = (0..32).map(|_| rng.next() as u8).collect();
    format!(
        "{header}.{}.{}",
        base64url(payload.as_bytes()),
        base64url(&signature)
    )
}

fn pem_private_key(rng: &mut Prng) -> String {
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    pem.push_str("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC");
    pem.push_str(&rng.string(BASE64, 32));
    pem.push('\n');
    for _ in 0..8 {
        pem.push_str(&rng.string(BASE64, 64));
        pem.push('\n');
    }
    pem.push_str(&rng.string(BASE64, 40));
    pem.push_str("==\n-----END PRIVATE KEY-----");
    pem
}

/// A high-entropy value for a `"api_key": "…"` assignment (no `-`/`_` only: it has digits).
fn generic_value(rng: &mut Prng) -> String {
    rng.mixed(ALNUM, 40)
}

/// One secret of every kind the brief names, from a fixed seed.
fn planted(seed: u64) -> Vec<Secret> {
    let mut rng = Prng::new(seed);
    vec![
        Secret {
            kind: "openai_key",
            value: openai_project_key(&mut rng),
        },
        Secret {
            kind: "anthropic_key",
            value: anthropic_key(&mut rng),
        },
        Secret {
            kind: "google_api_key",
            value: google_api_key(&mut rng),
        },
        Secret {
            kind: "aws_access_key_id",
            value: aws_access_key_id(&mut rng),
        },
        Secret {
            kind: "github_token",
            value: github_classic_token(&mut rng),
        },
        Secret {
            kind: "github_token",
            value: github_fine_grained_token(&mut rng),
        },
        Secret {
            kind: "slack_token",
            value: slack_bot_token(&mut rng),
        },
        Secret {
            kind: "stripe_key",
            value: stripe_live_key(&mut rng),
        },
        Secret {
            kind: "jwt",
            value: jwt(&mut rng),
        },
        Secret {
            kind: "private_key",
            value: pem_private_key(&mut rng),
        },
    ]
}

/// The replacement the default template renders: `[REDACTED:<kind> …<last4>]`, where `last4`
/// shows the last four bytes (non-alphanumerics as `*`), or `****` under 16 bytes.
fn mask_of(kind: &str, secret: &str) -> String {
    let b = secret.as_bytes();
    let last4: String = if b.len() >= 16 {
        b[b.len() - 4..]
            .iter()
            .map(|&c| {
                if c.is_ascii_alphanumeric() {
                    char::from(c)
                } else {
                    '*'
                }
            })
            .collect()
    } else {
        "****".to_string()
    };
    format!("[REDACTED:{kind} …{last4}]")
}

/// A string as it appears inside a JSON string literal (escapes, no quotes).
fn json_escaped(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap();
    quoted[1..quoted.len() - 1].to_string()
}

// ---------------------------------------------------------------------------------------------
// Driving the module
// ---------------------------------------------------------------------------------------------

fn vm(config: &str) -> Vm {
    let mut vm = Vm::load().unwrap();
    assert!(
        vm.configure(config).unwrap(),
        "config refused: {:?}",
        vm.logs()
    );
    vm
}

/// Sends a request with a body; returns the context and the body callback's action.
fn send_request(vm: &mut Vm, path: &str, body: &[u8], extra: &[(&str, &str)]) -> (u32, Action) {
    let ctx = vm.new_http();
    let len = body.len().to_string();
    let mut headers = vec![
        (":method", "POST"),
        (":path", path),
        (":authority", "api.openai.com"),
        ("content-type", "application/json"),
        ("content-length", len.as_str()),
    ];
    headers.extend_from_slice(extra);
    let h = vm.request_headers(ctx, &headers, false).unwrap();
    assert_eq!(h, Action::Pause, "an LLM request waits for its body");
    let action = vm.request_body(ctx, body, true).unwrap();
    (ctx, action)
}

fn chat_body(content: &str) -> String {
    serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": content}
        ]
    })
    .to_string()
}

const CLEAN_CHAT: &str =
    r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}"#;

fn forwarded_request(vm: &Vm, ctx: u32) -> String {
    String::from_utf8(vm.stream(ctx).unwrap().forwarded_request_body.clone()).unwrap()
}

fn forwarded_response(vm: &Vm, ctx: u32) -> Vec<u8> {
    vm.stream(ctx).unwrap().forwarded_response_body.clone()
}

fn property(vm: &Vm, ctx: u32, name: &str) -> Option<String> {
    vm.property(ctx, name)
        .map(|v| String::from_utf8(v).unwrap())
}

fn masked_metric(vm: &Vm, kind: &str, place: &str) -> Option<i64> {
    vm.shared().metric(&format!(
        "kind=.={kind};.;place=.={place};.;tollgate_masked_findings_total"
    ))
}

/// Fails when any log line carries any of `secrets` (or a 24-byte piece of one).
fn assert_logs_clean(vm: &Vm, secrets: &[String]) {
    for line in vm.logs() {
        for s in secrets {
            let probe = if s.len() > 24 { &s[s.len() - 24..] } else { s };
            assert!(
                !line.contains(s.as_str()) && !line.contains(probe),
                "a log line carries a planted secret: {line:?}"
            );
        }
    }
}

fn values(secrets: &[Secret]) -> Vec<String> {
    secrets.iter().map(|s| s.value.clone()).collect()
}

/// An OpenAI-shaped 401 body echoing `key`, as the real API does for a wrong key.
fn echo_error_body(key: &str) -> String {
    format!(
        "{{\"error\":{{\"message\":\"Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys.\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"invalid_api_key\"}}}}"
    )
}

/// Sends a clean chat request and answers it with `status`, `content_type` and `chunks`.
fn respond_in_chunks(
    vm: &mut Vm,
    request: &str,
    status: &str,
    content_type: &str,
    chunks: &[&[u8]],
) -> u32 {
    let (ctx, action) = send_request(vm, "/v1/chat/completions", request.as_bytes(), &[]);
    assert_eq!(action, Action::Continue);
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    let len = total.to_string();
    vm.response_headers(
        ctx,
        &[
            (":status", status),
            ("content-type", content_type),
            ("content-length", len.as_str()),
        ],
        false,
    )
    .unwrap();
    for (i, chunk) in chunks.iter().enumerate() {
        let action = vm.response_body(ctx, chunk, i + 1 == chunks.len()).unwrap();
        assert_eq!(
            action,
            Action::Continue,
            "response bodies are never held by Pause"
        );
    }
    ctx
}

// ---------------------------------------------------------------------------------------------
// Prompts
// ---------------------------------------------------------------------------------------------

#[test]
fn every_kind_in_a_prompt_is_redacted_with_valid_json_and_a_new_content_length() {
    let secrets = planted(1);
    let mut vm = vm("{}");
    for secret in &secrets {
        let content = format!(
            "My deploy fails. Here is the credential I use:\n{}\nWhat is wrong?",
            secret.value
        );
        let body = chat_body(&content);
        let (ctx, action) = send_request(&mut vm, "/v1/chat/completions", body.as_bytes(), &[]);
        assert_eq!(action, Action::Continue, "{}", secret.kind);
        let forwarded = forwarded_request(&vm, ctx);
        let in_json = json_escaped(&secret.value);
        let expected = body.replace(&in_json, &mask_of(secret.kind, &in_json));
        assert_eq!(forwarded, expected, "{}", secret.kind);
        assert!(!forwarded.contains(&in_json));
        let parsed: serde_json::Value = serde_json::from_str(&forwarded).unwrap_or_else(|e| {
            panic!(
                "{}: forwarded body is not JSON ({e}): {forwarded}",
                secret.kind
            )
        });
        let sent = parsed["messages"][1]["content"].as_str().unwrap();
        assert!(
            sent.contains(&format!("[REDACTED:{} …", secret.kind)),
            "{sent}"
        );
        assert_eq!(
            vm.request_header(ctx, "content-length"),
            Some(forwarded.len().to_string()),
            "{}: content-length follows the rewrite",
            secret.kind
        );
        vm.finish(ctx).unwrap();
        assert_eq!(
            property(&vm, ctx, "tollgate_masked_count").as_deref(),
            Some("1")
        );
    }
    // Two kinds share `github_token`.
    for kind in [
        "openai_key",
        "anthropic_key",
        "google_api_key",
        "aws_access_key_id",
        "slack_token",
        "stripe_key",
        "jwt",
        "private_key",
    ] {
        assert_eq!(masked_metric(&vm, kind, "prompt"), Some(1), "{kind}");
    }
    assert_eq!(masked_metric(&vm, "github_token", "prompt"), Some(2));
    assert_logs_clean(&vm, &values(&secrets));
}

#[test]
fn all_kinds_in_one_prompt_are_redacted_together() {
    let secrets = planted(2);
    let mut rng = Prng::new(22);
    let generic = generic_value(&mut rng);
    let mut content = String::from("Config dump follows.\n");
    for s in &secrets {
        content.push_str(&format!("{}: {}\n", s.kind.replace('_', " "), s.value));
    }
    // JSON inside the prompt: arrives as `{\"api_key\": \"…\"}` in the request body.
    content.push_str(&format!("settings.json: {{\"api_key\": \"{generic}\"}}\n"));
    let body = chat_body(&content);
    let mut vm = vm("{}");
    let (ctx, _) = send_request(&mut vm, "/v1/chat/completions", body.as_bytes(), &[]);
    let forwarded = forwarded_request(&vm, ctx);
    let parsed: serde_json::Value =
        serde_json::from_str(&forwarded).expect("redacted body stays JSON");
    let sent = parsed["messages"][1]["content"].as_str().unwrap();
    for s in &secrets {
        assert!(!sent.contains(&s.value), "{} survived: {sent}", s.kind);
        assert!(
            sent.contains(&mask_of(s.kind, &s.value)),
            "{} mask missing: {sent}",
            s.kind
        );
    }
    assert!(!sent.contains(&generic), "{sent}");
    assert!(
        sent.contains(&mask_of("generic_assignment", &generic)),
        "{sent}"
    );
    assert_eq!(
        vm.request_header(ctx, "content-length"),
        Some(forwarded.len().to_string())
    );
    vm.finish(ctx).unwrap();
    assert_eq!(
        property(&vm, ctx, "tollgate_masked_count").as_deref(),
        Some((secrets.len() + 1).to_string().as_str())
    );
    assert_eq!(masked_metric(&vm, "generic_assignment", "prompt"), Some(1));
    let mut all = values(&secrets);
    all.push(generic);
    assert_logs_clean(&vm, &all);
}

#[test]
fn a_top_level_api_key_field_is_redacted() {
    let mut rng = Prng::new(3);
    let value = generic_value(&mut rng);
    let body = format!(
        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"hi"}}],"metadata":{{"api_key": "{value}"}}}}"#
    );
    let mut vm = vm("{}");
    let (ctx, _) = send_request(&mut vm, "/v1/chat/completions", body.as_bytes(), &[]);
    let forwarded = forwarded_request(&vm, ctx);
    assert_eq!(
        forwarded,
        body.replace(&value, &mask_of("generic_assignment", &value))
    );
    let parsed: serde_json::Value = serde_json::from_str(&forwarded).unwrap();
    assert_eq!(parsed["messages"][0]["content"], "hi");
    assert_logs_clean(&vm, &[value]);
}

#[test]
fn a_streaming_prompt_is_redacted_and_still_gets_include_usage() {
    let secret = openai_project_key(&mut Prng::new(4));
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "stream": true,
        "messages": [{"role": "user", "content": format!("key={secret} why 401?")}]
    })
    .to_string();
    let mut vm = vm("{}");
    let (ctx, _) = send_request(&mut vm, "/v1/chat/completions", body.as_bytes(), &[]);
    let forwarded = forwarded_request(&vm, ctx);
    let v: serde_json::Value = serde_json::from_str(&forwarded).unwrap();
    assert_eq!(v["stream_options"]["include_usage"], true, "{forwarded}");
    let content = v["messages"][0]["content"].as_str().unwrap();
    assert_eq!(
        content,
        format!("key={} why 401?", mask_of("openai_key", &secret))
    );
    assert_eq!(
        vm.request_header(ctx, "content-length"),
        Some(forwarded.len().to_string())
    );
    assert_logs_clean(&vm, &[secret]);
}

#[test]
fn prompts_block_refuses_with_400_naming_kinds_not_values_and_forwards_nothing() {
    let mut rng = Prng::new(5);
    let openai = openai_project_key(&mut rng);
    let aws = aws_access_key_id(&mut rng);
    let body = chat_body(&format!("use {openai} and {aws} please"));
    let mut vm = vm(r#"{"masking":{"prompts":"block"}}"#);
    let (ctx, action) = send_request(&mut vm, "/v1/chat/completions", body.as_bytes(), &[]);
    assert_eq!(action, Action::Pause);
    let reply = vm.local_reply(ctx).expect("a local reply").clone();
    assert_eq!(reply.status, 400);
    let json = reply.json();
    assert_eq!(json["error"]["code"], "secret_detected", "{json}");
    assert_eq!(json["error"]["type"], "invalid_request_error", "{json}");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.contains("openai_key"), "{message}");
    assert!(message.contains("aws_access_key_id"), "{message}");
    let text = String::from_utf8_lossy(&reply.body);
    for s in [&openai, &aws] {
        assert!(
            !text.contains(s.as_str()),
            "the reply leaks a value: {text}"
        );
        assert!(
            !text.contains(&s[s.len() - 8..]),
            "the reply leaks a tail: {text}"
        );
    }
    assert!(
        vm.stream(ctx).unwrap().forwarded_request_body.is_empty(),
        "nothing is forwarded"
    );
    vm.finish(ctx).unwrap();
    assert_eq!(masked_metric(&vm, "openai_key", "prompt"), Some(1));
    assert_eq!(masked_metric(&vm, "aws_access_key_id", "prompt"), Some(1));
    assert!(property(&vm, ctx, "tollgate_masked_count").is_some());
    assert_logs_clean(&vm, &[openai, aws]);
}

#[test]
fn prompts_block_lets_a_clean_prompt_through_unchanged() {
    let mut vm = vm(r#"{"masking":{"prompts":"block"}}"#);
    let (ctx, action) = send_request(&mut vm, "/v1/chat/completions", CLEAN_CHAT.as_bytes(), &[]);
    assert_eq!(action, Action::Continue);
    assert!(vm.local_reply(ctx).is_none());
    assert_eq!(forwarded_request(&vm, ctx), CLEAN_CHAT);
}

#[test]
fn prompts_off_forwards_the_body_unchanged() {
    let secrets = planted(6);
    let mut content = String::new();
    for s in &secrets {
        content.push_str(&s.value);
        content.push('\n');
    }
    let body = chat_body(&content);
    let mut vm = vm(r#"{"masking":{"prompts":"off"}}"#);
    let (ctx, action) = send_request(&mut vm, "/v1/chat/completions", body.as_bytes(), &[]);
    assert_eq!(action, Action::Continue);
    assert_eq!(forwarded_request(&vm, ctx), body);
    assert_eq!(
        vm.request_header(ctx, "content-length"),
        Some(body.len().to_string())
    );
    vm.finish(ctx).unwrap();
    assert!(property(&vm, ctx, "tollgate_masked_count").is_none());
    assert!(!vm
        .shared()
        .metric_names()
        .iter()
        .any(|n| n.ends_with("tollgate_masked_findings_total")));
    assert_logs_clean(&vm, &values(&secrets));
}

/// A PEM block cut before its `-----END` line and followed by an escaped quote inside a JSON
/// string (`…base64\" said Bob`): the redaction must not swallow the backslash of `\"`, or
/// the forwarded body is no longer JSON.
#[test]
fn a_truncated_pem_block_before_an_escaped_quote_keeps_the_body_json() {
    let mut rng = Prng::new(7);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC");
    for _ in 0..3 {
        pem.push_str(&rng.string(BASE64, 64));
        pem.push('\n');
    }
    pem.push_str(&rng.string(ALNUM, 20));
    let body = chat_body(&format!("Bob pasted \"{pem}\" said Alice"));
    let mut vm = vm("{}");
    let (ctx, _) = send_request(&mut vm, "/v1/chat/completions", body.as_bytes(), &[]);
    let forwarded = forwarded_request(&vm, ctx);
    assert!(forwarded.contains("[REDACTED:private_key"), "{forwarded}");
    let parsed: Result<serde_json::Value, _> = serde_json::from_str(&forwarded);
    assert!(
        parsed.is_ok(),
        "redaction broke the JSON ({:?}): {forwarded}",
        parsed.err()
    );
}

// ---------------------------------------------------------------------------------------------
// Error bodies
// ---------------------------------------------------------------------------------------------

/// Delivers a 401 echoing each key, split in two at every offset of the key and in three
/// around every single byte of it, and checks the client never gets the key.
#[test]
fn an_echoed_key_in_an_error_body_is_masked_at_every_split_point() {
    let mut rng = Prng::new(8);
    let keys = [
        ("openai_key", openai_project_key(&mut rng)),
        ("anthropic_key", anthropic_key(&mut rng)),
        ("google_api_key", google_api_key(&mut rng)),
        ("github_token", github_fine_grained_token(&mut rng)),
    ];
    let mut vm = vm("{}");
    for (kind, key) in &keys {
        let body = echo_error_body(key);
        let expected = body.replace(key.as_str(), &mask_of(kind, key));
        let start = body.find(key.as_str()).unwrap();
        let end = start + key.len();
        let bytes = body.as_bytes();
        let mut deliveries = 0;
        for split in start..=end {
            let (a, b) = bytes.split_at(split);
            let ctx = respond_in_chunks(&mut vm, CLEAN_CHAT, "401", "application/json", &[a, b]);
            let got = forwarded_response(&vm, ctx);
            assert_eq!(
                String::from_utf8_lossy(&got),
                expected,
                "{kind}: split at {split}"
            );
            assert_eq!(vm.response_header(ctx, "content-length"), None);
            vm.finish(ctx).unwrap();
            assert_eq!(
                property(&vm, ctx, "tollgate_masked_count").as_deref(),
                Some("1")
            );
            deliveries += 1;
        }
        for at in start..end {
            let chunks = [&bytes[..at], &bytes[at..at + 1], &bytes[at + 1..]];
            let ctx = respond_in_chunks(&mut vm, CLEAN_CHAT, "401", "application/json", &chunks);
            assert_eq!(
                String::from_utf8_lossy(&forwarded_response(&vm, ctx)),
                expected,
                "{kind}: one-byte chunk at {at}"
            );
            vm.finish(ctx).unwrap();
            deliveries += 1;
        }
        let one_byte: Vec<&[u8]> = bytes.chunks(1).collect();
        let ctx = respond_in_chunks(&mut vm, CLEAN_CHAT, "401", "application/json", &one_byte);
        assert_eq!(
            String::from_utf8_lossy(&forwarded_response(&vm, ctx)),
            expected
        );
        vm.finish(ctx).unwrap();
        deliveries += 1;
        if *kind != "github_token" {
            assert_eq!(
                masked_metric(&vm, kind, "error_body"),
                Some(deliveries),
                "{kind}"
            );
        }
    }
    assert_logs_clean(
        &vm,
        &keys.iter().map(|(_, k)| k.clone()).collect::<Vec<_>>(),
    );
}

#[test]
fn every_kind_in_a_5xx_body_is_masked_and_counted() {
    let secrets = planted(9);
    let mut vm = vm("{}");
    let mut text = String::from("upstream crashed while handling: ");
    for s in &secrets {
        text.push_str(&s.value);
        text.push_str(" | ");
    }
    let body = serde_json::json!({"error": {"message": text, "type": "server_error"}}).to_string();
    let chunks: Vec<&[u8]> = body.as_bytes().chunks(97).collect();
    let ctx = respond_in_chunks(&mut vm, CLEAN_CHAT, "500", "application/json", &chunks);
    let got = String::from_utf8(forwarded_response(&vm, ctx)).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&got).expect("masked body is JSON");
    let message = parsed["error"]["message"].as_str().unwrap();
    for s in &secrets {
        assert!(!message.contains(&s.value), "{} leaked: {message}", s.kind);
        assert!(
            message.contains(&mask_of(s.kind, &s.value)),
            "{}: {message}",
            s.kind
        );
    }
    vm.finish(ctx).unwrap();
    assert_eq!(
        property(&vm, ctx, "tollgate_masked_count").as_deref(),
        Some(secrets.len().to_string().as_str())
    );
    assert_eq!(masked_metric(&vm, "github_token", "error_body"), Some(2));
    assert_eq!(masked_metric(&vm, "private_key", "error_body"), Some(1));
    assert_logs_clean(&vm, &values(&secrets));
}

#[test]
fn error_bodies_off_passes_the_echoed_key_through() {
    let key = openai_project_key(&mut Prng::new(10));
    let body = echo_error_body(&key);
    let mut vm = vm(r#"{"masking":{"error_bodies":false}}"#);
    let ctx = respond_in_chunks(
        &mut vm,
        CLEAN_CHAT,
        "401",
        "application/json",
        &[body.as_bytes()],
    );
    assert_eq!(forwarded_response(&vm, ctx), body.as_bytes());
    assert_eq!(
        vm.response_header(ctx, "content-length"),
        Some(body.len().to_string())
    );
    vm.finish(ctx).unwrap();
    assert!(property(&vm, ctx, "tollgate_masked_count").is_none());
    assert_logs_clean(&vm, &[key]);
}

#[test]
fn a_clean_error_body_passes_byte_for_byte() {
    let body = br#"{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
    let mut vm = vm("{}");
    let chunks: Vec<&[u8]> = body.chunks(10).collect();
    let ctx = respond_in_chunks(&mut vm, CLEAN_CHAT, "429", "application/json", &chunks);
    assert_eq!(forwarded_response(&vm, ctx), body.to_vec());
    vm.finish(ctx).unwrap();
    assert!(property(&vm, ctx, "tollgate_masked_count").is_none());
}

// ---------------------------------------------------------------------------------------------
// Successful responses
// ---------------------------------------------------------------------------------------------

fn sse_with(secret: &str, usage_chunk: bool) -> String {
    let mut events = vec![
        serde_json::json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1750000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}),
        serde_json::json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1750000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":format!("Your key {secret} is revoked.")},"finish_reason":null}]}),
        serde_json::json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1750000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}),
    ];
    if usage_chunk {
        events.push(serde_json::json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1750000000,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":7,"total_tokens":16}}));
    }
    let mut out = String::new();
    for e in events {
        out.push_str(&format!("data: {e}\n\n"));
    }
    out.push_str("data: [DONE]\n\n");
    out
}

#[test]
fn responses_true_masks_a_200_stream_at_every_split_point() {
    let key = anthropic_key(&mut Prng::new(11));
    let stream = sse_with(&key, true);
    let expected = stream.replace(key.as_str(), &mask_of("anthropic_key", &key));
    let request = r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello"}]}"#;
    let mut vm = vm(r#"{"masking":{"responses":true}}"#);
    let bytes = stream.as_bytes();
    let start = stream.find(key.as_str()).unwrap();
    let mut deliveries = 0;
    for split in start..=start + key.len() {
        let (a, b) = bytes.split_at(split);
        let ctx = respond_in_chunks(&mut vm, request, "200", "text/event-stream", &[a, b]);
        assert_eq!(
            String::from_utf8_lossy(&forwarded_response(&vm, ctx)),
            expected,
            "split at {split}"
        );
        vm.finish(ctx).unwrap();
        assert_eq!(
            property(&vm, ctx, "tollgate_masked_count").as_deref(),
            Some("1")
        );
        assert_eq!(
            property(&vm, ctx, "tollgate_output_tokens").as_deref(),
            Some("7"),
            "usage is still read from the stream"
        );
        deliveries += 1;
    }
    let pieces: Vec<&[u8]> = bytes.chunks(3).collect();
    let ctx = respond_in_chunks(&mut vm, request, "200", "text/event-stream", &pieces);
    assert_eq!(
        String::from_utf8_lossy(&forwarded_response(&vm, ctx)),
        expected
    );
    vm.finish(ctx).unwrap();
    deliveries += 1;
    assert_eq!(
        masked_metric(&vm, "anthropic_key", "response"),
        Some(deliveries)
    );
    assert_logs_clean(&vm, &[key]);
}

/// With `include_usage` injected by tollgate, the extra usage chunk is stripped and the rest
/// masked: both stream rewriters run on the same chunks.
#[test]
fn responses_true_with_the_injected_usage_chunk_stripped() {
    let key = openai_project_key(&mut Prng::new(12));
    let stream = sse_with(&key, true);
    let expected = sse_with(&mask_of("openai_key", &key), false);
    let request =
        r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hello"}]}"#;
    let mut vm = vm(r#"{"masking":{"responses":true}}"#);
    let bytes = stream.as_bytes();
    let start = stream.find(key.as_str()).unwrap();
    for split in (start..=start + key.len()).step_by(7) {
        let (a, b) = bytes.split_at(split);
        let ctx = respond_in_chunks(&mut vm, request, "200", "text/event-stream", &[a, b]);
        assert_eq!(
            String::from_utf8_lossy(&forwarded_response(&vm, ctx)),
            expected,
            "split at {split}"
        );
        vm.finish(ctx).unwrap();
    }
    assert_logs_clean(&vm, &[key]);
}

#[test]
fn responses_default_leaves_a_200_body_alone() {
    let key = openai_project_key(&mut Prng::new(13));
    let stream = sse_with(&key, true);
    let request = r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello"}]}"#;
    let mut vm = vm("{}");
    let ctx = respond_in_chunks(
        &mut vm,
        request,
        "200",
        "text/event-stream",
        &[stream.as_bytes()],
    );
    assert_eq!(forwarded_response(&vm, ctx), stream.as_bytes());
    vm.finish(ctx).unwrap();
    assert!(property(&vm, ctx, "tollgate_masked_count").is_none());
}

// ---------------------------------------------------------------------------------------------
// Log lines
// ---------------------------------------------------------------------------------------------

/// Drives every path that logs (local replies, prompt redaction) with secrets in the body, in
/// credential headers, in the query string and in the correlation id the client sends; no line
/// may carry them.
#[test]
fn no_log_line_carries_a_planted_secret() {
    let secrets = planted(14);
    let mut vm = vm(r#"{"masking":{"prompts":"block"},"limits":{"max_request_bytes":100000}}"#);
    let openai = &secrets[0].value;
    let google = &secrets[2].value;
    let bearer = format!("Bearer {openai}");
    let path = format!("/v1/chat/completions?key={google}");
    for s in &secrets {
        let body = chat_body(&s.value);
        let (ctx, _) = send_request(
            &mut vm,
            &path,
            body.as_bytes(),
            &[
                ("authorization", bearer.as_str()),
                ("x-api-key", s.value.as_str()),
            ],
        );
        assert_eq!(
            vm.local_reply(ctx).map(|r| r.status),
            Some(400),
            "{}",
            s.kind
        );
        vm.finish(ctx).unwrap();
    }
    assert!(
        vm.logs().iter().any(|l| l.contains("secret_detected")),
        "the block path logged: {:?}",
        vm.logs()
    );
    assert_logs_clean(&vm, &values(&secrets));
}

/// The correlation id is copied from the client's `x-request-id` when it is well-formed; a
/// client that puts a key there (tokens are valid id characters) must not get it logged.
#[test]
fn a_secret_sent_as_the_request_id_is_not_logged() {
    let key = format!("sk-proj-{}", Prng::new(15).mixed(ALNUM, 100));
    let mut vm = vm(r#"{"masking":{"prompts":"block"}}"#);
    let body = chat_body(&format!("here: {key}"));
    let (ctx, _) = send_request(
        &mut vm,
        "/v1/chat/completions",
        body.as_bytes(),
        &[("x-request-id", key.as_str())],
    );
    assert_eq!(vm.local_reply(ctx).map(|r| r.status), Some(400));
    assert!(vm.logs().iter().any(|l| l.contains("secret_detected")));
    assert_logs_clean(&vm, &[key]);
}

/// Envoy often ends a chunked upstream body with an empty end-of-stream frame: what the masker
/// still holds back must be released there.
#[test]
fn a_key_at_the_very_end_is_flushed_by_an_empty_final_chunk() {
    let key = openai_project_key(&mut Prng::new(16));
    let body = format!("invalid key {key}");
    let mut vm = vm("{}");
    let ctx = respond_in_chunks(
        &mut vm,
        CLEAN_CHAT,
        "401",
        "text/plain",
        &[body.as_bytes(), b""],
    );
    assert_eq!(
        String::from_utf8_lossy(&forwarded_response(&vm, ctx)),
        format!("invalid key {}", mask_of("openai_key", &key))
    );
    assert_logs_clean(&vm, &[key]);
}

/// Error bodies are masked on any path, not only LLM API paths.
#[test]
fn an_error_body_on_a_non_llm_path_is_masked() {
    let key = google_api_key(&mut Prng::new(17));
    let body = format!(
        r#"{{"error":{{"code":400,"message":"API key not valid: {key}","status":"INVALID_ARGUMENT"}}}}"#
    );
    let mut vm = vm("{}");
    let ctx = vm.new_http();
    let action = vm
        .request_headers(
            ctx,
            &[
                (":method", "GET"),
                (":path", "/v1beta/models"),
                (":authority", "x"),
            ],
            true,
        )
        .unwrap();
    assert_eq!(action, Action::Continue);
    let len = body.len().to_string();
    vm.response_headers(
        ctx,
        &[
            (":status", "400"),
            ("content-type", "application/json"),
            ("content-length", &len),
        ],
        false,
    )
    .unwrap();
    let (a, b) = body.as_bytes().split_at(body.find("AIza").unwrap() + 10);
    vm.response_body(ctx, a, false).unwrap();
    vm.response_body(ctx, b, true).unwrap();
    let got = String::from_utf8(forwarded_response(&vm, ctx)).unwrap();
    assert_eq!(got, body.replace(&key, &mask_of("google_api_key", &key)));
    assert_eq!(vm.response_header(ctx, "content-length"), None);
    vm.finish(ctx).unwrap();
    assert_eq!(
        property(&vm, ctx, "tollgate_masked_count").as_deref(),
        Some("1")
    );
    assert_eq!(masked_metric(&vm, "google_api_key", "error_body"), Some(1));
    assert_logs_clean(&vm, &[key]);
}
