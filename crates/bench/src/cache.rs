//! `reprise-bench cache`: the semantic cache's hot paths, each against a baseline measured in
//! the same run: embedding a query (vs hashing the request for the exact tier), scanning one
//! scope of the index at several sizes, a semantic hit end to end through HTTP (vs a static
//! response of the same size from a plain server), and resident memory per 100k entries.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use reprise_cache::Key;
use reprise_cache::embed::{Embedder, Model2Vec};
use reprise_cache::guard::{Analysis, Closeness, check_analysed};
use reprise_cache::semantic::{DEFAULT_THRESHOLD, ScopeIndex, dot};

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

/// The model's whole-word, lower-case vocabulary, to make up varied questions from.
fn vocabulary(model_dir: &Path) -> anyhow::Result<Vec<String>> {
    let tokenizer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model_dir.join("tokenizer.json"))?)?;
    let words: Vec<String> = tokenizer["model"]["vocab"]
        .as_object()
        .context("tokenizer.json has no model.vocab")?
        .keys()
        .filter(|w| w.len() >= 3 && w.chars().all(|c| c.is_ascii_lowercase()))
        .cloned()
        .collect();
    anyhow::ensure!(
        words.len() > 1000,
        "too few words in the model's vocabulary"
    );
    Ok(words)
}

pub fn run(
    gateway: &Path,
    mock: &Path,
    model_dir: &Path,
    data_dir: &Path,
    entries: usize,
    seconds: u64,
    index_sizes: &[usize],
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
    let (mut analyse, mut guard) = (histogram()?, histogram()?);
    for (i, q) in queries.iter().enumerate() {
        let neighbour = question(i + 1);
        let t = Instant::now();
        let asked = std::hint::black_box(Analysis::of(q));
        analyse.record(t.elapsed().as_nanos() as u64)?;
        // The stored question's analysis is made when it is stored.
        let stored = Analysis::of(&neighbour);
        let t = Instant::now();
        std::hint::black_box(check_analysed(&asked, &stored, Closeness::Similar).is_ok());
        guard.record(t.elapsed().as_nanos() as u64)?;
        let request = serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": q}]});
        let t = Instant::now();
        std::hint::black_box(reprise_cache::keys::keys("", &request));
        hash.record(t.elapsed().as_nanos() as u64)?;
        let t = Instant::now();
        std::hint::black_box(model.embed_question(q));
        embed.record(t.elapsed().as_nanos() as u64)?;
    }
    println!("\nper query ({} queries of ~15 words)", queries.len());
    println!("{:<35} {:>10} {:>10}", "", "p50 µs", "p99 µs");
    for (label, h) in [
        ("exact key (canonical JSON + BLAKE3)", &hash),
        ("embedding (potion-base-8M)", &embed),
        ("guard: analysing the question", &analyse),
        ("guard: checking one candidate", &guard),
    ] {
        println!(
            "{label:<35} {:>10.2} {:>10.2}",
            pct(h, 50.0) / 1e3,
            pct(h, 99.0) / 1e3
        );
    }
    println!(
        "ratio embedding / exact key: {:.2} at p50; guard / exact key: {:.2} (a lookup analyses its question once and checks up to {} candidates)",
        pct(&embed, 50.0) / pct(&hash, 50.0),
        (pct(&analyse, 50.0) + pct(&guard, 50.0)) / pct(&hash, 50.0),
        reprise_cache::semantic::GUARDED_CANDIDATES
    );

    // 2a. Storing an answer into a full cache (every store evicts) vs into one with room.
    eviction_phase(entries.max(1_000))?;

    // 2. Looking up one scope of the index: the graph the gateway uses past
    // EXACT_SCAN_LIMIT entries, against an exact scan of the same vectors.
    let vocabulary = vocabulary(model_dir)?;
    println!(
        "\nindex lookup in one scope (threshold {DEFAULT_THRESHOLD}; questions of 5-12 random words from the model's vocabulary, each looked up as a paraphrase: the same words plus \"please\")"
    );
    println!(
        "{:>10} {:>10} {:>8} {:>10} {:>10} {:>13} {:>13} {:>13} {:>13} {:>9} {:>11} {:>9}",
        "entries",
        "insert µs",
        "load µs",
        "p50 µs",
        "p99 µs",
        "cold p50 µs",
        "storing p50",
        "storing p99",
        "exact p50 µs",
        "speedup",
        "recall@1 %",
        "loaded %"
    );
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for &n in index_sizes {
        let texts: Vec<String> = (0..n)
            .map(|_| {
                let words = 5 + (next() % 8) as usize;
                (0..words)
                    .map(|_| vocabulary[(next() % vocabulary.len() as u64) as usize].as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let probes: Vec<Probe> = (0..2_000)
            .map(|r| {
                let target = (r * 7919) % n;
                (target, format!("{} please", texts[target]))
            })
            .collect();
        index_row(&model, &n.to_string(), &texts, &probes)?;
    }
    match qqp_questions(&data_dir.join("qqp-dev.jsonl.gz")) {
        Ok((texts, probes)) => {
            println!(
                "real questions: the {} distinct questions of qqp-dev.jsonl.gz, each duplicate pair's second question looked up ({} lookups)",
                texts.len(),
                probes.len()
            );
            index_row(&model, &format!("{} qqp", texts.len()), &texts, &probes)?;
        }
        Err(err) => println!("(no real-question row: {err:#})"),
    }

    // 3. A semantic hit end to end, and 4. memory per entries.
    let mut cmd = Command::new(mock);
    cmd.args(["--listen", "127.0.0.1:0"]);
    let (_mock, mock_url) =
        spawn_and_find(cmd, |l| l.strip_prefix("listening on ").map(str::to_owned))?;
    let data_dir = std::env::temp_dir().join(format!("reprise-bench-cache-{}", std::process::id()));
    std::fs::create_dir_all(&data_dir)?;
    // Room for the filled scope and the later phases' entries: at the default bound (100,000
    // entries) the default fill leaves none, and what the later phases store is evicted first.
    let config = data_dir.join("bench-cache.toml");
    std::fs::write(
        &config,
        format!(
            "[[targets]]\nname = \"openai\"\nbase_url = \"{mock_url}\"\napi_key_env = \"OPENAI_API_KEY\"\n\n[cache]\nmax_entries = {}\nmax_bytes = {}\n",
            entries + 100_000,
            64u64 << 30
        ),
    )?;
    let model = model_dir.to_string_lossy();
    let (gw, gw_addr): (Guard, SocketAddr) = crate::spawn_gateway(
        gateway,
        &config,
        &data_dir,
        &[("REPRISE_MODEL_DIR", &model)],
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let rss_before = rss_mib(gw.0.id())?;
        // Fill one scope with distinct questions (misses through the mock).
        let fill: Vec<String> = (0..entries)
            .map(|i| crate::chat_body(&question(i)))
            .collect();
        let started = Instant::now();
        let cpu_before = crate::cpu_seconds(gw.0.id())?;
        crate::load::send_each(gw_addr, "/v1/chat/completions", &fill, 32, crate::load::Pace::BackToBack).await?;
        let cpu = crate::cpu_seconds(gw.0.id())? - cpu_before;
        let rss_after = rss_mib(gw.0.id())?;
        println!(
            "\nfilled one scope with {entries} entries in {:.1} s ({:.0} µs of gateway CPU a miss, its answer stored); gateway resident memory {rss_before:.1} -> {rss_after:.1} MiB ({:.1} MiB per 100k entries)",
            started.elapsed().as_secs_f64(),
            cpu * 1e6 / entries.max(1) as f64,
            (rss_after - rss_before) * 100_000.0 / entries.max(1) as f64
        );
        // The paraphrase of entry 0: an exact miss, then a semantic hit.
        let original = question(0);
        let paraphrase = original.replacen("How do I", "How can I", 1);
        let (body, answer) = hit_body(gw_addr, &paraphrase, "semantic").await?;
        let size = answer.len();
        let static_addr = crate::load::static_server(answer)?;
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
        let before = chat_durations(gw_addr).await?;
        let fixed = hit.fixed_rate(200, Duration::from_secs(seconds)).await?;
        let inside = delta(&chat_durations(gw_addr).await?, &before);
        let fixed_static = plain.fixed_rate(200, Duration::from_secs(seconds)).await?;
        println!("\nat a fixed 200 requests/s, {seconds} s each (latency from each request's scheduled time)");
        crate::print_table_named(("static", &fixed_static), ("semantic hit", &fixed));
        println!(
            "inside the gateway (its own request_duration_seconds histogram, {} hits): p50 <= {}, p99 <= {}",
            inside.iter().map(|b| b.1).max().unwrap_or(0),
            bucket_at(&inside, 0.50),
            bucket_at(&inside, 0.99)
        );
        // The semantic tier's own cost: the same entry found by its exact key and through the
        // embedding, the graph and the guard.
        let (exact_body, _) = hit_body(gw_addr, &original, "exact").await?;
        compare(
            gw.0.id(),
            seconds,
            &format!("semantic hit vs exact hit of the same entry, {entries} entries in the scope"),
            ("exact hit", &Load::new(gw_addr, "/v1/chat/completions", exact_body)),
            ("semantic hit", &hit),
        )
        .await?;
        storing_phase(gw_addr, &hit, entries, seconds).await?;
        // Had a paraphrase missed once (its answer then stored under its own exact key), the
        // rows above would have measured exact hits.
        still_hit(gw_addr, body, "semantic").await?;
        embeddings_phase(gw_addr, &mock_url, seconds).await?;
        hit_forms_phase(gw.0.id(), gw_addr, seconds).await
    });
    drop(gw);
    let _ = std::fs::remove_dir_all(&data_dir);
    result.context("end-to-end phase")
}

/// A chat completion's body asking `content` (leaked: the load generator holds it for the run),
/// and the gateway's answer to it, which must be a hit of `kind` ("exact" or "semantic").
async fn hit_body(
    gw_addr: SocketAddr,
    content: &str,
    kind: &str,
) -> anyhow::Result<(&'static str, bytes::Bytes)> {
    let body: &'static str = Box::leak(crate::chat_body(content).into_boxed_str());
    let answer = still_hit(gw_addr, body, kind).await?;
    Ok((body, answer))
}

/// The gateway's answer to `body`, which must be a hit of `kind` ("exact" or "semantic").
async fn still_hit(
    gw_addr: SocketAddr,
    body: &'static str,
    kind: &str,
) -> anyhow::Result<bytes::Bytes> {
    let (found, answer) = crate::load::fetch(gw_addr, "/v1/chat/completions", body).await?;
    anyhow::ensure!(
        found.as_deref() == Some(kind),
        "{body}: expected a hit of the {kind} tier, the gateway answered {found:?}"
    );
    Ok(answer)
}

/// A stored entry for the eviction phase: a typical chat completion of about 600 bytes, some
/// with hits, so that choosing the least valuable has an order to find.
fn bench_entry(i: usize, now_ms: u64, answer: &serde_json::Value) -> reprise_cache::Entry {
    let completion = reprise_cache::Stored::compact(answer);
    let bytes = completion.text().len() as u64;
    let mut exact = [0u8; 32];
    exact[..8].copy_from_slice(&(i as u64).to_le_bytes());
    reprise_cache::Entry {
        exact: Key(exact),
        scope: Key([1; 32]),
        namespace: String::new(),
        model: "gpt-4o-mini".into(),
        provider: "openai".into(),
        prompt: Some(question(i)),
        completion,
        bytes,
        created_ms: now_ms + i as u64,
        expires_ms: now_ms + 86_400_000,
        hits: std::sync::atomic::AtomicU64::new(u64::from(i.is_multiple_of(7)) * (i % 5) as u64),
    }
}

/// Inserting into the exact index when it is at its entry bound (each insert evicts what the
/// bound pushes out) against inserting into the same index with room, `entries` held.
fn eviction_phase(entries: usize) -> anyhow::Result<()> {
    use reprise_cache::{Bounds, ExactIndex};
    use std::sync::Arc;
    let completion = serde_json::json!({
        "id": "chatcmpl-0123456789", "object": "chat.completion", "created": 1_700_000_000u64,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "refusal": null,
            "content": "Use sorted(xs) in Python: it returns a new sorted list and leaves the original one unchanged. For a list of records, pass key=lambda r: r.name, and reverse=True for descending order."},
            "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 24, "completion_tokens": 41, "total_tokens": 65},
        "system_fingerprint": "fp_0123456789"});
    let inserts = (entries / 20).max(200);
    let now = 1_700_000_000_000u64;
    let mut rows = Vec::new();
    for (label, max_entries) in [("with room", entries + inserts), ("full", entries)] {
        let index = ExactIndex::new(Bounds {
            max_entries,
            max_bytes: u64::MAX,
        });
        for i in 0..entries {
            index.insert(Arc::new(bench_entry(i, now, &completion)), now);
        }
        let mut h = histogram()?;
        let mut evicted = 0usize;
        for i in entries..entries + inserts {
            let entry = Arc::new(bench_entry(i, now, &completion));
            let t = Instant::now();
            evicted += std::hint::black_box(index.insert(entry, now)).len();
            h.record(t.elapsed().as_nanos().max(1) as u64)?;
        }
        rows.push((label, h, evicted, index.len()));
    }
    println!(
        "\nstoring an answer: {inserts} inserts into the exact index holding {entries} entries, with room vs at its entry bound"
    );
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9}",
        "", "mean µs", "p50 µs", "p99 µs", "max µs", "evicted", "held"
    );
    for (label, h, evicted, held) in &rows {
        println!(
            "{label:<12} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {evicted:>9} {held:>9}",
            h.mean() / 1e3,
            pct(h, 50.0) / 1e3,
            pct(h, 99.0) / 1e3,
            h.max() as f64 / 1e3
        );
    }
    println!(
        "ratio full / with room: {:.2} (mean), {:.2} (p99)",
        rows[1].1.mean() / rows[0].1.mean(),
        pct(&rows[1].1, 99.0) / pct(&rows[0].1, 99.0)
    );
    Ok(())
}

/// Phase 5: an embeddings batch whose inputs are all in the cache, against a static response of the
/// same size and against the mock upstream embedding the same batch.
async fn embeddings_phase(gw_addr: SocketAddr, mock_url: &str, seconds: u64) -> anyhow::Result<()> {
    let inputs: Vec<String> = (0..16)
        .map(|i| {
            format!("Section {i} of the operations handbook: how the gateway rotates its keys")
        })
        .collect();
    let body: &'static str = Box::leak(
        serde_json::json!({"model": "text-embedding-3-small", "input": inputs})
            .to_string()
            .into_boxed_str(),
    );
    crate::load::fetch(gw_addr, "/v1/embeddings", body).await?;
    let probe = crate::load::fetch(gw_addr, "/v1/embeddings", body).await?;
    anyhow::ensure!(
        probe.0.as_deref() == Some("exact"),
        "the repeated batch was not a hit ({:?})",
        probe.0
    );
    let size = probe.1.len();
    let mock_addr: SocketAddr = mock_url
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .parse()
        .context("the mock's address")?;
    let static_addr = crate::load::static_server(probe.1)?;
    let hit = Load::new(gw_addr, "/v1/embeddings", body);
    let plain = Load::new(static_addr, "/", body);
    let upstream = Load::new(mock_addr, "/v1/embeddings", body);
    let second = Duration::from_secs(1);
    for l in [&hit, &plain, &upstream] {
        l.closed(8, second).await?;
    }
    let mut all = [
        crate::load::Report::empty()?,
        crate::load::Report::empty()?,
        crate::load::Report::empty()?,
    ];
    for _ in 0..seconds {
        for (report, load) in all.iter_mut().zip([&hit, &plain, &upstream]) {
            report.absorb(&load.closed(8, second).await?)?;
        }
    }
    let [hit_all, static_all, upstream_all] = &all;
    println!(
        "\nembeddings: a batch of 16 inputs all in the cache ({size} bytes answered); 8 connections, {seconds} alternating 1 s rounds"
    );
    crate::print_table_named(("static", static_all), ("cached batch", hit_all));
    crate::print_table_named(("mock upstream", upstream_all), ("cached batch", hit_all));
    Ok(())
}

/// Semantic hits at a fixed rate alone, and while new questions arrive (misses: each answer is
/// stored, its question added to the semantic tier), in alternating rounds: what storing costs
/// the hits served beside it.
async fn storing_phase(
    gw_addr: SocketAddr,
    hit: &Load,
    entries: usize,
    seconds: u64,
) -> anyhow::Result<()> {
    const RATE: u64 = 500;
    const MISSES: u64 = 200;
    const MISS_CONNECTIONS: usize = 4;
    let second = Duration::from_secs(1);
    let (mut alone, mut beside) = (crate::load::Report::empty()?, crate::load::Report::empty()?);
    let (mut next, mut stored) = (entries + 1_000_000, 0usize);
    for _ in 0..seconds {
        alone.absorb(&hit.fixed_rate(RATE, second).await?)?;
        let fresh: Vec<String> = (next..next + MISSES as usize)
            .map(|i| crate::chat_body(&question(i)))
            .collect();
        next += fresh.len();
        let pace = crate::load::Pace::Paced {
            every: Duration::from_secs_f64(MISS_CONNECTIONS as f64 / MISSES as f64),
            until: Instant::now() + second,
        };
        let (hits, misses) = tokio::join!(
            hit.fixed_rate(RATE, second),
            crate::load::send_each(
                gw_addr,
                "/v1/chat/completions",
                &fresh,
                MISS_CONNECTIONS,
                pace
            )
        );
        beside.absorb(&hits?)?;
        stored += misses?;
    }
    println!(
        "\nsemantic hits at a fixed {RATE} requests/s, alone vs beside new questions at {MISSES} a second (misses, each stored: {:.0} a second), {seconds} alternating 1 s rounds, {entries} entries in the scope",
        stored as f64 / seconds.max(1) as f64
    );
    crate::print_table_named(("hits alone", &alone), ("beside misses", &beside));
    Ok(())
}

/// Phase 6: a Responses API exact hit (`"store": false`) against a chat completion's exact hit
/// of the same question: what building a fresh response object costs over a chat completion;
/// then the chat hit replayed as a stream of chunks (with the usage chunk) against the same hit
/// as JSON: what serving a hit in the form a streaming client asked for costs.
async fn hit_forms_phase(gateway: u32, gw_addr: SocketAddr, seconds: u64) -> anyhow::Result<()> {
    let question = "How do I rotate the gateway's keys without downtime?";
    let leak = |v: serde_json::Value| -> &'static str { Box::leak(v.to_string().into_boxed_str()) };
    let chat = leak(serde_json::json!({"model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": question}]}));
    let responses = leak(
        serde_json::json!({"model": "gpt-4o-mini", "input": question,
        "store": false}),
    );
    let streamed = leak(serde_json::json!({"model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": question}],
        "stream": true, "stream_options": {"include_usage": true}}));
    for (path, body) in [
        ("/v1/chat/completions", chat),
        ("/v1/responses", responses),
        ("/v1/chat/completions", streamed),
    ] {
        crate::load::fetch(gw_addr, path, body).await?;
        let probe = crate::load::fetch(gw_addr, path, body).await?;
        anyhow::ensure!(
            probe.0.as_deref() == Some("exact"),
            "{path}: the repeated request was not a hit ({:?})",
            probe.0
        );
    }
    let (_, replayed) = crate::load::fetch(gw_addr, "/v1/chat/completions", streamed).await?;
    let replayed = String::from_utf8_lossy(&replayed);
    let events = replayed.matches("data: ").count();
    anyhow::ensure!(
        events >= 3 && replayed.ends_with("data: [DONE]\n\n"),
        "the streamed hit was not a whole stream: {replayed}"
    );
    let chat_hit = Load::new(gw_addr, "/v1/chat/completions", chat);
    compare(
        gateway,
        seconds,
        "Responses API exact hit vs chat completion exact hit (the same question)",
        ("chat hit", &chat_hit),
        (
            "responses hit",
            &Load::new(gw_addr, "/v1/responses", responses),
        ),
    )
    .await?;
    compare(
        gateway,
        seconds,
        &format!(
            "chat completion exact hit replayed as a stream ({events} events, usage chunk) vs as JSON (the same entry)"
        ),
        ("JSON hit", &chat_hit),
        (
            "streamed hit",
            &Load::new(gw_addr, "/v1/chat/completions", streamed),
        ),
    )
    .await
}

/// Loads `a` and `b` (both through the gateway, process `gateway`) in alternating one-second
/// rounds (8 connections) and prints both under `caption`, with the gateway's CPU time per
/// request in each: a figure the machine's noise moves less than the rates.
async fn compare(
    gateway: u32,
    seconds: u64,
    caption: &str,
    a: (&str, &Load),
    b: (&str, &Load),
) -> anyhow::Result<()> {
    let second = Duration::from_secs(1);
    for l in [a.1, b.1] {
        l.closed(8, second).await?;
    }
    let both = crate::Pids {
        first: gateway,
        second: gateway,
    };
    let (a_all, b_all, cpu) =
        crate::interleave(seconds, a.1, b.1, both, |l| l.closed(8, second)).await?;
    println!("\n{caption}; 8 connections, {seconds} alternating 1 s rounds");
    crate::print_table_named((a.0, &a_all), (b.0, &b_all));
    let (a_us, b_us) = (
        crate::per_request_us(cpu.first, &a_all),
        crate::per_request_us(cpu.second, &b_all),
    );
    println!(
        "gateway CPU per request: {} {a_us:.1} µs, {} {b_us:.1} µs ({:+.1} µs, {:.2}x)",
        a.0,
        b.0,
        b_us - a_us,
        b_us / a_us.max(1e-9)
    );
    Ok(())
}

/// The cumulative buckets (upper bound in seconds, count) of the gateway's request duration
/// histogram for the chat route, from its `/metrics`.
async fn chat_durations(gateway: SocketAddr) -> anyhow::Result<Vec<(f64, u64)>> {
    let text = crate::load::get(gateway, "/metrics").await?;
    let mut buckets = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("reprise_request_duration_seconds_bucket{") else {
            continue;
        };
        if !rest.contains("route=\"/v1/chat/completions\"") {
            continue;
        }
        let (labels, count) = rest.rsplit_once(' ').unwrap_or_default();
        let le = labels
            .split("le=\"")
            .nth(1)
            .and_then(|v| v.split('"').next())
            .unwrap_or_default();
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse()?
        };
        buckets.push((le, count.trim().parse()?));
    }
    anyhow::ensure!(
        !buckets.is_empty(),
        "no chat duration histogram in /metrics"
    );
    Ok(buckets)
}

/// Bucket counts of `after` minus those of `before` (same buckets).
fn delta(after: &[(f64, u64)], before: &[(f64, u64)]) -> Vec<(f64, u64)> {
    after
        .iter()
        .map(|&(le, n)| {
            let was = before.iter().find(|b| b.0 == le).map_or(0, |b| b.1);
            (le, n.saturating_sub(was))
        })
        .collect()
}

/// The upper bound of the bucket holding quantile `q` of cumulative `buckets`, as text.
fn bucket_at(buckets: &[(f64, u64)], q: f64) -> String {
    let total = buckets.iter().map(|b| b.1).max().unwrap_or(0);
    let rank = (q * total as f64).ceil() as u64;
    match buckets.iter().find(|b| b.1 >= rank.max(1)) {
        Some((le, _)) if le.is_finite() => format!("{:.3} ms", le * 1e3),
        _ => "(beyond the last bucket)".to_owned(),
    }
}

/// A lookup: the position of the entry it paraphrases, and its text.
type Probe = (usize, String);

/// Fills one scope with `texts` and looks up each probe (the position of the entry it
/// paraphrases, and its text), first one after another, then each right after an exact scan of
/// every vector ("cold": the scan leaves the processor's caches holding the vectors, not the
/// graph), then while another thread stores questions into the scope ("storing"): one row of
/// the index table.
fn index_row(
    model: &Model2Vec,
    label: &str,
    texts: &[String],
    probes: &[Probe],
) -> anyhow::Result<()> {
    let dim = model.dim();
    let index = ScopeIndex::default();
    let scope = Key([7; 32]);
    let key = |i: usize| {
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&(i as u64).to_le_bytes());
        Key(k)
    };
    let mut flat = Vec::with_capacity(texts.len() * dim);
    let mut insert = histogram()?;
    for (i, text) in texts.iter().enumerate() {
        let v = model.embed_question(text);
        let t = Instant::now();
        index.insert(scope, key(i), &v, text)?;
        insert.record(t.elapsed().as_nanos() as u64)?;
        flat.extend_from_slice(&v);
    }
    // The same questions loaded at once, as on start-up: embedded, read and put in the graph on
    // every core.
    let loaded = ScopeIndex::default();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let questions: Vec<(Key, Key, String)> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (scope, key(i), t.clone()))
        .collect();
    let t = Instant::now();
    loaded.load(questions, model, threads)?;
    let load_us = t.elapsed().as_secs_f64() * 1e6 / texts.len().max(1) as f64;
    let (mut graph, mut cold, mut exact) = (histogram()?, histogram()?, histogram()?);
    let (mut recalled, mut agreed, mut recalled_loaded) = (0usize, 0usize, 0usize);
    let asked: Vec<(usize, &str, Vec<f32>)> = probes
        .iter()
        .map(|(target, text)| (*target, text.as_str(), model.embed_question(text)))
        .collect();
    // One lookup after another, as a gateway serving semantic hits makes them.
    for (target, text, q) in &asked {
        let t = Instant::now();
        let found = std::hint::black_box(index.find(&scope, text, q, DEFAULT_THRESHOLD));
        graph.record(t.elapsed().as_nanos() as u64)?;
        recalled += usize::from(found.first().map(|f| f.0) == Some(key(*target)));
    }
    for (target, text, q) in &asked {
        let found = loaded.find(&scope, text, q, DEFAULT_THRESHOLD);
        recalled_loaded += usize::from(found.first().map(|f| f.0) == Some(key(*target)));
    }
    // The exact scan reads every vector (100 MB at 100k entries), which leaves the processor's
    // caches holding them rather than the graph: the lookup after it is a cold one.
    for (target, text, q) in &asked {
        let t = Instant::now();
        let best = flat
            .chunks_exact(dim)
            .map(|v| dot(v, q))
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1));
        std::hint::black_box(best);
        exact.record(t.elapsed().as_nanos() as u64)?;
        agreed += usize::from(best.map(|b| b.0) == Some(*target));
        let t = Instant::now();
        std::hint::black_box(index.find(&scope, text, q, DEFAULT_THRESHOLD));
        cold.record(t.elapsed().as_nanos() as u64)?;
    }
    // One lookup after another while another thread stores questions into the same scope, as
    // the gateway stores each answer a miss fetched (the asked questions, under new keys).
    let mut storing = histogram()?;
    let stop = AtomicBool::new(false);
    let stored = std::thread::scope(|s| -> anyhow::Result<usize> {
        let writer = s.spawn(|| -> anyhow::Result<usize> {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let (_, text, q) = &asked[n % asked.len()];
                index.insert(scope, key(texts.len() + n), q, text)?;
                n += 1;
            }
            Ok(n)
        });
        for (_, text, q) in &asked {
            let t = Instant::now();
            std::hint::black_box(index.find(&scope, text, q, DEFAULT_THRESHOLD));
            storing.record(t.elapsed().as_nanos() as u64)?;
        }
        stop.store(true, Ordering::Relaxed);
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("the storing thread panicked"))?
    })?;
    println!(
        "{:>10} {:>10.1} {:>8.1} {:>10.1} {:>10.1} {:>13.1} {:>13.1} {:>13.1} {:>13.1} {:>8.1}x {:>11.1} {:>9.1}  (exact scan: own entry most similar for {:.1} %; {} stored during the storing lookups)",
        label,
        insert.mean() / 1e3,
        load_us,
        pct(&graph, 50.0) / 1e3,
        pct(&graph, 99.0) / 1e3,
        pct(&cold, 50.0) / 1e3,
        pct(&storing, 50.0) / 1e3,
        pct(&storing, 99.0) / 1e3,
        pct(&exact, 50.0) / 1e3,
        pct(&exact, 50.0) / pct(&graph, 50.0),
        recalled as f64 * 100.0 / probes.len().max(1) as f64,
        recalled_loaded as f64 * 100.0 / probes.len().max(1) as f64,
        agreed as f64 * 100.0 / probes.len().max(1) as f64,
        stored
    );
    Ok(())
}

/// For up to 2,000 duplicate pairs of the QQP file, the second question as a probe; the index
/// holds every other distinct question of the file (the probes' own texts left out, so that
/// each probe finds its pair's first question, not itself).
fn qqp_questions(path: &Path) -> anyhow::Result<(Vec<String>, Vec<Probe>)> {
    use std::collections::{HashMap, HashSet};
    use std::io::BufRead;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(file));
    let mut pairs = Vec::new();
    let mut probed = HashSet::new();
    for line in reader.lines() {
        let pair: serde_json::Value = serde_json::from_str(&line?)?;
        let (Some(a), Some(b)) = (pair["text_a"].as_str(), pair["text_b"].as_str()) else {
            continue;
        };
        let duplicate = pair["label"].as_u64() == Some(1);
        if duplicate && probed.len() < 2_000 && a != b {
            probed.insert(b.to_owned());
        }
        pairs.push((a.to_owned(), b.to_owned(), duplicate));
    }
    let mut position: HashMap<String, usize> = HashMap::new();
    let mut texts = Vec::new();
    for (a, b, _) in &pairs {
        for t in [a, b] {
            if !probed.contains(t) && !position.contains_key(t) {
                position.insert(t.clone(), texts.len());
                texts.push(t.clone());
            }
        }
    }
    let probes = pairs
        .iter()
        .filter(|(_, b, duplicate)| *duplicate && probed.remove(b))
        .filter_map(|(a, b, _)| Some((*position.get(a)?, b.clone())))
        .collect();
    Ok((texts, probes))
}
