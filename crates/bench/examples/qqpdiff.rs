use reprise_cache::embed::{Embedder, Model2Vec};
use reprise_cache::guard::{Closeness, check};
use std::io::BufRead;
fn main() {
    let model = Model2Vec::load(std::path::Path::new("models/potion-base-8M")).unwrap();
    let f = std::fs::File::open("../shared/data/qqp-dev.jsonl.gz").unwrap();
    let r = std::io::BufReader::new(flate2::read::GzDecoder::new(f));
    for line in r.lines() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        let (a, b) = (v["text_a"].as_str().unwrap(), v["text_b"].as_str().unwrap());
        let (ea, eb) = (model.embed(a), model.embed(b));
        let sim = reprise_cache::semantic::dot(&ea, &eb);
        if sim < 0.8 {
            continue;
        }
        let c = Closeness::of(sim, 0.8);
        let d = check(b, a, c).is_ok();
        if d {
            println!("{} {:.2} {a} / {b}", v["label"], sim);
        }
    }
}
