//! The mock's Anthropic and Gemini routes: the same script and reply as the OpenAI route, in
//! each provider's own wire format (shapes as the providers document and send them).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::openai::{Play, Shared, bad_request, begin, frames, prelude, sse};

fn anthropic_error(status: u16) -> String {
    let kind = match status {
        429 => "rate_limit_error",
        529 => "overloaded_error",
        400 => "invalid_request_error",
        401 => "authentication_error",
        _ => "api_error",
    };
    json!({"type": "error", "error": {"type": kind, "message": format!("mock failure {status}")}})
        .to_string()
}

fn gemini_error(status: u16) -> String {
    let kind = match status {
        429 => "RESOURCE_EXHAUSTED",
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    json!({"error": {"code": status, "message": format!("mock failure {status}"), "status": kind}})
        .to_string()
}

/// What Anthropic's Messages API refuses in a conversation that the mock checks for.
fn anthropic_refusal(request: &Value) -> Option<&'static str> {
    let messages = request["messages"].as_array()?;
    if messages.first().is_some_and(|m| m["role"] != "user") {
        return Some("messages: first message must use the \"user\" role");
    }
    let texts = |blocks: &Value| -> Vec<String> {
        blocks
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str().map(str::to_owned))
            .collect()
    };
    let system = texts(&request["system"]);
    let conversation = messages.iter().flat_map(|m| texts(&m["content"]));
    if system
        .iter()
        .cloned()
        .chain(conversation)
        .any(|t| t.trim().is_empty())
    {
        return Some("messages: text content blocks must contain non-whitespace text");
    }
    let last = messages.last()?;
    if last["role"] == "assistant"
        && last["content"]
            .as_array()
            .and_then(|blocks| blocks.last())
            .and_then(|b| b["text"].as_str())
            .is_some_and(|t| t.ends_with(char::is_whitespace))
    {
        return Some("messages: final assistant content cannot end with trailing whitespace");
    }
    None
}

/// `POST /v1/messages`.
pub async fn anthropic(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (request, guard, step) = match begin(&shared, "/v1/messages", &headers, &body) {
        Ok(begun) => begun,
        Err(response) => return *response,
    };
    // As Anthropic does: the user speaks first, no text block is blank, and a final assistant
    // text (a prefill) does not end with whitespace.
    if let Some(refusal) = anthropic_refusal(&request) {
        guard.finish();
        let body = json!({"type": "error", "error": {"type": "invalid_request_error",
            "message": refusal}});
        return (axum::http::StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    let Play { guard, cut, hold } = match prelude(step, guard, anthropic_error).await {
        Ok(play) => play,
        Err(response) => return response,
    };
    let model = request["model"]
        .as_str()
        .unwrap_or("claude-mock")
        .to_owned();
    let input_tokens = request["messages"]
        .as_array()
        .map_or(0, |m| m.len() as u64 * 5);
    let reply = shared.reply.clone();
    let output_tokens = reply.split_whitespace().count() as u64;
    if request["stream"].as_bool() != Some(true) {
        guard.finish();
        return Json(json!({
            "id": "msg_mock",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": reply}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }))
        .into_response();
    }
    let event = |name: &str, data: Value| (Some(name.to_owned()), data.to_string());
    let mut events = vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message",
                "role": "assistant", "model": model, "content": [], "stop_reason": null,
                "stop_sequence": null, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        event("ping", json!({"type": "ping"})),
    ];
    for word in reply.split_inclusive(' ') {
        events.push(event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}}),
        ));
    }
    events.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": output_tokens}}),
    ));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    sse(frames(events), guard, cut, hold)
}

/// `:batchEmbedContents`: each request's text embedded by the mock's bag of words, cut to its
/// `outputDimensionality`; every request must name the model of the path, as Gemini requires.
fn gemini_embeddings(request: &Value, model: &str) -> Response {
    let requests = request["requests"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let mut embeddings = Vec::with_capacity(requests.len());
    for one in requests {
        let text = one["content"]["parts"][0]["text"].as_str();
        let (Some(text), true) = (text, one["model"] == format!("models/{model}")) else {
            let body = json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                "message": "mock: each request needs the path's model and a text part"}});
            return (axum::http::StatusCode::BAD_REQUEST, Json(body)).into_response();
        };
        let mut values = crate::openai::bag_of_words(text);
        if let Some(d) = one["outputDimensionality"].as_u64() {
            values.truncate(d as usize);
        }
        embeddings.push(json!({"values": values}));
    }
    Json(json!({"embeddings": embeddings})).into_response()
}

/// `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`.
pub async fn gemini(
    State(shared): State<Arc<Shared>>,
    Path(call): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((model, method)) = call.split_once(':') else {
        return bad_request("mock: expected models/{model}:{method}");
    };
    let model = model.to_owned();
    let streaming = method == "streamGenerateContent";
    let path = format!("/v1beta/models/{call}");
    let (request, guard, step) = match begin(&shared, &path, &headers, &body) {
        Ok(begun) => begun,
        Err(response) => return *response,
    };
    if method == "batchEmbedContents" {
        let Play { guard, .. } = match prelude(step, guard, gemini_error).await {
            Ok(play) => play,
            Err(response) => return response,
        };
        guard.finish();
        return gemini_embeddings(&request, &model);
    }
    // As Gemini does: the user speaks first.
    if request["contents"][0]["role"] != "user" {
        guard.finish();
        let body = json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
            "message": "Please ensure that multiturn requests alternate between user and model."}});
        return (axum::http::StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    let Play { guard, cut, hold } = match prelude(step, guard, gemini_error).await {
        Ok(play) => play,
        Err(response) => return response,
    };
    let prompt = request["contents"]
        .as_array()
        .map_or(0, |m| m.len() as u64 * 5);
    let reply = shared.reply.clone();
    let output = reply.split_whitespace().count() as u64;
    let usage = json!({"promptTokenCount": prompt, "candidatesTokenCount": output,
        "totalTokenCount": prompt + output});
    if !streaming {
        guard.finish();
        return Json(json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": reply}]},
                "finishReason": "STOP", "index": 0}],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": "mock-response",
        }))
        .into_response();
    }
    let words: Vec<&str> = reply.split_inclusive(' ').collect();
    let last = words.len().saturating_sub(1);
    let events = words
        .iter()
        .enumerate()
        .map(|(i, word)| {
            let mut candidate =
                json!({"content": {"role": "model", "parts": [{"text": word}]}, "index": 0});
            let mut event = json!({"modelVersion": model, "responseId": "mock-response"});
            if i == last {
                candidate["finishReason"] = json!("STOP");
                event["usageMetadata"] = usage.clone();
            }
            event["candidates"] = json!([candidate]);
            (None, event.to_string())
        })
        .collect();
    sse(frames(events), guard, cut, hold)
}
