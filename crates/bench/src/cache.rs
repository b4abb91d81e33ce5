//! `reprise-bench cache`: the semantic cache's hot paths, each against a baseline measured in
//! the same run: embedding a query (vs hashing the request for the exact tier), scanning one
//! scope of the index at several sizes, a semantic hit end to end through HTTP (vs a static
//! response of the same size from a plain server), and resident memory per 100k entries.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use reprise_cache::Key;
use reprise_cache::embed::{Embedder, Model2Vec};
use reprise_cache::semantic::{DEFAULT_THRESHOLD, ScopeIndex};

use crate::load::Load;
use crate::{Guard, rss_mib, spawn_and_find};

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000_000, 3)?)
}

fn pct(h: &Histogram<u64>, p: f64) -> f64 {
    h.value_at_percentile(p) as f64
}

const VERBS: &[&str] = &[
    "reverse", "sort", "copy", "merge", "split", "filter", "parse", "encode",
];
const NOUNS: &[&str] = &[
    "list", "string", "map", "file", "date", "tree", "array", "table",
];
const LANGS: &[&str] = &[
    "Python", "Rust", "Go", "Java", "Kotlin", "Swift", "Ruby", "Haskell",
];

fn question(i: usize) -> String {
    format!(
        "How do I {} a {} in {} without changing the original one, case {i}?",
        VERBS[i % 8],
        NOUNS[(i / 8) % 8],
        LANGS[(i / 64) % 8]
    )
}

/// A deterministic pseudo-random unit vector.
fn vector(seed: u64, dim: usize) -> Vec<f32> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut v: Vec<f32> = (0..dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2001) as f32 / 1000.0 - 1.0
        })
        .collect();
    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-9);
    v.iter_mut().for_each(|a| *a /= n);
    v
}

pub fn run(
    gateway: &Path,
    mock: &Path,
    model_dir: &Path,
    entries: usize,
    seconds: u64,
) -> anyhow::Result<()> {
    let model = Model2Vec::load(model_dir)?;
    println!(
        "reprise cache benchmark: {} cores, model {} ({} dimensions)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        model.name(),
        model.dim()
    );

    // 1. Embedding a query vs hashing the request (the exact tier's key).
    let queries: Vec<String> = (0..20_000).map(question).collect();
    let (mut embed, mut hash) = (histogram()?, histogram()?);
    for q in &queries {
        let request = serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": q}]});
        let t = Instant::now();
        std::hint::black_box(reprise_cache::keys::keys("", &request));
        hash.record(t.elapsed().as_nanos() as u64)?;
        let t = Instant::now();
        std::hint::black_box(model.embed(q));
        embed.record(t.elapsed().as_nanos() as u64)?;
    }
    println!("\nper query ({} queries of ~15 words)", queries.len());
    println!("{:<34} {:>10} {:>10}", "", "p50 µs", "p99 µs");
    println!(
        "{:<34} {:>10.2} {:>10.2}",
        "exact key (canonical JSON + BLAKE3)",
        pct(&hash, 50.0) / 1e3,
        pct(&hash, 99.0) / 1e3
    );
    println!(
        "{:<34} {:>10.2} {:>10.2}",
        "embedding (potion-base-8M)",
        pct(&embed, 50.0) / 1e3,
        pct(&embed, 99.0) / 1e3
    );
    println!(
        "ratio embedding / exact key: {:.2} at p50",
        pct(&embed, 50.0) / pct(&hash, 50.0)
    );

    // 2. Scanning one scope of the index.
    println!("\nindex lookup in one scope (full scan, threshold {DEFAULT_THRESHOLD})");
    println!(
        "{:>10} {:>10} {:>10} {:>14}",
        "entries", "p50 µs", "p99 µs", "vs 10k at p50"
    );
    let dim = model.dim();
    let mut base = None;
    for n in [10_000usize, 100_000, 1_000_000] {
        let index = ScopeIndex::default();
        let scope = Key([7; 32]);
        for i in 0..n {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            index.insert(scope, Key(k), &vector(i as u64, dim), format!("entry {i}"));
        }
        let mut h = histogram()?;
        let rounds = (2_000_000 / n).clamp(20, 2_000);
        for r in 0..rounds {
            let q = vector(u64::MAX - r as u64, dim);
            let t = Instant::now();
            std::hint::black_box(index.find(&scope, "a question", &q, DEFAULT_THRESHOLD));
            h.record(t.elapsed().as_nanos() as u64)?;
        }
        let p50 = pct(&h, 50.0);
        let b = *base.get_or_insert(p50);
        println!(
            "{:>10} {:>10.1} {:>10.1} {:>13.1}x",
            n,
            p50 / 1e3,
            pct(&h, 99.0) / 1e3,
            p50 / b
        );
    }

    // 3. A semantic hit end to end, and 4. memory per entries.
    let mut cmd = Command::new(mock);
    cmd.args(["--listen", "127.0.0.1:0"]);
    let (_mock, mock_url) =
        spawn_and_find(cmd, |l| l.strip_prefix("listening on ").map(str::to_owned))?;
    let data_dir = std::env::temp_dir().join(format!("reprise-bench-cache-{}", std::process::id()));
    std::fs::create_dir_all(&data_dir)?;
    let mut cmd = Command::new(gateway);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("OPENAI_API_KEY", "sk-bench")
        .env("OPENAI_BASE_URL", &mock_url)
        .env("REPRISE_DATA_DIR", &data_dir)
        .env("REPRISE_MODEL_DIR", model_dir)
        .env("REPRISE_LOG_FORMAT", "json");
    let (gw, gw_addr): (Guard, SocketAddr) = spawn_and_find(cmd, |l| {
        let (_, rest) = l.split_once("\"listen\":\"")?;
        rest.split('"').next()?.parse().ok()
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let rss_before = rss_mib(gw.0.id())?;
        // Fill one scope with distinct questions (misses through the mock).
        let fill: Vec<String> = (0..entries)
            .map(|i| serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question(i)}]}).to_string())
            .collect();
        let started = Instant::now();
        crate::load::send_each(gw_addr, "/v1/chat/completions", &fill, 32).await?;
        let rss_after = rss_mib(gw.0.id())?;
        println!(
            "\nfilled one scope with {entries} entries in {:.1} s; gateway resident memory {rss_before:.1} -> {rss_after:.1} MiB ({:.1} MiB per 100k entries)",
            started.elapsed().as_secs_f64(),
            (rss_after - rss_before) * 100_000.0 / entries.max(1) as f64
        );
        // The paraphrase of entry 0: an exact miss, then a semantic hit.
        let original = question(0);
        let paraphrase = original.replacen("How do I", "How can I", 1);
        let body: &'static str = Box::leak(
            serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": paraphrase}]})
                .to_string()
                .into_boxed_str(),
        );
        let probe = crate::load::fetch(gw_addr, "/v1/chat/completions", body).await?;
        anyhow::ensure!(
            probe.0.as_deref() == Some("semantic"),
            "the paraphrase was not a semantic hit ({:?})",
            probe.0
        );
        let size = probe.1.len();
        let static_addr = crate::load::static_server(probe.1)?;
        let hit = Load::new(gw_addr, "/v1/chat/completions", body);
        let plain = Load::new(static_addr, "/", body);
        let second = Duration::from_secs(1);
        for l in [&hit, &plain] {
            l.closed(8, second).await?;
        }
        let (mut h_all, mut s_all) = (crate::load::Report::empty()?, crate::load::Report::empty()?);
        for _ in 0..seconds {
            h_all.absorb(&hit.closed(8, second).await?)?;
            s_all.absorb(&plain.closed(8, second).await?)?;
        }
        println!(
            "\nsemantic hit through HTTP vs a plain server's static response of the same size ({size} bytes); 8 connections, {seconds} alternating 1 s rounds, {entries} entries in the scope"
        );
        crate::print_table_named(("static", &s_all), ("semantic hit", &h_all));
        let fixed = hit.fixed_rate(200, Duration::from_secs(seconds)).await?;
        println!(
            "semantic hit at a fixed 200 requests/s: p50 {:.3} ms, p99 {:.3} ms",
            fixed.percentile_ms(50.0),
            fixed.percentile_ms(99.0)
        );
        anyhow::Ok(())
    });
    drop(gw);
    let _ = std::fs::remove_dir_all(&data_dir);
    result.context("end-to-end phase")
}
