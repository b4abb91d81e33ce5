use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use futures_util::stream;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// One scripted behaviour, used by the next chat or embeddings request that arrives.
#[derive(Debug, Clone)]
pub enum Step {
    /// Answer with this status, body and extra headers.
    Status {
        status: u16,
        body: String,
        headers: Vec<(String, String)>,
    },
    /// Wait this long before sending the response head, then answer normally.
    Delay(Duration),
    /// Wait this long, then play this step.
    After(Duration, Box<Step>),
    /// Never answer (until the client goes away).
    Stall,
    /// Stream this many chunks, then go silent without closing.
    StallAfterChunks(usize),
    /// Stream this many chunks, then end the body cleanly but without the final events.
    TruncateAfterChunks(usize),
    /// Stream this many chunks, then abort the connection.
    ResetAfterChunks(usize),
    /// Stream every chunk but the last, then wait for the gate to open.
    HoldLastChunk(Gate),
    /// Stream the first `n` chunks, then wait at the gate.
    HoldAfterChunks(usize, Gate),
    /// Answer a non-streamed request with exactly this JSON (status 200).
    Json(Value),
    /// Fail with this status and an error body in the wire format of the route asked.
    Fail(u16),
    /// Stream exactly these events (`event:` name, if any, and `data`), as recorded from a
    /// provider.
    Events(Vec<(Option<String>, String)>),
}

/// A gate a scripted stream waits at until the test opens it.
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<Notify>);

impl Gate {
    pub fn open(&self) {
        self.0.notify_one();
    }
}

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Debug)]
pub(crate) struct Shared {
    script: Mutex<VecDeque<Step>>,
    requests: Mutex<Vec<Recorded>>,
    record: bool,
    pub(crate) reply: String,
    models: Vec<String>,
    cancelled: AtomicUsize,
    cancelled_changed: Notify,
    connections: AtomicUsize,
    /// Tokens reported in `usage` of answers sent (prompt, completion).
    pub(crate) served: (std::sync::atomic::AtomicU64, std::sync::atomic::AtomicU64),
    /// Responses API answers by id, with their input items, as OpenAI stores them.
    pub(crate) stored: Mutex<std::collections::HashMap<String, (Value, Value)>>,
}

/// Builder for [`MockUpstream`].
#[derive(Debug)]
pub struct Builder {
    record: bool,
    /// Serve `/v1/responses` (off: a server that only has chat completions).
    responses_api: bool,
    reply: String,
    models: Vec<String>,
}

impl Builder {
    /// Keep every request for [`MockUpstream::requests`] (on by default; off for benchmarks).
    pub fn record(mut self, record: bool) -> Self {
        self.record = record;
        self
    }

    /// The assistant's reply text; streamed one word per chunk.
    pub fn reply(mut self, text: impl Into<String>) -> Self {
        self.reply = text.into();
        self
    }

    /// A server without the Responses API: its routes answer 404, as a router does.
    pub fn without_responses_api(mut self) -> Self {
        self.responses_api = false;
        self
    }

    pub fn models(mut self, models: &[&str]) -> Self {
        self.models = models.iter().map(|m| (*m).to_owned()).collect();
        self
    }

    pub async fn start(self) -> MockUpstream {
        match self.bind(SocketAddr::from(([127, 0, 0, 1], 0))).await {
            Ok(mock) => mock,
            Err(e) => unreachable_bind(e),
        }
    }

    pub async fn bind(self, addr: SocketAddr) -> std::io::Result<MockUpstream> {
        let shared = Arc::new(Shared {
            script: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            record: self.record,
            reply: self.reply,
            models: self.models,
            cancelled: AtomicUsize::new(0),
            cancelled_changed: Notify::new(),
            connections: AtomicUsize::new(0),
            served: Default::default(),
            stored: Mutex::default(),
        });
        let mut app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/completions", post(completions))
            .route(
                "/openai/deployments/{deployment}/completions",
                post(completions),
            )
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/models", get(models))
            .route("/v1/messages", post(crate::dialects::anthropic))
            .route(
                "/openai/deployments/{deployment}/chat/completions",
                post(chat),
            )
            .route("/v1beta/models/{call}", post(crate::dialects::gemini))
            .route("/v1/moderations", post(crate::media::moderations))
            .route("/v1/images/generations", post(crate::media::images))
            .route("/v1/audio/speech", post(crate::media::speech))
            .route("/v1/audio/transcriptions", post(crate::media::upload))
            .route("/v1/audio/translations", post(crate::media::upload))
            .route("/v1/images/edits", post(crate::media::upload))
            .route("/v1/images/variations", post(crate::media::upload))
            .route(
                "/openai/deployments/{deployment}/audio/speech",
                post(crate::media::speech),
            )
            .route(
                "/openai/deployments/{deployment}/audio/transcriptions",
                post(crate::media::upload),
            )
            .route(
                "/openai/deployments/{deployment}/images/generations",
                post(crate::media::images),
            );
        if self.responses_api {
            app = app
                .route("/v1/responses", post(crate::responses::responses))
                .route(
                    "/v1/responses/{id}",
                    get(crate::responses::stored).delete(crate::responses::deleted),
                )
                .route(
                    "/v1/responses/{id}/input_items",
                    get(crate::responses::input_items),
                );
        }
        let app = app.with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let counter = shared.clone();
        let listener = listener.tap_io(move |tcp| {
            let _ = tcp.set_nodelay(true);
            counter.connections.fetch_add(1, Ordering::SeqCst);
        });
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(MockUpstream {
            addr,
            shared,
            server,
        })
    }
}

#[expect(
    clippy::panic,
    reason = "test support: a loopback bind failure ends the test"
)]
fn unreachable_bind(e: std::io::Error) -> ! {
    panic!("mock upstream could not bind a loopback port: {e}")
}

/// An OpenAI-format upstream on a loopback port. Dropping it stops the server.
#[derive(Debug)]
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl MockUpstream {
    pub fn builder() -> Builder {
        Builder {
            record: true,
            responses_api: true,
            reply: "Hello from the mock upstream.".to_owned(),
            models: vec!["mock-gpt".to_owned(), "mock-gpt-mini".to_owned()],
        }
    }

    /// A mock with default settings on an ephemeral loopback port.
    pub async fn start() -> MockUpstream {
        Self::builder().start().await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL an OpenAI client would use, including `/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Appends a step to the script.
    pub fn push(&self, step: Step) -> &Self {
        lock(&self.shared.script).push_back(step);
        self
    }

    /// The next `n` requests fail with `status` and an OpenAI-shaped error body.
    pub fn fail_times(&self, n: usize, status: u16) -> &Self {
        for _ in 0..n {
            self.push(Step::Fail(status));
        }
        self
    }

    /// The next `n` requests fail with `status`, a `Retry-After` of `after` and an error body
    /// in the route's wire format.
    pub fn rate_limit(&self, n: usize, after: Duration) -> &Self {
        for _ in 0..n {
            self.push(Step::Status {
                status: 429,
                body: json!({"error": {"message": "mock rate limit", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}).to_string(),
                headers: vec![("retry-after-ms".to_owned(), after.as_millis().to_string())],
            });
        }
        self
    }

    /// The next stream sends exactly these events.
    pub fn respond_events(&self, events: Vec<(Option<String>, String)>) -> &Self {
        self.push(Step::Events(events))
    }

    /// The base URL of an Anthropic client (the adapter appends `/v1/messages`).
    pub fn anthropic_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base URL of a Gemini client (the adapter appends `/models/...`).
    pub fn gemini_base_url(&self) -> String {
        format!("http://{}/v1beta", self.addr)
    }

    /// The next request gets `status` with exactly this body.
    pub fn respond_status(&self, status: u16, body: &str) -> &Self {
        self.push(Step::Status {
            status,
            body: body.to_owned(),
            headers: Vec::new(),
        })
    }

    pub fn delay_first_byte(&self, delay: Duration) -> &Self {
        self.push(Step::Delay(delay))
    }

    pub fn stall(&self) -> &Self {
        self.push(Step::Stall)
    }

    pub fn stall_after_chunks(&self, n: usize) -> &Self {
        self.push(Step::StallAfterChunks(n))
    }

    pub fn truncate_after_chunks(&self, n: usize) -> &Self {
        self.push(Step::TruncateAfterChunks(n))
    }

    pub fn reset_after_chunks(&self, n: usize) -> &Self {
        self.push(Step::ResetAfterChunks(n))
    }

    /// The next request gets exactly this completion body.
    pub fn respond_json(&self, body: Value) -> &Self {
        self.push(Step::Json(body))
    }

    /// The next stream holds its last chunk until the returned gate is opened.
    pub fn hold_last_chunk(&self) -> Gate {
        let gate = Gate::default();
        self.push(Step::HoldLastChunk(gate.clone()));
        gate
    }

    /// The next stream sends its first `n` chunks, then waits until the returned gate is
    /// opened (a model thinking between its first event and its answer).
    pub fn hold_after_chunks(&self, n: usize) -> Gate {
        let gate = Gate::default();
        self.push(Step::HoldAfterChunks(n, gate.clone()));
        gate
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// The prompt and completion tokens reported in the `usage` of every chat answer the mock
    /// has generated (JSON, and streams that asked for usage).
    pub fn tokens_served(&self) -> (u64, u64) {
        (
            self.shared.served.0.load(Ordering::SeqCst),
            self.shared.served.1.load(Ordering::SeqCst),
        )
    }

    /// How many TCP connections the mock has accepted.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// How many requests were abandoned by the client before the mock finished answering.
    pub fn cancelled(&self) -> usize {
        self.shared.cancelled.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests have been abandoned, or `timeout` passes.
    pub async fn wait_cancelled(&self, n: usize, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let changed = self.shared.cancelled_changed.notified();
                if self.cancelled() >= n {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Marks a request in flight; dropped before `finish` means the client went away.
pub(crate) struct InFlight {
    pub(crate) shared: Arc<Shared>,
    pub(crate) finished: bool,
}

impl InFlight {
    pub(crate) fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.cancelled.fetch_add(1, Ordering::SeqCst);
            self.shared.cancelled_changed.notify_waiters();
        }
    }
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}})),
    )
        .into_response()
}

pub(crate) fn record(shared: &Shared, path: &str, headers: &HeaderMap, body: &Value) {
    if shared.record {
        lock(&shared.requests).push(Recorded {
            path: path.to_owned(),
            headers: headers.clone(),
            body: body.clone(),
        });
    }
}

/// A scripted route's start: the body read as JSON (else a 400), the request marked in flight
/// and recorded as `path`, and the next step of the script.
pub(crate) fn begin(
    shared: &Arc<Shared>,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Value, InFlight, Option<Step>), Box<Response>> {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return Err(Box::new(bad_request("mock: body is not JSON")));
    };
    let guard = InFlight {
        shared: shared.clone(),
        finished: false,
    };
    let step = take_step(shared, path, headers, &request);
    Ok((request, guard, step))
}

pub(crate) fn take_step(
    shared: &Shared,
    path: &str,
    headers: &HeaderMap,
    body: &Value,
) -> Option<Step> {
    record(shared, path, headers, body);
    lock(&shared.script).pop_front()
}

pub(crate) fn status_response(
    status: u16,
    body: String,
    headers: Vec<(String, String)>,
) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            header::HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

async fn chat(
    State(shared): State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (request, guard, step) = match begin(&shared, &path_of(&uri), &headers, &body) {
        Ok(begun) => begun,
        Err(response) => return *response,
    };
    let model = request["model"].as_str().unwrap_or("mock-gpt").to_owned();
    let streaming = request["stream"].as_bool().unwrap_or(false);
    let include_usage = request["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let prompt_tokens = request["messages"]
        .as_array()
        .map(|m| m.len() as u64 * 5)
        .unwrap_or(0);
    let reply = shared.reply.clone();
    let completion_tokens = reply.split_whitespace().count() as u64;

    let Play { guard, cut, hold } = match prelude(step, guard, openai_error).await {
        Ok(play) => play,
        Err(response) => return response,
    };

    let id = "chatcmpl-mock";
    let created = now();
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens
    });
    let count = |shared: &Shared| {
        shared.served.0.fetch_add(prompt_tokens, Ordering::SeqCst);
        shared
            .served
            .1
            .fetch_add(completion_tokens, Ordering::SeqCst);
    };
    if !streaming {
        if let Some((_, Cut::Reset)) = cut {
            return broken_json(guard);
        }
        guard.finish();
        count(&shared);
        return Json(json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": reply, "refusal": null},
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": usage
        }))
        .into_response();
    }

    // As OpenAI's: with `include_usage`, every chunk but the last carries `"usage": null`.
    let chunk = |delta: Value, finish: Value| {
        let mut chunk = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    };
    let mut events: Vec<String> =
        vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null).to_string()];
    let words: Vec<&str> = reply.split_inclusive(' ').collect();
    for word in words {
        events.push(chunk(json!({"content": word}), Value::Null).to_string());
    }
    events.push(chunk(json!({}), json!("stop")).to_string());
    if include_usage {
        count(&shared);
        events.push(
            json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [], "usage": usage})
            .to_string(),
        );
    }
    events.push("[DONE]".to_owned());

    let events = events
        .into_iter()
        .map(|data| (None, data))
        .collect::<Vec<_>>();
    sse(frames(events), guard, cut, hold)
}

/// A non-stream reply whose body breaks after the head (`Step::ResetAfterChunks`).
pub(crate) fn broken_json(guard: InFlight) -> Response {
    let body = Body::from_stream(stream::iter([Err::<Bytes, _>(std::io::Error::other(
        "mock reset",
    ))]));
    guard.finish();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The path a request is recorded under: Azure's deployment routes carry the API version in
/// the query, which is kept.
fn path_of(uri: &axum::http::Uri) -> String {
    match uri.query() {
        Some(q) => format!("{}?{q}", uri.path()),
        None => uri.path().to_owned(),
    }
}

/// Legacy text completions: the reply as `text`, streamed a word a chunk like chat.
async fn completions(
    State(shared): State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (request, guard, step) = match begin(&shared, &path_of(&uri), &headers, &body) {
        Ok(begun) => begun,
        Err(response) => return *response,
    };
    let model = request["model"].as_str().unwrap_or("mock-gpt").to_owned();
    let streaming = request["stream"].as_bool().unwrap_or(false);
    let include_usage = request["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    // Five tokens a prompt (a list of prompts: five each).
    let prompt_tokens = request["prompt"]
        .as_array()
        .map_or(5, |p| p.len() as u64 * 5);
    let reply = shared.reply.clone();
    let completion_tokens = reply.split_whitespace().count() as u64;
    let Play { guard, cut, hold } = match prelude(step, guard, openai_error).await {
        Ok(play) => play,
        Err(response) => return response,
    };
    // Counted when reported, as `tokens_served` says.
    let count = || {
        shared.served.0.fetch_add(prompt_tokens, Ordering::SeqCst);
        shared
            .served
            .1
            .fetch_add(completion_tokens, Ordering::SeqCst);
    };
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                       "total_tokens": prompt_tokens + completion_tokens});
    let completion = |text: &str, finish: Value, usage: Option<&Value>| {
        let mut c = json!({"id": "cmpl-mock", "object": "text_completion", "created": now(),
            "model": model, "system_fingerprint": "fp_mock",
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}]});
        if let Some(usage) = usage {
            c["usage"] = usage.clone();
        }
        c
    };
    if !streaming {
        if let Some((_, Cut::Reset)) = cut {
            return broken_json(guard);
        }
        guard.finish();
        count();
        return Json(completion(&reply, json!("stop"), Some(&usage))).into_response();
    }
    let mut events: Vec<String> = reply
        .split_inclusive(' ')
        .map(|word| completion(word, Value::Null, None).to_string())
        .collect();
    events.push(completion("", json!("stop"), None).to_string());
    if include_usage {
        count();
        let mut last = completion("", Value::Null, Some(&usage));
        last["choices"] = json!([]);
        events.push(last.to_string());
    }
    events.push("[DONE]".to_owned());
    let events = events.into_iter().map(|data| (None, data)).collect();
    sse(frames(events), guard, cut, hold)
}

pub(crate) fn openai_error(status: u16) -> String {
    json!({"error": {"message": format!("mock failure {status}"), "type": "server_error", "param": null, "code": "mock_failure"}}).to_string()
}

/// Server-sent event frames for `(event name, data)` pairs; data of several lines is sent as
/// several `data:` lines, as the SSE format has it.
pub(crate) fn frames(events: Vec<(Option<String>, String)>) -> Vec<String> {
    events
        .into_iter()
        .map(|(name, data)| {
            let mut frame = name.map(|n| format!("event: {n}\n")).unwrap_or_default();
            for line in data.split('\n') {
                frame.push_str("data: ");
                frame.push_str(line);
                frame.push('\n');
            }
            frame.push('\n');
            frame
        })
        .collect()
}

/// How the generated answer is to be played, once the scripted step let it through.
pub(crate) struct Play {
    pub guard: InFlight,
    pub cut: Option<(usize, Cut)>,
    pub hold: Option<Hold>,
}

/// Where a scripted stream waits for its gate: before its last frame, or before frame `n`.
pub(crate) struct Hold {
    before: Option<usize>,
    gate: Gate,
}

/// A step that waits first ([`Step::After`]), once it has waited; any other step as it is.
async fn after(mut step: Option<Step>) -> Option<Step> {
    while let Some(Step::After(delay, then)) = step {
        tokio::time::sleep(delay).await;
        step = Some(*then);
    }
    step
}

/// Plays the scripted step common to every wire format: `Err` is the whole response (a status,
/// a JSON body, recorded events), `Ok` how to play the route's own answer. `error_body` renders
/// `Step::Fail` in the route's format.
pub(crate) async fn prelude(
    step: Option<Step>,
    guard: InFlight,
    error_body: fn(u16) -> String,
) -> Result<Play, Response> {
    let mut cut = None;
    let mut hold = None;
    let step = after(step).await;
    match step {
        Some(Step::Status {
            status,
            body,
            headers,
        }) => {
            guard.finish();
            return Err(status_response(status, body, headers));
        }
        Some(Step::Fail(status)) => {
            guard.finish();
            return Err(status_response(status, error_body(status), Vec::new()));
        }
        Some(Step::Delay(d)) => tokio::time::sleep(d).await,
        Some(Step::Stall) => {
            std::future::pending::<()>().await;
        }
        Some(Step::StallAfterChunks(n)) => cut = Some((n, Cut::Stall)),
        Some(Step::TruncateAfterChunks(n)) => cut = Some((n, Cut::Truncate)),
        Some(Step::ResetAfterChunks(n)) => cut = Some((n, Cut::Reset)),
        Some(Step::HoldLastChunk(gate)) => hold = Some(Hold { before: None, gate }),
        Some(Step::HoldAfterChunks(n, gate)) => {
            hold = Some(Hold {
                before: Some(n),
                gate,
            })
        }
        Some(Step::Json(body)) => {
            guard.finish();
            return Err(Json(body).into_response());
        }
        Some(Step::Events(recorded)) => return Err(sse(frames(recorded), guard, None, None)),
        // `after` has waited out every `After`.
        Some(Step::After(..)) | None => {}
    }
    Ok(Play { guard, cut, hold })
}

/// An event-stream response of `frames`, played with the scripted cut or hold: a held stream
/// waits at the gate before its last frame.
pub(crate) fn sse(
    frames: Vec<String>,
    guard: InFlight,
    cut: Option<(usize, Cut)>,
    hold: Option<Hold>,
) -> Response {
    let last = frames.len().saturating_sub(1);
    let body = stream::unfold(
        (frames.into_iter().enumerate(), Some(guard), cut, hold),
        move |(mut events, guard, cut, hold)| async move {
            let guard = guard?;
            let Some((i, frame)) = events.next() else {
                guard.finish();
                return None;
            };
            if let Some((n, how)) = cut
                && i >= n
            {
                match how {
                    Cut::Stall => {
                        let _guard = guard;
                        std::future::pending::<()>().await;
                        return None;
                    }
                    Cut::Truncate => {
                        guard.finish();
                        return None;
                    }
                    Cut::Reset => {
                        // Let the chunks already written leave before the connection is
                        // aborted; otherwise hyper drops them with the connection.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        guard.finish();
                        return Some((
                            Err(std::io::Error::other("mock reset")),
                            (events, None, cut, hold),
                        ));
                    }
                }
            }
            if let Some(Hold { before, gate }) = &hold
                && before.unwrap_or(last) == i
            {
                gate.0.notified().await;
            }
            Some((
                Ok::<_, std::io::Error>(Bytes::from(frame)),
                (events, Some(guard), cut, hold),
            ))
        },
    );
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Cut {
    Stall,
    Truncate,
    Reset,
}

async fn embeddings(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (request, guard, step) = match begin(&shared, "/v1/embeddings", &headers, &body) {
        Ok(begun) => begun,
        Err(response) => return *response,
    };
    match after(step).await {
        Some(Step::Status {
            status,
            body,
            headers,
        }) => {
            guard.finish();
            return status_response(status, body, headers);
        }
        Some(Step::Fail(status)) => {
            guard.finish();
            return status_response(status, openai_error(status), Vec::new());
        }
        Some(Step::Stall) => std::future::pending::<()>().await,
        Some(Step::Delay(d)) => tokio::time::sleep(d).await,
        _ => {}
    }
    let texts: Vec<&str> = match &request["input"] {
        Value::Array(items) => items.iter().map(|t| t.as_str().unwrap_or("")).collect(),
        other => vec![other.as_str().unwrap_or("")],
    };
    let inputs = texts.len();
    // As OpenAI does: `"encoding_format": "base64"` (what the Node SDK asks for by default)
    // answers each vector as the base64 of its little-endian 32-bit floats.
    let base64 = request["encoding_format"] == "base64";
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let vector = bag_of_words(t);
            let embedding = if base64 {
                use base64::Engine as _;
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    guard.finish();
    Json(json!({
        "object": "list",
        "data": data,
        "model": request["model"],
        "usage": {"prompt_tokens": inputs * 2, "total_tokens": inputs * 2}
    }))
    .into_response()
}

/// The mock's embedding: words hashed into 32 buckets, L2-normalised, so texts sharing most of
/// their words are similar (a stand-in for a real model's meaning, good enough for tests).
pub fn bag_of_words(text: &str) -> Vec<f32> {
    let mut v = vec![0.0f32; 32];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let hash = word
            .to_lowercase()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        v[(hash % 32) as usize] += 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

async fn models(State(shared): State<Arc<Shared>>) -> Response {
    // A scripted `Fail` at the front of the script fails the model list too (probes).
    {
        let mut script = lock(&shared.script);
        if let Some(Step::Fail(status)) = script.front() {
            let status = *status;
            script.pop_front();
            return status_response(status, openai_error(status), Vec::new());
        }
    }
    let data: Vec<Value> = shared
        .models
        .iter()
        .map(
            |id| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "mock"}),
        )
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}
