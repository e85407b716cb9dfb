//! The built-in secret detectors: their stable kind names, the table of "prefix + charset +
//! length" token shapes (which custom patterns reuse), and the validators for the shapes that
//! need more than that (AWS secret after a key id, JWT, `Bearer` tokens, PEM private keys,
//! Slack webhook URLs, known literal secrets).
//!
//! Every validator starts at a candidate position handed over by the prefilter, looks at a
//! bounded window, and either reports a finding, reports nothing, or (while streaming) reports
//! that its verdict needs bytes that have not arrived yet.

use super::bytes::{
    bounded_run, glued_before, is_base64, is_base64url, literal_at, preceded_by_alnum, run_end,
    ByteSet, LiteralMatch, RunEnd,
};
use super::scan::{KindId, ScanState};

/// Kind reported for the literal secrets given to the engine (the gateway's own provider keys).
pub const KNOWN_SECRET_KIND: &str = "known_secret";
/// Kind of the `name = high-entropy value` heuristic; always the lowest priority.
pub const GENERIC_KIND: &str = "generic_assignment";

/// Every built-in kind name except [`KNOWN_SECRET_KIND`] and [`GENERIC_KIND`], in priority
/// order: when two findings overlap, the merged finding takes the earlier kind.
pub const BUILTIN_KINDS: &[&str] = &[
    "private_key",
    "anthropic_key",
    "openrouter_key",
    "openai_key",
    "github_token",
    "gitlab_token",
    "slack_token",
    "slack_webhook",
    "stripe_key",
    "google_api_key",
    "aws_access_key_id",
    "aws_secret_key",
    "huggingface_token",
    "groq_key",
    "xai_key",
    "perplexity_key",
    "npm_token",
    "replicate_token",
    "jwt",
    "bearer_token",
];

/// Longest JWT header segment accepted, in bytes.
pub(crate) const JWT_HEADER_MAX: usize = 1024;
/// Longest JWT payload segment accepted, in bytes.
pub(crate) const JWT_PAYLOAD_MAX: usize = 4096;
/// Longest JWT signature segment accepted, in bytes.
pub(crate) const JWT_SIGNATURE_MAX: usize = 1024;
/// Longest `Bearer` token accepted, in bytes.
pub(crate) const BEARER_MAX: usize = 4096;
/// Longest PEM private key block masked as one finding (header to `-----END …-----`), in bytes.
/// A block with no end marker within this distance is masked up to the end of its body
/// alphabet, at most this many bytes.
pub(crate) const PEM_MAX: usize = 8192;
/// How far after an AWS access key id a 40-character secret key is looked for, in bytes.
pub(crate) const AWS_LOOKAHEAD: usize = 200;
/// Longest Slack webhook path token accepted, in bytes.
pub(crate) const WEBHOOK_PATH_MAX: usize = 256;

/// Extra check on the body of a prefix token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Prefix, charset and length are enough.
    Any,
    /// The body must contain a digit.
    HasDigit,
    /// OpenAI: the body contains `T3BlbkFJ` (base64 of "OpenAI") or mixes upper case, lower case
    /// and digits (rules out `sk-learn`-style words).
    OpenAi,
}

impl Shape {
    fn accepts(self, body: &[u8]) -> bool {
        match self {
            Shape::Any => true,
            Shape::HasDigit => body.iter().any(u8::is_ascii_digit),
            Shape::OpenAi => {
                body.windows(8).any(|w| w == b"T3BlbkFJ")
                    || (body.iter().any(u8::is_ascii_uppercase)
                        && body.iter().any(u8::is_ascii_lowercase)
                        && body.iter().any(u8::is_ascii_digit))
            }
        }
    }
}

/// A built-in token shape: one of `prefixes`, then a maximal run of `charset` whose length is in
/// `min..=max`, not glued to a letter or digit on either side.
pub(crate) struct SimpleDef {
    pub kind: &'static str,
    pub prefixes: &'static [&'static str],
    pub charset: fn(u8) -> bool,
    pub min: usize,
    pub max: usize,
    pub shape: Shape,
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}
fn is_alnum_dash(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}
fn is_upper_digit(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}
fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// The built-in prefix token shapes (facts from the gitleaks and TruffleHog rules, loosened on
/// the maximum length so that longer future keys are still masked).
pub(crate) const SIMPLE_DEFS: &[SimpleDef] = &[
    SimpleDef {
        kind: "anthropic_key",
        prefixes: &["sk-ant-"],
        charset: is_base64url,
        min: 20,
        max: 255,
        shape: Shape::Any,
    },
    SimpleDef {
        kind: "openrouter_key",
        prefixes: &["sk-or-v1-"],
        charset: is_lower_hex,
        min: 64,
        max: 64,
        shape: Shape::Any,
    },
    SimpleDef {
        kind: "openai_key",
        prefixes: &["sk-"],
        charset: is_base64url,
        min: 20,
        max: 255,
        shape: Shape::OpenAi,
    },
    SimpleDef {
        kind: "github_token",
        prefixes: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        charset: is_alnum,
        min: 36,
        max: 255,
        shape: Shape::Any,
    },
    SimpleDef {
        kind: "github_token",
        prefixes: &["github_pat_"],
        charset: is_word,
        min: 50,
        max: 255,
        shape: Shape::Any,
    },
    SimpleDef {
        kind: "gitlab_token",
        prefixes: &["glpat-"],
        charset: is_base64url,
        min: 20,
        max: 255,
        shape: Shape::Any,
    },
    SimpleDef {
        kind: "slack_token",
        prefixes: &[
            "xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xoxe-", "xapp-",
        ],
        charset: is_alnum_dash,
        min: 20,
        max: 255,
        shape: Shape::HasDigit,
    },
    SimpleDef {
        kind: "stripe_key",
        prefixes: &[
            "sk_live_", "sk_test_", "sk_prod_", "rk_live_", "rk_test_", "rk_prod_",
        ],
        charset: is_alnum,
        min: 10,
        max: 255,
        shape: Shape::Any,
    },
    SimpleDef {
        kind: "google_api_key",
        prefixes: &["AIza"],
        charset: is_base64url,
        min: 35,
        max: 35,
        shape: Shape::Any,
    },
    SimpleDef {
        kind: "aws_access_key_id",
        prefixes: &["AKIA", "ASIA", "ABIA", "ACCA"],
        charset: is_upper_digit,
        min: 16,
        max: 16,
        shape: Shape::Any,
    },
    SimpleDef {
        kind: "huggingface_token",
        prefixes: &["hf_", "api_org_"],
        charset: is_alnum,
        min: 34,
        max: 40,
        shape: Shape::Any,
    },
    SimpleDef {
        kind: "groq_key",
        prefixes: &["gsk_"],
        charset: is_alnum,
        min: 52,
        max: 52,
        shape: Shape::Any,
    },
    SimpleDef {
        kind: "xai_key",
        prefixes: &["xai-"],
        charset: is_word,
        min: 80,
        max: 80,
        shape: Shape::Any,
    },
    SimpleDef {
        kind: "perplexity_key",
        prefixes: &["pplx-"],
        charset: is_alnum,
        min: 48,
        max: 48,
        shape: Shape::Any,
    },
    SimpleDef {
        kind: "npm_token",
        prefixes: &["npm_"],
        charset: is_alnum,
        min: 36,
        max: 36,
        shape: Shape::Any,
    },
    SimpleDef {
        kind: "replicate_token",
        prefixes: &["r8_"],
        charset: is_base64url,
        min: 37,
        max: 37,
        shape: Shape::Any,
    },
];

/// A compiled prefix token shape (built-in or custom).
#[derive(Clone, Debug)]
pub(crate) struct SimplePattern {
    pub kind: KindId,
    pub prefix: Vec<u8>,
    pub charset: ByteSet,
    pub min: usize,
    pub max: usize,
    pub shape: Shape,
    /// When set, a 40-character AWS secret key shortly after the match is reported with this kind.
    pub aws_secret_after: Option<KindId>,
}

impl SimplePattern {
    /// Longest stretch of input this pattern's verdict depends on, from the prefix start.
    pub(crate) fn reach(&self) -> usize {
        let own = self.prefix.len() + self.max + 1;
        if self.aws_secret_after.is_some() {
            own + AWS_LOOKAHEAD + 42
        } else {
            own
        }
    }

    /// Checks for this shape at `start`.
    pub(crate) fn check(&self, st: &mut ScanState<'_>, start: usize) {
        let text = st.text;
        match literal_at(text, start, &self.prefix, false) {
            LiteralMatch::Full => {}
            LiteralMatch::Partial => return st.pending(start),
            LiteralMatch::No => return,
        }
        if self.prefix.first().is_some_and(u8::is_ascii_alphanumeric)
            && preceded_by_alnum(text, start)
        {
            return;
        }
        let body = start + self.prefix.len();
        let end = match bounded_run(text, body, self.max, st.eof, |b| self.charset.contains(b)) {
            RunEnd::Closed(end) => end,
            RunEnd::Open => return st.pending(start),
            RunEnd::TooLong => return,
        };
        if end - body < self.min || text.get(end).is_some_and(u8::is_ascii_alphanumeric) {
            return;
        }
        if !self.shape.accepts(text.get(body..end).unwrap_or(&[])) {
            return;
        }
        st.found(start, end, self.kind);
        if let Some(secret_kind) = self.aws_secret_after {
            aws_secret_after(st, end, secret_kind);
        }
    }
}

/// Looks for a 40-character base64 AWS secret access key within [`AWS_LOOKAHEAD`] bytes after
/// an access key id ending at `from` (as in `AKIA… / wJalr…` or `id=AKIA…&secret=…`).
fn aws_secret_after(st: &mut ScanState<'_>, from: usize, kind: KindId) {
    let text = st.text;
    let limit = from.saturating_add(AWS_LOOKAHEAD);
    let mut i = from;
    while i < limit {
        let Some(&b) = text.get(i) else {
            return st.pending(from);
        };
        if !is_base64(b) {
            i += 1;
            continue;
        }
        let end = run_end(text, i, 40, is_base64);
        if end >= text.len() && !st.eof {
            return st.pending(from);
        }
        let token = text.get(i..end).unwrap_or(&[]);
        if !glued_before(text, i, |p| is_base64(p) || p == b'=')
            && token.len() == 40
            && text.get(end) != Some(&b'=')
            && token.iter().any(u8::is_ascii_uppercase)
            && token.iter().any(u8::is_ascii_lowercase)
            && token.iter().any(u8::is_ascii_digit)
        {
            st.found(i, end, kind);
        }
        i = end.max(i + 1);
    }
}

/// A JWT: `eyJ…` header, `.`, payload, `.`, signature (each base64url), the signature at least
/// 16 bytes. Unsigned tokens (`alg: none`, empty signature) are not credentials and are ignored.
pub(crate) fn jwt(st: &mut ScanState<'_>, start: usize, kind: KindId) {
    let text = st.text;
    match literal_at(text, start, b"eyJ", false) {
        LiteralMatch::Full => {}
        LiteralMatch::Partial => return st.pending(start),
        LiteralMatch::No => return,
    }
    if glued_before(text, start, is_base64url) {
        return;
    }
    let mut from = start;
    let mut end = start;
    for (index, (cap, min)) in [
        (JWT_HEADER_MAX, 10),
        (JWT_PAYLOAD_MAX, 4),
        (JWT_SIGNATURE_MAX, 16),
    ]
    .into_iter()
    .enumerate()
    {
        end = match bounded_run(text, from, cap, st.eof, is_base64url) {
            RunEnd::Closed(end) => end,
            RunEnd::Open => return st.pending(start),
            RunEnd::TooLong => return,
        };
        if end - from < min {
            return;
        }
        if index < 2 {
            if text.get(end) != Some(&b'.') {
                return;
            }
            from = end + 1;
        }
    }
    let padding = run_end(text, end, 2, |b| b == b'=');
    if padding >= text.len() && !st.eof {
        return st.pending(start);
    }
    st.found(start, padding.min(end + 2), kind);
}

/// RFC 6750 `b64token` bytes.
fn is_bearer_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)
}

/// The token after `Bearer ` (any case): at least 8 bytes with a digit, or at least 24 bytes
/// mixing upper and lower case, so that prose such as "bearer task-based" is not flagged. The scheme word itself is kept.
pub(crate) fn bearer(st: &mut ScanState<'_>, start: usize, kind: KindId) {
    let text = st.text;
    match literal_at(text, start, b"bearer", true) {
        LiteralMatch::Full => {}
        LiteralMatch::Partial => return st.pending(start),
        LiteralMatch::No => return,
    }
    if preceded_by_alnum(text, start) {
        return;
    }
    let after = start + 6;
    let token_start = run_end(text, after, 4, |b| b == b' ' || b == b'\t');
    if token_start >= text.len() && !st.eof {
        return st.pending(start);
    }
    if token_start == after || token_start - after > 4 {
        return;
    }
    let mut end = match bounded_run(text, token_start, BEARER_MAX, st.eof, is_bearer_byte) {
        RunEnd::Closed(end) => end,
        RunEnd::Open => return st.pending(start),
        RunEnd::TooLong => return,
    };
    while end > token_start && text.get(end - 1) == Some(&b'.') {
        end -= 1;
    }
    let token = text.get(token_start..end).unwrap_or(&[]);
    let has_digit = token.iter().any(u8::is_ascii_digit);
    let long_mixed_case = token.len() >= 24
        && token.iter().any(u8::is_ascii_uppercase)
        && token.iter().any(u8::is_ascii_lowercase);
    if token.len() >= 8 && (has_digit || long_mixed_case) {
        st.found(token_start, end, kind);
    }
}

/// Bytes that may appear in the body of a PEM block, raw or inside a JSON string.
fn is_pem_body_byte(b: u8) -> bool {
    is_base64(b) || b"= \t\r\n\\:,-".contains(&b)
}

/// Finds `needle` in `text[from..to]`.
fn find(text: &[u8], from: usize, to: usize, needle: &[u8]) -> Option<usize> {
    text.get(from..to.min(text.len()))?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// A PEM private key block, `-----BEGIN … PRIVATE KEY-----` to `-----END … PRIVATE KEY-----`,
/// at most [`PEM_MAX`] bytes. Without an end marker within that distance, the body (base64,
/// whitespace, JSON `\n` escapes) is masked, still at most [`PEM_MAX`] bytes.
pub(crate) fn private_key(st: &mut ScanState<'_>, start: usize, kind: KindId) {
    let text = st.text;
    match literal_at(text, start, b"-----BEGIN ", false) {
        LiteralMatch::Full => {}
        LiteralMatch::Partial => return st.pending(start),
        LiteralMatch::No => return,
    }
    let label_start = start + 11;
    let label_end = match bounded_run(text, label_start, 48, st.eof, |b| {
        b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' '
    }) {
        RunEnd::Closed(end) => end,
        RunEnd::Open => return st.pending(start),
        RunEnd::TooLong => return,
    };
    let label = text.get(label_start..label_end).unwrap_or(&[]);
    if !(label.ends_with(b"PRIVATE KEY") || label.ends_with(b"PRIVATE KEY BLOCK")) {
        return;
    }
    match literal_at(text, label_end, b"-----", false) {
        LiteralMatch::Full => {}
        LiteralMatch::Partial => return st.pending(start),
        LiteralMatch::No => return,
    }
    let header_end = label_end + 5;
    let limit = start.saturating_add(PEM_MAX);
    let search_from = header_end.max(st.pem_searched_until);
    if let Some(marker) = find(text, search_from, limit, b"-----END ") {
        let end_label = marker + 9;
        let end_label_end = run_end(text, end_label, 48, |b| {
            b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' '
        });
        if end_label_end >= text.len() && !st.eof {
            return st.pending(start);
        }
        let end = match literal_at(text, end_label_end, b"-----", false) {
            LiteralMatch::Full => end_label_end + 5,
            LiteralMatch::Partial => return st.pending(start),
            LiteralMatch::No => end_label_end,
        };
        return st.found(start, end.min(limit), kind);
    }
    st.pem_searched_until = limit.min(text.len()).saturating_sub(8).max(header_end);
    if limit > text.len() && !st.eof {
        return st.pending(start);
    }
    let body_cap = limit.saturating_sub(header_end);
    let mut body_end = run_end(text, header_end, body_cap, is_pem_body_byte).min(limit);
    // A block cut off inside a JSON string ends before an escaped quote: leave its backslash,
    // or the masked body would no longer be valid JSON.
    while body_end > header_end && text.get(body_end - 1) == Some(&b'\\') {
        body_end -= 1;
    }
    st.found(start, body_end, kind);
}

/// The host of Slack incoming webhooks; the anchor literal of [`slack_webhook`].
pub(crate) const SLACK_WEBHOOK_HOST: &[u8] = b"hooks.slack.com/";

/// A Slack webhook URL, `https://hooks.slack.com/{services,workflows,triggers}/<path>`, where
/// `hooks_start` is the index of `hooks`. The `https://` scheme is included in the finding.
pub(crate) fn slack_webhook(st: &mut ScanState<'_>, hooks_start: usize, kind: KindId) {
    let text = st.text;
    let head = text.get(..hooks_start).unwrap_or(&[]);
    let start = if head.ends_with(b"https://") {
        hooks_start - 8
    } else if head.ends_with(b"http://") {
        hooks_start - 7
    } else {
        hooks_start
    };
    match literal_at(text, hooks_start, SLACK_WEBHOOK_HOST, true) {
        LiteralMatch::Full => {}
        LiteralMatch::Partial => return st.pending(start),
        LiteralMatch::No => return,
    }
    let before = hooks_start
        .checked_sub(1)
        .and_then(|i| text.get(i))
        .copied();
    if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
        return;
    }
    let path = hooks_start + SLACK_WEBHOOK_HOST.len();
    let mut body = None;
    for section in [&b"services/"[..], b"workflows/", b"triggers/"] {
        match literal_at(text, path, section, false) {
            LiteralMatch::Full => body = Some(path + section.len()),
            LiteralMatch::Partial => return st.pending(start),
            LiteralMatch::No => {}
        }
    }
    let Some(body) = body else {
        return;
    };
    let end = match bounded_run(text, body, WEBHOOK_PATH_MAX, st.eof, |b| {
        is_base64url(b) || b == b'+' || b == b'/'
    }) {
        RunEnd::Closed(end) => end,
        RunEnd::Open => return st.pending(start),
        RunEnd::TooLong => return,
    };
    if end - body >= 20 {
        st.found(start, end, kind);
    }
}

/// A known literal secret at `start`, whatever surrounds it.
pub(crate) fn literal(st: &mut ScanState<'_>, start: usize, secret: &[u8], kind: KindId) {
    match literal_at(st.text, start, secret, false) {
        LiteralMatch::Full => st.found(start, start + secret.len(), kind),
        LiteralMatch::Partial => st.pending(start),
        LiteralMatch::No => {}
    }
}
