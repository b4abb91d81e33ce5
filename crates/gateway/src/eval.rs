//! `reprise eval`: the semantic cache's quality on labelled question pairs, with the two
//! protocols of `../shared/data/README.md`: pairs (is `text_b` served from an entry made for
//! `text_a`?) and retrieval (every `text_a` cached in one scope, every `text_b` asked).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::Context;
use reprise_cache::Key;
use reprise_cache::embed::{Embedder, cosine};
use reprise_cache::guard::{self, Closeness, Veto};
use reprise_cache::semantic::{Asked, Matching, Refusal, ScopeIndex, decide};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Pair {
    text_a: String,
    text_b: String,
    label: u8,
    #[serde(default)]
    capability: Option<String>,
    #[serde(default)]
    test: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MockPair {
    origin: String,
    similar: String,
}

/// A pair scored once: similarity and whether the guard lets it through.
struct Scored {
    label: bool,
    similarity: f32,
    /// The guard's veto when the pair is at or above the threshold...
    veto: Option<Veto>,
    /// ...when it is [`guard::CLOSE_MARGIN`] above it...
    veto_close: Option<Veto>,
    /// ...and when it is [`guard::VERY_CLOSE_MARGIN`] above it.
    veto_very: Option<Veto>,
    capability: String,
    test: String,
}

impl Scored {
    /// The guard's veto at `threshold`, if any.
    fn veto(&self, threshold: f32) -> Option<Veto> {
        match Closeness::of(self.similarity, threshold) {
            Closeness::Similar => self.veto,
            Closeness::Close => self.veto_close,
            Closeness::VeryClose => self.veto_very,
        }
    }

    /// Whether the guard lets the pair through at `threshold`.
    fn guarded(&self, threshold: f32) -> bool {
        self.veto(threshold).is_none()
    }

    /// Whether the cache serves the pair at `threshold`, and if not, the guard's reason (none:
    /// below the threshold).
    fn decision(&self, threshold: f32) -> (bool, Option<Veto>) {
        if self.similarity < threshold {
            return (false, None);
        }
        let veto = self.veto(threshold);
        (veto.is_none(), veto)
    }
}

/// A decision in words: "served", the guard's veto, or "below threshold".
fn reason(serve: bool, veto: Option<Veto>) -> &'static str {
    match (serve, veto) {
        (true, _) => "served",
        (false, Some(v)) => v.as_str(),
        (false, None) => "below threshold",
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    tp: u64,
    fp: u64,
    fn_: u64,
    tn: u64,
}

impl Counts {
    fn add(&mut self, label: bool, served: bool) {
        match (label, served) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (true, false) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }
    fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    fn false_hit_rate(&self) -> f64 {
        ratio(self.fp, self.fp + self.tn)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn read_pairs(path: &Path) -> anyhow::Result<Vec<Pair>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut pairs = Vec::new();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        pairs.push(
            serde_json::from_str(&line)
                .with_context(|| format!("{}: line {}", path.display(), i + 1))?,
        );
    }
    Ok(pairs)
}

fn score(embedder: &dyn Embedder, pairs: &[Pair]) -> Vec<Scored> {
    pairs
        .iter()
        .map(|p| {
            let a = embedder.embed_question(&p.text_a);
            let b = embedder.embed_question(&p.text_b);
            Scored {
                label: p.label == 1,
                similarity: cosine(&b, &a),
                veto: guard::check(&p.text_b, &p.text_a, Closeness::Similar).err(),
                veto_close: guard::check(&p.text_b, &p.text_a, Closeness::Close).err(),
                veto_very: guard::check(&p.text_b, &p.text_a, Closeness::VeryClose).err(),
                capability: p.capability.clone().unwrap_or_default(),
                test: p.test.clone().unwrap_or_default(),
            }
        })
        .collect()
}

fn counts(scored: &[Scored], threshold: f32, guarded: bool) -> Counts {
    let mut c = Counts::default();
    for s in scored {
        c.add(
            s.label,
            s.similarity >= threshold && (!guarded || s.guarded(threshold)),
        );
    }
    c
}

fn sweep(name: &str, scored: &[Scored], threshold: f32) {
    println!("\n{name}: pairs protocol ({} pairs)", scored.len());
    println!(
        "{:>9}  {:>26}  {:>26}",
        "threshold", "cosine alone: P / R / FHR", "with guard: P / R / FHR"
    );
    let mut thresholds: Vec<f32> = (10..=19).map(|i| i as f32 * 0.05).collect();
    thresholds.push(threshold);
    thresholds.sort_by(f32::total_cmp);
    thresholds.dedup();
    for t in thresholds {
        let plain = counts(scored, t, false);
        let guarded = counts(scored, t, true);
        println!(
            "{:>9.2}  {:>7.1}% {:>7.1}% {:>7.1}%  {:>7.1}% {:>7.1}% {:>7.1}%{}",
            t,
            100.0 * plain.precision(),
            100.0 * plain.recall(),
            100.0 * plain.false_hit_rate(),
            100.0 * guarded.precision(),
            100.0 * guarded.recall(),
            100.0 * guarded.false_hit_rate(),
            if (t - threshold).abs() < 1e-6 {
                "  <- default"
            } else {
                ""
            }
        );
    }
    // Recall at precision >= 99 %: the best recall over thresholds where precision holds.
    let best = |guarded: bool| {
        (0..=100)
            .map(|i| counts(scored, i as f32 / 100.0, guarded))
            .filter(|c| c.tp > 0 && c.precision() >= 0.99)
            .map(|c| c.recall())
            .fold(0.0f64, f64::max)
    };
    println!(
        "recall at precision >= 99 %: cosine alone {:.1}%, with guard {:.1}%",
        100.0 * best(false),
        100.0 * best(true)
    );
}

fn per_group(scored: &[Scored], threshold: f32, by_test: bool) {
    let mut groups: BTreeMap<&str, (Counts, Counts)> = BTreeMap::new();
    for s in scored {
        let key = if by_test { &s.test } else { &s.capability };
        let entry = groups.entry(key).or_default();
        entry.0.add(s.label, s.similarity >= threshold);
        entry
            .1
            .add(s.label, s.similarity >= threshold && s.guarded(threshold));
    }
    println!(
        "\n{:<60} {:>5} {:>5}  {:>17}  {:>17}",
        if by_test { "test" } else { "capability" },
        "pos",
        "neg",
        "cosine: pos / neg",
        "guarded: pos / neg"
    );
    for (name, (plain, guarded)) in groups {
        let pos = plain.tp + plain.fn_;
        let neg = plain.fp + plain.tn;
        let pct = |a: u64, b: u64| {
            if b == 0 {
                "    -".to_owned()
            } else {
                format!("{:>4.0}%", 100.0 * ratio(a, b))
            }
        };
        let name: String = name.chars().take(60).collect();
        println!(
            "{:<60} {:>5} {:>5}  {:>8} / {:>6}  {:>8} / {:>6}",
            name,
            pos,
            neg,
            pct(plain.tp, pos),
            pct(plain.fp, neg),
            pct(guarded.tp, pos),
            pct(guarded.fp, neg)
        );
    }
    println!(
        "(pos: share of positive pairs served; neg: share of negative pairs served, i.e. false hits)"
    );
}

/// The retrieval protocol on the GPTCache mock file: every `origin` cached in one scope, every
/// `similar` asked; a hit is served from the best candidate above the threshold that passes the
/// guard.
fn retrieval(
    embedder: &dyn Embedder,
    path: &Path,
    threshold: f32,
    margin: f32,
    explain: bool,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let pairs: Vec<MockPair> = serde_json::from_str(&text)?;
    let origins: Vec<Vec<f32>> = pairs
        .iter()
        .map(|p| embedder.embed_question(&p.origin))
        .collect();
    println!(
        "\ngptcache-mock.json: retrieval protocol ({} entries, {} questions)",
        pairs.len(),
        pairs.len()
    );
    println!(
        "{:>9}  {:>8} {:>8} {:>8} {:>8}  {:>9} {:>7}",
        "threshold", "hits", "correct", "false", "misses", "precision", "recall"
    );
    let asked: Vec<Vec<f32>> = pairs
        .iter()
        .map(|p| embedder.embed_question(&p.similar))
        .collect();
    // The gateway's own index: every origin in one scope. As in the gateway, where the exact
    // key is the request's, an origin that occurs twice (35 do) is one entry, under the key of
    // its first occurrence, and its answer answers both.
    let scope = Key([0; 32]);
    let key = |i: usize| {
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&(i as u64).to_le_bytes());
        Key(k)
    };
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, p) in pairs.iter().enumerate() {
        first.entry(p.origin.as_str()).or_insert(i);
    }
    let own = |i: usize| key(first[pairs[i].origin.as_str()]);
    let index = ScopeIndex::default();
    for (i, (p, o)) in pairs.iter().zip(&origins).enumerate() {
        index.insert(scope, own(i), o, &p.origin)?;
    }
    println!(
        "({} distinct origins: an origin cached twice is one entry, as in the gateway)",
        first.len()
    );
    for t in [0.6, 0.65, 0.7, 0.75, threshold, 0.85, 0.9] {
        let (mut correct, mut wrong, mut misses) = (0u64, 0u64, 0u64);
        for (i, q) in asked.iter().enumerate() {
            match index.serve(
                &scope,
                &pairs[i].similar,
                q,
                Matching {
                    threshold: t,
                    margin,
                },
            ) {
                Some((k, _)) if k == own(i) => correct += 1,
                Some(_) => wrong += 1,
                None => misses += 1,
            }
        }
        let n = pairs.len() as u64;
        println!(
            "{:>9.2}  {:>8} {:>8} {:>8} {:>8}  {:>8.1}% {:>6.1}%{}",
            t,
            correct + wrong,
            correct,
            wrong,
            misses,
            100.0 * ratio(correct, correct + wrong),
            100.0 * ratio(correct, n),
            if (t - threshold).abs() < 1e-6 {
                "  <- default"
            } else {
                ""
            }
        );
    }
    // Why a question's own entry was not served at the default threshold.
    let mut reasons: BTreeMap<&str, u64> = BTreeMap::new();
    for (i, q) in asked.iter().enumerate() {
        let d = decide(
            &pairs[i].similar,
            q,
            &pairs[i].origin,
            &origins[i],
            threshold,
        );
        let why = if d.serve {
            // The own entry passes on its own; the index refuses it when another entry is more
            // similar (and vetoed, or served: a false hit, listed below) or within the margin.
            let mut refusal = Refusal::None;
            let analysis = std::sync::OnceLock::new();
            let asked = Asked {
                text: &pairs[i].similar,
                embedding: q,
                analysis: &analysis,
            };
            let served = index.find_first(
                &scope,
                asked,
                Matching { threshold, margin },
                &mut refusal,
                |k, s| Some((k, s)),
            );
            match (served, refusal) {
                (Some(_), _) | (None, Refusal::None) => continue,
                (None, Refusal::Vetoed) => "a more similar entry vetoed",
                (None, Refusal::Ambiguous) => "another entry within the margin",
            }
        } else {
            reason(false, d.veto)
        };
        *reasons.entry(why).or_default() += 1;
        if explain {
            println!(
                "  not served ({why}, sim {:.2}): {:?} / {:?}",
                d.similarity, pairs[i].origin, pairs[i].similar
            );
        }
    }
    if explain {
        for (i, q) in asked.iter().enumerate() {
            if let Some((k, sim)) =
                index.serve(&scope, &pairs[i].similar, q, Matching { threshold, margin })
                && k != own(i)
            {
                let got = u64::from_le_bytes(k.0[..8].try_into().unwrap_or_default()) as usize;
                println!(
                    "  false hit (sim {sim:.2}): {:?} served from {:?} (own: {:?})",
                    pairs[i].similar, pairs[got].origin, pairs[i].origin
                );
            }
        }
    }
    println!("own entry not served at {threshold:.2}, by reason: {reasons:?}");
    Ok(())
}

/// Up to `most` wrong decisions per test and label (`file`'s wrong hits and missed
/// duplicates apart), with the guard's reason: what to look at when tuning.
fn explain_misses(file: &str, pairs: &[Pair], scored: &[Scored], threshold: f32, most: usize) {
    println!("\n{file}: wrong decisions at {threshold:.2}, {most} per test and label at most:");
    let mut shown: BTreeMap<(&str, bool), usize> = BTreeMap::new();
    for (p, s) in pairs.iter().zip(scored) {
        let (serve, veto) = s.decision(threshold);
        if serve == s.label {
            continue;
        }
        let n = shown.entry((&s.test, s.label)).or_default();
        if *n >= most {
            continue;
        }
        *n += 1;
        println!(
            "  [{}] label {} sim {:.2} {}: {:?} / {:?}",
            s.test.chars().take(30).collect::<String>(),
            p.label,
            s.similarity,
            reason(serve, veto),
            p.text_a,
            p.text_b
        );
    }
}

/// Runs the evaluation on the files in `data_dir`.
pub fn run(
    embedder: &dyn Embedder,
    data_dir: &Path,
    threshold: f32,
    margin: f32,
    explain: bool,
) -> anyhow::Result<()> {
    let file = |name: &str| -> PathBuf { data_dir.join(name) };
    println!(
        "reprise eval: model {} ({} dimensions), default threshold {threshold:.2}",
        embedder.name(),
        embedder.dim()
    );
    retrieval(
        embedder,
        &file("gptcache-mock.json"),
        threshold,
        margin,
        explain,
    )?;

    let checklist_pairs = read_pairs(&file("checklist-dev.jsonl"))?;
    let checklist = score(embedder, &checklist_pairs);
    sweep("checklist-dev.jsonl", &checklist, threshold);
    per_group(&checklist, threshold, false);
    per_group(&checklist, threshold, true);
    if explain {
        explain_misses(
            "checklist-dev.jsonl",
            &checklist_pairs,
            &checklist,
            threshold,
            3,
        );
    }

    let qqp_pairs = read_pairs(&file("qqp-dev.jsonl.gz"))?;
    let qqp = score(embedder, &qqp_pairs);
    sweep("qqp-dev.jsonl.gz", &qqp, threshold);
    if explain {
        explain_misses("qqp-dev.jsonl.gz", &qqp_pairs, &qqp, threshold, 25);
    }
    Ok(())
}
