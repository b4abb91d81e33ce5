//! OpenAI embeddings requests for Gemini's `batchEmbedContents`
//! (<https://ai.google.dev/api/embeddings>): each text input becomes one `EmbedContentRequest`,
//! `dimensions` its `outputDimensionality`; the answer's vectors come back as an OpenAI list,
//! floats as Gemini wrote them, or base64 of little-endian 32-bit floats when asked for.
//!
//! Gemini's own options, which OpenAI's API has no field for, are taken as extra fields:
//! `task_type` (`RETRIEVAL_QUERY`, `RETRIEVAL_DOCUMENT`, `SEMANTIC_SIMILARITY`...: what the
//! vectors are for, which changes them) and `title` (of a `RETRIEVAL_DOCUMENT`).
//!
//! Gemini's embeddings API reports no token counts, so `usage` is an estimate: a token for
//! every four bytes of text, at least one an input.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::UpstreamError;
use crate::translate::{Object, invalid, unsupported};

const PROVIDER: &str = "Gemini";

/// What the answer's translation needs from the request.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    model: String,
    inputs: usize,
    base64: bool,
    estimated_tokens: u64,
}

/// The `batchEmbedContents` body for an OpenAI embeddings request.
pub(crate) fn request(req: &Object, model: &str) -> Result<(Value, Context), UpstreamError> {
    for (field, value) in req {
        match field.as_str() {
            "model" | "input" | "user" | "dimensions" | "encoding_format" | "task_type"
            | "title" => {}
            _ if value.is_null() => {}
            other => return Err(unsupported(PROVIDER, other, "this embeddings parameter")),
        }
    }
    let texts: Vec<&str> = match req.get("input") {
        Some(Value::String(text)) => vec![text.as_str()],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|item| {
                item.as_str().ok_or_else(|| {
                    invalid(
                        "input",
                        "Gemini embeds text: 'input' must be a string or an array of strings \
                         (not token ids).",
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(invalid(
                "input",
                "'input' must be a string or a non-empty array of strings.",
            ));
        }
    };
    let base64 = match req.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(f)) if f == "float" => false,
        Some(Value::String(f)) if f == "base64" => true,
        Some(_) => {
            return Err(invalid(
                "encoding_format",
                "'encoding_format' must be \"float\" or \"base64\".",
            ));
        }
    };
    let dimensions =
        match req.get("dimensions") {
            None | Some(Value::Null) => None,
            Some(d) => Some(d.as_u64().filter(|&d| d > 0).ok_or_else(|| {
                invalid("dimensions", "'dimensions' must be a positive integer.")
            })?),
        };
    let text_field = |name: &str| match req.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(v)) if !v.is_empty() => Ok(Some(v.clone())),
        Some(_) => Err(invalid(
            name,
            &format!("'{name}' must be a non-empty string."),
        )),
    };
    let task_type = text_field("task_type")?;
    let title = text_field("title")?;
    let model = model.strip_prefix("models/").unwrap_or(model);
    let requests: Vec<Value> = texts
        .iter()
        .map(|text| {
            let mut one = json!({
                "model": format!("models/{model}"),
                "content": {"parts": [{"text": text}]},
            });
            if let Some(d) = dimensions {
                one["outputDimensionality"] = json!(d);
            }
            if let Some(task) = &task_type {
                one["taskType"] = json!(task);
            }
            if let Some(title) = &title {
                one["title"] = json!(title);
            }
            one
        })
        .collect();
    let estimated_tokens = texts
        .iter()
        .map(|t| (t.len() as u64).div_ceil(4).max(1))
        .sum();
    let context = Context {
        model: model.to_owned(),
        inputs: texts.len(),
        base64,
        estimated_tokens,
    };
    Ok((json!({"requests": requests}), context))
}

/// The OpenAI embeddings list for a `batchEmbedContents` answer.
pub(crate) fn response(body: &[u8], context: &Context) -> Result<bytes::Bytes, UpstreamError> {
    #[derive(Deserialize)]
    struct Batch<'a> {
        #[serde(borrow)]
        embeddings: Vec<Embedding<'a>>,
    }
    #[derive(Deserialize)]
    struct Embedding<'a> {
        #[serde(borrow)]
        values: &'a RawValue,
    }
    let batch: Batch = serde_json::from_slice(body)
        .map_err(|e| UpstreamError::Malformed(format!("unreadable Gemini embeddings: {e}")))?;
    if batch.embeddings.len() != context.inputs {
        return Err(UpstreamError::Malformed(format!(
            "Gemini returned {} embeddings for {} inputs",
            batch.embeddings.len(),
            context.inputs
        )));
    }
    // Floats go out as Gemini wrote them, digit for digit.
    let embeddings = batch
        .embeddings
        .iter()
        .map(|e| {
            if !context.base64 {
                return Ok(e.values.get().to_owned());
            }
            let floats: Vec<f32> = serde_json::from_str(e.values.get()).map_err(|err| {
                UpstreamError::Malformed(format!("unreadable Gemini embedding: {err}"))
            })?;
            let bytes: Vec<u8> = floats.iter().flat_map(|x| x.to_le_bytes()).collect();
            use base64::Engine as _;
            // Base64 needs no escaping inside a JSON string.
            Ok(format!(
                "\"{}\"",
                base64::engine::general_purpose::STANDARD.encode(bytes)
            ))
        })
        .collect::<Result<Vec<String>, UpstreamError>>()?;
    let list = reprise_api::embeddings_list(
        embeddings.iter().map(String::as_str),
        &context.model,
        context.estimated_tokens,
    );
    Ok(bytes::Bytes::from(list))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(v: Value) -> Object {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn texts_become_requests_and_vectors_come_back_in_order() {
        let (body, context) = request(
            &object(
                json!({"model": "gemini-embedding-001", "input": ["a cat", "a dog"],
                "dimensions": 3, "user": "u"}),
            ),
            "gemini-embedding-001",
        )
        .unwrap();
        assert_eq!(
            body,
            json!({"requests": [
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a cat"}]},
                 "outputDimensionality": 3},
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a dog"}]},
                 "outputDimensionality": 3},
            ]})
        );
        let answer = br#"{"embeddings": [{"values": [0.1, -0.25, 0.012345678]}, {"values": [1e-3, 0, 0.5]}]}"#;
        let text = response(answer, &context).unwrap();
        assert!(
            std::str::from_utf8(&text)
                .unwrap()
                .contains("[1e-3, 0, 0.5]"),
            "vectors go out as written"
        );
        let list: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(list["object"], "list");
        assert_eq!(list["model"], "gemini-embedding-001");
        assert_eq!(list["data"][0]["index"], 0);
        assert_eq!(list["data"][1]["embedding"], json!([0.001, 0, 0.5]));
        assert_eq!(list["data"][0]["embedding"][2], json!(0.012345678));
        assert_eq!(
            list["usage"],
            json!({"prompt_tokens": 4, "total_tokens": 4})
        );
    }

    #[test]
    fn geminis_own_options_go_with_each_request() {
        let (body, _) = request(
            &object(
                json!({"model": "m", "input": ["a", "b"], "task_type": "RETRIEVAL_DOCUMENT",
                "title": "Handbook"}),
            ),
            "m",
        )
        .unwrap();
        for one in body["requests"].as_array().unwrap() {
            assert_eq!(one["taskType"], "RETRIEVAL_DOCUMENT");
            assert_eq!(one["title"], "Handbook");
        }
        let refused = request(
            &object(json!({"model": "m", "input": "a", "task_type": 3})),
            "m",
        );
        assert!(
            matches!(refused, Err(UpstreamError::Unsupported { ref param, .. }) if param == "task_type")
        );
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let (_, context) = request(
            &object(json!({"model": "m", "input": "x", "encoding_format": "base64"})),
            "m",
        )
        .unwrap();
        let list: Value = serde_json::from_slice(
            &response(br#"{"embeddings": [{"values": [0.5, -2.0]}]}"#, &context).unwrap(),
        )
        .unwrap();
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(list["data"][0]["embedding"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            bytes,
            [0.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat()
        );
    }

    #[test]
    fn what_gemini_cannot_embed_is_refused_naming_the_field() {
        for (req, param) in [
            (json!({"model": "m", "input": [[1, 2, 3]]}), "input"),
            (json!({"model": "m", "input": [1, 2]}), "input"),
            (json!({"model": "m", "input": []}), "input"),
            (
                json!({"model": "m", "input": "x", "encoding_format": "int8"}),
                "encoding_format",
            ),
            (
                json!({"model": "m", "input": "x", "dimensions": 0}),
                "dimensions",
            ),
            (
                json!({"model": "m", "input": "x", "task": "retrieval"}),
                "task",
            ),
        ] {
            match request(&object(req.clone()), "m") {
                Err(UpstreamError::Unsupported { param: p, .. }) => assert_eq!(p, param, "{req}"),
                other => panic!("{req}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_short_or_unreadable_answer_is_malformed() {
        let (_, context) =
            request(&object(json!({"model": "m", "input": ["a", "b"]})), "m").unwrap();
        for answer in [
            &br#"{"embeddings": [{"values": [0.5]}]}"#[..],
            br#"{"nothing": []}"#,
            b"not json",
        ] {
            assert!(matches!(
                response(answer, &context),
                Err(UpstreamError::Malformed(_))
            ));
        }
    }
}
