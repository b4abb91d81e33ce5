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
const EXPOSED_HEADERS: [&str; 9] = [
    "x-request-id",
    "x-reprise-provider",
    "x-reprise-attempts",
    "x-reprise-cache",
    "x-reprise-cache-kind",
    "x-reprise-cache-similarity",
    "x-reprise-cache-hits",
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

/// Refuses, before any work, what a web page could send a gateway on the operator's machine:
/// - a request for a host name the gateway does not answer to (see [`host_allowed`]): a page
///   whose own name is made to resolve to the gateway's address (DNS rebinding) is, to the
///   browser, of the gateway's own origin, and its requests pass the origin check below;
/// - a request whose `Origin` header is neither the gateway's own nor, on the API routes, one of
///   `cors_origins`: otherwise any page the operator visits could spend through the gateway (a
///   `text/plain` POST needs no CORS preflight) or reach its loopback-only admin routes.
///
/// Clients that are not browsers send no `Origin` and ask for the name they were given.
async fn origin_guard(
    State(state): State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::header::{HOST, ORIGIN};
    let path = request.uri().path();
    let admin = path == "/"
        || path == "/metrics"
        || path.starts_with("/admin")
        || path.starts_with("/dashboard");
    // A `Host` that is not text is no name the gateway answers to.
    let host = match request.headers().get(HOST) {
        Some(h) => h.to_str().unwrap_or("\u{fffd}"),
        None => request
            .uri()
            .authority()
            .map(|a| a.as_str())
            .unwrap_or_default(),
    };
    if !host.is_empty() && !host_allowed(state.config(), host, admin) {
        let log = RequestLog::start(&state, request.headers(), "wrong_host");
        let name = host_name(host).unwrap_or(host);
        let message = if admin && !state.config().listen.ip().is_loopback() {
            format!(
                "The admin routes without an admin token answer only to IP addresses and \
                 localhost, not to {name:?}: set REPRISE_ADMIN_TOKEN, or list the name in \
                 allowed_hosts (REPRISE_ALLOWED_HOSTS)."
            )
        } else {
            format!(
                "This gateway answers only to IP addresses, localhost and the names in \
                 allowed_hosts (REPRISE_ALLOWED_HOSTS), not to {name:?} (a web page could \
                 reach it through a name of its own): list the name if a proxy or a name of \
                 yours leads here."
            )
        };
        return pipeline::fail(log, GatewayError::Forbidden { message }, &[]);
    }
    let Some(origin) = request.headers().get(ORIGIN) else {
        return next.run(request).await;
    };
    let origin = origin.to_str().unwrap_or_default();
    let own = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|authority| !host.is_empty() && authority.eq_ignore_ascii_case(host));
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

/// The name in a `Host` header (`name`, `name:port`, `[v6]:port`), without its port.
fn host_name(host: &str) -> Option<&str> {
    let (name, port) = match host.strip_prefix('[') {
        Some(v6) => {
            let (inside, after) = v6.split_once(']')?;
            (
                inside,
                after.strip_prefix(':').or(after.is_empty().then_some("")),
            )
        }
        None => match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, Some("")),
        },
    };
    let port_ok = port.is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    (port_ok && !name.is_empty()).then_some(name)
}

/// Whether the gateway answers to the name a request asked for. IP addresses, `localhost` and
/// `*.localhost` always: no web page can have a name of its own resolve to them and be them.
/// Other names when `allowed_hosts` lists them or, unset, on a listener beyond loopback (where
/// clients must authenticate), except on the admin routes, which without an admin token are
/// open to loopback peers, as a page rebound to `127.0.0.1` would be.
fn host_allowed(config: &crate::config::Config, host: &str, admin: bool) -> bool {
    use crate::config::AllowedHosts;
    let Some(name) = host_name(host) else {
        return false;
    };
    let bare = name.trim_end_matches('.');
    let local = bare.eq_ignore_ascii_case("localhost")
        || bare
            .len()
            .checked_sub(".localhost".len())
            .and_then(|at| bare.get(at..))
            .is_some_and(|end| end.eq_ignore_ascii_case(".localhost"))
        || name.parse::<std::net::IpAddr>().is_ok();
    local
        || config.hosts.lists(name)
        || (config.hosts == AllowedHosts::Default
            && !config.listen.ip().is_loopback()
            && (!admin || config.admin_token.is_some()))
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
    let directives = cache_directives(&state, request.headers());
    model_route::<ResponsesRequest, _, _>(
        state,
        request,
        "/v1/responses",
        |state, log, caller, body| async move {
            pipeline::responses(&state, log, caller, body.value, body.raw, directives).await
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
    let directives = cache_directives(&state, request.headers());
    model_route::<EmbeddingsRequest, _, _>(
        state,
        request,
        "/v1/embeddings",
        |state, log, caller, body| async move {
            pipeline::embeddings(&state, log, caller, body.value, body.raw, directives).await
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

/// Readiness: configuration loaded (it is, or we would not be serving), the store answers, and
/// the semantic tier holds the stored questions (filled after start-up; requests are served
/// meanwhile, with the exact tier only).
async fn readyz(State(state): State<AppState>) -> Response {
    if state.cache().loading() {
        return GatewayError::NotReady {
            reason: "the cache is loading its stored questions".to_owned(),
        }
        .into_response();
    }
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

#[cfg(test)]
mod tests {
    use super::{host_allowed, host_name};
    use crate::config::{Config, Overrides};

    fn config(toml: &str, vars: &[(&str, &str)]) -> Config {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let env = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        Config::from_toml(toml, &env, &Overrides::default()).unwrap()
    }

    #[test]
    fn host_names_lose_their_port() {
        assert_eq!(host_name("localhost:4080"), Some("localhost"));
        assert_eq!(host_name("gw.example"), Some("gw.example"));
        assert_eq!(host_name("[::1]:4080"), Some("::1"));
        assert_eq!(host_name("[::1]"), Some("::1"));
        assert_eq!(host_name("127.0.0.1:4080"), Some("127.0.0.1"));
        for malformed in [
            "",
            ":4080",
            "gw.example:http",
            "::1",
            "[::1",
            "[::1]x",
            "\u{fffd}",
        ] {
            assert!(
                host_name(malformed).is_none() || !host_allowed(&config("", &[]), malformed, false),
                "{malformed:?}"
            );
        }
    }

    #[test]
    fn on_loopback_only_addresses_and_localhost_are_answered() {
        let c = config("", &[]);
        for host in [
            "127.0.0.1:4080",
            "[::1]:4080",
            "localhost:4080",
            "LocalHost",
            "localhost.:4080",
            "app.localhost:4080",
            "10.0.0.5:4080",
        ] {
            assert!(host_allowed(&c, host, false), "{host}");
            assert!(host_allowed(&c, host, true), "{host}");
        }
        for host in [
            "evil.example:4080",
            "localhost.evil.example",
            "evillocalhost",
            "127.0.0.1.nip.io:4080",
        ] {
            assert!(!host_allowed(&c, host, false), "{host}");
            assert!(!host_allowed(&c, host, true), "{host}");
        }
        let c = config("allowed_hosts = [\"gw.example\", \"*.corp.example\"]", &[]);
        assert!(host_allowed(&c, "gw.example:443", false));
        assert!(host_allowed(&c, "gw.example", true));
        assert!(host_allowed(&c, "a.corp.example", false));
        assert!(!host_allowed(&c, "evil.example", false));
        assert!(host_allowed(&c, "localhost", false));
        let c = config("allowed_hosts = [\"*\"]", &[]);
        assert!(host_allowed(&c, "evil.example", true));
    }

    #[test]
    fn beyond_loopback_any_name_but_not_for_open_admin_routes() {
        let open = config("listen = \"0.0.0.0:4080\"", &[]);
        assert!(host_allowed(&open, "gw.example", false));
        assert!(!host_allowed(&open, "gw.example", true));
        assert!(host_allowed(&open, "localhost", true));
        let token = config(
            "listen = \"0.0.0.0:4080\"",
            &[("REPRISE_ADMIN_TOKEN", "admin-secret")],
        );
        assert!(host_allowed(&token, "gw.example", true));
        let listed = config(
            "listen = \"0.0.0.0:4080\"\nallowed_hosts = [\"gw.example\"]",
            &[],
        );
        assert!(host_allowed(&listed, "gw.example", true));
        assert!(!host_allowed(&listed, "other.example", false));
    }
}
