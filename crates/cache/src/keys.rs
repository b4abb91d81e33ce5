//! Canonical request keys.
//!
//! Two requests get the same exact key when they ask the same thing in the same way: JSON key
//! order, insignificant whitespace, `1` vs `1.0`, parameters spelled out at their default value,
//! a one-part text content array vs a plain string, and request-only fields (`user`, `stream`,
//! `stream_options`, metadata) make no difference. Everything else does. The scope key is the same
//! canonical form with the final user message taken out: the semantic tier compares only that
//! message, and only among entries of one scope.

use serde_json::{Map, Value};

/// A 256-bit BLAKE3 hash. A collision would serve one request another's answer, so the key is
/// cryptographic, not merely fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 32]);

impl Key {
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }
}

/// Fields that never change the answer.
const REQUEST_ONLY: &[&str] = &[
    "user",
    "stream",
    "stream_options",
    "metadata",
    "store",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
];

/// Parameters whose OpenAI default is the same as leaving them out.
const DEFAULTS: &[(&str, f64)] = &[
    ("n", 1.0),
    ("temperature", 1.0),
    ("top_p", 1.0),
    ("presence_penalty", 0.0),
    ("frequency_penalty", 0.0),
];

/// The keys of one request, and the text the semantic tier compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKeys {
    pub exact: Key,
    pub scope: Key,
    /// The final user message's text, when the request ends with one.
    pub final_user_text: Option<String>,
}

/// Computes the keys of a chat completion request (already known to be a JSON object with
/// `model` and `messages`) in tenant namespace `namespace`.
pub fn keys(namespace: &str, request: &Value) -> CacheKeys {
    let mut canonical = canonical_request(request);
    let exact = hash(namespace, &canonical);
    let mut final_user_text = None;
    if let Some(Value::Array(messages)) = canonical.get_mut("messages")
        && let Some(last) = messages.last_mut()
        && last.get("role").and_then(Value::as_str) == Some("user")
    {
        final_user_text = text_of(last.get("content"));
        // The scope keeps the fact that a final user turn exists and everything about it but
        // its words: another `name` (the model may address the asker by it) is another scope.
        if let Some(message) = last.as_object_mut() {
            message.remove("content");
        }
    }
    let scope = hash(namespace, &canonical);
    CacheKeys {
        exact,
        scope,
        final_user_text,
    }
}

pub(crate) fn hash(namespace: &str, canonical: &Value) -> Key {
    let mut hasher = blake3::Hasher::new();
    // Length-prefixed so no namespace can run into the request.
    hasher.update(&(namespace.len() as u64).to_le_bytes());
    hasher.update(namespace.as_bytes());
    // serde_json's map is ordered by key, so this serialisation is canonical. Written straight
    // into the hasher (the same bytes `to_string` makes, without the copy); writing to a
    // hasher cannot fail.
    let _ = serde_json::to_writer(&mut hasher, canonical);
    Key(*hasher.finalize().as_bytes())
}

/// The canonical form: request-only fields dropped, defaults dropped, `max_tokens` spelled as
/// `max_completion_tokens`, numbers normalised, one-part text contents as strings.
pub fn canonical_request(request: &Value) -> Value {
    let Some(object) = request.as_object() else {
        return normalise_numbers(request.clone());
    };
    let mut out = Map::new();
    for (name, value) in object {
        if REQUEST_ONLY.contains(&name.as_str()) || value.is_null() {
            continue;
        }
        if let Some((_, default)) = DEFAULTS.iter().find(|(n, _)| n == name)
            && value.as_f64() == Some(*default)
        {
            continue;
        }
        if name == "logprobs" && value == &Value::Bool(false) {
            continue;
        }
        if name == "parallel_tool_calls" && value == &Value::Bool(true) {
            continue;
        }
        let value = if name == "messages" {
            match value {
                Value::Array(messages) => {
                    Value::Array(messages.iter().map(canonical_message).collect())
                }
                other => other.clone(),
            }
        } else {
            normalise_numbers(value.clone())
        };
        out.insert(name.clone(), value);
    }
    if let Some(max) = out.remove("max_tokens") {
        out.entry("max_completion_tokens").or_insert(max);
    }
    Value::Object(out)
}

fn canonical_message(message: &Value) -> Value {
    let mut message = normalise_numbers(message.clone());
    if let Some(object) = message.as_object_mut() {
        object.retain(|_, v| !v.is_null());
        if let Some(content) = object.get_mut("content")
            && let Some(text) = single_text_part(content)
        {
            *content = Value::String(text);
        }
    }
    message
}

/// `[{"type": "text", "text": T}]` is the same content as `T`.
fn single_text_part(content: &Value) -> Option<String> {
    let parts = content.as_array()?;
    let [part] = parts.as_slice() else {
        return None;
    };
    let object = part.as_object()?;
    if object.len() == 2 && object.get("type")?.as_str()? == "text" {
        return Some(object.get("text")?.as_str()?.to_owned());
    }
    None
}

/// The text of a message content: a string, or the text parts of an array joined by newlines.
pub fn text_of(content: Option<&Value>) -> Option<String> {
    match content? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            // A content with non-text parts (images, audio) is not comparable as text.
            (texts.len() == parts.len() && !texts.is_empty()).then(|| texts.join("\n"))
        }
        _ => None,
    }
}

/// `1.0` and `1` are the same number: floats with no fraction become integers, recursively.
pub(crate) fn normalise_numbers(value: Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(normalise_numbers).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, normalise_numbers(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// A chat request: model, optional system prompt, earlier turns, a final user question and
    /// some answer-shaping parameters.
    fn request() -> impl Strategy<Value = Value> {
        (
            prop::sample::select(vec!["gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5"]),
            proptest::option::of(any::<String>()),
            prop::collection::vec(any::<String>(), 0..3),
            any::<String>(),
            proptest::option::of(0u8..=10),
            proptest::option::of(1u32..4096),
            proptest::option::of(any::<u16>()),
        )
            .prop_map(|(model, system, earlier, question, tenths, max, seed)| {
                let mut messages = Vec::new();
                if let Some(system) = system {
                    messages.push(json!({"role": "system", "content": system}));
                }
                for (i, text) in earlier.into_iter().enumerate() {
                    let role = if i % 2 == 0 { "user" } else { "assistant" };
                    messages.push(json!({"role": role, "content": text}));
                }
                messages.push(json!({"role": "user", "content": question}));
                let mut request = json!({"model": model, "messages": messages});
                if let Some(t) = tenths {
                    request["temperature"] = json!(f64::from(t) / 10.0);
                }
                if let Some(max) = max {
                    request["max_tokens"] = json!(max);
                }
                if let Some(seed) = seed {
                    request["seed"] = json!(seed);
                }
                request
            })
    }

    /// The same request written another way: request-only fields added, defaults spelled out,
    /// whole numbers as floats, `max_tokens` as `max_completion_tokens`, the final question as
    /// a one-part content array, explicit nulls, and the whole text re-serialised pretty.
    fn rewritten(request: &Value, choice: u8) -> Value {
        let mut r = request.clone();
        let o = r.as_object_mut().unwrap();
        if choice & 1 != 0 {
            o.insert("stream".into(), json!(true));
            o.insert("stream_options".into(), json!({"include_usage": true}));
            o.insert("user".into(), json!("someone"));
            o.insert("metadata".into(), json!({"team": "blue"}));
        }
        if choice & 2 != 0 {
            o.insert("n".into(), json!(1.0));
            o.insert("top_p".into(), json!(1));
            o.insert("presence_penalty".into(), json!(0.0));
            o.insert("logprobs".into(), json!(false));
            o.insert("tool_choice".into(), Value::Null);
        }
        if choice & 4 != 0 {
            if let Some(max) = o.remove("max_tokens") {
                o.insert("max_completion_tokens".into(), json!(max.as_f64().unwrap()));
            }
            if let Some(seed) = o.get("seed").and_then(Value::as_f64) {
                o.insert("seed".into(), json!(seed));
            }
        }
        if choice & 8 != 0
            && let Some(Value::Array(messages)) = o.get_mut("messages")
            && let Some(last) = messages.last_mut()
        {
            let text = last["content"].clone();
            last["content"] = json!([{"type": "text", "text": text}]);
            last["name"] = Value::Null;
        }
        serde_json::from_str(&serde_json::to_string_pretty(&r).unwrap()).unwrap()
    }

    proptest! {
        /// Every way of writing the same request gets its exact key and its scope.
        #[test]
        fn any_rewriting_of_a_request_keeps_its_keys(request in request(), choice in 0u8..16) {
            let a = keys("ns", &request);
            let b = keys("ns", &rewritten(&request, choice));
            prop_assert_eq!(a, b);
        }

        /// Another final question keeps the scope and changes the exact key; another earlier
        /// turn, system prompt or model changes both; another namespace never shares a key.
        #[test]
        fn the_scope_is_everything_but_the_final_question(
            request in request(),
            other in any::<String>(),
        ) {
            let base = keys("ns", &request);
            let last = request["messages"].as_array().unwrap().len() - 1;
            prop_assume!(request["messages"][last]["content"] != json!(other));
            let mut asked = request.clone();
            asked["messages"][last]["content"] = json!(other);
            let asked = keys("ns", &asked);
            prop_assert_eq!(asked.scope, base.scope);
            prop_assert_ne!(asked.exact, base.exact);
            let mut earlier = request.clone();
            earlier["messages"][0]["content"] = json!(format!("{other}{}", request["messages"][0]["content"]));
            if last > 0 && !other.is_empty() {
                prop_assert_ne!(keys("ns", &earlier).scope, base.scope);
            }
            let mut model = request.clone();
            model["model"] = json!("another-model");
            prop_assert_ne!(keys("ns", &model).scope, base.scope);
            prop_assert_ne!(keys("ns2", &request).exact, base.exact);
            prop_assert_ne!(keys("ns2", &request).scope, base.scope);
        }
    }

    /// Keys are stored: the hash must stay the BLAKE3 of the length-prefixed namespace and the
    /// compact serialisation of the canonical request, byte for byte.
    #[test]
    fn a_key_is_the_hash_of_the_namespace_and_the_canonical_text() {
        let canonical = canonical_request(&json!({
            "model": "gpt-4o-mini", "temperature": 0.0,
            "messages": [{"role": "user", "content": "Quoted \"text\", unicode é, 1e3"}]
        }));
        let mut reference = blake3::Hasher::new();
        reference.update(&5u64.to_le_bytes());
        reference.update(b"team1");
        reference.update(canonical.to_string().as_bytes());
        assert_eq!(
            hash("team1", &canonical).0,
            *reference.finalize().as_bytes()
        );
    }

    fn exact(v: Value) -> Key {
        keys("ns", &v).exact
    }

    #[test]
    fn equivalent_requests_share_the_exact_key() {
        let base = exact(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}),
        );
        let same = [
            json!({"messages": [{"content": "hi", "role": "user"}], "temperature": 0.0, "model": "m"}),
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "temperature": 0, "stream": true, "stream_options": {"include_usage": true}, "user": "u-1", "metadata": {"a": "b"}}),
            json!({"model": "m", "messages": [{"role": "user", "content": "hi", "name": null}], "temperature": 0, "n": 1, "top_p": 1.0, "presence_penalty": 0, "frequency_penalty": 0.0, "logprobs": false}),
        ];
        for request in same {
            assert_eq!(exact(request.clone()), base, "{request}");
        }
        assert_eq!(
            exact(json!({"model": "m", "messages": [], "max_tokens": 5})),
            exact(json!({"model": "m", "messages": [], "max_completion_tokens": 5}))
        );
    }

    #[test]
    fn anything_that_shapes_the_answer_changes_the_exact_key() {
        let base = json!({"model": "m", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}], "temperature": 0});
        let k = exact(base.clone());
        let mut variants = Vec::new();
        for (path, value) in [
            ("model", json!("m2")),
            ("temperature", json!(0.2)),
            ("max_completion_tokens", json!(10)),
            ("seed", json!(1)),
            ("response_format", json!({"type": "json_object"})),
            (
                "tools",
                json!([{"type": "function", "function": {"name": "f"}}]),
            ),
            ("stop", json!(["\n"])),
            ("x_vendor", json!(true)),
        ] {
            let mut v = base.clone();
            v[path] = value;
            variants.push(v);
        }
        let mut v = base.clone();
        v["messages"][0]["content"] = json!("be verbose");
        variants.push(v);
        let mut v = base.clone();
        v["messages"][1]["content"] = json!("hi!");
        variants.push(v);
        for v in variants {
            assert_ne!(exact(v.clone()), k, "{v}");
        }
        assert_ne!(keys("other", &base).exact, k, "namespaces never share keys");
    }

    #[test]
    fn the_scope_ignores_only_the_final_user_message() {
        let a = keys(
            "ns",
            &json!({"model": "m", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "What is 2+3?"}]}),
        );
        let b = keys(
            "ns",
            &json!({"model": "m", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "What's 2 + 3?"}]}),
        );
        assert_ne!(a.exact, b.exact);
        assert_eq!(a.scope, b.scope);
        assert_eq!(a.final_user_text.as_deref(), Some("What is 2+3?"));
        let c = keys(
            "ns",
            &json!({"model": "m", "messages": [{"role": "system", "content": "t"}, {"role": "user", "content": "What is 2+3?"}]}),
        );
        assert_ne!(a.scope, c.scope, "another system prompt is another scope");
        let d = keys(
            "ns",
            &json!({"model": "m", "messages": [{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "x"}, {"role": "user", "content": "What is 2+3?"}]}),
        );
        assert_ne!(a.scope, d.scope, "earlier turns are part of the scope");
        let named = |name: &str| {
            keys(
                "ns",
                &json!({"model": "m", "messages": [{"role": "user", "name": name, "content": "What is 2+3?"}]}),
            )
        };
        assert_ne!(
            named("alice").scope,
            named("bob").scope,
            "the asker's name is part of the scope"
        );
        let e = keys(
            "ns",
            &json!({"model": "m", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": null, "tool_calls": []}]}),
        );
        assert_eq!(e.final_user_text, None);
    }

    #[test]
    fn text_of_contents() {
        assert_eq!(text_of(Some(&json!("a"))).as_deref(), Some("a"));
        assert_eq!(
            text_of(Some(
                &json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])
            ))
            .as_deref(),
            Some("a\nb")
        );
        assert_eq!(
            text_of(Some(
                &json!([{"type": "image_url", "image_url": {"url": "x"}}])
            )),
            None
        );
        assert_eq!(text_of(None), None);
    }
}
