use reprise_cache::embed::{Embedder, Model2Vec};
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
    let kind = std::env::args().nth(2).unwrap_or("tmpl".into());
    let model = Model2Vec::load(std::path::Path::new("models/potion-base-8M")).unwrap();
    let mut rng = 12345u64;
    let mut rnd = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % 10000) as f32 / 5000.0 - 1.0
    };
    let vecs: Vec<Vec<f32>> = (0..n)
        .map(|i| {
            if kind == "tmpl" {
                model.embed(&question(i))
            } else {
                let v: Vec<f32> = (0..256).map(|_| rnd()).collect();
                let m = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter().map(|x| x / m).collect()
            }
        })
        .collect();
    let q: Vec<Vec<f32>> = (0..2000)
        .map(|j| {
            let i = (j * 7919) % n;
            if kind == "tmpl" {
                model.embed(&question(i).replacen("How do I", "How can I", 1))
            } else {
                vecs[i].iter().map(|x| x + 0.01 * rnd()).collect()
            }
        })
        .collect();
    for xs in [8usize, 16, 24, 40] {
        let opts = usearch::IndexOptions {
            dimensions: 256,
            metric: usearch::MetricKind::Cos,
            quantization: usearch::ScalarKind::I8,
            connectivity: 16,
            expansion_add: 64,
            expansion_search: xs,
            multi: false,
        };
        let g = usearch::Index::new(&opts).unwrap();
        let th: usize = std::env::var("TH")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2);
        g.reserve_capacity_and_threads(n, th).unwrap();
        for (i, v) in vecs.iter().enumerate() {
            g.add(i as u64, v).unwrap();
        }
        let t = Instant::now();
        let mut found = 0;
        let reps = 5;
        for _ in 0..reps {
            for (j, v) in q.iter().enumerate() {
                let r = g.search(v, 8).unwrap();
                if r.keys.first() == Some(&(((j * 7919) % n) as u64)) {
                    found += 1;
                }
            }
        }
        let per = t.elapsed().as_secs_f64() * 1e6 / (reps * q.len()) as f64;
        println!(
            "{kind} n={n} ef={xs}: {per:.1} us per search, first-is-own {:.1}%",
            found as f64 * 100.0 / (reps * q.len()) as f64
        );
    }
}
