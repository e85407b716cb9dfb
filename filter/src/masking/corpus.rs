//! Test-only corpus: a small deterministic PRNG, fake secrets in every supported shape
//! (generated at test time, never stored as literals), and ordinary text (prose, source code,
//! base64 image data, UUIDs, hashes, git SHAs, URLs, LLM API JSON) for false-positive checks.

#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

pub const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
pub const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
pub const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
pub const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
pub const HEX: &[u8] = b"0123456789abcdef";
pub const DIGITS: &[u8] = b"0123456789";
pub const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
pub const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// SplitMix64: tiny, deterministic, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    pub fn string(&mut self, len: usize, alphabet: &[u8]) -> String {
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len())] as char)
            .collect()
    }

    /// A random string that contains at least one upper-case letter, lower-case letter and digit.
    pub fn mixed(&mut self, len: usize, alphabet: &[u8]) -> String {
        loop {
            let s = self.string(len, alphabet);
            if s.bytes().any(|b| b.is_ascii_uppercase())
                && s.bytes().any(|b| b.is_ascii_lowercase())
                && s.bytes().any(|b| b.is_ascii_digit())
            {
                return s;
            }
        }
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Base64 encoding (standard or URL alphabet, optional padding).
pub fn base64(data: &[u8], url: bool, pad: bool) -> String {
    let alphabet = if url { B64URL } else { B64 };
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// A fake secret: the exact secret bytes, the snippet it is planted as (with any context the
/// detector needs), and the kind the engine must report for it.
#[derive(Clone, Debug)]
pub struct Sample {
    pub kind: &'static str,
    pub secret: String,
    pub snippet: String,
}

impl Sample {
    fn bare(kind: &'static str, secret: String) -> Self {
        Sample {
            kind,
            snippet: secret.clone(),
            secret,
        }
    }

    fn in_context(kind: &'static str, secret: String, snippet: String) -> Self {
        Sample {
            kind,
            secret,
            snippet,
        }
    }

    /// Substrings that must not survive masking: the secret, or for multi-line secrets each
    /// long line of it.
    pub fn needles(&self) -> Vec<String> {
        if self.secret.contains('\n') {
            self.secret
                .lines()
                .filter(|l| l.len() >= 16 && !l.starts_with("-----"))
                .map(str::to_owned)
                .collect()
        } else {
            vec![self.secret.clone()]
        }
    }
}

pub fn jwt(rng: &mut Rng) -> String {
    let header = base64(br#"{"alg":"HS256","typ":"JWT"}"#, true, false);
    let payload = format!(
        r#"{{"sub":"{}","name":"{}","iat":{},"scope":"chat completions"}}"#,
        rng.string(10, DIGITS),
        rng.string(8, LOWER),
        1_700_000_000 + rng.below(10_000_000)
    );
    let signature = rng.bytes(32);
    format!(
        "{header}.{}.{}",
        base64(payload.as_bytes(), true, false),
        base64(&signature, true, false)
    )
}

pub fn private_key(rng: &mut Rng, label: &str, lines: usize) -> String {
    let mut s = format!("-----BEGIN {label}-----\n");
    for _ in 0..lines {
        s.push_str(&base64(&rng.bytes(48), false, true));
        s.push('\n');
    }
    s.push_str(&base64(&rng.bytes(20), false, true));
    s.push_str(&format!("\n-----END {label}-----"));
    s
}

/// One fake secret of every supported shape (several variants per kind).
pub fn samples(rng: &mut Rng) -> Vec<Sample> {
    let mut v = Vec::new();
    v.push(Sample::bare(
        "openai_key",
        format!(
            "sk-{}T3BlbkFJ{}",
            rng.string(20, ALNUM),
            rng.string(20, ALNUM)
        ),
    ));
    for (prefix, n) in [("proj", 74), ("svcacct", 58), ("admin", 58)] {
        v.push(Sample::bare(
            "openai_key",
            format!(
                "sk-{prefix}-{}T3BlbkFJ{}",
                rng.string(n, B64URL),
                rng.string(n, B64URL)
            ),
        ));
    }
    for kind in ["api03", "admin01"] {
        v.push(Sample::bare(
            "anthropic_key",
            format!("sk-ant-{kind}-{}AA", rng.string(93, B64URL)),
        ));
    }
    v.push(Sample::bare(
        "google_api_key",
        format!("AIza{}", rng.string(35, B64URL)),
    ));
    v.push(Sample::bare(
        "google_api_key",
        format!("AIzaSy{}", rng.string(33, ALNUM)),
    ));
    for prefix in ["AKIA", "ASIA"] {
        v.push(Sample::bare(
            "aws_access_key_id",
            format!("{prefix}{}", rng.string(16, BASE32)),
        ));
    }
    let aws_secret = rng.mixed(40, B64);
    v.push(Sample::in_context(
        "aws_secret_key",
        aws_secret.clone(),
        format!("aws_secret_access_key = {aws_secret}"),
    ));
    let aws_secret = rng.mixed(40, B64);
    v.push(Sample::in_context(
        "aws_secret_key",
        aws_secret.clone(),
        format!("\"SecretAccessKey\": \"{aws_secret}\""),
    ));
    let aws_secret = rng.mixed(40, B64);
    v.push(Sample::in_context(
        "aws_secret_key",
        aws_secret.clone(),
        format!("AKIA{} {aws_secret}", rng.string(16, BASE32)),
    ));
    for prefix in ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"] {
        v.push(Sample::bare(
            "github_token",
            format!("{prefix}{}", rng.string(36, ALNUM)),
        ));
    }
    v.push(Sample::bare(
        "github_token",
        format!(
            "github_pat_{}_{}",
            rng.string(22, ALNUM),
            rng.string(59, ALNUM)
        ),
    ));
    v.push(Sample::bare(
        "slack_token",
        format!(
            "xoxb-{}-{}-{}",
            rng.string(11, DIGITS),
            rng.string(12, DIGITS),
            rng.string(24, ALNUM)
        ),
    ));
    v.push(Sample::bare(
        "slack_token",
        format!(
            "xoxp-{}-{}-{}-{}",
            rng.string(11, DIGITS),
            rng.string(11, DIGITS),
            rng.string(12, DIGITS),
            rng.string(32, HEX)
        ),
    ));
    v.push(Sample::bare(
        "slack_webhook",
        format!(
            "https://hooks.slack.com/services/T{}/B{}/{}",
            rng.string(8, UPPER_ALNUM),
            rng.string(10, UPPER_ALNUM),
            rng.string(24, ALNUM)
        ),
    ));
    for prefix in ["sk_live_", "rk_live_", "sk_test_"] {
        let n = rng.range(24, 99);
        v.push(Sample::bare(
            "stripe_key",
            format!("{prefix}{}", rng.string(n, ALNUM)),
        ));
    }
    v.push(Sample::bare("jwt", jwt(rng)));
    let token = rng.mixed(
        40,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~",
    );
    v.push(Sample::in_context(
        "bearer_token",
        token.clone(),
        format!("Authorization: Bearer {token}"),
    ));
    for label in [
        "RSA PRIVATE KEY",
        "PRIVATE KEY",
        "EC PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "PGP PRIVATE KEY BLOCK",
    ] {
        let lines = rng.range(4, 30);
        v.push(Sample::bare("private_key", private_key(rng, label, lines)));
    }
    let generic_templates: [(&str, &str); 10] = [
        ("api_key={}", "generic_assignment"),
        ("\"api_key\": \"{}\"", "generic_assignment"),
        ("token: {}", "generic_assignment"),
        ("SECRET={}", "generic_assignment"),
        ("client_secret: '{}'", "generic_assignment"),
        (
            "https://api.example.net/v2/data?key={}&format=json",
            "generic_assignment",
        ),
        ("export MY_SERVICE_TOKEN=\"{}\"", "generic_assignment"),
        ("$apiKey = '{}';", "generic_assignment"),
        ("x-api-key: {}", "generic_assignment"),
        ("refresh_token => \"{}\"", "generic_assignment"),
    ];
    for (template, kind) in generic_templates {
        let len = rng.range(20, 48);
        let value = rng.mixed(len, ALNUM);
        v.push(Sample::in_context(
            kind,
            value.clone(),
            template.replace("{}", &value),
        ));
    }
    for template in ["password={}", "DB_PASSWORD: {}", "\"passwd\": \"{}\""] {
        let value = format!(
            "{}{}{}",
            rng.mixed(8, ALNUM),
            rng.pick(&["!", "#", "@", "%", "*"]),
            rng.string(3, DIGITS)
        );
        v.push(Sample::in_context(
            "generic_assignment",
            value.clone(),
            template.replace("{}", &value),
        ));
    }
    v.push(Sample::bare(
        "huggingface_token",
        format!("hf_{}", rng.string(34, ALNUM)),
    ));
    v.push(Sample::bare(
        "groq_key",
        format!("gsk_{}", rng.string(52, ALNUM)),
    ));
    v.push(Sample::bare(
        "xai_key",
        format!("xai-{}", rng.string(80, ALNUM)),
    ));
    v.push(Sample::bare(
        "openrouter_key",
        format!("sk-or-v1-{}", rng.string(64, HEX)),
    ));
    v.push(Sample::bare(
        "perplexity_key",
        format!("pplx-{}", rng.string(48, ALNUM)),
    ));
    v.push(Sample::bare(
        "npm_token",
        format!("npm_{}", rng.string(36, ALNUM)),
    ));
    v.push(Sample::bare(
        "replicate_token",
        format!("r8_{}", rng.string(37, ALNUM)),
    ));
    v.push(Sample::bare(
        "gitlab_token",
        format!("glpat-{}", rng.string(20, B64URL)),
    ));
    v
}

/// Settings extras used with [`samples`]: a custom pattern and its matching fake secret.
pub fn custom_sample(rng: &mut Rng) -> Sample {
    Sample::bare("acme_key", format!("acme_{}", rng.string(32, ALNUM)))
}

/// A known literal secret with an unusual shape (not caught by any built-in detector).
pub fn known_literal(rng: &mut Rng) -> String {
    format!("local.{}+{}", rng.string(10, LOWER), rng.string(4, LOWER))
}

const WORDS: &[&str] = &[
    "the",
    "a",
    "model",
    "gateway",
    "request",
    "response",
    "token",
    "tokens",
    "key",
    "keys",
    "password",
    "secret",
    "bearer",
    "prompt",
    "stream",
    "chunk",
    "buffer",
    "latency",
    "cache",
    "provider",
    "routing",
    "policy",
    "quota",
    "budget",
    "limit",
    "user",
    "assistant",
    "system",
    "function",
    "tool",
    "call",
    "result",
    "error",
    "retry",
    "timeout",
    "upstream",
    "header",
    "body",
    "JSON",
    "schema",
    "field",
    "value",
    "Envoy",
    "filter",
    "Rust",
    "wasm",
    "OpenAI",
    "Anthropic",
    "Gemini",
    "is",
    "was",
    "will",
    "should",
    "must",
    "can",
    "never",
    "always",
    "quickly",
    "safely",
    "with",
    "without",
    "for",
    "from",
    "into",
    "over",
    "under",
    "between",
    "and",
    "or",
    "but",
    "because",
    "while",
    "when",
    "if",
    "then",
    "every",
    "each",
    "some",
    "rotation",
    "credential",
    "access",
    "authorization",
    "session",
    "cookie",
    "config",
    "environment",
    "variable",
    "production",
    "staging",
    "deployment",
    "cluster",
    "node",
    "task-based",
    "skill",
    "asking",
    "sketch",
    "AIDS",
    "AKIMBO",
    "eye",
    "hooks",
    "slack",
];

/// Prose built from a word list, with sentences, punctuation, numbers and a few "key: value"
/// phrases that are not secrets.
pub fn prose(rng: &mut Rng, len: usize) -> String {
    let fixed = [
        "The key to a good gateway is predictable latency. ",
        "Note: the token budget resets every minute. ",
        "Bearer bonds were common in the early twentieth century. ",
        "Your password must be at least twelve characters long. ",
        "Set the secret in the environment, never in the repository. ",
        "Token: the smallest unit the model reads. ",
        "Key=value pairs are separated by ampersands in a query string. ",
        "Remember: keys rotate every 90 days, and tokens expire after 3600 seconds. ",
        "The task-based skill-set asked for sk-learn and scikit-learn experience. ",
        "An API key is a long random string; keep it out of logs. ",
    ];
    let mut s = String::new();
    while s.len() < len {
        if rng.below(5) == 0 {
            s.push_str(fixed[rng.below(fixed.len())]);
            continue;
        }
        let n = rng.range(6, 18);
        for i in 0..n {
            let w = WORDS[rng.below(WORDS.len())];
            if i == 0 {
                let mut c = w.chars();
                if let Some(f) = c.next() {
                    s.extend(f.to_uppercase());
                    s.push_str(c.as_str());
                }
            } else {
                s.push_str(w);
            }
            match rng.below(12) {
                0 => s.push_str(", "),
                1 => s.push_str(&format!(" {} ", rng.below(10_000))),
                _ => s.push(' '),
            }
        }
        s.push_str(rng.pick(&[". ", "? ", "! ", ".\n\n"]));
    }
    s
}

pub const RUST_SOURCE: &str = r#"
use std::collections::HashMap;

/// Settings read from the environment.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Settings {
    #[serde(rename = "api_key")]
    pub api_key: String,
    pub max_tokens: u32,
    pub password: Option<String>,
    pub token_url: String,
}

impl Settings {
    pub fn from_env() -> Result<Self, String> {
        let api_key = std::env::var("OPENAI_API_KEY").map_err(|e| e.to_string())?;
        let token = std::env::var("SERVICE_TOKEN").unwrap_or_default();
        let password: Option<String> = None;
        let key = format!("{}:{}", api_key.len(), token.len());
        let max_tokens: u32 = 1024;
        if key == "0:0" || max_tokens != 1024 {
            return Err("missing credentials".to_owned());
        }
        Ok(Settings { api_key, max_tokens, password, token_url: "https://auth.example.com/token".into() })
    }

    fn token(&self) -> &str {
        &self.api_key
    }
}

fn count_tokens(text: &str, cache: &mut HashMap<String, usize>) -> usize {
    let cache_key = text.to_lowercase();
    if let Some(n) = cache.get(&cache_key) {
        return *n;
    }
    let n = text.split_whitespace().count() * 4 / 3;
    cache.insert(cache_key, n);
    n
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts() {
        let mut cache = super::HashMap::new();
        assert_eq!(super::count_tokens("a b c", &mut cache), 4);
        let secret_key = std::env::var("SECRET_KEY").ok();
        assert!(secret_key.is_none() || secret_key.as_deref() != Some(""));
    }
}
"#;

pub const PYTHON_SOURCE: &str = r#"
import os
import getpass
import requests

api_key = os.environ["OPENAI_API_KEY"]
token = request.headers.get("Authorization")
password = getpass.getpass()
secret_key = settings.SECRET_KEY

def chat(prompt: str, max_tokens: int = 256) -> str:
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
    resp = requests.post("https://api.openai.com/v1/chat/completions", json=body, headers=headers, timeout=30)
    if resp.status_code != 200:
        raise RuntimeError(f"upstream error {resp.status_code}: {resp.text[:200]}")
    return resp.json()["choices"][0]["message"]["content"]

class TokenBucket:
    def __init__(self, rate: float, capacity: int) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity

    def take(self, n: int = 1) -> bool:
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

for key, value in sorted(config.items(), key=lambda kv: kv[0]):
    print(f"{key}={value}")
"#;

/// Random UUIDs, in several contexts.
pub fn uuids(rng: &mut Rng, n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        let u = format!(
            "{}-{}-4{}-{}{}-{}",
            rng.string(8, HEX),
            rng.string(4, HEX),
            rng.string(3, HEX),
            rng.pick(&["8", "9", "a", "b"]),
            rng.string(3, HEX),
            rng.string(12, HEX)
        );
        s.push_str(&match i % 4 {
            0 => format!("{u}\n"),
            1 => format!("{{\"id\": \"{u}\", \"object\": \"file\"}}\n"),
            2 => format!("request_id={u} status=200\n"),
            _ => format!("\"idempotency_key\": \"{u}\"\n"),
        });
    }
    s
}

/// sha256 digests and git SHAs in several contexts.
pub fn hashes(rng: &mut Rng, n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        let sha256 = rng.string(64, HEX);
        let git = rng.string(40, HEX);
        s.push_str(&match i % 5 {
            0 => format!("sha256:{sha256}\n"),
            1 => format!("{{\"sha256\": \"{sha256}\"}}\n"),
            2 => format!(
                "commit {git}\nAuthor: Dev <dev@example.com>\n\n    Fix {}\n",
                rng.string(7, HEX)
            ),
            3 => format!("{sha256}  target/release/tollgate.wasm\n"),
            _ => format!("Merge {} into {}\n", &git[..7], rng.string(7, HEX)),
        });
    }
    s
}

/// URLs with ordinary query strings and paths.
pub fn urls(rng: &mut Rng, n: usize) -> String {
    let hosts = [
        "example.com",
        "docs.rs",
        "github.com",
        "api.openai.com",
        "www.youtube.com",
    ];
    let params = [
        "id",
        "page",
        "sort",
        "q",
        "v",
        "lang",
        "ref",
        "utm_source",
        "limit",
        "after",
    ];
    let mut s = String::new();
    for _ in 0..n {
        let mut url = format!("https://{}/", rng.pick(&hosts));
        for _ in 0..rng.range(1, 4) {
            let len = rng.range(3, 12);
            url.push_str(&rng.string(len, LOWER));
            url.push('/');
        }
        url.push('?');
        for j in 0..rng.range(1, 4) {
            if j > 0 {
                url.push('&');
            }
            let len = rng.range(1, 11);
            url.push_str(&format!("{}={}", rng.pick(&params), rng.string(len, ALNUM)));
        }
        if rng.below(3) == 0 {
            url.push_str(&format!("#L{}", rng.below(500)));
        }
        s.push_str(&url);
        s.push('\n');
    }
    s
}

/// A vision request body carrying a base64 image of about `len` bytes.
pub fn base64_image_body(rng: &mut Rng, len: usize) -> String {
    let data = base64(&rng.bytes(len * 3 / 4), false, true);
    serde_json::json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{data}")}}
        ]}],
        "max_tokens": 300
    })
    .to_string()
}

/// Ordinary LLM API request and response bodies (ids, usage, fingerprints; no secrets).
pub fn llm_bodies(rng: &mut Rng, n: usize) -> String {
    let mut s = String::new();
    for _ in 0..n {
        let request = serde_json::json!({
            "model": "claude-sonnet-4",
            "max_tokens": 1024,
            "system": "You are a helpful assistant.",
            "messages": [{"role": "user", "content": prose(rng, 300)}],
            "metadata": {"user_id": rng.string(24, HEX)},
            "stream": true
        });
        let response = serde_json::json!({
            "id": format!("chatcmpl-{}", rng.string(29, ALNUM)),
            "object": "chat.completion",
            "created": 1_700_000_000 + rng.below(1_000_000),
            "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": format!("fp_{}", rng.string(10, HEX)),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": prose(rng, 200)}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": rng.below(5000), "completion_tokens": rng.below(900), "total_tokens": rng.below(6000)}
        });
        let anthropic = serde_json::json!({
            "id": format!("msg_01{}", rng.string(22, ALNUM)),
            "type": "message",
            "content": [{"type": "tool_use", "id": format!("toolu_01{}", rng.string(22, ALNUM)), "name": "get_weather", "input": {"city": "Paris"}}],
            "usage": {"input_tokens": rng.below(3000), "output_tokens": rng.below(800), "cache_read_input_tokens": 0},
            "request_id": format!("req_{}", rng.string(24, ALNUM))
        });
        s.push_str(&format!("{request}\n{response}\n{anthropic}\n"));
    }
    s
}

/// The whole ordinary corpus, as (label, text) pairs.
pub fn ordinary_corpus(rng: &mut Rng) -> Vec<(&'static str, String)> {
    vec![
        ("prose", prose(rng, 64 * 1024)),
        ("rust", RUST_SOURCE.repeat(8)),
        ("python", PYTHON_SOURCE.repeat(8)),
        ("base64_image", base64_image_body(rng, 96 * 1024)),
        ("uuids", uuids(rng, 800)),
        ("hashes", hashes(rng, 800)),
        ("urls", urls(rng, 800)),
        ("llm_json", llm_bodies(rng, 40)),
    ]
}
