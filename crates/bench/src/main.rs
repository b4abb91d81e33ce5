//! `reprise-bench`: load benchmarks of the whole proxy path.
//!
//! `reprise-bench proxy` starts the mock upstream and the gateway as separate processes (release
//! builds), then loads the mock directly and through the gateway with the same load generator,
//! the same connections and the same request, and prints both and their ratios: figures measured
//! in one run against a baseline from the same run, because these machines are noisy.
//!
//! Phases: closed loop (N connections, each sending as fast as answers come) for throughput and
//! latency under saturation, over HTTP/2 and HTTP/1.1 upstream connections; the same against a
//! bare proxy on the same libraries (the floor any proxy pays on this machine, `bare`); the cost of
//! translating to Anthropic's and Gemini's formats; the Responses API and a forwarded route;
//! streamed completions (whole streams and time to the first event, saturated and at a fixed
//! rate); open loop at a fixed rate for the latency the gateway adds at a
//! realistic load (latency counted from each request's scheduled send time, so a stall is not
//! hidden by coordinated omission); and the gateway's resident memory after 1,000 and after
//! 100,000 proxied requests.

mod bare;
mod cache;
mod load;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use load::{Load, Report};

// The gateway's allocator, for the bare proxy this binary also serves (and, alike for every row,
// for the load generator).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "reprise-bench", about = "Load benchmarks for Reprise")]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// The proxy path: mock upstream direct vs through the gateway (cache off).
    Proxy {
        /// The `reprise` binary to benchmark.
        #[arg(long, default_value = "target/release/reprise")]
        gateway: PathBuf,
        /// The mock upstream binary.
        #[arg(long, default_value = "target/release/reprise-mock-upstream")]
        mock: PathBuf,
        /// The embedding model of the last phase, misses with the cache on (skipped without it).
        #[arg(long, default_value = "models/potion-base-8M")]
        model: PathBuf,
        /// Concurrent connections in the closed-loop phase.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Seconds per closed-loop and fixed-rate run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Requests per second in the fixed-rate phase.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// Requests before the second memory reading.
        #[arg(long, default_value_t = 100_000)]
        memory_requests: u64,
    },
    /// The cache: embedding, index scans, a semantic hit through HTTP, memory per entry.
    Cache {
        #[arg(long, default_value = "target/release/reprise")]
        gateway: PathBuf,
        #[arg(long, default_value = "target/release/reprise-mock-upstream")]
        mock: PathBuf,
        #[arg(long, default_value = "models/potion-base-8M")]
        model: PathBuf,
        /// Entries in the scope during the end-to-end phase.
        #[arg(long, default_value_t = 100_000)]
        entries: usize,
        /// Rounds (seconds) per end-to-end measurement.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// The labelled data (for the real-question row of the index phase: QQP's questions).
        #[arg(long, default_value = "../shared/data")]
        data: PathBuf,
        /// Scope sizes for the index lookup phase (1M takes about 25 minutes on a 2-core machine).
        #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
        index_sizes: Vec<usize>,
    },
    /// The proxy benchmark's floor: a bare proxy to `upstream` (started by `proxy` itself).
    #[command(hide = true)]
    BareProxy {
        #[arg(long)]
        listen: SocketAddr,
        /// `http://host:port` of the upstream.
        #[arg(long)]
        upstream: String,
    },
}

/// A child process killed on drop.
pub(crate) struct Guard(pub(crate) Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Bench::Cache {
            gateway,
            mock,
            model,
            entries,
            seconds,
            index_sizes,
            data,
        } => cache::run(
            &gateway,
            &mock,
            &model,
            &data,
            entries,
            seconds,
            &index_sizes,
        ),
        Bench::BareProxy { listen, upstream } => bare::serve(listen, upstream),
        Bench::Proxy {
            gateway,
            mock,
            model,
            connections,
            seconds,
            rate,
            memory_requests,
        } => proxy(
            &gateway,
            &mock,
            &model,
            connections,
            Duration::from_secs(seconds),
            rate,
            memory_requests,
        ),
    }
}

/// A chat completion asking `content` as the one user message, as the benchmarks send it.
pub(crate) fn chat_body(content: &str) -> String {
    serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]})
        .to_string()
}

/// Starts `reprise serve` on an ephemeral port with `config`, its data in `data_dir`, JSON logs
/// and the mock's key, plus `env`; returns it with the address it listens on.
pub(crate) fn spawn_gateway(
    gateway: &std::path::Path,
    config: &std::path::Path,
    data_dir: &std::path::Path,
    env: &[(&str, &str)],
) -> anyhow::Result<(Guard, SocketAddr)> {
    let mut cmd = Command::new(gateway);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("OPENAI_API_KEY", "sk-bench")
        .env("REPRISE_DATA_DIR", data_dir)
        .env("REPRISE_LOG_FORMAT", "json")
        .envs(env.iter().copied());
    spawn_and_find(cmd, |l| {
        let (_, rest) = l.split_once("\"listen\":\"")?;
        rest.split('"').next()?.parse::<SocketAddr>().ok()
    })
}

/// Spawns `cmd` and returns it with the first stdout line that satisfies `find`.
pub(crate) fn spawn_and_find<T>(
    mut cmd: Command,
    find: impl Fn(&str) -> Option<T>,
) -> anyhow::Result<(Guard, T)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let guard = Guard(child);
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line?;
        if let Some(found) = find(&line) {
            // Keep draining so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return Ok((guard, found));
        }
    }
    bail!("{cmd:?} exited before it was ready")
}

/// CPU time (user + system) a process has used, in seconds. `/proc/PID/stat` counts in clock
/// ticks, 100 a second on Linux.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name, which may itself hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("bad stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short stat")?.parse::<f64>()?)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

pub(crate) fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")?;
    Ok(kb / 1024.0)
}

fn proxy(
    gateway: &std::path::Path,
    mock: &std::path::Path,
    model: &std::path::Path,
    connections: usize,
    duration: Duration,
    rate: u64,
    memory_requests: u64,
) -> anyhow::Result<()> {
    let mut cmd = Command::new(mock);
    cmd.args(["--listen", "127.0.0.1:0"]);
    let (mock, mock_url) =
        spawn_and_find(cmd, |l| l.strip_prefix("listening on ").map(str::to_owned))?;
    let data_dir = std::env::temp_dir().join(format!("reprise-bench-{}", std::process::id()));
    std::fs::create_dir_all(&data_dir)?;
    // The mock speaks every wire format, so the same upstream serves the translating targets.
    let mock_root = mock_url.trim_end_matches("/v1").to_owned();
    let start_gateway = |http2: bool| -> anyhow::Result<(Guard, SocketAddr)> {
        let config = data_dir.join(format!("bench-h2-{http2}.toml"));
        let mut toml = format!(
            "[[targets]]\nname = \"openai\"\nbase_url = \"{mock_url}\"\napi_key_env = \"OPENAI_API_KEY\"\nhttp2_prior_knowledge = {http2}\n"
        );
        for (name, base) in [
            ("anthropic", mock_root.clone()),
            ("gemini", format!("{mock_root}/v1beta")),
        ] {
            toml.push_str(&format!(
                "[[targets]]\nname = \"{name}\"\nprovider = \"{name}\"\nbase_url = \"{base}\"\napi_key_env = \"OPENAI_API_KEY\"\nhttp2_prior_knowledge = {http2}\n"
            ));
        }
        std::fs::write(&config, toml)?;
        // The proxy path itself: every request goes upstream.
        spawn_gateway(
            gateway,
            &config,
            &data_dir,
            &[("REPRISE_CACHE_ENABLED", "false")],
        )
    };
    let (gw_h1, gw_h1_addr) = start_gateway(false)?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["bare-proxy", "--listen", "127.0.0.1:0", "--upstream"])
        .arg(&mock_root);
    let (bare, bare_addr) = spawn_and_find(cmd, |l| {
        l.strip_prefix("listening on ")?.parse::<SocketAddr>().ok()
    })?;
    let (gw, gw_addr) = start_gateway(true)?;
    let mock_addr: SocketAddr = mock_url
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .parse()
        .context("mock address")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"What is the capital of France?"}],"temperature":0}"#;
    let direct = Load::new(mock_addr, "/v1/chat/completions", body);
    let through = Load::new(gw_addr, "/v1/chat/completions", body);
    let through_h1 = Load::new(gw_h1_addr, "/v1/chat/completions", body);
    let through_bare = Load::new(bare_addr, "/v1/chat/completions", body);

    println!(
        "reprise proxy benchmark: {} cores, chat completions (streamed in their own phases), cache off",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    runtime.block_on(async {
        // Warm up every path (connections, allocator, pools).
        for load in [&direct, &through, &through_h1, &through_bare] {
            load.closed(connections, Duration::from_secs(1)).await?;
        }

        let rounds = duration.as_secs().max(1);
        let second = Duration::from_secs(1);
        println!(
            "\nclosed loop: {connections} connections, {rounds} alternating 1 s rounds each; upstream over HTTP/2 (h2c)"
        );
        let pids = Pids {
            first: mock.0.id(),
            second: gw.0.id(),
        };
        let (d, g, cpu) =
            interleave(rounds, &direct, &through, pids, |l| l.closed(connections, second)).await?;
        print_closed(cpu, &d, &g);

        println!(
            "\nclosed loop: {connections} connections, {rounds} alternating 1 s rounds each; upstream over HTTP/1.1"
        );
        let pids_h1 = Pids {
            second: gw_h1.0.id(),
            ..pids
        };
        let (d, g, cpu) = interleave(rounds, &direct, &through_h1, pids_h1, |l| {
            l.closed(connections, second)
        })
        .await?;
        drop(gw_h1);
        let (gateway_us, gateway_share) = print_closed(cpu, &d, &g);

        println!(
            "\nthe floor: a bare proxy on the same libraries (axum's server, hyper's pooled client, \
             mimalloc; upstream over HTTP/1.1) doing none of the gateway's work; {connections} \
             connections, {rounds} alternating 1 s rounds"
        );
        let pids_bare = Pids {
            second: bare.0.id(),
            ..pids
        };
        let (d, b, cpu) = interleave(rounds, &direct, &through_bare, pids_bare, |l| {
            l.closed(connections, second)
        })
        .await?;
        drop(bare);
        print_table_named(("direct", &d), ("bare proxy", &b));
        let bare_share = b.rps() / d.rps();
        let bare_us = per_request_us(cpu.second, &b);
        println!(
            "CPU per request: bare proxy {bare_us:.1} µs, reprise {gateway_us:.1} µs over HTTP/1.1 ({:.2}x the bare proxy)",
            gateway_us / bare_us.max(1e-9)
        );
        println!(
            "throughput: bare proxy {:.1} % of direct, reprise {:.1} % ({:.1} % of the bare proxy's)",
            100.0 * bare_share,
            100.0 * gateway_share,
            100.0 * gateway_share / bare_share.max(1e-9)
        );

        // Translation: the same gateway and upstream, the OpenAI wire format passed through
        // against Anthropic's and Gemini's translated both ways.
        for (provider, model) in [("anthropic", "claude-bench"), ("gemini", "gemini-bench")] {
            // Two bodies for the process's lifetime: leaking them is the simplest `'static`.
            let translated_body: &'static str =
                Box::leak(body.replace("gpt-4o-mini", model).into_boxed_str());
            let translated = Load::new(gw_addr, "/v1/chat/completions", translated_body);
            translated.closed(connections, second).await?;
            println!(
                "\ntranslation ({provider}): closed loop, {connections} connections, {rounds} alternating 1 s rounds; the same gateway passing the OpenAI format through vs translating to and from {provider}'s"
            );
            let (p, t, _) = interleave(rounds, &through, &translated, pids, |l| {
                l.closed(connections, second)
            })
            .await?;
            print_table_named(("pass-through", &p), (provider, &t));
            println!(
                "{provider} throughput: {:.1} % of pass-through; p50 {:+.3} ms",
                100.0 * t.rps() / p.rps(),
                t.percentile_ms(50.0) - p.percentile_ms(50.0)
            );
        }

        // The Responses API: forwarded as it came, like chat, with its own parsing and usage.
        let responses_body = r#"{"model":"gpt-4o-mini","instructions":"You are terse.","input":"What is the capital of France?"}"#;
        let direct_responses = Load::new(mock_addr, "/v1/responses", responses_body);
        let through_responses = Load::new(gw_addr, "/v1/responses", responses_body);
        through_responses.closed(connections, second).await?;
        println!(
            "\nResponses API (POST /v1/responses): closed loop, {connections} connections, {rounds} alternating 1 s rounds each; upstream over HTTP/2 (h2c)"
        );
        let (d, g, cpu) = interleave(rounds, &direct_responses, &through_responses, pids, |l| {
            l.closed(connections, second)
        })
        .await?;
        print_closed(cpu, &d, &g);

        // The same request for a Claude model: through a chat completion, to and from
        // Anthropic's format, against forwarding it.
        let translated_body: &'static str = Box::leak(
            responses_body
                .replace("gpt-4o-mini", "claude-bench")
                .into_boxed_str(),
        );
        let translated = Load::new(gw_addr, "/v1/responses", translated_body);
        translated.closed(connections, second).await?;
        println!(
            "\nResponses API translated (anthropic): closed loop, {connections} connections, {rounds} alternating 1 s rounds; the same gateway forwarding the request vs translating it through a chat completion to and from anthropic's"
        );
        let (f, t, _) = interleave(rounds, &through_responses, &translated, pids, |l| {
            l.closed(connections, second)
        })
        .await?;
        print_table_named(("forwarded", &f), ("anthropic", &t));
        println!(
            "translated throughput: {:.1} % of forwarded; p50 {:+.3} ms",
            100.0 * t.rps() / f.rps(),
            t.percentile_ms(50.0) - f.percentile_ms(50.0)
        );

        // The API's other routes (moderations, images, audio): forwarded as they came, the
        // answer relayed frame by frame without being parsed.
        let moderation_body = r#"{"model":"omni-moderation-latest","input":"What is the capital of France?"}"#;
        let direct_moderations = Load::new(mock_addr, "/v1/moderations", moderation_body);
        let through_moderations = Load::new(gw_addr, "/v1/moderations", moderation_body);
        through_moderations.closed(connections, second).await?;
        println!(
            "\nforwarded route (POST /v1/moderations): closed loop, {connections} connections, {rounds} alternating 1 s rounds each; upstream over HTTP/2 (h2c)"
        );
        let (d, g, cpu) = interleave(rounds, &direct_moderations, &through_moderations, pids, |l| {
            l.closed(connections, second)
        })
        .await?;
        print_closed(cpu, &d, &g);

        // Streamed chat completions: the gateway relays each event as it arrives and reads
        // the usage chunk for its books.
        let stream_body = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"What is the capital of France?"}],"temperature":0,"stream":true,"stream_options":{"include_usage":true}}"#;
        let direct_stream = Load::new(mock_addr, "/v1/chat/completions", stream_body);
        let through_stream = Load::new(gw_addr, "/v1/chat/completions", stream_body);
        let (_, relayed) = load::fetch(gw_addr, "/v1/chat/completions", stream_body).await?;
        let relayed = String::from_utf8_lossy(&relayed);
        anyhow::ensure!(
            relayed.matches("data: ").count() >= 5 && relayed.ends_with("data: [DONE]\n\n"),
            "the gateway did not relay a whole stream: {relayed}"
        );
        through_stream.closed(connections, second).await?;
        println!(
            "\nstreamed chat completions (\"stream\": true, usage chunk; {} events an answer): closed loop, {connections} connections, {rounds} alternating 1 s rounds each; upstream over HTTP/2 (h2c)",
            relayed.matches("data: ").count()
        );
        let (d, g, cpu) = interleave(rounds, &direct_stream, &through_stream, pids, |l| {
            l.closed(connections, second)
        })
        .await?;
        print_closed(cpu, &d, &g);
        println!(
            "time to the first event: direct p50 {:.3} ms, p99 {:.3} ms; via reprise p50 {:.3} ms, p99 {:.3} ms",
            d.first_byte_ms(50.0),
            d.first_byte_ms(99.0),
            g.first_byte_ms(50.0),
            g.first_byte_ms(99.0)
        );
        println!(
            "\nstreamed at a fixed {rate} requests/s, {rounds} alternating 1 s rounds each"
        );
        let (d, g, _) = interleave(rounds, &direct_stream, &through_stream, pids, |l| {
            l.fixed_rate(rate, second)
        })
        .await?;
        print_table(&d, &g);
        println!(
            "added by the gateway: whole stream p50 {:+.3} ms, p99 {:+.3} ms; first event p50 {:+.3} ms, p99 {:+.3} ms",
            g.percentile_ms(50.0) - d.percentile_ms(50.0),
            g.percentile_ms(99.0) - d.percentile_ms(99.0),
            g.first_byte_ms(50.0) - d.first_byte_ms(50.0),
            g.first_byte_ms(99.0) - d.first_byte_ms(99.0)
        );

        println!("\nfixed rate: {rate} requests/s, {rounds} alternating 1 s rounds each");
        let (d, g, _) = interleave(rounds, &direct, &through, pids, |l| {
            l.fixed_rate(rate, second)
        })
        .await?;
        print_table(&d, &g);
        println!(
            "added by the gateway: p50 {:+.3} ms, p99 {:+.3} ms",
            g.percentile_ms(50.0) - d.percentile_ms(50.0),
            g.percentile_ms(99.0) - d.percentile_ms(99.0)
        );

        println!("\nmemory (gateway resident set)");
        let pid = gw.0.id();
        let fresh = through.count(connections, 1_000).await?;
        let after_first = rss_mib(pid)?;
        through
            .count(connections, memory_requests.saturating_sub(1_000))
            .await?;
        let after_all = rss_mib(pid)?;
        println!(
            "after {} requests: {after_first:.1} MiB; after {memory_requests}: {after_all:.1} MiB; growth {:+.1} MiB",
            fresh.count(),
            after_all - after_first
        );
        drop(gw);
        miss_cost(gateway, model, &mock_url, &data_dir, connections, rounds).await
    })?;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

/// What the cache costs a request it cannot answer: every question new, through a gateway with
/// the cache off and through one with it on (looked up, then its answer stored: the embedding,
/// the semantic lookup, the guard, the graph and the row), in alternating rounds.
async fn miss_cost(
    gateway: &std::path::Path,
    model: &std::path::Path,
    mock_url: &str,
    data_dir: &std::path::Path,
    connections: usize,
    rounds: u64,
) -> anyhow::Result<()> {
    println!(
        "\nnew questions (every request a miss), upstream over HTTP/1.1: the cache off vs on; {connections} connections, {rounds} alternating 1 s rounds"
    );
    if !model.join("model.safetensors").exists() {
        println!(
            "(skipped: no embedding model in {}; run scripts/fetch-model)",
            model.display()
        );
        return Ok(());
    }
    let model = model.to_string_lossy();
    let start = |cache: bool| -> anyhow::Result<(Guard, SocketAddr)> {
        let dir = data_dir.join(format!("miss-cost-cache-{cache}"));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("bench.toml");
        std::fs::write(
            &config,
            format!(
                "[[targets]]\nname = \"openai\"\nbase_url = \"{mock_url}\"\napi_key_env = \"OPENAI_API_KEY\"\n"
            ),
        )?;
        let enabled = if cache { "true" } else { "false" };
        spawn_gateway(
            gateway,
            &config,
            &dir,
            &[
                ("REPRISE_MODEL_DIR", &model),
                ("REPRISE_CACHE_ENABLED", enabled),
            ],
        )
    };
    let (off, off_addr) = start(false)?;
    let (on, on_addr) = start(true)?;
    // More new questions than a round can take; the round's end stops them.
    let mut next = 0usize;
    let mut questions = |n: usize| -> Vec<String> {
        let batch = (next..next + n)
            .map(|i| {
                chat_body(&format!(
                    "What happened in the year {i} of the new calendar?"
                ))
            })
            .collect();
        next += n;
        batch
    };
    let path = "/v1/chat/completions";
    let mut sent = [0usize; 2];
    let mut cpu = [0f64; 2];
    let mut elapsed = [Duration::ZERO; 2];
    for round in 0..=rounds {
        for (i, (guard, addr)) in [(&off, off_addr), (&on, on_addr)].into_iter().enumerate() {
            let bodies = questions(60_000);
            let started = Instant::now();
            let before = cpu_seconds(guard.0.id())?;
            let pace = crate::load::Pace::Until(started + Duration::from_secs(1));
            let n = crate::load::send_each(addr, path, &bodies, connections, pace).await?;
            // The first round warms both up.
            if round > 0 {
                sent[i] += n;
                cpu[i] += cpu_seconds(guard.0.id())? - before;
                elapsed[i] += started.elapsed();
            }
        }
    }
    let rate = |i: usize| sent[i] as f64 / elapsed[i].as_secs_f64().max(1e-9);
    let us = |i: usize| cpu[i] * 1e6 / sent[i].max(1) as f64;
    println!("                    req/s   gateway CPU µs a request");
    println!("cache off        {:>8.0}   {:>8.1}", rate(0), us(0));
    println!("cache on         {:>8.0}   {:>8.1}", rate(1), us(1));
    println!(
        "with the cache on, misses at {:.1} % of the rate with it off, {:.2}x the CPU ({} new questions measured through it, each stored)",
        100.0 * rate(1) / rate(0).max(1e-9),
        us(1) / us(0).max(1e-9),
        sent[1]
    );
    Ok(())
}

/// The processes whose CPU time a phase counts: `first` in the first load's rounds (the mock,
/// loaded directly), `second` in the second's (the gateway the same load went through).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pids {
    pub(crate) first: u32,
    pub(crate) second: u32,
}

/// CPU seconds spent by [`Pids::first`] in the first load's rounds and by [`Pids::second`] in
/// the second's.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Cpu {
    pub(crate) first: f64,
    pub(crate) second: f64,
}

/// Runs `a` (direct) and `b` (through the gateway) in alternating rounds so the machine's noise
/// falls on both alike, counting the CPU time of `pids.first` during `a` and of `pids.second`
/// during `b`.
pub(crate) async fn interleave<'l, F, Fut>(
    rounds: u64,
    a: &'l Load,
    b: &'l Load,
    pids: Pids,
    run: F,
) -> anyhow::Result<(Report, Report, Cpu)>
where
    F: Fn(&'l Load) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Report>>,
{
    let (mut ra, mut rb) = (Report::empty()?, Report::empty()?);
    let mut cpu = Cpu::default();
    for _ in 0..rounds {
        let before = cpu_seconds(pids.first)?;
        ra.absorb(&run(a).await?)?;
        cpu.first += cpu_seconds(pids.first)? - before;
        let before = cpu_seconds(pids.second)?;
        rb.absorb(&run(b).await?)?;
        cpu.second += cpu_seconds(pids.second)? - before;
    }
    Ok((ra, rb, cpu))
}

/// CPU microseconds per request of `report`'s run, from `secs` of CPU time.
pub(crate) fn per_request_us(secs: f64, report: &Report) -> f64 {
    1e6 * secs / report.count().max(1) as f64
}

/// A closed-loop phase's table, CPU per request and share of direct throughput; returns the
/// gateway's CPU microseconds per request and its share.
fn print_closed(cpu: Cpu, direct: &Report, through: &Report) -> (f64, f64) {
    print_table(direct, through);
    let mock = per_request_us(cpu.first, direct);
    let gateway = per_request_us(cpu.second, through);
    println!(
        "CPU per request: mock upstream {mock:.1} µs (one HTTP exchange), gateway {gateway:.1} µs \
         (two exchanges: {:.2}x the mock)",
        gateway / mock.max(1e-9)
    );
    let share = through.rps() / direct.rps();
    println!(
        "throughput through the gateway: {:.1} % of direct",
        100.0 * share
    );
    (gateway, share)
}

fn print_table(direct: &Report, through: &Report) {
    print_table_named(("direct", direct), ("via reprise", through));
}

/// Prints two runs and their ratios (second over first).
pub(crate) fn print_table_named(first: (&str, &Report), second: (&str, &Report)) {
    let (direct, through) = (first.1, second.1);
    println!(
        "{:<14} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors"
    );
    for (name, r) in [first, second] {
        println!(
            "{:<14} {:>10.0} {:>10.3} {:>10.3} {:>10.3} {:>8}",
            name,
            r.rps(),
            r.percentile_ms(50.0),
            r.percentile_ms(99.0),
            r.percentile_ms(99.9),
            r.errors
        );
    }
    println!(
        "{:<14} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
        "ratio",
        through.rps() / direct.rps(),
        through.percentile_ms(50.0) / direct.percentile_ms(50.0),
        through.percentile_ms(99.0) / direct.percentile_ms(99.0),
        through.percentile_ms(99.9) / direct.percentile_ms(99.9),
    );
}
