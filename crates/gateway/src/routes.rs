//! HTTP routes: thin handlers that extract the request, open its log line and hand over to the
//! pipeline. Every route is served with and without the `/v1` prefix.

use std::any::Any;

use axum::Router;

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use reprise_api::{ChatCompletionRequest, CompletionsRequest, EmbeddingsRequest, ResponsesRequest};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tracing::Instrument;

use crate::extract::OpenAiJson;
use crate::pipeline::{self, RequestLog};
use crate::{AppState, GatewayError};
use crate::{admin, auth, dashboard};

/// Builds the gateway's router from its state.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/", get(dashboard::page))
        .route("/dashboard/data", get(dashboard::data))
        .route("/dashboard/chart/{name}", get(dashboard::chart))
        .route("/metrics", get(admin::metrics))
        .route("/admin/cache/stats", get(admin::cache_stats))
        .route("/admin/cache", axum::routing::delete(admin::cache_purge))
        .route("/admin/providers", get(admin::providers))
        .route("/admin/providers/health", get(admin::providers_health))
        .route("/admin/keys", get(admin::keys).post(admin::create_key))
        .route("/admin/keys/{id}", axum::routing::delete(admin::revoke_key))
        .route("/admin/usage", get(admin::usage))
        .route("/admin/secrets", get(admin::secrets))
        .route(
            "/admin/secrets/{name}",
            axum::routing::put(admin::put_secret).delete(admin::delete_secret),
        );
    for prefix in ["/v1", ""] {
        router = router
            .route(&format!("{prefix}/chat/completions"), post(chat))
            .route(&format!("{prefix}/completions"), post(completions))
            .route(&format!("{prefix}/responses"), post(responses))
            .route(
                &format!("{prefix}/responses/{{*path}}"),
                get(stored_response)
                    .delete(stored_response)
                    .post(stored_response),
            )
            .route(&format!("{prefix}/embeddings"), post(embeddings))
            .route(&format!("{prefix}/models"), get(models))
            .route(&format!("{prefix}/models/{{*model}}"), get(model));
        for &(path, route) in FORWARDED {
            router = router.route(
                &format!("{prefix}/{path}"),
                post(move |State(state): State<AppState>, request: Request| {
                    forwarded(state, request, path, route)
                }),
            );
        }
    }
    let cors = cors_layer(&state.config().cors);
    let mut router = router
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            origin_guard,
        ))
        .with_state(state);
    // Browser pages of the listed origins: preflights answered before routing, and the headers
    // that let the page read the answer; the guard above keeps them off the admin routes.
    if let Some(cors) = cors {
        router = router.layer(cors);
    }
    router
        // HTTP-generic layers only, outermost first:
        // 1. give every request an `x-request-id` (the client's own if it sent one);
        // 2. copy it onto the response, error and panic responses included;
        // 3. turn a panic into an OpenAI-shaped 500 instead of a dropped connection.
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(UuidV7))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(CatchPanicLayer::custom(panic_response)),
        )
}

/// The gateway's response headers a browser page may read.
const EXPOSED_HEADERS: [&str; 8] = [
    "x-request-id",
    "x-reprise-provider",
    "x-reprise-attempts",
    "x-reprise-cache",
    "x-reprise-cache-kind",
    "x-reprise-cache-similarity",
    "age",
    "retry-after",
];

/// CORS for the API routes when `cors_origins` lists any: preflights answered, the listed
/// origins (or any) allowed, whatever request headers the page sends (the SDKs send their own),
/// the gateway's headers readable. No credentials mode: keys travel as bearer tokens.
fn cors_layer(origins: &crate::config::CorsOrigins) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
    let allow = match origins {
        crate::config::CorsOrigins::None => return None,
        crate::config::CorsOrigins::Any => AllowOrigin::any(),
        crate::config::CorsOrigins::List(list) => AllowOrigin::list(
            list.iter()
                .filter_map(|o| axum::http::HeaderValue::from_str(o).ok()),
        ),
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers(AllowHeaders::mirror_request())
            .expose_headers(EXPOSED_HEADERS.map(axum::http::HeaderName::from_static))
            .max_age(std::time::Duration::from_secs(3600)),
    )
}

/// Refuses a browser page of another origin (a request whose `Origin` header is neither the
/// gateway's own nor, on the API routes, one of `cors_origins`) before any work: otherwise any
/// page the operator visits could send requests to a gateway on their machine, spending through
/// it (a `text/plain` POST needs no CORS preflight), or reach its loopback-only admin routes.
/// Clients that are not browsers send no `Origin` and are not concerned.
async fn origin_guard(
    State(state): State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::header::{HOST, ORIGIN};
    let Some(origin) = request.headers().get(ORIGIN) else {
        return next.run(request).await;
    };
    let origin = origin.to_str().unwrap_or_default();
    let host = request
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default();
    let own = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|authority| !host.is_empty() && authority.eq_ignore_ascii_case(host));
    let path = request.uri().path();
    let admin = path == "/"
        || path == "/metrics"
        || path.starts_with("/admin")
        || path.starts_with("/dashboard");
    if own || (!admin && state.config().cors.allows(origin)) {
        return next.run(request).await;
    }
    let log = RequestLog::start(&state, request.headers(), "cross_origin");
    let message = if admin {
        format!(
            "Requests from a web page of another origin ({origin:?}) may not use the gateway's \
             admin routes."
        )
    } else {
        format!(
            "Requests from web pages of {origin:?} are not allowed: list that origin in \
             cors_origins (REPRISE_CORS_ORIGINS) to let them call the API."
        )
    };
    pipeline::fail(log, GatewayError::Forbidden { message }, &[])
}

/// Request ids are UUIDv7: time-ordered, so log lines sort by arrival, and drawn from a
/// user-space generator (no `getrandom` system call per request).
#[derive(Debug, Clone, Copy)]
struct UuidV7;

impl MakeRequestId for UuidV7 {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let id = uuid::Uuid::now_v7();
        let mut buf = uuid::Uuid::encode_buffer();
        axum::http::HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf))
            .ok()
            .map(RequestId::new)
    }
}

fn request_span(log: &RequestLog) -> tracing::Span {
    tracing::info_span!("request", request_id = %log.request_id)
}

async fn chat(State(state): State<AppState>, request: Request) -> Response {
    let directives = cache_directives(&state, request.headers());
    let route = "/v1/chat/completions";
    model_route::<ChatCompletionRequest, _, _>(
        state,
        request,
        route,
        |state, log, caller, body| async move {
            pipeline::chat(&state, log, caller, body.value, body.raw, directives).await
        },
    )
    .await
}

/// The request's cache directives: `Cache-Control`, `x-reprise-cache-ttl`, and the tenant
/// namespace from `x-reprise-namespace` when the operator allows it.
fn cache_directives(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<pipeline::CacheDirectives, GatewayError> {
    let text = |name: &str| -> Result<Option<&str>, GatewayError> {
        headers
            .get(name)
            .map(|v| {
                v.to_str().map_err(|_| {
                    GatewayError::invalid(format!("the {name} header is not valid text"), None)
                })
            })
            .transpose()
    };
    let control =
        reprise_cache::CacheControl::parse(text("cache-control")?, text("x-reprise-cache-ttl")?)
            .map_err(|m| GatewayError::invalid(m, None))?;
    let namespace = match text("x-reprise-namespace")? {
        Some(ns) if state.config().cache.namespace_header => {
            if ns.is_empty() || ns.len() > 128 {
                return Err(GatewayError::invalid(
                    "x-reprise-namespace must be 1 to 128 characters",
                    None,
                ));
            }
            ns.to_owned()
        }
        _ => String::new(),
    };
    Ok(pipeline::CacheDirectives { control, namespace })
}

/// A model route's common start: the log line and its span, the caller identified, the body
/// read as `T` (OpenAI-shaped 400s naming the field), then `work`.
async fn model_route<T, F, Fut>(
    state: AppState,
    request: Request,
    route: &'static str,
    work: F,
) -> Response
where
    T: serde::de::DeserializeOwned,
    F: FnOnce(AppState, RequestLog, auth::Caller, OpenAiJson<T>) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    identified(
        state,
        request,
        route,
        |state, log, caller, request| async move {
            match OpenAiJson::<T>::from_request(request, &state).await {
                Ok(body) => work(state, log, caller, body).await,
                Err(err) => pipeline::fail(log, err, &[]),
            }
        },
    )
    .await
}

/// A route's common start: the log line and its span, the caller identified, then `work` with
/// the request (its body not yet read).
async fn identified<F, Fut>(
    state: AppState,
    request: Request,
    route: &'static str,
    work: F,
) -> Response
where
    F: FnOnce(AppState, RequestLog, auth::Caller, Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let log = RequestLog::start(&state, request.headers(), route);
    let span = request_span(&log);
    async move {
        match auth::identify(&state, request.headers()) {
            Ok(caller) => work(state, log, caller, request).await,
            Err(err) => pipeline::fail(log, err, &[]),
        }
    }
    .instrument(span)
    .await
}

async fn completions(State(state): State<AppState>, request: Request) -> Response {
    model_route::<CompletionsRequest, _, _>(
        state,
        request,
        "/v1/completions",
        |state, log, caller, body| async move {
            pipeline::completions(&state, log, caller, body.value, body.raw).await
        },
    )
    .await
}

async fn responses(State(state): State<AppState>, request: Request) -> Response {
    model_route::<ResponsesRequest, _, _>(
        state,
        request,
        "/v1/responses",
        |state, log, caller, body| async move {
            pipeline::responses(&state, log, caller, body.value, body.raw).await
        },
    )
    .await
}

/// A stored response's routes: `{id}` (`GET`, `DELETE`), `{id}/cancel` (`POST`) and
/// `{id}/input_items` (`GET`); anything else below `/v1/responses/` is an unknown route. None
/// of them takes a body: whatever comes is not read, and not forwarded.
async fn stored_response(
    State(state): State<AppState>,
    Path(path): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let log = RequestLog::start(&state, &headers, "/v1/responses/{id}");
    let is_id = |id: &str| {
        (1..=256).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    let allowed = match path.split('/').collect::<Vec<_>>()[..] {
        [id] if is_id(id) => Some("GET, DELETE"),
        [id, "cancel"] if is_id(id) => Some("POST"),
        [id, "input_items"] if is_id(id) => Some("GET"),
        _ => None,
    };
    let err = match allowed {
        None => Some(GatewayError::UnknownRoute {
            method: method.to_string(),
            path: uri.path().to_owned(),
        }),
        Some(allowed) if !allowed.split(", ").any(|m| m == method.as_str()) => {
            Some(GatewayError::MethodNotAllowed {
                method: method.to_string(),
                path: uri.path().to_owned(),
            })
        }
        Some(_) => None,
    };
    if let Some(err) = err {
        let mut response = pipeline::fail(log, err, &[]);
        if let (StatusCode::METHOD_NOT_ALLOWED, Some(allowed)) = (response.status(), allowed) {
            response.headers_mut().insert(
                axum::http::header::ALLOW,
                axum::http::HeaderValue::from_static(allowed),
            );
        }
        return response;
    }
    let span = request_span(&log);
    let caller = match auth::identify(&state, &headers) {
        Ok(caller) => caller,
        Err(err) => return pipeline::fail(log, err, &[]),
    };
    let request = pipeline::StoredRequest {
        method,
        path,
        query: uri.query().map(str::to_owned),
    };
    pipeline::stored_response(&state, log, caller, request)
        .instrument(span)
        .await
}

async fn embeddings(State(state): State<AppState>, request: Request) -> Response {
    model_route::<EmbeddingsRequest, _, _>(
        state,
        request,
        "/v1/embeddings",
        |state, log, caller, body| async move {
            pipeline::embeddings(&state, log, caller, body.value, body.raw).await
        },
    )
    .await
}

/// The OpenAI API's other stateless routes, forwarded as they came to an OpenAI-compatible
/// target (see `pipeline::forward`): the path below `/v1/`, and the route in logs and metrics.
const FORWARDED: &[(&str, &str)] = &[
    ("moderations", "/v1/moderations"),
    ("images/generations", "/v1/images/generations"),
    ("images/edits", "/v1/images/edits"),
    ("images/variations", "/v1/images/variations"),
    ("audio/speech", "/v1/audio/speech"),
    ("audio/transcriptions", "/v1/audio/transcriptions"),
    ("audio/translations", "/v1/audio/translations"),
];

async fn forwarded(
    state: AppState,
    request: Request,
    path: &'static str,
    route: &'static str,
) -> Response {
    identified(
        state,
        request,
        route,
        |state, log, caller, request| async move {
            let query = request.uri().query().map(str::to_owned);
            let content_type = request
                .headers()
                .get(axum::http::header::CONTENT_TYPE)
                .cloned();
            let body = match crate::extract::read_body(request, &state).await {
                Ok(body) => body,
                Err(err) => return pipeline::fail(log, err, &[]),
            };
            let request = pipeline::ForwardRequest {
                path,
                query,
                content_type,
                body,
            };
            pipeline::forward(&state, log, caller, request).await
        },
    )
    .await
}

async fn models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let log = RequestLog::start(&state, &headers, "/v1/models");
    if let Err(err) = auth::identify(&state, &headers) {
        return pipeline::fail(log, err, &[]);
    }
    let span = request_span(&log);
    pipeline::models(&state, log).instrument(span).await
}

async fn model(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let log = RequestLog::start(&state, &headers, "/v1/models/{model}");
    if let Err(err) = auth::identify(&state, &headers) {
        return pipeline::fail(log, err, &[]);
    }
    let span = request_span(&log);
    pipeline::model(&state, log, id).instrument(span).await
}

/// Liveness: the process is up and serving HTTP.
async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

/// Readiness: configuration loaded (it is, or we would not be serving) and the store answers.
async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.store().clone();
    match tokio::task::spawn_blocking(move || store.ping()).await {
        Ok(Ok(())) => axum::Json(serde_json::json!({"status": "ready"})).into_response(),
        Ok(Err(err)) => {
            tracing::error!(error = %err, "store is not answering");
            GatewayError::NotReady {
                reason: "the store is not answering".to_owned(),
            }
            .into_response()
        }
        Err(_) => GatewayError::Internal.into_response(),
    }
}

async fn unknown_route(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let log = RequestLog::start(&state, &headers, "unknown");
    let err = GatewayError::UnknownRoute {
        method: method.to_string(),
        path: uri.path().to_owned(),
    };
    pipeline::fail(log, err, &[])
}

async fn method_not_allowed(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let log = RequestLog::start(&state, &headers, "method_not_allowed");
    let err = GatewayError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    };
    let mut response = pipeline::fail(log, err, &[]);
    debug_assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    if let Some(allow) = allowed_methods(uri.path()) {
        response.headers_mut().insert(
            axum::http::header::ALLOW,
            axum::http::HeaderValue::from_static(allow),
        );
    }
    response
}

fn allowed_methods(path: &str) -> Option<&'static str> {
    let path = path.strip_prefix("/v1").unwrap_or(path);
    match path {
        "/chat/completions" | "/completions" | "/responses" | "/embeddings" => Some("POST"),
        p if FORWARDED
            .iter()
            .any(|(f, _)| p.strip_prefix('/') == Some(*f)) =>
        {
            Some("POST")
        }
        "/models"
        | "/"
        | "/dashboard/data"
        | "/metrics"
        | "/healthz"
        | "/readyz"
        | "/admin/cache/stats"
        | "/admin/providers"
        | "/admin/providers/health"
        | "/admin/usage"
        | "/admin/secrets" => Some("GET, HEAD"),
        p if p.starts_with("/admin/secrets/") => Some("PUT, DELETE"),
        p if p.starts_with("/dashboard/chart/") || p.starts_with("/models/") => Some("GET, HEAD"),
        "/admin/cache" => Some("DELETE"),
        "/admin/keys" => Some("GET, HEAD, POST"),
        p if p.starts_with("/admin/keys/") => Some("DELETE"),
        _ => None,
    }
}

fn panic_response(_panic: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked; answered 500");
    GatewayError::Internal.into_response()
}
