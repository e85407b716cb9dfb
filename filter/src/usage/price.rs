//! Turning canonical usage into money: a per-model price table (prices per million tokens) and
//! the cost of one [`Usage`].

use super::record::Usage;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Prices of one model, in currency units per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Price of uncached input tokens.
    pub input_per_million: f64,
    /// Price of output tokens (reasoning included).
    pub output_per_million: f64,
    /// Price of input tokens read from the prompt cache; the input price when absent.
    #[serde(default)]
    pub cached_input_per_million: Option<f64>,
    /// Price of input tokens written to the prompt cache (Anthropic); the input price when absent.
    #[serde(default)]
    pub cache_write_per_million: Option<f64>,
}

impl ModelPrice {
    /// Creates a price with input, output and cached-input prices per million tokens.
    pub fn new(input_per_million: f64, output_per_million: f64, cached_per_million: f64) -> Self {
        Self {
            input_per_million,
            output_per_million,
            cached_input_per_million: Some(cached_per_million),
            cache_write_per_million: None,
        }
    }

    /// Cost of `usage`: cache reads at the cached price, cache writes at the cache-write price,
    /// the rest of the input at the input price, and the output at the output price.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let cached_price = self
            .cached_input_per_million
            .unwrap_or(self.input_per_million);
        let write_price = self
            .cache_write_per_million
            .unwrap_or(self.input_per_million);
        let micro = usage.uncached_input_tokens() as f64 * self.input_per_million
            + usage.cached_input_tokens as f64 * cached_price
            + usage.cache_creation_input_tokens as f64 * write_price
            + usage.output_tokens as f64 * self.output_per_million;
        micro / 1_000_000.0
    }
}

/// Prices by model name. Lookup tries the exact model name first, then the longest entry that
/// is a prefix of it (so `gpt-4o` prices `gpt-4o-2024-08-06` unless that has its own entry).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable {
    prices: BTreeMap<String, ModelPrice>,
}

impl PriceTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the price of a model name (also used as a prefix).
    pub fn insert(&mut self, model: impl Into<String>, price: ModelPrice) {
        self.prices.insert(model.into(), price);
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.prices.len()
    }

    /// True when the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.prices.is_empty()
    }

    /// The price of `model`: exact entry, else the longest entry that prefixes it.
    pub fn lookup(&self, model: &str) -> Option<&ModelPrice> {
        if let Some(p) = self.prices.get(model) {
            return Some(p);
        }
        model
            .char_indices()
            .rev()
            .filter_map(|(i, _)| model.get(..i))
            .filter(|prefix| !prefix.is_empty())
            .find_map(|prefix| self.prices.get(prefix))
    }

    /// Cost of `usage` for `model`, or `None` when the model has no price.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<f64> {
        self.lookup(model).map(|p| p.cost(usage))
    }
}

impl FromIterator<(String, ModelPrice)> for PriceTable {
    fn from_iter<T: IntoIterator<Item = (String, ModelPrice)>>(iter: T) -> Self {
        Self {
            prices: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn table() -> PriceTable {
        let mut t = PriceTable::new();
        t.insert("gpt-4o", ModelPrice::new(2.5, 10.0, 1.25));
        t.insert("gpt-4o-mini", ModelPrice::new(0.15, 0.6, 0.075));
        t.insert("gpt-4o-mini-2024-07-18", ModelPrice::new(1.0, 1.0, 1.0));
        t
    }

    #[test]
    fn exact_then_longest_prefix() {
        let t = table();
        assert_eq!(
            t.lookup("gpt-4o-mini-2024-07-18")
                .unwrap()
                .input_per_million,
            1.0
        );
        assert_eq!(
            t.lookup("gpt-4o-mini-2099").unwrap().input_per_million,
            0.15
        );
        assert_eq!(
            t.lookup("gpt-4o-2024-08-06").unwrap().input_per_million,
            2.5
        );
        assert!(t.lookup("gpt-4").is_none());
        assert!(t.lookup("").is_none());
        assert!(t.lookup("é").is_none());
    }

    #[test]
    fn cached_input_billed_at_cached_price() {
        let usage = Usage::from_openai_chat(1_000_000, 1_000_000, None, 400_000, 0);
        let cost = table().cost("gpt-4o", &usage).unwrap();
        // 600k * 2.5 + 400k * 1.25 + 1M * 10 (per million)
        assert!((cost - (1.5 + 0.5 + 10.0)).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn cache_writes_default_to_input_price() {
        let price = ModelPrice {
            input_per_million: 3.0,
            output_per_million: 15.0,
            cached_input_per_million: Some(0.3),
            cache_write_per_million: Some(3.75),
        };
        let usage = Usage::from_anthropic(1_000_000, 0, 1_000_000, 1_000_000);
        assert!((price.cost(&usage) - (3.0 + 0.3 + 3.75)).abs() < 1e-9);
        let plain = ModelPrice {
            cache_write_per_million: None,
            ..price
        };
        assert!((plain.cost(&usage) - (3.0 + 0.3 + 3.0)).abs() < 1e-9);
    }
}
