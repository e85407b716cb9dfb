//! What to do with secrets found in a prompt: nothing, redact them, or block the request. A
//! block verdict names the kinds found and never the values.

use serde::{Deserialize, Serialize};

use super::engine::{MaskEngine, Masked};

/// Policy for secrets in request bodies (prompts). Serialized as `"off"`, `"redact"`, `"block"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum PromptAction {
    /// Do not scan prompts.
    #[default]
    Off,
    /// Replace secrets before forwarding.
    Redact,
    /// Refuse the request when a secret is found.
    Block,
}

/// The outcome of applying a [`PromptAction`] to a body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromptVerdict<'a> {
    /// Forward the body unchanged (policy off, or nothing found).
    Forward,
    /// Forward this masked body instead.
    Redacted(Masked<'a>),
    /// Refuse the request; these kinds were found (sorted, unique; no values).
    Blocked {
        /// Kinds of the secrets found.
        kinds: Vec<String>,
    },
}

/// The kinds of secrets in `body`, sorted and unique: what a block reply may mention.
pub fn secret_kinds(engine: &MaskEngine, body: &[u8]) -> Vec<String> {
    // Few distinct kinds: each kept in place, sorted, as it is found.
    let mut kinds: Vec<String> = Vec::new();
    for finding in engine.scan(body) {
        if let Err(at) = kinds.binary_search(&finding.kind) {
            kinds.insert(at, finding.kind);
        }
    }
    kinds
}

/// Applies `action` to a prompt body.
pub fn apply_prompt_action<'a>(
    engine: &MaskEngine,
    action: PromptAction,
    body: &'a [u8],
) -> PromptVerdict<'a> {
    match action {
        PromptAction::Off => PromptVerdict::Forward,
        PromptAction::Redact => {
            let masked = engine.mask(body);
            if masked.is_clean() {
                PromptVerdict::Forward
            } else {
                PromptVerdict::Redacted(masked)
            }
        }
        PromptAction::Block => {
            let kinds = secret_kinds(engine, body);
            if kinds.is_empty() {
                PromptVerdict::Forward
            } else {
                PromptVerdict::Blocked { kinds }
            }
        }
    }
}
