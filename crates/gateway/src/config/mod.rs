//! Configuration: a TOML file plus environment overrides, parsed raw (unknown keys rejected, the
//! failing path reported) and then validated into [`Config`], the type the rest of the gateway
//! uses. Precedence, lowest first: built-in defaults, the file, environment variables, CLI flags.

mod raw;
mod routing;
mod targets;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reprise_providers::{Secret, Timeouts};

use crate::pricing::{Price, PriceTable};

pub use raw::RawConfig;

pub use routing::{AliasConfig, AliasMember, BreakerConfig, RoutingConfig, Strategy};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:4080";
pub const DEFAULT_DATA_DIR: &str = "reprise-data";
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Silence on a relayed stream after which the client gets a keep-alive comment: well inside
/// the 60 s idle timeouts of common reverse proxies and load balancers.
pub const DEFAULT_STREAM_KEEPALIVE: Duration = Duration::from_secs(15);
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// Days of the ledger kept a row a request by default (this month's and most of the last's).
pub const DEFAULT_LEDGER_DETAIL_DAYS: u32 = 35;
/// The most rows the request log keeps by default (a few hundred MB of the store at most).
pub const DEFAULT_LOG_MAX_ROWS: u64 = 1_000_000;

/// A configuration problem: the dotted path of the offending key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConfigError {
    pub path: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when stdout is not a terminal, human-readable when it is.
    Auto,
    Json,
    Pretty,
}

/// Which upstream API a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenAI or any server speaking its API.
    OpenAi,
    Azure,
    Anthropic,
    Gemini,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Azure => "azure",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
        }
    }

    /// The model patterns a target of this kind serves when its `models` list is empty. OpenAI
    /// and Azure targets take any model no more specific target claims.
    pub fn default_models(self) -> &'static [&'static str] {
        match self {
            ProviderKind::OpenAi | ProviderKind::Azure => &["*"],
            ProviderKind::Anthropic => &["claude-*"],
            ProviderKind::Gemini => &["gemini-*", "gemma-*", "learnlm-*"],
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "openai" | "openai-compatible" => Some(ProviderKind::OpenAi),
            "azure" | "azure-openai" => Some(ProviderKind::Azure),
            "anthropic" => Some(ProviderKind::Anthropic),
            "gemini" | "google" => Some(ProviderKind::Gemini),
            _ => None,
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub max_body_bytes: usize,
    pub shutdown_grace: Duration,
    /// Silence on a relayed stream before a keep-alive comment goes to the client (`None`: never).
    pub stream_keepalive: Option<Duration>,
    /// Run without client authentication even when reachable beyond loopback.
    pub allow_unauthenticated: bool,
    pub log_format: LogFormat,
    pub targets: Vec<TargetConfig>,
    pub cache: CacheConfig,
    /// USD per million tokens, by model: the shipped table with the file's `[prices]` over it.
    pub prices: PriceTable,
    pub aliases: Vec<AliasConfig>,
    pub routing: RoutingConfig,
    pub auth: AuthMode,
    pub passthrough_shared_cache: bool,
    /// Team budgets, by team name.
    pub teams: HashMap<String, TeamBudget>,
    /// `REPRISE_ADMIN_TOKEN`: required on `/admin/*` (from anywhere) when set.
    pub admin_token: Option<Secret>,
    /// `REPRISE_ENCRYPTION_KEY`: seals and opens provider secrets kept in the store.
    pub encryption_key: Option<Secret>,
    /// Days the request log is kept in the store (0: not kept).
    pub log_retention_days: u32,
    /// The most rows the request log keeps, whatever their age (the oldest go first).
    pub log_max_rows: u64,
    /// Days the ledger keeps one row a request; older days are kept as daily totals.
    pub ledger_detail_days: u32,
    /// Keep each request's final user message in the request log.
    pub log_prompts: bool,
    /// Browser origins allowed to call the API routes from their pages (CORS).
    pub cors: CorsOrigins,
    /// Host names the gateway answers to besides IP addresses and `localhost`.
    pub hosts: AllowedHosts,
}

/// Which names in a request's `Host` the gateway answers to (`allowed_hosts`). IP addresses,
/// `localhost` and `*.localhost` are always answered: no web page can have a name of its own
/// resolve to them and be them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AllowedHosts {
    /// Unset: other names are answered only on a listener beyond loopback (where clients must
    /// authenticate), and on the admin routes only with an admin token.
    #[default]
    Default,
    /// These names; `*.example.com` is any name under `example.com`.
    List(Vec<String>),
    /// `*`: any name.
    Any,
}

impl AllowedHosts {
    /// Whether `name` (a `Host` header's name, without its port) was listed.
    pub fn lists(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.');
        match self {
            AllowedHosts::Default => false,
            AllowedHosts::Any => true,
            AllowedHosts::List(list) => {
                list.iter().any(|pattern| match pattern.strip_prefix('*') {
                    // `*.example.com`: a name that ends with `.example.com`, not the name itself.
                    Some(suffix) => {
                        name.len() > suffix.len()
                            && name
                                .get(name.len() - suffix.len()..)
                                .is_some_and(|end| end.eq_ignore_ascii_case(suffix))
                    }
                    None => pattern.eq_ignore_ascii_case(name),
                })
            }
        }
    }
}

/// A comma-separated list in environment variable `name` (blanks around items and empty items
/// ignored), when it is set.
fn list_var(env: &dyn Env, name: &str) -> Option<Vec<String>> {
    env.var(name).map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

/// Validates `allowed_hosts`: `["*"]`, or host names without scheme or port, each optionally
/// starting with `*.`.
fn validate_hosts(hosts: Option<Vec<String>>) -> Result<AllowedHosts, ConfigError> {
    let Some(hosts) = hosts else {
        return Ok(AllowedHosts::Default);
    };
    if hosts.iter().any(|h| h == "*") {
        if hosts.len() > 1 {
            return Err(ConfigError::new(
                "allowed_hosts",
                "\"*\" allows every host name: list it alone",
            ));
        }
        return Ok(AllowedHosts::Any);
    }
    for (i, host) in hosts.iter().enumerate() {
        let name = host.strip_prefix("*.").unwrap_or(host);
        let valid = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return Err(ConfigError::new(
                format!("allowed_hosts[{i}]"),
                format!(
                    "{host:?} is not a host name: a name such as \"gateway.example.com\" or \
                     \"*.example.com\", without scheme, port or path"
                ),
            ));
        }
    }
    Ok(AllowedHosts::List(
        hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
    ))
}

/// Which browser origins may call the API routes (`cors_origins`). A request that carries an
/// `Origin` header (a browser's) from any other origin than the gateway's own is refused.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CorsOrigins {
    /// None: only the gateway's own pages (the dashboard).
    #[default]
    None,
    /// These exact origins (`https://app.example.com`, `http://localhost:3000`).
    List(Vec<String>),
    /// `*`: any origin (the API still needs its key).
    Any,
}

impl CorsOrigins {
    /// Whether a page of `origin` may call the API routes.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            CorsOrigins::None => false,
            CorsOrigins::Any => true,
            CorsOrigins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }
}

/// Validates `cors_origins`: `["*"]`, or origins written as browsers send them
/// (`scheme://host[:port]`, no path).
fn validate_cors(origins: Vec<String>) -> Result<CorsOrigins, ConfigError> {
    if origins.is_empty() {
        return Ok(CorsOrigins::None);
    }
    if origins.iter().any(|o| o == "*") {
        if origins.len() > 1 {
            return Err(ConfigError::new(
                "cors_origins",
                "\"*\" allows every origin: list it alone",
            ));
        }
        return Ok(CorsOrigins::Any);
    }
    for (i, origin) in origins.iter().enumerate() {
        let valid = url::Url::parse(origin).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.origin().ascii_serialization() == origin.to_ascii_lowercase()
        });
        if !valid {
            return Err(ConfigError::new(
                format!("cors_origins[{i}]"),
                format!(
                    "{origin:?} is not an origin as a browser sends it: scheme://host[:port], \
                     with no path or trailing slash (e.g. \"https://app.example.com\")"
                ),
            ));
        }
    }
    Ok(CorsOrigins::List(
        origins.iter().map(|o| o.to_ascii_lowercase()).collect(),
    ))
}

/// How clients authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Virtual keys (`reprise key create`): required once any key exists.
    Keys,
    /// Clients send their own provider key; it is forwarded upstream and never stored.
    Passthrough,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TeamBudget {
    pub daily_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
}

/// The cache's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    pub enabled: bool,
    pub policy: reprise_cache::Policy,
    pub bounds: reprise_cache::index::Bounds,
    /// Accept a tenant namespace from the `x-reprise-namespace` request header.
    pub namespace_header: bool,
    /// Serve paraphrases (the semantic tier), not only exact repeats.
    pub semantic: bool,
    /// Similarity at or above which a guarded candidate is served.
    pub similarity_threshold: f32,
    /// How much more similar than any other guarded candidate the served one must be.
    pub similarity_margin: f32,
    /// The embedding model's directory.
    pub model_dir: PathBuf,
    /// A remote embedding endpoint, used instead of the model in `model_dir`.
    pub remote_embedding: Option<RemoteEmbeddingConfig>,
    /// How often expired entries are removed from memory and the store.
    pub sweep_interval: Duration,
}

impl CacheConfig {
    /// How the semantic tier picks the entry it serves.
    pub fn matching(&self) -> reprise_cache::semantic::Matching {
        reprise_cache::semantic::Matching {
            threshold: self.similarity_threshold,
            margin: self.similarity_margin,
        }
    }
}

/// A remote OpenAI-compatible embeddings endpoint (OpenAI, Ollama, vLLM, TEI...).
#[derive(Debug, Clone)]
pub struct RemoteEmbeddingConfig {
    /// The API's base URL, up to and including `/v1` (`/embeddings` is appended).
    pub base_url: String,
    pub model: String,
    pub api_key: Option<Secret>,
    pub timeout: Duration,
}

impl PartialEq for RemoteEmbeddingConfig {
    fn eq(&self, other: &Self) -> bool {
        let key = |c: &Self| c.api_key.as_ref().map(|k| k.expose().to_owned());
        self.base_url == other.base_url
            && self.model == other.model
            && self.timeout == other.timeout
            && key(self) == key(other)
    }
}

pub const DEFAULT_MODEL_DIR: &str = "models/potion-base-8M";

/// One upstream target: a provider endpoint with its credentials.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub name: String,
    pub provider: ProviderKind,
    pub base_url: String,
    /// The environment variable the key was read from (what logs and errors may name).
    pub api_key_env: Option<String>,
    pub api_key: Option<Secret>,
    /// The name of a sealed secret in the store holding the key (resolved at start).
    pub api_key_secret: Option<String>,
    pub headers: Vec<(String, Secret)>,
    /// Model name patterns (`*` matches any run of characters) this target serves; empty means
    /// every model.
    pub models: Vec<String>,
    pub timeouts: Timeouts,
    /// Speak HTTP/2 to a plain-http upstream without negotiating (h2c).
    pub http2_prior_knowledge: bool,
    /// Azure OpenAI's `api-version`.
    pub api_version: Option<String>,
}

/// Values given on the command line; they win over everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub allow_unauthenticated: bool,
}

/// Where environment variables come from: the process, or a map in tests.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

impl Config {
    /// Reads `file` (if any), applies the environment and `overrides`, and validates.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Env,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let raw = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(".", format!("cannot read {}: {e}", path.display()))
                })?;
                raw::parse(&text)?
            }
            None => RawConfig::default(),
        };
        Self::from_raw(raw, env, overrides)
    }

    /// Parses and validates configuration text (TOML) together with the environment and the
    /// overrides.
    pub fn from_toml(
        text: &str,
        env: &dyn Env,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        Self::from_raw(raw::parse(text)?, env, overrides)
    }

    /// Validates a parsed file together with the environment and the overrides.
    pub fn from_raw(
        mut raw: RawConfig,
        env: &dyn Env,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        targets::apply_provider_env(&mut raw, env);

        let listen_text = overrides
            .listen
            .map(|a| a.to_string())
            .or_else(|| env.var("REPRISE_LISTEN"))
            .or(raw.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            ConfigError::new(
                "listen",
                format!("{listen_text:?} is not an IP address and port such as 127.0.0.1:4080"),
            )
        })?;

        let data_dir = overrides
            .data_dir
            .clone()
            .or_else(|| env.var("REPRISE_DATA_DIR").map(PathBuf::from))
            .or(raw.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));

        let max_body_bytes = match env.var("REPRISE_MAX_BODY_BYTES") {
            Some(v) => Some(v.parse::<u64>().map_err(|_| {
                ConfigError::new("max_body_bytes", format!("{v:?} is not a whole number"))
            })?),
            None => raw.max_body_bytes,
        };
        let max_body_bytes = match max_body_bytes {
            None => DEFAULT_MAX_BODY_BYTES,
            Some(0) => return Err(ConfigError::new("max_body_bytes", "must be at least 1")),
            Some(n) => {
                usize::try_from(n).map_err(|_| ConfigError::new("max_body_bytes", "too large"))?
            }
        };

        let allow_unauthenticated = overrides.allow_unauthenticated
            || match env.var("REPRISE_ALLOW_UNAUTHENTICATED") {
                Some(v) => parse_bool("allow_unauthenticated", &v)?,
                None => raw.allow_unauthenticated.unwrap_or(false),
            };

        let log_format = match env.var("REPRISE_LOG_FORMAT").or(raw.log_format).as_deref() {
            None | Some("auto") => LogFormat::Auto,
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                return Err(ConfigError::new(
                    "log_format",
                    format!("{other:?} is not one of \"auto\", \"json\", \"pretty\""),
                ));
            }
        };

        let mut targets = Vec::with_capacity(raw.targets.len());
        for (i, t) in raw.targets.into_iter().enumerate() {
            let target = targets::validate_target(i, t, env)?;
            if targets.iter().any(|o: &TargetConfig| o.name == target.name) {
                return Err(ConfigError::new(
                    format!("targets[{i}].name"),
                    format!("duplicate target name {:?}", target.name),
                ));
            }
            targets.push(target);
        }

        let auth = match env.var("REPRISE_AUTH").or(raw.auth).as_deref() {
            None | Some("keys") => AuthMode::Keys,
            Some("passthrough") => AuthMode::Passthrough,
            Some(other) => {
                return Err(ConfigError::new(
                    "auth",
                    format!("{other:?} is not one of \"keys\", \"passthrough\""),
                ));
            }
        };
        let mut teams = HashMap::new();
        for (name, team) in &raw.teams {
            for (field, value) in [
                ("daily_usd", team.daily_usd),
                ("monthly_usd", team.monthly_usd),
            ] {
                if value.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                    return Err(ConfigError::new(
                        format!("teams.{name:?}.{field}"),
                        "must be an amount in USD, 0 or more",
                    ));
                }
            }
            teams.insert(
                name.clone(),
                TeamBudget {
                    daily_usd: team.daily_usd,
                    monthly_usd: team.monthly_usd,
                },
            );
        }
        let aliases = routing::validate_aliases(&raw.aliases, &targets)?;
        let routing = routing::validate_routing(&raw.routing)?;
        let cache = validate_cache(&raw.cache, env)?;
        let mut prices = HashMap::new();
        for (model, p) in &raw.prices {
            let cached_input = p.cached_input.unwrap_or(p.input);
            for (field, value) in [
                ("input", p.input),
                ("output", p.output),
                ("cached_input", cached_input),
            ] {
                if !(value.is_finite() && value >= 0.0) {
                    return Err(ConfigError::new(
                        format!("prices.{model:?}.{field}"),
                        "must be a price in USD per million tokens, 0 or more",
                    ));
                }
            }
            let price = Price {
                input: p.input,
                output: p.output,
                cached_input,
            };
            prices.insert(model.clone(), price);
        }

        Ok(Config {
            cache,
            prices: PriceTable::with_overrides(prices),
            listen,
            data_dir,
            max_body_bytes,
            shutdown_grace: raw
                .shutdown_grace_secs
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_SHUTDOWN_GRACE),
            stream_keepalive: match raw.stream_keepalive_secs {
                None => Some(DEFAULT_STREAM_KEEPALIVE),
                Some(0) => None,
                Some(secs) if secs <= 3600 => Some(Duration::from_secs(secs)),
                Some(_) => {
                    return Err(ConfigError::new(
                        "stream_keepalive_secs",
                        "must be at most 3600 (0 turns keep-alive comments off)",
                    ));
                }
            },
            allow_unauthenticated,
            log_format,
            targets,
            aliases,
            routing,
            auth,
            passthrough_shared_cache: raw.passthrough_shared_cache.unwrap_or(false),
            teams,
            admin_token: env.var("REPRISE_ADMIN_TOKEN").map(Secret::new),
            encryption_key: env.var("REPRISE_ENCRYPTION_KEY").map(Secret::new),
            log_retention_days: raw.log_retention_days.unwrap_or(30),
            ledger_detail_days: raw.ledger_detail_days.unwrap_or(DEFAULT_LEDGER_DETAIL_DAYS),
            log_max_rows: match raw.log_max_rows {
                Some(0) => {
                    return Err(ConfigError::new(
                        "log_max_rows",
                        "must be at least 1 (log_retention_days = 0 keeps no request log)",
                    ));
                }
                Some(n) => n,
                None => DEFAULT_LOG_MAX_ROWS,
            },
            log_prompts: match env.var("REPRISE_LOG_PROMPTS") {
                Some(v) => parse_bool("log_prompts", &v)?,
                None => raw.log_prompts.unwrap_or(false),
            },
            cors: validate_cors(
                list_var(env, "REPRISE_CORS_ORIGINS")
                    .or(raw.cors_origins)
                    .unwrap_or_default(),
            )?,
            hosts: validate_hosts(list_var(env, "REPRISE_ALLOWED_HOSTS").or(raw.allowed_hosts))?,
        })
    }
}

fn validate_cache(raw: &raw::RawCache, env: &dyn Env) -> Result<CacheConfig, ConfigError> {
    let defaults = reprise_cache::Policy::default();
    let bounds = reprise_cache::index::Bounds::default();
    let enabled = match env.var("REPRISE_CACHE_ENABLED") {
        Some(v) => parse_bool("cache.enabled", &v)?,
        None => raw.enabled.unwrap_or(true),
    };
    let temperature_ceiling = raw
        .temperature_ceiling
        .unwrap_or(defaults.temperature_ceiling);
    if !(0.0..=2.0).contains(&temperature_ceiling) {
        return Err(ConfigError::new(
            "cache.temperature_ceiling",
            "must be between 0 and 2",
        ));
    }
    let default_ttl = match raw.default_ttl_secs {
        Some(0) => {
            return Err(ConfigError::new(
                "cache.default_ttl_secs",
                "must be at least 1",
            ));
        }
        Some(s) => Duration::from_secs(s),
        None => defaults.default_ttl,
    };
    let max_entries = match raw.max_entries {
        Some(0) => return Err(ConfigError::new("cache.max_entries", "must be at least 1")),
        Some(n) => n,
        None => bounds.max_entries,
    };
    let max_bytes = match raw.max_bytes {
        Some(0) => return Err(ConfigError::new("cache.max_bytes", "must be at least 1")),
        Some(n) => n,
        None => bounds.max_bytes,
    };
    let remote_embedding = match &raw.embedding {
        None => None,
        Some(r) => {
            targets::validate_url(&r.base_url)
                .map_err(|reason| ConfigError::new("cache.embedding.base_url", reason))?;
            if r.model.trim().is_empty() {
                return Err(ConfigError::new(
                    "cache.embedding.model",
                    "must not be empty",
                ));
            }
            // The default threshold was calibrated for the embedded model only.
            if raw.similarity_threshold.is_none() {
                return Err(ConfigError::new(
                    "cache.similarity_threshold",
                    "must be set when cache.embedding is: each model needs its own threshold \
                     (calibrate it with `reprise eval`)",
                ));
            }
            let api_key = match &r.api_key_env {
                Some(var) => Some(Secret::new(env.var(var).ok_or_else(|| {
                    ConfigError::new(
                        "cache.embedding.api_key_env",
                        format!("environment variable {var} is not set"),
                    )
                })?)),
                None => None,
            };
            Some(RemoteEmbeddingConfig {
                base_url: r.base_url.trim_end_matches('/').to_owned(),
                model: r.model.clone(),
                api_key,
                timeout: Duration::from_millis(r.timeout_ms.unwrap_or(5_000).max(1)),
            })
        }
    };
    let unit = |path: &str, value: Option<f32>, default: f32| match value.unwrap_or(default) {
        v if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(ConfigError::new(path, "must be between 0 and 1")),
    };
    let similarity_threshold = unit(
        "cache.similarity_threshold",
        raw.similarity_threshold,
        reprise_cache::semantic::DEFAULT_THRESHOLD,
    )?;
    let similarity_margin = unit(
        "cache.similarity_margin",
        raw.similarity_margin,
        reprise_cache::semantic::DEFAULT_MARGIN,
    )?;
    let semantic = match env.var("REPRISE_CACHE_SEMANTIC") {
        Some(v) => parse_bool("cache.semantic", &v)?,
        None => raw.semantic.unwrap_or(true),
    };
    let model_dir = env
        .var("REPRISE_MODEL_DIR")
        .map(PathBuf::from)
        .or_else(|| raw.model_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL_DIR));
    Ok(CacheConfig {
        semantic,
        similarity_threshold,
        similarity_margin,
        model_dir,
        remote_embedding,
        sweep_interval: match raw.sweep_interval_secs {
            Some(0) => {
                return Err(ConfigError::new(
                    "cache.sweep_interval_secs",
                    "must be at least 1",
                ));
            }
            Some(s) => Duration::from_secs(s),
            None => Duration::from_secs(60),
        },
        enabled,
        policy: reprise_cache::Policy {
            temperature_ceiling,
            default_ttl,
        },
        bounds: reprise_cache::index::Bounds {
            max_entries,
            max_bytes,
        },
        namespace_header: raw.namespace_header.unwrap_or(false),
    })
}

fn parse_bool(path: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(
            path,
            format!("{value:?} is not a boolean (true/false)"),
        )),
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Auto => "auto",
            LogFormat::Json => "json",
            LogFormat::Pretty => "pretty",
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    fn load(toml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_raw(raw::parse(toml)?, &env(vars), &Overrides::default())
    }

    #[test]
    fn zero_config_with_an_openai_key() {
        let c = load("", &[("OPENAI_API_KEY", "sk-test")]).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.targets.len(), 1);
        assert_eq!(c.targets[0].name, "openai");
        assert_eq!(c.targets[0].base_url, DEFAULT_OPENAI_BASE_URL);
        assert_eq!(c.targets[0].api_key.as_ref().unwrap().expose(), "sk-test");
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    }

    #[test]
    fn stream_keep_alive_defaults_to_15_s_and_is_bounded() {
        let key = [("OPENAI_API_KEY", "sk-test")];
        assert_eq!(
            load("", &key).unwrap().stream_keepalive,
            Some(DEFAULT_STREAM_KEEPALIVE)
        );
        assert_eq!(
            load("stream_keepalive_secs = 0\n", &key)
                .unwrap()
                .stream_keepalive,
            None
        );
        assert_eq!(
            load("stream_keepalive_secs = 5\n", &key)
                .unwrap()
                .stream_keepalive,
            Some(Duration::from_secs(5))
        );
        let err = load("stream_keepalive_secs = 18446744073709551615\n", &key).unwrap_err();
        assert_eq!(err.path, "stream_keepalive_secs");
    }

    #[test]
    fn threshold_and_margin_are_between_0_and_1() {
        let key = [("OPENAI_API_KEY", "sk-test")];
        let c = load("", &key).unwrap();
        assert_eq!(
            c.cache.matching(),
            reprise_cache::semantic::Matching::default()
        );
        let c = load("[cache]\nsimilarity_margin = 0.05\n", &key).unwrap();
        assert_eq!(c.cache.matching().margin, 0.05);
        for (text, path) in [
            (
                "[cache]\nsimilarity_margin = 1.5\n",
                "cache.similarity_margin",
            ),
            (
                "[cache]\nsimilarity_threshold = -0.1\n",
                "cache.similarity_threshold",
            ),
        ] {
            assert_eq!(load(text, &key).unwrap_err().path, path);
        }
    }

    #[test]
    fn a_remote_embedding_model_needs_its_own_threshold_and_its_key() {
        let remote = "[cache.embedding]\nbase_url = \"http://127.0.0.1:11434/v1/\"\nmodel = \"nomic-embed-text\"\napi_key_env = \"EMBED_KEY\"\n";
        let err = load(remote, &[("EMBED_KEY", "ek")]).unwrap_err();
        assert_eq!(err.path, "cache.similarity_threshold");
        let with_threshold = format!("[cache]\nsimilarity_threshold = 0.9\n{remote}");
        let err = load(&with_threshold, &[]).unwrap_err();
        assert_eq!(err.path, "cache.embedding.api_key_env");
        assert!(err.reason.contains("EMBED_KEY"), "{}", err.reason);
        let c = load(&with_threshold, &[("EMBED_KEY", "ek")]).unwrap();
        let r = c.cache.remote_embedding.unwrap();
        assert_eq!(r.base_url, "http://127.0.0.1:11434/v1");
        assert_eq!(r.model, "nomic-embed-text");
        assert_eq!(r.api_key.unwrap().expose(), "ek");
        assert_eq!(r.timeout, Duration::from_secs(5));
        let bad = with_threshold.replace("http://127.0.0.1:11434/v1/", "ftp://x");
        assert_eq!(
            load(&bad, &[("EMBED_KEY", "ek")]).unwrap_err().path,
            "cache.embedding.base_url"
        );
    }

    #[test]
    fn prices_are_checked_and_cached_input_defaults_to_input() {
        let c = load("[prices.\"my-llama\"]\ninput = 0.5\noutput = 1\n", &[]).unwrap();
        let p = c.prices.get("my-llama").unwrap();
        assert_eq!((p.input, p.output, p.cached_input), (0.5, 1.0, 0.5));
        let err = load("[prices.\"my-llama\"]\ninput = -1\noutput = 1\n", &[]).unwrap_err();
        assert_eq!(err.path, "prices.\"my-llama\".input");
    }

    #[test]
    fn every_provider_has_a_zero_config_start() {
        let c = load(
            "",
            &[
                ("ANTHROPIC_API_KEY", "sk-ant"),
                ("GEMINI_API_KEY", "g-key"),
                ("GEMINI_BASE_URL", "http://127.0.0.1:9/v1beta"),
                ("AZURE_OPENAI_API_KEY", "az-key"),
            ],
        )
        .unwrap();
        let names: Vec<(&str, ProviderKind)> = c
            .targets
            .iter()
            .map(|t| (t.name.as_str(), t.provider))
            .collect();
        // Azure needs its endpoint as well as its key.
        assert_eq!(
            names,
            [
                ("anthropic", ProviderKind::Anthropic),
                ("gemini", ProviderKind::Gemini)
            ]
        );
        assert_eq!(c.targets[0].base_url, "https://api.anthropic.com");
        assert_eq!(c.targets[1].base_url, "http://127.0.0.1:9/v1beta");
        let c = load(
            "",
            &[
                ("AZURE_OPENAI_API_KEY", "az-key"),
                ("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com"),
                ("AZURE_OPENAI_API_VERSION", "2025-01-01-preview"),
            ],
        )
        .unwrap();
        assert_eq!(c.targets[0].provider, ProviderKind::Azure);
        assert_eq!(
            c.targets[0].api_version.as_deref(),
            Some("2025-01-01-preview")
        );
        assert_eq!(c.routing, RoutingConfig::default());
    }

    #[test]
    fn no_key_no_target() {
        assert!(load("", &[]).unwrap().targets.is_empty());
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let file = "listen = \"127.0.0.1:1111\"\ndata_dir = \"/from/file\"\n";
        let c = load(file, &[("REPRISE_LISTEN", "127.0.0.1:2222")]).unwrap();
        assert_eq!(c.listen.port(), 2222);
        assert_eq!(c.data_dir, PathBuf::from("/from/file"));
        let c = Config::from_raw(
            raw::parse(file).unwrap(),
            &env(&[("REPRISE_LISTEN", "127.0.0.1:2222")]),
            &Overrides {
                listen: Some("127.0.0.1:3333".parse().unwrap()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(c.listen.port(), 3333);
    }

    #[test]
    fn openai_base_url_overrides_the_file_target() {
        let file = "[[targets]]\nname = \"openai\"\nbase_url = \"https://file.example/v1\"\n";
        let c = load(file, &[("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")]).unwrap();
        assert_eq!(c.targets.len(), 1);
        assert_eq!(c.targets[0].base_url, "http://127.0.0.1:9/v1");
    }

    #[test]
    fn unknown_keys_name_their_path() {
        let err = load("[[targets]]\nname = \"a\"\nbase_ulr = \"x\"\n", &[]).unwrap_err();
        assert_eq!(err.path, "targets[0].base_ulr");
        assert!(err.reason.contains("base_ulr"), "{err}");
        let err = load("lisen = \"x\"", &[]).unwrap_err();
        assert!(err.reason.contains("lisen"), "{err}");
    }

    #[test]
    fn type_errors_name_their_path() {
        let err = load("max_body_bytes = \"big\"", &[]).unwrap_err();
        assert_eq!(err.path, "max_body_bytes");
        let err = load("[[targets]]\nname = \"a\"\nmodels = [1]\n", &[]).unwrap_err();
        assert_eq!(err.path, "targets[0].models[0]");
    }

    #[test]
    fn semantic_errors_name_their_path() {
        type Vars<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(&str, Vars, &str)] = &[
            ("listen = \"nope\"", &[], "listen"),
            (
                "[[targets]]\nname = \"a\"\nbase_url = \"ftp://x\"",
                &[],
                "targets[0].base_url",
            ),
            (
                "[[targets]]\nname = \"a\"\napi_key_env = \"MISSING_KEY\"",
                &[],
                "targets[0].api_key_env",
            ),
            (
                "[[targets]]\nname = \"a\"\n[[targets]]\nname = \"a\"",
                &[],
                "targets[1].name",
            ),
            (
                "[[targets]]\nname = \"a\"\nprovider = \"palm\"",
                &[],
                "targets[0].provider",
            ),
            (
                "[[targets]]\nname = \"a\"\nfirst_byte_timeout_ms = 0",
                &[],
                "targets[0].first_byte_timeout_ms",
            ),
            ("log_format = \"xml\"", &[], "log_format"),
            (
                "",
                &[("REPRISE_ALLOW_UNAUTHENTICATED", "maybe")],
                "allow_unauthenticated",
            ),
            ("max_body_bytes = 0", &[], "max_body_bytes"),
            ("log_max_rows = 0", &[], "log_max_rows"),
            (
                "[[targets]]\nname = \"az\"\nprovider = \"azure\"",
                &[],
                "targets[0].base_url",
            ),
            (
                "[[targets]]\nname = \"a\"\napi_version = \"2024-10-21\"",
                &[],
                "targets[0].api_version",
            ),
            (
                "[aliases.smart]\ntargets = [{ target = \"nope\" }]",
                &[],
                "aliases.\"smart\".targets[0].target",
            ),
            (
                "[[targets]]\nname = \"a\"\n[aliases.smart]\ntargets = [{ target = \"a\", weight = 0 }]",
                &[],
                "aliases.\"smart\".targets[0].weight",
            ),
            (
                "[[targets]]\nname = \"a\"\n[aliases.smart]\nstrategy = \"fastest\"\ntargets = [{ target = \"a\" }]",
                &[],
                "aliases.\"smart\".strategy",
            ),
            (
                "[aliases.smart]\ntargets = []",
                &[],
                "aliases.\"smart\".targets",
            ),
            ("[routing]\nmax_attempts = 0", &[], "routing.max_attempts"),
            (
                "[routing]\nbreaker_error_ratio = 1.5",
                &[],
                "routing.breaker_error_ratio",
            ),
            (
                "[routing]\nbackoff_initial_ms = 500\nbackoff_max_ms = 100",
                &[],
                "routing.backoff_max_ms",
            ),
            (
                "cors_origins = [\"https://a.example\", \"app.example.com\"]",
                &[],
                "cors_origins[1]",
            ),
            (
                "",
                &[("REPRISE_CORS_ORIGINS", "https://a.example/app")],
                "cors_origins[0]",
            ),
            (
                "cors_origins = [\"*\", \"https://a.example\"]",
                &[],
                "cors_origins",
            ),
            (
                "allowed_hosts = [\"gw.example\", \"https://gw.example\"]",
                &[],
                "allowed_hosts[1]",
            ),
            (
                "",
                &[("REPRISE_ALLOWED_HOSTS", "gw.example:4080")],
                "allowed_hosts[0]",
            ),
            (
                "allowed_hosts = [\"*\", \"gw.example\"]",
                &[],
                "allowed_hosts",
            ),
            ("allowed_hosts = [\"a..example\"]", &[], "allowed_hosts[0]"),
        ];
        for (toml, vars, path) in cases {
            let err = load(toml, vars).unwrap_err();
            assert_eq!(&err.path, path, "{toml}: {err}");
        }
    }

    #[test]
    fn cors_origins_are_read_as_browsers_send_them() {
        let c = load(
            "cors_origins = [\"https://App.Example.com\", \"http://localhost:3000\"]",
            &[],
        )
        .unwrap();
        assert!(c.cors.allows("https://app.example.com"));
        assert!(c.cors.allows("http://localhost:3000"));
        assert!(!c.cors.allows("http://localhost:3001"));
        let c = load("", &[("REPRISE_CORS_ORIGINS", "*")]).unwrap();
        assert_eq!(c.cors, CorsOrigins::Any);
        assert_eq!(load("", &[]).unwrap().cors, CorsOrigins::None);
    }

    #[test]
    fn allowed_hosts_match_names_and_subdomains() {
        let c = load(
            "allowed_hosts = [\"Gateway.Example.com\", \"*.corp.example\"]",
            &[],
        )
        .unwrap();
        assert!(c.hosts.lists("gateway.example.com"));
        assert!(c.hosts.lists("GATEWAY.example.com."));
        assert!(c.hosts.lists("a.corp.example"));
        assert!(c.hosts.lists("a.b.corp.example"));
        assert!(!c.hosts.lists("corp.example"));
        assert!(!c.hosts.lists("evilcorp.example"));
        assert!(!c.hosts.lists("example.com"));
        let c = load("", &[("REPRISE_ALLOWED_HOSTS", "*")]).unwrap();
        assert_eq!(c.hosts, AllowedHosts::Any);
        let c = load("", &[]).unwrap();
        assert_eq!(c.hosts, AllowedHosts::Default);
        assert!(!c.hosts.lists("gateway.example.com"));
    }

    #[test]
    fn header_secrets_are_redacted_in_debug() {
        let c = load(
            "[[targets]]\nname = \"a\"\napi_key_env = \"K\"\nheaders = { \"X-Org\" = \"org-hidden\" }",
            &[("K", "sk-hidden")],
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("sk-hidden") && !shown.contains("org-hidden"),
            "{shown}"
        );
    }
}
