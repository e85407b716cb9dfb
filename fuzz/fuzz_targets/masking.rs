//! Secret masking: the one-shot scanner and the `StreamMasker` over fuzz-chosen pieces, with
//! secrets planted in the text.
//!
//! The payload's bytes `0x01`..=`0x04` are replaced by planted secrets before scanning: two
//! known (literal) secrets, and two built-in shapes (a GitHub token and a Google API key) with a
//! space on each side. Selector bit 0 masks `key=value` assignments too (`generic_assignment` is
//! always on; the bit lowers its entropy threshold).
//!
//! Properties: the streamed output equals the one-shot output for any split, with the same
//! finding counts (differential); no planted secret survives (a built-in shape counts as planted
//! only with its surrounding spaces: glued to a word it is not a token).

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate::masking::{CustomPattern, FindingSummary, MaskEngine, MaskSettings, StreamMasker};
use tollgate_fuzz::{pieces, SplitInput};

const KNOWN: [&str; 2] = ["tg-known-Q7vX9pLm2R", "hunter2-but-longer-Zk3"];
const GITHUB: &str = "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8";
const GOOGLE: &str = "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q";

fn engines() -> &'static [MaskEngine; 2] {
    static ENGINES: OnceLock<[MaskEngine; 2]> = OnceLock::new();
    ENGINES.get_or_init(|| {
        let build = |threshold: f64| {
            let settings = MaskSettings {
                custom_patterns: vec![CustomPattern {
                    name: "acme_key".into(),
                    prefix: "acme_live_".into(),
                    charset: "alnum".into(),
                    min_len: 16,
                    max_len: 32,
                }],
                generic_entropy_threshold: threshold,
                ..MaskSettings::default()
            };
            MaskEngine::with_known_secrets(&settings, KNOWN.iter().map(|s| s.as_bytes()))
                .unwrap_or_else(|e| panic!("fixture settings refused: {e}"))
        };
        [build(3.0), build(1.0)]
    })
}

/// The payload with planted secrets, and the cut offsets mapped onto it.
fn plant(payload: &[u8], cuts: &[usize]) -> (Vec<u8>, Vec<usize>) {
    let mut text = Vec::with_capacity(payload.len() * 2);
    let mut mapped = Vec::with_capacity(cuts.len());
    let mut next_cut = cuts.iter().peekable();
    for (index, &byte) in payload.iter().enumerate() {
        while next_cut.peek().is_some_and(|&&c| c == index) {
            mapped.push(text.len());
            next_cut.next();
        }
        match byte {
            1 => text.extend_from_slice(KNOWN[0].as_bytes()),
            2 => text.extend_from_slice(KNOWN[1].as_bytes()),
            3 => text.extend_from_slice(format!(" {GITHUB} ").as_bytes()),
            4 => text.extend_from_slice(format!(" {GOOGLE} ").as_bytes()),
            other => text.push(other),
        }
    }
    mapped.extend(next_cut.map(|_| text.len()));
    (text, mapped)
}

fn sorted(mut summary: Vec<FindingSummary>) -> Vec<FindingSummary> {
    summary.sort_by(|a, b| a.kind.cmp(&b.kind));
    summary
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fuzz_target!(|data: &[u8]| {
    let input = SplitInput::decode(data);
    let engine = &engines()[usize::from(input.selector & 1)];
    let (text, cuts) = plant(input.payload, &input.cuts);

    let whole = engine.mask(&text);
    let mut masker = StreamMasker::new(engine);
    let mut streamed = Vec::new();
    for piece in pieces(&text, &cuts) {
        streamed.extend(masker.push(piece));
    }
    streamed.extend(masker.finish());

    assert!(
        streamed == whole.bytes.as_ref(),
        "split at {cuts:?} changed the output:\n stream {:?}\n whole  {:?}",
        String::from_utf8_lossy(&streamed),
        String::from_utf8_lossy(&whole.bytes)
    );
    assert_eq!(
        sorted(masker.findings().to_vec()),
        sorted(whole.findings.clone())
    );
    // Literal secrets are masked wherever they appear; a built-in shape only as a whole token
    // (glued to letters it is not one), so it is checked with the spaces it was planted with.
    let spaced = [format!(" {GITHUB} "), format!(" {GOOGLE} ")];
    for secret in KNOWN
        .iter()
        .copied()
        .chain(spaced.iter().map(String::as_str))
    {
        assert!(
            !contains(&whole.bytes, secret),
            "{secret} survived: {:?}",
            String::from_utf8_lossy(&whole.bytes)
        );
    }
});
