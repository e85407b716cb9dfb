//! The replacement text written in place of a secret: a small template with `{kind}` and
//! `{last4}` placeholders, validated so that a replacement can never break a JSON string.

/// The default replacement, e.g. `[REDACTED:openai_key …a1b2]`.
pub const DEFAULT_TEMPLATE: &str = "[REDACTED:{kind} …{last4}]";

/// Longest accepted template, in bytes (keeps the output growth per finding bounded).
pub const MAX_TEMPLATE_LEN: usize = 128;

/// Secrets shorter than this never reveal their last four bytes: `{last4}` renders as `****`.
pub const MIN_LEN_FOR_LAST4: usize = 16;

/// One piece of a parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Text(String),
    Kind,
    Last4,
}

/// A parsed, validated replacement template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaskTemplate {
    segments: Vec<Segment>,
}

impl Default for MaskTemplate {
    fn default() -> Self {
        MaskTemplate {
            segments: vec![
                Segment::Text("[REDACTED:".to_owned()),
                Segment::Kind,
                Segment::Text(" …".to_owned()),
                Segment::Last4,
                Segment::Text("]".to_owned()),
            ],
        }
    }
}

impl MaskTemplate {
    /// Parses a template. Rejects empty or over-long templates, `"`, `\`, control characters,
    /// and any `{`/`}` that is not part of a `{kind}` or `{last4}` placeholder, so that the
    /// rendered replacement is always safe inside a JSON string and a log line.
    pub fn parse(template: &str) -> Result<Self, String> {
        if template.is_empty() {
            return Err("mask template must not be empty".to_owned());
        }
        if template.len() > MAX_TEMPLATE_LEN {
            return Err(format!(
                "mask template is longer than {MAX_TEMPLATE_LEN} bytes"
            ));
        }
        if let Some(bad) = template
            .chars()
            .find(|&c| c == '"' || c == '\\' || c.is_control())
        {
            return Err(format!(
                "mask template must not contain {bad:?} (it must stay valid inside a JSON string)"
            ));
        }
        let mut segments = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("{kind}") {
                segments.push(Segment::Kind);
                rest = after;
                continue;
            }
            if let Some(after) = rest.strip_prefix("{last4}") {
                segments.push(Segment::Last4);
                rest = after;
                continue;
            }
            let stop = rest
                .char_indices()
                .skip(1)
                .find(|&(_, c)| c == '{' || c == '}')
                .map_or(rest.len(), |(i, _)| i);
            let (text, after) = rest.split_at_checked(stop).unwrap_or((rest, ""));
            if text.starts_with('{') || text.starts_with('}') {
                return Err(format!(
                    "mask template has an unknown placeholder near {text:?}: only {{kind}} and {{last4}} are supported"
                ));
            }
            segments.push(Segment::Text(text.to_owned()));
            rest = after;
        }
        Ok(MaskTemplate { segments })
    }

    /// Appends the replacement for `secret` of kind `kind` to `out`.
    pub fn render(&self, out: &mut Vec<u8>, kind: &str, secret: &[u8]) {
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => out.extend_from_slice(text.as_bytes()),
                Segment::Kind => out.extend_from_slice(kind.as_bytes()),
                Segment::Last4 => push_last4(out, secret),
            }
        }
    }

    /// Upper bound of the rendered length for a kind name of `kind_len` bytes.
    pub fn max_rendered_len(&self, kind_len: usize) -> usize {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Text(t) => t.len(),
                Segment::Kind => kind_len,
                Segment::Last4 => 4,
            })
            .sum()
    }
}

/// Writes the last four bytes of `secret`, each non-alphanumeric byte shown as `*`; secrets
/// shorter than [`MIN_LEN_FOR_LAST4`] show `****` so that little of a short secret leaks.
pub(crate) fn push_last4(out: &mut Vec<u8>, secret: &[u8]) {
    let tail = if secret.len() >= MIN_LEN_FOR_LAST4 {
        secret.get(secret.len() - 4..).unwrap_or(&[])
    } else {
        &[]
    };
    if tail.is_empty() {
        out.extend_from_slice(b"****");
        return;
    }
    out.extend(
        tail.iter()
            .map(|&b| if b.is_ascii_alphanumeric() { b } else { b'*' }),
    );
}
