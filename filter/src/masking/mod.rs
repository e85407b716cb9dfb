//! Secret masking: finds credentials (provider API keys, tokens, JWTs, private keys,
//! `key=value` secrets, the gateway's own injected keys, custom shapes) in prompts, responses,
//! error bodies and log lines, and replaces them with a JSON-safe marker such as
//! `[REDACTED:openai_key …a1b2]`.
//!
//! Pure logic, no host calls. [`MaskEngine`] is compiled once from [`MaskSettings`] and scans in
//! one linear pass (first-byte prefilter, then bounded validators); [`StreamMasker`] does the
//! same over a chunked body with a bounded hold-back; [`mask_header_value`] and [`mask_query`]
//! mask log fields by name; [`PromptAction`] is the prompt policy.
//!
//! Stable kind names: `known_secret`, the entries of [`BUILTIN_KINDS`], custom pattern names,
//! and `generic_assignment`.

pub mod adversarial;
mod bytes;
mod detectors;
mod engine;
mod generic;
mod logging;
mod policy;
mod scan;
mod settings;
mod stream;
mod template;

#[cfg(test)]
mod corpus;
#[cfg(test)]
mod tests;

pub use detectors::{BUILTIN_KINDS, GENERIC_KIND, KNOWN_SECRET_KIND};
pub use engine::{Finding, FindingSummary, MaskEngine, Masked, STREAM_CONTEXT};
pub use generic::DEFAULT_ENTROPY_THRESHOLD;
pub use logging::{
    mask_header_value, mask_query, REDACTED, SENSITIVE_HEADERS, SENSITIVE_QUERY_PARAMS,
};
pub use policy::{apply_prompt_action, secret_kinds, PromptAction, PromptVerdict};
pub use settings::{CustomPattern, MaskSettings, MAX_CUSTOM_LEN, MAX_CUSTOM_PREFIX};
pub use stream::StreamMasker;
pub use template::{MaskTemplate, DEFAULT_TEMPLATE};
