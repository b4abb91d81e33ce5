//! `reprise replay FILE.jsonl`: how a log of requests would have fared with the cache, with the
//! current settings and no upstream call. Each line is one OpenAI request body of one API (chat
//! completions by default; `--api responses` or `--api embeddings`); the cache starts empty and
//! every miss is assumed to store its (storable) answer.

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
    /// Embeddings: the inputs of the valid requests, and those the cache held.
    pub inputs: u64,
    pub inputs_cached: u64,
}

/// The API of the replayed requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayApi {
    /// `POST /v1/chat/completions` bodies.
    Chat,
    /// `POST /v1/responses` bodies (cached only with `"store": false`).
    Responses,
    /// `POST /v1/embeddings` bodies (cached input by input).
    Embeddings,
}

/// Replays `lines` (request bodies of `api`) through a simulated cache.
pub fn simulate<'a>(
    lines: impl Iterator<Item = &'a str>,
    api: ReplayApi,
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
        let body = match api {
            ReplayApi::Chat => "messages",
            ReplayApi::Responses | ReplayApi::Embeddings => "input",
        };
        if !request.get("model").is_some_and(Value::is_string) || request.get(body).is_none() {
            tally.invalid += 1;
            continue;
        }
        let keys = match api {
            ReplayApi::Chat => reprise_cache::keys::keys("", &request),
            ReplayApi::Responses => match reprise_cache::responses::keys("", &request, true) {
                Ok(keys) => keys,
                Err(_) => {
                    tally.bypassed += 1;
                    continue;
                }
            },
            ReplayApi::Embeddings => {
                match reprise_cache::embeddings::inputs("", &request) {
                    Some(inputs) => {
                        let cached = inputs.keys.iter().filter(|k| exact.contains(*k)).count();
                        tally.inputs += inputs.keys.len() as u64;
                        tally.inputs_cached += cached as u64;
                        if cached == inputs.keys.len() {
                            tally.exact_hits += 1;
                        } else {
                            tally.misses += 1;
                            exact.extend(inputs.keys);
                        }
                    }
                    None => tally.bypassed += 1,
                }
                continue;
            }
        };
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
            (Some(e), Some(text)) if semantic => Some((e.embed_question(text), text.clone())),
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

/// Runs the replay of `file` (requests of `api`) and prints the report.
pub fn run(
    file: &Path,
    api: ReplayApi,
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
    let tally = simulate(
        lines.iter().map(String::as_str),
        api,
        config,
        embedder,
        || bar.inc(1),
    );
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
    if api == ReplayApi::Embeddings {
        println!(
            "inputs: {} in the valid requests, {} ({:.1} %) in the cache when asked (only the others go upstream)",
            tally.inputs,
            tally.inputs_cached,
            100.0 * tally.inputs_cached as f64 / tally.inputs.max(1) as f64
        );
    }
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
        let tally = simulate(lines.into_iter(), ReplayApi::Chat, &config(), None, || {
            ticks += 1
        });
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
                ..Tally::default()
            }
        );
    }

    #[test]
    fn responses_and_embeddings_are_replayed_by_their_own_rules() {
        let responses = [
            r#"{"model":"m","input":"What is Rust?","store":false}"#,
            r#"{"model":"m","input":"What is Rust?","store":false,"stream":true}"#,
            r#"{"model":"m","input":"What is Rust?"}"#,
            r#"{"model":"m","messages":[]}"#,
        ];
        let tally = simulate(
            responses.into_iter(),
            ReplayApi::Responses,
            &config(),
            None,
            || {},
        );
        assert_eq!(
            (
                tally.misses,
                tally.exact_hits,
                tally.bypassed,
                tally.invalid
            ),
            (1, 1, 1, 1)
        );
        let embeddings = [
            r#"{"model":"e","input":["a","b"]}"#,
            r#"{"model":"e","input":["b","c","a"]}"#,
            r#"{"model":"e","input":"c"}"#,
            r#"{"model":"e","input":[{"x":1}]}"#,
        ];
        let tally = simulate(
            embeddings.into_iter(),
            ReplayApi::Embeddings,
            &config(),
            None,
            || {},
        );
        assert_eq!(
            tally,
            Tally {
                requests: 4,
                exact_hits: 1,
                misses: 2,
                bypassed: 1,
                inputs: 6,
                inputs_cached: 3,
                ..Tally::default()
            }
        );
    }
}
