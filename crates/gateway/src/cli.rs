//! The command line: `reprise serve` and `reprise check-config`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, Env, Overrides, ProcessEnv};

/// The most threads the gateway's blocking work runs on at once (tokio's default is 512). That
/// work is mostly SQLite's, which one connection serialises, so more threads only wait on it:
/// when a burst of cache misses still queued a store each, every queued store took a thread of
/// its own (516 threads and 430 MiB resident after filling 20,000 entries through 32
/// connections). Stores now go through one writer (see `cache::Writer`); past this many, other
/// blocking work waits in tokio's queue, in the same order.
const BLOCKING_THREADS: usize = 8;

#[derive(Debug, Parser)]
#[command(
    name = "reprise",
    version,
    about = "A self-hosted, OpenAI-compatible AI gateway with a semantic cache",
    long_about = "Reprise speaks the OpenAI API: point any OpenAI SDK's base URL at it.\n\n\
        Zero-config start: set OPENAI_API_KEY (and optionally OPENAI_BASE_URL) and run \
        `reprise serve`. Everything else goes in a TOML file (--config); environment \
        variables override the file, flags override both."
)]
pub struct Cli {
    /// Configuration file (TOML).
    #[arg(
        long,
        short,
        global = true,
        env = "REPRISE_CONFIG",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Address to listen on [env: REPRISE_LISTEN] [default: 127.0.0.1:4080]
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// Directory for the embedded store, created if missing [env: REPRISE_DATA_DIR]
        /// [default: ./reprise-data]
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Listen beyond loopback with no client authentication. Only when something in front
        /// of Reprise authenticates clients [env: REPRISE_ALLOW_UNAUTHENTICATED]
        #[arg(long)]
        allow_unauthenticated: bool,
    },
    /// Validate the configuration (file, environment) and exit: 0 when valid; otherwise the
    /// failing key's path and the reason, and exit code 1.
    CheckConfig {
        /// The file to check (default: --config / REPRISE_CONFIG; none checks the environment
        /// alone).
        file: Option<PathBuf>,
    },
    /// Inspect or purge the cache of a running gateway (through its loopback admin API).
    Cache {
        #[command(subcommand)]
        action: CacheAction,
        /// The gateway's address [default: REPRISE_LISTEN, else 127.0.0.1:4080]
        #[arg(long, global = true, value_name = "ADDR")]
        gateway: Option<String>,
    },
    /// Show the targets of a running gateway (through its loopback admin API).
    Provider {
        #[command(subcommand)]
        action: ProviderAction,
        /// The gateway's address [default: REPRISE_LISTEN, else 127.0.0.1:4080]
        #[arg(long, global = true, value_name = "ADDR")]
        gateway: Option<String>,
    },
    /// Create, list and revoke virtual keys (in the store of the data directory; a running
    /// gateway sees the change on its next request).
    Key {
        #[command(subcommand)]
        action: KeyAction,
        /// The data directory [env: REPRISE_DATA_DIR] [default: ./reprise-data]
        #[arg(long, global = true, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Store provider keys sealed in the store (REPRISE_ENCRYPTION_KEY), for targets that name
    /// them with `api_key_secret` (read at start).
    Secret {
        #[command(subcommand)]
        action: SecretAction,
        /// The data directory [env: REPRISE_DATA_DIR] [default: ./reprise-data]
        #[arg(long, global = true, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Spend and savings by key, model and day, from the ledger (a running gateway writes it
    /// at least once a second).
    Usage {
        /// Only this key (its id).
        #[arg(long, value_name = "ID")]
        key: Option<String>,
        /// From this UTC date on (YYYY-MM-DD) [default: the start of this month]
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// The data directory [env: REPRISE_DATA_DIR] [default: ./reprise-data]
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Estimate what the cache would have served for a log of requests (one OpenAI request
    /// body a line), with the current settings and no upstream call.
    Replay {
        /// The request log (JSON lines).
        file: PathBuf,
        /// The API of the logged requests.
        #[arg(long, value_enum, default_value = "chat")]
        api: crate::replay::ReplayApi,
    },
    /// Measure the semantic cache's quality on labelled question pairs (precision, recall,
    /// false hits; a threshold sweep; per-capability tables).
    Eval {
        /// Directory holding gptcache-mock.json, checklist-dev.jsonl and qqp-dev.jsonl.gz.
        #[arg(long, default_value = "../shared/data", value_name = "DIR")]
        data: PathBuf,
        /// Embedding model directory (when the configuration names no remote
        /// `[cache.embedding]`, which is evaluated instead).
        #[arg(
            long,
            env = "REPRISE_MODEL_DIR",
            default_value = "models/potion-base-8M",
            value_name = "DIR"
        )]
        model: PathBuf,
        /// Similarity threshold to report as the default [default: the configured
        /// `cache.similarity_threshold`, else 0.80]
        #[arg(long)]
        threshold: Option<f32>,
        /// Also print the wrong decisions: CheckList and QQP examples with the guard's reason,
        /// and every question not served or wrongly served in the retrieval protocol.
        #[arg(long)]
        explain: bool,
    },
}

#[derive(Debug, Subcommand)]
enum CacheAction {
    /// Entries, bytes, hits and misses by tier, tokens and estimated dollars saved.
    Stats,
    /// Remove entries: all, or those of a namespace and/or a model.
    Purge {
        #[arg(long)]
        namespace: Option<String>,
        #[arg(long)]
        model: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum KeyAction {
    /// Create a key and print it, once (only its hash is kept).
    Create {
        #[arg(long)]
        label: String,
        /// Requests per minute.
        #[arg(long)]
        rpm: Option<u64>,
        /// Tokens per minute.
        #[arg(long)]
        tpm: Option<u64>,
        /// Daily budget in USD (UTC days).
        #[arg(long, value_name = "USD")]
        daily_usd: Option<f64>,
        /// Monthly budget in USD (UTC months).
        #[arg(long, value_name = "USD")]
        monthly_usd: Option<f64>,
        /// Model patterns the key may use, comma-separated (`gpt-*,claude-*`) [default: all]
        #[arg(long, value_delimiter = ',', value_name = "PATTERN,...")]
        models: Vec<String>,
        /// Expiry: a UTC date (YYYY-MM-DD) or an RFC 3339 time.
        #[arg(long, value_name = "DATE")]
        expires: Option<String>,
        /// A team: its keys share one cache namespace and the team's budget ([teams."NAME"]).
        #[arg(long)]
        team: Option<String>,
    },
    /// Every key: label, prefix, limits, spend, created, last used (never the key).
    List,
    /// Revoke a key by its id; it is refused from the next request on.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
enum SecretAction {
    /// Seal and store the value read from standard input (never from the command line, which
    /// other users can see) under NAME.
    Set {
        name: String,
    },
    /// The stored names (never the values).
    List,
    Delete {
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum ProviderAction {
    /// Configured targets, the models they serve and their state (healthy, cooling down,
    /// probing), and the aliases.
    List,
    /// Probe every target live (its model list: no tokens spent) and report each result.
    Health,
}

fn provider_command(action: ProviderAction, gateway: Option<String>) -> anyhow::Result<()> {
    let path = match action {
        ProviderAction::List => "/admin/providers",
        ProviderAction::Health => "/admin/providers/health",
    };
    let body = admin_call(gateway, |client, base| client.get(format!("{base}{path}")))?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    if matches!(action, ProviderAction::Health)
        && body["targets"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["ok"] != true))
    {
        anyhow::bail!("at least one target failed its probe");
    }
    Ok(())
}

/// One call to a running gateway's admin API; its JSON answer, or an error naming the failure.
fn admin_call(
    gateway: Option<String>,
    request: impl FnOnce(&reqwest::Client, &str) -> reqwest::RequestBuilder,
) -> anyhow::Result<serde_json::Value> {
    let addr = gateway
        .or_else(|| std::env::var("REPRISE_LISTEN").ok())
        .unwrap_or_else(|| crate::config::DEFAULT_LISTEN.to_owned());
    let base = if addr.starts_with("http") {
        addr
    } else {
        format!("http://{addr}")
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let response = request(&client, &base).send().await.map_err(|e| {
            anyhow::anyhow!("cannot reach the gateway at {base}: {}", e.without_url())
        })?;
        let status = response.status();
        let body: serde_json::Value = response.json().await?;
        if !status.is_success() {
            anyhow::bail!(
                "the gateway answered {status}: {}",
                body["error"]["message"]
            );
        }
        Ok(body)
    })
}

/// Opens the store of the configured (or given) data directory.
fn open_store(
    config_file: Option<&std::path::Path>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<reprise_storage::Store> {
    let overrides = Overrides {
        data_dir,
        ..Overrides::default()
    };
    let config = Config::load(config_file, &ProcessEnv, &overrides)
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    reprise_storage::Store::open(&config.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot open the store in {}: {e}",
            config.data_dir.display()
        )
    })
}

fn key_command(
    action: KeyAction,
    config_file: Option<&std::path::Path>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let store = open_store(config_file, data_dir)?;
    let now = crate::state::unix_ms();
    match action {
        KeyAction::Create {
            label,
            rpm,
            tpm,
            daily_usd,
            monthly_usd,
            models,
            expires,
            team,
        } => {
            let expires_ms = expires
                .as_deref()
                .map(crate::reports::parse_date)
                .transpose()?;
            let ring = crate::auth::KeyRing::load(store)?;
            let (key, row) = ring.create(
                crate::auth::NewKey {
                    label,
                    team,
                    rpm,
                    tpm,
                    daily_usd,
                    monthly_usd,
                    models,
                    expires_ms,
                },
                now,
            )?;
            eprintln!(
                "created key {} ({}); it is shown this once, store it now:",
                row.id, row.label
            );
            println!("{key}");
        }
        KeyAction::List => {
            let keys = crate::reports::list(&store)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({"keys": keys}))?
            );
        }
        KeyAction::Revoke { id } => {
            if !store.revoke_key(&id, now)? {
                anyhow::bail!("no active key has the id {id:?} (see `reprise key list`)");
            }
            eprintln!("revoked {id}");
        }
    }
    Ok(())
}

fn secret_command(
    action: SecretAction,
    config_file: Option<&std::path::Path>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let store = open_store(config_file, data_dir)?;
    let key = ProcessEnv
        .var("REPRISE_ENCRYPTION_KEY")
        .map(reprise_providers::Secret::new);
    match action {
        SecretAction::Set { name } => {
            let mut value = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut value)?;
            let value = value.trim_end_matches(['\n', '\r']);
            crate::secrets::put(&store, key.as_ref(), &name, value, crate::state::unix_ms())?;
            eprintln!("stored {name} (sealed); targets use it with api_key_secret = {name:?}");
        }
        SecretAction::List => {
            let names: Vec<String> = store.secrets()?.into_iter().map(|s| s.name).collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({"secrets": names}))?
            );
        }
        SecretAction::Delete { name } => {
            if !store.delete_secret(&name)? {
                anyhow::bail!("no stored secret is named {name:?}");
            }
            eprintln!("deleted {name}");
        }
    }
    Ok(())
}

fn usage_command(
    key: Option<String>,
    since: Option<String>,
    config_file: Option<&std::path::Path>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let store = open_store(config_file, data_dir)?;
    let since = match since {
        Some(date) => crate::reports::parse_date(&date)?,
        None => crate::limits::Calendar::at(crate::state::unix_ms()).month_start_ms,
    };
    let summary = crate::reports::usage(&store, since, key.as_deref())?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

fn cache_command(action: CacheAction, gateway: Option<String>) -> anyhow::Result<()> {
    let body = admin_call(gateway, |client, base| match action {
        CacheAction::Stats => client.get(format!("{base}/admin/cache/stats")),
        CacheAction::Purge { namespace, model } => {
            let mut query = Vec::new();
            if let Some(n) = namespace {
                query.push(("namespace", n));
            }
            if let Some(m) = model {
                query.push(("model", m));
            }
            client.delete(format!("{base}/admin/cache")).query(&query)
        }
    })?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(())
}

/// The runtime `reprise serve` runs on: a worker thread a core, blocking work capped at
/// [`BLOCKING_THREADS`].
fn serve_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Replay { file, api } => {
            let result = Config::load(cli.config.as_deref(), &ProcessEnv, &Overrides::default())
                .map_err(anyhow::Error::from)
                .and_then(|config| {
                    let cache = config.cache;
                    anyhow::ensure!(
                        cache.remote_embedding.is_none() || !cache.semantic,
                        "replay simulates the semantic tier with the embedded model only; \
                         cache.embedding is set (run with REPRISE_CACHE_SEMANTIC=false to \
                         count the exact tier alone)"
                    );
                    let embedder = if cache.semantic {
                        Some(reprise_cache::embed::Model2Vec::load(&cache.model_dir)?)
                    } else {
                        None
                    };
                    crate::replay::run(
                        &file,
                        api,
                        &cache,
                        embedder
                            .as_ref()
                            .map(|e| e as &dyn reprise_cache::embed::Embedder),
                    )
                });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Key { action, data_dir } => {
            match key_command(action, cli.config.as_deref(), data_dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Secret { action, data_dir } => {
            match secret_command(action, cli.config.as_deref(), data_dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Usage {
            key,
            since,
            data_dir,
        } => match usage_command(key, since, cli.config.as_deref(), data_dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        },
        Command::Provider { action, gateway } => match provider_command(action, gateway) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        },
        Command::Cache { action, gateway } => match cache_command(action, gateway) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        },
        Command::Eval {
            data,
            model,
            threshold,
            explain,
        } => {
            let result = Config::load(cli.config.as_deref(), &ProcessEnv, &Overrides::default())
                .map_err(anyhow::Error::from)
                .and_then(|config| {
                    let threshold = threshold.unwrap_or(config.cache.similarity_threshold);
                    let margin = config.cache.similarity_margin;
                    match &config.cache.remote_embedding {
                        Some(remote) => {
                            let remote = crate::embedding::BlockingRemote::new(remote)?;
                            crate::eval::run(&remote, &data, threshold, margin, explain)?;
                            match remote.failure() {
                                None => Ok(()),
                                Some(reason) => Err(anyhow::anyhow!(
                                    "the embedding endpoint failed during the evaluation \
                                     (the figures above are wrong): {reason}"
                                )),
                            }
                        }
                        None => {
                            let local = reprise_cache::embed::Model2Vec::load(&model)?;
                            crate::eval::run(&local, &data, threshold, margin, explain)
                        }
                    }
                });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConfig { file } => {
            let file = file.or(cli.config);
            match Config::load(file.as_deref(), &ProcessEnv, &Overrides::default()) {
                Ok(config) => {
                    println!(
                        "configuration is valid: listen {}, {} target(s): {}",
                        config.listen,
                        config.targets.len(),
                        config
                            .targets
                            .iter()
                            .map(|t| t.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("error: invalid configuration: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve {
            listen,
            data_dir,
            allow_unauthenticated,
        } => {
            let overrides = Overrides {
                listen,
                data_dir,
                allow_unauthenticated,
            };
            let config = match Config::load(cli.config.as_deref(), &ProcessEnv, &overrides) {
                Ok(config) => config,
                Err(err) => {
                    eprintln!("error: invalid configuration: {err}");
                    return ExitCode::FAILURE;
                }
            };
            if let Err(err) = crate::server::check_startable(&config, None) {
                eprintln!("error: {err}");
                return ExitCode::FAILURE;
            }
            let _guard = crate::telemetry::init(config.log_format);
            let runtime = match serve_runtime() {
                Ok(rt) => rt,
                Err(err) => {
                    eprintln!("error: cannot start the async runtime: {err}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(crate::server::serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!(error = format!("{err:#}"), "reprise stopped with an error");
                    eprintln!("error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_work_past_the_cap_waits_for_a_thread_instead_of_taking_one() {
        let runtime = serve_runtime().unwrap();
        // More blocking tasks at once than the cap, each holding its thread a while (as a
        // store queued behind the SQLite connection does): they run on at most the cap's
        // threads, and all of them run.
        let ran = runtime.block_on(async {
            let tasks: Vec<_> = (0..4 * BLOCKING_THREADS)
                .map(|_| {
                    tokio::task::spawn_blocking(|| {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        std::thread::current().id()
                    })
                })
                .collect();
            let mut ran = Vec::new();
            for task in tasks {
                ran.push(task.await.unwrap());
            }
            ran
        });
        assert_eq!(ran.len(), 4 * BLOCKING_THREADS);
        let threads: std::collections::HashSet<_> = ran.into_iter().collect();
        assert!(
            (1..=BLOCKING_THREADS).contains(&threads.len()),
            "{} threads",
            threads.len()
        );
    }
}
