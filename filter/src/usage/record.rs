//! The canonical token-usage record every provider's report is normalised into.
//!
//! Providers disagree on what their counters include (cache reads inside or outside the prompt
//! count, thinking tokens inside or outside the completion count). This module owns the one
//! meaning the rest of the filter relies on, and the per-provider mapping into it. It does no
//! parsing: the extractors hand it plain numbers.

/// Token usage of one request, with one meaning whatever the provider.
///
/// Semantics:
/// - `input_tokens` is the whole prompt, cache reads and cache writes included.
/// - `output_tokens` is everything generated, reasoning/thinking tokens included.
/// - `cached_input_tokens` and `cache_creation_input_tokens` are the parts of `input_tokens`
///   read from / written to the provider's prompt cache.
/// - `reasoning_tokens` is the part of `output_tokens` spent on reasoning.
/// - `total_tokens` is the provider's total when it reports one, otherwise input + output.
///
/// Mapping per provider (see the `from_*` constructors):
/// - OpenAI Chat Completions: `prompt_tokens` already includes
///   `prompt_tokens_details.cached_tokens`; `completion_tokens` already includes
///   `completion_tokens_details.reasoning_tokens`. Taken as is.
/// - OpenAI Responses: `input_tokens` includes `input_tokens_details.cached_tokens`;
///   `output_tokens` includes `output_tokens_details.reasoning_tokens`. Taken as is.
/// - OpenAI Embeddings: `prompt_tokens` only; output is zero.
/// - Anthropic Messages: `input_tokens` EXCLUDES cache tokens, so canonical input is
///   `input_tokens + cache_read_input_tokens + cache_creation_input_tokens`. Anthropic does not
///   report thinking tokens separately (they are inside `output_tokens`).
/// - Gemini: `promptTokenCount` includes `cachedContentTokenCount`; `candidatesTokenCount`
///   EXCLUDES `thoughtsTokenCount`, so canonical output is candidates + thoughts. Tokens of
///   tool-use prompts (`toolUsePromptTokenCount`) are input the model processed, so they are
///   added to the input.
/// - Ollama native: `prompt_eval_count` is input, `eval_count` is output (thinking included).
///   Ollama reports no cache counters; a missing `prompt_eval_count` (fully cached prompt on
///   some versions) counts as zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Whole prompt, cached parts included.
    pub input_tokens: u64,
    /// Everything generated, reasoning included.
    pub output_tokens: u64,
    /// Part of `input_tokens` served from the prompt cache.
    pub cached_input_tokens: u64,
    /// Part of `input_tokens` written into the prompt cache (Anthropic).
    pub cache_creation_input_tokens: u64,
    /// Part of `output_tokens` spent on reasoning/thinking.
    pub reasoning_tokens: u64,
    /// Provider-reported total, or input + output when none was reported.
    pub total_tokens: u64,
}

impl Usage {
    /// Builds a record from OpenAI Chat Completions counters (`prompt_tokens`,
    /// `completion_tokens`, `total_tokens`, cached and reasoning details).
    pub fn from_openai_chat(
        prompt_tokens: u64,
        completion_tokens: u64,
        total_tokens: Option<u64>,
        cached_tokens: u64,
        reasoning_tokens: u64,
    ) -> Self {
        Self {
            input_tokens: prompt_tokens,
            output_tokens: completion_tokens,
            cached_input_tokens: cached_tokens,
            cache_creation_input_tokens: 0,
            reasoning_tokens,
            total_tokens: total_or_sum(total_tokens, prompt_tokens, completion_tokens),
        }
    }

    /// Builds a record from OpenAI Responses counters (`input_tokens`, `output_tokens`,
    /// `total_tokens`, cached and reasoning details); same inclusions as Chat Completions.
    pub fn from_openai_responses(
        input_tokens: u64,
        output_tokens: u64,
        total_tokens: Option<u64>,
        cached_tokens: u64,
        reasoning_tokens: u64,
    ) -> Self {
        Self::from_openai_chat(
            input_tokens,
            output_tokens,
            total_tokens,
            cached_tokens,
            reasoning_tokens,
        )
    }

    /// Builds a record from Anthropic counters, adding the cache counters into the input.
    pub fn from_anthropic(
        input_tokens: u64,
        output_tokens: u64,
        cache_read_input_tokens: u64,
        cache_creation_input_tokens: u64,
    ) -> Self {
        let input = input_tokens
            .saturating_add(cache_read_input_tokens)
            .saturating_add(cache_creation_input_tokens);
        Self {
            input_tokens: input,
            output_tokens,
            cached_input_tokens: cache_read_input_tokens,
            cache_creation_input_tokens,
            reasoning_tokens: 0,
            total_tokens: input.saturating_add(output_tokens),
        }
    }

    /// Builds a record from Gemini `usageMetadata`, adding thoughts into the output and tool-use
    /// prompt tokens into the input.
    pub fn from_gemini(
        prompt_token_count: u64,
        candidates_token_count: u64,
        thoughts_token_count: u64,
        tool_use_prompt_token_count: u64,
        cached_content_token_count: u64,
        total_token_count: Option<u64>,
    ) -> Self {
        let input = prompt_token_count.saturating_add(tool_use_prompt_token_count);
        let output = candidates_token_count.saturating_add(thoughts_token_count);
        Self {
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached_content_token_count,
            cache_creation_input_tokens: 0,
            reasoning_tokens: thoughts_token_count,
            total_tokens: total_or_sum(total_token_count, input, output),
        }
    }

    /// Builds a record from Ollama native counters (`prompt_eval_count`, `eval_count`).
    pub fn from_ollama(prompt_eval_count: u64, eval_count: u64) -> Self {
        Self {
            input_tokens: prompt_eval_count,
            output_tokens: eval_count,
            total_tokens: prompt_eval_count.saturating_add(eval_count),
            ..Self::default()
        }
    }

    /// Builds an estimated record from a prompt estimate and an output estimate.
    pub fn estimated(input_tokens: u64, output_tokens: u64) -> Self {
        Self {
            input_tokens,
            output_tokens,
            total_tokens: input_tokens.saturating_add(output_tokens),
            ..Self::default()
        }
    }

    /// Input tokens billed at the full input price: input minus cache reads and cache writes.
    pub fn uncached_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_sub(self.cached_input_tokens)
            .saturating_sub(self.cache_creation_input_tokens)
    }
}

/// Characters per token used by every estimate in this module (a common rule of thumb for
/// English text with BPE tokenizers).
pub const CHARS_PER_TOKEN: u64 = 4;

/// Estimates a token count from a character (or byte) count: `ceil(chars / 4)`.
pub fn tokens_from_chars(chars: u64) -> u64 {
    chars.div_ceil(CHARS_PER_TOKEN)
}

fn total_or_sum(total: Option<u64>, input: u64, output: u64) -> u64 {
    match total {
        Some(t) if t > 0 => t,
        _ => input.saturating_add(output),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_input_adds_cache_counters() {
        let u = Usage::from_anthropic(10, 5, 100, 20);
        assert_eq!(u.input_tokens, 130);
        assert_eq!(u.cached_input_tokens, 100);
        assert_eq!(u.cache_creation_input_tokens, 20);
        assert_eq!(u.uncached_input_tokens(), 10);
        assert_eq!(u.total_tokens, 135);
    }

    #[test]
    fn gemini_output_adds_thoughts() {
        let u = Usage::from_gemini(10, 5, 7, 0, 4, Some(22));
        assert_eq!(u.output_tokens, 12);
        assert_eq!(u.reasoning_tokens, 7);
        assert_eq!(u.cached_input_tokens, 4);
        assert_eq!(u.total_tokens, 22);
    }

    #[test]
    fn openai_total_falls_back_to_sum() {
        let u = Usage::from_openai_chat(3, 4, None, 0, 0);
        assert_eq!(u.total_tokens, 7);
    }

    #[test]
    fn char_estimate_rounds_up() {
        assert_eq!(tokens_from_chars(0), 0);
        assert_eq!(tokens_from_chars(1), 1);
        assert_eq!(tokens_from_chars(8), 2);
        assert_eq!(tokens_from_chars(9), 3);
    }
}
