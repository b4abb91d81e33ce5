//! A cached answer as the cache holds it in memory.
//!
//! Parsed, an answer costs several times its text: every JSON object is a B-tree node of
//! `serde_json::Value`s (an OpenAI chat completion of 613 bytes takes 4.4 KB, the mock
//! upstream's 269 bytes 2.8 KB), which made the parsed answers about half of the cache's
//! memory. So answers are held as their compact JSON text, with where the top-level fields a hit
//! replaces (`id`, `created`...) are in it: a JSON hit splices the fresh values in without
//! parsing or serialising the rest. What needs the structure (a stream replay) parses it then.

use std::borrow::Cow;

use serde_json::Value;

/// Top-level fields a hit gives fresh values, whose places in the text are kept.
const FRESH: [&str; 4] = ["id", "object", "created", "created_at"];

/// A stored answer: see the module's documentation.
#[derive(Debug)]
pub struct Stored(Form);

#[derive(Debug)]
enum Form {
    Text {
        text: Box<str>,
        /// Byte range of each [`FRESH`] field's value in `text`; `(0, 0)` when absent (no
        /// value starts at 0, where the object's brace is).
        fresh: [(u32, u32); FRESH.len()],
        tokens: (u64, u64),
    },
    Parsed(Value),
}

impl Stored {
    /// Holds `answer` as its compact text. An answer that is not a JSON object, or too large
    /// for the places to be kept, is kept parsed.
    pub fn compact(answer: &Value) -> Self {
        let Some(fields) = answer.as_object() else {
            return Self::parsed(answer.clone());
        };
        let mut text = String::with_capacity(256);
        let mut fresh = [(0u32, 0u32); FRESH.len()];
        text.push('{');
        for (i, (name, value)) in fields.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&Value::String(name.clone()).to_string());
            text.push(':');
            let start = text.len();
            text.push_str(&value.to_string());
            if let Some(slot) = FRESH.iter().position(|f| f == name)
                && let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(text.len()))
            {
                fresh[slot] = (start, end);
            }
        }
        text.push('}');
        if u32::try_from(text.len()).is_err() {
            return Self::parsed(answer.clone());
        }
        Self(Form::Text {
            text: text.into_boxed_str(),
            fresh,
            tokens: tokens_of(answer),
        })
    }

    /// Keeps `answer` parsed: for an input's embedding, whose JSON text is spliced into answers
    /// as it is held, with no copy.
    pub fn parsed(answer: Value) -> Self {
        Self(Form::Parsed(answer))
    }

    /// The answer parsed (a copy when held as text).
    pub fn value(&self) -> Cow<'_, Value> {
        match &self.0 {
            Form::Text { text, .. } => {
                Cow::Owned(serde_json::from_str(text).unwrap_or(Value::Null))
            }
            Form::Parsed(value) => Cow::Borrowed(value),
        }
    }

    /// The answer when held parsed.
    pub fn as_parsed(&self) -> Option<&Value> {
        match &self.0 {
            Form::Parsed(value) => Some(value),
            Form::Text { .. } => None,
        }
    }

    /// The answer as compact JSON text (the same text `Value::to_string` gives).
    pub fn text(&self) -> Cow<'_, str> {
        match &self.0 {
            Form::Text { text, .. } => Cow::Borrowed(text),
            Form::Parsed(value) => Cow::Owned(value.to_string()),
        }
    }

    /// Token counts of the answer, from its `usage` (a chat completion's `prompt_tokens` and
    /// `completion_tokens`, a response's `input_tokens` and `output_tokens`; 0 when absent).
    pub fn tokens(&self) -> (u64, u64) {
        match &self.0 {
            Form::Text { tokens, .. } => *tokens,
            Form::Parsed(value) => tokens_of(value),
        }
    }

    /// The answer's text with the values of top-level fields replaced: `fields` names each
    /// field and its new value as JSON text. `None` when the answer is held parsed or lacks one
    /// of the fields (the caller then builds the answer from [`Self::value`]).
    pub fn with_fresh(&self, fields: &[(&str, &str)]) -> Option<Vec<u8>> {
        let Form::Text { text, fresh, .. } = &self.0 else {
            return None;
        };
        let mut places = Vec::with_capacity(fields.len());
        for (name, value) in fields {
            let slot = FRESH.iter().position(|f| f == name)?;
            let (start, end) = fresh[slot];
            if end == 0 {
                return None;
            }
            places.push((start as usize, end as usize, *value));
        }
        places.sort_unstable_by_key(|p| p.0);
        let grown: usize = places.iter().map(|p| p.2.len()).sum();
        let mut out = Vec::with_capacity(text.len() + grown);
        let mut at = 0;
        for (start, end, value) in places {
            out.extend_from_slice(&text.as_bytes()[at..start]);
            out.extend_from_slice(value.as_bytes());
            at = end;
        }
        out.extend_from_slice(&text.as_bytes()[at..]);
        Some(out)
    }
}

fn tokens_of(answer: &Value) -> (u64, u64) {
    let usage = &answer["usage"];
    let count = |chat: &str, responses: &str| {
        usage[chat]
            .as_u64()
            .or_else(|| usage[responses].as_u64())
            .unwrap_or(0)
    };
    (
        count("prompt_tokens", "input_tokens"),
        count("completion_tokens", "output_tokens"),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn completion() -> Value {
        json!({"id": "chatcmpl-old", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi \"there\" ü",
                "refusal": null}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
            "system_fingerprint": "fp", "x_unknown": {"nested": [1, 2.5, true]}})
    }

    #[test]
    fn the_text_is_the_answer_and_reads_back_as_it() {
        let answer = completion();
        let stored = Stored::compact(&answer);
        assert_eq!(stored.text(), answer.to_string());
        assert_eq!(*stored.value(), answer);
        assert_eq!(stored.tokens(), (7, 3));
        assert!(stored.as_parsed().is_none());
    }

    #[test]
    fn fresh_values_replace_only_the_named_fields() {
        let stored = Stored::compact(&completion());
        let body = stored
            .with_fresh(&[
                ("id", "\"chatcmpl-new\""),
                ("created", "1700000000"),
                ("object", "\"chat.completion\""),
            ])
            .expect("all three are there");
        let mut expected = completion();
        expected["id"] = json!("chatcmpl-new");
        expected["created"] = json!(1_700_000_000);
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), expected);
        // A field the answer lacks: no splice.
        assert!(stored.with_fresh(&[("created_at", "1")]).is_none());
        // A response's fields.
        let response = json!({"id": "resp_old", "object": "response", "created_at": 5,
            "output": [], "usage": {"input_tokens": 4, "output_tokens": 2}});
        let stored = Stored::compact(&response);
        assert_eq!(stored.tokens(), (4, 2));
        let body = stored
            .with_fresh(&[("created_at", "9"), ("id", "\"resp_new\"")])
            .unwrap();
        let read: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(read["id"], "resp_new");
        assert_eq!(read["created_at"], 9);
        assert_eq!(read["output"], json!([]));
    }

    #[test]
    fn answers_of_other_shapes_are_held_parsed() {
        for answer in [json!([1, 2]), json!("text"), Value::Null] {
            let stored = Stored::compact(&answer);
            assert_eq!(stored.as_parsed(), Some(&answer));
            assert_eq!(stored.text(), answer.to_string());
            assert!(stored.with_fresh(&[("id", "\"x\"")]).is_none());
        }
        let embedding = json!({"embedding_json": "[0.5]", "usage": {"prompt_tokens": 2}});
        let stored = Stored::parsed(embedding.clone());
        assert_eq!(stored.as_parsed(), Some(&embedding));
        assert_eq!(stored.tokens(), (2, 0));
        assert!(stored.with_fresh(&[("id", "\"x\"")]).is_none());
    }
}
