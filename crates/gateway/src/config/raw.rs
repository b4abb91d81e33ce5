//! The configuration file exactly as written: every key optional where a default exists,
//! unknown keys rejected. [`super::Config::load`] turns it into the validated form.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub max_body_bytes: Option<u64>,
    pub shutdown_grace_secs: Option<u64>,
    /// Seconds of silence on a relayed stream before the gateway sends an SSE comment (0: never).
    pub stream_keepalive_secs: Option<u64>,
    pub allow_unauthenticated: Option<bool>,
    pub log_format: Option<String>,
    #[serde(default)]
    pub targets: Vec<RawTarget>,
    #[serde(default)]
    pub cache: RawCache,
    /// `[prices."MODEL"]`: USD per million tokens, over the shipped table.
    #[serde(default)]
    pub prices: BTreeMap<String, RawPrice>,
    /// `[aliases."NAME"]`: a public model name served by a list of targets.
    #[serde(default)]
    pub aliases: BTreeMap<String, RawAlias>,
    #[serde(default)]
    pub routing: RawRouting,
    /// `keys` (virtual keys, the default) or `passthrough` (clients bring their provider key).
    pub auth: Option<String>,
    /// Pass-through callers with different keys share cache entries.
    pub passthrough_shared_cache: Option<bool>,
    /// Days the request log is kept in the store (0: not kept).
    pub log_retention_days: Option<u32>,
    /// The most rows the request log keeps.
    pub log_max_rows: Option<u64>,
    /// Days the ledger keeps one row a request before summing them by day.
    pub ledger_detail_days: Option<u32>,
    /// Keep each request's final user message in the request log (for top misses).
    pub log_prompts: Option<bool>,
    /// Browser origins allowed to call the API routes (CORS), or `["*"]`.
    pub cors_origins: Option<Vec<String>>,
    /// Host names the gateway answers to besides IP addresses and `localhost`, or `["*"]`.
    pub allowed_hosts: Option<Vec<String>>,
    /// `[teams."NAME"]`: budgets shared by the team's keys.
    #[serde(default)]
    pub teams: BTreeMap<String, RawTeam>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTeam {
    pub daily_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlias {
    pub strategy: Option<String>,
    pub targets: Vec<RawAliasTarget>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAliasTarget {
    pub target: String,
    pub model: Option<String>,
    pub weight: Option<f64>,
}

/// `[routing]`: retries, deadlines and the circuit breaker.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    pub max_attempts: Option<u32>,
    pub deadline_ms: Option<u64>,
    pub backoff_initial_ms: Option<u64>,
    pub backoff_max_ms: Option<u64>,
    pub retry_after_max_ms: Option<u64>,
    pub breaker_failures: Option<u32>,
    pub breaker_error_ratio: Option<f64>,
    pub breaker_window: Option<u32>,
    pub breaker_cooldown_ms: Option<u64>,
    pub exploration: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input: f64,
    pub output: f64,
    pub cached_input: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub enabled: Option<bool>,
    pub temperature_ceiling: Option<f64>,
    pub default_ttl_secs: Option<u64>,
    pub max_entries: Option<usize>,
    pub max_bytes: Option<u64>,
    pub namespace_header: Option<bool>,
    pub semantic: Option<bool>,
    pub similarity_threshold: Option<f32>,
    pub similarity_margin: Option<f32>,
    pub model_dir: Option<PathBuf>,
    pub embedding: Option<RawRemoteEmbedding>,
    pub sweep_interval_secs: Option<u64>,
}

/// `[cache.embedding]`: a remote OpenAI-compatible `/embeddings` endpoint instead of the
/// embedded model.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRemoteEmbedding {
    pub base_url: String,
    pub model: String,
    pub api_key_env: Option<String>,
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub name: String,
    pub provider: Option<String>,
    pub base_url: Option<String>,
    pub api_key_env: Option<String>,
    /// A provider secret stored sealed (`reprise secret set NAME`).
    pub api_key_secret: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub models: Vec<String>,
    pub connect_timeout_ms: Option<u64>,
    pub first_byte_timeout_ms: Option<u64>,
    pub total_timeout_ms: Option<u64>,
    pub stream_idle_timeout_ms: Option<u64>,
    pub http2_prior_knowledge: Option<bool>,
    /// Azure OpenAI's `api-version` query parameter.
    pub api_version: Option<String>,
}

/// Parses TOML, reporting the dotted path of the key that failed.
pub fn parse(text: &str) -> Result<RawConfig, super::ConfigError> {
    let de = toml::de::Deserializer::parse(text).map_err(|e| toml_error(".", &e, text))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        toml_error(&path, e.inner(), text)
    })
}

fn toml_error(path: &str, err: &toml::de::Error, text: &str) -> super::ConfigError {
    let line = err
        .span()
        .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
    let reason = match line {
        Some(line) => format!("{} (line {line})", err.message().trim()),
        None => err.message().trim().to_owned(),
    };
    super::ConfigError::new(path, reason)
}
