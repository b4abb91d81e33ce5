use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Extra;

/// `POST /v1/embeddings` request body: the gateway needs `model` to route and checks that
/// `input` is there; the rest is forwarded as it came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsRequest {
    pub model: String,
    pub input: Value,
    #[serde(flatten)]
    pub extra: Extra,
}

/// An OpenAI embeddings list (`{"object":"list","data":[...],"model":...,"usage":...}`) of
/// `embeddings`, each the JSON text of one input's `embedding` (an array of floats, or a base64
/// string in quotes), in the request's order. Written out rather than serialised, so each
/// embedding goes out exactly as it is, digit for digit, without being parsed again; the
/// caller vouches that each is valid JSON.
pub fn embeddings_list<'a>(
    embeddings: impl ExactSizeIterator<Item = &'a str> + Clone,
    model: &str,
    prompt_tokens: u64,
) -> String {
    use std::fmt::Write as _;
    let size: usize = embeddings.clone().map(|e| e.len() + 48).sum();
    let mut out = String::with_capacity(size + model.len() + 96);
    out.push_str(r#"{"object":"list","data":["#);
    for (index, embedding) in embeddings.enumerate() {
        if index > 0 {
            out.push(',');
        }
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            r#"{{"object":"embedding","index":{index},"embedding":{embedding}}}"#
        );
    }
    let _ = write!(
        out,
        r#"],"model":{},"usage":{{"prompt_tokens":{prompt_tokens},"total_tokens":{prompt_tokens}}}}}"#,
        Value::String(model.to_owned())
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_keeps_each_embedding_as_written() {
        let text = embeddings_list(["[1e-3, 0.5]", "\"AAAAPw==\""].into_iter(), "m\"x", 7);
        assert!(text.contains(r#""embedding":[1e-3, 0.5]"#), "{text}");
        let list: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(list["object"], "list");
        assert_eq!(list["model"], "m\"x");
        assert_eq!(list["data"][1]["index"], 1);
        assert_eq!(list["data"][1]["object"], "embedding");
        assert_eq!(list["data"][1]["embedding"], "AAAAPw==");
        assert_eq!(
            list["usage"],
            serde_json::json!({"prompt_tokens": 7, "total_tokens": 7})
        );
    }
}
