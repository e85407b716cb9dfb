//! Tool-call ids across providers.
//!
//! Gemini function calls usually carry no id, so tollgate makes one up; it may also attach an
//! opaque `thoughtSignature` that must be sent back with the call on the next turn. The OpenAI
//! client echoes tool-call ids verbatim, so the signature rides inside the id
//! (`<id>__thought__<signature>`) and is split off again when the conversation comes back.
//! Anthropic accepts only `[A-Za-z0-9_-]` in tool ids, so ids are sanitised for it.

/// Separator between a tool-call id and an embedded Gemini thought signature.
pub const THOUGHT_SIGNATURE_SEPARATOR: &str = "__thought__";

/// Builds the OpenAI tool-call id for a Gemini function call.
///
/// `gemini_id` is the call's own id when Gemini sent one; otherwise the id is
/// `call_<base>_<ordinal>`. A thought signature, when present, is appended after
/// [`THOUGHT_SIGNATURE_SEPARATOR`].
pub fn gemini_tool_call_id(
    base: &str,
    ordinal: usize,
    gemini_id: Option<&str>,
    thought_signature: Option<&str>,
) -> String {
    let mut id = match gemini_id {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => format!("call_{}_{ordinal}", sanitize_id_part(base)),
    };
    if let Some(signature) = thought_signature.filter(|s| !s.is_empty()) {
        id.push_str(THOUGHT_SIGNATURE_SEPARATOR);
        id.push_str(signature);
    }
    id
}

/// Splits an id made by [`gemini_tool_call_id`] into the plain id and the thought signature.
pub fn split_thought_signature(id: &str) -> (&str, Option<&str>) {
    match id.split_once(THOUGHT_SIGNATURE_SEPARATOR) {
        Some((plain, signature)) if !signature.is_empty() => (plain, Some(signature)),
        Some((plain, _)) => (plain, None),
        None => (id, None),
    }
}

/// Rewrites an id so Anthropic accepts it: the thought signature is dropped and every character
/// outside `[A-Za-z0-9_-]` becomes `_`. Deterministic, so calls and results still match.
pub fn anthropic_safe_id(id: &str) -> String {
    let (plain, _) = split_thought_signature(id);
    let cleaned = sanitize_id_part(plain);
    if cleaned.is_empty() {
        "call_".to_string()
    } else {
        cleaned
    }
}

fn sanitize_id_part(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A short stable hex digest (64-bit FNV-1a), used to name tool calls of responses that carry
/// no id of their own.
pub fn short_digest(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}
