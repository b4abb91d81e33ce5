//! `/admin/*`: the operator's API. With `REPRISE_ADMIN_TOKEN` set, every admin request must
//! carry it as a bearer token (compared in constant time), from anywhere; without it, admin
//! routes answer only on loopback.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::auth::{NewKey, bearer};
use crate::state::unix_ms;
use crate::{AppState, GatewayError};

/// Proof that a request may use the admin API.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let sent = bearer(&parts.headers)
            .map(str::to_owned)
            .or_else(|| basic_password(&parts.headers));
        let token = state.config().admin_token.as_ref().map(|t| t.expose());
        check(token, sent.as_deref(), peer)
            .map(|()| Admin)
            .map_err(|err| {
                let mut response = err.into_response();
                if token.is_some() {
                    // Browsers (the dashboard) ask for the token as a password.
                    response.headers_mut().insert(
                        axum::http::header::WWW_AUTHENTICATE,
                        axum::http::HeaderValue::from_static("Basic realm=\"reprise admin\""),
                    );
                }
                response
            })
    }
}

/// The password of HTTP Basic credentials (any user name): how a browser sends the admin token.
fn basic_password(headers: &axum::http::HeaderMap) -> Option<String> {
    use base64::Engine;
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_owned())
}

fn check(
    token: Option<&str>,
    sent: Option<&str>,
    peer: Option<SocketAddr>,
) -> Result<(), GatewayError> {
    match token {
        Some(token) => match sent {
            Some(sent) if bool::from(sent.as_bytes().ct_eq(token.as_bytes())) => Ok(()),
            _ => Err(GatewayError::Unauthenticated {
                code: "invalid_admin_token",
                message: "Admin routes need the admin token (REPRISE_ADMIN_TOKEN) as a bearer \
                          token.",
            }),
        },
        None if peer.is_some_and(|p| p.ip().is_loopback()) => Ok(()),
        None => Err(GatewayError::Forbidden {
            message: "admin routes answer only on loopback unless REPRISE_ADMIN_TOKEN is set"
                .to_owned(),
        }),
    }
}

/// `GET /metrics`: Prometheus text format (admin-guarded: key labels are in it).
pub async fn metrics(_: Admin, State(state): State<AppState>) -> Response {
    let body = state.metrics().render(&state);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

pub async fn cache_stats(_: Admin, State(state): State<AppState>) -> Response {
    axum::Json(state.cache().stats()).into_response()
}

#[derive(Debug, Deserialize)]
pub struct PurgeQuery {
    namespace: Option<String>,
    model: Option<String>,
}

/// `DELETE /admin/cache[?namespace=N][&model=M]`: purge all, or by namespace and/or model.
pub async fn cache_purge(
    _: Admin,
    State(state): State<AppState>,
    Query(query): Query<PurgeQuery>,
) -> Response {
    let purge = tokio::task::spawn_blocking(move || {
        state
            .cache()
            .purge(query.namespace.as_deref(), query.model.as_deref())
    })
    .await;
    match purge {
        Ok(Ok(purged)) => axum::Json(serde_json::json!({"purged": purged})).into_response(),
        Ok(Err(err)) => {
            tracing::error!(error = %format!("{err:#}"), "cache purge failed");
            GatewayError::Internal.into_response()
        }
        Err(_) => GatewayError::Internal.into_response(),
    }
}

/// `GET /admin/providers`: every target with its models and breaker state, and the aliases.
pub async fn providers(_: Admin, State(state): State<AppState>) -> Response {
    let (targets, aliases) = state.router().report(std::time::Instant::now());
    axum::Json(serde_json::json!({"targets": targets, "aliases": aliases})).into_response()
}

/// `GET /admin/providers/health`: a live probe of every target (its model list).
pub async fn providers_health(_: Admin, State(state): State<AppState>) -> Response {
    let probes = state.router().probe().await;
    axum::Json(serde_json::json!({"targets": probes})).into_response()
}

/// `GET /admin/keys`: every key (never the key itself).
pub async fn keys(_: Admin, State(state): State<AppState>) -> Response {
    let store = state.store().clone();
    match tokio::task::spawn_blocking(move || crate::reports::list(&store)).await {
        Ok(Ok(keys)) => axum::Json(serde_json::json!({"keys": keys})).into_response(),
        _ => GatewayError::Internal.into_response(),
    }
}

/// `POST /admin/keys` with a [`NewKey`]: the key, shown this once.
pub async fn create_key(
    _: Admin,
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Response {
    let new: NewKey = match serde_json::from_slice(&body) {
        Ok(new) => new,
        Err(err) => {
            return GatewayError::invalid(format!("invalid key request: {err}"), None)
                .into_response();
        }
    };
    let created = tokio::task::spawn_blocking(move || state.keys().create(new, unix_ms())).await;
    match created {
        Ok(Ok((key, row))) => (
            axum::http::StatusCode::CREATED,
            axum::Json(serde_json::json!({"key": key, "id": row.id, "label": row.label, "prefix": row.prefix})),
        )
            .into_response(),
        Ok(Err(err)) => GatewayError::invalid(err.to_string(), None).into_response(),
        Err(_) => GatewayError::Internal.into_response(),
    }
}

/// `DELETE /admin/keys/{id}`: revokes at once.
pub async fn revoke_key(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let revoked = tokio::task::spawn_blocking(move || state.keys().revoke(&id, unix_ms())).await;
    match revoked {
        Ok(Ok(true)) => axum::Json(serde_json::json!({"revoked": true})).into_response(),
        Ok(Ok(false)) => {
            GatewayError::invalid("no active key has that id", Some("id")).into_response()
        }
        _ => GatewayError::Internal.into_response(),
    }
}

/// `GET /admin/secrets`: the names of the stored provider secrets (never a value).
pub async fn secrets(_: Admin, State(state): State<AppState>) -> Response {
    let store = state.store().clone();
    match tokio::task::spawn_blocking(move || store.secrets()).await {
        Ok(Ok(all)) => {
            let names: Vec<String> = all.into_iter().map(|s| s.name).collect();
            axum::Json(serde_json::json!({"secrets": names})).into_response()
        }
        _ => GatewayError::Internal.into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretValue {
    value: String,
}

/// `PUT /admin/secrets/{name}` with `{"value": "..."}`: sealed and stored (used from the next
/// start by targets that name it).
pub async fn put_secret(
    _: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let value: SecretValue = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return GatewayError::invalid("expected {\"value\": \"...\"}", Some("value"))
                .into_response();
        }
    };
    let stored = tokio::task::spawn_blocking(move || {
        let key = state.config().encryption_key.as_ref();
        crate::secrets::put(state.store(), key, &name, &value.value, unix_ms()).map(|()| name)
    })
    .await;
    match stored {
        Ok(Ok(name)) => axum::Json(serde_json::json!({"stored": name})).into_response(),
        Ok(Err(err)) => GatewayError::invalid(err.to_string(), None).into_response(),
        Err(_) => GatewayError::Internal.into_response(),
    }
}

pub async fn delete_secret(
    _: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Response {
    match tokio::task::spawn_blocking(move || state.store().delete_secret(&name)).await {
        Ok(Ok(true)) => axum::Json(serde_json::json!({"deleted": true})).into_response(),
        Ok(Ok(false)) => {
            GatewayError::invalid("no stored secret has that name", Some("name")).into_response()
        }
        _ => GatewayError::Internal.into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct UsageQuery {
    key: Option<String>,
    /// `YYYY-MM-DD` (UTC).
    since: Option<String>,
}

/// `GET /admin/usage[?key=ID][&since=DATE]`: spend and savings by key, model and day.
pub async fn usage(
    _: Admin,
    State(state): State<AppState>,
    Query(query): Query<UsageQuery>,
) -> Response {
    let since = match query
        .since
        .as_deref()
        .map(crate::reports::parse_date)
        .transpose()
    {
        Ok(since) => since.unwrap_or(0),
        Err(err) => return GatewayError::invalid(err.to_string(), Some("since")).into_response(),
    };
    // Rows still queued are written first: the summary includes every finished request.
    state.ledger().flush().await;
    let store = state.store().clone();
    let summary = tokio::task::spawn_blocking(move || {
        crate::reports::usage(&store, since, query.key.as_deref())
    })
    .await;
    match summary {
        Ok(Ok(summary)) => axum::Json(summary).into_response(),
        _ => GatewayError::Internal.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_or_the_token() {
        let local = Some("127.0.0.1:5000".parse().unwrap());
        let remote = Some("192.0.2.7:5000".parse().unwrap());
        assert!(check(None, None, local).is_ok());
        assert!(check(None, None, Some("[::1]:1".parse().unwrap())).is_ok());
        let err = check(None, None, remote).unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::FORBIDDEN);
        assert!(check(Some("s3cret"), Some("s3cret"), remote).is_ok());
        assert_eq!(
            check(Some("s3cret"), Some("nope"), local)
                .unwrap_err()
                .status(),
            axum::http::StatusCode::UNAUTHORIZED,
            "with a token, loopback needs it too"
        );
        assert!(check(Some("s3cret"), None, local).is_err());
    }
}
