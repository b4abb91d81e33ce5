//! `reprise replay FILE.jsonl`: how a log of chat requests would have fared with the cache, with
//! the current settings and no upstream call. Each line is one OpenAI chat completion request
//! body; the cache starts empty and every miss is assumed to store its (storable) answer.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::Context;
use reprise_cache::embed::Embedder;
use reprise_cache::semantic::ScopeIndex;
use reprise_cache::{Cacheability, Key};
use serde_json::Value;

use crate::config::CacheConfig;

/// What happened to the replayed requests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub requests: u64,
    pub exact_hits: u64,
    pub semantic_hits: u64,
    pub misses: u64,
    pub bypassed: u64,
    pub invalid: u64,
}

/// Replays `lines` (request bodies) through a simulated cache.
pub fn simulate<'a>(
    lines: impl Iterator<Item = &'a str>,
    config: &CacheConfig,
    embedder: Option<&dyn Embedder>,
    mut progress: impl FnMut(),
) -> Tally {
    let mut tally = Tally::default();
    let mut exact: HashSet<Key> = HashSet::new();
    // The gateway's own semantic index, so the replay decides as the gateway would.
    let scopes = ScopeIndex::default();
    for line in lines {
        progress();
        if line.trim().is_empty() {
            continue;
        }
        tally.requests += 1;
        let Ok(request) = serde_json::from_str::<Value>(line) else {
            tally.invalid += 1;
            continue;
        };
        if !request.get("model").is_some_and(Value::is_string)
            || !request.get("messages").is_some_and(Value::is_array)
        {
            tally.invalid += 1;
            continue;
        }
        let keys = reprise_cache::keys::keys("", &request);
        let semantic = match config
            .policy
            .assess(&request, keys.final_user_text.as_deref())
        {
            Cacheability::Bypass(_) => {
                tally.bypassed += 1;
                continue;
            }
            Cacheability::Cacheable { semantic } => semantic && config.semantic,
        };
        if exact.contains(&keys.exact) {
            tally.exact_hits += 1;
            continue;
        }
        let vector = match (embedder, &keys.final_user_text) {
            (Some(e), Some(text)) if semantic => Some((e.embed(text), text.clone())),
            _ => None,
        };
        if let Some((embedding, text)) = &vector {
            let hit = scopes
                .serve(&keys.scope, text, embedding, config.matching())
                .is_some();
            if hit {
                tally.semantic_hits += 1;
                continue;
            }
        }
        tally.misses += 1;
        exact.insert(keys.exact);
        if let Some((embedding, text)) = vector {
            // An index error leaves the question out of the semantic tier, as in the gateway.
            let _ = scopes.insert(keys.scope, keys.exact, &embedding, &text);
        }
    }
    tally
}

/// Runs the replay of `file` and prints the report.
pub fn run(
    file: &Path,
    config: &CacheConfig,
    embedder: Option<&dyn Embedder>,
) -> anyhow::Result<()> {
    let reader = BufReader::new(
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
    );
    let lines: Vec<String> = reader
        .lines()
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", file.display()))?;
    let bar = indicatif::ProgressBar::new(lines.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} requests ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let tally = simulate(lines.iter().map(String::as_str), config, embedder, || {
        bar.inc(1)
    });
    bar.finish_and_clear();
    let served = tally.exact_hits + tally.semantic_hits;
    let pct = |n: u64| 100.0 * n as f64 / tally.requests.max(1) as f64;
    println!(
        "replayed {} requests from {}",
        tally.requests,
        file.display()
    );
    println!(
        "  exact hits     {:>8} ({:.1} %)",
        tally.exact_hits,
        pct(tally.exact_hits)
    );
    println!(
        "  semantic hits  {:>8} ({:.1} %)",
        tally.semantic_hits,
        pct(tally.semantic_hits)
    );
    println!(
        "  misses         {:>8} ({:.1} %)",
        tally.misses,
        pct(tally.misses)
    );
    println!(
        "  not cacheable  {:>8} ({:.1} %)",
        tally.bypassed,
        pct(tally.bypassed)
    );
    println!("  invalid lines  {:>8}", tally.invalid);
    println!(
        "served from the cache: {served} ({:.1} %) without an upstream call",
        pct(served)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CacheConfig {
        crate::config::Config::from_toml("", &|_: &str| None, &crate::config::Overrides::default())
            .map(|c| c.cache)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn tallies_each_tier_without_an_embedder() {
        let lines = [
            r#"{"model":"m","messages":[{"role":"user","content":"What is Rust?"}]}"#,
            r#"{"messages":[{"role":"user","content":"What is Rust?"}],"model":"m","user":"x"}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"What is Go?"}],"temperature":0.9}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"What is Go?"}]}"#,
            "not json",
            r#"{"model":"m"}"#,
            "",
        ];
        let mut ticks = 0;
        let tally = simulate(lines.into_iter(), &config(), None, || ticks += 1);
        assert_eq!(ticks, 7);
        assert_eq!(
            tally,
            Tally {
                requests: 6,
                exact_hits: 1,
                semantic_hits: 0,
                misses: 2,
                bypassed: 1,
                invalid: 2,
            }
        );
    }
}
