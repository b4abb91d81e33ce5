//! What tokens cost: a price table shipped for the common models of each provider, which the
//! configuration can extend or override (`[prices."MODEL"]`). Used to put a figure in dollars on
//! what the cache saved, and on the spend that budgets and the ledger count.

use std::collections::HashMap;

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Prompt tokens served from the provider's own prompt cache.
    pub cached_input: f64,
}

impl Price {
    /// The cost in USD of one call's tokens.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        (prompt_tokens as f64 * self.input + completion_tokens as f64 * self.output) / 1e6
    }

    /// The cost of a call whose prompt had `cached` tokens from the provider's prompt cache.
    pub fn cost_with_cache(&self, prompt_tokens: u64, cached: u64, completion_tokens: u64) -> f64 {
        let cached = cached.min(prompt_tokens);
        ((prompt_tokens - cached) as f64 * self.input
            + cached as f64 * self.cached_input
            + completion_tokens as f64 * self.output)
            / 1e6
    }
}

/// Shipped prices (USD per million tokens: input, output, cached input), list prices of the
/// providers' standard tiers. A dated or suffixed model name (`gpt-4o-2024-08-06`) takes the
/// price of the longest listed name it starts with.
#[rustfmt::skip]
const SHIPPED: &[(&str, f64, f64, f64)] = &[
    // OpenAI
    ("gpt-5", 1.25, 10.0, 0.125),
    ("gpt-5-mini", 0.25, 2.0, 0.025),
    ("gpt-5-nano", 0.05, 0.40, 0.005),
    ("gpt-4.1", 2.0, 8.0, 0.50),
    ("gpt-4.1-mini", 0.40, 1.60, 0.10),
    ("gpt-4.1-nano", 0.10, 0.40, 0.025),
    ("gpt-4o", 2.50, 10.0, 1.25),
    ("gpt-4o-mini", 0.15, 0.60, 0.075),
    ("gpt-4-turbo", 10.0, 30.0, 10.0),
    ("gpt-3.5-turbo", 0.50, 1.50, 0.50),
    ("o1", 15.0, 60.0, 7.50),
    ("o3", 2.0, 8.0, 0.50),
    ("o3-mini", 1.10, 4.40, 0.55),
    ("o4-mini", 1.10, 4.40, 0.275),
    ("text-embedding-3-small", 0.02, 0.0, 0.02),
    ("text-embedding-3-large", 0.13, 0.0, 0.13),
    // Anthropic (cached input = cache reads)
    ("claude-opus-4-5", 5.0, 25.0, 0.50),
    ("claude-opus-4", 15.0, 75.0, 1.50),
    ("claude-sonnet-4", 3.0, 15.0, 0.30),
    ("claude-3-7-sonnet", 3.0, 15.0, 0.30),
    ("claude-3-5-sonnet", 3.0, 15.0, 0.30),
    ("claude-haiku-4-5", 1.0, 5.0, 0.10),
    ("claude-3-5-haiku", 0.80, 4.0, 0.08),
    ("claude-3-haiku", 0.25, 1.25, 0.03),
    // Google Gemini (prompts up to 200k tokens)
    ("gemini-2.5-pro", 1.25, 10.0, 0.31),
    ("gemini-2.5-flash", 0.30, 2.50, 0.075),
    ("gemini-2.5-flash-lite", 0.10, 0.40, 0.025),
    ("gemini-2.0-flash", 0.10, 0.40, 0.025),
    ("gemini-2.0-flash-lite", 0.075, 0.30, 0.075),
];

/// The price table in force: shipped prices, overridden by the configuration's.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable {
    prices: HashMap<String, Price>,
}

impl Default for PriceTable {
    fn default() -> Self {
        Self::with_overrides(HashMap::new())
    }
}

impl PriceTable {
    pub fn with_overrides(overrides: HashMap<String, Price>) -> Self {
        let mut prices: HashMap<String, Price> = SHIPPED
            .iter()
            .map(|&(name, input, output, cached_input)| {
                let price = Price {
                    input,
                    output,
                    cached_input,
                };
                (name.to_owned(), price)
            })
            .collect();
        prices.extend(overrides);
        Self { prices }
    }

    /// The price of `model` (a `provider/` prefix is ignored), or `None` for a model the table
    /// does not know (its tokens are still counted; its savings are not priced).
    pub fn get(&self, model: &str) -> Option<Price> {
        if let Some(p) = self.prices.get(model) {
            return Some(*p);
        }
        let bare = model.rsplit_once('/').map_or(model, |(_, m)| m);
        if let Some(p) = self.prices.get(bare) {
            return Some(*p);
        }
        // The longest listed name that `bare` extends at a `-` boundary.
        self.prices
            .iter()
            .filter(|(name, _)| {
                bare.strip_prefix(name.as_str())
                    .is_some_and(|rest| rest.starts_with('-'))
            })
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| *p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_prompt_tokens_cost_the_cached_input_price() {
        let p = Price {
            input: 2.0,
            output: 8.0,
            cached_input: 0.5,
        };
        // 1M prompt tokens of which 400k cached, 100k completion tokens.
        let cost = p.cost_with_cache(1_000_000, 400_000, 100_000);
        assert!((cost - (1.2 + 0.2 + 0.8)).abs() < 1e-9, "{cost}");
        assert_eq!(p.cost_with_cache(10, 50, 0), p.cached_input * 10.0 / 1e6);
    }

    #[test]
    fn dated_and_prefixed_names_take_the_longest_listed_price() {
        let table = PriceTable::default();
        let mini = table.get("gpt-4o-mini").unwrap();
        assert_eq!(mini.input, 0.15);
        assert_eq!(table.get("gpt-4o-mini-2024-07-18"), Some(mini));
        assert_eq!(table.get("openai/gpt-4o-mini"), Some(mini));
        assert_eq!(table.get("gpt-4o-2024-08-06").unwrap().input, 2.50);
        assert_eq!(table.get("o3-mini-2025-01-31").unwrap().output, 4.40);
        assert_eq!(
            table.get("claude-sonnet-4-5-20250929").unwrap().output,
            15.0
        );
        assert_eq!(table.get("gpt-4ox"), None, "not at a `-` boundary");
        assert_eq!(table.get("llama-3-70b"), None);
        // 1M prompt tokens and 1M completion tokens of gpt-4o-mini.
        assert!((mini.cost(1_000_000, 1_000_000) - 0.75).abs() < 1e-9);
    }

    #[test]
    fn the_configuration_overrides_and_extends_the_table() {
        let local = Price {
            input: 0.0,
            output: 0.0,
            cached_input: 0.0,
        };
        let cheaper = Price {
            input: 1.0,
            output: 2.0,
            cached_input: 0.5,
        };
        let table = PriceTable::with_overrides(HashMap::from([
            ("llama-3-70b".to_owned(), local),
            ("gpt-4o".to_owned(), cheaper),
        ]));
        assert_eq!(table.get("llama-3-70b"), Some(local));
        assert_eq!(table.get("gpt-4o-2024-08-06"), Some(cheaper));
        assert_eq!(table.get("gpt-4o-mini").unwrap().input, 0.15);
    }
}
