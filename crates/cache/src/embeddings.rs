//! The embeddings cache: each input of an embeddings request is an entry of its own, so a batch
//! that repeats inputs embedded before sends only the new ones upstream. An embedding is a
//! function of the model, the request's other fields and the input, nothing approximate: there
//! is no semantic tier here, only exact keys.

use serde_json::{Map, Value};

use crate::keys::{Key, hash, normalise_numbers};

/// Fields of an embeddings request that do not change the vectors.
const REQUEST_ONLY: &[&str] = &["input", "user"];

/// The inputs of one embeddings request and their keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    /// Namespace, model and every field but the input (`dimensions`, `encoding_format`...):
    /// the inputs' keys are derived from it.
    pub scope: Key,
    /// One key per input, in the request's order.
    pub keys: Vec<Key>,
    /// The inputs: each a string or an array of token ids.
    pub items: Vec<Value>,
}

/// The inputs of an embeddings request (a JSON object with `input`) in tenant namespace
/// `namespace`; `None` when `input` is none of the shapes the API takes (a string, a token
/// array, or a non-empty array of either): the upstream answers those.
pub fn inputs(namespace: &str, request: &Value) -> Option<Inputs> {
    let object = request.as_object()?;
    let items = match object.get("input")? {
        one @ Value::String(_) => vec![one.clone()],
        one @ Value::Array(list) if !list.is_empty() && list.iter().all(Value::is_u64) => {
            vec![one.clone()]
        }
        Value::Array(list) if !list.is_empty() && list.iter().all(is_input) => list.clone(),
        _ => return None,
    };
    let mut rest = Map::new();
    for (name, value) in object {
        if REQUEST_ONLY.contains(&name.as_str()) || value.is_null() {
            continue;
        }
        // `float` is the default encoding.
        if name == "encoding_format" && value.as_str() == Some("float") {
            continue;
        }
        rest.insert(name.clone(), normalise_numbers(value.clone()));
    }
    // No chat completion request has this shape (they all have `messages`), so no scope is
    // ever a chat entry's key.
    let mut scope = Map::new();
    scope.insert("embeddings".into(), Value::Object(rest));
    let scope = hash(namespace, &Value::Object(scope));
    let keys = items.iter().map(|item| input_key(&scope, item)).collect();
    Some(Inputs { scope, keys, items })
}

impl Inputs {
    /// The key of the whole request (its inputs in order, in their scope): identical requests
    /// in flight share one upstream call under it.
    pub fn batch_key(&self) -> Key {
        let mut hasher = blake3::Hasher::new_derive_key("reprise 2026 embeddings batch key");
        for key in &self.keys {
            hasher.update(&key.0);
        }
        Key(*hasher.finalize().as_bytes())
    }
}

fn is_input(item: &Value) -> bool {
    match item {
        Value::String(_) => true,
        Value::Array(tokens) => !tokens.is_empty() && tokens.iter().all(Value::is_u64),
        _ => false,
    }
}

/// An input's key: its scope and its JSON, hashed in a context of their own (no chat key is
/// derived this way).
fn input_key(scope: &Key, item: &Value) -> Key {
    let mut hasher = blake3::Hasher::new_derive_key("reprise 2026 embeddings input key");
    hasher.update(&scope.0);
    // Writing to a hasher cannot fail.
    let _ = serde_json::to_writer(&mut hasher, item);
    Key(*hasher.finalize().as_bytes())
}

/// Splits a batch's `total` prompt tokens among its inputs (the API reports only the total): a
/// token array counts as its length, a text as its length in bytes, and the shares are rounded
/// so that they sum to `total` exactly (largest remainders). A single input gets the total.
pub fn apportion(items: &[&Value], total: u64) -> Vec<u64> {
    let weights: Vec<u64> = items
        .iter()
        .map(|item| match item {
            Value::String(s) => s.len() as u64,
            Value::Array(tokens) => tokens.len() as u64,
            _ => 0,
        })
        .map(|w| w.max(1))
        .collect();
    let sum: u64 = weights.iter().sum();
    if sum == 0 {
        return Vec::new();
    }
    let mut shares: Vec<(u64, u64, usize)> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let exact = u128::from(total) * u128::from(w);
            let (whole, rest) = (exact / u128::from(sum), exact % u128::from(sum));
            (whole as u64, rest as u64, i)
        })
        .collect();
    let given: u64 = shares.iter().map(|s| s.0).sum();
    let mut by_remainder: Vec<usize> = (0..shares.len()).collect();
    by_remainder.sort_by(|&a, &b| shares[b].1.cmp(&shares[a].1).then(a.cmp(&b)));
    for &i in by_remainder.iter().take((total - given) as usize) {
        shares[i].0 += 1;
    }
    shares.sort_by_key(|s| s.2);
    shares.into_iter().map(|s| s.0).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_input_has_its_own_key_whatever_batch_it_came_in() {
        let one = inputs("ns", &json!({"model": "m", "input": "a cat"})).unwrap();
        let batch = inputs("ns", &json!({"model": "m", "input": ["a dog", "a cat"]})).unwrap();
        assert_eq!(one.keys.len(), 1);
        assert_eq!(batch.keys[1], one.keys[0]);
        assert_ne!(batch.keys[0], one.keys[0]);
        assert_eq!(batch.scope, one.scope);
        // Token arrays: one array is one input, an array of arrays is several.
        let tokens = inputs("ns", &json!({"model": "m", "input": [1, 2, 3]})).unwrap();
        assert_eq!(tokens.items, vec![json!([1, 2, 3])]);
        let lists = inputs("ns", &json!({"model": "m", "input": [[1, 2, 3], [4]]})).unwrap();
        assert_eq!(lists.keys[0], tokens.keys[0]);
        assert_eq!(lists.items.len(), 2);
        // The batch key tells batches apart by their inputs and their order.
        let swapped = inputs("ns", &json!({"model": "m", "input": ["a cat", "a dog"]})).unwrap();
        assert_ne!(swapped.batch_key(), batch.batch_key());
        assert_ne!(one.batch_key(), one.keys[0]);
        let again = inputs("ns", &json!({"model": "m", "input": ["a dog", "a cat"]})).unwrap();
        assert_eq!(again.batch_key(), batch.batch_key());
    }

    #[test]
    fn the_scope_is_everything_but_the_input_and_the_user() {
        let base = json!({"model": "m", "input": "x"});
        let key = |r: Value| inputs("ns", &r).unwrap().keys[0];
        let k = key(base.clone());
        assert_eq!(k, key(json!({"input": "x", "model": "m", "user": "u1"})));
        assert_eq!(
            k,
            key(json!({"model": "m", "input": "x", "encoding_format": "float"}))
        );
        assert_eq!(
            k,
            key(json!({"model": "m", "input": "x", "dimensions": null}))
        );
        assert_eq!(
            key(json!({"model": "m", "input": "x", "dimensions": 256})),
            key(json!({"model": "m", "input": "x", "dimensions": 256.0}))
        );
        for other in [
            json!({"model": "m2", "input": "x"}),
            json!({"model": "m", "input": "x", "dimensions": 256}),
            json!({"model": "m", "input": "x", "encoding_format": "base64"}),
            json!({"model": "m", "input": "x", "unknown_option": true}),
            json!({"model": "m", "input": "x "}),
            json!({"model": "m", "input": ["y", "x"]}),
        ] {
            assert_ne!(inputs("ns", &other).unwrap().keys[0], k, "{other}");
        }
        assert_ne!(inputs("other", &base).unwrap().keys[0], k);
    }

    #[test]
    fn shapes_the_api_refuses_are_not_cached() {
        for input in [
            json!(null),
            json!([]),
            json!(42),
            json!([[]]),
            json!(["a", 1]),
            json!([{"text": "a"}]),
            json!([-1]),
        ] {
            assert!(
                inputs("ns", &json!({"model": "m", "input": input})).is_none(),
                "{input}"
            );
        }
        assert!(inputs("ns", &json!("just text")).is_none());
    }

    #[test]
    fn tokens_are_shared_out_exactly() {
        let (a, b, c) = (json!("aaaa"), json!("aa"), json!([1, 2]));
        assert_eq!(apportion(&[&a], 7), vec![7]);
        assert_eq!(apportion(&[&a, &b, &c], 8), vec![4, 2, 2]);
        let shares = apportion(&[&a, &b, &c], 7);
        assert_eq!(shares.iter().sum::<u64>(), 7);
        assert_eq!(shares, vec![3, 2, 2]);
        assert_eq!(apportion(&[&a, &b], 0), vec![0, 0]);
        let empty = json!("");
        assert_eq!(apportion(&[&empty, &a], 5).iter().sum::<u64>(), 5);
    }
}
