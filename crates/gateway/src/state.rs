//! Shared state: immutable behind one `Arc`, built once from the validated configuration.

use std::sync::Arc;

use reprise_providers::anthropic::Anthropic;
use reprise_providers::gemini::Gemini;
use reprise_providers::openai::{DEFAULT_AZURE_API_VERSION, Flavor, OpenAiCompatible};
use reprise_providers::{Endpoint, Provider};
use reprise_storage::Store;

use reprise_cache::embed::{Embedder, Model2Vec};
use tokio_util::task::TaskTracker;

use crate::auth::KeyRing;
use crate::cache::Cache;
use crate::config::{AuthMode, BreakerConfig, Config, ProviderKind, TargetConfig};
use crate::embedding::{RemoteEmbedder, SemanticModel};
use crate::ledger::Ledger;
use crate::limits::{self, Calendar, Limiter, Spend};
use crate::metrics::Metrics;
use crate::routing::{Health, Router};

/// An upstream target the gateway can send requests to.
#[derive(Debug)]
pub struct Target {
    pub name: String,
    pub kind: ProviderKind,
    pub provider: Provider,
    /// Model name patterns this target serves; empty: the provider's defaults.
    pub models: Vec<String>,
    pub health: Health,
}

impl Target {
    pub fn build(config: &TargetConfig, breaker: BreakerConfig) -> anyhow::Result<Self> {
        let endpoint = Endpoint {
            base_url: config.base_url.clone(),
            api_key: config.api_key.clone(),
            headers: config.headers.clone(),
            timeouts: config.timeouts,
            http2_prior_knowledge: config.http2_prior_knowledge,
        };
        let provider = match config.provider {
            ProviderKind::OpenAi => {
                Provider::OpenAiCompatible(OpenAiCompatible::new(endpoint, Flavor::OpenAi)?)
            }
            ProviderKind::Azure => Provider::OpenAiCompatible(OpenAiCompatible::new(
                endpoint,
                Flavor::Azure {
                    api_version: config
                        .api_version
                        .clone()
                        .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.to_owned()),
                },
            )?),
            ProviderKind::Anthropic => Provider::Anthropic(Anthropic::new(endpoint)?),
            ProviderKind::Gemini => Provider::Gemini(Gemini::new(endpoint)?),
        };
        Ok(Self {
            name: config.name.clone(),
            kind: config.provider,
            provider,
            models: config.models.clone(),
            health: Health::new(breaker),
        })
    }

    /// The model patterns the target serves: its own list, or its provider's defaults.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        let own = self.models.iter().map(String::as_str);
        let defaults = self.kind.default_models().iter().copied();
        own.chain(defaults.filter(move |_| self.models.is_empty()))
    }
}

#[derive(Debug)]
struct Inner {
    config: Config,
    router: Router,
    keys: KeyRing,
    limiter: Limiter,
    spend: Spend,
    ledger: Ledger,
    metrics: Metrics,
    store: Store,
    cache: Cache,
    tasks: TaskTracker,
}

/// Everything a request needs, cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    /// Builds the state: one provider client (with its connection pool) per target, and the
    /// cache index loaded from the store. Blocking (reads the store): call from a blocking
    /// context.
    pub fn new(config: Config, store: Store) -> anyhow::Result<Self> {
        let targets = config
            .targets
            .iter()
            .map(|t| {
                // A key kept sealed in the store is opened now, once.
                let mut t = t.clone();
                if let Some(name) = &t.api_key_secret {
                    let key = crate::secrets::get(&store, config.encryption_key.as_ref(), name)
                        .map_err(|e| anyhow::anyhow!("target {:?}: {e}", t.name))?;
                    t.api_key = Some(key);
                }
                Target::build(&t, config.routing.breaker)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let router = Router::new(targets, &config.aliases, config.routing.exploration);
        let tasks = TaskTracker::new();
        let model = match &config.cache.remote_embedding {
            _ if !(config.cache.enabled && config.cache.semantic) => None,
            Some(remote) => Some(SemanticModel::Remote(Arc::new(RemoteEmbedder::new(
                remote,
            )?))),
            None => Some(SemanticModel::Local(load_embedder(
                &config.cache.model_dir,
            )?)),
        };
        let cache = Cache::open(config.cache.clone(), store.clone(), tasks.clone(), model)?;
        let keys = KeyRing::load(store.clone())?;
        let now = unix_ms();
        let cal = Calendar::at(now);
        let (today_keys, today_teams) = store.spend_since(cal.day_start_ms)?;
        let (month_keys, month_teams) = store.spend_since(cal.month_start_ms)?;
        let holders = |keys: Vec<(String, i64)>, teams: Vec<(String, i64)>| -> Vec<(String, i64)> {
            keys.into_iter()
                .map(|(k, v)| (limits::holder_key(&k), v))
                .chain(teams.into_iter().map(|(t, v)| (limits::holder_team(&t), v)))
                .collect()
        };
        let spend = Spend::new(
            now,
            holders(today_keys, today_teams),
            holders(month_keys, month_teams),
        );
        Ok(Self(Arc::new(Inner {
            config,
            router,
            keys,
            limiter: Limiter::default(),
            spend,
            ledger: Ledger::start(store.clone()),
            metrics: Metrics::default(),
            store,
            cache,
            tasks,
        })))
    }

    pub fn cache(&self) -> &Cache {
        &self.0.cache
    }

    /// Background work (store writes) that shutdown waits for.
    pub fn tasks(&self) -> &TaskTracker {
        &self.0.tasks
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    pub fn targets(&self) -> &[Target] {
        self.0.router.targets()
    }

    pub fn router(&self) -> &Router {
        &self.0.router
    }

    pub fn keys(&self) -> &KeyRing {
        &self.0.keys
    }

    pub fn limiter(&self) -> &Limiter {
        &self.0.limiter
    }

    pub fn spend(&self) -> &Spend {
        &self.0.spend
    }

    pub fn ledger(&self) -> &Ledger {
        &self.0.ledger
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// Whether requests must carry a virtual key: keys mode with at least one key.
    pub fn keys_required(&self) -> bool {
        self.0.config.auth == AuthMode::Keys && self.0.keys.any()
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }
}

impl AppState {
    /// Whether the gateway is reachable beyond loopback with client authentication explicitly
    /// turned off: every request's log line then carries a warning.
    pub fn open_mode(&self) -> bool {
        self.0.config.allow_unauthenticated
            && !self.0.config.listen.ip().is_loopback()
            && self.0.config.auth == AuthMode::Keys
            && !self.0.keys.any()
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Loads the embedding model, once per directory per process (tests start many gateways).
fn load_embedder(dir: &std::path::Path) -> anyhow::Result<Arc<dyn Embedder>> {
    static LOADED: std::sync::Mutex<Vec<(std::path::PathBuf, Arc<Model2Vec>)>> =
        std::sync::Mutex::new(Vec::new());
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, model)) = loaded.iter().find(|(d, _)| d == dir) {
        return Ok(model.clone());
    }
    let model = Arc::new(Model2Vec::load(dir).map_err(|e| {
        anyhow::anyhow!(
            "{e}. The semantic cache needs it: run scripts/fetch-model, point cache.model_dir \
             (REPRISE_MODEL_DIR) at a model2vec model, or turn the semantic tier off with \
             cache.semantic = false (REPRISE_CACHE_SEMANTIC=false)"
        )
    })?);
    loaded.push((dir.to_path_buf(), model.clone()));
    Ok(model)
}
