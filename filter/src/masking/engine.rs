//! `MaskEngine`: compiles the settings once into a first-byte prefilter table plus validators,
//! scans a buffer in one linear pass, merges overlapping findings and renders the masked output.
//!
//! The prefilter: every detector is keyed on one "anchor" byte at a fixed offset inside its
//! literal prefix, chosen as the rarest byte of the prefix (`k` of `sk-`, `J` of `eyJ`, `z` of
//! `AIza`, `=`/`:` for assignments, …). The scan loop does one table lookup per input byte and
//! runs the validators registered for that byte only; each validator looks at a bounded window,
//! so a scan is O(n) with a constant bounded by the longest window.

use std::borrow::Cow;
use std::ops::Range;

use serde::Serialize;

use super::bytes::rarest_byte;
use super::bytes::ByteSet;
use super::detectors::{
    self, SimplePattern, BEARER_MAX, BUILTIN_KINDS, GENERIC_KIND, JWT_HEADER_MAX, JWT_PAYLOAD_MAX,
    JWT_SIGNATURE_MAX, KNOWN_SECRET_KIND, PEM_MAX, SIMPLE_DEFS, SLACK_WEBHOOK_HOST,
    WEBHOOK_PATH_MAX,
};
use super::generic::{self, GenericKinds, GENERIC_REACH, KEY_MAX};
use super::scan::{Candidate, KindId, ScanState};
use super::settings::{
    parse_charset, validate_custom, validate_disabled, MaskSettings, MAX_KNOWN_SECRET_LEN,
    MIN_KNOWN_SECRET_LEN,
};
use super::template::MaskTemplate;

/// Bytes of already-forwarded input a stream keeps as left context for the detectors (key
/// names before `=`, the AWS key id before its secret). Larger than any backward look.
pub const STREAM_CONTEXT: usize = 512;

/// How far into a literal the anchor byte may be; bounds what a stream holds back before a
/// detector can even start.
const ANCHOR_SEARCH_LIMIT: usize = 16;

/// Kind id of `known_secret` (first in the kind table: highest priority).
const KNOWN_SECRET_ID: KindId = 0;

/// One secret found in the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Detector kind, e.g. `openai_key` (see [`BUILTIN_KINDS`]).
    pub kind: String,
    /// Byte range of the secret in the scanned input.
    pub range: Range<usize>,
}

/// How many secrets of one kind were masked; safe to log (holds no secret bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FindingSummary {
    /// Detector kind.
    pub kind: String,
    /// Number of findings of that kind.
    pub count: usize,
}

/// The result of [`MaskEngine::mask`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Masked<'a> {
    /// The input with every secret replaced; borrowed when nothing was found.
    pub bytes: Cow<'a, [u8]>,
    /// Counts per kind, in order of first appearance.
    pub findings: Vec<FindingSummary>,
}

impl Masked<'_> {
    /// Whether nothing was masked.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// Total number of masked secrets.
    pub fn total(&self) -> usize {
        self.findings.iter().map(|f| f.count).sum()
    }
}

/// Adds `count` findings of `kind` to a per-kind summary list.
pub(crate) fn add_to_summary(summary: &mut Vec<FindingSummary>, kind: &str, count: usize) {
    match summary.iter_mut().find(|s| s.kind == kind) {
        Some(entry) => entry.count += count,
        None => summary.push(FindingSummary {
            kind: kind.to_owned(),
            count,
        }),
    }
}

/// What a prefilter hit leads to.
#[derive(Clone, Copy, Debug)]
enum Target {
    Simple(usize),
    Literal(usize, KindId),
    Jwt(KindId),
    Bearer(KindId),
    PrivateKey(KindId),
    SlackWebhook(KindId),
    Generic(GenericKinds),
}

/// A validator keyed on an anchor byte found `offset` bytes into its literal prefix.
#[derive(Clone, Copy, Debug)]
struct Anchor {
    offset: usize,
    target: Target,
}

/// The result of a raw scan: allow-listed, de-overlapped candidates plus the streaming watermark.
pub(crate) struct ScanOutcome {
    /// Non-overlapping findings sorted by start.
    pub findings: Vec<Candidate>,
    /// Earliest start whose verdict needs more input (`usize::MAX` if none; always at eof).
    pub pending_from: usize,
}

/// A compiled secret masker. Build it once per configuration and share it (it is immutable).
#[derive(Clone, Debug)]
pub struct MaskEngine {
    kinds: Vec<String>,
    anchor_group: [u16; 256],
    groups: Vec<Vec<Anchor>>,
    simple: Vec<SimplePattern>,
    literals: Vec<Vec<u8>>,
    allow_values: Vec<Vec<u8>>,
    allow_prefixes: Vec<Vec<u8>>,
    template: MaskTemplate,
    entropy_threshold: f64,
    max_lead: usize,
    max_reach: usize,
}

impl AsRef<MaskEngine> for MaskEngine {
    fn as_ref(&self) -> &MaskEngine {
        self
    }
}

impl MaskEngine {
    /// Compiles `settings` with no known literal secrets.
    pub fn new(settings: &MaskSettings) -> Result<MaskEngine, String> {
        Self::with_known_secrets(settings, std::iter::empty::<&[u8]>())
    }

    /// Compiles `settings` plus literal secrets (the provider keys the gateway injects) that
    /// are masked wherever they appear, whatever their shape, as `known_secret`. Each must be
    /// 8–1024 bytes.
    pub fn with_known_secrets<I, S>(settings: &MaskSettings, known: I) -> Result<MaskEngine, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let template = MaskTemplate::parse(&settings.template)?;
        let threshold = settings.generic_entropy_threshold;
        if !threshold.is_finite() || !(0.0..=8.0).contains(&threshold) {
            return Err(format!(
                "generic_entropy_threshold must be between 0 and 8, got {threshold}"
            ));
        }
        for name in &settings.disabled_detectors {
            validate_disabled(name)?;
        }
        let enabled = |name: &str| !settings.disabled_detectors.iter().any(|d| d == name);

        let mut kinds: Vec<String> = vec![KNOWN_SECRET_KIND.to_owned()];
        kinds.extend(BUILTIN_KINDS.iter().map(|k| (*k).to_owned()));
        for pattern in &settings.custom_patterns {
            validate_custom(pattern)?;
            if kinds.contains(&pattern.name) {
                return Err(format!(
                    "custom pattern name {:?} is used twice",
                    pattern.name
                ));
            }
            kinds.push(pattern.name.clone());
        }
        kinds.push(GENERIC_KIND.to_owned());
        let kind_id = |name: &str| -> Result<KindId, String> {
            kinds
                .iter()
                .position(|k| k == name)
                .and_then(|i| KindId::try_from(i).ok())
                .ok_or_else(|| format!("internal: unknown kind {name}"))
        };
        let known_id = kind_id(KNOWN_SECRET_KIND)?;
        let aws_secret_id = if enabled("aws_secret_key") {
            Some(kind_id("aws_secret_key")?)
        } else {
            None
        };

        let mut simple = Vec::new();
        for def in SIMPLE_DEFS.iter().filter(|d| enabled(d.kind)) {
            let kind = kind_id(def.kind)?;
            for prefix in def.prefixes {
                simple.push(SimplePattern {
                    kind,
                    prefix: prefix.as_bytes().to_vec(),
                    charset: ByteSet::from_fn(def.charset),
                    min: def.min,
                    max: def.max,
                    shape: def.shape,
                    aws_secret_after: if def.kind == "aws_access_key_id" {
                        aws_secret_id
                    } else {
                        None
                    },
                });
            }
        }
        for pattern in &settings.custom_patterns {
            let charset = parse_charset(&pattern.charset)
                .map_err(|e| format!("custom pattern {:?}: {e}", pattern.name))?;
            simple.push(SimplePattern {
                kind: kind_id(&pattern.name)?,
                prefix: pattern.prefix.as_bytes().to_vec(),
                charset,
                min: pattern.min_len,
                max: pattern.max_len,
                shape: detectors::Shape::Any,
                aws_secret_after: None,
            });
        }

        let mut literals = Vec::new();
        for secret in known {
            let secret = secret.as_ref();
            if secret.len() < MIN_KNOWN_SECRET_LEN || secret.len() > MAX_KNOWN_SECRET_LEN {
                return Err(format!(
                    "known secrets must be {MIN_KNOWN_SECRET_LEN}-{MAX_KNOWN_SECRET_LEN} bytes long, got one of {} bytes",
                    secret.len()
                ));
            }
            if !literals.iter().any(|l: &Vec<u8>| l == secret) {
                literals.push(secret.to_vec());
            }
        }

        let mut builder = AnchorBuilder::default();
        for (index, pattern) in simple.iter().enumerate() {
            builder.add_literal(&pattern.prefix, false, Target::Simple(index));
        }
        for (index, secret) in literals.iter().enumerate() {
            builder.add_literal(secret, false, Target::Literal(index, known_id));
        }
        if enabled("jwt") {
            builder.add_literal(b"eyJ", false, Target::Jwt(kind_id("jwt")?));
        }
        if enabled("bearer_token") {
            builder.add_literal(b"bearer", true, Target::Bearer(kind_id("bearer_token")?));
        }
        if enabled("private_key") {
            let kind = kind_id("private_key")?;
            builder.add_literal(b"-----BEGIN ", false, Target::PrivateKey(kind));
        }
        if enabled("slack_webhook") {
            let kind = kind_id("slack_webhook")?;
            builder.add_literal(SLACK_WEBHOOK_HOST, true, Target::SlackWebhook(kind));
        }
        if enabled(GENERIC_KIND) {
            let kinds = GenericKinds {
                generic: kind_id(GENERIC_KIND)?,
                aws_secret: aws_secret_id,
            };
            builder.add_at(b'=', 0, Target::Generic(kinds));
            builder.add_at(b':', 0, Target::Generic(kinds));
        }

        // Scheme `https://` (8 bytes) may precede a webhook host: count it in the lead.
        let max_lead = builder.max_offset + "https://".len() + 1;
        let max_reach = [
            PEM_MAX + 64,
            JWT_HEADER_MAX + JWT_PAYLOAD_MAX + JWT_SIGNATURE_MAX + 8,
            "bearer".len() + 4 + BEARER_MAX + 1,
            KEY_MAX + GENERIC_REACH,
            "https://".len() + SLACK_WEBHOOK_HOST.len() + 10 + WEBHOOK_PATH_MAX + 1,
            literals.iter().map(Vec::len).max().unwrap_or(0),
            simple.iter().map(SimplePattern::reach).max().unwrap_or(0),
        ]
        .into_iter()
        .max()
        .unwrap_or(0);

        Ok(MaskEngine {
            kinds,
            anchor_group: builder.table,
            groups: builder.groups,
            simple,
            literals,
            allow_values: settings
                .allow_values
                .iter()
                .map(|v| v.as_bytes().to_vec())
                .collect(),
            allow_prefixes: settings
                .allow_prefixes
                .iter()
                .filter(|p| !p.is_empty())
                .map(|v| v.as_bytes().to_vec())
                .collect(),
            template,
            entropy_threshold: threshold,
            max_lead,
            max_reach,
        })
    }

    /// Longest stretch a [`super::StreamMasker`] may hold back beyond its left context: the
    /// largest window any detector needs (about 8 KiB, set by the PEM block cap).
    pub fn max_holdback(&self) -> usize {
        self.max_reach.max(self.max_lead)
    }

    /// Bytes at the end of a stream buffer that are always held back (a secret whose anchor
    /// byte has not arrived yet may start there).
    pub(crate) fn max_lead(&self) -> usize {
        self.max_lead
    }

    /// Name of a kind id.
    pub(crate) fn kind_name(&self, kind: KindId) -> &str {
        self.kinds
            .get(usize::from(kind))
            .map_or(GENERIC_KIND, String::as_str)
    }

    /// Every secret in `text`, non-overlapping, sorted by position.
    pub fn scan(&self, text: &[u8]) -> Vec<Finding> {
        self.scan_raw(text, true)
            .findings
            .into_iter()
            .map(|c| Finding {
                kind: self.kind_name(c.kind).to_owned(),
                range: c.start..c.end,
            })
            .collect()
    }

    /// `text` with every secret replaced by the template, plus counts per kind.
    pub fn mask<'a>(&self, text: &'a [u8]) -> Masked<'a> {
        let outcome = self.scan_raw(text, true);
        if outcome.findings.is_empty() {
            return Masked {
                bytes: Cow::Borrowed(text),
                findings: Vec::new(),
            };
        }
        let mut out = Vec::with_capacity(text.len() + 32 * outcome.findings.len());
        let mut summary = Vec::new();
        self.render(
            text,
            0,
            text.len(),
            &outcome.findings,
            &mut out,
            &mut summary,
        );
        Masked {
            bytes: Cow::Owned(out),
            findings: summary,
        }
    }

    /// [`MaskEngine::mask`] for text; the output is valid UTF-8 whenever the input is (secrets
    /// are ASCII and begin and end on ASCII bytes).
    pub fn mask_str<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.mask(text.as_bytes()).bytes {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            Cow::Owned(bytes) => Cow::Owned(match String::from_utf8(bytes) {
                Ok(s) => s,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            }),
        }
    }

    /// Writes `text[from..to]` to `out` with `findings` (sorted, non-overlapping) replaced,
    /// clipping findings to the range, and counts them into `summary`.
    pub(crate) fn render(
        &self,
        text: &[u8],
        from: usize,
        to: usize,
        findings: &[Candidate],
        out: &mut Vec<u8>,
        summary: &mut Vec<FindingSummary>,
    ) {
        let mut pos = from;
        for finding in findings {
            if finding.end <= from {
                continue;
            }
            // A finding reaching back before `from` is clipped to it; one whose clipped part is
            // empty is someone else's to render (a stream renders it in a later drain).
            if finding.start.max(from) >= to {
                break;
            }
            let start = finding.start.max(pos);
            let end = finding.end.min(to);
            out.extend_from_slice(text.get(pos..start).unwrap_or(&[]));
            let kind = self.kind_name(finding.kind);
            let secret = text.get(finding.start..finding.end).unwrap_or(&[]);
            self.template.render(out, kind, secret);
            add_to_summary(summary, kind, 1);
            pos = end;
        }
        out.extend_from_slice(text.get(pos..to).unwrap_or(&[]));
    }

    /// One pass over `text`: prefilter, validators, allow-list, overlap resolution. With `eof == false` the
    /// outcome also says from where on the verdict may still change when more bytes arrive.
    pub(crate) fn scan_raw(&self, text: &[u8], eof: bool) -> ScanOutcome {
        let mut st = ScanState::new(text, eof);
        for (i, &b) in text.iter().enumerate() {
            let group = self.anchor_group.get(usize::from(b)).copied().unwrap_or(0);
            if group == 0 {
                continue;
            }
            if let Some(anchors) = self.groups.get(usize::from(group) - 1) {
                for anchor in anchors {
                    if let Some(start) = i.checked_sub(anchor.offset) {
                        self.run_target(&mut st, start, anchor.target);
                    }
                }
            }
        }
        let ScanState {
            mut candidates,
            pending_from,
            ..
        } = st;
        candidates
            .retain(|c| c.kind == KNOWN_SECRET_ID || !self.is_allowed(text.get(c.start..c.end)));
        candidates.sort_unstable_by_key(|c| (c.start, c.kind));
        // Overlaps: the earliest (then highest-priority) candidate wins; a later one that
        // reaches further keeps only its part past the winner. Unlike a union, this keeps every
        // finding within one detector's window, which bounds what a stream holds back.
        let mut findings: Vec<Candidate> = Vec::with_capacity(candidates.len());
        for c in candidates {
            let floor = findings.last().map_or(0, |last| last.end);
            if c.end > floor {
                findings.push(Candidate {
                    start: c.start.max(floor),
                    ..c
                });
            }
        }
        ScanOutcome {
            findings,
            pending_from,
        }
    }

    fn run_target(&self, st: &mut ScanState<'_>, start: usize, target: Target) {
        match target {
            Target::Simple(index) => {
                if let Some(pattern) = self.simple.get(index) {
                    pattern.check(st, start);
                }
            }
            Target::Literal(index, kind) => {
                if let Some(secret) = self.literals.get(index) {
                    detectors::literal(st, start, secret, kind);
                }
            }
            Target::Jwt(kind) => detectors::jwt(st, start, kind),
            Target::Bearer(kind) => detectors::bearer(st, start, kind),
            Target::PrivateKey(kind) => detectors::private_key(st, start, kind),
            Target::SlackWebhook(kind) => detectors::slack_webhook(st, start, kind),
            Target::Generic(kinds) => {
                generic::generic_assignment(st, start, kinds, self.entropy_threshold)
            }
        }
    }

    fn is_allowed(&self, value: Option<&[u8]>) -> bool {
        let Some(value) = value else {
            return false;
        };
        self.allow_values.iter().any(|a| a == value)
            || self.allow_prefixes.iter().any(|p| value.starts_with(p))
    }
}

/// Builds the anchor byte table.
struct AnchorBuilder {
    table: [u16; 256],
    groups: Vec<Vec<Anchor>>,
    max_offset: usize,
}

impl Default for AnchorBuilder {
    fn default() -> Self {
        AnchorBuilder {
            table: [0; 256],
            groups: Vec::new(),
            max_offset: 0,
        }
    }
}

impl AnchorBuilder {
    /// Keys `target` on the rarest byte of `literal` (both cases when `ignore_case`).
    fn add_literal(&mut self, literal: &[u8], ignore_case: bool, target: Target) {
        let Some((offset, byte)) = rarest_byte(literal, ANCHOR_SEARCH_LIMIT) else {
            return;
        };
        if ignore_case && byte.is_ascii_alphabetic() {
            self.add_at(byte.to_ascii_lowercase(), offset, target);
            self.add_at(byte.to_ascii_uppercase(), offset, target);
        } else {
            self.add_at(byte, offset, target);
        }
    }

    fn add_at(&mut self, byte: u8, offset: usize, target: Target) {
        self.max_offset = self.max_offset.max(offset);
        let Some(slot) = self.table.get_mut(usize::from(byte)) else {
            return;
        };
        if *slot == 0 {
            self.groups.push(Vec::new());
            *slot = u16::try_from(self.groups.len()).unwrap_or(0);
        }
        if let Some(group) = self.groups.get_mut(usize::from(*slot).wrapping_sub(1)) {
            group.push(Anchor { offset, target });
        }
    }
}
