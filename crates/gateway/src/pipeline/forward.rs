//! The OpenAI API's other routes (moderations, images, audio): forwarded as they came to an
//! OpenAI-compatible target, and their answers relayed as they come, frame by frame, whatever
//! their type (JSON, audio bytes, an event stream). The gateway reads only the `model` a body
//! names, for the key's allowed models, the choice of target and the log line; the cache is not
//! consulted (`x-reprise-cache: bypass`).

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use futures_util::stream;
use http_body_util::BodyExt;
use reprise_providers::{ForwardCall, Forwarded, RawBody, UpstreamError};

use super::record::{CacheStatus, Outcome, RequestLog};
use super::{admit, admit_budgets, fail, push_provider};
use crate::auth::Caller;
use crate::state::Target;
use crate::{AppState, GatewayError};

/// A request on a forwarded route.
pub struct ForwardRequest {
    /// The path below `/v1/`: `moderations`, `audio/speech`...
    pub path: &'static str,
    pub query: Option<String>,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

/// Admits, forwards and relays one request on a forwarded route.
pub async fn forward(
    state: &AppState,
    mut log: RequestLog,
    caller: Caller,
    request: ForwardRequest,
) -> Response {
    let model = named_model(request.content_type.as_ref(), &request.body);
    log.model.clone_from(&model);
    // The key's models (a key held to some may use these routes only naming one of them), its
    // requests per minute, then its budgets: these answers cost money too.
    let admitted = admit(
        state,
        &mut log,
        &caller,
        model.as_deref().unwrap_or("(none named)"),
    )
    .and_then(|()| match &caller.key {
        Some(key) => admit_budgets(state, key),
        None => Ok(()),
    });
    if let Err(err) = admitted {
        return fail(log, err, &[]);
    }
    let mut headers = vec![(
        "x-reprise-cache",
        HeaderValue::from_static(CacheStatus::Bypass.as_str()),
    )];
    let Some(target) = choose_target(state, request.path, model.as_deref()) else {
        let message = format!(
            "No target takes /v1/{}: the OpenAI API's routes other than chat, completions, \
             responses, embeddings and models are forwarded to OpenAI-compatible targets only \
             (Azure: for a model its deployments serve; never Anthropic or Gemini), and none \
             is configured for this request.",
            request.path
        );
        return fail(log, GatewayError::invalid(message, None), &headers);
    };
    log.target = Some(target.name.clone());
    push_provider(&mut headers, Some(&target.name));
    let call = ForwardCall {
        path: request.path,
        query: request.query.as_deref(),
        model: model.as_deref(),
        content_type: request.content_type.as_ref(),
        body: request.body,
        api_key: caller.upstream_key.as_ref(),
    };
    let upstream_started = Instant::now();
    let outcome = target.provider.forward(call).await;
    log.upstream = Some(upstream_started.elapsed());
    match outcome {
        Ok(answer) => relay(log, answer, &headers),
        Err(err) => {
            tracing::warn!(target = %target.name, error = %err, "forwarded request failed");
            fail(
                log,
                GatewayError::from_upstream(&target.name, err),
                &headers,
            )
        }
    }
}

/// The target for a forwarded request: the one that serves the model it names, under that
/// name, when that one takes the route (an Azure target: the deployment of that name); else the
/// first OpenAI-flavoured one, in configuration order.
fn choose_target<'a>(
    state: &'a AppState,
    path: &str,
    model: Option<&'a str>,
) -> Option<&'a Target> {
    let by_model = model.and_then(|model| {
        state
            .router()
            .plan(model, Instant::now())
            .into_iter()
            .find(|route| {
                route.model.is_none() && route.target.provider.forwards(path, Some(model))
            })
            .map(|route| route.target)
    });
    by_model.or_else(|| {
        state
            .targets()
            .iter()
            .find(|t| t.provider.forwards(path, None))
    })
}

/// The `model` a request body names: a JSON body's field, or a multipart form's part.
fn named_model(content_type: Option<&HeaderValue>, body: &Bytes) -> Option<String> {
    let content_type = content_type.and_then(|v| v.to_str().ok()).unwrap_or("");
    if let Ok(boundary) = multer::parse_boundary(content_type) {
        return multipart_model(body.clone(), boundary);
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        model: Option<String>,
    }
    serde_json::from_slice::<Probe>(body).ok()?.model
}

/// The text of a multipart form's `model` part. The body is already in memory, so the parse
/// completes without waiting: it is polled once, never awaited on I/O.
fn multipart_model(body: Bytes, boundary: String) -> Option<String> {
    let chunks = stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut form = multer::Multipart::new(chunks, boundary);
    let read = async move {
        while let Ok(Some(field)) = form.next_field().await {
            if field.name() == Some("model") {
                return field.text().await.ok();
            }
        }
        None
    };
    futures_util::FutureExt::now_or_never(read).flatten()
}

/// The upstream's answer relayed as it comes: its status and content type, each body frame
/// sent on as it arrives. A body that breaks off or goes quiet past the idle timeout ends the
/// response abruptly (no clean end: a client never takes a cut answer for a whole one).
fn relay(
    mut log: RequestLog,
    answer: Forwarded,
    headers: &[(&'static str, HeaderValue)],
) -> Response {
    log.status = answer.status.as_u16();
    log.first_byte = Some(log.started.elapsed());
    let stream = answer
        .content_type
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    log.stream = stream;
    let frames = Frames {
        body: answer.body,
        idle: answer.idle,
        log,
    };
    let body = Body::from_stream(stream::unfold(Some(frames), next_frame));
    let mut response = Response::new(body);
    *response.status_mut() = answer.status;
    let h = response.headers_mut();
    if let Some(content_type) = answer.content_type {
        h.insert(header::CONTENT_TYPE, content_type);
    }
    if stream {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    for (name, value) in headers {
        h.insert(*name, value.clone());
    }
    response
}

struct Frames {
    body: RawBody,
    idle: Duration,
    /// Written when the body ends, however it ends (a client that goes away drops it).
    log: RequestLog,
}

async fn next_frame(
    frames: Option<Frames>,
) -> Option<(Result<Bytes, std::io::Error>, Option<Frames>)> {
    let mut frames = frames?;
    loop {
        match tokio::time::timeout(frames.idle, frames.body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    return Some((Ok(data), Some(frames)));
                }
                // Trailers: nothing to relay.
            }
            Ok(None) => {
                frames.log.outcome = Outcome::Ok;
                return None;
            }
            Ok(Some(Err(e))) => {
                let err = UpstreamError::from_body(&*e);
                return Some((Err(cut(frames, &err)), None));
            }
            Err(_) => {
                let err = UpstreamError::IdleTimeout(frames.idle);
                return Some((Err(cut(frames, &err)), None));
            }
        }
    }
}

/// Records a body cut short, and the error that ends the client's response.
fn cut(mut frames: Frames, err: &UpstreamError) -> std::io::Error {
    frames.log.outcome = Outcome::StreamFailed;
    frames.log.error = Some(err.label());
    tracing::warn!(error = %err, "forwarded answer cut short");
    std::io::Error::other("the upstream answer was cut short")
}
