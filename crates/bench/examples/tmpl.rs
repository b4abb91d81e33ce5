use reprise_cache::Key;
use reprise_cache::embed::{Embedder, Model2Vec};
use reprise_cache::semantic::{DEFAULT_THRESHOLD, ScopeIndex};
use std::time::Instant;

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
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(100_000);
    let model = Model2Vec::load(std::path::Path::new("models/potion-base-8M")).unwrap();
    let index = ScopeIndex::default();
    let scope = Key([7; 32]);
    let key = |i: usize| {
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&(i as u64).to_le_bytes());
        Key(k)
    };
    let t = Instant::now();
    for i in 0..n {
        let q = question(i);
        let v = model.embed(&q);
        index.insert(scope, key(i), &v, &q).unwrap();
    }
    eprintln!("filled {n} in {:?}", t.elapsed());
    let probes: Vec<(String, Vec<f32>)> = (0..2000)
        .map(|j| {
            let i = (j * 7919) % n;
            let p = question(i).replacen("How do I", "How can I", 1);
            let v = model.embed(&p);
            (p, v)
        })
        .collect();
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut hits = 0;
    let t = Instant::now();
    for _ in 0..reps {
        for (p, v) in &probes {
            if index
                .serve(
                    &scope,
                    p,
                    v,
                    reprise_cache::semantic::Matching {
                        threshold: DEFAULT_THRESHOLD,
                        margin: 0.015,
                    },
                )
                .is_some()
            {
                hits += 1;
            }
        }
    }
    let per = t.elapsed().as_secs_f64() * 1e6 / (reps * probes.len()) as f64;
    eprintln!(
        "serve: {per:.1} us per lookup, hits {hits} of {}",
        reps * probes.len()
    );
}
