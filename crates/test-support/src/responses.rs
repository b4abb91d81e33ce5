//! OpenAI's Responses API (`POST /v1/responses`): a response object as JSON, or its named events
//! as a stream (`response.created` ... `response.completed`, no `[DONE]`), in the shapes OpenAI
//! documents. Plays the same fault script as the other routes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::openai::{
    Cut, InFlight, Play, Shared, bad_request, begin, broken_json, frames, lock, now, openai_error,
    prelude, record, sse,
};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Responses kept for the stored-response routes; past this many the mock forgets them all.
const STORED_MAX: usize = 10_000;

pub(crate) async fn responses(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (request, guard, step) = match begin(&shared, "/v1/responses", &headers, &body) {
        Ok(begun) => begun,
        Err(response) => return *response,
    };
    let Some(model) = request["model"].as_str().map(str::to_owned) else {
        return bad_request("mock: 'model' is required");
    };
    // A follow-up turn must name a response this account stored.
    if let Some(previous) = request["previous_response_id"].as_str()
        && !lock(&shared.stored).contains_key(previous)
    {
        let error = json!({"error": {
            "message": format!("Previous response with id '{previous}' not found."),
            "type": "invalid_request_error", "param": "previous_response_id",
            "code": "previous_response_not_found"}});
        return (StatusCode::BAD_REQUEST, Json(error)).into_response();
    }
    // Ids unique across every mock of the process, so two accounts never share one.
    let id = format!("resp_mock{}", NEXT_ID.fetch_add(1, Ordering::SeqCst));
    let input = match &request["input"] {
        Value::String(text) => json!([{"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": text}]}]),
        other => other.clone(),
    };
    let streaming = request["stream"].as_bool().unwrap_or(false);
    // Five tokens an input item (a text input is one).
    let input_tokens = match &request["input"] {
        Value::Array(items) => items.len() as u64 * 5,
        Value::Null => 0,
        _ => 5,
    };
    let reply = shared.reply.clone();
    let output_tokens = reply.split_whitespace().count() as u64;

    let Play { guard, cut, hold } = match prelude(step, guard, openai_error).await {
        Ok(play) => play,
        Err(response) => return response,
    };
    shared.served.0.fetch_add(input_tokens, Ordering::SeqCst);
    shared.served.1.fetch_add(output_tokens, Ordering::SeqCst);

    let text_part = |text: &str| json!({"type": "output_text", "text": text, "annotations": []});
    let message = |status: &str, content: Vec<Value>| {
        json!({"id": "msg_mock", "type": "message", "status": status, "role": "assistant",
               "content": content})
    };
    let response = |status: &str, output: Vec<Value>, usage: Value| {
        json!({
            "id": id, "object": "response", "created_at": now(), "status": status,
            "error": null, "incomplete_details": null, "instructions": null,
            "max_output_tokens": null, "model": model, "output": output,
            "parallel_tool_calls": true, "previous_response_id": null,
            "reasoning": {"effort": null, "summary": null}, "store": true, "temperature": 1.0,
            "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [],
            "top_p": 1.0, "truncation": "disabled", "usage": usage, "user": null, "metadata": {}
        })
    };
    let usage = json!({
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens
    });
    let done = response(
        "completed",
        vec![message("completed", vec![text_part(&reply)])],
        usage,
    );
    {
        // Bounded, for the benchmarks' hundreds of thousands of requests.
        let mut stored = lock(&shared.stored);
        if stored.len() >= STORED_MAX {
            stored.clear();
        }
        stored.insert(id.clone(), (done.clone(), input));
    }
    if !streaming {
        if let Some((_, Cut::Reset)) = cut {
            return broken_json(guard);
        }
        guard.finish();
        return Json(done).into_response();
    }

    let opened = response("in_progress", Vec::new(), Value::Null);
    let at = json!({"item_id": "msg_mock", "output_index": 0, "content_index": 0});
    let with = |kind: &str, fields: Value| {
        let mut event = json!({"type": kind});
        for source in [&at, &fields] {
            if let (Some(event), Some(source)) = (event.as_object_mut(), source.as_object()) {
                event.extend(source.clone());
            }
        }
        event
    };
    let mut events = vec![
        json!({"type": "response.created", "response": opened}),
        json!({"type": "response.in_progress", "response": opened}),
        json!({"type": "response.output_item.added", "output_index": 0,
               "item": message("in_progress", Vec::new())}),
        with(
            "response.content_part.added",
            json!({"part": text_part("")}),
        ),
    ];
    for word in reply.split_inclusive(' ') {
        events.push(with(
            "response.output_text.delta",
            json!({"delta": word, "logprobs": []}),
        ));
    }
    events.push(with(
        "response.output_text.done",
        json!({"text": reply, "logprobs": []}),
    ));
    events.push(with(
        "response.content_part.done",
        json!({"part": text_part(&reply)}),
    ));
    events.push(
        json!({"type": "response.output_item.done", "output_index": 0,
                       "item": message("completed", vec![text_part(&reply)])}),
    );
    events.push(json!({"type": "response.completed", "response": done}));
    let events = events
        .into_iter()
        .enumerate()
        .map(|(n, mut event)| {
            event["sequence_number"] = json!(n);
            let name = event["type"].as_str().map(str::to_owned);
            (name, event.to_string())
        })
        .collect();
    sse(frames(events), guard, cut, hold)
}

fn not_found(id: &str) -> Response {
    let error = json!({"error": {"message": format!("Response with id '{id}' not found."),
        "type": "invalid_request_error", "param": null, "code": null}});
    (StatusCode::NOT_FOUND, Json(error)).into_response()
}

/// `GET /v1/responses/{id}`: the stored response; with `?stream=true`, its final event (what
/// a background response's stream ends with).
pub(crate) async fn stored(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let path = format!("GET {}", uri.path_and_query().map_or("", |p| p.as_str()));
    record(&shared, &path, &headers, &Value::Null);
    let Some((response, _)) = lock(&shared.stored).get(&id).cloned() else {
        return not_found(&id);
    };
    if uri.query() != Some("stream=true") {
        return Json(response).into_response();
    }
    let guard = InFlight {
        shared: shared.clone(),
        finished: false,
    };
    let event = json!({"type": "response.completed", "sequence_number": 0, "response": response});
    let events = vec![(Some("response.completed".to_owned()), event.to_string())];
    sse(frames(events), guard, None, None)
}

/// `DELETE /v1/responses/{id}`.
pub(crate) async fn deleted(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    record(
        &shared,
        &format!("DELETE /v1/responses/{id}"),
        &headers,
        &Value::Null,
    );
    match lock(&shared.stored).remove(&id) {
        Some(_) => {
            Json(json!({"id": id, "object": "response.deleted", "deleted": true})).into_response()
        }
        None => not_found(&id),
    }
}

/// `GET /v1/responses/{id}/input_items`: the input the response was made from.
pub(crate) async fn input_items(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let path = format!("GET {}", uri.path_and_query().map_or("", |p| p.as_str()));
    record(&shared, &path, &headers, &Value::Null);
    match lock(&shared.stored).get(&id) {
        Some((_, input)) => {
            let data = input.as_array().cloned().unwrap_or_default();
            Json(
                json!({"object": "list", "data": data, "first_id": null, "last_id": null,
                        "has_more": false}),
            )
            .into_response()
        }
        None => not_found(&id),
    }
}
