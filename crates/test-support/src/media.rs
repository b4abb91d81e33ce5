//! The OpenAI API's other routes the gateway forwards (moderations, images, audio), answered as
//! OpenAI answers them in shape: JSON, audio bytes sent in several frames, and a multipart
//! upload read back. Each answer is derived from the request, so a test can tell that what it
//! sent arrived untouched. The scripted steps `Fail`, `Status`, `Delay` and `ResetAfterChunks`
//! apply.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde_json::{Value, json};

use crate::openai::{
    Cut, InFlight, Play, Shared, bad_request, begin, now, openai_error, prelude, take_step,
};

/// `POST /v1/moderations`: an input that mentions hurting someone is flagged for violence.
pub(crate) async fn moderations(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (request, guard, step) = match begin(&shared, "/v1/moderations", &headers, &body) {
        Ok(begun) => begun,
        Err(response) => return *response,
    };
    let Play { guard, .. } = match prelude(step, guard, openai_error).await {
        Ok(play) => play,
        Err(response) => return response,
    };
    let inputs: Vec<String> = match &request["input"] {
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().unwrap_or_default().to_owned())
            .collect(),
        other => vec![other.as_str().unwrap_or_default().to_owned()],
    };
    let results: Vec<Value> = inputs
        .iter()
        .map(|input| {
            let flagged = input.to_lowercase().contains("hurt");
            json!({
                "flagged": flagged,
                "categories": {"violence": flagged, "harassment": false},
                "category_scores": {"violence": if flagged { 0.93 } else { 0.01 }, "harassment": 0.01},
                "category_applied_input_types": {"violence": ["text"], "harassment": ["text"]},
            })
        })
        .collect();
    guard.finish();
    axum::Json(json!({
        "id": "modr-mock",
        "model": request["model"].as_str().unwrap_or("omni-moderation-latest"),
        "results": results,
    }))
    .into_response()
}

/// `POST /v1/images/generations`: one image per `n`, its bytes the prompt's.
pub(crate) async fn images(
    State(shared): State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (request, guard, step) = match begin(&shared, uri.path(), &headers, &body) {
        Ok(begun) => begun,
        Err(response) => return *response,
    };
    let Play { guard, .. } = match prelude(step, guard, openai_error).await {
        Ok(play) => play,
        Err(response) => return response,
    };
    let prompt = request["prompt"].as_str().unwrap_or_default();
    let n = request["n"].as_u64().unwrap_or(1);
    let image = image_b64(prompt);
    let data: Vec<Value> = (0..n)
        .map(|_| json!({"b64_json": image, "revised_prompt": prompt}))
        .collect();
    guard.finish();
    axum::Json(json!({"created": now(), "data": data})).into_response()
}

/// A stand-in PNG, base64: the signature, then the prompt.
fn image_b64(prompt: &str) -> String {
    use base64::Engine as _;
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(prompt.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The audio the mock "speaks" for `input`: an MP3 tag, then the input's bytes.
pub fn speech_bytes(input: &str) -> Vec<u8> {
    let mut bytes = b"ID3\x04\x00\x00\xff\xfb".to_vec();
    bytes.extend_from_slice(input.as_bytes());
    bytes
}

/// `POST /v1/audio/speech`: [`speech_bytes`] as `audio/mpeg`, in three frames a few
/// milliseconds apart (a body relayed as it comes, not read whole).
pub(crate) async fn speech(
    State(shared): State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (request, guard, step) = match begin(&shared, uri.path(), &headers, &body) {
        Ok(begun) => begun,
        Err(response) => return *response,
    };
    let (guard, reset) = match prelude(step, guard, openai_error).await {
        Ok(Play {
            guard,
            cut: Some((n, Cut::Reset)),
            ..
        }) => (guard, Some(n)),
        Ok(play) => (play.guard, None),
        Err(response) => return response,
    };
    let audio = speech_bytes(request["input"].as_str().unwrap_or_default());
    let third = audio.len().div_ceil(3).max(1);
    let mut frames: Vec<Result<Bytes, std::io::Error>> = audio
        .chunks(third)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    if let Some(n) = reset {
        frames.truncate(n);
        frames.push(Err(std::io::Error::other("mock reset")));
    }
    let paced = stream::unfold(
        (frames.into_iter(), Some(guard)),
        |(mut frames, mut guard)| async move {
            let frame = frames.next()?;
            tokio::time::sleep(Duration::from_millis(5)).await;
            if frames.as_slice().is_empty()
                && frame.is_ok()
                && let Some(guard) = guard.take()
            {
                guard.finish();
            }
            Some((frame, (frames, guard)))
        },
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "audio/mpeg")],
        Body::from_stream(paced),
    )
        .into_response()
}

/// The multipart uploads: `POST /v1/audio/transcriptions` and `/v1/audio/translations`, whose
/// "transcript" is the uploaded file's bytes read as text (`response_format=text`: as plain
/// text, else `{"text": ...}`), and `/v1/images/edits` and `/v1/images/variations`, whose image
/// is the prompt's (or the file's) bytes. Recorded as the form's text fields with the file's
/// name and size.
pub(crate) async fn upload(
    State(shared): State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Ok(boundary) = multer::parse_boundary(content_type) else {
        return bad_request("mock: expected a multipart/form-data body");
    };
    let mut form = multer::Multipart::new(
        stream::once(async move { Ok::<_, std::convert::Infallible>(body) }),
        boundary,
    );
    let mut fields = serde_json::Map::new();
    let mut file: Option<(String, Bytes)> = None;
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                let file_name = field.file_name().map(str::to_owned);
                let Ok(bytes) = field.bytes().await else {
                    return bad_request("mock: unreadable multipart field");
                };
                match file_name {
                    Some(file_name) if file.is_none() => file = Some((file_name, bytes)),
                    _ => {
                        let text = String::from_utf8_lossy(&bytes).into_owned();
                        fields.insert(name, Value::String(text));
                    }
                }
            }
            Ok(None) => break,
            Err(_) => return bad_request("mock: malformed multipart body"),
        }
    }
    let Some((file_name, upload)) = file else {
        return bad_request("mock: no file in the upload");
    };
    fields.insert("file_name".to_owned(), Value::String(file_name));
    fields.insert("file_bytes".to_owned(), json!(upload.len()));
    let recorded = Value::Object(fields);
    let step = take_step(&shared, uri.path(), &headers, &recorded);
    let guard = InFlight {
        shared: shared.clone(),
        finished: false,
    };
    let Play { guard, .. } = match prelude(step, guard, openai_error).await {
        Ok(play) => play,
        Err(response) => return response,
    };
    let text = String::from_utf8_lossy(&upload).into_owned();
    guard.finish();
    if uri.path().contains("/images/") {
        let prompt = recorded["prompt"].as_str().unwrap_or(&text);
        let data = json!([{"b64_json": image_b64(prompt)}]);
        return axum::Json(json!({"created": now(), "data": data})).into_response();
    }
    if recorded["response_format"] == "text" {
        return ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response();
    }
    axum::Json(json!({"text": text, "usage": {"type": "duration", "seconds": 3}})).into_response()
}
